"""The linear-head engine (``jaxloss._linear_head``) against dense float64 autodiff, feature by feature.

Reference: every statistic kind written out in plain ``jax.numpy`` on the
whole float64 logits (``softcap(x W + b) / T`` of both heads), differentiated
by ``jax.grad``. The engine's tiled ``custom_vjp`` (ragged blocks, the
single-block shortcut) and its dense evaluation of the same declaration must
equal it to ~1e-12, values and gradients with respect to the inputs, the
kernel, the bias and the per-class arrays. The cross-cutting rules of the
heads are checked here once for the three public heads: the block policy's
``None``, ``where`` with bad values in masked rows, a NaN in the kernel,
forward-mode differentiation, the temporary memory in terms of the blocks,
and two processes.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss import _block_policy, _linear_head
from jaxloss._linear_head import Stat

N, D, DO, V = 19, 5, 4, 13


# --------------------------------------------------------------------------- a declaration of every kind


def _class_weighted_logits(tile):
    return tile.logits[0] * tile.classes[0][None, :]


def _label_class_value(tile):
    return jnp.where(tile.hit, tile.classes[0][None, :], 0)


def _sin_times_other(tile):
    return jnp.sin(tile.logits[0]) * tile.logits[1]


def _squared(tile):
    return jnp.square(tile.logits[0])


def _mean_log_prob_under_other(tile):
    """After-statistic: ``V = sum_c p_c lt_c`` (``p`` head 0's softmax, ``lt`` head 1's log-softmax)."""
    return (jnp.exp(tile.log_prob(0)) * tile.log_prob(1),)


def _mean_log_prob_grad(tile, sums):
    p = jnp.exp(tile.log_prob(0))
    return p * (tile.log_prob(1) - sums[0][:, None])


STATS = (
    _linear_head.LOGSUMEXP,
    Stat("lse", head=1),
    _linear_head.ENTROPY,
    _linear_head.LABEL_LOGIT,
    Stat("sum", term=_class_weighted_logits),
    Stat("sum", term=_label_class_value),
    Stat("mean", head=0, term=_sin_times_other),
    Stat("mean", head=1, term=_squared),
    Stat("after", term=_mean_log_prob_under_other, grad=_mean_log_prob_grad),
)


def _reference(x, k, b, w, xo, ko, bo, y, softcap, inv_t):
    """Every statistic of ``STATS`` from the whole logits, plain jax.numpy."""

    def logits(x, k, b):
        z = x @ k + b
        if softcap is not None:
            z = softcap * jnp.tanh(z / softcap)
        return z * inv_t

    a = logits(x, k, b)
    c = jax.lax.stop_gradient(logits(xo, ko, bo))
    ls, lt = jax.nn.log_softmax(a, -1), jax.nn.log_softmax(c, -1)
    ps, pt = jnp.exp(ls), jnp.exp(lt)
    onehot = jax.nn.one_hot(y, V, dtype=a.dtype)
    return (
        jax.nn.logsumexp(a, -1),
        jax.nn.logsumexp(c, -1),
        -jnp.sum(ps * ls, -1),
        jnp.sum(onehot * a, -1),
        jnp.sum(a * w, -1),
        jnp.sum(onehot * w, -1),
        jnp.sum(ps * jnp.sin(a) * c, -1),
        jnp.sum(pt * a**2, -1),
        jnp.sum(ps * lt, -1),
    )


def _data(seed=0):
    r = np.random.default_rng(seed)
    x = r.normal(size=(N, D))
    k = r.normal(size=(D, V))
    b = r.normal(size=V)
    w = r.uniform(0.5, 2.0, size=V)
    xo, ko, bo = r.normal(size=(N, DO)), r.normal(size=(DO, V)), r.normal(size=V)
    y = r.integers(0, V, size=N)
    cts = r.normal(size=(len(STATS), N))
    return x, k, b, w, xo, ko, bo, y, cts


def _engine(blocks, softcap, inv_t, where=None):
    config = _linear_head.Config(blocks, softcap, inv_t)

    def values(x, k, b, w, xo, ko, bo, y):
        return _linear_head.statistics(
            STATS, x, k, b, config=config, other=(xo, ko, bo), labels=y, where=where, classes=(w,)
        )

    return values


def _value_and_grads(values_fn, data):
    x, k, b, w, xo, ko, bo, y, cts = data

    def total(x, k, b, w):
        out = values_fn(x, k, b, w, xo, ko, bo, y)
        return sum(jnp.sum(o * c) for o, c in zip(out, cts, strict=True)), out

    (_, out), grads = jax.jit(jax.value_and_grad(total, argnums=(0, 1, 2, 3), has_aux=True))(
        *(jnp.asarray(a) for a in (x, k, b, w))
    )
    return out, grads


@pytest.mark.parametrize(
    ("blocks", "softcap", "inv_t"),
    [((8, 7), 2.5, 1 / 0.7), ((N, V), None, 1.0), (None, 3.0, 1.3), ((1, 1), None, 1.0), ((4, 13), 1.5, 1.0)],
    ids=["ragged-softcap-temperature", "one-block", "dense-softcap", "one-by-one", "ragged-tokens-softcap"],
)
def test_every_statistic_kind_equals_dense_float64_autodiff(blocks, softcap, inv_t):
    data = _data()
    ref, ref_grads = _value_and_grads(lambda *a: _reference(*a[:3], a[3], *a[4:], softcap, inv_t), data)
    out, grads = _value_and_grads(_engine(blocks, softcap, inv_t), data)
    for o, r in zip(out, ref, strict=True):
        np.testing.assert_allclose(o, r, rtol=1e-12, atol=1e-12)
    for g, r in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("blocks", [(8, 7), None], ids=["tiled", "dense"])
def test_masked_rows_give_zero_and_no_gradient_whatever_they_hold(blocks):
    data = list(_data(1))
    where = np.arange(N) % 3 != 1
    data[0] = np.where(where[:, None], data[0], np.nan)  # bad inputs on masked rows
    data[4] = np.where(where[:, None], data[4], np.inf)
    out, grads = _value_and_grads(_engine(blocks, 2.0, 1.0, where=jnp.asarray(where)), data)
    for o in out:
        assert np.all(np.asarray(o)[~where] == 0) and np.all(np.isfinite(o))
    assert all(np.all(np.isfinite(g)) for g in grads)
    assert not np.any(np.asarray(grads[0])[~where])
    # the kept rows: the reference on the kept rows alone
    kept = [a[where] if np.ndim(a) and a.shape[0] == N else a for a in data[:8]]
    kept.append(data[8][:, where])
    ref, ref_grads = _value_and_grads(lambda *a: _reference(*a[:3], a[3], *a[4:], 2.0, 1.0), kept)
    for o, r in zip(out, ref, strict=True):
        np.testing.assert_allclose(np.asarray(o)[where], r, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(grads[0])[where], ref_grads[0], rtol=1e-11, atol=1e-12)
    for g, r in zip(grads[1:], ref_grads[1:], strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-12)


# --------------------------------------------------------------------------- the public heads, once each


def _heads(blocks):
    """Each public head as a function of (inputs, kernel) with every other argument fixed."""
    r = np.random.default_rng(3)
    y = jnp.asarray(r.integers(0, V, size=N))
    xt, kt = jnp.asarray(r.normal(size=(N, DO))), jnp.asarray(r.normal(size=(DO, V)))
    opts = {} if blocks is None else {"block_size": blocks[0], "vocab_block_size": blocks[1]}
    return {
        "linear_softmax_cross_entropy": lambda x, k: jaxloss.linear_softmax_cross_entropy(
            x, k, y, label_smoothing=0.1, logit_softcap=3.0, **opts
        ),
        "linear_softmax_statistics": lambda x, k: jnp.stack(
            [
                *jaxloss.linear_softmax_statistics(x, k, y, temperature=0.8, **opts)[:2],
                jaxloss.linear_softmax_statistics(x, k, temperature=0.8, **opts).entropy,
            ]
        ),
        "linear_distillation_loss": lambda x, k: jaxloss.linear_distillation_loss(
            x, k, xt, kt, divergence="jsd", beta=0.3, logit_softcap=2.0, **opts
        ),
    }


@pytest.mark.parametrize("name", sorted(_heads(None)))
def test_a_nan_in_the_kernel_gives_nan_not_minus_inf(name):
    r = np.random.default_rng(4)
    x, k = r.normal(size=(N, D)), r.normal(size=(D, V))
    k[2, 5] = np.nan
    for blocks in (None, (8, 7)):
        out = np.asarray(jax.jit(_heads(blocks)[name])(x, k))
        assert np.all(np.isnan(out)), (blocks, out)


@pytest.mark.parametrize("name", sorted(_heads(None)))
def test_forward_mode_through_the_tiled_path_equals_the_dense_one(name):
    r = np.random.default_rng(5)
    x, k = jnp.asarray(r.normal(size=(N, D))), jnp.asarray(r.normal(size=(D, V)))
    tx, tk = jnp.asarray(r.normal(size=(N, D))), jnp.asarray(r.normal(size=(D, V)))
    dense, tiled = _heads(None)[name], _heads((8, 7))[name]
    want = jax.jvp(dense, (x, k), (tx, tk))
    got = jax.jit(lambda *a: jax.jvp(tiled, a[:2], a[2:]))(x, k, tx, tk)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-12)
    # jacfwd (vmap of jvp) against the reverse-mode Jacobian of the same tiled function
    jf = jax.jit(jax.jacfwd(tiled))(x, k)
    jr = jax.jit(jax.jacrev(tiled))(x, k)
    np.testing.assert_allclose(jf, jr, rtol=1e-10, atol=1e-12)


def _jaxpr(fn, n, v):
    return str(
        jax.make_jaxpr(fn)(
            jax.ShapeDtypeStruct((n, D), jnp.float32), jax.ShapeDtypeStruct((D, v), jnp.float32)
        )
    )


@pytest.mark.parametrize("name", sorted(_heads(None)))
def test_none_block_sizes_are_dense_up_to_the_budget_then_tiled(name):
    budget = _block_policy.HEADS.dense_max
    v = 1024
    n = budget // v

    def head(n):
        r = np.random.default_rng(6)
        y = jnp.asarray(r.integers(0, v, size=n))
        xt, kt = jnp.zeros((n, DO)), jnp.zeros((DO, v))
        return {
            "linear_softmax_cross_entropy": lambda x, k: jaxloss.linear_softmax_cross_entropy(x, k, y),
            "linear_softmax_statistics": lambda x, k: jaxloss.linear_softmax_statistics(x, k, y).logsumexp,
            "linear_distillation_loss": lambda x, k: jaxloss.linear_distillation_loss(x, k, xt, kt),
        }[name]

    assert "custom_vjp_call" not in _jaxpr(head(n), n, v)  # N V = 2^22: dense
    assert "custom_vjp_call" in _jaxpr(head(n + 1), n + 1, v)  # one token more: tiled
    small = _jaxpr(
        lambda x, k: jaxloss.linear_softmax_cross_entropy(x, k, jnp.zeros(8, int), block_size=8), 8, v
    )
    assert "custom_vjp_call" in small  # a block size given: tiled even when small


def test_two_pass_heads_take_the_whole_vocabulary_as_one_block_on_a_cpu():
    heads = _block_policy.HEADS
    whole = _block_policy.HEADS_TWO_PASS_WHOLE_VOCABULARY
    resolve = _block_policy.resolve_two_pass_blocks
    if jax.default_backend() == "cpu":
        assert resolve(heads, 2048, 32000, None, None) == (128, 32000)
        assert resolve(heads, 2048, 8000, None, None) == (512, 8000)
        assert resolve(heads, 200, whole, None, None) == (128, whole)
        assert resolve(heads, 100, whole, None, None, dense=False) == (100, whole)
    # beyond the threshold, with a block size given, dense or vocabulary-parallel: the one policy
    for args in [(2048, whole + 1, None, None), (2048, 32000, 64, None), (2048, 32000, None, 512)]:
        assert resolve(heads, *args) == _block_policy.resolve_blocks(heads, *args)
    assert resolve(heads, 64, 1024, None, None) is None
    assert resolve(heads, 64, 1024, None, None, dense=False) == (64, 1024)


# --------------------------------------------------------------------------- memory


def _temp_bytes(loss, n, d, v):
    shapes = (
        jax.ShapeDtypeStruct((n, d), jnp.float32),
        jax.ShapeDtypeStruct((d, v), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.slow
def test_value_and_grad_temporaries_are_two_tiles_and_the_input_gradient():
    n, d, v = 8192, 1024, 131072
    tb, vb = _block_policy.default_blocks(_block_policy.HEADS, "cpu")
    tile = tb * vb * 4
    # one forward/backward tile of logits, the (D, vb) kernel-gradient block, the (N, D) float32
    # input-gradient carry and per-token statistics: nothing of size N x V
    budget = 2 * tile + d * vb * 4 + n * d * 4 + 64 * n
    fns = {
        "cross-entropy": lambda x, k, y: jaxloss.linear_softmax_cross_entropy(x, k, y).mean(),
        # ignored tokens are zeroed tile by tile: no masked (N, D) copy of the inputs
        "ignore_index": lambda x, k, y: jaxloss.linear_softmax_cross_entropy(x, k, y, ignore_index=0).mean(),
        "label log-prob": lambda x, k, y: jaxloss.linear_softmax_statistics(x, k, y).label_log_prob.mean(),
        "statistics": lambda x, k, y: sum(jnp.mean(s) for s in jaxloss.linear_softmax_statistics(x, k, y)),
    }
    logits = n * v * 4
    for name, fn in fns.items():
        temp = _temp_bytes(fn, n, d, v)
        assert temp <= budget, (name, temp, budget)
        assert logits / temp >= 50, (name, temp)


# --------------------------------------------------------------------------- two processes


def _two_process_case():
    r = np.random.default_rng(8)
    n, d, v = 11, 6, 24
    x, k, b = r.normal(size=(n, d)), r.normal(size=(d, v)) / math.sqrt(d), r.normal(size=v)
    xt, kt = r.normal(size=(n, 3)), r.normal(size=(3, v))
    y = r.integers(0, v, size=n)
    y[[2, 7]] = -100
    where = np.arange(n) % 4 != 3
    ct = r.normal(size=(3, n))
    return x, k, b, xt, kt, y, where, ct


def _two_process_losses(axis_name, x, k, b, xt, kt, y, where):
    opts = {"block_size": 4, "vocab_block_size": 5, "axis_name": axis_name}
    stats = jaxloss.linear_softmax_statistics(
        x, k, y, bias=b, temperature=0.9, logit_softcap=4.0, ignore_index=-100, where=where, **opts
    )
    jsd = jaxloss.linear_distillation_loss(
        x, k, xt, kt, student_bias=b, divergence="jsd", beta=0.4, where=where, **opts
    )
    return jnp.stack([stats.label_log_prob, stats.entropy, jsd])


def _two_process_run(mesh):
    axis = None if mesh is None else "d"

    def objective(x, k, b, xt, kt, y, where, ct):
        f = functools.partial(_two_process_losses, axis)
        if mesh is not None:
            specs = (jax.P(), jax.P(None, axis), jax.P(axis), jax.P(), jax.P(None, axis), jax.P(), jax.P())
            f = jax.shard_map(f, mesh=mesh, in_specs=specs, out_specs=jax.P())
        out = f(x, k, b, xt, kt, y, where)
        return jnp.sum(out * ct), out

    return jax.jit(jax.value_and_grad(objective, argnums=(0, 1, 2), has_aux=True))


def _two_process_worker():
    from jax.sharding import Mesh

    mesh = Mesh(np.array(jax.devices()), ("d",))
    (_, out), grads = _two_process_run(mesh)(*_two_process_case())
    return {"out": out, "dx": grads[0], "dk": grads[1], "db": grads[2]}


@pytest.mark.slow
def test_statistics_and_distillation_across_two_processes_equal_one_device():
    from tests.multiprocess import run_multiprocess

    got = run_multiprocess(_two_process_worker, timeout=200, x64=True)
    (_, out), grads = _two_process_run(None)(*_two_process_case())
    np.testing.assert_allclose(got["out"], out, rtol=1e-10, atol=1e-12)
    for key, g in zip(("dx", "dk", "db"), grads, strict=True):
        np.testing.assert_allclose(got[key], g, rtol=1e-10, atol=1e-12)
        assert np.abs(np.asarray(g)).max() > 0


def test_a_bad_declaration_is_refused():
    x, k = jnp.ones((3, 2)), jnp.ones((2, 4))
    config = _linear_head.Config(None)
    for stat in (
        Stat("max"),
        Stat("sum"),
        Stat("after", term=_mean_log_prob_under_other),
        Stat("lse", head=1),
    ):
        with pytest.raises(ValueError, match="linear-head statistics"):
            _linear_head.statistics((stat,), x, k, config=config)
