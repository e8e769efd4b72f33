"""Distillation between two linear heads (a language model's output layer): value + gradient.

``jaxloss.linear_distillation_loss(x_s, W_s, x_t, W_t, divergence=...).mean()``
(jitted ``value_and_grad`` with respect to the student's ``x_s`` and ``W_s``)
against the dense JAX formula on the two ``N x V`` logit matrices
(``log_softmax`` of both heads, ``log M`` by ``logaddexp`` for the JSD), for
the Jensen-Shannon divergence and the forward KL. Each side runs in its own
process (median, min-max; ``benchmarks._timing.isolated``) and the two loss
values are checked equal first. The note gives XLA's planned temporary memory
of the two steps (``memory_analysis().temp_size_in_bytes``), here and at
N = 8,192, D = 1,024, V = 131,072. Ratios are jaxloss time / dense time
(lower is better). ``python -m benchmarks --isa all --only distillation``
times every row under each instruction set this CPU supports.

    python -m benchmarks.bench_distillation [--quick]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from benchmarks._timing import isolated

MODULE = "bench_distillation"


def _fused(divergence, **blocks):
    import jaxloss  # noqa: PLC0415

    def loss(xs, ks, xt, kt):
        return jaxloss.linear_distillation_loss(xs, ks, xt, kt, divergence=divergence, **blocks).mean()

    return loss


def _dense(divergence):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    def loss(xs, ks, xt, kt):
        ls = jax.nn.log_softmax(xs @ ks, axis=-1)
        lt = jax.nn.log_softmax(jax.lax.stop_gradient(xt @ kt), axis=-1)
        if divergence == "forward_kl":
            per_token = jnp.sum(jnp.exp(lt) * (lt - ls), axis=-1)
        else:
            log_m = jnp.logaddexp(lt + math.log(0.5), ls + math.log(0.5))
            per_token = 0.5 * jnp.sum(jnp.exp(lt) * (lt - log_m) + jnp.exp(ls) * (ls - log_m), axis=-1)
        return per_token.mean()

    return loss


def _temp_mib(loss, n, d, v):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    shapes = [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((n, d), (d, v), (n, d), (d, v))]
    compiled = jax.jit(jax.value_and_grad(loss, argnums=(0, 1))).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


# --- the factory: builds its inputs and returns a blocking callable (run in its own process)


def jax_step(n, d, v, divergence, fused):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    rng = np.random.default_rng(0)
    xs, xt = (jnp.asarray(rng.normal(size=(n, d)), jnp.float32) for _ in range(2))
    ks, kt = (jnp.asarray(rng.normal(size=(d, v)) / np.sqrt(d), jnp.float32) for _ in range(2))
    loss = _fused(divergence) if fused else _dense(divergence)
    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    return lambda: float(jax.block_until_ready(step(xs, ks, xt, kt))[0])


def run(quick: bool) -> list[dict]:
    n, d, v = (512, 256, 16000) if quick else (2048, 512, 32000)
    repeats = 2 if quick else 3
    rows = []
    for divergence in ("jsd", "forward_kl"):
        sides = {
            fused: isolated(
                MODULE,
                "jax_step",
                peer=False,
                repeats=repeats,
                return_result=True,
                n=n,
                d=d,
                v=v,
                divergence=divergence,
                fused=fused,
            )
            for fused in (True, False)
        }
        ours, dense = (sides[True].pop("result"), sides[False].pop("result"))
        assert abs(ours - dense) < 1e-4 * abs(ours), (ours, dense)  # equal work
        here = (_temp_mib(_fused(divergence), n, d, v), _temp_mib(_dense(divergence), n, d, v))
        big_n, big_d, big_v = 8192, 1024, 131072
        small = {"block_size": 512, "vocab_block_size": 2048}
        big = (
            _temp_mib(_fused(divergence), big_n, big_d, big_v),
            _temp_mib(_fused(divergence, **small), big_n, big_d, big_v),
        )
        logits = big_n * big_v * 4 / 2**20
        note = (
            f"temporary memory (memory_analysis): fused {here[0]:.0f} MiB, dense {here[1]:.0f} MiB here; "
            f"at N=8192, D=1024, V=131072: fused {big[0]:.0f} MiB with the default blocks "
            f"(1/{logits / big[0]:.0f} of one N x V float32 matrix), {big[1]:.0f} MiB with 512 x 2048 "
            f"blocks (1/{logits / big[1]:.0f})"
        )
        rows.append(
            {
                "operation": f"linear_distillation_loss {divergence} value+grad (student x, kernel)",
                "shapes": f"N={n}, D={d}, V={v} float32, both heads",
                "jaxloss": sides[True],
                "peers": {"dense JAX log_softmax of both N x V logit matrices": sides[False]},
                "note": note,
            }
        )
    return rows


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
