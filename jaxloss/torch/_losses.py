"""PyTorch's losses: ``torch.nn.functional``'s regression, divergence,
cross-entropy and margin losses, over the core's families.

Same names, argument names, defaults and reduction semantics as PyTorch
(including the deprecated ``size_average``/``reduce`` pair); gradients are
finite where PyTorch gives NaN (documented per function).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from .. import _checks, _classification, _divergences, _metric_learning, _numerics, _pair_losses, _regression
from . import _common
from ._distances import pairwise_distance

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cosine_embedding_loss",
    "cross_entropy",
    "hinge_embedding_loss",
    "huber_loss",
    "kl_div",
    "l1_loss",
    "margin_ranking_loss",
    "mse_loss",
    "nll_loss",
    "smooth_l1_loss",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
]

# --------------------------------------------------------------------------- residual losses


def _check_broadcast(a, b, names, fn):
    # the core would name its own arguments (`predictions`, `targets`); name PyTorch's
    return _checks.broadcast_shapes(a, b, names, fn)


def _broadcast_residual(input, target, fn):
    """PyTorch's residual losses: warn when the shapes differ, then broadcast (the core raises)."""
    shape = _check_broadcast(input, target, ("input", "target"), fn)
    si, st = tuple(np.shape(input)), tuple(np.shape(target))
    if si != st:
        warnings.warn(
            f"Using a target size ({st}) that is different to the input size ({si}). This will likely "
            "lead to incorrect results due to broadcasting. Please ensure they have the same size.",
            UserWarning,
            stacklevel=3,
        )
    return jnp.broadcast_to(input, shape), jnp.broadcast_to(target, shape)


def _weighted_residual(values, input, weight, reduction, fn, weighted_mean):
    if weight is None:
        return _common.apply_reduction(values, reduction, fn)
    if tuple(np.shape(weight)) != tuple(np.shape(input)):
        raise ValueError(
            f"{fn}: `weight` must have the shape of `input`; got {tuple(np.shape(weight))} "
            f"and {tuple(np.shape(input))}."
        )
    if weighted_mean:  # sum(w * v) / sum(w), as PyTorch's mse_loss and l1_loss
        return _common.apply_reduction(values, reduction, fn, weights=weight)
    return _common.apply_reduction(values * weight, reduction, fn)


def mse_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: ArrayLike | None = None,
) -> jax.Array:
    """``torch.nn.functional.mse_loss``: ``reduce((input - target)^2)``.

    With ``weight`` (same shape as ``input``) the mean is ``sum(w v) / sum(w)``.

    Args:
      input: array, any shape.
      target: array of the same shape (a broadcastable other shape warns and
        broadcasts, as PyTorch).
      size_average: PyTorch's deprecated argument; when it or ``reduce`` is not
        None they override ``reduction`` as in PyTorch.
      reduce: PyTorch's deprecated argument (see ``size_average``).
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.
      weight: optional weights of ``input``'s shape.

    Returns:
      A scalar, or the elementwise losses (shape of the broadcast inputs) with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> mse_loss(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0]))
      Array(5., dtype=float32)

    PyTorch: torch.nn.functional.mse_loss
    """
    reduction = _common.legacy_reduction(size_average, reduce, reduction)
    x, t = _broadcast_residual(input, target, "mse_loss")
    values = _regression.squared_error(x, t)
    return _weighted_residual(values, input, weight, reduction, "mse_loss", True)


def l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    weight: ArrayLike | None = None,
) -> jax.Array:
    """``torch.nn.functional.l1_loss``: ``reduce(|input - target|)``, gradient 0 at a tie.

    With ``weight`` (same shape as ``input``) the mean is ``sum(w v) / sum(w)``.

    Args:
      input: array, any shape.
      target: array of the same shape (a broadcastable other shape warns and
        broadcasts, as PyTorch).
      size_average: PyTorch's deprecated argument; when it or ``reduce`` is not
        None they override ``reduction`` as in PyTorch.
      reduce: PyTorch's deprecated argument (see ``size_average``).
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.
      weight: optional weights of ``input``'s shape.

    Returns:
      A scalar, or the elementwise losses (shape of the broadcast inputs) with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> l1_loss(jnp.array([1.0, -3.0]), jnp.array([0.0, 0.0]))
      Array(2., dtype=float32)

    PyTorch: torch.nn.functional.l1_loss
    """
    reduction = _common.legacy_reduction(size_average, reduce, reduction)
    x, t = _broadcast_residual(input, target, "l1_loss")
    values = _regression.absolute_error(x, t)
    return _weighted_residual(values, input, weight, reduction, "l1_loss", True)


def smooth_l1_loss(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    beta: float = 1.0,
) -> jax.Array:
    """``torch.nn.functional.smooth_l1_loss`` (``beta = 0`` is the L1 loss).

    Args:
      input: array, any shape.
      target: array of the same shape (a broadcastable other shape warns and
        broadcasts, as PyTorch).
      size_average: PyTorch's deprecated argument; when it or ``reduce`` is not
        None they override ``reduction`` as in PyTorch.
      reduce: PyTorch's deprecated argument (see ``size_average``).
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.
      beta: the L1/L2 switch point, ``>= 0``.

    Returns:
      A scalar, or the elementwise losses (shape of the broadcast inputs) with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> smooth_l1_loss(jnp.array([0.5, 3.0]), jnp.zeros(2), reduction="sum")
      Array(2.625, dtype=float32)

    PyTorch: torch.nn.functional.smooth_l1_loss
    """
    reduction = _common.legacy_reduction(size_average, reduce, reduction)
    x, t = _broadcast_residual(input, target, "smooth_l1_loss")
    values = _regression.smooth_l1_loss(x, t, beta=beta)
    return _common.apply_reduction(values, reduction, "smooth_l1_loss")


def huber_loss(
    input: ArrayLike,
    target: ArrayLike,
    reduction: str = "mean",
    delta: float = 1.0,
    weight: ArrayLike | None = None,
) -> jax.Array:
    """``torch.nn.functional.huber_loss``; ``weight`` multiplies before a plain mean/sum.

    Args:
      input: array, any shape.
      target: array of the same shape (a broadcastable other shape warns and
        broadcasts, as PyTorch).
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.
      delta: the L2/L1 switch point, ``> 0``.
      weight: optional weights broadcastable to the elementwise losses.

    Returns:
      A scalar, or the elementwise losses (shape of the broadcast inputs) with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> huber_loss(jnp.array([0.5, 3.0]), jnp.zeros(2), reduction="none")
      Array([0.125, 2.5  ], dtype=float32)

    PyTorch: torch.nn.functional.huber_loss
    """
    x, t = _broadcast_residual(input, target, "huber_loss")
    values = _regression.huber_loss(x, t, delta=delta)
    # PyTorch's weighted huber_loss takes the plain mean of w * v (not sum(w v) / sum(w)).
    return _weighted_residual(values, input, weight, reduction, "huber_loss", False)


# --------------------------------------------------------------------------- divergences and cross-entropy


def _check_same_shape(input, target, fn):
    _checks.check_real(input, "input", fn)
    _checks.check_real(target, "target", fn)
    if tuple(np.shape(input)) != tuple(np.shape(target)):
        raise ValueError(
            f"{fn}: `target` must have the shape of `input`; got {tuple(np.shape(target))} "
            f"and {tuple(np.shape(input))}."
        )


def _times_weight(values, weight, fn):
    if weight is None:
        return values
    _checks.broadcast_shapes(values, weight, ("input", "weight"), fn)
    return values * jnp.asarray(weight, values.dtype)


def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    log_target: bool = False,
) -> jax.Array:
    """``torch.nn.functional.kl_div``: pointwise ``target * (log target - input)``, reduced.

    ``input`` holds log-probabilities ``log q``, ``target`` probabilities ``p``
    (log-probabilities with ``log_target=True``). ``reduction="batchmean"``
    divides the sum by ``input.shape[0]`` (the mathematical KL per example);
    ``"mean"`` divides by the number of elements, as PyTorch. Terms with
    ``p = 0`` are 0 with gradient 0 even when ``input = -inf`` (PyTorch: NaN).

    Args:
      input: log-probabilities ``log q``, any shape.
      target: probabilities ``p`` (log-probabilities with ``log_target``), same shape.
      size_average: PyTorch's deprecated argument; when it or ``reduce`` is not
        None they override ``reduction`` as in PyTorch.
      reduce: PyTorch's deprecated argument (see ``size_average``).
      reduction: ``"none"``, ``"mean"`` (default), ``"batchmean"`` or ``"sum"``.
      log_target: ``target`` holds log-probabilities.

    Returns:
      A scalar, or the elementwise terms with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> kl_div(jnp.log(jnp.array([[0.5, 0.5]])), jnp.array([[1.0, 0.0]]), reduction="batchmean")
      Array(0.6931472, dtype=float32)

    PyTorch: torch.nn.functional.kl_div
    """
    fn = "kl_div"
    reduction = _common.legacy_reduction(size_average, reduce, reduction)
    _checks.check_reduction(reduction, fn, ("none", "batchmean", "sum", "mean"))
    _check_broadcast(input, target, ("input", "target"), fn)
    core = _divergences.kl_divergence_with_log_targets if log_target else _divergences.kl_divergence
    values = core(input, target, axis=())
    return _common.apply_reduction(values, reduction, fn, ("none", "batchmean", "sum", "mean"))


def _class_last(input, fn):
    _checks.check_floating(input, "input", fn)
    x = jnp.asarray(input)
    if x.ndim == 0:
        raise ValueError(f"{fn}: `input` must have at least 1 dimension, (C,) or (N, C, ...); got shape ().")
    class_axis = 0 if x.ndim == 1 else 1
    return jnp.moveaxis(x, class_axis, -1), class_axis


def _check_class_target(x, target, fn):
    t = jnp.asarray(target)
    if t.shape != x.shape[:-1]:
        raise ValueError(
            f"{fn}: `target` must hold class indices of shape {x.shape[:-1]} (the input shape "
            f"without the class dim) or probabilities of the input's shape; got {t.shape}."
        )
    _checks.check_integer(t, "target", fn)
    return t


def _check_weight(weight, num_classes, fn):
    if weight is not None and tuple(np.shape(weight)) != (num_classes,):
        raise ValueError(
            f"{fn}: `weight` must have shape ({num_classes},), one weight per class; "
            f"got {tuple(np.shape(weight))}."
        )


def cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> jax.Array:
    """``torch.nn.functional.cross_entropy`` for class indices and for class probabilities.

    ``input`` is ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)`` logits. ``target``
    of the input's shape holds probabilities (``ignore_index`` must then be
    negative); otherwise it holds integer class indices of the input's shape
    without the class dim. PyTorch's normalisation exactly:

    * indices: ``loss_i = (1 - ls) w[y_i] nll_i + ls / C sum_c w_c (-log p_ic)``,
      0 where ``y_i == ignore_index``; ``"mean"`` divides the sum by the summed
      ``w[y_i]`` of the non-ignored targets (their count without ``weight``);
    * probabilities: ``loss_i = -sum_c w_c y'_ic log p_ic`` with
      ``y' = (1 - ls) y + ls / C``; ``"mean"`` divides by the number of examples.

    A mean over no target (all ignored) is 0 here (PyTorch: NaN). A class index
    outside ``[0, C)`` that is not ``ignore_index`` is never read as another
    class: concrete targets raise, as PyTorch does (a ``ValueError`` that is
    also an ``IndexError``, PyTorch's type), naming ``target`` and the first bad
    index; traced targets (inside ``jit``) give NaN for that target, hence a NaN
    ``"mean"`` or ``"sum"``, with a zero gradient for its logits
    (``jaxloss.check_inputs`` reports them under ``checkify``).

    Args:
      input: ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)`` logits.
      target: integer class indices (``input``'s shape without the class dim)
        or probabilities (``input``'s shape).
      weight: optional ``(C,)`` class weights.
      size_average: PyTorch's deprecated argument; when it or ``reduce`` is not
        None they override ``reduction`` as in PyTorch.
      ignore_index: target index that contributes nothing (class indices only).
      reduce: PyTorch's deprecated argument (see ``size_average``).
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.
      label_smoothing: in ``[0, 1]``.

    Returns:
      A scalar, or the per-example losses with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> logits = jnp.array([[1.2, -0.8, -0.5], [0.9, -1.2, 1.1]])
      >>> cross_entropy(logits, jnp.array([0, 1]))
      Array(1.6139643, dtype=float32)
      >>> weight = jnp.array([1.0, 2.0, 1.0])
      >>> cross_entropy(logits, jnp.array([0, 1]), weight=weight, label_smoothing=0.1)
      Array(2.0118263, dtype=float32)

    PyTorch: torch.nn.functional.cross_entropy
    """
    fn = "cross_entropy"
    reduction = _common.legacy_reduction(size_average, reduce, reduction)
    _checks.check_reduction(reduction, fn)
    _checks.check_number(label_smoothing, "label_smoothing", fn, low=0, high=1)
    x, class_axis = _class_last(input, fn)
    num_classes = x.shape[-1]
    _check_weight(weight, num_classes, fn)
    if tuple(np.shape(target)) == tuple(np.shape(input)):
        _checks.check_floating(target, "target", fn)
        if ignore_index >= 0:
            raise ValueError(
                f"{fn}: `ignore_index` is not supported for probability targets (a target of the "
                f"input's shape); got ignore_index={ignore_index}. Leave it at -100."
            )
        probs = jnp.moveaxis(jnp.asarray(target), class_axis, -1)
        if label_smoothing:
            probs = _classification.smooth_labels(probs, label_smoothing)
        if weight is not None:
            probs = probs * jnp.asarray(weight, probs.dtype)
        values = _classification.softmax_cross_entropy(x, probs)
        return _common.apply_reduction(values, reduction, fn)
    return _integer_label_loss(x, target, weight, ignore_index, reduction, label_smoothing, True, fn)


def _integer_label_loss(x, target, weight, ignore_index, reduction, label_smoothing, from_logits, fn):
    """Class-index ``cross_entropy`` / ``nll_loss`` over the core terms, with PyTorch's mean."""
    t = _check_class_target(x, target, fn)
    if x.shape[-1] == 0:
        raise ValueError(
            f"{fn}: `input` must have at least one class; its class dim has size 0 (PyTorch raises "
            "for every target that is not ignore_index)."
        )
    _checks.check_labels_in_range(
        target,
        x.shape[-1],
        "target",
        fn,
        ignore_index=int(ignore_index),
        error=_common.TargetOutOfBoundsError,
        note=" PyTorch: IndexError, Target {value} is out of bounds.",
    )
    out_dtype = x.dtype
    if _numerics.is_low_precision(x.dtype):
        x = x.astype(jnp.float32)
    values, dens = _classification.integer_label_terms(
        x,
        t,
        from_logits=from_logits,
        label_smoothing=label_smoothing,
        weights=weight,
        ignore_index=int(ignore_index),
    )
    if reduction == "none":
        return values.astype(out_dtype)
    total = jnp.sum(values)
    if reduction == "sum":
        return total.astype(out_dtype)
    den = jnp.sum(dens)
    # nothing counted: 0 (PyTorch: NaN), unless an out-of-range target made the sum NaN
    return jnp.where(den != 0, total / jnp.where(den != 0, den, 1), 0 * total).astype(out_dtype)


def nll_loss(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    ignore_index: int = -100,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """``torch.nn.functional.nll_loss``: ``-w[y_i] input[i, y_i]`` with PyTorch's weighted mean.

    ``input`` is ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)`` log-probabilities,
    ``target`` integer class indices; ``"mean"`` divides by the summed
    ``w[y_i]`` of the non-ignored targets (0 if there is none; PyTorch: NaN).
    A class index outside ``[0, C)`` that is not ``ignore_index`` raises for
    concrete targets (a ``ValueError`` that is also PyTorch's ``IndexError``)
    and gives NaN for traced ones, as in ``cross_entropy``.

    Args:
      input: ``(C,)``, ``(N, C)`` or ``(N, C, d1, ...)`` log-probabilities.
      target: integer class indices (``input``'s shape without the class dim).
      weight: optional ``(C,)`` class weights.
      size_average: PyTorch's deprecated argument; when it or ``reduce`` is not
        None they override ``reduction`` as in PyTorch.
      ignore_index: target index that contributes nothing.
      reduce: PyTorch's deprecated argument (see ``size_average``).
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.

    Returns:
      A scalar, or the per-example losses with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> nll_loss(jnp.log(jnp.array([[0.5, 0.5], [0.25, 0.75]])), jnp.array([0, 1]))
      Array(0.4904146, dtype=float32)

    PyTorch: torch.nn.functional.nll_loss
    """
    fn = "nll_loss"
    reduction = _common.legacy_reduction(size_average, reduce, reduction)
    _checks.check_reduction(reduction, fn)
    x, _ = _class_last(input, fn)
    _check_weight(weight, x.shape[-1], fn)
    return _integer_label_loss(x, target, weight, ignore_index, reduction, 0.0, False, fn)


def binary_cross_entropy(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
) -> jax.Array:
    """``torch.nn.functional.binary_cross_entropy`` with PyTorch's ``-100`` log clamp.

    ``w * -(y log p + (1 - y) log(1 - p))`` with both logs clamped at -100;
    ``"mean"`` is the plain mean of the weighted terms. Gradient with respect
    to ``input``: PyTorch's ``w (p - y) / max(p (1 - p), 1e-12)``.

    Args:
      input: probabilities, any shape.
      target: targets in ``[0, 1]``, same shape.
      weight: optional weights broadcastable to the elementwise losses.
      size_average: PyTorch's deprecated argument; when it or ``reduce`` is not
        None they override ``reduction`` as in PyTorch.
      reduce: PyTorch's deprecated argument (see ``size_average``).
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.

    Returns:
      A scalar, or the elementwise losses (shape of the broadcast inputs) with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> p, y = jnp.array([0.9, 0.2, 0.0]), jnp.array([1.0, 0.0, 1.0])
      >>> binary_cross_entropy(p, y, reduction="none")
      Array([  0.10536055,   0.22314355, 100.        ], dtype=float32)

    PyTorch: torch.nn.functional.binary_cross_entropy
    """
    fn = "binary_cross_entropy"
    reduction = _common.legacy_reduction(size_average, reduce, reduction)
    _checks.check_reduction(reduction, fn)
    _check_same_shape(input, target, fn)
    values = _classification.binary_cross_entropy(input, target, log_clamp=-100.0)
    return _common.apply_reduction(_times_weight(values, weight, fn), reduction, fn)


def binary_cross_entropy_with_logits(
    input: ArrayLike,
    target: ArrayLike,
    weight: ArrayLike | None = None,
    size_average: bool | None = None,
    reduce: bool | None = None,
    reduction: str = "mean",
    pos_weight: ArrayLike | None = None,
) -> jax.Array:
    """``torch.nn.functional.binary_cross_entropy_with_logits`` (stable at logits of +-1e4).

    ``w * -(pw y log sigmoid(x) + (1 - y) log sigmoid(-x))``; ``pos_weight``
    broadcasts against the last (class) dim; ``"mean"`` is the plain mean.

    Args:
      input: logits, any shape.
      target: targets in ``[0, 1]``, same shape.
      weight: optional weights broadcastable to the elementwise losses.
      size_average: PyTorch's deprecated argument; when it or ``reduce`` is not
        None they override ``reduction`` as in PyTorch.
      reduce: PyTorch's deprecated argument (see ``size_average``).
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.
      pos_weight: optional weight of the positive term, broadcast against the last dim.

    Returns:
      A scalar, or the elementwise losses (shape of the broadcast inputs) with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> x, y = jnp.array([1e4, -1e4]), jnp.array([1.0, 1.0])
      >>> binary_cross_entropy_with_logits(x, y, reduction="none")
      Array([    0., 10000.], dtype=float32)

    PyTorch: torch.nn.functional.binary_cross_entropy_with_logits
    """
    fn = "binary_cross_entropy_with_logits"
    reduction = _common.legacy_reduction(size_average, reduce, reduction)
    _checks.check_reduction(reduction, fn)
    _check_same_shape(input, target, fn)
    values = _classification.sigmoid_binary_cross_entropy(input, target, pos_weight=pos_weight)
    return _common.apply_reduction(_times_weight(values, weight, fn), reduction, fn)


# --------------------------------------------------------------------------- metric learning


def _check_positive_margin(margin, fn):
    if not _checks.is_traced(margin) and margin <= 0:
        raise ValueError(f"{fn}: `margin` must be greater than 0 (as PyTorch); got {margin!r}.")


def _check_same_ndim(arrays, names, fn):
    for a, n in zip(arrays, names, strict=True):
        _checks.check_real(a, n, fn)
    dims = [np.ndim(a) for a in arrays]
    if len(set(dims)) != 1:
        shown = ", ".join(f"{n} {d}D" for n, d in zip(names, dims, strict=True))
        raise ValueError(f"{fn}: the inputs must have the same number of dimensions; got {shown}.")


def triplet_margin_loss(
    anchor,
    positive,
    negative,
    margin: float = 1.0,
    p: float = 2,
    eps: float = 1e-6,
    swap: bool = False,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
):
    """``torch.nn.functional.triplet_margin_loss``: ``relu(d(a, p) - d(a, n) + margin)``, reduced.

    ``d(x, y) = ||x - y + eps||_p`` over the last dim; ``swap`` uses
    ``min(d(a, n), d(p, n))``. Core: ``jaxloss.triplet_margin_loss``.

    Args:
      anchor: ``(N, D)`` or ``(D,)``.
      positive: same shape as ``anchor``.
      negative: same shape as ``anchor``.
      margin: ``> 0``.
      p: the order of the distance.
      eps: added to the differences.
      swap: use ``min(d(a, n), d(p, n))`` as the negative distance.
      size_average: PyTorch's deprecated argument; when it or ``reduce`` is not
        None they override ``reduction`` as in PyTorch.
      reduce: PyTorch's deprecated argument (see ``size_average``).
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.

    Returns:
      A scalar, or the ``(N,)`` per-example losses with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> a, p, n = jnp.zeros((2, 3)), jnp.full((2, 3), 0.1), jnp.full((2, 3), 0.5)
      >>> triplet_margin_loss(a, p, n)
      Array(0.3071..., dtype=float32)

    PyTorch: torch.nn.functional.triplet_margin_loss
    """
    fn = "triplet_margin_loss"
    reduction = _common.legacy_reduction(size_average, reduce, reduction)
    _check_positive_margin(margin, fn)
    _check_same_ndim((anchor, positive, negative), ("anchor", "positive", "negative"), fn)
    _check_broadcast(anchor, positive, ("anchor", "positive"), fn)
    _check_broadcast(anchor, negative, ("anchor", "negative"), fn)
    values = _metric_learning.triplet_margin_loss(anchor, positive, negative, -1, p, margin, eps, swap=swap)
    return _common.apply_reduction(values, reduction, fn)


def triplet_margin_with_distance_loss(
    anchor,
    positive,
    negative,
    *,
    distance_function=None,
    margin: float = 1.0,
    swap: bool = False,
    reduction: str = "mean",
):
    """``torch.nn.functional.triplet_margin_with_distance_loss`` with a JAX ``distance_function``.

    ``distance_function(x, y)`` returns row-matched distances (default:
    PyTorch's ``pairwise_distance``, ``||x - y + 1e-6||_2``).

    Args:
      anchor: ``(N, D)`` or ``(D,)``.
      positive: same shape as ``anchor``.
      negative: same shape as ``anchor``.
      distance_function: ``f(x, y)`` returning row-matched distances (None: PyTorch's ``pairwise_distance``).
      margin: ``> 0``.
      swap: use ``min(d(a, n), d(p, n))`` as the negative distance.
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.

    Returns:
      A scalar, or the ``(N,)`` per-example losses with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> a, p, n = jnp.zeros((2, 3)), jnp.full((2, 3), 0.1), jnp.ones((2, 3))
      >>> squared = lambda x, y: ((x - y) ** 2).sum(-1)
      >>> triplet_margin_with_distance_loss(a, p, n, distance_function=squared)
      Array(0., dtype=float32)

    PyTorch: torch.nn.functional.triplet_margin_with_distance_loss
    """
    fn = "triplet_margin_with_distance_loss"
    _checks.check_reduction(reduction, fn)
    _check_positive_margin(margin, fn)
    _check_same_ndim((anchor, positive, negative), ("anchor", "positive", "negative"), fn)
    distance = pairwise_distance if distance_function is None else distance_function
    d_ap = distance(anchor, positive)
    d_an = distance(anchor, negative)
    d_pn = distance(positive, negative) if swap else None
    values = _metric_learning.triplet_hinge(d_ap, d_an, d_pn, margin, swap)
    return _common.apply_reduction(values, reduction, fn)


def cosine_embedding_loss(
    input1,
    input2,
    target,
    margin: float = 0,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
):
    """``torch.nn.functional.cosine_embedding_loss``: ``1 - cos`` or ``relu(cos - margin)``.

    Inputs ``(N, D)`` with target ``(N,)``, or ``(D,)`` with a 0-d target.
    Core: ``jaxloss.cosine_embedding_loss``.

    Args:
      input1: ``(N, D)`` or ``(D,)``.
      input2: same shape as ``input1``.
      target: ``(N,)`` (or 0-d) labels, 1 (similar) or -1 (dissimilar).
      margin: in ``[-1, 1]``.
      size_average: PyTorch's deprecated argument; when it or ``reduce`` is not
        None they override ``reduction`` as in PyTorch.
      reduce: PyTorch's deprecated argument (see ``size_average``).
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.

    Returns:
      A scalar, or the ``(N,)`` per-example losses with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> cosine_embedding_loss(jnp.array([[1.0, 0.0]]), jnp.array([[1.0, 1.0]]), jnp.array([1]))
      Array(0.2928..., dtype=float32)

    PyTorch: torch.nn.functional.cosine_embedding_loss
    """
    fn = "cosine_embedding_loss"
    reduction = _common.legacy_reduction(size_average, reduce, reduction)
    t_dim = np.ndim(target)
    if t_dim not in (0, 1):
        raise ValueError(f"{fn}: `target` must be 0-D or 1-D (multi-target is not supported); got {t_dim}-D.")
    want = t_dim + 1
    if np.ndim(input1) != want or np.ndim(input2) != want:
        raise ValueError(
            f"{fn}: a {t_dim}-D target needs {want}-D inputs; got input1 {np.shape(input1)} "
            f"and input2 {np.shape(input2)}."
        )
    _check_broadcast(input1, input2, ("input1", "input2"), fn)
    values = _pair_losses.cosine_embedding_loss(input1, input2, target, margin=margin)
    return _common.apply_reduction(values, reduction, fn)


def margin_ranking_loss(
    input1,
    input2,
    target,
    margin: float = 0,
    size_average=None,
    reduce=None,
    reduction: str = "mean",
):
    """``torch.nn.functional.margin_ranking_loss``: ``relu(-y (x1 - x2) + margin)``, reduced.

    Core: ``jaxloss.margin_ranking_loss``.

    Args:
      input1: ``(N,)`` scores (or 0-d).
      input2: scores of the same shape.
      target: 1 (``input1`` should rank higher) or -1, same shape.
      margin: the required gap.
      size_average: PyTorch's deprecated argument; when it or ``reduce`` is not
        None they override ``reduction`` as in PyTorch.
      reduce: PyTorch's deprecated argument (see ``size_average``).
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.

    Returns:
      A scalar, or the elementwise losses (shape of the broadcast inputs) with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> margin_ranking_loss(jnp.array([1.0, 1.0]), jnp.array([0.5, 0.5]), jnp.array([1.0, -1.0]))
      Array(0.25, dtype=float32)

    PyTorch: torch.nn.functional.margin_ranking_loss
    """
    fn = "margin_ranking_loss"
    reduction = _common.legacy_reduction(size_average, reduce, reduction)
    _check_same_ndim((input1, input2, target), ("input1", "input2", "target"), fn)
    _check_broadcast(input1, input2, ("input1", "input2"), fn)
    values = _pair_losses.margin_ranking_loss(input1, input2, target, margin=margin)
    return _common.apply_reduction(values, reduction, fn)


def hinge_embedding_loss(
    input, target, margin: float = 1.0, size_average=None, reduce=None, reduction: str = "mean"
):
    """``torch.nn.functional.hinge_embedding_loss``: ``x`` (y = 1), ``relu(margin - x)`` (y = -1).

    Core: ``jaxloss.hinge_embedding_loss``.

    Args:
      input: distances, any shape.
      target: 1 or -1, same shape.
      margin: the hinge of the ``-1`` terms.
      size_average: PyTorch's deprecated argument; when it or ``reduce`` is not
        None they override ``reduction`` as in PyTorch.
      reduce: PyTorch's deprecated argument (see ``size_average``).
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.

    Returns:
      A scalar, or the elementwise losses (shape of the broadcast inputs) with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> hinge_embedding_loss(jnp.array([0.3, 0.3]), jnp.array([1.0, -1.0]))
      Array(0.5, dtype=float32)

    PyTorch: torch.nn.functional.hinge_embedding_loss
    """
    fn = "hinge_embedding_loss"
    reduction = _common.legacy_reduction(size_average, reduce, reduction)
    _checks.check_real(input, "input", fn)
    _checks.check_real(target, "target", fn)
    values = _pair_losses.hinge_embedding_loss(input, target, margin=margin)
    return _common.apply_reduction(values, reduction, fn)
