"""Hive-partitioned channels (Spark's ``df.write.partitionBy(...)``): the partition column's
values live only in the ``key=value`` directory names, and must come back as a column."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from support import (
    csv_bytes,
    jsonlines_bytes,
    make_ml_root,
    mixed_frame,
    model_dir_entries,
    parquet_bytes,
    read_failure,
    run_train,
)

MIXED = mixed_frame(240)
TARGET = "deposit"


def _partitioned(frame: pd.DataFrame, key: str, write, suffix: str) -> dict[str, bytes | str]:
    """Spark's layout: one directory per value, the column left out of the files, a _SUCCESS."""
    files: dict[str, bytes | str] = {"_SUCCESS": ""}
    for value, group in frame.groupby(key, dropna=False):
        value = "__HIVE_DEFAULT_PARTITION__" if pd.isna(value) else value  # as Spark writes null
        files[f"{key}={value}/part-00000-c000{suffix}"] = write(group.drop(columns=key))
    return files


def _features(root: Path) -> dict[str, dict]:
    meta = json.loads((root / "model" / "model.json").read_text())
    return {f["name"]: f for f in meta["features"]}


def _trained_parquet(tmp_path: Path, files: dict[str, bytes | str]) -> Path:
    root = make_ml_root(
        tmp_path,
        channels={"train": files},
        content_types={"train": "application/x-parquet"},
        hyperparameters={"target": TARGET, "algorithm": "decision_tree"},
    )
    result = run_train(root)
    assert result.returncode == 0, read_failure(root)
    assert "restored from the partition directories" in result.stdout
    return root


def _categorical_key() -> str:
    return "contact"


def test_parquet_partition_column_is_a_feature(tmp_path):
    key = "job"  # has missing values: Spark's __HIVE_DEFAULT_PARTITION__ directory
    assert MIXED[key].isna().any()
    frame = MIXED.assign(year=[2020 + i % 3 for i in range(len(MIXED))])
    frame[key] = frame[key].fillna("__HIVE_DEFAULT_PARTITION__")
    files: dict[str, bytes | str] = {"_SUCCESS": ""}
    for (value, year), group in frame.groupby([key, "year"]):
        files[f"{key}={value}/year={year}/part-00000.snappy.parquet"] = parquet_bytes(
            group.drop(columns=[key, "year"])
        )
    root = _trained_parquet(tmp_path, files)
    features = _features(root)
    assert features[key]["kind"] == "categorical"
    assert sorted(features[key]["categories"]) == sorted(MIXED[key].dropna().unique())
    assert features["year"]["kind"] == "numeric"  # typed as its values are, like any column


def test_partition_column_can_be_the_target(tmp_path):
    files = _partitioned(MIXED, TARGET, parquet_bytes, ".parquet")
    root = _trained_parquet(tmp_path, files)
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["training"]["channels"]["train"]["rows"] == len(MIXED)


def test_csv_and_jsonlines_partitions_are_columns(tmp_path):
    key = _categorical_key()
    for name, write, suffix, content_type in (
        ("csv", lambda f: csv_bytes(f, target=TARGET, header=True), ".csv", "text/csv"),
        ("jsonl", jsonlines_bytes, ".json", "application/jsonlines"),
    ):
        root = make_ml_root(
            tmp_path / name,
            channels={"train": _partitioned(MIXED, key, write, suffix)},
            content_types={"train": content_type},
            hyperparameters={"target": TARGET, "algorithm": "decision_tree"},
        )
        result = run_train(root)
        assert result.returncode == 0, (name, read_failure(root))
        assert _features(root)[key]["kind"] == "categorical", name


def test_headerless_csv_partition_is_the_last_column(tmp_path):
    key = _categorical_key()
    files = _partitioned(MIXED, key, lambda f: csv_bytes(f, target=TARGET), ".csv")
    root = make_ml_root(
        tmp_path, channels={"train": files}, hyperparameters={"algorithm": "decision_tree", "header": False}
    )
    result = run_train(root)
    assert result.returncode == 0, read_failure(root)
    last = f"f{len(MIXED.columns) - 2}"  # the target first, the other features, then the partition
    assert _features(root)[last]["categories"] == sorted(MIXED[key].unique())


def test_files_outside_the_partitions_are_refused_naming_both(tmp_path):
    key = _categorical_key()
    files = _partitioned(MIXED.iloc[:200], key, parquet_bytes, ".parquet")
    files["extra.parquet"] = parquet_bytes(MIXED.iloc[200:].drop(columns=key))
    root = make_ml_root(
        tmp_path,
        channels={"train": files},
        content_types={"train": "application/x-parquet"},
        hyperparameters={"target": TARGET},
    )
    result = run_train(root)
    assert result.returncode == 1 and model_dir_entries(root) == []
    first = sorted(name for name in files if "=" in name)[0]
    assert read_failure(root).startswith(
        f"train/extra.parquet: its partition directories (none) differ from train/{first}'s "
        f"({key}=...); every file of channel 'train' must sit under the same key=value directories"
    )


def test_libsvm_under_a_partition_directory_is_refused(tmp_path):
    root = make_ml_root(
        tmp_path,
        channels={"train": {"fold=1/a.svm": "1 1:0.5 2:1\n0 1:0.1 2:3\n"}},
        content_types={"train": "text/libsvm"},
    )
    result = run_train(root)
    assert result.returncode == 1 and model_dir_entries(root) == []
    assert read_failure(root).startswith(
        "train/fold=1/a.svm: its directory 'fold=1' holds the value of a column 'fold' (Hive "
        "partitioning, as Spark's partitionBy writes), but libsvm has numbered features only"
    )


def test_partition_keys_in_another_order_are_refused_naming_both(tmp_path):
    """Headerless CSV takes partition columns by position: a file under job=.../contact=... beside
    files under contact=.../job=... would put each value in the other's column, unannounced."""
    rows = MIXED.drop(columns=["contact", "job"])
    files = {
        "contact=cellular/job=admin/a.csv": csv_bytes(rows.iloc[:120], target=TARGET),
        "job=services/contact=telephone/b.csv": csv_bytes(rows.iloc[120:], target=TARGET),
    }
    root = make_ml_root(tmp_path, channels={"train": files}, hyperparameters={"header": False})
    result = run_train(root)
    assert result.returncode == 1 and model_dir_entries(root) == []
    assert read_failure(root).startswith(
        "train/job=services/contact=telephone/b.csv: its partition directories (job=..., contact=...) "
        "differ from train/contact=cellular/job=admin/a.csv's (contact=..., job=...)"
    )


def test_a_file_holding_the_partition_column_keeps_its_own_values(tmp_path):
    key = _categorical_key()
    files = {
        f"{key}=ignored/part-0.parquet": parquet_bytes(MIXED.iloc[:120]),
        f"{key}=ignored/part-1.parquet": parquet_bytes(MIXED.iloc[120:]),
    }
    root = make_ml_root(
        tmp_path,
        channels={"train": files},
        content_types={"train": "application/x-parquet"},
        hyperparameters={"target": TARGET, "algorithm": "decision_tree"},
    )
    result = run_train(root)
    assert result.returncode == 0, read_failure(root)
    assert (
        f"train/{key}=ignored/part-0.parquet holds column '{key}' and sits under the directory "
        f"'{key}=ignored': the file's values are kept" in result.stdout
    )
    assert _features(root)[key]["categories"] == sorted(MIXED[key].dropna().unique())
