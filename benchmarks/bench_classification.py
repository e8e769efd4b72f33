"""Softmax cross-entropy with integer labels and label smoothing: value + gradient.

jaxloss (``jax.jit(jax.value_and_grad(...))``) against PyTorch's
``cross_entropy`` forward + backward and optax's equivalent
(``softmax_cross_entropy(logits, smooth_labels(one_hot(labels), ls))``, jitted
value_and_grad). Each side runs in its own process (median, min-max); the
three values are checked equal first. Ratios are jaxloss time / peer time
(lower is better).

    python -m benchmarks.bench_classification [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks._timing import isolated

MODULE = "bench_classification"
LABEL_SMOOTHING = 0.1


def _data(n, c):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, c)).astype(np.float32), rng.integers(0, c, size=n)


def _jax_loss(side, c):
    import jax  # noqa: PLC0415

    if side == "jaxloss":
        import jaxloss  # noqa: PLC0415

        return lambda a, b: jaxloss.softmax_cross_entropy_with_integer_labels(
            a, b, label_smoothing=LABEL_SMOOTHING
        ).mean()
    import optax  # noqa: PLC0415

    def theirs(a, b):
        targets = optax.smooth_labels(jax.nn.one_hot(b, c, dtype=a.dtype), LABEL_SMOOTHING)
        return optax.softmax_cross_entropy(a, targets).mean()

    return theirs


# --- factories: each builds its inputs and returns a blocking callable (run in its own process)


def jax_step(n, c, side):
    """``side``: "jaxloss" or "optax"; the callable returns the loss value."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    x, y = _data(n, c)
    step = jax.jit(jax.value_and_grad(_jax_loss(side, c)))
    logits, labels = jnp.asarray(x), jnp.asarray(y)
    return lambda: float(jax.block_until_ready(step(logits, labels))[0])


def torch_step(n, c):
    import torch  # noqa: PLC0415

    from benchmarks._timing import torch_device, torch_sync  # noqa: PLC0415

    x, y = _data(n, c)
    dev = torch_device()
    xt = torch.from_numpy(x).to(dev).requires_grad_(True)
    yt = torch.from_numpy(y).to(dev)

    def step():
        xt.grad = None
        loss = torch.nn.functional.cross_entropy(xt, yt, label_smoothing=LABEL_SMOOTHING)
        loss.backward()
        torch_sync()
        return float(loss)

    return step


def run(quick: bool) -> list[dict]:
    n, c = (1024, 1000) if quick else (4096, 1000)
    repeats = 5 if quick else 20
    ours = isolated(
        MODULE, "jax_step", peer=False, repeats=repeats, return_result=True, n=n, c=c, side="jaxloss"
    )
    optax_t = isolated(
        MODULE, "jax_step", peer=False, repeats=repeats, return_result=True, n=n, c=c, side="optax"
    )
    torch_t = isolated(MODULE, "torch_step", peer=True, repeats=repeats, return_result=True, n=n, c=c)
    values = [t.pop("result") for t in (ours, optax_t, torch_t)]
    # the benchmark compares equal work: the same numbers first
    assert max(values) - min(values) < 1e-4 * abs(values[0]), values
    return [
        {
            "operation": "softmax CE, integer labels, label_smoothing=0.1, value+grad",
            "shapes": f"({n}, {c}) float32",
            "jaxloss": ours,
            "peers": {"torch.cross_entropy fwd+bwd": torch_t, "optax (smooth_labels + softmax CE)": optax_t},
        }
    ]


def main():
    from benchmarks.__main__ import RATIO, format_table  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller batch, fewer repetitions")
    args = parser.parse_args()
    print(f"ratio = {RATIO}\n{format_table(run(args.quick))}")


if __name__ == "__main__":
    main()
