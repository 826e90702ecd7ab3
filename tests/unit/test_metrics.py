"""Metrics per problem type, their log lines, and metric definitions that really match them."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byoc import metrics


def test_binary_metrics_names_and_values():
    y = np.array([0, 0, 1, 1, 1, 0])
    pred = np.array([0, 1, 1, 1, 0, 0])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.8, 0.2]])
    out = metrics.compute("binary_classification", y, pred, proba, 2)
    assert tuple(out) == metrics.BINARY_METRICS
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["precision"] == pytest.approx(2 / 3) and out["recall"] == pytest.approx(2 / 3)
    assert out["auc"] == pytest.approx(8 / 9)
    assert 0 < out["log_loss"] < 1


def test_multiclass_metrics_use_macro_averages_and_ovr_auc():
    y = np.array([0, 1, 2, 2, 1, 0])
    proba = np.eye(3)[y] * 0.8 + 0.2 / 3
    out = metrics.compute("multiclass_classification", y, y, proba, 3)
    assert tuple(out) == metrics.MULTICLASS_METRICS
    assert out["f1_macro"] == 1.0 and out["auc"] == 1.0 and out["balanced_accuracy"] == 1.0


def test_regression_metrics():
    out = metrics.compute("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0]))
    assert tuple(out) == metrics.REGRESSION_METRICS
    assert out["mse"] == pytest.approx(4 / 3) and out["rmse"] == pytest.approx(math.sqrt(4 / 3))
    assert out["mae"] == pytest.approx(2 / 3) and out["r2"] == pytest.approx(1 - 4 / 2)


def test_single_class_channel_skips_auc_instead_of_nan():
    y = np.array([1, 1, 1])
    proba = np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
    out = metrics.compute("binary_classification", y, np.array([1, 0, 1]), proba, 2)
    assert "auc" not in out and "log_loss" in out
    assert all(math.isfinite(v) for v in out.values())


@pytest.mark.parametrize("predicted", [[0, 0, 0, 0], [0, 1, 0, 0]], ids=["none_positive", "one_positive"])
def test_a_binary_channel_without_positive_rows_leaves_out_precision_recall_and_f1(predicted):
    """scikit-learn's zero_division gave recall 0 (0/0) and precision and F1 of 0: numbers no
    model could have beaten there, logged as validation:f1=0.000000 and read by a tuning job as
    a real score.  They are left out, with why; accuracy and the rest stay."""
    y = np.array([0, 0, 0, 0])
    proba = np.array([[0.9, 0.1], [0.4, 0.6], [0.8, 0.2], [0.7, 0.3]])
    out = metrics.compute("binary_classification", y, np.array(predicted), proba, 2)
    assert {"precision", "recall", "f1", "auc"}.isdisjoint(out) and out["log_loss"] > 0
    assert out["accuracy"] == 1 - sum(predicted) / 4
    why = metrics.left_out("binary_classification", out, y, ["no", "yes"])
    assert (
        why["f1"]
        == why["recall"]
        == why["precision"]
        == (
            "holds no row of the positive class 'yes': recall is 0/0, and no model can score a precision "
            "or F1 above 0 there"
        )
    )
    assert why["auc"] == "holds a single class ('no'): AUC needs both"
    assert "log_loss" not in why and "accuracy" not in why


def test_a_model_that_predicts_no_positive_row_has_no_precision_but_a_real_recall_and_f1_of_0():
    y = np.array([0, 1, 0, 1])
    out = metrics.compute("binary_classification", y, np.array([0, 0, 0, 0]), None, 2)
    assert "precision" not in out and out["recall"] == 0.0 and out["f1"] == 0.0
    assert metrics.left_out("binary_classification", out, y, ["no", "yes"]) == {
        "precision": "has no row predicted as the positive class 'yes': precision is 0/0"
    }


def test_metrics_left_out_of_a_model_without_probabilities_are_not_explained():
    y = np.array([0, 1])
    out = metrics.compute("binary_classification", y, np.array([0, 1]), None, 2)
    assert metrics.left_out("binary_classification", out, y) == {}


def test_multiclass_auc_averages_only_the_classes_present():
    y = np.array([0, 0, 1, 1])  # class 2 absent from this channel
    proba = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1]])
    out = metrics.compute("multiclass_classification", y, np.array([0, 0, 1, 1]), proba, 3)
    assert out["auc"] == 1.0


def test_without_proba_there_is_no_auc_or_log_loss():
    out = metrics.compute("binary_classification", np.array([0, 1]), np.array([0, 1]), None, 2)
    assert "auc" not in out and "log_loss" not in out and out["accuracy"] == 1.0


def test_constant_regression_target_skips_r2_and_empty_channel_gives_nothing():
    out = metrics.compute("regression", np.array([2.0, 2.0]), np.array([1.0, 3.0]))
    assert "r2" not in out and out["mae"] == 1.0
    assert metrics.compute("regression", np.array([]), np.array([])) == {}


def test_log_lines_are_stable():
    assert metrics.log_lines("validation", {"auc": 0.9312, "log_loss": 0.25}) == [
        "validation:auc=0.931200",
        "validation:log_loss=0.250000",
    ]


@pytest.mark.parametrize("value", [2.1e-5, 6.0e-5, 4.4e-10, 0.012345678, 3.2e-7])
def test_small_values_keep_six_significant_digits_and_no_exponent(value):
    """Six decimals alone logged every mse below 5e-7 as 0.000000 (a tie for a tuning job); an
    exponent would be cut at the 'e' by the ([0-9\\.]+) regexes of AWS's samples."""
    line = metrics.log_lines("validation", {"mse": value})[0]
    captured = re.search(r"validation:mse=([0-9\.]+)", line).group(1)
    assert "e" not in line.split("=")[1].lower()
    assert float(captured) == pytest.approx(value, rel=1e-5)


def test_two_small_but_different_scores_log_differently():
    lines = [metrics.log_lines("validation", {"mse": v})[0] for v in (2.1e-7, 6.0e-7)]
    assert lines[0] != lines[1] and "0.000000" not in (lines[0][-8:], lines[1][-8:])


def all_lines(value: float):
    for channel in metrics.CHANNELS:
        for name in metrics.all_names():
            yield channel, name, metrics.log_lines(channel, {name: value})[0]


@pytest.mark.parametrize("value", [0.0, 0.9312, -3.5, 1234567.891, 1e-9, 12345678901234.5])
def test_every_definition_matches_its_line_and_captures_the_value(value):
    definitions = {d["Name"]: re.compile(d["Regex"]) for d in metrics.metric_definitions()}
    assert len(definitions) == len(metrics.CHANNELS) * len(metrics.all_names())
    for channel, name, line in all_lines(value):
        match = definitions[f"{channel}:{name}"].search(f"2026-01-01 INFO byoc: {line}\n")
        assert match, line
        assert float(match.group(1)) == pytest.approx(value, abs=1e-6)


def test_no_definition_matches_another_metrics_line():
    definitions = metrics.metric_definitions()
    for channel, name, line in all_lines(0.5):
        matching = [d["Name"] for d in definitions if re.search(d["Regex"], line)]
        assert matching == [f"{channel}:{name}"], (line, matching)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12))
def test_any_finite_value_round_trips_through_line_and_regex(value):
    line = metrics.log_lines("test", {"rmse": value})[0]
    match = re.search(metrics.regex("test", "rmse"), line)
    assert match and float(match.group(1)) == pytest.approx(value, rel=1e-5, abs=1e-6)


def test_definitions_are_the_json_sagemaker_expects():
    definitions = json.loads(json.dumps(metrics.metric_definitions()))
    assert all(set(d) == {"Name", "Regex"} for d in definitions)
    assert {"Name": "validation:auc", "Regex": metrics.regex("validation", "auc")} in definitions


@pytest.mark.parametrize(
    "name, direction",
    [
        ("validation:auc", "Maximize"),
        ("validation:r2", "Maximize"),
        ("validation:log_loss", "Minimize"),
        ("test:rmse", "Minimize"),
    ],
)
def test_tuning_objective_direction(name, direction):
    assert metrics.objective(name) == direction
