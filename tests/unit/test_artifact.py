"""byoc.artifact.load: what a model directory must hold, and every refusal naming the file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from byoc import artifact


def _classifier_dir(tmp_path: Path) -> Path:
    X = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0]})
    pipeline = Pipeline([("model", DecisionTreeClassifier().fit(X, [0, 0, 1, 1]))])
    artifact.save(
        tmp_path / "model",
        pipeline,
        {
            "problem_type": artifact.BINARY,
            "algorithm": "decision_tree",
            "classes": ["no", "yes"],
            "features": [artifact.Feature("x", "numeric", "float64").to_dict()],
        },
    )
    return tmp_path / "model"


def test_a_model_json_an_editor_saved_with_a_byte_order_mark_loads(tmp_path):
    model_dir = _classifier_dir(tmp_path)
    path = model_dir / artifact.METADATA_FILE
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert artifact.load(model_dir).classes == ["no", "yes"]
