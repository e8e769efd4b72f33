"""The benchmark harness: each side in its own process, peers without the OpenBLAS overrides, one ratio direction."""

from __future__ import annotations

from benchmarks.__main__ import format_table, ratio
from benchmarks._env import describe_process, fallback_core_override, machine_record, process_record
from benchmarks._timing import isolated


def test_peer_process_runs_without_openblas_overrides(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1048576")
    peer = isolated("_env", "environment_probe", peer=True, repeats=2, return_result=True)
    ours = isolated("_env", "environment_probe", peer=False, repeats=2, return_result=True)
    assert peer["result"] == ["", ""]
    assert ours["result"] == ["Haswell", "1048576"]
    assert peer["env"]["openblas_environment"] == {"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None}
    assert peer["env"]["pid"] != ours["env"]["pid"] != process_record()["pid"]
    assert len(peer["times"]) == 2 and peer["min"] <= peer["median"] <= peer["max"]
    forced = isolated(
        "_env",
        "environment_probe",
        peer=True,
        repeats=1,
        return_result=True,
        environment={"OPENBLAS_CORETYPE": "SkylakeX"},
    )
    assert forced["result"] == ["SkylakeX", ""]


def test_records_name_the_cpu_and_each_blas():
    machine = machine_record()
    assert machine["cpu"]["cpu_count"] >= 1 and "jax" in machine["versions"]
    record = {
        "openblas_environment": {"OPENBLAS_CORETYPE": None, "OPENBLAS_L2_SIZE": None},
        "xla": None,
        "blas": [
            {
                "library": "openblas",
                "version": "0.3.15",
                "architecture": "Prescott",
                "threads": 2,
                "where": "faiss_cpu.libs",
            }
        ],
    }
    assert "OpenBLAS 0.3.15 Prescott 2 threads [faiss_cpu.libs]" in describe_process(record)
    assert fallback_core_override(record, "SkylakeX") == {"OPENBLAS_CORETYPE": "SkylakeX"}
    assert fallback_core_override(record, "Prescott") is None


def test_ratio_is_jaxloss_over_peer():
    ours = {"median": 1.0, "min": 0.9, "max": 1.1, "env": None}
    peer = {"median": 4.0, "min": 3.0, "max": 5.0, "env": None}
    assert ratio(ours, peer) == "0.25x"
    table = format_table([{"operation": "op", "shapes": "s", "jaxloss": ours, "peers": {"p": peer}}])
    assert "| jaxloss / peer |" in table and "| 0.25x |" in table and "1.00 s (900.0 ms-1.10 s)" in table


def test_one_ratio_direction_in_every_published_text():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    texts = [root / "README.md", root / "benchmarks" / "RESULTS.md", root / "docs" / "benchmarks.md"]
    texts += sorted((root / "benchmarks").glob("*.py"))
    for path in texts:
        text = path.read_text()
        for reversed_ratio in (
            "peer / jaxloss",
            "peer/jaxloss",
            "peer time / jaxloss",
            "above 1 means jaxloss",
        ):
            assert reversed_ratio not in text, (path.name, reversed_ratio)
    readme = (root / "README.md").read_text()
    assert "jaxloss time / peer time" in readme and "<!-- benchmarks:begin -->" in readme
    assert "jaxloss time / peer time" in (root / "docs" / "benchmarks.md").read_text()


def test_every_example_is_listed_in_readme_and_docs_index():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme, index = (root / "README.md").read_text(), (root / "docs" / "index.md").read_text()
    for example in sorted((root / "examples").glob("*.py")):
        assert f"examples/{example.name}" in readme, example.name
        assert f"`{example.name}`" in index, example.name


def test_readme_table_is_replaced_between_its_markers(tmp_path):
    from benchmarks.__main__ import README_BEGIN, README_END, update_readme

    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{README_BEGIN}\nold table\n{README_END}\nafter\n")
    update_readme("| new | table |", readme)
    assert readme.read_text() == f"intro\n{README_BEGIN}\n| new | table |\n{README_END}\nafter\n"
