"""Data exploration before the search: what each column holds, and what looks wrong.

Per column: the type the encoder will use, the missing share, the cardinality; for the target,
its distribution.  Warnings name constant columns, ID-like columns (nearly every value distinct:
they cannot generalise) and leakage suspects (a single column that predicts the target almost
perfectly on held-out rows: usually information from after the fact).  Written to
output/data/exploration.json and summarised in the log.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from byoc.artifact import REGRESSION, Feature
from byoc.preprocessing import CATEGORICAL, CategoryCoder

log = logging.getLogger(__name__)

ID_LIKE_SHARE = 0.95  # distinct values / rows above which a text or integer column looks like an ID
LEAK_SCORE = 0.99  # held-out accuracy / R2 of a one-column model above which it is a suspect
LEAK_ROWS = 20000  # rows sampled for the leakage check
MIN_ROWS_FOR_CHECKS = 20


def _column(name: str, s: pd.Series, feature: Feature) -> dict[str, Any]:
    n = len(s)
    missing = int(s.isna().sum())
    distinct = int(s.nunique(dropna=True))
    info: dict[str, Any] = {
        "name": name,
        "type": feature.kind,
        "missing_share": round(missing / n, 6) if n else 0.0,
        "cardinality": distinct,
    }
    if feature.kind != CATEGORICAL:
        values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        finite = values[np.isfinite(values)]
        if finite.size:
            info.update(
                minimum=float(finite.min()),
                maximum=float(finite.max()),
                mean=float(finite.mean()),
                std=float(finite.std()),
            )
    else:
        top = s.value_counts(dropna=True).head(5)
        info["top_values"] = {str(k): int(v) for k, v in top.items()}
    return info


def _integral(s: pd.Series) -> bool:
    """Whether a numeric column holds whole numbers only (IDs, counts): the values, not the dtype —
    the training flow hands numeric columns over as float64."""
    if pd.api.types.is_integer_dtype(s.dtype):
        return True
    values = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    finite = values[np.isfinite(values)]
    return bool(finite.size) and bool(np.all(finite == np.round(finite)))


# A date (or timestamp) as text: 2024-03-01, 2024/3/1, 01.03.2024, 3/1/24, with or without a time
# after it; what CSV writers and Arrow's text of a Parquet date or timestamp spell.
_DATE = re.compile(
    r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}([ T]\d{1,2}:\d{2}.*)?|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}([ T]\d{1,2}:\d{2}.*)?"
)
DATE_SAMPLE = 200  # distinct values a text column's date check reads


def _date_example(s: pd.Series) -> str | None:
    """A value of text column ``s`` when every one of its first distinct values reads as a date
    (so its categories are dates, one per day or instant), else None."""
    values = [str(v).strip() for v in s.dropna().unique()[:DATE_SAMPLE]]
    if not values or not all(_DATE.fullmatch(v) for v in values):
        return None
    return values[0]


def _date_advice(name: str, example: str, distinct: str) -> str:
    """What to do with a column of dates: training reads them as text categories, so a date it
    has not seen tells the model nothing; numbers derived from it before training keep what it says."""
    return (
        f"column '{name}' holds dates (such as '{example}') with {distinct}: each is a category of its "
        "own, which tells the model nothing about a date it has not seen; keep what it says by "
        "turning it into numbers before training, such as its year, month, day of week, or seconds "
        f"since 1970 (pandas: d = pd.to_datetime(df['{name}']); d.dt.year, d.dt.month, "
        "d.dt.dayofweek, d.astype('int64') // 10**9), one column each, and leave out the text"
    )


def _target(y: np.ndarray, problem_type: str, classes: Sequence[Any] | None) -> dict[str, Any]:
    if problem_type == REGRESSION:
        values = np.asarray(y, dtype=float)
        quantiles = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0]).tolist()
        return {
            "problem_type": problem_type,
            "mean": float(values.mean()),
            "std": float(values.std()),
            "quantiles": dict(zip(("min", "q25", "median", "q75", "max"), quantiles, strict=True)),
        }
    counts = np.bincount(np.asarray(y, dtype=np.intp), minlength=len(classes or []))
    labels = [str(c) for c in classes] if classes is not None else [str(i) for i in range(len(counts))]
    total = max(int(counts.sum()), 1)
    return {
        "problem_type": problem_type,
        "classes": {
            label: {"count": int(c), "share": round(int(c) / total, 6)}
            for label, c in zip(labels, counts, strict=True)
        },
        "imbalance_ratio": round(float(counts.max() / max(counts.min(), 1)), 4),
    }


def _leak_score(s: pd.Series, feature: Feature, y: np.ndarray, problem_type: str, seed: int) -> float | None:
    """Held-out score of a shallow tree on this one column (accuracy, or R2 for regression)."""
    frame = s.to_frame()
    if feature.kind == CATEGORICAL:
        X = CategoryCoder().fit_transform(frame)
    else:
        # NaN stays: scikit-learn's trees route missing values themselves
        X = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float, na_value=np.nan).reshape(-1, 1)
    if problem_type == REGRESSION:
        model = DecisionTreeRegressor(max_depth=6, random_state=seed)
        cv = KFold(3, shuffle=True, random_state=seed)
        scoring = "r2"
    else:
        if np.bincount(y).min() < 3:
            return None
        model = DecisionTreeClassifier(max_depth=6, random_state=seed)
        cv = StratifiedKFold(3, shuffle=True, random_state=seed)
        scoring = "balanced_accuracy"
    scores = cross_val_score(model, X, y, cv=cv, scoring=scoring, error_score=np.nan)
    return float(np.nanmean(scores)) if np.isfinite(scores).any() else None


def explore(
    X: pd.DataFrame,
    y: np.ndarray,
    problem_type: str,
    features: Sequence[Feature],
    classes: Sequence[Any] | None = None,
    *,
    seed: int = 0,
    deadline: float = math.inf,
    stopped: Callable[[], bool] = lambda: False,
) -> dict[str, Any]:
    """The exploration summary (JSON-able) with its warnings.

    The leakage check (a tree fit per column: most of the time on a wide table) ends at
    ``deadline`` (``time.monotonic()``) or when ``stopped()``: the columns not reached get no
    leakage check, and the summary's ``incomplete`` says so."""
    n = len(X)
    cut = ""
    checked = 0
    columns = [_column(f.name, X[f.name], f) for f in features]
    warnings: list[dict[str, str]] = []
    sample = np.random.default_rng(seed).choice(n, size=min(n, LEAK_ROWS), replace=False)
    y_sample = np.asarray(y)[sample]
    for info, feature in zip(columns, features, strict=True):
        name = feature.name
        if info["cardinality"] <= 1:
            warnings.append(
                {
                    "column": name,
                    "kind": "constant",
                    "message": f"column '{name}' holds a single value (or none): it carries no information",
                }
            )
            continue
        integral_or_text = feature.kind == CATEGORICAL or _integral(X[name])
        if integral_or_text and n >= MIN_ROWS_FOR_CHECKS and info["cardinality"] >= ID_LIKE_SHARE * n:
            distinct = f"a distinct value in nearly every row ({info['cardinality']} of {n})"
            date = _date_example(X[name]) if feature.kind == CATEGORICAL else None
            warnings.append(
                {
                    "column": name,
                    "kind": "id_like",
                    "message": f"column '{name}' has {distinct}: an ID cannot generalise; drop it",
                }
                if date is None
                else {"column": name, "kind": "date_like", "message": _date_advice(name, date, distinct)}
            )
        if n >= MIN_ROWS_FOR_CHECKS and not cut:
            if stopped():
                cut = "the job was stopped (SIGTERM)"
            elif time.monotonic() >= deadline:
                cut = "its share of the time budget ran out"
        if n >= MIN_ROWS_FOR_CHECKS and not cut:
            checked += 1
            score = _leak_score(X[name].iloc[sample], feature, y_sample, problem_type, seed)
            info["single_column_score"] = None if score is None else round(score, 6)
            if score is not None and score >= LEAK_SCORE:
                warnings.append(
                    {
                        "column": name,
                        "kind": "leakage_suspect",
                        "message": f"column '{name}' alone predicts the target almost perfectly "
                        f"(held-out score {score:.4f}): check that it is known at "
                        "prediction time and is not derived from the label",
                    }
                )
    summary: dict[str, Any] = {
        "rows": n,
        "columns": len(features),
        "numeric_columns": sum(1 for f in features if f.kind != CATEGORICAL),
        "categorical_columns": sum(1 for f in features if f.kind == CATEGORICAL),
        "target": _target(y, problem_type, classes),
        "features": columns,
        "warnings": warnings,
    }
    if cut:
        summary["incomplete"] = (
            f"the leakage check covered {checked} of {len(features)} columns: {cut} "
            "(the search goes on without it)"
        )
    log.info(
        "exploration: %d rows, %d columns (%d numeric, %d categorical); target: %s",
        n,
        len(features),
        summary["numeric_columns"],
        summary["categorical_columns"],
        _describe_target(summary["target"]),
    )
    for warning in warnings:
        log.warning("exploration: %s", warning["message"])
    if cut:
        log.warning("exploration: %s", summary["incomplete"])
    return summary


def _describe_target(target: dict[str, Any]) -> str:
    if "classes" in target:
        shares = ", ".join(f"{k} {v['share']:.1%}" for k, v in list(target["classes"].items())[:6])
        return f"{len(target['classes'])} classes ({shares})"
    return f"mean {target['mean']:.4g}, std {target['std']:.4g}"
