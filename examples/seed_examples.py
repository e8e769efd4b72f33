"""The seed notes' examples, computed with jaxloss (the README's first command).

Each block prints the jaxloss result next to the number the seed notes print.
A later example (metric_learning_digits.py) trains a model; this one only checks
that every formula of the seed works here.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

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


def distances():
    print("== All-pairs and row-matched distances (cdist, Hamming) ==")
    a = jnp.array([[1, 1, 1], [2, 2, 2]])
    b = jnp.array([[2, 2, 2], [1, 1, 1], [2, 2, 2], [1, 1, 1], [2, 2, 2]])
    show("broadcast Euclidean matrix  cdist(a, b)", jaxloss.cdist(a, b),
         "[[1.7321, 0., 1.7321, 0., 1.7321], [0., 1.7321, 0., 1.7321, 0.]]")
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
    show("torch.cdist(p=0)", jt.cdist(query.astype(jnp.float32), database.astype(jnp.float32), p=0),
         "[[1., 2.]]")


def main():
    norms()
    distances()


if __name__ == "__main__":
    main()
