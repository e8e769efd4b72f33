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

Scale: every 2-norm, p-norm, unit vector and inverse norm here is computed on
the input multiplied by a power of two chosen from its largest absolute value
(:func:`pow2_scale`), then unscaled (scaled accumulation, as BLAS ``nrm2``).
Multiplying by a power of two is exact, so the value is the plain formula's to
the last bit wherever that one neither overflows nor underflows, and finite
wherever the result is representable (``|x|`` up to the largest float,
``x / |x|`` for any non-zero ``x``). Gradients go through the scaled form
(the scale is a constant), so they are finite there too.
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
    "inverse_norm",
    "max_abs_scale",
    "norm2_parts",
    "normalize",
    "pow2_scale",
    "ratio",
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
def _ratio(num, den, fill):
    ok = den != 0
    return jnp.where(ok, num / jnp.where(ok, den, 1), fill)


@_ratio.defjvp
def _ratio_jvp(primals, tangents):
    num, den, fill = primals
    tn, td, _ = tangents
    ok = den != 0
    q = _ratio(num, den, fill)
    safe_den = jnp.where(ok, den, 1)
    return q, jnp.where(ok, (tn - jnp.where(ok, q, 0) * td) / safe_den, 0)


def ratio(num, den, fill=0.0):
    """``num / den`` where ``den != 0`` and ``fill`` elsewhere (gradient 0 there).

    Unlike :func:`safe_divide` under autodiff, the derivative is written
    ``(d num - (num / den) d den) / den``: it never forms ``den^2``, so it is
    finite for a tiny or huge ``den`` (``1e-30`` in float32) wherever the true
    derivative is representable.

    >>> float(jax.grad(ratio, argnums=1)(1e-30, 2e-30))
    -2.5e+29
    """
    num, den = jnp.asarray(num), jnp.asarray(den)
    dtype = jnp.result_type(num, den)
    return _ratio(num.astype(dtype), den.astype(dtype), jnp.asarray(fill, dtype))


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


# --------------------------------------------------------------------------- scaling


def _int_type(dtype):
    return {2: jnp.int16, 4: jnp.int32, 8: jnp.int64}[jnp.dtype(dtype).itemsize]


def pow2_scale(m, max_exponent: int | None = None):
    """Powers of two ``(s, 1 / s)`` with ``m * s`` in ``[1, 2)``, for ``m >= 0`` of a float dtype.

    Built from the exponent bits of ``m``, so both are exact powers of two
    (multiplying by them is exact). The exponent of ``s`` is clipped to
    ``[-max_exponent, max_exponent]`` (by default the widest range where both
    are normal numbers): a zero or subnormal ``m`` gives the largest such
    ``s``, an ``m`` of ``inf`` or NaN (or in the top binade) the smallest. No
    gradient.

    >>> s, inv = pow2_scale(jnp.array([3.0, 1e-30, 0.0], jnp.float32))
    >>> (s * jnp.array([3.0, 1e-30, 0.0], jnp.float32)).tolist(), (s * inv).tolist()
    ([1.5, 1.2676506042480469, 0.0], [1.0, 1.0, 1.0])
    """
    m = jax.lax.stop_gradient(jnp.asarray(m))
    info = jnp.finfo(m.dtype)
    it = _int_type(m.dtype)
    bias, nmant = info.maxexp - 1, info.nmant
    limit = bias - 1 if max_exponent is None else min(int(max_exponent), bias - 1)
    biased = (jax.lax.bitcast_convert_type(m, it) >> nmant) & (2 * bias + 1)
    biased = jnp.clip(biased, bias - limit, bias + limit)
    s = jax.lax.bitcast_convert_type(((2 * bias - biased) << nmant).astype(it), m.dtype)
    inv = jax.lax.bitcast_convert_type((biased << nmant).astype(it), m.dtype)
    return s, inv


def max_abs_scale(x, axis=-1, where=None, max_exponent=None):
    """:func:`pow2_scale` of ``max |x|`` over ``axis`` (kept as size 1), optionally under ``where``."""
    m = jnp.max(jnp.abs(jax.lax.stop_gradient(x)), axis=axis, keepdims=True, where=where, initial=0)
    return pow2_scale(m.astype(x.dtype), max_exponent)


def norm2_parts(x, axis=-1, where=None, max_exponent=None):
    """``(|x s|, s, 1 / s)`` along ``axis`` (kept as size 1): the 2-norm of ``x`` times a power of two.

    ``|x| = |x s| / s`` and ``x / |x| = x s / |x s|`` hold exactly. When the
    plain sum of squares of every vector is a normal number (no overflow, no
    underflow: the common case) ``s = 1`` and one pass is made; otherwise
    ``s`` is the :func:`max_abs_scale` of each vector, one more pass. The
    norm's derivative is written (``d|x s| = s (x . dx) s / |x s|``, 0 at a zero
    vector), so reverse mode keeps only ``x`` and per-vector scalars, never a
    scaled copy of ``x``; ``s`` has no derivative. ``max_exponent`` bounds
    ``|log2 s|`` (:func:`pow2_scale`), e.g. to keep ``s`` representable in a
    narrower dtype than ``x``'s.
    """
    axis = axis if isinstance(axis, int) else tuple(axis)
    return _norm2_parts(x, where, axis, max_exponent)


def _norm2_cond(x, axis, where, max_exponent, plain, scaled):
    """``plain(|x|)`` when the plain sum of squares of every vector is a normal number (one pass),
    else ``scaled(|x s|, s, 1 / s)`` (:func:`max_abs_scale`, one more pass); keepdims."""
    info = jnp.finfo(x.dtype)
    n2 = jnp.sum(x * x, axis=axis, keepdims=True, where=where)

    def scaled_branch():
        s, inv = max_abs_scale(x, axis, where, max_exponent)
        y = x * s
        return scaled(sqrt(jnp.sum(y * y, axis=axis, keepdims=True, where=where)), s, inv)

    ok = jnp.all((n2 < jnp.inf) & (n2 >= info.tiny / info.eps))
    return jax.lax.cond(ok, lambda: plain(sqrt(n2)), scaled_branch)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def _norm2_parts(x, where, axis, max_exponent):
    def plain(n):
        one = jnp.ones_like(n)
        return n, one, one

    return _norm2_cond(x, axis, where, max_exponent, plain, lambda n, s, inv: (n, s, inv))


@_norm2_parts.defjvp
def _norm2_parts_jvp(axis, max_exponent, primals, tangents):
    x, where = primals
    t = tangents[0]
    n, s, inv = _norm2_parts(x, where, axis, max_exponent)
    positive = n > 0
    k = jnp.where(positive, s / jnp.where(positive, n, 1), 0)  # s / |x s|, per vector
    # (x . (t k)) s: transposed, a cotangent is multiplied by s, then x, then k (no overflow).
    tn = jnp.sum(x * (t * k), axis=axis, keepdims=True, where=where) * s
    return (n, s, inv), (tn, jnp.zeros_like(s), jnp.zeros_like(inv))


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
    a = jnp.abs(x)
    if p == math.inf:
        return jnp.max(a, axis=axes, keepdims=keepdims, initial=0).astype(x.dtype)
    if p == -math.inf:
        return jnp.min(a, axis=axes, keepdims=keepdims)
    if p == 0.0:
        return jnp.sum(x != 0, axis=axes, keepdims=keepdims).astype(x.dtype)
    if p == 1.0:  # a sum of non-negative terms overflows only if the norm does
        return jnp.sum(a, axis=axes, keepdims=keepdims)
    # Scaled accumulation: the powers of |x| s with s a power of two from the largest
    # (p > 0) or smallest (p < 0) |x_i|, so no term overflows or underflows needlessly.
    if p == 2.0:  # one output from the conditional: the norm itself
        out = _norm2_cond(x, axes, None, None, lambda n: n, lambda n, s, inv: n * inv)
    else:
        if p > 0:
            m = jnp.max(a, axis=axes, keepdims=True, initial=0)
        else:
            m = jnp.min(a, axis=axes, keepdims=True, initial=math.inf)
        s, inv = pow2_scale(m.astype(x.dtype))
        out = jnp.sum((a * s) ** p, axis=axes, keepdims=True) ** (1.0 / p) * inv
    return out if keepdims else jnp.squeeze(out, axes)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2, 3))
def _p_norm(x, p, axes, keepdims):
    return _p_norm_value(x, p, axes, keepdims)


@_p_norm.defjvp
def _p_norm_jvp(p, axes, keepdims, primals, tangents):
    (x,), (t,) = primals, tangents
    n = _p_norm_value(x, p, axes, True)  # once: the value is n without the kept axes
    out = n if keepdims else jnp.squeeze(n, axes)
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


def normalize(x, axis=-1, *, where=None, min_norm=None):
    """``x / max(|x|, min_norm)`` along ``axis`` (an int or a tuple), scale-free for ``min_norm = 0``.

    The norm is computed on ``x`` scaled by a power of two (:func:`norm2_parts`),
    so ``normalize(c x) == normalize(x)`` for every ``c > 0`` that keeps ``c x``
    finite and non-zero (``1e-30`` to ``1e30`` in float32), with finite
    gradients. A zero vector gives 0, as ``torch.nn.functional.normalize``
    (eps ``1e-12``, used by pytorch-metric-learning and open_clip), with
    gradient 0 (``normalize`` gives ``I / eps`` there); any other vector
    gives ``x / |x|`` exactly (``normalize`` divides by ``1e-12`` below that
    norm). ``min_norm`` (None: no floor) is optax's floor (``sqrt`` of its
    ``epsilon``), possibly traced.
    ``where`` masks the elements of each vector.

    >>> normalize(jnp.array([[3e-30, 4e-30], [0.0, 0.0]], jnp.float32)).tolist()
    [[0.6000000238418579, 0.800000011920929], [0.0, 0.0]]
    """
    n, s, inv = norm2_parts(x, axis, where)
    if min_norm is not None:  # max(|x|, f) = max(|x s|, f s) / s
        n = jnp.maximum(n, jnp.asarray(min_norm, x.dtype) / inv)
    return safe_divide(x * s, n)


def inverse_norm(x, axis=-1, keepdims=False, *, branch_free: bool = False):
    """``1 / |x|`` along ``axis``, 0 for a zero vector (gradient 0 there), scale-free.

    ``s / |x s|`` with ``s`` the power of two of the largest ``|x_i|`` where the
    plain sum of squares would overflow or underflow (:func:`norm2_parts`):
    finite, with finite gradients, for every non-zero ``x`` whose inverse norm
    is representable (``x * inverse_norm(x)`` is :func:`normalize`). Its
    derivative ``-r^3 (x . dx)`` is written, so reverse mode keeps ``x`` and
    ``r`` only: one vector per norm (a class matrix's columns: ``(C,)``).
    ``branch_free``: always scale (a max and a scaled sum, which XLA fuses)
    instead of a conditional, differentiated through :func:`p_norm`: inside a
    loop body (a tile of a class matrix's columns) the conditional and the
    written derivative kept two more buffers of the size of ``x``.

    >>> float(inverse_norm(jnp.array([3e30, 4e30], jnp.float32)))
    2e-31
    """
    axis = axis if isinstance(axis, int) else tuple(axis)
    if branch_free:
        s, _ = max_abs_scale(x, axis)  # no gradient: the norm is homogeneous
        r = safe_divide(s, p_norm(x * s, 2.0, axis=axis, keepdims=True))
    else:
        r = _inverse_norm(x, axis)
    return r if keepdims else jnp.squeeze(r, axis)


@functools.partial(jax.custom_jvp, nondiff_argnums=(1,))
def _inverse_norm(x, axis):
    return _norm2_cond(x, axis, None, None, lambda n: safe_divide(1, n), lambda n, s, inv: safe_divide(s, n))


@_inverse_norm.defjvp
def _inverse_norm_jvp(axis, primals, tangents):
    (x,), (t,) = primals, tangents
    r = _inverse_norm(x, axis)
    # d(1 / |x|) = -r^3 (x . dx), as ((x . (dx r)) r) r: transposed, a cotangent (of the size of
    # x times another one) meets r, r, then x, then r, never overflowing before x shrinks it.
    return r, -(jnp.sum(x * (t * r), axis=axis, keepdims=True) * r) * r


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
