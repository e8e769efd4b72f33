"""Packed binary codes: ``pack_bits``, ``unpack_bits`` and Hamming counts with popcount.

A binary code of ``n`` bits is stored in ``ceil(n / 32)`` ``uint32`` words,
32 times less memory than 0/1 float32 values. **Bit order**: bit ``j`` of a
code goes to word ``j // 32`` at bit position ``j % 32`` counted from the
least significant bit (little-endian within and across words; this is
``numpy.packbits(..., bitorder="little")`` viewed as little-endian uint32).
The last word is padded with zero bits, so padding never changes a Hamming
distance between two codes packed the same way.

This module depends only on ``jaxloss._numerics`` and ``jaxloss._checks``
so that the distance module can use it.
"""

from __future__ import annotations

import functools
import math
import os
import platform

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _block_policy, _checks, _tiles

__all__ = ["pack_bits", "unpack_bits", "packed_hamming_distances", "WORD_BITS"]

WORD_BITS = 32

# Budget (bytes) for one (n_block, m_block) block of int32 counts.
_HAMMING_BLOCK_BYTES = _block_policy.BITS_BLOCK_BYTES


def pack_bits(bits: ArrayLike, axis: int = -1) -> jax.Array:
    """Packs binary codes along ``axis`` into ``uint32`` words.

    Entry ``j`` of a code (``bits[..., j]`` for ``axis=-1``) becomes bit
    ``j % 32`` (from the least significant bit) of word ``j // 32``; the code is
    padded with zero bits to a multiple of 32.

    Args:
      bits: ``(..., n, ...)`` array of booleans or 0/1 numbers; any non-zero
        value counts as a 1 bit.
      axis: the axis holding the bits of one code.

    Returns:
      ``uint32`` array with ``axis`` of length ``ceil(n / 32)``, other axes
      unchanged.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import pack_bits, unpack_bits
      >>> words = pack_bits(jnp.array([[1, 0, 1, 1], [0, 0, 0, 1]]))
      >>> words
      Array([[13],
             [ 8]], dtype=uint32)
      >>> unpack_bits(words, 4).astype(jnp.int32)
      Array([[1, 0, 1, 1],
             [0, 0, 0, 1]], dtype=int32)

    Reference: ``numpy.packbits(bits, bitorder="little")`` read as little-endian uint32.
    """
    bits = jnp.asarray(bits)
    _checks.check_ndim(bits, "bits", "pack_bits", min_ndim=1)
    (ax,) = _checks.check_axis(axis, bits.ndim, "axis", "pack_bits")
    if jnp.issubdtype(bits.dtype, jnp.complexfloating):
        raise TypeError(f"pack_bits: `bits` must be boolean or 0/1 numbers; got dtype {bits.dtype}.")
    b = jnp.moveaxis(bits != 0, ax, -1)
    n = b.shape[-1]
    words = max(1, math.ceil(n / WORD_BITS))
    pad = words * WORD_BITS - n
    if pad:
        b = jnp.pad(b, [(0, 0)] * (b.ndim - 1) + [(0, pad)])
    b = b.reshape(*b.shape[:-1], words, WORD_BITS).astype(jnp.uint32)
    shifts = jnp.arange(WORD_BITS, dtype=jnp.uint32)
    packed = jnp.sum(b << shifts, axis=-1, dtype=jnp.uint32)  # distinct bits: sum == or
    return jnp.moveaxis(packed, -1, ax)


def unpack_bits(words: ArrayLike, num_bits: int, axis: int = -1) -> jax.Array:
    """Unpacks ``uint32`` words made by ``pack_bits`` into ``num_bits`` booleans.

    Args:
      words: ``(..., w, ...)`` unsigned integer array of packed codes.
      num_bits: number of bits per code, ``1 <= num_bits <= 32 * w``.
      axis: the axis holding the words of one code.

    Returns:
      boolean array with ``axis`` of length ``num_bits``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import unpack_bits
      >>> unpack_bits(jnp.array([5], dtype=jnp.uint32), 3)
      Array([ True, False,  True], dtype=bool)

    Reference: inverse of ``pack_bits`` (tested with ``numpy.unpackbits``).
    """
    words = jnp.asarray(words)
    _checks.check_ndim(words, "words", "unpack_bits", min_ndim=1)
    (ax,) = _checks.check_axis(axis, words.ndim, "axis", "unpack_bits")
    if not jnp.issubdtype(words.dtype, jnp.unsignedinteger):
        raise TypeError(
            f"unpack_bits: `words` must have an unsigned integer dtype (uint32 from pack_bits); "
            f"got {words.dtype}."
        )
    w = words.shape[ax]
    if isinstance(num_bits, bool) or not isinstance(num_bits, (int, np.integer)):
        raise TypeError(f"unpack_bits: `num_bits` must be an int; got {num_bits!r}.")
    if not 1 <= num_bits <= WORD_BITS * w:
        raise ValueError(
            f"unpack_bits: `num_bits` must lie in [1, {WORD_BITS * w}] for {w} word(s) of "
            f"{WORD_BITS} bits; got {num_bits}."
        )
    x = jnp.moveaxis(words.astype(jnp.uint32), ax, -1)
    shifts = jnp.arange(WORD_BITS, dtype=jnp.uint32)
    b = ((x[..., None] >> shifts) & 1).astype(bool)
    b = b.reshape(*x.shape[:-1], w * WORD_BITS)[..., :num_bits]
    return jnp.moveaxis(b, -1, ax)


def check_packed(x, name: str, fn: str):
    """Checks that ``x`` holds packed codes (an unsigned integer array)."""
    if not jnp.issubdtype(x.dtype, jnp.unsignedinteger):
        raise TypeError(
            f"{fn}: `{name}` must hold packed codes of dtype uint32 (use jaxloss.pack_bits); "
            f"got dtype {x.dtype}."
        )


def hamming_counts(x_words: ArrayLike, y_words: ArrayLike) -> jax.Array:
    """``(n, m)`` int32 counts of differing bits between packed rows (no blocking).

    XLA fuses the XOR, popcount and the sum over words into one loop, so the
    ``(n, m, w)`` broadcast is never materialised.
    """
    x = x_words.astype(jnp.uint32)
    y = y_words.astype(jnp.uint32)
    diff = jax.lax.population_count(x[:, None, :] ^ y[None, :, :])
    return jnp.sum(diff.astype(jnp.int32), axis=-1, dtype=jnp.int32)


def packed_hamming_distances(
    x_words: ArrayLike, y_words: ArrayLike, *, block_size: int | None = None
) -> jax.Array:
    """All-pairs Hamming distances (counts of differing bits) between packed codes.

    ``D[i, j] = sum_w popcount(x[i, w] XOR y[j, w])``.

    The rows of ``y`` are processed in blocks of ``block_size`` (automatic by
    default, about 64 MiB of counts per block), so the memory used beyond the
    ``(n, m)`` result is bounded.

    Args:
      x_words: ``(n, w)`` uint32 packed codes (from ``pack_bits``).
      y_words: ``(m, w)`` uint32 packed codes.
      block_size: rows of ``y`` per block (``None``: automatic).

    Returns:
      ``(n, m)`` int32 number of differing bits. Divide by the code length for
      scipy's ``"hamming"`` (a fraction).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import pack_bits
      >>> from jaxloss._bits import packed_hamming_distances
      >>> a = pack_bits(jnp.array([[1, 0, 1], [1, 1, 1]]))
      >>> packed_hamming_distances(a, a)
      Array([[0, 1],
             [1, 0]], dtype=int32)

    Reference: ``scipy.spatial.distance.cdist(x, y, "hamming") * num_bits``.
    """
    fn = "packed_hamming_distances"
    x = jnp.asarray(x_words)
    y = jnp.asarray(y_words)
    _checks.check_ndim(x, "x_words", fn, ndim=2)
    _checks.check_ndim(y, "y_words", fn, ndim=2)
    check_packed(x, "x_words", fn)
    check_packed(y, "y_words", fn)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"{fn}: `x_words` and `y_words` need the same number of words per code; "
            f"got shapes {x.shape} and {y.shape}."
        )
    n, m = x.shape[0], y.shape[0]
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)
    if block_size is None:
        block_size = max(1, _HAMMING_BLOCK_BYTES // (4 * max(n, 1)))
    block_size = int(min(block_size, max(m, 1)))
    if m <= block_size:
        return hamming_counts(x, y)
    return _blocked_counts(x, y, block_size)


@jax.jit(static_argnums=2)
def _blocked_counts(x, y, block):
    m = y.shape[0]
    yb = _tiles.pad_to_blocks(y, block)  # (nblocks, block, w), zero codes past m
    out = jax.lax.map(lambda yy: hamming_counts(x, yy), yb)  # (nblocks, n, block)
    return jnp.moveaxis(out, 0, 1).reshape(x.shape[0], yb.shape[0] * block)[:, :m]


# --------------------------------------------------------------------------- popcount tiles
#
# The packed-Hamming scan of ``knn`` counts a (database rows, queries) tile at a
# time: ``counts[i, j] = sum_w popcount(rows[i, w] ^ queries[j, w])``, vectorised
# over the queries (each database word broadcast). Two choices decide its speed
# on a CPU, and neither changes a count:
#
# * **lanes**: the words are split into 16-bit halves and counted in uint16
#   lanes (twice as many lanes per vector instruction as uint32, and a tile of
#   counts half the bytes), while a count fits (``32 w + 1 < 2^16``, codes of up
#   to 65,504 bits); 32-bit lanes otherwise, and on GPU / TPU (whose popcount is
#   a 32-bit instruction).
# * **adder**: without a vector popcount instruction for the lanes (x86 without
#   AVX-512 BITALG, or XLA limited below AVX-512), each popcount is a nibble
#   table lookup (``vpshufb``) and a horizontal add, about ten instructions; a
#   carry-save adder tree (Harley-Seal) first reduces three words of equal
#   weight to two, ``sum`` and ``carry``, with five bitwise instructions, so 16
#   words need 5 popcounts instead of 16. With a vector popcount (AVX-512
#   BITALG ``vpopcntw``, NEON ``cnt``) the plain sum of popcounts is faster.
#
# The rule is applied when the search is traced (``popcount_kernel``): the
# default backend, the CPU's flags (``/proc/cpuinfo`` on Linux, NumPy's CPU
# feature table elsewhere) and ``--xla_cpu_max_isa`` in ``XLA_FLAGS``.
# Measured per 16,384 x 256 tile of 256-bit codes on a Xeon (Sapphire Rapids),
# XLA limited to AVX2: 32-bit lanes 8.7 ms, 16-bit lanes 6.9 ms, 16-bit lanes
# with the adder tree 5.3 ms; with AVX-512: 3.0, 2.5 and 3.6 ms.

#: the kernels of ``tile_counts``: (lane bits, carry-save adder tree)
POPCOUNT_KERNELS = {"plain16": (16, False), "csa16": (16, True), "plain32": (32, False), "csa32": (32, True)}
# XLA's --xla_cpu_max_isa values that allow AVX-512 instructions
_AVX512_ISAS = ("AVX512", "AVX512_VNNI", "AVX512_BF16", "AMX", "AMX_FP16", "AVX10")


@functools.cache
def _cpu_flags() -> frozenset:
    """This CPU's feature flags, lower case (empty when they cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].lower().split())
    except OSError:
        pass
    try:  # not Linux: NumPy's runtime CPU feature table
        from numpy._core._multiarray_umath import __cpu_features__  # noqa: PLC0415
    except ImportError:
        return frozenset()
    names = {"AVX512BITALG": "avx512_bitalg", "AVX512F": "avx512f", "AVX2": "avx2", "ASIMD": "asimd"}
    return frozenset(flag for name, flag in names.items() if __cpu_features__.get(name))


def _xla_allows_avx512() -> bool:
    flags = os.environ.get("XLA_FLAGS", "")
    if "--xla_cpu_max_isa=" not in flags:
        return True
    isa = flags.split("--xla_cpu_max_isa=", 1)[1].split()[0].strip("\"'").upper()
    return isa.startswith(_AVX512_ISAS)


def has_vector_popcount() -> bool:
    """Whether XLA's CPU code can count the bits of 16-bit lanes with one vector instruction.

    x86: AVX-512 BITALG (``vpopcntw``) in the CPU's flags and XLA not limited
    below AVX-512 (``--xla_cpu_max_isa``); ARM: NEON (``cnt``), always.
    Other CPUs: no.
    """
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return True
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return False
    return "avx512_bitalg" in _cpu_flags() and _xla_allows_avx512()


def popcount_kernel(num_words: int, backend: str | None = None) -> str:
    """The ``tile_counts`` kernel for codes of ``num_words`` uint32 words (a key of ``POPCOUNT_KERNELS``).

    16-bit lanes on a CPU while a count fits in them, 32-bit lanes otherwise
    and on GPU / TPU; on a CPU the carry-save adder tree unless it has a
    vector popcount (``has_vector_popcount``). Decided when a search is
    traced, from the default backend unless ``backend`` is given.
    """
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu":
        return "plain32"
    lanes = 16 if WORD_BITS * num_words + 1 < 2**16 else 32
    return f"{'plain' if has_vector_popcount() else 'csa'}{lanes}"


def query_lanes(q, kernel: str):
    """Packed queries ``(qb, w)`` uint32 laid out for ``tile_counts``: one row per lane word, ``(L, qb)``.

    ``L = w`` for 32-bit lanes, ``2 w`` for 16-bit lanes (word ``v`` gives the
    halves ``2 v`` (low) and ``2 v + 1`` (high)).
    """
    if POPCOUNT_KERNELS[kernel][0] == 32:
        return q.T
    qb, w = q.shape
    return jax.lax.bitcast_convert_type(q, jnp.uint16).reshape(qb, 2 * w).T


def tile_counts(rows, q_lanes, kernel: str):
    """``(B, qb)`` counts of differing bits of database rows ``(B, w)`` uint32 and ``q_lanes`` of
    ``query_lanes``: uint16 for 16-bit lanes, int32 for 32-bit lanes; exact for every kernel."""
    lane_bits, csa = POPCOUNT_KERNELS[kernel]
    if lane_bits == 16:
        rows = jax.lax.bitcast_convert_type(rows, jnp.uint16).reshape(rows.shape[0], 2 * rows.shape[1])
    dtype = jnp.uint16 if lane_bits == 16 else jnp.int32
    words = [rows[:, j : j + 1] ^ q_lanes[j][None, :] for j in range(q_lanes.shape[0])]
    return _adder_tree_counts(words, dtype) if csa else _plain_counts(words, dtype)


def _plain_counts(words, dtype):
    total = None
    for v in words:
        t = jax.lax.population_count(v).astype(dtype)
        total = t if total is None else total + t
    return total


def _adder_tree_counts(words, dtype):
    """``sum_j popcount(words[j])`` with a carry-save adder tree (Harley-Seal).

    Words of equal weight ``c`` are taken three at a time: ``u = a ^ b``,
    ``sum = u ^ c`` keeps weight ``c``, ``carry = (a & b) | (u & c)`` has weight
    ``2 c`` (``popcount(a) + popcount(b) + popcount(c) = popcount(sum) + 2
    popcount(carry)``, bit by bit); at most two words per weight remain, whose
    popcounts are added with their weights.
    """
    by_weight = {1: list(words)}
    weight = 1
    while weight in by_weight:
        level = by_weight[weight]
        while len(level) >= 3:
            a, b, c = level.pop(), level.pop(), level.pop()
            u = a ^ b
            level.insert(0, u ^ c)
            by_weight.setdefault(2 * weight, []).append((a & b) | (u & c))
        weight *= 2
    total = None
    for weight, level in sorted(by_weight.items()):
        for v in level:
            t = jax.lax.population_count(v).astype(dtype)
            t = t * weight if weight > 1 else t
            total = t if total is None else total + t
    return total
