"""Liger-Kernel 0.8.5's chunked post-training losses, run on the CPU as a test reference.

``liger_fused(method, inputs, kernel, bias=None, **liger_arguments)`` calls
``liger_kernel.chunked_loss.functional.liger_fused_linear_<method>`` (``dpo``,
``simpo``, ``cpo``, ``orpo``, ``kto``, ``grpo``) with ``compiled=False`` (pure
PyTorch; triton is not imported by this path) and returns its first output (the
loss) and the gradients of that loss with respect to ``inputs``, ``kernel`` and
``bias``, as NumPy arrays in jaxloss's layout:

* ``kernel`` (and ``ref_kernel``) are ``(D, V)`` (Flax ``Dense`` layout); Liger's
  ``weight`` / ``ref_weight`` ``(V, D)`` are their transposes, and the kernel's
  gradient comes back ``(D, V)``;
* every other argument goes by Liger's own name (``target``, ``ref_input``,
  ``ref_bias``, ``preference_labels``, ``kl``, ``selected_token_ids``,
  ``attention_mask``, ``advantages``, ``ref_per_token_logps``,
  ``old_per_token_logps``, ``beta``, ``loss_type``, ``alpha``,
  ``compute_nll_loss``, ``average_log_prob``, ``chunk_size``, ...; see each
  ``LigerFusedLinear<Method>Function.forward``), NumPy / JAX arrays or Python
  values. Floating arrays take the dtype of ``inputs``; integer arrays become
  int64, booleans stay bool.
* ``use_ref_model`` defaults to "a reference is given" (``ref_input``, or
  ``ref_per_token_logps`` for GRPO) instead of Liger's ``True`` for DPO and GRPO.

Float64. Liger computes in float32 inside whatever the inputs' dtype: the
preference bases call ``F.log_softmax(logits.float())``, the GRPO path's
selective log-softmax and loss accumulator are ``torch.float32`` buffers, and its
loss casts the reference and old log-probabilities with ``.float()``. With
float64 inputs and ``exact_float64=True`` (the default) those upcasts are made
to float64 for the duration of the call: ``Tensor.float`` leaves float64 tensors
as they are, the ``torch.float32`` that ``fused_linear_ppo`` names means
float64 and torch's default dtype (Liger's scalar accumulators) is float64.
Nothing else of Liger changes: its chunk loop, normalisations and formulas run
as released, at float64 precision. ``exact_float64=False`` gives Liger's own
float32-inside result.

Usage (the fused-loss tests of jaxloss compare with this)::

    from tests.liger_reference import liger_fused

    ref = liger_fused(
        "dpo", x, kernel, bias, target=labels, ref_input=x_ref, ref_kernel=kernel_ref,
        beta=0.1, loss_type="sigmoid", average_log_prob=False, chunk_size=1,
    )
    ref.loss, ref.grads["inputs"], ref.grads["kernel"], ref.grads["bias"]
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from typing import NamedTuple

import numpy as np

METHODS = ("dpo", "simpo", "cpo", "orpo", "kto", "grpo")


class LigerResult(NamedTuple):
    loss: float
    grads: dict  # "inputs", "kernel" (D, V), "bias" (when given): NumPy arrays
    outputs: tuple  # the function's other outputs (metrics), NumPy


@functools.cache
def _functions():
    import liger_kernel.chunked_loss.functional as functional  # noqa: PLC0415 - 3 s (torch._dynamo)

    return {
        "dpo": functional.LigerFusedLinearDPOFunction,
        "simpo": functional.LigerFusedLinearSimPOFunction,
        "cpo": functional.LigerFusedLinearCPOFunction,
        "orpo": functional.LigerFusedLinearORPOFunction,
        "kto": functional.LigerFusedLinearKTOFunction,
        "grpo": functional.LigerFusedLinearGRPOFunction,
    }


def liger_function(method):
    """The ``LigerFusedLinear<Method>Function`` class (for its ``preference_loss_fn`` / ``ppo_loss_fn``)."""
    return _functions()[method]


@functools.cache
def _parameters(method):
    """Liger's positional parameters of ``forward`` (without ``ctx``) and their defaults."""
    params = list(inspect.signature(_functions()[method].forward).parameters.values())
    assert params[0].name == "ctx", params
    return [(p.name, p.default) for p in params[1:]]


class _Float64Torch:
    """``torch`` as ``fused_linear_ppo`` sees it in float64 mode: ``torch.float32`` is float64."""

    def __init__(self, torch):
        self._torch = torch
        self.float32 = torch.float64

    def __getattr__(self, name):
        return getattr(self._torch, name)


@contextlib.contextmanager
def float64_liger():
    """Liger's float32 upcasts made float64 (see the module docstring); restored on exit."""
    import liger_kernel.chunked_loss.fused_linear_ppo as ppo  # noqa: PLC0415
    import torch  # noqa: PLC0415

    original_float = torch.Tensor.float
    had_own = "float" in torch.Tensor.__dict__

    def float_keeping_float64(self, *args, **kwargs):
        if self.dtype == torch.float64:
            return self
        return original_float(self, *args, **kwargs)

    default = torch.get_default_dtype()
    torch.Tensor.float = float_keeping_float64
    ppo.torch = _Float64Torch(torch)
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(default)
        ppo.torch = torch
        if had_own:
            torch.Tensor.float = original_float
        else:
            del torch.Tensor.float


def _to_torch(value, dtype):
    import torch  # noqa: PLC0415

    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    array = np.asarray(value)
    if array.dtype == bool:
        return torch.tensor(array)
    if np.issubdtype(array.dtype, np.integer):
        return torch.tensor(array.astype(np.int64))
    return torch.tensor(array.astype(np.float64)).to(dtype)


def liger_fused(method, inputs, kernel, bias=None, *, exact_float64=True, **arguments) -> LigerResult:
    """Liger's ``liger_fused_linear_<method>`` on these arrays: the loss and its gradients (see the module)."""
    import torch  # noqa: PLC0415

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    dtype = {np.dtype("float32"): torch.float32, np.dtype("float64"): torch.float64}[np.asarray(inputs).dtype]
    x = _to_torch(inputs, dtype).requires_grad_(True)
    w = _to_torch(np.asarray(kernel).T, dtype).requires_grad_(True)
    b = None if bias is None else _to_torch(bias, dtype).requires_grad_(True)
    ref_kernel = arguments.pop("ref_kernel", None)
    if ref_kernel is not None:
        arguments["ref_weight"] = np.asarray(ref_kernel).T
    names = dict(_parameters(method))
    if "use_ref_model" in names and "use_ref_model" not in arguments:
        arguments["use_ref_model"] = (
            arguments.get("ref_input") is not None or arguments.get("ref_per_token_logps") is not None
        )
    arguments["compiled"] = False
    unknown = set(arguments) - set(names)
    if unknown:
        raise TypeError(f"liger_fused_linear_{method} has no argument(s) {sorted(unknown)}")
    values = {"_input": x, "weight": w, "bias": b}
    values.update({k: _to_torch(v, dtype) for k, v in arguments.items()})
    positional = [values.get(name, default) for name, default in _parameters(method)]
    for (name, _), value in zip(_parameters(method), positional, strict=True):
        if value is inspect.Parameter.empty:
            raise TypeError(f"liger_fused_linear_{method}: `{name}` is required")
    mode = float64_liger() if exact_float64 and dtype == torch.float64 else contextlib.nullcontext()
    with mode:
        loss, *rest = _functions()[method].apply(*positional)
        loss.backward()
    grads = {"inputs": x.grad.numpy(), "kernel": w.grad.numpy().T}
    if b is not None:
        grads["bias"] = b.grad.numpy()
    outputs = tuple(_numpy_tree(r) for r in rest)
    return LigerResult(float(loss.detach()), grads, outputs)


def _numpy_tree(value):
    import torch  # noqa: PLC0415

    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    if isinstance(value, (tuple, list)):
        return tuple(_numpy_tree(v) for v in value)
    return value
