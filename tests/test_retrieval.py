"""Retrieval metrics over neighbour indices against pytorch-metric-learning's AccuracyCalculator
and a NumPy brute force; ranking metrics over scored candidates against torchmetrics' functional
retrieval metrics, scikit-learn's ndcg_score and NumPy; one value per query everywhere, and the
deprecated `top_k` / `reduction` keywords."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.test_util import check_grads
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from torchmetrics.functional import retrieval as tm_retrieval

import jaxloss
from tests.helpers import rng

# --------------------------------------------------------------------------- retrieval metrics


def labelled(seed, n, d=8, classes=12):
    r = rng(seed)
    labels = r.integers(0, classes, n)
    labels[0] = classes  # a lone label (no other instance): such queries are skipped
    centres = r.normal(size=(classes + 1, d)) * 1.5
    return (centres[labels] + r.normal(size=(n, d))).astype(np.float32), labels


def pml_accuracy(query, query_labels, reference=None, reference_labels=None):
    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
        device=torch.device("cpu"),
    )
    args = (query, query_labels) if reference is None else (query, query_labels, reference, reference_labels)
    return calc.get_accuracy(*args)


def ours(indices, query_labels, reference_labels, exclude_self):
    """The per-query metrics, averaged as documented for pytorch-metric-learning's number: over
    the queries with a relevant reference item (``relevant_counts > 0``)."""

    @jax.jit
    def metrics(indices, query_labels, reference_labels):
        args, kw = (indices, query_labels, reference_labels), dict(exclude_self=exclude_self)
        per_query = {
            "precision_at_1": jaxloss.precision_at_k(*args, 1, **kw),
            "r_precision": jaxloss.r_precision(*args, **kw),
            "mean_average_precision_at_r": jaxloss.mean_average_precision_at_r(*args, **kw),
        }
        where = jaxloss.relevant_counts(query_labels, reference_labels, **kw) > 0
        return {key: jaxloss.reduce(v, where=where) for key, v in per_query.items()}, per_query

    means, per_query = metrics(indices, query_labels, reference_labels)
    for value in per_query.values():
        assert value.shape == (len(query_labels),)  # one value per query
    return {key: float(value) for key, value in means.items()}


def test_retrieval_metrics_match_pml_queries_are_reference():
    x, labels = labelled(0, 300)
    expected = pml_accuracy(x, labels)
    max_bin = int(np.bincount(labels).max())
    _, idx = jaxloss.knn(x, x, max_bin)  # pml searches max_bin_count - 1 + the query itself
    got = ours(idx, jnp.asarray(labels), jnp.asarray(labels), exclude_self=True)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-6, err_msg=key)


def test_retrieval_metrics_match_pml_separate_reference():
    x, labels = labelled(1, 400)
    q, ql, ref, rl = x[:90], labels[:90], x[90:], labels[90:]
    expected = pml_accuracy(q, ql, ref, rl)
    max_bin = int(np.bincount(rl).max())
    _, idx = jaxloss.knn(q, ref, max_bin)
    got = ours(idx, jnp.asarray(ql), jnp.asarray(rl), exclude_self=False)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-6, err_msg=key)


@pytest.mark.slow
def test_retrieval_metrics_jit_and_deprecated_reduction(variant):
    """The deprecated reduction="mean" (with its warning) is the documented reduce over the
    queries with a relevant item; reduction="none" is the default per-query values."""
    x, labels = labelled(2, 120)
    _, idx = jaxloss.knn(x, x, 20)
    valid = np.bincount(labels)[labels] > 1
    np.testing.assert_array_equal(
        np.asarray(jaxloss.relevant_counts(labels, labels, exclude_self=True)) > 0, valid
    )
    for fn in (jaxloss.r_precision, jaxloss.mean_average_precision_at_r):
        with pytest.warns(DeprecationWarning, match="`reduction` is deprecated.*relevant_counts"):
            mean = variant(fn, exclude_self=True, reduction="mean")(idx, labels, labels)
        with pytest.warns(DeprecationWarning, match="`reduction` is deprecated"):
            none = variant(fn, exclude_self=True, reduction="none")(idx, labels, labels)
        per_query = variant(fn, exclude_self=True)(idx, labels, labels)
        np.testing.assert_array_equal(np.asarray(none), np.asarray(per_query))
        np.testing.assert_allclose(float(mean), np.asarray(per_query)[valid].mean(), rtol=1e-12)
        np.testing.assert_allclose(float(mean), float(jaxloss.reduce(per_query, where=valid)), rtol=1e-12)
        assert np.all(np.asarray(per_query)[~valid] == 0)
    for fn in (jaxloss.precision_at_k, jaxloss.recall_at_k):
        assert per_query.shape == (120,)
        np.testing.assert_allclose(
            np.asarray(variant(fn, k=3, exclude_self=True)(idx, labels, labels)),
            np.asarray(fn(idx, labels, labels, 3, exclude_self=True)),
        )


@pytest.mark.parametrize("k", [3, 1, 10])  # k = 1 also against pytorch-metric-learning
def test_recall_at_k_brute_force(k):
    x, labels = labelled(3, 200)
    _, idx = jaxloss.knn(x, x, 11)
    idx = np.asarray(idx)
    # brute force: drop the query itself, keep non-lone queries, any hit in the first k
    rows = []
    for i in range(200):
        nbrs = [j for j in idx[i] if j != i][:10]
        if np.sum(labels == labels[i]) > 1:
            rows.append(any(labels[j] == labels[i] for j in nbrs[:k]))
    per_query = jax.jit(jaxloss.recall_at_k, static_argnums=3, static_argnames="exclude_self")(
        idx, labels, labels, k, exclude_self=True
    )
    valid = np.asarray(jaxloss.relevant_counts(labels, labels, exclude_self=True)) > 0
    np.testing.assert_array_equal(np.asarray(per_query)[valid], rows)
    got = jaxloss.reduce(per_query, where=valid)
    np.testing.assert_allclose(float(got), np.mean(rows), rtol=1e-12)
    if k == 1:
        np.testing.assert_allclose(float(got), pml_accuracy(x, labels)["precision_at_1"], rtol=1e-6)


@pytest.mark.slow
def test_retrieval_metrics_count_knn_padding_as_missing():
    """A filtered search with fewer allowed rows than k pads with -1: never a relevant neighbour
    (the last reference's label must not leak in through negative indexing)."""
    labels = np.array([0, 0, 1, 1, 1, 0])  # the last label is the queries': -1 must not read it
    x = np.arange(6, dtype=np.float64)[:, None]
    allowed = np.array([True, False, True, False, False, True])
    _, idx = jaxloss.knn(x[:2], x, 4, database_mask=allowed)  # 3 allowed rows: one -1 per query
    idx = np.asarray(idx)
    assert (idx[:, -1] == -1).all()
    ql = labels[:2]
    hits = np.array([[j >= 0 and labels[j] == q for j in row] for row, q in zip(idx, ql, strict=True)])
    counts = np.array([np.sum(labels == q) for q in ql])
    metrics = jax.jit(
        lambda i, q, r: (
            jaxloss.precision_at_k(i, q, r, 4),
            jaxloss.recall_at_k(i, q, r, 4),
            jaxloss.r_precision(i, q, r),
        )
    )
    p_at_4, r_at_4, r_prec = (np.asarray(v) for v in metrics(idx, ql, labels))
    np.testing.assert_allclose(p_at_4, hits.sum(1) / 4)
    np.testing.assert_allclose(r_at_4, hits.any(1).astype(float))
    r_hits = [hits[i, : min(counts[i], 4)].sum() / counts[i] for i in range(2)]
    np.testing.assert_allclose(r_prec, r_hits)


def test_retrieval_metrics_all_lone_is_zero():
    labels = jnp.arange(4)
    idx = jnp.array([[0, 1], [1, 2], [2, 3], [3, 0]])
    per_query = jax.jit(jaxloss.r_precision, static_argnames="exclude_self")(
        idx, labels, labels, exclude_self=True
    )
    assert np.all(np.asarray(per_query) == 0.0)
    lone = jaxloss.relevant_counts(labels, labels, exclude_self=True) == 0
    assert bool(jnp.all(lone))
    assert float(jaxloss.reduce(per_query, where=~lone)) == 0.0  # a mean over no query (pml: NaN)


def test_retrieval_metric_errors():
    labels = jnp.array([0, 1, 0])
    idx = jnp.array([[0, 2], [1, 0], [2, 0]])
    with pytest.raises(ValueError, match="one row per query"):
        jaxloss.recall_at_k(idx[:2], labels, labels, 1)
    with pytest.raises(ValueError, match=r"`k` must lie in \[1, 2\]"):
        jaxloss.precision_at_k(idx, labels, labels, 3)
    with pytest.raises(ValueError, match=r"`k` must lie in \[1, 1\]"):
        jaxloss.precision_at_k(idx, labels, labels, 2, exclude_self=True)
    with pytest.raises(ValueError, match="at least 2 columns"):
        jaxloss.r_precision(idx[:, :1], labels, labels, exclude_self=True)
    with pytest.raises(ValueError, match="first rows of the reference"):
        jaxloss.r_precision(idx, labels, labels[:2], exclude_self=True)
    with pytest.raises(TypeError, match="integer dtype"):
        jaxloss.r_precision(idx.astype(float), labels, labels)
    with pytest.raises(ValueError, match="`reduction` must be one of 'mean', 'none'"):
        jaxloss.mean_average_precision_at_r(idx, labels, labels, reduction="sum")
    with pytest.raises(ValueError, match="`query_labels` must have 1 dimension"):
        jaxloss.r_precision(idx, labels[:, None], labels)
    with pytest.raises(ValueError, match="first rows of the reference"):
        jaxloss.relevant_counts(labels, labels[:2], exclude_self=True)
    with pytest.raises(TypeError, match="`reference_labels` must have an integer dtype"):
        jaxloss.relevant_counts(labels, labels.astype(float))


def test_relevant_counts_match_pml_label_counts():
    """R_i against pytorch-metric-learning's label match counts and lone-query mask."""
    from pytorch_metric_learning.utils.accuracy_calculator import (  # noqa: PLC0415
        get_label_match_counts,
        get_lone_query_labels,
    )

    r = rng(9)
    ref = r.integers(0, 6, 40)
    ref[:3] = [7, 8, 8]  # 7 appears once: lone when the queries are the reference
    queries = np.concatenate([ref[:10], [9, 6]])  # 9 and 6 never appear in the reference
    same_label = lambda a, b: a == b  # noqa: E731
    counts = jax.jit(jaxloss.relevant_counts, static_argnames="exclude_self")
    for query_labels, same in ((queries, False), (ref, True)):
        got = np.asarray(counts(query_labels, ref, exclude_self=same))
        unique, match_counts = get_label_match_counts(
            torch.tensor(query_labels), torch.tensor(ref), same_label
        )
        per_label = dict(zip(unique.tolist(), match_counts.tolist(), strict=True))
        np.testing.assert_array_equal(got + same, [per_label.get(q, 0) for q in query_labels])
        _, not_lone = get_lone_query_labels(
            torch.tensor(query_labels), (unique, match_counts), same, same_label
        )
        np.testing.assert_array_equal(got > 0, not_lone.numpy())


def test_deprecated_keywords_warn_naming_the_new_one():
    """`top_k` -> `k` on the ranking metrics and `reduction` on the retrieval metrics keep working
    for one minor version with a DeprecationWarning (raised while tracing: checked with
    `jax.eval_shape`, nothing compiled); the positional order is unchanged."""
    import inspect  # noqa: PLC0415

    s, rel = jnp.array([[0.2, 0.3, 0.5], [0.9, 0.1, 0.4]]), jnp.array([[0, 1, 0], [1, 0, 1]])
    for fn in (jaxloss.reciprocal_rank, jaxloss.average_precision, jaxloss.normalized_dcg, jaxloss.hit_rate):
        params = inspect.signature(fn).parameters
        assert list(params)[:2] == ["scores", "relevance"]
        assert params["k"].kind == params["top_k"].kind == inspect.Parameter.KEYWORD_ONLY
        with pytest.warns(DeprecationWarning, match=f"{fn.__name__}: `top_k` is deprecated.*use `k`"):
            assert jax.eval_shape(functools.partial(fn, top_k=1), s, rel).shape == (2,)
        with pytest.raises(TypeError, match="both `k`"), pytest.warns(DeprecationWarning):
            fn(s, rel, k=1, top_k=1)
    with pytest.warns(DeprecationWarning, match="use `k`"):
        old = jax.jit(functools.partial(jaxloss.reciprocal_rank, top_k=2))(s, rel)
    np.testing.assert_array_equal(np.asarray(old), brute_force_ranking("reciprocal_rank", s, rel, 2))
    labels, idx = jnp.array([0, 0, 1]), jnp.array([[1, 2], [2, 0], [0, 1]])
    for fn in (
        jaxloss.precision_at_k,
        jaxloss.recall_at_k,
        jaxloss.r_precision,
        jaxloss.mean_average_precision_at_r,
    ):
        params = list(inspect.signature(fn).parameters)
        assert params[:3] == ["neighbor_indices", "query_labels", "reference_labels"]
        assert fn in (jaxloss.r_precision, jaxloss.mean_average_precision_at_r) or params[3] == "k"
        for reduction, shape in (("mean", ()), ("none", (3,))):
            with pytest.warns(DeprecationWarning, match=f"{fn.__name__}: `reduction` is deprecated"):
                got = jax.eval_shape(functools.partial(fn, reduction=reduction), idx, labels, labels)
            assert got.shape == shape
        assert jax.eval_shape(fn, idx, labels, labels).shape == (3,)  # per query by default
    # R = (2, 2, 1): r-precision (1/2, 1/2, 0), their mean over the queries with a relevant item
    with pytest.warns(DeprecationWarning, match="relevant_counts"):
        mean = jax.jit(functools.partial(jaxloss.r_precision, reduction="mean"))(idx, labels, labels)
    np.testing.assert_allclose(float(mean), 1 / 3, rtol=1e-12)


# --------------------------------------------------------------------------- ranking metrics over scored candidates

# name -> (jaxloss function, torchmetrics functional, graded relevance)
RANKING = {
    "reciprocal_rank": (jaxloss.reciprocal_rank, tm_retrieval.retrieval_reciprocal_rank, False),
    "average_precision": (jaxloss.average_precision, tm_retrieval.retrieval_average_precision, False),
    "normalized_dcg": (jaxloss.normalized_dcg, tm_retrieval.retrieval_normalized_dcg, True),
    "hit_rate": (jaxloss.hit_rate, tm_retrieval.retrieval_hit_rate, False),
}
RANKING_TOP_K = (None, 1, 3, 7, 10)  # 7 == M, 10 > M


def ranking_case(seed, shape, graded, *, ties=False, positive=True):
    """Scores exact in float32 (torchmetrics ranks float32 copies) and relevance per candidate.

    Row 0 of the flattened batch has nothing relevant, row 1 everything (when there are
    enough rows). ``ties``: scores on a grid of 5 levels; for binary relevance each level
    gets one relevance, so the torchmetrics value does not depend on its order of ties.
    """
    r = rng(seed)
    if ties:
        level = r.integers(0, 5, shape)
        scores = (level + 1.0) / 4.0 if positive else (level - 2.0) / 4.0
        if graded:
            relevance = r.integers(0, 4, shape)
        else:
            per_level = r.integers(0, 2, shape[:-1] + (5,))
            relevance = np.take_along_axis(per_level, level, axis=-1)
    else:
        scores = r.uniform(0.05, 1.0, shape) if positive else r.normal(size=shape)
        scores = scores.astype(np.float32).astype(np.float64)
        relevance = r.integers(0, 4 if graded else 2, shape)
    flat = relevance.reshape(-1, shape[-1])
    if flat.shape[0] >= 2 and not (ties and not graded):
        flat[0] = 0
        flat[1] = 1 if not graded else r.integers(1, 4, shape[-1])
    return scores, flat.reshape(shape)


def torchmetrics_rows(torch_fn, scores, relevance, top_k):
    """The torchmetrics functional called on each query row, reshaped to the leading axes."""
    m = scores.shape[-1]
    rows = [
        float(torch_fn(torch.tensor(s, dtype=torch.float32), torch.tensor(t), top_k=top_k))
        for s, t in zip(scores.reshape(-1, m), relevance.reshape(-1, m), strict=True)
    ]
    return np.asarray(rows).reshape(scores.shape[:-1])


def brute_force_ranking(name, scores, relevance, top_k, *, drop_nonpositive=False):
    """Per-row NumPy formulas; ties go to the lower index (a stable sort of -scores).

    ``drop_nonpositive`` applies torchmetrics' ``target = where(preds > 0, target, 0)``.
    """
    m = scores.shape[-1]
    k = m if top_k is None else min(top_k, m)
    out = []
    for s, t in zip(scores.reshape(-1, m), relevance.reshape(-1, m), strict=True):
        t = np.where(s > 0, t, 0) if drop_nonpositive else t
        ranked = (t[np.argsort(-s, kind="stable")] > 0)[:k]
        positions = np.flatnonzero(ranked) + 1
        if name == "reciprocal_rank":
            out.append(1.0 / positions[0] if positions.size else 0.0)
        elif name == "average_precision":
            out.append(np.mean(np.arange(1, positions.size + 1) / positions) if positions.size else 0.0)
        elif name == "hit_rate":
            out.append(float(positions.size > 0))
        else:
            raise ValueError(name)
    return np.asarray(out).reshape(scores.shape[:-1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", list(RANKING))
def test_ranking_metric_matches_torchmetrics(name, dtype, variant):
    """Each query row against torchmetrics 1.9, batched (2, 3, M), every top_k incl. > M."""
    fn, torch_fn, graded = RANKING[name]
    scores, relevance = ranking_case(0, (2, 3, 7), graded)
    assert np.all(relevance.reshape(-1, 7)[0] == 0) and np.all(relevance.reshape(-1, 7)[1] > 0)
    for top_k in RANKING_TOP_K:
        got = variant(fn, k=top_k)(jnp.asarray(scores, dtype), jnp.asarray(relevance))
        assert got.shape == (2, 3) and got.dtype == jnp.float64
        expected = torchmetrics_rows(torch_fn, scores, relevance, top_k)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-7, err_msg=str(top_k))
        assert float(got.reshape(-1)[0]) == 0.0  # nothing relevant
        if top_k is None and name != "normalized_dcg":
            assert float(got.reshape(-1)[1]) == 1.0  # everything relevant


@pytest.mark.parametrize("name", list(RANKING))
def test_ranking_metric_ties_match_torchmetrics(name):
    """Tied scores where torchmetrics is deterministic: nDCG's tie averaging (also for a tie
    group straddling rank k); for the binary metrics, ties between equally relevant items."""
    fn, torch_fn, graded = RANKING[name]
    scores, relevance = ranking_case(1, (6, 9), graded, ties=True)
    for top_k in (None, 1, 2, 4, 12):
        got = jax.jit(fn, static_argnames="k")(jnp.asarray(scores), jnp.asarray(relevance), k=top_k)
        expected = torchmetrics_rows(torch_fn, scores, relevance, top_k)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-7, err_msg=str(top_k))


def test_normalized_dcg_matches_sklearn_in_float64():
    """scikit-learn's ndcg_score (float64, the tie averaging torchmetrics translates), per row."""
    from sklearn.metrics import ndcg_score  # noqa: PLC0415

    scores, relevance = ranking_case(6, (8, 9), True, ties=True)
    scores = scores + rng(7).normal(size=scores.shape) * (rng(8).uniform(size=scores.shape) < 0.3)
    for top_k in (None, 1, 3, 12):
        got = jax.jit(jaxloss.normalized_dcg, static_argnames="k")(
            jnp.asarray(scores), jnp.asarray(relevance), k=top_k
        )
        expected = [ndcg_score([t], [s], k=top_k) for s, t in zip(scores, relevance, strict=True)]
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-12, atol=1e-15, err_msg=str(top_k))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reciprocal_rank", "average_precision", "hit_rate"])
def test_ranking_metric_ties_go_to_the_lower_index(name):
    """A relevant and an irrelevant candidate tied: the lower index is ranked first (torchmetrics'
    torch.topk / torch.argsort order of ties is unspecified, so NumPy is the reference)."""
    fn = RANKING[name][0]
    r = rng(2)
    scores = r.integers(0, 3, (40, 6)).astype(np.float64)
    relevance = r.integers(0, 2, (40, 6))
    for top_k in (None, 1, 3):
        got = jax.jit(fn, static_argnames="k")(jnp.asarray(scores), jnp.asarray(relevance), k=top_k)
        np.testing.assert_allclose(np.asarray(got), brute_force_ranking(name, scores, relevance, top_k))
    tie = jnp.zeros((2, 3))
    first_second = jnp.array([[False, True, False], [True, False, False]])
    expected = {"reciprocal_rank": [0.5, 1.0], "average_precision": [0.5, 1.0], "hit_rate": [1.0, 1.0]}[name]
    np.testing.assert_allclose(np.asarray(fn(tie, first_second)), expected)
    # -0.0 and 0.0 are the same score: the lower index first
    signed = jnp.array([[-0.0, 0.0, -1.0]])
    assert float(jaxloss.reciprocal_rank(signed, jnp.array([[1, 0, 0]]), k=1)[0]) == 1.0


@pytest.mark.parametrize("name", ["reciprocal_rank", "average_precision"])
def test_ranking_nonpositive_scores_count_unlike_torchmetrics(name):
    """torchmetrics' reciprocal rank and average precision set the relevance of candidates scored
    <= 0 to 0; jaxloss does not: its value is the NumPy formula on the ranking alone."""
    fn, torch_fn, _ = RANKING[name]
    scores, relevance = ranking_case(3, (12, 8), False, positive=False)
    assert np.any(scores <= 0) and np.any(scores > 0)
    differs = False
    for top_k in (None, 3):
        got = np.asarray(
            jax.jit(fn, static_argnames="k")(jnp.asarray(scores), jnp.asarray(relevance), k=top_k)
        )
        plain = brute_force_ranking(name, scores, relevance, top_k)
        np.testing.assert_allclose(got, plain, rtol=1e-12)
        # torchmetrics is exactly the same formula after its `preds > 0` filter
        filtered = brute_force_ranking(name, scores, relevance, top_k, drop_nonpositive=True)
        np.testing.assert_allclose(torchmetrics_rows(torch_fn, scores, relevance, top_k), filtered, rtol=1e-6)
        differs |= bool(np.any(np.abs(plain - filtered) > 1e-6))
    assert differs
    # shifting every score by a constant keeps the ranking, hence jaxloss's value
    np.testing.assert_allclose(
        np.asarray(fn(jnp.asarray(scores) + 10.0, relevance)), np.asarray(fn(scores, relevance))
    )


@pytest.mark.parametrize("name", ["normalized_dcg", "hit_rate"])
def test_ranking_nonpositive_scores_match_torchmetrics(name):
    """nDCG and the hit rate have no `preds > 0` filter in torchmetrics: any sign matches."""
    fn, torch_fn, graded = RANKING[name]
    scores, relevance = ranking_case(4, (10, 6), graded, positive=False)
    for top_k in (None, 2):
        got = jax.jit(fn, static_argnames="k")(jnp.asarray(scores), jnp.asarray(relevance), k=top_k)
        expected = torchmetrics_rows(torch_fn, scores, relevance, top_k)
        np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6, atol=1e-7)


_DTYPE_SCORES = jnp.array([[0.3, 0.9, 0.5, 0.1], [0.2, 0.4, 0.8, 0.6]])
_GRADED = np.array([[0, -1, 2, 3], [5, 0, -2, 1]])  # > 0 where the binary relevance is 1


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reciprocal_rank", "average_precision", "hit_rate"])
def test_ranking_relevance_dtypes(name):
    """bool, integer and float relevance; for the binary metrics `> 0` is relevant."""
    binary = np.array([[0, 0, 1, 1], [1, 0, 0, 1]])
    fn = jax.jit(RANKING[name][0], static_argnames="k")
    want = np.asarray(fn(_DTYPE_SCORES, binary))
    for rel in (binary.astype(bool), binary.astype(np.float32), _GRADED, _GRADED.astype(np.float64)):
        np.testing.assert_array_equal(np.asarray(fn(_DTYPE_SCORES, rel)), want, err_msg=name)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RANKING))
def test_ranking_half_precision_scores(name):
    """Half-precision scores are ranked in their own precision (these are exact in float16)."""
    fn = jax.jit(RANKING[name][0], static_argnames="k")
    want = np.asarray(fn(_DTYPE_SCORES, _GRADED, k=3))
    for dt in (jnp.float16, jnp.bfloat16):
        got = fn(jnp.asarray([[0.25, 1.0, 0.5, 0.125], [0.125, 0.375, 1.0, 0.75]], dt), _GRADED, k=3)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, err_msg=name)


def test_normalized_dcg_integer_and_float_gains_match_torchmetrics():
    scores = _DTYPE_SCORES
    gains = np.array([[0, 1, 2, 3], [3, 0, 1, 2]])
    for rel in (gains.astype(np.int8), gains.astype(np.float32)):
        np.testing.assert_allclose(
            np.asarray(jaxloss.normalized_dcg(scores, rel, k=2)),
            torchmetrics_rows(tm_retrieval.retrieval_normalized_dcg, np.asarray(scores), gains, 2),
            rtol=1e-6,
        )


@pytest.mark.parametrize("name", sorted(RANKING))
@pytest.mark.parametrize("top_k", [None, 2])
def test_ranking_gradients_are_zero_and_finite(name, top_k):
    """Piecewise constant in the scores: zero gradient (no NaN) at ties and without relevant items."""
    scores = jnp.array([[0.5, 0.5, 0.1, 0.0], [1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    relevance = jnp.array([[1.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    fn = RANKING[name][0]
    g_scores, g_rel = jax.jit(jax.grad(lambda s, r: jnp.sum(fn(s, r, k=top_k)), argnums=(0, 1)))(
        scores, relevance
    )
    assert bool(jnp.all(g_scores == 0)), (name, g_scores)
    assert bool(jnp.all(jnp.isfinite(g_rel))), (name, g_rel)
    if name != "normalized_dcg":
        assert bool(jnp.all(g_rel == 0)), (name, g_rel)


def test_normalized_dcg_gradient_in_gains_matches_finite_differences():
    """nDCG is a smooth ratio in float gains: its gradient is the finite-difference one."""
    gains = jnp.array([[0.5, 1.0, 2.0, 0.25, 3.0]])
    s = jnp.array([[0.1, 0.7, 0.3, 0.9, 0.5]])
    check_grads(jax.jit(lambda g: jaxloss.normalized_dcg(s, g, k=3)), (gains,), order=1, modes=["rev"])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RANKING))
def test_ranking_vmap_and_leading_axes(name):
    """(2, 3, M) equals the rows one at a time and jax.vmap over a leading axis."""
    scores, relevance = ranking_case(5, (2, 3, 6), True)
    fn = jax.jit(functools.partial(RANKING[name][0], k=4))
    batched = np.asarray(fn(scores, relevance))
    rows = np.array([[float(fn(scores[i, j], relevance[i, j])) for j in range(3)] for i in range(2)])
    np.testing.assert_allclose(batched, rows, rtol=1e-12, err_msg=name)
    mapped = jax.jit(jax.vmap(fn))(jnp.asarray(scores), jnp.asarray(relevance))
    np.testing.assert_allclose(np.asarray(mapped), batched, rtol=1e-12, err_msg=name)


def test_ranking_metric_errors():
    s, r = jnp.ones((2, 4)), jnp.ones((2, 4), jnp.int32)
    for fn in (jaxloss.reciprocal_rank, jaxloss.average_precision, jaxloss.normalized_dcg, jaxloss.hit_rate):
        with pytest.raises(ValueError, match="`scores` and `relevance` must have the same shape"):
            fn(s, r[:, :3])
        with pytest.raises(ValueError, match="`scores` needs at least one candidate"):
            fn(jnp.ones((2, 0)), jnp.ones((2, 0)))
        with pytest.raises(ValueError, match="`scores` must have at least 1 dimension"):
            fn(jnp.float32(1.0), jnp.int32(1))
        with pytest.raises(TypeError, match="`k` must be a positive int or None"):
            fn(s, r, k=2.0)
        with pytest.raises(TypeError, match="`k` must be a positive int or None"):
            fn(s, r, k=True)
        with pytest.raises(ValueError, match="`k` must be a positive int or None"):
            fn(s, r, k=0)
        # the deprecated name: the error names the keyword given
        with pytest.raises(TypeError, match="`top_k` must be a positive int or None"):
            with pytest.warns(DeprecationWarning, match="use `k`"):
                fn(s, r, top_k=2.0)
        with pytest.raises(TypeError, match="`top_k` must be a positive int or None"):
            with pytest.warns(DeprecationWarning, match="use `k`"):
                fn(s, r, top_k=True)
        with pytest.raises(ValueError, match="`top_k` must be a positive int or None"):
            with pytest.warns(DeprecationWarning, match="use `k`"):
                fn(s, r, top_k=0)
        with pytest.raises(TypeError, match="`scores` must have a floating dtype"):
            fn(r, r)
        with pytest.raises(TypeError, match="`relevance` must have a boolean, integer or floating dtype"):
            fn(s, r.astype(jnp.complex64))
