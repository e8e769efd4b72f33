"""Exact kNN and packed-Hamming search: jaxloss.knn against faiss and chunked torch.cdist + topk.

Run: ``python -m benchmarks.bench_search [--quick]``. Full sizes: float search
(euclidean, cosine, inner product), 4,096 queries x 100,000 x 128 float32,
k = 10, with XLA's bare matrix product ``q @ x.T`` of the same shapes beside
it (the GEMM work of any GEMM-based float search; it also writes the whole
score matrix, which the blocked search never holds, so the search can take
less time than it); the euclidean search with a ``database_mask`` keeping 10%
of the rows, beside the same search unmasked and faiss ``IndexFlatL2`` with an
``IDSelectorBitmap``; packed Hamming, 16,384 x 100,000 codes of
256 bits, k = 10, unmasked and with a ``database_mask`` keeping 10% of the rows
(beside the same search unmasked and faiss ``IndexBinaryFlat`` with an
``IDSelectorBitmap``). ``--quick``: 1,024 queries x 20,000 rows.

Each side runs in its own process (``benchmarks._timing.isolated``): XLA's CPU
thread pool has one thread per schedulable core; faiss runs with its default
OpenMP threads and its bundled OpenBLAS, with ``OPENBLAS_CORETYPE`` /
``OPENBLAS_L2_SIZE`` unset, and each process's BLAS (library, version, core
type, threads) is printed beside its time. When faiss's bundled OpenBLAS does
not recognise the CPU and falls back to generic kernels (faiss-cpu 1.15's
OpenBLAS 0.3.15 reports ``Prescott`` on a Sapphire Rapids-class Xeon), faiss is
timed a second time with ``OPENBLAS_CORETYPE`` set to the core type NumPy's
current OpenBLAS detects, and both rows are printed. Ratios are jaxloss time / peer
time (lower is better). The agreement of the answers (indices, or Hamming
distances, which have many ties) is checked on the results of the timed runs.
"""

from __future__ import annotations

import argparse
import importlib.util

import numpy as np

from benchmarks._env import detected_openblas_core, fallback_core_override
from benchmarks._timing import isolated

MODULE = "bench_search"


def _float_data(nq, m, d, seed):
    r = np.random.default_rng(seed)
    return r.normal(size=(nq, d)).astype(np.float32), r.normal(size=(m, d)).astype(np.float32)


def _bit_data(nq, m, bits, seed):
    r = np.random.default_rng(seed)
    return r.integers(0, 2, (nq, bits)).astype(bool), r.integers(0, 2, (m, bits)).astype(bool)


# --- factories: each builds its inputs and returns a blocking callable (run in its own process)


def _row_mask(m, keep, seed):
    """A database mask keeping about ``keep`` of the ``m`` rows."""
    return np.random.default_rng(seed + 1).random(m) < keep


def jaxloss_knn(nq, m, d, k, metric, seed, keep=None):
    import jax  # noqa: PLC0415

    import jaxloss  # noqa: PLC0415

    q, x = (jax.device_put(a) for a in _float_data(nq, m, d, seed))
    mask = None if keep is None else jax.device_put(_row_mask(m, keep, seed))
    return lambda: jax.block_until_ready(jaxloss.knn(q, x, k, metric=metric, database_mask=mask))


def jax_gemm(nq, m, d, seed):
    """XLA's bare ``q @ x.T`` of the search's shapes (float32, default precision)."""
    import jax  # noqa: PLC0415

    q, x = (jax.device_put(a) for a in _float_data(nq, m, d, seed))
    gemm = jax.jit(lambda a, b: a @ b.T)
    return lambda: jax.block_until_ready(gemm(q, x)).shape


def faiss_flat(nq, m, d, k, metric, seed, keep=None):
    import faiss  # noqa: PLC0415

    q, x = _float_data(nq, m, d, seed)
    if metric == "euclidean":
        index = faiss.IndexFlatL2(d)
        index.add(x)
        if keep is not None:
            params, alive = _faiss_row_selector(m, keep, seed)
            return lambda: (_faiss_l2(index.search(q, k, params=params)), alive)[0]
        return lambda: _faiss_l2(index.search(q, k))
    index = faiss.IndexFlatIP(d)
    if metric == "cosine":
        faiss.normalize_L2(x)  # the database is normalised once, when it is added
    index.add(x)

    def search():
        qf = q.copy()
        if metric == "cosine":
            faiss.normalize_L2(qf)
        return index.search(qf, k)

    return search


def _faiss_row_selector(m, keep, seed):
    """faiss search parameters with an ``IDSelectorBitmap`` over the rows of the jaxloss mask
    (``_row_mask``), and what must stay alive while they are used (the selector points into the
    bitmap)."""
    import faiss  # noqa: PLC0415

    bitmap = np.packbits(_row_mask(m, keep, seed), bitorder="little")
    selector = faiss.IDSelectorBitmap(m, faiss.swig_ptr(bitmap))
    return faiss.SearchParameters(sel=selector), (bitmap, selector)


def _faiss_l2(result):
    distances, indices = result
    return np.sqrt(np.maximum(distances, 0)), indices  # faiss returns squared distances


def torch_chunked(nq, m, d, k, seed, chunk=1024):
    """Chunked ``torch.cdist`` + ``topk`` (on the GPU when PyTorch sees one)."""
    import torch  # noqa: PLC0415

    q, x = _float_data(nq, m, d, seed)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    qt, xt = torch.from_numpy(q).to(dev), torch.from_numpy(x).to(dev)

    def search():
        values, indices = [], []
        for s in range(0, nq, chunk):
            v, i = torch.topk(torch.cdist(qt[s : s + chunk], xt), k, dim=1, largest=False)
            values.append(v)
            indices.append(i)
        if dev == "cuda":
            torch.cuda.synchronize()
        return torch.cat(values).cpu().numpy(), torch.cat(indices).cpu().numpy()

    return search


def jaxloss_hamming(nq, m, bits, k, seed, keep=None):
    import jax  # noqa: PLC0415

    import jaxloss  # noqa: PLC0415

    qb, xb = _bit_data(nq, m, bits, seed)
    qw, xw = jaxloss.pack_bits(qb), jaxloss.pack_bits(xb)  # uint32 words, little-endian bit order
    mask = None if keep is None else jax.device_put(_row_mask(m, keep, seed))
    return lambda: jax.block_until_ready(jaxloss.knn(qw, xw, k, metric="hamming", database_mask=mask))


def faiss_binary(nq, m, bits, k, seed, keep=None):
    import faiss  # noqa: PLC0415

    qb, xb = _bit_data(nq, m, bits, seed)
    index = faiss.IndexBinaryFlat(bits)
    index.add(np.packbits(xb, axis=1, bitorder="little"))
    q8 = np.packbits(qb, axis=1, bitorder="little")
    if keep is None:
        return lambda: index.search(q8, k)
    params, alive = _faiss_row_selector(m, keep, seed)
    return lambda: (index.search(q8, k, params=params), alive)[0]


# --- rows


def _same(a, b) -> float:
    return float(np.mean(np.asarray(a) == np.asarray(b)))


def _close(a, b) -> float:
    return float(np.mean(np.isclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)))


def _has_faiss() -> bool:
    """faiss may be absent (e.g. on a GPU host without faiss-cpu): the other peers are still timed."""
    return importlib.util.find_spec("faiss") is not None


FAISS_NAMES = {
    "euclidean": "faiss IndexFlatL2",
    "cosine": "faiss IndexFlatIP (normalised)",
    "dot": "faiss IndexFlatIP",
}
TORCH_NAME = "torch cdist+topk (1024-query chunks)"


def bench_float(nq, m, d, k, metric, repeats, seed=0):
    common = {"nq": nq, "m": m, "d": d, "k": k, "seed": seed}
    ours = isolated(
        MODULE, "jaxloss_knn", peer=False, repeats=repeats, return_result=True, metric=metric, **common
    )
    d_ours, i_ours = ours.pop("result")
    peers, agreement = {}, []
    if _has_faiss():
        name = FAISS_NAMES[metric]
        timing = isolated(
            MODULE, "faiss_flat", peer=True, repeats=repeats, return_result=True, metric=metric, **common
        )
        d_f, i_f = timing.pop("result")
        peers[name] = timing
        agreement.append(f"indices equal to {name}'s: {_same(i_ours, i_f):.4%}")
        if metric == "euclidean":
            agreement.append(f"distances within 1e-4: {_close(d_ours, d_f):.4%}")
        override = fallback_core_override(timing["env"], detected_openblas_core())
        if override:  # faiss's bundled OpenBLAS fell back to generic kernels: time it on this CPU's core too
            peers[f"{name}, OPENBLAS_CORETYPE={override['OPENBLAS_CORETYPE']}"] = isolated(
                MODULE,
                "faiss_flat",
                peer=True,
                environment=override,
                repeats=repeats,
                metric=metric,
                **common,
            )
    else:
        agreement.append("faiss not installed")
    if metric == "euclidean":
        shapes = {key: common[key] for key in ("nq", "m", "d", "seed")}
        peers["jax q @ x.T, whole score matrix held"] = isolated(
            MODULE, "jax_gemm", peer=False, repeats=repeats, **shapes
        )
        timing = isolated(MODULE, "torch_chunked", peer=True, repeats=repeats, return_result=True, **common)
        d_t, i_t = timing.pop("result")
        peers[TORCH_NAME] = timing
        agreement.append(
            f"indices equal to torch's: {_same(i_ours, i_t):.4%} (distances within 1e-4: {_close(d_ours, d_t):.4%})"
        )
    return {
        "operation": f"knn {metric} k={k}",
        "shapes": f"{nq}x{d} vs {m}x{d} float32",
        "jaxloss": ours,
        "peers": peers,
        "note": "; ".join(agreement),
    }


def bench_masked(nq, m, d, k, keep, repeats, seed=3):
    """Euclidean knn with a database mask keeping ``keep`` of the rows: against the same search
    unmasked (the mask should cost nothing) and faiss with an ``IDSelectorBitmap``."""
    common = {"nq": nq, "m": m, "d": d, "k": k, "metric": "euclidean", "seed": seed}
    ours = isolated(
        MODULE, "jaxloss_knn", peer=False, repeats=repeats, return_result=True, keep=keep, **common
    )
    i_ours = ours.pop("result")[1]
    peers = {
        "jaxloss knn without the mask": isolated(MODULE, "jaxloss_knn", peer=False, repeats=repeats, **common)
    }
    note = "faiss not installed"
    if _has_faiss():
        name = "faiss IndexFlatL2 + IDSelectorBitmap"
        timing = isolated(
            MODULE, "faiss_flat", peer=True, repeats=repeats, return_result=True, keep=keep, **common
        )
        note = f"indices equal to {name}'s: {_same(i_ours, timing.pop('result')[1]):.4%}"
        peers[name] = timing
    return {
        "operation": f"knn euclidean k={k}, database_mask keeping {keep:.0%}",
        "shapes": f"{nq}x{d} vs {m}x{d} float32",
        "jaxloss": ours,
        "peers": peers,
        "note": note,
    }


def bench_hamming(nq, m, bits, k, repeats, seed=1, keep=None):
    """Packed Hamming against faiss ``IndexBinaryFlat``; with ``keep``, a database mask keeping that
    share of the rows (faiss with an ``IDSelectorBitmap`` over the same rows) and the same search
    unmasked beside it."""
    common = {"nq": nq, "m": m, "bits": bits, "k": k, "seed": seed}
    ours = isolated(
        MODULE, "jaxloss_hamming", peer=False, repeats=repeats, return_result=True, keep=keep, **common
    )
    d_ours = ours.pop("result")[0]
    peers, note = {}, "faiss not installed"
    if keep is not None:
        peers["jaxloss knn without the mask"] = isolated(
            MODULE, "jaxloss_hamming", peer=False, repeats=repeats, **common
        )
    if _has_faiss():
        theirs = isolated(
            MODULE, "faiss_binary", peer=True, repeats=repeats, return_result=True, keep=keep, **common
        )
        # random codes have many tied counts: compare the distances (faiss does not
        # promise the lowest index first among ties; jaxloss does)
        note = f"distances equal to faiss's: {_same(d_ours, theirs.pop('result')[0]):.4%}"
        peers["faiss IndexBinaryFlat" + ("" if keep is None else " + IDSelectorBitmap")] = theirs
    return {
        "operation": f"knn packed hamming k={k}"
        + ("" if keep is None else f", database_mask keeping {keep:.0%}"),
        "shapes": f"{nq} vs {m} codes of {bits} bits",
        "jaxloss": ours,
        "peers": peers,
        "note": note,
    }


def run(quick: bool) -> list[dict]:
    nq, m, nq_bits, repeats = (1024, 20_000, 2048, 2) if quick else (4096, 100_000, 16_384, 3)
    return [
        bench_float(nq, m, 128, 10, "euclidean", repeats),
        bench_float(nq, m, 128, 10, "cosine", repeats, seed=2),
        bench_float(nq, m, 128, 10, "dot", repeats, seed=2),
        bench_masked(nq, m, 128, 10, 0.1, repeats),
        bench_hamming(nq_bits, m, 256, 10, repeats),
        bench_hamming(nq_bits, m, 256, 10, repeats, keep=0.1),
    ]


def check_ties():
    """True when this backend returns tied neighbours lowest index first."""
    import jax.numpy as jnp  # noqa: PLC0415

    import jaxloss  # noqa: PLC0415

    x = jnp.ones((5000, 4))
    _, i = jaxloss.knn(x[:3], x, 50, block_size=777)
    return bool(np.all(np.asarray(i) == np.arange(50)))


def main():
    from benchmarks.__main__ import RATIO, format_table  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    print(f"ties lowest index first on this backend: {check_ties()}")
    rows = run(args.quick)
    print(f"ratio = {RATIO}\n{format_table(rows)}")
    for row in rows:
        print(f"- {row['operation']}: {row['note']}")


if __name__ == "__main__":
    main()
