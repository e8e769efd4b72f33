"""Cross-framework checking: run a jaxloss (or any JAX) function and its PyTorch
counterpart on the same inputs and report value and gradient differences.

The project's own reference tests use ``compare_with_torch``; a user
validating a port uses the same function. PyTorch is imported only when the
function is called.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike, DTypeLike

__all__ = ["Comparison", "ComparisonRow", "compare_with_torch", "default_tolerance"]

#: (rtol, atol) per dtype. ``atol`` is scaled by ``max(1, max |reference|)``.
#: A 1% error is outside them for float16, float32 and float64; bfloat16 (8-bit
#: significand, spacing 0.8%) cannot resolve 1% and is checked to ~10%.
TOLERANCES = {
    "float16": (5e-3, 5e-4),
    "bfloat16": (1e-1, 1e-2),
    "float32": (1e-4, 1e-5),
    "float64": (1e-9, 1e-10),
}


def default_tolerance(dtype: DTypeLike) -> tuple[float, float]:
    """The ``(rtol, atol)`` used for ``dtype`` (a 1% error is never within it, except bfloat16).

    ``compare_with_torch`` accepts a difference when
    ``|jax - torch| <= atol * max(1, max |torch|) + rtol * |torch|``.
    Unknown dtypes get the float32 tolerance.

    Args:
      dtype: a NumPy dtype or its name (``"float16"``, ``"bfloat16"``,
        ``"float32"``, ``"float64"``).

    Returns:
      ``(rtol, atol)``, two floats.

    Examples:
      >>> from jaxloss.testing import default_tolerance
      >>> default_tolerance("float32")
      (0.0001, 1e-05)
      >>> default_tolerance("float64")
      (1e-09, 1e-10)
    """
    return TOLERANCES[np.dtype(dtype).name if np.dtype(dtype).name in TOLERANCES else "float32"]


@dataclasses.dataclass(frozen=True)
class ComparisonRow:
    """One compared quantity of a ``Comparison``: one output or one gradient in one dtype.

    Attributes:
      dtype: the dtype the inputs were cast to, e.g. ``"float32"``.
      what: ``"value[i]"`` (the i-th output) or ``"grad[j]"`` (the gradient
        with respect to the j-th input).
      shape: the shape of the compared array.
      max_abs: the largest absolute difference (NaN positions of PyTorch excluded).
      max_rel: the largest relative difference.
      reference_nan: how many entries PyTorch returned as NaN (excluded).
      candidate_nonfinite: how many entries jaxloss returned non-finite where
        PyTorch is finite (any such entry fails the row).
      ok: every entry within the tolerance.

    Examples:
      >>> from jaxloss.testing import ComparisonRow
      >>> row = ComparisonRow("float32", "value[0]", (3,), 1e-7, 2e-7, 0, 0, True)
      >>> row.ok
      True
    """

    dtype: str
    what: str
    shape: tuple
    max_abs: float
    max_rel: float
    reference_nan: int
    candidate_nonfinite: int
    ok: bool


@dataclasses.dataclass(frozen=True)
class Comparison:
    """The report of ``compare_with_torch``; ``ok`` is True when every row is.

    A ``Comparison`` is truthy when ``ok``, so ``assert compare_with_torch(...)``
    works; its ``repr`` is a table with one line per row, and ``worst()``
    returns the row with the largest relative difference.

    Attributes:
      rows: one ``ComparisonRow`` per dtype and compared output or gradient.
      rtol: the relative tolerance used, per dtype name.
      atol: the absolute tolerance used, per dtype name.

    Examples:
      >>> from jaxloss.testing import Comparison, ComparisonRow
      >>> row = ComparisonRow("float32", "value[0]", (3,), 1e-7, 2e-7, 0, 0, True)
      >>> report = Comparison(rows=(row,), rtol={"float32": 1e-4}, atol={"float32": 1e-5})
      >>> bool(report), report.worst().what
      (True, 'value[0]')
    """

    rows: tuple[ComparisonRow, ...]
    rtol: dict
    atol: dict

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def __bool__(self) -> bool:
        return self.ok

    def worst(self) -> ComparisonRow:
        """The row with the largest relative difference."""
        return max(self.rows, key=lambda r: (not r.ok, r.max_rel))

    def __repr__(self) -> str:
        head = f"{'dtype':<9} {'what':<10} {'shape':<16} {'max abs':>10} {'max rel':>10}  ok"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            note = ""
            if r.reference_nan:
                note += f"  (torch NaN at {r.reference_nan}, excluded)"
            if r.candidate_nonfinite:
                note += f"  (jax non-finite at {r.candidate_nonfinite})"
            lines.append(
                f"{r.dtype:<9} {r.what:<10} {str(r.shape):<16} {r.max_abs:>10.3g} "
                f"{r.max_rel:>10.3g}  {'yes' if r.ok else 'NO'}{note}"
            )
        lines.append(f"ok: {self.ok}")
        return "\n".join(lines)


def _is_float_array(x) -> bool:
    # jnp.issubdtype: NumPy does not count ml_dtypes' bfloat16 as floating
    return isinstance(x, (np.ndarray, jax.Array)) and jnp.issubdtype(np.asarray(x).dtype, jnp.floating)


def _flatten(out) -> list:
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in _flatten(o)]
    return [out]


def _compare(candidate, reference, dtype, what, rtol, atol) -> ComparisonRow:
    cand = np.asarray(candidate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if cand.shape != ref.shape:
        return ComparisonRow(dtype, what, ref.shape, np.inf, np.inf, 0, 0, False)
    ref_nan = np.isnan(ref)
    cand_bad = ~np.isfinite(cand) & np.isfinite(ref)
    both = ~ref_nan & ~cand_bad
    same = (cand == ref) & both  # equal infinities
    diff = np.where(both & ~same, np.abs(cand - ref), 0.0)
    diff = np.nan_to_num(diff, nan=np.inf)
    rel = diff / np.maximum(np.abs(np.where(np.isfinite(ref), ref, 1.0)), np.finfo(np.float64).tiny)
    finite_ref = ref[np.isfinite(ref)]
    scale = max(1.0, float(np.max(np.abs(finite_ref)))) if finite_ref.size else 1.0
    within = diff <= atol * scale + rtol * np.abs(np.where(np.isfinite(ref), ref, 0.0))
    ok = bool(np.all(within) and not cand_bad.any())
    return ComparisonRow(
        dtype,
        what,
        ref.shape,
        float(diff.max()) if diff.size else 0.0,
        float(np.where(diff > 0, rel, 0.0).max()) if diff.size else 0.0,
        int(ref_nan.sum()),
        int(cand_bad.sum()),
        ok,
    )


def compare_with_torch(
    jax_fn: Callable,
    torch_fn: Callable,
    *inputs: ArrayLike,
    grad: bool = True,
    dtypes: Sequence[str] = ("float32", "float64"),
    argnums: Sequence[int] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
) -> Comparison:
    """Runs ``jax_fn`` and ``torch_fn`` on the same inputs; compares values and gradients.

    Floating inputs are cast to each dtype in ``dtypes`` (integer and boolean
    arrays and Python objects are passed unchanged, as ``torch.from_numpy`` /
    ``jnp.asarray``). Gradients are those of ``sum(c * output)`` with a fixed
    random cotangent ``c`` (so every output element is checked), with respect
    to the floating inputs (or ``argnums``). Positions where PyTorch returns NaN
    are excluded and counted (jaxloss returns finite limits there); a
    non-finite jaxloss value where PyTorch is finite is a failure. A jitted
    ``jax_fn`` (one with ``.lower``) is run once per dtype as a single compiled
    program that returns its values and gradients.

    Tolerance: ``|jax - torch| <= atol * max(1, max|torch|) + rtol * |torch|``
    with ``(rtol, atol)`` from ``TOLERANCES`` (float32: 1e-4, 1e-5; float64:
    1e-9, 1e-10; float16: 5e-3, 5e-4) unless given; a 1% error is never ok
    (bfloat16, whose spacing is 0.8%, uses 0.1, 0.01).

    Args:
      jax_fn: function of JAX arrays returning an array or a tuple of arrays.
      torch_fn: the same function written with PyTorch.
      *inputs: NumPy arrays (or Python scalars / objects).
      grad: also compare gradients.
      dtypes: floating dtypes to run in; float64 runs with JAX's x64 enabled.
      argnums: which inputs to differentiate (default: every floating array).
      rtol: override the dtype's tolerance.
      atol: override the dtype's tolerance.
      seed: seed of the random cotangent.

    Returns:
      A ``Comparison``; ``report.ok`` is the verdict, ``repr(report)`` a table.

    Examples:
      >>> import numpy as np, torch, jaxloss
      >>> x = np.random.default_rng(0).normal(size=(4, 3))
      >>> report = compare_with_torch(
      ...     lambda a: jaxloss.vector_norm(a, axis=-1),
      ...     lambda a: torch.linalg.vector_norm(a, dim=-1), x)
      >>> report.ok
      True
    """
    import torch  # noqa: PLC0415 - optional dependency, imported on use

    rows: list[ComparisonRow] = []
    rtols, atols = {}, {}
    for dtype in dtypes:
        r_default, a_default = default_tolerance(dtype)
        rt = r_default if rtol is None else rtol
        at = a_default if atol is None else atol
        rtols[dtype], atols[dtype] = rt, at
        x64 = np.dtype(dtype) == np.float64
        with jax.enable_x64(bool(x64) or jax.config.jax_enable_x64):
            rows.extend(_compare_one(jax_fn, torch_fn, inputs, dtype, grad, argnums, rt, at, seed, torch))
    return Comparison(tuple(rows), rtols, atols)


def _compare_one(jax_fn, torch_fn, inputs, dtype, grad, argnums, rtol, atol, seed, torch):
    np_dtype = jnp.dtype(dtype)
    cast = [np.asarray(x).astype(np_dtype) if _is_float_array(x) else x for x in inputs]
    j_in = [jnp.asarray(x, dtype=np_dtype) if _is_float_array(x) else _to_jax(x) for x in cast]
    torch_dtype = getattr(torch, np.dtype(np_dtype).name if np_dtype != jnp.bfloat16 else "bfloat16")

    def to_torch(x, requires_grad=False):
        if _is_float_array(x):
            t = torch.tensor(np.asarray(x, dtype=np.float64), dtype=torch_dtype)
            return t.requires_grad_(requires_grad)
        if isinstance(x, np.ndarray):
            return torch.from_numpy(np.array(x))
        return x

    diff_args = [i for i, x in enumerate(inputs) if _is_float_array(x)] if argnums is None else list(argnums)
    t_in = [to_torch(x, grad and i in diff_args) for i, x in enumerate(cast)]
    with_grad = grad and bool(diff_args)
    rng = np.random.default_rng(seed)
    if with_grad and hasattr(jax_fn, "lower"):
        # a jitted jax_fn: its values and gradients come from one compiled program
        shapes = _flatten(jax.eval_shape(jax_fn, *j_in))
        cots = [rng.normal(size=o.shape) for o in shapes]
        j_out, j_grads = jax.jit(_values_and_grads(jax_fn, j_in, diff_args, cots, np_dtype))(
            *[j_in[k] for k in diff_args]
        )
    else:
        j_out = _flatten(jax_fn(*j_in))
        if with_grad:
            cots = [rng.normal(size=np.shape(o)) for o in j_out]
            grad_fn = _values_and_grads(jax_fn, j_in, diff_args, cots, np_dtype)
            j_grads = grad_fn(*[j_in[k] for k in diff_args])[1]
    t_out = _flatten(torch_fn(*t_in))
    rows = []
    if len(j_out) != len(t_out):
        raise ValueError(f"compare_with_torch: jax_fn returned {len(j_out)} outputs, torch_fn {len(t_out)}.")
    for i, (a, b) in enumerate(zip(j_out, t_out, strict=True)):
        b = b.detach().double().numpy() if hasattr(b, "detach") else np.asarray(b)
        rows.append(_compare(np.asarray(a, np.float64), b, dtype, f"value[{i}]", rtol, atol))
    if not with_grad:
        return rows
    t_total = sum(
        (o.to(torch_dtype) * torch.tensor(c, dtype=torch_dtype)).sum()
        for o, c in zip(t_out, cots, strict=True)
        if o.requires_grad
    )
    t_leaves = [t_in[k] for k in diff_args]
    if isinstance(t_total, torch.Tensor) and t_total.requires_grad:
        t_grads = torch.autograd.grad(t_total, t_leaves, allow_unused=True)
    else:
        t_grads = [None] * len(t_leaves)
    for k, gj, gt, leaf in zip(diff_args, j_grads, t_grads, t_leaves, strict=True):
        gt = np.zeros(tuple(leaf.shape)) if gt is None else gt.detach().double().numpy()
        rows.append(_compare(np.asarray(gj, np.float64), gt, dtype, f"grad[{k}]", rtol, atol))
    return rows


def _values_and_grads(jax_fn, j_in, diff_args, cots, np_dtype):
    """``args -> (outputs, gradients)`` of ``sum(output * cotangent)`` in the ``diff_args`` inputs."""

    def scalar(*args):
        full = list(j_in)
        for k, a in zip(diff_args, args, strict=True):
            full[k] = a
        outs = _flatten(jax_fn(*full))
        pairs = zip(outs, cots, strict=True)
        return sum(jnp.sum(o.astype(np_dtype) * jnp.asarray(c, np_dtype)) for o, c in pairs), outs

    grad_fn = jax.grad(scalar, argnums=tuple(range(len(diff_args))), has_aux=True)
    return lambda *args: tuple(reversed(grad_fn(*args)))


def _to_jax(x):
    if isinstance(x, np.ndarray):
        return jnp.asarray(x)
    return x
