"""Retrieval metrics computed from neighbour indices (the ``indices`` of ``knn``).

``precision_at_k``, ``recall_at_k``, ``r_precision`` and
``mean_average_precision_at_r`` follow pytorch-metric-learning's
``AccuracyCalculator``: each query's neighbours are compared by label with the
query, the number of relevant reference items ``R_i`` is counted by sorting
the reference labels, and the mean runs over the queries that have at least
one relevant item. They consume index arrays only, so they work with any
search (``knn``, ``sharded_knn``, faiss) that returns neighbours nearest first.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _checks
from . import _numerics as nx

__all__ = [
    "recall_at_k",
    "precision_at_k",
    "r_precision",
    "mean_average_precision_at_r",
]


def _relevant_counts(query_labels, reference_labels):
    """Number of reference labels equal to each query label, by sorting: O((q + m) log m)."""
    ref = jnp.sort(reference_labels)
    lo = jnp.searchsorted(ref, query_labels, side="left")
    hi = jnp.searchsorted(ref, query_labels, side="right")
    return (hi - lo).astype(jnp.int32)


def _retrieval_inputs(neighbor_indices, query_labels, reference_labels, exclude_self, fn):
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
    same = rl[idx] == ql[:, None]
    return same, counts


def _check_reduction(reduction, fn):
    return _checks.check_reduction(reduction, fn, allowed=("mean", "none"))


def _finish(per_query, counts, reduction):
    """Mean over queries with at least one relevant reference item (0 when none)."""
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
    reduction: str = "mean",
) -> jax.Array:
    """Precision@k: the fraction of the first ``k`` neighbours that share the query's label.

    ``P@k(i) = (1/k) sum_{j<k} [label(n_ij) == label(q_i)]``; with ``k=1`` it
    is pytorch-metric-learning's ``precision_at_1``.

    Args:
      neighbor_indices: ``(q, K)`` int reference indices of each query's
        neighbours, nearest first (the ``indices`` of ``knn``).
      query_labels: ``(q,)`` int labels of the queries.
      reference_labels: ``(m,)`` int labels of the reference (database) rows.
      k: neighbours considered (``None``: all columns left), static.
      exclude_self: the queries are the first ``q`` rows of the reference set
        (e.g. ``knn(x, x, K)``): query ``i``'s own index ``i`` is dropped from its
        list (or the last neighbour if ``i`` is absent), leaving ``K - 1``
        columns, and the query does not count as relevant to itself
        (pytorch-metric-learning's ``ref_includes_query``).
      reduction: ``"mean"`` (default) averages over the queries that have at
        least one relevant reference item (others are skipped, as
        pytorch-metric-learning; 0 if there is none); ``"none"`` returns the
        ``(q,)`` per-query values (0 for such queries).

    Returns:
      scalar mean (or ``(q,)`` per-query values with ``reduction="none"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import precision_at_k
      >>> labels = jnp.array([0, 0, 1, 1])
      >>> nbrs = jnp.array([[1, 2], [2, 0], [3, 0], [0, 2]])
      >>> round(float(precision_at_k(nbrs, labels, labels, 1)), 4)
      0.5

    Reference: pytorch-metric-learning ``AccuracyCalculator`` (``precision_at_1``).
    """
    fn = "precision_at_k"
    reduction = _check_reduction(reduction, fn)
    same, counts = _retrieval_inputs(neighbor_indices, query_labels, reference_labels, exclude_self, fn)
    k = _check_metric_k(k, same.shape[1], fn)
    per_query = jnp.mean(same[:, :k].astype(nx.default_float_dtype()), axis=1)
    return _finish(per_query, counts, reduction)


def recall_at_k(
    neighbor_indices: ArrayLike,
    query_labels: ArrayLike,
    reference_labels: ArrayLike,
    k: int | None = None,
    *,
    exclude_self: bool = False,
    reduction: str = "mean",
) -> jax.Array:
    """Recall@k of deep metric learning: does any of the first ``k`` neighbours share the label?

    ``R@k(i) = max_{j<k} [label(n_ij) == label(q_i)]`` (0 or 1), the "Recall@K"
    of the metric-learning literature (CUB-200, SOP, In-Shop); with ``k=1`` it
    equals ``precision_at_k`` with ``k=1``.

    Args:
      neighbor_indices: ``(q, K)`` int reference indices of each query's
        neighbours, nearest first (the ``indices`` of ``knn``).
      query_labels: ``(q,)`` int labels of the queries.
      reference_labels: ``(m,)`` int labels of the reference (database) rows.
      k: neighbours considered (``None``: all columns left), static.
      exclude_self: the queries are the first ``q`` rows of the reference set
        (e.g. ``knn(x, x, K)``): query ``i``'s own index ``i`` is dropped from its
        list (or the last neighbour if ``i`` is absent), leaving ``K - 1``
        columns, and the query does not count as relevant to itself
        (pytorch-metric-learning's ``ref_includes_query``).
      reduction: ``"mean"`` (default) averages over the queries that have at
        least one relevant reference item (others are skipped, as
        pytorch-metric-learning; 0 if there is none); ``"none"`` returns the
        ``(q,)`` per-query values (0 for such queries).

    Returns:
      scalar mean (or ``(q,)`` per-query values with ``reduction="none"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import recall_at_k
      >>> labels = jnp.array([0, 0, 1, 1])
      >>> nbrs = jnp.array([[1, 2], [2, 0], [3, 0], [0, 2]])
      >>> round(float(recall_at_k(nbrs, labels, labels, 2)), 4)
      1.0

    Reference: pytorch-metric-learning ``AccuracyCalculator`` (``precision_at_1`` for
    k=1) and a NumPy brute force.
    """
    fn = "recall_at_k"
    reduction = _check_reduction(reduction, fn)
    same, counts = _retrieval_inputs(neighbor_indices, query_labels, reference_labels, exclude_self, fn)
    k = _check_metric_k(k, same.shape[1], fn)
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
    reduction: str = "mean",
) -> jax.Array:
    """R-precision: precision over the first ``R_i`` neighbours, ``R_i`` = relevant items.

    ``R_i`` is the number of reference rows with the query's label (minus the
    query itself with ``exclude_self``); ``RP(i) = (1/min(R_i, K)) sum_{j <
    min(R_i, K)} [label(n_ij) == label(q_i)]``. It is exact when ``K >= max_i
    R_i`` (pytorch-metric-learning's ``k="max_bin_count"``); with fewer columns
    it is computed as pytorch-metric-learning does (over the first ``K``).

    Args:
      neighbor_indices: ``(q, K)`` int reference indices of each query's
        neighbours, nearest first (the ``indices`` of ``knn``).
      query_labels: ``(q,)`` int labels of the queries.
      reference_labels: ``(m,)`` int labels of the reference (database) rows.
      exclude_self: the queries are the first ``q`` rows of the reference set
        (e.g. ``knn(x, x, K)``): query ``i``'s own index ``i`` is dropped from its
        list (or the last neighbour if ``i`` is absent), leaving ``K - 1``
        columns, and the query does not count as relevant to itself
        (pytorch-metric-learning's ``ref_includes_query``).
      reduction: ``"mean"`` (default) averages over the queries that have at
        least one relevant reference item (others are skipped, as
        pytorch-metric-learning; 0 if there is none); ``"none"`` returns the
        ``(q,)`` per-query values (0 for such queries).

    Returns:
      scalar mean (or ``(q,)`` per-query values with ``reduction="none"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import r_precision
      >>> labels = jnp.array([0, 0, 0, 1, 1])
      >>> nbrs = jnp.array([[0, 1, 3], [1, 3, 0], [2, 3, 4], [3, 4, 0], [4, 0, 3]])
      >>> round(float(r_precision(nbrs, labels, labels, exclude_self=True)), 4)
      0.4

    Reference: pytorch-metric-learning ``AccuracyCalculator`` (``r_precision``).
    """
    fn = "r_precision"
    reduction = _check_reduction(reduction, fn)
    same, counts = _retrieval_inputs(neighbor_indices, query_labels, reference_labels, exclude_self, fn)
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
    reduction: str = "mean",
) -> jax.Array:
    """MAP@R: mean average precision over the first ``R_i`` neighbours.

    ``MAP@R(i) = (1/R_i) sum_{j < R_i} P@(j+1)(i) * [label(n_ij) == label(q_i)]``
    (Musgrave et al., "A Metric Learning Reality Check", 2020), ``R_i`` as in
    ``r_precision``. Exact when ``K >= max_i R_i``; with fewer columns it is
    computed as pytorch-metric-learning does (the missing terms count as 0).

    Args:
      neighbor_indices: ``(q, K)`` int reference indices of each query's
        neighbours, nearest first (the ``indices`` of ``knn``).
      query_labels: ``(q,)`` int labels of the queries.
      reference_labels: ``(m,)`` int labels of the reference (database) rows.
      exclude_self: the queries are the first ``q`` rows of the reference set
        (e.g. ``knn(x, x, K)``): query ``i``'s own index ``i`` is dropped from its
        list (or the last neighbour if ``i`` is absent), leaving ``K - 1``
        columns, and the query does not count as relevant to itself
        (pytorch-metric-learning's ``ref_includes_query``).
      reduction: ``"mean"`` (default) averages over the queries that have at
        least one relevant reference item (others are skipped, as
        pytorch-metric-learning; 0 if there is none); ``"none"`` returns the
        ``(q,)`` per-query values (0 for such queries).

    Returns:
      scalar mean (or ``(q,)`` per-query values with ``reduction="none"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import mean_average_precision_at_r
      >>> labels = jnp.array([0, 0, 0, 1, 1])
      >>> nbrs = jnp.array([[0, 1, 3], [1, 3, 0], [2, 3, 4], [3, 4, 0], [4, 0, 3]])
      >>> round(float(mean_average_precision_at_r(nbrs, labels, labels, exclude_self=True)), 4)
      0.35

    Reference: pytorch-metric-learning ``AccuracyCalculator`` (``mean_average_precision_at_r``).
    """
    fn = "mean_average_precision_at_r"
    reduction = _check_reduction(reduction, fn)
    same, counts = _retrieval_inputs(neighbor_indices, query_labels, reference_labels, exclude_self, fn)
    dt = nx.default_float_dtype()
    hits = (same & _r_mask(same.shape, counts)).astype(dt)
    ranks = jnp.arange(1, same.shape[1] + 1, dtype=dt)
    precision = jnp.cumsum(hits, axis=1) * hits / ranks
    per_query = nx.safe_divide(jnp.sum(precision, axis=1), counts.astype(dt))
    return _finish(per_query, counts, reduction)
