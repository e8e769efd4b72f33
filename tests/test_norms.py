"""Norms: core and PyTorch face against torch.linalg / torch.norm / numpy, values and gradients."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from jax.test_util import check_grads

import jaxloss
import jaxloss.torch as jt
from tests.helpers import assert_matches_torch_eager as assert_matches_torch
from tests.helpers import rng, sweep

INF = math.inf
VECTOR_ORDS = [2, 1, 3, 1.5, 0.5, -1, -2.5, 0, INF, -INF]
MATRIX_ORDS = ["fro", "nuc", 1, -1, 2, -2, INF, -INF]


# --------------------------------------------------------------------------- core vs torch.linalg


@pytest.mark.parametrize("ord", sweep(VECTOR_ORDS, 2))
@pytest.mark.parametrize(
    "axis,keepdims", sweep([(None, False), (-1, True), (0, False), ((0, 2), True)], 1, several=True)
)
def test_vector_norm_matches_torch(variant, ord, axis, keepdims):
    x = rng(1).normal(size=(3, 4, 5))
    fn = variant(jaxloss.vector_norm, ord=ord, axis=axis, keepdims=keepdims)
    assert_matches_torch(fn, lambda t: torch.linalg.vector_norm(t, ord, dim=axis, keepdim=keepdims), x)


@pytest.mark.parametrize("ord", sweep(MATRIX_ORDS, 2))
@pytest.mark.parametrize(
    "shape,axis,keepdims",
    sweep(
        [
            ((2, 3, 5), (-2, -1), True),  # the fast loop: a batch, keepdims
            ((4, 3), (-2, -1), False),
            ((2, 3, 5), (-1, -2), False),
            ((3, 2, 4), (0, 2), True),
        ],
        1,
        several=True,
    ),
)
def test_matrix_norm_matches_torch(variant, ord, shape, axis, keepdims):
    x = rng(2).normal(size=shape)
    fn = variant(jaxloss.matrix_norm, ord=ord, axis=axis, keepdims=keepdims)
    assert_matches_torch(fn, lambda t: torch.linalg.matrix_norm(t, ord, dim=axis, keepdim=keepdims), x)


@pytest.mark.slow
@pytest.mark.parametrize(
    "fn,ord", [(jaxloss.frobenius_norm, "fro"), (jaxloss.nuclear_norm, "nuc"), (jaxloss.spectral_norm, 2)]
)
def test_named_matrix_norms(fn, ord):
    x = rng(3).normal(size=(2, 5, 3))
    assert_matches_torch(fn, lambda t: torch.linalg.matrix_norm(t, ord), x)


@pytest.mark.parametrize("ord", [None, "fro", "nuc", 2, -2, 1, -1, INF, -INF, 0.5, 3])
@pytest.mark.parametrize(
    "shape,axis",
    sweep(
        [((4, 3), None), ((2, 3, 4), (0, 2)), ((5,), None), ((4, 3), 1), ((2, 3, 4), None), ((2, 3, 4), -1)],
        3,
        several=True,
    ),
)
def test_norm_has_numpy_semantics(ord, shape, axis):
    x = rng(4).normal(size=shape)
    try:
        expected = np.linalg.norm(x, ord=ord, axis=axis)
    except (ValueError, TypeError):
        with pytest.raises((ValueError, TypeError)):
            jaxloss.norm(x, ord=ord, axis=axis)
        return
    np.testing.assert_allclose(jaxloss.norm(x, ord=ord, axis=axis), expected, rtol=1e-12)


# --------------------------------------------------------------------------- PyTorch face


def _torch_or_error(torch_call, jax_call, x):
    """Either both raise (torch any error, jaxloss a ValueError/TypeError) or values+grads match."""
    try:
        torch_call(torch.tensor(x))
    except (RuntimeError, ValueError, IndexError, TypeError):
        with pytest.raises((ValueError, TypeError)):
            jax_call(jnp.asarray(x))
        return
    assert_matches_torch(jax_call, torch_call, x)


@pytest.mark.parametrize("p", sweep(["fro", "nuc", 2, 1, 3, 0, -1, INF, -INF, None], 3))
@pytest.mark.parametrize(
    "shape,dim",
    sweep(
        [
            ((2, 4), -1),
            ((2, 3, 4), (-2, -1)),
            ((2, 4), None),
            ((2, 4), (0, 1)),
            ((2, 3, 4), None),
            ((2, 3, 4), (0, 1, 2)),
            ((2, 3, 4), 1),
        ],
        2,
        several=True,
    ),
)
def test_torch_norm_matches_legacy_torch_norm(p, shape, dim):
    keepdim = isinstance(dim, tuple)
    x = rng(5).normal(size=shape)
    _torch_or_error(
        lambda t: torch.norm(t, p=p, dim=dim, keepdim=keepdim),
        lambda a: jt.norm(a, p=p, dim=dim, keepdim=keepdim),
        x,
    )


@pytest.mark.parametrize("ord", sweep([None, "fro", "nuc", 2, -2, 1, INF, 0.5, 0], 3))
@pytest.mark.parametrize(
    "shape,dim",
    sweep(
        [((4, 3), None), ((4, 3), -1), ((5,), None), ((2, 3, 4), (0, 2)), ((2, 3, 4), None), ((2, 3, 4), 1)],
        2,
        several=True,
    ),
)
def test_torch_linalg_norm(ord, shape, dim):
    x = rng(6).normal(size=shape)
    _torch_or_error(
        lambda t: torch.linalg.norm(t, ord=ord, dim=dim),
        lambda a: jt.linalg.norm(a, ord=ord, dim=dim),
        x,
    )


def test_torch_linalg_vector_and_matrix_norm_defaults():
    x = rng(7).normal(size=(3, 4))
    assert_matches_torch(jt.linalg.vector_norm, torch.linalg.vector_norm, x)
    assert_matches_torch(jt.linalg.matrix_norm, torch.linalg.matrix_norm, x)
    y = jt.linalg.vector_norm(jnp.asarray(x, jnp.float32), dtype=jnp.float64)
    assert y.dtype == jnp.float64


def test_residual_norms_worked_example():
    """A residual's norms: row Frobenius / 2-norms [2, 2], nuclear 2.8284, means 2.0."""
    label = np.array([[1, 2, 3, 4], [1, 2, 3, 4]])
    pred = np.array([[2, 3, 4, 5], [2, 3, 4, 5]])
    residual = jnp.asarray(pred - label, dtype=jnp.float32)
    np.testing.assert_allclose(jt.norm(residual, p="fro", dim=-1), [2.0, 2.0])
    np.testing.assert_allclose(jt.norm(residual, p=2, dim=-1), [2.0, 2.0])
    np.testing.assert_allclose(jt.norm(residual, p="nuc"), 2.8284, atol=1e-4)
    np.testing.assert_allclose(jt.norm(residual, p="fro", dim=-1).sum() / label.shape[0], 2.0)
    np.testing.assert_allclose(jt.norm(residual, p=2, dim=-1).sum() / label.shape[0], 2.0)
    np.testing.assert_allclose(jaxloss.reduce(jaxloss.vector_norm(residual, axis=-1)), 2.0)
    # the same numbers as PyTorch on integer data
    t = torch.from_numpy(pred - label).float()
    np.testing.assert_allclose(jt.norm(residual, p="nuc"), torch.norm(t, p="nuc").numpy(), rtol=1e-6)


# --------------------------------------------------------------------------- finite gradients


@pytest.mark.parametrize("ord", VECTOR_ORDS)
def test_vector_norm_gradient_finite_at_zero(variant, ord):
    g = jax.grad(variant(jaxloss.vector_norm, ord=ord))(jnp.zeros(4))
    np.testing.assert_array_equal(g, np.zeros(4))


@pytest.mark.parametrize("ord", VECTOR_ORDS)
def test_vector_norm_gradient_finite_with_zero_entries(ord):
    x = jnp.array([0.0, 1.5, -2.0, 0.0])
    g = jax.grad(lambda a: jaxloss.vector_norm(a, ord))(x)
    assert np.all(np.isfinite(g))
    if ord < 1:  # PyTorch's rule: no gradient through exactly-zero entries for ord < 1
        assert g[0] == 0 and g[3] == 0


def test_vector_norm_inf_ties_share_gradient():
    g = jax.grad(lambda a: jaxloss.vector_norm(a, INF))(jnp.array([2.0, -2.0, 1.0]))
    np.testing.assert_allclose(g, [0.5, -0.5, 0.0])
    xt = torch.tensor([2.0, -2.0, 1.0], requires_grad=True)
    torch.linalg.vector_norm(xt, INF).backward()
    np.testing.assert_allclose(g, xt.grad.numpy())


@pytest.mark.parametrize("ord", sweep(MATRIX_ORDS, 1))
@pytest.mark.parametrize("name", ["zero", "identity", "repeated", "rank_one"])
def test_matrix_norm_gradient_finite_at_degenerate_matrices(variant, ord, name):
    x = {
        "zero": jnp.zeros((3, 3)),
        "identity": jnp.eye(3),
        "repeated": jnp.diag(jnp.array([2.0, 2.0, 1.0]))
        @ jnp.array(np.linalg.qr(rng(8).normal(size=(3, 3)))[0]),
        "rank_one": jnp.outer(jnp.arange(1.0, 4.0), jnp.ones(3)),
    }[name]
    g = jax.grad(variant(jaxloss.matrix_norm, ord=ord))(x)
    assert np.all(np.isfinite(g)), g
    if name == "zero" and ord not in (1, -1, INF, -INF):
        np.testing.assert_array_equal(g, np.zeros((3, 3)))


def test_nuclear_gradient_of_orthogonal_matrix_is_itself():
    q = jnp.asarray(np.linalg.qr(rng(9).normal(size=(4, 4)))[0])
    np.testing.assert_allclose(jax.grad(jaxloss.nuclear_norm)(q), q, atol=1e-10)


@pytest.mark.slow
def test_spectral_gradient_at_tied_top_singular_values_is_averaged():
    x = jnp.diag(jnp.array([3.0, 3.0, 1.0]))
    g = jax.grad(jaxloss.spectral_norm)(x)
    np.testing.assert_allclose(g, np.diag([0.5, 0.5, 0.0]), atol=1e-12)


@pytest.mark.slow  # numerical gradients, ~2 CPU-s each
@pytest.mark.parametrize("ord", [2, 1, 3, 0.5, INF])
def test_vector_norm_check_grads(ord):
    x = jnp.asarray(rng(10).normal(size=(3, 4)))
    check_grads(lambda a: jaxloss.vector_norm(a, ord, axis=-1), (x,), order=2, modes=["fwd", "rev"])


@pytest.mark.slow
@pytest.mark.parametrize("ord", ["fro", "nuc", 2, -2])
def test_matrix_norm_check_grads(ord):
    x = jnp.asarray(rng(11).normal(size=(2, 4, 3)))
    check_grads(lambda a: jaxloss.matrix_norm(a, ord), (x,), order=1, modes=["fwd", "rev"])


# --------------------------------------------------------------------------- dtypes, vmap


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_computed_in_float32_returned_in_input_dtype(dtype):
    x = rng(12).normal(size=(6, 8)).astype(np.float32)
    for fn in (lambda a: jaxloss.vector_norm(a, axis=-1), lambda a: jaxloss.matrix_norm(a, "nuc")):
        out = fn(jnp.asarray(x, dtype))
        assert out.dtype == dtype
        ref = fn(jnp.asarray(x, dtype).astype(jnp.float32))
        np.testing.assert_allclose(np.asarray(out, np.float32), ref, rtol=1e-2)


def test_integer_and_boolean_inputs_are_promoted():
    out = jaxloss.vector_norm(jnp.array([[3, 4]], dtype=jnp.int32), axis=-1)
    assert jnp.issubdtype(out.dtype, jnp.floating)
    np.testing.assert_allclose(out, [5.0])
    np.testing.assert_allclose(jaxloss.vector_norm(jnp.array([True, False, True]), 0), 2.0)


@pytest.mark.slow
def test_vmap_equals_batched_axis():
    x = jnp.asarray(rng(13).normal(size=(5, 3, 4)))
    for ord in (2, 1, INF, 0.5):
        np.testing.assert_allclose(
            jax.vmap(lambda a, o=ord: jaxloss.vector_norm(a, o))(x),
            jaxloss.vector_norm(x, ord, axis=(1, 2)),
            rtol=1e-12,
        )
    np.testing.assert_allclose(jax.vmap(jaxloss.nuclear_norm)(x), jaxloss.nuclear_norm(x), rtol=1e-12)
    g = jax.vmap(jax.grad(lambda a: jaxloss.vector_norm(a, INF)))(jnp.zeros((3, 4)))
    assert np.all(np.isfinite(g))


# --------------------------------------------------------------------------- axioms


finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=64).filter(
    lambda v: v == 0 or abs(v) > 1e-100
)  # no underflow of x**p (PyTorch does not rescale either)
vectors = hnp.arrays(np.float64, st.integers(1, 6), elements=finite)


@given(x=vectors, y=vectors, a=finite, ord=st.sampled_from([1, 1.5, 2, 3, INF]))
def test_vector_norm_axioms(x, y, a, ord):
    n = min(len(x), len(y))
    x, y = x[:n], y[:n]
    nx, ny = float(jaxloss.vector_norm(x, ord)), float(jaxloss.vector_norm(y, ord))
    assert nx >= 0
    assert float(jaxloss.vector_norm(x + y, ord)) <= nx + ny + 1e-9 * (1 + nx + ny)
    np.testing.assert_allclose(float(jaxloss.vector_norm(a * x, ord)), abs(a) * nx, rtol=1e-9, atol=1e-9)
    assert (nx == 0) == (not np.any(x))


matrices = hnp.arrays(np.float64, (3, 3), elements=st.floats(-100, 100, allow_nan=False, width=64))


@given(x=matrices, y=matrices, ord=st.sampled_from(["fro", "nuc", 1, 2, INF]))
def test_matrix_norm_axioms(x, y, ord):
    nx, ny = float(jaxloss.matrix_norm(x, ord)), float(jaxloss.matrix_norm(y, ord))
    assert nx >= 0
    assert float(jaxloss.matrix_norm(x + y, ord)) <= nx + ny + 1e-9 * (1 + nx + ny)
    np.testing.assert_allclose(float(jaxloss.matrix_norm(-2.5 * x, ord)), 2.5 * nx, rtol=1e-9, atol=1e-9)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: jaxloss.vector_norm(jnp.ones(3), "fro"), "`ord`"),
        (lambda: jaxloss.vector_norm(jnp.ones(3), float("nan")), "`ord`"),
        (lambda: jaxloss.vector_norm(jnp.ones(3), axis=2), "`axis`"),
        (lambda: jaxloss.matrix_norm(jnp.ones(3)), "at least 2 dimensions"),
        (lambda: jaxloss.matrix_norm(jnp.ones((3, 3)), 3), "`ord`"),
        (lambda: jaxloss.matrix_norm(jnp.ones((3, 3)), "nucc"), "Did you mean 'nuc'"),
        (lambda: jaxloss.matrix_norm(jnp.ones((3, 3)), axis=(0, 0)), "`axis`"),
        (lambda: jaxloss.matrix_norm(jnp.ones((3, 3)), axis=-1), "`axis`"),
        (lambda: jaxloss.norm(jnp.ones((2, 2, 2)), 2), "1-D or 2-D"),
        (lambda: jt.norm(jnp.ones((2, 2)), p="nuc", dim=-1), "exactly two dims"),
        (lambda: jaxloss.reduce(jnp.ones(3), "avg"), "`reduction`"),
        (lambda: jt.mse_loss(jnp.ones(3), jnp.ones(3), reduction="batchmean"), "`reduction`"),
        (lambda: jt.huber_loss(jnp.ones(3), jnp.ones(3), delta=-1.0), "`delta`"),
        (lambda: jt.smooth_l1_loss(jnp.ones(3), jnp.ones(3), beta=-1.0), "`beta`"),
        (lambda: jt.mse_loss(jnp.ones(3), jnp.ones(4)), "broadcastable"),
    ],
)
def test_bad_input_raises_clear_error(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_bad_input_raises_at_trace_time_under_jit():
    with pytest.raises(ValueError, match="`ord`"):
        jax.jit(lambda a: jaxloss.matrix_norm(a, 3))(jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        jax.jit(jaxloss.nuclear_norm)(jnp.ones(3))
