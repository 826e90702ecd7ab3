"""The SageMaker Python SDK's own serializers and deserializers against the running server.

Requests go through the SDK's local-mode runtime client (``sagemaker.local``) pointed at the
server on localhost, so the bytes and headers (Content-Type, Accept) are exactly what
``Predictor.predict`` sends to an endpoint.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import serving_models as sm
from sagemaker import deserializers, serializers
from sagemaker.local import LocalSession, local_session
from sagemaker.predictor import Predictor


@pytest.fixture(scope="module")
def servers():
    started = {kind: sm.start(sm.trained_root(kind), workers=1) for kind in ("binary", "multiclass")}
    yield started
    for server in started.values():
        server.stop()


@pytest.fixture
def predictor(servers, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    monkeypatch.setattr(local_session, "get_docker_host", lambda: "127.0.0.1")

    def make(kind: str, serializer, deserializer) -> Predictor:
        session = LocalSession()
        session.sagemaker_runtime_client.serving_port = servers[kind].port
        return Predictor(
            "byoc-local", sagemaker_session=session, serializer=serializer, deserializer=deserializer
        )

    return make


def _rows(kind: str, n: int) -> list[list]:
    return json.loads(sm.features(kind).iloc[:n].to_json(orient="values"))


def _records(kind: str, n: int) -> list[dict]:
    return json.loads(sm.features(kind).iloc[:n].to_json(orient="records"))


def _expected(kind: str, n: int) -> list:
    from test_serve import expected

    return expected(kind, sm.features(kind).iloc[:n])


def test_csv_serializer_and_deserializer(predictor):
    rows = _rows("binary", 20)
    result = predictor("binary", serializers.CSVSerializer(), deserializers.CSVDeserializer()).predict(rows)
    assert result == [[label] for label in _expected("binary", 20)]


def test_csv_serializer_with_a_numpy_array(predictor):
    array = sm.features("multiclass").iloc[:10].to_numpy()
    result = predictor("multiclass", serializers.CSVSerializer(), deserializers.CSVDeserializer()).predict(
        array
    )
    assert result == [[label] for label in _expected("multiclass", 10)]


def test_json_serializer_and_deserializer(predictor):
    p = predictor("binary", serializers.JSONSerializer(), deserializers.JSONDeserializer())
    result = p.predict(
        {"instances": _records("binary", 15)}, custom_attributes="output=predicted_label,probability"
    )
    assert [r["predicted_label"] for r in result["predictions"]] == _expected("binary", 15)
    assert all(0.5 <= r["probability"] <= 1.0 for r in result["predictions"])


def test_numpy_serializer_and_deserializer(predictor):
    array = sm.features("multiclass").iloc[:12].to_numpy(dtype=np.float64)
    p = predictor("multiclass", serializers.NumpySerializer(), deserializers.NumpyDeserializer())
    assert p.predict(array).tolist() == _expected("multiclass", 12)
    proba = p.predict(array, custom_attributes="output=probabilities")
    assert proba.shape == (12, 3) and np.allclose(proba.sum(axis=1), 1.0)


def test_jsonlines_serializer_and_deserializer(predictor):
    p = predictor("binary", serializers.JSONLinesSerializer(), deserializers.JSONLinesDeserializer())
    result = p.predict(_records("binary", 10))
    assert [r["predicted_label"] for r in result] == _expected("binary", 10)
    result = p.predict(_rows("binary", 10))
    assert [r["predicted_label"] for r in result] == _expected("binary", 10)
