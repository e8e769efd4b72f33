"""Tile machinery shared by the losses that never hold their quadratic intermediate.

A loss whose dense form needs an ``N x V`` (or ``B x B``) matrix of logits
visits it one tile at a time and keeps, per row, only an online logsumexp
state ``(m, s)``: the running maximum ``m`` and the running sum of
``exp(logit - m)`` (and, for a softmax-weighted mean, ``a``: the running sum of
``exp(logit - m) * value``). After every tile has been seen,
``logsumexp = m + log(s)``. The states of several devices merge with
``pmax``/``psum`` (``psum_logsumexp``), and a column side's states can travel
around a ring (``ring_shift``).

Everything here is private building material, and the only place in the
package that writes blocking: block starts (the last block pulled back to the
end of the axis), padding a ragged axis to whole blocks, ``lax.map`` over
query blocks, the online and cross-device logsumexp, the one-step ring
permutation and the varying-axes cast of ``shard_map`` loop carries. The
statistics engine (``_tile_engine``) and the fused cross-entropy build their
``jax.custom_vjp`` on top of it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.interpreters import ad

from . import _numerics

__all__ = [
    "block_start",
    "block_valid",
    "block_valid_at",
    "finalize_logsumexp",
    "finalize_softmax_mean",
    "gathered_batch",
    "global_mean",
    "init_logsumexp",
    "make_varying",
    "map_blocks",
    "num_blocks",
    "pad_to_blocks",
    "psum_local_gradient",
    "psum_logsumexp",
    "psum_softmax_mean",
    "ring_shift",
    "split_blocks",
    "update_logsumexp",
    "update_softmax_mean",
    "varying_axes",
]


def num_blocks(n: int, block_size: int) -> int:
    """How many blocks of ``block_size`` cover ``n`` items (the last may be ragged)."""
    return -(-n // block_size)


def pad_to_blocks(x, block_size: int, *, axis: int = 0, value=0):
    """Pads ``axis`` of ``x`` to a multiple of ``block_size`` and splits it into blocks.

    Returns an array of shape ``(num_blocks, block_size, *rest)`` where
    ``rest`` is ``x.shape`` without ``axis`` (the block axis first, ready for
    ``jax.lax.scan``). Padding entries hold ``value``; callers mask them with
    an iota compared against the true length, never with a gather.
    """
    x = jnp.moveaxis(x, axis, 0)
    n = x.shape[0]
    nb = num_blocks(n, block_size)
    pad = nb * block_size - n
    if pad:
        x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1), constant_values=value)
    return x.reshape((nb, block_size) + x.shape[1:])


def block_start(index, block_size: int, total: int):
    """Start of block ``index`` of an axis of ``total`` items (``block_size <= total``).

    ``index * block_size``, except the last block, which is pulled back to end
    at ``total``: every block is a full ``dynamic_slice`` of the unpadded
    array (no padded copy of a large operand), and the last one overlaps its
    predecessor. ``block_valid`` marks the overlap.
    """
    return jnp.minimum(index * block_size, total - block_size)


def block_valid(index, block_size: int, total: int):
    """``(block_size,)`` bool: the positions of block ``index`` not already in block ``index - 1``.

    With ``start = block_start(index, block_size, total)`` the positions are
    ``start + arange(block_size)``; only the last block can start before
    ``index * block_size``, and its leading entries are then ``False``.
    """
    start = block_start(index, block_size, total)
    return start + jnp.arange(block_size) >= index * block_size


def map_blocks(fn, arrays, block_size: int):
    """``fn`` over row blocks of ``arrays`` (a tuple, equal leading sizes) with ``lax.map``.

    The leading axis is padded with zeros to whole blocks, ``fn`` sees
    ``block_size`` rows at a time and returns a pytree of arrays with a
    leading axis of ``block_size``; the result is trimmed back to the true
    number of rows. One direct call when everything fits in one block.
    """
    n = arrays[0].shape[0]
    if n <= block_size:
        return fn(arrays)
    nb = num_blocks(n, block_size)
    blocks = tuple(pad_to_blocks(a, block_size) for a in arrays)
    out = jax.lax.map(fn, blocks)
    return jax.tree_util.tree_map(lambda o: o.reshape((nb * block_size,) + o.shape[2:])[:n], out)


def init_logsumexp(shape, dtype=jnp.float32):
    """The empty online-logsumexp state: ``m = -inf``, ``s = 0``."""
    return jnp.full(shape, -jnp.inf, dtype), jnp.zeros(shape, dtype)


def _shift(m):
    # A row that has seen only -inf keeps m = -inf; shift by 0 there so that
    # exp(-inf - 0) = 0 instead of exp(-inf + inf) = nan.
    return jnp.where(jnp.isfinite(m), m, 0)


def update_logsumexp(state, logits, *, axis: int = -1):
    """Folds a tile of ``logits`` (reduced over ``axis``) into the state ``(m, s)``.

    ``-inf`` logits (masked entries) contribute nothing. The state's dtype is
    kept: pass float32 logits for a float32 accumulator.
    """
    m, s = state
    m_new = jnp.maximum(m, jnp.max(logits, axis=axis, initial=-jnp.inf))
    shift = _shift(m_new)
    s_new = s * jnp.exp(m - shift) + jnp.sum(jnp.exp(logits - jnp.expand_dims(shift, axis)), axis=axis)
    return m_new, s_new


def psum_logsumexp(state, axis_name):
    """Merges the states ``(m, s)`` of every device of ``axis_name`` (``pmax`` then ``psum``)."""
    m, s = state
    m_all = jax.lax.pmax(m, axis_name)
    shift = _shift(m_all)
    return m_all, jax.lax.psum(s * jnp.exp(m - shift), axis_name)


def finalize_logsumexp(state):
    """``m + log(s)``; ``-inf`` for a row that saw no finite logit."""
    m, s = state
    return jnp.where(s > 0, _shift(m) + jnp.log(jnp.where(s > 0, s, 1)), -jnp.inf)


def update_softmax_mean(state, logits, values, *, axis: int = -1):
    """Folds a tile into the online state ``(m, s, a)`` of a softmax-weighted mean.

    ``(m, s)`` is the online logsumexp of ``logits`` (as ``update_logsumexp``)
    and ``a = sum exp(logits - m) * values`` with the same running shift, so
    ``a / s`` is ``sum softmax(logits) * values`` over every tile seen.
    ``-inf`` logits contribute nothing (their ``values`` are ignored).
    Start from ``(*init_logsumexp(shape), zeros(shape))``.
    """
    m, s, a = state
    m_new = jnp.maximum(m, jnp.max(logits, axis=axis, initial=-jnp.inf))
    shift = _shift(m_new)
    keep = jnp.exp(m - shift)
    e = jnp.exp(logits - jnp.expand_dims(shift, axis))
    weighted = jnp.where(e > 0, e * values, 0)
    return m_new, s * keep + jnp.sum(e, axis=axis), a * keep + jnp.sum(weighted, axis=axis)


def psum_softmax_mean(state, axis_name):
    """Merges the states ``(m, s, a)`` of every device of ``axis_name``."""
    m, s, a = state
    m_all = jax.lax.pmax(m, axis_name)
    keep = jnp.exp(m - _shift(m_all))
    return m_all, jax.lax.psum(s * keep, axis_name), jax.lax.psum(a * keep, axis_name)


def finalize_softmax_mean(state):
    """``(a / s, logsumexp)`` of a state ``(m, s, a)``; ``(0, -inf)`` for a row that saw nothing."""
    m, s, a = state
    has = s > 0
    return jnp.where(has, a / jnp.where(has, s, 1), 0), finalize_logsumexp((m, s))


def ring_shift(x, axis_name, *, reverse: bool = False):
    """Sends ``x`` (a pytree) one step around the ring of devices of ``axis_name``.

    Device ``i`` receives what device ``i - 1`` held (``i + 1`` with
    ``reverse=True``), so after ``n - 1`` shifts every device has seen every
    other device's block exactly once. One ``ppermute`` per leaf; nothing is
    gathered.
    """
    n = jax.lax.psum(1, axis_name)
    step = -1 if reverse else 1
    perm = [(i, (i + step) % n) for i in range(n)]
    return jax.tree_util.tree_map(lambda leaf: jax.lax.ppermute(leaf, axis_name, perm), x)


def varying_axes(*arrays) -> tuple:
    """The ``shard_map`` mesh axes over which any of ``arrays`` varies (empty outside it).

    Reads the abstract value's varying-axes set, which JAX exposes as
    ``aval.vma`` (up to 0.9) or ``aval.mat.varying`` (later releases).
    """
    axes = set()
    for a in arrays:
        if a is None:
            continue
        aval = jax.typeof(a)
        mat = getattr(aval, "mat", None)
        axes |= set(mat.varying if mat is not None else getattr(aval, "vma", frozenset()))
    return tuple(sorted(axes, key=str))


def make_varying(x, axes):
    """Casts the leaves of ``x`` to vary over ``axes`` (those they do not vary over yet).

    ``shard_map`` type-checks loop carries: an accumulator built from
    constants must vary over the same mesh axes as the per-device values
    folded into it. Casting a replicated value (a temperature) makes it a
    per-device value whose cotangent is summed over the devices, once, by the
    cast's transpose.
    """
    axes = tuple(axes)

    def cast(leaf):
        missing = tuple(a for a in axes if a not in varying_axes(leaf))
        return jax.lax.pcast(leaf, missing, to="varying") if missing else leaf

    return jax.tree_util.tree_map(cast, x) if axes else x


def forward_mode(*arrays) -> bool:
    """Whether any leaf of ``arrays`` is being differentiated in forward mode (``jax.jvp``,
    ``jax.jacfwd``) by a transformation applied around this call (under ``vmap`` too).

    A ``jax.custom_vjp`` cannot be differentiated in forward mode; a tiled path that sees
    this can run its forward sweep as plain JAX instead. A ``jax.jvp`` of a function
    already traced (``jax.jvp(jax.jit(f), ...)``) is not seen here.
    """
    for leaf in jax.tree_util.tree_leaves(arrays):
        while type(leaf).__name__ == "BatchTracer":  # vmap around jvp: look inside
            leaf = leaf.val
        if isinstance(leaf, ad.JVPTracer):
            return True
    return False


def split_blocks(x, block_size: int, *, axis: int = 0, value=0, mode: str = "constant"):
    """Pads ``axis`` of ``x`` to a multiple of ``block_size`` and splits it in place.

    The axis of ``n`` items becomes two axes ``(num_blocks, block_size)`` at
    the same position (``pad_to_blocks`` moves the block axis to the front
    instead). ``mode="constant"`` pads with ``value``; ``mode="edge"`` repeats
    the last entry, so padded rows hold real data and a kernel whose gradient
    is not finite at a zero row stays finite on them. No copy when ``n`` is
    already a multiple of ``block_size``.
    """
    axis = axis % x.ndim
    n = x.shape[axis]
    nb = num_blocks(n, block_size)
    pad = nb * block_size - n
    if pad:
        widths = [(0, 0)] * x.ndim
        widths[axis] = (0, pad)
        x = jnp.pad(x, widths, mode="edge") if mode == "edge" else jnp.pad(x, widths, constant_values=value)
    return x.reshape(x.shape[:axis] + (nb, block_size) + x.shape[axis + 1 :])


def block_valid_at(index, block_size: int, total: int, offsets):
    """``block_valid`` at chosen ``offsets`` (an int array of any shape) within block ``index``.

    True where ``block_start(index, block_size, total) + offsets`` was not
    already in block ``index - 1``; ``block_valid`` is this at
    ``arange(block_size)``. For positions gathered from a block (the rows of a
    selected candidate run) without materialising the whole mask.
    """
    return block_start(index, block_size, total) + offsets >= index * block_size


# --------------------------------------------------------------------------- across devices


def psum_local_gradient(x, axis_name):
    """``psum(x)`` whose cotangent goes back unchanged to each device's own ``x``.

    Every device holds the same global value, and the gradient of that value
    reaches the local terms once (the gather's transpose adds the
    cross-device terms). A plain ``psum`` transposes to a ``psum`` under
    ``pmap``, which would multiply the gradient by the number of devices;
    this one gives the same gradient under ``pmap`` and ``shard_map``.
    """

    @jax.custom_vjp
    def total(x):
        return jax.lax.psum(x, axis_name)

    def fwd(x):
        return total(x), None

    def bwd(_, ct):
        return (jax.lax.pcast(ct, axis_name, to="varying"),)

    total.defvjp(fwd, bwd)
    return total(x)


def global_mean(total, count, axis_name):
    """``total / count`` (0 for a zero count), each summed over ``axis_name`` when it is given.

    The count gets no gradient; the total's gradient reaches each device's own
    terms once (:func:`psum_local_gradient`).
    """
    if axis_name is not None:
        total = psum_local_gradient(total, axis_name)
        count = jax.lax.psum(jax.lax.stop_gradient(count), axis_name)
    return _numerics.safe_divide(total, count)


def gathered_batch(axis_name, *arrays):
    """The arrays concatenated over the devices of ``axis_name`` and this device's offset in them.

    Returns ``(gathered, offset)``: each array all-gathered along its first
    axis (tiled, in device order), and ``axis_index * n`` with ``n`` the local
    length, the global index of this device's first row. The gather's
    transpose sends each device the cotangent of its own rows, summed over
    the devices that used them.
    """
    gathered = tuple(jax.lax.all_gather(a, axis_name, axis=0, tiled=True) for a in arrays)
    offset = jax.lax.axis_index(axis_name) * arrays[0].shape[0]
    return gathered, offset
