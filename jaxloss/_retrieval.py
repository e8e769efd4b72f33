"""Retrieval metrics: from neighbour indices, and from scored candidates.

Every metric returns one value per query, never a mean (the core's reduction
contract); ``k`` is the number of neighbours or ranks considered, as in ``knn``.

``precision_at_k``, ``recall_at_k``, ``r_precision`` and
``mean_average_precision_at_r`` follow pytorch-metric-learning's
``AccuracyCalculator``: each query's neighbours are compared by label with the
query and the number of relevant reference items ``R_i`` is counted by sorting
the reference labels (``relevant_counts``). pytorch-metric-learning's number is
the mean over the queries that have at least one relevant item:
``reduce(values, where=relevant_counts(...) > 0)``. They consume index arrays
only, so they work with any search (``knn``, ``sharded_knn``, faiss) that
returns neighbours nearest first.

``reciprocal_rank``, ``average_precision``, ``normalized_dcg`` and
``hit_rate`` follow torchmetrics' functional retrieval metrics: they take a
score and a relevance for each of ``M`` candidates of a query and return one
value per query, batched over any leading axes. The candidates are ranked by
``jax.lax.top_k`` (highest score first, a tie going to the lower index), so
only the first ``k`` are ordered.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _checks
from . import _numerics as nx

__all__ = [
    "relevant_counts",
    "recall_at_k",
    "precision_at_k",
    "r_precision",
    "mean_average_precision_at_r",
    "reciprocal_rank",
    "average_precision",
    "normalized_dcg",
    "hit_rate",
]


def _relevant_counts(query_labels, reference_labels):
    """Number of reference labels equal to each query label, by sorting: O((q + m) log m)."""
    ref = jnp.sort(reference_labels)
    lo = jnp.searchsorted(ref, query_labels, side="left")
    hi = jnp.searchsorted(ref, query_labels, side="right")
    return (hi - lo).astype(jnp.int32)


def relevant_counts(
    query_labels: ArrayLike, reference_labels: ArrayLike, *, exclude_self: bool = False
) -> jax.Array:
    """The number ``R_i`` of reference items relevant to each query: those sharing its label.

    ``R_i = #{j : reference_labels[j] == query_labels[i]}``, minus 1 with
    ``exclude_self`` (the query is reference row ``i`` and is not relevant to
    itself). Counted by sorting the reference labels, ``O((q + m) log m)`` time
    and ``O(q + m)`` memory. ``R_i`` is the cut-off of ``r_precision`` and
    ``mean_average_precision_at_r``; ``R_i > 0`` marks the queries
    pytorch-metric-learning's ``AccuracyCalculator`` averages over (the others
    are its "lone" queries), so its value of a metric is
    ``reduce(values, where=relevant_counts(...) > 0)``.

    Args:
      query_labels: ``(q,)`` int labels of the queries.
      reference_labels: ``(m,)`` int labels of the reference (database) rows.
      exclude_self: the queries are the first ``q`` rows of the reference set.

    Returns:
      ``(q,)`` int32 counts.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import precision_at_k, reduce, relevant_counts
      >>> labels = jnp.array([0, 0, 1, 2])
      >>> relevant_counts(labels, labels, exclude_self=True)
      Array([1, 1, 0, 0], dtype=int32)
      >>> nbrs = jnp.array([[0, 1], [1, 2], [2, 0], [3, 0]])
      >>> p1 = precision_at_k(nbrs, labels, labels, 1, exclude_self=True)
      >>> p1
      Array([1., 0., 0., 0.], dtype=float32)
      >>> reduce(p1, where=relevant_counts(labels, labels, exclude_self=True) > 0)  # as pml
      Array(0.5, dtype=float32)

    Reference: pytorch-metric-learning ``AccuracyCalculator`` (label counts, lone queries).
    """
    fn = "relevant_counts"
    ql, rl = jnp.asarray(query_labels), jnp.asarray(reference_labels)
    _checks.check_ndim(ql, "query_labels", fn, ndim=1)
    _checks.check_ndim(rl, "reference_labels", fn, ndim=1)
    _checks.check_integer(ql, "query_labels", fn)
    _checks.check_integer(rl, "reference_labels", fn)
    if exclude_self and ql.shape[0] > rl.shape[0]:
        raise ValueError(
            f"{fn}: exclude_self=True needs the queries to be the first rows of the reference "
            f"set; got {ql.shape[0]} queries and {rl.shape[0]} reference labels."
        )
    counts = _relevant_counts(ql, rl)
    return counts - 1 if exclude_self else counts


def _retrieval_inputs(neighbor_indices, query_labels, reference_labels, exclude_self, fn, k=None):
    """Checks every argument (before any computation); returns the hits, ``R_i`` and ``k``."""
    idx = jnp.asarray(neighbor_indices)
    ql = jnp.asarray(query_labels)
    rl = jnp.asarray(reference_labels)
    _checks.check_ndim(idx, "neighbor_indices", fn, ndim=2)
    _checks.check_ndim(ql, "query_labels", fn, ndim=1)
    _checks.check_ndim(rl, "reference_labels", fn, ndim=1)
    _checks.check_integer(idx, "neighbor_indices", fn)
    _checks.check_integer(ql, "query_labels", fn)
    _checks.check_integer(rl, "reference_labels", fn)
    if idx.shape[0] != ql.shape[0]:
        raise ValueError(
            f"{fn}: `neighbor_indices` needs one row per query; got shape {idx.shape} "
            f"for {ql.shape[0]} query labels."
        )
    if exclude_self:
        if ql.shape[0] > rl.shape[0]:
            raise ValueError(
                f"{fn}: exclude_self=True needs the queries to be the first rows of the reference "
                f"set; got {ql.shape[0]} queries and {rl.shape[0]} reference labels."
            )
        if idx.shape[1] < 2:
            raise ValueError(
                f"{fn}: exclude_self=True drops the query itself from its neighbours, so "
                f"`neighbor_indices` needs at least 2 columns; got shape {idx.shape}."
            )
    k = _check_metric_k(k, idx.shape[1] - int(bool(exclude_self)), fn)
    counts = _relevant_counts(ql, rl)
    if exclude_self:
        # pytorch-metric-learning's ref_includes_query: drop the query from its own list,
        # or the last neighbour where the query is absent; one fewer relevant item.
        rows = jnp.arange(idx.shape[0])[:, None]
        is_self = idx == rows
        is_self = is_self.at[:, -1].set(is_self[:, -1] | ~jnp.any(is_self, axis=1))
        order = jnp.argsort(is_self, axis=1, stable=True)[:, : idx.shape[1] - 1]
        idx = jnp.take_along_axis(idx, order, axis=1)
        counts = counts - 1
    # a negative index is knn's padding (fewer allowed rows than k): never relevant
    same = (idx >= 0) & (rl[jnp.maximum(idx, 0)] == ql[:, None])
    return same, counts, k


def _check_reduction(reduction, fn):
    """The deprecated ``reduction`` (None: not given, one value per query)."""
    if reduction is None:
        return "none"
    reduction = _checks.check_reduction(reduction, fn, allowed=("mean", "none"))
    warnings.warn(
        f"{fn}: `reduction` is deprecated and will be removed in jaxloss 0.5; the metric returns "
        "one value per query (0 for a query without a relevant reference item), as every core "
        "function. reduction='mean' (pytorch-metric-learning's mean over the queries that have "
        "one) is `jaxloss.reduce(values, where=jaxloss.relevant_counts(query_labels, "
        "reference_labels, exclude_self=...) > 0)`; reduction='none' is the default.",
        DeprecationWarning,
        stacklevel=3,
    )
    return reduction


def _finish(per_query, counts, reduction):
    """Per-query values (0 without a relevant item), or the deprecated mean over the others."""
    valid = counts > 0
    per_query = jnp.where(valid, per_query, 0.0)
    if reduction == "none":
        return per_query
    return nx.safe_divide(jnp.sum(per_query), jnp.sum(valid))


def _check_metric_k(k, available, fn):
    if k is None:
        return available
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"{fn}: `k` must be an int; got {k!r}.")
    if not 1 <= k <= available:
        raise ValueError(f"{fn}: `k` must lie in [1, {available}] (neighbours available); got k={k}.")
    return int(k)


def precision_at_k(
    neighbor_indices: ArrayLike,
    query_labels: ArrayLike,
    reference_labels: ArrayLike,
    k: int | None = None,
    *,
    exclude_self: bool = False,
    reduction: str | None = None,
) -> jax.Array:
    """Precision@k: the fraction of the first ``k`` neighbours that share the query's label.

    ``P@k(i) = (1/k) sum_{j<k} [label(n_ij) == label(q_i)]``; with ``k=1`` it
    is pytorch-metric-learning's ``precision_at_1``.

    Args:
      neighbor_indices: ``(q, K)`` int reference indices of each query's
        neighbours, nearest first (the ``indices`` of ``knn``); a negative
        index (``knn``'s padding when fewer rows are allowed than asked for)
        is a missing neighbour, never relevant.
      query_labels: ``(q,)`` int labels of the queries.
      reference_labels: ``(m,)`` int labels of the reference (database) rows.
      k: neighbours considered (``None``: all columns left), static.
      exclude_self: the queries are the first ``q`` rows of the reference set
        (e.g. ``knn(x, x, K)``): query ``i``'s own index ``i`` is dropped from its
        list (or the last neighbour if ``i`` is absent), leaving ``K - 1``
        columns, and the query does not count as relevant to itself
        (pytorch-metric-learning's ``ref_includes_query``).
      reduction: deprecated (removed in 0.5), with a ``DeprecationWarning``:
        ``"mean"`` is ``reduce(values, where=relevant_counts(...) > 0)``,
        ``"none"`` the default.

    Returns:
      ``(q,)`` per-query values in the default float dtype; 0 for a query
      without a relevant reference item (``relevant_counts(...) == 0``).
      pytorch-metric-learning's value is their mean over the other queries,
      ``reduce(values, where=relevant_counts(query_labels, reference_labels,
      exclude_self=exclude_self) > 0)`` (0 if there is none; pml: NaN).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import precision_at_k
      >>> labels = jnp.array([0, 0, 1, 1])
      >>> nbrs = jnp.array([[1, 2], [2, 0], [3, 0], [0, 2]])
      >>> precision_at_k(nbrs, labels, labels, 1)
      Array([1., 0., 1., 0.], dtype=float32)
      >>> precision_at_k(nbrs, labels, labels, 1).mean()  # precision@1
      Array(0.5, dtype=float32)

    Reference: pytorch-metric-learning ``AccuracyCalculator`` (``precision_at_1``).
    """
    fn = "precision_at_k"
    reduction = _check_reduction(reduction, fn)
    same, counts, k = _retrieval_inputs(neighbor_indices, query_labels, reference_labels, exclude_self, fn, k)
    per_query = jnp.mean(same[:, :k].astype(nx.default_float_dtype()), axis=1)
    return _finish(per_query, counts, reduction)


def recall_at_k(
    neighbor_indices: ArrayLike,
    query_labels: ArrayLike,
    reference_labels: ArrayLike,
    k: int | None = None,
    *,
    exclude_self: bool = False,
    reduction: str | None = None,
) -> jax.Array:
    """Recall@k of deep metric learning: does any of the first ``k`` neighbours share the label?

    ``R@k(i) = max_{j<k} [label(n_ij) == label(q_i)]`` (0 or 1), the "Recall@K"
    of the metric-learning literature (CUB-200, SOP, In-Shop); with ``k=1`` it
    equals ``precision_at_k`` with ``k=1``.

    Args:
      neighbor_indices: ``(q, K)`` int reference indices of each query's
        neighbours, nearest first (the ``indices`` of ``knn``); a negative
        index (``knn``'s padding when fewer rows are allowed than asked for)
        is a missing neighbour, never relevant.
      query_labels: ``(q,)`` int labels of the queries.
      reference_labels: ``(m,)`` int labels of the reference (database) rows.
      k: neighbours considered (``None``: all columns left), static.
      exclude_self: the queries are the first ``q`` rows of the reference set
        (e.g. ``knn(x, x, K)``): query ``i``'s own index ``i`` is dropped from its
        list (or the last neighbour if ``i`` is absent), leaving ``K - 1``
        columns, and the query does not count as relevant to itself
        (pytorch-metric-learning's ``ref_includes_query``).
      reduction: deprecated (removed in 0.5), with a ``DeprecationWarning``:
        ``"mean"`` is ``reduce(values, where=relevant_counts(...) > 0)``,
        ``"none"`` the default.

    Returns:
      ``(q,)`` per-query values in the default float dtype; 0 for a query
      without a relevant reference item (``relevant_counts(...) == 0``).
      pytorch-metric-learning's value is their mean over the other queries,
      ``reduce(values, where=relevant_counts(query_labels, reference_labels,
      exclude_self=exclude_self) > 0)`` (0 if there is none; pml: NaN).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import recall_at_k
      >>> labels = jnp.array([0, 0, 1, 1])
      >>> nbrs = jnp.array([[1, 2], [2, 0], [3, 0], [0, 2]])
      >>> recall_at_k(nbrs, labels, labels, 2)
      Array([1., 1., 1., 1.], dtype=float32)

    Reference: pytorch-metric-learning ``AccuracyCalculator`` (``precision_at_1`` for
    k=1) and a NumPy brute force.
    """
    fn = "recall_at_k"
    reduction = _check_reduction(reduction, fn)
    same, counts, k = _retrieval_inputs(neighbor_indices, query_labels, reference_labels, exclude_self, fn, k)
    per_query = jnp.any(same[:, :k], axis=1).astype(nx.default_float_dtype())
    return _finish(per_query, counts, reduction)


def _r_mask(shape, counts):
    return jnp.arange(shape[1])[None, :] < counts[:, None]


def r_precision(
    neighbor_indices: ArrayLike,
    query_labels: ArrayLike,
    reference_labels: ArrayLike,
    *,
    exclude_self: bool = False,
    reduction: str | None = None,
) -> jax.Array:
    """R-precision: precision over the first ``R_i`` neighbours, ``R_i`` = relevant items.

    ``R_i`` is the number of reference rows with the query's label (minus the
    query itself with ``exclude_self``); ``RP(i) = (1/min(R_i, K)) sum_{j <
    min(R_i, K)} [label(n_ij) == label(q_i)]``. It is exact when ``K >= max_i
    R_i`` (pytorch-metric-learning's ``k="max_bin_count"``); with fewer columns
    it is computed as pytorch-metric-learning does (over the first ``K``).

    Args:
      neighbor_indices: ``(q, K)`` int reference indices of each query's
        neighbours, nearest first (the ``indices`` of ``knn``); a negative
        index (``knn``'s padding when fewer rows are allowed than asked for)
        is a missing neighbour, never relevant.
      query_labels: ``(q,)`` int labels of the queries.
      reference_labels: ``(m,)`` int labels of the reference (database) rows.
      exclude_self: the queries are the first ``q`` rows of the reference set
        (e.g. ``knn(x, x, K)``): query ``i``'s own index ``i`` is dropped from its
        list (or the last neighbour if ``i`` is absent), leaving ``K - 1``
        columns, and the query does not count as relevant to itself
        (pytorch-metric-learning's ``ref_includes_query``).
      reduction: deprecated (removed in 0.5), with a ``DeprecationWarning``:
        ``"mean"`` is ``reduce(values, where=relevant_counts(...) > 0)``,
        ``"none"`` the default.

    Returns:
      ``(q,)`` per-query values in the default float dtype; 0 for a query
      without a relevant reference item (``relevant_counts(...) == 0``).
      pytorch-metric-learning's value is their mean over the other queries,
      ``reduce(values, where=relevant_counts(query_labels, reference_labels,
      exclude_self=exclude_self) > 0)`` (0 if there is none; pml: NaN).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import r_precision
      >>> labels = jnp.array([0, 0, 0, 1, 1])
      >>> nbrs = jnp.array([[0, 1, 3], [1, 3, 0], [2, 3, 4], [3, 4, 0], [4, 0, 3]])
      >>> r_precision(nbrs, labels, labels, exclude_self=True)
      Array([0.5, 0.5, 0. , 1. , 0. ], dtype=float32)
      >>> r_precision(nbrs, labels, labels, exclude_self=True).mean()
      Array(0.4, dtype=float32)

    Reference: pytorch-metric-learning ``AccuracyCalculator`` (``r_precision``).
    """
    fn = "r_precision"
    reduction = _check_reduction(reduction, fn)
    same, counts, _ = _retrieval_inputs(neighbor_indices, query_labels, reference_labels, exclude_self, fn)
    mask = _r_mask(same.shape, counts)
    dt = nx.default_float_dtype()
    per_query = nx.safe_divide(jnp.sum(same & mask, axis=1).astype(dt), jnp.sum(mask, axis=1).astype(dt))
    return _finish(per_query, counts, reduction)


def mean_average_precision_at_r(
    neighbor_indices: ArrayLike,
    query_labels: ArrayLike,
    reference_labels: ArrayLike,
    *,
    exclude_self: bool = False,
    reduction: str | None = None,
) -> jax.Array:
    """MAP@R: mean average precision over the first ``R_i`` neighbours.

    ``MAP@R(i) = (1/R_i) sum_{j < R_i} P@(j+1)(i) * [label(n_ij) == label(q_i)]``
    (Musgrave et al., "A Metric Learning Reality Check", 2020), ``R_i`` as in
    ``r_precision``. Exact when ``K >= max_i R_i``; with fewer columns it is
    computed as pytorch-metric-learning does (the missing terms count as 0).

    Args:
      neighbor_indices: ``(q, K)`` int reference indices of each query's
        neighbours, nearest first (the ``indices`` of ``knn``); a negative
        index (``knn``'s padding when fewer rows are allowed than asked for)
        is a missing neighbour, never relevant.
      query_labels: ``(q,)`` int labels of the queries.
      reference_labels: ``(m,)`` int labels of the reference (database) rows.
      exclude_self: the queries are the first ``q`` rows of the reference set
        (e.g. ``knn(x, x, K)``): query ``i``'s own index ``i`` is dropped from its
        list (or the last neighbour if ``i`` is absent), leaving ``K - 1``
        columns, and the query does not count as relevant to itself
        (pytorch-metric-learning's ``ref_includes_query``).
      reduction: deprecated (removed in 0.5), with a ``DeprecationWarning``:
        ``"mean"`` is ``reduce(values, where=relevant_counts(...) > 0)``,
        ``"none"`` the default.

    Returns:
      ``(q,)`` per-query values in the default float dtype; 0 for a query
      without a relevant reference item (``relevant_counts(...) == 0``).
      pytorch-metric-learning's value is their mean over the other queries,
      ``reduce(values, where=relevant_counts(query_labels, reference_labels,
      exclude_self=exclude_self) > 0)`` (0 if there is none; pml: NaN).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import mean_average_precision_at_r
      >>> labels = jnp.array([0, 0, 0, 1, 1])
      >>> nbrs = jnp.array([[0, 1, 3], [1, 3, 0], [2, 3, 4], [3, 4, 0], [4, 0, 3]])
      >>> mean_average_precision_at_r(nbrs, labels, labels, exclude_self=True)
      Array([0.5 , 0.25, 0.  , 1.  , 0.  ], dtype=float32)
      >>> mean_average_precision_at_r(nbrs, labels, labels, exclude_self=True).mean()  # MAP@R
      Array(0.35, dtype=float32)

    Reference: pytorch-metric-learning ``AccuracyCalculator`` (``mean_average_precision_at_r``).
    """
    fn = "mean_average_precision_at_r"
    reduction = _check_reduction(reduction, fn)
    same, counts, _ = _retrieval_inputs(neighbor_indices, query_labels, reference_labels, exclude_self, fn)
    dt = nx.default_float_dtype()
    hits = (same & _r_mask(same.shape, counts)).astype(dt)
    ranks = jnp.arange(1, same.shape[1] + 1, dtype=dt)
    precision = jnp.cumsum(hits, axis=1) * hits / ranks
    per_query = nx.safe_divide(jnp.sum(precision, axis=1), counts.astype(dt))
    return _finish(per_query, counts, reduction)


# --------------------------------------------------------------------------- ranking metrics


class _Unset:
    """The default of a deprecated keyword: tells "not given" from any value."""

    def __repr__(self):
        return "<unset>"


_UNSET = _Unset()


def _renamed_k(k, top_k, fn):
    """``k``, or the deprecated ``top_k`` with a ``DeprecationWarning``; and the name given."""
    if top_k is _UNSET:
        return k, "k"
    warnings.warn(
        f"{fn}: `top_k` is deprecated and will be removed in jaxloss 0.5; use `k` (the number of "
        "ranks kept, the same name as in knn and the retrieval metrics).",
        DeprecationWarning,
        stacklevel=4,
    )
    if k is not None:
        raise TypeError(f"{fn}: got both `k`={k!r} and its deprecated name `top_k`={top_k!r}; pass `k` only.")
    return top_k, "top_k"


def _ranking_inputs(scores, relevance, k, top_k, fn):
    """Checks ``(scores, relevance, k)``; returns the arrays and the number of ranks kept."""
    s = jnp.asarray(scores)
    r = jnp.asarray(relevance)
    _checks.check_floating(s, "scores", fn)
    if not (
        r.dtype == jnp.bool_ or jnp.issubdtype(r.dtype, jnp.integer) or jnp.issubdtype(r.dtype, jnp.floating)
    ):
        raise TypeError(f"{fn}: `relevance` must have a boolean, integer or floating dtype; got {r.dtype}.")
    _checks.check_ndim(s, "scores", fn, min_ndim=1)
    if s.shape != r.shape:
        raise ValueError(
            f"{fn}: `scores` and `relevance` must have the same shape (..., M); got {s.shape} and {r.shape}."
        )
    if s.shape[-1] == 0:
        raise ValueError(
            f"{fn}: `scores` needs at least one candidate per query (M >= 1 on its last axis); "
            f"got shape {s.shape}."
        )
    k, name = _renamed_k(k, top_k, fn)
    k = _checks.check_positive_int(k, name, fn)
    m = s.shape[-1]
    return s, r, m if k is None else min(k, m)


def _top(scores, k):
    """The ``k`` highest scores, highest first, and their indices; no gradient flows.

    A tie goes to the lower index (``jax.lax.top_k``); ``+ 0.0`` turns ``-0.0`` into
    ``0.0``, which ``top_k`` would otherwise rank below an equal ``0.0``. The values are
    gathered with the indices: XLA on the CPU turns a ``top_k`` whose values alone are
    sliced into a sort of all ``M`` (about 100x slower at ``k = 10``, ``M = 4096``).
    """
    x = jax.lax.stop_gradient(scores) + 0.0
    _, order = jax.lax.top_k(x, k)
    return jnp.take_along_axis(x, order, axis=-1), order


def _ranked_hits(scores, relevance, k):
    """``(..., k)`` bool: is the candidate at rank ``j`` relevant (``relevance > 0``)."""
    _, order = _top(scores, k)
    return jnp.take_along_axis(jax.lax.stop_gradient(relevance), order, axis=-1) > 0


def reciprocal_rank(
    scores: ArrayLike, relevance: ArrayLike, *, k: int | None = None, top_k: int | None | _Unset = _UNSET
) -> jax.Array:
    """Reciprocal rank: one over the rank of the first relevant candidate among the first ``k``.

    With the candidates sorted by decreasing score (a tie goes to the lower
    index), ``RR = 1 / j`` where ``j`` is the rank (from 1) of the first
    candidate with ``relevance > 0``, or 0 when none of the first ``k`` (all
    ``M`` when ``k`` is None or larger) is relevant. The mean over queries is the mean reciprocal
    rank (MRR).

    Args:
      scores: ``(..., M)`` floating scores of ``M`` candidates per query,
        higher is better; any leading axes are batch axes.
      relevance: ``(..., M)`` relevance of each candidate: bool, or numbers of
        which those ``> 0`` are relevant (0/1 labels; a graded gain counts as
        relevant when positive).
      k: only the first ``k`` ranks count (static; ``None``: all ``M``;
        larger than ``M`` means ``M``).
      top_k: deprecated name of ``k`` (removed in 0.5; a ``DeprecationWarning``).

    Returns:
      ``(...)`` one value per query in ``[0, 1]``, in the default float dtype;
      0 for a query without a relevant candidate.

    Ranking is piecewise constant in the scores: the gradient with respect to
    ``scores`` (and ``relevance``) is 0 everywhere, never NaN.

    torchmetrics' ``retrieval_reciprocal_rank`` differs in two ways. It first
    sets the relevance of every candidate scored ``<= 0`` to 0 (``target =
    where(preds > 0, target, 0)``), so a relevant candidate with a non-positive
    score never counts; here every candidate counts whatever the sign of its
    score. And it orders tied scores with ``torch.topk``, whose order of ties is
    unspecified; here a tie goes to the lower index, so values agree whenever
    tied candidates are equally relevant.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import reciprocal_rank
      >>> scores = jnp.array([[0.2, 0.3, 0.5], [0.9, 0.1, 0.4]])
      >>> relevance = jnp.array([[False, True, False], [False, False, True]])
      >>> reciprocal_rank(scores, relevance)
      Array([0.5, 0.5], dtype=float32)
      >>> reciprocal_rank(scores, relevance, k=1)
      Array([0., 0.], dtype=float32)

    References:
      Voorhees, "The TREC-8 Question Answering Track Report", 1999.

    Reference: torchmetrics ``retrieval_reciprocal_rank`` (positive scores), NumPy brute force.
    """
    fn = "reciprocal_rank"
    s, r, k = _ranking_inputs(scores, relevance, k, top_k, fn)
    hits = _ranked_hits(s, r, k)
    dt = nx.default_float_dtype()
    first = jnp.argmax(hits, axis=-1).astype(dt)
    return jnp.where(jnp.any(hits, axis=-1), 1.0 / (first + 1.0), 0.0).astype(dt)


def average_precision(
    scores: ArrayLike, relevance: ArrayLike, *, k: int | None = None, top_k: int | None | _Unset = _UNSET
) -> jax.Array:
    """Average precision of a ranking over the relevant candidates retrieved in the first ``k``.

    With the candidates sorted by decreasing score (a tie goes to the lower
    index) and ``rel_j = [relevance_j > 0]`` at rank ``j = 1..k`` (``k = M``
    when ``k`` is None or larger),

    ``AP = (1 / n_k) sum_{j <= k} rel_j * P@j``, ``P@j = (1/j) sum_{i <= j} rel_i``,

    where ``n_k = sum_{j <= k} rel_j`` is the number of relevant candidates in the
    first ``k`` (torchmetrics' normalisation: with ``k`` smaller than the
    number of relevant candidates, the missing ones do not lower the value).
    ``AP = 0`` when ``n_k = 0``. The mean over queries is the mean average
    precision (MAP).

    Args:
      scores: ``(..., M)`` floating scores of ``M`` candidates per query,
        higher is better; any leading axes are batch axes.
      relevance: ``(..., M)`` relevance of each candidate: bool, or numbers of
        which those ``> 0`` are relevant (0/1 labels; a graded gain counts as
        relevant when positive).
      k: only the first ``k`` ranks count (static; ``None``: all ``M``;
        larger than ``M`` means ``M``).
      top_k: deprecated name of ``k`` (removed in 0.5; a ``DeprecationWarning``).

    Returns:
      ``(...)`` one value per query in ``[0, 1]``, in the default float dtype;
      0 for a query without a relevant candidate in the first ``k``.

    Ranking is piecewise constant in the scores: the gradient with respect to
    ``scores`` (and ``relevance``) is 0 everywhere, never NaN.

    Difference from torchmetrics (1.9): ``retrieval_average_precision`` first
    sets the relevance of every candidate scored ``<= 0`` to 0 (``target =
    where(preds > 0, target, 0)``): a relevant candidate with a non-positive
    score is then counted as irrelevant, both in ``P@j`` and in ``n_k``, so
    logits or cosine similarities below 0 change the value. Here the value
    depends only on the order of the scores: every relevant candidate counts,
    whatever the sign of its score, and the two agree when all scores are
    positive. torchmetrics orders tied scores with ``torch.topk``, whose order
    of ties is unspecified; here a tie goes to the lower index, so values agree
    whenever tied candidates are equally relevant.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import average_precision
      >>> scores = jnp.array([0.2, 0.3, 0.5])
      >>> relevance = jnp.array([True, False, True])
      >>> round(float(average_precision(scores, relevance)), 4)
      0.8333
      >>> round(float(average_precision(scores - 1.0, relevance)), 4)  # the sign does not matter
      0.8333

    References:
      Manning, Raghavan and Schütze, "Introduction to Information Retrieval", 2008, section 8.4.

    Reference: torchmetrics ``retrieval_average_precision`` (positive scores), NumPy brute force.
    """
    fn = "average_precision"
    s, r, k = _ranking_inputs(scores, relevance, k, top_k, fn)
    dt = nx.default_float_dtype()
    hits = _ranked_hits(s, r, k).astype(dt)
    precision = jnp.cumsum(hits, axis=-1) / jnp.arange(1, k + 1, dtype=dt)
    return nx.safe_divide(jnp.sum(precision * hits, axis=-1), jnp.sum(hits, axis=-1))


def hit_rate(
    scores: ArrayLike, relevance: ArrayLike, *, k: int | None = None, top_k: int | None | _Unset = _UNSET
) -> jax.Array:
    """Hit rate (HitRate@k): 1 when any of the first ``k`` candidates is relevant, else 0.

    ``HR = max_{j <= k} [relevance_{(j)} > 0]`` with the candidates sorted by
    decreasing score (a tie goes to the lower index; ``k = M`` when ``k`` is
    None or larger). With ``k=None`` it says whether the query has any
    relevant candidate.

    Args:
      scores: ``(..., M)`` floating scores of ``M`` candidates per query,
        higher is better; any leading axes are batch axes.
      relevance: ``(..., M)`` relevance of each candidate: bool, or numbers of
        which those ``> 0`` are relevant (0/1 labels; a graded gain counts as
        relevant when positive).
      k: only the first ``k`` ranks count (static; ``None``: all ``M``;
        larger than ``M`` means ``M``).
      top_k: deprecated name of ``k`` (removed in 0.5; a ``DeprecationWarning``).

    Returns:
      ``(...)`` one value per query, 0 or 1, in the default float dtype.

    Ranking is piecewise constant in the scores: the gradient with respect to
    ``scores`` (and ``relevance``) is 0 everywhere, never NaN.

    torchmetrics' ``retrieval_hit_rate`` orders tied scores with
    ``torch.argsort``, whose order of ties is unspecified; here a tie goes to
    the lower index, so values agree unless a tie between a relevant and an
    irrelevant candidate straddles rank ``k``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import hit_rate
      >>> scores = jnp.array([0.2, 0.3, 0.5])
      >>> relevance = jnp.array([True, False, False])
      >>> hit_rate(scores, relevance, k=2)
      Array(0., dtype=float32)
      >>> hit_rate(scores, relevance, k=3)
      Array(1., dtype=float32)

    Reference: torchmetrics ``retrieval_hit_rate``, NumPy brute force.
    """
    fn = "hit_rate"
    s, r, k = _ranking_inputs(scores, relevance, k, top_k, fn)
    return jnp.any(_ranked_hits(s, r, k), axis=-1).astype(nx.default_float_dtype())


def normalized_dcg(
    scores: ArrayLike, relevance: ArrayLike, *, k: int | None = None, top_k: int | None | _Unset = _UNSET
) -> jax.Array:
    """Normalised discounted cumulative gain (nDCG@k) with graded relevance, ties averaged.

    With the candidates sorted by decreasing score, gains ``g = relevance``
    (linear gains, as torchmetrics and scikit-learn's ``ndcg_score``) and
    discounts ``d_j = 1 / log2(j + 1)`` for ranks ``j = 1..k`` (``k = M``
    when ``k`` is None or larger; ``d_j = 0`` beyond),

    ``DCG@k = sum_j d_j * mean(g over the tie group at rank j)``,
    ``IDCG@k = sum_{j <= k} d_j * g_(j)`` (gains sorted decreasingly),
    ``nDCG@k = DCG@k / IDCG@k``, and 0 when ``IDCG@k = 0``.

    Tied scores share their discounts (scikit-learn's ``_tie_average_dcg``, which
    torchmetrics translates): each candidate of a group of equal scores gets
    the group's mean gain, so the value does not depend on the order of ties,
    also when a group straddles rank ``k`` (its mean then includes the members
    beyond ``k``).

    Args:
      scores: ``(..., M)`` floating scores of ``M`` candidates per query,
        higher is better; any leading axes are batch axes.
      relevance: ``(..., M)`` gains: bool, integer (graded) or floating
        relevance, used as they are; gains are meant to be non-negative (a
        negative gain enters the sums as it is, as in torchmetrics).
      k: only the first ``k`` ranks count (static; ``None``: all ``M``;
        larger than ``M`` means ``M``).
      top_k: deprecated name of ``k`` (removed in 0.5; a ``DeprecationWarning``).

    Returns:
      ``(...)`` one value per query (in ``[0, 1]`` for non-negative gains), in
      the default float dtype; 0 for a query whose gains are all 0.

    Ranking is piecewise constant in the scores: the gradient with respect to
    ``scores`` is 0 everywhere, never NaN; with respect to floating
    ``relevance`` it is the derivative of the ratio (0 where ``IDCG = 0``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import normalized_dcg
      >>> scores = jnp.array([0.1, 0.2, 0.3, 4.0, 70.0])
      >>> relevance = jnp.array([10, 0, 0, 1, 5])
      >>> round(float(normalized_dcg(scores, relevance)), 4)
      0.6957
      >>> round(float(normalized_dcg(jnp.zeros(3), jnp.array([1, 0, 0]))), 4)  # one tie group
      0.7103

    References:
      Järvelin and Kekäläinen, "Cumulated gain-based evaluation of IR techniques", ACM TOIS 2002;
      McSherry and Najork, "Computing information retrieval performance measures efficiently in
      the presence of tied scores", ECIR 2008.

    Reference: torchmetrics ``retrieval_normalized_dcg``, scikit-learn ``ndcg_score``.
    """
    fn = "normalized_dcg"
    s, r, k = _ranking_inputs(scores, relevance, k, top_k, fn)
    dt = nx.default_float_dtype()
    gains = r.astype(dt)
    values, order = _top(s, k)
    ranked = jnp.take_along_axis(gains, order, axis=-1)
    discount = 1.0 / jnp.log2(jnp.arange(k, dtype=dt) + 2.0)
    # tie groups among the first k: [start, stop] positions of the group at each rank
    axis = values.ndim - 1
    pos = jnp.broadcast_to(jnp.arange(k), values.shape)
    change = values[..., 1:] != values[..., :-1]
    edge = jnp.ones(values.shape[:-1] + (1,), bool)
    start = jax.lax.cummax(jnp.where(jnp.concatenate([edge, change], -1), pos, 0), axis=axis)
    stop = jax.lax.cummin(jnp.where(jnp.concatenate([change, edge], -1), pos, k - 1), axis=axis, reverse=True)
    csum = jnp.concatenate([jnp.zeros_like(ranked[..., :1]), jnp.cumsum(ranked, axis=-1)], -1)
    group_sum = jnp.take_along_axis(csum, stop + 1, -1) - jnp.take_along_axis(csum, start, -1)
    mean_gain = group_sum / (stop - start + 1).astype(dt)
    # the group at rank k may go on beyond k: its mean runs over all its members
    last = values[..., -1:]
    members = jax.lax.stop_gradient(s) + 0.0 == last
    boundary = nx.safe_divide(
        jnp.sum(jnp.where(members, gains, 0.0), axis=-1, keepdims=True),
        jnp.sum(members, axis=-1, keepdims=True).astype(dt),
    )
    mean_gain = jnp.where(values == last, boundary, mean_gain)
    dcg = jnp.sum(mean_gain * discount, axis=-1)
    ideal = jnp.sum(jnp.take_along_axis(gains, jax.lax.top_k(gains, k)[1], axis=-1) * discount, axis=-1)
    return nx.safe_divide(dcg, ideal)
