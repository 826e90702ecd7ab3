"""The built-in scikit-learn algorithms: their hyperparameter declarations and factories.

Each factory takes the problem type and the resolved hyperparameters and returns an unfitted
estimator; :mod:`byoc.algorithms` wraps it in the preprocessing pipeline.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from byoc.artifact import REGRESSION
from byoc.declarations import Hyperparameter as HP
from byoc.errors import HyperparameterError

CLASSIFICATION_CRITERIA = ("gini", "entropy", "log_loss")
REGRESSION_CRITERIA = (
    "squared_error",
    "absolute_error",
    "poisson",
)  # friedman_mse: deprecated (=squared_error)


# -- declarations shared by several algorithms ---------------------------------------------------
def _optional_count(name: str, help: str, minimum: int) -> HP:
    """An integer hyperparameter where None means no limit."""
    return HP(name, "int", None, help, minimum=minimum, nullable=True)


def _class_weights(choices: tuple[str, ...], help: str) -> HP:
    return HP("class_weight", "str", None, help, choices=choices, nullable=True)


MAX_DEPTH = _optional_count("max_depth", "Deepest a tree may grow; None grows until leaves are pure.", 1)
MIN_SAMPLES_SPLIT = HP("min_samples_split", "int", 2, "Fewest rows a node needs to be split.", minimum=2)
MIN_SAMPLES_LEAF = HP("min_samples_leaf", "int", 1, "Fewest rows in a leaf.", minimum=1)
MAX_LEAF_NODES = _optional_count(
    "max_leaf_nodes",
    "Most leaves per tree (best-first growth); None: unlimited. Above the training rows it cannot "
    "bind (a leaf holds a row): the trees are grown as with the rows.",
    2,
)
CRITERION = HP(
    "criterion",
    "str",
    "auto",
    "Split quality; auto: gini for classification, squared_error for regression.",
    choices=("auto",) + CLASSIFICATION_CRITERIA + REGRESSION_CRITERIA,
)
CCP_ALPHA = HP("ccp_alpha", "float", 0.0, "Cost-complexity pruning strength; 0 prunes nothing.", minimum=0)
CLASS_WEIGHT = _class_weights(
    ("balanced",), "balanced reweights classes inversely to their frequency (classification only)."
)
FOREST_CLASS_WEIGHT = _class_weights(
    ("balanced", "balanced_subsample"),
    "balanced / balanced_subsample reweight classes inversely to their frequency (classification only).",
)
N_ESTIMATORS = HP("n_estimators", "int", 100, "Number of trees.", minimum=1, maximum=10000)


def _max_features(default: str) -> HP:
    return HP(
        "max_features",
        "float",
        default,
        "Features considered per split: a fraction, sqrt, log2, or auto (sqrt for "
        "classification forests, all otherwise).",
        choices=("auto", "sqrt", "log2"),
        minimum=0,
        maximum=1,
        exclusive_minimum=True,
    )


# How each tree of a decision tree or a forest grows.
TREE_GROWTH = (
    MAX_DEPTH,
    MIN_SAMPLES_SPLIT,
    MIN_SAMPLES_LEAF,
    MAX_LEAF_NODES,
    _max_features("auto"),
    CRITERION,
)


def _forest(bootstrap: bool) -> tuple[HP, ...]:
    return (
        N_ESTIMATORS,
        *TREE_GROWTH,
        HP("bootstrap", "bool", bootstrap, "Fit each tree on a bootstrap sample of the rows."),
        HP(
            "max_samples",
            "float",
            None,
            "Fraction of rows drawn per tree when bootstrap is on; None: all.",
            minimum=0,
            maximum=1,
            exclusive_minimum=True,
            nullable=True,
        ),
        FOREST_CLASS_WEIGHT,
        CCP_ALPHA,
    )


DECISION_TREE = (*TREE_GROWTH, CLASS_WEIGHT, CCP_ALPHA)
RANDOM_FOREST = _forest(bootstrap=True)
EXTRA_TREES = _forest(bootstrap=False)
GRADIENT_BOOSTING = (
    HP(
        "learning_rate",
        "float",
        0.1,
        "Shrinkage applied to each boosting iteration.",
        minimum=0,
        maximum=10,
        exclusive_minimum=True,
    ),
    HP("max_iter", "int", 100, "Boosting iterations (trees per class).", minimum=1, maximum=100000),
    HP("max_leaf_nodes", "int", 31, "Most leaves per tree; None: unlimited.", minimum=2, nullable=True),
    MAX_DEPTH,
    HP("min_samples_leaf", "int", 20, "Fewest rows in a leaf.", minimum=1),
    HP("l2_regularization", "float", 0.0, "L2 penalty on leaf values.", minimum=0),
    HP(
        "max_bins",
        "int",
        255,
        "Histogram bins per feature; a text feature with more than max_bins - 1 categories keeps "
        "the max_bins - 2 most frequent, the rest share one (missing values take a bin too).",
        minimum=2,
        maximum=255,
    ),
    HP(
        "early_stopping",
        "bool",
        "auto",
        "Stop when a held-out score stops improving; auto: on above 10,000 rows.",
        choices=("auto",),
    ),
    HP(
        "validation_fraction",
        "float",
        0.1,
        "Rows held out for early stopping.",
        minimum=0,
        maximum=1,
        exclusive_minimum=True,
        exclusive_maximum=True,
    ),
    HP("n_iter_no_change", "int", 10, "Iterations without improvement before stopping early.", minimum=1),
    CLASS_WEIGHT,
)
LINEAR = (
    HP(
        "C",
        "float",
        None,
        "Inverse L2 regularisation of logistic regression (classification only; None: 1).",
        minimum=0,
        exclusive_minimum=True,
        nullable=True,
    ),
    HP(
        "alpha",
        "float",
        None,
        "L2 regularisation of ridge regression (regression only; None: 1).",
        minimum=0,
        nullable=True,
    ),
    HP("max_iter", "int", 1000, "Solver iterations.", minimum=1, maximum=100000),
    CLASS_WEIGHT,
)
KNN = (
    HP("n_neighbors", "int", 5, "Neighbours that vote for each prediction.", minimum=1, maximum=10000),
    HP(
        "weights",
        "str",
        "uniform",
        "uniform votes, or distance-weighted votes.",
        choices=("uniform", "distance"),
    ),
    HP("p", "int", 2, "Minkowski power: 1 is Manhattan, 2 Euclidean distance.", minimum=1, maximum=10),
)
SVM_KERNELS = ("rbf", "linear", "poly", "sigmoid")
CALIBRATION_FOLDS = 5  # svm classification's calibration folds when calibration_folds is None
# libsvm's default is no limit, and with a large C on data no boundary separates it may never
# converge (C=1e7 on mixed_frame's rows did not finish).  Ordinary fits need far fewer: on 3,000
# standardised rows (mixed_frame, make_classification, make_regression; scikit-learn 1.9.1),
# C=1 took 700-4,500 iterations and C=100 6,700-30,000, where C=1e4 and C=1e7 on mixed_frame hit
# 1,000,000 after 1.6 and 4.5 s of CPU a fit.
SVM_MAX_ITER = 1_000_000
SVM = (
    HP(
        "C",
        "float",
        1.0,
        "Inverse regularisation: larger fits the training rows more closely.",
        minimum=0,
        exclusive_minimum=True,
    ),
    HP("kernel", "str", "rbf", "Kernel function (poly uses degree).", choices=SVM_KERNELS),
    HP(
        "gamma",
        "float",
        "scale",
        "Kernel coefficient of rbf, poly and sigmoid: a number, scale (1 / (inputs x their "
        "variance)) or auto (1 / inputs).",
        choices=("scale", "auto"),
        minimum=0,
        exclusive_minimum=True,
    ),
    HP("degree", "int", 3, "Degree of the poly kernel.", minimum=1, maximum=10),
    HP(
        "epsilon",
        "float",
        None,
        "Regression only: errors smaller than this (in the target's units) cost nothing; None: 0.1.",
        minimum=0,
        nullable=True,
    ),
    HP(
        "max_iter",
        "int",
        SVM_MAX_ITER,
        "Solver iterations per fit; reaching them stops the fit early with a warning in the log. "
        "None: until converged, which a large C can make endless.",
        minimum=1,
        nullable=True,
    ),
    HP(
        "calibration_folds",
        "int",
        None,
        "Classification only: folds whose held-out decision values calibrate the probabilities "
        "(every class needs this many training rows); None: 5.",
        minimum=2,
        maximum=20,
        nullable=True,
    ),
    CLASS_WEIGHT,
)


# -- cross-checks that need no data (run by hyperparameters.resolve) -----------------------------
def check_max_samples(params: Mapping[str, Any]) -> None:
    if params["max_samples"] is not None and not params["bootstrap"]:
        raise HyperparameterError(
            "hyperparameter 'max_samples' needs bootstrap=true; set bootstrap=true or remove max_samples"
        )


def check_problem_type(params: Mapping[str, Any]) -> None:
    """criterion and class_weight against an explicit problem_type (auto is known only from the data)."""
    problem_type = params["problem_type"]
    if problem_type == "auto":
        return
    if "criterion" in params:
        _criterion(problem_type, params)
    if "class_weight" in params:
        _class_weight(problem_type, params)


# Hyperparameters of one problem type (None: not given) -> (True: classification, the one to use
# instead on the other problem type, or None when nothing takes its place there).  Given for the
# other problem type they would be ignored, so they are refused like class_weight.
ONE_PROBLEM_ONLY: Mapping[str, Mapping[str, tuple[bool, str | None]]] = {
    "linear": {"C": (True, "alpha"), "alpha": (False, "C")},
    "svm": {"epsilon": (False, "C"), "calibration_folds": (True, None)},
}


def check_applies(algorithm: str, problem_type: str, params: Mapping[str, Any]) -> None:
    """Refuse a hyperparameter of :data:`ONE_PROBLEM_ONLY` given for the other problem type."""
    classify = problem_type != REGRESSION
    for name, (for_classification, instead) in ONE_PROBLEM_ONLY.get(algorithm, {}).items():
        value = params.get(name)
        if value is None or for_classification == classify:
            continue
        kind, other = (
            ("classification", "regression") if for_classification else ("regression", "classification")
        )
        use = f"use '{instead}' for {algorithm} {other}, or " if instead else ""
        raise HyperparameterError(
            f"hyperparameter '{name}'={value:g} applies to {algorithm} {kind} only, but the "
            f"problem is {problem_type}; {use}remove '{name}' (or set problem_type)"
        )


def problem_type_check(algorithm: str) -> Callable[[Mapping[str, Any]], None]:
    """:func:`check_problem_type` plus :func:`check_applies` for ``algorithm`` when the problem
    type is given (with ``auto`` the factory checks once the data has told it)."""

    def check(params: Mapping[str, Any]) -> None:
        check_problem_type(params)
        if params["problem_type"] != "auto":
            check_applies(algorithm, params["problem_type"], params)

    return check


# -- limits that need the data (applied by byoc.fit before building) -----------------------------
# max_leaf_nodes switches these to scikit-learn's best-first tree builder, which reserves room for
# 2 x max_leaf_nodes - 1 nodes before it grows a tree (256 GiB for 2147483647); gradient_boosting's
# grower reserves nothing up front.
BEST_FIRST_TREES = ("decision_tree", "random_forest", "extra_trees")


def leaves_within_rows(params: Mapping[str, Any], rows: int) -> tuple[Mapping[str, Any], str | None]:
    """``params`` with max_leaf_nodes lowered to ``rows`` when it is larger, and a line saying so.

    A leaf holds at least one training row, so a limit above the rows never binds: the builder
    stops when no node can be split, and the trees are the same (checked split for split in
    tests/unit/test_algorithms.py); only the memory reserved up front is not."""
    limit = params.get("max_leaf_nodes")
    algorithm = params["algorithm"]
    members = params["ensemble_members"] if algorithm == "ensemble" else (algorithm,)
    if limit is None or limit <= rows or not set(members) & set(BEST_FIRST_TREES):
        return params, None
    fitted = max(rows, 2)
    note = (
        f"hyperparameter 'max_leaf_nodes'={limit} is more leaves than the {rows} training rows can "
        f"fill (a leaf holds at least one row): trees are grown with max_leaf_nodes={fitted}, the "
        f"same trees, without reserving memory for {limit} leaves"
    )
    return {**params, "max_leaf_nodes": fitted}, note


@contextmanager
def solver_stops_logged(params: Mapping[str, Any], log: logging.Logger) -> Iterator[None]:
    """Fit inside: a solver stopped by max_iter becomes one log warning naming the hyperparameter.

    scikit-learn's ConvergenceWarning names neither byoc's hyperparameter nor a fix (and advises
    scaling inputs that byoc already scales); other warnings pass on as they came."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        yield
    stops = 0
    for warning in caught:
        if issubclass(warning.category, ConvergenceWarning):
            stops += 1
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    if stops:
        given = params.get("max_iter")
        cap = f"'max_iter'={given}" if given is not None else "'max_iter' (its default)"
        log.warning(
            "%s: the solver stopped at hyperparameter %s before converging (%d fit(s)); the model "
            "is saved but may fit the data less well: raise max_iter, or regularise more (a lower C)",
            params["algorithm"],
            cap,
            stops,
        )


# -- factories -------------------------------------------------------------------------------
def _criterion(problem_type: str, params: Mapping[str, Any]) -> dict[str, Any]:
    value = params["criterion"]
    if value == "auto":
        return {}
    allowed = REGRESSION_CRITERIA if problem_type == REGRESSION else CLASSIFICATION_CRITERIA
    if value not in allowed:
        raise HyperparameterError(
            f"hyperparameter 'criterion': '{value}' does not apply to {problem_type}; use "
            f"{', '.join(allowed)} or auto"
        )
    return {"criterion": value}


def _class_weight(problem_type: str, params: Mapping[str, Any]) -> dict[str, Any]:
    value = params["class_weight"]
    if value is None:
        return {}
    if problem_type == REGRESSION:
        raise HyperparameterError(
            f"hyperparameter 'class_weight'={value} applies to classification only, but the "
            "problem is regression; remove it or set problem_type"
        )
    return {"class_weight": value}


def _max_features_value(problem_type: str, value: Any, *, forest: bool) -> Any:
    if value == "auto":
        return "sqrt" if forest and problem_type != REGRESSION else None
    return value


def _tree_args(problem_type: str, params: Mapping[str, Any], *, forest: bool) -> dict[str, Any]:
    args = {
        "max_depth": params["max_depth"],
        "min_samples_split": params["min_samples_split"],
        "min_samples_leaf": params["min_samples_leaf"],
        "max_leaf_nodes": params["max_leaf_nodes"],
        "max_features": _max_features_value(problem_type, params["max_features"], forest=forest),
        "ccp_alpha": params["ccp_alpha"],
        "random_state": params["random_state"],
    }
    args.update(_criterion(problem_type, params))
    args.update(_class_weight(problem_type, params))
    return args


def decision_tree(problem_type: str, params: Mapping[str, Any]) -> Any:
    args = _tree_args(problem_type, params, forest=False)
    return (DecisionTreeRegressor if problem_type == REGRESSION else DecisionTreeClassifier)(**args)


def _forest_factory(classifier: type, regressor: type):
    def factory(problem_type: str, params: Mapping[str, Any]) -> Any:
        args = _tree_args(problem_type, params, forest=True)
        args.update(
            n_estimators=params["n_estimators"],
            bootstrap=params["bootstrap"],
            max_samples=params["max_samples"],
            n_jobs=params["n_jobs"],
        )
        return (regressor if problem_type == REGRESSION else classifier)(**args)

    return factory


random_forest = _forest_factory(RandomForestClassifier, RandomForestRegressor)
extra_trees = _forest_factory(ExtraTreesClassifier, ExtraTreesRegressor)


def _stops_early(estimator: Any, rows: int) -> bool:
    """Whether HistGradientBoosting will hold out a validation split on ``rows`` rows."""
    return estimator.early_stopping is True or (estimator.early_stopping == "auto" and rows > 10000)


class CheckedHistGradientBoostingClassifier(HistGradientBoostingClassifier):
    """Explains, at fit, why early stopping cannot split off a validation set.

    Early stopping (on by default above 10,000 rows) holds out a stratified split, which needs
    at least two rows of every class and a row of every class on each side; scikit-learn's own
    errors say neither which hyperparameter is at fault nor what to do.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        codes = np.asarray(y)
        if _stops_early(self, codes.shape[0]) and len(codes):
            _check_stratified_holdout(codes, self.validation_fraction, str(self.early_stopping).lower())
        return super().fit(X, y, sample_weight=sample_weight)


class CheckedHistGradientBoostingRegressor(HistGradientBoostingRegressor):
    """Explains, at fit, a validation_fraction that leaves early stopping no training rows
    (scikit-learn's error names test_size, which the user never set)."""

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> Any:
        rows = np.asarray(y).shape[0]
        if _stops_early(self, rows) and rows:
            _check_holdout(rows, 1, self.validation_fraction, str(self.early_stopping).lower())
        return super().fit(X, y, sample_weight=sample_weight)


def _check_stratified_holdout(codes: np.ndarray, fraction: float, early_stopping: str) -> None:
    """Refuse a hold-out scikit-learn's stratified split would refuse, naming the fix."""
    _, counts = np.unique(codes, return_counts=True)
    if counts.min() < 2:
        raise HyperparameterError(
            f"gradient_boosting's early stopping holds out a stratified validation split, "
            f"but {int((counts < 2).sum())} class(es) have a single training row; set "
            "early_stopping=false, or add rows of the rare classes"
        )
    _check_holdout(len(codes), len(counts), fraction, early_stopping)


def _check_holdout(rows: int, classes: int, fraction: float, early_stopping: str) -> None:
    """Refuse a hold-out without a row (of each class, ``classes`` > 1) on both sides."""
    held_out = math.ceil(fraction * rows)  # as train_test_split sizes the test side
    if classes <= held_out <= rows - classes:
        return
    if held_out < classes:  # two rows per class (checked above) leave a fraction that fits
        fix = f"raise validation_fraction to at least {math.ceil(1000 * classes / rows) / 1000:g}"
    else:
        fix = f"lower validation_fraction to at most {math.floor(1000 * (rows - classes) / rows) / 1000:g}"
    needs = (
        f"its stratified split needs a row of each of the {classes} classes on both sides"
        if classes > 1
        else "it needs a row on both sides"
    )
    raise HyperparameterError(
        f"hyperparameters validation_fraction={fraction:g} and early_stopping={early_stopping}: "
        f"gradient_boosting's early stopping holds out {held_out} of the {rows} training rows, "
        f"but {needs}; {fix}, add rows, or set early_stopping=false"
    )


def check_poisson_target(params: Mapping[str, Any], y: np.ndarray, target: str) -> None:
    """criterion=poisson (trees of a regression) against the target, before scikit-learn's
    ValueError, which names neither the hyperparameter nor the column."""
    if params.get("criterion") != "poisson" or not len(y):
        return
    values = np.asarray(y, dtype=float)
    negative = int((values < 0).sum())
    if negative:
        raise HyperparameterError(
            f"hyperparameter 'criterion'=poisson models counts and rates, which are never negative, "
            f"but the target ({target}) has {negative} negative value(s), the smallest "
            f"{values.min():g}; use criterion=squared_error or absolute_error (or auto)"
        )
    if values.sum() <= 0:
        raise HyperparameterError(
            f"hyperparameter 'criterion'=poisson needs a target whose sum is positive, but every "
            f"value of the target ({target}) is 0; use criterion=squared_error or auto"
        )


def category_codes(max_bins: int) -> int:
    """Most ordinal codes a text feature of gradient_boosting may get with ``max_bins``.

    HistGradientBoosting refuses a categorical column with more than max_bins distinct values,
    and the encoder's missing-value code is one of them: max_bins - 1 codes stay within it (the
    rarest categories share the last; with max_bins=2 every category shares one, and the column
    tells present from missing)."""
    return max_bins - 1


def gradient_boosting(
    problem_type: str, params: Mapping[str, Any], categorical_features: list[int] | None = None
) -> Any:
    args = dict(
        learning_rate=params["learning_rate"],
        max_iter=params["max_iter"],
        max_leaf_nodes=params["max_leaf_nodes"],
        max_depth=params["max_depth"],
        min_samples_leaf=params["min_samples_leaf"],
        l2_regularization=params["l2_regularization"],
        max_bins=params["max_bins"],
        early_stopping=params["early_stopping"],
        validation_fraction=params["validation_fraction"],
        n_iter_no_change=params["n_iter_no_change"],
        random_state=params["random_state"],
        categorical_features=categorical_features or None,
    )
    if problem_type == REGRESSION:
        _class_weight(problem_type, params)
        return CheckedHistGradientBoostingRegressor(**args)
    args.update(_class_weight(problem_type, params))
    return CheckedHistGradientBoostingClassifier(**args)


def linear(problem_type: str, params: Mapping[str, Any]) -> Any:
    check_applies("linear", problem_type, params)
    if problem_type == REGRESSION:
        _class_weight(problem_type, params)
        alpha = 1.0 if params["alpha"] is None else params["alpha"]
        return Ridge(alpha=alpha, max_iter=params["max_iter"], random_state=params["random_state"])
    return LogisticRegression(
        C=1.0 if params["C"] is None else params["C"],
        max_iter=params["max_iter"],
        random_state=params["random_state"],
        **_class_weight(problem_type, params),
    )


def check_enough_rows(n_neighbors: int, rows: int, *, of: str = "", fix: str = "") -> None:
    """Fails at fit, as a hyperparameter error, when there are fewer rows than n_neighbors.

    scikit-learn would only fail later, at predict time, with a message about n_samples_fit.
    ``of`` says whose rows they are (an ensemble's cross-validation fold), ``fix`` another way out.
    """
    if n_neighbors > rows:
        raise HyperparameterError(
            f"hyperparameter 'n_neighbors'={n_neighbors} is more than the "
            f"{rows} training rows{of}; lower n_neighbors{fix} or add rows"
        )


# knn keeps a sparse encoded training matrix (one-hot columns) dense up to this many cells
# (rows x encoded columns; 256 MiB of float64).  scikit-learn's brute-force search on a sparse
# training matrix converts all of it to another sparse format on every call; on a dense one it
# runs its compiled nearest-neighbour search.  One request row, synthetic 10 numeric + 10 text
# features, 10,000 training rows (105 encoded columns), in-process CPU time, loaded machine:
# README's compiled-inference section has the figures and the command.
DENSE_NEIGHBOURS_MAX_CELLS = 2**25


# scikit-learn is untyped (Any): the mixin below calls its neighbour estimators through super().
_NeighboursBase: Any = object


class _DenseWhenSmall(_NeighboursBase):
    """Fit and predict on the dense form of a sparse input matrix when the training matrix has at
    most DENSE_NEIGHBOURS_MAX_CELLS cells (``dense_input_``, decided once at fit).

    The model then searches dense rows wherever it is asked (training metrics, validation,
    serving): the same representation everywhere, so neighbours and their ties come out the
    same.  Models fitted before this have no ``dense_input_`` and search as they did."""

    def _fitted_form(self, X: Any) -> Any:
        if getattr(self, "dense_input_", False) and sparse.issparse(X):
            return X.toarray()
        return X

    def fit(self, X: Any, y: Any) -> Any:
        check_enough_rows(self.n_neighbors, X.shape[0])
        self.dense_input_ = sparse.issparse(X) and X.shape[0] * X.shape[1] <= DENSE_NEIGHBOURS_MAX_CELLS
        return super().fit(self._fitted_form(X), y)

    def kneighbors(self, X: Any = None, n_neighbors: Any = None, return_distance: bool = True) -> Any:
        X = X if X is None else self._fitted_form(X)
        return super().kneighbors(X, n_neighbors, return_distance)

    def predict(self, X: Any) -> Any:
        return super().predict(self._fitted_form(X))


class NeighboursClassifier(_DenseWhenSmall, KNeighborsClassifier):
    """KNeighborsClassifier that checks n_neighbors against the rows at fit time and searches
    dense rows when the training matrix is small enough (:class:`_DenseWhenSmall`)."""

    def predict_proba(self, X: Any) -> Any:
        return super().predict_proba(self._fitted_form(X))


class NeighboursRegressor(_DenseWhenSmall, KNeighborsRegressor):
    """KNeighborsRegressor that checks n_neighbors against the rows at fit time and searches
    dense rows when the training matrix is small enough (:class:`_DenseWhenSmall`)."""


def knn(problem_type: str, params: Mapping[str, Any]) -> Any:
    cls = NeighboursRegressor if problem_type == REGRESSION else NeighboursClassifier
    return cls(
        n_neighbors=params["n_neighbors"], weights=params["weights"], p=params["p"], n_jobs=params["n_jobs"]
    )


class TooFewClassRows(HyperparameterError):
    """A class has fewer training rows than svm's calibration folds.  Raised at fit, where only
    the class codes are known; :meth:`naming` restates it with the labels, for the caller
    that has them (:func:`byoc.fit.builtin`)."""

    def __init__(self, folds: int, rare: Mapping[Any, int]) -> None:
        self.folds, self.rare = folds, dict(rare)
        shown = ", ".join(f"{label!r}: {rows} rows" for label, rows in list(self.rare.items())[:5])
        more = f" and {len(self.rare) - 5} more" if len(self.rare) > 5 else ""
        super().__init__(
            f"hyperparameter 'calibration_folds'={folds}: svm calibrates its class probabilities on "
            f"{folds} stratified folds, which needs at least {folds} training rows of every class, "
            f"but {len(self.rare)} class(es) have fewer ({shown}{more}); lower calibration_folds "
            "(at least 2) or add rows of those classes"
        )

    def naming(self, classes: Any) -> TooFewClassRows:
        return TooFewClassRows(self.folds, {classes[int(code)]: rows for code, rows in self.rare.items()})


class CalibratedSVC(CalibratedClassifierCV):
    """An SVC whose probabilities are calibrated on held-out folds (sigmoid; one SVC refitted on
    every row: ``ensemble=False``); predict is the argmax of predict_proba, so label and
    probabilities agree (``SVC(probability=True)`` is deprecated in scikit-learn 1.9).

    Checks at fit that every class has ``cv`` rows: scikit-learn's own error names neither the
    hyperparameter nor the fix."""

    def fit(self, X: Any, y: Any, **fit_params: Any) -> Any:
        codes, counts = np.unique(np.asarray(y), return_counts=True)
        rare = counts < self.cv
        if rare.any():
            raise TooFewClassRows(
                self.cv, {code.item(): int(n) for code, n in zip(codes[rare], counts[rare], strict=True)}
            )
        return super().fit(X, y, **fit_params)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _unfinite_solution(exc: BaseException) -> bool:
    """Whether ``exc`` left a libsvm fit whose solution is not finite.

    scikit-learn refuses such a fit with a ValueError raised in the SVM's own ``fit``, after
    libsvm set ``dual_coef_`` and ``intercept_``: the frames the exception passed through hold
    that SVM (a calibration fold's clone included), so its solution is checked itself rather
    than scikit-learn's wording, which a rewording would silently stop matching."""
    frame = exc.__traceback__
    while frame is not None:
        fitted = frame.tb_frame.f_locals.get("self")
        if isinstance(fitted, (SVC, SVR)):  # the SVMs svm builds
            solution = [getattr(fitted, name, None) for name in ("dual_coef_", "intercept_")]
            values = [part.data if sparse.issparse(part) else part for part in solution if part is not None]
            if len(values) == 2 and not all(np.isfinite(part).all() for part in values):
                return True
        frame = frame.tb_next
    return False


def kernel_overflow(exc: ValueError, params: Mapping[str, Any]) -> HyperparameterError | None:
    """The hyperparameter error for an svm fit whose solution came out infinite, or None.

    libsvm's solution overflows float64 when the kernel's values are huge: on standardised
    inputs only the poly kernel gets there, (gamma x.y)^degree with a large gamma or degree."""
    if params["algorithm"] != "svm" or not _unfinite_solution(exc):
        return None
    return HyperparameterError(
        f"hyperparameters kernel={params['kernel']}, gamma={_number(params['gamma'])}, "
        f"degree={params['degree']}, C={params['C']:g}: svm's kernel values on the training rows "
        "overflow, and its solution came out infinite; lower gamma (scale suits byoc's "
        "standardised inputs) or degree, or use kernel=rbf"
    )


def svm(problem_type: str, params: Mapping[str, Any]) -> Any:
    check_applies("svm", problem_type, params)
    kernel = {
        "C": params["C"],
        "kernel": params["kernel"],
        "gamma": params["gamma"],
        "degree": params["degree"],
    }
    kernel["max_iter"] = -1 if params["max_iter"] is None else params["max_iter"]
    if problem_type == REGRESSION:
        _class_weight(problem_type, params)
        return SVR(epsilon=0.1 if params["epsilon"] is None else params["epsilon"], **kernel)
    svc = SVC(**kernel, **_class_weight(problem_type, params))
    folds = params["calibration_folds"]
    return CalibratedSVC(svc, cv=CALIBRATION_FOLDS if folds is None else folds, ensemble=False)
