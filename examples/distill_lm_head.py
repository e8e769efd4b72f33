"""Distilling a word-level language model into a smaller one, without the logits of either head.

A companion of ``language_model_head.py`` (same corpus, model and fused
cross-entropy). A teacher (hidden width 128) is trained first; then two
students with a narrower hidden layer (``--student-hidden``, 32 by default)
start from the same initialisation:

* "scratch": the fused cross-entropy on the next word only;
* "distilled": ``alpha * cross-entropy + (1 - alpha) * T^2 * KL(p_teacher || p_student)``
  at temperature ``T`` (Hinton et al.'s recipe), the KL from
  ``jaxloss.linear_distillation_loss``, which takes both heads' hidden
  states and kernels and never holds either ``tokens x vocabulary`` logit
  matrix. The teacher is a fixed target (no gradient reaches it).

The script prints the temporary memory XLA plans for one value-and-gradient
step of the distillation loss (``memory_analysis().temp_size_in_bytes``),
dense (both heads' logits, ``log_softmax``) against fused, then both
students' cross-entropy on held-out text along training.

    python examples/distill_lm_head.py
    python examples/distill_lm_head.py --steps 800 --temperature 2
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import jaxloss


def _load_language_model_head():
    path = Path(__file__).resolve().parent / "language_model_head.py"
    spec = importlib.util.spec_from_file_location("language_model_head", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lm = _load_language_model_head()
BLOCKS = lm.BLOCKS


def head(model):
    return model.head.kernel[...], model.head.bias[...]


def fused_kl(student, teacher, contexts, temperature):
    """Per-token ``KL(p_teacher || p_student)`` at ``temperature``, from the two heads' inputs."""
    ks, bs = head(student)
    kt, bt = head(teacher)
    return jaxloss.linear_distillation_loss(
        student.features(contexts),
        ks,
        jax.lax.stop_gradient(teacher.features(contexts)),
        kt,
        student_bias=bs,
        teacher_bias=bt,
        temperature=temperature,
        **BLOCKS,
    )


def dense_kl(student, teacher, contexts, temperature):
    ls = jax.nn.log_softmax(student(contexts) / temperature, axis=-1)
    lt = jax.nn.log_softmax(jax.lax.stop_gradient(teacher(contexts)) / temperature, axis=-1)
    return jnp.sum(jnp.exp(lt) * (lt - ls), axis=-1)


def distillation_loss(kl, alpha, temperature):
    def loss(student, teacher, contexts, targets):
        ce = lm.fused_loss(student, contexts, targets)
        return alpha * ce + (1 - alpha) * temperature**2 * kl(student, teacher, contexts, temperature).mean()

    return loss


def temp_bytes(loss, student, teacher, batch, context):
    """XLA's planned temporary memory for one value-and-gradient step of ``loss`` (student's gradient)."""
    graphdef, params = nnx.split(student)

    def step(params, contexts, targets):
        return jax.value_and_grad(lambda p: loss(nnx.merge(graphdef, p), teacher, contexts, targets))(params)

    shapes = (
        jax.ShapeDtypeStruct((batch, context), jnp.int32),
        jax.ShapeDtypeStruct((batch,), jnp.int32),
    )
    return jax.jit(step).lower(params, *shapes).compile().memory_analysis().temp_size_in_bytes


def train(model, loss, data, steps, batch, rng, evaluate, every):
    """Adam on ``loss(model, x, y)``; returns the held-out curve ``[(step, evaluate(model))]``."""
    optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y):
        value, grads = nnx.value_and_grad(loss)(model, x, y)
        optimizer.update(model, grads)
        return value

    contexts, targets = data
    curve = [(0, evaluate(model))]
    for step in range(1, steps + 1):
        rows = rng.integers(0, len(targets), size=batch)
        train_step(model, optimizer, jnp.asarray(contexts[rows]), jnp.asarray(targets[rows]))
        if step % every == 0 or step == steps:
            curve.append((step, evaluate(model)))
    return curve


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teacher-steps", type=int, default=150)
    parser.add_argument("--steps", type=int, default=240)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--context", type=int, default=4)
    parser.add_argument("--student-hidden", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the cross-entropy")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--memory-scales",
        type=int,
        nargs="+",
        default=[1, 8, 64],
        help="tokens per step of the memory table, in multiples of --batch",
    )
    args = parser.parse_args(argv)

    words = lm.tokenize(lm.corpus())
    vocab = sorted(set(words))
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.array([index[w] for w in words], np.int32)
    c = args.context
    contexts = np.lib.stride_tricks.sliding_window_view(ids[:-1], c)
    targets = ids[c:]
    split = int(0.9 * len(targets))  # the last 10% of the text is held out
    train_data = (contexts[:split], targets[:split])
    held_x, held_y = jnp.asarray(contexts[split:]), jnp.asarray(targets[split:])
    print(f"corpus: {len(words)} tokens, vocabulary of {len(vocab)} words; {len(held_y)} held-out tokens")

    def held_out_loss(model):
        return float(lm.fused_loss(model, held_x, held_y))

    rng = np.random.default_rng(args.seed)
    teacher = lm.LanguageModel(len(vocab), c, 64, 128, rngs=nnx.Rngs(args.seed))
    teacher_curve = train(
        teacher,
        lm.fused_loss,
        train_data,
        args.teacher_steps,
        args.batch,
        rng,
        held_out_loss,
        args.teacher_steps,
    )
    print(f"teacher (hidden 128): held-out cross-entropy {teacher_curve[-1][1]:.3f}")

    def student():
        return lm.LanguageModel(len(vocab), c, 64, args.student_hidden, rngs=nnx.Rngs(args.seed + 1))

    t, alpha = args.temperature, args.alpha
    fused = distillation_loss(fused_kl, alpha, t)
    dense = distillation_loss(dense_kl, alpha, t)

    memory = {}
    print(f"\n{'tokens per step':>16}{'dense distill temp':>21}{'fused distill temp':>21}")
    for batch in (scale * args.batch for scale in args.memory_scales):
        d, f = (temp_bytes(loss, student(), teacher, batch, c) for loss in (dense, fused))
        memory[batch] = (d, f)
        print(f"{batch:>16}{d / 2**20:>18.2f} MiB{f / 2**20:>18.2f} MiB")

    s = student()
    x0, y0 = held_x[: args.batch], held_y[: args.batch]
    check = abs(float(fused(s, teacher, x0, y0)) - float(dense(s, teacher, x0, y0)))
    print(f"\nfused - dense distillation loss at initialisation: {check:.1e}")

    every = max(1, args.steps // 8)
    scratch = train(student(), lm.fused_loss, train_data, args.steps, args.batch, rng, held_out_loss, every)
    distilled = train(
        student(),
        lambda m, x, y: fused(m, teacher, x, y),
        train_data,
        args.steps,
        args.batch,
        rng,
        held_out_loss,
        every,
    )
    print(f"\nheld-out cross-entropy of the student (hidden {args.student_hidden}), T = {t}, alpha = {alpha}")
    print(f"{'step':>6}{'scratch':>10}{'distilled':>11}")
    for (step, a), (_, b) in zip(scratch, distilled, strict=True):
        print(f"{step:>6}{a:>10.3f}{b:>11.3f}")
    return {
        "teacher": teacher_curve[-1][1],
        "scratch": [v for _, v in scratch],
        "distilled": [v for _, v in distilled],
        "memory": memory,
        "dense_minus_fused": check,
    }


if __name__ == "__main__":
    main()
