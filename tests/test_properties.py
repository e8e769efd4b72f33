"""Cross-cutting properties of every public function (the table in ``tests/registry.py``).

jit and eager agree; vmap over a new leading axis equals a Python loop;
batches of size 0 and 1 give finite values of the right shape; gradients are
finite and pass ``jax.test_util.check_grads`` (order 1, reverse mode) at
generic points; invariances (batch permutation, translation, logit shift of
1e6, positive scaling); random shapes (hypothesis, profile "ci").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from tests.helpers import summed_outputs
from tests.registry import (
    DIFFERENTIABLE,
    GENERIC,
    SPECS,
    float_leaves,
    ids,
    leaves,
    public_names,
)


def _close(a, b, rtol, atol):
    la, lb = leaves(a), leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        assert x.shape == y.shape
        np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol, atol)


def test_registry_is_complete():
    missing = public_names() - set(SPECS)
    stale = set(SPECS) - public_names()
    assert not missing, f"public names without a registry entry in tests/registry.py: {missing}"
    assert not stale, f"registry entries that are not public names: {stale}"


def test_excluded_entries_say_why():
    for spec in SPECS.values():
        assert spec.generic or spec.note, spec.name


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32"])  # float64: the random-shape test below
@pytest.mark.parametrize("spec", GENERIC, ids=ids(GENERIC))
def test_jit_matches_eager_and_keeps_dtype(spec, dtype):
    args = spec.args(n=max(4, spec.min_n), dtype=dtype)
    eager = spec.call(*args)
    jitted = jax.jit(spec.call)(*args)
    tol = 1e-5 if dtype == "float32" else 1e-12
    _close(eager, jitted, tol, tol)
    if spec.lowp:
        for o in float_leaves(eager):
            assert o.dtype == jnp.dtype(dtype), (spec.name, o.dtype)


@pytest.mark.slow
@pytest.mark.parametrize("spec", GENERIC, ids=ids(GENERIC))
def test_vmap_equals_loop(spec):
    n = max(3, spec.min_n)
    batches = [spec.args(n=n, seed=s) for s in range(2)]
    stacked = [jnp.stack(a) for a in zip(*batches, strict=True)]
    # the vmapped call and the loop in one compiled program (eager: test_jit_matches_eager_and_keeps_dtype)
    mapped, looped = jax.jit(lambda s, b: (jax.vmap(spec.call)(*s), [spec.call(*a) for a in b]))(
        stacked, batches
    )
    for i, out in enumerate(looped):
        _close(jax.tree_util.tree_map(lambda o, i=i: o[i], mapped), out, 1e-10, 1e-10)


BATCHED = [s for s in GENERIC if s.min_n <= 1 and s.kind != "other"]


@pytest.mark.slow
@pytest.mark.parametrize("n", [0, 1])
@pytest.mark.parametrize("spec", BATCHED, ids=ids(BATCHED))
def test_batch_of_size_zero_and_one(spec, n):
    args = spec.args(n=n)
    if spec.diff:  # value and gradients in one compilation (eager: see the random-shape test)
        diff = tuple(range(len(spec.diff)))

        @jax.jit
        def value_and_grads(*diff_args):
            return spec.call(*args), jax.grad(summed_outputs(spec, args, cotangent=True), argnums=diff)(
                *diff_args
            )

        out, grads = value_and_grads(*[args[i] for i in spec.diff])
        for g in grads:
            assert bool(jnp.all(jnp.isfinite(g))), spec.name
    else:
        out = jax.jit(spec.call)(*args)
    for o in float_leaves(out):
        assert bool(jnp.all(jnp.isfinite(o))), (spec.name, o)
    if spec.kind == "rows":
        for o in leaves(out):
            assert o.shape[0] == n, (spec.name, o.shape)
    else:  # a batch-level value: a scalar; a mean over nothing is 0
        (o,) = leaves(out)
        assert o.shape == ()
        if n == 0:
            assert float(o) == spec.empty, (spec.name, o)


@pytest.mark.slow
@pytest.mark.parametrize("spec", DIFFERENTIABLE, ids=ids(DIFFERENTIABLE))
def test_check_grads_at_generic_points(spec):
    args = spec.args(n=max(4, spec.min_n), seed=1)
    fn = jax.jit(summed_outputs(spec, args, cotangent=True))  # check_grads calls it many times at one shape
    diff_args = [args[i] for i in spec.diff]
    grads = jax.grad(fn, argnums=tuple(range(len(diff_args))))(*diff_args)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    check_grads(fn, diff_args, order=1, modes=["rev"], eps=1e-5, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- invariances

PERMUTABLE = [s for s in GENERIC if s.kind in ("rows", "set")]


@pytest.mark.slow
@pytest.mark.parametrize("spec", PERMUTABLE, ids=ids(PERMUTABLE))
def test_batch_permutation(spec):
    n = max(6, spec.min_n)
    args = spec.args(n=n, seed=2)
    perm = np.random.default_rng(3).permutation(n)
    axes = spec.batch_axes(len(args))
    permuted = [a if ax is None else jnp.take(a, perm, axis=ax) for a, ax in zip(args, axes, strict=True)]
    # one compilation for both calls (eager: test_jit_matches_eager_and_keeps_dtype)
    call = jax.jit(spec.call)
    out, out_p = call(*args), call(*permuted)
    if spec.kind == "rows":
        out = jax.tree_util.tree_map(lambda o: o[perm], out)
    _close(out_p, out, 1e-10, 1e-10)


TRANSLATION = [s for s in GENERIC if s.translation]


@pytest.mark.slow
@pytest.mark.parametrize("spec", TRANSLATION, ids=ids(TRANSLATION))
def test_translation(spec):
    args = spec.args(n=5, seed=4)
    shift = jnp.asarray(np.random.default_rng(5).normal(size=args[0].shape[-1]) * 10)
    moved = [a + shift if i in spec.diff else a for i, a in enumerate(args)]
    # knn's indices are invariant, its distances too (up to rounding): compare all leaves
    call = jax.jit(spec.call)  # one compilation for both calls
    _close(call(*moved), call(*args), 1e-8, 1e-8)


SHIFT = [s for s in GENERIC if s.shift]


@pytest.mark.parametrize("spec", SHIFT, ids=ids(SHIFT))
def test_logit_shift_by_1e6(spec):
    args = spec.args(n=5, seed=6)
    moved = [a + 1e6 if i in spec.shift else a for i, a in enumerate(args)]
    # float64: adding 1e6 moves the logits by up to ulp(1e6) ~ 1.2e-10
    call = jax.jit(spec.call)  # one compilation for both calls
    _close(call(*moved), call(*args), 1e-8, 1e-8)


SCALE = [s for s in GENERIC if s.scale]


@pytest.mark.parametrize("spec", SCALE, ids=ids(SCALE))
def test_positive_scale(spec):
    args = spec.args(n=5, seed=7)
    rng = np.random.default_rng(8)
    moved = [
        a * jnp.asarray(rng.uniform(0.1, 10.0, size=a.shape[:-1] + (1,))) if i in spec.scale else a
        for i, a in enumerate(args)
    ]
    call = jax.jit(spec.call)  # one compilation for both calls
    _close(call(*moved), call(*args), 1e-9, 1e-9)


# --------------------------------------------------------------------------- random shapes


@pytest.mark.slow
@pytest.mark.parametrize("spec", GENERIC, ids=ids(GENERIC))
@settings(max_examples=2)  # 2 per function x ~90 functions (+ the fixed sizes above); 30 would take minutes
@given(n=st.integers(0, 6), d=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_random_shapes_float32_matches_float64(spec, n, d, seed):
    n = max(n, spec.min_n)
    args64 = spec.make(np.random.default_rng(seed), n, "float64", d)
    args32 = tuple(a.astype(jnp.float32) if jnp.issubdtype(a.dtype, jnp.floating) else a for a in args64)
    # both precisions in one compiled program (two independent subcomputations): jit and eager
    # agree (test_jit_matches_eager_and_keeps_dtype), and one compilation costs less than running
    # the tiled functions op by op at two precisions
    out64, out32 = jax.jit(lambda a64, a32: (spec.call(*a64), spec.call(*a32)))(args64, args32)
    for o in float_leaves(out64):
        assert bool(jnp.all(jnp.isfinite(o))), (spec.name, n, d)
    if spec.kind == "rows":
        for o in leaves(out64):
            assert o.shape[0] == n
    if spec.name.endswith("knn"):  # ties may order differently across dtypes: compare distances
        out64, out32 = out64[0], out32[0]
    for a, b in zip(float_leaves(out32), float_leaves(out64), strict=True):
        if spec.lowp:  # the input's precision is kept
            assert (a.dtype, b.dtype) == (jnp.float32, jnp.float64), (spec.name, a.dtype, b.dtype)
        else:  # a count or a rate: its dtype does not follow the inputs' precision
            assert a.dtype == b.dtype, (spec.name, a.dtype, b.dtype)
        scale = max(1.0, float(jnp.max(jnp.abs(b)))) if b.size else 1.0
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b), 1e-4, 1e-5 * scale)
