"""Softmax cross-entropy with integer labels and label smoothing: value + gradient.

jaxloss (``jax.jit(jax.value_and_grad(...))``) against PyTorch's
``cross_entropy`` forward + backward and optax's equivalent
(``softmax_cross_entropy(logits, smooth_labels(one_hot(labels), ls))``, jitted
value_and_grad). Times are medians after warm-up; ratios are peer / jaxloss.

    python -m benchmarks.bench_classification [--quick]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from benchmarks._timing import median_time, torch_device, torch_sync

LABEL_SMOOTHING = 0.1


def _jax_timer(loss, logits, labels):
    step = jax.jit(jax.value_and_grad(loss))

    def run():
        value, grad = step(logits, labels)
        jax.block_until_ready((value, grad))

    return run


def run(quick: bool) -> list[dict]:
    import optax  # noqa: PLC0415
    import torch  # noqa: PLC0415

    n, c = 4096, 1000
    repeats = 5 if quick else 20
    rng = np.random.default_rng(0)
    x_np = rng.normal(size=(n, c)).astype(np.float32)
    y_np = rng.integers(0, c, size=n)
    logits, labels = jnp.asarray(x_np), jnp.asarray(y_np)

    def ours(a, b):
        return jaxloss.softmax_cross_entropy_with_integer_labels(a, b, label_smoothing=LABEL_SMOOTHING).mean()

    def theirs(a, b):
        targets = optax.smooth_labels(jax.nn.one_hot(b, c, dtype=a.dtype), LABEL_SMOOTHING)
        return optax.softmax_cross_entropy(a, targets).mean()

    dev = torch_device()
    xt = torch.from_numpy(x_np).to(dev).requires_grad_(True)
    yt = torch.from_numpy(y_np).to(dev)

    def torch_step():
        xt.grad = None
        loss = torch.nn.functional.cross_entropy(xt, yt, label_smoothing=LABEL_SMOOTHING)
        loss.backward()
        torch_sync()

    # same numbers first (the benchmark compares equal work)
    v_ours = float(ours(logits, labels))
    v_optax = float(theirs(logits, labels))
    v_torch = float(torch.nn.functional.cross_entropy(xt.detach(), yt, label_smoothing=LABEL_SMOOTHING))
    assert abs(v_ours - v_optax) < 1e-4 * abs(v_optax) and abs(v_ours - v_torch) < 1e-4 * abs(v_torch)

    jax_s = median_time(_jax_timer(ours, logits, labels), repeats)
    optax_s = median_time(_jax_timer(theirs, logits, labels), repeats)
    torch_s = median_time(torch_step, repeats)
    return [
        {
            "operation": "softmax CE, integer labels, label_smoothing=0.1, value+grad",
            "shapes": f"({n}, {c}) float32",
            "jaxloss_s": jax_s,
            "peers": {
                "torch.cross_entropy fwd+bwd": torch_s,
                "optax (smooth_labels + softmax CE)": optax_s,
            },
        }
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    rows = run(args.quick)
    print(f"{'operation':<62} {'shapes':<22} {'jaxloss':>10}  peer: time (ratio peer/jaxloss)")
    for row in rows:
        peers = ", ".join(
            f"{k}: {v * 1e3:.2f} ms ({v / row['jaxloss_s']:.2f}x)" for k, v in row["peers"].items()
        )
        print(f"{row['operation']:<62} {row['shapes']:<22} {row['jaxloss_s'] * 1e3:>8.2f}ms  {peers}")


if __name__ == "__main__":
    main()
