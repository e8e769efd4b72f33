"""Softmax cross-entropy of a linear layer's output that never holds the logits.

A declaration over the linear-head engine (``_linear_head``): the per-token
statistics are the logsumexp, the label's logit, the label's class weight and
the class-weighted sum of the logits (label smoothing); the loss is plain JAX
on them, so the engine's one backward pass differentiates every option
(traced ``label_smoothing`` and ``z_loss`` included).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from . import _checks, _linear_head

__all__ = ["linear_softmax_cross_entropy"]


def _label_weight(tile):
    """``w_y``: the class weight of the label (a term of the class weights only)."""
    return jnp.where(tile.hit, tile.classes[0][None, :], 0)


def _weighted_logits(tile):
    """``w_c a_c``, summed: label smoothing's ``sum_c w_c z_c``."""
    return tile.logits[0] * tile.classes[0][None, :]


def _logits(tile):
    return tile.logits[0]


_LABEL_WEIGHT = _linear_head.Stat("sum", term=_label_weight)
_WEIGHTED_SUM = _linear_head.Stat("sum", term=_weighted_logits)
_SUM = _linear_head.Stat("sum", term=_logits)


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
    where: jax.typing.ArrayLike | None = None,
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
    where ``labels == ignore_index`` or ``where`` is False. Without ``z_loss``
    and ``logit_softcap`` it equals
    ``softmax_cross_entropy_with_integer_labels(inputs @ kernel + bias, labels,
    label_smoothing=, weights=, ignore_index=)``, values and gradients.

    **Memory.** Unless both block sizes are None and ``N V <= 2^22`` on one
    device (then the dense logits are formed: the fastest path where they
    fit), a ``jax.custom_vjp`` scans token blocks (``block_size``, ``tb``)
    and vocabulary blocks (``vocab_block_size``, ``vb``) with an online
    logsumexp. The forward pass saves only its inputs and a few per-token
    statistics; the backward pass recomputes each tile of logits and
    accumulates the gradients of ``inputs`` (per token) and of ``kernel``,
    ``bias`` and ``weights`` (per vocabulary block) in float32. The
    temporaries of the value and gradient are about two ``tb x vb`` float32
    tiles (the logits and their gradient) and the ``(tb, D)``, ``(D, vb)``
    GEMM operands, plus a float32 ``(N, D)`` input-gradient accumulator and
    ``O(N)`` per-token statistics, never ``O(N V)``: 72 MiB at
    ``N = 8192, D = 1024, V = 131072`` with the default CPU blocks, where
    the logits alone are 4 GiB. The price is one more GEMM: value and
    gradient cost four ``N x D x V`` products instead of three.

    **Block sizes.** ``None`` follows the library's block policy
    (``HEADS``): dense up to ``2^22`` logits on one device; otherwise
    ``(1024, 4096)`` on CPU (the value and gradient ran fastest near this
    size with AVX-512 and with AVX2 only, larger tiles only cost cache) and
    ``(2048, 8192)`` on GPU/TPU (so that each GEMM is large enough to fill
    the device). Both are clipped to ``N`` and ``V``; an axis of one block is
    a plain call, not a loop. Ragged shapes are not padded: the last block is
    pulled back to end at the edge and its already-covered rows/columns are
    masked.

    **Half precision.** bfloat16/float16 ``inputs`` and ``kernel`` run the
    GEMMs in their dtype with float32 accumulation
    (``preferred_element_type``); the logsumexp and every accumulator are
    float32; the losses and gradients come back in the input dtype.

    **Vocabulary-parallel.** With ``axis_name``, call it inside
    ``jax.shard_map`` with ``kernel`` (and ``bias``, ``weights``) split over
    their vocabulary axis along ``axis_name`` and ``inputs``/``labels``
    replicated, ``labels`` holding global class ids. Each device scans its
    own shard (always tiled); the maximum, the sum of exponentials and the
    target logit are combined with ``pmax``/``psum``, and the losses
    (replicated) and the gradients (``inputs``: replicated; ``kernel``,
    ``bias``, ``weights``: each device's shard) equal the single-device ones.

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
      where: optional ``(...)`` bool; ``False`` tokens give 0 and no
        gradient, whatever their inputs and labels hold.
      block_size: tokens per block (None: the block policy).
      vocab_block_size: classes per block (None: the block policy).
      precision: ``jax.lax.Precision`` of the GEMMs; ``HIGHEST`` (the
        default) keeps float32 products exact on GPUs that would use TF32.
      axis_name: the ``shard_map`` axis that splits the vocabulary, or None.

    Returns:
      ``(...)`` per-token losses in the input dtype.

    Edge cases: an ignored or masked token gives 0 with a 0 gradient; when
    every token is ignored the loss and every gradient are 0. A label outside
    ``[0, V)`` that is neither ``ignore_index`` nor masked raises a
    ``ValueError`` naming ``labels`` when the labels are concrete, and gives
    NaN when they are traced (PyTorch raises). A NaN in ``kernel`` gives NaN.
    The tiled path is a custom VJP: ``jax.grad`` as usual; ``jax.jvp`` /
    ``jax.jacfwd`` called on this function differentiate its tiled forward
    sweep in forward mode instead (through an enclosing ``jit`` traced
    first, JAX refuses forward mode: use the dense path, block sizes None
    under the budget, there).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
      >>> kernel = jnp.array([[1.0, -1.0, 0.0], [0.0, 2.0, 1.0]])
      >>> labels = jnp.array([0, 1, 2])
      >>> linear_softmax_cross_entropy(x, kernel, labels).round(4)
      Array([0.4076, 0.4076, 1.0986], dtype=float32)
      >>> dense = jax.nn.logsumexp(x @ kernel, axis=-1) - (x @ kernel)[jnp.arange(3), labels]
      >>> tiled = linear_softmax_cross_entropy(x, kernel, labels, block_size=2, vocab_block_size=2)
      >>> bool(jnp.allclose(dense, tiled))
      True

    References:
      Wijmans et al., "Cut Your Losses in Large-Vocabulary Language Models"
      (Cut Cross-Entropy), 2024; Hsu et al., "Liger Kernel", 2024
      (FusedLinearCrossEntropy); Gemma Team, "Gemma 2", 2024 (logit
      soft-capping); Chowdhery et al., "PaLM", 2022 (z-loss).

    PyTorch: torch.nn.functional.linear_cross_entropy
    """
    fn = "linear_softmax_cross_entropy"
    x, k = _linear_head.check_head(fn, inputs, kernel)
    batch_shape = x.shape[:-1]
    y = _linear_head.check_labels(fn, labels, batch_shape)
    v = k.shape[1]
    b = _linear_head.check_bias(fn, bias, "bias", v)
    w = _linear_head.check_bias(fn, weights, "weights", v)
    mask = _linear_head.check_where(fn, where, batch_shape)
    _checks.check_number(label_smoothing, "label_smoothing", fn, low=0, high=1)
    _checks.check_number(z_loss, "z_loss", fn, low=0)
    if logit_softcap is not None and _checks.is_traced(logit_softcap):
        raise TypeError(f"{fn}: `logit_softcap` must be a Python number or None, not a traced value.")
    ignore_index = _linear_head.check_ignore_index(fn, ignore_index)
    n = math.prod(batch_shape)
    config = _linear_head.make_config(
        fn,
        n,
        v,
        block_size=block_size,
        vocab_block_size=vocab_block_size,
        softcap=logit_softcap,
        precision=precision,
        axis_name=axis_name,
    )
    if axis_name is None:
        _linear_head.check_label_range(fn, y, v, ignore_index=ignore_index, where=mask)

    out_dtype = jnp.promote_types(x.dtype, k.dtype)
    if n == 0:
        return jnp.zeros(batch_shape, out_dtype)
    acc = jnp.promote_types(out_dtype, jnp.float32)
    # GEMMs in the common input dtype (bf16 x bf16 -> f32 accumulation)
    x2 = x.reshape(n, x.shape[-1]).astype(out_dtype)
    k = k.astype(out_dtype)
    y2 = y.reshape(n)
    rows = _linear_head.row_mask(None if mask is None else mask.reshape(n), y2, ignore_index)

    smoothing = _checks.is_traced(label_smoothing) or float(label_smoothing) != 0.0
    stats = [_linear_head.LOGSUMEXP, _linear_head.LABEL_LOGIT]
    if w is not None:
        stats.append(_LABEL_WEIGHT)
    if smoothing:
        stats.append(_SUM if w is None else _WEIGHTED_SUM)
    values = _linear_head.statistics(
        tuple(stats), x2, k, b, config=config, labels=y2, where=rows, classes=() if w is None else (w,)
    )
    lse, zy = values[0], values[1]
    wy = values[2] if w is not None else 1.0

    classes = _linear_head.num_classes(v, axis_name)
    loss = wy * (lse - zy)
    if smoothing:
        if w is None:
            w_sum = classes
        else:
            w_sum = jnp.sum(w.astype(acc))
            if axis_name is not None:
                w_sum = jax.lax.psum(w_sum, axis_name)
        ls = jnp.asarray(label_smoothing, acc)
        loss = (1 - ls) * loss + ls / classes * (w_sum * lse - values[-1])
    if _checks.is_traced(z_loss) or float(z_loss) != 0.0:
        loss = loss + jnp.asarray(z_loss, acc) * jnp.square(lse)
    loss = jnp.where((y2 >= 0) & (y2 < classes), loss, jnp.nan)
    if rows is not None:
        loss = jnp.where(rows, loss, 0)
    return loss.reshape(batch_shape).astype(out_dtype)
