"""Run a test function on a global mesh that spans several real processes.

``run_multiprocess(fn, **kwargs)`` starts ``num_processes`` Python processes
(2 by default) on this machine, each with ``devices_per_process`` forced CPU
devices (``XLA_FLAGS=--xla_force_host_platform_device_count``,
``JAX_PLATFORMS=cpu``). Every process switches the CPU collectives to gloo,
joins the others with ``jax.distributed.initialize("127.0.0.1:<port>",
num_processes, process_id)`` (a free port is picked for every run), checks
that it sees the global device set, and calls ``fn(**kwargs)``. ``fn`` must
be a module-level function (it is imported by ``module:qualname`` in each
process); ``kwargs`` must be JSON-serialisable. ``fn`` returns a dict of
arrays; each process saves its dict as an ``.npz`` file (an array that is
not fully addressable is first gathered with
``multihost_utils.process_allgather``), and the call returns process 0's
dict of NumPy arrays (``all_processes=True``: the list of every process's).

Bounded: every process runs under one deadline (``timeout`` seconds from
the start); as soon as one process fails, the others are killed, and the
raised ``MultiprocessError`` carries the exit status and the end of every
process's stderr. A run whose coordinator port was taken between choosing
and binding it is retried with a new port.

This module is a helper, not a test file; it is also the worker's entry
point (``python -m tests.multiprocess ...``).
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["MultiprocessError", "free_port", "run_multiprocess"]

# stderr lines that every run prints (absl/gloo start-up chatter), left out of failure messages.
_NOISE = ("[Gloo] Rank", "WARNING: All log messages before absl::InitializeLog()")


class MultiprocessError(AssertionError):
    """A worker process failed, or the run exceeded its timeout."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(devices_per_process: int, *, x64: bool = False) -> dict:
    """The environment of one worker: forced CPU devices, the repository on the path."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices_per_process}"])
    env["JAX_PLATFORMS"] = "cpu"
    env["JAX_ENABLE_X64"] = "1" if x64 else "0"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def _tail(path: Path, limit: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "<no stderr>"
    lines = [ln for ln in text.splitlines() if not ln.startswith(_NOISE)]
    text = "\n".join(lines)
    return text[-limit:] if len(text) > limit else text


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the worker's own session: it and nothing else
        except (ProcessLookupError, PermissionError):
            proc.kill()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


def _launch_once(target, kwargs, num_processes, devices_per_process, timeout, x64, workdir: Path):
    port = free_port()
    env = worker_env(devices_per_process, x64=x64)
    procs, errs = [], []
    try:
        for pid in range(num_processes):
            err = workdir / f"stderr_{pid}.txt"
            errs.append(err)
            cmd = [
                sys.executable,
                "-m",
                "tests.multiprocess",
                target,
                str(pid),
                str(num_processes),
                str(devices_per_process),
                str(port),
                str(workdir),
                json.dumps(kwargs),
            ]
            with open(workdir / f"stdout_{pid}.txt", "wb") as out, open(err, "wb") as e:
                procs.append(
                    subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=e, start_new_session=True)
                )
        deadline = time.monotonic() + timeout
        failed = None
        while True:
            codes = [p.poll() for p in procs]
            failed = next((i for i, c in enumerate(codes) if c not in (None, 0)), None)
            if failed is not None or all(c == 0 for c in codes):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        for p in procs:
            _kill(p)
    codes = [p.returncode for p in procs]
    if all(c == 0 for c in codes):
        return None
    if failed is None:
        why = f"timed out after {timeout:.0f} s"
    else:
        why = f"process {failed} exited with status {codes[failed]}"
    report = [f"multi-process run of {target} ({num_processes} processes, port {port}): {why}."]
    for pid, (c, err) in enumerate(zip(codes, errs, strict=True)):
        status = "killed" if c is not None and c < 0 else f"exit status {c}"
        report.append(f"--- process {pid} ({status}) stderr:\n{_tail(err)}")
    return "\n".join(report)


def run_multiprocess(
    fn,
    *,
    num_processes: int = 2,
    devices_per_process: int = 2,
    timeout: float = 120.0,
    x64: bool = False,
    all_processes: bool = False,
    **kwargs,
):
    """Runs ``fn(**kwargs)`` in ``num_processes`` processes joined by ``jax.distributed``.

    Returns process 0's result as a dict of NumPy arrays (or every process's,
    in process order, with ``all_processes=True``). Raises
    ``MultiprocessError`` with every process's stderr if one fails or the run
    exceeds ``timeout`` seconds.
    """
    target = fn if isinstance(fn, str) else f"{fn.__module__}:{fn.__qualname__}"
    json.dumps(kwargs)  # fail here, not in the workers, on arguments that cannot travel
    for attempt in range(3):
        with tempfile.TemporaryDirectory(prefix="jaxloss_mp_") as tmp:
            workdir = Path(tmp)
            message = _launch_once(target, kwargs, num_processes, devices_per_process, timeout, x64, workdir)
            if message is None:
                results = []
                for pid in range(num_processes):
                    with np.load(workdir / f"process_{pid}.npz", allow_pickle=False) as data:
                        results.append({k: data[k] for k in data.files})
                return results if all_processes else results[0]
        port_taken = "address already in use" in message.lower() or "failed to bind" in message.lower()
        if not port_taken or attempt == 2:
            raise MultiprocessError(message)
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- worker side


def _to_numpy(value):
    import jax
    from jax.experimental import multihost_utils

    if isinstance(value, jax.Array) and not value.is_fully_addressable:
        value = multihost_utils.process_allgather(value, tiled=True)
    return np.asarray(value)


def _worker(argv) -> None:
    target, pid, nproc, ndev, port, workdir, kwargs = argv
    pid, nproc, ndev = int(pid), int(nproc), int(ndev)
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        f"127.0.0.1:{port}", num_processes=nproc, process_id=pid, initialization_timeout=60
    )
    if (jax.process_index(), jax.process_count(), jax.device_count(), jax.local_device_count()) != (
        pid,
        nproc,
        nproc * ndev,
        ndev,
    ):
        raise RuntimeError(
            f"process {pid}: expected process {pid} of {nproc} with {ndev} local and {nproc * ndev} "
            f"global devices; got process {jax.process_index()} of {jax.process_count()} with "
            f"{jax.local_device_count()} local and {jax.device_count()} global devices"
        )
    module, _, name = target.partition(":")
    fn = importlib.import_module(module)
    for part in name.split("."):
        fn = getattr(fn, part)
    result = fn(**json.loads(kwargs))
    arrays = {k: _to_numpy(v) for k, v in result.items()}
    tmp = Path(workdir) / f"process_{pid}.tmp.npz"
    np.savez(tmp, **arrays)
    tmp.rename(Path(workdir) / f"process_{pid}.npz")
    jax.distributed.shutdown()


if __name__ == "__main__":
    try:
        _worker(sys.argv[1:])
    except BaseException:
        # Exit now: a normal exit would run jax.distributed's shutdown barrier and wait
        # for the other processes, which may be blocked in a collective.
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
