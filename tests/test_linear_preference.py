"""The fused post-training losses on a linear head, ``linear_preference_loss`` and ``linear_grpo_loss``,
against Liger-Kernel 0.8.5's ``liger_fused_linear_{dpo,simpo,cpo,orpo,kto,grpo}`` (``compiled=False``,
``tests/liger_reference.py``): the value and its gradients with respect to the inputs, the kernel and
the bias.

float64 to 1e-9 relative (Liger's float32 upcasts made float64, see ``tests/liger_reference.py``);
float32 at 1e-4 of the largest magnitude (Liger itself computes in float32; the two sides block the
vocabulary differently). The reference comparisons run the tiled path (ragged ``block_size`` and
``vocab_block_size``); tiled == dense is checked separately.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from tests.helpers import run_python
from tests.liger_reference import liger_fused

RTOL = {"float64": 1e-9, "float32": 1e-4}
TILES = dict(block_size=5, vocab_block_size=16)  # ragged over 24 tokens and 40 classes


def _close(actual, expected, dtype, what=""):
    """``|a - e| <= rtol * (|e| + max |e|)`` elementwise (relative to the array's scale)."""
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert a.shape == e.shape, (what, a.shape, e.shape)
    scale = float(np.max(np.abs(e))) if e.size else 0.0
    bound = RTOL[dtype] * (np.abs(e) + scale) + 1e-300
    err = np.abs(a - e)
    assert np.all(err <= bound), (what, float(np.max(err / bound)))


def _head_data(seed, rows=4, t=6, d=8, v=40, dtype="float64"):
    """A head (inputs, kernel, bias), labels with an ignored prompt and padding, a reference head."""
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


# --------------------------------------------------------------------------- preference methods

# (id, method, jaxloss options, Liger arguments, reference model, bias, Liger chunk_size)
CASES = [
    ("dpo-sigmoid-ref-bias", "dpo", {}, {}, True, True, 1),
    ("dpo-robust-avg-nll", "dpo", dict(loss_type="robust", label_smoothing=0.1, nll_weight=0.5, average_log_prob=True),
     dict(loss_type="robust", label_smoothing=0.1, compute_nll_loss=True, alpha=0.5, average_log_prob=True), True, False, 2),
    ("dpo-apo_zero-no-ref", "dpo", dict(loss_type="apo_zero", beta=0.5), dict(loss_type="apo_zero", beta=0.5), False, True, 1),
    ("dpo-discopop-ref", "dpo", dict(loss_type="discopop", beta=0.3), dict(loss_type="discopop", beta=0.3), True, False, 2),
    ("dpo-sppo_hard-ref", "dpo", dict(loss_type="sppo_hard", beta=2.0), dict(loss_type="sppo_hard", beta=2.0), True, True, 1),
    ("simpo", "simpo", dict(beta=2.0, gamma=0.5), dict(beta=2.0, gamma=0.5), False, True, 1),
    ("simpo-nll-smooth", "simpo", dict(nll_weight=1.0, label_smoothing=0.1), dict(compute_nll_loss=True, label_smoothing=0.1), False, False, 2),
    ("cpo", "cpo", {}, {}, False, True, 2),
    ("cpo-avg-no-nll", "cpo", dict(nll_weight=0.0, average_log_prob=True, beta=0.5),
     dict(compute_nll_loss=False, average_log_prob=True, beta=0.5), False, True, 1),
    ("orpo", "orpo", dict(beta=0.2), dict(beta=0.2), False, True, 1),
    ("kto-ref", "kto", dict(beta=0.3, kl=0.2), dict(beta=0.3, kl=0.2), True, True, 2),
    ("kto-no-ref-avg", "kto", dict(average_log_prob=True), dict(average_log_prob=True), False, False, 1),
]  # fmt: skip
BY_ID = {c[0]: c for c in CASES}
KTO_LABELS = np.array([True, False, False, True])

RUNS = [(c, "float64") for c in BY_ID] + [
    ("dpo-sigmoid-ref-bias", "float32"),
    ("orpo", "float32"),
    ("kto-ref", "float32"),
]


def _preference_case(case, dtype, tiles=TILES):
    """(value_and_grad function of (inputs, kernel[, bias]), its arguments, the Liger arguments)."""
    _, method, ours, liger, with_ref, with_bias, chunk_size = BY_ID[case]
    x, kernel, bias, labels, ref_x, ref_kernel, ref_bias = _head_data(3, dtype=dtype)
    bias = bias if with_bias else None
    extra = dict(preference_labels=KTO_LABELS) if method == "kto" else {}
    if with_ref:
        extra.update(ref_inputs=ref_x, ref_kernel=ref_kernel, ref_bias=ref_bias)

    def loss(x, kernel, bias):
        return jaxloss.linear_preference_loss(
            x, kernel, labels, method=method, bias=bias, **ours, **extra, **tiles
        )

    argnums = (0, 1, 2) if with_bias else (0, 1)
    arguments = dict(liger, target=labels, chunk_size=chunk_size)
    if with_ref:
        arguments.update(ref_input=ref_x, ref_kernel=ref_kernel, ref_bias=ref_bias)
    if method == "kto":
        arguments["preference_labels"] = KTO_LABELS
    return jax.jit(jax.value_and_grad(loss, argnums=argnums)), (x, kernel, bias), arguments


@pytest.mark.parametrize("case, dtype", RUNS, ids=[f"{c}-{d}" for c, d in RUNS])
def test_linear_preference_loss_matches_liger_fused(case, dtype):
    """Every method, DPO loss types, NLL, averaging, bias on/off, reference model on/off, ignored tokens."""
    fn, (x, kernel, bias), arguments = _preference_case(case, dtype)
    value, grads = fn(x, kernel, bias)
    expected = liger_fused(BY_ID[case][1], x, kernel, bias, **arguments)
    assert value.dtype == jnp.dtype(dtype) and value.shape == ()
    _close(value, expected.loss, dtype, "loss")
    for name, g in zip(("inputs", "kernel", "bias"), grads, strict=False):
        assert g.dtype == jnp.dtype(dtype)
        _close(g, expected.grads[name], dtype, name)


TILED_VS_DENSE = ["dpo-robust-avg-nll", "kto-ref", "orpo"]


@pytest.mark.parametrize("case", TILED_VS_DENSE)
def test_linear_preference_loss_tiled_equals_dense(case):
    tiled, args, _ = _preference_case(case, "float64", tiles=dict(block_size=4, vocab_block_size=7))
    dense, _, _ = _preference_case(case, "float64", tiles={})  # 24 x 40 logits: the dense path
    (v1, g1), (v2, g2) = tiled(*args), dense(*args)
    np.testing.assert_allclose(float(v1), float(v2), rtol=1e-12)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-13)


@pytest.mark.slow
def test_linear_preference_loss_where_equals_ignore_index():
    x, kernel, bias, labels, ref_x, ref_kernel, _ = _head_data(4)
    where = labels != -100
    clean = np.where(where, labels, 7)

    def loss(labels, where, ignore_index):
        return jaxloss.linear_preference_loss(
            x, kernel, labels, ref_inputs=ref_x, ref_kernel=ref_kernel, where=where, ignore_index=ignore_index,
            nll_weight=0.3, **TILES,
        )  # fmt: skip

    masked = jax.jit(lambda labels, where: loss(labels, where, None))(clean, where)
    ignored = jax.jit(lambda labels: loss(labels, None, -100))(labels)
    np.testing.assert_allclose(float(masked), float(ignored), rtol=1e-12)


# --------------------------------------------------------------------------- where Liger is undefined


@pytest.mark.slow
def test_fully_ignored_sequence_is_finite_where_liger_is_nan():
    """Averaged mode, one sequence with no token: Liger 0/0 = NaN; jaxloss: that sequence's
    log-probability is 0 and its inputs get zero gradient."""
    x, kernel, bias, labels, *_ = _head_data(8)
    labels = labels.copy()
    labels[1] = -100
    assert math.isnan(liger_fused("simpo", x, kernel, bias, target=labels).loss)
    value, grads = jax.jit(
        jax.value_and_grad(
            lambda x, k, b: jaxloss.linear_preference_loss(x, k, labels, method="simpo", bias=b, **TILES),
            argnums=(0, 1, 2),
        )
    )(x, kernel, bias)
    assert np.isfinite(float(value)) and all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    assert float(jnp.max(jnp.abs(grads[0][1]))) == 0.0
    # the NLL with no chosen token at all (CPO): Liger NaN, jaxloss the preference term alone
    labels[:2] = -100
    assert math.isnan(liger_fused("cpo", x, kernel, bias, target=labels).loss)
    with_nll = jaxloss.linear_preference_loss(x, kernel, labels, method="cpo", bias=bias)
    without = jaxloss.linear_preference_loss(x, kernel, labels, method="cpo", bias=bias, nll_weight=0.0)
    assert np.isfinite(float(with_nll)) and float(with_nll) == float(without)


@pytest.mark.slow
def test_identical_chosen_and_rejected_give_log_2():
    x, kernel, bias, labels, *_ = _head_data(9)
    x2 = np.concatenate([x[:2], x[:2]])
    labels2 = np.concatenate([labels[:2], labels[:2]])
    for method in ("dpo", "simpo", "cpo"):
        options = dict(gamma=0.0) if method == "simpo" else {}
        value, grads = jax.jit(
            jax.value_and_grad(
                lambda x, k, method=method, options=options: jaxloss.linear_preference_loss(
                    x, k, labels2, method=method, nll_weight=0.0, **options, **TILES
                ),
                argnums=(0, 1),
            )
        )(x2, kernel)
        np.testing.assert_allclose(float(value), math.log(2), rtol=1e-12)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


# --------------------------------------------------------------------------- GRPO

# (id, options, old log-probs, reference: None | "head" | "logps", bias, Liger chunk_size, temperature)
GRPO_CASES = [
    ("dapo-token-old-refhead-bias", dict(loss_type="dapo"), True, "head", True, 2, 0.7),
    ("grpo-token", dict(loss_type="grpo"), False, None, False, 1, 1.0),
    ("grpo-sequence-refhead", dict(loss_type="grpo", importance_sampling_level="sequence"), False, "head", True, 1, 1.0),
    ("bnpo-token-old-reflogps", dict(loss_type="bnpo", epsilon_high=0.28, beta=0.1), True, "logps", True, 3, 0.9),
    ("bnpo-sequence-old", dict(loss_type="bnpo", importance_sampling_level="sequence", beta=0.0), True, None, False, 2, 1.0),
    ("dr_grpo-token-refhead", dict(loss_type="dr_grpo", max_completion_length=9), False, "head", False, 1, 1.2),
    ("dr_grpo-sequence-old-refhead", dict(loss_type="dr_grpo", importance_sampling_level="sequence",
                                          max_completion_length=9), True, "head", True, 2, 0.7),
    ("dapo-sequence-old-reflogps", dict(loss_type="dapo", importance_sampling_level="sequence"), True, "logps", False, 1, 1.0),
]  # fmt: skip
GRPO_BY_ID = {c[0]: c for c in GRPO_CASES}
GRPO_RUNS = [(c, "float64") for c in GRPO_BY_ID] + [
    ("dapo-token-old-refhead-bias", "float32"),
    ("grpo-sequence-refhead", "float32"),
]


def _grpo_case(case, dtype, tiles=TILES):
    _, options, with_old, ref, with_bias, chunk_size, temperature = GRPO_BY_ID[case]
    b = 4
    x, kernel, bias, ids, ref_x, ref_kernel, ref_bias = _head_data(6, rows=b, dtype=dtype)
    ids = np.abs(ids) % kernel.shape[1]
    r = np.random.default_rng(7)
    mask = r.uniform(size=ids.shape) > 0.2
    mask[2, 3:] = False
    advantages = np.asarray(r.normal(size=b), dtype)
    old = np.asarray(-r.uniform(0.5, 4.0, size=ids.shape), dtype) if with_old else None
    ref_logps = np.asarray(-r.uniform(0.5, 4.0, size=ids.shape), dtype)
    bias = bias if with_bias else None
    extra = dict(old_log_probs=old, temperature=temperature)
    if ref == "head":
        extra.update(ref_inputs=ref_x, ref_kernel=ref_kernel, ref_bias=ref_bias)
    elif ref == "logps":
        extra["ref_log_probs"] = ref_logps

    def loss(x, kernel, bias):
        return jaxloss.linear_grpo_loss(
            x, kernel, ids, mask, advantages, bias=bias, **options, **extra, **tiles
        )

    arguments = dict(
        options,
        selected_token_ids=ids,
        attention_mask=mask,
        advantages=advantages,
        old_per_token_logps=old,
        temperature=temperature,
        chunk_size=chunk_size,
    )
    if ref == "head":
        arguments.update(ref_input=ref_x, ref_kernel=ref_kernel, ref_bias=ref_bias)
    elif ref == "logps":
        arguments["ref_per_token_logps"] = ref_logps
    argnums = (0, 1, 2) if with_bias else (0, 1)
    return jax.jit(jax.value_and_grad(loss, argnums=argnums)), (x, kernel, bias), arguments


@pytest.mark.parametrize("case, dtype", GRPO_RUNS, ids=[f"{c}-{d}" for c, d in GRPO_RUNS])
def test_linear_grpo_loss_matches_liger_fused(case, dtype):
    """Every loss type, both importance-sampling levels, with/without KL (a reference head or given
    reference log-probabilities) and the old policy, bias on/off, a temperature."""
    fn, (x, kernel, bias), arguments = _grpo_case(case, dtype)
    value, grads = fn(x, kernel, bias)
    expected = liger_fused("grpo", x, kernel, bias, **arguments)
    assert value.dtype == jnp.dtype(dtype) and value.shape == ()
    _close(value, expected.loss, dtype, "loss")
    for name, g in zip(("inputs", "kernel", "bias"), grads, strict=False):
        _close(g, expected.grads[name], dtype, name)


@pytest.mark.parametrize("case", ["dr_grpo-sequence-old-refhead", "grpo-token"])
def test_linear_grpo_loss_tiled_equals_dense(case):
    tiled, args, _ = _grpo_case(case, "float64", tiles=dict(block_size=3, vocab_block_size=9))
    dense, _, _ = _grpo_case(case, "float64", tiles={})
    (v1, g1), (v2, g2) = tiled(*args), dense(*args)
    np.testing.assert_allclose(float(v1), float(v2), rtol=1e-12)
    for a, b in zip(g1, g2, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-13)


@pytest.mark.slow
def test_linear_grpo_padding_may_hold_anything():
    """Masked tokens with out-of-vocabulary ids and NaN inputs: the same value and gradients."""
    fn, (x, kernel, bias), arguments = _grpo_case("dapo-token-old-refhead-bias", "float64")
    mask = arguments["attention_mask"]
    _, options, *_ = GRPO_BY_ID["dapo-token-old-refhead-bias"]
    ids = np.where(mask, arguments["selected_token_ids"], 10**6)
    dirty = np.where(mask[..., None], x, np.nan)

    def loss(x, ids):
        return jaxloss.linear_grpo_loss(
            x, kernel, ids, mask, arguments["advantages"], bias=bias,
            old_log_probs=arguments["old_per_token_logps"], temperature=0.7, **options, **TILES,
        )  # fmt: skip

    v1, g1 = jax.value_and_grad(loss)(x, arguments["selected_token_ids"])
    v2, g2 = jax.value_and_grad(loss)(dirty, ids)
    np.testing.assert_allclose(float(v2), float(v1), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g2), np.asarray(g1), rtol=1e-12, atol=0)


# --------------------------------------------------------------------------- memory


def _temp_bytes(fn, *shapes):
    argnums = tuple(range(2))
    compiled = jax.jit(jax.value_and_grad(fn, argnums=argnums)).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes


MEMORY_LIMIT = 4 * 2**30 / 50  # 1/50 of one 8192 x 131072 float32 matrix (82 MiB; measured 72 MiB)


@pytest.mark.slow
def test_dpo_with_reference_and_grpo_value_and_grad_memory():
    """2B T = 8192 tokens, D = 1024, V = 131072, float32: value+grad temporaries below 1/50 of the logits."""
    rows, t, d, v = 16, 512, 1024, 131072
    f32 = jnp.float32
    x = jax.ShapeDtypeStruct((rows, t, d), f32)
    k = jax.ShapeDtypeStruct((d, v), f32)
    ids = jax.ShapeDtypeStruct((rows, t), jnp.int32)

    def dpo(x, k, rx, rk, labels):
        return jaxloss.linear_preference_loss(x, k, labels, ref_inputs=rx, ref_kernel=rk)

    def grpo(x, k, rx, rk, ids, mask, adv, old):
        return jaxloss.linear_grpo_loss(x, k, ids, mask, adv, ref_inputs=rx, ref_kernel=rk, old_log_probs=old)

    dpo_bytes = _temp_bytes(dpo, x, k, x, k, ids)
    grpo_bytes = _temp_bytes(
        grpo, x, k, x, k, ids, jax.ShapeDtypeStruct((rows, t), jnp.bool_), jax.ShapeDtypeStruct((rows,), f32),
        jax.ShapeDtypeStruct((rows, t), f32),
    )  # fmt: skip
    print(f"DPO+ref {dpo_bytes / 2**20:.1f} MiB, GRPO+ref {grpo_bytes / 2**20:.1f} MiB")
    assert dpo_bytes < MEMORY_LIMIT, dpo_bytes
    assert grpo_bytes < MEMORY_LIMIT, grpo_bytes


# --------------------------------------------------------------------------- vocabulary-parallel

_SHARDED = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, PartitionSpec as P
jax.config.update("jax_enable_x64", True)
import jaxloss

assert len(jax.devices()) == 4
mesh = Mesh(np.array(jax.devices()), ("v",))
r = np.random.default_rng(0)
rows, t, d, v = 4, 5, 6, 44  # 11 classes per device, ragged vocabulary blocks of 4
x, rx = r.normal(size=(rows, t, d)), r.normal(size=(rows, t, d + 1))
k, rk = r.normal(size=(d, v)) / np.sqrt(d), r.normal(size=(d + 1, v)) / np.sqrt(d)
b, rb = r.normal(size=v), r.normal(size=v)
y = r.integers(0, v, size=(rows, t)); y[:, 0] = -100
mask = r.uniform(size=(rows, t)) > 0.2
adv, old = r.normal(size=rows), -r.uniform(0.5, 3, size=(rows, t))
tiles = dict(block_size=3, vocab_block_size=4)

def pref(x, k, b, rk, rb, axis_name=None):
    return jaxloss.linear_preference_loss(x, k, y, bias=b, ref_inputs=rx, ref_kernel=rk, ref_bias=rb,
                                          nll_weight=0.5, average_log_prob=True, axis_name=axis_name, **tiles)

def grpo(x, k, b, rk, rb, axis_name=None):
    return jaxloss.linear_grpo_loss(x, k, y % v, mask, adv, bias=b, ref_inputs=rx, ref_kernel=rk,
                                    ref_bias=rb, old_log_probs=old, temperature=0.8, axis_name=axis_name, **tiles)

specs = (P(), P(None, "v"), P("v"), P(None, "v"), P("v"))
for f in (pref, grpo):
    sharded = jax.shard_map(lambda *a, f=f: f(*a, axis_name="v"), mesh=mesh, in_specs=specs, out_specs=P())
    v1, g1 = jax.value_and_grad(f, argnums=(0, 1, 2))(x, k, b, rk, rb)
    v2, g2 = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1, 2)))(x, k, b, rk, rb)
    assert np.isfinite(v1)
    np.testing.assert_allclose(v2, v1, rtol=1e-12)
    for a, c in zip(g2, g1):
        np.testing.assert_allclose(a, c, rtol=1e-10, atol=1e-12)
    print("ok")
"""


@pytest.mark.slow
def test_vocab_parallel_on_four_devices_equals_single_device():
    assert run_python(_SHARDED, devices=4, timeout=300).count("ok") == 2
