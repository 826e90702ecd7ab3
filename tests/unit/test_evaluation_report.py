"""byoc.evaluation.model_quality: the model-quality document evaluate writes, against
scikit-learn on the same predictions, for the cases a test set can be degenerate in."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from byoc.artifact import REGRESSION
from byoc.evaluation import model_quality


def test_r2_of_a_constant_target_is_not_a_number():
    """R² is undefined when the test target does not vary: scikit-learn's 0.0 (or 1.0) would pass
    a pipeline's `r2 >= 0` gate for a model whose errors are as large as they come, and training's
    own metrics leave R² out in that case."""
    y = np.full(300, 100.0)
    predicted = np.linspace(0.0, 200.0, 300)
    section = model_quality(REGRESSION, y, predicted)["regression_metrics"]
    assert section["r2"] == {"value": "NaN", "standard_deviation": "NaN"}
    assert section["mse"]["value"] == pytest.approx(skm.mean_squared_error(y, predicted))
    assert section["mae"]["value"] == pytest.approx(skm.mean_absolute_error(y, predicted))
    assert isinstance(section["mae"]["standard_deviation"], float)


def test_regression_metrics_are_scikit_learns():
    rng = np.random.default_rng(0)
    y = rng.normal(size=250)
    predicted = y + rng.normal(scale=0.3, size=250)
    section = model_quality(REGRESSION, y, predicted)["regression_metrics"]
    assert list(section) == ["mae", "mse", "rmse", "r2"]
    assert section["r2"]["value"] == pytest.approx(skm.r2_score(y, predicted))
    assert section["rmse"]["value"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, predicted)))
    json.dumps(section, allow_nan=False)
