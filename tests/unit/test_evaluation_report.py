"""byoc.evaluation.model_quality: the model-quality document evaluate writes, against
scikit-learn on the same predictions, for the cases a test set can be degenerate in."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm

from byoc.artifact import BINARY, REGRESSION
from byoc.errors import UserError
from byoc.evaluation import MAX_CURVE_POINTS, model_quality, positive_class


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


def test_curves_of_a_large_test_set_keep_a_bounded_number_of_their_own_points():
    """One point per distinct score made a million-row report 73 MB (a million-point
    precision-recall curve): the curves keep MAX_CURVE_POINTS of scikit-learn's points, ends
    included, while AUC still comes from every row."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 20_000)
    score = np.clip(y * 0.3 + rng.normal(0.35, 0.25, y.size), 0, 1)
    proba = np.column_stack([1 - score, score])
    section = model_quality(BINARY, y, (score > 0.5).astype(int), proba, ["no", "yes"])[
        "binary_classification_metrics"
    ]
    fpr, tpr, _ = skm.roc_curve(y, score)
    precisions, recalls, _ = skm.precision_recall_curve(y, score)
    assert len(precisions) > MAX_CURVE_POINTS and len(fpr) > MAX_CURVE_POINTS
    roc = section["receiver_operating_characteristic_curve"]
    pr = section["precision_recall_curve"]
    for curve, xs, ys, reference_x, reference_y in (
        (roc, "false_positive_rates", "true_positive_rates", fpr, tpr),
        (pr, "recalls", "precisions", recalls, precisions),
    ):
        assert len(curve[xs]) == len(curve[ys]) == MAX_CURVE_POINTS
        points = set(zip(reference_x.tolist(), reference_y.tolist(), strict=True))
        kept = list(zip(curve[xs], curve[ys], strict=True))
        assert set(kept) <= points
        assert kept[0] == (reference_x[0], reference_y[0]) and kept[-1] == (reference_x[-1], reference_y[-1])
    assert section["auc"]["value"] == pytest.approx(skm.roc_auc_score(y, score))
    assert len(json.dumps(section)) < 100_000


def test_curves_of_a_small_test_set_are_scikit_learns():
    y = np.array([0, 0, 1, 1, 0, 1, 1, 0])
    score = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9, 0.6, 0.55])
    section = model_quality(
        BINARY, y, (score > 0.5).astype(int), np.column_stack([1 - score, score]), [0, 1]
    )["binary_classification_metrics"]
    fpr, tpr, _ = skm.roc_curve(y, score)
    precisions, recalls, _ = skm.precision_recall_curve(y, score)
    assert section["receiver_operating_characteristic_curve"] == {
        "false_positive_rates": fpr.tolist(),
        "true_positive_rates": tpr.tolist(),
    }
    assert section["precision_recall_curve"] == {
        "precisions": precisions.tolist(),
        "recalls": recalls.tolist(),
    }


@pytest.mark.parametrize(
    ("classes", "asked", "index"),
    [
        (["fraud", "legit"], None, 1),
        (["fraud", "legit"], "fraud", 0),
        ([0, 1], "0", 0),
        ([False, True], "false", 0),
        ([False, True], "True", 1),
    ],
)
def test_positive_class_is_a_class_as_written(classes, asked, index):
    assert positive_class(classes, BINARY, asked) == index


def test_positive_class_of_a_model_without_one_is_refused():
    with pytest.raises(
        UserError, match="only a binary classifier has a positive class, and this model is regression"
    ):
        positive_class([], REGRESSION, "1")
    with pytest.raises(UserError, match=r"not one of the model's classes \(0, 1\)"):
        positive_class([0, 1], BINARY, "yes")
