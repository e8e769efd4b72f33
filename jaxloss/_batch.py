"""Batches with labels: validation, label masks and the anchors-against-candidates set of in-batch mining.

Every in-batch loss (the triplet miners, the contrastive family, the
pair-mining losses) starts here: a ``(B, d)`` batch with ``(B,)`` integer
labels is checked once (``prepare_batch``), and a mining loss builds a
:class:`MiningSet`, the anchors and the candidates they are mined against:

* the batch against itself (its own pair excluded);
* references (``ref_embeddings``, ``ref_labels``: nothing excluded, as
  pytorch-metric-learning's ``ref_emb``);
* with ``axis_name``, the batch all-gathered over a ``shard_map``/``pmap``
  axis (the own pair excluded by its global index).

Miners never build variable-length index lists: they work with fixed-shape
boolean masks (``positive_mask``, ``negative_mask``, ``triplet_mask``), so a
whole training step jit-compiles.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _checks, _numerics, _pairwise, _tiles

__all__ = [
    "MiningSet",
    "check_embeddings",
    "check_labels",
    "check_references",
    "negative_mask",
    "positive_mask",
    "prepare_batch",
    "prepare_mining",
    "triplet_mask",
]


def check_labels(labels, n: int, fn: str, name: str = "labels"):
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


def check_embeddings(embeddings, fn: str, name: str = "embeddings"):
    _checks.check_ndim(embeddings, name, fn, ndim=2)
    return embeddings


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
    labels = check_labels(labels, np.shape(labels)[0] if np.ndim(labels) else -1, "positive_mask")
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
    labels = check_labels(labels, np.shape(labels)[0] if np.ndim(labels) else -1, "negative_mask")
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
    labels = check_labels(labels, np.shape(labels)[0] if np.ndim(labels) else -1, "triplet_mask")
    pos = positive_mask(labels)
    neg = negative_mask(labels)
    return pos[:, :, None] & neg[:, None, :]


def prepare_batch(embeddings, labels, fn):
    """Checks a ``(B, d)`` batch and its ``(B,)`` labels; returns ``(x, labels, out_dtype)``."""
    check_embeddings(embeddings, fn)
    labels = check_labels(labels, np.shape(embeddings)[0], fn)
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

    def distances(self, metric, precision, ranking=False):
        """``(n, m)`` distances of the anchors to the candidates (``metric``, ``ranking``: ``_pairwise``)."""
        other = None if self.same else self.candidates
        return _pairwise.distances(
            self.anchors, other, metric=metric, same=self.same, precision=precision, ranking=ranking
        )

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
    check_embeddings(ref_embeddings, fn, "ref_embeddings")
    d, d_ref = np.shape(embeddings)[-1], np.shape(ref_embeddings)[-1]
    if d_ref != d:
        raise ValueError(
            f"{fn}: `ref_embeddings` must have the embeddings' dimension {d}; got shape "
            f"{tuple(np.shape(ref_embeddings))}."
        )
    return check_labels(ref_labels, np.shape(ref_embeddings)[0], fn, "ref_labels")


def prepare_mining(embeddings, labels, ref_embeddings, ref_labels, axis_name, fn) -> MiningSet:
    """Checks a batch (and its references) and builds the :class:`MiningSet` of a mining loss.

    * no references, no ``axis_name``: the batch against itself, own pair excluded;
    * references: the batch against the references, nothing excluded
      (pytorch-metric-learning's ``ref_emb`` / ``ref_labels``);
    * ``axis_name``: this device's batch against the batch (or the references)
      all-gathered over the axis; the own pair is excluded by its global index.
    """
    check_embeddings(embeddings, fn)
    labels = check_labels(labels, np.shape(embeddings)[0], fn)
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
