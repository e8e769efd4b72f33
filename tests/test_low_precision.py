"""Low precision: float16 / bfloat16 inputs return the input dtype, within a bound of float32.

The bound (documented in ``docs/design.md``). With ``x16`` the half
precision inputs and ``ref = f(x16.astype(float32))`` (the float32 result on
the *same*, already rounded, inputs, so the rounding of the inputs themselves,
which no implementation can undo, is not counted):

    |f(x16) - ref| <= K * eps * (|ref| + max(1, max |ref|))   elementwise

with ``eps`` the dtype's machine epsilon (float16: 2**-10 ~ 9.8e-4; bfloat16:
2**-7 ~ 7.8e-3) and ``K = 1``: the result is the float32 result rounded once
to the output dtype (half an ulp) plus at most a few float32 roundings. This
is what "half precision in, float32 inside, input dtype out" guarantees. A
function computing in half precision inside would fail it (a sum of ``d``
half-precision terms alone errs by up to ``d * eps / 2``).

Gradients: the gradient with respect to a half-precision input has the
input's dtype and is finite.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers import value_and_grads
from tests.registry import LOW_PRECISION, cast_args, float_leaves, ids

K = 1.0
EPS = {"float16": float(jnp.finfo(jnp.float16).eps), "bfloat16": float(jnp.finfo(jnp.bfloat16).eps)}


def _outputs(spec, out):
    if spec.name.endswith("knn"):  # (distances, indices): the indices are compared separately
        return [out[0]]
    return float_leaves(out)


DTYPES = ("float16", "bfloat16")


@pytest.mark.slow
@pytest.mark.parametrize("spec", LOW_PRECISION, ids=ids(LOW_PRECISION))
def test_half_precision_within_bound_of_float32(spec):
    base = spec.args(n=max(5, spec.min_n), dtype="float64", d=4, seed=11)
    cases = [cast_args(base, dtype) for dtype in DTYPES]

    # both half precisions and their float32 references in one compiled program (independent
    # subcomputations; the cast of a half-precision input to float32 is exact)
    @jax.jit
    def run(cases):
        return [(value_and_grads(spec, a), spec.call(*cast_args(a, "float32"))) for a in cases]

    for dtype, args, ((out, grads), ref) in zip(DTYPES, cases, run(cases), strict=True):
        outs, refs = _outputs(spec, out), _outputs(spec, ref)
        assert len(outs) == len(refs) > 0
        for o, r in zip(outs, refs, strict=True):
            assert o.dtype == jnp.dtype(dtype), (spec.name, o.dtype)
            assert o.shape == r.shape
            o64, r64 = np.asarray(o, np.float64), np.asarray(r, np.float64)
            scale = max(1.0, float(np.max(np.abs(r64)))) if r64.size else 1.0
            bound = K * EPS[dtype] * (np.abs(r64) + scale)
            err = np.abs(o64 - r64)
            assert np.all(err <= bound), (spec.name, dtype, float(np.max(err / bound)))
        if spec.name.endswith("knn"):
            np.testing.assert_array_equal(np.asarray(out[1]), np.asarray(ref[1]))
        # gradients with respect to half-precision inputs: the input's dtype, finite
        for i, g in zip(spec.diff, grads, strict=True):
            assert g.dtype == args[i].dtype, (spec.name, g.dtype)
            assert bool(jnp.all(jnp.isfinite(g.astype(jnp.float32)))), (spec.name, dtype)
