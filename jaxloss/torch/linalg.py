"""``jaxloss.torch.linalg``: ``torch.linalg.norm``, ``vector_norm`` and ``matrix_norm``.

Same argument names, defaults and semantics as PyTorch; thin wrappers over
``jaxloss``'s core norms. ``dtype=`` casts the input before computing.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from .. import _norms
from . import _common
from ._common import cast as _cast

__all__ = ["matrix_norm", "norm", "vector_norm"]


def vector_norm(
    x: ArrayLike,
    ord: float = 2,
    dim: int | tuple[int, ...] | None = None,
    keepdim: bool = False,
    *,
    dtype: DTypeLike | None = None,
) -> jax.Array:
    """``torch.linalg.vector_norm``: core ``jaxloss.vector_norm`` over ``dim``.

    Args:
      x: array.
      ord: the order (any real number or inf).
      dim: None (all dims), an int or a tuple of ints.
      keepdim: keep the reduced dims as size 1.
      dtype: cast ``x`` to this dtype first.

    Returns:
      The norm(s), with ``dim`` reduced.

    Examples:
      >>> import jax.numpy as jnp
      >>> vector_norm(jnp.array([3.0, 4.0]))
      Array(5., dtype=float32)

    PyTorch: torch.linalg.vector_norm
    """
    dim = _common.zero_d_dim(x, dim, "dim", "linalg.vector_norm")
    return _norms.vector_norm(_cast(x, dtype), ord, dim, keepdim)


def matrix_norm(
    A: ArrayLike,
    ord: str | float = "fro",
    dim: tuple[int, int] = (-2, -1),
    keepdim: bool = False,
    *,
    dtype: DTypeLike | None = None,
) -> jax.Array:
    """``torch.linalg.matrix_norm``: core ``jaxloss.matrix_norm`` over ``dim``.

    Args:
      A: ``(..., m, n)`` array.
      ord: ``"fro"``, ``"nuc"``, 2, -2, 1, -1, inf or -inf.
      dim: the two matrix dims.
      keepdim: keep the reduced dims as size 1.
      dtype: cast ``A`` to this dtype first.

    Returns:
      The norm(s), with ``dim`` reduced.

    Examples:
      >>> import jax.numpy as jnp
      >>> matrix_norm(jnp.eye(3), ord="nuc")
      Array(3., dtype=float32)

    PyTorch: torch.linalg.matrix_norm
    """
    if np.ndim(A) < 2:  # the core would name its argument `x`
        raise ValueError(f"linalg.matrix_norm: `A` must have at least 2 dimensions; got shape {np.shape(A)}.")
    return _norms.matrix_norm(_cast(A, dtype), ord, dim, keepdim)


def norm(
    A: ArrayLike,
    ord: str | float | None = None,
    dim: int | tuple[int, ...] | None = None,
    keepdim: bool = False,
    *,
    dtype: DTypeLike | None = None,
) -> jax.Array:
    """``torch.linalg.norm``: a vector norm for an int ``dim``, a matrix norm for a pair.

    With ``dim=None`` and ``ord=None`` the input is flattened (2-norm); with
    ``dim=None`` and ``ord`` given the input must be 1-D or 2-D.

    Args:
      A: array.
      ord: None, a vector order (with an int ``dim``) or a matrix order (with two dims).
      dim: None, an int or a pair of ints.
      keepdim: keep the reduced dims as size 1.
      dtype: cast ``A`` to this dtype first.

    Returns:
      The norm(s), with ``dim`` reduced.

    Examples:
      >>> import jax.numpy as jnp
      >>> norm(jnp.array([[1.0, 2.0], [3.0, 4.0]]), ord=2)
      Array(5.46..., dtype=float32)

    PyTorch: torch.linalg.norm
    """
    A = _cast(A, dtype)
    if A.ndim == 0 and dim is not None:  # PyTorch: a 0-d tensor is one element along dim 0 / -1
        _common.zero_d_dim(A, dim, "dim", "linalg.norm")
        return _norms.vector_norm(A, 2.0 if ord is None else ord, None, keepdim)
    if dim is not None and not isinstance(dim, (int, np.integer)):
        dim = tuple(dim)
        if len(dim) not in (1, 2):
            raise ValueError(f"linalg.norm: `dim` must be an int or a pair of ints; got {dim!r}.")
    return _norms.norm(A, ord, dim, keepdim)
