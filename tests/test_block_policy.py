"""The block policy (``jaxloss/_block_policy.py``): one meaning of ``None`` for every tiling argument."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxloss
from jaxloss import _block_policy as bp

FAST_LOOP_RUNS_EVERY_CASE = True  # pure Python checks, no compilation


def test_none_is_dense_up_to_the_budget_then_default_tiles_clipped():
    fam = bp.Family("test", 100, (8, 16), (32, 64))
    assert bp.resolve_blocks(fam, 10, 10, None, None) is None
    cpu = bp.default_blocks(fam, "cpu")
    assert cpu == (8, 16) and bp.default_blocks(fam, "gpu") == (32, 64)
    got = bp.resolve_blocks(fam, 10, 11, None, None)
    assert got == (min(bp.default_blocks(fam)[0], 10), min(bp.default_blocks(fam)[1], 11))
    # one block size given: tiled even when small, the other side's default clipped to its axis
    assert bp.resolve_blocks(fam, 5, 5, 3, None) == (3, 5)
    assert bp.resolve_blocks(fam, 5, 5, None, 2) == (5, 2)
    # a block larger than its axis is clipped; no dense path: always tiled
    assert bp.resolve_blocks(fam, 4, 6, 100, 100) == (4, 6)
    assert bp.resolve_blocks(fam, 4, 6, None, None, dense=False) == (4, 6)
    # the dense budget counts every element of a column (sub-centres), the default block divides
    assert bp.resolve_blocks(fam, 5, 6, None, None, col_width=3) is None  # 90 elements
    assert bp.resolve_blocks(fam, 5, 10, None, None, col_width=3) == (5, 16 // 3)  # 150 elements
    wide = bp.resolve_blocks(fam._replace(dense_max=None), 1000, 1000, None, None, col_width=4)
    assert wide[1] == bp.default_blocks(fam)[1] // 4


@pytest.mark.parametrize(
    "value, error", [(2.5, TypeError), (True, TypeError), ("8", TypeError), (0, ValueError)]
)
def test_tiling_arguments_follow_one_rule(value, error):
    with pytest.raises(error, match="`vocab_block_size`"):
        bp.check_block_size(value, "vocab_block_size", "f")
    assert bp.check_block_size(None, "block_size", "f") is None
    assert bp.check_block_size(np.int64(4), "block_size", "f") == 4


def test_every_family_with_a_dense_path_is_in_the_table():
    doc = bp.__doc__
    for fam in (bp.HEADS, bp.MARGIN, bp.CONTRASTIVE):
        assert fam.name in doc
        assert f"2^{fam.dense_max.bit_length() - 1}" in doc
        assert f"{fam.cpu[0]} x {fam.cpu[1]}" in doc


@pytest.mark.slow
def test_contrastive_none_tiles_above_the_dense_budget(monkeypatch):
    x = jnp.asarray(np.random.default_rng(0).normal(size=(12, 5)))
    labels = jnp.arange(12) % 3
    dense = jaxloss.supervised_contrastive_loss(x, labels, temperature=0.5)
    # a fresh function each time: make_jaxpr caches traces by function
    assert "custom_vjp" not in str(
        jax.make_jaxpr(lambda a, b: jaxloss.supervised_contrastive_loss(a, b))(x, labels)
    )
    monkeypatch.setattr(bp, "CONTRASTIVE", bp.CONTRASTIVE._replace(dense_max=100, cpu=(5, 5)))
    jaxpr = str(jax.make_jaxpr(lambda a, b: jaxloss.supervised_contrastive_loss(a, b))(x, labels))
    assert "custom_vjp" in jaxpr
    tiled = jaxloss.supervised_contrastive_loss(x, labels, temperature=0.5)
    np.testing.assert_allclose(tiled, dense, rtol=1e-12)
