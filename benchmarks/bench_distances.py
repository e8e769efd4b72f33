"""All-pairs distances: jaxloss.cdist against torch.cdist, scipy, scikit-learn and a NumPy broadcast.

Run ``python -m benchmarks.bench_distances [--quick]``. Every time is the median
of several runs after a warm-up (``block_until_ready`` for JAX); a peer that
takes more than a few seconds is timed once. The table prints peer time /
jaxloss time, so a ratio above 1 means jaxloss is faster.

Rows:

* euclidean, 4096 x 4096 x 256 float32: torch.cdist (its default matrix-product
  mode), scikit-learn's ``euclidean_distances``, and the bare float32 matrix
  product ``x @ y.T`` of the same shapes in JAX and PyTorch (the bound for any
  product-based method).
* euclidean, 1024 x 1024 x 256 float32: the slow peers that would take minutes
  (or, for the NumPy broadcast, 4096 * 4096 * 256 * 4 bytes = 16 GiB of
  memory) at the full size: scipy's cdist, scikit-learn's ``DistanceMetric``,
  the NumPy broadcast ``sqrt(((a[:, None] - b[None]) ** 2).sum(-1))``.
* binary hamming, 4096 x 4096 x 256 bits: torch.cdist(p=0) on 0/1 floats and
  scipy's cdist(metric="hamming") on booleans.
"""

from __future__ import annotations

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks._timing import median_time, torch_device, torch_sync


def _jax(fn, *args):
    jitted = jax.jit(fn)
    return lambda: jax.block_until_ready(jitted(*args))


def run(quick: bool = False) -> list[dict]:
    import scipy.spatial.distance as ssd  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from sklearn.metrics import DistanceMetric  # noqa: PLC0415
    from sklearn.metrics.pairwise import euclidean_distances  # noqa: PLC0415

    import jaxloss  # noqa: PLC0415

    repeats = 3 if quick else 10
    rng = np.random.default_rng(0)
    rows = []

    def euclidean_row(n, d, peers):
        x = rng.normal(size=(n, d)).astype(np.float32)
        y = rng.normal(size=(n, d)).astype(np.float32)
        jx, jy = jnp.asarray(x), jnp.asarray(y)
        dev = torch_device()
        tx, ty = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)

        def synced(f):
            return lambda: (f(), torch_sync())

        cdist = functools.partial(jaxloss.cdist, metric="euclidean")
        ours = median_time(_jax(cdist, jx, jy), repeats)
        times = {}
        for name in peers:
            if name == "torch.cdist":
                fn = synced(lambda: torch.cdist(tx, ty))
            elif name == "jax matmul x @ y.T (bound)":
                fn = _jax(lambda a, b: jnp.dot(a, b.T, precision=jax.lax.Precision.HIGHEST), jx, jy)
            elif name == "torch matmul x @ y.T (bound)":
                fn = synced(lambda: tx @ ty.T)
            elif name == "sklearn euclidean_distances":
                fn = lambda: euclidean_distances(x, y)  # noqa: E731
            elif name == "scipy cdist":
                fn = lambda: ssd.cdist(x, y)  # noqa: E731
            elif name == "sklearn DistanceMetric":
                fn = functools.partial(DistanceMetric.get_metric("euclidean").pairwise, x, y)
            elif name == "numpy broadcast":
                fn = lambda: np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))  # noqa: E731
            else:
                raise ValueError(name)
            times[name] = median_time(fn, repeats)
        rows.append(
            {
                "operation": "euclidean cdist float32",
                "shapes": f"{n}x{n}x{d}",
                "jaxloss_s": ours,
                "peers": times,
            }
        )

    euclidean_row(
        4096,
        256,
        [
            "torch.cdist",
            "jax matmul x @ y.T (bound)",
            "torch matmul x @ y.T (bound)",
            "sklearn euclidean_distances",
        ],
    )
    euclidean_row(1024, 256, ["torch.cdist", "scipy cdist", "sklearn DistanceMetric", "numpy broadcast"])

    n, d = 4096, 256
    xb = rng.uniform(size=(n, d)) > 0.5
    yb = rng.uniform(size=(n, d)) > 0.5
    hamming = functools.partial(jaxloss.cdist, metric="hamming")
    ours = median_time(_jax(hamming, jnp.asarray(xb), jnp.asarray(yb)), repeats)
    dev = torch_device()
    tx = torch.from_numpy(xb.astype(np.float32)).to(dev)
    ty = torch.from_numpy(yb.astype(np.float32)).to(dev)
    rows.append(
        {
            "operation": "binary hamming cdist (bool)",
            "shapes": f"{n}x{n}x{d} bits",
            "jaxloss_s": ours,
            "peers": {
                "torch.cdist(p=0)": median_time(lambda: (torch.cdist(tx, ty, p=0), torch_sync()), repeats),
                "scipy cdist hamming": median_time(lambda: ssd.cdist(xb, yb, "hamming"), repeats),
            },
        }
    )
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    print(f"{'operation':<30} {'shapes':<18} {'jaxloss':>9}  {'peer':<30} {'peer':>9} {'peer/jaxloss':>12}")
    for row in rows:
        for i, (peer, seconds) in enumerate(row["peers"].items()):
            head = (
                (row["operation"], row["shapes"], f"{row['jaxloss_s'] * 1e3:.1f} ms")
                if i == 0
                else ("", "", "")
            )
            print(
                f"{head[0]:<30} {head[1]:<18} {head[2]:>9}  {peer:<30} {seconds * 1e3:>7.1f}ms "
                f"{seconds / row['jaxloss_s']:>11.2f}x"
            )
    print(f"devices: {jax.devices()}")


if __name__ == "__main__":
    main()
