"""Batch transform payloads: 100 MB CSV and large JSON Lines bodies, decoded and predicted in slices."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import psutil
import pytest
import serving_models as sm

import support
from byoc import artifact
from byoc.serving import app
from byoc.serving.app import line_slices
from byoc.serving.builtin import MINI_BATCH_NOTE

BATCH_ENV = {
    "SAGEMAKER_BATCH": "True",
    "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100",
    "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD",
}


@pytest.fixture(scope="module")
def batch_server():
    server = sm.start(sm.trained_root("binary"), workers=1, env=BATCH_ENV)
    yield server
    server.stop()


def _peak_rss(pid: int) -> int:
    """VmHWM: the process's peak resident set, in bytes (Linux)."""
    for line in open(f"/proc/{pid}/status", encoding="ascii"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _block(rows, header: bool = False) -> bytes:
    return rows.to_csv(index=False, header=header).encode()


def test_execution_parameters_follow_the_batch_environment(batch_server):
    assert batch_server.get("/execution-parameters").json() == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": 100,
    }


def test_a_transform_with_max_payload_0_is_served_chunked_bodies_above_6_mb():
    """MaxPayloadInMB=0 ("no limit", bodies sent chunked) stopped serve at start: the job failed."""
    server = sm.start(
        sm.trained_root("binary"), workers=1, env={**BATCH_ENV, "SAGEMAKER_MAX_PAYLOAD_IN_MB": "0"}
    )
    try:
        assert server.get("/execution-parameters").json()["MaxPayloadInMB"] == 0
        block = _block(sm.features("binary"))
        repeats = 7 * 1024 * 1024 // len(block) + 1
        response = server.invoke(iter([block] * repeats), "text/csv", "text/csv", timeout=300)  # chunked
        assert response.status_code == 200, response.text[:500]
        assert len(response.text.splitlines()) == block.count(b"\n") * repeats
    finally:
        output = server.stop()
    assert "setting: SAGEMAKER_MAX_PAYLOAD_IN_MB=0" in output


def test_a_csv_answer_keeps_one_line_per_record_when_a_label_holds_a_line_break(tmp_path):
    """A label trained as "no\\nway" was quoted over two lines of a text/csv answer: 3 input lines
    got 5 answer lines, and SageMaker joined every later answer to the wrong input line."""
    frame = support.mixed_frame()
    frame["deposit"] = frame["deposit"].map({"yes": "yes", "no": "no\nway"})
    root = support.make_ml_root(
        tmp_path,
        channels={"train": {"train.csv": support.csv_bytes(frame, target="deposit", header=True)}},
        hyperparameters={"target": "deposit", "algorithm": "decision_tree", "max_depth": 4},
        content_types={"train": "text/csv"},
    )
    assert support.run_train(root).returncode == 0
    server = sm.start(root, workers=1, env=BATCH_ENV)
    try:
        body = _block(frame.drop(columns=["deposit"]).iloc[:40])
        response = server.invoke(body, "text/csv", "text/csv")
        assert response.status_code == 406, response.text[:300]
        assert "'no\\nway' holds a line break" in response.json()["message"]
        lines = server.invoke(body, "text/csv", "application/jsonlines").text.splitlines()
        assert len(lines) == 40 and {json.loads(line)["predicted_label"] for line in lines} == {
            "yes",
            "no\nway",
        }
    finally:
        server.stop()


@pytest.mark.slow
def test_a_100_mb_csv_payload_is_predicted_in_full_with_bounded_memory(batch_server):
    rows = sm.features("binary")
    block = _block(rows)
    repeats = 100_000_000 // len(block)
    body = block * repeats
    assert 99_000_000 < len(body) <= 100 * 1024 * 1024
    worker = psutil.Process(batch_server.process.pid).children()[0]
    response = batch_server.invoke(body, "text/csv", "text/csv", timeout=600)
    assert response.status_code == 200, response.text[:500]
    labels = response.text.splitlines()
    assert len(labels) == len(rows) * repeats  # nothing lost or dropped
    first = batch_server.invoke(block, "text/csv", "text/csv").text.splitlines()
    assert labels[: len(rows)] == first and labels[-len(rows) :] == first
    # Several copies of a 100 MB body (or a frame of all of it) would take far more than this.
    assert _peak_rss(worker.pid) < 1_000_000_000


def test_a_large_header_csv_keeps_its_column_order_across_slices(batch_server):
    rows = sm.features("binary")[["contact", "job", "balance", "age"]]
    repeats = 12_000_000 // len(_block(rows))
    body = _block(rows, header=True) + _block(rows) * (repeats - 1)
    response = batch_server.invoke(body, "text/csv", "text/csv", timeout=300)
    assert response.status_code == 200, response.text[:500]
    labels = response.text.splitlines()
    expected = batch_server.invoke(_block(sm.features("binary")), "text/csv", "text/csv").text.splitlines()
    assert labels == expected * repeats


@pytest.mark.parametrize("accept", ["text/csv", "application/jsonlines"])
def test_an_answer_of_several_slices_says_its_content_length_and_is_not_chunked(batch_server, accept):
    """A body of several 4 MiB slices is answered slice by slice (a list of chunks): the answer
    still carries its Content-Length, the sum of the chunks, rather than going out chunked or
    cut, and every record is in it."""
    rows = sm.features("binary")
    block = _block(rows)
    repeats = 3 * app.CHUNK_BYTES // len(block) + 1
    response = batch_server.invoke(block * repeats, "text/csv", accept, timeout=300)
    assert response.status_code == 200, response.text[:500]
    assert "Transfer-Encoding" not in response.headers
    assert response.headers["Content-Length"] == str(len(response.content))
    assert len(response.text.splitlines()) == len(rows) * repeats


def test_a_large_jsonlines_payload(batch_server):
    rows = sm.features("binary")
    lines = "".join(json.dumps(r) + "\n" for r in json.loads(rows.to_json(orient="records"))).encode()
    repeats = 12_000_000 // len(lines)
    response = batch_server.invoke(lines * repeats, "application/jsonlines", timeout=300)
    assert response.status_code == 200, response.text[:500]
    out = response.text.splitlines()
    assert len(out) == len(rows) * repeats
    assert json.loads(out[-1]).keys() == {"predicted_label"}


def test_an_error_deep_in_a_batch_names_its_row(batch_server):
    block = _block(sm.features("binary"))
    good_rows = block.count(b"\n") * (10_000_000 // len(block))
    body = block * (10_000_000 // len(block)) + b"41,plenty,admin,cellular\n" + block
    response = batch_server.invoke(body, "text/csv", timeout=300)
    assert response.status_code == 400
    assert response.json()["error"] == "not_a_number"
    assert f"row {good_rows + 1}, column 'balance'" in response.json()["message"]
    # a mini-batch's row 37 is not the file's line 37: the message says so, and how to find it
    assert "numbered within this request" in response.json()["message"]
    assert "search the file for the record described" in response.json()["message"]


def test_an_error_in_a_later_slice_of_a_csv_body_with_a_header_names_its_row_and_line(batch_server):
    """A body of a header line (columns in another order than the model's), a value over two
    lines and 10 MB of rows is decoded in 4 MB slices: a short row in a later slice was named
    "row 107984", counted from that slice's first row (the column reordering numbered its rows
    from 1), and its line, two further down, not at all."""
    rows = sm.features("binary")[["balance", "age", "job", "contact"]]
    block = _block(rows)
    repeats = 10_000_000 // len(block)
    body = _block(rows.iloc[:1], header=True) + b'1,40,"adm\nin",cellular\n' + block * repeats + b"1,2\n"
    good_rows = 2 + block.count(b"\n") * repeats  # the row under the header, the two-line one, the block's
    response = batch_server.invoke(body, "text/csv", timeout=300)
    assert response.status_code == 400, response.text[:500]
    message = response.json()["message"]
    assert message.startswith(f"row {good_rows + 1} (line {good_rows + 3} of the body) has 2 values"), message
    assert message.endswith(MINI_BATCH_NOTE)


@pytest.mark.parametrize("after", [20_000, 1_000_000], ids=["small_slice", "pyarrow_slice"])
def test_u_feff_starting_a_later_slice_is_kept_as_in_a_small_body(batch_server, after):
    """U+FEFF starting the first value of a later slice of a large CSV body was dropped as a byte
    order mark (by the utf-8-sig decode of a slice under 64 KiB, by pyarrow above): the age
    '\ufeff41' was read as 41 and answered 200, where the same row in a small body is the 400 naming
    it.  Only the request body's first bytes are a byte order mark."""
    row = b"41,1000.5,admin,cellular\n"
    rows = [row] * ((app.CHUNK_BYTES + after) // len(row))
    body = b"".join(rows)
    slices = list(line_slices(io.BytesIO(body), len(body), length=len(body)))
    assert len(slices) == 2
    start = slices[0].count(b"\n")  # the second slice's first row (a longer row there moves no cut)
    rows[start] = "\ufeff".encode() + row
    small = batch_server.invoke(row + rows[start], "text/csv")
    large = batch_server.invoke(b"".join(rows), "text/csv", timeout=300)
    said = "column 'age' (numeric): text '\\ufeff41' is not a number"
    assert small.status_code == large.status_code == 400, large.text[:300]
    assert small.json()["message"].startswith(f"row 2, {said}"), small.text
    assert large.json()["message"].startswith(f"row {start + 1}, {said}"), large.text


def test_only_a_batch_servers_row_numbers_say_they_count_from_the_mini_batch(batch_server):
    bad = b'[41, 1, "admin", "cellular"]\n[41, "plenty", "admin", "cellular"]\n'
    message = batch_server.invoke(bad, "application/jsonlines").json()["message"]
    assert message.startswith("row 2, column 'balance'") and message.endswith(MINI_BATCH_NOTE)
    empty = batch_server.invoke(b"", "text/csv").json()["message"]
    assert MINI_BATCH_NOTE not in empty  # no row number in it: no note
    server = sm.start(sm.trained_root("binary"), workers=1)
    try:
        assert MINI_BATCH_NOTE not in server.invoke(bad, "application/jsonlines").json()["message"]
    finally:
        server.stop()


def _minor_faults(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[7])


def test_a_worker_reuses_its_memory_from_one_batch_request_to_the_next(batch_server):
    """Each batch slice's arrays land in memory the previous slice or request freed.  Handing it
    all back after every request made the worker fault its working set in afresh each time:
    about 50,000 minor faults per 10 MB body here (20 per page of body); reused, about 8,000,
    most of them Python's own small-object arenas, which it maps and unmaps itself."""
    rows = sm.features("binary")
    block = _block(rows)
    body = block * (10_000_000 // len(block))
    worker = psutil.Process(batch_server.process.pid).children()[0]
    answers = []
    for _ in range(3):  # the first requests reach the working set
        before = _minor_faults(worker.pid)
        response = batch_server.invoke(body, "text/csv", "text/csv", timeout=300)
        assert response.status_code == 200, response.text[:500]
        answers.append(response.content)
    faults = _minor_faults(worker.pid) - before
    assert answers[0] == answers[1] == answers[2]
    assert faults < 8 * len(body) // 4096, f"{faults} minor page faults in the third 10 MB request"


@pytest.fixture(scope="module")
def numbered_root(tmp_path_factory):
    """A model whose features are named like values: "0", "1", "2" (a NumPy array's columns,
    from Parquet), each holding the integers 0-5."""
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=(300, 3))
    data = pd.DataFrame(values.astype(float), columns=["0", "1", "2"])
    data.insert(0, "label", np.where(values @ [2, 1, -1] > 4, "hi", "lo"))
    root = support.make_ml_root(
        tmp_path_factory.mktemp("numbered"),
        channels={"train": {"train.parquet": support.parquet_bytes(data)}},
        hyperparameters={"target": "label", "algorithm": "decision_tree"},
        content_types={"train": "application/x-parquet"},
    )
    result = support.run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


def test_a_row_like_the_header_at_a_later_slices_start_is_a_row(numbered_root):
    """A headerless batch whose later slices each start with a row that spells the feature names
    (0,1,2 in some order): header detection ran again on every slice and dropped that row, so the
    answer was one line short and every later answer joined to the wrong input."""
    rng = np.random.default_rng(1)
    rows = [",".join(map(str, row)) + "\n" for row in rng.integers(0, 6, size=(1_500_000, 3))]
    rows[0] = "1,2,0\n"  # the body's first line: a valid row that also names every feature
    body = "".join(rows).encode()
    # where the server cuts this body (rows of one length: replacing rows moves no cut)
    starts = np.cumsum(
        [0] + [s.count(b"\n") for s in line_slices(io.BytesIO(body), len(body), length=len(body))]
    )
    assert len(starts) >= 3  # two later slices at least
    for k, start in enumerate(starts[1:-1]):
        rows[start] = ("0,1,2\n", "2,1,0\n")[k % 2]
    body = "".join(rows).encode()
    server = sm.start(numbered_root, workers=1, env=BATCH_ENV)
    try:
        response = server.invoke(body, "text/csv", "text/csv", timeout=300)
    finally:
        server.stop()
    assert response.status_code == 200, response.text[:500]
    answers = response.text.splitlines()
    assert len(answers) == len(rows)
    model = artifact.load(numbered_root / "model")
    frame = pd.read_csv(io.BytesIO(body), header=None, names=["0", "1", "2"], dtype=float)
    expected = [model.classes[i] for i in np.asarray(model.estimator.predict(frame)).astype(int)]
    assert answers == expected


@pytest.mark.parametrize(("before", "after"), [(3, 3), (1000, 700_000)])
def test_an_unclosed_quote_is_a_400_naming_the_row_it_opens_in(batch_server, before, after):
    """An unclosed quote swallows the rest of the body: the 400 said "unexpected end of data" and
    named no row, in a small body or deep in one sliced at 4 MB."""
    good = b"40,1000.5,admin,cellular\n"
    body = good * before + b'41,"1000.5,admin,cellular\n' + good * after
    response = batch_server.invoke(body, "text/csv", "text/csv", timeout=120)
    assert response.status_code == 400, response.text[:300]
    message = response.json()["message"]
    assert f"row {before + 1}" in message and "never closed" in message, message


def test_a_quote_inside_a_first_lines_value_does_not_stall_a_large_body(batch_server):
    """A quote inside an unquoted value (``12" pizza``: the csv module reads it as part of the
    value) on a body's first line: finding that line's end counted the quotes from the body's
    start again at every later newline, so a 10 MB body was still running when batch transform's
    600 s invocation timeout ended (and again on each of its retries)."""
    row = b"41,1000.5,admin,cellular\n"
    first = b'41,1000.5,12" pizza,cellular\n'
    body = first + row * (10_000_000 // len(row))
    response = batch_server.invoke(body, "text/csv", "text/csv", timeout=300)
    assert response.status_code == 200, response.text[:500]
    answers = response.text.splitlines()
    assert len(answers) == body.count(b"\n")
    assert answers[0] == batch_server.invoke(first, "text/csv", "text/csv").text.strip()
    assert answers[1:] == answers[1:2] * (len(answers) - 1)
