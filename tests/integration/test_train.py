"""`container/train` as a real process against ML roots laid out the way SageMaker lays them out:
every algorithm, every format, every input mode, both hyperparameter encodings.

Each case checks the contract's outputs: exit 0, exactly model.joblib + model.json (no staging
left), a model that artifact.load verifies and that predicts the training rows well above
chance, metrics.json, and metric log lines that the published metric_definitions parse back to
the same values.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from byoc import artifact, metrics
from support import (
    CONTAINER,
    FAILING_OPEN_PATCH,
    REPO,
    clean_environ,
    csv_bytes,
    diabetes_frame,
    gzip_bytes,
    iris_frame,
    jsonlines_bytes,
    make_ml_root,
    mixed_frame,
    model_dir_entries,
    parquet_bytes,
    pipe_feeders,
    read_failure,
    read_metrics,
    recordio_record,
    run_train,
    run_train_patched,
)

MIXED = mixed_frame(240)
IRIS = iris_frame()
DIABETES = diabetes_frame()
FAST = {"n_estimators": 8, "max_iter": 15, "cv_folds": 2, "n_jobs": 1}


def trained_on_mixed(
    root: Path,
    result,
    algorithm: str,
    *,
    min_score: float = 0.8,
    channels: tuple[str, ...] = ("train", "validation"),
) -> dict[str, Any]:
    """:func:`trained` for the mixed bank-like frame (binary target ``deposit``)."""
    return trained(
        root,
        result,
        problem_type=artifact.BINARY,
        algorithm=algorithm,
        frame=MIXED,
        target="deposit",
        min_score=min_score,
        channels=channels,
    )


def trained(
    root: Path,
    result,
    *,
    problem_type: str,
    algorithm: str,
    frame: pd.DataFrame,
    target: str,
    min_score: float,
    channels: tuple[str, ...] = ("train",),
) -> dict[str, Any]:
    """Assert everything a successful job promises; return model.json."""
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert read_failure(root) is None
    model = artifact.load(root / "model")
    meta = model.metadata
    # model.json, model.joblib and whatever model.json lists (the compiled form); no staging left
    assert sorted(p.name for p in (root / "model").iterdir()) == sorted({"model.json", *meta["files"]})
    assert "model.joblib" in meta["files"]
    assert meta["problem_type"] == problem_type and meta["algorithm"] == algorithm
    assert f"problem type: {problem_type} (" in output

    X = frame.drop(columns=[target])
    X.columns = model.feature_names
    X = X.astype({f.name: float for f in model.features if f.kind == "numeric"})
    predicted = model.estimator.predict(X)
    assert len(predicted) == len(frame)
    if problem_type == artifact.REGRESSION:
        score = 1 - np.mean((predicted - frame[target]) ** 2) / np.var(frame[target])
    else:
        assert set(np.unique(predicted)) <= set(range(len(model.classes)))
        labels = np.asarray(model.classes, dtype=object)[predicted]
        score = np.mean([str(a) == str(b) for a, b in zip(labels, frame[target], strict=True)])
        assert model.estimator.predict_proba(X).shape == (len(frame), len(model.classes))
    assert score >= min_score, f"{algorithm} scores {score:.3f} on its own training rows"

    written = read_metrics(root)
    assert set(written) == set(channels)
    assert meta["metrics"] == written
    definitions = metrics.metric_definitions()
    for channel, values in written.items():
        assert set(values) <= set(metrics.names(problem_type)) and values
        for name, value in values.items():
            regex = next(d["Regex"] for d in definitions if d["Name"] == f"{channel}:{name}")
            found = re.findall(regex, output)
            assert found, f"no log line for {channel}:{name}"
            assert float(found[-1]) == pytest.approx(value, abs=1e-6)
    return meta


def csv_channels(
    frame: pd.DataFrame, target: str, *, header: bool = False, split: int = 200, test: bool = False
) -> dict[str, dict[str, bytes]]:
    channels = {
        "train": {"train.csv": csv_bytes(frame.iloc[:split], target=target, header=header)},
        "validation": {"validation.csv": csv_bytes(frame.iloc[split:], target=target, header=header)},
    }
    if test:
        channels["test"] = {"test.csv": csv_bytes(frame.iloc[split:], target=target, header=header)}
    return channels


# -- every algorithm -------------------------------------------------------------------------------


ALGORITHMS = {
    "decision_tree": ({"max_leaf_nodes": 20}, 0.8),
    "random_forest": ({"n_estimators": 10, "n_jobs": 1}, 0.8),
    "extra_trees": ({"n_estimators": 10, "n_jobs": 1}, 0.8),
    "gradient_boosting": ({"max_iter": 20}, 0.8),
    "linear": ({"C": 1.0}, 0.7),
    "knn": ({"n_neighbors": 5}, 0.7),
    "svm": ({"C": 1.0}, 0.7),
    "ensemble": ({"ensemble_members": "random_forest,gradient_boosting,linear", **FAST}, 0.8),
}


@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_every_algorithm_trains_from_headerless_csv(tmp_path, algorithm):
    params, min_score = ALGORITHMS[algorithm]
    root = make_ml_root(
        tmp_path,
        channels=csv_channels(MIXED, "deposit", test=True),
        hyperparameters={"algorithm": algorithm, **params},
        content_types={"train": "text/csv", "validation": "text/csv"},
    )
    result = run_train(root)
    meta = trained_on_mixed(
        root, result, algorithm, min_score=min_score, channels=("train", "validation", "test")
    )
    assert meta["classes"] == ["no", "yes"]
    assert [f["name"] for f in meta["features"]] == ["f0", "f1", "f2", "f3"]
    assert [f["kind"] for f in meta["features"]] == ["numeric", "numeric", "categorical", "categorical"]
    assert meta["target"] == {"name": None, "index": 0}
    for key, value in params.items():
        expected = tuple(value.split(",")) if key == "ensemble_members" else value
        got = meta["hyperparameters"][key]
        assert (tuple(got) if isinstance(got, list) else got) == expected
    assert "feature_importances" in meta["details"]
    assert "feature importances (" in result.stdout
    if algorithm == "ensemble":
        assert "ensemble" in meta["details"]
        assert re.search(r"ensemble member random_forest: weight=0\.\d+ cv_score=", result.stdout)


# -- every format ----------------------------------------------------------------------------------


def _libsvm(frame: pd.DataFrame, target: str) -> bytes:
    import io

    from sklearn.datasets import dump_svmlight_file

    codes = pd.Categorical(frame[target]).codes
    buf = io.BytesIO()
    dump_svmlight_file(frame.drop(columns=[target]).to_numpy(), codes, buf, zero_based=False)
    return buf.getvalue()


FORMATS = {
    # name: (frame, target, files for train, content type, hyperparameters, problem type)
    "csv_header": (
        MIXED,
        "deposit",
        {
            "part-0.csv": csv_bytes(MIXED.iloc[:120], target="deposit", header=True),
            "part-1.csv": csv_bytes(MIXED.iloc[120:], target="deposit", header=True),
        },
        "text/csv",
        {"target": "deposit"},
        artifact.BINARY,
    ),
    "csv_gzip": (
        IRIS,
        "target",
        {"iris.csv.gz": gzip_bytes(csv_bytes(IRIS, target="target"))},
        None,
        {},
        artifact.MULTICLASS,
    ),
    "parquet": (
        DIABETES,
        "target",
        {"d.parquet": parquet_bytes(DIABETES)},
        "application/x-parquet",
        {"target": "target", "max_depth": 6},
        artifact.REGRESSION,
    ),
    "jsonlines": (
        MIXED,
        "deposit",
        {"m.jsonl": jsonlines_bytes(MIXED)},
        "application/jsonlines",
        {"target": "deposit"},
        artifact.BINARY,
    ),
    "libsvm": (
        IRIS,
        "target",
        {"iris.libsvm": _libsvm(IRIS, "target")},
        "text/libsvm",
        {},
        artifact.MULTICLASS,
    ),
    "content_type_hyperparameter": (
        DIABETES,
        "target",
        {"d.parquet": parquet_bytes(DIABETES)},
        "text/csv",
        {"target": "target", "content_type": "application/parquet", "max_depth": 6},
        artifact.REGRESSION,
    ),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_every_format(tmp_path, fmt):
    frame, target, files, content_type, params, problem_type = FORMATS[fmt]
    root = make_ml_root(
        tmp_path,
        channels={"train": files},
        hyperparameters=params,
        content_types={"train": content_type} if content_type else None,
    )
    result = run_train(root)
    if fmt == "libsvm":  # labels come back as the numeric codes libsvm stores
        frame = frame.assign(target=pd.Categorical(frame[target]).codes)
    meta = trained(
        root,
        result,
        problem_type=problem_type,
        algorithm="decision_tree",
        frame=frame,
        target=target,
        min_score=0.6,
    )
    assert meta["training"]["channels"]["train"]["files"] == [f"train/{n}" for n in sorted(files)]
    if "target" in params:
        assert meta["target"]["name"] == target


def test_libsvm_validation_without_the_highest_feature_is_read_at_the_train_width(tmp_path):
    """libsvm omits zeros: validation rows that never reach train's highest index are valid (the
    channel was refused as lacking a column); the test channel's index beyond it is refused."""
    train = _libsvm(IRIS.iloc[::2], "target")
    narrow = IRIS.iloc[1::2].assign(**{"petal width (cm)": 0.0})  # feature 4 left out of every line
    root = make_ml_root(
        tmp_path / "ok",
        channels={"train": {"t.libsvm": train}, "validation": {"v.libsvm": _libsvm(narrow, "target")}},
        content_types={"train": "text/libsvm", "validation": "text/libsvm"},
    )
    result = run_train(root)
    assert result.returncode == 0, read_failure(root)
    assert "channel validation: 75 rows x 5 columns" in result.stdout
    assert "validation:accuracy=" in result.stdout
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["training"]["channels"]["train"]["layout"] == {"first_index": 1, "features": 4}

    root = make_ml_root(
        tmp_path / "wide",
        channels={"train": {"t.libsvm": train}, "test": {"t.libsvm": b"0 1:5.1 5:1\n"}},
        content_types={"train": "text/libsvm", "test": "text/libsvm"},
    )
    result = run_train(root)
    assert result.returncode == 1 and model_dir_entries(root) == []
    assert read_failure(root).startswith(
        "test/t.libsvm, row 1: feature index 5 of channel 'test' is beyond the train channel's "
        "highest feature index, 4"
    )


@pytest.mark.parametrize("fmt", ["csv", "jsonlines", "parquet"])
def test_a_gzip_file_with_zero_padding_trains_as_pythons_gzip_reads_it(tmp_path, fmt):
    """Zero bytes after the last gzip member (block-padding writers leave them; Python's gzip reads
    past them): the CSV and JSON Lines readers, whose bytes pyarrow decompressed, called such a
    file corrupt while the Parquet reader and the server read it."""
    body = {
        "csv": lambda: csv_bytes(MIXED, target="deposit", header=True),
        "jsonlines": lambda: jsonlines_bytes(MIXED),
        "parquet": lambda: parquet_bytes(MIXED),
    }[fmt]()
    root = make_ml_root(
        tmp_path,
        channels={"train": {f"part-0.{fmt}.gz": gzip_bytes(body) + b"\0" * 512}},
        content_types={
            "train": {
                "csv": "text/csv",
                "jsonlines": "application/jsonlines",
                "parquet": "application/x-parquet",
            }[fmt]
        },
        hyperparameters={"target": "deposit", "algorithm": "decision_tree"},
    )
    meta = trained_on_mixed(root, run_train(root), "decision_tree", channels=("train",))
    assert meta["training"]["channels"]["train"]["rows"] == len(MIXED)


# -- input modes -----------------------------------------------------------------------------------


def test_fastfile_mode_reads_the_directory(tmp_path):
    root = make_ml_root(tmp_path, channels=csv_channels(MIXED, "deposit"), input_mode="FastFile")
    trained_on_mixed(root, run_train(root), "decision_tree")


def test_fastfile_file_the_mount_fails_to_deliver_is_named_exit_1(tmp_path):
    """FastFile mode reads S3 as the job reads: a read after the first failing with EIO was
    'Internal error ... This is a bug in byoc', exit 2."""
    channels = {
        "train": {
            "a.csv": csv_bytes(MIXED.iloc[:120], target="deposit"),
            "b.csv": csv_bytes(MIXED.iloc[120:], target="deposit"),
        }
    }
    root = make_ml_root(tmp_path, channels=channels, input_mode="FastFile")
    result = run_train_patched(root, FAILING_OPEN_PATCH)
    assert result.returncode == 1 and model_dir_entries(root) == []
    assert read_failure(root).startswith(
        "train/b.csv: reading it failed (Input/output error): the file system under the channel did not "
        "deliver it (in FastFile mode SageMaker reads each file from S3 as the job reads it"
    )


def test_pipe_mode_streams_fifos_fed_by_another_thread(tmp_path):
    channels = {
        "train": {"a.csv.gz": gzip_bytes(csv_bytes(MIXED.iloc[:200], target="deposit"))},
        "validation": {"b.csv": csv_bytes(MIXED.iloc[200:], target="deposit")},
    }
    root = make_ml_root(
        tmp_path,
        channels=channels,
        input_mode="Pipe",
        hyperparameters={"algorithm": "random_forest", "n_estimators": 10},
    )
    with pipe_feeders(root, channels):
        result = run_train(root)
    meta = trained_on_mixed(root, result, "random_forest")
    assert meta["training"]["channels"]["train"]["files"] == [str(root / "input/data/train_0")]


@pytest.mark.parametrize("wrapper", ["None", "RecordIO"])
def test_pipe_mode_parquet(tmp_path, wrapper):
    """RecordWrapperType RecordIO (TrainingInput(record_wrapping="RecordIO")): each object is one
    record, read as a file of its own, so two Parquet objects train together; the framing was
    blamed on the data ("not a Parquet file", "binary content where text/csv was expected")."""
    if wrapper == "RecordIO":
        parts = (DIABETES.iloc[:200], DIABETES.iloc[200:])
        files = {f"d{i}.parquet": recordio_record(parquet_bytes(part)) for i, part in enumerate(parts)}
    else:
        files = {"d.parquet": parquet_bytes(DIABETES)}
    channels = {"train": files}
    root = make_ml_root(
        tmp_path,
        channels=channels,
        input_mode="Pipe",
        content_types={"train": "application/x-parquet"},
        record_wrappers={"train": wrapper},
        hyperparameters={"target": "target"},
    )
    with pipe_feeders(root, channels):
        result = run_train(root)
    meta = trained(
        root,
        result,
        problem_type=artifact.REGRESSION,
        algorithm="decision_tree",
        frame=DIABETES,
        target="target",
        min_score=0.6,
    )
    fifo = root / "input/data/train_0"
    names = [f"{fifo} (RecordIO record {n})" for n in (1, 2)] if wrapper == "RecordIO" else [str(fifo)]
    assert meta["training"]["channels"]["train"]["files"] == names


def test_pipe_mode_stream_declared_recordio_but_not_wrapped_names_the_setting(tmp_path):
    channels = {"train": {"a.csv": csv_bytes(MIXED, target="deposit")}}
    root = make_ml_root(tmp_path, channels=channels, input_mode="Pipe", record_wrappers={"train": "RecordIO"})
    with pipe_feeders(root, channels):
        result = run_train(root)
    assert result.returncode == 1 and model_dir_entries(root) == []
    assert read_failure(root).startswith(
        f"channel 'train' has RecordWrapperType RecordIO, but {root}/input/data/train_0, byte 0 "
        "(RecordIO record 1) does not start with a RecordIO record header"
    )


_HALVES = [
    "".join(half)
    for half in np.array_split(csv_bytes(MIXED, target="deposit").decode().splitlines(keepends=True), 2)
]


@pytest.mark.parametrize(
    "flags, problem",
    [
        ((0, 3), "a last part (flag 3) with no first part before it (flag sequence 3 (last part))"),
        ((0, 2), "a middle part (flag 2) with no first part before it (flag sequence 2 (middle part))"),
        (
            (1, 0),
            "a whole record (flag 0) after the first part at byte 0, which no last part ended "
            "(flag sequence 1 (first part), 0 (whole record))",
        ),
        (
            (1, 1),
            "a first part (flag 1) after the first part at byte 0, which no last part ended "
            "(flag sequence 1 (first part), 1 (first part))",
        ),
        (
            (0, 5),
            "a record header with the unknown flag 5 (RecordIO's are 0 to 3) (flag sequence 5 (unknown))",
        ),
    ],
    ids=["last-without-first", "middle-without-first", "first-then-whole", "first-then-first", "unknown"],
)
def test_pipe_mode_recordio_parts_out_of_order_are_refused_naming_the_byte_and_flags(
    tmp_path, flags, problem
):
    """A last part with no first part trained the two objects as two files (exit 0); a first part
    followed by a whole record was joined to it, the magic between them, and blamed as not UTF-8."""
    records = [recordio_record(half, flag) for half, flag in zip(_HALVES, flags, strict=True)]
    channels = {"train": {"a.csv": records[0], "b.csv": records[1]}}
    root = make_ml_root(tmp_path, channels=channels, input_mode="Pipe", record_wrappers={"train": "RecordIO"})
    with pipe_feeders(root, channels):
        result = run_train(root)
    assert result.returncode == 1 and model_dir_entries(root) == []
    assert read_failure(root).startswith(
        f"channel 'train': {root}/input/data/train_0, byte {len(records[0])}: {problem}; the stream is cut "
        "or corrupt: run the job again"
    )


# -- how clients spell hyperparameters --------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["sdk-json", "str"])
def test_sdk_hyperparameter_encodings(tmp_path, encoding):
    params = {
        "algorithm": "random_forest",
        "n_estimators": 6,
        "bootstrap": True,
        "max_depth": None,
        "criterion": "entropy",
        "sagemaker_region": "us-east-1",  # sagemaker_program would select script mode
        "sagemaker_container_log_level": 20,
        "_tuning_objective_metric": "validation:auc",
    }
    root = make_ml_root(
        tmp_path, channels=csv_channels(MIXED, "deposit"), hyperparameters=params, encoding=encoding
    )
    result = run_train(root)
    meta = trained_on_mixed(root, result, "random_forest")
    hp = meta["hyperparameters"]
    assert (hp["n_estimators"], hp["bootstrap"], hp["max_depth"], hp["criterion"]) == (
        6,
        True,
        None,
        "entropy",
    )
    assert not any(k.startswith("sagemaker_") or k.startswith("_") for k in hp)
    assert "tuning objective metric: validation:auc" in result.stdout
    assert re.search(r"^validation:auc=[0-9.]+$", result.stdout, re.M)


@pytest.mark.parametrize(
    ("hyperparameters", "env"),
    [({"sagemaker_container_log_level": "WARNING"}, {}), ({}, {"SAGEMAKER_CONTAINER_LOG_LEVEL": "30"})],
    ids=["hyperparameter", "variable"],
)
def test_a_warning_log_level_writes_no_info_line(tmp_path, hyperparameters, env):
    """The level the job asks for holds from the first line: with the hyperparameter (the SDK's
    container_log_level), "ML root: ..." was written at INFO before hyperparameters.json was read."""
    params = {"algorithm": "decision_tree", **hyperparameters}
    root = make_ml_root(tmp_path, channels=csv_channels(MIXED, "deposit"), hyperparameters=params)
    result = run_train(root, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "model" / "model.json").is_file()
    assert " INFO " not in result.stdout + result.stderr, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("objective", "channels", "frame", "target", "says"),
    [
        (
            "validation:auc",
            ("train",),
            MIXED,
            "deposit",
            "needs a 'validation' channel, and this job has only train",
        ),
        (
            "validation:f1",
            ("train", "validation"),
            IRIS,
            "target",
            "never logged for a multiclass_classification",
        ),
        ("validation:accuracy", ("train", "validation"), DIABETES, "target", "use one of validation:mse"),
    ],
)
def test_a_tuning_objective_the_job_cannot_log_fails_before_fitting(
    tmp_path, objective, channels, frame, target, says
):
    """AMT would otherwise run every training job to the end and find no objective value in any."""
    both = csv_channels(frame, target, header=True, split=int(len(frame) * 0.8))
    params = {"algorithm": "decision_tree", "target": target, "_tuning_objective_metric": objective}
    root = make_ml_root(
        tmp_path, channels={c: both[c] for c in channels}, hyperparameters=params, encoding="str"
    )
    result = run_train(root)
    assert result.returncode == 1, result.stdout + result.stderr
    failure = read_failure(root)
    assert failure is not None and failure.startswith(f"the tuning objective {objective} ")
    assert says in failure.splitlines()[0]
    assert "fitting started" not in result.stdout + result.stderr
    assert model_dir_entries(root) == []


def test_a_tuning_job_tuning_the_algorithm_trains_each_with_its_own_hyperparameters(tmp_path):
    """AMT sends every range to every job: a gradient_boosting job of a tuning job over
    algorithm and n_estimators gets n_estimators too, and must train (it used to fail)."""
    params = {
        "algorithm": "gradient_boosting",
        "n_estimators": "57",
        "max_iter": "20",
        "target": "deposit",
        "_tuning_objective_metric": "validation:accuracy",
    }
    root = make_ml_root(
        tmp_path, channels=csv_channels(MIXED, "deposit", header=True), hyperparameters=params, encoding="raw"
    )
    result = run_train(root)
    meta = trained_on_mixed(root, result, "gradient_boosting")
    assert "n_estimators" not in meta["hyperparameters"] and meta["hyperparameters"]["max_iter"] == 20
    assert "hyperparameter 'n_estimators' is ignored: it is used by random_forest and extra_trees" in (
        result.stdout + result.stderr
    )


def test_classic_sample_spellings_and_training_alias(tmp_path):
    channels = {"training": {"t.csv": csv_bytes(MIXED, target="deposit")}, "extra": {"notes.csv": b"1,2\n"}}
    params = {
        "use-custom-ensemble": "true",
        "ensemble-rf": "true",
        "ensemble-gb": "false",
        "ensemble-lr": "true",
        "n-estimators": "5",
        "cv-folds": "2",
    }
    root = make_ml_root(tmp_path, channels=channels, hyperparameters=params, encoding="raw")
    result = run_train(root)
    meta = trained_on_mixed(root, result, "ensemble", channels=("train",))
    assert meta["hyperparameters"]["ensemble_members"] == ["random_forest", "linear"]
    assert "channels extra are not used" in result.stdout
    assert f'SM_CHANNELS=["extra", "training"], SM_MODEL_DIR={root / "model"}' in result.stdout


def test_a_misspelt_validation_or_test_channel_is_named_with_the_name_it_may_mean(tmp_path):
    """A channel 'validaton' is not read (the job trains without validation metrics): the warning
    listed it among the unused channels without saying which name it likely misspells."""
    data = csv_bytes(MIXED, target="deposit")
    channels = {"train": {"t.csv": data}, "validaton": {"v.csv": data}, "testing": {"t.csv": data}}
    root = make_ml_root(tmp_path, channels=channels)
    result = run_train(root)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "channels testing, validaton are not used" in result.stdout
    assert "'testing' may be 'test' misspelt" in result.stdout
    assert "'validaton' may be 'validation' misspelt" in result.stdout
    assert "validation:" not in result.stdout  # not read: no metric line


def test_header_false_and_target_index(tmp_path):
    """target given as a 0-based index picks a middle column of headerless data."""
    frame = MIXED[["age", "deposit", "job", "balance"]]
    root = make_ml_root(
        tmp_path,
        channels={"train": {"t.csv": csv_bytes(frame, target=None)}},
        hyperparameters={"target": 1, "header": False},
    )
    result = run_train(root)
    meta = trained(
        root,
        result,
        problem_type=artifact.BINARY,
        algorithm="decision_tree",
        frame=frame,
        target="deposit",
        min_score=0.8,
    )
    assert meta["target"] == {"name": None, "index": 1}


@pytest.mark.parametrize(
    "encoding, target",
    [("sdk-json", "0"), ("raw", '"0"'), ("str", '"0"')],
    ids=["framework-estimator", "json-string", "generic-estimator-quoted"],
)
def test_target_named_like_an_index_is_the_named_column(tmp_path, encoding, target):
    """Header x,0,z: a JSON string "0" is the column named 0, not index 0 (it was 'x')."""
    rows = "x,0,z\n" + "".join(f"a{i % 3},{i % 2},{i * 1.5}\n" for i in range(40))
    root = make_ml_root(
        tmp_path,
        channels={"train": {"a.csv": rows}},
        hyperparameters={"target": target, "header": True},  # a header named like data: say so
        encoding=encoding,
    )
    result = run_train(root)
    assert result.returncode == 0, read_failure(root)
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["target"] == {"name": "0", "index": 1}
    assert [f["name"] for f in meta["features"]] == ["x", "z"]
    assert "target '0' is the column named so (column 1), not column index 0" in result.stdout


def test_target_missing_words_follow_the_values_rules(tmp_path):
    """README "Values": in a text target the words NA, N/A, None, null, nan are classes (as in a
    text feature), all five alike; in a numeric target they are missing and the rows dropped."""
    words = ["None", "null", "NA", "N/A", "nan"]
    text_rows = "".join(f"{label},{i},{i % 3}\n" for i, label in enumerate(["yes", "no"] * 20 + words * 2))
    root = make_ml_root(tmp_path / "text", channels={"train": {"a.csv": text_rows}})
    result = run_train(root)
    assert result.returncode == 0, read_failure(root)
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["classes"] == sorted(["yes", "no", *words])
    assert "dropped" not in result.stdout + result.stderr

    numeric_rows = "".join(f"{label},{i},{i % 3}\n" for i, label in enumerate([0, 1] * 20 + words))
    root = make_ml_root(tmp_path / "numeric", channels={"train": {"a.csv": numeric_rows}})
    result = run_train(root)
    assert result.returncode == 0, read_failure(root)
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["classes"] == [0, 1]
    assert "dropped 5 of 45 rows whose target 'column 0' is missing" in result.stdout + result.stderr


@pytest.mark.parametrize("header", [False, True], ids=["headerless", "header"])
def test_a_long_quoted_cell_in_the_first_row_is_a_category(tmp_path, header):
    """A quoted 1 MiB cell (the longest text cell read) in the first data row: the job raises
    the csv module's process-wide field limit when it starts (byoc.csvfields) and the sniffing
    sample holds that row whole.  Headerless, the job failed with "Internal error" (the first
    row cut short counted a column too few); after a header, the header was trained on as data."""
    long_cell = "b" * (1 << 20)
    rows = [f"{'yes' if i % 3 else 'no'},job{i},{i}" for i in range(60)]  # every job new: no header clue
    lines = (["deposit,job,age"] if header else []) + [f'yes,"{long_cell}",5', *rows]
    root = make_ml_root(
        tmp_path,
        channels={"train": {"a.csv": "\n".join(lines) + "\n"}},
        hyperparameters={"algorithm": "decision_tree"},
    )
    result = run_train(root)
    assert result.returncode == 0, read_failure(root)
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["classes"] == ["no", "yes"]
    kinds = {f["name"]: f["kind"] for f in meta["features"]}
    assert kinds == (
        {"job": "categorical", "age": "numeric"} if header else {"f0": "categorical", "f1": "numeric"}
    )


# -- commands ----------------------------------------------------------------------------------------


def test_help_lists_every_hyperparameter(tmp_path):
    result = run_train(tmp_path, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: train")
    for name in ("algorithm", "target", "max_leaf_nodes", "n_estimators", "ensemble_members", "n_neighbors"):
        assert name in result.stdout
    assert not (tmp_path / "output").exists()  # --help touches nothing


@pytest.mark.parametrize("args", [("--foo",), ("serve",), ("train", "extra")])
def test_a_wrong_argument_is_a_one_line_failure_not_a_fault(tmp_path, args):
    """argparse's exit 2 is what the exit codes call an internal fault, and its error repeated
    the whole usage text ("usage: usage: train ...") with no failure file for SageMaker to show."""
    result = run_train(tmp_path, *args)
    assert result.returncode == 1, result.stderr
    assert "usage: usage" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and args[-1] in lines[0] and "train --help" in lines[0], lines
    assert read_failure(tmp_path) == lines[0] + "\n"


def test_metric_definitions_parse_real_log_lines(tmp_path):
    result = run_train(tmp_path, "--metric-definitions")
    assert result.returncode == 0
    definitions = json.loads(result.stdout)
    names = {d["Name"] for d in definitions}
    assert {"validation:auc", "validation:accuracy", "test:rmse", "train:f1"} <= names
    auc = next(d["Regex"] for d in definitions if d["Name"] == "validation:auc")
    assert re.search(auc, "2026 INFO x\nvalidation:auc=0.931200\n").group(1) == "0.931200"


@pytest.mark.parametrize("flag", ["--help", "--metric-definitions"])
def test_a_reader_that_stops_early_ends_the_output_quietly(flag):
    """``train --help | head``: a pipe whose reader has gone made print raise BrokenPipeError, and
    train ended with a traceback where any command line tool stops quietly."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader is gone before train writes a byte
    try:
        done = subprocess.run(
            [sys.executable, str(CONTAINER / "train"), flag],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            env=clean_environ(),
        )
    finally:
        os.close(write)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


@pytest.mark.slow
def test_bundled_sample_trains_as_make_demo_does(tmp_path):
    """local_test/test_dir is a valid ML root: header CSV, text target, SDK-encoded ensemble."""
    root = tmp_path / "ml"
    shutil.copytree(REPO / "local_test" / "test_dir" / "input", root / "input")
    frame = pd.read_csv(root / "input/data/train/bank.csv")
    meta = trained(
        root,
        run_train(root),
        problem_type=artifact.BINARY,
        algorithm="ensemble",
        frame=frame,
        target="deposit",
        min_score=0.8,
        channels=("train", "validation"),
    )
    assert meta["classes"] == ["no", "yes"]
    assert read_metrics(root)["validation"]["auc"] > 0.8


def _number_like_categories() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A categorical column written 1.0/2.0/3.0 (categorical for the few 'unknown' rows), the
    label 'yes' exactly where it is 1.0; validation rows hold only the number-like cells."""
    rng = np.random.default_rng(0)
    code = rng.choice(["1.0", "2.0", "3.0"], 200).astype(object)
    code[:3] = "unknown"
    train = pd.DataFrame({"y": np.where(code == "1.0", "yes", "no"), "code": code, "x": rng.random(200)})
    held = rng.choice(["1.0", "2.0", "3.0"], 60)
    validation = pd.DataFrame({"y": np.where(held == "1.0", "yes", "no"), "code": held, "x": rng.random(60)})
    return train, validation


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_validation_cells_are_read_by_the_train_channels_kinds(tmp_path, fmt):
    """A validation column of only number-like text feeds a categorical feature: its cells are
    the categories as written (1.0), as a request's are, not numbers spelled 1 (a category
    training never saw: validation accuracy 0.34 for a model right on every row)."""
    train, validation = _number_like_categories()
    _train_and_validation(tmp_path, fmt, train, validation, header=False)
    result = run_train(tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "validation:accuracy=1.000000" in result.stdout + result.stderr
    model = artifact.load(tmp_path / "model")
    assert sorted(model.features[0].categories) == ["1.0", "2.0", "3.0", "unknown"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_validation_column_names_are_read_as_the_endpoint_reads_a_requests(tmp_path, fmt):
    """The endpoint takes `` AGE``, ``Job`` for the features ``age``, ``job`` (surrounding spaces
    and letter case aside: RequestSchema.feature_named), and so does evaluate; a validation channel
    naming them so (and the label ``Y``) failed training with "lacks column(s) age, job"."""
    train, _ = _number_like_categories()
    train = train.assign(age=np.arange(len(train)) % 7)
    validation = train.rename(columns={"y": "Y", "age": " AGE", "x": "X "})
    _train_and_validation(tmp_path, fmt, train, validation, header=True)
    result = run_train(tmp_path)
    assert result.returncode == 0, (read_failure(tmp_path) or "") + result.stderr[-2000:]
    scores = read_metrics(tmp_path)
    assert scores["validation"] == scores["train"]  # the same rows, read alike


def _train_and_validation(
    root: Path, fmt: str, train: pd.DataFrame, validation: pd.DataFrame, *, header: bool
) -> None:
    """An ML root of ``train`` and ``validation`` (label ``y``) as CSV (``header``: with one) or
    Parquet, for a decision tree."""
    if fmt == "csv":
        files = {
            "train": {"a.csv": train.to_csv(index=False, header=header)},
            "validation": {"v.csv": validation.to_csv(index=False, header=header)},
        }
        content_types = None
    else:
        files = {"train": {"a.parquet": _parquet(train)}, "validation": {"v.parquet": _parquet(validation)}}
        content_types = {"train": "application/x-parquet", "validation": "application/x-parquet"}
    make_ml_root(
        root,
        channels=files,
        hyperparameters={
            "algorithm": "decision_tree",
            **({"target": "y"} if fmt == "parquet" or header else {}),
        },
        content_types=content_types,
    )


def _parquet(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _leave_a_previous_model(root: Path) -> None:
    """What a retried job's earlier attempt (or an earlier local run on the same root) left in
    model/: its model files, an inference hook that answers "old", a stray file and folder."""
    model = root / "model"
    (model / "model.joblib").write_bytes(b"an earlier attempt's model")
    (model / "model.json").write_text("{}", encoding="utf-8")
    (model / "notes.txt").write_text("old", encoding="utf-8")
    (model / "code").mkdir()
    (model / "code" / "inference.py").write_text(
        "def predict_fn(data, model):\n    return ['old'] * len(data)\n", encoding="utf-8"
    )


def test_a_model_directory_holding_an_earlier_model_is_replaced_whole(tmp_path):
    """model/ is packed whole into model.tar.gz: an earlier attempt's code/inference.py, left
    beside the new model, was served in its place (every answer "old", exit 0 and a model that
    looked right)."""
    import serving_models

    root = make_ml_root(
        tmp_path,
        channels={"train": {"train.csv": csv_bytes(MIXED, target="deposit", header=True)}},
        hyperparameters={"target": "deposit", "algorithm": "decision_tree", "max_depth": 4},
    )
    _leave_a_previous_model(root)
    result = run_train(root)
    trained_on_mixed(root, result, "decision_tree", channels=("train",))
    assert "model/ held code, model.joblib, model.json, notes.txt before training" in result.stdout
    server = serving_models.start(root, workers=1)
    try:
        body = csv_bytes(MIXED.drop(columns=["deposit"]).iloc[:20], target=None)
        answer = server.invoke(body, "text/csv", "text/csv")
    finally:
        server.stop()
    assert answer.status_code == 200, answer.text
    assert set(answer.text.split()) <= {"yes", "no"}


def test_a_failed_job_leaves_no_earlier_model_in_the_model_directory(tmp_path):
    root = make_ml_root(
        tmp_path,
        channels={"train": {"train.csv": "deposit,age\nyes,1\nyes,2\n"}},
        hyperparameters={"target": "deposit"},
    )
    _leave_a_previous_model(root)
    result = run_train(root)
    assert result.returncode == 1 and read_failure(root).startswith(
        "target column 'deposit' has a single value"
    )
    assert model_dir_entries(root) == []


def _regression_job(tmp_path: Path, y: np.ndarray, fmt: str) -> Path:
    frame = pd.DataFrame({"y": y, "x": np.random.default_rng(0).random(len(y))})
    parquet = fmt == "parquet"
    return make_ml_root(
        tmp_path,
        channels={
            "train": {"a.parquet": parquet_bytes(frame)} if parquet else {"a.csv": frame.to_csv(index=False)}
        },
        content_types={"train": "application/x-parquet"} if parquet else {},
        hyperparameters={"target": "y", "problem_type": "regression", "algorithm": "decision_tree"},
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_regression_target_of_integers_float64_merges_into_one_is_named_so(tmp_path, fmt):
    """Distinct int64 values past 2**53 that float64 makes one number: CSV was refused as 'has a
    single value' (the file holds two), Parquet trained a constant model (exit 0)."""
    root = _regression_job(tmp_path, np.array([9223372036854775800, 9223372036854775807] * 40), fmt)
    result = run_train(root)
    assert result.returncode == 1 and model_dir_entries(root) == []
    assert read_failure(root).startswith(
        "target column 'y' holds 2 distinct integers that float64 cannot tell apart (9223372036854775800 "
        "and 9223372036854775807 are both 9.223372036854776e+18), not a single value"
    )
    assert "shift or rescale the target" in read_failure(root)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_regression_target_with_some_integers_float64_merges_trains_with_a_warning(tmp_path, fmt):
    """2**53 and 2**53 + 1 beside other values were merged into one target value with no word."""
    y = np.array([2**53, 2**53 + 1, 2**53 + 4, 2**53 + 5] * 10 + list(range(40)), dtype=np.int64)
    root = _regression_job(tmp_path, y, fmt)
    result = run_train(root)
    assert result.returncode == 0, read_failure(root)
    assert (
        "WARNING byoc.training: train: target 'y': 4 distinct integers past 2**53 are only 2 float64 values "
        "(9007199254740992 and 9007199254740993 are both 9007199254740992.0)"
    ) in result.stdout + result.stderr


def test_a_validation_channel_without_positive_rows_logs_no_precision_recall_or_f1_and_says_why(tmp_path):
    """scikit-learn's zero_division logged validation:recall=0.000000, precision and f1 0 on a
    channel holding no row of the positive class: numbers no model could beat there, which a
    tuning job's metric definitions read as real scores.  The lines are left out (the
    definitions record nothing), and a WARNING names the channel, the metrics and why."""
    frame = mixed_frame(200)
    root = make_ml_root(
        tmp_path,
        channels={
            "train": {"a.csv": csv_bytes(frame, target="deposit")},
            "validation": {"a.csv": csv_bytes(frame[frame["deposit"] == "no"].head(40), target="deposit")},
        },
        hyperparameters={"algorithm": "random_forest", "n_estimators": 10},
    )
    result = run_train(root)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log
    assert not re.search(r"^validation:(precision|recall|f1|auc)=", log, re.M), log
    assert re.search(r"^validation:accuracy=[0-9.]+$", log, re.M) and re.search(r"^train:f1=", log, re.M)
    warnings = [line for line in log.splitlines() if "WARNING" in line and "not logged" in line]
    assert [w.split(" WARNING byoc.training: ")[1] for w in warnings] == [
        "validation:f1, validation:precision, validation:recall not logged: the validation channel holds "
        "no row of the positive class 'yes': recall is 0/0, and no model can score a precision or F1 "
        "above 0 there",
        "validation:auc not logged: the validation channel holds a single class ('no'): AUC needs both",
    ], warnings
    saved = json.loads((root / "output" / "data" / "metrics.json").read_text())["validation"]
    assert {"precision", "recall", "f1"}.isdisjoint(saved)
