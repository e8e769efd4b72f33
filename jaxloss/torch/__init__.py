"""``jaxloss.torch``: PyTorch's names, arguments, defaults and numbers, in JAX.

``jaxloss.torch`` mirrors ``torch.nn.functional``, ``torch.norm``,
``torch.cdist`` and ``torch.linalg`` the way ``jax.numpy`` mirrors NumPy: ported
code changes its imports and gives PyTorch's numbers. Every function here is a
thin layer over the core :mod:`jaxloss` API (never a second implementation) and
this module never imports torch.

Differences from PyTorch, by design: gradients are finite where PyTorch gives
NaN (documented per function), and there is no ``out=`` argument (JAX arrays
are immutable).
"""

from __future__ import annotations

import numpy as np

from .. import _norms, _regression
from . import linalg as linalg
from ._common import apply_reduction, cast, legacy_reduction

__all__ = [
    "huber_loss",
    "l1_loss",
    "linalg",
    "mse_loss",
    "norm",
    "smooth_l1_loss",
]

# --------------------------------------------------------------------------- norms


def norm(input, p="fro", dim=None, keepdim: bool = False, out=None, dtype=None):
    """The legacy ``torch.norm`` with all its ``p``/``dim`` combinations.

    * ``p="fro"`` with ``dim`` None, an int or up to two dims: the 2-norm of the
      entries over ``dim`` (all entries when None);
    * ``p="nuc"`` (or ``"fro"`` with more dims): a matrix norm over ``dim``,
      which must then name exactly two dims (all dims of a 2-D input when None);
    * ``p`` a number (``None`` means 2): the vector norm of the entries over
      ``dim`` (flattened), for any real ``p`` including 0 and +-inf.

    Args:
      input: array. p: ``"fro"``, ``"nuc"`` or a number. dim: None, int or
      tuple. keepdim: keep reduced dims. out: unsupported (must be None).
      dtype: cast the input to this dtype first.

    Returns:
      The norm(s).

    Examples:
      >>> import jax.numpy as jnp
      >>> residual = jnp.array([[2, 3, 4, 5], [2, 3, 4, 5]]) - jnp.array([[1, 2, 3, 4], [1, 2, 3, 4]])
      >>> norm(residual.astype(jnp.float32), p="fro", dim=-1)
      Array([2., 2.], dtype=float32)
      >>> norm(residual.astype(jnp.float32), p="nuc")
      Array(2.828427, dtype=float32)

    PyTorch: torch.norm
    """
    if out is not None:
        raise TypeError("norm: `out` is not supported in JAX (arrays are immutable); omit it.")
    x = cast(input, dtype)
    dims = None if dim is None else ((dim,) if isinstance(dim, (int, np.integer)) else tuple(dim))
    if isinstance(p, str):
        if p == "fro" and (dims is None or len(dims) <= 2):
            return _norms.vector_norm(x, 2, dims, keepdim)
        if dims is None:
            dims = tuple(range(x.ndim))
        if len(dims) != 2:
            raise ValueError(
                f"norm: `p`={p!r} is a matrix norm and needs `dim` to name exactly two dims "
                f"(or a 2-D input with dim=None); got dim={dim!r} for shape {x.shape}."
            )
        return _norms.matrix_norm(x, p, dims, keepdim)
    return _norms.vector_norm(x, 2.0 if p is None else p, dims, keepdim)


# --------------------------------------------------------------------------- residual losses


def _weighted_residual(values, input, weight, reduction, fn, weighted_mean):
    if weight is None:
        return apply_reduction(values, reduction, fn)
    if tuple(np.shape(weight)) != tuple(np.shape(input)):
        raise ValueError(
            f"{fn}: `weight` must have the shape of `input`; got {tuple(np.shape(weight))} "
            f"and {tuple(np.shape(input))}."
        )
    if weighted_mean:  # sum(w * v) / sum(w), as PyTorch's mse_loss and l1_loss
        return apply_reduction(values, reduction, fn, weights=weight)
    return apply_reduction(values * weight, reduction, fn)


def mse_loss(
    input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None
):
    """``torch.nn.functional.mse_loss``: ``reduce((input - target)^2)``.

    With ``weight`` (same shape as ``input``) the mean is ``sum(w v) / sum(w)``.

    >>> import jax.numpy as jnp
    >>> mse_loss(jnp.array([1.0, 3.0]), jnp.array([0.0, 0.0]))
    Array(5., dtype=float32)

    PyTorch: torch.nn.functional.mse_loss
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    values = _regression.squared_error(input, target)
    return _weighted_residual(values, input, weight, reduction, "mse_loss", True)


def l1_loss(
    input, target, size_average=None, reduce=None, reduction: str = "mean", weight=None
):
    """``torch.nn.functional.l1_loss``: ``reduce(|input - target|)``, gradient 0 at a tie.

    With ``weight`` (same shape as ``input``) the mean is ``sum(w v) / sum(w)``.

    >>> import jax.numpy as jnp
    >>> l1_loss(jnp.array([1.0, -3.0]), jnp.array([0.0, 0.0]))
    Array(2., dtype=float32)

    PyTorch: torch.nn.functional.l1_loss
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    values = _regression.absolute_error(input, target)
    return _weighted_residual(values, input, weight, reduction, "l1_loss", True)


def smooth_l1_loss(
    input, target, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0
):
    """``torch.nn.functional.smooth_l1_loss`` (``beta = 0`` is the L1 loss).

    >>> import jax.numpy as jnp
    >>> smooth_l1_loss(jnp.array([0.5, 3.0]), jnp.zeros(2), reduction="sum")
    Array(2.625, dtype=float32)

    PyTorch: torch.nn.functional.smooth_l1_loss
    """
    reduction = legacy_reduction(size_average, reduce, reduction)
    values = _regression.smooth_l1_loss(input, target, beta=beta)
    return apply_reduction(values, reduction, "smooth_l1_loss")


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0, weight=None):
    """``torch.nn.functional.huber_loss``; ``weight`` multiplies before a plain mean/sum.

    >>> import jax.numpy as jnp
    >>> huber_loss(jnp.array([0.5, 3.0]), jnp.zeros(2), reduction="none")
    Array([0.125, 2.5  ], dtype=float32)

    PyTorch: torch.nn.functional.huber_loss
    """
    values = _regression.huber_loss(input, target, delta=delta)
    # PyTorch's weighted huber_loss takes the plain mean of w * v (not sum(w v) / sum(w)).
    return _weighted_residual(values, input, weight, reduction, "huber_loss", False)


# --------------------------------------------------------------------------- distances (issue 3)


# ------------------------------------------------------------------ divergences and cross-entropy (issue 4)


# --------------------------------------------------------------------------- metric learning (issue 5)
