"""Scoring candidates under a time budget: the evaluation plan, one candidate's score, the search.

The plan adapts to the data's size: small data gets repeated stratified k-fold (a single split
of a few hundred rows is noise — the reason a plain default often beats a searched model there),
larger data fewer folds, very large data one held-out split; a validation channel, when given,
is the held-out split.  Every candidate is scored on the same splits, and its out-of-fold
predictions are kept: they rank candidates, choose the blend and draw the report, all on rows
the model did not see.

The search spends the budget in two phases: the portfolio of known-good configurations, then a
local search around the best families.  Before each candidate it estimates the cost from what
the same family has cost so far and skips what cannot finish before the search deadline (the
budget minus what the final refit and the report will need).  A stop request (SIGTERM) or the
hard deadline ends a candidate between folds.  Folds run with one OpenMP thread: a fold is
small, and HistGradientBoosting's OpenMP threads spin-wait, so on a busy or small machine
they cost 10-50x more than they save.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    KFold,
    RepeatedKFold,
    RepeatedStratifiedKFold,
    ShuffleSplit,
    StratifiedKFold,
    StratifiedShuffleSplit,
)
from threadpoolctl import threadpool_limits

from byoc import metrics, outofmemory
from byoc.algorithms.ensemble import aligned_proba
from byoc.artifact import REGRESSION, Feature
from byoc.automl import candidates as cands
from byoc.automl.objective import Objective

log = logging.getLogger(__name__)

COMPLETED, FAILED, STOPPED, SKIPPED = "Completed", "Failed", "Stopped", "Skipped"
DATA = "data"  # Result.blame: the library refused the data (the user's to fix), not a bug of ours
# Result.blame: it ran out of memory — a MemoryError, or the process scoring it SIGKILLed, not by
# the job: the kernel's OOM killer.  The instance's size, not the data: the user's to fix with a
# larger one (not checkpointed: a restart on a larger one retries it)
MEMORY = "memory"
MIN_CLASS_ROWS = 2  # stratified k-fold: every fold's training rows must hold every class
MIN_REGRESSION_ROWS = 5  # 5-fold cross-validation
# Where scikit-learn checks its input: a ValueError raised there is about the data.
_INPUT_CHECKS = ("sklearn.utils.validation", "sklearn.utils.multiclass")
SMALL_ROWS = 2000
MEDIUM_ROWS = 20000
LARGE_ROWS = 100000


@dataclass(frozen=True)
class Plan:
    """The splits every candidate is scored on; ``covered`` marks rows with a held-out prediction."""

    splits: tuple[tuple[np.ndarray, np.ndarray], ...]
    covered: np.ndarray
    description: str

    @property
    def folds(self) -> int:
        return len(self.splits)


def too_few_rows(y: np.ndarray, problem_type: str, labels: Sequence[Any]) -> str | None:
    """What keeps cross-validation from scoring candidates on the encoded target ``y``, or None:
    k-fold needs k rows, and a class with fewer than two rows leaves some fold's training rows
    without it (every model then fails or predicts a different set of classes)."""
    if problem_type == REGRESSION:
        return f"has {len(y)} rows" if len(y) < MIN_REGRESSION_ROWS else None
    counts = np.bincount(np.asarray(y, dtype=np.intp), minlength=len(labels))
    rare = [f"'{labels[i]}': {int(c)} row" for i, c in enumerate(counts) if c < MIN_CLASS_ROWS]
    if not rare:
        return None
    more = f" and {len(rare) - 5} more" if len(rare) > 5 else ""
    return f"has {len(rare)} class(es) with fewer than {MIN_CLASS_ROWS} rows ({', '.join(rare[:5])}{more})"


def blame(exc: BaseException) -> str:
    """MEMORY when ``exc`` is memory running out; DATA when it is scikit-learn refusing the data
    (a ValueError raised by its input checks); else "" (a fault of ours, or not known to be the data's)."""
    if isinstance(exc, MemoryError):
        return MEMORY
    if not isinstance(exc, ValueError):
        return ""
    tb, module = exc.__traceback__, ""
    while tb is not None:
        module = tb.tb_frame.f_globals.get("__name__", "")
        tb = tb.tb_next
    return DATA if module in _INPUT_CHECKS else ""


def make_plan(y: np.ndarray, problem_type: str, *, seed: int, n_train: int | None = None) -> Plan:
    """Splits for ``len(y)`` rows; with ``n_train``, rows from ``n_train`` on are the validation channel."""
    n = len(y)
    if n_train is not None and n_train < n:
        train, test = np.arange(n_train), np.arange(n_train, n)
        covered = np.zeros(n, dtype=bool)
        covered[test] = True
        return Plan(((train, test),), covered, f"the validation channel ({n - n_train} rows)")
    classify = problem_type != REGRESSION
    smallest = int(np.bincount(np.asarray(y, dtype=np.intp)).min()) if classify else n
    splitter: Any
    if n > LARGE_ROWS:
        kind = StratifiedShuffleSplit if classify else ShuffleSplit
        splitter = kind(n_splits=1, test_size=0.2, random_state=seed)
        description = "one stratified 80/20 split" if classify else "one 80/20 split"
    else:
        folds = 5 if n <= MEDIUM_ROWS else 3
        repeats = 3 if n <= SMALL_ROWS else 1
        folds = max(2, min(folds, smallest)) if classify else folds
        if repeats > 1:
            kind = RepeatedStratifiedKFold if classify else RepeatedKFold
            splitter = kind(n_splits=folds, n_repeats=repeats, random_state=seed)
        else:
            kind = StratifiedKFold if classify else KFold
            splitter = kind(n_splits=folds, shuffle=True, random_state=seed)
        description = f"{'stratified ' if classify else ''}{folds}-fold cross-validation" + (
            f" repeated {repeats} times" if repeats > 1 else ""
        )
    splits = tuple((np.asarray(a), np.asarray(b)) for a, b in splitter.split(np.zeros(n), y))
    covered = np.zeros(n, dtype=bool)
    for _, test in splits:
        covered[test] = True
    return Plan(splits, covered, description)


@dataclass
class Result:
    """One candidate's outcome; ``oof`` holds its held-out predictions on ``plan.covered`` rows
    (probabilities for classification, values for regression)."""

    candidate: cands.Candidate
    status: str
    score: float = float("nan")
    std: float = float("nan")
    metrics: dict[str, float] = field(default_factory=dict)
    fit_seconds: float = 0.0
    finished_at: float = 0.0
    message: str = ""
    oof: np.ndarray | None = field(default=None, repr=False)
    host: str = ""  # where it was scored (several hosts: the Dask worker's host)
    folds_done: int = 0  # folds scored before it completed, failed or was stopped
    blame: str = ""  # a failure's cause: DATA, MEMORY or "" (see :func:`blame`)
    # The model fitted on the last fold's training rows: what is saved when the final refit on
    # every row cannot end in time (kept for the best candidate only; see Search._keep_one_model).
    model: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.candidate.name


@dataclass
class Context:
    """Everything a candidate's evaluation needs besides the candidate."""

    X: pd.DataFrame
    y: np.ndarray
    problem_type: str
    features: Sequence[Feature]
    n_classes: int
    objective: Objective
    plan: Plan
    seed: int
    n_jobs: int
    started: float
    hard_deadline: float
    stop: threading.Event

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def __getstate__(self) -> dict[str, Any]:
        """Travels to another host without the stop event: each process has its own."""
        state = dict(self.__dict__)
        del state["stop"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, stop=threading.Event())


def predict_held_out(model: Any, X: pd.DataFrame, problem_type: str, n_classes: int) -> np.ndarray:
    if problem_type == REGRESSION:
        return np.asarray(model.predict(X), dtype=float)
    return aligned_proba(model, X, np.arange(n_classes))


def score_predictions(
    y: np.ndarray, predictions: np.ndarray, problem_type: str, n_classes: int
) -> dict[str, float]:
    """Every metric of ``byoc.metrics`` for held-out predictions (proba or values)."""
    if problem_type == REGRESSION:
        return metrics.compute(problem_type, y, predictions)
    return metrics.compute(problem_type, y, predictions.argmax(axis=1), predictions, n_classes)


def evaluate(
    candidate: cands.Candidate,
    ctx: Context,
    deadline: float | None = None,
    on_fold: Callable[[int, float], None] | None = None,
    keep_model_below: float = math.inf,
) -> Result:
    """Fit and score one candidate on every split of the plan.

    Stops between folds on a stop request, past the hard deadline, or when the next fold is
    expected (from the folds so far) to end after ``deadline``.  ``on_fold(folds done, fit
    seconds)`` hears of each finished fold (:mod:`byoc.automl.isolated` reports progress with it).
    A completed result whose loss is below ``keep_model_below`` carries its last fold's model.
    """
    n = len(ctx.y)
    shape = (n,) if ctx.problem_type == REGRESSION else (n, ctx.n_classes)
    sums, counts = np.zeros(shape), np.zeros(n)
    fold_scores: list[float] = []
    fit_seconds = 0.0
    model: Any = None
    for number, (train, test) in enumerate(ctx.plan.splits, start=1):
        per_fold = fit_seconds / (number - 1) if number > 1 else 0.0
        late = deadline is not None and time.monotonic() + per_fold > deadline
        if ctx.stop.is_set() or time.monotonic() > ctx.hard_deadline or late:
            why = "the job was asked to stop" if ctx.stop.is_set() else "the time budget ran out"
            return Result(
                candidate,
                STOPPED,
                fit_seconds=fit_seconds,
                finished_at=ctx.elapsed(),
                message=f"stopped after {number - 1} of {ctx.plan.folds} folds: {why}",
                folds_done=number - 1,
            )
        started = time.monotonic()
        try:
            with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="openmp"):
                warnings.simplefilter("ignore")
                model = fit_candidate(candidate, ctx, ctx.X.iloc[train], ctx.y[train])
                held_out = predict_held_out(model, ctx.X.iloc[test], ctx.problem_type, ctx.n_classes)
        except Exception as exc:  # one candidate failing must not end the search
            log.debug("candidate %s failed", candidate, exc_info=True)
            said = f"{type(exc).__name__}: {exc}"[:500]
            if isinstance(exc, MemoryError):
                said = f"{outofmemory.ran_out(exc)}, during fold {number} of {ctx.plan.folds}"
            return Result(
                candidate,
                FAILED,
                fit_seconds=fit_seconds + time.monotonic() - started,
                finished_at=ctx.elapsed(),
                message=said,
                folds_done=number - 1,
                blame=blame(exc),
            )
        fit_seconds += time.monotonic() - started
        if on_fold is not None:
            on_fold(number, fit_seconds)
        sums[test] += held_out
        counts[test] += 1
        fold = score_predictions(ctx.y[test], held_out, ctx.problem_type, ctx.n_classes)
        fold_scores.append(fold.get(ctx.objective.key, float("nan")))
    covered = ctx.plan.covered
    oof = sums[covered] / (counts[covered][:, None] if sums.ndim == 2 else counts[covered])
    scores = score_predictions(ctx.y[covered], oof, ctx.problem_type, ctx.n_classes)
    score = scores.get(ctx.objective.key, float("nan"))
    finite = [s for s in fold_scores if math.isfinite(s)]
    std = float(np.std(finite)) if len(finite) > 1 else 0.0
    return Result(
        candidate,
        COMPLETED,
        score,
        std,
        scores,
        fit_seconds,
        ctx.elapsed(),
        oof=oof,
        folds_done=ctx.plan.folds,
        model=model if ctx.objective.loss(score) < keep_model_below else None,
    )


def fit_candidate(candidate: cands.Candidate, ctx: Context, X: pd.DataFrame, y: np.ndarray) -> Any:
    """``candidate`` built and fitted on ``X``, ``y`` with one OpenMP thread (see the module docstring)."""
    model = cands.build(candidate, ctx.problem_type, ctx.features, random_state=ctx.seed, n_jobs=ctx.n_jobs)
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="openmp"):
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return model


def refit(candidate: cands.Candidate, ctx: Context, X: pd.DataFrame, y: np.ndarray) -> Any:
    """The final refit of a chosen candidate on every row (run by :func:`byoc.automl.isolated.refit`
    in a child killed at the deadline; its own name, so a test can make it slow)."""
    return fit_candidate(candidate, ctx, X, y)


class Runner(Protocol):
    """Where candidates are scored: up to ``slots`` at a time, results in the order they finish."""

    slots: int

    def submit(self, candidate: cands.Candidate, deadline: float, keep_model_below: float) -> None: ...

    def pending(self) -> int: ...

    def next_result(self) -> Result: ...


class InProcess:
    """One candidate at a time, on this host: in a forked child killed at the search deadline
    (:mod:`byoc.automl.isolated`), so no fit carries the job past its budget."""

    slots = 1

    def __init__(self, ctx: Context, host: str = "") -> None:
        self.ctx = ctx
        self.host = host
        self._done: list[Result] = []

    def submit(self, candidate: cands.Candidate, deadline: float, keep_model_below: float) -> None:
        from byoc.automl import isolated

        result = isolated.evaluate(candidate, self.ctx, deadline, deadline, keep_model_below)
        result.host = self.host
        self._done.append(result)

    def pending(self) -> int:
        return len(self._done)

    def next_result(self) -> Result:
        return self._done.pop(0)


class CostModel:
    """Seconds per fold by family, learnt from finished candidates, scaled by their size knobs.

    A candidate stopped for time teaches its family's cost too (its folds' seconds: exact when
    it stopped between folds, at least that when it was killed during one), so the search does
    not start another of the same kind that cannot end.  A forest family not seen yet is
    estimated from the other one: random forest and extra trees both grow full-depth trees on
    the same rows (extra trees are usually the cheaper), so on 70,000 rows, where one forest's
    first fold took 24 of a 60 s budget, the other is not started blind.
    """

    _SIZE_KNOBS = {"n_estimators": 100, "max_iter": 100}
    _KIN = {"random_forest": "extra_trees", "extra_trees": "random_forest"}

    def __init__(self) -> None:
        self._per_unit: dict[str, list[float]] = {}

    def _units(self, candidate: cands.Candidate) -> float:
        units = 1.0
        for knob, base in self._SIZE_KNOBS.items():
            if knob in candidate.params and candidate.family != "linear":
                units *= max(float(candidate.params[knob]), 1.0) / base
        return units

    def record(self, result: Result, folds: int) -> None:
        if result.status == COMPLETED and folds:
            per_fold = result.fit_seconds / folds
        elif result.status == STOPPED and result.fit_seconds > 0:
            per_fold = result.fit_seconds / max(result.folds_done, 1)
        else:
            return
        self._per_unit.setdefault(result.candidate.family, []).append(
            per_fold / self._units(result.candidate)
        )

    def estimate(self, candidate: cands.Candidate, folds: int) -> float | None:
        """Expected seconds for all folds, or None for a family (and kin) not seen yet."""
        seen = self._per_unit.get(candidate.family) or self._per_unit.get(self._KIN.get(candidate.family, ""))
        if not seen:
            return None
        return float(np.median(seen)) * self._units(candidate) * folds

    def refit(self, candidate: cands.Candidate, folds: int) -> float:
        """Expected seconds to refit on all rows: one fold's cost, scaled up for the larger sample."""
        per_fold = self.estimate(candidate, 1) or 0.0
        share = 1.0 if folds <= 1 else folds / (folds - 1)
        return per_fold * share * 1.2


Reporter = Callable[[Result, int, float], None]


class Search:
    """Portfolio first, then local search around the best, within ``search_deadline``.

    Candidates are scored by ``runner`` (default: here, one at a time; on several hosts, Dask
    workers, several at a time): the choice of what to score next, the cost estimates and the
    deadline stay here whatever runs the fits.
    """

    def __init__(
        self,
        ctx: Context,
        *,
        search_deadline: Callable[[list[Result]], float],
        done: Sequence[Result] = (),
        on_result: Reporter | None = None,
        max_candidates: int | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.ctx = ctx
        self.search_deadline = search_deadline
        self.results: list[Result] = list(done)
        self.costs = CostModel()
        for result in self.results:
            self.costs.record(result, ctx.plan.folds)
        self.on_result = on_result
        self.max_candidates = max_candidates
        self.runner: Runner = runner if runner is not None else InProcess(ctx)
        self._seen = {r.name for r in self.results}
        self.rng = np.random.default_rng(ctx.seed)
        self._portfolio: list[cands.Candidate] = []
        self._round: list[cands.Candidate] = []
        self._rounds = 0

    def completed(self) -> list[Result]:
        done = [r for r in self.results if r.status == COMPLETED and math.isfinite(r.score)]
        return sorted(done, key=lambda r: self.ctx.objective.loss(r.score))

    def _finished(self) -> bool:
        if self.ctx.stop.is_set():
            return True
        started = len(self.results) + self.runner.pending()
        if self.max_candidates is not None and started >= self.max_candidates:
            return True
        return time.monotonic() >= self.search_deadline(self.completed())

    def _next(self) -> cands.Candidate | None:
        """The next candidate not seen yet: the portfolio's, then a round of neighbours of the
        best families; None when a round brings nothing new (or after 200 rounds)."""
        while True:
            queue = self._portfolio or self._round
            if not queue:
                if self._rounds >= 200:
                    return None
                self._rounds += 1
                self._round = [
                    child
                    for parent in self._parents()
                    for child in cands.neighbours(parent.candidate, self.ctx.problem_type, self.rng, 2)
                ]
                if not any(child.name not in self._seen for child in self._round):
                    self._round = []
                    return None
                continue
            candidate = queue.pop(0)
            if candidate.name not in self._seen:
                return candidate

    def _submit(self, candidate: cands.Candidate) -> None:
        """Hand ``candidate`` to the runner, unless it is too expensive for the time left."""
        self._seen.add(candidate.name)
        left = self.search_deadline(self.completed()) - time.monotonic()
        expected = self.costs.estimate(candidate, self.ctx.plan.folds)
        if expected is not None and expected > left:  # logged once, by _log_skipped
            self.results.append(
                Result(
                    candidate,
                    SKIPPED,
                    finished_at=self.ctx.elapsed(),
                    message=f"expected {expected:.1f} s with {max(left, 0):.1f} s left",
                )
            )
            return
        self.runner.submit(candidate, self.search_deadline(self.completed()), self._model_kept_loss())

    def _model_kept_loss(self) -> float:
        """The loss of the best candidate whose fold model is kept (inf when none is): only a
        candidate that beats it sends its model back."""
        kept = [self.ctx.objective.loss(r.score) for r in self.results if r.model is not None]
        return min(kept, default=math.inf)

    def _keep_one_model(self) -> None:
        """Only the best candidate with a fold model keeps it (they can be large)."""
        with_model = [r for r in self.completed() if r.model is not None]
        for result in with_model[1:]:
            result.model = None

    def _record(self, result: Result) -> None:
        self.results.append(result)
        self._keep_one_model()
        self.costs.record(result, self.ctx.plan.folds)
        if self.on_result is not None:
            self.on_result(result, len(self.results), max(self.ctx.hard_deadline - time.monotonic(), 0.0))

    def run(self, portfolio: Sequence[cands.Candidate]) -> list[Result]:
        self._portfolio = list(portfolio)
        stopping = False
        while True:
            while not stopping and self.runner.pending() < self.runner.slots:
                if self._finished():
                    stopping = True
                    break
                candidate = self._next()
                if candidate is None:
                    break
                self._submit(candidate)
            if self.runner.pending() == 0:
                self._log_skipped()
                return self.results
            result = self.runner.next_result()
            self._record(result)
            # A candidate stopped because its next fold would end past the deadline leaves the
            # rest of the search's time to cheaper candidates (``_finished`` ends the search
            # at the deadline or on a stop request; ``_submit`` skips what cannot end in time).

    def _log_skipped(self) -> None:
        """One line for every candidate skipped as too expensive for the time left (near the
        deadline of a loaded machine, one line each was ~170 lines): how many, of which
        families, and the tightest; each is in leaderboard.csv with status Skipped and why."""
        skipped = [r for r in self.results if r.status == SKIPPED]
        if not skipped:
            return
        families = Counter(r.candidate.family for r in skipped)
        log.info(
            "auto: skipped %d candidate(s) expected to need more than the time left for the search "
            "(%s; e.g. %s: %s); each is in leaderboard.csv with status %s",
            len(skipped),
            ", ".join(f"{family} {count}" for family, count in families.most_common()),
            skipped[0].name,
            skipped[0].message,
            SKIPPED,
        )

    def _parents(self) -> list[Result]:
        """The best result of each of the three best families (diversity for the blend)."""
        parents: list[Result] = []
        families: set[str] = set()
        for result in self.completed():
            if result.candidate.family in families or result.candidate.family == "knn":
                continue
            families.add(result.candidate.family)
            parents.append(result)
            if len(parents) == 3:
                break
        return parents
