"""Pair-mining losses (``jaxloss/_pair_mining.py``) against pytorch-metric-learning 2.9.

References: pytorch-metric-learning's ``MultiSimilarityLoss`` and ``CircleLoss``
in float64, values and gradients with respect to the embeddings (and the
references, ``ref_emb``). Across devices: tests/test_metric_learning.py's
four-device mining check.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses as pml

import jaxloss

RTOL = 1e-9
SLOW = pytest.mark.slow


def _pair_case(fn, module, seed, n=24, classes=5):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, 6))
    y = r.integers(0, classes, size=n)
    y[0] = 99  # an anchor without a positive
    xt = torch.tensor(x, requires_grad=True)
    loss = module(xt, torch.tensor(y))
    (gt,) = torch.autograd.grad(loss, [xt])
    value, grad = jax.jit(jax.value_and_grad(fn))(jnp.asarray(x), jnp.asarray(y))
    np.testing.assert_allclose(value, loss.item(), rtol=RTOL)
    np.testing.assert_allclose(grad, gt.numpy(), rtol=RTOL, atol=RTOL * float(gt.abs().max()))


@pytest.mark.parametrize("seed", [17, pytest.param(18, marks=SLOW)])
def test_multi_similarity_matches_pytorch_metric_learning(seed):
    def fn(x, y):
        return jnp.mean(jaxloss.multi_similarity_loss(x, y, alpha=2.0, beta=50.0, base=0.5))

    _pair_case(fn, pml.MultiSimilarityLoss(alpha=2, beta=50, base=0.5), seed)


@pytest.mark.parametrize("seed", [19, pytest.param(20, marks=SLOW)])
def test_circle_matches_pytorch_metric_learning(seed):
    def fn(x, y):
        loss = jaxloss.circle_loss(x, y, margin=0.4, gamma=80.0)
        return jnp.sum(loss) / jnp.maximum(jnp.count_nonzero(loss), 1)

    _pair_case(fn, pml.CircleLoss(m=0.4, gamma=80), seed)


def _reference_case(fn, module, seed, n=12, m=15, classes=4):
    """``fn(x, refs)`` against ``module(x, y, None, refs, ref_y)`` (pytorch-metric-learning's
    ``ref_emb``): values and gradients with respect to both. The first three references are
    copies of anchors (normal candidates), and anchor 0 has no positive among the references."""
    r = np.random.default_rng(seed)
    x, refs = r.normal(size=(n, 6)), r.normal(size=(m, 6))
    y, ref_y = r.integers(0, classes, size=n), r.integers(0, classes, size=m)
    refs[:3], ref_y[:3] = x[1:4], y[1:4]
    y[0] = 99
    xt, rt = torch.tensor(x, requires_grad=True), torch.tensor(refs, requires_grad=True)
    loss = module(xt, torch.tensor(y), None, rt, torch.tensor(ref_y))
    gt = torch.autograd.grad(loss, [xt, rt])
    value, grads = jax.jit(
        jax.value_and_grad(lambda a, b: fn(a, jnp.asarray(y), b, jnp.asarray(ref_y)), argnums=(0, 1))
    )(jnp.asarray(x), jnp.asarray(refs))
    np.testing.assert_allclose(value, loss.item(), rtol=RTOL)
    for g, t in zip(grads, gt, strict=True):
        np.testing.assert_allclose(g, t.numpy(), rtol=RTOL, atol=RTOL * float(t.abs().max()))


@pytest.mark.parametrize("seed", [40, pytest.param(41, marks=SLOW)])
def test_multi_similarity_with_references_matches_pytorch_metric_learning(seed):
    def fn(x, y, refs, ref_y):
        return jnp.mean(jaxloss.multi_similarity_loss(x, y, ref_embeddings=refs, ref_labels=ref_y))

    _reference_case(fn, pml.MultiSimilarityLoss(alpha=2, beta=50, base=0.5), seed)


@pytest.mark.parametrize("seed", [42, pytest.param(43, marks=SLOW)])
def test_circle_with_references_matches_pytorch_metric_learning(seed):
    def fn(x, y, refs, ref_y):
        loss = jaxloss.circle_loss(x, y, margin=0.4, gamma=80.0, ref_embeddings=refs, ref_labels=ref_y)
        return jnp.sum(loss) / jnp.maximum(jnp.count_nonzero(loss), 1)

    _reference_case(fn, pml.CircleLoss(m=0.4, gamma=80), seed)


@pytest.mark.slow
def test_pair_losses_against_no_reference_are_zero():
    x = jnp.asarray(np.random.default_rng(44).normal(size=(5, 3)))
    y = jnp.array([0, 1, 1, 2, 2])
    for fn in (jaxloss.multi_similarity_loss, jaxloss.circle_loss):
        out = fn(x, y, ref_embeddings=x[:0], ref_labels=y[:0])
        assert out.shape == (5,) and float(jnp.abs(out).sum()) == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(21, 25))
def test_pair_losses_sweep(seed):
    for classes in (2, 8):
        _pair_case(
            lambda x, y: jnp.mean(jaxloss.multi_similarity_loss(x, y, alpha=3.0, beta=20.0, base=0.3)),
            pml.MultiSimilarityLoss(alpha=3, beta=20, base=0.3),
            seed,
            n=30,
            classes=classes,
        )

        def circle(x, y):
            loss = jaxloss.circle_loss(x, y, margin=0.25, gamma=32.0)
            return jnp.sum(loss) / jnp.maximum(jnp.count_nonzero(loss), 1)

        _pair_case(circle, pml.CircleLoss(m=0.25, gamma=32), seed, n=30, classes=classes)


@pytest.mark.slow
def test_rows_without_positive_or_negative_give_zero():
    x = jnp.asarray(np.random.default_rng(25).normal(size=(5, 3)))
    y = jnp.array([0, 1, 1, 2, 2])
    assert float(jaxloss.circle_loss(x, y)[0]) == 0.0
    assert float(jaxloss.circle_loss(x, jnp.zeros(5, jnp.int32)).sum()) == 0.0
    ms = jaxloss.multi_similarity_loss(x, jnp.zeros(5, jnp.int32))
    assert bool(jnp.all(jnp.isfinite(ms)))
