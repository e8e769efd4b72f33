"""Shared test helpers: reference comparisons with PyTorch, random inputs, tolerances."""

from __future__ import annotations

import numpy as np

from jaxloss.testing import compare_with_torch

DTYPES = ("float32", "float64")


def assert_matches_torch(jax_fn, torch_fn, *inputs, grad=True, dtypes=DTYPES, **kwargs):
    """Fails with the comparison table unless values (and gradients) match PyTorch."""
    report = compare_with_torch(jax_fn, torch_fn, *inputs, grad=grad, dtypes=dtypes, **kwargs)
    assert report.ok, "\n" + repr(report)
    return report


def rng(seed=0):
    return np.random.default_rng(seed)


def tol(dtype):
    """(rtol, atol) for comparing a jaxloss result in ``dtype`` with an exact reference."""
    return {
        "float16": (1e-2, 1e-2),
        "bfloat16": (5e-2, 5e-2),
        "float32": (1e-5, 1e-5),
        "float64": (1e-12, 1e-12),
    }[np.dtype(dtype).name]


def assert_close(actual, expected, dtype="float64"):
    """``chex.assert_trees_all_close`` at the tolerance of ``dtype`` (pytrees allowed)."""
    import chex  # noqa: PLC0415

    rtol, atol = tol(dtype)
    chex.assert_trees_all_close(actual, expected, rtol=rtol, atol=atol)
