"""Fused linear + softmax cross-entropy (a language model's output layer): value + gradient.

``jaxloss.linear_softmax_cross_entropy(x, kernel, y).mean()`` (jitted
``value_and_grad`` with respect to ``x`` and ``kernel``, block sizes None: the
library's default tiles at these shapes) against the dense JAX loss
``softmax_cross_entropy_with_integer_labels(x @ kernel, y).mean()`` (which
computes one GEMM fewer and holds the ``N x V`` logits) and PyTorch's
``F.linear_cross_entropy`` forward + backward, with
``LinearCrossEntropyOptions()`` (its chunked path) and without (its default,
dense path). A second row times the label log-probabilities of
``linear_softmax_statistics`` (the input of preference and policy losses)
against the dense ``log_softmax`` gather and the fused cross-entropy. Each side
runs in its own process (median, min-max) and the loss values are checked
equal first. Ratios are jaxloss time / peer time (lower is better). The note
gives XLA's planned temporary memory of the JAX steps
(``memory_analysis().temp_size_in_bytes``), here and at N = 8,192,
D = 1,024, V = 131,072.

``python -m benchmarks --isa all --only linear_cross_entropy`` times every
row under each instruction set this CPU supports (``benchmarks._isa``).

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


def _label_log_prob(x, k, y):
    import jaxloss  # noqa: PLC0415

    return -jaxloss.linear_softmax_statistics(x, k, y).label_log_prob.mean()


def _dense_label_log_prob(x, k, y):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    log_p = jax.nn.log_softmax(x @ k, axis=-1)
    return -jnp.take_along_axis(log_p, y[:, None], axis=-1).mean()


LOSSES = {
    "fused": _fused,
    "dense": _dense,
    "label_log_prob": _label_log_prob,
    "dense_log_prob": _dense_label_log_prob,
}


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


def jax_step(n, d, v, loss):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    step = jax.jit(jax.value_and_grad(LOSSES[loss], argnums=(0, 1)))
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
    n, d, v = (512, 256, 16000) if quick else (2048, 512, 32000)
    repeats = 2 if quick else 3
    shape = {"n": n, "d": d, "v": v}
    here = {name: _temp_mib(LOSSES[name], n, d, v) for name in ("fused", "dense", "label_log_prob")}
    big = {name: _temp_mib(LOSSES[name], 8192, 1024, 131072) for name in ("fused", "dense", "label_log_prob")}
    rows = []

    def ours(loss):
        options = {"repeats": repeats, "return_result": True}
        return isolated(MODULE, "jax_step", peer=False, loss=loss, **options, **shape)

    def torch_side(chunked):
        options = {"repeats": repeats, "return_result": True}
        return isolated(MODULE, "torch_step", peer=True, chunked=chunked, **options, **shape)

    fused, dense, chunked, default = ours("fused"), ours("dense"), torch_side(True), torch_side(False)
    log_prob, dense_log_prob = ours("label_log_prob"), ours("dense_log_prob")
    sides = (fused, dense, chunked, default, log_prob, dense_log_prob)
    values = [t.pop("result") for t in sides]
    assert max(values) - min(values) < 1e-5 * abs(values[0]), values  # equal work
    note = (
        f"temporary memory of the JAX value+grad step (memory_analysis): fused {here['fused']:.0f} MiB, "
        f"dense {here['dense']:.0f} MiB at these shapes; fused {big['fused']:.0f} MiB, dense "
        f"{big['dense']:.0f} MiB ({big['dense'] / big['fused']:.0f}x) at N=8192, D=1024, V=131072"
    )
    rows.append(
        {
            "operation": "linear_softmax_cross_entropy value+grad (x, kernel)",
            "shapes": f"N={n}, D={d}, V={v} float32",
            "jaxloss": fused,
            "peers": {
                "dense JAX x @ W + softmax CE (one GEMM fewer)": dense,
                "F.linear_cross_entropy, LinearCrossEntropyOptions() (chunked)": chunked,
                "F.linear_cross_entropy, options=None (default)": default,
            },
            "note": note,
        }
    )
    rows.append(
        {
            "operation": "linear_softmax_statistics label_log_prob value+grad (x, kernel)",
            "shapes": f"N={n}, D={d}, V={v} float32",
            "jaxloss": log_prob,
            "peers": {
                "dense JAX log_softmax(x @ W) at the labels": dense_log_prob,
                "jaxloss linear_softmax_cross_entropy (same tiles)": fused,
            },
            "note": (
                f"temporary memory: {here['label_log_prob']:.0f} MiB here, {big['label_log_prob']:.0f} MiB "
                "at N=8192, D=1024, V=131072 (as the fused cross-entropy)"
            ),
        }
    )
    return rows


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
