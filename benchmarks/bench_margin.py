"""ArcFace at many classes: value + gradient of ``jaxloss.arcface_loss`` against pytorch-metric-learning.

``jnp.mean(jaxloss.arcface_loss(x, W, y, class_block_size=4096))`` (jitted
``value_and_grad`` with respect to the embeddings and the class matrix, the
logits never held) against jaxloss's own dense path (forced by raising its
size limit) and pytorch-metric-learning's ``ArcFaceLoss`` forward + backward
(dense, its ``W`` holding the same ``(D, C)`` matrix). Each side runs in its
own process (median, min-max; ``benchmarks._timing.isolated``) and the three
loss values are checked equal first. Ratios are jaxloss time / peer time
(lower is better). The note gives XLA's planned temporary memory of the two
JAX steps.

    python -m benchmarks.bench_margin [--quick]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from benchmarks._timing import isolated

MODULE = "bench_margin"


def _blocked(x, w, y):
    import jax.numpy as jnp  # noqa: PLC0415

    import jaxloss  # noqa: PLC0415

    return jnp.mean(jaxloss.arcface_loss(x, w, y, class_block_size=4096))


def _dense_step(limit):
    import jax.numpy as jnp  # noqa: PLC0415

    import jaxloss  # noqa: PLC0415
    from jaxloss import _block_policy  # noqa: PLC0415 - the dense path is chosen by the size limit

    def dense(x, w, y):
        old = _block_policy.MARGIN
        _block_policy.MARGIN = old._replace(dense_max=limit)
        try:
            return jnp.mean(jaxloss.arcface_loss(x, w, y))
        finally:
            _block_policy.MARGIN = old

    return dense


def _temp_mib(loss, n, d, c):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    shapes = (
        jax.ShapeDtypeStruct((n, d), jnp.float32),
        jax.ShapeDtypeStruct((d, c), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def _data(n, d, c):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = rng.normal(size=(d, c)).astype(np.float32)
    return x, w, rng.integers(0, c, size=n)


# --- factories: each builds its inputs and returns a blocking callable (run in its own process)


def jax_step(n, d, c, blocked):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    loss = _blocked if blocked else _dense_step(n * c)
    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    x, w, y = (jnp.asarray(a) for a in _data(n, d, c))
    return lambda: float(jax.block_until_ready(step(x, w, y))[0])


def torch_step(n, d, c):
    import torch  # noqa: PLC0415
    from pytorch_metric_learning import losses as pml  # noqa: PLC0415

    from benchmarks._timing import torch_device, torch_sync  # noqa: PLC0415

    x, w, y = _data(n, d, c)
    dev = torch_device()
    module = pml.ArcFaceLoss(c, d, margin=math.degrees(0.5), scale=64.0).to(dev)
    module.W.data = torch.from_numpy(w).to(dev)
    xt = torch.from_numpy(x).to(dev).requires_grad_(True)
    yt = torch.from_numpy(y).to(dev)

    def step():
        xt.grad = module.W.grad = None
        loss = module(xt, yt)
        loss.backward()
        torch_sync()
        return float(loss)

    return step


def run(quick: bool) -> list[dict]:
    n, d, c = (256, 128, 8192) if quick else (1024, 256, 65536)
    repeats = 2 if quick else 3
    shape = {"n": n, "d": d, "c": c}
    ours = isolated(
        MODULE, "jax_step", peer=False, repeats=repeats, return_result=True, blocked=True, **shape
    )
    dense = isolated(
        MODULE, "jax_step", peer=False, repeats=repeats, return_result=True, blocked=False, **shape
    )
    theirs = isolated(MODULE, "torch_step", peer=True, repeats=repeats, return_result=True, **shape)
    values = [t.pop("result") for t in (ours, dense, theirs)]
    assert max(values) - min(values) < 1e-4 * abs(values[0]), values  # equal work
    mem = (_temp_mib(_blocked, n, d, c), _temp_mib(_dense_step(n * c), n, d, c))
    note = (
        f"temporary memory of the JAX value+grad step (memory_analysis): class-blocked {mem[0]:.0f} MiB, "
        f"dense {mem[1]:.0f} MiB; the N x C float32 logits are {n * c * 4 / 2**20:.0f} MiB"
    )
    return [
        {
            "operation": "arcface_loss value+grad (embeddings, kernel), class_block_size=4096",
            "shapes": f"N={n}, D={d}, C={c} float32",
            "jaxloss": ours,
            "peers": {
                "pytorch-metric-learning ArcFaceLoss (dense)": theirs,
                "jaxloss arcface_loss, dense path": dense,
            },
            "note": note,
        }
    ]


def main():
    from benchmarks.__main__ import RATIO, format_table  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, fewer repeats")
    args = parser.parse_args()
    rows = run(args.quick)
    print(f"ratio = {RATIO}\n{format_table(rows)}")
    for row in rows:
        print(f"- {row['note']}")


if __name__ == "__main__":
    main()
