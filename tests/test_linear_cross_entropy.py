"""``linear_softmax_cross_entropy`` and ``jaxloss.torch.linear_cross_entropy`` against PyTorch.

References: float64 PyTorch (``F.cross_entropy`` of the dense logits, plus the
z-loss and soft-capping formulas written in torch) for the core, and
``torch.nn.functional.linear_cross_entropy`` (reference and chunked paths,
and its own OpInfo samples) for the PyTorch face. Values and gradients with
respect to the inputs, the kernel and the bias; jit and eager.
"""

from __future__ import annotations

import functools
import sys
import textwrap
import types
import unittest

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss
import jaxloss.torch as jt
from tests.helpers import run_python

N, D, V = 37, 5, 23
RAGGED = {"block_size": 8, "vocab_block_size": 7}


def _data(seed=0, n=N, d=D, v=V, batch=None):
    r = np.random.default_rng(seed)
    shape = (n,) if batch is None else batch
    x = r.normal(size=(*shape, d))
    k = r.normal(size=(d, v)) / np.sqrt(d)
    b = r.normal(size=(v,))
    w = r.uniform(0.5, 2.0, size=(v,))
    y = r.integers(0, v, size=shape)
    ct = r.uniform(0.5, 1.5, size=shape)  # per-token cotangent: exercises the full VJP
    return x, k, b, w, y, ct


def _torch_reference(
    x, k, y, ct, *, bias=None, weights=None, label_smoothing=0.0, ignore_index=None, **extra
):
    """float64 PyTorch: losses and gradients of sum(ct * loss) w.r.t. x, kernel, bias."""
    z_loss, cap = extra.get("z_loss", 0.0), extra.get("logit_softcap")
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    kt = torch.tensor(k, dtype=torch.float64, requires_grad=True)
    bt = None if bias is None else torch.tensor(bias, dtype=torch.float64, requires_grad=True)
    z = xt @ kt + (0 if bt is None else bt)
    if cap is not None:
        z = cap * torch.tanh(z / cap)
    flat = z.reshape(-1, z.shape[-1])
    yt = torch.tensor(np.asarray(y).reshape(-1))
    loss = F.cross_entropy(
        flat,
        yt,
        weight=None if weights is None else torch.tensor(weights, dtype=torch.float64),
        ignore_index=-100 if ignore_index is None else ignore_index,
        label_smoothing=label_smoothing,
        reduction="none",
    )
    if z_loss:
        valid = (yt != ignore_index) if ignore_index is not None else torch.ones_like(yt, dtype=torch.bool)
        loss = loss + z_loss * torch.where(valid, torch.logsumexp(flat, -1) ** 2, 0.0)
    loss = loss.reshape(np.shape(y))
    (loss * torch.tensor(ct)).sum().backward()
    grads = [xt.grad.numpy(), kt.grad.numpy()] + ([] if bt is None else [bt.grad.numpy()])
    return loss.detach().numpy(), grads


def _ours(x, k, y, ct, dtype, variant, *, bias=None, **options):
    def total(x, k, b):
        loss = jaxloss.linear_softmax_cross_entropy(x, k, y, bias=b, **options)
        return jnp.sum(loss * ct), loss

    args = [jnp.asarray(a, dtype) for a in (x, k)] + [None if bias is None else jnp.asarray(bias, dtype)]
    argnums = (0, 1) if bias is None else (0, 1, 2)
    (_, loss), grads = variant(jax.value_and_grad(total, argnums=argnums, has_aux=True))(*args)
    return loss, grads


OPTIONS = {
    "plain": {},
    "bias": {"bias": True},
    "weights": {"weights": True},
    "label_smoothing": {"label_smoothing": 0.2},
    "ignore_index": {"ignore_index": 3},
    "z_loss": {"z_loss": 1e-2},
    "logit_softcap": {"logit_softcap": 1.5},
    "all": {
        "bias": True,
        "weights": True,
        "label_smoothing": 0.15,
        "ignore_index": 3,
        "z_loss": 1e-2,
        "logit_softcap": 2.0,
    },
}


def _resolve(option, b, w):
    option = dict(option)
    if option.pop("bias", False):
        option["bias"] = b
    if option.pop("weights", False):
        option["weights"] = w
    return option


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_matches_float64_torch_with_ragged_blocks(name, dtype, variant):
    x, k, b, w, y, ct = _data()
    options = _resolve(OPTIONS[name], b, w)
    if "ignore_index" in options:
        y = np.where(np.arange(N) % 4 == 0, options["ignore_index"], y)
    ref_loss, ref_grads = _torch_reference(x, k, y, ct, **options)
    loss, grads = _ours(x, k, y, ct, dtype, variant, **options, **RAGGED)
    tol = 1e-12 if dtype == jnp.float64 else 2e-5
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss, ref_loss, rtol=tol, atol=tol)
    for g, r in zip(grads, ref_grads, strict=True):
        assert g.dtype == dtype
        np.testing.assert_allclose(g, r, rtol=tol * 10, atol=tol * 10)


@pytest.mark.parametrize(
    "blocks", [(1, 1), (37, 23), (100, 100), (5, 23), (37, 4), (36, 22), (2, 11), (None, None)]
)
def test_every_block_size_gives_the_same_numbers(blocks):
    x, k, b, w, y, ct = _data(1)
    ref_loss, ref_grads = _torch_reference(x, k, y, ct, bias=b, label_smoothing=0.1)
    loss, grads = _ours(
        x,
        k,
        y,
        ct,
        jnp.float64,
        jax.jit,
        bias=b,
        label_smoothing=0.1,
        block_size=blocks[0],
        vocab_block_size=blocks[1],
    )
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12, atol=1e-12)
    for g, r in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-12)


def test_equals_the_dense_jaxloss_loss_including_the_weights_gradient():
    x, k, b, w, y, ct = _data(2)
    y = np.where(np.arange(N) % 5 == 0, -1, y)
    options = {"label_smoothing": 0.3, "ignore_index": -1}

    def dense(x, k, b, w):
        loss = jaxloss.softmax_cross_entropy_with_integer_labels(x @ k + b, y, weights=w, **options)
        return jnp.sum(loss * ct)

    def fused(x, k, b, w):
        loss = jaxloss.linear_softmax_cross_entropy(x, k, y, bias=b, weights=w, **options, **RAGGED)
        return jnp.sum(loss * ct)

    args = [jnp.asarray(a) for a in (x, k, b, w)]
    v1, g1 = jax.jit(jax.value_and_grad(dense, argnums=(0, 1, 2, 3)))(*args)
    v2, g2 = jax.jit(jax.value_and_grad(fused, argnums=(0, 1, 2, 3)))(*args)
    np.testing.assert_allclose(v2, v1, rtol=1e-13)
    for a, c in zip(g2, g1, strict=True):
        np.testing.assert_allclose(a, c, rtol=1e-11, atol=1e-13)


@pytest.mark.slow
def test_leading_batch_dimensions(variant):
    x, k, b, w, y, ct = _data(3, batch=(2, 3, 7))
    ref_loss, ref_grads = _torch_reference(x, k, y, ct, bias=b, weights=w)
    loss, grads = _ours(
        x, k, y, ct, jnp.float64, variant, bias=b, weights=w, block_size=5, vocab_block_size=6
    )
    assert loss.shape == (2, 3, 7) and grads[0].shape == x.shape
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    for g, r in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-13)


@pytest.mark.slow
def test_every_token_ignored_gives_zero_loss_and_zero_gradients(variant):
    x, k, b, w, _, ct = _data(4)
    y = np.full(N, -100)
    loss, grads = _ours(x, k, y, ct, jnp.float32, variant, bias=b, ignore_index=-100, z_loss=0.1, **RAGGED)
    assert np.all(np.asarray(loss) == 0)
    for g in grads:
        assert np.all(np.asarray(g) == 0)


@pytest.mark.slow
def test_out_of_range_label_gives_nan_traced_a_value_error_concrete_and_empty_batch_gives_empty():
    x, k, _, _, y, _ = _data(5)
    y = y.copy()
    y[2] = V
    y[5] = -1
    traced = jax.jit(
        lambda y: jaxloss.linear_softmax_cross_entropy(jnp.asarray(x), jnp.asarray(k), y, block_size=8)
    )
    loss = traced(y)
    assert np.isnan(loss[2]) and np.isnan(loss[5]) and np.isfinite(np.delete(np.asarray(loss), [2, 5])).all()
    with pytest.raises(ValueError, match="`labels`.*2 out of range"):  # PyTorch raises too
        jaxloss.linear_softmax_cross_entropy(jnp.asarray(x), jnp.asarray(k), y, block_size=8)
    # an ignored or masked token's label may be anything
    fine = jaxloss.linear_softmax_cross_entropy(x, k, np.where(np.arange(N) == 5, 0, y), ignore_index=V)
    assert np.isfinite(np.asarray(fine)).all() and float(fine[2]) == 0.0
    where = np.isin(np.arange(N), [2, 5], invert=True)
    masked = jaxloss.linear_softmax_cross_entropy(x, k, y, where=where)
    assert np.isfinite(np.asarray(masked)).all() and float(masked[5]) == 0.0
    empty = jaxloss.linear_softmax_cross_entropy(jnp.zeros((0, D)), jnp.asarray(k), jnp.zeros((0,), int))
    assert empty.shape == (0,)


@pytest.mark.slow
def test_saturated_logits_keep_finite_values_and_gradients():
    x, k, b, _, y, ct = _data(6)
    loss, grads = _ours(1e3 * x, 1e2 * k, y, ct, jnp.float32, jax.jit, bias=b, **RAGGED)
    assert np.isfinite(loss).all() and all(np.isfinite(g).all() for g in grads)
    ref_loss, _ = _torch_reference(1e3 * x, 1e2 * k, y, ct, bias=b)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=0.05)  # logits of 1e5 in float32


def test_traced_hyperparameters_under_jit():
    x, k, b, w, y, ct = _data(7)

    @jax.jit
    def f(ls, zl):
        return jaxloss.linear_softmax_cross_entropy(x, k, y, label_smoothing=ls, z_loss=zl, **RAGGED)

    ref_loss, _ = _torch_reference(x, k, y, ct, label_smoothing=0.25, z_loss=0.05)
    np.testing.assert_allclose(f(0.25, 0.05), ref_loss, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_accumulates_in_float32(dtype):
    r = np.random.default_rng(8)
    n, d, v = 64, 32, 300
    x = r.normal(size=(n, d))
    k = r.normal(size=(d, v)) / np.sqrt(d)
    y = r.integers(0, v, size=n)
    ct = np.ones(n)
    xh, kh = jnp.asarray(x, dtype), jnp.asarray(k, dtype)
    # the reference sees the same rounded inputs, in float64
    ref_loss, ref_grads = _torch_reference(
        np.asarray(xh, np.float64), np.asarray(kh, np.float64), y, ct, label_smoothing=0.1
    )
    loss, grads = _ours(
        xh, kh, y, ct, dtype, jax.jit, label_smoothing=0.1, block_size=16, vocab_block_size=64
    )
    assert loss.dtype == dtype and all(g.dtype == dtype for g in grads)
    np.testing.assert_allclose(np.asarray(loss, np.float64), ref_loss, rtol=1e-2)
    for g, ref in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(np.asarray(g, np.float64), ref, rtol=3e-2, atol=3e-2 * np.abs(ref).max())


def test_precision_option_is_accepted():
    x, k, _, _, y, ct = _data(9)
    ref_loss, _ = _torch_reference(x, k, y, ct)
    loss = jaxloss.linear_softmax_cross_entropy(x, k, y, precision=jax.lax.Precision.DEFAULT)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)


# --------------------------------------------------------------------------- memory


def _temp_bytes(loss, n, d, v):
    shapes = (
        jax.ShapeDtypeStruct((n, d), jnp.float32),
        jax.ShapeDtypeStruct((d, v), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def _dense(x, k, y):
    return jaxloss.softmax_cross_entropy_with_integer_labels(x @ k, y).mean()


def _fused(x, k, y):
    return jaxloss.linear_softmax_cross_entropy(x, k, y, block_size=1024, vocab_block_size=4096).mean()


@pytest.mark.slow
def test_value_and_grad_memory_is_30x_below_dense_and_does_not_grow_with_the_vocabulary():
    n, d, v = 8192, 1024, 131072
    dense = _temp_bytes(_dense, n, d, v)
    fused = _temp_bytes(_fused, n, d, v)
    assert dense >= 2 * n * v * 4  # the logits and their gradient
    assert dense / fused >= 30, (dense, fused)
    # twice the vocabulary (and a ragged one): no more temporary memory
    assert _temp_bytes(_fused, n, d, 2 * v) <= 1.05 * fused
    assert _temp_bytes(_fused, n, d, v - 1) <= 1.05 * fused
    # twice the tokens: at most the per-token state (an (N, D) float32 buffer) more
    assert _temp_bytes(_fused, 2 * n, d, v) <= fused + 2 * n * d * 4


@pytest.mark.slow
def test_memory_small_shapes():
    n, d, v = 2048, 64, 16384
    fused_small = _temp_bytes(_fused, n, d, v)
    assert _temp_bytes(_dense, n, d, v) / fused_small >= 2
    assert _temp_bytes(_fused, n, d, 4 * v) <= 1.05 * fused_small


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"labels": np.zeros(4)}, TypeError, "`labels`"),
        ({"inputs": np.zeros((4, 3), int)}, TypeError, "`inputs`"),
        ({"kernel": np.zeros((2, 7))}, ValueError, "`kernel`"),
        ({"kernel": np.zeros((3,))}, ValueError, "`kernel`"),
        ({"labels": np.zeros((5,), int)}, ValueError, "`labels`"),
        ({"bias": np.zeros(6)}, ValueError, "`bias`"),
        ({"weights": np.zeros(8)}, ValueError, "`weights`"),
        ({"label_smoothing": 1.5}, ValueError, "`label_smoothing`"),
        ({"label_smoothing": -0.1}, ValueError, "`label_smoothing`"),
        ({"z_loss": -1.0}, ValueError, "`z_loss`"),
        ({"logit_softcap": 0.0}, ValueError, "`logit_softcap`"),
        ({"logit_softcap": -3.0}, ValueError, "`logit_softcap`"),
        ({"block_size": 0}, ValueError, "`block_size`"),
        ({"vocab_block_size": -2}, ValueError, "`vocab_block_size`"),
        ({"block_size": 2.5}, TypeError, "`block_size`"),
        ({"ignore_index": 1.0}, TypeError, "`ignore_index`"),
    ],
)
def test_bad_inputs_name_the_argument(kwargs, error, match):
    args = {
        "inputs": np.zeros((4, 3), np.float32),
        "kernel": np.zeros((3, 7), np.float32),
        "labels": np.zeros((4,), np.int32),
    }
    args.update(kwargs)
    inputs, kernel, labels = args.pop("inputs"), args.pop("kernel"), args.pop("labels")
    with pytest.raises(error, match=match):
        jaxloss.linear_softmax_cross_entropy(inputs, kernel, labels, **args)


# --------------------------------------------------------------------------- PyTorch face


def _torch_lce(x, w, y, *, bias=None, weight=None, options=None, **kwargs):
    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    bt = None if bias is None else torch.tensor(bias, requires_grad=True)
    wtt = None if weight is None else torch.tensor(weight)
    out = F.linear_cross_entropy(
        xt, wt, torch.tensor(y), linear_bias=bt, weight=wtt, options=options, **kwargs
    )
    out.sum().backward()
    grads = [xt.grad.numpy(), wt.grad.numpy()] + ([] if bt is None else [bt.grad.numpy()])
    return out.detach().numpy(), grads


def _our_lce(x, w, y, variant, *, bias=None, weight=None, **kwargs):
    def f(x, w, b):
        out = jt.linear_cross_entropy(x, w, y, linear_bias=b, weight=weight, **kwargs)
        return out.sum(), out

    argnums = (0, 1) if bias is None else (0, 1, 2)
    (_, out), grads = variant(jax.value_and_grad(f, argnums=argnums, has_aux=True))(x, w, bias)
    return out, grads


@pytest.mark.parametrize(
    ("reduction", "chunked", "dtype"),
    [(r, c, np.float64) for r in ("none", "mean", "sum") for c in (False, True)]
    + [("mean", True, np.float32), ("none", False, np.float32)],
)
def test_torch_face_matches_linear_cross_entropy(reduction, chunked, dtype, variant):
    r = np.random.default_rng(10)
    n, d, c = 40, 6, 29
    x = r.normal(size=(n, d)).astype(dtype)
    w = (r.normal(size=(c, d)) / np.sqrt(d)).astype(dtype)
    b = r.normal(size=(c,)).astype(dtype)
    weight = r.uniform(0.5, 2.0, size=(c,)).astype(dtype)
    y = r.integers(0, c, size=n)
    y[::7] = -100
    options = torch.nn.LinearCrossEntropyOptions() if chunked else None
    ref, ref_grads = _torch_lce(x, w, y, bias=b, weight=weight, reduction=reduction, options=options)
    out, grads = _our_lce(x, w, y, variant, bias=b, weight=weight, reduction=reduction)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(out, ref, rtol=tol, atol=tol)
    for g, rg in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, rg, rtol=10 * tol, atol=10 * tol)


def test_torch_face_kdim_unbatched_probabilities_and_smoothing():
    r = np.random.default_rng(11)
    n, d, c = 9, 4, 7
    x = r.normal(size=(n, d))
    w3 = r.normal(size=(c, 3, 2, d))
    b3 = r.normal(size=(c, 3, 2))
    y3 = r.integers(0, c, size=(n, 3, 2))
    y3[0, 1, 1] = 2
    for reduction in ("none", "mean"):
        ref, ref_grads = _torch_lce(x, w3, y3, bias=b3, reduction=reduction, ignore_index=2)
        out, grads = _our_lce(x, w3, y3, jax.jit, bias=b3, reduction=reduction, ignore_index=2)
        np.testing.assert_allclose(out, ref, rtol=1e-12)
        for g, rg in zip(grads, ref_grads, strict=True):
            np.testing.assert_allclose(g, rg, rtol=1e-11, atol=1e-13)
    w = r.normal(size=(c, d))
    ref, ref_grads = _torch_lce(x[0], w, np.array(3))
    out, grads = _our_lce(x[0], w, np.array(3), jax.jit)
    assert out.shape == () and grads[0].shape == (d,)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    p = r.uniform(size=(n, c))
    p /= p.sum(1, keepdims=True)
    weight = r.uniform(0.5, 2, size=c)
    ref, ref_grads = _torch_lce(x, w, p, weight=weight, label_smoothing=0.1)
    out, grads = _our_lce(x, w, p, jax.jit, weight=weight, label_smoothing=0.1)
    np.testing.assert_allclose(out, ref, rtol=1e-12)
    for g, rg in zip(grads, ref_grads, strict=True):
        np.testing.assert_allclose(g, rg, rtol=1e-11, atol=1e-13)
    y = r.integers(0, c, size=n)
    ref, _ = _torch_lce(x, w, y, weight=weight, label_smoothing=0.2)
    out, _ = _our_lce(x, w, y, jax.jit, weight=weight, label_smoothing=0.2)
    np.testing.assert_allclose(out, ref, rtol=1e-12)


@pytest.mark.slow
def test_torch_face_options_only_change_block_sizes():
    r = np.random.default_rng(12)
    x, w, y = r.normal(size=(10, 3)), r.normal(size=(6, 3)), r.integers(0, 6, size=10)
    plain = jt.linear_cross_entropy(x, w, y, reduction="none")
    chunked = jt.linear_cross_entropy(
        x, w, y, reduction="none", options=torch.nn.LinearCrossEntropyOptions(batch_chunk_size=3)
    )
    np.testing.assert_allclose(chunked, plain, rtol=1e-14)
    every_ignored = jt.linear_cross_entropy(x, w, np.full(10, -100))
    assert float(every_ignored) == 0.0


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (((2, 3, 3), (2, 3), (3, 2)), {}, "`input`"),
        (((2, 3), (2,), (2, 2)), {}, "`linear_weight`"),
        (((2, 3), (2, 4), (2, 2)), {}, "`linear_weight`"),
        (((2, 3), (2, 3), (2, 2)), {"ignore_index": 0}, "`ignore_index`"),
        (((3,), (2, 4, 3), (2, 4)), {}, "K-dimensional"),
        (((2, 3), (2, 3), (2,)), {"linear_bias": (3,)}, "`linear_bias`"),
        (((2, 3), (2, 3), (5,)), {}, "`target`"),
        (((2, 3), (2, 3), (2,)), {"weight": (3,)}, "`weight`"),
        (((2, 3), (2, 3), (2,)), {"reduction": "average"}, "`reduction`"),
    ],
)
def test_torch_face_errors_follow_pytorchs_error_inputs(args, kwargs, match):
    # the cases of PyTorch's error_inputs_linear_cross_entropy, plus a few more
    x, w, t = (np.zeros(s, np.float32) for s in args)
    if t.shape == x.shape[:-1] + w.shape[1:-1] and "ignore_index" not in kwargs:
        t = t.astype(np.int64)
    kwargs = {k: np.zeros(v, np.float32) if isinstance(v, tuple) else v for k, v in kwargs.items()}
    with pytest.raises(ValueError, match=match):
        jt.linear_cross_entropy(x, w, t, **kwargs)


def _opinfo_samples():
    try:
        import expecttest  # noqa: F401
    except ImportError:  # torch's test internals import it only for its TestCase
        sys.modules["expecttest"] = types.SimpleNamespace(TestCase=unittest.TestCase)
    from torch.testing._internal.common_methods_invocations import op_db

    samples = []
    for op in op_db:
        if op.name == "nn.functional.linear_cross_entropy":
            samples += [(op.variant_test_name, s) for s in op.sample_inputs("cpu", torch.float64, True)]
    return samples


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:linear_cross_entropy:UserWarning")
def test_torch_face_on_pytorchs_opinfo_samples():
    samples = _opinfo_samples()
    assert {name for name, _ in samples} == {"", "chunked", "chunked_none"} and len(samples) > 300

    def value_and_grads(x, w, b, t, weight, reduction, ignore_index, label_smoothing, chunk):
        options = None if chunk is None else types.SimpleNamespace(batch_chunk_size=chunk)

        def f(x, w, b):
            out = jt.linear_cross_entropy(
                x,
                w,
                t,
                linear_bias=b,
                weight=weight,
                reduction=reduction,
                ignore_index=ignore_index,
                label_smoothing=label_smoothing,
                options=options,
            )
            return out.sum(), out

        return jax.value_and_grad(f, argnums=(0, 1, 2), has_aux=True)(x, w, b)

    # one compilation per group of samples (each sample its own sub-computation): XLA's fixed cost
    # per compilation, not the samples' size, dominates the time of these small cases
    @functools.partial(jax.jit, static_argnames=("statics",))
    def group_value_and_grads(arrays, statics):
        return [value_and_grads(*a, *st) for a, st in zip(arrays, statics, strict=True)]

    cases = []
    for _, sample in samples:
        x = sample.input
        w, t = sample.args
        kwargs = dict(sample.kwargs)
        ref = F.linear_cross_entropy(x, w, t, **kwargs)
        ref.sum().backward()
        bias, weight = kwargs.get("linear_bias"), kwargs.get("weight")
        options = kwargs.get("options")
        arrays = tuple(None if a is None else a.detach().numpy() for a in (x, w, bias, t, weight))
        statics = (
            kwargs.get("reduction", "mean"),
            kwargs.get("ignore_index"),
            kwargs.get("label_smoothing", 0.0),
            None if options is None else options.batch_chunk_size,
        )
        ref_grads = [x.grad, w.grad] + ([] if bias is None else [bias.grad])
        cases.append((sample, arrays, statics, ref.detach().numpy(), [g.numpy() for g in ref_grads]))

    group = 48
    for start in range(0, len(cases), group):
        chunk = cases[start : start + group]
        results = group_value_and_grads([c[1] for c in chunk], tuple(c[2] for c in chunk))
        for (sample, arrays, _, ref, ref_grads), ((_, out), grads) in zip(chunk, results, strict=True):
            np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12, err_msg=str(sample))
            for g, rg in zip(grads, ref_grads, strict=False):
                np.testing.assert_allclose(g, rg, rtol=1e-9, atol=1e-11, err_msg=str(sample))
            assert (arrays[2] is None) == (grads[2] is None)


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
    n, d, v = 19, 6, 44  # 11 classes per device, ragged vocabulary blocks of 4
    x = jnp.asarray(r.normal(size=(n, d)))
    k = jnp.asarray(r.normal(size=(d, v)) / np.sqrt(d))
    b = jnp.asarray(r.normal(size=(v,)))
    w = jnp.asarray(r.uniform(0.5, 2.0, size=(v,)))
    y = jnp.asarray(np.where(np.arange(n) % 6 == 0, -100, r.integers(0, v, size=n)))
    ct = jnp.asarray(r.uniform(0.5, 1.5, size=n))
    opts = dict(label_smoothing=0.1, ignore_index=-100, z_loss=1e-2, logit_softcap=3.0,
                block_size=5, vocab_block_size=4)

    def single(x, k, b, w):
        return jaxloss.linear_softmax_cross_entropy(x, k, y, bias=b, weights=w, **opts)

    def sharded_body(x, k, b, w, y):
        return jaxloss.linear_softmax_cross_entropy(x, k, y, bias=b, weights=w, axis_name="v", **opts)

    sharded = jax.shard_map(sharded_body, mesh=mesh, in_specs=(P(), P(None, "v"), P("v"), P("v"), P()),
                            out_specs=P())

    def total(f):
        return lambda *a: jnp.sum(f(*a) * ct)

    args = (x, k, b, w)
    v1, g1 = jax.value_and_grad(total(single), argnums=(0, 1, 2, 3))(*args)
    for wrap in (lambda f: f, jax.jit):
        v2, g2 = wrap(jax.value_and_grad(total(lambda *a: sharded(*a, y)), argnums=(0, 1, 2, 3)))(*args)
        np.testing.assert_allclose(v2, v1, rtol=1e-12)
        for a, c in zip(g2, g1):
            np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
        print("ok")
    np.testing.assert_allclose(jax.jit(lambda *a: sharded(*a, y))(*args), single(*args), rtol=1e-12)
    print("ok")

    # the gradient taken inside shard_map: each device gets its kernel shard's gradient
    def step(x, k, b, w, y):
        return jax.grad(lambda k: jnp.sum(sharded_body(x, k, b, w, y) * ct))(k)

    dk = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P(None, "v"), P("v"), P("v"), P()),
                               out_specs=P(None, "v")))(*args, y)
    np.testing.assert_allclose(dk, g1[1], rtol=1e-10, atol=1e-12)
    print("ok")
    """
)


@pytest.mark.slow
def test_vocab_parallel_on_four_devices_equals_single_device():
    assert run_python(_SHARDED, devices=4, timeout=400).count("ok") == 4


# --------------------------------------------------------------------------- example


@pytest.mark.slow
def test_language_model_head_example_trains_and_reports_memory():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "language_model_head.py"
    spec = importlib.util.spec_from_file_location("language_model_head", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--steps", "60", "--batch", "128"])
    losses = result["losses"]
    assert np.isfinite(losses).all() and np.mean(losses[-10:]) < losses[0] - 1.0
    assert result["dense_minus_fused"] < 1e-4
    dense, fused = result["memory"][64 * 128]
    assert fused < dense / 2


def test_torch_face_raises_for_an_out_of_range_target_as_pytorch():
    r = np.random.default_rng(13)
    x, w = r.normal(size=(6, 3)), r.normal(size=(5, 3))
    for bad in (5, -1):
        y = np.array([0, 1, bad, 3, -100, 4])
        with pytest.raises((IndexError, RuntimeError)):
            F.linear_cross_entropy(torch.tensor(x), torch.tensor(w), torch.tensor(y))
        with pytest.raises(IndexError, match="linear_cross_entropy: `target`"):  # also a ValueError
            jt.linear_cross_entropy(x, w, y)
    # traced: NaN, as the core
    out = jax.jit(lambda y: jt.linear_cross_entropy(x, w, y, reduction="none"))(
        np.array([0, 7, -100, 1, 2, 3])
    )
    assert np.isnan(out[1]) and float(out[2]) == 0.0 and np.isfinite(np.delete(np.asarray(out), 1)).all()


@pytest.mark.parametrize("tiled", [True, False], ids=["tiled", "dense"])
def test_where_masks_tokens_like_removing_them(tiled):
    x, k, b, w, y, ct = _data(14)
    where = np.arange(N) % 4 != 1
    x = np.where(where[:, None], x, np.nan)  # masked tokens may hold anything
    y = np.where(where, y, V + 3)
    opts = {"bias": b, "weights": w, "label_smoothing": 0.1, "z_loss": 1e-2, "logit_softcap": 2.0}
    loss, grads = _ours(x, k, y, ct, jnp.float64, jax.jit, where=where, **opts, **(RAGGED if tiled else {}))
    ref_loss, ref_grads = _torch_reference(x[where], k, y[where], ct[where], **opts)
    np.testing.assert_array_equal(np.asarray(loss)[~where], 0)
    np.testing.assert_allclose(np.asarray(loss)[where], ref_loss, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(grads[0])[~where], 0)
    np.testing.assert_allclose(np.asarray(grads[0])[where], ref_grads[0], rtol=1e-11, atol=1e-12)
    for g, r in zip(grads[1:], ref_grads[1:], strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-11, atol=1e-12)
