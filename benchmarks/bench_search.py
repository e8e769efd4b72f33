"""Exact kNN and packed-Hamming search: jaxloss.knn against faiss and chunked torch.cdist + topk.

Run: ``python -m benchmarks.bench_search [--quick]``. Full sizes: float L2,
16,384 queries x 100,000 x 128 float32, k = 10; packed Hamming, 16,384 x
100,000 codes of 256 bits, k = 10; cosine and inner product, 4,096 x 100,000
x 128, k = 10.

jaxloss and faiss are timed **interleaved** (one run of each in turn, after a
warm-up of each), and the medians of the rounds are reported, so both see the
same machine load. Both use every core: XLA's CPU thread pool has one thread
per core, and faiss's OpenMP thread count is set to the same number
(``os.cpu_count()``).
"""

from __future__ import annotations

import argparse
import os

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from benchmarks._timing import interleaved_medians, median_time

ROUNDS = 3  # interleaved timed rounds (medians reported)


def _agreement(a, b):
    """Fraction of (query, rank) entries with the same neighbour index."""
    return float(np.mean(np.asarray(a) == np.asarray(b)))


def _torch_chunked(q, x, k, chunk=1024):
    """Chunked ``torch.cdist`` + ``topk`` (on the GPU when PyTorch sees one)."""
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    qt, xt = torch.from_numpy(q).to(dev), torch.from_numpy(x).to(dev)
    out = []
    for s in range(0, qt.shape[0], chunk):
        d = torch.cdist(qt[s : s + chunk], xt)
        out.append(torch.topk(d, k, dim=1, largest=False).indices)
    if dev == "cuda":
        torch.cuda.synchronize()
    return torch.cat(out).cpu().numpy()


def _faiss():
    try:
        import faiss
    except ImportError:  # e.g. a GPU host without faiss: report the other peers
        return None
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return faiss


def _threads_note(faiss) -> str:
    n = os.cpu_count()
    peer = f"faiss OpenMP threads {faiss.omp_get_max_threads()}" if faiss is not None else "faiss absent"
    return f"interleaved medians of {ROUNDS} rounds; XLA CPU threads {n} (one per core), {peer}"


def check_ties():
    """True when this backend returns tied neighbours lowest index first."""
    x = jnp.ones((5000, 4))
    _, i = jaxloss.knn(x[:3], x, 50, block_size=777)
    return bool(np.all(np.asarray(i) == np.arange(50)))


def bench_l2(nq, m, d, k):
    faiss = _faiss()
    r = np.random.default_rng(0)
    q = r.normal(size=(nq, d)).astype(np.float32)
    x = r.normal(size=(m, d)).astype(np.float32)
    qj, xj = jax.device_put(q), jax.device_put(x)

    def ours():
        return jax.block_until_ready(jaxloss.knn(qj, xj, k))

    fns = {"jaxloss": ours}
    if faiss is not None:
        index = faiss.IndexFlatL2(d)
        index.add(x)
        fns["faiss IndexFlatL2"] = lambda: index.search(q, k)
    times = interleaved_medians(fns, ROUNDS)
    d_ours, i_ours = ours()
    peers = {name: t for name, t in times.items() if name != "jaxloss"}
    agreement = {}
    if faiss is not None:
        fd, fi = index.search(q, k)
        agreement["faiss"] = _agreement(i_ours, fi)
        agreement["faiss squared distances, max relative difference"] = float(
            np.max(np.abs(np.asarray(d_ours) ** 2 - fd) / np.maximum(fd, 1e-30))
        )
    peers["torch cdist+topk (1024-query chunks)"] = median_time(lambda: _torch_chunked(q, x, k), ROUNDS)
    agreement["torch"] = _agreement(i_ours, _torch_chunked(q, x, k))
    return {
        "operation": f"knn euclidean k={k}",
        "shapes": f"{nq}x{d} vs {m}x{d} float32",
        "jaxloss_s": times["jaxloss"],
        "peers": peers,
        "agreement": agreement,
        "note": _threads_note(faiss),
    }


def bench_inner_product(nq, m, d, k, metric):
    """Cosine or inner-product search against faiss ``IndexFlatIP`` (normalised rows for cosine)."""
    faiss = _faiss()
    r = np.random.default_rng(2)
    q = r.normal(size=(nq, d)).astype(np.float32)
    x = r.normal(size=(m, d)).astype(np.float32)
    qj, xj = jax.device_put(q), jax.device_put(x)

    def ours():
        return jax.block_until_ready(jaxloss.knn(qj, xj, k, metric=metric))

    fns = {"jaxloss": ours}
    if faiss is not None:
        index = faiss.IndexFlatIP(d)
        xf = x.copy()
        if metric == "cosine":
            faiss.normalize_L2(xf)  # the database is normalised once, when it is added

        def peer():
            qf = q.copy()
            if metric == "cosine":
                faiss.normalize_L2(qf)
            return index.search(qf, k)

        index.add(xf)
        fns["faiss IndexFlatIP" + (" (normalised)" if metric == "cosine" else "")] = peer
    times = interleaved_medians(fns, ROUNDS)
    agreement = {}
    if faiss is not None:
        _, i_ours = ours()
        agreement["faiss"] = _agreement(i_ours, peer()[1])
    return {
        "operation": f"knn {metric} k={k}",
        "shapes": f"{nq}x{d} vs {m}x{d} float32",
        "jaxloss_s": times["jaxloss"],
        "peers": {name: t for name, t in times.items() if name != "jaxloss"},
        "agreement": agreement,
        "note": _threads_note(faiss),
    }


def bench_hamming(nq, m, bits, k):
    faiss = _faiss()
    r = np.random.default_rng(1)
    qb = r.integers(0, 2, (nq, bits)).astype(bool)
    xb = r.integers(0, 2, (m, bits)).astype(bool)
    qw, xw = jaxloss.pack_bits(qb), jaxloss.pack_bits(xb)  # uint32 words, little-endian bit order

    def ours():
        return jax.block_until_ready(jaxloss.knn(qw, xw, k, metric="hamming"))

    fns = {"jaxloss": ours}
    if faiss is not None:
        index = faiss.IndexBinaryFlat(bits)
        index.add(np.packbits(xb, axis=1, bitorder="little"))
        q8 = np.packbits(qb, axis=1, bitorder="little")
        fns["faiss IndexBinaryFlat"] = lambda: index.search(q8, k)
    times = interleaved_medians(fns, ROUNDS)
    agreement = {}
    if faiss is not None:
        # random codes have many tied counts: compare the distances (faiss does not
        # promise the lowest index first among ties; jaxloss does)
        d_ours, _ = ours()
        agreement["faiss distances"] = float(np.mean(np.asarray(d_ours) == index.search(q8, k)[0]))
    return {
        "operation": f"knn packed hamming k={k}",
        "shapes": f"{nq} vs {m} codes of {bits} bits",
        "jaxloss_s": times["jaxloss"],
        "peers": {name: t for name, t in times.items() if name != "jaxloss"},
        "agreement": agreement,
        "note": _threads_note(faiss),
    }


def run(quick: bool) -> list[dict]:
    if quick:
        return [
            bench_l2(2048, 20_000, 128, 10),
            bench_inner_product(2048, 20_000, 128, 10, "cosine"),
            bench_inner_product(2048, 20_000, 128, 10, "dot"),
            bench_hamming(2048, 20_000, 256, 10),
        ]
    return [
        bench_l2(16_384, 100_000, 128, 10),
        bench_inner_product(4096, 100_000, 128, 10, "cosine"),
        bench_inner_product(4096, 100_000, 128, 10, "dot"),
        bench_hamming(16_384, 100_000, 256, 10),
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    print(f"backend: {jax.default_backend()}, devices: {jax.devices()}")
    print(f"ties lowest index first on this backend: {check_ties()}")
    for row in run(args.quick):
        print(f"\n{row['operation']}  [{row['shapes']}]  jaxloss {row['jaxloss_s']:.3f} s")
        for name, t in row["peers"].items():
            print(f"  {name:40s} {t:8.3f} s   ratio peer/jaxloss = {t / row['jaxloss_s']:.2f}")
        for name, a in row.get("agreement", {}).items():
            print(f"  agreement with {name}: {a:.4%}")
        print(f"  ({row['note']})")


if __name__ == "__main__":
    main()
