"""Metric-learning losses vs pytorch-metric-learning: value + gradient, float32.

Run: ``python -m benchmarks.bench_metric_learning [--quick]``. Times are the
median of several runs after warm-up (JAX: jitted ``value_and_grad`` with
``block_until_ready``; PyTorch: forward + backward, miner included).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from benchmarks._timing import median_time, torch_device, torch_sync


def _jax_runner(loss, x, labels, **kw):
    step = jax.jit(jax.value_and_grad(lambda e, lab: loss(e, lab, **kw)))
    xj, lj = jnp.asarray(x), jnp.asarray(labels)

    def run():
        value, grad = step(xj, lj)
        jax.block_until_ready((value, grad))

    return run


def _torch_runner(loss_fn, x, labels, miner=None):
    import torch  # noqa: PLC0415

    lt = torch.from_numpy(labels).to(torch_device())
    xt0 = torch.from_numpy(x).to(torch_device())

    def run():
        xt = xt0.clone().requires_grad_(True)
        indices = miner(xt, lt) if miner is not None else None
        value = loss_fn(xt, lt, indices)
        value.backward()
        torch_sync()

    return run


def run(quick: bool) -> list[dict]:
    import torch  # noqa: PLC0415
    from pytorch_metric_learning import distances, losses, miners  # noqa: PLC0415

    torch.set_num_threads(max(1, torch.get_num_threads()))
    repeats = 3 if quick else 10
    r = np.random.default_rng(0)
    rows = []

    def case(operation, b, d, classes, jax_loss, jax_kw, pml_loss, pml_miner=None):
        x = r.normal(size=(b, d)).astype(np.float32)
        labels = r.integers(0, classes, size=b).astype(np.int64)
        ours = median_time(_jax_runner(jax_loss, x, labels, **jax_kw), repeats)
        peer = median_time(_torch_runner(pml_loss, x, labels, pml_miner), repeats)
        rows.append(
            {
                "operation": operation,
                "shapes": f"B={b}, d={d}, {classes} classes, float32",
                "jaxloss_s": ours,
                "peers": {"pytorch-metric-learning": peer},
            }
        )

    lp = distances.LpDistance(normalize_embeddings=False)
    case(
        "batch_hard_triplet_loss value+grad",
        1024,
        128,
        64,
        jaxloss.batch_hard_triplet_loss,
        {"margin": 0.2},
        losses.TripletMarginLoss(margin=0.2, distance=lp),
        miners.BatchHardMiner(distance=lp),
    )
    b_all = 256 if quick else 512
    case(
        "batch_all_triplet_loss value+grad",
        b_all,
        128,
        16,
        jaxloss.batch_all_triplet_loss,
        {"margin": 0.2},
        losses.TripletMarginLoss(margin=0.2, distance=lp),
    )
    case(
        "supervised_contrastive_loss value+grad",
        1024,
        128,
        64,
        jaxloss.supervised_contrastive_loss,
        {"temperature": 0.1},
        losses.SupConLoss(temperature=0.1),
    )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rows = run(args.quick)
    print(f"{'operation':<42} {'shapes':<34} {'jaxloss ms':>11} {'peer ms':>9} {'jaxloss/peer':>13}")
    for row in rows:
        for name, t in row["peers"].items():
            print(
                f"{row['operation']:<42} {row['shapes']:<34} {row['jaxloss_s'] * 1e3:>11.2f} "
                f"{t * 1e3:>9.2f} {row['jaxloss_s'] / t:>12.2f}x  ({name})"
            )


if __name__ == "__main__":
    main()
