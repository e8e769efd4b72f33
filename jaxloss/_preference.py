r"""Preference losses on sequence log-probabilities: the DPO family, SimPO, CPO, ORPO and KTO.

Each public function takes the log-probabilities of whole completions under
the policy (and, where the method has one, under a frozen reference model)
and returns one loss per pair (per example for KTO); the mean of the values
is the scalar that Liger-Kernel 0.8.5's fused losses and TRL's trainers
report. They are plain formulas, usable with any model.

The module also holds the composition the fused LM-head losses are built
on (plain names, no underscore): :func:`sequence_log_probs` (per-token to
per-sequence log-probabilities, summed or averaged over the completion) and
:func:`preference_objective` (sequence log-probabilities, the optional NLL
term and the method's formula, normalised over the batch as Liger does).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks, _numerics

__all__ = [
    "DPO_LOSS_TYPES",
    "PREFERENCE_METHODS",
    "METHOD_DEFAULTS",
    "cpo_loss",
    "dpo_loss",
    "kto_loss",
    "orpo_loss",
    "preference_objective",
    "sequence_log_probs",
    "simpo_loss",
]

DPO_LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "apo_zero",
    "apo_down",
    "discopop",
)
PREFERENCE_METHODS = ("dpo", "simpo", "cpo", "orpo", "kto")
# (nll_weight, average_log_prob) of liger_fused_linear_<method> (the Function's forward defaults):
# DPO compute_nll_loss=False, average_log_prob=False; SimPO compute_nll_loss=False, the base's
# average_log_prob=True; CPO compute_nll_loss=True (alpha=1), average_log_prob=False; ORPO
# compute_nll_loss=True (alpha 1), the base's average_log_prob=True; KTO no NLL, average_log_prob=False.
METHOD_DEFAULTS = {
    "dpo": (0.0, False),
    "simpo": (0.0, True),
    "cpo": (1.0, False),
    "orpo": (1.0, True),
    "kto": (0.0, False),
}
# label_smoothing each DPO loss type accepts (as Liger: exo_pair needs > 0, robust [0, 0.5))
_SMOOTHING = {
    "sigmoid": (0.0, 0.5, True, True),
    "robust": (0.0, 0.5, True, False),
    "exo_pair": (0.0, 1.0, False, False),
}


# --------------------------------------------------------------------------- shared checks


def _is_zero(value) -> bool:
    return not _checks.is_traced(value) and jnp.ndim(value) == 0 and float(value) == 0.0


def _pair_arrays(fn, chosen, rejected, refs=(), ref_names=()):
    """Checks shapes; returns the arrays in the compute dtype and the output dtype."""
    arrays = [chosen, rejected, *[r for r in refs if r is not None]]
    for a, name in zip(arrays, ("chosen_logps", "rejected_logps", *ref_names), strict=False):
        _checks.check_floating(a, name, fn)
    _checks.check_same_shape(chosen, rejected, ("chosen_logps", "rejected_logps"), fn)
    for r, name in zip(refs, ref_names, strict=True):
        if r is not None:
            _checks.check_same_shape(chosen, r, ("chosen_logps", name), fn)
    *converted, out_dtype = _numerics.as_float(*arrays)
    return converted, out_dtype


def _check_smoothing(fn, label_smoothing, low=0.0, high=0.5, low_inclusive=True, high_inclusive=True):
    _checks.check_number(
        label_smoothing,
        "label_smoothing",
        fn,
        low=low,
        high=high,
        low_inclusive=low_inclusive,
        high_inclusive=high_inclusive,
    )


def _smoothed_sigmoid(z, label_smoothing):
    """``-(1 - eps) log sigma(z) - eps log sigma(-z)`` (no second term when ``eps`` is a static 0)."""
    loss = -jax.nn.log_sigmoid(z)
    if _is_zero(label_smoothing):
        return loss
    return (1 - label_smoothing) * loss - label_smoothing * jax.nn.log_sigmoid(-z)


def _log1m_exp(x):
    """``log(1 - exp(x))`` for ``x < 0`` (accurate near 0), with ``x`` clamped to ``<= -eps``.

    ``x >= 0`` is a probability of 1 or more, whose odds are infinite: the clamp
    keeps the value and gradient finite (gradient 0 in the clamped region).
    """
    cap = -float(jnp.finfo(x.dtype).eps)
    x = jnp.where(x < cap, x, cap)
    near = x > -0.6931471805599453
    return jnp.where(near, jnp.log(-jnp.expm1(jnp.where(near, x, -1.0))), jnp.log1p(-jnp.exp(x)))


# --------------------------------------------------------------------------- DPO family


def dpo_loss(
    chosen_logps: ArrayLike,
    rejected_logps: ArrayLike,
    ref_chosen_logps: ArrayLike | None = None,
    ref_rejected_logps: ArrayLike | None = None,
    *,
    beta: float = 0.1,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    discopop_tau: float = 0.05,
) -> jax.Array:
    r"""Direct preference optimisation loss and its variants, one value per pair.

    With the policy's log-ratios against the reference model
    $\Delta_w = \log\pi(y_w|x) - \log\pi_{ref}(y_w|x)$ (chosen) and
    $\Delta_l$ (rejected), the margin $z = \beta(\Delta_w - \Delta_l)$,
    $\sigma$ the logistic function and $\epsilon$ = ``label_smoothing``:

    * ``"sigmoid"`` (DPO; conservative DPO when $\epsilon > 0$):
      $-(1-\epsilon)\log\sigma(z) - \epsilon\log\sigma(-z)$
    * ``"hinge"`` (SLiC): $\max(0, 1 - z)$
    * ``"exo_pair"`` (EXO, $0 < \epsilon < 1$):
      $\sigma(z)(\log\sigma(z) - \log(1-\epsilon)) + \sigma(-z)(\log\sigma(-z) - \log\epsilon)$
    * ``"nca_pair"`` (NCA):
      $-\log\sigma(\beta\Delta_w) - \frac12\log\sigma(-\beta\Delta_w) - \frac12\log\sigma(-\beta\Delta_l)$
    * ``"robust"`` (robust DPO, $0 \le \epsilon < 0.5$):
      $\left(-(1-\epsilon)\log\sigma(z) + \epsilon\log\sigma(-z)\right) / (1 - 2\epsilon)$
    * ``"bco_pair"`` (BCO): $-\log\sigma(\beta\Delta_w) - \log\sigma(-\beta\Delta_l)$
    * ``"sppo_hard"`` (SPPO with hard labels):
      $(\Delta_w - \frac{1}{2\beta})^2 + (\Delta_l + \frac{1}{2\beta})^2$
    * ``"apo_zero"`` (APO-zero): $1 - \sigma(\beta\Delta_w) + \sigma(\beta\Delta_l)$
    * ``"apo_down"`` (APO-down): $\sigma(\beta\Delta_w) + 1 - \sigma(z)$
    * ``"discopop"`` (DiscoPOP): $(1 - m)(-\log\sigma(z)) + m\,e^{-z}$ with $m = \sigma(z/\tau)$

    Without a reference model (``ref_*_logps`` None) the reference
    log-probabilities are 0, as in Liger and TRL's ``reference_free``.

    **Liger and TRL.** The values are those of Liger-Kernel 0.8.5's
    ``LigerFusedLinearDPOFunction.preference_loss_fn`` (whose scalar is
    their sum over the batch's pairs divided by the number of pairs, the
    mean of these values) and of TRL's ``DPOTrainer.dpo_loss`` with two
    deliberate choices: ``"sigmoid"`` applies ``label_smoothing`` as TRL's
    conservative DPO does (Liger 0.8.5 ignores it for ``"sigmoid"``; the
    two agree at the default 0), and ``"bco_pair"`` follows Liger, without
    TRL's running mean of the rewards (TRL subtracts a running mean
    ``delta`` of the rewards from both terms). ``label_smoothing`` other
    than 0 is an error for the loss types that do not use it, never
    silently dropped.

    **Finite everywhere.** ``"discopop"`` evaluates $m\,e^{-z}$ as
    $\exp(-z + \log\sigma(z/\tau))$, finite where $z$ is very negative
    (Liger: $\infty \cdot 0$ = NaN). The hinge's gradient at $z = 1$ is 0.

    Args:
      chosen_logps: ``(...)`` policy log-probabilities of the chosen
        completions $\log\pi(y_w|x)$ (summed over tokens, or averaged, as
        the method prescribes; DPO sums).
      rejected_logps: ``(...)`` the same for the rejected completions.
      ref_chosen_logps: optional ``(...)`` reference-model log-probabilities
        of the chosen completions (give both or neither).
      ref_rejected_logps: optional ``(...)`` the same for the rejected ones.
      beta: $\beta$, the inverse temperature of the implicit reward (a
        Python number, positive for ``"sppo_hard"``, which divides by it).
      loss_type: one of ``"sigmoid"``, ``"hinge"``, ``"exo_pair"``,
        ``"nca_pair"``, ``"robust"``, ``"bco_pair"``, ``"sppo_hard"``,
        ``"apo_zero"``, ``"apo_down"``, ``"discopop"``.
      label_smoothing: $\epsilon$, the assumed fraction of flipped labels:
        ``[0, 0.5]`` for ``"sigmoid"``, ``[0, 0.5)`` for ``"robust"``,
        ``(0, 1)`` for ``"exo_pair"`` (the EXO paper uses ``1e-3``), 0 for
        the others.
      discopop_tau: $\tau > 0$, the temperature of DiscoPOP's modulation.

    Returns:
      ``(...)`` one loss per pair, in the inputs' dtype (half precision is
      computed in float32).

    Examples:
      >>> import jax.numpy as jnp
      >>> chosen, rejected = jnp.array([-10.0, -12.0]), jnp.array([-11.0, -9.0])
      >>> ref_chosen, ref_rejected = jnp.array([-10.5, -11.0]), jnp.array([-10.5, -10.0])
      >>> [round(float(v), 4) for v in dpo_loss(chosen, rejected, ref_chosen, ref_rejected)]
      [0.6444, 0.7981]
      >>> dpo_loss(chosen, rejected, ref_chosen, ref_rejected, loss_type="hinge", beta=0.5)
      Array([0.5, 2. ], dtype=float32)

    References:
      Rafailov et al., "Direct Preference Optimization: Your Language Model
      is Secretly a Reward Model", 2023; Mitchell, "A note on DPO with noisy
      preferences" (conservative DPO), 2023; Zhao et al., "SLiC-HF", 2023;
      Ji et al., "Towards Efficient Exact Optimization of Language Model
      Alignment" (EXO), 2024; Chen et al., "Noise Contrastive Alignment of
      Language Models with Explicit Rewards" (NCA), 2024; Chowdhury et al.,
      "Provably Robust DPO", 2024; Jung et al., "Binary Classifier
      Optimization for Large Language Model Alignment" (BCO), 2024; Wu et
      al., "Self-Play Preference Optimization for Language Model Alignment"
      (SPPO), 2024; D'Oosterlinck et al., "Anchored Preference Optimization
      and Contrastive Revisions" (APO), 2024; Chris Lu et al., "Discovering
      Preference Optimization Algorithms with and for Large Language Models"
      (DiscoPOP), 2024.

    Liger-Kernel 0.8.5: LigerFusedLinearDPOFunction.preference_loss_fn (TRL: DPOTrainer.dpo_loss)
    """
    fn = "dpo_loss"
    _checks.check_option(loss_type, "loss_type", DPO_LOSS_TYPES, fn)
    if (ref_chosen_logps is None) != (ref_rejected_logps is None):
        missing = "ref_rejected_logps" if ref_rejected_logps is None else "ref_chosen_logps"
        raise ValueError(
            f"{fn}: `{missing}` is None but the other reference log-probabilities are given; "
            "give both `ref_chosen_logps` and `ref_rejected_logps` (with a reference model) or neither."
        )
    _checks.check_number(beta, "beta", fn, low=0.0 if loss_type == "sppo_hard" else None, low_inclusive=False)
    _checks.check_number(discopop_tau, "discopop_tau", fn, low=0.0, low_inclusive=False)
    if loss_type in _SMOOTHING:
        _check_smoothing(fn, label_smoothing, *_SMOOTHING[loss_type])
    else:
        _checks.check_number(label_smoothing, "label_smoothing", fn)
        if not _is_zero(label_smoothing) and not _checks.is_traced(label_smoothing):
            raise ValueError(
                f"{fn}: `label_smoothing` is used by loss_type 'sigmoid', 'robust' and 'exo_pair' only; "
                f"got {float(label_smoothing)!r} with loss_type={loss_type!r}. Leave it at 0."
            )
    (c, r, *refs), out_dtype = _pair_arrays(
        fn,
        chosen_logps,
        rejected_logps,
        (ref_chosen_logps, ref_rejected_logps),
        ("ref_chosen_logps", "ref_rejected_logps"),
    )
    if refs:
        c, r = c - refs[0], r - refs[1]
    eps = label_smoothing
    z = beta * (c - r)
    if loss_type == "sigmoid":
        loss = _smoothed_sigmoid(z, eps)
    elif loss_type == "hinge":
        loss = jax.nn.relu(1 - z)
    elif loss_type == "exo_pair":
        log_qw, log_ql = jax.nn.log_sigmoid(z), jax.nn.log_sigmoid(-z)
        loss = jax.nn.sigmoid(z) * (log_qw - jnp.log1p(-eps)) + jax.nn.sigmoid(-z) * (log_ql - jnp.log(eps))
    elif loss_type == "nca_pair":
        loss = (
            -jax.nn.log_sigmoid(beta * c)
            - 0.5 * jax.nn.log_sigmoid(-beta * c)
            - 0.5 * jax.nn.log_sigmoid(-beta * r)
        )
    elif loss_type == "robust":
        loss = (-(1 - eps) * jax.nn.log_sigmoid(z) + eps * jax.nn.log_sigmoid(-z)) / (1 - 2 * eps)
    elif loss_type == "bco_pair":
        loss = -jax.nn.log_sigmoid(beta * c) - jax.nn.log_sigmoid(-beta * r)
    elif loss_type == "sppo_hard":
        half = 0.5 / beta
        loss = (c - half) ** 2 + (r + half) ** 2
    elif loss_type == "apo_zero":
        loss = jax.nn.sigmoid(-beta * c) + jax.nn.sigmoid(beta * r)
    elif loss_type == "apo_down":
        loss = jax.nn.sigmoid(beta * c) + jax.nn.sigmoid(-z)
    else:  # discopop
        modulation = jax.nn.sigmoid(z / discopop_tau)
        loss = (1 - modulation) * -jax.nn.log_sigmoid(z) + jnp.exp(-z + jax.nn.log_sigmoid(z / discopop_tau))
    return loss.astype(out_dtype)


# --------------------------------------------------------------------------- reference-free methods


def simpo_loss(
    chosen_logps: ArrayLike,
    rejected_logps: ArrayLike,
    *,
    beta: float = 0.1,
    gamma: float = 0.5,
    label_smoothing: float = 0.0,
) -> jax.Array:
    r"""SimPO's loss, one value per pair: a length-normalised, reference-free DPO with a margin.

    With $z = \beta(\bar\ell_w - \bar\ell_l) - \gamma$, where $\bar\ell$ is a
    completion's *average* per-token log-probability, and $\epsilon$ =
    ``label_smoothing``:

    $$
    \ell = -(1 - \epsilon)\log\sigma(z) - \epsilon\log\sigma(-z).
    $$

    The mean over the batch is Liger-Kernel 0.8.5's SimPO preference term
    (``LigerFusedLinearSimPOFunction``, which divides the sum by the number of
    pairs) and TRL's ``CPOTrainer`` with ``loss_type="simpo"`` (whose
    ``simpo_gamma / beta`` margin inside ``beta * (...)`` is this $\gamma$).

    Args:
      chosen_logps: ``(...)`` average per-token log-probabilities of the
        chosen completions under the policy.
      rejected_logps: ``(...)`` the same for the rejected completions.
      beta: $\beta$, the reward scale (a Python number).
      gamma: $\gamma$, the target reward margin.
      label_smoothing: $\epsilon \in [0, 0.5]$.

    Returns:
      ``(...)`` one loss per pair, in the inputs' dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> losses = simpo_loss(jnp.array([-0.5, -1.5]), jnp.array([-1.0, -0.8]), beta=2.0, gamma=0.5)
      >>> [round(float(v), 4) for v in losses]
      [0.4741, 2.0394]

    References:
      Meng et al., "SimPO: Simple Preference Optimization with a
      Reference-Free Reward", 2024.

    Liger-Kernel 0.8.5: LigerFusedLinearSimPOFunction.preference_loss_fn (TRL: CPOTrainer, loss_type="simpo")
    """
    fn = "simpo_loss"
    _checks.check_number(beta, "beta", fn)
    _checks.check_number(gamma, "gamma", fn)
    _check_smoothing(fn, label_smoothing)
    (c, r), out_dtype = _pair_arrays(fn, chosen_logps, rejected_logps)
    return _smoothed_sigmoid(beta * (c - r) - gamma, label_smoothing).astype(out_dtype)


def cpo_loss(
    chosen_logps: ArrayLike,
    rejected_logps: ArrayLike,
    *,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> jax.Array:
    r"""Contrastive preference optimisation's preference term, one value per pair.

    With $z = \beta(\log\pi(y_w|x) - \log\pi(y_l|x))$ (no reference model)
    and $\epsilon$ = ``label_smoothing``:

    $$
    \ell = -(1 - \epsilon)\log\sigma(z) - \epsilon\log\sigma(-z).
    $$

    CPO's full objective adds the negative log-likelihood of the chosen
    tokens (weight 1 in Liger and TRL), which these sequence-level values do
    not see. The mean over the batch is Liger-Kernel 0.8.5's CPO preference
    term (``LigerFusedLinearCPOFunction``: sum over pairs divided by their
    number) and TRL's ``CPOTrainer`` with ``loss_type="sigmoid"``.

    Args:
      chosen_logps: ``(...)`` policy log-probabilities of the chosen
        completions (Liger and TRL sum over tokens by default).
      rejected_logps: ``(...)`` the same for the rejected completions.
      beta: $\beta$ (a Python number).
      label_smoothing: $\epsilon \in [0, 0.5]$.

    Returns:
      ``(...)`` one loss per pair, in the inputs' dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> [round(float(v), 4) for v in cpo_loss(jnp.array([-10.0, -12.0]), jnp.array([-11.0, -9.0]))]
      [0.6444, 0.8544]

    References:
      Xu et al., "Contrastive Preference Optimization: Pushing the Boundaries
      of LLM Performance in Machine Translation", 2024.

    Liger-Kernel 0.8.5: LigerFusedLinearCPOFunction.preference_loss_fn (TRL: CPOTrainer, loss_type="sigmoid")
    """
    fn = "cpo_loss"
    _checks.check_number(beta, "beta", fn)
    _check_smoothing(fn, label_smoothing)
    (c, r), out_dtype = _pair_arrays(fn, chosen_logps, rejected_logps)
    return _smoothed_sigmoid(beta * (c - r), label_smoothing).astype(out_dtype)


def orpo_loss(chosen_logps: ArrayLike, rejected_logps: ArrayLike, *, beta: float = 0.1) -> jax.Array:
    r"""ORPO's odds-ratio term, one value per pair.

    With $p = \exp(\bar\ell)$ a completion's average per-token probability
    and $\mathrm{odds}(p) = p / (1 - p)$:

    $$
    \ell = -\beta \log\sigma\left(\log\frac{\mathrm{odds}(p_w)}{\mathrm{odds}(p_l)}\right),
    \qquad \log\mathrm{odds}(p) = \bar\ell - \log(1 - e^{\bar\ell}).
    $$

    ORPO's full objective adds the negative log-likelihood of the chosen
    tokens (weight 1), which these sequence-level values do not see. The
    mean over the batch is Liger-Kernel 0.8.5's ORPO preference term
    (``LigerFusedLinearORPOFunction``: ``-beta`` times the sum of
    $\log\sigma$ over pairs divided by their number) and TRL's
    ``ORPOTrainer.odds_ratio_loss`` (which returns $\beta\log\sigma(\cdot)$,
    subtracted from the NLL).

    **Finite everywhere.** $\log(1 - e^{\bar\ell})$ is computed accurately
    near $\bar\ell = 0$ (``log(-expm1)``, where Liger and TRL use
    ``log1p(-exp)``), and $\bar\ell$ is clamped to at most ``-eps`` of its
    dtype inside it: a probability of 1 (or an invalid positive
    log-probability) has infinite odds, where Liger and TRL give inf or NaN.
    The gradient is 0 in the clamped region.

    Args:
      chosen_logps: ``(...)`` average per-token log-probabilities of the
        chosen completions under the policy (``<= 0``).
      rejected_logps: ``(...)`` the same for the rejected completions.
      beta: $\beta$, the weight of the odds-ratio term (a Python number).

    Returns:
      ``(...)`` one loss per pair, in the inputs' dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> [round(float(v), 4) for v in orpo_loss(jnp.array([-0.5, -1.5]), jnp.array([-1.0, -0.8]))]
      [0.032, 0.1346]

    References:
      Hong et al., "ORPO: Monolithic Preference Optimization without
      Reference Model", 2024.

    Liger-Kernel 0.8.5: LigerFusedLinearORPOFunction.preference_loss_fn (TRL: ORPOTrainer.odds_ratio_loss)
    """
    fn = "orpo_loss"
    _checks.check_number(beta, "beta", fn)
    (c, r), out_dtype = _pair_arrays(fn, chosen_logps, rejected_logps)
    log_odds = (c - r) - (_log1m_exp(c) - _log1m_exp(r))
    return (-beta * jax.nn.log_sigmoid(log_odds)).astype(out_dtype)


# --------------------------------------------------------------------------- KTO


def kto_loss(
    log_probs: ArrayLike,
    preference_labels: ArrayLike,
    ref_log_probs: ArrayLike | None = None,
    *,
    beta: float = 0.1,
    kl: ArrayLike | None = None,
) -> jax.Array:
    r"""Kahneman-Tversky optimisation's loss, one value per (unpaired) example.

    With the log-ratio $r = \log\pi(y|x) - \log\pi_{ref}(y|x)$ (or
    $\log\pi(y|x)$ without a reference model), the reference point $z_0$ =
    ``kl`` (0 when None) and $s = +1$ for a desirable completion, $-1$ for
    an undesirable one:

    $$
    \ell = 1 - \sigma\left(s \, \beta (r - z_0)\right).
    $$

    The mean over the batch is Liger-Kernel 0.8.5's KTO loss
    (``LigerFusedLinearKTOFunction``: the sum divided by the batch size).
    TRL's ``KTOTrainer.kto_loss`` adds ``desirable_weight`` /
    ``undesirable_weight`` (1 by default) and computes ``kl`` itself,
    detached and clamped at 0; here, as in Liger, ``kl`` is given. It is a
    scalar: the batch's estimate of $\mathrm{KL}(\pi \| \pi_{ref})$ (for
    example the mean log-ratio on mismatched prompt-completion pairs).
    Differentiation goes through it like any input; pass
    ``jax.lax.stop_gradient(kl)`` for TRL's detached estimate.

    Args:
      log_probs: ``(...)`` policy log-probabilities of the completions
        (summed over tokens by default in Liger and TRL).
      preference_labels: ``(...)`` bool, True for a desirable (chosen)
        completion, False for an undesirable one (nonzero numbers are True).
      ref_log_probs: optional ``(...)`` reference-model log-probabilities.
      beta: $\beta$ (a Python number).
      kl: optional scalar reference point $z_0$ (a Python number or a 0-d
        array, possibly traced).

    Returns:
      ``(...)`` one loss per example, in the inputs' dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> kto_loss(jnp.array([-10.0, -12.0]), jnp.array([True, False]),
      ...          jnp.array([-11.0, -11.0]), beta=0.5)
      Array([0.3775, 0.3775], dtype=float32)

    References:
      Ethayarajh et al., "KTO: Model Alignment as Prospect Theoretic
      Optimization", 2024.

    Liger-Kernel 0.8.5: LigerFusedLinearKTOFunction.preference_loss_fn (TRL: KTOTrainer.kto_loss)
    """
    fn = "kto_loss"
    _checks.check_number(beta, "beta", fn)
    if preference_labels is None:
        raise TypeError(
            f"{fn}: `preference_labels` is required (True for desirable, False otherwise); got None."
        )
    _checks.check_floating(log_probs, "log_probs", fn)
    _checks.check_same_shape(log_probs, preference_labels, ("log_probs", "preference_labels"), fn)
    arrays = [log_probs]
    if ref_log_probs is not None:
        _checks.check_floating(ref_log_probs, "ref_log_probs", fn)
        _checks.check_same_shape(log_probs, ref_log_probs, ("log_probs", "ref_log_probs"), fn)
        arrays.append(ref_log_probs)
    if kl is not None:
        if jnp.ndim(kl) != 0:
            raise ValueError(
                f"{fn}: `kl` must be a scalar (one estimate for the batch); got shape {jnp.shape(kl)}."
            )
        _checks.check_number(kl, "kl", fn)
    *converted, out_dtype = _numerics.as_float(*arrays)
    ratio = converted[0] - converted[1] if ref_log_probs is not None else converted[0]
    if kl is not None:
        ratio = ratio - jnp.asarray(kl).astype(ratio.dtype)
    sign = jnp.where(jnp.asarray(preference_labels).astype(bool), 1.0, -1.0).astype(ratio.dtype)
    return jax.nn.sigmoid(-sign * beta * ratio).astype(out_dtype)


# --------------------------------------------------------------------------- composition for the fused head


def _mean(values):
    """The mean of a batch's values; 0 for an empty batch."""
    return jnp.sum(values) / values.size if values.size else jnp.zeros((), values.dtype)


def sequence_log_probs(token_log_probs, mask, *, average: bool):
    """Per-sequence log-probabilities ``(...)`` from per-token ones ``(..., T)`` and a mask.

    The sum of ``token_log_probs`` where ``mask`` is True, divided by the
    number of such tokens when ``average``. A sequence without a token gives 0
    (Liger: 0/0 = NaN in averaged mode); masked tokens get zero gradient
    whatever their (finite or not) value.
    """
    mask = jnp.asarray(mask, bool)
    total = jnp.sum(jnp.where(mask, token_log_probs, 0), axis=-1)
    if not average:
        return total
    count = jnp.sum(mask, axis=-1).astype(total.dtype)
    return _numerics.safe_divide(total, count)


def preference_objective(
    method: str,
    token_log_probs,
    mask,
    *,
    ref_token_log_probs=None,
    loss_type: str = "sigmoid",
    beta: float = 0.1,
    gamma: float = 0.5,
    label_smoothing: float = 0.0,
    discopop_tau: float = 0.05,
    nll_weight: float | None = None,
    average_log_prob: bool | None = None,
    preference_labels=None,
    kl=None,
    fn: str = "linear_preference_loss",
):
    r"""A preference method's scalar objective from per-token log-probabilities, as Liger computes it.

    ``token_log_probs (N, T)``: the policy's log-probability of each label
    token; ``mask (N, T)``: the tokens that count (labels not ignored);
    ``ref_token_log_probs``: the reference model's, or None. Paired methods
    (``dpo``, ``simpo``, ``cpo``, ``orpo``) take the ``N / 2`` chosen
    sequences first, then the rejected ones; ``kto`` takes ``N`` unpaired
    sequences with ``preference_labels (N,)`` and a scalar ``kl``.

    The objective is ``nll_weight * NLL + mean(formula)``: sequence
    log-probabilities (summed, or averaged when ``average_log_prob``), the
    method's per-pair formula (``dpo_loss``, ``simpo_loss``, ``cpo_loss``,
    ``orpo_loss``, ``kto_loss``) averaged over the pairs (KTO: over the
    ``N`` examples), and the chosen tokens' negative log-likelihood summed
    and divided by the number of chosen tokens in the batch. Every Liger 0.8.5
    normalisation is over the whole batch (pairs, examples, chosen tokens),
    never per chunk, so the result does not depend on Liger's ``chunk_size``.
    ``None`` for ``nll_weight`` / ``average_log_prob`` means the method's
    ``liger_fused_linear_<method>`` default (``METHOD_DEFAULTS``). Empty
    sequences in averaged mode and an NLL without a chosen token give 0
    (Liger: NaN).
    """
    _checks.check_option(method, "method", PREFERENCE_METHODS, fn)
    default_nll, default_average = METHOD_DEFAULTS[method]
    nll_weight = default_nll if nll_weight is None else nll_weight
    average_log_prob = default_average if average_log_prob is None else average_log_prob
    if not isinstance(average_log_prob, (bool, jnp.bool_)):
        raise TypeError(
            f"{fn}: `average_log_prob` must be a bool or None; got {type(average_log_prob).__name__} "
            f"{average_log_prob!r}."
        )
    _checks.check_number(nll_weight, "nll_weight", fn)
    n = jnp.shape(token_log_probs)[0]
    if method == "kto":
        if preference_labels is None:
            raise ValueError(f"{fn}: method='kto' needs `preference_labels` ((N,) bool); got None.")
        if not _is_zero(nll_weight):
            raise ValueError(
                f"{fn}: method='kto' has no NLL term: `nll_weight` must be 0 or None; got {nll_weight!r}."
            )
        if jnp.shape(preference_labels) != (n,):
            raise ValueError(
                f"{fn}: `preference_labels` must have shape ({n},) (one label per sequence); "
                f"got {tuple(jnp.shape(preference_labels))}."
            )
    else:
        if preference_labels is not None:
            raise ValueError(
                f"{fn}: `preference_labels` is used by method='kto' only; got it with method={method!r}."
            )
        if kl is not None:
            raise ValueError(f"{fn}: `kl` is used by method='kto' only; got it with method={method!r}.")
        if n % 2:
            raise ValueError(
                f"{fn}: method={method!r} is paired: the first dimension holds the chosen sequences, then "
                f"as many rejected ones, so it must be even; got {n}."
            )
    if method in ("orpo", "kto") and not _is_zero(label_smoothing):
        raise ValueError(
            f"{fn}: `label_smoothing` is not used by method={method!r}; got {label_smoothing!r}."
        )
    if method not in ("dpo", "kto") and ref_token_log_probs is not None:
        raise ValueError(
            f"{fn}: method={method!r} takes no reference model; got `ref_inputs`. "
            "Reference models are used by 'dpo' and 'kto'."
        )
    if method != "dpo" and loss_type != "sigmoid":
        raise ValueError(
            f"{fn}: `loss_type` is used by method='dpo' only; got {loss_type!r} with method={method!r}."
        )

    logps = sequence_log_probs(token_log_probs, mask, average=average_log_prob)
    ref = None
    if ref_token_log_probs is not None:
        ref = sequence_log_probs(ref_token_log_probs, mask, average=average_log_prob)
    if method == "kto":
        return _mean(kto_loss(logps, preference_labels, ref, beta=beta, kl=kl))
    half = n // 2
    chosen, rejected = logps[:half], logps[half:]
    if method == "dpo":
        refs = (None, None) if ref is None else (ref[:half], ref[half:])
        pref = dpo_loss(
            chosen,
            rejected,
            *refs,
            beta=beta,
            loss_type=loss_type,
            label_smoothing=label_smoothing,
            discopop_tau=discopop_tau,
        )
    elif method == "simpo":
        pref = simpo_loss(chosen, rejected, beta=beta, gamma=gamma, label_smoothing=label_smoothing)
    elif method == "cpo":
        pref = cpo_loss(chosen, rejected, beta=beta, label_smoothing=label_smoothing)
    else:
        pref = orpo_loss(chosen, rejected, beta=beta)
    loss = _mean(pref)
    if not _is_zero(nll_weight):
        chosen_mask = jnp.asarray(mask, bool)[:half]
        total = -jnp.sum(jnp.where(chosen_mask, token_log_probs[:half], 0))
        nll = _numerics.safe_divide(total, jnp.sum(chosen_mask).astype(total.dtype))
        loss = loss + nll_weight * nll.astype(loss.dtype)
    return loss
