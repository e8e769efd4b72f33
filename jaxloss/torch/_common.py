"""Shared helpers of the PyTorch face: reduction strings and dtype arguments."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .. import _checks, _reductions

TORCH_REDUCTIONS = ("none", "mean", "sum")


class TargetOutOfBoundsError(ValueError, IndexError):
    """A class index outside ``[0, C)``: jaxloss's ``ValueError`` and PyTorch's ``IndexError``.

    ``torch.nn.functional.cross_entropy`` and ``nll_loss`` raise ``IndexError("Target 5 is out
    of bounds.")``; code ported from PyTorch that catches ``IndexError`` keeps working, and
    code that catches jaxloss's ``ValueError`` too.
    """


def legacy_reduction(size_average, reduce, reduction: str) -> str:
    """PyTorch's ``_Reduction.legacy_get_string``: ``size_average``/``reduce`` override."""
    if size_average is None and reduce is None:
        return reduction
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if not reduce:
        return "none"
    return "mean" if size_average else "sum"


def apply_reduction(values, reduction: str, fn: str, allowed=TORCH_REDUCTIONS, **kwargs):
    """Checks ``reduction`` against PyTorch's options and reduces."""
    _checks.check_reduction(reduction, fn, allowed)
    return _reductions.reduce(values, reduction, **kwargs)


def cast(x, dtype):
    """``x.to(dtype)`` for PyTorch's ``dtype=`` keyword (None keeps ``x``)."""
    x = jnp.asarray(x)
    return x if dtype is None else x.astype(dtype)


def zero_d_dim(x, dim, name: str, fn: str):
    """PyTorch's reading of ``dim`` on a 0-d tensor: one element along dim ``0`` / ``-1``.

    Returns ``dim`` unchanged for an array with dimensions or ``dim=None``; for a 0-d
    array checks that ``dim`` names only ``0`` or ``-1`` (once) and returns None, so
    the reduction runs over the single element.
    """
    if dim is None or jnp.ndim(x) != 0:
        return dim
    dims = (dim,) if isinstance(dim, (int, np.integer)) and not isinstance(dim, bool) else tuple(dim)
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d not in (0, -1):
            raise ValueError(
                f"{fn}: `{name}`={dim!r} is out of range for a 0-d array (PyTorch allows 0 and -1 only)."
            )
    if len(dims) > 1:
        raise ValueError(f"{fn}: `{name}` names the only dimension of a 0-d array twice; got {dim!r}.")
    return None
