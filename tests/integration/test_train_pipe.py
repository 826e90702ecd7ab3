"""Pipe mode without RecordIO: SageMaker streams a channel's S3 objects back to back into one
FIFO, and byoc must neither lose objects nor blame the data for the concatenation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from support import (
    csv_bytes,
    diabetes_frame,
    make_ml_root,
    mixed_frame,
    model_dir_entries,
    parquet_bytes,
    pipe_feeders,
    read_failure,
    run_train,
)

DIABETES = diabetes_frame()
MIXED = mixed_frame(240)


def _train_pipe(root: Path, channels: dict) -> tuple[object, dict | None]:
    with pipe_feeders(root, channels):
        result = run_train(root)
    meta_path = root / "model" / "model.json"
    return result, json.loads(meta_path.read_text()) if meta_path.exists() else None


@pytest.mark.parametrize(
    "cuts", [(221, 442), (100, 300)], ids=["halves-and-an-empty-object", "different-sizes"]
)
def test_parquet_objects_back_to_back_are_all_read(tmp_path, cuts):
    """Read as one file, the stream gave the last object's rows only (exit 0), or 'corrupt'."""
    a, b = cuts
    parts = [DIABETES.iloc[:a], DIABETES.iloc[a:b], DIABETES.iloc[b:]]
    channels = {"train": {f"part-{i:05d}.parquet": parquet_bytes(p) for i, p in enumerate(parts)}}
    root = make_ml_root(
        tmp_path,
        channels=channels,
        input_mode="Pipe",
        content_types={"train": "application/x-parquet"},
        hyperparameters={"target": "target", "algorithm": "decision_tree"},
    )
    result, meta = _train_pipe(root, channels)
    assert result.returncode == 0, read_failure(root)
    assert meta is not None
    train = meta["training"]["channels"]["train"]
    assert train["rows"] == len(DIABETES)
    fifo = root / "input/data/train_0"
    sizes = [len(channels["train"][name]) for name in sorted(channels["train"])]
    starts = [0, sizes[0], sizes[0] + sizes[1]]
    assert train["files"] == [
        f"{fifo} (Parquet object {n}, bytes {s}-{s + size})"
        for n, (s, size) in enumerate(zip(starts, sizes, strict=True), start=1)
    ]


def test_parquet_stream_with_a_non_parquet_object_names_its_offset_and_pipe_mode(tmp_path):
    first = parquet_bytes(DIABETES)
    channels = {"train": {"a.parquet": first, "notes.txt": b"not parquet\n"}}
    root = make_ml_root(
        tmp_path,
        channels=channels,
        input_mode="Pipe",
        content_types={"train": "application/x-parquet"},
        hyperparameters={"target": "target"},
    )
    result, _ = _train_pipe(root, channels)
    assert result.returncode == 1 and model_dir_entries(root) == []
    failure = read_failure(root)
    assert failure is not None
    assert failure.startswith(
        f"{root}/input/data/train_0, byte {len(first)}: not a whole Parquet file, after 1 that are; "
        "channel 'train' is in Pipe mode"
    )


def _libsvm(rows: int, seed: int) -> str:
    rnd = np.random.default_rng(seed)
    return "\n".join(
        f"{i % 2} " + " ".join(f"{j}:{rnd.random():.3f}" for j in (1, 2, 3)) for i in range(rows)
    )


def test_text_objects_without_a_final_newline_are_named_as_the_likely_cause(tmp_path):
    """a's last line and b's first become one line whose indices restart: the parse error blamed
    the data ('does not increase: not valid libsvm') and said nothing of the Pipe stream."""
    channels = {"train": {"a.svm": _libsvm(40, 1), "b.svm": _libsvm(40, 2)}}
    root = make_ml_root(
        tmp_path, channels=channels, input_mode="Pipe", content_types={"train": "text/libsvm"}
    )
    result, _ = _train_pipe(root, channels)
    assert result.returncode == 1 and model_dir_entries(root) == []
    failure = read_failure(root)
    assert failure is not None
    first = failure.splitlines()[0]
    assert first.startswith(f"{root}/input/data/train_0, line 40: feature index 1 does not increase")
    assert first.endswith(
        "channel 'train' is in Pipe mode, where SageMaker streams the S3 objects back to back, so an "
        "object that does not end with a newline has its last line joined to the next object's first "
        "line (a likely cause here): end every object with a newline, or set the channel's "
        "RecordWrapperType to RecordIO (TrainingInput(record_wrapping='RecordIO')), or use File mode"
    )
    assert f"{root}/input/data/train_0 does not end with a newline" in result.stdout + result.stderr


def test_csv_objects_without_a_final_newline_name_pipe_mode(tmp_path):
    text = csv_bytes(MIXED, target="deposit").decode()
    channels = {
        "train": {"a.csv": text[: text.index("\n", 2000)], "b.csv": text[text.index("\n", 2000) + 1 :]}
    }
    root = make_ml_root(tmp_path, channels=channels, input_mode="Pipe")
    result, _ = _train_pipe(root, channels)
    assert result.returncode == 1 and model_dir_entries(root) == []
    failure = read_failure(root)
    assert failure is not None
    assert "fields where" in failure.splitlines()[0]
    assert "channel 'train' is in Pipe mode, where SageMaker streams the S3 objects back to back" in failure


def test_csv_object_with_a_header_after_one_without_is_refused_naming_the_line(tmp_path):
    """The header row of the second object was trained as a data row: 'deposit' became a class and
    every numeric column categorical, exit 0."""
    lines = csv_bytes(MIXED, target="deposit").decode().splitlines(keepends=True)
    header = csv_bytes(MIXED, target="deposit", header=True).decode().splitlines(keepends=True)[0]
    channels = {"train": {"a.csv": "".join(lines[:120]), "b.csv": header + "".join(lines[120:])}}
    root = make_ml_root(tmp_path, channels=channels, input_mode="Pipe")
    result, meta = _train_pipe(root, channels)
    assert result.returncode == 1 and meta is None and model_dir_entries(root) == []
    failure = read_failure(root)
    assert failure is not None
    assert failure.startswith(
        f"{root}/input/data/train_0, line 121: {header.strip()!r} is a header row (columns 1, 2 hold "
        "numbers below but 'age', 'balance' here), but line 1 is data"
    )
