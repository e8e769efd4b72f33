"""Metric learning on handwritten digits with a Flax NNX network and jaxloss.

The main demonstration of jaxloss (the README's first command). A small MLP maps
8x8 digit images (scikit-learn's ``load_digits``, shipped with the package) to
32-d unit-norm embeddings and is trained with optax Adam on an in-batch mined
triplet loss, with a class-balanced batch sampler (P classes x K images per
batch), the whole training step compiled with ``nnx.jit``. Before and after
training, the held-out digits are embedded, searched with ``jaxloss.knn`` and
scored with precision@1 and mAP@R (pytorch-metric-learning's definitions); a
PNG shows a 2-D PCA projection of the held-out embeddings before and after.

    python examples/metric_learning_digits.py                  # batch-hard triplet loss
    python examples/metric_learning_digits.py --loss semi_hard
    python examples/metric_learning_digits.py --loss squared_triplet --steps 800

Losses: ``batch_hard`` (default), ``batch_all``, ``semi_hard``, ``supcon``
(supervised contrastive) and ``squared_triplet`` (the triplet loss on squared
distances with margin 0.2, max(||a - p||^2 - ||a - n||^2 + 0.2, 0), on one randomly
drawn positive and negative per anchor instead of mined ones; Schroff et al., FaceNet, 2015).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import jaxloss

LOSSES = ("batch_hard", "batch_all", "semi_hard", "supcon", "squared_triplet")


# --------------------------------------------------------------------------- model


class Embedder(nnx.Module):
    """64 -> 128 -> 128 -> dim MLP with L2-normalised output."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(64, 128, rngs=rngs)
        self.l2 = nnx.Linear(128, 128, rngs=rngs)
        self.l3 = nnx.Linear(128, dim, rngs=rngs)

    def __call__(self, x):
        h = jax.nn.relu(self.l1(x))
        h = jax.nn.relu(self.l2(h))
        z = self.l3(h)
        return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


# --------------------------------------------------------------------------- data


def load_data(seed: int):
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    return train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)


class BalancedSampler:
    """Draws batches of ``classes_per_batch`` classes x ``per_class`` images each."""

    def __init__(self, labels, classes_per_batch: int, per_class: int, seed: int):
        self.by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        self.p, self.k = classes_per_batch, per_class
        self.rng = np.random.default_rng(seed)

    def __call__(self):
        classes = self.rng.choice(len(self.by_class), size=self.p, replace=False)
        idx = [self.rng.choice(self.by_class[c], size=self.k, replace=False) for c in classes]
        return np.concatenate(idx)


# --------------------------------------------------------------------------- losses


def make_loss(name: str, margin: float):
    if name == "batch_hard":
        return lambda e, y, key: jaxloss.batch_hard_triplet_loss(e, y, margin=margin)
    if name == "batch_all":
        return lambda e, y, key: jaxloss.batch_all_triplet_loss(e, y, margin=margin)
    if name == "semi_hard":
        return lambda e, y, key: jaxloss.semi_hard_triplet_loss(e, y, margin=margin)
    if name == "supcon":
        return lambda e, y, key: jaxloss.supervised_contrastive_loss(e, y, temperature=0.1)
    if name == "squared_triplet":
        return squared_triplet_loss
    raise ValueError(f"--loss must be one of {LOSSES}; got {name!r}")


def squared_triplet_loss(embeddings, labels, key):
    """Mean of max(||a-p||^2 - ||a-n||^2 + 0.2, 0) over one random triplet per anchor."""
    same = labels[:, None] == labels[None, :]
    not_self = ~jnp.eye(labels.shape[0], dtype=bool)
    kp, kn = jax.random.split(key)
    # a random positive and a random negative per anchor (Gumbel-max over the allowed columns)
    pos = jnp.argmax(jnp.where(same & not_self, jax.random.gumbel(kp, same.shape), -jnp.inf), axis=1)
    neg = jnp.argmax(jnp.where(~same, jax.random.gumbel(kn, same.shape), -jnp.inf), axis=1)
    losses = jaxloss.triplet_margin_loss(
        embeddings, embeddings[pos], embeddings[neg], margin=0.2, squared=True, eps=0.0
    )
    return losses.mean()


# --------------------------------------------------------------------------- evaluation


def evaluate(model, x, y):
    """precision@1 and mAP@R of held-out digits retrieving each other (the query excluded)."""
    emb = model(jnp.asarray(x))
    labels = jnp.asarray(y)
    max_r = int(np.bincount(y).max())
    # the query is its own nearest neighbour: ask for one more and let exclude_self drop it
    _, idx = jaxloss.knn(emb, emb, max_r + 1, metric="euclidean")
    p1 = jaxloss.precision_at_k(idx, labels, labels, 1, exclude_self=True).mean()  # every digit recurs
    map_r = jaxloss.mean_average_precision_at_r(idx, labels, labels, exclude_self=True).mean()
    return float(p1), float(map_r), np.asarray(emb)


def pca_2d(embeddings):
    centred = embeddings - embeddings.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def save_plot(path, before, after, labels, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, emb, name in zip(axes, (before, after), ("before training", "after training"), strict=True):
        pts = pca_2d(emb)
        sc = ax.scatter(pts[:, 0], pts[:, 1], c=labels, cmap="tab10", s=8, vmin=-0.5, vmax=9.5)
        ax.set_title(f"held-out digits, {name}")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(sc, ax=axes, ticks=range(10), label="digit")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------- training


def train(args):
    from tqdm.auto import tqdm

    x_train, x_test, y_train, y_test = load_data(args.seed)
    model = Embedder(args.dim, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(args.lr), wrt=nnx.Param)
    loss_fn = make_loss(args.loss, args.margin)

    @nnx.jit
    def train_step(model, optimizer, xb, yb, key):
        def objective(m):
            return loss_fn(m(xb), yb, key)

        loss, grads = nnx.value_and_grad(objective)(model)
        optimizer.update(model, grads)
        return loss

    p1_before, map_before, emb_before = evaluate(model, x_test, y_test)
    sampler = BalancedSampler(y_train, args.classes_per_batch, args.per_class, args.seed)
    key = jax.random.key(args.seed)
    running = None
    start = time.perf_counter()
    bar = tqdm(range(args.steps), desc=f"training ({args.loss})", disable=args.no_progress)
    for step in bar:
        idx = sampler()
        key, sub = jax.random.split(key)
        loss = float(train_step(model, optimizer, jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]), sub))
        running = loss if running is None else 0.95 * running + 0.05 * loss
        if step % 10 == 0 or step == args.steps - 1:
            bar.set_postfix(loss=f"{running:.4f}")
    seconds = time.perf_counter() - start
    p1_after, map_after, emb_after = evaluate(model, x_test, y_test)
    return {
        "p1": (p1_before, p1_after),
        "map_r": (map_before, map_after),
        "final_loss": running,
        "seconds": seconds,
        "embeddings": (emb_before, emb_after),
        "labels": y_test,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loss", choices=LOSSES, default="batch_hard")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--margin", type=float, default=0.2)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--classes-per-batch", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", default="metric_learning_digits.png", help="PNG path ('' for none)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    result = train(args)
    (b1, a1), (bm, am) = result["p1"], result["map_r"]
    print()
    print(
        f"loss: {args.loss}, {args.steps} steps in {result['seconds']:.1f} s, final running loss "
        f"{result['final_loss']:.4f}"
    )
    heading = f"held-out digits ({len(result['labels'])})"
    print(f"{heading:<24}{'untrained':>12}{'trained':>12}")
    print(f"{'precision@1':<24}{b1:>12.3f}{a1:>12.3f}")
    print(f"{'mAP@R':<24}{bm:>12.3f}{am:>12.3f}")
    if args.plot:
        save_plot(
            args.plot,
            *result["embeddings"],
            result["labels"],
            f"jaxloss {args.loss}: precision@1 {b1:.3f} -> {a1:.3f}, mAP@R {bm:.3f} -> {am:.3f}",
        )
        print(f"saved {args.plot}")
    return result


if __name__ == "__main__":
    main()
