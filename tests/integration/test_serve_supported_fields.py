"""Autopilot's serving convention, SAGEMAKER_INFERENCE_SUPPORTED, end to end: the real ``train`` writes the
environment to deploy each model with (output/data/inference_environment.json, and model.json), and the
real server started with it answers every advertised field; a narrower SAGEMAKER_INFERENCE_SUPPORTED
refuses, at start, an output setting outside it and, per request, a custom attribute outside it (400 JSON
naming the allowed fields)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import serving_models as sm
from test_serve import assert_error, csv_body, expected, expected_proba

ALL_FIELDS = "predicted_label,probability,probabilities,labels"


def written_environment(kind: str) -> dict[str, str]:
    root = sm.trained_root(kind)
    environment = json.loads((root / "output" / "data" / "inference_environment.json").read_text())
    model_json = json.loads((root / "model" / "model.json").read_text())
    assert model_json["inference"]["environment"] == environment
    return environment


@pytest.mark.parametrize(
    "kind,supported",
    [("binary", ALL_FIELDS), ("multiclass", ALL_FIELDS), ("regression", "predicted_label")],
)
def test_train_writes_the_environment_to_deploy_the_model_with(kind, supported):
    assert written_environment(kind) == {
        "SAGEMAKER_INFERENCE_SUPPORTED": supported,
        "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label",
    }


def test_a_server_started_with_that_environment_answers_every_advertised_field():
    environment = written_environment("multiclass")
    rows = sm.features("multiclass").iloc[::30]
    server = sm.start(sm.trained_root("multiclass"), workers=1, env=environment)
    try:
        default = server.invoke(csv_body(rows), "text/csv", "application/json")
        every = server.invoke(
            csv_body(rows), "text/csv", "application/json", attributes="output=" + ALL_FIELDS
        )
    finally:
        server.stop()
    assert [p["predicted_label"] for p in default.json()["predictions"]] == expected("multiclass", rows)
    assert list(default.json()["predictions"][0]) == ["predicted_label"]
    predictions = every.json()["predictions"]
    assert [list(p) for p in predictions] == [ALL_FIELDS.split(",")] * len(rows)
    probabilities = expected_proba("multiclass", rows)
    for p, want in zip(predictions, probabilities, strict=True):
        # Autopilot's (ensembling mode) meaning: the probability of the predicted label
        assert p["probability"] == pytest.approx(want.max())
        assert p["probability"] == pytest.approx(want[p["labels"].index(p["predicted_label"])])


def test_an_npy_request_of_several_fields_is_answered_in_json_when_the_accept_allows_it():
    """npy carries one field: an npy request on an endpoint answering predicted_label,probability (the
    SDK's inference_response_keys) was a 406 with no Accept, ``*/*`` or an Accept also taking JSON."""
    rows = sm.features("multiclass").iloc[::30]
    buf = io.BytesIO()
    np.save(buf, rows.to_numpy(dtype=np.float64))
    env = {**written_environment("multiclass"), "SAGEMAKER_INFERENCE_OUTPUT": "predicted_label,probability"}
    server = sm.start(sm.trained_root("multiclass"), workers=1, env=env)
    accepts = (None, "*/*", "application/x-npy, application/json;q=0.5", "application/x-npy")
    try:
        replies = {accept: server.invoke(buf.getvalue(), "application/x-npy", accept) for accept in accepts}
        one = server.invoke(buf.getvalue(), "application/x-npy", attributes="output=probability")
    finally:
        server.stop()
    for accept in accepts[:-1]:
        reply = replies[accept]
        assert reply.status_code == 200, (accept, reply.text)
        assert reply.headers["Content-Type"].startswith("application/json")
        predictions = reply.json()["predictions"]
        assert [p["predicted_label"] for p in predictions] == expected("multiclass", rows)
        assert [p["probability"] for p in predictions] == pytest.approx(
            expected_proba("multiclass", rows).max(axis=1)
        )
    assert_error(replies["application/x-npy"], 406, "not_acceptable", "carries one output field")
    assert one.status_code == 200 and one.headers["Content-Type"].startswith("application/x-npy")
    assert np.load(io.BytesIO(one.content)).shape == (len(rows),)


def test_a_request_outside_the_supported_fields_is_a_400_naming_them():
    server = sm.start(
        sm.trained_root("binary"),
        workers=1,
        env={"SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label,probability"},
    )
    rows = sm.features("binary").iloc[:3]
    try:
        allowed = server.invoke(
            csv_body(rows), "text/csv", "application/json", attributes="output=probability"
        )
        refused = server.invoke(csv_body(rows), "text/csv", attributes="output=predicted_label,probabilities")
    finally:
        server.stop()
    assert allowed.status_code == 200, allowed.text
    assert len(allowed.json()["predictions"]) == 3
    body = assert_error(
        refused,
        400,
        "bad_output_fields",
        "'probabilities'",
        "SAGEMAKER_INFERENCE_SUPPORTED=predicted_label,probability",
        "use some of predicted_label, probability",
    )
    assert "labels" not in body["message"].split("use some of")[1]


@pytest.mark.parametrize(
    "kind,env,fragments",
    [
        (
            "binary",
            {"SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label", "SAGEMAKER_INFERENCE_OUTPUT": "probability"},
            [
                "SAGEMAKER_INFERENCE_OUTPUT",
                "'probability' not supported",
                "SAGEMAKER_INFERENCE_SUPPORTED=predicted_label",
            ],
        ),
        (
            "binary",
            {"SAGEMAKER_INFERENCE_SUPPORTED": "probability,probabilities"},
            ["SAGEMAKER_INFERENCE_OUTPUT (unset: predicted_label)", "'predicted_label' not supported"],
        ),
        (
            "regression",
            {"SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label,probability"},
            ["SAGEMAKER_INFERENCE_SUPPORTED", "'probability' not available for this model"],
        ),
        (
            "binary",
            {"SAGEMAKER_INFERENCE_SUPPORTED": "predicted_label,score"},
            ["unknown output field 'score'"],
        ),
        (
            "regression",
            {"SAGEMAKER_INFERENCE_OUTPUT": "labels"},
            [
                "SAGEMAKER_INFERENCE_OUTPUT: 'labels' not available for this model: it is a regressor (its "
                "predicted_label is the predicted value; no classes, no probabilities), which returns "
                "predicted_label only; use predicted_label"
            ],
        ),
    ],
    ids=[
        "output-outside-supported",
        "default-outside-supported",
        "supported-beyond-the-model",
        "unknown",
        "classes-of-a-regressor",
    ],
)
def test_a_server_whose_settings_contradict_the_supported_fields_refuses_to_start(kind, env, fragments):
    result = sm.run_serve(sm.trained_root(kind), **env)
    assert result.returncode == 1, result.stdout + result.stderr
    first = [line for line in result.stderr.splitlines() if line.startswith("serve: cannot start:")]
    assert first, result.stderr
    for fragment in fragments:
        assert fragment in first[0], first[0]
