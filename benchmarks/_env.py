"""What a benchmark ran on, recorded with its results.

The machine (CPU model and the instruction-set flags that decide which kernels
the libraries pick, core counts, load, Python and library versions) is recorded
once per run by :func:`machine_record`; every timed process records its own
configuration with :func:`process_record`: the XLA backend and thread count
when JAX is loaded, each BLAS / OpenMP library it loaded
(``threadpoolctl.threadpool_info()``: library, version, architecture or core
type, threads), PyTorch's BLAS and thread count when PyTorch is loaded, and the
``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` environment it ran with.

``OPENBLAS_CORETYPE`` forces OpenBLAS onto the kernels of a named (often older)
core and ``OPENBLAS_L2_SIZE`` changes its blocking, so a peer that uses
OpenBLAS (NumPy / SciPy / scikit-learn, faiss-cpu) runs with both removed from
its environment (:func:`peer_environment`); the test suite and CI keep the
environment they are given.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# the flags that decide which GEMM / popcount kernels XLA, OpenBLAS, MKL and faiss use
CPU_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx512_vpopcntdq",
    "avx512_bitalg",  # vpopcntw/b: jaxloss's packed scan counts 16-bit lanes with it
    "gfni",  # LLVM's AVX2 popcount uses it where present (AMD EPYC before Zen 4 has none)
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

# distributions whose versions are recorded (read from their metadata: nothing is imported)
DISTRIBUTIONS = (
    "jax",
    "jaxlib",
    "numpy",
    "torch",
    "optax",
    "scipy",
    "scikit-learn",
    "faiss-cpu",
    "pytorch-metric-learning",
    "threadpoolctl",
)


def cpu_record() -> dict:
    """CPU model, the flags of :data:`CPU_FLAGS` it has, logical and schedulable cores."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model == (platform.processor() or platform.machine()):
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    try:
        schedulable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        schedulable = os.cpu_count()
    return {
        "model": model,
        "flags": [f for f in CPU_FLAGS if f in flags],
        "cpu_count": os.cpu_count(),
        "schedulable_cores": schedulable,
    }


def openblas_environment(environ=None) -> dict:
    """The values of ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` (None when unset)."""
    environ = os.environ if environ is None else environ
    return {name: environ.get(name) for name in OPENBLAS_VARIABLES}


def peer_environment() -> dict:
    """This process's environment without the OpenBLAS overrides, for a peer's own process."""
    return {key: value for key, value in os.environ.items() if key not in OPENBLAS_VARIABLES}


def detected_openblas_core() -> str | None:
    """The core type that NumPy's (current) OpenBLAS detects on this CPU, or None."""
    import numpy  # noqa: F401, PLC0415 - loads NumPy's OpenBLAS

    for lib in blas_record():
        if lib.get("library") == "openblas" and lib.get("where") == "numpy.libs":
            return lib.get("architecture")
    return None


def fallback_core_override(record: dict | None, detected: str | None) -> dict | None:
    """``{"OPENBLAS_CORETYPE": detected}`` when an OpenBLAS of a timed process ran another core type.

    An older OpenBLAS bundled with a peer (faiss-cpu's) may not know a newer
    CPU and fall back to generic kernels (``Prescott``) with
    ``OPENBLAS_CORETYPE`` unset; the peer is then also timed with the core type
    that NumPy's current OpenBLAS detects, and the faster figure is the peer's.
    """
    if not record or not detected:
        return None
    if (record.get("openblas_environment") or {}).get("OPENBLAS_CORETYPE"):
        return None  # the core type was chosen (an instruction-set column): no fallback to correct
    cores = {lib.get("architecture") for lib in record.get("blas", []) if lib.get("library") == "openblas"}
    return {"OPENBLAS_CORETYPE": detected} if cores - {detected, None} else None


def xla_record() -> dict | None:
    """XLA's backend, devices and CPU thread count, when JAX is loaded in this process."""
    if "jax" not in sys.modules:
        return None
    import jax  # noqa: PLC0415

    devices = sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()})
    flags = os.environ.get("XLA_FLAGS", "")
    # XLA's CPU client sizes its intra-op thread pool to the schedulable cores
    # (tsl::port::MaxParallelism) unless XLA_FLAGS turns multi-threading off.
    threads = 1 if "xla_cpu_multi_thread_eigen=false" in flags else cpu_record()["schedulable_cores"]
    return {
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": devices,
        "cpu_threads": threads,
        "XLA_FLAGS": flags or None,
    }


def _where(path: str) -> str:
    """``numpy.libs``, ``faiss_cpu.libs``, ``torch/lib``: which package brought a shared library."""
    parent = os.path.dirname(path)
    name = os.path.basename(parent)
    return f"{os.path.basename(os.path.dirname(parent))}/{name}" if name == "lib" else name


def blas_record() -> list[dict]:
    """Each BLAS / OpenMP library loaded in this process, and PyTorch's BLAS if PyTorch is loaded.

    From ``threadpoolctl.threadpool_info()``; PyTorch links MKL statically, so its
    entry comes from ``torch.__config__`` and ``torch.get_num_threads()``.
    """
    libraries = []
    try:
        import threadpoolctl  # noqa: PLC0415

        for info in threadpoolctl.threadpool_info():
            libraries.append(
                {
                    "library": info.get("internal_api"),
                    "version": info.get("version"),
                    "architecture": info.get("architecture"),
                    "threads": info.get("num_threads"),
                    "where": _where(info.get("filepath") or ""),
                }
            )
    except ImportError:
        libraries.append({"library": "threadpoolctl not installed"})
    if "torch" in sys.modules:
        import torch  # noqa: PLC0415

        config = torch.__config__.show()
        blas = config.split("BLAS_INFO=", 1)[1].split(",", 1)[0] if "BLAS_INFO=" in config else "?"
        libraries.append(
            {
                "library": f"torch BLAS ({blas})",
                "version": torch.__version__,
                "architecture": torch.backends.cpu.get_cpu_capability(),
                "threads": torch.get_num_threads(),
                "where": "linked into torch",
            }
        )
    return libraries


def faiss_record() -> dict | None:
    """The SIMD level faiss loaded (and the variables that choose it), when faiss is loaded."""
    if "faiss" not in sys.modules:
        return None
    import faiss  # noqa: PLC0415

    config = getattr(faiss, "SIMDConfig", None)  # faiss >= 1.12: dynamic dispatch
    level = config.get_level_name() if config is not None else None
    return {
        "version": faiss.__version__,
        "simd_level": level,
        "compile_options": faiss.get_compile_options().strip(),
        "FAISS_SIMD_LEVEL": os.environ.get("FAISS_SIMD_LEVEL"),
        "FAISS_OPT_LEVEL": os.environ.get("FAISS_OPT_LEVEL"),
    }


def process_record() -> dict:
    """The configuration of this (timed) process: its instruction-set column and each library's kernels."""
    from benchmarks import _isa  # noqa: PLC0415

    return {
        "pid": os.getpid(),
        "isa": _isa.current(),
        "openblas_environment": openblas_environment(),
        "isa_environment": {
            key: os.environ.get(key) for key in _isa.ISAS["avx2"][1] if os.environ.get(key) is not None
        },
        "xla": xla_record(),
        "blas": blas_record(),
        "faiss": faiss_record(),
    }


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:  # optional peers
            pass
    return found


def machine_record() -> dict:
    """The machine and the library versions, once per benchmark run."""
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "cpu": cpu_record(),
        "load_average": load,
        "openblas_environment_given": openblas_environment(),
        "versions": versions(),
    }


def describe_machine(record: dict) -> str:
    cpu = record["cpu"]
    given = ", ".join(
        f"{k}={v if v is not None else 'unset'}" for k, v in record["openblas_environment_given"].items()
    )
    load = record["load_average"]
    load_text = "n/a" if load is None else ", ".join(f"{x:.1f}" for x in load)
    busy = load is not None and load[0] > 0.5 * (cpu["schedulable_cores"] or 1)
    warning = (
        [
            "- **the machine was busy when the run started (1-minute load above half the cores): "
            "these figures are not for publication**"
        ]
        if busy
        else []
    )
    return "\n".join(
        warning
        + [
            f"- CPU: {cpu['model']}; flags: {' '.join(cpu['flags']) or 'none of ' + ', '.join(CPU_FLAGS)}",
            f"- cores: os.cpu_count() = {cpu['cpu_count']}, schedulable = {cpu['schedulable_cores']}",
            f"- load average at the start (1, 5, 15 min): {load_text}",
            f"- environment given to the run: {given} (peers using OpenBLAS run with both unset)",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()),
        ]
    )


def describe_process(record: dict | None) -> str:
    """One line: XLA threads / BLAS libraries and threads / OpenBLAS variables of one timed process."""
    if not record:
        return "same process (not isolated)"
    parts = []
    blas = sorted(record.get("blas", []), key=lambda lib: (str(lib.get("where")), str(lib.get("library"))))
    if record.get("xla"):
        xla = record["xla"]
        flags = xla.get("XLA_FLAGS") or ""
        isa = flags.split("--xla_cpu_max_isa=", 1)[1].split()[0] if "--xla_cpu_max_isa=" in flags else None
        parts.append(
            f"XLA {xla['backend']} {xla['cpu_threads']} threads" + (f" max ISA {isa}" if isa else "")
        )
    if record.get("faiss"):
        faiss = record["faiss"]
        parts.append(
            f"faiss {faiss.get('version')} SIMD {faiss.get('simd_level') or faiss.get('compile_options')}"
        )
    for lib in blas:
        name = lib.get("library")
        if name == "openmp":
            parts.append(f"OpenMP {lib.get('threads')} threads [{lib.get('where')}]")
        elif name and name.startswith("torch"):
            parts.append(f"{name} {lib.get('architecture')} {lib.get('threads')} threads")
        elif name == "openblas":
            parts.append(
                f"OpenBLAS {lib.get('version')} {lib.get('architecture')} {lib.get('threads')} threads [{lib.get('where')}]"
            )
        elif name:
            parts.append(
                f"{name} {lib.get('version')} {lib.get('architecture')} {lib.get('threads')} threads"
            )
    set_vars = [f"{k}={v}" for k, v in record.get("openblas_environment", {}).items() if v is not None]
    limits = record.get("isa_environment") or {}
    set_vars += [
        f"{k}={limits[k]}" for k in ("MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY") if k in limits
    ]
    parts.append(", ".join(set_vars) if set_vars else "OPENBLAS_CORETYPE/L2_SIZE unset")
    return "; ".join(parts)


def environment_probe():
    """A factory for ``benchmarks._timing.isolated``: returns the OpenBLAS variables its process sees."""
    return lambda: [value or "" for value in openblas_environment().values()]


def isa_probe():
    """A factory for ``benchmarks._timing.isolated``: the instruction-set limits its process sees."""
    from benchmarks import _isa  # noqa: PLC0415

    names = (
        "XLA_FLAGS",
        "FAISS_SIMD_LEVEL",
        "OPENBLAS_CORETYPE",
        "MKL_ENABLE_INSTRUCTIONS",
        _isa.ISA_VARIABLE,
    )
    return lambda: [os.environ.get(name) or "" for name in names]
