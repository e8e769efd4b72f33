"""The embedding queue (cross-batch memory) against a Python ``collections.deque`` model."""

from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from tests.helpers import rng


def age_order(queue):
    """The valid rows of ``queue``, oldest first: row ``position`` is the oldest."""
    size = queue.labels.shape[0]
    rows = [(int(queue.position) + j) % size for j in range(size)]
    rows = [r for r in rows if bool(queue.valid[r])]
    return np.asarray(queue.embeddings)[rows], np.asarray(queue.labels)[rows]


def deque_model(size, batches):
    model = collections.deque(maxlen=size)
    for emb, lab in batches:
        for e, label in zip(emb, lab, strict=True):
            model.append((e, label))
    return model


@pytest.mark.parametrize(
    "size, batch_sizes",
    [
        (5, [2, 2, 2, 2, 3]),  # wrap-around; 2 does not divide 5
        (4, [4, 4, 4]),  # batch == size
        (3, [2, 7, 1, 5]),  # batches larger than the queue keep their last rows
        (6, [1, 0, 4, 3]),  # an empty batch changes nothing
    ],
)
def test_push_matches_a_deque(size, batch_sizes, variant):
    r = rng(size)
    dim = 3
    queue = jaxloss.queue_init(size, dim, dtype=jnp.float64)
    push = variant(jaxloss.queue_push)
    batches = []
    for step, b in enumerate(batch_sizes):
        emb = r.normal(size=(b, dim))
        lab = r.integers(0, 100, b).astype(np.int32)
        batches.append((emb, lab))
        queue = push(queue, jnp.asarray(emb), jnp.asarray(lab))
        model = deque_model(size, batches)
        got_emb, got_lab = age_order(queue)
        assert got_emb.shape[0] == len(model), step
        np.testing.assert_array_equal(got_emb, np.array([e for e, _ in model]).reshape(-1, dim))
        np.testing.assert_array_equal(got_lab, np.array([label for _, label in model]))
        total = sum(batch_sizes[: step + 1])
        assert int(queue.position) == total % size
        assert int(jnp.sum(queue.valid)) == min(total, size)
        # never-filled rows are identifiable (valid False) and hold zeros
        assert bool(jnp.all(jnp.where(queue.valid[:, None], True, queue.embeddings == 0)))
        assert queue.embeddings.shape == (size, dim) and queue.embeddings.dtype == jnp.float64


@pytest.mark.slow
def test_init_dtypes_and_casts():
    queue = jaxloss.queue_init(4, 2, dtype=jnp.bfloat16, label_dtype=jnp.int64)
    assert queue.embeddings.dtype == jnp.bfloat16 and queue.labels.dtype == jnp.int64
    assert queue.valid.dtype == jnp.bool_ and queue.position.dtype == jnp.int32
    assert not bool(jnp.any(queue.valid)) and int(queue.position) == 0
    queue = jaxloss.queue_push(queue, jnp.ones((3, 2), jnp.float32), jnp.arange(3, dtype=jnp.int32))
    assert queue.embeddings.dtype == jnp.bfloat16 and queue.labels.dtype == jnp.int64
    np.testing.assert_array_equal(np.asarray(queue.valid), [True, True, True, False])


def test_push_in_lax_scan_with_one_compilation():
    """A queue as a scan carry: 7 pushes of 3 rows into 5 equal the Python loop and the deque."""
    r = rng(1)
    emb = r.normal(size=(7, 3, 4))
    lab = r.integers(0, 10, (7, 3)).astype(np.int32)

    def step(queue, batch):
        queue = jaxloss.queue_push(queue, *batch)
        return queue, jnp.sum(queue.valid)

    final, counts = jax.jit(lambda q, e, l: jax.lax.scan(step, q, (e, l)))(
        jaxloss.queue_init(5, 4, dtype=jnp.float64), jnp.asarray(emb), jnp.asarray(lab)
    )
    np.testing.assert_array_equal(np.asarray(counts), [3, 5, 5, 5, 5, 5, 5])
    looped = jaxloss.queue_init(5, 4, dtype=jnp.float64)
    for e, label in zip(emb, lab, strict=True):
        looped = jaxloss.queue_push(looped, jnp.asarray(e), jnp.asarray(label))
    jax.tree_util.tree_map(np.testing.assert_array_equal, final, looped)
    model = deque_model(5, list(zip(emb, lab, strict=True)))
    got_emb, got_lab = age_order(final)
    np.testing.assert_array_equal(got_emb, np.array([e for e, _ in model]))
    np.testing.assert_array_equal(got_lab, np.array([label for _, label in model]))


@pytest.mark.slow
def test_push_stops_gradients_and_queue_masks_a_loss():
    """Gradients flow through the current batch only; never-filled rows are masked by `valid`."""
    r = rng(2)
    old = jnp.asarray(r.normal(size=(2, 3)))
    queue = jaxloss.queue_push(jaxloss.queue_init(4, 3, dtype=jnp.float64), old, jnp.array([0, 1]))

    def loss(batch, memory):
        sim = batch @ memory.embeddings.T  # (b, size)
        same = (jnp.array([0, 1])[:, None] == memory.labels[None, :]) & memory.valid[None, :]
        return jnp.sum(jnp.where(same, sim, 0.0))

    batch = jnp.asarray(r.normal(size=(2, 3)))
    g_batch = jax.grad(loss)(batch, queue)
    np.testing.assert_allclose(np.asarray(g_batch), np.asarray(old), rtol=1e-12)  # row i sees old[i]

    def pushed_then_loss(x):
        return loss(batch, jaxloss.queue_push(queue, x, jnp.array([0, 1])))

    g = jax.grad(pushed_then_loss)(batch)
    assert bool(jnp.all(g == 0)) and bool(jnp.all(jnp.isfinite(g)))


def test_queue_errors():
    q = jaxloss.queue_init(3, 2)
    with pytest.raises(ValueError, match="`size` must be a positive int"):
        jaxloss.queue_init(0, 2)
    with pytest.raises(TypeError, match="`dim` must be a positive int"):
        jaxloss.queue_init(3, None)
    with pytest.raises(TypeError, match="`dtype` must be a floating dtype"):
        jaxloss.queue_init(3, 2, dtype="not a dtype")
    with pytest.raises(ValueError, match=r"`embeddings` must have shape \(b, 2\)"):
        jaxloss.queue_push(q, jnp.ones((2, 3)), jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match=r"`embeddings` must have shape \(b, 2\)"):
        jaxloss.queue_push(q, jnp.ones(2), jnp.zeros(2, jnp.int32))
    with pytest.raises(ValueError, match=r"`labels` must have shape \(2,\)"):
        jaxloss.queue_push(q, jnp.ones((2, 2)), jnp.zeros((2, 1), jnp.int32))
    with pytest.raises(TypeError, match="`queue` must be an EmbeddingQueue"):
        jaxloss.queue_push(dict(q._asdict()), jnp.ones((2, 2)), jnp.zeros(2, jnp.int32))
