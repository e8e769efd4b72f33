"""The preference formulas (``dpo_loss``, ``simpo_loss``, ``cpo_loss``, ``orpo_loss``, ``kto_loss``) and
``grpo_loss`` against Liger-Kernel 0.8.5.

Two references, both Liger's own code run on the CPU:

* the formulas: each ``LigerFusedLinear<Method>Function.preference_loss_fn`` (and
  ``LigerFusedLinearGRPOFunction.ppo_loss_fn``) on float64 torch tensors, values per pair and
  gradients (torch autograd) with respect to every log-probability;
* end to end: ``liger_fused_linear_<method>`` (``compiled=False``, its chunk loop and batch
  normalisations; ``tests/liger_reference.py``) on a linear head's inputs, against the dense JAX
  log-softmax of the same head fed to ``jaxloss._preference.preference_objective`` /
  ``jaxloss.grpo_loss``: values and gradients with respect to the inputs, kernel and bias.

float64 to 1e-9 relative (Liger's float32 upcasts made float64, see ``tests/liger_reference.py``),
float32 at 2e-5 of the largest magnitude (Liger itself computes in float32).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss
from jaxloss import _preference
from tests.liger_reference import float64_liger, liger_function, liger_fused

DPO_TYPES = _preference.DPO_LOSS_TYPES
# label_smoothing per DPO loss type in the formula checks (Liger: exo_pair needs > 0, robust [0, 0.5))
SMOOTHING = {"exo_pair": 1e-3, "robust": 0.1}
RTOL = {"float64": 1e-9, "float32": 2e-5}


def _close(actual, expected, dtype, what=""):
    """``|a - e| <= rtol * (|e| + max |e|)`` elementwise (relative to the array's scale)."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert a.shape == e.shape, (what, a.shape, e.shape)
    scale = float(np.max(np.abs(e))) if e.size else 0.0
    bound = RTOL[dtype] * (np.abs(e) + scale) + 1e-300
    err = np.abs(a - e)
    assert np.all(err <= bound), (what, float(np.max(err / bound)), a, e)


def _sequence_data(seed, n=6, dtype="float64"):
    """Sequence log-probabilities of ``n`` pairs: policy and reference, chosen and rejected."""
    r = np.random.default_rng(seed)
    c, rj = -r.uniform(5, 30, n), -r.uniform(5, 30, n)
    rc, rr = c + r.normal(0, 3, n), rj + r.normal(0, 3, n)
    return [np.asarray(a, dtype) for a in (c, rj, rc, rr)]


def _torch_leaves(*arrays):
    return [torch.tensor(np.asarray(a, np.float64), requires_grad=True) for a in arrays]


@float64_liger()
def _liger_per_pair(fn, *arrays, **options):
    """Liger's scalar formula on each pair alone (its per-pair value) and on the batch (its mean)."""
    n = len(arrays[0])
    single = np.array(
        [
            float(fn(*[torch.tensor(a[i : i + 1], dtype=torch.float64) for a in arrays], **options)[0])
            for i in range(n)
        ]
    )
    return single


# --------------------------------------------------------------------------- DPO family: formula


@float64_liger()
def _liger_dpo(c, rj, rc, rr, loss_type, beta, label_smoothing, discopop_tau, with_ref):
    """Liger's DPO formula: per-pair values, the batch's scalar and its gradients (float64)."""
    fn = liger_function("dpo").preference_loss_fn
    arrays = (c, rj, rc, rr) if with_ref else (c, rj)

    def call(*args, full):
        refs = dict(ref_chosen_logps=args[2], ref_rejected_logps=args[3]) if with_ref else {}
        options = dict(
            beta=beta, loss_type=loss_type, label_smoothing=label_smoothing, discopop_tau=discopop_tau
        )
        return fn(args[0], args[1], full, **refs, **options)[0]

    per_pair = np.array(
        [
            float(call(*[torch.tensor(a[i : i + 1]) for a in arrays], full=torch.zeros(2, 1)))
            for i in range(len(c))
        ]
    )
    leaves = _torch_leaves(*arrays)
    mean = call(*leaves, full=torch.zeros(2 * len(c), 1))
    mean.backward()
    return per_pair, float(mean.detach()), [t.grad.numpy() for t in leaves]


# every loss type with a reference model in float64, the numerically delicate ones in float32 too, two
# without a reference model (jit; the eager side runs in the end-to-end tests below, and
# tests/test_properties.py checks jit == eager for every public function)
DPO_CASES = (
    [(t, True, "float64", True) for t in DPO_TYPES]
    + [(t, True, "float32", True) for t in ("sigmoid", "exo_pair", "discopop")]
    + [("sigmoid", False, "float64", True), ("sppo_hard", False, "float32", True)]
    + [("robust", True, "float64", False), ("discopop", True, "float32", False)]
)


@pytest.mark.parametrize(
    "loss_type, with_ref, dtype, jit",
    DPO_CASES,
    ids=[f"{t}-{'ref' if r else 'noref'}-{d}-{'jit' if j else 'eager'}" for t, r, d, j in DPO_CASES],
)
def test_dpo_loss_matches_liger_formula(loss_type, with_ref, dtype, jit):
    """Per-pair values, their mean and its gradients with respect to every log-probability."""
    data = _sequence_data(0, dtype=dtype)
    if not with_ref:
        data = data[:2]
    kw = dict(beta=0.3, loss_type=loss_type, label_smoothing=SMOOTHING.get(loss_type, 0.0), discopop_tau=0.05)

    def ours(*args):
        return jaxloss.dpo_loss(*args, **kw), jax.grad(
            lambda *a: jnp.mean(jaxloss.dpo_loss(*a, **kw)), argnums=tuple(range(len(args)))
        )(*args)

    losses, grads = (jax.jit(ours) if jit else ours)(*[jnp.asarray(a) for a in data])
    data64 = [np.asarray(a, np.float64) for a in data] + [None, None]  # the same (rounded) inputs
    per_pair, mean, expected = _liger_dpo(
        *data64[:4], loss_type, kw["beta"], kw["label_smoothing"], kw["discopop_tau"], with_ref
    )
    assert losses.dtype == jnp.dtype(dtype)
    _close(losses, per_pair, dtype, "values")
    _close(jnp.mean(losses), mean, dtype, "mean")
    for g, e in zip(grads, expected, strict=True):
        _close(g, e, dtype, "gradient")


def test_conservative_dpo_label_smoothing_follows_trl():
    """``sigmoid`` with label smoothing is TRL's conservative DPO; Liger 0.8.5 ignores it there."""
    c, rj, rc, rr = _sequence_data(1)
    eps, beta = 0.2, 0.3
    ours = jax.jit(lambda *a: jaxloss.dpo_loss(*a, beta=beta, label_smoothing=eps))(c, rj, rc, rr)
    # TRL DPOTrainer.dpo_loss, loss_type="sigmoid":
    # -F.logsigmoid(beta * logits) * (1 - label_smoothing) - F.logsigmoid(-beta * logits) * label_smoothing
    logits = torch.tensor((c - rc) - (rj - rr))
    trl = -F.logsigmoid(beta * logits) * (1 - eps) - F.logsigmoid(-beta * logits) * eps
    _close(ours, trl.numpy(), "float64")
    per_pair, *_ = _liger_dpo(c, rj, rc, rr, "sigmoid", beta, eps, 0.05, True)
    plain = jaxloss.dpo_loss(c, rj, rc, rr, beta=beta)
    _close(per_pair, plain, "float64")  # Liger drops the smoothing ...
    assert not np.allclose(per_pair, ours)  # ... jaxloss applies it


# --------------------------------------------------------------------------- SimPO, CPO, ORPO, KTO: formula


@float64_liger()
def _liger_formula(method, arrays, options, full_rows):
    """Liger's scalar formula on the batch and its gradients with respect to the float arrays."""
    fn = liger_function(method).preference_loss_fn
    if method == "kto":  # (log_probs, preference_labels[, ref_log_probs])
        leaves = _torch_leaves(arrays[0], *arrays[2:])
        args = (leaves[0], torch.tensor(arrays[1]))
        extra = dict(ref_log_prob_chunk=leaves[1]) if len(leaves) > 1 else {}
    else:
        leaves = _torch_leaves(*arrays)
        args, extra = leaves, {}
    out = fn(*args, torch.zeros(full_rows, 1), **extra, **options)
    out[0].backward()
    return float(out[0].detach()), [t.grad.numpy() for t in leaves]


PAIRED = {
    "simpo": (jaxloss.simpo_loss, dict(beta=2.0, gamma=0.7, label_smoothing=0.1)),
    "cpo": (jaxloss.cpo_loss, dict(beta=0.3, label_smoothing=0.1)),
    "orpo": (jaxloss.orpo_loss, dict(beta=0.3)),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("method", ["simpo", "cpo", "orpo", "kto", "kto-noref"])
def test_simpo_cpo_orpo_kto_match_liger_formula(method, dtype):
    r = np.random.default_rng(2)
    n = 6
    if method.startswith("kto"):
        logps = np.asarray(-r.uniform(5, 30, n), dtype)  # KTO sums
        labels = np.array([True, False, True, True, False, False])
        if method == "kto":
            arrays = (logps, np.asarray(logps + r.normal(0, 3, n), dtype))
            kw = dict(beta=0.4, kl=0.7)
        else:  # no reference model, no KL estimate
            arrays, kw = (logps,), dict(beta=0.2)

        def fn(*a):
            return jaxloss.kto_loss(a[0], labels, *a[1:], **kw)

        liger_arrays = (arrays[0], labels, *arrays[1:])
    else:  # average log-probabilities (SimPO, ORPO)
        arrays = tuple(np.asarray(-r.uniform(0.2, 3.0, n), dtype) for _ in range(2))
        public, kw = PAIRED[method]

        def fn(a, b):
            return public(a, b, **kw)

        liger_arrays = arrays

    argnums = tuple(range(len(arrays)))
    losses, grads = jax.jit(lambda *a: (fn(*a), jax.grad(lambda *b: jnp.mean(fn(*b)), argnums=argnums)(*a)))(
        *arrays
    )
    assert losses.dtype == jnp.dtype(dtype)
    as64 = tuple(a if a.dtype == bool else np.asarray(a, np.float64) for a in liger_arrays)
    name = method.split("-")[0]
    mean, expected = _liger_formula(name, as64, kw, n if name == "kto" else 2 * n)
    _close(jnp.mean(losses), mean, dtype, "mean")
    for g, e in zip(grads, expected, strict=True):
        _close(g, e, dtype, "gradient")
    if name != "kto":  # per-pair values: Liger's scalar on one pair
        liger = liger_function(name).preference_loss_fn
        per_pair = _liger_per_pair(lambda a, b: liger(a, b, torch.zeros(2, 1), **kw), *as64)
        _close(losses, per_pair, dtype, "values")


# --------------------------------------------------------------------------- GRPO: formula


def _grpo_data(seed, b=5, t=6, dtype="float64"):
    r = np.random.default_rng(seed)
    lp = -r.uniform(0.05, 4.0, (b, t))
    old = lp + r.normal(0, 0.3, (b, t))  # ratios on both sides of the clip
    ref = lp + r.normal(0, 0.5, (b, t))
    mask = r.uniform(size=(b, t)) > 0.25
    mask[1] = False  # a completion without a token
    adv = r.normal(size=b)
    return [np.asarray(a, dtype) for a in (lp, old, ref)] + [mask, np.asarray(adv, dtype)]


@float64_liger()
def _liger_grpo_formula(lp, old, ref, mask, adv, with_old, with_ref, **options):
    leaves = _torch_leaves(lp, old, ref)
    m = torch.tensor(mask)
    loss, _ = liger_function("grpo").ppo_loss_fn(
        per_token_logps=leaves[0],
        attention_mask=m,
        advantages=torch.tensor(np.asarray(adv, np.float64)),
        full_attention_mask=m,
        old_per_token_logps=leaves[1] if with_old else None,
        ref_per_token_logps=leaves[2] if with_ref else None,
        **options,
    )
    loss.backward()
    grads = [leaves[0].grad] + ([leaves[1].grad] if with_old else []) + ([leaves[2].grad] if with_ref else [])
    return float(loss.detach()), [np.zeros(lp.shape) if g is None else g.numpy() for g in grads]


# (loss_type, importance_sampling_level, old log-probs, reference log-probs, dtype)
GRPO_CASES = [
    (t, level, True, True, "float64")
    for t in jaxloss._policy.GRPO_LOSS_TYPES
    for level in ("token", "sequence")
] + [
    ("dapo", "token", False, False, "float64"),
    ("grpo", "sequence", False, True, "float64"),
    ("bnpo", "sequence", True, False, "float64"),
    ("dapo", "token", True, True, "float32"),
    ("grpo", "sequence", True, True, "float32"),
]


@pytest.mark.parametrize(
    "loss_type, level, with_old, with_ref, dtype",
    GRPO_CASES,
    ids=[
        f"{t}-{lv}-{'old' if o else 'noold'}-{'ref' if r else 'noref'}-{d}" for t, lv, o, r, d in GRPO_CASES
    ],
)
def test_grpo_loss_matches_liger_formula(loss_type, level, with_old, with_ref, dtype):
    """The value and its gradients with respect to the policy's, old and reference log-probabilities."""
    lp, old, ref, mask, adv = _grpo_data(4, dtype=dtype)
    options = dict(
        beta=0.05,
        epsilon_low=0.2,
        epsilon_high=0.28,
        loss_type=loss_type,
        importance_sampling_level=level,
        max_completion_length=8 if loss_type == "dr_grpo" else None,
    )

    def loss(lp, old, ref):
        return jaxloss.grpo_loss(
            lp,
            mask,
            adv,
            old_log_probs=old if with_old else None,
            ref_log_probs=ref if with_ref else None,
            **options,
        )

    value, grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(lp, old, ref)
    assert value.dtype == jnp.dtype(dtype)
    data64 = [np.asarray(a, np.float64) if a.dtype != bool else a for a in (lp, old, ref, mask, adv)]
    expected, expected_grads = _liger_grpo_formula(*data64, with_old, with_ref, **options)
    _close(value, expected, dtype, "value")
    ours_grads = [grads[0]] + ([grads[1]] if with_old else []) + ([grads[2]] if with_ref else [])
    for g, e in zip(ours_grads, expected_grads, strict=True):
        _close(g, e, dtype, "gradient")


# --------------------------------------------------------------------------- end to end: Liger's fused losses


def _token_log_probs(x, kernel, bias, labels, ignore_index=-100, temperature=1.0):
    """The dense head's log-probability of each label (0 at ignored positions)."""
    logits = jnp.einsum("ntd,dv->ntv", x, kernel, precision=jax.lax.Precision.HIGHEST)
    if bias is not None:
        logits = logits + bias
    log_probs = jax.nn.log_softmax(logits / temperature, axis=-1)
    safe = jnp.where(labels != ignore_index, labels, 0)
    return jnp.take_along_axis(log_probs, safe[..., None], axis=-1)[..., 0]


def _head_data(seed, rows, t=6, d=5, v=11, dtype="float64"):
    r = np.random.default_rng(seed)
    x = r.normal(size=(rows, t, d))
    kernel = r.normal(size=(d, v)) / math.sqrt(d)
    bias = r.normal(size=v) * 0.5
    labels = r.integers(0, v, size=(rows, t))
    labels[:, :2] = -100  # the prompt
    labels[0, 4:] = -100  # padding
    ref_x = x + 0.3 * r.normal(size=x.shape)
    ref_kernel = kernel + 0.2 * r.normal(size=kernel.shape)
    ref_bias = bias + 0.1 * r.normal(size=v)
    cast = [np.asarray(a, dtype) for a in (x, kernel, bias, ref_x, ref_kernel, ref_bias)]
    return (*cast[:3], labels, *cast[3:])


# (id, method, jaxloss options, Liger arguments, reference model, bias, Liger chunk_size)
FUSED_CASES = [
    ("dpo-sigmoid", "dpo", {}, {}, True, True, 1),
    ("dpo-robust-avg-nll", "dpo", dict(loss_type="robust", label_smoothing=0.1, nll_weight=0.5, average_log_prob=True),
     dict(loss_type="robust", label_smoothing=0.1, compute_nll_loss=True, alpha=0.5, average_log_prob=True), True, False, 2),
    ("dpo-apo_zero-no-ref", "dpo", dict(loss_type="apo_zero", beta=0.5), dict(loss_type="apo_zero", beta=0.5), False, True, 3),
    ("simpo", "simpo", dict(beta=2.0, gamma=0.5), dict(beta=2.0, gamma=0.5), False, True, 1),
    ("simpo-nll", "simpo", dict(nll_weight=1.0, label_smoothing=0.1), dict(compute_nll_loss=True, label_smoothing=0.1), False, False, 3),
    ("cpo", "cpo", {}, {}, False, True, 2),
    ("cpo-avg-no-nll", "cpo", dict(nll_weight=0.0, average_log_prob=True, beta=0.5),
     dict(compute_nll_loss=False, average_log_prob=True, beta=0.5), False, True, 1),
    ("orpo", "orpo", dict(beta=0.2), dict(beta=0.2), False, True, 1),
    ("kto", "kto", dict(beta=0.3, kl=0.2), dict(beta=0.3, kl=0.2), True, True, 2),
    ("kto-no-ref-avg", "kto", dict(average_log_prob=True), dict(average_log_prob=True), False, False, 1),
]  # fmt: skip


def _check_preference_fused(case, dtype, jit):
    """Dense JAX token log-probabilities -> ``preference_objective`` == ``liger_fused_linear_<method>``."""
    _, method, ours, liger, with_ref, with_bias, chunk_size = FUSED[case]
    rows = 6  # 3 pairs (KTO: 6 unpaired examples)
    x, kernel, bias, labels, ref_x, ref_kernel, ref_bias = _head_data(5, rows, dtype=dtype)
    bias = bias if with_bias else None
    preference_labels = np.array([True, False, False, True, True, False]) if method == "kto" else None

    def objective(x, kernel, bias):
        ref = None
        if with_ref:
            ref = jax.lax.stop_gradient(_token_log_probs(ref_x, ref_kernel, ref_bias, labels))
        return _preference.preference_objective(
            method,
            _token_log_probs(x, kernel, bias, labels),
            labels != -100,
            ref_token_log_probs=ref,
            preference_labels=preference_labels,
            **ours,
        )

    value_and_grad = jax.value_and_grad(objective, argnums=(0, 1, 2) if with_bias else (0, 1))
    value, grads = (jax.jit(value_and_grad) if jit else value_and_grad)(x, kernel, bias)
    arguments = dict(liger, target=labels, chunk_size=chunk_size)
    if with_ref:
        arguments.update(ref_input=ref_x, ref_kernel=ref_kernel, ref_bias=ref_bias)
    if method == "kto":
        arguments["preference_labels"] = preference_labels
    expected = liger_fused(method, x, kernel, bias, **arguments)
    assert value.dtype == jnp.dtype(dtype)
    _close(value, expected.loss, dtype, "loss")
    for name, g in zip(("inputs", "kernel", "bias"), grads, strict=False):
        _close(g, expected.grads[name], dtype, name)


FUSED = {c[0]: c for c in FUSED_CASES}


# every case in float64 under jit; a few in float32 and eagerly
PREFERENCE_RUNS = [(case, "float64", True) for case in FUSED] + [
    ("dpo-sigmoid", "float32", True),
    ("orpo", "float32", True),
    ("kto", "float32", True),
]


@pytest.mark.parametrize(
    "case, dtype, jit",
    PREFERENCE_RUNS,
    ids=[f"{c}-{d}-{'jit' if j else 'eager'}" for c, d, j in PREFERENCE_RUNS],
)
def test_preference_objective_on_a_dense_head_matches_liger_fused(case, dtype, jit):
    """Methods, loss types, NLL, averaging, bias, reference model, Liger's chunk sizes."""
    _check_preference_fused(case, dtype, jit)


# (id, Liger/jaxloss options, old log-probs, reference model, bias, Liger chunk_size)
GRPO_FUSED = [
    ("dapo-token-old-ref", dict(loss_type="dapo"), True, True, True, 2),
    ("grpo-sequence-ref", dict(loss_type="grpo", importance_sampling_level="sequence"), False, True, False, 1),
    ("bnpo-token-old", dict(loss_type="bnpo", epsilon_high=0.28, beta=0.0), True, False, True, 3),
    ("dr_grpo-sequence-old-ref", dict(loss_type="dr_grpo", importance_sampling_level="sequence",
                                      max_completion_length=9), True, True, True, 2),
]  # fmt: skip


def _check_grpo_fused(case, dtype, jit):
    """Dense JAX token log-probabilities at a temperature -> ``grpo_loss`` == ``liger_fused_linear_grpo``."""
    _, options, with_old, with_ref, with_bias, chunk_size = GRPO_FUSED_BY_ID[case]
    b, temperature = 6, 0.7
    x, kernel, bias, ids, ref_x, ref_kernel, ref_bias = _head_data(6, b, dtype=dtype)
    ids = np.abs(ids) % kernel.shape[1]  # completion tokens: no ignore index, the mask says what counts
    r = np.random.default_rng(7)
    mask = r.uniform(size=ids.shape) > 0.2
    mask[2] = False
    advantages = np.asarray(r.normal(size=b), dtype)
    old = np.asarray(-r.uniform(0.5, 4.0, size=ids.shape), dtype) if with_old else None
    bias = bias if with_bias else None

    def objective(x, kernel, bias):
        ref = None
        if with_ref:
            ref = jax.lax.stop_gradient(
                _token_log_probs(ref_x, ref_kernel, ref_bias, ids, temperature=temperature)
            )
        lp = _token_log_probs(x, kernel, bias, ids, temperature=temperature)
        return jaxloss.grpo_loss(lp, mask, advantages, old_log_probs=old, ref_log_probs=ref, **options)

    value_and_grad = jax.value_and_grad(objective, argnums=(0, 1, 2) if with_bias else (0, 1))
    value, grads = (jax.jit(value_and_grad) if jit else value_and_grad)(x, kernel, bias)
    arguments = dict(
        options,
        selected_token_ids=ids,
        attention_mask=mask,
        advantages=advantages,
        old_per_token_logps=old,
        temperature=temperature,
        chunk_size=chunk_size,
    )
    if with_ref:
        arguments.update(ref_input=ref_x, ref_kernel=ref_kernel, ref_bias=ref_bias)
    expected = liger_fused("grpo", x, kernel, bias, **arguments)
    assert value.dtype == jnp.dtype(dtype)
    _close(value, expected.loss, dtype, "loss")
    for name, g in zip(("inputs", "kernel", "bias"), grads, strict=False):
        _close(g, expected.grads[name], dtype, name)


GRPO_FUSED_BY_ID = {c[0]: c for c in GRPO_FUSED}


GRPO_RUNS = [(case, "float64", True) for case in GRPO_FUSED_BY_ID] + [
    ("dapo-token-old-ref", "float32", True),
    ("grpo-sequence-ref", "float32", True),
    ("bnpo-token-old", "float64", False),
]


@pytest.mark.parametrize(
    "case, dtype, jit", GRPO_RUNS, ids=[f"{c}-{d}-{'jit' if j else 'eager'}" for c, d, j in GRPO_RUNS]
)
def test_grpo_loss_on_a_dense_head_matches_liger_fused(case, dtype, jit):
    _check_grpo_fused(case, dtype, jit)


# --------------------------------------------------------------------------- where Liger is undefined


@pytest.mark.slow
def test_fully_ignored_sequence_in_averaged_mode_is_finite_where_liger_is_nan():
    """A sequence whose every token is ignored: Liger's average is 0/0 = NaN; jaxloss's is 0."""
    x, kernel, bias, labels, *_ = _head_data(8, 4)
    labels = labels.copy()
    labels[1] = -100  # the second chosen sequence: nothing left
    liger = liger_fused("simpo", x, kernel, bias, target=labels)  # SimPO averages
    assert math.isnan(liger.loss)
    mask = labels != -100

    @jax.jit
    def run(x, kernel, bias):
        def objective(x, kernel, bias):
            tlp = _token_log_probs(x, kernel, bias, labels)
            return _preference.preference_objective("simpo", tlp, mask, nll_weight=1.0)

        value, grads = jax.value_and_grad(objective, argnums=(0, 1, 2))(x, kernel, bias)
        # the expected value: SimPO's formula with the empty sequence's log-probability 0
        tlp = _token_log_probs(x, kernel, bias, labels)
        logps = _preference.sequence_log_probs(tlp, mask, average=True)
        nll = -jnp.sum(jnp.where(mask[:2], tlp[:2], 0)) / jnp.sum(mask[:2])
        return value, grads, logps, jnp.mean(jaxloss.simpo_loss(logps[:2], logps[2:])) + nll

    value, grads, logps, expected = run(x, kernel, bias)
    assert np.isfinite(float(value)) and all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    assert float(jnp.max(jnp.abs(grads[0][1]))) == 0.0  # the empty sequence's inputs get no gradient
    assert float(logps[1]) == 0.0
    np.testing.assert_allclose(float(value), float(expected), rtol=1e-12)


@pytest.mark.slow
def test_nll_without_chosen_tokens_is_zero_where_liger_is_nan():
    x, kernel, bias, labels, *_ = _head_data(9, 4)
    labels = labels.copy()
    labels[:2] = -100  # no chosen token at all
    liger = liger_fused("cpo", x, kernel, bias, target=labels)  # CPO sums, with NLL
    assert math.isnan(liger.loss)
    tlp = jnp.asarray(np.random.default_rng(0).normal(size=labels.shape))

    def objective(tlp):
        return _preference.preference_objective("cpo", tlp, labels != -100)

    value, grad = jax.jit(jax.value_and_grad(objective))(tlp)
    logps = _preference.sequence_log_probs(tlp, labels != -100, average=False)
    np.testing.assert_allclose(
        float(value), float(jnp.mean(jaxloss.cpo_loss(logps[:2], logps[2:]))), rtol=1e-12
    )
    assert bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.slow
def test_extreme_margins_and_certain_completions_stay_finite():
    """DPO at margins of +-1000 (DiscoPOP: Liger's inf * 0 = NaN) and ORPO at probability 1 (Liger:
    inf); eager: small functions."""
    c = jnp.array([-1.0, -10000.0, -5.0])
    rj = jnp.array([-30000.0, -1.0, -5.0])
    fn = liger_function("dpo").preference_loss_fn
    liger = fn(
        torch.tensor(np.asarray(c)), torch.tensor(np.asarray(rj)), torch.zeros(6, 1), loss_type="discopop"
    )[0]
    assert math.isnan(float(liger))
    for t in ("discopop", "exo_pair", "sppo_hard"):
        kw = dict(loss_type=t, label_smoothing=SMOOTHING.get(t, 0.0))
        value, grads = jax.value_and_grad(
            lambda a, b, kw=kw: jnp.sum(jaxloss.dpo_loss(a, b, **kw)), argnums=(0, 1)
        )(c, rj)
        assert np.isfinite(float(value)) and all(bool(jnp.all(jnp.isfinite(g))) for g in grads), t
    certain = jnp.array([0.0, -1e-9, -0.5])
    value, grads = jax.value_and_grad(lambda a, b: jnp.sum(jaxloss.orpo_loss(a, b)), argnums=(0, 1))(
        certain, certain[::-1]
    )
    assert np.isfinite(float(value)) and all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


@pytest.mark.slow
def test_grpo_padding_values_do_not_matter():
    """Masked tokens may hold anything: the value and gradients equal those with zeros there."""
    lp, old, ref, mask, adv = _grpo_data(10)
    garbage = np.where(mask, 0.0, 1e30)

    def loss(lp, old, ref):
        return jaxloss.grpo_loss(lp, mask, adv, old_log_probs=old, ref_log_probs=ref, loss_type="grpo")

    fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))
    clean = fn(*(np.where(mask, a, 0.0) for a in (lp, old, ref)))
    dirty = fn(*(np.where(mask, a, 0.0) - garbage for a in (lp, old, ref)))
    np.testing.assert_allclose(float(dirty[0]), float(clean[0]), rtol=1e-12)
    for a, b in zip(dirty[1], clean[1], strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=0)


@pytest.mark.slow
def test_every_token_ignored_is_finite_for_every_method():
    """A batch without a single counted token, summed and averaged: finite values, zero gradients."""
    tlp = jnp.asarray(np.random.default_rng(12).normal(size=(4, 3)))
    mask = jnp.zeros((4, 3), bool)
    kto = dict(preference_labels=np.array([True, False, True, False]), kl=0.1)

    @jax.jit
    def run(tlp):
        out = {}
        for method in _preference.PREFERENCE_METHODS:
            for average in (False, True):

                def objective(tlp, method=method, average=average):
                    extra = kto if method == "kto" else {}
                    return _preference.preference_objective(
                        method, tlp, mask, average_log_prob=average, **extra
                    )

                out[method, average] = jax.value_and_grad(objective)(tlp)
        return out

    for key, (value, grad) in run(tlp).items():
        assert np.isfinite(float(value)), key
        assert bool(jnp.all(grad == 0)), key
