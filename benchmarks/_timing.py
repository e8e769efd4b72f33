"""Timing helpers shared by the benchmark modules (one definition of "a time")."""

from __future__ import annotations

import statistics
import time


def median_time(fn, repeats: int, warmup: int = 2, give_up_after: float = 5.0) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs.

    ``fn`` must block until its result is ready (``jax.block_until_ready`` /
    :func:`torch_sync`). A warm-up slower than ``give_up_after`` seconds is
    returned as the time (slow peers are timed once).
    """
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first > give_up_after:
        return first
    for _ in range(warmup - 1):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(fns: dict, rounds: int) -> dict:
    """Median wall time of each blocking callable: one warm-up call of each, then ``rounds``
    rounds calling each in turn, so that every contender sees the same machine load."""
    for fn in fns.values():  # warm-up (compilation, caches)
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def torch_device() -> str:
    """ "cuda" when PyTorch sees a GPU (the peers then run there too), else "cpu"."""
    import torch  # noqa: PLC0415

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_sync() -> None:
    """Waits for queued GPU work so that PyTorch timings are complete."""
    import torch  # noqa: PLC0415

    if torch.cuda.is_available():
        torch.cuda.synchronize()
