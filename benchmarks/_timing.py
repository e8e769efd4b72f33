"""Timing helpers shared by the benchmark modules (one definition of "a time").

Every published time comes from :func:`isolated`: one side of a comparison
(jaxloss or one peer) is set up, warmed up and timed in its **own Python
process** (``python -m benchmarks._worker``), so that no library's threads
compete with another's, and that process records its own configuration
(XLA threads, the BLAS libraries it loaded, ``benchmarks._env``). Peers run
with ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` removed from their
environment; the jaxloss side gets the environment as given.

A side is named by a *factory*: a module-level function of a ``bench_*.py``
module that takes plain keyword arguments (sizes, seeds), builds its inputs
and returns a callable that runs the operation once and blocks until its
result is ready. :func:`isolated` returns a timing dict
``{"median", "min", "max", "times", "env"}`` (seconds); rows carry these
dicts and ``benchmarks.__main__`` prints them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import _isa
from benchmarks._env import peer_environment

RESULT_MARKER = "@@benchmark-result@@ "
ROOT = Path(__file__).resolve().parents[1]


def call_times(fn, repeats: int, warmup: int = 1, give_up_after: float = 5.0) -> tuple[list[float], object]:
    """Wall times of ``repeats`` calls of ``fn()`` after ``warmup`` calls, and the last result.

    ``fn`` must block until its result is ready. A first call slower than
    ``give_up_after`` seconds counts as a warm-up, and only ``min(repeats, 2)``
    timed calls follow (slow peers would otherwise dominate the run).
    """
    start = time.perf_counter()
    out = fn()
    first = time.perf_counter() - start
    if first > give_up_after:
        repeats = min(repeats, 2)
    for _ in range(warmup - 1):
        out = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return times, out


def summary(times: list[float], env: dict | None = None) -> dict:
    return {
        "median": statistics.median(times),
        "min": min(times),
        "max": max(times),
        "times": times,
        "env": env,
    }


def isolated(
    module: str,
    factory: str,
    *,
    peer: bool,
    repeats: int,
    warmup: int = 1,
    return_result: bool = False,
    timeout: float = 600.0,
    environment: dict | None = None,
    **kwargs,
) -> dict:
    """Times ``benchmarks.<module>.<factory>(**kwargs)()`` in a fresh process.

    ``peer=True`` removes ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` from the
    process's environment; in an instruction-set column other than this CPU's
    widest (``benchmarks._isa``) every process then gets that column's limits
    (``--xla_cpu_max_isa``, ``FAISS_SIMD_LEVEL``, ``OPENBLAS_CORETYPE``...);
    ``environment`` then adds variables (e.g. the core
    type of :func:`benchmarks._env.fallback_core_override`). With ``return_result`` the last result (arrays, or a
    tuple of arrays) comes back under ``"result"`` as nested lists, for an
    agreement check. A failing side raises ``RuntimeError`` with its stderr.
    """
    request = {
        "module": f"benchmarks.{module}",
        "factory": factory,
        "kwargs": kwargs,
        "repeats": repeats,
        "warmup": warmup,
        "return_result": return_result,
    }
    env = peer_environment() if peer else dict(os.environ)
    env.update(_isa.environment(_isa.current(), base=env))  # the instruction-set column's limits
    env.update(environment or {})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks._worker"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARKER)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"{module}.{factory}({kwargs}) failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        )
    answer = json.loads(lines[-1][len(RESULT_MARKER) :])
    timing = summary(answer["times"], answer["env"])
    if return_result:
        timing["result"] = answer["result"]
    return timing


def median_time(fn, repeats: int, warmup: int = 2, give_up_after: float = 5.0) -> float:
    """Median wall time of ``fn()`` in this process (exploratory use; published times use :func:`isolated`)."""
    return statistics.median(call_times(fn, repeats, warmup, give_up_after)[0])


def torch_device() -> str:
    """ "cuda" when PyTorch sees a GPU (the peers then run there too), else "cpu"."""
    import torch  # noqa: PLC0415

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_sync() -> None:
    """Waits for queued GPU work so that PyTorch timings are complete."""
    import torch  # noqa: PLC0415

    if torch.cuda.is_available():
        torch.cuda.synchronize()
