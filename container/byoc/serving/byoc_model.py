"""byoc's trained model as a user's inference hooks receive it (``model`` in ``predict_fn``).

A user who replaces only ``predict_fn`` writes what the SageMaker scikit-learn container's
scripts write, ``model.predict(input_data)``, on the DataFrame byoc's ``input_fn`` gives.  So
the object byoc's ``model_fn`` returns answers scikit-learn's calls the way a byoc endpoint
answers: ``predict`` gives the labels as trained (``"yes"``, not the encoded index ``1`` the
pipeline in model.joblib predicts), ``predict_proba`` one column per class of ``classes_``.
Both go through byoc's :class:`~byoc.serving.inference.Predictor` (fast paths, compiled
inference) and the request schema's checks, so they answer as byoc's own endpoint does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from byoc.errors import a_type
from byoc.serving.inference import Predictor
from byoc.serving.output import PREDICTED_LABEL, PROBABILITIES
from byoc.serving.schema import Batch


class NotRows(TypeError):
    """What was given to predict on is neither a DataFrame nor rows (a dict, text, a scalar)."""


class ByocModel:
    """A byoc model (model.joblib + model.json) with scikit-learn's ``predict``/``predict_proba``.

    ``X`` is a pandas DataFrame (named columns matched by name, unnamed ones by position, never
    a mix) or a list (or 2-D array) of rows of the model's feature values, checked as request
    rows are.
    """

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor  # byoc's own predict_fn asks it for the requested output fields
        artifact = predictor.model
        self.pipeline = artifact.estimator  # as trained: a classifier's answers index classes_
        self.metadata = artifact.metadata
        self.problem_type = artifact.problem_type
        self.feature_names_in_ = np.asarray(predictor.schema.names, dtype=object)
        if predictor.is_classifier:
            self.classes_ = _objects(predictor.classes)

    def batch(self, X: Any, what: str = "X is") -> Batch:
        """``X`` as a checked batch; :class:`NotRows` saying ``what`` it is when it is neither a frame
        nor rows (iterating a dict's keys as rows would blame the client's record for it)."""
        schema = self.predictor.schema
        if isinstance(X, pd.DataFrame):
            named = [isinstance(c, str) for c in X.columns]
            if any(named) and not all(named):  # by position, the names it has were ignored
                raise NotRows(
                    f"{what} a DataFrame whose columns mix names and other labels "
                    f"({', '.join(map(repr, X.columns))}); name every column by the model's features "
                    f"({', '.join(map(repr, schema.names))}), or none to pass them in that order, "
                    "as scikit-learn requires"
                )
            return schema.from_frame(X, positional=not any(named))
        rows = np.asarray(X, dtype=object) if isinstance(X, (list, tuple, np.ndarray)) else None
        if rows is not None and rows.ndim == 2:
            return schema.from_rows(rows.tolist())
        if rows is not None and rows.ndim == 1 and all(isinstance(r, (list, tuple)) for r in rows):
            return schema.from_rows(list(rows))  # rows of differing lengths: each one's width checked
        of = f" of {type(rows.flat[0]).__name__}" if rows is not None and rows.size else ""
        shape = f" of shape {rows.shape}" if rows is not None and rows.ndim != 1 else ""
        raise NotRows(
            f"{what} {a_type(X)}{of}{shape}; byoc's model predicts on a pandas DataFrame "
            f"or a list of rows (one list of the {schema.width} feature values per record)"
        )

    def predict(self, X: Any) -> np.ndarray:
        """One prediction per row: the label as trained (classifiers), the value (regressors)."""
        batch = self.batch(X)
        values = self.predictor.predict(batch, (PREDICTED_LABEL,)).values[PREDICTED_LABEL]
        return np.asarray(values, dtype=np.float64) if not self.predictor.is_classifier else _objects(values)

    @property
    def predict_proba(self) -> Any:
        """Per-row class probabilities in the order of ``classes_`` (a classifier with
        probabilities only: absent otherwise, as in scikit-learn, so ``hasattr`` tells)."""
        if not self.predictor.has_proba:
            raise AttributeError(f"this {self.problem_type} model has no predict_proba")
        return self._predict_proba

    def _predict_proba(self, X: Any) -> np.ndarray:
        batch = self.batch(X)
        return np.asarray(self.predictor.predict(batch, (PROBABILITIES,)).values[PROBABILITIES])

    def __repr__(self) -> str:
        model = self.predictor.model
        return f"ByocModel({model.algorithm} {self.problem_type}, {len(self.feature_names_in_)} features)"


def _objects(values: Any) -> np.ndarray:
    """A 1-D object array of ``values`` as they are (labels keep their type: no "1" for 1)."""
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array
