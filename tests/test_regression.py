"""Residual losses (core and PyTorch face) against torch.nn.functional and optax."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F

import jaxloss
import jaxloss.torch as jt
from tests.helpers import assert_matches_torch_eager as assert_matches_torch
from tests.helpers import rng, sweep

REDUCTIONS = ["none", "mean", "sum"]


def _pair(shape_a=(4, 5), shape_b=(4, 5), ties=True, seed=0):
    r = rng(seed)
    a, b = r.normal(size=shape_a), r.normal(size=shape_b)
    if ties and shape_a == shape_b:
        b.flat[::3] = a.flat[::3]  # exact ties: PyTorch's subgradient 0 for |.|
    return a, b


@pytest.mark.parametrize("reduction", sweep(["mean", "none", "sum"]))
@pytest.mark.parametrize("shapes", sweep([((4, 5), (4, 5)), ((3, 1, 2), (4, 2)), ((4, 5), (5,))]))
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss"])
def test_mse_and_l1_match_torch(variant, reduction, shapes, name):
    a, b = _pair(*shapes)
    fn = variant(getattr(jt, name), reduction=reduction)
    ref = getattr(F, name)
    assert_matches_torch(fn, lambda x, y: ref(x, y, reduction=reduction), a, b)


@pytest.mark.parametrize("reduction", sweep(["mean", "none", "sum"]))
@pytest.mark.parametrize("beta", sweep([1.0, 0.0, 0.5], 2))
def test_smooth_l1_matches_torch(variant, reduction, beta):
    a, b = _pair(seed=1)
    b[0, 0] = a[0, 0] + beta  # exactly at the threshold
    fn = variant(jt.smooth_l1_loss, reduction=reduction, beta=beta)
    assert_matches_torch(fn, lambda x, y: F.smooth_l1_loss(x, y, reduction=reduction, beta=beta), a, b)


@pytest.mark.parametrize("reduction", sweep(["mean", "none", "sum"]))
@pytest.mark.parametrize("delta", sweep([0.3, 1.0, 2.5]))
def test_huber_matches_torch(variant, reduction, delta):
    a, b = _pair(seed=2)
    b[0, 0] = a[0, 0] - delta
    fn = variant(jt.huber_loss, reduction=reduction, delta=delta)
    assert_matches_torch(fn, lambda x, y: F.huber_loss(x, y, reduction=reduction, delta=delta), a, b)


@pytest.mark.parametrize("reduction", sweep(["mean", "sum", "none"], 2))
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
def test_weighted_residual_losses_match_torch(reduction, name):
    a, b = _pair(seed=3)
    w = rng(4).uniform(0.1, 2.0, size=a.shape)
    assert_matches_torch(
        lambda x, y, ww: getattr(jt, name)(x, y, reduction=reduction, weight=ww),
        lambda x, y, ww: getattr(F, name)(x, y, reduction=reduction, weight=ww),
        a,
        b,
        w,
    )


@pytest.mark.parametrize("size_average,reduce", [(None, False), (False, None), (True, True), (False, True)])
def test_legacy_size_average_and_reduce(size_average, reduce):
    a, b = _pair(seed=5)
    for name in ("mse_loss", "l1_loss", "smooth_l1_loss"):
        assert_matches_torch(
            lambda x, y, n=name: getattr(jt, n)(x, y, size_average=size_average, reduce=reduce),
            lambda x, y, n=name: getattr(F, n)(x, y, size_average=size_average, reduce=reduce),
            a,
            b,
        )


def test_core_matches_optax_on_ordinary_inputs():
    a, b = (jnp.asarray(v) for v in _pair(ties=False, seed=6))
    np.testing.assert_allclose(jaxloss.squared_error(a, b), optax.losses.squared_error(a, b), rtol=1e-12)
    np.testing.assert_allclose(jaxloss.l2_loss(a, b), optax.losses.l2_loss(a, b), rtol=1e-12)
    for delta in (1.0, 0.5):
        np.testing.assert_allclose(
            jaxloss.huber_loss(a, b, delta=delta), optax.losses.huber_loss(a, b, delta=delta), rtol=1e-12
        )
    np.testing.assert_allclose(jaxloss.squared_error(a), optax.losses.squared_error(a), rtol=1e-12)


def test_smooth_l1_is_scaled_huber():
    a, b = (jnp.asarray(v) for v in _pair(seed=7))
    np.testing.assert_allclose(
        jaxloss.smooth_l1_loss(a, b, beta=0.7), jaxloss.huber_loss(a, b, delta=0.7) / 0.7, rtol=1e-12
    )


def test_l1_gradient_is_zero_at_ties_like_torch():
    g = jax.grad(lambda x: jt.l1_loss(x, jnp.ones(3), reduction="sum"))(jnp.ones(3))
    np.testing.assert_array_equal(g, np.zeros(3))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_dtype_preserved(dtype):
    a, b = _pair(seed=8)
    out = jt.mse_loss(jnp.asarray(a, dtype), jnp.asarray(b, dtype))
    assert out.dtype == dtype
    np.testing.assert_allclose(float(out), float(jt.mse_loss(a, b)), rtol=2e-2)


def test_weight_shape_must_match_input():
    with pytest.raises(ValueError, match="`weight`"):
        jt.mse_loss(jnp.ones((2, 3)), jnp.ones((2, 3)), weight=jnp.ones(3))


MISMATCHED = [((3,), (3, 1)), ((4, 5), (5,)), ((2, 3), ()), ((3, 1), (3,))]
CORE_RESIDUALS = ["squared_error", "l2_loss", "absolute_error", "huber_loss", "smooth_l1_loss"]


@pytest.mark.parametrize("shapes", MISMATCHED)
@pytest.mark.parametrize("name", CORE_RESIDUALS)
def test_core_residual_losses_refuse_a_shape_mismatch_like_optax(name, shapes):
    """optax's squared_error / l2_loss raise ValueError on any shape mismatch (no (B,) x (B, 1) -> (B, B))."""
    a, b = jnp.ones(shapes[0]), jnp.zeros(shapes[1])
    with pytest.raises(ValueError, match="Shape mismatch"):
        optax.losses.squared_error(a, b)
    with pytest.raises(ValueError, match=r"`predictions` and `targets` must have the same shape"):
        getattr(jaxloss, name)(a, b)
    with pytest.raises(ValueError, match=r"must have the same shape"):
        jax.jit(getattr(jaxloss, name))(a, b)


@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
def test_torch_face_warns_and_broadcasts_like_pytorch(name):
    a, b = rng(9).normal(size=(3,)), rng(10).normal(size=(3, 1))
    with pytest.warns(UserWarning, match="Using a target size") as torch_warning:
        ref = getattr(F, name)(torch.tensor(a), torch.tensor(b), reduction="none").numpy()
    with pytest.warns(UserWarning, match="Using a target size") as ours:
        out = getattr(jt, name)(jnp.asarray(a), jnp.asarray(b), reduction="none")
    assert len(torch_warning) == len(ours) == 1
    assert out.shape == ref.shape == (3, 3)
    np.testing.assert_allclose(np.asarray(out), ref, rtol=1e-12)
    # equal shapes: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        getattr(jt, name)(jnp.asarray(a), jnp.asarray(a))
