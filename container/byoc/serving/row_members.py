"""An AutoML blend's or stack's small batches in the server: each member's own fitted encoder and
final estimator on the request's columns, combined by the model's own code.

A blend or stack holds whole member pipelines, each with its own ColumnTransformer, and through
the pipeline a one-row request paid every member's DataFrame path (slicing, checks, stacking),
most of a single row's cost once the members' final estimators were compiled.  Here each member
becomes a :class:`RowMember` (its :class:`~byoc.preprocessing.RowEncoder`, the encoder's own fitted
steps, then its final estimator; or a compiled linear model's form on the columns), and the model
is copied with those members in place (``with_member_pipelines``): its own ``predict`` /
``predict_proba`` combine their answers, so the arithmetic, its order and so its bits are the
model's.  The server keeps this path only when it answers its check rows exactly as the pipeline
does (``Predictor.enable_fast_path``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from byoc.preprocessing import RowEncoder


class RowMember:
    """One member pipeline as an estimator on a :class:`~byoc.serving.schema.Batch`: its encoder's
    steps on the batch's columns, then its final estimator; or ``on_columns`` (a compiled linear
    model's form that reads the columns itself)."""

    def __init__(self, encoder: RowEncoder, final: Any, on_columns: Any = None) -> None:
        self.encoder = encoder
        self.final = final
        self.on_columns = on_columns
        if hasattr(final, "classes_"):  # what the blend aligns the member's probabilities by
            self.classes_ = final.classes_

    def predict(self, batch: Any) -> np.ndarray:
        if self.on_columns is not None:
            return np.asarray(self.on_columns.predict(batch.columns))
        return np.asarray(self.final.predict(self.encoder.transform(batch.columns)))

    def predict_proba(self, batch: Any) -> np.ndarray:
        if self.on_columns is not None:
            return np.asarray(self.on_columns.predict_proba(batch.columns))
        return np.asarray(self.final.predict_proba(self.encoder.transform(batch.columns)))
