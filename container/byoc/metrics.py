"""Evaluation metrics, their log lines, and the SageMaker metric definitions that read them.

SageMaker (and Automatic Model Tuning) extract metrics from the job's log with regular
expressions: :func:`log_lines` prints one stable line per metric, ``<channel>:<metric>=<value>``
(for example ``validation:auc=0.931200``), and :func:`metric_definitions` returns regexes that
match exactly those lines.

Multiclass precision, recall and f1_macro are macro averages over the classes that occur in
the channel's labels or predictions; multiclass AUC is the one-vs-rest macro average over the
classes present in the channel.  Binary precision/recall/f1 treat the second class (in sorted
order, e.g. ``yes`` of ``no``/``yes``, ``1`` of ``0``/``1``) as positive.

A metric that no model's predictions could give a value on a channel's labels (:func:`undefined`:
AUC when the channel holds a single class, R² on fewer than two rows or a constant target,
binary precision, recall and F1 when it holds no row of the positive class) is left out, and so is
binary precision when no row is predicted positive (0/0), rather than recorded as NaN or as
scikit-learn's ``zero_division`` 0 (a macro average keeps a class's 0/0 as 0: leaving the class
out would flatter a model that never predicts it): a tuning job reading ``validation:f1=0.000000`` off a
channel with no positive row ranks a model by a number that could not have been higher.  A
metric definition whose line is missing records nothing, which is the truth.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn import metrics as skm

from byoc.artifact import BINARY, MULTICLASS, REGRESSION

CHANNELS = ("train", "validation", "test")
BINARY_METRICS = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "auc", "log_loss")
MULTICLASS_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "precision", "recall", "auc", "log_loss")
REGRESSION_METRICS = ("mse", "rmse", "mae", "r2")
# Larger is better for these; the others are errors (smaller is better).
MAXIMISE = frozenset({"accuracy", "balanced_accuracy", "f1", "f1_macro", "precision", "recall", "auc", "r2"})
VALUE_PATTERN = r"([-+]?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)"


def names(problem_type: str) -> tuple[str, ...]:
    """The metrics computed for a problem type, in log order."""
    return {BINARY: BINARY_METRICS, MULTICLASS: MULTICLASS_METRICS, REGRESSION: REGRESSION_METRICS}[
        problem_type
    ]


def all_names() -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for name in (*BINARY_METRICS, *MULTICLASS_METRICS, *REGRESSION_METRICS):
        seen.setdefault(name)
    return tuple(seen)


def undefined(problem_type: str, y_true: np.ndarray, labels: Sequence[Any] = ()) -> dict[str, str]:
    """The metrics no predictions could give a value on rows labelled ``y_true`` (classification:
    encoded 0..n-1, ``labels`` their names for the message), each with why, worded to follow
    "it": the one rule :func:`compute`, the training log's warning and ``auto``'s objective check use."""
    y = np.asarray(y_true)
    if problem_type == REGRESSION:
        if len(y) < 2:
            return {"r2": f"holds {len(y)} row(s): R2 needs at least 2"}
        if np.ptp(y.astype(float)) == 0:
            return {"r2": f"holds a single target value ({float(y[0]):g}): R2 is undefined without variance"}
        return {}

    present = [int(v) for v in np.unique(y)]
    out: dict[str, str] = {}
    if len(present) < 2:
        out["auc"] = (
            f"holds a single class ({', '.join(_class_name(labels, c) for c in present) or 'none'}): AUC needs both"
        )
    if problem_type == BINARY and 1 not in present:
        why = (
            f"holds no row of the positive class {_class_name(labels, 1)}: recall is 0/0, and no model can score "
            "a precision or F1 above 0 there"
        )
        out.update(dict.fromkeys(("precision", "recall", "f1"), why))
    return out


def _class_name(labels: Sequence[Any], code: int) -> str:
    """Encoded class ``code`` as its messages quote it: its label, or the code without labels."""
    return repr(str(labels[code])) if code < len(labels) else repr(str(code))


def left_out(
    problem_type: str, values: Mapping[str, float], y_true: np.ndarray, labels: Sequence[Any] = ()
) -> dict[str, str]:
    """Why each metric of the problem type that :func:`compute` left out of ``values`` (a channel
    with labels ``y_true``) has no value: :func:`undefined`'s reasons, and binary precision's 0/0
    when no row was predicted positive.  A metric left out for another reason (AUC and log loss
    of a model without probabilities) is not named."""
    why = undefined(problem_type, y_true, labels)
    out = {name: why[name] for name in names(problem_type) if name not in values and name in why}
    if problem_type == BINARY and "precision" not in values and "precision" not in out and values:
        out["precision"] = (
            f"has no row predicted as the positive class {_class_name(labels, 1)}: precision is 0/0"
        )
    return out


def compute(
    problem_type: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    n_classes: int | None = None,
) -> dict[str, float]:
    """Metrics for one channel; classification expects encoded labels 0..n_classes-1.  Those
    :func:`undefined` on its labels, or left at 0/0 by the predictions, are left out."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if len(y_true) == 0:
        return {}
    skip = undefined(problem_type, y_true)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if problem_type == REGRESSION:
            out = _regression(y_true.astype(float), y_pred.astype(float), skip)
        elif problem_type in (BINARY, MULTICLASS):
            out = _classification(
                problem_type,
                y_true,
                y_pred,
                proba,
                n_classes or int(max(y_true.max(), y_pred.max())) + 1,
                skip,
            )
        else:
            raise ValueError(f"unknown problem type {problem_type!r}")
    return {k: float(v) for k, v in out.items() if k not in skip and v is not None and math.isfinite(v)}


def _regression(y_true: np.ndarray, y_pred: np.ndarray, skip: Mapping[str, str]) -> dict[str, float | None]:
    mse = skm.mean_squared_error(y_true, y_pred)
    return {
        "mse": mse,
        "rmse": math.sqrt(mse),
        "mae": skm.mean_absolute_error(y_true, y_pred),
        "r2": None if "r2" in skip else skm.r2_score(y_true, y_pred),
    }


def _classification(
    problem_type: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    n_classes: int,
    skip: Mapping[str, str],
) -> dict[str, float | None]:
    labels = list(range(n_classes))
    out: dict[str, float | None] = {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y_true, y_pred),
    }
    if problem_type == BINARY:
        out["f1"] = skm.f1_score(y_true, y_pred, pos_label=1, labels=labels, zero_division=np.nan)
        out["precision"] = skm.precision_score(
            y_true, y_pred, pos_label=1, labels=labels, zero_division=np.nan
        )
        out["recall"] = skm.recall_score(y_true, y_pred, pos_label=1, labels=labels, zero_division=np.nan)
    else:
        present = sorted(set(np.unique(y_true).tolist()) | set(np.unique(y_pred).tolist()))
        out["f1_macro"] = skm.f1_score(y_true, y_pred, average="macro", labels=present, zero_division=0)
        out["precision"] = skm.precision_score(
            y_true, y_pred, average="macro", labels=present, zero_division=0
        )
        out["recall"] = skm.recall_score(y_true, y_pred, average="macro", labels=present, zero_division=0)
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        out["auc"] = None if "auc" in skip else _auc(y_true, proba, n_classes)
        clipped = np.clip(proba, 1e-15, 1.0)
        out["log_loss"] = skm.log_loss(y_true, clipped / clipped.sum(axis=1, keepdims=True), labels=labels)
    return out


def _auc(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> float:
    """ROC AUC (two classes present at least); one-vs-rest macro average over the classes
    present for multiclass."""
    present = np.unique(y_true)
    if n_classes == 2:
        return skm.roc_auc_score(y_true, proba[:, 1])
    scores = [skm.roc_auc_score(y_true == k, proba[:, k]) for k in present]
    return float(np.mean(scores))


def log_lines(channel: str, metrics: Mapping[str, float]) -> list[str]:
    """``<channel>:<metric>=<value>`` in the metrics' order, each value by :func:`spell`."""
    return [f"{channel}:{name}={spell(value)}" for name, value in metrics.items()]


def spell(value: float) -> str:
    """``value`` in plain decimals, never an exponent, with at least six decimals and at least six
    significant digits.  Six decimals alone logged every mse below 5e-7 as ``0.000000``, so a
    tuning job saw ties between models of R2 0.95 and 0.61 on a target of order 1e-4; an
    exponent (``3.2e-07``) would be read as ``3.2`` by the ``([0-9\\.]+)`` regexes users copy
    from AWS's samples."""
    magnitude = abs(value)
    decimals = 6 if magnitude == 0 else max(6, 5 - math.floor(math.log10(magnitude)))
    return f"{value:.{decimals}f}"


def regex(channel: str, metric: str) -> str:
    """The regex whose group 1 is the value that :func:`log_lines` printed."""
    return rf"{re.escape(channel)}:{re.escape(metric)}={VALUE_PATTERN}"


def metric_definitions(channels: tuple[str, ...] = CHANNELS) -> list[dict[str, str]]:
    """``[{"Name": "validation:auc", "Regex": ...}]`` for every channel and metric."""
    return [
        {"Name": f"{channel}:{metric}", "Regex": regex(channel, metric)}
        for channel in channels
        for metric in all_names()
    ]


def objective(metric_name: str) -> str:
    """``Maximize`` or ``Minimize`` for a tuning objective such as ``validation:auc``."""
    return "Maximize" if metric_name.rsplit(":", 1)[-1] in MAXIMISE else "Minimize"
