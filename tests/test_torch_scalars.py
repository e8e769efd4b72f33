"""``jaxloss.torch`` on 0-d tensors: PyTorch reads a scalar's dim 0 / -1 as its only element."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import jaxloss.torch as jt
from tests.helpers import assert_matches_torch

SCALARS = [np.array(-3.0), np.array(0.5), np.array(0.0)]

NORMS = [
    ("linalg.vector_norm dim=0", lambda m, x: m.linalg.vector_norm(x, dim=0)),
    ("linalg.vector_norm dim=-1", lambda m, x: m.linalg.vector_norm(x, dim=-1)),
    ("linalg.vector_norm dim=(0,)", lambda m, x: m.linalg.vector_norm(x, dim=(0,))),
    ("linalg.vector_norm ord=3 keepdim", lambda m, x: m.linalg.vector_norm(x, 3, dim=0, keepdim=True)),
    ("linalg.vector_norm ord=inf", lambda m, x: m.linalg.vector_norm(x, math.inf, dim=-1)),
    ("linalg.norm dim=0", lambda m, x: m.linalg.norm(x, dim=0)),
    ("linalg.norm ord=1 dim=-1", lambda m, x: m.linalg.norm(x, 1, dim=-1)),
    ("norm dim=0", lambda m, x: m.norm(x, dim=0)),
    ("norm p=1 dim=-1", lambda m, x: m.norm(x, p=1, dim=-1)),
    ("norm fro dim=0 keepdim", lambda m, x: m.norm(x, p="fro", dim=0, keepdim=True)),
]


@pytest.mark.parametrize("x", SCALARS, ids=["neg", "pos", "zero"])
@pytest.mark.parametrize("name,call", NORMS, ids=[n for n, _ in NORMS])
def test_norms_of_a_0d_tensor_match_torch(name, call, x):
    assert_matches_torch(lambda a: call(jt, a), lambda a: call(torch, a), x)
    assert call(jt, jnp.asarray(x)).shape == ()


@pytest.mark.parametrize("dim", [0, -1])
@pytest.mark.parametrize("pair", [(-3.0, 2.0), (1.5, 4.0), (2.0, 0.0), (0.0, 0.0)])
def test_cosine_similarity_of_0d_tensors_matches_torch(pair, dim):
    a, b = (np.array(v) for v in pair)
    assert_matches_torch(
        lambda u, v: jt.cosine_similarity(u, v, dim=dim),
        lambda u, v: F.cosine_similarity(u, v, dim=dim),
        a,
        b,
    )
    assert jt.cosine_similarity(jnp.asarray(a), jnp.asarray(b), dim=dim).shape == ()


@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: m.linalg.vector_norm(x, dim=1),
        lambda m, x: m.linalg.vector_norm(x, dim=(0, -1)),
        lambda m, x: m.norm(x, dim=1),
        lambda m, x: m.linalg.norm(x, dim=-2),
        lambda m, x: (F if m is torch else m).cosine_similarity(x, x, dim=1),
    ],
)
def test_dims_other_than_0_and_minus_1_fail_on_a_0d_tensor_as_in_torch(call):
    with pytest.raises((RuntimeError, IndexError)):
        call(torch, torch.tensor(2.0))
    with pytest.raises(ValueError, match="0-d"):
        call(jt, jnp.array(2.0))
