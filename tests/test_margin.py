"""Margin-softmax and proxy losses (``jaxloss/_margin.py``) against pytorch-metric-learning 2.9.

References: pytorch-metric-learning's ``ArcFaceLoss``, ``SubCenterArcFaceLoss``,
``CosFaceLoss``, ``ProxyAnchorLoss`` and ``ProxyNCALoss`` in float64, values and gradients with respect to the
embeddings and the class matrix (pytorch-metric-learning's ``W`` is ``(D, C)``
like jaxloss's ``kernel``; its ``proxies`` are ``(C, D)``, transposed here).
The class-blocked path is compared with the dense one, on one device and on
four forced CPU devices.
"""

from __future__ import annotations

import inspect
import math
import textwrap
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads
from pytorch_metric_learning import losses as pml

import jaxloss
from tests.helpers import run_python

RTOL = 1e-9
RAGGED = {"block_size": 8, "class_block_size": 7}


def _data(seed=0, n=23, d=6, c=11, k=1, same_classes=False):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, d))
    w = r.normal(size=(d, c * k))
    y = r.integers(0, min(c, 4) if same_classes else c, size=n)
    return x, w, y


def _torch_grads(module_loss, params, *tensors):
    loss = module_loss(*tensors)
    grads = torch.autograd.grad(loss, params)
    return loss.item(), [g.numpy() for g in grads]


def _jax_grads(fn, x, w):
    value, grads = jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(jnp.asarray(x), jnp.asarray(w))
    return float(value), [np.asarray(g) for g in grads]


def _assert_close(jax_result, torch_result, rtol=RTOL):
    (vj, gj), (vt, gt) = jax_result, torch_result
    np.testing.assert_allclose(vj, vt, rtol=rtol)
    for a, b in zip(gj, gt, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * np.max(np.abs(b)))


# --------------------------------------------------------------------------- ArcFace / CosFace


def _pml_margin(kind, x, w, y, *, margin, scale, k):
    c = w.shape[1] // k
    if kind == "arcface" and k > 1:
        loss = pml.SubCenterArcFaceLoss(
            num_classes=c, embedding_size=x.shape[1], margin=math.degrees(margin), scale=scale, sub_centers=k
        )
    elif kind == "arcface":
        loss = pml.ArcFaceLoss(c, x.shape[1], margin=math.degrees(margin), scale=scale)
    else:
        loss = pml.CosFaceLoss(c, x.shape[1], margin=margin, scale=scale)
    loss = loss.double()
    loss.W.data = torch.tensor(w)
    xt = torch.tensor(x, requires_grad=True)
    return _torch_grads(lambda a: loss(a, torch.tensor(y)), [xt, loss.W], xt)


def _jax_margin(kind, x, w, y, **kw):
    fn = jaxloss.arcface_loss if kind == "arcface" else jaxloss.cosface_loss
    return _jax_grads(lambda a, b: jnp.mean(fn(a, b, jnp.asarray(y), **kw)), x, w)


SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "kind,k,margin,scale,blocks",
    [
        ("arcface", 1, 0.5, 64.0, {}),
        ("arcface", 3, 0.3, 16.0, RAGGED),
        ("cosface", 1, 0.35, 64.0, {}),
        pytest.param("arcface", 1, 0.5, 64.0, RAGGED, marks=SLOW),
        pytest.param("arcface", 3, 0.3, 16.0, {}, marks=SLOW),
        pytest.param("cosface", 1, 0.35, 64.0, RAGGED, marks=SLOW),
    ],
)
def test_margin_losses_match_pytorch_metric_learning(kind, k, margin, scale, blocks):
    x, w, y = _data(1, k=k)
    # pytorch-metric-learning takes ArcFace's margin in degrees; its cosine is at most 1 after clamping
    expected = _pml_margin(kind, x, w, y, margin=margin, scale=scale, k=k)
    kw = dict(margin=margin, scale=scale, sub_centers=k, **blocks)
    _assert_close(_jax_margin(kind, x, w, y, **kw), expected)


@pytest.mark.parametrize("blocks", [RAGGED, {}])
def test_tied_sub_centers_route_the_gradient_to_the_first(blocks):
    """Identical sub-centres tie: pytorch-metric-learning's ``max(dim)`` sends the gradient to the first."""
    x, w, y = _data(4, k=3)
    w = w.reshape(w.shape[0], -1, 3)
    w[:, :, 2] = w[:, :, 0]  # each class's last sub-centre repeats its first
    w = w.reshape(w.shape[0], -1)
    expected = _pml_margin("arcface", x, w, y, margin=0.3, scale=16.0, k=3)
    _assert_close(_jax_margin("arcface", x, w, y, margin=0.3, scale=16.0, sub_centers=3, **blocks), expected)


@pytest.mark.slow
@pytest.mark.parametrize("kind,k", [("arcface", 1), ("arcface", 2), ("arcface", 4), ("cosface", 1)])
@pytest.mark.parametrize("seed", [2, 3])
def test_margin_losses_sweep(kind, k, seed):
    x, w, y = _data(seed, n=31, d=9, c=17, k=k)
    margin = 0.5 if kind == "arcface" else 0.35
    expected = _pml_margin(kind, x, w, y, margin=margin, scale=32.0, k=k)
    for blocks in ({}, RAGGED, {"block_size": 31, "class_block_size": 17}):
        got = _jax_margin(kind, x, w, y, margin=margin, scale=32.0, sub_centers=k, **blocks)
        _assert_close(got, expected)


@pytest.mark.slow
def test_arcface_fallback_branch_matches_pytorch_metric_learning():
    """Targets beyond pi - m (the monotonic continuation ``cos theta - m sin m``)."""
    x, w, y = _data(4, n=12)
    x[:6] = -w[:, y[:6]].T + 0.3 * np.random.default_rng(5).normal(size=(6, x.shape[1]))
    expected = _pml_margin("arcface", x, w, y, margin=1.2, scale=8.0, k=1)
    _assert_close(_jax_margin("arcface", x, w, y, margin=1.2, scale=8.0), expected)


def _stopped_target_reference(x, w, y, *, m2, m3, scale, stopped):
    """The dense loss; rows ``stopped`` (at theta = 0 or pi) without the target's derivative through theta."""
    ue = x / jnp.linalg.norm(x, axis=1, keepdims=True)
    uw = w / jnp.linalg.norm(w, axis=0, keepdims=True)
    cos = ue @ uw
    hit = jax.nn.one_hot(y, w.shape[1], dtype=bool)
    t = jnp.sum(jnp.where(hit, cos, 0), axis=1)
    t = jnp.where(stopped, jax.lax.stop_gradient(t), t)
    theta = jnp.arccos(jnp.clip(t, -1, 1))
    phi = jnp.where(theta <= math.pi - m2, jnp.cos(theta + m2), jnp.cos(theta) - m2 * math.sin(m2)) - m3
    z = jnp.where(hit, scale * phi[:, None], scale * cos)
    return jnp.mean(jax.nn.logsumexp(z, axis=1) - scale * phi)


@pytest.mark.slow
@pytest.mark.parametrize("blocks", [{}, RAGGED], ids=["dense", "blocked"])
@pytest.mark.parametrize("sign", [1.0, -1.0], ids=["theta=0", "theta=pi"])
def test_arcface_gradient_at_theta_zero_and_pi(sign, blocks):
    """An embedding on (or opposite) its class centre: finite gradients, the target's share is 0."""
    x, w, y = _data(6, n=9)
    x[:4] = sign * 2.5 * w[:, y[:4]].T
    x, w, y = jnp.asarray(x), jnp.asarray(w), jnp.asarray(y)
    for fn, m2, m3 in ((jaxloss.arcface_loss, 0.5, 0.0), (jaxloss.cosface_loss, 0.0, 0.35)):
        margin = m2 or m3
        value, grads = jax.value_and_grad(
            lambda a, b, fn=fn, margin=margin: jnp.mean(fn(a, b, y, margin=margin, scale=16.0, **blocks)),
            argnums=(0, 1),
        )(x, w)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
        ref_value, ref_grads = jax.value_and_grad(
            lambda a, b, m2=m2, m3=m3: _stopped_target_reference(
                a, b, y, m2=m2, m3=m3, scale=16.0, stopped=jnp.arange(9) < 4
            ),
            argnums=(0, 1),
        )(x, w)
        np.testing.assert_allclose(value, ref_value, rtol=1e-12)
        for g, r in zip(grads, ref_grads, strict=True):
            np.testing.assert_allclose(g, r, rtol=1e-6, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("blocks", [{}, RAGGED], ids=["dense", "blocked"])
def test_float32_at_scale_64_is_finite_and_close(blocks):
    x, w, y = _data(7, n=40, d=16, c=30)
    x[:5] = w[:, y[:5]].T  # on the class centre
    x[5:10] = -w[:, y[5:10]].T  # opposite
    args32 = (jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32), jnp.asarray(y))
    for fn in (jaxloss.arcface_loss, jaxloss.cosface_loss):
        f = jax.jit(
            jax.value_and_grad(lambda a, b, fn=fn: jnp.mean(fn(a, b, args32[2], **blocks)), argnums=(0, 1))
        )
        v32, g32 = f(*args32[:2])
        v64, g64 = jax.value_and_grad(lambda a, b, fn=fn: jnp.mean(fn(a, b, jnp.asarray(y))), argnums=(0, 1))(
            jnp.asarray(x), jnp.asarray(w)
        )
        assert v32.dtype == jnp.float32 and all(g.dtype == jnp.float32 for g in g32)
        assert bool(jnp.isfinite(v32)) and all(bool(jnp.all(jnp.isfinite(g))) for g in g32)
        np.testing.assert_allclose(v32, v64, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("k", [1, 3])
def test_blocked_equals_dense_float64(k):
    x, w, y = _data(8, n=29, d=7, c=13, k=k)
    ct = jnp.asarray(np.random.default_rng(9).uniform(0.5, 1.5, size=29))
    for fn in (jaxloss.arcface_loss, jaxloss.cosface_loss):

        def total(a, b, fn=fn, **blocks):
            return jnp.sum(ct * fn(a, b, jnp.asarray(y), scale=20.0, sub_centers=k, **blocks))

        dense = jax.value_and_grad(total, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(w))
        for blocks in (RAGGED, {"block_size": 5, "class_block_size": 2}):
            blocked = jax.jit(
                jax.value_and_grad(lambda a, b, blocks=blocks: total(a, b, **blocks), argnums=(0, 1))
            )(jnp.asarray(x), jnp.asarray(w))
            np.testing.assert_allclose(blocked[0], dense[0], rtol=1e-10)
            for a, b in zip(blocked[1], dense[1], strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_learnable_scale_and_margin_gradients():
    x, w, y = _data(10)
    y = jnp.asarray(y)

    def f(s, m, **blocks):
        return jnp.sum(jaxloss.arcface_loss(jnp.asarray(x), jnp.asarray(w), y, scale=s, margin=m, **blocks))

    dense = jax.grad(f, argnums=(0, 1))(10.0, 0.4)
    blocked = jax.grad(lambda s, m: f(s, m, **RAGGED), argnums=(0, 1))(10.0, 0.4)
    np.testing.assert_allclose(blocked, dense, rtol=1e-10)
    check_grads(lambda s, m: f(s, m, **RAGGED), (10.0, 0.4), order=1, modes=["rev"])


@pytest.mark.slow
def test_zero_embedding_and_zero_column():
    x, w, y = _data(11, n=6)
    x[0] = 0
    w[:, 3] = 0
    for blocks in ({}, RAGGED):
        v, g = jax.value_and_grad(
            lambda a, b, blocks=blocks: jnp.sum(jaxloss.arcface_loss(a, b, jnp.asarray(y), **blocks)),
            argnums=(0, 1),
        )(jnp.asarray(x), jnp.asarray(w))
        assert bool(jnp.isfinite(v)) and all(bool(jnp.all(jnp.isfinite(a))) for a in g)


@pytest.mark.slow
def test_default_switches_to_blocked_above_the_dense_limit(monkeypatch):
    from jaxloss import _block_policy

    x, w, y = _data(12)
    dense = jaxloss.arcface_loss(x, w, y)
    monkeypatch.setattr(_block_policy, "MARGIN", _block_policy.MARGIN._replace(dense_max=10))
    jaxpr = str(jax.make_jaxpr(lambda a, b: jaxloss.arcface_loss(a, b, y))(x, w))
    assert "custom_vjp" in jaxpr
    np.testing.assert_allclose(jaxloss.arcface_loss(x, w, y), dense, rtol=1e-12)


@pytest.mark.parametrize("fn", [jaxloss.arcface_loss, jaxloss.cosface_loss])
def test_weights_keyword_is_the_deprecated_name_of_kernel(fn):
    x, w, y = (jnp.asarray(a) for a in _data(5))
    expected = fn(x, w, y, scale=8.0)
    with pytest.warns(DeprecationWarning, match=f"{fn.__name__}: the keyword `weights` is renamed `kernel`"):
        got = fn(x, weights=w, labels=y, scale=8.0)
    np.testing.assert_array_equal(got, expected)
    with warnings.catch_warnings():  # the new keyword: no warning
        warnings.simplefilter("error", DeprecationWarning)
        np.testing.assert_array_equal(fn(x, kernel=w, labels=y, scale=8.0), expected)
    with pytest.raises(TypeError, match="`weights` is the old name of `kernel`"):
        fn(x, kernel=w, weights=w, labels=y)
    assert list(inspect.signature(fn).parameters)[:3] == ["embeddings", "kernel", "labels"]


# --------------------------------------------------------------------------- memory


def _temp_bytes(loss, n, d, c):
    shapes = (
        jax.ShapeDtypeStruct((n, d), jnp.float32),
        jax.ShapeDtypeStruct((d, c), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.slow
def test_blocked_memory_at_a_million_classes():
    """Value and gradient at N = 1024, D = 512, C = 2**20: two tiles and the (N, D) rows, no more.

    The class-blocked path holds one ``N x class_block_size`` float32 tile in the backward
    pass (the product, overwritten by its cotangent) and two in the forward pass (the product
    and one masked copy), plus ``(D, class_block_size)`` blocks and a few ``(N, D)`` arrays:
    at ``class_block_size=8192`` that is 1/60 of the ``N x C`` logits (measured: 68.2 MiB).
    """
    n, d, c = 1024, 512, 1 << 20
    logits_bytes = n * c * 4
    temps = {}
    for class_block_size in (8192, 1024):

        def loss(x, w, y, class_block_size=class_block_size):
            return jnp.mean(jaxloss.arcface_loss(x, w, y, class_block_size=class_block_size))

        temps[class_block_size] = temp = _temp_bytes(loss, n, d, c)
        tile_bytes = n * class_block_size * 4
        assert temp <= 2 * tile_bytes + 3 * n * d * 4, (class_block_size, temp / tile_bytes)
    assert temps[8192] < logits_bytes / 58, logits_bytes / temps[8192]
    assert temps[1024] < logits_bytes / 300, logits_bytes / temps[1024]


# --------------------------------------------------------------------------- proxy losses


# (14, 9, 30): most proxies without a positive
@pytest.mark.parametrize("seed,n,c", [(14, 9, 30), (13, 23, 11), (15, 40, 3)])
def test_proxy_anchor_matches_pytorch_metric_learning(seed, n, c):
    x, p, y = _data(seed, n=n, c=c)
    module = pml.ProxyAnchorLoss(c, x.shape[1], margin=0.1, alpha=32).double()
    module.proxies.data = torch.tensor(p.T.copy())
    xt = torch.tensor(x, requires_grad=True)
    expected = _torch_grads(lambda a: module(a, torch.tensor(y)), [xt, module.proxies], xt)
    expected = (expected[0], [expected[1][0], expected[1][1].T])
    got = _jax_grads(lambda a, b: jaxloss.proxy_anchor_loss(a, b, jnp.asarray(y)), x, p)
    _assert_close(got, expected)


@pytest.mark.parametrize("scale", [pytest.param(1.0, marks=SLOW), 7.5])
def test_proxy_nca_matches_pytorch_metric_learning(scale):
    x, p, y = _data(16, n=19, c=9)
    module = pml.ProxyNCALoss(9, x.shape[1], softmax_scale=scale).double()
    module.proxies.data = torch.tensor(p.T.copy())
    xt = torch.tensor(x, requires_grad=True)
    expected = _torch_grads(lambda a: module(a, torch.tensor(y)), [xt, module.proxies], xt)
    expected = (expected[0], [expected[1][0], expected[1][1].T])
    got = _jax_grads(lambda a, b: jnp.mean(jaxloss.proxy_nca_loss(a, b, jnp.asarray(y), scale=scale)), x, p)
    _assert_close(got, expected)


# --------------------------------------------------------------------------- bad input


def test_bad_arguments_name_the_argument():
    x, w, y = _data(26, n=4, c=6)
    cases = [
        (dict(kernel=w[0]), ValueError, "kernel"),
        (dict(sub_centers=4), ValueError, "sub_centers"),
        (dict(sub_centers=1.5), TypeError, "sub_centers"),
        (dict(margin=-0.1), ValueError, "margin"),
        (dict(margin=math.pi), ValueError, "margin"),
        (dict(scale=0.0), ValueError, "scale"),
        (dict(class_block_size=0), ValueError, "class_block_size"),
        (dict(block_size=2.5), TypeError, "block_size"),
        (dict(labels=np.array([0, 1, 6, 2])), ValueError, "labels"),
        (dict(labels=np.array([0, 1, -1, 2])), ValueError, "labels"),
    ]
    for fn in (jaxloss.arcface_loss, jaxloss.cosface_loss):
        for change, error, name in cases:
            args = dict(kernel=w, labels=y)
            args.update(change)
            kw = {k: v for k, v in change.items() if k not in ("kernel", "labels")}
            with pytest.raises(error, match=f"`{name}`"):
                fn(x, args["kernel"], args["labels"], **kw)


@pytest.mark.slow
def test_traced_labels_out_of_range_give_nan_rows():
    x, w, _ = _data(27, n=4, c=6)
    y = np.array([0, 6, 2, -1])
    for blocks in ({}, RAGGED):
        out = np.asarray(
            jax.jit(lambda a, b, t, blocks=blocks: jaxloss.arcface_loss(a, b, t, **blocks))(x, w, y)
        )
        assert np.isnan(out[1]) and np.isnan(out[3]) and np.isfinite(out[[0, 2]]).all()
    nca = jax.jit(jaxloss.proxy_nca_loss)(x, w, y)
    assert np.isnan(nca[1]) and np.isfinite(nca[0])
    assert np.isnan(jax.jit(jaxloss.proxy_anchor_loss)(x, w, y))
    with pytest.raises(ValueError, match="`labels`"):
        jaxloss.proxy_anchor_loss(x, w, y)


# --------------------------------------------------------------------------- class-parallel

_SHARDED = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import Mesh, PartitionSpec as P
    jax.config.update("jax_enable_x64", True)
    import jaxloss

    mesh = Mesh(np.array(jax.devices()), ("c",))
    r = np.random.default_rng(0)
    n, d, c, k = 19, 6, 44, 2  # 11 classes (22 columns) per device, ragged class blocks of 4
    x = jnp.asarray(r.normal(size=(n, d)))
    w = jnp.asarray(r.normal(size=(d, c * k)))
    y = jnp.asarray(r.integers(0, c, size=n))
    ct = jnp.asarray(r.uniform(0.5, 1.5, size=n))
    for fn in (jaxloss.arcface_loss, jaxloss.cosface_loss):
        opts = dict(scale=30.0, sub_centers=k, block_size=5, class_block_size=4)

        def single(x, w):
            return fn(x, w, y, **opts)

        def body(x, w, y):
            return fn(x, w, y, axis_name="c", **opts)

        sharded = jax.shard_map(body, mesh=mesh, in_specs=(P(), P(None, "c"), P()), out_specs=P())
        total = lambda f: (lambda x, w: jnp.sum(f(x, w) * ct))
        v1, g1 = jax.value_and_grad(total(single), argnums=(0, 1))(x, w)
        v0, g0 = jax.value_and_grad(total(lambda x, w: fn(x, w, y, scale=30.0, sub_centers=k)), argnums=(0, 1))(x, w)
        np.testing.assert_allclose(v1, v0, rtol=1e-10)
        v2, g2 = jax.jit(jax.value_and_grad(total(lambda x, w: sharded(x, w, y)), argnums=(0, 1)))(x, w)
        np.testing.assert_allclose(v2, v1, rtol=1e-12)
        for a, b in zip(g2, g1):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        print("ok")
        # the gradient taken inside shard_map: each device gets its own columns' gradient
        step = lambda x, w, y: jax.grad(lambda w: jnp.sum(body(x, w, y) * ct))(w)
        dw = jax.jit(jax.shard_map(step, mesh=mesh, in_specs=(P(), P(None, "c"), P()), out_specs=P(None, "c")))(x, w, y)
        np.testing.assert_allclose(dw, g1[1], rtol=1e-10, atol=1e-12)
        print("ok")
    """
)


@pytest.mark.slow
def test_class_parallel_on_four_devices_equals_single_device():
    assert run_python(_SHARDED, devices=4, timeout=400).count("ok") == 4
