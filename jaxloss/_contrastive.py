"""Contrastive losses over a batch: InfoNCE, CLIP, SigLIP, NT-Xent, supervised contrastive, N-pair.

Every loss here is a scalar computed from the ``B x B`` matrix of logits
``s_ij = scale * q_i . k_j + bias`` of a batch of queries against a batch of
keys (for NT-Xent and supervised contrastive, the embeddings against
themselves); each docstring says exactly what is averaged. Each loss reads
the matrix through a few statistics per row or per column: a (masked)
logsumexp, a masked sum of an elementwise term, a masked count.

Three evaluations, one set of statistics:

* **dense** (``block_size=None``): the whole matrix, plain autodiff. With
  ``axis_name`` (inside ``shard_map`` or ``pmap``) the keys of every device
  are all-gathered, and the gradient reaches the local embeddings through the
  gather's transpose.
* **tiled** (``block_size=b``): a ``jax.custom_vjp`` whose forward visits
  ``b x b`` tiles (a block of queries against a block of keys) with an online
  logsumexp (``_tiles``) and keeps only the per-row and per-column
  statistics; the backward recomputes each tile and turns it into the tile's
  share of the query and key gradients. Temporary memory is ``O(B d + b^2)``.
* **ring** (``block_size`` and ``axis_name``): the same tile scan, with the
  key blocks (their ids and labels, and the per-key statistics or gradient
  accumulators) passed around the devices with ``ppermute``; nothing is
  gathered. After a full turn the per-key accumulators are back home.

Temperatures, logit scales and logit biases may be traced (learnable): their
gradient is exact on every path. Inside ``shard_map`` a replicated parameter's
gradient is the sum over the devices of each device's share, taken once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks, _numerics, _tiles
from ._metric_learning import prepare_batch

__all__ = [
    "clip_loss",
    "info_nce",
    "npair_loss",
    "ntxent",
    "sigmoid_contrastive_loss",
    "supervised_contrastive_loss",
]

_HIGHEST = jax.lax.Precision.HIGHEST

# --------------------------------------------------------------------------- validation


def _pair_inputs(queries, keys, names, fn):
    """Two ``(B, d)`` arrays of the same shape, in the compute dtype."""
    _checks.check_ndim(queries, names[0], fn, ndim=2)
    _checks.check_same_shape(queries, keys, names, fn)
    return _numerics.as_float(queries, keys)


def _as_parameter(value, dtype):
    """A (possibly traced) scalar hyperparameter as an array of the compute dtype."""
    return jnp.asarray(value).astype(dtype)


# --------------------------------------------------------------------------- across devices


def _gather(x, axis_name):
    """All candidates: ``x`` itself, or its concatenation over the devices of ``axis_name``."""
    if axis_name is None:
        return x, 0
    gathered = jax.lax.all_gather(x, axis_name, tiled=True)
    return gathered, jax.lax.axis_index(axis_name) * x.shape[0]


def _psum_local_gradient(x, axis_name):
    """``psum(x)`` whose cotangent goes back unchanged to each device's own ``x``.

    Every device holds the same global value, and the gradient of that value
    reaches the local terms once (the gather's transpose adds the
    cross-device terms). A plain ``psum`` transposes to a ``psum`` under
    ``pmap``, which would multiply the gradient by the number of devices;
    this one gives the same gradient under ``pmap`` and ``shard_map``.
    """

    @jax.custom_vjp
    def total(x):
        return jax.lax.psum(x, axis_name)

    def fwd(x):
        return total(x), None

    def bwd(_, ct):
        return (jax.lax.pcast(ct, axis_name, to="varying"),)

    total.defvjp(fwd, bwd)
    return total(x)


def _global_mean(total, count, axis_name):
    if axis_name is not None:
        total = _psum_local_gradient(total, axis_name)
        count = jax.lax.psum(jax.lax.stop_gradient(count), axis_name)
    return _numerics.safe_divide(total, count)


def _varying(tree, axis_name):
    """Marks the leaves of ``tree`` as varying over ``axis_name`` (those that are not yet).

    A replicated parameter (a temperature) becomes a per-device value whose
    cotangent, a device's share, is summed over the devices by the cast's
    transpose: once, exactly. Scan carries built from constants need the same
    type as the per-device values they accumulate.
    """
    if axis_name is None:
        return tree
    return _tiles.make_varying(tree, (axis_name,))


def _global_ids(n: int, axis_name):
    """The position of each local row in the batch concatenated over the devices."""
    ids = jnp.arange(n, dtype=jnp.int32)
    if axis_name is None:
        return ids
    return ids + jax.lax.axis_index(axis_name).astype(jnp.int32) * n


# --------------------------------------------------------------------------- statistics of the logits


class _Stat(NamedTuple):
    """One statistic of the logits, reduced over keys (one per query) or over queries (one per key).

    ``kind="lse"``: ``log sum exp`` of the logits over ``mask`` (``-inf`` over
    an empty mask). ``kind="sum"``: the sum over ``mask`` of
    ``term(logits, rows, cols, row_param)`` (elementwise), or the count of
    ``mask`` when ``term`` is None (no gradient). ``mask(rows, cols)`` and
    ``term`` see a tile: ``rows`` and ``cols`` are dicts of per-row / per-column
    integer arrays (``"id"``: position in the global batch; ``"label"`` where
    the loss has labels). ``mask=None`` means every pair; the tile scan adds
    the mask of its padding itself.
    """

    kind: str
    over: str
    mask: Callable | None = None
    term: Callable | None = None


def _others(rows, cols):
    return rows["id"][:, None] != cols["id"][None, :]


def _negatives(rows, cols):
    return rows["label"][:, None] != cols["label"][None, :]


def _positives(rows, cols):
    return _others(rows, cols) & (rows["label"][:, None] == cols["label"][None, :])


def _logit(logits, rows, cols, row_param):
    return logits


def _log_sigmoid_of_signed_logit(logits, rows, cols, row_param):
    """``log sigmoid(z_ij s_ij)`` with ``z = +1`` on the matching pair, ``-1`` elsewhere (SigLIP)."""
    match = rows["id"][:, None] == cols["id"][None, :]
    return jax.nn.log_sigmoid(jnp.where(match, logits, -logits))


def _softplus_of_gap(logits, rows, cols, row_param):
    """``softplus(c_i - s_ij)``: NT-Xent's term for a positive pair, ``c_i`` the negatives' logsumexp."""
    return jax.nn.softplus(row_param[:, None] - logits)


_INFO_NCE_STATS = (_Stat("lse", "keys"),)
_CLIP_STATS = (_Stat("lse", "keys"), _Stat("lse", "queries"))
_SIGLIP_STATS = (_Stat("sum", "keys", None, _log_sigmoid_of_signed_logit),)
_SUPCON_STATS = (
    _Stat("lse", "keys", _others),
    _Stat("sum", "keys", _positives, _logit),
    _Stat("sum", "keys", _positives),
)
_NTXENT_NEGATIVE_STATS = (_Stat("lse", "keys", _negatives),)
_NTXENT_POSITIVE_STATS = (
    _Stat("sum", "keys", _positives, _softplus_of_gap),
    _Stat("sum", "keys", _positives),
)


def _side(x, normalize: bool):
    """An embedding side: the rows and, when normalized, their inverse norms ``1 / max(|x|, sqrt(eps))``.

    The tile scan scales each tile by the inverse norms instead of keeping a
    normalized copy of the batch (and its gradient). ``x * inv`` is the
    normalization of ``_numerics.normalize``; the gradient is 0 at a zero row.
    """
    if not normalize:
        return x, None
    tiny = jnp.sqrt(jnp.finfo(x.dtype).eps).astype(x.dtype)
    return x, jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=-1), tiny * tiny))


def _products(q_side, k_side, precision):
    """The Gram block ``q @ k.T`` and the products the logits are made of (scaled by the inverse norms)."""
    (q, q_inv), (k, k_inv) = q_side, k_side
    gram = jnp.matmul(q, k.T, precision=precision)
    if q_inv is None:
        return gram, gram
    return gram, gram * q_inv[:, None] * k_inv[None, :]


def _matching_products(q_side, k_side):
    """``q_i . k_i`` of each matching pair (normalized when the sides are)."""
    (q, q_inv), (k, k_inv) = q_side, k_side
    own = jnp.sum(q * k, axis=-1)
    return own if q_inv is None else own * q_inv * k_inv


def _affine(products, scale, bias):
    logits = scale * products
    return logits if bias is None else logits + bias


def _reduce_axis(stat):
    return 1 if stat.over == "keys" else 0


def _pairs(stat, rows, cols, valid):
    """The pairs ``stat`` reduces over in a tile: its mask and the tile's ``valid`` (None: every pair)."""
    mask = None if stat.mask is None else stat.mask(rows, cols)
    if mask is None or valid is None:
        return valid if mask is None else mask
    return mask & valid


def _where(mask, x, fill):
    return x if mask is None else jnp.where(mask, x, fill)


def _masked_sum(stat, mask, logits, rows, cols, row_param, axis):
    term = jnp.ones_like(logits) if stat.term is None else stat.term(logits, rows, cols, row_param)
    return jnp.sum(_where(mask, term, 0), axis=axis)


def _dense_stats(q_side, k_side, scale, bias, row_param, rows, cols, stats, axis_name, precision):
    """The statistics from the whole matrix (all-gathering the other side across devices)."""
    gather = functools.partial(jax.tree_util.tree_map, lambda v: _gather(v, axis_name)[0])
    by_keys = by_queries = None
    if any(s.over == "keys" for s in stats):
        logits = _affine(_products(q_side, gather(k_side), precision)[1], scale, bias)
        by_keys = (logits, rows, gather(cols), row_param)
    if any(s.over == "queries" for s in stats):
        if axis_name is None and by_keys is not None:
            by_queries = by_keys
        else:
            logits = _affine(_products(gather(q_side), k_side, precision)[1], scale, bias)
            by_queries = (logits, gather(rows), cols, gather(row_param))
    out = []
    for stat in stats:
        logits, r, c, p = by_keys if stat.over == "keys" else by_queries
        mask, axis = _pairs(stat, r, c, None), _reduce_axis(stat)
        if stat.kind == "sum":
            out.append(_masked_sum(stat, mask, logits, r, c, p, axis))
        elif mask is None:
            out.append(jax.nn.logsumexp(logits, axis=axis))
        else:
            lse, has = _numerics.masked_logsumexp(logits, mask, axis)
            out.append(jnp.where(has, lse, -jnp.inf))
    return out


def _init_state(stat, shape, dtype):
    return _tiles.init_logsumexp(shape, dtype) if stat.kind == "lse" else jnp.zeros(shape, dtype)


def _final_value(stat, state):
    return _tiles.finalize_logsumexp(state) if stat.kind == "lse" else state


def _fold(stats, states, logits, rows, cols, row_param, valid):
    """Folds one tile of logits into the running statistics."""
    out = []
    for stat, state in zip(stats, states, strict=True):
        mask, axis = _pairs(stat, rows, cols, valid), _reduce_axis(stat)
        if stat.kind == "lse":
            out.append(_tiles.update_logsumexp(state, _where(mask, logits, -jnp.inf), axis=axis))
        else:
            out.append(state + _masked_sum(stat, mask, logits, rows, cols, row_param, axis))
    return out


def _tile_cotangent(stats, logits, rows, cols, row_param, valid, finals, cotangents):
    """The cotangent of one tile of logits (and of the row parameters) from the statistics' cotangents."""
    d_logits = jnp.zeros_like(logits)
    d_param = None if row_param is None else jnp.zeros_like(row_param)
    for stat, final, ct in zip(stats, finals, cotangents, strict=True):
        mask, axis = _pairs(stat, rows, cols, valid), _reduce_axis(stat)
        ct = jnp.expand_dims(ct, axis)
        if stat.kind == "lse":
            # d lse_i / d s_ij = exp(s_ij - lse_i): the softmax, recomputed from the saved lse
            ref = jnp.expand_dims(jnp.where(jnp.isfinite(final), final, 0), axis)
            d_logits = d_logits + _where(mask, ct * jnp.exp(logits - ref), 0)
        elif stat.term is not None:
            _, vjp = jax.vjp(lambda s, p, stat=stat: stat.term(s, rows, cols, p), logits, row_param)
            d_s, d_p = vjp(_where(mask, jnp.broadcast_to(ct, logits.shape), 0).astype(logits.dtype))
            d_logits = d_logits + d_s
            if d_param is not None:
                d_param = d_param + d_p
    return d_logits, d_param


def _sweep(tile, row_carry, col_carry, q_side, k_side, axis_name):
    """The one tile scan: every block of queries against every block of keys.

    Leaves of ``q_side`` and ``row_carry`` have leading axes ``(nq, b)`` (query
    blocks), those of ``k_side`` and ``col_carry`` ``(nk, b)`` (key blocks).
    ``tile(q_block, k_block, row_block, col_block)`` returns the updated row
    and column carries of one tile. With ``axis_name`` the key side and the
    column carry travel around the ring of devices (``ppermute``); after a
    full turn the column carry of every key block is back on its device.
    """

    def visit(row_carry, col_carry, k_side):
        def over_query_blocks(col_carry, xs):
            q_block, row_block = xs

            def over_key_blocks(row_block, ys):
                k_block, col_block = ys
                return tile(q_block, k_block, row_block, col_block)

            row_block, col_carry = jax.lax.scan(over_key_blocks, row_block, (k_side, col_carry))
            return col_carry, row_block

        col_carry, row_carry = jax.lax.scan(over_query_blocks, col_carry, (q_side, row_carry))
        return row_carry, col_carry

    if axis_name is None:
        return visit(row_carry, col_carry, k_side)
    row_carry, col_carry = _varying((row_carry, col_carry), axis_name)

    def step(carry, _):
        row_carry, col_carry, k_side = carry
        arriving = _tiles.ring_shift(k_side, axis_name)  # in flight while this block is visited
        row_carry, col_carry = visit(row_carry, col_carry, k_side)
        return (row_carry, _tiles.ring_shift(col_carry, axis_name), arriving), None

    n = jax.lax.axis_size(axis_name)
    (row_carry, col_carry, k_side), _ = jax.lax.scan(step, (row_carry, col_carry, k_side), None, length=n - 1)
    row_carry, col_carry = visit(row_carry, col_carry, k_side)
    return row_carry, _tiles.ring_shift(col_carry, axis_name)


def _split(stats, values):
    rows = [v for s, v in zip(stats, values, strict=True) if s.over == "keys"]
    cols = [v for s, v in zip(stats, values, strict=True) if s.over == "queries"]
    return rows, cols


def _merge(stats, rows, cols):
    rows, cols = iter(rows), iter(cols)
    return tuple(next(rows) if s.over == "keys" else next(cols) for s in stats)


def _valid_pairs(rows, cols):
    """The pairs of a tile that are not padding (padding rows have id -1)."""
    return (rows["id"][:, None] >= 0) & (cols["id"][None, :] >= 0)


def _tiled_forward(q_side, k_side, scale, bias, row_param, rows, cols, stats, axis_name, precision):
    row_stats, col_stats = _split(stats, stats)

    def tile(q_block, k_block, row_block, col_block):
        qb, rb, pb = q_block
        kb, cb = k_block
        logits = _affine(_products(qb, kb, precision)[1], scale, bias)
        valid = _valid_pairs(rb, cb)
        return (
            _fold(row_stats, row_block, logits, rb, cb, pb, valid),
            _fold(col_stats, col_block, logits, rb, cb, pb, valid),
        )

    q, k = q_side[0], k_side[0]
    row0 = [_init_state(s, q.shape[:2], q.dtype) for s in row_stats]
    col0 = [_init_state(s, k.shape[:2], q.dtype) for s in col_stats]
    row_states, col_states = _sweep(tile, row0, col0, (q_side, rows, row_param), (k_side, cols), axis_name)
    return _merge(
        stats,
        [_final_value(s, v) for s, v in zip(row_stats, row_states, strict=True)],
        [_final_value(s, v) for s, v in zip(col_stats, col_states, strict=True)],
    )


def _side_cotangent(d_products, gram, own, other, axis, precision):
    """One tile's share of the gradient of one side (rows, and inverse norms when normalized).

    ``axis`` is the axis of the tile that indexes ``own`` (0 for the queries,
    1 for the keys); no tile is transposed in memory.
    """
    (_, x_inv), (y, y_inv) = own, other
    if y_inv is not None:
        d_products = d_products * jnp.expand_dims(y_inv, axis)
    d_x = jnp.matmul(d_products if axis == 0 else d_products.T, y, precision=precision)
    if x_inv is None:
        return d_x, None
    return x_inv[:, None] * d_x, jnp.sum(d_products * gram, axis=1 - axis)


def _tiled_backward(
    q_side, k_side, scale, bias, row_param, rows, cols, finals, cts, stats, axis_name, precision
):
    row_finals, col_finals = _split(stats, finals)
    row_cts, col_cts = _split(stats, cts)

    def tile(q_block, k_block, row_block, col_block):
        qb, rb, pb, rf, rc = q_block
        kb, cb, cf, cc = k_block
        dq, dp, dscale, dbias = row_block
        gram, products = _products(qb, kb, precision)
        logits = _affine(products, scale, bias)
        valid = _valid_pairs(rb, cb)
        d_logits, d_param = _tile_cotangent(
            stats, logits, rb, cb, pb, valid, _merge(stats, rf, cf), _merge(stats, rc, cc)
        )
        d_products = scale * d_logits
        add = functools.partial(jax.tree_util.tree_map, jnp.add)
        dq = add(dq, _side_cotangent(d_products, gram, qb, kb, 0, precision))
        dk = add(col_block, _side_cotangent(d_products, gram, kb, qb, 1, precision))
        dscale = dscale + jnp.sum(d_logits * products, axis=1)
        if dbias is not None:
            dbias = dbias + jnp.sum(d_logits, axis=1)
        if dp is not None:
            dp = dp + d_param
        return (dq, dp, dscale, dbias), dk

    def zeros(tree):
        return jax.tree_util.tree_map(jnp.zeros_like, tree)

    q = q_side[0]
    per_row = jnp.zeros(q.shape[:2], q.dtype)
    row0 = (zeros(q_side), zeros(row_param), per_row, None if bias is None else per_row)
    (dq, dp, dscale, dbias), dk = _sweep(
        tile,
        row0,
        zeros(k_side),
        (q_side, rows, row_param, row_finals, row_cts),
        (k_side, cols, col_finals, col_cts),
        axis_name,
    )
    dscale = jnp.sum(dscale).astype(scale.dtype)
    dbias = None if bias is None else jnp.sum(dbias).astype(bias.dtype)
    return dq, dk, dscale, dbias, dp


@functools.partial(jax.custom_vjp, nondiff_argnums=(7, 8, 9))
def _tiled_core(q_side, k_side, scale, bias, row_param, rows, cols, stats, axis_name, precision):
    return _tiled_forward(q_side, k_side, scale, bias, row_param, rows, cols, stats, axis_name, precision)


def _tiled_core_fwd(q_side, k_side, scale, bias, row_param, rows, cols, stats, axis_name, precision):
    finals = _tiled_forward(q_side, k_side, scale, bias, row_param, rows, cols, stats, axis_name, precision)
    return finals, (q_side, k_side, scale, bias, row_param, rows, cols, finals)


def _tiled_core_bwd(stats, axis_name, precision, residuals, cotangents):
    q_side, k_side, scale, bias, row_param, rows, cols, finals = residuals
    grads = _tiled_backward(
        q_side, k_side, scale, bias, row_param, rows, cols, finals, cotangents, stats, axis_name, precision
    )
    return (*grads, None, None)


_tiled_core.defvjp(_tiled_core_fwd, _tiled_core_bwd)


def _tiled_stats(q_side, k_side, scale, bias, row_param, rows, cols, stats, block_size, axis_name, precision):
    """The statistics through the tiled custom-VJP scan (a ring over ``axis_name`` if given)."""

    def blocks(tree, pad=0):
        return jax.tree_util.tree_map(lambda v: _tiles.pad_to_blocks(v, block_size, value=pad), tree)

    def aux_blocks(aux):
        return {name: blocks(v, -1 if name == "id" else 0) for name, v in aux.items()}

    scale, bias = _varying((scale, bias), axis_name)
    finals = _tiled_core(
        blocks(q_side),
        blocks(k_side),
        scale,
        bias,
        blocks(row_param),
        aux_blocks(rows),
        aux_blocks(cols),
        stats,
        axis_name,
        precision,
    )
    sizes = {"keys": q_side[0].shape[0], "queries": k_side[0].shape[0]}
    return [f.reshape(-1)[: sizes[s.over]] for s, f in zip(stats, finals, strict=True)]


def _logit_stats(
    q_side, k_side, scale, bias, row_param, rows, cols, stats, *, block_size, axis_name, precision
):
    """Statistics of ``scale * q @ k.T + bias``: dense when ``block_size`` is None, else tiled."""
    args = (q_side, k_side, scale, bias, row_param, rows, cols, stats)
    if block_size is None:
        return _dense_stats(*args, axis_name, precision)
    return _tiled_stats(*args, block_size, axis_name, precision)


# --------------------------------------------------------------------------- losses with labels


def _contrastive_setup(embeddings, labels, fn, temperature, axis_name, precision):
    """Cosine similarities / temperature of local anchors against all candidates, and masks."""
    x, labels, out_dtype = prepare_batch(embeddings, labels, fn)
    _checks.check_temperature(temperature, fn)
    u = _numerics.normalize(x)
    all_u, offset = _gather(u, axis_name)
    all_labels, _ = _gather(labels, axis_name)
    sims = jnp.matmul(u, all_u.T, precision=precision) / temperature
    b, n = sims.shape
    is_self = (jnp.arange(b)[:, None] + offset) == jnp.arange(n)[None, :]
    same = labels[:, None] == all_labels[None, :]
    return sims, same & ~is_self, ~same, is_self, x.dtype, out_dtype


def _labelled_tiled_setup(embeddings, labels, fn, temperature, axis_name):
    """The normalized side of the embeddings, their rows (global ids and labels) and ``1 / T``."""
    x, labels, out_dtype = prepare_batch(embeddings, labels, fn)
    _checks.check_temperature(temperature, fn)
    rows = {"id": _global_ids(x.shape[0], axis_name), "label": labels}
    return _side(x, True), rows, _as_parameter(1 / jnp.asarray(temperature), x.dtype), out_dtype


def ntxent(
    embeddings: ArrayLike,
    labels: ArrayLike,
    temperature: ArrayLike = 0.07,
    *,
    axis_name=None,
    block_size: int | None = None,
    precision=_HIGHEST,
) -> jax.Array:
    r"""NT-Xent (SimCLR's normalized temperature-scaled cross-entropy), as optax's ``ntxent``.

    With ``s_ij = cos(e_i, e_j) / T``, ``P`` the ordered positive pairs
    (same label, ``i != j``) and ``N(i)`` the negatives of ``i``,

    $$
    L = \frac{1}{|P|} \sum_{(i, j) \in P}
    -\log \frac{e^{s_{ij}}}{e^{s_{ij}} + \sum_{k \in N(i)} e^{s_{ik}}}
    $$

    the **mean over all ordered positive pairs**; 0 when there is none (optax
    returns NaN). Each term is computed as ``softplus(LSE_N(i) - s_ij)``.

    Args:
      embeddings: ``(B, d)`` embeddings (normalized inside, with optax's
        epsilon: norms below ``sqrt(finfo.eps)`` are clipped).
      labels: ``(B,)`` integer labels; equal labels are positive pairs.
      temperature: positive temperature ``T`` (may be traced: learnable).
      axis_name: inside ``shard_map``/``pmap``, the mapped axis: the loss is
        that of the batch concatenated over the devices (every device's
        embeddings are candidates) and is the same on every device.
      block_size: ``None`` for the dense ``(B, B)`` similarity matrix; an int
        for the tiled path (two sweeps: the negatives' logsumexp, then the
        positive pairs), with ``axis_name`` a ring of ``ppermute``.
      precision: precision of the similarity matrix product.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
      >>> ntxent(x, jnp.array([0, 0, 1, 1]), 0.5)
      Array(0.2964..., dtype=float32)
      >>> ntxent(x, jnp.array([0, 0, 1, 1]), 0.5, block_size=3)
      Array(0.2964..., dtype=float32)

    References:
      T. Chen et al., A Simple Framework for Contrastive Learning of Visual
      Representations, ICML 2020.

    optax: ntxent; pytorch-metric-learning: NTXentLoss
    """
    fn = "ntxent"
    block_size = _checks.check_block_size(block_size, "block_size", fn)
    if block_size is not None:
        u, rows, scale, out_dtype = _labelled_tiled_setup(embeddings, labels, fn, temperature, axis_name)
        sweep = functools.partial(
            _tiled_stats, block_size=block_size, axis_name=axis_name, precision=precision
        )
        (lse_neg,) = sweep(u, u, scale, None, None, rows, rows, _NTXENT_NEGATIVE_STATS)
        total, count = sweep(u, u, scale, None, lse_neg, rows, rows, _NTXENT_POSITIVE_STATS)
        return _global_mean(jnp.sum(total), jnp.sum(count), axis_name).astype(out_dtype)
    sims, pos, neg, _, dtype, out_dtype = _contrastive_setup(
        embeddings, labels, fn, temperature, axis_name, precision
    )
    lse_neg, has_neg = _numerics.masked_logsumexp(sims, neg)
    terms = jnp.where(has_neg[:, None], jax.nn.softplus(lse_neg[:, None] - sims), 0)
    total = jnp.sum(jnp.where(pos, terms, 0))
    return _global_mean(total, jnp.sum(pos).astype(dtype), axis_name).astype(out_dtype)


def _supcon_mean(lse_all, positive_sum, positive_count, axis_name):
    """Mean over the anchors with a positive of ``lse over A(i) - mean over P(i)``."""
    has_pos = positive_count > 0
    mean_pos = _numerics.safe_divide(positive_sum, positive_count)
    per_anchor = jnp.where(has_pos, lse_all - mean_pos, 0)
    return _global_mean(jnp.sum(per_anchor), jnp.sum(has_pos).astype(per_anchor.dtype), axis_name)


def supervised_contrastive_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: ArrayLike = 0.1,
    axis_name=None,
    block_size: int | None = None,
    precision=_HIGHEST,
) -> jax.Array:
    r"""Supervised contrastive loss (Khosla et al. 2020, the ``L_out`` form).

    With ``s_ij = cos(e_i, e_j) / T``, ``P(i)`` the positives of ``i`` (same
    label, ``j != i``) and ``A(i)`` every ``j != i``,

    $$
    \ell_i = -\frac{1}{|P(i)|} \sum_{p \in P(i)}
    \log \frac{e^{s_{ip}}}{\sum_{a \in A(i)} e^{s_{ia}}}
    $$

    and the result is the **mean of ell_i over the anchors that have at least
    one positive**; anchors without positives are left out, 0 when there is
    none.

    Args:
      embeddings: ``(B, d)`` embeddings (normalized inside).
      labels: ``(B,)`` integer class labels.
      temperature: positive temperature ``T`` (may be traced: learnable).
      axis_name: as in ``ntxent``: the loss of the batch concatenated over
        the devices.
      block_size: ``None`` for the dense ``(B, B)`` similarity matrix; an int
        for the tiled path (per anchor: the online logsumexp over ``A(i)``,
        the sum and the count of the positives, labels travelling with their
        tile), with ``axis_name`` a ring of ``ppermute``.
      precision: precision of the similarity matrix product.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
      >>> supervised_contrastive_loss(x, jnp.array([0, 0, 1, 1]), temperature=0.5)
      Array(0.2964..., dtype=float32)
      >>> supervised_contrastive_loss(x, jnp.array([0, 0, 1, 1]), temperature=0.5, block_size=3)
      Array(0.2964..., dtype=float32)

    References:
      P. Khosla et al., Supervised Contrastive Learning, NeurIPS 2020.

    pytorch-metric-learning: SupConLoss (which returns 0 for a batch with no negative pair)
    """
    fn = "supervised_contrastive_loss"
    block_size = _checks.check_block_size(block_size, "block_size", fn)
    if block_size is not None:
        u, rows, scale, out_dtype = _labelled_tiled_setup(embeddings, labels, fn, temperature, axis_name)
        lse_all, pos_sum, n_pos = _tiled_stats(
            u, u, scale, None, None, rows, rows, _SUPCON_STATS, block_size, axis_name, precision
        )
        return _supcon_mean(lse_all, pos_sum, n_pos, axis_name).astype(out_dtype)
    sims, pos, _, is_self, dtype, out_dtype = _contrastive_setup(
        embeddings, labels, fn, temperature, axis_name, precision
    )
    lse_all, _ = _numerics.masked_logsumexp(sims, ~is_self)
    n_pos = jnp.sum(pos, axis=-1).astype(dtype)
    pos_sum = jnp.sum(jnp.where(pos, sims, 0), axis=-1)
    return _supcon_mean(lse_all, pos_sum, n_pos, axis_name).astype(out_dtype)


# --------------------------------------------------------------------------- query/key pairs


def _cross_entropy_on_diagonal(q, k, temperature, axis_name, precision):
    """Dense: mean over the queries of ``logsumexp_j s_ij - s_ii``, ``s = q @ all_k.T / T``."""
    all_k, offset = _gather(k, axis_name)
    logits = jnp.matmul(q, all_k.T, precision=precision) / temperature
    target = jnp.arange(q.shape[0]) + offset
    own = jnp.take_along_axis(logits, target[:, None], axis=-1)[:, 0]
    per_query = jax.nn.logsumexp(logits, axis=-1) - own
    count = jnp.asarray(q.shape[0], q.dtype)
    return _global_mean(jnp.sum(per_query), count, axis_name)


def _softmax_on_diagonal(q, k, temperature, normalize, stats, block_size, axis_name, precision):
    """Mean over the queries of the mean over ``stats`` of ``lse - s_ii`` (InfoNCE; CLIP both ways)."""
    scale = _as_parameter(1 / jnp.asarray(temperature), q.dtype)
    q_side, k_side = _side(q, normalize), _side(k, normalize)
    ids = {"id": _global_ids(q.shape[0], axis_name)}
    options = dict(block_size=block_size, axis_name=axis_name, precision=precision)
    lses = _logit_stats(q_side, k_side, scale, None, None, ids, ids, stats, **options)
    own = scale * _matching_products(q_side, k_side)
    per_query = sum(lse - own for lse in lses) / len(lses)
    return _global_mean(jnp.sum(per_query), jnp.asarray(q.shape[0], q.dtype), axis_name)


def info_nce(
    queries: ArrayLike,
    keys: ArrayLike,
    *,
    temperature: ArrayLike = 0.07,
    normalize: bool = True,
    axis_name=None,
    block_size: int | None = None,
    precision=_HIGHEST,
) -> jax.Array:
    r"""InfoNCE for query/key pairs: each query's own key against every other key.

    With ``s_ij = q_i . k_j / T`` (cosine similarities when ``normalize``),

    $$
    L = \frac{1}{B} \sum_i -\log \frac{e^{s_{ii}}}{\sum_j e^{s_{ij}}}
    $$

    the **mean over the queries**: softmax cross-entropy of the rows of
    ``queries @ keys.T / T`` with the diagonal as target (CLIP's one
    direction, MoCo with in-batch negatives).

    Args:
      queries: ``(B, d)`` queries.
      keys: ``(B, d)`` keys; ``keys[i]`` is the positive of ``queries[i]``.
      temperature: positive temperature ``T`` (may be traced: learnable).
      normalize: L2-normalize queries and keys first.
      axis_name: inside ``shard_map``/``pmap``, every device's keys are
        negatives of every query, and the result is the mean over all queries
        of all devices.
      block_size: ``None`` for the dense ``(B, B)`` logits; an int for the
        tiled path (``block_size x block_size`` tiles, online logsumexp,
        memory ``O(B d + block_size^2)``), with ``axis_name`` a ring of
        ``ppermute`` instead of an all-gather.
      precision: precision of the similarity matrix product.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> q = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> info_nce(q, q, temperature=1.0)
      Array(0.3132..., dtype=float32)
      >>> info_nce(q, q, temperature=1.0, block_size=1)
      Array(0.3132..., dtype=float32)

    References:
      A. van den Oord, Y. Li, O. Vinyals, Representation Learning with
      Contrastive Predictive Coding, 2018.

    PyTorch: torch.nn.functional.cross_entropy(q @ k.T / T, arange(B))
    """
    fn = "info_nce"
    _checks.check_temperature(temperature, fn)
    block_size = _checks.check_block_size(block_size, "block_size", fn)
    q, k, out_dtype = _pair_inputs(queries, keys, ("queries", "keys"), fn)
    if block_size is not None:
        stats = _INFO_NCE_STATS
        return _softmax_on_diagonal(
            q, k, temperature, normalize, stats, block_size, axis_name, precision
        ).astype(out_dtype)
    if normalize:
        q, k = _numerics.normalize(q), _numerics.normalize(k)
    return _cross_entropy_on_diagonal(q, k, temperature, axis_name, precision).astype(out_dtype)


def clip_loss(
    image_embeddings: ArrayLike,
    text_embeddings: ArrayLike,
    *,
    temperature: ArrayLike = 0.07,
    normalize: bool = True,
    axis_name=None,
    block_size: int | None = None,
    precision=_HIGHEST,
) -> jax.Array:
    r"""CLIP's symmetric contrastive loss: InfoNCE image-to-text and text-to-image, averaged.

    With ``s_ij = x_i . y_j / T`` (cosine similarities when ``normalize``) for
    images ``x`` and texts ``y``,

    $$
    L = \frac{1}{2B} \sum_i \Big[\Big(\log \sum_j e^{s_{ij}} - s_{ii}\Big)
    + \Big(\log \sum_j e^{s_{ji}} - s_{ii}\Big)\Big]
    $$

    that is ``(info_nce(x, y) + info_nce(y, x)) / 2``: the mean over the pairs
    of the row and column softmax cross-entropies of one logits matrix.

    Args:
      image_embeddings: ``(B, d)`` image embeddings.
      text_embeddings: ``(B, d)``; ``text_embeddings[i]`` is the caption of image ``i``.
      temperature: positive temperature ``T`` (may be traced: CLIP learns
        ``log(1 / T)``).
      normalize: L2-normalize both sides first.
      axis_name: inside ``shard_map``/``pmap``, the loss of the batch
        concatenated over the devices, the same on every device.
      block_size: ``None`` for the dense ``(B, B)`` logits; an int for the
        tiled path (one sweep keeps each row's and each column's online
        logsumexp; memory ``O(B d + block_size^2)``), with ``axis_name`` a
        ring of ``ppermute``: the text blocks travel, and their column
        statistics and gradients come home after a full turn.
      precision: precision of the similarity matrix product.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
      >>> y = jnp.array([[0.9, 0.1], [0.2, 0.9], [0.5, 0.5]])
      >>> clip_loss(x, y, temperature=0.5)
      Array(0.6749..., dtype=float32)
      >>> clip_loss(x, y, temperature=0.5, block_size=2)
      Array(0.6749..., dtype=float32)

    References:
      A. Radford et al., Learning Transferable Visual Models From Natural
      Language Supervision, ICML 2021. Z. Cheng et al., Breaking the Memory
      Barrier: Near Infinite Batch Size Scaling for Contrastive Loss (Inf-CL),
      2024.

    PyTorch: (F.cross_entropy(L, arange(B)) + F.cross_entropy(L.T, arange(B))) / 2, L = x y^T / T
    (open_clip's ClipLoss), in float64
    """
    fn = "clip_loss"
    _checks.check_temperature(temperature, fn)
    block_size = _checks.check_block_size(block_size, "block_size", fn)
    names = ("image_embeddings", "text_embeddings")
    q, k, out_dtype = _pair_inputs(image_embeddings, text_embeddings, names, fn)
    loss = _softmax_on_diagonal(q, k, temperature, normalize, _CLIP_STATS, block_size, axis_name, precision)
    return loss.astype(out_dtype)


def sigmoid_contrastive_loss(
    queries: ArrayLike,
    keys: ArrayLike,
    *,
    logit_scale: ArrayLike = 10.0,
    logit_bias: ArrayLike = -10.0,
    normalize: bool = True,
    axis_name=None,
    block_size: int | None = None,
    precision=_HIGHEST,
) -> jax.Array:
    r"""SigLIP's pairwise sigmoid loss: every query/key pair is a binary classification.

    With ``s_ij = t q_i . k_j + b`` (cosine similarities when ``normalize``),
    ``z_ii = +1`` and ``z_ij = -1`` for ``i != j``,

    $$
    L = -\frac{1}{B} \sum_i \sum_j \log \sigma(z_{ij} s_{ij})
    $$

    the **sum over all pairs divided by the batch size** (the paper's
    normalisation). The defaults ``t = 10``, ``b = -10`` are the paper's
    initialisation.

    Args:
      queries: ``(B, d)`` queries (images).
      keys: ``(B, d)`` keys (texts); ``keys[i]`` is the positive of ``queries[i]``.
      logit_scale: positive scale ``t`` (may be traced; SigLIP learns ``log t``).
      logit_bias: bias ``b`` (may be traced).
      normalize: L2-normalize queries and keys first.
      axis_name: inside ``shard_map``/``pmap``, the loss of the batch
        concatenated over the devices (the mean over all queries of all
        devices), the same on every device.
      block_size: ``None`` for the dense ``(B, B)`` logits; an int for the
        tiled path (memory ``O(B d + block_size^2)``), with ``axis_name`` a
        ring of ``ppermute`` (as big_vision's chunked and open_clip's
        neighbour-exchange SigLIP).
      precision: precision of the similarity matrix product.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> q = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
      >>> k = jnp.array([[0.9, 0.1], [0.2, 0.9], [0.5, 0.5]])
      >>> sigmoid_contrastive_loss(q, k)
      Array(0.9263..., dtype=float32)
      >>> sigmoid_contrastive_loss(q, k, block_size=2)
      Array(0.9263..., dtype=float32)

    References:
      X. Zhai, B. Mustafa, A. Kolesnikov, L. Beyer, Sigmoid Loss for Language
      Image Pre-Training, ICCV 2023.

    PyTorch: -F.logsigmoid(z * (t q k^T + b)).sum() / B (big_vision's / open_clip's SigLipLoss), in float64
    """
    fn = "sigmoid_contrastive_loss"
    _checks.check_number(logit_scale, "logit_scale", fn, low=0.0, low_inclusive=False)
    _checks.check_number(logit_bias, "logit_bias", fn)
    block_size = _checks.check_block_size(block_size, "block_size", fn)
    q, k, out_dtype = _pair_inputs(queries, keys, ("queries", "keys"), fn)
    scale, bias = _as_parameter(logit_scale, q.dtype), _as_parameter(logit_bias, q.dtype)
    ids = {"id": _global_ids(q.shape[0], axis_name)}
    options = dict(block_size=block_size, axis_name=axis_name, precision=precision)
    sides = _side(q, normalize), _side(k, normalize)
    (log_likelihood,) = _logit_stats(*sides, scale, bias, None, ids, ids, _SIGLIP_STATS, **options)
    count = jnp.asarray(q.shape[0], q.dtype)
    return _global_mean(-jnp.sum(log_likelihood), count, axis_name).astype(out_dtype)


def npair_loss(anchors: ArrayLike, positives: ArrayLike, *, precision=_HIGHEST) -> jax.Array:
    r"""N-pair loss (Sohn 2016): each anchor's own positive against the other anchors' positives.

    $$
    L = \frac{1}{B} \sum_i -\log \frac{e^{a_i \cdot p_i}}{\sum_j e^{a_i \cdot p_j}}
    $$

    the **mean over the anchors** of the softmax cross-entropy of
    ``anchors @ positives.T`` with the diagonal as target (raw dot products,
    no temperature; the paper's L2 penalty on the embeddings is left to the
    caller).

    Args:
      anchors: ``(B, d)`` anchors, one per class.
      positives: ``(B, d)`` positives; ``positives[i]`` has the class of ``anchors[i]``.
      precision: precision of the matrix product.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> npair_loss(a, a)
      Array(0.3132..., dtype=float32)

    References:
      K. Sohn, Improved Deep Metric Learning with Multi-class N-pair Loss
      Objective, NeurIPS 2016.

    pytorch-metric-learning: NPairsLoss
    """
    a, p, out_dtype = _pair_inputs(anchors, positives, ("anchors", "positives"), "npair_loss")
    return _cross_entropy_on_diagonal(a, p, 1.0, None, precision).astype(out_dtype)
