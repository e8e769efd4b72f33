"""All-pairs distances: jaxloss.cdist against torch.cdist, scipy, scikit-learn and a NumPy broadcast.

Run ``python -m benchmarks.bench_distances [--quick]``. Each side is set up,
warmed up and timed in its own process (median, min-max; ``block_until_ready``
for JAX); a side whose first call takes more than 5 s is timed twice. Ratios
are jaxloss time / peer time (lower is better).

Rows (``--quick``: 1,024 and 256 rows instead of 4,096 and 1,024):

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

import numpy as np

from benchmarks._timing import isolated

MODULE = "bench_distances"


def _data(n, d, binary, seed=0):
    rng = np.random.default_rng(seed)
    if binary:
        return rng.uniform(size=(n, d)) > 0.5, rng.uniform(size=(n, d)) > 0.5
    return rng.normal(size=(n, d)).astype(np.float32), rng.normal(size=(n, d)).astype(np.float32)


# --- factories: each builds its inputs and returns a blocking callable (run in its own process)


def jaxloss_cdist(n, d, metric):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    import jaxloss  # noqa: PLC0415

    x, y = (jnp.asarray(a) for a in _data(n, d, metric == "hamming"))
    fn = jax.jit(lambda a, b: jaxloss.cdist(a, b, metric=metric))
    return lambda: jax.block_until_ready(fn(x, y))


def jax_matmul(n, d):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    x, y = (jnp.asarray(a) for a in _data(n, d, False))
    fn = jax.jit(lambda a, b: jnp.dot(a, b.T, precision=jax.lax.Precision.HIGHEST))
    return lambda: jax.block_until_ready(fn(x, y))


def torch_op(n, d, op):
    import torch  # noqa: PLC0415

    from benchmarks._timing import torch_device, torch_sync  # noqa: PLC0415

    x, y = _data(n, d, op == "cdist_p0")
    dev = torch_device()
    tx, ty = (torch.from_numpy(a.astype(np.float32)).to(dev) for a in (x, y))
    fn = {
        "cdist": lambda: torch.cdist(tx, ty),
        "cdist_p0": lambda: torch.cdist(tx, ty, p=0),
        "matmul": lambda: tx @ ty.T,
    }[op]
    return lambda: (fn(), torch_sync())


def numpy_peer(n, d, op):
    x, y = _data(n, d, op == "scipy_hamming")
    if op == "sklearn_euclidean_distances":
        from sklearn.metrics.pairwise import euclidean_distances  # noqa: PLC0415

        return lambda: euclidean_distances(x, y)
    if op == "sklearn_distance_metric":
        from sklearn.metrics import DistanceMetric  # noqa: PLC0415

        metric = DistanceMetric.get_metric("euclidean")
        return lambda: metric.pairwise(x, y)
    if op in ("scipy_euclidean", "scipy_hamming"):
        import scipy.spatial.distance as ssd  # noqa: PLC0415

        name = "hamming" if op == "scipy_hamming" else "euclidean"
        return lambda: ssd.cdist(x, y, name)
    if op == "numpy_broadcast":
        return lambda: np.sqrt(((x[:, None, :] - y[None, :, :]) ** 2).sum(-1))
    raise ValueError(op)


PEERS = {
    "torch.cdist": ("torch_op", {"op": "cdist"}),
    "torch.cdist(p=0)": ("torch_op", {"op": "cdist_p0"}),
    "torch matmul x @ y.T (bound)": ("torch_op", {"op": "matmul"}),
    "jax matmul x @ y.T (bound)": ("jax_matmul", {}),
    "sklearn euclidean_distances": ("numpy_peer", {"op": "sklearn_euclidean_distances"}),
    "sklearn DistanceMetric": ("numpy_peer", {"op": "sklearn_distance_metric"}),
    "scipy cdist": ("numpy_peer", {"op": "scipy_euclidean"}),
    "scipy cdist hamming": ("numpy_peer", {"op": "scipy_hamming"}),
    "numpy broadcast": ("numpy_peer", {"op": "numpy_broadcast"}),
}


def _row(operation, metric, n, d, peers, repeats):
    ours = isolated(MODULE, "jaxloss_cdist", peer=False, repeats=repeats, n=n, d=d, metric=metric)
    times = {}
    for name in peers:
        factory, kwargs = PEERS[name]
        times[name] = isolated(
            MODULE, factory, peer=factory != "jax_matmul", repeats=repeats, n=n, d=d, **kwargs
        )
    unit = "bits" if metric == "hamming" else ""
    return {"operation": operation, "shapes": f"{n}x{n}x{d} {unit}".strip(), "jaxloss": ours, "peers": times}


def run(quick: bool = False) -> list[dict]:
    big, small, repeats = (1024, 256, 3) if quick else (4096, 1024, 10)
    return [
        _row(
            "euclidean cdist float32",
            "euclidean",
            big,
            256,
            [
                "torch.cdist",
                "jax matmul x @ y.T (bound)",
                "torch matmul x @ y.T (bound)",
                "sklearn euclidean_distances",
            ],
            repeats,
        ),
        _row(
            "euclidean cdist float32",
            "euclidean",
            small,
            256,
            ["torch.cdist", "scipy cdist", "sklearn DistanceMetric", "numpy broadcast"],
            repeats,
        ),
        _row(
            "binary hamming cdist (bool)",
            "hamming",
            big,
            256,
            ["torch.cdist(p=0)", "scipy cdist hamming"],
            repeats,
        ),
    ]


def main(argv=None) -> None:
    from benchmarks.__main__ import RATIO, format_table  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    args = parser.parse_args(argv)
    print(f"ratio = {RATIO}\n{format_table(run(args.quick))}")


if __name__ == "__main__":
    main()
