"""Embedding-model training losses: MNRL against sentence-transformers, fused Matryoshka, tiling, GradCache.

Run: ``python -m benchmarks.bench_embedding [--quick]``. Every side runs in
its own process (median, min-max), value + gradient of every embedding input,
float32:

* ``multiple_negatives_ranking_loss`` with 3 hard negatives per query
  (B = 1024, d = 768) against sentence-transformers 6.2.0's
  ``MultipleNegativesRankingLoss.compute_loss_from_embeddings`` (PyTorch) on
  the same embeddings, and against a plain dense JAX formula (concatenate the
  candidates, normalise, one logsumexp);
* fused Matryoshka over (768, 512, 256, 128, 64) (one pass over the
  candidates) against five separate calls (``jaxloss.matryoshka_loss``) and
  against sentence-transformers' ``MatryoshkaLoss(MultipleNegativesRankingLoss)``;
* the tiled path (``block_size=1024``) against the dense one at B = 4096;
* ``cached_embeddings`` (GradCache, chunks of 128) against the uncached step
  of a two-layer MLP encoder followed by MNRL.

Ratios are jaxloss time / peer time (lower is better).
"""

from __future__ import annotations

import argparse

import numpy as np

from benchmarks._timing import isolated

MODULE = "bench_embedding"
SIZES = (768, 512, 256, 128, 64)


def _sizes(d):
    """The nested sizes that fit ``d`` (all five at d = 768)."""
    return tuple(s for s in SIZES if s <= d)


def _data(b, n, d, seed=0):
    r = np.random.default_rng(seed)
    q = r.normal(size=(b, d)).astype(np.float32)
    docs = (q + 0.5 * r.normal(size=(b, d))).astype(np.float32)
    return q, docs, r.normal(size=(b, n, d)).astype(np.float32)


def _plain_formula(q, d, neg):
    """The dense MNRL a user writes by hand: every candidate in one matrix, one logsumexp."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    unit = lambda x: x / jnp.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    candidates = jnp.concatenate([d, jnp.swapaxes(neg, 0, 1).reshape(-1, d.shape[-1])])
    logits = 20.0 * unit(q) @ unit(candidates).T
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.diagonal(logits[:, : q.shape[0]]))


def _jax_loss(kind, block_size=None):
    import jaxloss  # noqa: PLC0415

    mnrl = jaxloss.multiple_negatives_ranking_loss
    if kind == "mnrl":
        return lambda q, d, n: mnrl(q, d, n, block_size=block_size)
    if kind == "plain":
        return _plain_formula
    if kind == "fused":
        return lambda q, d, n: mnrl(q, d, n, matryoshka_dims=_sizes(q.shape[-1]))
    if kind == "separate":
        return lambda q, d, n: jaxloss.matryoshka_loss(mnrl, (q, d, n), dims=_sizes(q.shape[-1]))
    raise ValueError(kind)


def _jax_step(kind, block_size=None):
    import jax  # noqa: PLC0415

    return jax.jit(jax.value_and_grad(_jax_loss(kind, block_size), argnums=(0, 1, 2)))


# --- factories: each builds its inputs and returns a blocking callable (run in its own process)


def jax_step(kind, b, n, d, block_size=None):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    step = _jax_step(kind, block_size)
    args = tuple(jnp.asarray(a) for a in _data(b, n, d))
    return lambda: jax.block_until_ready(step(*args))


def torch_step(kind, b, n, d):
    import torch  # noqa: PLC0415
    from sentence_transformers.sentence_transformer.losses import (  # noqa: PLC0415
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    from benchmarks._timing import torch_device, torch_sync  # noqa: PLC0415

    dev = torch_device()
    tensors = [torch.from_numpy(a).to(dev) for a in _data(b, n, d)]

    class Stub(torch.nn.Module):  # MatryoshkaLoss embeds through a model: this one returns its input
        def forward(self, features):
            return {"sentence_embedding": features["e"]}

        def get_embedding_dimension(self):
            return d

    model = Stub()
    mnrl = MultipleNegativesRankingLoss(model)
    loss = MatryoshkaLoss(model, mnrl, list(_sizes(d))) if kind == "fused" else None

    def run():
        q, docs, neg = (t.clone().requires_grad_(True) for t in tensors)
        columns = [q, docs] + [neg[:, j] for j in range(n)]
        if loss is None:
            value = mnrl.compute_loss_from_embeddings(columns, None)
        else:
            value = loss([{"e": c} for c in columns], None)
        value.backward()
        torch_sync()

    return run


def _mlp_params(din, hidden, dout):
    import jax.numpy as jnp  # noqa: PLC0415

    r = np.random.default_rng(1)
    return {
        "w1": jnp.asarray(r.normal(size=(din, hidden)).astype(np.float32) / np.sqrt(din)),
        "b1": jnp.zeros(hidden, jnp.float32),
        "w2": jnp.asarray(r.normal(size=(hidden, dout)).astype(np.float32) / np.sqrt(hidden)),
    }


def _mlp(params, x):
    import jax  # noqa: PLC0415

    return jax.nn.gelu(x @ params["w1"] + params["b1"]) @ params["w2"]


def _encoder_step(chunk_size):
    import functools  # noqa: PLC0415

    import jax  # noqa: PLC0415

    import jaxloss  # noqa: PLC0415

    encode = (
        _mlp
        if chunk_size is None
        else functools.partial(jaxloss.cached_embeddings, _mlp, chunk_size=chunk_size)
    )

    def loss(params, xq, xd):
        return jaxloss.multiple_negatives_ranking_loss(encode(params, xq), encode(params, xd))

    return jax.jit(jax.value_and_grad(loss))


def encoder_step(b, din, hidden, dout, chunk_size=None):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    step = _encoder_step(chunk_size)
    params = _mlp_params(din, hidden, dout)
    r = np.random.default_rng(2)
    xq, xd = (jnp.asarray(r.normal(size=(b, din)).astype(np.float32)) for _ in range(2))
    return lambda: jax.block_until_ready(step(params, xq, xd))


def _temp_mib(compiled):
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def _mnrl_temp_mib(kind, b, n, d, block_size=None):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    shapes = [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((b, d), (b, d), (b, n, d))]
    return _temp_mib(_jax_step(kind, block_size).lower(*shapes).compile())


def _encoder_temp_mib(b, din, hidden, dout, chunk_size):
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    params = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), _mlp_params(din, hidden, dout))
    x = jax.ShapeDtypeStruct((b, din), jnp.float32)
    return _temp_mib(_encoder_step(chunk_size).lower(params, x, x).compile())


def run(quick: bool) -> list[dict]:
    repeats = 3 if quick else 7
    b, n, d = (256, 3, 256) if quick else (1024, 3, 768)
    shape = dict(b=b, n=n, d=d)
    rows = []

    ours = isolated(MODULE, "jax_step", peer=False, repeats=repeats, kind="mnrl", **shape)
    rows.append(
        {
            "operation": "multiple_negatives_ranking_loss value+grad, 3 hard negatives",
            "shapes": f"B={b}, n={n}, d={d}, float32",
            "jaxloss": ours,
            "peers": {
                "sentence-transformers 6.2.0 MultipleNegativesRankingLoss (PyTorch)": isolated(
                    MODULE, "torch_step", peer=True, repeats=repeats, kind="mnrl", **shape
                ),
                "JAX dense formula (one concatenated logsumexp)": isolated(
                    MODULE, "jax_step", peer=False, repeats=repeats, kind="plain", **shape
                ),
            },
            "note": f"temp memory of value+grad: {_mnrl_temp_mib('mnrl', b, n, d):.0f} MiB",
        }
    )

    sizes = _sizes(d)
    fused = isolated(MODULE, "jax_step", peer=False, repeats=repeats, kind="fused", **shape)
    rows.append(
        {
            "operation": f"fused Matryoshka MNRL {sizes} value+grad",
            "shapes": f"B={b}, n={n}, d={d}, float32",
            "jaxloss": fused,
            "peers": {
                "five separate calls (jaxloss.matryoshka_loss)": isolated(
                    MODULE, "jax_step", peer=False, repeats=repeats, kind="separate", **shape
                ),
                "sentence-transformers 6.2.0 MatryoshkaLoss(MNRL) (PyTorch)": isolated(
                    MODULE, "torch_step", peer=True, repeats=repeats, kind="fused", **shape
                ),
            },
        }
    )

    big = dict(b=1024 if quick else 4096, n=0, d=256 if quick else 768)
    block = 256 if quick else 1024
    tiled = isolated(MODULE, "jax_step", peer=False, repeats=repeats, kind="mnrl", block_size=block, **big)
    dense = isolated(MODULE, "jax_step", peer=False, repeats=repeats, kind="mnrl", **big)
    rows.append(
        {
            "operation": f"multiple_negatives_ranking_loss value+grad, block_size={block} vs dense",
            "shapes": f"B={big['b']}, d={big['d']}, float32",
            "jaxloss": tiled,
            "peers": {"jaxloss dense (block_size=None)": dense},
            "note": f"temp memory of value+grad: tiled {_mnrl_temp_mib('mnrl', block_size=block, **big):.0f} MiB, "
            f"dense {_mnrl_temp_mib('mnrl', **big):.0f} MiB",
        }
    )

    enc = dict(b=256 if quick else 1024, din=256 if quick else 768, hidden=1024 if quick else 3072, dout=256)
    chunk = 64 if quick else 128
    cached = isolated(MODULE, "encoder_step", peer=False, repeats=repeats, chunk_size=chunk, **enc)
    plain = isolated(MODULE, "encoder_step", peer=False, repeats=repeats, **enc)
    rows.append(
        {
            "operation": f"cached_embeddings (chunk_size={chunk}) + MNRL value+grad vs uncached",
            "shapes": f"MLP {enc['din']}-{enc['hidden']}-{enc['dout']} (GELU), 2 x B={enc['b']}, float32",
            "jaxloss": cached,
            "peers": {"jaxloss uncached step": plain},
            "note": f"temp memory of value+grad: cached {_encoder_temp_mib(chunk_size=chunk, **enc):.0f} MiB, "
            f"uncached {_encoder_temp_mib(chunk_size=None, **enc):.0f} MiB",
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
        if row.get("note"):
            print(f"- {row['operation']}: {row['note']}")
