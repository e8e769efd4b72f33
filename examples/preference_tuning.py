"""Supervised fine-tuning, then DPO, of a tiny causal language model, without the head's logits.

The "language" is generated: a sequence starts at a random token and each next
token is the previous one plus a step drawn from {2, 3, 4, 5} (modulo the
vocabulary). A small Flax NNX causal model (each position sees its token and
the previous one; an ``nnx.Linear`` output layer over the vocabulary) is

1. trained on such sequences with ``jaxloss.linear_softmax_cross_entropy``
   (supervised fine-tuning, SFT), then
2. tuned with DPO (``jaxloss.linear_preference_loss``, the frozen SFT model as
   the reference) on generated preference pairs: after a 4-token prompt, the
   chosen completion counts up by 1, a step the SFT data never shows, and the
   rejected one continues the SFT process.

Both losses take the last hidden states and the output layer's ``kernel`` and
``bias`` and never hold the ``tokens x vocabulary`` logits. The script prints
the temporary memory XLA plans for one DPO value-and-gradient step
(``memory_analysis().temp_size_in_bytes``), dense (logits, ``log_softmax``,
gather, ``jaxloss.dpo_loss``) against fused, then along DPO training the
held-out implicit reward margin
``beta * ((log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l)))``,
the preference accuracy (the share of held-out pairs with a positive margin)
and the share of greedy next tokens that count up by 1.

    python examples/preference_tuning.py
    python examples/preference_tuning.py --dpo-steps 300 --beta 0.2
"""

from __future__ import annotations

import argparse
import copy

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxloss

BOS = 0
STEPS = (2, 3, 4, 5)  # the SFT process's steps; the preferred completions step by 1
BLOCKS = {"block_size": 256, "vocab_block_size": 128}


class CausalLM(nnx.Module):
    """Position ``t`` sees tokens ``t`` and ``t - 1`` (embeddings, one hidden layer) and predicts ``t + 1``."""

    def __init__(self, vocab: int, width: int, hidden: int, *, rngs: nnx.Rngs):
        self.embed = nnx.Embed(vocab, width, rngs=rngs)
        self.mix = nnx.Linear(2 * width, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, vocab, rngs=rngs)  # kernel: (hidden, vocab)

    def features(self, tokens):  # (B, T) -> (B, T, hidden): the inputs of the output layer
        previous = jnp.concatenate([jnp.full_like(tokens[:, :1], BOS), tokens[:, :-1]], axis=1)
        e = jnp.concatenate([self.embed(tokens), self.embed(previous)], axis=-1)
        return jax.nn.gelu(self.mix(e))

    def __call__(self, tokens):  # the logits, for greedy decoding only
        return self.head(self.features(tokens))


def head(model):
    return model.head.kernel[...], model.head.bias[...]


# --------------------------------------------------------------------------- data


def walk(rng, n, length, vocab, steps=STEPS):
    """``n`` sequences of ``length`` tokens in ``[1, vocab)``: a random start, then random steps."""
    start = rng.integers(1, vocab, size=(n, 1))
    increments = rng.choice(steps, size=(n, length - 1))
    offsets = np.concatenate([np.zeros((n, 1), int), np.cumsum(increments, axis=1)], axis=1)
    return ((start - 1 + offsets) % (vocab - 1) + 1).astype(np.int32)


def preference_pairs(rng, n, prompt, length, vocab):
    """``(tokens (2n, length), labels (2n, length))``: chosen rows first (counting up by 1 after the
    prompt), then the rejected ones (the SFT process); labels are the next tokens, -100 on the prompt."""
    prompts = walk(rng, n, prompt, vocab)
    chosen = walk(rng, n, length - prompt + 1, vocab, steps=(1,))
    rejected = walk(rng, n, length - prompt + 1, vocab)
    # the completions continue from the prompt's last token
    chosen = (prompts[:, -1:] - 1 + chosen - chosen[:, :1]) % (vocab - 1) + 1
    rejected = (prompts[:, -1:] - 1 + rejected - rejected[:, :1]) % (vocab - 1) + 1
    tokens = np.concatenate(
        [np.concatenate([prompts, chosen[:, 1:]], 1), np.concatenate([prompts, rejected[:, 1:]], 1)]
    )
    labels = tokens[:, 1:].copy()
    labels[:, : prompt - 1] = -100  # predicting the prompt is not part of the objective
    return jnp.asarray(tokens[:, :-1]), jnp.asarray(labels)


# --------------------------------------------------------------------------- losses


def sft_loss(model, tokens):
    kernel, bias = head(model)
    return jaxloss.linear_softmax_cross_entropy(
        model.features(tokens[:, :-1]), kernel, tokens[:, 1:], bias=bias, **BLOCKS
    ).mean()


def fused_dpo(model, reference, tokens, labels, beta):
    kernel, bias = head(model)
    ref_kernel, ref_bias = head(reference)
    return jaxloss.linear_preference_loss(
        model.features(tokens),
        kernel,
        labels,
        method="dpo",
        beta=beta,
        bias=bias,
        ref_inputs=reference.features(tokens),  # the reference head gets no gradient
        ref_kernel=ref_kernel,
        ref_bias=ref_bias,
        **BLOCKS,
    )


def sequence_log_probs(model, tokens, labels):
    """Each sequence's summed log-probability of its labels (dense logits: for the dense step only)."""
    log_probs = jax.nn.log_softmax(model(tokens), axis=-1)
    picked = jnp.take_along_axis(log_probs, jnp.maximum(labels, 0)[..., None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(labels != -100, picked, 0), axis=-1)


def dense_dpo(model, reference, tokens, labels, beta):
    lp = sequence_log_probs(model, tokens, labels)
    ref = jax.lax.stop_gradient(sequence_log_probs(reference, tokens, labels))
    half = lp.shape[0] // 2
    return jnp.mean(jaxloss.dpo_loss(lp[:half], lp[half:], ref[:half], ref[half:], beta=beta))


def fused_sequence_log_probs(model, tokens, labels):
    """The same from the head's per-token statistics (no logits)."""
    kernel, bias = head(model)
    stats = jaxloss.linear_softmax_statistics(
        model.features(tokens), kernel, labels, bias=bias, ignore_index=-100, **BLOCKS
    )
    return jnp.sum(stats.label_log_prob, axis=-1)


def temp_bytes(loss, model, reference, pairs, length, beta):
    """XLA's planned temporary memory for one DPO value-and-gradient step (the policy's gradient)."""
    graphdef, params = nnx.split(model)

    def step(params, tokens, labels):
        return jax.value_and_grad(lambda p: loss(nnx.merge(graphdef, p), reference, tokens, labels, beta))(
            params
        )

    shapes = [jax.ShapeDtypeStruct((2 * pairs, length - 1), jnp.int32)] * 2
    return jax.jit(step).lower(params, *shapes).compile().memory_analysis().temp_size_in_bytes


# --------------------------------------------------------------------------- training


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--length", type=int, default=16, help="tokens per sequence")
    parser.add_argument("--prompt", type=int, default=4)
    parser.add_argument("--sft-steps", type=int, default=300)
    parser.add_argument("--dpo-steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=64, help="sequences per SFT step, pairs per DPO step")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument(
        "--memory-scales",
        type=int,
        nargs="+",
        default=[1, 8, 64],
        help="DPO batch sizes (times --batch) whose step memory is printed",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    v, length = args.vocab, args.length

    # 1. supervised fine-tuning with the fused cross-entropy
    model = CausalLM(v, 32, 64, rngs=nnx.Rngs(args.seed))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def sft_step(model, optimizer, tokens):
        value, grads = nnx.value_and_grad(sft_loss)(model, tokens)
        optimizer.update(model, grads)
        return value

    held_out = jnp.asarray(walk(rng, 256, length, v))
    for _ in range(args.sft_steps):
        sft_step(model, optimizer, jnp.asarray(walk(rng, args.batch, length, v)))
    print(f"SFT: {args.sft_steps} steps, held-out cross-entropy {float(sft_loss(model, held_out)):.3f} "
          f"(uniform over the 4 steps: {np.log(4):.3f})")  # fmt: skip

    # 2. DPO against the frozen SFT model
    reference = copy.deepcopy(model)
    memory = {}
    print(f"\n{'DPO step, tokens':>17}{'dense temp':>14}{'fused temp':>14}")
    for pairs in (scale * args.batch for scale in args.memory_scales):
        d, f = (
            temp_bytes(loss, model, reference, pairs, length, args.beta) for loss in (dense_dpo, fused_dpo)
        )
        memory[2 * pairs * (length - 1)] = (d, f)
        print(f"{2 * pairs * (length - 1):>17}{d / 2**20:>10.2f} MiB{f / 2**20:>10.2f} MiB")

    tokens, labels = preference_pairs(rng, 256, args.prompt, length, v)
    check = abs(
        float(fused_dpo(model, reference, tokens, labels, args.beta))
        - float(dense_dpo(model, reference, tokens, labels, args.beta))
    )
    print(f"\nfused - dense DPO loss on the held-out pairs: {check:.1e}")

    @nnx.jit
    def evaluate(model, reference, tokens, labels):
        lp = fused_sequence_log_probs(model, tokens, labels)
        ref = fused_sequence_log_probs(reference, tokens, labels)
        half = lp.shape[0] // 2
        margin = args.beta * ((lp[:half] - ref[:half]) - (lp[half:] - ref[half:]))
        # greedy next token after each held-out prompt: does it count up by 1?
        prompt = tokens[:half, : args.prompt]
        greedy = jnp.argmax(model(prompt)[:, -1], axis=-1)
        counts_up = greedy == (prompt[:, -1] % (v - 1)) + 1
        return jnp.mean(margin), jnp.mean(margin > 0), jnp.mean(counts_up)

    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def dpo_step(model, optimizer, reference, tokens, labels):
        value, grads = nnx.value_and_grad(fused_dpo)(model, reference, tokens, labels, args.beta)
        optimizer.update(model, grads)
        return value

    every = max(1, args.dpo_steps // 6)
    curve = []
    print(f"\n{'DPO step':>8}{'loss':>8}{'reward margin':>15}{'preference accuracy':>21}{'greedy +1':>11}")
    for step in range(args.dpo_steps + 1):
        if step:
            batch = preference_pairs(rng, args.batch, args.prompt, length, v)
            loss = float(dpo_step(model, optimizer, reference, *batch))
        else:
            loss = float(fused_dpo(model, reference, tokens, labels, args.beta))
        if step % every == 0 or step == args.dpo_steps:
            margin, accuracy, counts_up = (float(a) for a in evaluate(model, reference, tokens, labels))
            curve.append((step, loss, margin, accuracy, counts_up))
            print(f"{step:>8}{loss:>8.3f}{margin:>15.3f}{accuracy:>21.3f}{counts_up:>11.3f}")
    return {"curve": curve, "memory": memory, "dense_minus_fused": check}


if __name__ == "__main__":
    main()
