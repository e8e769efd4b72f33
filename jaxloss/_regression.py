"""Residual (regression) losses: squared, absolute, Huber and smooth-L1 errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks, _numerics

__all__ = ["absolute_error", "huber_loss", "l2_loss", "smooth_l1_loss", "squared_error"]


def _residual(predictions, targets, fn):
    if targets is None:
        (r, out_dtype) = _numerics.as_float(predictions)
        return r, out_dtype
    # optax's residual losses refuse any shape mismatch (no silent broadcasting of a
    # (B,) prediction against (B, 1) targets into a (B, B) result); jaxloss.torch
    # broadcasts with PyTorch's warning before calling these.
    _checks.check_same_shape(predictions, targets, ("predictions", "targets"), fn)
    p, t, out_dtype = _numerics.as_float(predictions, targets)
    return p - t, out_dtype


def squared_error(predictions: ArrayLike, targets: ArrayLike | None = None) -> jax.Array:
    """Elementwise ``(predictions - targets)^2`` (optax's signature; no reduction).

    Args:
      predictions: array of any shape.
      targets: array of the shape of ``predictions``, or None (treated as 0); any
        other shape raises ``ValueError``, as in optax.

    Returns:
      The squared errors, of the shape of ``predictions``.

    Examples:
      >>> import jax.numpy as jnp
      >>> squared_error(jnp.array([2.0, 3.0]), jnp.array([1.0, 1.0]))
      Array([1., 4.], dtype=float32)

    PyTorch: torch.nn.functional.mse_loss(reduction="none"); optax: squared_error
    """
    r, out_dtype = _residual(predictions, targets, "squared_error")
    return (r * r).astype(out_dtype)


def l2_loss(predictions: ArrayLike, targets: ArrayLike | None = None) -> jax.Array:
    """``0.5 * (predictions - targets)^2`` elementwise, as optax's ``l2_loss``.

    Args:
      predictions: array, any shape.
      targets: array of the shape of ``predictions`` (None: zeros); any other shape
        raises ``ValueError``, as in optax.

    Returns:
      Elementwise ``0.5 (predictions - targets)^2``, shape of ``predictions``.

    Examples:
      >>> import jax.numpy as jnp
      >>> l2_loss(jnp.array([2.0]), jnp.array([0.0]))
      Array([2.], dtype=float32)

    optax: l2_loss
    """
    r, out_dtype = _residual(predictions, targets, "l2_loss")
    return (0.5 * r * r).astype(out_dtype)


def absolute_error(predictions: ArrayLike, targets: ArrayLike | None = None) -> jax.Array:
    """Elementwise ``|predictions - targets|``, gradient ``sign`` (0 at a tie, as PyTorch).

    Args:
      predictions: array, any shape.
      targets: array of the shape of ``predictions`` (None: zeros); any other shape
        raises ``ValueError``, as optax's ``squared_error`` does.

    Returns:
      Elementwise ``|predictions - targets|``, shape of ``predictions``.

    Examples:
      >>> import jax.numpy as jnp
      >>> absolute_error(jnp.array([2.0, -3.0]), jnp.array([1.0, 1.0]))
      Array([1., 4.], dtype=float32)

    PyTorch: torch.nn.functional.l1_loss(reduction="none")
    """
    r, out_dtype = _residual(predictions, targets, "absolute_error")
    return _numerics.abs(r).astype(out_dtype)


def huber_loss(predictions: ArrayLike, targets: ArrayLike | None = None, *, delta: float = 1.0) -> jax.Array:
    """Huber loss: ``0.5 z^2`` if ``|z| <= delta`` else ``delta (|z| - 0.5 delta)``, ``z = p - t``.

    Args:
      predictions: array of any shape.
      targets: array of the shape of ``predictions``, or None (0); any other shape
        raises ``ValueError``, as optax's ``squared_error`` does.
      delta: positive threshold between the quadratic and linear parts.

    Returns:
      Elementwise losses, of the shape of ``predictions``.

    Examples:
      >>> import jax.numpy as jnp
      >>> huber_loss(jnp.array([0.5, 3.0]), delta=1.0)
      Array([0.125, 2.5  ], dtype=float32)

    PyTorch: torch.nn.functional.huber_loss(reduction="none"); optax: huber_loss
    """
    _checks.check_number(delta, "delta", "huber_loss", low=0, low_inclusive=False)
    r, out_dtype = _residual(predictions, targets, "huber_loss")
    z = _numerics.abs(r)
    out = jnp.where(z < delta, 0.5 * r * r, delta * (z - 0.5 * delta))
    return out.astype(out_dtype)


def smooth_l1_loss(
    predictions: ArrayLike, targets: ArrayLike | None = None, *, beta: float = 1.0
) -> jax.Array:
    """Smooth L1: ``0.5 z^2 / beta`` if ``|z| < beta`` else ``|z| - 0.5 beta``; L1 when ``beta = 0``.

    Equal to ``huber_loss(predictions, targets, beta) / beta`` for ``beta > 0``.

    Args:
      predictions: array of any shape.
      targets: array of the shape of ``predictions``, or None (0); any other shape
        raises ``ValueError``, as optax's ``squared_error`` does.
      beta: non-negative threshold.

    Returns:
      Elementwise losses, of the shape of ``predictions``.

    Examples:
      >>> import jax.numpy as jnp
      >>> smooth_l1_loss(jnp.array([0.5, 3.0]), beta=1.0)
      Array([0.125, 2.5  ], dtype=float32)

    PyTorch: torch.nn.functional.smooth_l1_loss(reduction="none")
    """
    _checks.check_number(beta, "beta", "smooth_l1_loss", low=0)
    r, out_dtype = _residual(predictions, targets, "smooth_l1_loss")
    z = _numerics.abs(r)
    if not _checks.is_traced(beta) and float(beta) == 0.0:
        return z.astype(out_dtype)
    out = jnp.where(z < beta, 0.5 * r * r / beta, z - 0.5 * beta)
    return out.astype(out_dtype)
