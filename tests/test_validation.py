"""check_inputs: eager ValueError and checkify errors inside jit, for every checked argument."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental import checkify

import jaxloss

CASES = [
    ({"probabilities": jnp.array([[0.5, 0.6]])}, "sum to 1"),
    ({"probabilities": jnp.array([[1.5, -0.5]])}, ">= 0"),
    ({"probabilities": jnp.array([[jnp.nan, 1.0]])}, "finite"),
    ({"log_probabilities": jnp.log(jnp.array([[0.5, 0.6]]))}, "log-sum-exp"),
    ({"log_probabilities": jnp.array([[0.5, -1.0]])}, "<= 0"),
    ({"targets01": jnp.array([0.0, 1.2])}, r"\[0, 1\]"),
    ({"logits": jnp.array([0.0, jnp.inf])}, "NaN or \\+inf"),
    ({"labels": jnp.array([0, -1]), "num_classes": 3}, "found -1"),
    ({"labels": jnp.array([0, 3]), "num_classes": 3, "ignore_index": -100}, "found 3"),
    ({"embeddings": jnp.array([[0.0, jnp.inf]])}, "finite"),
]


@pytest.mark.parametrize("kwargs,match", CASES)
def test_eager_raises_value_error_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        jaxloss.check_inputs(**kwargs)


@pytest.mark.parametrize("kwargs,match", CASES)
def test_checkify_catches_inside_jit(kwargs, match):
    static = {k: v for k, v in kwargs.items() if not hasattr(v, "shape")}
    arrays = {k: v for k, v in kwargs.items() if hasattr(v, "shape")}

    def f(arrs):
        jaxloss.check_inputs(**arrs, **static)
        return 0.0

    err, _ = jax.jit(checkify.checkify(f))(arrays)
    assert err.get() is not None
    with pytest.raises(checkify.JaxRuntimeError, match=match):
        err.throw()


@pytest.mark.slow
def test_valid_inputs_pass_eagerly_and_under_checkify():
    good = dict(
        probabilities=jax.nn.softmax(jnp.arange(6.0).reshape(2, 3)),
        log_probabilities=jax.nn.log_softmax(jnp.arange(6.0).reshape(2, 3)),
        targets01=jnp.array([0.0, 0.3, 1.0]),
        logits=jnp.array([0.0, -jnp.inf, 3.0]),
        labels=jnp.array([0, 2, -100]),
        embeddings=jnp.ones((2, 3)),
    )
    assert jaxloss.check_inputs(**good, num_classes=3, ignore_index=-100) is None
    err, _ = jax.jit(
        checkify.checkify(lambda g: jaxloss.check_inputs(**g, num_classes=3, ignore_index=-100))
    )(good)
    assert err.get() is None


def test_static_misuse_is_a_trace_time_error():
    with pytest.raises(ValueError, match="`num_classes` is required"):
        jaxloss.check_inputs(labels=jnp.array([0]))
    with pytest.raises(TypeError, match="`labels` must have an integer dtype"):
        jaxloss.check_inputs(labels=jnp.array([0.0]), num_classes=2)
    with pytest.raises(TypeError, match="`probabilities` must have a floating dtype"):
        jaxloss.check_inputs(probabilities=np.array([1]))
