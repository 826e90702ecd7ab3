"""The fit step: prepared training data in, fitted pipeline + metrics + details out.

The training flow (:mod:`byoc.training`) reads the channels, splits off and encodes the target
and infers the problem type; it then hands a :class:`FitInput` to a fit step and saves what the
:class:`FitOutput` holds.  A built-in algorithm is one fit step (:func:`builtin`); others (an
AutoML search) plug in with the same signature, :data:`FitStep`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from byoc.artifact import Feature
    from byoc.environment import TrainingEnvironment
    from byoc.job import Progress

log = logging.getLogger("byoc.training")


@dataclass(frozen=True)
class Encoded:
    """One channel ready for the model: raw feature columns and the encoded target."""

    X: pd.DataFrame
    y: np.ndarray  # class indices 0..n_classes-1, or floats for regression


@dataclass(frozen=True)
class FitInput:
    """What every fit step gets.

    ``channels`` holds ``train`` and, when given, ``validation`` and ``test``; ``params`` are
    the resolved hyperparameters (every default filled in); ``features`` is the schema the
    model will be served with.
    """

    env: TrainingEnvironment
    params: Mapping[str, Any]
    problem_type: str
    features: tuple[Feature, ...]
    channels: Mapping[str, Encoded]
    n_classes: int | None
    progress: Progress
    classes: tuple[Any, ...] | None = None  # the class labels, in the order of their codes
    target: str = "column 0"  # the label column, for messages: "column 'deposit'", "column 0"

    @property
    def train(self) -> Encoded:
        return self.channels["train"]


@dataclass(frozen=True)
class FitOutput:
    """What every fit step returns: the pipeline to save, metrics per channel, and details.

    ``metrics`` maps channel -> metric -> value (see :mod:`byoc.metrics`); ``details`` are
    JSON-able facts for model.json (importances, ensemble weights, ...).
    """

    pipeline: Pipeline
    metrics: dict[str, dict[str, float]]
    details: dict[str, Any]
    fit_seconds: float
    # Why the model is not compiled for serving this time (auto near its deadline), or None.
    compile_skipped: str | None = None
    # time.monotonic() by which compiling stops: members not converted by then stay scikit-learn's.
    compile_deadline: float | None = None


FitStep = Callable[[FitInput], FitOutput]


def evaluate(problem_type: str, pipeline: Pipeline, data: Encoded, n_classes: int | None) -> dict[str, float]:
    """One channel's metrics for a fitted pipeline."""
    from byoc import metrics
    from byoc.artifact import REGRESSION

    if problem_type != REGRESSION and _predicts_from_proba(pipeline):
        proba = pipeline.predict_proba(data.X)
        predicted = pipeline.steps[-1][1].classes_.take(proba.argmax(axis=1), axis=0)
        return metrics.compute(problem_type, data.y, predicted, proba, n_classes)
    predicted = pipeline.predict(data.X)
    proba = None
    if problem_type != REGRESSION and hasattr(pipeline, "predict_proba"):
        proba = pipeline.predict_proba(data.X)
    return metrics.compute(problem_type, data.y, predicted, proba, n_classes)


def _predicts_from_proba(pipeline: Pipeline) -> bool:
    """Whether the pipeline ends in a scikit-learn forest classifier of one output, whose
    predict is the class of its predict_proba's largest column, computed by calling
    predict_proba: :func:`evaluate` then takes the labels from its one predict_proba (a forest
    walked once, not twice: 2.7 of 5.8 s on 200,000 rows).  Other models' predict is not that
    (gradient boosting's and logistic regression's compare raw scores, a tree's its unnormalised
    values), so they keep both calls."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else None
    return (
        isinstance(final, (RandomForestClassifier, ExtraTreesClassifier))
        # both inherit scikit-learn's forest predict (no private module needed to name it)
        and type(final).predict is RandomForestClassifier.predict
        and getattr(final, "n_outputs_", 1) == 1
    )


# Hyperparameters that make a fit diverge or underfit when pushed: named first when the job set them.
STEP_AND_PENALTY = ("learning_rate", "C", "alpha", "l2_regularization", "gamma", "ccp_alpha", "epsilon")


def worse_than_constant(
    inputs: FitInput, params: Mapping[str, Any], train: Mapping[str, float]
) -> str | None:
    """A warning when the fitted model does worse on its own training rows than a constant would
    (regression: r2 below 0, worse than their mean; classification: accuracy below the majority
    class's share and balanced accuracy below chance, 1 / classes, so that class weights trading
    accuracy for the rare classes are not warned of), naming the algorithm hyperparameters the
    job set.  Such a model is the user's right (a learning_rate of 10 is within its range), but it
    predicts nothing usable, and a job ending with exit 0 said nothing of it."""
    import numpy as np

    from byoc.artifact import REGRESSION

    if inputs.problem_type == REGRESSION:
        r2 = train.get("r2")
        if r2 is None or not r2 < 0:
            return None
        worse = f"than predicting their mean: train:r2 {r2:.3g} (the mean's is 0)"
    else:
        accuracy, balanced = train.get("accuracy"), train.get("balanced_accuracy")
        counts = np.bincount(np.asarray(inputs.train.y, dtype=np.int64))
        share, chance = float(counts.max() / counts.sum()), 1 / max(inputs.n_classes or 2, 2)
        if accuracy is None or balanced is None or not (accuracy < share and balanced < chance):
            return None
        worse = (
            f"than predicting the majority class for every row: train:accuracy {accuracy:.3g} (the "
            f"majority's share is {share:.3g}), balanced_accuracy {balanced:.3g} (chance is {chance:.3g})"
        )
    return f"{params['algorithm']} fits the training rows worse {worse}; {_likely_cause(inputs, params)}"


def _likely_cause(inputs: FitInput, params: Mapping[str, Any]) -> str:
    """The algorithm hyperparameters the job set away from their defaults, the step sizes and
    penalties first; or that there are none.  For ``auto``, that it chose by held-out scores."""
    from byoc import algorithms, hyperparameters

    if params["algorithm"] == "auto":
        return (
            f"auto chose it by its held-out score (validation: in metrics.json), which it does not "
            f"come near on the {len(inputs.train.y)} rows it was refitted on: too few rows to choose "
            "a model by held-out scores; add rows, or set algorithm to one model. The model is saved "
            "as trained"
        )
    given = hyperparameters.given_names(inputs.env.hyperparameters)
    # this algorithm's own defaults: algorithms share names with other defaults (min_samples_leaf
    # is 1 for the forests and 20 for gradient_boosting, max_iter 100, 1000 or 1,000,000)
    defaults = {h.name: h.default for h in algorithms.get(params["algorithm"]).hyperparameters}
    set_here = sorted(
        (name for name in given if name in defaults and name in params and params[name] != defaults[name]),
        key=lambda name: (name not in STEP_AND_PENALTY, name),
    )
    if not set_here:
        return "it ran with its default hyperparameters: check that the features can predict the target"
    shown = ", ".join(f"{name}={params[name]}" for name in set_here)
    return (
        f"the hyperparameters this job set are the likely cause, most likely the first: {shown} (try "
        "their defaults: a large learning rate diverges, an extreme penalty underfits). The model is "
        "saved as trained"
    )


def _fit(pipeline: Pipeline, params: Mapping[str, Any], inputs: FitInput) -> float:
    """Fit ``pipeline`` on the train channel; scikit-learn's refusals named as user errors."""
    from byoc.algorithms.builtin import TooFewClassRows, kernel_overflow, solver_stops_logged

    started = time.monotonic()
    try:
        with solver_stops_logged(params, log):
            pipeline.fit(inputs.train.X, inputs.train.y)
    except TooFewClassRows as exc:  # raised with class codes: name the labels
        if inputs.classes is None:
            raise
        raise exc.naming(inputs.classes) from None
    except ValueError as exc:
        explained = kernel_overflow(exc, params)
        if explained is None:
            raise
        raise explained from exc
    fit_seconds = time.monotonic() - started
    log.info("fitting finished in %.2f s", fit_seconds)
    return fit_seconds


def encoded_columns(pipeline: Pipeline) -> int | None:
    """How many columns the pipeline's fitted preprocessing makes, or None before it is fitted
    (or when each ensemble member encodes on its own): the width the model is fitted on."""
    preprocess = pipeline.steps[0][1]
    try:
        return len(preprocess.get_feature_names_out())
    except (AttributeError, ValueError):  # "passthrough", or NotFittedError (both of these)
        return None


def builtin(inputs: FitInput) -> FitOutput:
    """Build ``params["algorithm"]`` from the registry, fit it on train, evaluate every channel."""
    from byoc import algorithms, outofmemory
    from byoc.algorithms.builtin import check_poisson_target, leaves_within_rows

    train = inputs.train
    params, note = leaves_within_rows(inputs.params, train.X.shape[0])
    if note:
        log.info(note)
    pipeline = algorithms.build(inputs.problem_type, params, inputs.features)
    check_poisson_target(params, train.y, inputs.target)
    shape = f"{train.X.shape[0]} rows x {train.X.shape[1]} feature columns"
    inputs.progress.phase = f"fitting {params['algorithm']} on {shape}"
    log.info("fitting started: %s on %s", params["algorithm"], shape)
    try:
        fit_seconds = _fit(pipeline, params, inputs)
        scores = {}
        for name, data in inputs.channels.items():
            inputs.progress.phase = f"evaluating {params['algorithm']} on channel '{name}'"
            scores[name] = evaluate(inputs.problem_type, pipeline, data, inputs.n_classes)
        inputs.progress.phase = f"describing the fitted {params['algorithm']}"
        details = algorithms.describe(pipeline, train.X, train.y)
    except MemoryError as exc:
        width = encoded_columns(pipeline)
        doing = inputs.progress.phase + (f" ({width} columns once encoded)" if width is not None else "")
        raise outofmemory.error(doing, exc, hyperparameters=outofmemory.size_hyperparameters(params)) from exc
    return FitOutput(pipeline=pipeline, metrics=scores, details=details, fit_seconds=fit_seconds)
