"""`evaluate`: score a trained model on a test channel and write SageMaker's model-quality JSON.

Meant for a Processing step (``Processor(image_uri=<this image>, entrypoint=["evaluate"])``, its
flags as ``arguments``; a ScriptProcessor would pass its code file to it): it reads the model (a
directory, or model.tar.gz as a training job leaves it) and the test data the same way training
read its channels (same readers, same target position, same feature coercion and label
encoding), predicts, and writes
``evaluation.json`` in the model-quality format that Model Monitor produces and that the model
registry's ``ModelMetrics`` and a Pipelines ``PropertyFile``/``JsonGet`` read::

    {"binary_classification_metrics": {"accuracy": {"value": 0.91, "standard_deviation": 0.01},
                                       "confusion_matrix": {"no": {"no": 50, "yes": 3}, ...}, ...}}

``standard_deviation`` follows Model Monitor: with at least 200 rows, the standard deviation of
the metric over five random 80 % samples; otherwise the string ``"NaN"``.  The positive class
of binary metrics is ``--positive-class``, by default the second class in sorted order (as in
:mod:`byoc.metrics`); the log says which it is.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import time
import traceback
import warnings
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import numpy as np

from byoc import logtext
from byoc.artifact import BINARY, MULTICLASS, REGRESSION

log = logging.getLogger("byoc.evaluation")

PROCESSING_BASE = Path("/opt/ml/processing")
DEFAULT_MODEL = PROCESSING_BASE / "model"
DEFAULT_TEST = PROCESSING_BASE / "test"
DEFAULT_OUTPUT = PROCESSING_BASE / "evaluation"
SECTION = {
    BINARY: "binary_classification_metrics",
    MULTICLASS: "multiclass_classification_metrics",
    REGRESSION: "regression_metrics",
}
MIN_ROWS_FOR_DEVIATION = 200
# Added when row 1 of a CSV test file read without a header row breaks the model's schema.
HEADER_HINT = (
    " (is row 1 a header row? The model was trained on CSV without one: pass --header true to read past it)"
)
RESAMPLES = 5
RESAMPLE_FRACTION = 0.8
# Points kept of each curve: scikit-learn's has one per distinct score (a million rows of a
# linear model: a 73 MB evaluation.json that Studio charts and every JsonGet downloads).
MAX_CURVE_POINTS = 1001

Metric = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], float]
# What evaluate says when memory runs out (a MemoryError: the instance's size, not a bug of byoc's
# nor the model's fault): the Processing job's own fix, not training's.
OUT_OF_MEMORY_FIXES = (
    "run the Processing job on an instance type with more memory (a larger instance_type): evaluate "
    "holds the whole test set, its predictions and the model in memory"
)


class Progress:
    """What evaluate is doing, for the message when memory runs out or the job is stopped
    (training's ``phase``); ``commit`` guards the report's rename against a stop."""

    def __init__(self) -> None:
        self.doing = "starting"
        self.started = time.monotonic()
        self.written = False
        self.commit = threading.Lock()
        self.scratch: Path | None = None  # where a model.tar.gz is unpacked, removed at a stop
        self.removed: Path | None = None  # the --output whose earlier evaluation.json was removed

    def outcome(self, message: str) -> str:
        """``message`` (a failure's), saying that no earlier evaluation.json is left when one was removed."""
        if self.removed is None:
            return message
        return (
            f"{message} (No evaluation.json is in {self.removed}: the one an earlier run left there was "
            "removed when this run started.)"
        )


def clear_earlier_report(output: Path, progress: Progress) -> None:
    """Remove the evaluation.json an earlier run left in ``output`` (a Pipelines condition step
    would read it as this run's when this run fails), noting it on ``progress``."""
    from byoc.evaluation_report import remove_earlier_report

    progress.doing = f"removing the evaluation.json an earlier run left in {output}"
    if remove_earlier_report(output):
        progress.removed = output
        log.warning(
            "removed the evaluation.json an earlier run left in %s: this run writes its own, or none if it fails",
            output,
        )


def stop_handler(message_file: Path, progress: Progress) -> Callable[[int], None]:
    """What a stop signal does (StopProcessingJob sends SIGTERM, SIGKILL after its grace
    period): the job's ExitMessage says what evaluate was doing and that no evaluation.json was
    written, where the job used to end with no message at all; a report already renamed into
    place is kept, and the job finishes normally."""
    from byoc.job import exit_stopped, write_failure

    def on_stop(signum: int) -> None:
        name = signal.Signals(signum).name
        log.warning("%s received while %s: stopping", name, progress.doing)
        with progress.commit:
            if progress.written:
                log.warning("evaluation.json was already written; finishing normally")
                return
            why = "StopProcessingJob" if signum == signal.SIGTERM else "interrupted"
            write_failure(
                message_file,
                progress.outcome(
                    f"Processing job stopped by {name} ({why}) while {progress.doing}, after "
                    f"{time.monotonic() - progress.started:.1f} s; no evaluation.json was written. "
                    "Start the Processing job again to evaluate the model."
                ),
            )
            if progress.scratch is not None:
                shutil.rmtree(progress.scratch, ignore_errors=True)
            exit_stopped()

    return on_stop


# -- the metrics ---------------------------------------------------------------------------------


def _classification_metrics(prefix: str, score: Callable[..., Metric]) -> dict[str, Metric]:
    """Accuracy and the precision/recall/F family, each scored by ``score(sklearn_metric, **kw)``."""
    from sklearn import metrics as skm

    return {
        "accuracy": lambda y, p, _: float(skm.accuracy_score(y, p)),
        f"{prefix}precision": score(skm.precision_score),
        f"{prefix}recall": score(skm.recall_score),
        f"{prefix}f0_5": score(skm.fbeta_score, beta=0.5),
        f"{prefix}f1": score(skm.f1_score),
        f"{prefix}f2": score(skm.fbeta_score, beta=2.0),
    }


def _binary_metrics() -> dict[str, Metric]:
    from sklearn import metrics as skm

    def rate(numerator: tuple[int, int], denominator_true: int) -> Metric:
        def compute(y: np.ndarray, p: np.ndarray, _: Any) -> float:
            cm = skm.confusion_matrix(y, p, labels=[0, 1])
            total = cm[denominator_true].sum()
            return float(cm[numerator] / total) if total else float("nan")

        return compute

    # A ratio the test data leaves 0/0 (recall with no positive row, precision with none predicted
    # positive) is NaN, as the rates beside it are: zero_division=0 wrote a 0.0 that reads as a
    # model finding none of the positives, and disagreed with true_positive_rate in the same report.
    def scored(fn: Callable[..., float], **kw: Any) -> Metric:
        return lambda y, p, _: float(fn(y, p, labels=[0, 1], pos_label=1, zero_division=np.nan, **kw))

    return {
        **_classification_metrics("", scored),
        "auc": lambda y, _, s: (
            float(skm.roc_auc_score(y, s)) if s is not None and len(set(y)) == 2 else float("nan")
        ),
        "true_positive_rate": rate((1, 1), 1),
        "true_negative_rate": rate((0, 0), 0),
        "false_positive_rate": rate((0, 1), 0),
        "false_negative_rate": rate((1, 0), 1),
    }


def _multiclass_metrics(n_classes: int) -> dict[str, Metric]:
    labels = list(range(n_classes))

    def weighted(fn: Callable[..., float], **kw: Any) -> Metric:
        return lambda y, p, _: float(fn(y, p, labels=labels, average="weighted", zero_division=0, **kw))

    return _classification_metrics("weighted_", weighted)


def _regression_metrics() -> dict[str, Metric]:
    """Training's own regression metrics (:mod:`byoc.metrics`), in Model Monitor's order; one it
    leaves out as undefined (R² of fewer than two rows or of a constant target, where scikit-learn
    says 0.0 or 1.0) is NaN."""
    from byoc import metrics

    def named(name: str) -> Metric:
        return lambda y, p, _: metrics.compute(REGRESSION, y, p).get(name, float("nan"))

    return {name: named(name) for name in ("mae", "mse", "rmse", "r2")}


def _number(value: float) -> float | str:
    return value if np.isfinite(value) else "NaN"


def _with_deviation(metric: Metric, y: np.ndarray, p: np.ndarray, s: np.ndarray | None, seed: int) -> dict:
    value = metric(y, p, s)
    deviation: float | str = "NaN"
    if len(y) >= MIN_ROWS_FOR_DEVIATION:
        rng = np.random.default_rng(seed)
        size = int(len(y) * RESAMPLE_FRACTION)
        samples = []
        for _ in range(RESAMPLES):
            rows = rng.choice(len(y), size=size, replace=False)
            samples.append(metric(y[rows], p[rows], None if s is None else s[rows]))
        deviation = _number(float(np.std(samples)))
    return {"value": _number(value), "standard_deviation": deviation}


def _thinned(*coordinates: np.ndarray) -> list[list[float]]:
    """A curve's coordinate arrays at no more than MAX_CURVE_POINTS of its own points, evenly
    spaced along it, both ends kept (the metrics themselves come from every row)."""
    count = len(coordinates[0])
    if count > MAX_CURVE_POINTS:
        kept = np.unique(np.linspace(0, count - 1, MAX_CURVE_POINTS).round().astype(int))
        coordinates = tuple(axis[kept] for axis in coordinates)
    return [axis.tolist() for axis in coordinates]


def _confusion(y: np.ndarray, p: np.ndarray, classes: Sequence[Any]) -> dict[str, dict[str, int]]:
    """``{actual: {predicted: count}}`` keyed by the original class labels, as Model Monitor does."""
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(y, p, labels=list(range(len(classes))))
    names = [str(c) for c in classes]
    return {names[i]: {names[j]: int(cm[i, j]) for j in range(len(names))} for i in range(len(names))}


def model_quality(
    problem_type: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None = None,
    classes: Sequence[Any] | None = None,
    *,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """The evaluation.json document for encoded labels (indices into ``classes``) or values."""
    from sklearn import metrics as skm

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if problem_type == REGRESSION:
        y_true, y_pred = y_true.astype(float), y_pred.astype(float)
        table = _regression_metrics()
        score = None
    elif problem_type == BINARY:
        table = _binary_metrics()
        score = None if proba is None else np.asarray(proba, dtype=float)[:, 1]
    elif problem_type == MULTICLASS:
        table = _multiclass_metrics(len(classes or ()))
        score = None
    else:
        raise ValueError(f"unknown problem type {problem_type!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        section: dict[str, Any] = {
            name: _with_deviation(metric, y_true, y_pred, score, seed) for name, metric in table.items()
        }
        if problem_type != REGRESSION:
            section["confusion_matrix"] = _confusion(y_true, y_pred, classes or ())
        if score is not None and len(set(y_true.tolist())) == 2:
            fpr, tpr = _thinned(*skm.roc_curve(y_true, score)[:2])
            precisions, recalls = _thinned(*skm.precision_recall_curve(y_true, score)[:2])
            section["receiver_operating_characteristic_curve"] = {
                "false_positive_rates": fpr,
                "true_positive_rates": tpr,
            }
            section["precision_recall_curve"] = {"precisions": precisions, "recalls": recalls}
    return {SECTION[problem_type]: section}


# -- reading the model and the test data ---------------------------------------------------------


# A model without model.json: a script-mode job's artefact, which passing estimator.model_data
# again would not change.
NOT_BUILT_IN = (
    ": evaluate scores models byoc's built-in algorithms trained; score a model your own training "
    "script saved from a processing script of your own (ScriptProcessor(command=['python3']))"
)


def _not_built_in(held: list[str]) -> str:
    """Why a folder holding ``held`` but no model.json is not evaluated: byoc's own files whose
    model.json was lost in a re-pack (the fix is to re-pack it whole), else another program's."""
    from byoc.artifact import model_json_lost

    lost = model_json_lost(held)
    return f": {lost}" if lost else NOT_BUILT_IN


class ModelFiles(NamedTuple):
    """The model as an endpoint gets it (``root``: serve looks for inference code from there), the
    model directory in it (see :func:`byoc.artifact.locate`), and the model.tar.gz ``root`` was
    unpacked from (None: ``root`` is the directory given)."""

    root: Path
    model_dir: Path
    archive: Path | None


def model_directory(path: Path, scratch: Path) -> ModelFiles:
    """The model in ``path`` itself, or in model.tar.gz (given, or inside ``path``) unpacked into
    ``scratch``."""
    from byoc.artifact import METADATA_FILE, locate
    from byoc.errors import ModelLoadError

    archive = path if path.is_file() else path / "model.tar.gz"
    if path.is_dir() and ((found := locate(path)) / METADATA_FILE).is_file():
        return ModelFiles(path, found, None)
    held = sorted(p.name for p in path.iterdir()) if path.is_dir() and not archive.is_file() else []
    if held:  # the artefact of a script-mode job: passing estimator.model_data again would not help
        raise ModelLoadError(
            f"{path}: holds {', '.join(held[:10])} but no {METADATA_FILE} or model.tar.gz"
            + _not_built_in(held)
        )
    if not archive.is_file():
        raise ModelLoadError(
            f"{path}: neither a model directory ({METADATA_FILE}) nor model.tar.gz; pass the training "
            "job's model artefact (ProcessingInput(source=estimator.model_data, destination="
            f"'{DEFAULT_MODEL}')) or --model <directory or model.tar.gz>"
        )
    try:
        with tarfile.open(archive) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(scratch, filter="data")
            else:  # pragma: no cover - Python without PEP 706
                tar.extractall(scratch)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:  # EOFError, zlib: cut short, corrupt
        raise ModelLoadError(
            f"{archive}: cannot be unpacked ({type(exc).__name__}: {exc}); pass the model.tar.gz the "
            "training job wrote (estimator.model_data), whole"
        ) from exc
    try:
        found = locate(scratch)
    except ModelLoadError as exc:
        raise in_archive(exc, scratch, archive) from exc
    if not (found / METADATA_FILE).is_file():
        held = sorted(p.name for p in scratch.iterdir())
        if not held:
            raise ModelLoadError(f"{archive}: holds no file; pass the model.tar.gz the training job wrote")
        raise ModelLoadError(
            f"{archive}: holds {', '.join(held[:10])} but no {METADATA_FILE}{_not_built_in(held)}"
        )
    return ModelFiles(scratch, found, archive)


def in_archive(exc: Exception, root: Path, archive: Path | None) -> Exception:
    """``exc`` about files of the model unpacked into ``root`` (a scratch directory, gone by the
    time anyone reads the message) said of the model.tar.gz they came from: ``model.joblib:
    sha256 ...`` after the archive's path, not a temporary path the user never saw."""
    from byoc.errors import ModelLoadError

    text = str(exc)
    if archive is None or str(root) not in text:
        return exc
    text = text.replace(f"{root}{os.sep}", "").replace(str(root), str(archive))
    return ModelLoadError(text if text.startswith(str(archive)) else f"{archive}: {text}")


# The hooks that decide what the endpoint predicts.  input_fn counts: the rows it makes of a request
# are what the endpoint predicts on, and it may fill, scale or derive features, which evaluate cannot
# reproduce (its test rows are files read as training reads them, not the bodies clients send, in
# whatever content type and batches they send them), so scoring byoc's reading of the test files
# would report a metric for inputs the endpoint never sees.  output_fn only encodes the answer.
_PREDICTING_HOOKS = ("model_fn", "input_fn", "predict_fn", "transform_fn")
# what an input_fn changes, said beside it
_INPUT_FN_NOTE = (
    " (input_fn makes the rows the endpoint predicts on from each request, which may differ from the "
    "test data as evaluate reads it)"
)


def refuse_inference_code(model: ModelFiles, environ: Mapping[str, str]) -> None:
    """ModelLoadError when the model carries inference code whose hooks decide the endpoint's
    predictions: evaluate scores model.joblib without running user code, so its report would
    describe another model than the one the endpoint serves, with nothing to show it.

    The programs are the ones serve would load from the model as the endpoint gets it (:func:`byoc.serving.hooks.programs_for`, under any
    SAGEMAKER_PROGRAM unless ``environ`` sets one), and their hooks are found by reading them
    (:mod:`byoc.serving.static_hooks`), never by running them."""
    import ast

    from byoc.errors import ModelLoadError
    from byoc.serving.hooks import programs_for
    from byoc.serving.static_hooks import module_bindings

    found, guessed = [], False  # guessed: a program serve loads only if the endpoint's environment names it
    for program, name in programs_for(model.root, environ).items():
        try:
            bindings = module_bindings(ast.parse(program.read_bytes(), filename=str(program)))
        except (OSError, SyntaxError, ValueError):  # unreadable: whatever it defines, the endpoint runs it
            said, verb = "is code evaluate cannot read", "runs it"
        else:
            hooks = bindings.hooks(_PREDICTING_HOOKS)
            if hooks:
                note = _INPUT_FN_NOTE if "input_fn" in hooks else ""
                said, verb = f"defines {' and '.join(hooks)}", f"predicts with it{note}"
            elif bindings.open_ended:
                said, verb = (
                    f"may define {', '.join(_PREDICTING_HOOKS)} by {' and '.join(bindings.open_ended)}, "
                    "which evaluate cannot see without running it (bind each hook by name: a def, an assignment or "
                    "an import of that name)",
                    "may predict with it",
                )
            else:
                continue
        served = "the endpoint" if name is None else f"an endpoint with SAGEMAKER_PROGRAM={name}"
        shown = (
            f"{program.relative_to(model.root)} in {model.archive}"
            if model.archive is not None and program.is_relative_to(model.root)
            else str(program)
        )
        found.append(f"{shown} {said}: {served} {verb}")
        guessed = guessed or (name is not None and not (environ.get("SAGEMAKER_PROGRAM") or "").strip())
    if found:
        other = (
            " (if the endpoint's SAGEMAKER_PROGRAM names another program, set it so in evaluate's "
            "environment: Processor(env={'SAGEMAKER_PROGRAM': ...}))"
            if guessed
            else ""
        )
        raise ModelLoadError(
            f"{'; '.join(found)}{other}, but evaluate scores model.joblib as byoc trained it without running your "
            "code, so evaluation.json would describe another model than the one deployed; score the "
            "training job's own artefact (estimator.model_data, which holds no code/) knowing your hooks "
            "are not in it, or score your hooks' answers from a processing script of your own"
        )


def _labels(classes: Sequence[Any], name: str) -> Any:
    from byoc.problem import Labels

    if all(isinstance(c, bool) for c in classes):
        kind = "bool"
    elif all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        kind = "int"
    elif all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes):
        kind = "float"
    else:
        kind = "str"
    return Labels(classes=tuple(classes), kind=kind, name=name)


def _predicted(method: Callable[[Any], Any], X: Any, where: str) -> Any:
    """``method(X)``; whatever the model raises is the model's failure (a UserError leading with
    its cause, the traceback in the log), not a crash without the Processing job's message."""
    from byoc.errors import UserError

    try:
        return method(X)
    except MemoryError:  # the instance's size, not the model's fault: main says so
        raise
    except Exception as exc:
        log.error("the model's %s failed", method.__name__, exc_info=True)
        raise UserError(
            f"the model cannot predict: {type(exc).__name__}: {exc} (raised by its {method.__name__} "
            f"on the {len(X)} rows of the {where}); the model, or the code it needs, is at fault",
            code="model_cannot_predict",
        ) from exc


def positive_class(classes: Sequence[Any], problem_type: str, asked: str | None) -> int:
    """The index in ``classes`` of the class binary metrics count as positive: ``asked``
    (``--positive-class``, a class as model.json spells it, or its text), else the second in
    sorted order, as training's metrics take it (``yes`` of no/yes, but also ``legit`` of
    fraud/legit, which is why the flag exists)."""
    import json

    from byoc.errors import UserError

    if asked is None:
        return 1
    if problem_type != BINARY:
        raise UserError(
            f"--positive-class {asked}: only a binary classifier has a positive class, and this model "
            f"is {problem_type}; leave the flag out",
            code="bad_argument",
        )
    for index, label in enumerate(classes):
        if asked in (str(label), json.dumps(label)):
            return index
    raise UserError(
        f"--positive-class {asked}: not one of the model's classes ({', '.join(map(repr, classes))}); "
        "pass one of them as written",
        code="bad_argument",
    )


def score(
    model_path: Path,
    test_path: Path,
    *,
    content_type: str | None = None,
    header: bool | None = None,
    positive: str | None = None,
    scratch: Path,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read the model and the test channel as training did; returns (report, summary).
    ``progress.doing`` follows what it does."""
    import pandas as pd

    from byoc import absent_keys, artifact, channel_rows, data, evaluation_inputs, finite, problem
    from byoc.data.tabular import DuplicateColumns, SparseLayout
    from byoc.environment import MLPaths, TrainingEnvironment
    from byoc.errors import ModelLoadError
    from byoc.preprocessing import NUMERIC
    from byoc.training import (
        Split,
        TargetSpec,
        _file_column_names,
        _target_name,
        _typed_label,
        check_same_columns,
        named_positions,
        split_target,
    )

    progress = progress or Progress()
    paths = MLPaths.from_environ()
    evaluation_inputs.check_processing_inputs(paths, {"--model": model_path, "--test": test_path})
    progress.doing = f"loading the model from {model_path}"
    model_files = model_directory(model_path, scratch)
    refuse_inference_code(model_files, os.environ)
    try:
        # scored with scikit-learn, as BYOC_COMPILED_INFERENCE=off serves: a compiled file that fails
        # its check is a WARNING, as there (its numbers are the pipeline's either way)
        model = artifact.load(model_files.model_dir, compiled=False)
    except ModelLoadError as exc:
        raise in_archive(exc, model_files.root, model_files.archive) from exc
    classes = list(model.classes or ())
    positive_index = positive_class(classes, model.problem_type, positive)
    meta = model.metadata
    trained_on = (meta.get("training") or {}).get("channels", {}).get("train", {})
    given, header_flag = content_type is not None, header
    target = meta.get("target") or {}
    spec = TargetSpec(int(target.get("index", 0)), target.get("name"))
    header = evaluation_inputs.csv_layout(content_type, header, trained_on.get("header"), spec.index)
    content_type = content_type or trained_on.get("content_type")
    test_dir = evaluation_inputs.directory_of(test_path, scratch)
    evaluation_inputs.check_format(test_dir, content_type, given)
    env = TrainingEnvironment.from_dicts(
        MLPaths(scratch / "ml"), environ={"SM_CHANNEL_TEST": str(test_dir)}, num_cpus=1
    )
    layout = trained_on.get("layout")  # libsvm: the test files take the train channel's width
    like = SparseLayout(int(layout["first_index"]), int(layout["features"])) if layout else None
    progress.doing = f"reading the test data ({test_path})"
    try:
        channel = data.read_channel(
            env,
            "test",
            content_type=content_type,
            header=header,
            typed=False,
            label=spec.name if spec.name is not None else spec.index,  # its ids kept exact, as training's
            like=like,
            naming=evaluation_inputs.naming(paths, "--test", test_path),
        )
    except DuplicateColumns as exc:  # a first data row such as 1,0,0 taken for the header
        features = [f.name for f in model.features]
        if refused := evaluation_inputs.header_row_missing(
            exc.file, exc.columns, spec, features, header_flag
        ):
            raise refused from exc
        raise
    named = [*model.feature_names, *([spec.name] if spec.name is not None else [])]
    channel = channel_rows.as_the_endpoint_names(channel, named)
    evaluation_inputs.check_label_column(channel, spec, model.features, header_flag, classes)
    split = split_target(channel, "test", spec)
    reference = Split(
        X=pd.DataFrame(columns=model.feature_names), y=pd.Series(dtype=object), files=("model.json",)
    )
    optional = [f.name for f in model.features if f.optional]
    may_lack = absent_keys.channel_may_lack(optional, channel.content_type)
    absent_keys.check_record_keys(
        channel,
        split.X,
        test_dir,
        model.feature_names,
        optional,
        spec.name,
        channel=evaluation_inputs.CHANNEL,
    )
    check_same_columns(
        reference,
        split,
        "test",
        may_lack=may_lack,
        named=channel.files_shown,
        against="the model",
        fix="the test files need the feature columns the model was trained on (model.json's features), "
        "as its endpoint's requests do",
    )
    labels = _labels(model.classes, str(target.get("name") or "target")) if model.is_classifier else None
    # the labels read as training read the validation channel's: text classes keep spellings
    y_read = _typed_label(split.y, labels=labels)
    if labels is not None and (rounded := problem.rounded_labels(split.y, locate=channel.locate)) is not None:
        log.warning("test: %s", rounded)
    rows = channel_rows.Rows(
        "test",
        channel,
        _file_column_names(list(split.X.columns), spec, named=named_positions(channel, spec) is not None),
        _target_name(spec),
        header_hint=HEADER_HINT,
    )
    X = channel_rows.coerce_features(split.X, model.features, rows)
    # as training checks every channel: an infinity is the data's fault, not the model's
    numeric = [f.name for f in model.features if f.kind == NUMERIC]
    finite.check_features(X, numeric, locate=channel.locate, column_names=rows.columns)
    keep, warning = problem.drop_missing_target(
        y_read,
        fix=f"evaluate scores the predictions against the true labels: write them into that column of {channel.files_shown}",
        use="scored",
        locate=channel.locate,
    )
    if warning:
        log.warning("test: %s", warning)
        X, y_read = X[keep], y_read[keep]
    where = f"test channel ({', '.join(channel.files[:3])})"
    progress.doing = f"predicting the {len(X)} rows of the {where}"
    if labels is not None:
        y = channel_rows.encode_labels(labels, y_read, rows)
    else:
        y = channel_rows.regression_target(y_read, rows)
        finite.check_regression_target(y, y_read.index, locate=channel.locate, name=_target_name(spec))
    # Encoded: the test data as read (its numbers a second time, its text and labels as written) is
    # not held through the predictions, only what names its files
    channel = channel.without_rows()
    del split, rows, y_read
    data.release_arrow_memory()
    proba = None
    if labels is not None and hasattr(model.estimator, "predict_proba"):
        proba = _predicted(model.estimator.predict_proba, X, where)
    predicted = _predicted(model.estimator.predict, X, where)
    if model.problem_type == BINARY:
        if positive_index == 0:  # model_quality counts encoded class 1 as positive: swap the two
            y, predicted = 1 - np.asarray(y), 1 - np.asarray(predicted)
            proba = None if proba is None else np.asarray(proba)[:, ::-1]
            classes.reverse()
        how = (
            "--positive-class"
            if positive is not None
            else "the second in sorted order; --positive-class names another"
        )
        log.info("binary metrics count %r as the positive class of %s (%s)", classes[1], classes, how)
    progress.doing = f"computing the metrics of {len(y)} rows"
    report = model_quality(model.problem_type, y, predicted, proba, classes or None)
    summary = {"problem_type": model.problem_type, "rows": int(len(y)), "files": list(channel.files)}
    return report, summary


# -- the command -------------------------------------------------------------------------------


class _Flags(argparse.ArgumentParser):
    """evaluate's flags. A mistake in them is the caller's like any other: a UserError, so it
    reaches /opt/ml/output/message (the Processing job's ExitMessage) and exits 1, where
    argparse printed to stderr only and exited 2, evaluate's code for a fault of byoc's."""

    def error(self, message: str) -> NoReturn:
        from byoc.errors import UserError

        hint = ""
        extra = message.split(":", 1)[1].split() if message.startswith("unrecognized arguments:") else []
        if any(arg.endswith(".py") for arg in extra):  # ScriptProcessor appends its code file
            hint = (
                " (ScriptProcessor passes its code file to the command; evaluate takes none: run "
                "it with Processor(image_uri=..., entrypoint=['evaluate'], ...) and its flags as arguments)"
            )
        usage = " ".join(self.format_usage().split())
        raise UserError(f"evaluate: {message}{hint}; {usage}", code="bad_argument")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Flags(
        prog="evaluate",
        description="Score a byoc model on test data and write evaluation.json (SageMaker model-quality format).",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL,
        help=f"model directory or model.tar.gz (default {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--test",
        type=Path,
        default=DEFAULT_TEST,
        help=f"test data directory, or one test file (default {DEFAULT_TEST})",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"where evaluation.json goes (default {DEFAULT_OUTPUT})",
    )
    parser.add_argument("--content-type", help="media type of the test files (default: the train channel's)")
    parser.add_argument(
        "--header",
        choices=["true", "false"],
        help="whether CSV files have a header row (default: as in training)",
    )
    parser.add_argument(
        "--positive-class",
        help="the class binary metrics count as positive (default: the second of the model's classes in sorted order)",
    )
    return parser.parse_args(list(argv))


def _output_named(argv: Sequence[str]) -> Path | None:
    """The --output of a command line whose other flags are wrong (None: it names none readable)."""
    from byoc.errors import UserError

    flags = _Flags(prog="evaluate", add_help=False)
    flags.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    try:
        return flags.parse_known_args(list(argv))[0].output
    except UserError:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 with evaluation.json written; 1 with the cause in /opt/ml/output/message (the
    Processing job's ExitMessage) when the model or data are wrong (a model whose predict
    raises included); 2, with the message too, for a fault of byoc's.  An evaluation.json an
    earlier run left in --output is removed first, so a failed run leaves none."""
    from byoc import csvfields, outofmemory  # up front: not when memory has run out
    from byoc.environment import MLPaths
    from byoc.errors import ByocError, UserError
    from byoc.evaluation_report import write_report
    from byoc.job import StopWatcher, one_line, write_failure

    csvfields.allow_fields(csvfields.TRAINING_ROW_BYTES)  # the test channel is read as training reads
    logging.basicConfig(level=logging.INFO, handlers=[logtext.handler(sys.stdout)])
    message_file = MLPaths.from_environ().output_dir / "message"
    progress = Progress()
    StopWatcher(stop_handler(message_file, progress)).start()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = None
    try:
        try:
            args = parse_args(argv)
            clear_earlier_report(args.output, progress)
            header = None if args.header is None else args.header == "true"
            with tempfile.TemporaryDirectory(prefix="byoc-evaluate-") as scratch:
                progress.scratch = Path(scratch)
                report, summary = score(
                    args.model,
                    args.test,
                    content_type=args.content_type,
                    header=header,
                    positive=args.positive_class,
                    scratch=Path(scratch),
                    progress=progress,
                )
            progress.doing = f"writing {args.output}"
            with progress.commit:  # a stop meanwhile waits: the report is whole or absent
                path = write_report(args.output, report)
                progress.written = True
        except MemoryError as exc:  # the instance's size: the user's to fix, as in training (exit 1)
            raise outofmemory.error(
                progress.doing, exc, fixes=OUT_OF_MEMORY_FIXES, outcome="No evaluation.json was written."
            ) from exc
    except (UserError, ByocError) as exc:
        message = getattr(exc, "message", str(exc))
        log.error("evaluation failed: %s", one_line(message))
        if args is None and (output := _output_named(argv)) is not None:  # a flag is wrong
            try:
                clear_earlier_report(output, progress)
            except (UserError, OSError) as error:  # the flag is the cause to report
                log.warning("%s", getattr(error, "message", error))
        write_failure(message_file, progress.outcome(message))
        return 1
    except Exception as exc:  # a fault of ours: the job still gets its message, leading with the cause
        log.exception("evaluation failed")
        write_failure(
            message_file,
            progress.outcome(
                f"Internal error while evaluating: {type(exc).__name__}: {exc}. This is a bug in byoc; "
                "please report it with the details below"
            ),
            traceback.format_exc(),
        )
        return 2
    log.info(
        "%s on %d rows from %s", summary["problem_type"], summary["rows"], ", ".join(summary["files"][:3])
    )
    for name, metric in next(iter(report.values())).items():
        if isinstance(metric, Mapping) and "value" in metric:
            print(f"test:{name}={metric['value']}", flush=True)
    log.info("wrote %s", path)
    return 0
