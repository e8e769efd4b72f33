"""The linear-head engine: per-token statistics of ``softmax(inputs @ kernel + bias)`` without the logits.

Every loss on a linear layer's logits over a large vocabulary (the fused
cross-entropy, the softmax statistics, distillation, preference and policy
losses) is a *declaration* over this module: the tuple of per-row
statistics it needs (:class:`Stat`) and a plain-JAX formula on them. The
engine owns everything else, once:

* **the tile's logits**: ``a = softcap(x @ W + b) / T`` of a
  ``block_size x vocab_block_size`` tile (``softcap(z) = c tanh(z / c)``,
  the identity without a cap), computed by one function in the forward pass,
  the second pass and the backward pass, on the same block boundaries, so
  the backward recomputes the forward's numbers bit for bit; GEMMs in the
  input dtype with float32 accumulation;
* **row and vocabulary blocks** (``_tiles.block_start``: the last block is
  pulled back to the end of its axis, nothing is padded or copied), with a
  plain call instead of a loop when an axis is one block;
* **online per-row moments**: a running maximum ``m`` and
  ``s = sum_c exp(a_c - m)`` per head, and, sharing that shift, any number of
  softmax-weighted sums ``t = sum_c exp(a_c - m) f_c`` (the entropy's term
  centred on ``m``, so large logits lose no precision) and plain masked sums
  of elementwise terms (the label's logit, class-weighted sums);
* **a second pass** over the vocabulary for statistics that need the final
  normalisers first (the Jensen-Shannon divergence's ``log M``);
* **vocabulary parallelism** (``axis_name``): each device scans its shard of
  the kernel; the moments are merged with ``pmax``/``psum`` and the input's
  gradient is ``psum``'ed once;
* **one backward pass**: vocabulary blocks outside, token blocks inside; each
  tile is recomputed, its ``d loss / d logits`` is the sum over the
  statistics of their cotangent times their derivative (``lse``: ``p``;
  entropy: ``-p (log p + H)``; a softmax mean ``E = sum p f``:
  ``p (f' + f - E)``; a plain sum: ``jax.vjp`` of its elementwise term),
  chained through the temperature and the soft-cap, cast to the input dtype,
  and two GEMMs accumulate ``dInputs`` (a float32 ``(N, D)`` carry) and
  ``dKernel`` (a float32 ``(D, vocab_block_size)`` block, written once per
  vocabulary block), with ``dBias`` and per-class gradients beside them.

``None`` block sizes follow ``_block_policy.HEADS``: the dense evaluation of
the same declaration (whole logits, plain autodiff) up to
``HEADS.dense_max`` logits on one device, else the tiled ``jax.custom_vjp``.

A new head loss declares itself, it never writes a loop::

    config = make_config(fn, n, v, block_size=block_size, vocab_block_size=vocab_block_size,
                         softcap=logit_softcap, temperature=temperature, axis_name=axis_name)
    lse, label = statistics((LOGSUMEXP, LABEL_LOGIT), inputs, kernel, bias,
                            config=config, labels=labels, where=where)
    log_prob = label - lse        # per token, differentiable through the engine's backward

Temporary memory of the tiled value and gradient: one forward tile and one
backward tile (a few ``block_size x vocab_block_size`` float32 arrays each,
per head), the float32 ``(N, D)`` input-gradient carry, a float32
``(D, vocab_block_size)`` kernel-gradient block and a few ``(N,)`` per-row
statistics; never ``O(N V)``. Masked rows (``where``, ignored tokens) are
zeroed per ``(block_size, D)`` row block, so masking adds no ``(N, D)``
buffer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from . import _block_policy, _checks, _tiles

__all__ = [
    "ENTROPY",
    "LABEL_LOGIT",
    "LOGSUMEXP",
    "Config",
    "Stat",
    "Tile",
    "check_bias",
    "check_head",
    "check_ignore_index",
    "check_label_range",
    "check_labels",
    "check_where",
    "label_logit",
    "make_config",
    "num_classes",
    "row_mask",
    "static_number",
    "statistics",
]

KINDS = ("lse", "entropy", "sum", "mean", "after")


class Stat(NamedTuple):
    """One per-row statistic of the heads' softmax, with its derivative known to the engine.

    * ``"lse"``: ``logsumexp_c a_c`` of head ``head`` (derivative ``p``);
    * ``"entropy"``: ``H = -sum_c p_c log p_c`` of head ``head``
      (derivative ``-p (log p + H)``);
    * ``"sum"``: ``sum_c term(tile)_c`` of an elementwise ``term`` (the
      derivative is ``jax.vjp`` of the term, per tile);
    * ``"mean"``: ``E = sum_c p_c term(tile)_c`` under head ``head``'s
      softmax (derivative ``p (f' + f - E)`` for the differentiable head,
      ``p f'`` under the other one);
    * ``"after"``: ``sum_c term(tile)[0]_c`` where ``term`` reads the final
      normalisers ``tile.lse`` (a second pass over the vocabulary) and
      returns a tuple of elementwise arrays whose row sums (the value and
      auxiliary sums) are handed to ``grad(tile, sums)``, the *total*
      derivative of the value with respect to head 0's logits (the
      normalisers' dependence included).

    Only head 0 (``inputs``, ``kernel``, ``bias``, ``classes``) is
    differentiated; head 1 (``other``) is a fixed target. ``term`` and
    ``grad`` must be hashable (module-level functions or NamedTuples with
    ``__call__``).
    """

    kind: str
    head: int = 0
    term: Callable | None = None
    grad: Callable | None = None


class Tile(NamedTuple):
    """What a statistic's ``term`` sees of one ``(r, c)`` tile (the whole logits on the dense path).

    Attributes:
      logits: per head, the ``(r, c)`` scaled logits ``softcap(x W + b) / T``
        in the accumulator dtype (head 1 cast to head 0's).
      labels: ``(r,)`` global class ids, or None.
      columns: ``(c,)`` global class ids of the tile's columns.
      classes: per-class arrays (``(c,)`` slices, e.g. class weights).
      lse: per head, the final ``(r,)`` logsumexp (None before it is known).
    """

    logits: tuple
    labels: Any
    columns: Any
    classes: tuple
    lse: tuple

    @property
    def hit(self):
        """``(r, c)`` bool: the column is the row's label."""
        return self.columns[None, :] == self.labels[:, None]

    def log_prob(self, head: int = 0):
        """``log softmax`` of head ``head`` (needs ``lse``)."""
        return self.logits[head] - self.lse[head][:, None]


def label_logit(tile: Tile):
    """The term of head 0's logit at the label (0 for a label outside the vocabulary)."""
    return jnp.where(tile.hit, tile.logits[0], 0)


#: ``logsumexp`` of head 0.
LOGSUMEXP = Stat("lse")
#: Entropy of head 0's softmax.
ENTROPY = Stat("entropy")
#: Head 0's logit at the label (``log p_y = label logit - logsumexp``).
LABEL_LOGIT = Stat("sum", term=label_logit)


class Config(NamedTuple):
    """How the heads' logits are formed and blocked (static, hashable).

    Attributes:
      blocks: ``(token block, vocabulary block)``, or None for the dense
        evaluation.
      softcap: ``c`` of ``c tanh(z / c)``, or None.
      inv_temperature: ``1 / T``.
      precision: ``jax.lax.Precision`` of the GEMMs.
      axis_name: the ``shard_map`` axis that splits the vocabulary, or None.
    """

    blocks: tuple[int, int] | None
    softcap: float | None = None
    inv_temperature: float = 1.0
    precision: Any = jax.lax.Precision.HIGHEST
    axis_name: Any = None


# --------------------------------------------------------------------------- argument checks


def static_number(value, name: str, fn: str, **bounds) -> float:
    """A hyperparameter that shapes the computation: a Python number within ``bounds``."""
    if _checks.is_traced(value):
        raise TypeError(f"{fn}: `{name}` must be a Python number, not a traced value.")
    _checks.check_number(value, name, fn, **bounds)
    return float(value)


def check_head(fn: str, inputs, kernel, x_name: str = "inputs", k_name: str = "kernel"):
    """``(inputs (..., D), kernel (D, V))`` as arrays, floating, ``V >= 1``."""
    _checks.check_floating(inputs, x_name, fn)
    _checks.check_floating(kernel, k_name, fn)
    x = jnp.asarray(inputs)
    k = jnp.asarray(kernel)
    if x.ndim < 1:
        raise ValueError(f"{fn}: `{x_name}` must have shape (..., D); got shape {x.shape}.")
    d = x.shape[-1]
    if k.ndim != 2 or k.shape[0] != d:
        raise ValueError(
            f"{fn}: `{k_name}` must have shape (D, V) with D = {x_name}.shape[-1] = {d}; got shape {k.shape}."
        )
    if k.shape[1] == 0:
        raise ValueError(f"{fn}: `{k_name}` must have at least one class (V >= 1); got shape {k.shape}.")
    return x, k


def check_bias(fn: str, bias, name: str, v: int):
    """An optional floating ``(V,)`` per-class array (a bias, class weights)."""
    if bias is None:
        return None
    _checks.check_floating(bias, name, fn)
    if tuple(np.shape(bias)) != (v,):
        raise ValueError(
            f"{fn}: `{name}` must have shape (V,) = ({v},), one entry per class of the kernel; "
            f"got {tuple(np.shape(bias))}."
        )
    return jnp.asarray(bias)


def check_labels(fn: str, labels, batch_shape: tuple, name: str = "labels"):
    """Integer labels of the tokens' shape ``(...)``."""
    _checks.check_integer(labels, name, fn)
    y = jnp.asarray(labels)
    if y.shape != tuple(batch_shape):
        raise ValueError(
            f"{fn}: `{name}` must have the shape of the inputs without their last axis, "
            f"{tuple(batch_shape)}; got {y.shape}."
        )
    return y


def check_where(fn: str, where, batch_shape: tuple):
    """An optional bool mask of the tokens' shape."""
    if where is None:
        return None
    w = jnp.asarray(where)
    if w.dtype != jnp.bool_ or w.shape != tuple(batch_shape):
        raise ValueError(
            f"{fn}: `where` must be a bool array of shape {tuple(batch_shape)}; got {w.dtype} {w.shape}."
        )
    return w


def check_ignore_index(fn: str, ignore_index):
    """``ignore_index``: None, an int, or a traced integer."""
    if ignore_index is not None and not _checks.is_traced(ignore_index):
        if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"{fn}: `ignore_index` must be an int or None; got {ignore_index!r}.")
    return ignore_index


def check_label_range(fn: str, labels, num_classes: int, *, ignore_index=None, where=None, name="labels"):
    """A ``ValueError`` for concrete labels outside ``[0, V)`` that are neither ignored nor masked.

    ``_checks.check_labels_in_range`` on the tokens that count: nothing is
    checked when ``labels``, ``ignore_index`` or ``where`` is traced (under
    ``jit``/``shard_map`` such a label gives NaN instead).
    """
    if any(_checks.is_traced(a) for a in (labels, ignore_index, where)):
        return
    if where is not None:
        if isinstance(labels, jax.Array) and not labels.is_fully_addressable:
            return
        labels = np.where(np.asarray(where), np.asarray(labels), 0)
    _checks.check_labels_in_range(labels, num_classes, name, fn, ignore_index=ignore_index)


def make_config(
    fn: str,
    n: int,
    v: int,
    *,
    block_size,
    vocab_block_size,
    softcap=None,
    temperature=1.0,
    precision=jax.lax.Precision.HIGHEST,
    axis_name=None,
    two_pass: bool = False,
) -> Config:
    """Checks the tiling arguments and resolves them with the block policy (``_block_policy.HEADS``).

    ``two_pass``: the declaration has an after-statistic (a second sweep),
    whose default CPU blocks are ``_block_policy.resolve_two_pass_blocks``'.
    """
    block_size = _block_policy.check_block_size(block_size, "block_size", fn)
    vocab_block_size = _block_policy.check_block_size(vocab_block_size, "vocab_block_size", fn)
    if softcap is not None:
        softcap = static_number(softcap, "logit_softcap", fn, low=0, low_inclusive=False)
    if _checks.is_traced(temperature):
        raise TypeError(f"{fn}: `temperature` must be a Python number, not a traced value.")
    _checks.check_temperature(temperature, fn)
    resolve = _block_policy.resolve_two_pass_blocks if two_pass else _block_policy.resolve_blocks
    blocks = resolve(_block_policy.HEADS, n, v, block_size, vocab_block_size, dense=axis_name is None)
    return Config(blocks, softcap, 1.0 / float(temperature), precision, axis_name)


def num_classes(v: int, axis_name) -> Any:
    """The global vocabulary size: ``V`` of this device's shard times the devices of ``axis_name``."""
    return v if axis_name is None else v * jax.lax.psum(1, axis_name)


def row_mask(where, labels=None, ignore_index=None):
    """The tokens that count: ``where`` and ``labels != ignore_index`` (None: all of them)."""
    mask = where
    if ignore_index is not None and labels is not None:
        keep = labels != ignore_index
        mask = keep if mask is None else mask & keep
    return mask


# --------------------------------------------------------------------------- the tile


def _acc_dtype(dtype):
    return jnp.promote_types(dtype, jnp.float32)


def _tile_logits(cfg, xb, kb, bb):
    """``(a, zc)``: the scaled logits ``softcap(xb kb + bb) / T`` and the capped logits ``zc``.

    The one definition of a tile's logits: the forward pass, the second pass,
    the backward pass and the dense evaluation all call it.
    """
    acc = _acc_dtype(xb.dtype)
    z = jax.lax.dot_general(
        xb, kb, (((xb.ndim - 1,), (0,)), ((), ())), precision=cfg.precision, preferred_element_type=acc
    )
    if bb is not None:
        z = z + bb.astype(acc)
    if cfg.softcap is not None:
        z = cfg.softcap * jnp.tanh(z / cfg.softcap)
    return (z if cfg.inv_temperature == 1.0 else z * cfg.inv_temperature), z


def _chain(cfg, da, zc):
    """``d loss / d (x W + b)`` from ``d loss / d a`` (temperature, then the soft-cap's ``1 - tanh^2``)."""
    if cfg.inv_temperature != 1.0:
        da = da * cfg.inv_temperature
    if cfg.softcap is not None:
        da = da * (1 - jnp.square(zc / cfg.softcap))
    return da


def _loop(n, body, init):
    """``fori_loop`` over ``range(n)``; a plain call for a single block (XLA sees one GEMM)."""
    if n == 1:
        return body(0, init)
    return jax.lax.fori_loop(0, n, body, init)


def _finite(m):
    """The running maximum as a shift: 0 for a row that has seen only ``-inf`` (or NaN)."""
    return jnp.where(jnp.isfinite(m), m, 0)


# --------------------------------------------------------------------------- the plan


class _Plan(NamedTuple):
    """The static description of one tiled call (hashable: a ``nondiff`` argument)."""

    stats: tuple
    cfg: Config
    n: int
    v: int
    heads: tuple  # which heads keep an online softmax state
    vma: tuple  # inside shard_map: the mesh axes over which the operands vary

    @property
    def tb(self):
        return self.cfg.blocks[0]

    @property
    def vb(self):
        return self.cfg.blocks[1]

    @property
    def two_pass(self):
        return any(s.kind == "after" for s in self.stats)


def _heads_used(stats, has_other):
    used = [False, False]
    for s in stats:
        if s.kind in ("lse", "entropy", "mean"):
            used[s.head] = True
        if s.kind == "after":
            used[0] = True
            used[1] = used[1] or has_other
    return tuple(used)


def _moments(stats, head):
    """The indices of the statistics that are online moments of ``head``'s softmax."""
    return tuple(k for k, s in enumerate(stats) if s.kind in ("entropy", "mean") and s.head == head)


def _sums(stats, kind="sum"):
    return tuple(k for k, s in enumerate(stats) if s.kind == kind)


# --------------------------------------------------------------------------- online moments


def _init(plan, rows, acc, axes):
    """The empty row state: per head ``(m, s, t...)``, then the plain sums."""

    def vary(a):
        return _tiles.make_varying(a, axes)

    heads = []
    for h, used in enumerate(plan.heads):
        if not used:
            heads.append(None)
            continue
        m, s = _tiles.init_logsumexp((rows,), acc)
        ts = tuple(vary(jnp.zeros((rows,), acc)) for _ in _moments(plan.stats, h))
        heads.append((vary(m), vary(s), ts))
    sums = tuple(vary(jnp.zeros((rows,), acc)) for _ in _sums(plan.stats))
    return tuple(heads), sums


def _update_head(plan, h, state, tile, valid):
    """Folds head ``h``'s tile into its state ``(m, s, t...)`` with one running shift."""
    m, s, ts = state
    a = jnp.where(valid[None, :], tile.logits[h], -jnp.inf)
    m_new = jnp.maximum(m, jnp.max(a, axis=1))
    shift = _finite(m_new)
    alpha = jnp.exp(m - shift)
    e = jnp.exp(a - shift[:, None])
    out = []
    for k, t in zip(_moments(plan.stats, h), ts, strict=True):
        stat = plan.stats[k]
        if stat.kind == "entropy":  # t = sum e (a - m), centred on the running shift
            f = a - shift[:, None]
            out.append(alpha * (t + s * (_finite(m) - shift)) + jnp.sum(jnp.where(e > 0, e * f, 0), axis=1))
        else:
            f = stat.term(tile)
            out.append(alpha * t + jnp.sum(jnp.where(e > 0, e * f, 0), axis=1))
    return m_new, s * alpha + jnp.sum(e, axis=1), tuple(out)


def _update(plan, state, tile, valid):
    heads, sums = state
    heads = tuple(
        None if st is None else _update_head(plan, h, st, tile, valid) for h, st in enumerate(heads)
    )
    sums = tuple(
        acc + jnp.sum(jnp.where(valid[None, :], plan.stats[k].term(tile), 0), axis=1)
        for k, acc in zip(_sums(plan.stats), sums, strict=True)
    )
    return heads, sums


def _merge(plan, state):
    """The row state over every device of ``axis_name`` (``pmax`` of ``m``, rescaled ``psum``)."""
    axis = plan.cfg.axis_name
    if axis is None:
        return state
    heads, sums = state
    merged = []
    for h, st in enumerate(heads):
        if st is None:
            merged.append(None)
            continue
        m, s, ts = st
        m_all = jax.lax.pmax(m, axis)
        shift = _finite(m_all)
        alpha = jnp.exp(m - shift)
        out = []
        for k, t in zip(_moments(plan.stats, h), ts, strict=True):
            centred = plan.stats[k].kind == "entropy"
            out.append(jax.lax.psum(alpha * (t + s * (_finite(m) - shift)) if centred else alpha * t, axis))
        merged.append((m_all, jax.lax.psum(s * alpha, axis), tuple(out)))
    return tuple(merged), tuple(jax.lax.psum(a, axis) for a in sums)


def _logsumexp(m, s):
    # NaN logits (a NaN in the kernel) give NaN, not -inf
    return jnp.where(jnp.isnan(s), jnp.nan, _tiles.finalize_logsumexp((m, s)))


def _finalize(plan, state):
    """``(lse per head, value per statistic)`` of a merged row state (after-statistics: None)."""
    heads, sums = state
    lse = tuple(None if st is None else _logsumexp(st[0], st[1]) for st in heads)
    values = [None] * len(plan.stats)
    for h, st in enumerate(heads):
        if st is None:
            continue
        _, s, ts = st
        for k, t in zip(_moments(plan.stats, h), ts, strict=True):
            ratio = t / s
            values[k] = jnp.log(s) - ratio if plan.stats[k].kind == "entropy" else ratio
    for k in range(len(plan.stats)):
        if plan.stats[k].kind == "lse":
            values[k] = lse[plan.stats[k].head]
    for k, acc in zip(_sums(plan.stats), sums, strict=True):
        values[k] = acc
    return lse, values


# --------------------------------------------------------------------------- the tiled sweep


def _vocab_slices(plan, j, *arrays):
    """Vocabulary block ``j``: its start, validity and the slices of ``(D, V)`` / ``(V,)`` arrays."""
    start = _tiles.block_start(j, plan.vb, plan.v)
    valid = _tiles.block_valid(j, plan.vb, plan.v)
    out = [
        None if a is None else jax.lax.dynamic_slice_in_dim(a, start, plan.vb, axis=a.ndim - 1)
        for a in arrays
    ]
    return start, valid, out


def _token_slices(plan, i, *arrays):
    start = _tiles.block_start(i, plan.tb, plan.n)
    valid = _tiles.block_valid(i, plan.tb, plan.n)
    out = [None if a is None else jax.lax.dynamic_slice_in_dim(a, start, plan.tb) for a in arrays]
    return start, valid, out


def _masked_rows(mb, *blocks):
    """The row blocks with the rows ``mb`` drops zeroed (tile-sized; a NaN there never reaches a GEMM)."""
    if mb is None:
        return blocks
    return tuple(None if a is None else jnp.where(mb[:, None], a, 0) for a in blocks)


def _offset(plan):
    """The global id of this device's first vocabulary entry."""
    if plan.cfg.axis_name is None:
        return 0
    return jax.lax.axis_index(plan.cfg.axis_name) * plan.v


def _make_tile(plan, vstart, xb, kb, bb, xob, kob, bob, yb, classes_b, lse):
    a, zc = _tile_logits(plan.cfg, xb, kb, bb)
    logits = (a,)
    if xob is not None:
        b, _ = _tile_logits(plan.cfg, xob, kob, bob)
        logits = (a, b.astype(a.dtype))
    columns = vstart + _offset(plan) + jnp.arange(plan.vb)
    return Tile(logits, yb, columns, tuple(c.astype(a.dtype) for c in classes_b), lse), zc


def _sweep(plan, x, k, b, xo, ko, bo, labels, mask, classes):
    """The tiled forward pass: ``(values, lse per head, after-sums)``, each per row ``(N,)``.

    ``mask`` (optional ``(N,)`` bool) zeroes the dropped rows of each token
    block before its GEMMs; their values are finite and overwritten by the caller.
    """
    acc = _acc_dtype(x.dtype)
    nvb = _tiles.num_blocks(plan.v, plan.vb)
    two_pass = plan.two_pass
    after = _sums(plan.stats, "after")
    axis = plan.cfg.axis_name
    # per-row results merged over `axis_name` inside the token loop are replicated over it
    out_axes = tuple(a for a in plan.vma if a != axis) if two_pass else plan.vma

    def token_step(i, out):
        start, _, (xb, xob, yb, mb) = _token_slices(plan, i, x, xo, labels, mask)
        xb, xob = _masked_rows(mb, xb, xob)

        def first(j, state):
            vstart, valid, (kb, bb, kob, bob, *cb) = _vocab_slices(plan, j, k, b, ko, bo, *classes)
            tile, _ = _make_tile(plan, vstart, xb, kb, bb, xob, kob, bob, yb, cb, None)
            return _update(plan, state, tile, valid)

        state = _loop(nvb, first, _init(plan, plan.tb, acc, plan.vma))
        if not two_pass:
            rows = state
        else:
            state = _merge(plan, state)
            lse, _ = _finalize(plan, state)

            def second(j, sums):
                vstart, valid, (kb, bb, kob, bob, *cb) = _vocab_slices(plan, j, k, b, ko, bo, *classes)
                tile, _ = _make_tile(plan, vstart, xb, kb, bb, xob, kob, bob, yb, cb, lse)
                new = []
                for kk, acc_k in zip(after, sums, strict=True):
                    terms = plan.stats[kk].term(tile)
                    new.append(
                        tuple(
                            a + jnp.sum(jnp.where(valid[None, :], t, 0), axis=1)
                            for a, t in zip(acc_k, terms, strict=True)
                        )
                    )
                return tuple(new)

            sums0 = tuple(
                tuple(
                    _tiles.make_varying(jnp.zeros((plan.tb,), acc), plan.vma) for _ in range(_arity(plan, kk))
                )
                for kk in after
            )
            sums = _loop(nvb, second, sums0)
            if axis is not None:
                sums = jax.lax.psum(sums, axis)
            rows = (state, sums)
        # the rows of a pulled-back last token block are recomputed identically: plain overwrite
        return jax.tree_util.tree_map(
            lambda o, r: jax.lax.dynamic_update_slice_in_dim(o, r, start, axis=0), out, rows
        )

    proto = _init(plan, plan.tb, acc, ())
    if two_pass:
        proto = (
            proto,
            tuple(tuple(jnp.zeros((plan.tb,), acc) for _ in range(_arity(plan, kk))) for kk in after),
        )
    out0 = jax.tree_util.tree_map(lambda a: _tiles.make_varying(jnp.zeros((plan.n,), acc), out_axes), proto)
    rows = _loop(_tiles.num_blocks(plan.n, plan.tb), token_step, out0)
    if two_pass:
        state, sums = rows
    else:
        state, sums = _merge(plan, rows), ()
    lse, values = _finalize(plan, state)
    for kk, s in zip(after, sums, strict=True):
        values[kk] = s[0]
    return tuple(values), lse, sums


def _arity(plan, k):
    """How many row sums an after-statistic's term returns (traced once on a 1 x 1 tile)."""
    stat = plan.stats[k]
    one = jnp.zeros((1, 1), jnp.float32)
    tile = Tile(
        (one,) * (2 if plan.heads[1] else 1),
        jnp.zeros((1,), jnp.int32),
        jnp.zeros((1,), jnp.int32),
        (),
        (jnp.zeros((1,), jnp.float32),) * 2,
    )
    return len(jax.eval_shape(lambda t: stat.term(t), tile))


# --------------------------------------------------------------------------- the backward pass


def _is_zero(ct):
    return ct is None or isinstance(ct, SymbolicZero)


def _dlogits(plan, tile, values, aux, cts, valid):
    """``(d loss / d a, d loss / d classes)`` of one tile: each statistic's cotangent times its derivative.

    ``valid`` masks the tile's pairs (overlap of pulled-back blocks,
    ``where``); ``values``/``aux``/``cts`` are the rows' statistics, the
    after-statistics' sums and the statistics' cotangents.
    """
    a = tile.logits[0]
    probs = {}

    def prob(h):
        if h not in probs:
            probs[h] = jnp.exp(tile.log_prob(h))
        return probs[h]

    da = None
    coef = None  # the per-row coefficient of p_0
    dcls = [None] * len(tile.classes)

    def add(x, y):
        return y if x is None else x + y

    for k, stat in enumerate(plan.stats):
        g = cts[k]
        if _is_zero(g):
            continue
        if stat.kind == "lse":
            if stat.head == 0:
                coef = add(coef, g)
        elif stat.kind == "entropy":
            if stat.head == 0:
                da = add(da, -g[:, None] * prob(0) * (tile.log_prob(0) + values[k][:, None]))
        elif stat.kind in ("sum", "mean"):
            weight = g[:, None] if stat.kind == "sum" else g[:, None] * prob(stat.head)
            weight = jnp.where(valid, weight, 0)

            def term(a_, classes_, stat=stat):
                return stat.term(tile._replace(logits=(a_,) + tile.logits[1:], classes=classes_))

            f, vjp = jax.vjp(term, a, tile.classes)
            ct = jnp.broadcast_to(weight, f.shape).astype(f.dtype)
            d_a, d_classes = vjp(_tiles.make_varying(ct, _tiles.varying_axes(f)))
            da = add(da, d_a)
            if stat.kind == "mean" and stat.head == 0:
                da = add(da, weight * (f - values[k][:, None]))
            dcls = [add(x, y) for x, y in zip(dcls, d_classes, strict=True)]
        elif stat.kind == "after":
            da = add(da, g[:, None] * stat.grad(tile, aux[k]))
    if coef is not None:
        da = add(da, coef[:, None] * prob(0))
    if da is None:
        da = jnp.zeros_like(a)
    return jnp.where(valid, da, 0), dcls


def _backward(plan, x, k, b, xo, ko, bo, labels, mask, classes, lse, values, aux, cts):
    acc = _acc_dtype(x.dtype)
    nvb = _tiles.num_blocks(plan.v, plan.vb)
    ntb = _tiles.num_blocks(plan.n, plan.tb)
    d = x.shape[1]
    after = _sums(plan.stats, "after")

    def vary(a):
        return _tiles.make_varying(a, plan.vma)

    # per-row arrays sliced per token block (None where absent)
    row_leaves = (labels, mask, lse, values, aux, cts)

    def vocab_step(j, carry):
        dx, dk, db, dcl = carry
        vstart, cvalid, (kb, bb, kob, bob, *cb) = _vocab_slices(plan, j, k, b, ko, bo, *classes)

        def token_step(i, inner):
            dx, dkb, dbb, dclb = inner
            start, rvalid, (xb, xob) = _token_slices(plan, i, x, xo)
            yb, mb, lse_b, values_b, aux_b, cts_b = jax.tree_util.tree_map(
                lambda r: jax.lax.dynamic_slice_in_dim(r, start, plan.tb), row_leaves
            )
            xb, xob = _masked_rows(mb, xb, xob)
            tile, zc = _make_tile(plan, vstart, xb, kb, bb, xob, kob, bob, yb, cb, lse_b)
            rows_ok = rvalid if mb is None else rvalid & mb
            valid = rows_ok[:, None] & cvalid[None, :]
            aux_k = dict(zip(after, aux_b, strict=True))
            da, dcls = _dlogits(plan, tile, values_b, aux_k, cts_b, valid)
            dz = _chain(plan.cfg, da, zc)
            dzc = dz.astype(x.dtype)
            dxb = jax.lax.dot_general(
                dzc, kb, (((1,), (1,)), ((), ())), precision=plan.cfg.precision, preferred_element_type=acc
            )
            (dxb,) = _masked_rows(mb, dxb)  # exactly 0 on dropped rows, whatever the kernel holds
            dx = jax.lax.dynamic_update_slice_in_dim(
                dx, jax.lax.dynamic_slice_in_dim(dx, start, plan.tb) + dxb, start, axis=0
            )
            dkb = dkb + jax.lax.dot_general(
                xb, dzc, (((0,), (0,)), ((), ())), precision=plan.cfg.precision, preferred_element_type=acc
            )
            if b is not None:
                dbb = dbb + jnp.sum(dz, axis=0)
            dclb = tuple(o if n is None else o + n.astype(acc) for o, n in zip(dclb, dcls, strict=True))
            return dx, dkb, dbb, dclb

        inner0 = (
            dx,
            vary(jnp.zeros((d, plan.vb), acc)),
            vary(jnp.zeros((plan.vb,), acc)),
            tuple(vary(jnp.zeros((plan.vb,), acc)) for _ in classes),
        )
        dx, dkb, dbb, dclb = _loop(ntb, token_step, inner0)
        # columns of a pulled-back last block that the previous block covered were masked to 0
        old = jax.lax.dynamic_slice_in_dim(dk, vstart, plan.vb, axis=1).astype(acc)
        dk = jax.lax.dynamic_update_slice_in_dim(dk, (old + dkb).astype(dk.dtype), vstart, axis=1)

        def put(total, block):
            return jax.lax.dynamic_update_slice_in_dim(
                total, jax.lax.dynamic_slice_in_dim(total, vstart, plan.vb) + block, vstart, axis=0
            )

        if b is not None:
            db = put(db, dbb)
        dcl = tuple(put(t, blk) for t, blk in zip(dcl, dclb, strict=True))
        return dx, dk, db, dcl

    init = (
        vary(jnp.zeros(x.shape, acc)),
        vary(jnp.zeros(k.shape, k.dtype)),
        vary(jnp.zeros((plan.v,), acc)),
        tuple(vary(jnp.zeros((plan.v,), acc)) for _ in classes),
    )
    dx, dk, db, dcl = _loop(nvb, vocab_step, init)
    if plan.cfg.axis_name is not None:
        dx = jax.lax.psum(dx, plan.cfg.axis_name)
    return (
        dx.astype(x.dtype),
        dk,
        None if b is None else db.astype(b.dtype),
        tuple(g.astype(c.dtype) for g, c in zip(dcl, classes, strict=True)),
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused(plan, x, k, b, xo, ko, bo, labels, mask, classes):
    return _sweep(plan, x, k, b, xo, ko, bo, labels, mask, classes)[0]


def _fused_fwd(plan, *primals):
    x, k, b, xo, ko, bo, labels, mask, classes = jax.tree_util.tree_map(
        lambda p: p.value, primals, is_leaf=lambda p: isinstance(p, jax.custom_derivatives.CustomVJPPrimal)
    )
    values, lse, aux = _sweep(plan, x, k, b, xo, ko, bo, labels, mask, classes)
    return values, (x, k, b, xo, ko, bo, labels, mask, classes, lse, values, aux)


def _fused_bwd(plan, residuals, cts):
    x, k, b, xo, ko, bo, labels, mask, classes, lse, values, aux = residuals
    acc = _acc_dtype(x.dtype)
    cts = tuple(None if _is_zero(g) else jnp.asarray(g, acc) for g in cts)
    if all(g is None for g in cts):
        dx, dk, db, dcl = None, None, None, tuple(None for _ in classes)
    else:
        aux = tuple(aux)
        dx, dk, db, dcl = _backward(plan, x, k, b, xo, ko, bo, labels, mask, classes, lse, values, aux, cts)
    return dx, dk, db, None, None, None, None, None, dcl


_fused.defvjp(_fused_fwd, _fused_bwd, symbolic_zeros=True)


# --------------------------------------------------------------------------- dense evaluation


def _dense(stats, cfg, x, k, b, xo, ko, bo, labels, classes):
    """The same statistics from the whole ``(N, V)`` logits, plain autodiff."""
    a, _ = _tile_logits(cfg, x, k, b)
    logits = (a,)
    if xo is not None:
        logits = (a, _tile_logits(cfg, xo, ko, bo)[0].astype(a.dtype))
    lse = tuple(jax.nn.logsumexp(z, axis=1) for z in logits)
    tile = Tile(logits, labels, jnp.arange(k.shape[1]), tuple(c.astype(a.dtype) for c in classes), lse)
    values = []
    for stat in stats:
        if stat.kind == "lse":
            values.append(lse[stat.head])
        elif stat.kind == "entropy":
            log_p = tile.log_prob(stat.head)
            values.append(-jnp.sum(jnp.exp(log_p) * log_p, axis=1))
        elif stat.kind == "sum":
            values.append(jnp.sum(stat.term(tile), axis=1))
        elif stat.kind == "mean":
            values.append(jnp.sum(jnp.exp(tile.log_prob(stat.head)) * stat.term(tile), axis=1))
        else:
            values.append(jnp.sum(stat.term(tile)[0], axis=1))
    return tuple(values)


# --------------------------------------------------------------------------- entry point


def statistics(
    stats: tuple,
    inputs,
    kernel,
    bias=None,
    *,
    config: Config,
    other: tuple | None = None,
    labels=None,
    where=None,
    classes: tuple = (),
) -> tuple:
    """Per-row values of ``stats`` for the head ``inputs @ kernel + bias``, never holding the logits.

    Args:
      stats: a tuple of :class:`Stat`.
      inputs: ``(N, D)`` floating activations (head 0, differentiated).
      kernel: ``(D, V)`` weights; with ``config.axis_name`` this device's
        vocabulary shard.
      bias: optional ``(V,)``.
      config: :class:`Config` (from :func:`make_config`).
      other: optional ``(inputs (N, D'), kernel (D', V), bias)`` of head 1,
        a fixed target (no gradient; pass it through ``stop_gradient``).
      labels: optional ``(N,)`` integer global class ids (``Tile.labels``).
      where: optional ``(N,)`` bool: ``False`` rows give 0 for every
        statistic and no gradient (the tiled path zeroes them in each
        ``(block_size, D)`` row block before its GEMMs, forward and
        backward, so bad values there never spread and no masked copy of
        the inputs is made).
      classes: ``(V,)`` per-class arrays handed to the terms
        (differentiated), e.g. class weights.

    Returns:
      One ``(N,)`` array per statistic, in the accumulator dtype
      (``promote_types(inputs.dtype, float32)``).

    The tiled path is a ``jax.custom_vjp`` (reverse mode). Under
    ``jax.jvp``/``jax.jacfwd`` called on the head function itself, the same
    tiled forward sweep is differentiated by JAX in forward mode instead
    (same memory as the forward pass).
    """
    for stat in stats:
        if stat.kind not in KINDS or stat.head not in (0, 1) or (stat.head == 1 and other is None):
            raise ValueError(f"linear-head statistics: bad statistic {stat!r} (kinds {KINDS}, heads 0/1)")
        if (
            stat.kind in ("sum", "mean", "after")
            and stat.term is None
            or stat.kind == "after"
            and not stat.grad
        ):
            raise ValueError(f"linear-head statistics: {stat!r} needs a term (and an after-statistic a grad)")
    x = jnp.asarray(inputs)
    k = jnp.asarray(kernel)
    xo, ko, bo = (None, None, None) if other is None else other
    classes = tuple(classes)
    if config.blocks is None:
        if where is not None:  # the dense path holds (N, V) logits anyway: a masked copy of the inputs
            x = jnp.where(where[:, None], x, 0)
            xo = None if xo is None else jnp.where(where[:, None], xo, 0)
        values = _dense(stats, config, x, k, bias, xo, ko, bo, labels, classes)
    else:
        plan = _Plan(
            stats=tuple(stats),
            cfg=config,
            n=x.shape[0],
            v=k.shape[1],
            heads=_heads_used(stats, other is not None),
            vma=_tiles.varying_axes(x, k, bias, xo, ko, bo, labels, where, *classes),
        )
        if _tiles.forward_mode(x, k, bias, classes):
            values = _sweep(plan, x, k, bias, xo, ko, bo, labels, where, classes)[0]
        else:
            values = _fused(plan, x, k, bias, xo, ko, bo, labels, where, classes)
    if where is not None:
        values = tuple(jnp.where(where, v, 0) for v in values)
    return tuple(values)
