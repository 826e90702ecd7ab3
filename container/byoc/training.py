"""The built-in training flow, run by the job shell (:mod:`byoc.job`).

One straight line of small steps:

    environment -> hyperparameters -> channels -> target split -> problem type -> labels
    -> fit step (:mod:`byoc.fit`: build + fit + evaluate) -> metrics (log lines,
    output/data/metrics.json) -> artefact (atomic) -> the environment to deploy it with
    (output/data/inference_environment.json)

Errors are raised (``byoc.errors``); the shell turns them into the failure file and the exit
code.  ``main`` stays here as the console entry point (``byoc-train``, ``container/train``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from byoc.data import ChannelData
    from byoc.environment import TrainingEnvironment
    from byoc.errors import SchemaError
    from byoc.fit import Encoded, FitStep
    from byoc.job import Progress
    from byoc.problem import Labels

EVAL_CHANNELS = ("validation", "test")
IGNORED_OK = frozenset({"model", "code", "checkpoints"})
INFERENCE_ENVIRONMENT_FILE = "inference_environment.json"
# Added when row 1 of a CSV file read without a header row breaks the train channel's schema.
HEADER_HINT = (
    " (is row 1 a header row? The file was read without one, as the train channel is: give "
    "every channel's files the same layout, or set the header hyperparameter)"
)
STOPPED_WHILE_COMPILING = "the job was stopped (SIGTERM) while the model was compiled for serving"

log = logging.getLogger("byoc.training")


def main(argv: Sequence[str] | None = None) -> int:
    """`container/train [--help | --metric-definitions]`: the job shell around :func:`train`."""
    from byoc import job

    return job.main(argv)


# -- the flow ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetSpec:
    """Where the label is in a channel's frame, resolved against the train channel."""

    index: int
    name: str | None  # None for headerless data


@dataclass
class Split:
    X: pd.DataFrame
    y: pd.Series
    files: tuple[str, ...]


def check_hosts(env: TrainingEnvironment, algorithm: str) -> None:
    """Only ``auto`` uses several hosts (its candidates spread over them); a single model cannot."""
    from byoc.errors import ConfigError

    if len(env.hosts) > 1 and algorithm != "auto":
        raise ConfigError(
            f"resourceconfig.json lists {len(env.hosts)} hosts ({', '.join(env.hosts)}); "
            f"algorithm={algorithm} trains one scikit-learn model on one instance: set "
            "instance_count=1 (use a larger instance type for more CPUs or memory), or use "
            "algorithm=auto, which spreads its candidate models over every host",
            code="multiple_hosts",
        )


def byoc_metric(name: str | None) -> tuple[str, str] | None:
    """(channel, metric) when ``name`` is one of the lines byoc logs (``validation:auc``), else None."""
    from byoc import metrics

    channel, _, metric = (name or "").partition(":")
    if channel in metrics.CHANNELS and metric in metrics.all_names():
        return channel, metric
    return None


def check_tuning_objective(
    objective: str | None, algorithm: str, problem_type: str, channels: Sequence[str]
) -> None:
    """Refuse, before fitting, an Automatic Model Tuning objective this job will never log.

    AMT reads ``_tuning_objective_metric`` from the log; a job that never prints it still
    trains to the end, and then every training job of the tuning job is scored as failed.
    Only byoc's own names (``<channel>:<metric>``) are checked: another name may be a metric
    definition of the user's.  ``auto`` logs ``validation:`` from cross-validation without a
    validation channel.  A metric the data leaves undefined (AUC on one class) is warned about
    after evaluation instead.
    """
    from byoc import metrics
    from byoc.errors import ConfigError

    named = byoc_metric(objective)
    if named is None:
        return
    channel, metric = named
    logged = metrics.names(problem_type)
    if metric not in logged:
        raise ConfigError(
            f"the tuning objective {objective} (_tuning_objective_metric) is never logged for a "
            f"{problem_type} problem, so Automatic Model Tuning would find no objective value in any "
            f"training job; use one of {', '.join(f'{channel}:{m}' for m in logged)} as the "
            "objective metric, or set problem_type if the target was read as the wrong kind",
            code="bad_tuning_objective",
        )
    if channel not in channels and not (channel == "validation" and algorithm == "auto"):
        raise ConfigError(
            f"the tuning objective {objective} (_tuning_objective_metric) needs a '{channel}' "
            f"channel, and this job has only {', '.join(sorted(channels))}: no {channel}:{metric} "
            "line would be logged, so Automatic Model Tuning would find no objective value in any "
            f"training job; add a '{channel}' channel to the tuning job's inputs (tuner.fit({{'train': "
            f"..., '{channel}': ...}}))"
            + (
                ", or use algorithm=auto, which logs validation: from cross-validation"
                if channel == "validation"
                else ""
            ),
            code="bad_tuning_objective",
        )


def searched_objective(
    params: Mapping[str, Any], tuning_objective: str | None, problem_type: str
) -> Mapping[str, Any]:
    """``params`` with auto's objective_metric set to what the tuning job ranks by, when unset.

    Without it auto searches for its default (F1 for binary) while Automatic Model Tuning ranks
    its jobs by, say, validation:accuracy: each job would pick its model by the wrong measure.
    """
    named = byoc_metric(tuning_objective)
    if params["algorithm"] != "auto" or params["objective_metric"] is not None or named is None:
        return params
    from byoc.automl import objective

    for name in objective.names(problem_type):
        if objective.resolve(name, problem_type).key == named[1]:
            log.info(
                "auto: objective_metric=%s, the tuning objective %s (objective_metric not set)",
                name,
                tuning_objective,
            )
            return {**params, "objective_metric": name}
    log.warning(
        "auto: the tuning objective %s is not one auto can search for a %s problem (%s); it searches "
        "for its default, %s: set objective_metric to one of those to choose",
        tuning_objective,
        problem_type,
        ", ".join(objective.names(problem_type)),
        objective.names(problem_type)[0],
    )
    return params


def resolve_target(data: ChannelData, channel: str, target: int | str, *, given: bool = True) -> TargetSpec:
    """Where the ``target`` hyperparameter puts the label in the train channel.

    ``target`` is a header name or a 0-based index (:func:`byoc.data.tabular.target_readings`,
    the rule the readers also follow to leave the label column as written).  Digits can be
    both: a client that spells values with ``str()`` writes target=0 and target="0" alike, so a
    number that is also the header name of ANOTHER column is refused when ``given``, saying how
    to pick each (the default, 0, stays the first column, as documented).  A string (a JSON
    string in hyperparameters.json: ``"\"0\""``) is the name first; either reading alone is taken.
    """
    from byoc.data.tabular import target_readings
    from byoc.errors import HyperparameterError

    columns = [str(c) for c in data.frame.columns]
    text = str(target)
    named, index = target_readings(columns, data.has_header, target)
    where = f"channel '{channel}' ({data.files_shown})"
    if not given and data.has_header and data.label_size is None:  # label_size=1 says column 0 too
        _refuse_label_named_elsewhere(columns, where)
    if named is not None and index is not None and index != named:
        if isinstance(target, str):
            log.info(
                "target '%s' is the column named so (column %d), not column index %d", text, named, index
            )
            return TargetSpec(named, text)
        if given:
            raise HyperparameterError(
                f"hyperparameter 'target'={index} is ambiguous: {where} has a column named '{text}' "
                f"(column {named}), and column index {index} is '{columns[index]}'; for the column "
                f'named \'{text}\', give the name as a JSON string: "target": "\\"{text}\\"" in '
                f'hyperparameters.json (SageMaker Python SDK: hyperparameters={{"target": '
                f"'\"{text}\"'}}); for column index {index}, give its name: "
                f"{_target_spelling(columns[index])}",
                code="bad_target",
            )
        log.info(
            "target: the default, column 0 ('%s'); the header also names a column '0' (column %d): "
            "set the target hyperparameter to train on that one",
            columns[0],
            named,
        )
        return TargetSpec(index, columns[index])
    if named is not None:
        return TargetSpec(named, text)
    if index is not None:
        return TargetSpec(index, columns[index] if data.has_header else None)
    if text.isascii() and text.isdigit():
        raise HyperparameterError(
            f"hyperparameter 'target'={target} is out of range: {where} has {len(columns)} "
            f"columns (indices 0..{len(columns) - 1}); set target to the label column's "
            "0-based index or name",
            code="bad_target",
        )
    if not data.has_header:
        raise HyperparameterError(
            f"hyperparameter 'target'='{target}' names a column, but {where} has no header row; "
            "add a header row (or set header=true) or give target as a 0-based index",
            code="bad_target",
        )
    import difflib

    folded = {str(c).lower(): str(c) for c in reversed(columns)}  # letter case aside: Y for y, medv
    close = [folded[m] for m in difflib.get_close_matches(text.lower(), list(folded), n=1)]
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise HyperparameterError(
        f"hyperparameter 'target'='{target}' is not a column of {where}{hint}; its columns "
        f"are {', '.join(columns[:20])}{', ...' if len(columns) > 20 else ''}",
        code="bad_target",
    )


LABEL_NAMES = ("target", "label", "target_column", "label_column")
"""Header names that say "the label" as the ``target`` hyperparameter's own names do."""


def _refuse_label_named_elsewhere(columns: list[str], where: str) -> None:
    """Refuse the default target (the first column) when the header names another column as the
    label (``x,c,label``: pandas and Spark write the label where it was, often last): the job
    fitted the first column from the real label, a model whose metrics look like any other's."""
    if columns[0].strip().casefold() in LABEL_NAMES:
        return
    named = next((i for i, c in enumerate(columns) if c.strip().casefold() in LABEL_NAMES), None)
    if named is None:
        return
    from byoc.errors import HyperparameterError

    raise HyperparameterError(
        f"hyperparameter 'target' is not set, so the label is the first column ('{columns[0]}'), but "
        f"{where} has a column named '{columns[named]}' (column {named}), which would be a feature; "
        f"set {_target_spelling(columns[named])} to learn it, or target=0 to keep '{columns[0]}' as the label",
        code="bad_target",
    )


def _target_spelling(name: str) -> str:
    """How to give ``name`` as the target: as it is, or as a JSON string when it is digits."""
    if name.isascii() and name.isdigit():
        return f'"target": "\\"{name}\\"" (a JSON string)'
    return f"target={name}"


def named_positions(data: ChannelData, spec: TargetSpec) -> tuple[int, list[int]] | None:
    """Where a channel whose columns its files name (JSON Lines records, Parquet, CSV with a
    header) keeps the label and the features of a model trained without a header, whose
    features are named f0, f1, ...: when every column but one carries one of those names, in
    any order (as the model's endpoint takes them in JSON records and Parquet columns), that
    one is the label and each feature is the column of its name.  Read by position instead, a
    record ``{"y": 1, "f1": 5, "f0": 7}`` was scored with f0 = 5.  None: read by position."""
    if spec.name is not None or not data.has_header:
        return None
    columns = [str(c) for c in data.frame.columns]
    features = {f"f{i}" for i in range(len(columns) - 1)}
    others = [i for i, c in enumerate(columns) if c not in features]
    if len(others) != 1 or len(set(columns)) != len(columns):
        return None
    at = {c: i for i, c in enumerate(columns)}
    return others[0], [at[f"f{i}"] for i in range(len(columns) - 1)]


def split_target(data: ChannelData, channel: str, spec: TargetSpec) -> Split:
    """Features and label; headerless features are named f0, f1, ... after removing the label."""
    from byoc.errors import DataError, HyperparameterError, SchemaError

    frame = data.frame
    if data.label_size == 0:
        raise DataError(
            f"channel '{channel}' is declared 'text/csv;label_size=0' (no label column), but "
            "training needs the label: remove ';label_size=0' from the channel's ContentType and "
            "put the label in the first column (or set the target hyperparameter)",
            code="no_label",
        )
    if data.label_size == 1 and spec.index != 0:
        # The ContentType and the target hyperparameter name different label columns: refuse
        # rather than pick one, since either choice trains on a label column as a feature.
        raise HyperparameterError(
            f"hyperparameter 'target' ({_target_name(spec)}) contradicts the ContentType "
            f"';label_size=1' of channel '{channel}', which puts the label in the first column "
            "(column 0); "
            "remove ';label_size=1' from the ContentType to use the target hyperparameter, or "
            "move the label to the first column and leave target at 0",
            code="bad_target",
        )
    if spec.index >= frame.shape[1]:
        raise SchemaError(
            f"channel '{channel}' has {frame.shape[1]} columns, too few to hold the "
            f"target at index {spec.index}",
            code="bad_target",
        )
    if spec.name is not None:
        if spec.name not in frame.columns:
            raise SchemaError(
                f"channel '{channel}' has no column '{spec.name}' (the target); "
                "every channel needs the train channel's columns",
                code="schema_mismatch",
            )
        y = frame[spec.name]
        X = frame.drop(columns=[spec.name])
    elif (named := named_positions(data, spec)) is not None:
        label_at, feature_at = named
        y = frame.iloc[:, label_at].rename(f"column {spec.index}")
        X = frame.iloc[:, feature_at]
        X.columns = [f"f{i}" for i in range(X.shape[1])]
    else:
        y = frame.iloc[:, spec.index]
        X = frame.drop(columns=[frame.columns[spec.index]])
        X.columns = [f"f{i}" for i in range(X.shape[1])]
        y = y.rename(f"column {spec.index}")
    if X.shape[1] == 0:
        raise DataError(
            f"channel '{channel}' holds only the target column; add feature columns", code="no_features"
        )
    return Split(X=X, y=y, files=data.files)  # y as the reader left it: _typed_label types it


def _typed_label(y: pd.Series, *, labels: Labels | None = None) -> pd.Series:
    """``y`` as the reader left it (the label's text as written; Parquet's or JSON's numbers)
    typed as the train channel's columns are (``to_frame``: text that is all numbers becomes
    numbers).  ``labels``, a classifier's, for a channel scored against its classes: when they
    are text, number-like labels keep their spellings instead, and a word a numeric column reads
    as missing (``None``) that spells a class is that class (:func:`byoc.problem.written_labels`);
    when they are integers, a label past float precision is the integer written
    (:func:`byoc.problem.exact_integers`), as the train channel's JSON or Parquet ids were.  The
    reader's integers past float precision beside a missing label stay Python ints
    (:func:`byoc.arrow_tables.exact_integer_column`), for every channel: float64 would merge them."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from byoc import problem
    from byoc.arrow_tables import exact_integer_column
    from byoc.data.tabular import to_frame

    if isinstance(y.dtype, pd.StringDtype):
        column = pa.array(y.array)
    elif isinstance(y.dtype, np.dtype) and y.dtype.kind in "iuf":  # Parquet's numbers as they are:
        column = pa.array(y.to_numpy())  # as Python ints, a uint64 id past int64 was an OverflowError
    else:
        column = pa.array(y.to_numpy(dtype=object), from_pandas=True)
    if (exact := exact_integer_column(column)) is not None:  # ids past 2**53 beside a missing label
        exact.index, exact.name = y.index, y.name
        return exact
    typed = to_frame(pa.table({"label": column}))["label"].set_axis(y.index)
    typed.name = y.name
    if labels is not None and labels.text_classes:
        spelled = problem.written_labels(y, typed, labels.text_classes)
        if spelled is not None:
            return spelled
    if labels is not None and labels.kind == "int":
        return problem.exact_integers(y, typed)
    return typed


def check_header_rows(channels: Mapping[str, ChannelData]) -> None:
    """Refuse a CSV validation or test channel read with a header row, as train's files have one,
    whose header names none of train's columns: its files lack the header row, their first data
    row was taken for it, and the failure blamed a missing target column."""
    from byoc.data import media

    for name in EVAL_CHANNELS:
        channel = channels.get(name)
        if channel is None or channel.content_type != media.CSV or not channel.has_header:
            continue
        refused = header_row_missing(
            channels["train"], name, channel.files_shown, list(channel.frame.columns)
        )
        if refused is not None:
            raise refused


def header_row_missing(
    train: ChannelData, name: str, files: str, columns: Sequence[object]
) -> SchemaError | None:
    """The failure for CSV ``files`` of evaluation channel ``name`` read with a header row that
    reads ``columns``, naming none of the train channel's: they lack the header row train's files
    start with (:func:`check_header_rows`); None when train's have none or a column is named."""
    from byoc.data import csv_header, media
    from byoc.errors import SchemaError

    if train.content_type != media.CSV or not train.has_header:
        return None
    expected = [str(c) for c in train.frame.columns]
    said = csv_header.data_read_as_header(files, columns, expected, "the train channel's")
    if said is None:
        return None
    return SchemaError(
        f"{said} The train channel's files start with a header row, and validation and test "
        f"files are read laid out like them: add it to every file of channel '{name}'",
        code="no_header",
    )


SAME_COLUMNS = "validation and test data need the train channel's columns"


def check_same_columns(
    train: Split,
    other: Split,
    channel: str,
    may_lack: frozenset[str] = frozenset(),
    *,
    named: str | None = None,
    against: str = "train",
    fix: str = SAME_COLUMNS,
) -> None:
    """``other``'s features in train's order, or a failure naming the columns that differ.
    ``may_lack``: train's JSON Lines keys some of its records left out (byoc.absent_keys); a
    JSON Lines channel none of whose records names one is read as training reads such a record,
    the value missing.  ``named``, ``against`` and ``fix`` say it in other terms than a training
    channel's (evaluate's test files, against the model)."""
    from byoc.errors import SchemaError

    expected, given = list(train.X.columns), list(other.X.columns)
    if expected == given:
        return
    for column in expected:
        if column in may_lack and column not in given:
            other.X[column] = None
    given = list(other.X.columns)
    missing = [c for c in expected if c not in given]
    extra = [c for c in given if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks column(s) {', '.join(map(str, missing[:10]))}")
        if extra:
            parts.append(f"has column(s) {', '.join(map(str, extra[:10]))} that {against} does not")
        if len(expected) != len(given):
            parts.append(f"{len(given)} feature columns where {against} has {len(expected)}")
        named = named or f"channel '{channel}' ({', '.join(other.files[:3])})"
        raise SchemaError(f"{named} {'; '.join(parts)}; {fix}", code="schema_mismatch")
    other.X = other.X[expected]


def _label_as_named(train: ChannelData, target: int | str | None) -> int | str | None:
    """The ``target`` hyperparameter for reading a validation or test channel: the name of train's
    label column when train's columns have names (another channel's records or columns may stand
    in another order, and column 0 there may be a feature), else the position it is."""
    from byoc.data.tabular import label_position

    if target is None or not train.has_header:
        return target
    at = label_position([str(c) for c in train.frame.columns], True, target)
    return target if at is None else str(train.frame.columns[at])


def read_channels(
    env: TrainingEnvironment, params: Mapping[str, Any], progress: Progress
) -> dict[str, ChannelData]:
    """train (or training), validation, test -> ChannelData; other channels are logged."""
    from byoc import channel_rows, data
    from byoc.data.tabular import DuplicateColumns
    from byoc.errors import DataError

    given_names = [name for name in data.TRAIN_CHANNELS if data.find_channel(env, (name,))]
    if len(given_names) > 1:  # reading one and ignoring the other would drop rows unannounced
        raise DataError(
            f"channels {' and '.join(repr(n) for n in given_names)} are both given, and they are "
            "two names of the one training channel; keep one of them (put all the training "
            "files under one prefix, or pass the other data as 'validation' or 'test')",
            code="duplicate_channel",
        )
    train_name = given_names[0] if given_names else None
    if train_name is None:
        given = ", ".join(sorted(env.channels)) or "none"
        raise DataError(
            f"no 'train' channel (channels given: {given}); pass the training data as the "
            "'train' (or 'training') channel, e.g. estimator.fit({'train': 's3://bucket/prefix'})",
            code="missing_channel",
        )
    channels: dict[str, ChannelData] = {}
    progress.phase = f"reading channel '{train_name}'"
    log.info(
        "reading channel %s (%s mode)",
        train_name,
        env.channels[train_name].input_mode if train_name in env.channels else "File",
    )
    started = time.monotonic()
    channels["train"] = data.read_channel(
        env,
        train_name,
        content_type=params.get("content_type"),
        header=params.get("header"),
        label=params.get("target"),
    )
    _log_channel(train_name, channels["train"], started)
    header = params.get("header")
    if header is None:  # evaluation data is laid out like the training data
        header = channels["train"].has_header
    label = _label_as_named(channels["train"], params.get("target"))
    train_columns = channels["train"].frame.columns
    for name in EVAL_CHANNELS:
        if data.find_channel(env, (name,)) is None:
            continue
        progress.phase = f"reading channel '{name}'"
        started = time.monotonic()
        try:
            channels[name] = data.read_channel(
                env,
                name,
                content_type=params.get("content_type"),
                header=header,
                typed=False,
                label=label,  # its ids kept exact (data.tabular.exact_integer_column)
                like=channels["train"].layout,
                like_type=(train_name, channels["train"].content_type),
            )
        except DuplicateColumns as exc:  # a first data row such as 1,0,0 taken for the header
            refused = header_row_missing(channels["train"], name, exc.file, exc.columns)
            if refused is not None:
                raise refused from exc
            raise
        # its column names read as the endpoint reads a request's, as evaluate reads its test data's
        channels[name] = channel_rows.as_the_endpoint_names(channels[name], list(map(str, train_columns)))
        _log_channel(name, channels[name], started)
    ignored = sorted(set(env.channels) - set(data.TRAIN_CHANNELS) - set(EVAL_CHANNELS) - IGNORED_OK)
    if ignored:
        log.warning(
            "channels %s are not used by the built-in algorithms (expected train, validation, test)%s",
            ", ".join(ignored),
            _misspelt_channels(ignored, [name for name in EVAL_CHANNELS if name not in channels]),
        )
    return channels


def _misspelt_channels(ignored: Sequence[str], absent: Sequence[str]) -> str:
    """``: 'validaton' may be 'validation' misspelt, ...`` for unused channels close to an absent one."""
    import difflib

    likely = []
    for name in ignored:
        close = difflib.get_close_matches(name.lower(), absent, n=1, cutoff=0.7)
        if close or (len(name) >= 3 and (close := [a for a in absent if a.startswith(name.lower())])):
            likely.append(f"'{name}' may be '{close[0]}' misspelt")
    return f": {', '.join(likely)} (a channel of another name is not read)" if likely else ""


def _log_channel(name: str, channel: ChannelData, started: float) -> None:
    frame = channel.frame
    log.info(
        "channel %s: %d rows x %d columns from %d file(s) (%s, %s) in %.2f s",
        name,
        frame.shape[0],
        frame.shape[1],
        len(channel.files),
        channel.content_type,
        "header row" if channel.has_header else "no header",
        time.monotonic() - started,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _fit_step(algorithm: str) -> FitStep:
    """The fit step an algorithm name asks for: the AutoML search for ``auto``, else the registry's."""
    from byoc import fit

    if algorithm == "auto":
        from byoc.automl.job import fit_step

        return fit_step
    return fit.builtin


def train(env: TrainingEnvironment, progress: Progress, fit_step: FitStep | None = None) -> dict[str, Any]:
    """The whole flow with ``fit_step`` (default: the built-in algorithms); returns model.json's content.

    On several hosts (``auto`` only) the first host runs the flow beside a Dask scheduler and
    the others serve as Dask workers and return an empty dict, or fail with the first host's
    cause when its job failed (:mod:`byoc.automl.cluster`).
    """
    from byoc import hyperparameters

    progress.phase = "validating hyperparameters"
    params = hyperparameters.resolve(env.hyperparameters, tuning=env.tuning_objective_metric is not None)
    check_hosts(env, params["algorithm"])
    if len(env.hosts) == 1:
        return _train(env, progress, params, fit_step)
    from byoc.automl import cluster

    if not cluster.is_first_host(env):
        cluster.run_worker(env, progress, budget=float(params["max_runtime_seconds"]))
        return {}
    with cluster.scheduler(env) as outcome:
        try:
            return _train(env, progress, params, fit_step)
        except Exception as exc:  # the other hosts fail with the cause this host's output/failure gives
            from byoc.job import failure_of, write_failure

            failure = failure_of(exc, env.paths, progress)
            # written now, before the other hosts read the cause and end: SDK local mode stops every
            # container as soon as one exits, and a stop while the cluster closes would be the cause
            with progress.commit:
                write_failure(env.paths.failure_file, failure.cause, failure.details)
                progress.failure_written = True
            outcome.fail(failure.cause, failure.exit_code, failure.code)
            raise


def _train(
    env: TrainingEnvironment, progress: Progress, params: Mapping[str, Any], fit_step: FitStep | None
) -> dict[str, Any]:
    import numpy as np

    from byoc import (
        absent_keys,
        artifact,
        channel_rows,
        compiled,
        data,
        finite,
        fit,
        hyperparameters,
        metrics,
        preprocessing,
        problem,
    )
    from byoc.serving import output
    from byoc.values import TIME_UNIT

    log.info("algorithm: %s", params["algorithm"])
    log.info("hyperparameters: %s", json.dumps(_jsonable(params), sort_keys=True))
    if env.tuning_objective_metric:
        log.info("tuning objective metric: %s", env.tuning_objective_metric)
    exported = env.to_env_vars()
    os.environ.update(exported)  # user code (later) sees what AWS's toolkit would give it
    log.info(
        "exported %d SM_* variables (SM_CHANNELS=%s, SM_MODEL_DIR=%s)",
        len(exported),
        exported["SM_CHANNELS"],
        exported["SM_MODEL_DIR"],
    )

    channels = read_channels(env, params, progress)
    target_given = "target" in hyperparameters.given_names(env.hyperparameters)
    spec = resolve_target(channels["train"], "train", params["target"], given=target_given)
    check_header_rows(channels)
    splits = {name: split_target(ch, name, spec) for name, ch in channels.items()}
    optional = absent_keys.optional_columns(
        splits["train"].X, channels["train"].content_type, records=channels["train"].has_header
    )
    trained_on = [str(c) for c in splits["train"].X.columns]
    for name in EVAL_CHANNELS:
        if name in splits:
            if (directory := data.file_directory(env, name)) is not None:  # records the endpoint refuses
                absent_keys.check_record_keys(
                    channels[name], splits[name].X, directory, trained_on, optional, spec.name, channel=name
                )
            may_lack = absent_keys.channel_may_lack(optional, channels[name].content_type)
            check_same_columns(splits["train"], splits[name], name, may_lack=may_lack)

    progress.phase = "inferring the problem type"
    train_split = splits["train"]
    read_labels = {name: split.y for name, split in splits.items()}  # as read, before typing
    train_split.y, kept = problem.keep_spellings(
        train_split.y, _typed_label(train_split.y), params["problem_type"]
    )
    if kept:
        log.info("train: %s", kept)
    keep, warning = problem.drop_missing_target(train_split.y)
    if warning:
        log.warning("train: %s", warning)
        train_split.X, train_split.y = train_split.X[keep], train_split.y[keep]
    written = read_labels["train"]  # on the target's index: rows with a missing target dropped
    written = written if written.index.equals(train_split.y.index) else written.loc[train_split.y.index]
    problem_type, reason = problem.infer_problem_type(
        train_split.y, params["problem_type"], locate=channels["train"].locate, written=written
    )
    log.info("problem type: %s (%s)", problem_type, reason)
    if problem_type == artifact.REGRESSION and (
        merged := problem.float_merged_target(written, train_split.y)
    ):
        log.warning("train: %s", merged)
    check_tuning_objective(env.tuning_objective_metric, params["algorithm"], problem_type, list(channels))
    params = searched_objective(params, env.tuning_objective_metric, problem_type)

    labels = None
    n_classes = None
    if problem_type != artifact.REGRESSION:
        labels = problem.fit_labels(train_split.y)
        n_classes = len(labels.classes)
        log.info("classes (%d): %s", n_classes, ", ".join(map(str, labels.classes[:20])))
        for name, read in read_labels.items():
            if (rounded := problem.rounded_labels(read, locate=channels[name].locate)) is not None:
                log.warning("%s: %s", name, rounded)

    features = tuple(preprocessing.feature_schema(train_split.X))
    numeric = [f.name for f in features if f.kind == preprocessing.NUMERIC]
    encoded: dict[str, Encoded] = {}
    for name, split in splits.items():
        progress.phase = (
            f"encoding channel '{name}' ({split.X.shape[0]} rows x {split.X.shape[1]} feature columns)"
        )
        rows = channel_rows.Rows(
            name,
            channels[name],
            _file_column_names(
                list(split.X.columns), spec, named=named_positions(channels[name], spec) is not None
            ),
            _target_name(spec),
            header_hint=HEADER_HINT,
        )
        X = channel_rows.coerce_features(split.X, features, rows)
        finite.check_features(X, numeric, locate=channels[name].locate, column_names=rows.columns)
        y = split.y
        if name != "train":  # its labels read as the train channel's are: text kept as written
            y = _typed_label(y, labels=labels)
            keep, warning = problem.drop_missing_target(
                y,
                fix=(
                    f"channel '{name}' ({channels[name].files_shown}) is scored against its labels: write "
                    "them into that column, as the train channel holds them, or leave the channel out"
                ),
                use="scored",
                locate=channels[name].locate,
            )
            if warning:
                log.warning("%s: %s", name, warning)
                X, y = X[keep], y[keep]
        if labels is not None:
            target = channel_rows.encode_labels(labels, y, rows)
        else:
            index = y.index
            target = channel_rows.regression_target(y, rows)
            finite.check_regression_target(
                target, index, locate=channels[name].locate, name=_target_name(spec)
            )
        encoded[name] = fit.Encoded(X, np.asarray(target))
    content_type = channels["train"].content_type
    for warning in absent_keys.rare_key_warnings(
        encoded["train"].X, content_type, channels["train"].locate, records=channels["train"].has_header
    ):
        log.warning("train: %s", warning)
    features = absent_keys.mark_optional(features, optional)
    log.info(
        "features (%d): %s",
        len(features),
        ", ".join(f"{f.name}:{f.kind}" for f in features[:30]) + (" ..." if len(features) > 30 else ""),
    )

    # Encoded: the channels' frames as read (their numbers a second time, their text and labels as
    # written) were held through the fit, beside everything it allocates; only what names their
    # files and rows is needed from here on.
    channels = {name: channel.without_rows() for name, channel in channels.items()}
    del splits, split, train_split, read_labels, written, rows, X, y, target
    data.release_arrow_memory()  # what they held in Arrow's pool

    step = fit_step or _fit_step(params["algorithm"])
    fit_input = fit.FitInput(
        env=env,
        params=params,
        problem_type=problem_type,
        features=features,
        channels=encoded,
        n_classes=n_classes,
        progress=progress,
        classes=tuple(labels.classes) if labels is not None else None,
        target=_target_name(spec),
    )
    result = step(fit_input)
    if "train" in result.metrics and (
        warning := fit.worse_than_constant(fit_input, params, result.metrics["train"])
    ):
        log.warning("train: %s", warning)
    for name, values in result.metrics.items():
        held = encoded.get(name, encoded["train"])  # auto's cross-validated "validation": train's rows
        why = metrics.left_out(problem_type, values, held.y, labels.classes if labels is not None else ())
        for reason in dict.fromkeys(why.values()):
            named = ", ".join(f"{name}:{m}" for m, r in why.items() if r == reason)
            log.warning("%s not logged: the %s channel %s", named, name, reason)
        for line in metrics.log_lines(name, values):
            print(line, flush=True)
    objective = byoc_metric(env.tuning_objective_metric)  # another name: the user's own definition
    if objective is not None:
        channel, metric = objective
        if metric not in result.metrics.get(channel, {}):
            log.warning(
                "the tuning objective %s was not computed (channels evaluated: %s)",
                env.tuning_objective_metric,
                ", ".join(result.metrics),
            )
    _write_output_data(progress, env.paths.output_data_dir / "metrics.json", result.metrics, sort_keys=True)

    _log_details(result.details)
    metadata = {
        "problem_type": problem_type,
        "problem_type_reason": reason,
        "algorithm": params["algorithm"],
        "hyperparameters": _jsonable(params),
        "target": {
            "name": spec.name,
            "index": spec.index,
            **({"type": artifact.BOOLEAN_TARGET} if labels is not None and labels.booleans else {}),
        },
        "classes": labels.to_list() if labels is not None else None,
        "features": [f.to_dict() for f in features],
        "time_unit": TIME_UNIT,  # how Parquet dates and times were spelled
        "metrics": result.metrics,
        "details": _jsonable(result.details),
        "training": {
            "fit_seconds": round(result.fit_seconds, 3),
            "channels": {
                name: {
                    "rows": int(encoded[name].X.shape[0]),
                    "files": list(ch.files),
                    "content_type": ch.content_type,
                    "header": ch.has_header,
                    **({"layout": dataclasses.asdict(ch.layout)} if ch.layout is not None else {}),
                }
                for name, ch in channels.items()
            },
            "job_name": env.job_name,
        },
    }
    fields = output.available_fields(
        problem_type != artifact.REGRESSION, hasattr(result.pipeline, "predict_proba")
    )
    metadata["inference"] = {
        "output_fields": list(fields),
        "environment": output.inference_environment(fields),
    }
    progress.phase = "compiling the model for serving"
    soft_stop = progress.soft_stop  # algorithm=auto: SIGTERM abandons a conversion, the model is saved
    compiled_form = compiled.build(
        result.pipeline,
        [split.X for split in encoded.values()],
        enabled=params["compiled_inference"] and result.compile_skipped is None,
        disabled_because=result.compile_skipped or "compiled_inference=false",
        deadline=result.compile_deadline,
        stopped=None
        if soft_stop is None
        else lambda: STOPPED_WHILE_COMPILING if soft_stop.is_set() else None,
    )
    if soft_stop is not None and soft_stop.is_set() and isinstance(metadata["details"].get("automl"), dict):
        metadata["details"]["automl"]["stopped_early"] = True
    metadata["compiled"] = compiled_form.entry
    # Before the model: nothing may fail once it is saved, or a failed job would leave a model.
    _write_inference_environment(progress, env.paths.output_data_dir, metadata["inference"]["environment"])
    progress.phase = "saving the model"
    with progress.commit:
        artifact.save(env.paths.model_dir, result.pipeline, metadata, compiled_form.files())
        progress.saved = True
    log.info("model saved to %s (%s, %s)", env.paths.model_dir, artifact.MODEL_FILE, artifact.METADATA_FILE)
    return metadata


def _write_output_data(progress: Progress, path: Path, value: Any, *, sort_keys: bool = False) -> None:
    """``value`` as JSON in ``path`` (output/data).  A full disk met when the file is closed names
    no file: :func:`byoc.oserrors.naming` gives it this one, so the job's failure names it and the
    fix (exit 1) instead of reporting a fault of byoc's."""
    from byoc import oserrors

    before, progress.phase = progress.phase, f"writing output/data/{path.name}"
    with oserrors.naming(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value, indent=2, sort_keys=sort_keys) + "\n", encoding="utf-8")
    progress.phase = before


def _write_inference_environment(
    progress: Progress, output_data_dir: Path, environment: Mapping[str, str]
) -> None:
    """The environment to deploy this model with, as Autopilot hands it out with its containers:
    ``Model(image_uri=..., model_data=..., env=json.load(open("inference_environment.json")))``."""
    _write_output_data(progress, output_data_dir / INFERENCE_ENVIRONMENT_FILE, environment)
    log.info(
        "inference environment for Model(env=...): %s (in output/data/%s)",
        " ".join(f"{k}={v}" for k, v in environment.items()),
        INFERENCE_ENVIRONMENT_FILE,
    )


def _log_details(details: Mapping[str, Any]) -> None:
    """Ensemble weights, CV scores and importances, one line each (also saved in model.json)."""

    def top(importances: Mapping[str, float], n: int = 10) -> str:
        ranked = sorted(importances.items(), key=lambda kv: -kv[1])[:n]
        return ", ".join(f"{k}={v:.4f}" for k, v in ranked)

    for member in (details.get("ensemble") or {}).get("members", []):
        log.info(
            "ensemble member %s: weight=%.4f cv_score=%.4f",
            member.get("name"),
            member.get("weight", float("nan")),
            member.get("cv_score", float("nan")),
        )
    if details.get("feature_importances"):
        log.info(
            "feature importances (%s): %s",
            details.get("importance_method", ""),
            top(details["feature_importances"]),
        )


def _file_column_names(columns: Sequence[str], spec: TargetSpec, *, named: bool = False) -> dict[str, str]:
    """Feature name -> how the file names it: headerless features f0, f1... skip the target
    (``named``: the file names them f0, f1, ... itself, :func:`named_positions`)."""
    if spec.name is not None or named:
        return {c: f"column '{c}'" for c in columns}
    return {f"f{i}": f"column {i if i < spec.index else i + 1}" for i in range(len(columns))}


def _target_name(spec: TargetSpec) -> str:
    return f"column '{spec.name}'" if spec.name is not None else f"column {spec.index}"
