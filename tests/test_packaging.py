"""Packaging and documentation invariants: README commands, CI script, pins, the seed demo."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

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
    assert "pip install" in demo and "examples/" in demo
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
    assert re.fullmatch(r"\d+\.\d+\.\d+", jaxloss.__version__)
    assert (ROOT / "jaxloss" / "py.typed").exists()


def test_seed_examples_script_runs(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["seed_examples.py"])
    runpy.run_path(str(ROOT / "examples" / "seed_examples.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "2.8284" in out
