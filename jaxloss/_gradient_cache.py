"""Gradient caching (GradCache): a batch's embeddings with one chunk's encoder activations alive at a time.

Contrastive losses want large batches; an encoder's activations for the
whole batch rarely fit. GradCache (Gao et al. 2021) separates the two: embed
the batch chunk by chunk without keeping activations, compute the loss and
its gradient with respect to the embeddings, then re-encode each chunk and
back-propagate that chunk's embedding gradient into the parameters. The
gradient is exact (the loss sees the whole batch), the activation memory is
that of one chunk.

In JAX this is a rematerialised map: each chunk's encoder call is wrapped in
``jax.checkpoint`` (nothing saved but its inputs) inside ``lax.map``, so the
forward pass keeps only the embeddings and the backward pass re-encodes one
chunk at a time and accumulates the parameter gradient in the loop carry —
two forward passes and one backward pass, as the paper.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from . import _checks

__all__ = ["cached_embeddings"]


def cached_embeddings(encode_fn: Callable, params, inputs, *, chunk_size: int):
    r"""``encode_fn(params, inputs)``, computed and differentiated one chunk of rows at a time (GradCache).

    The value equals ``encode_fn(params, inputs)`` and so does every
    gradient (of ``params`` and of floating ``inputs``); under
    ``jax.grad`` the encoder's activations are held for one chunk of
    ``chunk_size`` rows at a time instead of the whole batch: the forward
    pass encodes the chunks keeping only their outputs, and the backward pass
    re-encodes each chunk and pulls the loss's gradient with respect to that
    chunk's embeddings back into the parameters. Use it on each side of a
    batch loss:

    .. code-block:: python

        def loss_fn(params, batch):
            q = cached_embeddings(encode, params, batch["queries"], chunk_size=64)
            d = cached_embeddings(encode, params, batch["documents"], chunk_size=64)
            return multiple_negatives_ranking_loss(q, d)

        grads = jax.grad(loss_fn)(params, batch)

    Uneven batches: with ``B`` rows, the first ``c * floor(B / c)`` rows are
    encoded in chunks of ``c = chunk_size`` (one ``lax.map``) and the last
    ``B mod c`` rows as one smaller chunk (``encode_fn`` is traced for both
    shapes); nothing is padded and the result is exact. ``chunk_size >= B``
    is one chunk (no saving).

    Args:
      encode_fn: ``encode_fn(params, inputs) -> embeddings``: a pure
        function whose inputs and outputs are pytrees of arrays with the
        rows on axis 0 (each row encoded independently of the others). It
        is evaluated twice per row under ``jax.grad``: anything random
        (dropout keys) must come from ``params`` or ``inputs`` so that both
        passes draw the same.
      params: the encoder's parameters (any pytree; floating leaves get
        gradients).
      inputs: a pytree of arrays ``(B, ...)`` (token ids, images, features).
      chunk_size: rows per chunk, a positive int.

    Returns:
      ``encode_fn(params, inputs)``.

    Memory: the encoder's activations of one chunk (plus the ``B`` rows'
    inputs and embeddings); compute: one extra forward pass.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> encode = lambda w, x: jnp.tanh(x @ w)
      >>> w, x = jnp.ones((3, 2)) / 3, jnp.arange(15.0).reshape(5, 3) / 15
      >>> loss = lambda w: jnp.sum(cached_embeddings(encode, w, x, chunk_size=2) ** 2)
      >>> bool(jnp.allclose(jax.grad(loss)(w), jax.grad(lambda w: jnp.sum(encode(w, x) ** 2))(w)))
      True

    References:
      L. Gao, Y. Zhang, J. Han, J. Callan, Scaling Deep Contrastive Learning
      Batch Size under Memory Limited Setup, RepL4NLP 2021.

    Reference: the uncached ``encode_fn(params, inputs)`` and its gradients (tests); the
    caching scheme of sentence-transformers' CachedMultipleNegativesRankingLoss.
    """
    fn = "cached_embeddings"
    if not callable(encode_fn):
        raise TypeError(f"{fn}: `encode_fn` must be callable; got {type(encode_fn).__name__} {encode_fn!r}.")
    chunk = _checks.check_positive_int(chunk_size, "chunk_size", fn, allow_none=False)
    for name, tree in (("params", params), ("inputs", inputs)):
        for leaf in jax.tree_util.tree_leaves(tree):
            _checks.check_real(leaf, name, fn)
    leaves = jax.tree_util.tree_leaves(inputs)
    if not leaves:
        raise ValueError(f"{fn}: `inputs` must hold at least one array; got {inputs!r}.")
    shapes = [jnp.shape(x) for x in leaves]
    if any(len(s) == 0 for s in shapes) or len({s[0] for s in shapes}) != 1:
        raise ValueError(
            f"{fn}: every array of `inputs` must have the same number of rows on axis 0; got shapes {shapes}."
        )
    inputs = jax.tree_util.tree_map(jnp.asarray, inputs)
    b = shapes[0][0]
    full = (b // chunk) * chunk
    if b <= chunk:
        return encode_fn(params, inputs)

    encode = jax.checkpoint(encode_fn)  # keeps only (params, chunk): each chunk is re-encoded in the backward

    def rows(tree, lo, hi):
        return jax.tree_util.tree_map(lambda x: x[lo:hi], tree)

    chunks = jax.tree_util.tree_map(
        lambda x: x.reshape((full // chunk, chunk) + x.shape[1:]), rows(inputs, 0, full)
    )
    out = jax.lax.map(lambda c: encode(params, c), chunks)
    out = jax.tree_util.tree_map(lambda y: y.reshape((full,) + y.shape[2:]), out)
    if full == b:
        return out
    rest = encode(params, rows(inputs, full, b))
    return jax.tree_util.tree_map(lambda y, z: jnp.concatenate([y, z]), out, rest)
