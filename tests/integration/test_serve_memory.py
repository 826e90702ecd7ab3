"""Memory of the real server (all its processes) during and after 100 MB batch bodies.

Batch transform with SplitType=Line and MaxPayloadInMB=100 sends bodies of up to 100 MB: CSV,
JSON Lines, or a JSON document in any shape the server reads (rows or records under
"instances", a bare list of records, ``dataframe_split``).  The server's total memory (the sum
of every process's proportional set size: master and workers, shared pages counted once,
sampled while the request runs) must grow by less than the body, and come back to within 10%
of where it was before the request: after a body this large the worker hands back what it freed
(its answer too, 33 MB for JSON Lines, which it kept on glibc's heap when it held less than its
retained limit: 1.13-1.25x).  The baseline is taken, settled, after two warm-up
requests of the same shape; "after" is awaited for up to 30 s, since a loaded machine may hand
memory back late.  Each is answered in its own format, as batch transform asks.  JSON shapes
that cannot be read row by row (columns; ``dataframe_split`` with "data" before "columns") are
refused above the one-piece limit with a 413, in the same bounded memory."""

from __future__ import annotations

import json
import threading
import time

import psutil
import pytest
import requests
import serving_models as sm

BATCH_ENV = {
    "SAGEMAKER_BATCH": "True",
    "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100",
    "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD",
}
BODY_BYTES = 99 * 1024 * 1024
SETTLED_WITHIN = 1.1  # memory after the request, at most this times memory before it
WARM_UP_BYTES = 16 * 1024 * 1024  # a few slices: the allocators reach their working size


def total_memory(pid: int) -> int:
    """Proportional set size of the server's master and workers (shared pages counted once)."""
    master = psutil.Process(pid)
    total = 0
    for process in [master, *master.children(recursive=True)]:
        try:
            total += process.memory_full_info().pss
        except psutil.NoSuchProcess:
            pass
    return total


class PeakSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, total_memory(self.pid))
            self.done.wait(0.02)

    def __enter__(self) -> PeakSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(10)


def _repeat_to(block: bytes, size: int) -> bytes:
    return block * (size // len(block))


def csv_body(size: int) -> bytes:
    return _repeat_to(sm.features("binary").to_csv(index=False, header=False).encode(), size)


def jsonlines_body(size: int) -> bytes:
    records = json.loads(sm.features("binary").to_json(orient="records"))
    return _repeat_to("".join(json.dumps(r) + "\n" for r in records).encode(), size)


def json_body(size: int) -> bytes:
    rows = json.loads(sm.features("binary").to_json(orient="values"))
    block = ",".join(json.dumps(r) for r in rows).encode()
    inner = _repeat_to(block + b",", size - 20)[:-1]
    return b'{"instances": [' + inner + b"]}"


def json_records_body(size: int) -> bytes:
    records = json.loads(sm.features("binary").to_json(orient="records"))
    block = ",".join(json.dumps(r) for r in records).encode()
    return b"[" + _repeat_to(block + b",", size - 20)[:-1] + b"]"


def _split_parts(size: int) -> tuple[list[str], bytes, int]:
    """The columns in reverse order, the rows' JSON in that order, and how many rows."""
    frame = sm.features("binary")
    columns = list(frame.columns)[::-1]
    rows = json.loads(frame[columns].to_json(orient="values"))
    block = ",".join(json.dumps(r) for r in rows).encode() + b","
    data = _repeat_to(block, size - 100)[:-1]
    return columns, data, data.count(b"],[") + 1


def json_split_body(size: int) -> bytes:
    """pandas' orient="split" order (columns, index, data), with an index as long as the data."""
    columns, data, count = _split_parts(size * 5 // 6)
    index = ",".join(map(str, range(count))).encode()
    head = b'{"dataframe_split": {"columns": ' + json.dumps(columns).encode() + b', "index": ['
    return head + index + b'], "data": [' + data + b"]}}"


def json_split_data_first_body(size: int) -> bytes:
    columns, data, _ = _split_parts(size)
    return b'{"dataframe_split": {"data": [' + data + b'], "columns": ' + json.dumps(columns).encode() + b"}}"


def json_columns_body(size: int) -> bytes:
    frame = sm.features("binary")
    once = {name: json.loads(frame[name].to_json(orient="values")) for name in frame.columns}
    copies = size // len(json.dumps(once))
    columns = {name: values * copies for name, values in once.items()}
    return json.dumps({"inputs": columns}).encode()


def _labels(answer: bytes, content_type: str) -> list[str]:
    if content_type == "text/csv":
        return answer.decode().splitlines()
    if content_type == "application/json":
        return [p["predicted_label"] for p in json.loads(answer)["predictions"]]
    return [json.loads(line)["predicted_label"] for line in answer.splitlines()]


@pytest.fixture(scope="module")
def batch_server():
    server = sm.start(sm.trained_root("binary"), workers=1, env=BATCH_ENV)
    yield server
    server.stop()


def settled_memory(pid: int, samples: int = 5) -> int:
    """The server's total memory once it is idle: the least of a few samples (a sample taken while
    the worker still frees the last batch would overstate it)."""
    values = []
    for _ in range(samples):
        time.sleep(0.2)
        values.append(total_memory(pid))
    return min(values)


def memory_around(
    server, make_body, content_type: str, status: int = 200
) -> tuple[requests.Response, int, int, int, int]:
    """(response, memory before, peak while it ran, memory after, body size) for one BODY_BYTES
    request, after two warm-up requests of the same shape answered with ``status``."""
    pid = server.process.pid
    for _ in range(2):  # lazy imports, caches, the allocators' pools at their working size: not measured
        assert server.invoke(make_body(WARM_UP_BYTES), content_type).status_code == status
    body = make_body(BODY_BYTES)
    assert 95 * 1024 * 1024 < len(body) <= 100 * 1024 * 1024
    before = settled_memory(pid)
    with PeakSampler(pid) as sampler:  # answered in the request's own format
        response = server.invoke(body, content_type, content_type, timeout=600)
    bound = before * SETTLED_WITHIN
    deadline = time.monotonic() + 30  # under load the worker may still be handing memory back
    after = settled_memory(pid)
    while after > bound and time.monotonic() < deadline:
        after = settled_memory(pid)
    return response, before, max(sampler.peak, before), after, len(body)


def assert_bounded(size: int, before: int, peak: int, after: int) -> None:
    mib = 2**20
    figures = f"body {size / mib:.0f} MiB, before {before / mib:.0f}, peak {peak / mib:.0f}, after {after / mib:.0f} MiB"
    print(figures)
    assert peak - before < size, figures
    assert after <= before * SETTLED_WITHIN, figures


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make_body", "content_type"),
    [
        (csv_body, "text/csv"),
        (jsonlines_body, "application/jsonlines"),
        (json_body, "application/json"),
        (json_records_body, "application/json"),
        (json_split_body, "application/json"),
    ],
    ids=["csv", "jsonlines", "json-instances", "json-records", "json-dataframe-split"],
)
def test_a_100_mb_batch_grows_memory_less_than_the_body_and_gives_it_back(
    batch_server, make_body, content_type
):
    rows = len(sm.features("binary"))
    expected = batch_server.invoke(
        sm.features("binary").to_csv(index=False, header=False), "text/csv", "text/csv"
    ).text.splitlines()
    response, before, peak, after, size = memory_around(batch_server, make_body, content_type)
    assert response.status_code == 200, response.text[:500]
    labels = _labels(response.content, content_type)
    assert len(labels) % rows == 0 and labels[:rows] == expected and labels[-rows:] == expected
    assert_bounded(size, before, peak, after)


@pytest.mark.slow
@pytest.mark.parametrize(
    "make_body",
    [json_columns_body, json_split_data_first_body],
    ids=["json-columns", "json-split-data-first"],
)
def test_a_100_mb_json_body_that_cannot_be_streamed_is_refused_in_bounded_memory(batch_server, make_body):
    """Columns (and dataframe_split with "data" before "columns") must be read whole to make one
    row: above the one-piece limit they are a 413 saying how to send rows, not a 1 GB worker."""
    response, before, peak, after, size = memory_around(batch_server, make_body, "application/json", 413)
    assert response.status_code == 413, response.text[:500]
    error = response.json()
    assert error["error"] == "json_shape_too_large" and "send the rows as" in error["message"], error
    assert_bounded(size, before, peak, after)
