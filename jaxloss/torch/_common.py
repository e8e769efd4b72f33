"""Shared helpers of the PyTorch face: reduction strings and dtype arguments."""

from __future__ import annotations

import jax.numpy as jnp

from .. import _checks, _reductions

TORCH_REDUCTIONS = ("none", "mean", "sum")


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
