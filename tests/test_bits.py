"""Packed binary codes: pack_bits / unpack_bits vs numpy.packbits, popcount Hamming vs scipy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.spatial.distance as ssd
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import jaxloss
from jaxloss._bits import packed_hamming_distances
from tests.helpers import rng, sweep


def numpy_pack(bits):
    """Reference packing: numpy.packbits little-endian bytes read as little-endian uint32."""
    b = np.packbits(np.asarray(bits, dtype=bool), axis=-1, bitorder="little")
    words = -(-np.shape(bits)[-1] // 32)
    b = np.pad(b, [(0, 0)] * (b.ndim - 1) + [(0, 4 * words - b.shape[-1])])
    return np.ascontiguousarray(b).view("<u4")


@pytest.mark.parametrize("n", sweep([33, 32, 1, 31, 64, 70, 256], 3))  # ragged, one whole word, one bit
@pytest.mark.parametrize("dtype", [bool, np.int32, np.float32])
def test_pack_matches_numpy_packbits(n, dtype, variant):
    bits = rng(n).integers(0, 2, (5, n)).astype(dtype)
    words = variant(jaxloss.pack_bits)(bits)
    assert words.dtype == jnp.uint32 and words.shape == (5, -(-n // 32))
    np.testing.assert_array_equal(np.asarray(words), numpy_pack(bits))
    back = variant(jaxloss.unpack_bits, num_bits=n)(words)
    assert back.dtype == jnp.bool_
    np.testing.assert_array_equal(np.asarray(back), bits.astype(bool))


@pytest.mark.slow
def test_pack_axis():
    bits = rng(1).integers(0, 2, (3, 40, 2)).astype(bool)
    words = jaxloss.pack_bits(bits, axis=1)
    assert words.shape == (3, 2, 2)
    expected = np.moveaxis(numpy_pack(np.moveaxis(bits, 1, -1)), -1, 1)
    np.testing.assert_array_equal(np.asarray(words), expected)
    np.testing.assert_array_equal(np.asarray(jaxloss.unpack_bits(words, 40, axis=1)), bits)


def test_nonzero_counts_as_one():
    np.testing.assert_array_equal(
        np.asarray(jaxloss.pack_bits(jnp.array([2.0, 0.0, -1.0]))), np.array([5], np.uint32)
    )


@pytest.mark.slow  # hypothesis: a compilation per shape
@settings(max_examples=10)
@given(hnp.arrays(bool, st.tuples(st.integers(1, 6), st.integers(1, 100))))
def test_roundtrip_property(bits):
    words = jaxloss.pack_bits(bits)
    np.testing.assert_array_equal(np.asarray(jaxloss.unpack_bits(words, bits.shape[1])), bits)


@pytest.mark.parametrize("block_size", [None, 1, 4, 7, 100])
def test_packed_hamming_matches_scipy(block_size):
    n_bits = 100
    r = rng(2)
    a = r.integers(0, 2, (9, n_bits)).astype(bool)
    b = r.integers(0, 2, (13, n_bits)).astype(bool)
    got = packed_hamming_distances(jaxloss.pack_bits(a), jaxloss.pack_bits(b), block_size=block_size)
    assert got.dtype == jnp.int32 and got.shape == (9, 13)
    np.testing.assert_array_equal(np.asarray(got), np.rint(ssd.cdist(a, b, "hamming") * n_bits))


def test_packed_hamming_jit():
    a = jaxloss.pack_bits(rng(3).integers(0, 2, (4, 64)))
    got = jax.jit(packed_hamming_distances)(a, a)
    np.testing.assert_array_equal(np.diag(np.asarray(got)), 0)


def test_errors():
    with pytest.raises(TypeError, match="unsigned integer"):
        jaxloss.unpack_bits(jnp.zeros((2, 1), jnp.int32), 3)
    with pytest.raises(ValueError, match=r"`num_bits` must lie in \[1, 32\]"):
        jaxloss.unpack_bits(jnp.zeros((2, 1), jnp.uint32), 33)
    with pytest.raises(TypeError, match="`num_bits` must be an int"):
        jaxloss.unpack_bits(jnp.zeros((2, 1), jnp.uint32), 3.0)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        jaxloss.pack_bits(jnp.array(True))
    with pytest.raises(ValueError, match="out of range"):
        jaxloss.pack_bits(jnp.zeros((2, 3)), axis=2)
    with pytest.raises(TypeError, match="packed codes of dtype uint32"):
        packed_hamming_distances(jnp.zeros((2, 1)), jnp.zeros((2, 1), jnp.uint32))
    with pytest.raises(ValueError, match="same number of words"):
        packed_hamming_distances(jnp.zeros((2, 1), jnp.uint32), jnp.zeros((2, 2), jnp.uint32))
    with pytest.raises(ValueError, match="must have 2 dimensions"):
        packed_hamming_distances(jnp.zeros((2,), jnp.uint32), jnp.zeros((2, 2), jnp.uint32))


# --------------------------------------------------------------------------- cdist / pdist on packed codes


@pytest.mark.parametrize("num_bits", [3, 32, 70, 256])
def test_cdist_and_pdist_on_packed_codes_match_scipy(num_bits):
    import scipy.spatial.distance as sd

    r = np.random.default_rng(num_bits)
    a = r.integers(0, 2, (7, num_bits)).astype(bool)
    b = r.integers(0, 2, (5, num_bits)).astype(bool)
    pa, pb = jaxloss.pack_bits(a), jaxloss.pack_bits(b)
    counts = jaxloss.cdist(pa, pb, "hamming")
    assert counts.dtype == jnp.int32
    np.testing.assert_allclose(counts, sd.cdist(a, b, "hamming") * num_bits, rtol=1e-12)
    np.testing.assert_allclose(
        jaxloss.cdist(pa, pb, "hamming", num_bits=num_bits), sd.cdist(a, b, "hamming"), rtol=1e-6
    )
    np.testing.assert_allclose(
        jaxloss.pdist(pa, "hamming", num_bits=num_bits), sd.pdist(a, "hamming"), rtol=1e-6
    )
    np.testing.assert_array_equal(jnp.diagonal(jaxloss.cdist(pa, metric="hamming")), np.zeros(7))
    batched = jaxloss.cdist(jnp.stack([pa, pa]), pb, "hamming")
    np.testing.assert_array_equal(batched, jnp.stack([counts, counts]))
    np.testing.assert_array_equal(jax.jit(lambda u, v: jaxloss.cdist(u, v, "hamming"))(pa, pb), counts)


def test_cdist_packed_errors():
    pa = jaxloss.pack_bits(jnp.ones((3, 40), bool))
    with pytest.raises(TypeError, match="`y` must hold packed codes"):
        jaxloss.cdist(pa, jnp.ones((3, 2)), "hamming")
    with pytest.raises(ValueError, match="only `num_bits`"):
        jaxloss.cdist(pa, pa, "hamming", w=jnp.ones(2))
    with pytest.raises(ValueError, match="`num_bits`"):
        jaxloss.cdist(pa, pa, "hamming", num_bits=65)


# --------------------------------------------------------------------------- the popcount kernels of the packed scan


@pytest.mark.parametrize("kernel", ["csa16", "plain16", "plain32", "csa32"])
def test_tile_counts_kernels_are_exact(kernel):
    """Every kernel of the packed-Hamming scan gives numpy's counts: random codes, all bits
    differing (256, beyond a byte), lengths that leave lone words at some carry-save weights."""
    from jaxloss import _bits

    r = rng(4)
    for words in (1, 8, 17):  # one word; 16 halves (one per weight left); an odd count
        rows = r.integers(0, 2**32, (40, words), dtype=np.uint32)
        q = r.integers(0, 2**32, (9, words), dtype=np.uint32)
        rows[0] = ~q[0]  # every bit differs
        rows[1] = q[1]  # none
        f = jax.jit(lambda a, b: _bits.tile_counts(a, _bits.query_lanes(b, kernel), kernel))
        got = np.asarray(f(rows, q)).astype(np.int64)
        bits = np.unpackbits((rows[:, None, :] ^ q[None, :, :]).view(np.uint8), axis=-1).sum(-1)
        np.testing.assert_array_equal(got, bits, err_msg=f"{kernel} {words}")
        assert got[0, 0] == 32 * words and got[1, 1] == 0


def test_popcount_kernel_rule(monkeypatch):
    """16-bit lanes on a CPU while a count fits, 32 elsewhere; the adder tree without a vector
    popcount (x86 without AVX-512 BITALG, or XLA limited below AVX-512)."""
    from jaxloss import _bits

    assert _bits.popcount_kernel(8, backend="gpu") == "plain32"
    monkeypatch.setattr(_bits.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(_bits, "_cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_bitalg"}))
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert _bits.popcount_kernel(8, backend="cpu") == "plain16"
    assert _bits.popcount_kernel(2048, backend="cpu") == "plain32"  # the sentinel 32 w + 1 = 2^16 + 1
    assert _bits.popcount_kernel(2047, backend="cpu") == "plain16"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")
    assert _bits.popcount_kernel(8, backend="cpu") == "csa16"
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=avx512_vnni")
    assert _bits.popcount_kernel(8, backend="cpu") == "plain16"
    monkeypatch.setattr(_bits, "_cpu_flags", lambda: frozenset({"avx2", "avx512f"}))  # Skylake-X: no BITALG
    assert _bits.popcount_kernel(8, backend="cpu") == "csa16"
    monkeypatch.setattr(_bits.platform, "machine", lambda: "aarch64")
    assert _bits.popcount_kernel(8, backend="cpu") == "plain16"


@pytest.mark.parametrize("kernel", ["csa16", "plain16", "plain32"])
def test_packed_knn_every_kernel_matches_scipy(kernel, monkeypatch):
    """knn and range_search over packed codes with each popcount kernel: scipy's counts, ties to
    the lowest index (runs of rows, a database mask)."""
    from jaxloss import _bits

    monkeypatch.setattr(_bits, "popcount_kernel", lambda words, backend=None: kernel)
    r = rng(5)
    xbits = r.integers(0, 2, (700, 70)).astype(bool)
    xbits[400:420] = xbits[3]  # exact duplicates
    qbits = np.concatenate([xbits[:5], r.integers(0, 2, (6, 70)).astype(bool)])
    mask = r.random(700) < 0.8
    q, x = jaxloss.pack_bits(qbits), jaxloss.pack_bits(xbits)
    dist = np.rint(ssd.cdist(qbits, xbits, "hamming") * 70)
    d, i = jaxloss.knn(q, x, 7, metric="hamming", database_block_size=512, database_mask=mask)
    ref = np.where(mask[None, :], dist, np.inf)
    order = np.argsort(ref, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(np.asarray(i), order)
    np.testing.assert_array_equal(np.asarray(d), np.take_along_axis(dist, order, axis=1))


@pytest.mark.slow  # a range_search compilation per kernel; knn's are checked in the fast loop
@pytest.mark.parametrize("kernel", ["csa16", "plain16", "plain32"])
def test_packed_range_counts_every_kernel_match_scipy(kernel, monkeypatch):
    from jaxloss import _bits

    monkeypatch.setattr(_bits, "popcount_kernel", lambda words, backend=None: kernel)
    bits = rng(6).integers(0, 2, (700, 70)).astype(bool)
    q, x = jaxloss.pack_bits(bits[:11]), jaxloss.pack_bits(bits)
    dist = np.rint(ssd.cdist(bits[:11], bits, "hamming") * 70)
    n = jaxloss.range_search(q, x, 30, max_results=3, metric="hamming", database_block_size=512)[2]
    np.testing.assert_array_equal(np.asarray(n), (dist <= 30).sum(axis=1))
