"""Tests of PyTorch's pair losses (``jaxloss/_pair_losses.py``) through ``jaxloss.torch``.

Reference: torch.nn.functional's cosine_embedding_loss, margin_ranking_loss and
hinge_embedding_loss, values and gradients.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss.torch as jt
from tests.helpers import assert_matches_torch, rng


@pytest.mark.parametrize("margin", [0.0, 0.3, -0.5])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_torch_cosine_embedding_loss(margin, reduction):
    r = rng(21)
    a, b = r.normal(size=(8, 3)), r.normal(size=(8, 3))
    y = np.array([1, -1, 1, -1, 0, 2, 1, -1])
    assert_matches_torch(
        lambda a, b, y: jt.cosine_embedding_loss(a, b, y, margin=margin, reduction=reduction),
        lambda a, b, y: F.cosine_embedding_loss(a, b, y, margin=margin, reduction=reduction),
        a,
        b,
        y,
    )
    assert_matches_torch(
        lambda a, b: jt.cosine_embedding_loss(a, b, np.array(-1), margin=margin),
        lambda a, b: F.cosine_embedding_loss(a, b, torch.tensor(-1), margin=margin),
        a[0],
        b[0],
    )


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_torch_margin_ranking_and_hinge_embedding(reduction):
    r = rng(22)
    x1, x2 = r.normal(size=10), r.normal(size=10)
    y = np.array([1.0, -1.0] * 5)
    fn = jax.jit(lambda a, b, y: jt.margin_ranking_loss(a, b, y, margin=0.2, reduction=reduction))
    assert_matches_torch(
        fn,
        lambda a, b, y: F.margin_ranking_loss(a, b, y, margin=0.2, reduction=reduction),
        x1,
        x2,
        y,
    )
    y3 = np.array([1.0, -1.0, 0.0, 2.0, 1.0] * 2)
    fn = jax.jit(lambda a, y: jt.hinge_embedding_loss(a, y, margin=0.7, reduction=reduction))
    assert_matches_torch(
        fn,
        lambda a, y: F.hinge_embedding_loss(a, y, margin=0.7, reduction=reduction),
        np.abs(x1),
        y3,
        argnums=[0],
    )
