"""Degenerate inputs: all-equal points, zero vectors, one-hot and uniform distributions,
saturated and -inf logits, single-class batches, every label ignored, everything masked.

Values and gradients are finite wherever the mathematics is finite, and take
the documented value (listed in ``docs/design.md``) where it is not.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
import jaxloss.torch as jt
from tests.helpers import value_and_grads
from tests.registry import GENERIC, float_leaves, ids


def _finite(tree):
    return all(bool(jnp.all(jnp.isfinite(o))) for o in float_leaves(tree))


# --------------------------------------------------------------------------- geometry: coincident points

GEOMETRIC = [
    s
    for s in GENERIC
    if s.family in ("norms", "distances", "search", "metric", "residual") and s.diff and s.lowp
]


@pytest.mark.slow
@pytest.mark.parametrize("spec", GEOMETRIC, ids=ids(GEOMETRIC))
def test_coincident_and_zero_points_finite(spec):
    """Every point equal (all rows of every float argument the same) or all zero."""
    base = list(spec.args(n=max(4, spec.min_n), seed=21))
    row = jnp.asarray(np.random.default_rng(22).normal(size=base[spec.diff[0]].shape[-1]))
    cases = {}
    for how in ("all_equal", "zero"):
        args = list(base)
        for i in spec.diff:
            args[i] = jnp.zeros_like(args[i]) + (row if how == "all_equal" else 0.0)
        cases[how] = args
    # both cases in one compiled program (independent subcomputations)
    results = jax.jit(lambda cases: {how: value_and_grads(spec, a) for how, a in cases.items()})(cases)
    for how, (value, grads) in results.items():
        assert _finite(value), (spec.name, how, value)
        assert _finite(grads), (spec.name, how, grads)


@pytest.mark.slow
@pytest.mark.parametrize(
    "fn",
    [
        lambda x, y: jaxloss.cdist(x, y),
        lambda x, y: jaxloss.pairwise_distance(x, y),
        lambda x, y: jaxloss.cdist(x, y, metric="sqeuclidean"),
        lambda x, y: jaxloss.cdist(x, y, metric="cityblock"),
        lambda x, y: jaxloss.cdist(x, y, metric="chebyshev"),
        lambda x, y: jaxloss.cdist(x, y, metric="minkowski", p=3.0),
        lambda x, y: jt.cdist(x, y, p=1.0),
        lambda x, y: jt.cdist(x, y, p=0.5),
        lambda x, y: jaxloss.knn(x, y, 2)[0],
    ],
)
def test_distance_between_equal_points_is_zero_with_zero_gradient(fn):
    x = jnp.tile(jnp.array([[0.3, -1.2, 2.0]]), (3, 1))
    value = fn(x, x)
    assert bool(jnp.all(value == 0))
    gx, gy = jax.grad(lambda a, b: jnp.sum(fn(a, b)), argnums=(0, 1))(x, x)
    assert bool(jnp.all(gx == 0)) and bool(jnp.all(gy == 0))


@pytest.mark.slow
def test_norm_of_zero_is_zero_with_zero_gradient():
    z = jnp.zeros((2, 3, 3))
    for fn in (
        lambda a: jaxloss.vector_norm(a, axis=-1),
        lambda a: jaxloss.vector_norm(a, ord=1, axis=-1),
        lambda a: jaxloss.vector_norm(a, ord=0.5, axis=-1),
        lambda a: jaxloss.vector_norm(a, ord=jnp.inf, axis=-1),
        jaxloss.frobenius_norm,
        jaxloss.nuclear_norm,
        jaxloss.spectral_norm,
    ):
        assert bool(jnp.all(fn(z) == 0))
        g = jax.grad(lambda a, fn=fn: jnp.sum(fn(a)))(z)
        assert bool(jnp.all(g == 0))


@pytest.mark.slow
def test_cosine_of_a_zero_vector_is_zero():
    z, x = jnp.zeros((2, 3)), jnp.ones((2, 3))
    assert bool(jnp.all(jaxloss.cosine_similarity(z, x) == 0))
    assert bool(jnp.all(jaxloss.cosine_distance(z, z) == 1))
    assert bool(jnp.all(jt.cosine_similarity(z, x) == 0))
    g = jax.grad(lambda a: jnp.sum(jaxloss.cosine_similarity(a, x)))(z)
    assert bool(jnp.all(jnp.isfinite(g)))


# --------------------------------------------------------------------------- distributions

ONE_HOT = jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
OTHER = jnp.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])  # disjoint from row 0, equal to row 1
UNIFORM = jnp.full((2, 3), 1 / 3)

# name -> (function, how its two arguments are made from a target p and a prediction q,
#          value at disjoint one-hots, value at (p uniform, q uniform), finite when p is
#          one-hot and q uniform, finite when p is uniform and q one-hot)
_P_Q = lambda p, q: (p, q)  # noqa: E731
_Q_P = lambda p, q: (q, p)  # noqa: E731  (optax order: predictions first)
_LOGQ_P = lambda p, q: (jnp.log(q), p)  # noqa: E731
_LOGQ_LOGP = lambda p, q: (jnp.log(q), jnp.log(p))  # noqa: E731
INF, LOG3 = math.inf, math.log(3)
PAIRWISE = {
    "bhattacharyya_distance": (jaxloss.bhattacharyya_distance, _P_Q, INF, 0.0, True, True),
    "cross_entropy": (jaxloss.cross_entropy, _Q_P, INF, LOG3, True, False),
    "hellinger_distance": (jaxloss.hellinger_distance, _P_Q, 1.0, 0.0, True, True),
    "jensen_shannon_distance": (
        jaxloss.jensen_shannon_distance,
        _P_Q,
        math.sqrt(math.log(2)),
        0.0,
        True,
        True,
    ),
    "js_divergence": (jaxloss.js_divergence, _P_Q, math.log(2), 0.0, True, True),
    "symmetric_kl_divergence": (jaxloss.symmetric_kl_divergence, _P_Q, INF, 0.0, False, False),
    "total_variation_distance": (jaxloss.total_variation_distance, _P_Q, 1.0, 0.0, True, True),
    # D_1/2(uniform || one-hot) is finite; d/dq of q^(1/2) at q = 0 is infinite, the gradient 0
    "renyi_divergence": (
        lambda a, b: jaxloss.renyi_divergence(a, b, alpha=0.5),
        _Q_P,
        INF,
        0.0,
        True,
        True,
    ),
    "kl_divergence": (jaxloss.kl_divergence, _LOGQ_P, INF, 0.0, True, False),
    "kl_divergence_with_log_targets": (
        jaxloss.kl_divergence_with_log_targets,
        _LOGQ_LOGP,
        INF,
        0.0,
        True,
        False,
    ),
    "convex_kl_divergence": (jaxloss.convex_kl_divergence, _LOGQ_P, INF, 0.0, True, False),
    "generalized_kl_divergence": (jaxloss.generalized_kl_divergence, _LOGQ_P, INF, 0.0, True, False),
    "torch.kl_div": (lambda a, b: jt.kl_div(a, b, reduction="none").sum(-1), _LOGQ_P, INF, 0.0, True, False),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PAIRWISE))
def test_one_hot_and_uniform_distributions(name):
    fn, make, disjoint, uniform, onehot_uniform, uniform_onehot = PAIRWISE[name]

    def value_and_grads(p, q):
        args = make(p, q)  # gradients with respect to the function's own arguments
        return fn(*args), jax.grad(lambda a, b: jnp.sum(fn(a, b)), argnums=(0, 1))(*args)

    # identical one-hots: 0 (cross-entropy: the entropy, 0); gradients finite
    same, g = value_and_grads(ONE_HOT, ONE_HOT)
    np.testing.assert_allclose(same, 0.0, atol=1e-12)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in g), (name, g)
    # disjoint one-hots (row 0) and equal ones (row 1): the documented value
    np.testing.assert_allclose(fn(*make(ONE_HOT, OTHER)), [disjoint, 0.0], atol=1e-12)
    value, g = value_and_grads(UNIFORM, UNIFORM)
    np.testing.assert_allclose(value, uniform, atol=1e-12)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in g), (name, g)
    for p, q, finite in ((ONE_HOT, UNIFORM, onehot_uniform), (UNIFORM, ONE_HOT, uniform_onehot)):
        value, g = value_and_grads(p, q)
        assert bool(jnp.all(jnp.isfinite(value))) == bool(finite), (name, value)
        if finite is True:
            assert all(bool(jnp.all(jnp.isfinite(x))) for x in g), (name, g)
        elif not finite:
            assert bool(jnp.all(value == math.inf)), (name, value)


def test_entropy_of_one_hot_and_uniform():
    np.testing.assert_allclose(jaxloss.entropy(ONE_HOT), 0.0, atol=0)
    np.testing.assert_allclose(jaxloss.entropy(UNIFORM), math.log(3), rtol=1e-14)
    for p in (ONE_HOT, UNIFORM):
        assert bool(jnp.all(jnp.isfinite(jax.grad(lambda a: jnp.sum(jaxloss.entropy(a)))(p))))


# --------------------------------------------------------------------------- logits

SAT = jnp.array([[1e4, -1e4, 0.0], [-jnp.inf, 2.0, 1.0], [1e38, -1e38, 0.0]], jnp.float32)
SAT_LABELS = jnp.array([0, 1, 0])  # never the -inf class
SOFTMAX = {
    "softmax_cross_entropy_with_integer_labels": lambda x, y: (
        jaxloss.softmax_cross_entropy_with_integer_labels(x, y)
    ),
    "softmax_cross_entropy": lambda x, y: jaxloss.softmax_cross_entropy(x, jax.nn.one_hot(y, 3)),
    "safe_softmax_cross_entropy": lambda x, y: jaxloss.safe_softmax_cross_entropy(x, jax.nn.one_hot(y, 3)),
    "torch.cross_entropy": lambda x, y: jt.cross_entropy(x, y, reduction="none"),
    "torch.nll_loss": lambda x, y: jt.nll_loss(jax.nn.log_softmax(x), y, reduction="none"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SOFTMAX))
def test_saturated_and_minus_inf_logits(name):
    fn = SOFTMAX[name]
    value = fn(SAT, SAT_LABELS)
    assert bool(jnp.all(jnp.isfinite(value))), (name, value)
    np.testing.assert_allclose(value[0], 0.0, atol=0)  # correct class ahead by 1e4
    np.testing.assert_allclose(value[1], float(jnp.log1p(jnp.exp(-1.0))), rtol=1e-6)
    g = jax.grad(lambda x: jnp.sum(fn(x, SAT_LABELS)))(SAT)
    assert bool(jnp.all(jnp.isfinite(g))), (name, g)
    assert float(g[1, 0]) == 0.0  # no gradient into a -inf logit


@pytest.mark.slow
def test_minus_inf_logit_at_the_true_class_is_inf():
    x = jnp.array([[-jnp.inf, 0.0, 1.0]])
    assert float(jaxloss.softmax_cross_entropy_with_integer_labels(x, jnp.array([0]))[0]) == math.inf
    smoothed = jaxloss.softmax_cross_entropy_with_integer_labels(x, jnp.array([1]), label_smoothing=0.1)
    assert float(smoothed[0]) == math.inf


@pytest.mark.slow
@pytest.mark.parametrize(
    "fn",
    [
        jaxloss.sigmoid_binary_cross_entropy,
        jaxloss.sigmoid_focal_loss,
        lambda x, y: jt.binary_cross_entropy_with_logits(x, y, reduction="none"),
    ],
)
def test_saturated_sigmoid_logits(fn):
    # up to 1e38; sigmoid_focal_loss's gradient is NaN beyond ~1.7e38 (see the notes)
    z = jnp.array([1e4, -1e4, 1e38, -1e38, 50.0], jnp.float32)
    y = jnp.array([1.0, 0.0, 1.0, 0.0, 1.0], jnp.float32)  # all confidently right
    value = fn(z, y)
    assert bool(jnp.all(value >= 0)) and bool(jnp.all(value < 1e-20)), value
    wrong = fn(z[:2], 1 - y[:2])  # confidently wrong: |z|, finite
    np.testing.assert_allclose(wrong, 1e4, rtol=1e-6)
    for labels in (y, 1 - y):
        g = jax.grad(lambda a, labels=labels: jnp.sum(fn(a, labels)))(z)
        assert bool(jnp.all(jnp.isfinite(g))), g


@pytest.mark.slow
def test_binary_cross_entropy_at_zero_and_one():
    p = jnp.array([0.0, 1.0, 0.0, 1.0])
    y = jnp.array([0.0, 1.0, 1.0, 0.0])
    value = jaxloss.binary_cross_entropy(p, y)
    np.testing.assert_array_equal(value, [0.0, 0.0, math.inf, math.inf])  # log 0: documented inf
    np.testing.assert_array_equal(jaxloss.binary_cross_entropy(p, y, log_clamp=-100.0), [0, 0, 100, 100])
    np.testing.assert_array_equal(jt.binary_cross_entropy(p, y, reduction="none"), [0, 0, 100, 100])
    g = jax.grad(lambda a: jnp.sum(jt.binary_cross_entropy(a, y)))(p)
    assert bool(jnp.all(jnp.isfinite(g))), g


# --------------------------------------------------------------------------- batches

BATCH = {
    "batch_all_triplet_loss": jaxloss.batch_all_triplet_loss,
    "batch_hard_triplet_loss": jaxloss.batch_hard_triplet_loss,
    "semi_hard_triplet_loss": jaxloss.semi_hard_triplet_loss,
    "lifted_structured_loss": jaxloss.lifted_structured_loss,
    "soft_nearest_neighbor_loss": jaxloss.soft_nearest_neighbor_loss,
    "ntxent": jaxloss.ntxent,
    "supervised_contrastive_loss": jaxloss.supervised_contrastive_loss,
}
# value for a batch of one class (no negatives) and of all-distinct labels (no positives)
SINGLE_CLASS_ZERO = {
    "batch_all_triplet_loss",
    "batch_hard_triplet_loss",
    "lifted_structured_loss",
    "ntxent",
    "soft_nearest_neighbor_loss",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BATCH))
@pytest.mark.parametrize("labels", ["single_class", "all_distinct"])
@pytest.mark.parametrize("points", ["random", "all_equal"])
def test_single_class_and_all_distinct_batches(name, labels, points):
    fn = BATCH[name]
    x = jnp.asarray(np.random.default_rng(31).normal(size=(5, 3)))
    if points == "all_equal":
        x = jnp.tile(x[:1], (5, 1))
    y = jnp.zeros(5, jnp.int32) if labels == "single_class" else jnp.arange(5, dtype=jnp.int32)
    value, g = jax.value_and_grad(lambda a: fn(a, y))(x)
    assert bool(jnp.isfinite(value)) and bool(jnp.all(jnp.isfinite(g))), (name, value, g)
    if labels == "all_distinct":
        assert float(value) == 0.0  # no positive pair: a mean over nothing
    if labels == "single_class" and name in SINGLE_CLASS_ZERO:
        assert float(value) == 0.0, (name, value)  # no negative
    if labels == "single_class" and name == "semi_hard_triplet_loss":
        # TF-Addons: no negative -> the row minimum (0) is used: relu(d_ap + margin), mean over pairs
        assert float(value) > 0.0


@pytest.mark.parametrize(
    "fn, empty",
    [
        (lambda x, y: jaxloss.softmax_cross_entropy_with_integer_labels(x, y, ignore_index=-100), 0.0),
        (
            lambda x, y: jaxloss.softmax_cross_entropy_with_integer_labels(
                x, y, ignore_index=-100, label_smoothing=0.2
            ),
            0.0,
        ),
        (lambda x, y: jt.cross_entropy(x, y), 0.0),
        (lambda x, y: jt.cross_entropy(x, y, reduction="sum"), 0.0),
        (lambda x, y: jt.cross_entropy(x, y, weight=jnp.array([1.0, 2.0, 3.0])), 0.0),
        (lambda x, y: jt.nll_loss(jax.nn.log_softmax(x), y), 0.0),
    ],
)
def test_every_label_ignored(fn, empty):
    x = jnp.asarray(np.random.default_rng(41).normal(size=(4, 3)))
    y = jnp.full(4, -100, jnp.int32)
    value, g = jax.value_and_grad(lambda a: jnp.sum(fn(a, y)))(x)
    assert float(value) == empty  # PyTorch: NaN for "mean"
    assert bool(jnp.all(g == 0))


MASKED = {
    "entropy": lambda p, q, w: jaxloss.entropy(p, where=w),
    "kl_divergence": lambda p, q, w: jaxloss.kl_divergence(jnp.log(q), p, where=w),
    "js_divergence": lambda p, q, w: jaxloss.js_divergence(p, q, where=w),
    "hellinger_distance": lambda p, q, w: jaxloss.hellinger_distance(p, q, where=w),
    "total_variation_distance": lambda p, q, w: jaxloss.total_variation_distance(p, q, where=w),
    "cross_entropy": lambda p, q, w: jaxloss.cross_entropy(p, q, where=w),
    "softmax_cross_entropy": lambda p, q, w: jaxloss.softmax_cross_entropy(jnp.log(q), p, where=w),
    "cosine_similarity": lambda p, q, w: jaxloss.cosine_similarity(p, q, where=w),
    "smooth_labels": lambda p, q, w: jaxloss.smooth_labels(p, 0.1, where=w).sum(-1),
    "reduce": lambda p, q, w: jaxloss.reduce(p, where=w),
}


@pytest.mark.parametrize("name", sorted(MASKED))
def test_everything_masked(name):
    fn = MASKED[name]
    p, q = UNIFORM, jnp.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
    w = jnp.zeros((2, 3), bool)
    value, g = jax.value_and_grad(lambda a, b: jnp.sum(fn(a, b, w)), argnums=(0, 1))(p, q)
    assert bool(jnp.isfinite(value)), (name, value)
    if name not in ("smooth_labels",):
        assert float(value) == 0.0, (name, value)  # an empty sum (or mean) is 0
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in g), (name, g)


# --------------------------------------------------------------------------- preference and policy losses

LOG2 = math.log(2.0)
# (loss, value at identical chosen and rejected completions with equal reference log-probabilities)
IDENTICAL_PAIRS = {
    "dpo sigmoid": (lambda c, r: jaxloss.dpo_loss(c, r, c, r), LOG2),
    "dpo hinge": (lambda c, r: jaxloss.dpo_loss(c, r, c, r, loss_type="hinge"), 1.0),
    "dpo exo_pair": (
        lambda c, r: jaxloss.dpo_loss(c, r, c, r, loss_type="exo_pair", label_smoothing=0.1),
        -LOG2 - 0.5 * math.log(0.9 * 0.1),
    ),
    "dpo nca_pair": (lambda c, r: jaxloss.dpo_loss(c, r, c, r, loss_type="nca_pair"), 2 * LOG2),
    "dpo robust": (lambda c, r: jaxloss.dpo_loss(c, r, c, r, loss_type="robust", label_smoothing=0.2), LOG2),
    "dpo bco_pair": (lambda c, r: jaxloss.dpo_loss(c, r, c, r, loss_type="bco_pair"), 2 * LOG2),
    "dpo sppo_hard": (lambda c, r: jaxloss.dpo_loss(c, r, c, r, loss_type="sppo_hard", beta=0.5), 2.0),
    "dpo apo_zero": (lambda c, r: jaxloss.dpo_loss(c, r, c, r, loss_type="apo_zero"), 1.0),
    "dpo apo_down": (lambda c, r: jaxloss.dpo_loss(c, r, c, r, loss_type="apo_down"), 1.0),
    "dpo discopop": (lambda c, r: jaxloss.dpo_loss(c, r, c, r, loss_type="discopop"), 0.5 * LOG2 + 0.5),
    "simpo": (lambda c, r: jaxloss.simpo_loss(c, r, gamma=0.0), LOG2),
    "cpo": (lambda c, r: jaxloss.cpo_loss(c, r, label_smoothing=0.1), LOG2),
    "orpo": (lambda c, r: jaxloss.orpo_loss(c, r, beta=1.0), LOG2),
    "kto": (lambda c, r: jaxloss.kto_loss(c, jnp.array([True, False, True]), r), 0.5),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(IDENTICAL_PAIRS))
def test_identical_chosen_and_rejected_completions(name):
    """No preference signal: the margin is 0, the value its documented constant, gradients finite."""
    fn, expected = IDENTICAL_PAIRS[name]
    logps = jnp.array([-3.0, -0.5, -12.0]) if name != "orpo" else jnp.array([-0.3, -0.5, -2.0])
    value, grads = jax.value_and_grad(lambda c, r: jnp.sum(fn(c, r)), argnums=(0, 1))(logps, logps)
    np.testing.assert_allclose(float(value), 3 * expected, rtol=1e-12)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads), name


@pytest.mark.slow
@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "bnpo", "dr_grpo"])
def test_grpo_with_every_token_masked(loss_type):
    """No completion token: 0 with zero gradients (Liger: 0 too, but "grpo" / "dr_grpo" of an empty
    batch divide 0 by 0)."""
    lp = jnp.asarray(np.random.default_rng(51).normal(size=(3, 4)))
    mask = jnp.zeros((3, 4), bool)

    def loss(lp, old, ref):
        return jaxloss.grpo_loss(
            lp,
            mask,
            jnp.ones(3),
            old_log_probs=old,
            ref_log_probs=ref,
            loss_type=loss_type,
            max_completion_length=4,
        )

    value, grads = jax.value_and_grad(loss, argnums=(0, 1, 2))(lp, lp - 1.0, lp + 1.0)
    assert float(value) == 0.0
    assert all(bool(jnp.all(g == 0)) for g in grads)
    empty = jnp.zeros((0, 4))
    assert (
        float(jaxloss.grpo_loss(empty, empty, jnp.zeros(0), loss_type=loss_type, max_completion_length=4))
        == 0.0
    )


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpo", "simpo", "cpo", "orpo", "kto"])
def test_fused_preference_with_every_token_ignored(method):
    """The fused head losses with nothing to count (Liger: NaN where it averages or takes the NLL):
    finite values, zero gradients, whatever the ignored positions' inputs hold."""
    r = np.random.default_rng(52)
    x = jnp.asarray(r.normal(size=(4, 3, 5)))
    kernel = jnp.asarray(r.normal(size=(5, 7)))
    labels = jnp.full((4, 3), -100)
    extra = dict(preference_labels=jnp.array([True, False, True, False])) if method == "kto" else {}
    value, grads = jax.value_and_grad(
        lambda x, k: jaxloss.linear_preference_loss(
            x, k, labels, method=method, average_log_prob=True, block_size=2, vocab_block_size=3, **extra
        ),
        argnums=(0, 1),
    )(x, kernel)
    assert np.isfinite(float(value))
    assert all(bool(jnp.all(g == 0)) for g in grads)
    value, grads = jax.value_and_grad(
        lambda x, k: jaxloss.linear_grpo_loss(x, k, jnp.zeros((4, 3), int), jnp.zeros((4, 3)), jnp.ones(4)),
        argnums=(0, 1),
    )(x, kernel)
    assert float(value) == 0.0 and all(bool(jnp.all(g == 0)) for g in grads)
