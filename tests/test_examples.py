"""Smoke tests of the examples: each runs a few steps and checks what it reports."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

# every example trains or evaluates for several seconds
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("loss", ["batch_hard", "batch_all", "semi_hard", "supcon", "squared_triplet"])
def test_metric_learning_digits_trains_and_improves_retrieval(loss, tmp_path):
    demo = _load("metric_learning_digits")
    png = tmp_path / "demo.png"
    result = demo.main(["--loss", loss, "--steps", "150", "--plot", str(png), "--no-progress"])
    (p1_before, p1_after), (map_before, map_after) = result["p1"], result["map_r"]
    assert p1_after > p1_before + 0.03, result["p1"]
    assert map_after > map_before + 0.2, result["map_r"]
    assert png.stat().st_size > 10_000


def test_metric_learning_digits_is_reproducible():
    demo = _load("metric_learning_digits")
    args = ["--steps", "30", "--plot", "", "--no-progress"]
    a, b = demo.main(args), demo.main(args)
    assert a["p1"] == b["p1"] and a["map_r"] == b["map_r"]


def test_cross_batch_memory_trains():
    example = _load("cross_batch_memory")
    results = example.main(["--steps", "150"])
    for r in results.values():  # both runs (in-batch, memory) learn
        (p1_before, map_before), (p1_after, map_after) = r["before"], r["after"]
        assert map_after > map_before + 0.1 and p1_after >= p1_before, r


def test_embedding_model_improves_retrieval_at_every_nested_size():
    example = _load("embedding_model")
    result = example.main(["--epochs", "4", "--batch", "64", "--chunk", "16", "--negatives", "1"])
    for size in example.SIZES:  # MNRL + mined hard negatives + Matryoshka + GradCache
        (ndcg_before, recall_before), (ndcg_after, recall_after) = (
            result["before"][size],
            result["after"][size],
        )
        assert ndcg_after > ndcg_before + 0.05 and recall_after > recall_before + 0.05, (size, result)


def test_classification_label_smoothing_reports_accuracy_and_calibration():
    example = _load("classification_label_smoothing")
    results = example.main(["--smoothing", "0", "0.1", "--epochs", "3"])
    for r in results.values():
        assert 0.8 < r["accuracy"] <= 1.0
        assert 0.0 <= r["ece"] <= 1.0
    assert results[0.1]["mean_confidence"] < results[0.0]["mean_confidence"]


def test_port_from_pytorch_matches_torch(capsys):
    example = _load("port_from_pytorch")
    diffs = example.main()
    assert len(diffs) >= 12 and max(diffs) < 1e-5
    assert "largest difference from PyTorch" in capsys.readouterr().out


def test_retrieval_eval_small_database():
    example = _load("retrieval_eval")
    result = example.main(
        ["--database", "20000", "--queries", "300", "--classes", "50", "--chunk", "100", "--no-progress"]
    )
    assert result["precision@1"] > 0.5 and np.isfinite(result["seconds"])
    # the ranked-list metrics agree with the label metrics where they coincide
    np.testing.assert_allclose(result["hit rate@1"], result["precision@1"], rtol=1e-6)
    assert result["precision@1"] <= result["MRR"] <= 1.0 and 0.0 < result["nDCG@10"] <= 1.0
    assert result["filtered: only allowed rows"] and result["filtered: none already seen"]
    assert result["filtered: precision@1"] > 0.5


def test_two_tower_contrastive_trains_through_the_ring():
    import subprocess
    import sys

    script = ROOT / "examples" / "two_tower_contrastive.py"
    args = ["--steps", "80", "--batch", "128", "--block-size", "16", "--no-progress"]
    out = subprocess.run(
        [sys.executable, str(script), *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "on 4 devices" in out.stdout
    top1 = out.stdout.split("top-1 ")[1].split(",")[0].split(" -> ")
    assert float(top1[1]) > float(top1[0]) + 0.03, out.stdout


def test_face_style_arcface_trains_and_runs_class_parallel():
    from tests.helpers import run_python

    out = run_python(
        "import examples.face_style_arcface as demo, json; r = demo.main(['--steps', '120']); "
        "print('RESULT', json.dumps(r))",
        devices=4,
        timeout=600,
    )
    import json

    result = json.loads(out.split("RESULT", 1)[1])
    before_p1, before_map = result["before"]
    for name in ("arcface", "batch_hard"):
        p1, map_r = result[name]
        assert p1 > before_p1 and map_r > before_map + 0.3, (name, result)
    n_dev, v1, v2, diff = result["class_parallel"]
    assert n_dev == 4 and abs(v1 - v2) < 1e-5 * abs(v1) and diff < 1e-4


@pytest.mark.slow
def test_distill_lm_head_distils_with_less_memory():
    example = _load("distill_lm_head")
    result = example.main(
        ["--teacher-steps", "30", "--steps", "16", "--batch", "64", "--memory-scales", "64"]
    )
    assert np.isfinite(result["scratch"]).all() and np.isfinite(result["distilled"]).all()
    assert result["distilled"][-1] < result["distilled"][0]
    assert result["dense_minus_fused"] < 1e-4
    dense, fused = result["memory"][64 * 64]
    assert fused < dense / 2


@pytest.mark.slow
def test_preference_tuning_raises_the_preference_accuracy():
    example = _load("preference_tuning")
    result = example.main(
        ["--sft-steps", "60", "--dpo-steps", "30", "--batch", "32", "--memory-scales", "16"]
    )
    steps, losses, margins, accuracy, _ = zip(*result["curve"], strict=True)
    assert np.isfinite(losses).all() and accuracy[0] == 0.0 and accuracy[-1] > 0.9, result["curve"]
    assert margins[-1] > margins[0] and losses[-1] < losses[0]
    assert result["dense_minus_fused"] < 1e-4
    dense, fused = result["memory"][max(result["memory"])]
    assert fused < dense / 2
