"""The two classification rules behind training's exit codes, at their boundaries: which OS
errors are the environment's (byoc.oserrors) and which numbers are usable (byoc.finite)."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from byoc import finite, oserrors


def test_os_errors_about_the_ml_root_are_the_users(tmp_path):
    (tmp_path / "input").mkdir()
    inside = tmp_path / "input" / "data.csv"
    inside.write_text("x")
    error = oserrors.as_user_error(
        PermissionError(errno.EACCES, "Permission denied", str(inside)), tmp_path, "reading"
    )
    assert error is not None and error.message.startswith(f"{inside}: Permission denied while reading;")
    full = oserrors.as_user_error(
        OSError(errno.ENOSPC, "No space left on device", str(inside)), tmp_path, "saving"
    )
    assert full is not None and "free disk space" in full.message


@pytest.mark.parametrize(
    "exc",
    [
        PermissionError(errno.EACCES, "Permission denied", "/etc/elsewhere"),  # outside the ML root
        OSError(errno.EIO, "Input/output error", "IN_ROOT"),  # not something the user can fix
        PermissionError(errno.EACCES, "Permission denied"),  # no file named
        ValueError("not an OS error"),
    ],
)
def test_other_errors_stay_faults(tmp_path, exc):
    if isinstance(exc, OSError) and exc.filename == "IN_ROOT":
        exc.filename = str(tmp_path / "model")
    assert oserrors.as_user_error(exc, tmp_path, "saving") is None


def test_a_path_that_was_never_created_is_named_by_its_directory(tmp_path):
    missing = tmp_path / "model" / ".staging-x"
    error = oserrors.as_user_error(
        PermissionError(errno.EACCES, "Permission denied", str(missing)), tmp_path, "saving"
    )
    assert error is not None and error.message.startswith(f"{tmp_path / 'model'}: Permission denied")


def test_display_path_escapes_bytes_that_are_not_utf8():
    assert oserrors.display_path(b"/data/b\xff.csv") == "/data/b\\xff.csv"
    assert oserrors.display_path(Path("/data/é.csv")) == "/data/é.csv"


def test_finiteness_bounds():
    limit = finite.FEATURE_LIMIT
    values = np.array([np.nan, 1.0, -limit, limit, np.nextafter(limit, np.inf)])
    assert finite.first_beyond(values, limit) == 4
    assert finite.first_beyond(np.array([np.nan, 0.0]), limit) is None
    assert finite.first_beyond(np.array([1.0, -np.inf]), finite.TARGET_LIMIT) == 1
    assert finite.first_beyond(np.array([1e150, -1e150]), finite.TARGET_LIMIT) is None
    assert np.isfinite(np.float64(finite.TARGET_LIMIT) ** 2 * 1e6)  # squares of a million rows still sum


def test_naming_gives_a_nameless_os_error_the_path_being_written(tmp_path):
    with pytest.raises(OSError) as caught, oserrors.naming(tmp_path / "model"):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert caught.value.filename == str(tmp_path / "model") and caught.value.errno == errno.ENOSPC
    with pytest.raises(OSError) as kept, oserrors.naming(tmp_path / "model"):
        raise OSError(errno.EACCES, "Permission denied", "/elsewhere")
    assert kept.value.filename == "/elsewhere"


class _CountedFrame(pd.DataFrame):
    """A frame counting the lookups ``check_features`` makes (one per column made it slow wide)."""

    lookups = 0

    def __getitem__(self, key):
        type(self).lookups += 1
        return super().__getitem__(key)


@pytest.mark.parametrize("cells", [2**22, 7])  # one block, and blocks of 2 columns
def test_features_are_checked_columns_together_first_bad_column_first(monkeypatch, cells):
    """The first numeric feature (in the features' order) holding a value beyond float32 is
    named, at its first such row; the frame is read a block of columns at a time (a Series per
    column cost more than the check at 2,000 columns)."""
    monkeypatch.setattr(finite, "CHECKED_CELLS", cells, raising=False)
    X = _CountedFrame(np.zeros((3, 40)), columns=[f"c{i}" for i in range(40)], index=[10, 11, 12])
    X.iloc[2, 5] = np.inf
    X.iloc[1, 30] = -1e39
    X.iloc[0, 30] = np.nan
    numeric = [f"c{i}" for i in reversed(range(40))]
    _CountedFrame.lookups = 0
    with pytest.raises(finite.DataError) as info:
        finite.check_features(
            X, numeric, locate=lambda i: f"f.csv, row {i}", column_names={"c30": "column 31"}
        )
    assert str(info.value).startswith("f.csv, row 11, column 31: -1e+39 is not a usable feature value")
    assert _CountedFrame.lookups <= (1 if cells > 120 else 5)
    finite.check_features(X, ["c1", "c2"], locate=str, column_names={})  # all finite: no error


def test_a_failure_file_the_full_disk_cuts_off_is_not_left_empty(tmp_path, monkeypatch):
    """open(..., "x") creates the failure file on a full disk, and its write then fails: the empty
    file was left, a failure file with no cause that nothing may overwrite (SageMaker then shows
    an empty FailureReason instead of pointing at the log, which carries the cause)."""
    from byoc import job

    real_open = open

    class Full:
        def __init__(self, path: Path, mode: str, encoding: str) -> None:
            self.fh = real_open(path, mode, encoding=encoding)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()

        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(job, "open", Full, raising=False)
    path = tmp_path / "output" / "failure"
    assert job.write_failure(path, "the cause") is False
    assert not path.exists()
    monkeypatch.undo()
    assert job.write_failure(path, "the cause") is True  # a later writer (the stop handler) still can
    assert path.read_text() == "the cause\n"


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_is_the_environments_even_when_the_error_names_no_file(tmp_path, code):
    """Python names no file when a full disk is met on flushing or closing one, and a writer
    without oserrors.naming (algorithm=auto's leaderboard.csv and report.html) let it through as
    an internal fault (exit 2): a full disk is never a bug of byoc, whichever file it was."""
    error = oserrors.as_user_error(OSError(code, "No space left on device"), tmp_path, "writing the report")
    assert error is not None and error.code == "environment"
    assert error.message.startswith("No space left on device while writing the report"), error.message
    assert "larger volume (VolumeSizeInGB)" in error.message or "quota" in error.message
    assert oserrors.as_user_error(OSError(errno.EACCES, "Permission denied"), tmp_path, "x") is None
