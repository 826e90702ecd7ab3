"""The ``algorithm=auto`` fit step: explore, search, blend, refit, and write what a person reads.

:func:`run` takes the frames the training flow already read and checked, and returns the
estimator to save — a pipeline or a blend of pipelines that ``byoc.artifact`` saves and the
server serves like any other model — with the leaderboard and the held-out metrics.  Budget:
the whole job (reading included: ``started`` is the job's start) ends within
``max_runtime_seconds``; the search stops early enough to leave time for the final refit and the
report, which the cost model estimates from what the candidates cost.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from byoc import metrics, outofmemory
from byoc.artifact import REGRESSION, Feature
from byoc.automl import (
    blend,
    candidates,
    checkpoints,
    choice,
    explore,
    isolated,
    objective,
    report,
    search,
    stack,
)
from byoc.fit import FitInput, FitOutput

log = logging.getLogger(__name__)

REPORT_RESERVE = 0.08  # share of the budget the search leaves for the report and saving
MIN_RESERVE_SECONDS = 4.0
SAVE_RESERVE = 0.03  # share of the budget left, after the report, to evaluate, compile and save
MIN_SAVE_SECONDS = 1.5
PLOT_SECONDS = 3.0  # what the report's plots need at least (matplotlib's import included)
# compile the model for serving only with this share of the budget left (and past the deadline
# FitOutput.compile_deadline, members not yet converted stay scikit-learn's): with 0.1, a 120 s search
# on 10,000 rows ended with 10.2 s left and its blend was served uncompiled
COMPILE_SHARE = 0.05
MIN_COMPILE_SECONDS = 5.0
# the exploration's leakage check ends after this share of the budget: 2 s of explore() on
# 70,000 x 20 or 1,257 x 64 (a loaded 2-CPU machine) against 9 s of a 60 s budget
EXPLORE_SHARE = 0.15
IMPORTANCE_ROWS = 1000
IMPORTANCE_REPEATS = 3
FRESH_PROCESS_SECONDS = 120.0  # the job shell starts within this of the process (imports, under load)
STOP_SAVE_SHARE = 0.25  # after a stop signal, share of the grace period kept to evaluate and save
STOPPED = "the job was stopped (SIGTERM) and saves within its grace period"
GRACE_RAN_OUT = "the grace period after the stop signal ran out"
BUDGET_SLACK = 0.05  # share of the budget a refit may run past it when nothing else could be saved

# Scores candidates somewhere other than here: given the search's context, a runner to use
# for the search's duration (several hosts: byoc.automl.cluster.spread).
Spread = Callable[[search.Context], contextlib.AbstractContextManager[search.Runner]]


@dataclass(frozen=True)
class AutoSettings:
    """The hyperparameters of ``algorithm=auto``."""

    max_runtime_seconds: float = 300.0
    objective_metric: str | None = None
    max_candidates: int | None = None
    seed: int = 0
    n_jobs: int = -1
    stack: bool = True  # consider a stacked ensemble after the search (the benchmark turns it off to compare)


def _save_reserve(budget: float) -> float:
    """The seconds of the budget kept, after the report, to evaluate, compile and save."""
    return max(MIN_SAVE_SECONDS, SAVE_RESERVE * budget)


class StopRequest(threading.Event):
    """The soft stop (SIGTERM: StopTrainingJob, spot interruption) that remembers when it came.

    After it, what is left — refit, report, save — must end within ``grace`` seconds of it
    (the job shell's hard stop follows; SageMaker's SIGKILL after 120 s), whatever the budget
    still allows: :meth:`deadline` is when the report must be written, keeping
    ``STOP_SAVE_SHARE`` of the grace period (at least ``MIN_SAVE_SECONDS``) to evaluate and save.
    """

    def __init__(self, grace: float = math.inf) -> None:
        super().__init__()
        self.grace = grace
        self.at: float | None = None

    def set(self) -> None:
        if self.at is None:
            self.at = time.monotonic()
        super().set()

    def deadline(self) -> float:
        if self.at is None:
            return math.inf
        return self.at + self.grace - max(MIN_SAVE_SECONDS, STOP_SAVE_SHARE * self.grace)


@dataclass
class AutoResult:
    """What the flow saves and logs."""

    estimator: Any
    objective: objective.Objective
    held_out_metrics: dict[str, float]
    leaderboard: list[dict[str, Any]]
    details: dict[str, Any]
    results: list[search.Result] = field(repr=False, default_factory=list)


def _log_candidate(result: search.Result, number: int, left: float, started: float, name: str) -> None:
    elapsed = time.monotonic() - started
    where = f" on {result.host}" if result.host else ""
    if result.status == search.COMPLETED:
        log.info(
            "auto candidate %d: %s: %s=%.6f (±%.4f) in %.1f s%s; elapsed %.1f s, budget left %.1f s",
            number,
            result.name,
            name,
            result.score,
            result.std,
            result.fit_seconds,
            where,
            elapsed,
            left,
        )
    else:
        log.info(
            "auto candidate %d: %s: %s (%s)%s; elapsed %.1f s, budget left %.1f s",
            number,
            result.name,
            result.status.lower(),
            result.message,
            where,
            elapsed,
            left,
        )


def leaderboard_rows(
    results: Sequence[search.Result],
    goal: objective.Objective,
    weights: Mapping[str, float],
    problem_type: str,
) -> list[dict[str, Any]]:
    """Every candidate, best first; Autopilot's candidate fields where they map."""

    def order(r: search.Result) -> tuple[int, float]:
        return (0 if r.status == search.COMPLETED else 1, goal.loss(r.score))

    names = metrics.names(problem_type)
    rows = []
    for rank, result in enumerate(sorted(results, key=order), start=1):
        row: dict[str, Any] = {
            "rank": rank,
            "candidate_name": result.name,
            "candidate_status": result.status,
            "family": result.candidate.family,
            "preprocessing": (
                "each member's own"
                if result.candidate.family == stack.FAMILY
                else f"{result.candidate.encoding} categories"
            ),
            "hyperparameters": result.candidate.hyperparameters_json(),
            "objective_metric": goal.name,
            "objective_value": result.score if math.isfinite(result.score) else None,
            "objective_std": result.std if math.isfinite(result.std) else None,
        }
        for name in names:
            row[name] = result.metrics.get(name)
        row.update(
            fit_time_seconds=round(result.fit_seconds, 3),
            finished_at_seconds=round(result.finished_at, 3),
            ensemble_weight=round(weights.get(result.name, 0.0), 6),
            message=result.message,
            host=result.host,
        )
        rows.append(row)
    return rows


def _needed(
    result: search.Result, plan: search.Plan, costs: search.CostModel
) -> tuple[float, str, str] | None:
    """Seconds ``result``'s candidate needed for every fold ("about" or "at least"), and how
    that is known."""
    if result.status == search.STOPPED and result.folds_done:
        per_fold = result.fit_seconds / result.folds_done
        done = f"{result.folds_done} of {plan.folds} folds took {result.fit_seconds:.1f} s"
        return per_fold * plan.folds, "about", done
    if result.status == search.STOPPED and result.fit_seconds > 0:
        first = f"its first fold had not ended after {result.fit_seconds:.1f} s"
        return result.fit_seconds * plan.folds, "at least", first
    expected = costs.estimate(result.candidate, plan.folds)
    if expected is not None:
        return expected, "about", "estimated from the candidates scored before it"
    return None


def nothing_finished(
    results: Sequence[search.Result],
    *,
    budget: float,
    before_search: float,
    reserve: float,
    plan: search.Plan,
    costs: search.CostModel,
) -> Exception:
    """Why no candidate finished: failed candidates, named with their errors — the instance's
    memory when any of them ran out of it (exit 1, ``out_of_memory``), the data's fault when
    scikit-learn refused the data in every one of them (exit 1), else a fault of ours (exit 2)
    — or a budget too small for the data (the user's to fix: exit 1, naming max_runtime_seconds)."""
    from byoc.errors import DataError, HyperparameterError

    failed = [r for r in results if r.status == search.FAILED]
    if failed:
        named = "; ".join(f"{r.name}: {r.message[:160]}" for r in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        rest = len(results) - len(failed)
        tail = f"; {rest} other candidate(s) were stopped or skipped when the time ran out" if rest else ""
        memory = [r for r in failed if r.blame == search.MEMORY]
        if memory:  # the instance's size: neither the data nor the budget
            return outofmemory.error(
                f"scoring AutoML candidates (algorithm=auto): {len(memory)} of the {len(failed)} failed "
                f"candidate(s) ran out of memory ({named}{more}){tail}",
                note=f"raising max_runtime_seconds={budget:g} will not help; a restarted job scores "
                "these candidates again",
            )
        if all(r.blame == search.DATA for r in failed):
            return DataError(
                f"no AutoML candidate could be fitted to the training data: scikit-learn refused "
                f"it in each of the {len(failed)} failed candidate(s) ({named}{more}){tail}; fix the "
                "feature or target values these errors name in the train channel",
                code="data_not_fittable",
            )
        return RuntimeError(f"no AutoML candidate finished: {len(failed)} failed ({named}{more}){tail}")
    had = max(budget - before_search - reserve, 0.0)
    # measured ("about") costs first; a lower bound ("at least", a candidate killed during its
    # first fold) within the time the search had explains nothing (one killed at once: "0 s")
    known = [
        (n, r)
        for r in results
        if (n := _needed(r, plan, costs)) is not None and (n[1] == "about" or n[0] > had)
    ]
    if known:
        (seconds, bound, how), quickest = min(known, key=lambda item: (item[0][1] != "about", item[0][0]))
        why = (
            f"the quickest candidate, {quickest.name}, needed {bound} {seconds:.0f} s for the "
            f"{plan.folds} folds of {plan.description} ({how}), but the search had {had:.0f} s"
        )
        others = sorted(
            (r for r in results if r is not quickest and r.fit_seconds >= 0.5), key=lambda r: -r.fit_seconds
        )
        if seconds <= had and others:  # it fitted alone: the others took the time (one at a time)
            took = sum(r.fit_seconds for r in others)
            named = ", ".join(f"{r.name}: {r.fit_seconds:.0f} s, {r.status.lower()}" for r in others[:2])
            why += f", of which the other candidates took {took:.0f} s ({named})"
            seconds += took
    else:
        seconds = 0.0
        why = "the search had no time left to start a candidate"
    suggested = 10 * math.ceil((before_search + 1.5 * seconds + 2 * reserve) / 10 + 1)
    return HyperparameterError(
        f"no AutoML candidate finished within max_runtime_seconds={budget:g}: {why} "
        f"({before_search:.0f} s went to starting, reading and exploring the data (and to waiting for "
        f"the other hosts, if any), and {reserve:.0f} s "
        f"are kept for the final refit and the report). Raise max_runtime_seconds (to about "
        f"{max(suggested, budget + 10):g}) or train on a sample of the data",
        code="budget_too_small",
    )


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_text(path, buffer.getvalue())


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _refit(
    members: Sequence[tuple[search.Result, float]],
    X: pd.DataFrame,
    y: np.ndarray,
    ctx: search.Context,
    costs: search.CostModel,
    deadline: Callable[[bool], tuple[float, str]],
    *,
    fold_is_refit: bool = False,
) -> tuple[list[tuple[str, Any, float]], str, bool]:
    """Fit the chosen candidates on all rows, heaviest weight first, each in a child process
    killed when ``deadline(a member is fitted already)`` passes (a stop signal brings it
    forward); members expected to overrun it are left out once one is fitted.  Returns the
    fitted members, weights summing to 1, why a refit was cut ("" when none was) and whether a
    refit ran out of memory.  ``fold_is_refit``: the search's one split
    trained on exactly ``X`` (a validation channel), so a kept fold model is the refit already."""
    fitted: list[tuple[str, Any, float]] = []
    cut = ""
    out_of_memory = False
    for result, weight in sorted(members, key=lambda m: -m[1]):
        if fold_is_refit and result.model is not None:
            log.info(
                "auto: %s was fitted on the train channel while scored on validation: no refit", result.name
            )
            fitted.append((result.name, result.model, weight))
            continue
        expected = costs.refit(result.candidate, ctx.plan.folds)
        left = deadline(bool(fitted))[0] - time.monotonic()
        if fitted and (ctx.stop.is_set() or expected > left):
            log.info(
                "auto: leaving %s out of the blend: refitting it needs about %.1f s, %.1f s left",
                result.name,
                expected,
                max(left, 0.0),
            )
            continue
        log.info(
            "auto: refitting %s on %d rows (about %.1f s expected, %.1f s left for it)",
            result.name,
            len(X),
            expected,
            max(left, 0.0),
        )
        started = time.monotonic()
        refitted = isolated.refit(result.candidate, ctx, X, y, lambda: deadline(bool(fitted)))
        model = refitted.model
        if model is None:
            was = "ran" if refitted.out_of_memory else "was"
            cut = f"the refit of {result.name} on all {len(X)} rows {was} {refitted.why}"
            out_of_memory = out_of_memory or refitted.out_of_memory
            log.warning("auto: %s", cut)
            if time.monotonic() >= deadline(bool(fitted))[0]:
                break
            continue
        log.info("auto: refitted %s on %d rows in %.1f s", result.name, len(X), time.monotonic() - started)
        fitted.append((result.name, model, weight))
    total = sum(w for _, _, w in fitted)
    return [(name, model, w / total) for name, model, w in fitted], cut, out_of_memory


def _kept_fold_model(
    kept: search.Result | None, cut: str, stop: StopRequest, budget: float, out_of_memory: bool = False
) -> search.Result:
    """The candidate whose fold model is saved when no refit ended (in time, or within the
    instance's memory); with none kept (candidates restored from checkpoints keep none), the
    job cannot save a model: a refit that ran out of memory ends as out of memory (exit 1,
    ``out_of_memory``), a stop as stopped (exit 143), the budget's end as a budget too small (exit 1)."""
    if kept is not None and kept.model is not None:
        return kept
    from byoc.errors import HyperparameterError, JobStopped

    if out_of_memory:
        raise outofmemory.error(
            f"refitting the chosen model on all rows (algorithm=auto): {cut}",
            note=f"raising max_runtime_seconds={budget:g} will not help",
        )

    if stop.is_set():
        raise JobStopped(f"{cut}, and no model fitted during the cross-validation was kept to save instead")
    suggested = max(budget * 1.5, budget + 60)
    raise HyperparameterError(
        f"{cut} within max_runtime_seconds={budget:g}, and no model fitted during the cross-validation "
        f"was kept to save instead; raise max_runtime_seconds (to about {suggested:g}) or train on a "
        "sample of the data",
        code="budget_too_small",
    )


def _check_rows(y: np.ndarray, problem_type: str, labels: Sequence[Any], target: str) -> None:
    from byoc.errors import DataError

    why = search.too_few_rows(y, problem_type, labels)
    if why is None:
        return
    if problem_type == REGRESSION:
        need = f"which needs at least {search.MIN_REGRESSION_ROWS} rows; add rows"
    else:
        need = (
            f"stratified, which needs every class in every fold's training rows (at least "
            f"{search.MIN_CLASS_ROWS} rows per class); add rows of those classes or remove theirs"
        )
    raise DataError(
        f"{target} {why}: algorithm=auto scores its candidates by cross-validation on the train "
        f"channel, {need}, or pass a validation channel to score them on instead",
        code="too_few_rows",
    )


def _objective_undefined(
    y_held: np.ndarray, goal: objective.Objective, labels: Sequence[Any], where: str
) -> Exception | None:
    """A user error when ``goal`` cannot be computed on the held-out rows ``y_held`` whatever the
    predictions (:func:`byoc.metrics.undefined`: every candidate would score NaN, whatever the
    budget), else None.  ``where`` names those rows.  Failing before the search rather than
    ranking by another metric: the tuning job and the user read ``validation:<objective>``,
    which these rows cannot give, and any metric they can give (the positive class absent:
    accuracy) would choose a model that never predicts what it is for."""
    from byoc.errors import DataError

    why = metrics.undefined(goal.problem_type, y_held, labels).get(goal.key)
    if why is None:
        return None
    return DataError(
        f"objective_metric={goal.name} cannot be computed on {where}, where algorithm=auto scores its "
        f"candidates: it {why}. Give a validation channel with more rows of every kind, or choose "
        f"another objective_metric (one of {', '.join(objective.names(goal.problem_type))})",
        code="objective_undefined",
    )


def _stopped_choice(
    ranked: Sequence[search.Result], costs: search.CostModel, folds: int, deadline: float
) -> tuple[search.Result, str]:
    """After a stop signal, the one model to save (no blend, no stack), best first: a candidate
    whose refit is expected to end before ``deadline`` is refitted; one whose refit is not but
    that kept its fold model is saved as that model, unrefitted (it scored better than the
    next: its score is that of models fitted on the folds' rows); with neither, the one
    expected to refit quickest.  Returns it and, when it is not refitted, why ("" otherwise)."""
    left = deadline - time.monotonic()
    for result in ranked:
        needed = costs.refit(result.candidate, folds)
        if needed <= left:
            return result, ""
        if result.model is not None:
            why = f"not started after the stop signal: it needs about {needed:.1f} s and {max(left, 0):.1f} s were left"
            return result, why
    return min(ranked, key=lambda r: costs.refit(r.candidate, folds)), ""


def _refit_seconds(
    members: Sequence[tuple[search.Result, float]], costs: search.CostModel, folds: int, fold_is_refit: bool
) -> float:
    """The expected refit of ``members`` on all rows, as :func:`_refit` will run it (a member
    whose kept fold model is the refit already costs nothing)."""
    return sum(
        0.0 if fold_is_refit and r.model is not None else costs.refit(r.candidate, folds) for r, _ in members
    )


def _search_deadline(
    report_by: float,
    completed: Sequence[search.Result],
    costs: search.CostModel,
    folds: int,
    members: int,
) -> float:
    """When the search ends: ``report_by`` (the budget's end less the report's and the save's
    reserve) less the expected refit (:func:`_refit_seconds`) of the ``members`` best candidates
    (``completed`` best first), as many as the blend may refit (:func:`blend.refit_members`).
    Each is counted in full, even one whose kept fold model a validation channel would save
    refitting: which candidate keeps its model changes until the search ends."""
    refit = _refit_seconds([(r, 1.0) for r in completed[:members]], costs, folds, fold_is_refit=False)
    return report_by - refit


def _without_stack(
    fitted: Sequence[tuple[str, Any, float]],
    chosen: Sequence[tuple[search.Result, float]],
    problem_type: str,
    n_classes: int,
) -> tuple[Any, dict[str, float]]:
    """What is saved when a chosen stack cannot be completed from its refitted members
    (``fitted``, best first): the blend or candidate chosen without it (``chosen``) when every
    one of its members was refitted, else the best candidate alone."""
    models = {name: model for name, model, _ in fitted}
    if all(r.name in models for r, _ in chosen):
        members = [(r.name, models[r.name], w) for r, w in chosen]
        return blend.assemble(members, problem_type, n_classes), {r.name: w for r, w in chosen}
    return fitted[0][1], {fitted[0][0]: 1.0}


def _consider_stack(
    ranked: Sequence[search.Result],
    y_held: np.ndarray,
    ctx: search.Context,
    costs: search.CostModel,
    deadline: float,
    reserve: float,
    where: str,
) -> tuple[stack.Scored | None, str]:
    """:func:`stack.consider` within the time left before ``deadline`` (the final refit's) once
    ``reserve`` seconds (the refit of what is saved without a stack) are kept, and why no stack
    — that, or scikit-learn refusing to cross-validate its meta-model on the ``len(y_held)``
    held-out rows (``where``): a validation channel of a few rows has fewer rows than the
    meta-model's folds, or a fold whose training rows hold one class.  The stack is an option
    on top of candidates already scored: that fails no job."""
    try:
        return stack.consider(ranked, y_held, ctx, costs, deadline=deadline, reserve=reserve)
    except ValueError as exc:
        why = (
            f"its meta-model could not be cross-validated on the {len(y_held)} row(s) of {where} "
            f"({exc}); more rows there allow one"
        )
        log.warning("auto: no stacked ensemble: %s", why)
        return None, why


def _blend_pool(
    ranked: list[search.Result],
    portfolio: set[str],
    y_held: np.ndarray,
    plan: search.Plan,
    goal: objective.Objective,
    problem_type: str,
    n_classes: int,
    *,
    initial: int,
    deadline: float,
) -> tuple[list[search.Result], str]:
    """``ranked`` cut to the portfolio's candidates unless the whole search's blend beats theirs
    beyond the noise (:func:`choice.short_unless_long`), and that choice in words for the
    report ("" when there was none to make); logged either way."""
    pool = choice.short_unless_long(
        ranked, portfolio, y_held, plan, goal, problem_type, n_classes, initial=initial, deadline=deadline
    )
    if pool is None:
        return ranked, ""
    portfolio_count = sum(1 for r in ranked if r.name in portfolio)
    log.info(
        "auto: %s: the blend of all %d candidates scores %s=%.6f against %.6f for the blend of the "
        "portfolio's %d; noise of the difference %.6f",
        "the blend keeps to the portfolio's candidates"
        if pool.kept_short
        else "the blend draws on every candidate",
        len(ranked),
        goal.name,
        pool.long_score,
        pool.short_score,
        portfolio_count,
        pool.margin,
    )
    if pool.kept_short:
        why = f"the portfolio's {portfolio_count} candidates: the blend of all {len(ranked)} was not better beyond the noise"
    else:
        why = f"all {len(ranked)} candidates: their blend beat the portfolio's beyond the noise"
    return pool.ranked, (
        f"{why} ({goal.name} {pool.long_score:.6g} against {pool.short_score:.6g}, noise {pool.margin:.3g})"
    )


def _stack_beyond_noise(
    stacked: stack.Scored,
    chosen: Sequence[tuple[search.Result, float]],
    score: float,
    y_held: np.ndarray,
    plan: search.Plan,
    goal: objective.Objective,
    problem_type: str,
    n_classes: int,
) -> bool:
    """Does the stack beat the blend or candidate otherwise chosen (``chosen``, scoring ``score``)
    by more than the cross-validation noise (:mod:`.choice`)?  Logged either way."""
    simpler = choice.Option(
        "the blend" if len(chosen) > 1 else chosen[0][0].name, blend.held_out(chosen), score, 0
    )
    ensemble = choice.Option(stacked.result.name, np.asarray(stacked.result.oof), stacked.result.score, 1)
    options = [simpler, ensemble]
    losses = [
        choice.split_losses(o.predictions, y_held, plan, goal, problem_type, n_classes) for o in options
    ]
    picked, _, _ = choice.choose_by_losses(options, losses, plan, goal)
    # the chosen option's own margin is 0 when it is the best: log the noise of the difference
    margin = choice.ONE_STANDARD_ERROR * choice.noise(losses[0] - losses[1], plan)
    log.info(
        "auto: %s: the stack scores %s=%.6f against %.6f for %s; noise of the difference %.6f",
        "stacked ensemble chosen" if picked is ensemble else "no stacked ensemble",
        goal.name,
        ensemble.score,
        simpler.score,
        simpler.name,
        margin,
    )
    return picked is ensemble


def _importances(
    estimator: Any,
    X: pd.DataFrame,
    y: np.ndarray,
    problem_type: str,
    seed: int,
    deadline: isolated.Deadline,
) -> tuple[dict[str, float] | None, str]:
    """Permutation importance on up to ``IMPORTANCE_ROWS`` rows, when its cost — one scoring
    pass per feature and repeat, timed on the first — fits before ``deadline()``; else None and
    why.  It runs in a child process killed when ``deadline()`` passes: a stop signal during it
    brings that forward to the grace period's time, where scikit-learn's loop, run here, went
    on until the budget's and carried the job past its hard stop (no model saved)."""
    until, _ = deadline()
    if time.monotonic() >= until:
        why = "the time budget ran out before it"
        log.info("auto: permutation feature importance left out of the report: %s", why)
        return None, why
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import get_scorer

    rows = np.random.default_rng(seed).choice(len(X), size=min(len(X), IMPORTANCE_ROWS), replace=False)
    sample, target = X.iloc[rows], y[rows]
    scoring = "r2" if problem_type == REGRESSION else "balanced_accuracy"

    def work(report: Callable[..., None]) -> tuple[dict[str, float] | None, str]:
        """Timed where it runs: a forest predicts on one core in a forked (daemonic) child."""
        timed = time.monotonic()
        get_scorer(scoring)(estimator, sample, target)
        expected = (time.monotonic() - timed) * (X.shape[1] * IMPORTANCE_REPEATS + 1)
        left = until - time.monotonic()
        if expected > left:
            return (
                None,
                f"it needs about {expected:.1f} s and {max(left, 0.0):.1f} s of the budget were left for it",
            )
        result = permutation_importance(
            estimator, sample, target, scoring=scoring, n_repeats=IMPORTANCE_REPEATS, random_state=seed
        )
        return {str(c): float(v) for c, v in zip(X.columns, result.importances_mean, strict=True)}, ""

    ended = isolated.run(work, deadline)
    importances, why = ended.value if ended.finished else (None, "")
    if not ended.finished:
        why = (
            f"stopped after {ended.seconds:.1f} s: {ended.killed}"
            if ended.killed
            else isolated.lost("the process computing it", ended)
        )
    if why:
        log.info("auto: permutation feature importance left out of the report: %s", why)
    return importances, why


def run(
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    problem_type: str,
    features: Sequence[Feature],
    classes: Sequence[Any] | None,
    settings: AutoSettings,
    output_dir: Path,
    started: float,
    validation: tuple[pd.DataFrame, np.ndarray] | None = None,
    checkpoint_dir: Path | None = None,
    stop: StopRequest | None = None,
    host: str = "",
    spread: Spread | None = None,
    target: str = "the target",
    phase: Callable[[str], None] = lambda what: None,
) -> AutoResult:
    """Explore, search, blend, refit; write exploration.json, leaderboard.csv and report.html.

    ``spread`` scores the candidates elsewhere (several hosts: :mod:`byoc.automl.cluster`);
    by default they are scored here, one at a time, and logged as run on ``host``.  After
    ``stop`` is set, the rest ends by its deadline (the grace period) rather than the budget's.
    ``phase`` hears what the job is doing (for the stop and failure messages).
    """
    stop = stop or StopRequest()
    budget = float(settings.max_runtime_seconds)
    hard_deadline = started + budget
    goal = objective.resolve(settings.objective_metric, problem_type)
    n_classes = 0 if problem_type == REGRESSION else len(classes or [])
    log.info(
        "auto: objective %s (%s), budget %.0f s (%.1f s used before the search, %.1f wall seconds "
        "per CPU second)",
        goal.name,
        "maximise" if goal.maximise else "minimise",
        budget,
        time.monotonic() - started,
        slowdown(started),
    )
    if validation is None:  # cross-validation: refuse a target it cannot split (a fault of the data)
        _check_rows(y, problem_type, classes or [], target)
    if validation is not None:
        X_all = pd.concat([X, validation[0]], ignore_index=True)
        y_all = np.concatenate([y, validation[1]])
        plan = search.make_plan(y_all, problem_type, seed=settings.seed, n_train=len(X))
    else:
        X_all, y_all = X.reset_index(drop=True), np.asarray(y)
        plan = search.make_plan(y_all, problem_type, seed=settings.seed)
    log.info("auto: candidates are scored on %s", plan.description)
    held_out_rows = (
        "the validation channel" if validation is not None else "the train channel's rows held out"
    )
    undefined = _objective_undefined(y_all[plan.covered], goal, classes or [], held_out_rows)
    if undefined is not None:
        raise undefined
    ctx = search.Context(
        X_all,
        y_all,
        problem_type,
        features,
        n_classes,
        goal,
        plan,
        settings.seed,
        settings.n_jobs,
        started,
        hard_deadline,
        stop,
    )

    store = None
    if checkpoint_dir is not None:
        key = checkpoints.fingerprint(X_all, y_all, plan, goal.name, settings.seed, problem_type=problem_type)
        store = checkpoints.Checkpoints(checkpoint_dir, key)
    done = checkpoints.restore(store, (int(plan.covered.sum()),))
    save_reserve = _save_reserve(budget)
    reserve_report = max(MIN_RESERVE_SECONDS, REPORT_RESERVE * budget) + save_reserve
    finish = hard_deadline - save_reserve  # the report is written by then
    if hard_deadline - time.monotonic() <= reserve_report and not any(
        r.status == search.COMPLETED for r in done
    ):  # start-up (a busy machine) took the budget: say so now, not after exploring the data
        raise nothing_finished(
            done,
            budget=budget,
            before_search=time.monotonic() - started,
            reserve=reserve_report,
            plan=plan,
            costs=search.CostModel(),
        )
    log.info("auto: the report's plotting library loaded in %.1f s", report.load_plotting())
    exploration = explore.explore(
        X,
        y,
        problem_type,
        features,
        classes,
        seed=settings.seed,
        # a share of the budget (a wide table's leakage check took 39 s of a 15 s budget)
        deadline=min(time.monotonic() + EXPLORE_SHARE * budget, hard_deadline - reserve_report),
        stopped=stop.is_set,
    )
    _write_text(output_dir / "exploration.json", json.dumps(exploration, indent=2, default=str))

    def finish_by() -> float:
        """When the report must be written: the budget's time, or sooner after a stop signal."""
        return min(finish, stop.deadline())

    cross_validated = validation is None
    refits = blend.refit_members(int(plan.covered.sum()), cross_validated)

    def search_deadline(completed: list[search.Result]) -> float:
        return _search_deadline(hard_deadline - reserve_report, completed, finder.costs, plan.folds, refits)

    def on_result(result: search.Result, number: int, left: float) -> None:
        _log_candidate(result, number, left, started, goal.name)
        if store is not None:
            store.save(result)

    has_text = any(f.kind == "categorical" for f in features)
    portfolio = candidates.portfolio(problem_type, len(X), len(features), has_text)
    runners = spread(ctx) if spread is not None else contextlib.nullcontext(search.InProcess(ctx, host))
    if spread is not None:
        phase("waiting for every host's Dask worker to join (algorithm=auto)")
    with runners as runner:
        phase("searching candidates (algorithm=auto)")
        search_started = time.monotonic()  # on several hosts, once every host's worker has joined
        finder = search.Search(
            ctx,
            search_deadline=search_deadline,
            done=done,
            on_result=on_result,
            max_candidates=settings.max_candidates,
            runner=runner,
        )
        results = finder.run(portfolio)
    ranked = finder.completed()
    if not ranked and stop.is_set():
        from byoc.errors import JobStopped

        raise JobStopped(f"no AutoML candidate had finished ({len(results)} started)")
    unscored = [r for r in results if r.status == search.COMPLETED and not math.isfinite(r.score)]
    if not ranked and unscored:  # every fold's rows, or one of them, leave the objective undefined
        from byoc.errors import DataError

        raise DataError(
            f"objective_metric={goal.name} could not be computed on {held_out_rows} for any of the "
            f"{len(unscored)} candidate(s) that finished (NaN: e.g. a cross-validation fold whose "
            "held-out rows hold a single class or target value); add rows, give a validation channel, "
            f"or choose another objective_metric (one of {', '.join(objective.names(goal.problem_type))})",
            code="objective_undefined",
        )
    if not ranked:
        raise nothing_finished(
            results,
            budget=budget,
            before_search=search_started - started,
            reserve=reserve_report,
            plan=plan,
            costs=finder.costs,
        )

    y_held = y_all[plan.covered]
    # small data scored by cross-validation: a blend from the best few (a validation channel's
    # held-out rows stay as they were: the model scored on them is saved without a second fit)
    initial = blend.initial_members(len(y_held), cross_validated)
    fold_is_refit = validation is not None
    refit_deadline = finish_by() - PLOT_SECONDS
    # the selection keeps the time to refit the best candidate alone (what it saves when cut)
    best_refit = _refit_seconds([(ranked[0], 1.0)], finder.costs, plan.folds, fold_is_refit)
    n_completed, pool_choice = len(ranked), ""
    if initial > 1 and not stop.is_set():  # small data: the search's neighbours earn their place
        ranked, pool_choice = _blend_pool(
            ranked, {c.name for c in portfolio}, y_held, plan, goal, problem_type, n_classes,
            initial=initial, deadline=refit_deadline - best_refit,
        )  # fmt: skip
        best_refit = _refit_seconds([(ranked[0], 1.0)], finder.costs, plan.folds, fold_is_refit)
    best = ranked[0]
    weights, blend_score = blend.select(
        ranked, y_held, goal, problem_type, n_classes, initial=initial, deadline=refit_deadline - best_refit
    )
    left_out: dict[str, str] = {}
    if "incomplete" in exploration:
        left_out["Leakage check of the exploration"] = exploration["incomplete"]
    not_refitted = ""  # after a stop: why the model the cross-validation kept is saved unrefitted
    if stop.is_set():  # within the grace period: one refit, no blend or stack
        best, not_refitted = _stopped_choice(ranked, finder.costs, plan.folds, finish_by() - PLOT_SECONDS)
        weights, blend_score = {best.name: 1.0}, best.score
        left_out["Blend and stacked ensemble"] = f"not considered: {STOPPED}"
        log.warning(
            "auto: stopped by a stop signal after %d candidate(s); %.1f s of the %.0f s grace period "
            "left: %s only %s (about %.1f s to refit), no blend or stacked ensemble, no compiled inference",
            len(results),
            max(stop.deadline() - time.monotonic(), 0.0),
            stop.grace,
            "saving the model its cross-validation kept for" if not_refitted else "refitting",
            best.name,
            finder.costs.refit(best.candidate, plan.folds),
        )
    if len(weights) > 1 and (initial > 1 or goal.better(blend_score, best.score)):
        log.info(
            "auto: blend of %d candidates scores %s=%.6f against %.6f for the best alone%s",
            len(weights),
            goal.name,
            blend_score,
            best.score,
            f" (small data: started from the {initial} best, kept whatever its score)" if initial > 1 else "",
        )
        chosen = [(r, weights[r.name]) for r in ranked if r.name in weights]
    else:
        chosen, weights, blend_score = [(best, 1.0)], {best.name: 1.0}, best.score
    X_fit, y_fit = (X, np.asarray(y)) if validation is not None else (X_all, y_all)
    stacked = None
    if settings.stack and not stop.is_set():
        reserve = _refit_seconds(chosen, finder.costs, plan.folds, fold_is_refit)
        phase("scoring a stacked ensemble (algorithm=auto)")
        stacked, why_no_stack = _consider_stack(
            ranked, y_held, ctx, finder.costs, refit_deadline, reserve, held_out_rows
        )
        if why_no_stack:
            left_out["Stacked ensemble"] = why_no_stack
    by_name = {r.name: r for r in ranked}
    if stacked is not None:
        stacked.result.host = host  # the stack is fitted here, on the first host
        results = [*results, stacked.result]
        by_name[stacked.result.name] = stacked.result
    fallback = next((r for r in ranked if r.model is not None), None)
    phase("refitting the chosen model on all rows (algorithm=auto)")

    def refit_until(fitted_one: bool) -> tuple[float, str]:
        """Until when a refit may run: the report's time (minus its plots).  With nothing else
        to save — no model kept from the cross-validation, no member fitted yet — a refit may
        also take the plots' time and part of the budget's 10% slack (never the grace
        period's time to save)."""
        why = GRACE_RAN_OUT if stop.is_set() else isolated.BUDGET_RAN_OUT
        if fallback is None and not fitted_one:
            return min(finish + BUDGET_SLACK * budget, stop.deadline()), why
        return finish_by() - PLOT_SECONDS, why

    def refit(
        members: Sequence[tuple[search.Result, float]],
    ) -> tuple[list[tuple[str, Any, float]], str, bool]:
        return _refit(members, X_fit, y_fit, ctx, finder.costs, refit_until, fold_is_refit=fold_is_refit)

    out_of_memory = False

    if (
        stacked is not None
        and goal.better(stacked.result.score, best.score)
        and _stack_beyond_noise(stacked, chosen, blend_score, y_held, plan, goal, problem_type, n_classes)
    ):
        fitted, cut, out_of_memory = refit([(m, 1.0) for m in stacked.members])
        meta, why_no_meta = None, ""
        if len(fitted) == len(stacked.members):
            meta, why_no_meta = stack.fit_meta_until(
                stacked.members, y_held, problem_type, lambda: refit_until(True)
            )
        if meta is not None:
            estimator = stack.assemble([(n, m) for n, m, _ in fitted], meta, problem_type, n_classes)
            weights = {stacked.result.name: 1.0}
        elif fitted:  # out of time for a member or the meta-model: the best choice without a stack
            estimator, weights = _without_stack(fitted, chosen, problem_type, n_classes)
            if why_no_meta:
                left_out["Stacked ensemble"] = (
                    f"chosen, but {why_no_meta}; saved instead: {', '.join(weights)}"
                )
                log.warning("auto: no stacked ensemble: %s", left_out["Stacked ensemble"])
    elif not_refitted:
        fitted, cut, fallback = (
            [],
            f"the refit of {best.name} on all {len(X_fit)} rows was {not_refitted}",
            best,
        )
    else:
        fitted, cut, out_of_memory = refit(chosen)
        if fitted:
            weights = {name: w for name, _, w in fitted}
            estimator = blend.assemble(fitted, problem_type, n_classes)
    if cut:
        left_out["Refit on all rows"] = cut
    if not fitted:  # no refit ended in time: the best model the cross-validation kept, if any
        kept = _kept_fold_model(fallback, cut, stop, budget, out_of_memory)
        estimator, weights = kept.model, {kept.name: 1.0}
        rows_used = len(plan.splits[-1][0])
        saved = f"saved instead: {kept.name} as fitted during cross-validation, on {rows_used} of {len(X_all)} rows"
        ended = "no refit ended within the instance's memory" if out_of_memory else "no refit ended in time"
        log.warning("auto: %s; %s", cut if not_refitted else ended, saved)
        left_out["Refit on all rows"] = f"{cut}; {saved}"
        kept.message = f"{kept.message}; {saved}".lstrip("; ")

    held_out = blend.held_out([(by_name[name], weight) for name, weight in weights.items()])
    held_out_metrics = search.score_predictions(y_held, np.asarray(held_out), problem_type, n_classes)
    log.info(
        "auto: chose %s; held-out %s=%.6f",
        ", ".join(f"{n} ({w:.2f})" for n, w in weights.items()),
        goal.name,
        held_out_metrics.get(goal.key, float("nan")),
    )

    report_started = time.monotonic()
    phase("writing the leaderboard and the report (algorithm=auto)")
    rows = leaderboard_rows(results, goal, weights, problem_type)
    _write_csv(output_dir / "leaderboard.csv", rows)
    with threadpool_limits(limits=1, user_api="openmp"):  # as in the search
        importances, why_not = _importances(
            estimator,
            X_fit,
            y_fit,
            problem_type,
            settings.seed,
            lambda: (
                finish_by() - PLOT_SECONDS,
                GRACE_RAN_OUT if stop.is_set() else isolated.BUDGET_RAN_OUT,
            ),
        )
    if why_not:
        left_out["Permutation feature importance"] = why_not
    summary = {
        "problem type": problem_type,
        "objective": f"{goal.name} ({'higher' if goal.maximise else 'lower'} is better)",
        "held-out score of the chosen model": held_out_metrics.get(goal.key),
        "chosen model": ", ".join(f"{n} (weight {w:.2f})" for n, w in weights.items()),
        "evaluation": plan.description,
        "candidates": f"{n_completed} completed of {len(results)}",
        **({"blend drew on": pool_choice} if pool_choice else {}),
        "budget": f"{budget:.0f} s, {time.monotonic() - started:.1f} s used before the report",
    }
    if stop.is_set():
        summary["stopped"] = (
            f"by a stop signal (SIGTERM) after {len(results)} candidate(s); {STOPPED}: the best "
            "candidate that could be refitted in time was refitted alone"
        )
    if cut:
        summary["refit on all rows"] = left_out["Refit on all rows"]
    labels = [str(c) for c in classes] if classes is not None else []
    page = report.render(
        problem_type=problem_type,
        objective=goal,
        y=y_held,
        held_out=np.asarray(held_out),
        labels=labels,
        results=results,
        leaderboard=rows,
        exploration=exploration,
        importances=importances,
        summary=summary,
        deadline=finish_by(),
        left_out=left_out or None,
    )
    _write_text(output_dir / "report.html", page)
    details = {
        "automl": {
            "objective": goal.name,
            "evaluation": plan.description,
            "held_out_score": held_out_metrics.get(goal.key),
            "members": [{"name": n, "weight": round(w, 6)} for n, w in weights.items()],
            "stacked_members": [n for n, _ in estimator.members]
            if isinstance(estimator, stack.Stack)
            else [],
            "refit_cut": left_out.get("Refit on all rows"),
            "saved_from_cross_validation": not fitted,
            "candidates_completed": n_completed,
            "blend_pool": pool_choice or None,
            "candidates_total": len(results),
            "report_seconds": round(time.monotonic() - report_started, 3),
        }
    }
    return AutoResult(estimator, goal, held_out_metrics, rows, details, results)


def fit_step(inputs: FitInput) -> FitOutput:
    """``algorithm=auto`` as the training flow's fit step (see :mod:`byoc.fit`).

    A stop signal ends the search (the job shell sets ``progress.soft_stop``); the best model so
    far is then refitted and saved with the leaderboard and the report within the grace period
    (:attr:`~byoc.environment.TrainingEnvironment.stop_grace_seconds`).
    """
    from sklearn.pipeline import Pipeline

    from byoc import fit
    from byoc.automl import cluster

    params, env, progress = inputs.params, inputs.env, inputs.progress
    stop = StopRequest(env.stop_grace_seconds)
    progress.stop_grace = env.stop_grace_seconds
    progress.soft_stop = stop
    progress.phase = "searching candidates (algorithm=auto)"
    settings = AutoSettings(
        max_runtime_seconds=float(params["max_runtime_seconds"]),
        objective_metric=params.get("objective_metric"),
        max_candidates=params.get("max_candidates"),
        seed=int(params.get("random_state") or 0),
        n_jobs=int(params.get("n_jobs") or -1),
    )
    train = inputs.train
    validation = inputs.channels.get("validation")
    labels = None if inputs.n_classes is None else list(inputs.classes or range(inputs.n_classes))
    checkpoint_dir = env.paths.checkpoints_dir if env.paths.checkpoints_dir.is_dir() else None
    process = process_started()  # a train process's start; not a long-lived one's (tests in-process)
    job_started = process if 0 <= progress.started - process < FRESH_PROCESS_SECONDS else progress.started
    started = time.monotonic()
    outcome = run(
        train.X,
        train.y,
        problem_type=inputs.problem_type,
        features=inputs.features,
        classes=labels,
        settings=settings,
        output_dir=env.paths.output_data_dir,
        started=job_started,
        validation=None if validation is None else (validation.X, validation.y),
        checkpoint_dir=checkpoint_dir,
        stop=stop,
        host=env.current_host,
        spread=cluster.spread(env) if len(env.hosts) > 1 else None,
        target=f"the target {inputs.target}",
        phase=lambda what: setattr(progress, "phase", what),
    )
    fit_seconds = time.monotonic() - started
    estimator = outcome.estimator
    pipeline = (
        estimator
        if isinstance(estimator, Pipeline)
        else Pipeline([("preprocess", "passthrough"), ("model", estimator)])
    )
    progress.phase = "evaluating"
    with threadpool_limits(limits=1, user_api="openmp"):  # as in the search: spin-waiting threads
        scores = {
            name: fit.evaluate(inputs.problem_type, pipeline, data, inputs.n_classes)
            for name, data in inputs.channels.items()
        }
    if validation is None:  # the held-out estimate stands in for a validation channel
        scores["validation"] = outcome.held_out_metrics
    elif isinstance(estimator, stack.Stack):
        # the stack's meta-model was fitted on the validation rows' predictions: scoring it there
        # again is in-sample; its cross-validated score on those rows (what chose it) is not
        log.info(
            "auto: the stacked ensemble's meta-model was fitted on the validation channel: its "
            "validation metrics are its cross-validated score there (%s=%.6f), not its in-sample %.6f",
            outcome.objective.name,
            outcome.held_out_metrics.get(outcome.objective.key, float("nan")),
            scores["validation"].get(outcome.objective.key, float("nan")),
        )
        scores["validation"] = outcome.held_out_metrics
    details = dict(outcome.details)
    elapsed = time.monotonic() - job_started
    left = settings.max_runtime_seconds - elapsed
    compile_now = not stop.is_set() and left >= max(
        MIN_COMPILE_SECONDS, COMPILE_SHARE * settings.max_runtime_seconds
    )
    details["automl"]["elapsed_seconds"] = round(elapsed, 3)
    log.info(
        "auto: elapsed %.1f s of the %.0f s budget; %.1f s left to evaluate%s and save the model",
        elapsed,
        settings.max_runtime_seconds,
        max(left, 0.0),
        ", compile" if compile_now else "",
    )
    skipped = None if compile_now else f"only {max(left, 0.0):.1f} s of the time budget were left"
    if stop.is_set():
        details["automl"]["stopped_early"] = True
        skipped = STOPPED
        log.warning(
            "auto: stopped early by a stop signal; saving the best model found so far, %.1f s of the "
            "%.0f s grace period left",
            max((stop.at or 0.0) + stop.grace - time.monotonic(), 0.0),
            stop.grace,
        )
    return FitOutput(
        pipeline=pipeline,
        metrics=scores,
        details=details,
        fit_seconds=fit_seconds,
        compile_skipped=skipped,
        # a blend's or stack's members are compiled one by one; those left at this time are not
        compile_deadline=job_started
        + settings.max_runtime_seconds
        - _save_reserve(settings.max_runtime_seconds),
    )


def slowdown(started: float) -> float:
    """Wall seconds per CPU second of this process since ``started`` (its start), at least 1:
    about 1 on a quiet machine, several when other processes share its cores (start-up is
    CPU-bound imports and parsing); logged, so a budget eaten by start-up is explained.  Not
    used to scale the reserves: tried, it kept 10 s of a 30 s budget at 4.9 and ended a search
    before its first candidate finished.  A process that started before ``started`` (tests,
    benchmarks in-process) has spent more CPU than that and measures 1."""
    wall = time.monotonic() - started
    cpu = time.process_time()
    return max(1.0, wall / cpu) if cpu > 0 else 1.0


def process_started() -> float:
    """When this process started, on the monotonic clock: the budget covers the whole job,
    the interpreter's start and imports included (seconds on a busy machine).  Linux's
    /proc gives the start in clock ticks since boot; elsewhere it is now."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22, starttime
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic()
    return time.monotonic() - max(age, 0.0)
