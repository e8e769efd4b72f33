"""Face-recognition-style training on handwritten digits: ArcFace against the batch-hard triplet loss.

A small MLP maps 8x8 digit images (scikit-learn's ``load_digits``) to 32-d
embeddings. One copy is trained as face-recognition models are, with
``jaxloss.arcface_loss`` against a learned class matrix ``(D, C)`` (one
column per identity); another with ``jaxloss.batch_hard_triplet_loss`` on the
same batches. Held-out digits then retrieve each other with ``jaxloss.knn``,
scored with precision@1 and mAP@R, before and after training.

Last, the class-parallel path (insightface's Partial FC): the class matrix is
split over 4 CPU devices (forced with ``--xla_force_host_platform_device_count``,
set below when this file is run as a script) inside ``jax.shard_map``, and
the loss and both gradients equal the single-device ones.

    python examples/face_style_arcface.py [--steps 300]
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # must precede the first use of jax
    os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import jaxloss


def init_mlp(key, sizes=(64, 128, 128, 32)):
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        (jax.random.normal(k, (a, b)) * np.sqrt(2.0 / a), jnp.zeros(b))
        for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def embed(params, x):
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def evaluate(params, x, y):
    """precision@1 and mAP@R of held-out digits retrieving each other (the query excluded)."""
    e = embed(params, jnp.asarray(x))
    labels = jnp.asarray(y)
    _, idx = jaxloss.knn(e, e, int(np.bincount(y).max()) + 1, metric="cosine")
    p1 = jaxloss.precision_at_k(idx, labels, labels, 1, exclude_self=True).mean()  # every digit recurs
    map_r = jaxloss.mean_average_precision_at_r(idx, labels, labels, exclude_self=True).mean()
    return float(p1), float(map_r)


def train(loss_name, x, y, steps, seed, batch=128):
    key_mlp, key_w = jax.random.split(jax.random.key(seed))
    params = {"mlp": init_mlp(key_mlp), "classes": jax.random.normal(key_w, (32, 10))}

    def loss_fn(p, xb, yb):
        e = embed(p["mlp"], xb)
        if loss_name == "arcface":
            return jnp.mean(jaxloss.arcface_loss(e, p["classes"], yb, margin=0.3, scale=16.0))
        return jaxloss.batch_hard_triplet_loss(e / jnp.linalg.norm(e, axis=1, keepdims=True), yb, margin=0.2)

    opt = optax.adam(3e-3)
    state = opt.init(params)

    @jax.jit
    def step(p, s, xb, yb):
        value, grads = jax.value_and_grad(loss_fn)(p, xb, yb)
        updates, s = opt.update(grads, s, p)
        return optax.apply_updates(p, updates), s, value

    rng = np.random.default_rng(seed)
    for _ in range(steps):
        i = rng.choice(len(x), size=batch, replace=False)
        params, state, _ = step(params, state, jnp.asarray(x[i]), jnp.asarray(y[i]))
    return params


def class_parallel_check(params, x, y, devices=4):
    """ArcFace with the class matrix split over ``devices``: the same loss and gradients."""
    n_dev = min(devices, len(jax.devices()))
    mesh = Mesh(np.array(jax.devices()[:n_dev]), ("classes",))
    e = embed(params["mlp"], jnp.asarray(x[:256]))
    labels = jnp.asarray(y[:256])
    # 12 columns (two unused identities) so that whole classes split over 4 devices
    w = jnp.concatenate([params["classes"], jax.random.normal(jax.random.key(1), (32, 2))], axis=1)

    def single(e, w):
        return jnp.mean(jaxloss.arcface_loss(e, w, labels, margin=0.3, scale=16.0, class_block_size=2))

    def body(e, w, y):
        return jaxloss.arcface_loss(e, w, y, margin=0.3, scale=16.0, class_block_size=2, axis_name="classes")

    sharded_losses = jax.shard_map(body, mesh=mesh, in_specs=(P(), P(None, "classes"), P()), out_specs=P())
    v1, g1 = jax.value_and_grad(single, argnums=(0, 1))(e, w)
    v2, g2 = jax.jit(jax.value_and_grad(lambda e, w: jnp.mean(sharded_losses(e, w, labels)), argnums=(0, 1)))(
        e, w
    )
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(g1, g2, strict=True))
    return n_dev, float(v1), float(v2), diff


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, random_state=args.seed, stratify=y)

    start = time.perf_counter()
    before = evaluate(init_mlp(jax.random.split(jax.random.key(args.seed))[0]), x_te, y_te)
    print(f"untrained           P@1 {before[0]:.3f}  mAP@R {before[1]:.3f}")
    result = {"before": before}
    trained = {}
    for name in ("arcface", "batch_hard"):
        trained[name] = train(name, x_tr, y_tr, args.steps, args.seed)
        result[name] = evaluate(trained[name]["mlp"], x_te, y_te)
        print(f"{name:<19} P@1 {result[name][0]:.3f}  mAP@R {result[name][1]:.3f}")
    n_dev, v1, v2, diff = class_parallel_check(trained["arcface"], x_te, y_te)
    print(
        f"class-parallel ArcFace on {n_dev} devices: loss {v2:.6f} (one device {v1:.6f}), "
        f"largest gradient difference {diff:.1e}"
    )
    result["class_parallel"] = (n_dev, v1, v2, diff)
    print(f"({time.perf_counter() - start:.0f} s)")
    return result


if __name__ == "__main__":
    main()
