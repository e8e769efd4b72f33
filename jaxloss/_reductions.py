"""``reduce``: the one place where per-example losses become a scalar."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks, _numerics

__all__ = ["reduce"]

REDUCTIONS = ("none", "sum", "mean", "batchmean")


def reduce(
    values: ArrayLike,
    reduction: str = "mean",
    where: ArrayLike | None = None,
    weights: ArrayLike | None = None,
) -> jax.Array:
    """Reduces per-example values the way PyTorch's ``reduction=`` argument does.

    With ``w`` the weights (1 by default) and ``m`` the mask (all true by default):

    * ``"none"``: ``w * values`` where ``m``, 0 elsewhere (same shape);
    * ``"sum"``: ``sum(m * w * values)``;
    * ``"mean"``: ``sum(m * w * values) / sum(m * w)``, the weighted mean
      (PyTorch's normalisation for weighted ``cross_entropy``/``nll_loss``);
    * ``"batchmean"``: ``sum(m * w * values) / values.shape[0]`` (``kl_div``'s
      batch mean; a 0-d input divides by 1).

    A mean over an empty set (no elements, everything masked, or zero total
    weight) is 0, never NaN, and its gradient is 0.

    Args:
      values: array of per-example values, any shape.
      reduction: ``"none" | "sum" | "mean" | "batchmean"``.
      where: optional boolean mask broadcastable to ``values``.
      weights: optional weights broadcastable to ``values``.

    Returns:
      A scalar, or an array shaped like ``values`` for ``"none"``; the dtype of
      ``values`` (float16/bfloat16 are accumulated in float32).

    Examples:
      >>> import jax.numpy as jnp
      >>> reduce(jnp.array([1.0, 2.0, 3.0]))
      Array(2., dtype=float32)
      >>> reduce(jnp.array([1.0, 2.0, 3.0]), "mean", weights=jnp.array([1.0, 0.0, 1.0]))
      Array(2., dtype=float32)
      >>> reduce(jnp.zeros((0,)), "mean")
      Array(0., dtype=float32)

    Tested against: PyTorch's ``reduction=`` semantics (``torch.nn.functional``).
    """
    _checks.check_reduction(reduction, "reduce", REDUCTIONS)
    values = jnp.asarray(values)
    out_dtype = _numerics.output_dtype(values.dtype)
    (v,) = _numerics.as_float(values)[:1]
    if weights is not None:
        _checks.broadcast_shapes(values, weights, ("values", "weights"), "reduce")
        v = v * jnp.asarray(weights, v.dtype)
    if where is not None:
        _checks.broadcast_shapes(values, where, ("values", "where"), "reduce")
        where = jnp.broadcast_to(jnp.asarray(where, bool), v.shape)
        v = jnp.where(where, v, 0)
    if reduction == "none":
        return v.astype(out_dtype)
    total = jnp.sum(v)
    if reduction == "sum":
        return total.astype(out_dtype)
    if reduction == "batchmean":
        batch = values.shape[0] if values.ndim else 1
        return _numerics.safe_divide(total, jnp.asarray(batch, v.dtype)).astype(out_dtype)
    # mean
    if weights is None:
        count = v.size if where is None else jnp.sum(where)
        den = jnp.asarray(count, v.dtype)
    else:
        w = jnp.broadcast_to(jnp.asarray(weights, v.dtype), v.shape)
        den = jnp.sum(w if where is None else jnp.where(where, w, 0))
    return _numerics.safe_divide(total, den).astype(out_dtype)
