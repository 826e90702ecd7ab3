"""Hyperparameter values within their declared ranges that scikit-learn cannot take as they are:
`container/train` fits them as the user meant (saying so in the log) instead of exhausting memory,
refusing the data or never finishing.  Each was an internal error (exit 2) or a hang before."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from support import csv_bytes, make_ml_root, mixed_frame, model_dir_entries, run_train

FRAME = mixed_frame(120)


def _trained(
    tmp_path: Path, label: str = "deposit", rows: int = 120, **hyperparameters: object
) -> tuple[Path, str]:
    frame = FRAME if rows == len(FRAME) else mixed_frame(rows)
    root = make_ml_root(
        tmp_path,
        channels={"train": {"a.csv": csv_bytes(frame, target=label)}},
        hyperparameters=hyperparameters,
    )
    result = run_train(root)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert {"model.joblib", "model.json"} <= set(model_dir_entries(root))
    return root, log


def test_max_leaf_nodes_beyond_the_rows_grows_the_same_trees_without_reserving_memory_for_them(tmp_path):
    root, log = _trained(tmp_path, algorithm="random_forest", n_estimators=3, max_leaf_nodes=2147483647)
    assert "hyperparameter 'max_leaf_nodes'=2147483647 is more leaves than the 120 training rows" in log
    recorded = json.loads((root / "model" / "model.json").read_text(encoding="utf-8"))["hyperparameters"]
    assert recorded["max_leaf_nodes"] == 2147483647  # what the user asked for is what model.json says


def test_gradient_boosting_with_fewer_bins_than_a_columns_categories(tmp_path):
    _, log = _trained(tmp_path, algorithm="gradient_boosting", max_bins=2, max_iter=10)
    assert "Internal error" not in log


def test_svm_stopped_by_max_iter_says_so_naming_the_hyperparameter(tmp_path):
    _, log = _trained(tmp_path, algorithm="svm", C=1e7, max_iter=50)
    assert "svm: the solver stopped at hyperparameter 'max_iter'=50 before converging" in log
    assert "ConvergenceWarning" not in log  # scikit-learn's advice to scale inputs byoc scales


@pytest.mark.parametrize(
    ("label", "rows", "worse"),
    [  # on 120 rows the classifier still fits (accuracy 0.73), on 300 it diverges (0.40)
        ("balance", 120, "worse than predicting their mean: train:r2 -"),
        ("deposit", 300, "worse than predicting the majority class for every row: train:accuracy "),
    ],
    ids=["regression", "classification"],
)
def test_a_model_worse_than_a_constant_on_its_training_rows_is_a_warning_naming_the_hyperparameter(
    tmp_path, label, rows, worse
):
    """learning_rate=10 is within its range (the user's right): the job trains, saves the model and
    exits 0, as before, but the log now says the model is worse than a constant and why."""
    _, log = _trained(tmp_path, label, rows, algorithm="gradient_boosting", learning_rate=10, max_iter=200)
    [warning] = [line for line in log.splitlines() if "WARNING" in line and "fits the training rows" in line]
    assert f"gradient_boosting fits the training rows {worse}" in warning
    assert "most likely the first: learning_rate=10.0, max_iter=200" in warning


def test_an_auto_model_worse_than_a_constant_on_its_training_rows_is_a_warning_too(tmp_path):
    """algorithm=auto on 5 rows chose a stack by its held-out F1 (0.67) that got every training row
    wrong after the refit (train:accuracy=0), and exited 0 without the warning the named algorithms
    give (the check ran inside their fit step only)."""
    root = make_ml_root(
        tmp_path,
        channels={"train": {"a.csv": "y,x\na,1\nb,2\na,3\nb,4\na,5\n"}},
        hyperparameters={"target": "y", "algorithm": "auto", "max_candidates": 6, "max_runtime_seconds": 30},
    )
    result = run_train(root)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    accuracy = float(re.search(r"^train:accuracy=(\S+)$", log, re.M).group(1))
    warnings = [line for line in log.splitlines() if "WARNING" in line and "fits the training rows" in line]
    if accuracy >= 0.6:  # the search's choice depends on what the budget let it score
        assert warnings == []
        return
    [warning] = warnings
    assert "auto fits the training rows worse than predicting the majority class" in warning
    assert "too few rows to choose a model by held-out scores" in warning


def test_a_model_that_fits_is_not_warned_of(tmp_path):
    _, log = _trained(tmp_path, "balance", algorithm="gradient_boosting", max_iter=20)
    assert "fits the training rows" not in log
