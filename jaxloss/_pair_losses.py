"""PyTorch's losses on given pairs with +-1 targets: cosine embedding, margin ranking, hinge embedding.

Each returns one value per pair (per element), like optax; ``jaxloss.torch``
adds PyTorch's ``reduction=``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks, _numerics

__all__ = ["cosine_embedding_loss", "hinge_embedding_loss", "margin_ranking_loss"]


def _pair_inputs(x1, x2, targets, fn, names):
    _checks.broadcast_shapes(x1, x2, names[:2], fn)
    a, b, t, out_dtype = _numerics.as_float(x1, x2, targets)
    return a, b, t, _numerics.output_dtype(jnp.asarray(x1).dtype, jnp.asarray(x2).dtype)


def cosine_embedding_loss(
    inputs1: ArrayLike, inputs2: ArrayLike, targets: ArrayLike, *, margin: float = 0.0, axis: int = -1
) -> jax.Array:
    r"""Cosine embedding loss per pair: ``1 - cos`` (y = 1), ``relu(cos - margin)`` (y = -1).

    $$
    \cos = \frac{x_1 \cdot x_2}
    {\sqrt{(\lVert x_1\rVert^2 + 10^{-12})(\lVert x_2\rVert^2 + 10^{-12})}}
    $$

    Targets other than 1 and -1 give 0 (as PyTorch).

    Args:
      inputs1: ``(..., d)`` first embeddings.
      inputs2: ``(..., d)`` second embeddings (broadcastable).
      targets: ``(...)`` targets in ``{1, -1}``.
      margin: margin of the dissimilar term, in ``[-1, 1]``.
      axis: the feature axis.

    Returns:
      One loss per pair, shape ``(...)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> cosine_embedding_loss(jnp.array([[1.0, 0.0], [1.0, 1.0]]),
      ...                       jnp.array([[0.0, 1.0], [1.0, 1.0]]), jnp.array([1, -1]))
      Array([1., 1.], dtype=float32)

    PyTorch: torch.nn.functional.cosine_embedding_loss(reduction="none")
    """
    fn = "cosine_embedding_loss"
    _checks.check_number(margin, "margin", fn, low=-1.0, high=1.0)
    a, b, t, out_dtype = _pair_inputs(inputs1, inputs2, targets, fn, ("inputs1", "inputs2"))
    ndim = max(a.ndim, b.ndim)
    if ndim == 0:
        raise ValueError(f"{fn}: the inputs need a feature axis; got scalars.")
    (ax,) = _checks.check_axis(axis, ndim, "axis", fn)
    eps = 1e-12
    dot = jnp.sum(a * b, axis=ax)
    cos = dot / jnp.sqrt((jnp.sum(a * a, axis=ax) + eps) * (jnp.sum(b * b, axis=ax) + eps))
    out = jnp.where(t == 1, 1 - cos, 0) + jnp.where(t == -1, jax.nn.relu(cos - margin), 0)
    return out.astype(out_dtype)


def margin_ranking_loss(
    inputs1: ArrayLike, inputs2: ArrayLike, targets: ArrayLike, *, margin: float = 0.0
) -> jax.Array:
    r"""Margin ranking loss per pair: ``relu(-y (x_1 - x_2) + margin)``.

    Args:
      inputs1: scores, any shape.
      inputs2: scores, broadcastable with ``inputs1``.
      targets: ``1`` where ``inputs1`` should rank higher, ``-1`` otherwise.
      margin: the margin.

    Returns:
      One loss per element of the broadcast shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> margin_ranking_loss(jnp.array([1.0, 1.0]), jnp.array([0.5, 0.5]), jnp.array([1, -1]))
      Array([0. , 0.5], dtype=float32)

    PyTorch: torch.nn.functional.margin_ranking_loss(reduction="none")
    """
    fn = "margin_ranking_loss"
    _checks.check_number(margin, "margin", fn)
    _checks.broadcast_shapes(inputs1, targets, ("inputs1", "targets"), fn)
    a, b, t, out_dtype = _pair_inputs(inputs1, inputs2, targets, fn, ("inputs1", "inputs2"))
    return jax.nn.relu(-t * (a - b) + margin).astype(out_dtype)


def hinge_embedding_loss(inputs: ArrayLike, targets: ArrayLike, *, margin: float = 1.0) -> jax.Array:
    r"""Hinge embedding loss per element: ``x`` (``y = 1``), ``relu(margin - x)`` (``y = -1``).

    As PyTorch, an element whose target is neither 1 nor -1 gets both terms,
    ``x + relu(margin - x)``.

    Args:
      inputs: values (usually distances), any shape.
      targets: ``1`` / ``-1``, broadcastable with ``inputs``.
      margin: the margin.

    Returns:
      One loss per element of the broadcast shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> hinge_embedding_loss(jnp.array([0.3, 0.3]), jnp.array([1, -1]))
      Array([0.3, 0.7], dtype=float32)

    PyTorch: torch.nn.functional.hinge_embedding_loss(reduction="none")
    """
    fn = "hinge_embedding_loss"
    _checks.check_number(margin, "margin", fn)
    _checks.broadcast_shapes(inputs, targets, ("inputs", "targets"), fn)
    x, t, _ = _numerics.as_float(inputs, targets)
    out_dtype = _numerics.output_dtype(jnp.asarray(inputs).dtype)
    out = jnp.where(t != 1, jax.nn.relu(margin - x), 0) + jnp.where(t != -1, x, 0)
    return out.astype(out_dtype)
