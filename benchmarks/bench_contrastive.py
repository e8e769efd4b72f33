"""Contrastive losses at large batch: the tiled path (``block_size``) vs the dense path, float32.

Run: ``python -m benchmarks.bench_contrastive [--quick]``. For ``clip_loss`` and
``sigmoid_contrastive_loss``, value + gradient (embeddings and the learnable
temperature / scale) of the tiled path and of the dense path are jitted and
timed interleaved in this process (median of the rounds), next to PyTorch's
dense formula (open_clip's ``ClipLoss``, the SigLIP loss) with backward. The
note of each row gives the temporary memory XLA allocates for value + gradient
(``compile().memory_analysis().temp_size_in_bytes``) for both paths, and for
the tiled path at a batch whose similarity matrix would not fit (65,536).
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxloss
from benchmarks._timing import median_time, torch_device, torch_sync

BLOCK = 1024


def _loss(name, block_size):
    if name == "clip_loss":
        return lambda x, y, t: jaxloss.clip_loss(x, y, temperature=t, block_size=block_size)
    return lambda x, y, t: jaxloss.sigmoid_contrastive_loss(x, y, logit_scale=1 / t, block_size=block_size)


def _step(name, block_size):
    return jax.jit(jax.value_and_grad(_loss(name, block_size), argnums=(0, 1, 2)))


def _temp_mib(name, block_size, b, d):
    emb = jax.ShapeDtypeStruct((b, d), jnp.float32)
    t = jax.ShapeDtypeStruct((), jnp.float32)
    compiled = _step(name, block_size).lower(emb, emb, t).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def _interleaved(runs: dict, rounds: int) -> dict:
    """Median time of each runner, the runners alternating within every round."""
    for run in runs.values():
        run()
    times = {key: [] for key in runs}
    for _ in range(rounds):
        for key, run in runs.items():
            start = time.perf_counter()
            run()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(v) for key, v in times.items()}


def _torch_runner(name, x, y, t):
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415

    dev = torch_device()
    x0, y0 = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)

    def run():
        xt, yt = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
        tt = torch.tensor(t, device=dev, requires_grad=True)
        logits = F.normalize(xt, dim=-1) @ F.normalize(yt, dim=-1).T
        if name == "clip_loss":
            logits = logits / tt
            target = torch.arange(x.shape[0], device=dev)
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        else:
            z = 2 * torch.eye(x.shape[0], device=dev) - 1
            loss = -F.logsigmoid(z * (logits / tt - 10.0)).sum() / x.shape[0]
        loss.backward()
        torch_sync()

    return run


def run(quick: bool) -> list[dict]:
    b, d = (1024, 128) if quick else (4096, 256)
    rounds = 3 if quick else 7
    block = min(BLOCK, b // 2)
    r = np.random.default_rng(0)
    x = r.normal(size=(b, d)).astype(np.float32)
    y = (x + 0.5 * r.normal(size=(b, d))).astype(np.float32)
    t = np.float32(0.07)
    xj, yj, tj = jnp.asarray(x), jnp.asarray(y), jnp.asarray(t)
    rows = []
    for name in ("clip_loss", "sigmoid_contrastive_loss"):
        steps = {bs: _step(name, bs) for bs in (block, None)}
        runs = {bs: (lambda s=s: jax.block_until_ready(s(xj, yj, tj))) for bs, s in steps.items()}
        med = _interleaved(runs, rounds)
        peer = median_time(_torch_runner(name, x, y, float(t)), rounds)
        big = 16384 if quick else 65536
        note = (
            f"temp memory of value+grad at B={b}: tiled {_temp_mib(name, block, b, d):.0f} MiB, "
            f"dense {_temp_mib(name, None, b, d):.0f} MiB; tiled at B={big}, d={d}: "
            f"{_temp_mib(name, block, big, d):.0f} MiB (one B x B float32 matrix: {big * big * 4 / 2**20:.0f} MiB)"
        )
        rows.append(
            {
                "operation": f"{name} value+grad, block_size={block} vs dense",
                "shapes": f"B={b}, d={d}, float32",
                "jaxloss_s": med[block],
                "peers": {"jaxloss dense (block_size=None)": med[None], "PyTorch dense formula": peer},
                "note": note,
            }
        )
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import format_table

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    result = run(parser.parse_args().quick)
    print(format_table(result))
    for row in result:
        print(f"- {row['operation']}: {row['note']}")
