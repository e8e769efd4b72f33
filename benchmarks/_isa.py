"""Instruction-set columns: every row timed under each ISA this CPU supports, in one run.

A row's figures depend on the vector instructions each library uses, and a
machine with AVX-512 can also show what an AVX2-only machine would see: each
library is told to stay at or below an instruction set through its own switch,
set in the environment of every timed process (``benchmarks._timing.isolated``;
never in the test suite or CI):

==========  ==============================================================================
library     switch (the ``avx2`` column)
==========  ==============================================================================
XLA         ``XLA_FLAGS=--xla_cpu_max_isa=AVX2``: the code XLA generates (fused
            elementwise and reduction kernels: the popcount scan, the selection,
            the softmax statistics) uses no AVX-512. The matrix-product kernels
            that XLA calls (YNNPACK) pick their own at run time and are not
            limited by it: the GEMM of a float search still runs this CPU's
            AVX-512 kernels, so a GEMM-bound jaxloss row is optimistic in the
            ``avx2`` column of an AVX-512 machine.
faiss       ``FAISS_SIMD_LEVEL=AVX2`` (faiss-cpu >= 1.12 is one library with
            dynamic dispatch and reads this variable; ``FAISS_OPT_LEVEL``, which
            chose between separately built libraries before, is set too and is
            ignored by such builds). The level loaded is recorded
            (``faiss.SIMDConfig.get_level_name()``).
OpenBLAS    ``OPENBLAS_CORETYPE=Haswell`` (NumPy, SciPy, scikit-learn, faiss's
            bundled OpenBLAS).
MKL         ``MKL_ENABLE_INSTRUCTIONS=AVX2`` (PyTorch's BLAS) and
            ``ATEN_CPU_CAPABILITY=avx2`` (PyTorch's own kernels).
NumPy       ``NPY_DISABLE_CPU_FEATURES`` lists the AVX-512 features NumPy's
            dispatcher would otherwise use.
==========  ==============================================================================

The ``avx512`` column sets none of them: every library picks its own
kernels for this CPU (AVX-512, VPOPCNTDQ, AMX where it uses them; faiss's
``AVX512_SPR`` level on a Sapphire Rapids). Only other hardware measures other
effects (cache sizes, a different core's popcount or FMA throughput): an
``avx2`` column is what this CPU's cores do with AVX2 code, not an AMD EPYC.
"""

from __future__ import annotations

import os

#: the columns, widest first: name -> (CPU flags required, environment of every timed process)
ISAS = {
    "avx512": (("avx512f", "avx512bw", "avx512vl"), {}),
    "avx2": (
        ("avx2", "fma"),
        {
            "XLA_FLAGS": "--xla_cpu_max_isa=AVX2",
            "FAISS_SIMD_LEVEL": "AVX2",
            "FAISS_OPT_LEVEL": "AVX2",
            "OPENBLAS_CORETYPE": "Haswell",
            "MKL_ENABLE_INSTRUCTIONS": "AVX2",
            "ATEN_CPU_CAPABILITY": "avx2",
            "NPY_DISABLE_CPU_FEATURES": None,  # NumPy's AVX-512 dispatch targets (numpy_avx512_targets)
        },
    ),
}
#: the variable that names the column a timed process belongs to (set by ``isolated``)
ISA_VARIABLE = "JAXLOSS_BENCHMARK_ISA"


def supported(cpu_flags) -> list[str]:
    """The columns this CPU can run, widest first (``cpu_flags``: the flags of ``/proc/cpuinfo``)."""
    flags = set(cpu_flags)
    return [name for name, (needs, _) in ISAS.items() if flags.issuperset(needs)]


def native(cpu_flags) -> str | None:
    """The widest column of this CPU: the one whose processes run with no limit."""
    names = supported(cpu_flags)
    return names[0] if names else None


def choose(requested: str | None, cpu_flags) -> list[str | None]:
    """The columns of a run: ``None`` (no ``--isa``: one column, no limit), ``"all"``, or names.

    The widest column this CPU supports runs without a limit (its libraries'
    own choice); the narrower ones with the switches of :data:`ISAS`.
    """
    if requested is None:
        return [None]
    names = supported(cpu_flags)
    if requested == "all":
        if not names:
            raise SystemExit("--isa all: this CPU has none of the instruction sets " + ", ".join(ISAS))
        return names
    wanted = [name.strip().lower() for name in requested.split(",") if name.strip()]
    for name in wanted:
        if name not in ISAS:
            raise SystemExit(f"--isa: unknown instruction set {name!r}; known: {', '.join(ISAS)}, all")
        if name not in names:
            raise SystemExit(
                f"--isa: this CPU cannot run {name!r} (it supports: {', '.join(names) or 'none'})"
            )
    return wanted


def environment(isa: str | None, cpu_flags=None, base: dict | None = None) -> dict:
    """The variables a timed process of column ``isa`` gets on top of ``base`` (default: ``os.environ``).

    No variable for ``None`` or for this CPU's widest column (native); for a
    narrower one, the switches of :data:`ISAS`, with ``--xla_cpu_max_isa``
    appended to the ``XLA_FLAGS`` already given. The column's name is always
    recorded in :data:`ISA_VARIABLE`.
    """
    if isa is None:
        return {}
    base = os.environ if base is None else base
    if cpu_flags is None:
        from benchmarks._env import cpu_record  # noqa: PLC0415

        cpu_flags = cpu_record()["flags"]
    extra = {ISA_VARIABLE: isa}
    if isa == native(cpu_flags):
        return extra
    for key, value in ISAS[isa][1].items():
        if key == "XLA_FLAGS" and base.get(key):
            value = f"{base[key]} {value}"
        if key == "NPY_DISABLE_CPU_FEATURES":
            value = numpy_avx512_targets()
        extra[key] = value
    return extra


def numpy_avx512_targets() -> str:
    """NumPy's AVX-512 dispatch targets, space-separated (``X86_V4 AVX512_ICL AVX512_SPR`` for
    NumPy 2.4; ``AVX512F AVX512_SKX ...`` before 2.3): naming one it does not dispatch is a warning."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__  # noqa: PLC0415
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__  # noqa: PLC0415
    return " ".join(t for t in __cpu_dispatch__ if "512" in t or t == "X86_V4")


def current() -> str | None:
    """The column this process was started for (None outside an ``--isa`` run)."""
    return os.environ.get(ISA_VARIABLE) or None
