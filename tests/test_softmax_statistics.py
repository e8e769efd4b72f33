"""``linear_softmax_statistics`` against float64 PyTorch.

References: float64 PyTorch on the dense logits (``torch.logsumexp``,
``log_softmax`` and its ``gather`` at the labels, ``-(p log p).sum()``) and
autograd for the gradients with respect to the inputs, the kernel and the
bias, in every combination of the three fields' cotangents; masked tokens
(``where``, ``ignore_index``) against the reference on the kept tokens. Both
the dense path and the tiled custom VJP (ragged blocks), jit and eager; the
vocabulary-parallel path on four forced CPU devices against one device.
"""

from __future__ import annotations

import itertools
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss
from tests.helpers import run_python

N, DS, V = 37, 5, 23
RAGGED = {"block_size": 8, "vocab_block_size": 7}


def _tol(dtype):
    return {"rtol": 2e-4, "atol": 2e-5} if dtype == jnp.float32 else {"rtol": 1e-9, "atol": 1e-11}


def _torch_statistics(x, k, b, y, cts, temperature=1.0, softcap=None):
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, k, b)]
    z = leaves[0] @ leaves[1] + leaves[2]
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    a = z / temperature
    lse = torch.logsumexp(a, -1)
    log_p = torch.log_softmax(a, -1)
    label = log_p.gather(-1, torch.tensor(y)[:, None])[:, 0]
    entropy = -(log_p.exp() * log_p).sum(-1)
    outs = (lse, label, entropy)
    total = sum((o * torch.tensor(c)).sum() for o, c in zip(outs, cts, strict=True) if c is not None)
    total.backward()
    return [o.detach().numpy() for o in outs], [a.grad.numpy() for a in leaves]


def _statistics_case(tiled, dtype, masks):
    r = np.random.default_rng(10)
    x, k, b = r.normal(size=(N, DS)), r.normal(size=(DS, V)), r.normal(size=(V,))
    y = r.integers(0, V, size=N)
    opts = {"temperature": 0.8, "logit_softcap": 4.0} | (RAGGED if tiled else {})

    @jax.jit
    def ours(x, k, b, cts):
        def total(x, k, b):
            stats = jaxloss.linear_softmax_statistics(x, k, y, bias=b, **opts)
            return sum(jnp.sum(s * c) for s, c in zip(stats, cts, strict=True) if c is not None), stats

        return jax.value_and_grad(total, argnums=(0, 1, 2), has_aux=True)(x, k, b)

    for mask in masks:
        cts = [r.normal(size=N) if m == 1 else (np.zeros(N) if m == 0 else None) for m in mask]
        ref, ref_grads = _torch_statistics(x, k, b, y, cts, temperature=0.8, softcap=4.0)
        args = [jnp.asarray(a, dtype) for a in (x, k, b)]
        (_, stats), grads = ours(*args, [None if c is None else jnp.asarray(c, dtype) for c in cts])
        for s, rr in zip(stats, ref, strict=True):
            assert s.dtype == dtype
            np.testing.assert_allclose(s, rr, **_tol(dtype))
        for g, rr in zip(grads, ref_grads, strict=True):
            np.testing.assert_allclose(g, rr, **_tol(dtype))


@pytest.mark.parametrize("tiled", [False, True], ids=["dense", "tiled"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_statistics_match_float64_torch(tiled, dtype):
    # one compilation: the cotangents are arguments (zeros switch a field off)
    _statistics_case(tiled, dtype, [(1, 1, 1), (0, 1, 0), (1, 0, 1), (0, 0, 1)])


@pytest.mark.slow
@pytest.mark.parametrize("tiled", [False, True], ids=["dense", "tiled"])
def test_statistics_every_combination_of_absent_cotangents(tiled):
    # None: the field is unused (a symbolic zero cotangent), one compilation each
    masks = [m for m in itertools.product((None, 1), repeat=3) if any(m)]
    _statistics_case(tiled, jnp.float64, masks)


@pytest.mark.slow
def test_statistics_without_labels_and_eager():
    r = np.random.default_rng(11)
    x, k = r.normal(size=(N, DS)), r.normal(size=(DS, V))
    for opts in ({}, RAGGED):
        stats = jaxloss.linear_softmax_statistics(x, k, **opts)
        assert stats.label_log_prob is None
        assert isinstance(stats, jaxloss.LinearSoftmaxStatistics)
        z = torch.tensor(x @ k)
        np.testing.assert_allclose(stats.logsumexp, torch.logsumexp(z, -1), rtol=1e-12)
        log_p = torch.log_softmax(z, -1)
        np.testing.assert_allclose(stats.entropy, -(log_p.exp() * log_p).sum(-1), rtol=1e-10)
        g = jax.grad(lambda x, o=opts: jnp.sum(jaxloss.linear_softmax_statistics(x, k, **o).entropy))(x)
        assert np.all(np.isfinite(g))


@pytest.mark.slow
def test_statistics_logsumexp_is_the_cross_entropy_one():
    r = np.random.default_rng(12)
    x = jnp.asarray(r.normal(size=(N, DS)), jnp.float32)
    k = jnp.asarray(r.normal(size=(DS, V)), jnp.float32)
    y = jnp.asarray(r.integers(0, V, size=N))
    for cap in (None, 3.0):
        opts = dict(logit_softcap=cap, **RAGGED)

        @jax.jit
        def run(x, k, y, opts=opts):
            return (
                jaxloss.linear_softmax_statistics(x, k, y, **opts),
                jaxloss.linear_softmax_cross_entropy(x, k, y, **opts),
                jaxloss.linear_softmax_cross_entropy(x, k, y, z_loss=1.0, **opts),
            )

        stats, ce, ce_z = run(x, k, y)
        np.testing.assert_allclose(-stats.label_log_prob, ce, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(jnp.square(stats.logsumexp), ce_z - ce, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_statistics_large_logits_keep_the_entropy_precise():
    r = np.random.default_rng(13)
    x = r.normal(size=(N, DS)) * 100
    k = r.normal(size=(DS, V))
    stats = jaxloss.linear_softmax_statistics(
        jnp.asarray(x, jnp.float32), jnp.asarray(k, jnp.float32), **RAGGED
    )
    log_p = torch.log_softmax(torch.tensor(x) @ torch.tensor(k), -1)
    np.testing.assert_allclose(stats.entropy, -(log_p.exp() * log_p).sum(-1), atol=1e-4)
    assert np.all(np.asarray(stats.entropy) >= 0)


@pytest.mark.parametrize("tiled", [False, True], ids=["dense", "tiled"])
def test_where_and_ignore_index_mask_tokens_to_zero_without_gradient(tiled):
    r = np.random.default_rng(14)
    x, k, b = r.normal(size=(N, DS)), r.normal(size=(DS, V)), r.normal(size=(V,))
    y = r.integers(0, V, size=N)
    y[::5] = -100
    where = np.arange(N) % 3 != 2
    kept = where & (y != -100)
    x[~kept] = np.nan  # whatever a masked token holds: no effect on anything else
    cts = [r.normal(size=N) for _ in range(3)]
    opts = {"temperature": 0.8, "logit_softcap": 4.0} | (RAGGED if tiled else {})

    @jax.jit
    def ours(x, k, b):
        def total(x, k, b):
            s = jaxloss.linear_softmax_statistics(x, k, y, bias=b, ignore_index=-100, where=where, **opts)
            return sum(jnp.sum(f * c) for f, c in zip(s, cts, strict=True)), s

        return jax.value_and_grad(total, argnums=(0, 1, 2), has_aux=True)(x, k, b)

    (_, stats), grads = ours(x, k, b)
    ref, ref_grads = _torch_statistics(
        x[kept], k, b, y[kept], [c[kept] for c in cts], temperature=0.8, softcap=4.0
    )
    for s, rr in zip(stats, ref, strict=True):
        np.testing.assert_array_equal(np.asarray(s)[~kept], 0)
        np.testing.assert_allclose(np.asarray(s)[kept], rr, rtol=1e-10, atol=1e-11)
    np.testing.assert_array_equal(np.asarray(grads[0])[~kept], 0)
    np.testing.assert_allclose(np.asarray(grads[0])[kept], ref_grads[0], rtol=1e-9, atol=1e-11)
    for g, rr in zip(grads[1:], ref_grads[1:], strict=True):
        np.testing.assert_allclose(g, rr, rtol=1e-9, atol=1e-11)


def test_out_of_range_labels_nan_when_traced_value_error_when_concrete():
    r = np.random.default_rng(15)
    x, k = r.normal(size=(N, DS)), r.normal(size=(DS, V))
    y = r.integers(0, V, size=N)
    y[[3, 4]] = [V, -1]
    lp = jax.jit(lambda y: jaxloss.linear_softmax_statistics(x, k, y, **RAGGED).label_log_prob)(y)
    assert np.isnan(lp[3]) and np.isnan(lp[4]) and np.isfinite(np.delete(np.asarray(lp), [3, 4])).all()
    with pytest.raises(ValueError, match="linear_softmax_statistics: `labels`"):
        jaxloss.linear_softmax_statistics(x, k, y)
    y[4] = -100
    with pytest.raises(ValueError, match="`labels`.*1 out of range"):
        jaxloss.linear_softmax_statistics(x, k, y, ignore_index=-100)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"kernel": np.zeros((2, 7))}, ValueError, "`kernel`"),
        ({"labels": np.zeros((4,))}, TypeError, "`labels`"),
        ({"labels": np.zeros((5,), int)}, ValueError, "`labels`"),
        ({"bias": np.zeros(3)}, ValueError, "`bias`"),
        ({"temperature": 0.0}, ValueError, "`temperature`"),
        ({"logit_softcap": -1.0}, ValueError, "`logit_softcap`"),
        ({"block_size": -1}, ValueError, "`block_size`"),
        ({"where": np.ones(3, bool)}, ValueError, "`where`"),
        ({"ignore_index": 1.5}, TypeError, "`ignore_index`"),
        ({"vocab_block_size": "8"}, TypeError, "`vocab_block_size`"),
    ],
)
def test_statistics_bad_inputs_name_the_argument(kwargs, error, match):
    args = {"inputs": np.zeros((4, 3), np.float32), "kernel": np.zeros((3, 7), np.float32), "labels": None}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        jaxloss.linear_softmax_statistics(args.pop("inputs"), args.pop("kernel"), args.pop("labels"), **args)


# --------------------------------------------------------------------------- vocabulary-parallel

_SHARDED = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, PartitionSpec as P
    jax.config.update("jax_enable_x64", True)
    import jaxloss

    assert len(jax.devices()) == 4
    mesh = Mesh(np.array(jax.devices()), ("v",))
    r = np.random.default_rng(0)
    n, ds, v = 19, 6, 44  # 11 classes per device, ragged vocabulary blocks of 4
    xs, ks, bs = jnp.asarray(r.normal(size=(n, ds))), jnp.asarray(r.normal(size=(ds, v))), jnp.asarray(r.normal(size=(v,)))
    y = np.asarray(r.integers(0, v, size=n))
    y[::6] = -100
    y = jnp.asarray(y)
    ct = jnp.asarray(r.uniform(0.5, 1.5, size=n))
    blocks = dict(block_size=5, vocab_block_size=4)

    for mask in (None, jnp.asarray(np.arange(n) % 5 != 0)):
        def stats_body(x, k, b, axis_name=None):
            s = jaxloss.linear_softmax_statistics(x, k, y, bias=b, temperature=0.7, logit_softcap=5.0,
                                                  ignore_index=-100, where=mask, axis_name=axis_name, **blocks)
            return jnp.sum(s.logsumexp * ct) + jnp.sum(s.label_log_prob) - 0.5 * jnp.sum(s.entropy * ct)

        sharded = jax.shard_map(lambda *a: stats_body(*a, axis_name="v"), mesh=mesh,
                                in_specs=(P(), P(None, "v"), P("v")), out_specs=P())
        v1, g1 = jax.value_and_grad(stats_body, argnums=(0, 1, 2))(xs, ks, bs)
        v2, g2 = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1, 2)))(xs, ks, bs)
        np.testing.assert_allclose(v2, v1, rtol=1e-12)
        for a, c in zip(g2, g1):
            np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
        print("ok")
    """
)


@pytest.mark.slow
def test_vocab_parallel_on_four_devices_equals_single_device():
    assert run_python(_SHARDED, devices=4, timeout=400).count("ok") == 2
