"""Tests of the contrastive family (``jaxloss/_contrastive.py``): dense, tiled (``block_size``) and ring paths.

References: float64 PyTorch formulas (CLIP as open_clip's ``ClipLoss``, SigLIP
as big_vision's / open_clip's sigmoid loss, supervised contrastive as Khosla
et al.'s ``L_out``, soft nearest neighbour as Frosst et al.'s formula),
pytorch-metric-learning (``NTXentLoss``, ``SupConLoss``, ``LiftedStructureLoss``,
``NPairsLoss``, ``ContrastiveLoss``), optax's ``ntxent`` and PyTorch's cross-entropy.
"""

from __future__ import annotations

import textwrap

import jax
import jax.numpy as jnp
import jax.test_util
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import reducers as pml_reducers

import jaxloss
from tests.helpers import assert_matches_torch, rng, run_python

BLOCKS = [None, 4]  # dense; ragged tiles (more block sizes in the tiled == dense tests)


# --------------------------------------------------------------------------- PyTorch formulas


def _torch_clip(x, y, t, normalize=True):
    if normalize:
        x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    logits = x @ y.T / t
    target = torch.arange(x.shape[0])
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def _torch_siglip(q, k, scale, bias, normalize=True):
    if normalize:
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    logits = scale * q @ k.T + bias
    z = 2 * torch.eye(q.shape[0], dtype=logits.dtype) - 1
    return -F.logsigmoid(z * logits).sum() / q.shape[0]


def _torch_supcon(x, labels, t):
    """Khosla et al.'s L_out, mean over the anchors that have a positive."""
    u = F.normalize(x, dim=-1)
    s = u @ u.T / t
    n = x.shape[0]
    labels = torch.as_tensor(labels)
    not_self = ~torch.eye(n, dtype=torch.bool)
    pos = (labels[:, None] == labels[None, :]) & not_self
    log_prob = s - torch.logsumexp(s.masked_fill(~not_self, -torch.inf), dim=1, keepdim=True)
    n_pos = pos.sum(1)
    has = n_pos > 0
    per_anchor = -(log_prob * pos).sum(1)[has] / n_pos[has]
    return per_anchor.mean()


def _pairs(seed=0, n=11, d=6):
    r = rng(seed)
    return r.normal(size=(n, d)), r.normal(size=(n, d))


def _labelled(seed=0, n=13, d=5, classes=4):
    r = rng(seed)
    labels = r.integers(0, classes, size=n)
    labels[-1] = 99  # an anchor without positives
    return r.normal(size=(n, d)), labels


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize("block_size", BLOCKS)
def test_clip_loss_matches_torch(block_size, variant):
    x, y = _pairs(1)
    t = np.array(0.2)  # a learnable temperature: its gradient is compared too
    fn = variant(lambda x, y, t: jaxloss.clip_loss(x, y, temperature=t, block_size=block_size))
    assert_matches_torch(fn, _torch_clip, x, y, t)
    fn = variant(
        lambda x, y: jaxloss.clip_loss(x, y, temperature=2.0, normalize=False, block_size=block_size)
    )
    assert_matches_torch(fn, lambda x, y: _torch_clip(x, y, 2.0, normalize=False), x, y)


@pytest.mark.parametrize("block_size", BLOCKS)
def test_sigmoid_contrastive_loss_matches_torch(block_size, variant):
    q, k = _pairs(2)
    scale, bias = np.array(7.0), np.array(-3.0)
    fn = variant(
        lambda q, k, s, b: jaxloss.sigmoid_contrastive_loss(
            q, k, logit_scale=s, logit_bias=b, block_size=block_size
        )
    )
    assert_matches_torch(fn, _torch_siglip, q, k, scale, bias)
    fn = variant(lambda q, k: jaxloss.sigmoid_contrastive_loss(q, k, normalize=False, block_size=block_size))
    assert_matches_torch(fn, lambda q, k: _torch_siglip(q, k, 10.0, -10.0, normalize=False), q, k)


@pytest.mark.parametrize("block_size", BLOCKS)
def test_supervised_contrastive_matches_torch_formula(block_size, variant):
    x, labels = _labelled(3)
    t = np.array(0.3)
    fn = variant(
        lambda x, lab, t: jaxloss.supervised_contrastive_loss(x, lab, temperature=t, block_size=block_size)
    )
    assert_matches_torch(fn, _torch_supcon, x, labels, t)


def test_tiled_ntxent_matches_pml(block_size=4):
    x, labels = _labelled(4)
    loss_fn = pml_losses.NTXentLoss(temperature=0.2)
    fn = jax.jit(lambda e, lab: jaxloss.ntxent(e, lab, 0.2, block_size=block_size))
    assert_matches_torch(fn, lambda e, lab: loss_fn(e, lab), x, labels)


def test_tiled_info_nce_matches_torch(block_size=3):
    q, k = _pairs(5)
    t = np.array(0.15)
    fn = jax.jit(lambda q, k, t: jaxloss.info_nce(q, k, temperature=t, block_size=block_size))
    ref = lambda q, k, t: F.cross_entropy(F.normalize(q) @ F.normalize(k).T / t, torch.arange(q.shape[0]))  # noqa: E731
    assert_matches_torch(fn, ref, q, k, t)


@pytest.mark.slow
def test_clip_loss_is_the_mean_of_info_nce_both_ways():
    x, y = (jnp.asarray(a) for a in _pairs(6))
    both = (jaxloss.info_nce(x, y, temperature=0.3) + jaxloss.info_nce(y, x, temperature=0.3)) / 2
    np.testing.assert_allclose(jaxloss.clip_loss(x, y, temperature=0.3), both, rtol=1e-13)
    np.testing.assert_allclose(jaxloss.clip_loss(x, y, temperature=0.3, block_size=4), both, rtol=1e-13)


# --------------------------------------------------------------------------- tiled == dense


def _losses(labels):
    return {
        "info_nce": lambda q, k, p, bs: jaxloss.info_nce(q, k, temperature=p[0], block_size=bs),
        "clip_loss": lambda q, k, p, bs: jaxloss.clip_loss(q, k, temperature=p[0], block_size=bs),
        "sigmoid_contrastive_loss": lambda q, k, p, bs: jaxloss.sigmoid_contrastive_loss(
            q, k, logit_scale=1 / p[0], logit_bias=p[1], block_size=bs
        ),
        "ntxent": lambda q, k, p, bs: jaxloss.ntxent(q + k, labels, p[0], block_size=bs),
        "supervised_contrastive_loss": lambda q, k, p, bs: jaxloss.supervised_contrastive_loss(
            q - k, labels, temperature=p[0], block_size=bs
        ),
    }


LOSSES = sorted(_losses(None))


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize(
    # ragged blocks and one-row blocks are engine features (tests/test_tile_engine.py); here each loss once
    "block_size",
    [16, *(pytest.param(b, marks=pytest.mark.slow) for b in (1, 5, 64))],
)
def test_tiled_equals_dense_to_round_off(name, block_size):
    r = rng(7)
    n = 37  # ragged for every block size
    q, k = jnp.asarray(r.normal(size=(n, 8))), jnp.asarray(r.normal(size=(n, 8)))
    params = jnp.asarray([0.25, -2.0])
    fn = _losses(jnp.asarray(r.integers(0, 5, size=n)))[name]
    grad = jax.value_and_grad(fn, argnums=(0, 1, 2))
    v0, g0 = jax.jit(grad, static_argnums=3)(q, k, params, None)
    v1, g1 = jax.jit(grad, static_argnums=3)(q, k, params, block_size)
    np.testing.assert_allclose(v1, v0, rtol=1e-13, atol=1e-14)
    for a, b in zip(g1, g0, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


# the engine's custom VJP is checked against autodiff in tests/test_tile_engine.py (fast loop); finite
# differences of every loss here, in the whole suite
@pytest.mark.slow
@pytest.mark.parametrize("name", LOSSES)
def test_tiled_gradients_match_finite_differences(name):
    r = rng(8)
    q, k = jnp.asarray(r.normal(size=(6, 3))), jnp.asarray(r.normal(size=(6, 3)))
    fn = _losses(jnp.asarray([0, 1, 0, 1, 2, 2]))[name]
    jax.test_util.check_grads(
        lambda q, k, p: fn(q, k, p, 4), (q, k, jnp.asarray([0.5, -1.0])), order=1, modes=["rev"]
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", LOSSES)
def test_tiled_float32_is_stable_at_temperature_001(name):
    r = rng(9)
    n = 300
    base = r.normal(size=(n, 16))
    q, k = base + 0.7 * r.normal(size=(n, 16)), base + 0.7 * r.normal(size=(n, 16))
    params = np.array([0.01, -5.0])
    fn = _losses(jnp.asarray(r.integers(0, 10, size=n)))[name]
    grad = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2)), static_argnums=3)
    v64, g64 = grad(jnp.asarray(q), jnp.asarray(k), jnp.asarray(params), None)
    f32 = [jnp.asarray(a, jnp.float32) for a in (q, k, params)]
    v_dense, g_dense = grad(*f32, None)
    v32, g32 = grad(*f32, 64)
    assert v32.dtype == jnp.float32 and np.isfinite(v32)
    np.testing.assert_allclose(v32, v64, rtol=1e-5 * float(jnp.abs(v64)) + 1e-5)
    # the tiled float32 error is that of the dense float32 path, whatever the scale of the gradient
    for tiled, dense, exact in zip(g32, g_dense, g64, strict=True):
        assert np.all(np.isfinite(tiled))
        err_tiled = float(np.max(np.abs(np.asarray(tiled, np.float64) - exact)))
        err_dense = float(np.max(np.abs(np.asarray(dense, np.float64) - exact)))
        assert err_tiled <= 4 * err_dense + 1e-5 * float(np.max(np.abs(exact))), (err_tiled, err_dense)


@pytest.mark.slow
@pytest.mark.parametrize("block_size", [None, 4])
def test_degenerate_batches(block_size):
    empty = jnp.zeros((0, 3))
    no_labels = jnp.zeros(0, jnp.int32)
    for value in (
        jaxloss.clip_loss(empty, empty, block_size=block_size),
        jaxloss.sigmoid_contrastive_loss(empty, empty, block_size=block_size),
        jaxloss.info_nce(empty, empty, block_size=block_size),
        jaxloss.ntxent(empty, no_labels, block_size=block_size),
        jaxloss.supervised_contrastive_loss(empty, no_labels, block_size=block_size),
    ):
        assert float(value) == 0.0
    # one class: no negatives for NT-Xent, no anchors without positives for SupCon
    x = jnp.asarray(rng(10).normal(size=(5, 3)))
    same = jnp.zeros(5, jnp.int32)
    assert float(jaxloss.ntxent(x, same, block_size=block_size)) == 0.0
    g = jax.grad(lambda x: jaxloss.ntxent(x, same, block_size=block_size))(x)
    assert np.all(np.asarray(g) == 0)
    # all distinct labels: no positive pair
    distinct = jnp.arange(5)
    assert float(jaxloss.supervised_contrastive_loss(x, distinct, block_size=block_size)) == 0.0
    # coincident embeddings: finite values and gradients
    twins = jnp.ones((6, 3))
    for fn in _losses(jnp.asarray([0, 0, 1, 1, 2, 2])).values():
        v, g = jax.value_and_grad(fn, argnums=(0, 1, 2))(twins, twins, jnp.asarray([0.1, -1.0]), block_size)
        assert np.isfinite(v) and all(np.all(np.isfinite(a)) for a in g)


@pytest.mark.slow
def test_learnable_temperature_in_a_flax_model():
    """A temperature stored as ``log(1 / T)`` in a Flax NNX module gets the exact gradient."""
    from flax import nnx

    class Towers(nnx.Module):
        def __init__(self, rngs):
            self.image = nnx.Linear(4, 3, rngs=rngs)
            self.text = nnx.Linear(5, 3, rngs=rngs)
            self.log_scale = nnx.Param(jnp.asarray(np.log(1 / 0.07)))

    r = rng(11)
    images, texts = jnp.asarray(r.normal(size=(9, 4))), jnp.asarray(r.normal(size=(9, 5)))
    model = Towers(nnx.Rngs(0))

    def loss(model, block_size):
        t = 1 / jnp.exp(model.log_scale[...])
        return jaxloss.clip_loss(model.image(images), model.text(texts), temperature=t, block_size=block_size)

    dense = nnx.grad(loss)(model, None)
    tiled = nnx.grad(loss)(model, 4)
    for a, b in zip(jax.tree.leaves(tiled), jax.tree.leaves(dense), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    assert abs(float(dense.log_scale[...])) > 0
    # the dense gradient of log(1/T) is the exact derivative (central difference in float64)
    h = 1e-6
    t0 = float(model.log_scale[...])
    values = []
    for step in (h, -h):
        model.log_scale[...] = jnp.asarray(t0 + step)
        values.append(float(loss(model, 4)))
    np.testing.assert_allclose(float(tiled.log_scale[...]), (values[0] - values[1]) / (2 * h), rtol=1e-6)


# --------------------------------------------------------------------------- options and errors


@pytest.mark.parametrize(
    "call, error, word",
    [
        (lambda x: jaxloss.clip_loss(x, x, block_size=0), ValueError, "block_size"),
        (lambda x: jaxloss.info_nce(x, x, block_size=-3), ValueError, "block_size"),
        (lambda x: jaxloss.sigmoid_contrastive_loss(x, x, block_size=2.5), TypeError, "block_size"),
        (lambda x: jaxloss.ntxent(x, jnp.arange(4), block_size=True), TypeError, "block_size"),
        (
            lambda x: jaxloss.supervised_contrastive_loss(x, jnp.arange(4), block_size="8"),
            TypeError,
            "block_size",
        ),
        (lambda x: jaxloss.clip_loss(x, x[:3]), ValueError, "text_embeddings"),
        (lambda x: jaxloss.clip_loss(x[0], x[0]), ValueError, "image_embeddings"),
        (lambda x: jaxloss.clip_loss(x, x, temperature=0.0), ValueError, "temperature"),
        (lambda x: jaxloss.sigmoid_contrastive_loss(x, x, logit_scale=-1.0), ValueError, "logit_scale"),
        (lambda x: jaxloss.sigmoid_contrastive_loss(x, x, logit_bias=float("nan")), ValueError, "logit_bias"),
        (lambda x: jaxloss.sigmoid_contrastive_loss(x, x[:, :2]), ValueError, "keys"),
        (lambda x: jaxloss.ntxent(x, jnp.arange(3), block_size=2), ValueError, "labels"),
    ],
)
def test_bad_options_raise_clear_errors(call, error, word):
    with pytest.raises(error, match=word):
        call(jnp.ones((4, 3)))


@pytest.mark.slow
def test_half_precision_in_half_precision_out():
    x, y = (jnp.asarray(a, jnp.bfloat16) for a in _pairs(12))
    for bs in (None, 4):
        v = jaxloss.clip_loss(x, y, block_size=bs)
        assert v.dtype == jnp.bfloat16
        ref = jaxloss.clip_loss(x.astype(jnp.float32), y.astype(jnp.float32))
        np.testing.assert_allclose(float(v), float(ref), rtol=2e-2)


# --------------------------------------------------------------------------- memory


@pytest.mark.slow
def test_tiled_clip_loss_memory_is_far_below_one_similarity_matrix():
    b, d = 65536, 512
    emb = jax.ShapeDtypeStruct((b, d), jnp.float32)
    t = jax.ShapeDtypeStruct((), jnp.float32)

    def value_and_grad(block_size):
        fn = lambda x, y, t: jaxloss.clip_loss(x, y, temperature=t, block_size=block_size)  # noqa: E731
        return jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2)))

    stats = value_and_grad(1024).lower(emb, emb, t).compile().memory_analysis()
    one_matrix = b * b * 4
    assert stats.temp_size_in_bytes < one_matrix / 100, stats.temp_size_in_bytes / one_matrix


@pytest.mark.slow
def test_tiled_losses_hold_one_or_two_tiles():
    """Value and gradient of every tiled loss: the tiles, not the (B, d) inputs, dominate here.

    One ``block_size^2`` float32 tile where each tile feeds unmasked statistics (CLIP, SigLIP
    with a traced scale; InfoNCE alike: the product, overwritten by its cotangent), two where a
    forward tile feeds two masked statistics (supervised contrastive; NT-Xent alike: the product
    and one masked copy).
    """
    b, d, block = 8192, 16, 2048
    tile = block * block * 4
    emb = jax.ShapeDtypeStruct((b, d), jnp.float32)
    lab = jax.ShapeDtypeStruct((b,), jnp.int32)
    t = jax.ShapeDtypeStruct((), jnp.float32)
    cases = {
        "clip_loss": (
            lambda x, y, t: jaxloss.clip_loss(x, y, temperature=t, block_size=block),
            (emb, emb, t),
            1,
        ),
        "sigmoid_contrastive_loss": (
            lambda x, y, t: jaxloss.sigmoid_contrastive_loss(x, y, logit_scale=t, block_size=block),
            (emb, emb, t),
            1,
        ),
        "supervised_contrastive_loss": (
            lambda x, y: jaxloss.supervised_contrastive_loss(x, y, block_size=block),
            (emb, lab),
            2,
        ),
    }
    for name, (fn, shapes, tiles) in cases.items():
        argnums = tuple(i for i, s in enumerate(shapes) if s.dtype == jnp.float32)
        step = jax.jit(jax.value_and_grad(fn, argnums=argnums))
        temp = step.lower(*shapes).compile().memory_analysis().temp_size_in_bytes
        assert temp < tiles * tile + 4 * b * d * 4 + tile / 8, (name, temp / tile)


@pytest.mark.slow
def test_tiled_memory_does_not_grow_with_the_square_of_the_batch():
    d, block = 64, 256
    temps = {}
    for b in (4096, 16384):
        emb = jax.ShapeDtypeStruct((b, d), jnp.float32)
        fn = lambda x, y: jaxloss.sigmoid_contrastive_loss(x, y, block_size=block)  # noqa: E731
        compiled = jax.jit(jax.value_and_grad(fn, argnums=(0, 1))).lower(emb, emb).compile()
        temps[b] = compiled.memory_analysis().temp_size_in_bytes
    # 4x the batch: the embeddings' share grows 4x, the tiles' share not at all; never 16x
    assert temps[16384] < 5 * temps[4096]
    assert temps[16384] < 16384 * 16384 * 4 / 20


# --------------------------------------------------------------------------- across devices


_RING = textwrap.dedent(
    """
    import numpy as np, jax, jax.numpy as jnp
    from jax.sharding import Mesh, PartitionSpec as P
    import jaxloss
    jax.config.update("jax_enable_x64", True)
    assert jax.device_count() == 4
    r = np.random.default_rng(0)
    n, d = 20, 5  # 5 rows per device
    q = jnp.asarray(r.normal(size=(n, d)))
    k = jnp.asarray(r.normal(size=(n, d)))
    labels = jnp.asarray(r.integers(0, 4, size=n))
    params = jnp.asarray([0.3, -2.0])
    mesh = Mesh(np.array(jax.devices()), ("d",))
    losses = {
        "info_nce": lambda q, k, lab, p, bs, ax: jaxloss.info_nce(
            q, k, temperature=p[0], block_size=bs, axis_name=ax),
        "clip_loss": lambda q, k, lab, p, bs, ax: jaxloss.clip_loss(
            q, k, temperature=p[0], block_size=bs, axis_name=ax),
        "sigmoid_contrastive_loss": lambda q, k, lab, p, bs, ax: jaxloss.sigmoid_contrastive_loss(
            q, k, logit_scale=1 / p[0], logit_bias=p[1], block_size=bs, axis_name=ax),
        "ntxent": lambda q, k, lab, p, bs, ax: jaxloss.ntxent(
            q + k, lab, p[0], block_size=bs, axis_name=ax),
        "supervised_contrastive_loss": lambda q, k, lab, p, bs, ax: jaxloss.supervised_contrastive_loss(
            q - k, lab, temperature=p[0], block_size=bs, axis_name=ax),
    }
    for name, fn in losses.items():
        v0, g0 = jax.value_and_grad(fn, argnums=(0, 1, 3))(q, k, labels, params, None, None)
        for bs in (None, 2, 8):  # the all-gather; ragged tiles of 2, 2, 1; one padded tile
            sharded = jax.shard_map(
                lambda q, k, lab, p: fn(q, k, lab, p, bs, "d"),
                mesh=mesh, in_specs=(P("d"), P("d"), P("d"), P()), out_specs=P())
            vg = jax.value_and_grad(sharded, argnums=(0, 1, 3))
            v1, g1 = jax.jit(vg)(q, k, labels, params)
            np.testing.assert_allclose(v1, v0, rtol=1e-13)
            for a, b in zip(g1, g0):  # embeddings, and the replicated parameters summed once
                np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
            jaxpr = str(jax.make_jaxpr(vg)(q, k, labels, params))
            if bs is None:
                assert "all_gather" in jaxpr and "ppermute" not in jaxpr, name
            else:
                assert "ppermute" in jaxpr and "all_gather" not in jaxpr, name
        # pmap: the per-device gradient of the global loss w.r.t. the local embeddings
        local = lambda q, k, lab: jax.value_and_grad(fn, argnums=(0, 1))(q, k, lab, params, 3, "d")
        v2, g2 = jax.pmap(local, axis_name="d")(q.reshape(4, 5, d), k.reshape(4, 5, d), labels.reshape(4, 5))
        np.testing.assert_allclose(v2, np.full(4, v0), rtol=1e-13)
        for a, b in zip(g2, g0[:2]):
            np.testing.assert_allclose(np.asarray(a).reshape(n, d), b, rtol=1e-11, atol=1e-13)
        print(name, "ok")
    """
)


@pytest.mark.slow
def test_ring_on_four_devices_equals_one_device():
    assert run_python(_RING, devices=4, timeout=600).count(" ok") == len(LOSSES)


_BATCH_LEVEL = textwrap.dedent(
    """
    import numpy as np, jax, jax.numpy as jnp
    from jax.sharding import Mesh, PartitionSpec as P
    import jaxloss
    jax.config.update("jax_enable_x64", True)
    assert jax.device_count() == 4
    r = np.random.default_rng(0)
    n, d = 20, 5
    x = jnp.asarray(r.normal(size=(n, d)))
    k = jnp.asarray(r.normal(size=(n, d)))
    labels = jnp.asarray(r.integers(0, 4, size=n))
    labels = labels.at[7].set(9)  # an anchor without a positive
    mesh = Mesh(np.array(jax.devices()), ("d",))
    losses = {
        "lifted_structured_loss": lambda x, k, lab, p, bs, ax: jaxloss.lifted_structured_loss(
            x, lab, margin=p, axis_name=ax),
        "soft_nearest_neighbor_loss": lambda x, k, lab, p, bs, ax: jaxloss.soft_nearest_neighbor_loss(
            x, lab, temperature=p, axis_name=ax),
        "npair_loss": lambda x, k, lab, p, bs, ax: jaxloss.npair_loss(p * x, k, block_size=bs, axis_name=ax),
    }
    for name, fn in losses.items():
        p = jnp.asarray(1.5)
        v0, g0 = jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 3)), static_argnums=(4, 5))(x, k, labels, p, None, None)
        for bs in ((None, 2) if name == "npair_loss" else (None,)):
            sharded = jax.shard_map(lambda x, k, lab, p: fn(x, k, lab, p, bs, "d"), mesh=mesh,
                                    in_specs=(P("d"), P("d"), P("d"), P()), out_specs=P())
            v1, g1 = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1, 3)))(x, k, labels, p)
            np.testing.assert_allclose(v1, v0, rtol=1e-13)
            for a, b in zip(g1, g0):
                np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
        local = lambda x, k, lab: jax.value_and_grad(fn, argnums=(0, 1))(x, k, lab, p, None, "d")
        v2, g2 = jax.pmap(local, axis_name="d")(x.reshape(4, 5, d), k.reshape(4, 5, d), labels.reshape(4, 5))
        np.testing.assert_allclose(v2, np.full(4, v0), rtol=1e-13)
        for a, b in zip(g2, g0[:2]):
            np.testing.assert_allclose(np.asarray(a).reshape(n, d), b, rtol=1e-11, atol=1e-13)
        assert np.abs(g0[0]).max() > 0 and abs(float(g0[2])) > 0
        print(name, "ok", float(v0))
    """
)


@pytest.mark.slow  # a subprocess on four forced CPU devices
def test_mining_set_losses_on_four_devices_equal_one_device():
    """lifted structured, soft nearest neighbour and N-pair with ``axis_name``: each device's anchors
    against the global batch, the global mean; values and gradients (embeddings and the traced
    margin / temperature / scale) equal one device's, under ``shard_map`` and ``pmap``."""
    assert run_python(_BATCH_LEVEL, devices=4, timeout=600).count(" ok") == 3


# --------------------------------------------------------------------------- dense references (pml, optax, torch)


def _batch(seed=0, n=12, d=5, classes=3, scale=1.0):
    r = rng(seed)
    x = r.normal(size=(n, d)) * scale
    labels = r.integers(0, classes, size=n).astype(np.int64)
    return x, labels


def _lp(power=1):
    return pml_distances.LpDistance(normalize_embeddings=False, p=2, power=power)


@pytest.mark.slow
def test_supervised_contrastive_matches_pml(variant):
    x, labels = _batch(10, n=12, classes=5)  # some anchors have no positive
    labels[-1] = 99  # a class of one
    loss_fn = pml_losses.SupConLoss(temperature=0.3)
    fn = variant(lambda e, lab: jaxloss.supervised_contrastive_loss(e, lab, temperature=0.3))
    assert_matches_torch(fn, lambda e, lab: loss_fn(e, lab), x, labels)


@pytest.mark.slow
def test_ntxent_matches_pml_and_optax():
    x, labels = _batch(11, n=10, classes=4)
    loss_fn = pml_losses.NTXentLoss(temperature=0.2)
    fn = jax.jit(lambda e, lab: jaxloss.ntxent(e, lab, 0.2))
    assert_matches_torch(fn, lambda e, lab: loss_fn(e, lab), x, labels)
    e, lab = jnp.asarray(x), jnp.asarray(labels)
    np.testing.assert_allclose(fn(e, lab), optax.ntxent(e, lab, 0.2), rtol=1e-12)
    np.testing.assert_allclose(
        jax.grad(fn)(e, lab), jax.grad(optax.ntxent)(e, lab, 0.2), rtol=1e-9, atol=1e-12
    )
    # optax's default temperature and positional order
    np.testing.assert_allclose(jaxloss.ntxent(e, lab), optax.ntxent(e, lab), rtol=1e-12)


def test_lifted_structured_matches_pml():
    x, labels = _batch(12, n=12, classes=3, scale=0.5)
    loss_fn = pml_losses.LiftedStructureLoss(neg_margin=1.5, pos_margin=0, distance=_lp())
    fn = jax.jit(lambda e, lab: jaxloss.lifted_structured_loss(e, lab, margin=1.5))
    assert_matches_torch(fn, lambda e, lab: loss_fn(e, lab), x, labels)


def test_npair_matches_pml_and_torch():
    r = rng(13)
    a, p = r.normal(size=(6, 4)), r.normal(size=(6, 4))
    loss_fn = pml_losses.NPairsLoss(distance=pml_distances.DotProductSimilarity(normalize_embeddings=False))
    labels = torch.arange(6).repeat(2)
    fn = jax.jit(jaxloss.npair_loss)
    assert_matches_torch(fn, lambda a, p: loss_fn(torch.cat([a, p]), labels), a, p)
    assert_matches_torch(fn, lambda a, p: F.cross_entropy(a @ p.T, torch.arange(6)), a, p)
    # pml's default DotProductSimilarity() normalizes the embeddings: npair_loss of unit rows
    default = pml_losses.NPairsLoss()
    unit = jax.jit(
        lambda a, p: jaxloss.npair_loss(*(v / jnp.linalg.norm(v, axis=-1, keepdims=True) for v in (a, p)))
    )
    assert_matches_torch(unit, lambda a, p: default(torch.cat([a, p]), labels), a, p)


def test_info_nce_matches_torch():
    r = rng(14)
    q, k = r.normal(size=(7, 4)), r.normal(size=(7, 4))
    fn = jax.jit(lambda q, k: jaxloss.info_nce(q, k, temperature=0.2))
    assert_matches_torch(
        fn,
        lambda q, k: F.cross_entropy(F.normalize(q) @ F.normalize(k).T / 0.2, torch.arange(7)),
        q,
        k,
    )
    fn = jax.jit(lambda q, k: jaxloss.info_nce(q, k, temperature=2.0, normalize=False))
    assert_matches_torch(fn, lambda q, k: F.cross_entropy(q @ k.T / 2.0, torch.arange(7)), q, k)


@pytest.mark.slow
def test_contrastive_loss_matches_formula_and_pml():
    r = rng(15)
    a, b = r.normal(size=(9, 3)) * 0.6, r.normal(size=(9, 3)) * 0.6
    y = r.integers(0, 2, size=9)

    def ref(a, b, y):
        d = F.pairwise_distance(a, b, eps=0)
        return y * d**2 + (1 - y) * F.relu(1.3 - d) ** 2

    fn = jax.jit(lambda a, b, y: jaxloss.contrastive_loss(a, b, y, margin=1.3))
    assert_matches_torch(fn, ref, a, b, y)
    # pml ContrastiveLoss agrees on the similar-pair term (LpDistance(power=2)); its
    # dissimilar term is relu(m - d^2), not relu(m - d)^2, so only similar pairs are compared.
    pml_fn = pml_losses.ContrastiveLoss(pos_margin=0, distance=_lp(2), reducer=pml_reducers.MeanReducer())
    idx = torch.arange(9)
    empty = torch.zeros(0, dtype=torch.long)
    assert_matches_torch(
        lambda a, b: jaxloss.contrastive_loss(a, b, jnp.ones(9, int)).mean(),
        lambda a, b: pml_fn(torch.cat([a, b]), indices_tuple=(idx, idx + 9, empty, empty)),
        a,
        b,
    )


def _torch_snn(x, labels, t):
    d = torch.cdist(x, x) ** 2
    n = x.shape[0]
    eye = torch.eye(n, dtype=torch.bool)
    same = (labels[:, None] == labels[None]) & ~eye
    logits = (-d / t).masked_fill(eye, -torch.inf)
    lse_all = torch.logsumexp(logits, 1)
    lse_pos = torch.logsumexp(logits.masked_fill(~same, -torch.inf), 1)
    keep = same.any(1)
    return (lse_all - lse_pos)[keep].mean()


def test_soft_nearest_neighbor_matches_formula():
    x, labels = _batch(16, n=10, classes=3)
    labels[0] = 7
    fn = jax.jit(lambda e, lab: jaxloss.soft_nearest_neighbor_loss(e, lab, temperature=2.0))
    assert_matches_torch(fn, lambda e, lab: _torch_snn(e, lab, 2.0), x, labels)


def test_ntxent_no_positive_pairs_is_zero_not_nan():
    x = jnp.asarray(rng(24).normal(size=(4, 3)))
    assert float(jax.jit(jaxloss.ntxent)(x, jnp.arange(4))) == 0.0
    assert np.isnan(float(jax.jit(optax.ntxent)(x, jnp.arange(4))))  # what optax does


@pytest.mark.slow
def test_lifted_single_class_is_zero():
    x = jnp.asarray(rng(25).normal(size=(5, 3)))
    value, grad = jax.value_and_grad(jaxloss.lifted_structured_loss)(x, jnp.zeros(5, int))
    assert float(value) == 0.0 and np.isfinite(np.asarray(grad)).all()
