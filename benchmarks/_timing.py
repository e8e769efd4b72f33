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


def torch_device() -> str:
    """ "cuda" when PyTorch sees a GPU (the peers then run there too), else "cpu"."""
    import torch  # noqa: PLC0415

    return "cuda" if torch.cuda.is_available() else "cpu"


def torch_sync() -> None:
    """Waits for queued GPU work so that PyTorch timings are complete."""
    import torch  # noqa: PLC0415

    if torch.cuda.is_available():
        torch.cuda.synchronize()
