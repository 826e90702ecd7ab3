"""Inference hooks for the trained pipeline, with the SageMaker scikit-learn container's
signatures (model_fn, input_fn, predict_fn, output_fn). The model directory holds
model.joblib and columns.json (the training columns, since CSV requests carry no header)."""

from __future__ import annotations

import io
import json
import os

import joblib
import pandas as pd


def model_fn(model_dir):
    model = joblib.load(os.path.join(model_dir, "model.joblib"))
    with open(os.path.join(model_dir, "columns.json")) as fh:
        model.columns_ = json.load(fh)
    return model


def input_fn(request_body, request_content_type):
    if isinstance(request_body, bytes):
        request_body = request_body.decode("utf-8")
    if request_content_type.startswith("text/csv"):
        return pd.read_csv(io.StringIO(request_body), header=None)
    if request_content_type.startswith("application/json"):
        document = json.loads(request_body)
        rows = document.get("instances", document) if isinstance(document, dict) else document
        return pd.DataFrame(rows)
    raise ValueError(f"unsupported content type {request_content_type}: send text/csv or application/json")


def predict_fn(input_data, model):
    if list(input_data.columns) != model.columns_:  # headerless CSV or lists of values
        input_data = input_data.set_axis(model.columns_[: input_data.shape[1]], axis=1)
    return model.predict(input_data)


def output_fn(prediction, accept):
    if accept.startswith("text/csv"):
        return "\n".join(str(p) for p in prediction) + "\n", "text/csv"
    return json.dumps(
        {"predictions": [p.item() if hasattr(p, "item") else p for p in prediction]}
    ), "application/json"
