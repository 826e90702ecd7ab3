"""Fixtures shared by every test: ML-root builders and small, generated or bundled datasets.

Helpers and dataset builders are importable as ``from support import make_ml_root, run_train,
mixed_frame, ...`` (this file puts ``tests/`` on sys.path).  Import them from ``support``, not
from ``conftest``: every directory's conftest.py is a module named ``conftest``, so
``from conftest import ...`` gets whichever was loaded last.  Data comes from scikit-learn's bundled datasets or is
generated: tests never read /work/shared.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import support
from support import diabetes_frame, iris_frame, mixed_frame


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
        channels={
            "train": {"train.csv": support.csv_bytes(frame.iloc[:200], target="deposit", header=True)},
            "validation": {
                "validation.csv": support.csv_bytes(frame.iloc[200:], target="deposit", header=True)
            },
        },
        hyperparameters={"target": "deposit"},
        content_types={"train": "text/csv", "validation": "text/csv"},
    )
    result = support.run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


_THIS_MODULE = sys.modules[__name__]


def pytest_pycollect_makemodule(module_path: Path, parent: Any) -> None:
    """Keep ``from conftest import mixed_frame`` (published here first) working in test modules
    outside tests/container: pytest binds the name ``conftest`` to whichever directory's
    conftest.py it imported last, and tests/container has its own.  New code: import from
    ``support``."""
    if "container" not in module_path.relative_to(Path(__file__).parent).parts[:1]:
        sys.modules["conftest"] = _THIS_MODULE
