"""Fused linear + softmax cross-entropy (a language model's output layer): value + gradient.

``jaxloss.linear_softmax_cross_entropy(x, kernel, y).mean()`` (jitted
``value_and_grad`` with respect to ``x`` and ``kernel``) against the dense JAX
loss ``softmax_cross_entropy_with_integer_labels(x @ kernel, y).mean()``
(which computes one GEMM fewer and holds the ``N x V`` logits) and PyTorch's
``F.linear_cross_entropy`` forward + backward, with
``LinearCrossEntropyOptions()`` (its chunked path) and without (its
reference path). The timings are interleaved (one run of each in turn, the
median of the rounds), so a machine shared with other work slows all of them
alike. The note gives XLA's planned temporary memory of the two JAX steps
(``memory_analysis().temp_size_in_bytes``), here and at N = 8,192,
D = 1,024, V = 131,072.

    python -m benchmarks.bench_linear_cross_entropy [--quick]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from benchmarks._timing import interleaved_medians, torch_device, torch_sync


def _fused(x, k, y):
    return jaxloss.linear_softmax_cross_entropy(x, k, y).mean()


def _dense(x, k, y):
    return jaxloss.softmax_cross_entropy_with_integer_labels(x @ k, y).mean()


def _temp_mib(loss, n, d, v):
    shapes = (
        jax.ShapeDtypeStruct((n, d), jnp.float32),
        jax.ShapeDtypeStruct((d, v), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def run(quick: bool) -> list[dict]:
    import torch  # noqa: PLC0415

    n, d, v = (512, 256, 8000) if quick else (2048, 512, 32000)
    rounds = 2 if quick else 3
    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(n, d)).astype(np.float32)
    k_np = (rng.normal(size=(d, v)) / np.sqrt(d)).astype(np.float32)
    y_np = rng.integers(0, v, size=n)
    x, k, y = jnp.asarray(x_np), jnp.asarray(k_np), jnp.asarray(y_np)

    fused = jax.jit(jax.value_and_grad(_fused, argnums=(0, 1)))
    dense = jax.jit(jax.value_and_grad(_dense, argnums=(0, 1)))

    dev = torch_device()
    xt = torch.from_numpy(x_np).to(dev).requires_grad_(True)
    wt = torch.from_numpy(np.ascontiguousarray(k_np.T)).to(dev).requires_grad_(True)
    yt = torch.from_numpy(y_np).to(dev)
    chunked = torch.nn.LinearCrossEntropyOptions()

    def torch_step(options):
        def step():
            xt.grad = wt.grad = None
            torch.nn.functional.linear_cross_entropy(xt, wt, yt, options=options).backward()
            torch_sync()

        return step

    # the same numbers first (the benchmark compares equal work)
    ours = float(fused(x, k, y)[0])
    assert abs(ours - float(dense(x, k, y)[0])) < 1e-5 * abs(ours)
    with torch.no_grad():
        theirs = float(torch.nn.functional.linear_cross_entropy(xt, wt, yt, options=chunked))
    assert abs(ours - theirs) < 1e-5 * abs(ours)

    medians = interleaved_medians(
        {
            "jaxloss": lambda: jax.block_until_ready(fused(x, k, y)),
            "dense": lambda: jax.block_until_ready(dense(x, k, y)),
            "torch chunked": torch_step(chunked),
            "torch reference": torch_step(None),
        },
        rounds,
    )
    here = (_temp_mib(_fused, n, d, v), _temp_mib(_dense, n, d, v))
    big = (_temp_mib(_fused, 8192, 1024, 131072), _temp_mib(_dense, 8192, 1024, 131072))
    note = (
        f"temporary memory of the JAX value+grad step (memory_analysis): fused {here[0]:.0f} MiB, "
        f"dense {here[1]:.0f} MiB at these shapes; fused {big[0]:.0f} MiB, dense {big[1]:.0f} MiB "
        f"({big[1] / big[0]:.0f}x) at N=8192, D=1024, V=131072"
    )
    return [
        {
            "operation": "linear_softmax_cross_entropy value+grad (x, kernel)",
            "shapes": f"N={n}, D={d}, V={v} float32",
            "jaxloss_s": medians["jaxloss"],
            "peers": {
                "dense JAX x @ W + softmax CE (one GEMM fewer)": medians["dense"],
                "F.linear_cross_entropy, LinearCrossEntropyOptions()": medians["torch chunked"],
                "F.linear_cross_entropy, options=None": medians["torch reference"],
            },
            "note": note,
        }
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, fewer rounds")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = run(args.quick)
    for row in rows:
        print(f"{row['operation']} [{row['shapes']}]: jaxloss {row['jaxloss_s'] * 1e3:.0f} ms")
        for peer, seconds in row["peers"].items():
            print(f"  {peer}: {seconds * 1e3:.0f} ms (peer / jaxloss = {seconds / row['jaxloss_s']:.2f}x)")
        print(f"  {row['note']}")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
