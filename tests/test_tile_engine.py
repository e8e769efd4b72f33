"""The tiled statistics engine (``jaxloss/_tile_engine.py``), feature by feature."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss import _tile_engine
from tests.helpers import run_python

# --------------------------------------------------------------------------- the statistics engine
#
# Each feature of _tile_engine.statistics is checked once here, values and gradients against plain
# autodiff of a dense float64 formula: ragged row and column blocks, a (D, M) class matrix
# sliced on its last axis, masks over rows, columns and pairs, a per-tile transform of a target
# logit, two score matrices (student and frozen teacher), lse / sum / softmax-mean statistics per
# row and per column, and (slow, four devices) the ring and the class-parallel layouts.

_N, _M, _D = 11, 13, 4


def _engine_data():
    r = np.random.default_rng(3)
    x, xt = (jnp.asarray(r.normal(size=(_N, _D))) for _ in range(2))
    w, wt = (jnp.asarray(r.normal(size=(_D, _M))) for _ in range(2))
    labels = jnp.asarray(r.integers(0, _M, _N))
    keep = jnp.asarray(r.random(_M) > 0.2)
    rows_ok = jnp.asarray(r.random(_N) > 0.2)
    weights = [jnp.asarray(r.normal(size=k)) for k in (_N, _N, _N, _N, _M, _M)]
    return x, xt, w, wt, labels, keep, rows_ok, weights


def _target(rows, cols):
    return rows["label"][:, None] == cols["index"][None, :]


def _two_heads(params, rows, cols):
    zs = params["s"] * rows["x"] @ cols["w"]
    zs = jnp.where(_target(rows, cols), zs - 0.3 * zs**2, zs)  # a per-tile transform of the target logit
    return zs, rows["xt"] @ cols["wt"]


_ENGINE_STATS = (
    _tile_engine.Stat("lse", mask=lambda r, c: c["keep"][None, :]),
    _tile_engine.Stat("sum", mask=_target, term=lambda z, r, c: z[0]),
    _tile_engine.Stat("mean", score=1, term=lambda z, r, c: z[1] - z[0]),
    _tile_engine.Stat("lse", mask=lambda r, c: r["ok"][:, None] & c["keep"][None, :]),
    _tile_engine.Stat("lse", "col", mask=lambda r, c: r["ok"][:, None]),
    _tile_engine.Stat("sum", "col", term=lambda z, r, c: jnp.sin(z[0])),
)


def _engine_dense(s, x, w, xt, wt, labels, keep, rows_ok):
    zs = s * x @ w
    hit = labels[:, None] == jnp.arange(_M)[None, :]
    zs = jnp.where(hit, zs - 0.3 * zs**2, zs)
    zt = xt @ wt
    both = rows_ok[:, None] & keep[None, :]
    return (
        jax.nn.logsumexp(jnp.where(keep[None], zs, -jnp.inf), axis=1),
        jnp.sum(jnp.where(hit, zs, 0), axis=1),
        jnp.sum(jax.nn.softmax(zt, axis=1) * (zt - zs), axis=1),
        jnp.where(jnp.any(both, 1), jax.nn.logsumexp(jnp.where(both, zs, -1e300), axis=1), -jnp.inf),
        jax.nn.logsumexp(jnp.where(rows_ok[:, None], zs, -jnp.inf), axis=0),
        jnp.sum(jnp.sin(zs), axis=0),
    )


@pytest.mark.parametrize(
    "blocks",
    [(None, None), (4, 5), pytest.param((1, 13), marks=pytest.mark.slow), (11, 3), (5, None)],
)
def test_engine_equals_dense_autodiff_in_float64(blocks):
    x, xt, w, wt, labels, keep, rows_ok, weights = _engine_data()
    tiling = _tile_engine.Tiling(_two_heads, _ENGINE_STATS, *blocks, col_axis=-1)

    def engine(s, x, w):
        row_data = {"xt": xt, "label": labels, "ok": rows_ok}
        return _tile_engine.statistics(
            tiling, {"s": s}, {"x": x}, {"w": w}, row_data, {"wt": wt, "keep": keep}
        )

    def dense(s, x, w):
        return _engine_dense(s, x, w, xt, wt, labels, keep, rows_ok)

    def scalar(f):
        return lambda *a: sum(
            jnp.sum(jnp.where(jnp.isfinite(v), c * v, 0)) for c, v in zip(weights, f(*a), strict=True)
        )

    args = (jnp.float64(1.3), x, w)
    got, want = jax.jit(engine)(*args), jax.jit(dense)(*args)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    g_got = jax.jit(jax.grad(scalar(engine), argnums=(0, 1, 2)))(*args)
    g_want = jax.jit(jax.grad(scalar(dense), argnums=(0, 1, 2)))(*args)
    # the frozen teacher gets no gradient; the student all of it
    for a, b in zip(g_got, g_want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_engine_forward_mode_equals_dense_forward_mode():
    """``jax.jvp`` around a tiled call: the forward sweep as plain JAX (the custom VJP has no
    forward mode) gives the dense formula's tangents."""
    x, xt, w, wt, labels, keep, rows_ok, weights = _engine_data()
    tiling = _tile_engine.Tiling(_two_heads, _ENGINE_STATS, 4, 5, col_axis=-1)

    def scalar(f):
        return lambda *a: sum(
            jnp.sum(jnp.where(jnp.isfinite(v), c * v, 0)) for c, v in zip(weights, f(*a), strict=True)
        )

    def engine(s, x, w):
        row_data = {"xt": xt, "label": labels, "ok": rows_ok}
        return _tile_engine.statistics(
            tiling, {"s": s}, {"x": x}, {"w": w}, row_data, {"wt": wt, "keep": keep}
        )

    def dense(s, x, w):
        return _engine_dense(s, x, w, xt, wt, labels, keep, rows_ok)

    args = (jnp.float64(1.3), x, w)
    r = np.random.default_rng(4)
    tangents = (jnp.float64(0.7), *(jnp.asarray(r.normal(size=a.shape)) for a in args[1:]))
    got = jax.jit(lambda a, t: jax.jvp(scalar(engine), a, t))(args, tangents)
    want = jax.jvp(scalar(dense), args, tangents)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


_B = 9
_LABELS = jnp.array([0, 0, 1, 1, 2, 2, 0, 1, 3])


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, loss",
    [
        ("supervised_contrastive_loss", lambda q, k, n, bs: jaxloss.supervised_contrastive_loss(
            q, _LABELS, block_size=bs)),
        ("clip_loss", lambda q, k, n, bs: jaxloss.clip_loss(q, k, block_size=bs)),
        ("arcface_loss", lambda q, k, n, bs: jnp.sum(jaxloss.arcface_loss(
            q, k[:5].T, _LABELS, sub_centers=1, class_block_size=bs))),
        ("multiple_negatives_ranking_loss", lambda q, k, n, bs: jaxloss.multiple_negatives_ranking_loss(
            q, k, n, block_size=bs)),
    ],
)  # fmt: skip
def test_forward_mode_through_tiled_losses(name, loss):
    """The contrastive, margin and embedding losses on their tiled paths: ``jax.jvp`` equals the
    dense path's, ``jax.jacfwd`` equals ``jax.jacrev``."""
    r = np.random.default_rng(5)
    q, k, tq, tk = (jnp.asarray(r.normal(size=(_B, 5))) for _ in range(4))
    neg = jnp.asarray(r.normal(size=(_B, 2, 5)))
    want = jax.jvp(lambda a, b: loss(a, b, neg, None), (q, k), (tq, tk))
    got = jax.jit(lambda a, b, ta, tb: jax.jvp(lambda x, y: loss(x, y, neg, 4), (a, b), (ta, tb)))(
        q, k, tq, tk
    )
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, err_msg=name)
    fwd = jax.jit(jax.jacfwd(lambda a: loss(a, k, neg, 4)))(q)
    rev = jax.jit(jax.jacrev(lambda a: loss(a, k, neg, 4)))(q)
    np.testing.assert_allclose(fwd, rev, rtol=1e-10, atol=1e-12, err_msg=name)


def test_engine_empty_rows():
    tiling = _tile_engine.Tiling(_two_heads, _ENGINE_STATS[:1] + _ENGINE_STATS[4:], 4, 4, col_axis=-1)
    x, xt, w, wt, labels, keep, rows_ok, _ = _engine_data()
    empty = {"xt": xt[:0], "label": labels[:0], "ok": rows_ok[:0]}
    lse, col_lse, col_sum = _tile_engine.statistics(
        tiling, {"s": 1.0}, {"x": x[:0]}, {"w": w}, empty, {"wt": wt, "keep": keep}
    )
    assert lse.shape == (0,)
    np.testing.assert_array_equal(col_lse, np.full(_M, -np.inf))
    np.testing.assert_array_equal(col_sum, np.zeros(_M))


_ENGINE_DEVICES = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, PartitionSpec as P
import jaxloss
from jaxloss import _tile_engine
jax.config.update("jax_enable_x64", True)
r = np.random.default_rng(0)
n, m, d = 12, 20, 4
mesh = Mesh(np.array(jax.devices()), ("i",))
# class-parallel: rows replicated, a (d, m) class matrix split on its class axis
x = jnp.asarray(r.normal(size=(n, d))); w = jnp.asarray(r.normal(size=(d, m)))
lab = jnp.asarray(r.integers(0, m, n))
stats = (_tile_engine.Stat("lse"),
         _tile_engine.Stat("sum", mask=lambda r, c: r["label"][:, None] == c["index"][None, :], term=lambda z, r, c: z[0]),
         _tile_engine.Stat("mean", term=lambda z, r, c: jnp.cos(z[0])))
def classes(s, x, w, b, ax=None):
    t = _tile_engine.Tiling(lambda p, r, c: p["s"] * r["x"] @ c["w"], stats, b, b and b // 2, col_axis=-1,
                      axis_name=ax, parallel="columns")
    a, tgt, e = _tile_engine.statistics(t, {"s": s}, {"x": x}, {"w": w}, {"label": lab})
    return jnp.sum(a - tgt + e * jnp.arange(n))
v0, g0 = jax.value_and_grad(classes, argnums=(0, 1, 2))(0.7, x, w, None)
for b in (None, 4, 12):
    f = jax.shard_map(lambda s, x, w: classes(s, x, w, b, "i"), mesh=mesh,
                      in_specs=(P(), P(), P(None, "i")), out_specs=P())
    v, g = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))(0.7, x, w)
    np.testing.assert_allclose(v, v0, rtol=1e-12)
    for a, c in zip(g, g0):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
# ring: rows and columns both split, per-row and per-column statistics
q = jnp.asarray(r.normal(size=(n, d))); k = jnp.asarray(r.normal(size=(n, d)))
st = (_tile_engine.Stat("lse"), _tile_engine.Stat("lse", "col"),
      _tile_engine.Stat("sum", "col", mask=lambda r, c: r["index"][:, None] != c["index"][None, :],
                  term=lambda z, r, c: jnp.sin(z[0])))
def ring(s, q, k, b, ax=None):
    t = _tile_engine.Tiling(lambda p, r, c: p["s"] * r["q"] @ c["k"].T, st, b, b, axis_name=ax)
    a, c, e = _tile_engine.statistics(t, {"s": s}, {"q": q}, {"k": k})
    tot = jnp.sum(a * jnp.cos(q[:, 0])) + jnp.sum(c + e * k[:, 1])
    return tot if ax is None else jax.lax.psum(tot, ax)
v0, g0 = jax.value_and_grad(ring, argnums=(0, 1, 2))(0.7, q, k, None)
for b in (None, 2, 3):
    f = jax.shard_map(lambda s, q, k: ring(s, q, k, b, "i"), mesh=mesh,
                      in_specs=(P(), P("i"), P("i")), out_specs=P())
    v, g = jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))(0.7, q, k)
    np.testing.assert_allclose(v, v0, rtol=1e-12)
    for a, c in zip(g, g0):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
print("engine devices ok")
"""


@pytest.mark.slow  # a subprocess with 4 forced CPU devices
def test_engine_ring_and_class_parallel_equal_one_device():
    assert "engine devices ok" in run_python(_ENGINE_DEVICES, devices=4, timeout=300)
