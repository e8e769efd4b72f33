"""PyTorch's norms and distances: ``torch.norm``, ``torch.cdist``, ``torch.pdist``,
``torch.nn.functional.pairwise_distance`` and ``cosine_similarity``, and
torchmetrics' ``binary_hamming_distance``, over the core's norms and metrics.

PyTorch-only semantics live here, never in the core:

* ``torch.cdist``'s ``p``: any ``p >= 0``, where ``p = 0`` counts the unequal
  coordinates (scipy has no such metric) and the other orders are the core's
  ``euclidean`` / ``cityblock`` / ``chebyshev`` / ``minkowski``.
* ``torch.nn.functional.cosine_similarity``'s ``eps``: each norm clamped at
  ``eps`` in value only (so not scale-free below a norm of ``eps``; scale-free
  above it, up to the largest float).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

from .. import _checks, _distances, _norms, _numerics
from . import _common

__all__ = [
    "binary_hamming_distance",
    "cdist",
    "cosine_similarity",
    "norm",
    "pairwise_distance",
    "pdist",
]

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
    gradient is 0 at a zero vector). Each vector is multiplied by a power of
    two before its norm (``x / max(|x|, eps) = x s / max(|x s|, eps s)``), so
    the value is finite, with finite gradients, wherever it is representable
    (vectors up to the largest float); below ``|x| = eps`` it is PyTorch's
    clamped value, not a cosine.
    """

    def unit(v):
        n, s, _ = _numerics.norm2_parts(v, axis)
        floor = jnp.asarray(eps, v.dtype) * s
        clamped = n + jax.lax.stop_gradient(jnp.maximum(n, floor) - n)
        # s / clamped = 1 / max(|v|, eps): one factor, so the backward never forms ct / clamped
        # (which underflows for a clamped tiny vector) before multiplying by s
        return v * (s / clamped)

    return jnp.sum(unit(x1) * unit(x2), axis=axis)


# --------------------------------------------------------------------------- norms


def norm(
    input: ArrayLike,
    p: str | float | None = "fro",
    dim: int | tuple[int, ...] | None = None,
    keepdim: bool = False,
    out: None = None,
    dtype: DTypeLike | None = None,
) -> jax.Array:
    """The legacy ``torch.norm`` with all its ``p``/``dim`` combinations.

    * ``p="fro"`` with ``dim`` None, an int or up to two dims: the 2-norm of the
      entries over ``dim`` (all entries when None);
    * ``p="nuc"`` (or ``"fro"`` with more dims): a matrix norm over ``dim``,
      which must then name exactly two dims (all dims of a 2-D input when None);
    * ``p`` a number (``None`` means 2): the vector norm of the entries over
      ``dim`` (flattened), for any real ``p`` including 0 and +-inf.

    Args:
      input: array.
      p: ``"fro"``, ``"nuc"`` or a number.
      dim: None, an int or a tuple of ints.
      keepdim: keep reduced dims.
      out: unsupported (must be None).
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
    x = _common.cast(input, dtype)
    dim = _common.zero_d_dim(x, dim, "dim", "norm")
    dims = None if dim is None else ((dim,) if isinstance(dim, (int, np.integer)) else tuple(dim))
    if isinstance(p, str):
        _checks.check_option(p, "p", ("fro", "nuc"), "norm")
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


# --------------------------------------------------------------------------- distances


_CDIST_MODES = (
    "use_mm_for_euclid_dist_if_necessary",
    "use_mm_for_euclid_dist",
    "donot_use_mm_for_euclid_dist",
)


def _check_p(p, fn):
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: `p` must be a real number; got {p!r}.")
    if math.isnan(p) or p < 0:
        raise ValueError(f"{fn}: `p` must be a non-negative number (0, any positive p, or inf); got {p!r}.")
    return float(p)


def cdist(
    x1: ArrayLike, x2: ArrayLike, p: float = 2.0, compute_mode: str = "use_mm_for_euclid_dist_if_necessary"
) -> jax.Array:
    """``torch.cdist``: ``out[..., i, j] = ||x1[..., i, :] - x2[..., j, :]||_p``.

    Any ``p >= 0``: ``p = 0`` counts unequal coordinates, ``p = inf`` is the
    largest absolute difference. Batch dims broadcast. ``compute_mode`` is
    accepted and checked, but every mode computes ``p = 2`` the same way: one
    matrix product of centred data with an exact diagonal, which is more
    accurate than PyTorch's matrix-product path (see ``jaxloss.cdist``).
    Gradients are 0 where two points coincide (as PyTorch).

    Args:
      x1: ``(..., P, M)``.
      x2: ``(..., R, M)``.
      p: the order.
      compute_mode: one of PyTorch's three strings.

    Returns:
      ``(..., P, R)`` distances.

    Examples:
      >>> import jax.numpy as jnp
      >>> cdist(jnp.array([[0.0, 0.0, 2.0]]), jnp.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]), p=0)
      Array([[1., 2.]], dtype=float32)

    PyTorch: torch.cdist
    """
    p = _check_p(p, "cdist")
    _checks.check_option(compute_mode, "compute_mode", _CDIST_MODES, "cdist")
    if np.ndim(x1) >= 1 and np.ndim(x2) >= 1 and np.shape(x1)[-1] != np.shape(x2)[-1]:
        raise ValueError(
            f"cdist: `x1` and `x2` must have the same number of features (last dim); got "
            f"shapes {tuple(np.shape(x1))} and {tuple(np.shape(x2))}."
        )
    return minkowski_cdist(x1, x2, p, fn="cdist")


def pdist(input: ArrayLike, p: float = 2) -> jax.Array:
    """``torch.pdist``: distances between the rows of a 2-D input, ``i < j`` in row-major order.

    Args:
      input: ``(N, M)`` rows.
      p: the order, ``>= 0`` (0, positive or inf).

    Returns:
      ``(N (N - 1) / 2,)`` distances.

    Examples:
      >>> import jax.numpy as jnp
      >>> pdist(jnp.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]))
      Array([ 5., 10.,  5.], dtype=float32)

    PyTorch: torch.pdist
    """
    p = _check_p(p, "pdist")
    _checks.check_ndim(input, "input", "pdist", ndim=2)
    full = minkowski_cdist(input, None, p, fn="pdist")
    rows, cols = np.triu_indices(full.shape[0], 1)
    return full[rows, cols]


def pairwise_distance(
    x1: ArrayLike, x2: ArrayLike, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False
) -> jax.Array:
    """``torch.nn.functional.pairwise_distance``: ``||x1 - x2 + eps||_p`` over the last dim.

    PyTorch adds ``eps`` to the difference (not to the norm), so two equal
    rows are at distance ``eps * M^(1/p)``; any real ``p`` (0, negative, inf)
    is the vector norm of that order. Inputs broadcast; the norm is over the
    last dim of the broadcast shape.

    Args:
      x1: ``(..., M)`` rows.
      x2: ``(..., M)`` rows, broadcastable with ``x1``.
      p: the order of the norm (any real number or inf).
      eps: added to the difference ``x1 - x2``.
      keepdim: keep the last dim as size 1.

    Returns:
      ``(...,)`` distances.

    Examples:
      >>> import jax.numpy as jnp
      >>> pairwise_distance(jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0]]), eps=0.0)
      Array([5.], dtype=float32)

    PyTorch: torch.nn.functional.pairwise_distance
    """
    _checks.broadcast_shapes(x1, x2, ("x1", "x2"), "pairwise_distance")
    diff = jnp.asarray(x1) - jnp.asarray(x2)
    if diff.ndim == 0:
        raise ValueError("pairwise_distance: `x1` and `x2` must have at least 1 dimension; got scalars.")
    return _norms.vector_norm(diff + eps, ord=p, axis=-1, keepdims=keepdim)


def cosine_similarity(x1: ArrayLike, x2: ArrayLike, dim: int = 1, eps: float = 1e-8) -> jax.Array:
    """``torch.nn.functional.cosine_similarity`` with PyTorch 2.x's exact ``eps`` rule.

    ``sum((x1 / max(|x1|, eps)) * (x2 / max(|x2|, eps)))`` over ``dim``: each
    norm is clamped at ``eps`` separately (not their product). As in PyTorch
    the clamp acts on the value only; the gradient flows through the unclamped
    norm (0 at a zero vector), so it matches PyTorch's, and it is finite.

    Scale: norms are taken of each vector times a power of two, so the value
    is the same for vectors scaled by any factor that keeps their norms at
    least ``eps`` (up to ``1e30`` in float32 and ``1e300`` in float64, with
    finite gradients); below ``eps`` it follows PyTorch's clamp (the
    similarity shrinks towards 0), as ``torch.nn.functional.cosine_similarity``.

    Args:
      x1: array.
      x2: array broadcastable with ``x1``.
      dim: the vector dim.
      eps: lower bound of each norm.

    Returns:
      The similarities, with ``dim`` reduced.

    Examples:
      >>> import jax.numpy as jnp
      >>> cosine_similarity(jnp.array([[1.0, 0.0], [0.0, 0.0]]), jnp.array([[1.0, 1.0], [1.0, 1.0]]))
      Array([0.70710677, 0.        ], dtype=float32)

    PyTorch: torch.nn.functional.cosine_similarity
    """
    shape = _checks.broadcast_shapes(x1, x2, ("x1", "x2"), "cosine_similarity")
    a, b, out_dtype = _numerics.as_float(x1, x2)
    a, b = jnp.broadcast_to(a, shape), jnp.broadcast_to(b, shape)
    if not shape:  # PyTorch: a 0-d tensor is one element along dim 0 / -1
        _common.zero_d_dim(a, dim, "dim", "cosine_similarity")
        return torch_cosine_similarity(a[None], b[None], 0, eps).astype(out_dtype)
    axis = _checks.check_axis(dim, len(shape), "dim", "cosine_similarity")[0]
    return torch_cosine_similarity(a, b, axis, eps).astype(out_dtype)


def binary_hamming_distance(
    preds,
    target,
    threshold: float = 0.5,
    multidim_average: str = "global",
    ignore_index=None,
    validate_args: bool = True,
):
    """torchmetrics' ``binary_hamming_distance``: the fraction of wrong binary labels.

    Float ``preds`` outside ``[0, 1]`` are treated as logits (sigmoid), then
    ``preds > threshold``. Positions where ``target == ignore_index`` are left
    out. ``"global"`` averages over everything (a scalar); ``"samplewise"``
    over all dims but the first (shape ``(N,)``). As torchmetrics, a sample
    with nothing left to count has distance 1.

    Args:
      preds: ``(N, ...)`` predictions: 0/1 integers or booleans, probabilities,
        or logits (floats outside ``[0, 1]``).
      target: ``(N, ...)`` 0/1 targets.
      threshold: probability above which a prediction is 1.
      multidim_average: ``"global"`` or ``"samplewise"``.
      ignore_index: a target value left out of the count (None: none).
      validate_args: check the arguments (torchmetrics' option).

    Returns:
      A scalar (``"global"``) or ``(N,)`` distances (``"samplewise"``).

    Examples:
      >>> import jax.numpy as jnp
      >>> b = jnp.array([[0, 0, 1], [0, 1, 0]])
      >>> c = jnp.array([[1, 0, 1], [0, 1, 0]])
      >>> binary_hamming_distance(b, c, multidim_average="samplewise")
      Array([0.33333334, 0.        ], dtype=float32)

    torchmetrics: torchmetrics.functional.classification.binary_hamming_distance
    """
    fn = "binary_hamming_distance"
    _checks.check_option(multidim_average, "multidim_average", ("global", "samplewise"), fn)
    if validate_args:
        _checks.check_number(threshold, "threshold", fn, low=0.0, high=1.0)
        if ignore_index is not None and not isinstance(ignore_index, (int, np.integer)):
            raise ValueError(f"{fn}: `ignore_index` must be an int or None; got {ignore_index!r}.")
        _checks.check_same_shape(preds, target, ("preds", "target"), fn)
        if multidim_average == "samplewise" and jnp.ndim(preds) < 2:
            raise ValueError(
                f"{fn}: multidim_average='samplewise' needs inputs with at least 2 dims; "
                f"got shape {jnp.shape(preds)}."
            )
    preds, target = jnp.asarray(preds), jnp.asarray(target)
    if jnp.issubdtype(preds.dtype, jnp.floating):
        p = preds.astype(jnp.float32) if _numerics.is_low_precision(preds.dtype) else preds
        in_range = jnp.all((p >= 0) & (p <= 1))
        p = jnp.where(in_range, p, jax.nn.sigmoid(p))
        preds = p > threshold
    # not reshape(n, -1): it cannot infer -1 for an empty batch (n = 0)
    preds, target = (
        a.reshape(a.shape[0], math.prod(a.shape[1:])) if a.ndim else a.reshape(1, 1) for a in (preds, target)
    )
    valid = (target == 0) | (target == 1)
    if ignore_index is not None:
        valid = valid & (target != ignore_index)
    wrong = valid & (preds.astype(target.dtype) != target)
    axes = (0, 1) if multidim_average == "global" else (1,)
    dtype = _numerics.default_float_dtype()
    num = jnp.sum(wrong, axis=axes).astype(dtype)
    den = jnp.sum(valid, axis=axes).astype(dtype)
    return _numerics.safe_divide(num, den, 1.0)
