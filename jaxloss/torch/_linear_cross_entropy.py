"""``torch.nn.functional.linear_cross_entropy`` over the fused core."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import _checks, _linear_cross_entropy, _numerics
from . import _common
from ._losses import cross_entropy

__all__ = ["linear_cross_entropy"]


def _option_block_size(options, fn):
    """The token block size an ``options`` object asks for (its ``batch_chunk_size``), or None."""
    if options is None:
        return None
    size = getattr(options, "batch_chunk_size", None)
    if size is None:
        return None
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size <= 0:
        raise ValueError(f"{fn}: `options.batch_chunk_size` must be a positive int or None; got {size!r}.")
    return int(size)


def linear_cross_entropy(
    input,
    linear_weight,
    target,
    *,
    linear_bias=None,
    weight=None,
    reduction: str = "mean",
    ignore_index: int | None = None,
    label_smoothing: float = 0.0,
    options=None,
):
    """``torch.nn.functional.linear_cross_entropy``: ``cross_entropy(linear(input, W, b), target)``, fused.

    PyTorch's weight layout: ``linear_weight`` is ``(C, D)`` (logits
    ``input @ linear_weight.T + linear_bias``), or ``(C, d1, ..., dk, D)`` for
    the K-dimensional loss, whose logits ``(N, C, d1, ..., dk)`` are
    soft-maxed over ``C`` at every position. ``input`` is ``(N, D)`` or
    unbatched ``(D,)`` (with a 0-d ``target``). Class-index targets use
    ``ignore_index`` (None means -100, as PyTorch) and PyTorch's weighted
    mean: the sum of the losses over the summed ``weight[target]`` of the
    non-ignored targets (0 when every target is ignored; PyTorch: NaN). A
    class id outside ``[0, C)`` that is not ``ignore_index`` raises a
    ``ValueError`` naming ``target`` (also an ``IndexError``, PyTorch's type)
    when ``target`` is concrete, and gives NaN when it is traced.

    Class-index targets run through :func:`jaxloss.linear_softmax_cross_entropy`,
    which never holds the logits (the K-dimensional form maps it over the
    positions). Probability targets (``target`` of the logits' shape) already
    hold ``N x C`` numbers; they go through the dense
    :func:`jaxloss.torch.cross_entropy` of the logits.

    ``options`` (PyTorch's ``LinearCrossEntropyOptions``, or any object) only
    tunes memory: its ``batch_chunk_size``, when set, is the token block size.
    The numbers are the same with and without it, which is PyTorch's own
    contract for its chunked path.

    Args:
      input: ``(N, D)`` or ``(D,)`` floating inputs.
      linear_weight: ``(C, D)`` or ``(C, d1, ..., dk, D)`` weights (PyTorch's ``nn.Linear`` layout).
      target: integer class ids of shape ``(N,)``, ``()`` or ``(N, d1, ..., dk)``,
        or probabilities of the logits' shape.
      linear_bias: optional ``(C,)`` or ``(C, d1, ..., dk)`` bias.
      weight: optional ``(C,)`` class weights.
      reduction: ``"none"``, ``"mean"`` (default) or ``"sum"``.
      ignore_index: class id that contributes nothing (None: -100); must be None
        for probability targets.
      label_smoothing: in ``[0, 1]``.
      options: None or an object whose ``batch_chunk_size`` sets the token block size.

    Returns:
      A scalar, or the per-token losses (``target``'s shape for class ids)
      with ``reduction="none"``.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> w = jnp.array([[1.0, 0.0], [-1.0, 2.0], [0.0, 1.0]])  # (C, D)
      >>> linear_cross_entropy(x, w, jnp.array([0, 1, 2])).round(4)
      Array(0.638, dtype=float32)
      >>> linear_cross_entropy(x, w, jnp.array([0, -100, 2]), reduction="none").round(4)
      Array([0.4076, 0.    , 1.0986], dtype=float32)

    PyTorch: torch.nn.functional.linear_cross_entropy
    """
    fn = "linear_cross_entropy"
    _checks.check_reduction(reduction, fn)
    _checks.check_number(label_smoothing, "label_smoothing", fn, low=0, high=1)
    _checks.check_floating(input, "input", fn)
    _checks.check_floating(linear_weight, "linear_weight", fn)
    x = jnp.asarray(input)
    w_lin = jnp.asarray(linear_weight)
    if x.ndim not in (1, 2):
        raise ValueError(f"{fn}: `input` must have shape (N, D) or (D,); got shape {x.shape}.")
    if w_lin.ndim < 2:
        raise ValueError(
            f"{fn}: `linear_weight` must have shape (C, D) or (C, d1, ..., dk, D); got shape {w_lin.shape}."
        )
    d = x.shape[-1]
    if w_lin.shape[-1] != d:
        raise ValueError(
            f"{fn}: `linear_weight` must have input.shape[-1] = {d} as its last dim (in_features); "
            f"got shape {w_lin.shape}."
        )
    num_classes = w_lin.shape[0]
    out_features = w_lin.shape[1:-1]
    if linear_bias is not None and tuple(np.shape(linear_bias)) != (num_classes, *out_features):
        raise ValueError(
            f"{fn}: `linear_bias` must have shape {(num_classes, *out_features)}; "
            f"got {tuple(np.shape(linear_bias))}."
        )
    if out_features and x.ndim == 1:
        raise ValueError(
            f"{fn}: the K-dimensional loss of a `linear_weight` of shape {w_lin.shape} needs a batched "
            f"`input` of shape (N, {d}); got shape {x.shape}."
        )
    if weight is not None and tuple(np.shape(weight)) != (num_classes,):
        raise ValueError(
            f"{fn}: `weight` must have shape ({num_classes},), one weight per class; "
            f"got {tuple(np.shape(weight))}."
        )
    logits_shape = (*x.shape[:-1], num_classes, *out_features)
    t = jnp.asarray(target)

    if t.shape == logits_shape:  # probability targets: the target already holds N x C numbers
        if ignore_index is not None:
            raise ValueError(
                f"{fn}: `ignore_index` cannot be set when `target` holds probabilities (the logits' "
                f"shape {logits_shape}); got ignore_index={ignore_index!r}."
            )
        k_flat = w_lin.reshape(math.prod(w_lin.shape[:-1]), d)
        logits = x @ k_flat.T
        if linear_bias is not None:
            logits = logits + jnp.asarray(linear_bias).reshape(-1)
        logits = logits.reshape(logits_shape)
        return cross_entropy(logits, t, weight=weight, reduction=reduction, label_smoothing=label_smoothing)

    expected = (*x.shape[:-1], *out_features)
    if t.shape != expected:
        raise ValueError(
            f"{fn}: `target` must hold class ids of shape {expected} or probabilities of the logits' "
            f"shape {logits_shape}; got {t.shape}."
        )
    _checks.check_integer(t, "target", fn)
    ignore = -100 if ignore_index is None else ignore_index
    # PyTorch raises for a class id outside [0, C) that is not ignore_index: so do we, when we can see it
    _checks.check_labels_in_range(
        t,
        num_classes,
        "target",
        fn,
        ignore_index=ignore,
        error=_common.TargetOutOfBoundsError,
        note=" PyTorch: IndexError, Target {value} is out of bounds.",
    )
    block_size = _option_block_size(options, fn)
    out_dtype = jnp.promote_types(x.dtype, w_lin.dtype)

    def core(kernel_cd, bias_c, labels):
        return _linear_cross_entropy.linear_softmax_cross_entropy(
            x,
            kernel_cd.T,
            labels,
            bias=bias_c,
            weights=weight,
            label_smoothing=label_smoothing,
            ignore_index=ignore,
            block_size=block_size,
        )

    if not out_features:
        values = core(w_lin, linear_bias, t)
    else:
        # position p of the K-dimensional loss has its own (C, D) weight W[:, p, :]
        positions = math.prod(out_features)
        kernels = jnp.moveaxis(w_lin.reshape(num_classes, positions, d), 1, 0)
        labels = jnp.moveaxis(t.reshape(t.shape[0], positions), 1, 0)
        if linear_bias is None:
            per_position = jax.vmap(lambda k, y: core(k, None, y))(kernels, labels)
        else:
            biases = jnp.moveaxis(jnp.asarray(linear_bias).reshape(num_classes, positions), 1, 0)
            per_position = jax.vmap(core)(kernels, biases, labels)
        values = jnp.moveaxis(per_position, 0, 1).reshape(t.shape)

    if reduction == "none":
        return values
    acc = jnp.promote_types(out_dtype, jnp.float32)
    total = jnp.sum(values.astype(acc))
    if reduction == "sum":
        return total.astype(out_dtype)
    valid = t != ignore
    if weight is None:
        den = jnp.sum(valid, dtype=acc)
    else:
        # the summed weight of the non-ignored targets (a (C,)-vector lookup per token)
        safe = jnp.where(valid, t, 0)
        den = jnp.sum(jnp.where(valid, jnp.asarray(weight).astype(acc)[safe], 0))
    return _numerics.safe_divide(total, den).astype(out_dtype)
