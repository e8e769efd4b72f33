"""Numerical building blocks: dtype policy, safe abs / sqrt / p-norms, xlogy.

Every function here has a value and a gradient that are finite at every finite
input. Where the mathematical derivative does not exist (``|x|`` at 0, ``sqrt``
at 0, a norm at the zero vector, a max with ties) the subgradient chosen is the
one PyTorch uses:

* ``abs``: ``sign(x)``, so 0 at 0 (``jnp.abs`` in JAX gives 1 at 0);
* ``sqrt`` and every p-norm: 0 where the value is 0;
* ``inf`` / ``-inf`` norms: the gradient is shared equally between tied
  entries (PyTorch's ``amax`` rule);
* ``xlogy(x, y)``: 0 with respect to both arguments where ``x == 0``.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "abs",
    "as_float",
    "compute_dtype",
    "default_float_dtype",
    "is_low_precision",
    "log1p_sum_exp",
    "masked_logsumexp",
    "normalize",
    "safe_divide",
    "sqrt",
    "p_norm",
    "xlogx",
    "xlogy",
]

_builtin_abs = abs

# --------------------------------------------------------------------------- dtype policy


def default_float_dtype() -> np.dtype:
    """The float dtype JAX gives Python floats: float64 with x64 enabled, else float32."""
    return jnp.zeros((), dtype=float).dtype


def is_low_precision(dtype) -> bool:
    """True for float16 and bfloat16, which jaxloss computes in float32."""
    return jnp.dtype(dtype) in (jnp.dtype(jnp.float16), jnp.dtype(jnp.bfloat16))


def compute_dtype(*dtypes) -> np.dtype:
    """The dtype in which jaxloss computes for inputs of the given dtypes.

    Booleans and integers are promoted to the default float dtype, float16 and
    bfloat16 to float32, and float32/float64 are kept (their promotion).
    """
    floats = []
    for dt in dtypes:
        dt = jnp.dtype(dt)
        if jnp.issubdtype(dt, jnp.floating):
            floats.append(jnp.float32 if is_low_precision(dt) else dt)
        elif jnp.issubdtype(dt, jnp.complexfloating):
            fn, arg = _public_caller_and_complex_argument()
            raise TypeError(f"{fn}: `{arg}` must be real (jaxloss works on real arrays); got dtype {dt}.")
    if not floats:
        return default_float_dtype()
    return jnp.result_type(*floats)


def _is_complex(value) -> bool:
    dt = getattr(value, "dtype", None)
    if dt is None:
        try:
            dt = np.asarray(value).dtype
        except Exception:  # noqa: BLE001 - any object that is not array-like is not complex
            return False
    try:
        return bool(jnp.issubdtype(dt, jnp.complexfloating))
    except TypeError:
        return False


def _public_caller_and_complex_argument() -> tuple[str, str]:
    """Names the public function that received a complex array, and that argument, for the error.

    Found on the call stack, so that no function has to thread its name down to the dtype
    policy: the outermost frame of a public function of ``jaxloss``, ``jaxloss.torch`` or
    ``jaxloss.torch.linalg`` (its ``fn`` string if it has one, else its name) and its first
    parameter holding a complex array. Falls back to ``"jaxloss"`` and ``"input"``. Runs
    only on the error path.
    """
    public = set()
    for module in ("jaxloss", "jaxloss.torch", "jaxloss.torch.linalg"):
        public.update(getattr(sys.modules.get(module), "__all__", ()))
    fn, arg = "jaxloss", "input"
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if frame.f_globals.get("__name__", "").startswith("jaxloss") and code.co_name in public:
            local = frame.f_locals
            name = local.get("fn")
            params = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
            complex_params = [p for p in params if _is_complex(local.get(p))]
            if complex_params:  # the outermost public frame that was handed the complex array
                fn = name if isinstance(name, str) else code.co_name
                arg = complex_params[0]
        frame = frame.f_back
    return fn, arg


def output_dtype(*dtypes) -> np.dtype:
    """The dtype jaxloss returns: the promoted floating input dtype (half stays half)."""
    floats = [jnp.dtype(d) for d in dtypes if jnp.issubdtype(jnp.dtype(d), jnp.floating)]
    if not floats:
        return default_float_dtype()
    return jnp.result_type(*floats)


def as_float(*xs):
    """Converts arrays to the common compute dtype; returns ``(arrays..., out_dtype)``.

    >>> x, dt = as_float(jnp.array([1, 2], dtype=jnp.int32))
    >>> x.dtype == default_float_dtype(), dt == default_float_dtype()
    (True, True)
    """
    arrays = [jnp.asarray(x) for x in xs]
    cdt = compute_dtype(*(a.dtype for a in arrays))
    odt = output_dtype(*(a.dtype for a in arrays))
    return (*(a.astype(cdt) for a in arrays), odt)


# --------------------------------------------------------------------------- elementwise


@jax.custom_jvp
def abs(x):  # noqa: A001 - deliberately shadows the builtin inside jaxloss
    """``|x|`` with the gradient ``sign(x)`` (0 at 0), as PyTorch."""
    return jnp.abs(x)


@abs.defjvp
def _abs_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return jnp.abs(x), jnp.sign(x) * t


@jax.custom_jvp
def sqrt(x):
    """``sqrt(max(x, 0))`` with gradient ``1 / (2 sqrt(x))`` for ``x > 0`` and 0 elsewhere."""
    return jnp.sqrt(jnp.maximum(x, 0))


@sqrt.defjvp
def _sqrt_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = sqrt(x)
    positive = y > 0
    return y, jnp.where(positive, t / (2 * jnp.where(positive, y, 1)), 0)


def safe_divide(num, den, fill=0.0):
    """``num / den`` where ``den != 0`` and ``fill`` elsewhere, with finite gradients."""
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1), fill)


@jax.custom_jvp
def xlogy(x, y):
    """``x * log(y)`` with ``0 * log(0) = 0``; gradients are 0 where ``x == 0``.

    >>> float(xlogy(0.0, 0.0)), float(jax.grad(xlogy, argnums=(0, 1))(0.0, 0.0)[1])
    (0.0, 0.0)
    """
    zero = x == 0
    return jnp.where(zero, 0, x * jnp.log(jnp.where(zero, 1, y)))


@xlogy.defjvp
def _xlogy_jvp(primals, tangents):
    x, y = primals
    tx, ty = tangents
    zero = x == 0
    safe_y = jnp.where(zero, 1, y)
    out = xlogy(x, y)
    dx = jnp.where(zero, 0, jnp.log(safe_y))
    dy = jnp.where(zero, 0, x / safe_y)
    return out, dx * tx + dy * ty


def xlogx(x):
    """``x * log(x)`` with ``0 * log(0) = 0`` and gradient 0 at 0 (finite everywhere)."""
    return xlogy(x, x)


# --------------------------------------------------------------------------- p-norms


def _as_axis_tuple(axis, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, int):
        axis = (axis,)
    return tuple(sorted(a % ndim if ndim else a for a in axis))


def p_norm(x, p: float = 2.0, axis: int | Sequence[int] | None = None, keepdims: bool = False):
    """``(sum |x_i|^p)^(1/p)`` over ``axis`` for any real ``p`` (0, +-inf included).

    ``p = 0`` counts non-zero entries, ``inf`` / ``-inf`` are the largest /
    smallest absolute value, and negative or fractional ``p`` use the same
    formula (a zero entry makes a negative-``p`` norm 0). The gradient is finite
    everywhere: 0 where the norm is 0, 0 for ``p = 0``, shared equally between
    ties for ``+-inf``, and 0 at zero entries for ``p < 1`` (PyTorch's rule).
    """
    x = jnp.asarray(x)
    axes = _as_axis_tuple(axis, x.ndim)
    p = float(p)
    return _p_norm(x, p, axes, bool(keepdims))


def _p_norm_value(x, p, axes, keepdims):
    if p == 2.0:
        return jnp.sqrt(jnp.sum(x * x, axis=axes, keepdims=keepdims))
    a = jnp.abs(x)
    if p == math.inf:
        return jnp.max(a, axis=axes, keepdims=keepdims, initial=0).astype(x.dtype)
    if p == -math.inf:
        return jnp.min(a, axis=axes, keepdims=keepdims)
    if p == 0.0:
        return jnp.sum(x != 0, axis=axes, keepdims=keepdims).astype(x.dtype)
    if p == 1.0:
        return jnp.sum(a, axis=axes, keepdims=keepdims)
    return jnp.sum(a**p, axis=axes, keepdims=keepdims) ** (1.0 / p)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def _p_norm(x, p, axes, keepdims):
    return _p_norm_value(x, p, axes, keepdims)


@_p_norm.defjvp
def _p_norm_jvp(p, axes, keepdims, primals, tangents):
    (x,), (t,) = primals, tangents
    out = _p_norm(x, p, axes, keepdims)
    n = _p_norm_value(x, p, axes, True)
    grad = _p_norm_grad(x, n, p, axes)
    dot = jnp.sum(grad * t, axis=axes, keepdims=keepdims)
    return out, dot.astype(out.dtype)


def _p_norm_grad(x, n, p, axes):
    """d||x||_p / dx given the norm ``n`` (kept dims), finite everywhere."""
    if p == 0.0:
        return jnp.zeros_like(x)
    sign = jnp.sign(x)
    if p == 1.0:
        return sign
    if _builtin_abs(p) == math.inf:
        tied = (jnp.abs(x) == n) & (n == n)
        count = jnp.sum(tied, axis=axes, keepdims=True)
        return sign * tied / jnp.maximum(count, 1)
    positive = n > 0
    safe_n = jnp.where(positive, n, 1)
    if p == 2.0:
        return jnp.where(positive, x / safe_n, 0)
    a = jnp.abs(x)
    nonzero = (a > 0) & positive
    ratio = jnp.where(nonzero, a / safe_n, 1)
    return jnp.where(nonzero, sign * ratio ** (p - 1), 0)


# --------------------------------------------------------------------------- divergences


@jax.custom_jvp
def x_times_log(x, log_y):
    """``x * log_y`` with ``0`` where ``x == 0`` (even if ``log_y = -inf``).

    The log-space twin of :func:`xlogy`. Gradients: ``log_y`` with respect to
    ``x`` (0 where ``x == 0`` and ``log_y = -inf``, the subgradient that keeps
    them finite) and ``x`` with respect to ``log_y`` (so 0 where ``x == 0``).

    >>> float(x_times_log(0.0, -jnp.inf)), float(jax.grad(x_times_log)(0.0, -jnp.inf))
    (0.0, 0.0)
    """
    zero = x == 0
    return jnp.where(zero, 0, x * jnp.where(zero, 0, log_y))


@x_times_log.defjvp
def _x_times_log_jvp(primals, tangents):
    x, log_y = primals
    tx, ty = tangents
    zero = x == 0
    out = x_times_log(x, log_y)
    dx = jnp.where(zero & (log_y == -jnp.inf), 0, log_y)
    dy = jnp.where(zero, 0, x)
    return out, dx * tx + dy * ty


def normalize(x):
    """``x / max(||x||, sqrt(eps))`` row-wise (optax's ``cosine_similarity`` epsilon).

    A zero row stays zero, with gradient 0 (the safe norm's subgradient).
    """
    tiny = jnp.sqrt(jnp.finfo(x.dtype).eps).astype(x.dtype)
    norm = p_norm(x, 2.0, axis=-1, keepdims=True)
    return x / jnp.maximum(norm, tiny)


def masked_logsumexp(x, mask, axis=-1):
    """``log sum_{mask} exp(x)`` and whether the mask is non-empty (value 0 where empty).

    Masked-out entries contribute nothing to the value or the gradient, even
    where ``x`` is ``inf`` or ``nan`` there.
    """
    has = jnp.any(mask, axis=axis)
    m = jax.lax.stop_gradient(
        jnp.max(jnp.where(mask, x, -jnp.inf), axis=axis, keepdims=True, initial=-jnp.inf)
    )
    m = jnp.where(jnp.isfinite(m), m, 0)
    total = jnp.sum(jnp.where(mask, jnp.exp(jnp.where(mask, x - m, 0)), 0), axis=axis)
    lse = jnp.log(jnp.where(has, total, 1)) + jnp.squeeze(m, axis)
    return jnp.where(has, lse, 0), has


def log1p_sum_exp(x, mask, axis=-1):
    """``log(1 + sum_{mask} exp(x))`` along ``axis``; 0 where the mask is empty."""
    lse, has = masked_logsumexp(x, mask, axis=axis)
    return jnp.where(has, jnp.logaddexp(0.0, lse), 0)
