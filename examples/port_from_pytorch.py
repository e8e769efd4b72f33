"""Porting common PyTorch loss and distance snippets to jaxloss, line for line.

Each snippet (residual norms, broadcast all-pairs distances, Hamming distances,
KL divergence, binary and multi-class cross-entropy, a hand-written squared-distance
triplet loss module) is run twice: with PyTorch (and torchmetrics / scikit-learn
where the snippet uses them) and with its ``jaxloss.torch``
translation, which changes only the imports. Both results are printed with the
largest absolute difference. PyTorch is optional: without it only the jaxloss
side runs, and the script says how to install the reference.

    python examples/port_from_pytorch.py
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jaxloss
import jaxloss.torch as jt

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - exercised only without torch
    torch = None


ROWS = []


def compare(title, torch_line, jax_line, torch_fn, jax_fn):
    ours = np.asarray(jax_fn(), dtype=np.float64)
    theirs = None
    if torch is not None:
        out = torch_fn()
        theirs = np.asarray(out.detach().numpy() if hasattr(out, "detach") else out, dtype=np.float64)
    diff = float(np.max(np.abs(ours - theirs))) if theirs is not None else float("nan")
    ROWS.append(diff)
    print(f"\n# {title}")
    print(f"  torch  : {torch_line}")
    print(f"  jaxloss: {jax_line}")
    print(
        f"  torch   -> {np.array2string(theirs, precision=4) if theirs is not None else '(torch not installed)'}"
    )
    print(f"  jaxloss -> {np.array2string(ours, precision=4)}")
    print(f"  max |difference| = {diff:.3g}")


def main():
    label = np.array([[1, 2, 3, 4], [1, 2, 3, 4]])
    pred = np.array([[2, 3, 4, 5], [2, 3, 4, 5]])
    res_t = torch.from_numpy(pred - label).type(torch.FloatTensor) if torch else None
    res_j = jnp.asarray(pred - label, dtype=jnp.float32)

    # --- norms of a residual
    compare(
        "Frobenius norm per sample",
        "torch.norm(r, p='fro', dim=-1)",
        "jt.norm(r, p='fro', dim=-1)",
        lambda: torch.norm(res_t, p="fro", dim=-1),
        lambda: jt.norm(res_j, p="fro", dim=-1),
    )
    compare(
        "2-norm per sample",
        "torch.norm(r, p=2, dim=-1)",
        "jt.norm(r, p=2, dim=-1)",
        lambda: torch.norm(res_t, p=2, dim=-1),
        lambda: jt.norm(res_j, p=2, dim=-1),
    )
    compare(
        "nuclear norm",
        "torch.norm(r, p='nuc')",
        "jt.norm(r, p='nuc')",
        lambda: torch.norm(res_t, p="nuc"),
        lambda: jt.norm(res_j, p="nuc"),
    )
    compare(
        "batch mean of the Frobenius losses",
        "torch.norm(r, p='fro', dim=-1).sum() / N",
        "jt.norm(r, p='fro', dim=-1).sum() / N",
        lambda: torch.norm(res_t, p="fro", dim=-1).sum() / label.shape[0],
        lambda: jt.norm(res_j, p="fro", dim=-1).sum() / label.shape[0],
    )

    # --- all-pairs distances of different-shaped integer sets
    a = np.array([[1, 1, 1], [2, 2, 2]])
    b = np.array([[2, 2, 2], [1, 1, 1], [2, 2, 2], [1, 1, 1], [2, 2, 2]])

    def broadcast_pdist(x, y, p=2):  # a hand-written broadcast p-distance, as often found in PyTorch code
        return (x - y).abs().pow(p).sum(-1).pow(1 / p)

    compare(
        "broadcast Euclidean distances (a hand-written pdist on unsqueezed tensors)",
        "pdist(a.unsqueeze(1), b.unsqueeze(0))",
        "jaxloss.cdist(a, b)",
        lambda: broadcast_pdist(torch.tensor(a).unsqueeze(1), torch.tensor(b).unsqueeze(0)),
        lambda: jaxloss.cdist(a, b),
    )

    # --- Hamming distances: row-matched (torchmetrics) and all-pairs (sklearn, torch.cdist p=0)
    hb = np.array([[0, 0, 1], [0, 1, 0]])
    hc = np.array([[1, 0, 1], [0, 1, 0]])

    def torchmetrics_hamming():
        from torchmetrics.classification import BinaryHammingDistance

        return BinaryHammingDistance(multidim_average="samplewise")(torch.tensor(hb), torch.tensor(hc))

    compare(
        "BinaryHammingDistance(multidim_average='samplewise')(b, c)",
        "BinaryHammingDistance(multidim_average='samplewise')(b, c)",
        "jt.binary_hamming_distance(b, c, multidim_average='samplewise')",
        torchmetrics_hamming,
        lambda: jt.binary_hamming_distance(hb, hc, multidim_average="samplewise"),
    )
    qa = np.array([[0, 0, 2]])
    qb = np.array([[0, 0, 1], [0, 1, 0]])

    def sklearn_hamming():
        from sklearn.metrics import DistanceMetric

        return DistanceMetric.get_metric("hamming").pairwise(qa, qb)

    compare(
        "scikit-learn DistanceMetric('hamming').pairwise(a, b)",
        "DistanceMetric.get_metric('hamming').pairwise(a, b)",
        "jaxloss.cdist(a, b, 'hamming')",
        sklearn_hamming,
        lambda: jaxloss.cdist(qa, qb, "hamming"),
    )
    compare(
        "torch.cdist(p=0): number of unequal coordinates",
        "torch.cdist(a.float(), b.float(), p=0)",
        "jt.cdist(a, b, p=0)",
        lambda: torch.cdist(torch.tensor(qa, dtype=torch.float), torch.tensor(qb, dtype=torch.float), p=0),
        lambda: jt.cdist(jnp.asarray(qa, jnp.float32), jnp.asarray(qb, jnp.float32), p=0),
    )

    # --- KL divergence and cross-entropy
    p = np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]], dtype=np.float32)  # targets P (a zero entry)
    q = np.array([[0.4, 0.4, 0.2], [0.3, 0.3, 0.4]], dtype=np.float32)  # predictions Q
    compare(
        "KL(P || Q), 0 log 0 = 0, batch mean",
        "F.kl_div(q.log(), p, reduction='batchmean')",
        "jt.kl_div(jnp.log(q), p, reduction='batchmean')",
        lambda: F.kl_div(torch.tensor(q).log(), torch.tensor(p), reduction="batchmean"),
        lambda: jt.kl_div(jnp.log(q), p, reduction="batchmean"),
    )
    y = np.array([1.0, 0.0, 1.0, 0.0], dtype=np.float32)
    yhat = np.array([0.9, 0.2, 0.6, 0.4], dtype=np.float32)
    compare(
        "binary cross-entropy J",
        "F.binary_cross_entropy(yhat, y)",
        "jt.binary_cross_entropy(yhat, y)",
        lambda: F.binary_cross_entropy(torch.tensor(yhat), torch.tensor(y)),
        lambda: jt.binary_cross_entropy(yhat, y),
    )
    logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], dtype=np.float32)
    classes = np.array([0, 2])
    compare(
        "multi-class cross-entropy, mean over N",
        "F.cross_entropy(logits, y)",
        "jt.cross_entropy(logits, y)",
        lambda: F.cross_entropy(torch.tensor(logits), torch.tensor(classes)),
        lambda: jt.cross_entropy(logits, classes),
    )

    # --- a hand-written triplet loss module (margin 0.2, squared distances)
    r = np.random.default_rng(0)
    anc, pos, neg = (r.normal(size=(8, 16)).astype(np.float32) for _ in range(3))

    def squared_triplet_torch():
        at, pt, nt = (torch.tensor(v) for v in (anc, pos, neg))
        pos_dist = (at - pt).pow(2).sum(1)
        neg_dist = (at - nt).pow(2).sum(1)
        return F.relu(pos_dist - neg_dist + 0.2).mean()

    compare(
        "squared-distance triplet loss: relu(|a-p|^2 - |a-n|^2 + 0.2).mean()",
        "triplet_loss()(a, p, n)",
        "jaxloss.triplet_margin_loss(a, p, n, margin=0.2, squared=True, eps=0).mean()",
        squared_triplet_torch,
        lambda: jaxloss.triplet_margin_loss(anc, pos, neg, margin=0.2, squared=True, eps=0.0).mean(),
    )
    compare(
        "PyTorch's own triplet loss",
        "F.triplet_margin_loss(a, p, n, margin=0.2)",
        "jt.triplet_margin_loss(a, p, n, margin=0.2)",
        lambda: F.triplet_margin_loss(*(torch.tensor(v) for v in (anc, pos, neg)), margin=0.2),
        lambda: jt.triplet_margin_loss(anc, pos, neg, margin=0.2),
    )

    print()
    if torch is None:
        print(
            "PyTorch is not installed, so only jaxloss's side ran. Install the references with\n"
            "    pip install torch==2.13.0 torchmetrics scikit-learn\nand run this script again."
        )
    else:
        print(f"{len(ROWS)} snippets ported; largest difference from PyTorch: {max(ROWS):.3g}")
    return ROWS


if __name__ == "__main__":
    main()
