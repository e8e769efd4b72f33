"""Cross-entropy family: PyTorch (every option combination), optax, worked examples, edge cases."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxloss
import jaxloss.torch as jt
from tests.helpers import assert_matches_torch_eager as assert_matches_torch
from tests.helpers import rng, sweep, tol

SHAPES = [(5,), (4, 5), (3, 5, 2, 3)]  # (C,), (N, C), (N, C, d1, d2)


def logits_and_labels(shape, seed=0, ignore=None):
    r = rng(seed)
    x = r.normal(size=shape) * 2
    target_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    labels = r.integers(0, shape[0] if len(shape) == 1 else shape[1], size=target_shape)
    if ignore is not None and labels.ndim:
        labels.flat[::3] = ignore
    return x, np.asarray(labels, np.int64)


def assert_close(a, b, dtype="float64"):
    rtol, atol = tol(dtype)
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------- PyTorch cross_entropy


@pytest.mark.parametrize("shape", sweep(SHAPES[1:2] + SHAPES[:1] + SHAPES[2:]), ids=str)
@pytest.mark.parametrize("weighted", sweep([True, False]))
@pytest.mark.parametrize("ignore_index", sweep([1, -100]))
@pytest.mark.parametrize("label_smoothing", sweep([0.2, 0.0]))
@pytest.mark.parametrize("reduction", sweep(["none", "mean", "sum"]))
def test_cross_entropy_class_indices(shape, weighted, ignore_index, label_smoothing, reduction):
    x, labels = logits_and_labels(shape, 1, ignore=ignore_index if ignore_index < 0 else None)
    classes = shape[0] if len(shape) == 1 else shape[1]
    weight = rng(2).random(classes) + 0.5 if weighted else None
    kw = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=label_smoothing)
    if weighted:
        assert_matches_torch(
            lambda a, w, kw=kw: jt.cross_entropy(a, labels, weight=w, **kw),
            lambda a, w, kw=kw: F.cross_entropy(a, torch.from_numpy(labels), weight=w, **kw),
            x,
            weight,
            argnums=[0],
        )
    else:
        assert_matches_torch(
            lambda a, kw=kw: jt.cross_entropy(a, labels, **kw),
            lambda a, kw=kw: F.cross_entropy(a, torch.from_numpy(labels), **kw),
            x,
        )


@pytest.mark.parametrize("shape", sweep(SHAPES[1:2] + SHAPES[:1] + SHAPES[2:]), ids=str)
@pytest.mark.parametrize("weighted", sweep([True, False]))
@pytest.mark.parametrize("label_smoothing", sweep([0.3, 0.0]))
@pytest.mark.parametrize("reduction", sweep(["none", "mean", "sum"]))
def test_cross_entropy_probabilities(shape, weighted, label_smoothing, reduction):
    x = rng(3).normal(size=shape)
    class_axis = 0 if len(shape) == 1 else 1
    probs = jax.nn.softmax(jnp.asarray(rng(4).normal(size=shape)), axis=class_axis)
    probs = np.asarray(probs)
    weight = rng(5).random(shape[class_axis]) + 0.5 if weighted else None
    kw = dict(reduction=reduction, label_smoothing=label_smoothing)
    args = (x, probs) + ((weight,) if weighted else ())
    assert_matches_torch(
        lambda a, p, *w, kw=kw: jt.cross_entropy(a, p, weight=w[0] if w else None, **kw),
        lambda a, p, *w, kw=kw: F.cross_entropy(a, p, weight=w[0] if w else None, **kw),
        *args,
    )


def test_cross_entropy_legacy_reduction_and_all_ignored():
    x, labels = logits_and_labels((4, 3), 6)
    assert_matches_torch(
        lambda a: jt.cross_entropy(a, labels, size_average=False),
        lambda a: F.cross_entropy(a, torch.from_numpy(labels), size_average=False),
        x,
    )
    ignored = np.full(4, -100)
    out = jt.cross_entropy(jnp.asarray(x), ignored)  # PyTorch: NaN (0 / 0); jaxloss: 0
    assert float(out) == 0.0
    g = jax.grad(lambda a: jt.cross_entropy(a, ignored, label_smoothing=0.1))(jnp.asarray(x))
    assert np.all(g == 0)


# --------------------------------------------------------------------------- nll_loss, BCE


@pytest.mark.parametrize("shape", sweep(SHAPES[1:2] + SHAPES[:1] + SHAPES[2:]), ids=str)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_nll_loss(shape, weighted, reduction):
    x, labels = logits_and_labels(shape, 7, ignore=-100)
    class_axis = 0 if len(shape) == 1 else 1
    logp = np.asarray(jax.nn.log_softmax(jnp.asarray(x), axis=class_axis))
    weight = rng(8).random(shape[class_axis]) + 0.5 if weighted else None
    args = (logp,) + ((weight,) if weighted else ())
    assert_matches_torch(
        lambda a, *w: jt.nll_loss(a, labels, weight=w[0] if w else None, reduction=reduction),
        lambda a, *w: F.nll_loss(
            a, torch.from_numpy(labels), weight=w[0] if w else None, reduction=reduction
        ),
        *args,
        argnums=[0],
    )


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy(reduction, weighted):
    r = rng(9)
    p = r.uniform(0.01, 0.99, size=(4, 3))
    y = r.uniform(size=(4, 3))
    w = (r.random((3,)) + 0.5,) if weighted else ()
    assert_matches_torch(
        lambda a, b, *w: jt.binary_cross_entropy(a, b, w[0] if w else None, reduction=reduction),
        lambda a, b, *w: F.binary_cross_entropy(a, b, w[0] if w else None, reduction=reduction),
        p,
        y,
        *w,
        argnums=[0, 1],
    )


@pytest.mark.slow
def test_binary_cross_entropy_clamp_at_zero_and_one():
    # PyTorch's -100 clamp and its (p - y) / max(p (1 - p), 1e-12) gradient, at 0, 1 and near them
    p = np.array([0.0, 0.0, 1.0, 1.0, 1e-13, 1 - 1e-7, 0.5])
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.3])
    assert_matches_torch(
        lambda a: jt.binary_cross_entropy(a, y, reduction="none"),
        lambda a: F.binary_cross_entropy(a, torch.from_numpy(y).to(a.dtype), reduction="none"),
        p,
        dtypes=("float64",),
        rtol=1e-8,
    )
    g = jax.grad(lambda t: jt.binary_cross_entropy(jnp.asarray(p), t, reduction="sum"))(jnp.asarray(y))
    assert np.all(np.isfinite(g))  # PyTorch: +-inf at p in {0, 1}


def test_core_binary_cross_entropy_batch_j():
    y = jnp.array([1.0, 0.0, 1.0, 0.0, 1.0])
    p = jnp.array([0.9, 0.2, 0.6, 0.0, 1.0])
    J = jaxloss.binary_cross_entropy(p, y).mean()
    manual = -np.mean([np.log(0.9), np.log(0.8), np.log(0.6), 0.0, 0.0])
    assert_close(J, manual)
    g = jax.grad(lambda a, b: jaxloss.binary_cross_entropy(a, b).sum(), argnums=(0, 1))(p, y)
    assert all(np.all(np.isfinite(v)) for v in g)
    assert float(jaxloss.binary_cross_entropy(jnp.array(0.0), jnp.array(1.0))) == np.inf
    assert jaxloss.binary_cross_entropy(p.reshape(1, 5), y.reshape(1, 5), axis=-1).shape == (1,)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_binary_cross_entropy_with_logits(reduction):
    r = rng(10)
    x = np.concatenate([r.normal(size=(3, 4)) * 3, np.array([[1e4, -1e4, 1e4, -1e4]])])
    y = np.concatenate([r.uniform(size=(3, 4)), np.array([[1.0, 0.0, 0.0, 1.0]])])
    w, pw = r.random(4) + 0.5, r.random(4) + 0.5
    assert_matches_torch(
        lambda a, b, c, d: jt.binary_cross_entropy_with_logits(a, b, c, reduction=reduction, pos_weight=d),
        lambda a, b, c, d: F.binary_cross_entropy_with_logits(a, b, c, reduction=reduction, pos_weight=d),
        x,
        y,
        w,
        pw,
        argnums=[0, 1],
    )
    assert_matches_torch(
        lambda a, b: jt.binary_cross_entropy_with_logits(a, b, reduction=reduction),
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction),
        x,
        y,
    )


# --------------------------------------------------------------------------- optax


@pytest.mark.slow
def test_optax_values_and_gradients(variant):
    r = rng(11)
    x = jnp.asarray(r.normal(size=(6, 5)))
    soft = jax.nn.softmax(jnp.asarray(r.normal(size=(6, 5))))
    labels = jnp.asarray(r.integers(0, 5, size=6))
    binary = jnp.asarray(r.integers(0, 2, size=(6, 5)).astype(float))
    cases = [
        (jaxloss.softmax_cross_entropy, optax.losses.softmax_cross_entropy, (x, soft), {}),
        (jaxloss.softmax_cross_entropy, optax.losses.softmax_cross_entropy, (x, soft), {"axis": 0}),
        (
            jaxloss.safe_softmax_cross_entropy,
            optax.losses.safe_softmax_cross_entropy,
            (x, soft),
            {},
        ),
        (
            jaxloss.sigmoid_binary_cross_entropy,
            optax.losses.sigmoid_binary_cross_entropy,
            (x, binary),
            {},
        ),
        (jaxloss.sigmoid_focal_loss, optax.losses.sigmoid_focal_loss, (x, binary), {}),
        (
            jaxloss.sigmoid_focal_loss,
            optax.losses.sigmoid_focal_loss,
            (x, soft),
            {"alpha": 0.3, "gamma": 1.5},
        ),
        (
            jaxloss.softmax_cross_entropy_with_integer_labels,
            optax.losses.softmax_cross_entropy_with_integer_labels,
            (x, labels),
            {},
        ),
        (
            jaxloss.softmax_cross_entropy_with_integer_labels,
            optax.losses.softmax_cross_entropy_with_integer_labels,
            (x.T, labels),
            {"axis": 0},
        ),
    ]
    for ours, theirs, args, kw in cases:
        assert_close(variant(ours, **kw)(*args), theirs(*args, **kw))
        g1 = jax.grad(lambda a, *rest, f=ours, k=kw: f(a, *rest, **k).sum())(*args)
        g2 = jax.grad(lambda a, *rest, f=theirs, k=kw: f(a, *rest, **k).sum())(*args)
        assert_close(g1, g2)
    # soft-label gradient equals optax's too (ordinary inputs)
    g1 = jax.grad(lambda s: jaxloss.softmax_cross_entropy(x, s).sum())(soft)
    g2 = jax.grad(lambda s: optax.losses.softmax_cross_entropy(x, s).sum())(soft)
    assert_close(g1, g2)
    one_hot = jax.nn.one_hot(labels, 5)
    g1 = jax.grad(lambda s: jaxloss.softmax_cross_entropy(x, s).sum())(one_hot)
    g2 = jax.grad(lambda s: optax.losses.softmax_cross_entropy(x, s).sum())(one_hot)
    assert_close(g1, g2)


@pytest.mark.slow
def test_optax_where_tuple_axis_and_smoothing():
    r = rng(12)
    x = jnp.asarray(r.normal(size=(2, 3, 4)))
    flat_labels = jnp.asarray(r.integers(0, 12, size=(2,)))
    assert_close(
        jaxloss.softmax_cross_entropy_with_integer_labels(x, flat_labels, axis=(1, 2)),
        optax.losses.softmax_cross_entropy_with_integer_labels(x, flat_labels, axis=(1, 2)),
    )
    mask = jnp.asarray(r.random((2, 3, 4)) > 0.3).at[..., 0].set(True)
    labels = jnp.zeros((2, 3), int)
    soft = jax.nn.softmax(jnp.asarray(r.normal(size=(2, 3, 4))))
    assert_close(
        jaxloss.softmax_cross_entropy_with_integer_labels(x, labels, where=mask),
        optax.losses.softmax_cross_entropy_with_integer_labels(x, labels, where=mask),
    )
    assert_close(
        jaxloss.softmax_cross_entropy(x, soft, where=mask),
        optax.losses.softmax_cross_entropy(x, soft, where=mask),
    )
    assert_close(jaxloss.smooth_labels(soft, 0.1), optax.losses.smooth_labels(soft, 0.1))
    assert_close(
        jaxloss.smooth_labels(soft, 0.1, where=mask),
        optax.losses.smooth_labels(soft, 0.1, where=mask),
    )


@pytest.mark.slow  # hypothesis, 20 examples
@settings(max_examples=20)
@given(st.floats(0, 1), st.integers(2, 7), st.integers(0, 2**31 - 1))
def test_smoothing_equals_smoothed_one_hot(alpha, classes, seed):
    r = rng(seed)
    x = jnp.asarray(r.normal(size=(3, classes)))
    labels = jnp.asarray(r.integers(0, classes, size=3))
    smoothed = jaxloss.smooth_labels(jax.nn.one_hot(labels, classes), alpha)
    np.testing.assert_allclose(smoothed.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(
        jaxloss.softmax_cross_entropy_with_integer_labels(x, labels, label_smoothing=alpha),
        jaxloss.softmax_cross_entropy(x, smoothed),
        rtol=1e-10,
        atol=1e-12,
    )


# ------------------------------------------------------------------------ worked examples, edge cases


def test_multiclass_cross_entropy_worked_example():
    y = jnp.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    y_hat = jnp.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    L = jaxloss.cross_entropy(y_hat, y).mean()  # -1/N sum_i sum_j y log y_hat
    assert_close(L, -(np.log(0.7) + np.log(0.6)) / 2)
    logits = jnp.log(y_hat)
    assert_close(jt.cross_entropy(logits, jnp.array([1, 0])), L)
    assert_close(jaxloss.softmax_cross_entropy(logits, y).mean(), L)


@pytest.mark.slow
def test_infinite_and_saturated_logits():
    x = jnp.array([[0.0, -jnp.inf, 1.0], [1e4, -1e4, 0.0]])
    y = jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert np.isnan(optax.losses.softmax_cross_entropy(x, y)[0])
    out = jaxloss.softmax_cross_entropy(x, y)
    assert np.all(np.isfinite(out))
    assert_close(out[0], np.log1p(np.e))
    for fn, args in [
        (jaxloss.softmax_cross_entropy, (x, y)),
        (jaxloss.softmax_cross_entropy_with_integer_labels, (x, jnp.array([0, 2]))),
        (
            lambda a, b: jaxloss.softmax_cross_entropy_with_integer_labels(a, b, weights=jnp.ones(3)),
            (x, jnp.array([0, 2])),
        ),
        (jaxloss.sigmoid_binary_cross_entropy, (x[1], y[1])),
        (jaxloss.sigmoid_focal_loss, (x[1], y[1])),
    ]:
        g = jax.grad(lambda a, f=fn, rest=args[1:]: f(a, *rest).sum())(args[0])
        assert np.all(np.isfinite(g)), (fn, g)
    g = jax.grad(lambda a: jt.binary_cross_entropy_with_logits(a, y[1]))(x[1])
    np.testing.assert_allclose(g, (jax.nn.sigmoid(x[1]) - y[1]) / 3, rtol=1e-12)


@pytest.mark.slow
def test_dtypes():
    x = jnp.asarray(rng(13).normal(size=(4, 3)), jnp.bfloat16)
    labels = jnp.array([0, 1, 2, 0])
    assert jt.cross_entropy(x, labels).dtype == jnp.bfloat16
    assert jaxloss.softmax_cross_entropy_with_integer_labels(x, labels).dtype == jnp.bfloat16
    assert jaxloss.sigmoid_binary_cross_entropy(x, x > 0).dtype == jnp.bfloat16


def test_errors():
    x = jnp.zeros((4, 3))
    labels = jnp.array([0, 1, 2, 0])
    with pytest.raises(ValueError, match="reduction"):
        jt.cross_entropy(x, labels, reduction="avg")
    with pytest.raises(ValueError, match="reduction"):
        jt.nll_loss(x, labels, reduction="batchmean")
    for ls in (-0.1, 1.5):
        with pytest.raises(ValueError, match="label_smoothing"):
            jt.cross_entropy(x, labels, label_smoothing=ls)
        with pytest.raises(ValueError, match="label_smoothing"):
            jaxloss.softmax_cross_entropy_with_integer_labels(x, labels, label_smoothing=ls)
    with pytest.raises(ValueError, match="target"):
        jt.cross_entropy(x, jnp.array([0, 1, 2]))
    with pytest.raises(ValueError, match="class indices of shape"):
        jt.cross_entropy(x, jnp.ones((4, 2)) / 2)  # probabilities of the wrong shape
    with pytest.raises(ValueError, match="class indices of shape"):
        jt.nll_loss(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3), int))  # (N, d1) expected: (2, 4)
    with pytest.raises(ValueError, match="labels"):
        jaxloss.softmax_cross_entropy_with_integer_labels(x, jnp.array([0, 1]))
    with pytest.raises(TypeError, match="integer dtype"):
        jt.cross_entropy(x, jnp.array([0.0, 1.0, 2.0, 0.0]))
    with pytest.raises(TypeError, match="integer dtype"):
        jaxloss.softmax_cross_entropy_with_integer_labels(x, labels.astype(float))
    with pytest.raises(TypeError, match="floating dtype"):
        jt.cross_entropy(jnp.zeros((4, 3), int), labels)
    with pytest.raises(TypeError, match="floating dtype"):
        jaxloss.softmax_cross_entropy(jnp.zeros((4, 3), int), jnp.ones((4, 3)))
    with pytest.raises(TypeError, match="floating dtype"):
        jaxloss.sigmoid_binary_cross_entropy(jnp.zeros(3, int), jnp.ones(3))
    with pytest.raises(ValueError, match="weight"):
        jt.cross_entropy(x, labels, weight=jnp.ones(4))
    with pytest.raises(ValueError, match="ignore_index"):
        jt.cross_entropy(x, jnp.ones((4, 3)) / 3, ignore_index=0)
    with pytest.raises(ValueError, match="shape of `input`"):
        jt.binary_cross_entropy(jnp.ones(3) / 2, jnp.ones(4))
    with pytest.raises(ValueError, match="shape of `input`"):
        jt.binary_cross_entropy_with_logits(jnp.ones(3), jnp.ones((3, 1)))
    with pytest.raises(ValueError, match="broadcastable"):
        jaxloss.softmax_cross_entropy(x, jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="alpha"):
        jaxloss.smooth_labels(jnp.ones(3), 2.0)
    with pytest.raises(ValueError, match="gamma"):
        jaxloss.sigmoid_focal_loss(x, x, gamma=-1.0)


def test_jit_matches_eager(variant):
    x, labels = logits_and_labels((4, 5, 3), 14, ignore=-100)
    fn = variant(lambda a, b: jt.cross_entropy(a, b, weight=jnp.arange(1.0, 6.0), label_smoothing=0.1))
    assert_close(
        fn(jnp.asarray(x), jnp.asarray(labels)),
        F.cross_entropy(
            torch.tensor(x),
            torch.from_numpy(labels),
            weight=torch.arange(1.0, 6.0, dtype=torch.float64),
            label_smoothing=0.1,
        ).item(),
    )


def test_all_option_combinations_core_vs_torch_none():
    """The core per-example values equal PyTorch's reduction='none' for every combination."""
    x, labels = logits_and_labels((6, 4), 15, ignore=-1)
    for weighted, ignore, ls in itertools.product([False, True], [None, -1], [0.0, 0.4]):
        weight = np.arange(1.0, 5.0) if weighted else None
        ours = jaxloss.softmax_cross_entropy_with_integer_labels(
            jnp.asarray(x),
            jnp.asarray(labels) if ignore is not None else jnp.asarray(np.abs(labels)),
            label_smoothing=ls,
            weights=weight,
            ignore_index=ignore,
        )
        ref = F.cross_entropy(
            torch.tensor(x),
            torch.from_numpy(labels if ignore is not None else np.abs(labels)),
            weight=None if weight is None else torch.tensor(weight),
            ignore_index=-1 if ignore is not None else -100,
            reduction="none",
            label_smoothing=ls,
        )
        assert_close(ours, ref.numpy())


@pytest.mark.slow
def test_where_with_smoothing_and_weights_is_consistent():
    r = rng(16)
    x = jnp.asarray(r.normal(size=(5, 6)))
    labels = jnp.asarray(r.integers(0, 3, size=5))
    columns = np.array([True, True, True, False, True, False])
    mask = jnp.broadcast_to(jnp.asarray(columns), (5, 6))  # optax: logits.shape or the batch
    ours = jaxloss.softmax_cross_entropy_with_integer_labels(x, labels, where=mask, label_smoothing=0.2)
    smoothed = jaxloss.smooth_labels(jax.nn.one_hot(labels, 6), 0.2, where=mask)
    assert_close(ours, jaxloss.softmax_cross_entropy(x, smoothed, where=mask))
    assert_close(
        ours,
        jaxloss.softmax_cross_entropy_with_integer_labels(x[:, columns], labels, label_smoothing=0.2),
    )
    w = jnp.arange(1.0, 7.0)
    weighted = jaxloss.softmax_cross_entropy_with_integer_labels(x, labels, weights=w, label_smoothing=0.2)
    manual = -(w * jaxloss.smooth_labels(jax.nn.one_hot(labels, 6), 0.2) * jax.nn.log_softmax(x)).sum(-1)
    # PyTorch's weighting: (1 - ls) w[y] nll + ls / C sum_c w_c nll_c
    assert_close(weighted, manual)


def test_core_option_errors():
    x, labels = jnp.zeros((4, 3)), jnp.array([0, 1, 2, 0])
    with pytest.raises(ValueError, match="weights"):
        jaxloss.softmax_cross_entropy_with_integer_labels(x, labels, weights=jnp.ones(4))
    with pytest.raises(TypeError, match="ignore_index"):
        jaxloss.softmax_cross_entropy_with_integer_labels(x, labels, ignore_index=1.5)
    with pytest.raises(ValueError, match="log_clamp"):
        jaxloss.binary_cross_entropy(jnp.ones(2) / 2, jnp.ones(2), log_clamp=5.0)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        jt.cross_entropy(jnp.zeros(()), jnp.array(0))
    np.testing.assert_allclose(
        jaxloss.softmax_cross_entropy_with_integer_labels(x, labels, ignore_index=np.int64(2))[2],
        0.0,
    )


# --------------------------------------------------------------------------- labels out of range

# (name, jaxloss call, PyTorch call, logits shape): each takes (logits, labels) with the class dim
# where PyTorch has it; a label < 0 that is not ignore_index and a label >= C are both bad.
_W = np.array([0.5, 2.0, 1.0, 1.5])
OUT_OF_RANGE = [
    (
        "core",
        lambda x, y: jaxloss.softmax_cross_entropy_with_integer_labels(x, y),
        lambda x, y: F.cross_entropy(x, y, reduction="none"),
        (3, 4),
    ),
    (
        "core weights smoothing ignore",
        lambda x, y: jaxloss.softmax_cross_entropy_with_integer_labels(
            x, y, weights=_W, label_smoothing=0.2, ignore_index=-100
        ),
        lambda x, y: F.cross_entropy(x, y, weight=torch.tensor(_W), label_smoothing=0.2, reduction="none"),
        (3, 4),
    ),
    (
        "torch.cross_entropy K-dim weights smoothing",
        lambda x, y: jt.cross_entropy(x, y, weight=_W, label_smoothing=0.1),
        lambda x, y: F.cross_entropy(x, y, weight=torch.tensor(_W), label_smoothing=0.1),
        (2, 4, 3),
    ),
    (
        "torch.cross_entropy ignore_index=-1",
        lambda x, y: jt.cross_entropy(x, y, ignore_index=-1, reduction="sum"),
        lambda x, y: F.cross_entropy(x, y, ignore_index=-1, reduction="sum"),
        (3, 4),
    ),
    (
        "torch.cross_entropy unbatched",
        lambda x, y: jt.cross_entropy(x, y),
        lambda x, y: F.cross_entropy(x, y),
        (4,),
    ),
    (
        "torch.nll_loss weights none",
        lambda x, y: jt.nll_loss(x, y, weight=_W, reduction="none"),
        lambda x, y: F.nll_loss(x, y, weight=torch.tensor(_W), reduction="none"),
        (3, 4),
    ),
]


def _bad_labels(shape, ignore_minus_one):
    """In-range labels with one bad entry: -1 (or -2 where -1 is ignore_index), C, or -5."""
    classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    base = rng(20).integers(0, classes, size=target_shape)
    for bad in (-2 if ignore_minus_one else -1, classes, -5):
        labels = np.array(base)
        if labels.ndim:
            labels.flat[1] = bad
        else:
            labels = np.array(bad)
        yield bad, labels


def test_out_of_range_labels_raise_as_pytorch_raises():
    """Concrete labels < 0 (not ignore_index) or >= C: PyTorch raises IndexError; jaxloss raises
    ValueError naming the argument and the bad index (the torch face's is also an IndexError)."""
    for name, ours, theirs, shape in OUT_OF_RANGE:
        x = rng(21).normal(size=shape)
        for bad, labels in _bad_labels(shape, "-1" in name):
            with pytest.raises(IndexError, match=f"Target {bad} is out of bounds"):
                theirs(torch.tensor(x), torch.from_numpy(labels))
            arg = "labels" if name.startswith("core") else "target"
            expected = (ValueError, IndexError) if name.startswith("torch") else (ValueError,)
            for labels_in in (labels, jnp.asarray(labels)):  # NumPy, and a jax.Array
                with pytest.raises(ValueError, match=rf"`{arg}` must hold class indices in \[0, 4\)") as info:
                    ours(jnp.asarray(x), labels_in)
                assert isinstance(info.value, expected), (name, type(info.value))
                assert f"got {bad}" in str(info.value), str(info.value)
            # a constant inside jit is concrete too: checked at trace time
            with pytest.raises(ValueError, match=f"got {bad}"):
                jax.jit(lambda a, labels=labels, ours=ours: ours(a, labels))(jnp.asarray(x))


def test_out_of_range_labels_traced_give_nan_never_another_class():
    """Traced labels: an out-of-range example is NaN with a zero gradient; every other example
    keeps PyTorch's value and gradient (a -1 is not class C - 1, as optax's gather makes it)."""
    x = rng(22).normal(size=(5, 4))
    labels = np.array([1, -1, 3, 4, -100])  # -1 and 4 out of range, -100 ignored
    good = np.array([True, False, True, False, True])

    def core(a, y):
        values = jaxloss.softmax_cross_entropy_with_integer_labels(
            a, y, weights=_W, label_smoothing=0.2, ignore_index=-100
        )
        return jnp.nansum(values), values

    (total, values), grad = jax.jit(jax.value_and_grad(core, has_aux=True))(
        jnp.asarray(x), jnp.asarray(labels)
    )
    assert np.isnan(np.asarray(values)[~good]).all() and np.isfinite(np.asarray(values)[good]).all()
    xt = torch.tensor(x, requires_grad=True)
    ref = F.cross_entropy(
        xt[good],
        torch.from_numpy(labels[good]),
        weight=torch.tensor(_W),
        label_smoothing=0.2,
        reduction="none",
    )
    assert_close(np.asarray(values)[good], ref.detach().numpy())
    ref.sum().backward()
    assert_close(total, ref.sum().item())
    assert_close(grad, xt.grad.numpy())  # zero rows where the label is out of range
    # the torch face: NaN for "mean" and "sum", gradients of the other targets kept
    ce = jax.jit(jax.value_and_grad(lambda a, y: jt.cross_entropy(a, y, weight=_W)))
    mean, g = ce(jnp.asarray(x), jnp.asarray(labels))
    assert np.isnan(float(mean))
    xt = torch.tensor(x, requires_grad=True)
    keep = good & (labels != -100)
    # PyTorch's weighted mean over the in-range targets; jaxloss's value is NaN, its gradient
    # with respect to the other logits is that mean's gradient
    F.cross_entropy(xt[keep], torch.from_numpy(labels[keep]), weight=torch.tensor(_W)).backward()
    assert_close(g, xt.grad.numpy())
    nll = jax.jit(lambda a, y: jt.nll_loss(a, y, reduction="none"))(jnp.asarray(x), jnp.asarray(labels))
    assert np.isnan(np.asarray(nll)[[1, 3]]).all() and np.asarray(nll)[4] == 0
    assert_close(np.asarray(nll)[[0, 2]], -x[[0, 2], [1, 3]])


def test_out_of_range_labels_caught_by_check_inputs_under_checkify():
    from jax.experimental import checkify  # noqa: PLC0415

    def loss(logits, labels):
        jaxloss.check_inputs(labels=labels, num_classes=logits.shape[-1], ignore_index=-100)
        return jaxloss.softmax_cross_entropy_with_integer_labels(logits, labels, ignore_index=-100)

    checked = jax.jit(checkify.checkify(loss))
    x = jnp.zeros((3, 4))
    for bad in (-1, 4):
        err, value = checked(x, jnp.array([0, bad, -100]))
        assert np.isnan(np.asarray(value)[1])
        with pytest.raises(checkify.JaxRuntimeError, match=rf"`labels` must lie in \[0, 4\).*found {bad}"):
            err.throw()
    err, value = checked(x, jnp.array([0, 3, -100]))
    assert err.get() is None and np.isfinite(np.asarray(value)).all()


def test_zero_classes_is_a_value_error():
    with pytest.raises(ValueError, match="`logits` must have at least one class"):
        jaxloss.softmax_cross_entropy_with_integer_labels(jnp.zeros((2, 0)), jnp.array([0, 0]))
    with pytest.raises(ValueError, match="`input` must have at least one class"):
        jt.cross_entropy(jnp.zeros((2, 0)), jnp.array([-100, -100]))
    with pytest.raises(ValueError, match="`input` must have at least one class"):
        jax.jit(jt.nll_loss)(jnp.zeros((2, 0, 3)), jnp.zeros((2, 3), jnp.int32))
    with pytest.raises(IndexError, match="out of bounds"):  # PyTorch: every kept target is out of range
        F.cross_entropy(torch.zeros(2, 0), torch.tensor([0, 0]))
