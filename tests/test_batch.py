"""Tests of the labelled-batch helpers (``jaxloss/_batch.py``): the label masks of in-batch mining.

Reference: loops over all pairs and triplets. The mining sets (references,
``axis_name``) are tested through the losses that use them
(tests/test_metric_learning.py, tests/test_pair_mining.py).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jaxloss


def test_masks_match_loops():
    labels = np.array([0, 1, 0, 2, 1, 0])
    pos, neg, trip = (
        np.asarray(f(jnp.asarray(labels)))
        for f in (jaxloss.positive_mask, jaxloss.negative_mask, jaxloss.triplet_mask)
    )
    n = len(labels)
    for i in range(n):
        for j in range(n):
            assert pos[i, j] == (i != j and labels[i] == labels[j])
            assert neg[i, j] == (labels[i] != labels[j])
            for k in range(n):
                assert trip[i, j, k] == (pos[i, j] and labels[k] != labels[i])
