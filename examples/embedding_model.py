"""Train a retrieval embedding model the way text-embedding models are trained, on scikit-learn's digits.

Each 8x8 digit image gives a *query* and a *document*: two independently
augmented views (a shift of up to one pixel, noise, dropped pixels). The task
is instance retrieval: a query must find its own document among every
document of the held-out images. A small Flax NNX encoder (64 -> 256 -> 64,
shared by both sides) is trained with:

* ``jaxloss.multiple_negatives_ranking_loss``: in-batch negatives plus
  ``--negatives`` hard negatives per query, **mined with ``jaxloss.knn``**
  from the previous epoch's embeddings (each query's nearest documents other
  than its own);
* **Matryoshka sizes** (``matryoshka_dims=(64, 32, 16, 8)``): the loss at
  every prefix of the embedding, computed in one pass, so that the first 8, 16
  or 32 features are usable embeddings by themselves;
* ``jaxloss.cached_embeddings`` (GradCache): queries, documents and negatives
  are encoded ``--chunk`` rows at a time, so the encoder's activations are
  held for one chunk while the loss sees the whole batch of ``--batch``
  queries and their ``batch x (1 + negatives)`` candidates.

It prints nDCG@10 and recall@10 (``jaxloss.normalized_dcg``,
``jaxloss.recall_at_k`` over ``jaxloss.knn``'s neighbours) of the held-out
images at every nested size, before and after training. About a minute on a
laptop CPU.

    python examples/embedding_model.py
    python examples/embedding_model.py --epochs 4 --negatives 1 --chunk 64
"""

from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import jaxloss

SIZES = (64, 32, 16, 8)

# --------------------------------------------------------------------------- data


def load_images(seed: int):
    """The 1797 digit images as (n, 8, 8) floats in [0, 1], split 70 / 30."""
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    return train_test_split(images, test_size=0.3, random_state=seed)


def augment(images, rng):
    """An augmented view of each image, flattened to 64 features."""
    n = len(images)
    out = np.zeros_like(images)
    shifts = rng.integers(-1, 2, size=(n, 2)) * (rng.uniform(size=(n, 1)) < 0.3)  # 30% of the views move
    for i, (dy, dx) in enumerate(shifts):  # shift by up to one pixel, zeros coming in
        out[i] = np.roll(images[i], (dy, dx), axis=(0, 1))
        if dy:
            out[i, 0 if dy > 0 else -1, :] = 0
        if dx:
            out[i, :, 0 if dx > 0 else -1] = 0
    out = out * (rng.uniform(size=out.shape) > 0.05)  # dropped pixels
    out = out + 0.05 * rng.normal(size=out.shape)
    return out.reshape(n, 64).astype(np.float32)


# --------------------------------------------------------------------------- model


class Encoder(nnx.Module):
    """64 -> 256 -> dim MLP (the loss normalises: its output is not)."""

    def __init__(self, dim: int, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(64, 256, rngs=rngs)
        self.l2 = nnx.Linear(256, dim, rngs=rngs)

    def __call__(self, x):
        return self.l2(jax.nn.gelu(self.l1(x)))


def retrieval_quality(embed, queries, documents, k=10):
    """nDCG@k and recall@k per nested size: query i's only relevant document is document i."""
    q, d = embed(jnp.asarray(queries)), embed(jnp.asarray(documents))
    ids = jnp.arange(len(queries))
    out = {}
    for size in SIZES:
        qs, ds = (x[:, :size] / jnp.linalg.norm(x[:, :size], axis=-1, keepdims=True) for x in (q, d))
        scores = qs @ ds.T
        ndcg = jaxloss.normalized_dcg(scores, jnp.eye(len(ids)), k=k)
        _, neighbours = jaxloss.knn(qs, ds, k, metric="cosine")
        recall = jaxloss.recall_at_k(neighbours, ids, ids, k)  # one value per query
        out[size] = (float(jnp.mean(ndcg)), float(jnp.mean(recall)))
    return out


# --------------------------------------------------------------------------- training


def train(args):
    train_images, test_images = load_images(args.seed)
    rng = np.random.default_rng(args.seed)
    test_q, test_d = augment(test_images, rng), augment(test_images, rng)

    model = Encoder(SIZES[0], rngs=nnx.Rngs(args.seed))
    graphdef, params = nnx.split(model)

    def encode(params, x):
        return nnx.merge(graphdef, params)(x)

    optimizer = optax.adam(args.lr)
    opt_state = optimizer.init(params)
    n, chunk = args.negatives, args.chunk

    @jax.jit
    def step(params, opt_state, xq, xd, xn):
        def loss_fn(params):
            cached = functools.partial(jaxloss.cached_embeddings, encode, params, chunk_size=chunk)
            q, d = cached(xq), cached(xd)
            negatives = cached(xn.reshape(-1, 64)).reshape(xn.shape[0], n, -1) if n else None
            return jaxloss.multiple_negatives_ranking_loss(
                q, d, negatives, scale=args.scale, matryoshka_dims=SIZES
            )

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    @jax.jit
    def mine(params, xq, xd):
        """Each query's ``n`` nearest documents other than its own (the previous epoch's model)."""
        own = jnp.arange(xq.shape[0])[:, None]
        _, hard = jaxloss.knn(encode(params, xq), encode(params, xd), n, metric="cosine", exclude=own)
        return hard

    before = retrieval_quality(functools.partial(encode, params), test_q, test_d)
    tic, losses = time.perf_counter(), []
    for epoch in range(args.epochs):
        xq, xd = augment(train_images, rng), augment(train_images, rng)
        hard = np.asarray(mine(params, xq, xd)) if n else None  # from the embeddings before this epoch
        order = rng.permutation(len(xq))
        for start in range(0, len(order) - args.batch + 1, args.batch):
            idx = order[start : start + args.batch]
            xn = xd[hard[idx]] if n else np.zeros((len(idx), 0, 64), np.float32)
            params, opt_state, loss = step(params, opt_state, xq[idx], xd[idx], xn)
        losses.append(float(loss))
        print(f"epoch {epoch + 1}: loss {losses[-1]:.3f}")
    seconds = time.perf_counter() - tic
    after = retrieval_quality(functools.partial(encode, params), test_q, test_d)
    return {"before": before, "after": after, "losses": losses, "seconds": seconds}


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128, help="queries per step")
    parser.add_argument("--negatives", type=int, default=3, help="hard negatives per query")
    parser.add_argument("--chunk", type=int, default=32, help="rows per encoder chunk (GradCache)")
    parser.add_argument("--scale", type=float, default=20.0)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    result = train(args)
    print(
        f"MNRL + {args.negatives} mined hard negatives, Matryoshka {SIZES}, GradCache chunks of {args.chunk}: "
        f"{args.epochs} epochs in {result['seconds']:.1f} s"
    )
    print(f"{'size':>6}{'nDCG@10 before':>16}{'after':>8}{'recall@10 before':>18}{'after':>8}")
    for size in SIZES:
        (n0, r0), (n1, r1) = result["before"][size], result["after"][size]
        print(f"{size:>6}{n0:>16.3f}{n1:>8.3f}{r0:>18.3f}{r1:>8.3f}")
    return result


if __name__ == "__main__":
    main()
