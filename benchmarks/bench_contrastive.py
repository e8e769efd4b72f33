"""Contrastive losses at large batch: the tiled path (``block_size``) vs the dense path, float32.

Run: ``python -m benchmarks.bench_contrastive [--quick]``. For ``clip_loss`` and
``sigmoid_contrastive_loss``, value + gradient (embeddings and the learnable
temperature / scale) of the tiled path, of the dense path and of PyTorch's
dense formula (open_clip's ``ClipLoss``, the SigLIP loss) with backward are
each timed in their own process (median, min-max). Ratios are jaxloss (tiled)
time / peer time (lower is better). The note of each row gives the temporary
memory XLA allocates for value + gradient
(``compile().memory_analysis().temp_size_in_bytes``) for both paths, and for
the tiled path at a batch whose similarity matrix would not fit (65,536).
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks._timing import isolated

MODULE = "bench_contrastive"
BLOCK = 1024
TEMPERATURE = 0.07


def _loss(name, block_size):
    import jaxloss  # noqa: PLC0415

    if name == "clip_loss":
        return lambda x, y, t: jaxloss.clip_loss(x, y, temperature=t, block_size=block_size)
    return lambda x, y, t: jaxloss.sigmoid_contrastive_loss(x, y, logit_scale=1 / t, block_size=block_size)


def _step(name, block_size):
    import jax  # noqa: PLC0415

    return jax.jit(jax.value_and_grad(_loss(name, block_size), argnums=(0, 1, 2)))


def _temp_mib(name, block_size, b, d):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    emb = jax.ShapeDtypeStruct((b, d), jnp.float32)
    t = jax.ShapeDtypeStruct((), jnp.float32)
    compiled = _step(name, block_size).lower(emb, emb, t).compile()
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def _data(b, d):
    r = np.random.default_rng(0)
    x = r.normal(size=(b, d)).astype(np.float32)
    return x, (x + 0.5 * r.normal(size=(b, d))).astype(np.float32)


# --- factories: each builds its inputs and returns a blocking callable (run in its own process)


def jax_step(name, b, d, block_size):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    step = _step(name, block_size)
    x, y = (jnp.asarray(a) for a in _data(b, d))
    t = jnp.float32(TEMPERATURE)
    return lambda: jax.block_until_ready(step(x, y, t))


def torch_step(name, b, d):
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415

    from benchmarks._timing import torch_device, torch_sync  # noqa: PLC0415

    x, y = _data(b, d)
    dev = torch_device()
    x0, y0 = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)

    def run():
        xt, yt = x0.clone().requires_grad_(True), y0.clone().requires_grad_(True)
        tt = torch.tensor(TEMPERATURE, device=dev, requires_grad=True)
        logits = F.normalize(xt, dim=-1) @ F.normalize(yt, dim=-1).T
        if name == "clip_loss":
            logits = logits / tt
            target = torch.arange(b, device=dev)
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        else:
            z = 2 * torch.eye(b, device=dev) - 1
            loss = -F.logsigmoid(z * (logits / tt - 10.0)).sum() / b
        loss.backward()
        torch_sync()

    return run


def run(quick: bool) -> list[dict]:
    b, d = (1024, 128) if quick else (4096, 256)
    repeats = 3 if quick else 7
    block = min(BLOCK, b // 2)
    rows = []
    for name in ("clip_loss", "sigmoid_contrastive_loss"):
        shape = {"name": name, "b": b, "d": d}
        tiled = isolated(MODULE, "jax_step", peer=False, repeats=repeats, block_size=block, **shape)
        dense = isolated(MODULE, "jax_step", peer=False, repeats=repeats, block_size=None, **shape)
        peer = isolated(MODULE, "torch_step", peer=True, repeats=repeats, **shape)
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
                "jaxloss": tiled,
                "peers": {"jaxloss dense (block_size=None)": dense, "PyTorch dense formula": peer},
                "note": note,
            }
        )
    return rows


if __name__ == "__main__":
    from benchmarks.__main__ import RATIO, format_table

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    result = run(parser.parse_args().quick)
    print(f"ratio = {RATIO}\n{format_table(result)}")
    for row in result:
        print(f"- {row['operation']}: {row['note']}")
