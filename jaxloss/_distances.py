"""Distances: row-matched and all-pairs, every scipy metric, GEMM-fast and accurate.

Two forms share one registry of metrics:

* ``pairwise_distance`` pairs rows one to one (broadcasting), like
  ``torch.nn.functional.pairwise_distance``;
* ``cdist`` / ``pdist`` compare every row of ``x`` with every row of
  ``y``, like ``scipy.spatial.distance.cdist`` / ``pdist`` and ``torch.cdist``.

Every numeric metric of ``scipy.spatial.distance.cdist`` is here with scipy's
meaning and parameters, plus ``"manhattan"`` (= cityblock), ``"dot"`` (the inner
product, a similarity) and any callable ``f(u, v)``.

How the all-pairs form is computed:

* ``euclidean``, ``sqeuclidean``, ``seuclidean``, ``mahalanobis``, ``cosine``,
  ``correlation`` and ``dot`` go through one matrix product. The data are first
  centred on the common mean of ``x`` and ``y`` (distances do not change, the
  cancellation in ``|x|^2 + |y|^2 - 2 x.y`` does), squared distances are clamped
  at 0, and when ``n == m`` the diagonal is recomputed row-matched, so
  ``cdist(x)`` and ``cdist(x, x)`` have an exactly zero diagonal.
* The boolean metrics (``hamming`` on 0/1 data, ``jaccard``, ``dice``,
  ``rogerstanimoto``, ``russellrao``, ``sokalsneath``, ``yule``) count
  ``TT``/``TF``/``FT``/``FF`` with one matrix product of 0/1 matrices.
* Every other metric (and ``hamming`` on non-binary data) is evaluated in
  tiles, so peak memory is bounded by a tile, never by ``n * m * d``.

Zero vectors: where scipy returns NaN (cosine and correlation with a zero or
constant vector, braycurtis/dice/sokalsneath of two all-zero vectors) jaxloss
returns a finite value: the cosine similarity with a zero vector is 0 (distance
1, scikit-learn's choice) and two zero vectors are at distance 0 (the same
point); 0/0 ratios are 0. Gradients are finite everywhere, with the zero
subgradient at coincident points (PyTorch's rule).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from . import _bits, _checks, _numerics

__all__ = [
    "METRICS",
    "cdist",
    "cosine_distance",
    "cosine_similarity",
    "pairwise_distance",
    "pdist",
    "squareform",
]

HIGHEST = jax.lax.Precision.HIGHEST

#: Canonical metric names.
METRICS = (
    "braycurtis",
    "canberra",
    "chebyshev",
    "cityblock",
    "correlation",
    "cosine",
    "dice",
    "dot",
    "euclidean",
    "hamming",
    "jaccard",
    "jensenshannon",
    "mahalanobis",
    "minkowski",
    "rogerstanimoto",
    "russellrao",
    "seuclidean",
    "sokalsneath",
    "sqeuclidean",
    "yule",
)

#: scipy's aliases, plus "manhattan".
ALIASES = {
    "chebychev": "chebyshev",
    "cheby": "chebyshev",
    "cheb": "chebyshev",
    "ch": "chebyshev",
    "cblock": "cityblock",
    "cb": "cityblock",
    "c": "cityblock",
    "manhattan": "cityblock",
    "co": "correlation",
    "cos": "cosine",
    "euclid": "euclidean",
    "eu": "euclidean",
    "e": "euclidean",
    "matching": "hamming",
    "hamm": "hamming",
    "ha": "hamming",
    "h": "hamming",
    "jacc": "jaccard",
    "ja": "jaccard",
    "j": "jaccard",
    "js": "jensenshannon",
    "mahal": "mahalanobis",
    "mah": "mahalanobis",
    "mi": "minkowski",
    "m": "minkowski",
    "pnorm": "minkowski",
    "se": "seuclidean",
    "s": "seuclidean",
    "sqe": "sqeuclidean",
    "sqeuclid": "sqeuclidean",
    "inner": "dot",
}

_BOOLEAN = ("dice", "jaccard", "rogerstanimoto", "russellrao", "sokalsneath", "yule")
_GRAM = ("euclidean", "sqeuclidean", "seuclidean", "mahalanobis", "cosine", "correlation", "dot")
_PARAMS = {
    "braycurtis": ("w",),
    "canberra": ("w",),
    "chebyshev": ("w",),
    "cityblock": ("w",),
    "correlation": ("w", "centered"),
    "cosine": ("w",),
    "dice": ("w",),
    "dot": (),
    "euclidean": ("w",),
    "hamming": ("w",),
    "jaccard": ("w",),
    "jensenshannon": ("base",),
    "mahalanobis": ("VI",),
    "minkowski": ("p", "w"),
    "rogerstanimoto": ("w",),
    "russellrao": ("w",),
    "seuclidean": ("V",),
    "sokalsneath": ("w",),
    "sqeuclidean": ("w",),
    "yule": ("w",),
}
#: Largest number of elements of one (rows, rows, features) tile of the tiled metrics.
BLOCK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- metric parsing


def _resolve_metric(metric, fn: str):
    if callable(metric):
        return metric
    if not isinstance(metric, str):
        raise TypeError(f"{fn}: `metric` must be a metric name or a callable f(u, v); got {metric!r}.")
    name = metric.lower()
    name = ALIASES.get(name, name)
    if name not in METRICS:
        hint = _checks.closest_name(metric, list(METRICS) + list(ALIASES))
        hint = f" Did you mean {ALIASES.get(hint, hint)!r}?" if hint else ""
        raise ValueError(
            f"{fn}: unknown `metric` {metric!r}; allowed: {', '.join(METRICS)}, or a callable f(u, v).{hint}"
        )
    return name


def _check_params(name, params: dict, d: int, fn: str) -> dict:
    """Validates the metric's keyword parameters; returns them with defaults filled."""
    if callable(name):
        return params
    allowed = _PARAMS[name]
    for key in params:
        if key not in allowed:
            shown = ", ".join(allowed) if allowed else "none"
            raise TypeError(f"{fn}: metric {name!r} takes no parameter {key!r}; its parameters: {shown}.")
    out = dict(params)
    if "w" in out and out["w"] is not None:
        w = jnp.asarray(out["w"])
        if w.ndim != 1 or w.shape[0] != d:
            raise ValueError(f"{fn}: `w` must have shape ({d},) (one weight per feature); got {w.shape}.")
        if not _checks.is_traced(out["w"]) and bool(np.any(np.asarray(w) < 0)):
            raise ValueError(f"{fn}: `w` must be non-negative; got {np.asarray(w)}.")
        out["w"] = w
    else:
        out["w"] = None
    if name == "minkowski":
        p = out.get("p", 2.0)
        _checks.check_number(p, "p", fn, low=0.0, low_inclusive=False, allow_inf=True)
        out["p"] = float(p)
    if name == "mahalanobis" and out.get("VI") is not None:
        vi = jnp.asarray(out["VI"])
        if vi.shape != (d, d):
            raise ValueError(
                f"{fn}: `VI` (the inverse covariance) must have shape ({d}, {d}) for {d} features; "
                f"got {vi.shape}."
            )
        out["VI"] = vi
    if name == "seuclidean" and out.get("V") is not None:
        v = jnp.asarray(out["V"])
        if v.shape != (d,):
            raise ValueError(f"{fn}: `V` (the variances) must have shape ({d},); got {v.shape}.")
        out["V"] = v
    if name == "correlation":
        out["centered"] = bool(out.get("centered", True))
    return out


# --------------------------------------------------------------------------- helpers


def _weighted_sum(a, w):
    return jnp.sum(a if w is None else a * w, axis=-1)


def _unit(x):
    """``x / |x|`` along the last axis, 0 for a zero vector (finite gradient); and ``|x| == 0``."""
    n = _numerics.p_norm(x, 2.0, -1, True)
    zero = n == 0
    return _numerics.safe_divide(x, n), zero[..., 0]


def _minkowski_root_w(w, p):
    if p == 1:
        return w
    if p == 2:
        return jnp.sqrt(w)
    if p == math.inf:
        return (w != 0).astype(w.dtype)
    return w ** (1.0 / p)


def _stacked_rows(x, y):
    """All rows of x and y (leading dims flattened) for default V / VI."""
    rows = [x.reshape(-1, x.shape[-1])]
    if y is not None:
        rows.append(y.reshape(-1, y.shape[-1]))
    return jnp.concatenate(rows, axis=0)


def _default_variances(x, y, fn):
    rows = _stacked_rows(x, y)
    if rows.shape[0] < 2:
        raise ValueError(
            f"{fn}: seuclidean needs `V` or at least 2 rows to estimate it; got {rows.shape[0]}."
        )
    return jnp.var(rows, axis=0, ddof=1)


def _default_inverse_covariance(x, y, fn):
    rows = _stacked_rows(x, y)
    m, d = rows.shape
    if m <= d:
        raise ValueError(
            f"{fn}: mahalanobis without `VI` estimates the covariance from the {m} rows, which is "
            f"singular for {d} features (at least {d + 1} rows are needed); pass `VI`."
        )
    return jnp.linalg.inv(jnp.cov(rows.T)).T


def _prepare(name, params, x, y, fn):
    """Fills data-dependent defaults (V, VI) and derives per-metric constants."""
    if name == "seuclidean" and params.get("V") is None:
        params["V"] = _default_variances(x, y, fn)
    if name == "mahalanobis" and params.get("VI") is None:
        params["VI"] = _default_inverse_covariance(x, y, fn)
    return params


# --------------------------------------------------------------------------- row-matched kernels


def _bool_counts_rowwise(x, y, w):
    a = (x != 0).astype(jnp.result_type(float)) if w is None else (x != 0).astype(w.dtype)
    b = (y != 0).astype(a.dtype)
    total = jnp.asarray(x.shape[-1], a.dtype) if w is None else jnp.sum(w)
    ntt = _weighted_sum(a * b, w)
    ntf = _weighted_sum(a, w) - ntt
    nft = _weighted_sum(b, w) - ntt
    return ntt, ntf, nft, total


def _from_counts(name, ntt, ntf, nft, total):
    """A boolean dissimilarity from its counts (scipy's formulas; 0/0 is 0)."""
    diff = ntf + nft
    if name == "hamming":
        return _numerics.safe_divide(diff, total)
    if name == "jaccard":
        return _numerics.safe_divide(diff, ntt + diff)
    if name == "dice":
        return _numerics.safe_divide(diff, 2 * ntt + diff)
    if name == "rogerstanimoto":
        nff = total - ntt - diff
        return _numerics.safe_divide(2 * diff, ntt + nff + 2 * diff)
    if name == "russellrao":
        return _numerics.safe_divide(total - ntt, total)
    if name == "sokalsneath":
        return _numerics.safe_divide(2 * diff, ntt + 2 * diff)
    if name == "yule":
        nff = total - ntt - diff
        half_r = ntf * nft
        return _numerics.safe_divide(2 * half_r, ntt * nff + half_r)
    raise AssertionError(name)


def _cosine_rowwise(x, y, w):
    if w is not None:
        sw = jnp.sqrt(w)
        x, y = x * sw, y * sw
    ux, zx = _unit(x)
    uy, zy = _unit(y)
    diff = ux - uy
    # 1 - cos = |x/|x| - y/|y||^2 / 2: exactly 0 for equal directions.
    d = 0.5 * jnp.sum(diff * diff, axis=-1)
    d = jnp.where(zx != zy, 1.0, d)  # one zero vector: similarity 0
    return jnp.clip(d, 0.0, 2.0)


def _center_rows(x, w):
    if w is None:
        return x - jnp.mean(x, axis=-1, keepdims=True)
    return x - (jnp.sum(x * w, axis=-1, keepdims=True) / jnp.sum(w))


def _jensenshannon_terms(p, q, base):
    m = 0.5 * (p + q)
    terms = _numerics.xlogy(p, _numerics.safe_divide(p, m, 1.0)) + _numerics.xlogy(
        q, _numerics.safe_divide(q, m, 1.0)
    )
    js = 0.5 * jnp.sum(terms, axis=-1)
    if base is not None:
        js = js / math.log(base)
    return _numerics.sqrt(js)


def _normalize_distribution(x):
    return _numerics.safe_divide(x, jnp.sum(x, axis=-1, keepdims=True))


def _rowwise(name, params, x, y):
    """The metric between broadcast rows ``x[..., :]`` and ``y[..., :]`` (features last)."""
    if callable(name):
        xb, yb = jnp.broadcast_arrays(x, y)
        lead = xb.shape[:-1]
        f = functools.partial(name, **params) if params else name
        flat = jax.vmap(f)(xb.reshape(-1, xb.shape[-1]), yb.reshape(-1, yb.shape[-1]))
        return jnp.asarray(flat).reshape(lead)
    w = params.get("w")
    if name in _BOOLEAN:
        return _from_counts(name, *_bool_counts_rowwise(x, y, w))
    if name == "hamming":
        ne = (x != y).astype(x.dtype)
        total = jnp.asarray(x.shape[-1], x.dtype) if w is None else jnp.sum(w)
        return _numerics.safe_divide(_weighted_sum(ne, w), total)
    diff = x - y
    if name in ("euclidean", "sqeuclidean"):
        if w is not None:
            diff = diff * jnp.sqrt(w)
        if name == "sqeuclidean":
            return jnp.sum(diff * diff, axis=-1)
        return _numerics.p_norm(diff, 2.0, -1)
    if name == "minkowski":
        p = params["p"]
        if w is not None:
            diff = diff * _minkowski_root_w(w, p)
        return _numerics.p_norm(diff, p, -1)
    if name == "cityblock":
        return _weighted_sum(_numerics.abs(diff), w)
    if name == "chebyshev":
        if w is not None:
            diff = jnp.where(w > 0, diff, 0)
        return _numerics.p_norm(diff, math.inf, -1)
    if name == "seuclidean":
        return _numerics.p_norm(diff / jnp.sqrt(params["V"]), 2.0, -1)
    if name == "mahalanobis":
        vi = params["VI"]
        return _numerics.sqrt(jnp.einsum("...i,ij,...j->...", diff, vi, diff, precision=HIGHEST))
    if name == "canberra":
        den = _numerics.abs(x) + _numerics.abs(y)
        return _weighted_sum(_numerics.safe_divide(_numerics.abs(diff), den), w)
    if name == "braycurtis":
        return _numerics.safe_divide(
            _weighted_sum(_numerics.abs(diff), w), _weighted_sum(_numerics.abs(x + y), w)
        )
    if name == "cosine":
        return _cosine_rowwise(x, y, w)
    if name == "correlation":
        if params.get("centered", True):
            x, y = _center_rows(x, w), _center_rows(y, w)
        return _cosine_rowwise(x, y, w)
    if name == "jensenshannon":
        return _jensenshannon_terms(
            _normalize_distribution(x), _normalize_distribution(y), params.get("base")
        )
    if name == "dot":
        return jnp.sum(x * y, axis=-1)
    raise AssertionError(name)


# --------------------------------------------------------------------------- all-pairs kernels
# Each works on one pair of matrices x (n, d), y (m, d) and returns (n, m); _per_matrix maps
# them over the flattened batch (a plain call for a batch of one, so XLA sees 2-D work).


def _per_matrix(fn, x, y, sequential=False):
    """``fn`` over x (B, n, d), y (B, m, d): direct for B == 1, lax.map or vmap otherwise."""
    if x.shape[0] == 1:
        return fn(x[0], y[0])[None]
    if sequential:  # peak memory of one matrix at a time
        return jax.lax.map(lambda xy: fn(xy[0], xy[1]), (x, y))
    return jax.vmap(fn)(x, y)


def _set_diagonal(out, diag):
    """``out[i, i] = diag[i]`` (an in-place scatter, no pass over the matrix)."""
    i = jnp.arange(out.shape[0])
    return out.at[i, i].set(diag.astype(out.dtype), indices_are_sorted=True, unique_indices=True)


def _gram(a, b, precision, **kwargs):
    """``a @ b^T``: (n, k), (m, k) -> (n, m)."""
    return jnp.dot(a, b.T, precision=precision, **kwargs)


#: Squared distances below SNAP * sqrt(d + 2) * eps * (|x|^2 + |y|^2) (centred norms) are
#: rounding noise of the product (measured: at most 0.52 sqrt(d + 2) eps for identical points)
#: and are returned as 0.
SNAP = 4.0
#: All-pairs problems with n * m * d at most this many elements are computed directly
#: (exact differences, no product).
DIRECT_ELEMENTS = 1 << 18


def _squared_gram(x, y, precision, metric_matrix=None):
    """``(x_i - y_j)^T S (x_i - y_j)`` (S = I by default) via one product, after centring.

    The norms ride in the product: ``[-2 S x, x^T S x, 1] . [y, 1, y^T S y]``;
    the only pass after it clamps at 0 and zeroes values within rounding noise.
    Small problems are computed directly from the differences.
    """
    n, d = x.shape
    m = y.shape[0]
    if n * m * d <= DIRECT_ELEMENTS:
        diff = x[:, None, :] - y[None, :, :]
        if metric_matrix is None:
            return jnp.sum(diff * diff, axis=-1)
        return jax.nn.relu(jnp.einsum("nmi,ij,nmj->nm", diff, metric_matrix, diff, precision=precision))
    mu = (jnp.sum(x, axis=0) + jnp.sum(y, axis=0)) / max(n + m, 1)
    xc, yc = x - mu, y - mu
    if metric_matrix is None:
        xs, ys = xc, yc
    else:
        xs = jnp.dot(xc, metric_matrix, precision=precision)
        ys = jnp.dot(yc, metric_matrix, precision=precision)
    xx = jnp.sum(xs * xc, axis=-1, keepdims=True)
    yy = jnp.sum(ys * yc, axis=-1, keepdims=True)
    a = jnp.concatenate([-2 * xs, xx, jnp.ones_like(xx)], axis=-1)
    b = jnp.concatenate([yc, jnp.ones_like(yy), yy], axis=-1)
    d2 = _gram(a, b, precision)
    c = SNAP * math.sqrt(d + 2) * float(jnp.finfo(d2.dtype).eps)
    noise = c * (jnp.abs(xx) + jnp.abs(yy).T)
    return jnp.where(d2 <= noise, 0.0, d2)


def _symmetrize(out, symmetric):
    # (a + b) / 2 == (b + a) / 2 exactly: cdist(x) is exactly symmetric.
    return 0.5 * (out + out.T) if symmetric else out


def _gram_metric(name, params, x, y, precision, symmetric=False):
    """Gram-path metrics; when n == m the diagonal is recomputed row-matched (exact).

    ``symmetric`` (``y`` is ``x``) averages the result with its transpose, so the
    matrix is exactly symmetric despite the rounding of the product.
    """
    w = params.get("w")
    square = x.shape[0] == y.shape[0]
    if name == "dot":
        return _symmetrize(_gram(x, y, precision), symmetric)
    if name in ("euclidean", "sqeuclidean", "seuclidean", "mahalanobis"):
        sym = None
        if name == "seuclidean":
            scale = 1.0 / jnp.sqrt(params["V"])
        else:
            scale = None if w is None else jnp.sqrt(w)
        xs, ys = (x, y) if scale is None else (x * scale, y * scale)
        if name == "mahalanobis":
            vi = params["VI"]
            sym = 0.5 * (vi + vi.T)  # the quadratic form only sees the symmetric part
        d2 = _symmetrize(_squared_gram(xs, ys, precision, sym), symmetric)
        out = d2 if name == "sqeuclidean" else _numerics.sqrt(d2)
        if square:  # exact diagonal, written after the last elementwise pass (in place)
            out = _set_diagonal(out, _rowwise(name, params, x, y))
        return out
    # cosine / correlation
    xs, ys = x, y
    if name == "correlation" and params.get("centered", True):
        xs, ys = _center_rows(x, w), _center_rows(y, w)
    if w is not None:
        sw = jnp.sqrt(w)
        xs, ys = xs * sw, ys * sw
    ux, zx = _unit(xs)
    uy, zy = _unit(ys)
    out = jnp.clip(1.0 - _symmetrize(_gram(ux, uy, precision), symmetric), 0.0, 2.0)
    out = jnp.where(zx[:, None] & zy[None, :], 0.0, out)  # two zero vectors: same point
    if square:
        out = _set_diagonal(out, _rowwise(name, params, x, y))
    return out


def _count_gram(a, b, w, precision):
    """TT counts of 0/1 matrices (weighted by w): one product, exact in float32 up to 2^24."""
    if w is None:
        exact = a.shape[-1] < (1 << 24)
        ct = jnp.float32 if exact else a.dtype
        # 0/1 products are exact at any matmul precision; accumulate in float32.
        ntt = _gram(a.astype(ct), b.astype(ct), jax.lax.Precision.DEFAULT, preferred_element_type=ct).astype(
            a.dtype
        )
        return ntt, jnp.sum(a, -1), jnp.sum(b, -1), jnp.asarray(a.shape[-1], a.dtype)
    ntt = _gram(a * w, b, precision)
    return ntt, jnp.sum(a * w, -1), jnp.sum(b * w, -1), jnp.sum(w)


def _boolean_metric(name, params, x, y, dtype, precision):
    w = params.get("w")
    a = (x != 0).astype(dtype)
    b = (y != 0).astype(dtype)
    ntt, sa, sb, total = _count_gram(a, b, None if w is None else w.astype(dtype), precision)
    ntf = sa[:, None] - ntt
    nft = sb[None, :] - ntt
    return _from_counts(name, ntt, ntf, nft, total)


def _tile_sizes(n, m, d, budget):
    if n * m * d <= budget:
        return n, m
    by = m if m * d * min(n, 8) <= budget else max(1, budget // (8 * d))
    bx = max(1, min(n, budget // (max(by, 1) * max(d, 1))))
    return bx, min(by, m)


def _pad_rows(a, block):
    extra = (-a.shape[0]) % block
    if extra == 0:
        return a
    return jnp.concatenate([a, jnp.broadcast_to(a[-1:], (extra, *a.shape[1:]))], axis=0)


def _tiled(kernel, x, y):
    """kernel(x (bx, d), y (by, d)) -> (bx, by) over tiles of at most BLOCK_ELEMENTS."""
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    if n == 0 or m == 0:
        return jnp.zeros((n, m), kernel(x[:0], y[:0]).dtype)
    bx, by = _tile_sizes(n, m, d, BLOCK_ELEMENTS)
    if bx == n and by == m:
        return kernel(x, y)
    xt = _pad_rows(x, bx).reshape(-1, bx, d)
    yt = _pad_rows(y, by).reshape(-1, by, d)
    tile = jax.checkpoint(kernel)  # the backward pass recomputes a tile instead of storing it

    def row_of_tiles(xb):
        return jax.lax.map(lambda yb: tile(xb, yb), yt)  # (nby, bx, by)

    out = jax.lax.map(row_of_tiles, xt)  # (nbx, nby, bx, by)
    out = jnp.transpose(out, (0, 2, 1, 3)).reshape(xt.shape[0] * bx, yt.shape[0] * by)
    return out[:n, :m]


def _too_big_for_vmap(x, y):
    bsz, n, d = x.shape
    return bsz * n * y.shape[1] * d > BLOCK_ELEMENTS


def _elementwise_metric(name, params, x, y):
    def kernel(xb, yb):
        return _rowwise(name, params, xb[:, None, :], yb[None, :, :])

    if name == "jensenshannon":  # normalise once, not per tile
        x, y = _normalize_distribution(x), _normalize_distribution(y)
        base = params.get("base")

        def kernel(xb, yb):  # noqa: F811
            return _jensenshannon_terms(xb[:, None, :], yb[None, :, :], base)

    fn = functools.partial(_tiled, kernel)
    return _per_matrix(fn, x, y, sequential=_too_big_for_vmap(x, y))


def _is_binary(a):
    return jnp.all((a == 0) | (a == 1))


def _unequal_count(x, y, w, dtype, precision, normalize):
    """Number (or weighted fraction) of unequal coordinates: GEMM for 0/1 data, tiles otherwise.

    x (B, n, d), y (B, m, d). The 0/1 test runs once over the whole batch.
    """
    total = jnp.asarray(x.shape[-1], dtype) if w is None else jnp.sum(w)

    def gemm(x, y):
        a, b = (x != 0).astype(dtype), (y != 0).astype(dtype)
        ntt, sa, sb, _ = _count_gram(a, b, w, precision)
        return sa[:, None] + sb[None, :] - 2 * ntt

    def kernel(xb, yb):
        return _weighted_sum((xb[:, None, :] != yb[None, :, :]).astype(dtype), w)

    def by_gemm(x, y):
        return _per_matrix(gemm, x, y)

    def by_tiles(x, y):
        return _per_matrix(functools.partial(_tiled, kernel), x, y, _too_big_for_vmap(x, y))

    if x.dtype == jnp.bool_ and y.dtype == jnp.bool_:
        count = by_gemm(x, y)
    else:
        count = jax.lax.cond(_is_binary(x) & _is_binary(y), by_gemm, by_tiles, x, y)
    return _numerics.safe_divide(count, total) if normalize else count


# --------------------------------------------------------------------------- public API


def _check_pair_shapes(x, y, fn):
    if x.ndim < 2:
        raise ValueError(
            f"{fn}: `x` must have shape (..., n, d) with at least 2 dimensions; "
            f"got shape {x.shape}. "
            "Use x[None] for a single point, or pairwise_distance for row-matched pairs."
        )
    if y.ndim < 2:
        raise ValueError(
            f"{fn}: `y` must have shape (..., m, d) with at least 2 dimensions; got shape {y.shape}."
        )
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"{fn}(x, y) needs x.shape[-1] == y.shape[-1] (the same number of features); "
            f"got {x.shape} and {y.shape}."
        )
    try:
        return tuple(np.broadcast_shapes(x.shape[:-2], y.shape[:-2]))
    except ValueError:
        raise ValueError(
            f"{fn}: the batch dimensions of `x` {x.shape[:-2]} and `y` {y.shape[:-2]} do not broadcast."
        ) from None


def _cdist_core(x, y, name, params, precision, fn, p0_count=False):
    """All-pairs values for 2+-D x, y (y may be None); returns (values, out_dtype)."""
    same = y is None or y is x  # cdist(x) / cdist(x, x): exactly symmetric result
    x = jnp.asarray(x)
    y_given = y is not None
    y = x if y is None else jnp.asarray(y)
    batch = _check_pair_shapes(x, y, fn)
    d = x.shape[-1]
    params = _check_params(name, params, d, fn)
    if name in _BOOLEAN or name == "hamming" or p0_count:
        raw_x, raw_y = x, y
        _, _, out_dtype = _numerics.as_float(x, y)
        dtype = _numerics.compute_dtype(x.dtype, y.dtype)
    else:
        x, y, out_dtype = _numerics.as_float(x, y)
        dtype = x.dtype
    if params.get("w") is not None:
        params["w"] = params["w"].astype(dtype)
    for key in ("V", "VI"):
        if params.get(key) is not None:
            params[key] = jnp.asarray(params[key]).astype(dtype)
    params = _prepare(name, params, x, y if y_given else None, fn)
    n, m = x.shape[-2], y.shape[-2]
    bsz = math.prod(batch)
    xb = jnp.broadcast_to(x, (*batch, n, d)).reshape(bsz, n, d)
    yb = jnp.broadcast_to(y, (*batch, m, d)).reshape(bsz, m, d)
    if p0_count or name == "hamming":
        rx = jnp.broadcast_to(raw_x, (*batch, n, d)).reshape(bsz, n, d)
        ry = jnp.broadcast_to(raw_y, (*batch, m, d)).reshape(bsz, m, d)
        out = _unequal_count(rx, ry, params.get("w"), dtype, precision, normalize=not p0_count)
    elif name in _BOOLEAN:
        rx = jnp.broadcast_to(raw_x, (*batch, n, d)).reshape(bsz, n, d)
        ry = jnp.broadcast_to(raw_y, (*batch, m, d)).reshape(bsz, m, d)
        out = _per_matrix(lambda u, v: _boolean_metric(name, params, u, v, dtype, precision), rx, ry)
    elif not callable(name) and name in _GRAM:

        def gram(u, v):
            return _gram_metric(name, params, u, v, precision, same)

        out = _per_matrix(gram, xb, yb)
    else:
        out = _elementwise_metric(name, params, xb, yb)
    return out.reshape(*batch, n, m), out_dtype


def _is_packed(a) -> bool:
    return a is not None and jnp.issubdtype(jnp.asarray(a).dtype, jnp.unsignedinteger)


def _packed_hamming(x, y, params, fn):
    """Hamming on packed uint32 codes: int32 bit counts, or a fraction with ``num_bits``."""
    x = jnp.asarray(x)
    y = x if y is None else jnp.asarray(y)
    for name, a in (("x", x), ("y", y)):
        _bits.check_packed(a, name, fn)
    batch = _check_pair_shapes(x, y, fn)
    extra = set(params) - {"num_bits"}
    if extra:
        raise ValueError(f"{fn}: hamming on packed codes takes only `num_bits`; got {sorted(extra)}.")
    n, m, w = x.shape[-2], y.shape[-2], x.shape[-1]
    if batch:
        xb = jnp.broadcast_to(x, (*batch, n, w)).reshape(-1, n, w)
        yb = jnp.broadcast_to(y, (*batch, m, w)).reshape(-1, m, w)
        counts = jax.vmap(_bits.hamming_counts)(xb, yb).reshape(*batch, n, m)
    else:
        counts = _bits.packed_hamming_distances(x, y)
    num_bits = params.get("num_bits")
    if num_bits is None:
        return counts
    _checks.check_number(num_bits, "num_bits", fn, low=1, high=32 * w)
    return counts.astype(_numerics.default_float_dtype()) / num_bits


def cdist(x, y=None, metric="euclidean", *, precision=HIGHEST, **params):
    """All-pairs distances between the rows of ``x`` and the rows of ``y``.

    ``out[..., i, j] = metric(x[..., i, :], y[..., j, :])`` for every metric of
    ``scipy.spatial.distance.cdist`` with scipy's meaning and parameters:

    ============== ============================================== ===========
    metric         ``d(u, v)``                                    parameters
    ============== ============================================== ===========
    euclidean      ``sqrt(sum w (u - v)^2)``                      ``w``
    sqeuclidean    ``sum w (u - v)^2``                            ``w``
    minkowski      ``(sum w |u - v|^p)^(1/p)``, ``0 < p <= inf``  ``p=2, w``
    cityblock      ``sum w |u - v|`` (alias ``manhattan``)        ``w``
    chebyshev      ``max |u - v|`` over ``w > 0``                 ``w``
    seuclidean     ``sqrt(sum (u - v)^2 / V)``                    ``V``
    mahalanobis    ``sqrt((u - v)^T VI (u - v))``                 ``VI``
    cosine         ``1 - u.v / (|u| |v|)``                        ``w``
    correlation    cosine of the mean-centred vectors             ``w, centered``
    canberra       ``sum w |u - v| / (|u| + |v|)``                ``w``
    braycurtis     ``sum w |u - v| / sum w |u + v|``              ``w``
    jensenshannon  ``sqrt(JS(u / sum u, v / sum v))``             ``base``
    hamming        weighted fraction of unequal coordinates       ``w``
                   (packed uint32 codes: int32 bit counts, or the
                   fraction with ``num_bits``)                    ``num_bits``
    jaccard, dice, rogerstanimoto, russellrao, sokalsneath, yule:
                   scipy's boolean dissimilarities of ``u != 0``  ``w``
    dot            ``u.v`` (a similarity, not a distance)
    callable       ``f(u, v, **params)`` (vmapped over pairs)
    ============== ============================================== ===========

    ``V`` defaults to the variances and ``VI`` to the inverse covariance of the
    rows of ``x`` and ``y`` together (scipy's defaults).

    Computation: euclidean-type, cosine, correlation and dot through one matrix
    product of centred data (``precision`` applies there), clamped at 0, with
    an exact diagonal when ``n == m`` (so ``cdist(x)`` has a zero diagonal);
    boolean metrics through one product of 0/1 matrices; other metrics in
    tiles of at most ``BLOCK_ELEMENTS`` elements.

    Edge cases: cosine/correlation similarity with a zero (constant) vector is
    0, so the distance is 1; two zero vectors are at distance 0. 0/0 ratios
    (braycurtis, dice, jaccard, sokalsneath... of all-zero vectors) are 0.
    jensenshannon expects non-negative vectors (a zero vector is treated as
    all zeros). Gradients are finite everywhere and 0 at coincident points.

    Args:
      x: ``(..., n, d)``.
      y: ``(..., m, d)`` with batch dims broadcastable with those of ``x``;
        None means ``x``.
      metric: a name above (or a scipy alias) or a callable ``f(u, v)`` of two
        ``(d,)`` vectors returning a scalar.
      precision: matrix-product precision (``HIGHEST`` by default; GPUs use
        TF32 otherwise).
      **params: the metric's parameters (``p``, ``w``, ``V``, ``VI``, ``base``,
        ``centered``, or the callable's keywords).

    Returns:
      ``(..., n, m)`` distances, in the floating input dtype (half precision
      in, half out; integers and booleans give the default float dtype).

    Examples:
      >>> import jax.numpy as jnp
      >>> a = jnp.array([[1, 1, 1], [2, 2, 2]])
      >>> b = jnp.array([[2, 2, 2], [1, 1, 1], [2, 2, 2]])
      >>> cdist(a, b)
      Array([[1.7320508, 0.       , 1.7320508],
             [0.       , 1.7320508, 0.       ]], dtype=float32)
      >>> cdist(jnp.array([[0, 0, 2]]), jnp.array([[0, 0, 1], [0, 1, 0]]), "hamming")
      Array([[0.33333334, 0.6666667 ]], dtype=float32)

      Binary codes packed 32 bits to a uint32 word (:func:`jaxloss.pack_bits`)
      give bit counts through XOR and popcount, with 32x less memory:

      >>> from jaxloss import pack_bits
      >>> codes = pack_bits(jnp.array([[0, 0, 1], [0, 1, 0], [1, 1, 1]]))
      >>> cdist(codes, metric="hamming")
      Array([[0, 2, 2],
             [2, 0, 2],
             [2, 2, 0]], dtype=int32)

    scipy: scipy.spatial.distance.cdist; PyTorch: torch.cdist
    """
    name = _resolve_metric(metric, "cdist")
    if name == "hamming" and (_is_packed(x) or _is_packed(y)):
        return _packed_hamming(x, y, params, "cdist")
    out, out_dtype = _cdist_core(x, y, name, dict(params), precision, "cdist")
    return out.astype(out_dtype)


def pdist(x, metric="euclidean", *, precision=HIGHEST, **params):
    """Condensed distances ``d(x[i], x[j])`` for ``i < j`` in scipy's (row-major) order.

    Same metrics and parameters as ``cdist``. For ``n`` rows the result has
    ``n (n - 1) / 2`` entries: ``(0,1), (0,2), ..., (0,n-1), (1,2), ...``;
    ``squareform`` turns it into the square matrix.

    Args:
      x: ``(..., n, d)``.
      metric: as ``cdist``.
      precision: as ``cdist``.
      **params: as ``cdist``.

    Returns:
      ``(..., n (n - 1) / 2)`` distances.

    Examples:
      >>> import jax.numpy as jnp
      >>> pdist(jnp.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]))
      Array([ 5., 10.,  5.], dtype=float32)

    scipy: scipy.spatial.distance.pdist; PyTorch: torch.pdist
    """
    name = _resolve_metric(metric, "pdist")
    if name == "hamming" and _is_packed(x):
        out, out_dtype = _packed_hamming(x, None, params, "pdist"), None
        n = out.shape[-1]
        rows, cols = np.triu_indices(n, 1)
        return out[..., rows, cols]
    out, out_dtype = _cdist_core(x, None, name, dict(params), precision, "pdist")
    n = out.shape[-1]
    rows, cols = np.triu_indices(n, 1)
    return out[..., rows, cols].astype(out_dtype)


def squareform(x, force: str = "no", checks: bool = True):
    """Converts a condensed distance vector to a square matrix and back (scipy's order).

    A vector of length ``k = n (n - 1) / 2`` becomes the symmetric ``(n, n)``
    matrix with a zero diagonal; a square matrix becomes the vector of its
    upper triangle (``i < j``, row-major).

    Args:
      x: a 1-D condensed vector or a 2-D square matrix.
      force: ``"no"`` (by shape), ``"tomatrix"`` or ``"tovector"``.
      checks: for a concrete (non-traced) matrix, check that it is symmetric
        with a zero diagonal (as scipy does).

    Returns:
      The square matrix or the condensed vector.

    Examples:
      >>> import jax.numpy as jnp
      >>> squareform(jnp.array([1.0, 2.0, 3.0]))
      Array([[0., 1., 2.],
             [1., 0., 3.],
             [2., 3., 0.]], dtype=float32)
      >>> squareform(squareform(jnp.array([1.0, 2.0, 3.0])))
      Array([1., 2., 3.], dtype=float32)

    scipy: scipy.spatial.distance.squareform
    """
    _checks.check_option(force, "force", ("no", "tomatrix", "tovector"), "squareform")
    x = jnp.asarray(x)
    if force == "tovector" or (force == "no" and x.ndim == 2):
        if x.ndim != 2 or x.shape[0] != x.shape[1]:
            raise ValueError(f"squareform: a matrix must be square (n, n); got shape {x.shape}.")
        if checks and not _checks.is_traced(x):
            v = np.asarray(x)
            if np.any(np.diag(v) != 0) or np.any(v != v.T):
                raise ValueError(
                    "squareform: the distance matrix must be symmetric with a zero diagonal; "
                    "pass checks=False to skip this check."
                )
        rows, cols = np.triu_indices(x.shape[0], 1)
        return x[rows, cols]
    if x.ndim != 1:
        raise ValueError(f"squareform: expected a 1-D condensed vector or a 2-D matrix; got shape {x.shape}.")
    k = x.shape[0]
    n = int(round((1 + math.sqrt(1 + 8 * k)) / 2))
    if n * (n - 1) // 2 != k:
        raise ValueError(
            f"squareform: `x`, a condensed vector, must have n (n - 1) / 2 entries for some n; "
            f"got {k} entries."
        )
    rows, cols = np.triu_indices(n, 1)
    out = jnp.zeros((n, n), x.dtype).at[rows, cols].set(x)
    return out.at[cols, rows].set(x)


def pairwise_distance(x, y, metric="euclidean", *, axis: int = -1, **params):
    """Row-matched distances ``metric(x[..., :], y[..., :])`` along ``axis`` (broadcasting).

    The row-matched form of ``cdist``, with the same metrics, parameters
    and edge-case rules: ``cdist(x, y)[i, j] == pairwise_distance(x[i], y[j])``.
    ``seuclidean``/``mahalanobis`` without ``V``/``VI`` estimate them from all
    rows of ``x`` and ``y``.

    Args:
      x: array ``(..., d, ...)``.
      y: array broadcastable with ``x``.
      metric: a metric name or a callable ``f(u, v)`` (see ``cdist``).
      axis: the feature axis.
      **params: the metric's parameters.

    Returns:
      The distances, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[0.0, 0.0], [1.0, 1.0]])
      >>> pairwise_distance(x, jnp.array([[3.0, 4.0], [1.0, 1.0]]))
      Array([5., 0.], dtype=float32)
      >>> preds, labels = jnp.array([[0, 0, 1], [0, 1, 0]]), jnp.array([[1, 0, 1], [0, 1, 0]])
      >>> pairwise_distance(preds, labels, "hamming")
      Array([0.33333334, 0.        ], dtype=float32)

    scipy: scipy.spatial.distance (the single-pair functions); PyTorch:
    torch.nn.functional.pairwise_distance
    """
    fn = "pairwise_distance"
    name = _resolve_metric(metric, fn)
    shape = _checks.broadcast_shapes(x, y, ("x", "y"), fn)
    if len(shape) == 0:
        raise ValueError(f"{fn}: `x` and `y` must have at least 1 dimension; got scalars.")
    ax = _checks.check_axis(axis, len(shape), "axis", fn)[0]
    x = jnp.moveaxis(jnp.broadcast_to(jnp.asarray(x), shape), ax, -1)
    y = jnp.moveaxis(jnp.broadcast_to(jnp.asarray(y), shape), ax, -1)
    d = x.shape[-1]
    params = _check_params(name, dict(params), d, fn)
    if not callable(name) and (name in _BOOLEAN or name == "hamming"):
        _, _, out_dtype = _numerics.as_float(x, y)
        dtype = _numerics.compute_dtype(x.dtype, y.dtype)
        if params.get("w") is not None:
            params["w"] = params["w"].astype(dtype)
        if name == "hamming":
            total = jnp.asarray(d, dtype) if params["w"] is None else jnp.sum(params["w"])
            ne = (x != y).astype(dtype)
            return _numerics.safe_divide(_weighted_sum(ne, params["w"]), total).astype(out_dtype)
        return _rowwise(name, params, x, y).astype(out_dtype)
    x, y, out_dtype = _numerics.as_float(x, y)
    if params.get("w") is not None:
        params["w"] = params["w"].astype(x.dtype)
    for key in ("V", "VI"):
        if params.get(key) is not None:
            params[key] = jnp.asarray(params[key]).astype(x.dtype)
    params = _prepare(name, params, x, y, fn)
    return _rowwise(name, params, x, y).astype(out_dtype)


# --------------------------------------------------------------------------- cosine (optax names)


def cosine_similarity(predictions, targets, *, epsilon=0.0, axis=-1, where=None):
    """Cosine similarity ``u.v / (|u| |v|)`` along ``axis`` (optax's signature and numbers).

    ``|u|`` is ``sqrt(max(sum u^2, epsilon))`` (optax clips the squared norm at
    ``epsilon``). Unlike optax, a zero vector gives similarity 0 (not NaN) with
    a finite gradient, also for ``epsilon = 0``.

    Args:
      predictions: ``(..., d)``.
      targets: broadcastable with ``predictions``.
      epsilon: lower bound of the squared norms.
      axis: axis or axes of the vectors.
      where: optional mask of the elements to include.

    Returns:
      The similarities, of the broadcast shape without ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> u = jnp.array([[1.0, 0.0], [0.0, 0.0]])
      >>> cosine_similarity(u, jnp.array([[1.0, 1.0], [1.0, 1.0]]))
      Array([0.70710677, 0.        ], dtype=float32)

    optax: cosine_similarity
    """
    fn = "cosine_similarity"
    _checks.broadcast_shapes(predictions, targets, ("predictions", "targets"), fn)
    a, b, out_dtype = _numerics.as_float(predictions, targets)
    a, b = jnp.broadcast_arrays(a, b)
    axes = _checks.check_axis(axis, a.ndim, "axis", fn)
    if where is not None:
        where = jnp.broadcast_to(where, a.shape)

    def unit(v):
        n2 = jnp.sum(v * v, axis=axes, where=where, keepdims=True)
        norm = _numerics.sqrt(jnp.maximum(n2, epsilon))
        return _numerics.safe_divide(v, norm)

    return jnp.sum(unit(a) * unit(b), axis=axes, where=where).astype(out_dtype)


def cosine_distance(predictions, targets, *, epsilon=0.0, axis=-1, where=None):
    """Cosine distance ``1 - cosine_similarity`` along ``axis`` (optax's signature).

    A zero vector has similarity 0, so distance 1 (optax returns NaN).

    Args:
      predictions: ``(..., d)`` vectors.
      targets: ``(..., d)`` vectors, broadcastable with ``predictions``.
      epsilon: lower bound of the squared norms (optax's ``epsilon``).
      axis: the vector axis.
      where: optional boolean mask of the coordinates to include.

    Returns:
      ``1 - cosine_similarity``, with ``axis`` reduced.

    Examples:
      >>> import jax.numpy as jnp
      >>> cosine_distance(jnp.array([1.0, 0.0]), jnp.array([0.0, 2.0]))
      Array(1., dtype=float32)

    optax: cosine_distance
    """
    return 1.0 - cosine_similarity(predictions, targets, epsilon=epsilon, axis=axis, where=where)


# --------------------------------------------------------------------------- PyTorch-specific cores


def minkowski_cdist(x, y, p: float, precision=HIGHEST, fn: str = "cdist"):
    """``torch.cdist``'s ``(sum |x_i - y_j|^p)^(1/p)`` for any ``p >= 0`` (0 counts unequal)."""
    p = float(p)
    if p == 0:
        out, out_dtype = _cdist_core(x, y, "hamming", {}, precision, fn, p0_count=True)
    elif p == 2:
        out, out_dtype = _cdist_core(x, y, "euclidean", {}, precision, fn)
    elif p == 1:
        out, out_dtype = _cdist_core(x, y, "cityblock", {}, precision, fn)
    elif p == math.inf:
        out, out_dtype = _cdist_core(x, y, "chebyshev", {}, precision, fn)
    else:
        out, out_dtype = _cdist_core(x, y, "minkowski", {"p": p}, precision, fn)
    return out.astype(out_dtype)


def torch_cosine_similarity(x1, x2, axis: int, eps: float):
    """PyTorch 2.x's ``sum((x1 / max(|x1|, eps)) * (x2 / max(|x2|, eps)))``.

    Each norm is clamped at ``eps`` in value only: PyTorch clamps in place
    under ``no_grad``, so the gradient flows through the unclamped norm (whose
    gradient is 0 at a zero vector).
    """

    def unit(v):
        n = _numerics.p_norm(v, 2.0, axis, True)
        clamped = n + jax.lax.stop_gradient(jnp.maximum(n, eps) - n)
        return v / clamped

    return jnp.sum(unit(x1) * unit(x2), axis=axis)
