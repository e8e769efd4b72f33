"""``linear_distillation_loss`` against float64 PyTorch.

References: float64 PyTorch on the dense logits: ``F.kl_div(..., log_target=True)``
of ``log_softmax`` for the forward and reverse KL and for the two halves of
the (generalised) Jensen-Shannon divergence (``log M`` by ``torch.logaddexp``),
Gemma's soft-cap ``c * tanh(z / c)`` written in torch, and autograd for the
gradients with respect to the student's inputs, kernel and bias. Both the
dense path and the tiled custom VJP (ragged blocks), jit and eager.
"""

from __future__ import annotations

import math
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from tests.helpers import run_python

N, DS, DT, V = 37, 5, 7, 23
RAGGED = {"block_size": 8, "vocab_block_size": 7}
DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")


def _data(seed=0, n=N, ds=DS, dt=DT, v=V, scale=1.0):
    r = np.random.default_rng(seed)
    xs = r.normal(size=(n, ds)) * scale
    ks = r.normal(size=(ds, v)) / np.sqrt(ds)
    bs = r.normal(size=(v,))
    xt = r.normal(size=(n, dt)) * scale
    kt = r.normal(size=(dt, v)) / np.sqrt(dt)
    bt = r.normal(size=(v,))
    ct = r.uniform(0.5, 1.5, size=n)  # per-token cotangent: exercises the full VJP
    return xs, ks, bs, xt, kt, bt, ct


def _torch_divergence(ls, lt, divergence, beta):
    def kl(log_p, log_q):  # KL(p || q), rows
        return F.kl_div(log_q, log_p, reduction="none", log_target=True).sum(-1)

    if divergence == "forward_kl":
        return kl(lt, ls)
    if divergence == "reverse_kl":
        return kl(ls, lt)
    log_m = torch.logaddexp(lt + math.log(beta), ls + math.log1p(-beta))
    return beta * kl(lt, log_m) + (1 - beta) * kl(ls, log_m)


def _torch_reference(
    xs, ks, bs, xt, kt, bt, ct, divergence, beta=0.5, temperature=1.0, where=None, softcap=None
):
    """float64 PyTorch: per-token losses and the gradients of sum(ct * loss) w.r.t. x_s, W_s, b_s."""
    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (xs, ks, bs)]
    x, k, b = leaves

    def cap(z):
        return z if softcap is None else softcap * torch.tanh(z / softcap)

    ls = torch.log_softmax(cap(x @ k + b) / temperature, -1)
    t = [torch.tensor(a, dtype=torch.float64) for a in (xt, kt, bt)]
    lt = torch.log_softmax(cap(t[0] @ t[1] + t[2]) / temperature, -1)
    loss = _torch_divergence(ls, lt, divergence, beta)
    if where is not None:
        loss = torch.where(torch.tensor(where), loss, 0.0)
    (loss * torch.tensor(ct)).sum().backward()
    return loss.detach().numpy(), [a.grad.numpy() for a in leaves]


def _ours(data, dtype, jit, **options):
    xs, ks, bs, xt, kt, bt, ct = data

    def total(*args):
        loss = jaxloss.linear_distillation_loss(
            args[0], args[1], args[3], args[4], student_bias=args[2], teacher_bias=args[5], **options
        )
        return jnp.sum(loss * ct.astype(loss.dtype)), loss

    fn = jax.value_and_grad(total, argnums=tuple(range(6)), has_aux=True)
    if jit:
        fn = jax.jit(fn)
    (_, loss), grads = fn(*(jnp.asarray(a, dtype) for a in (xs, ks, bs, xt, kt, bt)))
    return loss, grads


def _tol(dtype):
    return {"rtol": 2e-4, "atol": 2e-5} if dtype == jnp.float32 else {"rtol": 1e-9, "atol": 1e-11}


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("tiled", [False, True], ids=["dense", "tiled"])
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64], ids=["f32", "f64"])
def test_matches_float64_torch(divergence, tiled, dtype):
    data = _data(1)
    opts = {"divergence": divergence, "beta": 0.3, "temperature": 0.7} | (RAGGED if tiled else {})
    ref, ref_grads = _torch_reference(*data, divergence, beta=0.3, temperature=0.7)
    eager = dtype == jnp.float64 and tiled and divergence == "jsd"  # eager once: it is slow
    for jit in (True, False) if eager else (True,):
        loss, grads = _ours(data, dtype, jit, **opts)
        assert loss.dtype == dtype
        np.testing.assert_allclose(loss, ref, **_tol(dtype))
        for g, r in zip(grads[:3], ref_grads, strict=True):
            np.testing.assert_allclose(g, r, **_tol(dtype))
        for g in grads[3:]:  # the teacher is a fixed target
            assert not np.any(np.asarray(g))


@pytest.mark.parametrize("divergence", DIVERGENCES)
@pytest.mark.parametrize("tiled", [True, False], ids=["tiled", "dense"])
def test_logit_softcap_matches_float64_torch(divergence, tiled):
    data = _data(15, scale=3.0)  # logits of several units: the cap of 2 bends them
    opts = {"divergence": divergence, "beta": 0.3, "temperature": 0.7, "logit_softcap": 2.0}
    ref, ref_grads = _torch_reference(*data, divergence, beta=0.3, temperature=0.7, softcap=2.0)
    loss, grads = _ours(data, jnp.float64, True, **opts, **(RAGGED if tiled else {}))
    np.testing.assert_allclose(loss, ref, **_tol(jnp.float64))
    for g, r in zip(grads[:3], ref_grads, strict=True):
        np.testing.assert_allclose(g, r, **_tol(jnp.float64))
    # the cap changes the numbers: the uncapped loss is another one
    uncapped, _ = _torch_reference(*data, divergence, beta=0.3, temperature=0.7)
    assert np.abs(uncapped - ref).max() > 1e-2


def _check_block_sizes(divergence, sizes):
    data = _data(2, n=11, v=13)
    dense, dense_grads = _ours(data, jnp.float64, True, divergence=divergence)
    for tb, vb in sizes:
        loss, grads = _ours(
            data, jnp.float64, True, divergence=divergence, block_size=tb, vocab_block_size=vb
        )
        np.testing.assert_allclose(loss, dense, rtol=1e-12, atol=1e-14)
        for g, r in zip(grads, dense_grads, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-13)


def test_one_token_block_and_one_vocabulary_block_give_the_dense_numbers():
    _check_block_sizes("jsd", ((11, 13), (3, 64)))


@pytest.mark.slow
@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_every_block_size_gives_the_dense_numbers(divergence):
    _check_block_sizes(divergence, ((1, 1), (4, 5), (11, 13), (3, 13), (11, 2), (64, 64)))


@pytest.mark.slow
@pytest.mark.parametrize("tiled", [False, True], ids=["dense", "tiled"])
def test_a_head_distilled_from_itself_gives_zero(tiled):
    xs, ks, bs, *_ = _data(3)
    blocks = RAGGED if tiled else {}
    for divergence in DIVERGENCES:
        fn = jax.jit(
            jax.value_and_grad(
                lambda x, k, b, d=divergence: jnp.sum(
                    jaxloss.linear_distillation_loss(
                        x, k, x, k, student_bias=b, teacher_bias=b, divergence=d, **blocks
                    )
                ),
                argnums=(0, 1, 2),
            )
        )
        value, grads = fn(*(jnp.asarray(a, jnp.float32) for a in (xs, ks, bs)))
        assert abs(float(value)) < 1e-5
        for g in grads:  # the minimum: a zero gradient
            np.testing.assert_allclose(g, 0, atol=1e-5)


def test_jsd_endpoints_and_bound():
    xs, ks, bs, xt, kt, bt, _ = _data(4, scale=5.0)
    for beta in (0.0, 1.0):
        loss = jaxloss.linear_distillation_loss(xs, ks, xt, kt, divergence="jsd", beta=beta, **RAGGED)
        np.testing.assert_array_equal(loss, 0)
    loss = jaxloss.linear_distillation_loss(xs, ks, xt, kt, divergence="jsd", **RAGGED)
    assert np.all((np.asarray(loss) >= 0) & (np.asarray(loss) <= math.log(2) + 1e-6))


@pytest.mark.slow
@pytest.mark.parametrize("tiled", [False, True], ids=["dense", "tiled"])
def test_where_masks_tokens_and_their_gradients(tiled):
    data = _data(5)
    where = np.arange(N) % 3 != 0
    ref, ref_grads = _torch_reference(*data, "jsd", where=where)
    loss, grads = _ours(data, jnp.float64, True, divergence="jsd", where=where, **(RAGGED if tiled else {}))
    np.testing.assert_allclose(loss, ref, rtol=1e-10, atol=1e-12)
    assert np.all(np.asarray(loss)[~where] == 0)
    for g, r in zip(grads[:3], ref_grads, strict=True):
        np.testing.assert_allclose(g, r, rtol=1e-9, atol=1e-11)
    # the masked tokens' inputs get no gradient
    assert not np.any(np.asarray(grads[0])[~where])


@pytest.mark.slow
@pytest.mark.parametrize("tiled", [False, True], ids=["dense", "tiled"])
def test_large_logits_at_small_temperature_stay_finite_in_float32(tiled):
    data = _data(6, scale=40.0)  # logits of a few hundred, / 0.5
    for divergence in DIVERGENCES:
        loss, grads = _ours(
            data, jnp.float32, True, divergence=divergence, temperature=0.5, **(RAGGED if tiled else {})
        )
        assert np.all(np.isfinite(loss)) and np.all(np.asarray(loss) >= -1e-3)
        assert all(np.all(np.isfinite(g)) for g in grads)
        ref, _ = _torch_reference(*data, divergence, temperature=0.5)
        np.testing.assert_allclose(loss, ref, rtol=1e-3, atol=1e-2)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_half_precision_accumulates_in_float32(dtype):
    data = _data(7)
    rounded = [np.asarray(jnp.asarray(a, dtype).astype(jnp.float32), np.float64) for a in data[:6]]
    for divergence in DIVERGENCES:
        ref, ref_grads = _torch_reference(*rounded, data[6], divergence)
        loss, grads = _ours(data, dtype, True, divergence=divergence, **RAGGED)
        assert loss.dtype == dtype and grads[1].dtype == dtype
        np.testing.assert_allclose(np.asarray(loss, np.float64), ref, rtol=2e-2, atol=2e-3)
        scale = max(np.abs(r).max() for r in ref_grads)
        for g, r in zip(grads[:3], ref_grads, strict=True):
            np.testing.assert_allclose(np.asarray(g, np.float64), r, atol=3e-2 * scale)


@pytest.mark.slow
def test_leading_batch_dimensions_and_mixed_widths():
    xs, ks, bs, xt, kt, bt, _ = _data(8, n=12)
    flat = jaxloss.linear_distillation_loss(xs, ks, xt, kt, divergence="reverse_kl", **RAGGED)
    batched = jaxloss.linear_distillation_loss(
        xs.reshape(3, 4, DS), ks, xt.reshape(3, 4, DT), kt, divergence="reverse_kl", **RAGGED
    )
    assert batched.shape == (3, 4)
    np.testing.assert_allclose(batched.reshape(-1), flat, rtol=1e-12)


def test_empty_batch():
    xs, ks, _, xt, kt, _, _ = _data(9)
    out = jaxloss.linear_distillation_loss(xs[:0], ks, xt[:0], kt, **RAGGED)
    assert out.shape == (0,)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"teacher_kernel": np.zeros((6, 8))}, ValueError, "`teacher_kernel`"),
        ({"teacher_kernel": np.zeros((5, 7))}, ValueError, "`teacher_kernel`"),
        ({"student_kernel": np.zeros((2, 7))}, ValueError, "`student_kernel`"),
        ({"teacher_inputs": np.zeros((5, 6))}, ValueError, "`teacher_inputs`"),
        ({"student_inputs": np.zeros((4, 3), int)}, TypeError, "`student_inputs`"),
        ({"divergence": "kl"}, ValueError, "`divergence`"),
        ({"divergence": None}, TypeError, "`divergence`"),
        ({"beta": 1.5}, ValueError, "`beta`"),
        ({"beta": -0.1}, ValueError, "`beta`"),
        ({"temperature": 0.0}, ValueError, "`temperature`"),
        ({"temperature": -1.0}, ValueError, "`temperature`"),
        ({"student_bias": np.zeros(6)}, ValueError, "`student_bias`"),
        ({"teacher_bias": np.zeros(8)}, ValueError, "`teacher_bias`"),
        ({"where": np.ones(5, bool)}, ValueError, "`where`"),
        ({"block_size": 0}, ValueError, "`block_size`"),
        ({"vocab_block_size": 2.5}, TypeError, "`vocab_block_size`"),
        ({"block_size": True}, TypeError, "`block_size`"),
        ({"logit_softcap": 0.0}, ValueError, "`logit_softcap`"),
    ],
)
def test_distillation_bad_inputs_name_the_argument(kwargs, error, match):
    args = {
        "student_inputs": np.zeros((4, 3), np.float32),
        "student_kernel": np.zeros((3, 7), np.float32),
        "teacher_inputs": np.zeros((4, 6), np.float32),
        "teacher_kernel": np.zeros((6, 7), np.float32),
    }
    args.update(kwargs)
    positional = [
        args.pop(name) for name in ("student_inputs", "student_kernel", "teacher_inputs", "teacher_kernel")
    ]
    with pytest.raises(error, match=match):
        jaxloss.linear_distillation_loss(*positional, **args)


def test_traced_hyperparameters_are_rejected_with_a_clear_error():
    xs, ks, _, xt, kt, _, _ = _data(14)
    with pytest.raises(TypeError, match="`temperature`"):
        jax.jit(lambda t: jaxloss.linear_distillation_loss(xs, ks, xt, kt, temperature=t))(1.0)
    with pytest.raises(TypeError, match="`beta`"):
        jax.jit(lambda b: jaxloss.linear_distillation_loss(xs, ks, xt, kt, divergence="jsd", beta=b))(0.5)


# --------------------------------------------------------------------------- memory


def _temp_bytes(loss, n, d, v):
    f32 = jnp.float32
    shapes = [jax.ShapeDtypeStruct(s, f32) for s in ((n, d), (d, v), (n, d), (d, v))]
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def _dense_jsd(xs, ks, xt, kt):
    ls = jax.nn.log_softmax(xs @ ks, -1)
    lt = jax.nn.log_softmax(jax.lax.stop_gradient(xt @ kt), -1)
    log_m = jnp.logaddexp(lt + math.log(0.5), ls + math.log(0.5))
    return jnp.mean(jnp.sum(0.5 * jnp.exp(lt) * (lt - log_m) + 0.5 * jnp.exp(ls) * (ls - log_m), -1))


def _fused(divergence, **blocks):
    return lambda xs, ks, xt, kt: jnp.mean(
        jaxloss.linear_distillation_loss(xs, ks, xt, kt, divergence=divergence, **blocks)
    )


@pytest.mark.slow
@pytest.mark.parametrize("divergence", DIVERGENCES)
def test_value_and_grad_memory_is_far_below_one_logit_matrix(divergence):
    n, d, v = 8192, 1024, 131072
    logits = n * v * 4
    # default blocks: below 1/30 of one N x V float32 matrix
    assert logits / _temp_bytes(_fused(divergence), n, d, v) >= 30
    # 512 x 2048 tiles: below 1/100
    small = {"block_size": 512, "vocab_block_size": 2048}
    fused = _temp_bytes(_fused(divergence, **small), n, d, v)
    assert logits / fused >= 100, (logits, fused)
    # a larger and a ragged vocabulary: no more temporary memory
    assert _temp_bytes(_fused(divergence, **small), n, d, 2 * v) <= 1.05 * fused
    assert _temp_bytes(_fused(divergence, **small), n, d, v - 3) <= 1.05 * fused


@pytest.mark.slow
def test_memory_small_shapes():
    n, d, v = 2048, 64, 16384
    fused = _temp_bytes(_fused("jsd", block_size=512, vocab_block_size=2048), n, d, v)
    assert _temp_bytes(_dense_jsd, n, d, v) / fused >= 10
    assert n * v * 4 / fused >= 5
    assert _temp_bytes(_fused("jsd", block_size=512, vocab_block_size=2048), n, d, 4 * v) <= 1.05 * fused


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
    n, ds, dt, v = 19, 6, 4, 44  # 11 classes per device, ragged vocabulary blocks of 4
    xs, xt = jnp.asarray(r.normal(size=(n, ds))), jnp.asarray(r.normal(size=(n, dt)))
    ks, kt = jnp.asarray(r.normal(size=(ds, v))), jnp.asarray(r.normal(size=(dt, v)))
    bs, bt = jnp.asarray(r.normal(size=(v,))), jnp.asarray(r.normal(size=(v,)))
    y = jnp.asarray(r.integers(0, v, size=n))
    ct = jnp.asarray(r.uniform(0.5, 1.5, size=n))
    where = jnp.asarray(np.arange(n) % 5 != 0)
    blocks = dict(block_size=5, vocab_block_size=4)
    specs = (P(), P(None, "v"), P("v"), P(), P(None, "v"), P("v"))

    for divergence in ("forward_kl", "reverse_kl", "jsd"):
        opts = dict(divergence=divergence, beta=0.4, temperature=0.7, where=where, **blocks)

        def body(xs, ks, bs, xt, kt, bt, axis_name=None):
            return jaxloss.linear_distillation_loss(xs, ks, xt, kt, student_bias=bs, teacher_bias=bt,
                                                    axis_name=axis_name, **opts)

        sharded = jax.shard_map(lambda *a: body(*a, axis_name="v"), mesh=mesh, in_specs=specs, out_specs=P())
        total = lambda f: (lambda *a: jnp.sum(f(*a) * ct))
        args = (xs, ks, bs, xt, kt, bt)
        v1, g1 = jax.value_and_grad(total(body), argnums=(0, 1, 2))(*args)
        v2, g2 = jax.jit(jax.value_and_grad(total(sharded), argnums=(0, 1, 2)))(*args)
        np.testing.assert_allclose(v2, v1, rtol=1e-12)
        for a, c in zip(g2, g1):
            np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
        print("ok")

    """
)


@pytest.mark.slow
def test_vocab_parallel_on_four_devices_equals_single_device():
    assert run_python(_SHARDED, devices=4, timeout=400).count("ok") == 3
