"""Distances: scipy, PyTorch, torchmetrics, scikit-learn and optax references; axioms; errors."""

from __future__ import annotations

import functools
import math
import os
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.spatial.distance as ssd
import torch
import torchmetrics.functional.classification as tmf
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.metrics import DistanceMetric
from sklearn.metrics.pairwise import cosine_distances

import jaxloss
import jaxloss.torch as jt
from jaxloss import _distances
from tests.helpers import assert_matches_torch, rng, sweep

NUMERIC = [
    "braycurtis",
    "canberra",
    "chebyshev",
    "cityblock",
    "correlation",
    "cosine",
    "euclidean",
    "jensenshannon",
    "mahalanobis",
    "minkowski",
    "seuclidean",
    "sqeuclidean",
    "hamming",
]
BOOLEAN = ["dice", "hamming", "jaccard", "rogerstanimoto", "russellrao", "sokalsneath", "yule"]
WEIGHTED = [
    "braycurtis",
    "canberra",
    "chebyshev",
    "cityblock",
    "correlation",
    "cosine",
    "euclidean",
    "minkowski",
    "sqeuclidean",
    "hamming",
]
ALL = sorted(set(NUMERIC + BOOLEAN))


def _data(metric, n, m, d, seed=0, binary=False):
    r = rng(seed)
    if binary or metric in BOOLEAN and metric != "hamming":
        return r.uniform(size=(n, d)) > 0.5, r.uniform(size=(m, d)) > 0.5
    x, y = r.normal(size=(n, d)), r.normal(size=(m, d))
    if metric == "jensenshannon":
        x, y = np.abs(x), np.abs(y)
    return x, y


def _kwargs(metric, d, seed=1):
    r = rng(seed)
    if metric == "minkowski":
        return {"p": 3.0}
    if metric == "seuclidean":
        return {"V": r.uniform(0.5, 2.0, size=d)}
    if metric == "mahalanobis":
        a = r.normal(size=(d, d))
        return {"VI": a @ a.T + d * np.eye(d)}
    return {}


# the metric is static: one compilation per call instead of one per primitive
_cdist = jax.jit(jaxloss.cdist, static_argnums=2, static_argnames=("base", "centered"))
_pdist = jax.jit(jaxloss.pdist, static_argnums=1)
_pairwise_distance = jax.jit(jaxloss.pairwise_distance, static_argnums=2, static_argnames="centered")


def _jit_cdist(variant, metric, **kw):
    return variant(lambda a, b: jaxloss.cdist(a, b, metric, **kw))


# --------------------------------------------------------------------------- scipy


# jit for every metric in the fast loop; eager (op by op, a compilation per operation and
# shape) for a few, every metric in the whole suite.
EAGER_FAST = ("euclidean", "cosine", "correlation", "jensenshannon", "hamming", "jaccard")
CDIST_VARIANTS = [(m, "jit") for m in ALL] + [
    (m, "eager") if m in EAGER_FAST else pytest.param(m, "eager", marks=pytest.mark.slow) for m in ALL
]


@pytest.mark.parametrize("metric, variant", CDIST_VARIANTS, indirect=["variant"])
def test_cdist_and_pdist_match_scipy(metric, variant):
    n, m, d = 5, 4, 3
    x, y = _data(metric, n, m, d)
    kw = _kwargs(metric, d)
    got = _jit_cdist(variant, metric, **kw)(x, y)
    np.testing.assert_allclose(got, ssd.cdist(x, y, metric, **kw), rtol=1e-10, atol=1e-12)
    got_p = variant(lambda a: jaxloss.pdist(a, metric, **kw))(x)
    np.testing.assert_allclose(got_p, ssd.pdist(x, metric, **kw), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("metric", ALL)
def test_gram_sized_inputs_match_scipy(metric):
    n, m, d = 70, 60, 64  # n m d > DIRECT_ELEMENTS: the matrix-product path
    x, y = _data(metric, n, m, d)
    kw = _kwargs(metric, d)
    got = jax.jit(lambda a, b: jaxloss.cdist(a, b, metric, **kw))(x, y)
    np.testing.assert_allclose(got, ssd.cdist(x, y, metric, **kw), rtol=1e-10, atol=1e-12)
    got_p = jax.jit(lambda a: jaxloss.pdist(a, metric, **kw))(x)
    np.testing.assert_allclose(got_p, ssd.pdist(x, metric, **kw), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("metric", WEIGHTED + BOOLEAN)
def test_weighted_metrics_match_scipy(metric):
    x, y = _data(metric, 6, 5, 7, seed=3)
    w = rng(4).uniform(0.0, 2.0, size=7)
    w[2] = 0.0
    kw = {"p": 1.5} if metric == "minkowski" else {}
    np.testing.assert_allclose(
        jaxloss.cdist(x, y, metric, w=w, **kw),
        ssd.cdist(x, y, metric, w=w, **kw),
        rtol=1e-10,
        atol=1e-12,
    )


@pytest.mark.parametrize("p", [0.5, 1.0, 2.0, 3.0, math.inf])
def test_minkowski_orders_match_scipy(p):
    x, y = _data("minkowski", 6, 5, 4)
    np.testing.assert_allclose(
        jaxloss.cdist(x, y, "minkowski", p=p), ssd.cdist(x, y, "minkowski", p=p), rtol=1e-10
    )


def test_jensenshannon_base_matches_scipy():
    x, y = _data("jensenshannon", 4, 3, 5)
    want = [[ssd.jensenshannon(a, b, base=2.0) for b in y] for a in x]
    np.testing.assert_allclose(_cdist(x, y, "jensenshannon", base=2.0), want, rtol=1e-10)


def test_default_variances_and_inverse_covariance_match_scipy():
    x, y = _data("x", 9, 8, 3)
    for metric in ("seuclidean", "mahalanobis"):
        np.testing.assert_allclose(_cdist(x, y, metric), ssd.cdist(x, y, metric), rtol=1e-9)
        np.testing.assert_allclose(_pdist(x, metric), ssd.pdist(x, metric), rtol=1e-9)


def test_non_binary_hamming_and_jaccard_match_scipy():
    r = rng(5)
    x, y = (
        r.integers(0, 3, size=(30, 40)).astype(float),
        r.integers(0, 3, size=(25, 40)).astype(float),
    )
    for metric in ("hamming", "jaccard"):
        np.testing.assert_allclose(_cdist(x, y, metric), ssd.cdist(x, y, metric), rtol=1e-12)
    # torch.cdist(p=0) counts unequal coordinates of any values
    np.testing.assert_allclose(jt.cdist(x, y, p=0), torch.cdist(torch.tensor(x), torch.tensor(y), p=0))


@pytest.mark.slow
def test_boolean_metrics_accept_bool_and_01():
    x, y = _data("dice", 8, 7, 9)
    for metric in BOOLEAN:
        np.testing.assert_allclose(
            _cdist(x, y, metric),
            _cdist(x.astype(float), y.astype(int), metric),
            rtol=1e-12,
        )


def test_tiled_metrics_match_scipy_and_bound_memory(monkeypatch):
    monkeypatch.setattr(_distances, "BLOCK_ELEMENTS", 64)
    x, y = _data("cityblock", 13, 11, 5)
    for metric in ("cityblock", "canberra", "chebyshev", "braycurtis"):
        np.testing.assert_allclose(jaxloss.cdist(x, y, metric), ssd.cdist(x, y, metric), rtol=1e-12)
    xi, yi = rng(2).integers(0, 3, size=(13, 5)), rng(3).integers(0, 3, size=(11, 5))
    np.testing.assert_allclose(jaxloss.cdist(xi, yi, "hamming"), ssd.cdist(xi, yi, "hamming"))
    g = jax.grad(lambda a: jnp.sum(jaxloss.cdist(a, y, "cityblock")))(x)
    np.testing.assert_allclose(g, np.sign(x[:, None, :] - y[None]).sum(1), rtol=1e-12)
    # tiles hold at most 64 elements: no (13, 11, 5) intermediate in the compiled function
    hlo = jax.jit(lambda a: jaxloss.cdist(a, y, "cityblock")).lower(x).as_text()
    assert "13x11x5" not in hlo


def test_callable_metric_matches_scipy():
    x, y = _data("x", 5, 4, 3)

    def f(u, v, scale=1.0):
        return scale * jnp.sum((u - v) ** 4) ** 0.25

    got = jaxloss.cdist(x, y, f, scale=2.0)
    want = ssd.cdist(x, y, lambda u, v: 2.0 * np.sum((u - v) ** 4) ** 0.25)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_allclose(jaxloss.pdist(x, f), ssd.pdist(x, lambda u, v: np.sum((u - v) ** 4) ** 0.25))


def test_correlation_uncentered_is_cosine_and_single_pair_functions():
    x, y = _data("x", 4, 3, 5)
    np.testing.assert_allclose(
        _cdist(x, y, "correlation", centered=False), ssd.cdist(x, y, "cosine"), rtol=1e-12
    )
    np.testing.assert_allclose(
        _pairwise_distance(x[0], y[0], "correlation", centered=False),
        ssd.correlation(x[0], y[0], centered=False),
        rtol=1e-12,
    )


def test_squareform_round_trip_matches_scipy():
    v = rng(0).uniform(size=10)
    np.testing.assert_allclose(jaxloss.squareform(v), ssd.squareform(v))
    np.testing.assert_allclose(jaxloss.squareform(ssd.squareform(v)), v)
    np.testing.assert_allclose(jaxloss.squareform(jnp.zeros((0,))), ssd.squareform(np.zeros(0)))
    assert jaxloss.squareform(jnp.asarray(ssd.squareform(v)), force="tovector").shape == (10,)
    traced = jax.jit(lambda a: jaxloss.squareform(a))(jnp.asarray(ssd.squareform(v)))
    np.testing.assert_allclose(traced, v)


# --------------------------------------------------------------------------- cdist == pairwise


@pytest.mark.parametrize("metric", ALL + ["dot"])
def test_cdist_entry_equals_pairwise_distance(metric):
    n, m, d = 9, 7, 6
    x, y = _data(metric, n, m, d, seed=7)
    kw = _kwargs(metric, d)
    full = jax.jit(lambda a, b: jaxloss.cdist(a, b, metric, **kw))(x, y)
    rowmatched = jax.jit(lambda a, b: jaxloss.pairwise_distance(a, b, metric, **kw))(
        x[:, None, :], y[None, :, :]
    )
    np.testing.assert_allclose(full, rowmatched, rtol=1e-9, atol=1e-12)
    i, j = 2, 5
    np.testing.assert_allclose(full[i, j], jaxloss.pairwise_distance(x[i], y[j], metric, **kw), rtol=1e-9)


def test_pairwise_distance_axis_and_broadcasting():
    x, y = _data("x", 4, 4, 3)
    np.testing.assert_allclose(
        jaxloss.pairwise_distance(x.T, y.T, "cityblock", axis=0),
        jaxloss.pairwise_distance(x, y, "cityblock"),
    )
    np.testing.assert_allclose(jaxloss.pairwise_distance(x, y[0]), [ssd.euclidean(a, y[0]) for a in x])


# --------------------------------------------------------------------------- batches, dtypes


def test_batched_cdist_broadcasts_like_torch():
    r = rng(1)
    x, y = r.normal(size=(2, 3, 5, 4)), r.normal(size=(3, 6, 4))
    got = jaxloss.cdist(x, y)
    assert got.shape == (2, 3, 5, 6)
    for b in range(2):
        for c in range(3):
            np.testing.assert_allclose(got[b, c], ssd.cdist(x[b, c], y[c]), rtol=1e-12)
    np.testing.assert_allclose(
        jaxloss.cdist(x, y, "cosine")[1, 2],
        ssd.cdist(x[1, 2], y[2], "cosine"),
        rtol=1e-10,
        atol=1e-12,
    )


def test_dtypes():
    x = jnp.asarray(rng(0).normal(size=(4, 3)), jnp.float16)

    def dtype(x, y, *metric):  # the output dtype, without computing it
        return jax.eval_shape(lambda x, y: jaxloss.cdist(x, y, *metric), x, y).dtype

    assert dtype(x, x) == jnp.float16
    x32 = x.astype(jnp.float32)
    assert dtype(x32, x32, "cosine") == jnp.float32
    assert dtype(jnp.ones((2, 3), int), jnp.ones((2, 3), int)) == jnp.float64
    assert dtype(jnp.ones((2, 3), bool), jnp.ones((2, 3), bool), "jaccard") == jnp.float64


def test_dot_similarity():
    x, y = _data("x", 5, 4, 3)
    np.testing.assert_allclose(jaxloss.cdist(x, y, "dot"), x @ y.T, rtol=1e-12)


# --------------------------------------------------------------------------- accuracy


def test_gram_path_is_far_more_accurate_than_torch_mm():
    r = rng(0)
    x = (r.normal(size=(300, 256)) * 10 + 50).astype(np.float32)
    y = np.concatenate([x[:100][::-1], (r.normal(size=(200, 256)) * 10 + 50).astype(np.float32)])
    exact = ssd.cdist(x.astype(np.float64), y.astype(np.float64))
    ours = np.asarray(jax.jit(jaxloss.cdist)(jnp.asarray(x), jnp.asarray(y)), np.float64)
    theirs = torch.cdist(torch.from_numpy(x), torch.from_numpy(y), compute_mode="use_mm_for_euclid_dist")
    err_ours = np.abs(ours - exact).max()
    err_torch = np.abs(theirs.double().numpy() - exact).max()
    assert err_ours < err_torch / 10, (err_ours, err_torch)
    assert err_ours < 1e-2
    # duplicated points (y[:100] are rows of x) are at distance exactly 0
    assert np.all(ours[np.arange(99, -1, -1), np.arange(100)] == 0)
    for same in (
        jax.jit(jaxloss.cdist)(jnp.asarray(x)),
        jax.jit(jaxloss.cdist)(jnp.asarray(x), jnp.asarray(x)),
    ):
        assert np.all(np.diag(np.asarray(same)) == 0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "metric",
    sweep(
        [
            "euclidean",
            "cosine",
            "correlation",
            "mahalanobis",
            "jaccard",
            "sqeuclidean",
            "seuclidean",
            "hamming",
            "cityblock",
            "jensenshannon",
        ],
        5,
    ),
)
def test_exact_zero_diagonal(metric):
    x, _ = _data(metric, 80, 1, 60, seed=3)
    kw = _kwargs(metric, 60)
    # one set (y omitted): the core's same-set path; two equal sets: the row-matched diagonal
    for out in (jaxloss.cdist(x, None, metric, **kw), jaxloss.cdist(x, np.array(x, copy=True), metric, **kw)):
        assert np.all(np.diag(np.asarray(out)) == 0), metric


# ---------------------------------------------------------------- zero vectors, gradients


GRADIENT_FAST = [
    "euclidean",
    "cosine",
    "correlation",
    "jensenshannon",
    "braycurtis",
    "canberra",
    "dice",
    "yule",
]


@pytest.mark.parametrize(
    "metric", sweep(GRADIENT_FAST + [m for m in ALL + ["dot"] if m not in GRADIENT_FAST], 8)
)
def test_finite_gradients_at_coincident_points_and_zero_vectors(metric):
    x, y = _data(metric, 4, 3, 5, seed=9)
    x, y = np.asarray(x, float), np.asarray(y, float)
    x[0] = 0.0
    y[0] = 0.0
    x[1] = y[1]
    kw = _kwargs(metric, 5)
    for f in (
        lambda a, b: jaxloss.cdist(a, b, metric, **kw),
        lambda a, b: jaxloss.pairwise_distance(a[:3], b, metric, **kw),
    ):
        val = jax.jit(f)(x, y)
        assert np.all(np.isfinite(val)), metric
        grads = jax.jit(jax.grad(lambda a, b, f=f: jnp.sum(f(a, b)), argnums=(0, 1)))(x, y)
        assert all(np.all(np.isfinite(g)) for g in grads), metric


@pytest.mark.slow
def test_zero_vector_conventions():
    z, v = np.zeros(3), np.array([1.0, 2.0, 3.0])
    assert float(_pairwise_distance(z, v, "cosine")) == 1.0
    assert float(_pairwise_distance(z, z, "cosine")) == 0.0
    assert float(_pairwise_distance(np.ones(3), v, "correlation")) == 1.0
    assert float(jaxloss.cosine_similarity(z, v)) == 0.0
    x = np.array([z, v, 2 * v])
    # scikit-learn: a zero vector has similarity 0 with everything else
    np.testing.assert_allclose(_cdist(x, x[1:], "cosine"), cosine_distances(x, x[1:]), atol=1e-12)
    for metric in ("braycurtis", "dice", "sokalsneath", "jensenshannon"):
        assert float(_pairwise_distance(z, z, metric)) == 0.0


def test_euclidean_gradient_matches_torch_at_coincident_points():
    r = rng(2)
    x = r.normal(size=(40, 70))
    y = np.concatenate([x[:5], r.normal(size=(50, 70))])
    assert_matches_torch(
        jax.jit(lambda a, b: jaxloss.cdist(a, b)),
        lambda a, b: torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist"),
        x,
        y,
    )


# --------------------------------------------------------------------------- PyTorch face


@pytest.mark.parametrize("p", sweep([0.0, 2.0, math.inf, 1.5, 0.5, 1.0, 3.0], 4))
def test_torch_cdist_every_p_batched(p):
    r = rng(3)
    x, y = r.normal(size=(2, 5, 4)), r.normal(size=(2, 6, 4))
    y[0, 0] = x[0, 1]
    assert_matches_torch(
        jax.jit(lambda a, b: jt.cdist(a, b, p=p)),
        lambda a, b: torch.cdist(a, b, p=p, compute_mode="donot_use_mm_for_euclid_dist"),
        x,
        y,
    )


def test_torch_cdist_large_uses_gram_and_matches():
    r = rng(4)
    x, y = r.normal(size=(2, 30, 130)), r.normal(size=(1, 35, 130))
    assert_matches_torch(jax.jit(lambda a, b: jt.cdist(a, b)), lambda a, b: torch.cdist(a, b), x, y)


@pytest.mark.parametrize("p", sweep([0.0, 2.5, math.inf, 1.0, 2.0], 3))
def test_torch_pdist(p):
    x = rng(5).normal(size=(6, 3))
    assert_matches_torch(jax.jit(lambda a: jt.pdist(a, p=p)), lambda a: torch.pdist(a, p=p), x)


@pytest.mark.parametrize("p", sweep([2.0, 0.0, math.inf, -1.0, 1.0, -math.inf, 0.5, 3.0], 4))
@pytest.mark.parametrize("keepdim", [False, True])
def test_torch_pairwise_distance(p, keepdim):
    r = rng(6)
    x, y = r.normal(size=(4, 5)), r.normal(size=(4, 5))
    y[1] = x[1]
    assert_matches_torch(
        jax.jit(lambda a, b: jt.pairwise_distance(a, b, p=p, keepdim=keepdim)),
        lambda a, b: torch.nn.functional.pairwise_distance(a, b, p=p, keepdim=keepdim),
        x,
        y,
    )
    assert_matches_torch(
        lambda a, b: jt.pairwise_distance(a, b, eps=0.1),
        lambda a, b: torch.nn.functional.pairwise_distance(a, b, eps=0.1),
        x[0],
        y,
    )


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_torch_cosine_similarity_eps_semantics(dim):
    r = rng(7)
    x, y = r.normal(size=(4, 3)), r.normal(size=(4, 3))
    x[0] = [1e-9, 0.0, 0.0]  # norm below eps: clamped
    x[1] = 0.0  # zero vector
    y[2] = [3e-9, -1e-9, 2e-9]
    assert_matches_torch(
        jax.jit(lambda a, b: jt.cosine_similarity(a, b, dim=dim)),
        lambda a, b: torch.nn.functional.cosine_similarity(a, b, dim=dim),
        x,
        y,
        dtypes=("float64",),
    )
    x2 = r.normal(size=(4, 3))
    assert_matches_torch(
        jax.jit(lambda a, b: jt.cosine_similarity(a, b, dim=dim, eps=1e-3)),
        lambda a, b: torch.nn.functional.cosine_similarity(a, b, dim=dim, eps=1e-3),
        x2,
        y,
    )
    assert_matches_torch(
        lambda a, b: jt.cosine_similarity(a, b),
        lambda a, b: torch.nn.functional.cosine_similarity(a, b),
        x2[0:1],
        y,
    )


@pytest.mark.parametrize("average", ["global", "samplewise"])
@pytest.mark.parametrize("kind", ["int", "prob", "logit"])
@pytest.mark.parametrize("ignore_index", [None, -1])
def test_binary_hamming_distance_matches_torchmetrics(average, kind, ignore_index):
    r = rng(8)
    target = r.integers(0, 2, size=(4, 3, 5))
    if ignore_index is not None:
        target[0, 0, :3] = ignore_index
        target[1] = ignore_index  # a sample with nothing to count
    preds = {
        "int": r.integers(0, 2, size=(4, 3, 5)),
        "prob": r.uniform(size=(4, 3, 5)),
        "logit": r.normal(size=(4, 3, 5)) * 3,
    }[kind]
    want = tmf.binary_hamming_distance(
        torch.from_numpy(preds),
        torch.from_numpy(target),
        multidim_average=average,
        ignore_index=ignore_index,
        threshold=0.4,
    )
    got = jt.binary_hamming_distance(
        preds, target, multidim_average=average, ignore_index=ignore_index, threshold=0.4
    )
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)


# --------------------------------------------------------------------------- optax, scikit-learn


def _jit_call(fn, *args, **options):
    """``fn(*args, **options)`` compiled as one program (the options are constants)."""
    return jax.jit(lambda *a: fn(*a, **options))(*args)


def test_cosine_similarity_matches_optax():
    r = rng(9)
    a, b = r.normal(size=(4, 6)), r.normal(size=(4, 6))
    mask = r.uniform(size=(4, 6)) > 0.3
    for name, options in (
        ("cosine_similarity", {}),
        ("cosine_distance", {"epsilon": 0.5, "axis": 0}),
        ("cosine_similarity", {"where": mask}),
    ):
        np.testing.assert_allclose(
            _jit_call(getattr(jaxloss, name), a, b, **options),
            _jit_call(getattr(optax, name), a, b, **options),
            rtol=1e-12,
            err_msg=name,
        )
    z = np.zeros((1, 6))
    assert np.isnan(_jit_call(optax.cosine_similarity, z, b[:1])).all()
    g = jax.jit(jax.grad(lambda u: jnp.sum(jaxloss.cosine_distance(u, b[:1]))))(z)
    assert np.all(np.isfinite(g))


def test_sklearn_distance_metrics():
    a, b = np.array([[0, 0, 2]]), np.array([[0, 0, 1], [0, 1, 0]])
    np.testing.assert_allclose(
        jaxloss.cdist(a, b, "hamming"), DistanceMetric.get_metric("hamming").pairwise(a, b)
    )
    x, y = _data("jensenshannon", 6, 5, 4)  # non-negative: sklearn's braycurtis uses |u| + |v|
    for name, metric in [
        ("manhattan", "manhattan"),
        ("chebyshev", "chebyshev"),
        ("euclidean", "euclidean"),
        ("canberra", "canberra"),
        ("braycurtis", "braycurtis"),
    ]:
        np.testing.assert_allclose(
            jaxloss.cdist(x, y, metric), DistanceMetric.get_metric(name).pairwise(x, y), rtol=1e-12
        )


# --------------------------------------------------------------------------- worked examples: broadcast pdist, torch.cdist(p=0), Hamming


def test_seed_examples():
    a = jnp.array([[1, 1, 1], [2, 2, 2]])
    b = jnp.array([[2, 2, 2], [1, 1, 1], [2, 2, 2], [1, 1, 1], [2, 2, 2]])
    seed = (a[:, None, :] - b[None, :, :]).astype(float)
    seed = np.sqrt((np.abs(np.asarray(seed)) ** 2).sum(-1))
    np.testing.assert_array_equal(jaxloss.cdist(a, b), seed)
    np.testing.assert_array_equal(
        jt.cdist(a.astype(jnp.float32), b.astype(jnp.float32)), seed.astype(np.float32)
    )
    bb = jnp.array([[0, 0, 1], [0, 1, 0]])
    cc = jnp.array([[1, 0, 1], [0, 1, 0]])
    got = jt.binary_hamming_distance(bb, cc, multidim_average="samplewise")
    np.testing.assert_allclose(got, [1 / 3, 0.0], rtol=1e-6)
    np.testing.assert_allclose(
        got,
        tmf.binary_hamming_distance(
            torch.tensor(np.asarray(bb)),
            torch.tensor(np.asarray(cc)),
            multidim_average="samplewise",
        ).numpy(),
        rtol=1e-6,
    )
    np.testing.assert_allclose(jaxloss.pairwise_distance(bb, cc, "hamming"), [1 / 3, 0.0])
    q, db = np.array([[0, 0, 2]]), np.array([[0, 0, 1], [0, 1, 0]])
    np.testing.assert_allclose(jaxloss.cdist(q, db, "hamming"), [[1 / 3, 2 / 3]])
    np.testing.assert_array_equal(jt.cdist(q.astype(np.float32), db.astype(np.float32), p=0), [[1.0, 2.0]])


# --------------------------------------------------------------------------- axioms

_points = hnp.arrays(np.float64, (3, 4), elements=st.floats(-10, 10, allow_nan=False, width=32))
_nonneg = hnp.arrays(np.float64, (3, 4), elements=st.floats(0, 10, allow_nan=False, width=32))
_bits = hnp.arrays(np.bool_, (3, 6))
TRUE_METRICS = [
    "euclidean",
    "cityblock",
    "chebyshev",
    "minkowski",
    "canberra",
    "seuclidean",
    "mahalanobis",
]


def _check_axioms(x, metric, triangle, tol=1e-9, **kw):
    """Axioms of cdist(x, copy of x), and the same-set path cdist(x): exactly symmetric, zero diagonal."""
    same = np.asarray(jaxloss.cdist(x, None, metric, **kw))
    np.testing.assert_array_equal(same, same.T)
    assert np.all(np.diag(same) == 0)
    d = np.asarray(jaxloss.cdist(x, np.array(x, copy=True), metric, **kw))
    np.testing.assert_allclose(d, same, rtol=1e-12, atol=1e-12)
    assert np.all(d >= 0)
    np.testing.assert_allclose(d, d.T, atol=1e-12)
    assert np.all(np.diag(d) == 0)
    if triangle:
        for i in range(3):
            for j in range(3):
                for k in range(3):
                    assert d[i, j] <= d[i, k] + d[k, j] + tol * (1 + d[i, j])


@pytest.mark.slow
@given(_points)
def test_axioms_numeric_metrics(x):
    for metric in TRUE_METRICS + ["sqeuclidean", "cosine", "correlation", "braycurtis"]:
        kw = _kwargs(metric, 4)
        _check_axioms(x, metric, triangle=metric in TRUE_METRICS, **kw)


@pytest.mark.slow
@given(_nonneg)
def test_axioms_jensenshannon(x):
    _check_axioms(x, "jensenshannon", triangle=True)


@pytest.mark.slow
@given(_bits)
def test_axioms_boolean_metrics(x):
    for metric in ["hamming", "jaccard", "dice", "rogerstanimoto", "sokalsneath", "yule"]:
        _check_axioms(x, metric, triangle=metric in ("hamming", "jaccard", "rogerstanimoto"))


# --------------------------------------------------------------------------- errors


def test_errors():
    x, y = np.ones((3, 4)), np.ones((2, 4))
    with pytest.raises(ValueError, match="Did you mean 'euclidean'"):
        jaxloss.cdist(x, y, "euclidian")
    with pytest.raises(ValueError, match=r"x.shape\[-1\] == y.shape\[-1\]"):
        jaxloss.cdist(x, np.ones((2, 5)))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        jaxloss.cdist(np.ones(4), y)
    with pytest.raises(ValueError, match="`p` must lie in"):
        jaxloss.cdist(x, y, "minkowski", p=0)
    with pytest.raises(ValueError, match="`p` must lie in"):
        jaxloss.cdist(x, y, "minkowski", p=-1.0)
    with pytest.raises(ValueError, match=r"`VI` .* shape \(4, 4\)"):
        jaxloss.cdist(x, y, "mahalanobis", VI=np.eye(3))
    with pytest.raises(ValueError, match=r"`V` .* shape \(4,\)"):
        jaxloss.cdist(x, y, "seuclidean", V=np.ones(3))
    with pytest.raises(ValueError, match="`w` must have shape"):
        jaxloss.cdist(x, y, "cityblock", w=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        jaxloss.cdist(x, y, "cityblock", w=-np.ones(4))
    with pytest.raises(TypeError, match="takes no parameter 'p'"):
        jaxloss.cdist(x, y, "cosine", p=3)
    with pytest.raises(ValueError, match="singular"):
        jaxloss.cdist(x[:2], y, "mahalanobis")
    with pytest.raises(ValueError, match="do not broadcast"):
        jaxloss.cdist(np.ones((2, 3, 4)), np.ones((3, 2, 4)))
    with pytest.raises(TypeError, match="metric name or a callable"):
        jaxloss.cdist(x, y, 3)
    with pytest.raises(ValueError, match="unknown `metric`"):
        jaxloss.pdist(x, "nope")
    with pytest.raises(ValueError, match="n \\(n - 1\\) / 2"):
        jaxloss.squareform(np.ones(4))
    with pytest.raises(ValueError, match="symmetric"):
        jaxloss.squareform(np.arange(4.0).reshape(2, 2))
    with pytest.raises(ValueError, match="non-negative"):
        jt.cdist(x, y, p=-1)
    with pytest.raises(ValueError, match="compute_mode"):
        jt.cdist(x, y, compute_mode="fast")
    with pytest.raises(ValueError, match="2 dimensions"):
        jt.pdist(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="multidim_average"):
        jt.binary_hamming_distance(x, y, multidim_average="sample")
    with pytest.raises(ValueError, match="same shape"):
        jt.binary_hamming_distance(x, y)


def test_jit_with_static_metric():
    x, y = _data("x", 5, 4, 3)
    f = jax.jit(functools.partial(jaxloss.cdist, metric="cityblock"))
    np.testing.assert_allclose(f(x, y), ssd.cdist(x, y, "cityblock"))
    g = jax.jit(jaxloss.cdist, static_argnames="metric")
    np.testing.assert_allclose(g(x, y, metric="canberra"), ssd.cdist(x, y, "canberra"))


@pytest.mark.slow
@pytest.mark.parametrize("metric", sweep(["euclidean", "jaccard", "hamming", "cosine", "cityblock"], 2))
def test_empty_inputs(metric):
    assert jaxloss.cdist(np.ones((0, 3)), np.ones((2, 3)), metric).shape == (0, 2)
    assert jaxloss.cdist(np.ones((2, 3, 3)), np.ones((2, 0, 3)), metric).shape == (2, 3, 0)
    assert jaxloss.pdist(np.ones((1, 3)), metric).shape == (0,)
    np.testing.assert_array_equal(jaxloss.cdist(np.ones((2, 0)), np.ones((3, 0)), metric), 0)


@pytest.mark.slow
@pytest.mark.parametrize("metric", sweep(["euclidean", "cosine", "correlation", "sqeuclidean", "dot"], 3))
def test_gram_path_self_distances_are_exactly_symmetric(metric):
    x = rng(11).normal(size=(90, 70)) * 10 + 50
    for out in (jaxloss.cdist(x, None, metric), jax.jit(lambda a: jaxloss.cdist(a, None, metric))(x)):
        out = np.asarray(out)
        np.testing.assert_array_equal(out, out.T)
    # two sets (even the same array twice) are not assumed equal: symmetric up to rounding
    out = np.asarray(jax.jit(lambda a: jaxloss.cdist(a, a, metric))(x))
    np.testing.assert_allclose(out, out.T, rtol=1e-12, atol=1e-12)
    if metric != "dot":
        full = np.asarray(jaxloss.cdist(x, None, metric))
        np.testing.assert_allclose(jaxloss.squareform(full), jaxloss.pdist(x, metric), rtol=1e-12)


# --------------------------------------------------------------------------- the metric table


def test_metric_table_drives_names_parameters_and_docs():
    info = _distances.METRIC_INFO
    assert _distances.METRICS == tuple(sorted(info))
    assert set(NUMERIC + BOOLEAN + ["dot"]) == set(info)
    assert {r.kind for r in info.values()} == {"gram", "counts", "rowwise"}
    for name, record in info.items():
        assert record.name == name
        for alias in record.aliases:  # every alias resolves, in any case
            assert _distances._resolve_metric(alias.upper(), "cdist") is record
        if record.params:  # a parameter the record does not list is refused
            with pytest.raises(TypeError, match="takes no parameter 'nope'"):
                jaxloss.cdist(np.ones((2, 3)), None, name, nope=1)
    # cdist's docstring shows the table rendered from the records
    assert textwrap.indent(_distances.metric_table(), "    ") in jaxloss.cdist.__doc__
    # scipy's aliases are all accepted
    for alias, name in {
        "cos": "cosine",
        "cb": "cityblock",
        "sqe": "sqeuclidean",
        "js": "jensenshannon",
    }.items():
        assert _distances.ALIASES[alias] == name


# --------------------------------------------------------------------------- scipy's own test data


def test_mahalanobis_one_feature_matches_scipy():
    # scipy's test_cdist_mahalanobis: one-feature observations, VI from a 1 x 1 covariance
    x1, x2 = np.array([[2.0], [3.0]]), np.array([[2.0], [5.0]])
    expected = [[0.0, np.sqrt(4.5)], [np.sqrt(0.5), np.sqrt(2)]]
    np.testing.assert_allclose(ssd.cdist(x1, x2, "mahalanobis"), expected)
    np.testing.assert_allclose(jaxloss.cdist(x1, x2, "mahalanobis"), expected, rtol=1e-12)
    np.testing.assert_allclose(
        jaxloss.pairwise_distance(x1, x2, "mahalanobis"),
        np.diag(ssd.cdist(x1, x2, "mahalanobis")),
        rtol=1e-12,
    )
    x = np.array([[2.0], [3.0], [5.0]])
    np.testing.assert_allclose(jaxloss.pdist(x, "mahalanobis"), ssd.pdist(x, "mahalanobis"), rtol=1e-12)
    # scipy's two-feature case and its "too few observations" error
    x1, x2 = np.array([[0.0, 0.0], [-1.0, 0.0]]), np.array([[0.0, 2.0], [1.0, 0.0], [0.0, -2.0]])
    rt2 = np.sqrt(2)
    np.testing.assert_allclose(jaxloss.cdist(x1, x2, "mahalanobis"), [[rt2, rt2, rt2], [2, 2 * rt2, 2]])
    with pytest.raises(ValueError, match="pass `VI`"):
        jaxloss.cdist([[0.0, 1.0]], [[2.0, 3.0]], "mahalanobis")


def _scipy_data(name):
    return np.loadtxt(os.path.join(os.path.dirname(ssd.__file__), "tests", "data", name))


@pytest.mark.slow
def test_correlation_of_identical_rows_is_exactly_zero_like_scipys_iris():
    iris = _scipy_data("iris.txt")  # has duplicate rows
    expected = _scipy_data("pdist-correlation-ml-iris.txt")
    out = np.asarray(jaxloss.pdist(iris, "correlation"))
    np.testing.assert_allclose(out, expected, rtol=1e-7, atol=1e-14)
    assert np.all(out[expected == 0] == 0) and np.any(expected == 0)
    for metric in ("correlation", "cosine"):
        big = np.concatenate([iris] * 20, axis=1)  # large enough for the Gram path
        dup = np.asarray(jaxloss.pdist(np.concatenate([big, big[:5]]), metric))
        full = jaxloss.squareform(dup)
        assert all(float(full[i, 150 + i]) == 0.0 for i in range(5)), metric
    assert float(jaxloss.pdist(np.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0]]), "correlation")[0]) == 0.0


def test_docs_metric_kinds_match_the_table():
    """docs/api/distances.md lists each metric under its record's kind."""
    path = os.path.join(os.path.dirname(__file__), "..", "docs", "api", "distances.md")
    kinds = {"Gram": "gram", "boolean counts": "counts", "row-wise": "rowwise"}
    listed = {}
    with open(path) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 3 and cells[0] in kinds:
                for name in cells[1].split(","):
                    name = name.split("(")[0].strip()
                    if name in _distances.METRIC_INFO:
                        listed.setdefault(name, kinds[cells[0]])  # first listing is the record's kind
    assert {n: r.kind for n, r in _distances.METRIC_INFO.items()} == listed
