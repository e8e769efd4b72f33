"""PyTorch-only distance semantics, over the core's metrics.

* ``torch.cdist``'s ``p``: any ``p >= 0``, where ``p = 0`` counts the unequal
  coordinates (scipy has no such metric) and the other orders are the core's
  ``euclidean`` / ``cityblock`` / ``chebyshev`` / ``minkowski``.
* ``torch.nn.functional.cosine_similarity``'s ``eps``: each norm clamped at
  ``eps`` in value only.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .. import _distances, _numerics

#: torch.cdist's orders that are a core metric of their own.
_METRIC_OF_P = {1.0: "cityblock", 2.0: "euclidean", math.inf: "chebyshev"}


def minkowski_cdist(x: ArrayLike, y: ArrayLike | None, p: float, fn: str = "cdist") -> jax.Array:
    """``torch.cdist``'s ``(sum |x_i - y_j|^p)^(1/p)`` for any ``p >= 0`` (0 counts unequal).

    ``y=None`` compares ``x`` with itself (an exactly symmetric result).
    """
    p = float(p)
    if p == 0:
        return _distances.unequal_counts(x, y, fn=fn)
    if p in _METRIC_OF_P:
        return _distances.cdist(x, y, _METRIC_OF_P[p])
    return _distances.cdist(x, y, "minkowski", p=p)


def torch_cosine_similarity(x1: jax.Array, x2: jax.Array, axis: int, eps: float) -> jax.Array:
    """PyTorch 2.x's ``sum((x1 / max(|x1|, eps)) * (x2 / max(|x2|, eps)))``.

    Each norm is clamped at ``eps`` in value only: PyTorch clamps in place
    under ``no_grad``, so the gradient flows through the unclamped norm (whose
    gradient is 0 at a zero vector).
    """

    def unit(v):
        n = _numerics.p_norm(v, 2.0, axis, True)
        clamped = n + jax.lax.stop_gradient(jnp.maximum(n, eps) - n)
        return v / clamped

    return jnp.sum(unit(x1) * unit(x2), axis=axis)
