"""Stacked ensemble: a simple meta-model on the best candidates' out-of-fold predictions.

The greedy blend (:mod:`.blend`) can only average its members; a meta-model can also learn that
one member is sharper for some classes or that another's scores need rescaling — what
AutoGluon's stacker layer does.  The search already holds every candidate's out-of-fold
predictions, so the stack costs no extra fit of its members: the meta-model (a logistic model
on the members' log-probabilities, or least squares on their predictions for regression, both
with non-negative weights: :class:`NonNegativeLogistic`) is scored by cross-validation on those
predictions, and the stack
is chosen only when that score beats the blend and every candidate by more than the
cross-validation noise (:mod:`.choice`).  Its members are then refitted on all rows like a
blend's; the meta-model is fitted on all out-of-fold rows, in a child process killed at the
refit's deadline (:func:`fit_meta_until`).  Its scoring only uses the time
the final refit does not need (:func:`consider`): the stack is optional, a refit on all rows is not.

:func:`meta_features` is the one rule that turns members' predictions into the meta-model's
input: the stack's CV score and the served model both call it.

Why no weight may be negative: out-of-fold predictions are those of models fitted without the
row, and on a few rows they can be anti-correlated with the target (5 to 12 alternating labels:
each held-out row's neighbours hold the other label); an unconstrained logistic meta-model
learnt to invert them, scored F1=1.0 by cross-validation on those rows, and the saved stack —
its members refitted on every row, now right on them, then inverted — got every training row
wrong.  A non-negative weight can rescale or drop a member, never turn it around: as in
Caruana's ensemble selection (auto-sklearn, AutoGluon's weighted ensemble) and Breiman's
stacked regression.  And a meta-model is only fitted with ``ROWS_PER_WEIGHT`` rows of the
smallest class (all rows, for regression) per weight of each class's equation
(:func:`supported_members`): fewer members on fewer rows, none below two.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

from byoc.algorithms.ensemble import aligned_proba
from byoc.artifact import REGRESSION
from byoc.automl import candidates as cands
from byoc.automl import isolated
from byoc.automl.objective import Objective
from byoc.automl.search import COMPLETED, Context, CostModel, Result, score_predictions

log = logging.getLogger(__name__)

FAMILY = "stack"
MAX_MEMBERS = 5
META_FOLDS = 5
# rows of the smallest class (regression: rows) per parameter of each class's equation (a weight
# per member and an intercept): the "ten events per variable" of logistic regression (Peduzzi et
# al., 1996); 5 members need 60 rows of the smallest class, 2 members 30
ROWS_PER_WEIGHT = 10
_EPSILON = 1e-6


def supported_members(y: np.ndarray, problem_type: str) -> int:
    """How many members a meta-model fitted on ``y`` (the held-out rows) may weigh: each class's
    equation has a weight per member and an intercept, and ``ROWS_PER_WEIGHT`` rows of the
    smallest class (regression: of all rows) are needed per parameter; at most ``MAX_MEMBERS``."""
    return min(MAX_MEMBERS, limiting_rows(y, problem_type) // ROWS_PER_WEIGHT - 1)


def limiting_rows(y: np.ndarray, problem_type: str) -> int:
    """The rows that bound a meta-model's size: the smallest class's, or (regression) all."""
    if problem_type == REGRESSION or not len(y):
        return len(y)
    return int(np.bincount(np.asarray(y, dtype=np.intp)).min())


def pool(ranked: Sequence[Result], limit: int = MAX_MEMBERS) -> list[Result]:
    """Members for a stack: the best candidate of each family (diversity) best first, filled up
    with the next best candidates to ``limit``; ``ranked`` is best first."""
    usable = [r for r in ranked if r.oof is not None]
    chosen: list[Result] = []
    families: set[str] = set()
    for result in usable:
        if result.candidate.family not in families:
            families.add(result.candidate.family)
            chosen.append(result)
    for result in usable:
        if result not in chosen:
            chosen.append(result)
    chosen = chosen[:limit]
    return sorted(chosen, key=lambda r: usable.index(r))


def meta_features(predictions: Sequence[np.ndarray], regression: bool) -> np.ndarray:
    """The meta-model's input from each member's predictions (probabilities over every class,
    or values): log-probabilities (binary: the positive class's log-odds), or the values."""
    if regression:
        return np.column_stack([np.asarray(p, dtype=float) for p in predictions])
    columns = []
    for proba in predictions:
        clipped = np.clip(np.asarray(proba, dtype=float), _EPSILON, 1.0 - _EPSILON)
        if clipped.shape[1] == 2:
            columns.append(np.log(clipped[:, 1:]) - np.log(clipped[:, :1]))
        else:
            columns.append(np.log(clipped))
    return np.hstack(columns)


class NonNegativeLogistic(ClassifierMixin, BaseEstimator):
    """Logistic regression on :func:`meta_features` whose member weights are non-negative.

    Binary: P(class 1) = expit(b + sum_m w_m * log-odds_m).  Multiclass: class k's score is
    b_k + sum_m w_mk * log p_mk (a member's weight may differ by class: one member sharper for
    some classes), then softmax.  With w >= 0 a member can be rescaled or dropped (w = 0) but
    never inverted.  The loss is scikit-learn's LogisticRegression's: C x log loss + |w|^2 / 2
    (the L2 penalty keeps correlated members stable; the intercepts are not penalised),
    minimised by L-BFGS-B within the bounds, from the members' equal geometric mean (w = 1/M)."""

    def __init__(self, n_classes: int = 2, C: float = 1.0, max_iter: int = 1000) -> None:
        self.n_classes = n_classes
        self.C = C
        self.max_iter = max_iter

    def _per_class(self, Z: np.ndarray) -> np.ndarray:
        """``Z`` as (rows, members, columns per member): 1 (binary log-odds) or n_classes."""
        width = 1 if self.n_classes == 2 else self.n_classes
        Z = np.asarray(Z, dtype=float)
        return Z.reshape(len(Z), Z.shape[1] // width, width)

    def _scores(self, X: np.ndarray, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        return np.einsum("nmk,mk->nk", X, coef) + intercept

    def fit(self, Z: np.ndarray, y: np.ndarray) -> NonNegativeLogistic:
        X = self._per_class(Z)
        rows, members, width = X.shape
        y = np.asarray(y, dtype=np.intp)
        target = y[:, None].astype(float) if width == 1 else np.eye(self.n_classes)[y]
        size = members * width

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            coef, intercept = theta[:size].reshape(members, width), theta[size:]
            scores = self._scores(X, coef, intercept)
            if width == 1:
                value = float(np.sum(np.logaddexp(0.0, scores) - target * scores))
                residual = expit(scores) - target
            else:
                log_p = log_softmax(scores, axis=1)
                value = float(-np.sum(target * log_p))
                residual = np.exp(log_p) - target
            grad_coef = self.C * np.einsum("nmk,nk->mk", X, residual) + coef
            grad = np.concatenate([grad_coef.ravel(), self.C * residual.sum(axis=0)])
            return self.C * value + 0.5 * float(np.sum(coef**2)), grad

        start = np.concatenate([np.full(size, 1.0 / members), np.zeros(width)])
        bounds = [(0.0, None)] * size + [(None, None)] * width
        found = minimize(
            loss, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": self.max_iter}
        )
        self.coef_ = found.x[:size].reshape(members, width)
        self.intercept_ = found.x[size:]
        self.classes_ = np.arange(self.n_classes)
        return self

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        scores = self._scores(self._per_class(Z), self.coef_, self.intercept_)
        if scores.shape[1] == 1:
            positive = expit(scores[:, 0])
            return np.column_stack([1.0 - positive, positive])
        return np.exp(log_softmax(scores, axis=1))

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.predict_proba(Z).argmax(axis=1)


def meta_model(problem_type: str, n_classes: int) -> Any:
    """Unfitted, every member's weight non-negative (see the module's docstring): a logistic
    model (:class:`NonNegativeLogistic`), or least squares (Breiman's stacked regression)."""
    if problem_type == REGRESSION:
        return LinearRegression(positive=True)
    return NonNegativeLogistic(n_classes=n_classes)


def _describe(members: Sequence[Result], problem_type: str) -> cands.Candidate:
    meta = "nonnegative_least_squares" if problem_type == REGRESSION else "nonnegative_logistic"
    return cands.Candidate(FAMILY, "oof", {"members": len(members), "meta": meta})


def _meta_predict(model: Any, Z: np.ndarray, n_classes: int) -> np.ndarray:
    if not n_classes:
        return np.asarray(model.predict(Z), dtype=float)
    return aligned_proba(model, Z, np.arange(n_classes))


@dataclass
class Scored:
    """The stack's result (a leaderboard row; ``oof`` its cross-validated predictions) and its members."""

    result: Result
    members: list[Result]


def evaluate(
    members: Sequence[Result],
    y: np.ndarray,
    goal: Objective,
    problem_type: str,
    n_classes: int,
    *,
    seed: int,
    finished_at: float,
) -> Scored:
    """Score the meta-model by ``META_FOLDS``-fold cross-validation on the members' out-of-fold
    predictions (rows no member was fitted on, so the estimate is honest)."""
    Z = meta_features([m.oof for m in members if m.oof is not None], problem_type == REGRESSION)
    classify = problem_type != REGRESSION
    if classify:
        smallest = int(np.bincount(np.asarray(y, dtype=np.intp)).min())
        folds: Any = StratifiedKFold(max(2, min(META_FOLDS, smallest)), shuffle=True, random_state=seed)
    else:
        folds = KFold(META_FOLDS, shuffle=True, random_state=seed)
    predictions = np.zeros((len(y), n_classes)) if classify else np.zeros(len(y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if classify:  # aligned per fold: a fold may miss a rare class
            for train, test in folds.split(Z, y):
                model = meta_model(problem_type, n_classes).fit(Z[train], y[train])
                predictions[test] = _meta_predict(model, Z[test], n_classes)
        else:
            predictions = cross_val_predict(meta_model(problem_type, 0), Z, y, cv=folds)
    scores = score_predictions(y, predictions, problem_type, n_classes)
    result = Result(
        _describe(members, problem_type),
        COMPLETED,
        scores.get(goal.key, float("nan")),
        float("nan"),  # scored once on every out-of-fold row: no spread across folds to give
        scores,
        finished_at=finished_at,
        message="meta-model on the out-of-fold predictions of " + ", ".join(m.name for m in members),
        oof=np.asarray(predictions, dtype=float),
    )
    return Scored(result, list(members))


def fit_meta(members: Sequence[Result], y: np.ndarray, problem_type: str) -> Any:
    """The meta-model fitted on every out-of-fold row (classes: the members' probability columns)."""
    predictions = [m.oof for m in members if m.oof is not None]
    Z = meta_features(predictions, problem_type == REGRESSION)
    n_classes = 0 if problem_type == REGRESSION else np.asarray(predictions[0]).shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return meta_model(problem_type, n_classes).fit(Z, y)


def fit_meta_until(
    members: Sequence[Result], y: np.ndarray, problem_type: str, deadline: isolated.Deadline
) -> tuple[Any, str]:
    """:func:`fit_meta` in a child process killed when ``deadline()`` passes, like every other
    fit of the job (a meta-model's fit cannot be interrupted): the fitted meta-model and "",
    or None and why there is none."""
    fit = fit_meta  # looked up now, in the parent (tests slow it down by replacing it)
    ended = isolated.run(lambda report: fit(members, y, problem_type), deadline)
    if ended.finished:
        return ended.value, ""
    if ended.killed:
        return (
            None,
            f"its meta-model's fit on all {len(y)} rows was stopped after {ended.seconds:.1f} s: {ended.killed}",
        )
    return None, isolated.lost(f"the process fitting its meta-model on all {len(y)} rows", ended)


class Stack(BaseEstimator):
    """Fitted member pipelines and a fitted meta-model; assembled by the AutoML job, never by ``fit``."""

    def __init__(self, members: Sequence[tuple[str, Any]] = (), meta: Any = None) -> None:
        self.members = members
        self.meta = meta

    def fit(self, X: Any, y: Any = None) -> Stack:
        raise TypeError("a stack is assembled from fitted members by the AutoML job; it has no fit")

    def __sklearn_is_fitted__(self) -> bool:
        return bool(self.members) and self.meta is not None

    def describe(self) -> list[dict[str, Any]]:
        return [{"name": name} for name, _ in self.members]

    def member_pipelines(self) -> list[tuple[str, Any]]:
        """(name, fitted member pipeline): what compiled inference converts, member by member."""
        return list(self.members)

    def with_member_pipelines(self, replacements: Mapping[str, Any]) -> Stack:
        """A shallow copy whose members named in ``replacements`` are swapped (same meta-model)."""
        stack = copy.copy(self)
        stack.members = [(name, replacements.get(name, model)) for name, model in self.members]
        return stack


class StackClassifier(ClassifierMixin, Stack):
    """The meta-model's probabilities over classes 0..n_classes-1 from the members' probabilities."""

    def __init__(self, members: Sequence[tuple[str, Any]] = (), meta: Any = None, n_classes: int = 2) -> None:
        super().__init__(members, meta)
        self.n_classes = n_classes

    @property
    def classes_(self) -> np.ndarray:
        return np.arange(self.n_classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        Z = meta_features([aligned_proba(model, X, self.classes_) for _, model in self.members], False)
        return _meta_predict(self.meta, Z, self.n_classes)

    def predict(self, X: Any) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


class StackRegressor(RegressorMixin, Stack):
    """The meta-model's value from the members' predictions."""

    def predict(self, X: Any) -> np.ndarray:
        Z = meta_features([np.asarray(model.predict(X), dtype=float) for _, model in self.members], True)
        return _meta_predict(self.meta, Z, 0)


def assemble(members: Sequence[tuple[str, Any]], meta: Any, problem_type: str, n_classes: int) -> Any:
    if problem_type == REGRESSION:
        return StackRegressor(list(members), meta)
    return StackClassifier(list(members), meta, n_classes=n_classes)


def consider(
    ranked: Sequence[Result],
    y: np.ndarray,
    ctx: Context,
    costs: CostModel,
    *,
    deadline: float,
    reserve: float = 0.0,
) -> tuple[Scored | None, str]:
    """The stack of :func:`pool`'s members, scored, and why not ("" when scored, or when fewer
    than two candidates finished).  ``deadline`` is when the final refit must end and
    ``reserve`` the refit of what is saved without a stack: the scoring may only use the time
    before both that refit and the stack's own (every member: a stack needs them all) could
    still end by ``deadline``: it is skipped when there is none, and scored in a child process
    (:mod:`.isolated`) killed when that time is up.  Raises scikit-learn's ValueError when the
    meta-model cannot be cross-validated on ``y``."""
    if len([r for r in ranked if r.oof is not None]) < 2:
        return None, ""
    supported = supported_members(y, ctx.problem_type)
    if supported < 2:
        smallest = "rows" if ctx.problem_type == REGRESSION else "rows of its smallest class"
        return _without(
            f"not considered: the held-out rows are too few for a meta-model ({limiting_rows(y, ctx.problem_type)} "
            f"{smallest}; weighing 2 members needs {3 * ROWS_PER_WEIGHT}: {ROWS_PER_WEIGHT} per weight and per intercept)"
        )
    members = pool(ranked, supported)
    refit = sum(costs.refit(m.candidate, ctx.plan.folds) for m in members)
    needed, what = max((refit, f"its {len(members)} members"), (reserve, "the model chosen without it"))
    scoring_by = deadline - needed
    now = time.monotonic()
    if ctx.stop.is_set():
        return _without("not considered: the job was stopped (SIGTERM) before it was scored")
    if now >= scoring_by:
        return _without(
            f"not scored: refitting {what} on all rows needs about {needed:.1f} s and "
            f"{max(deadline - now, 0.0):.1f} s were left for the refit"
        )
    reserved = f"it would have run into the {needed:.1f} s kept to refit {what} on all rows"

    def work(report: Callable[..., None]) -> Result | ValueError:
        """The stack's row; scikit-learn's refusal of the held-out rows is sent back, not lost."""
        try:
            return evaluate(
                members,
                y,
                ctx.objective,
                ctx.problem_type,
                ctx.n_classes,
                seed=ctx.seed,
                finished_at=ctx.elapsed(),
            ).result
        except ValueError as exc:
            return exc

    def until() -> tuple[float, str]:
        return (-math.inf, isolated.ASKED_TO_STOP) if ctx.stop.is_set() else (scoring_by, reserved)

    log.info(
        "auto: scoring a stacked ensemble of %d candidates (%.1f s for it, %.1f s kept to refit %s)",
        len(members),
        scoring_by - now,
        needed,
        what,
    )
    ended = isolated.run(work, until)  # a meta-model's fit cannot be interrupted: its process is killed
    if isinstance(ended.value, ValueError):
        raise ended.value
    if ended.killed:
        return _without(f"its scoring was stopped after {ended.seconds:.1f} s: {ended.killed}")
    if not ended.finished:  # the cause first: out of memory, as a candidate's (isolated.lost)
        return _without(f"{isolated.lost('the process scoring it', ended)} (after {ended.seconds:.1f} s)")
    scored = Scored(ended.value, list(members))
    log.info(
        "auto ensemble: %s: %s=%.6f (a meta-model on the out-of-fold predictions of %d candidates, "
        "cross-validated); elapsed %.1f s, budget left %.1f s",
        scored.result.name,
        ctx.objective.name,
        scored.result.score,
        len(members),
        ctx.elapsed(),
        max(ctx.hard_deadline - time.monotonic(), 0.0),
    )
    return scored, ""


def _without(why: str) -> tuple[None, str]:
    log.info("auto: no stacked ensemble: %s", why)
    return None, why
