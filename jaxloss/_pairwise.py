"""The all-pairs core: Gram-product distances between two sets of rows, accurate and safe.

All-pairs distances computed through a matrix product go through this
module: ``cdist`` / ``pdist`` (euclidean, sqeuclidean, seuclidean,
mahalanobis, cosine, correlation, dot and the boolean counts) and the in-batch
metric-learning losses. The blocked search (``knn``) uses only
:func:`ranking_scores`, a query-invariant ranking form without centring (its
winners are re-scored exactly).

Conventions, the same for every caller:

* **Centring.** Squared distances ``|x_i - y_j|^2 = |x_i|^2 + |y_j|^2 - 2 x_i.y_j``
  are computed after subtracting one common shift from both sets, the mean
  of the rows of ``x`` and ``y`` together.
  Distances do not change; the cancellation of large norms (data with a
  common offset) does. Being shift-invariant, they get no gradient through
  the shift (it is a ``stop_gradient``).
* **Clamping.** Squared distances are clamped at 0, and values within the
  rounding noise of the product (``SNAP * sqrt(d + 2) * eps * (|x_i|^2 + |y_j|^2)``
  on centred norms) are returned as exactly 0, with gradient 0.
* **One set.** ``same=True`` (or ``y=None``) says that ``y`` is ``x``: the
  result is exactly symmetric and its diagonal exactly 0 (for ``dot``:
  symmetric). It is an explicit argument, never decided by object identity.
  On CPU the product ``x x^T`` is symmetric as computed (entries ``(i, j)``
  and ``(j, i)`` are the same ordered sum; tested), and an ``(n, n)``
  transpose there costs several times the product, so it is symmetrised
  explicitly on other backends only.
* **Cosine.** ``1 - cos(u, v) = |u/|u| - v/|v||^2 / 2``, computed through the
  same centred product (accurate for nearly parallel vectors), clipped to
  ``[0, 2]``. A zero vector has similarity 0 with a non-zero one (distance 1),
  and two zero vectors are the same point (distance 0).
* **Gradients.** Finite everywhere; the square root's gradient is 0 at 0, so
  coincident points give the zero subgradient (PyTorch's rule). The squared
  distance has its own JVP: reverse mode is one masked pass over the
  ``(n, m)`` cotangent and one product per set, with no differentiation
  through the clamp, the snap or the diagonal, and no ``(n, n)`` transpose.
* **Scale.** Before a product both sets are multiplied by one power of two
  that brings their largest entry into ``[1, 2)``, and the result is
  unscaled after (the square root of a Euclidean distance is taken first).
  Powers of two change no rounding, so the values are those of the plain
  product wherever it neither overflows nor underflows, and finite wherever
  the distance is representable. Unit rows (cosine) are scaled the same way
  before their norm, so cosines are scale-free.
* **Precision.** Products use ``precision=HIGHEST`` by default (GPUs otherwise
  run float32 products in TF32); half-precision inputs are computed in
  float32. Results are in the compute dtype; callers cast to their output
  dtype.

Inputs are matrices ``x (n, d)`` and ``y (m, d)``; batches are ``jax.vmap``-ed
by the caller.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from . import _numerics

__all__ = [
    "GRAM_METRICS",
    "HIGHEST",
    "binary_counts",
    "cosine",
    "distances",
    "dot",
    "euclidean",
    "gram",
    "mean_shift",
    "ranking_scores",
    "rowwise_cosine",
    "rowwise_squared_euclidean",
    "squared_euclidean",
    "unit_rows",
]

HIGHEST = jax.lax.Precision.HIGHEST

#: The metrics :func:`distances` dispatches.
GRAM_METRICS = ("euclidean", "sqeuclidean", "cosine", "dot")

#: Squared distances below SNAP * sqrt(d + 2) * eps * (|x|^2 + |y|^2) (centred norms) are
#: rounding noise of the product (measured: at most 0.52 sqrt(d + 2) eps for identical points)
#: and are returned as 0.
SNAP = 4.0
#: Problems with n * m * d at most this many elements are computed from the differences
#: directly (exact, no product).
DIRECT_ELEMENTS = 1 << 18


# --------------------------------------------------------------------------- building blocks


def _as_compute(x, y):
    """``x``, ``y`` (None means ``x``) as arrays in the compute dtype (float32 for half)."""
    x = jnp.asarray(x)
    y = x if y is None else jnp.asarray(y)
    dtype = _numerics.compute_dtype(x.dtype, y.dtype)
    return x.astype(dtype), y.astype(dtype)


def _check_same(x, y, same):
    if same and x.shape != y.shape:
        raise ValueError(f"same=True needs x and y of one shape; got {x.shape} and {y.shape}.")


def gram(a, b, *, precision=HIGHEST, preferred_element_type=None) -> jax.Array:
    """``a @ b^T`` over the last axis: ``(n, k), (m, k) -> (n, m)``."""
    return jnp.dot(a, b.T, precision=precision, preferred_element_type=preferred_element_type)


def mean_shift(x, y=None) -> jax.Array:
    """The mean ``(d,)`` of the rows of ``x`` and ``y`` together (the default centring shift)."""
    total = jnp.sum(x, axis=0)
    count = x.shape[0]
    if y is not None:
        total = total + jnp.sum(y, axis=0)
        count += y.shape[0]
    return total / max(count, 1)


def _symmetric(out, same):
    # (a + b) / 2 == (b + a) / 2 exactly: the result is exactly symmetric.
    return 0.5 * (out + out.T) if same else out


def _zero_diagonal(out, same):
    if not same:
        return out
    i = jnp.arange(out.shape[0])
    return out.at[i, i].set(0, indices_are_sorted=True, unique_indices=True)


def unit_rows(x) -> tuple[jax.Array, jax.Array]:
    """``x / |x|`` row-wise and the mask ``|x| == 0``: scale-free, 0 (gradient 0) for a zero row.

    The norm is taken of the row times a power of two (``_numerics.norm2_parts``),
    so ``unit_rows(c x) == unit_rows(x)`` for every ``c > 0`` that keeps ``c x``
    finite and non-zero, with finite gradients.
    """
    n, s, _ = _numerics.norm2_parts(x, -1)
    return _numerics.safe_divide(x * s, n), (n == 0)[..., 0]


# --------------------------------------------------------------------------- row-matched forms


def rowwise_squared_euclidean(x, y, metric_matrix=None) -> jax.Array:
    """``(x - y)^T S (x - y)`` over the last axis (broadcasting; ``S = I`` by default)."""
    diff = x - y
    if metric_matrix is None:
        return jnp.sum(diff * diff, axis=-1)
    return jax.nn.relu(jnp.einsum("...i,ij,...j->...", diff, metric_matrix, diff, precision=HIGHEST))


def rowwise_cosine(x, y) -> jax.Array:
    """``1 - cos(x, y)`` over the last axis (broadcasting), with this module's zero-vector rule."""
    ux, zx = unit_rows(x)
    uy, zy = unit_rows(y)
    d = 0.5 * rowwise_squared_euclidean(ux, uy)  # exactly 0 for equal directions
    return jnp.clip(jnp.where(zx != zy, 1.0, d), 0.0, 2.0)


# --------------------------------------------------------------------------- all-pairs forms


def _noise(sq_x, sq_y, d):
    """``(n, m)`` rounding noise of a product-based squared distance (see :data:`SNAP`)."""
    eps = float(jnp.finfo(sq_x.dtype).eps)
    return SNAP * math.sqrt(d + 2) * eps * (jnp.abs(sq_x)[:, None] + jnp.abs(sq_y)[None, :])


def _symmetric_products() -> bool:
    """Whether the default backend's products ``a a^T`` are exactly symmetric (CPU: yes)."""
    return jax.default_backend() == "cpu"


def _product_parts(a, b, precision):
    """``(|a_i|^2, |b_j|^2, a_i . b_j + a_j . b_i or 2 a_i . b_j)`` (``b`` None: the same set)."""
    sq_a = jnp.sum(a * a, axis=-1)
    if b is None:
        g = gram(a, a, precision=precision)
        # A CPU product a a^T forms entries (i, j) and (j, i) as the same ordered sum: already
        # exactly symmetric, and an (n, n) transpose there costs several times the product.
        return sq_a, sq_a, 2 * g if _symmetric_products() else g + g.T
    return sq_a, jnp.sum(b * b, axis=-1), 2 * gram(a, b, precision=precision)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _centred_squared(a, b, precision):
    """Squared distances of centred rows ``a (n, d)``, ``b (m, d)`` (None: ``b`` is ``a``).

    ``|a_i|^2 + |b_j|^2 - 2 a_i . b_j``, clamped at 0, snapped to 0 within
    rounding noise, zero diagonal for one set. The tangent is written with one
    product per set, so that reverse mode is one masked pass over the
    ``(n, m)`` cotangent and one product per input: for one set,
    ``dA = 2 (diag(S 1) A - S A)`` with ``S = C + C^T``, no autodiff through
    the clamp and snap.
    """
    return _centred_squared_and_keep(a, b, precision)[0]


def _centred_squared_and_keep(a, b, precision):
    sq_a, sq_b, two_g = _product_parts(a, b, precision)
    d2 = (sq_a[:, None] + sq_b[None, :]) - two_g
    keep = d2 > _noise(sq_a, sq_b, a.shape[-1])
    if b is None:
        i = jnp.arange(a.shape[0])
        keep = keep & (i[:, None] != i[None, :])
    return jnp.where(keep, d2, 0), keep


@_centred_squared.defjvp
def _centred_squared_jvp(precision, primals, tangents):
    a, b = primals
    ta, tb = tangents
    out, keep = _centred_squared_and_keep(a, b, precision)
    dsq_a = 2 * jnp.sum(a * ta, axis=-1)
    if b is None:  # t + t^T as two products: reverse mode then needs no (n, n) transpose
        t = gram(ta, a, precision=precision) + gram(a, ta, precision=precision)
        dd2 = (dsq_a[:, None] + dsq_a[None, :]) - 2 * t
    else:
        dsq_b = 2 * jnp.sum(b * tb, axis=-1)
        dd2 = (dsq_a[:, None] + dsq_b[None, :]) - 2 * (
            gram(ta, b, precision=precision) + gram(a, tb, precision=precision)
        )
    return out, jnp.where(keep, dd2, 0)


def _common_scale(a, b, squared):
    """``_numerics.pow2_scale`` of the largest ``|entry|`` of ``a`` and ``b`` (None: ``a`` only).

    ``squared``: the exponent is clipped to half the range, so that ``(1 / s)^2``
    (which unscales a squared distance, and its gradient) is finite. One
    max-abs reduction per set and the scalar's exponent bits: the ``(n, m)``
    pass that unscales multiplies by a scalar. Taken of the raw sets (not the
    centred ones, which would be materialised for it: 8% of a 2048 x 2048 x
    256 ``cdist``), so the centred data times ``s`` lies below 4.
    """
    half = (jnp.finfo(a.dtype).maxexp - 2) // 2 if squared else None
    m = jnp.max(jnp.abs(a), initial=0)
    if b is not None:
        m = jnp.maximum(m, jnp.max(jnp.abs(b), initial=0))
    s, inv = _numerics.pow2_scale(m, half)
    return s, inv


def _scaled_squared(x, y, same, metric_matrix, precision, squared, bounded=False):
    """``(d2 s^2, 1 / s)``: the squared distances of the data times ``s``, a power of two.

    ``s`` brings the largest entry of the data into ``[1, 2)`` (within
    half the exponent range when ``squared``, see :func:`_common_scale`), so no
    square of the product overflows or underflows needlessly; being a power of
    two it changes no rounding: ``d2 = (d2 s^2) (1 / s) (1 / s)`` to the bit
    wherever the unscaled computation was finite and normal. ``bounded``: the
    rows are unit vectors (or zero), no scale is needed (``1 / s = 1``).
    """
    same = same or y is None
    x, y = _as_compute(x, y)
    _check_same(x, y, same)
    n, d = x.shape
    m = y.shape[0]
    if n * m * d <= DIRECT_ELEMENTS:
        s, inv = (1, 1) if bounded else _common_scale(x, None if same else y, squared)
        xs = x * s
        ys = xs if same else y * s
        out = rowwise_squared_euclidean(xs[:, None, :], ys[None, :, :], metric_matrix)
        return _zero_diagonal(_symmetric(out, same), same), inv
    # distances are shift-invariant: the gradient through the shift is 0
    mu = jax.lax.stop_gradient(mean_shift(x, None if same else y))
    xc, yc = x - mu, y - mu
    s, inv = (1, 1) if bounded else _common_scale(x, None if same else y, squared)
    xc, yc = xc * s, yc * s
    if metric_matrix is None:
        return _centred_squared(xc, None if same else yc, precision), inv
    xs = jnp.dot(xc, metric_matrix, precision=precision)
    ys = jnp.dot(yc, metric_matrix, precision=precision)
    xx = jnp.sum(xs * xc, axis=-1, keepdims=True)
    yy = jnp.sum(ys * yc, axis=-1, keepdims=True)
    a = jnp.concatenate([-2 * xs, xx, jnp.ones_like(xx)], axis=-1)
    b = jnp.concatenate([yc, jnp.ones_like(yy), yy], axis=-1)
    d2 = _symmetric(gram(a, b, precision=precision), same)
    return _zero_diagonal(jnp.where(d2 <= _noise(xx[:, 0], yy[:, 0], d), 0.0, d2), same), inv


def squared_euclidean(
    x,
    y=None,
    *,
    same: bool = False,
    metric_matrix=None,
    precision=HIGHEST,
    ranking: bool = False,
) -> jax.Array:
    """``(n, m)`` squared distances ``(x_i - y_j)^T S (x_i - y_j)`` (``S = I`` by default).

    One product of the centred rows, ``|x_i|^2 + |y_j|^2 - 2 x_i . y_j``
    (``[-2 S x, x^T S x, 1] . [y, 1, y^T S y]`` with a metric matrix); clamped
    at 0 and snapped to 0 within rounding noise. The shift does not change
    the distances, so no gradient flows through it; the gradient of the
    Euclidean form is one masked pass over the cotangent and one product per
    set. Small problems (``n m d <= DIRECT_ELEMENTS``) are computed from the
    differences. Both sets are multiplied by one power of two that brings
    their largest (centred) entry into ``[1, 2)`` before the product, and the
    result by its inverse square after (exact: values are unchanged wherever
    the plain product neither overflows nor underflows, and finite wherever
    the squared distance is representable).

    Args:
      x: ``(n, d)``.
      y: ``(m, d)``, or None for ``x`` (implies ``same``).
      same: ``y`` is ``x``: exactly symmetric, exactly zero diagonal.
      metric_matrix: optional symmetric positive semi-definite ``(d, d)``.
      precision: precision of the products.
      ranking: return the squared distances times one positive power of two
        instead (the same order, finite for any finite input): for choosing,
        not for values.

    Returns:
      ``(n, m)`` in the compute dtype.
    """
    d2, inv = _scaled_squared(x, y, same, metric_matrix, precision, not ranking)
    return d2 if ranking else (d2 * inv) * inv


def euclidean(x, y=None, *, same: bool = False, metric_matrix=None, precision=HIGHEST) -> jax.Array:
    """``(n, m)`` distances: the safe square root (gradient 0 at 0) of :func:`squared_euclidean`.

    The root is taken before unscaling, so the distances are finite wherever
    they are representable (up to the largest float, not its square root).
    """
    d2, inv = _scaled_squared(x, y, same, metric_matrix, precision, False)
    return _numerics.sqrt(d2) * inv


def cosine(x, y=None, *, same: bool = False, precision=HIGHEST) -> jax.Array:
    """``(n, m)`` cosine distances ``1 - cos(x_i, y_j)`` in ``[0, 2]``.

    Computed as ``|u_i - v_j|^2 / 2`` of the unit rows through
    :func:`squared_euclidean`; a zero row is at distance 1 from a non-zero
    row and 0 from another zero row.
    """
    same = same or y is None
    x, y = _as_compute(x, y)
    _check_same(x, y, same)
    ux, zx = unit_rows(x)
    uy, zy = (ux, zx) if same else unit_rows(y)
    d2, _ = _scaled_squared(ux, uy, same, None, precision, True, bounded=True)
    d = 0.5 * d2
    return jnp.clip(jnp.where(zx[:, None] != zy[None, :], 1.0, d), 0.0, 2.0)


def dot(x, y=None, *, same: bool = False, precision=HIGHEST) -> jax.Array:
    """``(n, m)`` inner products ``x_i . y_j`` (a similarity; exactly symmetric when ``same``)."""
    same = same or y is None
    x, y = _as_compute(x, y)
    _check_same(x, y, same)
    return _symmetric(gram(x, y, precision=precision), same)


def distances(
    x, y=None, metric: str = "euclidean", *, same: bool = False, precision=HIGHEST, ranking: bool = False
) -> jax.Array:
    """``(n, m)`` all-pairs values for ``metric`` in :data:`GRAM_METRICS` (``dot`` is a similarity).

    ``ranking=True``: ``"sqeuclidean"`` may come back times one positive power of
    two (:func:`squared_euclidean`'s ranking form: the same order, never
    overflowing); the other metrics are unchanged.
    """
    if metric == "euclidean":
        return euclidean(x, y, same=same, precision=precision)
    if metric == "sqeuclidean":
        return squared_euclidean(x, y, same=same, precision=precision, ranking=ranking)
    if metric == "cosine":
        return cosine(x, y, same=same, precision=precision)
    if metric == "dot":
        return dot(x, y, same=same, precision=precision)
    raise ValueError(f"metric must be one of {GRAM_METRICS}; got {metric!r}.")


def binary_counts(a, b, w=None, *, precision=HIGHEST):
    """Counts of the 0/1 matrices ``a (n, d)``, ``b (m, d)`` through one product.

    Returns ``(ntt, na, nb, total)``: ``ntt[i, j] = sum_k w_k a_ik b_jk``,
    ``na[i] = sum_k w_k a_ik``, ``nb[j]`` likewise and ``total = sum_k w_k``
    (``w = 1`` by default). Unweighted counts are exact: the product of 0/1
    values is accumulated in float32 (exact up to ``2^24`` features) at any
    precision.
    """
    if w is None:
        ct = jnp.float32 if a.shape[-1] < (1 << 24) else a.dtype
        ntt = gram(
            a.astype(ct), b.astype(ct), precision=jax.lax.Precision.DEFAULT, preferred_element_type=ct
        ).astype(a.dtype)
        return ntt, jnp.sum(a, -1), jnp.sum(b, -1), jnp.asarray(a.shape[-1], a.dtype)
    ntt = gram(a * w, b, precision=precision)
    return ntt, jnp.sum(a * w, -1), jnp.sum(b * w, -1), jnp.sum(w)


# --------------------------------------------------------------------------- ranking form (search)


def ranking_scores(rows, queries, row_terms=None, *, metric: str, precision=HIGHEST) -> jax.Array:
    """``(B, q)`` selection scores of database ``rows (B, d)`` for ``queries (q, d)``, larger nearer.

    The query-invariant ranking form used by a top-k search, not a distance:
    one product ``rows @ queries^T`` and a per-row term, with the per-query
    constant left out (it does not change any query's order). The caller
    prepares the operands:

    * ``"sqeuclidean"`` / ``"euclidean"`` / 0-1 ``"hamming"``: queries scaled by
      2 and ``row_terms = |x|^2``: ``2 q.x - |x|^2 = |q|^2 - |q - x|^2``;
    * ``"cosine"``: unit queries and ``row_terms = 1 / |x|`` (0 for a zero row):
      ``cos(q, x)``;
    * ``"dot"``: ``row_terms`` unused: ``q.x``.

    The winners are re-scored exactly by the caller; this form only ranks.
    """
    g = gram(rows, queries, precision=precision)
    if metric == "dot" or row_terms is None:
        return g
    if metric == "cosine":
        return g * row_terms[:, None]
    return g - row_terms[:, None]
