"""The benchmark harness: each side in its own process, peers without the OpenBLAS overrides, one ratio direction."""

from __future__ import annotations

import os

import pytest

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


# --------------------------------------------------------------------------- instruction-set columns


def test_isa_columns_and_their_limits(monkeypatch):
    from benchmarks import _isa

    avx512 = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl"]
    assert _isa.supported(avx512) == ["avx512", "avx2"] and _isa.supported(["avx2", "fma"]) == ["avx2"]
    assert _isa.supported([]) == [] and _isa.native(["avx2", "fma"]) == "avx2"
    assert _isa.choose("all", avx512) == ["avx512", "avx2"] and _isa.choose("AVX2", avx512) == ["avx2"]
    for bad, message in (("sse", "unknown instruction set"), ("avx512", "cannot run")):
        with pytest.raises(SystemExit, match=message):
            _isa.choose(bad, ["avx2", "fma"])
    # the widest column has no limit; a narrower one limits every library, XLA_FLAGS appended
    assert _isa.environment("avx512", avx512, base={}) == {_isa.ISA_VARIABLE: "avx512"}
    limits = _isa.environment("avx2", avx512, base={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert limits["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2 --xla_cpu_max_isa=AVX2"
    assert limits["FAISS_SIMD_LEVEL"] == "AVX2" and limits["OPENBLAS_CORETYPE"] == "Haswell"
    assert limits["MKL_ENABLE_INSTRUCTIONS"] == "AVX2" and limits["ATEN_CPU_CAPABILITY"] == "avx2"
    assert all("512" in t or t == "X86_V4" for t in limits["NPY_DISABLE_CPU_FEATURES"].split())
    assert _isa.environment("avx2", ["avx2", "fma"], base={}) == {_isa.ISA_VARIABLE: "avx2"}  # native there
    assert _isa.environment(None, avx512) == {}


def test_timed_processes_get_their_column_limits(monkeypatch):
    """Each side's own process runs with its column's limits; a chosen core type is never 'corrected'."""
    from benchmarks import _isa

    monkeypatch.setattr(_isa, "native", lambda flags: "avx512")  # avx2 is the narrower column anywhere
    monkeypatch.setenv(_isa.ISA_VARIABLE, "avx2")
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    for peer in (True, False):
        timing = isolated("_env", "isa_probe", peer=peer, repeats=1, return_result=True)
        assert timing["result"] == ["--xla_cpu_max_isa=AVX2", "AVX2", "Haswell", "AVX2", "avx2"], peer
        assert timing["env"]["isa"] == "avx2"
        assert fallback_core_override(timing["env"], "SkylakeX") is None
        assert "MKL_ENABLE_INSTRUCTIONS=AVX2" in describe_process(timing["env"])


def _fake_rows(scale):
    def timing(seconds):
        return {"median": seconds * scale, "min": seconds * scale, "max": seconds * scale, "env": None}

    return [
        {
            "operation": "knn packed",
            "shapes": "8 x 16",
            "jaxloss": timing(1.0),
            "peers": {"faiss": timing(2.0)},
        },
        {
            "operation": "knn float",
            "shapes": "8 x 4",
            "jaxloss": timing(0.5),
            "peers": {"faiss": timing(0.5)},
        },
    ]


def test_isa_run_writes_one_column_per_isa_and_check_flags_slower_rows(monkeypatch, tmp_path, capsys):
    """The whole command on a fake topic (no process, no timing): tables, data block, --check."""
    import types

    import benchmarks.__main__ as bench
    from benchmarks import _isa

    monkeypatch.setattr(_isa, "supported", lambda flags: ["avx512", "avx2"])
    monkeypatch.setattr(_isa, "native", lambda flags: "avx512")
    monkeypatch.setattr(bench, "discover", lambda only=None: ["bench_fake"])
    scale = {"avx512": 1.0, "avx2": 2.0}
    fake = types.SimpleNamespace(run=lambda quick: _fake_rows(scale[_isa.current()] * factor[0]))
    monkeypatch.setattr(bench.importlib, "import_module", lambda name: fake)
    factor = [1.0]
    out = tmp_path / "RESULTS.md"
    assert bench.main(["--isa", "all", "--output", str(out)]) == 0
    text = out.read_text()
    assert (
        "| operation | shapes | peer | avx512: jaxloss | avx512: peer | avx512: jaxloss / peer | avx2: jaxloss"
        in text
    )
    assert "| knn packed | 8 x 16 | faiss | 1.00 s | 2.00 s | 0.50x | 2.00 s | 4.00 s | 0.50x |" in text
    assert "### avx2: every process's kernels" in text and "--xla_cpu_max_isa=AVX2" in text
    data = bench.load_results(out, "avx512")
    assert data["avx2"][0]["jaxloss"] == 2.0 and data["avx512"][1]["peers"] == {"faiss": 0.5}
    assert bench.main(["--isa", "all", "--check", "--baseline", str(out)]) == 0  # the same times
    factor[0] = 1.2  # every jaxloss and peer time 20 % slower
    assert bench.main(["--isa", "avx2", "--check", "--baseline", str(out)]) == 1
    report = capsys.readouterr().out
    assert (
        "SLOWER [avx2] knn packed (8 x 16): jaxloss 2000.0 -> 2400.0 ms (+20%); peers: faiss +20%" in report
    )
    assert "2 row(s) flagged" in report and out.read_text() == text  # --check leaves RESULTS.md alone
    assert bench.main(["--isa", "all", "--check", "--baseline", str(out), "--threshold", "0.25"]) == 0


def test_check_reads_a_results_file_written_before_the_data_block(tmp_path):
    from benchmarks.__main__ import compare, load_results

    old = tmp_path / "RESULTS.md"
    old.write_text(
        "# Benchmark results\n\n| operation | shapes | jaxloss: median (min-max) | peer | peer: median (min-max) "
        "| jaxloss / peer | peer's process |\n|---|---|---:|---|---:|---:|---|\n"
        "| knn packed | 8 x 16 | 993.4 ms (951.5 ms-995.2 ms) | faiss | 1.49 s (1.36 s-1.63 s) | 0.67x | x |\n"
        "|  |  |  | faiss 2 | 250 us | 0.10x | y |\n"
    )
    data = load_results(old, "avx512")
    assert data == {
        "avx512": [
            {
                "operation": "knn packed",
                "shapes": "8 x 16",
                "jaxloss": pytest.approx(0.9934),
                "peers": {"faiss": pytest.approx(1.49), "faiss 2": pytest.approx(250e-6)},
            }
        ]
    }
    new = {"avx512": [dict(data["avx512"][0], jaxloss=1.2)], "avx2": data["avx512"]}
    lines, flagged = compare(new, data)
    assert flagged == 1 and "no earlier figure" in lines[-1]


def test_dry_runs_time_nothing(tmp_path):
    """`python -m benchmarks --dry-run` lists the columns and their environments; run_gpu.sh's dry
    run prints every step and runs that dry run, with no GPU."""
    import subprocess
    import sys
    from pathlib import Path

    import benchmarks.__main__ as bench

    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, DRY_RUN="1", OUT=str(tmp_path), PYTHON=sys.executable)
    out = subprocess.run(
        ["bash", "benchmarks/run_gpu.sh"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "+ nvidia-smi -L" in out.stdout and "-m benchmarks --output" in out.stdout
    assert "-m pytest -q -n 8" in out.stdout and "topics: classification" in out.stdout
    assert not (tmp_path / "bench.log").exists() and not (tmp_path / "RESULTS_gpu.md").exists()
    assert bench.main(["--dry-run", "--only", "search"]) == 0
