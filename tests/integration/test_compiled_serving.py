"""Compiled inference end to end: the real ``train`` writes it, the real ``serve`` uses it, and
the answers equal those of the same server with compiled inference forced off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from byoc import artifact, compiled
from support import csv_bytes, iris_frame, make_ml_root, mixed_frame, run_train

IRIS = iris_frame()
MIXED = mixed_frame(240)
FAST = {
    "random_forest": {"n_estimators": 10, "n_jobs": 1},
    "extra_trees": {"n_estimators": 10, "n_jobs": 1},
    "gradient_boosting": {"max_iter": 15},
    "ensemble": {"n_estimators": 10, "max_iter": 15, "cv_folds": 2, "n_jobs": 1},
}


def train(root: Path, frame, target: str, algorithm: str, **hyperparameters) -> dict:
    make_ml_root(
        root,
        channels={"train": {"train.csv": csv_bytes(frame, target=target, header=True)}},
        hyperparameters={
            "target": target,
            "algorithm": algorithm,
            **FAST.get(algorithm, {}),
            **hyperparameters,
        },
    )
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return artifact.load(root / "model").metadata


@pytest.mark.parametrize("algorithm", ["random_forest", "extra_trees", "gradient_boosting", "ensemble"])
def test_train_writes_a_checked_compiled_form(tmp_path, algorithm):
    meta = train(tmp_path, IRIS, "target", algorithm=algorithm)
    entry = meta["compiled"]
    assert entry["file"] == compiled.COMPILED_FILE
    assert meta["files"][compiled.COMPILED_FILE]["sha256"] == artifact.sha256_of(
        tmp_path / "model" / compiled.COMPILED_FILE
    )
    backends = {step["slot"]: step["backend"] for step in entry["steps"]}
    if algorithm == "ensemble":
        assert backends == {
            "member:random_forest": "treelite",
            "member:gradient_boosting": "treelite",  # iris has no text column
            "member:linear": "scikit-learn",
        }
    else:
        assert backends == {"model": "treelite"}


def test_switched_off_at_training_writes_no_compiled_form(tmp_path):
    meta = train(tmp_path, MIXED, "deposit", algorithm="random_forest", compiled_inference="false")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["model.joblib", "model.json"]
    assert meta["compiled"]["file"] is None
    assert json.dumps(meta["compiled"]["steps"]).count("compiled_inference=false") == 1


def test_text_columns_keep_gradient_boosting_on_scikit_learn_with_the_reason(tmp_path):
    meta = train(tmp_path, MIXED, "deposit", algorithm="gradient_boosting")
    (step,) = meta["compiled"]["steps"]
    assert step["backend"] == "scikit-learn" and "categorical" in step["reason"]
    assert meta["compiled"]["file"] is None
