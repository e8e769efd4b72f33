"""Metric learning: the triplet family, with in-batch mining as masks.

``triplet_margin_loss`` takes explicit triplets and returns one value per
triplet, like optax. The in-batch miners (batch-hard, batch-all, semi-hard)
are defined over a whole batch and return a scalar; each docstring says
exactly what is averaged. Anchors that have no positive are left out of the
average, a mean over an empty set is 0 (never NaN), and value and gradient
stay finite when embeddings coincide.

In-batch mining never builds variable-length index lists: every miner works
with fixed-shape boolean masks over the ``(B, B)`` distance matrix, so a
whole training step jit-compiles. The distance matrix comes from the
all-pairs core shared with ``cdist``: one matrix product of the centred
embeddings (``precision=HIGHEST`` by default, accurate on data with a common
offset), clamped at 0, with an exact zero diagonal, an exactly symmetric
matrix and a zero-at-zero square-root gradient. Cosine distances follow
``cdist``'s zero-vector rule (two zero vectors are at distance 0, a zero
vector is at distance 1 from any other) and are scale-free; Euclidean
distances are finite wherever representable (a common power of two scales
the products, and squared hinges are factored: never ``inf - inf``).

The miners also mine the batch's anchors against other candidates (a
``MiningSet`` of ``_batch``): references (``ref_embeddings``,
``ref_labels``: nothing excluded, as pytorch-metric-learning's ``ref_emb``)
or, with ``axis_name``, the batch all-gathered over a ``shard_map``/``pmap``
axis (the own pair excluded by its global index). The masks are then
``(n, m)``: anchors by candidates.

The label masks live in ``_batch``, PyTorch's pair losses in
``_pair_losses``, the contrastive family (InfoNCE, CLIP, SigLIP, NT-Xent,
supervised contrastive, N-pair, contrastive, lifted structured, soft nearest
neighbour) in ``_contrastive`` and the pair-mining losses (multi-similarity,
circle) in ``_pair_mining``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks, _numerics, _pairwise, _tiles
from ._batch import prepare_mining

__all__ = [
    "batch_all_triplet_loss",
    "batch_hard_triplet_loss",
    "semi_hard_triplet_loss",
    "triplet_margin_loss",
]

METRICS = ("euclidean", "cosine")
_HIGHEST = jax.lax.Precision.HIGHEST

# --------------------------------------------------------------------------- validation


def _check_metric(metric, squared, fn: str):
    _checks.check_option(metric, "metric", METRICS, fn)
    if squared and metric != "euclidean":
        raise ValueError(
            f"{fn}: `squared=True` applies to the 'euclidean' metric only; got metric={metric!r}."
        )


def _check_margin(margin, fn: str):
    return _checks.check_number(margin, "margin", fn, low=0.0)


# --------------------------------------------------------------------------- distance matrices


def _row_distances(x, y, metric):
    """``(B,)`` distances of matched rows ``x[i]``, ``y[i]`` (the in-batch metric's rules; the
    Euclidean one unsquared, from a scaled sum: finite wherever representable)."""
    if metric == "cosine":
        return _pairwise.rowwise_cosine(x, y)
    return _numerics.p_norm(x - y, 2.0, -1)


def _first_argmax(values):
    """Each row's first index of its maximum (a max and a compare: cheaper than ``argmax``)."""
    top = jnp.max(values, axis=-1, keepdims=True)
    n = values.shape[-1]
    first = jnp.min(jnp.where(values == top, jnp.arange(n), n), axis=-1)
    return jnp.minimum(first, n - 1)  # a row of NaN (non-finite input) picks the last index


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


def _gap(d_ap, d_an, squared):
    """``d_ap - d_an``, or ``d_ap^2 - d_an^2`` as ``(d_ap - d_an)(d_ap + d_an)`` for ``squared``: never
    ``inf - inf`` (an overflowing square gives a signed infinity, a representable gap a finite one)."""
    return (d_ap - d_an) * (d_ap + d_an) if squared else d_ap - d_an


def triplet_hinge(d_ap, d_an, d_pn, margin, swap, squared=False):
    """``relu(d_ap - min(d_an, d_pn if swap) + margin)``: the triplet hinge on distances.

    ``squared``: the distances are given unsquared and the hinge is on their
    squares, ``relu(d_ap^2 - d_an^2 + margin)`` (factored: no ``inf - inf``).
    """
    if swap:
        d_an = jnp.minimum(d_an, d_pn)
    return jax.nn.relu(_gap(d_ap, d_an, squared) + margin)


def _lp_distance(x, y, p, eps, axis):
    """PyTorch's ``pairwise_distance``: ``||x - y + eps||_p`` over ``axis`` (a scaled sum)."""
    return _numerics.p_norm(x - y + eps, p, axis=axis)


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
    on squared Euclidean distances, ``relu(||a - p||^2 - ||a - n||^2 + 0.2)``
    (computed as ``(d_ap - d_an)(d_ap + d_an)``: finite wherever the squares
    are, never ``inf - inf``). Distances are scaled sums, finite wherever
    representable (at ``x1e30`` in float32).

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
    d_ap = _lp_distance(a, p, norm_degree, eps, ax)
    d_an = _lp_distance(a, n, norm_degree, eps, ax)
    d_pn = _lp_distance(p, n, norm_degree, eps, ax) if swap else None
    return triplet_hinge(d_ap, d_an, d_pn, margin, swap, squared).astype(out_dtype)


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
      metric: ``"euclidean"`` or ``"cosine"`` (``D = 1 - cos``, scale-free).
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

    pytorch-metric-learning: TripletMarginLoss(margin=margin, distance=D, reducer=MeanReducer(),
    smooth_loss=soft) with BatchHardMiner(distance=D), D = LpDistance(normalize_embeddings=False)
    (LpDistance(normalize_embeddings=False, power=2) for squared=True, CosineSimilarity() for
    metric="cosine"); pml's default D, LpDistance(), normalizes the embeddings: then this function of
    L2-normalized rows. With references,
    ``loss(emb, labels, miner(emb, labels, ref_emb, ref_labels), ref_emb, ref_labels)``
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
    # Squared distances in their ranking form (times a power of two: the same order, and no
    # overflow to ties of inf at large scales); no square root of the (n, m) matrix.
    order = "sqeuclidean" if metric == "euclidean" else metric
    dist = jax.lax.stop_gradient(ms.distances(order, precision, ranking=True))
    same_label, pos = ms.masks()
    hardest_pos = _first_argmax(jnp.where(pos, dist, -jnp.inf))
    hardest_neg = _first_argmax(jnp.where(same_label, -jnp.inf, -dist))
    valid = jnp.any(pos, axis=-1) & ~jnp.all(same_label, axis=-1)
    d_ap = _row_distances(x, cands[hardest_pos], metric)
    d_an = _row_distances(x, cands[hardest_neg], metric)
    violation = jnp.where(valid, _gap(d_ap, d_an, squared), 0) + margin
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
      metric: ``"euclidean"`` or ``"cosine"`` (scale-free).
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

    pytorch-metric-learning: TripletMarginLoss(margin=margin, distance=D) (all triplets, its default
    AvgNonZeroReducer), D = LpDistance(normalize_embeddings=False) (LpDistance(normalize_embeddings=False,
    power=2) for squared=True, CosineSimilarity() for metric="cosine"); pml's default D, LpDistance(),
    normalizes the embeddings: then this function of L2-normalized rows. With references,
    ``loss(emb, labels, None, ref_emb, ref_labels)``
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
      metric: ``"euclidean"`` or ``"cosine"`` (scale-free).
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


# --------------------------------------------------------------------------- other batch losses
