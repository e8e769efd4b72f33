"""Numerics core: safe abs/sqrt/p-norm/xlogy, reduce, dtype policy, validation helpers."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import torch
from hypothesis import given
from hypothesis import strategies as st

import jaxloss
from jaxloss import _checks, _numerics
from tests.helpers import assert_matches_torch, rng


def test_abs_gradient_is_sign_like_torch():
    x = jnp.array([-2.0, 0.0, 3.0])
    np.testing.assert_array_equal(jax.grad(lambda a: jnp.sum(_numerics.abs(a)))(x), [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(jax.jacfwd(lambda a: _numerics.abs(a))(x).diagonal(), [-1.0, 0.0, 1.0])


def test_sqrt_gradient_is_zero_at_zero_and_clamps_negative_roundoff():
    assert float(jax.grad(_numerics.sqrt)(0.0)) == 0.0
    assert float(_numerics.sqrt(-1e-12)) == 0.0
    np.testing.assert_allclose(jax.grad(_numerics.sqrt)(4.0), 0.25)
    assert float(jax.grad(jax.grad(lambda v: _numerics.sqrt(v * v)))(0.0)) == 0.0


def test_xlogy_matches_scipy_and_has_zero_gradient_where_x_is_zero():
    x = jnp.array([0.0, 0.0, 0.5, 2.0])
    y = jnp.array([0.0, 3.0, 0.25, 1.5])
    np.testing.assert_allclose(_numerics.xlogy(x, y), scipy.special.xlogy(x, y), rtol=1e-12)
    gx, gy = jax.grad(lambda a, b: jnp.sum(_numerics.xlogy(a, b)), argnums=(0, 1))(x, y)
    assert np.all(np.isfinite(gx)) and np.all(np.isfinite(gy))
    np.testing.assert_allclose(gx, [0.0, 0.0, np.log(0.25), np.log(1.5)])
    np.testing.assert_allclose(gy, [0.0, 0.0, 2.0, 2.0 / 1.5])
    # PyTorch's xlogy uses the same convention for d/dx; where x > 0 the gradients agree
    a, b = np.array([0.5, 2.0, 1.0]), np.array([0.25, 1.5, 3.0])
    assert_matches_torch(_numerics.xlogy, torch.special.xlogy, a, b)


def test_xlogx_finite_at_zero():
    assert float(_numerics.xlogx(0.0)) == 0.0
    assert float(jax.grad(_numerics.xlogx)(0.0)) == 0.0
    np.testing.assert_allclose(jax.grad(_numerics.xlogx)(2.0), np.log(2.0) + 1)


@pytest.mark.parametrize("p", [2.0, 1.0, 0.5, 3.0, np.inf, -np.inf, 0.0, -1.0])
def test_p_norm_under_vmap_and_jit(p):
    x = jnp.asarray(rng(0).normal(size=(4, 5)))
    x = x.at[0].set(0.0)
    f = jax.jit(jax.vmap(jax.grad(lambda v: _numerics.p_norm(v, p))))
    g = f(x)
    assert np.all(np.isfinite(g))
    np.testing.assert_array_equal(g[0], np.zeros(5))


@pytest.mark.parametrize(
    "dtypes,compute,out",
    [
        (("float16",), "float32", "float16"),
        (("bfloat16",), "float32", "bfloat16"),
        (("int32",), "float64", "float64"),
        (("bool",), "float64", "float64"),
        (("float32", "float64"), "float64", "float64"),
        (("float16", "float32"), "float32", "float32"),
    ],
)
def test_dtype_policy(dtypes, compute, out):
    # the session runs with x64 enabled, so the default float is float64
    assert _numerics.compute_dtype(*dtypes) == jnp.dtype(compute)
    assert _numerics.output_dtype(*dtypes) == jnp.dtype(out)


def test_complex_inputs_are_rejected():
    with pytest.raises(TypeError, match="real"):
        _numerics.compute_dtype(jnp.complex64)


# --------------------------------------------------------------------------- reduce


@pytest.mark.parametrize("reduction", ["none", "sum", "mean", "batchmean"])
def test_reduce_matches_torch_semantics(reduction):
    v = rng(1).normal(size=(6, 3))
    ref = {
        "none": lambda t: t,
        "sum": torch.sum,
        "mean": torch.mean,
        "batchmean": lambda t: t.sum() / t.shape[0],
    }[reduction]
    assert_matches_torch(lambda a: jaxloss.reduce(a, reduction), ref, v)


def test_reduce_where_equals_boolean_indexing():
    v = jnp.asarray(rng(2).normal(size=(10,)))
    m = jnp.asarray(rng(3).uniform(size=10) > 0.4)
    np.testing.assert_allclose(jaxloss.reduce(v, "mean", where=m), jnp.mean(v[m]), rtol=1e-12)
    np.testing.assert_allclose(jaxloss.reduce(v, "sum", where=m), jnp.sum(v[m]), rtol=1e-12)
    np.testing.assert_allclose(jaxloss.reduce(v, "none", where=m), jnp.where(m, v, 0))


def test_reduce_weighted_mean_divides_by_summed_weights():
    v = jnp.array([1.0, 2.0, 3.0, 4.0])
    w = jnp.array([1.0, 0.0, 2.0, 1.0])
    np.testing.assert_allclose(jaxloss.reduce(v, "mean", weights=w), (1 + 6 + 4) / 4)
    m = jnp.array([True, True, False, True])
    np.testing.assert_allclose(jaxloss.reduce(v, "mean", weights=w, where=m), (1 + 4) / 2)


@pytest.mark.parametrize("case", ["empty", "all_masked", "zero_weights"])
def test_empty_mean_is_zero_with_zero_gradient(case):
    def f(v):
        if case == "empty":
            return jaxloss.reduce(v[:0])
        if case == "all_masked":
            return jaxloss.reduce(v, where=jnp.zeros(3, bool))
        return jaxloss.reduce(v, weights=jnp.zeros(3))

    v = jnp.ones(3)
    assert float(f(v)) == 0.0
    np.testing.assert_array_equal(jax.grad(f)(v), np.zeros(3))


@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=20))
def test_reduce_mean_is_sum_over_count(values):
    v = jnp.asarray(values)
    np.testing.assert_allclose(
        jaxloss.reduce(v, "mean"), jaxloss.reduce(v, "sum") / len(values), rtol=1e-9, atol=1e-9
    )


# --------------------------------------------------------------------------- validation helpers


def test_check_option_suggests_closest_name():
    with pytest.raises(
        ValueError, match=r"`metric` must be one of .*got 'eucliden'. Did you mean 'euclidean'\?"
    ):
        _checks.check_option("eucliden", "metric", ("euclidean", "cosine"), "cdist")


def test_check_number_messages_and_tracers():
    with pytest.raises(ValueError, match=r"`margin` must lie in \[0, inf\); got -1.0"):
        _checks.check_number(-1.0, "margin", "f", low=0)
    with pytest.raises(TypeError, match="`margin` must be a real number"):
        _checks.check_number("1", "margin", "f", low=0)
    with pytest.raises(ValueError, match="finite"):
        _checks.check_number(float("nan"), "t", "f")
    jax.jit(lambda m: _checks.check_number(m, "margin", "f", low=0))(-1.0)  # traced: skipped


def test_check_axis_and_dtypes():
    assert _checks.check_axis(-1, 3, "axis", "f") == (2,)
    assert _checks.check_axis((0, -1), 3, "axis", "f") == (0, 2)
    with pytest.raises(ValueError, match="out of range"):
        _checks.check_axis(3, 3, "axis", "f")
    with pytest.raises(TypeError, match="`labels` must have an integer dtype"):
        _checks.check_integer(jnp.ones(3), "labels", "f")
    with pytest.raises(TypeError, match="`logits` must have a floating dtype"):
        _checks.check_floating(jnp.ones(3, jnp.int32), "logits", "f")
    with pytest.raises(ValueError, match="broadcastable"):
        _checks.broadcast_shapes(jnp.ones(3), jnp.ones(4), ("a", "b"), "f")
