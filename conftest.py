"""Test session setup: x64 on, PyTorch required, jit/eager variants, hypothesis profiles.

* x64 is enabled for the whole session; float32 cases build float32 inputs
  explicitly. Doctests run with x64 off so their printed dtypes are float32.
* PyTorch is the reference of the suite: if it cannot be imported the session
  fails (set JAXLOSS_ALLOW_NO_TORCH=1 to run the torch-free tests locally).
* ``variant`` parametrises a test over ``jax.jit`` and eager execution (the
  equivalent of ``chex.variants(with_jit=True, without_jit=True)``, which
  ``tests/test_chex_variants.py`` uses directly).
* The fast loop (``pytest -m "not slow"``) runs every test function that is
  not marked ``slow`` once: the first of its parameter sets that is not
  marked ``slow`` (jit, not eager); the other parameter sets and the
  docstring examples (``pytest jaxloss`` runs those alone) are marked ``slow``
  here, and the whole suite (``pytest``, CI) runs them all. Every reference
  comparison stays in the fast loop; the heavier edge-case, property and
  memory tests of a function whose reference comparison is in the fast loop
  are marked ``slow`` where they are defined. A module that sets
  ``FAST_LOOP_RUNS_EVERY_CASE = True`` keeps all its cheap cases in the fast
  loop (the bad-input checks, the documentation checks).
"""

from __future__ import annotations

import functools
import os

import jax
import pytest
from hypothesis import HealthCheck, settings

jax.config.update("jax_enable_x64", True)

# A persistent compilation cache (.jax_cache/, git-ignored): a second run of the suite reuses the
# executables of every function it does not change. JAXLOSS_TEST_CACHE=0 turns it off; a fresh
# clone (CI) starts with an empty cache.
if os.environ.get("JAXLOSS_TEST_CACHE", "1") != "0":
    jax.config.update("jax_compilation_cache_dir", os.path.join(os.path.dirname(__file__), ".jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

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


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Marks ``slow`` the docstring examples and every parameter set of a test function but its
    first fast one (see above)."""
    from _pytest.doctest import DoctestItem

    seen = set()
    for item in items:
        if isinstance(item, DoctestItem):
            item.add_marker(pytest.mark.slow)
            continue
        if (
            getattr(item, "callspec", None) is None
            or item.get_closest_marker("slow")
            or getattr(item.module, "FAST_LOOP_RUNS_EVERY_CASE", False)
        ):
            continue
        function = item.nodeid.split("[")[0]
        if function in seen:
            item.add_marker(pytest.mark.slow)
        seen.add(function)


@pytest.fixture(params=["jit", pytest.param("eager", marks=pytest.mark.slow)])
def variant(request):
    """``variant(fn, **static)``: ``jax.jit`` (static keyword arguments) or plain eager."""

    def wrap(fn, **static):
        bound = functools.partial(fn, **static) if static else fn
        if request.param == "jit":
            return jax.jit(bound)

        def eager(*args, **kwargs):
            return bound(*args, **kwargs)

        eager.eager = True  # tests.helpers.assert_matches_torch runs it as it is
        return eager

    wrap.name = request.param
    return wrap
