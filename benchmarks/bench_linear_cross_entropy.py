"""Fused linear + softmax cross-entropy (a language model's output layer): value + gradient.

``jaxloss.linear_softmax_cross_entropy(x, kernel, y).mean()`` (jitted
``value_and_grad`` with respect to ``x`` and ``kernel``) against the dense JAX
loss ``softmax_cross_entropy_with_integer_labels(x @ kernel, y).mean()``
(which computes one GEMM fewer and holds the ``N x V`` logits) and PyTorch's
``F.linear_cross_entropy`` forward + backward, with
``LinearCrossEntropyOptions()`` (its chunked path) and without (its default,
dense path). Each side runs in its own process (median, min-max) and the four
loss values are checked equal first. Ratios are jaxloss time / peer time
(lower is better). The note gives XLA's planned temporary memory of the two
JAX steps (``memory_analysis().temp_size_in_bytes``), here and at N = 8,192,
D = 1,024, V = 131,072.

    python -m benchmarks.bench_linear_cross_entropy [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks._timing import isolated

MODULE = "bench_linear_cross_entropy"


def _fused(x, k, y):
    import jaxloss  # noqa: PLC0415

    return jaxloss.linear_softmax_cross_entropy(x, k, y).mean()


def _dense(x, k, y):
    import jaxloss  # noqa: PLC0415

    return jaxloss.softmax_cross_entropy_with_integer_labels(x @ k, y).mean()


def _temp_mib(loss, n, d, v):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    shapes = (
        jax.ShapeDtypeStruct((n, d), jnp.float32),
        jax.ShapeDtypeStruct((d, v), jnp.float32),
        jax.ShapeDtypeStruct((n,), jnp.int32),
    )
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def _data(n, d, v):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)).astype(np.float32)
    k = (rng.normal(size=(d, v)) / np.sqrt(d)).astype(np.float32)
    return x, k, rng.integers(0, v, size=n)


# --- factories: each builds its inputs and returns a blocking callable (run in its own process)


def jax_step(n, d, v, fused):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    step = jax.jit(jax.value_and_grad(_fused if fused else _dense, argnums=(0, 1)))
    x, k, y = (jnp.asarray(a) for a in _data(n, d, v))
    return lambda: float(jax.block_until_ready(step(x, k, y))[0])


def torch_step(n, d, v, chunked):
    import torch  # noqa: PLC0415

    from benchmarks._timing import torch_device, torch_sync  # noqa: PLC0415

    x, k, y = _data(n, d, v)
    dev = torch_device()
    xt = torch.from_numpy(x).to(dev).requires_grad_(True)
    wt = torch.from_numpy(np.ascontiguousarray(k.T)).to(dev).requires_grad_(True)
    yt = torch.from_numpy(y).to(dev)
    options = torch.nn.LinearCrossEntropyOptions() if chunked else None

    def step():
        xt.grad = wt.grad = None
        loss = torch.nn.functional.linear_cross_entropy(xt, wt, yt, options=options)
        loss.backward()
        torch_sync()
        return float(loss)

    return step


def run(quick: bool) -> list[dict]:
    n, d, v = (512, 256, 8000) if quick else (2048, 512, 32000)
    repeats = 2 if quick else 3
    shape = {"n": n, "d": d, "v": v}
    ours = isolated(MODULE, "jax_step", peer=False, repeats=repeats, return_result=True, fused=True, **shape)
    dense = isolated(
        MODULE, "jax_step", peer=False, repeats=repeats, return_result=True, fused=False, **shape
    )
    chunked = isolated(
        MODULE, "torch_step", peer=True, repeats=repeats, return_result=True, chunked=True, **shape
    )
    default = isolated(
        MODULE, "torch_step", peer=True, repeats=repeats, return_result=True, chunked=False, **shape
    )
    values = [t.pop("result") for t in (ours, dense, chunked, default)]
    assert max(values) - min(values) < 1e-5 * abs(values[0]), values  # equal work
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
            "jaxloss": ours,
            "peers": {
                "dense JAX x @ W + softmax CE (one GEMM fewer)": dense,
                "F.linear_cross_entropy, LinearCrossEntropyOptions() (chunked)": chunked,
                "F.linear_cross_entropy, options=None (default)": default,
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
