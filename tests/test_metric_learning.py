"""Tests of the metric-learning losses.

References: PyTorch (torch.nn.functional), pytorch-metric-learning (pml), optax,
TensorFlow Addons' triplet_semihard_loss (re-implemented below from its source),
and brute-force loops over all triplets / pairs.
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
from hypothesis import given, settings
from hypothesis import strategies as st
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning import reducers as pml_reducers

import jaxloss
import jaxloss.torch as jt
from jaxloss._batch import prepare_mining
from tests.helpers import assert_matches_torch, rng, run_python

BATCH_LOSSES = {
    "batch_hard": jaxloss.batch_hard_triplet_loss,
    "batch_all": jaxloss.batch_all_triplet_loss,
    "semi_hard": jaxloss.semi_hard_triplet_loss,
    "ntxent": jaxloss.ntxent,
    "supcon": jaxloss.supervised_contrastive_loss,
    "lifted": jaxloss.lifted_structured_loss,
    "snn": jaxloss.soft_nearest_neighbor_loss,
}


def _batch(seed=0, n=12, d=5, classes=3, scale=1.0):
    r = rng(seed)
    x = r.normal(size=(n, d)) * scale
    labels = r.integers(0, classes, size=n).astype(np.int64)
    return x, labels


def _lp(power=1):
    return pml_distances.LpDistance(normalize_embeddings=False, p=2, power=power)


# --------------------------------------------------------------------------- triplet_margin_loss


@pytest.mark.parametrize("p", [1, 2, 3, 1.5])
@pytest.mark.parametrize("swap", [False, True])
def test_triplet_margin_loss_matches_torch(p, swap):
    r = rng(1)
    a, pos, neg = (r.normal(size=(6, 4)) for _ in range(3))
    fn = jax.jit(lambda a, b, c: jaxloss.triplet_margin_loss(a, b, c, norm_degree=p, margin=0.7, swap=swap))
    assert_matches_torch(
        fn,
        lambda a, b, c: F.triplet_margin_loss(a, b, c, margin=0.7, p=p, swap=swap, reduction="none"),
        a,
        pos,
        neg,
    )


def test_triplet_margin_loss_matches_optax_p2():
    r = rng(2)
    a, p, n = (jnp.asarray(r.normal(size=(7, 3))) for _ in range(3))
    ours = jaxloss.triplet_margin_loss(a, p, n, eps=0.0)
    ref = optax.losses.triplet_margin_loss(a, p, n, eps=0.0)
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    g1 = jax.grad(lambda a: jaxloss.triplet_margin_loss(a, p, n, eps=0.0).sum())(a)
    g2 = jax.grad(lambda a: optax.losses.triplet_margin_loss(a, p, n, eps=0.0).sum())(a)
    np.testing.assert_allclose(g1, g2, rtol=1e-10)
    # positional calls in optax's order keep working
    np.testing.assert_allclose(
        jaxloss.triplet_margin_loss(a, p, n, -1, 2, 0.5, 0.0),
        optax.losses.triplet_margin_loss(a, p, n, -1, 2, 0.5, 0.0),
    )


def test_optax_p3_triplet_loss_is_nan_where_jaxloss_gives_torchs_numbers():
    """README's claim: optax's norm_degree=3 raises a negative sum of cubes to 1/3 (NaN)."""
    r = rng(21)
    a, p, n = (r.normal(size=(4000, 16)) for _ in range(3))
    theirs = np.asarray(optax.losses.triplet_margin_loss(*(jnp.asarray(v) for v in (a, p, n)), norm_degree=3))
    ref = F.triplet_margin_loss(*(torch.tensor(v) for v in (a, p, n)), p=3, reduction="none").numpy()
    ours = np.asarray(jaxloss.triplet_margin_loss(a, p, n, norm_degree=3))
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-12)
    negative_cubes = ((a - p) ** 3).sum(-1) < 0
    assert np.all(np.isnan(theirs[negative_cubes]))
    assert 0.6 < np.isnan(theirs).mean() < 0.75  # README: 68% NaN on such rows
    finite = np.isfinite(theirs)
    assert np.mean(finite & np.isclose(theirs, ref, rtol=1e-6, atol=1e-9)) < 0.1  # README: 3% agree


def test_triplet_margin_loss_squared_is_facenet_formula(variant):
    r = rng(3)
    a, p, n = (r.normal(size=(8, 4)) * 0.3 for _ in range(3))

    def facenet(anchor, positive, negative):
        pos_dist = (anchor - positive).pow(2).sum(1)
        neg_dist = (anchor - negative).pow(2).sum(1)
        return F.relu(pos_dist - neg_dist + 0.2)

    fn = variant(lambda a, b, c: jaxloss.triplet_margin_loss(a, b, c, margin=0.2, eps=0.0, squared=True))
    assert_matches_torch(fn, facenet, a, p, n)


@pytest.mark.slow
def test_triplet_margin_loss_axis_and_zero_distance():
    r = rng(4)
    a, p, n = (r.normal(size=(3, 5, 2)) for _ in range(3))
    np.testing.assert_allclose(
        jaxloss.triplet_margin_loss(a, p, n, axis=1),
        jaxloss.triplet_margin_loss(np.moveaxis(a, 1, -1), np.moveaxis(p, 1, -1), np.moveaxis(n, 1, -1)),
    )
    x = jnp.ones((2, 3))
    for p_ in (1, 2, 3):
        g = jax.grad(
            lambda a, p_=p_: jaxloss.triplet_margin_loss(a, x, x + 5, norm_degree=p_, eps=0.0).sum()
        )(x)
        assert np.isfinite(g).all()


def test_triplet_margin_loss_half_precision():
    a = jnp.ones((2, 3), jnp.bfloat16)
    out = jaxloss.triplet_margin_loss(a, a * 0.5, a * 2)
    assert out.dtype == jnp.bfloat16


# --------------------------------------------------------------------------- masks


def _mining_distances(x, metric, squared):
    """The ``(B, B)`` distances the in-batch losses mine on (the batch against itself)."""
    ms = prepare_mining(x, jnp.zeros(x.shape[0], jnp.int32), None, None, None, "test")
    return ms.distances("sqeuclidean" if squared else metric, jax.lax.Precision.HIGHEST)


@pytest.mark.parametrize("metric,squared", [("euclidean", False), ("euclidean", True), ("cosine", False)])
def test_in_batch_distances_exact_zero_diagonal_and_finite_grads(metric, squared):
    x = jnp.asarray(rng(5).normal(size=(6, 3)))
    x = x.at[3].set(x[1])  # duplicate rows
    distances = jax.jit(lambda x: _mining_distances(x, metric, squared))
    d = np.asarray(distances(x))
    assert (np.diag(d) == 0).all()
    assert (d >= 0).all()
    assert (d == d.T).all()
    g = jax.jit(jax.grad(lambda x: distances(x).sum()))(x)
    assert np.isfinite(np.asarray(g)).all()
    if (metric, squared) == ("euclidean", False):
        ref = torch.cdist(torch.tensor(np.asarray(x)), torch.tensor(np.asarray(x))).numpy()
        np.testing.assert_allclose(d, ref, atol=1e-7)


@pytest.mark.slow
def test_in_batch_distances_are_cdists():
    """The in-batch losses and cdist share one core: the same numbers, the same zero-vector rule."""
    x = rng(6).normal(size=(300, 70)).astype(np.float32)  # large enough for the Gram path
    x[[4, 9]] = 0.0  # two zero vectors: cosine distance 0 between them, 1 to the others
    x = jnp.asarray(x)
    for metric, squared, name in (
        ("euclidean", False, "euclidean"),
        ("euclidean", True, "sqeuclidean"),
        ("cosine", False, "cosine"),
    ):
        d = _mining_distances(x, metric, squared)
        np.testing.assert_array_equal(d, jaxloss.cdist(x, metric=name))
    cos = _mining_distances(x, "cosine", False)
    assert float(cos[4, 9]) == 0.0 and float(cos[4, 0]) == 1.0


OFFSET_LOSSES = {
    "batch_hard": (jaxloss.batch_hard_triplet_loss, {"margin": 0.2}),
    "batch_hard_squared": (jaxloss.batch_hard_triplet_loss, {"margin": 0.2, "squared": True}),
    "batch_all": (jaxloss.batch_all_triplet_loss, {"margin": 0.2}),
    "semi_hard": (jaxloss.semi_hard_triplet_loss, {"margin": 0.2}),
    "semi_hard_squared": (jaxloss.semi_hard_triplet_loss, {"margin": 0.2, "squared": True}),
    "lifted": (jaxloss.lifted_structured_loss, {"margin": 0.2}),
    "snn": (jaxloss.soft_nearest_neighbor_loss, {"temperature": 0.1}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OFFSET_LOSSES))
def test_in_batch_losses_accurate_on_offset_float32_data(name):
    """Embeddings with a common offset (ReLU-like features, 20 + 0.1 N(0, 1)) lose no digits:
    the float32 loss is within 2e-6 relative of the float64 loss of the same float32 data
    (measured: at most 3.3e-7; an uncentred Gram product is off by 8.5e-6 to 1.2e-2)."""
    loss, kw = OFFSET_LOSSES[name]
    r = rng(31)
    x32 = jnp.asarray(20.0 + 0.1 * r.normal(size=(256, 64)), jnp.float32)
    labels = jnp.asarray(r.integers(0, 4, size=256))
    value32 = float(loss(x32, labels, **kw))
    value64 = float(loss(x32.astype(jnp.float64), labels, **kw))
    assert value64 > 1e-3  # a loss that depends on the distances
    np.testing.assert_allclose(value32, value64, rtol=2e-6)
    # translation invariance: the offset data give the loss of the centred data
    centred = x32.astype(jnp.float64) - 20.0
    np.testing.assert_allclose(float(loss(centred, labels, **kw)), value64, rtol=1e-9)


# --------------------------------------------------------------------------- brute-force references


def _np_dist(x, metric="euclidean", squared=False):
    if metric == "cosine":
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1 - u @ u.T
        np.fill_diagonal(d, 0)
        return d
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    return d**2 if squared else d


def _brute_batch_hard(x, labels, margin, metric="euclidean", squared=False, soft=False):
    d = _np_dist(x, metric, squared)
    losses = []
    for a in range(len(x)):
        ps = [d[a, p] for p in range(len(x)) if p != a and labels[p] == labels[a]]
        ns = [d[a, n] for n in range(len(x)) if labels[n] != labels[a]]
        if ps and ns:
            v = max(ps) - min(ns) + margin
            losses.append(np.log1p(np.exp(v)) if soft else max(v, 0.0))
    return np.mean(losses) if losses else 0.0


def _brute_batch_all(x, labels, margin, metric="euclidean", squared=False):
    d = _np_dist(x, metric, squared)
    losses = []
    n = len(x)
    for a in range(n):
        for p in range(n):
            for k in range(n):
                if p != a and labels[p] == labels[a] and labels[k] != labels[a]:
                    v = d[a, p] - d[a, k] + margin
                    if v > 0:
                        losses.append(v)
    return np.mean(losses) if losses else 0.0


@pytest.mark.parametrize("metric,squared", [("euclidean", False), ("euclidean", True), ("cosine", False)])
@pytest.mark.parametrize("soft", [False, True])
def test_batch_hard_matches_brute_force(metric, squared, soft, variant):
    x, labels = _batch(6, n=11, classes=3)
    fn = variant(
        lambda e, lab: jaxloss.batch_hard_triplet_loss(
            e, lab, margin=0.3, metric=metric, squared=squared, soft=soft
        )
    )
    np.testing.assert_allclose(
        fn(x, labels), _brute_batch_hard(x, labels, 0.3, metric, squared, soft), rtol=1e-10
    )


@pytest.mark.parametrize("metric,squared", [("euclidean", False), ("euclidean", True), ("cosine", False)])
@pytest.mark.parametrize("margin", [0.0, 0.5, 3.0])
def test_batch_all_matches_brute_force(metric, squared, margin):
    x, labels = _batch(7, n=10, classes=3)
    fn = jax.jit(
        lambda e, lab: jaxloss.batch_all_triplet_loss(e, lab, margin=margin, metric=metric, squared=squared)
    )
    np.testing.assert_allclose(
        fn(x, labels), _brute_batch_all(x, labels, margin, metric, squared), rtol=1e-10
    )


# ------------------------------------------------------------------------ pytorch-metric-learning


_SLOW = pytest.mark.slow  # each pml comparison costs CPU-seconds; one per loss stays in the fast loop


@pytest.mark.parametrize(
    "metric,squared",
    [
        ("euclidean", False),
        pytest.param("euclidean", True, marks=_SLOW),
        pytest.param("cosine", False, marks=_SLOW),
    ],
)
@pytest.mark.parametrize("soft", [False, pytest.param(True, marks=_SLOW)])
def test_batch_hard_matches_pml(metric, squared, soft):
    x, labels = _batch(8, n=16, classes=4)
    dist = pml_distances.CosineSimilarity() if metric == "cosine" else _lp(2 if squared else 1)
    loss_fn = pml_losses.TripletMarginLoss(
        margin=0.4, smooth_loss=soft, distance=dist, reducer=pml_reducers.MeanReducer()
    )
    miner = pml_miners.BatchHardMiner(distance=dist)

    def ref(e, lab):
        return loss_fn(e, lab, miner(e, lab))

    assert_matches_torch(
        lambda e, lab: jaxloss.batch_hard_triplet_loss(
            e, lab, margin=0.4, metric=metric, squared=squared, soft=soft
        ),
        ref,
        x,
        labels,
    )


@pytest.mark.parametrize(
    "metric,squared",
    [
        ("euclidean", False),
        pytest.param("euclidean", True, marks=_SLOW),
        pytest.param("cosine", False, marks=_SLOW),
    ],
)
def test_batch_all_matches_pml_default_reducer(metric, squared):
    x, labels = _batch(9, n=14, classes=3)
    dist = pml_distances.CosineSimilarity() if metric == "cosine" else _lp(2 if squared else 1)
    loss_fn = pml_losses.TripletMarginLoss(margin=0.5, distance=dist)  # AvgNonZeroReducer
    assert_matches_torch(
        lambda e, lab: jaxloss.batch_all_triplet_loss(e, lab, margin=0.5, metric=metric, squared=squared),
        lambda e, lab: loss_fn(e, lab),
        x,
        labels,
    )


@pytest.mark.parametrize("loss", ["batch_hard", pytest.param("batch_all", marks=_SLOW)])
def test_pml_default_distance_is_this_loss_of_normalized_rows(loss):
    """pml's default distance, LpDistance(), normalizes the embeddings: its TripletMarginLoss (with
    BatchHardMiner()) is this loss of L2-normalized rows, not of the raw rows (the docstrings)."""
    x, labels = _batch(10, n=16, classes=4, scale=3.0)
    if loss == "batch_hard":
        loss_fn = pml_losses.TripletMarginLoss(margin=0.4, reducer=pml_reducers.MeanReducer())
        miner = pml_miners.BatchHardMiner()

        def ref(e, lab):
            return loss_fn(e, lab, miner(e, lab))

        ours = jaxloss.batch_hard_triplet_loss
    else:
        loss_fn = pml_losses.TripletMarginLoss(margin=0.4)

        def ref(e, lab):
            return loss_fn(e, lab)

        ours = jaxloss.batch_all_triplet_loss

    def normalized(e, lab):
        return ours(e / jnp.linalg.norm(e, axis=-1, keepdims=True), lab, margin=0.4)

    assert_matches_torch(normalized, ref, x, labels)
    raw = float(ours(jnp.asarray(x), jnp.asarray(labels), margin=0.4))
    assert abs(raw - ref(torch.tensor(x), torch.tensor(labels)).item()) > 0.1  # not the raw rows


# ------------------------------------------------------------------ mining against references


def _with_references(seed, n=10, m=12, d=4, classes=3):
    """A batch and references (pytorch-metric-learning's ``ref_emb``): the first three references
    are copies of anchors 1-3 (normal candidates, never excluded), and anchor 0 has no positive
    among the references."""
    r = rng(seed)
    x = r.normal(size=(n, d))
    labels = r.integers(0, classes, size=n).astype(np.int64)
    refs = r.normal(size=(m, d))
    ref_labels = r.integers(0, classes, size=m).astype(np.int64)
    refs[:3], ref_labels[:3] = x[1:4], labels[1:4]
    labels[0] = 50
    return x, labels, refs, ref_labels


@pytest.mark.parametrize(
    "metric,squared",
    [
        ("euclidean", False),
        pytest.param("euclidean", True, marks=_SLOW),
        pytest.param("cosine", False, marks=_SLOW),
    ],
)
@pytest.mark.parametrize("soft", [False, pytest.param(True, marks=_SLOW)])
def test_batch_hard_with_references_matches_pml(metric, squared, soft):
    dist = pml_distances.CosineSimilarity() if metric == "cosine" else _lp(2 if squared else 1)
    loss_fn = pml_losses.TripletMarginLoss(
        margin=0.4, smooth_loss=soft, distance=dist, reducer=pml_reducers.MeanReducer()
    )
    miner = pml_miners.BatchHardMiner(distance=dist)

    def ref(e, lab, ref_emb, ref_lab):
        return loss_fn(e, lab, miner(e, lab, ref_emb, ref_lab), ref_emb, ref_lab)

    assert_matches_torch(
        lambda e, lab, r, rl: jaxloss.batch_hard_triplet_loss(
            e, lab, margin=0.4, metric=metric, squared=squared, soft=soft, ref_embeddings=r, ref_labels=rl
        ),
        ref,
        *_with_references(30),
    )


@pytest.mark.parametrize(
    "metric,squared",
    [
        ("euclidean", False),
        pytest.param("euclidean", True, marks=_SLOW),
        pytest.param("cosine", False, marks=_SLOW),
    ],
)
def test_batch_all_with_references_matches_pml(metric, squared):
    dist = pml_distances.CosineSimilarity() if metric == "cosine" else _lp(2 if squared else 1)
    loss_fn = pml_losses.TripletMarginLoss(margin=0.5, distance=dist)  # all triplets, AvgNonZeroReducer
    assert_matches_torch(
        lambda e, lab, r, rl: jaxloss.batch_all_triplet_loss(
            e, lab, margin=0.5, metric=metric, squared=squared, ref_embeddings=r, ref_labels=rl
        ),
        lambda e, lab, r, rl: loss_fn(e, lab, None, r, rl),
        *_with_references(31),
    )


@pytest.mark.parametrize("name", ["batch_all", "batch_hard", "semi_hard"])
def test_references_equal_to_the_batch_keep_the_own_pair(name):
    """References that are the batch itself are candidates like any other: the own pair (distance
    0) is a positive, unlike the in-batch loss, as pytorch-metric-learning's ref_emb. Anchor 0 is
    alone in its class: in-batch it has no positive, against itself as reference it has one."""
    x, labels = _batch(32, n=12, classes=3)
    labels[0] = 9
    fn = getattr(jaxloss, f"{name}_triplet_loss")
    with_refs = jax.jit(lambda x, labels: fn(x, labels, margin=5.0, ref_embeddings=x, ref_labels=labels))
    without = jax.jit(lambda x, labels: fn(x, labels, margin=5.0))
    assert float(with_refs(x, labels)) != pytest.approx(float(without(x, labels)))
    if name == "batch_all":
        loss_fn = pml_losses.TripletMarginLoss(margin=5.0, distance=_lp())
        np.testing.assert_allclose(
            with_refs(x, labels),
            loss_fn(
                torch.tensor(x), torch.tensor(labels), None, torch.tensor(x), torch.tensor(labels)
            ).item(),
            rtol=1e-12,
        )


@pytest.mark.parametrize("name", ["batch_hard", "batch_all", "semi_hard"])
def test_mining_without_references_or_positives_is_zero(name):
    x, labels, refs, ref_labels = _with_references(33)
    fn = getattr(jaxloss, f"{name}_triplet_loss")
    assert float(jax.jit(fn)(x, labels, ref_embeddings=refs[:0], ref_labels=ref_labels[:0])) == 0.0
    value, grads = jax.jit(
        jax.value_and_grad(
            lambda e, r: fn(e, labels, ref_embeddings=r, ref_labels=ref_labels + 100), argnums=(0, 1)
        )
    )(x, refs)
    assert float(value) == 0.0 and all(bool(jnp.all(g == 0)) for g in grads)


# ------------------------------------------------------------------------- mining across devices


_SHARDED_MINING = textwrap.dedent(
    """
    import numpy as np, jax, jax.numpy as jnp
    from jax.sharding import Mesh, PartitionSpec as P
    import jaxloss
    jax.config.update("jax_enable_x64", True)
    assert jax.device_count() == 4
    r = np.random.default_rng(0)
    n, m, d = 20, 12, 5  # 5 anchors and 3 references per device
    x, refs = jnp.asarray(r.normal(size=(n, d))), jnp.asarray(r.normal(size=(m, d)))
    labels, ref_labels = jnp.asarray(r.integers(0, 4, size=n)), jnp.asarray(r.integers(0, 4, size=m))
    labels = labels.at[7].set(9)  # an anchor without a positive anywhere
    refs = refs.at[4].set(x[2])  # a reference that is a copy of an anchor
    w = jnp.cos(jnp.arange(n))  # per-anchor outputs: a non-constant cotangent
    mesh = Mesh(np.array(jax.devices()), ("d",))
    scalar = {
        "batch_hard_triplet_loss": lambda **kw: jaxloss.batch_hard_triplet_loss(margin=0.5, **kw),
        "batch_all_triplet_loss": lambda **kw: jaxloss.batch_all_triplet_loss(margin=0.5, **kw),
        "semi_hard_triplet_loss": lambda **kw: jaxloss.semi_hard_triplet_loss(margin=0.5, **kw),
    }
    per_anchor = {
        "multi_similarity_loss": lambda **kw: jaxloss.multi_similarity_loss(beta=10.0, **kw),
        "circle_loss": lambda **kw: jaxloss.circle_loss(gamma=8.0, **kw),
    }
    for name, loss in {**scalar, **per_anchor}.items():
        out_spec = P() if name in scalar else P("d")
        reduce = (lambda v: v) if name in scalar else (lambda v: jnp.sum(w * v))
        for with_refs in (False, True):
            def fn(e, lab, rf, rl, ax):
                refs_kw = dict(ref_embeddings=rf, ref_labels=rl) if with_refs else {}
                return loss(embeddings=e, labels=lab, axis_name=ax, **refs_kw)
            one = lambda e, rf: reduce(fn(e, labels, rf, ref_labels, None))
            v0, g0 = jax.jit(jax.value_and_grad(one, argnums=(0, 1)))(x, refs)
            sharded = jax.shard_map(
                lambda e, lab, rf, rl: fn(e, lab, rf, rl, "d"),
                mesh=mesh, in_specs=(P("d"),) * 4, out_specs=out_spec)
            out = jax.jit(sharded)(x, labels, refs, ref_labels)
            whole = jax.jit(lambda e, lab, rf, rl: fn(e, lab, rf, rl, None))(x, labels, refs, ref_labels)
            np.testing.assert_allclose(out, whole, rtol=1e-12, atol=1e-14)
            many = lambda e, rf: reduce(sharded(e, labels, rf, ref_labels))
            v1, g1 = jax.jit(jax.value_and_grad(many, argnums=(0, 1)))(x, refs)
            np.testing.assert_allclose(v1, v0, rtol=1e-12)
            for a, b in zip(g1, g0):  # embeddings; references (zero without them)
                np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13)
            jaxpr = str(jax.make_jaxpr(sharded)(x, labels, refs, ref_labels))
            assert "all_gather" in jaxpr, name
            if name in scalar:  # pmap: each device's gradient of the global loss w.r.t. its rows
                local = lambda e, lab, rf, rl: jax.value_and_grad(fn, argnums=(0, 2))(e, lab, rf, rl, "d")
                v2, g2 = jax.pmap(local, axis_name="d")(
                    x.reshape(4, 5, d), labels.reshape(4, 5), refs.reshape(4, 3, d), ref_labels.reshape(4, 3))
                np.testing.assert_allclose(v2, np.full(4, v0), rtol=1e-12)
                np.testing.assert_allclose(np.asarray(g2[0]).reshape(n, d), g0[0], rtol=1e-10, atol=1e-13)
                np.testing.assert_allclose(np.asarray(g2[1]).reshape(m, d), g0[1], rtol=1e-10, atol=1e-13)
        print(name, "ok")
    """
)


@pytest.mark.slow  # a subprocess on four forced CPU devices
def test_mining_on_four_devices_equals_one_device():
    """The five mining losses with ``axis_name`` (anchors local, candidates all-gathered, the own
    pair excluded by global index; references sharded and all-gathered) equal one device's
    result on the whole batch, values and gradients, under ``shard_map`` and ``pmap``."""
    assert run_python(_SHARDED_MINING, devices=4, timeout=420).count(" ok") == 5


# --------------------------------------------------------------------------- TF-Addons semi-hard


def _tfa_semihard(labels, embeddings, margin, squared):
    """TensorFlow Addons' triplet_semihard_loss, line by line in PyTorch (tile, masked min/max)."""

    def masked_maximum(data, mask):
        axis_minimums = data.min(1, keepdim=True).values
        return ((data - axis_minimums) * mask).max(1, keepdim=True).values + axis_minimums

    def masked_minimum(data, mask):
        axis_maximums = data.max(1, keepdim=True).values
        return ((data - axis_maximums) * mask).min(1, keepdim=True).values + axis_maximums

    def pairwise_distance(e, squared):  # tfa.losses.metric_learning.pairwise_distance
        sq = (e**2).sum(1, keepdim=True) + (e**2).sum(1)[None] - 2 * e @ e.T
        sq = sq.clamp_min(0.0)
        error_mask = sq <= 0.0
        d = sq if squared else torch.sqrt(sq + error_mask.to(sq.dtype) * 1e-16)
        d = d * (~error_mask).to(d.dtype)
        n = e.shape[0]
        return d * (torch.ones(n, n, dtype=d.dtype) - torch.eye(n, dtype=d.dtype))

    labels = labels.reshape(-1, 1)
    pdist = pairwise_distance(embeddings, squared)
    adjacency = labels == labels.T
    adjacency_not = ~adjacency
    b = labels.shape[0]
    pdist_tile = pdist.repeat(b, 1)
    mask = adjacency_not.repeat(b, 1) & (pdist_tile > pdist.T.reshape(-1, 1))
    mask_final = (mask.to(pdist.dtype).sum(1, keepdim=True) > 0.0).reshape(b, b).T
    adjacency_not = adjacency_not.to(pdist.dtype)
    mask = mask.to(pdist.dtype)
    negatives_outside = masked_minimum(pdist_tile, mask).reshape(b, b).T
    negatives_inside = masked_maximum(pdist, adjacency_not).repeat(1, b)
    semi_hard_negatives = torch.where(mask_final, negatives_outside, negatives_inside)
    loss_mat = margin + pdist - semi_hard_negatives
    mask_positives = adjacency.to(pdist.dtype) - torch.eye(b, dtype=pdist.dtype)
    num_positives = mask_positives.sum()
    return (loss_mat * mask_positives).clamp_min(0.0).sum() / num_positives


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("margin", [0.2, 1.0])
def test_semi_hard_matches_tfa(squared, margin):
    x, labels = _batch(17, n=14, classes=4)
    labels[0] = 50  # an anchor without positives
    fn = jax.jit(lambda e, lab: jaxloss.semi_hard_triplet_loss(e, lab, margin=margin, squared=squared))
    assert_matches_torch(fn, lambda e, lab: _tfa_semihard(lab, e, margin, squared), x, labels)


def _tfa_semihard_references(labels, embeddings, ref_labels, refs, margin, squared):
    """TF-Addons' triplet_semihard_loss with anchors against references: the same masked min / max
    (rows: anchors, columns: references), every same-label reference a positive (no own pair)."""

    def masked_maximum(data, mask, dim):
        axis_minimums = data.min(dim, keepdim=True).values
        return ((data - axis_minimums) * mask).max(dim, keepdim=True).values + axis_minimums

    def masked_minimum(data, mask, dim):
        axis_maximums = data.max(dim, keepdim=True).values
        return ((data - axis_maximums) * mask).min(dim, keepdim=True).values + axis_maximums

    sq = (embeddings**2).sum(1, keepdim=True) + (refs**2).sum(1)[None] - 2 * embeddings @ refs.T
    sq = sq.clamp_min(0.0)
    error_mask = sq <= 0.0
    pdist = sq if squared else torch.sqrt(sq + error_mask.to(sq.dtype) * 1e-16)
    pdist = pdist * (~error_mask).to(pdist.dtype)  # (n, m)
    adjacency = labels[:, None] == ref_labels[None, :]
    adjacency_not = (~adjacency).to(pdist.dtype)
    n, m = pdist.shape
    tile = pdist[:, None, :].expand(n, m, m)  # [a, p, n'] = D[a, n']
    mask = adjacency_not[:, None, :] * (tile > pdist[:, :, None]).to(pdist.dtype)
    mask_final = mask.sum(-1) > 0.0  # [a, p]: some negative farther than the positive
    negatives_outside = masked_minimum(tile, mask, -1)[..., 0]
    negatives_inside = masked_maximum(pdist, adjacency_not, 1).expand(n, m)
    semi_hard_negatives = torch.where(mask_final, negatives_outside, negatives_inside)
    loss_mat = margin + pdist - semi_hard_negatives
    mask_positives = adjacency.to(pdist.dtype)
    return (loss_mat * mask_positives).clamp_min(0.0).sum() / mask_positives.sum()


@pytest.mark.parametrize("squared", [True, False])
@pytest.mark.parametrize("margin", [0.2, pytest.param(1.0, marks=pytest.mark.slow)])
def test_semi_hard_with_references_matches_tfa(squared, margin, variant):
    x, labels, refs, ref_labels = _with_references(34)
    refs[5:7] *= 4  # anchors whose positives have no farther negative
    fn = variant(jaxloss.semi_hard_triplet_loss, margin=margin, squared=squared)
    assert_matches_torch(
        lambda e, lab, r, rl: fn(e, lab, ref_embeddings=r, ref_labels=rl),
        lambda e, lab, r, rl: _tfa_semihard_references(lab, e, rl, r, margin, squared),
        x,
        labels,
        refs,
        ref_labels,
    )


def test_semi_hard_anchor_without_negatives_matches_tfa():
    x, labels = _batch(18, n=8, classes=2)
    labels[:] = [0, 0, 0, 1, 1, 1, 2, 2]
    # class 2 has negatives; force a class whose members see no semi-hard negative
    x[6:] *= 10
    semi_hard = jax.jit(lambda e, lab: jaxloss.semi_hard_triplet_loss(e, lab, squared=True))
    out = semi_hard(x, labels)
    ref = _tfa_semihard(torch.tensor(labels), torch.tensor(x), 1.0, True)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-12)
    one_class = np.zeros(8, int)  # no negatives at all: TF-Addons uses the row minimum (0)
    out = semi_hard(x, one_class)
    ref = _tfa_semihard(torch.tensor(one_class), torch.tensor(x), 1.0, True)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-12)


# --------------------------------------------------------------------------- PyTorch face


@pytest.mark.slow
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_torch_triplet_margin_loss(reduction):
    r = rng(19)
    a, p, n = (r.normal(size=(5, 3)) for _ in range(3))
    fn = jax.jit(
        lambda a, p, n: jt.triplet_margin_loss(a, p, n, margin=0.5, p=3, swap=True, reduction=reduction)
    )
    assert_matches_torch(
        fn,
        lambda a, p, n: F.triplet_margin_loss(a, p, n, margin=0.5, p=3, swap=True, reduction=reduction),
        a,
        p,
        n,
    )
    assert_matches_torch(
        lambda a, p, n: jt.triplet_margin_loss(a, p, n, reduce=False),
        lambda a, p, n: F.triplet_margin_loss(a, p, n, reduce=False),
        a,
        p,
        n,
    )
    assert_matches_torch(jt.triplet_margin_loss, F.triplet_margin_loss, a[0], p[0], n[0])  # unbatched


@pytest.mark.parametrize("swap", [False, True])
def test_torch_triplet_margin_with_distance_loss(swap):
    r = rng(20)
    a, p, n = (r.normal(size=(6, 3)) for _ in range(3))
    assert_matches_torch(
        lambda a, p, n: jt.triplet_margin_with_distance_loss(a, p, n, swap=swap, margin=2.0),
        lambda a, p, n: F.triplet_margin_with_distance_loss(a, p, n, swap=swap, margin=2.0),
        a,
        p,
        n,
    )

    def jdist(x, y):
        return 1 - jnp.sum(x * y, -1) / jnp.linalg.norm(x, axis=-1) / jnp.linalg.norm(y, axis=-1)

    assert_matches_torch(
        lambda a, p, n: jt.triplet_margin_with_distance_loss(
            a, p, n, distance_function=jdist, swap=swap, reduction="none"
        ),
        lambda a, p, n: F.triplet_margin_with_distance_loss(
            a,
            p,
            n,
            distance_function=lambda x, y: 1 - F.cosine_similarity(x, y),
            swap=swap,
            reduction="none",
        ),
        a,
        p,
        n,
    )


def test_torch_face_errors():
    a = jnp.ones((3, 2))
    with pytest.raises(ValueError, match="margin"):
        jt.triplet_margin_loss(a, a, a, margin=0.0)
    with pytest.raises(ValueError, match="margin"):
        jt.triplet_margin_with_distance_loss(a, a, a, margin=-1.0)
    with pytest.raises(ValueError, match="dimensions"):
        jt.triplet_margin_loss(a, a, a[0])
    with pytest.raises(ValueError, match="reduction"):
        jt.triplet_margin_loss(a, a, a, reduction="avg")
    with pytest.raises(ValueError, match="target"):
        jt.cosine_embedding_loss(a, a, jnp.ones((3, 1)))
    with pytest.raises(ValueError, match="inputs"):
        jt.cosine_embedding_loss(a, a, jnp.array(1))
    with pytest.raises(ValueError, match="dimensions"):
        jt.margin_ranking_loss(a, a, jnp.ones(3))


# --------------------------------------------------------------------------- edge cases


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BATCH_LOSSES))
def test_coincident_embeddings_and_degenerate_batches(name):
    loss = BATCH_LOSSES[name]
    x, labels = _batch(23, n=8, classes=2)
    x[3] = x[1]
    x[5] = x[1]
    cases = {
        "duplicates": (x, labels),
        "all_equal": (np.ones_like(x), labels),
        "zeros": (np.zeros_like(x), labels),
        "single_class": (x, np.zeros(8, int)),
        "no_positives": (x, np.arange(8)),
    }
    value_and_grad = jax.jit(jax.value_and_grad(loss))
    for case, (e, lab) in cases.items():
        value, grad = value_and_grad(jnp.asarray(e), jnp.asarray(lab))
        assert np.isfinite(value), (name, case)
        assert np.isfinite(np.asarray(grad)).all(), (name, case)
        if case == "no_positives":
            assert float(value) == 0.0 and not np.asarray(grad).any(), (name, case)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BATCH_LOSSES))
def test_batch_loss_gradients_match_finite_differences(name):
    x, labels = _batch(28, n=9, classes=3)
    loss = jax.jit(BATCH_LOSSES[name])
    jax.test_util.check_grads(lambda e: loss(e, labels), (jnp.asarray(x),), order=1, modes=["rev"])


@pytest.mark.slow
def test_pair_losses_finite_at_coincidence():
    x = jnp.ones((3, 4))
    for fn in (
        lambda a: jaxloss.contrastive_loss(a, x, jnp.array([1, 0, 1])).sum(),
        lambda a: jaxloss.info_nce(a, x).sum(),
        lambda a: jaxloss.npair_loss(a, x),
        lambda a: jaxloss.triplet_margin_loss(a, x, x, eps=0.0, swap=True).sum(),
        lambda a: jaxloss.cosine_embedding_loss(a * 0, x, jnp.array([1, -1, 1])).sum(),
    ):
        assert np.isfinite(np.asarray(jax.grad(fn)(x))).all()


@pytest.mark.slow
def test_half_precision_batch_losses():
    x, labels = _batch(26, n=8)
    for loss in BATCH_LOSSES.values():
        out = loss(jnp.asarray(x, jnp.bfloat16), labels)
        assert out.dtype == jnp.bfloat16
        np.testing.assert_allclose(
            float(out), float(loss(jnp.asarray(x, jnp.float32), labels)), rtol=5e-2, atol=5e-2
        )


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", sorted(BATCH_LOSSES))
def test_batch_loss_errors(name):
    loss = BATCH_LOSSES[name]
    x = jnp.ones((4, 3))
    with pytest.raises(ValueError, match=r"labels.*length 4.*got length 3"):
        loss(x, jnp.array([0, 1, 0]))
    with pytest.raises(TypeError, match=r"labels.*integer dtype.*float"):
        loss(x, jnp.array([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels.*1 dimension"):
        loss(x, jnp.zeros((4, 1), int))
    with pytest.raises(ValueError, match=r"embeddings.*2 dimensions"):
        loss(jnp.ones(4), jnp.zeros(4, int))
    if name in ("ntxent", "supcon", "snn"):
        with pytest.raises(ValueError, match="temperature"):
            loss(x, jnp.zeros(4, int), temperature=0.0) if name != "ntxent" else loss(
                x, jnp.zeros(4, int), -1.0
            )
    else:
        with pytest.raises(ValueError, match="margin"):
            loss(x, jnp.zeros(4, int), margin=-0.1)


def test_option_errors():
    x, lab = jnp.ones((4, 3)), jnp.zeros(4, int)
    with pytest.raises(ValueError, match=r"metric.*'euclidean', 'cosine'.*Did you mean 'cosine'"):
        jaxloss.batch_hard_triplet_loss(x, lab, metric="cosin")
    with pytest.raises(ValueError, match="squared"):
        jaxloss.batch_all_triplet_loss(x, lab, metric="cosine", squared=True)
    with pytest.raises(ValueError, match=r"anchors.*negatives.*broadcastable"):
        jaxloss.triplet_margin_loss(x, x, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="margin"):
        jaxloss.triplet_margin_loss(x, x, x, margin=-1.0)
    with pytest.raises(ValueError, match=r"queries.*keys.*same shape"):
        jaxloss.info_nce(x, jnp.ones((5, 3)))
    with pytest.raises(ValueError, match="temperature"):
        jaxloss.info_nce(x, x, temperature=0.0)
    with pytest.raises(ValueError, match=r"anchors.*positives.*same shape"):
        jaxloss.npair_loss(x, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="labels"):
        jaxloss.contrastive_loss(x, x, jnp.ones(5))
    with pytest.raises(ValueError, match="margin"):
        jaxloss.contrastive_loss(x, x, jnp.ones(4), margin=-1.0)
    with pytest.raises(ValueError, match="margin"):
        jaxloss.cosine_embedding_loss(x, x, jnp.ones(4), margin=2.0)
    with pytest.raises(TypeError, match="labels"):
        jaxloss.positive_mask(jnp.ones(3))


# --------------------------------------------------------------------------- properties


_JITTED_MINERS = [
    jax.jit(f)
    for f in (
        jaxloss.batch_hard_triplet_loss,
        jaxloss.batch_all_triplet_loss,
        jaxloss.semi_hard_triplet_loss,
        jaxloss.lifted_structured_loss,
    )
]


@pytest.mark.slow
@settings(max_examples=10)
@given(st.integers(0, 10_000), st.floats(0.0, 2.0))
def test_batch_losses_invariant_to_permutation_and_translation(seed, margin):
    x, labels = _batch(seed, n=9, classes=3)
    perm = rng(seed + 1).permutation(9)
    shift = rng(seed + 2).normal(size=(1, 5)) * 3
    for fn in _JITTED_MINERS:
        base = float(fn(x, labels, margin=margin))
        assert base >= 0
        np.testing.assert_allclose(
            float(fn(x[perm], labels[perm], margin=margin)), base, rtol=1e-9, atol=1e-12
        )
        np.testing.assert_allclose(float(fn(x + shift, labels, margin=margin)), base, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
@settings(max_examples=10)
@given(st.integers(0, 10_000))
def test_batch_hard_bounds_batch_all(seed):
    # every anchor's hardest triplet is at least as violating as the mean of its violating triplets
    x, labels = _batch(seed, n=9, classes=3)
    hard = _JITTED_MINERS[0](x, labels, margin=10.0)  # large margin: every triplet violates
    all_ = _JITTED_MINERS[1](x, labels, margin=10.0)
    assert float(hard) >= float(all_) - 1e-9
    trip = jaxloss.triplet_margin_loss  # batch-all with every triplet active equals the mean triplet loss
    mask = np.asarray(jaxloss.triplet_mask(labels))
    a, p, n = np.nonzero(mask)
    if len(a):
        np.testing.assert_allclose(
            float(all_), float(trip(x[a], x[p], x[n], margin=10.0, eps=0.0).mean()), rtol=1e-9
        )


# --------------------------------------------------------------------------- across devices


_SHARDED = textwrap.dedent(
    """
    import numpy as np, jax, jax.numpy as jnp
    from functools import partial
    from jax.sharding import Mesh, PartitionSpec as P
    import jaxloss
    jax.config.update("jax_enable_x64", True)
    assert jax.device_count() == 4
    r = np.random.default_rng(0)
    x = jnp.asarray(r.normal(size=(16, 5)))
    k = jnp.asarray(r.normal(size=(16, 5)))
    labels = jnp.asarray(r.integers(0, 5, size=16))
    mesh = Mesh(np.array(jax.devices()), ("d",))
    cases = {
        "ntxent": (lambda e, lab, k: jaxloss.ntxent(e, lab, 0.3),
                   lambda e, lab, k: jaxloss.ntxent(e, lab, 0.3, axis_name="d")),
        "supcon": (lambda e, lab, k: jaxloss.supervised_contrastive_loss(e, lab, temperature=0.3),
                   lambda e, lab, k: jaxloss.supervised_contrastive_loss(
                       e, lab, temperature=0.3, axis_name="d")),
        "info_nce": (lambda e, lab, k: jaxloss.info_nce(e, k, temperature=0.3),
                     lambda e, lab, k: jaxloss.info_nce(e, k, temperature=0.3, axis_name="d")),
    }
    for name, (single, sharded) in cases.items():
        v0, g0 = jax.value_and_grad(single, argnums=(0, 2))(x, labels, k)
        smap = jax.shard_map(sharded, mesh=mesh, in_specs=(P("d"), P("d"), P("d")), out_specs=P())
        v1, g1 = jax.jit(jax.value_and_grad(smap, argnums=(0, 2)))(x, labels, k)
        np.testing.assert_allclose(v1, v0, rtol=1e-12)
        for a, b in zip(g1, g0):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
        # pmap: per-device gradient of the (replicated) global loss
        def local(e, lab, kk):
            return jax.value_and_grad(sharded, argnums=(0, 2))(e, lab, kk)
        v2, g2 = jax.pmap(local, axis_name="d")(
            x.reshape(4, 4, 5), labels.reshape(4, 4), k.reshape(4, 4, 5))
        np.testing.assert_allclose(v2, np.full(4, v0), rtol=1e-12)
        for a, b in zip(g2, g0):
            np.testing.assert_allclose(np.asarray(a).reshape(16, 5), b, rtol=1e-9, atol=1e-12)
        print(name, "ok")
    """
)


@pytest.mark.slow  # a subprocess with 4 forced CPU devices
def test_axis_name_gathers_negatives_across_devices():
    assert run_python(_SHARDED, devices=4, timeout=300).count("ok") == 3


# ------------------------------------------------------------------ training (an optax loop)


@pytest.mark.slow  # a training loop
def test_flax_nnx_training_reduces_batch_hard_loss():
    from flax import nnx

    r = rng(27)
    centers = r.normal(size=(4, 8)) * 1.5
    labels = np.repeat(np.arange(4), 16)
    inputs = jnp.asarray(centers[labels] + r.normal(size=(64, 8)), jnp.float32)
    labels = jnp.asarray(labels)

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.l1 = nnx.Linear(8, 32, rngs=rngs)
            self.l2 = nnx.Linear(32, 4, rngs=rngs)

        def __call__(self, x):
            return self.l2(nnx.relu(self.l1(x)))

    model = Model(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    def loss_fn(model):
        return jaxloss.batch_hard_triplet_loss(model(inputs), labels, margin=0.2, squared=True)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    first = float(loss_fn(model))
    for _ in range(60):
        step(model, optimizer)
    last = float(loss_fn(model))
    assert np.isfinite(last) and last < 0.5 * first, (first, last)
