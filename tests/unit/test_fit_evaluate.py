"""fit.evaluate: one channel's metrics, each prediction computed once."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from byoc import algorithms, fit, metrics
from byoc.hyperparameters import resolve
from byoc.preprocessing import coerce_features, feature_schema


def _channel(problem_type: str, seed: int) -> fit.Encoded:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "a": rng.normal(size=400),
            "b": np.where(rng.random(400) < 0.2, np.nan, np.round(rng.normal(size=400), 1)),
            "colour": rng.choice(["red", "green", "blue"], 400).astype(object),
        }
    )
    score = X["a"].to_numpy() + (X["colour"] == "red").to_numpy() + rng.normal(0, 0.8, 400)
    y = (score > 0.5) if problem_type == "binary_classification" else np.digitize(score, [0.0, 1.0])
    return fit.Encoded(X, y.astype(np.int64))


@pytest.mark.parametrize("problem_type", ["binary_classification", "multiclass_classification"])
@pytest.mark.parametrize("algorithm", ["random_forest", "extra_trees", "gradient_boosting", "linear"])
def test_a_forests_labels_come_from_its_one_predict_proba(problem_type, algorithm):
    """A forest classifier's predict is the class of its predict_proba's largest column, so
    evaluate takes the labels from the one predict_proba it computes (before: a second walk of
    every tree for predict).  The metrics are those of predict and predict_proba, to the bit;
    other models, whose predict is not that, still compute both."""
    train = _channel(problem_type, 3)
    features = feature_schema(train.X)
    X = coerce_features(train.X, features, where="train")
    small = {"random_forest": {"n_estimators": 15}, "extra_trees": {"n_estimators": 15}}
    params = resolve({"algorithm": algorithm, **small.get(algorithm, {})})
    pipeline = algorithms.build(problem_type, params, features).fit(X, train.y)
    data = fit.Encoded(coerce_features(_channel(problem_type, 4).X, features, where="validation"), train.y)
    final = pipeline.steps[-1][1]
    if "n_jobs" in final.get_params():  # a forest's sums over its trees in one order
        final.set_params(n_jobs=1)
    calls: list[int] = []
    real = final.predict_proba
    final.predict_proba = lambda X: calls.append(len(X)) or real(X)
    n_classes = int(train.y.max()) + 1
    expected = metrics.compute(
        problem_type, data.y, pipeline.predict(data.X), pipeline.predict_proba(data.X), n_classes
    )
    before, calls[:] = len(calls), []
    got = fit.evaluate(problem_type, pipeline, data, n_classes)
    assert got == expected and list(got) == list(expected)
    assert len(calls) == (1 if algorithm in ("random_forest", "extra_trees") else before)


@pytest.mark.parametrize(
    ("algorithm", "set_here", "named"),
    [
        # each value is another algorithm's default, not this one's: it was set away from the default
        ("decision_tree", {"min_samples_leaf": "20"}, "min_samples_leaf=20"),
        ("linear", {"C": "1.0"}, "C=1.0"),
        ("random_forest", {"bootstrap": "false"}, "bootstrap=False"),
        ("gradient_boosting", {"min_samples_leaf": "1"}, "min_samples_leaf=1"),
    ],
)
def test_the_warning_names_what_the_job_set_against_its_own_algorithms_defaults(algorithm, set_here, named):
    from types import SimpleNamespace

    given = {"algorithm": algorithm, **set_here}
    params = resolve(given)
    inputs = SimpleNamespace(env=SimpleNamespace(hyperparameters=given))
    assert named in fit._likely_cause(inputs, params)  # type: ignore[arg-type]
