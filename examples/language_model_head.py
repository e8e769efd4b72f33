"""A word-level language model trained with the fused linear cross-entropy.

The text is what every Python installation ships: the Zen of Python (the
``this`` module) and the docstrings of a few standard-library modules, split
into words and punctuation. A small Flax NNX model reads the previous
``--context`` tokens (embeddings, concatenated, one hidden layer) and its
output layer is an ``nnx.Linear(hidden, vocabulary)``; instead of computing
its logits, the training loss hands the hidden states and the layer's
``kernel`` and ``bias`` to ``jaxloss.linear_softmax_cross_entropy``, which
never holds the ``tokens x vocabulary`` logits.

The script prints the temporary memory that XLA plans for one value-and-
gradient step (``memory_analysis().temp_size_in_bytes``) of the dense loss
(``softmax_cross_entropy_with_integer_labels(head(h), y)``) and of the fused
one, for the training batch and for larger batches, then the loss curve and
a greedy continuation of a prompt.

    python examples/language_model_head.py
    python examples/language_model_head.py --steps 600 --batch 512
"""

from __future__ import annotations

import argparse
import codecs
import contextlib
import importlib
import inspect
import io
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxloss

MODULES = ("json", "functools", "itertools", "collections", "textwrap", "string", "argparse", "re", "typing")


def corpus() -> str:
    """The Zen of Python and the docstrings of a few standard-library modules and their members."""
    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this  # noqa: PLC0415

    parts = [codecs.decode(this.s, "rot13")]
    for name in MODULES:
        module = importlib.import_module(name)
        parts.append(module.__doc__ or "")
        for member in sorted(getattr(module, "__all__", [])):
            parts.append(inspect.getdoc(getattr(module, member, None)) or "")
    return "\n".join(parts)


def tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z0-9_]+|[^\sa-z0-9_]", text.lower())


class LanguageModel(nnx.Module):
    def __init__(self, vocab: int, context: int, width: int, hidden: int, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(vocab, width, rngs=rngs)
        self.mix = nnx.Linear(context * width, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, vocab, rngs=rngs)  # kernel: (hidden, vocab)

    def features(self, contexts):
        e = self.embed(contexts)  # (batch, context, width)
        return jax.nn.gelu(self.mix(e.reshape(e.shape[0], -1)))

    def __call__(self, contexts):  # the logits, for generation only
        return self.head(self.features(contexts))


BLOCKS = {"block_size": 256, "vocab_block_size": 512}


def fused_loss(model, contexts, targets):
    h = model.features(contexts)
    losses = jaxloss.linear_softmax_cross_entropy(
        h, model.head.kernel[...], targets, bias=model.head.bias[...], z_loss=1e-4, **BLOCKS
    )
    return losses.mean()


def dense_loss(model, contexts, targets):
    logits = model(contexts)
    lse = jax.nn.logsumexp(logits, axis=-1)
    losses = jaxloss.softmax_cross_entropy_with_integer_labels(logits, targets) + 1e-4 * lse**2
    return losses.mean()


def temp_bytes(loss, model, batch, context):
    """XLA's planned temporary memory for one value-and-gradient step of ``loss``."""
    graphdef, params = nnx.split(model)

    def step(params, contexts, targets):
        return jax.value_and_grad(lambda p: loss(nnx.merge(graphdef, p), contexts, targets))(params)

    shapes = (
        jax.ShapeDtypeStruct((batch, context), jnp.int32),
        jax.ShapeDtypeStruct((batch,), jnp.int32),
    )
    compiled = jax.jit(step).lower(params, *shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--context", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    words = tokenize(corpus())
    vocab = sorted(set(words))
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.array([index[w] for w in words], np.int32)
    c = args.context
    contexts = np.lib.stride_tricks.sliding_window_view(ids[:-1], c)
    targets = ids[c:]
    print(f"corpus: {len(words)} tokens, vocabulary of {len(vocab)} words, context {c}")

    model = LanguageModel(len(vocab), c, 64, 128, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    memory = {}
    print(f"\n{'tokens per step':>16}{'dense loss temp':>18}{'fused loss temp':>18}")
    for batch in (args.batch, 8 * args.batch, 64 * args.batch):
        dense, fused = (temp_bytes(f, model, batch, c) for f in (dense_loss, fused_loss))
        memory[batch] = (dense, fused)
        print(f"{batch:>16}{dense / 2**20:>15.2f} MiB{fused / 2**20:>15.2f} MiB")

    @nnx.jit
    def train_step(model, optimizer, x, y):
        loss, grads = nnx.value_and_grad(fused_loss)(model, x, y)
        optimizer.update(model, grads)
        return loss

    rng = np.random.default_rng(args.seed)
    sample = rng.choice(len(targets), size=args.batch, replace=False)
    x0, y0 = jnp.asarray(contexts[sample]), jnp.asarray(targets[sample])
    check = abs(float(fused_loss(model, x0, y0)) - float(dense_loss(model, x0, y0)))
    print(f"\nfused - dense loss at initialisation: {check:.1e}")

    losses = []
    print(f"\n{'step':>6}{'loss':>10}")
    for step in range(1, args.steps + 1):
        batch = rng.integers(0, len(targets), size=args.batch)
        loss = float(train_step(model, optimizer, jnp.asarray(contexts[batch]), jnp.asarray(targets[batch])))
        losses.append(loss)
        if step == 1 or step % max(1, args.steps // 10) == 0:
            print(f"{step:>6}{loss:>10.3f}")

    prompt = list(ids[:c])
    predict = jax.jit(lambda m, x: jnp.argmax(m(x), axis=-1))
    for _ in range(12):
        prompt.append(int(predict(model, jnp.asarray([prompt[-c:]]))[0]))
    print("\ngreedy continuation:", " ".join(vocab[i] for i in prompt))
    return {"losses": losses, "memory": memory, "vocab": len(vocab), "dense_minus_fused": check}


if __name__ == "__main__":
    main()
