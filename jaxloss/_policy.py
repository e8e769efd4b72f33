r"""Policy-gradient losses on per-token log-probabilities: GRPO and its normalisations (DAPO, BNPO,
Dr. GRPO) with token- or sequence-level (GSPO) importance sampling.

``grpo_loss`` is the formula; the fused LM-head loss computes the per-token
log-probabilities through the head without the logits and applies it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks, _numerics

__all__ = ["GRPO_LOSS_TYPES", "IMPORTANCE_SAMPLING_LEVELS", "grpo_loss"]

GRPO_LOSS_TYPES = ("dapo", "grpo", "bnpo", "dr_grpo")
IMPORTANCE_SAMPLING_LEVELS = ("token", "sequence")


def _clamp(x, low, high):
    """``clip(x, low, high)`` whose gradient is 1 on the closed interval (``torch.clamp``)."""
    return jnp.where(x < low, low, jnp.where(x > high, high, x))


def grpo_loss(
    log_probs: ArrayLike,
    completion_mask: ArrayLike,
    advantages: ArrayLike,
    *,
    old_log_probs: ArrayLike | None = None,
    ref_log_probs: ArrayLike | None = None,
    beta: float = 0.04,
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    loss_type: str = "dapo",
    importance_sampling_level: str = "token",
    max_completion_length: int | None = None,
) -> jax.Array:
    r"""Group relative policy optimisation's clipped surrogate with a KL penalty, over a batch.

    For completion $i$ and token $t$ with log-probabilities $\ell_{it}$
    (policy), $\ell^{old}_{it}$ (the policy that sampled the completions)
    and $\ell^{ref}_{it}$ (the reference model), the advantage $A_i$ and
    the mask $m_{it}$:

    $$
    \rho_{it} = \begin{cases}
      e^{\ell_{it} - \ell^{old}_{it}} & \text{token level (GRPO)} \\
      \exp\left(\frac{\sum_t m_{it}(\ell_{it} - \ell^{old}_{it})}{\max(1, \sum_t m_{it})}\right)
      & \text{sequence level (GSPO)}
    \end{cases}
    $$

    $$
    L_{it} = -\min\left(\rho_{it} A_i,\
      \mathrm{clip}(\rho_{it}, 1 - \epsilon_{low}, 1 + \epsilon_{high}) A_i\right)
      + \beta \left(e^{\ell^{ref}_{it} - \ell_{it}} - (\ell^{ref}_{it} - \ell_{it}) - 1\right),
    $$

    the KL penalty being Schulman's ``k3`` estimator of
    $\mathrm{KL}(\pi \| \pi_{ref})$. The batch's loss normalises
    $S = \sum_{i,t} m_{it} L_{it}$ by ``loss_type``:

    * ``"grpo"``: the mean over completions of each completion's token mean,
      $\frac1B\sum_i \frac{\sum_t m_{it}L_{it}}{\max(1, \sum_t m_{it})}$;
    * ``"bnpo"`` and ``"dapo"``: the token mean over the batch,
      $S / \max(1, \sum_{i,t} m_{it})$;
    * ``"dr_grpo"``: $S / (B L_{max})$, $L_{max}$ = ``max_completion_length``.

    Without ``old_log_probs`` the sampling policy is the current one, held
    constant ($\ell^{old} = $ ``stop_gradient``$(\ell)$: $\rho = 1$ with the
    policy gradient $A_i \nabla\ell_{it}$). Without ``ref_log_probs`` (or
    with ``beta`` 0) there is no KL term.

    **Liger and TRL.** The value and gradients are those of Liger-Kernel
    0.8.5's ``LigerFusedLinearGRPOFunction.ppo_loss_fn`` summed over its
    chunks (every normaliser is the whole batch's, never a chunk's) and of
    TRL's ``GRPOTrainer`` on one process. ``"dapo"`` equals ``"bnpo"``
    here: Liger and TRL divide DAPO's sum by the number of completion tokens
    across all processes (and gradient-accumulation steps, TRL's
    ``num_items_in_batch``) divided by the number of processes; the
    normaliser here is the token count of the arrays given. Liger computes
    the log-probabilities in float32; here they keep their dtype.

    **Finite everywhere.** Masked tokens contribute 0 to the value and
    receive zero gradient whatever their log-probabilities (padding may hold
    anything); an empty batch or a completion without a token gives 0
    (Liger: ``"grpo"`` and ``"dr_grpo"`` of an empty batch are NaN). The
    clip passes the gradient on its closed interval, as ``torch.clamp``.

    Args:
      log_probs: ``(B, T)`` the policy's log-probability of each sampled
        completion token.
      completion_mask: ``(B, T)`` 1 (True) for completion tokens, 0 for
        padding; fractional values weight the tokens as in Liger.
      advantages: ``(B,)`` each completion's advantage (e.g. its reward
        standardised within its group).
      old_log_probs: optional ``(B, T)`` log-probabilities under the
        sampling policy (no gradient is taken through them in practice).
      ref_log_probs: optional ``(B, T)`` log-probabilities under the
        reference model.
      beta: $\beta \ge 0$, the weight of the KL penalty.
      epsilon_low: $\epsilon_{low} \ge 0$, the clip's lower margin.
      epsilon_high: $\epsilon_{high} \ge 0$, the clip's upper margin (DAPO's
        clip-higher uses e.g. 0.28).
      loss_type: ``"dapo"``, ``"grpo"``, ``"bnpo"`` or ``"dr_grpo"``.
      importance_sampling_level: ``"token"`` (GRPO) or ``"sequence"``
        (GSPO: one ratio per completion, the exponential of its mean
        token log-ratio).
      max_completion_length: the constant of ``"dr_grpo"`` (a positive
        int, required there).

    Returns:
      A scalar in the dtype of ``log_probs`` (half precision is computed in
      float32).

    Examples:
      >>> import jax.numpy as jnp
      >>> log_probs = jnp.array([[-1.0, -2.0, -0.5], [-0.3, -0.7, 0.0]])
      >>> mask = jnp.array([[1, 1, 1], [1, 1, 0]])
      >>> advantages = jnp.array([1.0, -1.0])
      >>> grpo_loss(log_probs, mask, advantages)  # on-policy, no KL: -mean_t A
      Array(-0.2, dtype=float32)
      >>> grpo_loss(log_probs, mask, advantages, ref_log_probs=log_probs - 0.1,
      ...           loss_type="grpo")
      Array(0.0002, dtype=float32)

    References:
      Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical
      Reasoning in Open Language Models" (GRPO), 2024; Yu et al., "DAPO: An
      Open-Source LLM Reinforcement Learning System at Scale", 2025; Liu et
      al., "Understanding R1-Zero-Like Training: A Critical Perspective"
      (Dr. GRPO), 2025; Zheng et al., "Group Sequence Policy Optimization"
      (GSPO), 2025; Schulman, "Approximating KL Divergence" (k3), 2020.

    Liger-Kernel 0.8.5: LigerFusedLinearGRPOFunction.ppo_loss_fn (TRL: GRPOTrainer._compute_loss)
    """
    fn = "grpo_loss"
    _checks.check_option(loss_type, "loss_type", GRPO_LOSS_TYPES, fn)
    _checks.check_option(
        importance_sampling_level, "importance_sampling_level", IMPORTANCE_SAMPLING_LEVELS, fn
    )
    _checks.check_number(beta, "beta", fn, low=0.0)
    _checks.check_number(epsilon_low, "epsilon_low", fn, low=0.0)
    _checks.check_number(epsilon_high, "epsilon_high", fn, low=0.0)
    if loss_type == "dr_grpo" and max_completion_length is None:
        raise ValueError(
            f"{fn}: loss_type='dr_grpo' divides by `max_completion_length`; got None. "
            "Pass the generation's maximum completion length."
        )
    max_completion_length = _checks.check_positive_int(max_completion_length, "max_completion_length", fn)
    _checks.check_floating(log_probs, "log_probs", fn)
    _checks.check_ndim(log_probs, "log_probs", fn, ndim=2)
    b = jnp.shape(log_probs)[0]
    _checks.check_same_shape(log_probs, completion_mask, ("log_probs", "completion_mask"), fn)
    if tuple(jnp.shape(advantages)) != (b,):
        raise ValueError(
            f"{fn}: `advantages` must have shape ({b},) (one per completion); "
            f"got {tuple(jnp.shape(advantages))}."
        )
    arrays = [log_probs, advantages]
    for name, extra in (("old_log_probs", old_log_probs), ("ref_log_probs", ref_log_probs)):
        if extra is not None:
            _checks.check_floating(extra, name, fn)
            _checks.check_same_shape(log_probs, extra, ("log_probs", name), fn)
            arrays.append(extra)
    converted = _numerics.as_float(*arrays)
    lp, adv, out_dtype = converted[0], converted[1], converted[-1]
    extras = iter(converted[2:-1])
    old = next(extras) if old_log_probs is not None else None
    ref = next(extras) if ref_log_probs is not None else None

    weights = jnp.asarray(completion_mask)
    valid = weights != 0
    weights = weights.astype(lp.dtype)
    lp = jnp.where(valid, lp, 0)  # padding may hold anything: no value, no gradient
    old = jax.lax.stop_gradient(lp) if old is None else jnp.where(valid, old, 0)
    log_ratio = lp - old
    if importance_sampling_level == "token":
        log_weight = log_ratio
    else:
        count = jnp.maximum(jnp.sum(weights, axis=-1, keepdims=True), 1)
        log_weight = jnp.sum(log_ratio * weights, axis=-1, keepdims=True) / count
    ratio = jnp.exp(log_weight)
    clipped = _clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    a = adv[:, None]
    per_token = -jnp.minimum(ratio * a, clipped * a)
    if ref is not None and not _is_zero(beta):
        ref = jnp.where(valid, ref, 0)
        delta = ref - lp
        per_token = per_token + beta * (jnp.exp(delta) - delta - 1)
    per_token = jnp.broadcast_to(per_token, lp.shape) * weights
    if loss_type == "grpo":
        per_sequence = jnp.sum(per_token, axis=-1) / jnp.maximum(jnp.sum(weights, axis=-1), 1)
        loss = jnp.sum(per_sequence) / b if b else jnp.zeros((), lp.dtype)
    elif loss_type == "dr_grpo":
        loss = jnp.sum(per_token) / (b * max_completion_length) if b else jnp.zeros((), lp.dtype)
    else:  # bnpo, dapo
        loss = jnp.sum(per_token) / jnp.maximum(jnp.sum(weights), 1)
    return loss.astype(out_dtype)


def _is_zero(value) -> bool:
    return not _checks.is_traced(value) and jnp.ndim(value) == 0 and float(value) == 0.0
