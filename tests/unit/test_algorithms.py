"""Every algorithm x problem type: builds, fits on mixed data, predicts per the artifact contract."""

from __future__ import annotations

import io

import joblib
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from byoc import algorithms
from byoc.algorithms import builtin
from byoc.errors import HyperparameterError
from byoc.hyperparameters import resolve
from byoc.preprocessing import coerce_features, feature_schema
from byoc.problem import fit_labels, infer_problem_type

# Small models keep the whole matrix fast.
TINY = {
    "random_forest": {"n_estimators": 8},
    "extra_trees": {"n_estimators": 8},
    "gradient_boosting": {"max_iter": 15},
    "knn": {"n_neighbors": 3},
    "ensemble": {"n_estimators": 8, "max_iter": 30, "cv_folds": 2},
}


def mixed(y: np.ndarray, seed: int = 0) -> pd.DataFrame:
    """Numeric and text features, with missing values, that carry signal about ``y``."""
    rng = np.random.default_rng(seed)
    n = len(y)
    codes = pd.factorize(pd.Series(y))[0]
    colour = np.array(["red", "green", "blue", "grey"], dtype=object)[(codes + rng.integers(0, 2, n)) % 4]
    colour[rng.random(n) < 0.1] = None
    signal = (
        codes + rng.normal(0, 0.3, n)
        if y.dtype.kind in "OUb" or len(set(y)) < 10
        else np.asarray(y, float) / 50 + rng.normal(0, 0.3, n)
    )
    signal[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame(
        {
            "signal": signal,
            "noise": rng.normal(size=n),
            "colour": pd.Series(colour, dtype="str"),
            "flag": rng.random(n) < 0.5,
        }
    )


@pytest.fixture(scope="module")
def datasets(iris, diabetes, small_mixed):
    """problem type -> (X, y as loaded)."""
    yb = small_mixed["deposit"]
    yb = pd.Series(yb.to_numpy(), name="deposit", dtype="str")
    ym = iris["target"]
    yr = diabetes["target"].iloc[:150].reset_index(drop=True)
    return {
        "binary_classification": (mixed(yb.to_numpy()), yb),
        "multiclass_classification": (mixed(ym.to_numpy(), 1), ym),
        "regression": (mixed(yr.to_numpy(), 2), yr),
    }


def fit(problem_type: str, algorithm: str, datasets, **extra):
    X, y = datasets[problem_type]
    params = resolve({"algorithm": algorithm, **TINY.get(algorithm, {}), **extra})
    kind, _ = infer_problem_type(y)
    assert kind == problem_type
    schema = feature_schema(X)
    Xc = coerce_features(X, schema, where="train")
    if problem_type == "regression":
        target = y.to_numpy(dtype=float)
        labels = None
    else:
        labels = fit_labels(y)
        target = labels.encode(y, where="train")
    pipeline = algorithms.build(problem_type, params, schema).fit(Xc, target)
    return pipeline, Xc, target, labels


@pytest.fixture(scope="module")
def fitted(datasets):
    cache = {}

    def get(problem_type, algorithm):
        key = (problem_type, algorithm)
        if key not in cache:
            cache[key] = fit(problem_type, algorithm, datasets)
        return cache[key]

    return get


MATRIX = [  # auto is a search over these, tested in test_automl_parts.py
    (p, a)
    for a in algorithms.buildable()
    for p in ("binary_classification", "multiclass_classification", "regression")
]


def test_registry_names_match_the_interface():
    assert algorithms.names() == (
        "decision_tree",
        "random_forest",
        "extra_trees",
        "gradient_boosting",
        "linear",
        "knn",
        "svm",
        "ensemble",
        "auto",
    )
    with pytest.raises(KeyError, match="known: decision_tree"):
        algorithms.get("xgboost")
    with pytest.raises(TypeError):
        algorithms.registry()["new"] = None  # read-only


@pytest.mark.parametrize("problem_type, algorithm", MATRIX)
def test_fit_predict_contract(problem_type, algorithm, fitted):
    pipeline, X, target, labels = fitted(problem_type, algorithm)
    assert [name for name, _ in pipeline.steps] == ["preprocess", "model"]
    pred = pipeline.predict(X)
    assert pred.shape == (len(X),)
    if labels is None:
        assert np.isfinite(pred).all()
        assert np.corrcoef(pred, target)[0, 1] > 0.3  # learned something
    else:
        assert set(np.unique(pred)) <= set(range(len(labels.classes)))
        proba = pipeline.predict_proba(X)
        assert proba.shape == (len(X), len(labels.classes))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
        assert (pred == target).mean() > 0.6


@pytest.mark.parametrize("problem_type, algorithm", MATRIX)
def test_unseen_categories_and_missing_values_at_prediction(problem_type, algorithm, fitted):
    pipeline, X, _, _ = fitted(problem_type, algorithm)
    odd = pd.DataFrame(
        {
            "signal": [np.nan, 1.0],
            "noise": [0.0, np.nan],
            "colour": ["ultraviolet", None],
            "flag": [np.nan, 1.0],
        }
    )
    pred = pipeline.predict(coerce_features(odd, feature_schema(X), where="request"))
    assert len(pred) == 2


@pytest.mark.parametrize("algorithm", algorithms.buildable())
def test_fitted_pipeline_survives_joblib_and_predicts_the_same(algorithm, fitted):
    pipeline, X, _, _ = fitted("binary_classification", algorithm)
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    buffer.seek(0)
    restored = joblib.load(buffer)
    np.testing.assert_array_equal(restored.predict(X), pipeline.predict(X))


@pytest.mark.parametrize("algorithm", algorithms.buildable())
def test_unfitted_pipeline_is_cloneable(algorithm, datasets):
    X, _ = datasets["binary_classification"]
    params = resolve({"algorithm": algorithm})
    pipeline = algorithms.build("binary_classification", params, feature_schema(X))
    assert type(clone(pipeline)) is type(pipeline)


def test_same_random_state_same_model_different_state_different_model(datasets):
    a = fit("binary_classification", "random_forest", datasets, random_state=7)[0]
    b = fit("binary_classification", "random_forest", datasets, random_state=7)[0]
    c = fit("binary_classification", "random_forest", datasets, random_state=8)[0]
    X = datasets["binary_classification"][0]
    Xc = coerce_features(X, feature_schema(X), where="x")
    np.testing.assert_array_equal(a.predict_proba(Xc), b.predict_proba(Xc))
    assert not np.array_equal(a.predict_proba(Xc), c.predict_proba(Xc))


def test_hyperparameters_reach_the_estimator(datasets):
    X, _ = datasets["binary_classification"]
    schema = feature_schema(X)

    def model(algorithm, problem_type="binary_classification", **raw):
        return algorithms.build(problem_type, resolve({"algorithm": algorithm, **raw}), schema).named_steps[
            "model"
        ]

    tree = model("decision_tree", max_leaf_nodes=5, max_depth=3, criterion="entropy")
    assert (tree.max_leaf_nodes, tree.max_depth, tree.criterion) == (5, 3, "entropy")
    forest = model("random_forest", n_estimators=12, n_jobs=1, random_state=3)
    assert (forest.n_estimators, forest.n_jobs, forest.random_state) == (12, 1, 3)
    assert forest.max_features == "sqrt"
    assert model("random_forest", "regression").max_features is None
    assert model("extra_trees").bootstrap is False
    boost = model("gradient_boosting", learning_rate=0.3, max_iter=7)
    assert (boost.learning_rate, boost.max_iter) == (0.3, 7)
    assert boost.categorical_features == [0, 1]  # text and boolean (true/false) columns come first
    assert model("linear", C=0.25).C == 0.25
    assert type(model("linear", "regression", alpha=3)).__name__ == "Ridge"
    assert model("knn", n_neighbors=4, weights="distance").weights == "distance"
    calibrated = model("svm", C=10, gamma=0.05, kernel="poly", degree=2, calibration_folds=3)
    svc = calibrated.estimator
    assert (svc.C, svc.gamma, svc.kernel, svc.degree, calibrated.cv) == (10.0, 0.05, "poly", 2, 3)
    assert calibrated.ensemble is False  # one SVC on every row, calibrated on held-out folds
    assert model("svm", class_weight="balanced").estimator.class_weight == "balanced"
    svr = model("svm", "regression", epsilon=0.5, gamma="auto")
    assert (type(svr).__name__, svr.epsilon, svr.gamma) == ("SVR", 0.5, "auto")


def test_max_leaf_nodes_limits_the_fitted_tree(datasets):
    pipeline = fit("binary_classification", "decision_tree", datasets, max_leaf_nodes=3)[0]
    assert pipeline.named_steps["model"].get_n_leaves() <= 3


@pytest.mark.parametrize(
    "raw, problem_type, fragment",
    [
        ({"criterion": "gini"}, "regression", "'criterion': 'gini' does not apply to regression"),
        ({"criterion": "squared_error"}, "binary_classification", "does not apply"),
        ({"class_weight": "balanced"}, "regression", "classification only"),
    ],
)
def test_problem_dependent_hyperparameter_errors(raw, problem_type, fragment, datasets):
    """With problem_type=auto the problem is known only from the data: the check runs at build."""
    X, _ = datasets["binary_classification"]
    with pytest.raises(HyperparameterError, match=fragment):
        algorithms.build(problem_type, resolve(raw), feature_schema(X))


ONE_PROBLEM_CASES = [
    (
        {"algorithm": "linear", "C": 0.5},
        "regression",
        r"'C'=0\.5 applies to linear classification only.*use 'alpha'",
    ),
    (
        {"algorithm": "linear", "alpha": 3},
        "binary_classification",
        r"'alpha'=3 applies to linear regression only.*use 'C'",
    ),
    (
        {"algorithm": "svm", "epsilon": 0},
        "multiclass_classification",
        r"'epsilon'=0 applies to svm regression only",
    ),
    ({"algorithm": "ensemble", "C": 2}, "regression", r"'C'=2 applies to linear classification only"),
    (  # nothing takes its place in regression: the message says to remove it
        {"algorithm": "svm", "calibration_folds": 3},
        "regression",
        r"'calibration_folds'=3 applies to svm classification only, but the problem is regression; "
        r"remove 'calibration_folds'",
    ),
]


@pytest.mark.parametrize("raw, problem_type, fragment", ONE_PROBLEM_CASES)
def test_hyperparameter_of_the_other_problem_type_is_refused_not_ignored(
    raw, problem_type, fragment, datasets
):
    """Like class_weight: at build for problem_type=auto, at resolve for an explicit one."""
    X, _ = datasets["binary_classification"]
    with pytest.raises(HyperparameterError, match=fragment):
        algorithms.build(problem_type, resolve(raw), feature_schema(X))
    with pytest.raises(HyperparameterError, match=fragment):
        resolve({**raw, "problem_type": problem_type})


def test_hyperparameters_of_one_problem_type_default_to_sklearns_values():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0]})

    def model(algorithm, problem_type):
        return algorithms.build(
            problem_type, resolve({"algorithm": algorithm}), feature_schema(X)
        ).named_steps["model"]

    assert model("linear", "binary_classification").C == 1.0
    assert model("linear", "regression").alpha == 1.0
    assert model("svm", "regression").epsilon == 0.1
    assert model("svm", "binary_classification").cv == 5


@pytest.mark.parametrize(
    "algorithm, method",
    [
        ("decision_tree", "impurity"),
        ("random_forest", "impurity"),
        ("linear", "|coefficient|"),
        ("gradient_boosting", "permutation"),
        ("knn", "permutation"),
        ("svm", "permutation"),
    ],
)
def test_describe_gives_importances_by_original_feature(algorithm, method, fitted):
    pipeline, X, target, _ = fitted("binary_classification", algorithm)
    facts = algorithms.describe(pipeline, X, target)
    importances = facts["feature_importances"]
    assert facts["importance_method"] == method
    assert set(importances) <= set(X.columns)
    assert sum(importances.values()) == pytest.approx(1.0, abs=1e-4)
    assert max(importances, key=importances.get) in ("signal", "colour")


def test_describe_without_data_omits_permutation_importances(fitted):
    pipeline, _, _, _ = fitted("binary_classification", "gradient_boosting")
    facts = algorithms.describe(pipeline)
    assert facts["estimator"].endswith("HistGradientBoostingClassifier")
    assert "feature_importances" not in facts and facts["n_iter"] >= 1


def test_describe_is_json_serialisable_for_every_algorithm(fitted):
    import json

    for algorithm in algorithms.buildable():
        pipeline, X, target, _ = fitted("multiclass_classification", algorithm)
        json.dumps(algorithms.describe(pipeline, X, target), allow_nan=False)


@pytest.mark.parametrize("problem_type", ["regression", "multiclass_classification"])
def test_describe_is_json_serialisable_for_every_algorithm_and_problem_type(problem_type, fitted):
    """Ridge (linear regression) leaves n_iter_ None: describe once failed the whole job on it."""
    import json

    for algorithm in algorithms.buildable():
        pipeline, X, target, _ = fitted(problem_type, algorithm)
        facts = algorithms.describe(pipeline, X, target)
        json.dumps(facts, allow_nan=False)
        assert facts["estimator"]


def test_knn_with_more_neighbours_than_rows_fails_at_fit_naming_the_hyperparameter():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    pipeline = algorithms.build(
        "regression", resolve({"algorithm": "knn", "n_neighbors": 5}), feature_schema(X)
    )
    with pytest.raises(HyperparameterError, match="'n_neighbors'=5 is more than the 3 training rows"):
        pipeline.fit(X, np.array([1.0, 2.0, 3.0]))


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"C": 0}, "hyperparameter 'C': got 0; expected a number > 0"),
        ({"C": "-1"}, "hyperparameter 'C'"),
        ({"gamma": "often"}, "hyperparameter 'gamma': got 'often'; expected a number > 0, scale or auto"),
        ({"gamma": 0}, "hyperparameter 'gamma': got 0"),
        ({"kernel": "rfb"}, "hyperparameter 'kernel': got 'rfb'; expected rbf, linear, poly or sigmoid"),
        ({"degree": 0}, "hyperparameter 'degree'"),
        ({"epsilon": -0.1}, "hyperparameter 'epsilon'"),
        (
            {"calibration_folds": 1},
            r"hyperparameter 'calibration_folds': got 1; expected an integer in \[2, 20\]",
        ),
        (
            {"class_weight": "balanced", "problem_type": "regression"},
            "'class_weight'=balanced applies to classification only",
        ),
    ],
)
def test_svm_hyperparameters_are_validated_by_name(raw, fragment):
    with pytest.raises(HyperparameterError, match=fragment):
        resolve({"algorithm": "svm", **raw})


def test_svm_accepts_gamma_as_a_number_or_a_choice():
    assert resolve({"algorithm": "svm", "gamma": "0.25"})["gamma"] == 0.25
    assert resolve({"algorithm": "svm", "gamma": "AUTO"})["gamma"] == "auto"
    assert resolve({"algorithm": "svm"})["gamma"] == "scale"


def test_svm_with_fewer_rows_of_a_class_than_calibration_folds_names_the_fix():
    X = pd.DataFrame({"a": np.arange(20, dtype=float)})
    y = np.array([0] * 10 + [1] * 7 + [2] * 3)  # class 2: 3 rows, fewer than 5 folds
    pipeline = algorithms.build("multiclass_classification", resolve({"algorithm": "svm"}), feature_schema(X))
    with pytest.raises(HyperparameterError) as caught:
        pipeline.fit(X, y)
    assert "'calibration_folds'=5" in str(caught.value) and "2: 3 rows" in str(caught.value)
    assert "lower calibration_folds" in str(caught.value)
    assert "'rare': 3 rows" in str(caught.value.naming(("common", "middle", "rare")))
    three = resolve({"algorithm": "svm", "calibration_folds": 3})
    fitted = algorithms.build("multiclass_classification", three, feature_schema(X)).fit(X, y)
    proba = fitted.predict_proba(X)
    np.testing.assert_array_equal(fitted.predict(X), proba.argmax(axis=1))  # label and probability agree


def test_no_feature_columns_is_a_data_error():
    from byoc.errors import DataError

    with pytest.raises(DataError, match="no feature columns besides the target"):
        algorithms.build("regression", resolve({}), [])


@pytest.mark.parametrize("algorithm", ["decision_tree", "gradient_boosting", "linear", "knn", "svm"])
def test_single_feature_that_is_all_missing_still_fits(algorithm):
    X = pd.DataFrame({"empty": [np.nan] * 12, "text": pd.Series([None] * 12, dtype=object)})
    y = np.array([0, 1] * 6)
    schema = feature_schema(X)
    params = resolve({"algorithm": algorithm, **({"n_neighbors": 3} if algorithm == "knn" else {})})
    pipeline = algorithms.build("binary_classification", params, schema).fit(
        coerce_features(X, schema, where="train"), y
    )
    assert pipeline.predict_proba(X).shape == (12, 2)


mixed_cells = st.one_of(
    st.none(), st.floats(-100, 100), st.integers(-3, 3), st.sampled_from(["a", "b", "c", "", "é"])
)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.tuples(mixed_cells, mixed_cells, st.floats(-5, 5)), min_size=8, max_size=20),
    st.randoms(use_true_random=False),
)
def test_every_algorithm_fits_arbitrary_small_mixed_frames(rows, rnd):
    """Whatever mix of text, numbers and gaps a tiny frame holds, every algorithm fits and predicts."""
    X = pd.DataFrame(rows, columns=["p", "q", "r"])
    y = np.array([i % 2 for i in range(len(X))])
    rnd.shuffle(y)
    schema = feature_schema(X)
    Xc = coerce_features(X, schema, where="train")
    for algorithm in algorithms.buildable():
        if algorithm == "ensemble":
            continue  # made of the others; its own edge cases are in test_ensemble.py
        raw = {"algorithm": algorithm, "n_jobs": 1, **TINY.get(algorithm, {})}
        if algorithm == "knn":
            raw["n_neighbors"] = 2
        if algorithm == "svm":
            raw["calibration_folds"] = 2  # 8 rows: 4 of each class
        pipeline = algorithms.build("binary_classification", resolve(raw), schema).fit(Xc, y)
        assert pipeline.predict_proba(Xc).shape == (len(X), 2), algorithm


def test_gradient_boosting_early_stopping_with_a_single_row_class_explains_the_fix():
    X = pd.DataFrame({"a": np.arange(40, dtype=float)})
    y = np.array([0, 1] * 19 + [0, 2])  # class 2 has one row
    params = resolve({"algorithm": "gradient_boosting", "early_stopping": True, "max_iter": 5})
    pipeline = algorithms.build("multiclass_classification", params, feature_schema(X))
    with pytest.raises(HyperparameterError, match="early_stopping=false"):
        pipeline.fit(X, y)
    params = resolve({"algorithm": "gradient_boosting", "early_stopping": False, "max_iter": 5})
    algorithms.build("multiclass_classification", params, feature_schema(X)).fit(X, y)


@pytest.mark.parametrize("problem_type", ["binary_classification", "regression"])
@pytest.mark.parametrize("cells", [0, 10**9])  # both sides of DENSE_NEIGHBOURS_MAX_CELLS
def test_knn_searches_one_representation_on_either_side_of_the_dense_bound(problem_type, cells, monkeypatch):
    """Below the bound knn fits and searches the dense form of its sparse one-hot matrix, above
    it the sparse matrix itself; either way every answer is scikit-learn's own on that form,
    sparse or dense request rows alike, one at a time or together."""
    from scipy import sparse
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    from byoc.algorithms import builtin

    monkeypatch.setattr(builtin, "DENSE_NEIGHBOURS_MAX_CELLS", cells)
    rows = sparse.csr_matrix(np.round(np.random.default_rng(4).normal(size=(40, 6)), 1))
    rows.data[rows.data < 0] = 0.0  # a sparse matrix with ties
    rows.eliminate_zeros()
    target = np.arange(40) % 3 if problem_type != "regression" else np.linspace(0, 1, 40)
    ours = (builtin.NeighboursRegressor if problem_type == "regression" else builtin.NeighboursClassifier)(
        n_neighbors=3
    ).fit(rows, target)
    assert ours.dense_input_ is (cells > 0)
    form = rows.toarray() if cells else rows
    theirs = (KNeighborsRegressor if problem_type == "regression" else KNeighborsClassifier)(
        n_neighbors=3
    ).fit(form, target)
    for query in [rows, rows[:1], rows[17:18], rows.toarray()[5:6]]:
        same_form = query.toarray() if cells and sparse.issparse(query) else query
        assert np.array_equal(ours.predict(query), theirs.predict(same_form))
        assert np.array_equal(ours.kneighbors(query)[1], theirs.kneighbors(same_form)[1])
        if problem_type != "regression":
            assert np.array_equal(ours.predict_proba(query), theirs.predict_proba(same_form))


def test_knn_fitted_before_the_dense_bound_searches_as_it_did():
    """A NeighboursClassifier pickled before ``dense_input_`` existed keeps its sparse search."""
    from scipy import sparse
    from sklearn.neighbors import KNeighborsClassifier

    from byoc.algorithms import builtin

    rows = sparse.random(60, 12, density=0.3, random_state=5, format="csr")
    target = np.arange(60) % 2
    old = builtin.NeighboursClassifier(n_neighbors=3).fit(rows, target)
    state = old.__getstate__()
    del state["dense_input_"]
    state["_fit_X"] = rows  # as fitted then: the sparse matrix itself
    revived = builtin.NeighboursClassifier.__new__(builtin.NeighboursClassifier)
    revived.__setstate__(state)
    revived._fit_method = "brute"
    theirs = KNeighborsClassifier(n_neighbors=3).fit(rows, target)
    assert sparse.issparse(revived._fit_X)
    assert np.array_equal(revived.predict_proba(rows), theirs.predict_proba(rows))


@pytest.mark.parametrize("algorithm", builtin.BEST_FIRST_TREES)
@pytest.mark.parametrize("problem_type", ["binary_classification", "regression"])
def test_max_leaf_nodes_lowered_to_the_rows_grows_the_same_trees(algorithm, problem_type, datasets):
    X, _ = datasets[problem_type]
    rows = len(X)
    asked = resolve({"algorithm": algorithm, **TINY.get(algorithm, {}), "max_leaf_nodes": 100 * rows})
    lowered, note = builtin.leaves_within_rows(asked, rows)
    assert lowered["max_leaf_nodes"] == rows and f"'max_leaf_nodes'={100 * rows}" in (note or "")
    trees = []
    for params in (asked, lowered):
        model = fit(problem_type, algorithm, datasets, max_leaf_nodes=params["max_leaf_nodes"])[
            0
        ].named_steps["model"]
        trees.append([e.tree_ for e in getattr(model, "estimators_", [model])])
    for one, other in zip(*trees, strict=True):
        np.testing.assert_array_equal(one.feature, other.feature)
        np.testing.assert_array_equal(one.threshold, other.threshold)
        np.testing.assert_array_equal(one.value, other.value)


@pytest.mark.parametrize(
    "raw, lowered",
    [
        ({"algorithm": "decision_tree", "max_leaf_nodes": 50}, 50),  # within the rows
        ({"algorithm": "decision_tree"}, None),
        ({"algorithm": "gradient_boosting", "max_leaf_nodes": 10**6}, 10**6),  # its grower reserves nothing
        ({"algorithm": "ensemble", "ensemble_members": "linear,decision_tree", "max_leaf_nodes": 10**6}, 60),
        (
            {
                "algorithm": "ensemble",
                "ensemble_members": "linear,gradient_boosting",
                "max_leaf_nodes": 10**6,
            },
            10**6,
        ),
    ],
)
def test_max_leaf_nodes_is_lowered_only_where_the_best_first_builder_would_reserve_it(raw, lowered):
    params, note = builtin.leaves_within_rows(resolve(raw), 60)
    assert params.get("max_leaf_nodes") == lowered
    assert (note is None) == (lowered == raw.get("max_leaf_nodes"))


def test_gradient_boosting_with_fewer_bins_than_categories_fits(datasets):
    pipeline, Xc, target, _ = fit("binary_classification", "gradient_boosting", datasets, max_bins=2)
    name, coder, columns = pipeline.named_steps["preprocess"].transformers_[0]
    assert name == "categorical" and "colour" in columns  # four colours and missing values
    codes = coder.transform(Xc[columns])
    assert set(np.unique(codes)) == {0.0, -2.0}  # one code for the categories, one for missing
    assert pipeline.predict(Xc).shape == target.shape


@pytest.mark.parametrize(
    "given, passed", [({}, builtin.SVM_MAX_ITER), ({"max_iter": 7}, 7), ({"max_iter": None}, -1)]
)
def test_svm_max_iter_reaches_libsvm(given, passed):
    params = resolve({"algorithm": "svm", **given})
    svr = builtin.svm("regression", params)
    svc = builtin.svm("binary_classification", params).estimator
    assert (svr.max_iter, svc.max_iter) == (passed, passed)


def test_a_solver_stopped_by_max_iter_is_one_warning_naming_the_hyperparameter(caplog):
    import logging
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    log = logging.getLogger("byoc.test")
    params = resolve({"algorithm": "svm", "max_iter": 9})
    with warnings.catch_warnings(record=True) as passed_on, caplog.at_level(logging.WARNING, "byoc.test"):
        warnings.simplefilter("always")
        with builtin.solver_stops_logged(params, log):
            warnings.warn("stopped", ConvergenceWarning, stacklevel=1)
            warnings.warn("stopped", ConvergenceWarning, stacklevel=1)
            warnings.warn("something else", UserWarning, stacklevel=1)
    assert [str(w.message) for w in passed_on] == ["something else"]
    assert [r.getMessage() for r in caplog.records] == [
        "svm: the solver stopped at hyperparameter 'max_iter'=9 before converging (2 fit(s)); the model is "
        "saved but may fit the data less well: raise max_iter, or regularise more (a lower C)"
    ]


@pytest.mark.parametrize(
    "y, fragment",
    [
        (np.array([0.0, 2.0, -1.5, -0.5]), "has 2 negative value(s), the smallest -1.5"),
        (np.zeros(4), "every value of the target (column 'count') is 0"),
        (np.array([0.0, 0.0, 3.0]), None),  # zeros and a positive sum: a Poisson target
    ],
)
def test_poisson_criterion_is_checked_against_the_target(y, fragment):
    params = resolve({"algorithm": "random_forest", "criterion": "poisson"})
    if fragment is None:
        builtin.check_poisson_target(params, y, "column 'count'")
        return
    with pytest.raises(HyperparameterError) as caught:
        builtin.check_poisson_target(params, y, "column 'count'")
    assert fragment in str(caught.value) and "criterion=squared_error" in str(caught.value)


@pytest.mark.parametrize("problem_type", ["binary_classification", "regression"])
def test_an_svm_solution_that_overflows_is_recognised_by_its_values_not_sklearns_wording(
    problem_type, datasets
):
    """kernel_overflow matched scikit-learn's message text: a rewording would have turned the
    hyperparameter error back into an internal error (exit 2) without any test noticing."""
    extra = {"kernel": "poly", "degree": 10, "gamma": 1e10}
    with pytest.raises(ValueError) as raised:
        fit(problem_type, "svm", datasets, **extra)
    params = resolve({"algorithm": "svm", **extra})
    reworded = raised.value
    reworded.args = ("scikit-learn's message, reworded",)
    explained = builtin.kernel_overflow(reworded, params)
    assert explained is not None
    assert str(explained).startswith("hyperparameters kernel=poly, gamma=1e+10, degree=10, C=1: ")
    assert "lower gamma" in str(explained)
    # the old wording without an SVM whose solution is infinite is some other ValueError
    assert (
        builtin.kernel_overflow(ValueError("The dual coefficients or intercepts are not finite."), params)
        is None
    )
    assert builtin.kernel_overflow(reworded, resolve({"algorithm": "linear"})) is None
