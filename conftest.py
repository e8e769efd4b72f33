"""Test session setup: x64 on, PyTorch required, jit/eager variants, hypothesis profiles.

* x64 is enabled for the whole session; float32 cases build float32 inputs
  explicitly. Doctests run with x64 off so their printed dtypes are float32.
* PyTorch is the reference of the suite: if it cannot be imported the session
  fails (set JAXLOSS_ALLOW_NO_TORCH=1 to run the torch-free tests locally).
* ``variant`` parametrises a test over ``jax.jit`` and eager execution (the
  equivalent of ``chex.variants(with_jit=True, without_jit=True)``, which
  ``tests/test_chex_variants.py`` uses directly).
"""

from __future__ import annotations

import functools
import os

import jax
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)

settings.register_profile(
    "ci",
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    if os.environ.get("JAXLOSS_ALLOW_NO_TORCH"):
        return
    try:
        import torch  # noqa: F401
    except ImportError as err:  # pragma: no cover - the point is to fail loudly
        raise pytest.UsageError(
            "PyTorch is the reference of this test suite and is not installed: "
            "pip install -e '.[test]' (torch==2.13.0, CPU build)."
        ) from err


@pytest.fixture(autouse=True)
def _doctest_x64_off(request):
    """Doctests print float32 dtypes: run them with x64 disabled."""
    from _pytest.doctest import DoctestItem

    if isinstance(request.node, DoctestItem):
        with jax.enable_x64(False):
            yield
    else:
        yield


@pytest.fixture(params=["jit", "eager"])
def variant(request):
    """``variant(fn, **static)``: ``jax.jit`` (static keyword arguments) or plain eager."""

    def wrap(fn, **static):
        bound = functools.partial(fn, **static) if static else fn
        return jax.jit(bound) if request.param == "jit" else bound

    wrap.name = request.param
    return wrap
