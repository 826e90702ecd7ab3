"""An AutoML blend's or stack's members compiled one by one, and their row path in the server
(byoc.serving.row_members), against the pipeline.

Blends and stacks are assembled from byoc's own fitted member pipelines as the AutoML job
assembles them; their compiled forms are built and attached as training and the server do.
Hostile request rows must get, field by field and to the bit, the answers the (compiled)
pipeline gives on the same rows; and compiled inference must have converted every member.
"""

from __future__ import annotations

import functools
import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.pipeline import Pipeline
from test_row_ensemble import answers, assert_row_path_agrees, assert_same, rows_for, training_frame

from byoc import algorithms, artifact, compiled
from byoc.automl import blend, stack
from byoc.hyperparameters import resolve
from byoc.preprocessing import coerce_features, feature_schema
from byoc.serving.inference import Predictor

pytestmark = pytest.mark.slow  # its module fixture fits and compiles every blend and stack: it starts first

# member -> its hyperparameters (small, so the test is quick)
MEMBERS = {
    "random_forest": {"n_estimators": 8, "n_jobs": 1},
    "gradient_boosting": {"max_iter": 8},
    "linear": {},
    "extra_trees": {"n_estimators": 8, "n_jobs": 1},
}
PROBLEMS = ["binary_classification", "multiclass_classification", "regression"]
KINDS = ["blend", "stack"]
COLUMNS = ["mixed", "numeric"]


def _target(X: pd.DataFrame, problem_type: str) -> np.ndarray:
    if problem_type == "regression":
        return X["age"].fillna(0).to_numpy() + (X["job"] == "a") * 5.0
    y = ((X["job"] == "a") | (X["age"] > 45)).astype(int).to_numpy()
    return y + (X["city"] == "c3") if problem_type == "multiclass_classification" else y


def _assembled(kind: str, problem_type: str, members: list[tuple[str, Any]], X: Any, y: np.ndarray) -> Any:
    n_classes = 0 if problem_type == "regression" else len(np.unique(y))
    if kind == "blend":
        return blend.assemble(
            [(name, m, w) for (name, m), w in zip(members, (0.5, 0.25, 0.25, 1.0), strict=True)],
            problem_type,
            n_classes,
        )
    regression = problem_type == "regression"
    predictions = [m.predict(X) if regression else m.predict_proba(X) for _, m in members]
    meta = stack.meta_model(problem_type, n_classes).fit(stack.meta_features(predictions, regression), y)
    return stack.assemble(members, meta, problem_type, n_classes)


def frame_of(columns: str) -> pd.DataFrame:
    """The mixed training frame, or (``numeric``) its numbers and twelve more columns: every member's
    encoder output dense, so a linear member's answer is a dense matrix product (BLAS)."""
    frame = training_frame()
    if columns == "numeric":
        rng = np.random.default_rng(3)
        extra = pd.DataFrame(rng.normal(size=(len(frame), 12)), columns=[f"n{i}" for i in range(12)])
        frame = pd.concat([frame[["age", "income"]], extra], axis=1)
    return frame


def fitted(kind: str, problem_type: str, columns: str = "mixed") -> tuple[Any, list[Any], pd.DataFrame]:
    """The blend or stack in its pipeline, not yet compiled, its features and training frame."""
    whole = training_frame()
    y = _target(coerce_features(whole, feature_schema(whole), where="train"), problem_type)
    frame = frame_of(columns)
    features = feature_schema(frame)
    X = coerce_features(frame, features, where="train")
    members = []
    for name in MEMBERS:
        params = resolve({"algorithm": name, **MEMBERS[name]})
        members.append((f"{name}-x", algorithms.build(problem_type, params, features).fit(X, y)))
    model = _assembled(kind, problem_type, members, X, y)
    return Pipeline([("preprocess", "passthrough"), ("model", model)]), features, X


@functools.cache
def trained(
    kind: str, problem_type: str, tmp: str, columns: str = "mixed"
) -> tuple[artifact.ModelArtifact, compiled.CompiledModel]:
    pipe, features, X = fitted(kind, problem_type, columns)
    built = compiled.build(pipe, [X])
    for name, data in built.files().items():
        (Path(tmp) / name).write_bytes(data)
    classes = [] if problem_type == "regression" else [str(c) for c in pipe.steps[-1][1].classes_]
    metadata = {
        "problem_type": problem_type,
        "classes": classes,
        "features": [f.to_dict() for f in features],
        "compiled": built.entry,
    }
    return artifact.ModelArtifact(pipe, metadata, Path(tmp)), built


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[tuple[str, str, str, bool], tuple[Predictor, Predictor]]:
    """Per (kind, problem type, columns, compiled inference on): a Predictor on the row path and
    one on the pipeline."""
    out = {}
    for kind, problem_type, columns in itertools.product(KINDS, PROBLEMS, COLUMNS):
        model, _ = trained(kind, problem_type, str(tmp_path_factory.mktemp(kind)), columns)
        for on in (True, False):
            fast, slow = Predictor(model, compiled_inference=on), Predictor(model, compiled_inference=on)
            assert (fast.compiled is not None) == on
            assert fast.enable_fast_path() and fast.row_ensemble is not None, (
                kind,
                problem_type,
                columns,
                on,
            )
            out[kind, problem_type, columns, on] = fast, slow
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("problem_type", PROBLEMS)
def test_every_member_is_compiled_and_served_compiled(models, kind, problem_type):
    fast, _ = models[kind, problem_type, "mixed", True]
    assert set(fast.compiled.compiled) == {f"member:{name}-x" for name in MEMBERS}
    members = dict(fast.row_ensemble.member_pipelines())
    assert all(type(m.final).__module__.startswith("byoc.compiled") for m in members.values()), members


@pytest.mark.parametrize("on", [True, False], ids=["compiled", "scikit-learn"])
@pytest.mark.parametrize("columns", COLUMNS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("problem_type", PROBLEMS)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_rows_get_the_pipelines_answers(models, kind, problem_type, columns, on, data):
    """Batches of 1-5 rows, and each row alone, answered by the row path and by the pipeline:
    the same bits (a linear member's dense product once differed by the matrix's layout)."""
    fast, slow = models[kind, problem_type, columns, on]
    rows = data.draw(rows_for(fast))
    if assert_row_path_agrees(fast, slow, rows):
        for row in rows:  # one row alone, as a single-row request
            assert_same(answers(fast, [row]), answers(slow, [row]))


def test_compiled_members_answer_within_the_tolerance_of_scikit_learn(tmp_path):
    model, _ = trained("blend", "binary_classification", str(tmp_path))
    X = coerce_features(training_frame(), model.features, where="test")
    loaded = compiled.load(model.estimator, model.metadata, model.path)
    np.testing.assert_allclose(
        loaded.pipeline.predict_proba(X),
        model.estimator.predict_proba(X),
        rtol=compiled.RTOL,
        atol=compiled.ATOL,
    )


def test_members_not_reached_by_the_deadline_stay_scikit_learn_saying_why():
    pipe, _, X = fitted("blend", "regression")
    built = compiled.build(pipe, [X], deadline=time.monotonic() - 1)
    steps = built.entry["steps"]
    assert [s["slot"] for s in steps] == [f"member:{name}-x" for name in MEMBERS]
    assert {s["backend"] for s in steps} == {compiled.SCIKIT_LEARN}
    assert all("time budget ran out" in s["reason"] for s in steps)
    assert built.files() == {}
