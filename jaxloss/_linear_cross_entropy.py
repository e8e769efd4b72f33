"""Softmax cross-entropy of a linear layer's output that never holds the logits.

A language model's output layer maps ``N`` tokens of width ``D`` to ``V``
classes; the dense loss ``softmax_cross_entropy_with_integer_labels(x @ W + b, y)``
holds the ``N x V`` logits and again their gradient. Here the logits are
visited one ``block_size x vocab_block_size`` tile at a time:

* the forward pass keeps, per token, an online logsumexp ``(m, s)`` and the
  few sums the options need (target logit, target weight, weighted logit
  sum), and saves only its inputs and those per-token statistics;
* the backward pass recomputes each tile with the same code and the same
  block boundaries, forms ``dL/dz`` for it and accumulates ``dInputs`` (per
  token) and ``dKernel``/``dBias`` (per vocabulary block) in float32.

The label of a token is never gathered: a tile compares a vocabulary ``iota``
with the labels. Ragged shapes are not padded (which would copy the kernel):
the last block starts at ``V - vocab_block_size`` (``N - block_size``) and the
entries that an earlier block already covered are masked out.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _block_policy, _checks, _tiles

__all__ = ["linear_softmax_cross_entropy"]


class _Config(NamedTuple):
    n: int  # tokens
    v: int  # vocabulary entries on this device
    tb: int  # token block
    vb: int  # vocabulary block
    softcap: float | None
    weights: bool
    smoothing: bool
    precision: object
    axis_name: object
    vma: tuple  # inside shard_map: the mesh axes over which the operands vary


def _acc_dtype(dtype):
    return jnp.promote_types(dtype, jnp.float32)


def _offset(cfg):
    """The global id of this device's first vocabulary entry."""
    if cfg.axis_name is None:
        return 0
    return jax.lax.axis_index(cfg.axis_name) * cfg.v


def _tile_logits(cfg, xb, kb, bb):
    """The logits ``softcap(xb @ kb + bb)`` of one tile, in the accumulator dtype.

    The forward and the backward pass both call this on the same blocks, so
    the backward recomputes exactly the forward's numbers.
    """
    acc = _acc_dtype(xb.dtype)
    a = jax.lax.dot_general(
        xb, kb, (((1,), (0,)), ((), ())), precision=cfg.precision, preferred_element_type=acc
    )
    if bb is not None:
        a = a + bb.astype(acc)[None, :]
    if cfg.softcap is not None:
        a = cfg.softcap * jnp.tanh(a / cfg.softcap)
    return a


def _vocab_block(cfg, j, kernel, bias, weights):
    start = _tiles.block_start(j, cfg.vb, cfg.v)
    kb = jax.lax.dynamic_slice_in_dim(kernel, start, cfg.vb, axis=1)
    bb = None if bias is None else jax.lax.dynamic_slice_in_dim(bias, start, cfg.vb)
    wb = None if weights is None else jax.lax.dynamic_slice_in_dim(weights, start, cfg.vb)
    cols = start + jnp.arange(cfg.vb)
    col_valid = _tiles.block_valid(j, cfg.vb, cfg.v)
    return start, kb, bb, wb, cols, col_valid


def _token_block(cfg, i, *arrays):
    start = _tiles.block_start(i, cfg.tb, cfg.n)
    row_valid = _tiles.block_valid(i, cfg.tb, cfg.n)
    return start, row_valid, [jax.lax.dynamic_slice_in_dim(a, start, cfg.tb) for a in arrays]


# --------------------------------------------------------------------------- forward


def _forward_stats(cfg, x, kernel, bias, weights, labels):
    """Per-token ``(lse, target logit, target weight, sum_c w_c z_c)`` over the full vocabulary."""
    acc = _acc_dtype(x.dtype)
    nvb = _tiles.num_blocks(cfg.v, cfg.vb)
    ntb = _tiles.num_blocks(cfg.n, cfg.tb)
    offset = _offset(cfg)

    def token_step(i, out):
        start, _, (xb, yb) = _token_block(cfg, i, x, labels)

        def vocab_step(j, state):
            lse_state, zy, wy, szw = state
            _, kb, bb, wb, cols, col_valid = _vocab_block(cfg, j, kernel, bias, weights)
            z = _tile_logits(cfg, xb, kb, bb)
            lse_state = _tiles.update_logsumexp(lse_state, jnp.where(col_valid[None, :], z, -jnp.inf))
            hit = (cols[None, :] + offset == yb[:, None]) & col_valid[None, :]
            zy = zy + jnp.sum(jnp.where(hit, z, 0), axis=1)
            if cfg.weights:
                w = wb.astype(acc)
                wy = wy + jnp.sum(jnp.where(hit, w[None, :], 0), axis=1)
            if cfg.smoothing:
                zw = z if wb is None else z * wb.astype(acc)[None, :]
                szw = szw + jnp.sum(jnp.where(col_valid[None, :], zw, 0), axis=1)
            return lse_state, zy, wy, szw

        zeros = _tiles.make_varying(jnp.zeros((cfg.tb,), acc), cfg.vma)
        m0, s0 = _tiles.init_logsumexp((cfg.tb,), acc)
        init = ((_tiles.make_varying(m0, cfg.vma), _tiles.make_varying(s0, cfg.vma)), zeros, zeros, zeros)
        (m, s), zy, wy, szw = jax.lax.fori_loop(0, nvb, vocab_step, init)
        # rows of the last (overlapping) token block are recomputed identically: plain overwrite
        return tuple(
            jax.lax.dynamic_update_slice_in_dim(o, b, start, axis=0)
            for o, b in zip(out, (m, s, zy, wy, szw), strict=True)
        )

    out0 = tuple(_tiles.make_varying(jnp.zeros((cfg.n,), acc), cfg.vma) for _ in range(5))
    m, s, zy, wy, szw = jax.lax.fori_loop(0, ntb, token_step, out0)
    if cfg.axis_name is not None:
        m, s = _tiles.psum_logsumexp((m, s), cfg.axis_name)
        zy, wy, szw = (jax.lax.psum(a, cfg.axis_name) for a in (zy, wy, szw))
    lse = _tiles.finalize_logsumexp((m, s))
    return lse, zy, wy, szw


# --------------------------------------------------------------------------- custom VJP


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _stats(cfg, x, kernel, bias, weights, labels):
    return _forward_stats(cfg, x, kernel, bias, weights, labels)


def _stats_fwd(cfg, x, kernel, bias, weights, labels):
    out = _forward_stats(cfg, x, kernel, bias, weights, labels)
    return out, (x, kernel, bias, weights, labels, out[0])


def _stats_bwd(cfg, residuals, cotangents):
    x, kernel, bias, weights, labels, lse = residuals
    g_lse, g_zy, g_wy, g_szw = cotangents
    acc = _acc_dtype(x.dtype)
    nvb = _tiles.num_blocks(cfg.v, cfg.vb)
    ntb = _tiles.num_blocks(cfg.n, cfg.tb)
    offset = _offset(cfg)
    g_lse, g_zy, g_wy, g_szw = (jnp.asarray(g, acc) for g in (g_lse, g_zy, g_wy, g_szw))

    def vocab_step(j, carry):
        dx, dk, db, dw = carry
        vstart, kb, bb, wb, cols, col_valid = _vocab_block(cfg, j, kernel, bias, weights)

        def token_step(i, inner):
            dx, dkb, dbb, dwb = inner
            start, row_valid, (xb, yb, lse_b, gl, gz, gwy, gs) = _token_block(
                cfg, i, x, labels, lse, g_lse, g_zy, g_wy, g_szw
            )
            z = _tile_logits(cfg, xb, kb, bb)
            hit = cols[None, :] + offset == yb[:, None]
            valid = row_valid[:, None] & col_valid[None, :]
            # p = exp(z - lse); a row whose lse is -inf cannot occur (every row sees V >= 1 logits)
            dz = gl[:, None] * jnp.exp(z - lse_b[:, None]) + jnp.where(hit, gz[:, None], 0)
            if cfg.smoothing:
                w = 1 if wb is None else wb.astype(acc)[None, :]
                dz = dz + gs[:, None] * w
            dz = jnp.where(valid, dz, 0)
            if cfg.weights:
                dw_tile = jnp.where(hit, gwy[:, None], 0)
                if cfg.smoothing:
                    dw_tile = dw_tile + gs[:, None] * z
                dwb = dwb + jnp.sum(jnp.where(valid, dw_tile, 0), axis=0)
            if cfg.softcap is not None:
                dz = dz * (1 - jnp.square(z / cfg.softcap))
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
            return dx, dkb, dbb, dwb

        d = x.shape[1]
        zeros_v = _tiles.make_varying(jnp.zeros((cfg.vb,), acc), cfg.vma)
        inner0 = (dx, _tiles.make_varying(jnp.zeros((d, cfg.vb), acc), cfg.vma), zeros_v, zeros_v)
        dx, dkb, dbb, dwb = jax.lax.fori_loop(0, ntb, token_step, inner0)
        # columns before j * vb were masked to 0 here: adding keeps the previous block's values
        dk = jax.lax.dynamic_update_slice_in_dim(
            dk,
            (jax.lax.dynamic_slice_in_dim(dk, vstart, cfg.vb, axis=1).astype(acc) + dkb).astype(dk.dtype),
            vstart,
            axis=1,
        )
        if bias is not None:
            db = jax.lax.dynamic_update_slice_in_dim(
                db, jax.lax.dynamic_slice_in_dim(db, vstart, cfg.vb) + dbb, vstart, axis=0
            )
        if weights is not None:
            dw = jax.lax.dynamic_update_slice_in_dim(
                dw, jax.lax.dynamic_slice_in_dim(dw, vstart, cfg.vb) + dwb, vstart, axis=0
            )
        return dx, dk, db, dw

    dx0 = _tiles.make_varying(jnp.zeros(x.shape, acc), cfg.vma)
    dk0 = _tiles.make_varying(jnp.zeros(kernel.shape, kernel.dtype), cfg.vma)
    db0 = _tiles.make_varying(jnp.zeros((cfg.v,), acc), cfg.vma)
    dw0 = _tiles.make_varying(jnp.zeros((cfg.v,), acc), cfg.vma)
    dx, dk, db, dw = jax.lax.fori_loop(0, nvb, vocab_step, (dx0, dk0, db0, dw0))
    if cfg.axis_name is not None:
        dx = jax.lax.psum(dx, cfg.axis_name)
    return (
        dx.astype(x.dtype),
        dk,
        None if bias is None else db.astype(bias.dtype),
        None if weights is None else dw.astype(weights.dtype),
        None,
    )


_stats.defvjp(_stats_fwd, _stats_bwd)


# --------------------------------------------------------------------------- public function


def linear_softmax_cross_entropy(
    inputs: jax.typing.ArrayLike,
    kernel: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    bias: jax.typing.ArrayLike | None = None,
    label_smoothing: float = 0.0,
    weights: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = None,
    z_loss: float = 0.0,
    logit_softcap: float | None = None,
    block_size: int | None = None,
    vocab_block_size: int | None = None,
    precision=jax.lax.Precision.HIGHEST,
    axis_name=None,
) -> jax.Array:
    r"""Per-token softmax cross-entropy of ``inputs @ kernel + bias``, without the logits.

    With ``z = softcap(inputs @ kernel + bias)``, ``softcap(a) = c tanh(a / c)``
    (Gemma 2's logit soft-capping; the identity when ``logit_softcap`` is
    None), ``lse = logsumexp(z)`` and ``V`` classes:

    .. math::

        \ell = (1 - \alpha)\, w_y (\mathrm{lse} - z_y)
             + \frac{\alpha}{V} \sum_c w_c (\mathrm{lse} - z_c)
             + \lambda\, \mathrm{lse}^2

    with ``alpha = label_smoothing``, ``w = weights`` (1 when None) and
    ``lambda = z_loss`` (PaLM's auxiliary loss), and ``0`` (with a 0 gradient)
    where ``labels == ignore_index``. Without ``z_loss`` and
    ``logit_softcap`` it equals
    ``softmax_cross_entropy_with_integer_labels(inputs @ kernel + bias, labels,
    label_smoothing=, weights=, ignore_index=)``, values and gradients.

    **Memory.** A ``jax.custom_vjp`` scans token blocks (``block_size``) and
    vocabulary blocks (``vocab_block_size``) with an online logsumexp. The
    forward pass saves only its inputs and the per-token logsumexp; the
    backward pass recomputes each tile of logits and accumulates the
    gradients of ``inputs`` (per token) and of ``kernel``, ``bias`` and
    ``weights`` (per vocabulary block) in float32. At most one tile of logits
    (and a few tile-sized temporaries) is alive at a time, so the temporary
    memory is ``O(block_size * vocab_block_size + N)`` instead of ``O(N V)``.
    The price is one more GEMM: value and gradient cost four ``N x D x V``
    products instead of three.

    **Block sizes.** ``None`` picks defaults for the default backend:
    ``(1024, 4096)`` on CPU (a 16 MiB float32 tile; on a CPU the value and
    gradient ran fastest with about this size, larger tiles only cost cache)
    and ``(2048, 8192)`` on GPU/TPU (a 64 MiB tile, so that each GEMM is large
    enough to fill the device). Both are clipped to ``N`` and ``V``. Ragged
    shapes are not padded: the last block is pulled back to end at the edge
    and its already-covered rows/columns are masked.

    **Half precision.** bfloat16/float16 ``inputs`` and ``kernel`` run the
    GEMMs in their dtype with float32 accumulation
    (``preferred_element_type``); the logsumexp and every accumulator are
    float32; the losses and gradients come back in the input dtype.

    **Vocabulary-parallel.** With ``axis_name``, call it inside
    ``jax.shard_map`` with ``kernel`` (and ``bias``, ``weights``) split over
    their vocabulary axis along ``axis_name`` and ``inputs``/``labels``
    replicated, ``labels`` holding global class ids. Each device scans its
    own shard; the maximum, the sum of exponentials and the target logit are
    combined with ``pmax``/``psum``, and the losses (replicated) and the
    gradients (``inputs``: replicated; ``kernel``, ``bias``, ``weights``: each
    device's shard) equal the single-device ones.

    Args:
      inputs: ``(..., D)`` floating activations.
      kernel: ``(D, V)`` weights (Flax ``nnx.Linear.kernel`` layout); with
        ``axis_name`` this device's ``(D, V / devices)`` shard.
      labels: ``(...)`` integer class ids in ``[0, V)`` (global ids).
      bias: optional ``(V,)`` bias (the device's shard with ``axis_name``).
      label_smoothing: ``alpha`` in ``[0, 1]``.
      weights: optional ``(V,)`` class weights ``w`` (PyTorch's ``weight``).
      ignore_index: a label value whose tokens give 0 (None: none).
      z_loss: ``lambda >= 0``, the weight of ``lse^2``.
      logit_softcap: ``c > 0`` or None.
      block_size: tokens per block (None: the backend's default).
      vocab_block_size: classes per block (None: the backend's default).
      precision: ``jax.lax.Precision`` of the GEMMs; ``HIGHEST`` (the
        default) keeps float32 products exact on GPUs that would use TF32.
      axis_name: the ``shard_map`` axis that splits the vocabulary, or None.

    Returns:
      ``(...)`` per-token losses in the input dtype.

    Edge cases: an ignored token gives 0 with a 0 gradient; when every token
    is ignored the loss and every gradient are 0. A label outside ``[0, V)``
    that is not ``ignore_index`` gives NaN (PyTorch raises). Reverse-mode
    differentiation only (a custom VJP: ``jax.grad``, not ``jax.jvp``), as
    PyTorch's chunked path.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> kernel = jnp.array([[1.0, -1.0, 0.0], [0.0, 2.0, 1.0]])
      >>> labels = jnp.array([0, 1, 2])
      >>> linear_softmax_cross_entropy(x, kernel, labels).round(4)
      Array([0.4076, 0.4076, 1.0986], dtype=float32)
      >>> dense = jax.nn.logsumexp(x @ kernel, axis=-1) - (x @ kernel)[jnp.arange(3), labels]
      >>> bool(jnp.allclose(dense, linear_softmax_cross_entropy(x, kernel, labels)))
      True

    References:
      Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models"
      (Cut Cross-Entropy), 2024; Hsu et al., "Liger Kernel", 2024
      (FusedLinearCrossEntropy); Gemma Team, "Gemma 2", 2024 (logit
      soft-capping); Chowdhery et al., "PaLM", 2022 (z-loss).

    PyTorch: torch.nn.functional.linear_cross_entropy
    """
    fn = "linear_softmax_cross_entropy"
    _checks.check_floating(inputs, "inputs", fn)
    _checks.check_floating(kernel, "kernel", fn)
    _checks.check_integer(labels, "labels", fn)
    x = jnp.asarray(inputs)
    k = jnp.asarray(kernel)
    y = jnp.asarray(labels)
    if x.ndim < 1:
        raise ValueError(f"{fn}: `inputs` must have shape (..., D); got shape {x.shape}.")
    d = x.shape[-1]
    if k.ndim != 2 or k.shape[0] != d:
        raise ValueError(
            f"{fn}: `kernel` must have shape (D, V) with D = inputs.shape[-1] = {d}; got shape {k.shape}."
        )
    v = k.shape[1]
    if v == 0:
        raise ValueError(f"{fn}: `kernel` must have at least one class (V >= 1); got shape {k.shape}.")
    if y.shape != x.shape[:-1]:
        raise ValueError(
            f"{fn}: `labels` must have the shape of `inputs` without its last axis, {x.shape[:-1]}; "
            f"got {y.shape}."
        )
    for name, arr in (("bias", bias), ("weights", weights)):
        if arr is not None:
            _checks.check_floating(arr, name, fn)
            if tuple(np.shape(arr)) != (v,):
                raise ValueError(
                    f"{fn}: `{name}` must have shape (V,) = ({v},), one entry per class of `kernel`; "
                    f"got {tuple(np.shape(arr))}."
                )
    _checks.check_number(label_smoothing, "label_smoothing", fn, low=0, high=1)
    _checks.check_number(z_loss, "z_loss", fn, low=0)
    if logit_softcap is not None:
        if _checks.is_traced(logit_softcap):
            raise TypeError(f"{fn}: `logit_softcap` must be a Python number or None, not a traced value.")
        _checks.check_number(logit_softcap, "logit_softcap", fn, low=0, low_inclusive=False)
        logit_softcap = float(logit_softcap)
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)
    vocab_block_size = _block_policy.check_block_size(vocab_block_size, "vocab_block_size", fn)
    if ignore_index is not None and not _checks.is_traced(ignore_index):
        if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"{fn}: `ignore_index` must be an int or None; got {ignore_index!r}.")

    batch_shape = x.shape[:-1]
    n = math.prod(batch_shape)
    out_dtype = jnp.promote_types(x.dtype, k.dtype)
    if n == 0:
        return jnp.zeros(batch_shape, out_dtype)
    x2 = x.reshape(n, d)
    y2 = y.reshape(n)
    # GEMMs in the common input dtype (bf16 x bf16 -> f32 accumulation)
    x2 = x2.astype(out_dtype)
    k = k.astype(out_dtype)
    acc = _acc_dtype(out_dtype)

    tb, vb = _block_policy.resolve_blocks(
        _block_policy.HEADS, n, v, block_size, vocab_block_size, dense=False
    )
    b = None if bias is None else jnp.asarray(bias)
    w = None if weights is None else jnp.asarray(weights)
    smoothing = _checks.is_traced(label_smoothing) or float(label_smoothing) != 0.0
    cfg = _Config(
        n=n,
        v=v,
        tb=tb,
        vb=vb,
        softcap=logit_softcap,
        weights=weights is not None,
        smoothing=smoothing,
        precision=precision,
        axis_name=axis_name,
        vma=_tiles.varying_axes(x2, k, b, w, y2),
    )
    lse, zy, wy, szw = _stats(cfg, x2, k, b, w, y2)

    num_classes = v if axis_name is None else v * jax.lax.psum(1, axis_name)
    if w is None:
        wy = 1.0
        w_sum = num_classes
    else:
        w_sum = jnp.sum(w.astype(acc))
        if axis_name is not None:
            w_sum = jax.lax.psum(w_sum, axis_name)
    loss = wy * (lse - zy)
    if smoothing:
        ls = jnp.asarray(label_smoothing, acc)
        loss = (1 - ls) * loss + ls / num_classes * (w_sum * lse - szw)
    if _checks.is_traced(z_loss) or float(z_loss) != 0.0:
        loss = loss + jnp.asarray(z_loss, acc) * jnp.square(lse)
    in_range = (y2 >= 0) & (y2 < num_classes)
    loss = jnp.where(in_range, loss, jnp.nan)
    if ignore_index is not None:
        loss = jnp.where(y2 == ignore_index, 0, loss)
    return loss.reshape(batch_shape).astype(out_dtype)
