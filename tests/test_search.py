"""Exact kNN (blocked and sharded) against scipy brute force; filtered and range search;
peak memory in a subprocess. The retrieval and ranking metrics are in test_retrieval.py."""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.spatial.distance as ssd
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss
from tests.helpers import rng, run_python, sweep

METRICS = ("euclidean", "sqeuclidean", "cosine", "cityblock", "hamming", "dot")
M = 53  # not a multiple of the block sizes below
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dataset(metric, m=M, d=6, seed=0):
    """Data with many exact ties: small integers (0/1 for hamming); for cosine, duplicated
    random directions (parallel non-identical vectors would tie only in exact arithmetic)."""
    r = rng(seed)
    if metric == "hamming":
        return r.integers(0, 2, (m, d + 10))
    if metric == "cosine":
        pool = r.normal(size=(12, d))
        return pool[r.integers(0, 12, m)]
    return r.integers(-2, 3, (m, d))


def brute_force(q, x, k, metric):
    """scipy cdist (or -q.x for "dot") and a stable argsort: ties go to the lowest index."""
    q = np.asarray(q, np.float64)
    x = np.asarray(x, np.float64)
    if metric == "dot":
        dist = -(q @ x.T)
    elif metric == "hamming":
        dist = ssd.cdist(q != 0, x != 0, "hamming")
    else:
        dist = ssd.cdist(q, x, metric)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(dist, order, axis=1)
    return (-values if metric == "dot" else values), order


def assert_knn_equal(got, expected, rtol=1e-5, atol=1e-5):
    (d, i), (de, ie) = got, expected
    assert i.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(i), ie)
    np.testing.assert_allclose(np.asarray(d, np.float64), de, rtol=rtol, atol=atol)


CASES = [  # (k, database_block_size, block_size)
    (5, 8, None),
    (1, None, None),
    (M, 7, None),
    (5, 1, 4),
]
# The fast loop: every metric with several blocks, every case with euclidean (the GEMM scan)
# and cityblock (the lax.top_k scan); the whole suite crosses them all.
KNN_FLOAT32 = [
    (metric, *case)
    if case == CASES[0] or metric in ("euclidean", "cityblock")
    else pytest.param(metric, *case, marks=pytest.mark.slow)
    for metric in METRICS
    for case in CASES
]


@pytest.mark.parametrize("metric, k, database_block_size, block_size", KNN_FLOAT32)
def test_knn_matches_brute_force_float32(metric, k, database_block_size, block_size):
    # knn is jitted internally; jit/eager variants are exercised by the float64 test below.
    x = dataset(metric).astype(np.float32)
    q = x[:17]
    d, i = jaxloss.knn(q, x, k, metric=metric, block_size=block_size, database_block_size=database_block_size)
    assert d.shape == i.shape == (17, k)
    assert d.dtype == (jnp.float64 if metric == "hamming" else jnp.float32)
    assert_knn_equal((d, i), brute_force(q, x, k, metric))


@pytest.mark.slow
@pytest.mark.parametrize("metric", METRICS)
def test_knn_float64_queries_are_database(metric, variant):
    x = dataset(metric, seed=1).astype(np.float64)
    d, i = variant(jaxloss.knn, k=9, metric=metric, database_block_size=16)(jnp.asarray(x), jnp.asarray(x))
    assert d.dtype == jnp.float64
    assert_knn_equal((d, i), brute_force(x, x, 9, metric), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [bool, np.int32])
@pytest.mark.parametrize("packed", [False, True])
def test_knn_hamming_codes(dtype, packed, variant):
    bits = rng(4).integers(0, 2, (61, 70)).astype(dtype)
    n_bits = bits.shape[1]
    q, x = (jaxloss.pack_bits(bits[:11]), jaxloss.pack_bits(bits)) if packed else (bits[:11], bits)
    d, i = variant(jaxloss.knn, k=12, metric="hamming", database_block_size=16)(q, x)
    de, ie = brute_force(bits[:11], bits, 12, "hamming")
    np.testing.assert_array_equal(np.asarray(i), ie)
    if packed:  # counts of differing bits, as faiss IndexBinaryFlat
        assert d.dtype == jnp.int32
        np.testing.assert_array_equal(np.asarray(d), np.rint(de * n_bits))
    else:
        np.testing.assert_allclose(np.asarray(d), de, rtol=1e-12)


def packed_brute_force(qbits, xbits, k):
    """Counts of differing bits and the k nearest rows, ties to the lowest index (NumPy)."""
    counts = (qbits[:, None, :] != xbits[None, :, :]).sum(-1)
    idx = np.argsort(counts, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(counts, idx, axis=1), idx


@pytest.mark.slow
@pytest.mark.parametrize(
    ("k", "database_block_size", "block_size"),
    [
        (1, 256, None),  # runs of 16 rows, last block shifted back
        (5, 256, 7),  # runs of 8 rows, padded query blocks
        (10, None, None),  # automatic blocks: one block holding the whole database
        (64, 256, 16),  # too few rows per block for runs: every row is a candidate
        (65, 128, None),  # beyond the min-round selection: the lax.top_k scan
    ],
)
def test_knn_packed_exact_with_many_ties(k, database_block_size, block_size):
    """12-bit codes (many equal counts): counts and indices equal a stable brute force."""
    r = rng(11)
    xbits = r.integers(0, 2, (1003, 12)).astype(bool)
    xbits[500:520] = xbits[3]  # exact duplicates in another block
    qbits = np.concatenate([xbits[:20], r.integers(0, 2, (17, 12)).astype(bool)])
    d, i = jaxloss.knn(
        jaxloss.pack_bits(qbits),
        jaxloss.pack_bits(xbits),
        k,
        metric="hamming",
        block_size=block_size,
        database_block_size=database_block_size,
    )
    de, ie = packed_brute_force(qbits, xbits, k)
    assert d.dtype == jnp.int32 and i.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(d), de)
    np.testing.assert_array_equal(np.asarray(i), ie)


def test_knn_packed_matches_faiss_binary_flat():
    """256-bit random codes over several blocks: the same counts as faiss IndexBinaryFlat."""
    faiss = pytest.importorskip("faiss")
    r = rng(12)
    xbits = r.integers(0, 2, (5000, 256)).astype(bool)
    qbits = r.integers(0, 2, (300, 256)).astype(bool)
    d, i = jaxloss.knn(
        jaxloss.pack_bits(qbits), jaxloss.pack_bits(xbits), 10, metric="hamming", database_block_size=2048
    )
    index = faiss.IndexBinaryFlat(256)
    index.add(np.packbits(xbits, axis=1, bitorder="little"))
    fd, _ = index.search(np.packbits(qbits, axis=1, bitorder="little"), 10)
    np.testing.assert_array_equal(np.asarray(d), fd)
    de, ie = packed_brute_force(qbits, xbits, 10)
    np.testing.assert_array_equal(np.asarray(i), ie)


@pytest.mark.slow
def test_knn_packed_memory_does_not_grow_with_the_database():
    """The (queries x database) counts are never materialised: temporaries stay bounded."""

    def temp_bytes(m):
        q = jax.ShapeDtypeStruct((4096, 8), jnp.uint32)
        x = jax.ShapeDtypeStruct((m, 8), jnp.uint32)
        f = jax.jit(lambda a, b: jaxloss.knn(a, b, 10, metric="hamming"))
        return f.lower(q, x).compile().memory_analysis().temp_size_in_bytes

    small, large = temp_bytes(100_000), temp_bytes(2_000_000)
    assert large < 64 * 2**20, large  # 4,096 x 2,000,000 int32 counts would be 32 GB
    assert large <= small + 2**20, (small, large)


def test_knn_large_random_euclidean_matches_scipy():
    """Random floats, several blocks over queries and database, euclidean distances accurate."""
    r = rng(5)
    x = r.normal(size=(3001, 24)).astype(np.float32)
    q = r.normal(size=(130, 24)).astype(np.float32)
    got = jaxloss.knn(q, x, 10, block_size=64, database_block_size=512)
    assert_knn_equal(got, brute_force(q, x, 10, "euclidean"), rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_knn_self_distance_exact_zero():
    x = rng(6).normal(size=(200, 16)).astype(np.float32) * 100 + 1000
    d, i = jaxloss.knn(x, x, 1)
    np.testing.assert_array_equal(np.asarray(i[:, 0]), np.arange(200))
    np.testing.assert_array_equal(np.asarray(d[:, 0]), 0)


@pytest.mark.slow
def test_knn_cosine_zero_vector_has_distance_one():
    x = jnp.array([[0.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    d, i = jaxloss.knn(jnp.array([[0.0, 0.0], [1.0, 1.0]]), x, 3, metric="cosine")
    np.testing.assert_allclose(np.asarray(d[0]), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(np.asarray(i[0]), [0, 1, 2])
    np.testing.assert_allclose(np.asarray(d[1]), [1 - np.sqrt(0.5), 1.0, 1 + np.sqrt(0.5)], rtol=1e-6)


def test_top_k_is_stable():
    """The tie rule rests on lax.top_k keeping the lowest position first among equal values."""
    s = jnp.array([[1.0, 3.0, 3.0, 2.0, 3.0, 1.0, 3.0]])
    np.testing.assert_array_equal(np.asarray(jax.lax.top_k(s, 4)[1]), [[1, 2, 4, 6]])
    np.testing.assert_array_equal(np.asarray(jax.lax.top_k(jnp.zeros((2, 5000)), 6)[1][1]), np.arange(6))


@pytest.mark.slow
def test_knn_all_ties_lowest_index_first():
    x = jnp.ones((100, 3))
    d, i = jaxloss.knn(x[:2], x, 10, database_block_size=7)
    np.testing.assert_array_equal(np.asarray(i), np.tile(np.arange(10), (2, 1)))


def test_knn_under_outer_jit_with_static_k_and_metric():
    x = jnp.asarray(dataset("euclidean").astype(np.float32))
    f = jax.jit(jaxloss.knn, static_argnames=("k", "metric", "database_block_size"))
    got = f(x[:5], x, k=4, metric="cityblock", database_block_size=10)
    assert_knn_equal(got, brute_force(x[:5], x, 4, "cityblock"))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_knn_half_precision(dtype):
    x = dataset("euclidean").astype(np.float32)
    d, i = jaxloss.knn(jnp.asarray(x, dtype), jnp.asarray(x, dtype), 3)
    assert d.dtype == dtype
    de, ie = brute_force(x, x, 3, "euclidean")
    np.testing.assert_array_equal(np.asarray(i), ie)
    np.testing.assert_allclose(np.asarray(d, np.float64), de, rtol=1e-2)


def test_knn_empty_queries():
    d, i = jaxloss.knn(jnp.zeros((0, 3)), jnp.ones((4, 3)), 2)
    assert d.shape == i.shape == (0, 2)


@pytest.mark.slow
@settings(max_examples=12)
@given(
    m=st.integers(1, 40),
    q=st.integers(1, 9),
    data=st.data(),
    metric=st.sampled_from(METRICS),
)
def test_knn_property_matches_brute_force(m, q, data, metric):
    k = data.draw(st.integers(1, m))
    block = data.draw(st.integers(1, 50))
    x = dataset(metric, m=m, d=3, seed=m).astype(np.float32)
    queries = dataset(metric, m=q, d=3, seed=q + 100).astype(np.float32)
    got = jaxloss.knn(queries, x, k, metric=metric, database_block_size=block)
    assert_knn_equal(got, brute_force(queries, x, k, metric))


@pytest.mark.parametrize("metric, p", [("euclidean", 2.0), ("cityblock", 1.0)])
def test_knn_distance_gradients_match_torch(metric, p):
    """Distances are differentiable through the exact re-scoring; torch.cdist at fixed indices."""
    r = rng(7)
    x = r.normal(size=(40, 5))
    q = x[:7] + np.r_[0.0, 0.1 * np.ones(6)][:, None] * r.normal(size=(7, 5))  # q[0] == x[0]
    _, idx = jaxloss.knn(q, x, 4, metric=metric)

    def loss(q, x):
        return jnp.sum(jaxloss.knn(q, x, 4, metric=metric, database_block_size=16)[0] * jnp.arange(1, 5))

    gq, gx = jax.jit(jax.grad(loss, (0, 1)))(jnp.asarray(q), jnp.asarray(x))
    qt = torch.tensor(q, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    dt = torch.cdist(qt, xt, p=p, compute_mode="donot_use_mm_for_euclid_dist")
    (dt.gather(1, torch.tensor(np.asarray(idx)).long()) * torch.arange(1, 5)).sum().backward()
    np.testing.assert_allclose(np.asarray(gq), qt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine", "cityblock", "dot"])
def test_knn_gradients_finite_at_coincident_points(metric):
    x = jnp.concatenate([jnp.zeros((3, 4)), jnp.asarray(rng(8).normal(size=(10, 4)))])
    grads = jax.grad(lambda q, x: jnp.sum(jaxloss.knn(q, x, 5, metric=metric)[0]), (0, 1))(x, x)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


def test_knn_errors():
    x = jnp.ones((5, 3))
    with pytest.raises(ValueError, match=r"`k` must lie in \[1, database size = 5\]; got k=6"):
        jaxloss.knn(x, x, 6)
    with pytest.raises(ValueError, match=r"`k` must lie in \[1"):
        jaxloss.knn(x, x, 0)
    with pytest.raises(TypeError, match="`k` must be a Python int"):
        jaxloss.knn(x, x, 2.0)
    with pytest.raises(ValueError, match="Did you mean 'euclidean'"):
        jaxloss.knn(x, x, 2, metric="euclidian")
    with pytest.raises(TypeError, match="`metric` must be a string"):
        jaxloss.knn(x, x, 2, metric=None)
    with pytest.raises(ValueError, match=r"same number of features .* got \(5, 3\) and \(5, 4\)"):
        jaxloss.knn(x, jnp.ones((5, 4)), 2)
    with pytest.raises(ValueError, match="`queries` must have 2 dimensions; got shape \\(3,\\)"):
        jaxloss.knn(x[0], x, 2)
    with pytest.raises(ValueError, match="`database` must have 2 dimensions"):
        jaxloss.knn(x, x[0], 2)
    with pytest.raises(TypeError, match="packed uint32 codes need metric='hamming'"):
        jaxloss.knn(jnp.ones((2, 1), jnp.uint32), jnp.ones((2, 1), jnp.uint32), 1)
    with pytest.raises(TypeError, match="both `queries` and `database` must be packed"):
        jaxloss.knn(jnp.ones((2, 1), jnp.uint32), jnp.ones((2, 1)), 1, metric="hamming")
    with pytest.raises(ValueError, match="`block_size` must be a positive int"):
        jaxloss.knn(x, x, 2, block_size=0)
    with pytest.raises(ValueError, match="`database_block_size` must be a positive int"):
        jaxloss.knn(x, x, 2, database_block_size=-1)


# --------------------------------------------------------------------------- subprocess tests


@pytest.mark.slow
def test_sharded_knn_matches_single_device():
    code = """
    import jax, jax.numpy as jnp, numpy as np
    from jax.sharding import AxisType
    import jaxloss
    from tests.test_search import dataset
    assert jax.device_count() == 4, jax.devices()
    meshes = [jax.make_mesh((4,), ("data",)),
              jax.make_mesh((2, 2), ("a", "b"), axis_types=(AxisType.Auto, AxisType.Auto))]
    checked = 0
    for metric in ("euclidean", "sqeuclidean", "cosine", "cityblock", "hamming", "dot", "packed"):
        x = dataset("hamming" if metric == "packed" else metric, m=103).astype(np.float32)
        if metric == "packed":
            x = jaxloss.pack_bits(x)
        q = x[:17]
        name = "hamming" if metric == "packed" else metric
        setups = ((meshes[0], None), (meshes[1], "b"))[: 2 if metric == "euclidean" else 1]
        for mesh, axis in setups:
            for k in (7,) if metric != "euclidean" else (1, 30, 103):
                kw = dict(metric=name, database_block_size=8)
                a = jaxloss.knn(q, x, k, **kw)
                b = jaxloss.sharded_knn(q, x, k, mesh=mesh, axis_name=axis, **kw)
                assert b[0].dtype == a[0].dtype, (metric, k)
                msg = f"{metric} {k}"
                np.testing.assert_array_equal(np.asarray(a[1]), np.asarray(b[1]), err_msg=msg)
                np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]), err_msg=msg)
                checked += 1
    # a database already sharded over the devices, under an outer jit
    mesh = meshes[0]
    x = jnp.asarray(dataset("euclidean", m=1000, d=8).astype(np.float32))
    xs = jax.device_put(x, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    f = jax.jit(jaxloss.sharded_knn, static_argnames=("k", "mesh"))
    a, b = jaxloss.knn(x[:50], x, 10), f(x[:50], xs, k=10, mesh=mesh)
    np.testing.assert_array_equal(np.asarray(a[1]), np.asarray(b[1]))
    print("checked", checked + 1)
    """
    out = run_python(code, devices=4)
    assert "checked 13" in out


@pytest.mark.slow  # a subprocess that allocates a 512 MB database
def test_knn_memory_is_bounded():
    """2,000 queries against 2,000,000 x 64 float32 (512 MB): peak RSS grows by < 2 GB."""
    code = """
    import resource, jax, jax.numpy as jnp
    import jaxloss

    def rss_kb(field):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])

    x = jax.random.normal(jax.random.key(0), (2_000_000, 64), jnp.float32).block_until_ready()
    q = jax.random.normal(jax.random.key(1), (2_000, 64), jnp.float32).block_until_ready()
    before = rss_kb("VmRSS:")
    try:  # reset the peak (VmHWM) to the current RSS, where the kernel allows it
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        start = before
    except OSError:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    d, i = jaxloss.knn(q, x, 10)
    jax.block_until_ready((d, i))
    peak = rss_kb("VmHWM:")
    if start != before:
        peak = max(peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    growth = (peak - start) / 1024
    print("peak_reset", start == before, "growth_mb", growth, "database_mb", 488.3)
    assert bool(jnp.all(i[:, 0] >= 0))
    """
    out = run_python(code, timeout=600)
    growth = float(out.split("growth_mb")[1].split()[0])
    assert growth < 2048, out


@pytest.mark.slow
@pytest.mark.parametrize("metric", sweep(["cityblock", "euclidean", "sqeuclidean", "dot", "hamming"], 2))
@pytest.mark.parametrize("k", [1, 5, 16])
def test_chunked_block_top_k_is_exact_with_ties(metric, k):
    """Blocks of >= 8 * 64 columns go through the two-level (chunk maxima) top-k: still exact,
    ties to the lowest index (small integer data makes many exact ties)."""
    import scipy.spatial.distance as ssd

    r = np.random.default_rng(k)
    x = r.integers(0, 2, size=(3000, 6)).astype(np.float64)
    q = r.integers(0, 2, size=(40, 6)).astype(np.float64)
    d, i = jaxloss.knn(q, x, k, metric=metric, database_block_size=2048)
    ref = (
        -(q @ x.T) if metric == "dot" else ssd.cdist(q, x, {"sqeuclidean": "sqeuclidean"}.get(metric, metric))
    )
    order = np.argsort(ref, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(np.asarray(i), order)
    expected = np.take_along_axis(ref, order, axis=1)
    np.testing.assert_allclose(np.asarray(d), -expected if metric == "dot" else expected, atol=1e-12)


# --------------------------------------------------------------------------- filtered search

FILTER_METRICS = METRICS + ("packed",)


def filter_data(metric, m, seed):
    """(queries, database, bits or None): data with many ties; packed codes with their bits."""
    if metric == "packed":
        bits = rng(seed).integers(0, 2, (m, 12)).astype(bool)  # 12 bits: many equal counts
        return jaxloss.pack_bits(bits[:13]), jaxloss.pack_bits(bits), bits
    x = dataset(metric, m=m, seed=seed).astype(np.float32)
    return x[:13], x, None


def distance_matrix(q, x, metric, bits=None):
    """The full (q, m) brute-force distances (minus the inner products for "dot")."""
    if metric == "packed":
        return (bits[:13, None, :] != bits[None, :, :]).sum(-1).astype(np.float64)
    q = np.asarray(q, np.float64)
    x = np.asarray(x, np.float64)
    if metric == "dot":
        return -(q @ x.T)
    if metric == "hamming":
        return ssd.cdist(q != 0, x != 0, "hamming")
    return ssd.cdist(q, x, metric)


def filtered_brute_force(dist, k, metric, database_mask=None, exclude=None):
    """Masked and excluded rows set to inf, a stable argsort (ties to the lowest index), the
    tail padded with index -1 and the metric's padding distance."""
    dist = dist.copy()
    if database_mask is not None:
        dist[:, ~np.asarray(database_mask)] = np.inf
    if exclude is not None:
        for row, ex in enumerate(np.asarray(exclude)):
            dist[row, ex[ex >= 0]] = np.inf
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    values = np.take_along_axis(dist, order, axis=1)
    missing = np.isinf(values)
    order = np.where(missing, -1, order)
    if metric == "packed":
        return np.where(missing, 2**31 - 1, values), order
    if metric == "dot":
        return np.where(missing, -np.inf, -values), order
    return values, order


def assert_filtered_equal(got, expected, metric):
    (d, i), (de, ie) = got, expected
    assert i.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(i), ie)
    if metric == "packed":
        assert d.dtype == jnp.int32
        np.testing.assert_array_equal(np.asarray(d), de)
    else:
        np.testing.assert_allclose(np.asarray(d, np.float64), de, rtol=1e-5, atol=1e-5)


def random_filters(m, q, seed, keep=0.3, e=4):
    """A mask keeping about ``keep`` of the rows, and exclusions with -1 padding and repeats."""
    r = rng(seed)
    mask = r.random(m) < keep
    exclude = r.integers(0, m, (q, e))
    exclude[:, 1] = exclude[:, 0]  # repeated index
    exclude[::2, -1] = -1  # padding
    exclude[:, 2] = np.arange(q)  # the query itself (queries are database rows)
    return mask, exclude


FILTER_CASES = [  # (k, database_block_size): the selection each engine uses
    (5, 256),  # GEMM scan with runs of rows; packed scan with runs
    (5, 16),  # no runs: every row of a block is a candidate
    (70, 32),  # k > 64: the lax.top_k scan
]


@pytest.mark.parametrize("how", ["both", "mask", "exclude"])
@pytest.mark.parametrize("k, database_block_size", FILTER_CASES)
@pytest.mark.parametrize("metric", FILTER_METRICS)
def test_filtered_knn_matches_brute_force(metric, k, database_block_size, how):
    q, x, bits = filter_data(metric, 300, seed=31)
    mask, exclude = random_filters(300, 13, seed=32)
    kw = dict(
        database_mask=mask if how != "exclude" else None,
        exclude=exclude if how != "mask" else None,
    )
    name = "hamming" if metric == "packed" else metric
    got = jaxloss.knn(q, x, k, metric=name, block_size=8, database_block_size=database_block_size, **kw)
    assert got[0].shape == got[1].shape == (13, k)
    expected = filtered_brute_force(distance_matrix(q, x, metric, bits), k, metric, **kw)
    assert_filtered_equal(got, expected, metric)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("metric", ["euclidean", "dot", "packed", "cityblock"])
def test_filtered_knn_fewer_allowed_rows_than_k(metric, dtype, variant):
    q, x, bits = filter_data(metric, 60, seed=33)
    if metric != "packed":
        q, x = q.astype(dtype), x.astype(dtype)
    mask = np.zeros(60, bool)
    mask[[3, 17, 41]] = True
    exclude = np.full((13, 2), -1)
    exclude[0] = [17, 17]
    name = "hamming" if metric == "packed" else metric
    got = variant(jaxloss.knn, k=6, metric=name, database_block_size=16)(
        q, x, database_mask=jnp.asarray(mask), exclude=jnp.asarray(exclude)
    )
    if metric != "packed":
        assert got[0].dtype == dtype
    expected = filtered_brute_force(distance_matrix(q, x, metric, bits), 6, metric, mask, exclude)
    assert_filtered_equal(got, expected, metric)
    assert (np.asarray(got[1])[:, 3:] == -1).all() and (np.asarray(got[1])[0, 2:] == -1).all()


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["euclidean", "dot", "packed"])
def test_filtered_knn_everything_masked(metric):
    q, x, _ = filter_data(metric, 40, seed=34)
    name = "hamming" if metric == "packed" else metric
    search = jax.jit(functools.partial(jaxloss.knn, k=4, metric=name))
    d, i = search(q, x, database_mask=np.zeros(40, bool))
    np.testing.assert_array_equal(np.asarray(i), -1)
    pad = {"packed": 2**31 - 1, "dot": -np.inf}.get(metric, np.inf)
    np.testing.assert_array_equal(np.asarray(d), pad)
    # every row excluded: the same
    d, i = search(q, x, exclude=np.tile(np.arange(40), (13, 1)))
    np.testing.assert_array_equal(np.asarray(i), -1)


@pytest.mark.slow
def test_filtered_knn_all_true_mask_and_no_exclusions_change_nothing():
    q, x, _ = filter_data("euclidean", 100, seed=35)
    plain = jaxloss.knn(q, x, 7, database_block_size=32)
    masked = jaxloss.knn(
        q, x, 7, database_block_size=32, database_mask=np.ones(100, bool), exclude=np.full((13, 3), -1)
    )
    for a, b in zip(plain, masked, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_filtered_knn_gradients_match_torch():
    """Distances of the allowed neighbours differentiate as torch.cdist at those indices;
    the padding has a zero gradient."""
    r = rng(36)
    x = r.normal(size=(30, 4))
    q = x[:5] + 0.1 * r.normal(size=(5, 4))
    mask = np.zeros(30, bool)
    mask[::4] = True  # 8 rows allowed
    exclude = np.array([[0, -1]] * 5)

    def loss(q, x):
        d, _ = jaxloss.knn(q, x, 10, database_mask=mask, exclude=exclude, database_block_size=8)
        return jnp.sum(jnp.where(jnp.isfinite(d), d, 0) * jnp.arange(1, 11))

    _, idx = jaxloss.knn(q, x, 10, database_mask=mask, exclude=exclude)
    gq, gx = jax.jit(jax.grad(loss, (0, 1)))(jnp.asarray(q), jnp.asarray(x))
    idx = np.asarray(idx)
    assert (idx[:, 7:] == -1).all()
    qt = torch.tensor(q, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    dt = torch.cdist(qt, xt, compute_mode="donot_use_mm_for_euclid_dist")
    sel = dt.gather(1, torch.tensor(np.maximum(idx, 0)).long()) * torch.tensor(idx >= 0)
    (sel * torch.arange(1, 11)).sum().backward()
    np.testing.assert_allclose(np.asarray(gq), qt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("packed", [True, False])
def test_filtered_search_memory_does_not_grow_with_the_database(packed):
    """No (queries x database) mask or scores: temporaries stay bounded with a database mask,
    exclusions and a range search."""

    def temp_bytes(m):
        shape, dtype, metric = ((8,), jnp.uint32, "hamming") if packed else ((32,), jnp.float32, "euclidean")
        q = jax.ShapeDtypeStruct((4096,) + shape, dtype)
        x = jax.ShapeDtypeStruct((m,) + shape, dtype)
        mask = jax.ShapeDtypeStruct((m,), jnp.bool_)
        exclude = jax.ShapeDtypeStruct((4096, 2), jnp.int32)

        def f(a, b, mask, exclude):
            kw = dict(metric=metric, database_mask=mask, exclude=exclude)
            return jaxloss.knn(a, b, 10, **kw), jaxloss.range_search(a, b, 3.0, max_results=10, **kw)

        return jax.jit(f).lower(q, x, mask, exclude).compile().memory_analysis().temp_size_in_bytes

    small, large = temp_bytes(100_000), temp_bytes(2_000_000)
    assert large < 128 * 2**20, large  # 4,096 x 2,000,000 bools would be 8 GB
    # the per-row arrays that grow: the float path's squared norms and its flags of the rows that
    # may be returned (the mask and the finite rows, 4 + 1 bytes per row)
    assert large <= small + (0 if packed else 5 * 1_900_000) + 2**20, (small, large)


def test_filtered_knn_errors():
    x = jnp.ones((5, 3))
    with pytest.raises(ValueError, match=r"`database_mask` must have shape \(database rows,\) = \(5,\)"):
        jaxloss.knn(x, x, 2, database_mask=jnp.ones(4, bool))
    with pytest.raises(TypeError, match="`database_mask` must be a boolean array"):
        jaxloss.knn(x, x, 2, database_mask=jnp.ones(5))
    with pytest.raises(TypeError, match="`exclude` must hold integer"):
        jaxloss.knn(x, x, 2, exclude=jnp.ones((5, 1)))
    with pytest.raises(ValueError, match="`exclude` needs one row per query"):
        jaxloss.knn(x, x, 2, exclude=jnp.ones((4, 1), jnp.int32))
    with pytest.raises(ValueError, match="`exclude` must have 2 dimensions"):
        jaxloss.knn(x, x, 2, exclude=jnp.ones(5, jnp.int32))


@pytest.mark.slow
def test_sharded_filtered_knn_matches_single_device():
    code = """
    import jax, numpy as np
    import jaxloss
    from tests.test_search import BAD_QUERY, BAD_ROWS, filter_data, random_filters, with_non_finite_rows
    assert jax.device_count() == 4, jax.devices()
    mesh = jax.make_mesh((4,), ("data",))
    checked = 0
    for metric in ("euclidean", "cosine", "cityblock", "hamming", "dot", "packed"):
        q, x, _ = filter_data(metric, 103, seed=40)
        mask, exclude = random_filters(103, 13, seed=41)
        name = "hamming" if metric == "packed" else metric
        both = dict(database_mask=mask, exclude=exclude)
        # both filters at every metric; each filter alone for the float and the packed scans
        cases = [(5, both), (40, both)]
        if metric in ("euclidean", "packed"):
            cases += [(5, dict(database_mask=mask)), (5, dict(exclude=exclude))]
        for k, kw in cases:
            a = jaxloss.knn(q, x, k, metric=name, database_block_size=8, **kw)
            b = jaxloss.sharded_knn(q, x, k, mesh=mesh, metric=name, database_block_size=8, **kw)
            msg = f"{metric} {k} {sorted(kw)}"
            np.testing.assert_array_equal(np.asarray(a[1]), np.asarray(b[1]), err_msg=msg)
            np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]), err_msg=msg)
            checked += 1
    # NaN / inf database rows and a NaN query: each shard leaves its non-finite rows out
    q, x, _, _ = with_non_finite_rows("euclidean", 103, seed=42)
    for k in (5, 40):
        a = jaxloss.knn(q, x, k, database_block_size=8)
        b = jaxloss.sharded_knn(q, x, k, mesh=mesh, database_block_size=8)
        assert (np.asarray(a[1])[BAD_QUERY] == -1).all() and not np.isin(np.asarray(a[1]), BAD_ROWS).any()
        np.testing.assert_array_equal(np.asarray(a[1]), np.asarray(b[1]), err_msg=f"non-finite {k}")
        np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b[0]), err_msg=f"non-finite {k}")
        checked += 1
    print("checked", checked)
    """
    out = run_python(code, devices=4)
    assert "checked 18" in out


# --------------------------------------------------------------------------- range search

# Radii that data of small integers (0/1 codes) reach exactly: rows on the boundary are inside.
RANGE_RADIUS = {
    "euclidean": 2.0,
    "sqeuclidean": 4.0,
    "cosine": 0.5,
    "cityblock": 3.0,
    "hamming": 0.375,
    "dot": 2.0,
    "packed": 4,
}


def range_brute_force(dist, radius, max_results, metric, database_mask=None, exclude=None):
    """Rows with dist <= radius (dot: q.x >= radius) after the filters, nearest first, ties to
    the lowest index, padded to max_results; and the true counts."""
    dist = dist.copy()
    if database_mask is not None:
        dist[:, ~np.asarray(database_mask)] = np.inf
    if exclude is not None:
        for row, ex in enumerate(np.asarray(exclude)):
            dist[row, ex[ex >= 0]] = np.inf
    r = np.broadcast_to(np.asarray(radius, np.float64), (dist.shape[0],))[:, None]
    inside = dist <= (-r if metric == "dot" else r)
    d, i = filtered_brute_force(np.where(inside, dist, np.inf), max_results, metric)
    pad = max_results - d.shape[1]
    if pad > 0:
        fill = {"packed": 2**31 - 1, "dot": -np.inf}.get(metric, np.inf)
        d = np.pad(d, ((0, 0), (0, pad)), constant_values=fill)
        i = np.pad(i, ((0, 0), (0, pad)), constant_values=-1)
    return d, i, inside.sum(axis=1)


def assert_range_equal(got, expected, metric):
    d, i, n = got
    de, ie, ne = expected
    assert n.dtype == jnp.int32 and n.shape == ne.shape
    np.testing.assert_array_equal(np.asarray(n), ne)
    assert_filtered_equal((d, i), (de, ie), metric)


RANGE_CASES = [  # (max_results, database_block_size)
    (3, 16),  # most counts exceed max_results
    (10, 256),
    (2, 128),  # runs of 8 rows: the count is reduced with the run maxima (minima)
    (150, None),  # more than the database's 120 rows
    (70, 32),  # max_results > 64: the lax.top_k scan
]


@pytest.mark.parametrize("max_results, database_block_size", RANGE_CASES)
@pytest.mark.parametrize("metric", FILTER_METRICS)
def test_range_search_matches_brute_force(metric, max_results, database_block_size, variant):
    q, x, bits = filter_data(metric, 120, seed=50)
    name = "hamming" if metric == "packed" else metric
    radius = RANGE_RADIUS[metric]
    got = variant(
        jaxloss.range_search, max_results=max_results, metric=name, database_block_size=database_block_size
    )(q, x, radius)
    assert got[0].shape == got[1].shape == (13, max_results)
    expected = range_brute_force(distance_matrix(q, x, metric, bits), radius, max_results, metric)
    assert_range_equal(got, expected, metric)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("metric", ["euclidean", "packed", "dot", "cityblock"])
def test_range_search_filters_and_per_query_radius(metric, dtype):
    q, x, bits = filter_data(metric, 120, seed=51)
    if metric != "packed":
        q, x = q.astype(dtype), x.astype(dtype)
    mask, exclude = random_filters(120, 13, seed=52, keep=0.6)
    name = "hamming" if metric == "packed" else metric
    steps = (1 + np.arange(13) % 3) * {"dot": 2, "cityblock": 1}.get(metric, 0.5)
    radius = RANGE_RADIUS[metric] * steps  # per query
    got = jaxloss.range_search(
        q, x, radius, max_results=4, metric=name, database_block_size=32, database_mask=mask, exclude=exclude
    )
    dist = distance_matrix(q, x, metric, bits)
    expected = range_brute_force(dist, radius, 4, metric, mask, exclude)
    assert_range_equal(got, expected, metric)
    assert (expected[2] > 4).any() and (expected[2] < 4).any()  # both sides of max_results


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["euclidean", "cosine", "packed"])
def test_range_search_nothing_and_everything(metric):
    q, x, bits = filter_data(metric, 80, seed=53)
    name = "hamming" if metric == "packed" else metric
    if metric == "packed":  # queries of all-ones bits, none in the database: radius 0 finds nothing
        x = jaxloss.pack_bits(np.concatenate([bits[:, :11], np.zeros((80, 1), bool)], axis=1))
        q = jaxloss.pack_bits(np.ones((13, 12), bool))
    else:
        q = q + np.float32(0.25)
    d, i, n = jaxloss.range_search(q, x, 0.0, max_results=5, metric=name)
    np.testing.assert_array_equal(np.asarray(n), 0)
    np.testing.assert_array_equal(np.asarray(i), -1)
    np.testing.assert_array_equal(np.asarray(d), 2**31 - 1 if metric == "packed" else np.inf)
    # an infinite radius: every row counted, the max_results nearest returned (knn's answer)
    d, i, n = jaxloss.range_search(q, x, np.inf, max_results=5, metric=name)
    np.testing.assert_array_equal(np.asarray(n), 80)
    dk, ik = jaxloss.knn(q, x, 5, metric=name)
    np.testing.assert_array_equal(np.asarray(i), np.asarray(ik))
    np.testing.assert_array_equal(np.asarray(d), np.asarray(dk))


def test_range_search_matches_faiss_range_search():
    """faiss IndexFlatL2.range_search (squared distances, strict <) on random floats, where no
    distance lies on the radius."""
    faiss = pytest.importorskip("faiss")
    r = rng(54)
    x = r.normal(size=(2000, 8)).astype(np.float32)
    q = r.normal(size=(40, 8)).astype(np.float32)
    radius = 2.5
    index = faiss.IndexFlatL2(8)
    index.add(x)
    lims, fd, fi = index.range_search(q, radius**2)
    d, i, n = jaxloss.range_search(q, x, radius, max_results=64, database_block_size=512)
    np.testing.assert_array_equal(np.asarray(n), np.diff(lims))
    for row in range(40):
        got = np.asarray(i[row])[: min(64, n[row])]
        expected = fi[lims[row] : lims[row + 1]][np.argsort(fd[lims[row] : lims[row + 1]], kind="stable")]
        np.testing.assert_array_equal(got, expected[:64])
        np.testing.assert_allclose(
            np.asarray(d[row])[: len(got)] ** 2, np.sort(fd[lims[row] : lims[row + 1]])[:64], rtol=1e-4
        )


def test_range_search_gradients_match_torch():
    r = rng(55)
    x = r.normal(size=(30, 4))
    q = x[:5] + 0.1 * r.normal(size=(5, 4))

    def loss(q, x):
        d, _, _ = jaxloss.range_search(q, x, 2.0, max_results=6, database_block_size=8)
        return jnp.sum(jnp.where(jnp.isfinite(d), d, 0) * jnp.arange(1, 7))

    _, idx, _ = jaxloss.range_search(q, x, 2.0, max_results=6)
    idx = np.asarray(idx)
    assert (idx >= 0).any() and (idx == -1).any()
    gq, gx = jax.jit(jax.grad(loss, (0, 1)))(jnp.asarray(q), jnp.asarray(x))
    qt = torch.tensor(q, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    dt = torch.cdist(qt, xt, compute_mode="donot_use_mm_for_euclid_dist")
    sel = dt.gather(1, torch.tensor(np.maximum(idx, 0)).long()) * torch.tensor(idx >= 0)
    (sel * torch.arange(1, 7)).sum().backward()
    np.testing.assert_allclose(np.asarray(gq), qt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(gx), xt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_range_search_empty_queries_and_errors():
    x = jnp.ones((5, 3))
    d, i, n = jaxloss.range_search(jnp.zeros((0, 3)), x, 1.0, max_results=4)
    assert d.shape == i.shape == (0, 4) and n.shape == (0,)
    with pytest.raises(TypeError, match="`max_results` must be a Python int"):
        jaxloss.range_search(x, x, 1.0, max_results=2.0)
    with pytest.raises(ValueError, match="`max_results` must be >= 1"):
        jaxloss.range_search(x, x, 1.0, max_results=0)
    with pytest.raises(ValueError, match=r"`radius` must lie in \[0, inf\)"):
        jaxloss.range_search(x, x, -1.0, max_results=2)
    with pytest.raises(ValueError, match="`radius` must be >= 0"):
        jaxloss.range_search(x, x, jnp.array([1.0, -1.0, 0, 0, 0]), max_results=2)
    with pytest.raises(ValueError, match=r"`radius` must be a scalar or have shape \(queries,\) = \(5,\)"):
        jaxloss.range_search(x, x, jnp.ones((5, 1)), max_results=2)
    with pytest.raises(TypeError, match="`radius` must be a real number"):
        jaxloss.range_search(x, x, "1", max_results=2)
    # a similarity threshold may be negative
    d, i, n = jaxloss.range_search(x, -x, -3.0, max_results=2, metric="dot")
    np.testing.assert_array_equal(np.asarray(n), 5)


# --------------------------------------------------------------------------- non-finite rows, scale, tiling names

BAD_ROWS = (0, 1, 6, 40, 41)  # NaN or inf rows: beside the queries' nearest rows, in several blocks
BAD_QUERY = 4


def with_non_finite_rows(metric, m, seed):
    """(q, x with NaN/inf rows and one NaN query, x with finite copies of the queries in their
    place, the finite-row mask): the copies would be the nearest rows if they were not left out."""
    q, x, _ = filter_data(metric, m, seed=seed)
    q, x = np.array(q), np.array(x)
    filled = x.copy()
    filled[list(BAD_ROWS)] = q[: len(BAD_ROWS)]  # as near as a row can be
    x[BAD_ROWS[0], 2] = np.nan
    x[BAD_ROWS[1]] = np.nan
    x[BAD_ROWS[2], 0] = np.inf
    x[BAD_ROWS[3], 1] = -np.inf
    x[BAD_ROWS[4], 0] = np.nan
    q[BAD_QUERY, 3] = np.nan
    finite = np.ones(m, bool)
    finite[list(BAD_ROWS)] = False
    return q, x, filled, finite


def expect_padding_for_bad_query(expected, metric):
    d, i = (np.array(a) for a in expected[:2])
    d[BAD_QUERY] = -np.inf if metric == "dot" else np.inf
    i[BAD_QUERY] = -1
    return (d, i) + tuple(np.array(a) for a in expected[2:])


NON_FINITE_CASES = [  # (metric, k, database_block_size, block_size, filtered): each scan engine
    ("euclidean", 5, 16, 4, False),  # GEMM scan, NaN rows in the blocks of the true neighbours
    ("euclidean", 5, None, None, True),  # one tile; with database_mask and exclude
    ("cosine", 5, 256, None, False),  # runs of rows
    ("dot", 5, 16, 8, True),
    ("cityblock", 5, 16, None, False),  # the lax.top_k scan
    ("hamming", 5, 16, None, False),  # 0/1 codes held as floats
    ("sqeuclidean", 70, 32, None, True),  # k > 64: the lax.top_k scan
]


@pytest.mark.parametrize("metric, k, database_block_size, block_size, filtered", NON_FINITE_CASES)
def test_non_finite_rows_stay_local(metric, k, database_block_size, block_size, filtered):
    """A NaN/inf database row is never returned and displaces nothing (as if masked out); a NaN
    query gets padding; every other query's knn and range_search results are the brute force's."""
    m = 120
    q, x, filled, finite = with_non_finite_rows(metric, m, seed=61)
    mask, exclude = random_filters(m, 13, seed=62, keep=0.7) if filtered else (None, None)
    allowed = finite if mask is None else finite & mask
    kw = dict(metric=metric, block_size=block_size, database_block_size=database_block_size)
    dist = distance_matrix(np.nan_to_num(q), filled, metric)
    got = jax.jit(functools.partial(jaxloss.knn, k=k, **kw))(q, x, database_mask=mask, exclude=exclude)
    expected = filtered_brute_force(dist, k, metric, database_mask=allowed, exclude=exclude)
    assert_filtered_equal(got, expect_padding_for_bad_query(expected, metric), metric)
    radius = RANGE_RADIUS[metric]
    got = jax.jit(functools.partial(jaxloss.range_search, max_results=k, **kw))(
        q, x, radius, database_mask=mask, exclude=exclude
    )
    expected = range_brute_force(dist, radius, k, metric, database_mask=allowed, exclude=exclude)
    expected = expect_padding_for_bad_query(expected, metric)
    expected[2][BAD_QUERY] = 0
    assert_range_equal(got, expected, metric)


@pytest.mark.slow  # a gradient compilation; the values are checked in the fast loop above
def test_non_finite_query_has_a_zero_gradient_and_leaves_the_others_alone():
    q, _, filled, _ = with_non_finite_rows("euclidean", 60, seed=63)
    x64 = jnp.asarray(filled, jnp.float64)
    clean = q.copy()
    clean[BAD_QUERY] = 0.5

    def loss(q, x):
        d = jaxloss.knn(q, x, 3)[0]
        return jnp.sum(jnp.where(jnp.isfinite(d), d, 0.0))

    grad = jax.jit(jax.grad(loss, (0, 1)))
    gq, gx = grad(jnp.asarray(q, jnp.float64), x64)
    assert np.isfinite(np.asarray(gq)).all() and np.isfinite(np.asarray(gx)).all()
    np.testing.assert_array_equal(np.asarray(gq)[BAD_QUERY], 0.0)
    gq_clean, _ = grad(jnp.asarray(clean, jnp.float64), x64)
    others = np.arange(len(q)) != BAD_QUERY
    np.testing.assert_allclose(np.asarray(gq)[others], np.asarray(gq_clean)[others])


@pytest.mark.parametrize(
    "dtype, scales",
    [("float32", (1e-30, 1e30)), pytest.param("float64", (1e-300, 1e300), marks=pytest.mark.slow)],
)
def test_cosine_search_is_scale_free(dtype, scales):
    """Queries and database scaled by tiny or huge factors: the same neighbours and distances
    (every row is divided by its largest coordinate before anything is squared)."""
    r = rng(64)
    x = r.normal(size=(90, 7)).astype(dtype)
    q = r.normal(size=(6, 7)).astype(dtype)
    search = jax.jit(functools.partial(jaxloss.knn, k=5, metric="cosine", database_block_size=32))
    d0, i0 = brute_force(q, x, 5, "cosine")
    for sq in (1.0,) + scales:
        for sx in (1.0,) + scales:
            qs, xs = (q * np.asarray(sq, dtype)).astype(dtype), (x * np.asarray(sx, dtype)).astype(dtype)
            assert np.isfinite(qs).all() and np.isfinite(xs).all() and (qs != 0).all()
            d, i = search(qs, xs)
            np.testing.assert_array_equal(np.asarray(i), i0, err_msg=f"{sq} {sx}")
            np.testing.assert_allclose(np.asarray(d), d0, rtol=1e-5, atol=1e-6, err_msg=f"{sq} {sx}")


@pytest.mark.slow  # a gradient compilation per dtype
@pytest.mark.parametrize("dtype, scales", [("float32", (1e-30, 1e30)), ("float64", (1e-300, 1e300))])
def test_cosine_search_gradients_are_finite_at_any_scale(dtype, scales):
    r = rng(64)
    x, q = r.normal(size=(90, 7)).astype(dtype), r.normal(size=(6, 7)).astype(dtype)
    g = jax.jit(jax.grad(lambda a, b: jnp.sum(jaxloss.knn(a, b, 5, metric="cosine")[0]), (0, 1)))
    g1q, g1x = g(jnp.asarray(q), jnp.asarray(x))
    for s in scales:
        gq, gx = g(jnp.asarray(q * s, dtype), jnp.asarray(x * s, dtype))
        assert np.isfinite(np.asarray(gq)).all() and np.isfinite(np.asarray(gx)).all()
        # d cos(s q, s x) / d(s q) = (1 / s) d cos(q, x) / dq
        np.testing.assert_allclose(np.asarray(gq) * s, np.asarray(g1q), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(np.asarray(gx) * s, np.asarray(g1x), rtol=1e-4, atol=1e-6)


def test_knn_needs_at_least_one_feature():
    for q, x in (
        (jnp.ones((3, 0)), jnp.ones((5, 0))),
        (jnp.ones((3, 0), jnp.uint32), jnp.ones((5, 0), jnp.uint32)),
    ):
        with pytest.raises(ValueError, match=r"knn: `queries` and `database` need at least one feature"):
            jaxloss.knn(q, x, 2, metric="hamming" if q.dtype == jnp.uint32 else "euclidean")
    with pytest.raises(ValueError, match=r"range_search: `queries` and `database` need at least one feature"):
        jaxloss.range_search(jnp.ones((3, 0)), jnp.ones((5, 0)), 1.0, max_results=2)


def test_block_size_counts_queries_and_query_block_size_is_deprecated():
    """block_size = queries per block, database_block_size = database rows per block; the former
    name query_block_size still works for one minor version, with block_size read as before."""
    q, x, _ = filter_data("euclidean", 100, seed=65)
    from jaxloss import _search  # noqa: PLC0415

    # (queries per block, database rows per block) of the scans
    assert _search._auto_blocks(13, 100, "euclidean", False, *_search._tiling(3, 16, None, "knn")) == (3, 16)
    new = jaxloss.knn(q, x, 4, block_size=3, database_block_size=16)
    with pytest.warns(DeprecationWarning, match=r"knn: `query_block_size` is deprecated .* `block_size`"):
        old = jaxloss.knn(q, x, 4, block_size=16, query_block_size=3)
    for a, b in zip(new, old, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.warns(
        DeprecationWarning, match="range_search: `query_block_size`"
    ):  # as range_search reads it
        assert _search._tiling(None, 16, 5, "range_search") == (5, 16)
    with pytest.raises(
        TypeError, match="cannot be combined with both `block_size` and `database_block_size`"
    ):
        jaxloss.knn(q, x, 4, block_size=3, database_block_size=16, query_block_size=3)
    with pytest.raises(ValueError, match="`database_block_size` must be a positive int"):
        jaxloss.knn(q, x, 4, database_block_size=0)
