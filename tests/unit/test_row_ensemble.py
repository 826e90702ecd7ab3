"""The ensemble's row path in the server (byoc.serving.row_ensemble) against its pipeline.

byoc's ensembles are trained with every built-in member, their compiled forms attached as the
server attaches them, on a frame whose text columns give the members' coders different fitted
states (one column has more categories than the one-hot cap, one more than the trees' cap), so
some steps are shared between members and some are not.  Hostile request rows (missing-value
tokens, unseen categories, numbers as text, numbers for text, huge and tiny numbers, -0.0)
must get, field by field and to the bit, the answers the pipeline gives on the same rows.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byoc import algorithms, artifact, compiled
from byoc.errors import SchemaError
from byoc.hyperparameters import resolve
from byoc.preprocessing import CategoryCoder, coerce_features, feature_schema
from byoc.serving.inference import Predictor
from byoc.serving.output import LABELS, PREDICTED_LABEL, PROBABILITIES, PROBABILITY
from byoc.serving.row_ensemble import RowEnsemble, same_fitted

pytestmark = pytest.mark.slow  # its module fixtures fit every member as an ensemble: it starts first

MEMBERS = ["random_forest", "extra_trees", "gradient_boosting", "linear", "knn", "decision_tree"]
ROWS = 400
# binary: one score per row for linear (summed as Python floats), forests written for class 1 alone
PROBLEMS = ["binary_classification", "multiclass_classification", "regression"]
TOKENS = ["None", "NA", "<NA>", "null", "NaN", "nan", "true", "FALSE", "yes", "", " ", "007", "1.0", "café"]


def training_frame(seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, ROWS),
            "income": rng.lognormal(10, 1, ROWS),
            "job": rng.choice(list("abcdefgh"), ROWS).astype(object),
            "city": [f"c{k}" for k in rng.integers(0, 130, ROWS)],  # above the one-hot cap (100)
            "shop": [f"s{k}" for k in rng.permutation(ROWS) % 300],  # above the trees' caps too
        }
    )
    frame.loc[::6, "age"] = np.nan
    frame.loc[::9, "job"] = np.nan
    frame.loc[::11, "city"] = "None"
    return frame


@functools.cache
def trained(problem_type: str, tmp: str, members: tuple[str, ...] = tuple(MEMBERS)) -> artifact.ModelArtifact:
    """The ensemble of ``members`` (every built-in one), trained once, its compiled forms loaded as
    the server does."""
    frame = training_frame()
    features = feature_schema(frame)
    X = coerce_features(frame, features, where="train")
    if problem_type == "regression":
        y = X["age"].fillna(0).to_numpy() + (X["job"] == "a") * 5.0
    elif problem_type == "binary_classification":
        y = ((X["job"] == "a") | (X["age"] > 45)).astype(int).to_numpy()
    else:
        y = ((X["job"] == "a") | (X["age"] > 45)).astype(int).to_numpy() + (X["city"] == "c3")
    params = resolve(
        {"algorithm": "ensemble", "n_estimators": 6, "max_iter": 8, "cv_folds": 2, "n_jobs": 1}
        | {"ensemble_members": list(members)}
    )
    pipe = algorithms.build(problem_type, params, features).fit(X, y)
    built = compiled.build(pipe, [X])
    directory = Path(tmp)
    for name, data in built.files().items():
        (directory / name).write_bytes(data)
    loaded = compiled.load(pipe, {"compiled": built.entry}, directory)
    classes = [] if problem_type == "regression" else [str(c) for c in np.unique(y)]
    metadata = {"problem_type": problem_type, "classes": classes, "features": [f.to_dict() for f in features]}
    return artifact.ModelArtifact(loaded.pipeline, metadata)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, tuple[Predictor, Predictor]]:
    """Per problem type: a Predictor on the row path and one on the pipeline."""
    out = {}
    for problem_type in PROBLEMS:
        model = trained(problem_type, str(tmp_path_factory.mktemp(problem_type)))
        fast, slow = Predictor(model), Predictor(model)
        assert fast.enable_fast_path() and isinstance(fast.row_ensemble, RowEnsemble)
        out[problem_type] = fast, slow
    return out


def cells(seen: list[str]) -> st.SearchStrategy:
    return st.one_of(
        st.sampled_from(seen),
        st.sampled_from(TOKENS + [None, "byoc-unseen"]),
        st.text(max_size=4),
        st.integers(-(10**20), 10**20),
        st.floats(allow_nan=True, allow_infinity=False, width=32),
        st.sampled_from([-0.0, 0.0, 1e-300, -3.4e38, 3.4e38, True, False]),
    )


def rows_for(predictor: Predictor) -> st.SearchStrategy:
    columns = [cells(list(feature.categories) or ["x"]) for feature in predictor.schema.features]
    return st.lists(st.tuples(*columns).map(list), min_size=1, max_size=5)


def answers(predictor: Predictor, rows: list[list[object]]) -> dict[str, object]:
    fields = tuple(predictor.available_fields)
    prediction = predictor.predict(predictor.schema.from_rows(rows), fields)
    return {field: prediction.values[field] for field in fields}


def assert_same(got: dict[str, object], want: dict[str, object]) -> None:
    assert got.keys() == want.keys()
    for field, value in want.items():
        if field in (PROBABILITY, PROBABILITIES) or not isinstance(value, list):
            a, b = np.asarray(got[field]), np.asarray(value)
            assert a.dtype == b.dtype and np.array_equal(a, b), field  # bits: no tolerance
            assert np.array_equal(np.signbit(a), np.signbit(b)), field
        else:
            assert got[field] == value, field


@pytest.mark.parametrize("problem_type", PROBLEMS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_rows_get_the_pipelines_answers(models, problem_type, data):
    fast, slow = models[problem_type]
    assert_row_path_agrees(fast, slow, data.draw(rows_for(fast)))


def assert_row_path_agrees(fast: Predictor, slow: Predictor, rows: list[list[object]]) -> bool:
    """``fast`` (the row path) answers ``rows`` as ``slow`` (the pipeline) does, to the bit, or
    both refuse them; False when refused."""
    try:
        want = answers(slow, rows)
    except SchemaError:  # a value the schema refuses (e.g. a word for a number): refused alike
        with pytest.raises(SchemaError):
            answers(fast, rows)
        return False
    assert_same(answers(fast, rows), want)
    return True


@pytest.mark.parametrize("problem_type", PROBLEMS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_tree_members_run_in_one_session_with_the_same_bits(models, problem_type, data):
    """The forests and the gradient boosting run as the parts of one onnxruntime session, the
    only one the worker holds for them (the pipeline's members run alone through those parts):
    together on a request's rows they answer, to the bit, as each member alone."""
    fast, slow = models[problem_type]
    row_ensemble = fast.row_ensemble
    joint = row_ensemble.joint
    assert joint is not None and len(joint.parts) == 3
    assert sorted(part for *_, part in row_ensemble.members if part is not None) == [0, 1, 2]
    members = [member.steps[-1][1] for member in slow.estimator.steps[-1][1].estimators_]
    assert {id(final.run.session) for final in members if hasattr(final, "run")} == {id(joint.session)}
    rows = data.draw(rows_for(fast))
    try:
        want = answers(slow, rows)
    except SchemaError:
        return
    assert_same(answers(fast, rows), want)
    try:
        row_ensemble.joint = None  # each member alone, through its part
        assert_same(answers(fast, rows), want)
    finally:
        row_ensemble.joint = joint


def test_each_field_alone_gets_the_pipelines_answer(models):
    fast, slow = models["multiclass_classification"]
    rows = [[None, "1e3", "a", "c3", "s1"], [35.5, None, "zz", None, "None"], [-0.0, 12.0, "", "c7", "s299"]]
    for field in (PREDICTED_LABEL, PROBABILITY, PROBABILITIES, LABELS):
        got = fast.predict(fast.schema.from_rows(rows), (field,))
        want = slow.predict(slow.schema.from_rows(rows), (field,))
        assert_same(got.values, want.values)


def _coders(row_ensemble: RowEnsemble) -> list[CategoryCoder]:
    return [step for step in row_ensemble.encoding._steps if type(step) is CategoryCoder]


def test_members_share_the_steps_they_fitted_alike(models):
    """Six members, three distinct text codings (the caps of 100, 250 and 254 categories group
    different rare categories), each run once; three distinct encoded matrices: the three
    trees' (the same cap, the same imputed medians), boosting's and knn's (dense: it searches
    dense rows); linear scores the columns themselves (LinearRows: no one-hot matrix)."""
    fast, _ = models["multiclass_classification"]
    coders = _coders(fast.row_ensemble)
    assert len(coders) == 3
    assert not any(same_fitted(a, b) for i, a in enumerate(coders) for b in coders[i + 1 :])
    members = fast.estimator.steps[-1][1].estimators_
    linear, knn = (dict(members[k].steps[0][1].named_transformers_["categorical"].steps) for k in (3, 4))
    assert linear["onehot"] is not knn["onehot"] and same_fitted(linear["onehot"], knn["onehot"])
    encoded = {node for node, *_ in fast.row_ensemble.members}
    assert len(fast.row_ensemble.members) == 6 and len(encoded) == 4
    assert [type(final).__name__ for _, final, *_ in fast.row_ensemble.members].count("_OnBlocks") == 1


def test_a_member_without_weight_is_not_run(models, tmp_path):
    """As in the ensemble: a member of weight 0 is not asked (its answer could be anything)."""
    import copy

    fast, _ = models["multiclass_classification"]
    pipeline = fast.estimator
    ensemble = copy.copy(pipeline.steps[-1][1])
    ensemble.weights_ = np.array([0.4, 0.0, 0.3, 0.0, 0.3, 0.0])
    model = artifact.ModelArtifact(
        type(pipeline)([pipeline.steps[0], (pipeline.steps[-1][0], ensemble)]), fast.model.metadata
    )
    row_path, pipeline_path = Predictor(model), Predictor(model)
    assert row_path.enable_fast_path()
    assert len(row_path.row_ensemble.members) == 3
    rows = [[None, "1e3", "a", "c3", "s1"], [35.5, None, "zz", None, "None"]]
    assert_same(answers(row_path, rows), answers(pipeline_path, rows))
    assert math.isclose(row_path.row_ensemble.total_weight, 1.0)


# byoc's default members: a binary classifier's or a regressor's single row is voted in Python floats
ONE_ROW_MEMBERS = ("random_forest", "gradient_boosting", "linear")


@pytest.fixture(scope="module")
def one_row_models(tmp_path_factory) -> dict[str, tuple[Predictor, Predictor]]:
    out = {}
    for problem_type in ("binary_classification", "regression"):
        model = trained(problem_type, str(tmp_path_factory.mktemp(problem_type)), ONE_ROW_MEMBERS)
        fast, slow = Predictor(model), Predictor(model)
        assert fast.enable_fast_path() and fast.row_ensemble.one_row is not None
        out[problem_type] = fast, slow
    return out


@pytest.mark.parametrize("problem_type", ["binary_classification", "regression"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_one_row_is_voted_in_python_floats_with_the_same_bits(one_row_models, problem_type, data):
    """A single row (RowEnsemble._one_row): the pipeline's answer, field by
    field and to the bit, as the arrays' way gives it."""
    fast, slow = one_row_models[problem_type]
    (row,) = data.draw(
        st.lists(st.tuples(*(c for c in rows_for_columns(fast))).map(list), min_size=1, max_size=1)
    )
    try:
        want = answers(slow, [row])
    except SchemaError:
        return
    assert_same(answers(fast, [row]), want)
    plan, fast.row_ensemble.one_row = fast.row_ensemble.one_row, None
    try:
        assert_same(answers(fast, [row]), want)  # the arrays' way, the same bits
    finally:
        fast.row_ensemble.one_row = plan


def rows_for_columns(predictor: Predictor) -> list[st.SearchStrategy]:
    return [cells(list(feature.categories) or ["x"]) for feature in predictor.schema.features]


def _reweighted(fast: Predictor, weights: list[float]) -> tuple[Predictor, Predictor]:
    """A Predictor on the row path and one on the pipeline for ``fast``'s model with the ensemble's
    weights set to ``weights`` (a member of weight 0 does not vote)."""
    import copy

    pipeline = fast.estimator
    ensemble = copy.copy(pipeline.steps[-1][1])
    ensemble.weights_ = np.array(weights)
    model = artifact.ModelArtifact(
        type(pipeline)([pipeline.steps[0], (pipeline.steps[-1][0], ensemble)]), fast.model.metadata
    )
    row_path = Predictor(model)
    assert row_path.enable_fast_path() and isinstance(row_path.row_ensemble, RowEnsemble)
    return row_path, Predictor(model)


ONE_ROWS = [[None, "1e3", "a", "c3", "s1"], [35.5, None, "zz", None, "None"], [-0.0, 12.0, "", "c7", "s299"]]


@pytest.mark.parametrize(
    ("problem_type", "weights", "planned"),
    [
        # MEMBERS: random_forest, extra_trees, gradient_boosting, linear, knn, decision_tree; the
        # forests and boosting vote together (their joint session's parts all vote)
        (
            "binary_classification",
            [0.3, 0.1, 0.3, 0.3, 0.0, 0.0],
            True,
        ),  # byoc's default members and extra_trees
        ("regression", [0.3, 0.1, 0.3, 0.3, 0.0, 0.0], True),
        ("binary_classification", [0.3, 0.1, 0.3, 0.1, 0.2, 0.0], False),  # knn votes
        ("regression", [0.3, 0.1, 0.3, 0.1, 0.0, 0.2], False),  # a single tree votes
        ("multiclass_classification", [0.3, 0.1, 0.3, 0.3, 0.0, 0.0], False),  # three classes
    ],
)
def test_one_row_plan_needs_every_member_known(models, problem_type, weights, planned):
    """Only a binary classifier or a regressor whose voting members are all of the kinds it knows
    (the joint session's forests and boosting, compiled linear models) votes a single row in
    Python floats; with knn or a single tree voting, or three classes, every row takes the
    arrays' way.  Either way a single row gets the pipeline's answer."""
    fast, _ = models[problem_type]
    assert fast.row_ensemble.one_row is None  # all six members vote
    row_path, pipeline_path = _reweighted(fast, weights)
    assert (row_path.row_ensemble.one_row is not None) == planned
    for row in ONE_ROWS:
        assert_same(answers(row_path, [row]), answers(pipeline_path, [row]))


@pytest.mark.parametrize("problem_type", ["binary_classification", "regression"])
def test_a_one_row_vote_that_differs_at_load_is_dropped(one_row_models, problem_type, monkeypatch):
    """The load-time check (Predictor._enable_ensemble_path) asks the one-row vote every check row
    alone: a member's one-row answer one ulp off (a forest's means for a classifier, the linear
    model's score for a regressor) and the one-row vote is dropped, while the arrays' way
    stays; single rows still get the pipeline's answers."""
    from byoc.compiled_linear import LinearRows
    from byoc.compiled_onnx import ForestEstimator

    fast, slow = one_row_models[problem_type]
    if problem_type == "binary_classification":
        means = ForestEstimator.row_means
        monkeypatch.setattr(
            ForestEstimator,
            "row_means",
            lambda self, sums: [np.nextafter(m, np.inf) for m in means(self, sums)],
        )
    else:
        score = LinearRows.row_score
        monkeypatch.setattr(
            LinearRows, "row_score", lambda self, values: np.nextafter(score(self, values), np.inf)
        )
    perturbed = Predictor(fast.model)
    assert perturbed.enable_fast_path() and isinstance(perturbed.row_ensemble, RowEnsemble)
    assert perturbed.row_ensemble.one_row is None
    for row in ONE_ROWS:
        assert_same(answers(perturbed, [row]), answers(slow, [row]))


def test_a_one_row_vote_that_ties_answers_the_first_class_as_the_arrays_argmax_does(
    one_row_models, monkeypatch
):
    """A single row whose two classes are voted exactly even (members splitting 0.5/0.5) gets the
    label np.argmax gives on the arrays' way, the first class: the label a row is answered must
    not depend on whether it came alone or in a batch."""
    fast, _ = one_row_models["binary_classification"]
    ensemble = fast.row_ensemble
    batch = fast.schema.from_rows([ONE_ROWS[0]])
    monkeypatch.setattr(RowEnsemble, "_one_row", lambda self, columns, plan: (0.5, 0.5))
    tied = ensemble.classes_[np.argmax(np.array([[0.5, 0.5]]), axis=1)]
    assert ensemble.predict(batch).tolist() == tied.tolist() == ensemble.classes_[:1].tolist()
