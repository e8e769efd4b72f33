"""A fixed-size ring buffer of embeddings and labels: cross-batch memory and MoCo-style queues.

``queue_init`` makes an empty :class:`EmbeddingQueue`; ``queue_push`` writes a
batch over the oldest rows. Both are pure functions of fixed shapes, so the
queue can live in a training state, a ``jax.lax.scan`` carry or a Flax
variable, and every step compiles once. Rows that were never written are
marked by ``valid``; a loss masks them with it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks

__all__ = ["EmbeddingQueue", "queue_init", "queue_push"]


class EmbeddingQueue(NamedTuple):
    """A ring buffer of ``size`` embeddings and their labels (a pytree of four arrays).

    Attributes:
      embeddings: ``(size, dim)`` the stored embeddings; rows never written are 0.
      labels: ``(size,)`` their labels; rows never written are 0.
      valid: ``(size,)`` bool, True for the rows written at least once. Use it as
        the mask of the queue's rows in a loss: a never-filled row has ``valid``
        False (its embedding and label are zeros, not data).
      position: ``()`` int32, the row the next push writes first: the oldest row
        once the queue is full.

    The rows are not kept in age order: row ``position`` is the oldest,
    ``position - 1`` (modulo ``size``) the newest. Losses over a set of
    references do not depend on the order.

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import queue_init
      >>> queue = queue_init(4, 2)
      >>> queue.embeddings.shape, queue.valid
      ((4, 2), Array([False, False, False, False], dtype=bool))
    """

    embeddings: jax.Array
    labels: jax.Array
    valid: jax.Array
    position: jax.Array


def _check_dtype(dtype, kind, name, fn):
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise TypeError(f"{fn}: `{name}` must be a {kind.__name__} dtype; got {dtype!r}.") from None
    if not jnp.issubdtype(dt, kind):
        raise TypeError(f"{fn}: `{name}` must be a {kind.__name__} dtype; got {dt}.")
    return dt


def queue_init(size: int, dim: int, dtype=jnp.float32, label_dtype=jnp.int32) -> EmbeddingQueue:
    """An empty :class:`EmbeddingQueue` of ``size`` rows of ``dim`` features.

    Args:
      size: number of rows the queue holds (a positive int): the memory size
        of XBM, the number of negatives of MoCo.
      dim: features per embedding (a positive int).
      dtype: floating dtype of the stored embeddings (``bfloat16`` halves the
        memory; pushed embeddings are cast to it).
      label_dtype: integer dtype of the stored labels.

    Returns:
      an :class:`EmbeddingQueue` with zero embeddings and labels, ``valid``
      all False and ``position`` 0.

    Examples:
      >>> from jaxloss import queue_init
      >>> queue = queue_init(3, 2)
      >>> queue.embeddings.dtype, queue.labels.dtype, int(queue.position)
      (dtype('float32'), dtype('int32'), 0)

    Reference: a Python ``collections.deque(maxlen=size)`` in the tests.
    """
    fn = "queue_init"
    size = _checks.check_positive_int(size, "size", fn, allow_none=False)
    dim = _checks.check_positive_int(dim, "dim", fn, allow_none=False)
    dt = _check_dtype(dtype, jnp.floating, "dtype", fn)
    label_dt = _check_dtype(label_dtype, jnp.integer, "label_dtype", fn)
    return EmbeddingQueue(
        embeddings=jnp.zeros((size, dim), dt),
        labels=jnp.zeros((size,), label_dt),
        valid=jnp.zeros((size,), bool),
        position=jnp.zeros((), jnp.int32),
    )


def queue_push(queue: EmbeddingQueue, embeddings: ArrayLike, labels: ArrayLike) -> EmbeddingQueue:
    """Writes a batch into the queue over its oldest rows (a ring buffer, first in, first out).

    The ``b`` rows of the batch are written in order at rows ``position,
    position + 1, ...`` (modulo ``size``), as if appended one at a time to a
    ``collections.deque(maxlen=size)``: once the queue is full the newest batch
    replaces the oldest rows, and a batch larger than the queue keeps only its
    last ``size`` rows. The new ``position`` is ``(position + b) mod size``.
    The shapes never change, so ``queue_push`` jit-compiles once per batch shape
    and works as a ``jax.lax.scan`` carry.

    The queue holds constants: the pushed embeddings pass through
    ``jax.lax.stop_gradient``, so a loss against the queue's rows sends no
    gradient into earlier batches (the embeddings of MoCo's momentum encoder and
    of XBM's memory are not differentiated either). Push after computing the
    loss of the current batch, whose own rows carry the gradient.

    Args:
      queue: the :class:`EmbeddingQueue` to update (from ``queue_init``).
      embeddings: ``(b, dim)`` floating embeddings of the new batch, cast to the
        queue's dtype.
      labels: ``(b,)`` integer labels of the new batch, cast to the queue's
        label dtype.

    Returns:
      the updated :class:`EmbeddingQueue` (the input is not modified).

    Examples:
      >>> import jax.numpy as jnp
      >>> from jaxloss import queue_init, queue_push
      >>> queue = queue_init(3, 1)
      >>> queue = queue_push(queue, jnp.array([[1.0], [2.0]]), jnp.array([10, 20]))
      >>> queue = queue_push(queue, jnp.array([[3.0], [4.0]]), jnp.array([30, 40]))
      >>> queue.embeddings[:, 0], queue.labels, int(queue.position)
      (Array([4., 2., 3.], dtype=float32), Array([40, 20, 30], dtype=int32), 1)

      A loss against the queue masks the rows never written with ``valid``:

      >>> q = queue_push(queue_init(4, 2), jnp.ones((1, 2)), jnp.array([7]))
      >>> similarity = jnp.ones((2, 2)) @ q.embeddings.T          # (batch, size)
      >>> jnp.where(q.valid, similarity, -jnp.inf)
      Array([[  2., -inf, -inf, -inf],
             [  2., -inf, -inf, -inf]], dtype=float32)

    References:
      Wang et al., "Cross-Batch Memory for Embedding Learning", CVPR 2020;
      He et al., "Momentum Contrast for Unsupervised Visual Representation
      Learning", CVPR 2020.

    Reference: a Python ``collections.deque(maxlen=size)`` in the tests.
    """
    fn = "queue_push"
    if not isinstance(queue, EmbeddingQueue):
        raise TypeError(
            f"{fn}: `queue` must be an EmbeddingQueue (from queue_init); got {type(queue).__name__}."
        )
    _checks.check_ndim(queue.embeddings, "queue", fn, ndim=2)
    size, dim = queue.embeddings.shape
    e = jnp.asarray(embeddings)
    lab = jnp.asarray(labels)
    _checks.check_floating(e, "embeddings", fn)
    _checks.check_integer(lab, "labels", fn)
    if e.ndim != 2 or e.shape[1] != dim:
        raise ValueError(f"{fn}: `embeddings` must have shape (b, {dim}) for this queue; got {e.shape}.")
    b = e.shape[0]
    if lab.shape != (b,):
        raise ValueError(f"{fn}: `labels` must have shape ({b},), one per embedding; got {lab.shape}.")
    if b == 0:
        return queue
    n = min(b, size)
    rows = (queue.position + (b - n) + jnp.arange(n, dtype=jnp.int32)) % size
    new = jax.lax.stop_gradient(e[b - n :]).astype(queue.embeddings.dtype)
    return EmbeddingQueue(
        embeddings=jax.lax.stop_gradient(queue.embeddings).at[rows].set(new, unique_indices=True),
        labels=queue.labels.at[rows].set(lab[b - n :].astype(queue.labels.dtype), unique_indices=True),
        valid=queue.valid.at[rows].set(True, unique_indices=True),
        position=((queue.position + b) % size).astype(jnp.int32),
    )
