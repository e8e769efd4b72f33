"""Batch-hard mining against a memory of earlier embeddings (cross-batch memory), with Flax NNX.

With a small batch, in-batch mining sees few positives and negatives per
anchor: the hardest ones it finds are not very hard. Cross-batch memory
(Wang et al., "Cross-Batch Memory for Embedding Learning", CVPR 2020) keeps
the embeddings of the last few hundred training images in a fixed-size ring
buffer and mines each anchor's hardest positive and negative among the batch
and the buffer: ``jaxloss.batch_hard_triplet_loss(..., ref_embeddings=,
ref_labels=)`` (pytorch-metric-learning's ``ref_emb`` / ``ref_labels``). The
buffer holds earlier embeddings without their graph (a ``stop_gradient``);
the gradient reaches the batch through both its anchors and its own
references.

The buffer is ``jaxloss.EmbeddingQueue``, a pytree of fixed shape updated by
the pure function ``jaxloss.queue_push``, so the whole step (model, optimizer
and buffer) is one ``nnx.jit``; it starts full (a first push of ``--memory``
training images), so every row is a real sample and none needs masking. The script trains the same small MLP on scikit-learn's
``load_digits`` twice, with in-batch mining only and with the memory, and
prints precision@1 and mAP@R of the held-out digits before and after. With
a batch of 4 (2 classes x 2 images) and a memory of 64, the memory run ended
with the higher mAP@R for seeds 0, 1 and 2 (0.65 -> 0.72, 0.69 -> 0.70,
0.65 -> 0.69; precision@1 about the same), in a few seconds on a CPU.

    python examples/cross_batch_memory.py
    python examples/cross_batch_memory.py --memory 256 --batch-classes 4 --steps 600
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

# --------------------------------------------------------------------------- model and data


class Embedder(nnx.Module):
    """64 -> 128 -> dim MLP with L2-normalised output."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(64, 128, rngs=rngs)
        self.l2 = nnx.Linear(128, dim, rngs=rngs)

    def __call__(self, x):
        z = self.l2(jax.nn.relu(self.l1(x)))
        return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def load_data(seed: int):
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    return train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)


def evaluate(model, x, y):
    """precision@1 and mAP@R of held-out digits retrieving each other (the query excluded)."""
    emb = model(jnp.asarray(x))
    labels = jnp.asarray(y)
    _, idx = jaxloss.knn(emb, emb, int(np.bincount(y).max()) + 1)
    p1 = jaxloss.precision_at_k(idx, labels, labels, 1, exclude_self=True).mean()  # every digit recurs
    map_r = jaxloss.mean_average_precision_at_r(idx, labels, labels, exclude_self=True).mean()
    return float(p1), float(map_r)


# --------------------------------------------------------------------------- training


def train(args, x_train, y_train, x_test, y_test, *, memory: bool):
    model = Embedder(args.dim, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(args.lr), wrt=nnx.Param)
    rng = np.random.default_rng(args.seed)  # the batches: the same for both runs
    # warm start: the untrained model's embeddings of `memory` random training images
    start = np.random.default_rng(args.seed + 1).choice(len(x_train), size=args.memory, replace=False)
    first = model(jnp.asarray(x_train[start]))
    buffer = jaxloss.queue_push(jaxloss.queue_init(len(start), first.shape[1]), first, y_train[start])

    @nnx.jit
    def step(model, optimizer, buffer, xb, yb):
        def objective(m):
            e = m(xb)
            if not memory:
                return jaxloss.batch_hard_triplet_loss(e, yb, margin=args.margin)
            refs = jnp.concatenate([e, jax.lax.stop_gradient(buffer.embeddings)])
            ref_labels = jnp.concatenate([yb, buffer.labels])
            loss = jaxloss.batch_hard_triplet_loss(
                e, yb, margin=args.margin, ref_embeddings=refs, ref_labels=ref_labels
            )
            return loss, e

        if memory:
            (loss, e), grads = nnx.value_and_grad(objective, has_aux=True)(model)
            buffer = jaxloss.queue_push(buffer, e, yb)
        else:
            loss, grads = nnx.value_and_grad(objective)(model)
        optimizer.update(model, grads)
        return loss, buffer

    before = evaluate(model, x_test, y_test)
    classes = np.unique(y_train)
    by_class = [np.flatnonzero(y_train == c) for c in classes]
    tic = time.perf_counter()
    for _ in range(args.steps):
        chosen = rng.choice(len(classes), size=args.batch_classes, replace=False)
        idx = np.concatenate([rng.choice(by_class[c], size=args.per_class, replace=False) for c in chosen])
        loss, buffer = step(model, optimizer, buffer, jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]))
    seconds = time.perf_counter() - tic
    return {
        "before": before,
        "after": evaluate(model, x_test, y_test),
        "loss": float(loss),
        "seconds": seconds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--memory", type=int, default=64, help="ring buffer size")
    parser.add_argument("--batch-classes", type=int, default=2, help="classes per batch")
    parser.add_argument("--per-class", type=int, default=2, help="images per class in a batch")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--margin", type=float, default=0.2)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    data = load_data(args.seed)
    x_train, x_test, y_train, y_test = data
    results = {}
    for name, memory in (("in-batch", False), (f"memory {args.memory}", True)):
        results[name] = train(args, x_train, y_train, x_test, y_test, memory=memory)
    batch = args.batch_classes * args.per_class
    print(f"batch-hard triplet loss, batch of {batch} ({args.steps} steps), held-out digits ({len(y_test)})")
    print(f"{'mining':<16}{'p@1 before':>12}{'p@1 after':>12}{'mAP@R before':>14}{'mAP@R after':>13}{'s':>7}")
    for name, r in results.items():
        (p0, m0), (p1, m1) = r["before"], r["after"]
        print(f"{name:<16}{p0:>12.3f}{p1:>12.3f}{m0:>14.3f}{m1:>13.3f}{r['seconds']:>7.1f}")
    return results


if __name__ == "__main__":
    main()
