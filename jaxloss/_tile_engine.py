"""The tiled statistics engine: per-row and per-column statistics of score matrices never held whole.

A loss over an ``N x M`` matrix of scores (a batch against a batch, tokens
against a vocabulary, embeddings against a million class centres) usually
reads the matrix through a few statistics: per row, a (masked) logsumexp, a
masked sum of an elementwise term, the mean of a term under a row's softmax;
per column, the same over the rows. This module computes such statistics
from one description, a ``Tiling`` record, in two evaluations:

* **dense** (no block sizes): the whole matrix, plain autodiff. With
  ``axis_name`` (``parallel="ring"``) the other side is all-gathered.
* **tiled**: a ``jax.custom_vjp``. The forward pass visits
  ``row_block x col_block`` tiles (``_tiles.block_start``: the last block is
  pulled back to the end of the axis, nothing is padded or copied) and keeps
  only per-row and per-column online states; the backward pass recomputes
  each tile and differentiates the tile's share of the statistics with
  ``jax.grad`` (so a per-tile transform, normalisation by inverse norms, a
  margin on a target logit or a second score matrix need no hand-written
  derivative). Temporary memory: the inputs, the per-row/per-column states
  and the gradients, plus at most two ``row_block x col_block`` tiles at a
  time (forward: the scores and one masked copy when a tile feeds two masked
  statistics, else one; backward: the recomputed scores, overwritten by their
  cotangent) and the blocks of the inputs. That bound holds when ``scores``
  applies its per-row and per-column factors and its scalars to the
  ``(r, d)``/``(d, c)`` blocks before the product, never to the tile: a
  factor applied to the tile makes its gradient a tile-sized reduction, and
  XLA's CPU backend materialises a tile for each such reduction. Under
  ``jax.jvp``/``jax.jacfwd`` applied around the call (``_tiles.forward_mode``)
  the forward sweep runs as plain JAX and is differentiated in forward mode
  (the custom VJP has none); a ``jax.jvp`` of an already traced function
  still meets the custom VJP, which JAX refuses.

Across devices (``axis_name``):

* ``parallel="ring"``: rows and columns are both split over the devices; the
  column side (its inputs, its per-column states or gradient accumulators)
  travels around the ring with ``ppermute`` and comes home after a full turn.
  Nothing is gathered.
* ``parallel="columns"``: rows replicated, columns split (class-parallel,
  vocabulary-parallel); per-row states are merged with ``pmax``/``psum``
  (``_tiles.psum_logsumexp``) and the gradients of the rows and of ``params``
  are ``psum``'ed.

The callers see the tile through ``scores(params, rows, cols)``, ``mask(rows,
cols)`` and ``term(scores, rows, cols)``: ``rows`` is a dict of the row
block's arrays (the differentiable ``rows`` and the constant ``row_data``)
plus ``"index"``, the global position of each row (offset by the device's
share with ``axis_name``); ``cols`` likewise for the column block.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from . import _numerics, _tiles

__all__ = ["Stat", "Tiling", "statistics"]

_KINDS = ("lse", "sum", "mean")


class Stat(NamedTuple):
    """One statistic of the scores, one value per row (``per="row"``) or per column (``per="col"``).

    * ``kind="lse"``: ``log sum exp`` of score matrix ``score`` over the pairs
      of ``mask`` (``-inf`` where the mask is empty).
    * ``kind="sum"``: the sum over ``mask`` of ``term(scores, rows, cols)``
      (elementwise, ``(r, c)``), or the count of ``mask`` when ``term`` is
      None (no gradient).
    * ``kind="mean"``: ``sum softmax(scores[score]) * term(scores, rows, cols)``
      over ``mask``, the softmax restricted to the mask (0 over an empty
      mask); computed online with one running shift.

    ``mask(rows, cols)`` returns a boolean broadcastable to the tile
    ``(r, c)`` (``rows["valid"][:, None]`` masks rows; ``None``: every pair).
    ``scores`` is the tuple that ``Tiling.scores`` returns.
    """

    kind: str
    per: str = "row"
    mask: Callable | None = None
    term: Callable | None = None
    score: int = 0


class Tiling(NamedTuple):
    """What the engine computes and how it blocks: the one configuration record.

    Attributes:
      scores: ``scores(params, rows, cols)`` -> one ``(r, c)`` score matrix
        or a tuple of them, for a row block and a column block (any per-tile
        transform lives here). Hashable (a module-level function or a
        NamedTuple with ``__call__``).
      stats: a tuple of ``Stat``.
      row_block, col_block: block sizes (clipped to the axis); both None: the
        dense evaluation; one None: that side in one block.
      col_axis: the column axis of the column leaves of two or more
        dimensions: ``0`` (keys ``(M, d)``), ``-1`` (a class matrix
        ``(D, M)``, never transposed) or ``1`` (``(D, M, k)``: ``k``
        sub-centres per column). 1-D leaves are columns along axis 0.
      axis_name: the mapped axis (``shard_map``/``pmap``) or None.
      parallel: ``"ring"`` (rows and columns split) or ``"columns"`` (rows
        replicated, columns split).
    """

    scores: Callable
    stats: tuple
    row_block: int | None = None
    col_block: int | None = None
    col_axis: int = 0
    axis_name: Any = None
    parallel: str = "ring"


def _check(t: Tiling):
    for s in t.stats:
        if s.kind not in _KINDS or s.per not in ("row", "col"):
            raise ValueError(f"tiled statistics: unknown statistic {s!r}")
        if s.kind == "mean" and s.term is None:
            raise ValueError("tiled statistics: a `mean` statistic needs a `term`")
    if not isinstance(t.col_axis, int) or t.parallel not in ("ring", "columns"):
        raise ValueError(f"tiled statistics: bad configuration {t!r}")


# --------------------------------------------------------------------------- blocks


def _col_axis_of(t, leaf):
    return t.col_axis % leaf.ndim if leaf.ndim >= 2 else 0


def _length(trees, axis_of):
    leaves = [leaf for tree in trees for leaf in jax.tree_util.tree_leaves(tree)]
    if not leaves:
        raise ValueError("tiled statistics: each side needs at least one array")
    return leaves[0].shape[axis_of(leaves[0])]


def _take(tree, start, size, axis_of):
    return jax.tree_util.tree_map(lambda a: jax.lax.dynamic_slice_in_dim(a, start, size, axis_of(a)), tree)


def _put(tree, block, start, axis_of):
    return jax.tree_util.tree_map(
        lambda a, b: jax.lax.dynamic_update_slice_in_dim(a, b.astype(a.dtype), start, axis_of(a)), tree, block
    )


def _add(tree, block, start, axis_of):
    """``tree[start:start+size] += block`` along each leaf's axis (the accumulator's dtype)."""
    leaves = jax.tree_util.tree_leaves(block)
    if not leaves:
        return tree
    size = leaves[0].shape[axis_of(leaves[0])]
    return _put(
        tree,
        jax.tree_util.tree_map(lambda a, b: a + b.astype(a.dtype), _take(tree, start, size, axis_of), block),
        start,
        axis_of,
    )


def _first(a):
    return 0


class _Block(NamedTuple):
    """One block of a side: where it starts, which of its positions are new, what the callbacks see."""

    start: Any
    valid: Any  # (size,) bool: False where the pulled-back last block overlaps its predecessor
    view: dict  # data, differentiable leaves and "index" (global positions)
    diff: dict  # the differentiable leaves of the block


def _block(index, size, total, diff, data, origin, axis_of):
    start = _tiles.block_start(index, size, total)
    d = _take(diff, start, size, axis_of)
    view = {**_take(data, start, size, axis_of), **d}
    view["index"] = origin + start + jnp.arange(size, dtype=jnp.int32)
    return _Block(start, _tiles.block_valid(index, size, total), view, d)


class _Shape(NamedTuple):
    """Sizes of one evaluation: rows ``n`` in blocks of ``rb``, columns ``m`` in blocks of ``cb``."""

    n: int
    m: int
    rb: int
    cb: int
    acc: Any  # accumulator dtype
    axes: tuple  # mesh axes the carries vary over


def _acc_dtype(*trees):
    leaves = [
        a for tree in trees for a in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(a.dtype, jnp.inexact)
    ]
    return jnp.promote_types(jnp.result_type(*leaves) if leaves else jnp.float32, jnp.float32)


def _shape(t, params, rows, cols, row_data, col_data):
    n = _length((rows, row_data), _first)
    m = _length((cols, col_data), functools.partial(_col_axis_of, t))
    axes = set(_tiles.varying_axes(*jax.tree_util.tree_leaves((params, rows, cols, row_data, col_data))))
    if t.axis_name is not None:
        axes.add(t.axis_name)
    return _Shape(
        n=n,
        m=m,
        rb=min(t.row_block or n, n),
        cb=min(t.col_block or m, m),
        acc=_acc_dtype(params, rows, cols),
        axes=tuple(sorted(axes, key=str)),
    )


def _origins(t, shape):
    """Global position of this device's first row and first column."""
    if t.axis_name is None:
        return 0, 0
    i = jax.lax.axis_index(t.axis_name).astype(jnp.int32)
    return (i * shape.n if t.parallel == "ring" else 0), i * shape.m


# --------------------------------------------------------------------------- one tile


def _scores(t, params, rows, cols, acc):
    z = t.scores(params, rows, cols)
    z = z if isinstance(z, tuple) else (z,)
    return tuple(s.astype(acc) for s in z)


def _axis(stat):
    return 1 if stat.per == "row" else 0


def _pairs(stat, rows, cols, valid):
    """The pairs ``stat`` reduces over: its mask and the tile's ``valid`` (None: every pair)."""
    if stat.mask is None:
        return valid
    mask = stat.mask(rows, cols)
    if valid is None:
        return mask
    return jnp.broadcast_to(mask, valid.shape) & valid


def _where(mask, x, fill):
    return x if mask is None else jnp.where(mask, x, fill)


def _init(stat, shape, acc):
    lse = _tiles.init_logsumexp(shape, acc)
    if stat.kind == "lse":
        return lse
    if stat.kind == "mean":
        return (*lse, jnp.zeros(shape, acc))
    return jnp.zeros(shape, acc)


def _fold(stats, states, z, rows, cols, valid):
    """Folds one tile of scores into the running states of ``stats``."""
    out = []
    for stat, state in zip(stats, states, strict=True):
        mask, axis = _pairs(stat, rows, cols, valid), _axis(stat)
        if stat.kind == "sum":
            term = jnp.ones_like(z[0]) if stat.term is None else stat.term(z, rows, cols)
            out.append(state + jnp.sum(_where(mask, term, 0), axis=axis))
            continue
        logits = _where(mask, z[stat.score], -jnp.inf)
        if stat.kind == "lse":
            out.append(_tiles.update_logsumexp(state, logits, axis=axis))
        else:
            out.append(_tiles.update_softmax_mean(state, logits, stat.term(z, rows, cols), axis=axis))
    return out


def _final(stat, state):
    """The finished value (``mean``: the pair ``(mean, logsumexp)``, the backward needs both)."""
    if stat.kind == "lse":
        return _tiles.finalize_logsumexp(state)
    if stat.kind == "mean":
        return _tiles.finalize_softmax_mean(state)
    return state


def _psum_state(stat, state, axis_name):
    if stat.kind == "lse":
        return _tiles.psum_logsumexp(state, axis_name)
    if stat.kind == "mean":
        return _tiles.psum_softmax_mean(state, axis_name)
    return jax.lax.psum(state, axis_name)


def _surrogate(t, stats, params, r, c, valid, finals, cts, acc):
    """A scalar whose gradient is the tile's share of ``sum_k <cts_k, d stat_k>``.

    ``lse``: ``d lse_i = sum_j p_ij dz_ij`` with ``p = exp(z - lse)``, the
    softmax recomputed from the saved logsumexp. ``mean`` of ``f`` under
    ``p``: ``d E_i = sum_j p_ij (df_ij + (f_ij - E_i) dz_ij)``. ``sum``: the
    term itself. The weights are constants (``stop_gradient``), masked pairs
    weigh 0.
    """

    def total(params, row_diff, col_diff):
        rows, cols = {**r.view, **row_diff}, {**c.view, **col_diff}
        z = _scores(t, params, rows, cols, acc)
        out = jnp.zeros((), acc)
        for stat, final, ct in zip(stats, finals, cts, strict=True):
            mask, axis = _pairs(stat, rows, cols, valid), _axis(stat)
            ct = jnp.expand_dims(ct.astype(acc), axis)
            if stat.kind == "sum":
                if stat.term is not None:
                    out = out + jnp.sum(_where(mask, ct * stat.term(z, rows, cols), 0))
                continue
            mean, lse = (None, final) if stat.kind == "lse" else final
            zk = z[stat.score]
            ref = jnp.expand_dims(jnp.where(jnp.isfinite(lse), lse, 0), axis)
            p = jax.lax.stop_gradient(jnp.exp(_where(mask, zk, -jnp.inf) - ref))
            if stat.kind == "lse":
                tile = p * zk
            else:
                f = stat.term(z, rows, cols)
                tile = p * (f + jax.lax.stop_gradient(f - jnp.expand_dims(mean, axis)) * zk)
            out = out + jnp.sum(_where(mask, ct * tile, 0))
        return out

    return jax.grad(total, argnums=(0, 1, 2))(params, r.diff, c.diff)


# --------------------------------------------------------------------------- the sweep


def _around(t, visit, home, travelling, acc):
    """``visit(home, travelling, acc) -> (home, acc)`` on this device, or once per device of the ring.

    With ``parallel="ring"`` the column side (``travelling``) and its
    accumulators (``acc``) travel one step per visit; after a full turn the
    accumulators are back on the device they belong to.
    """
    if t.axis_name is None or t.parallel == "columns":
        return visit(home, travelling, acc)

    def step(carry, _):
        home, travelling, acc = carry
        arriving = _tiles.ring_shift(travelling, t.axis_name)  # in flight while this block is visited
        home, acc = visit(home, travelling, acc)
        return (home, arriving, _tiles.ring_shift(acc, t.axis_name)), None

    n = jax.lax.axis_size(t.axis_name)
    (home, travelling, acc), _ = jax.lax.scan(step, (home, travelling, acc), None, length=n - 1)
    home, acc = visit(home, travelling, acc)
    return home, _tiles.ring_shift(acc, t.axis_name)


def _split(t, values):
    rows = [v for s, v in zip(t.stats, values, strict=True) if s.per == "row"]
    cols = [v for s, v in zip(t.stats, values, strict=True) if s.per == "col"]
    return rows, cols


def _merge(t, rows, cols):
    rows, cols = iter(rows), iter(cols)
    return [next(rows) if s.per == "row" else next(cols) for s in t.stats]


def _forward(t, params, rows, cols, row_data, col_data):
    """Every statistic's finished value (rows outer, columns inner)."""
    sh = _shape(t, params, rows, cols, row_data, col_data)
    row_stats, col_stats = _split(t, t.stats)
    col_of = functools.partial(_col_axis_of, t)
    row_origin, col_origin = _origins(t, sh)
    row_states = _tiles.make_varying([_init(s, (sh.n,), sh.acc) for s in row_stats], sh.axes)
    col_states = _tiles.make_varying([_init(s, (sh.m,), sh.acc) for s in col_stats], sh.axes)

    def visit(row_states, side, col_states):
        col_diff, col_data_, origin = side

        def row_step(i, carry):
            row_states, col_states = carry
            r = _block(i, sh.rb, sh.n, rows, row_data, row_origin, _first)
            rs = _take(row_states, r.start, sh.rb, _first)

            def col_step(j, carry):
                rs, col_states = carry
                c = _block(j, sh.cb, sh.m, col_diff, col_data_, origin, col_of)
                cs = _take(col_states, c.start, sh.cb, _first)
                z = _scores(t, params, r.view, c.view, sh.acc)
                valid = r.valid[:, None] & c.valid[None, :]
                rs = _fold(row_stats, rs, z, r.view, c.view, valid)
                cs = _fold(col_stats, cs, z, r.view, c.view, valid)
                return rs, _put(col_states, cs, c.start, _first)

            rs, col_states = jax.lax.fori_loop(0, _tiles.num_blocks(sh.m, sh.cb), col_step, (rs, col_states))
            return _put(row_states, rs, r.start, _first), col_states

        nrb = _tiles.num_blocks(sh.n, sh.rb)
        return jax.lax.fori_loop(0, nrb, row_step, (row_states, col_states))

    row_states, col_states = _around(t, visit, row_states, (cols, col_data, col_origin), col_states)
    if t.axis_name is not None and t.parallel == "columns":
        row_states = [_psum_state(s, v, t.axis_name) for s, v in zip(row_stats, row_states, strict=True)]
    return _merge(
        t,
        [_final(s, v) for s, v in zip(row_stats, row_states, strict=True)],
        [_final(s, v) for s, v in zip(col_stats, col_states, strict=True)],
    )


def _backward(t, params, rows, cols, row_data, col_data, finals, cts):
    """The gradients of ``params``, ``rows`` and ``cols`` (columns outer, rows inner)."""
    sh = _shape(t, params, rows, cols, row_data, col_data)
    col_of = functools.partial(_col_axis_of, t)
    row_origin, col_origin = _origins(t, sh)
    inputs = params, rows, cols
    # per-device values: a tile's gradient of a replicated input is this device's share, not a psum per tile
    params, rows, cols, row_data, col_data = _tiles.make_varying(
        (params, rows, cols, row_data, col_data), sh.axes
    )
    row_finals, col_finals = _split(t, finals)
    row_cts, col_cts = _split(t, cts)

    def zeros(tree):
        return _tiles.make_varying(
            jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, sh.acc), tree), sh.axes
        )

    def visit(home, side, g_cols):
        col_diff, col_data_, origin, c_finals, c_cts = side

        def col_step(j, carry):
            g_rows, g_params, g_cols = carry
            c = _block(j, sh.cb, sh.m, col_diff, col_data_, origin, col_of)
            cf, cc = _take((c_finals, c_cts), c.start, sh.cb, _first)

            def row_step(i, carry):
                g_rows, g_params, g_block = carry
                r = _block(i, sh.rb, sh.n, rows, row_data, row_origin, _first)
                rf, rc = _take((row_finals, row_cts), r.start, sh.rb, _first)
                valid = r.valid[:, None] & c.valid[None, :]
                gp, gr, gc = _surrogate(
                    t, t.stats, params, r, c, valid, _merge(t, rf, cf), _merge(t, rc, cc), sh.acc
                )
                add = functools.partial(jax.tree_util.tree_map, lambda a, b: a + b.astype(a.dtype))
                return _add(g_rows, gr, r.start, _first), add(g_params, gp), add(g_block, gc)

            nrb = _tiles.num_blocks(sh.n, sh.rb)
            g_rows, g_params, g_block = jax.lax.fori_loop(0, nrb, row_step, (g_rows, g_params, zeros(c.diff)))
            return g_rows, g_params, _add(g_cols, g_block, c.start, col_of)

        ncb = _tiles.num_blocks(sh.m, sh.cb)
        g_rows, g_params, g_cols = jax.lax.fori_loop(0, ncb, col_step, (*home, g_cols))
        return (g_rows, g_params), g_cols

    side = (cols, col_data, col_origin, col_finals, col_cts)
    (g_rows, g_params), g_cols = _around(t, visit, (zeros(rows), zeros(params)), side, zeros(cols))
    if t.axis_name is not None and t.parallel == "columns":
        g_rows, g_params = jax.lax.psum((g_rows, g_params), t.axis_name)

    def cast(g, x):
        return jax.tree_util.tree_map(lambda a, b: a.astype(b.dtype), g, x)

    return tuple(cast(g, x) for g, x in zip((g_params, g_rows, g_cols), inputs, strict=True))


def _public(t, finals):
    return tuple(f[0] if s.kind == "mean" else f for s, f in zip(t.stats, finals, strict=True))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _engine(t, params, rows, cols, row_data, col_data):
    return _public(t, _forward(t, params, rows, cols, row_data, col_data))


def _engine_fwd(t, params, rows, cols, row_data, col_data):
    finals = _forward(t, params, rows, cols, row_data, col_data)
    return _public(t, finals), (params, rows, cols, row_data, col_data, finals)


def _engine_bwd(t, residuals, cts):
    params, rows, cols, row_data, col_data, finals = residuals
    grads = _backward(t, params, rows, cols, row_data, col_data, finals, cts)
    return (*grads, None, None)


_engine.defvjp(_engine_fwd, _engine_bwd)


# --------------------------------------------------------------------------- dense


def _gather(t, tree, axis_of):
    return jax.tree_util.tree_map(
        lambda a: jax.lax.all_gather(a, t.axis_name, axis=axis_of(a), tiled=True), tree
    )


def _reduce(stat, z, rows, cols):
    """One statistic of whole score matrices (plain autodiff; the masked pairs weigh 0)."""
    mask, axis = _pairs(stat, rows, cols, None), _axis(stat)
    if stat.kind == "sum":
        term = jnp.ones_like(z[0]) if stat.term is None else stat.term(z, rows, cols)
        mask = None if mask is None else jnp.broadcast_to(mask, term.shape)
        return jnp.sum(_where(mask, term, 0), axis=axis)
    zk = z[stat.score]
    if mask is not None:  # the matrix this statistic reads (the dense path's may be wider than the tile's)
        mask = jnp.broadcast_to(mask, zk.shape)
    if mask is None:
        lse = jax.nn.logsumexp(zk, axis=axis)
    else:
        lse, has = _numerics.masked_logsumexp(zk, mask, axis)
        lse = jnp.where(has, lse, -jnp.inf)
    if stat.kind == "lse":
        return lse
    ref = jnp.expand_dims(jnp.where(jnp.isfinite(lse), lse, 0), axis)
    p = jnp.exp(_where(mask, zk - ref, -jnp.inf))
    return jnp.sum(jnp.where(p > 0, p * stat.term(z, rows, cols), 0), axis=axis)


def _dense(t, params, rows, cols, row_data, col_data):
    """The statistics from whole matrices (with ``axis_name``: the other side all-gathered)."""
    sh = _shape(t, params, rows, cols, row_data, col_data)
    col_of = functools.partial(_col_axis_of, t)
    row_origin, col_origin = _origins(t, sh)
    local_rows = {**row_data, **rows, "index": row_origin + jnp.arange(sh.n, dtype=jnp.int32)}
    local_cols = {**col_data, **cols, "index": col_origin + jnp.arange(sh.m, dtype=jnp.int32)}
    pairs = {}
    for per in ("row", "col"):
        if not any(s.per == per for s in t.stats):
            continue
        r, c = local_rows, local_cols
        if t.axis_name is not None and per == "row":
            c = {
                **_gather(t, {**col_data, **cols}, col_of),
                "index": jnp.arange(sh.m * _devices(t), dtype=jnp.int32),
            }
        elif t.axis_name is not None:
            r = {
                **_gather(t, {**row_data, **rows}, _first),
                "index": jnp.arange(sh.n * _devices(t), dtype=jnp.int32),
            }
        pairs[per] = (_scores(t, params, r, c, sh.acc), r, c)
    return tuple(_reduce(s, *pairs[s.per]) for s in t.stats)


def _devices(t):
    return jax.lax.axis_size(t.axis_name)


# --------------------------------------------------------------------------- entry


def statistics(t: Tiling, params, rows, cols, row_data=None, col_data=None) -> tuple:
    """The statistics ``t.stats`` of the score matrices ``t.scores(params, rows, cols)``.

    Args:
      t: the ``Tiling`` record (static).
      params: a pytree of floating arrays every tile sees whole (a scale, a
        bias, a margin); differentiated.
      rows: a dict of floating arrays with the rows on axis 0 (``(N, ...)``);
        differentiated.
      cols: a dict of floating arrays with the columns on axis 0, or on the
        axis ``col_axis`` of leaves of two or more dimensions; differentiated.
      row_data, col_data: dicts of arrays sliced like ``rows``/``cols`` that
        are not differentiated (labels, masks, a frozen teacher).

    Returns:
      A tuple with one array per statistic: ``(N,)`` for ``per="row"``,
      ``(M,)`` (this device's columns) for ``per="col"``, in float32 or wider.
      With ``parallel="columns"`` the per-row values are those of all
      columns of all devices.
    """
    _check(t)
    params, rows, cols = jax.tree_util.tree_map(jnp.asarray, (params, rows, cols))
    row_data = {} if row_data is None else row_data
    col_data = {} if col_data is None else col_data
    dense = t.row_block is None and t.col_block is None
    sh = _shape(t, params, rows, cols, row_data, col_data)
    dense = dense or sh.n == 0 or sh.m == 0  # nothing to tile: the dense reductions of empty axes
    if dense and (t.axis_name is None or t.parallel == "ring"):
        return _dense(t, params, rows, cols, row_data, col_data)
    if t.axis_name is not None and t.parallel == "ring":
        # each device's share of a replicated parameter's gradient, summed once by the cast's transpose
        params = _tiles.make_varying(params, (t.axis_name,))
    if _tiles.forward_mode(params, rows, cols):
        # jax.jvp / jax.jacfwd around the caller: the forward sweep as plain JAX (the custom VJP
        # has no forward mode), differentiated by JAX with the forward pass's memory
        return _public(t, _forward(t, params, rows, cols, row_data, col_data))
    return _engine(t, params, rows, cols, row_data, col_data)
