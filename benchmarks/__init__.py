"""Peer benchmarks of jaxloss. Run all of them with ``python -m benchmarks``.

Each ``bench_<topic>.py`` module defines ``run(quick: bool) -> list[dict]`` whose
rows are ``{"operation", "shapes", "jaxloss": timing, "peers": {name: timing}}``,
each timing a dict from ``benchmarks._timing.isolated`` (one side timed in its
own process, with that process's BLAS configuration; bare seconds are accepted
and shown as "same process (not isolated)"); the runner prints one table of
ratios, **jaxloss time / peer time (lower is better)**, and writes it with the
machine's description (``benchmarks._env``) to ``benchmarks/RESULTS.md``.
"""
