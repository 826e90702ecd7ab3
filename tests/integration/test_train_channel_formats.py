"""Channel files the real ``container/train`` must read, not refuse: files holding only line
breaks (skipped as 0-byte files are, whether or not the channel has a header), and an
evaluation channel without ContentType next to a train channel that has one (read as train's)."""

from __future__ import annotations

import json
import re

import pytest

from support import csv_bytes, jsonlines_bytes, make_ml_root, mixed_frame, read_failure, run_train

FRAME = mixed_frame(60)


def _trained(root):
    result = run_train(root)
    assert result.returncode == 0, read_failure(root) or result.stderr
    return json.loads((root / "model" / "model.json").read_text()), result.stdout + result.stderr


@pytest.mark.parametrize("header", [True, False])
# "\ufeff\n": an empty frame saved with encoding="utf-8-sig" (for Excel): a byte order mark, then the line break
@pytest.mark.parametrize("blank", ["\n", "\r\n", " \n\n", "\ufeff\n"])
def test_a_file_of_line_breaks_is_skipped_like_an_empty_file(tmp_path, header, blank):
    """pandas writes an empty frame as one line break; it failed the job ('the file is empty')
    when the channel had a header row, or as the first file ('holds no CSV rows')."""
    good = csv_bytes(FRAME, target="deposit", header=header)
    root = make_ml_root(
        tmp_path,
        channels={"train": {"a.csv": blank, "b.csv": good, "c.csv": blank, "d.csv": b""}},
        hyperparameters={"target": "deposit"} if header else {},
    )
    meta, output = _trained(root)
    assert meta["training"]["channels"]["train"]["rows"] == len(FRAME)
    assert "train/a.csv holds only line breaks or spaces: skipped" in output


def test_validation_without_content_type_is_read_like_train(tmp_path):
    """The SDK's TrainingInput leaves ContentType out unless given: set on train alone, the
    validation channel was read as CSV ("channel 'validation' has no column 'deposit'")."""
    root = make_ml_root(
        tmp_path,
        channels={
            "train": {"a.jsonl": jsonlines_bytes(FRAME)},
            "validation": {"v.jsonl": jsonlines_bytes(mixed_frame(20, seed=5))},
        },
        content_types={"train": "application/jsonlines"},
        hyperparameters={"target": "deposit"},
    )
    meta, output = _trained(root)
    assert meta["training"]["channels"]["validation"]["rows"] == 20
    assert (
        "channel validation has no ContentType: read as application/jsonlines, like channel train" in output
    )


def test_a_named_validation_channel_of_a_headerless_train_channel_is_read_by_name(tmp_path):
    """Trained on headerless CSV, the model's features are f0, f1, ...; a JSON Lines validation
    channel whose records name them so, in another order (the label first, f1 before f0), was
    read by position: the validation metrics scored swapped features, exit 0.  They must be the
    metrics of the same rows as headerless CSV."""
    validation = mixed_frame(80, seed=5)
    features = [c for c in validation.columns if c != "deposit"]
    named = validation.rename(columns={c: f"f{i}" for i, c in enumerate(features)})
    swapped = named[["deposit", "f1", "f0", *[f"f{i}" for i in range(2, len(features))]]]
    metrics = []
    for name, files, content_type in (
        ("csv", {"v.csv": csv_bytes(validation, target="deposit")}, "text/csv"),
        ("jsonl", {"v.jsonl": jsonlines_bytes(swapped)}, "application/jsonlines"),
    ):
        root = make_ml_root(
            tmp_path / name,
            channels={"train": {"a.csv": csv_bytes(FRAME, target="deposit")}, "validation": files},
            content_types={"train": "text/csv", "validation": content_type},
            hyperparameters={"algorithm": "decision_tree", "random_state": 0},
        )
        _, output = _trained(root)
        metrics.append(sorted(re.findall(r"validation:(\w+=\S+)", output)))
    assert metrics[0] and metrics[0] == metrics[1]
