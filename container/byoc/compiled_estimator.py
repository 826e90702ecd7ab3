"""What every compiled estimator shares (treelite, onnxruntime, linear, knn forms).

Each is built from an already fitted scikit-learn estimator, so it is fitted from birth and
refuses ``fit``; and each takes the encoder's matrix, checked to be 2-D and as wide as the
model was fitted on, so a wrong width fails loudly instead of predicting on shifted columns.
"""

from __future__ import annotations

from typing import Any, NoReturn

import numpy as np
from sklearn.base import BaseEstimator


class CompiledEstimator(BaseEstimator):
    """A scikit-learn estimator whose fitting happened in another estimator."""

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, X: Any, y: Any = None) -> NoReturn:
        raise TypeError("a compiled estimator is fitted already; refit the scikit-learn pipeline instead")


def dense_matrix(X: Any, dtype: Any, width: int) -> np.ndarray:
    """``X`` (dense or sparse) as a dense 2-D array of ``dtype`` with ``width`` columns."""
    if hasattr(X, "toarray"):
        X = X.toarray()
    values = np.asarray(X, dtype=dtype)
    if values.ndim != 2 or values.shape[1] != width:
        raise ValueError(f"expected a matrix of {width} columns, got shape {values.shape}")
    return values
