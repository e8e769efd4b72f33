"""Embedding-model losses against sentence-transformers 6.2.0 (values and gradients of every input).

The references run on plain tensors: ``MultipleNegativesRankingLoss``,
``CoSENTLoss`` and ``AnglELoss`` through ``compute_loss_from_embeddings``;
``MatryoshkaLoss`` and ``GISTEmbedLoss`` through their ``forward`` with a stub
model (and guide) whose output is the given embeddings; ``CachedGISTEmbedLoss``
(several negative columns) through ``calculate_loss``. The fast loop runs one
jit-compiled comparison per function; the option sweeps, tiled == dense,
memory and multi-device checks are ``slow``.
"""

from __future__ import annotations

import functools
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import jaxloss
from tests.helpers import assert_matches_torch, rng, run_python

GTE = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
SYMMETRIC = ("query_to_doc", "doc_to_query")


@functools.cache
def _st():
    """sentence-transformers' loss classes (imported on first use: the import takes seconds)."""
    from sentence_transformers import util  # noqa: PLC0415
    from sentence_transformers.sentence_transformer import losses  # noqa: PLC0415

    return losses, util


class _Stub(torch.nn.Module):
    """A 'model' whose sentence embedding is the feature ``key`` it is given (and its embedding size)."""

    def __init__(self, key="e", dim=None):
        super().__init__()
        self.key, self.dim = key, dim

    def forward(self, features):
        return {"sentence_embedding": features[self.key]}

    def get_embedding_dimension(self):
        return self.dim


def _columns(q, d, n):
    return [q, d] + [n[:, j] for j in range(n.shape[1])]


def _data(seed, b=7, n=2, d=6):
    r = rng(seed)
    q = r.normal(size=(b, d))
    return q, q + r.normal(size=(b, d)), r.normal(size=(b, n, d))


# --------------------------------------------------------------------------- multiple negatives ranking


def _dtypes(cases, *case):
    """float32 and float64 for the fast case of a sweep, float64 for the others (one compilation)."""
    return ("float32", "float64") if tuple(cases[0][: len(case)]) == case else ("float64",)


# (hard negatives, options, block_size): the first runs in the fast loop (jit, float32 and float64)
MNRL_CASES = [
    (2, dict(directions=GTE, hardness_mode="all_negatives", hardness_strength=3.0), None),
    (0, {}, None),
    (1, dict(similarity="dot", scale=0.5), None),
    (2, dict(directions=SYMMETRIC, partition_mode="per_direction"), None),
    (2, dict(directions=SYMMETRIC, hardness_mode="in_batch_negatives", hardness_strength=9.0), None),
    (2, dict(directions=("query_to_doc", "query_to_query", "doc_to_doc"), hardness_mode="hard_negatives",
             hardness_strength=5.0), None),
    (2, dict(directions=GTE, similarity="dot", scale=0.3, hardness_mode="hard_negatives", hardness_strength=1.0), 3),
    (2, dict(directions=SYMMETRIC, partition_mode="per_direction", hardness_mode="all_negatives",
             hardness_strength=2.0), 4),
]  # fmt: skip


def _mnrl_reference(n, options):
    losses, util = _st()
    options = dict(options)
    similarity = util.dot_score if options.pop("similarity", "cosine") == "dot" else util.cos_sim
    loss = losses.MultipleNegativesRankingLoss(None, similarity_fct=similarity, **options)
    return lambda q, d, neg: loss.compute_loss_from_embeddings(_columns(q, d, neg[:, :n]), None)


@pytest.mark.parametrize("n, options, block_size", MNRL_CASES)
def test_multiple_negatives_ranking_loss_matches_sentence_transformers(n, options, block_size):
    q, d, neg = _data(1, n=max(n, 1))

    def fn(q, d, neg):
        negatives = neg[:, :n] if n else None
        return jaxloss.multiple_negatives_ranking_loss(q, d, negatives, block_size=block_size, **options)

    assert_matches_torch(fn, _mnrl_reference(n, options), q, d, neg, dtypes=_dtypes(MNRL_CASES, n, options))


# (sizes, weights, options, block_size)
MATRYOSHKA_CASES = [
    ((6, 3), (1.0, 0.5), {}, None),
    ((6, 4, 2), None, dict(directions=GTE), None),
    (
        (5, 4, 1),
        (0.3, 1.0, 1.0),
        dict(similarity="dot", hardness_mode="all_negatives", hardness_strength=2.0),
        3,
    ),
    ((2, 6, 4), (1.0, 2.0, 3.0), dict(directions=SYMMETRIC, partition_mode="per_direction"), 2),
]


@pytest.mark.parametrize("sizes, weights, options, block_size", MATRYOSHKA_CASES)
def test_fused_matryoshka_matches_sentence_transformers(sizes, weights, options, block_size):
    """One pass over every nested size equals MatryoshkaLoss(MultipleNegativesRankingLoss)."""
    losses, util = _st()
    q, d, neg = _data(2, n=2)
    options = dict(options)
    similarity = options.pop("similarity", "cosine")

    def reference(q, d, neg):
        model = _Stub(dim=q.shape[-1])
        fct = util.dot_score if similarity == "dot" else util.cos_sim
        inner = losses.MultipleNegativesRankingLoss(model, scale=10.0, similarity_fct=fct, **options)
        loss = losses.MatryoshkaLoss(model, inner, list(sizes), None if weights is None else list(weights))
        return loss([{"e": e} for e in _columns(q, d, neg)], None)

    def fused(q, d, neg):
        return jaxloss.multiple_negatives_ranking_loss(
            q,
            d,
            neg,
            scale=10.0,
            similarity=similarity,
            matryoshka_dims=sizes,
            matryoshka_weights=weights,
            block_size=block_size,
            **options,
        )

    assert_matches_torch(fused, reference, q, d, neg, dtypes=_dtypes(MATRYOSHKA_CASES, sizes))


@pytest.mark.parametrize("inner", ["cosent", "mnrl"])
def test_matryoshka_loss_wraps_any_loss(inner):
    """The generic wrapper (one call per size) equals MatryoshkaLoss around CoSENT and MNRL."""
    losses, _ = _st()
    q, d, neg = _data(3, n=1)
    scores = rng(4).uniform(size=q.shape[0])
    sizes, weights = ((6, 3), (1.0, 0.25)) if inner == "cosent" else ((6, 4, 2), (1.0, 0.5, 0.25))

    def reference(q, d, neg, scores):
        model = _Stub(dim=q.shape[-1])
        if inner == "cosent":
            loss = losses.MatryoshkaLoss(model, losses.CoSENTLoss(model, scale=5.0), sizes, weights)
            return loss([{"e": q}, {"e": d}], scores)
        loss = losses.MatryoshkaLoss(model, losses.MultipleNegativesRankingLoss(model), sizes, weights)
        return loss([{"e": e} for e in _columns(q, d, neg)], None)

    def wrapped(q, d, neg, scores):
        if inner == "cosent":
            return jaxloss.matryoshka_loss(
                jaxloss.cosent_loss, (q, d), scores, dims=sizes, weights=weights, scale=5.0
            )
        return jaxloss.matryoshka_loss(
            jaxloss.multiple_negatives_ranking_loss, (q, d, neg), dims=sizes, weights=weights
        )

    assert_matches_torch(wrapped, reference, q, d, neg, scores, argnums=(0, 1, 2))


# --------------------------------------------------------------------------- GISTEmbed

# (hard negative columns, options, block_size)
GIST_CASES = [
    (1, dict(margin=0.05), None),
    (0, {}, None),
    (2, dict(margin_strategy="relative", margin=0.3), None),
    (0, dict(margin=-0.2, temperature=0.1), None),
    (2, dict(margin=0.1, temperature=0.05), 3),
    (1, dict(contrast_anchors=False, contrast_positives=False), 2),
]


def _gist_loss_object(cls, options):
    """A sentence-transformers GIST loss around stub models (its constructor wants tokenizers)."""
    loss = cls.__new__(cls)
    torch.nn.Module.__init__(loss)
    loss.model, loss.guide = _Stub("e"), _Stub("g")
    loss.similarity_fct = torch.nn.CosineSimilarity(dim=-1)
    loss.cross_entropy_loss = torch.nn.CrossEntropyLoss()
    loss.must_retokenize, loss.gather_across_devices = False, False
    loss.mini_batch_size, loss.show_progress_bar = 3, False
    defaults = dict(temperature=0.01, margin_strategy="absolute", margin=0.0)
    for key, value in {**defaults, "contrast_anchors": True, "contrast_positives": True, **options}.items():
        setattr(loss, key, value)
    return loss


def _gist_data(seed, n, b=8, d=6, g=5):
    r = rng(seed)
    a, p, neg = r.normal(size=(b, d)), r.normal(size=(b, d)), r.normal(size=(b, max(n, 1), d))
    ga = r.normal(size=(b, g))
    gp = ga + 0.6 * r.normal(size=(b, g))  # the guide sees each pair as close, and some in-batch pairs closer
    gn = ga[:, None] + 0.8 * r.normal(size=(b, max(n, 1), g))
    return (a, p, neg), (ga, gp, gn)


@pytest.mark.parametrize("n, options, block_size", GIST_CASES)
def test_gist_loss_matches_sentence_transformers(n, options, block_size):
    losses, _ = _st()
    (a, p, neg), (ga, gp, gn) = _gist_data(5, n)
    guide = [torch.tensor(x) for x in _columns(ga, gp, gn[:, :n])]

    def reference(a, p, neg):
        model = _columns(a, p, neg[:, :n])
        if n <= 1:  # GISTEmbedLoss.forward on (anchor, positive[, negative]) columns
            loss = _gist_loss_object(losses.GISTEmbedLoss, options)
            features = [{"e": m, "g": gd.to(m.dtype)} for m, gd in zip(model, guide, strict=True)]
            return loss(features, None)
        loss = _gist_loss_object(losses.CachedGISTEmbedLoss, options)  # several negative columns
        return loss.calculate_loss(
            [[m] for m in model], [[gd.to(m.dtype)] for m, gd in zip(model, guide, strict=True)]
        )

    def fn(a, p, neg):
        kw = dict(guide_negatives=jnp.asarray(gn[:, :n], a.dtype)) if n else {}
        return jaxloss.gist_loss(
            a,
            p,
            neg[:, :n] if n else None,
            guide_anchors=jnp.asarray(ga, a.dtype),
            guide_positives=jnp.asarray(gp, a.dtype),
            block_size=block_size,
            **kw,
            **options,
        )

    assert_matches_torch(fn, reference, a, p, neg, dtypes=_dtypes(GIST_CASES, n, options))


@pytest.mark.slow
def test_gist_masks_false_negatives():
    """A margin that makes every guide similarity exceed the threshold leaves only the positive: loss 0."""
    (a, p, neg), (ga, gp, gn) = _gist_data(6, 1)
    fn = jax.jit(jax.value_and_grad(lambda a, p, n: jaxloss.gist_loss(
        a, p, n, guide_anchors=ga, guide_positives=gp, guide_negatives=gn, margin=2.5), argnums=(0, 1, 2)))  # fmt: skip
    value, grads = fn(a, p, neg)
    assert abs(float(value)) < 1e-14
    assert all(float(jnp.max(jnp.abs(g))) < 1e-14 for g in grads)


# --------------------------------------------------------------------------- CoSENT and AnglE


def _scored_pairs(dim, labels):
    r = rng(7)
    x, y = r.normal(size=(9, dim)), r.normal(size=(9, dim))
    scores = {
        "float": r.uniform(size=9),
        "levels": r.integers(0, 3, size=9).astype(np.float64),  # ties: equal scores are not compared
        "bool": r.integers(0, 2, size=9).astype(bool),
    }[labels]
    return x, y, scores


SCORED = [(6, "levels"), (7, "float"), (6, "bool")]


@pytest.mark.parametrize("dim, labels", SCORED)
def test_cosent_loss_matches_sentence_transformers(dim, labels):
    losses, _ = _st()
    loss = losses.CoSENTLoss(None, scale=15.0)
    fn = functools.partial(jaxloss.cosent_loss, scale=15.0)
    reference = lambda x, y, s: loss.compute_loss_from_embeddings([x, y], s)  # noqa: E731
    assert_matches_torch(fn, reference, *_scored_pairs(dim, labels), argnums=(0, 1))


@pytest.mark.parametrize("dim, labels", SCORED)
def test_angle_loss_matches_sentence_transformers(dim, labels):
    losses, _ = _st()
    loss = losses.AnglELoss(None, scale=15.0)
    fn = functools.partial(jaxloss.angle_loss, scale=15.0)
    reference = lambda x, y, s: loss.compute_loss_from_embeddings([x, y], s)  # noqa: E731
    assert_matches_torch(fn, reference, *_scored_pairs(dim, labels), argnums=(0, 1))


# --------------------------------------------------------------------------- tiled == dense


@pytest.mark.slow
@pytest.mark.parametrize("block_size", [3, 16])
@pytest.mark.parametrize(
    "options",
    [
        dict(directions=GTE, hardness_mode="all_negatives", hardness_strength=2.0),
        dict(directions=SYMMETRIC, partition_mode="per_direction", matryoshka_dims=(6, 4, 2)),
    ],
)
def test_tiled_multiple_negatives_ranking_loss_equals_dense(options, block_size):
    q, d, neg = (jnp.asarray(a) for a in _data(8, b=11, n=2))
    scale = jnp.asarray(9.0)

    def vg(block):
        loss = lambda q, d, neg, t: jaxloss.multiple_negatives_ranking_loss(  # noqa: E731
            q, d, neg, scale=t, block_size=block, **options
        )
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))(q, d, neg, scale)

    (v0, g0), (v1, g1) = vg(None), vg(block_size)
    np.testing.assert_allclose(v1, v0, rtol=1e-12)
    for a, b in zip(g1, g0, strict=True):  # the embeddings and the traced scale
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("block_size", [2, 5])
def test_tiled_gist_loss_equals_dense(block_size):
    (a, p, neg), (ga, gp, gn) = _gist_data(9, 2, b=9)

    def vg(block):
        loss = lambda a, p, n, t: jaxloss.gist_loss(  # noqa: E731
            a, p, n, guide_anchors=ga, guide_positives=gp, guide_negatives=gn, temperature=t,
            margin=0.05, block_size=block)  # fmt: skip
        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))(a, p, neg, 0.05)

    (v0, g0), (v1, g1) = vg(None), vg(block_size)
    np.testing.assert_allclose(v1, v0, rtol=1e-12)
    for x, y in zip(g1, g0, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- properties


@pytest.mark.slow
@pytest.mark.parametrize("dtype, factors", [("float32", (1e-30, 1e30)), ("float64", (1e-300, 1e300))])
def test_cosines_are_scale_free(dtype, factors):
    """Scaling the embeddings (and each row by its own factor) leaves the cosine losses unchanged."""
    q, d, neg = (np.asarray(a, dtype) for a in _data(10, n=2))
    scores = rng(11).uniform(size=q.shape[0])

    @jax.jit
    def losses(q, d, neg):
        return jnp.stack(
            [
                jaxloss.multiple_negatives_ranking_loss(q, d, neg, matryoshka_dims=(6, 3), directions=GTE),
                jaxloss.gist_loss(q, d, neg, guide_anchors=q, guide_positives=d, guide_negatives=neg),
                jaxloss.cosent_loss(q, d, scores),
                jaxloss.angle_loss(q, d, scores),
            ]
        )

    base = losses(q, d, neg)
    for f in factors:
        per_row = np.asarray(f * rng(12).uniform(0.5, 2.0, size=(q.shape[0], 1)), dtype)
        got = losses(q * per_row, d * f, neg * f)
        # float32: cosines round at 6e-8, GIST's logits (T = 0.01) at 1e-5
        np.testing.assert_allclose(
            got, base, **(dict(rtol=1e-5, atol=3e-5) if dtype == "float32" else dict(rtol=1e-12))
        )
        grads = jax.grad(lambda *x: jnp.sum(losses(*x)), argnums=(0, 1, 2))(q * per_row, d * f, neg * f)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


@pytest.mark.slow
def test_zero_embeddings_have_zero_similarity_and_finite_gradients():
    """A zero embedding normalises to zero (sentence-transformers' value) with a zero gradient."""
    q, d, neg = _data(13, n=1)
    q[2], d[4], neg[1, 0] = 0.0, 0.0, 0.0
    fn = jax.jit(jax.value_and_grad(lambda q, d, n: jaxloss.multiple_negatives_ranking_loss(
        q, d, n, directions=GTE, matryoshka_dims=(6, 2)), argnums=(0, 1, 2)))  # fmt: skip
    value, grads = fn(q, d, neg)
    losses, util = _st()
    model = _Stub(dim=6)
    reference = losses.MatryoshkaLoss(
        model, losses.MultipleNegativesRankingLoss(model, directions=GTE), [6, 2]
    )
    expected = reference([{"e": torch.tensor(e)} for e in _columns(q, d, neg)], None)
    np.testing.assert_allclose(value, expected.item(), rtol=1e-12)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)
    assert float(jnp.max(jnp.abs(grads[0][2]))) == 0.0


@pytest.mark.slow
def test_traced_scale_and_strength_are_differentiable():
    q, d, neg = _data(14, n=2)
    options = dict(hardness_mode="in_batch_negatives")

    def loss(t, s):
        return jaxloss.multiple_negatives_ranking_loss(q, d, neg, scale=t, hardness_strength=s, **options)

    gt, gs = jax.jit(jax.grad(loss, argnums=(0, 1)))(8.0, 2.0)
    eps = 1e-6
    np.testing.assert_allclose(gt, (loss(8.0 + eps, 2.0) - loss(8.0 - eps, 2.0)) / (2 * eps), rtol=1e-6)
    np.testing.assert_allclose(gs, (loss(8.0, 2.0 + eps) - loss(8.0, 2.0 - eps)) / (2 * eps), rtol=1e-6)


@pytest.mark.slow
def test_half_precision_in_half_precision_out():
    q, d, neg = (jnp.asarray(a, jnp.bfloat16) for a in _data(15, n=2))
    for bs in (None, 3):
        v = jaxloss.multiple_negatives_ranking_loss(q, d, neg, block_size=bs, matryoshka_dims=(6, 3))
        assert v.dtype == jnp.bfloat16
        ref = jaxloss.multiple_negatives_ranking_loss(
            *(a.astype(jnp.float32) for a in (q, d, neg)), matryoshka_dims=(6, 3)
        )
        np.testing.assert_allclose(float(v), float(ref), rtol=2e-2)


@pytest.mark.slow
def test_empty_batch_is_zero():
    e, n = jnp.zeros((0, 4)), jnp.zeros((0, 2, 4))
    assert float(jaxloss.multiple_negatives_ranking_loss(e, e, n, directions=GTE)) == 0.0
    assert float(jaxloss.gist_loss(e, e, n, guide_anchors=e, guide_positives=e, guide_negatives=n)) == 0.0
    assert float(jaxloss.cosent_loss(e, e, jnp.zeros(0))) == 0.0


# --------------------------------------------------------------------------- gradient cache


def _mlp(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"]


def _mlp_params(r, din, hidden, dout, dtype="float64"):
    return {
        "w1": jnp.asarray(r.normal(size=(din, hidden)) / np.sqrt(din), dtype),
        "b1": jnp.asarray(r.normal(size=hidden), dtype),
        "w2": jnp.asarray(r.normal(size=(hidden, dout)) / np.sqrt(hidden), dtype),
    }


@pytest.mark.parametrize("chunk_size", [3, 1, 5, 10, 64])
def test_cached_embeddings_equal_the_uncached_step(chunk_size):
    """Values and gradients (parameters and float inputs) equal the uncached step; 10 rows in chunks of
    3 leave a final chunk of 1."""
    r = rng(16)
    params = _mlp_params(r, 5, 12, 4)
    xq, xd = jnp.asarray(r.normal(size=(10, 5))), jnp.asarray(r.normal(size=(10, 5)))

    def step(encode):
        def loss(params, xq, xd):
            return jaxloss.multiple_negatives_ranking_loss(
                encode(params, xq), encode(params, xd), directions=GTE
            )

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2)))(params, xq, xd)

    cached = functools.partial(jaxloss.cached_embeddings, _mlp, chunk_size=chunk_size)
    (v0, g0), (v1, g1) = step(_mlp), step(cached)
    np.testing.assert_allclose(v1, v0, rtol=1e-13)
    for a, b in zip(jax.tree_util.tree_leaves(g1), jax.tree_util.tree_leaves(g0), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.slow
def test_cached_embeddings_take_pytrees_and_integer_inputs():
    """Token ids (integers, no gradient) and a dict of inputs; a pytree of outputs."""
    r = rng(17)
    table = jnp.asarray(r.normal(size=(20, 6)))
    tokens = jnp.asarray(r.integers(0, 20, size=(9, 4)), jnp.int32)
    weights = jnp.asarray(r.uniform(size=(9, 4)))

    def encode(table, inputs):
        e = jnp.einsum("bt,btd->bd", inputs["w"], table[inputs["ids"]])
        return {"mean": e, "norm": jnp.sum(e * e, axis=-1)}

    def loss(encode_fn, table, weights):
        out = encode_fn(table, {"ids": tokens, "w": weights})
        return jnp.sum(out["mean"] ** 3) + jnp.sum(jnp.sin(out["norm"]))

    cached = functools.partial(jaxloss.cached_embeddings, encode, chunk_size=4)
    (v0, g0), (v1, g1) = (jax.value_and_grad(functools.partial(loss, f), argnums=(0, 1))(table, weights)
                          for f in (encode, cached))  # fmt: skip
    np.testing.assert_allclose(v1, v0, rtol=1e-13)
    for a, b in zip(g1, g0, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.slow
def test_cached_embeddings_hold_one_chunk_of_activations():
    """An MLP with a wide hidden layer: value+grad temporaries below 1/4 of the uncached step's."""
    b, din, hidden, dout = 256, 16, 4096, 16
    params = {
        "w1": jax.ShapeDtypeStruct((din, hidden), jnp.float32),
        "b1": jax.ShapeDtypeStruct((hidden,), jnp.float32),
        "w2": jax.ShapeDtypeStruct((hidden, dout), jnp.float32),
    }
    x = jax.ShapeDtypeStruct((b, din), jnp.float32)

    def temp(encode):
        loss = lambda p, xq, xd: jaxloss.multiple_negatives_ranking_loss(encode(p, xq), encode(p, xd))  # noqa: E731
        compiled = jax.jit(jax.value_and_grad(loss)).lower(params, x, x).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    uncached = temp(_mlp)
    cached = temp(functools.partial(jaxloss.cached_embeddings, _mlp, chunk_size=32))
    assert cached < uncached / 4, (cached, uncached)


# --------------------------------------------------------------------------- memory


@pytest.mark.slow
@pytest.mark.parametrize("directions, fraction", [(("query_to_doc",), 10), (GTE, 6)])
def test_tiled_memory_is_a_fraction_of_one_score_matrix(directions, fraction):
    """B = 8192, one hard negative, d = 256, float32, block_size=1024: value+grad temporaries below
    1/10 of one B x 2B float32 matrix (1/6 with the four GTE directions)."""
    b, d = 8192, 256
    e = jax.ShapeDtypeStruct((b, d), jnp.float32)
    n = jax.ShapeDtypeStruct((b, 1, d), jnp.float32)
    loss = lambda q, x, y: jaxloss.multiple_negatives_ranking_loss(  # noqa: E731
        q, x, y, directions=directions, block_size=1024
    )
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2))).lower(e, e, n).compile()
    one_matrix = b * 2 * b * 4
    temp = compiled.memory_analysis().temp_size_in_bytes
    assert temp < one_matrix / fraction, one_matrix / temp


# --------------------------------------------------------------------------- across devices

_SHARDED = textwrap.dedent(
    """
    import functools
    import numpy as np, jax, jax.numpy as jnp
    from jax.sharding import Mesh, PartitionSpec as P
    import jaxloss
    jax.config.update("jax_enable_x64", True)
    assert jax.device_count() == 4
    r = np.random.default_rng(0)
    n, d, g = 12, 6, 5  # 3 rows per device
    q, k, neg = r.normal(size=(n, d)), r.normal(size=(n, d)), r.normal(size=(n, 2, d))
    ga, gp, gn = r.normal(size=(n, g)), r.normal(size=(n, g)), r.normal(size=(n, 2, g))
    gp = ga + 0.6 * gp
    mesh = Mesh(np.array(jax.devices()), ("d",))
    GTE = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
    losses = {
        "mnrl": lambda q, k, neg, t, gd, bs, ax: jaxloss.multiple_negatives_ranking_loss(
            q, k, neg, scale=t, block_size=bs, axis_name=ax),
        "mnrl_gte": lambda q, k, neg, t, gd, bs, ax: jaxloss.multiple_negatives_ranking_loss(
            q, k, neg, scale=t, directions=GTE, hardness_mode="all_negatives", hardness_strength=2.0,
            block_size=bs, axis_name=ax),
        "mnrl_matryoshka": lambda q, k, neg, t, gd, bs, ax: jaxloss.multiple_negatives_ranking_loss(
            q, k, neg, scale=t, directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction",
            matryoshka_dims=(6, 3), block_size=bs, axis_name=ax),
        "gist": lambda q, k, neg, t, gd, bs, ax: jaxloss.gist_loss(
            q, k, neg, guide_anchors=gd[0], guide_positives=gd[1], guide_negatives=gd[2], temperature=1 / t,
            margin=0.05, block_size=bs, axis_name=ax),
    }
    t = jnp.asarray(9.0)
    gd = (ga, gp, gn)
    names = list(losses)

    # every loss in one compiled function per configuration (fewer compilations, same comparisons)
    def every_loss(bs, ax):
        return lambda q, k, neg, t, gd: {n: jax.value_and_grad(losses[n], argnums=(0, 1, 2, 3))(
            q, k, neg, t, gd, bs, ax) for n in names}

    reference = jax.jit(every_loss(None, None))(q, k, neg, t, gd)  # the whole batch on one device
    for bs in (None, 2):  # the all-gather; the ring with ragged tiles of 2, 1
        vgs = {n: jax.value_and_grad(jax.shard_map(functools.partial(losses[n], bs=bs, ax="d"),
            mesh=mesh, in_specs=(P("d"), P("d"), P("d"), P(), P("d")), out_specs=P()), argnums=(0, 1, 2, 3))
            for n in names}
        for name in names:  # each loss's own program: the ring xor the all-gather
            jaxpr = str(jax.make_jaxpr(vgs[name])(q, k, neg, t, gd))
            assert ("ppermute" in jaxpr) == (bs is not None) and ("all_gather" in jaxpr) == (bs is None), name
        vg = jax.jit(lambda *a: {n: vgs[n](*a) for n in names})
        got = vg(q, k, neg, t, gd)
        for name in names:
            (v1, g1), (v0, g0) = got[name], reference[name]
            np.testing.assert_allclose(v1, v0, rtol=1e-13)
            for a, b in zip(g1, g0):
                np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)
    local = lambda q, k, neg, gd: {n: jax.value_and_grad(losses[n], argnums=(0, 1, 2))(q, k, neg, t, gd, 2, "d")
                                   for n in names}
    split = lambda a: a.reshape(4, 3, *a.shape[1:])
    got = jax.pmap(local, axis_name="d")(split(q), split(k), split(neg), tuple(map(split, gd)))
    for name in names:
        (v2, g2), (v0, g0) = got[name], reference[name]
        np.testing.assert_allclose(v2, np.full(4, v0), rtol=1e-13)
        for a, b in zip(g2, g0[:3]):
            np.testing.assert_allclose(np.asarray(a).reshape(b.shape), b, rtol=1e-11, atol=1e-13)
        print(name, "ok")
    """
)


@pytest.mark.slow
def test_four_devices_equal_one_device():
    """shard_map (all-gather and ring) and pmap over 4 forced CPU devices == the whole batch on one."""
    assert run_python(_SHARDED, devices=4, timeout=900).count(" ok") == 4
