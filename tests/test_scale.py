"""Scale: normalised functions are scale-free; norms, distances and triplet losses are finite
wherever their result is representable (the sentence on finite values in README.md).

* ``test_scale_free``: every normalised function (cosines, correlation, the default
  ``seuclidean`` / ``mahalanobis``, canberra / Bray-Curtis / Jensen-Shannon, the contrastive,
  margin and proxy losses, cosine mining) gives the same value on inputs multiplied by ``c``
  from ``1e-30`` to ``1e30`` (float32) and ``1e-300`` to ``1e300`` (float64), with finite
  gradients and ``c grad(c x) == grad(x)``; functions with a scipy reference are compared with
  it at every scale.
* ``test_magnitudes``: norms, distances and the triplet family are homogeneous of degree ``k``:
  at every scale each value equals ``c^k`` times its numpy / scipy / PyTorch reference (computed
  in float64 on the inputs divided by a power of two near ``c``: exact), finite wherever that
  value is representable, with finite gradients equal to ``c^(k-1)`` times the unit-scale ones.
* ``jaxloss.torch.cosine_similarity`` follows PyTorch's ``eps`` clamp at every scale.

A case groups the functions that share inputs into one jit-compiled value-and-gradient program
per dtype (compilation is the cost: about 1.5 s of CPU per program), evaluated at every scale.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.spatial.distance as ssd
import torch
import torch.nn.functional as F

import jaxloss
import jaxloss.torch as jt
from tests.registry import SPECS

SCALES = {
    "float32": (1e-30, 1e-20, 1e-10, 1e-4, 1e10, 1e20, 1e30),
    "float64": (1e-300, 1e-150, 1e-30, 1e30, 1e150, 1e300),
}
#: Relative tolerance of values against the unit scale or the reference (gradients: 10x).
RTOL = {"float32": 2e-4, "float64": 1e-9}


@dataclasses.dataclass(frozen=True)
class Case:
    """Functions of the same inputs: ``fns`` maps a name to ``f(*args)``.

    ``make(rng)`` returns float64 numpy inputs; the arguments in ``scaled`` are multiplied by
    ``c`` (and differentiated); every function is homogeneous of degree ``degree`` in them;
    ``references`` maps a name to a float64 numpy / scipy / PyTorch function of the inputs
    (the others are compared with their own unit-scale value).
    """

    name: str
    fns: dict
    make: Callable
    scaled: tuple = (0,)
    degree: int = 0
    references: dict = dataclasses.field(default_factory=dict)
    grad_rtol: dict = dataclasses.field(default_factory=dict)  # per dtype, overrides 10 x RTOL


def _normal(*shape):
    return lambda rng: (rng.normal(size=shape),)


def _pair(n, m, d):
    return lambda rng: (rng.normal(size=(n, d)), rng.normal(size=(m, d)))


def _rows_and_sets(rng):
    """Row-matched pairs ``(5, 4)``, a Gram-sized pair ``(64, 65)`` x ``(64, 65)`` (n m d above
    the direct path's 2^18) and a small set ``(6, 4)``."""
    return (
        *(rng.normal(size=(5, 4)) for _ in range(2)),
        *(rng.normal(size=(64, 65)) for _ in range(2)),
        rng.normal(size=(6, 4)),
    )


def _positive_pair(rng):
    return rng.uniform(0.1, 2.0, size=(5, 4)), rng.uniform(0.1, 2.0, size=(6, 4))


LABELS = jnp.array([0, 0, 1, 1, 2, 2, 0, 1, 3, 3])
CLASSES = jnp.array([0, 1, 2, 3, 4, 5, 0, 1, 2, 3])


def _batch_queries_keys(rng):
    return tuple(rng.normal(size=(10, 6)) for _ in range(3))


def _embeddings_classes(rng):
    return rng.normal(size=(10, 6)), rng.normal(size=(6, 8))


def _cdist_ref(metric, **kw):
    return lambda x, y: ssd.cdist(x, y, metric, **kw)


def _rowwise_cosine_similarity(a, b):
    return 1 - np.array([ssd.cosine(u, v) for u, v in zip(a, b, strict=True)])


# --------------------------------------------------------------------------- normalised functions

SCALE_FREE = [
    Case(
        "ratios",  # the gradients of these ratios at 1e-30 (float32) never form den^2
        {
            "cdist_canberra": lambda x, y: jaxloss.cdist(x, y, "canberra"),
            "cdist_braycurtis": lambda x, y: jaxloss.cdist(x, y, "braycurtis"),
            "cdist_jensenshannon": lambda x, y: jaxloss.cdist(x, y, "jensenshannon"),
        },
        _positive_pair,
        (0, 1),
        references={
            "cdist_canberra": _cdist_ref("canberra"),
            "cdist_braycurtis": _cdist_ref("braycurtis"),
            "cdist_jensenshannon": _cdist_ref("jensenshannon"),
        },
    ),
    Case(
        "cosines",
        {
            "cosine_similarity": lambda a, b, x, y, z: jaxloss.cosine_similarity(a, b),
            "cosine_distance": lambda a, b, x, y, z: jaxloss.cosine_distance(a, b),
            "pairwise_distance_cosine": lambda a, b, x, y, z: jaxloss.pairwise_distance(a, b, "cosine"),
            "cdist_cosine": lambda a, b, x, y, z: jaxloss.cdist(x, y, "cosine"),
            "pdist_correlation": lambda a, b, x, y, z: jaxloss.pdist(z, "correlation"),
        },
        _rows_and_sets,
        (0, 1, 2, 3, 4),
        references={
            "cosine_similarity": lambda a, b, x, y, z: _rowwise_cosine_similarity(a, b),
            "cdist_cosine": lambda a, b, x, y, z: ssd.cdist(x, y, "cosine"),
            "pdist_correlation": lambda a, b, x, y, z: ssd.pdist(z, "correlation"),
        },
    ),
    Case(
        "estimated_metrics",  # V / VI estimated from the scaled data: scale-free
        {
            "cdist_seuclidean": lambda x, y: jaxloss.cdist(x, y, "seuclidean"),
            "cdist_mahalanobis": lambda x, y: jaxloss.cdist(x, y, "mahalanobis"),
        },
        _pair(6, 7, 3),
        (0, 1),
        references={
            "cdist_seuclidean": _cdist_ref("seuclidean"),
            "cdist_mahalanobis": _cdist_ref("mahalanobis"),
        },
    ),
    Case(
        "contrastive",
        {
            "supervised_contrastive_loss": lambda x, q, k: jaxloss.supervised_contrastive_loss(x, LABELS),
            "ntxent": lambda x, q, k: jaxloss.ntxent(x, LABELS, 0.5),
            "info_nce": lambda x, q, k: jaxloss.info_nce(q, k),
            "clip_loss": lambda x, q, k: jaxloss.clip_loss(q, k),
            "sigmoid_contrastive_loss": lambda x, q, k: jaxloss.sigmoid_contrastive_loss(q, k),
        },
        _batch_queries_keys,
        (0, 1, 2),
    ),
    Case(
        "contrastive_tiled",
        {
            "supervised_contrastive_loss": lambda x, q, k: jaxloss.supervised_contrastive_loss(
                x, LABELS, block_size=4
            ),
            "clip_loss": lambda x, q, k: jaxloss.clip_loss(q, k, block_size=4),
        },
        _batch_queries_keys,
        (0, 1, 2),
    ),
    Case(
        "margin",
        {
            "arcface_loss": lambda e, w: jaxloss.arcface_loss(e, w, CLASSES, scale=8.0),
            "cosface_loss": lambda e, w: jaxloss.cosface_loss(e, w, CLASSES, scale=8.0),
            "proxy_anchor_loss": lambda e, w: jaxloss.proxy_anchor_loss(e, w, CLASSES, alpha=8.0),
            "proxy_nca_loss": lambda e, w: jaxloss.proxy_nca_loss(e, w, CLASSES),
        },
        _embeddings_classes,
        (0, 1),
    ),
    Case(
        "margin_blocked",
        {
            "arcface_loss": lambda e, w: jaxloss.arcface_loss(
                e, w, CLASSES, scale=8.0, block_size=4, class_block_size=3
            )
        },
        _embeddings_classes,
        (0, 1),
    ),
    Case(
        "embedding",  # sentence-transformers-style losses: cosine similarity of prefix-normalised rows
        {
            "multiple_negatives_ranking_loss": lambda q, d, n, t: jaxloss.multiple_negatives_ranking_loss(
                q, d, n, directions=("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
            ),
            "gist_loss": lambda q, d, n, t: jaxloss.gist_loss(
                q, d, n, guide_anchors=q, guide_positives=d, guide_negatives=n
            ),
            "cosent_loss": lambda q, d, n, t: jaxloss.cosent_loss(q, d, t),
            "angle_loss": lambda q, d, n, t: jaxloss.angle_loss(q, d, t),
            "matryoshka_loss": lambda q, d, n, t: jaxloss.matryoshka_loss(
                jaxloss.multiple_negatives_ranking_loss, (q, d, n), dims=(6, 3), weights=None, scale=5.0
            ),
        },
        lambda rng: (
            *(rng.normal(size=(10, 6)) for _ in range(2)),
            rng.normal(size=(10, 2, 6)),
            rng.uniform(size=10),
        ),
        (0, 1, 2),
        # float64 x1e300: the negatives' inverse norms (~1e-300) meet their cotangents near the
        # subnormal range: gradients within 5e-8 of the maximum (values within 1e-15)
        grad_rtol={"float64": 2e-7},
    ),
    Case(
        "cosine_mining",
        {
            "multi_similarity_loss": lambda x: jaxloss.multi_similarity_loss(x, LABELS, beta=10.0),
            "circle_loss": lambda x: jaxloss.circle_loss(x, LABELS, gamma=8.0),
            "batch_hard_triplet_loss": lambda x: jaxloss.batch_hard_triplet_loss(x, LABELS, metric="cosine"),
            "batch_all_triplet_loss": lambda x: jaxloss.batch_all_triplet_loss(x, LABELS, metric="cosine"),
            "semi_hard_triplet_loss": lambda x: jaxloss.semi_hard_triplet_loss(x, LABELS, metric="cosine"),
        },
        lambda rng: (rng.normal(size=(10, 6)),),
    ),
]

#: Registry functions marked scale-invariant that the sweep leaves out, and why.
NOT_SWEPT = {
    "reciprocal_rank": "ranks of scores, no norm (test_properties.test_positive_scale)",
    "average_precision": "ranks of scores, no norm (test_properties.test_positive_scale)",
    "normalized_dcg": "ranks of scores, no norm (test_properties.test_positive_scale)",
    "hit_rate": "ranks of scores, no norm (test_properties.test_positive_scale)",
    "cosine_embedding_loss": "PyTorch's formula adds 1e-12 to the squared norms: not scale-free below ~1e-6",
    "torch.cosine_embedding_loss": "PyTorch's formula adds 1e-12 to the squared norms: not scale-free below ~1e-6",
    "torch.cosine_similarity": "PyTorch's eps clamp: test_torch_cosine_similarity_follows_pytorch_at_every_scale",
}


def test_every_scale_invariant_function_is_swept():
    swept = {name for case in SCALE_FREE for name in case.fns}
    for spec in SPECS.values():
        if spec.scale:
            assert spec.name in swept or spec.name in NOT_SWEPT, spec.name


# --------------------------------------------------------------------------- homogeneous functions


def _vector_norm_ref(order):
    return lambda x, m: np.linalg.norm(x, order, axis=-1)


def _triplets(rng):
    return tuple(rng.normal(size=(10, 6)) for _ in range(3))


def _distance_inputs(rng):
    """Row-matched pairs ``(5, 4)``, a direct-path pair ``(5, 4)`` x ``(6, 4)`` and Gram-sized sets."""
    return (
        rng.normal(size=(5, 4)),
        rng.normal(size=(5, 4)),
        rng.normal(size=(6, 4)),
        rng.normal(size=(64, 65)),
        rng.normal(size=(64, 65)),
        rng.normal(size=(66, 64)),
    )


MAGNITUDES = [
    Case(
        "squared",  # finite wherever the squares are representable
        {
            "cdist_sqeuclidean": lambda a, p, n: jaxloss.cdist(a, p, "sqeuclidean"),
            "triplet_margin_loss": lambda a, p, n: jaxloss.triplet_margin_loss(
                a, p, n, margin=0.0, eps=0.0, squared=True
            ),
            "batch_hard_triplet_loss": lambda a, p, n: jaxloss.batch_hard_triplet_loss(
                a, LABELS, margin=0.0, squared=True
            ),
        },
        _triplets,
        (0, 1, 2),
        2,
        {
            "cdist_sqeuclidean": lambda a, p, n: ssd.cdist(a, p, "sqeuclidean"),
            "triplet_margin_loss": lambda a, p, n: np.maximum(
                np.sum((a - p) ** 2, -1) - np.sum((a - n) ** 2, -1), 0
            ),
        },
    ),
    Case(
        "norms",
        {
            "vector_norm_2": lambda x, m: jaxloss.vector_norm(x, axis=-1),
            "vector_norm_3": lambda x, m: jaxloss.vector_norm(x, 3, axis=-1),
            "vector_norm_0.5": lambda x, m: jaxloss.vector_norm(x, 0.5, axis=-1),
            "vector_norm_-2": lambda x, m: jaxloss.vector_norm(x, -2, axis=-1),
            "vector_norm_inf": lambda x, m: jaxloss.vector_norm(x, math.inf, axis=-1),
            "norm": lambda x, m: jaxloss.norm(x),
            "matrix_norm_fro": lambda x, m: jaxloss.matrix_norm(m),
            "matrix_norm_nuc": lambda x, m: jaxloss.matrix_norm(m, "nuc"),
            "torch.linalg.vector_norm": lambda x, m: jt.linalg.vector_norm(x, dim=-1),
        },
        lambda rng: (rng.normal(size=(5, 4)), rng.normal(size=(2, 4, 3))),
        (0, 1),
        1,
        {
            "vector_norm_2": _vector_norm_ref(2),
            "vector_norm_3": _vector_norm_ref(3),
            "vector_norm_0.5": _vector_norm_ref(0.5),
            "vector_norm_-2": _vector_norm_ref(-2),
            "vector_norm_inf": _vector_norm_ref(math.inf),
            "norm": lambda x, m: np.linalg.norm(x),
            "matrix_norm_fro": lambda x, m: np.linalg.norm(m, "fro", axis=(-2, -1)),
            "matrix_norm_nuc": lambda x, m: np.linalg.norm(m, "nuc", axis=(-2, -1)),
            "torch.linalg.vector_norm": lambda x, m: torch.linalg.vector_norm(
                torch.tensor(x), dim=-1
            ).numpy(),
        },
    ),
    Case(
        "distances",
        {
            "pairwise_distance": lambda a, b, y, g, k, h: jaxloss.pairwise_distance(a, b),
            "torch.pairwise_distance": lambda a, b, y, g, k, h: jt.pairwise_distance(a, b, eps=0.0),
            "cdist_euclidean": lambda a, b, y, g, k, h: jaxloss.cdist(a, y),
            "cdist_minkowski_3": lambda a, b, y, g, k, h: jaxloss.cdist(a, y, "minkowski", p=3),
            "cdist_chebyshev": lambda a, b, y, g, k, h: jaxloss.cdist(a, y, "chebyshev"),
            "torch.cdist": lambda a, b, y, g, k, h: jt.cdist(a, y),
            "cdist_euclidean_gram": lambda a, b, y, g, k, h: jaxloss.cdist(g, k),
            "pdist_euclidean_gram": lambda a, b, y, g, k, h: jaxloss.pdist(h),
        },
        _distance_inputs,
        (0, 1, 2, 3, 4, 5),
        1,
        {
            "pairwise_distance": lambda a, b, y, g, k, h: np.linalg.norm(a - b, axis=-1),
            "torch.pairwise_distance": lambda a, b, y, g, k, h: F.pairwise_distance(
                torch.tensor(a), torch.tensor(b), eps=0.0
            ).numpy(),
            "cdist_euclidean": lambda a, b, y, g, k, h: ssd.cdist(a, y),
            "cdist_minkowski_3": lambda a, b, y, g, k, h: ssd.cdist(a, y, "minkowski", p=3),
            "cdist_chebyshev": lambda a, b, y, g, k, h: ssd.cdist(a, y, "chebyshev"),
            "torch.cdist": lambda a, b, y, g, k, h: torch.cdist(torch.tensor(a), torch.tensor(y)).numpy(),
            "cdist_euclidean_gram": lambda a, b, y, g, k, h: ssd.cdist(g, k),
            "pdist_euclidean_gram": lambda a, b, y, g, k, h: ssd.pdist(h),
        },
    ),
    Case(
        "triplets",  # margin 0: homogeneous of degree 1
        {
            "triplet_margin_loss": lambda a, p, n: jaxloss.triplet_margin_loss(a, p, n, margin=0.0, eps=0.0),
            "batch_hard_triplet_loss": lambda a, p, n: jaxloss.batch_hard_triplet_loss(a, LABELS, margin=0.0),
            "batch_all_triplet_loss": lambda a, p, n: jaxloss.batch_all_triplet_loss(a, LABELS, margin=0.0),
            "semi_hard_triplet_loss": lambda a, p, n: jaxloss.semi_hard_triplet_loss(a, LABELS, margin=0.0),
        },
        _triplets,
        (0, 1, 2),
        1,
        {
            "triplet_margin_loss": lambda a, p, n: np.maximum(
                np.linalg.norm(a - p, axis=-1) - np.linalg.norm(a - n, axis=-1), 0
            )
        },
    ),
]


# --------------------------------------------------------------------------- the sweep


def _program(case, args, dtype):
    """jit(value_and_grad) of a fixed weighted sum of every output, with the outputs as aux."""
    shapes = jax.eval_shape(lambda *a: {k: f(*a) for k, f in case.fns.items()}, *args)
    rng = np.random.default_rng(1)
    weights = {k: jnp.asarray(rng.uniform(0.5, 1.5, size=v.shape), dtype) for k, v in shapes.items()}

    def scalar(*xs):
        full = list(args)
        for i, x in zip(case.scaled, xs, strict=True):
            full[i] = x
        outs = {k: f(*full) for k, f in case.fns.items()}
        return sum(jnp.sum(outs[k] * weights[k]) for k in outs), outs

    grad = jax.value_and_grad(scalar, argnums=tuple(range(len(case.scaled))), has_aux=True)
    # Compiled once and run at every scale; LLVM's optimisation level does not change the HLO
    # numerics checked here and costs a third of the compilation.
    return jax.jit(grad, compiler_options={"xla_backend_optimization_level": 0})


def _representable(values, e, dtype):
    """Where ``values * 2^e`` is finite in ``dtype`` and 0 or well above its smallest normal."""
    info = np.finfo(dtype)
    with np.errstate(divide="ignore"):
        log2 = np.log2(np.abs(values)) + e
    return (log2 < math.log2(float(info.max)) - 1) & (
        (values == 0) | (log2 > math.log2(float(info.tiny)) + 24)
    )


def _sweep(case, dtype):
    args = case.make(np.random.default_rng(0))
    program = _program(case, [jnp.asarray(a, dtype) for a in args], dtype)
    rtol = RTOL[dtype]
    (_, outs1), grads1 = program(*[jnp.asarray(args[i], dtype) for i in case.scaled])
    for c in SCALES[dtype]:
        e = round(math.log2(c))
        q = 2.0**e  # a power of two near c: x c / q is exact in float64
        with np.errstate(over="ignore", under="ignore"):
            inputs = [np.asarray(a * c if i in case.scaled else a, dtype) for i, a in enumerate(args)]
        (_, outs), grads = program(*[jnp.asarray(inputs[i]) for i in case.scaled])
        unit = [np.asarray(a, np.float64) / q if i in case.scaled else a for i, a in enumerate(inputs)]
        all_representable = True
        for name, out in outs.items():
            where = f"{case.name}/{name} {dtype} x{c:g}"
            # the expected output is values * 2^(k e), never formed (it may leave float64's range)
            if name in case.references:
                values = np.asarray(case.references[name](*unit), np.float64)
            else:
                values = np.asarray(outs1[name], np.float64) * (c / q) ** case.degree
            ok = _representable(values, case.degree * e, dtype)
            all_representable &= bool(np.all(ok))
            out = np.asarray(out, np.float64)
            assert np.all(np.isfinite(out[ok])), where
            np.testing.assert_allclose(
                np.ldexp(out, -case.degree * e)[ok],
                values[ok],
                rtol=rtol,
                atol=rtol * float(np.max(np.abs(values), initial=0)),
                err_msg=where,
            )
        if not all_representable:
            continue  # a value beyond the range (a squared distance): its gradient is not required
        for i, (g, g1) in enumerate(zip(grads, grads1, strict=True)):
            where = f"{case.name} {dtype} x{c:g}: gradient of argument {case.scaled[i]}"
            g, g1 = np.asarray(g, np.float64), np.asarray(g1, np.float64)
            assert np.all(np.isfinite(g)), where
            grad_rtol = case.grad_rtol.get(dtype, 10 * rtol)
            atol = grad_rtol * float(np.max(np.abs(g1)))  # c^(1-k) grad(c x) = grad(x)
            np.testing.assert_allclose(
                g * c ** (1 - case.degree), g1, rtol=grad_rtol, atol=atol, err_msg=where
            )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", SCALE_FREE, ids=[c.name for c in SCALE_FREE])
def test_scale_free(case, dtype):
    _sweep(case, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", MAGNITUDES, ids=[c.name for c in MAGNITUDES])
def test_magnitudes(case, dtype):
    _sweep(case, dtype)


# --------------------------------------------------------------------------- PyTorch's eps, scipy's NaN


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torch_cosine_similarity_follows_pytorch_at_every_scale(dtype):
    """PyTorch's ``x / max(|x|, eps)`` at every scale: below a norm of ``eps`` the clamp (not a
    cosine), above it the cosine, up to the largest float. The reference is PyTorch in float64;
    above scale 1 on the inputs and ``eps`` divided by a power of two near the scale (the same
    value, exactly), since PyTorch's own norms overflow above ~1e19 in float32."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(5, 4)), rng.normal(size=(5, 4))
    eps = 1e-8
    w = jnp.asarray(rng.uniform(0.5, 1.5, size=5), dtype)
    program = jax.jit(
        jax.value_and_grad(
            lambda a, b: jnp.sum(jt.cosine_similarity(a, b, dim=-1, eps=eps) * w), argnums=(0, 1)
        )
    )
    rtol = RTOL[dtype]
    for c in (1.0, *SCALES[dtype]):
        q = 2.0 ** round(math.log2(c)) if c > 1 else 1.0
        a, b = (np.asarray(v * c, dtype) for v in (x, y))
        value, grads = program(jnp.asarray(a), jnp.asarray(b))
        ta, tb = (torch.tensor(np.asarray(v, np.float64) / q, requires_grad=True) for v in (a, b))
        ref = torch.sum(
            F.cosine_similarity(ta, tb, dim=-1, eps=eps / q) * torch.tensor(np.asarray(w, np.float64))
        )
        ref_grads = torch.autograd.grad(ref, (ta, tb))
        np.testing.assert_allclose(float(value), ref.item(), rtol=rtol, atol=rtol, err_msg=f"{dtype} x{c:g}")
        for g, r in zip(grads, ref_grads, strict=True):
            r = r.numpy() / q  # d/dx f(x / q) = f'(x / q) / q
            g = np.asarray(g, np.float64)
            assert np.all(np.isfinite(g)), f"{dtype} x{c:g}"
            np.testing.assert_allclose(
                g, r, rtol=10 * rtol, atol=10 * rtol * np.max(np.abs(r)), err_msg=f"{dtype} x{c:g}"
            )


def test_seuclidean_with_a_zero_variance_is_nan_everywhere_as_scipy():
    """A constant feature has variance 0: scipy's ``(u - v)^2 / V`` is 0 / 0 for every pair."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    x[:, 1] = y[:, 1] = 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = ssd.cdist(x, y, "seuclidean")
        expected_pdist = ssd.pdist(x, "seuclidean")
    assert np.all(np.isnan(expected)) and np.all(np.isnan(expected_pdist))
    np.testing.assert_array_equal(np.isnan(jaxloss.cdist(x, y, "seuclidean")), np.isnan(expected))
    np.testing.assert_array_equal(np.isnan(jaxloss.pdist(x, "seuclidean")), np.isnan(expected_pdist))
    assert np.all(np.isnan(jaxloss.pairwise_distance(x[:4], y, "seuclidean")))
