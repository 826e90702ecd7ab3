"""A cross-validation-weighted ensemble of full pipelines (the "bring your own library" model).

Each member is a complete pipeline (its own preprocessing: one-hot and scaling for linear
models, ordinal codes for trees).  ``fit`` scores every member with k-fold cross-validation,
turns the scores into weights, then refits every member on all rows:

- classification: balanced accuracy; weight ∝ max(score - chance, 0), where chance is
  1 / n_classes; prediction by soft voting (weighted mean of ``predict_proba``);
- regression: R²; weight ∝ max(R², 0); prediction by the weighted mean.

If no member beats chance, every member gets the same weight (and ``weighting_`` says so).
Per-member feature importances (by original column name) are computed at fit time: the
model's own importances where it has them, permutation importance on a sample otherwise.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.utils import Bunch
from sklearn.utils.validation import check_is_fitted

log = logging.getLogger(__name__)


class _CVWeightedEnsemble(BaseEstimator):
    """Shared fitting logic; see the module docstring."""

    _scoring = ""

    def __init__(
        self,
        estimators: Sequence[tuple[str, Any]],
        *,
        cv: int = 3,
        random_state: int | None = 0,
        importance_rows: int = 1000,
    ) -> None:
        self.estimators = estimators
        self.cv = cv
        self.random_state = random_state
        self.importance_rows = importance_rows

    # -- hooks ---------------------------------------------------------------------------
    def _splitter(self, y: np.ndarray) -> Any:
        raise NotImplementedError

    def _chance(self, y: np.ndarray) -> float:
        raise NotImplementedError

    # -- fitting -------------------------------------------------------------------------
    def _check_members(self) -> list[tuple[str, Any]]:
        members = list(self.estimators or [])
        if not members:
            raise ValueError("the ensemble needs at least one member")
        names = [name for name, _ in members]
        if len(set(names)) != len(names):
            raise ValueError(f"ensemble member names must be unique, got {names}")
        return members

    def _fit_members(self, X: Any, y: np.ndarray) -> _CVWeightedEnsemble:
        members = self._check_members()
        splitter = self._splitter(y)
        self._check_neighbours(members, splitter, X, y)
        scores = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name, estimator in members:
                folds = cross_val_score(
                    clone(estimator), X, y, cv=splitter, scoring=self._scoring, error_score=np.nan
                )
                finite = folds[np.isfinite(folds)]
                scores.append(float(finite.mean()) if finite.size else float("nan"))
                log.info(
                    "ensemble member %s: cv %s=%.6f over %d folds",
                    name,
                    self._scoring,
                    scores[-1],
                    splitter.get_n_splits(),
                )
        self.cv_scores_ = np.asarray(scores, dtype=float)
        self.cv_metric_ = self._scoring
        self.weights_, self.weighting_ = self._weights(self.cv_scores_, self._chance(y))
        log.info(
            "ensemble weights (%s): %s",
            self.weighting_,
            ", ".join(f"{name}={w:.6f}" for (name, _), w in zip(members, self.weights_, strict=True)),
        )
        self.estimators_ = [clone(estimator).fit(X, y) for _, estimator in members]
        self.named_estimators_ = Bunch(
            **{name: est for (name, _), est in zip(members, self.estimators_, strict=True)}
        )
        self.member_importances_ = {
            name: _importances(est, X, y, self._scoring, self.importance_rows, self.random_state)
            for (name, _), est in zip(members, self.estimators_, strict=True)
        }
        for name, values in self.member_importances_.items():
            top = ", ".join(f"{k}={v:.4f}" for k, v in list(values.items())[:5])
            log.info("ensemble member %s: top feature importances: %s", name, top or "n/a")
        if hasattr(X, "columns"):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def _check_neighbours(self, members: list[tuple[str, Any]], splitter: Any, X: Any, y: np.ndarray) -> None:
        """knn members score on every fold's training rows: each needs n_neighbors of them.

        Else every fold's fit fails and scikit-learn's "All the fits failed" names no
        hyperparameter."""
        from byoc.algorithms.builtin import check_enough_rows

        models = [est.steps[-1][1] if hasattr(est, "steps") else est for _, est in members]
        neighbours = [model.n_neighbors for model in models if hasattr(model, "n_neighbors")]
        if not neighbours:
            return
        fewest = min(len(train) for train, _ in splitter.split(X, y))
        check_enough_rows(
            max(neighbours),
            fewest,
            of=f" of the ensemble's smallest cross-validation fold (cv_folds={self.cv}, {len(y)} rows)",
            fix=f" to at most {fewest}, raise cv_folds,",
        )

    def member_pipelines(self) -> list[tuple[str, Any]]:
        """(name, fitted member pipeline): what compiled inference converts, member by member."""
        return list(self.named_estimators_.items())

    def with_member_pipelines(self, replacements: Mapping[str, Any]) -> _CVWeightedEnsemble:
        """A shallow copy whose members named in ``replacements`` are swapped (same weights)."""
        ensemble = copy.copy(self)
        ensemble.estimators_ = [replacements.get(name, est) for name, est in self.named_estimators_.items()]
        return ensemble

    def voting_members(self) -> list[tuple[float, Any]]:
        """(weight, fitted member) for the members that vote: those of a positive weight."""
        return [(w, est) for w, est in zip(self.weights_, self.estimators_, strict=True) if w > 0]

    def total_weight(self) -> float:
        """What the weighted sum of the voting members' answers is divided by."""
        return self.weights_[self.weights_ > 0].sum()

    @staticmethod
    def _weights(scores: np.ndarray, chance: float) -> tuple[np.ndarray, str]:
        gains = np.where(np.isfinite(scores), np.clip(scores - chance, 0, None), 0.0)
        if gains.sum() <= 0:
            return np.full(len(scores), 1.0 / len(scores)), (
                "equal: no member scored above chance in cross-validation"
            )
        return gains / gains.sum(), f"cross-validated score above chance ({chance:.4g})"

    def feature_importances(self) -> dict[str, float]:
        """Overall importance by original feature: members' importances, weighted."""
        check_is_fitted(self, "estimators_")
        total: dict[str, float] = {}
        used = 0.0
        for weight, values in zip(self.weights_, self.member_importances_.values(), strict=True):
            if not values:
                continue
            used += weight
            for feature, value in values.items():
                total[feature] = total.get(feature, 0.0) + weight * value
        if used <= 0:
            return {}
        return _normalised({k: v / used for k, v in total.items()})

    def describe(self) -> dict[str, Any]:
        check_is_fitted(self, "estimators_")
        return {
            "cv_metric": self.cv_metric_,
            "cv_folds": self.cv,
            "weighting": self.weighting_,
            "members": [
                {
                    "name": name,
                    "estimator": type(_final(est)).__name__,
                    "weight": round(float(w), 6),
                    "cv_score": round(float(s), 6) if np.isfinite(s) else None,
                    "feature_importances": self.member_importances_.get(name) or {},
                }
                for (name, est), w, s in zip(
                    self.named_estimators_.items(), self.weights_, self.cv_scores_, strict=True
                )
            ],
        }


class EnsembleClassifier(ClassifierMixin, _CVWeightedEnsemble):
    """Soft voting over members weighted by cross-validated balanced accuracy."""

    _scoring = "balanced_accuracy"

    def _splitter(self, y: np.ndarray) -> Any:
        smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
        folds = max(2, min(int(self.cv), smallest))
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state)

    def _chance(self, y: np.ndarray) -> float:
        return 1.0 / len(np.unique(y))

    def fit(self, X: Any, y: Any) -> EnsembleClassifier:
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError("the ensemble needs at least two classes to fit")
        return self._fit_members(X, y)

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        return weighted_mean(
            ((weight, aligned_proba(est, X, self.classes_)) for weight, est in self.voting_members()),
            np.zeros((len(X), len(self.classes_))),
            self.total_weight(),
        )

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class EnsembleRegressor(RegressorMixin, _CVWeightedEnsemble):
    """Weighted mean over members weighted by cross-validated R²."""

    _scoring = "r2"

    def _splitter(self, y: np.ndarray) -> Any:
        folds = max(2, min(int(self.cv), len(y)))
        return KFold(n_splits=folds, shuffle=True, random_state=self.random_state)

    def _chance(self, y: np.ndarray) -> float:
        return 0.0

    def fit(self, X: Any, y: Any) -> EnsembleRegressor:
        return self._fit_members(X, np.asarray(y, dtype=float))

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        return weighted_mean(
            ((weight, np.asarray(est.predict(X), dtype=float)) for weight, est in self.voting_members()),
            np.zeros(len(X)),
            self.total_weight(),
        )


def weighted_mean(answers: Iterable[tuple[float, Any]], zero: Any, total_weight: float) -> Any:
    """The ensemble's answer from (weight, member's answer) pairs: their weighted sum, from
    ``zero`` in member order, over the total weight.  One implementation for the ensemble and
    for the server's row path (byoc.serving.row_ensemble), so both give the same bits: ``zero``
    is ``np.zeros(shape)`` for arrays of answers (summed in place) or ``0.0`` for one row's
    answers as Python floats (``+=`` rebinds; the same IEEE products and sums, element by element)."""
    total = zero
    for weight, answer in answers:
        total += weight * answer
    return total / total_weight


def aligned_proba(estimator: Any, X: Any, classes: np.ndarray) -> np.ndarray:
    """A member's probabilities with one column per ensemble class (absent classes: 0)."""
    proba = np.asarray(estimator.predict_proba(X), dtype=float)
    return aligned(proba, class_positions(getattr(estimator, "classes_", classes), classes), len(classes))


def class_positions(own: Any, classes: np.ndarray) -> np.ndarray | None:
    """Where a member's classes sit among the ensemble's ``classes``; None when they are the same."""
    own = np.asarray(own)
    if len(own) == len(classes) and np.array_equal(own, classes):
        return None
    return np.searchsorted(classes, own)


def aligned(proba: np.ndarray, positions: np.ndarray | None, width: int) -> np.ndarray:
    """``proba`` with one column per ensemble class (:func:`class_positions`; absent classes: 0)."""
    if positions is None:
        return proba
    out = np.zeros((proba.shape[0], width))
    out[:, positions] = proba
    return out


def _final(estimator: Any) -> Any:
    return estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator


def _normalised(values: dict[str, float]) -> dict[str, float]:
    total = sum(abs(v) for v in values.values())
    if total <= 0 or not np.isfinite(total):
        return {}
    ranked = sorted(values.items(), key=lambda kv: -abs(kv[1]))
    return {k: round(float(v) / float(total), 6) for k, v in ranked}


def _importances(
    estimator: Any, X: Any, y: np.ndarray, scoring: str, rows: int, random_state: int | None
) -> dict[str, float]:
    """Importances by original column: native when the model has them, permutation else."""
    from byoc.algorithms import native_importances

    native = native_importances(estimator)
    if native is not None:
        return native
    if not isinstance(X, pd.DataFrame) or rows <= 0:
        return {}
    return permutation_importances(estimator, X, y, scoring=scoring, rows=rows, random_state=random_state)


def permutation_importances(
    estimator: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    scoring: str,
    rows: int = 1000,
    random_state: int | None = 0,
) -> dict[str, float]:
    """Mean drop in ``scoring`` when a column is shuffled, on at most ``rows`` rows."""
    from sklearn.inspection import permutation_importance

    if len(X) > rows:
        pick = np.random.default_rng(random_state).choice(len(X), size=rows, replace=False)
        X, y = X.iloc[np.sort(pick)], np.asarray(y)[np.sort(pick)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = permutation_importance(
            estimator, X, y, scoring=scoring, n_repeats=3, random_state=random_state
        )
    values = {str(c): max(float(v), 0.0) for c, v in zip(X.columns, result.importances_mean, strict=True)}
    return _normalised(values)
