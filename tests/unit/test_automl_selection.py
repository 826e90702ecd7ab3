"""benchmarks/automl_selection.py's candidate pool: auto's search order, cached by name.

No candidate is fitted: ``search.evaluate`` and the refit are stand-ins that count their calls.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import automl_selection as selection
from byoc import preprocessing
from byoc.artifact import REGRESSION
from byoc.automl import candidates, search
from byoc.automl.objective import resolve


def _context(n: int = 60) -> search.Context:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    features = preprocessing.feature_schema(X)
    X = preprocessing.coerce_features(X, features, where="train")
    y = X["a"].to_numpy() * 3 + rng.normal(size=n)
    plan = search.make_plan(y, REGRESSION, seed=0)
    goal = resolve("RMSE", REGRESSION)
    return search.Context(
        X, y, REGRESSION, features, 0, goal, plan, 0, 1, time.monotonic(), float("inf"), threading.Event()
    )


def _search(
    ctx: search.Context, stored: dict, n: int, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], int]:
    """The names the search scores with ``n`` candidates, and how many it evaluated anew."""
    calls = []

    def evaluate(candidate: candidates.Candidate, ctx: search.Context) -> search.Result:
        calls.append(candidate.name)
        noise = np.random.default_rng(abs(hash(candidate.name)) % 2**32).normal(size=len(ctx.y))
        oof = ctx.y[ctx.plan.covered] + noise[ctx.plan.covered]
        score = search.score_predictions(ctx.y[ctx.plan.covered], oof, REGRESSION, 0)["rmse"]
        return search.Result(candidate, search.COMPLETED, score, oof=oof)

    monkeypatch.setattr(search, "evaluate", evaluate)
    monkeypatch.setattr(search, "fit_candidate", lambda c, ctx, X, y: None)
    monkeypatch.setattr(search, "predict_held_out", lambda m, X, p, k: np.zeros(len(X)))
    runner = selection._Cached(ctx, ctx.X.iloc[:5], stored, lambda: None, "test")
    finder = search.Search(ctx, search_deadline=lambda _: float("inf"), max_candidates=n, runner=runner)
    portfolio = candidates.portfolio(REGRESSION, len(ctx.X), 2, has_text=False)
    return [r.name for r in finder.run(portfolio)], len(calls)


def test_the_pool_is_the_search_order_and_a_longer_search_reuses_a_shorter_ones(monkeypatch) -> None:
    ctx = _context()
    portfolio = [c.name for c in candidates.portfolio(REGRESSION, len(ctx.X), 2, has_text=False)]
    stored: dict = {}
    short, evaluated = _search(ctx, stored, len(portfolio) + 2, monkeypatch)
    assert short[: len(portfolio)] == portfolio  # the portfolio first, then neighbours
    assert len(short) == len(portfolio) + 2 and evaluated == len(short)
    longer, evaluated = _search(ctx, stored, len(portfolio) + 6, monkeypatch)
    assert longer[: len(short)] == short  # the same search, carried on
    assert evaluated == 4  # only the candidates the shorter search had not scored


def test_expected_max_grows_like_sqrt_2_ln_k() -> None:
    assert selection.expected_max(1) == selection.expected_max(2)
    assert selection.expected_max(12) == pytest.approx(2.229, abs=1e-3)
    assert selection.expected_max(40) == pytest.approx(2.716, abs=1e-3)
