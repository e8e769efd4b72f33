"""Metric learning: the triplet family (with in-batch mining as masks) and the pair losses.

Two kinds of losses live here.

* **Losses over explicit examples** (a triplet, a pair, a pair of scores)
  return one value per example, like optax: ``triplet_margin_loss``,
  ``contrastive_loss``, ``cosine_embedding_loss``,
  ``margin_ranking_loss``, ``hinge_embedding_loss``.
* **Losses defined over a whole batch** (in-batch mining, lifted structured,
  soft nearest neighbour) return a scalar; each docstring says exactly what is
  averaged. Anchors (or pairs) that have no positive are left out of the
  average, a mean over an empty set is 0 (never NaN), and value and gradient
  stay finite when embeddings coincide.

In-batch mining never builds variable-length index lists: every miner works
with fixed-shape boolean masks over the ``(B, B)`` distance matrix (see
``positive_mask``, ``negative_mask``, ``triplet_mask``), so a
whole training step jit-compiles. The distance matrix comes from the
all-pairs core shared with ``cdist``: one matrix product of the centred
embeddings (``precision=HIGHEST`` by default, accurate on data with a common
offset), clamped at 0, with an exact zero diagonal, an exactly symmetric
matrix and a zero-at-zero square-root gradient. Cosine distances follow
``cdist``'s zero-vector rule (two zero vectors are at distance 0, a zero
vector is at distance 1 from any other).

The mining losses also mine the batch's anchors against other candidates
(a :class:`MiningSet`): references (``ref_embeddings``, ``ref_labels``:
nothing excluded, as pytorch-metric-learning's ``ref_emb``) or, with
``axis_name``, the batch all-gathered over a ``shard_map``/``pmap`` axis (the
own pair excluded by its global index). The masks are then ``(n, m)``: anchors
by candidates.

The contrastive family (InfoNCE, CLIP, SigLIP, NT-Xent,
supervised contrastive, N-pair) lives in ``_contrastive.py``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _checks, _numerics, _pairwise, _tiles

__all__ = [
    "batch_all_triplet_loss",
    "batch_hard_triplet_loss",
    "contrastive_loss",
    "cosine_embedding_loss",
    "hinge_embedding_loss",
    "lifted_structured_loss",
    "margin_ranking_loss",
    "negative_mask",
    "positive_mask",
    "semi_hard_triplet_loss",
    "soft_nearest_neighbor_loss",
    "triplet_margin_loss",
    "triplet_mask",
]

METRICS = ("euclidean", "cosine")
_HIGHEST = jax.lax.Precision.HIGHEST

# --------------------------------------------------------------------------- validation


def _check_labels(labels, n: int, fn: str, name: str = "labels"):
    """Class labels: a 1-D integer array with one entry per embedding."""
    if isinstance(labels, (list, tuple)):
        labels = np.asarray(labels)
    _checks.check_integer(labels, name, fn)
    _checks.check_ndim(labels, name, fn, ndim=1)
    if labels.shape[0] != n:
        raise ValueError(
            f"{fn}: `{name}` must have one entry per embedding (length {n}); got length {labels.shape[0]}."
        )
    return jnp.asarray(labels)


def _check_embeddings(embeddings, fn: str, name: str = "embeddings"):
    _checks.check_ndim(embeddings, name, fn, ndim=2)
    return embeddings


def _check_metric(metric, squared, fn: str):
    _checks.check_option(metric, "metric", METRICS, fn)
    if squared and metric != "euclidean":
        raise ValueError(
            f"{fn}: `squared=True` applies to the 'euclidean' metric only; got metric={metric!r}."
        )


def _check_margin(margin, fn: str):
    return _checks.check_number(margin, "margin", fn, low=0.0)


# --------------------------------------------------------------------------- masks


def positive_mask(labels: ArrayLike) -> jax.Array:
    """``(B, B)`` boolean mask of positive pairs: ``labels[i] == labels[j]`` and ``i != j``.

    Args:
      labels: ``(B,)`` integer class labels.

    Returns:
      ``(B, B)`` boolean array.

    Examples:
      >>> import jax.numpy as jnp
      >>> positive_mask(jnp.array([0, 0, 1])).astype(int)
      Array([[0, 1, 0],
             [1, 0, 0],
             [0, 0, 0]], dtype=int32)

    Reference: pytorch-metric-learning ``get_all_pairs_indices`` (positive pairs).
    """
    labels = _check_labels(labels, np.shape(labels)[0] if np.ndim(labels) else -1, "positive_mask")
    same = labels[:, None] == labels[None, :]
    return same & ~jnp.eye(labels.shape[0], dtype=bool)


def negative_mask(labels: ArrayLike) -> jax.Array:
    """``(B, B)`` boolean mask of negative pairs: ``labels[i] != labels[j]``.

    Args:
      labels: ``(B,)`` integer class labels.

    Returns:
      ``(B, B)`` boolean array (its diagonal is False).

    Examples:
      >>> import jax.numpy as jnp
      >>> negative_mask(jnp.array([0, 0, 1])).astype(int)
      Array([[0, 0, 1],
             [0, 0, 1],
             [1, 1, 0]], dtype=int32)

    Reference: pytorch-metric-learning ``get_all_pairs_indices`` (negative pairs).
    """
    labels = _check_labels(labels, np.shape(labels)[0] if np.ndim(labels) else -1, "negative_mask")
    return labels[:, None] != labels[None, :]


def triplet_mask(labels: ArrayLike) -> jax.Array:
    """``(B, B, B)`` boolean mask of valid triplets ``(a, p, n)``.

    ``mask[a, p, n]`` is True when ``p != a``, ``labels[p] == labels[a]`` and
    ``labels[n] != labels[a]``. It has ``B^3`` entries: the losses of this
    module never build it (they sort each row of the distance matrix instead),
    it is there for users writing their own miners on small batches.

    Args:
      labels: ``(B,)`` integer class labels.

    Returns:
      ``(B, B, B)`` boolean array.

    Examples:
      >>> import jax.numpy as jnp
      >>> int(triplet_mask(jnp.array([0, 0, 1])).sum())  # (0, 1, 2) and (1, 0, 2)
      2

    Reference: pytorch-metric-learning ``get_all_triplets_indices``.
    """
    labels = _check_labels(labels, np.shape(labels)[0] if np.ndim(labels) else -1, "triplet_mask")
    pos = positive_mask(labels)
    neg = negative_mask(labels)
    return pos[:, :, None] & neg[:, None, :]


# --------------------------------------------------------------------------- distance matrices


def _in_batch_distances(x, metric, squared, precision):
    """``(B, B)`` distances of the rows of ``x`` to each other (the pairwise core, one set)."""
    name = "sqeuclidean" if squared else metric
    return _pairwise.distances(x, metric=name, same=True, precision=precision)


def _row_distances(x, y, metric, squared):
    """``(B,)`` distances of matched rows ``x[i]``, ``y[i]`` (the in-batch metric's rules)."""
    if metric == "cosine":
        return _pairwise.rowwise_cosine(x, y)
    d2 = _pairwise.rowwise_squared_euclidean(x, y)
    return d2 if squared else _numerics.sqrt(d2)


def _first_argmax(values):
    """Each row's first index of its maximum (a max and a compare: cheaper than ``argmax``)."""
    top = jnp.max(values, axis=-1, keepdims=True)
    n = values.shape[-1]
    first = jnp.min(jnp.where(values == top, jnp.arange(n), n), axis=-1)
    return jnp.minimum(first, n - 1)  # a row of NaN (non-finite input) picks the last index


def prepare_batch(embeddings, labels, fn):
    """Checks a ``(B, d)`` batch and its ``(B,)`` labels; returns ``(x, labels, out_dtype)``."""
    _check_embeddings(embeddings, fn)
    labels = _check_labels(labels, np.shape(embeddings)[0], fn)
    x, out_dtype = _numerics.as_float(embeddings)
    return x, labels, out_dtype


class MiningSet(NamedTuple):
    """Anchors mined against candidates: the batch against itself, references, or the global batch.

    ``same`` says that the candidates are the anchors themselves (one set: the
    all-pairs distances are exactly symmetric with an exactly zero diagonal).
    ``self_index`` is the candidate column of each anchor's own pair, which is
    never a positive, or None where no candidate is the anchor itself
    (references, pytorch-metric-learning's ``ref_emb``).
    """

    anchors: jax.Array  # (n, d), compute dtype
    labels: jax.Array  # (n,)
    candidates: jax.Array  # (m, d), compute dtype (the anchors when `same`)
    candidate_labels: jax.Array  # (m,)
    self_index: jax.Array | None  # (n,) or None
    same: bool
    out_dtype: np.dtype

    def distances(self, metric, precision):
        """``(n, m)`` distances of the anchors to the candidates (``metric`` as ``_pairwise``)."""
        other = None if self.same else self.candidates
        return _pairwise.distances(self.anchors, other, metric=metric, same=self.same, precision=precision)

    def masks(self):
        """``(same label, positive)`` ``(n, m)`` masks: positives exclude each anchor's own pair."""
        same_label = self.labels[:, None] == self.candidate_labels[None, :]
        if self.self_index is None:
            return same_label, same_label
        if self.same:
            own = jnp.eye(self.anchors.shape[0], dtype=bool)
        else:
            own = self.self_index[:, None] == jnp.arange(self.candidates.shape[0])[None, :]
        return same_label, same_label & ~own


def check_references(embeddings, ref_embeddings, ref_labels, fn):
    """Checks the optional ``ref_embeddings (R, d)`` / ``ref_labels (R,)`` pair (both or neither)."""
    if ref_embeddings is None and ref_labels is None:
        return None
    if ref_embeddings is None or ref_labels is None:
        given, missing = (
            ("ref_embeddings", "ref_labels") if ref_labels is None else ("ref_labels", "ref_embeddings")
        )
        raise ValueError(f"{fn}: `{given}` was given without `{missing}`; pass both or neither.")
    _check_embeddings(ref_embeddings, fn, "ref_embeddings")
    d, d_ref = np.shape(embeddings)[-1], np.shape(ref_embeddings)[-1]
    if d_ref != d:
        raise ValueError(
            f"{fn}: `ref_embeddings` must have the embeddings' dimension {d}; got shape "
            f"{tuple(np.shape(ref_embeddings))}."
        )
    return _check_labels(ref_labels, np.shape(ref_embeddings)[0], fn, "ref_labels")


def prepare_mining(embeddings, labels, ref_embeddings, ref_labels, axis_name, fn) -> MiningSet:
    """Checks a batch (and its references) and builds the :class:`MiningSet` of a mining loss.

    * no references, no ``axis_name``: the batch against itself, own pair excluded;
    * references: the batch against the references, nothing excluded
      (pytorch-metric-learning's ``ref_emb`` / ``ref_labels``);
    * ``axis_name``: this device's batch against the batch (or the references)
      all-gathered over the axis; the own pair is excluded by its global index.
    """
    _check_embeddings(embeddings, fn)
    labels = _check_labels(labels, np.shape(embeddings)[0], fn)
    ref_labels = check_references(embeddings, ref_embeddings, ref_labels, fn)
    if ref_labels is None:
        x, out_dtype = _numerics.as_float(embeddings)
        if axis_name is None:
            return MiningSet(x, labels, x, labels, jnp.arange(x.shape[0]), True, out_dtype)
        (xs, ys), offset = _tiles.gathered_batch(axis_name, x, labels)
        return MiningSet(x, labels, xs, ys, offset + jnp.arange(x.shape[0]), False, out_dtype)
    x, refs, out_dtype = _numerics.as_float(embeddings, ref_embeddings)
    if axis_name is not None:
        (refs, ref_labels), _ = _tiles.gathered_batch(axis_name, refs, ref_labels)
    return MiningSet(x, labels, refs, ref_labels, None, False, out_dtype)


def _triplet_setup(
    embeddings, labels, ref_embeddings, ref_labels, axis_name, fn, margin, metric, squared, precision
):
    """Validated inputs of a sorted-row triplet loss: distances, positive and negative masks."""
    ms = prepare_mining(embeddings, labels, ref_embeddings, ref_labels, axis_name, fn)
    _check_metric(metric, squared, fn)
    _check_margin(margin, fn)
    dist = ms.distances("sqeuclidean" if squared else metric, precision)
    same_label, pos = ms.masks()
    return dist, pos, ~same_label, ms.anchors.dtype, ms.out_dtype


def _sorted_negatives(dist, neg):
    """Each row's negative distances sorted ascending (others +inf, last) and their count."""
    s = jnp.sort(jnp.where(neg, dist, jnp.inf), axis=-1)
    return s, jnp.sum(neg, axis=-1)


_row_searchsorted_left = jax.vmap(lambda a, v: jnp.searchsorted(a, v, side="left"))
_row_searchsorted_right = jax.vmap(lambda a, v: jnp.searchsorted(a, v, side="right"))


# --------------------------------------------------------------------------- triplet family


def triplet_hinge(d_ap, d_an, d_pn, margin, swap):
    """``relu(d_ap - min(d_an, d_pn if swap) + margin)``: the triplet hinge on distances."""
    if swap:
        d_an = jnp.minimum(d_an, d_pn)
    return jax.nn.relu(d_ap - d_an + margin)


def _lp_distance(x, y, p, eps, axis, squared=False):
    """PyTorch's ``pairwise_distance``: ``||x - y + eps||_p`` over ``axis`` (``^2`` if squared)."""
    diff = x - y + eps
    if squared and p == 2:
        return jnp.sum(diff * diff, axis=axis)
    d = _numerics.p_norm(diff, p, axis=axis)
    return d * d if squared else d


def triplet_margin_loss(
    anchors: ArrayLike,
    positives: ArrayLike,
    negatives: ArrayLike,
    axis: int = -1,
    norm_degree: float = 2,
    margin: float = 1.0,
    eps: float = 1e-6,
    *,
    swap: bool = False,
    squared: bool = False,
) -> jax.Array:
    r"""Triplet margin loss per triplet: ``relu(d(a, p) - d(a, n) + margin)``.

    $$
    d(x, y) = \lVert x - y + \epsilon \rVert_p, \qquad
    \ell = \max(d(a, p) - d(a, n) + m, 0)
    $$

    optax's signature and per-example output with PyTorch's numbers: ``eps`` is
    added to the difference (as ``torch.nn.functional.pairwise_distance``), and
    odd degrees take the absolute value (optax forgets it). With ``swap`` the
    negative distance is ``min(d(a, n), d(p, n))`` (Balntas et al. 2016, as
    PyTorch). With ``squared`` the distances are squared, ``d(x, y)^2``: with
    ``norm_degree=2``, ``margin=0.2`` and ``eps=0`` this is the triplet loss
    on squared Euclidean distances, ``relu(||a - p||^2 - ||a - n||^2 + 0.2)``.

    Args:
      anchors: ``(..., d)`` anchor embeddings.
      positives: ``(..., d)`` positives, broadcastable with ``anchors``.
      negatives: ``(..., d)`` negatives, broadcastable with ``anchors``.
      axis: the feature axis the distances are taken over.
      norm_degree: ``p`` of the ``p``-norm distance (any positive real).
      margin: non-negative margin.
      eps: added to every difference before the norm (PyTorch's ``eps``).
      swap: use the distance swap.
      squared: use squared distances.

    Returns:
      The loss of each triplet: the broadcast shape without ``axis``.

    Gradient: finite everywhere; 0 at a tie of the hinge (``jax.nn.relu``) and
    0 for a zero distance (safe norm).

    Examples:
      >>> import jax.numpy as jnp
      >>> a = jnp.array([[0.0, 0.0], [1.0, 1.0]])
      >>> p = jnp.array([[0.1, 0.1], [1.1, 1.1]])
      >>> n = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> triplet_margin_loss(a, p, n)
      Array([0.14142, 0.14142], dtype=float32)
      >>> triplet_margin_loss(a, p, n, margin=0.2, eps=0.0, squared=True)  # squared distances
      Array([0., 0.], dtype=float32)

    References:
      V. Balntas et al., Learning local feature descriptors with triplets and
      shallow convolutional neural networks, BMVC 2016.

    PyTorch: torch.nn.functional.triplet_margin_loss(reduction="none"); optax: triplet_margin_loss
    """
    fn = "triplet_margin_loss"
    _checks.broadcast_shapes(anchors, positives, ("anchors", "positives"), fn)
    shape = _checks.broadcast_shapes(anchors, negatives, ("anchors", "negatives"), fn)
    _checks.broadcast_shapes(positives, negatives, ("positives", "negatives"), fn)
    if not shape:
        raise ValueError(f"{fn}: the embeddings need at least one dimension (the feature axis); got scalars.")
    (ax,) = _checks.check_axis(axis, len(shape), "axis", fn)
    _checks.check_number(norm_degree, "norm_degree", fn, low=0.0, low_inclusive=False, allow_inf=True)
    _check_margin(margin, fn)
    _checks.check_number(eps, "eps", fn)
    a, p, n, out_dtype = _numerics.as_float(anchors, positives, negatives)
    d_ap = _lp_distance(a, p, norm_degree, eps, ax, squared)
    d_an = _lp_distance(a, n, norm_degree, eps, ax, squared)
    d_pn = _lp_distance(p, n, norm_degree, eps, ax, squared) if swap else None
    return triplet_hinge(d_ap, d_an, d_pn, margin, swap).astype(out_dtype)


def batch_hard_triplet_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 1.0,
    squared: bool = False,
    metric: str = "euclidean",
    soft: bool = False,
    precision=_HIGHEST,
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    axis_name=None,
) -> jax.Array:
    r"""Batch-hard triplet loss (Hermans et al. 2017): hardest positive vs hardest negative.

    For every anchor ``a`` with at least one positive and one negative,

    $$
    \ell_a = \max(\max_{p \in P(a)} D_{ap} - \min_{n \in N(a)} D_{an} + m, 0)
    $$

    (``softplus(max D_ap - min D_an + m)`` with ``soft=True``: Hermans' soft
    margin is ``soft=True, margin=0``; pytorch-metric-learning's
    ``smooth_loss`` keeps the margin, as here). The result is the **mean of
    ell_a over the anchors that have a positive and a negative**; anchors
    without either are left out, and the mean over no anchor is 0.

    Args:
      embeddings: ``(B, d)`` embeddings.
      labels: ``(B,)`` integer class labels.
      margin: non-negative margin ``m``.
      squared: use squared Euclidean distances.
      metric: ``"euclidean"`` or ``"cosine"`` (``D = 1 - cos``).
      soft: softplus instead of the hinge.
      precision: precision of the Gram matrix product.
      ref_embeddings: optional ``(R, d)`` references: the candidates
        (positives and negatives) are then the references instead of the
        batch, and no pair is excluded (a reference equal to an anchor is a
        normal candidate), as pytorch-metric-learning's ``ref_emb``. The
        gradient reaches both ``embeddings`` and ``ref_embeddings``.
      ref_labels: ``(R,)`` integer labels of the references (given together
        with ``ref_embeddings``).
      axis_name: inside ``shard_map``/``pmap``, the mapped axis the batch is
        split over: this device's rows are the anchors, the candidates are the
        whole batch all-gathered over the axis (each anchor's own pair excluded
        by its global index), and the result is the loss of the global batch
        on every device. With references, they are split over the axis like
        the batch and all-gathered too.

    Returns:
      A scalar.

    The hardest positive and negative of each anchor are chosen on the
    distance matrix (a tie goes to the first index, as ``torch.max``); their
    distances are then computed from the two embeddings, so the gradient is
    ``O(B d)`` work after the ``(B, B)`` selection.

    **References and devices.** With ``ref_embeddings``/``ref_labels`` the
    positives and negatives of each anchor are chosen among the references
    (``P(a)`` every reference with the anchor's label, nothing excluded); the
    mean is over the batch's anchors. With ``axis_name`` they are chosen in
    the global batch, and the result equals one device's on the whole batch.
    Memory: the ``(B, R)`` (or ``(B_local, B_global)``) distance matrix.

    Gradient: finite when embeddings coincide (zero-distance gradient 0).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 2.0]])
      >>> batch_hard_triplet_loss(x, jnp.array([0, 0, 1, 1]), margin=1.0)
      Array(0., dtype=float32)
      >>> batch_hard_triplet_loss(x, jnp.array([0, 1, 0, 1]), margin=1.0)
      Array(2.5811..., dtype=float32)

    References:
      A. Hermans, L. Beyer, B. Leibe, In Defense of the Triplet Loss for
      Person Re-Identification, 2017.

    pytorch-metric-learning: TripletMarginLoss + BatchHardMiner (reducer=MeanReducer()); with
    references, ``loss(emb, labels, miner(emb, labels, ref_emb, ref_labels), ref_emb, ref_labels)``
    """
    fn = "batch_hard_triplet_loss"
    ms = prepare_mining(embeddings, labels, ref_embeddings, ref_labels, axis_name, fn)
    _check_metric(metric, squared, fn)
    _check_margin(margin, fn)
    x, cands = ms.anchors, ms.candidates
    if x.shape[0] == 0 or cands.shape[0] == 0:
        return _tiles.global_mean(jnp.zeros((), x.dtype), jnp.zeros((), x.dtype), axis_name).astype(
            ms.out_dtype
        )
    # The hardest pair of each anchor is chosen on the distance matrix (no gradient: the
    # choice is piecewise constant); its distance is then computed from the two rows, so the
    # gradient reaches 2 rows per anchor, not the (n, m) matrix.
    order = "sqeuclidean" if metric == "euclidean" else metric  # same order as the distances
    dist = jax.lax.stop_gradient(ms.distances(order, precision))
    same_label, pos = ms.masks()
    hardest_pos = _first_argmax(jnp.where(pos, dist, -jnp.inf))
    hardest_neg = _first_argmax(jnp.where(same_label, -jnp.inf, -dist))
    valid = jnp.any(pos, axis=-1) & ~jnp.all(same_label, axis=-1)
    d_ap = _row_distances(x, cands[hardest_pos], metric, squared)
    d_an = _row_distances(x, cands[hardest_neg], metric, squared)
    violation = jnp.where(valid, d_ap - d_an, 0) + margin
    per_anchor = jax.nn.softplus(violation) if soft else jax.nn.relu(violation)
    total = jnp.sum(jnp.where(valid, per_anchor, 0))
    count = jnp.sum(valid).astype(x.dtype)
    return _tiles.global_mean(total, count, axis_name).astype(ms.out_dtype)


def batch_all_triplet_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 1.0,
    squared: bool = False,
    metric: str = "euclidean",
    precision=_HIGHEST,
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    axis_name=None,
) -> jax.Array:
    r"""Batch-all triplet loss: the mean over the valid triplets whose loss is positive.

    Over every valid triplet ``(a, p, n)`` (``p != a`` with the label of ``a``,
    ``n`` with another label) the loss is ``relu(D_ap - D_an + m)``; the result
    is the **sum of these losses divided by the number of triplets with a
    positive loss** (Hermans et al.'s "batch all", pytorch-metric-learning's
    default ``AvgNonZeroReducer``), and 0 when no triplet has a positive loss.

    The ``B^3`` triplets are never built: each row of the distance matrix is
    sorted once, and for every positive pair the violating negatives are
    counted and summed with a binary search and prefix sums
    (``O(B^2 log B)`` time, ``O(B^2)`` memory).

    With ``ref_embeddings``/``ref_labels`` the positives and negatives are the
    references (every reference with the anchor's label is a positive, nothing
    excluded; ``O(B R)`` memory); with ``axis_name`` they are the global batch
    (``O(B_local B_global)`` memory per device), and the counts of both sums
    are global.

    Args:
      embeddings: ``(B, d)`` embeddings.
      labels: ``(B,)`` integer class labels.
      margin: non-negative margin ``m``.
      squared: use squared Euclidean distances.
      metric: ``"euclidean"`` or ``"cosine"``.
      precision: precision of the Gram matrix product.
      ref_embeddings: optional ``(R, d)`` references: the candidates
        (positives and negatives) are then the references instead of the
        batch, and no pair is excluded (a reference equal to an anchor is a
        normal candidate), as pytorch-metric-learning's ``ref_emb``. The
        gradient reaches both ``embeddings`` and ``ref_embeddings``.
      ref_labels: ``(R,)`` integer labels of the references (given together
        with ``ref_embeddings``).
      axis_name: inside ``shard_map``/``pmap``, the mapped axis the batch is
        split over: this device's rows are the anchors, the candidates are the
        whole batch all-gathered over the axis (each anchor's own pair excluded
        by its global index), and the result is the loss of the global batch
        on every device. With references, they are split over the axis like
        the batch and all-gathered too.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.5, 0.0], [3.0, 2.0]])
      >>> batch_all_triplet_loss(x, jnp.array([0, 0, 1, 1]), margin=1.0)
      Array(0.9464..., dtype=float32)

    pytorch-metric-learning: TripletMarginLoss (all triplets, default AvgNonZeroReducer); with
    references, ``loss(emb, labels, None, ref_emb, ref_labels)``
    """
    fn = "batch_all_triplet_loss"
    dist, pos, neg, dtype, out_dtype = _triplet_setup(
        embeddings, labels, ref_embeddings, ref_labels, axis_name, fn, margin, metric, squared, precision
    )
    if dist.shape[1] == 0:  # no reference: no triplet
        return _tiles.global_mean(jnp.zeros((), dtype), jnp.zeros((), dtype), axis_name).astype(out_dtype)
    s, _ = _sorted_negatives(dist, neg)
    threshold = dist + margin  # [a, p]: a negative violates iff D_an < D_ap + m
    count = _row_searchsorted_left(s, threshold)  # [a, p]
    prefix = jnp.concatenate(
        [jnp.zeros_like(s[:, :1]), jnp.cumsum(jnp.where(jnp.isfinite(s), s, 0), axis=-1)], axis=-1
    )
    below = jnp.take_along_axis(prefix, count, axis=-1)  # sum of the violating D_an
    count = jnp.where(pos, count, 0)
    total = jnp.sum(jnp.where(pos, count * threshold - below, 0))
    return _tiles.global_mean(total, jnp.sum(count).astype(dtype), axis_name).astype(out_dtype)


def semi_hard_triplet_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 1.0,
    squared: bool = False,
    metric: str = "euclidean",
    precision=_HIGHEST,
    ref_embeddings: ArrayLike | None = None,
    ref_labels: ArrayLike | None = None,
    axis_name=None,
) -> jax.Array:
    r"""Semi-hard triplet loss (FaceNet) exactly as TensorFlow Addons' ``triplet_semihard_loss``.

    For every positive pair ``(a, p)`` (``p != a``, same label) the negative is
    the closest negative farther than the positive,
    ``min{D_an : D_an > D_ap}``; if there is none, the farthest negative
    ``max_n D_an``; if ``a`` has no negative at all, the smallest entry of the
    row (0, the diagonal; with references, the anchor's smallest distance to
    a reference), as TF-Addons' masked maximum gives. The result is

    $$
    \frac{1}{|P|} \sum_{(a, p) \in P} \max(D_{ap} - D_{an^*} + m, 0)
    $$

    the **mean over all ordered positive pairs** (including those with zero
    loss), 0 when there is no positive pair (TF-Addons returns NaN). TF-Addons'
    masked min/max shift (``(D - rowmax) + rowmax``) is reproduced, so the
    values agree to the last bit on the same distance matrix. TF-Addons'
    ``distance_metric="L_2"`` (its default) is ``squared=True`` here, its
    ``"L_1"`` (unsquared Euclidean) is ``squared=False``.

    Memory is ``O(B^2)`` (TF-Addons builds a ``B^3`` tile): rows are sorted and
    the semi-hard negative is found by binary search.

    With ``ref_embeddings``/``ref_labels`` the rows are the anchors' distances
    to the references: every reference with the anchor's label is a positive
    (nothing excluded) and the mean is over these ``(anchor, reference)``
    pairs; with ``axis_name`` the rows are the distances to the global batch,
    and the mean is over the global batch's positive pairs.

    Args:
      embeddings: ``(B, d)`` embeddings.
      labels: ``(B,)`` integer class labels.
      margin: non-negative margin ``m``.
      squared: use squared Euclidean distances.
      metric: ``"euclidean"`` or ``"cosine"``.
      precision: precision of the Gram matrix product.
      ref_embeddings: optional ``(R, d)`` references: the candidates
        (positives and negatives) are then the references instead of the
        batch, and no pair is excluded (a reference equal to an anchor is a
        normal candidate), as pytorch-metric-learning's ``ref_emb``. The
        gradient reaches both ``embeddings`` and ``ref_embeddings``.
      ref_labels: ``(R,)`` integer labels of the references (given together
        with ``ref_embeddings``).
      axis_name: inside ``shard_map``/``pmap``, the mapped axis the batch is
        split over: this device's rows are the anchors, the candidates are the
        whole batch all-gathered over the axis (each anchor's own pair excluded
        by its global index), and the result is the loss of the global batch
        on every device. With references, they are split over the axis like
        the batch and all-gathered too.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.5, 0.0], [3.0, 2.0]])
      >>> semi_hard_triplet_loss(x, jnp.array([0, 0, 1, 1]), margin=1.0)
      Array(0.6830..., dtype=float32)

    References:
      F. Schroff, D. Kalenichenko, J. Philbin, FaceNet, CVPR 2015.

    TensorFlow Addons: tfa.losses.triplet_semihard_loss (re-implemented in the tests; with
    references, its masked minimum / maximum over the anchor-reference distances)
    """
    fn = "semi_hard_triplet_loss"
    dist, pos, neg, dtype, out_dtype = _triplet_setup(
        embeddings, labels, ref_embeddings, ref_labels, axis_name, fn, margin, metric, squared, precision
    )
    if dist.shape[1] == 0:  # no reference: no positive pair
        return _tiles.global_mean(jnp.zeros((), dtype), jnp.zeros((), dtype), axis_name).astype(out_dtype)
    s, n_neg = _sorted_negatives(dist, neg)
    first_farther = _row_searchsorted_right(s, dist)  # [a, p]: first sorted D_an > D_ap
    has_outside = first_farther < n_neg[:, None]
    # initial=: an empty batch (B = 0) reduces over a zero-size axis (no effect otherwise;
    # the `inside` row always holds the 0 of the anchor itself)
    row_max = jnp.max(dist, axis=-1, keepdims=True, initial=-jnp.inf)
    row_min = jnp.min(dist, axis=-1, keepdims=True, initial=jnp.inf)
    gathered = jnp.take_along_axis(s, jnp.minimum(first_farther, s.shape[-1] - 1), axis=-1)
    outside = (jnp.where(has_outside, gathered, row_max) - row_max) + row_max
    inside = jnp.max(jnp.where(neg, dist - row_min, 0), axis=-1, keepdims=True, initial=0) + row_min
    semi_hard = jnp.where(has_outside, outside, inside)
    losses = jnp.where(pos, jax.nn.relu(margin + dist - semi_hard), 0)
    return _tiles.global_mean(jnp.sum(losses), jnp.sum(pos).astype(dtype), axis_name).astype(out_dtype)


# ------------------------------------------------------------------------- pair losses (PyTorch)


def _pair_inputs(x1, x2, targets, fn, names):
    _checks.broadcast_shapes(x1, x2, names[:2], fn)
    a, b, t, out_dtype = _numerics.as_float(x1, x2, targets)
    return a, b, t, _numerics.output_dtype(jnp.asarray(x1).dtype, jnp.asarray(x2).dtype)


def cosine_embedding_loss(
    inputs1: ArrayLike, inputs2: ArrayLike, targets: ArrayLike, *, margin: float = 0.0, axis: int = -1
) -> jax.Array:
    r"""Cosine embedding loss per pair: ``1 - cos`` (y = 1), ``relu(cos - margin)`` (y = -1).

    $$
    \cos = \frac{x_1 \cdot x_2}
    {\sqrt{(\lVert x_1\rVert^2 + 10^{-12})(\lVert x_2\rVert^2 + 10^{-12})}}
    $$

    Targets other than 1 and -1 give 0 (as PyTorch).

    Args:
      inputs1: ``(..., d)`` first embeddings.
      inputs2: ``(..., d)`` second embeddings (broadcastable).
      targets: ``(...)`` targets in ``{1, -1}``.
      margin: margin of the dissimilar term, in ``[-1, 1]``.
      axis: the feature axis.

    Returns:
      One loss per pair, shape ``(...)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> cosine_embedding_loss(jnp.array([[1.0, 0.0], [1.0, 1.0]]),
      ...                       jnp.array([[0.0, 1.0], [1.0, 1.0]]), jnp.array([1, -1]))
      Array([1., 1.], dtype=float32)

    PyTorch: torch.nn.functional.cosine_embedding_loss(reduction="none")
    """
    fn = "cosine_embedding_loss"
    _checks.check_number(margin, "margin", fn, low=-1.0, high=1.0)
    a, b, t, out_dtype = _pair_inputs(inputs1, inputs2, targets, fn, ("inputs1", "inputs2"))
    ndim = max(a.ndim, b.ndim)
    if ndim == 0:
        raise ValueError(f"{fn}: the inputs need a feature axis; got scalars.")
    (ax,) = _checks.check_axis(axis, ndim, "axis", fn)
    eps = 1e-12
    dot = jnp.sum(a * b, axis=ax)
    cos = dot / jnp.sqrt((jnp.sum(a * a, axis=ax) + eps) * (jnp.sum(b * b, axis=ax) + eps))
    out = jnp.where(t == 1, 1 - cos, 0) + jnp.where(t == -1, jax.nn.relu(cos - margin), 0)
    return out.astype(out_dtype)


def margin_ranking_loss(
    inputs1: ArrayLike, inputs2: ArrayLike, targets: ArrayLike, *, margin: float = 0.0
) -> jax.Array:
    r"""Margin ranking loss per pair: ``relu(-y (x_1 - x_2) + margin)``.

    Args:
      inputs1: scores, any shape.
      inputs2: scores, broadcastable with ``inputs1``.
      targets: ``1`` where ``inputs1`` should rank higher, ``-1`` otherwise.
      margin: the margin.

    Returns:
      One loss per element of the broadcast shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> margin_ranking_loss(jnp.array([1.0, 1.0]), jnp.array([0.5, 0.5]), jnp.array([1, -1]))
      Array([0. , 0.5], dtype=float32)

    PyTorch: torch.nn.functional.margin_ranking_loss(reduction="none")
    """
    fn = "margin_ranking_loss"
    _checks.check_number(margin, "margin", fn)
    _checks.broadcast_shapes(inputs1, targets, ("inputs1", "targets"), fn)
    a, b, t, out_dtype = _pair_inputs(inputs1, inputs2, targets, fn, ("inputs1", "inputs2"))
    return jax.nn.relu(-t * (a - b) + margin).astype(out_dtype)


def hinge_embedding_loss(inputs: ArrayLike, targets: ArrayLike, *, margin: float = 1.0) -> jax.Array:
    r"""Hinge embedding loss per element: ``x`` (``y = 1``), ``relu(margin - x)`` (``y = -1``).

    As PyTorch, an element whose target is neither 1 nor -1 gets both terms,
    ``x + relu(margin - x)``.

    Args:
      inputs: values (usually distances), any shape.
      targets: ``1`` / ``-1``, broadcastable with ``inputs``.
      margin: the margin.

    Returns:
      One loss per element of the broadcast shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> hinge_embedding_loss(jnp.array([0.3, 0.3]), jnp.array([1, -1]))
      Array([0.3, 0.7], dtype=float32)

    PyTorch: torch.nn.functional.hinge_embedding_loss(reduction="none")
    """
    fn = "hinge_embedding_loss"
    _checks.check_number(margin, "margin", fn)
    _checks.broadcast_shapes(inputs, targets, ("inputs", "targets"), fn)
    x, t, _ = _numerics.as_float(inputs, targets)
    out_dtype = _numerics.output_dtype(jnp.asarray(inputs).dtype)
    out = jnp.where(t != 1, jax.nn.relu(margin - x), 0) + jnp.where(t != -1, x, 0)
    return out.astype(out_dtype)


def contrastive_loss(
    embeddings_a: ArrayLike,
    embeddings_b: ArrayLike,
    labels: ArrayLike,
    *,
    margin: float = 1.0,
    axis: int = -1,
) -> jax.Array:
    r"""Contrastive loss per pair (Hadsell et al. 2006): ``y d^2 + (1 - y) relu(margin - d)^2``.

    ``d = ||a - b||_2`` over ``axis``; ``y = 1`` for a similar pair and 0 for
    a dissimilar one (booleans, integers or floats in ``[0, 1]``), as
    TensorFlow Addons' ``contrastive_loss`` (which takes ``d`` directly).

    Args:
      embeddings_a: ``(..., d)`` first embeddings.
      embeddings_b: ``(..., d)`` second embeddings (broadcastable).
      labels: ``(...)`` pair labels, 1 similar, 0 dissimilar.
      margin: non-negative margin.
      axis: the feature axis.

    Returns:
      One loss per pair, shape ``(...)``.

    Gradient: finite for coincident embeddings (the square root's gradient is
    0 at 0 and the similar term uses ``d^2`` directly).

    Examples:
      >>> import jax.numpy as jnp
      >>> a = jnp.array([[0.0, 0.0], [0.0, 0.0]])
      >>> b = jnp.array([[0.3, 0.4], [0.3, 0.4]])
      >>> contrastive_loss(a, b, jnp.array([1, 0]))
      Array([0.25, 0.25], dtype=float32)

    References:
      R. Hadsell, S. Chopra, Y. LeCun, Dimensionality Reduction by Learning an
      Invariant Mapping, CVPR 2006.

    TensorFlow Addons: tfa.losses.contrastive_loss; pytorch-metric-learning: ContrastiveLoss
    """
    fn = "contrastive_loss"
    shape = _checks.broadcast_shapes(embeddings_a, embeddings_b, ("embeddings_a", "embeddings_b"), fn)
    if not shape:
        raise ValueError(f"{fn}: the embeddings need a feature axis; got scalars.")
    (ax,) = _checks.check_axis(axis, len(shape), "axis", fn)
    pair_shape = shape[:ax] + shape[ax + 1 :]
    try:
        np.broadcast_shapes(np.shape(labels), pair_shape)
    except ValueError:
        raise ValueError(
            f"{fn}: `labels` must broadcast to the pair shape {pair_shape}; got {np.shape(labels)}."
        ) from None
    _check_margin(margin, fn)
    a, b, out_dtype = _numerics.as_float(embeddings_a, embeddings_b)
    y = jnp.asarray(labels).astype(a.dtype)
    diff = a - b
    sq = jnp.sum(diff * diff, axis=ax)
    d = _numerics.sqrt(sq)
    return (y * sq + (1 - y) * jax.nn.relu(margin - d) ** 2).astype(out_dtype)


# --------------------------------------------------------------------------- other batch losses


def lifted_structured_loss(
    embeddings: ArrayLike, labels: ArrayLike, *, margin: float = 1.0, precision=_HIGHEST
) -> jax.Array:
    r"""Lifted structured loss (Oh Song et al. 2016).

    For every unordered positive pair ``{i, j}``, with ``N(i)`` the negatives of ``i``,

    $$
    J_{ij} = \log\Big(\sum_{k \in N(i)} e^{m - D_{ik}}
    + \sum_{l \in N(j)} e^{m - D_{jl}}\Big) + D_{ij},
    \qquad L = \frac{1}{2|P|} \sum_{\{i, j\} \in P} \max(J_{ij}, 0)^2
    $$

    with Euclidean ``D`` and ``|P|`` the number of unordered positive pairs: the
    **mean over positive pairs of relu(J)^2 / 2**. A pair none of whose members
    has a negative has ``J = -inf`` and contributes 0 (pytorch-metric-learning
    uses ``D_ij`` there); 0 when there is no positive pair.

    Args:
      embeddings: ``(B, d)`` embeddings.
      labels: ``(B,)`` integer class labels.
      margin: non-negative margin ``m``.
      precision: precision of the Gram matrix product.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[0.0, 0.0], [0.0, 1.0], [3.0, 0.0], [3.0, 1.0]])
      >>> lifted_structured_loss(x, jnp.array([0, 0, 1, 1]))
      Array(0.0475..., dtype=float32)

    References:
      H. Oh Song, Y. Xiang, S. Jegelka, S. Savarese, Deep Metric Learning via
      Lifted Structured Feature Embedding, CVPR 2016.

    pytorch-metric-learning: LiftedStructureLoss (LpDistance(normalize_embeddings=False))
    """
    fn = "lifted_structured_loss"
    x, labels, out_dtype = prepare_batch(embeddings, labels, fn)
    _check_margin(margin, fn)
    dist = _in_batch_distances(x, "euclidean", False, precision)
    pos = positive_mask(labels)
    lse, has = _numerics.masked_logsumexp(margin - dist, negative_mask(labels))
    # log(exp(lse_i) + exp(lse_j)) over the members that have negatives
    hi, hj = has[:, None], has[None, :]
    li, lj = lse[:, None], lse[None, :]
    top = jax.lax.stop_gradient(jnp.where(hi & hj, jnp.maximum(li, lj), jnp.where(hi, li, lj)))
    total = jnp.where(hi, jnp.exp(jnp.where(hi, li - top, 0)), 0) + jnp.where(
        hj, jnp.exp(jnp.where(hj, lj - top, 0)), 0
    )
    valid = pos & (hi | hj)
    j = top + jnp.log(jnp.where(valid, total, 1)) + dist
    per_pair = jnp.where(valid, jax.nn.relu(j) ** 2, 0) / 2
    return _numerics.safe_divide(jnp.sum(per_pair), jnp.sum(pos).astype(x.dtype)).astype(out_dtype)


def soft_nearest_neighbor_loss(
    embeddings: ArrayLike, labels: ArrayLike, *, temperature: float = 1.0, precision=_HIGHEST
) -> jax.Array:
    r"""Soft nearest neighbour loss (Frosst et al. 2019), squared Euclidean distances.

    $$
    \ell_i = -\log \frac{\sum_{j \ne i,\, y_j = y_i} e^{-D_{ij}/T}}
    {\sum_{k \ne i} e^{-D_{ik}/T}},
    \qquad D_{ij} = \lVert x_i - x_j \rVert^2
    $$

    and the result is the **mean of ell_i over the anchors that have at least
    one positive** (the paper averages over every anchor and needs a
    stabilising epsilon for anchors without one); 0 when there is none.

    Args:
      embeddings: ``(B, d)`` embeddings.
      labels: ``(B,)`` integer class labels.
      temperature: positive temperature ``T``.
      precision: precision of the Gram matrix product.

    Returns:
      A scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[0.0, 0.0], [0.0, 1.0], [2.0, 0.0], [2.0, 1.0]])
      >>> soft_nearest_neighbor_loss(x, jnp.array([0, 0, 1, 1]))
      Array(0.0658..., dtype=float32)

    References:
      N. Frosst, N. Papernot, G. Hinton, Analyzing and Improving
      Representations with the Soft Nearest Neighbor Loss, ICML 2019.

    Reference: a brute-force NumPy / PyTorch implementation of the formula (tests).
    """
    fn = "soft_nearest_neighbor_loss"
    x, labels, out_dtype = prepare_batch(embeddings, labels, fn)
    _checks.check_temperature(temperature, fn)
    logits = -_in_batch_distances(x, "euclidean", True, precision) / temperature
    pos = positive_mask(labels)
    lse_pos, has_pos = _numerics.masked_logsumexp(logits, pos)
    lse_all, _ = _numerics.masked_logsumexp(logits, ~jnp.eye(x.shape[0], dtype=bool))
    per_anchor = jnp.where(has_pos, lse_all - lse_pos, 0)
    return _numerics.safe_divide(jnp.sum(per_anchor), jnp.sum(has_pos).astype(x.dtype)).astype(out_dtype)
