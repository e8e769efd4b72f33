"""Divergences: scipy / optax / PyTorch / torchmetrics references, identities, edges."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.spatial.distance as ssd
import scipy.special as ss
import scipy.stats as sst
import torch
import torchmetrics.functional as tmf
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxloss
import jaxloss.torch as jt
from tests.helpers import assert_matches_torch, rng, sweep, tol


def simplex(shape, seed=0, zeros=False):
    x = rng(seed).random(shape) + 0.05
    if zeros:
        x[..., 0] = 0.0
    return x / x.sum(-1, keepdims=True)


def assert_close(a, b, dtype="float64"):
    rtol, atol = tol(dtype)
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol)


def finite_grads(fn, *args):
    grads = jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=tuple(range(len(args))))(*args)
    for g in grads:
        assert np.all(np.isfinite(np.asarray(g))), g


# --------------------------------------------------------------------------- scipy references


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_values_against_scipy(variant, dtype):
    p, q = simplex((5, 6), 1, zeros=True), simplex((5, 6), 2)
    pj, qj = jnp.asarray(p, dtype), jnp.asarray(q, dtype)
    p, q = np.asarray(pj, np.float64), np.asarray(qj, np.float64)
    check = lambda a, b: assert_close(a, b, dtype)  # noqa: E731
    check(variant(jaxloss.entropy)(pj), sst.entropy(p, axis=-1))
    check(variant(jaxloss.kl_divergence)(jnp.log(qj), pj), ss.rel_entr(p, q).sum(-1))
    check(variant(jaxloss.cross_entropy)(qj, pj), sst.entropy(p, axis=-1) + ss.rel_entr(p, q).sum(-1))
    check(
        variant(jaxloss.symmetric_kl_divergence)(qj, pj),
        ss.rel_entr(p, q).sum(-1) + ss.rel_entr(q, p).sum(-1),
    )
    for base in (None, 2.0):
        js = ssd.jensenshannon(p, q, base=base, axis=-1)
        check(variant(jaxloss.jensen_shannon_distance, base=base)(qj, pj), js)
        check(variant(jaxloss.js_divergence, base=base)(qj, pj), js**2)
    check(
        variant(jaxloss.hellinger_distance)(qj, pj),
        np.sqrt(0.5 * ((np.sqrt(p) - np.sqrt(q)) ** 2).sum(-1)),
    )
    check(variant(jaxloss.total_variation_distance)(qj, pj), 0.5 * np.abs(p - q).sum(-1))
    check(variant(jaxloss.bhattacharyya_distance)(qj, pj), -np.log(np.sqrt(p * q).sum(-1)))


def renyi_reference(q, p, alpha):
    s = p > 0
    if alpha == 1:
        return np.where(s, ss.rel_entr(p, q), 0).sum(-1)
    if math.isinf(alpha):
        return np.log(np.where(s, p / q, 0).max(-1))
    terms = np.where(s, p**alpha * q ** (1 - alpha), 0)
    return np.log(terms.sum(-1)) / (alpha - 1)


@pytest.mark.slow
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 0.999, 1.0, 1.001, 2.0, 7.5, math.inf])
def test_renyi_against_formula(variant, alpha):
    p, q = simplex((4, 7), 3, zeros=True), simplex((4, 7), 4)
    out = variant(jaxloss.renyi_divergence, alpha=alpha)(jnp.asarray(q), jnp.asarray(p))
    np.testing.assert_allclose(out, renyi_reference(q, p, alpha), rtol=1e-9, atol=1e-12)
    finite_grads(lambda a, b: jaxloss.renyi_divergence(a, b, alpha=alpha), jnp.asarray(q), jnp.asarray(p))


@pytest.mark.slow
def test_renyi_limits():
    p, q = jnp.asarray(simplex((3, 5), 5)), jnp.asarray(simplex((3, 5), 6))
    kl = jaxloss.kl_divergence(jnp.log(q), p)
    for eps in (1e-3, 1e-6, 1e-9, 1e-12):
        for a in (1 - eps, 1 + eps):
            np.testing.assert_allclose(jaxloss.renyi_divergence(q, p, alpha=a), kl, rtol=10 * eps + 1e-12)
    np.testing.assert_allclose(
        jaxloss.renyi_divergence(q, p, alpha=0.5),
        2 * jaxloss.bhattacharyya_distance(q, p),
        rtol=1e-12,
    )
    big = jaxloss.renyi_divergence(q, p, alpha=1e4)
    np.testing.assert_allclose(big, jaxloss.renyi_divergence(q, p, alpha=math.inf), rtol=1e-3)
    # a traced alpha takes the general path and agrees
    traced = jax.jit(lambda a: jaxloss.renyi_divergence(q, p, alpha=a))
    np.testing.assert_allclose(traced(2.0), jaxloss.renyi_divergence(q, p, alpha=2.0), rtol=1e-12)
    np.testing.assert_allclose(traced(1.0), kl, rtol=1e-12)


def _one_sided_differences(f, x, h=1e-7):
    """Central differences of a batched scalar ``f`` at ``x``, forward ones where ``x == 0`` (float64).

    ``f`` maps ``(k, *x.shape)`` to ``(k,)``: every perturbation is evaluated in one call.
    """
    eye = np.eye(x.size).reshape((x.size, *x.shape)) * h
    zero = (x == 0)[None]
    hi, lo = x[None] + eye, np.where(zero, x[None], x[None] - eye)
    diff = (np.asarray(f(hi)) - np.asarray(f(lo))) / np.where(zero.reshape(-1), h, 2 * h)
    return diff.reshape(x.shape)


@pytest.mark.parametrize("alpha", [0.3, 0.0, 0.5, 0.9, pytest.param(2.0, marks=pytest.mark.slow)])
def test_renyi_gradient_at_zero_predictions(alpha):
    """q_i = 0 under p_i > 0: finite gradients, equal to finite differences wherever the derivative exists.

    alpha = 0: the derivative at q_i = 0 is finite and returned; 0 < alpha < 1: it is infinite and
    the gradient is 0 (the square root's subgradient, as Bhattacharyya's); alpha > 1: the value is inf.
    """
    r = rng(11)
    p = r.random((3, 6))
    p[:, 1] = 0.0
    q = r.random((3, 6))
    q[:, 0] = 0.0
    q[0, 2:4] = 0.0
    p, q = p / p.sum(-1, keepdims=True), q / q.sum(-1, keepdims=True)
    c = jnp.arange(1.0, 4.0)
    f = jax.jit(lambda q, p: jnp.sum(c * jaxloss.renyi_divergence(q, p, alpha=alpha)))
    value = jax.jit(lambda q, p: jaxloss.renyi_divergence(q, p, alpha=alpha))(q, p)
    np.testing.assert_allclose(value, renyi_reference(q, p, alpha), rtol=1e-12)
    gq, gp = jax.jit(jax.grad(f, argnums=(0, 1)))(q, p)
    if alpha > 1:
        assert np.all(np.isinf(value)) and np.all(np.asarray(gq) == 0) and np.all(np.asarray(gp) == 0)
        return
    fd_q = _one_sided_differences(jax.jit(jax.vmap(lambda a: f(a, p))), q)
    fd_p = _one_sided_differences(jax.jit(jax.vmap(lambda b: f(q, b))), p)
    exists = (q > 0) | (p == 0) | (alpha == 0)
    np.testing.assert_allclose(np.where(exists, gq, 0), np.where(exists, fd_q, 0), rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(gq)[~exists] == 0) and np.all(fd_q[~exists] < -10)  # true derivative: -inf
    np.testing.assert_allclose(np.where(p > 0, gp, 0), np.where(p > 0, fd_p, 0), rtol=1e-5, atol=1e-6)
    assert np.all(np.isfinite(gp))
    if alpha == 0.5:  # twice Bhattacharyya's (whose p-gradient lacks Renyi's 1 / sum p term)
        g_bh = jax.grad(lambda q: jnp.sum(c * 2 * jaxloss.bhattacharyya_distance(q, p)))(q)
        np.testing.assert_allclose(gq, g_bh, rtol=1e-12, atol=1e-14)
    # float32: finite as well
    g32 = jax.grad(f, argnums=(0, 1))(jnp.float32(q), jnp.float32(p))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in g32)


def test_disjoint_supports_give_the_true_values():
    """Disjoint supports: inf for the KL family, Bhattacharyya and every Renyi order; the bounded ones finite."""
    p, q = jnp.array([[0.5, 0.5, 0.0, 0.0]]), jnp.array([[0.0, 0.0, 0.25, 0.75]])
    values = jax.jit(
        lambda q, p: {
            "kl_divergence": jaxloss.kl_divergence(jnp.log(q), p),
            "kl_divergence_with_log_targets": jaxloss.kl_divergence_with_log_targets(jnp.log(q), jnp.log(p)),
            "generalized_kl_divergence": jaxloss.generalized_kl_divergence(jnp.log(q), p),
            "symmetric_kl_divergence": jaxloss.symmetric_kl_divergence(q, p),
            "cross_entropy": jaxloss.cross_entropy(q, p),
            "bhattacharyya_distance": jaxloss.bhattacharyya_distance(q, p),
            **{
                f"renyi_divergence {a}": jaxloss.renyi_divergence(q, p, alpha=a) for a in (0.0, 0.5, 1.0, 3.0)
            },
            "renyi_divergence inf": jaxloss.renyi_divergence(q, p, alpha=math.inf),
            "hellinger_distance": jaxloss.hellinger_distance(q, p),
            "total_variation_distance": jaxloss.total_variation_distance(q, p),
            "js_divergence": jaxloss.js_divergence(q, p),
        }
    )(q, p)
    bounded = {"hellinger_distance": 1.0, "total_variation_distance": 1.0, "js_divergence": math.log(2)}
    for name, v in values.items():
        np.testing.assert_allclose(v, [bounded.get(name, math.inf)], rtol=1e-6, err_msg=name)


# --------------------------------------------------------------------------- optax references


def test_optax_kl_family_values_and_gradients(variant):
    p, q = jnp.asarray(simplex((4, 5), 7)), jnp.asarray(simplex((4, 5), 8))
    lq, lp = jnp.log(q), jnp.log(p)
    pairs = [
        (jaxloss.kl_divergence, optax.losses.kl_divergence, (lq, p)),
        (
            jaxloss.kl_divergence_with_log_targets,
            optax.losses.kl_divergence_with_log_targets,
            (lq, lp),
        ),
        (jaxloss.generalized_kl_divergence, optax.losses.generalized_kl_divergence, (lq, 2 * p)),
        (jaxloss.convex_kl_divergence, optax.losses.generalized_kl_divergence, (lq, 2 * p)),
    ]
    for ours, theirs, args in pairs:
        assert_close(variant(ours)(*args), theirs(*args))
        for axis in (0, (0, 1)):
            assert_close(ours(*args, axis=axis), theirs(*args, axis=axis))
        g1 = jax.grad(lambda a, b, f=ours: f(a, b).sum(), argnums=(0, 1))(*args)
        g2 = jax.grad(lambda a, b, f=theirs: f(a, b).sum(), argnums=(0, 1))(*args)
        for a, b in zip(g1, g2, strict=True):
            assert_close(a, b)


def test_kl_finite_where_optax_is_nan():
    lq = jnp.log(jnp.array([0.5, 0.5, 0.0]))
    p = jnp.array([1.0, 0.0, 0.0])
    assert np.isnan(optax.losses.kl_divergence(lq, p))
    assert np.isnan(
        jax.grad(lambda t: optax.losses.kl_divergence(jnp.log(jnp.array([0.5, 0.5])), t))(
            jnp.array([1.0, 0.0])
        )
    ).any()
    np.testing.assert_allclose(jaxloss.kl_divergence(lq, p), math.log(2), rtol=1e-12)
    finite_grads(jaxloss.kl_divergence, lq, p)
    finite_grads(jaxloss.kl_divergence_with_log_targets, lq, jnp.log(p))
    # the subgradient at a zero target: d/dp [p log p] := 0, d/dp [-p log q] = -log q
    g = jax.grad(lambda t: jaxloss.kl_divergence(jnp.log(jnp.array([0.5, 0.5])), t))(jnp.array([1.0, 0.0]))
    np.testing.assert_allclose(g, [1 + math.log(2), math.log(2)], rtol=1e-12)


# ------------------------------------------------------------------------- PyTorch and torchmetrics


@pytest.mark.parametrize("reduction", sweep(["batchmean", "none", "mean", "sum"], 2))
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(reduction, log_target):
    p, q = simplex((4, 5), 9, zeros=True), simplex((4, 5), 10)
    target = np.log(p) if log_target else p
    with np.errstate(divide="ignore"):
        assert_matches_torch(
            lambda a, b: jt.kl_div(a, b, reduction=reduction, log_target=log_target),
            lambda a, b: torch.nn.functional.kl_div(a, b, reduction=reduction, log_target=log_target),
            np.log(q),
            target,
        )


@pytest.mark.slow
def test_kl_div_legacy_arguments():
    lq, p = np.log(simplex((3, 4), 11)), simplex((3, 4), 12)
    for size_average, reduce in [(False, None), (None, False), (True, True)]:
        assert_matches_torch(
            lambda a, b, s=size_average, r=reduce: jt.kl_div(a, b, size_average=s, reduce=r),
            lambda a, b, s=size_average, r=reduce: torch.nn.functional.kl_div(a, b, size_average=s, reduce=r),
            lq,
            p,
        )


def test_torchmetrics_kl():
    p, q = simplex((6, 4), 13), simplex((6, 4), 14)
    ref = tmf.kl_divergence(torch.tensor(p), torch.tensor(q), reduction="none").numpy()
    assert_close(jaxloss.kl_divergence(jnp.log(q), p), ref)


# -------------------------------------------------------------------------- identities (hypothesis)

probabilities = (
    hnp.arrays(np.float64, st.integers(2, 6), elements=st.floats(0, 1, allow_subnormal=False))
    .filter(lambda x: x.sum() > 1e-3)
    .map(lambda x: x / x.sum())
)


@pytest.mark.slow  # hypothesis, 15 examples
@settings(max_examples=15)
@given(probabilities, st.data())
def test_identities(p, data):
    q = data.draw(hnp.arrays(np.float64, p.shape, elements=st.floats(1e-3, 1)).map(lambda x: x / x.sum()))
    p, q = jnp.asarray(p), jnp.asarray(q)
    kl = jaxloss.kl_divergence(jnp.log(q), p)
    assert kl >= -1e-12  # Gibbs' inequality
    np.testing.assert_allclose(jaxloss.cross_entropy(q, p), jaxloss.entropy(p) + kl, rtol=1e-9, atol=1e-12)
    js_pq, js_qp = jaxloss.js_divergence(q, p), jaxloss.js_divergence(p, q)
    np.testing.assert_allclose(js_pq, js_qp, rtol=1e-12, atol=1e-15)
    assert -1e-12 <= js_pq <= math.log(2) + 1e-12
    assert jaxloss.js_divergence(q, p, base=2) <= 1 + 1e-12
    assert 0 <= jaxloss.hellinger_distance(q, p) <= 1 + 1e-12
    assert 0 <= jaxloss.total_variation_distance(q, p) <= 1 + 1e-12
    for fn in (
        jaxloss.js_divergence,
        jaxloss.hellinger_distance,
        jaxloss.total_variation_distance,
        jaxloss.jensen_shannon_distance,
    ):
        finite_grads(fn, q, p)


@pytest.mark.slow
@settings(max_examples=15)
@given(probabilities)
def test_zero_self_divergence(p):
    p = jnp.asarray(p)
    for fn in (
        jaxloss.js_divergence,
        jaxloss.hellinger_distance,
        jaxloss.total_variation_distance,
        jaxloss.symmetric_kl_divergence,
        jaxloss.jensen_shannon_distance,
    ):
        assert abs(float(fn(p, p))) < 1e-7
        finite_grads(fn, p, p)
    assert abs(float(jaxloss.kl_divergence(jnp.log(p), p))) < 1e-12


# --------------------------------------------------------------------------- where and axis

ALL = [
    (jaxloss.entropy, 1),
    (lambda q, p, **k: jaxloss.kl_divergence(jnp.log(q), p, **k), 2),
    (jaxloss.cross_entropy, 2),
    (jaxloss.symmetric_kl_divergence, 2),
    (jaxloss.js_divergence, 2),
    (jaxloss.jensen_shannon_distance, 2),
    (jaxloss.hellinger_distance, 2),
    (jaxloss.total_variation_distance, 2),
    (jaxloss.bhattacharyya_distance, 2),
    (lambda q, p, **k: jaxloss.renyi_divergence(q, p, alpha=2.0, **k), 2),
    (lambda q, p, **k: jaxloss.renyi_divergence(q, p, alpha=1.0, **k), 2),
    (lambda q, p, **k: jaxloss.renyi_divergence(q, p, alpha=math.inf, **k), 2),
    (lambda q, p, **k: jaxloss.kl_divergence_with_log_targets(jnp.log(q), jnp.log(p), **k), 2),
    (lambda q, p, **k: jaxloss.generalized_kl_divergence(jnp.log(q), p, **k), 2),
]


@pytest.mark.slow
@pytest.mark.parametrize("index", sweep(range(len(ALL)), 3))
def test_where_and_axis(index):
    fn, nargs = ALL[index]
    p, q = jnp.asarray(simplex((3, 4, 5), 15)), jnp.asarray(simplex((3, 4, 5), 16))
    args = (q, p)[-nargs:] if nargs == 1 else (q, p)
    args = (p,) if nargs == 1 else args
    mask = np.array([True, False, True, True, False])
    full = fn(*args, where=jnp.asarray(mask))
    indexed = fn(*(a[..., mask] for a in args))
    np.testing.assert_allclose(full, indexed, rtol=1e-12, atol=1e-14)
    for k in (0, 1):
        np.testing.assert_allclose(
            fn(*args, axis=k), fn(*(jnp.moveaxis(a, k, -1) for a in args)), rtol=1e-12, atol=1e-14
        )
    assert fn(*args, axis=(1, 2)).shape == (3,)


# --------------------------------------------------------------------------- dtypes and errors


@pytest.mark.slow
def test_dtypes():
    p = jnp.asarray(simplex((2, 3), 17), jnp.float16)
    assert jaxloss.entropy(p).dtype == jnp.float16
    assert jaxloss.js_divergence(p, p).dtype == jnp.float16
    assert jaxloss.entropy(jnp.array([1, 0])).dtype == jnp.float64  # ints promoted (x64 session)


def test_errors():
    p3, p4 = jnp.ones(3) / 3, jnp.ones(4) / 4
    with pytest.raises(ValueError, match="broadcastable shapes"):
        jaxloss.js_divergence(p3, p4)
    with pytest.raises(ValueError, match="broadcastable"):
        jaxloss.kl_divergence(jnp.log(p3), p4)
    with pytest.raises(TypeError, match="floating dtype"):
        jaxloss.kl_divergence(jnp.array([0, -1]), jnp.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="alpha"):
        jaxloss.renyi_divergence(p3, p3, alpha=-1.0)
    with pytest.raises(ValueError, match="base"):
        jaxloss.js_divergence(p3, p3, base=1.0)
    with pytest.raises(ValueError, match="out of range"):
        jaxloss.entropy(p3, axis=2)
    with pytest.raises(ValueError, match="where"):
        jaxloss.entropy(p3, where=jnp.ones(4, bool))
    with pytest.raises(ValueError, match="reduction"):
        jt.kl_div(jnp.log(p3), p3, reduction="batch_mean")


LOG_SPACE = {
    1: jaxloss.kl_divergence,
    12: jaxloss.kl_divergence_with_log_targets,
    13: jaxloss.generalized_kl_divergence,
}


@pytest.mark.slow
@pytest.mark.parametrize("index", sweep(range(len(ALL)), 3))
def test_finite_at_zero_probabilities(index):
    """Zeros in both (same pattern), and p = 0 where q > 0: finite values and gradients."""
    fn, nargs = ALL[index]
    p = jnp.array([[0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 1.0, 0.0]])
    q = jnp.array([[0.0, 0.25, 0.75, 0.0], [0.0, 0.5, 0.5, 0.0]])
    if index == 3:  # symmetric KL is infinite where exactly one of p, q is 0
        p, q = p[:1], q[:1]
    if index in LOG_SPACE:  # differentiate with respect to the log-space inputs themselves
        log_fn = LOG_SPACE[index]
        fn = (lambda a, b: log_fn(a, jnp.log(b))) if index == 12 else log_fn
        args = (jnp.log(q), p)
        finite_grads(lambda a: log_fn(a, jnp.log(p) if index == 12 else p), jnp.log(q))
        assert np.all(np.isfinite(np.asarray(fn(*args))))
        if index == 12:
            finite_grads(log_fn, jnp.log(q), jnp.log(p))
        else:
            finite_grads(fn, *args)
        return
    args = (p,) if nargs == 1 else (q, p)
    assert np.all(np.isfinite(np.asarray(fn(*args))))
    finite_grads(fn, *args)
    if nargs == 2 and index != 3:  # one-hot targets against a smooth model
        one_hot = jnp.eye(4)[jnp.array([1, 2])]
        model = jnp.full((2, 4), 0.25)
        assert np.all(np.isfinite(np.asarray(fn(model, one_hot))))
        finite_grads(fn, model, one_hot)


def test_convex_kl_divergence_is_deprecated_like_optax():
    """optax's convex_kl_divergence warns (DeprecationWarning naming its replacement); so does ours."""
    lq, p = jnp.log(jnp.array([1.0, 2.0])), jnp.array([1.0, 1.0])
    with pytest.warns(DeprecationWarning) as theirs:
        expected = optax.losses.convex_kl_divergence(lq, p)
    with pytest.warns(DeprecationWarning, match="generalized_kl_divergence") as ours:
        value = jaxloss.convex_kl_divergence(lq, p)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    assert ours[0].filename == __file__  # points at the caller's line
    assert_close(value, expected)
    assert_close(value, jaxloss.generalized_kl_divergence(lq, p))
