"""Margin-softmax and proxy losses: ArcFace, CosFace, ProxyAnchor, ProxyNCA.

The classification-style losses (ArcFace, CosFace and their sub-center form)
are a softmax cross-entropy over the cosines between L2-normalised embeddings
and L2-normalised class columns, with the target logit moved by a margin. One
combined-margin core serves both: the target cosine ``cos(theta)`` becomes
``cos(theta + m2) - m3`` (ArcFace: ``m2 = m``; CosFace: ``m3 = m``).

Two paths compute the same numbers:

* the **dense** path forms the ``N x C`` cosines and lets autodiff do the rest
  (the fastest for moderate ``N x C``);
* the **class-blocked** path never forms them: it asks the tiling engine
  (``_tile_engine.statistics``, a ``jax.custom_vjp``) for two numbers per row, the
  logsumexp of ``scale * cos`` over the non-target classes and the target
  cosine, from ``block_size x class_block_size`` tiles: the rows are
  normalised once, each ``(D, class_block_size)`` block of class columns is
  normalised before its product (no normalised copy of the class matrix,
  no tile-sized reduction in the backward pass); the backward pass
  recomputes every tile. The class axis may be split over
  devices (``axis_name``, the engine's ``parallel="columns"``): each device
  scans its own columns and the statistics are merged with ``pmax``/``psum``.

The margin itself acts on one number per row (the target cosine) outside the
tile scan, through a formula with finite derivatives everywhere (no
``arccos``): ``cos(theta + m) = c cos m - sqrt(1 - c^2) sin m``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _block_policy, _checks, _numerics, _tile_engine

__all__ = [
    "arcface_loss",
    "cosface_loss",
    "proxy_anchor_loss",
    "proxy_nca_loss",
]

HIGHEST = jax.lax.Precision.HIGHEST


# --------------------------------------------------------------------------- shared pieces


def _unit_parts(x, axis, dtype=None):
    """``(s, r)`` along ``axis``: ``x / |x| = (x s) r`` exactly, ``s`` a power of two and ``r = 1 / |x s|``.

    ``x s`` has entries below 2, so its product with any other vector neither
    overflows nor underflows needlessly; ``r = 0`` for a zero vector (gradient
    0). ``s`` is representable in ``dtype`` (the operand's dtype, e.g. float16).
    """
    limit = jnp.finfo(dtype or x.dtype).maxexp - 2
    n, s, _ = _numerics.norm2_parts(x, axis, max_exponent=limit)
    return jnp.squeeze(s, axis), jnp.squeeze(_numerics.safe_divide(1, n), axis)


def _unit_cosines(e, w, precision, acc=None):
    """``(cosines (N, C), r_e, 1 / |w|)``: rows of ``e`` against columns of ``w`` (0 with a zero vector).

    ``((e s) . w) r (1 / |w|)``: the rows are scaled by their power of two (entries
    below 2) before the product, so it is scale-free in both operands without
    a scaled copy of ``w``.
    """
    s_e, r_e = _unit_parts(e.astype(acc or e.dtype), -1, e.dtype)
    inv_w = _numerics.inverse_norm(w.astype(acc or w.dtype), 0)
    dot = jnp.dot(e * s_e[:, None].astype(e.dtype), w, precision=precision)
    return dot * r_e[:, None] * inv_w[None, :], r_e, inv_w


@jax.custom_jvp
def _max_over_sub_centers(cos):
    """The class cosine: the largest of a class's ``k`` sub-centre cosines (last axis).

    Its derivative is the derivative of the first largest one (``torch.max``
    over a dimension, which pytorch-metric-learning's sub-center ArcFace uses,
    routes the gradient to the index it returns): one selection per entry,
    no tie count over the ``k`` columns.
    """
    return jnp.max(cos, axis=-1)


@_max_over_sub_centers.defjvp
def _max_over_sub_centers_jvp(primals, tangents):
    (cos,), (t,) = primals, tangents
    first = jnp.argmax(cos, axis=-1)
    hit = jnp.arange(cos.shape[-1]) == first[..., None]
    return jnp.max(cos, axis=-1), jnp.sum(jnp.where(hit, t, 0), axis=-1)


def _combined_margin(cos_target, m2, m3):
    """``cos(theta + m2) - m3`` with ArcFace's monotonic fallback, finite derivatives everywhere.

    ``theta = arccos(c)`` with ``c`` clamped to ``[-1, 1]``; for ``theta <= pi - m2``
    the value is ``c cos m2 - sin(theta) sin m2`` with ``sin(theta) = sqrt(1 - c^2)``
    (a safe square root: derivative 0 at ``theta = 0`` and ``theta = pi``), else
    ``c - m2 sin m2``. With ``m2 = 0`` both branches are ``c``.
    """
    c = jnp.where(cos_target > 1, 1.0, jnp.where(cos_target < -1, -1.0, cos_target)).astype(cos_target.dtype)
    m2 = jnp.asarray(m2, c.dtype)
    sin_theta = _numerics.sqrt(jax.nn.relu(1 - c * c))
    arc = c * jnp.cos(m2) - sin_theta * jnp.sin(m2)
    fallback = c - m2 * jnp.sin(m2)
    return jnp.where(c >= -jnp.cos(m2), arc, fallback) - jnp.asarray(m3, c.dtype)


def _check_concrete_labels(labels, num_classes, fn):
    """A concrete label array outside ``[0, num_classes)`` is a ValueError (a traced one gives NaN)."""
    if _checks.is_traced(labels) or num_classes is None:
        return
    y = np.asarray(labels)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)]
        raise ValueError(
            f"{fn}: `labels` must lie in [0, {num_classes}) (one id per class of the class matrix); "
            f"got {bad.ravel()[:5].tolist()}."
        )


def _check_embeddings_and_classes(embeddings, classes, labels, fn, classes_name):
    _checks.check_floating(embeddings, "embeddings", fn)
    _checks.check_floating(classes, classes_name, fn)
    _checks.check_integer(labels, "labels", fn)
    e, w, y = jnp.asarray(embeddings), jnp.asarray(classes), jnp.asarray(labels)
    if e.ndim != 2:
        raise ValueError(f"{fn}: `embeddings` must have shape (N, D); got shape {e.shape}.")
    if w.ndim != 2 or w.shape[0] != e.shape[1]:
        raise ValueError(
            f"{fn}: `{classes_name}` must have shape (D, C) with D = embeddings.shape[1] = {e.shape[1]} "
            f"(one column per class, like a Flax Dense kernel); got shape {w.shape}."
        )
    if y.shape != (e.shape[0],):
        raise ValueError(f"{fn}: `labels` must have shape (N,) = ({e.shape[0]},); got {y.shape}.")
    return e, w, y


# --------------------------------------------------------------------------- dense statistics


def _dense_stats(e, w, y, scale, sub_centers, precision):
    """``(lse over non-target classes of scale * cos, target class cosine)`` per row, dense."""
    n = e.shape[0]
    c = w.shape[1] // sub_centers
    cos, _, _ = _unit_cosines(e, w, precision)
    if sub_centers > 1:
        cos = _max_over_sub_centers(cos.reshape(n, c, sub_centers))
    hit = y[:, None] == jnp.arange(c)[None, :]
    target = jnp.sum(jnp.where(hit, cos, 0), axis=1)
    lse, has = _numerics.masked_logsumexp(scale * cos, ~hit, axis=1)
    return jnp.where(has, lse, -jnp.inf), target


# --------------------------------------------------------------------------- class-blocked statistics


def _acc_dtype(dtype):
    return jnp.promote_types(dtype, jnp.float32)


class _CosineScores(NamedTuple):
    """One tile's ``(scale * class cosines, class cosines)``, ``(r, c)`` for ``c`` classes.

    The rows arrive normalised; the tile's ``(D, c)`` (or ``(D, c, k)``)
    block of class columns is normalised here (a ``D x c k`` pass, no
    normalised copy of the class matrix), so the tile's only ``r x c k``
    arrays are the matrix product and its cotangent: the inverse norms'
    gradients are ``(D, c k)`` work, not tile-sized reductions. With ``k``
    sub-centres the class cosine is the largest over the class's ``k``
    columns. Both sides are scale-free: rows and columns are multiplied by
    ``_numerics.inverse_norm(..., branch_free=True)`` (the norm of each
    vector times a power of two, no conditional: inside the tile loop a
    conditional kept two more ``(D, c k)`` buffers), so unit vectors enter
    the product whatever the magnitudes (``1e-30`` to ``1e30`` in float32).
    """

    precision: object

    def __call__(self, params, rows, cols):
        x, w = rows["x"], cols["w"]
        acc = jnp.promote_types(x.dtype, jnp.float32)
        w = w.astype(acc)
        w = (w * _numerics.inverse_norm(w, 0, branch_free=True)[None]).astype(x.dtype)
        # one (r, c k) product: a (D, c, k) operand would make XLA transpose the backward's GEMMs
        cos = jax.lax.dot_general(
            x,
            w.reshape(w.shape[0], -1),
            (((1,), (0,)), ((), ())),
            precision=self.precision,
            preferred_element_type=acc,
        )
        if w.ndim == 3:
            cos = _max_over_sub_centers(cos.reshape(cos.shape[0], w.shape[1], w.shape[2]))
        return params["scale"] * cos, cos


def _is_target(rows, cols):
    return rows["label"][:, None] == cols["index"][None, :]


def _is_other(rows, cols):
    return rows["label"][:, None] != cols["index"][None, :]


def _cosine(z, rows, cols):
    return z[1]


_MARGIN_STATS = (
    _tile_engine.Stat("lse", mask=_is_other),
    _tile_engine.Stat("sum", mask=_is_target, term=_cosine),
)


def _blocked_stats(e, w, y, scale, k, tb, cb, precision, axis_name):
    """``(lse over non-target classes of scale * cos, target class cosine)`` per row, tiled.

    With ``k > 1`` sub-centres the class matrix is read as ``(D, C, k)`` (a
    reshape, no copy) and sliced along its classes; the rows are normalised
    once (``N x D``).
    """
    acc = _acc_dtype(e.dtype)
    tiling = _tile_engine.Tiling(
        _CosineScores(precision),
        _MARGIN_STATS,
        row_block=tb,
        col_block=cb,
        col_axis=1,
        axis_name=axis_name,
        parallel="columns",
    )
    x = e.astype(acc)
    rows = {"x": (x * _numerics.inverse_norm(x, -1, branch_free=True)[:, None]).astype(e.dtype)}
    cols = {"w": w if k == 1 else w.reshape(w.shape[0], w.shape[1] // k, k)}
    return _tile_engine.statistics(tiling, {"scale": scale}, rows, cols, row_data={"label": y})


# --------------------------------------------------------------------------- the margin-softmax core


def _margin_softmax(
    fn,
    embeddings,
    kernel,
    labels,
    *,
    m2,
    m3,
    scale,
    sub_centers,
    block_size,
    class_block_size,
    axis_name,
    precision,
):
    """The combined-margin softmax cross-entropy shared by ``arcface_loss`` and ``cosface_loss``."""
    e, w, y = _check_embeddings_and_classes(embeddings, kernel, labels, fn, "kernel")
    if isinstance(sub_centers, (bool, np.bool_)) or not isinstance(sub_centers, (int, np.integer)):
        raise TypeError(
            f"{fn}: `sub_centers` must be a positive int; got {type(sub_centers).__name__} {sub_centers!r}."
        )
    if sub_centers < 1 or w.shape[1] % sub_centers or w.shape[1] == 0:
        raise ValueError(
            f"{fn}: `sub_centers` must be a positive int dividing the {w.shape[1]} columns of `kernel` "
            f"(C * sub_centers columns, class c's centres at c * sub_centers + k); got {sub_centers!r}."
        )
    _checks.check_temperature(scale, fn, "scale")
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)
    class_block_size = _block_policy.check_block_size(class_block_size, "class_block_size", fn)
    k = int(sub_centers)
    n, c = e.shape[0], w.shape[1] // k
    _check_concrete_labels(y, c if axis_name is None else None, fn)

    out_dtype = _numerics.output_dtype(e.dtype, w.dtype)
    cdt = jnp.promote_types(out_dtype, e.dtype)
    if n == 0:
        return jnp.zeros((0,), out_dtype)
    acc = _acc_dtype(cdt)
    e, w = e.astype(cdt), w.astype(cdt)
    s = jnp.asarray(scale, acc)
    blocks = _block_policy.resolve_blocks(
        _block_policy.MARGIN, n, c, block_size, class_block_size, dense=axis_name is None, col_width=k
    )
    if blocks is not None:
        lse_other, target = _blocked_stats(e, w, y, s, k, *blocks, precision, axis_name)
    else:
        lse_other, target = _dense_stats(e.astype(acc), w.astype(acc), y, s, k, precision)
    num_classes = c if axis_name is None else c * jax.lax.psum(1, axis_name)
    z_target = s * _combined_margin(target, m2, m3)
    loss = jnp.logaddexp(lse_other, z_target) - z_target
    loss = jnp.where((y >= 0) & (y < num_classes), loss, jnp.nan)
    return loss.astype(out_dtype)


@_checks.renamed_keyword("weights", "kernel", removed_in="0.5")
def arcface_loss(
    embeddings: jax.typing.ArrayLike,
    kernel: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    margin: float = 0.5,
    scale: float = 64.0,
    sub_centers: int = 1,
    block_size: int | None = None,
    class_block_size: int | None = None,
    axis_name=None,
    precision=HIGHEST,
) -> jax.Array:
    r"""Additive angular margin loss (ArcFace), per row; sub-center ArcFace with ``sub_centers > 1``.

    With ``cos(theta_ic)`` the cosine between embedding ``i`` and class column
    ``c`` of ``kernel`` (with ``K = sub_centers`` the largest cosine over the
    class's ``K`` columns ``c K + k``), ``s = scale``, ``m = margin`` and
    target ``y``:

    .. math::

        \ell_i = -\log \frac{e^{s\,\phi(\theta_{iy})}}
                 {e^{s\,\phi(\theta_{iy})} + \sum_{c \ne y} e^{s \cos\theta_{ic}}},
        \qquad
        \phi(\theta) = \begin{cases} \cos(\theta + m) & \theta \le \pi - m \\
                                     \cos\theta - m \sin m & \text{otherwise} \end{cases}

    (the second branch keeps ``phi`` decreasing; insightface's and
    pytorch-metric-learning's rule). ``margin`` is in radians:
    pytorch-metric-learning's ``ArcFaceLoss(margin=28.6)`` takes degrees, and
    its default 28.6 degrees is ``0.4992`` radians (``numpy.radians(28.6)``).

    **Paths.** The library's block policy: with both block sizes None the
    dense path (the ``N x C`` cosines) while ``N * C * K`` is at most
    ``2**24``; above that, or when ``block_size``, ``class_block_size`` or
    ``axis_name`` is given, a
    class-blocked ``jax.custom_vjp`` that never holds the logits: it scans
    ``block_size x class_block_size`` tiles with an online logsumexp, applies
    the inverse row and column norms inside each tile, saves its inputs and
    two numbers per row, and recomputes each tile in the backward pass
    (temporaries: ``O(N D)``, ``(D, class_block_size * K)`` blocks of
    ``kernel`` and, with ``K = 1``, at most two float32 ``block_size x
    class_block_size`` tiles at a time: the product and one masked copy in
    the forward pass, the product overwritten by its cotangent in the
    backward pass; 1/60 of the ``N x C`` logits at ``N = 1024, D = 512, C =
    2^20, class_block_size = 8192``. With ``K > 1``: the ``block_size x
    class_block_size * K`` product, overwritten by its cotangent, and three
    ``block_size x class_block_size`` class tiles). Both
    give the same values and gradients. Defaults (the library's block
    policy, chosen rather than tuned): ``(1024, 4096 / K)`` on CPU,
    ``(2048, 8192 / K)`` on GPU/TPU, clipped to ``N`` and ``C``.

    **Class-parallel (Partial FC).** With ``axis_name``, call it inside
    ``jax.shard_map`` with ``kernel`` split over its columns
    (``P(None, axis_name)``, whole classes per device: ``C / devices`` classes
    of ``K`` columns each) and ``embeddings``/``labels`` replicated, labels
    holding global class ids. The losses (replicated) and the gradients
    (``embeddings``: replicated; ``kernel``: each device's shard) equal the
    single-device ones.

    Args:
      embeddings: ``(N, D)`` floating embeddings (normalised inside).
      kernel: ``(D, C * K)`` class centres as columns (a Flax ``Dense``
        kernel's layout; pytorch-metric-learning's ``W``), normalised inside;
        with ``axis_name`` this device's shard. The keyword ``weights=`` is
        its deprecated name (a ``DeprecationWarning``; removed in 0.5).
      labels: ``(N,)`` integer class ids in ``[0, C)``.
      margin: ``m`` in radians, in ``[0, pi)``.
      scale: ``s > 0``.
      sub_centers: ``K``, the number of columns per class.
      block_size: rows per tile of the class-blocked path.
      class_block_size: classes per tile of the class-blocked path.
      axis_name: the ``shard_map`` axis that splits the classes, or None.
      precision: ``jax.lax.Precision`` of the products (``HIGHEST``: exact
        float32 products on GPUs that would use TF32).

    Returns:
      ``(N,)`` losses in the input dtype. ``jnp.mean`` of them equals
      pytorch-metric-learning's ``ArcFaceLoss(C, D, margin=degrees(m),
      scale=s)`` (``SubCenterArcFaceLoss(..., sub_centers=K)``) with ``W =
      kernel``.

    Edge cases: gradients are finite at ``theta = 0`` (an embedding on its
    class centre: ``sin theta`` is a safe square root with derivative 0
    there) and ``theta = pi``; a zero embedding or column has cosine 0
    (normalized to 0 with gradient 0, ``torch.nn.functional.normalize``'s
    value). Cosines are scale-free: the same loss for embeddings or columns
    scaled by ``1e-30`` to ``1e30`` (float32), ``1e-300`` to ``1e300``
    (float64), norms being taken of each vector times a power of two. Tied
    sub-centres: the gradient goes to the first of the class's largest
    cosines (as ``torch.max`` over a dimension). A
    concrete ``labels`` array outside ``[0, C)`` raises ``ValueError``; a
    traced one (under ``jit``) gives NaN for those rows.

    Forward mode on the tiled path (a custom VJP): ``jax.jvp`` / ``jax.jacfwd`` around this
    function differentiate its tiled forward sweep instead; around a function already
    traced (``jax.jvp(jax.jit(f))``) JAX refuses the custom VJP: put ``jit`` outside, or
    use the dense path (``block_size=None, class_block_size=None`` under the budget).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8]])
      >>> w = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
      >>> loss = arcface_loss(x, w, jnp.array([0, 1]), scale=4.0)
      >>> [round(v, 4) for v in loss.tolist()]
      [0.03, 1.1372]

    References:
      Deng et al., "ArcFace: Additive Angular Margin Loss for Deep Face
      Recognition", CVPR 2019; Deng et al., "Sub-center ArcFace", ECCV 2020;
      An et al., "Partial FC: Training 10 Million Identities on a Single
      Machine", ICCV 2021 workshops.

    pytorch-metric-learning: losses.ArcFaceLoss(C, D, margin=degrees(margin), scale=scale),
    losses.SubCenterArcFaceLoss(C, D, margin=degrees(margin), scale=scale, sub_centers=k) (W is the
    (D, C) class matrix; CosineSimilarity(): normalized rows and columns), the mean of these values
    """
    fn = "arcface_loss"
    _checks.check_number(margin, "margin", fn, low=0.0, high=math.pi, high_inclusive=False)
    return _margin_softmax(
        fn,
        embeddings,
        kernel,
        labels,
        m2=margin,
        m3=0.0,
        scale=scale,
        sub_centers=sub_centers,
        block_size=block_size,
        class_block_size=class_block_size,
        axis_name=axis_name,
        precision=precision,
    )


@_checks.renamed_keyword("weights", "kernel", removed_in="0.5")
def cosface_loss(
    embeddings: jax.typing.ArrayLike,
    kernel: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    margin: float = 0.35,
    scale: float = 64.0,
    sub_centers: int = 1,
    block_size: int | None = None,
    class_block_size: int | None = None,
    axis_name=None,
    precision=HIGHEST,
) -> jax.Array:
    r"""Additive cosine margin loss (CosFace, large margin cosine loss), per row.

    With ``cos(theta_ic)`` the cosine between embedding ``i`` and class column
    ``c`` of ``kernel``, ``s = scale``, ``m = margin`` and target ``y``:

    .. math::

        \ell_i = -\log \frac{e^{s(\cos\theta_{iy} - m)}}
                 {e^{s(\cos\theta_{iy} - m)} + \sum_{c \ne y} e^{s \cos\theta_{ic}}}

    The dense and class-blocked paths, ``sub_centers``, and the
    class-parallel ``axis_name`` are those of :func:`arcface_loss`.

    Args:
      embeddings: ``(N, D)`` floating embeddings (normalised inside).
      kernel: ``(D, C * K)`` class centres as columns, normalised inside;
        with ``axis_name`` this device's shard (``weights=``: its deprecated
        name, removed in 0.5).
      labels: ``(N,)`` integer class ids in ``[0, C)``.
      margin: ``m`` in ``[0, pi)`` (a cosine offset).
      scale: ``s > 0``.
      sub_centers: ``K``, the number of columns per class.
      block_size: rows per tile of the class-blocked path.
      class_block_size: classes per tile of the class-blocked path.
      axis_name: the ``shard_map`` axis that splits the classes, or None.
      precision: ``jax.lax.Precision`` of the products.

    Returns:
      ``(N,)`` losses in the input dtype. ``jnp.mean`` of them equals
      pytorch-metric-learning's ``CosFaceLoss(C, D, margin=m, scale=s)`` with
      ``W = kernel``.

    Edge cases: as :func:`arcface_loss` (labels out of range: ``ValueError``
    for a concrete array, NaN rows for a traced one).

    Forward mode on the tiled path (a custom VJP): ``jax.jvp`` / ``jax.jacfwd`` around this
    function differentiate its tiled forward sweep instead; around a function already
    traced (``jax.jvp(jax.jit(f))``) JAX refuses the custom VJP: put ``jit`` outside, or
    use the dense path (``block_size=None, class_block_size=None`` under the budget).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8]])
      >>> w = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
      >>> loss = cosface_loss(x, w, jnp.array([0, 1]), scale=4.0)
      >>> [round(v, 4) for v in loss.tolist()]
      [0.0729, 1.0428]

    References:
      Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face
      Recognition", CVPR 2018.

    pytorch-metric-learning: losses.CosFaceLoss(C, D, margin=margin, scale=scale) (W is the (D, C)
    class matrix; CosineSimilarity(): normalized rows and columns), the mean of these values
    """
    fn = "cosface_loss"
    _checks.check_number(margin, "margin", fn, low=0.0, high=math.pi, high_inclusive=False)
    return _margin_softmax(
        fn,
        embeddings,
        kernel,
        labels,
        m2=0.0,
        m3=margin,
        scale=scale,
        sub_centers=sub_centers,
        block_size=block_size,
        class_block_size=class_block_size,
        axis_name=axis_name,
        precision=precision,
    )


# --------------------------------------------------------------------------- proxy losses


def _proxy_cosines(fn, embeddings, proxies, labels):
    """``(cos (N, C), |e| > 0 (N,), |p| > 0 (C,), labels, out dtype)`` in the compute dtype."""
    e, p, y = _check_embeddings_and_classes(embeddings, proxies, labels, fn, "proxies")
    _check_concrete_labels(y, p.shape[1], fn)
    out_dtype = _numerics.output_dtype(e.dtype, p.dtype)
    cdt = _numerics.compute_dtype(e.dtype, p.dtype)
    e, p = e.astype(cdt), p.astype(cdt)
    cos, inv_e, inv_p = _unit_cosines(e, p, HIGHEST)
    return cos, inv_e > 0, inv_p > 0, y, out_dtype


def proxy_anchor_loss(
    embeddings: jax.typing.ArrayLike,
    proxies: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    margin: float = 0.1,
    alpha: float = 32.0,
) -> jax.Array:
    r"""Proxy-Anchor loss over a batch (a scalar).

    With ``s_ic`` the cosine between embedding ``i`` and proxy ``c``, ``P_c``
    the embeddings of class ``c``, ``C^+`` the proxies with at least one
    embedding in the batch, ``delta = margin`` and ``alpha``:

    .. math::

        \ell = \frac{1}{|C^+|} \sum_{c \in C^+}
               \log\Big(1 + \sum_{i \in P_c} e^{-\alpha (s_{ic} - \delta)}\Big)
             + \frac{1}{C} \sum_{c}
               \log\Big(1 + \sum_{i \notin P_c} e^{\alpha (s_{ic} + \delta)}\Big)

    The positive term is 0 when no proxy has an embedding in the batch.

    Args:
      embeddings: ``(N, D)`` floating embeddings (normalised inside).
      proxies: ``(D, C)`` one proxy per class as columns (the transpose of
        pytorch-metric-learning's ``proxies``), normalised inside.
      labels: ``(N,)`` integer class ids in ``[0, C)``.
      margin: ``delta``.
      alpha: ``alpha > 0``, the scale.

    Returns:
      A scalar in the input dtype, equal to pytorch-metric-learning's
      ``ProxyAnchorLoss(C, D, margin=delta, alpha=alpha)`` with ``proxies =
      proxies.T`` (its default ``DivisorReducer``: the sums above over
      ``|C^+|`` and ``C``). An empty batch gives 0.

    Edge cases: cosines are scale-free and a zero vector has cosine 0 (as
    :func:`arcface_loss`); a concrete ``labels`` array outside ``[0, C)``
    raises ``ValueError``; a traced one gives NaN.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
      >>> proxies = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> round(float(proxy_anchor_loss(x, proxies, jnp.array([0, 1, 1]), alpha=4.0)), 4)
      1.9828

    References:
      Kim et al., "Proxy Anchor Loss for Deep Metric Learning", CVPR 2020.

    pytorch-metric-learning: losses.ProxyAnchorLoss(C, D, margin=margin, alpha=alpha) (its proxies are
    ``proxies.T``; its default distance, CosineSimilarity(), normalizes embeddings and proxies)
    """
    fn = "proxy_anchor_loss"
    _checks.check_number(margin, "margin", fn)
    _checks.check_temperature(alpha, fn, "alpha")
    cos, _, _, y, out_dtype = _proxy_cosines(fn, embeddings, proxies, labels)
    c = cos.shape[1]
    alpha = jnp.asarray(alpha, cos.dtype)
    margin = jnp.asarray(margin, cos.dtype)
    pos = y[:, None] == jnp.arange(c)[None, :]
    pos_term = _numerics.log1p_sum_exp(-alpha * (cos - margin), pos, axis=0)
    neg_term = _numerics.log1p_sum_exp(alpha * (cos + margin), ~pos, axis=0)
    with_pos = jnp.sum(jnp.any(pos, axis=0))
    loss = jnp.sum(pos_term) / jnp.maximum(with_pos, 1) + jnp.sum(neg_term) / max(c, 1)
    loss = jnp.where(jnp.all((y >= 0) & (y < c)), loss, jnp.nan)
    return loss.astype(out_dtype)


def proxy_nca_loss(
    embeddings: jax.typing.ArrayLike,
    proxies: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    scale: float = 1.0,
) -> jax.Array:
    r"""Proxy-NCA loss per embedding: a softmax over negative squared distances to the proxies.

    With ``u_i`` the L2-normalised embedding, ``v_c`` the L2-normalised proxy
    (a zero vector stays 0), ``d_ic = |u_i - v_c|^2`` and ``s = scale``:

    .. math::

        \ell_i = -\log \frac{e^{-s d_{iy}}}{\sum_c e^{-s d_{ic}}}

    Args:
      embeddings: ``(N, D)`` floating embeddings.
      proxies: ``(D, C)`` one proxy per class as columns (the transpose of
        pytorch-metric-learning's ``proxies``).
      labels: ``(N,)`` integer class ids in ``[0, C)``.
      scale: ``s > 0`` (pytorch-metric-learning's ``softmax_scale``).

    Returns:
      ``(N,)`` losses in the input dtype. ``jnp.mean`` of them equals
      pytorch-metric-learning's ``ProxyNCALoss(C, D, softmax_scale=s)`` with
      ``proxies = proxies.T``, except that it drops rows whose probability
      underflows to exactly 0 (whose loss is infinite in its arithmetic) where
      this function returns their finite loss.

    Edge cases: the normalization is scale-free (as :func:`arcface_loss`);
    labels out of range: ``ValueError`` for a concrete array, NaN rows for a
    traced one.

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8]])
      >>> proxies = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> loss = proxy_nca_loss(x, proxies, jnp.array([0, 1]), scale=2.0)
      >>> [round(v, 4) for v in loss.tolist()]
      [0.0181, 0.3711]

    References:
      Movshovitz-Attias et al., "No Fuss Distance Metric Learning using
      Proxies", ICCV 2017.

    pytorch-metric-learning: losses.ProxyNCALoss(C, D, softmax_scale=scale) (its proxies are
    ``proxies.T``; its default distance, LpDistance(power=2), is 2 - 2 cos of normalized vectors,
    the same softmax), the mean of these values
    """
    fn = "proxy_nca_loss"
    _checks.check_temperature(scale, fn, "scale")
    cos, e_nonzero, p_nonzero, y, out_dtype = _proxy_cosines(fn, embeddings, proxies, labels)
    c = cos.shape[1]
    if cos.shape[0] == 0:
        return jnp.zeros((0,), out_dtype)
    dist = jax.nn.relu(e_nonzero[:, None].astype(cos.dtype) + p_nonzero[None, :].astype(cos.dtype) - 2 * cos)
    z = -jnp.asarray(scale, cos.dtype) * dist
    hit = y[:, None] == jnp.arange(c)[None, :]
    loss = jax.nn.logsumexp(z, axis=1) - jnp.sum(jnp.where(hit, z, 0), axis=1)
    loss = jnp.where((y >= 0) & (y < c), loss, jnp.nan)
    return loss.astype(out_dtype)
