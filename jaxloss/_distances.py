"""Distances: row-matched and all-pairs, every scipy metric, GEMM-fast and accurate.

Two forms share one table of metrics (``METRIC_INFO``, one record per metric,
as scipy's ``MetricInfo``):

* ``pairwise_distance`` pairs rows one to one (broadcasting), like
  ``torch.nn.functional.pairwise_distance``;
* ``cdist`` / ``pdist`` compare every row of ``x`` with every row of
  ``y``, like ``scipy.spatial.distance.cdist`` / ``pdist`` and ``torch.cdist``.

Every numeric metric of ``scipy.spatial.distance.cdist`` is here with scipy's
meaning and parameters, plus ``"manhattan"`` (= cityblock), ``"dot"`` (the inner
product, a similarity) and any callable ``f(u, v)``.

Each record says how its metric is computed for all pairs (its ``kind``):

* ``"gram"``: ``euclidean``, ``sqeuclidean``, ``seuclidean``, ``mahalanobis``,
  ``cosine``, ``correlation`` and ``dot`` go through one matrix product of the
  pairwise core (``jaxloss._pairwise``): the data are centred on the common
  mean of ``x`` and ``y`` (distances do not change, the cancellation in
  ``|x|^2 + |y|^2 - 2 x.y`` does), squared distances are clamped at 0, and when
  ``n == m`` the diagonal is recomputed row-matched, so ``cdist(x)`` and
  ``cdist(x, x)`` have an exactly zero diagonal; ``cdist(x)`` (``y`` omitted)
  is also exactly symmetric.
* ``"counts"``: the boolean metrics (``hamming`` on 0/1 data, ``jaccard``,
  ``dice``, ``rogerstanimoto``, ``russellrao``, ``sokalsneath``, ``yule``) are
  formulas of the counts ``TT``/``TF``/``FT``/``FF``, obtained with one matrix
  product of 0/1 matrices.
* ``"rowwise"``: every other metric (and ``hamming`` on non-binary data) is
  its row-matched formula evaluated in tiles, so peak memory is bounded by a
  tile, never by ``n * m * d``.

Zero vectors: where scipy returns NaN (cosine and correlation with a zero or
constant vector, braycurtis/dice/sokalsneath of two all-zero vectors) jaxloss
returns a finite value: the cosine similarity with a zero vector is 0 (distance
1, scikit-learn's choice) and two zero vectors are at distance 0 (the same
point); 0/0 ratios are 0. Gradients are finite everywhere, with the zero
subgradient at coincident points (PyTorch's rule). Norms and Gram products
are computed on data times a power of two (exact), so distances are finite
wherever representable and normalised metrics are scale-free; ratio metrics
(canberra, braycurtis, jensenshannon) differentiate without squaring their
denominators (finite gradients at ``1e-30``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _bits, _block_policy, _checks, _numerics, _pairwise, _tiles

__all__ = [
    "METRICS",
    "METRIC_INFO",
    "MetricInfo",
    "cdist",
    "cosine_distance",
    "cosine_similarity",
    "pairwise_distance",
    "pdist",
    "squareform",
]

HIGHEST = _pairwise.HIGHEST

#: Largest number of elements of one (rows, rows, features) tile of the tiled metrics.
BLOCK_ELEMENTS = _block_policy.DISTANCES_TILE_ELEMENTS


# --------------------------------------------------------------------------- row helpers


def _weighted_sum(a, w):
    return jnp.sum(a if w is None else a * w, axis=-1)


def _scaled(x, scale):
    return x if scale is None else x * scale


def _sqrt_weights(params):
    w = params.get("w")
    return None if w is None else jnp.sqrt(w)


def _center_rows(x, w):
    if w is None:
        return x - jnp.mean(x, axis=-1, keepdims=True)
    return x - (jnp.sum(x * w, axis=-1, keepdims=True) / jnp.sum(w))


def _normalize_distribution(x):
    return _numerics.ratio(x, jnp.sum(x, axis=-1, keepdims=True))


def _minkowski_root_w(w, p):
    if p == 1:
        return w
    if p == 2:
        return jnp.sqrt(w)
    if p == math.inf:
        return (w != 0).astype(w.dtype)
    return w ** (1.0 / p)


# --------------------------------------------------------------------------- row transforms
# A metric's ``rows(x, params)`` is applied once to both sets before its row-matched or
# all-pairs kernel (weights folded into the rows, centring, normalisation).


def _rows_sqrt_w(x, params):
    return _scaled(x, _sqrt_weights(params))


def _data_scale(x, params):
    """Rows times the power of two the default ``V`` / ``VI`` were estimated at (1 for given ones)."""
    return _scaled(x, params.get("data_scale"))


def _rows_seuclidean(x, params):
    return _data_scale(x, params) / jnp.sqrt(params["V"])


def _rows_correlation(x, params):
    if params["centered"]:
        x = _center_rows(x, params.get("w"))
    return _rows_sqrt_w(x, params)


def _rows_distribution(x, params):
    return _normalize_distribution(x)


# --------------------------------------------------------------------------- row-matched kernels
# ``kernel(x, y, params)``: the metric between broadcast rows (features last, after ``rows``).


def _rw_sqeuclidean(x, y, params):
    return _pairwise.rowwise_squared_euclidean(x, y)


def _rw_euclidean(x, y, params):
    return _numerics.p_norm(x - y, 2.0, -1)


def _rw_mahalanobis(x, y, params):
    return _numerics.sqrt(_pairwise.rowwise_squared_euclidean(x, y, params["VI"]))


def _rw_cosine(x, y, params):
    return _pairwise.rowwise_cosine(x, y)


def _rw_dot(x, y, params):
    return jnp.sum(x * y, axis=-1)


def _rw_minkowski(x, y, params):
    p, w = params["p"], params.get("w")
    diff = x - y
    if w is not None:
        diff = diff * _minkowski_root_w(w, p)
    return _numerics.p_norm(diff, p, -1)


def _rw_cityblock(x, y, params):
    return _weighted_sum(_numerics.abs(x - y), params.get("w"))


def _rw_chebyshev(x, y, params):
    w, diff = params.get("w"), x - y
    if w is not None:
        diff = jnp.where(w > 0, diff, 0)
    return _numerics.p_norm(diff, math.inf, -1)


def _rw_canberra(x, y, params):
    den = _numerics.abs(x) + _numerics.abs(y)
    return _weighted_sum(_numerics.ratio(_numerics.abs(x - y), den), params.get("w"))


def _rw_braycurtis(x, y, params):
    w = params.get("w")
    return _numerics.ratio(_weighted_sum(_numerics.abs(x - y), w), _weighted_sum(_numerics.abs(x + y), w))


def _rw_jensenshannon(p, q, params):
    """sqrt(JS) of two distributions (rows already normalised)."""
    m = 0.5 * (p + q)
    terms = _numerics.xlogy(p, _numerics.ratio(p, m, 1.0)) + _numerics.xlogy(q, _numerics.ratio(q, m, 1.0))
    js = 0.5 * jnp.sum(terms, axis=-1)
    if params.get("base") is not None:
        js = js / math.log(params["base"])
    return _numerics.sqrt(js)


def _counts_dtype(x, y, params):
    w = params.get("w")
    return w.dtype if w is not None else _numerics.compute_dtype(x.dtype, y.dtype)


def _rw_unequal(x, y, params):
    """Weighted fraction of unequal coordinates (hamming on any data)."""
    w, dtype = params.get("w"), _counts_dtype(x, y, params)
    total = jnp.asarray(x.shape[-1], dtype) if w is None else jnp.sum(w)
    return _numerics.safe_divide(_weighted_sum((x != y).astype(dtype), w), total)


def _rw_counts(from_counts):
    """The row-matched form of a boolean metric given by its counts."""

    def kernel(x, y, params):
        w, dtype = params.get("w"), _counts_dtype(x, y, params)
        a, b = (x != 0).astype(dtype), (y != 0).astype(dtype)
        total = jnp.asarray(x.shape[-1], dtype) if w is None else jnp.sum(w)
        ntt = _weighted_sum(a * b, w)
        return from_counts(ntt, _weighted_sum(a, w) - ntt, _weighted_sum(b, w) - ntt, total)

    return kernel


# --------------------------------------------------------------------------- boolean formulas
# scipy's boolean dissimilarities from the counts TT, TF, FT and the total; 0/0 is 0.


def _hamming_counts(ntt, ntf, nft, total):
    return _numerics.safe_divide(ntf + nft, total)


def _jaccard_counts(ntt, ntf, nft, total):
    return _numerics.safe_divide(ntf + nft, ntt + ntf + nft)


def _dice_counts(ntt, ntf, nft, total):
    return _numerics.safe_divide(ntf + nft, 2 * ntt + ntf + nft)


def _rogerstanimoto_counts(ntt, ntf, nft, total):
    diff = ntf + nft
    return _numerics.safe_divide(2 * diff, total + diff)


def _russellrao_counts(ntt, ntf, nft, total):
    return _numerics.safe_divide(total - ntt, total)


def _sokalsneath_counts(ntt, ntf, nft, total):
    diff = ntf + nft
    return _numerics.safe_divide(2 * diff, ntt + 2 * diff)


def _yule_counts(ntt, ntf, nft, total):
    nff = total - ntt - ntf - nft
    half_r = ntf * nft
    return _numerics.safe_divide(2 * half_r, ntt * nff + half_r)


# --------------------------------------------------------------------------- all-pairs kernels
# ``pairs(x (n, d), y (m, d), params, same, precision) -> (n, m)`` on transformed rows.


def _pairs_sqeuclidean(x, y, params, same, precision):
    return _pairwise.squared_euclidean(x, y, same=same, precision=precision)


def _pairs_euclidean(x, y, params, same, precision):
    return _pairwise.euclidean(x, y, same=same, precision=precision)


def _pairs_mahalanobis(x, y, params, same, precision):
    vi = params["VI"]
    sym = 0.5 * (vi + vi.T)  # the quadratic form only sees the symmetric part
    return _pairwise.euclidean(x, y, same=same, metric_matrix=sym, precision=precision)


def _pairs_cosine(x, y, params, same, precision):
    return _pairwise.cosine(x, y, same=same, precision=precision)


def _pairs_dot(x, y, params, same, precision):
    return _pairwise.dot(x, y, same=same, precision=precision)


# --------------------------------------------------------------------------- the metric table


@dataclasses.dataclass(frozen=True)
class MetricInfo:
    """One metric: its names, how it is computed, its parameters and its formula.

    Attributes:
      name: the canonical name.
      aliases: other accepted names (scipy's, plus ``manhattan`` and ``inner``).
      kind: ``"gram"`` (one matrix product), ``"counts"`` (a formula of the
        boolean counts, one product of 0/1 matrices) or ``"rowwise"`` (the
        row-matched formula in tiles).
      params: the keyword parameters the metric accepts.
      formula: ``d(u, v)`` in plain text (the table of ``cdist``'s docstring).
      kernel: the row-matched form ``kernel(x, y, params)`` on transformed rows.
      rows: optional transform of both sets applied before ``kernel`` or
        ``pairs`` (weights, centring, normalisation).
      pairs: the all-pairs form of a ``"gram"`` metric.
      counts: the formula ``f(TT, TF, FT, total)`` of a ``"counts"`` metric.
    """

    name: str
    aliases: tuple[str, ...]
    kind: str
    params: tuple[str, ...]
    formula: str
    kernel: Callable
    rows: Callable | None = None
    pairs: Callable | None = None
    counts: Callable | None = None

    def transform(self, x, params):
        return x if self.rows is None else self.rows(x, params)

    def rowwise(self, x, y, params):
        """The metric between broadcast rows ``x[..., :]`` and ``y[..., :]`` (features last)."""
        return self.kernel(self.transform(x, params), self.transform(y, params), params)


def _gram(name, aliases, params, formula, kernel, pairs, rows=None):
    return MetricInfo(name, aliases, "gram", params, formula, kernel, rows, pairs)


def _rowwise(name, aliases, params, formula, kernel, rows=None):
    return MetricInfo(name, aliases, "rowwise", params, formula, kernel, rows)


def _boolean(name, aliases, formula, counts, kernel=None):
    return MetricInfo(name, aliases, "counts", ("w",), formula, kernel or _rw_counts(counts), counts=counts)


_RECORDS = (
    _gram(
        "euclidean",
        ("euclid", "eu", "e"),
        ("w",),
        "sqrt(sum w (u - v)^2)",
        _rw_euclidean,
        _pairs_euclidean,
        _rows_sqrt_w,
    ),
    _gram(
        "sqeuclidean",
        ("sqe", "sqeuclid"),
        ("w",),
        "sum w (u - v)^2",
        _rw_sqeuclidean,
        _pairs_sqeuclidean,
        _rows_sqrt_w,
    ),
    _rowwise(
        "minkowski", ("mi", "m", "pnorm"), ("p", "w"), "(sum w |u - v|^p)^(1/p), 0 < p <= inf", _rw_minkowski
    ),
    _rowwise("cityblock", ("cblock", "cb", "c", "manhattan"), ("w",), "sum w |u - v|", _rw_cityblock),
    _rowwise(
        "chebyshev", ("chebychev", "cheby", "cheb", "ch"), ("w",), "max |u - v| over w > 0", _rw_chebyshev
    ),
    _gram(
        "seuclidean",
        ("se", "s"),
        ("V",),
        "sqrt(sum (u - v)^2 / V)",
        _rw_euclidean,
        _pairs_euclidean,
        _rows_seuclidean,
    ),
    _gram(
        "mahalanobis",
        ("mahal", "mah"),
        ("VI",),
        "sqrt((u - v)^T VI (u - v))",
        _rw_mahalanobis,
        _pairs_mahalanobis,
        _data_scale,
    ),
    _gram("cosine", ("cos",), ("w",), "1 - u.v / (|u| |v|)", _rw_cosine, _pairs_cosine, _rows_sqrt_w),
    _gram(
        "correlation",
        ("co",),
        ("w", "centered"),
        "1 - cos(u - mean u, v - mean v)",
        _rw_cosine,
        _pairs_cosine,
        _rows_correlation,
    ),
    _rowwise("canberra", (), ("w",), "sum w |u - v| / (|u| + |v|)", _rw_canberra),
    _rowwise("braycurtis", (), ("w",), "sum w |u - v| / sum w |u + v|", _rw_braycurtis),
    _rowwise(
        "jensenshannon",
        ("js",),
        ("base",),
        "sqrt(JS(u / sum u, v / sum v))",
        _rw_jensenshannon,
        _rows_distribution,
    ),
    _boolean(
        "hamming", ("matching", "hamm", "ha", "h"), "sum w [u != v] / sum w", _hamming_counts, _rw_unequal
    ),
    _boolean("jaccard", ("jacc", "ja", "j"), "(TF + FT) / (TT + TF + FT)", _jaccard_counts),
    _boolean("dice", (), "(TF + FT) / (2 TT + TF + FT)", _dice_counts),
    _boolean("rogerstanimoto", (), "2 (TF + FT) / (n + TF + FT)", _rogerstanimoto_counts),
    _boolean("russellrao", (), "(n - TT) / n", _russellrao_counts),
    _boolean("sokalsneath", (), "2 (TF + FT) / (TT + 2 (TF + FT))", _sokalsneath_counts),
    _boolean("yule", (), "2 TF FT / (TT FF + TF FT)", _yule_counts),
    _gram("dot", ("inner",), (), "u.v", _rw_dot, _pairs_dot),
)

#: Every metric by canonical name.
METRIC_INFO: dict[str, MetricInfo] = {info.name: info for info in _RECORDS}
#: Canonical metric names.
METRICS = tuple(sorted(METRIC_INFO))
#: Every alias and the canonical name it stands for.
ALIASES = {alias: info.name for info in _RECORDS for alias in info.aliases}


def metric_table() -> str:
    """The table of metrics in ``cdist``'s docstring, rendered from the records."""
    head = ("metric", "``d(u, v)``", "parameters")
    rows = [(info.name, f"``{info.formula}``", ", ".join(info.params)) for info in _RECORDS]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(3)]
    rule = " ".join("=" * w for w in widths)
    body = [" ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [head, *rows]]
    return "\n".join([rule, body[0], rule, *body[1:], rule])


# --------------------------------------------------------------------------- metric parsing


def _resolve_metric(metric, fn: str):
    """The record of a metric name (or alias), or the callable itself."""
    if callable(metric):
        return metric
    if not isinstance(metric, str):
        raise TypeError(f"{fn}: `metric` must be a metric name or a callable f(u, v); got {metric!r}.")
    name = metric.lower()
    name = ALIASES.get(name, name)
    if name not in METRIC_INFO:
        hint = _checks.closest_name(metric, list(METRICS) + list(ALIASES))
        hint = f" Did you mean {ALIASES.get(hint, hint)!r}?" if hint else ""
        raise ValueError(
            f"{fn}: unknown `metric` {metric!r}; allowed: {', '.join(METRICS)}, or a callable f(u, v).{hint}"
        )
    return METRIC_INFO[name]


def _check_w(w, d, fn):
    if w is None:
        return None
    w = jnp.asarray(w)
    if w.ndim != 1 or w.shape[0] != d:
        raise ValueError(f"{fn}: `w` must have shape ({d},) (one weight per feature); got {w.shape}.")
    if not _checks.is_traced(w) and bool(np.any(np.asarray(w) < 0)):
        raise ValueError(f"{fn}: `w` must be non-negative; got {np.asarray(w)}.")
    return w


def _check_p(p, d, fn):
    _checks.check_number(p, "p", fn, low=0.0, low_inclusive=False, allow_inf=True)
    return float(p)


def _check_vi(vi, d, fn):
    if vi is None:
        return None
    vi = jnp.asarray(vi)
    if vi.shape != (d, d):
        raise ValueError(
            f"{fn}: `VI` (the inverse covariance) must have shape ({d}, {d}) for {d} features; "
            f"got {vi.shape}."
        )
    return vi


def _check_v(v, d, fn):
    if v is None:
        return None
    v = jnp.asarray(v)
    if v.shape != (d,):
        raise ValueError(f"{fn}: `V` (the variances) must have shape ({d},); got {v.shape}.")
    return v


#: Each parameter: its default and its check ``check(value, d, fn)``.
_PARAMETERS = {
    "w": (None, _check_w),
    "p": (2.0, _check_p),
    "VI": (None, _check_vi),
    "V": (None, _check_v),
    "centered": (True, lambda value, d, fn: bool(value)),
    "base": (None, lambda value, d, fn: value),
}


def _check_params(info, params: dict, d: int, fn: str) -> dict:
    """Validates the metric's keyword parameters; returns them with defaults filled."""
    if callable(info):
        return params
    for key in params:
        if key not in info.params:
            shown = ", ".join(info.params) if info.params else "none"
            raise TypeError(
                f"{fn}: metric {info.name!r} takes no parameter {key!r}; its parameters: {shown}."
            )
    out = {"w": None}
    for key in info.params:
        default, check = _PARAMETERS[key]
        out[key] = check(params.get(key, default), d, fn)
    return out


def _stacked_rows(x, y):
    """All rows of x and y (leading dims flattened) for default V / VI."""
    rows = [x.reshape(-1, x.shape[-1])]
    if y is not None:
        rows.append(y.reshape(-1, y.shape[-1]))
    return jnp.concatenate(rows, axis=0)


def _default_variances(rows, fn):
    if rows.shape[0] < 2:
        raise ValueError(
            f"{fn}: seuclidean needs `V` or at least 2 rows to estimate it; got {rows.shape[0]}."
        )
    return jnp.var(rows, axis=0, ddof=1)


def _default_inverse_covariance(rows, fn):
    m, d = rows.shape
    if m <= d:
        raise ValueError(
            f"{fn}: mahalanobis without `VI` estimates the covariance from the {m} rows, which is "
            f"singular for {d} features (at least {d + 1} rows are needed); pass `VI`."
        )
    # rowvar=False and atleast_2d: one feature gives a 1 x 1 covariance (not a scalar)
    return jnp.linalg.inv(jnp.atleast_2d(jnp.cov(rows, rowvar=False))).T


#: Parameters that default to an estimate from the data (scipy's defaults).
_DATA_DEFAULTS = {"V": _default_variances, "VI": _default_inverse_covariance}


def _prepare_params(info, params, x, y, dtype, fn):
    """Casts array parameters to the compute dtype and fills the data-dependent defaults.

    A default ``V`` / ``VI`` is estimated from the rows times a power of two
    (``data_scale``, which the metric's row transform applies to both sets):
    the distances are those of the unscaled estimate, exactly, and stay finite
    where the variances themselves would overflow or underflow.
    """
    if callable(info):
        return params
    for key in ("w", "V", "VI"):
        if params.get(key) is not None:
            params[key] = jnp.asarray(params[key]).astype(dtype)
    for key, estimate in _DATA_DEFAULTS.items():
        if key in info.params and params.get(key) is None:
            rows = _stacked_rows(x, y)
            scale, _ = _numerics.pow2_scale(jnp.max(jnp.abs(rows), initial=0))
            params[key] = estimate(rows * scale, fn)
            params["data_scale"] = scale
    return params


# --------------------------------------------------------------------------- all-pairs evaluation
# Each evaluator works on batches x (B, n, d), y (B, m, d) and returns (B, n, m).


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


def _gram_pairs(info, params, x, y, precision, same):
    xs = info.transform(x, params)
    ys = xs if same else info.transform(y, params)

    def one(u, v):
        out = info.pairs(u, v, params, same, precision)
        if u.shape[0] == v.shape[0]:  # exact diagonal, written after the last elementwise pass
            out = _set_diagonal(out, info.kernel(u, v, params))
        return out

    return _per_matrix(one, xs, ys)


def _count_pairs(info, params, x, y, precision, dtype):
    w = params.get("w")

    def one(u, v):
        a, b = (u != 0).astype(dtype), (v != 0).astype(dtype)
        ntt, sa, sb, total = _pairwise.binary_counts(a, b, w, precision=precision)
        return info.counts(ntt, sa[:, None] - ntt, sb[None, :] - ntt, total)

    return _per_matrix(one, x, y)


def _tile_sizes(n, m, d, budget):
    if n * m * d <= budget:
        return n, m
    by = m if m * d * min(n, 8) <= budget else max(1, budget // (8 * d))
    bx = max(1, min(n, budget // (max(by, 1) * max(d, 1))))
    return bx, min(by, m)


def _blockwise(kernel, x, y):
    """kernel(x (bx, d), y (by, d)) -> (bx, by) over tiles of at most BLOCK_ELEMENTS."""
    n, m, d = x.shape[0], y.shape[0], x.shape[1]
    if n == 0 or m == 0:
        return jnp.zeros((n, m), kernel(x[:0], y[:0]).dtype)
    bx, by = _tile_sizes(n, m, d, BLOCK_ELEMENTS)
    if bx == n and by == m:
        return kernel(x, y)
    # Padded rows repeat the last row (real data: finite kernel gradients), trimmed below.
    xt = _tiles.split_blocks(x, bx, mode="edge")  # (nbx, bx, d)
    yt = _tiles.split_blocks(y, by, mode="edge")
    tile = jax.checkpoint(kernel)  # the backward pass recomputes a tile instead of storing it

    def row_of_tiles(xb):
        return jax.lax.map(lambda yb: tile(xb, yb), yt)  # (nby, bx, by)

    out = jax.lax.map(row_of_tiles, xt)  # (nbx, nby, bx, by)
    out = jnp.transpose(out, (0, 2, 1, 3)).reshape(xt.shape[0] * bx, yt.shape[0] * by)
    return out[:n, :m]


def _blockwise_pairs(kernel, x, y):
    """All pairs of a row-matched ``kernel(u, v)`` in tiles, for x (B, n, d), y (B, m, d)."""
    bsz, n, d = x.shape
    sequential = bsz * n * y.shape[1] * d > BLOCK_ELEMENTS

    def pairs(u, v):
        return kernel(u[:, None, :], v[None, :, :])

    return _per_matrix(functools.partial(_blockwise, pairs), x, y, sequential)


def _callable_rowwise(f, params, x, y):
    """A user's ``f(u, v, **params)`` of two ``(d,)`` vectors over broadcast rows."""
    f = functools.partial(f, **params) if params else f
    x, y = jnp.broadcast_arrays(x, y)
    flat = jax.vmap(f)(x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]))
    return jnp.asarray(flat).reshape(x.shape[:-1])


def _rowwise_pairs(info, params, x, y):
    if callable(info):
        return _blockwise_pairs(functools.partial(_callable_rowwise, info, params), x, y)
    x, y = info.transform(x, params), info.transform(y, params)  # once, not per tile
    return _blockwise_pairs(lambda u, v: info.kernel(u, v, params), x, y)


def _is_binary(a):
    return jnp.all((a == 0) | (a == 1))


def _unequal_pairs(x, y, w, dtype, precision):
    """Number of (weighted) unequal coordinates: GEMM for 0/1 data, tiles otherwise.

    x (B, n, d), y (B, m, d). The 0/1 test runs once over the whole batch.
    """

    def gemm(u, v):
        a, b = (u != 0).astype(dtype), (v != 0).astype(dtype)
        ntt, sa, sb, _ = _pairwise.binary_counts(a, b, w, precision=precision)
        return sa[:, None] + sb[None, :] - 2 * ntt

    def by_gemm(x, y):
        return _per_matrix(gemm, x, y)

    def by_tiles(x, y):
        return _blockwise_pairs(lambda u, v: _weighted_sum((u != v).astype(dtype), w), x, y)

    if x.dtype == jnp.bool_ and y.dtype == jnp.bool_:
        return by_gemm(x, y)
    return jax.lax.cond(_is_binary(x) & _is_binary(y), by_gemm, by_tiles, x, y)


def _all_pairs(info, params, x, y, precision, same, dtype):
    """Dispatch on the record's kind (x (B, n, d), y (B, m, d) -> (B, n, m))."""
    if callable(info) or info.kind == "rowwise":
        return _rowwise_pairs(info, params, x, y)
    if info.kind == "gram":
        return _gram_pairs(info, params, x, y, precision, same)
    if info.name == "hamming":  # not only 0/1 data: unequal coordinates
        w = params.get("w")
        total = jnp.asarray(x.shape[-1], dtype) if w is None else jnp.sum(w)
        return _numerics.safe_divide(_unequal_pairs(x, y, w, dtype, precision), total)
    return _count_pairs(info, params, x, y, precision, dtype)


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


def _pair_inputs(x, y, fn, keep_dtype):
    """``x``, ``y`` (None stays None) as arrays, the batch shape, compute and output dtypes."""
    x = jnp.asarray(x)
    y = None if y is None else jnp.asarray(y)
    batch = _check_pair_shapes(x, x if y is None else y, fn)
    _, _, out_dtype = _numerics.as_float(x, x if y is None else y)
    dtype = _numerics.compute_dtype(x.dtype, x.dtype if y is None else y.dtype)
    if not keep_dtype:
        x = x.astype(dtype)
        y = None if y is None else y.astype(dtype)
    return x, y, batch, dtype, out_dtype


def _flat_batch(a, batch):
    """``a (..., n, d)`` broadcast to the batch shape and flattened to ``(B, n, d)``."""
    return jnp.broadcast_to(a, (*batch, *a.shape[-2:])).reshape(math.prod(batch), *a.shape[-2:])


def _cdist_core(x, y, info, params, precision, fn):
    """All-pairs values for 2+-D x, y (y None: x against itself); returns (values, out_dtype)."""
    keep = not callable(info) and info.kind == "counts"  # counts read x != 0 of the raw data
    x, y, batch, dtype, out_dtype = _pair_inputs(x, y, fn, keep)
    params = _check_params(info, params, x.shape[-1], fn)
    params = _prepare_params(info, params, x, y, dtype, fn)
    same = y is None
    xb = _flat_batch(x, batch)
    yb = xb if same else _flat_batch(y, batch)
    out = _all_pairs(info, params, xb, yb, precision, same, dtype)
    return out.reshape(*batch, *out.shape[-2:]), out_dtype


def unequal_counts(x, y=None, *, fn: str = "cdist") -> jax.Array:
    """``(..., n, m)`` numbers of unequal coordinates (hamming's numerator), in the float dtype."""
    x, y, batch, dtype, out_dtype = _pair_inputs(x, y, fn, keep_dtype=True)
    xb = _flat_batch(x, batch)
    yb = xb if y is None else _flat_batch(y, batch)
    out = _unequal_pairs(xb, yb, None, dtype, HIGHEST)
    return out.reshape(*batch, *out.shape[-2:]).astype(out_dtype)


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


def cdist(
    x: ArrayLike,
    y: ArrayLike | None = None,
    metric: str | Callable = "euclidean",
    *,
    precision=HIGHEST,
    **params,
) -> jax.Array:
    """All-pairs distances between the rows of ``x`` and the rows of ``y``.

    ``out[..., i, j] = metric(x[..., i, :], y[..., j, :])`` for every metric of
    ``scipy.spatial.distance.cdist`` with scipy's meaning and parameters:

    ============== ========================================= ===========
    metric         ``d(u, v)``                               parameters
    ============== ========================================= ===========
    euclidean      ``sqrt(sum w (u - v)^2)``                 w
    sqeuclidean    ``sum w (u - v)^2``                       w
    minkowski      ``(sum w |u - v|^p)^(1/p), 0 < p <= inf`` p, w
    cityblock      ``sum w |u - v|``                         w
    chebyshev      ``max |u - v| over w > 0``                w
    seuclidean     ``sqrt(sum (u - v)^2 / V)``               V
    mahalanobis    ``sqrt((u - v)^T VI (u - v))``            VI
    cosine         ``1 - u.v / (|u| |v|)``                   w
    correlation    ``1 - cos(u - mean u, v - mean v)``       w, centered
    canberra       ``sum w |u - v| / (|u| + |v|)``           w
    braycurtis     ``sum w |u - v| / sum w |u + v|``         w
    jensenshannon  ``sqrt(JS(u / sum u, v / sum v))``        base
    hamming        ``sum w [u != v] / sum w``                w
    jaccard        ``(TF + FT) / (TT + TF + FT)``            w
    dice           ``(TF + FT) / (2 TT + TF + FT)``          w
    rogerstanimoto ``2 (TF + FT) / (n + TF + FT)``           w
    russellrao     ``(n - TT) / n``                          w
    sokalsneath    ``2 (TF + FT) / (TT + 2 (TF + FT))``      w
    yule           ``2 TF FT / (TT FF + TF FT)``             w
    dot            ``u.v``
    ============== ========================================= ===========

    ``dot`` is a similarity, not a distance. ``hamming`` on packed ``uint32``
    codes gives int32 bit counts (or the fraction with ``num_bits``); a
    callable ``f(u, v, **params)`` is vmapped over pairs. scipy's aliases
    (``"cos"``, ``"cb"``...) are accepted, plus ``"manhattan"`` and ``"inner"``.

    ``V`` defaults to the variances and ``VI`` to the inverse covariance of the
    rows of ``x`` and ``y`` together (scipy's defaults).

    ``TT``, ``TF``, ``FT``, ``FF`` count the coordinates where ``u != 0`` and
    ``v != 0`` are true/false (weighted by ``w``), ``n`` is their total.

    Computation (each metric's ``kind`` in ``METRIC_INFO``): euclidean-type,
    cosine, correlation and dot through one matrix product of centred data
    (``precision`` applies there), clamped at 0, with an exact diagonal when
    ``n == m`` (so ``cdist(x)`` and ``cdist(x, x)`` have a zero diagonal;
    ``cdist(x)`` is also exactly symmetric); boolean metrics through one
    product of 0/1 matrices; other metrics in tiles of at most
    ``BLOCK_ELEMENTS`` elements.

    Edge cases: cosine/correlation similarity with a zero (constant) vector is
    0, so the distance is 1; two zero vectors are at distance 0. 0/0 ratios
    (braycurtis, dice, jaccard, sokalsneath... of all-zero vectors) are 0.
    jensenshannon expects non-negative vectors (a zero vector is treated as
    all zeros). Gradients are finite everywhere and 0 at coincident points.
    ``seuclidean`` with a zero variance (a constant feature, when ``V`` is
    estimated) is NaN everywhere, as scipy (``0 / 0``); with a given ``V``
    holding a 0 it is NaN too (scipy: ``inf`` where that feature differs).

    Scale: Euclidean-type distances are computed on both sets multiplied by
    one power of two (exact), so they are finite wherever they are
    representable (scipy, scikit-learn and ``torch.cdist`` overflow above
    about ``1e19`` in float32), with finite gradients; cosine, correlation,
    canberra, braycurtis, jensenshannon and ``seuclidean``/``mahalanobis``
    with the estimated ``V``/``VI`` are scale-free (the same for inputs
    scaled by ``1e-30`` to ``1e30`` in float32, ``1e-300`` to ``1e300`` in
    float64), and a zero row has unit vector 0 (gradient 0).

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
    info = _resolve_metric(metric, "cdist")
    if info is METRIC_INFO["hamming"] and (_is_packed(x) or _is_packed(y)):
        return _packed_hamming(x, y, params, "cdist")
    out, out_dtype = _cdist_core(x, y, info, dict(params), precision, "cdist")
    return out.astype(out_dtype)


def pdist(x: ArrayLike, metric: str | Callable = "euclidean", *, precision=HIGHEST, **params) -> jax.Array:
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
    info = _resolve_metric(metric, "pdist")
    if info is METRIC_INFO["hamming"] and _is_packed(x):
        out, out_dtype = _packed_hamming(x, None, params, "pdist"), None
    else:
        out, out_dtype = _cdist_core(x, None, info, dict(params), precision, "pdist")
    rows, cols = np.triu_indices(out.shape[-1], 1)
    out = out[..., rows, cols]
    return out if out_dtype is None else out.astype(out_dtype)


def squareform(x: ArrayLike, force: str = "no", checks: bool = True) -> jax.Array:
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


def pairwise_distance(
    x: ArrayLike, y: ArrayLike, metric: str | Callable = "euclidean", *, axis: int = -1, **params
) -> jax.Array:
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
    info = _resolve_metric(metric, fn)
    shape = _checks.broadcast_shapes(x, y, ("x", "y"), fn)
    if len(shape) == 0:
        raise ValueError(f"{fn}: `x` and `y` must have at least 1 dimension; got scalars.")
    ax = _checks.check_axis(axis, len(shape), "axis", fn)[0]
    x = jnp.moveaxis(jnp.broadcast_to(jnp.asarray(x), shape), ax, -1)
    y = jnp.moveaxis(jnp.broadcast_to(jnp.asarray(y), shape), ax, -1)
    _, _, out_dtype = _numerics.as_float(x, y)
    dtype = _numerics.compute_dtype(x.dtype, y.dtype)
    if callable(info) or info.kind != "counts":  # counts read x != 0 of the raw data
        x, y = x.astype(dtype), y.astype(dtype)
    params = _check_params(info, dict(params), x.shape[-1], fn)
    params = _prepare_params(info, params, x, y, dtype, fn)
    if callable(info):
        return _callable_rowwise(info, params, x, y).astype(out_dtype)
    return info.rowwise(x, y, params).astype(out_dtype)


# --------------------------------------------------------------------------- cosine (optax names)


def cosine_similarity(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    epsilon: float = 0.0,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
    """Cosine similarity ``u.v / (|u| |v|)`` along ``axis`` (optax's signature and numbers).

    ``|u|`` is ``max(|u|, sqrt(epsilon))`` (optax clips the squared norm at
    ``epsilon``). Unlike optax, a zero vector gives similarity 0 (not NaN) with
    a finite gradient, also for ``epsilon = 0``.

    Scale: with ``epsilon = 0`` (the default) the value is scale-free:
    ``cosine_similarity(a u, b v) == cosine_similarity(u, v)`` for all
    ``a, b > 0`` that keep the vectors finite and non-zero (``1e-30`` to
    ``1e30`` in float32, ``1e-300`` to ``1e300`` in float64), with finite
    gradients: norms are taken of the vectors times a power of two, never of
    their plain squares (optax's overflow to 0 or NaN above ``1e19`` in
    float32). Zero-vector convention: the unit vector of 0 is 0 with gradient
    0 (``torch.nn.functional.normalize``'s value, whose eps is ``1e-12``);
    ``epsilon > 0`` is optax's floor and is not scale-free below ``|u| =
    sqrt(epsilon)``.

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
    no_floor = isinstance(epsilon, (int, float)) and epsilon == 0
    floor = None if no_floor else jnp.sqrt(jnp.maximum(jnp.asarray(epsilon, a.dtype), 0))

    def unit(v):
        return _numerics.normalize(v, axes, where=where, min_norm=floor)

    return jnp.sum(unit(a) * unit(b), axis=axes, where=where).astype(out_dtype)


def cosine_distance(
    predictions: ArrayLike,
    targets: ArrayLike,
    *,
    epsilon: float = 0.0,
    axis: int = -1,
    where: ArrayLike | None = None,
) -> jax.Array:
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
