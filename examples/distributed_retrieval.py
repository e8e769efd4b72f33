"""Exact kNN over a database split between processes, with JAX's multi-controller runtime.

Every process is one "host": it calls ``jax.distributed.initialize`` and sees
the global mesh of all processes' devices, but holds only its own rows of the
database. The database is a global ``jax.Array`` built with
``jax.make_array_from_callback``: each process generates just the rows its
devices hold (synthetic embeddings around ``--classes`` class centres; row
``i`` is the same whoever generates it). ``jaxloss.sharded_knn`` searches every
shard on its own device and merges the partial top-k lists into the global
answer, which every process receives. Process 0 then rebuilds the whole
database on its own and runs ``jaxloss.knn`` on one device, and prints the
recall of the distributed search against it (1.0: the search is exact).

On one machine, with 2 processes of 2 CPU devices each (gloo collectives):

    python examples/distributed_retrieval.py --launch 2

or by hand, one terminal per process:

    python examples/distributed_retrieval.py --process-id 0 --num-processes 2 --coordinator 127.0.0.1:12355
    python examples/distributed_retrieval.py --process-id 1 --num-processes 2 --coordinator 127.0.0.1:12355

On several hosts with accelerators, run one process per host with
``--devices-per-process 0`` (use the host's real devices) and the
coordinator's address; ``jax.distributed.initialize()`` without arguments
also works where JAX detects the cluster (Slurm, Cloud TPU, ...).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

CHUNK = 1024  # rows generated per random stream: row i does not depend on who generates it


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--launch", type=int, default=0, help="start this many processes on this machine and wait")
    p.add_argument("--process-id", type=int, default=None)
    p.add_argument("--num-processes", type=int, default=2)
    p.add_argument("--coordinator", default="127.0.0.1:12355", help="host:port of process 0")
    p.add_argument(
        "--devices-per-process",
        type=int,
        default=2,
        help="forced CPU devices per process (0: use the real devices, e.g. GPUs)",
    )
    p.add_argument("--database", type=int, default=20_000, help="rows (a multiple of the device count)")
    p.add_argument("--queries", type=int, default=500)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds, with --launch")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- data


def centres(classes, dim, seed):
    import numpy as np

    return np.random.default_rng([seed, 0]).normal(size=(classes, dim)).astype(np.float32)


def database_rows(start, stop, dim, classes, seed):
    """Rows ``start:stop`` of the database and their labels, generated chunk by chunk."""
    import numpy as np

    c = centres(classes, dim, seed)
    rows, labels = [], []
    for chunk in range(start // CHUNK, -(-stop // CHUNK)):
        r = np.random.default_rng([seed, 1, chunk])
        lab = r.integers(0, classes, size=CHUNK)
        x = c[lab] + 0.7 * r.normal(size=(CHUNK, dim)).astype(np.float32)
        lo, hi = max(start - chunk * CHUNK, 0), min(stop - chunk * CHUNK, CHUNK)
        rows.append(x[lo:hi])
        labels.append(lab[lo:hi])
    return np.concatenate(rows), np.concatenate(labels)


def queries(n, dim, classes, seed):
    import numpy as np

    c = centres(classes, dim, seed)
    r = np.random.default_rng([seed, 2])
    lab = r.integers(0, classes, size=n)
    return c[lab] + 0.7 * r.normal(size=(n, dim)).astype(np.float32), lab


# --------------------------------------------------------------------------- one process


def run_process(args):
    if args.devices_per_process > 0:  # before JAX starts: this process's forced CPU devices
        flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if "host_platform_device_count" not in f]
        flags.append(f"--xla_force_host_platform_device_count={args.devices_per_process}")
        os.environ["XLA_FLAGS"] = " ".join(flags)
        os.environ["JAX_PLATFORMS"] = "cpu"

    import jax
    import numpy as np
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    import jaxloss

    if args.devices_per_process > 0:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(args.coordinator, num_processes=args.num_processes, process_id=args.process_id)
    pid = jax.process_index()

    mesh = Mesh(np.array(jax.devices()), ("data",))
    sharding = NamedSharding(mesh, P("data"))
    n, dim = args.database, args.dim
    if n % mesh.size:
        raise SystemExit(f"--database must be a multiple of the {mesh.size} devices; got {n}")

    held = sorted(
        (ix[0].start or 0, ix[0].stop or n)
        for ix in sharding.addressable_devices_indices_map((n, dim)).values()
    )
    lo, hi = held[0][0], held[-1][1]
    local_rows, _ = database_rows(lo, hi, dim, args.classes, args.seed)  # only this process's rows

    def callback(index):  # one device's block, cut from this process's rows
        return local_rows[(index[0].start or 0) - lo : (index[0].stop or n) - lo]

    database = jax.make_array_from_callback((n, dim), sharding, callback)
    local_ids = [d.id for d in jax.local_devices()]
    print(
        f"process {pid} holds database rows [{lo}, {hi}) of {n} on devices {local_ids} "
        f"({(hi - lo) * dim * 4 / 2**20:.2f} MiB of {n * dim * 4 / 2**20:.2f} MiB); "
        f"global mesh: {mesh.size} devices in {jax.process_count()} processes",
        flush=True,
    )

    q, _ = queries(args.queries, dim, args.classes, args.seed)  # replicated: the same on every process
    t0 = time.perf_counter()
    dist, idx = jaxloss.sharded_knn(q, database, args.k, mesh=mesh)
    idx = np.asarray(idx)  # the merged answer is replicated: every process can read it
    seconds = time.perf_counter() - t0
    print(f"process {pid}: sharded_knn of {args.queries} queries, k={args.k}: {seconds:.2f} s", flush=True)

    if pid == 0:
        full, _ = database_rows(0, n, dim, args.classes, args.seed)
        with jax.default_device(jax.local_devices()[0]):
            ref_dist, ref_idx = jaxloss.knn(q, full, args.k)
        ref_idx = np.asarray(ref_idx)
        found = [len(set(a) & set(b)) for a, b in zip(idx, ref_idx, strict=True)]
        recall = sum(found) / (args.k * len(found))
        print(f"process 0: recall@{args.k} against one process: {recall:.4f}", flush=True)
        print(f"process 0: identical neighbours: {bool(np.array_equal(idx, ref_idx))}", flush=True)
        gap = float(np.max(np.abs(np.asarray(dist) - np.asarray(ref_dist))))
        print(f"process 0: largest distance difference: {gap:.2e}", flush=True)
    jax.distributed.shutdown()
    return idx


# --------------------------------------------------------------------------- --launch


def launch(args, argv):
    """Starts ``args.launch`` copies of this script on 127.0.0.1 and prints their output."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rest = []
    skip = False
    for a in argv:  # drop --launch N and any coordinator/process options
        if skip:
            skip = False
            continue
        if a in ("--launch", "--process-id", "--num-processes", "--coordinator"):
            skip = True
            continue
        if a.startswith(("--launch=", "--process-id=", "--num-processes=", "--coordinator=")):
            continue
        rest.append(a)
    procs, logs = [], []
    for i in range(args.launch):
        cmd = [sys.executable, os.path.abspath(__file__), *rest]
        cmd += [
            "--process-id",
            str(i),
            "--num-processes",
            str(args.launch),
            "--coordinator",
            f"127.0.0.1:{port}",
        ]
        logs.append((tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")))  # no pipe to fill up
        procs.append(subprocess.Popen(cmd, stdout=logs[-1][0], stderr=logs[-1][1], text=True))
    deadline = time.monotonic() + args.timeout
    failed = None
    while failed is None and any(p.poll() is None for p in procs):
        failed = next((i for i, p in enumerate(procs) if p.poll() not in (None, 0)), None)
        if time.monotonic() > deadline:
            failed = "timeout"
        time.sleep(0.1)
    failed = failed if failed is not None else next((i for i, p in enumerate(procs) if p.returncode), None)
    for p in procs:  # a process whose peer died would wait for it: stop them all
        if p.poll() is None:
            p.kill()
    for p in procs:
        p.wait()
    outputs = []
    for out, err in logs:
        out.seek(0), err.seek(0)
        outputs.append((out.read(), err.read()))
    for out, _ in outputs:
        sys.stdout.write(out)
    if failed is not None:
        for i, (_, err) in enumerate(outputs):
            sys.stderr.write(f"--- process {i} (exit status {procs[i].returncode}) stderr:\n{err[-4000:]}\n")
        why = f"timed out after {args.timeout:.0f} s" if failed == "timeout" else f"process {failed} failed"
        raise SystemExit(f"distributed run {why}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    if args.launch:
        return launch(args, argv)
    if args.process_id is None:
        raise SystemExit("give --process-id (with --num-processes and --coordinator), or --launch N")
    return run_process(args)


if __name__ == "__main__":
    main()
