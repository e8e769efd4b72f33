"""Contrastive losses: InfoNCE, CLIP, SigLIP, NT-Xent, supervised contrastive, N-pair and pair-based kin.

Every loss here is a scalar computed from the ``B x B`` matrix of logits
``s_ij = scale * q_i . k_j + bias`` of a batch of queries against a batch of
keys (for NT-Xent and supervised contrastive, the embeddings against
themselves); each docstring says exactly what is averaged. Each loss reads
the matrix through a few statistics per row or per column: a (masked)
logsumexp, a masked sum of an elementwise term, a masked count.

Three evaluations, one set of statistics (the tiling layer, ``_tile_engine``,
computes the same ``Stat`` definitions on every path):

* **dense** (``block_size=None`` while the ``B x B`` logits, all devices'
  keys included, have at most ``2^24`` entries: the library's block
  policy): the whole matrix, plain autodiff. With
  ``axis_name`` (inside ``shard_map`` or ``pmap``) the keys of every device
  are all-gathered, and the gradient reaches the local embeddings through the
  gather's transpose.
* **tiled** (``block_size=b``, or ``None`` above the dense budget with
  ``b`` = 1024 on a CPU, 2048 on GPU/TPU: the library's block policy, chosen
  rather than tuned): a ``jax.custom_vjp`` whose forward visits
  ``b x b`` tiles (a block of queries against a block of keys) with an online
  logsumexp and keeps only the per-row and per-column statistics; the
  backward recomputes each tile and turns it into the tile's share of the
  query and key gradients. Ragged batches are not padded: the last block is
  pulled back to the end. Temporary memory is ``O(B d)`` plus one ``b x b``
  float32 tile at a time (the scores, overwritten by their cotangent in the
  backward pass) for InfoNCE, CLIP and SigLIP, two for the losses whose tile
  feeds two masked statistics (supervised contrastive, NT-Xent: the scores
  and one masked copy in the forward pass); the scale, the inverse norms and
  the bias act on the ``(b, d)`` blocks, not on the tile.
* **ring** (tiled with ``axis_name``): the same tile scan, with the
  key blocks (their ids and labels, and the per-key statistics or gradient
  accumulators) passed around the devices with ``ppermute``; nothing is
  gathered. After a full turn the per-key accumulators are back home.

Temperatures, logit scales and logit biases may be traced (learnable): their
gradient is exact on every path. Inside ``shard_map`` a replicated parameter's
gradient is the sum over the devices of each device's share, taken once.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _block_policy, _checks, _numerics, _tile_engine, _tiles
from ._batch import prepare_batch, prepare_mining

__all__ = [
    "clip_loss",
    "contrastive_loss",
    "info_nce",
    "lifted_structured_loss",
    "npair_loss",
    "ntxent",
    "sigmoid_contrastive_loss",
    "soft_nearest_neighbor_loss",
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


# --------------------------------------------------------------------------- statistics of the logits
#
# Every loss below is a few statistics of s_ij = scale * q_i . k_j + bias (cosines when
# normalized), computed by the tiling layer (_tile_engine.statistics): dense, tiled or ring by the
# same Stat definitions. The tile callbacks see per-row / per-column dicts with "index" (the
# position in the batch concatenated over the devices) and "label" where the loss has labels.


class _Similarity(NamedTuple):
    """The tile of logits ``scale * q @ k.T (* inverse norms) + bias`` (a static, hashable callback)."""

    precision: object

    def __call__(self, params, rows, cols):
        # every factor scales the (b, d) inputs, not the (b, b) tile: fewer passes when b > d, and
        # the backward's tile is only the cotangent of the product (no tile-sized reductions for
        # the scale's or the inverse norms' gradients)
        q, k = rows["x"], cols["x"]
        scale = params["scale"].astype(q.dtype)
        if "inv" in rows:
            # unit rows first, then the scale: at 1e-300 (float64) the inverse norms' cotangents
            # stay normal numbers (scale * inv first lost 4e-8 of the gradient there)
            q, k = (q * rows["inv"][:, None]) * scale, k * cols["inv"][:, None]
        else:
            q = q * scale
        logits = jnp.matmul(q, k.T, precision=self.precision)
        return logits + params["bias"] if "bias" in params else logits


def _others(rows, cols):
    return rows["index"][:, None] != cols["index"][None, :]


def _negatives(rows, cols):
    return rows["label"][:, None] != cols["label"][None, :]


def _positives(rows, cols):
    return _others(rows, cols) & (rows["label"][:, None] == cols["label"][None, :])


def _logit(scores, rows, cols):
    return scores[0]


def _log_sigmoid_of_signed_logit(scores, rows, cols):
    """``log sigmoid(z_ij s_ij)`` with ``z = +1`` on the matching pair, ``-1`` elsewhere (SigLIP)."""
    match = rows["index"][:, None] == cols["index"][None, :]
    return jax.nn.log_sigmoid(jnp.where(match, scores[0], -scores[0]))


def _softplus_of_gap(scores, rows, cols):
    """``softplus(c_i - s_ij)``: NT-Xent's term for a positive pair, ``c_i`` the negatives' logsumexp."""
    return jax.nn.softplus(rows["gap"][:, None] - scores[0])


_Stat = _tile_engine.Stat
_INFO_NCE_STATS = (_Stat("lse"),)
_CLIP_STATS = (_Stat("lse"), _Stat("lse", "col"))
_SIGLIP_STATS = (_Stat("sum", term=_log_sigmoid_of_signed_logit),)
_SUPCON_STATS = (
    _Stat("lse", mask=_others),
    _Stat("sum", mask=_positives, term=_logit),
    _Stat("sum", mask=_positives),
)
_NTXENT_NEGATIVE_STATS = (_Stat("lse", mask=_negatives),)
_NTXENT_POSITIVE_STATS = (
    _Stat("sum", mask=_positives, term=_softplus_of_gap),
    _Stat("sum", mask=_positives),
)


def _side(x, normalize: bool):
    """An embedding side: the rows and, when normalized, their inverse norms ``1 / |x|``.

    Each tile scales its (b, d) rows and columns by the inverse norms before its
    matrix product, instead of the whole batch keeping a normalized copy (and
    its gradient). The inverse norms are ``_numerics.inverse_norm``: taken of
    each row times a power of two, so the losses are scale-free (the same for
    embeddings scaled by ``1e-30`` to ``1e30`` in float32), and 0 for a zero
    row, whose normalized value is then 0 (``torch.nn.functional.normalize``'s,
    as pytorch-metric-learning and open_clip) with gradient 0.
    """
    if not normalize:
        return {"x": x}
    return {"x": x, "inv": _numerics.inverse_norm(x)}


def _matching_products(q_side, k_side):
    """``q_i . k_i`` of each matching pair (normalized when the sides are: unit rows first, so
    the products neither overflow nor underflow at any scale)."""
    if "inv" not in q_side:
        return jnp.sum(q_side["x"] * k_side["x"], axis=-1)
    return _unit_products(q_side["x"], k_side["x"], q_side["inv"], k_side["inv"])


def _unit_products(q, k, q_inv, k_inv):
    """``(q_i . k_i) / (|q_i| |k_i|)`` with each side times one power of two (its largest entry
    into ``[1, 2)``) before the product: no overflow, and exact for any common scale of a side.

    A per-row scale would be broadcast over ``(B, d)``, which XLA:CPU materialises (one
    ``(B, d)`` buffer per side); a per-side scalar is not. Only a pair whose two rows are both
    far below their side's largest entry (a product below ``1e-38`` after scaling, float32)
    underflows; the in-tile similarities are scaled per row.
    """
    s_q, inv_q = _numerics.pow2_scale(jnp.max(jnp.abs(q), initial=0))
    s_k, inv_k = _numerics.pow2_scale(jnp.max(jnp.abs(k), initial=0))
    # q (k s_k s_q): the scales on one operand, in this order (each step representable); so
    # written, XLA:CPU fuses the gradients into their accumulators (no (B, d) buffer).
    return jnp.sum(q * ((k * s_k) * s_q), axis=-1) * (q_inv * inv_q) * (k_inv * inv_k)


def _logit_stats(stats, params, q_side, k_side, labels=None, *, block_size, axis_name, precision):
    """``stats`` of the logits of ``q_side`` against ``k_side``: dense, tiled, or a ring (``axis_name``).

    The block policy: ``block_size=None`` is dense while the ``B x B`` logits (keys of every
    device with ``axis_name``) have at most ``CONTRASTIVE.dense_max`` entries, else tiled.
    """
    n, m = q_side["x"].shape[0], k_side["x"].shape[0]
    if axis_name is not None:
        m *= jax.lax.axis_size(axis_name)
    blocks = _block_policy.resolve_blocks(_block_policy.CONTRASTIVE, n, m, block_size, block_size)
    rb, cb = (None, None) if blocks is None else blocks
    tiling = _tile_engine.Tiling(_Similarity(precision), stats, rb, cb, axis_name=axis_name)
    data = None if labels is None else {"label": labels}
    return _tile_engine.statistics(tiling, params, q_side, k_side, data, data)


# --------------------------------------------------------------------------- losses with labels


def _labelled_setup(embeddings, labels, fn, temperature):
    """The normalized side of the embeddings, their labels and the logit scale ``1 / T``."""
    x, labels, out_dtype = prepare_batch(embeddings, labels, fn)
    _checks.check_temperature(temperature, fn)
    return _side(x, True), labels, {"scale": _as_parameter(1 / jnp.asarray(temperature), x.dtype)}, out_dtype


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
      embeddings: ``(B, d)`` embeddings, normalized inside, scale-free: the same loss for embeddings
        scaled by ``1e-30`` to ``1e30`` (float32) or ``1e-300`` to ``1e300`` (float64); a zero row
        normalizes to 0 with gradient 0 (``torch.nn.functional.normalize``'s value; its eps ``1e-12`` is
        the pytorch-metric-learning / open_clip convention). optax clips norms below ``sqrt(finfo.eps)``
        (``3.45e-4`` in float32), so its values differ below that norm.
      labels: ``(B,)`` integer labels; equal labels are positive pairs.
      temperature: positive temperature ``T`` (may be traced: learnable).
      axis_name: inside ``shard_map``/``pmap``, the mapped axis: the loss is
        that of the batch concatenated over the devices (every device's
        embeddings are candidates) and is the same on every device.
      block_size: ``None``: the dense ``(B, B)`` similarity matrix while it
        has at most ``2^24`` entries, else tiles (the library's block
        policy); an int: the tiled path (two sweeps: the negatives' logsumexp, then the
        positive pairs; temporaries ``O(B d)`` and two ``block_size^2`` float32
        tiles), with ``axis_name`` a ring of ``ppermute``.
      precision: precision of the similarity matrix product.

    Returns:
      A scalar.

    Forward mode on the tiled path (a custom VJP): ``jax.jvp`` / ``jax.jacfwd`` around this
    function differentiate its tiled forward sweep instead; around a function already
    traced (``jax.jvp(jax.jit(f))``) JAX refuses the custom VJP: put ``jit`` outside, or
    use the dense path (``block_size=None`` under the budget).

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

    optax: ntxent; pytorch-metric-learning: NTXentLoss(temperature=T) (its default distance,
    CosineSimilarity(), normalizes the embeddings)
    """
    fn = "ntxent"
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)
    u, labels, params, out_dtype = _labelled_setup(embeddings, labels, fn, temperature)
    sweep = functools.partial(_logit_stats, block_size=block_size, axis_name=axis_name, precision=precision)
    (lse_neg,) = sweep(_NTXENT_NEGATIVE_STATS, params, u, u, labels)
    total, count = sweep(_NTXENT_POSITIVE_STATS, params, {**u, "gap": lse_neg}, u, labels)
    return _tiles.global_mean(jnp.sum(total), jnp.sum(count), axis_name).astype(out_dtype)


def _supcon_mean(lse_all, positive_sum, positive_count, axis_name):
    """Mean over the anchors with a positive of ``lse over A(i) - mean over P(i)``."""
    has_pos = positive_count > 0
    mean_pos = _numerics.safe_divide(positive_sum, positive_count)
    per_anchor = jnp.where(has_pos, lse_all - mean_pos, 0)
    return _tiles.global_mean(jnp.sum(per_anchor), jnp.sum(has_pos).astype(per_anchor.dtype), axis_name)


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
      embeddings: ``(B, d)`` embeddings, normalized inside, scale-free: the same loss for embeddings
        scaled by ``1e-30`` to ``1e30`` (float32) or ``1e-300`` to ``1e300`` (float64); a zero row
        normalizes to 0 with gradient 0 (``torch.nn.functional.normalize``'s value; its eps ``1e-12`` is
        the pytorch-metric-learning / open_clip convention).
      labels: ``(B,)`` integer class labels.
      temperature: positive temperature ``T`` (may be traced: learnable).
      axis_name: as in ``ntxent``: the loss of the batch concatenated over
        the devices.
      block_size: ``None``: the dense ``(B, B)`` similarity matrix while it
        has at most ``2^24`` entries, else tiles (the library's block
        policy); an int: the tiled path (per anchor: the online logsumexp over ``A(i)``,
        the sum and the count of the positives, labels travelling with their
        tile; temporaries ``O(B d)`` and two ``block_size^2`` float32 tiles),
        with ``axis_name`` a ring of ``ppermute``.
      precision: precision of the similarity matrix product.

    Returns:
      A scalar.

    Forward mode on the tiled path (a custom VJP): ``jax.jvp`` / ``jax.jacfwd`` around this
    function differentiate its tiled forward sweep instead; around a function already
    traced (``jax.jvp(jax.jit(f))``) JAX refuses the custom VJP: put ``jit`` outside, or
    use the dense path (``block_size=None`` under the budget).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
      >>> supervised_contrastive_loss(x, jnp.array([0, 0, 1, 1]), temperature=0.5)
      Array(0.2964..., dtype=float32)
      >>> supervised_contrastive_loss(x, jnp.array([0, 0, 1, 1]), temperature=0.5, block_size=3)
      Array(0.2964..., dtype=float32)

    References:
      P. Khosla et al., Supervised Contrastive Learning, NeurIPS 2020.

    pytorch-metric-learning: SupConLoss(temperature=T) (its default distance, CosineSimilarity(),
    normalizes the embeddings; it returns 0 for a batch with no negative pair)
    """
    fn = "supervised_contrastive_loss"
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)
    u, labels, params, out_dtype = _labelled_setup(embeddings, labels, fn, temperature)
    options = dict(block_size=block_size, axis_name=axis_name, precision=precision)
    lse_all, pos_sum, n_pos = _logit_stats(_SUPCON_STATS, params, u, u, labels, **options)
    return _supcon_mean(lse_all, pos_sum, n_pos, axis_name).astype(out_dtype)


# --------------------------------------------------------------------------- query/key pairs


def _softmax_on_diagonal(q, k, temperature, normalize, stats, block_size, axis_name, precision):
    """Mean over the queries of the mean over ``stats`` of ``lse - s_ii`` (InfoNCE; CLIP both ways)."""
    scale = _as_parameter(1 / jnp.asarray(temperature), q.dtype)
    q_side, k_side = _side(q, normalize), _side(k, normalize)
    options = dict(block_size=block_size, axis_name=axis_name, precision=precision)
    lses = _logit_stats(stats, {"scale": scale}, q_side, k_side, **options)
    own = scale * _matching_products(q_side, k_side)
    per_query = sum(lse - own for lse in lses) / len(lses)
    return _tiles.global_mean(jnp.sum(per_query), jnp.asarray(q.shape[0], q.dtype), axis_name)


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
      normalize: L2-normalize queries and keys first, scale-free: the same loss for embeddings scaled by
        ``1e-30`` to ``1e30`` (float32) or ``1e-300`` to ``1e300`` (float64); a zero row normalizes to 0
        with gradient 0 (``torch.nn.functional.normalize``'s value; its eps ``1e-12`` is the
        pytorch-metric-learning / open_clip convention).
      axis_name: inside ``shard_map``/``pmap``, every device's keys are
        negatives of every query, and the result is the mean over all queries
        of all devices.
      block_size: ``None``: the dense ``(B, B)`` logits while they have at
        most ``2^24`` entries, else tiles (the library's block policy); an
        int: the tiled path (``block_size x block_size`` tiles, online logsumexp,
        temporaries ``O(B d)`` and one float32 tile), with ``axis_name`` a ring of
        ``ppermute`` instead of an all-gather.
      precision: precision of the similarity matrix product.

    Returns:
      A scalar.

    Forward mode on the tiled path (a custom VJP): ``jax.jvp`` / ``jax.jacfwd`` around this
    function differentiate its tiled forward sweep instead; around a function already
    traced (``jax.jvp(jax.jit(f))``) JAX refuses the custom VJP: put ``jit`` outside, or
    use the dense path (``block_size=None`` under the budget).

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
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)
    q, k, out_dtype = _pair_inputs(queries, keys, ("queries", "keys"), fn)
    loss = _softmax_on_diagonal(
        q, k, temperature, normalize, _INFO_NCE_STATS, block_size, axis_name, precision
    )
    return loss.astype(out_dtype)


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
      normalize: L2-normalize both sides first, scale-free: the same loss for embeddings scaled by
        ``1e-30`` to ``1e30`` (float32) or ``1e-300`` to ``1e300`` (float64); a zero row normalizes to 0
        with gradient 0 (``torch.nn.functional.normalize``'s value; its eps ``1e-12`` is the
        pytorch-metric-learning / open_clip convention).
      axis_name: inside ``shard_map``/``pmap``, the loss of the batch
        concatenated over the devices, the same on every device.
      block_size: ``None``: the dense ``(B, B)`` logits while they have at
        most ``2^24`` entries, else tiles (the library's block policy); an
        int: the tiled path (one sweep keeps each row's and each column's online
        logsumexp; temporaries ``O(B d)`` and one float32 tile), with ``axis_name`` a
        ring of ``ppermute``: the text blocks travel, and their column
        statistics and gradients come home after a full turn.
      precision: precision of the similarity matrix product.

    Returns:
      A scalar.

    Forward mode on the tiled path (a custom VJP): ``jax.jvp`` / ``jax.jacfwd`` around this
    function differentiate its tiled forward sweep instead; around a function already
    traced (``jax.jvp(jax.jit(f))``) JAX refuses the custom VJP: put ``jit`` outside, or
    use the dense path (``block_size=None`` under the budget).

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
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)
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
      normalize: L2-normalize queries and keys first, scale-free: the same loss for embeddings scaled by
        ``1e-30`` to ``1e30`` (float32) or ``1e-300`` to ``1e300`` (float64); a zero row normalizes to 0
        with gradient 0 (``torch.nn.functional.normalize``'s value; its eps ``1e-12`` is the
        pytorch-metric-learning / open_clip convention).
      axis_name: inside ``shard_map``/``pmap``, the loss of the batch
        concatenated over the devices (the mean over all queries of all
        devices), the same on every device.
      block_size: ``None``: the dense ``(B, B)`` logits while they have at
        most ``2^24`` entries, else tiles (the library's block policy); an
        int: the tiled path (temporaries ``O(B d)`` and one float32 tile), with ``axis_name`` a
        ring of ``ppermute`` (as big_vision's chunked and open_clip's
        neighbour-exchange SigLIP).
      precision: precision of the similarity matrix product.

    Returns:
      A scalar.

    Forward mode on the tiled path (a custom VJP): ``jax.jvp`` / ``jax.jacfwd`` around this
    function differentiate its tiled forward sweep instead; around a function already
    traced (``jax.jvp(jax.jit(f))``) JAX refuses the custom VJP: put ``jit`` outside, or
    use the dense path (``block_size=None`` under the budget).

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
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)
    q, k, out_dtype = _pair_inputs(queries, keys, ("queries", "keys"), fn)
    params = {"scale": _as_parameter(logit_scale, q.dtype), "bias": _as_parameter(logit_bias, q.dtype)}
    options = dict(block_size=block_size, axis_name=axis_name, precision=precision)
    sides = _side(q, normalize), _side(k, normalize)
    (log_likelihood,) = _logit_stats(_SIGLIP_STATS, params, *sides, **options)
    count = jnp.asarray(q.shape[0], q.dtype)
    return _tiles.global_mean(-jnp.sum(log_likelihood), count, axis_name).astype(out_dtype)


def npair_loss(
    anchors: ArrayLike,
    positives: ArrayLike,
    *,
    axis_name=None,
    block_size: int | None = None,
    precision=_HIGHEST,
) -> jax.Array:
    r"""N-pair loss (Sohn 2016): each anchor's own positive against the other anchors' positives.

    $$
    L = \frac{1}{B} \sum_i -\log \frac{e^{a_i \cdot p_i}}{\sum_j e^{a_i \cdot p_j}}
    $$

    the **mean over the anchors** of the softmax cross-entropy of
    ``anchors @ positives.T`` with the diagonal as target (raw dot products,
    no temperature; the paper's L2 penalty on the embeddings is left to the
    caller): ``info_nce(anchors, positives, temperature=1, normalize=False)``.

    Args:
      anchors: ``(B, d)`` anchors, one per class.
      positives: ``(B, d)`` positives; ``positives[i]`` has the class of ``anchors[i]``.
      axis_name: inside ``shard_map``/``pmap``, the mapped axis the batch is
        split over: every device's positives are candidates of every anchor,
        and the result is the mean over all anchors of all devices, the same
        on every device.
      block_size: ``None``: the dense ``(B, B)`` products while they have at
        most ``2^24`` entries, else tiles (the library's block policy); an
        int: the tiled path (temporaries ``O(B d)`` and one float32 tile),
        with ``axis_name`` a ring of ``ppermute``.
      precision: precision of the matrix product.

    Returns:
      A scalar.

    Forward mode on the tiled path (a custom VJP): ``jax.jvp`` / ``jax.jacfwd`` around this
    function differentiate its tiled forward sweep instead; around a function already
    traced (``jax.jvp(jax.jit(f))``) JAX refuses the custom VJP: put ``jit`` outside, or
    use the dense path (``block_size=None`` under the budget).

    Examples:
      >>> import jax.numpy as jnp
      >>> a = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> npair_loss(a, a)
      Array(0.3132..., dtype=float32)

    References:
      K. Sohn, Improved Deep Metric Learning with Multi-class N-pair Loss
      Objective, NeurIPS 2016.

    pytorch-metric-learning: NPairsLoss(distance=DotProductSimilarity(normalize_embeddings=False));
    its default DotProductSimilarity() normalizes the embeddings: npair_loss of L2-normalized rows
    """
    fn = "npair_loss"
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)
    a, p, out_dtype = _pair_inputs(anchors, positives, ("anchors", "positives"), fn)
    loss = _softmax_on_diagonal(a, p, 1.0, False, _INFO_NCE_STATS, block_size, axis_name, precision)
    return loss.astype(out_dtype)


# --------------------------------------------------------------------------- pair and neighbourhood losses


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

    TensorFlow Addons: tfa.losses.contrastive_loss; pytorch-metric-learning: ContrastiveLoss(pos_margin=0,
    distance=LpDistance(normalize_embeddings=False, power=2), reducer=MeanReducer()) on similar pairs
    only (its dissimilar term is relu(m - d^2), not relu(m - d)^2)
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
    _checks.check_number(margin, "margin", fn, low=0.0)
    a, b, out_dtype = _numerics.as_float(embeddings_a, embeddings_b)
    y = jnp.asarray(labels).astype(a.dtype)
    diff = a - b
    sq = jnp.sum(diff * diff, axis=ax)
    d = _numerics.p_norm(diff, 2.0, axis=ax)  # scaled: finite where sq overflows
    similar = jnp.where(y != 0, y * sq, 0)  # a dissimilar pair never computes 0 * inf
    return (similar + (1 - y) * jax.nn.relu(margin - d) ** 2).astype(out_dtype)


def lifted_structured_loss(
    embeddings: ArrayLike, labels: ArrayLike, *, margin: float = 1.0, axis_name=None, precision=_HIGHEST
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
      axis_name: inside ``shard_map``/``pmap``, the mapped axis the batch is
        split over: this device's rows are the anchors, the candidates are the
        whole batch all-gathered over the axis (each anchor's own pair
        excluded by its global index; each anchor's logsumexp over its
        negatives all-gathered for the pairs' other members), and the result
        is the mean over the global batch's positive pairs, the same on every
        device.
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

    pytorch-metric-learning: LiftedStructureLoss(neg_margin=margin, pos_margin=0,
    distance=LpDistance(normalize_embeddings=False))
    """
    fn = "lifted_structured_loss"
    ms = prepare_mining(embeddings, labels, None, None, axis_name, fn)
    _checks.check_number(margin, "margin", fn, low=0.0)
    dist = ms.distances("euclidean", precision)
    same_label, pos = ms.masks()
    lse, has = _numerics.masked_logsumexp(margin - dist, ~same_label)
    # the pairs' other members are candidates: their logsumexp over their own negatives
    lse_c, has_c = lse, has
    if axis_name is not None:
        lse_c = jax.lax.all_gather(lse, axis_name, axis=0, tiled=True)
        has_c = jax.lax.all_gather(has, axis_name, axis=0, tiled=True)
    # log(exp(lse_i) + exp(lse_j)) over the members that have negatives
    hi, hj = has[:, None], has_c[None, :]
    li, lj = lse[:, None], lse_c[None, :]
    top = jax.lax.stop_gradient(jnp.where(hi & hj, jnp.maximum(li, lj), jnp.where(hi, li, lj)))
    total = jnp.where(hi, jnp.exp(jnp.where(hi, li - top, 0)), 0) + jnp.where(
        hj, jnp.exp(jnp.where(hj, lj - top, 0)), 0
    )
    valid = pos & (hi | hj)
    j = top + jnp.log(jnp.where(valid, total, 1)) + dist
    per_pair = jnp.where(valid, jax.nn.relu(j) ** 2, 0) / 2
    dtype = per_pair.dtype
    return _tiles.global_mean(jnp.sum(per_pair), jnp.sum(pos).astype(dtype), axis_name).astype(ms.out_dtype)


def soft_nearest_neighbor_loss(
    embeddings: ArrayLike,
    labels: ArrayLike,
    *,
    temperature: float = 1.0,
    axis_name=None,
    precision=_HIGHEST,
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
      axis_name: inside ``shard_map``/``pmap``, the mapped axis the batch is
        split over: this device's rows are the anchors, the candidates are the
        whole batch all-gathered over the axis (each anchor's own pair
        excluded by its global index), and the result is the mean over the
        global batch's anchors with a positive, the same on every device.
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
    ms = prepare_mining(embeddings, labels, None, None, axis_name, fn)
    _checks.check_temperature(temperature, fn)
    logits = -ms.distances("sqeuclidean", precision) / temperature
    same_label, pos = ms.masks()
    lse_pos, has_pos = _numerics.masked_logsumexp(logits, pos)
    lse_all, _ = _numerics.masked_logsumexp(logits, pos | ~same_label)  # every candidate but itself
    per_anchor = jnp.where(has_pos, lse_all - lse_pos, 0)
    count = jnp.sum(has_pos).astype(per_anchor.dtype)
    return _tiles.global_mean(jnp.sum(per_anchor), count, axis_name).astype(ms.out_dtype)
