"""Two-tower contrastive training (CLIP / SigLIP style) sharded over devices with jaxloss's ring.

Two small Flax NNX towers embed two differently augmented views of the same
8x8 digit (scikit-learn's ``load_digits``, shipped with the package): tower A
sees a randomly shifted, noisy copy, tower B a randomly masked, blurred copy.
The pair (view A of image i, view B of image i) is a positive, every other
pairing in the batch a negative. The towers and a learnable temperature (CLIP:
``log(1 / T)``; SigLIP: ``log t`` and the bias ``b``) are trained with optax
Adam on ``jaxloss.clip_loss`` or ``jaxloss.sigmoid_contrastive_loss``.

The loss runs inside ``jax.shard_map`` over 4 CPU devices (forced with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``, set below before JAX
is imported) with ``axis_name`` and ``block_size``: each device holds a
quarter of the batch, the key blocks travel around the devices with
``ppermute``, and no device ever builds the whole similarity matrix or
gathers the batch. Before and after training, held-out images retrieve their
other view among all held-out views (top-1 and top-5 accuracy, with
``jaxloss.knn``).

    python examples/two_tower_contrastive.py                   # CLIP loss
    python examples/two_tower_contrastive.py --loss sigmoid    # SigLIP loss
"""

from __future__ import annotations

import os

if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import argparse  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from jax.sharding import Mesh, NamedSharding  # noqa: E402
from jax.sharding import PartitionSpec as P  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import jaxloss  # noqa: E402

LOSSES = ("clip", "sigmoid")


# --------------------------------------------------------------------------- data: two views


def load_images(seed: int):
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)  # (n, 8, 8)
    return train_test_split(images, test_size=0.3, random_state=seed)


def view_a(images, rng):
    """A random shift by up to one pixel, plus Gaussian noise."""
    out = np.empty_like(images)
    shifts = rng.integers(-1, 2, size=(len(images), 2))
    for i, (dy, dx) in enumerate(shifts):
        out[i] = np.roll(images[i], (dy, dx), axis=(0, 1))
    return (out + 0.1 * rng.normal(size=out.shape)).reshape(len(images), 64).astype(np.float32)


def view_b(images, rng):
    """A 3x3 box blur, then a random quarter of the pixels dropped."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1)))
    blur = sum(padded[:, dy : dy + 8, dx : dx + 8] for dy in range(3) for dx in range(3)) / 9
    keep = rng.random(size=blur.shape) > 0.25
    return (blur * keep).reshape(len(images), 64).astype(np.float32)


# --------------------------------------------------------------------------- model


class Tower(nnx.Module):
    """64 -> hidden -> dim MLP (the loss normalizes the embeddings)."""

    def __init__(self, hidden: int, dim: int, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(64, hidden, rngs=rngs)
        self.l2 = nnx.Linear(hidden, dim, rngs=rngs)

    def __call__(self, x):
        return self.l2(jax.nn.gelu(self.l1(x)))


class TwoTower(nnx.Module):
    """Two towers and the loss's learnable parameters."""

    def __init__(self, loss: str, hidden: int, dim: int, *, rngs: nnx.Rngs):
        self.tower_a = Tower(hidden, dim, rngs=rngs)
        self.tower_b = Tower(hidden, dim, rngs=rngs)
        if loss == "clip":  # CLIP learns log(1 / T), initialised at T = 0.07
            self.log_scale = nnx.Param(jnp.asarray(np.log(1 / 0.07), jnp.float32))
        else:  # SigLIP learns log t and b, initialised at t = 10, b = -10
            self.log_scale = nnx.Param(jnp.asarray(np.log(10.0), jnp.float32))
        self.bias = nnx.Param(jnp.asarray(-10.0, jnp.float32))

    def __call__(self, a, b):
        return self.tower_a(a), self.tower_b(b)


def make_loss(name: str, mesh: Mesh, block_size: int):
    """The loss of the global batch, computed by the ring inside ``shard_map``."""

    def local(za, zb, log_scale, bias):
        if name == "clip":
            temperature = jnp.exp(-log_scale)
            return jaxloss.clip_loss(
                za, zb, temperature=temperature, axis_name="batch", block_size=block_size
            )
        return jaxloss.sigmoid_contrastive_loss(
            za, zb, logit_scale=jnp.exp(log_scale), logit_bias=bias, axis_name="batch", block_size=block_size
        )

    return jax.shard_map(local, mesh=mesh, in_specs=(P("batch"), P("batch"), P(), P()), out_specs=P())


# --------------------------------------------------------------------------- evaluation


def retrieval_accuracy(model, a, b):
    """Top-1 and top-5 accuracy of each view-A embedding retrieving its own view B (cosine)."""
    za, zb = model(jnp.asarray(a), jnp.asarray(b))
    _, idx = jaxloss.knn(za, zb, 5, metric="cosine")
    own = np.asarray(idx) == np.arange(len(a))[:, None]
    return float(own[:, 0].mean()), float(own.any(axis=1).mean())


# --------------------------------------------------------------------------- training


def train(args):
    from tqdm.auto import tqdm

    n_devices = min(args.devices, jax.device_count())
    if args.batch % n_devices:
        raise SystemExit(f"--batch ({args.batch}) must be a multiple of the {n_devices} devices")
    mesh = Mesh(np.array(jax.devices()[:n_devices]), ("batch",))
    rows = NamedSharding(mesh, P("batch"))

    train_images, test_images = load_images(args.seed)
    rng = np.random.default_rng(args.seed)
    test_a, test_b = view_a(test_images, rng), view_b(test_images, rng)

    model = TwoTower(args.loss, args.hidden, args.dim, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(args.lr), wrt=nnx.Param)
    loss_fn = make_loss(args.loss, mesh, args.block_size)

    @nnx.jit
    def train_step(model, optimizer, a, b):
        def objective(m):
            za, zb = m(a, b)
            return loss_fn(za, zb, m.log_scale[...], m.bias[...])

        loss, grads = nnx.value_and_grad(objective)(model)
        optimizer.update(model, grads)
        return loss

    top1_before, top5_before = retrieval_accuracy(model, test_a, test_b)
    start = time.perf_counter()
    bar = tqdm(
        range(args.steps), desc=f"training ({args.loss}, {n_devices} devices)", disable=args.no_progress
    )
    running = None
    for step in bar:
        idx = rng.choice(len(train_images), size=args.batch, replace=False)
        a = jax.device_put(view_a(train_images[idx], rng), rows)
        b = jax.device_put(view_b(train_images[idx], rng), rows)
        loss = float(train_step(model, optimizer, a, b))
        running = loss if running is None else 0.9 * running + 0.1 * loss
        if step % 10 == 0 or step == args.steps - 1:
            bar.set_postfix(loss=f"{running:.3f}", scale=f"{float(jnp.exp(model.log_scale[...])):.1f}")
    seconds = time.perf_counter() - start
    top1_after, top5_after = retrieval_accuracy(model, test_a, test_b)
    return {
        "top1": (top1_before, top1_after),
        "top5": (top5_before, top5_after),
        "final_loss": running,
        "logit_scale": float(jnp.exp(model.log_scale[...])),
        "devices": n_devices,
        "seconds": seconds,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--loss", choices=LOSSES, default="clip")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=256, help="global batch, split over the devices")
    parser.add_argument("--block-size", type=int, default=32, help="tile edge of the tiled loss")
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    result = train(args)
    (b1, a1), (b5, a5) = result["top1"], result["top5"]
    print(
        f"{args.loss} loss on {result['devices']} devices, {args.steps} steps in {result['seconds']:.1f} s "
        f"(final loss {result['final_loss']:.3f}, learned scale {result['logit_scale']:.1f})\n"
        f"held-out retrieval of the other view: top-1 {b1:.3f} -> {a1:.3f}, top-5 {b5:.3f} -> {a5:.3f}"
    )
    return result


if __name__ == "__main__":
    main()
