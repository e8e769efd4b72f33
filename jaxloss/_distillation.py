"""Distillation between two linear heads and per-token softmax statistics, without the logits.

Beside ``linear_softmax_cross_entropy``: the same ``inputs @ kernel`` heads over
a large vocabulary, the same recomputing ``jax.custom_vjp`` over
``block_size x vocab_block_size`` tiles (``_tiles`` block starts, pulled-back
last blocks, online logsumexp, vocabulary parallelism), other per-token
statistics.

Online moments. Next to the online logsumexp ``(m, s)`` (running maximum
``m``, ``s = sum_c exp(a_c - m)``) a tile scan keeps ``t = sum_c exp(a_c - m) y_c``
for a second per-entry quantity ``y``, rescaled by ``exp(m_old - m_new)`` with
``s``; then ``t / s`` is the softmax-weighted mean of ``y``. With
``y = b - a`` (teacher ``b``, student ``a``) this is the forward KL in one pass;
the entropy uses ``y = a - m`` (centred on the running maximum, so that
large logits cost no precision). The Jensen-Shannon divergence needs both
normalisers before ``log M``: a second pass over the vocabulary.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _block_policy, _checks, _tiles

__all__ = ["LinearSoftmaxStatistics", "linear_distillation_loss", "linear_softmax_statistics"]

DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")


class LinearSoftmaxStatistics(NamedTuple):
    """Per-token statistics of ``softmax(z / T)``, ``z`` the logits of a linear head.

    Attributes:
      logsumexp: ``(...)`` ``logsumexp_c(z_c / T)``.
      label_log_prob: ``(...)`` ``log p_y = z_y / T - logsumexp`` of the
        labels, or None when no labels were given.
      entropy: ``(...)`` ``-sum_c p_c log p_c``.

    Examples:
      >>> import jax.numpy as jnp
      >>> stats = LinearSoftmaxStatistics(jnp.zeros(2), None, jnp.ones(2))
      >>> stats.entropy
      Array([1., 1.], dtype=float32)
    """

    logsumexp: jax.Array
    label_log_prob: jax.Array | None
    entropy: jax.Array


class _Config(NamedTuple):
    n: int  # tokens
    v: int  # vocabulary entries on this device
    tb: int  # token block
    vb: int  # vocabulary block
    mode: str  # a divergence name, or "statistics"
    beta: float
    inv_t: float  # 1 / temperature
    softcap: float | None
    precision: object
    axis_name: object
    vma: tuple  # inside shard_map: the mesh axes over which the operands vary


def _acc_dtype(dtype):
    return jnp.promote_types(dtype, jnp.float32)


def _vary(cfg, x):
    return _tiles.make_varying(x, cfg.vma)


def _finite(m):
    """The running maximum as a shift: 0 for a row that has seen only ``-inf``."""
    return jnp.where(jnp.isfinite(m), m, 0)


# --------------------------------------------------------------------------- tiles


def _tile(cfg, xb, kb, bb):
    """``(a, zc)``: the scaled logits ``softcap(xb @ kb + bb) / T`` and the capped logits.

    Forward and backward passes call this on the same blocks, so the backward
    recomputes exactly the forward's numbers.
    """
    acc = _acc_dtype(xb.dtype)
    z = jax.lax.dot_general(
        xb, kb, (((1,), (0,)), ((), ())), precision=cfg.precision, preferred_element_type=acc
    )
    if bb is not None:
        z = z + bb.astype(acc)[None, :]
    if cfg.softcap is not None:
        z = cfg.softcap * jnp.tanh(z / cfg.softcap)
    return (z if cfg.inv_t == 1.0 else z * cfg.inv_t), z


def _vocab_slices(cfg, j, *arrays):
    """Vocabulary block ``j``: its start, validity mask and the slices of ``(D, V)``/``(V,)`` arrays."""
    start = _tiles.block_start(j, cfg.vb, cfg.v)
    valid = _tiles.block_valid(j, cfg.vb, cfg.v)
    out = [
        None if a is None else jax.lax.dynamic_slice_in_dim(a, start, cfg.vb, axis=a.ndim - 1) for a in arrays
    ]
    return start, valid, out


def _token_slices(cfg, i, *arrays):
    start = _tiles.block_start(i, cfg.tb, cfg.n)
    valid = _tiles.block_valid(i, cfg.tb, cfg.n)
    out = [None if a is None else jax.lax.dynamic_slice_in_dim(a, start, cfg.tb) for a in arrays]
    return start, valid, out


def _loop(n, body, init):
    """``fori_loop`` over ``range(n)``; a plain call for one step (lets XLA share identical GEMMs)."""
    if n == 1:
        return body(0, init)
    return jax.lax.fori_loop(0, n, body, init)


# --------------------------------------------------------------------------- online moments


def _moment_init(cfg, rows, acc, moments):
    """``(m, s, t_1, ..., t_k)`` of an empty row set."""
    m, s = _tiles.init_logsumexp((rows,), acc)
    return tuple(_vary(cfg, a) for a in (m, s) + tuple(jnp.zeros((rows,), acc) for _ in range(moments)))


def _moment_update(state, a, valid, ys=(), centred=()):
    """Folds a tile of scaled logits ``a`` (columns masked by ``valid``) into ``(m, s, t...)``.

    ``t_k`` accumulates ``sum_c exp(a_c - m) y_kc``; a ``centred`` moment uses
    ``y = a - m`` itself (pass ``None`` in ``ys``), re-centred when ``m`` grows.
    """
    m, s, *ts = state
    a = jnp.where(valid[None, :], a, -jnp.inf)
    m_new = jnp.maximum(m, jnp.max(a, axis=1))
    shift = _finite(m_new)
    alpha = jnp.exp(m - shift)
    e = jnp.exp(a - shift[:, None])
    s_new = s * alpha + jnp.sum(e, axis=1)
    out = []
    for t, y, c in zip(ts, ys, centred, strict=True):
        if c:
            centred_a = jnp.where(valid[None, :], a - shift[:, None], 0)
            t_new = alpha * (t + s * (_finite(m) - shift)) + jnp.sum(e * centred_a, axis=1)
        else:
            t_new = t * alpha + jnp.sum(e * jnp.where(valid[None, :], y, 0), axis=1)
        out.append(t_new)
    return (m_new, s_new, *out)


def _moment_psum(state, axis_name, centred=()):
    """Merges ``(m, s, t...)`` over the devices of ``axis_name``."""
    if axis_name is None:
        return state
    m, s, *ts = state
    m_all = jax.lax.pmax(m, axis_name)
    shift = _finite(m_all)
    alpha = jnp.exp(m - shift)
    out = []
    for t, c in zip(ts, centred, strict=True):
        local = alpha * (t + s * (_finite(m) - shift)) if c else alpha * t
        out.append(jax.lax.psum(local, axis_name))
    return (m_all, jax.lax.psum(s * alpha, axis_name), *out)


def _lse(m, s):
    return _tiles.finalize_logsumexp((m, s))


# --------------------------------------------------------------------------- distillation core


def _jsd_terms(cfg, a, b, lse_a, lse_b):
    """Per-entry ``(ls, lM, p_t (lt - lM), p_s (ls - lM))`` of one tile (``log M`` by ``logaddexp``)."""
    ls = a - lse_a[:, None]
    lt = b - lse_b[:, None]
    log_m = jnp.logaddexp(math.log(cfg.beta) + lt, math.log1p(-cfg.beta) + ls)
    return ls, log_m, jnp.exp(lt) * (lt - log_m), jnp.exp(ls) * (ls - log_m)


def _distill_forward(cfg, xs, ks, bs, xt, kt, bt):
    """Per-token ``(loss, lse_s, lse_t, aux)``; ``aux`` is what the backward pass needs."""
    acc = _acc_dtype(jnp.promote_types(xs.dtype, xt.dtype))
    nvb = _tiles.num_blocks(cfg.v, cfg.vb)
    mode = cfg.mode

    def token_step(i, out):
        start, _, (xsb, xtb) = _token_slices(cfg, i, xs, xt)

        def first_pass(j, state):
            st_s, st_t = state
            _, valid, (ksb, bsb, ktb, btb) = _vocab_slices(cfg, j, ks, bs, kt, bt)
            a, _ = _tile(cfg, xsb, ksb, bsb)
            b, _ = _tile(cfg, xtb, ktb, btb)
            if mode == "forward_kl":
                return _moment_update(st_s, a, valid), _moment_update(st_t, b, valid, (b - a,), (False,))
            if mode == "reverse_kl":
                return _moment_update(st_s, a, valid, (a - b,), (False,)), _moment_update(st_t, b, valid)
            return _moment_update(st_s, a, valid), _moment_update(st_t, b, valid)

        k_s, k_t = {"forward_kl": (0, 1), "reverse_kl": (1, 0), "jsd": (0, 0)}[mode]
        init = (_moment_init(cfg, cfg.tb, acc, k_s), _moment_init(cfg, cfg.tb, acc, k_t))
        st_s, st_t = _loop(nvb, first_pass, init)
        st_s = _moment_psum(st_s, cfg.axis_name, (False,) * k_s)
        st_t = _moment_psum(st_t, cfg.axis_name, (False,) * k_t)
        lse_s, lse_t = _lse(*st_s[:2]), _lse(*st_t[:2])
        if mode == "forward_kl":
            loss = st_t[2] / st_t[1] - (lse_t - lse_s)
            aux = jnp.zeros_like(loss)
        elif mode == "reverse_kl":
            loss = st_s[2] / st_s[1] - (lse_s - lse_t)
            aux = loss
        else:

            def second_pass(j, sums):
                s1, s2 = sums
                _, valid, (ksb, bsb, ktb, btb) = _vocab_slices(cfg, j, ks, bs, kt, bt)
                a, _ = _tile(cfg, xsb, ksb, bsb)
                b, _ = _tile(cfg, xtb, ktb, btb)
                _, _, ft, fs = _jsd_terms(cfg, a, b, lse_s, lse_t)
                keep = valid[None, :]
                s1 = s1 + jnp.sum(jnp.where(keep, ft, 0), axis=1)
                return s1, s2 + jnp.sum(jnp.where(keep, fs, 0), axis=1)

            zeros = _vary(cfg, jnp.zeros((cfg.tb,), acc))
            s1, s2 = _loop(nvb, second_pass, (zeros, zeros))
            if cfg.axis_name is not None:
                s1, s2 = jax.lax.psum((s1, s2), cfg.axis_name)
            loss = cfg.beta * s1 + (1 - cfg.beta) * s2
            aux = s2
        # rows of the pulled-back last token block are recomputed identically: plain overwrite
        return tuple(
            jax.lax.dynamic_update_slice_in_dim(o, r, start, axis=0)
            for o, r in zip(out, (loss, lse_s, lse_t, aux), strict=True)
        )

    # the per-token results are merged over `axis_name` inside the loop: replicated over it
    replicated = tuple(a for a in cfg.vma if a != cfg.axis_name)
    out0 = tuple(_tiles.make_varying(jnp.zeros((cfg.n,), acc), replicated) for _ in range(4))
    return _loop(_tiles.num_blocks(cfg.n, cfg.tb), token_step, out0)


def _distill_dlogits(cfg, a, b, lse_s, lse_t, aux, g):
    """``d loss / d a`` of one tile (``a = z_s / T``) times the per-token cotangent ``g``."""
    if cfg.mode == "forward_kl":
        da = jnp.exp(a - lse_s[:, None]) - jnp.exp(b - lse_t[:, None])
    elif cfg.mode == "reverse_kl":
        ls = a - lse_s[:, None]
        da = jnp.exp(ls) * (ls - (b - lse_t[:, None]) - aux[:, None])
    else:
        ls, log_m, _, _ = _jsd_terms(cfg, a, b, lse_s, lse_t)
        da = (1 - cfg.beta) * jnp.exp(ls) * (ls - log_m - aux[:, None])
    return g[:, None] * da


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _distill(cfg, xs, ks, bs, xt, kt, bt):
    return _distill_forward(cfg, xs, ks, bs, xt, kt, bt)[0]


def _distill_fwd(cfg, xs, ks, bs, xt, kt, bt):
    loss, lse_s, lse_t, aux = _distill_forward(cfg, xs, ks, bs, xt, kt, bt)
    return loss, (xs, ks, bs, xt, kt, bt, lse_s, lse_t, aux)


def _backward(cfg, x, kernel, bias, per_row, dlogits):
    """Gradients of ``x``, ``kernel``, ``bias`` from a per-tile ``dlogits(a, zc, rows, others)``.

    Vocabulary blocks outside, token blocks inside: each block of the
    kernel's gradient is accumulated in float32 and written once.
    ``per_row`` are ``(N,)``/``(N, ...)`` arrays sliced per token block and
    handed to ``dlogits(j, i, xb, kb, bb, rows)``, which returns ``d loss / d z``
    of the tile (already masked to its valid entries).
    """
    acc = _acc_dtype(x.dtype)
    nvb = _tiles.num_blocks(cfg.v, cfg.vb)
    ntb = _tiles.num_blocks(cfg.n, cfg.tb)
    d = x.shape[1]

    def vocab_step(j, carry):
        dx, dk, db = carry
        vstart, _, (kb, bb) = _vocab_slices(cfg, j, kernel, bias)

        def token_step(i, inner):
            dx, dkb, dbb = inner
            start, _, (xb, *rows) = _token_slices(cfg, i, x, *per_row)
            dz = dlogits(j, i, xb, kb, bb, rows)
            dzc = dz.astype(x.dtype)
            dxb = jax.lax.dot_general(
                dzc, kb, (((1,), (1,)), ((), ())), precision=cfg.precision, preferred_element_type=acc
            )
            dx = jax.lax.dynamic_update_slice_in_dim(
                dx, jax.lax.dynamic_slice_in_dim(dx, start, cfg.tb) + dxb, start, axis=0
            )
            dkb = dkb + jax.lax.dot_general(
                xb, dzc, (((0,), (0,)), ((), ())), precision=cfg.precision, preferred_element_type=acc
            )
            if bias is not None:
                dbb = dbb + jnp.sum(dz, axis=0)
            return dx, dkb, dbb

        inner0 = (dx, _vary(cfg, jnp.zeros((d, cfg.vb), acc)), _vary(cfg, jnp.zeros((cfg.vb,), acc)))
        dx, dkb, dbb = _loop(ntb, token_step, inner0)
        # columns of the pulled-back last block that the previous block covered were masked to 0
        old = jax.lax.dynamic_slice_in_dim(dk, vstart, cfg.vb, axis=1).astype(acc)
        dk = jax.lax.dynamic_update_slice_in_dim(dk, (old + dkb).astype(dk.dtype), vstart, axis=1)
        if bias is not None:
            db = jax.lax.dynamic_update_slice_in_dim(
                db, jax.lax.dynamic_slice_in_dim(db, vstart, cfg.vb) + dbb, vstart, axis=0
            )
        return dx, dk, db

    init = (
        _vary(cfg, jnp.zeros(x.shape, acc)),
        _vary(cfg, jnp.zeros(kernel.shape, kernel.dtype)),
        _vary(cfg, jnp.zeros((cfg.v,), acc)),
    )
    dx, dk, db = _loop(nvb, vocab_step, init)
    if cfg.axis_name is not None:
        dx = jax.lax.psum(dx, cfg.axis_name)
    return dx.astype(x.dtype), dk, None if bias is None else db.astype(bias.dtype)


def _tile_mask(cfg, i, j):
    rows = _tiles.block_valid(i, cfg.tb, cfg.n)
    cols = _tiles.block_valid(j, cfg.vb, cfg.v)
    return rows[:, None] & cols[None, :]


def _distill_bwd(cfg, residuals, g):
    xs, ks, bs, xt, kt, bt, lse_s, lse_t, aux = residuals
    acc = _acc_dtype(jnp.promote_types(xs.dtype, xt.dtype))
    g = jnp.asarray(g, acc)

    def dlogits(j, i, xsb, ksb, bsb, rows):
        xtb, ls_b, lt_b, aux_b, g_b = rows
        _, _, (ktb, btb) = _vocab_slices(cfg, j, kt, bt)
        a, _ = _tile(cfg, xsb, ksb, bsb)
        b, _ = _tile(cfg, xtb, ktb, btb)
        da = _distill_dlogits(cfg, a, b, ls_b, lt_b, aux_b, g_b)
        dz = da if cfg.inv_t == 1.0 else da * cfg.inv_t
        return jnp.where(_tile_mask(cfg, i, j), dz, 0)

    dxs, dks, dbs = _backward(cfg, xs, ks, bs, (xt, lse_s, lse_t, aux, g), dlogits)
    # the teacher is a fixed target: symbolic zero cotangents, no backward work
    return dxs, dks, dbs, None, None, None


_distill.defvjp(_distill_fwd, _distill_bwd)


# --------------------------------------------------------------------------- statistics core


def _statistics_forward(cfg, x, kernel, bias, labels):
    """Per-token ``(lse, a_y, entropy)`` of ``a = softcap(x @ kernel + bias) / T``."""
    acc = _acc_dtype(x.dtype)
    nvb = _tiles.num_blocks(cfg.v, cfg.vb)
    offset = 0 if cfg.axis_name is None else jax.lax.axis_index(cfg.axis_name) * cfg.v
    has_labels = labels is not None

    def token_step(i, out):
        start, _, (xb, yb) = _token_slices(cfg, i, x, labels)

        def vocab_step(j, state):
            st, ay = state
            vstart, valid, (kb, bb) = _vocab_slices(cfg, j, kernel, bias)
            a, _ = _tile(cfg, xb, kb, bb)
            st = _moment_update(st, a, valid, (None,), (True,))
            if has_labels:
                hit = (vstart + jnp.arange(cfg.vb) + offset)[None, :] == yb[:, None]
                ay = ay + jnp.sum(jnp.where(hit & valid[None, :], a, 0), axis=1)
            return st, ay

        init = (_moment_init(cfg, cfg.tb, acc, 1), _vary(cfg, jnp.zeros((cfg.tb,), acc)))
        st, ay = _loop(nvb, vocab_step, init)
        new = (*st, ay)
        pairs = zip(out, new, strict=True)
        return tuple(jax.lax.dynamic_update_slice_in_dim(o, r, start, axis=0) for o, r in pairs)

    out0 = tuple(_vary(cfg, jnp.zeros((cfg.n,), acc)) for _ in range(4))
    m, s, t, ay = _loop(_tiles.num_blocks(cfg.n, cfg.tb), token_step, out0)
    m, s, t = _moment_psum((m, s, t), cfg.axis_name, (True,))
    if cfg.axis_name is not None and has_labels:
        ay = jax.lax.psum(ay, cfg.axis_name)
    # entropy = lse - E_p[a] = log s - t / s (t is centred on m)
    lse = _lse(m, s)
    entropy = jnp.log(s) - t / s
    return lse, ay, entropy


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _statistics(cfg, x, kernel, bias, labels):
    return _statistics_forward(cfg, x, kernel, bias, labels)


def _statistics_fwd(cfg, x, kernel, bias, labels):
    out = _statistics_forward(cfg, x, kernel, bias, labels)
    return out, (x, kernel, bias, labels, out[0], out[2])


def _statistics_bwd(cfg, residuals, cotangents):
    x, kernel, bias, labels, lse, entropy = residuals
    acc = _acc_dtype(x.dtype)
    g_lse, g_ay, g_h = (jnp.asarray(c, acc) for c in cotangents)
    offset = 0 if cfg.axis_name is None else jax.lax.axis_index(cfg.axis_name) * cfg.v
    rows = (lse, entropy, g_lse, g_ay, g_h) + (() if labels is None else (labels,))

    def dlogits(j, i, xb, kb, bb, rows):
        lse_b, h_b, gl, gy, gh = rows[:5]
        a, zc = _tile(cfg, xb, kb, bb)
        log_p = a - lse_b[:, None]
        p = jnp.exp(log_p)
        # d lse = p, d a_y = onehot(y), d H = -p (log p + H)
        da = p * (gl[:, None] - gh[:, None] * (log_p + h_b[:, None]))
        if labels is not None:
            vstart = _tiles.block_start(j, cfg.vb, cfg.v)
            hit = (vstart + jnp.arange(cfg.vb) + offset)[None, :] == rows[5][:, None]
            da = da + jnp.where(hit, gy[:, None], 0)
        dz = da if cfg.inv_t == 1.0 else da * cfg.inv_t
        if cfg.softcap is not None:
            dz = dz * (1 - jnp.square(zc / cfg.softcap))
        return jnp.where(_tile_mask(cfg, i, j), dz, 0)

    dx, dk, db = _backward(cfg, x, kernel, bias, rows, dlogits)
    return dx, dk, db, None


_statistics.defvjp(_statistics_fwd, _statistics_bwd)


# --------------------------------------------------------------------------- dense paths


def _dense_scaled_logits(x, kernel, bias, inv_t, softcap, precision):
    acc = _acc_dtype(x.dtype)
    z = jnp.matmul(x, kernel, precision=precision, preferred_element_type=acc)
    if bias is not None:
        z = z + bias.astype(acc)
    if softcap is not None:
        z = softcap * jnp.tanh(z / softcap)
    return z * inv_t


def _dense_distillation(mode, beta, a, b):
    ls = jax.nn.log_softmax(a, axis=-1)
    lt = jax.nn.log_softmax(b, axis=-1)
    if mode == "forward_kl":
        return jnp.sum(jnp.exp(lt) * (lt - ls), axis=-1)
    if mode == "reverse_kl":
        return jnp.sum(jnp.exp(ls) * (ls - lt), axis=-1)
    log_m = jnp.logaddexp(math.log(beta) + lt, math.log1p(-beta) + ls)
    return beta * jnp.sum(jnp.exp(lt) * (lt - log_m), axis=-1) + (1 - beta) * jnp.sum(
        jnp.exp(ls) * (ls - log_m), axis=-1
    )


def _dense_statistics(a, labels, num_classes):
    lse = jax.nn.logsumexp(a, axis=-1)
    log_p = a - lse[:, None]
    entropy = -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
    if labels is None:
        return lse, None, entropy
    hit = jnp.arange(num_classes)[None, :] == labels[:, None]
    return lse, jnp.sum(jnp.where(hit, a, 0), axis=-1), entropy


# --------------------------------------------------------------------------- validation


def _check_head(fn, x, k, x_name, k_name):
    _checks.check_floating(x, x_name, fn)
    _checks.check_floating(k, k_name, fn)
    x = jnp.asarray(x)
    k = jnp.asarray(k)
    if x.ndim < 1:
        raise ValueError(f"{fn}: `{x_name}` must have shape (..., D); got shape {x.shape}.")
    d = x.shape[-1]
    if k.ndim != 2 or k.shape[0] != d:
        raise ValueError(
            f"{fn}: `{k_name}` must have shape (D, V) with D = {x_name}.shape[-1] = {d}; got shape {k.shape}."
        )
    if k.shape[1] == 0:
        raise ValueError(f"{fn}: `{k_name}` must have at least one class (V >= 1); got shape {k.shape}.")
    return x, k


def _check_bias(fn, bias, name, v):
    if bias is None:
        return None
    _checks.check_floating(bias, name, fn)
    if tuple(np.shape(bias)) != (v,):
        raise ValueError(
            f"{fn}: `{name}` must have shape (V,) = ({v},), one entry per class of the kernel; "
            f"got {tuple(np.shape(bias))}."
        )
    return jnp.asarray(bias)


def _static_number(value, name, fn, **bounds):
    if _checks.is_traced(value):
        raise TypeError(f"{fn}: `{name}` must be a Python number, not a traced value.")
    _checks.check_number(value, name, fn, **bounds)
    return float(value)


def _blocks(fn, block_size, vocab_block_size, n, v, axis_name):
    """``(tb, vb)`` for the fused path, or None for the dense path (small, on one device)."""
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)
    vocab_block_size = _block_policy.check_block_size(vocab_block_size, "vocab_block_size", fn)
    return _block_policy.resolve_blocks(
        _block_policy.HEADS, n, v, block_size, vocab_block_size, dense=axis_name is None
    )


# --------------------------------------------------------------------------- public functions


def linear_distillation_loss(
    student_inputs: jax.typing.ArrayLike,
    student_kernel: jax.typing.ArrayLike,
    teacher_inputs: jax.typing.ArrayLike,
    teacher_kernel: jax.typing.ArrayLike,
    *,
    divergence: str = "forward_kl",
    beta: float = 0.5,
    temperature: float = 1.0,
    student_bias: jax.typing.ArrayLike | None = None,
    teacher_bias: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    block_size: int | None = None,
    vocab_block_size: int | None = None,
    precision=jax.lax.Precision.HIGHEST,
    axis_name=None,
) -> jax.Array:
    r"""Per-token divergence between a teacher's and a student's softmax head, without the logits.

    With ``p_s = softmax((x_s W_s + b_s) / T)`` (student) and
    ``p_t = softmax((x_t W_t + b_t) / T)`` (teacher) over the same ``V``
    classes, per token:

    * ``"forward_kl"``: :math:`\mathrm{KL}(p_t \| p_s) = \sum_c p_{t,c} (\log p_{t,c} - \log p_{s,c})`
      (the usual distillation loss: the student covers the teacher's mass);
    * ``"reverse_kl"``: :math:`\mathrm{KL}(p_s \| p_t)` (mode-seeking);
    * ``"jsd"``: :math:`\beta\, \mathrm{KL}(p_t \| M) + (1 - \beta)\, \mathrm{KL}(p_s \| M)`
      with :math:`M = \beta p_t + (1 - \beta) p_s`; ``beta = 0.5`` is the
      symmetric Jensen-Shannon divergence (at most ``log 2``), ``beta`` 0 or 1
      give 0. ``log M`` is a ``logaddexp`` of the two log-probabilities,
      never the log of a sum that can underflow.

    Terms with a zero probability contribute 0 (``0 log 0 = 0``), so values
    and gradients stay finite for large logits and small temperatures.
    There is no ``T^2`` factor: Hinton et al.'s scaling, which keeps the
    gradient's size independent of ``T``, is ``temperature ** 2 * loss``.

    **The teacher is a fixed target.** Its inputs, kernel and bias get zero
    cotangents (the result does not depend on them for differentiation) and
    the backward pass spends no work on them beyond recomputing the
    teacher's logits; pass the teacher's parameters through
    ``jax.lax.stop_gradient`` or leave them out of ``argnums`` as usual.

    **Memory.** Unless both block sizes are None and ``N V <= 2^22`` (a dense
    computation), a ``jax.custom_vjp`` scans ``block_size x vocab_block_size``
    tiles of both heads' logits with online statistics: per token a running
    maximum and sum of exponentials per head and one softmax-weighted sum
    (the forward and reverse KL need one pass over the vocabulary; the JSD
    needs both normalisers before ``log M`` and makes two). The backward pass
    recomputes each tile and accumulates the student's gradients in float32.
    Temporary memory is ``O(block_size * vocab_block_size + N)``, never
    ``O(N V)``. Defaults and half precision as in
    ``linear_softmax_cross_entropy``.

    **Vocabulary-parallel.** With ``axis_name``, call it inside
    ``jax.shard_map`` with both kernels (and biases) split over their
    vocabulary axis along ``axis_name`` (``P(None, axis)``) and the inputs
    replicated; the statistics are merged with ``pmax``/``psum`` and the
    losses and gradients equal the single-device ones.

    Args:
      student_inputs: ``(..., Ds)`` floating activations ``x_s``.
      student_kernel: ``(Ds, V)`` student weights ``W_s`` (Flax layout).
      teacher_inputs: ``(..., Dt)`` teacher activations ``x_t`` (same
        leading shape).
      teacher_kernel: ``(Dt, V)`` teacher weights ``W_t`` (same ``V``).
      divergence: ``"forward_kl"``, ``"reverse_kl"`` or ``"jsd"``.
      beta: the JSD's ``beta`` in ``[0, 1]`` (a Python number).
      temperature: ``T > 0`` (a Python number), applied to both heads.
      student_bias: optional ``(V,)`` bias ``b_s``.
      teacher_bias: optional ``(V,)`` bias ``b_t``.
      where: optional ``(...)`` bool; ``False`` tokens give 0 and no gradient.
      block_size: tokens per block (None: automatic).
      vocab_block_size: classes per block (None: automatic).
      precision: ``jax.lax.Precision`` of the GEMMs (``HIGHEST`` by default).
      axis_name: the ``shard_map`` axis that splits the vocabulary, or None.

    Returns:
      ``(...)`` per-token divergences in the student's dtype.

    Edge cases: a head distilled from itself gives 0; with ``beta`` 0 or 1
    the JSD is 0. Reverse-mode differentiation only on the tiled path (a
    custom VJP).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> student = jnp.array([[1.0, -1.0, 0.0], [0.0, 2.0, 1.0]])
      >>> teacher = jnp.array([[2.0, -1.0, 0.0], [0.0, 1.0, 1.0]])
      >>> [round(float(v), 4) for v in linear_distillation_loss(x, student, x, teacher)]
      [0.0816, 0.1233]
      >>> linear_distillation_loss(x, student, x, student, divergence="jsd")
      Array([0., 0.], dtype=float32)

    References:
      Hinton et al., "Distilling the Knowledge in a Neural Network", 2015;
      Agarwal et al., "On-Policy Distillation of Language Models" (GKD,
      generalised JSD), 2024; Hsu et al., "Liger Kernel", 2024
      (LigerFusedLinearJSD).

    Dense reference: ``kl_divergence`` / ``log_softmax`` of the float64 logits
    """
    fn = "linear_distillation_loss"
    xs, ks = _check_head(fn, student_inputs, student_kernel, "student_inputs", "student_kernel")
    xt, kt = _check_head(fn, teacher_inputs, teacher_kernel, "teacher_inputs", "teacher_kernel")
    v = ks.shape[1]
    if kt.shape[1] != v:
        raise ValueError(
            f"{fn}: `teacher_kernel` must have as many classes as `student_kernel` ({v}); "
            f"got shape {kt.shape}."
        )
    if xt.shape[:-1] != xs.shape[:-1]:
        raise ValueError(
            f"{fn}: `teacher_inputs` must have the leading shape of `student_inputs`, {xs.shape[:-1]}; "
            f"got {xt.shape[:-1]}."
        )
    bs = _check_bias(fn, student_bias, "student_bias", v)
    bt = _check_bias(fn, teacher_bias, "teacher_bias", v)
    if not isinstance(divergence, str):
        raise TypeError(f"{fn}: `divergence` must be a string, one of {DIVERGENCES}; got {divergence!r}.")
    _checks.check_option(divergence, "divergence", DIVERGENCES, fn)
    beta = _static_number(beta, "beta", fn, low=0, high=1)
    if _checks.is_traced(temperature):
        raise TypeError(f"{fn}: `temperature` must be a Python number, not a traced value.")
    _checks.check_temperature(temperature, fn)
    inv_t = 1.0 / float(temperature)
    batch_shape = xs.shape[:-1]
    if where is not None:
        w = jnp.asarray(where)
        if w.dtype != jnp.bool_ or w.shape != batch_shape:
            raise ValueError(
                f"{fn}: `where` must be a bool array of shape {batch_shape}; got {w.dtype} {w.shape}."
            )
    n = math.prod(batch_shape)
    blocks = _blocks(fn, block_size, vocab_block_size, n, v, axis_name)

    out_dtype = jnp.promote_types(xs.dtype, ks.dtype)
    if n == 0:
        return jnp.zeros(batch_shape, out_dtype)
    if divergence == "jsd" and beta in (0.0, 1.0):  # M is one of the two: the divergence is 0
        return jnp.zeros(batch_shape, out_dtype)
    t_dtype = jnp.promote_types(xt.dtype, kt.dtype)
    xs2 = xs.reshape(n, xs.shape[-1]).astype(out_dtype)
    ks = ks.astype(out_dtype)
    xt2 = jax.lax.stop_gradient(xt.reshape(n, xt.shape[-1]).astype(t_dtype))
    kt = jax.lax.stop_gradient(kt.astype(t_dtype))
    bt = None if bt is None else jax.lax.stop_gradient(bt)
    if blocks is None:
        a = _dense_scaled_logits(xs2, ks, bs, inv_t, None, precision)
        b = _dense_scaled_logits(xt2, kt, bt, inv_t, None, precision)
        loss = _dense_distillation(divergence, beta, a, b.astype(a.dtype))
    else:
        cfg = _Config(
            n=n,
            v=v,
            tb=blocks[0],
            vb=blocks[1],
            mode=divergence,
            beta=beta,
            inv_t=inv_t,
            softcap=None,
            precision=precision,
            axis_name=axis_name,
            vma=_tiles.varying_axes(xs2, ks, bs, xt2, kt, bt),
        )
        loss = _distill(cfg, xs2, ks, bs, xt2, kt, bt)
    loss = loss.reshape(batch_shape)
    if where is not None:
        loss = jnp.where(jnp.asarray(where), loss, 0)
    return loss.astype(out_dtype)


def linear_softmax_statistics(
    inputs: jax.typing.ArrayLike,
    kernel: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike | None = None,
    *,
    bias: jax.typing.ArrayLike | None = None,
    temperature: float = 1.0,
    logit_softcap: float | None = None,
    block_size: int | None = None,
    vocab_block_size: int | None = None,
    precision=jax.lax.Precision.HIGHEST,
    axis_name=None,
) -> LinearSoftmaxStatistics:
    r"""Per-token logsumexp, label log-probability and entropy of a linear head, without the logits.

    With ``z = softcap(inputs @ kernel + bias)`` (``softcap(a) = c tanh(a / c)``,
    the identity when ``logit_softcap`` is None), ``a = z / T`` and
    ``p = softmax(a)``:

    .. math::

        \mathrm{lse} = \log \sum_c e^{a_c}, \qquad
        \log p_y = a_y - \mathrm{lse}, \qquad
        H = -\sum_c p_c \log p_c = \mathrm{lse} - \sum_c p_c a_c

    The statistics of reinforcement-learning objectives (token
    log-probabilities, an entropy bonus), of the z-loss (``lse^2``) and of
    calibration, for a vocabulary too large for the ``N x V`` logits. Every
    field is differentiable, in any combination of their cotangents. At
    ``T = 1`` the logsumexp is the one inside
    ``linear_softmax_cross_entropy``, whose loss is ``-label_log_prob``.

    The entropy is accumulated in one pass as ``log s - t / s`` with
    ``s = sum_c exp(a_c - m)`` and ``t = sum_c exp(a_c - m) (a_c - m)``
    (``m`` the running maximum), so large logits lose no precision.
    Tiling, memory, half precision and ``axis_name`` as in
    ``linear_softmax_cross_entropy`` (``labels`` hold global class ids).

    Args:
      inputs: ``(..., D)`` floating activations.
      kernel: ``(D, V)`` weights (Flax layout).
      labels: optional ``(...)`` integer class ids in ``[0, V)``.
      bias: optional ``(V,)`` bias.
      temperature: ``T > 0`` (a Python number).
      logit_softcap: ``c > 0`` or None.
      block_size: tokens per block (None: automatic).
      vocab_block_size: classes per block (None: automatic).
      precision: ``jax.lax.Precision`` of the GEMMs (``HIGHEST`` by default).
      axis_name: the ``shard_map`` axis that splits the vocabulary, or None.

    Returns:
      :class:`LinearSoftmaxStatistics` ``(logsumexp, label_log_prob, entropy)``,
      each ``(...)`` in the input dtype; ``label_log_prob`` is None without
      ``labels``.

    Edge cases: a label outside ``[0, V)`` gives a NaN ``label_log_prob``.
    Reverse-mode differentiation only on the tiled path (a custom VJP).

    Examples:
      >>> import jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0]])
      >>> kernel = jnp.array([[1.0, -1.0, 0.0], [0.0, 2.0, 1.0]])
      >>> stats = linear_softmax_statistics(x, kernel, jnp.array([0, 1]))
      >>> [round(float(v), 4) for v in stats.logsumexp]
      [1.4076, 2.4076]
      >>> [round(float(v), 4) for v in stats.label_log_prob]
      [-0.4076, -0.4076]
      >>> [round(float(v), 4) for v in stats.entropy]
      [0.8324, 0.8324]

    References:
      Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models",
      2024; Williams, "Simple statistical gradient-following algorithms"
      (REINFORCE), 1992.

    Dense reference: ``jax.nn.logsumexp`` / ``jax.nn.log_softmax`` of the float64 logits
    """
    fn = "linear_softmax_statistics"
    x, k = _check_head(fn, inputs, kernel, "inputs", "kernel")
    v = k.shape[1]
    batch_shape = x.shape[:-1]
    y = None
    if labels is not None:
        _checks.check_integer(labels, "labels", fn)
        y = jnp.asarray(labels)
        if y.shape != batch_shape:
            raise ValueError(
                f"{fn}: `labels` must have the shape of `inputs` without its last axis, {batch_shape}; "
                f"got {y.shape}."
            )
    b = _check_bias(fn, bias, "bias", v)
    if _checks.is_traced(temperature):
        raise TypeError(f"{fn}: `temperature` must be a Python number, not a traced value.")
    _checks.check_temperature(temperature, fn)
    inv_t = 1.0 / float(temperature)
    if logit_softcap is not None:
        logit_softcap = _static_number(logit_softcap, "logit_softcap", fn, low=0, low_inclusive=False)
    n = math.prod(batch_shape)
    blocks = _blocks(fn, block_size, vocab_block_size, n, v, axis_name)

    out_dtype = jnp.promote_types(x.dtype, k.dtype)
    if n == 0:
        empty = jnp.zeros(batch_shape, out_dtype)
        return LinearSoftmaxStatistics(empty, None if y is None else empty, empty)
    x2 = x.reshape(n, x.shape[-1]).astype(out_dtype)
    k = k.astype(out_dtype)
    y2 = None if y is None else y.reshape(n)
    if blocks is None:
        a = _dense_scaled_logits(x2, k, b, inv_t, logit_softcap, precision)
        lse, ay, entropy = _dense_statistics(a, y2, v)
    else:
        cfg = _Config(
            n=n,
            v=v,
            tb=blocks[0],
            vb=blocks[1],
            mode="statistics",
            beta=0.0,
            inv_t=inv_t,
            softcap=logit_softcap,
            precision=precision,
            axis_name=axis_name,
            vma=_tiles.varying_axes(x2, k, b, y2),
        )
        lse, ay, entropy = _statistics(cfg, x2, k, b, y2)
    label_log_prob = None
    if y2 is not None:
        num_classes = v if axis_name is None else v * jax.lax.psum(1, axis_name)
        in_range = (y2 >= 0) & (y2 < num_classes)
        label_log_prob = jnp.where(in_range, ay - lse, jnp.nan).reshape(batch_shape).astype(out_dtype)
    return LinearSoftmaxStatistics(
        lse.reshape(batch_shape).astype(out_dtype),
        label_log_prob,
        entropy.reshape(batch_shape).astype(out_dtype),
    )
