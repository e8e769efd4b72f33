"""Metric-learning losses: value + gradient, float32, against a baseline commit and pytorch-metric-learning.

Run: ``python -m benchmarks --only metric_learning`` or
``python -m benchmarks.bench_metric_learning [--quick] [--rounds N] [--baseline COMMIT]``.

Prints one table: the in-batch losses at ``B = 1024, d = 128`` (64 classes;
``--quick``: ``B = 256``), jitted ``value_and_grad`` with ``block_until_ready``,
for this tree and for the tree of a baseline commit (default: the commit before
the centred all-pairs core, extracted with ``git archive``; ``--baseline`` or
``JAXLOSS_BASELINE`` names another, ``none`` skips it), and pytorch-metric-learning's
``TripletMarginLoss`` + ``BatchHardMiner`` and ``SupConLoss`` (forward + backward,
miner included).
Every contender runs once per round, in turn, in this process, so all see the
same machine load; the table gives the median and the min-max over the rounds.
Ratios are jaxloss time / other time: lower is better for jaxloss. The rows
``python -m benchmarks`` publishes (jaxloss against pytorch-metric-learning)
are timed again with each side in its own process (``isolated``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks._timing import isolated, torch_device, torch_sync

#: The commit before the centred all-pairs core (the in-batch losses' previous landing).
BASELINE = "6d41ec405899253c801d66d80bfb355bf435d2f7"
REPO = Path(__file__).resolve().parent.parent
MODULE = "bench_metric_learning"

#: The losses timed against pytorch-metric-learning (``_pml_runner``).
PML = ("batch_hard_triplet_loss", "supervised_contrastive_loss")

#: name -> (function name, keyword arguments); every one takes ``(embeddings, labels)``.
IN_BATCH = {
    "batch_hard_triplet_loss": ("batch_hard_triplet_loss", {"margin": 0.2}),
    "batch_all_triplet_loss": ("batch_all_triplet_loss", {"margin": 0.2}),
    "semi_hard_triplet_loss": ("semi_hard_triplet_loss", {"margin": 0.2}),
    "lifted_structured_loss": ("lifted_structured_loss", {"margin": 0.2}),
    "soft_nearest_neighbor_loss": ("soft_nearest_neighbor_loss", {"temperature": 0.1}),
    "supervised_contrastive_loss": ("supervised_contrastive_loss", {"temperature": 0.1}),
}


def load_baseline(commit: str | None):
    """The ``jaxloss`` package of ``commit`` (``git archive``), imported as ``jaxloss_baseline``."""
    if not commit or commit == "none":
        return None
    target = Path(tempfile.mkdtemp(prefix="jaxloss-baseline-"))
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit, "jaxloss"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        print(f"baseline {commit} not available ({err}); timing this tree only")
        return None
    spec = importlib.util.spec_from_file_location(
        "jaxloss_baseline",
        target / "jaxloss" / "__init__.py",
        submodule_search_locations=[str(target / "jaxloss")],
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["jaxloss_baseline"] = module
    spec.loader.exec_module(module)
    return module


def _jax_runner(loss, x, labels, **kw):
    import jax  # noqa: PLC0415 - not imported by the PyTorch side's process
    import jax.numpy as jnp  # noqa: PLC0415

    step = jax.jit(jax.value_and_grad(lambda e, lab: loss(e, lab, **kw)))
    xj, lj = jnp.asarray(x), jnp.asarray(labels)

    def run():
        jax.block_until_ready(step(xj, lj))

    return run


def _torch_runner(loss_fn, x, labels, miner=None):
    import torch  # noqa: PLC0415

    lt = torch.from_numpy(labels).to(torch_device())
    xt0 = torch.from_numpy(x).to(torch_device())

    def run():
        xt = xt0.clone().requires_grad_(True)
        indices = miner(xt, lt) if miner is not None else None
        loss_fn(xt, lt, indices).backward()
        torch_sync()

    return run


def interleaved_times(fns: dict, rounds: int) -> dict:
    """All wall times of each blocking callable: two warm-up calls each, then ``rounds`` rounds in turn."""
    for fn in fns.values():
        fn()
        fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def _stat(t):
    return f"{statistics.median(t) * 1e3:8.2f} ms [{min(t) * 1e3:.2f}-{max(t) * 1e3:.2f}]"


def measure(quick: bool = False, rounds: int | None = None, baseline: str | None = None):
    """Times (lists of seconds) of every contender, and a description of the set-up."""
    import torch  # noqa: PLC0415

    import jaxloss  # noqa: PLC0415

    torch.set_num_threads(os.cpu_count() or 1)  # XLA's CPU client uses every core
    rounds = rounds or (5 if quick else 15)
    b, d, classes = _sizes(quick)
    x, labels = _data(b, d, classes)

    old = load_baseline(baseline if baseline is not None else os.environ.get("JAXLOSS_BASELINE", BASELINE))
    fns = {}
    for name, (fn_name, kw) in IN_BATCH.items():
        if old is not None and hasattr(old, fn_name):
            fns[("baseline", name)] = _jax_runner(getattr(old, fn_name), x, labels, **kw)
        fns[("jaxloss", name)] = _jax_runner(getattr(jaxloss, fn_name), x, labels, **kw)
    for name in PML:
        fns[("pml", name)] = _pml_runner(name, x, labels)
    times = interleaved_times(fns, rounds)
    setup = (
        f"B={b}, d={d}, {classes} classes, float32, value+grad; {rounds} interleaved rounds; "
        f"os.cpu_count()={os.cpu_count()}, torch.get_num_threads()={torch.get_num_threads()}, "
        f"baseline={'none' if old is None else (baseline or os.environ.get('JAXLOSS_BASELINE', BASELINE))[:12]}"
    )
    return times, setup


def format_report(times, setup) -> str:
    lines = [
        setup,
        "ratios: jaxloss time / other time (lower is better for jaxloss), of the medians",
        f"{'loss':<30} {'baseline':>32} {'jaxloss':>32} {'/baseline':>10}",
    ]
    for name in IN_BATCH:
        new = times[("jaxloss", name)]
        old = times.get(("baseline", name))
        ratio = f"{statistics.median(new) / statistics.median(old):9.2f}x" if old else "-"
        lines.append(f"{name:<30} {_stat(old) if old else '-':>32} {_stat(new):>32} {ratio:>10}")
    pml = times[("pml", "batch_hard_triplet_loss")]
    new = times[("jaxloss", "batch_hard_triplet_loss")]
    lines.append(
        f"pytorch-metric-learning TripletMarginLoss + BatchHardMiner: {_stat(pml)}; "
        f"jaxloss batch_hard / pml = {statistics.median(new) / statistics.median(pml):.3f}x"
    )
    pml = times[("pml", "supervised_contrastive_loss")]
    new = times[("jaxloss", "supervised_contrastive_loss")]
    lines.append(
        f"pytorch-metric-learning SupConLoss: {_stat(pml)}; "
        f"jaxloss supervised_contrastive / pml = {statistics.median(new) / statistics.median(pml):.3f}x"
    )
    old = times.get(("baseline", "batch_hard_triplet_loss"))
    if old:
        lines.append(f"baseline batch_hard / pml = {statistics.median(old) / statistics.median(pml):.3f}x")
    return "\n".join(lines)


def _sizes(quick):
    return (256 if quick else 1024), 128, 64


def _data(b, d, classes):
    r = np.random.default_rng(0)
    return r.normal(size=(b, d)).astype(np.float32), r.integers(0, classes, size=b).astype(np.int64)


def _pml_runner(name, x, labels):
    """pytorch-metric-learning's counterpart of ``name`` (one of ``PML``) as a blocking callable."""
    from pytorch_metric_learning import distances, losses, miners  # noqa: PLC0415

    if name == "batch_hard_triplet_loss":
        lp = distances.LpDistance(normalize_embeddings=False)
        return _torch_runner(
            losses.TripletMarginLoss(margin=0.2, distance=lp), x, labels, miners.BatchHardMiner(distance=lp)
        )
    return _torch_runner(losses.SupConLoss(temperature=0.1), x, labels)


# --- factories for the published rows: each side in its own process (benchmarks._timing.isolated)


def jax_step(b, d, classes, name):
    import jaxloss  # noqa: PLC0415

    fn_name, kw = IN_BATCH[name]
    x, labels = _data(b, d, classes)
    return _jax_runner(getattr(jaxloss, fn_name), x, labels, **kw)


def torch_step(b, d, classes, name):
    import torch  # noqa: PLC0415

    torch.set_num_threads(os.cpu_count() or 1)
    return _pml_runner(name, *_data(b, d, classes))


def run(quick: bool) -> list[dict]:
    """Prints the interleaved before/after table, then times the published rows (jaxloss against
    pytorch-metric-learning) one side per process; the before/after medians go in the note."""
    times, setup = measure(quick)
    print(format_report(times, setup), flush=True)
    b, d, classes = _sizes(quick)
    repeats = 5 if quick else 15
    before_after = "; ".join(
        f"{name} {statistics.median(times[('baseline', name)]) * 1e3:.2f} -> "
        f"{statistics.median(times[('jaxloss', name)]) * 1e3:.2f} ms "
        f"({statistics.median(times[('jaxloss', name)]) / statistics.median(times[('baseline', name)]):.2f}x)"
        for name in IN_BATCH
        if ("baseline", name) in times
    )
    rows = []
    for name in PML:
        shape = {"b": b, "d": d, "classes": classes, "name": name}
        row = {
            "operation": f"{name} value+grad",
            "shapes": f"B={b}, d={d}, {classes} classes, float32",
            "jaxloss": isolated(MODULE, "jax_step", peer=False, repeats=repeats, warmup=2, **shape),
            "peers": {
                "pytorch-metric-learning": isolated(
                    MODULE, "torch_step", peer=True, repeats=repeats, warmup=2, **shape
                )
            },
        }
        if before_after and name == "batch_hard_triplet_loss":
            row["note"] = (
                "the in-batch losses before (the commit before the centred all-pairs core) -> now, "
                f"value+grad medians, interleaved in one process: {before_after}"
            )
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--baseline", default=None, help="commit whose jaxloss is timed too ('none': skip)")
    args = parser.parse_args()
    times, setup = measure(args.quick, args.rounds, args.baseline)
    print(format_report(times, setup))


if __name__ == "__main__":
    main()
