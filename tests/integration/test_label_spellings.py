"""Class labels that are numbers written otherwise than numbers are ("01", "002" beside "1"),
trained by the real ``container/train``, scored by ``container/evaluate`` and served by the real
``container/serve``: the classes are the labels as written, and so are the answers.

Read as numbers, "01" and "1" were one class and "002" was 2: the model answered 1 or 2, a
plausible answer to a question nobody asked, with no message (byoc.problem.keep_spellings).
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import serving_models

from support import (
    CONTAINER,
    REPO,
    clean_environ,
    csv_bytes,
    jsonlines_bytes,
    make_ml_root,
    parquet_bytes,
    run_train,
)

CODES = ("01", "1", "002")


def coded(n: int, seed: int) -> pd.DataFrame:
    """A code decided by ``x`` alone: below -0.5 "01", below 0.5 "1", else "002"."""
    x = np.random.default_rng(seed).uniform(-1.5, 1.5, n)
    x = x[np.abs(np.abs(x) - 0.5) > 0.05]  # no row at a boundary: every tree learns the same cuts
    code = np.select([x < -0.5, x < 0.5], [CODES[0], CODES[1]], CODES[2])
    return pd.DataFrame({"code": code, "x": x})


FORMATS = {
    "csv": ("text/csv", "train.csv", lambda frame: csv_bytes(frame, target="code"), {}),
    "jsonlines": (
        "application/jsonlines",
        "train.jsonl",
        jsonlines_bytes,  # the codes as JSON strings
        {"target": "code"},
    ),
}


def _evaluated(root, tmp_path, *flags: str) -> subprocess.CompletedProcess:
    """The real evaluate of ``root``'s model on ``tmp_path``/test, its report in ``tmp_path``/evaluation."""
    return subprocess.run(
        [sys.executable, str(CONTAINER / "evaluate"), "--model", str(root / "model")]
        + ["--test", str(tmp_path / "test"), "--output", str(tmp_path / "evaluation"), *flags],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_environ(SAGEMAKER_BASE_DIR=str(tmp_path)),
    )


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_codes_are_trained_scored_and_served_as_written(tmp_path, fmt):
    content_type, name, encode, hyperparameters = FORMATS[fmt]
    train, held = coded(150, seed=0), coded(60, seed=1)
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {name: encode(train)}, "validation": {name: encode(held)}},
        hyperparameters={"algorithm": "decision_tree", **hyperparameters},
        content_types={"train": content_type, "validation": content_type},
    )
    result = run_train(root)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["classes"] == ["002", "01", "1"]
    assert meta["problem_type"] == "multiclass_classification"
    assert "keeps its 3 labels as text, as written ('002', '01', '1')" in output
    assert "'01' and '1' would both be the number 1" in output
    # the validation channel's "01" is the class "01", not the number 1 spelled "1"
    assert "validation:accuracy=1.000000" in output

    if fmt == "csv":  # evaluate reads the test labels as training read the validation channel's
        (tmp_path / "test").mkdir()
        (tmp_path / "test" / name).write_bytes(encode(held))
        scored = _evaluated(root, tmp_path)
        assert scored.returncode == 0, scored.stdout + scored.stderr
        report = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
        assert report["multiclass_classification_metrics"]["accuracy"]["value"] == 1.0

    server = serving_models.start(root, workers=1)
    try:
        response = server.invoke(
            json.dumps({"instances": [[-1.0], [0.0], [1.0]]}),
            "application/json",
            "application/json",
            attributes="output=predicted_label,labels",
        )
        assert response.status_code == 200, response.text
        answers = response.json()["predictions"]
        assert [a["predicted_label"] for a in answers] == ["01", "1", "002"]
        assert all(a["labels"] == ["002", "01", "1"] for a in answers)
        response = server.invoke("-1.0\n0.0\n1.0\n", "text/csv", "text/csv")
        assert response.status_code == 200, response.text
        assert response.text == "01\n1\n002\n"
    finally:
        server.stop()


def _served(root, rows: str) -> tuple[list, str]:
    """JSON labels and the CSV body the real server answers for ``rows`` (one value of x each)."""
    server = serving_models.start(root, workers=1)
    try:
        response = server.invoke(rows, "text/csv", "application/json")
        assert response.status_code == 200, response.text
        as_csv = server.invoke(rows, "text/csv", "text/csv")
        assert as_csv.status_code == 200, as_csv.text
        return [a["predicted_label"] for a in response.json()["predictions"]], as_csv.text
    finally:
        server.stop()


def test_integer_labels_from_an_integer_and_a_float_file_are_one_set_of_classes(tmp_path):
    """pandas writes an integer label column holding a missing value as floats (1.0): beside a
    file written without one (1), the labels were four classes '0', '0.0', '1', '1.0', and the
    server answered "1.0" for some rows and "1" for others of one class."""
    x = np.random.default_rng(0).uniform(-1, 1, 120)
    whole = pd.DataFrame({"y": (x[:60] > 0).astype(int), "x": x[:60]})
    floats = pd.DataFrame({"y": (x[60:] > 0).astype(float), "x": x[60:]})
    floats.loc[floats.index[3], "y"] = np.nan
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {"a.csv": whole.to_csv(index=False), "b.csv": floats.to_csv(index=False)}},
        hyperparameters={"target": "y", "algorithm": "decision_tree"},
        content_types={"train": "text/csv"},
    )
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["classes"] == [0, 1] and meta["problem_type"] == "binary_classification"
    labels, as_csv = _served(root, "-0.5\n0.5\n")
    assert labels == [0, 1] and as_csv == "0\n1\n"


@pytest.mark.parametrize(
    "dtype,low,high",
    [(np.int64, 2**53, 2**53 + 1), (np.uint64, 2**63 + 1, 2**63 + 3)],
)
def test_integer_ids_past_float_precision_are_distinct_classes(tmp_path, dtype, low, high):
    """Parquet int64 ids 2**53 and 2**53 + 1 were compared as floats: one class, refused as a
    single value (or, beside other ids, one answer for both). A uint64 column of ids past int64
    stopped training with an internal error (an OverflowError typing the labels). The classes are
    the ids, served exactly in JSON, CSV and npy (an array of the ids' own type: NumPy chose a
    float64 for Python ints past int64, which rounded them)."""
    x = np.random.default_rng(1).uniform(-1, 1, 90)
    x = x[np.abs(np.abs(x) - 0.3) > 0.05]  # no row at a boundary: every tree learns the same cuts
    ids = np.select([x < -0.3, x < 0.3], [low, high], 7).astype(dtype)
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {"a.parquet": parquet_bytes(pd.DataFrame({"id": ids, "x": x}))}},
        hyperparameters={"target": "id", "algorithm": "decision_tree"},
        content_types={"train": "application/x-parquet"},
    )
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["classes"] == [7, low, high]
    labels, as_csv = _served(root, "-0.9\n0.0\n0.9\n")
    assert labels == [low, high, 7] and as_csv == f"{low}\n{high}\n7\n"
    server = serving_models.start(root, workers=1)
    try:
        response = server.invoke("-0.9\n0.0\n0.9\n", "text/csv", "application/x-npy")
        assert response.status_code == 200, response.text
        array = np.load(io.BytesIO(response.content), allow_pickle=False)
        assert array.dtype == dtype and array.tolist() == [low, high, 7]
    finally:
        server.stop()


@pytest.mark.parametrize(
    "low,high,extra,classes",
    [
        (2**63 + 1, 2**63 + 3, "", ["7", str(2**63 + 1), str(2**63 + 3)]),
        (2**53 + 1, 2**53 + 3, ', "z": 1e20', [7, 2**53 + 1, 2**53 + 3]),
    ],
    ids=["past int64", "int64 beside a double past 2**53"],
)
def test_json_lines_integer_ids_past_float_precision_are_distinct_classes(
    tmp_path, low, high, extra, classes
):
    """JSON Lines ids past int64 (2**63 + 1, 2**63 + 3) were read by pyarrow as doubles, both
    2**63: one class, trained with exit 0 and served as an id nobody wrote. Read exactly, they
    are integers past float precision, kept as written (as CSV keeps them), in the validation
    channel too. Ids within int64 stay integers, also in a file another column (``z``) sends to
    JSON's own parser."""

    def ids(seed: int) -> bytes:
        x = np.random.default_rng(seed).uniform(-1, 1, 90)
        x = x[np.abs(np.abs(x) - 0.3) > 0.05]  # no row at a boundary: every tree learns the same cuts
        label = [low if v < -0.3 else high if v < 0.3 else 7 for v in x]  # Python ints: exact
        return "".join(
            f'{{"id": {i}, "x": {float(v)!r}{extra}}}\n' for i, v in zip(label, x, strict=True)
        ).encode()

    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {"a.jsonl": ids(1)}, "validation": {"v.jsonl": ids(2)}},
        hyperparameters={"target": "id", "algorithm": "decision_tree"},
        content_types={"train": "application/jsonlines", "validation": "application/jsonlines"},
    )
    result = run_train(root)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["classes"] == classes
    assert "validation:accuracy=1.000000" in output
    labels, as_csv = _served(
        root, "".join(f"{x}{',1e20' if extra else ''}\n" for x in ("-0.9", "0.0", "0.9"))
    )
    assert labels == [classes[1], classes[2], classes[0]]
    assert as_csv == f"{low}\n{high}\n7\n"


LOW, HIGH = 2**53, 2**53 + 1  # one float, two ids


def _ids(seed: int, *, missing: bool = False) -> list[tuple[int | None, float]]:
    """Ids 7, LOW and HIGH decided by x alone (as Python ints: exact), and with ``missing`` a
    last row whose label is missing."""
    x = np.random.default_rng(seed).uniform(-1, 1, 90)
    x = x[np.abs(np.abs(x) - 0.3) > 0.05]  # no row at a boundary: every tree learns the same cuts
    rows: list[tuple[int | None, float]] = [
        (LOW if v < -0.3 else HIGH if v < 0.3 else 7, float(v)) for v in x
    ]
    return rows + [(None, 0.5)] if missing else rows


def _trained_ids(
    tmp_path, channels, content_types, classes: tuple = (7, LOW, HIGH), **hyperparameters
) -> tuple[Path, str]:
    """The real train of a decision tree on ``channels``: exit 0, ``classes`` (7, LOW and HIGH),
    every validation row right; the ML root and the output."""
    root = make_ml_root(
        tmp_path / "ml",
        channels=channels,
        hyperparameters={"algorithm": "decision_tree", **hyperparameters},
        content_types=content_types,
    )
    result = run_train(root)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert json.loads((root / "model" / "model.json").read_text())["classes"] == list(classes)
    assert "validation:accuracy=1.000000" in output
    return root, output


def test_integer_ids_past_float_precision_written_as_text_are_scored_as_distinct(tmp_path):
    """Classes 2**53 and 2**53 + 1 trained from JSON Lines numbers (exact integers): a validation
    channel or test file in CSV writes them as text, which was read through float64, both
    2**53, so every row of 2**53 + 1 was scored against 2**53: a validation accuracy and an
    evaluate report that looked plausible, for a model that is exact. They are the ids written."""
    low, high = LOW, HIGH
    held = _ids(2)
    as_csv = "id,x\n" + "".join(f"{i},{v!r}\n" for i, v in held)
    root, _ = _trained_ids(
        tmp_path,
        {
            "train": {"a.jsonl": "".join(f'{{"id": {i}, "x": {v!r}}}\n' for i, v in _ids(1))},
            "validation": {"v.csv": as_csv},
        },
        {"train": "application/jsonlines", "validation": "text/csv"},
        target="id",
    )

    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.csv").write_text(as_csv)
    scored = _evaluated(root, tmp_path, "--content-type", "text/csv", "--header", "true")
    assert scored.returncode == 0, scored.stdout + scored.stderr
    report = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    metrics = report["multiclass_classification_metrics"]
    assert metrics["accuracy"]["value"] == 1.0
    count = {i: sum(1 for label, _ in held if label == i) for i in (7, low, high)}
    assert metrics["confusion_matrix"][str(high)] == {"7": 0, str(low): 0, str(high): count[high]}
    assert metrics["confusion_matrix"][str(low)] == {"7": 0, str(low): count[low], str(high): 0}


@pytest.mark.parametrize("form", ["jsonlines", "parquet"])
def test_integer_ids_past_float_precision_beside_a_missing_label_stay_distinct(tmp_path, form):
    """Ids 2**53 and 2**53 + 1 as JSON numbers or Parquet int64, in a label column that also
    holds a null: the reader made the column float64, both ids 2**53. Training's classes merged
    (rows of 2**53 + 1 learned as 2**53, exit 0), and a validation channel or evaluate test file
    scored every row of 2**53 + 1 against 2**53: accuracy 0.68 for a model that is exact. The row
    whose label is missing is dropped, and each id is the integer written."""

    def written(rows: list[tuple[int | None, float]]) -> bytes:
        if form == "jsonlines":
            return "".join(json.dumps({"id": i, "x": v}) + "\n" for i, v in rows).encode()
        table = pa.table({"id": pa.array([i for i, _ in rows], pa.int64()), "x": [v for _, v in rows]})
        sink = io.BytesIO()
        pq.write_table(table, sink)
        return sink.getvalue()

    content_type, name = {
        "jsonlines": ("application/jsonlines", "d.jsonl"),
        "parquet": ("application/x-parquet", "d.parquet"),
    }[form]
    root, output = _trained_ids(
        tmp_path,
        {
            "train": {name: written(_ids(1, missing=True))},
            "validation": {name: written(_ids(2, missing=True))},
        },
        {"train": content_type, "validation": content_type},
        target="id",
    )
    assert "validation: dropped 1 of" in output

    (tmp_path / "test").mkdir()
    (tmp_path / "test" / name).write_bytes(written(_ids(3, missing=True)))
    scored = _evaluated(root, tmp_path, "--content-type", content_type)
    assert scored.returncode == 0, scored.stdout + scored.stderr
    metrics = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    assert metrics["multiclass_classification_metrics"]["accuracy"]["value"] == 1.0


def test_the_label_of_records_in_another_key_order_is_kept_exact(tmp_path):
    """The default target, train's first key ``id``: a validation channel writing each record's
    keys in another order (``x`` first) has ``x`` as its first column, so the column kept exact
    was ``x``, and its ids past 2**53 beside a null label were scored as one (accuracy 0.68).
    The label is found by train's name for it."""
    _trained_ids(
        tmp_path,
        {
            "train": {
                "t.jsonl": "".join(json.dumps({"id": i, "x": v}) + "\n" for i, v in _ids(1, missing=True))
            },
            "validation": {
                "v.jsonl": "".join(json.dumps({"x": v, "id": i}) + "\n" for i, v in _ids(2, missing=True))
            },
        },
        {"train": "application/jsonlines", "validation": "application/jsonlines"},
    )


def _csv_trained(tmp_path, label, x, problem_type: str):
    """An ML root whose decision tree the real ``container/train`` fitted on CSV columns y (``label``,
    the text written) and x, as ``problem_type``."""
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {"a.csv": pd.DataFrame({"y": label, "x": x}).to_csv(index=False)}},
        hyperparameters={"target": "y", "algorithm": "decision_tree", "problem_type": problem_type},
        content_types={"train": "text/csv"},
    )
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_whole_labels_past_int64_are_answered_in_npy(tmp_path):
    """Labels 1e20 and 2e20 are the whole numbers they spell (classes 10**20 and 2 * 10**20 in
    model.json); an application/x-npy answer made an object array of them, which np.save
    refuses: a 500 for every request. float64 holds them exactly."""
    x = np.random.default_rng(2).uniform(-1, 1, 90)
    x = x[np.abs(np.abs(x) - 0.3) > 0.05]
    label = np.select([x < -0.3, x < 0.3], ["1e20", "2e20"], "3")
    root = _csv_trained(tmp_path, label, x, "multiclass_classification")
    assert json.loads((root / "model" / "model.json").read_text())["classes"] == [3, 10**20, 2 * 10**20]
    server = serving_models.start(root, workers=1)
    try:
        for output, expected in (("predicted_label", [1e20, 2e20, 3.0]), ("labels", [[3.0, 1e20, 2e20]] * 3)):
            response = server.invoke("-0.9\n0.0\n0.9\n", "text/csv", "application/x-npy", f"output={output}")
            assert response.status_code == 200, response.text
            array = np.load(io.BytesIO(response.content), allow_pickle=False)
            assert array.dtype == np.float64 and array.tolist() == expected
    finally:
        server.stop()


def test_zero_is_served_as_zero_whatever_the_first_row_wrote(tmp_path):
    """Labels "-0.0" (first row) and "0.0" beside "0.5" are one class: the server answered -0.0
    for every row of it."""
    x = np.random.default_rng(6).uniform(-1, 1, 60)
    x = x[np.abs(x) > 0.05]
    label = np.where(x < 0, "0.0", "0.5").astype(object)
    label[np.flatnonzero(x < 0)[0]] = "-0.0"  # the first row of the class
    root = _csv_trained(tmp_path, label, x, "binary_classification")
    labels, as_csv = _served(root, "-0.5\n0.5\n")
    assert json.dumps(labels) == "[0.0, 0.5]" and as_csv == "0.0\n0.5\n"


def _trained_by_sign(tmp_path, negative: str, positive: str):
    """The ML root and run of the real ``container/train`` on JSON Lines whose label ``y`` is
    ``negative`` for x < 0 and ``positive`` above (a decision tree)."""
    x = np.random.default_rng(4).uniform(-1, 1, 60)
    x = x[np.abs(x) > 0.05]
    lines = "".join(json.dumps({"y": negative if v < 0 else positive, "x": float(v)}) + "\n" for v in x)
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {"a.jsonl": lines}},
        hyperparameters={"target": "y", "algorithm": "decision_tree"},
        content_types={"train": "application/jsonlines"},
    )
    return root, run_train(root)


def _negative_or_positive(tmp_path, negative: str, positive: str):
    """A decision tree trained by the real ``container/train`` from JSON Lines (where any text is a
    label) whose class is ``negative`` for x < 0 and ``positive`` above, served by the real
    ``container/serve``; the server is the caller's to stop."""
    root, result = _trained_by_sign(tmp_path, negative, positive)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((root / "model" / "model.json").read_text())["classes"] == sorted([negative, positive])
    return serving_models.start(root, workers=1)


def test_a_label_holding_nul_fails_training_as_a_feature_value_does(tmp_path):
    """Classes "c\\x00" and "c" (JSON Lines "c\\u0000") were trained as two classes, and answered so
    in JSON (in npy, whose text arrays drop trailing NULs, a 406: tests/unit/test_codecs.py). NUL is
    in no text (byoc.wide_text.nul_cell): a label holding it is refused naming file, row and column,
    as a feature value holding it is, in training and at the endpoint alike."""
    root, result = _trained_by_sign(tmp_path, "c\x00", "c")
    assert result.returncode == 1, result.stdout + result.stderr
    failure = (root / "output" / "failure").read_text()
    assert re.match(r"train/a\.jsonl, row \d+, column 'y': holds a NUL character \(\\x00\)", failure), failure


def test_a_first_csv_answer_starting_with_a_byte_order_mark_keeps_it(tmp_path):
    """Classes "\\ufeffbom" and "bom": a CSV answer whose first label was the first one read back
    as "bom" (pandas, pyarrow and training's reader drop U+FEFF at a file's start)."""
    server = _negative_or_positive(tmp_path, "\ufeffbom", "bom")
    try:
        for output in ("predicted_label", "predicted_label,probability"):
            response = server.invoke("-0.5\n0.5\n", "text/csv", "text/csv", f"output={output}")
            assert response.status_code == 200, response.text
            read = pd.read_csv(io.BytesIO(response.content), header=None)
            assert read[0].tolist() == ["\ufeffbom", "bom"], response.content
    finally:
        server.stop()


BOOLEAN_FORMATS = {
    "jsonlines": ("application/jsonlines", "train.jsonl", jsonlines_bytes),  # "label": true
    "parquet": ("application/x-parquet", "train.parquet", parquet_bytes),  # a bool column
    "csv": ("text/csv", "train.csv", lambda frame: csv_bytes(frame, target="label", header=True)),  # True
}


@pytest.mark.parametrize("fmt", list(BOOLEAN_FORMATS))
def test_a_boolean_label_is_served_as_a_boolean(tmp_path, fmt):
    """A label column of JSON true/false (or a Parquet boolean) was answered as the strings
    "true"/"false" in JSON: ``if prediction["predicted_label"]:`` held for every "false". The
    classes stay the categories true/false (as values spells every boolean); model.json records
    that the column held booleans, and the server answers booleans in JSON and JSON Lines, and
    true/false, as CSV training reads them, in CSV. A model trained before that record serves
    as it did."""
    content_type, name, encode = BOOLEAN_FORMATS[fmt]
    x = np.random.default_rng(0).uniform(-1, 1, 120)
    x = x[np.abs(x) > 0.05]
    train = pd.DataFrame({"label": x > 0, "x": x})
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {name: encode(train)}},
        hyperparameters={"algorithm": "decision_tree", "target": "label"},
        content_types={"train": content_type},
    )
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    meta_path = root / "model" / "model.json"
    meta = json.loads(meta_path.read_text())
    assert meta["classes"] == ["false", "true"]
    assert meta["target"] == {"name": "label", "index": 0, "type": "boolean"}

    rows = json.dumps({"instances": [[0.5], [-0.5]]})
    server = serving_models.start(root, workers=1)
    try:
        response = server.invoke(
            rows, "application/json", "application/json", "output=predicted_label,labels"
        )
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == [
            {"predicted_label": True, "labels": [False, True]},
            {"predicted_label": False, "labels": [False, True]},
        ]
        lines = server.invoke(rows, "application/json", "application/jsonlines")
        assert lines.status_code == 200, lines.text
        assert lines.text == '{"predicted_label":true}\n{"predicted_label":false}\n'
        as_csv = server.invoke("0.5\n-0.5\n", "text/csv", "text/csv", "output=predicted_label,probability")
        assert as_csv.status_code == 200, as_csv.text
        assert [line.split(",")[0] for line in as_csv.text.splitlines()] == ["true", "false"]
    finally:
        server.stop()

    del meta["target"]["type"]  # as train wrote model.json before it recorded the label's type
    meta_path.write_text(json.dumps(meta))
    labels, as_csv_text = _served(root, "0.5\n-0.5\n")
    assert labels == ["true", "false"] and as_csv_text == "true\nfalse\n"


def test_a_class_spelled_as_a_missing_word_is_that_class_in_validation_and_test(tmp_path):
    """Classes None/fraud: a validation channel or test file whose labels are all "None" was typed
    from its own cells (a column of missing words: numbers, all missing), so training failed with
    "target column ... has no values" and evaluate likewise; "None" is the class here."""
    x = np.linspace(0.0, 10.0, 120).round(2)
    train = pd.DataFrame({"y": np.where(x > 7, "fraud", "None"), "x": x})
    held = train[train["y"] == "None"].iloc[::3].reset_index(drop=True)
    root = make_ml_root(
        tmp_path / "ml",
        channels={
            "train": {"a.csv": csv_bytes(train, target="y")},
            "validation": {"v.csv": csv_bytes(held, target="y")},
        },
        hyperparameters={"algorithm": "decision_tree", "max_depth": 2},
        content_types={"train": "text/csv", "validation": "text/csv"},
    )
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads((root / "model" / "model.json").read_text())["classes"] == ["None", "fraud"]
    assert "validation:accuracy=1.000000" in result.stdout

    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.csv").write_bytes(csv_bytes(held, target="y"))
    scored = _evaluated(root, tmp_path)
    assert scored.returncode == 0, scored.stdout + scored.stderr
    report = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    matrix = report["binary_classification_metrics"]["confusion_matrix"]
    assert matrix == {"None": {"None": len(held), "fraud": 0}, "fraud": {"None": 0, "fraud": 0}}


def test_json_lines_ids_past_float_precision_written_with_a_fraction_are_distinct_classes(tmp_path):
    """Ids 2**53 and 2**53 + 1 written as JSON numbers with '.0' (``9007199254740993.0``): JSON's
    parser read both as the float 2**53, so they were one class, trained and validated with exit
    0 and nothing said. The label keeps the text written, as an integer's is kept: two classes."""

    def written(seed: int) -> str:
        return "".join(f'{{"id": {i}.0, "x": {v!r}}}\n' for i, v in _ids(seed))

    root, output = _trained_ids(
        tmp_path,
        {"train": {"a.jsonl": written(1)}, "validation": {"v.jsonl": written(2)}},
        {"train": "application/jsonlines", "validation": "application/jsonlines"},
        classes=("7", f"{LOW}.0", f"{HIGH}.0"),
        target="id",
    )
    assert f"'{LOW}.0' and '{HIGH}.0' would both be the number {float(LOW)!r}" in output, output
    assert "past 2**53" not in output
    labels, _ = _served(root, "-0.9\n0.0\n0.9\n")
    assert labels == [f"{LOW}.0", f"{HIGH}.0", "7"]


def test_labels_past_float_precision_read_as_floats_are_named_in_the_log(tmp_path):
    """Ids past 2**53 held in a Parquet double were rounded before byoc saw them (2**53 + 1 is the
    double 2**53): a validation channel or evaluate test file scored them against the class 2**53
    with exit 0 and nothing said. What was written is gone, so the log names the first such
    label's file and row, and the fix; ids written as JSON integers are not named."""
    held = pd.DataFrame({"id": [float(i) for i, _ in _ids(2)], "x": [v for _, v in _ids(2)]})
    root = make_ml_root(
        tmp_path / "ml",
        channels={
            "train": {"a.jsonl": "".join(f'{{"id": {i}, "x": {v!r}}}\n' for i, v in _ids(1))},
            "validation": {"v.parquet": parquet_bytes(held)},
        },
        hyperparameters={"algorithm": "decision_tree", "target": "id"},
        content_types={"train": "application/jsonlines", "validation": "application/x-parquet"},
    )
    result = run_train(root)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert json.loads((root / "model" / "model.json").read_text())["classes"] == [7, LOW, HIGH]
    first = next(n for n, (i, _) in enumerate(_ids(2)) if i != 7)
    named = (
        f"v.parquet, row {first + 1}, target 'id': the label {float(LOW)!r} is a floating-point number "
        f"past 2**53 ({sum(1 for i, _ in _ids(2) if i != 7)} such labels in all)"
    )
    assert f"validation: validation/{named}" in output, output
    assert "write such labels as integers (a JSON integer without '.0' or exponent" in output
    assert output.count("past 2**53") == 1, output  # train's JSON integers are exact

    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "v.parquet").write_bytes(parquet_bytes(held))
    scored = _evaluated(root, tmp_path, "--content-type", "application/x-parquet")
    said = scored.stdout + scored.stderr
    assert scored.returncode == 0, said
    assert f"test: test/{named}" in said, said  # and accuracy 0.68: the file merged the ids


def test_whole_number_spellings_of_one_id_past_float_precision_are_one_class(tmp_path):
    """Ids past 2**53 written as JSON integers in one file and with '.0' in another (two writers of
    one id): the labels were kept as written, so ``9007199254740993`` and ``9007199254740993.0``
    were two classes of one id, rows of the same x learned as either (train accuracy 0.75, exit 0)
    and served as whichever. Where labels are numbers, ``1`` and ``1.0`` are one class; so are
    these, the id's digits, and a validation record writing it with '.0' is scored as that class."""

    def written(seed: int, fraction: str) -> str:
        return "".join(f'{{"id": {i}{fraction}, "x": {v!r}}}\n' for i, v in _ids(seed))

    root, _ = _trained_ids(
        tmp_path,
        {
            "train": {"a.jsonl": written(1, ""), "b.jsonl": written(3, ".0")},
            "validation": {"v.jsonl": written(2, ".0")},
        },
        {"train": "application/jsonlines", "validation": "application/jsonlines"},
        classes=("7", str(LOW), str(HIGH)),
        target="id",
    )
    labels, as_csv = _served(root, "-0.9\n0.0\n0.9\n")
    assert labels == [str(LOW), str(HIGH), "7"] and as_csv == f"{LOW}\n{HIGH}\n7\n"


def test_whole_number_spellings_beside_codes_are_one_class(tmp_path):
    """Labels kept as written for a code (``01``) beside ``1`` in one file and ``1.0`` in another
    (pandas' integer column with a missing value): ``1`` and ``1.0`` were two classes, the rows of
    one x split between them (train accuracy 0.83, exit 0). They are the class ``1``, and so is a
    validation label ``1.0`` or a test file's JSON number 1.0, as wherever labels are numbers."""
    frame = coded(150, seed=0)
    floats = coded(150, seed=2).replace({"code": {"1": "1.0"}})
    held = coded(60, seed=1).replace({"code": {"1": "1.0"}})
    root = make_ml_root(
        tmp_path / "ml",
        channels={
            "train": {"a.csv": csv_bytes(frame, target="code"), "b.csv": csv_bytes(floats, target="code")},
            "validation": {"v.csv": csv_bytes(held, target="code")},
        },
        hyperparameters={"algorithm": "decision_tree"},
    )
    result = run_train(root)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert json.loads((root / "model" / "model.json").read_text())["classes"] == ["002", "01", "1"]
    assert "train:accuracy=1.000000" in output and "validation:accuracy=1.000000" in output

    (tmp_path / "test").mkdir()
    test = held.assign(code=[float(c) if c == "1.0" else c for c in held["code"]])
    (tmp_path / "test" / "t.jsonl").write_bytes(jsonlines_bytes(test))  # 1.0 a JSON number
    scored = _evaluated(root, tmp_path, "--content-type", "application/jsonlines")
    assert scored.returncode == 0, scored.stdout + scored.stderr
    report = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    assert report["multiclass_classification_metrics"]["accuracy"]["value"] == 1.0


@pytest.mark.parametrize(
    "width,low,high,classes",
    [(20, LOW, HIGH, [7, LOW, HIGH]), (38, 2**63 + 1, 2**63 + 3, ["7", str(2**63 + 1), str(2**63 + 3)])],
    ids=["within int64", "past int64"],
)
def test_whole_decimal_ids_are_classes_exactly(tmp_path, width, low, high, classes):
    """A Parquet label column of whole decimals (``decimal128(20, 0)``: a NUMERIC id as Spark,
    Athena or Redshift write it) was read as float64, as decimal features are: ids 2**53 and
    2**53 + 1 were one class (2**63 + 1 and 2**63 + 3 too), trained, validated and evaluated with
    exit 0, and the log blamed the file for holding doubles it never held. The classes are the
    ids (past int64 their digits, as JSON Lines keeps them), in every channel and evaluate."""
    import decimal

    def ids(seed: int, *, missing: bool = False) -> bytes:
        rows = _ids(seed, missing=missing)
        labels = [None if i is None else decimal.Decimal({LOW: low, HIGH: high}.get(i, i)) for i, _ in rows]
        table = pa.table({"id": pa.array(labels, pa.decimal128(width, 0)), "x": [v for _, v in rows]})
        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue()

    root, output = _trained_ids(
        tmp_path,
        {"train": {"a.parquet": ids(1)}, "validation": {"v.parquet": ids(2, missing=True)}},
        {"train": "application/x-parquet", "validation": "application/x-parquet"},
        classes=tuple(classes),
        target="id",
    )
    assert "past 2**53" not in output, output
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.parquet").write_bytes(ids(2, missing=True))
    scored = _evaluated(root, tmp_path, "--content-type", "application/x-parquet")
    assert scored.returncode == 0, scored.stdout + scored.stderr
    report = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    assert report["multiclass_classification_metrics"]["accuracy"]["value"] == 1.0
    labels, _ = _served(root, "-0.9\n0.0\n0.9\n")
    assert labels == [classes[1], classes[2], classes[0]]


@pytest.mark.parametrize(
    "labels,classes",
    [
        (["0.1", "0.25", "5"], [0.1, 0.25, 5.0]),
        (
            ["12345678901234567.01", "12345678901234567.02", "5"],
            ["12345678901234567.01", "12345678901234567.02", "5"],
        ),
    ],
    ids=["fraction", "past float precision"],
)
def test_decimal_labels_with_a_fraction_are_the_numbers_written(tmp_path, labels, classes):
    """A Parquet label column of decimals with a fraction (``decimal128(38, 20)``, a NUMERIC(38, 20) as
    Spark, Athena or Redshift write it) was cast to float64 by Arrow, which is not correctly rounded at
    that scale: the class 0.1 was trained, evaluated and answered as 0.09999999999999999, and the ids
    12345678901234567.01 and .02 were one class, 12345678901234568, with no word. The labels are read
    as CSV reads the same digits: the numbers they spell, or their text when the numbers would merge."""
    import decimal

    def written(seed: int) -> bytes:
        rows = _ids(seed)
        spelled = {LOW: labels[0], HIGH: labels[1], 7: labels[2]}
        table = pa.table(
            {
                "y": pa.array([decimal.Decimal(spelled[i]) for i, _ in rows], pa.decimal128(38, 20)),
                "x": [v for _, v in rows],
            }
        )
        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue()

    order = sorted(classes)
    root, _ = _trained_ids(
        tmp_path,
        {"train": {"a.parquet": written(1)}, "validation": {"v.parquet": written(2)}},
        {"train": "application/x-parquet", "validation": "application/x-parquet"},
        classes=tuple(order),
        target="y",
        problem_type="multiclass_classification",
    )
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.parquet").write_bytes(written(3))
    scored = _evaluated(root, tmp_path, "--content-type", "application/x-parquet")
    assert scored.returncode == 0, scored.stdout + scored.stderr
    report = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    section = report["multiclass_classification_metrics"]
    assert section["accuracy"]["value"] == 1.0
    assert list(section["confusion_matrix"]) == [str(c) for c in order]
    served, as_csv = _served(root, "-0.9\n0.0\n0.9\n")
    assert served == classes
    assert as_csv == "".join(f"{c}\n" for c in classes)
