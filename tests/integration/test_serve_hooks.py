"""User inference hooks (model/code/inference.py) through the real ``container/serve``.

Each test writes an inference.py into a copy of a model trained by ``container/train``, starts
the server (gunicorn, two workers, a real socket) and talks HTTP to it.
"""

from __future__ import annotations

import csv as csv_module
import importlib.util
import io
import json
import textwrap
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import serving_models as sm

import support
from byoc import artifact, values
from byoc.serving.builtin import MINI_BATCH_NOTE

ROWS = sm.features("binary").head(5)
CSV_ROWS = support.csv_bytes(ROWS, target=None)


def _root(tmp_path: Path, code: str, **files: str) -> Path:
    root = sm.copy_root("binary", tmp_path / "root")
    code_dir = root / "model" / "code"
    code_dir.mkdir()
    (code_dir / "inference.py").write_text(textwrap.dedent(code), encoding="utf-8")
    for name, text in files.items():
        (code_dir / name.replace("__", ".")).write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def _serve(root: Path, **env: str) -> sm.Server:
    return sm.start(root, workers=2, env=env)


def _refuses_to_start(root: Path, **env: str) -> str:
    """Run serve expecting it to exit non-zero before serving; returns what it printed."""
    result = sm.run_serve(root, **env)
    assert result.returncode != 0, result.stdout + result.stderr
    return result.stderr


def _expected_labels(root: Path, frame) -> list:
    model = artifact.load(root / "model")
    return [model.classes[i] for i in model.estimator.predict(frame)]


def test_predict_fn_alone_gets_the_checked_frame_and_byoc_encodes_its_answer(tmp_path):
    root = _root(
        tmp_path,
        """
        def predict_fn(input_data, model):
            return ["|".join(input_data.columns) + f"|{len(input_data)}"] * len(input_data)
        """,
    )
    server = _serve(root)
    try:
        reply = server.invoke(CSV_ROWS, "text/csv", "application/json")
        bad = server.invoke(b"1,2\n", "text/csv")
    finally:
        server.stop()
    assert reply.status_code == 200, reply.text
    expected = "|".join(ROWS.columns) + f"|{len(ROWS)}"
    assert reply.json() == {"predictions": [{"predicted_label": expected}] * len(ROWS)}
    assert (
        bad.status_code == 400 and bad.json()["error"] == "wrong_column_count"
    )  # byoc's input_fn checked it


def test_predict_fn_alone_may_call_model_predict_and_predict_proba_as_in_scikit_learn(tmp_path):
    """The SageMaker scikit-learn container's own predict_fn, ``model.predict(input_data)``, on
    byoc's model: the labels as trained (not the pipeline's encoded class indices), and
    predict_proba's columns in the order of ``model.classes_``."""
    root = _root(
        tmp_path,
        """
        import json

        def predict_fn(input_data, model, context):
            if context.custom_attributes == "proba":
                proba = model.predict_proba(input_data)
                return [json.dumps(dict(zip(model.classes_.tolist(), row.tolist()))) for row in proba]
            assert list(model.feature_names_in_) == list(input_data.columns)
            return model.predict(input_data)
        """,
    )
    server = _serve(root)
    try:
        as_json = server.invoke(CSV_ROWS, "text/csv", "application/json")
        as_csv = server.invoke(CSV_ROWS, "text/csv", "text/csv")
        proba = server.invoke(CSV_ROWS, "text/csv", "application/json", attributes="proba")
    finally:
        server.stop()
    labels = _expected_labels(root, ROWS)
    assert set(labels) <= {"yes", "no"}
    assert as_json.status_code == 200, as_json.text
    assert as_json.json() == {"predictions": [{"predicted_label": label} for label in labels]}
    assert as_csv.text.splitlines() == labels
    model = artifact.load(root / "model")
    want = model.estimator.predict_proba(ROWS)
    got = [json.loads(p["predicted_label"]) for p in proba.json()["predictions"]]
    assert [list(g) for g in got] == [model.classes] * len(ROWS)
    assert [[g[c] for c in model.classes] for g in got] == want.tolist()


def test_input_fn_alone_gets_text_or_bytes_and_byoc_predicts(tmp_path):
    root = _root(
        tmp_path,
        """
        import json
        import pandas as pd

        def input_fn(request_body, content_type):
            if content_type == "application/x-rows":
                assert isinstance(request_body, bytes), type(request_body)
                return pd.DataFrame(json.loads(request_body)["rows"])
            assert isinstance(request_body, str), type(request_body)
            return pd.DataFrame(json.loads(request_body))
        """,
    )
    server = _serve(root)
    try:
        as_bytes = server.invoke(json.dumps({"rows": ROWS.to_dict("records")}), "application/x-rows")
        as_text = server.invoke(ROWS.to_json(orient="records"), "application/json")
        utf16 = server.invoke(ROWS.to_json(orient="records").encode("utf-16"), "application/json")
        latin1 = server.invoke('[{"job": "caf\u00e9"}]'.encode("latin-1"), "application/json")
    finally:
        server.stop()
    expected = [{"predicted_label": label} for label in _expected_labels(root, ROWS)]
    assert as_bytes.status_code == 200, as_bytes.text
    assert as_bytes.json() == {"predictions": expected}
    assert as_text.json() == {"predictions": expected}
    # a text body for input_fn is named as UTF-16 as byoc's own decoders name it (was "not UTF-8 (byte 0)")
    assert utf16.status_code == 400, utf16.text
    assert utf16.json()["error"] == "undecodable_body"
    assert "the application/json body is UTF-16 text (its first bytes are a byte order mark)" in utf16.text
    # and a body that is not UTF-8 as byoc's own decoders say it: undecodable_body, the byte and why
    # (was bad_encoding, the code of a gzip body that does not inflate, and no reason)
    assert latin1.status_code == 400, latin1.text
    assert latin1.json()["error"] == "undecodable_body"
    assert latin1.json()["message"] == (
        "the application/json body is not UTF-8 (byte 13: invalid continuation byte); send UTF-8 text"
    )


def test_an_input_fn_result_byoc_cannot_predict_on_names_the_hook_not_the_clients_row(tmp_path):
    """A record decoded as a dict: iterating it gives its keys, which byoc reported as the client's
    "row 1 is a str".  The client sent a valid record; the hook's return type is at fault."""
    root = _root(
        tmp_path,
        """
        import json

        def input_fn(request_body, content_type):
            return json.loads(request_body)
        """,
    )
    server = _serve(root)
    record = support.json_records(ROWS.head(1))[0]
    try:
        one = server.invoke(json.dumps(record), "application/json")
        rows = server.invoke(json.dumps(json.loads(ROWS.to_json(orient="values"))), "application/json")
    finally:
        server.stop()
    assert one.status_code == 500, one.text
    assert one.json()["error"] == "bad_input_data"
    assert one.json()["message"].startswith(
        "input_fn returned a dict; byoc's model predicts on a pandas DataFrame or a list of rows"
    ), one.json()
    assert "row 1" not in one.text and "Traceback" not in one.text
    assert rows.status_code == 200, rows.text  # a list of rows is what byoc's predict_fn takes
    assert rows.json() == {
        "predictions": [{"predicted_label": label} for label in _expected_labels(root, ROWS)]
    }


def test_a_frame_mixing_named_and_unnamed_columns_is_refused_not_read_by_position(tmp_path):
    """Columns ``balance, 0, job, contact`` (age unnamed, balance first) were read by position,
    ignoring the names: balance as age and age as balance, a plausible wrong label.  A mix is
    refused, as scikit-learn refuses it; all names or none still predict."""
    root = _root(
        tmp_path,
        """
        import io
        import pandas as pd

        def input_fn(request_body, content_type, context):
            frame = pd.read_csv(io.StringIO(request_body), header=None)
            if context.custom_attributes == "mixed":
                return frame[[1, 0, 2, 3]].set_axis(["balance", 0, "job", "contact"], axis=1)
            if context.custom_attributes == "named":
                return frame[[1, 0, 2, 3]].set_axis(["balance", "age", "job", "contact"], axis=1)
            return frame
        """,
    )
    server = _serve(root)
    try:
        replies = {
            mode: server.invoke(CSV_ROWS, "text/csv", attributes=mode) for mode in ("mixed", "named", "none")
        }
    finally:
        server.stop()
    expected = "\n".join(_expected_labels(root, ROWS)) + "\n"
    assert replies["named"].text == expected and replies["none"].text == expected
    mixed = replies["mixed"]
    assert mixed.status_code == 500 and mixed.json()["error"] == "bad_input_data", mixed.text
    assert mixed.json()["message"].startswith(
        "input_fn returned a DataFrame whose columns mix names and other labels ('balance', 0, 'job',"
    ), mixed.json()


def test_output_fn_alone_may_return_body_and_content_type(tmp_path):
    root = _root(
        tmp_path,
        """
        def output_fn(prediction, accept):
            labels = prediction.column("predicted_label")
            return "\\n".join(f"label={label}" for label in labels), "text/x-labels"
        """,
    )
    server = _serve(root)
    try:
        reply = server.invoke(CSV_ROWS, "text/csv", "text/x-labels")
    finally:
        server.stop()
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("text/x-labels")
    assert reply.text.splitlines() == [f"label={label}" for label in _expected_labels(root, ROWS)]


def test_model_fn_alone_runs_once_in_the_master_for_all_workers(tmp_path):
    pids = tmp_path / "model_fn.pids"
    root = _root(
        tmp_path,
        f"""
        import os

        class Constant:
            def predict(self, frame):
                return [7.5] * len(frame)

        def model_fn(model_dir):
            with open({str(pids)!r}, "a") as out:
                out.write(f"{{os.getpid()}}\\n")
            return Constant()
        """,
    )
    server = _serve(root)
    try:
        deadline = time.monotonic() + 30
        while len(psutil.Process(server.process.pid).children()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = {child.pid for child in psutil.Process(server.process.pid).children()}
        replies = [server.invoke(CSV_ROWS, "text/csv") for _ in range(6)]
    finally:
        server.stop()
    assert len(workers) == 2
    assert all(r.status_code == 200 for r in replies), replies[0].text
    assert replies[0].text.splitlines() == ["7.5"] * len(ROWS)
    assert pids.read_text().split() == [str(server.process.pid)]  # once, in the master


def test_byocs_model_fn_under_hooks_follows_the_compiled_inference_switch(tmp_path):
    """With inference.py but no model_fn of its own, byoc's model_fn loads the model: a missing
    compiled file is a WARNING with BYOC_COMPILED_INFERENCE=off, as without hooks (it refused to
    start, saying to set the switch that was set), and still a refusal with it on."""
    root = sm.copy_root("multiclass", tmp_path / "root")  # gradient_boosting: it has a compiled form
    model_dir = root / "model"
    (model_dir / "code").mkdir()
    (model_dir / "code" / "inference.py").write_text(
        "def predict_fn(input_data, model):\n    return model.predict(input_data)\n", encoding="utf-8"
    )
    (model_dir / artifact.COMPILED_FILE).unlink()
    rows = sm.features("multiclass").head(5)
    server = _serve(root, BYOC_COMPILED_INFERENCE="off")
    try:
        reply = server.invoke(support.csv_bytes(rows, target=None), "text/csv", "application/json")
    finally:
        log = server.stop()
    assert reply.status_code == 200, reply.text
    model = artifact.load(model_dir, compiled=False)
    expected = [{"predicted_label": model.classes[i]} for i in model.estimator.predict(rows)]
    assert reply.json() == {"predictions": expected}
    assert f"{artifact.COMPILED_FILE}: missing" in log and "BYOC_COMPILED_INFERENCE=off" in log
    assert artifact.COMPILED_OFF in _refuses_to_start(root)


def test_transform_fn_with_context_sees_the_request(tmp_path):
    root = _root(
        tmp_path,
        """
        import json

        def transform_fn(model, request_body, content_type, accept, context):
            return json.dumps({
                "model": type(model).__name__,
                "lines": len(request_body.splitlines()),
                "content_type": content_type,
                "accept": accept,
                "request_id": context.request_id,
                "attributes": context.custom_attributes,
                "model_dir": context.system_properties["model_dir"],
            })
        """,
    )
    server = _serve(root)
    try:
        reply = server.invoke(CSV_ROWS, "text/csv", "*/*", attributes="output=mine")
        untyped = server.invoke(b"{}", None)
    finally:
        server.stop()
    assert reply.status_code == 200, reply.text
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json() == {
        "model": "ByocModel",
        "lines": len(ROWS),
        "content_type": "text/csv",
        "accept": "application/json",
        "request_id": reply.headers["X-Request-Id"],
        "attributes": "output=mine",  # the hook's own, not byoc's output fields
        "model_dir": str(root / "model"),
    }
    assert untyped.json()["content_type"] == "application/json"


def test_status_from_user_code_is_the_answer_and_other_errors_are_500_with_the_request_id(tmp_path):
    root = _root(
        tmp_path,
        """
        from byoc.errors import UserError

        class Unprocessable(Exception):
            status_code = 422

        def predict_fn(input_data, model):
            kind = input_data.iloc[0]["job"]
            if kind == "admin":
                raise Unprocessable("admins are not scored")
            if kind == "blue-collar":
                raise UserError("no blue collars today", code="no_blue", status=409)
            if kind == "retired":  # was answered 200, the error body passing for a prediction
                raise UserError("retired: not scored", status=200)
            raise RuntimeError("secret internal detail")
        """,
    )
    server = _serve(root)
    row = ROWS.head(1).copy()
    try:
        answers = {}
        for job in ("admin", "blue-collar", "retired", "technician"):
            row["job"] = job
            answers[job] = server.invoke(support.csv_bytes(row, target=None), "text/csv")
    finally:
        log = server.stop()
    admin, blue, other = answers["admin"], answers["blue-collar"], answers["technician"]
    assert admin.status_code == 422
    assert admin.json()["error"] == "unprocessable_entity"
    assert admin.json()["message"] == "admins are not scored"
    assert blue.status_code == 409 and blue.json()["error"] == "no_blue"
    retired = answers["retired"]
    assert retired.status_code == 500 and retired.json()["error"] == "hook_failed", retired.text
    assert retired.json()["message"].startswith(
        "predict_fn raised UserError with status 200 at inference.py line 14, which is no error status; "
    )
    assert other.status_code == 500
    request_id = other.headers["X-Request-Id"]
    assert other.json()["request_id"] == request_id
    assert "secret internal detail" not in other.text and "Traceback" not in other.text
    # which hook failed, how and where: the client need not search the log to know it is model code
    assert other.json()["error"] == "hook_failed"
    assert other.json()["message"].startswith("predict_fn raised RuntimeError at inference.py line 15;")
    assert request_id in log and "Traceback" in log and "RuntimeError: secret internal detail" in log
    assert "raised by predict_fn of" in log


def test_a_predict_fn_answer_byoc_cannot_encode_is_a_500_naming_the_hook_and_the_counts(tmp_path):
    """3 records in, 1 prediction out: in batch transform the answers would join the wrong inputs.
    The endpoint's code is at fault (a 500), and the body says how, without a traceback."""
    root = _root(
        tmp_path,
        """
        def predict_fn(input_data, model, context):
            if context.custom_attributes == "one":
                return ["only-one"]
            if context.custom_attributes == "table":
                return [[1, 2]] * len(input_data)
            return ["ok"] * len(input_data)
        """,
    )
    server = _serve(root)
    three = support.csv_bytes(ROWS.head(3), target=None)
    try:
        one = server.invoke(three, "text/csv", "text/csv", attributes="one")
        table = server.invoke(three, "text/csv", "application/json", attributes="table")
        right = server.invoke(three, "text/csv", "text/csv")
    finally:
        log = server.stop()
    assert right.status_code == 200 and right.text.splitlines() == ["ok"] * 3
    for reply, code, fragments in (
        (one, "prediction_count_mismatch", ("predict_fn returned 1 predictions", "request's 3 records")),
        (table, "bad_prediction", ("predict_fn returned a list of shape (3, 2)", "define output_fn")),
    ):
        assert reply.status_code == 500, reply.text
        body = reply.json()
        assert body["error"] == code and body["request_id"] == reply.headers["X-Request-Id"], body
        assert all(fragment in body["message"] for fragment in fragments), body
        assert "Traceback" not in reply.text
        assert f"request {body['request_id']}: {code}: " in log


def test_a_predict_fn_answer_is_written_value_for_value_or_refused_naming_predict_fn(tmp_path):
    """byoc's output_fn wrote what it could not write faithfully as something else: np.asarray
    made every value text when one was (``[0, "unknown"]`` answered ``"0"``), CSV and npy wrote
    Python reprs (``{'label': 'a'}``, ``b'a'``, ``"None"``), and rows of different lengths were an
    anonymous internal error.  Each value now keeps its type, or predict_fn is named."""
    root = _root(
        tmp_path,
        """
        ANSWERS = {
            "abstain": [0, "unknown", 2.5],
            "flags": [True, "x", None],
            "records": [{"label": "a", "score": 0.5}] * 3,
            "bytes": [b"a"] * 3,
            "ragged": [["a"], ["b", "c"], []],
            "missing": [1.5, None, 2],
        }

        def predict_fn(input_data, model, context):
            return ANSWERS[context.custom_attributes]
        """,
    )
    server = _serve(root)
    three = support.csv_bytes(ROWS.head(3), target=None)

    def ask(answer: str, accept: str):
        return server.invoke(three, "text/csv", accept, attributes=answer)

    try:
        replies = {
            (answer, accept): ask(answer, accept)
            for answer in ("abstain", "flags", "records", "bytes", "ragged", "missing")
            for accept in ("application/json", "text/csv", "application/x-npy")
        }
    finally:
        log = server.stop()

    def labels(answer: str) -> list:
        reply = replies[(answer, "application/json")]
        assert reply.status_code == 200, reply.text
        return [record["predicted_label"] for record in reply.json()["predictions"]]

    assert labels("abstain") == [0, "unknown", 2.5]
    assert labels("flags") == [True, "x", None]
    assert labels("missing") == [1.5, None, 2]
    records = replies[("records", "text/csv")]
    assert records.status_code == 200, records.text
    rows = list(csv_module.reader(io.StringIO(records.text)))
    assert [[json.loads(cell) for cell in row] for row in rows] == [
        [{"label": "a", "score": 0.5}]
    ] * 3  # JSON in one cell, as list fields are, not a Python repr
    missing = replies[("missing", "application/x-npy")]
    assert missing.status_code == 200, missing.text
    np.testing.assert_array_equal(np.load(io.BytesIO(missing.content)), [1.5, np.nan, 2.0])
    refused = {
        ("abstain", "application/x-npy"): "values of types float, int, str have no application/x-npy form",
        ("flags", "application/x-npy"): "values of types NoneType, bool, str have no application/x-npy form",
        ("records", "application/x-npy"): "values of types dict have no application/x-npy form",
        ("bytes", "application/json"): "predict_fn returned a value of type bytes for record 1",
        ("bytes", "text/csv"): "predict_fn returned a value of type bytes for record 1",
        ("bytes", "application/x-npy"): "predict_fn returned a value of type bytes for record 1",
        ("ragged", "application/json"): "predict_fn returned a list whose record 1 is a list of 1 values",
    }
    for key, fragment in refused.items():
        reply = replies[key]
        assert reply.status_code == 500, (key, reply.text)
        body = reply.json()
        assert body["error"] == "bad_prediction" and fragment in body["message"], (key, body)
        assert "predict_fn" in body["message"] and "Traceback" not in reply.text
        assert f"request {body['request_id']}: bad_prediction: " in log


def test_an_output_fn_answer_http_cannot_carry_is_bad_output_and_a_blank_type_is_the_default(tmp_path):
    """A blank content type was sent as an empty Content-Type header; one that is no media type as
    given; one holding a line break, a response header value holding one, and text with a lone
    surrogate (which UTF-8 cannot encode) were anonymous internal errors, and a Content-Length
    other than the body's cut the answer short.  Each is now the default type or a 500
    ``bad_output`` naming the hook."""
    root = _root(
        tmp_path,
        """
        def output_fn(prediction, accept, context):
            body = ",".join(prediction.column("predicted_label"))
            mode = context.custom_attributes
            if mode == "header":
                context.response_headers["X-Note"] = "one\\r\\nX-Injected: 1"
            if mode == "length":  # gunicorn sent it: the answer cut to 3 bytes under a 200
                context.response_headers["Content-Length"] = "3"
            if mode == "surrogate":
                return body + "\\udc80"
            return body, {"blank": "", "spaces": "  ", "prose": "labels, comma separated",
                          "split": "text/plain\\r\\nX-Injected: 1"}.get(mode, "text/plain")
        """,
    )
    server = _serve(root)
    try:
        replies = {
            mode: server.invoke(CSV_ROWS, "text/csv", "text/csv;q=0.5, application/json", attributes=mode)
            for mode in ("plain", "blank", "spaces", "prose", "split", "header", "length", "surrogate")
        }
    finally:
        log = server.stop()
    labels = ",".join(_expected_labels(root, ROWS))
    assert replies["plain"].headers["Content-Type"] == "text/plain" and replies["plain"].text == labels
    for mode in ("blank", "spaces"):  # no content type: the most preferred Accept entry's, as for None
        assert replies[mode].status_code == 200, replies[mode].text
        assert replies[mode].headers["Content-Type"] == "application/json" and replies[mode].text == labels
    for mode, fragment in (
        (
            "prose",
            "output_fn of inference.py returned the content type 'labels, comma separated', which is not",
        ),
        ("split", "returned the content type 'text/plain\\r\\nX-Injected: 1', which is not a media type"),
        ("header", "the hooks of inference.py set the response header 'X-Note' to 'one\\r\\nX-Injected: 1'"),
        ("surrogate", "output_fn of inference.py returned text that UTF-8 cannot encode"),
        ("length", "set the response header 'Content-Length' to '3', but the body is "),
    ):
        reply = replies[mode]
        assert reply.status_code == 500, (mode, reply.text)
        body = reply.json()
        assert body["error"] == "bad_output" and fragment in body["message"], (mode, body)
        assert "X-Injected" not in reply.headers and "Traceback" not in reply.text
        assert f"request {body['request_id']}: bad_output: " in log


def test_transform_fn_mixed_with_other_hooks_stops_serve(tmp_path):
    root = _root(
        tmp_path,
        """
        def transform_fn(model, request_body, content_type, accept):
            return "x"

        def predict_fn(input_data, model):
            return []
        """,
    )
    stderr = _refuses_to_start(root)
    assert "transform_fn" in stderr and "predict_fn" in stderr and "inference.py" in stderr


def test_a_hook_with_the_wrong_arguments_stops_serve(tmp_path):
    root = _root(tmp_path, "def input_fn(request_body):\n    return request_body\n")
    stderr = _refuses_to_start(root)
    assert "input_fn(request_body, content_type[, context])" in stderr


def test_an_async_hook_stops_serve_naming_its_line(tmp_path):
    """An ``async def`` predict_fn served every request a 500 ("predict_fn returned a coroutine,
    not a list ...: return that, or define output_fn"), never awaited and never run."""
    root = _root(tmp_path, "import json\n\nasync def predict_fn(input_data, model):\n    return []\n")
    last = _refuses_to_start(root).strip().splitlines()[-1]
    assert last.startswith(
        f"serve: cannot start: {root / 'model' / 'code' / 'inference.py'} line 3: predict_fn is defined "
        "with `async def`"
    ), last
    assert "define it with `def predict_fn(input_data, model[, context])`" in last


def test_a_hooks_text_body_is_read_by_its_charset_and_batch_errors_say_rows_count_in_the_request(tmp_path):
    """A port of the scikit-learn container's input_fn: a CSV body declared ISO-8859-1 was a 400
    "not UTF-8", a JSON body opening with a UTF-8 byte order mark a 500 blaming input_fn (its
    ``json.loads`` refuses the mark); an answer of text declared latin-1 was sent as UTF-8.  In
    batch transform, the rows byoc's checks name count within the request, as byoc's own server
    says."""
    root = _root(
        tmp_path,
        """
        import io
        import json
        import pandas as pd

        def input_fn(request_body, content_type):
            if content_type.startswith("text/csv"):
                names = ["age", "balance", "job", "contact"]
                return pd.read_csv(io.StringIO(request_body), header=None, names=names)
            return pd.DataFrame(json.loads(request_body))

        def output_fn(prediction, accept):
            labels = prediction.column("predicted_label")
            return "\\n".join(f"{label} caf\u00e9" for label in labels), "text/plain; charset=latin-1"
        """,
    )
    server = _serve(root, SAGEMAKER_BATCH="true")
    try:
        latin1 = server.invoke(
            "70,1337.49,caf\u00e9,telephone\n".encode("latin-1"), "text/csv; charset=ISO-8859-1"
        )
        marked = server.invoke(
            b"\xef\xbb\xbf" + ROWS.head(1).to_json(orient="records").encode(), "application/json"
        )
        bad = server.invoke(b"70,1337.49,admin,telephone\nabc,1,admin,telephone\n", "text/csv")
    finally:
        server.stop()
    for reply in (latin1, marked):
        assert reply.status_code == 200, reply.text
        assert reply.headers["Content-Type"] == "text/plain; charset=latin-1"
        label, said = reply.content.decode("latin-1").split(" ")
        assert label in {"yes", "no"} and said == "caf\u00e9", reply.content
    assert bad.status_code == 400, bad.text
    message = bad.json()["message"]
    assert message.startswith("row 2, column 'age'") and message.endswith(MINI_BATCH_NOTE), message


def test_broken_requirements_stop_serve_at_once_naming_the_package(tmp_path):
    root = _root(
        tmp_path,
        "def predict_fn(input_data, model):\n    return []\n",
        requirements__txt="--no-index\nbyoc-no-such-package-for-tests==1.0\n",
    )
    stderr = _refuses_to_start(root)
    assert "byoc-no-such-package-for-tests" in stderr.strip().splitlines()[-1]


IMAGE_PACKAGES = ("scikit-learn", "numpy", "scipy", "pandas", "joblib", "flask", "gunicorn", "onnxruntime")


def _root_with_wheels(tmp_path: Path, requirement: str) -> Path:
    """Hooks whose requirements.txt installs ``requirement`` from tiny wheels vendored in the code
    folder, with no index: another scikit-learn or onnxruntime, a package needing numpy<1, an
    unrelated one, and one needing a protobuf newer than the one onnx and onnxruntime came with."""
    root = _root(
        tmp_path,
        """
        from importlib import metadata

        def predict_fn(input_data, model):
            return [metadata.version("byoc-unrelated")] * len(input_data)
        """,
        requirements__txt="--no-index\n--find-links ./wheels\n" + requirement,
    )
    wheels = root / "model" / "code" / "wheels"
    support.tiny_wheel(wheels, "scikit-learn", "0.1.0")
    support.tiny_wheel(wheels, "needs-old-numpy", "1.0", ["numpy<1"])
    support.tiny_wheel(wheels, "byoc-unrelated", "2.0")
    support.tiny_wheel(wheels, "onnxruntime", "0.1.0")
    support.tiny_wheel(wheels, "needs-new-protobuf", "1.0", ["protobuf>=99"])
    support.tiny_wheel(wheels, "protobuf", "99.0")
    return root


@pytest.mark.parametrize(
    ("requirement", "package", "named"),
    [
        ("scikit-learn==0.1.0\n", "scikit-learn", "requirements.txt asks for scikit-learn==0.1.0"),
        ("needs-old-numpy\n", "numpy", "needs-old-numpy 1.0 depends on numpy<1"),
        ("onnxruntime==0.1.0\n", "onnxruntime", "requirements.txt asks for onnxruntime==0.1.0"),
    ],
)
def test_hooks_requirements_that_would_replace_the_images_packages_stop_serve_before_replacing_them(
    tmp_path, requirement, package, named
):
    """pip replaced scikit-learn/numpy under the server that had imported them (old modules in
    memory, new files for the workers and later loads).  serve refuses to start before pip
    replaces anything, naming the package, who asked for which version and the image's version."""
    python = support.overlay_venv(tmp_path / "venv")
    before = support.installed_versions(python, IMAGE_PACKAGES)
    root = _root_with_wheels(tmp_path, requirement)
    result = sm.run_serve(root, python=python)
    assert result.returncode != 0, result.stdout + result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"serve: cannot start: requirements.txt would replace the image's {package} {before[package]} ({named})"
    ), last
    assert "drop that pin from requirements.txt" in last and "build an image FROM this one" in last, last
    assert support.installed_versions(python, IMAGE_PACKAGES) == before


def test_hooks_requirements_that_leave_the_images_packages_alone_install_and_serve(tmp_path):
    """What the compiled models' packages require is not held: a package may need a newer protobuf."""
    python = support.overlay_venv(tmp_path / "venv")
    before = support.installed_versions(python, IMAGE_PACKAGES)
    server = sm.start(_root_with_wheels(tmp_path, "byoc-unrelated\nneeds-new-protobuf\n"), python=python)
    try:
        reply = server.invoke(CSV_ROWS, "text/csv", "application/json")
    finally:
        output = server.stop()
    assert reply.status_code == 200, (reply.text, output)
    assert {r["predicted_label"] for r in reply.json()["predictions"]} == {"2.0"}, reply.text
    assert support.installed_versions(python, IMAGE_PACKAGES) == before
    assert support.installed_versions(python, ["protobuf"]) == {"protobuf": "99.0"}


def test_a_module_the_hooks_import_that_is_not_there_stops_serve_naming_the_line_and_the_fix(tmp_path):
    """The package, the line that imported it (in a helper beside inference.py too) and how to
    provide it: requirements.txt beside the program, or the module's own file there."""
    root = _root(
        tmp_path,
        "from helper import features\n\ndef predict_fn(input_data, model):\n    return []\n",
        helper__py="import os\nimport lightgbm_not_installed.sklearn\n\nfeatures = []\n",
    )
    last = _refuses_to_start(root).strip().splitlines()[-1]
    code = root / "model" / "code"
    assert last == (
        f"serve: cannot start: {code / 'inference.py'}: importing it failed: ModuleNotFoundError: No module "
        "named 'lightgbm_not_installed' (at helper.py line 2); if 'lightgbm_not_installed' is a package, add "
        f"the package that provides it to requirements.txt in {code} (pip installs it before your code "
        "runs); if it is your own module, put lightgbm_not_installed.py (or the folder "
        "lightgbm_not_installed/) there"
    )


def test_failing_model_fn_stops_serve_with_its_error(tmp_path):
    root = _root(tmp_path, "def model_fn(model_dir):\n    raise FileNotFoundError('weights.bin')\n")
    stderr = _refuses_to_start(root)
    assert "model_fn failed: FileNotFoundError: weights.bin" in stderr


@pytest.mark.parametrize("program", ["serve_me.py", "serve_me"])
def test_sagemaker_program_names_the_module_in_the_submit_directory(tmp_path, program):
    root = sm.copy_root("binary", tmp_path / "root")
    code = tmp_path / "src"
    code.mkdir()
    (code / "serve_me.py").write_text(
        "def transform_fn(model, request_body, content_type, accept):\n    return 'from serve_me'\n"
    )
    server = sm.start(
        root, workers=1, env={"SAGEMAKER_PROGRAM": program, "SAGEMAKER_SUBMIT_DIRECTORY": str(code)}
    )
    try:
        reply = server.invoke(CSV_ROWS, "text/csv", "text/plain")
    finally:
        server.stop()
    assert reply.text == "from serve_me"


@pytest.mark.parametrize("module", ["numpy", "byoc", "json"])
def test_a_program_named_like_a_module_the_server_uses_stops_serve_asking_to_rename_it(tmp_path, module):
    """numpy.py registered as the module numpy replaced the real one for the whole server: serve
    then blamed model.joblib ("Can't get attribute 'ndarray' on <module 'numpy' from .../numpy.py>")."""
    root = sm.copy_root("binary", tmp_path / "root")
    code = root / "model" / "code"
    code.mkdir()
    (code / f"{module}.py").write_text(
        "def predict_fn(input_data, model):\n    return model.predict(input_data)\n"
    )
    last = _refuses_to_start(root, SAGEMAKER_PROGRAM=f"{module}.py").strip().splitlines()[-1]
    assert last.startswith(
        f"serve: cannot start: {code / module}.py: its module name '{module}' is that of a module the server uses ("
    ), last
    assert last.endswith(f"rename the file (e.g. {module}_inference.py) and SAGEMAKER_PROGRAM with it"), last


def test_a_program_named_like_an_installed_module_not_yet_imported_stops_serve(tmp_path):
    """matplotlib is installed (a byoc dependency) but serve does not import it: a program named
    matplotlib.py was registered under that name, and the first `import matplotlib` in the server
    (the model's unpickling, a library's lazy import) would have got the program."""
    root = sm.copy_root("binary", tmp_path / "root")
    code = root / "model" / "code"
    code.mkdir()
    (code / "matplotlib.py").write_text(
        "def predict_fn(input_data, model):\n    return model.predict(input_data)\n"
    )
    last = _refuses_to_start(root, SAGEMAKER_PROGRAM="matplotlib.py").strip().splitlines()[-1]
    installed = importlib.util.find_spec("matplotlib").origin
    assert last == (
        f"serve: cannot start: {code / 'matplotlib'}.py: its module name 'matplotlib' is that of an installed "
        f"module ({installed}), which it would replace for the whole server (the first import of matplotlib "
        "would get this file); rename the file (e.g. matplotlib_inference.py) and SAGEMAKER_PROGRAM with it"
    ), last


def test_a_missing_program_stops_serve_naming_where_it_looked(tmp_path):
    root = sm.copy_root("binary", tmp_path / "root")
    stderr = _refuses_to_start(root, SAGEMAKER_PROGRAM="nowhere.py")
    assert "nowhere.py" in stderr and str(root / "model" / "code") in stderr


def test_a_model_json_of_the_users_own_training_script_does_not_stop_their_hooks(tmp_path):
    """A script-mode model may save a model.json of its own (a common name): with the user's
    model_fn and input_fn byoc never reads it, so it is no reason to refuse the model; without
    an input_fn the line says byoc's needs byoc's model.json, and what to define."""
    root = _root(
        tmp_path,
        """
        import io, json, os
        import joblib
        import pandas as pd

        def model_fn(model_dir):
            return joblib.load(os.path.join(model_dir, "model.joblib"))

        def input_fn(request_body, content_type):
            text = request_body.decode() if isinstance(request_body, bytes) else request_body
            return pd.read_csv(io.StringIO(text), header=None, names=["age", "balance", "job", "contact"])
        """,
    )
    (root / "model" / "model.json").write_text(json.dumps({"accuracy": 0.93}), encoding="utf-8")
    server = _serve(root)
    try:
        response = server.invoke(CSV_ROWS, accept="application/json")
        assert response.status_code == 200, response.text
        indices = [row["predicted_label"] for row in response.json()["predictions"]]
        assert len(indices) == len(ROWS)
    finally:
        server.stop()
    code = root / "model" / "code" / "inference.py"
    code.write_text(code.read_text().replace("def input_fn(", "def not_input_fn("), encoding="utf-8")
    stderr = _refuses_to_start(root)
    assert (
        f"{code} has no input_fn, and byoc's needs the features of a model.json written by byoc's train"
        in stderr
    )
    assert "define input_fn(request_body, content_type)" in stderr and "Traceback" not in stderr


def test_a_missing_answer_value_is_spelled_as_each_formats_readers_take_a_missing_value(tmp_path):
    """CSV wrote a NaN from predict_fn as ``nan`` (a category when training reads it in a text
    column) where JSON wrote ``null``: a missing value is now ``null`` in JSON and JSON Lines, an
    empty cell in CSV (missing in any column by byoc.values' rule), NaN among numbers in npy."""
    root = _root(
        tmp_path,
        """
        import numpy as np
        import pandas as pd

        ANSWERS = {
            "array": np.array([1.5, np.nan, np.inf]),
            "list": [1.5, float("nan"), None],
            "text": ["a", pd.NA, float("nan")],
        }

        def predict_fn(input_data, model, context):
            return ANSWERS[context.custom_attributes]
        """,
    )
    server = _serve(root)
    three = support.csv_bytes(ROWS.head(3), target=None)
    accepts = ("application/json", "application/jsonlines", "text/csv", "application/x-npy")
    try:
        replies = {
            (answer, accept): server.invoke(three, "text/csv", accept, attributes=answer)
            for answer in ("array", "list", "text")
            for accept in accepts
        }
    finally:
        server.stop()
    expected = {"array": [1.5, None, None], "list": [1.5, None, None], "text": ["a", None, None]}
    for answer, labels in expected.items():
        as_json, as_lines = replies[(answer, "application/json")], replies[(answer, "application/jsonlines")]
        assert as_json.status_code == as_lines.status_code == 200, (as_json.text, as_lines.text)
        assert [p["predicted_label"] for p in as_json.json()["predictions"]] == labels
        assert [json.loads(line)["predicted_label"] for line in as_lines.text.splitlines()] == labels
    csv_cells = {answer: replies[(answer, "text/csv")] for answer in expected}
    assert all(reply.status_code == 200 for reply in csv_cells.values()), csv_cells
    read = {
        answer: [row[0] for row in csv_module.reader(io.StringIO(r.text))] for answer, r in csv_cells.items()
    }
    assert read == {"array": ["1.5", "", "inf"], "list": ["1.5", "", ""], "text": ["a", "", ""]}
    for cell in read["list"][1:] + read["text"][1:]:  # training's rule: missing in either kind of column
        assert (
            values.is_missing(cell)
            and np.isnan(values.number(cell))
            and values.category(cell) != values.category(cell)
        )
    np.testing.assert_array_equal(
        np.load(io.BytesIO(replies[("array", "application/x-npy")].content)), [1.5, np.nan, np.inf]
    )
    np.testing.assert_array_equal(
        np.load(io.BytesIO(replies[("list", "application/x-npy")].content)), [1.5, np.nan, np.nan]
    )
    text = replies[("text", "application/x-npy")]
    assert text.status_code == 500 and text.json()["error"] == "bad_prediction", text.text
    assert "values of types NoneType, str have no application/x-npy form" in text.json()["message"]


def test_memory_running_out_in_a_request_is_a_413_naming_the_body_and_the_worker_serves_on(tmp_path):
    """A MemoryError while predicting (here numpy refusing a real allocation) was a 500
    ``hook_failed`` (byoc's own code: ``internal_error``), which batch transform retries with the
    same mini-batch.  The request is larger than this endpoint can process: a 413 whose body says
    memory ran out, the body's size and memory, and the fixes; the same worker answers the next."""
    root = _root(
        tmp_path,
        """
        import os
        import numpy as np

        def predict_fn(input_data, model, context):
            if context.custom_attributes == "huge":
                np.ones((len(input_data), 1 << 44))  # 128 TiB a row: refused by the allocator
            return [os.getpid()] * len(input_data)
        """,
    )
    server = sm.start(root, workers=1, env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "6"})
    three = support.csv_bytes(ROWS.head(3), target=None)
    try:
        before = server.invoke(three, "text/csv", "application/json")
        huge = server.invoke(three, "text/csv", "application/json", attributes="huge")
        after = server.invoke(three, "text/csv", "application/json")
    finally:
        log = server.stop()
    assert before.status_code == 200, before.text
    assert huge.status_code == 413, huge.text
    body = huge.json()
    assert body["error"] == "out_of_memory" and body["request_id"] == huge.headers["X-Request-Id"], body
    message = body["message"]
    assert message.startswith(f"memory ran out while answering this request (a body of {len(three):,} bytes)")
    for fragment in ("of memory (", "shared by 1 workers", "MaxPayloadInMB, now 6 MB", "more memory"):
        assert fragment in message, (fragment, message)
    assert "Traceback" not in huge.text
    assert f"request {body['request_id']}: out of memory: MemoryError: Unable to allocate" in log
    assert after.status_code == 200, after.text
    assert after.json() == before.json()  # the same worker process, alive and serving


@pytest.mark.parametrize(
    ("files", "said"),
    [
        (
            {"inference.py": "NAME = 'caf\u00e9'\n".encode("latin-1")},
            "inference.py: not UTF-8 text (byte 0xe9 at offset 11, line 1); Python reads a program as UTF-8: "
            "save the file as UTF-8 (or declare its encoding on its first line, such as # -*- coding: latin-1 -*-)",
        ),
        (
            {
                "inference.py": b"import helper\n",
                "helper.py": "X = 1\nNAME = 'caf\u00e9'\n".encode("latin-1"),
            },
            "inference.py: importing it failed: {code}/helper.py: not UTF-8 text (byte 0xe9 at offset 17, "
            "line 2) (at inference.py line 1); Python reads a program as UTF-8: save the file as UTF-8",
        ),
        (
            {"inference.py": "def predict_fn(input_data, model):\n    return []\n".encode("utf-16")},
            "inference.py: UTF-16 text, not UTF-8; Python reads a program as UTF-8: save the file as UTF-8\n",
        ),
        (  # Python reads past a Latin-1 comment: the syntax error is the fault, not the encoding
            {"inference.py": "# caf\u00e9\ndef predict_fn(\n".encode("latin-1")},
            "inference.py: importing it failed: SyntaxError: '(' was never closed (inference.py, line 2)",
        ),
    ],
    ids=["latin1", "latin1_module", "utf16", "syntax_error_beside_a_latin1_comment"],
)
def test_a_program_that_is_not_utf8_is_named_with_its_byte_and_the_fix(tmp_path, files, said):
    """Python's words were "SyntaxError: (unicode error) 'utf-8' codec can't decode byte 0xe9 in
    position 3" (a position in the string literal, not the file) and nothing for a UTF-16 file
    but null bytes: the user's file is named, with the byte's offset and line, and how to fix it."""
    root = _root(tmp_path, "")
    code = root / "model" / "code"
    for name, data in files.items():
        (code / name).write_bytes(data)
    stderr = _refuses_to_start(root)
    assert said.format(code=code) in stderr, stderr
