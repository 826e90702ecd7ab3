"""The real server (``container/serve`` under gunicorn, real sockets) on models trained by the real
``container/train``: every content type and Accept, output fields, and every error status.

Process-level behaviour (signals, workers, start-up failures, port) is in test_serve_process.py.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
import serving_models as sm

import support
from byoc import artifact

CUSTOM = "X-Amzn-SageMaker-Custom-Attributes"


@pytest.fixture(scope="module")
def binary():
    server = sm.start(sm.trained_root("binary"), workers=2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def multiclass():
    server = sm.start(
        sm.trained_root("multiclass"),
        workers=1,
        env={"SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probability"},
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def regression():
    server = sm.start(sm.trained_root("regression"), workers=1)
    yield server
    server.stop()


def expected(kind: str, rows: pd.DataFrame) -> list:
    """What the model predicts in-process for ``rows``: labels in original form, or values."""
    model = artifact.load(sm.trained_root(kind) / "model")
    X = rows[model.feature_names].copy()
    for feature in model.features:
        if feature.kind == "categorical":
            X[feature.name] = X[feature.name].astype(object)
    prediction = model.estimator.predict(X)
    if model.is_classifier:
        return [model.classes[int(i)] for i in prediction]
    return [float(v) for v in prediction]


def expected_proba(kind: str, rows: pd.DataFrame) -> np.ndarray:
    model = artifact.load(sm.trained_root(kind) / "model")
    X = rows[model.feature_names].copy()
    for feature in model.features:
        if feature.kind == "categorical":
            X[feature.name] = X[feature.name].astype(object)
    return model.estimator.predict_proba(X)


def csv_body(rows: pd.DataFrame, header: bool = False) -> str:
    return rows.to_csv(index=False, header=header)


def records(rows: pd.DataFrame) -> list[dict]:
    return json.loads(rows.to_json(orient="records"))


def json_rows(rows: pd.DataFrame) -> list[list]:
    return json.loads(rows.to_json(orient="values"))


def labels_of(response) -> list:
    assert response.status_code == 200, response.text
    return [p["predicted_label"] for p in response.json()["predictions"]]


def assert_error(response, status: int, code: str, *fragments: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code, body
    assert "Traceback" not in body["message"]
    for fragment in fragments:
        assert fragment in body["message"], body
    assert body["request_id"] == response.headers["X-Request-Id"]
    return body


# -- routes ----------------------------------------------------------------------------------
def test_ping_is_200_with_an_empty_body(binary):
    response = binary.get("/ping")
    assert response.status_code == 200
    assert response.content == b""


def test_execution_parameters_describe_batch_settings(binary):
    response = binary.get("/execution-parameters")
    assert response.status_code == 200
    assert response.json() == {
        "MaxConcurrentTransforms": 2,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 6,
    }


# -- decoding --------------------------------------------------------------------------------
def test_headerless_csv_with_text_and_missing_values_predicts_original_labels(binary):
    rows = sm.features("binary").iloc[:40]
    response = binary.invoke(csv_body(rows), "text/csv", "application/json")
    got = labels_of(response)
    assert got == expected("binary", rows)
    assert set(got) <= {"yes", "no"}
    assert rows.isna().any().any(), "the sample must include missing values"


def test_csv_header_row_in_any_order_is_accepted(binary):
    rows = sm.features("binary").iloc[:25]
    shuffled = rows[["contact", "balance", "job", "age"]]
    response = binary.invoke(csv_body(shuffled, header=True), "text/csv; charset=utf-8", "application/json")
    assert labels_of(response) == expected("binary", rows)


@pytest.mark.parametrize("case", ["one row", "one row, other order", "gzip", "row longer than a slice"])
def test_a_csv_header_and_a_row_that_the_server_slices_apart_is_that_row(binary, case):
    """The server cuts a CSV body into slices at newlines: a header over a last row without a
    final newline ("\\n".join(lines)), or over a row longer than a slice (4 MiB), was a first
    slice of the header alone, refused as "the CSV body holds a header but no rows"."""
    rows = sm.features("binary").iloc[:1].reset_index(drop=True)
    order = ["contact", "balance", "job", "age"] if case == "one row, other order" else list(rows.columns)
    answered = rows.copy()
    if case == "row longer than a slice":
        rows.loc[0, "job"], answered.loc[0, "job"] = "j" * (5 << 20), "a job no model has seen"
    body = csv_body(rows[order], header=True).rstrip("\n").encode()
    headers = {}
    if case == "gzip":
        body, headers = support.gzip_bytes(body), {"Content-Encoding": "gzip"}
    response = binary.invoke(body, "text/csv", "application/json", headers=headers)
    assert labels_of(response) == expected("binary", answered)


def test_a_csv_header_without_rows_is_refused(binary):
    for body in ("age,balance,job,contact", "age,balance,job,contact\n"):
        assert_error(binary.invoke(body, "text/csv"), 400, "empty_body", "a header but no rows")


def test_csv_charset_and_crlf_line_endings_are_harmless(binary):
    rows = sm.features("binary").iloc[:5]
    body = csv_body(rows).replace("\n", "\r\n")
    response = binary.invoke(body, "text/csv; charset=UTF-8", "text/csv")
    assert response.text.splitlines() == expected("binary", rows)


LONG_CELL = "b" * (1 << 20)  # 1 MiB: a category no model knows, far past the csv module's default limit


@pytest.mark.parametrize("position", ["only record", "first record", "later record", "after a header"])
def test_a_long_quoted_csv_cell_is_an_unknown_category_anywhere(binary, position):
    """A quoted 1 MiB cell in a categorical feature is decoded (an unseen category, answered as
    such) wherever it is in the body: in the first record it was a 400, the csv module's
    process-wide field limit (128 KiB) being lower than the body's (byoc.csvfields)."""
    rows = sm.features("binary").iloc[:4].reset_index(drop=True)
    at = {"only record": 0, "first record": 0, "later record": 2, "after a header": 0}[position]
    if position == "only record":
        rows = rows.iloc[:1]
    long_rows, unseen = rows.copy(), rows.copy()
    long_rows.loc[at, "job"], unseen.loc[at, "job"] = LONG_CELL, "a job no model has seen"
    body = long_rows.to_csv(index=False, header=position == "after a header", quoting=csv.QUOTE_NONNUMERIC)
    assert f'"{LONG_CELL}"' in body
    response = binary.invoke(body, "text/csv", "application/json")
    assert response.status_code == 200, response.text[:300]
    assert labels_of(response) == expected("binary", unseen)


JSON_SHAPES = {
    "instances-rows": lambda r: {"instances": json_rows(r)},
    "instances-records": lambda r: {"instances": records(r)},
    "inputs-rows": lambda r: {"inputs": json_rows(r)},
    "inputs-records": lambda r: {"inputs": records(r)},
    "inputs-columns": lambda r: {"inputs": {c: json.loads(r[c].to_json(orient="values")) for c in r.columns}},
    "dataframe_split": lambda r: {"dataframe_split": json.loads(r.to_json(orient="split", index=False))},
    "dataframe_records": lambda r: {"dataframe_records": records(r)},
    "bare-rows": json_rows,
    "bare-records": records,
    "builtin-features": lambda r: {"instances": [{"features": row} for row in json_rows(r)]},
}


@pytest.mark.parametrize("shape", sorted(JSON_SHAPES))
def test_every_json_shape_gives_the_same_predictions(binary, shape):
    rows = sm.features("binary").iloc[:12]
    response = binary.invoke(json.dumps(JSON_SHAPES[shape](rows)), "application/json")
    assert labels_of(response) == expected("binary", rows)


@pytest.mark.parametrize("body", ["single-record", "single-row", "single-features"])
def test_a_single_json_record_or_row(binary, body):
    """``{"features": [...]}`` alone is a row, as inside "instances" and in JSON Lines (it was a 400
    naming an unknown column 'features')."""
    rows = sm.features("binary").iloc[3:4]
    payload = {
        "single-record": records(rows)[0],
        "single-row": json_rows(rows)[0],
        "single-features": {"features": json_rows(rows)[0]},
    }[body]
    response = binary.invoke(json.dumps(payload), "application/json")
    assert labels_of(response) == expected("binary", rows)


def test_missing_content_type_means_json(binary):
    rows = sm.features("binary").iloc[:3]
    response = binary.invoke(json.dumps({"instances": records(rows)}), content_type=None)
    assert labels_of(response) == expected("binary", rows)
    assert response.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("content_type", [None, ""], ids=["absent", "empty"])
@pytest.mark.parametrize("body", ["csv", "jsonlines"])
def test_a_body_that_is_not_json_without_a_content_type_is_told_it_was_read_as_json(
    binary, content_type, body
):
    """A batch transform or invoke_endpoint call without ContentType sends CSV rows with no
    Content-Type: the 400 said only "the JSON body is not valid JSON (line 1, column 3: Extra data)"
    about a body its sender knew to be CSV, naming neither the missing header nor the fix."""
    rows = sm.features("binary").iloc[:3]
    data = support.csv_bytes(rows, target=None) if body == "csv" else support.jsonlines_bytes(rows)
    response = binary.invoke(data, content_type=content_type)
    assert_error(
        response, 400, "undecodable_body", "not valid JSON", "no Content-Type", "read as application/json"
    )
    explicit = binary.invoke(data, content_type="application/json")
    assert "no Content-Type" not in assert_error(explicit, 400, "undecodable_body")["message"]


def _with_bad_balance(rows: pd.DataFrame, row: int) -> pd.DataFrame:
    bad = rows.astype({"balance": object})
    bad.iloc[row - 1, list(bad.columns).index("balance")] = "plenty"
    return bad


def test_a_csv_error_names_the_line_where_it_is_not_the_rows_number(binary):
    """Rows are numbered after a CSV header: "row 737" of a body with one is on line 738, and the
    message named the row alone, which its reader took for a line.  Now the line is named too
    wherever it differs (a header line, a quoted value over two lines before the row)."""
    rows = _with_bad_balance(sm.features("binary").iloc[:40], 37)
    plain = binary.invoke(csv_body(rows), "text/csv")
    assert assert_error(plain, 400, "not_a_number")["message"].startswith("row 37, column 'balance'")
    headed = binary.invoke(csv_body(rows, header=True), "text/csv")
    message = assert_error(headed, 400, "not_a_number")["message"]
    assert message.startswith("row 37 (line 38 of the body), column 'balance'"), message
    single = binary.invoke(csv_body(rows.iloc[36:37], header=True), "text/csv")
    assert assert_error(single, 400, "not_a_number")["message"].startswith("row 1 (line 2 of the body),")
    spanning = 'age,balance,job,contact\n40,1000,"adm\nin",cellular\n41,2,admin\n'
    short = assert_error(binary.invoke(spanning, "text/csv"), 400, "wrong_column_count")["message"]
    assert short.startswith("row 2 (line 4 of the body) has 3 values"), short
    lines = "\n".join(json.dumps(row) for row in json_rows(rows)) + "\n"  # a row per line: no line to add
    jsonl = binary.invoke(lines, "application/jsonlines")
    assert assert_error(jsonl, 400, "not_a_number")["message"].startswith("row 37, column 'balance'")


@pytest.mark.parametrize(
    ("content_type", "text"),
    [
        ("text/csv", "40,1000,admin,cellular\n41,2,services,telephone\n"),
        ("application/json", '{"instances": [[40, 1000, "admin", "cellular"]]}'),
        ("application/jsonlines", '[40, 1000, "admin", "cellular"]\n'),
    ],
    ids=["csv", "json", "jsonlines"],
)
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be-bom", "utf-16-le"])
def test_a_utf16_body_is_named_as_utf16(binary, content_type, text, encoding):
    """Windows tools write UTF-16 with a byte order mark: the 400 said "not UTF-8 (byte 0: invalid
    start byte)" (JSON Lines: "line 2 ... truncated data", its first line read as UTF-16), and a
    CSV without the mark was read as values full of NULs ("'4\\x000\\x00' is not a number")."""
    data = b"\xfe\xff" + text.encode("utf-16-be") if encoding == "utf-16-be-bom" else text.encode(encoding)
    mark = (
        " (every other byte is NUL)"
        if encoding == "utf-16-le"
        else " (its first bytes are a byte order mark)"
    )
    assert_error(
        binary.invoke(data, content_type),
        400,
        "undecodable_body",
        f"the {content_type} body is UTF-16 text{mark}, not UTF-8",
        "send it encoded as UTF-8",
    )


@pytest.mark.parametrize("header", [True, False], ids=["header", "no_header"])
def test_a_utf8_byte_order_mark_is_read_past_as_training_reads_it(binary, header):
    """Excel's 'CSV UTF-8' starts with a UTF-8 byte order mark: the first column's name (or
    value) is read without it, as training's readers read it (byoc.wide_text.UTF8_BOM_TEXT)."""
    rows = sm.features("binary").iloc[:5]
    sent = rows[["balance", "age", "job", "contact"]] if header else rows  # a header in another order
    bodies = [
        ("text/csv", csv_body(sent, header=header)),
        ("application/json", json.dumps({"instances": records(rows)})),
        ("application/jsonlines", "\n".join(json.dumps(record) for record in records(rows))),
    ]
    for content_type, body in bodies:
        response = binary.invoke("\ufeff" + body, content_type, accept="application/json")
        assert labels_of(response) == expected("binary", rows), content_type


@pytest.mark.parametrize(
    ("body", "said"),
    [("null", "null"), ("true", "a boolean (true)"), ("3", "a number"), ('"age"', "a string")],
)
def test_a_json_body_of_one_value_is_named_in_jsons_words(binary, body, said):
    """A JSON body of `null` was told "the JSON body is a NoneType" (true: "a bool"): Python's
    words for what the client wrote in JSON's."""
    assert_error(
        binary.invoke(body, "application/json"), 400, "bad_shape", f"the JSON body is {said}; send an object"
    )
    assert_error(
        binary.invoke(body + "\n", "application/jsonlines"),
        400,
        "bad_row",
        f"line 1 of the JSON Lines body holds {said}, not a record: each line of JSON Lines holds one",
    )
    wrapped = binary.invoke('{"instances": ' + body + "}", "application/json")
    assert_error(wrapped, 400, "bad_shape", f'"instances" must hold a list of rows or records, got {said}')


COLUMNS_SHAPE = "every column as a list of the same length, one value per row"


@pytest.mark.parametrize(
    ("columns", "code", "said"),
    [
        ({"age": [41, 30], "balance": 5}, "bad_row", "column 'balance' holds a number, not a list of values"),
        ({"age": 41, "balance": [5, 6]}, "bad_row", "column 'age' holds a number, not a list of values"),
        ({"age": [41, 30], "balance": {"a": 1}}, "bad_row", "column 'balance' holds an object, not a list"),
        (
            {"age": [41, 30], "balance": [5, 6, 7]},
            "ragged_columns",
            "column 'balance' holds 3 values where column 'age' holds 2 values",
        ),
    ],
)
def test_column_oriented_inputs_of_another_shape_name_the_column(binary, columns, code, said):
    """``{"inputs": {"age": [1, 2], "job": 5}}`` was read as one record and refused for the list in
    'age', the column written right ("row 1, column 'age' (numeric): a list is not a number");
    columns of different lengths were "columns have different lengths [2, 3]", naming none."""
    body = {"inputs": {**columns, "job": ["admin", "services"], "contact": ["telephone", "cellular"]}}
    response = binary.invoke(json.dumps(body), "application/json")
    assert_error(response, 400, code, said, COLUMNS_SHAPE, 'or send rows or records in "instances"')


def test_a_dataframe_split_row_of_another_length_says_how_many_it_holds(binary):
    """Was '"dataframe_split" row 2 must be a list of 4 values', not saying what it held."""
    rows = json.loads(sm.features("binary").iloc[:2].to_json(orient="split", index=False))
    rows["data"][1] = rows["data"][1][:3]
    response = binary.invoke(json.dumps({"dataframe_split": rows}), "application/json")
    assert_error(
        response,
        400,
        "wrong_column_count",
        '"dataframe_split" row 2 holds 3 values where "columns" names 4; each row of "data" must be a list of 4',
    )


@pytest.mark.parametrize("layout", ["rows", "records"])
def test_a_row_of_null_is_named_in_jsons_words(binary, layout):
    """``{"instances": [[...a valid row...], null]}`` was refused with "row 2 is a NoneType"
    (a record's list: "a JSON list"), Python's words for what the client wrote in JSON."""
    row = (json_rows if layout == "rows" else records)(sm.features("binary").iloc[:1])[0]
    kind = "a list of 4 feature values" if layout == "rows" else "an object of feature: value"
    for body in ({"instances": [row, None]}, [row, None], {"dataframe_records": [row, None]}):
        if layout == "rows" and "dataframe_records" in body:
            continue
        response = binary.invoke(json.dumps(body), "application/json")
        assert_error(response, 400, "bad_row", f"row 2 is null; each row must be {kind}")
        assert "NoneType" not in response.text


@pytest.mark.parametrize("layout", ["rows", "records"])
def test_jsonlines_rows_or_records(binary, layout):
    rows = sm.features("binary").iloc[:15]
    items = json_rows(rows) if layout == "rows" else records(rows)
    body = "\n".join(json.dumps(item) for item in items) + "\n"
    response = binary.invoke(body, "application/jsonlines")
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/jsonlines")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["predicted_label"] for line in lines] == expected("binary", rows)


def test_npy_2d_and_1d_arrays(multiclass):
    rows = sm.features("multiclass").iloc[::10]
    buf = io.BytesIO()
    np.save(buf, rows.to_numpy(dtype=np.float64))
    response = multiclass.invoke(
        buf.getvalue(), "application/x-npy", "application/json", attributes="output=predicted_label"
    )
    assert labels_of(response) == expected("multiclass", rows)
    one = io.BytesIO()
    np.save(one, rows.to_numpy(dtype=np.float32)[0])
    response = multiclass.invoke(
        one.getvalue(), "application/x-npy", "application/json", attributes="output=predicted_label"
    )
    assert labels_of(response) == expected("multiclass", rows)[:1]


def test_npy_with_pickled_objects_is_refused(multiclass):
    buf = io.BytesIO()
    np.save(buf, np.array([[1.0, "x", None, 2]], dtype=object), allow_pickle=True)
    response = multiclass.invoke(buf.getvalue(), "application/x-npy")
    assert_error(response, 400, "undecodable_body", "never unpickled")


def test_parquet_with_named_columns_in_any_order(binary):
    rows = sm.features("binary").iloc[:30]
    buf = io.BytesIO()
    rows[["job", "age", "contact", "balance"]].to_parquet(buf, index=False)
    response = binary.invoke(buf.getvalue(), "application/x-parquet")
    assert labels_of(response) == expected("binary", rows)  # JSON: parquet is not an output format


RESPELT = {"age": "AGE", "balance": " Balance", "job": "Job ", "contact": "CONTACT"}  # case, spaces
NAMED_BODIES = {
    "text/csv": lambda r: csv_body(r, header=True),
    "application/json records": lambda r: json.dumps({"instances": records(r)}),
    "application/json columns": lambda r: json.dumps(
        {"inputs": {c: json.loads(r[c].to_json(orient="values")) for c in r.columns}}
    ),
    "application/json dataframe_split": lambda r: json.dumps(
        {"dataframe_split": json.loads(r.to_json(orient="split", index=False))}
    ),
    "application/jsonlines": lambda r: "".join(json.dumps(record) + "\n" for record in records(r)),
    "application/x-parquet": lambda r: support.parquet_bytes(r),
}


@pytest.mark.parametrize("kind", sorted(NAMED_BODIES))
def test_column_names_are_matched_by_one_rule_in_every_content_type(binary, kind):
    """Names differing from the features' by case or surrounding spaces (AGE, ' Balance') name
    them in a CSV header, JSON keys, dataframe_split columns, JSON Lines and Parquet alike: Parquet
    and JSON refused them (unknown_columns) where a CSV header took them."""
    rows = sm.features("binary").iloc[:20]
    respelt = rows[["contact", "balance", "job", "age"]].rename(columns=RESPELT)
    response = binary.invoke(NAMED_BODIES[kind](respelt), kind.split()[0], "application/json")
    assert response.status_code == 200, response.text
    assert labels_of(response) == expected("binary", rows)
    twice = rows[["age", "balance", "job", "contact"]].set_axis(["age", "balance", "job", "AGE"], axis=1)
    assert_error(
        binary.invoke(NAMED_BODIES[kind](twice), kind.split()[0]),
        400,
        "duplicate_columns",
        "'age'",
        "'contact'",
    )


# -- encoding --------------------------------------------------------------------------------
def decode_response(response) -> list:
    kind = response.headers["Content-Type"].split(";")[0]
    if kind == "text/csv":
        return [row[0] for row in csv.reader(io.StringIO(response.text))]
    if kind == "application/json":
        return [p["predicted_label"] for p in response.json()["predictions"]]
    if kind == "application/jsonlines":
        return [json.loads(line)["predicted_label"] for line in response.text.splitlines()]
    if kind == "application/x-npy":
        return np.load(io.BytesIO(response.content), allow_pickle=False).tolist()
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "accept,media_type",
    [
        ("text/csv", "text/csv"),
        ("application/json", "application/json"),
        ("application/jsonlines", "application/jsonlines"),
        ("application/x-npy", "application/x-npy"),
        ("text/csv; charset=utf-8", "text/csv"),
        ("application/json;q=0.2, application/jsonlines;q=0.9", "application/jsonlines"),
        ("image/png, application/x-npy;q=0.5", "application/x-npy"),
        ("*/*", "text/csv"),
        (None, "text/csv"),
        ("application/*", "application/json"),
    ],
)
def test_accept_chooses_the_encoding(binary, accept, media_type):
    rows = sm.features("binary").iloc[:7]
    response = binary.invoke(csv_body(rows), "text/csv", accept)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].split(";")[0] == media_type
    assert decode_response(response) == expected("binary", rows)


def test_regression_returns_values_in_every_encoding(regression):
    rows = sm.features("regression").iloc[:9]
    want = expected("regression", rows)
    for accept in ("text/csv", "application/json", "application/jsonlines", "application/x-npy"):
        got = decode_response(regression.invoke(csv_body(rows), "text/csv", accept))
        assert [float(v) for v in got] == pytest.approx(want), accept


# -- output fields ---------------------------------------------------------------------------
def test_all_output_fields_per_request_in_json(binary):
    rows = sm.features("binary").iloc[:10]
    response = binary.invoke(
        csv_body(rows),
        "text/csv",
        "application/json",
        attributes="output=predicted_label,probability,probabilities,labels",
    )
    assert response.headers[CUSTOM] == "output=predicted_label,probability,probabilities,labels"
    predictions = response.json()["predictions"]
    proba = expected_proba("binary", rows)
    for p, want_label, want in zip(predictions, expected("binary", rows), proba, strict=True):
        assert list(p) == ["predicted_label", "probability", "probabilities", "labels"]
        assert p["labels"] == ["no", "yes"]
        assert p["probabilities"] == pytest.approx(want.tolist())
        assert p["probability"] == pytest.approx(max(want))
        assert p["predicted_label"] == want_label


def test_output_fields_in_csv_keep_the_requested_column_order(binary):
    rows = sm.features("binary").iloc[:6]
    response = binary.invoke(
        csv_body(rows), "text/csv", "text/csv", attributes="output=probabilities,predicted_label,labels"
    )
    parsed = list(csv.reader(io.StringIO(response.text)))
    assert [row[1] for row in parsed] == expected("binary", rows)
    for row, want in zip(parsed, expected_proba("binary", rows), strict=True):
        assert json.loads(row[0]) == pytest.approx(want.tolist())
        assert json.loads(row[2]) == ["no", "yes"]


def test_environment_chooses_default_fields_and_a_request_can_override(multiclass):
    rows = sm.features("multiclass").iloc[::25]
    response = multiclass.invoke(csv_body(rows), "text/csv", "application/jsonlines")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [list(line) for line in lines] == [["predicted_label", "probability"]] * len(rows)
    assert [line["predicted_label"] for line in lines] == expected("multiclass", rows)
    assert [line["probability"] for line in lines] == pytest.approx(
        expected_proba("multiclass", rows).max(axis=1).tolist()
    )
    override = multiclass.invoke(
        csv_body(rows), "text/csv", "application/x-npy", attributes="output=probabilities"
    )
    array = np.load(io.BytesIO(override.content), allow_pickle=False)
    assert array.shape == (len(rows), 3)
    assert array == pytest.approx(expected_proba("multiclass", rows))


REGRESSOR_RETURNS = (
    "not available for this model: it is a regressor (its predicted_label is the predicted value; no "
    "classes, no probabilities), which returns predicted_label only; use predicted_label"
)


@pytest.mark.parametrize("field", ["probability", "probabilities", "labels"])
def test_classifier_fields_on_a_regressor_are_a_400_saying_it_is_one(regression, field):
    """The 400 hedged: 'not available for this model (a regressor, or a classifier without
    predict_proba)', though the server knows which the model is."""
    rows = sm.features("regression").iloc[:2]
    response = regression.invoke(csv_body(rows), "text/csv", attributes=f"output=predicted_label,{field}")
    body = assert_error(response, 400, "bad_output_fields")
    assert body["message"] == f"X-Amzn-SageMaker-Custom-Attributes output=: {field!r} {REGRESSOR_RETURNS}"


def test_unknown_output_field_is_a_400(binary):
    response = binary.invoke("40,100,admin,cellular\n", "text/csv", attributes="output=score")
    assert_error(response, 400, "bad_output_fields", "'score'", "predicted_label")


def test_output_given_twice_is_a_400_not_the_last_one_answered(binary):
    """It was answered with the last ``output=`` alone (``probability``), the first dropped."""
    rows = sm.features("binary").iloc[:3]
    response = binary.invoke(csv_body(rows), "text/csv", attributes="output=labels;output=probability")
    assert_error(response, 400, "bad_output_fields", "output= 2 times", "output=predicted_label,probability")
    response = binary.invoke(csv_body(rows), "text/csv", attributes="output=labels,probability")
    assert response.headers["X-Amzn-SageMaker-Custom-Attributes"] == "output=labels,probability"
    lines = response.text.splitlines()
    assert len(lines) == 3 and all(line.startswith('"[""no"",""yes""]",') for line in lines), lines


def test_npy_cannot_carry_several_fields(binary):
    response = binary.invoke(
        "40,100,admin,cellular\n",
        "text/csv",
        "application/x-npy",
        attributes="output=predicted_label,probability",
    )
    assert_error(response, 406, "not_acceptable", "one output field")


def test_text_labels_come_back_as_npy_unicode_without_pickles(binary):
    rows = sm.features("binary").iloc[:4]
    response = binary.invoke(csv_body(rows), "text/csv", "application/x-npy")
    array = np.load(io.BytesIO(response.content), allow_pickle=False)
    assert array.dtype.kind == "U"
    assert array.tolist() == expected("binary", rows)


# -- client errors ---------------------------------------------------------------------------
ERRORS = [
    (
        "wrong number of columns",
        "40,100,admin\n",
        "text/csv",
        "wrong_column_count",
        ["row 1", "3 values", "4 features", "'age'"],
    ),
    ("label column included", "yes,40,100,admin,cellular\n", "text/csv", "wrong_column_count", ["drop it"]),
    ("ragged second row", "40,100,admin,cellular\n41,100\n", "text/csv", "wrong_column_count", ["row 2"]),
    (
        "text in a numeric column",
        "40,100,admin,cellular\n41,lots,admin,cellular\n",
        "text/csv",
        "not_a_number",
        ["row 2", "'balance'", "'lots'"],
    ),
    ("infinity", '[[40, Infinity, "admin", "cellular"]]', "application/json", "out_of_range", ["'balance'"]),
    ("huge number", '[[1e999999, 1, "admin", "cellular"]]', "application/json", "out_of_range", ["'age'"]),
    (
        "nested value",
        '[{"age": [1], "balance": 1, "job": "admin", "contact": "cellular"}]',
        "application/json",
        "bad_value",
        ["'age'", "a list is not a number"],
    ),
    (
        "missing record key",
        '{"instances": [{"age": 40, "balance": 1, "job": "admin"}]}',
        "application/json",
        "missing_columns",
        ["'contact'"],
    ),
    (
        "unknown record key",
        '[{"age": 40, "balance": 1, "job": "a", "contact": "c", "deposit": "yes"}]',
        "application/json",
        "unknown_columns",
        ["'deposit'"],
    ),
    (
        "unknown csv header",
        "age,balance,job,contact,deposit\n40,1,a,c,yes\n",
        "text/csv",
        "unknown_columns",
        ["'deposit'"],
    ),
    (  # was "lacks column 'balance'", as if one name were missing rather than one repeated
        "repeated dataframe_split column",
        '{"dataframe_split": {"columns": ["age", "age", "job", "contact"], "data": [[40, 1, "a", "c"]]}}',
        "application/json",
        "duplicate_columns",
        ["\"dataframe_split\" repeats column 'age' and lacks 'balance'; name each feature once"],
    ),
    (
        "repeated csv header column",
        "age,age,job,contact\n40,1,a,c\n",
        "text/csv",
        "duplicate_columns",
        ["repeats column 'age' and lacks 'balance'"],
    ),
    ("empty body", "", "text/csv", "empty_body", ["empty"]),
    ("blank lines only", "\n\n  \n", "text/csv", "wrong_column_count", ["row 1 is empty", "delete the line"]),
    ("empty json list", "[]", "application/json", "empty_body", ["no rows"]),
    ("empty json body", "", "application/json", "empty_body", ["empty"]),
    ("blank json body", " \n", "application/json", "empty_body", ["empty"]),
    ("truncated json", '{"instances": [[40, 1', "application/json", "undecodable_body", ["not valid JSON"]),
    ("not utf-8", b"\xff\xfe40,1,a,b\n", "text/csv", "undecodable_body", ["UTF-8"]),
    ("json scalar", "42", "application/json", "bad_shape", []),
    (  # a SplitType=Line transform's mini-batch of JSON documents: say what to send instead
        "json values one per line",
        '[40, 1, "a", "b"]\n[41, 2, "a", "b"]\n',
        "application/json",
        "undecodable_body",
        ["line 2", "Content-Type application/jsonlines"],
    ),
    (
        "json documents one per line",
        '{"instances": [[40, 1, "a", "b"]]}\n{"instances": [[41, 2, "a", "b"]]}\n',
        "application/json",
        "undecodable_body",
        ["goes on after its value", "Content-Type application/jsonlines"],
    ),
    (  # the standard library kept the last value and answered with it, a 200
        "json record repeating a key",
        '[{"age": 70, "age": 20, "balance": 1, "job": "a", "contact": "c"}]',
        "application/json",
        "duplicate_columns",
        ["repeats the key 'age'", "the JSON body", "remove the repeated key"],
    ),
    (
        "jsonlines record repeating a key",
        '{"age": 40, "balance": 1, "job": "a", "contact": "c"}\n'
        '{"age": 70, "balance": 1, "job": "a", "contact": "c", "age": 20}\n',
        "application/jsonlines",
        "duplicate_columns",
        ["line 2 of the JSON Lines body", "repeats the key 'age'"],
    ),
    ("jsonlines scalar", '[40, 1, "a", "b"]\n7\n', "application/jsonlines", "bad_row", ["line 2"]),
    (
        "jsonlines blank line",  # skipped, it shifted every later answer onto the wrong input line
        '[40, 1, "a", "b"]\n  \r\n[41, 2, "a", "b"]\n',
        "application/jsonlines",
        "bad_row",
        ["line 2 of the JSON Lines body is empty", "delete the line"],
    ),
    ("garbage npy", b"\x93NUMPY garbage", "application/x-npy", "undecodable_body", ["npy"]),
    ("garbage parquet", b"PAR1 not really", "application/x-parquet", "undecodable_body", ["Parquet"]),
    (  # the boolean reaches the numeric check as text: it was named "text 'true'"
        "parquet boolean in a numeric column",
        support.parquet_bytes(pd.DataFrame({"age": [True], "balance": [1], "job": ["a"], "contact": ["c"]})),
        "application/x-parquet",
        "not_a_number",
        ["row 1, column 'age' (numeric): the boolean true is not a number (booleans are the categories"],
    ),
    (  # text true is a boolean by the value table, as it is in a categorical feature
        "csv boolean word in a numeric column",
        "40,FALSE,admin,cellular\n",
        "text/csv",
        "not_a_number",
        ["row 1, column 'balance' (numeric): the boolean false is not a number (booleans are the"],
    ),
]


@pytest.mark.parametrize("name,body,content_type,code,fragments", ERRORS, ids=[e[0] for e in ERRORS])
def test_bad_requests_get_a_400_naming_the_culprit(binary, name, body, content_type, code, fragments):
    assert_error(binary.invoke(body, content_type), 400, code, *fragments)


def test_unsupported_content_type_is_415_listing_supported(binary):
    body = assert_error(binary.invoke("x", "image/png"), 415, "unsupported_media_type")
    for media_type in (
        "text/csv",
        "application/json",
        "application/jsonlines",
        "application/x-npy",
        "application/x-parquet",
    ):
        assert media_type in body["message"]


def test_unsupported_accept_is_406_listing_supported(binary):
    body = assert_error(
        binary.invoke("40,1,admin,cellular\n", "text/csv", "application/xml"), 406, "not_acceptable"
    )
    for media_type in ("text/csv", "application/json", "application/jsonlines", "application/x-npy"):
        assert media_type in body["message"]


def test_a_406_for_an_accept_refusing_csv_does_not_offer_csv(binary):
    """``Accept: text/csv;q=0`` is the client ruling CSV out: the 406 offered it all the same."""
    body = assert_error(
        binary.invoke("40,1,admin,cellular\n", "text/csv", "text/csv;q=0"), 406, "not_acceptable"
    )
    assert body["message"].endswith("; use one of application/json, application/jsonlines, application/x-npy")


@pytest.mark.parametrize(
    "accept, culprit",
    [
        ("text/csv;q=abc", "q='abc'"),
        ("text/csv; q=2", "q='2'"),
        ("text/csv, application/json;q=0.1234", "q='0.1234'"),
    ],
)
def test_an_accept_q_value_out_of_rfc_9110_is_406_naming_it(binary, accept, culprit):
    """q is 0 to 1 with up to 3 decimals: a malformed one was dropped without a word (a plain 406
    'cannot be satisfied', or the answer in another range's format)."""
    response = binary.invoke("40,1,admin,cellular\n", "text/csv", accept)
    assert_error(response, 406, "not_acceptable", culprit, "from 0 to 1 with up to 3 decimals")
    assert binary.invoke("40,1,admin,cellular\n", "text/csv", "text/csv;q=1.000").status_code == 200


@pytest.mark.parametrize(
    "body", ["[[%s, 1, 2, 3]]", '{"instances": [{"age": 1, "balance": %s, "job": 2, "contact": 3}]}']
)
def test_a_json_integer_past_pythons_digit_limit_is_a_400_for_an_http_client(binary, body):
    """Python's own words advised sys.set_int_max_str_digits(), which only the server could call."""
    for content_type, payload in [
        ("application/json", body % ("9" * 5000)),
        ("application/jsonlines", body % ("9" * 5000)),
    ]:
        response = binary.invoke(payload, content_type)
        error = assert_error(response, 400, "undecodable_body", "more than 4,300 digits", "must stay below")
        assert "sys." not in error["message"]


@pytest.mark.parametrize(
    "content_type,accept,answered",
    [
        ("application/x-jsonlines", "application/x-jsonlines", "application/jsonlines"),
        ("application/x-jsonlines", None, "application/jsonlines"),
        ("text/csv", "application/jsonl", "application/jsonlines"),
        ("text/csv", "text/x-csv", "text/csv"),
    ],
)
def test_an_accept_names_a_format_by_any_name_its_content_type_may(binary, content_type, accept, answered):
    """``Accept: application/x-jsonlines`` beside the same Content-Type (which was read) was a 406."""
    rows = sm.features("binary").head(7)
    body = (
        support.csv_bytes(rows, target=None) if content_type == "text/csv" else support.jsonlines_bytes(rows)
    )
    response = binary.invoke(body, content_type, accept)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == answered
    lines = response.text.splitlines()
    got = [json.loads(line)["predicted_label"] for line in lines] if "json" in answered else lines
    assert got == expected("binary", rows)


def test_an_accept_charset_the_answer_is_not_in_is_406(binary):
    """It was answered in UTF-8 with no charset on the response, mis-read by a Latin-1 client."""
    response = binary.invoke("40,1,admin,cellular\n", "text/csv", "text/csv; charset=latin-1")
    assert_error(response, 406, "not_acceptable", "'latin-1'", "charset=utf-8")
    response = binary.invoke("40,1,admin,cellular\n", "text/csv", "text/csv; charset=utf-8")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/csv")


def test_unknown_route_and_wrong_method_are_json(binary):
    assert_error(binary.get("/predict"), 404, "not_found", "/invocations")
    assert_error(binary.get("/invocations"), 405, "method_not_allowed")


@pytest.mark.parametrize(
    "method,path,allowed",
    [
        ("GET", "/invocations", "OPTIONS, POST"),
        ("PUT", "/invocations", "OPTIONS, POST"),
        ("HEAD", "/invocations", "OPTIONS, POST"),
        ("POST", "/ping", "GET, HEAD, OPTIONS"),
        ("DELETE", "/execution-parameters", "GET, HEAD, OPTIONS"),
    ],
)
def test_a_405_names_the_methods_its_path_allows(binary, method, path, allowed):
    """A 405 said only "GET is not allowed on /invocations", without the Allow header RFC 9110
    requires in one (werkzeug's own 405 has it) or the method to use instead."""
    response = binary.session.request(method, f"{binary.url}{path}", timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == allowed
    if method != "HEAD":
        assert_error(response, 405, "method_not_allowed", f"{method} is not allowed on {path}; use {allowed}")


def _csv_of(size: int, line: str) -> tuple[bytes, int]:
    """A CSV body of exactly ``size`` bytes of rows like ``line`` (the first row's number padded
    with zeros to make up the bytes), and its number of rows."""
    rows, left = divmod(size, len(line))
    first = line.replace(".5,", ".5" + "0" * left + ",", 1)
    return (first + line * (rows - 1)).encode(), rows


def test_a_body_above_the_payload_limit_is_413_and_one_of_exactly_the_limit_is_answered(tmp_path):
    server = sm.start(sm.trained_root("binary"), workers=1, env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"})
    try:
        assert server.get("/execution-parameters").json()["MaxPayloadInMB"] == 1
        line = "40,1000.5,admin,cellular\n"
        body = line * (2 * 1024 * 1024 // len(line))
        assert_error(server.invoke(body, "text/csv"), 413, "payload_too_large", "1 MB")
        chunked = server.invoke(iter([body[: len(body) // 2], body[len(body) // 2 :]]), "text/csv")
        assert_error(chunked, 413, "payload_too_large")
        assert server.invoke(line * 1000, "text/csv").status_code == 200
        # MaxPayloadInMB=1 lets a batch transform send a mini-batch of up to 1 MiB: one of exactly
        # 1,048,576 bytes is answered in full, with Content-Length or chunked; one byte more is a 413
        for size, status in ((1024 * 1024, 200), (1024 * 1024 + 1, 413)):
            exact, rows = _csv_of(size, line)
            assert len(exact) == size
            for sent in (exact, iter([exact[: size // 2], exact[size // 2 :]])):
                response = server.invoke(sent, "text/csv", "text/csv")
                assert response.status_code == status, (size, response.text[:300])
                if status == 200:
                    assert len(response.text.splitlines()) == rows
                else:
                    assert_error(response, 413, "payload_too_large")
            # gzip: held to the limit decoded, and as sent (one row and zero padding, which gzip reads past)
            one_row = support.gzip_bytes(line)
            for sent, answered in (
                (support.gzip_bytes(exact), rows),
                (one_row + bytes(size - len(one_row)), 1),
            ):
                response = server.invoke(sent, "text/csv", "text/csv", headers={"Content-Encoding": "gzip"})
                assert response.status_code == status, (size, answered, response.text[:300])
                if status == 200:
                    assert len(response.text.splitlines()) == answered
                else:
                    assert_error(response, 413, "payload_too_large")
    finally:
        server.stop()


@pytest.mark.parametrize(
    "default,answered",
    [
        ("application/jsonlines", "application/jsonlines"),
        ("*/*", "text/csv"),  # no preference: the request's own type, as unset (it was always JSON)
    ],
)
def test_default_accept_from_the_environment_applies_to_missing_and_wildcard_accept(default, answered):
    server = sm.start(
        sm.trained_root("binary"),
        workers=1,
        env={"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": default},
    )
    try:
        rows = sm.features("binary").iloc[:3]
        for accept in (None, "*/*"):
            response = server.invoke(csv_body(rows), "text/csv", accept)
            assert response.headers["Content-Type"].startswith(answered)
            assert decode_response(response) == expected("binary", rows)
        assert (
            server.invoke(csv_body(rows), "text/csv", "text/csv")
            .headers["Content-Type"]
            .startswith("text/csv")
        )
    finally:
        server.stop()
