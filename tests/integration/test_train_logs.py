"""What a training job's log says about user text: SageMaker's metric definitions read metric data
points off every line of the job's stdout and stderr, so a column name, class label or hyperparameter
value must not be able to write a line of its own (a fake ``validation:accuracy=...``), and script
mode's command line must not show a secret hyperparameter's value."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from byoc import metrics
from support import make_ml_root, run_train, script_root

FORGED = "validation:accuracy=0.999"


def forged_points(log: str) -> list[tuple[str, str]]:
    """The lines other than byoc's own metric lines where a metric definition finds a data point:
    byoc's (unanchored: anywhere in a line) and the same anchored at the line's start."""
    points = []
    for definition in metrics.metric_definitions():
        for line in log.splitlines():
            found = re.search(definition["Regex"], line) or re.match(definition["Regex"], line)
            if found and line != f"{definition['Name']}={found.group(1)}":
                points.append((definition["Name"], line))
    return points


def test_a_column_name_or_class_label_holding_a_line_break_writes_no_metric_line(tmp_path):
    rng = np.random.default_rng(0)
    n = 120
    column = f"x\n{FORGED}\r\x1b[2K\u2028{FORGED}"
    frame = pd.DataFrame(
        {
            "y": rng.choice([f"a\n{FORGED}", "b\x0bvalidation:f1=0.999"], n),
            column: rng.normal(size=n),
            "c": rng.choice(["u", f"v\n{FORGED}"], n),
            "train:r2=1.0": rng.normal(size=n),  # no control character: the unanchored regex finds it
        }
    )
    text = frame.to_csv(index=False)
    root = make_ml_root(
        tmp_path,
        channels={"train": {"t.csv": text}, "validation": {"v.csv": text}},
        hyperparameters={"target": "y", "algorithm": "linear"},
    )
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    log = result.stdout + result.stderr
    assert forged_points(log) == []
    assert "x\\nvalidation:accuracy\\x3d0.999\\r\\x1b[2K\\u2028validation" in log  # escaped, still readable
    assert re.search(r"^validation:accuracy=0\.\d{6}$", log, re.M)  # the real line is still there


def test_script_mode_does_not_log_a_secret_hyperparameters_value(tmp_path):
    program = "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'm'), 'w').write('x')\n"
    root = script_root(
        tmp_path,
        "train.py",
        {"train.py": program},
        {"db_password": "pw-VALUE-1", "api_token": "tok-VALUE-2", "epochs": 3},
    )
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    log = result.stdout + result.stderr
    assert "VALUE" not in log
    assert "--db_password ***" in log and "--epochs 3" in log  # the command still says what ran
