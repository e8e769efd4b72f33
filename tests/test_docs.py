"""Documentation checks.

* Every public name (``jaxloss.__all__``, ``jaxloss.torch.__all__``,
  ``jaxloss.torch.linalg.__all__``, ``jaxloss.testing.__all__``) has a
  docstring with an ``Examples:`` section of doctests (``>>>``), which the
  suite runs (``--doctest-modules``), and an entry ``::: <full name>`` in a page
  under ``docs/api/``.
* The docstring mkdocstrings renders (read statically from the source by
  griffe) is the one ``help()`` shows (no docstring assembled at import time),
  and its ``Args:`` section documents every parameter, one entry each.
* The porting page lists every ``jaxloss.torch`` function.
* ``python -m mkdocs build --strict`` succeeds without a warning, and the site
  has an entry for every public name.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import jaxloss
import jaxloss.testing
import jaxloss.torch
import jaxloss.torch.linalg

# cheap text checks: every case stays in the fast loop (conftest.py)
FAST_LOOP_RUNS_EVERY_CASE = True

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MODULES = (jaxloss, jaxloss.torch, jaxloss.torch.linalg, jaxloss.testing)


def _public():
    names = {}
    for module in MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.ismodule(obj):
                # jaxloss.testing, jaxloss.torch, jaxloss.torch.linalg: their members are listed.
                assert obj in MODULES, f"{module.__name__}.{name} is a module without documentation checks"
                continue
            names[f"{module.__name__}.{name}"] = obj
    return names


PUBLIC = _public()
DIRECTIVE = re.compile(r"^::: *([\w.]+) *$", re.MULTILINE)
EXAMPLES = re.compile(r"^Examples?:[ \t]*\n(?:[ \t]*\n)*[ \t]+>>> ", re.MULTILINE)


def _api_entries() -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for page in sorted((DOCS / "api").glob("*.md")):
        for name in DIRECTIVE.findall(page.read_text()):
            entries.setdefault(name, []).append(page.name)
    return entries


def test_every_public_list_is_checked():
    assert all(module.__all__ for module in MODULES)
    assert {
        "jaxloss.cdist",
        "jaxloss.torch.cdist",
        "jaxloss.torch.linalg.norm",
        "jaxloss.testing.compare_with_torch",
    } <= set(PUBLIC)


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_name_has_docstring_with_examples(name):
    doc = inspect.getdoc(PUBLIC[name])
    assert doc and doc.strip(), f"{name} has no docstring"
    summary = doc.strip().splitlines()[0]
    assert len(summary) > 10, f"{name}: the docstring's first line should be a summary; got {summary!r}"
    assert EXAMPLES.search(doc), f"{name}: the docstring needs an 'Examples:' section with '>>>' doctests"


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_examples_are_collected_as_doctests(name):
    obj = PUBLIC[name]
    module = importlib.import_module(obj.__module__)
    tests = doctest.DocTestFinder().find(module)
    wanted = f"{module.__name__}.{obj.__qualname__}"
    found = [t for t in tests if t.name == wanted and t.examples]
    assert found, f"{name}: pytest --doctest-modules does not find the examples of {wanted}"


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_public_name_is_in_the_api_reference(name):
    pages = _api_entries().get(name)
    assert pages, f"{name} is missing from docs/api/*.md: add a line '::: {name}'"
    assert len(pages) == 1, f"{name} is listed more than once: {pages}"


def test_api_reference_lists_only_public_names():
    stale = sorted(set(_api_entries()) - set(PUBLIC))
    assert not stale, f"docs/api/ documents names that are not public: {stale}"


def test_rendered_docstrings_are_the_runtime_docstrings():
    griffe = pytest.importorskip("griffe")
    package = griffe.load("jaxloss", search_paths=[str(ROOT)], resolve_aliases=False)
    mismatched = []
    for name, obj in PUBLIC.items():
        static = package[name.removeprefix("jaxloss.")].docstring
        if static is None or static.value.strip() != inspect.cleandoc(obj.__doc__).strip():
            mismatched.append(name)
    assert not mismatched, f"docstrings changed at import time (mkdocs shows the source text): {mismatched}"


def test_every_parameter_is_documented():
    griffe = pytest.importorskip("griffe")
    package = griffe.load("jaxloss", search_paths=[str(ROOT)], resolve_aliases=False)
    problems = []
    for name, obj in PUBLIC.items():
        if inspect.isclass(obj):
            continue
        static = package[name.removeprefix("jaxloss.")].docstring
        sections = static.parse("google", warn_missing_types=False, warn_unknown_params=False)
        documented = {
            param.name.lstrip("*")
            for section in sections
            if section.kind.value == "parameters"
            for param in section.value
        }
        params = set(inspect.signature(obj).parameters)
        if params - documented or documented - params:
            problems.append(
                f"{name}: undocumented {sorted(params - documented)}, "
                f"not parameters {sorted(documented - params)}"
            )
    assert not problems, "Args sections (one 'name: description' line per parameter):\n" + "\n".join(problems)


def test_porting_page_maps_every_torch_function():
    text = (DOCS / "porting.md").read_text()
    missing = [
        name
        for name in PUBLIC
        if name.startswith("jaxloss.torch.") and not re.search(rf"`{re.escape(name)}\b", text)
    ]
    assert not missing, f"docs/porting.md does not map: {missing}"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    for needed in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python"):
        try:
            importlib.import_module(needed)
        except ImportError:
            pytest.fail(f"{needed} is not installed: pip install -e '.[test]' (mkdocs, mkdocstrings[python])")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return out, result


@pytest.mark.slow  # a subprocess building the whole site
def test_mkdocs_strict_build_passes(site):
    _, result = site
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert not warnings, "mkdocs warnings:\n" + "\n".join(warnings)


@pytest.mark.slow
def test_site_has_an_entry_for_every_public_name(site):
    out, result = site
    assert result.returncode == 0
    html = "".join(p.read_text() for p in (out / "api").rglob("*.html"))
    missing = [name for name in PUBLIC if f'id="{name}"' not in html]
    assert not missing, f"the built API reference has no entry for {missing}"
