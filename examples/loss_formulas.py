"""The classic loss and distance formulas, worked on small inputs with jaxloss.

Each line prints the jaxloss result next to the number computed by hand (or the
number PyTorch / torchmetrics / scikit-learn print for the same snippet):

* norms of a prediction residual ``pred - label``: per-row Frobenius and 2-norms
  ``||r_i||_2``, the nuclear norm ``||R||_* = tr(sqrt(R^T R)) = sum_k sigma_k``, and the
  batch mean ``1/N sum_i ||r_i||``;
* all-pairs Euclidean distances ``D_ij = ||a_i - b_j||_2`` of two sets of different sizes,
  and Hamming distances (fraction of differing entries, ``torch.cdist(p=0)`` counts them);
* ``KL(P||Q) = sum_i P_i ln(P_i / Q_i)`` with ``0 log 0 = 0``, ``H(p, q) = H(p) + KL(p||q)``,
  the binary cross-entropy ``J = -1/N sum [y log y^ + (1 - y) log(1 - y^)]`` and the
  multi-class cross-entropy ``L = -1/N sum_i sum_j y_ij log y^_ij``;
* the triplet loss with squared distances and margin 0.2,
  ``max(||a - p||^2 - ||a - n||^2 + 0.2, 0)`` and its batch mean.

``metric_learning_digits.py`` trains a model; this script only evaluates formulas.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jaxloss
import jaxloss.torch as jt


def show(title, value, expected):
    value = np.asarray(value)
    print(f"{title:<48} {np.array2string(value, precision=4):<28} (expected: {expected})")


def norms():
    print("== Norms of a prediction residual (torch.norm) ==")
    label = np.array([[1, 2, 3, 4], [1, 2, 3, 4]])
    pred = np.array([[2, 3, 4, 5], [2, 3, 4, 5]])
    residual = jnp.asarray(pred - label, dtype=jnp.float32)
    show("Frobenius norm per row  norm(p='fro', dim=-1)", jt.norm(residual, p="fro", dim=-1), "[2., 2.]")
    show("2-norm per row          norm(p=2, dim=-1)", jt.norm(residual, p=2, dim=-1), "[2., 2.]")
    show("nuclear norm            norm(p='nuc')", jt.norm(residual, p="nuc"), "2.8284")
    batch_mean = jt.norm(residual, p="fro", dim=-1).sum() / label.shape[0]
    show("batch mean of row Frobenius norms", batch_mean, "2.")
    show(
        "batch mean of row 2-norms (jaxloss.reduce)",
        jaxloss.reduce(jaxloss.vector_norm(residual, axis=-1)),
        "2.",
    )
    show("core nuclear_norm", jaxloss.nuclear_norm(residual), "2.8284")


def divergences():
    print("== KL divergence, cross-entropy, binary and multi-class cross-entropy ==")
    p = jnp.array([0.5, 0.5, 0.0])  # P: the true distribution (a zero probability: 0 log 0 = 0)
    q = jnp.array([0.25, 0.5, 0.25])  # Q: the model
    kl = jaxloss.kl_divergence(jnp.log(q), p)
    show("KL(P||Q) = sum P ln(P/Q)", kl, "ln 2 - ln 2 / 2 = 0.3466, >= 0")
    show("KL(P||P) (0 log 0 = 0)", jaxloss.kl_divergence(jnp.log(p), p), "0")
    h_pq = jaxloss.cross_entropy(q, p)
    h_p = jaxloss.entropy(p)
    show("H(p, q) = -sum p log q", h_pq, "H(p) + KL(p||q)")
    show("H(p) + KL(p||q)", h_p + kl, f"{float(h_pq):.4f}")
    y = jnp.array([1.0, 0.0, 1.0, 0.0])  # binary labels
    y_hat = jnp.array([0.9, 0.2, 0.6, 0.4])  # predicted probabilities
    J = jaxloss.binary_cross_entropy(y_hat, y).mean()
    manual = -np.mean(np.asarray(y * jnp.log(y_hat) + (1 - y) * jnp.log(1 - y_hat)))
    show("J = -1/N sum [y log y^ + (1-y) log(1-y^)]", J, f"{manual:.4f}")
    torch_j = jt.binary_cross_entropy(y_hat, y)
    show("J via jaxloss.torch.binary_cross_entropy", torch_j, f"{manual:.4f}")
    labels = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])  # one-hot y^(i)
    probs = jnp.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])  # predicted y^^(i)
    L = jaxloss.cross_entropy(probs, labels).mean()
    manual = -(np.log(0.7) + np.log(0.6)) / 2
    show("L = -1/N sum_i sum_j y_j log y^_j", L, f"{manual:.4f}")
    logits = jnp.log(probs)
    torch_l = jt.cross_entropy(logits, jnp.array([1, 0]))
    show("L via jaxloss.torch.cross_entropy(logits, idx)", torch_l, f"{manual:.4f}")


def triplet():
    print("== Triplet loss, squared distances, margin 0.2 ==")
    anchor = jnp.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    positive = jnp.array([[0.1, 0.0], [1.0, 0.5], [0.0, 0.0]])
    negative = jnp.array([[0.3, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # relu(||a - p||^2 - ||a - n||^2 + 0.2) per triplet, then the batch mean
    pos = ((anchor - positive) ** 2).sum(1)
    neg = ((anchor - negative) ** 2).sum(1)
    by_hand = np.maximum(pos - neg + 0.2, 0)
    per_triplet = jaxloss.triplet_margin_loss(anchor, positive, negative, margin=0.2, eps=0.0, squared=True)
    expected = np.array2string(by_hand, precision=4)
    show("per triplet  triplet_margin_loss(squared=True)", per_triplet, expected)
    show("batch mean   per_triplet.mean()", per_triplet.mean(), f"{by_hand.mean():.4f}")
    labels = jnp.array([0, 1, 0, 1])
    emb = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 2.0]])
    hard = jaxloss.batch_hard_triplet_loss(emb, labels, margin=0.2, squared=True)
    show("in-batch batch_hard_triplet_loss(margin=0.2)", hard, "mined in the batch")


def distances():
    print("== All-pairs and row-matched distances (cdist, Hamming) ==")
    a = jnp.array([[1, 1, 1], [2, 2, 2]])
    b = jnp.array([[2, 2, 2], [1, 1, 1], [2, 2, 2], [1, 1, 1], [2, 2, 2]])
    show(
        "broadcast Euclidean matrix  cdist(a, b)",
        jaxloss.cdist(a, b),
        "[[1.7321, 0., 1.7321, 0., 1.7321], [0., 1.7321, 0., 1.7321, 0.]]",
    )
    preds = jnp.array([[0, 0, 1], [0, 1, 0]])
    target = jnp.array([[1, 0, 1], [0, 1, 0]])
    samplewise = jt.binary_hamming_distance(preds, target, multidim_average="samplewise")
    show("BinaryHammingDistance samplewise", samplewise, "[0.3333, 0.0000]")
    rowmatched = jaxloss.pairwise_distance(preds, target, "hamming")
    show("row-matched hamming  pairwise_distance", rowmatched, "[0.3333, 0.0000]")
    query = jnp.array([[0, 0, 2]])
    database = jnp.array([[0, 0, 1], [0, 1, 0]])
    allpairs = jaxloss.cdist(query, database, "hamming")
    show("DistanceMetric('hamming')  cdist(metric='hamming')", allpairs, "[[0.3333, 0.6667]]")
    show(
        "torch.cdist(p=0)",
        jt.cdist(query.astype(jnp.float32), database.astype(jnp.float32), p=0),
        "[[1., 2.]]",
    )


def main():
    norms()
    distances()
    divergences()
    triplet()


if __name__ == "__main__":
    main()
