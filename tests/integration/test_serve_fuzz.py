"""Fuzz the running server with >= 2,000 generated bodies and headers (hypothesis).

Whatever arrives — valid rows, truncated bodies, wrong types, huge numbers, NaN/Infinity,
unicode, nested JSON, random bytes, odd media types — the server answers without a 5xx,
every 4xx carries the JSON error body, and no worker dies.
"""

from __future__ import annotations

import json
import time

import psutil
import pytest
import serving_models as sm
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

MEDIA_TYPES = [
    "text/csv",
    "text/csv; charset=utf-8",
    "application/json",
    "application/jsonlines",
    "application/x-npy",
    "application/x-parquet",
    "application/json; charset=latin-9",
    "text/plain",
    "",
    "*/*",
    "application/x-recordio-protobuf",
]
ACCEPTS = [
    None,
    "*/*",
    "text/csv",
    "application/json",
    "application/jsonlines",
    "application/x-npy",
    "text/html",
    "application/json;q=0, text/csv;q=0.1",
    "garbage;;q=x",
]
ATTRIBUTES = [
    None,
    "output=predicted_label",
    "output=probability,probabilities,labels",
    "output=nonsense",
    "output=",
    "foo=bar;output=labels",
    "=;=;",
]
FEATURES = ["age", "balance", "job", "contact"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["NaN", "Infinity", "-1e999", "1e308", "NA", "", "admin", "yes", "😀", "\x00"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
rows = st.lists(values, min_size=0, max_size=6)
records = st.dictionaries(st.sampled_from(FEATURES + ["deposit", "x"]), values, max_size=6)
documents = st.one_of(
    values,
    st.lists(rows, max_size=4),
    st.lists(records, max_size=4),
    st.builds(
        lambda r: {"instances": r}, st.one_of(st.lists(rows, max_size=3), st.lists(records, max_size=3))
    ),
    st.builds(lambda r: {"inputs": r}, st.one_of(records, st.lists(rows, max_size=3))),
    st.builds(
        lambda c, d: {"dataframe_split": {"columns": c, "data": d}},
        st.lists(st.sampled_from(FEATURES + ["z"]), max_size=5),
        st.lists(rows, max_size=3),
    ),
    st.builds(lambda r: {"dataframe_records": r}, st.lists(records, max_size=3)),
)


def _json_text(document) -> str:
    return json.dumps(document, allow_nan=True, default=str)


def _csv_text(table) -> str:
    return "\n".join(
        ",".join("" if v is None else str(v) for v in row) if isinstance(row, list) else str(row)
        for row in table
    )


bodies = st.one_of(
    documents.map(lambda d: _json_text(d).encode()),
    documents.map(lambda d: _json_text(d).encode()).flatmap(
        lambda b: st.integers(0, max(0, len(b) - 1)).map(lambda n: b[:n])
    ),  # truncated
    st.lists(rows, max_size=5).map(lambda t: _csv_text(t).encode("utf-8", "surrogatepass")),
    st.lists(st.one_of(rows, records), max_size=4).map(
        lambda items: "\n".join(_json_text(i) for i in items).encode()
    ),
    st.just(b"40,1000.5,admin,cellular\n"),
    st.just(b'{"instances": [[40, 1000.5, "admin", "cellular"]]}'),
    st.binary(max_size=200),
    st.binary(max_size=60).map(lambda b: b"\x93NUMPY\x01\x00" + b),
    st.binary(max_size=60).map(lambda b: b"PAR1" + b + b"PAR1"),
)


@pytest.fixture(scope="module")
def server():
    running = sm.start(sm.trained_root("binary"), workers=2)
    yield running
    running.stop()


def test_fuzzed_requests_never_crash_or_5xx(server):
    master = psutil.Process(server.process.pid)
    deadline = time.monotonic() + 60  # /ping passes once one worker is up; wait for both
    while len(master.children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    workers_before = {p.pid for p in master.children()}
    assert len(workers_before) == 2, workers_before
    seen = {"count": 0, "statuses": set()}

    @settings(
        max_examples=2000,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate),  # no shrinking: each example is a real request
        suppress_health_check=list(HealthCheck),
    )
    @given(
        body=bodies,
        content_type=st.sampled_from(MEDIA_TYPES),
        accept=st.sampled_from(ACCEPTS),
        attributes=st.sampled_from(ATTRIBUTES),
    )
    def check(body, content_type, accept, attributes):
        response = server.invoke(body, content_type or None, accept, attributes, timeout=30)
        seen["count"] += 1
        seen["statuses"].add(response.status_code)
        assert response.status_code < 500, (body[:200], content_type, accept, response.text[:500])
        if response.status_code >= 400:
            error = response.json()
            assert set(error) >= {"error", "message", "request_id"}, error
            assert isinstance(error["message"], str) and error["message"]
            assert "Traceback" not in error["message"]
        else:
            assert response.status_code == 200

    check()
    assert seen["count"] >= 2000
    assert 200 in seen["statuses"] and 400 in seen["statuses"]
    assert {p.pid for p in master.children()} == workers_before  # no worker crashed
