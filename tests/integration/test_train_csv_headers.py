"""CSV channels whose header rows or line endings are not the plain case, through the real
`container/train` against ML roots laid out as SageMaker lays them out.  Each case once trained
a wrong model with exit 0 (a header read as a data row: a class 'deposit', numeric features
turned categorical) or crashed: the data is now read right, or refused naming file and line."""

from __future__ import annotations

import json
import re

import pytest

from support import (
    csv_bytes,
    make_ml_root,
    mixed_frame,
    model_dir_entries,
    pipe_feeders,
    read_failure,
    run_train,
)

FRAME = mixed_frame(60)
HEADER = csv_bytes(FRAME, target="deposit", header=True)  # deposit,age,balance,job,contact
HEADERLESS = csv_bytes(FRAME, target="deposit")
KINDS = ["numeric", "numeric", "categorical", "categorical"]


def trained_right(root, result, *, rows: int, names: list[str]) -> str:
    """Exit 0, and the model saw the data's two classes and feature kinds (no header as data)."""
    assert result.returncode == 0, (read_failure(root) or "") + result.stdout[-2000:]
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["classes"] == ["no", "yes"]
    assert [(f["name"], f["kind"]) for f in meta["features"]] == list(zip(names, KINDS, strict=True))
    assert f"channel train: {rows} rows x 5 columns" in result.stdout
    return result.stdout


def test_header_only_first_file_is_the_channels_header(tmp_path):
    only_header = HEADER.splitlines(keepends=True)[0]
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": only_header, "b.csv": HEADER}})
    trained_right(root, run_train(root), rows=60, names=["age", "balance", "job", "contact"])


def test_header_repeated_inside_a_file_is_dropped_and_logged(tmp_path):
    root = make_ml_root(tmp_path, channels={"train": {"all.csv": HEADER + HEADER}})  # cat a.csv b.csv
    log = trained_right(root, run_train(root), rows=120, names=["age", "balance", "job", "contact"])
    assert "train/all.csv: dropped 1 line(s) repeating the header row" in log


@pytest.mark.parametrize("header", [False, True], ids=["headerless", "header"])
def test_cr_only_line_endings_are_read(tmp_path, header):
    """Excel's 'CSV (Macintosh)' ends lines with CR alone; it was an internal error (exit 2)."""
    data = (HEADER if header else HEADERLESS).replace(b"\n", b"\r")
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": data}, "validation": {"v.csv": data}})
    names = ["age", "balance", "job", "contact"] if header else ["f0", "f1", "f2", "f3"]
    trained_right(root, run_train(root), rows=60, names=names)


@pytest.mark.parametrize(
    "hyperparameters", [{}, {"target": "deposit", "header": True}], ids=["detected", "forced"]
)
def test_pipe_mode_header_with_columns_in_another_order_is_refused(tmp_path, hyperparameters):
    """File mode refuses such files ('columns differ'); Pipe mode merged them by position."""
    reordered = FRAME[["deposit", "balance", "age", "job", "contact"]].to_csv(index=False).encode()
    root = make_ml_root(tmp_path, channels={"train": {}}, input_mode="Pipe", hyperparameters=hyperparameters)
    with pipe_feeders(root, {"train": {"a.csv": HEADER, "b.csv": reordered}}):
        result = run_train(root)
    first_line = (read_failure(root) or "").splitlines()[0]
    assert result.returncode == 1, first_line
    assert re.match(
        r"^\S+/train_0, line 62: columns differ from the header on line 1 \(orders them "
        r"\['deposit', 'balance', 'age', 'job', 'contact'\]\)",
        first_line,
    ), first_line
    assert model_dir_entries(root) == []
