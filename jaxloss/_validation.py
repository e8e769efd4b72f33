"""``check_inputs``: run-time data checks that cannot be done at trace time.

Shapes, dtypes and options are validated by every jaxloss function at trace
time. What cannot be seen then is the *data*: a class index out of range, a
negative probability, a distribution that does not sum to 1, a NaN. Under
``jit`` jaxloss does not check these (it would cost a device-to-host sync in
every step); an integer label out of range gives NaN for its example (never
another class's loss). Users who want them caught call ``check_inputs``, which
works eagerly (raising ``ValueError``) and under ``jax.experimental.checkify``
(inside ``jit``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.experimental import checkify
from jax.typing import ArrayLike

from . import _checks

__all__ = ["check_inputs"]


def _concrete(*xs) -> bool:
    return not any(isinstance(x, jax.core.Tracer) for x in xs if x is not None)


def _check(ok, message: str, **values):
    """Raises ``ValueError`` eagerly; records a checkify error when traced."""
    if _concrete(ok, *values.values()):
        if not bool(ok):
            raise ValueError(message.format(**{k: _fmt(v) for k, v in values.items()}))
        return
    checkify.check(ok, message, **values)


def _fmt(v):
    try:
        return float(v) if jnp.ndim(v) == 0 and jnp.issubdtype(jnp.asarray(v).dtype, jnp.floating) else int(v)
    except (TypeError, ValueError):
        return v


def check_inputs(
    *,
    probabilities: ArrayLike | None = None,
    log_probabilities: ArrayLike | None = None,
    targets01: ArrayLike | None = None,
    logits: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    num_classes: int | None = None,
    ignore_index: int | None = None,
    embeddings: ArrayLike | None = None,
    axis: int = -1,
    atol: float = 1e-4,
) -> None:
    """Checks the run-time values of loss inputs; eager ``ValueError`` or a checkify error.

    Checks, for the arguments given:

    * ``probabilities``: finite, ``>= 0`` and summing to 1 along ``axis``
      (within ``atol``);
    * ``log_probabilities``: not NaN, ``<= atol`` and ``logsumexp`` along
      ``axis`` equal to 0 (within ``atol``);
    * ``targets01``: binary targets / probabilities in ``[0, 1]``;
    * ``logits``: no NaN and no ``+inf`` (``-inf`` is allowed: a masked class);
    * ``labels`` (with ``num_classes``): integer class indices in
      ``[0, num_classes)``, except entries equal to ``ignore_index``;
    * ``embeddings``: finite.

    Called on concrete arrays it raises ``ValueError`` naming the argument and
    the offending value. Called inside a traced function (``jit``, ``grad``)
    it records the checks with ``jax.experimental.checkify.check``, so the
    function must be wrapped in ``checkify.checkify``; see the example.

    Args:
      probabilities: probabilities to check (any shape); omitted if None.
      log_probabilities: log-probabilities to check (any shape); omitted if None.
      targets01: binary targets or probabilities in ``[0, 1]``; omitted if None.
      logits: logits to check (any shape); omitted if None.
      labels: integer class indices (any shape); omitted if None.
      num_classes: number of classes for ``labels`` (required with it).
      ignore_index: a label value that is exempt from the range check.
      axis: the class / distribution axis.
      embeddings: embeddings to check (any shape); omitted if None.
      atol: tolerance of the normalisation checks.

    Returns:
      None.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jax.experimental import checkify
      >>> check_inputs(labels=jnp.array([0, 2]), num_classes=3)  # fine: returns None
      >>> check_inputs(labels=jnp.array([0, 3]), num_classes=3)
      Traceback (most recent call last):
      ...
      ValueError: check_inputs: `labels` must lie in [0, 3) (or equal ignore_index); found 3.
      >>> def loss(logits, labels):
      ...     check_inputs(logits=logits, labels=labels, num_classes=logits.shape[-1])
      ...     return -jax.nn.log_softmax(logits)[jnp.arange(2), labels].mean()
      >>> err, value = jax.jit(checkify.checkify(loss))(jnp.zeros((2, 3)), jnp.array([0, 5]))
      >>> print(err.get().split(" (`check`")[0])
      check_inputs: `labels` must lie in [0, 3) (or equal ignore_index); found 5.
    """
    fn = "check_inputs"
    if probabilities is not None:
        p = jnp.asarray(probabilities)
        _checks.check_floating(p, "probabilities", fn)
        _check(jnp.all(jnp.isfinite(p)), f"{fn}: `probabilities` must be finite.")
        _check(jnp.all(p >= 0), f"{fn}: `probabilities` must be >= 0; found {{v}}.", v=jnp.min(p))
        dev = jnp.max(jnp.abs(jnp.sum(p, axis=axis) - 1), initial=0.0)
        _check(dev <= atol, f"{fn}: `probabilities` must sum to 1 along axis {axis}; off by {{v}}.", v=dev)
    if log_probabilities is not None:
        lp = jnp.asarray(log_probabilities)
        _checks.check_floating(lp, "log_probabilities", fn)
        _check(~jnp.any(jnp.isnan(lp)), f"{fn}: `log_probabilities` must not be NaN.")
        _check(jnp.all(lp <= atol), f"{fn}: `log_probabilities` must be <= 0; found {{v}}.", v=jnp.max(lp))
        dev = jnp.max(jnp.abs(jax.nn.logsumexp(lp, axis=axis)), initial=0.0)
        _check(
            dev <= atol,
            f"{fn}: `log_probabilities` must log-sum-exp to 0 along axis {axis}; off by {{v}}.",
            v=dev,
        )
    if targets01 is not None:
        t = jnp.asarray(targets01)
        _check(
            jnp.all((t >= 0) & (t <= 1)),
            f"{fn}: `targets01` must lie in [0, 1]; found {{lo}}..{{hi}}.",
            lo=jnp.min(t),
            hi=jnp.max(t),
        )
    if logits is not None:
        z = jnp.asarray(logits)
        _checks.check_floating(z, "logits", fn)
        _check(~jnp.any(jnp.isnan(z) | (z == jnp.inf)), f"{fn}: `logits` must not contain NaN or +inf.")
    if labels is not None:
        if num_classes is None:
            raise ValueError(f"{fn}: `num_classes` is required with `labels`.")
        y = jnp.asarray(labels)
        _checks.check_integer(y, "labels", fn)
        ok = (y >= 0) & (y < num_classes)
        if ignore_index is not None:
            ok = ok | (y == ignore_index)
        bad = jnp.where(ok, 0, y)
        first_bad = jnp.take(bad.ravel(), jnp.argmax(~ok.ravel())) if y.size else jnp.array(0)
        _check(
            jnp.all(ok),
            f"{fn}: `labels` must lie in [0, {num_classes}) (or equal ignore_index); found {{v}}.",
            v=first_bad,
        )
    if embeddings is not None:
        e = jnp.asarray(embeddings)
        _check(jnp.all(jnp.isfinite(e)), f"{fn}: `embeddings` must be finite.")
