"""Bad input, everywhere: every public function against wrong ranks, mismatched shapes,
wrong dtypes and invalid options.

Each case must raise ``ValueError`` or ``TypeError`` whose message names the
offending argument (in backquotes, as ``_checks`` writes it), eagerly AND under
``jax.jit`` (arrays traced, options static): the error is raised at trace
time, before anything runs. ``test_every_public_function_has_a_bad_input_case``
keeps the table complete.
"""

from __future__ import annotations

import functools
import inspect
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
import jaxloss.torch as jt
import jaxloss.torch.linalg as jtl
from tests.registry import SPECS

# cheap trace-time checks: every case stays in the fast loop (conftest.py)
FAST_LOOP_RUNS_EVERY_CASE = True


def f(*shape, dtype="float32"):
    return jnp.ones(shape, dtype)


def i(*shape):
    return jnp.zeros(shape, jnp.int32)


P = jnp.full((4, 3), 1 / 3, jnp.float32)  # valid distributions
X, Y = f(4, 3), f(4, 3)
# linear post-training heads: 2 pairs x 3 tokens x 2 features, a (2, 5) kernel; 2 completions for GRPO
PX, HK, PY = f(4, 3, 2), f(2, 5), jnp.zeros((4, 3), jnp.int32)
GX, GY, GM = f(2, 3, 2), jnp.zeros((2, 3), jnp.int32), f(2, 3)
L = jnp.array([0, 0, 1, 1], jnp.int32)
L5 = jnp.array([0, 1, 0, 1, 2], jnp.int32)  # reference labels
NB = jnp.zeros((4, 2), jnp.int32)  # neighbour indices
REF = jnp.array([0, 1, 0, 1, 0, 1], jnp.int32)
Q = jaxloss.queue_init(5, 3)  # an embedding queue of 5 rows of 3 features
V = ValueError
T = TypeError


def _mesh():
    return jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])


def _sharded(q, db, **kw):
    return jaxloss.sharded_knn(q, db, mesh=_mesh(), **kw)


def _knn_mask(q, db, mask):
    return jaxloss.knn(q, db, 2, database_mask=mask)


MNRL = jaxloss.multiple_negatives_ranking_loss


def _nested(q, d, **kw):
    return jaxloss.matryoshka_loss(jaxloss.multiple_negatives_ranking_loss, (q, d), **kw)


def _cached(w, inputs, **kw):
    encode = lambda w, x: jnp.tanh((x["a"] if isinstance(x, dict) else x) @ w)  # noqa: E731
    return jaxloss.cached_embeddings(encode, w, inputs, **kw)


def _knn_exclude(q, db, exclude):
    return jaxloss.knn(q, db, 2, exclude=exclude)


def _sharded_mask(q, db, mask):
    return _sharded(q, db, k=2, database_mask=mask)


def _sharded_exclude(q, db, exclude):
    return _sharded(q, db, k=2, exclude=exclude)


def _range_mask(q, db, mask):
    return jaxloss.range_search(q, db, 1.0, max_results=2, database_mask=mask)


def _range_exclude(q, db, exclude):
    return jaxloss.range_search(q, db, 1.0, max_results=2, exclude=exclude)


# (registry name, function, array arguments, static keyword arguments, exception, argument named)
CASES = [
    # norms
    ("vector_norm", jaxloss.vector_norm, (X,), dict(ord="fro"), V, "ord"),
    ("vector_norm", jaxloss.vector_norm, (X,), dict(axis=2), V, "axis"),
    ("vector_norm", jaxloss.vector_norm, (X,), dict(axis=(1, 1)), V, "axis"),
    ("matrix_norm", jaxloss.matrix_norm, (f(3),), {}, V, "x"),
    ("matrix_norm", jaxloss.matrix_norm, (f(3, 3),), dict(ord="bogus"), V, "ord"),
    ("norm", jaxloss.norm, (f(2, 2, 2),), dict(ord=2), V, "ord"),
    ("norm", jaxloss.norm, (X,), dict(ord="nuc", axis=0), V, "ord"),
    ("nuclear_norm", jaxloss.nuclear_norm, (f(3),), {}, V, "x"),
    ("frobenius_norm", jaxloss.frobenius_norm, (f(3),), {}, V, "x"),
    ("spectral_norm", jaxloss.spectral_norm, (f(3),), {}, V, "x"),
    # residual losses
    ("absolute_error", jaxloss.absolute_error, (X, f(4, 2)), {}, V, "targets"),
    ("huber_loss", jaxloss.huber_loss, (X, Y), dict(delta=-1.0), V, "delta"),
    ("huber_loss", jaxloss.huber_loss, (X, f(4, 2)), {}, V, "targets"),
    ("l2_loss", jaxloss.l2_loss, (X, f(4, 2)), {}, V, "targets"),
    ("smooth_l1_loss", jaxloss.smooth_l1_loss, (X, Y), dict(beta=-1.0), V, "beta"),
    ("squared_error", jaxloss.squared_error, (X, f(4, 2)), {}, V, "targets"),
    ("reduce", jaxloss.reduce, (X,), dict(reduction="avg"), V, "reduction"),
    ("reduce", lambda v, w: jaxloss.reduce(v, where=w), (X, f(4, 2) > 0), {}, V, "where"),
    ("reduce", lambda v, w: jaxloss.reduce(v, weights=w), (X, f(4, 2)), {}, V, "weights"),
    # binary codes
    ("pack_bits", jaxloss.pack_bits, (f(4, 8, dtype="complex64"),), {}, T, "bits"),
    ("pack_bits", jaxloss.pack_bits, (jnp.zeros((4, 8), bool),), dict(axis=3), V, "axis"),
    ("unpack_bits", jaxloss.unpack_bits, (f(4, 1),), dict(num_bits=8), T, "words"),
    ("unpack_bits", jaxloss.unpack_bits, (jnp.zeros((4, 1), jnp.uint32),), dict(num_bits=64), V, "num_bits"),
    # distances
    ("cdist", jaxloss.cdist, (X, f(5, 2)), {}, V, "y"),  # equinox style: "cdist(x, y) needs"
    ("cdist", jaxloss.cdist, (X, Y), dict(metric="euclidian"), V, "metric"),
    ("cdist", jaxloss.cdist, (f(3), Y), {}, V, "x"),
    ("cdist", jaxloss.cdist, (X, Y), dict(metric="minkowski", p=-1.0), V, "p"),
    ("pdist", jaxloss.pdist, (f(3),), {}, V, "x"),
    ("pdist", jaxloss.pdist, (X,), dict(metric="bogus"), V, "metric"),
    ("pairwise_distance", jaxloss.pairwise_distance, (X, f(4, 2)), {}, V, "y"),
    ("pairwise_distance", jaxloss.pairwise_distance, (X, Y), dict(metric="bogus"), V, "metric"),
    ("cosine_distance", jaxloss.cosine_distance, (X, f(4, 2)), {}, V, "targets"),
    ("cosine_similarity", jaxloss.cosine_similarity, (X, f(4, 2)), {}, V, "targets"),
    ("squareform", jaxloss.squareform, (f(4),), {}, V, "x"),
    ("squareform", jaxloss.squareform, (f(3),), dict(force="bogus"), V, "force"),
    # search
    ("knn", jaxloss.knn, (X, f(6, 3)), dict(k=7), V, "k"),
    ("knn", jaxloss.knn, (X, f(6, 3)), dict(k=0), V, "k"),
    ("knn", jaxloss.knn, (X, f(6, 2)), dict(k=2), V, "database"),
    ("knn", jaxloss.knn, (X, f(6, 3)), dict(k=2, metric="bogus"), V, "metric"),
    ("knn", _knn_mask, (X, f(6, 3), jnp.ones(5, bool)), {}, V, "database_mask"),
    ("knn", _knn_mask, (X, f(6, 3), jnp.ones(6)), {}, T, "database_mask"),
    ("knn", _knn_exclude, (X, f(6, 3), f(4, 1)), {}, T, "exclude"),
    ("knn", _knn_exclude, (X, f(6, 3), i(3, 1)), {}, V, "exclude"),
    ("knn", _knn_exclude, (X, f(6, 3), i(4)), {}, V, "exclude"),
    ("sharded_knn", _sharded, (X, f(6, 3)), dict(k=7), V, "k"),
    ("sharded_knn", _sharded_mask, (X, f(6, 3), jnp.ones(5, bool)), {}, V, "database_mask"),
    ("sharded_knn", _sharded_exclude, (X, f(6, 3), i(3, 1)), {}, V, "exclude"),
    ("range_search", jaxloss.range_search, (X, f(6, 3)), dict(radius=1.0, max_results=0), V, "max_results"),
    ("range_search", jaxloss.range_search, (X, f(6, 3)), dict(radius=1.0, max_results=2.0), T, "max_results"),
    ("range_search", jaxloss.range_search, (X, f(6, 3)), dict(radius=-1.0, max_results=2), V, "radius"),
    ("range_search", jaxloss.range_search, (X, f(6, 3), f(4, 1)), dict(max_results=2), V, "radius"),
    ("range_search", jaxloss.range_search, (X, f(6, 3), f(3)), dict(max_results=2), V, "radius"),
    ("range_search", jaxloss.range_search, (X, f(6, 2), 1.0), dict(max_results=2), V, "database"),
    (
        "range_search",
        jaxloss.range_search,
        (X, f(6, 3)),
        dict(radius=1.0, max_results=2, metric="bogus"),
        V,
        "metric",
    ),
    ("range_search", _range_mask, (X, f(6, 3), jnp.ones(6)), {}, T, "database_mask"),
    ("range_search", _range_exclude, (X, f(6, 3), i(3, 1)), {}, V, "exclude"),
    ("sharded_knn", _sharded, (X, f(6, 2)), dict(k=2), V, "database"),
    ("precision_at_k", jaxloss.precision_at_k, (NB, L, REF), dict(k=3), V, "k"),
    ("precision_at_k", jaxloss.precision_at_k, (NB.astype(float), L, REF), {}, T, "neighbor_indices"),
    ("precision_at_k", jaxloss.precision_at_k, (NB, L[:3], REF), {}, V, "neighbor_indices"),
    ("precision_at_k", jaxloss.precision_at_k, (NB, L, REF), dict(reduction="avg"), V, "reduction"),
    ("recall_at_k", jaxloss.recall_at_k, (NB, L, REF), dict(k=0), V, "k"),
    ("relevant_counts", jaxloss.relevant_counts, (L, REF.astype(float)), {}, T, "reference_labels"),
    ("relevant_counts", jaxloss.relevant_counts, (L[:, None], REF), {}, V, "query_labels"),
    ("recall_at_k", jaxloss.recall_at_k, (NB, L.astype(float), REF), {}, T, "query_labels"),
    ("r_precision", jaxloss.r_precision, (NB, L, REF.astype(float)), {}, T, "reference_labels"),
    ("r_precision", jaxloss.r_precision, (NB[0], L, REF), {}, V, "neighbor_indices"),
    (
        "mean_average_precision_at_r",
        jaxloss.mean_average_precision_at_r,
        (NB, L[:3], REF),
        {},
        V,
        "neighbor_indices",
    ),
    ("reciprocal_rank", jaxloss.reciprocal_rank, (X, L), {}, V, "relevance"),
    ("reciprocal_rank", jaxloss.reciprocal_rank, (X, i(4, 3)), dict(k=0), V, "k"),
    ("average_precision", jaxloss.average_precision, (i(4, 3), i(4, 3)), {}, T, "scores"),
    ("average_precision", jaxloss.average_precision, (f(4, 0), i(4, 0)), {}, V, "scores"),
    ("normalized_dcg", jaxloss.normalized_dcg, (X, i(4, 3)), dict(k=2.5), T, "k"),
    ("normalized_dcg", jaxloss.normalized_dcg, (X, f(4, 3, dtype="complex64")), {}, T, "relevance"),
    ("hit_rate", jaxloss.hit_rate, (X, i(4, 2)), {}, V, "relevance"),
    ("hit_rate", jaxloss.hit_rate, (X, i(4, 3)), dict(k=True), T, "k"),
    # cross-batch memory
    ("queue_init", jaxloss.queue_init, (), dict(size=0, dim=3), V, "size"),
    ("queue_init", jaxloss.queue_init, (), dict(size=4, dim=2.0), T, "dim"),
    ("queue_init", jaxloss.queue_init, (), dict(size=4, dim=3, dtype=jnp.int32), T, "dtype"),
    ("queue_init", jaxloss.queue_init, (), dict(size=4, dim=3, label_dtype=jnp.float32), T, "label_dtype"),
    ("queue_push", functools.partial(jaxloss.queue_push, Q), (f(2, 2), L[:2]), {}, V, "embeddings"),
    ("queue_push", functools.partial(jaxloss.queue_push, Q), (X, L[:3]), {}, V, "labels"),
    ("queue_push", functools.partial(jaxloss.queue_push, Q), (i(4, 3), L), {}, T, "embeddings"),
    ("queue_push", functools.partial(jaxloss.queue_push, Q), (X, L.astype(jnp.float32)), {}, T, "labels"),
    ("queue_push", jaxloss.queue_push, (tuple(Q), X, L), {}, T, "queue"),
    # divergences
    ("bhattacharyya_distance", jaxloss.bhattacharyya_distance, (P, f(4, 2)), {}, V, "targets"),
    ("convex_kl_divergence", jaxloss.convex_kl_divergence, (P, f(4, 2)), {}, V, "targets"),
    ("cross_entropy", jaxloss.cross_entropy, (P, f(4, 2)), {}, V, "targets"),
    ("entropy", lambda p, w: jaxloss.entropy(p, where=w), (P, f(4, 2) > 0), {}, V, "where"),
    ("entropy", jaxloss.entropy, (P,), dict(axis=2), V, "axis"),
    ("generalized_kl_divergence", jaxloss.generalized_kl_divergence, (P, f(4, 2)), {}, V, "targets"),
    ("hellinger_distance", jaxloss.hellinger_distance, (P, f(4, 2)), {}, V, "targets"),
    ("jensen_shannon_distance", jaxloss.jensen_shannon_distance, (P, P), dict(base=-2.0), V, "base"),
    ("js_divergence", jaxloss.js_divergence, (P, f(4, 2)), {}, V, "targets"),
    ("kl_divergence", jaxloss.kl_divergence, (P, f(4, 2)), {}, V, "targets"),
    ("kl_divergence", jaxloss.kl_divergence, (i(4, 3), P), {}, T, "log_predictions"),
    (
        "kl_divergence_with_log_targets",
        jaxloss.kl_divergence_with_log_targets,
        (P, f(4, 2)),
        {},
        V,
        "log_targets",
    ),
    ("renyi_divergence", jaxloss.renyi_divergence, (P, P), dict(alpha=-1.0), V, "alpha"),
    ("symmetric_kl_divergence", jaxloss.symmetric_kl_divergence, (P, f(4, 2)), {}, V, "targets"),
    ("total_variation_distance", jaxloss.total_variation_distance, (P, f(4, 2)), {}, V, "targets"),
    # classification
    ("binary_cross_entropy", jaxloss.binary_cross_entropy, (P, f(4, 2)), {}, V, "targets"),
    ("binary_cross_entropy", jaxloss.binary_cross_entropy, (P, P), dict(log_clamp=1.0), V, "log_clamp"),
    ("safe_softmax_cross_entropy", jaxloss.safe_softmax_cross_entropy, (X, f(4, 2)), {}, V, "labels"),
    ("safe_softmax_cross_entropy", jaxloss.safe_softmax_cross_entropy, (i(4, 3), P), {}, T, "logits"),
    ("sigmoid_binary_cross_entropy", jaxloss.sigmoid_binary_cross_entropy, (X, f(4, 2)), {}, V, "labels"),
    ("sigmoid_binary_cross_entropy", jaxloss.sigmoid_binary_cross_entropy, (i(4, 3), X), {}, T, "logits"),
    ("sigmoid_focal_loss", jaxloss.sigmoid_focal_loss, (X, Y), dict(gamma=-1.0), V, "gamma"),
    ("sigmoid_focal_loss", jaxloss.sigmoid_focal_loss, (X, f(4, 2)), {}, V, "labels"),
    ("smooth_labels", jaxloss.smooth_labels, (P,), dict(alpha=1.5), V, "alpha"),
    ("softmax_cross_entropy", jaxloss.softmax_cross_entropy, (X, f(4, 2)), {}, V, "labels"),
    ("softmax_cross_entropy", jaxloss.softmax_cross_entropy, (i(4, 3), P), {}, T, "logits"),
    (
        "softmax_cross_entropy_with_integer_labels",
        jaxloss.softmax_cross_entropy_with_integer_labels,
        (X, L.astype(jnp.float32)),
        {},
        T,
        "labels",
    ),
    (
        "softmax_cross_entropy_with_integer_labels",
        jaxloss.softmax_cross_entropy_with_integer_labels,
        (i(4, 3), L),
        {},
        T,
        "logits",
    ),
    (
        "softmax_cross_entropy_with_integer_labels",
        jaxloss.softmax_cross_entropy_with_integer_labels,
        (X, L[:3]),
        {},
        V,
        "labels",
    ),
    (
        "softmax_cross_entropy_with_integer_labels",
        jaxloss.softmax_cross_entropy_with_integer_labels,
        (X, L),
        dict(label_smoothing=1.5),
        V,
        "label_smoothing",
    ),
    # metric learning
    ("triplet_margin_loss", jaxloss.triplet_margin_loss, (X, Y, f(4, 2)), {}, V, "negatives"),
    ("triplet_margin_loss", jaxloss.triplet_margin_loss, (X, Y, Y), dict(margin=-1.0), V, "margin"),
    ("triplet_margin_loss", jaxloss.triplet_margin_loss, (X, Y, Y), dict(norm_degree=0.0), V, "norm_degree"),
    ("batch_all_triplet_loss", jaxloss.batch_all_triplet_loss, (X, L.astype(float)), {}, T, "labels"),
    ("batch_all_triplet_loss", jaxloss.batch_all_triplet_loss, (X, L), dict(margin=-1.0), V, "margin"),
    ("batch_hard_triplet_loss", jaxloss.batch_hard_triplet_loss, (X, L[:3]), {}, V, "labels"),
    ("batch_hard_triplet_loss", jaxloss.batch_hard_triplet_loss, (X, L), dict(metric="bogus"), V, "metric"),
    ("semi_hard_triplet_loss", jaxloss.semi_hard_triplet_loss, (f(4), L), {}, V, "embeddings"),
    ("semi_hard_triplet_loss", jaxloss.semi_hard_triplet_loss, (X, L), dict(margin=-1.0), V, "margin"),
    (
        "batch_hard_triplet_loss",
        jaxloss.batch_hard_triplet_loss,
        (X, L),
        dict(ref_embeddings=f(5, 3)),
        V,
        "ref_labels",
    ),
    (
        "batch_all_triplet_loss",
        jaxloss.batch_all_triplet_loss,
        (X, L),
        dict(ref_labels=L5),
        V,
        "ref_embeddings",
    ),
    (
        "semi_hard_triplet_loss",
        jaxloss.semi_hard_triplet_loss,
        (X, L),
        dict(ref_embeddings=f(5, 2), ref_labels=L5),
        V,
        "ref_embeddings",
    ),
    (
        "batch_hard_triplet_loss",
        jaxloss.batch_hard_triplet_loss,
        (X, L),
        dict(ref_embeddings=f(5, 3), ref_labels=L),
        V,
        "ref_labels",
    ),
    ("lifted_structured_loss", jaxloss.lifted_structured_loss, (X, L), dict(margin=-1.0), V, "margin"),
    ("lifted_structured_loss", jaxloss.lifted_structured_loss, (X, L.astype(float)), {}, T, "labels"),
    (
        "soft_nearest_neighbor_loss",
        jaxloss.soft_nearest_neighbor_loss,
        (X, L),
        dict(temperature=0.0),
        V,
        "temperature",
    ),
    ("soft_nearest_neighbor_loss", jaxloss.soft_nearest_neighbor_loss, (X, L[:3]), {}, V, "labels"),
    ("ntxent", jaxloss.ntxent, (X, L), dict(temperature=-0.1), V, "temperature"),
    ("ntxent", jaxloss.ntxent, (X, L.astype(float)), {}, T, "labels"),
    (
        "supervised_contrastive_loss",
        jaxloss.supervised_contrastive_loss,
        (X, L),
        dict(temperature=-0.1),
        V,
        "temperature",
    ),
    ("supervised_contrastive_loss", jaxloss.supervised_contrastive_loss, (X, L[:3]), {}, V, "labels"),
    ("info_nce", jaxloss.info_nce, (X, Y), dict(temperature=0.0), V, "temperature"),
    ("info_nce", jaxloss.info_nce, (X, f(5, 3)), {}, V, "keys"),
    ("clip_loss", jaxloss.clip_loss, (X, f(5, 3)), {}, V, "text_embeddings"),
    ("clip_loss", jaxloss.clip_loss, (X, Y), dict(temperature=0.0), V, "temperature"),
    # embedding-model training
    ("multiple_negatives_ranking_loss", MNRL, (X, Y), dict(directions=()), V, "directions"),
    (
        "multiple_negatives_ranking_loss",
        MNRL,
        (X, Y),
        dict(directions=("query_to_doc", "up")),
        V,
        "directions",
    ),
    ("multiple_negatives_ranking_loss", MNRL, (X, Y), dict(directions=("doc_to_query",)), V, "directions"),
    ("multiple_negatives_ranking_loss", MNRL, (X, Y), dict(directions="query_to_doc"), T, "directions"),
    ("multiple_negatives_ranking_loss", MNRL, (X, Y), dict(partition_mode="both"), V, "partition_mode"),
    (
        "multiple_negatives_ranking_loss",
        MNRL,
        (X, Y),
        dict(partition_mode="per_direction", directions=("query_to_doc", "doc_to_doc")),
        V,
        "partition_mode",
    ),
    ("multiple_negatives_ranking_loss", MNRL, (X, Y), dict(hardness_mode="hard"), V, "hardness_mode"),
    ("multiple_negatives_ranking_loss", MNRL, (X, Y), dict(hardness_strength=-1.0), V, "hardness_strength"),
    ("multiple_negatives_ranking_loss", MNRL, (X, Y), dict(matryoshka_dims=(3, 4)), V, "matryoshka_dims"),
    ("multiple_negatives_ranking_loss", MNRL, (X, Y), dict(matryoshka_dims=(2, 2)), V, "matryoshka_dims"),
    (
        "multiple_negatives_ranking_loss",
        MNRL,
        (X, Y),
        dict(matryoshka_dims=(3, 2), matryoshka_weights=(1.0,)),
        V,
        "matryoshka_weights",
    ),
    ("multiple_negatives_ranking_loss", MNRL, (X, f(5, 3)), {}, V, "documents"),
    ("multiple_negatives_ranking_loss", MNRL, (X, Y, f(4, 3)), {}, V, "negatives"),
    ("multiple_negatives_ranking_loss", MNRL, (X, Y, f(5, 2, 3)), {}, V, "negatives"),
    ("multiple_negatives_ranking_loss", MNRL, (X, Y), dict(similarity="euclidean"), V, "similarity"),
    ("multiple_negatives_ranking_loss", MNRL, (X, Y), dict(scale=0.0), V, "scale"),
    (
        "gist_loss",
        jaxloss.gist_loss,
        (X, Y),
        dict(guide_anchors=X, guide_positives=Y, margin_strategy="pct"),
        V,
        "margin_strategy",
    ),
    (
        "gist_loss",
        jaxloss.gist_loss,
        (X, Y),
        dict(guide_anchors=X, guide_positives=Y, temperature=0.0),
        V,
        "temperature",
    ),
    (
        "gist_loss",
        jaxloss.gist_loss,
        (X, Y),
        dict(guide_anchors=f(5, 2), guide_positives=Y),
        V,
        "guide_anchors",
    ),
    (
        "gist_loss",
        jaxloss.gist_loss,
        (X, Y, f(4, 2, 3)),
        dict(guide_anchors=X, guide_positives=Y),
        V,
        "guide_negatives",
    ),
    ("gist_loss", jaxloss.gist_loss, (X, f(5, 3)), dict(guide_anchors=X, guide_positives=Y), V, "positives"),
    ("cosent_loss", jaxloss.cosent_loss, (X, Y, f(3)), {}, V, "scores"),
    ("cosent_loss", jaxloss.cosent_loss, (X, Y, f(4)), dict(scale=-1.0), V, "scale"),
    ("cosent_loss", jaxloss.cosent_loss, (X, f(4, 2), f(4)), {}, V, "embeddings1"),
    ("angle_loss", jaxloss.angle_loss, (X, Y, f(5)), {}, V, "scores"),
    ("angle_loss", jaxloss.angle_loss, (X, Y, f(4)), dict(scale=0.0), V, "scale"),
    ("matryoshka_loss", _nested, (X, Y), dict(dims=(4, 2)), V, "dims"),
    ("matryoshka_loss", _nested, (X, Y), dict(dims=(3, 2), weights=(1.0, 1.0, 1.0)), V, "weights"),
    ("matryoshka_loss", _nested, (X, Y), dict(dims=()), V, "dims"),
    ("cached_embeddings", _cached, (f(3, 2), X), dict(chunk_size=0), V, "chunk_size"),
    ("cached_embeddings", _cached, (f(3, 2), X), dict(chunk_size=2.5), T, "chunk_size"),
    ("cached_embeddings", _cached, (f(3, 2), {"a": X, "b": f(5, 3)}), dict(chunk_size=2), V, "inputs"),
    (
        "sigmoid_contrastive_loss",
        jaxloss.sigmoid_contrastive_loss,
        (X, Y),
        dict(logit_scale=0.0),
        V,
        "logit_scale",
    ),
    (
        "linear_softmax_cross_entropy",
        jaxloss.linear_softmax_cross_entropy,
        (X, f(3, 5), L.astype(jnp.float32)),
        {},
        T,
        "labels",
    ),
    ("linear_softmax_cross_entropy", jaxloss.linear_softmax_cross_entropy, (X, f(4, 5), L), {}, V, "kernel"),
    (
        "linear_softmax_cross_entropy",
        jaxloss.linear_softmax_cross_entropy,
        (X, f(3, 5), L),
        dict(where=jnp.ones(3, bool)),
        V,
        "where",
    ),
    # margin and proxy losses
    ("arcface_loss", jaxloss.arcface_loss, (X, f(3), L), {}, V, "kernel"),
    ("arcface_loss", jaxloss.arcface_loss, (X, f(3, 5), L), dict(sub_centers=2), V, "sub_centers"),
    ("arcface_loss", jaxloss.arcface_loss, (X, f(3, 5), L), dict(margin=3.5), V, "margin"),
    ("arcface_loss", jaxloss.arcface_loss, (X, f(3, 5), L), dict(scale=0.0), V, "scale"),
    ("arcface_loss", jaxloss.arcface_loss, (X, f(3, 5), L), dict(class_block_size=0), V, "class_block_size"),
    ("arcface_loss", jaxloss.arcface_loss, (X, f(3, 5), L), dict(block_size=2.5), T, "block_size"),
    ("arcface_loss", jaxloss.arcface_loss, (X, f(3, 2), L[:2]), {}, V, "labels"),
    ("cosface_loss", jaxloss.cosface_loss, (X, f(3, 5), L), dict(margin=-0.1), V, "margin"),
    (
        "cosface_loss",
        jaxloss.cosface_loss,
        (X, f(3, 5), L),
        dict(class_block_size=True),
        T,
        "class_block_size",
    ),
    ("cosface_loss", jaxloss.cosface_loss, (X, f(4, 5), L), {}, V, "kernel"),
    ("proxy_anchor_loss", jaxloss.proxy_anchor_loss, (X, f(3, 5), L), dict(alpha=0.0), V, "alpha"),
    ("proxy_anchor_loss", jaxloss.proxy_anchor_loss, (X, f(5, 3), L), {}, V, "proxies"),
    ("proxy_nca_loss", jaxloss.proxy_nca_loss, (X, f(3, 5), L), dict(scale=-1.0), V, "scale"),
    ("proxy_nca_loss", jaxloss.proxy_nca_loss, (X, f(3, 5), L[:3]), {}, V, "labels"),
    ("multi_similarity_loss", jaxloss.multi_similarity_loss, (X, L), dict(beta=0.0), V, "beta"),
    ("multi_similarity_loss", jaxloss.multi_similarity_loss, (f(4), L), {}, V, "embeddings"),
    ("circle_loss", jaxloss.circle_loss, (X, L), dict(gamma=0.0), V, "gamma"),
    ("circle_loss", jaxloss.circle_loss, (X, L.astype(jnp.float32)), {}, T, "labels"),
    (
        "circle_loss",
        jaxloss.circle_loss,
        (X, L),
        dict(ref_embeddings=f(5), ref_labels=L5),
        V,
        "ref_embeddings",
    ),
    (
        "circle_loss",
        jaxloss.circle_loss,
        (X, L),
        dict(ref_embeddings=f(5, 3), ref_labels=L5.astype(jnp.float32)),
        T,
        "ref_labels",
    ),
    (
        "multi_similarity_loss",
        jaxloss.multi_similarity_loss,
        (X, L),
        dict(ref_embeddings=f(5, 3), ref_labels=L),
        V,
        "ref_labels",
    ),
    (
        "multi_similarity_loss",
        jaxloss.multi_similarity_loss,
        (X, L),
        dict(ref_labels=L5),
        V,
        "ref_embeddings",
    ),
    (
        "linear_distillation_loss",
        jaxloss.linear_distillation_loss,
        (X, f(3, 5), f(4, 2), f(2, 6)),
        {},
        V,
        "teacher_kernel",
    ),
    (
        "linear_distillation_loss",
        jaxloss.linear_distillation_loss,
        (X, f(3, 5), f(4, 2), f(2, 5)),
        dict(divergence="jsd", beta=2.0),
        V,
        "beta",
    ),
    ("linear_softmax_statistics", jaxloss.linear_softmax_statistics, (X, f(3, 5), L[:3]), {}, V, "labels"),
    (
        "linear_softmax_statistics",
        jaxloss.linear_softmax_statistics,
        (X, f(3, 5), L),
        dict(ignore_index=0.5),
        T,
        "ignore_index",
    ),
    (
        "linear_distillation_loss",
        jaxloss.linear_distillation_loss,
        (X, f(3, 5), f(4, 2), f(2, 5)),
        dict(logit_softcap=-1.0),
        V,
        "logit_softcap",
    ),
    ("npair_loss", jaxloss.npair_loss, (X, f(5, 3)), {}, V, "positives"),
    ("npair_loss", jaxloss.npair_loss, (f(4), f(4)), {}, V, "anchors"),
    ("contrastive_loss", jaxloss.contrastive_loss, (X, Y, L), dict(margin=-1.0), V, "margin"),
    ("contrastive_loss", jaxloss.contrastive_loss, (X, f(4, 2), L), {}, V, "embeddings_b"),
    ("cosine_embedding_loss", jaxloss.cosine_embedding_loss, (X, f(4, 2), L), {}, V, "inputs2"),
    ("cosine_embedding_loss", jaxloss.cosine_embedding_loss, (X, Y, L), dict(margin=2.0), V, "margin"),
    ("margin_ranking_loss", jaxloss.margin_ranking_loss, (f(4), f(3), f(4)), {}, V, "inputs2"),
    ("hinge_embedding_loss", jaxloss.hinge_embedding_loss, (X, f(4, 2)), {}, V, "targets"),
    ("positive_mask", jaxloss.positive_mask, (L.astype(float),), {}, T, "labels"),
    ("negative_mask", jaxloss.negative_mask, (i(2, 2),), {}, V, "labels"),
    ("triplet_mask", jaxloss.triplet_mask, (L.astype(float),), {}, T, "labels"),
    # torch face
    ("torch.norm", jt.norm, (X,), dict(p="nuc", dim=0), V, "dim"),
    ("torch.norm", jt.norm, (X,), dict(p="bogus"), V, "p"),
    ("torch.linalg.norm", jtl.norm, (f(2, 2, 2),), dict(ord=2), V, "ord"),
    ("torch.linalg.vector_norm", jtl.vector_norm, (X,), dict(ord="fro"), V, "ord"),
    ("torch.linalg.matrix_norm", jtl.matrix_norm, (f(3),), {}, V, "A"),
    ("torch.mse_loss", jt.mse_loss, (X, Y), dict(reduction="avg"), V, "reduction"),
    ("torch.mse_loss", jt.mse_loss, (X, f(4, 2)), {}, V, "target"),
    ("torch.l1_loss", jt.l1_loss, (X, Y), dict(reduction="avg"), V, "reduction"),
    ("torch.smooth_l1_loss", jt.smooth_l1_loss, (X, Y), dict(beta=-1.0), V, "beta"),
    ("torch.huber_loss", jt.huber_loss, (X, Y), dict(delta=0.0), V, "delta"),
    ("torch.cdist", jt.cdist, (X, f(5, 2)), {}, V, "x2"),
    ("torch.cdist", jt.cdist, (X, Y), dict(p=-1.0), V, "p"),
    ("torch.cdist", jt.cdist, (X, Y), dict(compute_mode="bogus"), V, "compute_mode"),
    ("torch.pdist", jt.pdist, (f(2, 2, 3),), {}, V, "input"),
    ("torch.pdist", jt.pdist, (X,), dict(p=-1.0), V, "p"),
    ("torch.pairwise_distance", jt.pairwise_distance, (X, f(4, 2)), {}, V, "x2"),
    ("torch.cosine_similarity", jt.cosine_similarity, (X, f(4, 2)), {}, V, "x2"),
    ("torch.cosine_similarity", jt.cosine_similarity, (X, Y), dict(dim=3), V, "dim"),
    ("torch.binary_hamming_distance", jt.binary_hamming_distance, (X, i(4, 2)), {}, V, "target"),
    (
        "torch.binary_hamming_distance",
        jt.binary_hamming_distance,
        (X, i(4, 3)),
        dict(multidim_average="bogus"),
        V,
        "multidim_average",
    ),
    ("torch.kl_div", jt.kl_div, (P, P), dict(reduction="avg"), V, "reduction"),
    ("torch.kl_div", jt.kl_div, (P, f(4, 2)), {}, V, "target"),
    ("torch.cross_entropy", jt.cross_entropy, (X, L.astype(jnp.float32)), {}, T, "target"),
    ("torch.cross_entropy", jt.cross_entropy, (i(4, 3), L), {}, T, "input"),
    ("torch.cross_entropy", jt.cross_entropy, (X, L), dict(reduction="avg"), V, "reduction"),
    ("torch.cross_entropy", jt.cross_entropy, (X, L), dict(label_smoothing=-0.1), V, "label_smoothing"),
    (
        "torch.linear_cross_entropy",
        jt.linear_cross_entropy,
        (X, f(5, 3), L),
        dict(reduction="avg"),
        V,
        "reduction",
    ),
    ("torch.linear_cross_entropy", jt.linear_cross_entropy, (X, f(5, 4), L), {}, V, "linear_weight"),
    (  # PyTorch's LinearCrossEntropyOptions: any bad batch_chunk_size is a ValueError
        "torch.linear_cross_entropy",
        jt.linear_cross_entropy,
        (X, f(5, 3), L),
        dict(options=types.SimpleNamespace(batch_chunk_size=0)),
        V,
        "options.batch_chunk_size",
    ),
    ("torch.nll_loss", jt.nll_loss, (X, L.astype(jnp.float32)), {}, T, "target"),
    ("torch.nll_loss", jt.nll_loss, (X, L[:3]), {}, V, "target"),
    ("torch.binary_cross_entropy", jt.binary_cross_entropy, (P, f(4, 2)), {}, V, "target"),
    ("torch.binary_cross_entropy", jt.binary_cross_entropy, (P, P), dict(reduction="avg"), V, "reduction"),
    (
        "torch.binary_cross_entropy_with_logits",
        jt.binary_cross_entropy_with_logits,
        (X, f(4, 2)),
        {},
        V,
        "target",
    ),
    ("torch.triplet_margin_loss", jt.triplet_margin_loss, (X, Y, Y), dict(margin=-1.0), V, "margin"),
    ("torch.triplet_margin_loss", jt.triplet_margin_loss, (X, Y, f(4, 2)), {}, V, "negative"),
    (
        "torch.triplet_margin_with_distance_loss",
        jt.triplet_margin_with_distance_loss,
        (X, Y, Y),
        dict(margin=0.0),
        V,
        "margin",
    ),
    (
        "torch.triplet_margin_with_distance_loss",
        jt.triplet_margin_with_distance_loss,
        (X, Y, Y),
        dict(reduction="avg"),
        V,
        "reduction",
    ),
    ("torch.cosine_embedding_loss", jt.cosine_embedding_loss, (X, f(4, 2), f(4)), {}, V, "input2"),
    (
        "torch.cosine_embedding_loss",
        jt.cosine_embedding_loss,
        (X, Y, f(4)),
        dict(reduction="avg"),
        V,
        "reduction",
    ),
    ("torch.margin_ranking_loss", jt.margin_ranking_loss, (f(4), f(3), f(4)), {}, V, "input2"),
    ("torch.hinge_embedding_loss", jt.hinge_embedding_loss, (X, Y), dict(reduction="avg"), V, "reduction"),
    ("check_inputs", lambda lg, lb: jaxloss.check_inputs(logits=lg, labels=lb), (X, L), {}, V, "num_classes"),
    # LLM post-training
    ("dpo_loss", jaxloss.dpo_loss, (f(4), f(4)), dict(loss_type="sigmod"), V, "loss_type"),
    ("dpo_loss", jaxloss.dpo_loss, (f(4), f(3)), {}, V, "rejected_logps"),
    ("dpo_loss", jaxloss.dpo_loss, (f(4), f(4), f(4, 1), f(4, 1)), {}, V, "ref_chosen_logps"),
    ("dpo_loss", jaxloss.dpo_loss, (f(4), f(4), f(4)), {}, V, "ref_rejected_logps"),
    ("dpo_loss", jaxloss.dpo_loss, (i(4), f(4)), {}, T, "chosen_logps"),
    ("dpo_loss", jaxloss.dpo_loss, (f(4), f(4)), dict(loss_type="exo_pair"), V, "label_smoothing"),
    (
        "dpo_loss",
        jaxloss.dpo_loss,
        (f(4), f(4)),
        dict(loss_type="robust", label_smoothing=0.5),
        V,
        "label_smoothing",
    ),
    (
        "dpo_loss",
        jaxloss.dpo_loss,
        (f(4), f(4)),
        dict(loss_type="hinge", label_smoothing=0.1),
        V,
        "label_smoothing",
    ),
    ("dpo_loss", jaxloss.dpo_loss, (f(4), f(4)), dict(loss_type="sppo_hard", beta=0.0), V, "beta"),
    (
        "dpo_loss",
        jaxloss.dpo_loss,
        (f(4), f(4)),
        dict(loss_type="discopop", discopop_tau=0.0),
        V,
        "discopop_tau",
    ),
    ("simpo_loss", jaxloss.simpo_loss, (f(4), f(4)), dict(label_smoothing=0.7), V, "label_smoothing"),
    ("simpo_loss", jaxloss.simpo_loss, (f(4), f(2)), {}, V, "rejected_logps"),
    ("cpo_loss", jaxloss.cpo_loss, (f(4), f(4)), dict(label_smoothing=-0.1), V, "label_smoothing"),
    ("cpo_loss", jaxloss.cpo_loss, (f(4), f(4, 1)), {}, V, "rejected_logps"),
    ("orpo_loss", jaxloss.orpo_loss, (f(4), f(5)), {}, V, "rejected_logps"),
    ("orpo_loss", jaxloss.orpo_loss, (f(4), f(4)), dict(beta=float("nan")), V, "beta"),
    ("kto_loss", jaxloss.kto_loss, (f(4), None), {}, T, "preference_labels"),
    ("kto_loss", jaxloss.kto_loss, (f(4), f(3)), {}, V, "preference_labels"),
    ("kto_loss", jaxloss.kto_loss, (f(4), f(4), f(3)), {}, V, "ref_log_probs"),
    ("kto_loss", jaxloss.kto_loss, (f(4), f(4)), dict(kl=jnp.zeros(4)), V, "kl"),
    ("grpo_loss", jaxloss.grpo_loss, (X, X, f(4)), dict(loss_type="ppo"), V, "loss_type"),
    (
        "grpo_loss",
        jaxloss.grpo_loss,
        (X, X, f(4)),
        dict(importance_sampling_level="seq"),
        V,
        "importance_sampling_level",
    ),
    ("grpo_loss", jaxloss.grpo_loss, (X, X, f(4)), dict(loss_type="dr_grpo"), V, "max_completion_length"),
    (
        "grpo_loss",
        jaxloss.grpo_loss,
        (X, X, f(4)),
        dict(loss_type="dr_grpo", max_completion_length=0),
        V,
        "max_completion_length",
    ),
    (
        "grpo_loss",
        jaxloss.grpo_loss,
        (X, X, f(4)),
        dict(loss_type="dr_grpo", max_completion_length=2.5),
        T,
        "max_completion_length",
    ),
    ("grpo_loss", jaxloss.grpo_loss, (X, f(4, 2), f(4)), {}, V, "completion_mask"),
    ("grpo_loss", jaxloss.grpo_loss, (X, X, f(3)), {}, V, "advantages"),
    ("grpo_loss", jaxloss.grpo_loss, (f(4), f(4), f(4)), {}, V, "log_probs"),
    ("grpo_loss", jaxloss.grpo_loss, (X, X, f(4)), dict(beta=-0.1), V, "beta"),
    ("grpo_loss", jaxloss.grpo_loss, (X, X, f(4)), dict(epsilon_high=-0.2), V, "epsilon_high"),
    ("grpo_loss", jaxloss.grpo_loss, (X, X, f(4)), dict(old_log_probs=f(4, 2)), V, "old_log_probs"),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (PX, HK, PY), dict(method="dpx"), V, "method"),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (PX, HK, PY), dict(loss_type="sigmod"), V, "loss_type"),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (f(3, 3, 2), HK, i(3, 3)), {}, V, "inputs"),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (PX, HK, i(4, 2)), {}, V, "labels"),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (PX, HK, PY), dict(method="kto"), V, "preference_labels"),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (PX, HK, PY), dict(loss_type="exo_pair"), V, "label_smoothing"),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (PX, HK, PY),
     dict(loss_type="robust", label_smoothing=0.5), V, "label_smoothing"),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (PX, HK, PY), dict(ref_inputs=PX), V, "ref_kernel"),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (PX, HK, PY), dict(ref_kernel=HK), V, "ref_inputs"),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (PX, HK, PY),
     dict(loss_type="sppo_hard", beta=0.0), V, "beta"),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (PX, HK, PY),
     dict(method="kto", preference_labels=jnp.ones(4, bool), kl=f(4)), V, "kl"),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (PX, HK, PY),
     dict(method="simpo", ref_inputs=PX, ref_kernel=HK), V, "ref_inputs"),
    ("linear_grpo_loss", jaxloss.linear_grpo_loss, (GX, HK, GY, GM, f(2)), dict(loss_type="ppo"), V, "loss_type"),
    ("linear_grpo_loss", jaxloss.linear_grpo_loss, (GX, HK, GY, GM, f(2)), dict(loss_type="dr_grpo"), V,
     "max_completion_length"),
    ("linear_grpo_loss", jaxloss.linear_grpo_loss, (GX, HK, GY, GM, f(2)),
     dict(importance_sampling_level="seq"), V, "importance_sampling_level"),
    ("linear_grpo_loss", jaxloss.linear_grpo_loss, (GX, HK, GY, f(2, 2), f(2)), {}, V, "completion_mask"),
    ("linear_grpo_loss", jaxloss.linear_grpo_loss, (GX, HK, i(2, 2), GM, f(2)), {}, V, "completion_ids"),
    ("linear_grpo_loss", jaxloss.linear_grpo_loss, (GX, HK, GY, GM, f(3)), {}, V, "advantages"),
    ("linear_grpo_loss", jaxloss.linear_grpo_loss, (GX, HK, GY, GM, f(2)), dict(ref_inputs=GX), V, "ref_kernel"),
    ("linear_grpo_loss", jaxloss.linear_grpo_loss, (GX, HK, GY, GM, f(2)),
     dict(ref_inputs=GX, ref_kernel=HK, ref_log_probs=GM), V, "ref_log_probs"),
    ("linear_grpo_loss", jaxloss.linear_grpo_loss, (GX, HK, GY, GM, f(2)), dict(temperature=0.0), V, "temperature"),
    ("linear_grpo_loss", jaxloss.linear_grpo_loss, (GX, HK, GY, GM, f(2)), dict(old_log_probs=f(2, 2)), V,
     "old_log_probs"),
]  # fmt: skip


def _case_id(case):
    return f"{case[0]}-{case[5]}"


def test_every_public_function_has_a_bad_input_case():
    covered = {c[0] for c in CASES}
    assert set(SPECS) - covered == set()


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_raises_naming_the_argument(case, mode):
    _, fn, args, kwargs, exc, arg = case
    call = functools.partial(fn, **kwargs)
    if mode == "jit":
        call = jax.jit(call)
    with pytest.raises(exc) as info:
        jax.block_until_ready(call(*args))
    message = str(info.value)
    # `_checks` style names the argument in backquotes; the equinox style of cdist/pdist
    # ("cdist(x, y) needs x.shape[-1] == y.shape[-1]") names it in the call
    assert f"`{arg}`" in message or f" {arg}.shape" in message, message


# ------------------------------------------------------------------ tiling arguments
# One rule for every tiling argument (`block_size`, `query_block_size`, `vocab_block_size`,
# `class_block_size`, ...): a non-integer (2.5, True) is a TypeError, zero or a negative
# number a ValueError, each message naming the argument. A new function that takes one is
# one row here; `test_every_tiling_argument_has_a_case` finds the public ones.

TILING_NAMES = (
    "block_size",
    "query_block_size",
    "vocab_block_size",
    "class_block_size",
    "database_block_size",
)
BAD_TILES = [(2.5, T), (True, T), (0, V), (-1, V)]


def _packed_hamming(x, y, **kw):
    # public under jaxloss when exported, else the binary-code module's function knn uses
    fn = getattr(jaxloss, "packed_hamming_distances", None)
    if fn is None:
        from jaxloss import _bits  # noqa: PLC0415

        fn = _bits.packed_hamming_distances
    return fn(x, y, **kw)


W = jnp.zeros((4, 2), jnp.uint32)  # packed binary codes

# (public name, function, array arguments, static keyword arguments, tiling argument)
TILING = [
    ("knn", jaxloss.knn, (X, f(6, 3)), dict(k=2), "block_size"),
    ("knn", jaxloss.knn, (X, f(6, 3)), dict(k=2), "database_block_size"),
    ("knn", jaxloss.knn, (X, f(6, 3)), dict(k=2), "query_block_size"),  # deprecated name
    ("sharded_knn", _sharded, (X, f(6, 3)), dict(k=2), "block_size"),
    ("sharded_knn", _sharded, (X, f(6, 3)), dict(k=2), "database_block_size"),
    ("sharded_knn", _sharded, (X, f(6, 3)), dict(k=2), "query_block_size"),
    ("range_search", jaxloss.range_search, (X, f(6, 3)), dict(radius=1.0, max_results=2), "block_size"),
    (
        "range_search",
        jaxloss.range_search,
        (X, f(6, 3)),
        dict(radius=1.0, max_results=2),
        "database_block_size",
    ),
    (
        "range_search",
        jaxloss.range_search,
        (X, f(6, 3)),
        dict(radius=1.0, max_results=2),
        "query_block_size",
    ),
    ("packed_hamming_distances", _packed_hamming, (W, W), {}, "block_size"),
    ("linear_softmax_cross_entropy", jaxloss.linear_softmax_cross_entropy, (X, f(3, 5), L), {}, "block_size"),
    (
        "linear_softmax_cross_entropy",
        jaxloss.linear_softmax_cross_entropy,
        (X, f(3, 5), L),
        {},
        "vocab_block_size",
    ),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (PX, HK, PY), {}, "block_size"),
    ("linear_preference_loss", jaxloss.linear_preference_loss, (PX, HK, PY), {}, "vocab_block_size"),
    ("linear_grpo_loss", jaxloss.linear_grpo_loss, (GX, HK, GY, GM, f(2)), {}, "block_size"),
    ("linear_grpo_loss", jaxloss.linear_grpo_loss, (GX, HK, GY, GM, f(2)), {}, "vocab_block_size"),
    ("clip_loss", jaxloss.clip_loss, (X, Y), {}, "block_size"),
    ("sigmoid_contrastive_loss", jaxloss.sigmoid_contrastive_loss, (X, Y), {}, "block_size"),
    ("info_nce", jaxloss.info_nce, (X, Y), {}, "block_size"),
    ("multiple_negatives_ranking_loss", MNRL, (X, Y), {}, "block_size"),
    ("gist_loss", jaxloss.gist_loss, (X, Y), dict(guide_anchors=X, guide_positives=Y), "block_size"),
    ("ntxent", jaxloss.ntxent, (X, L), {}, "block_size"),
    ("supervised_contrastive_loss", jaxloss.supervised_contrastive_loss, (X, L), {}, "block_size"),
    ("npair_loss", jaxloss.npair_loss, (X, Y), {}, "block_size"),
    ("arcface_loss", jaxloss.arcface_loss, (X, f(3, 5), L), {}, "block_size"),
    ("arcface_loss", jaxloss.arcface_loss, (X, f(3, 5), L), {}, "class_block_size"),
    ("cosface_loss", jaxloss.cosface_loss, (X, f(3, 5), L), {}, "block_size"),
    ("cosface_loss", jaxloss.cosface_loss, (X, f(3, 5), L), {}, "class_block_size"),
    ("linear_softmax_statistics", jaxloss.linear_softmax_statistics, (X, f(3, 5), L), {}, "block_size"),
    ("linear_softmax_statistics", jaxloss.linear_softmax_statistics, (X, f(3, 5), L), {}, "vocab_block_size"),
    (
        "linear_distillation_loss",
        jaxloss.linear_distillation_loss,
        (X, f(3, 5), X, f(3, 5)),
        {},
        "block_size",
    ),
    (
        "linear_distillation_loss",
        jaxloss.linear_distillation_loss,
        (X, f(3, 5), X, f(3, 5)),
        {},
        "vocab_block_size",
    ),
]


def _public_tiling_arguments():
    found = set()
    for module, prefix in ((jaxloss, ""), (jt, "torch."), (jtl, "torch.linalg.")):
        for name in module.__all__:
            obj = getattr(module, name)
            if not callable(obj) or isinstance(obj, type(jaxloss)):
                continue
            for param in inspect.signature(obj).parameters:
                if param in TILING_NAMES or param.endswith("_block_size"):
                    found.add((prefix + name, param))
    return found


def test_every_tiling_argument_has_a_case():
    rows = {(row[0], row[4]) for row in TILING}
    assert _public_tiling_arguments() - rows == set()


@pytest.mark.parametrize("value, exc", BAD_TILES, ids=[repr(v) for v, _ in BAD_TILES])
@pytest.mark.parametrize("row", TILING, ids=[f"{r[0]}-{r[4]}" for r in TILING])
def test_tiling_argument_rule(row, value, exc):
    _, fn, args, kwargs, arg = row
    call = jax.jit(functools.partial(fn, **kwargs, **{arg: value}))  # raised at trace time
    with pytest.raises(exc) as info:
        jax.block_until_ready(call(*args))
    assert f"`{arg}`" in str(info.value), str(info.value)


# ------------------------------------------------------------------ complex input
# jaxloss works on real arrays: a complex array in a floating argument is a TypeError naming
# the public function and the argument ("fn: `arg` must be real ..."), eagerly and under jit.

_REAL_MESSAGE = r"^([\w.]+): `(\w+)` must be real \(jaxloss works on real arrays\); got dtype complex64\.$"
# layout conversions keep any dtype, as scipy's
_ANY_DTYPE = {"squareform"}
COMPLEX = [s for s in SPECS.values() if s.diff and s.name not in _ANY_DTYPE]


def _public_parameters(name):
    """The parameters of the public function (core or torch face) an error message names."""
    found = set()
    for module in (jaxloss, jt, jtl):
        obj = getattr(module, name, None)
        if callable(obj):
            found |= set(inspect.signature(obj).parameters)
    return found


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("spec", COMPLEX, ids=[s.name for s in COMPLEX])
def test_complex_input_names_the_function_and_the_argument(spec, mode):
    import re  # noqa: PLC0415

    args = list(spec.args(n=3, dtype="float32", d=2))
    i = spec.diff[0]
    args[i] = np.asarray(args[i]).astype(np.complex64)
    with pytest.raises(TypeError) as info:
        if mode == "jit":  # traced: raised while tracing, nothing compiled
            jax.eval_shape(spec.call, *args)
        else:
            spec.call(*args)
    match = re.match(_REAL_MESSAGE, str(info.value))
    assert match, str(info.value)
    fn, arg = match.groups()
    assert arg in _public_parameters(fn), (spec.name, str(info.value))
