"""Exact kNN and packed-Hamming search: jaxloss.knn against faiss and chunked torch.cdist + topk.

Run: ``python -m benchmarks.bench_search [--quick]`` (full size: 16,384 queries x
100,000 x 128 float32, k = 10; Hamming: 16,384 x 100,000 x 256 bits, k = 10).
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from benchmarks._timing import median_time


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
    return faiss


def check_ties():
    """True when this backend returns tied neighbours lowest index first (lax.top_k stable)."""
    x = jnp.ones((5000, 4))
    _, i = jaxloss.knn(x[:3], x, 50, block_size=777)
    return bool(np.all(np.asarray(i) == np.arange(50)))


def bench_l2(nq, m, d, k, repeats):
    faiss = _faiss()
    r = np.random.default_rng(0)
    q = r.normal(size=(nq, d)).astype(np.float32)
    x = r.normal(size=(m, d)).astype(np.float32)
    qj, xj = jax.device_put(q), jax.device_put(x)

    def ours():
        return jax.block_until_ready(jaxloss.knn(qj, xj, k))

    t_ours = median_time(ours, repeats)
    _, i_ours = ours()
    peers, agreement = {}, {}
    if faiss is not None:
        index = faiss.IndexFlatL2(d)
        index.add(x)
        peers["faiss IndexFlatL2"] = median_time(lambda: index.search(q, k), repeats)
        agreement["faiss"] = _agreement(i_ours, index.search(q, k)[1])
    peers["torch cdist+topk (1024-query chunks)"] = median_time(lambda: _torch_chunked(q, x, k), repeats)
    agreement["torch"] = _agreement(i_ours, _torch_chunked(q, x, k))
    return {
        "operation": f"knn euclidean k={k}",
        "shapes": f"{nq}x{d} vs {m}x{d} float32",
        "jaxloss_s": t_ours,
        "peers": peers,
        "agreement": agreement,
    }


def bench_hamming(nq, m, bits, k, repeats):
    faiss = _faiss()
    r = np.random.default_rng(1)
    qb = r.integers(0, 2, (nq, bits)).astype(bool)
    xb = r.integers(0, 2, (m, bits)).astype(bool)
    qw, xw = jaxloss.pack_bits(qb), jaxloss.pack_bits(xb)  # uint32 words, little-endian bit order

    def ours():
        return jax.block_until_ready(jaxloss.knn(qw, xw, k, metric="hamming"))

    t_ours = median_time(ours, repeats)
    peers, agreement = {}, {}
    if faiss is not None:
        index = faiss.IndexBinaryFlat(bits)
        index.add(np.packbits(xb, axis=1, bitorder="little"))
        q8 = np.packbits(qb, axis=1, bitorder="little")
        peers["faiss IndexBinaryFlat"] = median_time(lambda: index.search(q8, k), repeats)
        # random codes have many tied counts, so compare the distances (the indices of
        # ties may legitimately differ: faiss does not promise the lowest index first)
        d_ours, _ = ours()
        agreement["faiss distances"] = float(np.mean(np.asarray(d_ours) == index.search(q8, k)[0]))
    return {
        "operation": f"knn packed hamming k={k}",
        "shapes": f"{nq} vs {m} codes of {bits} bits",
        "jaxloss_s": t_ours,
        "peers": peers,
        "agreement": agreement,
    }


def run(quick: bool) -> list[dict]:
    if quick:
        return [bench_l2(2048, 20_000, 128, 10, 3), bench_hamming(2048, 20_000, 256, 10, 3)]
    return [bench_l2(16_384, 100_000, 128, 10, 3), bench_hamming(16_384, 100_000, 256, 10, 3)]


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


if __name__ == "__main__":
    main()
