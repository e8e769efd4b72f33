"""Embedding-model training losses: multiple negatives ranking, GISTEmbed, CoSENT, AnglE, Matryoshka.

The objectives sentence-transformers trains text-embedding models with, on
plain arrays of embeddings:

* ``multiple_negatives_ranking_loss`` (MNRL, InfoNCE with in-batch and hard
  negatives; the GTE directions, hardness weighting, nested Matryoshka sizes);
* ``gist_loss`` (GISTEmbed: a guide model's similarities remove false
  negatives from the softmax);
* ``cosent_loss`` and ``angle_loss`` (ranking of scored pairs);
* ``matryoshka_loss`` (any loss summed over nested embedding sizes).

MNRL and GIST read their score matrices through per-row (and, for MNRL's
``doc_to_query`` direction, per-column) logsumexps computed by the tiling
layer (``_tile_engine``): one description of the tile, evaluated densely
(whole matrices, plain autodiff) or in tiles (a ``jax.custom_vjp`` that never
holds the ``B x B(1+n)`` scores), and with ``axis_name`` as a ring of
``ppermute`` over the devices. Rows and columns are both *examples*: a row
block carries its queries (and documents), a column block its documents, its
hard negatives and its queries, and each tile returns one score matrix per
(direction, candidate column, nested size). The nested sizes share one pass:
the tile's products are accumulated over feature segments, so every prefix
dot product comes from one matrix product of the full width.

Cosines are scale-free: each row is divided by its largest magnitude before
its squared norm is taken, so an embedding scaled by any positive factor
(1e-30 ... 1e30 in float32) gives the same cosines; a zero embedding (or a zero
prefix) normalises to zero, with a zero gradient.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _block_policy, _checks, _numerics, _tile_engine, _tiles

__all__ = [
    "angle_loss",
    "cosent_loss",
    "gist_loss",
    "matryoshka_loss",
    "multiple_negatives_ranking_loss",
]

_HIGHEST = jax.lax.Precision.HIGHEST
DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
PARTITION_MODES = ("joint", "per_direction")
HARDNESS_MODES = (None, "in_batch_negatives", "hard_negatives", "all_negatives")
SIMILARITIES = ("cosine", "dot")
MARGIN_STRATEGIES = ("absolute", "relative")

# --------------------------------------------------------------------------- normalisation


def prefix_norms(x, bounds: Sequence[int]):
    """Scale-free norms of nested prefixes: ``1 / |x[:s_K]|`` and the ratios ``|x[:s_K]| / |x[:s_k]|``.

    ``bounds = (0, s_1, ..., s_K)`` increasing. Returns ``inv (..., 1)``, the
    inverse norm of the largest prefix, and ``ratio (..., K - 1)``, so that
    the unit prefix ``k`` is ``x[:s_k] * inv * ratio[k]``: products of
    ``x * inv`` (entries at most 1 in magnitude) never overflow or underflow.
    Each row is divided by its largest magnitude (a constant for autodiff: the
    norms are homogeneous, so the gradient is exact) before squaring. A zero
    prefix has ``inv`` or ``ratio`` 0: it normalises to the zero vector, with
    a zero gradient.
    """
    top = bounds[-1]
    m = jax.lax.stop_gradient(jnp.max(jnp.abs(x[..., :top]), axis=-1, keepdims=True, initial=0))
    m = jnp.where(m > 0, m, 1)
    y = x / m
    squares = [
        jnp.sum(y[..., a:b] * y[..., a:b], axis=-1) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    ]
    sq = jnp.cumsum(jnp.stack(squares, axis=-1), axis=-1)
    full = sq[..., -1:]
    has = full > 0
    inv = jnp.where(has, jax.lax.rsqrt(jnp.where(has, full, 1)), 0) / m
    part = sq[..., :-1]
    has = (part > 0) & (full > 0)
    ratio = jnp.where(has, jnp.sqrt(jnp.where(has, full, 1) / jnp.where(has, part, 1)), 0)
    return inv, ratio


def inverse_norms(x, bounds: Sequence[int] | None = None):
    """``(..., 1)`` scale-free inverse L2 norm of ``x[..., :bounds[-1]]`` (0 for a zero row)."""
    return prefix_norms(x, (0, x.shape[-1]) if bounds is None else bounds)[0]


def _unit(x):
    """``x / |x|`` along the last axis, scale-free; a zero row stays zero."""
    return x * inverse_norms(x)


# --------------------------------------------------------------------------- argument checks


def _embeddings(x, name, fn, ndim=2):
    _checks.check_ndim(x, name, fn, ndim=ndim)
    return x


def _same_batch(first, other, names, fn, *, axes=(0, -1)):
    """``other`` has ``first``'s batch size (axis 0) and feature size (last axis)."""
    s0, s1 = np.shape(first), np.shape(other)
    for axis in axes:
        what = "batch size" if axis == 0 else "feature size"
        if s0[axis] != s1[axis]:
            raise ValueError(
                f"{fn}: `{names[1]}` must have the {what} of `{names[0]}` ({s0[axis]}); "
                f"got shapes {tuple(s0)} and {tuple(s1)}."
            )


def _negatives(negatives, first, name, fn):
    """``negatives (B, n, d)`` or None (``n = 0``)."""
    if negatives is None:
        return None
    _checks.check_ndim(negatives, name, fn, ndim=3)
    shape = np.shape(negatives)
    if shape[0] != np.shape(first)[0] or shape[2] != np.shape(first)[-1]:
        raise ValueError(
            f"{fn}: `{name}` must have shape (B, n, d) = ({np.shape(first)[0]}, n, {np.shape(first)[-1]}) "
            f"(each example's hard negatives); got {tuple(shape)}."
        )
    return negatives


def _directions(directions, partition_mode, fn):
    if isinstance(directions, str) or not isinstance(directions, Sequence):
        raise TypeError(
            f"{fn}: `directions` must be a tuple of direction names (e.g. ('query_to_doc',)); "
            f"got {directions!r}."
        )
    if not directions:
        raise ValueError(f"{fn}: `directions` must name at least one direction; got {tuple(directions)!r}.")
    for d in directions:
        _checks.check_option(d, "directions", DIRECTIONS, fn)
    if "query_to_doc" not in directions:
        raise ValueError(
            f"{fn}: `directions` must include 'query_to_doc' (it holds the positive pair); "
            f"got {tuple(directions)!r}."
        )
    _checks.check_option(partition_mode, "partition_mode", PARTITION_MODES, fn)
    if partition_mode == "per_direction" and {"query_to_query", "doc_to_doc"} & set(directions):
        raise ValueError(
            f"{fn}: `partition_mode`='per_direction' needs every direction's candidates to include the "
            f"positive pair, which 'query_to_query' and 'doc_to_doc' do not; got directions "
            f"{tuple(directions)!r}. Use partition_mode='joint'."
        )
    return frozenset(directions)


def _sizes(dims, weights, d, fn, dims_name="matryoshka_dims", weights_name="matryoshka_weights"):
    """Nested sizes (ascending, unique, in (0, d]) and their weights (aligned with them)."""
    if isinstance(dims, (int, np.integer)) or not isinstance(dims, Sequence):
        raise TypeError(f"{fn}: `{dims_name}` must be a sequence of positive ints; got {dims!r}.")
    if len(dims) == 0:
        raise ValueError(f"{fn}: `{dims_name}` must name at least one size; got {tuple(dims)!r}.")
    for s in dims:
        _checks.check_positive_int(s, dims_name, fn, allow_none=False)
        if s > d:
            raise ValueError(
                f"{fn}: every entry of `{dims_name}` must be at most the embedding size {d}; "
                f"got {tuple(dims)!r}."
            )
    if len(set(dims)) != len(dims):
        raise ValueError(f"{fn}: `{dims_name}` has repeated sizes; got {tuple(dims)!r}.")
    if weights is None:
        weights = (1.0,) * len(dims)
    elif isinstance(weights, (numbers.Number, str)) or np.ndim(weights) != 1 or len(weights) != len(dims):
        raise ValueError(
            f"{fn}: `{weights_name}` must have one weight per size of `{dims_name}` ({len(dims)}); "
            f"got {weights!r}."
        )
    else:
        for w in weights:
            _checks.check_number(w, weights_name, fn)
    order = sorted(range(len(dims)), key=lambda i: dims[i])
    return tuple(int(dims[i]) for i in order), [weights[i] for i in order]


def _parameter(value, dtype):
    return jnp.asarray(value).astype(dtype)


# --------------------------------------------------------------------------- tile products


def _segment_products(a, b, bounds, precision):
    """Prefix dot products ``a[:, :s_k] @ b[:, :s_k].T`` for every size, from one pass over the features.

    ``a (r, d)``, ``b (c, d)``: one ``(r, c)`` matrix per size. Segment ``k``
    covers features ``bounds[k]:bounds[k + 1]``; the prefixes are running sums
    of the segments' products.
    """
    out, total = [], None
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        part = jnp.matmul(a[:, lo:hi], b[:, lo:hi].T, precision=precision)
        total = part if total is None else total + part
        out.append(total)
    return out


def _columns(side, keys, suffixes=("", "_inv", "_ratio")):
    """The column blocks ``keys`` of a side stacked into ``(c w, ...)`` arrays, one per suffix (the
    embeddings, their inverse norms, their prefix ratios; None where the side has none); hard
    negatives ``(c, n, ...)`` give one block per column ``j``."""
    out = []
    for suffix in suffixes:
        parts = []
        for key in keys:
            x = side.get(key + suffix)
            if x is None:
                continue
            parts += [x[:, j] for j in range(x.shape[1])] if side[key].ndim == 3 else [x]
        out.append(None if not parts else parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=0))
    return out


def _similarities(a, a_norms, b, b_norms, bounds, precision, scale):
    """Per size, the ``(r, c)`` logits ``scale * sim`` of ``a (r, d)`` against ``b (c, d)``.

    ``a_norms``/``b_norms``: ``(inv, ratio)`` of :func:`prefix_norms` (cosines)
    or None (dot products). The row factors (the scale and the inverse norms)
    multiply the ``(r, d)`` and ``(c, d)`` blocks before the product, never
    the tile (a factor on the tile would make its gradient a tile-sized
    reduction); each smaller prefix product is then multiplied by its norm
    ratios.
    """
    if a_norms is None:
        return _segment_products(a * scale, b, bounds, precision)
    (a_inv, a_ratio), (b_inv, b_ratio) = a_norms, b_norms
    products = _segment_products(a * (a_inv * scale), b * b_inv, bounds, precision)
    return [p * a_ratio[:, k][:, None] * b_ratio[None, :, k] for k, p in enumerate(products[:-1])] + [
        products[-1]
    ]


def _blocks(z, width):
    """The ``(r, c)`` column blocks of a ``(r, c * width)`` matrix."""
    c = z.shape[1] // width
    return [z[:, i * c : (i + 1) * c] for i in range(width)]


def _others(rows, cols):
    """Pairs of different examples (``i != b``, global positions)."""
    return rows["index"][:, None] != cols["index"][None, :]


def _same(rows, cols):
    return rows["index"][:, None] == cols["index"][None, :]


# --------------------------------------------------------------------------- multiple negatives ranking


class _RankingLayout(NamedTuple):
    """Which score matrices a ranking tile returns; static and hashable."""

    sizes: int  # K nested sizes
    negatives: int  # n hard negatives per example
    query_to_query: bool
    doc_to_query: bool
    doc_to_doc: bool
    penalty_on_positives: bool  # hardness weighting touches the documents' block
    joint: bool = False  # query_to_doc as one (r, (1 + n) c) matrix: one logsumexp over every candidate

    def per_size(self) -> dict:
        """Positions, within one size's run of matrices, of each direction's matrices."""
        n, i, out = self.negatives, 0, {}
        width = 1 if self.joint else 1 + n
        out["qd"] = list(range(i, i + width))
        i += width
        if self.query_to_query:
            out["qq"], i = [i], i + 1
        if self.doc_to_query:
            if self.penalty_on_positives or self.joint:
                out["dq"], i = [i], i + 1
            else:  # the documents' block of query_to_doc, read by columns
                out["dq"] = [out["qd"][0]]
        if self.doc_to_doc:
            out["dd"] = list(range(i, i + 1 + n))
            i += 1 + n
        out["count"] = i
        return out

    def index(self, k: int, name: str) -> list[int]:
        run = self.per_size()
        return [k * run["count"] + j for j in run[name]]

    @property
    def count(self) -> int:
        return self.sizes * self.per_size()["count"]


class _RankingScores(NamedTuple):
    """The tile of a ranking loss: per nested size, ``scale * sim`` of every (direction, candidate column).

    ``rows``: ``q`` (and ``d`` for ``doc_to_doc``) with inverse prefix norms
    ``q_inv``/``d_inv``; ``cols``: ``doc``, ``neg`` ``(c, n, d)`` and ``q``
    (for ``query_to_query``) with theirs. The hardness penalty
    ``strength * stop_gradient(sim)`` is added to the chosen negatives of
    ``query_to_doc``.
    """

    layout: _RankingLayout
    bounds: tuple
    hardness: str | None
    precision: Any

    def __call__(self, params, rows, cols):
        lay, bounds, prec = self.layout, self.bounds, self.precision
        scale, n = params["scale"], lay.negatives

        def norms(side):  # (inv, ratio) or None
            return None if side[1] is None else (side[1], side[2])

        def products(row, keys):  # one product per size over the stacked candidate columns
            b = _columns(cols, keys)
            a = (rows[row], rows.get(row + "_inv"), rows.get(row + "_ratio"))
            return _similarities(a[0], norms(a), b[0], norms(b), bounds, prec, scale)

        def width(keys):
            return sum(cols[key].shape[1] if cols[key].ndim == 3 else 1 for key in keys)

        def sims(row, keys):
            return [_blocks(z, width(keys)) for z in products(row, keys)]

        candidates = ["doc"] + (["neg"] if n else [])
        q_keys = candidates + (["q"] if lay.query_to_query else [])
        q_wide = products("q", q_keys)
        q_sims = [_blocks(z, width(q_keys)) for z in q_wide]
        d_sims = sims("d", candidates) if lay.doc_to_doc else None
        others = _others(rows, cols)
        out = []
        for k in range(lay.sizes):
            logits = q_sims[k][: 1 + n]  # scale * sim of the document and the negatives
            if lay.joint:  # every candidate of query_to_doc in one matrix (no penalty)
                z = q_wide[k]
                out.append(z[:, : z.shape[1] // width(q_keys) * (1 + n)] if lay.query_to_query else z)
            elif self.hardness is not None:
                pen_pos, pen_neg = {
                    "in_batch_negatives": (others, others),
                    "hard_negatives": (None, ~others),
                    "all_negatives": (others, True),
                }[self.hardness]
                # strength * stop_gradient(sim), sim = logits / scale: no gradient to the scale either
                penalty = functools.partial(_penalty, params["strength"] / jax.lax.stop_gradient(scale))
                out.append(logits[0] if pen_pos is None else logits[0] + penalty(logits[0], pen_pos))
                out += [z + penalty(z, pen_neg) for z in logits[1:]]
            else:
                out += logits
            if lay.query_to_query:
                out.append(q_sims[k][1 + n])
            if lay.doc_to_query and (lay.penalty_on_positives or lay.joint):
                out.append(logits[0])
            if lay.doc_to_doc:
                out += d_sims[k]
        return tuple(out)


def _penalty(strength, logits, mask):
    """``strength * stop_gradient(logits)`` on ``mask`` (a boolean matrix, or True for every pair)."""
    pen = strength * jax.lax.stop_gradient(logits)
    return pen if mask is True else jnp.where(mask, pen, 0)


class _Logit(NamedTuple):
    """The term ``z[index]`` of a tile (a hashable callback); of a matrix of ``width`` column blocks
    side by side, its first block."""

    index: int
    width: int = 1

    def __call__(self, scores, rows, cols):
        z = scores[self.index]
        return z if self.width == 1 else z[:, : z.shape[1] // self.width]


def _ranking_stats(layout: _RankingLayout) -> tuple:
    """Per size: the logsumexps of every direction; last, per size, the positive logit (the
    diagonal of the query-document block, which no hardness penalty touches)."""
    stat = _tile_engine.Stat
    stats = []
    for k in range(layout.sizes):
        stats += [stat("lse", score=i) for i in layout.index(k, "qd")]
        if layout.query_to_query:
            stats += [stat("lse", mask=_others, score=i) for i in layout.index(k, "qq")]
        if layout.doc_to_query:
            stats += [stat("lse", "col", score=i) for i in layout.index(k, "dq")]
        if layout.doc_to_doc:
            stats += [stat("lse", mask=_others, score=i) for i in layout.index(k, "dd")]
    width = 1 + layout.negatives if layout.joint else 1
    stats += [
        stat("sum", mask=_same, term=_Logit(layout.index(k, "qd")[0], width)) for k in range(layout.sizes)
    ]
    return tuple(stats)


def _lse(values):
    """``log sum exp`` over a list of ``(B,)`` logsumexps (``-inf`` entries: empty sets)."""
    if len(values) == 1:
        return values[0]
    return jax.nn.logsumexp(jnp.stack(values), axis=0)


def _ranking_blocks(rows, *, block_size, axis_name, matrices):
    """The (row, column) blocks of the contrastive block policy, or None for the dense path.

    ``matrices``: the score matrices of one nested size per tile (its dense
    intermediate is ``rows x columns x matrices`` elements, ``B x B(1+n)``
    for plain MNRL). Nested Matryoshka sizes are not counted: they share the
    products of the largest size, and narrower column blocks would cost the
    tile's matrix products their speed.
    """
    n = jax.tree_util.tree_leaves(rows)[0].shape[0]
    m = n * (jax.lax.axis_size(axis_name) if axis_name is not None else 1)
    return _block_policy.resolve_blocks(
        _block_policy.CONTRASTIVE, n, m, block_size, block_size, col_width=max(matrices, 1)
    )


def multiple_negatives_ranking_loss(
    queries: ArrayLike,
    documents: ArrayLike,
    negatives: ArrayLike | None = None,
    *,
    scale: ArrayLike = 20.0,
    similarity: str = "cosine",
    directions: Sequence[str] = ("query_to_doc",),
    partition_mode: str = "joint",
    hardness_mode: str | None = None,
    hardness_strength: ArrayLike = 0.0,
    matryoshka_dims: Sequence[int] | None = None,
    matryoshka_weights: Sequence[float] | None = None,
    block_size: int | None = None,
    axis_name=None,
    precision=_HIGHEST,
) -> jax.Array:
    r"""Multiple negatives ranking loss (InfoNCE with in-batch and hard negatives), as sentence-transformers.

    With ``s(x, y)`` the cosine (or dot product) of two embeddings, ``t`` the
    scale, query ``q_i``, its document ``d_i`` and hard negatives
    ``n_{i1} ... n_{in}``, the candidates ``C = {d_b, n_{bj}}`` of every
    example ``b`` and ``P_i`` the pool of logits of query ``i``,

    $$
    L = \frac{1}{B} \sum_i \Big(\log \sum_{z \in P_i} e^{z} - t\, s(q_i, d_i)\Big)
    $$

    the **mean over the queries** (of every device with ``axis_name``).
    ``P_i`` holds, for each of ``directions``:

    * ``"query_to_doc"``: ``t s(q_i, c)`` for every candidate ``c`` in ``C``;
    * ``"query_to_query"``: ``t s(q_i, q_b)``, ``b != i``;
    * ``"doc_to_query"``: ``t s(q_b, d_i)`` for every query ``b``;
    * ``"doc_to_doc"``: ``t s(d_i, c)`` for the candidates of the other
      examples (``b != i``).

    ``partition_mode="joint"`` takes one logsumexp over the union (GTE's
    improved contrastive loss with all four, Li et al. 2023);
    ``"per_direction"`` averages one logsumexp per direction (symmetric
    InfoNCE with ``("query_to_doc", "doc_to_query")``). ``hardness_mode``
    adds ``hardness_strength * stop_gradient(s(q_i, c))`` to the
    ``query_to_doc`` logits of the other examples' candidates
    (``"in_batch_negatives"``, Lan et al. 2025), of the query's own hard
    negatives (``"hard_negatives"``, EmbeddingGemma) or of both
    (``"all_negatives"``); the positive is never penalised.

    ``matryoshka_dims`` ``(s_1, ..., s_K)``: the loss is
    ``sum_k w_k L(q[:, :s_k], d[:, :s_k], n[..., :s_k])`` with each truncated
    embedding L2-normalised (sentence-transformers' ``MatryoshkaLoss``, whose
    ``shrink`` normalises, so every size uses cosines whatever
    ``similarity``), and every size comes from one pass over the candidates:
    each tile's products are accumulated over the feature segments between
    consecutive sizes, so the similarity work is that of the largest size,
    once.

    Args:
      queries: ``(B, d)`` query (anchor) embeddings.
      documents: ``(B, d)``; ``documents[i]`` is the positive of ``queries[i]``.
      negatives: ``(B, n, d)`` or None; ``negatives[i, j]`` is query ``i``'s
        ``j``-th hard negative (sentence-transformers' input column ``2 + j``).
        Every query sees every example's negatives as candidates.
      scale: positive logit scale ``t`` (``1 / temperature``; may be traced).
      similarity: ``"cosine"`` (embeddings normalised inside, scale-free) or
        ``"dot"``.
      directions: a tuple of the direction names above; must include
        ``"query_to_doc"``.
      partition_mode: ``"joint"`` or ``"per_direction"`` (only with
        ``"query_to_doc"`` and ``"doc_to_query"``).
      hardness_mode: None, ``"in_batch_negatives"``, ``"hard_negatives"`` or
        ``"all_negatives"``.
      hardness_strength: non-negative ``alpha`` of the hardness penalty
        (Lan et al. use 9, EmbeddingGemma 5).
      matryoshka_dims: nested sizes (each in ``(0, d]``, no repeats) or None.
      matryoshka_weights: one weight per size (default 1 each).
      block_size: ``None``: dense while the ``B x B(1+n)`` logits of every
        direction and size (all devices' candidates) have at most ``2^24``
        entries, else tiles (the library's block policy); an int: tiles of
        ``block_size`` queries against the candidates of ``block_size``
        examples (memory ``O(B (1+n) d + block_size^2 (1+n))`` per
        direction and size; the scores are never held).
      axis_name: inside ``shard_map``/``pmap``, the mapped batch axis: every
        device's documents, negatives and queries are candidates (as
        sentence-transformers' ``gather_across_devices=True``) and the result
        is the mean over all queries, the same on every device. Dense: the
        candidates are all-gathered; tiled: a ring of ``ppermute``.
      precision: precision of the similarity matrix products.

    Returns:
      A scalar (0 for an empty batch).

    Zero embeddings normalise to zero (cosine 0 with everything) with a zero
    gradient (sentence-transformers' ``F.normalize`` gives the same value);
    hardness penalties carry no gradient.

    Forward mode on the tiled path (a custom VJP): ``jax.jvp`` / ``jax.jacfwd`` around this
    function differentiate its tiled forward sweep instead; around a function already
    traced (``jax.jvp(jax.jit(f))``) JAX refuses the custom VJP: put ``jit`` outside, or
    use the dense path (``block_size=None`` under the budget).

    Examples:
      >>> import jax.numpy as jnp
      >>> q = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
      >>> d = jnp.array([[0.9, 0.1], [0.2, 0.9], [0.5, 0.5]])
      >>> n = jnp.array([[[0.0, 1.0]], [[1.0, 0.0]], [[-0.6, 0.8]]])
      >>> multiple_negatives_ranking_loss(q, d, n, scale=5.0)
      Array(0.9216..., dtype=float32)
      >>> multiple_negatives_ranking_loss(q, d, n, scale=5.0, block_size=2)
      Array(0.9216..., dtype=float32)

    References:
      M. Henderson et al., Efficient Natural Language Response Suggestion for
      Smart Reply, 2017. Z. Li et al., Towards General Text Embeddings with
      Multi-stage Contrastive Learning, 2023. A. Kusupati et al., Matryoshka
      Representation Learning, NeurIPS 2022.

    sentence-transformers 6.2.0: MultipleNegativesRankingLoss.compute_loss_from_embeddings (and
    MatryoshkaLoss around it)
    """
    fn = "multiple_negatives_ranking_loss"
    _embeddings(queries, "queries", fn)
    _embeddings(documents, "documents", fn)
    _same_batch(queries, documents, ("queries", "documents"), fn)
    _negatives(negatives, queries, "negatives", fn)
    _checks.check_temperature(scale, fn, "scale")
    _checks.check_option(similarity, "similarity", SIMILARITIES, fn)
    dirs = _directions(directions, partition_mode, fn)
    _checks.check_option(hardness_mode, "hardness_mode", HARDNESS_MODES, fn)
    _checks.check_number(hardness_strength, "hardness_strength", fn, low=0.0)
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)
    d = np.shape(queries)[-1]
    if matryoshka_dims is None:
        if matryoshka_weights is not None:
            raise ValueError(
                f"{fn}: `matryoshka_weights` needs `matryoshka_dims`; got weights {matryoshka_weights!r}."
            )
        sizes, weights = (d,), [1.0]
        normalized = similarity == "cosine"
    else:
        sizes, weights = _sizes(matryoshka_dims, matryoshka_weights, d, fn)
        normalized = True
    arrays = (queries, documents) if negatives is None else (queries, documents, negatives)
    *arrays, out_dtype = _numerics.as_float(*arrays)
    q, doc = arrays[0], arrays[1]
    neg = arrays[2] if negatives is not None and np.shape(negatives)[1] > 0 else None
    n_neg = 0 if neg is None else neg.shape[1]
    bounds = (0, *sizes)

    layout = _RankingLayout(
        sizes=len(sizes),
        negatives=n_neg,
        query_to_query="query_to_query" in dirs,
        doc_to_query="doc_to_query" in dirs,
        doc_to_doc="doc_to_doc" in dirs,
        penalty_on_positives=hardness_mode in ("in_batch_negatives", "all_negatives"),
    )

    def side(**named):
        out = {}
        for key, x in named.items():
            out[key] = x
            if normalized:
                out[key + "_inv"], ratio = prefix_norms(x, bounds)
                if len(sizes) > 1:
                    out[key + "_ratio"] = ratio
        return out

    rows = side(q=q, **({"d": doc} if layout.doc_to_doc else {}))
    cols = side(doc=doc, **({"neg": neg} if n_neg else {}), **({"q": q} if layout.query_to_query else {}))
    params = {"scale": _parameter(scale, q.dtype)}
    if hardness_mode is not None:
        params["strength"] = _parameter(hardness_strength, q.dtype)
    blocks = _ranking_blocks(
        rows, block_size=block_size, axis_name=axis_name, matrices=layout.per_size()["count"]
    )
    if blocks is None and hardness_mode is None:
        # dense: query_to_doc as one matrix, one logsumexp over every candidate (tiles keep one matrix
        # per candidate column: the engine's tiles are (rows, columns) of examples)
        layout = layout._replace(joint=True)
    scores = _RankingScores(layout, bounds, hardness_mode, precision)
    stats = _ranking_stats(layout)
    rb, cb = (None, None) if blocks is None else blocks
    tiling = _tile_engine.Tiling(scores, stats, rb, cb, axis_name=axis_name)
    out = _tile_engine.statistics(tiling, params, rows, cols)

    positives = jnp.stack(out[-len(sizes) :], axis=-1)  # the positive logits (never penalised)

    it = iter(out)
    total = jnp.zeros((), positives.dtype)
    for k, w in enumerate(weights):
        per_direction = [_lse([next(it) for _ in layout.index(k, "qd")])]
        if layout.query_to_query:
            per_direction.append(next(it))
        if layout.doc_to_query:
            per_direction.append(next(it))
        if layout.doc_to_doc:
            per_direction.append(_lse([next(it) for _ in layout.index(k, "dd")]))
        if partition_mode == "joint":
            log_z = _lse(per_direction)
        else:
            log_z = sum(per_direction) / len(per_direction)
        total = total + _parameter(w, positives.dtype) * jnp.sum(log_z - positives[:, k])
    count = jnp.asarray(q.shape[0], positives.dtype)
    return _tiles.global_mean(total, count, axis_name).astype(out_dtype)


# --------------------------------------------------------------------------- GISTEmbed


class _GuideMask(NamedTuple):
    """Keeps the pairs whose guide similarity is at most the row's threshold (and the positive pair).

    ``which``: ``"ap"``, ``"aa"``, ``"pp"`` or ``("an", j)``; the guide's
    unit embeddings are in the blocks' data (``ga``, ``gp``, ``gn``) and the
    row threshold in ``thr``.
    """

    which: Any
    precision: Any

    def __call__(self, rows, cols):
        mm = functools.partial(jnp.matmul, precision=self.precision)
        if self.which == "ap":
            guide = mm(rows["ga"], cols["gp"].T)
        elif self.which == "aa":
            guide = mm(rows["ga"], cols["ga"].T)
        elif self.which == "pp":
            guide = mm(rows["gp"], cols["gp"].T)
        else:
            guide = mm(rows["ga"], cols["gn"][:, self.which[1]].T)
        keep = ~(guide > rows["thr"][:, None])
        return keep | _same(rows, cols) if self.which == "ap" else keep


class _GistScores(NamedTuple):
    """The tile of GISTEmbed: ``scale * cos`` of the anchor-positive, anchor-anchor, positive-positive and
    anchor-negative blocks."""

    anchors: bool
    positives: bool
    negatives: int
    precision: Any

    def __call__(self, params, rows, cols):
        scale, prec = params["scale"], self.precision

        def unit(side, key, factor=1.0):  # the inverse norms (and the scale) on the (b, d) block
            return side[key] * (side[key + "_inv"][..., 0:1] * factor)

        a, p = unit(rows, "a", scale), unit(rows, "p", scale)
        cp = unit(cols, "p")
        mm = functools.partial(jnp.matmul, precision=prec)
        out = [mm(a, cp.T)]
        if self.anchors:
            out.append(mm(a, unit(cols, "a").T))
        if self.positives:
            out.append(mm(p, cp.T))
        if self.negatives:
            neg = unit(cols, "neg")
            out += [mm(a, neg[:, j].T) for j in range(self.negatives)]
        return tuple(out)


def gist_loss(
    anchors: ArrayLike,
    positives: ArrayLike,
    negatives: ArrayLike | None = None,
    *,
    guide_anchors: ArrayLike,
    guide_positives: ArrayLike,
    guide_negatives: ArrayLike | None = None,
    temperature: ArrayLike = 0.01,
    margin_strategy: str = "absolute",
    margin: float = 0.0,
    contrast_anchors: bool = True,
    contrast_positives: bool = True,
    block_size: int | None = None,
    axis_name=None,
    precision=_HIGHEST,
) -> jax.Array:
    r"""GISTEmbed: in-batch negatives that a guide model's similarities filter for false negatives.

    With ``s`` the model's cosine, ``g`` the guide's, ``T`` the temperature
    and the threshold of anchor ``i``
    ``tau_i = g(a_i, p_i) - margin`` (``"absolute"``) or
    ``g(a_i, p_i) - |g(a_i, p_i)| margin`` (``"relative"``), the candidates
    of anchor ``i`` are the positives ``p_b``, the anchors ``a_b``
    (``contrast_anchors``), the positives seen from ``p_i``
    (``contrast_positives``: ``s(p_i, p_b)``) and every hard negative
    ``n_{bj}``, each **removed when its guide similarity exceeds tau_i**
    (the anchor's own positive is always kept):

    $$
    L = \frac{1}{B} \sum_i \Big(\log \sum_{c \text{ kept}} e^{s_c / T}
    - s(a_i, p_i) / T\Big)
    $$

    the **mean over the anchors**. The guide is a fixed target: no gradient
    reaches its embeddings.

    Args:
      anchors: ``(B, d)`` the model's anchor embeddings.
      positives: ``(B, d)``; ``positives[i]`` is the positive of ``anchors[i]``.
      negatives: ``(B, n, d)`` hard negatives or None; column ``j`` is
        masked by the guide as one anchor-negative block, as
        sentence-transformers' ``CachedGISTEmbedLoss``.
      guide_anchors: ``(B, g)`` the guide's embeddings of the anchors' texts
        (``g`` may differ from ``d``).
      guide_positives: ``(B, g)`` the guide's embeddings of the positives.
      guide_negatives: ``(B, n, g)``, required with ``negatives``.
      temperature: positive temperature ``T`` (may be traced).
      margin_strategy: ``"absolute"`` or ``"relative"``.
      margin: the margin of the threshold.
      contrast_anchors: include the anchor-anchor block.
      contrast_positives: include the positive-positive block.
      block_size: ``None``: dense while the scores (``B x B`` per block,
        every device's candidates) have at most ``2^24`` entries, else
        tiles; an int: tiles of ``block_size`` anchors against the
        candidates of ``block_size`` examples (scores never held).
      axis_name: inside ``shard_map``/``pmap``: every block spans the global
        batch, so the result is the single-device loss of the whole batch,
        the same on every device (sentence-transformers'
        ``gather_across_devices=True`` gathers the candidates but keeps the
        anchor-anchor block local).
      precision: precision of the matrix products.

    Returns:
      A scalar (0 for an empty batch).

    Forward mode on the tiled path (a custom VJP): ``jax.jvp`` / ``jax.jacfwd`` around this
    function differentiate its tiled forward sweep instead; around a function already
    traced (``jax.jvp(jax.jit(f))``) JAX refuses the custom VJP: put ``jit`` outside, or
    use the dense path (``block_size=None`` under the budget).

    Examples:
      >>> import jax.numpy as jnp
      >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
      >>> p = jnp.array([[0.9, 0.1], [0.2, 0.9], [0.5, 0.5]])
      >>> gist_loss(a, p, guide_anchors=a, guide_positives=p, temperature=0.1)
      Array(0.4320..., dtype=float32)

    References:
      A. V. Solatorio, GISTEmbed: Guided In-sample Selection of Training
      Negatives for Text Embedding Fine-tuning, 2024.

    sentence-transformers 6.2.0: GISTEmbedLoss / CachedGISTEmbedLoss (the arithmetic after the embedding step)
    """
    fn = "gist_loss"
    _embeddings(anchors, "anchors", fn)
    _embeddings(positives, "positives", fn)
    _same_batch(anchors, positives, ("anchors", "positives"), fn)
    _negatives(negatives, anchors, "negatives", fn)
    _embeddings(guide_anchors, "guide_anchors", fn)
    _embeddings(guide_positives, "guide_positives", fn)
    _same_batch(anchors, guide_anchors, ("anchors", "guide_anchors"), fn, axes=(0,))
    _same_batch(guide_anchors, guide_positives, ("guide_anchors", "guide_positives"), fn)
    if (negatives is None) != (guide_negatives is None):
        raise ValueError(
            f"{fn}: `guide_negatives` must be given exactly when `negatives` is; got "
            f"negatives {'None' if negatives is None else np.shape(negatives)} and guide_negatives "
            f"{'None' if guide_negatives is None else np.shape(guide_negatives)}."
        )
    if negatives is not None:
        _negatives(guide_negatives, guide_anchors, "guide_negatives", fn)
        if np.shape(guide_negatives)[1] != np.shape(negatives)[1]:
            raise ValueError(
                f"{fn}: `guide_negatives` must have one guide embedding per negative; got shapes "
                f"{np.shape(negatives)} and {np.shape(guide_negatives)}."
            )
    _checks.check_temperature(temperature, fn)
    _checks.check_option(margin_strategy, "margin_strategy", MARGIN_STRATEGIES, fn)
    _checks.check_number(margin, "margin", fn)
    for flag, name in ((contrast_anchors, "contrast_anchors"), (contrast_positives, "contrast_positives")):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{fn}: `{name}` must be a bool; got {flag!r}.")
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)

    model = (anchors, positives) if negatives is None else (anchors, positives, negatives)
    *model, out_dtype = _numerics.as_float(*model)
    guide = (
        (guide_anchors, guide_positives)
        if negatives is None
        else (guide_anchors, guide_positives, guide_negatives)
    )
    guide = [jax.lax.stop_gradient(_unit(g)) for g in _numerics.as_float(*guide)[:-1]]
    a, p = model[0], model[1]
    n_neg = 0 if negatives is None else model[2].shape[1]
    one = (0, a.shape[-1])

    g_own = jnp.sum(guide[0] * guide[1], axis=-1)
    m = jnp.asarray(margin, g_own.dtype)
    thr = g_own - m if margin_strategy == "absolute" else g_own - jnp.abs(g_own) * m
    thr = jax.lax.stop_gradient(thr)

    rows = {"a": a, "a_inv": inverse_norms(a, one), "p": p, "p_inv": inverse_norms(p, one)}
    cols = {"p": p, "p_inv": rows["p_inv"]}
    row_data = {"ga": guide[0], "gp": guide[1], "thr": thr}
    col_data = {"gp": guide[1]}
    if contrast_anchors:
        cols.update(a=a, a_inv=rows["a_inv"])
        col_data["ga"] = guide[0]
    if n_neg:
        cols.update(neg=model[2], neg_inv=inverse_norms(model[2], one))
        col_data["gn"] = guide[2]
    blocks = ["ap"] + ["aa"] * contrast_anchors + ["pp"] * contrast_positives
    blocks += [("an", j) for j in range(n_neg)]
    stats = tuple(
        _tile_engine.Stat("lse", mask=_GuideMask(w, precision), score=i) for i, w in enumerate(blocks)
    )
    scores = _GistScores(bool(contrast_anchors), bool(contrast_positives), n_neg, precision)
    scale = _parameter(1 / jnp.asarray(temperature), a.dtype)
    n_rows = a.shape[0]
    devices = jax.lax.axis_size(axis_name) if axis_name is not None else 1
    bl = _block_policy.resolve_blocks(
        _block_policy.CONTRASTIVE, n_rows, n_rows * devices, block_size, block_size, col_width=len(blocks)
    )
    rb, cb = (None, None) if bl is None else bl
    tiling = _tile_engine.Tiling(scores, stats, rb, cb, axis_name=axis_name)
    lses = _tile_engine.statistics(tiling, {"scale": scale}, rows, cols, row_data, col_data)
    own = jnp.sum((a * rows["a_inv"]) * (p * rows["p_inv"]), axis=-1) * scale
    total = jnp.sum(_lse(list(lses)) - own)
    return _tiles.global_mean(total, jnp.asarray(n_rows, own.dtype), axis_name).astype(out_dtype)


# --------------------------------------------------------------------------- scored pairs


def _pair_scores(embeddings1, embeddings2, scores, fn):
    _embeddings(embeddings1, "embeddings1", fn)
    _checks.check_same_shape(embeddings1, embeddings2, ("embeddings1", "embeddings2"), fn)
    b = np.shape(embeddings1)[0]
    if np.size(scores) != b:
        raise ValueError(
            f"{fn}: `scores` must hold one score per pair ({b}); got shape {tuple(np.shape(scores))}."
        )
    x, y, out_dtype = _numerics.as_float(embeddings1, embeddings2)
    labels = jnp.reshape(jnp.asarray(scores), (b,))
    if labels.dtype == jnp.bool_:
        labels = labels.astype(jnp.int32)
    return x, y, labels, out_dtype


def _ranked_pairs(similarity, labels, scale):
    r"""``log(1 + sum_{y_i < y_j} exp(t (s_i - s_j)))``: CoSENT's ranking of scored pairs, ``O(B log B)``.

    Sorted by label, each pair's term is ``t s_i + log sum_{y_j > y_i} e^{-t s_j}``
    (a suffix logsumexp from the first strictly higher label: ties add nothing).
    """
    z = scale * similarity
    order = jnp.argsort(labels, stable=True)
    labels, z = labels[order], z[order]
    higher = jnp.searchsorted(labels, labels, side="right")
    suffix = jax.lax.cumlogsumexp(-z, axis=0, reverse=True)
    suffix = jnp.concatenate([suffix, jnp.full((1,), -jnp.inf, z.dtype)])
    terms = z + suffix[higher]
    return jax.nn.logsumexp(jnp.concatenate([jnp.zeros((1,), z.dtype), terms]))


def cosent_loss(
    embeddings1: ArrayLike, embeddings2: ArrayLike, scores: ArrayLike, *, scale: ArrayLike = 20.0
) -> jax.Array:
    r"""CoSENT: the pairs with a higher score must have a higher cosine than those with a lower one.

    With ``s_i = cos(x_i, y_i)`` and ``y_i`` the pair's score (label),

    $$
    L = \log\Big(1 + \sum_{y_i < y_j} e^{t (s_i - s_j)}\Big)
    $$

    one scalar for the batch (a sum over the ordered pairs of pairs, inside
    the log); pairs with equal scores are not compared. Computed by sorting
    (``O(B log B)``, no ``B x B`` matrix), as sentence-transformers.

    Args:
      embeddings1: ``(B, d)`` first embeddings of the pairs.
      embeddings2: ``(B, d)`` second embeddings.
      scores: ``B`` similarity scores (any shape with ``B`` entries;
        booleans count as 0/1).
      scale: positive scale ``t``.

    Returns:
      A scalar (0 for an empty batch).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
      >>> y = jnp.array([[0.9, 0.1], [0.2, 0.9], [0.5, 0.5]])
      >>> cosent_loss(x, y, jnp.array([1.0, 0.0, 0.5]), scale=5.0)
      Array(1.3426..., dtype=float32)

    References:
      J. Su, CoSENT: A more efficient sentence vector scheme than
      Sentence-BERT, 2022.

    sentence-transformers 6.2.0: CoSENTLoss.compute_loss_from_embeddings
    """
    fn = "cosent_loss"
    _checks.check_temperature(scale, fn, "scale")
    x, y, labels, out_dtype = _pair_scores(embeddings1, embeddings2, scores, fn)
    sim = jnp.sum(_unit(x) * _unit(y), axis=-1)
    return _ranked_pairs(sim, labels, _parameter(scale, x.dtype)).astype(out_dtype)


def angle_loss(
    embeddings1: ArrayLike, embeddings2: ArrayLike, scores: ArrayLike, *, scale: ArrayLike = 20.0
) -> jax.Array:
    r"""AnglE: CoSENT's ranking of scored pairs on the angle similarity ``|cos + sin|``.

    Each embedding is L2-normalised and read as a complex vector whose real
    parts are its first half and imaginary parts its second half (an odd
    size is padded with a zero); with ``u = (u_1, u_2)``, ``v = (v_1, v_2)``,

    $$
    s = \big|u_1 \cdot v_1 + u_2 \cdot v_2 + u_2 \cdot v_1 - u_1 \cdot v_2\big|,
    \qquad
    L = \log\Big(1 + \sum_{y_i < y_j} e^{t (s_i - s_j)}\Big)
    $$

    one scalar for the batch.

    Args:
      embeddings1: ``(B, d)`` first embeddings of the pairs.
      embeddings2: ``(B, d)`` second embeddings.
      scores: ``B`` similarity scores (booleans count as 0/1).
      scale: positive scale ``t``.

    Returns:
      A scalar (0 for an empty batch). The absolute value's gradient is 0
      where ``s = 0`` (PyTorch's subgradient).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
      >>> y = jnp.array([[0.9, 0.1], [0.2, 0.9], [0.5, 0.5]])
      >>> angle_loss(x, y, jnp.array([1.0, 0.0, 0.5]), scale=5.0)
      Array(2.3532..., dtype=float32)

    References:
      X. Li, J. Li, AoE: Angle-optimized Embeddings for Semantic Textual
      Similarity, ACL 2024.

    sentence-transformers 6.2.0: AnglELoss.compute_loss_from_embeddings (pairwise_angle_sim)
    """
    fn = "angle_loss"
    _checks.check_temperature(scale, fn, "scale")
    x, y, labels, out_dtype = _pair_scores(embeddings1, embeddings2, scores, fn)
    if x.shape[-1] % 2:
        pad = [(0, 0)] * (x.ndim - 1) + [(0, 1)]
        x, y = jnp.pad(x, pad), jnp.pad(y, pad)
    u, v = _unit(x), _unit(y)
    h = u.shape[-1] // 2
    cosines = jnp.sum(u * v, axis=-1)
    sines = jnp.sum(u[:, h:] * v[:, :h] - u[:, :h] * v[:, h:], axis=-1)
    sim = _numerics.abs(cosines + sines)
    return _ranked_pairs(sim, labels, _parameter(scale, x.dtype)).astype(out_dtype)


# --------------------------------------------------------------------------- nested sizes


def matryoshka_loss(
    loss_fn: Callable,
    embeddings,
    *args,
    dims: Sequence[int],
    weights: Sequence[float] | None = None,
    **kwargs,
) -> jax.Array:
    r"""Any loss summed over nested embedding sizes (Matryoshka representation learning).

    $$
    L = \sum_k w_k\, \mathrm{loss\_fn}(\hat e^{(k)}, \ldots),
    \qquad \hat e^{(k)} = \frac{e_{:s_k}}{\lVert e_{:s_k} \rVert}
    $$

    every embedding array truncated to its first ``s_k`` features (last
    axis) and L2-normalised (scale-free; a zero prefix stays zero), as
    sentence-transformers' ``MatryoshkaLoss`` with ``shrink``. The loss runs
    once per size; ``multiple_negatives_ranking_loss(...,
    matryoshka_dims=...)`` computes every size in one pass instead.

    Args:
      loss_fn: a loss whose first positional arguments are the embeddings.
      embeddings: an array ``(..., d)`` or a tuple of them (e.g. ``(queries,
        documents, negatives)``), passed first to ``loss_fn`` in that order.
      *args: further positional arguments of ``loss_fn``, unchanged.
      dims: the nested sizes (each in ``(0, d]``, no repeats).
      weights: one weight per size (default 1 each).
      **kwargs: keyword arguments of ``loss_fn``, unchanged (e.g. a guide's
        embeddings for ``gist_loss``).

    Returns:
      The weighted sum of ``loss_fn``'s results.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0, 2.0], [0.0, 1.0, 0.0], [0.6, 0.8, -1.0]])
      >>> y = jnp.array([[0.9, 0.1, 1.0], [0.2, 0.9, 0.0], [0.5, 0.5, 0.5]])
      >>> matryoshka_loss(cosent_loss, (x, y), jnp.array([1.0, 0.0, 0.5]), dims=(3, 2), scale=5.0)
      Array(5.4424..., dtype=float32)

    References:
      A. Kusupati et al., Matryoshka Representation Learning, NeurIPS 2022.

    sentence-transformers 6.2.0: MatryoshkaLoss (with CoSENTLoss, MultipleNegativesRankingLoss)
    """
    fn = "matryoshka_loss"
    if not callable(loss_fn):
        raise TypeError(f"{fn}: `loss_fn` must be callable; got {type(loss_fn).__name__} {loss_fn!r}.")
    single = not isinstance(embeddings, (tuple, list))
    arrays = (embeddings,) if single else tuple(embeddings)
    if not arrays:
        raise ValueError(f"{fn}: `embeddings` must hold at least one array; got {embeddings!r}.")
    d = None
    for x in arrays:
        _checks.check_ndim(x, "embeddings", fn, min_ndim=1)
        if d is not None and np.shape(x)[-1] != d:
            raise ValueError(
                f"{fn}: every array of `embeddings` must have the same feature size; got shapes "
                f"{[tuple(np.shape(a)) for a in arrays]}."
            )
        d = np.shape(x)[-1]
    sizes, ws = _sizes(dims, weights, d, fn, "dims", "weights")
    total, out_dtype = None, None
    for size, w in zip(sizes, ws, strict=True):
        shrunk = []
        for x in arrays:
            x = jnp.asarray(x)
            (xf, _) = _numerics.as_float(x)
            unit = _unit(xf[..., :size])
            shrunk.append(unit.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else unit)
        value = jnp.asarray(loss_fn(*shrunk, *args, **kwargs))
        out_dtype = value.dtype
        value = value.astype(_numerics.compute_dtype(value.dtype))
        term = jnp.asarray(w).astype(value.dtype) * value
        total = term if total is None else total + term
    return total.astype(out_dtype)
