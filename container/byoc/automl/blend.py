"""Greedy ensemble selection (Caruana et al., 2004) on held-out predictions, and the blended model.

Selection adds, with replacement, the candidate whose addition most improves the objective of
the averaged out-of-fold predictions; the counts become weights.  It only uses predictions on
rows no candidate was fitted on, and it keeps a single model when blending does not help.

On small data the held-out rows are few, so picking the single best of many candidates on them,
and hill-climbing from it, fits their noise (the winner's curse: on wine's 124 training rows
three candidates tie at the best cross-validated accuracy, and the first of them scored 0.93 on
the test rows where the others scored 1.0).  There selection starts from the ``SORTED_INIT``
best candidates, equally weighted — Caruana et al.'s "sorted initialisation", their remedy for
a small hill-climbing set — and the blend is kept even when its held-out score does not beat
the best candidate's, since that score is the one being overfitted.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from byoc.algorithms.ensemble import aligned_proba
from byoc.artifact import REGRESSION
from byoc.automl.objective import Objective
from byoc.automl.search import SMALL_ROWS, Result, score_predictions

log = logging.getLogger(__name__)

MAX_POOL = 10  # best candidates the selection draws from
ROUNDS = 25  # additions (with replacement)
SORTED_INIT = 5  # small data: selection starts from this many best candidates (see the docstring)
# what a blend that starts from the best alone is expected to refit: the search keeps the time
# for that many (the blend may add more; those are left out of it when their refit cannot end)
GROWN_MEMBERS = 3


def initial_members(n_rows: int, cross_validated: bool = True) -> int:
    """How many of the best candidates selection starts from: ``SORTED_INIT`` on small data (as
    small as :mod:`.search` scores by repeated cross-validation), else — and on a validation
    channel, whose held-out rows stay as they were — the best alone."""
    return SORTED_INIT if cross_validated and n_rows <= SMALL_ROWS else 1


def refit_members(n_rows: int, cross_validated: bool = True) -> int:
    """How many of the best candidates the search keeps the time to refit on all rows: as many
    as the blend starts from (small data: every one of them is refitted), and at least
    ``GROWN_MEMBERS``."""
    return max(initial_members(n_rows, cross_validated), GROWN_MEMBERS)


def select(
    results: Sequence[Result],
    y: np.ndarray,
    objective: Objective,
    problem_type: str,
    n_classes: int,
    *,
    initial: int = 1,
    deadline: float = math.inf,
) -> tuple[dict[str, float], float]:
    """Weights by candidate name (summing to 1) and the blend's held-out score; ``results`` best
    first, selection starting from the ``initial`` best, equally weighted.  No round starts that
    would end after ``deadline`` (expected to take as long as the slowest so far): the time after
    it belongs to the final refit, and every round's blend is a valid one."""
    pool = [r for r in results if r.oof is not None][:MAX_POOL]
    if not pool:
        raise ValueError("no completed candidate to blend")

    def score(predictions: np.ndarray) -> float:
        return score_predictions(y, predictions, problem_type, n_classes).get(objective.key, float("nan"))

    counts = np.zeros(len(pool))
    total = np.zeros_like(pool[0].oof, dtype=float)
    best_score = float("nan")
    if initial > 1:
        first = pool[:initial]
        counts[: len(first)] = 1
        total = np.sum([np.asarray(r.oof, dtype=float) for r in first], axis=0)
        best_score = score(total / counts.sum())
    slowest = 0.0
    for done in range(ROUNDS):
        started = time.monotonic()
        if counts.sum() > 0 and started + slowest > deadline:
            log.info(
                "auto: blend selection stopped after %d of %d rounds: the time left is kept for the "
                "final refit",
                done,
                ROUNDS,
            )
            break
        trial_scores = [score((total + r.oof) / (counts.sum() + 1)) for r in pool]
        losses = [objective.loss(s) for s in trial_scores]
        pick = int(np.argmin(losses))
        if counts.sum() > 0 and not objective.better(trial_scores[pick], best_score):
            break
        counts[pick] += 1
        total += pool[pick].oof
        best_score = trial_scores[pick]
        slowest = max(slowest, time.monotonic() - started)
    weights = {r.name: float(c / counts.sum()) for r, c in zip(pool, counts, strict=True) if c > 0}
    return weights, best_score


def held_out(members: Sequence[tuple[Result, float]]) -> np.ndarray:
    """The held-out predictions of what would be saved (a blend's weighted members, or one
    candidate with weight 1): the weighted sum of their out-of-fold predictions, in the order given."""
    total = np.zeros_like(members[0][0].oof, dtype=float)
    for result, weight in members:
        total += weight * np.asarray(result.oof, dtype=float)
    return total


class _Blend(BaseEstimator):
    """Fitted pipelines with weights; fitted by the search, never by ``fit``."""

    def __init__(self, members: Sequence[tuple[str, Any, float]] = ()) -> None:
        self.members = members

    def fit(self, X: Any, y: Any = None) -> _Blend:
        raise TypeError("a blend is assembled from fitted members by the AutoML search; it has no fit")

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": name, "weight": round(float(w), 6)} for name, _, w in self.members]

    def member_pipelines(self) -> list[tuple[str, Any]]:
        """(name, fitted member pipeline): what compiled inference converts, member by member."""
        return [(name, model) for name, model, _ in self.members]

    def with_member_pipelines(self, replacements: Mapping[str, Any]) -> _Blend:
        """A shallow copy whose members named in ``replacements`` are swapped (same weights)."""
        blend = copy.copy(self)
        blend.members = [(name, replacements.get(name, model), w) for name, model, w in self.members]
        return blend

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
