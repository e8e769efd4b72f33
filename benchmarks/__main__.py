"""``python -m benchmarks [--quick] [--only distances,search] [--output FILE]``.

Runs every ``benchmarks/bench_*.py`` module in this process and prints one
table: operation, shapes, jaxloss time, each peer's time and the ratio
peer / jaxloss (above 1: jaxloss is faster). The table and a description of the
machine are written to ``benchmarks/RESULTS.md`` (or ``--output``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import os
import pkgutil
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine_description() -> str:
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = [f"jax {jax.__version__}"]
    for name in ("torch", "optax", "scipy", "sklearn", "faiss", "pytorch_metric_learning"):
        try:
            mod = importlib.import_module(name)
            versions.append(f"{name} {getattr(mod, '__version__', '?')}")
        except Exception:  # noqa: BLE001 - optional peers
            pass
    devices = ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()}))
    return (
        f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, "
        f"JAX devices: {devices}; " + ", ".join(versions)
    )


def discover(only=None):
    names = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))
    if only:
        wanted = {f"bench_{w.strip()}" if not w.startswith("bench_") else w.strip() for w in only.split(",")}
        names = [n for n in names if n in wanted]
    return names


def format_table(rows) -> str:
    header = "| operation | shapes | jaxloss | peer | peer time | ratio (peer / jaxloss) |"
    lines = [header, "|---|---|---:|---|---:|---:|"]
    for row in rows:
        peers = row.get("peers") or {}
        first = True
        for peer, seconds in peers.items():
            ratio = seconds / row["jaxloss_s"] if row["jaxloss_s"] and seconds else float("nan")
            op = row["operation"] if first else ""
            shapes = row["shapes"] if first else ""
            jl = _fmt(row["jaxloss_s"]) if first else ""
            lines.append(f"| {op} | {shapes} | {jl} | {peer} | {_fmt(seconds)} | {ratio:.2f}x |")
            first = False
        if not peers:
            lines.append(f"| {row['operation']} | {row['shapes']} | {_fmt(row['jaxloss_s'])} | - | - | - |")
    return "\n".join(lines)


def _fmt(seconds):
    if seconds is None:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small shapes, for a smoke run")
    parser.add_argument("--only", default=None, help="comma-separated topics, e.g. distances,search")
    parser.add_argument("--output", default=str(HERE / "RESULTS.md"))
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    all_rows, notes = [], []
    start = time.time()
    for name in discover(args.only):
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"== {name} ==", flush=True)
        rows = module.run(quick=args.quick)
        print(format_table(rows), flush=True)
        all_rows.extend(rows)
        for row in rows:
            if row.get("note"):
                notes.append(f"- {row['operation']}: {row['note']}")
    table = format_table(all_rows)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (
        "# Benchmark results\n\n"
        f"Measured {stamp} with `python -m benchmarks{' --quick' if args.quick else ''}` "
        f"in {time.time() - start:.0f} s on: {machine_description()}.\n\n"
        "Times are medians after warm-up (jaxloss functions jit-compiled, results blocked on); "
        "ratio = peer time / jaxloss time, so above 1 means jaxloss is faster.\n\n"
        f"{table}\n"
    )
    if notes:
        text += "\nNotes:\n" + "\n".join(notes) + "\n"
    print("\n" + table)
    Path(args.output).write_text(text)
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
