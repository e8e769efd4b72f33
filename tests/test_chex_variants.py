"""The same reference checks through chex's own machinery: ``chex.variants`` (jit and eager)
and ``chex.assert_trees_all_close``, on one representative function per family.

The rest of the suite uses the ``variant`` pytest fixture (root ``conftest.py``), its
pytest equivalent.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import torch
import torch.nn.functional as F
from absl.testing import parameterized

import jaxloss
import jaxloss.torch as jt
from tests.helpers import assert_close


def _t(a):
    return torch.tensor(np.asarray(a))


R = np.random.default_rng(0)
X = R.normal(size=(6, 4))
Y = R.normal(size=(5, 4))
LOGITS = R.normal(size=(6, 3))
LABELS = np.array([0, 2, 1, 1, 0, 2])
P = np.abs(R.normal(size=(6, 3))) + 0.1
P /= P.sum(-1, keepdims=True)

CASES = [
    (
        "vector_norm",
        lambda a: jaxloss.vector_norm(a, 3, axis=-1),
        lambda a: torch.linalg.vector_norm(a, 3, dim=-1),
        (X,),
    ),
    ("nuclear_norm", jaxloss.nuclear_norm, lambda a: torch.linalg.matrix_norm(a, "nuc"), (X,)),
    ("cdist", lambda a, b: jaxloss.cdist(a, b), torch.cdist, (X, Y)),
    (
        "kl_div",
        lambda a, b: jt.kl_div(a, b, reduction="batchmean"),
        lambda a, b: F.kl_div(a, b, reduction="batchmean"),
        (np.log(P[::-1].copy()), P),
    ),
    (
        "cross_entropy",
        lambda a: jt.cross_entropy(a, jnp.asarray(LABELS), label_smoothing=0.1),
        lambda a: F.cross_entropy(a, torch.tensor(LABELS), label_smoothing=0.1),
        (LOGITS,),
    ),
    (
        "triplet_margin_loss",
        lambda a, p, n: jt.triplet_margin_loss(a, p, n, p=3),
        lambda a, p, n: F.triplet_margin_loss(a, p, n, p=3),
        (X, X[::-1].copy(), Y[:1].repeat(6, 0)),
    ),
]


class ChexVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*[(name, fn, ref, args) for name, fn, ref, args in CASES])
    def test_value_and_gradient_match_torch(self, fn, ref, args):
        jax_args = [jnp.asarray(a) for a in args]
        value = self.variant(fn)(*jax_args)
        grads = self.variant(jax.grad(lambda *xs: jnp.sum(fn(*xs)), argnums=tuple(range(len(args)))))(
            *jax_args
        )
        targs = [_t(a).requires_grad_(True) for a in args]
        expected = ref(*targs)
        expected.sum().backward()
        assert_close(value, expected.detach().numpy())
        assert_close(grads, tuple(t.grad.numpy() for t in targs))
