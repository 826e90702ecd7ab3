"""Pipe mode without RecordIO: SageMaker streams a channel's S3 objects back to back into one
FIFO, and byoc must neither lose objects nor blame the data for the concatenation."""

from __future__ import annotations

import json
from pathlib import Path

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


@pytest.mark.parametrize("cuts", [(221, 442), (100, 300)], ids=["halves-and-an-empty-object", "different-sizes"])
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
