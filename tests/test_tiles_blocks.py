"""The blocking primitives added for search and distances: ``split_blocks`` and ``block_valid_at``."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jaxloss import _tiles


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
