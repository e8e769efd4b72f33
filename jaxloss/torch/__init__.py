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
    values = _regression.huber_loss(input, target, delta)
    # PyTorch's weighted huber_loss takes the plain mean of w * v (not sum(w v) / sum(w)).
    return _weighted_residual(values, input, weight, reduction, "huber_loss", False)


# --------------------------------------------------------------------------- distances (issue 3)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from .. import _checks, _distances, _numerics  # noqa: E402

__all__ += ["binary_hamming_distance", "cdist", "cosine_similarity", "pairwise_distance", "pdist"]

_CDIST_MODES = (
    "use_mm_for_euclid_dist_if_necessary",
    "use_mm_for_euclid_dist",
    "donot_use_mm_for_euclid_dist",
)


def _check_p(p, fn):
    import math  # noqa: PLC0415

    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: `p` must be a real number; got {p!r}.")
    if math.isnan(p) or p < 0:
        raise ValueError(
            f"{fn}: `p` must be a non-negative number (0, any positive p, or inf); got {p!r}."
        )
    return float(p)


def cdist(x1, x2, p: float = 2.0, compute_mode: str = "use_mm_for_euclid_dist_if_necessary"):
    """``torch.cdist``: ``out[..., i, j] = ||x1[..., i, :] - x2[..., j, :]||_p``.

    Any ``p >= 0``: ``p = 0`` counts unequal coordinates, ``p = inf`` is the
    largest absolute difference. Batch dims broadcast. ``compute_mode`` is
    accepted and checked, but every mode computes ``p = 2`` the same way: one
    matrix product of centred data with an exact diagonal, which is more
    accurate than PyTorch's matrix-product path (see :func:`jaxloss.cdist`).
    Gradients are 0 where two points coincide (as PyTorch).

    Args:
      x1: ``(..., P, M)``. x2: ``(..., R, M)``. p: the order. compute_mode:
      one of PyTorch's three strings.

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
    return _distances.minkowski_cdist(x1, x2, p, fn="cdist")


def pdist(input, p: float = 2):
    """``torch.pdist``: distances between the rows of a 2-D input, ``i < j`` in row-major order.

    >>> import jax.numpy as jnp
    >>> pdist(jnp.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]))
    Array([ 5., 10.,  5.], dtype=float32)

    PyTorch: torch.pdist
    """
    p = _check_p(p, "pdist")
    _checks.check_ndim(input, "input", "pdist", ndim=2)
    full = _distances.minkowski_cdist(input, input, p, fn="pdist")
    rows, cols = np.triu_indices(full.shape[0], 1)
    return full[rows, cols]


def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False):
    """``torch.nn.functional.pairwise_distance``: ``||x1 - x2 + eps||_p`` over the last dim.

    PyTorch adds ``eps`` to the difference (not to the norm), so two equal
    rows are at distance ``eps * M^(1/p)``; any real ``p`` (0, negative, inf)
    is the vector norm of that order. Inputs broadcast; the norm is over the
    last dim of the broadcast shape.

    >>> import jax.numpy as jnp
    >>> pairwise_distance(jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0]]), eps=0.0)
    Array([5.], dtype=float32)

    PyTorch: torch.nn.functional.pairwise_distance
    """
    _checks.broadcast_shapes(x1, x2, ("x1", "x2"), "pairwise_distance")
    diff = jnp.asarray(x1) - jnp.asarray(x2)
    if diff.ndim == 0:
        raise ValueError(
            "pairwise_distance: `x1` and `x2` must have at least 1 dimension; got scalars."
        )
    return _norms.vector_norm(diff + eps, ord=p, axis=-1, keepdims=keepdim)


def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8):
    """``torch.nn.functional.cosine_similarity`` with PyTorch 2.x's exact ``eps`` rule.

    ``sum((x1 / max(|x1|, eps)) * (x2 / max(|x2|, eps)))`` over ``dim``: each
    norm is clamped at ``eps`` separately (not their product). As in PyTorch
    the clamp acts on the value only; the gradient flows through the unclamped
    norm (0 at a zero vector), so it matches PyTorch's, and it is finite.

    >>> import jax.numpy as jnp
    >>> cosine_similarity(jnp.array([[1.0, 0.0], [0.0, 0.0]]), jnp.array([[1.0, 1.0], [1.0, 1.0]]))
    Array([0.70710677, 0.        ], dtype=float32)

    PyTorch: torch.nn.functional.cosine_similarity
    """
    shape = _checks.broadcast_shapes(x1, x2, ("x1", "x2"), "cosine_similarity")
    a, b, out_dtype = _numerics.as_float(x1, x2)
    a, b = jnp.broadcast_to(a, shape), jnp.broadcast_to(b, shape)
    axis = _checks.check_axis(dim, len(shape), "dim", "cosine_similarity")[0]
    return _distances.torch_cosine_similarity(a, b, axis, eps).astype(out_dtype)


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
    preds = preds.reshape(preds.shape[0], -1) if preds.ndim else preds.reshape(1, 1)
    target = target.reshape(target.shape[0], -1) if target.ndim else target.reshape(1, 1)
    valid = (target == 0) | (target == 1)
    if ignore_index is not None:
        valid = valid & (target != ignore_index)
    wrong = valid & (preds.astype(target.dtype) != target)
    axes = (0, 1) if multidim_average == "global" else (1,)
    dtype = _numerics.default_float_dtype()
    num = jnp.sum(wrong, axis=axes).astype(dtype)
    den = jnp.sum(valid, axis=axes).astype(dtype)
    return _numerics.safe_divide(num, den, 1.0)


# --------------------------------------------------------------------------- divergences and cross-entropy (issue 4)


# --------------------------------------------------------------------------- metric learning (issue 5)
