"""The tile primitives (``jaxloss/_tiles.py``): online and merged logsumexp, block starts, padding, ring shift."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp

from jaxloss import _tiles
from tests.helpers import run_python


@pytest.mark.parametrize("block", [1, 5, 23, 64])
def test_online_logsumexp_over_ragged_tiles_equals_logsumexp(block):
    x = np.random.default_rng(0).normal(size=(7, 23)) * 30
    x[2] = -np.inf  # a fully masked row stays -inf, never nan
    x[3, ::2] = -np.inf
    state = _tiles.init_logsumexp((7,), jnp.float64)
    for tile in _tiles.pad_to_blocks(jnp.asarray(x), block, axis=1, value=-jnp.inf):
        state = _tiles.update_logsumexp(state, tile.T)
    np.testing.assert_allclose(_tiles.finalize_logsumexp(state), logsumexp(x, axis=1), rtol=1e-14)


def test_states_merged_across_devices_equal_one_pass():
    """``psum_logsumexp`` / ``psum_softmax_mean`` over a mapped axis (4 shards of the columns, one of
    them empty for a row, a row empty everywhere) equal one pass over all the columns."""
    r = np.random.default_rng(1)
    x, v = r.normal(size=(4, 32)) * 20, r.normal(size=(4, 32))
    x[1, 8:16] = -np.inf  # row 1 sees nothing on the second shard
    x[3] = -np.inf  # row 3 sees nothing at all
    shards = (
        jnp.asarray(x).reshape(4, 4, 8).transpose(1, 0, 2),
        jnp.asarray(v).reshape(4, 4, 8).transpose(1, 0, 2),
    )

    def merged(xs, vs):
        lse = _tiles.update_logsumexp(_tiles.init_logsumexp((4,), jnp.float64), xs)
        mean = _tiles.update_softmax_mean((*_tiles.init_logsumexp((4,), jnp.float64), jnp.zeros(4)), xs, vs)
        lse = _tiles.finalize_logsumexp(_tiles.psum_logsumexp(lse, "i"))
        return lse, _tiles.finalize_softmax_mean(_tiles.psum_softmax_mean(mean, "i"))

    lse, (mean, lse2) = jax.jit(jax.vmap(merged, axis_name="i"))(*shards)
    want = logsumexp(x, axis=1)
    for got in (lse, lse2):
        np.testing.assert_allclose(got, np.broadcast_to(want, (4, 4)), rtol=1e-14)
    p = np.exp(x[:3] - want[:3, None])
    np.testing.assert_allclose(mean[:, :3], np.broadcast_to((p * v[:3]).sum(1), (4, 3)), rtol=1e-12)
    np.testing.assert_array_equal(mean[:, 3], 0.0)  # an empty row's mean is 0, its logsumexp -inf


def test_pad_to_blocks_shape_and_fill():
    x = jnp.arange(10.0).reshape(5, 2)
    blocks = _tiles.pad_to_blocks(x, 3, axis=0, value=-1)
    assert blocks.shape == (2, 3, 2)
    np.testing.assert_array_equal(blocks[1, 2], [-1, -1])
    assert _tiles.num_blocks(5, 3) == 2 and _tiles.num_blocks(6, 3) == 2


_RING = """
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, PartitionSpec as P
from jaxloss import _tiles
mesh = Mesh(np.array(jax.devices()), ("i",))
for reverse, expected in ((False, [6, 7, 0, 1, 2, 3, 4, 5]), (True, [2, 3, 4, 5, 6, 7, 0, 1])):
    f = jax.jit(jax.shard_map(lambda v: _tiles.ring_shift(v, "i", reverse=reverse),
                              mesh=mesh, in_specs=P("i"), out_specs=P("i")))
    np.testing.assert_array_equal(f(jnp.arange(8.0)), expected)


def probe(v, r):
    assert _tiles.varying_axes(v) == ("i",) and _tiles.varying_axes(r) == (), (v, r)
    rv = _tiles.make_varying(r, ("i",))
    assert _tiles.varying_axes(rv) == ("i",)
    return jnp.sum(v * rv)[None]


g = jax.shard_map(probe, mesh=mesh, in_specs=(P("i"), P()), out_specs=P("i"))
v = jnp.arange(8.0)
# the cast's transpose sums the replicated value's per-device cotangents exactly once
np.testing.assert_allclose(jax.grad(lambda r: jnp.sum(g(v, r)))(2.0), jnp.sum(v))
print("ring ok")
"""


@pytest.mark.slow  # a subprocess with 4 forced CPU devices
def test_ring_shift_on_four_devices():
    assert "ring ok" in run_python(_RING, devices=4, timeout=120)


@pytest.mark.parametrize("mode", ["constant", "edge"])
@pytest.mark.parametrize("axis, block", [(0, 3), (1, 4), (-1, 2), (1, 5)])
def test_split_blocks_matches_numpy_pad_and_reshape(axis, block, mode):
    x = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3)
    ax = axis % x.ndim
    n = x.shape[ax]
    nb = -(-n // block)
    widths = [(0, 0)] * x.ndim
    widths[ax] = (0, nb * block - n)
    padded = np.pad(x, widths, mode="edge") if mode == "edge" else np.pad(x, widths, constant_values=-7.0)
    expected = padded.reshape(x.shape[:ax] + (nb, block) + x.shape[ax + 1 :])
    got = _tiles.split_blocks(jnp.asarray(x), block, axis=axis, value=-7.0, mode=mode)
    np.testing.assert_array_equal(np.asarray(got), expected)
    if mode == "constant":  # pad_to_blocks is the same blocks with the block axis in front
        front = _tiles.pad_to_blocks(jnp.asarray(x), block, axis=ax, value=-7.0)
        np.testing.assert_array_equal(np.asarray(front), np.moveaxis(expected, (ax, ax + 1), (0, 1)))


@pytest.mark.parametrize("total, block", [(10, 4), (12, 4), (5, 5), (7, 3)])
def test_block_valid_at_is_block_valid_at_chosen_offsets(total, block):
    offsets = jnp.array([[0, block - 1], [block // 2, 1]])
    for i in range(_tiles.num_blocks(total, block)):
        full = np.asarray(_tiles.block_valid(i, block, total))
        got = np.asarray(_tiles.block_valid_at(i, block, total, offsets))
        np.testing.assert_array_equal(got, full[np.asarray(offsets)])
    # every position of the axis is valid in exactly one block
    seen = np.zeros(total, int)
    for i in range(_tiles.num_blocks(total, block)):
        start = int(_tiles.block_start(i, block, total))
        seen[start : start + block] += np.asarray(_tiles.block_valid(i, block, total))
    np.testing.assert_array_equal(seen, np.ones(total, int))
