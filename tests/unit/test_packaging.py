"""The project's own packaging builds without deprecation warnings (#11).

setuptools warns on every install about deprecated pyproject forms (the license table, classifiers
that repeat the licence, ...); `make venv` and CI would show them.  The metadata is built as pip
builds it (setuptools' PEP 517 backend, in its own process), once for this checkout and once for a
copy whose licence is written in the deprecated table form, which must warn: the check can fail.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from support import REPO

BUILD_METADATA = (
    "import sys; from setuptools import build_meta; build_meta.prepare_metadata_for_build_wheel(sys.argv[1])"
)


def deprecations(project: Path, out: Path) -> list[str]:
    """The deprecation warnings setuptools prints while building ``project``'s wheel metadata."""
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", BUILD_METADATA, str(out)],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return [line for line in (proc.stdout + proc.stderr).splitlines() if re.search("deprecat", line, re.I)]


def test_the_project_metadata_builds_without_deprecation_warnings(tmp_path):
    assert deprecations(REPO, tmp_path / "metadata") == []


def test_a_deprecated_licence_table_would_be_reported(tmp_path):
    project = tmp_path / "project"
    (project / "container" / "byoc").mkdir(parents=True)
    (project / "container" / "byoc" / "__init__.py").write_text("")
    for name in ("README.md", "LICENSE"):
        shutil.copy(REPO / name, project / name)
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert 'license = "Apache-2.0"\n' in pyproject
    (project / "pyproject.toml").write_text(
        pyproject.replace('license = "Apache-2.0"\n', 'license = {text = "Apache-2.0"}\n').replace(
            'license-files = ["LICENSE"]\n', ""
        ),
        encoding="utf-8",
    )
    assert deprecations(project, tmp_path / "metadata")


def test_the_images_dependency_layer_copies_nothing_but_pyproject():
    """The Dockerfile installs the dependencies in a layer of their own so that an edit elsewhere
    rebuilds only the small layer after it. README.md was copied into that layer (pyproject's
    `readme`), so a README edit (most commits) re-downloaded and reinstalled every dependency."""
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    build_stage = dockerfile[: dockerfile.index("AS runtime")]
    dependencies = build_stage[: build_stage.index("pip wheel")]
    copied = [line.split()[1:-1] for line in dependencies.splitlines() if line.startswith("COPY ")]
    assert copied == [["pyproject.toml"]], copied
    rest = build_stage[build_stage.index("pip wheel") :]
    assert re.search(r"^COPY README\.md ", rest, re.M), "the project's install needs the real README.md"
