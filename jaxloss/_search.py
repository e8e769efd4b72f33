"""Exact k-nearest-neighbour search in blocks, and sharded search.

``knn`` scans the database in blocks of rows (``lax.fori_loop``) and keeps
a running top-k per query, so its peak memory is ``O(q_block * block + q * k)``
whatever the database size; queries are processed in blocks too. Euclidean,
squared Euclidean, cosine, dot and Hamming (0/1 codes) scores of a block are
one matrix product (GEMM) with ``precision=HIGHEST``; the ``k`` winners of
every query are then re-scored exactly (differences, not the Gram expansion),
so the returned distances are as accurate as a direct computation.

Ties are broken by the lowest database index, everywhere: ``lax.top_k`` is
stable (equal values keep their order, lowest position first), the running
top-k comes before the newer block when they merge, shards merge in device
order, and the final ``k`` are sorted by ``(distance, index)``.

``sharded_knn`` splits the database over the devices of a mesh with
``jax.shard_map``; each device searches its shard, and the partial top-k
lists are gathered and merged into the global answer with global indices.

Three scan engines share one contract (a running top-k of one query block
over the database rows below a limit): ``_scan`` (``lax.top_k`` per tile,
any metric), ``_gemm_scan`` (one matrix product per tile and a sort-free
selection, the GEMM metrics with ``k <= 64``) and ``_packed_scan`` (packed
Hamming codes, exact int32 keys). Their static configuration travels as one
``SearchPlan``; every piece of blocking (block counts, the last block pulled
back to the end, query blocks) comes from ``_tiles``. The retrieval metrics
that consume the returned indices live in ``_retrieval``.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _bits, _block_policy, _checks, _pairwise, _tiles
from . import _numerics as nx

__all__ = [
    "knn",
    "range_search",
    "sharded_knn",
    "METRICS",
]

METRICS = ("euclidean", "sqeuclidean", "cosine", "cityblock", "hamming", "dot")
_GEMM_METRICS = ("euclidean", "sqeuclidean", "cosine", "hamming", "dot")

HIGHEST = jax.lax.Precision.HIGHEST

# Default sizes (the block policy): queries per block, and a budget (in elements) for one
# (query block x database block) tile of scores; smaller tiles for elementwise metrics.
_QUERY_BLOCK = _block_policy.SEARCH_QUERY_BLOCK
_TILE_ELEMENTS = _block_policy.SEARCH_TILE_ELEMENTS
_SMALL_QUERY_BLOCK = _block_policy.SEARCH_ELEMENTWISE_QUERY_BLOCK
_SMALL_TILE_ELEMENTS = _block_policy.SEARCH_ELEMENTWISE_TILE_ELEMENTS


class SearchPlan(NamedTuple):
    """The static configuration of one search (hashable: a ``jax.jit`` static argument).

    Attributes:
      k: neighbours kept per query.
      metric: a name of ``METRICS`` (lower case).
      packed: queries and database are packed uint32 codes (``metric="hamming"``).
      precision: ``jax.lax.Precision`` of the tile matrix products.
      block: database rows per tile.
      qblock: queries per block.
      popcount: packed codes: the tile count kernel (``_bits.popcount_kernel``).
    """

    k: int
    metric: str
    packed: bool
    precision: object
    block: int
    qblock: int
    popcount: str = "plain32"


def _search_plan(k, metric, packed, precision, block, qblock, num_features):
    popcount = _bits.popcount_kernel(num_features) if packed else "plain32"
    return SearchPlan(k, metric, packed, precision, block, qblock, popcount)


# --------------------------------------------------------------------------- validation


def _check_k(k, m, fn):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{fn}: `k` must be a Python int (a static argument); got {k!r}.")
    if not 1 <= k <= m:
        raise ValueError(
            f"{fn}: `k` must lie in [1, database size = {m}]; got k={k}. Lower k or search a larger database."
        )
    return int(k)


def _check_inputs(queries, database, k, metric, fn):
    if not isinstance(metric, str):
        raise TypeError(f"{fn}: `metric` must be a string, one of {METRICS}; got {metric!r}.")
    metric = _checks.check_option(metric.lower(), "metric", METRICS, fn)
    queries = jnp.asarray(queries)
    database = jnp.asarray(database)
    _checks.check_ndim(queries, "queries", fn, ndim=2)
    _checks.check_ndim(database, "database", fn, ndim=2)
    if queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"{fn}: `queries` and `database` need the same number of features "
            f"(queries.shape[-1] == database.shape[-1]); got {queries.shape} and {database.shape}."
        )
    if queries.shape[1] == 0:
        raise ValueError(
            f"{fn}: `queries` and `database` need at least one feature (column; for packed codes "
            f"one uint32 word); got shapes {queries.shape} and {database.shape}."
        )
    packed = [a.dtype == jnp.uint32 for a in (queries, database)]
    if any(packed) and metric != "hamming":
        raise TypeError(
            f"{fn}: packed uint32 codes need metric='hamming'; got metric={metric!r} with dtypes "
            f"{queries.dtype} and {database.dtype}."
        )
    if metric == "hamming" and packed[0] != packed[1]:
        raise TypeError(
            f"{fn}: for metric='hamming' both `queries` and `database` must be packed uint32 "
            "codes (jaxloss.pack_bits) or both 0/1 codes; got dtypes "
            f"{queries.dtype} and {database.dtype}."
        )
    for a, name in ((queries, "queries"), (database, "database")):
        if jnp.issubdtype(a.dtype, jnp.complexfloating):
            raise TypeError(f"{fn}: `{name}` must be real; got dtype {a.dtype}.")
    k = _check_k(k, database.shape[0], fn)
    return queries, database, k, metric, all(packed)


def _check_filters(database_mask, exclude, q, m, fn):
    """``database_mask`` as an ``(m,)`` bool array and ``exclude`` as ``(q, e)`` int32 (or None)."""
    if database_mask is not None:
        database_mask = jnp.asarray(database_mask)
        if database_mask.dtype != jnp.bool_:
            raise TypeError(
                f"{fn}: `database_mask` must be a boolean array (True: the row may be returned); "
                f"got dtype {database_mask.dtype}."
            )
        if database_mask.shape != (m,):
            raise ValueError(
                f"{fn}: `database_mask` must have shape (database rows,) = ({m},); got shape "
                f"{database_mask.shape}."
            )
    if exclude is not None:
        exclude = jnp.asarray(exclude)
        if not jnp.issubdtype(exclude.dtype, jnp.integer) or exclude.dtype == jnp.bool_:
            raise TypeError(
                f"{fn}: `exclude` must hold integer database row indices (-1: padding); got dtype "
                f"{exclude.dtype}."
            )
        if exclude.ndim != 2:
            raise ValueError(
                f"{fn}: `exclude` must have 2 dimensions (queries, excluded rows per query); got "
                f"shape {exclude.shape}."
            )
        if exclude.shape[0] != q:
            raise ValueError(
                f"{fn}: `exclude` needs one row per query (exclude.shape[0] == queries.shape[0] = "
                f"{q}); got shape {exclude.shape}."
            )
        if exclude.shape[1] == 0:
            exclude = None
        else:
            # negative entries are padding; indices past int32 cannot name a row
            big = int(jnp.iinfo(jnp.int32).max)
            if jnp.iinfo(exclude.dtype).max > big:
                exclude = jnp.where(exclude > big, -1, exclude)
            exclude = exclude.astype(jnp.int32)
    return database_mask, exclude


# --------------------------------------------------------------------------- block scores


def _prepare(queries, database, metric, packed):
    """Queries in the compute dtype (scaled for the Gram form), per-row database data,
    the compute dtype and the output dtype. The database itself is not converted here:
    each block is converted as it is read, so it is never copied."""
    if packed:
        return queries.astype(jnp.uint32), None, jnp.dtype(jnp.uint32), jnp.dtype(jnp.int32)
    if metric == "hamming":
        # 0/1 codes: the count of differing bits is exact in float32 below 2**24 bits.
        cdt = jnp.dtype(jnp.float32 if queries.shape[1] < 2**24 else jnp.float64)
        q = (queries != 0).astype(cdt)
        ones = jnp.sum(database != 0, axis=1, dtype=cdt)
        return 2 * q, ones, cdt, nx.default_float_dtype()
    cdt = nx.compute_dtype(queries.dtype, database.dtype)
    out_dtype = nx.output_dtype(queries.dtype, database.dtype)
    q = queries.astype(cdt)
    if metric in ("euclidean", "sqeuclidean"):
        sq = _row_sums(database, cdt, lambda r: r * r)
        return 2 * q, sq, cdt, out_dtype
    if metric == "cosine":
        qs = _unit_scale(q)
        qn = jnp.sqrt(jnp.sum(qs * qs, axis=1, keepdims=True))
        norms = _row_norms(database, cdt)  # NaN or inf for a row with a non-finite coordinate
        inverse = jnp.where(jnp.isfinite(norms), nx.safe_divide(1.0, norms), jnp.nan)
        return nx.safe_divide(qs, qn), inverse, cdt, out_dtype
    return q, None, cdt, out_dtype


def _row_sums(x, cdt, term):
    """``sum_f term(x[:, f])`` in dtype ``cdt`` (fused: no converted copy of ``x``)."""
    return jnp.sum(term(x.astype(cdt)), axis=1)


def _pow2_exponent(c):
    """``e`` with ``2^-e c`` in ``[0.5, 1)`` for every finite ``c > 0`` (0 otherwise), clipped so
    that ``2^-e`` is finite: scaling by a power of two is exact, so identical rows stay identical
    and ties stay ties whatever the code path (vector or scalar) that scales them."""
    _, e = jnp.frexp(jnp.where(jnp.isfinite(c) & (c > 0), c, jnp.ones_like(c)))
    e = jnp.where(jnp.isfinite(c) & (c > 0), e, 0)
    return jnp.maximum(e, jnp.finfo(c.dtype).minexp + 1)


def _unit_scale(x):
    """Rows of ``x`` (last axis) times the power of two that brings their largest ``|x_f|`` into
    ``[0.5, 1)``: a norm or a cosine of the result is finite and exact from 1e-30 to 1e30
    (float32). A constant for the gradient (a cosine does not change with the scale)."""
    e = jax.lax.stop_gradient(_pow2_exponent(jnp.max(jnp.abs(x), axis=-1)))
    return x * jnp.ldexp(jnp.ones_like(x[..., :1]), -e[..., None])


def _row_norms(x, cdt):
    """Scale-free Euclidean norms of the rows of ``x``, in dtype ``cdt``.

    One pass computes ``sum x^2``; only when a row's sum is below
    ``tiny / eps`` (its squares underflow or lose digits, or the row is zero)
    or overflows do two more passes compute ``2^e |2^-e x|`` with ``2^e`` near
    ``max |x|`` for every row, so an ordinary database is read once.
    """
    sq = _row_sums(x, cdt, lambda r: r * r)
    info = jnp.finfo(cdt)
    unsafe = jnp.any((sq < info.tiny / info.eps) | (sq == jnp.inf))

    def scaled():
        e = _pow2_exponent(jnp.max(jnp.abs(x.astype(cdt)), axis=1))
        down = jnp.ldexp(jnp.ones((), cdt), -e)[:, None]
        return jnp.ldexp(jnp.sqrt(_row_sums(x, cdt, lambda r: (r * down) * (r * down))), e)

    return jax.lax.cond(unsafe, scaled, lambda: jnp.sqrt(sq))


def _finite_rows(x):
    """``(n,)`` bool: the rows of ``x`` whose coordinates are all finite (None for integer codes)."""
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        return None
    return jnp.all(jnp.isfinite(x), axis=1)


class Operands(NamedTuple):
    """What every scan of one search reads (see ``_operands``)."""

    q_raw: jax.Array
    qs: jax.Array
    aux: jax.Array | None
    mask: jax.Array | None
    query_ok: jax.Array | None
    out_dtype: object


def _operands(queries, database, metric, packed, database_mask):
    """The prepared queries and database data of one search, non-finite rows taken out.

    A database row with a NaN or infinite coordinate joins the rows that
    ``database_mask`` leaves out (``mask``: None when every row may be
    returned). A query with one is searched as a zero query (so nothing
    non-finite enters a tile or a gradient) and flagged False in
    ``query_ok``; ``_finish`` turns its results into padding.
    """
    query_ok = None if packed else _finite_rows(queries)
    if query_ok is not None:
        queries = jnp.where(query_ok[:, None], queries, jnp.zeros_like(queries))
    qs, aux, _, out_dtype = _prepare(queries, database, metric, packed)
    q_raw = _raw_queries(queries, metric, packed, qs)
    if metric in ("euclidean", "sqeuclidean", "cosine") and not packed:
        # |x|^2 (or 1 / |x|) is finite exactly where the row is (a squared norm that overflows
        # ranks the row last anyway): no second pass over the database
        row_ok = jnp.isfinite(aux)
    else:
        row_ok = None if packed else _finite_rows(database)
    mask = database_mask
    if row_ok is not None:
        mask = row_ok if mask is None else mask & row_ok
    return Operands(q_raw, qs, aux, mask, query_ok, out_dtype)


def _finish(key, query_ok):
    """Marks every result of a non-finite query missing (``inf`` key): it becomes padding."""
    return key if query_ok is None else jnp.where(query_ok[:, None], key, jnp.inf)


def _as_rows(blk, metric, packed, cdt):
    """A block of database rows in the compute dtype (0/1 values for hamming)."""
    if packed:
        return blk
    if metric == "hamming":
        return (blk != 0).astype(cdt)
    return blk.astype(cdt)


def _block_scores(qs, blk, aux, metric, packed, precision):
    """(qb, B) scores of one tile, larger is nearer (up to a per-query constant)."""
    if packed:
        return -_bits.hamming_counts(qs, blk).astype(jnp.float32)
    if metric == "cityblock":
        return -jnp.sum(jnp.abs(qs[:, None, :] - blk[None, :, :]), axis=-1)
    return _pairwise.ranking_scores(blk, qs, aux, metric=metric, precision=precision).T


def _sequential_sums(q, rows, terms):
    """``sum_f terms(q[:, f], rows[:, :, f])`` accumulated feature by feature, in order.

    Every (query, row) pair goes through the same sequence of rounded
    operations, so its value does not depend on the block, the shard, or the
    position of the row (a vectorised reduction may reassociate); duplicate
    rows always tie exactly.
    """
    qt = jnp.moveaxis(q, -1, 0)[:, :, None]  # (d, qb, 1)
    rt = jnp.moveaxis(rows, -1, 0)  # (d, qb, k)

    def step(acc, qr):
        return tuple(a + t for a, t in zip(acc, terms(*qr), strict=True)), None

    init = tuple(jnp.zeros(rows.shape[:2], rows.dtype) for _ in terms(qt[0], rt[0]))
    return jax.lax.scan(step, init, (qt, rt))[0]


def _exact(q, rows, metric, packed, num_features):
    """Exact distances (or inner products for "dot") of q (qb, d) to rows (qb, k, d)."""
    if packed:
        diff = jax.lax.population_count(q[:, None, :] ^ rows)
        return jnp.sum(diff.astype(jnp.int32), axis=-1, dtype=jnp.int32)
    if metric == "hamming":
        return jnp.sum(q[:, None, :] != rows, axis=-1) / num_features
    if metric in ("euclidean", "sqeuclidean"):
        (sq,) = _sequential_sums(q, rows, lambda a, b: ((a - b) * (a - b),))
        return nx.sqrt(sq) if metric == "euclidean" else sq
    if metric == "cityblock":
        return _sequential_sums(q, rows, lambda a, b: (nx.abs(a - b),))[0]
    if metric == "dot":
        return _sequential_sums(q, rows, lambda a, b: (a * b,))[0]
    # scale-free: each row scaled by a power of two near its largest |coordinate| (a constant
    # for the gradient: the cosine does not change with the scale) before anything is squared
    q = _unit_scale(q)
    rows = _unit_scale(rows)
    dot, qq, rr = _sequential_sums(q, rows, lambda a, b: (a * b, a * a + 0 * b, b * b))
    return 1 - nx.safe_divide(dot, nx.sqrt(qq) * nx.sqrt(rr))


def _auto_blocks(q, m, metric, packed, block_size, database_block_size):
    """``(queries per block, database rows per block)`` from the (checked) arguments, clipped."""
    if packed:
        qb = block_size or _PACKED_QUERY_BLOCK
        return min(qb, q), min(database_block_size or _PACKED_BLOCK, m)
    small = metric == "cityblock"  # no GEMM: smaller tiles stay in cache
    qb = block_size or min(q, _SMALL_QUERY_BLOCK if small else _QUERY_BLOCK)
    if database_block_size is None:
        tile = _SMALL_TILE_ELEMENTS if small else _TILE_ELEMENTS
        database_block_size = max(256, tile // max(qb, 1))
    return min(qb, q), min(database_block_size, m)


def _tiling(block_size, database_block_size, query_block_size, fn):
    """The checked ``(block_size, database_block_size)`` of a search: queries and database rows per block.

    ``query_block_size`` is the deprecated name of ``block_size`` (before
    0.4, ``block_size`` counted database rows). A call that still passes it
    is read with the former meanings: ``query_block_size`` queries and
    ``block_size`` database rows per block, with a ``DeprecationWarning``.
    """
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)
    database_block_size = _block_policy.check_block_size(database_block_size, "database_block_size", fn)
    if query_block_size is None:
        return block_size, database_block_size
    query_block_size = _block_policy.check_block_size(query_block_size, "query_block_size", fn)
    if block_size is not None and database_block_size is not None:
        raise TypeError(
            f"{fn}: `query_block_size` (deprecated) cannot be combined with both `block_size` and "
            f"`database_block_size`; pass `block_size` (queries per block) and `database_block_size` "
            f"(database rows per block) only; got query_block_size={query_block_size}, "
            f"block_size={block_size}, database_block_size={database_block_size}."
        )
    warnings.warn(
        f"{fn}: `query_block_size` is deprecated and will be removed in jaxloss 0.5; pass "
        "`block_size` (now the queries per block) and `database_block_size` (database rows per "
        "block). With `query_block_size`, `block_size` keeps its former meaning (database rows "
        "per block) in this call.",
        DeprecationWarning,
        stacklevel=3,
    )
    if database_block_size is None:
        database_block_size = block_size
    return query_block_size, database_block_size


_CHUNK = 64


def _block_top_k(s, k):
    """``lax.top_k(s, k)`` over the last axis, exact, ties to the lowest index, but cheaper.

    The row is cut into chunks of ``_CHUNK`` columns; the ``k`` chunks with the
    largest maxima contain the ``k`` largest entries (each of those is at most
    its chunk's maximum, and any chunk outside the ``k`` best has ``k`` larger or
    earlier-tied maxima before it), so one ``top_k`` over the chunk maxima and one
    over the ``k * _CHUNK`` candidates (kept in column order, so ties still go to
    the lowest index) replace a ``top_k`` over the whole row.
    """
    qb, b = s.shape
    if b < 8 * _CHUNK or 4 * k * _CHUNK > b:
        return jax.lax.top_k(s, k)
    chunks = _tiles.split_blocks(s, _CHUNK, axis=1, value=-jnp.inf)  # (qb, chunks, _CHUNK)
    _, best = jax.lax.top_k(jnp.max(chunks, axis=-1), k)
    best = jnp.sort(best, axis=-1)  # column order: stable ties pick the lowest index
    cand = jnp.take_along_axis(chunks, best[:, :, None], axis=1).reshape(qb, k * _CHUNK)
    vals, j = jax.lax.top_k(cand, k)
    cols = jnp.take_along_axis(best, j // _CHUNK, axis=1) * _CHUNK + j % _CHUNK
    return vals, jnp.minimum(cols, b - 1)


def _tile_rows(plan, x, aux, i, arange, limit, dtype, mask=None):
    """Block ``i`` of the database: ``(start, rows in dtype, aux rows, positions, valid)``.

    The last block is pulled back to end at ``m`` (no padded copy of the
    database); ``valid`` masks the rows the previous block already saw, those
    at or past ``limit`` and, with a database ``mask``, the rows it leaves out
    (one ``(block,)`` slice of the mask per tile). ``arange`` is
    ``arange(block)`` (int32).
    """
    m = x.shape[0]
    start = _tiles.block_start(i, plan.block, m).astype(jnp.int32)
    rows = _as_rows(jax.lax.dynamic_slice_in_dim(x, start, plan.block), plan.metric, plan.packed, dtype)
    a = None if aux is None else jax.lax.dynamic_slice_in_dim(aux, start, plan.block)
    pos = start + arange
    valid = _tiles.block_valid_at(i, plan.block, m, arange) & (pos < limit)
    if mask is not None:
        valid = valid & jax.lax.dynamic_slice_in_dim(mask, start, plan.block)
    return start, rows, a, pos, valid


def _scan(plan, qs, x, aux, limit, mask=None, thr=None):
    """Running top-k of one query block over the rows of ``x`` valid below ``limit``.

    Returns the scores (qb, k), larger nearer, ``-inf`` for missing rows, and
    the local row indices, ties resolved by the lowest index. Rows where
    ``mask`` (``(m,)`` bool, optional) is False are missing. With a per-query
    score threshold ``thr`` (``(qb,)``) it also returns, per query, the number
    of valid rows whose score is ``>= thr`` (a third output).
    """
    k, block = plan.k, plan.block
    qb = qs.shape[0]
    m = x.shape[0]
    nblocks = _tiles.num_blocks(m, block)
    kb = min(k, block)
    arange = jnp.arange(block, dtype=jnp.int32)

    def tile(i):
        _, blk, a, pos, ok = _tile_rows(plan, x, aux, i, arange, limit, qs.dtype, mask)
        s = _block_scores(qs, blk, a, plan.metric, plan.packed, plan.precision)
        s = jnp.where(ok[None, :], s, -jnp.inf)
        bs, bj = _block_top_k(s, kb)
        if thr is None:
            return bs, pos[bj]
        return bs, pos[bj], jnp.sum(ok[None, :] & (s >= thr[:, None]), axis=1, dtype=jnp.int32)

    if nblocks == 1:
        return tile(0)

    def body(i, carry):
        rs, ri = carry[:2]
        out = tile(i)
        bs, bi = out[:2]
        cs = jnp.concatenate([rs, bs], axis=1)  # running first: ties keep the lower index
        ci = jnp.concatenate([ri, bi], axis=1)
        ts, tj = jax.lax.top_k(cs, k)
        merged = (ts, jnp.take_along_axis(ci, tj, axis=1))
        return merged if thr is None else merged + (carry[2] + out[2],)

    first = tile(0)
    s0, i0 = first[:2]
    if kb < k:
        s0 = jnp.concatenate([s0, jnp.full((qb, k - kb), -jnp.inf, s0.dtype)], axis=1)
        i0 = jnp.concatenate([i0, jnp.full((qb, k - kb), m, jnp.int32)], axis=1)
    return jax.lax.fori_loop(1, nblocks, body, (s0, i0) + first[2:])


# --------------------------------------------------------------------------- GEMM scan
#
# For the GEMM metrics a tile is computed as (database rows, queries), one
# matrix product ``block @ queries.T``; the selection then runs down the
# columns, vectorised over the queries, with no ``lax.top_k``:
#
# 1. each run of ``R`` consecutive rows is reduced to its largest score;
# 2. the ``k`` best runs are popped (largest maximum, ties to the lower run);
#    the ``k`` best scores of the block lie in those runs (a score outside them
#    has ``k`` run maxima before it, each larger, or equal with a lower index);
# 3. their ``k * R`` scores are gathered from the tile and the ``k`` best popped
#    (largest score, ties to the lowest index);
# 4. these are merged with the running top-k the same way.

_GEMM_MAX_K = 64


def _runs(block, k):
    """Rows per run for a block: the power of two near ``sqrt(block / k)`` (1: no runs)."""
    r = 1 << max(0, math.ceil(math.log2(max(1.0, math.sqrt(block / k)))))
    return r if block >= 4 * k * r and block % r == 0 else 1


def _run_extremes(vals, r, largest, inside=None):
    """The largest (or smallest) value of each run of ``r`` rows of a (rows, queries) tile.

    With ``inside`` (a bool tile) also the number of True entries per column,
    reduced in the same pass over the tile (one variadic reduction), so that
    a range search does not read or recompute the tile twice.
    """
    b, n = vals.shape
    v = vals.reshape(b // r, r, n)
    if inside is None:
        return jnp.max(v, axis=1) if largest else jnp.min(v, axis=1)
    c = inside.astype(jnp.int32).reshape(b // r, r, n)
    pick = jnp.maximum if largest else jnp.minimum
    init = (jnp.array(-jnp.inf if largest else _INT_MAX, vals.dtype), jnp.array(0, jnp.int32))
    ext, cnt = jax.lax.reduce((v, c), init, lambda x, y: (pick(x[0], y[0]), x[1] + y[1]), (1,))
    return ext, jnp.sum(cnt, axis=0, dtype=jnp.int32)


def _pop_best(vals, idx, k):
    """The ``k`` largest ``vals`` of every column, ties to the lowest ``idx`` (distinct per column).

    Returns ``(values, indices)``, each ``(k, n)``, best first; ``-inf`` values
    are missing entries.
    """

    def body(t, carry):
        v, ov, oi = carry
        top = jnp.max(v, axis=0)
        j = jnp.min(jnp.where(v == top[None, :], idx, _INT_MAX), axis=0)
        return jnp.where(idx == j[None, :], -jnp.inf, v), ov.at[t].set(top), oi.at[t].set(j)

    ov = jnp.full((k,) + vals.shape[1:], -jnp.inf, vals.dtype)
    oi = jnp.zeros((k,) + vals.shape[1:], jnp.int32)
    return jax.lax.fori_loop(0, k, body, (vals, ov, oi))[1:]


def _gemm_scan(plan, qs, x, aux, limit, mask=None, thr=None):
    """``_scan`` for the GEMM metrics (same results), selecting with ``_pop_best``."""
    k, block = plan.k, plan.block
    qb = qs.shape[0]
    m = x.shape[0]
    r = _runs(block, k)
    nblocks = _tiles.num_blocks(m, block)
    rows_in_block = jnp.arange(block, dtype=jnp.int32)

    def step(i, carry):
        rs, ri = carry[:2]  # (k, qb) running scores (descending) and indices
        start, blk, a, pos, valid = _tile_rows(plan, x, aux, i, rows_in_block, limit, qs.dtype, mask)
        ok = valid[:, None]
        g = _pairwise.ranking_scores(blk, qs, a, metric=plan.metric, precision=plan.precision)  # (block, qb)
        s = jnp.where(ok, g, -jnp.inf)
        within = ()
        if thr is not None and r == 1:  # rows within the radius (range_search)
            within = (carry[2] + jnp.sum(s >= thr[None, :], axis=0, dtype=jnp.int32),)
        if r > 1:
            runs = jnp.arange(block // r, dtype=jnp.int32)[:, None]
            if thr is None:
                run_max = _run_extremes(s, r, True)
            else:
                run_max, inside = _run_extremes(s, r, True, s >= thr[None, :])
                within = (carry[2] + inside,)
            _, best = _pop_best(run_max, runs, k)
            rid = best[:, None, :] * r + jnp.arange(r, dtype=jnp.int32)[None, :, None]  # (k, r, qb)
            cand = jnp.take_along_axis(s, rid.reshape(k * r, qb), axis=0)
            bs, bi = _pop_best(cand, start + rid.reshape(k * r, qb), k)
        else:
            bs, bi = _pop_best(s, jnp.broadcast_to(pos[:, None], s.shape), k)
        return _pop_best(jnp.concatenate([rs, bs]), jnp.concatenate([ri, bi]), k) + within

    init = (jnp.full((k, qb), -jnp.inf, qs.dtype), jnp.full((k, qb), m, jnp.int32))
    if thr is not None:
        init += (jnp.zeros((qb,), jnp.int32),)
    out = jax.lax.fori_loop(0, nblocks, step, init)
    rs, ri = out[:2]
    return (rs.T, jnp.where(rs.T == -jnp.inf, 0, ri.T)) + out[2:]


# --------------------------------------------------------------------------- packed Hamming search
#
# Packed codes have a specialised scan (``_packed_scan``): a tile is laid out
# (database rows, queries), so the innermost, vectorised loop runs over the
# queries of the block (their words, transposed once per query block, stay
# in L1) and each database word is broadcast; XLA then emits a vector
# ``popcount`` (``vpopcntd`` on AVX-512) without transposing the database.
# Each count is packed with its row in the block into one int32 key
# ``count << shift | row`` (keys are distinct, and ordering keys is ordering
# by (distance, index)), and the selection never materialises the tile:
#
# 1. the kernel reduces every run of ``R`` consecutive rows to its smallest
#    key (fused: the (rows, queries) tile is never written to memory);
# 2. the ``k`` smallest run minima are popped (``k`` vectorised min rounds);
#    the ``k`` smallest keys of the block lie in those ``k`` runs (any key
#    outside them has ``k`` smaller run minima before it);
# 3. the ``k * R`` rows of those runs are re-counted (a gather) and the ``k``
#    smallest keys popped;
# 4. these are merged with the running top-k (running entries first on equal
#    counts: they have lower indices).
#
# Every comparison is on exact integers, so the result is exactly faiss
# ``IndexBinaryFlat``'s distances with ties to the lowest index.

_PACKED_QUERY_BLOCK = _block_policy.SEARCH_PACKED_QUERY_BLOCK
_PACKED_BLOCK = _block_policy.SEARCH_PACKED_DATABASE_BLOCK
_PACKED_MAX_K = 64  # beyond this the min rounds cost more than lax.top_k
_INT_MAX = np.int32(2**31 - 1)


class PackedPlan(NamedTuple):
    """The layout of the fast packed scan (``_packed_scan``).

    Attributes:
      k: neighbours kept per query.
      block: database rows per tile (a multiple of ``runs``).
      runs: rows per run ``R`` (1: no runs).
      shift: a key is ``count << shift | row``.
      position_bits: bits that order the ``2 k`` merged entries.
      popcount: the tile count kernel (a key of ``_bits.POPCOUNT_KERNELS``).
    """

    k: int
    block: int
    runs: int
    shift: int
    position_bits: int
    popcount: str


def _packed_plan(plan, w):
    """The ``PackedPlan`` of ``plan`` for codes of ``w`` words, or None (use ``_scan``).

    ``R`` (rows per run) is the power of two near ``sqrt(block / k)``, which
    balances the two selection rounds (``block / R`` run minima, ``k * R``
    candidates), except 32, taken as 64 (16 in a small block): XLA's CPU
    reduction of runs of 32 rows was 3-4x slower than of 64 in every tile
    shape measured (Xeon, AVX2 and AVX-512). The block is rounded down to a
    multiple of ``R``.
    """
    k, block = plan.k, plan.block
    cb = (_bits.WORD_BITS * w + 1).bit_length()  # a count, or the sentinel 32 w + 1
    shift = 31 - cb
    pb = max(1, (2 * k - 1).bit_length())
    if k > _PACKED_MAX_K or cb + pb > 31 or block > 2**shift:
        return None
    r = 1 << max(0, math.ceil(math.log2(max(1.0, math.sqrt(block / k)))))
    if r == 32:  # XLA's CPU reduction of 32-row runs of int32/uint16 is 3-4x slower than of 64
        r = 64 if block - block % 64 >= 4 * k * 64 else 16
    if block - block % r < 4 * k * r:
        return PackedPlan(k, block, 1, shift, pb, plan.popcount)
    return PackedPlan(k, block - block % r, r, shift, pb, plan.popcount)


def _pop_smallest(keys, k):
    """The ``k`` smallest int32 keys of every column (distinct or ``_INT_MAX``), ascending: ``(k, n)``."""

    def body(t, carry):
        a, out = carry
        low = jnp.min(a, axis=0)
        return jnp.where(a == low[None, :], _INT_MAX, a), out.at[t].set(low)

    out = jnp.full((k,) + keys.shape[1:], _INT_MAX, jnp.int32)
    return jax.lax.fori_loop(0, k, body, (keys, out))[1]


def _packed_scan(plan, q, x, limit, row_mask=None, thr=None):
    """Running top-k of one query block ``q (qb, w)`` over the rows of ``x`` below ``limit``.

    ``plan`` is a ``PackedPlan``. Returns ``(counts, indices)``, each
    ``(qb, k)``, sorted by (count, index); missing rows (and those where the
    ``(m,)`` bool ``row_mask`` is False) have the count ``32 w + 1`` and the index
    ``x.shape[0]``. With ``thr`` (``(qb,)`` int32) a third output counts the
    valid rows within ``thr`` differing bits of each query.
    """
    k, block, r, shift, pb = plan.k, plan.block, plan.runs, plan.shift, plan.position_bits
    qb, w = q.shape
    m = x.shape[0]
    nblocks = _tiles.num_blocks(m, block)
    mask = (1 << shift) - 1
    sentinel = _bits.WORD_BITS * w + 1
    rows_in_block = jnp.arange(block, dtype=jnp.int32)
    q_lanes = _bits.query_lanes(q, plan.popcount)

    def step(i, carry):
        rc, ri = carry[:2]  # (k, qb) running counts and indices, ascending
        # The last block is pulled back to end at m; rows seen before are masked.
        start = _tiles.block_start(i, block, m).astype(jnp.int32)
        pos = start + rows_in_block
        valid = _tiles.block_valid_at(i, block, m, rows_in_block) & (pos < limit)
        if row_mask is not None:
            valid = valid & jax.lax.dynamic_slice_in_dim(row_mask, start, block)
        valid = valid[:, None]
        rows = jax.lax.dynamic_slice_in_dim(x, start, block)
        counts = _bits.tile_counts(rows, q_lanes, plan.popcount)  # (block, qb), uint16 or int32
        within = ()
        if thr is not None:  # rows within the radius (range_search)
            inside = valid & (counts.astype(jnp.int32) <= thr[None, :])
            within = (carry[2] + jnp.sum(inside, axis=0, dtype=jnp.int32),)
        if r > 1:
            # the smallest count of each run (missing rows count as the sentinel), keyed by the run
            low = jnp.min(jnp.where(valid, counts, sentinel).reshape(block // r, r, qb), axis=1)
            run_keys = (low.astype(jnp.int32) << shift) | jnp.arange(block // r, dtype=jnp.int32)[:, None]
            best = _pop_smallest(jnp.where(low >= sentinel, _INT_MAX, run_keys), k)
            run = jnp.where(best == _INT_MAX, 0, best & mask)
            rid = run[:, None, :] * r + jnp.arange(r, dtype=jnp.int32)[None, :, None]  # (k, r, qb)
            cand = x[start + rid]  # (k, r, qb, w): the rows of the k best runs
            cnt = jnp.sum(
                jax.lax.population_count(cand ^ q[None, None]).astype(jnp.int32), axis=-1, dtype=jnp.int32
            )
            ok = (
                (best != _INT_MAX)[:, None, :]
                & _tiles.block_valid_at(i, block, m, rid)
                & (start + rid < limit)
            )
            if row_mask is not None:  # the masked rows of a selected run
                ok = ok & row_mask[start + rid]
            keys = jnp.where(ok, (cnt << shift) | rid, _INT_MAX).reshape(k * r, qb)
        else:
            keys = jnp.where(valid, (counts.astype(jnp.int32) << shift) | rows_in_block[:, None], _INT_MAX)
        bk = _pop_smallest(keys, k)
        bc = jnp.where(bk == _INT_MAX, sentinel, bk >> shift)
        bi = jnp.where(bk == _INT_MAX, m, start + (bk & mask))
        cc = jnp.concatenate([rc, bc])  # running first: equal counts keep the lower index
        ci = jnp.concatenate([ri, bi])
        order = jnp.arange(2 * k, dtype=jnp.int32)[:, None]
        j = _pop_smallest((cc << pb) | order, k) & ((1 << pb) - 1)
        return (jnp.take_along_axis(cc, j, axis=0), jnp.take_along_axis(ci, j, axis=0)) + within

    init = (jnp.full((k, qb), sentinel, jnp.int32), jnp.full((k, qb), m, jnp.int32))
    if thr is not None:
        init += (jnp.zeros((qb,), jnp.int32),)
    out = jax.lax.fori_loop(0, nblocks, step, init)
    return (out[0].T, out[1].T) + out[2:]


def _packed_search(packed_plan, q, x, qblock, limit, mask=None, thr=None):
    """Exact top-k of packed codes, query-blocked: (counts, indices, key[, within]) as ``_search_local``."""
    w = q.shape[1]

    def one(args):
        c, idx, *within = _packed_scan(packed_plan, args[0], x, limit, mask, *args[1:])
        return (c, idx, jnp.where(c > _bits.WORD_BITS * w, jnp.inf, c.astype(jnp.float32)), *within)

    return _tiles.map_blocks(one, (q,) if thr is None else (q, thr), qblock)


def _sort_key(dist, metric):
    return -dist if metric == "dot" else dist


def _search_local(plan, q_raw, qs, x, aux, limit, mask=None, thr=None):
    """Exact top-k of every query over the rows of x below ``limit``, query-blocked.

    ``q_raw`` are the queries for the exact re-scoring, ``qs`` and ``aux`` the
    scaled queries and per-row database data of ``_prepare``. Returns
    (distances, indices, key): sorted by (key, index), key ascending (the
    distance, or minus the inner product), ``inf`` key for missing rows. Rows
    where ``mask`` is False are missing. With a per-query threshold ``thr`` on
    the ranking scores (``_score_threshold``) a fourth output counts, per
    query, the valid rows whose score reaches it.
    """
    metric, packed = plan.metric, plan.packed
    num_features = x.shape[1]
    packed_plan = _packed_plan(plan, num_features) if packed else None
    if packed_plan is not None:
        return _packed_search(packed_plan, qs, x, plan.qblock, limit, mask, thr)
    scan = _gemm_scan if metric in _GEMM_METRICS and not packed and plan.k <= _GEMM_MAX_K else _scan
    if thr is not None and packed:  # the lax.top_k scan ranks packed codes by minus the count
        thr = -thr.astype(jnp.float32)

    def one(args):
        qr, qsb, *t = args
        s, idx, *within = scan(plan, qsb, x, aux, limit, mask, *t)
        missing = s == -jnp.inf
        rows = _as_rows(x[jnp.clip(idx, 0, x.shape[0] - 1)], metric, packed, qs.dtype)
        d = _exact(qr, rows, metric, packed, num_features)
        key = jnp.where(missing, jnp.inf, _sort_key(d, metric).astype(jnp.float32 if packed else d.dtype))
        order = jnp.lexsort((idx, key), axis=-1)
        take = functools.partial(jnp.take_along_axis, indices=order, axis=1)
        return (take(d), take(idx), take(key), *within)

    return _tiles.map_blocks(one, (q_raw, qs) if thr is None else (q_raw, qs, thr), plan.qblock)


def _drop_excluded(d, idx, key, exclude, k):
    """The first ``k`` entries of sorted candidate lists that ``exclude`` does not name.

    ``d, idx, key`` are ``(q, k')`` lists sorted by (key, index) (``inf`` key:
    missing); ``exclude`` is ``(q, e)`` row indices (``-1``, or any index that
    is not a candidate, changes nothing). When ``k' >= k + e`` (or the lists
    hold every allowed row), at most ``e`` candidates are dropped, so the
    result is exactly the ``k`` nearest rows that are not excluded. A stable
    ``top_k`` over the keep flags keeps the (key, index) order.
    """
    hit = jnp.any(idx[:, :, None] == exclude[:, None, :], axis=-1)
    drop = hit | (key == jnp.inf)
    _, j = jax.lax.top_k(-drop.astype(jnp.int32), k)
    take = functools.partial(jnp.take_along_axis, indices=j, axis=1)
    return take(d), take(idx), jnp.where(take(drop), jnp.inf, take(key))


_PACKED_PAD = np.int32(2**31 - 1)  # faiss's padding distance for binary indexes


def _padded(d, idx, key, metric, packed, out_dtype):
    """Missing entries (``inf`` key) as index ``-1`` and the padding distance of the metric."""
    missing = key == jnp.inf
    if packed:
        pad = _PACKED_PAD
    else:
        pad = -jnp.inf if metric == "dot" else jnp.inf
    return jnp.where(missing, pad, d).astype(out_dtype), jnp.where(missing, -1, idx)


def _raw_queries(queries, metric, packed, qs):
    if packed:
        return qs
    if metric in ("euclidean", "sqeuclidean", "hamming"):
        return qs / 2  # exact: undoes the exact scaling by 2
    if metric == "cosine":
        return queries.astype(qs.dtype)
    return qs


def _candidates(plan, exclude, m):
    """The plan that fetches enough candidates for ``exclude``: ``k + e`` (at most ``m``)."""
    if exclude is None:
        return plan
    return plan._replace(k=min(plan.k + exclude.shape[1], m))


@functools.partial(jax.jit, static_argnames=("plan",))
def _knn(queries, database, database_mask, exclude, plan):
    ops = _operands(queries, database, plan.metric, plan.packed, database_mask)
    m = database.shape[0]
    wide = _candidates(plan, exclude, m)
    d, idx, key = _search_local(wide, ops.q_raw, ops.qs, database, ops.aux, m, ops.mask)
    if exclude is not None:
        d, idx, key = _drop_excluded(d, idx, key, exclude, plan.k)
    return _padded(d, idx, _finish(key, ops.query_ok), plan.metric, plan.packed, ops.out_dtype)


def knn(
    queries: ArrayLike,
    database: ArrayLike,
    k: int,
    *,
    metric: str = "euclidean",
    block_size: int | None = None,
    database_block_size: int | None = None,
    precision=HIGHEST,
    database_mask: ArrayLike | None = None,
    exclude: ArrayLike | None = None,
    query_block_size: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Exact k nearest neighbours of every query in a database, in bounded memory.

    For each query row ``q_i`` the ``k`` database rows ``x_j`` with the smallest
    ``dist(q_i, x_j)`` (for ``metric="dot"``: the largest ``q_i . x_j``),
    nearest first, ties broken by the lowest index ``j``.

    Metrics (``dist``):

    * ``"euclidean"``: ``||q - x||_2``; ``"sqeuclidean"``: ``||q - x||_2^2``.
      Selected with the Gram expansion ``||q||^2 - 2 q.x + ||x||^2`` (one GEMM
      per block), then the ``k`` winners are re-scored exactly from ``q - x``.
    * ``"cosine"``: ``1 - q.x / (||q|| ||x||)``, with the cosine of a zero
      vector taken as 0 (distance 1; scipy gives NaN). Scale-free: every row
      is divided by its largest absolute coordinate before any square is
      taken, so rows scaled by 1e-30 ... 1e30 (float32; 1e-300 ... 1e300 in
      float64) have the same neighbours and distances.
    * ``"cityblock"``: ``sum |q - x|`` (no GEMM; smaller blocks).
    * ``"hamming"``: for boolean or 0/1 codes (any non-zero value is a 1 bit),
      the fraction of differing bits as ``scipy.spatial.distance.cdist(...,
      "hamming")``; for packed ``uint32`` codes (``jaxloss.pack_bits``) the
      number of differing bits (int32), computed with ``population_count`` of
      the XOR, as faiss ``IndexBinaryFlat``. On a CPU the codes are counted in
      16-bit lanes (twice as many lanes per vector instruction, half the bytes
      per count), elsewhere in 32-bit lanes, and on a CPU without a vector
      popcount instruction (x86 without AVX-512 BITALG) a carry-save adder
      tree adds the words before counting; every kernel gives the same exact
      counts (the rule: docs/benchmarks.md, "Exact search").
    * ``"dot"``: maximum inner product search; returns the inner products,
      largest first.

    Memory: the queries are read in blocks of ``block_size`` rows and the
    database in blocks of ``database_block_size`` rows; the peak extra memory
    is ``O(block_size * database_block_size + q * k + m)`` (the ``m`` term:
    one norm per database row), never ``O(q * m)``, and the database is never
    copied. By default ``block_size = min(q, 512)`` and
    ``database_block_size`` keeps one tile of scores near 16 MiB
    (``min(q, 128)`` and 4 MiB for cityblock; for packed codes ``min(q,
    256)`` queries and 16,384 rows, one tile of 16-bit counts on a CPU).
    The results never depend on the block sizes, only the memory and the
    speed do.

    Selection (``k <= 64``): a tile is laid out (database rows, queries); each
    run of ``R ~ sqrt(database_block_size / k)`` rows is reduced to its best score, the
    ``k`` best runs are taken, and the ``k`` best of their ``k R`` rows are
    merged into the running top-k, by rounds of vectorised max (min) over the
    rows, with no sort; packed counts travel as exact int32 keys
    ``count * 2^s + row``. Larger ``k`` uses ``lax.top_k`` on each tile. Both
    return the same neighbours.

    Non-finite rows stay local: a database row with a NaN or infinite
    coordinate is never returned; its distance is taken as ``+inf`` (for
    ``"dot"``: its inner product as ``-inf``), so it is ranked after every
    finite row and, like a row that ``database_mask`` leaves out, appears
    only as padding (index ``-1``). A query row with a NaN or infinite
    coordinate gets a row of padding (index ``-1``, distance ``+inf``,
    ``-inf`` for ``"dot"``) with a zero gradient; the other queries'
    results do not change. Packed ``uint32`` codes are always finite. (The
    Euclidean metrics rank by ``2 q.x - |x|^2``: a finite row whose squared
    norm overflows, coordinates beyond about 1e19 in float32, is left out
    the same way.)

    Gradients: the indices are piecewise constant; the distances are
    differentiable with respect to both inputs through the exact re-scoring of
    the winners, with the subgradient 0 where a Euclidean distance or a
    cityblock term ``|q_f - x_f|`` is 0 (PyTorch's ``cdist``), so coincident
    points give finite gradients.

    Filtered search (faiss's ``IDSelector``): only the rows ``j`` with
    ``database_mask[j]`` True, and not named in the query's row of ``exclude``,
    may be returned. The mask is applied to every database block as it is
    scored (a ``(database_block_size,)`` slice per tile, so the speed is that of the
    unfiltered search); for ``exclude`` the scan keeps ``k + e`` candidates per
    query (``e = exclude.shape[1]``) and drops the excluded ones afterwards,
    which is exact because at most ``e`` of them can be excluded (with
    ``k + e > 64`` the tiles use the ``lax.top_k`` selection; the comparison
    with the excluded rows takes ``O(q (k + e) e)``). Neither builds a
    ``(q, m)`` mask. When fewer than ``k`` rows are allowed, the tail of a
    result row has the index ``-1`` and the distance ``+inf`` (``-inf`` for
    ``"dot"``, whose results are largest first; ``2**31 - 1`` for packed
    codes, as faiss's binary indexes), with a zero gradient.

    ``knn`` is jitted internally; it also runs inside ``jax.jit`` with ``k``,
    ``metric``, ``block_size`` and ``database_block_size`` static
    (``jax.jit(knn, static_argnames=("k", "metric"))``).

    Args:
      queries: ``(q, d)`` query rows (uint32 ``(q, w)`` for packed codes).
      database: ``(m, d)`` database rows (uint32 ``(m, w)`` for packed codes).
      k: number of neighbours, ``1 <= k <= m`` (static).
      metric: one of ``"euclidean"``, ``"sqeuclidean"``, ``"cosine"``,
        ``"cityblock"``, ``"hamming"``, ``"dot"`` (static).
      block_size: queries per block (``None``: automatic).
      database_block_size: database rows per block (``None``: automatic).
      precision: ``jax.lax.Precision`` of the block matrix products
        (``HIGHEST`` by default, so GPUs do not use TF32).
      database_mask: optional ``(m,)`` bool: the rows that may be returned.
      exclude: optional ``(q, e)`` integer: per query, database row indices
        it must not return; negative entries (``-1``) are padding, repeats
        are allowed.
      query_block_size: deprecated (removed in 0.5): the former name of
        ``block_size``. When it is given, ``block_size`` keeps its former
        meaning (database rows per block) in that call; a
        ``DeprecationWarning`` says so.

    Returns:
      ``(distances, indices)``, each ``(q, k)``: distances (inner products for
      ``"dot"``) in the input float dtype (half precision is computed in
      float32; int32 counts for packed codes; the default float dtype for 0/1
      codes), and int32 database row indices (``-1`` where fewer than ``k``
      rows are allowed).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import knn
      >>> x = jnp.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 1.0]])
      >>> d, i = knn(jnp.array([[0.1, 0.0]]), x, 3)
      >>> i
      Array([[0, 2, 3]], dtype=int32)
      >>> [round(float(v), 4) for v in d[0]]
      [0.1, 0.9, 1.005]
      >>> d, i = knn(jnp.array([[0.1, 0.0]]), x, 3, database_mask=jnp.array([True, True, False, False]),
      ...            exclude=jnp.array([[0, -1]]))
      >>> i
      Array([[ 1, -1, -1]], dtype=int32)

    Reference: brute force ``scipy.spatial.distance.cdist`` + stable argsort
    (filtered: masked and excluded rows set to ``inf`` first); gradients
    against ``torch.cdist``; faiss ``IndexFlatL2`` / ``IndexBinaryFlat`` in the
    benchmark.
    """
    fn = "knn"
    queries, database, k, metric, packed = _check_inputs(queries, database, k, metric, fn)
    block_size, database_block_size = _tiling(block_size, database_block_size, query_block_size, fn)
    database_mask, exclude = _check_filters(database_mask, exclude, queries.shape[0], database.shape[0], fn)
    qblock, block = _auto_blocks(
        queries.shape[0], database.shape[0], metric, packed, block_size, database_block_size
    )
    if queries.shape[0] == 0:
        return _empty_result(queries, database, k, metric, packed)
    plan = _search_plan(k, metric, packed, precision, block, qblock, database.shape[1])
    return _knn(queries, database, database_mask, exclude, plan)


def _empty_result(queries, database, k, metric, packed):
    if packed:
        dt = jnp.int32
    elif metric == "hamming":
        dt = nx.default_float_dtype()
    else:
        dt = nx.as_float(queries, database)[-1]
    return jnp.zeros((0, k), dt), jnp.zeros((0, k), jnp.int32)


# --------------------------------------------------------------------------- range search


def _score_threshold(q_raw, radius, metric, packed, num_features):
    """Per-query threshold on the ranking scores of ``_search_local``: ``dist <= radius``
    (``"dot"``: ``q.x >= radius``) where the score reaches it.

    The scores are the Gram forms of ``_pairwise.ranking_scores`` (Euclidean
    and 0/1 Hamming: ``|q|^2 - |q - x|^2``; cosine: the cosine; cityblock:
    minus the distance); packed codes: the largest count within the radius
    (int32).
    """
    if packed:
        return jnp.floor(jnp.clip(radius, -1, 2**30)).astype(jnp.int32)
    cdt = q_raw.dtype
    r = radius.astype(cdt)
    if metric in ("euclidean", "sqeuclidean"):
        qn = jnp.sum(q_raw * q_raw, axis=1)
        t = qn - (r * r if metric == "euclidean" else r)
    elif metric == "hamming":
        t = jnp.sum(q_raw, axis=1) - r * num_features
    elif metric == "cosine":
        t = 1 - r
    elif metric == "cityblock":
        t = -r
    else:  # dot
        t = r
    # finite: a missing row's score, -inf, never reaches it (an infinite radius counts every row)
    return jnp.maximum(t, jnp.finfo(cdt).min)


def _within(d, radius, metric):
    return d >= radius if metric == "dot" else d <= radius


@functools.partial(jax.jit, static_argnames=("plan", "max_results"))
def _range(queries, database, radius, database_mask, exclude, plan, max_results):
    metric, packed = plan.metric, plan.packed
    ops = _operands(queries, database, metric, packed, database_mask)
    q_raw, qs = ops.q_raw, ops.qs
    q, m = queries.shape[0], database.shape[0]
    radius = jnp.broadcast_to(radius, (q,))
    thr = _score_threshold(q_raw, radius, metric, packed, database.shape[1])
    d, idx, key, seen = _search_local(
        _candidates(plan, exclude, m), q_raw, qs, database, ops.aux, m, ops.mask, thr
    )
    if exclude is not None:
        d, idx, key = _drop_excluded(d, idx, key, exclude, plan.k)
        # the scan counted the excluded rows too: take out each distinct allowed one within the radius
        e = exclude.shape[1]
        safe = jnp.clip(exclude, 0, m - 1)
        rows = _as_rows(database[safe], metric, packed, qs.dtype)
        named = (exclude >= 0) & (exclude < m)
        if ops.mask is not None:  # rows the scan never counted (filtered out or non-finite)
            named = named & ops.mask[safe]
        earlier = jnp.arange(e)[None, :] < jnp.arange(e)[:, None]  # (e, e): column j before row i
        repeat = jnp.any((exclude[:, :, None] == exclude[:, None, :]) & earlier[None], axis=-1)
        dist = _exact(q_raw, rows, metric, packed, database.shape[1])
        hits = named & ~repeat & _within(dist, radius[:, None], metric)
        seen = seen - jnp.sum(hits, axis=1, dtype=jnp.int32)
    key = _finish(key, ops.query_ok)
    inside = _within(d, radius[:, None], metric) & (key != jnp.inf)
    key = jnp.where(inside, key, jnp.inf)
    found = jnp.sum(inside, axis=1, dtype=jnp.int32)
    # Fewer than k inside: the list holds all of them, and `found` is exact. Otherwise the
    # scan's count (from the ranking scores) says how many more there are.
    counts = jnp.where(found < plan.k, found, jnp.maximum(seen, plan.k))
    if ops.query_ok is not None:  # a non-finite query finds nothing
        counts = jnp.where(ops.query_ok, counts, 0)
    d, idx = _padded(d, idx, key, metric, packed, ops.out_dtype)
    if max_results > plan.k:  # more results asked for than database rows
        extra = max_results - plan.k
        d = jnp.concatenate([d, jnp.full((q, extra), _pad_value(metric, packed, d.dtype))], 1)
        idx = jnp.concatenate([idx, jnp.full((q, extra), -1, jnp.int32)], 1)
    return d, idx, counts


def _pad_value(metric, packed, dtype):
    if packed:
        return jnp.asarray(_PACKED_PAD, dtype)
    return jnp.asarray(-jnp.inf if metric == "dot" else jnp.inf, dtype)


def range_search(
    queries: ArrayLike,
    database: ArrayLike,
    radius,
    *,
    max_results: int,
    metric: str = "euclidean",
    block_size: int | None = None,
    database_block_size: int | None = None,
    precision=HIGHEST,
    database_mask: ArrayLike | None = None,
    exclude: ArrayLike | None = None,
    query_block_size: int | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Every database row within ``radius`` of each query, nearest first, in bounded memory.

    For each query ``q_i``: the rows ``x_j`` with ``dist(q_i, x_j) <= radius``
    (for ``metric="dot"``: the rows with ``q_i . x_j >= radius``, largest
    first), sorted by distance with ties to the lowest index ``j``; the first
    ``max_results`` of them are returned, and ``counts[i]`` is how many rows
    there are in all (it may exceed ``max_results``).

    It is the blocked search of ``knn`` with ``k = min(max_results, m)``: the
    same scan selects the ``k`` nearest rows (and re-scores them exactly) and
    counts, tile by tile, the rows whose ranking score (the GEMM form of the
    distance) is within the radius (for the GEMM metrics in the same
    reduction that finds each run's best score; for packed codes a second
    reduction over the tile's counts); the ``k`` winners are then
    cut at the radius with their exact distances. When fewer than ``k`` rows
    are within the radius the count is the number of exact winners inside it;
    otherwise it is the count of the scan, where a row whose distance equals
    the radius to within rounding may fall either side. Memory as ``knn``:
    ``O(block_size * database_block_size + q * max_results)``, never ``O(q * m)``.
    Non-finite rows as in ``knn``: a database row with a NaN or infinite
    coordinate is neither returned nor counted; a non-finite query gets
    padding and a count of 0.

    The metrics, ``block_size``, ``database_block_size``, ``precision``,
    ``database_mask`` and ``exclude`` are those of ``knn``; for packed
    ``uint32`` codes the radius is a number of differing bits. faiss's
    ``range_search`` uses a strict ``<`` (on squared distances for
    ``IndexFlatL2``, ``>`` for inner products); this function includes the
    rows at exactly ``radius``.

    Args:
      queries: ``(q, d)`` query rows (uint32 ``(q, w)`` for packed codes).
      database: ``(m, d)`` database rows (uint32 ``(m, w)`` for packed codes).
      radius: a scalar, or ``(q,)`` one radius per query (may be traced);
        ``>= 0`` except for ``"dot"``, where it is a similarity threshold;
        ``inf`` returns the ``max_results`` nearest rows and counts every row.
      max_results: the most rows returned per query (static, ``>= 1``; may
        exceed ``m``).
      metric: as in ``knn`` (static).
      block_size: as in ``knn``: queries per block.
      database_block_size: as in ``knn``: database rows per block.
      precision: as in ``knn``.
      database_mask: as in ``knn``: ``(m,)`` bool, the rows that may be returned
        and counted.
      exclude: as in ``knn``: ``(q, e)`` integer row indices that are neither
        returned nor counted (``-1``: padding).
      query_block_size: deprecated, as in ``knn``.

    Returns:
      ``(distances, indices, counts)``: distances ``(q, max_results)`` as
      ``knn`` (padded with ``+inf``, ``-inf`` for ``"dot"``, ``2**31 - 1`` for
      packed codes), int32 indices ``(q, max_results)`` (padded with ``-1``),
      int32 ``counts`` ``(q,)``. The distances are differentiable as ``knn``'s.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import range_search
      >>> x = jnp.array([[0.0, 0.0], [3.0, 4.0], [1.0, 0.0], [0.0, 1.0]])
      >>> d, i, n = range_search(jnp.array([[0.0, 0.0]]), x, 1.0, max_results=2)
      >>> i, n
      (Array([[0, 2]], dtype=int32), Array([3], dtype=int32))

    Reference: brute force ``scipy.spatial.distance.cdist``, the rows within
    the radius sorted by a stable argsort; faiss ``IndexFlatL2.range_search``
    (squared distances, away from the radius).
    """
    fn = "range_search"
    if isinstance(max_results, bool) or not isinstance(max_results, (int, np.integer)):
        raise TypeError(f"{fn}: `max_results` must be a Python int (a static argument); got {max_results!r}.")
    if max_results < 1:
        raise ValueError(f"{fn}: `max_results` must be >= 1; got {max_results}.")
    database_rows = jnp.shape(database)[0] if jnp.ndim(database) == 2 else 1
    if database_rows == 0:
        raise ValueError(f"{fn}: `database` must have at least one row; got shape {jnp.shape(database)}.")
    k = min(int(max_results), database_rows)
    queries, database, k, metric, packed = _check_inputs(queries, database, k, metric, fn)
    q = queries.shape[0]
    radius = _check_radius(radius, q, metric, fn)
    block_size, database_block_size = _tiling(block_size, database_block_size, query_block_size, fn)
    database_mask, exclude = _check_filters(database_mask, exclude, q, database.shape[0], fn)
    qblock, block = _auto_blocks(q, database.shape[0], metric, packed, block_size, database_block_size)
    if q == 0:
        d, idx = _empty_result(queries, database, int(max_results), metric, packed)
        return d, idx, jnp.zeros((0,), jnp.int32)
    plan = _search_plan(k, metric, packed, precision, block, qblock, database.shape[1])
    return _range(queries, database, radius, database_mask, exclude, plan, int(max_results))


def _check_radius(radius, q, metric, fn):
    low = None if metric == "dot" else 0.0
    if isinstance(radius, (list, tuple)):
        radius = np.asarray(radius)
    if not isinstance(radius, (jax.Array, np.ndarray)) or np.ndim(radius) == 0:
        _checks.check_number(radius, "radius", fn, low=low, allow_inf=True)
    radius = jnp.asarray(radius)
    if radius.dtype == jnp.bool_ or not (
        jnp.issubdtype(radius.dtype, jnp.floating) or jnp.issubdtype(radius.dtype, jnp.integer)
    ):
        raise TypeError(
            f"{fn}: `radius` must be a real number or a (queries,) real array; got dtype {radius.dtype}."
        )
    if radius.shape not in ((), (q,)):
        raise ValueError(
            f"{fn}: `radius` must be a scalar or have shape (queries,) = ({q},); got shape {radius.shape}."
        )
    if low is not None and not _checks.is_traced(radius) and radius.ndim == 1 and bool(jnp.any(radius < 0)):
        raise ValueError(f"{fn}: `radius` must be >= 0 for metric={metric!r}; got a negative entry.")
    if jnp.issubdtype(radius.dtype, jnp.integer):
        radius = radius.astype(nx.default_float_dtype())
    return radius


# --------------------------------------------------------------------------- sharded search


def sharded_knn(
    queries: ArrayLike,
    database: ArrayLike,
    k: int,
    *,
    mesh,
    axis_name: str | None = None,
    metric: str = "euclidean",
    block_size: int | None = None,
    database_block_size: int | None = None,
    precision=HIGHEST,
    database_mask: ArrayLike | None = None,
    exclude: ArrayLike | None = None,
    query_block_size: int | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Exact kNN with the database split across the devices of a mesh.

    The database rows are sharded over the mesh axis ``axis_name`` (padded to
    a multiple of the number of devices; padded rows never match); queries are
    replicated. With ``jax.shard_map`` every device runs the blocked search of
    ``knn`` on its shard and re-scores its ``min(k, shard)`` winners
    exactly; the partial lists are all-gathered and merged by a stable top-k in
    device order, so ties still go to the lowest global index. The result is
    the same as ``knn(queries, database, k, metric=metric)``.

    Running it on a multi-GPU host: every local GPU is a JAX device, so

    ```python
    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    database = jax.device_put(database, NamedSharding(mesh, P("data")))
    d, i = jaxloss.sharded_knn(queries, database, 10, mesh=mesh)
    ```

    (on several hosts, call ``jax.distributed.initialize()`` first and build the
    mesh over ``jax.devices()``). To try it on a CPU, start Python with
    ``XLA_FLAGS=--xla_force_host_platform_device_count=4`` before JAX is imported.

    Args:
      queries: ``(q, d)`` query rows (replicated on every device).
      database: ``(m, d)`` database rows, sharded or not (it is placed with
        ``NamedSharding(mesh, P(axis_name))``).
      k: number of neighbours, ``1 <= k <= m`` (static).
      mesh: a ``jax.sharding.Mesh``.
      axis_name: the mesh axis to shard the database over (default: the first).
      metric: as in ``knn``.
      block_size: as in ``knn``: queries per block.
      database_block_size: as in ``knn`` (database rows per block, within each shard).
      precision: as in ``knn``.
      database_mask: as in ``knn``: ``(m,)`` bool, sharded with the database.
      exclude: as in ``knn``: ``(q, e)`` global row indices, replicated with
        the queries; each device drops its excluded rows before the merge.
      query_block_size: deprecated, as in ``knn``.

    Returns:
      ``(distances, indices)`` as ``knn``, with global row indices (``-1``
      padding where fewer than ``k`` rows are allowed).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jaxloss import sharded_knn
      >>> mesh = jax.make_mesh((jax.device_count(),), ("data",))
      >>> x = jnp.arange(12.0).reshape(6, 2)
      >>> sharded_knn(x[:1], x, 2, mesh=mesh)[1]
      Array([[0, 1]], dtype=int32)

    Reference: ``knn`` on one device (tested with 4 forced CPU devices).
    """
    fn = "sharded_knn"
    queries, database, k, metric, packed = _check_inputs(queries, database, k, metric, fn)
    if axis_name is None:
        axis_name = mesh.axis_names[0]
    _checks.check_option(axis_name, "axis_name", tuple(mesh.axis_names), fn)
    block_size, database_block_size = _tiling(block_size, database_block_size, query_block_size, fn)
    database_mask, exclude = _check_filters(database_mask, exclude, queries.shape[0], database.shape[0], fn)
    if queries.shape[0] == 0:
        return _empty_result(queries, database, k, metric, packed)
    shard = _shard_rows(database.shape[0], mesh.shape[axis_name])
    qblock, block = _auto_blocks(queries.shape[0], shard, metric, packed, block_size, database_block_size)
    plan = _search_plan(k, metric, packed, precision, block, qblock, database.shape[1])
    return _sharded(queries, database, database_mask, exclude, plan, mesh, axis_name)


def _shard_rows(m, ndev):
    """Database rows per device: ``m`` split into ``ndev`` equal shards, the last padded."""
    return _tiles.num_blocks(m, ndev)


@functools.partial(jax.jit, static_argnames=("plan", "mesh", "axis_name"))
def _sharded(queries, database, database_mask, exclude, plan, mesh, axis_name):
    from jax.sharding import PartitionSpec as P

    ndev = mesh.shape[axis_name]
    m = database.shape[0]
    shard = _shard_rows(m, ndev)
    # (ndev, shard, d) blocks back to rows: padded rows lie past m and never match.
    database = _tiles.pad_to_blocks(database, shard).reshape(ndev * shard, database.shape[1])
    local_plan = plan._replace(k=min(plan.k, shard))
    database = _place(database, mesh, P(axis_name))
    queries = _place(queries, mesh, P())
    args, specs = [queries, database], [P(), P(axis_name)]
    if database_mask is not None:  # sharded with the database; padded rows are masked
        mask = _tiles.pad_to_blocks(database_mask, shard, value=False).reshape(ndev * shard)
        args.append(_place(mask, mesh, P(axis_name)))
        specs.append(P(axis_name))
    if exclude is not None:  # replicated with the queries
        args.append(_place(exclude, mesh, P()))
        specs.append(P())

    def local(q, x, *filters):
        mask = filters[0] if database_mask is not None else None
        excl = filters[-1] if exclude is not None else None
        offset = jax.lax.axis_index(axis_name) * shard
        ops = _operands(q, x, plan.metric, plan.packed, mask)
        d, idx, key = _search_local(
            _candidates(local_plan, excl, shard), ops.q_raw, ops.qs, x, ops.aux, m - offset, ops.mask
        )
        idx = idx + offset
        if excl is not None:
            d, idx, key = _drop_excluded(d, idx, key, excl, local_plan.k)
        gather = functools.partial(jax.lax.all_gather, axis_name=axis_name, axis=1, tiled=True)
        return gather(d), gather(idx), gather(key)

    d, idx, key = jax.shard_map(
        local, mesh=mesh, in_specs=tuple(specs), out_specs=(P(), P(), P()), check_vma=False
    )(*args)
    # (q, ndev * k_local) in device order: a stable top-k keeps the lowest global index.
    _, j = jax.lax.top_k(-key, plan.k)
    take = functools.partial(jnp.take_along_axis, indices=j, axis=1)
    out_dtype = _empty_result(queries[:0], database[:0], plan.k, plan.metric, plan.packed)[0].dtype
    key = _finish(take(key), None if plan.packed else _finite_rows(queries))
    return _padded(take(d), take(idx), key, plan.metric, plan.packed, out_dtype)


def _place(x, mesh, spec):
    """Shards ``x`` as ``spec`` on meshes with explicit or automatic axes."""
    from jax.sharding import AxisType, NamedSharding

    if any(t == AxisType.Explicit for t in getattr(mesh, "axis_types", ())):
        return jax.reshard(x, NamedSharding(mesh, spec))
    return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
