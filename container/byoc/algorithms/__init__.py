"""The algorithm registry: name -> factory, preprocessing needs and hyperparameter declarations.

:func:`build` turns a name, a problem type and resolved hyperparameters into an unfitted
``Pipeline(preprocess -> model)`` that honours the ``byoc.artifact`` contract: fit on a
DataFrame of raw features and encoded labels; predict class indices (classification) or
values (regression).  :func:`describe` reports what a fitted pipeline learned (importances by
original column, ensemble weights and CV scores) for model.json and the log.

The registry is built by a function and returned as a read-only mapping: nothing is
registered at import time.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from sklearn.pipeline import Pipeline

from byoc.algorithms import builtin
from byoc.artifact import REGRESSION, Feature
from byoc.declarations import Hyperparameter, with_defaults
from byoc.errors import DataError
from byoc.preprocessing import build_preprocessor, categorical_positions, output_owners

# The classic sample's switches, folded into ensemble_members by hyperparameters.resolve.
ENSEMBLE_FLAGS = MappingProxyType(
    {"ensemble_rf": "random_forest", "ensemble_gb": "gradient_boosting", "ensemble_lr": "linear"}
)
DEFAULT_ENSEMBLE = ("random_forest", "gradient_boosting", "linear")


@dataclass(frozen=True)
class AlgorithmSpec:
    """One algorithm: how to build it and what it accepts.

    ``scale`` standardises numeric inputs (linear, knn); ``categorical`` picks the encoding
    (``onehot`` or ``ordinal``); ``impute`` is False for models that handle NaN natively.
    """

    name: str
    summary: str
    hyperparameters: tuple[Hyperparameter, ...]
    factory: Callable[..., Any] | None
    scale: bool = False
    categorical: str = "ordinal"
    impute: bool = True
    native_categorical: bool = False
    checks: tuple[Callable[[Mapping[str, Any]], None], ...] = ()

    def check(self, params: Mapping[str, Any]) -> None:
        """Cross-hyperparameter checks that do not depend on the data (raise HyperparameterError)."""
        for check in self.checks:
            check(params)


def _ensemble_hyperparameters() -> tuple[Hyperparameter, ...]:
    return (
        Hyperparameter(
            "ensemble_members",
            "list",
            DEFAULT_ENSEMBLE,
            "Member algorithms, each fitted with its own preprocessing; members take "
            "their own hyperparameters (e.g. n_estimators for random_forest).",
            choices=ensemble_member_names(),
        ),
        Hyperparameter(
            "ensemble_rf",
            "bool",
            None,
            "Classic sample switch: add (true) or drop (false) random_forest.",
            nullable=True,
        ),
        Hyperparameter(
            "ensemble_gb",
            "bool",
            None,
            "Classic sample switch: add (true) or drop (false) gradient_boosting.",
            nullable=True,
        ),
        Hyperparameter(
            "ensemble_lr",
            "bool",
            None,
            "Classic sample switch: add (true) or drop (false) linear.",
            nullable=True,
        ),
    )


def _auto_hyperparameters() -> tuple[Hyperparameter, ...]:
    from byoc.automl.objective import all_names

    return (
        Hyperparameter(
            "max_runtime_seconds",
            "int",
            300,
            "Time budget of the whole job (reading, search, refit, report), like Autopilot's "
            "MaxAutoMLJobRuntimeInSeconds.",
            minimum=10,
            maximum=28 * 24 * 3600,
        ),
        Hyperparameter(
            "objective_metric",
            "str",
            None,
            "Autopilot's objective name (case-insensitive); None: MSE for regression, F1 for "
            "binary, Accuracy for multiclass.",
            choices=all_names(),
            nullable=True,
        ),
        Hyperparameter(
            "max_candidates",
            "int",
            None,
            "Most candidates to score (like Autopilot's MaxCandidates); None: as many as the budget allows.",
            minimum=1,
            nullable=True,
        ),
    )


@functools.cache
def registry() -> Mapping[str, AlgorithmSpec]:
    """Every algorithm by name, in documentation order (read-only)."""
    specs = (
        AlgorithmSpec(
            "decision_tree",
            "a single CART decision tree (the classic sample's model)",
            builtin.DECISION_TREE,
            builtin.decision_tree,
            checks=(builtin.check_problem_type,),
        ),
        AlgorithmSpec(
            "random_forest",
            "bagged decision trees (RandomForest)",
            builtin.RANDOM_FOREST,
            builtin.random_forest,
            checks=(builtin.check_problem_type, builtin.check_max_samples),
        ),
        AlgorithmSpec(
            "extra_trees",
            "extremely randomised trees (ExtraTrees)",
            builtin.EXTRA_TREES,
            builtin.extra_trees,
            checks=(builtin.check_problem_type, builtin.check_max_samples),
        ),
        AlgorithmSpec(
            "gradient_boosting",
            "histogram gradient boosting (HistGradientBoosting), native missing values and categories",
            builtin.GRADIENT_BOOSTING,
            builtin.gradient_boosting,
            impute=False,
            native_categorical=True,
            checks=(builtin.check_problem_type,),
        ),
        AlgorithmSpec(
            "linear",
            "logistic regression (classification) or ridge (regression) on "
            "standardised, one-hot encoded inputs",
            builtin.LINEAR,
            builtin.linear,
            scale=True,
            categorical="onehot",
            checks=(builtin.problem_type_check("linear"),),
        ),
        AlgorithmSpec(
            "knn",
            "k-nearest neighbours on standardised, one-hot encoded inputs",
            builtin.KNN,
            builtin.knn,
            scale=True,
            categorical="onehot",
        ),
        AlgorithmSpec(
            "svm",
            "kernel support vector machine (SVC with calibrated probabilities, or SVR) on "
            "standardised, one-hot encoded inputs",
            builtin.SVM,
            builtin.svm,
            scale=True,
            categorical="onehot",
            checks=(builtin.problem_type_check("svm"),),
        ),
        AlgorithmSpec(
            "ensemble",
            "members weighted by cross-validated score; soft voting "
            "(classification) or weighted mean (regression)",
            _ensemble_hyperparameters(),
            None,
        ),
        AlgorithmSpec(
            "auto",
            "AutoML: explores the data, searches preprocessing x model candidates under "
            "max_runtime_seconds and blends the best (output/data: leaderboard.csv, report.html)",
            _auto_hyperparameters(),
            None,
        ),
    )
    return MappingProxyType({spec.name: spec for spec in specs})


def names() -> tuple[str, ...]:
    return tuple(registry())


def buildable() -> tuple[str, ...]:
    """The algorithms :func:`build` makes: all but ``auto``, the search that builds these."""
    return tuple(name for name in registry() if name != "auto")


def ensemble_member_names() -> tuple[str, ...]:
    return ("decision_tree", "random_forest", "extra_trees", "gradient_boosting", "linear", "knn")


def get(name: str) -> AlgorithmSpec:
    try:
        return registry()[name]
    except KeyError:
        raise KeyError(f"unknown algorithm {name!r}; known: {', '.join(names())}") from None


# Resolved common hyperparameters an ensemble passes on to each member.
MEMBER_COMMON = ("random_state", "n_jobs", "problem_type")


def member_params(member: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """An ensemble member's hyperparameters: the values given for the ensemble, else its own defaults."""
    declarations = get(member).hyperparameters
    own = {hp.name for hp in declarations}
    return with_defaults(declarations, {k: v for k, v in params.items() if k in own or k in MEMBER_COMMON})


def check(params: Mapping[str, Any]) -> None:
    """The resolved hyperparameters' data-independent cross-checks (each member's, for the ensemble)."""
    name = params["algorithm"]
    if name != "ensemble":
        get(name).check(params)
        return
    for member in params["ensemble_members"]:
        get(member).check(member_params(member, params))


def _single(name: str, problem_type: str, params: Mapping[str, Any], features: Sequence[Feature]) -> Pipeline:
    spec = get(name)
    assert spec.factory is not None, f"{name} has no estimator factory"
    cap = builtin.category_codes(params["max_bins"]) if spec.native_categorical else None
    preprocess = build_preprocessor(
        features, scale=spec.scale, categorical=spec.categorical, impute=spec.impute, max_categories=cap
    )
    if spec.native_categorical:
        model = spec.factory(problem_type, params, categorical_features=categorical_positions(features))
    else:
        model = spec.factory(problem_type, params)
    return Pipeline([("preprocess", preprocess), ("model", model)])


def build(problem_type: str, params: Mapping[str, Any], features: Sequence[Feature]) -> Pipeline:
    """An unfitted Pipeline(preprocess -> model) for ``params["algorithm"]``.

    ``params`` are resolved hyperparameters (:func:`byoc.hyperparameters.resolve`): complete,
    defaults included; nothing is defaulted here.
    """
    if not features:
        raise DataError(
            "the training data has no feature columns besides the target; check the target "
            "hyperparameter and that the files hold more than one column",
            code="no_features",
        )
    name = params["algorithm"]
    if name != "ensemble":
        return _single(name, problem_type, params, features)
    from byoc.algorithms.ensemble import EnsembleClassifier, EnsembleRegressor

    members = [
        (member, _single(member, problem_type, member_params(member, params), features))
        for member in params["ensemble_members"]
    ]
    cls = EnsembleRegressor if problem_type == REGRESSION else EnsembleClassifier
    model = cls(members, cv=params["cv_folds"], random_state=params["random_state"])
    return Pipeline([("preprocess", "passthrough"), ("model", model)])


# -- after fitting -----------------------------------------------------------------------------
def native_importances(pipeline: Any) -> dict[str, float] | None:
    """Importances by original feature from the model's own attributes; None if it has none.

    Tree models: impurity importances; linear models: |coefficient| on standardised inputs.
    One-hot columns and missing-value indicators are summed onto their source column.
    """
    from byoc.algorithms.ensemble import _normalised

    if not hasattr(pipeline, "steps"):
        return None
    preprocess, model = pipeline.steps[0][1], pipeline.steps[-1][1]
    if preprocess == "passthrough" or not hasattr(preprocess, "transformers_"):
        return None
    if hasattr(model, "feature_importances_"):
        values = np.asarray(model.feature_importances_, dtype=float)
    elif hasattr(model, "coef_"):
        coef = np.abs(np.atleast_2d(np.asarray(model.coef_, dtype=float)))
        values = coef.mean(axis=0)
    else:
        return None
    owners = output_owners(preprocess)
    if len(owners) != len(values):
        return None
    total: dict[str, float] = {}
    for owner, value in zip(owners, values, strict=True):
        total[owner] = total.get(owner, 0.0) + float(value)
    return _normalised(total)


def describe(pipeline: Any, X: Any = None, y: Any = None) -> dict[str, Any]:
    """JSON-able facts about a fitted pipeline for model.json ``details`` and the log.

    ``feature_importances`` (by original column, summing to 1) come from the model itself;
    for models without them (gradient_boosting, knn) pass ``X`` and ``y`` (a sample of the
    training data and encoded labels) to get permutation importances instead.
    """
    from byoc.algorithms.ensemble import _CVWeightedEnsemble, permutation_importances

    model = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    facts: dict[str, Any] = {"estimator": type(model).__name__}
    if isinstance(model, _CVWeightedEnsemble):
        facts["ensemble"] = model.describe()
        facts["feature_importances"] = model.feature_importances()
        facts["importance_method"] = "weighted mean of the members' importances"
        return facts
    importances = native_importances(pipeline)
    method = "impurity" if hasattr(model, "feature_importances_") else "|coefficient|"
    if importances is None and X is not None and y is not None:
        scoring = "r2" if not hasattr(model, "classes_") else "balanced_accuracy"
        importances = permutation_importances(pipeline, X, np.asarray(y), scoring=scoring)
        method = "permutation"
    if importances is not None:
        facts["feature_importances"] = importances
        facts["importance_method"] = method
    if hasattr(model, "get_depth"):
        facts["tree_depth"] = int(model.get_depth())
        facts["tree_leaves"] = int(model.get_n_leaves())
    if getattr(model, "n_iter_", None) is not None:  # Ridge's direct solvers leave it None
        facts["n_iter"] = int(np.max(model.n_iter_))
    if hasattr(model, "estimators_") and isinstance(model.estimators_, list):
        facts["n_estimators"] = len(model.estimators_)
    preprocess = pipeline.steps[0][1] if hasattr(pipeline, "steps") else None
    if preprocess is not None and hasattr(preprocess, "transformers_"):
        facts["n_model_inputs"] = len(output_owners(preprocess))
    return facts
