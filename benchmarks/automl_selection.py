"""Offline comparison of ``algorithm=auto``'s selection rules on cached candidate predictions.

For each data set and split of ``benchmarks/automl.py`` (same 70/30 splits, same metric), every
candidate of auto's portfolio is scored once on the search's cross-validation plan
(``byoc.automl.search.evaluate``: its out-of-fold predictions) and refitted on all training rows
(its test predictions); both are cached under ``--cache`` (an ``.npz`` per data set, split and
plan), so selection rules — which candidate, blend or stack to save — can be compared on the
test rows without refitting anything.  A rule sees only what auto sees (out-of-fold predictions
on the training rows); the test score is the benchmark's.

    .venv/bin/python benchmarks/automl_selection.py --datasets wine,breast_cancer,diabetes --splits 5

prints, per data set, the mean test score over the splits of each rule, of each default and of
the best default picked with hindsight on the test split (the benchmark's bar).  The candidates
are those auto's search scores, in its order (``search.Search`` with no deadline: the portfolio,
then rounds of neighbours of the best families); ``--candidates N`` (12 by default, as
benchmarks/automl.py's ``--max-candidates 12``) sets how many, and ``--rules long`` compares
rules for a longer search: what the first 12 would have chosen against what all N choose.  The
cache holds each candidate by name, so a larger N reuses a smaller one's; the predictions
depend on byoc's code: delete the cache after changing the candidates or the plan.

    .venv/bin/python benchmarks/automl_selection.py --datasets wine,breast_cancer,diabetes --splits 5 \
        --candidates 40 --rules long
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "container"))
sys.path.insert(0, str(HERE.parent))

from benchmarks.automl import AUC, LOADERS, SPLIT_SEEDS, TEST_SIZE, Data, run_default
from benchmarks.automl import score as metric_score
from byoc import preprocessing
from byoc.artifact import REGRESSION
from byoc.automl import blend, candidates, choice, search, stack
from byoc.automl.objective import Objective, resolve

Rule = Callable[["Split"], np.ndarray]


class Split:
    """One split's cached candidates: names, out-of-fold and test predictions, and the plan."""

    def __init__(
        self,
        data: Data,
        dataset: str,
        names: list[str],
        oof: list[np.ndarray],
        test: list[np.ndarray],
        y: np.ndarray,
        plan: search.Plan,
        y_test: np.ndarray,
        defaults: dict[str, np.ndarray],
        n_classes: int,
        searched: Sequence[str] = (),
        cpu: float = 0.0,
    ) -> None:
        # ``searched``: the names the search scored, in its order; ``cpu``: their CPU seconds
        self.searched, self.cpu = list(searched), cpu
        self.portfolio: list[str] = []  # auto's portfolio (the short pool of its blend on small data)
        self.data, self.dataset, self.names, self.oof, self.test = data, dataset, names, oof, test
        self.y, self.plan, self.y_test, self.defaults, self.n_classes = y, plan, y_test, defaults, n_classes
        self.goal = resolve(data.metric.auto, data.problem_type)
        self.results = [
            search.Result(_parse(name), search.COMPLETED, self._cv(p), oof=p)
            for name, p in zip(names, oof, strict=True)
        ]

    def _cv(self, predictions: np.ndarray) -> float:
        scores = search.score_predictions(self.y, predictions, self.data.problem_type, self.n_classes)
        return scores.get(self.goal.key, float("nan"))

    def judged_by(self, goal: Objective) -> Split:
        """The same split with candidates scored (ranked, blended) by ``goal`` instead."""
        other = copy.copy(self)
        other.goal = goal
        other.results = [
            search.Result(r.candidate, search.COMPLETED, other._cv(r.oof), oof=r.oof) for r in self.results
        ]
        return other

    def ranked(self, keep: Callable[[str], bool] = lambda _: True) -> list[search.Result]:
        usable = [r for r in self.results if keep(r.name)]
        return sorted(usable, key=lambda r: self.goal.loss(r.score))

    def test_of(self, name: str) -> np.ndarray:
        return self.test[self.names.index(name)]

    def score(self, test_predictions: np.ndarray) -> float:
        """The benchmark's test metric for test predictions (proba or values)."""
        if self.data.problem_type == REGRESSION:
            output = test_predictions
        elif self.data.metric is AUC:
            output = test_predictions[:, 1]
        else:
            output = test_predictions.argmax(axis=1)
        return metric_score(self.data.metric, self.y_test, output)


def _parse(name: str) -> candidates.Candidate:
    return _BY_NAME[name]


_BY_NAME: dict[str, candidates.Candidate] = {}


def pool(data: Data, n_rows: int, n_features: int) -> list[candidates.Candidate]:
    """Auto's portfolio and the exact scikit-learn default random forest (100 trees)."""
    out = candidates.portfolio(data.problem_type, n_rows, n_features, has_text=False)
    extra = [candidates.Candidate("random_forest", candidates.ORDINAL)]
    return [*out, *(c for c in extra if c.name not in {o.name for o in out})]


class _Cached:
    """A :class:`search.Runner` that scores each candidate once per split: its out-of-fold
    predictions and CPU seconds, and its test predictions after a refit on every training row,
    are kept in ``stored`` by the candidate's name (so a longer search reuses a shorter one's)."""

    slots = 1

    def __init__(
        self, ctx: search.Context, test: pd.DataFrame, stored: dict, save: Callable[[], None], where: str
    ):
        self.ctx, self.test, self.stored, self.save, self.where = ctx, test, stored, save, where
        self._done: list[search.Result] = []

    def submit(self, candidate: candidates.Candidate, deadline: float, keep_model_below: float) -> None:
        _BY_NAME[candidate.name] = candidate
        name, ctx = candidate.name, self.ctx
        if f"oof:{name}" not in self.stored:
            started = time.process_time()
            result = search.evaluate(candidate, ctx)
            if result.status != search.COMPLETED:  # kept as a NaN score: the search skips it
                result.oof = np.full_like(self._shape(), np.nan)
            cpu = time.process_time() - started
            model = (
                search.fit_candidate(candidate, ctx, ctx.X, ctx.y)
                if result.status == search.COMPLETED
                else None
            )
            self.stored[f"oof:{name}"] = result.oof
            self.stored[f"test:{name}"] = (
                search.predict_held_out(model, self.test, ctx.problem_type, ctx.n_classes)
                if model is not None
                else np.full((len(self.test), *self._shape().shape[1:]), np.nan)
            )
            self.stored[f"cpu:{name}"] = np.asarray(cpu)
            print(
                f"  {self.where}: {name} {cpu:.1f} CPU s (all {time.process_time() - started:.1f})",
                flush=True,
            )
            self.save()
        oof = self.stored[f"oof:{name}"]
        y = ctx.y[ctx.plan.covered]
        ok = bool(np.isfinite(oof).all())
        score = (
            search.score_predictions(y, oof, ctx.problem_type, ctx.n_classes).get(
                ctx.objective.key, float("nan")
            )
            if ok
            else float("nan")
        )
        self._done.append(
            search.Result(
                candidate,
                search.COMPLETED if ok else search.FAILED,
                score,
                fit_seconds=float(self.stored[f"cpu:{name}"]) if f"cpu:{name}" in self.stored else 0.0,
                oof=oof if ok else None,
            )
        )

    def _shape(self) -> np.ndarray:
        n = int(self.ctx.plan.covered.sum())
        return np.zeros((n,) if self.ctx.problem_type == REGRESSION else (n, self.ctx.n_classes))

    def pending(self) -> int:
        return len(self._done)

    def next_result(self) -> search.Result:
        return self._done.pop(0)


def _save(file: Path, stored: dict[str, np.ndarray]) -> None:
    """Replaces the cache file whole: a run stopped while saving leaves the previous one."""
    partial = file.with_suffix(".partial.npz")
    np.savez(partial, **stored)
    partial.replace(file)


def load_split(data: Data, dataset: str, split: int, cache: Path, seed: int, n_candidates: int = 12) -> Split:
    """The split's candidates in the order auto's search scores them (its portfolio, then rounds
    of neighbours: ``search.Search`` with ``max_candidates=n_candidates`` and no deadline), then
    scikit-learn's default random forest when the search did not score it (a default rule's)."""
    X, y = data.X, data.y
    stratify = None if data.problem_type == REGRESSION else y
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=TEST_SIZE, random_state=SPLIT_SEEDS[split], stratify=stratify
    )
    features = preprocessing.feature_schema(X_train)
    train = preprocessing.coerce_features(X_train, features, where="train").reset_index(drop=True)
    test = preprocessing.coerce_features(X_test, features, where="test")
    classes = None if data.problem_type == REGRESSION else sorted(set(np.asarray(y_train).tolist()))
    if classes is None:
        y_enc = np.asarray(y_train, dtype=float)
        n_classes = 0
    else:
        y_enc = np.searchsorted(classes, np.asarray(y_train))
        n_classes = len(classes)
    plan = search.make_plan(y_enc, data.problem_type, seed=seed)
    goal = resolve(data.metric.auto, data.problem_type)
    ctx = search.Context(
        train, y_enc, data.problem_type, features, n_classes, goal, plan, seed, 1,
        time.monotonic(), float("inf"), threading.Event(),
    )  # fmt: skip
    # by candidate name: a longer search (larger --candidates) reuses what a shorter one scored
    file = cache / f"{dataset}-{split}-{seed}-{plan.folds}folds.npz"
    stored = dict(np.load(file, allow_pickle=False)) if file.exists() else {}
    runner = _Cached(ctx, test, stored, lambda: _save(file, stored), f"{dataset} split {split}")
    finder = search.Search(
        ctx, search_deadline=lambda _: float("inf"), max_candidates=n_candidates, runner=runner
    )
    portfolio = candidates.portfolio(data.problem_type, len(train), len(features), has_text=False)
    searched = [r.candidate for r in finder.run(portfolio) if r.oof is not None]
    extra = [c for c in pool(data, len(train), len(features)) if c.name not in {s.name for s in searched}]
    for candidate in extra:
        runner.submit(candidate, float("inf"), float("inf"))
        runner.next_result()
    names = [c.name for c in [*searched, *extra]]
    oofs = [stored[f"oof:{n}"] for n in names]
    tests = [stored[f"test:{n}"] for n in names]
    key = "defaults"
    if f"{key}:linear" not in stored:
        for model, predictions in run_default(data, X_train, np.asarray(y_train), X_test, seed).items():
            stored[f"{key}:{model}"] = np.asarray(predictions)
        _save(file, stored)
    defaults = {k.split(":", 1)[1]: v for k, v in stored.items() if k.startswith(f"{key}:")}
    cpu = sum(float(stored.get(f"cpu:{c.name}", 0.0)) for c in searched)
    out = Split(
        data, dataset, names, oofs, tests, y_enc[plan.covered], plan, np.asarray(y_test), defaults, n_classes,
        [c.name for c in searched], cpu,
    )  # fmt: skip
    out.portfolio = [c.name for c in portfolio]
    return out


# -- rules: each returns the test predictions of what it would save ------------------------------
def _weighted(split: Split, weights: dict[str, float]) -> np.ndarray:
    return sum(w * split.test_of(n) for n, w in weights.items()) / sum(weights.values())


def _held(split: Split, weights: dict[str, float]) -> np.ndarray:
    """``weights``' blend of out-of-fold predictions, normalised to sum 1, by :func:`blend.held_out`
    (the weighted sum auto itself uses)."""
    by = {r.name: r for r in split.results}
    total = sum(weights.values())
    return blend.held_out([(by[n], w / total) for n, w in weights.items()])


def _blend(split: Split, ranked: Sequence[search.Result], initial: int) -> dict[str, float]:
    weights, _ = blend.select(
        ranked, split.y, split.goal, split.data.problem_type, split.n_classes, initial=initial
    )
    return weights


def _stack_or(split: Split, ranked: Sequence[search.Result], weights: dict[str, float]) -> np.ndarray:
    """What job.run saves: the stack when it beats the best candidate and ``weights``' blend
    by more than the noise, else the blend (its test predictions)."""
    return _chosen(split, ranked, weights)[1]


def _chosen(
    split: Split, ranked: Sequence[search.Result], weights: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_stack_or`'s choice as (held-out predictions on the covered rows, test predictions)."""
    members = stack.pool(ranked, stack.supported_members(split.y, split.data.problem_type))
    meta, stacked_oof = None, None
    if len(members) >= 2:
        regression = split.data.problem_type == REGRESSION
        Z = stack.meta_features([m.oof for m in members], regression)
        from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict

        folds = (KFold if regression else StratifiedKFold)(stack.META_FOLDS, shuffle=True, random_state=0)
        model = stack.meta_model(split.data.problem_type, split.n_classes)
        method = "predict" if regression else "predict_proba"
        oof = cross_val_predict(model, Z, split.y, cv=folds, method=method)
        cv = split._cv(oof)
        simpler = choice.Option("blend", _held(split, weights), split._cv(_held(split, weights)), 0)
        stacked = choice.Option("stack", oof, cv, 1)
        picked, _, _ = choice.choose(
            [simpler, stacked], split.y, split.plan, split.goal, split.data.problem_type, split.n_classes
        )
        if picked is stacked and split.goal.better(cv, ranked[0].score):
            meta, stacked_oof = stack.fit_meta(members, split.y, split.data.problem_type), oof
    if meta is None or stacked_oof is None:
        return _held(split, weights), _weighted(split, weights)
    Zt = stack.meta_features([split.test_of(m.name) for m in members], split.data.problem_type == REGRESSION)
    if split.data.problem_type == REGRESSION:
        return stacked_oof, meta.predict(Zt)
    return stacked_oof, meta.predict_proba(Zt)


def first12(name: str) -> bool:
    return name in FIRST12


FIRST12: set[str] = set()


def rule_current(split: Split) -> np.ndarray:
    """job.run today on the first 12 candidates: sorted-init blend, then the stack if beyond noise."""
    ranked = split.ranked(first12)
    return _stack_or(split, ranked, _blend(split, ranked, blend.initial_members(len(split.y))))


def rule_blend_only(split: Split) -> np.ndarray:
    ranked = split.ranked(first12)
    return _weighted(split, _blend(split, ranked, blend.initial_members(len(split.y))))


def rule_best(split: Split) -> np.ndarray:
    return split.test_of(split.ranked(first12)[0].name)


def rule_greedy(split: Split) -> np.ndarray:
    ranked = split.ranked(first12)
    return _weighted(split, _blend(split, ranked, 1))


def _defaults(split: Split) -> list[search.Result]:
    """The candidates that are scikit-learn's defaults (HGB, RF 100 trees, linear C/alpha=1)."""
    classify = split.data.problem_type != REGRESSION
    names = {
        candidates.Candidate("gradient_boosting", candidates.ORDINAL).name,
        candidates.Candidate("random_forest", candidates.ORDINAL).name,
        candidates.Candidate("linear", candidates.ONEHOT, {"C": 1.0} if classify else {"alpha": 1.0}).name,
    }
    return [r for r in split.results if r.name in names]


def rule_sorted_init(k: int, keep: Callable[[str], bool] = first12) -> Rule:
    def rule(split: Split) -> np.ndarray:
        ranked = split.ranked(keep)
        return _weighted(split, _blend(split, ranked, k))

    return rule


def rule_noise_vs_default(within: float, inner: Rule) -> Rule:
    """``inner``'s choice unless the best default (by cross-validation) scores within ``within``
    standard errors of the sorted-initialisation blend (then the best default alone; the
    comparison uses the blend's held-out predictions, the stack's are not kept here)."""

    def rule(split: Split) -> np.ndarray:
        d = min(_defaults(split), key=lambda r: split.goal.loss(r.score))
        chosen = inner(split)
        ranked = split.ranked(first12)
        weights = _blend(split, ranked, blend.initial_members(len(split.y)))
        held = _held(split, weights)
        options = [
            choice.Option("default", d.oof, d.score, 0),
            choice.Option("chosen", held, split._cv(held), 1),
        ]
        picked, _, _ = choice.choose(
            options, split.y, split.plan, split.goal, split.data.problem_type, split.n_classes, within=within
        )
        return split.test_of(d.name) if picked.name == "default" else chosen

    return rule


def rule_best_default(split: Split) -> np.ndarray:
    """The default model with the best cross-validated score (no hindsight)."""
    d = min(_defaults(split), key=lambda r: split.goal.loss(r.score))
    return split.test_of(d.name)


def rule_blend_defaults(split: Split) -> np.ndarray:
    """Greedy blend over the three defaults only."""
    return _weighted(
        split, _blend(split, sorted(_defaults(split), key=lambda r: split.goal.loss(r.score)), 1)
    )


def by_log_loss(inner: Rule) -> Rule:
    """``inner`` with candidates ranked and blended by log loss (classification; a proper
    scoring rule, smoother than accuracy on a few hundred rows)."""

    def rule(split: Split) -> np.ndarray:
        if split.data.problem_type == REGRESSION:
            return inner(split)
        return inner(split.judged_by(Objective("LogLoss", "log_loss", split.data.problem_type)))

    return rule


def rule_within_noise_mean(within: float) -> Rule:
    """Equal-weight mean of every candidate within ``within`` standard errors of the best."""

    def rule(split: Split) -> np.ndarray:
        ranked = split.ranked(first12)
        best_losses = choice.split_losses(
            ranked[0].oof, split.y, split.plan, split.goal, split.data.problem_type, split.n_classes
        )
        keep = {}
        for r in ranked:
            losses = choice.split_losses(
                r.oof, split.y, split.plan, split.goal, split.data.problem_type, split.n_classes
            )
            margin = within * choice.noise(losses - best_losses, split.plan)
            if split.goal.loss(r.score) - split.goal.loss(ranked[0].score) <= margin:
                keep[r.name] = 1.0
        return _weighted(split, keep)

    return rule


def _crossfit(
    split: Split, pick: Callable[[list[search.Result], np.ndarray], dict[str, float]]
) -> np.ndarray:
    """Held-out predictions of a selection procedure: on each of 5 folds of the covered rows,
    ``pick`` chooses weights from the other rows' out-of-fold predictions alone, and they are
    applied to this fold's — so the procedure's own choice is scored on rows it did not see."""
    from sklearn.model_selection import KFold, StratifiedKFold

    regression = split.data.problem_type == REGRESSION
    kind = KFold if regression else StratifiedKFold
    pool = [r for r in split.results if first12(r.name)]
    by = {r.name: np.asarray(r.oof, dtype=float) for r in pool}
    out = np.zeros_like(by[pool[0].name])
    for seen, held in kind(5, shuffle=True, random_state=0).split(np.zeros(len(split.y)), split.y):
        y_seen = split.y[seen]
        sub = []
        for r in pool:
            scores = search.score_predictions(y_seen, r.oof[seen], split.data.problem_type, split.n_classes)
            sub.append(
                search.Result(
                    r.candidate, search.COMPLETED, scores.get(split.goal.key, float("nan")), oof=r.oof[seen]
                )
            )
        sub.sort(key=lambda r: split.goal.loss(r.score))
        weights = pick(sub, y_seen)
        out[held] = sum(w * by[n][held] for n, w in weights.items()) / sum(weights.values())
    return out


def rule_crossfit(inner: Rule, within: float = 0.0) -> Rule:
    """``inner`` (the blend) unless the blend procedure, cross-fitted, does not beat picking the
    best candidate, cross-fitted the same way (then the best candidate)."""

    def rule(split: Split) -> np.ndarray:
        init = blend.initial_members(len(split.y))

        def blend_pick(sub: list[search.Result], y: np.ndarray) -> dict[str, float]:
            w, _ = blend.select(sub, y, split.goal, split.data.problem_type, split.n_classes, initial=init)
            return w

        honest_blend = _crossfit(split, blend_pick)
        honest_best = _crossfit(split, lambda sub, y: {sub[0].name: 1.0})
        options = [
            choice.Option("best", honest_best, split._cv(honest_best), 0),
            choice.Option("blend", honest_blend, split._cv(honest_blend), 1),
        ]
        picked, _, _ = choice.choose(
            options, split.y, split.plan, split.goal, split.data.problem_type, split.n_classes, within=within
        )
        return inner(split) if picked.name == "blend" else rule_best(split)

    return rule


def rule_bagged(bags: int = 20, fraction: float = 0.5, rows: bool = False, with_stack: bool = False) -> Rule:
    """Ensemble selection bagged (Caruana et al. 2006): the sorted-init blend run ``bags`` times,
    each on a random ``fraction`` of the ranked candidates (``rows``: on a bootstrap of the
    covered rows instead), its weights averaged: less fitted to the few out-of-fold rows."""

    def rule(split: Split) -> np.ndarray:
        ranked = split.ranked(first12)
        rng = np.random.default_rng(0)
        initial = blend.initial_members(len(split.y))
        total: dict[str, float] = {}
        for _ in range(bags):
            if rows:
                idx = rng.integers(0, len(split.y), len(split.y))
                sub = [search.Result(r.candidate, search.COMPLETED, r.score, oof=r.oof[idx]) for r in ranked]
                weights, _ = blend.select(
                    sub, split.y[idx], split.goal, split.data.problem_type, split.n_classes, initial=initial
                )
            else:
                size = max(2, int(round(fraction * len(ranked))))
                picked = sorted(rng.choice(len(ranked), size=size, replace=False))
                weights = _blend(split, [ranked[i] for i in picked], min(initial, size))
            norm = sum(weights.values())
            for name, w in weights.items():
                total[name] = total.get(name, 0.0) + w / norm
        if with_stack:
            return _stack_or(split, ranked, total)
        return _weighted(split, total)

    return rule


# -- rules for a longer search: the first SHORT candidates in search order (a short search) and
# all of them (a long one); "short" is what auto's 12-candidate search would have scored
SHORT = 12


def _first(split: Split, k: int | None) -> Callable[[str], bool]:
    """Keeps the first ``k`` candidates the search scored (all of them for None)."""
    names = set(split.searched[:k])
    return lambda name: name in names


def _current(
    split: Split, ranked: Sequence[search.Result], initial: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """job.run's choice from ``ranked``: the sorted-init blend, then the stack if beyond noise."""
    init = blend.initial_members(len(split.y)) if initial is None else initial
    return _chosen(split, ranked, _blend(split, ranked, init))


def rule_current_on(k: int | None) -> Rule:
    """job.run today after a search of the first ``k`` candidates (None: all of them)."""

    def rule(split: Split) -> np.ndarray:
        return _current(split, split.ranked(_first(split, k)))[1]

    return rule


def rule_short_unless_long(within: float) -> Rule:
    """The current rule's choice after the short search (complexity 0) unless its choice after
    the whole search (complexity 1) beats it by more than ``within`` standard errors of their
    paired difference (:func:`choice.choose` on the two choices' held-out predictions)."""

    def rule(split: Split) -> np.ndarray:
        short = _current(split, split.ranked(_first(split, SHORT)))
        long = _current(split, split.ranked(_first(split, None)))
        options = [
            choice.Option("short", short[0], split._cv(short[0]), 0),
            choice.Option("long", long[0], split._cv(long[0]), 1),
        ]
        picked, _, _ = choice.choose(
            options, split.y, split.plan, split.goal, split.data.problem_type, split.n_classes, within=within
        )
        return short[1] if picked.name == "short" else long[1]

    return rule


def rule_short_pool_unless_long_blend(within: float) -> Rule:
    """What job.run could do at little cost: the short search's candidates unless the blend of
    all of them beats the short search's blend by more than ``within`` standard errors; then
    the current rule (blend, stack if beyond noise) on the pool chosen."""

    def rule(split: Split) -> np.ndarray:
        init = blend.initial_members(len(split.y))
        short, long = split.ranked(_first(split, SHORT)), split.ranked(_first(split, None))
        held = [_held(split, _blend(split, pool, init)) for pool in (short, long)]
        options = [
            choice.Option(n, h, split._cv(h), c)
            for n, h, c in zip(("short", "long"), held, (0, 1), strict=True)
        ]
        picked, _, _ = choice.choose(
            options, split.y, split.plan, split.goal, split.data.problem_type, split.n_classes, within=within
        )
        return _current(split, short if picked.name == "short" else long)[1]

    return rule


def rule_ladder(within: float) -> Rule:
    """The simplest of the best default by cross-validation (complexity 0), the current rule's
    choice after the short search (1) and after the whole search (2) within ``within``
    standard errors of the best of them (:func:`choice.choose`)."""

    def rule(split: Split) -> np.ndarray:
        d = min(_defaults(split), key=lambda r: split.goal.loss(r.score))
        short = _current(split, split.ranked(_first(split, SHORT)))
        long = _current(split, split.ranked(_first(split, None)))
        options = [
            choice.Option("default", d.oof, d.score, 0),
            choice.Option("short", short[0], split._cv(short[0]), 1),
            choice.Option("long", long[0], split._cv(long[0]), 2),
        ]
        picked, _, _ = choice.choose(
            options, split.y, split.plan, split.goal, split.data.problem_type, split.n_classes, within=within
        )
        return {"default": split.test_of(d.name), "short": short[1], "long": long[1]}[picked.name]

    return rule


def _losses(split: Split, result: search.Result) -> np.ndarray:
    return choice.split_losses(
        result.oof, split.y, split.plan, split.goal, split.data.problem_type, split.n_classes
    )


def _admitted(split: Split, within: Callable[[int], float]) -> list[search.Result]:
    """The short search's candidates, and each later one that beats the short search's best by
    more than ``within(k)`` standard errors of their paired difference, ``k`` the number of
    candidates compared so far (its place in the search's order)."""
    short = split.ranked(_first(split, SHORT))
    best, best_losses = short[0], _losses(split, short[0])
    admitted = list(short)
    by = {r.name: r for r in split.results}
    for k, name in enumerate(split.searched[SHORT:], start=SHORT + 1):
        r = by[name]
        margin = within(k) * choice.noise(_losses(split, r) - best_losses, split.plan)
        if split.goal.loss(best.score) - split.goal.loss(r.score) > margin:
            admitted.append(r)
    return sorted(admitted, key=lambda r: split.goal.loss(r.score))


def expected_max(k: int) -> float:
    """About the expected maximum of ``k`` standard normal scores (sqrt(2 ln k)): how far the
    luckiest of ``k`` equally good candidates is expected to look better than they are."""
    return math.sqrt(2.0 * math.log(max(k, 2)))


def rule_admit_beyond(within: Callable[[int], float]) -> Rule:
    """The current rule on :func:`_admitted`'s candidates (later ones enter only beyond noise)."""

    def rule(split: Split) -> np.ndarray:
        return _current(split, _admitted(split, within))[1]

    return rule


def rule_within_noise_of_best(within: float) -> Rule:
    """The current rule on all candidates, its blend pool cut to those within ``within``
    standard errors of the best (the rest are no better than noise away from it... or worse)."""

    def rule(split: Split) -> np.ndarray:
        ranked = split.ranked(_first(split, None))
        best = _losses(split, ranked[0])
        near = [
            r
            for r in ranked
            if split.goal.loss(r.score) - split.goal.loss(ranked[0].score)
            <= within * choice.noise(_losses(split, r) - best, split.plan)
        ]
        return _current(split, near)[1]

    return rule


def rule_growing_init(split: Split) -> np.ndarray:
    """The current rule on all candidates with sorted initialisation grown with their number:
    5 x sqrt(k / 12) best, at most the blend's pool (blend.MAX_POOL)."""
    ranked = split.ranked(_first(split, None))
    init = blend.initial_members(len(split.y))
    if init > 1:
        init = min(blend.MAX_POOL, round(init * math.sqrt(len(split.searched) / SHORT)))
    return _current(split, ranked, init)[1]


def rule_per_family(most: int) -> Rule:
    """The current rule on all candidates with at most ``most`` of each family in the pool (a
    family's neighbours are near-copies: the pool otherwise fills with its lucky ones)."""

    def rule(split: Split) -> np.ndarray:
        seen: dict[str, int] = {}
        pool = []
        for r in split.ranked(_first(split, None)):
            seen[r.candidate.family] = seen.get(r.candidate.family, 0) + 1
            if seen[r.candidate.family] <= most:
                pool.append(r)
        return _current(split, pool)[1]

    return rule


def rule_auto(split: Split) -> np.ndarray:
    """job.run's rule since the pool choice: on small data the blend draws on the portfolio's
    candidates unless the blend of all of them beats theirs beyond one standard error
    (:func:`byoc.automl.choice.short_unless_long`), then the current rule on that pool."""
    ranked = split.ranked(_first(split, None))
    initial = blend.initial_members(len(split.y))
    pool = None
    if initial > 1:
        pool = choice.short_unless_long(
            ranked, set(split.portfolio), split.y, split.plan, split.goal, split.data.problem_type,
            split.n_classes, initial=initial,
        )  # fmt: skip
    return _current(split, ranked if pool is None else pool.ranked)[1]


def long_rules() -> dict[str, Rule]:
    """Selection rules after a search longer than ``SHORT`` candidates (``--rules long``)."""
    return {
        "auto: portfolio unless all N's blend beyond 1 SE": rule_auto,
        "current, first 12": rule_current_on(SHORT),
        "current, first 24": rule_current_on(24),
        "current, first 48": rule_current_on(48),
        "current, all N": rule_current_on(None),
        "12 unless N better (0 SE)": rule_short_unless_long(0.0),
        "12 unless N beyond 1 SE": rule_short_unless_long(1.0),
        "12 unless N beyond 2 SE": rule_short_unless_long(2.0),
        "12 unless N's blend beyond 1 SE, then stack": rule_short_pool_unless_long_blend(1.0),
        "N, later enter beyond sqrt(2 ln k) SE": rule_admit_beyond(expected_max),
        "N, later enter beyond 1 SE": rule_admit_beyond(lambda _: 1.0),
        "N, pool within 1 SE of best": rule_within_noise_of_best(1.0),
        "N, sorted init 5 sqrt(k/12)": rule_growing_init,
        "N, at most 2 per family": rule_per_family(2),
        "N, at most 1 per family": rule_per_family(1),
        "default < 12 < N within 1 SE": rule_ladder(1.0),
        "default < 12 < N within 0.5 SE": rule_ladder(0.5),
        "best default by CV": rule_best_default,
    }


def rules() -> dict[str, Rule]:
    return {
        "current (blend init5 + stack)": rule_current,
        "blend init5, no stack": rule_blend_only,
        "best candidate": rule_best,
        "greedy blend init1": rule_greedy,
        "blend init3": rule_sorted_init(3),
        "blend init all12": rule_sorted_init(12),
        "best default by CV": rule_best_default,
        "greedy blend of defaults": rule_blend_defaults,
        "init5 unless default within 1 SE": rule_noise_vs_default(1.0, rule_blend_only),
        "current unless default within 1 SE": rule_noise_vs_default(1.0, rule_current),
        "current unless default within 0.5 SE": rule_noise_vs_default(0.5, rule_current),
        "LL: current": by_log_loss(rule_current),
        "LL: blend init5": by_log_loss(rule_blend_only),
        "LL: best candidate": by_log_loss(rule_best),
        "LL: greedy init1": by_log_loss(rule_greedy),
        "LL: blend init3": by_log_loss(rule_sorted_init(3)),
        "mean within 1 SE": rule_within_noise_mean(1.0),
        "LL: mean within 1 SE": by_log_loss(rule_within_noise_mean(1.0)),
        "current unless cross-fitted best candidate wins": rule_crossfit(rule_current),
        "current unless cross-fitted best within 1 SE": rule_crossfit(rule_current, 1.0),
        "bagged blend (half the candidates x20)": rule_bagged(),
        "bagged blend (half x20) + stack": rule_bagged(with_stack=True),
        "bagged blend (bootstrap rows x20)": rule_bagged(rows=True),
        "bagged blend (bootstrap rows x20) + stack": rule_bagged(rows=True, with_stack=True),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--datasets", default="wine,breast_cancer,diabetes")
    parser.add_argument("--splits", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0, help="auto's seed (the plan's folds)")
    parser.add_argument(
        "--candidates", type=int, default=12, help="how many candidates auto's search scores (its order)"
    )
    parser.add_argument(
        "--rules", choices=("short", "long"), default="short",
        help="short: rules on the first 12 candidates; long: rules for a longer search (--candidates N)",
    )  # fmt: skip
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "byoc-automl-selection")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    table: dict[str, dict[str, list[float]]] = {}
    for dataset in args.datasets.split(","):
        data = LOADERS[dataset]()
        for split_number in range(args.splits):
            split = load_split(data, dataset, split_number, args.cache, args.seed, args.candidates)
            print(
                f"{dataset} split {split_number}: {len(split.searched)} candidates, {split.cpu:.0f} CPU s",
                flush=True,
            )
            FIRST12.clear()
            FIRST12.update(split.searched[:SHORT])
            column = table.setdefault(dataset, {})
            hindsight = [
                split.score(np.asarray(p) if p.ndim > 1 else _as_proba(split, p))
                for p in split.defaults.values()
            ]
            pick = min if data.problem_type == REGRESSION else max
            column.setdefault("best default (hindsight)", []).append(pick(hindsight))
            for name, score in zip(split.defaults, hindsight, strict=True):
                column.setdefault(f"default: {name}", []).append(score)
            for name, rule in (long_rules() if args.rules == "long" else rules()).items():
                column.setdefault(name, []).append(split.score(rule(split)))
    rows = sorted({r for c in table.values() for r in c}, key=list(next(iter(table.values()))).index)
    frame = pd.DataFrame({d: {r: np.mean(c[r]) for r in rows} for d, c in table.items()})
    pd.set_option("display.width", 200)
    print(frame.round(4).to_string())
    for dataset, column in table.items():
        print(dataset, {r: [round(s, 4) for s in v] for r, v in column.items()})


def _as_proba(split: Split, output: np.ndarray) -> np.ndarray:
    """run_default returns the metric's input (positive-class probability, labels or values)."""
    if split.data.problem_type == REGRESSION:
        return output
    if split.data.metric is AUC:
        return np.column_stack([1 - output, output])
    onehot = np.zeros((len(output), split.n_classes))
    onehot[np.arange(len(output)), np.searchsorted(sorted(set(split.y_test.tolist())), output)] = 1
    return onehot


if __name__ == "__main__":
    main()
