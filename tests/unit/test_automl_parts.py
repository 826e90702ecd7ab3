"""algorithm=auto, piece by piece: objective names, evaluation plans, candidates, blending,
checkpoints and the report (the whole job runs through the real `train` in
tests/integration/test_automl.py)."""

from __future__ import annotations

import base64
import json
import multiprocessing
import os
import re
import shutil
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from byoc import artifact, preprocessing, scoring_code
from byoc.artifact import BINARY, MULTICLASS, REGRESSION
from byoc.automl import (
    blend,
    candidates,
    checkpoints,
    choice,
    explore,
    isolated,
    job,
    objective,
    report,
    search,
    stack,
)
from byoc.automl.choice import Option, choose, noise
from byoc.errors import DataError, HyperparameterError, JobStopped, ResourceError


def _data(name: str) -> tuple[pd.DataFrame, np.ndarray, str, list]:
    loader, problem_type = {
        "binary": (load_breast_cancer, BINARY),
        "multiclass": (load_iris, MULTICLASS),
        "regression": (load_diabetes, REGRESSION),
    }[name]
    bunch = loader(as_frame=True)
    X = bunch.data.iloc[:, :6].copy()
    if name != "regression":
        X["colour"] = np.where(bunch.target.to_numpy() % 2 == 0, "red", "blue")
        X.loc[X.index[::7], "colour"] = None
    features = preprocessing.feature_schema(X)
    return (
        preprocessing.coerce_features(X, features, where="test"),
        bunch.target.to_numpy(),
        problem_type,
        features,
    )


# -- objective --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("problem_type", "default", "key"),
    [(REGRESSION, "MSE", "mse"), (BINARY, "F1", "f1"), (MULTICLASS, "Accuracy", "accuracy")],
)
def test_each_problem_type_has_autopilots_default_objective(problem_type, default, key):
    goal = objective.resolve(None, problem_type)
    assert (goal.name, goal.key) == (default, key)


def test_objective_names_are_case_insensitive_and_directional():
    goal = objective.resolve("balancedaccuracy", BINARY)
    assert goal.name == "BalancedAccuracy" and goal.maximise
    assert objective.resolve("rmse", REGRESSION).maximise is False
    assert objective.resolve("F1MACRO", MULTICLASS).key == "f1_macro"


def test_an_objective_of_another_problem_type_names_the_choices():
    with pytest.raises(
        HyperparameterError, match=r"'objective_metric'='RMSE'.*binary_classification.*F1, Accuracy"
    ):
        objective.resolve("RMSE", BINARY)


# -- plans ------------------------------------------------------------------------------------
def test_small_data_is_scored_by_repeated_stratified_folds_covering_every_row():
    y = np.array([0, 1] * 100)
    plan = search.make_plan(y, BINARY, seed=0)
    assert plan.folds == 15 and plan.covered.all()
    for train, test in plan.splits:
        assert not set(train) & set(test)
        assert abs(y[test].mean() - 0.5) < 0.1


def test_a_rare_class_limits_the_folds():
    y = np.array([0] * 50 + [1] * 3)
    assert {len(test) for _, test in search.make_plan(y, BINARY, seed=0).splits} and (
        search.make_plan(y, BINARY, seed=0).folds == 9
    )


def test_the_validation_channel_is_the_held_out_split():
    plan = search.make_plan(np.arange(30.0), REGRESSION, seed=0, n_train=20)
    assert plan.folds == 1
    assert plan.covered.sum() == 10 and plan.covered[20:].all()


# -- candidates -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_every_portfolio_candidate_builds_a_pipeline_that_fits(kind):
    X, y, problem_type, features = _data(kind)
    portfolio = candidates.portfolio(problem_type, len(X), len(features), has_text=kind != "regression")
    assert len({c.name for c in portfolio}) == len(portfolio)
    families = {c.family for c in portfolio}
    assert {"linear", "gradient_boosting", "random_forest", "extra_trees"} <= families
    for candidate in portfolio:
        params = dict(candidate.params)
        if "n_estimators" in params:
            params["n_estimators"] = 5
        small = candidates.Candidate(candidate.family, candidate.encoding, params)
        model = candidates.build(small, problem_type, features, random_state=0, n_jobs=1).fit(X, y)
        assert len(model.predict(X.iloc[:3])) == 3


def test_neighbours_stay_in_the_family_and_move_its_hyperparameters():
    parent = candidates.Candidate("gradient_boosting", candidates.ORDINAL, {"learning_rate": 0.1})
    children = candidates.neighbours(parent, BINARY, np.random.default_rng(0), 5)
    assert all(c.family == parent.family and c.encoding == parent.encoding for c in children)
    rates = {c.params["learning_rate"] for c in children}
    assert len(rates) > 1 and all(0.01 <= r <= 0.3 for r in rates)


# -- evaluation, search and blend ---------------------------------------------------------------
def _context(kind: str, budget: float = 60.0) -> search.Context:
    X, y, problem_type, features = _data(kind)
    n_classes = 0 if problem_type == REGRESSION else int(y.max()) + 1
    goal = objective.resolve(None, problem_type)
    plan = search.make_plan(y, problem_type, seed=0)
    now = time.monotonic()
    return search.Context(
        X, y, problem_type, features, n_classes, goal, plan, 0, 1, now, now + budget, threading.Event()
    )


def test_a_candidates_score_is_the_objective_on_its_out_of_fold_predictions():
    ctx = _context("binary")
    result = search.evaluate(candidates.Candidate("linear", candidates.ONEHOT), ctx)
    assert result.status == search.COMPLETED
    assert result.oof.shape == (len(ctx.y), 2)
    expected = search.score_predictions(ctx.y, result.oof, BINARY, 2)["f1"]
    assert result.score == pytest.approx(expected) and 0.8 < result.score <= 1.0


def test_a_stop_request_ends_a_candidate_between_folds():
    ctx = _context("binary")
    ctx.stop.set()
    result = search.evaluate(candidates.Candidate("linear", candidates.ONEHOT), ctx)
    assert result.status == search.STOPPED and "asked to stop" in result.message


def test_a_candidate_in_its_own_process_agrees_with_one_scored_here():
    """The forked child's result is the in-process one (same folds, same predictions)."""
    ctx = _context("binary")
    candidate = candidates.Candidate("linear", candidates.ONEHOT)
    here = search.evaluate(candidate, ctx)
    there = isolated.evaluate(candidate, ctx, ctx.hard_deadline, kill_at=ctx.hard_deadline)
    assert there.status == search.COMPLETED and there.folds_done == ctx.plan.folds
    assert there.score == pytest.approx(here.score) and np.allclose(there.oof, here.oof)


def test_a_candidate_past_its_kill_time_is_stopped_and_its_process_ends():
    ctx = _context("multiclass")
    slow = candidates.Candidate("random_forest", candidates.ORDINAL, {"n_estimators": 5000})
    result = isolated.evaluate(slow, ctx, ctx.hard_deadline, kill_at=time.monotonic() + 0.5)
    assert result.status == search.STOPPED and "the time budget ran out" in result.message
    assert result.folds_done < ctx.plan.folds
    assert multiprocessing.active_children() == []


def test_a_stop_request_kills_a_candidate_in_its_own_process():
    ctx = _context("multiclass")
    threading.Timer(0.5, ctx.stop.set).start()
    slow = candidates.Candidate("random_forest", candidates.ORDINAL, {"n_estimators": 5000})
    result = isolated.evaluate(slow, ctx, ctx.hard_deadline, kill_at=ctx.hard_deadline)
    assert result.status == search.STOPPED and "asked to stop" in result.message
    assert multiprocessing.active_children() == []


def test_a_refit_in_its_own_process_predicts_as_one_fitted_here():
    """The refitted estimator comes back from the forked child (pickled by it) unchanged."""
    ctx = _context("multiclass")
    candidate = candidates.Candidate("gradient_boosting", candidates.ORDINAL, {"max_iter": 20})
    here = search.refit(candidate, ctx, ctx.X, ctx.y)
    refitted = isolated.refit(candidate, ctx, ctx.X, ctx.y, lambda: (ctx.hard_deadline, "never"))
    there = refitted.model
    assert refitted.why == "" and not refitted.out_of_memory and there is not here
    assert np.array_equal(there.predict_proba(ctx.X), here.predict_proba(ctx.X))


def test_a_refit_past_its_deadline_is_killed_and_says_why():
    ctx = _context("multiclass")
    slow = candidates.Candidate("random_forest", candidates.ORDINAL, {"n_estimators": 5000})
    kill_at = time.monotonic() + 0.5
    refitted = isolated.refit(slow, ctx, ctx.X, ctx.y, lambda: (kill_at, "the grace period ran out"))
    assert refitted.model is None and not refitted.out_of_memory
    assert re.fullmatch(r"stopped after [\d.]+ s: the grace period ran out", refitted.why), refitted.why
    assert multiprocessing.active_children() == []


def _no_memory(*args, **kwargs):
    raise MemoryError("Unable to allocate 9.3 GiB for an array")


def _killed_by_the_kernel(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("how", ["memory_error", "sigkill"])
def test_a_refit_that_runs_out_of_memory_says_so_with_the_memory_figure(monkeypatch, how):
    """A MemoryError in the refitting child, or the kernel's OOM killer's SIGKILL, is memory
    running out — not a "lost" process (MemoryError: its exit code 1) or a budget too small."""
    ctx = _context("multiclass")
    monkeypatch.setattr(search, "refit", _no_memory if how == "memory_error" else _killed_by_the_kernel)
    candidate = candidates.Candidate("linear", candidates.ONEHOT)
    refitted = isolated.refit(candidate, ctx, ctx.X, ctx.y, lambda: (ctx.hard_deadline, "never"))
    assert refitted.model is None and refitted.out_of_memory
    assert refitted.why.startswith("out of memory: the process refitting it "), refitted.why
    assert "this container has " in refitted.why and " GiB of memory (" in refitted.why
    if how == "memory_error":
        assert "raised MemoryError (Unable to allocate 9.3 GiB for an array)" in refitted.why
    else:
        assert "killed by the kernel (SIGKILL: out of memory?)" in refitted.why


@pytest.mark.parametrize("how", ["memory_error", "sigkill"])
def test_a_candidate_that_runs_out_of_memory_fails_naming_memory_and_the_search_goes_on(monkeypatch, how):
    """Memory running out is the instance's size, not the data (it was blamed on the data, as
    "not fittable"): the candidate's leaderboard message leads with it, with the memory figure."""
    ctx = _context("regression")
    real = search.fit_candidate

    def fit(candidate, *args, **kwargs):
        if candidate.family == "gradient_boosting":
            (_no_memory if how == "memory_error" else _killed_by_the_kernel)()
        return real(candidate, *args, **kwargs)

    monkeypatch.setattr(search, "fit_candidate", fit)
    heavy = candidates.Candidate("gradient_boosting", candidates.ORDINAL)
    fine = candidates.Candidate("linear", candidates.ONEHOT)
    finder = search.Search(ctx, search_deadline=lambda done: ctx.hard_deadline, max_candidates=2)
    results = finder.run([heavy, fine])
    assert [r.status for r in results] == [search.FAILED, search.COMPLETED]
    assert results[0].blame == search.MEMORY
    assert results[0].message.startswith("out of memory"), results[0].message
    assert "this container has " in results[0].message and "during fold 1 of " in results[0].message


class _SlowToSend:
    """A "model" whose pickling takes a minute: still on its way at the kill time."""

    def __reduce__(self):
        time.sleep(60)
        return (object, ())


def test_a_model_still_on_its_way_at_the_kill_time_costs_the_model_not_the_score(monkeypatch):
    ctx = _context("binary")
    candidate = candidates.Candidate("linear", candidates.ONEHOT)
    timed = time.monotonic()
    search.evaluate(candidate, ctx)
    scoring = time.monotonic() - timed
    real = search.evaluate

    def scored_with_a_slow_model(*args, **kwargs):
        result = real(*args, **kwargs)
        result.model = _SlowToSend()
        return result

    monkeypatch.setattr(search, "evaluate", scored_with_a_slow_model)  # the forked child runs it
    result = isolated.evaluate(candidate, ctx, ctx.hard_deadline, kill_at=time.monotonic() + 3 * scoring + 2)
    assert result.status == search.COMPLETED and 0.8 < result.score <= 1.0
    assert result.model is None and result.oof is not None
    assert multiprocessing.active_children() == []


def test_the_search_keeps_the_fold_model_of_its_best_candidate_only():
    """What is saved when no refit ends in time: the best candidate's model from its last fold
    (one only: they can be large), sent back from the child only when it is a new best."""
    ctx = _context("binary")
    weak = candidates.Candidate("knn", candidates.ONEHOT, {"n_neighbors": 1})
    strong = candidates.Candidate("linear", candidates.ONEHOT)
    finder = search.Search(ctx, search_deadline=lambda done: ctx.hard_deadline, max_candidates=2)
    results = finder.run([weak, strong])
    assert [r.status for r in results] == [search.COMPLETED, search.COMPLETED]
    best = finder.completed()[0]
    assert best.candidate == strong and best.model is not None
    assert [r.model is not None for r in results] == [False, True]
    last_train, _ = ctx.plan.splits[-1]
    fold_model = search.fit_candidate(strong, ctx, ctx.X.iloc[last_train], ctx.y[last_train])
    assert np.array_equal(best.model.predict(ctx.X), fold_model.predict(ctx.X))
    # a candidate worse than the kept one is not asked for its model
    worse = search.evaluate(weak, ctx, keep_model_below=finder._model_kept_loss())
    assert worse.status == search.COMPLETED and worse.model is None


def test_a_failing_candidate_is_recorded_and_the_search_goes_on():
    ctx = _context("regression")
    broken = candidates.Candidate("gradient_boosting", candidates.ORDINAL, {"learning_rate": -1.0})
    fine = candidates.Candidate("linear", candidates.ONEHOT)
    finder = search.Search(ctx, search_deadline=lambda done: ctx.hard_deadline, max_candidates=2)
    results = finder.run([broken, fine])
    assert [r.status for r in results] == [search.FAILED, search.COMPLETED]
    assert "learning_rate" in results[0].message
    # scikit-learn refusing a hyperparameter the search chose is not the data's fault
    assert results[0].blame == ""


def test_a_candidate_failing_on_data_scikit_learn_refuses_is_blamed_on_the_data():
    """The rule that makes a job whose every candidate failed exit 1 (user error) rather than 2:
    scikit-learn's input checks raised the error, not byoc's own code."""
    ctx = _context("multiclass")
    ctx.X = ctx.X.assign(**{ctx.X.columns[0]: np.where(np.arange(len(ctx.X)) % 5 == 0, np.inf, 1.0)})
    result = search.evaluate(candidates.Candidate("random_forest", candidates.ORDINAL), ctx)
    assert result.status == search.FAILED and "infinity" in result.message
    assert result.blame == search.DATA
    try:
        raise ValueError("a fault of ours")
    except ValueError as exc:
        assert search.blame(exc) == ""


def _failed(family: str, message: str, blame: str) -> search.Result:
    return search.Result(
        candidates.Candidate(family, candidates.ORDINAL), search.FAILED, message=message, blame=blame
    )


def test_every_candidate_refused_by_the_data_is_a_user_error_naming_their_errors():
    ctx = _context("multiclass")
    refused = [
        _failed("random_forest", "ValueError: Input X contains infinity", search.DATA),
        _failed("extra_trees", "ValueError: Input X contains infinity", search.DATA),
    ]
    costs, reserve = search.CostModel(), 5.0
    error = job.nothing_finished(
        refused, budget=60, before_search=1, reserve=reserve, plan=ctx.plan, costs=costs
    )
    assert isinstance(error, DataError) and error.code == "data_not_fittable"
    assert error.message.startswith("no AutoML candidate could be fitted to the training data: ")
    assert "random_forest-ordinal: ValueError: Input X contains infinity" in error.message
    # one failure of ours among them: a fault (exit 2), never blamed on the data
    ours = [*refused, _failed("linear", "TypeError: unexpected keyword", "")]
    error = job.nothing_finished(
        ours, budget=60, before_search=1, reserve=reserve, plan=ctx.plan, costs=costs
    )
    assert not isinstance(error, DataError) and "3 failed" in str(error)


def test_every_candidate_failing_with_one_out_of_memory_is_an_out_of_memory_error():
    """Not "data not fittable": the failure leads with memory, names the candidates, says what
    to change (and that more time will not help); exit 1 with the code out_of_memory."""
    ctx = _context("multiclass")
    failed = [
        _failed("random_forest", "out of memory (MemoryError); this container has 1.0 GiB", search.MEMORY),
        _failed("extra_trees", "ValueError: Input X contains infinity", search.DATA),
    ]
    error = job.nothing_finished(
        failed, budget=60, before_search=1, reserve=5.0, plan=ctx.plan, costs=search.CostModel()
    )
    assert isinstance(error, ResourceError) and error.code == "out_of_memory"
    message = str(error)
    assert message.startswith(
        "Out of memory while scoring AutoML candidates (algorithm=auto): 1 of the 2 failed candidate(s) "
        "ran out of memory (random_forest-ordinal: out of memory"
    ), message
    assert "not fittable" not in message and "this container has " in message
    assert "use an instance type with more memory" in message and "fewer rows or columns" in message
    assert "raising max_runtime_seconds=60 will not help" in message


def test_a_refit_out_of_memory_with_no_model_kept_is_an_out_of_memory_error():
    cut = "the refit of rf on all 10 rows ran out of memory: the process refitting it raised MemoryError"
    with pytest.raises(ResourceError) as raised:
        job._kept_fold_model(None, cut, job.StopRequest(), 60, out_of_memory=True)
    assert raised.value.code == "out_of_memory"
    assert str(raised.value).startswith(
        f"Out of memory while refitting the chosen model on all rows (algorithm=auto): {cut}"
    )
    assert "raising max_runtime_seconds=60 will not help" in str(raised.value)
    kept = search.Result(candidates.Candidate("linear", candidates.ONEHOT), search.COMPLETED, model=object())
    assert job._kept_fold_model(kept, cut, job.StopRequest(), 60, out_of_memory=True) is kept


def test_the_quickest_candidate_named_is_one_whose_cost_was_measured():
    # seen in a job: the second candidate started as the search's time ran out and was killed at once
    ctx = _context("binary")
    measured = search.Result(
        candidates.Candidate("gradient_boosting", candidates.ORDINAL),
        search.STOPPED,
        fit_seconds=2.3,
        folds_done=ctx.plan.folds - 2,
    )
    killed = search.Result(
        candidates.Candidate("linear", candidates.ONEHOT, {"C": 1.0}), search.STOPPED, fit_seconds=0.02
    )
    error = job.nothing_finished(
        [measured, killed], budget=15, before_search=7, reserve=6, plan=ctx.plan, costs=search.CostModel()
    )
    assert isinstance(error, HyperparameterError) and error.code == "budget_too_small"
    assert "the quickest candidate, gradient_boosting-ordinal, needed about" in error.message
    assert "at least 0 s" not in error.message and "linear" not in error.message


def test_a_quickest_candidate_that_fitted_the_search_alone_names_what_took_the_time():
    """50 classes of 3 rows, 30 s: gradient boosting took 17 s of the search's 19 s and was
    stopped; linear, needing 3 s, started after it.  "needed about 3 s, but the search had 19 s"
    left the reader without a cause, and the suggested budget (40 s) ignored the 17 s."""
    ctx = _context("binary")
    slow = search.Result(
        candidates.Candidate("gradient_boosting", candidates.ORDINAL),
        search.STOPPED,
        fit_seconds=17.4,
        folds_done=6,
        message="stopped after 6 of 9 folds: the time budget ran out",
    )
    quick = search.Result(
        candidates.Candidate("linear", candidates.ONEHOT, {"C": 1.0}),
        search.STOPPED,
        fit_seconds=0.7,
        folds_done=2,
    )
    error = job.nothing_finished(
        [slow, quick], budget=30, before_search=6, reserve=6, plan=ctx.plan, costs=search.CostModel()
    )
    assert "the quickest candidate, linear-onehot-C=1, needed about" in error.message
    assert (
        "but the search had 18 s, of which the other candidates took 17 s (gradient_boosting-ordinal: 17 s, stopped)"
        in error.message
    )
    suggested = float(re.search(r"to about (\d+)", error.message).group(1))
    assert suggested >= 6 + 17.4 + 2 * 6


def test_finished_candidates_that_all_scored_nan_are_named_as_the_objective_not_the_budget(
    tmp_path, monkeypatch
):
    X, y, problem_type, features = _data("regression")
    real = search.score_predictions

    def without_the_objective(*args, **kwargs):  # R2 left out, as metrics does when it is undefined
        return {k: v for k, v in real(*args, **kwargs).items() if k != "r2"}

    monkeypatch.setattr(search, "score_predictions", without_the_objective)  # the forked children too
    settings = job.AutoSettings(max_runtime_seconds=60, objective_metric="R2", max_candidates=2)
    problem = {"problem_type": problem_type, "features": features, "classes": None}
    with pytest.raises(DataError) as raised:
        job.run(X, y, **problem, settings=settings, output_dir=tmp_path, started=time.monotonic())
    assert raised.value.code == "objective_undefined"
    assert raised.value.message.startswith(
        "objective_metric=R2 could not be computed on the train channel's rows held out for any of the 2 "
        "candidate(s) that finished"
    ), raised.value.message


@pytest.mark.parametrize(
    ("y", "problem_type", "expected"),
    [
        (np.array([0] * 30 + [1]), BINARY, "has 1 class(es) with fewer than 2 rows ('b': 1 row)"),
        (np.array([0, 1, 2] * 10), MULTICLASS, None),
        (np.arange(4.0), REGRESSION, "has 4 rows"),
        (np.arange(5.0), REGRESSION, None),
    ],
)
def test_targets_cross_validation_cannot_split_are_named(y, problem_type, expected):
    labels = ["a", "b", "c"][: int(y.max()) + 1] if problem_type != REGRESSION else []
    assert search.too_few_rows(y, problem_type, labels) == expected


def test_greedy_selection_never_scores_below_its_best_member():
    ctx = _context("multiclass")
    results = [
        search.evaluate(candidates.Candidate(f, e, p), ctx)
        for f, e, p in [
            ("linear", candidates.ONEHOT, {"C": 0.01}),
            ("knn", candidates.ONEHOT, {"n_neighbors": 15}),
            ("random_forest", candidates.ORDINAL, {"n_estimators": 20}),
        ]
    ]
    ranked = sorted(results, key=lambda r: ctx.objective.loss(r.score))
    weights, score = blend.select(ranked, ctx.y, ctx.objective, MULTICLASS, 3)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert score >= ranked[0].score


def test_on_small_data_selection_starts_from_the_best_candidates_equally_weighted():
    """Sorted initialisation: every one of the ``initial`` best is a member, even one that adds
    nothing on the held-out rows; without it a candidate that adds nothing is left out."""
    y = np.array([0, 1] * 20)
    exact = np.column_stack([1.0 - y, y]).astype(float)
    flat = np.full((len(y), 2), 0.5)
    ranked = [
        search.Result(candidates.Candidate(f"m{i}", candidates.ONEHOT), search.COMPLETED, 1.0, oof=oof)
        for i, oof in enumerate([exact, exact, flat, flat])
    ]
    goal = objective.resolve("Accuracy", BINARY)
    weights, score = blend.select(ranked, y, goal, BINARY, 2, initial=3)
    assert set(weights) == {"m0-onehot", "m1-onehot", "m2-onehot"} and score == 1.0
    assert weights["m2-onehot"] == pytest.approx(1 / 3)
    assert list(blend.select(ranked, y, goal, BINARY, 2)[0]) == ["m0-onehot"]
    assert blend.initial_members(search.SMALL_ROWS) == blend.SORTED_INIT
    assert blend.initial_members(search.SMALL_ROWS + 1) == 1


@pytest.mark.parametrize(
    ("rows", "cross_validated", "refitted"),
    [
        (search.SMALL_ROWS, True, blend.SORTED_INIT),  # small data: the blend starts from 5
        (search.SMALL_ROWS + 1, True, blend.GROWN_MEMBERS),
        (search.SMALL_ROWS, False, blend.GROWN_MEMBERS),  # a validation channel: from the best alone
    ],
)
def test_the_search_keeps_the_time_to_refit_every_candidate_the_blend_starts_from(
    rows, cross_validated, refitted
):
    """The search's reserve for the final refit and the blend's start come from one rule: on
    small data the blend refits its 5 best candidates, and the search kept the time of only 3."""
    made = [
        candidates.Candidate("random_forest", candidates.ORDINAL, {"n_estimators": 100 * (i + 1)})
        for i in range(7)
    ]
    completed = [
        search.Result(c, search.COMPLETED, 0.9 - 0.01 * i, fit_seconds=5.0) for i, c in enumerate(made)
    ]
    costs = search.CostModel()
    for result in completed:
        costs.record(result, 5)
    members = blend.refit_members(rows, cross_validated)
    assert members == refitted and members >= blend.initial_members(rows, cross_validated)
    reserve = 1000.0 - job._search_deadline(1000.0, completed, costs, 5, members)
    assert reserve == pytest.approx(sum(costs.refit(r.candidate, 5) for r in completed[:refitted]))
    assert reserve < sum(costs.refit(r.candidate, 5) for r in completed[: refitted + 1])


def test_the_search_deadline_keeps_the_refit_time_the_final_refit_counts():
    """One rule for what a refit costs: the search keeps, to the bit, what :func:`_refit_seconds`
    counts for its best candidates (as the search always has: each in full, a kept fold model too)."""
    made = [
        candidates.Candidate("extra_trees", candidates.ORDINAL, {"n_estimators": 50 * (i + 1)})
        for i in range(4)
    ]
    completed = [
        search.Result(c, search.COMPLETED, 0.9 - 0.01 * i, fit_seconds=1.7 + i) for i, c in enumerate(made)
    ]
    costs = search.CostModel()
    for result in completed:
        costs.record(result, 3)
    completed[0].model = object()  # the best keeps its fold model: still counted in full
    for members in (1, 3, 5):
        full = sum(costs.refit(r.candidate, 3) for r in completed[:members])
        expected = job._refit_seconds([(r, 1.0) for r in completed[:members]], costs, 3, False)
        assert full == expected > 0
        assert job._search_deadline(123.4, completed, costs, 3, members) == 123.4 - full


def test_blend_selection_past_its_deadline_keeps_what_its_first_round_chose():
    """The selection's time belongs to the final refit after its deadline: it stops adding
    members (each round's blend is a valid one) rather than eat the refit's time."""
    y = np.array([0, 1] * 20)
    right = np.column_stack([1.0 - y, y]).astype(float)
    unsure = np.column_stack([0.4 + 0.2 * y, 0.6 - 0.2 * y])  # 0.4 on the true class: wrong
    half = np.arange(len(y)) < len(y) // 2
    ranked = [
        search.Result(candidates.Candidate(f"m{i}", candidates.ONEHOT), search.COMPLETED, 0.5, oof=oof)
        for i, oof in enumerate(
            [np.where(half[:, None], right, unsure), np.where(half[:, None], unsure, right)]
        )
    ]
    goal = objective.resolve("Accuracy", BINARY)
    assert blend.select(ranked, y, goal, BINARY, 2) == ({"m0-onehot": 0.5, "m1-onehot": 0.5}, 1.0)
    cut = blend.select(ranked, y, goal, BINARY, 2, deadline=time.monotonic() - 1.0)
    assert cut == ({"m0-onehot": 1.0}, 0.5)


def _option(name: str, predictions: np.ndarray, y: np.ndarray, complexity: int) -> Option:
    score = float(np.sqrt(np.mean((predictions - y) ** 2)))
    return Option(name, predictions, score, complexity)


def test_the_choice_is_the_simplest_option_within_the_noise_of_the_best():
    """A simpler option a hair behind the best (well within the fold-to-fold noise) is chosen;
    one behind by far more than the noise is not, however simple."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    plan = search.make_plan(y, REGRESSION, seed=0)
    goal = objective.resolve("RMSE", REGRESSION)
    noisy = y + rng.normal(scale=1.0, size=300)
    close = noisy + rng.normal(scale=0.05, size=300)  # the best's near twin
    far = y + rng.normal(scale=2.0, size=300)  # clearly worse
    best, twin = (noisy, close) if np.std(noisy - y) < np.std(close - y) else (close, noisy)
    options = [_option("complex", best, y, 2), _option("simple", twin, y, 1), _option("simplest", far, y, 0)]
    chosen, top, margin = choose(options, y, plan, goal, REGRESSION, 0)
    assert top.name == "complex" and chosen.name == "simple"
    assert 0 < options[0].score < options[1].score <= options[0].score + margin


def test_an_ensemble_clearly_better_than_every_single_model_is_chosen():
    rng = np.random.default_rng(1)
    y = rng.normal(size=300)
    a, b = y + rng.normal(size=300), y + rng.normal(size=300)
    options = [_option("a", a, y, 0), _option("b", b, y, 0), _option("blend", (a + b) / 2, y, 1)]
    plan = search.make_plan(y, REGRESSION, seed=0)
    chosen, _, _ = choose(options, y, plan, objective.resolve("RMSE", REGRESSION), REGRESSION, 0)
    assert chosen.name == "blend"


def test_the_log_of_a_chosen_stack_gives_the_noise_of_its_difference(caplog):
    rng = np.random.default_rng(0)
    y = rng.normal(size=600)
    plan = search.make_plan(y, REGRESSION, seed=0)
    goal = objective.resolve("MSE", REGRESSION)
    simple, stacked = y + rng.normal(scale=1.0, size=600), y + rng.normal(scale=0.7, size=600)

    def result(name: str, oof: np.ndarray) -> search.Result:
        return search.Result(
            candidates.Candidate(name, candidates.ORDINAL),
            search.COMPLETED,
            score=float(np.mean((oof - y) ** 2)),
            oof=oof,
        )

    best = result("linear", simple)
    scored = stack.Scored(result(stack.FAMILY, stacked), [best])
    caplog.set_level("INFO")
    assert job._stack_beyond_noise(scored, [(best, 1.0)], best.score, y, plan, goal, REGRESSION, 0)
    losses = [choice.split_losses(p, y, plan, goal, REGRESSION, 0) for p in (simple, stacked)]
    expected = choice.noise(losses[0] - losses[1], plan)
    assert expected > 0 and f"noise of the difference {expected:.6f}" in caplog.text


def test_the_stack_choice_computes_each_options_split_losses_once(monkeypatch, caplog):
    """The losses that choose the stack are those its log line's noise comes from: two options,
    two computations (it computed them twice), and the same choice as :func:`choice.choose`."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=400)
    plan = search.make_plan(y, BINARY, seed=0)
    goal = objective.resolve("AUC", BINARY)

    def result(name: str, noise_scale: float) -> search.Result:
        p = np.clip(y + rng.normal(scale=noise_scale, size=len(y)), 0.01, 0.99)
        oof = np.column_stack([1 - p, p])
        score = search.score_predictions(y, oof, BINARY, 2)["auc"]
        return search.Result(candidates.Candidate(name, candidates.ORDINAL), search.COMPLETED, score, oof=oof)

    a, b, stacked = result("a", 0.6), result("b", 0.7), result(stack.FAMILY, 0.5)
    chosen = [(a, 0.6), (b, 0.4)]
    blend_oof = 0.6 * a.oof + 0.4 * b.oof
    blend_score = search.score_predictions(y, blend_oof, BINARY, 2)["auc"]
    calls = []
    counted = choice.split_losses
    monkeypatch.setattr(choice, "split_losses", lambda *args: calls.append(1) or counted(*args))
    caplog.set_level("INFO")
    picked = job._stack_beyond_noise(
        stack.Scored(stacked, [a, b]), chosen, blend_score, y, plan, goal, BINARY, 2
    )
    assert len(calls) == 2
    options = [
        Option("the blend", blend_oof, blend_score, 0),
        Option(stacked.name, stacked.oof, stacked.score, 1),
    ]
    expected, _, _ = choose(options, y, plan, goal, BINARY, 2)
    assert picked == (expected.name == stacked.name)
    assert "noise of the difference" in caplog.text


def test_the_held_out_predictions_of_a_blend_are_its_weighted_members_summed_in_order():
    """One rule for the held-out predictions of what is saved: what the stack is compared with
    and what the held-out metrics and the report come from (two copies of it before)."""
    rng = np.random.default_rng(5)
    made = [
        search.Result(candidates.Candidate(f"m{i}", candidates.ORDINAL), search.COMPLETED, 0.5, oof=oof)
        for i, oof in enumerate(rng.dirichlet(np.ones(3), size=(3, 40)))
    ]
    weights = [0.5, 0.3, 0.2]
    held_out = blend.held_out(list(zip(made, weights, strict=True)))
    expected = 0.0 + 0.5 * made[0].oof + 0.3 * made[1].oof + 0.2 * made[2].oof
    assert held_out.dtype == float and held_out.tobytes() == expected.tobytes()
    assert blend.held_out([(made[1], 1.0)]).tobytes() == made[1].oof.tobytes()


def test_one_held_out_split_has_no_noise_estimate_so_the_best_score_wins():
    y = np.arange(20.0)
    plan = search.make_plan(y, REGRESSION, seed=0, n_train=10)
    held = y[10:]
    options = [
        _option("simple", held + 1.0, held, 0),
        _option("complex", held + 0.9, held, 1),
        _option("tie", held + 0.9, held, 2),
    ]
    goal = objective.resolve("RMSE", REGRESSION)
    chosen, _, margin = choose(options, held, plan, goal, REGRESSION, 0)
    assert (chosen.name, margin) == ("complex", 0.0)


def test_the_noise_is_the_standard_error_corrected_for_overlapping_training_sets():
    """Nadeau and Bengio: var x (1/J + test/train); 5-fold x 3 on 100 rows: 1/15 + 20/80."""
    plan = search.make_plan(np.arange(100.0), REGRESSION, seed=0)
    differences = np.array([1.0, -1.0] * 7 + [0.0])
    expected = np.sqrt((1 / 15 + 20 / 80) * np.var(differences, ddof=1))
    assert noise(differences, plan) == pytest.approx(expected)
    assert noise(np.array([0.3, np.nan]), plan) == 0.0


def test_a_blend_predicts_the_weighted_mean_of_its_members():
    X, y, problem_type, features = _data("binary")
    a = candidates.build(
        candidates.Candidate("linear", candidates.ONEHOT), problem_type, features, random_state=0, n_jobs=1
    ).fit(X, y)
    b = candidates.build(
        candidates.Candidate("knn", candidates.ONEHOT), problem_type, features, random_state=0, n_jobs=1
    ).fit(X, y)
    model = blend.assemble([("a", a, 0.25), ("b", b, 0.75)], BINARY, 2)
    expected = 0.25 * a.predict_proba(X) + 0.75 * b.predict_proba(X)
    np.testing.assert_allclose(model.predict_proba(X), expected)
    np.testing.assert_array_equal(model.predict(X), expected.argmax(axis=1))
    assert blend.assemble([("a", a, 1.0)], BINARY, 2) is a


@pytest.mark.parametrize("kind", ["multiclass", "regression"])
def test_a_stacks_score_is_its_meta_models_cross_validated_predictions_on_out_of_fold_rows(kind):
    ctx = _context(kind)
    family_params = [
        ("linear", candidates.ONEHOT, {}),
        ("random_forest", candidates.ORDINAL, {"n_estimators": 20}),
    ]
    results = [search.evaluate(candidates.Candidate(f, e, p), ctx) for f, e, p in family_params]
    scored = stack.evaluate(
        results, ctx.y, ctx.objective, ctx.problem_type, ctx.n_classes, seed=0, finished_at=1.0
    )
    row = scored.result
    assert row.candidate.family == stack.FAMILY and row.status == search.COMPLETED
    assert row.oof.shape == results[0].oof.shape
    expected = search.score_predictions(ctx.y, row.oof, ctx.problem_type, ctx.n_classes)[ctx.objective.key]
    assert row.score == pytest.approx(expected)
    assert all(r.name in row.message for r in results)
    # the meta-model's predictions on rows it was fitted on would be better than its CV estimate:
    meta = stack.fit_meta(results, ctx.y, ctx.problem_type)
    Z = stack.meta_features([r.oof for r in results], ctx.problem_type == REGRESSION)
    fitted = meta.predict(Z) if kind == "regression" else meta.predict_proba(Z)
    assert not np.allclose(fitted, row.oof)
    if kind == "regression":  # Breiman's stacked regression: no negative weight
        assert (meta.coef_ >= 0).all()


def _anti_correlated(y: np.ndarray, members: int, seed: int = 0) -> list[search.Result]:
    """Members whose out-of-fold probabilities favour the wrong class on every row (what
    candidates gave on 5 to 12 alternating labels: each held-out row's neighbours hold the other)."""
    rng = np.random.default_rng(seed)
    made = []
    for i in range(members):
        wrong = np.clip(1 - y + rng.normal(0, 0.1, len(y)), 0.05, 0.95)  # P(class 1), high when y is 0
        oof = np.column_stack([1 - wrong, wrong])
        score = search.score_predictions(y, oof, BINARY, 2)["f1"]
        made.append(
            search.Result(candidates.Candidate(f"m{i}", candidates.ORDINAL), search.COMPLETED, score, oof=oof)
        )
    return made


def test_the_stacks_leaderboard_row_gives_no_spread_it_did_not_measure():
    """The stack is scored once on every out-of-fold row, not fold by fold: its objective_std
    was written 0.0 (in leaderboard.csv and the report), a spread of nothing that reads as a
    perfectly stable score; it is left empty, as for a candidate without one."""
    y = np.arange(200) % 2
    goal = objective.resolve("F1", BINARY)
    scored = stack.evaluate(_anti_correlated(y, 2), y, goal, BINARY, 2, seed=0, finished_at=1.0)
    [row] = job.leaderboard_rows([scored.result], goal, {}, BINARY)
    assert row["objective_value"] == pytest.approx(scored.result.score)
    assert row["objective_std"] is None


def test_a_stack_cannot_invert_members_whose_out_of_fold_predictions_are_anti_correlated():
    """An unconstrained logistic meta-model learnt a negative weight on such members, scored
    F1=1.0 by cross-validation on their out-of-fold rows, and the saved stack — members refitted
    on every row, right on them, then inverted — got every training row wrong.  With
    non-negative weights it can only drop them: its score stays that of a constant."""
    y = np.arange(200) % 2
    members = _anti_correlated(y, 3)
    goal = objective.resolve("F1", BINARY)
    scored = stack.evaluate(members, y, goal, BINARY, 2, seed=0, finished_at=1.0)
    assert scored.result.score < 0.7  # F1 of predicting the positive class for every row: 0.667
    meta = stack.fit_meta(members, y, BINARY)
    assert (meta.coef_ >= 0).all()
    # refitted members that are right on their training rows stay right through the meta-model
    right = [np.column_stack([1.0 - (0.1 + 0.8 * y), 0.1 + 0.8 * y]) for _ in members]
    fitted = meta.predict(stack.meta_features(right, False))
    assert (fitted == y).mean() >= 0.5


@pytest.mark.parametrize("problem_type", [BINARY, MULTICLASS])
def test_the_non_negative_meta_model_weighs_informative_members_like_logistic_regression(problem_type):
    """Where members agree with the target, the constraint costs nothing: the meta-model's
    weights are positive and its accuracy is logistic regression's."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    n_classes = 2 if problem_type == BINARY else 3
    y = rng.integers(0, n_classes, 300)
    predictions = [
        rng.dirichlet(np.ones(n_classes), 300) * 0.5 + np.eye(n_classes)[y] * share for share in (0.5, 0.3)
    ]
    predictions = [p / p.sum(axis=1, keepdims=True) for p in predictions]
    Z = stack.meta_features(predictions, False)
    meta = stack.meta_model(problem_type, n_classes).fit(Z, y)
    reference = LogisticRegression(max_iter=1000).fit(Z, y)
    assert (meta.coef_ >= 0).all() and meta.coef_.sum() > 0
    assert meta.predict_proba(Z).shape == (300, n_classes)
    np.testing.assert_allclose(meta.predict_proba(Z).sum(axis=1), 1.0)
    assert (meta.predict(Z) == y).mean() >= (reference.predict(Z) == y).mean() - 0.02


@pytest.mark.parametrize(
    ("y", "problem_type", "members"),
    [
        (np.arange(12) % 2, BINARY, -1),  # 6 rows of the smallest class: no stack
        (np.r_[np.zeros(200), np.ones(35)].astype(int), BINARY, 2),  # 35: 2 members, 3 parameters
        (np.r_[np.zeros(200), np.ones(60)].astype(int), BINARY, 5),
        (np.arange(45.0), REGRESSION, 3),
        (np.arange(1000.0), REGRESSION, stack.MAX_MEMBERS),
    ],
)
def test_a_stack_weighs_only_as_many_members_as_ten_rows_per_weight_support(y, problem_type, members):
    assert stack.supported_members(y, problem_type) == members


def test_a_stack_on_too_few_held_out_rows_is_not_considered_and_says_why(caplog):
    """Five alternating rows: the stack of an unconstrained meta-model was chosen there with
    F1=1.0 and got every training row wrong.  Two rows of the smallest class support no meta-model."""
    y = np.array([0, 1, 0, 1, 0])
    ctx = _context("binary")
    caplog.set_level("INFO")
    scored, why = stack.consider(
        _anti_correlated(y, 3), y, ctx, search.CostModel(), deadline=time.monotonic() + 600
    )
    assert scored is None
    assert why == (
        "not considered: the held-out rows are too few for a meta-model (2 rows of its smallest "
        "class; weighing 2 members needs 30: 10 per weight and per intercept)"
    )
    assert f"no stacked ensemble: {why}" in caplog.text


def test_a_stacked_model_feeds_its_members_predictions_through_the_same_rule_as_its_score():
    X, y, problem_type, features = _data("multiclass")
    ctx = _context("multiclass")
    pool = [
        search.evaluate(candidates.Candidate("linear", candidates.ONEHOT), ctx),
        search.evaluate(candidates.Candidate("knn", candidates.ONEHOT), ctx),
    ]
    fitted = [
        (r.name, candidates.build(r.candidate, problem_type, features, random_state=0, n_jobs=1).fit(X, y))
        for r in pool
    ]
    meta = stack.fit_meta(pool, ctx.y, problem_type)
    model = stack.assemble(fitted, meta, problem_type, 3)
    Z = stack.meta_features([m.predict_proba(X) for _, m in fitted], False)
    np.testing.assert_allclose(model.predict_proba(X), meta.predict_proba(Z))
    np.testing.assert_array_equal(model.predict(X), meta.predict_proba(Z).argmax(axis=1))
    with pytest.raises(TypeError, match="no fit"):
        model.fit(X, y)


def _stack_pool(ctx: search.Context) -> list[search.Result]:
    made = [("linear", candidates.ONEHOT, {}), ("random_forest", candidates.ORDINAL, {"n_estimators": 20})]
    results = [search.evaluate(candidates.Candidate(f, e, p), ctx) for f, e, p in made]
    return sorted(results, key=lambda r: ctx.objective.loss(r.score))


def test_the_stacks_scoring_is_stopped_where_it_would_eat_the_final_refits_time(monkeypatch, caplog):
    """Wine at 60 s: the stack's scoring took the time the final refit of the blend needed.  Its
    meta-model's fit cannot be interrupted, so it is scored in a child process killed when only
    the refit's time (``reserve``, the model chosen without it) is left: here a fit that never
    ends, 2 s before that."""
    caplog.set_level("INFO")
    ctx = _context("multiclass")
    ranked = _stack_pool(ctx)
    scored, why = stack.consider(ranked, ctx.y, ctx, search.CostModel(), deadline=time.monotonic() + 600.0)
    assert scored is not None and why == "" and scored.members == ranked
    unfitted = stack.meta_model

    def endless_meta_model(*args: object) -> object:
        model = unfitted(*args)
        model.fit = lambda *args: time.sleep(3600)
        return model

    monkeypatch.setattr(stack, "meta_model", endless_meta_model)
    deadline = time.monotonic() + 602.0
    scored, why = stack.consider(ranked, ctx.y, ctx, search.CostModel(), deadline=deadline, reserve=600.0)
    assert scored is None and why.startswith("its scoring was stopped after")
    assert why.endswith(
        "it would have run into the 600.0 s kept to refit the model chosen without it on all rows"
    )
    assert f"no stacked ensemble: {why}" in caplog.text


@pytest.mark.parametrize("how", ["memory_error", "sigkill"])
def test_a_stack_whose_scoring_runs_out_of_memory_says_so_first(monkeypatch, caplog, how):
    """The stack's scoring or its meta-model's fit running out of memory leads with it and the
    memory figure, as a candidate's does (it read "its scoring was stopped after 0.1 s: the
    process scoring it raised MemoryError ...")."""
    caplog.set_level("INFO")
    ctx = _context("multiclass")
    ranked = _stack_pool(ctx)
    monkeypatch.setattr(stack, "evaluate", _no_memory if how == "memory_error" else _killed_by_the_kernel)
    scored, why = stack.consider(ranked, ctx.y, ctx, search.CostModel(), deadline=time.monotonic() + 600.0)
    assert scored is None and why.startswith("out of memory: the process scoring it "), why
    said = (
        "raised MemoryError (Unable to allocate 9.3 GiB"
        if how == "memory_error"
        else "SIGKILL: out of memory?"
    )
    assert said in why and "this container has " in why and " GiB of memory (" in why
    assert f"no stacked ensemble: {why}" in caplog.text
    monkeypatch.setattr(stack, "fit_meta", _no_memory if how == "memory_error" else _killed_by_the_kernel)
    meta, why = stack.fit_meta_until(ranked, ctx.y, MULTICLASS, lambda: (time.monotonic() + 600, "never"))
    assert meta is None and why.startswith(
        f"out of memory: the process fitting its meta-model on all {len(ctx.y)} rows "
    ), why
    assert said in why and "this container has " in why


def test_the_stacks_meta_model_fit_on_all_rows_is_killed_at_its_deadline(monkeypatch):
    """The meta-model's fit on every out-of-fold row ran in the job's process, untimed: a slow
    one carried the job past its budget.  It runs in a child killed at the refit's deadline."""
    ctx = _context("multiclass")
    ranked = _stack_pool(ctx)
    meta, why = stack.fit_meta_until(ranked, ctx.y, MULTICLASS, lambda: (time.monotonic() + 600, "never"))
    assert why == "" and np.allclose(meta.coef_, stack.fit_meta(ranked, ctx.y, MULTICLASS).coef_)
    monkeypatch.setattr(stack, "fit_meta", lambda *args: time.sleep(3600))
    kill_at = time.monotonic() + 0.5
    meta, why = stack.fit_meta_until(ranked, ctx.y, MULTICLASS, lambda: (kill_at, "the time budget ran out"))
    assert meta is None and multiprocessing.active_children() == []
    assert re.fullmatch(
        rf"its meta-model's fit on all {len(ctx.y)} rows was stopped after [\d.]+ s: the time budget ran out",
        why,
    ), why


def test_a_stack_that_cannot_be_completed_saves_the_blend_chosen_without_it():
    """Every member of the blend chosen without the stack refitted: that blend is saved, with
    its weights; one of them missing: the best candidate alone."""
    ctx = _context("multiclass")
    ranked = _stack_pool(ctx)
    fitted = [(r.name, search.refit(r.candidate, ctx, ctx.X, ctx.y), 0.5) for r in ranked]
    chosen = [(ranked[0], 0.75), (ranked[1], 0.25)]
    estimator, weights = job._without_stack(fitted, chosen, MULTICLASS, 3)
    assert isinstance(estimator, blend.BlendClassifier) and weights == {
        ranked[0].name: 0.75,
        ranked[1].name: 0.25,
    }
    estimator, weights = job._without_stack(fitted[1:], chosen, MULTICLASS, 3)
    assert estimator is fitted[1][1] and weights == {ranked[1].name: 1.0}
    estimator, weights = job._without_stack(fitted, [(ranked[0], 1.0)], MULTICLASS, 3)
    assert estimator is fitted[0][1] and weights == {ranked[0].name: 1.0}


def test_a_stack_without_time_beyond_the_refits_is_not_scored_and_says_why():
    """The reserve is the expected refit of what is saved without a stack (the cost model's)."""
    ctx = _context("multiclass")
    ranked = _stack_pool(ctx)
    costs = search.CostModel()
    costs.record(search.Result(ranked[0].candidate, search.COMPLETED, fit_seconds=500.0), ctx.plan.folds)
    reserve = job._refit_seconds([(ranked[0], 1.0)], costs, ctx.plan.folds, False)
    assert reserve == pytest.approx(costs.refit(ranked[0].candidate, ctx.plan.folds)) and reserve > 10
    assert (
        job._refit_seconds([(ranked[0], 1.0)], costs, ctx.plan.folds, True) == 0.0
    )  # its fold model is the refit
    deadline = time.monotonic() + reserve / 2
    scored, why = job._consider_stack(ranked, ctx.y, ctx, search.CostModel(), deadline, reserve, "rows")
    assert scored is None
    assert why.startswith(
        f"not scored: refitting the model chosen without it on all rows needs about {reserve:.1f} s"
    )


def test_a_stack_draws_on_every_family_before_a_second_candidate_of_one():
    ctx = _context("binary")
    made = [
        ("gradient_boosting", candidates.ORDINAL, {"max_iter": 20}),
        ("gradient_boosting", candidates.ORDINAL, {"max_iter": 30}),
        ("linear", candidates.ONEHOT, {}),
    ]
    results = [search.evaluate(candidates.Candidate(f, e, p), ctx) for f, e, p in made]
    ranked = sorted(results, key=lambda r: ctx.objective.loss(r.score))
    assert {r.candidate.family for r in stack.pool(ranked, 2)} == {"gradient_boosting", "linear"}
    assert [r.name for r in stack.pool(ranked, 3)] == [r.name for r in ranked]


# -- checkpoints ------------------------------------------------------------------------------
def test_finished_candidates_round_trip_through_checkpoints(tmp_path):
    ctx = _context("binary")
    result = search.evaluate(candidates.Candidate("linear", candidates.ONEHOT, {"C": 0.5}), ctx)
    key = checkpoints.fingerprint(ctx.X, ctx.y, ctx.plan, "F1", 0, problem_type=BINARY)
    store = checkpoints.Checkpoints(tmp_path, key)
    store.save(result)
    store.save(search.Result(candidates.Candidate("knn", candidates.ONEHOT), search.STOPPED))
    (restored,) = checkpoints.restore(store, (len(ctx.y),))
    assert restored.name == result.name and restored.score == result.score
    np.testing.assert_array_equal(restored.oof, result.oof)
    other = checkpoints.fingerprint(ctx.X, ctx.y[::-1].copy(), ctx.plan, "F1", 0, problem_type=BINARY)
    assert other != key and checkpoints.Checkpoints(tmp_path, other).load() == []


def test_a_checkpoint_scored_as_another_problem_type_is_not_resumed():
    """A two-class target forced to multiclass has the same codes, rows and plan as binary, and
    Accuracy is an objective of both: a multiclass job resumed the binary job's candidates, whose
    leaderboard rows then held binary precision and recall under the macro averages' columns."""
    ctx = _context("binary")
    as_binary = checkpoints.fingerprint(ctx.X, ctx.y, ctx.plan, "Accuracy", 0, problem_type=BINARY)
    as_multiclass = checkpoints.fingerprint(ctx.X, ctx.y, ctx.plan, "Accuracy", 0, problem_type=MULTICLASS)
    assert as_binary != as_multiclass


def test_a_checkpoint_scored_by_another_scikit_learn_is_not_resumed(monkeypatch):
    """A job restarted on a new image with another scikit-learn scores afresh rather than
    resume scores the old library measured."""
    ctx = _context("binary")
    installed = artifact.library_versions()
    assert installed["scikit-learn"]  # read from package metadata
    key = checkpoints.fingerprint(ctx.X, ctx.y, ctx.plan, "F1", 0, problem_type=BINARY)
    monkeypatch.setattr(checkpoints, "library_versions", lambda: {**installed, "scikit-learn": "999.0"})
    assert checkpoints.fingerprint(ctx.X, ctx.y, ctx.plan, "F1", 0, problem_type=BINARY) != key


def test_a_checkpoint_scored_by_other_byoc_code_of_the_same_version_is_not_resumed(tmp_path, monkeypatch):
    """byoc's version stays 0.1.0 while its code changes: checkpoints are keyed on a hash of the
    installed scoring sources, so an image whose search, algorithms, metrics or encoder changed
    scores afresh, and an unchanged one resumes; neither the version nor other modules count."""
    ctx = _context("binary")
    package = tmp_path / "byoc"
    shutil.copytree(scoring_code.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(scoring_code, "PACKAGE", package)
    installed = artifact.library_versions()
    monkeypatch.setattr(checkpoints, "library_versions", lambda: {**installed, "byoc": "0.1.0"})
    result = search.evaluate(candidates.Candidate("linear", candidates.ONEHOT, {"C": 0.5}), ctx)

    def resumed() -> list[search.Result]:
        key = checkpoints.fingerprint(ctx.X, ctx.y, ctx.plan, "F1", 0, problem_type=BINARY)
        return checkpoints.restore(checkpoints.Checkpoints(tmp_path / "ckpt", key), (len(ctx.y),))

    key = checkpoints.fingerprint(ctx.X, ctx.y, ctx.plan, "F1", 0, problem_type=BINARY)
    checkpoints.Checkpoints(tmp_path / "ckpt", key).save(result)
    assert [r.name for r in resumed()] == [result.name]  # unchanged code: resumed
    (package / "serving" / "__init__.py").write_text("# not scoring code\n")
    monkeypatch.setattr(checkpoints, "library_versions", lambda: {**installed, "byoc": "0.2.0"})
    assert [r.name for r in resumed()] == [result.name]  # neither other modules nor the version count
    for changed in (
        "automl/search.py",
        "algorithms/__init__.py",
        "metrics.py",
        "preprocessing.py",
        "values.py",
    ):
        source = package / changed
        original = source.read_bytes()
        source.write_bytes(original + b"\n# changed\n")
        assert resumed() == [], changed
        source.write_bytes(original)
    assert [r.name for r in resumed()] == [result.name]


def test_a_checkpoint_that_cannot_be_written_is_warned_of_once_and_not_tried_again(tmp_path, caplog):
    ctx = _context("binary")
    result = search.evaluate(candidates.Candidate("linear", candidates.ONEHOT, {"C": 0.5}), ctx)
    (tmp_path / checkpoints.FOLDER).write_text("a file where the folder goes")
    store = checkpoints.Checkpoints(tmp_path, "key")
    store.save(result)
    store.save(result)
    assert store.unwritable and caplog.text.count("checkpoints are not saved") == 1


@pytest.mark.parametrize("damage", ["empty_predictions", "null_score", "string_time", "not_an_object"])
def test_a_corrupt_checkpoint_is_ignored_and_its_candidate_scored_again(tmp_path, damage, caplog):
    ctx = _context("binary")
    result = search.evaluate(candidates.Candidate("linear", candidates.ONEHOT, {"C": 0.5}), ctx)
    store = checkpoints.Checkpoints(tmp_path, "key")
    store.save(result)
    (record_file,) = store.folder.glob("*.json")
    record = json.loads(record_file.read_text())
    if damage == "empty_predictions":  # a partial restore from S3, a full disk
        record_file.with_suffix(".npy").write_bytes(b"")
    elif damage == "null_score":
        record_file.write_text(json.dumps({**record, "score": None}))
    elif damage == "string_time":
        record_file.write_text(json.dumps({**record, "fit_seconds": "3"}))
    else:
        record_file.write_text("[1, 2]")
    assert checkpoints.restore(store, (len(ctx.y),)) == []
    assert "ignoring checkpoint" in caplog.text


# -- exploration and report ---------------------------------------------------------------------
def test_exploration_warns_of_constant_id_like_and_leaking_columns():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    X = pd.DataFrame(
        {
            "noise": rng.normal(size=400),
            "constant": np.ones(400),
            "row_id": [f"id-{i}" for i in range(400)],
            "customer": rng.permutation(400) + 10_000,  # whole numbers, float64 once coerced
            "leak": np.where(y == 1, "yes", "no"),
        }
    )
    features = preprocessing.feature_schema(X)
    X = preprocessing.coerce_features(X, features, where="test")
    summary = explore.explore(X, y, BINARY, features, [0, 1])
    kinds = {(w["column"], w["kind"]) for w in summary["warnings"]}
    assert kinds == {
        ("constant", "constant"),
        ("row_id", "id_like"),
        ("customer", "id_like"),
        ("leak", "leakage_suspect"),
    }
    by_name = {f["name"]: f for f in summary["features"]}
    assert by_name["row_id"]["cardinality"] == 400 and by_name["noise"]["type"] == "numeric"
    assert sum(c["count"] for c in summary["target"]["classes"].values()) == 400


@pytest.mark.parametrize(
    "spelled",
    [
        lambda d: d.strftime("%Y-%m-%d"),
        lambda d: d.strftime("%d/%m/%Y"),
        lambda d: d.strftime("%Y-%m-%d %H:%M:%S.%f"),  # Arrow's text of a Parquet timestamp
        lambda d: d.strftime("%m/%d/%y %H:%M"),
    ],
    ids=["iso", "day_first", "arrow_timestamp", "us_short_time"],
)
def test_a_column_of_dates_is_told_how_to_keep_what_it_says_not_to_drop_it(spelled, caplog):
    """A date column (text to the encoder, a distinct date in nearly every row) was told "an ID
    cannot generalise; drop it": the advice is how to keep its information, as numbers; the
    columns trained on stay the same (exploration only advises)."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    days = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.arange(400), unit="h") * 23
    X = pd.DataFrame({"noise": rng.normal(size=400), "signup": [spelled(d) for d in days]})
    features = preprocessing.feature_schema(X)
    X = preprocessing.coerce_features(X, features, where="test")
    summary = explore.explore(X, y, BINARY, features, [0, 1])
    [warning] = summary["warnings"]
    assert warning["column"] == "signup" and warning["kind"] == "date_like"
    message = warning["message"]
    assert message.startswith(
        f"column 'signup' holds dates (such as '{spelled(days[0])}') with a distinct value"
    )
    assert "year, month, day of week, or seconds since 1970" in message
    assert "pd.to_datetime(df['signup'])" in message and "drop" not in message
    assert message in caplog.text
    assert [f.name for f in features] == ["noise", "signup"]  # still a feature: advice only


def test_text_that_only_starts_like_a_date_is_still_an_id():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"ref": [f"2023-01-{i % 28 + 1:02d}-order-{i}" for i in range(400)]})
    features = preprocessing.feature_schema(X)
    X = preprocessing.coerce_features(X, features, where="test")
    summary = explore.explore(X, rng.integers(0, 2, 400), BINARY, features, [0, 1])
    assert [(w["column"], w["kind"]) for w in summary["warnings"]] == [("ref", "id_like")]


def test_the_leakage_check_ends_at_its_deadline_or_a_stop_and_says_so(caplog):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    X = pd.DataFrame(rng.normal(size=(200, 6)), columns=[f"c{i}" for i in range(6)])
    features = preprocessing.feature_schema(X)
    X = preprocessing.coerce_features(X, features, where="test")
    calls = iter(range(100))
    cases = {
        "its share of the time budget ran out": {"deadline": time.monotonic() - 1},
        "the job was stopped": {"stopped": lambda: next(calls) >= 2},  # two columns checked first
    }
    for why, bound in cases.items():
        summary = explore.explore(X, y, BINARY, features, [0, 1], **bound)
        checked = [f for f in summary["features"] if "single_column_score" in f]
        assert len(checked) == (0 if "deadline" in bound else 2)
        assert summary["incomplete"].startswith(
            f"the leakage check covered {len(checked)} of 6 columns: {why}"
        )
        assert summary["incomplete"] in caplog.text
        assert len(summary["features"]) == 6  # every column is still described
    assert "incomplete" not in explore.explore(X, y, BINARY, features, [0, 1])


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_the_report_embeds_decodable_images_and_escapes_data(kind, tmp_path):
    X, y, problem_type, features = _data(kind)
    X = X.rename(columns={X.columns[0]: "<script>alert(1)</script>"})
    features = preprocessing.feature_schema(X)
    settings = job.AutoSettings(max_runtime_seconds=60, max_candidates=2)
    result = job.run(
        X,
        y,
        problem_type=problem_type,
        features=features,
        classes=None if kind == "regression" else [0, 1],
        settings=settings,
        output_dir=tmp_path,
        started=time.monotonic(),
    )
    page = (tmp_path / "report.html").read_text()
    assert "<script>" not in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) >= 4
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG")
    assert (tmp_path / "leaderboard.csv").read_text().startswith("rank,candidate_name,candidate_status")
    assert result.leaderboard[0]["candidate_status"] == search.COMPLETED


def test_after_a_stop_a_refit_too_long_for_the_time_left_gives_way_to_the_model_kept_for_it():
    """The best candidate's fold model (scored best) beats refitting a worse one; without one,
    the best candidate whose refit fits the time left is refitted."""
    costs = search.CostModel()
    slow = candidates.Candidate("random_forest", candidates.ORDINAL, {"n_estimators": 300})
    quick = candidates.Candidate("linear", candidates.ONEHOT)
    best = search.Result(slow, search.COMPLETED, 0.95, fit_seconds=50.0, model=object())
    second = search.Result(quick, search.COMPLETED, 0.90, fit_seconds=0.5)
    for result in (best, second):
        costs.record(result, 5)
    deadline = time.monotonic() + 5  # the best's refit: 10 s a fold x 5/4 rows x 1.2 = 15 s
    chosen, why = job._stopped_choice([best, second], costs, 5, deadline)
    assert chosen is best
    assert re.fullmatch(
        r"not started after the stop signal: it needs about 15\.0 s and [\d.]+ s were left", why
    )
    best.model = None
    assert job._stopped_choice([best, second], costs, 5, deadline) == (second, "")


def test_a_cut_refit_with_no_model_kept_is_a_budget_too_small_or_a_stop():
    """Nothing to save: at the budget's end the user's to fix (exit 1, naming the budget); after
    a stop signal the job was stopped (exit 143), the failure naming the refit."""
    stop = job.StopRequest()
    cut = "the refit of rf on all 10 rows was stopped after 1.0 s: the time budget ran out"
    with pytest.raises(HyperparameterError) as raised:
        job._kept_fold_model(None, cut, stop, 60)
    assert raised.value.code == "budget_too_small"
    assert str(raised.value).startswith(f"{cut} within max_runtime_seconds=60, and no model fitted")
    assert "raise max_runtime_seconds (to about 120)" in str(raised.value)
    stop.set()
    with pytest.raises(
        JobStopped, match=f"^{re.escape(cut)}, and no model fitted during the cross-validation"
    ):
        job._kept_fold_model(None, cut, stop, 60)
    kept = search.Result(candidates.Candidate("linear", candidates.ONEHOT), search.COMPLETED, model=object())
    assert job._kept_fold_model(kept, cut, stop, 60) is kept


def test_with_a_validation_channel_the_model_scored_on_it_is_saved_without_a_second_fit(tmp_path):
    """The search's one split trains on exactly the train channel, so the refit would fit the
    same model again: the model scored on the validation channel is saved as it is."""
    X, y, problem_type, features = _data("multiclass")
    train, held = np.arange(len(y)) % 3 != 0, np.arange(len(y)) % 3 == 0
    settings = job.AutoSettings(max_runtime_seconds=60, max_candidates=2, stack=False)
    result = job.run(
        X[train].reset_index(drop=True),
        y[train],
        problem_type=problem_type,
        features=features,
        classes=[0, 1, 2],
        settings=settings,
        output_dir=tmp_path,
        started=time.monotonic(),
        validation=(X[held].reset_index(drop=True), y[held]),
    )
    [member] = result.details["automl"]["members"]
    [best] = [r for r in result.results if r.name == member["name"]]
    assert result.estimator is best.model and not result.details["automl"]["saved_from_cross_validation"]
    fresh = search.fit_candidate(
        best.candidate, _context("multiclass"), X[train].reset_index(drop=True), y[train]
    )
    assert np.array_equal(result.estimator.predict_proba(X), fresh.predict_proba(X))


def _binary_report(
    y: np.ndarray,
    proba: np.ndarray,
    labels: list[str],
    importances: dict[str, float] | None,
    exploration: dict | None = None,
) -> str:
    """report.html of a binary job with no candidates: what the report tests vary is the data."""
    return report.render(
        problem_type=BINARY,
        objective=objective.resolve(None, BINARY),
        y=y,
        held_out=proba,
        labels=labels,
        results=[],
        leaderboard=[],
        exploration=exploration or {},
        importances=importances,
        summary={"k": "v"},
    )


def test_report_render_takes_the_held_out_predictions():
    y = np.array([0, 1, 1, 0, 1])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9]])
    page = _binary_report(y, proba, ["no", "yes"], {"a": 0.5})
    assert page.count("<img") == 5


def test_the_report_draws_dollar_signs_in_labels_and_column_names_as_written():
    """Price levels ``$``/``$$`` as classes and a column ``$x^$``: matplotlib read text with two
    ``$`` as TeX math, "$$" raised a ParseException and the job failed as a fault of byoc's
    (exit 2) after its whole search."""
    from matplotlib.figure import Figure

    y = np.array([0, 1, 1, 0, 1, 0])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9], [0.7, 0.3]])
    page = _binary_report(y, proba, ["$", "$$"], {"$x^$": 0.5, "$\\frac$": 0.2})
    assert page.count("<img") == 5
    ax = Figure().subplots()
    report._confusion(y, proba.argmax(axis=1), ["$", "$$"])(ax)
    assert [label.get_text() for label in ax.get_yticklabels()] == ["$", "$$"]


def test_the_report_shows_unicode_labels_as_written_and_bidi_controls_by_code_point():
    """The Target section spelt every non-ASCII label as JSON escapes (``caf\\u00e9``,
    ``\\u65e5\\u672c``); and a right-to-left override in a column name (invisible) reversed the
    rest of its warning on screen: it is shown as ``[U+202E]``."""
    y = np.array([0, 1, 1, 0, 1, 0])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9], [0.7, 0.3]])
    name = "\u202eevil"
    exploration = {
        "features": [{"name": name, "type": "numeric"}],
        "warnings": [{"message": f"column '{name}' holds a single value (or none)"}],
        "target": {"classes": {"café": {"count": 3}, "日本": {"count": 3}}},
    }
    page = _binary_report(y, proba, ["no", "yes"], None, exploration)
    assert "&quot;café&quot;" in page and "&quot;日本&quot;" in page and "\\u" not in page
    assert "\u202e" not in page
    assert "<li>column &#x27;[U+202E]evil&#x27; holds a single value (or none)</li>" in page
    assert "<td>[U+202E]evil</td>" in page


def test_the_reports_plots_keep_names_apart_that_start_alike():
    """Names were cut to their first 24 (classes: 12) characters: two columns
    ``customer_account_balance_2023`` and ``..._2024`` became one label, and matplotlib drew both
    bars in one place, one hiding the other; classes ``segment_north_A``/``_B`` read the same on
    the confusion matrix's axes.  A long name keeps its start and end, and each bar its own row."""
    from matplotlib.figure import Figure

    ax = Figure().subplots()
    names = ["customer_account_balance_2023", "customer_account_balance_2024", "age"]
    report._importances(dict(zip(names, [0.5, 0.1, 0.3], strict=True)))(ax)
    assert sorted(bar.get_y() for bar in ax.patches) == pytest.approx([-0.4, 0.6, 1.6])
    shown = [label.get_text() for label in ax.get_yticklabels()]
    assert len(set(shown)) == 3 and all(len(text) <= 24 for text in shown)
    ax = Figure().subplots()
    y = np.array([0, 1, 0, 1])
    report._confusion(y, y, ["segment_north_A", "segment_north_B"])(ax)
    shown = [label.get_text() for label in ax.get_xticklabels()]
    assert shown == ["segmen\u2026rth_A", "segmen\u2026rth_B"]


@pytest.mark.parametrize("classes", [3, 150])
def test_the_confusion_matrix_writes_its_counts_only_for_few_classes(classes):
    """matplotlib lays out each count on its own: 150 classes' 22,500 counts took 42 s, drawn
    past the budget's end (the plot's cost is only known once one is drawn); the colours stay."""
    from matplotlib.figure import Figure

    y = np.arange(2 * classes) % classes
    ax = Figure().subplots()
    report._confusion(y, y[::-1], [f"class {k}" for k in range(classes)])(ax)
    assert len(ax.images) == 1
    assert len(ax.texts) == (classes * classes if classes <= report.COUNTED_CLASSES else 0)
    named = {label.get_text() for label in ax.get_xticklabels()}
    assert ("class 0" in named) == (classes <= report.NAMED_CLASSES)


class _ScriptedRunner:
    """A runner whose results are given in advance, by candidate name: what the search submits
    and in which order is what these tests check."""

    slots = 1

    def __init__(self, results: dict[str, search.Result], on_next=None) -> None:
        self.results, self.on_next = results, on_next
        self.submitted: list[str] = []
        self._queue: list[str] = []

    def submit(self, candidate: candidates.Candidate, deadline: float, keep_model_below: float) -> None:
        self.submitted.append(candidate.name)
        self._queue.append(candidate.name)

    def pending(self) -> int:
        return len(self._queue)

    def next_result(self) -> search.Result:
        result = self.results[self._queue.pop(0)]
        if self.on_next is not None:
            self.on_next(result)
        return result


def _forest_stopped_after_one_fold(ctx: search.Context) -> tuple[candidates.Candidate, search.Result]:
    forest = candidates.Candidate("random_forest", candidates.ORDINAL, {"n_estimators": 300})
    stopped = search.Result(
        forest,
        search.STOPPED,
        fit_seconds=24.0,
        folds_done=1,
        message=f"stopped after 1 of {ctx.plan.folds} folds: the time budget ran out",
    )
    return forest, stopped


def test_a_candidate_stopped_for_time_leaves_the_rest_of_the_search_to_candidates_that_can_end():
    """On 70,000 rows a 300-tree forest's first fold took 24 s of a 60 s budget and its next
    fold could not end in time: the search used to end there, 19 s before its deadline.  It goes
    on; the other forest family is skipped (its cost estimated from the stopped one), a cheap
    candidate is scored."""
    ctx = _context("binary")
    forest, stopped = _forest_stopped_after_one_fold(ctx)
    other_forest = candidates.Candidate("extra_trees", candidates.ORDINAL, {"n_estimators": 300})
    cheap = candidates.Candidate("linear", candidates.ONEHOT)
    scored = search.Result(cheap, search.COMPLETED, score=0.9, fit_seconds=0.3, folds_done=ctx.plan.folds)
    runner = _ScriptedRunner({forest.name: stopped, cheap.name: scored})
    finder = search.Search(
        ctx, search_deadline=lambda done: time.monotonic() + 20.0, max_candidates=3, runner=runner
    )
    results = finder.run([forest, other_forest, cheap])
    assert runner.submitted == [forest.name, cheap.name]
    assert [r.status for r in results] == [search.STOPPED, search.SKIPPED, search.COMPLETED]
    # 24 s for one fold of 300 trees: 8 s per 100 trees per fold, for either forest family
    assert finder.costs.estimate(forest, 2) == pytest.approx(48.0)
    assert finder.costs.estimate(other_forest, 1) == pytest.approx(24.0)
    assert finder.costs.estimate(candidates.Candidate("knn", candidates.ONEHOT), 1) is None


def test_candidates_skipped_for_the_time_left_are_summarised_in_one_line_and_kept_on_the_leaderboard(caplog):
    """Near the deadline of a loaded machine the search logged ~170 "skipping" lines, one per
    candidate not started: one line now says how many and of which families; the leaderboard
    keeps each with status Skipped and its expected time."""
    ctx = _context("binary")
    forest, stopped = _forest_stopped_after_one_fold(ctx)
    expensive = [
        candidates.Candidate(family, candidates.ORDINAL, {"n_estimators": n})
        for family in ("extra_trees", "random_forest")
        for n in (200, 300, 400)
        if (family, n) != ("random_forest", 300)
    ]
    runner = _ScriptedRunner({forest.name: stopped})
    finder = search.Search(ctx, search_deadline=lambda done: time.monotonic() + 20.0, runner=runner)
    caplog.set_level("INFO")
    results = finder.run([forest, *expensive])
    skipped = [r for r in results if r.status == search.SKIPPED]
    assert [r.name for r in skipped] == [c.name for c in expensive]
    [line] = [r.getMessage() for r in caplog.records if "skip" in r.getMessage()]
    assert line.startswith(
        "auto: skipped 5 candidate(s) expected to need more than the time left for the search "
        "(extra_trees 3, random_forest 2; e.g. extra_trees-ordinal-n_estimators=200: expected "
    ), line
    assert line.endswith("; each is in leaderboard.csv with status Skipped")
    board = job.leaderboard_rows(results, ctx.objective, {}, BINARY)
    assert sum(row["candidate_status"] == search.SKIPPED for row in board) == 5
    assert all(
        row["message"].startswith("expected ") for row in board if row["candidate_status"] == "Skipped"
    )


def test_a_stop_request_still_ends_the_search_at_the_candidate_it_stopped():
    ctx = _context("binary")
    forest, stopped = _forest_stopped_after_one_fold(ctx)
    cheap = candidates.Candidate("linear", candidates.ONEHOT)
    runner = _ScriptedRunner({forest.name: stopped}, on_next=lambda result: ctx.stop.set())
    finder = search.Search(ctx, search_deadline=lambda done: time.monotonic() + 20.0, runner=runner)
    assert [r.status for r in finder.run([forest, cheap])] == [search.STOPPED]
    assert runner.submitted == [forest.name]


# -- the blend's pool after a longer search (choice.short_unless_long) ------------------------------
def _pool_setup(neighbour_noise: float) -> tuple[np.ndarray, list[search.Result], set[str]]:
    """Held-out predictions of four portfolio candidates, eight neighbours of the best of them
    (errors 95% correlated with its errors, as good in expectation: some luckier on these rows,
    some less), and one as good as ``neighbour_noise`` makes it: the results best first by MSE,
    and the portfolio's names."""
    rng = np.random.default_rng(3)
    y = rng.normal(size=400)
    portfolio = [y + rng.normal(scale=1.0, size=400) for _ in range(4)]
    best = min(portfolio, key=lambda p: float(np.mean((p - y) ** 2)))
    lucky = [y + 0.95 * (best - y) + np.sqrt(1 - 0.95**2) * rng.normal(size=400) for _ in range(8)]
    other = [y + rng.normal(scale=neighbour_noise, size=400)]
    results = [
        search.Result(
            candidates.Candidate("linear", candidates.ONEHOT, {"alpha": float(i + 1)}),
            search.COMPLETED,
            score=float(np.mean((p - y) ** 2)),
            oof=p,
        )
        for i, p in enumerate([*portfolio, *lucky, *other])
    ]
    short = {r.name for r in results[: len(portfolio)]}
    return y, sorted(results, key=lambda r: r.score), short


def test_lucky_near_copies_found_by_a_longer_search_leave_the_blend_to_the_portfolio():
    """Neighbours that beat the portfolio's candidates by a hair on the held-out rows (the
    winner's curse of a long search on few rows) do not displace them: the blend draws on the
    portfolio's candidates alone, and says why."""
    y, ranked, short = _pool_setup(neighbour_noise=1.0)
    assert ranked[0].name not in short  # a lucky neighbour ranks first
    plan = search.make_plan(y, REGRESSION, seed=0)
    goal = objective.resolve("MSE", REGRESSION)
    pool = choice.short_unless_long(ranked, short, y, plan, goal, REGRESSION, 0, initial=5)
    assert pool is not None and pool.kept_short
    assert [r.name for r in pool.ranked] == [r.name for r in ranked if r.name in short]
    assert goal.loss(pool.short_score) - goal.loss(pool.long_score) <= pool.margin


def test_a_candidate_the_search_found_far_better_than_the_portfolio_enters_the_blend():
    y, ranked, short = _pool_setup(neighbour_noise=0.3)
    plan = search.make_plan(y, REGRESSION, seed=0)
    goal = objective.resolve("MSE", REGRESSION)
    pool = choice.short_unless_long(ranked, short, y, plan, goal, REGRESSION, 0, initial=5)
    assert pool is not None and not pool.kept_short
    assert [r.name for r in pool.ranked] == [r.name for r in ranked]
    assert goal.loss(pool.short_score) - goal.loss(pool.long_score) > pool.margin > 0


def test_no_pool_choice_when_the_search_scored_nothing_beyond_the_portfolio():
    y, ranked, short = _pool_setup(neighbour_noise=1.0)
    plan = search.make_plan(y, REGRESSION, seed=0)
    goal = objective.resolve("MSE", REGRESSION)
    only_short = [r for r in ranked if r.name in short]
    assert choice.short_unless_long(only_short, short, y, plan, goal, REGRESSION, 0, initial=5) is None
    one = {only_short[0].name}
    assert choice.short_unless_long(ranked, one, y, plan, goal, REGRESSION, 0, initial=5) is None


def test_a_search_past_the_portfolio_on_small_data_blends_from_the_pool_it_chose(
    monkeypatch, caplog, tmp_path
):
    """job.run on small data with a search past its portfolio: the pool choice is logged, in the
    report's summary and model details, and the saved blend's members come from that pool."""
    X, y, problem_type, features = _data("regression")
    real = candidates.portfolio
    monkeypatch.setattr(candidates, "portfolio", lambda *a, **k: real(*a, **k)[:2])
    kept = {c.name for c in real(problem_type, len(X), len(features), False)[:2]}
    caplog.set_level("INFO")
    result = job.run(
        X,
        y,
        problem_type=problem_type,
        features=features,
        classes=None,
        # max_candidates ends the search; the budget is only large enough that a loaded machine
        # (its wall seconds per CPU second) skips none of the five as too slow for the time left
        settings=job.AutoSettings(max_runtime_seconds=900, max_candidates=5, stack=False),
        output_dir=tmp_path,
        started=time.monotonic(),
    )
    automl = result.details["automl"]
    assert automl["candidates_completed"] == 5 and automl["blend_pool"]
    members = {m["name"] for m in automl["members"]}
    if automl["blend_pool"].startswith("the portfolio's 2 candidates"):
        assert "the blend keeps to the portfolio's candidates" in caplog.text
        assert members <= kept
    else:
        assert automl["blend_pool"].startswith("all 5 candidates")
        assert "the blend draws on every candidate" in caplog.text
