"""Fuzz the running server with >= 2,000 generated bodies and headers (hypothesis).

Whatever arrives — valid rows, truncated bodies, wrong types, huge numbers, NaN/Infinity,
unicode, nested JSON, random bytes, odd media types — the server answers without a 5xx,
every 4xx carries the JSON error body, and no worker dies.  A second fuzz sends rows of every
content type the model can take (npy and Parquet that decode, bodies past 64 KiB, the content
type matched to the body most of the time, some bodies damaged) and checks every 200's answers
against the model's own predictions for the same rows.
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


# -- valid and broken bodies of every content type, answers checked against the model ---------------

ROW_FORMATS = {
    "binary": ["text/csv", "application/json", "application/jsonlines", "application/x-parquet"],
    "regression": [
        "text/csv",
        "application/json",
        "application/jsonlines",
        "application/x-parquet",
        "application/x-npy",
    ],
}
TRICKY_TEXT = ["admin", "retired", "cellular", 'qu"ote', "com,ma", " spaced ", "ünï😀", "line\nbreak", "x"]


def _feature_rows(features) -> st.SearchStrategy:
    def value(feature):
        if feature.kind == "numeric":
            return st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False), st.integers(-1000, 1000))
        return st.one_of(st.none(), st.sampled_from(list(feature.categories) + TRICKY_TEXT))

    return st.lists(st.tuples(*(value(f) for f in features)).map(list), min_size=1, max_size=12)


def _encode(rows: list[list], names: list[str], media_type: str, shape: int) -> bytes:
    import csv
    import io

    import numpy as np
    import pandas as pd

    records = [dict(zip(names, row, strict=True)) for row in rows]
    if media_type == "text/csv":
        out = io.StringIO()
        if shape % 2:
            csv.writer(out, lineterminator="\n").writerow(names)
        csv.writer(out, lineterminator="\n").writerows([["" if v is None else v for v in r] for r in rows])
        return out.getvalue().encode("utf-8")
    if media_type == "application/json":
        return json.dumps(
            [{"instances": rows}, {"instances": records}, rows, {"inputs": records}][shape % 4]
        ).encode()
    if media_type == "application/jsonlines":
        return "".join(
            json.dumps(r if shape % 2 else row) + "\n" for r, row in zip(records, rows, strict=True)
        ).encode()
    if media_type == "application/x-npy":
        buf = io.BytesIO()
        np.save(buf, np.array([[np.nan if v is None else float(v) for v in row] for row in rows]))
        return buf.getvalue()
    frame = pd.DataFrame(rows, columns=names)
    for column in frame.columns:
        if frame[column].map(lambda v: isinstance(v, str)).any():
            frame[column] = frame[column].astype(object)
        else:
            frame[column] = pd.to_numeric(frame[column])
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def _expected(model, rows: list[list]) -> list:
    from byoc.serving.schema import RequestSchema

    frame = RequestSchema(model.features).from_rows(rows).frame()
    predicted = model.estimator.predict(frame)
    if model.is_classifier:
        return [model.classes[int(i)] for i in predicted]
    return [float(v) for v in predicted]


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_fuzzed_bodies_of_every_type_answer_the_models_own_predictions(kind):
    import random

    from byoc import artifact

    model = artifact.load(sm.trained_root(kind) / "model")
    names = list(model.feature_names)
    formats = ROW_FORMATS[kind]
    running = sm.start(sm.trained_root(kind), workers=2)
    seen = {"valid": 0, "large": 0, "broken": 0, "statuses": set()}

    @settings(
        max_examples=250,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(
        rows=_feature_rows(model.features),
        media_type=st.sampled_from(formats),
        shape=st.integers(0, 7),
        copies=st.sampled_from([1, 800]),  # 800 copies: past 64 KiB for every format
        fault=st.sampled_from([None] * 6 + ["truncate", "flip", "wrong_type"]),
        seed=st.integers(0, 2**32 - 1),
    )
    def check(rows, media_type, shape, copies, fault, seed):
        rows = rows * copies
        body = _encode(rows, names, media_type, shape)
        content_type = media_type
        rnd = random.Random(seed)
        if fault == "truncate":
            body = body[: rnd.randrange(len(body))]
        elif fault == "flip":
            at = rnd.randrange(len(body))
            body = body[:at] + bytes([body[at] ^ (1 << rnd.randrange(8))]) + body[at + 1 :]
        elif fault == "wrong_type":
            content_type = rnd.choice([f for f in formats if f != media_type])
        response = running.invoke(body, content_type, "application/json", timeout=60)
        seen["statuses"].add(response.status_code)
        assert response.status_code < 500, (media_type, fault, response.text[:300])
        if response.status_code != 200:
            error = response.json()
            assert set(error) >= {"error", "message", "request_id"} and error["message"]
            assert fault is not None, (media_type, shape, body[:300], error)  # a valid body must be served
            seen["broken"] += 1
            return
        if fault is not None:
            return  # a damaged body that still decodes: no right answer to compare with
        seen["valid"] += 1
        seen["large"] += len(body) > 64 * 1024
        answers = [p["predicted_label"] for p in response.json()["predictions"]]
        expected = _expected(model, rows)
        if model.is_classifier:
            assert answers == expected, (media_type, shape, rows[:3])
        else:
            assert answers == pytest.approx(expected, rel=1e-5, abs=1e-6), (media_type, shape, rows[:3])

    try:
        check()
    finally:
        output = running.stop()
    assert seen["valid"] >= 100 and seen["large"] >= 20 and seen["broken"] >= 20, seen
    assert "Traceback" not in output
