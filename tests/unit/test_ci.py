"""CI fails when lint or the type check fails (#11): `.ci/run` stops at the first failing command and
runs `make lint` (ruff check, ruff format --check, mypy) before anything else."""

from __future__ import annotations

import re
import subprocess

from support import REPO


def test_ci_runs_make_lint_first_and_stops_at_a_failure():
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert re.search(r"^set -euo pipefail$", script, re.M)
    commands = re.findall(r"^make (\S+)$", script, re.M)
    assert commands[:2] == ["lint", "test"], commands


def test_make_lint_runs_ruff_check_format_check_and_mypy():
    recipe = subprocess.run(
        ["make", "-n", "-W", "pyproject.toml", "lint"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    for tool in ("ruff check .", "ruff format --check .", "mypy"):
        assert re.search(rf"^\.venv/bin/{re.escape(tool)}$", recipe, re.M), recipe
