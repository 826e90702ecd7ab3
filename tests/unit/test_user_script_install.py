"""requirements.txt is installed once per interpreter: a multi-model endpoint loads a model in
every worker and again after each eviction, and pip ran each time."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from byoc import user_script
from byoc.user_script import InstallFailed, install_requirements


@pytest.fixture
def pip_runs(tmp_path, monkeypatch) -> list[Path]:
    """The code directories pip ran in; markers go to a temporary directory of the test's own."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    runs: list[Path] = []

    def pip(args, cwd: Path) -> tuple[int, str]:
        runs.append(cwd)
        if "broken" in (cwd / "requirements.txt").read_text():
            return 1, "ERROR: No matching distribution found for broken==1\n"
        return 0, "Successfully installed\n"

    monkeypatch.setattr(user_script, "_pip", pip)
    return runs


def code_dir(root: Path, name: str, requirements: str) -> Path:
    directory = root / name
    directory.mkdir()
    (directory / "requirements.txt").write_text(requirements)
    return directory


def test_the_same_requirements_install_once_whichever_directory_holds_them(tmp_path, pip_runs):
    first, second = code_dir(tmp_path, "a", "joblib\n"), code_dir(tmp_path, "b", "joblib\n")
    for directory in (first, first, second):
        install_requirements(directory)
    assert pip_runs == [first]
    other = code_dir(tmp_path, "c", "joblib==1.4\n")
    install_requirements(other)
    assert pip_runs == [first, other]


@pytest.mark.parametrize(
    "requirements", ["./wheels/x.whl\n", "-r base.txt\n", "--find-links ./wheels\nx==1\n", "-e .\n"]
)
def test_requirements_naming_local_files_install_once_per_directory(tmp_path, pip_runs, requirements):
    """The same text may name other files in another directory: installed once in each."""
    first, second = code_dir(tmp_path, "a", requirements), code_dir(tmp_path, "b", requirements)
    for directory in (first, second, second):
        install_requirements(directory)
    assert pip_runs == [first, second]


def test_a_failed_install_is_not_remembered(tmp_path, pip_runs):
    directory = code_dir(tmp_path, "a", "broken==1\n")
    for _ in range(2):
        with pytest.raises(InstallFailed, match="pip could not install broken==1"):
            install_requirements(directory)
    assert pip_runs == [directory, directory]


def test_no_private_place_for_the_marker_runs_pip_each_time(tmp_path, pip_runs, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing" / "tmp"))
    directory = code_dir(tmp_path, "a", "joblib\n")
    for _ in range(2):
        install_requirements(directory)
    assert pip_runs == [directory, directory]
