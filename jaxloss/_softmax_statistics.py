"""Per-token statistics of a linear head's softmax (logsumexp, label log-probability, entropy).

A declaration over the linear-head engine (``_linear_head``): the statistics
are the engine's ``LOGSUMEXP``, ``ENTROPY`` and ``LABEL_LOGIT``; the label's
log-probability is their difference. Statistics whose result is unused get
no backward work (symbolic zero cotangents), so the label log-probability
alone costs what the fused cross-entropy costs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _linear_head

__all__ = ["LinearSoftmaxStatistics", "linear_softmax_statistics"]


class LinearSoftmaxStatistics(NamedTuple):
    """Per-token statistics of ``softmax(z / T)``, ``z`` the logits of a linear head.

    Attributes:
      logsumexp: ``(...)`` ``logsumexp_c(z_c / T)``.
      label_log_prob: ``(...)`` ``log p_y = z_y / T - logsumexp`` of the
        labels, or None when no labels were given.
      entropy: ``(...)`` ``-sum_c p_c log p_c``.

    Examples:
      >>> import jax.numpy as jnp
      >>> stats = LinearSoftmaxStatistics(jnp.zeros(2), None, jnp.ones(2))
      >>> stats.entropy
      Array([1., 1.], dtype=float32)
    """

    logsumexp: jax.Array
    label_log_prob: jax.Array | None
    entropy: jax.Array


def linear_softmax_statistics(
    inputs: jax.typing.ArrayLike,
    kernel: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike | None = None,
    *,
    bias: jax.typing.ArrayLike | None = None,
    temperature: float = 1.0,
    logit_softcap: float | None = None,
    ignore_index: int | None = None,
    where: jax.typing.ArrayLike | None = None,
    block_size: int | None = None,
    vocab_block_size: int | None = None,
    precision=jax.lax.Precision.HIGHEST,
    axis_name=None,
) -> LinearSoftmaxStatistics:
    r"""Per-token logsumexp, label log-probability and entropy of a linear head, without the logits.

    With ``z = softcap(inputs @ kernel + bias)`` (``softcap(a) = c tanh(a / c)``,
    the identity when ``logit_softcap`` is None), ``a = z / T`` and
    ``p = softmax(a)``:

    .. math::

        \mathrm{lse} = \log \sum_c e^{a_c}, \qquad
        \log p_y = a_y - \mathrm{lse}, \qquad
        H = -\sum_c p_c \log p_c = \mathrm{lse} - \sum_c p_c a_c

    The statistics of reinforcement-learning and preference objectives
    (token log-probabilities, an entropy bonus), of the z-loss (``lse^2``)
    and of calibration, for a vocabulary too large for the ``N x V`` logits.
    Every field is differentiable, in any combination of their cotangents;
    a field whose result is unused costs no backward work, so the label
    log-probability's value and gradient cost what
    ``linear_softmax_cross_entropy`` costs. At ``T = 1`` the logsumexp is the
    one inside ``linear_softmax_cross_entropy``, whose loss is
    ``-label_log_prob``.

    The entropy is accumulated in one pass as ``log s - t / s`` with
    ``s = sum_c exp(a_c - m)`` and ``t = sum_c exp(a_c - m) (a_c - m)``
    (``m`` the running maximum), so large logits lose no precision.
    Block sizes, memory (two ``block_size x vocab_block_size`` float32 tiles
    and a float32 ``(N, D)`` input-gradient accumulator), half precision and
    ``axis_name`` as in ``linear_softmax_cross_entropy`` (``labels`` hold
    global class ids).

    Args:
      inputs: ``(..., D)`` floating activations.
      kernel: ``(D, V)`` weights (Flax layout).
      labels: optional ``(...)`` integer class ids in ``[0, V)``.
      bias: optional ``(V,)`` bias.
      temperature: ``T > 0`` (a Python number).
      logit_softcap: ``c > 0`` or None.
      ignore_index: a label value whose tokens are masked (None: none).
      where: optional ``(...)`` bool; ``False`` tokens are masked.
      block_size: tokens per block (None: the block policy).
      vocab_block_size: classes per block (None: the block policy).
      precision: ``jax.lax.Precision`` of the GEMMs (``HIGHEST`` by default).
      axis_name: the ``shard_map`` axis that splits the vocabulary, or None.

    Returns:
      :class:`LinearSoftmaxStatistics` ``(logsumexp, label_log_prob, entropy)``,
      each ``(...)`` in the input dtype; ``label_log_prob`` is None without
      ``labels``.

    Edge cases: a masked token (``where`` False or ``labels ==
    ignore_index``) gives 0 in every field and no gradient, whatever its
    inputs hold. A label outside ``[0, V)`` that is neither ignored nor
    masked raises a ``ValueError`` naming ``labels`` when the labels are
    concrete and gives a NaN ``label_log_prob`` when they are traced. A NaN
    in ``kernel`` gives NaN. Forward-mode differentiation as in
    ``linear_softmax_cross_entropy``.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> kernel = jnp.array([[1.0, -1.0, 0.0], [0.0, 2.0, 1.0]])
      >>> stats = linear_softmax_statistics(x, kernel, jnp.array([0, 1]))
      >>> [round(float(v), 4) for v in stats.logsumexp]
      [1.4076, 2.4076]
      >>> [round(float(v), 4) for v in stats.label_log_prob]
      [-0.4076, -0.4076]
      >>> [round(float(v), 4) for v in stats.entropy]
      [0.8324, 0.8324]

    References:
      Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
      2024; Williams, "Simple statistical gradient-following algorithms"
      (REINFORCE), 1992.

    Dense reference: ``jax.nn.logsumexp`` / ``jax.nn.log_softmax`` of the float64 logits
    """
    fn = "linear_softmax_statistics"
    x, k = _linear_head.check_head(fn, inputs, kernel)
    v = k.shape[1]
    batch_shape = x.shape[:-1]
    y = None if labels is None else _linear_head.check_labels(fn, labels, batch_shape)
    b = _linear_head.check_bias(fn, bias, "bias", v)
    mask = _linear_head.check_where(fn, where, batch_shape)
    ignore_index = _linear_head.check_ignore_index(fn, ignore_index)
    n = math.prod(batch_shape)
    config = _linear_head.make_config(
        fn,
        n,
        v,
        block_size=block_size,
        vocab_block_size=vocab_block_size,
        softcap=logit_softcap,
        temperature=temperature,
        precision=precision,
        axis_name=axis_name,
    )
    if y is not None and axis_name is None:
        _linear_head.check_label_range(fn, y, v, ignore_index=ignore_index, where=mask)

    out_dtype = jnp.promote_types(x.dtype, k.dtype)
    if n == 0:
        empty = jnp.zeros(batch_shape, out_dtype)
        return LinearSoftmaxStatistics(empty, None if y is None else empty, empty)
    x2 = x.reshape(n, x.shape[-1]).astype(out_dtype)
    k = k.astype(out_dtype)
    y2 = None if y is None else y.reshape(n)
    rows = _linear_head.row_mask(None if mask is None else mask.reshape(n), y2, ignore_index)
    stats = (_linear_head.LOGSUMEXP, _linear_head.ENTROPY)
    if y2 is not None:
        stats += (_linear_head.LABEL_LOGIT,)
    values = _linear_head.statistics(stats, x2, k, b, config=config, labels=y2, where=rows)
    lse, entropy = values[0], values[1]
    label_log_prob = None
    if y2 is not None:
        in_range = (y2 >= 0) & (y2 < _linear_head.num_classes(v, axis_name))
        label_log_prob = jnp.where(in_range, values[2] - lse, jnp.nan)
        if rows is not None:
            label_log_prob = jnp.where(rows, label_log_prob, 0)
        label_log_prob = label_log_prob.reshape(batch_shape).astype(out_dtype)
    return LinearSoftmaxStatistics(
        lse.reshape(batch_shape).astype(out_dtype),
        label_log_prob,
        entropy.reshape(batch_shape).astype(out_dtype),
    )
