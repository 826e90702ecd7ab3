"""`container/evaluate`'s failures as a Processing user meets them: each exits 1 (2 only for a
bug of byoc's) with /opt/ml/output/message whose first line names the culprit (path, file,
row, column) and the fix in evaluate's own terms (its flags), and leaves no evaluation.json."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from support import (
    CONTAINER,
    REPO,
    clean_environ,
    csv_bytes,
    diabetes_frame,
    jsonlines_bytes,
    make_ml_root,
    mixed_frame,
    parquet_bytes,
    run_train,
    save_constant_model,
    without_file_privileges,
)

FRAME = mixed_frame(300)
TEST = FRAME.iloc[200:].reset_index(drop=True)


def run_evaluate(
    *args: str,
    base: Path,
    patch: str | None = None,
    unprivileged: bool = False,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """The real evaluate entry point with SAGEMAKER_BASE_DIR=base (``patch``: Python run first in
    the fresh interpreter, to reach what only the environment causes, such as a full disk;
    ``env``: more of the job's environment)."""
    command = [sys.executable, str(CONTAINER / "evaluate"), *args]
    if patch is not None:
        code = f"import sys\nsys.path.insert(0, {str(CONTAINER)!r})\n{patch}\nfrom byoc.evaluation import main\nsys.exit(main())"
        command = [sys.executable, "-c", code, *args]
    return subprocess.run(
        command,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_environ(env, SAGEMAKER_BASE_DIR=str(base)),
        preexec_fn=without_file_privileges if unprivileged else None,
    )


def trained(root: Path, channel: dict[str, bytes], **hyperparameters: str | int) -> Path:
    root = make_ml_root(
        root,
        channels={"train": channel},
        hyperparameters={"n_estimators": 10, "n_jobs": 1, **hyperparameters},
    )
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "model"


@pytest.fixture(scope="module")
def header_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random forest trained on CSV with a header row (target 'deposit', first)."""
    root = tmp_path_factory.mktemp("header-model")
    return trained(
        root, {"a.csv": csv_bytes(FRAME.iloc[:200], target="deposit", header=True)}, algorithm="random_forest"
    )


def data_dir(tmp_path: Path, files: dict[str, bytes]) -> Path:
    test = tmp_path / "test"
    test.mkdir()
    for name, body in files.items():
        (test / name).write_bytes(body)
    return test


def message(base: Path) -> str:
    return (base / "output" / "message").read_text().splitlines()[0]


# -- the report cannot be written --------------------------------------------------------------


def test_an_output_that_is_a_file_names_it_and_asks_for_a_directory(tmp_path, header_model):
    test = data_dir(tmp_path, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    out = tmp_path / "out"
    out.write_text("in the way")
    result = run_evaluate(
        "--model", str(header_model), "--test", str(test), "--output", str(out), base=tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    first = message(tmp_path)
    assert first.startswith(f"{out}: Not a directory while writing {out / 'evaluation.json'};"), first
    assert "--output" in first
    assert "Traceback" not in result.stderr and out.read_text() == "in the way"


def test_a_read_only_output_names_the_directory(tmp_path, header_model):
    test = data_dir(tmp_path, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    result = run_evaluate(
        "--model",
        str(header_model),
        "--test",
        str(test),
        "--output",
        str(out),
        base=tmp_path,
        unprivileged=True,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    first = message(tmp_path)
    assert first.startswith(f"{out}: Permission denied while writing"), first
    assert "--output" in first
    assert os.listdir(out) == []


def test_a_full_disk_leaves_no_half_report(tmp_path, header_model):
    test = data_dir(tmp_path, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    out = tmp_path / "out"
    patch = (
        "import errno, os\n"
        "def full(fd):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "os.fsync = full\n"
    )
    result = run_evaluate(
        "--model", str(header_model), "--test", str(test), "--output", str(out), base=tmp_path, patch=patch
    )
    assert result.returncode == 1, result.stdout + result.stderr
    first = message(tmp_path)
    assert first.startswith(f"{out}: No space left on device while writing"), first
    assert "VolumeSizeInGB" in first
    assert os.listdir(out) == []


# -- the culprit named by file and row ---------------------------------------------------------


@pytest.fixture(scope="module")
def headerless_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same data without a header row, as the built-in algorithms take it (target first)."""
    root = tmp_path_factory.mktemp("headerless-model")
    return trained(root, {"a.csv": csv_bytes(FRAME.iloc[:200], target="deposit")}, algorithm="random_forest")


def evaluate_on(tmp_path: Path, model: Path, files: dict[str, bytes], *args: str) -> tuple[int, str]:
    """(exit code, the message's first line) of evaluate on a test directory holding ``files``."""
    out = tmp_path / "out"
    result = run_evaluate(
        "--model",
        str(model),
        "--test",
        str(data_dir(tmp_path, files)),
        "--output",
        str(out),
        *args,
        base=tmp_path,
    )
    assert not (out / "evaluation.json").exists()
    assert "Traceback" not in result.stderr, result.stderr
    return result.returncode, message(tmp_path)


def test_a_bad_cell_is_named_by_its_file_and_its_row_there(tmp_path, header_model):
    """Rows count from 1 in each file after its header, as the train channel's do: the missing
    label in row 3 (dropped) and the file before it do not shift the number."""
    bad = TEST.iloc[:20].astype(object)
    bad.loc[2, "deposit"] = None
    bad.loc[9, "age"] = "abc"
    code, first = evaluate_on(
        tmp_path,
        header_model,
        {
            "a.csv": csv_bytes(TEST.iloc[20:], target="deposit", header=True),
            "t.csv": csv_bytes(bad, target="deposit", header=True),
        },
    )
    assert code == 1
    assert first == (
        "test/t.csv, row 10, column 'age': holds 'abc', but the column is numeric in the training data; "
        "write a number there, or leave the cell empty for a missing value"
    )


def test_an_unseen_label_is_named_by_its_file_and_its_row_there(tmp_path, header_model):
    bad = TEST.iloc[:20].astype(object)
    bad.loc[2, "deposit"] = None
    bad.loc[6, "deposit"] = "maybe"
    code, first = evaluate_on(
        tmp_path, header_model, {"t.csv": csv_bytes(bad, target="deposit", header=True)}
    )
    assert code == 1
    assert first.startswith(
        "test/t.csv, row 7, target column 'deposit': holds 'maybe', which is not among the classes seen in "
        "training ('no', 'yes')"
    ), first


def test_a_header_row_the_model_was_trained_without_points_to_the_header_flag(tmp_path, headerless_model):
    files = {"t.csv": csv_bytes(TEST, target="deposit", header=True)}
    code, first = evaluate_on(tmp_path, headerless_model, files)
    assert code == 1
    assert first.startswith("test/t.csv, row 1, column 1: holds 'age', but the column is numeric"), first
    assert first.endswith(
        "(is row 1 a header row? The model was trained on CSV without one: pass --header true to read past it)"
    )
    out = tmp_path / "out"
    result = run_evaluate(
        "--model", str(headerless_model), "--test", str(tmp_path / "test"), "--output", str(out), "--header", "true",
        base=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "evaluation.json").is_file()


# -- evaluate's own flags as the fix -----------------------------------------------------------


def test_a_readme_beside_headerless_test_files_is_named_not_the_data_file(tmp_path, headerless_model):
    """evaluate reads the test files without a header row, as training's were read: the widths
    were then taken from the first file, README.txt, and the good data file was blamed for its
    rows ("test/t.csv, line 1: 5 fields where 1 are expected"); training names both files."""
    files = {
        "README.txt": b"test rows for the deposit model\n",
        "t.csv": csv_bytes(TEST, target="deposit"),
    }
    code, first = evaluate_on(tmp_path, headerless_model, files)
    assert code == 1
    assert first.startswith("test/t.csv: line 1 has 5 field(s)"), first
    assert "but line 1 of test/README.txt has 1 ('test rows for the deposit model')" in first
    assert "remove any file that is not data (a README" in first


MODEL_COLUMNS = (
    "the test files need the feature columns the model was trained on (model.json's features), as its "
    "endpoint's requests do"
)


@pytest.mark.parametrize(
    ("change", "differ"),
    [
        ({"drop": "job"}, "lacks column(s) job; 3 feature columns where the model has 4"),
        (
            {"add": "customer_id"},
            "has column(s) customer_id that the model does not; 5 feature columns where the model has 4",
        ),
        ({"rename": "job"}, "lacks column(s) job; has column(s) occupation that the model does not"),
    ],
    ids=["missing", "extra", "renamed"],
)
def test_test_columns_other_than_the_models_are_named_against_the_model(
    tmp_path, header_model, change, differ
):
    """Said in training's terms: "channel 'test' (...) has column(s) customer_id that train does
    not; ... validation and test data need the train channel's columns"."""
    test = TEST.copy()
    if "drop" in change:
        test = test.drop(columns=[change["drop"]])
    if "add" in change:
        test[change["add"]] = range(len(test))
    if "rename" in change:
        test = test.rename(columns={change["rename"]: "occupation"})
    code, first = evaluate_on(
        tmp_path, header_model, {"t.csv": csv_bytes(test, target="deposit", header=True)}
    )
    assert code == 1
    assert first == f"test/t.csv {differ}; {MODEL_COLUMNS}", first


def test_another_models_test_data_names_the_label_and_the_features_it_lacks(tmp_path, header_model):
    """Test data of another model (diabetes' for a model of deposits): "channel 'test' has no column
    'deposit' (the target); every channel needs the train channel's columns", training's words."""
    test = diabetes_frame().iloc[300:320]
    code, first = evaluate_on(
        tmp_path, header_model, {"t.csv": csv_bytes(test, target="target", header=True)}
    )
    assert code == 1
    assert first == (
        "test/t.csv: no column 'deposit' (the label), nor 3 of the model's 4 feature columns (balance, job, "
        "contact); evaluate scores the model's predictions against the true labels: the test files need the "
        "'deposit' column and the feature columns the model was trained on (model.json's features)"
    ), first


def test_column_names_the_endpoint_accepts_are_read_as_the_models(tmp_path, header_model):
    """A header differing from training's in case or surrounding spaces names the model's
    columns, as the endpoint reads a request's header (RequestSchema.feature_named), the label's
    too: evaluate said the test data had no label column, in a training channel's words."""
    reports = []
    for name, header in (("as-trained", None), ("relaxed", "DEPOSIT, Age,balance,JOB,Contact ")):
        body = csv_bytes(TEST, target="deposit", header=True)
        if header is not None:
            body = header.encode() + body[body.index(b"\n") :]
        base = tmp_path / name
        base.mkdir()
        result = run_evaluate(
            "--model", str(header_model), "--test", str(data_dir(base, {"t.csv": body})),
            "--output", str(base / "out"), base=base,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        reports.append(json.loads((base / "out" / "evaluation.json").read_text()))
    assert reports[0] == reports[1]


def test_test_data_without_the_label_column_says_the_label_is_missing(tmp_path, headerless_model):
    """Batch transform's input layout (features only) handed to evaluate: the first feature must
    not be taken for the label."""
    code, first = evaluate_on(
        tmp_path, headerless_model, {"t.csv": csv_bytes(TEST.drop(columns=["deposit"]), target=None)}
    )
    assert code == 1
    assert first.startswith(
        "test/t.csv: 4 columns, one fewer than the model was trained on (the label in column 0 and 4 "
        "features): the label column seems missing"
    ), first


@pytest.mark.parametrize("column", ["age", "job"])
def test_headerless_test_data_without_a_feature_column_is_not_said_to_lack_the_label(
    tmp_path, headerless_model, column
):
    """A feature column left out of headerless test data (the label in place, in column 0) was
    reported as the label column missing, with the fix to put the labels in column 0, where
    they were: the labels there cannot be the first feature (text in a numeric column)."""
    code, first = evaluate_on(
        tmp_path, headerless_model, {"t.csv": csv_bytes(TEST.drop(columns=[column]), target="deposit")}
    )
    assert code == 1
    assert first == (
        "test/t.csv: 4 columns, one fewer than the model was trained on (the label in column 0 and 4 "
        "features): column 0 holds the labels, so a feature column is missing; write every feature "
        "column the model was trained on, in training's order, in every test file"
    ), first


def test_headerless_labels_in_another_column_are_found_there(tmp_path, headerless_model):
    """pandas' to_csv writes the label where the frame has it (last, here), while the model reads
    it from column 0: the column holding the classes is named, not a feature cell out of place."""
    last = TEST[["age", "balance", "job", "contact", "deposit"]]
    code, first = evaluate_on(tmp_path, headerless_model, {"t.csv": csv_bytes(last, target=None)})
    assert code == 1
    assert first == (
        "test/t.csv: column 0, where the model reads the label (as in training), holds none of its "
        f"classes ('no', 'yes'; it starts with {str(last.iloc[0, 0])!r}), but column 4 holds nothing else: the "
        "labels seem to be in column 4; move them to column 0 of every test file"
    ), first


def test_numeric_labels_spelled_as_floats_are_not_taken_for_labels_elsewhere(tmp_path):
    """Classes 0/1 written 0.0/1.0 in column 0, beside a 0/1 flag feature: the labels are where
    the model reads them (label encoding takes 1.0 for 1), so the file is scored."""
    rng = np.random.default_rng(0)
    x, flag = rng.normal(size=300), rng.integers(0, 2, 300)
    frame = pd.DataFrame({"y": ((x + flag) > 0.5).astype(int), "x": x, "flag": flag})
    model = trained(
        tmp_path / "ml", {"a.csv": csv_bytes(frame.iloc[:200], target="y")}, algorithm="random_forest"
    )
    test = frame.iloc[200:].assign(y=lambda f: f["y"].astype(float))
    out = tmp_path / "out"
    result = run_evaluate(
        "--model", str(model), "--test", str(data_dir(tmp_path, {"t.csv": csv_bytes(test, target="y")})),
        "--output", str(out), base=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "evaluation.json").is_file()


def test_named_test_data_without_the_label_column_names_it(tmp_path, header_model):
    files = {"t.csv": csv_bytes(TEST.drop(columns=["deposit"]), target=None, header=True)}
    code, first = evaluate_on(tmp_path, header_model, files)
    assert code == 1
    assert first.startswith("test/t.csv: no column 'deposit' (the label);"), first
    assert first.endswith("add the 'deposit' column to every test file"), first


def test_a_label_column_named_otherwise_is_named_with_the_rename(tmp_path, header_model):
    """The labels are there under another name: the one column the model does not know is the
    likely culprit, and renaming it is the fix."""
    files = {"t.csv": csv_bytes(TEST.rename(columns={"deposit": "y"}), target="y", header=True)}
    code, first = evaluate_on(tmp_path, header_model, files)
    assert code == 1
    assert first == (
        "test/t.csv: no column 'deposit' (the label); evaluate scores the predictions against the true "
        "labels: add the 'deposit' column to every test file, or, if their column 'y' (which the model "
        "does not know) holds the labels, rename it 'deposit'"
    ), first


def test_headerless_test_data_for_a_model_trained_with_a_header_row_asks_for_it(tmp_path, header_model):
    code, first = evaluate_on(tmp_path, header_model, {"t.csv": csv_bytes(TEST, target="deposit")})
    assert code == 1
    assert first.startswith(
        "test/t.csv: none of the model's columns (deposit, age, balance, job, contact)"
    ), first
    assert first.endswith("The model was trained on CSV with a header row: add it to the test files"), first


def test_headerless_test_data_whose_first_row_repeats_a_value_asks_for_the_header_row(tmp_path, header_model):
    """A first data row repeating a cell (``no,32.0,32.0,...``: flags, counts, zeros) taken for the
    header row was refused as naming a column twice, which sent the user looking for a header row
    the file does not have."""
    repeated = TEST.copy()
    repeated.loc[0, "balance"] = repeated.loc[0, "age"]
    code, first = evaluate_on(tmp_path, header_model, {"t.csv": csv_bytes(repeated, target="deposit")})
    assert code == 1
    assert first.startswith(
        "test/t.csv: none of the model's columns (deposit, age, balance, job, contact)"
    ), first
    assert "appears 2 times" not in first
    assert first.endswith("The model was trained on CSV with a header row: add it to the test files"), first


def test_csv_test_data_for_a_parquet_model_points_to_content_type(tmp_path):
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {"a.parquet": parquet_bytes(FRAME.iloc[:200])}},
        content_types={"train": "application/x-parquet"},
        hyperparameters={"target": "deposit", "algorithm": "decision_tree"},
    )
    assert run_train(root).returncode == 0
    files = {"t.csv": csv_bytes(TEST, target="deposit", header=True)}
    code, first = evaluate_on(tmp_path, root / "model", files)
    assert code == 1
    assert first.startswith(
        "test/t.csv: not Parquet, but evaluate reads the test files as application/x-parquet, the model's "
        "training format: pass evaluate --content-type text/csv"
    ), first
    assert "ContentType" not in first
    out = tmp_path / "out"
    result = run_evaluate(
        "--model", str(root / "model"), "--test", str(tmp_path / "test"), "--output", str(out),
        "--content-type", "text/csv", base=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def parquet_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_ml_root(
        tmp_path_factory.mktemp("parquet-model"),
        channels={"train": {"a.parquet": parquet_bytes(FRAME.iloc[:200])}},
        content_types={"train": "application/x-parquet"},
        hyperparameters={"target": "deposit", "algorithm": "decision_tree"},
    )
    assert run_train(root).returncode == 0
    return root / "model"


@pytest.mark.parametrize(
    ("column", "kind", "first"),
    [
        ("job", "binary", "row 3: b'services'"),  # row 2's job is missing
        ("contact", "fixed_size_binary[2]", "row 2: b'ce'"),
        ("deposit", "binary", "row 2: b'yes'"),
    ],
)
def test_a_parquet_column_of_bytes_names_file_row_and_column(tmp_path, parquet_model, column, kind, first):
    """Bytes in a categorical feature or the label (undecoded text) crashed evaluate with exit 2,
    "a bug in byoc"; the endpoint answers 400 to the same feature column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    test = TEST.iloc[:20].astype(object)
    test.loc[0, column] = None  # the first value is further down
    table = pa.Table.from_pandas(test, preserve_index=False)
    width = 2 if kind.startswith("fixed") else None
    cells = [None if pd.isna(v) else str(v).encode()[: width or None] for v in test[column]]
    encoded = pa.array(cells, pa.binary(width) if width else pa.binary())
    buf = io.BytesIO()
    pq.write_table(table.set_column(table.column_names.index(column), column, encoded), buf)
    code, first_line = evaluate_on(tmp_path, parquet_model, {"t.parquet": buf.getvalue()})
    assert code == 1
    assert first_line.startswith(
        f"test/t.parquet: column '{column}' holds binary data ({kind}; {first}), which no feature "
        "or label takes"
    ), first_line
    assert f"df['{column}'].str.decode('utf-8')" in first_line


@pytest.mark.parametrize(
    ("name", "body", "cause"),
    [
        (
            "t.jsonl",
            jsonlines_bytes(TEST),
            "test/t.jsonl: JSON Lines, but evaluate reads the test files as text/csv, the model's training "
            "format: pass evaluate --content-type application/jsonlines",
        ),
        (
            "t.json",
            json.dumps(TEST.to_dict(orient="records")).encode(),
            "test/t.json: one JSON document, not JSON Lines, but evaluate reads the test files as text/csv, "
            "the model's training format: write one JSON object per line (pandas: df.to_json(path, "
            "orient='records', lines=True)) and pass evaluate --content-type application/jsonlines",
        ),
    ],
    ids=["jsonlines", "json-document"],
)
def test_json_test_data_for_a_csv_model_points_to_content_type(tmp_path, header_model, name, body, cause):
    """Training's sniffing knew the format but pointed to a channel ContentType and a
    hyperparameter, which a Processing job does not have."""
    code, first = evaluate_on(tmp_path, header_model, {name: body})
    assert code == 1
    assert first.startswith(cause), first
    assert "ContentType" not in first and "hyperparameter" not in first


def libsvm_lines(rows: int) -> bytes:
    """``rows`` libsvm lines: a 0/1 label that the first of two features decides."""
    rng = np.random.default_rng(0)
    x = rng.random((rows, 2)).round(3)
    return "".join(f"{int(a > 0.5)} 1:{a} 2:{b}\n" for a, b in x).encode()


@pytest.fixture(scope="module")
def text_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A model trained on JSON Lines and one trained on libsvm, by their media types."""
    models = {}
    for media, name, body, hyperparameters in (
        ("application/jsonlines", "a.jsonl", jsonlines_bytes(FRAME.iloc[:200]), {"target": "deposit"}),
        ("text/libsvm", "a.libsvm", libsvm_lines(200), {}),
    ):
        root = make_ml_root(
            tmp_path_factory.mktemp("text-model"),
            channels={"train": {name: body}},
            content_types={"train": media},
            hyperparameters={"algorithm": "decision_tree", **hyperparameters},
        )
        assert run_train(root).returncode == 0
        models[media] = root / "model"
    return models


@pytest.mark.parametrize(
    ("trained", "name", "body", "what", "actual"),
    [
        ("application/jsonlines", "t.csv", csv_bytes(TEST, target="deposit", header=True), "CSV", "text/csv"),
        ("application/jsonlines", "t.csv", csv_bytes(TEST, target="deposit"), "CSV", "text/csv"),
        ("application/jsonlines", "t.libsvm", libsvm_lines(20), "libsvm", "text/libsvm"),
        ("text/libsvm", "t.csv", b"1,0.9,0.2\n0,0.1,0.4\n", "CSV", "text/csv"),
        ("text/libsvm", "t.jsonl", b'{"x": 1}\n{"x": 2}\n', "JSON Lines", "application/jsonlines"),
    ],
    ids=[
        "csv-for-jsonlines",
        "headerless-csv-for-jsonlines",
        "libsvm-for-jsonlines",
        "csv-for-libsvm",
        "jsonlines-for-libsvm",
    ],
)
def test_text_test_data_for_a_model_of_another_text_format_points_to_content_type(
    tmp_path, text_models, trained, name, body, what, actual
):
    """Only test data read as CSV was checked for another text format: CSV read as JSON Lines said
    `line 1: not valid JSON`, libsvm read as JSON Lines that the line `holds more than one JSON
    value` (with pandas' to_json as the fix), JSON Lines read as libsvm that its label
    `'{"x":' is not a number`, none of them that the format differs nor --content-type."""
    code, first = evaluate_on(tmp_path, text_models[trained], {name: body})
    assert code == 1
    assert first.startswith(
        f"test/{name}: {what}, but evaluate reads the test files as {trained}, the model's training format: "
        f"pass evaluate --content-type {actual}"
    ), first


def test_a_test_file_is_read_as_the_test_data(tmp_path, header_model):
    """Run by hand, --test names one file: that file is the test data."""
    test = data_dir(tmp_path, {"t.csv": csv_bytes(TEST, target="deposit", header=True), "other.csv": b"junk"})
    out = tmp_path / "out"
    result = run_evaluate(
        "--model", str(header_model), "--test", str(test / "t.csv"), "--output", str(out), base=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "evaluation.json").is_file()
    assert f"on {len(TEST)} rows from test/t.csv" in result.stdout


@pytest.mark.parametrize("failure", ["bad-data", "bad-flag", "none"])
def test_an_earlier_runs_report_is_removed_when_the_run_starts_so_a_failure_leaves_none(
    tmp_path, header_model, failure
):
    """Run by hand (or a retried step) on an output folder holding an earlier run's evaluation.json,
    a failed run left that report in place, which a Pipelines condition step reading the output
    would take for this run's.  It is removed when evaluate starts (also when a flag is wrong),
    and the failure message says no evaluation.json is there; a run that succeeds writes its own."""
    test = data_dir(tmp_path, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    out = tmp_path / "out"
    out.mkdir()
    (out / "evaluation.json").write_text('{"binary_classification_metrics": {"auc": {"value": 0.99}}}\n')
    args = ["--model", str(header_model), "--test", str(test), "--output", str(out)]
    if failure == "bad-data":
        args[3] = str(tmp_path / "nowhere")
    elif failure == "bad-flag":
        args += ["--header", "yes"]
    result = run_evaluate(*args, base=tmp_path)
    if failure == "none":
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads((out / "evaluation.json").read_text())["binary_classification_metrics"]
        assert "accuracy" in report and report["auc"]["value"] != 0.99, report
    else:
        assert result.returncode == 1, result.stdout + result.stderr
        assert not (out / "evaluation.json").exists()
        first = message(tmp_path)
        assert first.startswith(("--test ", "evaluate: argument --header")), first
        assert first.endswith(
            f"(No evaluation.json is in {out}: the one an earlier run left there was removed when this run "
            "started.)"
        ), first
    assert f"removed the evaluation.json an earlier run left in {out}" in result.stdout, result.stdout


def test_an_earlier_report_that_cannot_be_removed_is_said_to_be_still_there(tmp_path, header_model):
    test = data_dir(tmp_path, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    out = tmp_path / "out"
    out.mkdir()
    (out / "evaluation.json").write_text("{}\n")
    out.chmod(0o555)
    args = ["--model", str(header_model), "--test", str(test), "--output", str(out)]
    result = run_evaluate(*args, base=tmp_path, unprivileged=True)
    assert result.returncode == 1, result.stdout + result.stderr
    first = message(tmp_path)
    assert (
        "Permission denied while removing the evaluation.json an earlier run left (it is still there)"
        in first
    )
    assert "--output" in first and "Traceback" not in result.stderr


def test_a_missing_test_path_says_what_to_pass(tmp_path, header_model):
    missing = tmp_path / "nowhere"
    result = run_evaluate(
        "--model", str(header_model), "--test", str(missing), "--output", str(tmp_path / "out"), base=tmp_path
    )
    assert result.returncode == 1
    assert message(tmp_path).startswith(f"--test {missing}: no such file or directory; pass the directory")


# -- the Processing job's own configuration ---------------------------------------------------


def processing_config(
    base: Path, test: Path, distribution: str, hosts: list[str], mode: str = "File"
) -> None:
    """/opt/ml/config/ as a Processing job on ``hosts`` writes it, the test input distributed so."""
    config = base / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": hosts[0], "hosts": hosts}))
    test_input = {
        "InputName": "test",
        "S3Input": {
            "S3Uri": "s3://bucket/test/",
            "LocalPath": str(test),
            "S3DataType": "S3Prefix",
            "S3InputMode": mode,
            "S3DataDistributionType": distribution,
        },
    }
    cluster = {"InstanceCount": len(hosts), "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
    (config / "processingjobconfig.json").write_text(
        json.dumps({"ProcessingInputs": [test_input], "ProcessingResources": {"ClusterConfig": cluster}})
    )


def test_test_data_sharded_across_instances_is_refused(tmp_path, header_model):
    """Two instances, each with half the test files, would each upload an evaluation.json of
    their half to the same S3 key: a report on half the data that looks whole."""
    test = tmp_path / "test"
    processing_config(tmp_path, test, "ShardedByS3Key", ["algo-1", "algo-2"])
    code, first = evaluate_on(
        tmp_path, header_model, {"t.csv": csv_bytes(TEST, target="deposit", header=True)}
    )
    assert code == 1
    assert first.startswith(
        f"ProcessingInput 'test' ({test}, --test) is ShardedByS3Key across 2 instances: each would score "
        "only its own shard"
    ), first
    assert first.endswith(
        "run the Processing job with instance_count=1 (or the input's s3_data_distribution_type='FullyReplicated')"
    ), first


@pytest.mark.parametrize(
    ("distribution", "hosts"),
    [("FullyReplicated", ["algo-1", "algo-2"]), ("ShardedByS3Key", ["algo-1"])],
    ids=["replicated-on-two", "sharded-on-one"],
)
def test_test_data_every_instance_sees_whole_is_scored(tmp_path, header_model, distribution, hosts):
    test = data_dir(tmp_path, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    processing_config(tmp_path, test, distribution, hosts)
    out = tmp_path / "out"
    result = run_evaluate(
        "--model", str(header_model), "--test", str(test), "--output", str(out), base=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (out / "evaluation.json").is_file()


@pytest.mark.parametrize("files", [{"t.csv": b"\n\n", "u.csv": b""}, {}], ids=["blank-files", "no-files"])
def test_empty_test_data_is_named_by_its_processing_input_not_a_training_channel(
    tmp_path, header_model, files
):
    """The message spoke of "channel 'test'" and "the S3 prefix given for this channel",
    training's words, in a Processing job, which has ProcessingInputs."""
    test = tmp_path / "test"
    processing_config(tmp_path, test, "FullyReplicated", ["algo-1"])
    code, first = evaluate_on(tmp_path, header_model, files)
    assert code == 1
    assert first.startswith(f"ProcessingInput 'test' ({test}, --test): "), first
    assert first.endswith("check the S3 URI given as this input's source)" if files else "source"), first
    assert "channel" not in first, first


def test_empty_test_data_run_by_hand_is_named_by_the_flag(tmp_path, header_model):
    code, first = evaluate_on(tmp_path, header_model, {"t.csv": b""})
    assert code == 1
    assert first.startswith(f"--test {tmp_path / 'test'}: every file is empty or holds only blank lines"), (
        first
    )
    assert first.endswith("upload the data again (check the path given with --test)"), first


@pytest.mark.parametrize(
    ("files", "said"),
    [
        ({"t.csv": b"deposit,age,balance,job,contact\n"}, "test/t.csv hold(s) a header row but no data rows"),
        ({"t.parquet": parquet_bytes(TEST.iloc[:0])}, "the Parquet files hold no rows"),
    ],
    ids=["csv-header-row-only", "parquet-schema-only"],
)
def test_test_files_holding_no_row_are_named_by_the_input_not_a_training_channel(
    tmp_path, parquet_model, header_model, files, said
):
    """Files that are not empty but hold no row (a CSV header row, a Parquet schema) were named
    "channel 'test'", as training's channel is, not by the --test path or ProcessingInput."""
    model = parquet_model if "t.parquet" in files else header_model
    code, first = evaluate_on(tmp_path, model, files)
    assert code == 1
    assert first.startswith(f"--test {tmp_path / 'test'}: {said}"), first


def test_an_empty_label_column_asks_for_the_labels_not_a_hyperparameter(tmp_path, header_model):
    """evaluate has no target hyperparameter: the fix is the labels themselves; rows without one
    are dropped from the score (not "from learning"), as the log says, naming the first by its
    file and its row there (as a bad cell is), not by its place in the channel."""
    unlabelled = TEST.astype(object).assign(deposit=None)
    code, first = evaluate_on(
        tmp_path, header_model, {"t.csv": csv_bytes(unlabelled, target="deposit", header=True)}
    )
    assert code == 1
    assert first == (
        f"target column 'deposit' has no values in any of its {len(TEST)} rows; evaluate scores the "
        "predictions against the true labels: write them into that column of test/t.csv"
    ), first
    partly = TEST.astype(object)
    partly.loc[3, "deposit"] = None
    out = tmp_path / "partly"
    test = tmp_path / "partly-test"
    test.mkdir()
    (test / "a.csv").write_bytes(csv_bytes(TEST.iloc[:20], target="deposit", header=True))
    (test / "t.csv").write_bytes(csv_bytes(partly, target="deposit", header=True))
    result = run_evaluate(
        "--model", str(header_model), "--test", str(test), "--output", str(out), base=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "dropped 1 of 120 rows whose target 'deposit' is missing (first: test/t.csv, row 4); they cannot be scored"
        in (result.stdout)
    )


def test_test_data_in_pipe_mode_asks_for_file_mode(tmp_path, header_model):
    """In Pipe mode the test data is a stream, not files under the path: evaluate would say only
    that there is no such directory."""
    test = tmp_path / "test"
    processing_config(tmp_path, test, "FullyReplicated", ["algo-1"], mode="Pipe")
    result = run_evaluate(
        "--model", str(header_model), "--test", str(test), "--output", str(tmp_path / "out"), base=tmp_path
    )
    assert result.returncode == 1
    assert message(tmp_path) == (
        f"ProcessingInput 'test' ({test}, --test) is in Pipe mode, a stream, but evaluate reads files: "
        "give the input s3_input_mode='File' (the default)"
    )


@pytest.mark.parametrize(
    ("args", "cause"),
    [
        (
            ("--header", "yes"),
            "evaluate: argument --header: invalid choice: 'yes' (choose from 'true', 'false'); usage: evaluate",
        ),
        (
            ("/opt/ml/processing/input/code/evaluate.py",),
            "evaluate: unrecognized arguments: /opt/ml/processing/input/code/evaluate.py (ScriptProcessor passes "
            "its code file to the command; evaluate takes none: run it with Processor(image_uri=..., "
            "entrypoint=['evaluate'], ...) and its flags as arguments); usage: evaluate",
        ),
    ],
    ids=["bad-choice", "script-processor-code"],
)
def test_a_bad_flag_is_the_processing_exit_message(tmp_path, args, cause):
    """argparse wrote its error to stderr only and exited 2 (evaluate's code for a bug of its
    own): the job's ExitMessage said nothing. ScriptProcessor(command=['evaluate']) appends its
    code file, which evaluate cannot take: the message says what to use instead."""
    result = run_evaluate(*args, base=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert message(tmp_path).startswith(cause), message(tmp_path)
    assert "Traceback" not in result.stderr


def test_a_content_type_evaluate_cannot_read_is_named_as_its_flag(tmp_path, header_model):
    """evaluate has no hyperparameters: the message said "the content_type hyperparameter"."""
    code, first = evaluate_on(
        tmp_path,
        header_model,
        {"t.csv": csv_bytes(TEST, target="deposit", header=True)},
        "--content-type",
        "application/json",
    )
    assert code == 1
    assert first.startswith(
        "evaluate's --content-type is 'application/json', which byoc cannot read (for one JSON object per "
        "line use application/jsonlines)"
    ), first
    assert "hyperparameter" not in first


def test_a_header_row_declared_by_the_content_type_is_read_as_header_true_reads_it(
    tmp_path, headerless_model
):
    """`--content-type 'text/csv;header=present'` is the user's word on the test files, as
    `--header true` is: it was refused for a model trained without a header row, "as the header
    hyperparameter (false) says", a setting evaluate does not have."""
    out = tmp_path / "out"
    result = run_evaluate(
        "--model", str(headerless_model), "--test",
        str(data_dir(tmp_path, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})),
        "--output", str(out), "--content-type", "text/csv;header=present", base=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "evaluation.json").read_text())
    assert sum(
        map(sum, map(dict.values, report["binary_classification_metrics"]["confusion_matrix"].values()))
    ) == len(TEST)


@pytest.mark.parametrize(
    ("args", "cause"),
    [
        (
            ["--content-type", "text/csv;header=present", "--header", "false"],
            "--content-type 'text/csv;header=present' declares header=present, but --header false says the "
            "test files do not start with a header row; pass one of the two, or make them agree",
        ),
        (
            ["--content-type", "text/csv;label_size=0"],
            "--content-type 'text/csv;label_size=0' says the test files hold no label column, but evaluate "
            "scores the predictions against the true labels: remove ';label_size=0' and put the labels in "
            "column 0 of every test file, as in training",
        ),
    ],
    ids=["header-contradicted", "no-label-column"],
)
def test_content_type_parameters_contradicting_evaluates_flags_name_the_flags(
    tmp_path, header_model, args, cause
):
    """Training's readers named "the header hyperparameter" and "the channel's ContentType", which
    a Processing job does not have."""
    code, first = evaluate_on(
        tmp_path, header_model, {"t.csv": csv_bytes(TEST, target="deposit", header=True)}, *args
    )
    assert code == 1
    assert first == cause, first


@pytest.fixture(scope="module")
def regression_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("regression-model")
    return trained(
        root,
        {"a.csv": csv_bytes(diabetes_frame().iloc[:300], target="target", header=True)},
        algorithm="random_forest",
    )


@pytest.mark.parametrize(
    ("column", "value", "cause"),
    [
        (
            "target",
            "inf",
            "test/t.csv, row 6, target column 'target': inf (infinity, or a number beyond float64's ±1.8e308) "
            "is too large for regression",
        ),
        ("bmi", "1e308", "test/t.csv, row 6, column 'bmi': 1e+308 is not a usable feature value"),
    ],
    ids=["infinite-target", "feature-beyond-float32"],
)
def test_a_number_out_of_range_is_the_datas_fault_named_by_file_and_row(
    tmp_path, regression_model, column, value, cause
):
    """Training refuses these by file, row and column; evaluate crashed ("a bug in byoc", exit 2)
    on an infinite target in scikit-learn's metric, and blamed the model for a feature value its
    predict cannot take."""
    test = diabetes_frame().iloc[300:320].astype(object).reset_index(drop=True)
    test.loc[5, column] = value
    code, first = evaluate_on(
        tmp_path, regression_model, {"t.csv": csv_bytes(test, target="target", header=True)}
    )
    assert code == 1
    assert first.startswith(cause), first


def test_a_truncated_model_archive_is_the_callers_to_fix(tmp_path, header_model):
    """Half a model.tar.gz (an interrupted copy): gzip's EOFError escaped as "a bug in byoc",
    exit 2."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in header_model.iterdir():
            tar.add(path, arcname=path.name)
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "model.tar.gz").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    test = data_dir(tmp_path, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    result = run_evaluate(
        "--model", str(packed), "--test", str(test), "--output", str(tmp_path / "out"), base=tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert message(tmp_path) == (
        f"{packed / 'model.tar.gz'}: cannot be unpacked (EOFError: Compressed file ended before the "
        "end-of-stream marker was reached); pass the model.tar.gz the training job wrote "
        "(estimator.model_data), whole"
    )
    assert not (tmp_path / "out").exists()


def test_a_model_archive_of_several_models_names_them_not_scores_the_first(tmp_path, header_model):
    """evaluate took the first model.json its unpacking held; it now finds the model by the rule
    serve uses (artifact.locate), which refuses to guess between folders."""
    packed = tmp_path / "packed"
    packed.mkdir()
    with tarfile.open(packed / "model.tar.gz", "w:gz") as tar:
        tar.add(header_model, arcname="first")
        tar.add(header_model, arcname="second")
    test = data_dir(tmp_path, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    result = run_evaluate(
        "--model", str(packed), "--test", str(test), "--output", str(tmp_path / "out"), base=tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    first = message(tmp_path)  # named in the archive, not in the directory it was unpacked into
    assert first.startswith(
        f"{packed / 'model.tar.gz'}: no model.json at its top but 2 folders holding one (first, second)"
    ), first
    assert not (tmp_path / "out").exists()


def packed_model(where: Path, model: Path, change: dict[str, bytes]) -> Path:
    """where/model.tar.gz holding ``model``'s files, some replaced by ``change``."""
    where.mkdir(parents=True, exist_ok=True)
    with tarfile.open(where / "model.tar.gz", "w:gz") as tar:
        for path in sorted(model.iterdir()):
            body = change.get(path.name, path.read_bytes())
            info = tarfile.TarInfo(path.name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return where / "model.tar.gz"


def test_a_model_joblib_linking_out_of_the_model_directory_is_refused_not_scored(tmp_path):
    """A model.joblib that is a symbolic link to another model's (model.json copied beside it) was
    scored as this model; the message's first line names the link and the fix, as serve's does."""
    other = save_constant_model(tmp_path / "other", 4.0)
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.json").write_bytes((other / "model.json").read_bytes())
    (model / "model.joblib").symlink_to(other / "model.joblib")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.csv").write_text("y,x\n4.0,2.0\n4.0,3.0\n")
    result = run_evaluate(
        "--model", str(model), "--test", str(tmp_path / "test"), "--output", str(tmp_path / "e"),
        "--header", "true", base=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    first = (tmp_path / "output" / "message").read_text().splitlines()[0]
    link, target = model / "model.joblib", (other / "model.joblib").resolve()
    assert first.startswith(f"{link} is a symbolic link to {target}, outside the model directory"), first
    assert "tar --dereference" in first, first
    assert not (tmp_path / "e" / "evaluation.json").exists()


@pytest.mark.parametrize(
    "change, said",
    [
        ({"model.joblib": b"cut short"}, ": model.joblib: sha256 "),
        ({"model.json": b"{not json"}, ": model.json: not readable JSON ("),
    ],
    ids=["model-joblib-cut-short", "model-json-unreadable"],
)
def test_a_bad_model_in_an_archive_is_named_in_the_archive_not_a_scratch_directory(
    tmp_path, header_model, change, said
):
    """A model.tar.gz whose model does not load was named by the temporary directory evaluate
    unpacked it into (/tmp/byoc-evaluate-x1y2/model.joblib: ...), a path gone when the Processing
    job's message is read and that names nothing the user gave."""
    archive = packed_model(tmp_path / "packed", header_model, change)
    code, first = evaluate_on(tmp_path, archive, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    assert code == 1
    assert first.startswith(f"{archive}{said}"), first
    assert "byoc-evaluate-" not in first, first


OUT_OF_MEMORY = "(_ for _ in ()).throw(MemoryError('Unable to allocate 9.31 GiB for an array'))"


@pytest.mark.parametrize(
    "patch, doing",
    [
        (
            f"from byoc import data\ndata.read_channel = lambda *args, **kwargs: {OUT_OF_MEMORY}\n",
            "reading the test data (",
        ),
        (
            f"from sklearn.pipeline import Pipeline\nPipeline.predict_proba = lambda *args, **kwargs: {OUT_OF_MEMORY}\n",
            "predicting the 100 rows of the test channel (",
        ),
    ],
    ids=["reading", "predicting"],
)
def test_memory_running_out_is_the_instance_size_not_a_bug_nor_the_model(
    tmp_path, header_model, patch, doing
):
    """A MemoryError while evaluate read a test set too large for the instance was "Internal
    error ... a bug in byoc" (exit 2), and one in predict_proba blamed the model ("the model cannot
    predict"); training calls both the instance's size (exit 1, out_of_memory, its fix)."""
    test = data_dir(tmp_path, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    out = tmp_path / "out"
    result = run_evaluate(
        "--model", str(header_model), "--test", str(test), "--output", str(out), base=tmp_path, patch=patch
    )
    assert result.returncode == 1, result.stdout + result.stderr
    first = message(tmp_path)
    assert first.startswith(f"Out of memory while {doing}"), first
    assert "(MemoryError: Unable to allocate 9.31 GiB for an array)" in first, first
    assert "of memory (" in first and "instance type with more memory" in first, first
    assert first.endswith("No evaluation.json was written."), first
    assert "Internal error" not in first and "cannot predict" not in first, first
    assert not (out / "evaluation.json").exists()


def test_a_model_whose_hooks_decide_its_predictions_is_refused_not_scored_without_them(
    tmp_path, header_model
):
    """The SDK's repacked model.tar.gz carries code/inference.py: a predict_fn there is what the
    endpoint answers with, which evaluate does not run, so scoring model.joblib would describe
    another model with nothing to show it.  An output_fn only encodes the answer: scored."""
    test = {"t.csv": csv_bytes(TEST, target="deposit", header=True)}
    for name, program, refused in (
        ("predicting", "def predict_fn(input_data, model):\n    return ['yes'] * len(input_data)\n", True),
        ("encoding", "def output_fn(prediction, accept):\n    return str(prediction)\n", False),
    ):
        shutil.copytree(header_model, tmp_path / name / "model")
        (tmp_path / name / "model" / "code").mkdir()
        (tmp_path / name / "model" / "code" / "inference.py").write_text(program)
        with tarfile.open(tmp_path / name / "model.tar.gz", "w:gz") as tar:  # as the SDK repacks it
            for entry in sorted((tmp_path / name / "model").iterdir()):
                tar.add(entry, arcname=entry.name)
        shutil.rmtree(tmp_path / name / "model")
        result = run_evaluate(
            "--model", str(tmp_path / name / "model.tar.gz"), "--test", str(data_dir(tmp_path / name, test)),
            "--output", str(tmp_path / name / "out"), base=tmp_path / name,
        )  # fmt: skip
        if not refused:
            assert result.returncode == 0, result.stdout + result.stderr
            assert (tmp_path / name / "out" / "evaluation.json").is_file()
            continue
        assert result.returncode == 1, result.stdout + result.stderr
        first = message(tmp_path / name)
        assert first == (
            f"code/inference.py in {tmp_path / name / 'model.tar.gz'} defines predict_fn: the endpoint "
            "predicts with it" + REFUSAL_ADVICE
        ), first
        assert not (tmp_path / name / "out").exists()


PREDICT_FN = "def predict_fn(input_data, model):\n    return ['yes'] * len(input_data)\n"
REFUSAL_ADVICE = (
    ", but evaluate scores model.joblib as byoc trained it without running your code, so evaluation.json "
    "would describe another model than the one deployed; score the training job's own artefact "
    "(estimator.model_data, which holds no code/) knowing your hooks are not in it, or score your hooks' "
    "answers from a processing script of your own"
)


def repacked(where: Path, model: Path, code: dict[str, str], model_folder: str = "") -> Path:
    """model.tar.gz holding ``model``'s files (under ``model_folder``, else at its top) and a
    top-level code/ holding ``code``: the SDK's repack, or a hand-made one with the model in a folder."""
    where.mkdir(parents=True)
    archive = where / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(model.iterdir()):
            tar.add(entry, arcname=f"{model_folder}/{entry.name}" if model_folder else entry.name)
        for name, text in code.items():
            data = text.encode()
            info = tarfile.TarInfo(f"code/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def evaluate_model(
    where: Path, model: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, str | None]:
    """evaluate run on ``model`` under ``where`` (its job root): the result and the message's first line."""
    where.mkdir(parents=True, exist_ok=True)
    test = data_dir(where, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    result = run_evaluate(
        "--model", str(model), "--test", str(test), "--output", str(where / "out"), base=where, env=env
    )
    shown = where / "output" / "message"
    return result, shown.read_text().splitlines()[0] if shown.is_file() else None


def refusal(where: Path, model: Path, env: dict[str, str] | None = None) -> str:
    """The first line of evaluate's message on ``model``, which it must refuse (exit 1, no report)."""
    result, first = evaluate_model(where, model, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert first is not None and not (where / "out").exists(), first
    return first


# Each binds predict_fn where serve's getattr finds it; evaluate read only top-level defs, so it
# scored model.joblib (exit 0) for an endpoint that answers with the user's predict_fn.
HOOK_BINDINGS = {
    "import": {"inference.py": "from helper import predict_fn\n", "helper.py": PREDICT_FN},
    "import-as": {"inference.py": "import helper\nfrom helper import answer as predict_fn\n",
                  "helper.py": PREDICT_FN.replace("predict_fn", "answer")},
    "lambda": {"inference.py": "predict_fn = lambda input_data, model: ['yes'] * len(input_data)\n"},
    "annotated": {"inference.py": "from typing import Any\npredict_fn: Any = lambda data, model: ['yes'] * len(data)\n"},
    "if": {"inference.py": "if True:\n" + "".join("    " + line + "\n" for line in PREDICT_FN.splitlines())},
    "try": {"inference.py": "try:\n    import no_such_module\nexcept ImportError:\n"
            + "".join("    " + line + "\n" for line in PREDICT_FN.splitlines())},
    "global": {"inference.py": "def setup():\n    global predict_fn\n    predict_fn = lambda d, m: ['yes'] * len(d)\n\nsetup()\n"},
}  # fmt: skip


@pytest.mark.parametrize("code", HOOK_BINDINGS.values(), ids=HOOK_BINDINGS.keys())
def test_a_hook_bound_otherwise_than_by_a_top_level_def_is_refused(tmp_path, header_model, code):
    model = repacked(tmp_path / "model", header_model, code)
    first = refusal(tmp_path, model)
    # (a helper.py defining predict_fn is named after it: SAGEMAKER_PROGRAM=helper.py would serve it)
    assert first.startswith(f"code/inference.py in {model} defines predict_fn: the endpoint predicts with it")
    assert first.endswith(REFUSAL_ADVICE), first


def test_a_star_import_is_refused_as_possibly_binding_a_hook(tmp_path, header_model):
    """What ``from helper import *`` binds is known only by running it."""
    code = {"inference.py": "from helper import *\n", "helper.py": "ANSWER = 'yes'\n"}
    model = repacked(tmp_path / "model", header_model, code)
    first = refusal(tmp_path, model)
    assert first == (
        f"code/inference.py in {model} may define model_fn, input_fn, predict_fn, transform_fn by from helper import * (line 1), "
        "which evaluate cannot see without running it (bind each hook by name: a def, an assignment or an import "
        "of that name): the endpoint may predict with it" + REFUSAL_ADVICE
    ), first


@pytest.mark.parametrize(
    "source,said",
    [
        ("exec(open('helper.py').read())\n", "exec(...) (line 1)"),
        (
            "def setup():\n    globals()['predict_fn'] = lambda d, m: ['yes'] * len(d)\n\nsetup()\n",
            "globals() (line 2)",
        ),
    ],
    ids=["exec", "globals"],
)
def test_a_hook_bound_by_running_code_is_refused_as_possibly_bound(tmp_path, header_model, source, said):
    """A predict_fn that exec or a write to globals() binds is served by the endpoint like any other:
    evaluate scored model.joblib instead, a report for another model than the one served."""
    model = repacked(tmp_path / "model", header_model, {"inference.py": source})
    first = refusal(tmp_path, model)
    assert first.startswith(
        f"code/inference.py in {model} may define model_fn, input_fn, predict_fn, transform_fn by {said}, "
    ), first
    assert first.endswith("the endpoint may predict with it" + REFUSAL_ADVICE), first


def test_a_program_under_another_name_is_refused(tmp_path, header_model):
    """The SDK repacks entry_point='custom.py' into code/custom.py and sets SAGEMAKER_PROGRAM on the
    endpoint, not on the Processing job: evaluate looked only for code/inference.py."""
    model = repacked(tmp_path / "model", header_model, {"custom.py": PREDICT_FN, "util.py": "X = 1\n"})
    first = refusal(tmp_path / "guessed", model)
    assert first == (
        f"code/custom.py in {model} defines predict_fn: an endpoint with SAGEMAKER_PROGRAM=custom.py predicts with it "
        "(if the endpoint's SAGEMAKER_PROGRAM names another program, set it so in evaluate's environment: "
        "Processor(env={'SAGEMAKER_PROGRAM': ...}))" + REFUSAL_ADVICE
    ), first
    assert "util.py" not in first
    # the job's environment naming it, as the endpoint's does
    first = refusal(tmp_path / "named", model, env={"SAGEMAKER_PROGRAM": "custom"})
    assert first == (
        f"code/custom.py in {model} defines predict_fn: an endpoint with SAGEMAKER_PROGRAM=custom predicts with it"
        + REFUSAL_ADVICE
    ), first
    # naming a program without hooks: the endpoint with that environment serves byoc's model
    result, first = evaluate_model(tmp_path / "other", model, env={"SAGEMAKER_PROGRAM": "util.py"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "other" / "out" / "evaluation.json").is_file()


def test_a_model_whose_input_fn_makes_the_rows_is_refused_not_scored_on_byocs_reading(tmp_path, header_model):
    """An input_fn makes the rows the endpoint predicts on (here it fills every balance with 0):
    evaluate scored model.joblib on the test files as byoc reads them, a metric for inputs the
    endpoint never sees, with nothing to show it."""
    code = {
        "inference.py": "import io\n\nimport pandas as pd\n\n"
        "def input_fn(request_body, content_type):\n"
        "    frame = pd.read_csv(io.StringIO(request_body))\n"
        "    return frame.assign(balance=0)\n"
    }
    model = repacked(tmp_path / "model", header_model, code)
    assert refusal(tmp_path, model) == (
        f"code/inference.py in {model} defines input_fn: the endpoint predicts with it (input_fn makes the "
        "rows the endpoint predicts on from each request, which may differ from the test data as evaluate "
        "reads it)" + REFUSAL_ADVICE
    )


def test_code_beside_a_model_folder_is_found_where_serve_finds_it(tmp_path, header_model):
    """model.tar.gz holding code/ and model/: serve loads the hooks from the top's code/, evaluate
    looked in model/code/."""
    model = repacked(tmp_path / "model", header_model, {"inference.py": PREDICT_FN}, model_folder="model")
    assert refusal(tmp_path, model) == (
        f"code/inference.py in {model} defines predict_fn: the endpoint predicts with it" + REFUSAL_ADVICE
    )


def test_code_that_binds_no_predicting_hook_is_scored(tmp_path, header_model):
    """Helpers, an encoding hook imported, a name bound only inside a function or class: scored."""
    code = {
        "inference.py": "from helper import output_fn\n\ndef f():\n    predict_fn = 1\n\n"
        "class A:\n    model_fn = None\n\n[predict_fn for predict_fn in ()]\n",
        "helper.py": "def output_fn(prediction, accept):\n    return str(prediction)\n",
    }
    result, first = evaluate_model(tmp_path, repacked(tmp_path / "model", header_model, code))
    assert result.returncode == 0, (first, result.stdout + result.stderr)
    assert (tmp_path / "out" / "evaluation.json").is_file()


def test_a_model_a_users_own_script_saved_is_named_as_such(tmp_path):
    """A script-mode job's artefact (model.joblib, no model.json): the fix is not "pass the
    training job's artefact", which the caller did."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.joblib").write_bytes(b"not byoc's")
    code, first = evaluate_on(tmp_path, model, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    assert code == 1
    assert first == (
        f"{model}: holds model.joblib but no model.json or model.tar.gz: evaluate scores models byoc's "
        "built-in algorithms trained; score a model your own training script saved from a processing "
        "script of your own (ScriptProcessor(command=['python3']))"
    )


def test_byoc_model_files_without_model_json_are_not_called_a_users_own_script(tmp_path):
    """model.compiled.npz is byoc's alone: beside model.joblib without model.json, model.json was
    lost in a re-pack, and "score a model your own training script saved" was the wrong fix."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.joblib").write_bytes(b"\x80")
    (model / "model.compiled.npz").write_bytes(b"PK\x03\x04")
    code, first = evaluate_on(tmp_path, model, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    assert code == 1
    assert first.startswith(
        f"{model}: holds model.compiled.npz, model.joblib but no model.json or model.tar.gz: byoc's model "
        "files without the model.json train writes beside them: re-pack the whole model directory train wrote"
    ), first


def test_a_model_archive_a_users_own_script_saved_is_named_as_such(tmp_path):
    """The same artefact as the training job's model.tar.gz (estimator.model_data, what a Pipelines
    step passes): it said only that the archive "was not written by byoc's train", with no fix."""
    archive = tmp_path / "packed" / "model.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        for name, body in (
            ("model.joblib", b"not byoc's"),
            ("code/inference.py", b"def model_fn(d):\n    pass\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    code, first = evaluate_on(tmp_path, archive, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    assert code == 1
    assert first == (
        f"{archive}: holds code, model.joblib but no model.json: evaluate scores models byoc's built-in "
        "algorithms trained; score a model your own training script saved from a processing script of "
        "your own (ScriptProcessor(command=['python3']))"
    )


# Runs the real entry point, with one change made once byoc.evaluation is imported (so after the
# entry point's first steps): its model's predict_proba says so and hangs.
STUCK_IN_PREDICT = """\
import importlib.util, runpy, sys, time

class Stuck:
    def find_spec(self, name, path=None, target=None):
        if name != "byoc.evaluation":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            from sklearn.pipeline import Pipeline

            def stuck(*args, **kwargs):
                print("predicting now", flush=True)
                time.sleep(600)

            Pipeline.predict_proba = stuck

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Stuck())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_stopped_processing_job_says_what_evaluate_was_doing_and_leaves_nothing(tmp_path, header_model):
    """StopProcessingJob sends SIGTERM: evaluate died of it with no ExitMessage, its scratch
    directory left behind.  Now the message says what it was doing and that no evaluation.json
    was written, exit 143 (128 + SIGTERM), as a stopped training job's does."""
    test = data_dir(tmp_path, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})
    out, scratch = tmp_path / "out", tmp_path / "tmp"
    scratch.mkdir()
    entry = ["--model", str(header_model), "--test", str(test), "--output", str(out)]
    process = subprocess.Popen(
        [sys.executable, "-c", STUCK_IN_PREDICT, str(CONTAINER / "evaluate"), *entry],
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_environ({"TMPDIR": str(scratch)}, SAGEMAKER_BASE_DIR=str(tmp_path)),
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.strip() == "predicting now":
                break
        else:
            raise AssertionError("".join(lines))
        process.terminate()
        output = process.communicate(timeout=60)[0]
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 143, "".join(lines) + output
    first = message(tmp_path)
    assert first.startswith(
        "Processing job stopped by SIGTERM (StopProcessingJob) while predicting the 100 rows of the test channel"
    ), first
    assert "no evaluation.json was written" in first, first
    assert not (out / "evaluation.json").exists()
    assert list(scratch.iterdir()) == []  # the unpacking directory went with the job


def test_a_model_whose_compiled_file_is_missing_or_replaced_is_scored_with_scikit_learn(
    tmp_path, header_model
):
    """evaluate scores with the scikit-learn pipeline in model.joblib and never reads the compiled
    form, yet refused a model whose model.compiled.npz was missing or replaced ("fails its check")
    that a server with BYOC_COMPILED_INFERENCE=off serves: it loads it as that server does, with a
    WARNING, and reports the pipeline's numbers, the intact model's."""
    assert (header_model / "model.compiled.npz").is_file()
    reports, logs = {}, {}
    for case in ("intact", "missing", "replaced"):
        model = tmp_path / case / "model"
        shutil.copytree(header_model, model)
        if case == "missing":
            (model / "model.compiled.npz").unlink()
        elif case == "replaced":
            (model / "model.compiled.npz").write_bytes(b"PK\x03\x04 another model's")
        out = tmp_path / case / "out"
        result = run_evaluate(
            "--model", str(model), "--test", str(data_dir(tmp_path / case, {"t.csv": csv_bytes(TEST, target="deposit", header=True)})),
            "--output", str(out), base=tmp_path / case,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        reports[case] = json.loads((out / "evaluation.json").read_text())
        logs[case] = result.stdout + result.stderr
    assert reports["missing"] == reports["intact"]
    assert reports["replaced"] == reports["intact"]
    assert "model.compiled.npz" not in logs["intact"]
    for case in ("missing", "replaced"):
        assert "WARNING" in logs[case] and "model.compiled.npz" in logs[case], logs[case]


def test_two_test_columns_naming_one_model_column_are_not_merged(tmp_path, header_model):
    """``age`` and ``AGE`` in one test header both name the model's ``age`` by the endpoint's rule:
    neither is renamed (the two would become one name) and the message names the extra ``AGE``;
    renamed anyway, the file was refused for an ``age`` column it holds once."""
    data = TEST.assign(AGE=999)
    code, first = evaluate_on(
        tmp_path, header_model, {"t.csv": csv_bytes(data, target="deposit", header=True)}
    )
    assert code == 1
    assert first.startswith("test/t.csv has column(s) AGE that the model does not"), first
