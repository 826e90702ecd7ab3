"""Greedy ensemble selection (Caruana et al., 2004) on held-out predictions, and the blended model.

Selection adds, with replacement, the candidate whose addition most improves the objective of
the averaged out-of-fold predictions; the counts become weights.  It only uses predictions on
rows no candidate was fitted on, so it cannot reward overfitting, and it keeps a single model
when blending does not help.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from byoc.algorithms.ensemble import aligned_proba
from byoc.artifact import REGRESSION
from byoc.automl.objective import Objective
from byoc.automl.search import Result, score_predictions

MAX_POOL = 10  # best candidates the selection draws from
ROUNDS = 25  # additions (with replacement)


def select(
    results: Sequence[Result], y: np.ndarray, objective: Objective, problem_type: str, n_classes: int
) -> tuple[dict[str, float], float]:
    """Weights by candidate name (summing to 1) and the blend's held-out score."""
    pool = [r for r in results if r.oof is not None][:MAX_POOL]
    if not pool:
        raise ValueError("no completed candidate to blend")

    def score(predictions: np.ndarray) -> float:
        return score_predictions(y, predictions, problem_type, n_classes).get(objective.key, float("nan"))

    counts = np.zeros(len(pool))
    total = np.zeros_like(pool[0].oof, dtype=float)
    best_score = float("nan")
    for _ in range(ROUNDS):
        trial_scores = [score((total + r.oof) / (counts.sum() + 1)) for r in pool]
        losses = [objective.loss(s) for s in trial_scores]
        pick = int(np.argmin(losses))
        if counts.sum() > 0 and not objective.better(trial_scores[pick], best_score):
            break
        counts[pick] += 1
        total += pool[pick].oof
        best_score = trial_scores[pick]
    weights = {r.name: float(c / counts.sum()) for r, c in zip(pool, counts, strict=True) if c > 0}
    return weights, best_score


class _Blend(BaseEstimator):
    """Fitted pipelines with weights; fitted by the search, never by ``fit``."""

    def __init__(self, members: Sequence[tuple[str, Any, float]] = ()) -> None:
        self.members = members

    def fit(self, X: Any, y: Any = None) -> _Blend:
        raise TypeError("a blend is assembled from fitted members by the AutoML search; it has no fit")

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": name, "weight": round(float(w), 6)} for name, _, w in self.members]

    def __sklearn_is_fitted__(self) -> bool:
        return bool(self.members)


class BlendClassifier(ClassifierMixin, _Blend):
    """Weighted mean of the members' probabilities over classes 0..n_classes-1."""

    def __init__(self, members: Sequence[tuple[str, Any, float]] = (), n_classes: int = 2) -> None:
        super().__init__(members)
        self.n_classes = n_classes

    @property
    def classes_(self) -> np.ndarray:
        return np.arange(self.n_classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        total = sum(w * aligned_proba(model, X, self.classes_) for _, model, w in self.members)
        return np.asarray(total, dtype=float) / sum(w for _, _, w in self.members)

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


class BlendRegressor(RegressorMixin, _Blend):
    """Weighted mean of the members' predictions."""

    def predict(self, X: Any) -> np.ndarray:
        total = sum(w * np.asarray(model.predict(X), dtype=float) for _, model, w in self.members)
        return np.asarray(total, dtype=float) / sum(w for _, _, w in self.members)


def assemble(members: Sequence[tuple[str, Any, float]], problem_type: str, n_classes: int) -> Any:
    """The served estimator: the pipeline itself for one member, else a blend."""
    if len(members) == 1:
        return members[0][1]
    if problem_type == REGRESSION:
        return BlendRegressor(list(members))
    return BlendClassifier(list(members), n_classes=n_classes)
