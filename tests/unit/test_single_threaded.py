"""byoc.serving.inference.single_threaded: every n_jobs in a served model set to 1, the fitted
members an AutoML blend or stack, or byoc's ensemble, holds out of ``get_params``' reach too.

A forest predicting on several threads adds its trees' probabilities in the order the threads
finish, so its answer moves by an ulp from one call to the next: a random forest left at
``n_jobs=-1`` inside an AutoML blend made the served probabilities differ from the pipeline's
(tests/integration/test_agreement.py, ``auto``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from byoc.algorithms.ensemble import EnsembleClassifier
from byoc.automl.blend import BlendClassifier
from byoc.automl.stack import StackClassifier
from byoc.serving.inference import single_threaded


def _member(final: Any) -> Pipeline:
    return Pipeline([("preprocess", "passthrough"), ("model", final)])


def _n_jobs(obj: Any, seen: set[int] | None = None) -> list[Any]:
    """Every n_jobs reachable from ``obj`` through attributes, lists and tuples."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, (str, bytes, np.ndarray, type)):
        return []
    seen.add(id(obj))
    if isinstance(obj, (list, tuple)):
        return [n for item in obj for n in _n_jobs(item, seen)]
    if not hasattr(obj, "get_params"):
        return []
    found = [obj.n_jobs] if hasattr(obj, "n_jobs") else []
    return found + [n for value in vars(obj).values() for n in _n_jobs(value, seen)]


def test_a_blends_members_run_on_one_thread():
    blend = BlendClassifier(
        [
            ("forest", _member(RandomForestClassifier(n_jobs=-1)), 0.5333333333333333),
            ("knn", _member(KNeighborsClassifier(n_jobs=2)), 0.23333333333333334),
            ("linear", _member(LogisticRegression()), 0.23333333333333334),
        ],
        n_classes=3,
    )
    model = _member(blend)
    assert sorted(map(str, _n_jobs(model))) == ["-1", "2", "None"]
    assert single_threaded(model) is model
    assert sorted(map(str, _n_jobs(model))) == ["1", "1", "None"]


def test_a_stacks_members_and_meta_model_run_on_one_thread():
    stack = StackClassifier(
        [("forest", _member(RandomForestClassifier(n_jobs=-1))), ("knn", _member(KNeighborsClassifier()))],
        meta=LogisticRegression(n_jobs=-1),
        n_classes=2,
    )
    model = single_threaded(_member(stack))
    assert sorted(map(str, _n_jobs(model))) == ["1", "1", "None"]


def test_the_fitted_members_of_byocs_ensemble_run_on_one_thread():
    X = np.arange(40, dtype=float).reshape(20, 2)
    y = np.arange(20) % 2
    ensemble = EnsembleClassifier(
        [("forest", RandomForestClassifier(n_estimators=3, n_jobs=-1, random_state=0))], cv=2
    ).fit(X, y)
    assert ensemble.estimators_[0].n_jobs == -1
    single_threaded(_member(ensemble))
    assert ensemble.estimators_[0].n_jobs == 1 and ensemble.estimators[0][1].n_jobs == 1
