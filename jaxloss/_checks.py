"""Argument, shape and dtype validation with clear messages, run at trace time.

Every check raises ``ValueError`` (bad value or shape) or ``TypeError`` (bad
type or dtype) with a message of the form
``"fn: `arg` <invariant>; got <received>. <allowed or hint>"``.
Checks of Python-level hyperparameters (margins, temperatures) are skipped
when the value is a tracer, so they cost nothing under ``jit``.
"""

from __future__ import annotations

import difflib
import functools
import math
import numbers
import warnings
from collections.abc import Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "check_axis",
    "check_floating",
    "check_integer",
    "check_labels_in_range",
    "check_ndim",
    "check_number",
    "check_positive_int",
    "check_option",
    "check_real",
    "check_reduction",
    "check_same_shape",
    "check_temperature",
    "broadcast_shapes",
    "closest_name",
    "is_traced",
    "renamed_keyword",
]

REDUCTIONS = ("none", "mean", "sum")


def is_traced(value) -> bool:
    """True when ``value`` is a JAX tracer (its value is unknown at trace time)."""
    return isinstance(value, jax.core.Tracer)


def closest_name(name, options: Iterable[str]) -> str | None:
    """The option closest to ``name`` (for "did you mean" hints), or None."""
    if not isinstance(name, str):
        return None
    lowered = {str(o).lower(): o for o in options}
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def check_option(value, name: str, allowed: Sequence, fn: str):
    """Checks ``value in allowed``; the error lists the options and the closest one."""
    try:
        ok = value in allowed
    except TypeError:  # unhashable or array-valued
        ok = False
    if ok and not isinstance(value, (bool, np.bool_)) or value is None and None in allowed:
        return value
    hint = closest_name(value, [a for a in allowed if isinstance(a, str)])
    shown = ", ".join(repr(a) for a in allowed)
    message = f"{fn}: `{name}` must be one of {shown}; got {value!r}."
    if hint is not None:
        message += f" Did you mean {hint!r}?"
    raise ValueError(message)


def check_reduction(reduction, fn: str, allowed: Sequence[str] = REDUCTIONS) -> str:
    """Checks a ``reduction`` argument ("none", "mean", "sum" by default)."""
    if not isinstance(reduction, str):
        raise TypeError(
            f"{fn}: `reduction` must be a string, one of {', '.join(map(repr, allowed))}; got {reduction!r}."
        )
    return check_option(reduction, "reduction", allowed, fn)


def check_number(
    value,
    name: str,
    fn: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    allow_inf: bool = False,
):
    """Checks a scalar hyperparameter eagerly (skipped for tracers and arrays of size > 1)."""
    if is_traced(value):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.ndarray, jax.Array)):
        raise TypeError(f"{fn}: `{name}` must be a real number; got {type(value).__name__} {value!r}.")
    if np.ndim(value) != 0:
        return value
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{fn}: `{name}` must be finite; got {v!r}.")
    bad_low = low is not None and (v < low or (v == low and not low_inclusive))
    bad_high = high is not None and (v > high or (v == high and not high_inclusive))
    if bad_low or bad_high:
        lo = "(-inf" if low is None else ("[" if low_inclusive else "(") + f"{low:g}"
        hi = "inf)" if high is None else f"{high:g}" + ("]" if high_inclusive else ")")
        raise ValueError(f"{fn}: `{name}` must lie in {lo}, {hi}; got {v!r}.")
    return value


def check_ndim(x, name: str, fn: str, *, min_ndim: int | None = None, ndim: int | None = None):
    """Checks the rank of an array argument (and that it is not complex)."""
    check_real(x, name, fn)
    shape = np.shape(x)
    if ndim is not None and len(shape) != ndim:
        raise ValueError(
            f"{fn}: `{name}` must have {ndim} dimension{'s' if ndim != 1 else ''}; got shape {tuple(shape)}."
        )
    if min_ndim is not None and len(shape) < min_ndim:
        raise ValueError(
            f"{fn}: `{name}` must have at least {min_ndim} dimension"
            f"{'s' if min_ndim != 1 else ''}; got shape {tuple(shape)}."
        )
    return x


def check_same_shape(a, b, names: tuple[str, str], fn: str):
    """Checks that two arrays have exactly the same shape (and are not complex)."""
    check_real(a, names[0], fn)
    check_real(b, names[1], fn)
    sa, sb = tuple(np.shape(a)), tuple(np.shape(b))
    if sa != sb:
        raise ValueError(f"{fn}: `{names[0]}` and `{names[1]}` must have the same shape; got {sa} and {sb}.")


def broadcast_shapes(a, b, names: tuple[str, str], fn: str) -> tuple[int, ...]:
    """The broadcast shape of two arrays (not complex), or a clear error."""
    check_real(a, names[0], fn)
    check_real(b, names[1], fn)
    sa, sb = tuple(np.shape(a)), tuple(np.shape(b))
    try:
        return tuple(np.broadcast_shapes(sa, sb))
    except ValueError:
        raise ValueError(
            f"{fn}: `{names[0]}` and `{names[1]}` must have broadcastable shapes; got {sa} and {sb}."
        ) from None


def check_axis(axis, ndim: int, name: str, fn: str) -> tuple[int, ...]:
    """Normalises an int / tuple axis argument to a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else axis
    try:
        axes = tuple(axes)
    except TypeError:
        raise TypeError(f"{fn}: `{name}` must be an int or a tuple of ints; got {axis!r}.") from None
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"{fn}: `{name}` must be an int or a tuple of ints; got {axis!r}.")
        if not -ndim <= a < ndim:
            raise ValueError(
                f"{fn}: `{name}`={axis!r} is out of range for an array with {ndim} dimension"
                f"{'s' if ndim != 1 else ''}."
            )
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{fn}: `{name}` has repeated entries; got {axis!r}.")
    return tuple(out)


def _dtype(x):
    dt = getattr(x, "dtype", None)
    return jnp.asarray(x).dtype if dt is None else jnp.dtype(dt)


def check_real(x, name: str, fn: str):
    """Checks that an array argument is not complex: jaxloss works on real arrays."""
    if x is None:
        return x
    try:
        dt = _dtype(x)
    except (TypeError, ValueError):  # not array-like: the caller's other checks say what is wrong
        return x
    if jnp.issubdtype(dt, jnp.complexfloating):
        raise TypeError(f"{fn}: `{name}` must be real (jaxloss works on real arrays); got dtype {dt}.")
    return x


def check_integer(x, name: str, fn: str):
    """Checks that an array argument has an integer dtype (labels, class indices)."""
    dt = jnp.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype
    if not jnp.issubdtype(dt, jnp.integer):
        raise TypeError(f"{fn}: `{name}` must have an integer dtype; got {dt}.")
    return x


def check_labels_in_range(
    labels,
    num_classes: int,
    name: str,
    fn: str,
    *,
    ignore_index: int | None = None,
    error: type[Exception] = ValueError,
    note: str = "",
):
    """Concrete class indices outside ``[0, num_classes)`` (and not ``ignore_index``) raise ``error``.

    Checked only when ``labels`` is concrete (a NumPy array, a list, or a ``jax.Array``, also
    as a constant inside ``jit``), on the host: one copy of the integer labels, no compilation.
    Traced labels (inside ``jit``, ``vmap``, ``grad`` of them) pass unchecked: the caller
    gives NaN for their out-of-range entries, and ``jaxloss.check_inputs`` reports them
    under ``checkify``. The message names the argument, the allowed range, the first bad
    value and its index, and how many there are; ``note`` is appended (``{value}``: the
    first bad value).
    """
    if labels is None or is_traced(labels):
        return labels
    if isinstance(labels, jax.Array) and not labels.is_fully_addressable:
        return labels  # a multi-process array: only its own shards could be read here
    y = np.asarray(labels)
    if y.size == 0:
        return labels
    bad = (y < 0) | (y >= num_classes)
    if ignore_index is not None:
        bad &= y != ignore_index
    if not bad.any():
        return labels
    count = int(bad.sum())
    position = np.unravel_index(int(np.argmax(bad)), y.shape)
    first = int(y[position])
    exempt = "" if ignore_index is None else f" or equal `ignore_index`={ignore_index}"
    where = f" at index {tuple(int(p) for p in position)}" if y.ndim else ""
    raise error(
        f"{fn}: `{name}` must hold class indices in [0, {num_classes}){exempt}; got {first}{where} "
        f"({count} out of range).{note.format(value=first)}"
    )


def check_floating(x, name: str, fn: str):
    """Checks that an array argument has a floating dtype (logits, probabilities)."""
    check_real(x, name, fn)
    dt = jnp.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype
    if not jnp.issubdtype(dt, jnp.floating):
        raise TypeError(
            f"{fn}: `{name}` must have a floating dtype; got {dt}. Convert it with .astype(float)."
        )
    return x


def check_positive_int(value, name: str, fn: str, *, allow_none: bool = True) -> int | None:
    """A static count (``top_k``, a buffer size): a positive Python or NumPy int.

    ``None`` is returned as is when ``allow_none``. A non-integer (``2.5``,
    ``True``, a string, an array) is a ``TypeError``; zero or a negative number
    is a ``ValueError``; both name the argument.
    """
    allowed = "a positive int or None" if allow_none else "a positive int"
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{fn}: `{name}` must be {allowed}; got {type(value).__name__} {value!r}.")
    if value < 1:
        raise ValueError(f"{fn}: `{name}` must be {allowed}; got {value!r}.")
    return int(value)


def check_temperature(temperature, fn: str, name: str = "temperature"):
    """A temperature (or scale) must be a positive number; tracers pass unchecked."""
    return check_number(temperature, name, fn, low=0.0, low_inclusive=False)


def renamed_keyword(old: str, new: str, *, removed_in: str) -> Callable:
    """Decorator: a keyword argument renamed ``old`` -> ``new`` keeps working until ``removed_in``.

    A call that passes ``old=`` gets a ``DeprecationWarning`` naming the
    function, the new name and the release that drops the old one, and runs
    as if it had passed ``new=``; passing both is a ``TypeError``. The
    signature (``inspect.signature``, the API reference) shows only ``new``.
    """

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(
                        f"{fn.__name__}: `{old}` is the old name of `{new}`; got both. Pass `{new}` only."
                    )
                warnings.warn(
                    f"{fn.__name__}: the keyword `{old}` is renamed `{new}`; `{old}` will be removed in "
                    f"jaxloss {removed_in}.",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper

    return decorate
