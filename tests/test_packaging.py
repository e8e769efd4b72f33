"""Packaging and documentation invariants: README commands, CI script, pins, the formulas example."""

from __future__ import annotations

import ast
import re
import runpy
import sys
from pathlib import Path

import pytest

import jaxloss

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)


def test_readme_opens_with_two_commands():
    commands = _readme_commands()
    assert len(commands) >= 2
    demo, tests = commands[0], commands[1]
    assert "\n" not in demo and "\n" not in tests
    assert "pip install" in demo and "examples/metric_learning_digits.py" in demo
    assert "pip install" in tests and '".[test]"' in tests and "pytest" in tests
    # nothing but the title and one line of prose before the first command
    head = (ROOT / "README.md").read_text().split("```bash")[0]
    assert len([ln for ln in head.splitlines() if ln.strip()]) <= 4


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert _readme_commands()[1] in ci


def test_torch_is_pinned_to_the_cpu_build_in_the_test_extra():
    text = (ROOT / "pyproject.toml").read_text()
    test_extra = text.split("test = [", 1)[1].split("]", 1)[0]
    assert '"torch==2.13.0"' in test_extra


def test_version_and_typed_marker():
    # PEP 440 release or development release, the newest section of CHANGELOG.md
    assert re.fullmatch(r"\d+\.\d+\.\d+(\.dev\d+)?", jaxloss.__version__)
    release = jaxloss.__version__.split(".dev")[0]
    newest = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert newest == release
    assert (ROOT / "jaxloss" / "py.typed").exists()


@pytest.mark.slow
def test_loss_formulas_example_prints_the_hand_computed_numbers(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["loss_formulas.py"])
    runpy.run_path(str(ROOT / "examples" / "loss_formulas.py"), run_name="__main__")
    out = capsys.readouterr().out
    for expected in (
        "2.8284",  # nuclear norm of the residual
        "[[1.7321 0.     1.7321 0.     1.7321]",  # all-pairs Euclidean distances
        "0.3466",  # KL(P||Q) = ln 2 / 2 with a zero probability
        "[0.3333 0.    ]",  # Hamming, samplewise
        "[[0.3333 0.6667]]",  # Hamming, all pairs
        "[[1. 2.]]",  # torch.cdist(p=0)
    ):
        assert expected in out, (expected, out)
    # every line that states a number prints the same number twice (jaxloss's, then by hand)
    lines = [ln for ln in out.splitlines() if "(expected: " in ln and "mined" not in ln]
    assert len(lines) >= 18


def _python_blocks():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)\n```", text, flags=re.S)


@pytest.mark.slow
def test_readme_quickstart_trains_with_flax():
    import jax.numpy as jnp
    import numpy as np

    namespace: dict = {}
    exec(_python_blocks()[0], namespace)  # noqa: S102 - the README's own code
    model, optimizer, step = namespace["model"], namespace["optimizer"], namespace["train_step"]
    r = np.random.default_rng(0)
    images = jnp.asarray(r.normal(size=(32, 64)), jnp.float32)
    labels = jnp.asarray(np.repeat(np.arange(8), 4))
    losses = [float(step(model, optimizer, images, labels)) for _ in range(30)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


@pytest.mark.slow
def test_readme_port_and_checker_snippets_run():
    import jax.numpy as jnp
    import numpy as np

    r = np.random.default_rng(1)
    namespace = {
        "logits": jnp.asarray(r.normal(size=(6, 4)), jnp.float32),
        "targets": jnp.array([0, 1, 2, 3, -100, 1]),
        "w": jnp.array([1.0, 2.0, 0.5, 1.0]),
        "queries": jnp.ones((3, 5)),
        "database": jnp.zeros((4, 5)),
    }
    exec(_python_blocks()[1], namespace)  # noqa: S102
    assert namespace["dist"].shape == (3, 4) and np.isfinite(float(namespace["loss"]))
    exec(_python_blocks()[2], {})  # noqa: S102 - asserts report.ok itself


def test_star_import_leaves_a_previously_imported_torch_untouched():
    import torch

    namespace = {"torch": torch}
    exec("from jaxloss import *", namespace)  # noqa: S102
    assert namespace["torch"] is torch
    assert "cdist" in namespace and "testing" in namespace
    assert "torch" not in jaxloss.__all__
    import jaxloss.torch as jt  # the subpackage stays importable

    assert jaxloss.torch is jt and callable(jt.cdist)


def test_license_file_is_the_apache_2_text_pyproject_declares():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text.splitlines()) > 150


def test_documentation_url_points_to_the_docs():
    import tomllib

    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    target = urls["Documentation"]
    assert target.startswith("https://") or (ROOT / target).is_file(), target


def test_ci_runs_the_quickstart_at_the_flax_floor_of_the_extras():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    floors = {dep for name in ("test", "examples") for dep in extras[name] if dep.startswith("flax")}
    assert len(floors) == 1 and next(iter(floors)).startswith("flax>="), floors
    ci = (ROOT / ".ci" / "run").read_text()
    assert "test_readme_quickstart_trains_with_flax" in ci.split("minimum versions", 1)[1]


# ------------------------------------------------------------------ module boundaries

PACKAGE = ROOT / "jaxloss"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, tuple[Path, ast.Module]]:
    return {_module_name(p): (p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))}


SOURCES = _sources()


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (``from ..x import y`` -> ``jaxloss.x``)."""
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imports(module: str, path: Path, tree: ast.Module):
    """``(line, imported jaxloss module, names taken from it)`` for every import, lazy ones included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "jaxloss":
                    yield node.lineno, alias.name, alias.asname, ()
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, path, node)
            if source.split(".")[0] != "jaxloss":
                continue
            for alias in node.names:
                if f"{source}.{alias.name}" in SOURCES:  # `from .. import _checks`: a module
                    yield node.lineno, f"{source}.{alias.name}", alias.asname or alias.name, ()
                else:
                    yield node.lineno, source, None, (alias.name,)


def test_no_module_uses_another_modules_private_names():
    """Shared helpers get a plain name in the module that owns them; ``from .x import _y`` and
    ``x._y`` across modules are not allowed (private module names themselves are fine)."""
    bad = []
    for module, (path, tree) in SOURCES.items():
        bound = {}  # local name -> jaxloss module it refers to
        for line, source, local, names in _imports(module, path, tree):
            if local is not None and source != module:
                bound[local] = source
            bad += [
                f"{module}:{line} imports {source}.{n}" for n in names if _private(n) and source != module
            ]
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in bound
                and _private(node.attr)
                and f"{bound[node.value.id]}.{node.attr}" not in SOURCES
            ):
                bad.append(f"{module}:{node.lineno} uses {bound[node.value.id]}.{node.attr}")
    assert not bad, "\n".join(bad)


def test_import_graph_has_no_cycle():
    """Modules form layers: each imports only modules below it (lazy imports count too)."""
    graph = {
        module: {source for _, source, _, _ in _imports(module, path, tree) if source != module}
        for module, (path, tree) in SOURCES.items()
    }
    # importing `jaxloss.x.y` runs the packages above it first; an edge into `jaxloss` itself
    # (`from .. import name`) is an edge into the package's face
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
