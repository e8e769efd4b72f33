"""The one block policy: what a tiling argument means, its defaults and the element budgets.

Every tiling argument of the library (``block_size`` for the rows or
queries, and ``vocab_block_size``, ``class_block_size``,
``database_block_size`` for the other axis, named for what it blocks)
follows one rule:

* **an integer** is the number of rows (classes, database rows...) per
  block; a block larger than its axis is clipped to the axis. A
  non-integer is a ``TypeError``, zero or a negative number a
  ``ValueError``, both naming the argument (:func:`check_block_size`).
* **None** means *jaxloss chooses*: a function that has a dense path takes
  it when its whole quadratic intermediate (``rows x columns`` logits or
  scores, as this device would hold them) has at most the family's
  ``dense_max`` elements and no block size was given; otherwise it tiles,
  with the family's default block for the backend in place of each None.
  A function without a dense path (search, all-pairs distances of the
  elementwise metrics, Hamming counts) always tiles.

===============  ===============================  =============  ===========  ===========
family           dense intermediate               dense up to    CPU blocks   GPU / TPU
===============  ===============================  =============  ===========  ===========
linear heads     ``N x V`` logits (cross-entropy, 2^22 (16 MiB   1024 x 4096  2048 x 8192
                 statistics, distillation,        of float32)    (two-pass,
                 post-training)                                  V <= 2^15:
                                                                 2^22/V x V)
margin softmax   ``N x C k`` cosines (ArcFace,    2^24 (64 MiB)  1024 x 4096  2048 x 8192
                 CosFace; ``k`` sub-centres)                     / k classes  / k classes
contrastive      ``B x B`` logits (or             2^24 (64 MiB)  1024 x 1024  2048 x 2048
                 ``B x B(1+n)`` with negatives)
===============  ===============================  =============  ===========  ===========

Families without a dense path always tile, with blocks sized from element
budgets (the ``SEARCH_*``, ``DISTANCES_*`` and ``BITS_*`` constants below):
kNN and range search (512 queries per block, ``2^22`` float32 scores per
tile; 128 and ``2^20`` for elementwise metrics; 256 x 16384 for packed
codes), the all-pairs distances of elementwise metrics (``2^22`` elements
per ``rows x rows x features`` tile) and packed Hamming counts (64 MiB of
counts per block).

The defaults are chosen, not tuned per machine: on a CPU, GEMMs reach their
speed with tiles of a few thousand columns and larger tiles only cost cache
(the fused cross-entropy's value and gradient ran fastest near 1024 x 4096
on a 2-core Xeon); on GPU/TPU a tile must be large enough to fill the device
(tens of GFLOP per GEMM at ``D = 1024``), and a 64 MiB float32 tile is still
small next to a model. The dense budgets keep the dense path, which is the
fastest where it fits, for problems whose intermediate is at most tens of
MiB.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from . import _checks

__all__ = [
    "BITS_BLOCK_BYTES",
    "CONTRASTIVE",
    "DISTANCES_TILE_ELEMENTS",
    "HEADS",
    "HEADS_TWO_PASS_WHOLE_VOCABULARY",
    "MARGIN",
    "SEARCH_ELEMENTWISE_QUERY_BLOCK",
    "SEARCH_ELEMENTWISE_TILE_ELEMENTS",
    "SEARCH_PACKED_DATABASE_BLOCK",
    "SEARCH_PACKED_QUERY_BLOCK",
    "SEARCH_QUERY_BLOCK",
    "SEARCH_TILE_ELEMENTS",
    "Family",
    "check_block_size",
    "default_blocks",
    "resolve_blocks",
    "resolve_two_pass_blocks",
]


class Family(NamedTuple):
    """The block defaults of one family of tiled functions.

    Attributes:
      name: what the family is, for messages and the documentation table.
      dense_max: the largest dense intermediate (elements) that ``None``
        block sizes evaluate densely; None: the family always tiles.
      cpu: the default ``(row block, column block)`` on a CPU.
      accelerator: the default ``(row block, column block)`` on GPU / TPU.
    """

    name: str
    dense_max: int | None
    cpu: tuple[int, int]
    accelerator: tuple[int, int]


#: Linear heads: fused cross-entropy, softmax statistics, distillation, post-training losses.
HEADS = Family("linear heads", 1 << 22, (1024, 4096), (2048, 8192))
#: Two-pass linear heads (the Jensen-Shannon distillation needs both normalisers before its
#: second sweep over the vocabulary): on a CPU, with no block size given and at most this many
#: classes, the vocabulary is one block and a row block holds ``tile // V`` tokens (the tile of
#: ``HEADS.cpu``, rounded down to a multiple of 64, at least 128), so each tile's logits serve
#: both sweeps (value and gradient ran 1.2x the dense time instead of 1.4x at N = 2048,
#: D = 512, V = 32000, with AVX-512 and with AVX2 only, one thread).
HEADS_TWO_PASS_WHOLE_VOCABULARY = 1 << 15
#: ArcFace / CosFace (the class block counts columns: classes x sub-centres).
MARGIN = Family("margin softmax", 1 << 24, (1024, 4096), (2048, 8192))
#: In-batch contrastive losses (queries x keys).
CONTRASTIVE = Family("contrastive", 1 << 24, (1024, 1024), (2048, 2048))
# Families without a dense path: always tiled, their blocks sized from element budgets.

#: kNN / range search over float GEMM metrics: queries per block and the elements of one
#: (query block x database block) tile of scores (16 MiB of float32).
SEARCH_QUERY_BLOCK = 512
SEARCH_TILE_ELEMENTS = 4 * 2**20
#: Search over an elementwise metric (cityblock; no GEMM): smaller tiles stay in cache.
SEARCH_ELEMENTWISE_QUERY_BLOCK = 128
SEARCH_ELEMENTWISE_TILE_ELEMENTS = 2**20
#: Search over packed binary codes: queries and database rows per block.
SEARCH_PACKED_QUERY_BLOCK = 256
SEARCH_PACKED_DATABASE_BLOCK = 16384
#: All-pairs distances of the elementwise metrics: elements of one (rows, rows, features) tile.
DISTANCES_TILE_ELEMENTS = 1 << 22
#: Hamming counts of packed codes: bytes of one (rows x block) block of int32 counts.
BITS_BLOCK_BYTES = 64 * 2**20


def check_block_size(value, name: str, fn: str) -> int | None:
    """The one rule of every tiling argument (``block_size``, ``vocab_block_size``, ...).

    ``None`` (jaxloss chooses) is returned as is. A non-integer (``2.5``,
    ``True``, a string, an array) is a ``TypeError``; zero or a negative
    number is a ``ValueError``; both name the argument.
    """
    return _checks.check_positive_int(value, name, fn)


def default_blocks(family: Family, backend: str | None = None) -> tuple[int, int]:
    """``family``'s default ``(row block, column block)`` for a JAX backend (default: the default one)."""
    backend = jax.default_backend() if backend is None else backend
    return family.cpu if backend == "cpu" else family.accelerator


def resolve_blocks(
    family: Family,
    rows: int,
    cols: int,
    block_size: int | None,
    col_block_size: int | None,
    *,
    dense: bool = True,
    col_width: int = 1,
) -> tuple[int, int] | None:
    """The blocks of one call: ``(row block, column block)`` clipped to the axes, or None for dense.

    Args:
      family: the calling function's :class:`Family`.
      rows, cols: the sizes of the two axes (``cols``: the columns this
        device holds times the devices it will see them from, when the
        dense path would gather them).
      block_size, col_block_size: the user's (checked) arguments.
      dense: whether the call has a dense path (False: always tiled, e.g.
        vocabulary-parallel heads).
      col_width: dense elements per column (sub-centres: ``k`` class
        centres per class); the default column block is divided by it.

    Returns:
      None when both arguments are None, ``dense`` holds and
      ``rows * cols * col_width`` is at most ``family.dense_max``; else the
      row and column blocks, each the argument or the backend's default,
      clipped to ``[1, axis]``.
    """
    if (
        dense
        and block_size is None
        and col_block_size is None
        and family.dense_max is not None
        and rows * cols * col_width <= family.dense_max
    ):
        return None
    default_rows, default_cols = default_blocks(family)
    rb = block_size or default_rows
    cb = col_block_size or max(default_cols // col_width, 1)
    return max(1, min(rb, rows)), max(1, min(cb, cols))


def resolve_two_pass_blocks(
    family: Family,
    rows: int,
    cols: int,
    block_size: int | None,
    col_block_size: int | None,
    *,
    dense: bool = True,
) -> tuple[int, int] | None:
    """:func:`resolve_blocks` for a declaration that sweeps the columns twice per row block.

    The same result, except on a CPU when neither block size was given, the
    call tiles and ``cols <= HEADS_TWO_PASS_WHOLE_VOCABULARY``: then the whole
    column axis is one block and the row block keeps the default tile's
    element count (a multiple of 64 rows, at least 128), so the second sweep
    reuses the first one's matrix products.
    """
    blocks = resolve_blocks(family, rows, cols, block_size, col_block_size, dense=dense)
    if (
        blocks is None
        or block_size is not None
        or col_block_size is not None
        or cols > HEADS_TWO_PASS_WHOLE_VOCABULARY
        or jax.default_backend() != "cpu"
    ):
        return blocks
    tile = family.cpu[0] * family.cpu[1]
    rb = max(128, tile // cols // 64 * 64)
    return max(1, min(rb, rows)), cols
