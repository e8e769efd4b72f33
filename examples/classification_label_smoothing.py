"""Label smoothing on handwritten digits: accuracy and calibration.

A Flax NNX classifier (MLP) is trained on scikit-learn's ``load_digits`` with
``jaxloss.softmax_cross_entropy_with_integer_labels`` for several values of
``label_smoothing``; for each, the script reports held-out accuracy, negative
log-likelihood and expected calibration error (ECE, 15 equal-width confidence
bins) and the mean confidence of the predictions.

What it shows (seed 0, 100 epochs): smoothing lowers the network's confidence
and nudges accuracy up (0.981 -> 0.985), but on this small, easy data set the
unsmoothed network is already well calibrated, so the smoothed ones become
under-confident and their ECE grows. Label smoothing is a regulariser against
over-confidence, not a calibration method: measure, as this script does.

    python examples/classification_label_smoothing.py
    python examples/classification_label_smoothing.py --smoothing 0 0.05 0.2 --epochs 60
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import jaxloss


class Classifier(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(64, 128, rngs=rngs)
        self.l2 = nnx.Linear(128, 10, rngs=rngs)

    def __call__(self, x):
        return self.l2(jax.nn.relu(self.l1(x)))


def expected_calibration_error(probs, labels, bins: int = 15) -> float:
    """ECE: sum over confidence bins of |accuracy - confidence| weighted by the bin's share."""
    confidence = probs.max(1)
    correct = probs.argmax(1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def train_one(smoothing, data, epochs, batch, seed):
    x_train, x_test, y_train, y_test = data
    model = Classifier(rngs=nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, xb, yb):
        def objective(m):
            losses = jaxloss.softmax_cross_entropy_with_integer_labels(m(xb), yb, label_smoothing=smoothing)
            return losses.mean()

        loss, grads = nnx.value_and_grad(objective)(model)
        optimizer.update(model, grads)
        return loss

    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            step(model, optimizer, jnp.asarray(x_train[idx]), jnp.asarray(y_train[idx]))
    logits = model(jnp.asarray(x_test))
    probs = np.asarray(jax.nn.softmax(logits))
    nll = float(jaxloss.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(y_test)).mean())
    return {
        "accuracy": float((probs.argmax(1) == y_test).mean()),
        "nll": nll,
        "ece": expected_calibration_error(probs, y_test),
        "mean_confidence": float(probs.max(1).mean()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoothing", type=float, nargs="+", default=[0.0, 0.05, 0.1])
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    digits = load_digits()
    data = train_test_split(
        (digits.data / 16.0).astype(np.float32),
        digits.target.astype(np.int32),
        test_size=0.3,
        random_state=args.seed,
        stratify=digits.target,
    )
    print(f"{'label_smoothing':>16}{'accuracy':>10}{'NLL':>8}{'ECE':>8}{'mean conf.':>12}")
    results = {}
    for s in args.smoothing:
        r = train_one(s, data, args.epochs, args.batch, args.seed)
        results[s] = r
        print(
            f"{s:>16.2f}{r['accuracy']:>10.3f}{r['nll']:>8.3f}{r['ece']:>8.3f}{r['mean_confidence']:>12.3f}"
        )
    return results


if __name__ == "__main__":
    main()
