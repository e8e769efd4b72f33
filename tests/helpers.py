"""Shared test helpers: reference comparisons with PyTorch, random inputs, tolerances, gradients."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np

from jaxloss.testing import compare_with_torch, default_tolerance
from tests.registry import float_leaves

DTYPES = ("float32", "float64")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code: str, *, devices: int | None = None, timeout: float = 300) -> str:
    """Runs ``code`` in a fresh CPU-only Python (``devices`` forced CPU devices) and returns its stdout.

    The repository is on the child's path; a non-zero exit fails the test with
    the child's output, and ``timeout`` bounds it.
    """
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    if devices is not None:
        env["XLA_FLAGS"] = env.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def assert_matches_torch(jax_fn, torch_fn, *inputs, grad=True, dtypes=DTYPES, jit=True, **kwargs):
    """Fails with the comparison table unless values (and gradients) match PyTorch.

    ``jax_fn`` runs under ``jax.jit`` (one compilation per dtype instead of one per
    primitive) unless ``jit=False`` or it is the eager side of the ``variant`` fixture,
    which is run as given.
    """
    if jit and not getattr(jax_fn, "eager", False) and not hasattr(jax_fn, "lower"):
        jax_fn = jax.jit(jax_fn)
    report = compare_with_torch(jax_fn, torch_fn, *inputs, grad=grad, dtypes=dtypes, **kwargs)
    assert report.ok, "\n" + repr(report)
    return report


def assert_matches_torch_eager(jax_fn, torch_fn, *inputs, **kwargs):
    """``assert_matches_torch`` with ``jax_fn`` run eagerly: faster for small functions checked
    over many shapes, whose per-primitive compilations the cases share (one jit compilation per
    case costs more); tests/test_properties.py checks jit == eager for every function."""
    return assert_matches_torch(jax_fn, torch_fn, *inputs, jit=False, **kwargs)


def rng(seed=0):
    return np.random.default_rng(seed)


def tol(dtype):
    """(rtol, atol) for comparing a result in ``dtype`` with a reference: the library's table
    ``jaxloss.testing.TOLERANCES`` (the one ``compare_with_torch`` uses)."""
    return default_tolerance(dtype)


def assert_close(actual, expected, dtype="float64"):
    """``chex.assert_trees_all_close`` at the tolerance of ``dtype`` (pytrees allowed)."""
    import chex  # noqa: PLC0415

    rtol, atol = tol(dtype)
    chex.assert_trees_all_close(actual, expected, rtol=rtol, atol=atol)


def summed_outputs(spec, args, *, cotangent=False, with_outputs=False):
    """``f(*diff_args)``: ``spec.call(*args)`` with the differentiable arguments replaced, summed.

    ``spec`` is a ``tests.registry.Spec``; ``diff_args`` take the places ``spec.diff`` of
    ``args``. The float outputs are summed in float32 or wider (half-precision outputs are
    upcast). With ``cotangent`` each output is first multiplied by the fixed, non-constant
    ``cos(i + k)`` (``i`` the flat index, ``k`` the output's number), so a gradient that is wrong
    by a constant per output still shows. With ``with_outputs`` ``f`` returns
    ``(sum, outputs)``, for ``jax.grad(f, has_aux=True)``.
    """

    def scalar(*diff_args):
        full = list(args)
        for i, a in zip(spec.diff, diff_args, strict=True):
            full[i] = a
        out = spec.call(*full)
        total = 0.0
        for k, o in enumerate(float_leaves(out)):
            o = o.astype(jnp.promote_types(o.dtype, jnp.float32))
            if cotangent:
                o = o * jnp.cos(jnp.arange(o.size, dtype=o.dtype) + k).reshape(o.shape)
            total = total + jnp.sum(o)
        return (total, out) if with_outputs else total

    return scalar


def value_and_grads(spec, args):
    """``(outputs, gradients of the summed float outputs w.r.t. each of spec.diff)``."""
    if not spec.diff:
        return spec.call(*args), ()
    grads, out = jax.grad(
        summed_outputs(spec, args, with_outputs=True), argnums=tuple(range(len(spec.diff))), has_aux=True
    )(*[args[i] for i in spec.diff])
    return out, grads


def sweep(values, fast=1, *, several=False):
    """Parameter values for ``pytest.mark.parametrize`` whose first ``fast`` run in the fast loop.

    The others are marked ``slow``: ``pytest -m "not slow"`` still crosses every other
    parameter with the first ``fast`` values of this one, and the whole suite runs them all.
    ``several=True`` when each value is a tuple for several argument names (``"shape,axis"``).
    """
    import pytest  # noqa: PLC0415

    def slow(v):
        return (
            pytest.param(*v, marks=pytest.mark.slow) if several else pytest.param(v, marks=pytest.mark.slow)
        )

    return [v if i < fast else slow(v) for i, v in enumerate(values)]
