"""Fixtures shared by every test, the hypothesis profiles, and the rule that nothing is skipped.

Helpers and dataset builders live in ``support`` (``from support import make_ml_root, run_train,
mixed_frame, ...``; this file puts ``tests/`` on sys.path).  Data comes from scikit-learn's
bundled datasets or is generated: tests never read files outside the checkout.

Hypothesis profiles: ``dev`` (the default: random examples, saved failures replayed) and ``ci``
(derandomised, so a CI run is reproducible; no example database), chosen explicitly with
``--hypothesis-profile=ci`` (``make test`` and ``.ci/run`` pass it).

A skipped test fails the run: a skip would hide a missing module or service as a pass.

Files holding a test marked ``slow`` are collected first: ``make test`` hands whole files to its
processes in collection order (``--dist loadfile --no-loadscope-reorder``), so a file of minutes
starts at the beginning rather than last, where it would hold the run's end with one process idle.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

import support
from support import diabetes_frame, iris_frame, mixed_frame

settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("dev")


@pytest.fixture(autouse=True, scope="session")
def one_thread() -> Iterator[None]:
    """The test process's math libraries (OpenMP, BLAS) on one thread, as a serving worker's are.
    Two test processes share the cores with the processes they start, and OpenMP's threads
    spin-waiting for a busy core made in-process predictions cost many times their work
    (tests/unit/test_row_members.py: 87 s of CPU, 19.5 s on one thread).  The libraries are
    loaded by then: collection imported scikit-learn.  ``train`` and ``serve`` processes are not
    affected (their own threads are theirs to set)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


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


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")  # the SDK's banner on import


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with a ``slow`` test first, each file's tests kept together and in order (see above)."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: otherwise collection order


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Turn a run with skipped tests into a failure (CI must not pass with parts unexercised)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if reporter is not None:
            reporter.write_line(f"FAILED: {len(skipped)} test(s) skipped; nothing may be skipped", red=True)
