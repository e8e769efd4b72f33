"""ArcFace at many classes: value + gradient of ``jaxloss.arcface_loss`` against pytorch-metric-learning.

``jnp.mean(jaxloss.arcface_loss(x, W, y))`` (jitted ``value_and_grad`` with
respect to the embeddings and the class matrix) on its default path at this
size (class-blocked: ``N x C`` above ``2**24``, so the logits are never held)
against jaxloss's own dense path (``class_block_size=None`` below the limit is
forced by raising it) and pytorch-metric-learning's ``ArcFaceLoss`` forward +
backward (dense, its ``W`` holding the same ``(D, C)`` matrix). The timings
are interleaved (one run of each in turn, the median of the rounds). The note
gives XLA's planned temporary memory of the two JAX steps.

    python -m benchmarks.bench_margin [--quick]
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from benchmarks._timing import interleaved_medians, torch_device, torch_sync


def _blocked(x, w, y):
    return jnp.mean(jaxloss.arcface_loss(x, w, y, class_block_size=4096))


def _dense_step(limit):
    from jaxloss import _margin  # noqa: PLC0415 - the dense path is chosen by the size limit

    def dense(x, w, y):
        old = _margin.DENSE_MAX_LOGITS
        _margin.DENSE_MAX_LOGITS = limit
        try:
            return jnp.mean(jaxloss.arcface_loss(x, w, y))
        finally:
            _margin.DENSE_MAX_LOGITS = old

    return dense


def _temp_mib(loss, n, d, c):
    shapes = (
        jax.ShapeDtypeStruct((n, d), jnp.float32),
        jax.ShapeDtypeStruct((d, c), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def run(quick: bool) -> list[dict]:
    import torch  # noqa: PLC0415
    from pytorch_metric_learning import losses as pml  # noqa: PLC0415

    n, d, c = (256, 128, 8192) if quick else (1024, 256, 65536)
    rounds = 2 if quick else 3
    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(n, d)).astype(np.float32)
    w_np = rng.normal(size=(d, c)).astype(np.float32)
    y_np = rng.integers(0, c, size=n)
    x, w, y = jnp.asarray(x_np), jnp.asarray(w_np), jnp.asarray(y_np)

    blocked = jax.jit(jax.value_and_grad(_blocked, argnums=(0, 1)))
    dense_loss = _dense_step(n * c)
    dense = jax.jit(jax.value_and_grad(dense_loss, argnums=(0, 1)))

    dev = torch_device()
    module = pml.ArcFaceLoss(c, d, margin=math.degrees(0.5), scale=64.0).to(dev)
    module.W.data = torch.from_numpy(w_np).to(dev)
    xt = torch.from_numpy(x_np).to(dev).requires_grad_(True)
    yt = torch.from_numpy(y_np).to(dev)

    def torch_step():
        xt.grad = module.W.grad = None
        module(xt, yt).backward()
        torch_sync()

    ours = float(blocked(x, w, y)[0])
    assert abs(ours - float(dense(x, w, y)[0])) < 1e-4 * abs(ours)
    with torch.no_grad():
        theirs = float(module(xt, yt))
    assert abs(ours - theirs) < 1e-4 * abs(ours)

    medians = interleaved_medians(
        {
            "jaxloss": lambda: jax.block_until_ready(blocked(x, w, y)),
            "dense": lambda: jax.block_until_ready(dense(x, w, y)),
            "pml": torch_step,
        },
        rounds,
    )
    mem = (_temp_mib(_blocked, n, d, c), _temp_mib(dense_loss, n, d, c))
    note = (
        f"temporary memory of the JAX value+grad step (memory_analysis): class-blocked {mem[0]:.0f} MiB, "
        f"dense {mem[1]:.0f} MiB; the N x C float32 logits are {n * c * 4 / 2**20:.0f} MiB"
    )
    return [
        {
            "operation": "arcface_loss value+grad (embeddings, weights)",
            "shapes": f"N={n}, D={d}, C={c} float32",
            "jaxloss_s": medians["jaxloss"],
            "peers": {
                "pytorch-metric-learning ArcFaceLoss (dense)": medians["pml"],
                "jaxloss arcface_loss, dense path": medians["dense"],
            },
            "note": note,
        }
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, fewer rounds")
    args = parser.parse_args()
    start = time.perf_counter()
    for row in run(args.quick):
        print(f"{row['operation']} [{row['shapes']}]: jaxloss {row['jaxloss_s'] * 1e3:.0f} ms")
        for peer, seconds in row["peers"].items():
            ratio = row["jaxloss_s"] / seconds
            print(
                f"  {peer}: {seconds * 1e3:.0f} ms (jaxloss time / peer time = {ratio:.2f}, lower is better)"
            )
        print(f"  {row['note']}")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
