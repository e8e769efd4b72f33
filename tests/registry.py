"""A table of every public function of ``jaxloss`` and ``jaxloss.torch``, with valid inputs.

Used by the cross-cutting tests (``test_properties``, ``test_low_precision``,
``test_degenerate``, ``test_bad_input``). ``test_properties.test_registry_is_complete``
fails when a public name is added without an entry here.

Each :class:`Spec` has ``make(rng, n, dtype, d)``, returning the positional
arguments for a batch of ``n`` examples (``d`` features), and ``kw``, the
static keyword arguments (bound with ``functools.partial`` before ``jit``).
``batch`` gives, per positional argument, the axis that indexes examples (0)
or None (not batched: e.g. the database of ``knn``). ``kind`` says how the
output depends on the batch: ``"rows"`` (one output per example, on axis 0),
``"set"`` (a scalar over the whole batch, invariant under a permutation of
it) or ``"other"``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
import jaxloss.torch as jt
import jaxloss.torch.linalg as jtl

FLOATS = ("float16", "bfloat16", "float32", "float64")


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    fn: Callable
    make: Callable  # (rng, n, dtype, d) -> tuple of positional arguments
    kw: dict = dataclasses.field(default_factory=dict)
    diff: tuple = (0,)  # positional arguments that are differentiable (floating)
    batch: tuple | None = None  # per-argument example axis (0 or None); default: all 0
    kind: str = "rows"  # "rows" | "set" | "other"
    family: str = ""
    lowp: bool = True  # accepts float16 / bfloat16 inputs
    smooth: bool = True  # differentiable at generic points (check_grads)
    min_n: int = 0  # smallest meaningful batch
    translation: bool = False  # invariant under x -> x + c for every float argument
    shift: tuple = ()  # arguments that are logits (invariant under + 1e6)
    scale: tuple = ()  # arguments whose positive scaling leaves the value unchanged
    empty: float = 0.0  # the value of a "set" function on an empty batch
    generic: bool = True  # part of the generic value tests (False: see `note`)
    note: str = ""

    @property
    def call(self):
        return functools.partial(self.fn, **self.kw) if self.kw else self.fn

    def args(self, n=4, dtype="float64", d=3, seed=0):
        return self.make(np.random.default_rng(seed), n, dtype, d)

    def batch_axes(self, nargs):
        return self.batch if self.batch is not None else (0,) * nargs


# --------------------------------------------------------------------------- input generators


def _f(rng, shape, dtype, scale=1.0, loc=0.0):
    return jnp.asarray(rng.normal(loc, scale, size=shape), dtype=dtype)


def _prob(rng, shape, dtype):
    p = rng.uniform(0.1, 1.0, size=shape)
    return jnp.asarray(p / p.sum(-1, keepdims=True), dtype=dtype)


def _logprob(rng, shape, dtype):
    return jnp.log(_prob(rng, shape, "float64")).astype(dtype)


def _unit(rng, shape, dtype):
    return jnp.asarray(rng.uniform(0.05, 0.95, size=shape), dtype=dtype)


def _labels(rng, n, classes=2):
    # every class appears when n allows: positives and negatives exist for n >= 2 * classes
    base = np.arange(n) % classes
    return jnp.asarray(rng.permutation(base), dtype=jnp.int32)


def _sign(rng, shape, dtype):
    return jnp.asarray(rng.choice([-1.0, 1.0], size=shape), dtype=dtype)


def _x(rng, n, dtype, d):
    return (_f(rng, (n, d), dtype),)


def _xy(rng, n, dtype, d):
    return _f(rng, (n, d), dtype), _f(rng, (n, d), dtype)


def _xyz(rng, n, dtype, d):
    return _f(rng, (n, d), dtype), _f(rng, (n, d), dtype), _f(rng, (n, d), dtype)


def _mat(rng, n, dtype, d):
    return (_f(rng, (n, 3, 3), dtype),)


def _pq(rng, n, dtype, d):
    return _prob(rng, (n, d), dtype), _prob(rng, (n, d), dtype)


def _logp_q(rng, n, dtype, d):
    return _logprob(rng, (n, d), dtype), _prob(rng, (n, d), dtype)


def _logp_logq(rng, n, dtype, d):
    return _logprob(rng, (n, d), dtype), _logprob(rng, (n, d), dtype)


def _logits_probs(rng, n, dtype, d):
    return _f(rng, (n, d), dtype, 2.0), _prob(rng, (n, d), dtype)


def _logits_int(rng, n, dtype, d):
    return _f(rng, (n, d), dtype, 2.0), jnp.asarray(rng.integers(0, d, size=n), dtype=jnp.int32)


def _inputs_kernel_labels(rng, n, dtype, d, classes=5):
    """A linear layer's inputs (n, d), its kernel (d, classes) and integer labels (n,)."""
    labels = jnp.asarray(rng.integers(0, classes, size=n), dtype=jnp.int32)
    return _f(rng, (n, d), dtype), _f(rng, (d, classes), dtype, 0.5), labels


def _two_heads(rng, n, dtype, d, classes=5):
    """A student head (inputs (n, d), kernel (d, classes)) and a wider teacher head (d + 2)."""
    return (
        _f(rng, (n, d), dtype),
        _f(rng, (d, classes), dtype, 0.5),
        _f(rng, (n, d + 2), dtype),
        _f(rng, (d + 2, classes), dtype, 0.5),
    )


def _inputs_weight_target(rng, n, dtype, d, classes=5):
    """PyTorch's layout: input (n, d), linear_weight (classes, d), target (n,)."""
    x, kernel, labels = _inputs_kernel_labels(rng, n, dtype, d, classes)
    return x, kernel.T, labels


def _logprob_int(rng, n, dtype, d):
    return _logprob(rng, (n, d), dtype), jnp.asarray(rng.integers(0, d, size=n), dtype=jnp.int32)


def _logits_01(rng, n, dtype, d):
    return _f(rng, (n, d), dtype, 2.0), jnp.asarray(rng.integers(0, 2, size=(n, d)), dtype=dtype)


def _unit_01(rng, n, dtype, d):
    return _unit(rng, (n, d), dtype), jnp.asarray(rng.uniform(0, 1, size=(n, d)), dtype=dtype)


def _emb_labels(rng, n, dtype, d):
    return _f(rng, (n, d), dtype), _labels(rng, n)


def _pair_labels(rng, n, dtype, d):
    return (*_xy(rng, n, dtype, d), jnp.asarray(rng.integers(0, 2, size=n), dtype=jnp.int32))


def _pair_signs(rng, n, dtype, d):
    return (*_xy(rng, n, dtype, d), _sign(rng, (n,), dtype))


def _scalar_pair_signs(rng, n, dtype, d):
    return _f(rng, (n,), dtype), _f(rng, (n,), dtype), _sign(rng, (n,), dtype)


def _hinge(rng, n, dtype, d):
    return _f(rng, (n, d), dtype), _sign(rng, (n, d), dtype)


def _queries_db(rng, n, dtype, d):
    return _f(rng, (n, d), dtype), _f(rng, (6, d), dtype)


def _retrieval(rng, n, dtype, d):
    m = 8
    ref = jnp.asarray(np.arange(m) % 3, dtype=jnp.int32)
    nbrs = jnp.asarray(np.array([rng.permutation(m)[:4] for _ in range(n)]).reshape(n, 4), jnp.int32)
    return nbrs, jnp.asarray(rng.integers(0, 3, size=n), dtype=jnp.int32), ref


def _retrieval_labels(rng, n, dtype, d):
    return _retrieval(rng, n, dtype, d)[1:]


def _scored(rng, n, dtype, d, levels=2):
    return _f(rng, (n, d), dtype), jnp.asarray(rng.integers(0, levels, size=(n, d)), dtype=jnp.int32)


def _scored_graded(rng, n, dtype, d):
    return _scored(rng, n, dtype, d, levels=4)


def _queue_sizes(rng, n, dtype, d):
    return (5, d)


def _queue_batch(rng, n, dtype, d):
    queue = jaxloss.queue_init(5, d, dtype=dtype)
    return queue, _f(rng, (n, d), dtype), _labels(rng, n)


def _condensed(rng, n, dtype, d):
    k = max(n, 0)
    return (jnp.asarray(rng.uniform(0.5, 2.0, size=k * (k - 1) // 2), dtype=dtype),)


def _bits(rng, n, dtype, d):
    return (jnp.asarray(rng.integers(0, 2, size=(n, 16)), dtype=bool),)


def _words(rng, n, dtype, d):
    return (jaxloss.pack_bits(jnp.asarray(rng.integers(0, 2, size=(n, 16)), dtype=bool)),)


def _one_hot(rng, n, dtype, d):
    return (jax.nn.one_hot(rng.integers(0, d, size=n), d, dtype=dtype),)


def _hamming(rng, n, dtype, d):
    return _unit(rng, (n, d), dtype), jnp.asarray(rng.integers(0, 2, size=(n, d)), dtype=jnp.int32)


def _values(rng, n, dtype, d):
    return (_f(rng, (n,), dtype),)


def _label_only(rng, n, dtype, d):
    return (_labels(rng, n),)


def _sequence_logps(rng, n, dtype, d):
    """Policy and reference log-probabilities of n chosen and n rejected completions (summed)."""
    c, r = -rng.uniform(5, 30, n), -rng.uniform(5, 30, n)
    arrays = (c, r, c + rng.normal(0, 3, n), r + rng.normal(0, 3, n))
    return tuple(jnp.asarray(a, dtype) for a in arrays)


def _sequence_pairs(rng, n, dtype, d):
    return _sequence_logps(rng, n, dtype, d)[:2]


def _average_logps(rng, n, dtype, d):
    """Average per-token log-probabilities of n chosen and n rejected completions."""
    return tuple(jnp.asarray(-rng.uniform(0.2, 3.0, n), dtype) for _ in range(2))


def _unpaired_logps(rng, n, dtype, d):
    logps = -rng.uniform(5, 30, n)
    labels = jnp.asarray(np.arange(n) % 2 == 0)
    return jnp.asarray(logps, dtype), labels, jnp.asarray(logps + rng.normal(0, 3, n), dtype)


def _token_logps(rng, n, dtype, d):
    """GRPO: per-token log-probabilities (n, d), mask, advantages, old and reference log-probabilities."""
    lp = -rng.uniform(0.05, 4.0, (n, d))
    mask = jnp.asarray(rng.uniform(size=(n, d)) > 0.25)
    arrays = (lp, rng.normal(size=n), lp + rng.normal(0, 0.3, (n, d)), lp + rng.normal(0, 0.5, (n, d)))
    lp, adv, old, ref = (jnp.asarray(a, dtype) for a in arrays)
    return lp, mask, adv, old, ref


def _grpo_call(log_probs, mask, advantages, old_log_probs, ref_log_probs):
    return jaxloss.grpo_loss(
        log_probs, mask, advantages, old_log_probs=old_log_probs, ref_log_probs=ref_log_probs, beta=0.1
    )


def _preference_head(rng, n, dtype, d, classes=5, t=3):
    """A policy head (inputs (2P, t, d), kernel), labels (2P, t) with an ignored prompt token and a
    reference head; 2P = n rounded up to an even number (chosen rows first)."""
    rows = 2 * max((n + 1) // 2, 1)
    labels = rng.integers(0, classes, size=(rows, t))
    labels[:, 0] = -100
    return (
        _f(rng, (rows, t, d), dtype),
        _f(rng, (d, classes), dtype, 0.5),
        jnp.asarray(labels, jnp.int32),
        _f(rng, (rows, t, d), dtype),
        _f(rng, (d, classes), dtype, 0.5),
    )


def _linear_dpo_call(inputs, kernel, labels, ref_inputs, ref_kernel):
    return jaxloss.linear_preference_loss(
        inputs, kernel, labels, ref_inputs=ref_inputs, ref_kernel=ref_kernel, nll_weight=0.5,
        block_size=4, vocab_block_size=2,
    )  # fmt: skip


def _grpo_head(rng, n, dtype, d, classes=5, t=3):
    """GRPO on a head: inputs (n, t, d), kernel, sampled ids, a mask, advantages, old log-probabilities."""
    return (
        _f(rng, (n, t, d), dtype),
        _f(rng, (d, classes), dtype, 0.5),
        jnp.asarray(rng.integers(0, classes, size=(n, t)), jnp.int32),
        jnp.asarray(rng.uniform(size=(n, t)) > 0.25),
        _f(rng, (n,), dtype),
        jnp.asarray(-rng.uniform(0.5, 3.0, size=(n, t)), dtype),
    )


def _linear_grpo_call(inputs, kernel, ids, mask, advantages, old_log_probs):
    return jaxloss.linear_grpo_loss(
        inputs,
        kernel,
        ids,
        mask,
        advantages,
        old_log_probs=old_log_probs,
        loss_type="grpo",
        temperature=0.8,
    )  # fmt: skip  (the dense path: the tiled one is the preference entry's and the Liger tests')


def _check_inputs_call(logits, labels):
    return jaxloss.check_inputs(logits=logits, labels=labels, num_classes=logits.shape[-1])


@functools.cache
def _mesh():
    return jax.make_mesh((1,), ("data",), devices=jax.devices()[:1])


def _sharded_knn(queries, database, k):
    return jaxloss.sharded_knn(queries, database, k, mesh=_mesh())


# embedding-model training: hard negatives (B, 2, d); the guide of GIST is a batched argument


def _query_doc_negatives(rng, n, dtype, d):
    return _f(rng, (n, d), dtype), _f(rng, (n, d), dtype), _f(rng, (n, 2, d), dtype)


def _gist_inputs(rng, n, dtype, d):
    a, p, neg = _query_doc_negatives(rng, n, dtype, d)
    ga = _f(rng, (n, 4), dtype)
    return a, p, neg, ga, ga + _f(rng, (n, 4), dtype, 0.7), _f(rng, (n, 2, 4), dtype)


def _gist(anchors, positives, negatives, guide_anchors, guide_positives, guide_negatives, **kw):
    return jaxloss.gist_loss(
        anchors,
        positives,
        negatives,
        guide_anchors=guide_anchors,
        guide_positives=guide_positives,
        guide_negatives=guide_negatives,
        **kw,
    )


def _scored_pairs(rng, n, dtype, d):
    return _f(rng, (n, d), dtype), _f(rng, (n, d), dtype), jnp.asarray(rng.uniform(size=n), dtype=dtype)


def _nested_ranking(queries, documents, negatives):
    """MNRL over the full size and half of it, through the generic Matryoshka wrapper."""
    d = queries.shape[-1]
    return jaxloss.matryoshka_loss(
        jaxloss.multiple_negatives_ranking_loss,
        (queries, documents, negatives),
        dims=tuple(sorted({d, max(d // 2, 1)})),
        weights=None,
        scale=5.0,
    )


def _encoder_inputs(rng, n, dtype, d):
    return _f(rng, (d, d), dtype), _f(rng, (n, d), dtype)


def _tanh_layer(weights, inputs):
    """A one-layer encoder computing in float32 at least (half precision in, half out)."""
    dtype = jnp.promote_types(inputs.dtype, jnp.float32)
    return jnp.tanh(inputs.astype(dtype) @ weights.astype(dtype)).astype(inputs.dtype)


def _cached_tanh(weights, inputs):
    return jaxloss.cached_embeddings(_tanh_layer, weights, inputs, chunk_size=2)


# --------------------------------------------------------------------------- the table

S = Spec
CORE = [
    # norms
    S("vector_norm", jaxloss.vector_norm, _x, dict(axis=-1), family="norms", scale=()),
    S("matrix_norm", jaxloss.matrix_norm, _mat, family="norms"),
    S("norm", jaxloss.norm, _x, dict(axis=-1), family="norms"),
    S("nuclear_norm", jaxloss.nuclear_norm, _mat, family="norms"),
    S("frobenius_norm", jaxloss.frobenius_norm, _mat, family="norms"),
    S("spectral_norm", jaxloss.spectral_norm, _mat, family="norms"),
    # residual losses
    S("absolute_error", jaxloss.absolute_error, _xy, diff=(0, 1), family="residual", translation=True),
    S("huber_loss", jaxloss.huber_loss, _xy, diff=(0, 1), family="residual", translation=True),
    S("l2_loss", jaxloss.l2_loss, _xy, diff=(0, 1), family="residual", translation=True),
    S("smooth_l1_loss", jaxloss.smooth_l1_loss, _xy, diff=(0, 1), family="residual", translation=True),
    S("squared_error", jaxloss.squared_error, _xy, diff=(0, 1), family="residual", translation=True),
    S("reduce", jaxloss.reduce, _values, dict(reduction="mean"), kind="set", family="residual"),
    # binary codes
    S("pack_bits", jaxloss.pack_bits, _bits, diff=(), family="bits", lowp=False),
    S("unpack_bits", jaxloss.unpack_bits, _words, dict(num_bits=16), diff=(), family="bits", lowp=False),
    # distances
    S(
        "cdist",
        jaxloss.cdist,
        _queries_db,
        diff=(0, 1),
        batch=(0, None),
        family="distances",
        translation=True,
    ),
    S("pdist", jaxloss.pdist, _x, kind="other", family="distances", translation=True, min_n=2),
    S("pairwise_distance", jaxloss.pairwise_distance, _xy, diff=(0, 1), family="distances", translation=True),
    S("cosine_distance", jaxloss.cosine_distance, _xy, diff=(0, 1), family="distances", scale=(0, 1)),
    S("cosine_similarity", jaxloss.cosine_similarity, _xy, diff=(0, 1), family="distances", scale=(0, 1)),
    S("squareform", jaxloss.squareform, _condensed, kind="other", family="distances"),
    # search
    S(
        "knn",
        jaxloss.knn,
        _queries_db,
        dict(k=3),
        diff=(0, 1),
        batch=(0, None),
        family="search",
        translation=True,
    ),
    S(  # an infinite radius keeps the distances finite (no padding); counts exceed max_results
        "range_search",
        jaxloss.range_search,
        _queries_db,
        dict(radius=float("inf"), max_results=3),
        diff=(0, 1),
        batch=(0, None),
        family="search",
        translation=True,
    ),
    S(
        "sharded_knn",
        _sharded_knn,
        _queries_db,
        dict(k=3),
        diff=(0, 1),
        batch=(0, None),
        family="search",
        translation=True,
    ),
    S(
        "relevant_counts",
        jaxloss.relevant_counts,
        _retrieval_labels,
        diff=(),
        batch=(0, None),
        family="search",
        lowp=False,
    ),
    S(
        "precision_at_k",
        jaxloss.precision_at_k,
        _retrieval,
        diff=(),
        batch=(0, 0, None),
        kind="rows",  # one value per query
        family="search",
        lowp=False,
    ),
    S(
        "recall_at_k",
        jaxloss.recall_at_k,
        _retrieval,
        diff=(),
        batch=(0, 0, None),
        kind="rows",  # one value per query
        family="search",
        lowp=False,
    ),
    S(
        "r_precision",
        jaxloss.r_precision,
        _retrieval,
        diff=(),
        batch=(0, 0, None),
        kind="rows",  # one value per query
        family="search",
        lowp=False,
    ),
    S(
        "mean_average_precision_at_r",
        jaxloss.mean_average_precision_at_r,
        _retrieval,
        diff=(),
        batch=(0, 0, None),
        kind="rows",  # one value per query
        family="search",
        lowp=False,
    ),
    S(
        "reciprocal_rank",
        jaxloss.reciprocal_rank,
        _scored,
        dict(k=2),
        family="search",
        lowp=False,
        scale=(0,),
        shift=(0,),
    ),
    S(
        "average_precision",
        jaxloss.average_precision,
        _scored,
        dict(k=2),
        family="search",
        lowp=False,
        scale=(0,),
        shift=(0,),
    ),
    S(
        "normalized_dcg",
        jaxloss.normalized_dcg,
        _scored_graded,
        dict(k=2),
        family="search",
        lowp=False,
        scale=(0,),
        shift=(0,),
    ),
    S(
        "hit_rate",
        jaxloss.hit_rate,
        _scored,
        dict(k=2),
        family="search",
        lowp=False,
        scale=(0,),
        shift=(0,),
    ),
    # cross-batch memory
    S(
        "queue_init",
        jaxloss.queue_init,
        _queue_sizes,
        diff=(),
        kind="other",
        family="memory",
        generic=False,
        note="sizes in, an EmbeddingQueue pytree out: tests/test_queue.py",
    ),
    S(
        "queue_push",
        jaxloss.queue_push,
        _queue_batch,
        diff=(),
        batch=(None, 0, 0),
        kind="other",
        family="memory",
        generic=False,
        note="an EmbeddingQueue pytree in and out (gradients stopped): tests/test_queue.py",
    ),
    # divergences
    S("bhattacharyya_distance", jaxloss.bhattacharyya_distance, _pq, diff=(0, 1), family="divergences"),
    S("convex_kl_divergence", jaxloss.convex_kl_divergence, _logp_q, diff=(0, 1), family="divergences"),
    S("cross_entropy", jaxloss.cross_entropy, _pq, diff=(0, 1), family="divergences"),
    S("entropy", jaxloss.entropy, lambda r, n, t, d: (_prob(r, (n, d), t),), family="divergences"),
    S(
        "generalized_kl_divergence",
        jaxloss.generalized_kl_divergence,
        _logp_q,
        diff=(0, 1),
        family="divergences",
    ),
    S("hellinger_distance", jaxloss.hellinger_distance, _pq, diff=(0, 1), family="divergences"),
    S("jensen_shannon_distance", jaxloss.jensen_shannon_distance, _pq, diff=(0, 1), family="divergences"),
    S("js_divergence", jaxloss.js_divergence, _pq, diff=(0, 1), family="divergences"),
    S("kl_divergence", jaxloss.kl_divergence, _logp_q, diff=(0, 1), family="divergences"),
    S(
        "kl_divergence_with_log_targets",
        jaxloss.kl_divergence_with_log_targets,
        _logp_logq,
        diff=(0, 1),
        family="divergences",
    ),
    S("renyi_divergence", jaxloss.renyi_divergence, _pq, dict(alpha=0.5), diff=(0, 1), family="divergences"),
    S("symmetric_kl_divergence", jaxloss.symmetric_kl_divergence, _pq, diff=(0, 1), family="divergences"),
    S("total_variation_distance", jaxloss.total_variation_distance, _pq, diff=(0, 1), family="divergences"),
    # classification
    S("binary_cross_entropy", jaxloss.binary_cross_entropy, _unit_01, diff=(0, 1), family="classification"),
    S(
        "safe_softmax_cross_entropy",
        jaxloss.safe_softmax_cross_entropy,
        _logits_probs,
        diff=(0, 1),
        family="classification",
        shift=(0,),
    ),
    S(
        "sigmoid_binary_cross_entropy",
        jaxloss.sigmoid_binary_cross_entropy,
        _logits_01,
        family="classification",
    ),
    S("sigmoid_focal_loss", jaxloss.sigmoid_focal_loss, _logits_01, family="classification"),
    S("smooth_labels", jaxloss.smooth_labels, _one_hot, dict(alpha=0.1), family="classification"),
    S(
        "softmax_cross_entropy",
        jaxloss.softmax_cross_entropy,
        _logits_probs,
        diff=(0, 1),
        family="classification",
        shift=(0,),
    ),
    S(
        "softmax_cross_entropy_with_integer_labels",
        jaxloss.softmax_cross_entropy_with_integer_labels,
        _logits_int,
        family="classification",
        shift=(0,),
    ),
    S(
        "linear_softmax_cross_entropy",
        jaxloss.linear_softmax_cross_entropy,
        _inputs_kernel_labels,
        diff=(0, 1),
        batch=(0, None, 0),
        family="classification",
    ),
    # margin and proxy losses
    S(
        "arcface_loss",
        jaxloss.arcface_loss,
        _inputs_kernel_labels,
        dict(scale=4.0),
        diff=(0, 1),
        batch=(0, None, 0),
        family="margin",
        scale=(0,),
    ),
    S(
        "cosface_loss",
        jaxloss.cosface_loss,
        _inputs_kernel_labels,
        dict(scale=4.0),
        diff=(0, 1),
        batch=(0, None, 0),
        family="margin",
        scale=(0,),
    ),
    S(
        "proxy_anchor_loss",
        jaxloss.proxy_anchor_loss,
        _inputs_kernel_labels,
        dict(alpha=4.0),
        diff=(0, 1),
        batch=(0, None, 0),
        kind="set",
        family="margin",
        scale=(0,),
    ),
    S(
        "proxy_nca_loss",
        jaxloss.proxy_nca_loss,
        _inputs_kernel_labels,
        diff=(0, 1),
        batch=(0, None, 0),
        family="margin",
        scale=(0,),
    ),
    S(
        "multi_similarity_loss",
        jaxloss.multi_similarity_loss,
        _emb_labels,
        dict(beta=10.0),
        family="metric",
        scale=(0,),
    ),
    S(
        "circle_loss",
        jaxloss.circle_loss,
        _emb_labels,
        dict(gamma=8.0),
        family="metric",
        scale=(0,),
        smooth=False,
        note="circle loss detaches its pair weights (the paper, pytorch-metric-learning): its gradient "
        "is not the derivative of its value, so check_grads does not apply",
    ),
    S(
        "linear_distillation_loss",
        jaxloss.linear_distillation_loss,
        _two_heads,
        dict(divergence="jsd", temperature=2.0, block_size=3, vocab_block_size=2),
        diff=(0, 1),  # the teacher (arguments 2, 3) is a fixed target: zero cotangents
        batch=(0, None, 0, None),
        family="classification",
    ),
    S(
        "linear_softmax_statistics",
        jaxloss.linear_softmax_statistics,
        _inputs_kernel_labels,
        dict(temperature=0.5, block_size=3, vocab_block_size=2),
        diff=(0, 1),
        batch=(0, None, 0),
        family="classification",
    ),
    # LLM post-training (sequence and token log-probabilities)
    S(
        "dpo_loss",
        jaxloss.dpo_loss,
        _sequence_logps,
        dict(beta=0.3),
        diff=(0, 1, 2, 3),
        family="preference",
        translation=True,
    ),
    S(
        "simpo_loss",
        jaxloss.simpo_loss,
        _average_logps,
        dict(beta=2.0),
        diff=(0, 1),
        family="preference",
        translation=True,
    ),
    S(
        "cpo_loss",
        jaxloss.cpo_loss,
        _sequence_pairs,
        dict(beta=0.3),
        diff=(0, 1),
        family="preference",
        translation=True,
    ),
    S("orpo_loss", jaxloss.orpo_loss, _average_logps, diff=(0, 1), family="preference"),
    S(
        "kto_loss",
        jaxloss.kto_loss,
        _unpaired_logps,
        dict(beta=0.3, kl=0.5),
        diff=(0, 2),
        family="preference",
        translation=True,
    ),
    S(
        "grpo_loss",
        _grpo_call,
        _token_logps,
        diff=(0, 2, 3, 4),
        kind="set",
        family="preference",
    ),
    S(
        "linear_preference_loss",
        _linear_dpo_call,
        _preference_head,
        diff=(0, 1),  # the reference head (arguments 3, 4) has no gradient
        batch=(0, None, 0, 0, None),
        kind="other",  # chosen rows first, then rejected: not a per-row or permutation-invariant value
        family="preference",
        min_n=2,
    ),
    S(
        "linear_grpo_loss",
        _linear_grpo_call,
        _grpo_head,
        diff=(0, 1, 5),
        batch=(0, None, 0, 0, 0, 0),
        kind="set",
        family="preference",
    ),
    # metric learning
    S(
        "triplet_margin_loss",
        jaxloss.triplet_margin_loss,
        _xyz,
        diff=(0, 1, 2),
        family="metric",
        translation=True,
    ),
    S(
        "batch_all_triplet_loss",
        jaxloss.batch_all_triplet_loss,
        _emb_labels,
        kind="set",
        family="metric",
        translation=True,
    ),
    S(
        "batch_hard_triplet_loss",
        jaxloss.batch_hard_triplet_loss,
        _emb_labels,
        kind="set",
        family="metric",
        translation=True,
    ),
    S(
        "semi_hard_triplet_loss",
        jaxloss.semi_hard_triplet_loss,
        _emb_labels,
        kind="set",
        family="metric",
        translation=True,
    ),
    S(
        "lifted_structured_loss",
        jaxloss.lifted_structured_loss,
        _emb_labels,
        kind="set",
        family="metric",
        translation=True,
    ),
    S(
        "soft_nearest_neighbor_loss",
        jaxloss.soft_nearest_neighbor_loss,
        _emb_labels,
        kind="set",
        family="metric",
        translation=True,
    ),
    S("ntxent", jaxloss.ntxent, _emb_labels, dict(temperature=0.5), kind="set", family="metric", scale=(0,)),
    S(
        "supervised_contrastive_loss",
        jaxloss.supervised_contrastive_loss,
        _emb_labels,
        dict(temperature=0.5),
        kind="set",
        family="metric",
        scale=(0,),
    ),
    S(
        "info_nce",
        jaxloss.info_nce,
        _xy,
        dict(temperature=0.5),
        diff=(0, 1),
        kind="set",
        family="metric",
        scale=(0, 1),
    ),
    S("npair_loss", jaxloss.npair_loss, _xy, diff=(0, 1), kind="set", family="metric"),
    S(
        "clip_loss",
        jaxloss.clip_loss,
        _xy,
        dict(temperature=0.5),
        diff=(0, 1),
        kind="set",
        family="metric",
        scale=(0, 1),
    ),
    S(
        "sigmoid_contrastive_loss",
        jaxloss.sigmoid_contrastive_loss,
        _xy,
        dict(logit_scale=2.0, logit_bias=-1.0),
        diff=(0, 1),
        kind="set",
        family="metric",
        scale=(0, 1),
    ),
    S(
        "contrastive_loss",
        jaxloss.contrastive_loss,
        _pair_labels,
        diff=(0, 1),
        family="metric",
        translation=True,
    ),
    S(
        "cosine_embedding_loss",
        jaxloss.cosine_embedding_loss,
        _pair_signs,
        dict(margin=0.1),
        diff=(0, 1),
        family="metric",
        scale=(0, 1),
    ),
    S(
        "margin_ranking_loss",
        jaxloss.margin_ranking_loss,
        _scalar_pair_signs,
        dict(margin=0.1),
        diff=(0, 1),
        family="metric",
        translation=True,
    ),
    S("hinge_embedding_loss", jaxloss.hinge_embedding_loss, _hinge, family="metric"),
    # embedding-model training
    S(
        "multiple_negatives_ranking_loss",
        jaxloss.multiple_negatives_ranking_loss,
        _query_doc_negatives,
        dict(scale=5.0, directions=("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")),
        diff=(0, 1, 2),
        kind="set",
        family="metric",
        scale=(0, 1, 2),
    ),
    S(
        "gist_loss",
        _gist,
        _gist_inputs,
        dict(temperature=0.2, margin=0.05),
        diff=(0, 1, 2),
        kind="set",
        family="metric",
        scale=(0, 1, 2, 3, 4, 5),
    ),
    S(
        "cosent_loss",
        jaxloss.cosent_loss,
        _scored_pairs,
        dict(scale=5.0),
        diff=(0, 1),
        kind="set",
        family="metric",
        scale=(0, 1),
    ),
    S(
        "angle_loss",
        jaxloss.angle_loss,
        _scored_pairs,
        dict(scale=5.0),
        diff=(0, 1),
        kind="set",
        family="metric",
        scale=(0, 1),
    ),
    S(
        "matryoshka_loss",
        _nested_ranking,
        _query_doc_negatives,
        diff=(0, 1, 2),
        kind="set",
        family="metric",
        scale=(0, 1, 2),
    ),
    S(
        "cached_embeddings",
        _cached_tanh,
        _encoder_inputs,
        diff=(0, 1),
        batch=(None, 0),
        family="metric",
    ),
    S(
        "positive_mask",
        jaxloss.positive_mask,
        _label_only,
        diff=(),
        kind="other",
        family="metric",
        lowp=False,
    ),
    S(
        "negative_mask",
        jaxloss.negative_mask,
        _label_only,
        diff=(),
        kind="other",
        family="metric",
        lowp=False,
    ),
    S("triplet_mask", jaxloss.triplet_mask, _label_only, diff=(), kind="other", family="metric", lowp=False),
    # run-time validation
    S(
        "check_inputs",
        _check_inputs_call,
        _logits_int,
        diff=(),
        kind="other",
        family="validation",
        generic=False,
        note="returns None; eager ValueError / checkify under jit: tests/test_validation.py",
    ),
]

TORCH = [
    S("torch.norm", jt.norm, _x, dict(dim=-1), family="norms"),
    S("torch.linalg.norm", jtl.norm, _x, dict(dim=-1), family="norms"),
    S("torch.linalg.vector_norm", jtl.vector_norm, _x, dict(dim=-1), family="norms"),
    S("torch.linalg.matrix_norm", jtl.matrix_norm, _mat, family="norms"),
    S("torch.mse_loss", jt.mse_loss, _xy, diff=(0, 1), kind="set", family="residual", translation=True),
    S("torch.l1_loss", jt.l1_loss, _xy, diff=(0, 1), kind="set", family="residual", translation=True),
    S(
        "torch.smooth_l1_loss",
        jt.smooth_l1_loss,
        _xy,
        diff=(0, 1),
        kind="set",
        family="residual",
        translation=True,
    ),
    S("torch.huber_loss", jt.huber_loss, _xy, diff=(0, 1), kind="set", family="residual", translation=True),
    S(
        "torch.cdist",
        jt.cdist,
        _queries_db,
        diff=(0, 1),
        batch=(0, None),
        family="distances",
        translation=True,
    ),
    S("torch.pdist", jt.pdist, _x, kind="other", family="distances", translation=True, min_n=2),
    S(
        "torch.pairwise_distance",
        jt.pairwise_distance,
        _xy,
        diff=(0, 1),
        family="distances",
        translation=True,
    ),
    S("torch.cosine_similarity", jt.cosine_similarity, _xy, diff=(0, 1), family="distances", scale=(0, 1)),
    S(
        "torch.binary_hamming_distance",
        jt.binary_hamming_distance,
        _hamming,
        diff=(),
        kind="set",
        lowp=False,
        family="distances",
        smooth=False,
        empty=1.0,
    ),  # torchmetrics: 1 - accuracy, accuracy 0/0 = 0
    S(
        "torch.kl_div",
        jt.kl_div,
        _logp_q,
        dict(reduction="batchmean"),
        diff=(0, 1),
        kind="set",
        family="divergences",
    ),
    S("torch.cross_entropy", jt.cross_entropy, _logits_int, kind="set", family="classification", shift=(0,)),
    S("torch.nll_loss", jt.nll_loss, _logprob_int, kind="set", family="classification"),
    S(
        "torch.linear_cross_entropy",
        jt.linear_cross_entropy,
        _inputs_weight_target,
        diff=(0, 1),
        batch=(0, None, 0),
        kind="set",
        family="classification",
    ),
    S(
        "torch.binary_cross_entropy",
        jt.binary_cross_entropy,
        _unit_01,
        diff=(0, 1),
        kind="set",
        family="classification",
    ),
    S(
        "torch.binary_cross_entropy_with_logits",
        jt.binary_cross_entropy_with_logits,
        _logits_01,
        kind="set",
        family="classification",
    ),
    S(
        "torch.triplet_margin_loss",
        jt.triplet_margin_loss,
        _xyz,
        diff=(0, 1, 2),
        kind="set",
        family="metric",
        translation=True,
    ),
    S(
        "torch.triplet_margin_with_distance_loss",
        jt.triplet_margin_with_distance_loss,
        _xyz,
        diff=(0, 1, 2),
        kind="set",
        family="metric",
        translation=True,
    ),
    S(
        "torch.cosine_embedding_loss",
        jt.cosine_embedding_loss,
        _pair_signs,
        dict(margin=0.1),
        diff=(0, 1),
        kind="set",
        family="metric",
        scale=(0, 1),
    ),
    S(
        "torch.margin_ranking_loss",
        jt.margin_ranking_loss,
        _scalar_pair_signs,
        dict(margin=0.1),
        diff=(0, 1),
        kind="set",
        family="metric",
        translation=True,
    ),
    S("torch.hinge_embedding_loss", jt.hinge_embedding_loss, _hinge, kind="set", family="metric"),
]

SPECS = {s.name: s for s in CORE + TORCH}
GENERIC = [s for s in SPECS.values() if s.generic]
DIFFERENTIABLE = [s for s in GENERIC if s.diff and s.smooth]
LOW_PRECISION = [s for s in GENERIC if s.lowp]


def public_names() -> set[str]:
    """Every public function of ``jaxloss``, ``jaxloss.torch`` and ``jaxloss.torch.linalg``.

    Classes (result records such as ``LinearSoftmaxStatistics``) are not functions to test.
    """
    names = set()
    for prefix, module in (("", jaxloss), ("torch.", jt), ("torch.linalg.", jtl)):
        for name in module.__all__:
            obj = getattr(module, name)
            if callable(obj) and not isinstance(obj, (type(jaxloss), type)):
                names.add(prefix + name)
    return names


def ids(specs):
    return [s.name for s in specs]


def cast_args(args, dtype):
    """Casts the floating arguments to ``dtype`` (labels and indices unchanged)."""
    return tuple(a.astype(dtype) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a for a in args)


def leaves(out):
    return [jnp.asarray(o) for o in jax.tree_util.tree_leaves(out)]


def float_leaves(out):
    return [o for o in leaves(out) if jnp.issubdtype(o.dtype, jnp.floating)]
