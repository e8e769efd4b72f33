"""``python -m benchmarks [--quick] [--only distances,search] [--output FILE] [--readme]``.

Runs every ``benchmarks/bench_*.py`` module and prints one table: operation,
shapes, jaxloss time, each peer's time and the ratio **jaxloss time / peer
time (lower is better for jaxloss; below 1: jaxloss is faster)**. Every time is
the median, with min-max, of the timed calls of one side in its own process
(``benchmarks._timing.isolated``); each peer's BLAS, threads and OpenBLAS
environment are printed beside its figure. The table and a description of the
machine are written to ``benchmarks/RESULTS.md`` (or ``--output``); with
``--readme`` the table in README.md (between its ``benchmarks:begin/end``
markers) is replaced too.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import pkgutil
import sys
import time
from pathlib import Path

from benchmarks._env import describe_machine, describe_process, machine_record

HERE = Path(__file__).resolve().parent
RATIO = "jaxloss time / peer time (lower is better; below 1: jaxloss is faster)"
README_BEGIN = "<!-- benchmarks:begin -->"
README_END = "<!-- benchmarks:end -->"


def discover(only=None):
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    if only:
        wanted = {f"bench_{w.strip()}" if not w.startswith("bench_") else w.strip() for w in only.split(",")}
        names = [n for n in names if n in wanted]
    return names


def _timing(value):
    """A timing dict from a row entry (a dict from ``isolated``, or bare seconds)."""
    if value is None or isinstance(value, dict):
        return value
    return {"median": value, "min": value, "max": value, "env": None}


def _fmt(seconds):
    if seconds is None:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_timing(timing) -> str:
    """``median (min-max)`` of a timing dict."""
    timing = _timing(timing)
    if timing is None:
        return "n/a"
    if timing["min"] == timing["max"]:
        return _fmt(timing["median"])
    return f"{_fmt(timing['median'])} ({_fmt(timing['min'])}-{_fmt(timing['max'])})"


def ratio(ours, peer) -> str:
    """jaxloss median / peer median."""
    ours, peer = _timing(ours), _timing(peer)
    if not ours or not peer or not peer["median"]:
        return "n/a"
    return f"{ours['median'] / peer['median']:.2f}x"


def _ours(row):
    return _timing(row.get("jaxloss", row.get("jaxloss_s")))


def format_table(rows, with_config: bool = True) -> str:
    header = (
        "| operation | shapes | jaxloss: median (min-max) | peer | peer: median (min-max) | jaxloss / peer |"
    )
    align = "|---|---|---:|---|---:|---:|"
    if with_config:
        header += " peer's process: BLAS, threads, OpenBLAS environment |"
        align += "---|"
    lines = [header, align]
    for row in rows:
        ours = _ours(row)
        peers = row.get("peers") or {"-": None}
        for i, (peer, timing) in enumerate(peers.items()):
            timing = _timing(timing)
            cells = [
                row["operation"] if i == 0 else "",
                row["shapes"] if i == 0 else "",
                fmt_timing(ours) if i == 0 else "",
                peer,
                fmt_timing(timing),
                ratio(ours, timing),
            ]
            if with_config:
                cells.append(describe_process(timing["env"]) if timing else "")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def jaxloss_processes(rows) -> str:
    """One line per distinct configuration of the jaxloss processes."""
    seen = sorted({describe_process(_ours(row)["env"]) for row in rows if _ours(row)})
    return "\n".join(f"- {line}" for line in seen)


def update_readme(table: str, path: Path) -> None:
    text = path.read_text()
    if README_BEGIN not in text or README_END not in text:
        raise SystemExit(f"{path} has no {README_BEGIN} ... {README_END} block")
    head, rest = text.split(README_BEGIN, 1)
    _, tail = rest.split(README_END, 1)
    path.write_text(f"{head}{README_BEGIN}\n{table}\n{README_END}{tail}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small shapes, few repeats: a smoke run")
    parser.add_argument("--only", default=None, help="comma-separated topics, e.g. distances,search")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--readme", action="store_true", help="also replace README.md's benchmark table")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    machine = machine_record()
    print(describe_machine(machine), flush=True)
    all_rows, notes = [], []
    start = time.time()
    for name in discover(args.only):
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name} ==", flush=True)
        topic_start = time.time()
        rows = module.run(quick=args.quick)
        print(format_table(rows), flush=True)
        print(f"({name}: {time.time() - topic_start:.0f} s)", flush=True)
        all_rows.extend(rows)
        for row in rows:
            if row.get("note"):
                notes.append(f"- {row['operation']}: {row['note']}")
    table = format_table(all_rows)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = (
        "python -m benchmarks"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if args.only else "")
    )
    text = (
        "# Benchmark results\n\n"
        f"Measured {stamp} with `{command}` in {time.time() - start:.0f} s.\n\n"
        f"{describe_machine(machine)}\n\n"
        f"**Ratio = {RATIO}.** Each time is the median (min-max) of the timed calls of one side "
        "in its own process, after a warm-up call (jaxloss functions jit-compiled, results "
        "blocked on); peers using OpenBLAS run with `OPENBLAS_CORETYPE` and `OPENBLAS_L2_SIZE` "
        "unset, and the last column gives each peer process's BLAS and threads.\n\n"
        f"{table}\n\n"
        f"jaxloss processes:\n{jaxloss_processes(all_rows)}\n"
    )
    if notes:
        text += "\nNotes:\n" + "\n".join(notes) + "\n"
    print(f"\nRatio = {RATIO}\n\n" + table)
    Path(args.output).write_text(text)
    print(f"\nwritten to {args.output}")
    if args.readme:
        update_readme(format_table(all_rows, with_config=False), HERE.parent / "README.md")
        print("README.md's benchmark table replaced")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
