"""byoc.job's verdict on a job's exception: exit code and output/failure, as SageMaker reads them."""

from __future__ import annotations

from pathlib import Path

from byoc import job
from byoc.errors import DataError
from support import run_job_raising


def run_failing(tmp_path: Path, exc: Exception) -> tuple[int, str]:
    return run_job_raising(tmp_path, exc, "fitting decision_tree")


def test_a_fault_of_byocs_exits_2_naming_it_a_bug_with_the_traceback_after_the_cause(tmp_path: Path) -> None:
    """Exit 2 is byoc's fault, exit 1 the user's: a fault reported as exit 1 would send the user
    hunting for a mistake in their data that is not there."""
    code, failure = run_failing(tmp_path, RuntimeError("boom"))
    assert code == job.EXIT_FAULT == 2
    first, blank, *details = failure.splitlines()
    assert first.startswith(
        "Internal error while fitting decision_tree: RuntimeError: boom. This is a bug in byoc"
    )
    assert blank == "" and details[0].startswith("Traceback (most recent call last)")


def test_a_users_mistake_exits_1_with_the_cause_first_and_its_code_after(tmp_path: Path) -> None:
    code, failure = run_failing(tmp_path, DataError("train/a.csv, row 2: not a number", code="bad_number"))
    assert code == job.EXIT_USER_ERROR == 1
    assert failure.splitlines()[:3] == ["train/a.csv, row 2: not a number", "", "error code: bad_number"]
