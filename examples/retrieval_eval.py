"""Jit-compiled retrieval evaluation against a synthetic million-item database.

A "retrieval model" here is a fixed random projection of noisy copies of class
prototypes: the database holds ``--database`` items (1,000,000 by default) of
``--dim`` float32 features in ``--classes`` classes, and the queries are fresh
noisy samples. ``jaxloss.knn`` searches the whole database exactly, in blocks,
so memory stays bounded (the full query x database distance matrix would need
``queries x database x 4`` bytes); the queries are processed in chunks with a
progress bar, and precision@1, precision@k and recall@k (at least one of the k
neighbours in the query's class) are computed per query from the neighbours'
labels and averaged over the queries whose class is in the database
(pytorch-metric-learning's convention; ``jaxloss.relevant_counts``). The
ranking metrics (mean reciprocal rank, mean average precision and nDCG of each
query's ranked list, as torchmetrics' ``retrieval_*`` functions compute them)
score the k returned items by negative distance, relevant when they share the
query's class. Last, a filtered search: only a random tenth of the database
may be returned (``database_mask``, e.g. one tenant's rows or the items in
stock), and each query excludes the items it has already been shown
(``exclude``, here its first five unfiltered neighbours).

    python examples/retrieval_eval.py                       # 1M x 64 database
    python examples/retrieval_eval.py --database 200000 --queries 1000
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss


def make_data(n_database, n_queries, dim, classes, noise, seed):
    key = jax.random.key(seed)
    k_proto, k_db, k_dblab, k_q, k_qlab = jax.random.split(key, 5)
    prototypes = jax.random.normal(k_proto, (classes, dim), jnp.float32)
    db_labels = jax.random.randint(k_dblab, (n_database,), 0, classes)
    database = prototypes[db_labels] + noise * jax.random.normal(k_db, (n_database, dim), jnp.float32)
    q_labels = jax.random.randint(k_qlab, (n_queries,), 0, classes)
    queries = prototypes[q_labels] + noise * jax.random.normal(k_q, (n_queries, dim), jnp.float32)
    return database, db_labels, queries, q_labels


def main(argv=None):
    from tqdm.auto import tqdm

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--classes", type=int, default=1_000)
    parser.add_argument("--noise", type=float, default=1.2)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--chunk", type=int, default=500, help="queries per jit call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    database, db_labels, queries, q_labels = make_data(
        args.database, args.queries, args.dim, args.classes, args.noise, args.seed
    )
    print(
        f"database {database.shape} float32 ({database.nbytes / 2**20:.0f} MiB), queries {queries.shape}; "
        f"a full distance matrix would take {args.queries * args.database * 4 / 2**30:.1f} GiB"
    )

    @jax.jit
    def search(q):
        return jaxloss.knn(q, database, args.k, metric="euclidean")

    all_dist, all_idx = [], []
    start = time.perf_counter()
    for s in tqdm(range(0, args.queries, args.chunk), desc="searching", disable=args.no_progress):
        dist, idx = search(queries[s : s + args.chunk])
        all_dist.append(np.asarray(dist))
        all_idx.append(np.asarray(idx))
    seconds = time.perf_counter() - start
    idx = jnp.asarray(np.concatenate(all_idx))
    # one value per query; the mean runs over the queries with a relevant database item
    has_relevant = jaxloss.relevant_counts(q_labels, db_labels) > 0
    p_at_1 = float(jaxloss.reduce(jaxloss.precision_at_k(idx, q_labels, db_labels, 1), where=has_relevant))
    p_at_k = float(
        jaxloss.reduce(jaxloss.precision_at_k(idx, q_labels, db_labels, args.k), where=has_relevant)
    )
    r_at_k = float(jaxloss.reduce(jaxloss.recall_at_k(idx, q_labels, db_labels, args.k), where=has_relevant))
    print(
        f"exact {args.k}-NN of {args.queries} queries in {seconds:.1f} s "
        f"({args.queries / seconds:.0f} queries/s, compile included)"
    )
    print(f"precision@1 {p_at_1:.3f}   precision@{args.k} {p_at_k:.3f}   recall@{args.k} {r_at_k:.3f}")

    # ranking metrics of each query's k-item list: nearer is a higher score
    scores = -jnp.asarray(np.concatenate(all_dist))
    relevant = db_labels[idx] == q_labels[:, None]
    ranking = {
        "MRR": float(jnp.mean(jaxloss.reciprocal_rank(scores, relevant))),
        "MAP": float(jnp.mean(jaxloss.average_precision(scores, relevant))),
        f"nDCG@{args.k}": float(jnp.mean(jaxloss.normalized_dcg(scores, relevant))),
        "hit rate@1": float(jnp.mean(jaxloss.hit_rate(scores, relevant, k=1))),
    }
    print("   ".join(f"{name} {value:.3f}" for name, value in ranking.items()))

    filtered = filtered_search(database, db_labels, queries, q_labels, idx[:, :5], args)
    return {"precision@1": p_at_1, f"precision@{args.k}": p_at_k, "seconds": seconds, **ranking, **filtered}


def filtered_search(database, db_labels, queries, q_labels, seen, args):
    """k-NN restricted to allowed rows, without the rows each query has already seen."""
    allowed = jax.random.uniform(jax.random.key(args.seed + 1), (database.shape[0],)) < 0.1

    @jax.jit
    def search(q, seen):
        return jaxloss.knn(q, database, args.k, database_mask=allowed, exclude=seen)

    idx = jnp.concatenate(
        [
            search(queries[s : s + args.chunk], seen[s : s + args.chunk])[1]
            for s in range(0, len(queries), args.chunk)
        ]
    )
    found = idx >= 0  # fewer than k allowed rows would leave -1 at the tail
    result = {
        "filtered: only allowed rows": bool(jnp.all(jnp.where(found, allowed[jnp.maximum(idx, 0)], True))),
        "filtered: none already seen": not bool(
            jnp.any(found[:, :, None] & (idx[:, :, None] == seen[:, None, :]))
        ),
        "filtered: precision@1": float(
            jaxloss.reduce(
                jaxloss.precision_at_k(idx, q_labels, db_labels, 1),
                where=jaxloss.relevant_counts(q_labels, db_labels) > 0,
            )
        ),
    }
    print(
        f"filtered search ({int(allowed.sum())} allowed rows, 5 seen items excluded per query): "
        f"precision@1 {result['filtered: precision@1']:.3f}, only allowed rows: "
        f"{result['filtered: only allowed rows']}, none already seen: {result['filtered: none already seen']}"
    )
    return result


if __name__ == "__main__":
    main()
