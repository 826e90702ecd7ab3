"""Memory running out during training: the real ``train`` under an address-space limit.

The limit is set in the train process just before the fit, at what the process already uses
plus 64 MiB (a fixed limit from a ``preexec_fn`` would also have to cover the imports, whose
size differs from one machine to the next), so the forest's trees, not the imports, meet it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from support import make_ml_root, model_dir_entries, read_failure, run_train_patched

LIMIT_BEFORE_FIT = """
import resource
from byoc import fit
unlimited = fit._fit
def limited(*args):
    with open("/proc/self/statm") as fh:
        used = int(fh.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + (64 << 20), resource.RLIM_INFINITY))
    return unlimited(*args)
fit._fit = limited
"""


def test_memory_error_in_the_fit_is_a_user_error_naming_phase_memory_and_fixes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = 20000  # random labels: unlimited, 100 fully grown trees need far more than 64 MiB
    lines = [f"{rng.integers(2)},{rng.random():.6f},{rng.random():.6f}" for _ in range(rows)]
    root = make_ml_root(
        tmp_path,
        channels={"train": {"train.csv": "\n".join(lines) + "\n"}},
        hyperparameters={"algorithm": "random_forest", "n_jobs": 1},
    )

    result = run_train_patched(root, LIMIT_BEFORE_FIT)

    assert result.returncode == 1, result.stdout + result.stderr
    failure = read_failure(root)
    assert failure is not None
    first = failure.splitlines()[0]
    assert first.startswith(f"Out of memory while fitting random_forest on {rows} rows x 2 feature columns")
    assert "of memory (" in first and "address-space limit (ulimit -v) of" in first
    assert "instance type with more memory" in first
    assert "n_estimators=100 (fewer trees)" in first and "max_depth=None" in first
    assert "error code: out_of_memory" in failure
    assert "Internal error" not in failure and "Traceback" not in failure
    assert model_dir_entries(root) == []
