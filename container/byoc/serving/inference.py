"""The loaded model, prepared once for fast, repeated prediction.

User hooks (a later issue) plug in here: :class:`Predictor` is the "predict" step between
a validated frame and a :class:`~byoc.serving.output.Prediction`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

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


FAST_PATH_ROWS = 64  # above this, the pipeline's own vectorised path is as fast


class ColumnBlocks:
    """A fitted ColumnTransformer applied block by block, straight from a Batch's columns.

    ``ColumnTransformer.transform`` spends most of a single-row prediction on re-checking and
    re-slicing the whole frame; here each fitted sub-transformer gets a small frame of its own
    columns, built directly from the typed columns, and the blocks are stacked as it would.
    Used only when :meth:`compile` recognises the layout and :meth:`agrees` on sample rows.
    """

    def __init__(self, blocks: list[tuple[Any, list[int], list[str]]]) -> None:
        self.blocks = blocks

    @classmethod
    def compile(cls, pipeline: Any, schema: RequestSchema) -> "ColumnBlocks | None":
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            return None
        transformer = pipeline.steps[0][1]
        if not isinstance(transformer, ColumnTransformer) or getattr(transformer, "sparse_output_", True):
            return None
        if getattr(transformer, "_sklearn_output_config", {}).get("transform", "default") != "default":
            return None
        blocks = []
        for name, fitted, columns in transformer.transformers_:
            if fitted == "drop" or (isinstance(columns, (list, tuple)) and not len(columns)):
                continue
            if fitted == "passthrough" or not isinstance(columns, (list, tuple)):
                return None
            if not all(isinstance(c, str) and c in schema.index for c in columns):
                return None
            blocks.append((fitted, [schema.index[c] for c in columns], list(columns)))
        return cls(blocks) if blocks else None

    def transform(self, batch: Batch) -> np.ndarray:
        parts = []
        for fitted, positions, names in self.blocks:
            frame = pd.DataFrame({name: batch.columns[i] for name, i in zip(names, positions)}, copy=False)
            part = fitted.transform(frame)
            parts.append(part.toarray() if hasattr(part, "toarray") else np.asarray(part))
        return np.hstack(parts) if len(parts) > 1 else parts[0]


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
        self.blocks: ColumnBlocks | None = None
        self.final = None
        self.available_fields: tuple[str, ...] = tuple(
            f for f in FIELDS
            if f == PREDICTED_LABEL or (self.is_classifier and (f == LABELS or self.has_proba)))

    def _inputs(self, batch: Batch) -> tuple[Any, Any]:
        """(estimator, its input): the fast block path for small batches, else the whole pipeline."""
        if self.blocks is not None and len(batch) <= FAST_PATH_ROWS:
            return self.final, self.blocks.transform(batch)
        return self.estimator, batch.frame()

    def predict(self, batch: Batch, fields: tuple[str, ...]) -> Prediction:
        n = len(batch)
        estimator, inputs = self._inputs(batch)
        values: dict[str, Any] = {}
        if not self.is_classifier:
            values[PREDICTED_LABEL] = np.asarray(estimator.predict(inputs), dtype=np.float64)
            return Prediction(fields, values, n)
        if NEEDS_PROBA.intersection(fields):
            proba = np.asarray(estimator.predict_proba(inputs), dtype=np.float64)
            index = proba.argmax(axis=1)
            if PROBABILITY in fields:
                values[PROBABILITY] = proba[np.arange(n), index]
            if PROBABILITIES in fields:
                values[PROBABILITIES] = proba
        elif PREDICTED_LABEL in fields:
            index = np.asarray(estimator.predict(inputs)).astype(np.intp, copy=False)
        else:
            index = None
        if PREDICTED_LABEL in fields:
            values[PREDICTED_LABEL] = self._class_array[index].tolist()
        if LABELS in fields:
            values[LABELS] = self.classes
        return Prediction(fields, values, n)

    def enable_fast_path(self) -> bool:
        """Use :class:`ColumnBlocks` for small batches if it reproduces the pipeline exactly."""
        blocks = ColumnBlocks.compile(self.estimator, self.schema)
        if blocks is None:
            return False
        probe = self.schema.from_rows(self._probe_rows())
        try:
            expected = self.estimator.steps[0][1].transform(probe.frame())
            got = blocks.transform(probe)
            same = np.array_equal(np.asarray(expected, dtype=np.float64), got.astype(np.float64), equal_nan=True)
        except Exception:  # noqa: BLE001 - any doubt: keep the pipeline path
            same = False
        if same:
            self.blocks, self.final = blocks, self.estimator.steps[-1][1]
        return same

    def _probe_rows(self) -> list[list[Any]]:
        """Rows mixing missing values, seen and unseen categories, for the fast-path check."""
        rows = [[None] * self.schema.width]
        for k in range(3):
            row = []
            for feature in self.schema.features:
                if feature.kind == "numeric":
                    row.append(float(k) - 1.5)
                else:
                    seen = list(feature.categories)
                    row.append(seen[k % len(seen)] if seen and k < 2 else "byoc-unseen-category")
            rows.append(row)
        return rows

    def warm_up(self) -> None:
        """Predict sample rows so lazy imports and caches happen before the fork."""
        self.predict(self.schema.from_rows(self._probe_rows()), self.available_fields)
