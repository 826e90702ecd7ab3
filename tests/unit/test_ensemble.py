"""The CV-weighted ensemble as a proper scikit-learn estimator."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from byoc import algorithms
from byoc.algorithms.ensemble import EnsembleClassifier, EnsembleRegressor
from byoc.hyperparameters import resolve
from byoc.preprocessing import feature_schema


@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer(as_frame=True)
    X = data.data.iloc[:, :6].rename(columns=lambda c: c.replace(" ", "_"))
    return X.iloc[:240].reset_index(drop=True), data.target.to_numpy()[:240]


@pytest.fixture(scope="module")
def diabetes_xy():
    data = load_diabetes(as_frame=True)
    return data.data.iloc[:200].reset_index(drop=True), data.target.to_numpy()[:200]


def good_classifier():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))


@pytest.fixture(scope="module")
def classifier(cancer):
    X, y = cancer
    members = [
        ("linear", good_classifier()),
        ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
        ("dummy", DummyClassifier(strategy="most_frequent")),
    ]
    return EnsembleClassifier(members, cv=3, random_state=0).fit(X, y)


def test_is_a_classifier_with_classes_and_normalised_weights(classifier, cancer):
    X, y = cancer
    assert is_classifier(classifier)
    np.testing.assert_array_equal(classifier.classes_, [0, 1])
    assert classifier.weights_.sum() == pytest.approx(1.0)
    assert classifier.cv_metric_ == "balanced_accuracy"
    proba = classifier.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (classifier.predict(X) == y).mean() > 0.9


def test_a_member_at_chance_gets_no_weight(classifier):
    weights = dict(zip(classifier.named_estimators_, classifier.weights_, strict=True))
    assert weights["dummy"] == 0.0
    assert weights["linear"] > 0 and weights["tree"] > 0
    scores = dict(zip(classifier.named_estimators_, classifier.cv_scores_, strict=True))
    assert scores["dummy"] == pytest.approx(0.5)
    # weights are proportional to the score above chance
    assert weights["linear"] / weights["tree"] == pytest.approx(
        (scores["linear"] - 0.5) / (scores["tree"] - 0.5)
    )


def test_soft_voting_is_the_weighted_mean_of_member_probabilities(classifier, cancer):
    X, _ = cancer
    expected = sum(
        w * est.predict_proba(X)
        for w, est in zip(classifier.weights_, classifier.estimators_, strict=True)
        if w > 0
    )
    np.testing.assert_allclose(
        classifier.predict_proba(X), expected / classifier.weights_[classifier.weights_ > 0].sum()
    )


def test_get_params_clone_and_set_params(classifier):
    params = classifier.get_params(deep=False)
    assert set(params) == {"estimators", "cv", "random_state", "importance_rows"}
    fresh = clone(classifier)
    assert not hasattr(fresh, "estimators_") and fresh.cv == 3
    fresh.set_params(cv=2)
    assert fresh.cv == 2


def test_pickles_and_predicts_the_same(classifier, cancer):
    X, _ = cancer
    restored = pickle.loads(pickle.dumps(classifier))
    np.testing.assert_array_equal(restored.predict_proba(X), classifier.predict_proba(X))


def test_all_members_at_chance_share_weight_equally(cancer):
    X, y = cancer
    model = EnsembleClassifier(
        [("a", DummyClassifier()), ("b", DummyClassifier(strategy="prior"))], cv=2
    ).fit(X, y)
    np.testing.assert_allclose(model.weights_, [0.5, 0.5])
    assert model.weighting_.startswith("equal")


def test_per_member_importances_native_and_permutation(classifier, cancer):
    X, _ = cancer
    assert set(classifier.member_importances_) == {"linear", "tree", "dummy"}
    tree = classifier.member_importances_["tree"]  # native: impurity importances
    assert set(tree) <= set(X.columns) and sum(tree.values()) == pytest.approx(1, abs=1e-4)
    linear = classifier.member_importances_["linear"]  # no pipeline preprocess: permutation
    assert set(linear) <= set(X.columns)
    overall = classifier.feature_importances()
    assert sum(overall.values()) == pytest.approx(1.0, abs=1e-4)


def test_describe_reports_members_weights_scores(classifier):
    facts = classifier.describe()
    assert [m["name"] for m in facts["members"]] == ["linear", "tree", "dummy"]
    assert sum(m["weight"] for m in facts["members"]) == pytest.approx(1.0, abs=1e-5)
    assert all(m["cv_score"] is not None for m in facts["members"])
    assert facts["cv_metric"] == "balanced_accuracy" and facts["cv_folds"] == 3


def test_regressor_weighted_average(diabetes_xy):
    X, y = diabetes_xy
    model = EnsembleRegressor(
        [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=3)), ("mean", DummyRegressor())], cv=3
    ).fit(X, y)
    assert is_regressor(model)
    weights = dict(zip(model.named_estimators_, model.weights_, strict=True))
    assert weights["mean"] == 0.0 and weights["ridge"] > 0
    expected = sum(w * est.predict(X) for w, est in zip(model.weights_, model.estimators_, strict=True))
    np.testing.assert_allclose(model.predict(X), expected)
    assert model.cv_metric_ == "r2"


def test_rare_class_does_not_break_cross_validation():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=40)})
    y = np.array([0] * 20 + [1] * 19 + [2])  # class 2 seen once
    model = EnsembleClassifier([("tree", DecisionTreeClassifier()), ("lr", LogisticRegression())], cv=5).fit(
        X, y
    )
    assert model.predict_proba(X).shape == (40, 3)


def test_member_names_must_be_unique(cancer):
    X, y = cancer
    with pytest.raises(ValueError, match="unique"):
        EnsembleClassifier([("a", DummyClassifier()), ("a", DummyClassifier())]).fit(X, y)


def test_registry_builds_members_with_their_own_preprocessing_and_hyperparameters(cancer):
    X, _ = cancer
    params = resolve(
        {
            "use-custom-ensemble": "true",
            "ensemble-lr": "false",
            "ensemble_rf": True,
            "n_estimators": 5,
            "cv_folds": 4,
        }
    )
    pipeline = algorithms.build("binary_classification", params, feature_schema(X))
    model = pipeline.named_steps["model"]
    assert isinstance(model, EnsembleClassifier) and model.cv == 4
    members = dict(model.estimators)
    assert list(members) == ["random_forest", "gradient_boosting"]
    assert members["random_forest"].named_steps["model"].n_estimators == 5
    assert members["gradient_boosting"].named_steps["model"].max_iter == 100  # its own default


def test_regression_ensemble_from_registry(diabetes_xy):
    X, y = diabetes_xy
    params = resolve(
        {"algorithm": "ensemble", "ensemble_members": "linear,decision_tree", "max_depth": 3, "cv_folds": 2}
    )
    pipeline = algorithms.build("regression", params, feature_schema(X)).fit(X, y)
    assert isinstance(pipeline.named_steps["model"], EnsembleRegressor)
    facts = algorithms.describe(pipeline)
    assert [m["name"] for m in facts["ensemble"]["members"]] == ["linear", "decision_tree"]
    assert set(facts["feature_importances"]) <= set(X.columns)


def test_fit_logs_scores_weights_and_importances(cancer, caplog):
    X, y = cancer
    with caplog.at_level("INFO", logger="byoc.algorithms.ensemble"):
        EnsembleClassifier(
            [("tree", DecisionTreeClassifier(max_depth=2, random_state=0)), ("dummy", DummyClassifier())],
            cv=2,
        ).fit(X, y)
    text = caplog.text
    assert "ensemble member tree: cv balanced_accuracy=" in text
    assert "ensemble weights" in text and "dummy=0.000000" in text
    assert "ensemble member tree: top feature importances:" in text
