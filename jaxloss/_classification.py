"""The cross-entropy family: sigmoid / softmax cross-entropy, integer labels, smoothing, focal loss.

Functions with optax's names keep optax's signatures and values on ordinary
inputs; every option jaxloss adds is keyword-only. Values and gradients are
finite where the mathematics has a finite limit: ``-inf`` logits with a zero
label (optax's ``softmax_cross_entropy``: NaN), saturated logits of ``+-1e4``,
zero and one probabilities in ``binary_cross_entropy``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _checks, _numerics

__all__ = [
    "binary_cross_entropy",
    "safe_softmax_cross_entropy",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "smooth_labels",
    "softmax_cross_entropy",
    "softmax_cross_entropy_with_integer_labels",
]


def _logits(logits, fn, name="logits"):
    _checks.check_floating(logits, name, fn)
    x = jnp.asarray(logits)
    out_dtype = x.dtype
    if _numerics.is_low_precision(x.dtype):
        x = x.astype(jnp.float32)
    return x, out_dtype


# --------------------------------------------------------------------------- sigmoid


def sigmoid_binary_cross_entropy(
    logits: ArrayLike, labels: ArrayLike, *, pos_weight: ArrayLike | None = None
) -> jax.Array:
    """Elementwise ``-pw y log sigmoid(x) - (1 - y) log sigmoid(-x)`` (optax's signature).

    Computed with ``log_sigmoid`` so values and gradients (``sigmoid(x) - y``
    without ``pos_weight``) are exact at saturated logits such as ``+-1e4``.

    Args:
      logits: floating array of logits ``x``.
      labels: labels ``y`` in ``[0, 1]`` (binary or soft), broadcastable to ``logits``.
      pos_weight: optional weight ``pw`` of the positive term (PyTorch's
        ``pos_weight``), broadcastable to ``logits``; default 1.

    Returns:
      The losses, of the broadcast shape (not reduced).

    Examples:
      >>> import jax.numpy as jnp
      >>> sigmoid_binary_cross_entropy(jnp.array([0.0, 1e4, -1e4]), jnp.array([1.0, 1.0, 1.0]))
      Array([6.931472e-01, 0.000000e+00, 1.000000e+04], dtype=float32)

    optax: sigmoid_binary_cross_entropy;
    PyTorch: torch.nn.functional.binary_cross_entropy_with_logits
    """
    fn = "sigmoid_binary_cross_entropy"
    x, out_dtype = _logits(logits, fn)
    _checks.broadcast_shapes(x, labels, ("logits", "labels"), fn)
    y = jnp.asarray(labels).astype(x.dtype)
    positive = y * jax.nn.log_sigmoid(x)
    if pos_weight is not None:
        _checks.broadcast_shapes(x, pos_weight, ("logits", "pos_weight"), fn)
        positive = jnp.asarray(pos_weight, x.dtype) * positive
    out = -positive - (1.0 - y) * jax.nn.log_sigmoid(-x)
    return out.astype(out_dtype)


def sigmoid_focal_loss(
    logits: ArrayLike, labels: ArrayLike, *, alpha: float | None = None, gamma: float = 2.0
) -> jax.Array:
    """Focal loss ``-alpha_t (1 - p_t)^gamma log p_t`` (Lin et al. 2017), optax's signature.

    ``p_t = sigmoid(x)`` where ``y = 1`` and ``1 - sigmoid(x)`` where ``y = 0``
    (soft labels interpolate); ``alpha_t = alpha y + (1 - alpha)(1 - y)``. The
    modulating factor is computed in log space, so saturated logits stay finite.

    Args:
      logits: floating array of logits.
      labels: labels in ``[0, 1]``, broadcastable to ``logits``.
      alpha: optional balance weight in ``[0, 1]`` (None: no weighting).
      gamma: the focusing exponent, ``>= 0``.

    Returns:
      The losses, of the broadcast shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> sigmoid_focal_loss(jnp.array([0.0, 2.0]), jnp.array([1.0, 0.0]), alpha=0.25)
      Array([0.0433217, 1.2375587], dtype=float32)

    optax: sigmoid_focal_loss; torchvision: sigmoid_focal_loss
    """
    fn = "sigmoid_focal_loss"
    _checks.check_number(gamma, "gamma", fn, low=0)
    if alpha is not None:
        _checks.check_number(alpha, "alpha", fn, low=0, high=1)
    x, out_dtype = _logits(logits, fn)
    _checks.broadcast_shapes(x, labels, ("logits", "labels"), fn)
    y = jnp.asarray(labels).astype(x.dtype)
    ce = sigmoid_binary_cross_entropy(x, y)
    log_p, log_not_p = jax.nn.log_sigmoid(x), jax.nn.log_sigmoid(-x)
    shape = jnp.broadcast_shapes(x.shape, y.shape)
    log_one_minus_pt = jax.nn.logsumexp(
        jnp.stack([jnp.broadcast_to(log_p, shape), jnp.broadcast_to(log_not_p, shape)], -1),
        axis=-1,
        b=jnp.stack([jnp.broadcast_to(1.0 - y, shape), jnp.broadcast_to(y, shape)], -1),
    )
    loss = ce * jnp.exp(gamma * log_one_minus_pt)
    if alpha is not None:
        loss = (alpha * y + (1.0 - alpha) * (1.0 - y)) * loss
    return loss.astype(out_dtype)


# ----------------------------------------------------------------------- binary CE on probabilities

_TORCH_EPSILON = 1e-12  # PyTorch's EPSILON in binary_cross_entropy_backward


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _clamped_bce(x, t, clamp):
    log_x = jnp.maximum(jnp.log(x), clamp)
    log_not_x = jnp.maximum(jnp.log1p(-x), clamp)
    return -(t * log_x + (1 - t) * log_not_x)


@_clamped_bce.defjvp
def _clamped_bce_jvp(clamp, primals, tangents):
    x, t = primals
    tx, tt = tangents
    out = _clamped_bce(x, t, clamp)
    dx = (x - t) / jnp.maximum((1 - x) * x, _TORCH_EPSILON)
    dt = jnp.maximum(jnp.log1p(-x), clamp) - jnp.maximum(jnp.log(x), clamp)
    return out, dx * tx + dt * tt


def binary_cross_entropy(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    log_clamp: float | None = None,
    axis: int | tuple[int, ...] | None = (),
    where: ArrayLike | None = None,
) -> jax.Array:
    """Binary cross-entropy ``-[y log p + (1 - y) log(1 - p)]`` of probabilities.

    Elementwise by default (``axis=()``); ``axis`` sums over axes (``None``:
    all). The batch loss ``J = -1/N sum_i [y_i log p_i + (1 - y_i) log(1 - p_i)]`` is
    ``binary_cross_entropy(p, y).mean()``.

    * ``log_clamp=None`` (default): exact, with ``0 log 0 = 0``, so ``p = y``
      in ``{0, 1}`` gives 0 with finite gradients; ``p = 1 - y`` gives ``inf``.
    * ``log_clamp=-100.0``: PyTorch's ``binary_cross_entropy``: both logs are
      clamped at ``-100`` (so the loss is at most 100) and the gradient is
      PyTorch's ``(p - y) / max(p (1 - p), 1e-12)``, finite everywhere (with
      respect to ``y``: the clamped ``log(1 - p) - log p``, where PyTorch gives ``inf``).

    Args:
      predictions: probabilities ``p`` in ``[0, 1]`` (outside: NaN).
      targets: targets ``y`` in ``[0, 1]``, broadcastable to ``predictions``.
      log_clamp: None or the lower bound of the logs (keyword-only).
      axis: axes summed over (default none).
      where: optional boolean mask.

    Returns:
      The losses, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> y, p = jnp.array([1.0, 0.0, 1.0]), jnp.array([0.9, 0.2, 0.6])
      >>> binary_cross_entropy(p, y).mean()  # J
      Array(0.2797765, dtype=float32)
      >>> binary_cross_entropy(jnp.array([0.0]), jnp.array([1.0]), log_clamp=-100.0)
      Array([100.], dtype=float32)

    PyTorch: torch.nn.functional.binary_cross_entropy(reduction="none")
    """
    fn = "binary_cross_entropy"
    _checks.broadcast_shapes(predictions, targets, ("predictions", "targets"), fn)
    x, t, out_dtype = _numerics.as_float(predictions, targets)
    if log_clamp is None:
        pos = jnp.where((t == 0) & (x == 0), 1, x)
        neg = jnp.where((t == 1) & (x == 1), 0, x)
        terms = -(_numerics.x_times_log(t, jnp.log(pos)) + _numerics.x_times_log(1 - t, jnp.log1p(-neg)))
    else:
        _checks.check_number(log_clamp, "log_clamp", fn, high=0)
        shape = jnp.broadcast_shapes(x.shape, t.shape)
        terms = _clamped_bce(jnp.broadcast_to(x, shape), jnp.broadcast_to(t, shape), float(log_clamp))
    axes = None if axis is None else _checks.check_axis(axis, terms.ndim, "axis", fn)
    if where is not None:
        _checks.broadcast_shapes(terms, where, ("predictions", "where"), fn)
    return jnp.sum(terms, axis=axes, where=where).astype(out_dtype)


# --------------------------------------------------------------------------- softmax


def _expand_where(where, logits, axis):
    if where is None:
        return None
    where = jnp.asarray(where, bool)
    if where.ndim != logits.ndim:
        where = jnp.expand_dims(where, axis)
    return where


def softmax_cross_entropy(
    logits: ArrayLike,
    labels: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Softmax cross-entropy ``-sum_j y_j log softmax(x)_j`` (optax's signature).

    A label of 0 contributes 0 even where the logit is ``-inf`` (optax: NaN),
    with gradient 0 there; otherwise values and gradients equal optax's.

    Args:
      logits: ``(..., n)`` floating logits.
      labels: ``(..., n)`` target distributions (one-hot or soft), broadcastable.
      axis: the class axis or axes.
      where: optional mask of classes to include, shaped like ``logits`` or like
        the batch (expanded at ``axis``).

    Returns:
      The cross-entropies, shaped like ``logits`` without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
      >>> softmax_cross_entropy(logits, jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
      Array([0.2761297, 2.951799 ], dtype=float32)

    optax: softmax_cross_entropy; PyTorch: torch.nn.functional.cross_entropy (probability targets)
    """
    fn = "softmax_cross_entropy"
    x, out_dtype = _logits(logits, fn)
    _checks.broadcast_shapes(x, labels, ("logits", "labels"), fn)
    y = jnp.asarray(labels).astype(x.dtype)
    axes = None if axis is None else _checks.check_axis(axis, x.ndim, "axis", fn)
    where = _expand_where(where, x, axes)
    softmax_where = where
    if where is not None:
        # a row with every class masked: its loss is an empty sum (0); the softmax is taken
        # over all of its classes so that it stays finite (log_softmax over nothing gives NaN
        # gradients, which 0 * NaN would carry into the logits)
        softmax_where = where | ~jnp.any(where, axis=axes, keepdims=True)
    log_probs = jax.nn.log_softmax(x, axis=axes, where=softmax_where)
    out = -jnp.sum(_numerics.x_times_log(y, log_probs), axis=axes, where=where)
    return out.astype(out_dtype)


def safe_softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike) -> jax.Array:
    """optax's ``safe_softmax_cross_entropy``: ``softmax_cross_entropy`` over the last axis.

    (jaxloss's ``softmax_cross_entropy`` is already safe at ``-inf`` logits.)

    Args:
      logits: ``(..., C)`` unnormalised log-probabilities.
      labels: ``(..., C)`` target probabilities.

    Returns:
      ``(...,)`` per-example losses.

    Examples:
      >>> import jax.numpy as jnp
      >>> safe_softmax_cross_entropy(jnp.array([0.0, -jnp.inf]), jnp.array([1.0, 0.0]))
      Array(0., dtype=float32)

    optax: safe_softmax_cross_entropy
    """
    _checks.check_floating(logits, "logits", "safe_softmax_cross_entropy")
    return softmax_cross_entropy(logits, labels, axis=-1)


def smooth_labels(
    labels: ArrayLike,
    alpha: float,
    *,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Label smoothing ``(1 - alpha) y + alpha / n`` with ``n`` classes along ``axis`` (optax).

    With ``where``, ``n`` counts the included classes.

    Args:
      labels: ``(..., n)`` one-hot or soft labels (integers are promoted).
      alpha: the smoothing factor in ``[0, 1]``.
      axis: the class axis or axes.
      where: optional mask of classes.

    Returns:
      The smoothed labels, shaped like ``labels``.

    Examples:
      >>> import jax.numpy as jnp
      >>> smooth_labels(jnp.array([0.0, 1.0, 0.0, 0.0]), 0.2)
      Array([0.05, 0.85, 0.05, 0.05], dtype=float32)

    optax: smooth_labels
    """
    fn = "smooth_labels"
    _checks.check_number(alpha, "alpha", fn, low=0, high=1)
    y, out_dtype = _numerics.as_float(labels)
    axes = _checks.check_axis(axis, y.ndim, "axis", fn) if axis is not None else None
    if where is None:
        count = 1
        for a in axes if axes is not None else range(y.ndim):
            count *= y.shape[a]
    else:
        count = jnp.sum(jnp.asarray(where, bool), axis=axes, keepdims=True)
        # every class masked: no mass to spread (alpha / 0 was inf)
        count = jnp.where(count > 0, count, jnp.inf)
    return ((1.0 - alpha) * y + alpha / count).astype(out_dtype)


# --------------------------------------------------------------------------- integer labels


def _move_class_axis(x, axis, fn, name="logits"):
    """Moves the class axis/axes of ``x`` last (flattening a tuple); returns the new array."""
    axes = _checks.check_axis(axis, x.ndim, "axis", fn)
    if not axes:
        raise ValueError(f"{fn}: `axis` must name at least one class axis; got {axis!r}.")
    batch = tuple(a for a in range(x.ndim) if a not in axes)
    x = jnp.transpose(x, batch + axes)
    # not -1: a reshape cannot infer it when a batch dim is 0
    return x.reshape(x.shape[: len(batch)] + (math.prod(x.shape[len(batch) :]),))


def integer_label_terms(
    scores,
    labels,
    *,
    from_logits,
    label_smoothing=0.0,
    weights=None,
    ignore_index=None,
    where=None,
):
    """Per-example weighted NLL (+ smoothing) and the weight each example adds to a mean.

    ``scores``: ``(..., C)`` logits (``from_logits``) or log-probabilities;
    ``labels``: ``(...)`` integers.
    Returns ``(values, denominators)`` with PyTorch's conventions: the value of
    example ``i`` is ``(1 - ls) w[y_i] nll_i + ls / C sum_c w_c (-log p_ic)``
    (0 if ignored) and its denominator ``w[y_i]`` (0 if ignored). A label outside
    ``[0, C)`` that is not ``ignore_index`` is never read as a class (no wrap-around of
    negative labels): its value is NaN, its denominator 0 and its gradient 0.
    """
    num_classes = scores.shape[-1]
    log_norm = jax.nn.logsumexp(scores, axis=-1, where=where) if from_logits else None
    valid = None if ignore_index is None else labels != ignore_index
    out_of_range = (labels < 0) | (labels >= num_classes)
    if valid is not None:
        out_of_range = out_of_range & valid
    # only in-range labels index the scores and weights (a negative one would wrap around)
    usable = ~out_of_range if valid is None else valid & ~out_of_range
    safe_labels = jnp.where(usable, labels, 0)
    picked = jnp.take_along_axis(scores, safe_labels[..., None], axis=-1)[..., 0]
    nll = -picked if log_norm is None else log_norm - picked
    if weights is None:
        label_weight = jnp.ones_like(nll)
        values = nll
    else:
        w = jnp.asarray(weights, scores.dtype)
        label_weight = w[safe_labels]
        values = label_weight * nll
    if _checks.is_traced(label_smoothing) or float(label_smoothing) != 0.0:
        neg_log_probs = -scores if log_norm is None else log_norm[..., None] - scores
        if weights is not None:
            neg_log_probs = neg_log_probs * w
        if where is None:
            smooth = jnp.sum(neg_log_probs, axis=-1)
            count = num_classes
        else:
            smooth = jnp.sum(neg_log_probs, axis=-1, where=where)
            count = jnp.sum(where, axis=-1)
        values = (1.0 - label_smoothing) * values + label_smoothing / count * smooth
    if valid is not None:
        values = jnp.where(valid, values, 0)
        label_weight = jnp.where(valid, label_weight, 0)
    if where is not None:
        values = jnp.where(jnp.any(where, axis=-1), values, 0)
    values = jnp.where(out_of_range, jnp.nan, values)
    label_weight = jnp.where(out_of_range, 0, label_weight)
    return values, label_weight


def _check_integer_label_options(label_smoothing, weights, ignore_index, num_classes, fn):
    _checks.check_number(label_smoothing, "label_smoothing", fn, low=0, high=1)
    if weights is not None and tuple(jnp.shape(weights)) != (num_classes,):
        raise ValueError(
            f"{fn}: `weights` must have shape ({num_classes},), one weight per class; "
            f"got {tuple(jnp.shape(weights))}."
        )
    if ignore_index is not None and (
        not isinstance(ignore_index, (int, np.integer)) or isinstance(ignore_index, bool)
    ):
        raise TypeError(f"{fn}: `ignore_index` must be None or an int; got {ignore_index!r}.")


def softmax_cross_entropy_with_integer_labels(
    logits: ArrayLike,
    labels: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
    *,
    label_smoothing: float = 0.0,
    weights: ArrayLike | None = None,
    ignore_index: int | None = None,
) -> jax.Array:
    """Softmax cross-entropy with integer labels ``logsumexp(x) - x_y`` (optax's signature).

    With the keyword-only options (PyTorch's ``cross_entropy(reduction="none")``):

    ``loss_i = (1 - ls) w[y_i] (lse_i - x_{i,y_i}) + ls / C sum_c w_c (lse_i - x_{ic})``

    and 0 where ``y_i == ignore_index``. ``label_smoothing = ls`` equals the
    cross-entropy with ``smooth_labels`` of the one-hot labels. For a
    weighted mean divide the sum by the summed ``weights[y_i]`` of the
    non-ignored examples (what ``jaxloss.torch.cross_entropy`` does).

    Labels out of range: a label ``< 0`` or ``>= C`` that is not
    ``ignore_index`` is never read as another class (optax's
    ``take_along_axis`` reads ``-1`` as class ``C - 1``). Concrete labels (a
    NumPy array, an array outside ``jit``) raise ``ValueError`` naming
    ``labels``; traced labels give NaN for that example, with a zero gradient
    for its logits, so a mean over the batch is NaN.
    ``jaxloss.check_inputs(labels=labels, num_classes=C, ignore_index=...)``
    reports them under ``jax.experimental.checkify``. ``C = 0`` classes is a
    ``ValueError``.

    Args:
      logits: ``(..., C)`` floating logits (``C >= 1`` along ``axis``; a tuple of axes
        is flattened and labels index the flattened slice, as in optax).
      labels: ``(...)`` integer labels in ``[0, C)`` (see above for the others).
      axis: the class axis or axes.
      where: optional mask of classes, shaped like ``logits`` or the batch.
      label_smoothing: ``ls`` in ``[0, 1]``.
      weights: optional ``(C,)`` class weights ``w``.
      ignore_index: optional label value whose examples give 0.

    Returns:
      The per-example losses, shaped like ``labels``.

    Examples:
      >>> import jax.numpy as jnp
      >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
      >>> softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, 1]))
      Array([0.2761297, 2.951799 ], dtype=float32)
      >>> softmax_cross_entropy_with_integer_labels(logits, jnp.array([0, -100]), ignore_index=-100)
      Array([0.2761297, 0.       ], dtype=float32)

    optax: softmax_cross_entropy_with_integer_labels; PyTorch: torch.nn.functional.cross_entropy
    """
    fn = "softmax_cross_entropy_with_integer_labels"
    x, out_dtype = _logits(logits, fn)
    _checks.check_integer(labels, "labels", fn)
    label_arg = labels
    labels = jnp.asarray(labels)
    if where is not None:
        where = _expand_where(where, x, axis)
        where = _move_class_axis(jnp.broadcast_to(where, x.shape), axis, fn, "where")
    x = _move_class_axis(x, axis, fn)
    if labels.shape != x.shape[:-1]:
        raise ValueError(
            f"{fn}: `labels` must have the shape of `logits` without the class axis, "
            f"{x.shape[:-1]}; got {labels.shape}."
        )
    if x.shape[-1] == 0:
        raise ValueError(
            f"{fn}: `logits` must have at least one class along `axis`; got shape {jnp.shape(logits)} "
            f"with axis={axis!r}."
        )
    _check_integer_label_options(label_smoothing, weights, ignore_index, x.shape[-1], fn)
    _checks.check_labels_in_range(label_arg, x.shape[-1], "labels", fn, ignore_index=ignore_index)
    values, _ = integer_label_terms(
        x,
        labels,
        from_logits=True,
        label_smoothing=label_smoothing,
        weights=weights,
        ignore_index=ignore_index,
        where=where,
    )
    return values.astype(out_dtype)
