"""Post-training losses on a linear LM head (DPO with a reference model, GRPO): value + gradient.

``jaxloss.linear_preference_loss(..., method="dpo", ref_inputs=, ref_kernel=)`` and
``jaxloss.linear_grpo_loss(..., ref_inputs=, ref_kernel=, old_log_probs=)``
(jitted ``value_and_grad`` with respect to the policy's inputs and kernel)
against two peers, each side in its own process (median, min-max;
``benchmarks._timing.isolated``):

* the dense JAX formula: the ``2B T x V`` logits of both heads,
  ``log_softmax``, the labels' entries gathered, then the same per-pair
  formula (``jaxloss.dpo_loss`` / ``jaxloss.grpo_loss``);
* Liger-Kernel's chunked torch path on the CPU
  (``liger_kernel.chunked_loss.functional.liger_fused_linear_dpo`` /
  ``_grpo`` with ``compiled=False``: its chunk loop in plain PyTorch), the
  loss and ``backward``.

The loss values of the three sides are checked equal first. The note gives
XLA's planned temporary memory of the fused and the dense step
(``memory_analysis().temp_size_in_bytes``). Ratios are jaxloss time / peer
time (lower is better).

    python -m benchmarks.bench_post_training [--quick]
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks._timing import isolated

MODULE = "bench_post_training"


def _data(rows, t, d, v):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, t, d)).astype(np.float32)
    ref_x = (x + 0.1 * rng.normal(size=x.shape)).astype(np.float32)
    k = (rng.normal(size=(d, v)) / np.sqrt(d)).astype(np.float32)
    ref_k = (k + 0.02 * rng.normal(size=k.shape)).astype(np.float32)
    labels = rng.integers(0, v, size=(rows, t))
    labels[:, : t // 4] = -100  # the prompt
    mask = labels != -100
    advantages = rng.normal(size=rows).astype(np.float32)
    old = (-rng.uniform(0.5, 10.0, size=(rows, t))).astype(np.float32)
    return x, k, ref_x, ref_k, labels, mask, advantages, old


def _loss(method, fused):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    import jaxloss  # noqa: PLC0415

    def token_log_probs(x, k, labels):
        log_probs = jax.nn.log_softmax(jnp.einsum("btd,dv->btv", x, k), axis=-1)
        safe = jnp.where(labels != -100, labels, 0)
        return jnp.take_along_axis(log_probs, safe[..., None], axis=-1)[..., 0]

    if method == "dpo":
        if fused:
            return lambda x, k, rx, rk, labels, mask, adv, old: jaxloss.linear_preference_loss(
                x, k, labels, ref_inputs=rx, ref_kernel=rk
            )

        def dense_dpo(x, k, rx, rk, labels, mask, adv, old):
            lp = jnp.sum(jnp.where(mask, token_log_probs(x, k, labels), 0), axis=-1)
            ref = jax.lax.stop_gradient(jnp.sum(jnp.where(mask, token_log_probs(rx, rk, labels), 0), axis=-1))
            half = lp.shape[0] // 2
            return jnp.mean(jaxloss.dpo_loss(lp[:half], lp[half:], ref[:half], ref[half:]))

        return dense_dpo
    ids = lambda labels: jnp.where(labels != -100, labels, 0)  # noqa: E731
    if fused:
        return lambda x, k, rx, rk, labels, mask, adv, old: jaxloss.linear_grpo_loss(
            x, k, ids(labels), mask, adv, ref_inputs=rx, ref_kernel=rk, old_log_probs=old
        )

    def dense_grpo(x, k, rx, rk, labels, mask, adv, old):
        lp = token_log_probs(x, k, ids(labels))
        ref = jax.lax.stop_gradient(token_log_probs(rx, rk, ids(labels)))
        return jaxloss.grpo_loss(lp, mask, adv, old_log_probs=old, ref_log_probs=ref)

    return dense_grpo


def _temp_mib(loss, rows, t, d, v):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    f32 = jnp.float32
    shapes = [
        jax.ShapeDtypeStruct((rows, t, d), f32),
        jax.ShapeDtypeStruct((d, v), f32),
        jax.ShapeDtypeStruct((rows, t, d), f32),
        jax.ShapeDtypeStruct((d, v), f32),
        jax.ShapeDtypeStruct((rows, t), jnp.int32),
        jax.ShapeDtypeStruct((rows, t), jnp.bool_),
        jax.ShapeDtypeStruct((rows,), f32),
        jax.ShapeDtypeStruct((rows, t), f32),
    ]
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


# --- the factories: build their inputs and return a blocking callable (run in their own process)


def jax_step(rows, t, d, v, method, fused):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    args = [jnp.asarray(a) for a in _data(rows, t, d, v)]
    step = jax.jit(jax.value_and_grad(_loss(method, fused), argnums=(0, 1)))
    return lambda: float(jax.block_until_ready(step(*args))[0])


def liger_step(rows, t, d, v, method):
    import inspect  # noqa: PLC0415

    import torch  # noqa: PLC0415
    from liger_kernel.chunked_loss import functional  # noqa: PLC0415

    x, k, ref_x, ref_k, labels, mask, adv, old = _data(rows, t, d, v)
    xt = torch.from_numpy(x).requires_grad_(True)
    wt = torch.from_numpy(np.ascontiguousarray(k.T)).requires_grad_(True)
    yt = torch.from_numpy(labels)
    arguments = dict(
        _input=xt, weight=wt, ref_input=torch.from_numpy(ref_x), compiled=False, use_ref_model=True
    )
    arguments["ref_weight"] = torch.from_numpy(np.ascontiguousarray(ref_k.T))
    if method == "dpo":
        function = functional.LigerFusedLinearDPOFunction
        arguments["target"] = yt
    else:
        function = functional.LigerFusedLinearGRPOFunction
        arguments.update(
            selected_token_ids=torch.where(yt != -100, yt, 0),
            attention_mask=torch.from_numpy(mask),
            advantages=torch.from_numpy(adv),
            old_per_token_logps=torch.from_numpy(old),
        )
    # autograd.Function.apply takes positional arguments only: Liger's order, its defaults elsewhere
    params = list(inspect.signature(function.forward).parameters.values())[1:]  # without ctx
    positional = [arguments.get(p.name, p.default) for p in params]

    def step():
        xt.grad = wt.grad = None
        loss = function.apply(*positional)
        loss = loss[0] if isinstance(loss, tuple) else loss
        loss.backward()
        return float(loss.detach())

    return step


def run(quick: bool) -> list[dict]:
    rows, t, d, v = (4, 64, 128, 8000) if quick else (8, 256, 512, 32000)
    repeats = 2 if quick else 5
    shape = dict(rows=rows, t=t, d=d, v=v)
    out = []
    for method in ("dpo", "grpo"):

        def ours(fused, method=method):
            return isolated(
                MODULE,
                "jax_step",
                peer=False,
                repeats=repeats,
                return_result=True,
                method=method,
                fused=fused,
                **shape,
            )

        fused, dense = ours(True), ours(False)
        liger = isolated(
            MODULE, "liger_step", peer=True, repeats=repeats, return_result=True, method=method, **shape
        )
        values = [side.pop("result") for side in (fused, dense, liger)]
        assert max(values) - min(values) < 1e-3 * max(1.0, abs(values[0])), values  # the same loss
        mem = (_temp_mib(_loss(method, True), rows, t, d, v), _temp_mib(_loss(method, False), rows, t, d, v))
        name = "linear_preference_loss dpo" if method == "dpo" else "linear_grpo_loss dapo"
        out.append(
            {
                "operation": f"{name} value+grad (policy x, kernel), reference head",
                "shapes": f"{'2B' if method == 'dpo' else 'B'}={rows}, T={t}, D={d}, V={v} float32",
                "jaxloss": fused,
                "peers": {
                    "dense JAX: logits, log_softmax, gather, the same formula": dense,
                    "Liger-Kernel chunked torch path (compiled=False)": liger,
                },
                "note": f"{name}: temporary memory (memory_analysis) fused {mem[0]:.0f} MiB, "
                f"dense {mem[1]:.0f} MiB",
            }
        )
    return out


def main():
    from benchmarks.__main__ import RATIO, format_table  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, fewer repeats")
    args = parser.parse_args()
    rows = run(args.quick)
    print(f"ratio = {RATIO}\n{format_table(rows)}")
    for row in rows:
        print(f"- {row['note']}")


if __name__ == "__main__":
    main()
