"""Peer benchmarks of jaxloss. Run all of them with ``python -m benchmarks``.

Each ``bench_<topic>.py`` module defines ``run(quick: bool) -> list[dict]`` whose
rows are ``{"operation", "shapes", "jaxloss_s", "peers": {name: seconds}}``;
the runner prints one table of ratios (peer time / jaxloss time: above 1 means
jaxloss is faster) and writes it to ``benchmarks/RESULTS.md``.
"""
