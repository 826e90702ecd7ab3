"""Declarations versus scikit-learn: every declared range is one the mapped estimator accepts.

For each built-in algorithm and problem type, each declared hyperparameter is set to the ends
of its declared range (and each choice, None when nullable), resolved, built into the estimator
and checked by the estimator's own ``_parameter_constraints`` (``_validate_params``).  A
declaration wider than scikit-learn's fails here, before a training job could.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pandas as pd
import pytest

from byoc import algorithms
from byoc.algorithms import builtin
from byoc.declarations import Hyperparameter
from byoc.errors import HyperparameterError
from byoc.hyperparameters import common, resolve
from byoc.preprocessing import feature_schema

PROBLEM_TYPES = ("regression", "binary_classification")  # multiclass builds the binary estimators
LARGE = 10**6  # stands in for "unbounded above"
FEATURES = feature_schema(pd.DataFrame({"number": [1.0, 2.0, None], "colour": ["a", "b", "a"]}))
# Hyperparameters that configure byoc itself, not an estimator parameter.
NOT_ESTIMATOR_PARAMETERS = {"algorithm", "problem_type", "target", "header", "content_type", "cv_folds"}
NOT_ESTIMATOR_PARAMETERS |= {"use_custom_ensemble"}
# What a value needs beside it to be valid at all (hyperparameters.resolve's cross-checks).
COMPANIONS = {"max_samples": {"bootstrap": True}}
# byoc's own estimator (its members are covered one by one) and the AutoML search (tested in
# test_automl_parts.py): neither maps onto one scikit-learn estimator.
NOT_ONE_ESTIMATOR = ("ensemble", "auto")
# byoc's names for a wrapper's own parameters (svm's CalibratedClassifierCV: its folds).
RENAMED = {"cv": "calibration_folds"}


def range_values(decl: Hyperparameter) -> list[Any]:
    """The ends of the declared range, every choice, None when nullable, and the default."""
    values: list[Any] = list(decl.choices)
    if decl.kind in ("int", "float"):
        step = 1 if decl.kind == "int" else None
        if decl.minimum is not None:
            low = decl.minimum
            if decl.exclusive_minimum:
                low = low + 1 if step else math.nextafter(low, math.inf)
            values.append(low)
        high = decl.maximum
        if high is not None and decl.exclusive_maximum:
            high = high - 1 if step else math.nextafter(high, -math.inf)
        values.append(high if high is not None else LARGE)
        values = [v for v in values if v not in decl.forbidden]
    elif decl.kind == "bool":
        values += [True, False]
    if decl.nullable:
        values.append(None)
    values.append(decl.default)
    return values


def cases() -> list[tuple[str, str, Hyperparameter, Any]]:
    out = []
    for algorithm in algorithms.names():
        if algorithm in NOT_ONE_ESTIMATOR:
            continue
        declarations = (*common(), *algorithms.get(algorithm).hyperparameters)
        for decl in declarations:
            if decl.name in NOT_ESTIMATOR_PARAMETERS:
                continue
            for problem_type in PROBLEM_TYPES:
                out += [(algorithm, problem_type, decl, value) for value in range_values(decl)]
    return out


def estimator(algorithm: str, problem_type: str, raw: dict[str, Any]) -> Any:
    params = resolve({"algorithm": algorithm, "problem_type": problem_type, **raw})
    return algorithms.build(problem_type, params, FEATURES).named_steps["model"]


def parts(model: Any) -> list[Any]:
    """The estimator and, for a wrapper (svm's calibration), the estimator it wraps."""
    inner = model.get_params(deep=False).get("estimator")
    return [model] if inner is None else [model, inner]


def parameters(model: Any) -> dict[str, Any]:
    """Every part's parameters, by byoc's names."""
    out: dict[str, Any] = {}
    for part in parts(model):
        out.update({RENAMED.get(k, k): v for k, v in part.get_params(deep=False).items()})
    return out


# Where None (no limit) is spelt otherwise by scikit-learn: libsvm's max_iter=-1.
NO_LIMIT = {("svm", "max_iter"): -1}


@pytest.mark.parametrize(
    "algorithm, problem_type, decl, value",
    cases(),
    ids=lambda v: v.name if isinstance(v, Hyperparameter) else repr(v),
)
def test_declared_range_is_accepted_by_the_estimator(algorithm, problem_type, decl, value):
    try:
        model = estimator(algorithm, problem_type, {decl.name: value, **COMPANIONS.get(decl.name, {})})
    except HyperparameterError as exc:  # a value for the other problem type (criterion=gini)
        assert problem_type in str(exc) or "classification only" in str(exc)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a deprecated value is drift too
        for part in parts(model):
            part._validate_params()  # scikit-learn's own _parameter_constraints
    given = parameters(model)
    own = decl in algorithms.get(algorithm).hyperparameters  # common ones (n_jobs) serve only some
    # None for a one-problem hyperparameter means "not given": scikit-learn's default is passed
    # (test_algorithms.test_hyperparameters_of_one_problem_type_default_to_sklearns_values).
    not_given = value is None and decl.name in builtin.ONE_PROBLEM_ONLY.get(algorithm, {})
    if own and decl.name in given and value != "auto" and not not_given:
        expected = NO_LIMIT.get((algorithm, decl.name), value) if value is None else value
        assert given[decl.name] == expected, f"{decl.name}={value!r} did not reach {type(model).__name__}"


@pytest.mark.parametrize("algorithm", [a for a in algorithms.names() if a not in NOT_ONE_ESTIMATOR])
def test_every_declaration_maps_to_an_estimator_parameter(algorithm):
    """Else the range test above would check nothing for it."""
    accepted = set()
    for problem_type in PROBLEM_TYPES:
        accepted |= set(parameters(estimator(algorithm, problem_type, {})))
    declared = {d.name for d in algorithms.get(algorithm).hyperparameters}
    assert declared - accepted == set()


def open_ends() -> list[tuple[str, Hyperparameter, float]]:
    """Every (algorithm, declaration, end) where a declared range is open: that end is excluded."""
    out = []
    for algorithm in algorithms.names():
        for decl in (*common(), *algorithms.get(algorithm).hyperparameters):
            if decl.exclusive_minimum and decl.minimum is not None:
                out.append((algorithm, decl, decl.minimum))
            if decl.exclusive_maximum and decl.maximum is not None:
                out.append((algorithm, decl, decl.maximum))
    return out


@pytest.mark.parametrize(
    "algorithm, decl, end", open_ends(), ids=lambda v: v.name if isinstance(v, Hyperparameter) else repr(v)
)
def test_the_excluded_end_of_an_open_range_is_refused(algorithm, decl, end):
    """validation_fraction is in (0, 1): 1 holds out every row, and scikit-learn refuses it only
    inside the fit (an internal error, exit 2). The range test above nudges open ends inward, so
    only this one sees an open end read as closed."""
    with pytest.raises(HyperparameterError, match=rf"'{decl.name}'"):
        decl.coerce(end)
    with pytest.raises(HyperparameterError, match=rf"'{decl.name}'"):
        decl.coerce(str(end))
    assert open_ends(), "no declaration has an open end: the test checks nothing"
