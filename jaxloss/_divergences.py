"""Divergences between discrete distributions: entropy, the KL family, JS, Hellinger, Renyi...

Convention for every divergence ``D(P || Q)``: the arguments come in optax's
order ``(predictions, targets)``; ``targets`` play ``P`` (the true
distribution) and ``predictions`` play ``Q`` (the model), as in the usual
``D_KL(P || Q) = sum_i P_i log(P_i / Q_i)``, in optax and in
``torch.nn.functional.kl_div``. Every function sums over ``axis`` (default
``-1``; a tuple sums over several axes, ``()`` returns the elementwise terms,
``None`` sums over everything) and ``where`` (a boolean mask broadcastable to
the inputs) leaves out the masked entries.

Zero probabilities follow the convention ``0 log 0 = 0`` (terms where the
probability is 0 contribute 0; Cover and Thomas, *Elements of Information
Theory*, 2nd ed., section 2.3): a term whose weight ``p`` is 0
contributes 0 to the value and **0 to the gradient with respect to both
arguments** (the subgradient of ``jaxloss._numerics.xlogy``), so values and
gradients are finite wherever the divergence itself is finite. A divergence that
is infinite in mathematics (``p > 0`` where ``q = 0``) is ``inf``, as in scipy.
"""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks, _numerics

__all__ = [
    "bhattacharyya_distance",
    "convex_kl_divergence",
    "cross_entropy",
    "entropy",
    "generalized_kl_divergence",
    "hellinger_distance",
    "jensen_shannon_distance",
    "js_divergence",
    "kl_divergence",
    "kl_divergence_with_log_targets",
    "renyi_divergence",
    "symmetric_kl_divergence",
    "total_variation_distance",
]


# --------------------------------------------------------------------------- helpers


def _prepare(arrays, names, fn, *, log_space=()):
    """Broadcast-checks, converts to the compute dtype; log-space inputs must be floating."""
    for i in log_space:
        _checks.check_floating(arrays[i], names[i], fn)
    if len(arrays) == 2:
        _checks.broadcast_shapes(arrays[0], arrays[1], names, fn)
    *out, out_dtype = _numerics.as_float(*arrays)
    return out, out_dtype


def _axis(axis, ndim, fn):
    if axis is None:
        return None
    return _checks.check_axis(axis, ndim, "axis", fn)


def _where(where, shape, fn):
    if where is None:
        return None
    _checks.broadcast_shapes(jnp.zeros(shape, bool), where, ("inputs", "where"), fn)
    return jnp.broadcast_to(jnp.asarray(where, bool), shape)


def _safe_log(x):
    """``log x`` for ``x > 0``, 0 elsewhere, with a finite gradient (used where ``x`` weighs 0)."""
    positive = x > 0
    return jnp.where(positive, jnp.log(jnp.where(positive, x, 1)), 0)


def _sum(terms, axis, where, fn):
    """``sum(terms, axis, where=where)`` with checked ``axis`` and ``where``."""
    axes = _axis(axis, terms.ndim, fn)
    where = _where(where, terms.shape, fn)
    return jnp.sum(terms, axis=axes, where=where)


# ------------------------------------------------------------------------ entropy and cross-entropy


def entropy(
    probabilities: ArrayLike, *, axis: int | tuple[int, ...] | None = -1, where: ArrayLike | None = None
) -> jax.Array:
    """Shannon entropy ``H(p) = -sum_i p_i log p_i`` (natural log) with ``0 log 0 = 0``.

    Args:
      probabilities: ``(..., n)`` probabilities (not necessarily normalised);
        integers are promoted to float.
      axis: axis or axes summed over (``None``: all).
      where: optional boolean mask broadcastable to ``probabilities``.

    Returns:
      The entropies, shaped like ``probabilities`` without ``axis``.

    Gradient: ``-(log p_i + 1)`` for ``p_i > 0``; 0 at ``p_i = 0`` (subgradient).

    Examples:
      >>> import jax.numpy as jnp
      >>> entropy(jnp.array([0.5, 0.5, 0.0]))
      Array(0.6931472, dtype=float32)

    scipy: scipy.stats.entropy
    """
    (p,), out_dtype = _prepare((probabilities,), ("probabilities",), "entropy")
    return (-_sum(_numerics.xlogx(p), axis, where, "entropy")).astype(out_dtype)


def cross_entropy(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Cross-entropy ``H(p, q) = -sum_i p_i log q_i`` of probabilities.

    ``targets`` is ``p`` (true), ``predictions`` is ``q`` (model). ``H(p, q) =
    H(p) + KL(p || q)``; terms with ``p_i = 0`` contribute 0 (also when
    ``q_i = 0``), and ``p_i > 0 = q_i`` gives ``inf``.

    Args:
      predictions: ``(..., n)`` probabilities ``q``.
      targets: probabilities ``p``, broadcastable to ``predictions``.
      axis: axis or axes summed over.
      where: optional boolean mask.

    Returns:
      The cross-entropies, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> cross_entropy(jnp.array([0.25, 0.75]), jnp.array([0.0, 1.0]))
      Array(0.2876821, dtype=float32)

    References: Cover and Thomas, *Elements of Information Theory*, 2nd ed., section 2.3.

    scipy: scipy.stats.entropy(p) + scipy.special.rel_entr (H(p) + KL(p || q))
    """
    (q, p), out_dtype = _prepare((predictions, targets), ("predictions", "targets"), "cross_entropy")
    return (-_sum(_numerics.xlogy(p, q), axis, where, "cross_entropy")).astype(out_dtype)


# -------------------------------------------------------------------------- KL family (optax names)


def _kl_terms(log_q, p):
    return _numerics.xlogx(p) - _numerics.x_times_log(p, log_q)


def kl_divergence(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Kullback-Leibler divergence ``KL(p || q) = sum_i p_i (log p_i - log q_i)`` (optax's API).

    ``targets`` is ``p``, ``log_predictions`` is ``log q``. Terms with
    ``p_i = 0`` contribute 0 even when ``log q_i = -inf`` (optax: NaN), and their
    gradient with respect to both arguments is 0 (optax: NaN with respect to
    ``targets``). ``KL >= 0`` for normalised distributions (Gibbs' inequality).
    A term with ``p_i > 0`` and ``log q_i = -inf`` (disjoint supports, or a
    model that rules out a possible event) makes the divergence ``inf``, its
    true value (scipy's ``rel_entr`` too); its gradient is then not finite.

    Args:
      log_predictions: ``(..., n)`` log-probabilities ``log q`` (floating).
      targets: probabilities ``p``, broadcastable to ``log_predictions``.
      axis: axis or axes summed over (``()`` gives PyTorch's elementwise terms).
      where: optional boolean mask of entries to include.

    Returns:
      The divergences, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> kl_divergence(jnp.log(jnp.array([0.5, 0.5])), jnp.array([1.0, 0.0]))
      Array(0.6931472, dtype=float32)

    optax: kl_divergence; PyTorch: torch.nn.functional.kl_div; scipy: scipy.special.rel_entr
    """
    fn = "kl_divergence"
    (log_q, p), out_dtype = _prepare(
        (log_predictions, targets), ("log_predictions", "targets"), fn, log_space=(0,)
    )
    return _sum(_kl_terms(log_q, p), axis, where, fn).astype(out_dtype)


def kl_divergence_with_log_targets(
    log_predictions: ArrayLike,
    log_targets: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """``KL(p || q) = sum_i exp(log p_i) (log p_i - log q_i)`` with both inputs in log space.

    Terms with ``p_i = 0`` (``log p_i = -inf``) contribute 0 and have gradient
    0, even when ``log q_i = -inf``. ``p_i > 0`` with ``log q_i = -inf``
    (disjoint supports) gives ``inf``, the true value.

    Args:
      log_predictions: ``(..., n)`` log-probabilities ``log q``.
      log_targets: log-probabilities ``log p``, broadcastable to ``log_predictions``.
      axis: axis or axes summed over.
      where: optional boolean mask.

    Returns:
      The divergences, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> log_q, log_p = jnp.log(jnp.array([0.5, 0.5])), jnp.log(jnp.array([1.0, 0.0]))
      >>> kl_divergence_with_log_targets(log_q, log_p)
      Array(0.6931472, dtype=float32)

    optax: kl_divergence_with_log_targets; PyTorch: torch.nn.functional.kl_div(log_target=True)
    """
    fn = "kl_divergence_with_log_targets"
    (log_q, log_p), out_dtype = _prepare(
        (log_predictions, log_targets), ("log_predictions", "log_targets"), fn, log_space=(0, 1)
    )
    p = jnp.exp(log_p)
    terms = _numerics.x_times_log(p, log_p) - _numerics.x_times_log(p, log_q)
    return _sum(terms, axis, where, fn).astype(out_dtype)


def generalized_kl_divergence(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Generalised KL ``sum_i p_i log(p_i / q_i) - p_i + q_i`` for unnormalised ``p``, ``q``.

    The Bregman divergence of ``x log x - x``; equal to ``kl_divergence``
    for normalised distributions. Zero ``p_i`` are handled as there, and
    ``p_i > 0`` with ``log q_i = -inf`` gives ``inf`` as there.

    Args:
      log_predictions: ``(..., n)`` log ``q``.
      targets: ``p``, broadcastable.
      axis: axis or axes summed over.
      where: optional boolean mask.

    Returns:
      The divergences, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> generalized_kl_divergence(jnp.log(jnp.array([1.0, 2.0])), jnp.array([1.0, 1.0]))
      Array(0.30685282, dtype=float32)

    optax: generalized_kl_divergence
    """
    fn = "generalized_kl_divergence"
    (log_q, p), out_dtype = _prepare(
        (log_predictions, targets), ("log_predictions", "targets"), fn, log_space=(0,)
    )
    terms = _kl_terms(log_q, p) + jnp.exp(log_q) - p
    return _sum(terms, axis, where, fn).astype(out_dtype)


def convex_kl_divergence(
    log_predictions: ArrayLike,
    targets: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Deprecated: optax's older name of ``generalized_kl_divergence`` (same arguments and values).

    Emits a ``DeprecationWarning`` that points to ``generalized_kl_divergence``,
    with optax's message.

    Args:
      log_predictions: ``(..., n)`` log ``q``.
      targets: ``p``, broadcastable.
      axis: axis or axes summed over.
      where: optional boolean mask.

    Returns:
      The divergence, with ``axis`` reduced.

    Examples:
      >>> import jax.numpy as jnp
      >>> import warnings
      >>> with warnings.catch_warnings():
      ...     warnings.simplefilter("ignore", DeprecationWarning)
      ...     convex_kl_divergence(jnp.log(jnp.array([1.0, 2.0])), jnp.array([1.0, 1.0]))
      Array(0.30685282, dtype=float32)

    optax: convex_kl_divergence
    """
    warnings.warn(
        "The function convex_kl_divergence is deprecated. Please use generalized_kl_divergence instead.",
        DeprecationWarning,
        stacklevel=2,
    )
    return generalized_kl_divergence(log_predictions, targets, axis=axis, where=where)


# --------------------------------------------------------------------------- beyond optax


def symmetric_kl_divergence(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Symmetrised KL (Jeffreys) ``KL(p || q) + KL(q || p) = sum_i (p_i - q_i) log(p_i / q_i)``.

    Args:
      predictions: ``(..., n)`` probabilities ``q``.
      targets: probabilities ``p``.
      axis: axis or axes summed over.
      where: optional boolean mask.

    Returns:
      The divergences (``inf`` where one distribution is 0 and the other not:
      disjoint supports give ``inf``, the true value).

    Examples:
      >>> import jax.numpy as jnp
      >>> symmetric_kl_divergence(jnp.array([0.5, 0.5]), jnp.array([0.25, 0.75]))
      Array(0.27465308, dtype=float32)

    scipy: scipy.special.rel_entr(p, q) + rel_entr(q, p)
    """
    fn = "symmetric_kl_divergence"
    (q, p), out_dtype = _prepare((predictions, targets), ("predictions", "targets"), fn)
    terms = _numerics.xlogx(p) - _numerics.xlogy(p, q) + _numerics.xlogx(q) - _numerics.xlogy(q, p)
    return _sum(terms, axis, where, fn).astype(out_dtype)


def _log_base(base, fn):
    if base is None:
        return 1.0
    _checks.check_number(base, "base", fn, low=0, low_inclusive=False)
    if not _checks.is_traced(base) and float(base) == 1.0:
        raise ValueError(f"{fn}: `base` must be positive and != 1; got {base!r}.")
    return jnp.log(base)


def js_divergence(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    base: float | None = None,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Jensen-Shannon divergence ``(KL(p || m) + KL(q || m)) / 2`` with ``m = (p + q) / 2``.

    Symmetric, ``0 <= JS <= log 2`` (``<= 1`` in base 2) for normalised
    distributions, and finite with finite gradients everywhere (zero
    probabilities included).

    Args:
      predictions: ``(..., n)`` probabilities ``q``.
      targets: probabilities ``p``.
      base: logarithm base (``None``: natural log).
      axis: axis or axes summed over.
      where: optional boolean mask.

    Returns:
      The divergences, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> js_divergence(jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]), base=2)
      Array(1., dtype=float32)

    scipy: scipy.spatial.distance.jensenshannon(p, q, base) ** 2
    """
    fn = "js_divergence"
    (q, p), out_dtype = _prepare((predictions, targets), ("predictions", "targets"), fn)
    scale = _log_base(base, fn)
    log_m = _safe_log(0.5 * (p + q))
    terms = 0.5 * (
        _numerics.x_times_log(p, _safe_log(p) - log_m) + _numerics.x_times_log(q, _safe_log(q) - log_m)
    )
    return (_sum(terms, axis, where, fn) / scale).astype(out_dtype)


def jensen_shannon_distance(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    base: float | None = None,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Jensen-Shannon distance ``sqrt(js_divergence)``, a metric on distributions.

    Equal to ``scipy.spatial.distance.jensenshannon`` on normalised inputs
    (scipy normalises ``p`` and ``q`` first; jaxloss does not). The gradient is
    0 where the distance is 0 (identical distributions).

    Args:
      predictions: ``(..., n)`` probabilities.
      targets: probabilities.
      base: logarithm base (``None``: natural log).
      axis: axis or axes summed over.
      where: optional boolean mask.

    Returns:
      The distances, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> jensen_shannon_distance(jnp.array([1.0, 0.0]), jnp.array([0.5, 0.5]), base=2)
      Array(0.5579231, dtype=float32)

    scipy: scipy.spatial.distance.jensenshannon
    """
    js = js_divergence(predictions, targets, base=base, axis=axis, where=where)
    return _numerics.sqrt(js.astype(jnp.promote_types(js.dtype, jnp.float32))).astype(js.dtype)


def hellinger_distance(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Hellinger distance ``sqrt(sum_i (sqrt p_i - sqrt q_i)^2 / 2)``, in ``[0, 1]``.

    Gradients use the safe square root (0 at 0), so they are finite at zero
    probabilities and at ``p = q``.

    Args:
      predictions: ``(..., n)`` probabilities.
      targets: probabilities.
      axis: axis or axes summed over.
      where: optional boolean mask.

    Returns:
      The distances, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> hellinger_distance(jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]))
      Array(1., dtype=float32)

    Reference: ``sqrt(sum((sqrt(p) - sqrt(q))**2) / 2)`` in NumPy (float64)
    """
    fn = "hellinger_distance"
    (q, p), out_dtype = _prepare((predictions, targets), ("predictions", "targets"), fn)
    d = _numerics.sqrt(p) - _numerics.sqrt(q)
    return _numerics.sqrt(0.5 * _sum(d * d, axis, where, fn)).astype(out_dtype)


def total_variation_distance(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Total variation distance ``sum_i |p_i - q_i| / 2`` (gradient ``sign``, 0 at a tie).

    Args:
      predictions: ``(..., n)`` probabilities.
      targets: probabilities.
      axis: axis or axes summed over.
      where: optional boolean mask.

    Returns:
      The distances, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> total_variation_distance(jnp.array([0.5, 0.5]), jnp.array([0.25, 0.75]))
      Array(0.25, dtype=float32)

    Reference: ``sum(abs(p - q)) / 2`` in NumPy
    """
    fn = "total_variation_distance"
    (q, p), out_dtype = _prepare((predictions, targets), ("predictions", "targets"), fn)
    return (0.5 * _sum(_numerics.abs(p - q), axis, where, fn)).astype(out_dtype)


def bhattacharyya_distance(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Bhattacharyya distance ``-log sum_i sqrt(p_i q_i)`` (``inf`` for disjoint supports).

    Equal to ``renyi_divergence(..., alpha=0.5) / 2`` for normalised inputs.
    Disjoint supports (``sum_i sqrt(p_i q_i) = 0``) give ``inf``, the true
    value, with gradient 0; a zero probability facing a positive one
    contributes 0 to the sum and gets gradient 0 (the square root's
    subgradient; its true derivative is infinite).

    Args:
      predictions: ``(..., n)`` probabilities.
      targets: probabilities.
      axis: axis or axes summed over.
      where: optional boolean mask.

    Returns:
      The distances, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> bhattacharyya_distance(jnp.array([0.5, 0.5]), jnp.array([0.5, 0.5]))
      Array(-0., dtype=float32)

    Reference: ``-log(sum(sqrt(p * q)))`` in NumPy (float64)
    """
    fn = "bhattacharyya_distance"
    (q, p), out_dtype = _prepare((predictions, targets), ("predictions", "targets"), fn)
    coefficient = _sum(_numerics.sqrt(p * q), axis, where, fn)
    return (-jnp.log(coefficient)).astype(out_dtype)


def renyi_divergence(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    alpha: float,
    axis: int | tuple[int, ...] | None = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Renyi divergence ``log(sum_i p_i^alpha q_i^(1-alpha) / sum_i p_i) / (alpha - 1)``.

    The sums run over the support of ``p`` (``p_i > 0``); dividing by
    ``sum_i p_i`` (Renyi's definition for incomplete distributions) changes
    nothing for normalised ``p``. Special orders: ``alpha = 1`` is
    ``KL(p || q) / sum p``, ``alpha = inf`` is ``log max_i p_i / q_i``,
    ``alpha = 0`` is ``-log(sum_{p_i > 0} q_i / sum p)``, and ``alpha = 0.5`` is
    twice the Bhattacharyya distance. Computed in log space (logsumexp), with an
    ``expm1``/``log1p`` path near ``alpha = 1`` so that the limit is continuous.

    Edge cases: a zero prediction ``q_i = 0`` under a positive target makes
    the divergence ``inf`` for ``alpha >= 1`` (disjoint supports: ``inf`` for
    every ``alpha``, the true value, as scipy) and leaves it finite for
    ``alpha < 1``, where its term ``p_i^alpha q_i^(1-alpha)`` is 0. There the
    derivative of that term with respect to ``q_i`` is finite for ``alpha = 0``
    (and is returned) and infinite for ``0 < alpha < 1``, where the gradient
    is 0 (the subgradient of the square roots of ``hellinger_distance`` and
    ``bhattacharyya_distance``: ``alpha = 0.5`` is twice the latter, gradient
    included). Values and gradients are finite wherever the divergence is;
    where it is ``inf`` the gradient is 0.

    Args:
      predictions: ``(..., n)`` probabilities ``q``.
      targets: probabilities ``p``.
      alpha: the order, a number in ``[0, inf]`` (keyword-only).
      axis: axis or axes summed over.
      where: optional boolean mask.

    Returns:
      The divergences, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> p, q = jnp.array([0.25, 0.75]), jnp.array([0.5, 0.5])
      >>> renyi_divergence(q, p, alpha=2.0)
      Array(0.2231435, dtype=float32)
      >>> renyi_divergence(q, p, alpha=jnp.inf)
      Array(0.4054651, dtype=float32)

    Reference: the formula in NumPy (float64); alpha = 1 against scipy.special.rel_entr
    """
    fn = "renyi_divergence"
    _checks.check_number(alpha, "alpha", fn, low=0, allow_inf=True)
    (q, p), out_dtype = _prepare((predictions, targets), ("predictions", "targets"), fn)
    shape = jnp.broadcast_shapes(q.shape, p.shape)
    q, p = jnp.broadcast_to(q, shape), jnp.broadcast_to(p, shape)
    axes = _axis(axis, len(shape), fn)
    support = p > 0
    mask = _where(where, shape, fn)
    if mask is not None:
        support = support & mask
    # `ok`: the support where q > 0; `gap`: q = 0 under a positive p, whose term p^alpha q^(1 - alpha)
    # is 0 for alpha < 1 and infinite for alpha > 1. log q is never taken there (double where), so no
    # 0 * inf reaches a gradient.
    ok = support & (q > 0)
    gap = support & ~ok
    safe_p = jnp.where(support, p, 1)
    log_ratio = jnp.where(ok, jnp.log(safe_p) - jnp.log(jnp.where(ok, q, 1)), 0)
    mass = jnp.sum(jnp.where(support, p, 0), axis=axes, keepdims=True)
    weights = jnp.where(support, p, 0) / jnp.where(mass > 0, mass, 1)
    any_gap = jnp.any(gap, axis=axes)
    mass = jnp.sum(mass, axis=axes)  # drop the kept axes
    traced = _checks.is_traced(alpha)
    if not traced and math.isinf(float(alpha)):
        out = jnp.max(jnp.where(ok, log_ratio, jnp.where(gap, jnp.inf, -jnp.inf)), axis=axes)
    elif not traced and float(alpha) == 1.0:
        out = jnp.where(any_gap, jnp.inf, jnp.sum(weights * log_ratio, axis=axes))
    else:
        delta = jnp.asarray(alpha, p.dtype) - 1
        safe_delta = jnp.where(delta == 0, 1, delta)
        # far from alpha = 1: log-space sum over `ok`, stable for large |delta * log_ratio|
        scaled = jnp.where(ok, delta * log_ratio, -jnp.inf)
        lse = jax.nn.logsumexp(scaled, axis=axes, b=jnp.where(ok, weights, 1))
        has_ok = jnp.isfinite(lse)
        safe_lse = jnp.where(has_ok, lse, 0)
        # alpha = 0: the gap's terms q_i / sum p are 0 but their derivative 1 / sum p is finite
        # (0 < alpha < 1: infinite; the gradient there is 0, as for the square root of Hellinger)
        zero_order = jnp.sum(jnp.where(gap, q, 0), axis=axes) / jnp.where(mass > 0, mass, 1)
        zero_order = jnp.where(delta == -1, zero_order, 0) * jnp.exp(-safe_lse)
        far = jnp.where(has_ok, safe_lse + jnp.log1p(zero_order), -jnp.inf) / safe_delta
        # near alpha = 1: log1p(sum w expm1(delta r)) / delta keeps the KL limit accurate
        limit = 1.0 / jnp.maximum(jnp.abs(safe_delta), jnp.finfo(p.dtype).tiny)
        clipped = jnp.clip(log_ratio, -limit, limit)
        big = jnp.max(jnp.where(ok, jnp.abs(delta * log_ratio), 0), axis=axes)
        use_near = (big < 0.5) & ~any_gap
        near_sum = jnp.where(use_near, jnp.sum(weights * jnp.expm1(delta * clipped), axis=axes), 0)
        near = jnp.where(
            delta == 0,
            jnp.sum(weights * log_ratio, axis=axes),
            jnp.log1p(near_sum) / safe_delta,
        )
        out = jnp.where(use_near, near, far)
        # q = 0 under a positive p: infinite for alpha >= 1 (the term q^(1 - alpha) diverges)
        out = jnp.where(any_gap & (delta >= 0), jnp.inf, out)
    return jnp.where(mass > 0, out, 0).astype(out_dtype)
