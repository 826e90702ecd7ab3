"""README sections generated from the declarations: rewrite, --check, and as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from byoc import docs
from byoc.hyperparameters import markdown_table

STALE = """# byoc

intro

<!-- BEGIN GENERATED: hyperparameters -->
| old table |
<!-- END GENERATED: hyperparameters -->

middle

<!-- BEGIN GENERATED: metrics -->
<!-- END GENERATED: metrics -->

<!-- BEGIN GENERATED: content-types -->
<!-- END GENERATED: content-types -->

<!-- BEGIN GENERATED: nobody-knows -->
keep me
<!-- END GENERATED: nobody-knows -->
outro
"""


@pytest.fixture
def readme(tmp_path: Path) -> Path:
    path = tmp_path / "README.md"
    path.write_text(STALE, encoding="utf-8")
    return path


def test_render_replaces_only_the_generated_bodies():
    text, changed, missing = docs.render(STALE)
    assert missing == []
    assert "hyperparameters" in changed and "metrics" in changed
    assert markdown_table() in text and "| old table |" not in text
    assert text.startswith("# byoc\n\nintro\n") and text.endswith("outro\n")
    assert "middle" in text and "keep me" in text  # unknown sections are left alone
    again, changed_again, _ = docs.render(text)
    assert again == text and changed_again == []


def test_content_types_come_from_the_serving_codecs():
    from byoc.serving import codecs

    section = docs.content_types_section()
    for media in codecs.supported_content_types():
        assert f"`{media}`" in section


def test_metrics_section_names_every_metric():
    section = docs.metrics_section()
    assert "`auc`" in section and "`rmse`" in section and "--metric-definitions" in section


def test_check_fails_when_stale_and_passes_after_rewrite(readme, capsys):
    assert docs.main([str(readme), "--check"]) == 1
    assert "section 'hyperparameters' is stale" in capsys.readouterr().err
    assert readme.read_text() == STALE  # --check changes nothing
    assert docs.main([str(readme)]) == 0
    assert docs.main([str(readme), "--check"]) == 0


def test_missing_required_section_fails_the_check(tmp_path, capsys):
    path = tmp_path / "README.md"
    path.write_text("# no markers\n")
    assert docs.main([str(path), "--check"]) == 1
    assert "BEGIN GENERATED: hyperparameters" in capsys.readouterr().err


def test_unreadable_file_is_reported(tmp_path, capsys):
    assert docs.main([str(tmp_path / "absent.md"), "--check"]) == 2
    assert "cannot be read" in capsys.readouterr().err


def test_runs_as_python_dash_m(readme):
    result = subprocess.run(
        [sys.executable, "-m", "byoc.docs", str(readme)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "updated" in result.stdout and "hyperparameters" in result.stdout
    check = subprocess.run(
        [sys.executable, "-m", "byoc.docs", str(readme), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
