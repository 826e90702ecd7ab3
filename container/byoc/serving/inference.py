"""The loaded model, prepared once for fast, repeated prediction.

User hooks (a later issue) plug in here: :class:`Predictor` is the "predict" step between
a validated frame and a :class:`~byoc.serving.output.Prediction`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from byoc.artifact import ModelArtifact
from byoc.serving.output import (FIELDS, LABELS, NEEDS_PROBA, PREDICTED_LABEL, PROBABILITIES,
                                 PROBABILITY, Prediction)
from byoc.serving.schema import Batch, RequestSchema


def single_threaded(estimator: Any) -> Any:
    """Set every ``n_jobs`` in the pipeline to 1.

    Training defaults to all CPUs; at serving time each gunicorn worker already owns a CPU,
    and spawning a thread pool per request costs more than a small prediction itself.
    """
    if hasattr(estimator, "get_params") and hasattr(estimator, "set_params"):
        try:
            params = estimator.get_params(deep=True)
        except Exception:  # noqa: BLE001 - exotic estimators: leave them alone
            return estimator
        updates = {k: 1 for k, v in params.items() if k.split("__")[-1] == "n_jobs" and v not in (None, 1)}
        if updates:
            estimator.set_params(**updates)
    return estimator


class Predictor:
    """A model artifact plus everything the request path would otherwise recompute."""

    def __init__(self, model: ModelArtifact) -> None:
        self.model = model
        self.estimator = single_threaded(model.estimator)
        self.schema = RequestSchema(model.features)
        self.is_classifier = model.is_classifier
        self.classes = list(model.classes)
        self._class_array = np.array(self.classes + [None], dtype=object)[:-1]
        self.has_proba = self.is_classifier and hasattr(self.estimator, "predict_proba")
        if self.is_classifier and not self.classes:
            raise ValueError(f"{model.path}: model.json lists no classes for a {model.problem_type} model")
        self.available_fields: tuple[str, ...] = tuple(
            f for f in FIELDS
            if f == PREDICTED_LABEL or (self.is_classifier and (f == LABELS or self.has_proba)))

    def predict(self, batch: Batch, fields: tuple[str, ...]) -> Prediction:
        n = len(batch)
        frame = batch.frame()
        values: dict[str, Any] = {}
        if not self.is_classifier:
            values[PREDICTED_LABEL] = np.asarray(self.estimator.predict(frame), dtype=np.float64)
            return Prediction(fields, values, n)
        if NEEDS_PROBA.intersection(fields):
            proba = np.asarray(self.estimator.predict_proba(frame), dtype=np.float64)
            index = proba.argmax(axis=1)
            if PROBABILITY in fields:
                values[PROBABILITY] = proba[np.arange(n), index]
            if PROBABILITIES in fields:
                values[PROBABILITIES] = proba
        elif PREDICTED_LABEL in fields:
            index = np.asarray(self.estimator.predict(frame)).astype(np.intp, copy=False)
        else:
            index = None
        if PREDICTED_LABEL in fields:
            values[PREDICTED_LABEL] = self._class_array[index].tolist()
        if LABELS in fields:
            values[LABELS] = self.classes
        return Prediction(fields, values, n)

    def warm_up(self) -> None:
        """Predict one all-missing row so lazy imports and caches happen before the fork."""
        row = [None] * self.schema.width
        self.predict(self.schema.from_rows([row]), self.available_fields)
