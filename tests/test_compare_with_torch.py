"""The cross-framework checker ``jaxloss.testing.compare_with_torch`` itself."""

from __future__ import annotations

import jax
import numpy as np
import pytest
import torch

import jaxloss
from jaxloss.testing import TOLERANCES, Comparison, compare_with_torch, default_tolerance

X = np.random.default_rng(0).normal(size=(4, 3))


def _norm_jax(a):
    return jaxloss.vector_norm(a, axis=-1)


def _norm_torch(a):
    return torch.linalg.vector_norm(a, dim=-1)


def test_exact_port_is_ok():
    report = compare_with_torch(_norm_jax, _norm_torch, X)
    assert isinstance(report, Comparison)
    assert report.ok and bool(report)
    assert {r.dtype for r in report.rows} == {"float32", "float64"}
    assert {r.what for r in report.rows} == {"value[0]", "grad[0]"}


@pytest.mark.parametrize(
    "dtypes, error",
    [
        (("float32", "float64"), 0.01),
        (("float32",), 0.01),
        (("float64",), 0.01),
        (("float16",), 0.01),
        (("bfloat16",), 0.2),
    ],  # bfloat16's spacing is 0.8%
)
@pytest.mark.parametrize("where", ["value", "grad"])
def test_one_percent_error_is_not_ok(dtypes, error, where):
    if where == "value":

        def jax_fn(a):
            return (1 + error) * _norm_jax(a)
    else:  # same value, gradient off by `error`

        def jax_fn(a):
            v = _norm_jax(a)
            return v + error * (v - jax.lax.stop_gradient(v))

    report = compare_with_torch(jax_fn, _norm_torch, X, dtypes=dtypes)
    assert not report.ok
    assert not bool(report)
    bad = [r for r in report.rows if r.what.startswith(where)]
    assert bad and all(not r.ok and r.max_rel >= 0.9 * error for r in bad)
    assert not report.worst().ok
    # the exact port passes at the same dtypes
    assert compare_with_torch(_norm_jax, _norm_torch, X, dtypes=dtypes).ok


def test_every_default_tolerance_rejects_one_percent():
    for name in TOLERANCES:
        if name == "bfloat16":
            continue
        rtol, atol = default_tolerance(name)
        # |1.01 r - r| = 0.01 |r| must exceed atol * max(1, |r|) + rtol * |r| for every r
        assert 0.01 > rtol + atol, name


def test_repr_is_a_table():
    report = compare_with_torch(_norm_jax, _norm_torch, X)
    text = repr(report)
    lines = text.splitlines()
    assert lines[0].split() == ["dtype", "what", "shape", "max", "abs", "max", "rel", "ok"]
    assert set(lines[1]) == {"-"}
    assert len(lines) == 2 + len(report.rows) + 1
    assert "float32" in text and "grad[0]" in text and "(4,)" in text
    assert lines[-1] == "ok: True"
    bad = repr(compare_with_torch(lambda a: 1.01 * _norm_jax(a), _norm_torch, X))
    assert " NO" in bad and bad.splitlines()[-1] == "ok: False"


def test_nan_in_torch_is_excluded_and_counted():
    # torch: 0 * log 0 = NaN at the zero targets; jaxloss: the limit 0
    p = np.array([[0.0, 0.5, 0.5], [0.2, 0.3, 0.5]])
    logq = np.log(np.array([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]]))
    report = compare_with_torch(
        lambda lq, t: jaxloss.torch.kl_div(lq, t, reduction="none"),
        lambda lq, t: t * (torch.log(t) - lq),
        logq,
        p,
    )
    assert report.ok, report
    values = [r for r in report.rows if r.what == "value[0]"]
    assert all(r.reference_nan == 1 for r in values)
    assert all(r.candidate_nonfinite == 0 for r in values)
    assert "torch NaN at 1, excluded" in repr(report)


def test_nonfinite_jax_where_torch_is_finite_is_not_ok():
    report = compare_with_torch(lambda a: _norm_jax(a) / 0.0, _norm_torch, X, grad=False)
    assert not report.ok
    assert all(r.candidate_nonfinite == 4 for r in report.rows)


def test_shape_mismatch_is_not_ok():
    report = compare_with_torch(
        lambda a: jaxloss.vector_norm(a, axis=-1, keepdims=True), _norm_torch, X, grad=False
    )
    assert not report.ok
    assert all(r.max_abs == np.inf and not r.ok for r in report.rows)


def test_output_count_mismatch_raises():
    with pytest.raises(ValueError, match="outputs"):
        compare_with_torch(lambda a: (_norm_jax(a), _norm_jax(a)), _norm_torch, X)


def test_integer_inputs_pass_through_and_tuple_outputs():
    logits = np.random.default_rng(1).normal(size=(5, 4))
    labels = np.array([0, 3, 1, 2, 2])
    report = compare_with_torch(
        lambda x, y: (jaxloss.torch.cross_entropy(x, y, reduction="none"), x.sum()),
        lambda x, y: (torch.nn.functional.cross_entropy(x, y, reduction="none"), x.sum()),
        logits,
        labels,
    )
    assert report.ok, report
    assert {r.what for r in report.rows} == {"value[0]", "value[1]", "grad[0]"}


def test_explicit_tolerance_and_argnums():
    loose = compare_with_torch(lambda a: 1.01 * _norm_jax(a), _norm_torch, X, rtol=0.02, grad=False)
    assert loose.ok
    a, b = X, X[::-1].copy()
    report = compare_with_torch(
        lambda x, y: jaxloss.pairwise_distance(x, y),
        lambda x, y: torch.linalg.vector_norm(x - y, dim=-1),
        a,
        b,
        argnums=(1,),
    )
    assert report.ok and {r.what for r in report.rows} == {"value[0]", "grad[1]"}
