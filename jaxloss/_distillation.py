"""Distillation between two linear heads, without either head's logits.

A declaration over the linear-head engine (``_linear_head``), the student as
head 0 (differentiated) and the teacher as head 1 (a fixed target):

* forward KL: ``KL(p_t || p_s) = E_{p_t}[b - a] - lse_t + lse_s`` (the
  teacher's softmax mean of ``b - a``, one pass);
* reverse KL: ``KL(p_s || p_t) = E_{p_s}[a - b] - lse_s + lse_t`` (one pass);
* generalised Jensen-Shannon: needs both normalisers before ``log M``, so it
  is an after-statistic (a second pass) with its own total derivative
  ``(1 - beta) p_s (log p_s - log M - KL(p_s || M))``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import _checks, _linear_head

__all__ = ["linear_distillation_loss"]

DIVERGENCES = ("forward_kl", "reverse_kl", "jsd")


def _teacher_minus_student(tile):
    return tile.logits[1] - tile.logits[0]


def _student_minus_teacher(tile):
    return tile.logits[0] - tile.logits[1]


class _JSDTerms(NamedTuple):
    """Per entry: ``beta p_t (lt - lM) + (1 - beta) p_s (ls - lM)`` and ``p_s (ls - lM)``."""

    beta: float

    def parts(self, tile):
        ls, lt = tile.log_prob(0), tile.log_prob(1)
        log_m = jnp.logaddexp(math.log(self.beta) + lt, math.log1p(-self.beta) + ls)
        return ls, log_m, jnp.exp(lt) * (lt - log_m), jnp.exp(ls) * (ls - log_m)

    def __call__(self, tile):
        _, _, ft, fs = self.parts(tile)
        return self.beta * ft + (1 - self.beta) * fs, fs


class _JSDGrad(NamedTuple):
    """``d JSD / d a = (1 - beta) p_s (ls - lM - S)`` with ``S = KL(p_s || M)`` (the auxiliary sum)."""

    beta: float

    def __call__(self, tile, sums):
        ls, log_m, _, _ = _JSDTerms(self.beta).parts(tile)
        return (1 - self.beta) * jnp.exp(ls) * (ls - log_m - sums[1][:, None])


_TEACHER_LSE = _linear_head.Stat("lse", head=1)


def _declaration(divergence, beta):
    """The statistics of one divergence and the formula that turns them into the loss."""
    if divergence == "forward_kl":
        stats = (_linear_head.LOGSUMEXP, _TEACHER_LSE, _linear_head.Stat("mean", 1, _teacher_minus_student))
        return stats, lambda lse_s, lse_t, mean: mean - lse_t + lse_s
    if divergence == "reverse_kl":
        stats = (_linear_head.LOGSUMEXP, _TEACHER_LSE, _linear_head.Stat("mean", 0, _student_minus_teacher))
        return stats, lambda lse_s, lse_t, mean: mean - lse_s + lse_t
    jsd = _linear_head.Stat("after", term=_JSDTerms(beta), grad=_JSDGrad(beta))
    return (_linear_head.LOGSUMEXP, _TEACHER_LSE, jsd), lambda lse_s, lse_t, value: value


def linear_distillation_loss(
    student_inputs: jax.typing.ArrayLike,
    student_kernel: jax.typing.ArrayLike,
    teacher_inputs: jax.typing.ArrayLike,
    teacher_kernel: jax.typing.ArrayLike,
    *,
    divergence: str = "forward_kl",
    beta: float = 0.5,
    temperature: float = 1.0,
    logit_softcap: float | None = None,
    student_bias: jax.typing.ArrayLike | None = None,
    teacher_bias: jax.typing.ArrayLike | None = None,
    where: jax.typing.ArrayLike | None = None,
    block_size: int | None = None,
    vocab_block_size: int | None = None,
    precision=jax.lax.Precision.HIGHEST,
    axis_name=None,
) -> jax.Array:
    r"""Per-token divergence between a teacher's and a student's softmax head, without the logits.

    With ``p_s = softmax(softcap(x_s W_s + b_s) / T)`` (student) and
    ``p_t = softmax(softcap(x_t W_t + b_t) / T)`` (teacher) over the same
    ``V`` classes (``softcap(z) = c tanh(z / c)``, Gemma 2's logit
    soft-capping, applied to both heads; the identity when ``logit_softcap``
    is None), per token:

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

    **Memory.** Unless both block sizes are None and ``N V <= 2^22`` on one
    device (a dense computation), a ``jax.custom_vjp`` scans
    ``block_size x vocab_block_size`` tiles (``tb x vb``) of both heads'
    logits with online statistics: per token a running maximum and sum of
    exponentials per head and one softmax-weighted sum (the forward and
    reverse KL need one pass over the vocabulary; the JSD needs both
    normalisers before ``log M`` and makes two). The backward pass
    recomputes each tile of both heads and accumulates the student's
    gradients in float32. The temporaries of the value and gradient are a
    few ``tb x vb`` float32 tiles (both heads' logits and the student's
    logit gradient), the GEMM operands, a float32 ``(N, D_s)``
    input-gradient accumulator and ``O(N)`` per-token statistics, never
    ``O(N V)``. Block sizes follow the library's ``HEADS`` policy as in
    ``linear_softmax_cross_entropy``, except the JSD's default on a CPU for
    ``V <= 2^15``: the whole vocabulary as one block and ``2^22 / V`` tokens
    per block (a multiple of 64, at least 128), so that both passes use each
    tile's logits once (1.2x the dense time instead of 1.4x at N = 2048,
    D = 512, V = 32000, with AVX-512 and with AVX2 only). Half precision as
    in ``linear_softmax_cross_entropy``.

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
      logit_softcap: ``c > 0`` or None, applied to both heads' logits
        before the temperature.
      student_bias: optional ``(V,)`` bias ``b_s``.
      teacher_bias: optional ``(V,)`` bias ``b_t``.
      where: optional ``(...)`` bool; ``False`` tokens give 0 and no
        gradient, whatever their inputs hold.
      block_size: tokens per block (None: the block policy).
      vocab_block_size: classes per block (None: the block policy).
      precision: ``jax.lax.Precision`` of the GEMMs (``HIGHEST`` by default).
      axis_name: the ``shard_map`` axis that splits the vocabulary, or None.

    Returns:
      ``(...)`` per-token divergences in the student's dtype.

    Edge cases: a head distilled from itself gives 0; with ``beta`` 0 or 1
    the JSD is 0. A NaN in either kernel gives NaN. Forward-mode
    differentiation as in ``linear_softmax_cross_entropy``.

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
      (LigerFusedLinearJSD); Gemma Team, "Gemma 2", 2024 (logit soft-capping).

    Dense reference: ``kl_divergence`` / ``log_softmax`` of the float64 logits
    """
    fn = "linear_distillation_loss"
    xs, ks = _linear_head.check_head(fn, student_inputs, student_kernel, "student_inputs", "student_kernel")
    xt, kt = _linear_head.check_head(fn, teacher_inputs, teacher_kernel, "teacher_inputs", "teacher_kernel")
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
    bs = _linear_head.check_bias(fn, student_bias, "student_bias", v)
    bt = _linear_head.check_bias(fn, teacher_bias, "teacher_bias", v)
    if not isinstance(divergence, str):
        raise TypeError(f"{fn}: `divergence` must be a string, one of {DIVERGENCES}; got {divergence!r}.")
    _checks.check_option(divergence, "divergence", DIVERGENCES, fn)
    beta = _linear_head.static_number(beta, "beta", fn, low=0, high=1)
    batch_shape = xs.shape[:-1]
    mask = _linear_head.check_where(fn, where, batch_shape)
    n = math.prod(batch_shape)
    config = _linear_head.make_config(
        fn,
        n,
        v,
        block_size=block_size,
        vocab_block_size=vocab_block_size,
        softcap=logit_softcap,
        temperature=temperature,
        precision=precision,
        axis_name=axis_name,
        two_pass=divergence == "jsd",
    )

    out_dtype = jnp.promote_types(xs.dtype, ks.dtype)
    if n == 0:
        return jnp.zeros(batch_shape, out_dtype)
    if divergence == "jsd" and beta in (0.0, 1.0):  # M is one of the two: the divergence is 0
        return jnp.zeros(batch_shape, out_dtype)
    t_dtype = jnp.promote_types(xt.dtype, kt.dtype)
    xs2 = xs.reshape(n, xs.shape[-1]).astype(out_dtype)
    ks = ks.astype(out_dtype)
    teacher = jax.lax.stop_gradient((xt.reshape(n, xt.shape[-1]).astype(t_dtype), kt.astype(t_dtype), bt))
    stats, formula = _declaration(divergence, beta)
    values = _linear_head.statistics(
        stats,
        xs2,
        ks,
        bs,
        config=config,
        other=teacher,
        where=None if mask is None else mask.reshape(n),
    )
    loss = formula(*values)
    if mask is not None:
        loss = jnp.where(mask.reshape(n), loss, 0)
    return loss.reshape(batch_shape).astype(out_dtype)
