"""README's generated tables must match the code (hyperparameters, metrics, content types)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_generated_sections_are_current():
    proc = subprocess.run(
        [sys.executable, "-m", "byoc.docs", str(REPO / "README.md"), "--check"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, f"README is stale; run `make docs`:\n{proc.stdout}{proc.stderr}"


def test_readme_opens_with_the_two_setup_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    setup = text.index("make demo")
    assert setup < text.index("## Docker") < text.index("## Use it from the SageMaker Python SDK")
    assert text.index("make test") < text.index("## Docker")
