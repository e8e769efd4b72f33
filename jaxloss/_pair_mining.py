"""Pair-mining losses over a batch: Multi-Similarity and Circle.

Each anchor of the batch is compared with every candidate (the batch itself,
references, or with ``axis_name`` the batch all-gathered over the devices:
a ``MiningSet`` of ``_batch``) through the cosine similarities of the
L2-normalised embeddings, and weighs its positive and negative pairs with a
soft maximum. One loss per anchor comes back. The normalisation is
scale-free (norms of each row times a power of two: the same losses for
embeddings scaled by 1e-30 to 1e30 in float32, 1e-300 to 1e300 in float64);
a zero row normalises to 0 with gradient 0 (``torch.nn.functional.normalize``'s
value, whose eps 1e-12 is pytorch-metric-learning's convention).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from . import _checks, _numerics, _pairwise
from ._batch import prepare_mining

__all__ = ["circle_loss", "multi_similarity_loss"]


def _batch_similarities(fn, embeddings, labels, ref_embeddings, ref_labels, axis_name):
    """``(cosine similarities (n, m), positive mask, negative mask, out dtype)`` of the anchors
    (the batch) against the candidates (the batch, the references, or the global batch)."""
    _checks.check_floating(embeddings, "embeddings", fn)
    _checks.check_integer(labels, "labels", fn)
    x, y = jnp.asarray(embeddings), jnp.asarray(labels)
    if x.ndim != 2:
        raise ValueError(f"{fn}: `embeddings` must have shape (N, D); got shape {x.shape}.")
    if y.shape != (x.shape[0],):
        raise ValueError(f"{fn}: `labels` must have shape (N,) = ({x.shape[0]},); got {y.shape}.")
    if ref_embeddings is not None:
        _checks.check_floating(ref_embeddings, "ref_embeddings", fn)
    ms = prepare_mining(x, y, ref_embeddings, ref_labels, axis_name, fn)
    cdt = _numerics.compute_dtype(ms.anchors.dtype)
    unit, _ = _pairwise.unit_rows(ms.anchors.astype(cdt))
    if ms.same:
        sim = _pairwise.dot(unit, same=True)
    else:
        sim = _pairwise.dot(unit, _pairwise.unit_rows(ms.candidates.astype(cdt))[0])
    same_label, pos = ms.masks()
    return sim, pos, ~same_label, ms.out_dtype


def multi_similarity_loss(
    embeddings: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    ref_embeddings: jax.typing.ArrayLike | None = None,
    ref_labels: jax.typing.ArrayLike | None = None,
    axis_name=None,
) -> jax.Array:
    r"""Multi-Similarity loss per anchor, over every in-batch pair (or every pair with references).

    With ``S_ij`` the cosine similarity of embeddings ``i`` and ``j`` (scale-free;
    0 with a zero row: see the module),
    ``P_i`` the other embeddings of ``i``'s class, ``N_i`` those of other
    classes and ``lambda = base``:

    .. math::

        \ell_i = \frac{1}{\alpha} \log\Big(1 + \sum_{j \in P_i} e^{-\alpha (S_{ij} - \lambda)}\Big)
               + \frac{1}{\beta} \log\Big(1 + \sum_{j \in N_i} e^{\beta (S_{ij} - \lambda)}\Big)

    A term over an empty set is 0.

    Args:
      embeddings: ``(N, D)`` floating embeddings (normalised inside).
      labels: ``(N,)`` integer class ids.
      alpha: ``alpha > 0``, the weight of positive pairs.
      beta: ``beta > 0``, the weight of negative pairs.
      base: ``lambda``, the similarity offset.
      ref_embeddings: optional ``(R, D)`` references: the pairs of each anchor
        are then its pairs with the references instead of the batch, nothing
        excluded (a reference equal to an anchor is a normal positive), as
        pytorch-metric-learning's ``ref_emb``. The gradient reaches both
        ``embeddings`` and ``ref_embeddings``.
      ref_labels: ``(R,)`` integer labels of the references (given together
        with ``ref_embeddings``).
      axis_name: inside ``shard_map``/``pmap``, the mapped axis the batch is
        split over: this device's rows are the anchors and their pairs are
        with the whole batch, all-gathered (each anchor's own pair excluded
        by its global index). The result is this device's anchors' losses
        (``out_specs=P(axis_name)`` reassembles one device's ``(N,)``
        result); references are split over the axis like the batch and
        all-gathered too.

    Returns:
      ``(N,)`` losses in the input dtype. ``jnp.mean`` of them equals
      pytorch-metric-learning's ``MultiSimilarityLoss(alpha, beta, base)``
      without a miner (every positive and negative pair; its default
      ``MeanReducer``) for ``N >= 2``; with references, of
      ``loss(x, labels, None, ref_emb, ref_labels)`` (which returns 0 when
      there is at most one positive and one negative pair).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
      >>> loss = multi_similarity_loss(x, jnp.array([0, 0, 1]), beta=10.0)
      >>> [round(v, 4) for v in loss.tolist()]
      [0.2194, 0.3501, 0.1315]

    References:
      Wang et al., "Multi-Similarity Loss with General Pair Weighting for
      Deep Metric Learning", CVPR 2019.

    pytorch-metric-learning: losses.MultiSimilarityLoss(alpha, beta, base) (its default distance,
    CosineSimilarity(), normalizes the embeddings), the mean of these values
    """
    fn = "multi_similarity_loss"
    _checks.check_temperature(alpha, fn, "alpha")
    _checks.check_temperature(beta, fn, "beta")
    _checks.check_number(base, "base", fn)
    sim, pos, neg, out_dtype = _batch_similarities(
        fn, embeddings, labels, ref_embeddings, ref_labels, axis_name
    )
    alpha, beta, base = (jnp.asarray(v, sim.dtype) for v in (alpha, beta, base))
    pos_term = _numerics.log1p_sum_exp(-alpha * (sim - base), pos, axis=1) / alpha
    neg_term = _numerics.log1p_sum_exp(beta * (sim - base), neg, axis=1) / beta
    return (pos_term + neg_term).astype(out_dtype)


def circle_loss(
    embeddings: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    margin: float = 0.4,
    gamma: float = 80.0,
    ref_embeddings: jax.typing.ArrayLike | None = None,
    ref_labels: jax.typing.ArrayLike | None = None,
    axis_name=None,
) -> jax.Array:
    r"""Circle loss per anchor (pair-label form), over every in-batch pair (or pair with references).

    With ``s_p`` the cosine similarities (scale-free; 0 with a zero row) of
    anchor ``i`` to its positives,
    ``s_n`` to its negatives, ``m = margin`` and the detached weights
    ``a_p = relu(1 + m - s_p)``, ``a_n = relu(s_n + m)``
    (``jax.lax.stop_gradient``, as in the paper):

    .. math::

        \ell_i = \mathrm{softplus}\Big(\log \sum_p e^{-\gamma a_p (s_p - 1 + m)}
                 + \log \sum_n e^{\gamma a_n (s_n - m)}\Big)

    and ``0`` for an anchor without a positive or without a negative.

    Args:
      embeddings: ``(N, D)`` floating embeddings (normalised inside).
      labels: ``(N,)`` integer class ids.
      margin: ``m``, the relaxation.
      gamma: ``gamma > 0``, the scale.
      ref_embeddings: optional ``(R, D)`` references: the pairs of each anchor
        are then its pairs with the references instead of the batch, nothing
        excluded (a reference equal to an anchor is a normal positive), as
        pytorch-metric-learning's ``ref_emb``. The gradient reaches both
        ``embeddings`` and ``ref_embeddings``.
      ref_labels: ``(R,)`` integer labels of the references (given together
        with ``ref_embeddings``).
      axis_name: inside ``shard_map``/``pmap``, the mapped axis the batch is
        split over: this device's rows are the anchors and their pairs are
        with the whole batch, all-gathered (each anchor's own pair excluded
        by its global index). The result is this device's anchors' losses
        (``out_specs=P(axis_name)`` reassembles one device's ``(N,)``
        result); references are split over the axis like the batch and
        all-gathered too.

    Returns:
      ``(N,)`` losses in the input dtype. pytorch-metric-learning's
      ``CircleLoss(m=margin, gamma=gamma)`` averages the non-zero ones (its
      ``AvgNonZeroReducer``): ``l.sum() / jnp.maximum(jnp.count_nonzero(l),
      1)`` equals it (with references, ``loss(x, labels, None, ref_emb,
      ref_labels)``).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
      >>> loss = circle_loss(x, jnp.array([0, 0, 1]), gamma=8.0)
      >>> [round(v, 4) for v in loss.tolist()]
      [0.1012, 1.0635, 0.0]

    References:
      Sun et al., "Circle Loss: A Unified Perspective of Pair Similarity
      Optimization", CVPR 2020.

    pytorch-metric-learning: losses.CircleLoss(m=margin, gamma=gamma) (its default distance,
    CosineSimilarity(), normalizes the embeddings; its AvgNonZeroReducer: the mean of the non-zero values)
    """
    fn = "circle_loss"
    _checks.check_number(margin, "margin", fn)
    _checks.check_temperature(gamma, fn, "gamma")
    sim, pos, neg, out_dtype = _batch_similarities(
        fn, embeddings, labels, ref_embeddings, ref_labels, axis_name
    )
    m, gamma = jnp.asarray(margin, sim.dtype), jnp.asarray(gamma, sim.dtype)
    fixed = jax.lax.stop_gradient(sim)
    logit_p = -gamma * jax.nn.relu(1 + m - fixed) * (sim - (1 - m))
    logit_n = gamma * jax.nn.relu(fixed + m) * (sim - m)
    lse_p, has_p = _numerics.masked_logsumexp(logit_p, pos, axis=1)
    lse_n, has_n = _numerics.masked_logsumexp(logit_n, neg, axis=1)
    both = has_p & has_n
    loss = jnp.where(both, jax.nn.softplus(jnp.where(both, lse_p + lse_n, 0)), 0)
    return loss.astype(out_dtype)
