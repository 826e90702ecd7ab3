"""Fixtures shared by every test: ML-root builders and small, generated or bundled datasets.

Helpers are importable as ``from support import make_ml_root, run_train, ...`` (this file
puts ``tests/`` on sys.path).  Data comes from scikit-learn's bundled datasets or is
generated: tests never read /work/shared.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import support  # noqa: E402


def mixed_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Numeric + text categorical columns with missing values and a text (yes/no) target.

    The target depends on the features, so a fitted model beats chance.
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    balance = rng.normal(1000, 400, n).round(2)
    job = rng.choice(["admin", "technician", "services", "retired"], n).astype(object)
    contact = rng.choice(["cellular", "telephone"], n).astype(object)
    score = (age - 45) / 15 + (balance - 1000) / 400 + np.where(job == "retired", 1.5, 0.0)
    deposit = np.where(score + rng.normal(0, 0.5, n) > 0, "yes", "no")
    age[rng.random(n) < 0.05] = np.nan
    job[rng.random(n) < 0.05] = None
    return pd.DataFrame({"deposit": deposit, "age": age, "balance": balance, "job": job,
                         "contact": contact})


def iris_frame() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    names = np.asarray(data.target_names)
    frame["target"] = names[frame["target"].to_numpy()]
    return frame[["target"] + [c for c in frame.columns if c != "target"]]


def diabetes_frame() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    return frame[["target"] + [c for c in frame.columns if c != "target"]]


@pytest.fixture
def ml_root_factory(tmp_path: Path) -> Callable[..., Path]:
    """``ml_root_factory(channels=..., hyperparameters=..., ...)`` -> a fresh ML root each call."""
    counter = iter(range(1_000_000))

    def factory(**kwargs: Any) -> Path:
        return support.make_ml_root(tmp_path / f"ml{next(counter)}", **kwargs)

    return factory


@pytest.fixture(scope="session")
def small_mixed() -> pd.DataFrame:
    return mixed_frame()


@pytest.fixture(scope="session")
def iris() -> pd.DataFrame:
    return iris_frame()


@pytest.fixture(scope="session")
def diabetes() -> pd.DataFrame:
    return diabetes_frame()


@pytest.fixture(scope="session")
def trained_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ML root whose model/ holds a decision-tree model trained by the real ``container/train``
    on :func:`mixed_frame` (header CSV, target ``deposit``): for serving tests."""
    frame = mixed_frame()
    root = support.make_ml_root(
        tmp_path_factory.mktemp("trained"),
        channels={"train": {"train.csv": support.csv_bytes(frame.iloc[:200], target="deposit", header=True)},
                  "validation": {"validation.csv": support.csv_bytes(frame.iloc[200:], target="deposit",
                                                                     header=True)}},
        hyperparameters={"target": "deposit"}, content_types={"train": "text/csv",
                                                              "validation": "text/csv"})
    result = support.run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root
