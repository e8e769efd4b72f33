"""``python -m benchmarks [--quick] [--only distances,search] [--isa all] [--output FILE] [--readme] [--check] [--dry-run]``.

Runs every ``benchmarks/bench_*.py`` module and prints one table: operation,
shapes, jaxloss time, each peer's time and the ratio **jaxloss time / peer
time (lower is better for jaxloss; below 1: jaxloss is faster)**. Every time is
the median, with min-max, of the timed calls of one side in its own process
(``benchmarks._timing.isolated``); each peer's BLAS, threads, kernels and
OpenBLAS environment are printed beside its figure. The table and a
description of the machine are written to ``benchmarks/RESULTS.md`` (or
``--output``); with ``--readme`` the table in README.md (between its
``benchmarks:begin/end`` markers) is replaced too.

``--isa all`` (or ``--isa avx512,avx2``) times every row once per instruction
set this CPU supports (``benchmarks._isa``: the widest with each library's own
kernels, the narrower ones with every library limited to them), and the tables
get one column group per instruction set. ``--check`` runs the same rows and
compares each jaxloss time with the last ``RESULTS.md`` of the same
instruction set, flagging rows more than ``--threshold`` (15 %) slower (a
maintainer's check before a release, not a CI step; RESULTS.md is not
rewritten). ``--dry-run`` prints what would run, with each column's
environment, and times nothing.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import pkgutil
import sys
import time
from pathlib import Path

from benchmarks import _isa
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


def isa_label(isa) -> str:
    return isa or "native"


def format_isa_table(columns: dict, with_config: bool = False) -> str:
    """One row per (operation, shapes, peer), one group of cells per instruction-set column.

    ``columns`` maps a column name to its rows (as ``run`` returns them). Each
    group has the jaxloss time, the peer's time and the ratio; with
    ``with_config`` also the peer process's kernels.
    """
    names = list(columns)
    order, table = [], {}
    for name in names:
        for row in columns[name]:
            key = (row["operation"], row["shapes"])
            if key not in table:
                order.append(key)
                table[key] = {"peers": [], "by_column": {}}
            entry = table[key]
            entry["by_column"][name] = row
            for peer in row.get("peers") or {"-": None}:
                if peer not in entry["peers"]:
                    entry["peers"].append(peer)
    header = ["operation", "shapes", "peer"]
    align = ["---", "---", "---"]
    for name in names:
        header += [f"{name}: jaxloss", f"{name}: peer", f"{name}: jaxloss / peer"]
        align += ["---:", "---:", "---:"]
        if with_config:
            header.append(f"{name}: peer's kernels")
            align.append("---")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for key in order:
        entry = table[key]
        for i, peer in enumerate(entry["peers"]):
            cells = [key[0] if i == 0 else "", key[1] if i == 0 else "", peer]
            for name in names:
                row = entry["by_column"].get(name)
                ours = _ours(row) if row else None
                timing = _timing((row.get("peers") or {}).get(peer)) if row else None
                cells += [fmt_timing(ours) if i == 0 else "", fmt_timing(timing), ratio(ours, timing)]
                if with_config:
                    cells.append(describe_process(timing["env"]) if timing else "")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- machine-readable results

DATA_BEGIN = "<!-- benchmarks:data"
DATA_END = "benchmarks:data -->"


def results_data(columns: dict) -> dict:
    """The medians of a run, per column and row: what ``--check`` compares with."""
    out = {}
    for name, rows in columns.items():
        out[name] = [
            {
                "operation": row["operation"],
                "shapes": row["shapes"],
                "jaxloss": (_ours(row) or {}).get("median"),
                "peers": {
                    peer: (_timing(t) or {}).get("median") for peer, t in (row.get("peers") or {}).items()
                },
            }
            for row in rows
        ]
    return out


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _seconds(cell: str) -> float | None:
    """The median of a ``fmt_timing`` cell (``899.1 ms (827.4 ms-935.7 ms)``), or None."""
    parts = cell.strip().split()
    if len(parts) < 2 or parts[1] not in _UNITS:
        return None
    try:
        return float(parts[0]) * _UNITS[parts[1]]
    except ValueError:
        return None


def load_results(path: Path, default_column: str) -> dict:
    """The medians of a RESULTS.md: its data block, or (a file written before the block existed)
    its one table, read as ``default_column``."""
    if not path.exists():
        return {}
    text = path.read_text()
    if DATA_BEGIN in text:
        block = text.split(DATA_BEGIN, 1)[1].split(DATA_END, 1)[0]
        return json.loads(block)
    rows, current = [], None
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or cells[0] == "operation" or set("".join(cells)) <= set("-:"):
            continue
        operation, shapes, ours, peer, theirs = cells[:5]
        if operation:
            current = {"operation": operation, "shapes": shapes, "jaxloss": _seconds(ours), "peers": {}}
            rows.append(current)
        if current is not None and peer and peer != "-":
            current["peers"][peer] = _seconds(theirs)
    return {default_column: rows} if rows else {}


def compare(new: dict, old: dict, threshold: float = 0.15) -> tuple[list[str], int]:
    """Lines comparing each jaxloss median with the same column's row in ``old``, and how many rows
    are more than ``threshold`` slower (flagged)."""
    lines, flagged = [], 0
    for name, rows in new.items():
        before = {(r["operation"], r["shapes"]): r for r in old.get(name, [])}
        for row in rows:
            prev = before.get((row["operation"], row["shapes"]))
            label = f"[{name}] {row['operation']} ({row['shapes']})"
            if not prev or not prev.get("jaxloss") or not row.get("jaxloss"):
                lines.append(f"  new    {label}: no earlier figure")
                continue
            change = row["jaxloss"] / prev["jaxloss"] - 1
            drifts = [
                f"{peer} {t / prev['peers'][peer] - 1:+.0%}"
                for peer, t in row["peers"].items()
                if t and prev["peers"].get(peer)
            ]
            slow = change > threshold
            flagged += slow
            lines.append(
                f"  {'SLOWER' if slow else 'ok':6s} {label}: jaxloss {prev['jaxloss'] * 1e3:.1f} -> "
                f"{row['jaxloss'] * 1e3:.1f} ms ({change:+.0%})"
                + (f"; peers: {', '.join(drifts)}" if drifts else "")
            )
    return lines, flagged


def dry_run(topics, columns, machine) -> str:
    """What a run would do: the topics, and every column's environment for jaxloss and peer processes."""
    from benchmarks._env import peer_environment  # noqa: PLC0415

    lines = [f"topics: {', '.join(t.removeprefix('bench_') for t in topics) or 'none'}"]
    for isa in columns:
        extra = _isa.environment(isa, machine["cpu"]["flags"])
        peer = dict(peer_environment())
        peer.update(_isa.environment(isa, machine["cpu"]["flags"], base=peer))
        shown = {k: v for k, v in extra.items() if k != _isa.ISA_VARIABLE}
        lines.append(
            f"column {isa_label(isa)}: "
            + (", ".join(f"{k}={v}" for k, v in shown.items()) or "no limit (each library's own kernels)")
        )
        lines.append(
            "  peers: OPENBLAS_CORETYPE="
            + str(peer.get("OPENBLAS_CORETYPE", "unset"))
            + ", OPENBLAS_L2_SIZE="
            + str(peer.get("OPENBLAS_L2_SIZE", "unset"))
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small shapes, few repeats: a smoke run")
    parser.add_argument("--only", default=None, help="comma-separated topics, e.g. distances,search")
    parser.add_argument(
        "--isa",
        default=None,
        help="'all' or comma-separated instruction sets (avx512, avx2): one column per instruction set "
        "(default: this CPU's widest, each library's own kernels)",
    )
    parser.add_argument("--output", default=None, help="default: benchmarks/RESULTS.md")
    parser.add_argument("--readme", action="store_true", help="also replace README.md's benchmark table")
    parser.add_argument(
        "--check",
        action="store_true",
        help="compare with the last RESULTS.md (or --baseline) per instruction set; exit 1 if a row is "
        "more than --threshold slower; RESULTS.md is not rewritten unless --output is given",
    )
    parser.add_argument("--baseline", default=str(HERE / "RESULTS.md"))
    parser.add_argument("--threshold", type=float, default=0.15)
    parser.add_argument("--dry-run", action="store_true", help="print what would run and time nothing")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    machine = machine_record()
    flags = machine["cpu"]["flags"]
    columns = _isa.choose(args.isa, flags) if args.isa else [_isa.native(flags)]
    topics = discover(args.only)
    print(describe_machine(machine), flush=True)
    if args.dry_run:
        print(dry_run(topics, columns, machine))
        return 0
    baseline = load_results(Path(args.baseline), isa_label(_isa.native(flags))) if args.check else {}
    results, notes = {}, []
    start = time.time()
    for isa in columns:
        label = isa_label(isa)
        previous = os.environ.get(_isa.ISA_VARIABLE)
        if isa is not None:
            os.environ[_isa.ISA_VARIABLE] = isa
        try:
            rows = []
            for name in topics:
                module = importlib.import_module(f"benchmarks.{name}")
                print(f"== {name} [{label}] ==", flush=True)
                topic_start = time.time()
                topic_rows = module.run(quick=args.quick)
                print(format_table(topic_rows), flush=True)
                print(f"({name} [{label}]: {time.time() - topic_start:.0f} s)", flush=True)
                rows.extend(topic_rows)
                for row in topic_rows:
                    if row.get("note"):
                        notes.append(f"- [{label}] {row['operation']}: {row['note']}")
        finally:
            if previous is None:
                os.environ.pop(_isa.ISA_VARIABLE, None)
            else:
                os.environ[_isa.ISA_VARIABLE] = previous
        results[label] = rows
    data = results_data(results)
    combined = format_isa_table(results)
    print(f"\nRatio = {RATIO}\n\n" + combined)
    if args.check:
        lines, flagged = compare(data, baseline, args.threshold)
        print(
            f"\nagainst {args.baseline} (a row is flagged when jaxloss is more than {args.threshold:.0%} slower):"
        )
        print("\n".join(lines))
        print(f"{flagged} row(s) flagged")
        if args.output:
            _write(args, machine, results, data, combined, notes, start)
        return 1 if flagged else 0
    _write(args, machine, results, data, combined, notes, start)
    return 0


def _write(args, machine, results, data, combined, notes, start) -> None:
    output = Path(args.output or HERE / "RESULTS.md")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = (
        "python -m benchmarks"
        + (" --quick" if args.quick else "")
        + (f" --only {args.only}" if args.only else "")
        + (f" --isa {args.isa}" if args.isa else "")
    )
    all_rows = [row for rows in results.values() for row in rows]
    sections = "".join(
        f"\n### {name}: every process's kernels\n\n{format_table(rows)}\n" for name, rows in results.items()
    )
    columns_text = ", ".join(f"`{name}` ({_describe_column(name, machine)})" for name in results)
    text = (
        "# Benchmark results\n\n"
        f"Measured {stamp} with `{command}` in {time.time() - start:.0f} s.\n\n"
        f"{describe_machine(machine)}\n"
        f"- instruction-set columns: {columns_text}\n\n"
        f"**Ratio = {RATIO}.** Each time is the median (min-max) of the timed calls of one side "
        "in its own process, after a warm-up call (jaxloss functions jit-compiled, results "
        "blocked on); in the widest column, peers using OpenBLAS run with `OPENBLAS_CORETYPE` and "
        "`OPENBLAS_L2_SIZE` unset; in a narrower column every process runs with that column's "
        "limits (docs/benchmarks.md, `benchmarks/_isa.py`). The sections after the table give "
        "each peer process's BLAS, threads and kernels.\n\n"
        f"{combined}\n"
        f"{sections}\n"
        f"jaxloss processes:\n{jaxloss_processes(all_rows)}\n"
    )
    if notes:
        text += "\nNotes:\n" + "\n".join(notes) + "\n"
    text += f"\n{DATA_BEGIN}\n{json.dumps(data, indent=1)}\n{DATA_END}\n"
    output.write_text(text)
    print(f"\nwritten to {output}")
    if args.readme:
        update_readme(combined, HERE.parent / "README.md")
        print("README.md's benchmark table replaced")


def _describe_column(name: str, machine: dict) -> str:
    if name == isa_label(_isa.native(machine["cpu"]["flags"])):
        return "no limit: each library's own kernels for this CPU"
    extra = _isa.environment(name, machine["cpu"]["flags"])
    return ", ".join(f"{k}={v}" for k, v in extra.items() if k != _isa.ISA_VARIABLE)


if __name__ == "__main__":
    raise SystemExit(main())
