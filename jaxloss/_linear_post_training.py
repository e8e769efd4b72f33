r"""Preference and policy losses on a linear LM head, without the logits.

Declarations over the linear-head engine (``_linear_head``): the per-token
log-probability of each label, ``log p_y = z_y - logsumexp(z)``, comes from the
engine's ``LOGSUMEXP`` and ``LABEL_LOGIT`` statistics (token x vocabulary
tiles, never the ``N x V`` logits, one tile-by-tile backward pass); the loss is
the one formula of the method on those log-probabilities
(``_preference.preference_objective``, ``_policy.grpo_loss``). A reference
model's head goes through the same engine under ``stop_gradient`` (a forward
sweep only).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from . import _checks, _linear_head, _policy, _preference

__all__ = ["linear_grpo_loss", "linear_preference_loss"]

_STATS = (_linear_head.LOGSUMEXP, _linear_head.LABEL_LOGIT)


def _token_log_probs(x, k, b, labels, rows, config, axis_name, *, mask_inputs=True):
    """``(N,)`` ``log p_y`` of the head ``x @ k + b`` (accumulator dtype; 0 on masked rows).

    ``mask_inputs=False`` (a head without gradient): the engine computes every row and the masked
    ones are dropped here, which saves the engine's per-tile zeroing of the masked rows.
    """
    where = rows if mask_inputs else None
    lse, label_logit = _linear_head.statistics(_STATS, x, k, b, config=config, labels=labels, where=where)
    in_range = (labels >= 0) & (labels < _linear_head.num_classes(k.shape[1], axis_name))
    log_prob = jnp.where(in_range, label_logit - lse, jnp.nan)
    if rows is not None:
        log_prob = jnp.where(rows, log_prob, 0)
    return log_prob


def _reference_head(fn, ref_inputs, ref_kernel, ref_bias, batch_shape, v):
    """Checks the reference model's head (all of inputs and kernel, or none); returns the arrays."""
    if ref_inputs is None and ref_kernel is None:
        if ref_bias is not None:
            raise ValueError(f"{fn}: `ref_bias` is given without `ref_inputs` and `ref_kernel`.")
        return None
    if ref_inputs is None or ref_kernel is None:
        missing = "ref_kernel" if ref_kernel is None else "ref_inputs"
        raise ValueError(
            f"{fn}: `{missing}` is None but the other half of the reference model's head is given; "
            "give both `ref_inputs` and `ref_kernel` (and optionally `ref_bias`) or neither."
        )
    rx, rk = _linear_head.check_head(fn, ref_inputs, ref_kernel, "ref_inputs", "ref_kernel")
    if rx.shape[:-1] != tuple(batch_shape):
        raise ValueError(
            f"{fn}: `ref_inputs` must have shape {tuple(batch_shape)} + (D_ref,), the tokens of `inputs`; "
            f"got {rx.shape}."
        )
    if rk.shape[1] != v:
        raise ValueError(
            f"{fn}: `ref_kernel` must have the vocabulary of `kernel` (V = {v}); got shape {rk.shape}."
        )
    rb = _linear_head.check_bias(fn, ref_bias, "ref_bias", v)
    return rx, rk, rb


def _head_log_probs(fn, x, k, b, labels, mask, ref, *, ignore_index, block_size, vocab_block_size,
                    temperature, precision, axis_name, labels_name="labels"):  # fmt: skip
    """Policy (and reference) per-token log-probabilities ``batch_shape``, the row mask, the dtypes."""
    batch_shape = x.shape[:-1]
    v = k.shape[1]
    n = math.prod(batch_shape)
    config = _linear_head.make_config(
        fn,
        n,
        v,
        block_size=block_size,
        vocab_block_size=vocab_block_size,
        temperature=temperature,
        precision=precision,
        axis_name=axis_name,
    )
    if axis_name is None:
        _linear_head.check_label_range(fn, labels, v, ignore_index=ignore_index, where=mask, name=labels_name)
    out_dtype = jnp.promote_types(x.dtype, k.dtype)
    acc = jnp.promote_types(out_dtype, jnp.float32)
    y = labels.reshape(n)
    rows = _linear_head.row_mask(None if mask is None else mask.reshape(n), y, ignore_index)
    counted = jnp.ones(batch_shape, bool) if rows is None else rows.reshape(batch_shape)
    if n == 0:
        zeros = jnp.zeros(batch_shape, acc)
        return zeros, (None if ref is None else zeros), counted, out_dtype
    policy = _token_log_probs(
        x.reshape(n, x.shape[-1]).astype(out_dtype), k.astype(out_dtype), b, y, rows, config, axis_name
    )
    ref_lp = None
    if ref is not None:
        rx, rk, rb = jax.lax.stop_gradient(ref)
        ref_dtype = jnp.promote_types(rx.dtype, rk.dtype)
        ref_lp = _token_log_probs(
            rx.reshape(n, rx.shape[-1]).astype(ref_dtype),
            rk.astype(ref_dtype),
            rb,
            y,
            rows,
            config,
            axis_name,
        )
        ref_lp = jax.lax.stop_gradient(ref_lp.astype(acc).reshape(batch_shape))
    return policy.reshape(batch_shape), ref_lp, counted, out_dtype


def linear_preference_loss(
    inputs: jax.typing.ArrayLike,
    kernel: jax.typing.ArrayLike,
    labels: jax.typing.ArrayLike,
    *,
    method: str = "dpo",
    loss_type: str = "sigmoid",
    beta: float = 0.1,
    gamma: float = 0.5,
    label_smoothing: float = 0.0,
    discopop_tau: float = 0.05,
    nll_weight: float | None = None,
    average_log_prob: bool | None = None,
    bias: jax.typing.ArrayLike | None = None,
    ref_inputs: jax.typing.ArrayLike | None = None,
    ref_kernel: jax.typing.ArrayLike | None = None,
    ref_bias: jax.typing.ArrayLike | None = None,
    preference_labels: jax.typing.ArrayLike | None = None,
    kl: jax.typing.ArrayLike | None = None,
    ignore_index: int | None = -100,
    where: jax.typing.ArrayLike | None = None,
    block_size: int | None = None,
    vocab_block_size: int | None = None,
    axis_name=None,
    precision=jax.lax.Precision.HIGHEST,
) -> jax.Array:
    r"""A preference objective (DPO family, SimPO, CPO, ORPO, KTO) on a linear LM head, without the logits.

    With the head's per-token log-probabilities
    $\log p_{it} = z_{it, y_{it}} - \mathrm{logsumexp}_c\, z_{itc}$,
    $z = $ ``inputs @ kernel + bias``, and $m_{it}$ the tokens that count
    (``labels != ignore_index`` and ``where``), each sequence's
    log-probability is

    $$
    \ell_i = \sum_t m_{it}\log p_{it}
    \quad\text{or, with } \texttt{average\_log\_prob},\quad
    \ell_i = \frac{\sum_t m_{it}\log p_{it}}{\sum_t m_{it}},
    $$

    and the reference model's $\ell^{ref}_i$ the same through
    ``ref_inputs @ ref_kernel + ref_bias`` (no gradient). The loss is

    $$
    L = \frac{1}{P}\sum_{i=1}^{P} f_{method}(\ell_i, \ell_{P+i}, \ell^{ref}_i, \ell^{ref}_{P+i})
      + w_{nll}\,\frac{-\sum_{i \le P,\,t} m_{it}\log p_{it}}{\sum_{i \le P,\,t} m_{it}}
    $$

    over the $P$ pairs, rows ``0..P-1`` chosen and ``P..2P-1`` rejected (the
    TRL / Liger layout), $f$ the per-pair formula :func:`jaxloss.dpo_loss`
    (``method="dpo"``, with its ``loss_type``), :func:`jaxloss.simpo_loss`,
    :func:`jaxloss.cpo_loss` or :func:`jaxloss.orpo_loss`. ``method="kto"``
    is unpaired: the mean over all rows of :func:`jaxloss.kto_loss` with
    ``preference_labels`` and the scalar reference point ``kl``.

    **Defaults per method** (``None``; those of Liger-Kernel 0.8.5's
    ``liger_fused_linear_<method>``): ``nll_weight`` 1 for CPO and ORPO, 0
    for DPO, SimPO and KTO (KTO has no NLL term); ``average_log_prob`` True
    for SimPO and ORPO, False for DPO, CPO and KTO.

    **Normalisation (as Liger).** The preference term is the mean over the
    batch's pairs (KTO: examples) and the NLL term is the sum over every
    chosen token of the batch divided by their number, Liger's
    ``full_target`` normalisation, which does not depend on its
    ``chunk_size``. TRL's DPO trainer averages the NLL per sequence
    instead; jaxloss follows Liger. Loss-type details, label smoothing and
    ``bco_pair`` (Liger's, without TRL's running mean) as in
    :func:`jaxloss.dpo_loss`.

    **Where Liger is undefined, this is finite.** A sequence whose every
    token is ignored has $\ell_i = 0$ in averaged mode (Liger: 0/0 = NaN),
    and the NLL term is 0 when no chosen token counts (Liger: NaN); such
    tokens get zero gradient.

    **Memory.** The policy's and the reference's log-probabilities come
    from the linear-head engine: ``block_size x vocab_block_size`` tiles with
    an online logsumexp, the backward recomputing each tile of the policy's
    logits (the reference head has no backward). Temporaries of the value
    and gradient: a few float32 tiles, a float32 ``(2B T, D)`` input-gradient
    accumulator, a float32 ``(D, vocab_block_size)`` kernel-gradient block
    and ``O(2B T)`` per-token statistics; never ``O(2B T V)``. Block sizes,
    half precision and the dense path for small heads as in
    :func:`jaxloss.linear_softmax_cross_entropy`.

    **Vocabulary-parallel.** With ``axis_name``, call it inside
    ``jax.shard_map`` with ``kernel``, ``bias``, ``ref_kernel`` and
    ``ref_bias`` split over the vocabulary along ``axis_name`` and the other
    arrays replicated; ``labels`` hold global ids. The loss (replicated) and
    the gradients equal the single-device ones.

    Args:
      inputs: ``(2P, T, D)`` floating activations of the policy's last layer
        (KTO: ``(N, T, D)``).
      kernel: ``(D, V)`` LM-head weights (Flax layout).
      labels: ``(2P, T)`` integer next-token ids; ``ignore_index`` marks the
        prompt and padding.
      method: ``"dpo"``, ``"simpo"``, ``"cpo"``, ``"orpo"`` or ``"kto"``.
      loss_type: DPO's loss type (see :func:`jaxloss.dpo_loss`); the other
        methods take ``"sigmoid"`` only.
      beta: $\beta$ (a Python number; positive for ``"sppo_hard"``).
      gamma: SimPO's target margin $\gamma$.
      label_smoothing: $\epsilon$ (DPO's ``"sigmoid"``, ``"robust"``,
        ``"exo_pair"``, SimPO, CPO).
      discopop_tau: DiscoPOP's $\tau > 0$.
      nll_weight: $w_{nll}$ of the chosen tokens' NLL (None: the method's
        default above; Liger's ``alpha`` with ``compute_nll_loss``).
      average_log_prob: average instead of sum over a sequence's tokens
        (None: the method's default above).
      bias: optional ``(V,)`` bias.
      ref_inputs: optional ``(2P, T, D_ref)`` reference model activations.
      ref_kernel: optional ``(D_ref, V)`` reference head (with
        ``ref_inputs``; DPO and KTO only).
      ref_bias: optional ``(V,)`` reference bias.
      preference_labels: KTO's ``(N,)`` bool, True for desirable.
      kl: KTO's scalar reference point $z_0$ (None: 0).
      ignore_index: a label value whose tokens do not count (None: none).
      where: optional ``(2P, T)`` bool; False tokens do not count.
      block_size: tokens per block (None: the block policy).
      vocab_block_size: classes per block (None: the block policy).
      axis_name: the ``shard_map`` axis that splits the vocabulary, or None.
      precision: ``jax.lax.Precision`` of the GEMMs (``HIGHEST``).

    Returns:
      A scalar in the dtype of ``inputs`` and ``kernel`` (computed in at
      least float32).

    Edge cases: a label outside ``[0, V)`` that counts raises a
    ``ValueError`` when the labels are concrete and gives NaN when traced.
    ``jax.grad`` as usual; forward mode as in
    :func:`jaxloss.linear_softmax_cross_entropy`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> x = jax.random.normal(jax.random.key(0), (4, 3, 8))  # 2 pairs, 3 tokens
      >>> kernel = jax.random.normal(jax.random.key(1), (8, 16)) / 4
      >>> labels = jnp.array([[-100, 3, 5], [-100, 1, 2], [-100, 7, 5], [-100, 9, 2]])
      >>> # a policy equal to its reference model: DPO's loss is log 2
      >>> loss = linear_preference_loss(x, kernel, labels, method="dpo", ref_inputs=x, ref_kernel=kernel)
      >>> round(float(loss), 4)
      0.6931
      >>> bool(jnp.isfinite(linear_preference_loss(x, kernel, labels, method="orpo")))
      True

    References:
      Rafailov et al., "Direct Preference Optimization", 2023; Meng et al.,
      "SimPO", 2024; Xu et al., "Contrastive Preference Optimization", 2024;
      Hong et al., "ORPO", 2024; Ethayarajh et al., "KTO", 2024; Hsu et al.,
      "Liger Kernel", 2024; Wijmans et al., "Cut Your Losses in
      Large-Vocabulary Language Models", 2024.

    Liger-Kernel 0.8.5: liger_fused_linear_{dpo,simpo,cpo,orpo,kto} (compiled=False), first output
    """
    fn = "linear_preference_loss"
    _checks.check_option(method, "method", _preference.PREFERENCE_METHODS, fn)
    x, k = _linear_head.check_head(fn, inputs, kernel)
    if x.ndim != 3:
        raise ValueError(
            f"{fn}: `inputs` must have shape (2P, T, D) (sequences, tokens, features); got {x.shape}."
        )
    batch_shape = x.shape[:-1]
    y = _linear_head.check_labels(fn, labels, batch_shape)
    v = k.shape[1]
    b = _linear_head.check_bias(fn, bias, "bias", v)
    mask = _linear_head.check_where(fn, where, batch_shape)
    ignore_index = _linear_head.check_ignore_index(fn, ignore_index)
    ref = _reference_head(fn, ref_inputs, ref_kernel, ref_bias, batch_shape, v)
    if ref is not None and method not in ("dpo", "kto"):
        raise ValueError(
            f"{fn}: method={method!r} takes no reference model; got `ref_inputs`. "
            "Reference models are used by 'dpo' and 'kto'."
        )
    if method != "kto" and batch_shape[0] % 2:
        raise ValueError(
            f"{fn}: method={method!r} is paired: the first dimension of `inputs` holds the chosen sequences, "
            f"then as many rejected ones, so it must be even; got {batch_shape[0]}."
        )
    if method == "kto" and preference_labels is None:
        raise ValueError(f"{fn}: method='kto' needs `preference_labels` ((N,) bool); got None.")
    policy, ref_lp, counted, out_dtype = _head_log_probs(
        fn,
        x,
        k,
        b,
        y,
        mask,
        ref,
        ignore_index=ignore_index,
        block_size=block_size,
        vocab_block_size=vocab_block_size,
        temperature=1.0,
        precision=precision,
        axis_name=axis_name,
    )
    loss = _preference.preference_objective(
        method,
        policy,
        counted,
        ref_token_log_probs=ref_lp,
        loss_type=loss_type,
        beta=beta,
        gamma=gamma,
        label_smoothing=label_smoothing,
        discopop_tau=discopop_tau,
        nll_weight=nll_weight,
        average_log_prob=average_log_prob,
        preference_labels=preference_labels,
        kl=kl,
        fn=fn,
    )
    return loss.astype(out_dtype)


def linear_grpo_loss(
    inputs: jax.typing.ArrayLike,
    kernel: jax.typing.ArrayLike,
    completion_ids: jax.typing.ArrayLike,
    completion_mask: jax.typing.ArrayLike,
    advantages: jax.typing.ArrayLike,
    *,
    bias: jax.typing.ArrayLike | None = None,
    old_log_probs: jax.typing.ArrayLike | None = None,
    ref_log_probs: jax.typing.ArrayLike | None = None,
    ref_inputs: jax.typing.ArrayLike | None = None,
    ref_kernel: jax.typing.ArrayLike | None = None,
    ref_bias: jax.typing.ArrayLike | None = None,
    beta: float = 0.04,
    epsilon_low: float = 0.2,
    epsilon_high: float = 0.2,
    loss_type: str = "dapo",
    importance_sampling_level: str = "token",
    max_completion_length: int | None = None,
    temperature: float = 1.0,
    block_size: int | None = None,
    vocab_block_size: int | None = None,
    axis_name=None,
    precision=jax.lax.Precision.HIGHEST,
) -> jax.Array:
    r"""GRPO (and DAPO, BNPO, Dr. GRPO, GSPO) on a linear LM head, without the logits.

    The policy's log-probability of each sampled token at temperature $T$,

    $$
    \ell_{it} = \log\mathrm{softmax}\left(\frac{z_{it}}{T}\right)_{y_{it}},
    \qquad z = \texttt{inputs @ kernel + bias},
    $$

    comes from the linear-head engine; the loss is :func:`jaxloss.grpo_loss`
    on it (clipped surrogate, Schulman's ``k3`` KL penalty against the
    reference, the ``loss_type``'s normalisation and the
    ``importance_sampling_level``). The reference model's per-token
    log-probabilities are ``ref_log_probs`` when given, else those of the
    head ``ref_inputs @ ref_kernel + ref_bias`` at the same temperature
    through the same engine, without gradient. ``old_log_probs`` are taken
    as given (the sampler's, at whatever temperature it used).

    **Liger and TRL.** Liger-Kernel 0.8.5's ``liger_fused_linear_grpo``
    divides the logits by ``temperature`` for both the policy and the
    reference head, computes no entropy term, and normalises over the
    whole batch (never per chunk); jaxloss does the same, so its value and
    gradients equal Liger's first output. Liger's ``"dapo"`` divides by the
    token count across processes (``torch.distributed``) divided by their
    number; here it is the token count of the arrays given (``"dapo"`` ==
    ``"bnpo"``). Where Liger warns and uses ``ref_per_token_logps`` when
    both it and ``ref_input`` are given, this raises.

    **Finite everywhere.** Padding (``completion_mask`` 0) may hold any token
    id and any inputs: it contributes nothing and gets zero gradient; a
    completion or a batch without a token gives 0 (Liger: NaN for
    ``"grpo"`` / ``"dr_grpo"`` of an empty batch).

    **Memory** as :func:`jaxloss.linear_preference_loss`: tiles of
    ``block_size x vocab_block_size``, a float32 ``(B T, D)`` input-gradient
    accumulator, never the ``B T x V`` logits. **Vocabulary-parallel** the
    same way (``kernel``, ``bias``, ``ref_kernel``, ``ref_bias`` split over
    the vocabulary along ``axis_name``).

    Args:
      inputs: ``(B, T, D)`` floating activations at the completion tokens.
      kernel: ``(D, V)`` LM-head weights.
      completion_ids: ``(B, T)`` integer sampled token ids.
      completion_mask: ``(B, T)`` 1/True for completion tokens, 0 for
        padding (fractional values weight the tokens, as in Liger).
      advantages: ``(B,)`` per-completion advantages.
      bias: optional ``(V,)`` bias.
      old_log_probs: optional ``(B, T)`` sampler log-probabilities (None:
        on-policy, the current ones under ``stop_gradient``).
      ref_log_probs: optional ``(B, T)`` reference log-probabilities.
      ref_inputs: optional ``(B, T, D_ref)`` reference activations (instead
        of ``ref_log_probs``).
      ref_kernel: optional ``(D_ref, V)`` reference head (with ``ref_inputs``).
      ref_bias: optional ``(V,)`` reference bias.
      beta: KL weight $\beta \ge 0$ (no KL term without a reference).
      epsilon_low: the clip's lower margin.
      epsilon_high: the clip's upper margin.
      loss_type: ``"dapo"``, ``"grpo"``, ``"bnpo"`` or ``"dr_grpo"``.
      importance_sampling_level: ``"token"`` or ``"sequence"`` (GSPO).
      max_completion_length: ``"dr_grpo"``'s constant (required there).
      temperature: $T > 0$ (a Python number).
      block_size: tokens per block (None: the block policy).
      vocab_block_size: classes per block (None: the block policy).
      axis_name: the ``shard_map`` axis that splits the vocabulary, or None.
      precision: ``jax.lax.Precision`` of the GEMMs (``HIGHEST``).

    Returns:
      A scalar in the dtype of ``inputs`` and ``kernel``.

    Edge cases: a counted token id outside ``[0, V)`` raises a
    ``ValueError`` when concrete and gives NaN when traced.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> x = jax.random.normal(jax.random.key(0), (2, 3, 8))
      >>> kernel = jax.random.normal(jax.random.key(1), (8, 16)) / 4
      >>> ids = jnp.array([[3, 5, 0], [1, 2, 9]])
      >>> mask = jnp.array([[1, 1, 0], [1, 1, 1]])
      >>> linear_grpo_loss(x, kernel, ids, mask, jnp.array([1.0, -1.0]))  # on-policy: -mean_t A
      Array(0.2, dtype=float32)

    References:
      Shao et al., "DeepSeekMath" (GRPO), 2024; Yu et al., "DAPO", 2025;
      Liu et al., "Understanding R1-Zero-Like Training" (Dr. GRPO), 2025;
      Zheng et al., "Group Sequence Policy Optimization", 2025; Hsu et al.,
      "Liger Kernel", 2024.

    Liger-Kernel 0.8.5: liger_fused_linear_grpo (compiled=False), first output
    """
    fn = "linear_grpo_loss"
    _checks.check_option(loss_type, "loss_type", _policy.GRPO_LOSS_TYPES, fn)
    _checks.check_option(
        importance_sampling_level, "importance_sampling_level", _policy.IMPORTANCE_SAMPLING_LEVELS, fn
    )
    if loss_type == "dr_grpo" and max_completion_length is None:
        raise ValueError(
            f"{fn}: loss_type='dr_grpo' divides by `max_completion_length`; got None. "
            "Pass the generation's maximum completion length."
        )
    _checks.check_positive_int(max_completion_length, "max_completion_length", fn)
    _checks.check_number(beta, "beta", fn, low=0.0)
    _checks.check_number(epsilon_low, "epsilon_low", fn, low=0.0)
    _checks.check_number(epsilon_high, "epsilon_high", fn, low=0.0)
    x, k = _linear_head.check_head(fn, inputs, kernel)
    if x.ndim != 3:
        raise ValueError(
            f"{fn}: `inputs` must have shape (B, T, D) (completions, tokens, features); got {x.shape}."
        )
    batch_shape = x.shape[:-1]
    y = _linear_head.check_labels(fn, completion_ids, batch_shape, "completion_ids")
    _checks.check_same_shape(completion_ids, completion_mask, ("completion_ids", "completion_mask"), fn)
    if tuple(jnp.shape(advantages)) != (batch_shape[0],):
        raise ValueError(
            f"{fn}: `advantages` must have shape ({batch_shape[0]},) (one per completion); "
            f"got {tuple(jnp.shape(advantages))}."
        )
    for name, extra in (("old_log_probs", old_log_probs), ("ref_log_probs", ref_log_probs)):
        if extra is not None:
            _checks.check_floating(extra, name, fn)
            if tuple(jnp.shape(extra)) != tuple(batch_shape):
                raise ValueError(
                    f"{fn}: `{name}` must have the shape of `completion_ids`, {tuple(batch_shape)}; "
                    f"got {tuple(jnp.shape(extra))}."
                )
    v = k.shape[1]
    b = _linear_head.check_bias(fn, bias, "bias", v)
    ref = _reference_head(fn, ref_inputs, ref_kernel, ref_bias, batch_shape, v)
    if ref is not None and ref_log_probs is not None:
        raise ValueError(
            f"{fn}: give the reference model as `ref_log_probs` or as `ref_inputs`/`ref_kernel`, not both."
        )
    weights = jnp.asarray(completion_mask)
    policy, ref_lp, _, out_dtype = _head_log_probs(
        fn,
        x,
        k,
        b,
        y,
        weights != 0,
        ref,
        ignore_index=None,
        block_size=block_size,
        vocab_block_size=vocab_block_size,
        temperature=temperature,
        precision=precision,
        axis_name=axis_name,
        labels_name="completion_ids",
    )
    if ref_lp is None and ref_log_probs is not None:
        ref_lp = ref_log_probs
    loss = _policy.grpo_loss(
        policy,
        weights,
        advantages,
        old_log_probs=old_log_probs,
        ref_log_probs=ref_lp,
        beta=beta,
        epsilon_low=epsilon_low,
        epsilon_high=epsilon_high,
        loss_type=loss_type,
        importance_sampling_level=importance_sampling_level,
        max_completion_length=max_completion_length,
    )
    return loss.astype(out_dtype)
