"""Soft voting whose weights come from each member's cross-validated accuracy."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import StratifiedKFold, cross_val_score


class CVWeightedVotingClassifier(ClassifierMixin, BaseEstimator):
    """Each member is scored with k-fold cross-validation; its vote weighs its score above chance."""

    def __init__(self, estimators, cv: int = 3, random_state: int = 0):
        self.estimators = estimators
        self.cv = cv
        self.random_state = random_state

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        folds = StratifiedKFold(n_splits=self.cv, shuffle=True, random_state=self.random_state)
        chance = 1.0 / len(self.classes_)
        self.cv_scores_ = {
            name: float(cross_val_score(clone(est), X, y, cv=folds, scoring="accuracy").mean())
            for name, est in self.estimators
        }
        raw = np.array([max(self.cv_scores_[name] - chance, 0.0) for name, _ in self.estimators])
        self.weights_ = raw / raw.sum() if raw.sum() > 0 else np.full(len(raw), 1.0 / len(raw))
        self.fitted_ = [clone(est).fit(X, y) for _, est in self.estimators]
        return self

    def predict_proba(self, X):
        total = np.zeros((len(X), len(self.classes_)))
        for weight, est in zip(self.weights_, self.fitted_, strict=True):
            columns = np.searchsorted(self.classes_, est.classes_)
            total[:, columns] += weight * est.predict_proba(X)
        return total

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
