"""The seed notes' examples, computed with jaxloss (the README's first command).

Each block prints the jaxloss result next to the number the seed notes print.
A later example (metric_learning_digits.py) trains a model; this one only checks
that every formula of the seed works here.
"""

from __future__ import annotations

import numpy as np

import jax.numpy as jnp

import jaxloss
import jaxloss.torch as jt


def show(title, value, expected):
    value = np.asarray(value)
    print(f"{title:<48} {np.array2string(value, precision=4):<28} (seed: {expected})")


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
    show("batch mean of row 2-norms (jaxloss.reduce)", jaxloss.reduce(jaxloss.vector_norm(residual, axis=-1)), "2.")
    show("core nuclear_norm", jaxloss.nuclear_norm(residual), "2.8284")


def triplet():
    print("== Triplet loss, squared distances, margin 0.2 (the seed's triplet_loss module) ==")
    anchor = jnp.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    positive = jnp.array([[0.1, 0.0], [1.0, 0.5], [0.0, 0.0]])
    negative = jnp.array([[0.3, 0.0], [0.0, 1.0], [1.0, 1.0]])
    # seed: relu(||p - q||^2 - ||p - r||^2 + 0.2), then .mean()
    pos = ((anchor - positive) ** 2).sum(1)
    neg = ((anchor - negative) ** 2).sum(1)
    by_hand = np.maximum(pos - neg + 0.2, 0)
    per_triplet = jaxloss.triplet_margin_loss(
        anchor, positive, negative, margin=0.2, eps=0.0, squared=True
    )
    expected = np.array2string(by_hand, precision=4)
    show("per triplet  triplet_margin_loss(squared=True)", per_triplet, expected)
    show("batch mean   (the seed's loss.mean())", per_triplet.mean(), f"{by_hand.mean():.4f}")
    labels = jnp.array([0, 1, 0, 1])
    emb = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 2.0]])
    hard = jaxloss.batch_hard_triplet_loss(emb, labels, margin=0.2, squared=True)
    show("in-batch batch_hard_triplet_loss(margin=0.2)", hard, "mined in the batch")


def main():
    norms()
    triplet()


if __name__ == "__main__":
    main()
