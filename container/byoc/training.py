"""`container/train`: SageMaker's training contract around scikit-learn.

The flow is one straight line of small steps (each a function with plain inputs and outputs,
so user hooks can later replace "fit"):

    environment -> hyperparameters -> channels -> target split -> problem type -> labels
    -> build + fit -> metrics (log lines, output/data/metrics.json) -> artefact (atomic)

Every failure ends in ``output/failure`` whose first line is the cause (naming the file,
column, row or hyperparameter) and how to fix it, and in no model files.  Exit codes:

- 0: the model was saved;
- 1: the input is wrong (bad data, configuration or hyperparameter): the failure file says what;
- 2: an internal fault (a bug of ours): the failure file carries the traceback after the cause;
- 143 (128 + SIGTERM): the job was stopped (StopTrainingJob, spot interruption) or interrupted
  (SIGINT); no model was saved.

SIGTERM is blocked in every thread and taken by a dedicated thread with ``signal.sigwait``,
so a long C-level fit cannot delay the stop: that thread writes the failure file, removes the
artefact's staging directory, kills worker processes and exits at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_FAULT = 2
EXIT_STOPPED = 128 + signal.SIGTERM
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
EVAL_CHANNELS = ("validation", "test")
IGNORED_OK = frozenset({"model", "code", "checkpoints"})

log = logging.getLogger("byoc.training")

USAGE = """\
usage: train [--help] [--metric-definitions]

SageMaker training entry point (`docker run IMAGE train`). Reads the ML root (/opt/ml, or
SAGEMAKER_BASE_DIR): input/config/{hyperparameters,inputdataconfig,resourceconfig}.json and the
channels train (alias training), validation and test under input/data/ (File and FastFile
read the directory, Pipe reads the FIFO <channel>_0). Writes model/model.joblib + model.json,
output/data/metrics.json, and output/failure when it fails.

Channel formats (ContentType, or the content_type hyperparameter): text/csv (default; no header
and the target in the first column, like the built-in algorithms; a header row is detected),
application/x-parquet, application/jsonlines, text/libsvm; gzip is read transparently.

Exit codes: 0 saved; 1 bad input (see output/failure); 2 internal fault; 143 stopped (SIGTERM).

options:
  --help                 show this message and every hyperparameter, then exit
  --metric-definitions   print the metric_definitions (Name, Regex) for the SageMaker
                         Estimator / tuner as JSON, then exit
"""


# -- failure file ----------------------------------------------------------------------------


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def write_failure(path: Path, cause: str, details: str = "") -> bool:
    """Write ``output/failure`` unless it exists (never overwrite: the first cause wins).

    The first line is the cause, on one line; details (and tracebacks) come after a blank
    line, so the first 1024 characters SageMaker shows lead with what to fix.
    """
    text = one_line(cause) + "\n"
    if details:
        text += "\n" + details.rstrip() + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:
        log.warning("%s already exists; not overwriting it", path)
        return False
    except OSError as exc:  # the log still carries the cause; the exit code still fails the job
        log.error("cannot write %s (%s)", path, exc.strerror or exc)
        return False
    return True


# -- stop handling ---------------------------------------------------------------------------


def _child_pids(parent: int) -> list[int]:
    """Direct children of ``parent`` (Linux /proc; empty elsewhere)."""
    children = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = entry.read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent:
            children.append(int(entry.parent.name))
    return children


@dataclass
class Progress:
    """What the job is doing, for log and stop messages; guards the artefact's commit."""

    phase: str = "starting"
    started: float = field(default_factory=time.monotonic)
    saved: bool = False
    commit: threading.Lock = field(default_factory=threading.Lock)


class StopWatcher:
    """Takes SIGTERM/SIGINT in a dedicated thread (see the module docstring)."""

    def __init__(self, on_stop: Callable[[int], None]) -> None:
        self._on_stop = on_stop

    def start(self) -> None:
        # Block first, in the main thread: threads started later (the watcher, joblib's and
        # OpenMP's workers) inherit the mask, so the signal is only ever taken by sigwait.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        threading.Thread(target=self._wait, name="byoc-stop-watcher", daemon=True).start()

    def _wait(self) -> None:
        signum = signal.sigwait(STOP_SIGNALS)
        self._on_stop(signum)


def stop_handler(paths: Any, progress: Progress) -> Callable[[int], None]:
    def on_stop(signum: int) -> None:
        from byoc import artifact

        name = signal.Signals(signum).name
        log.warning("%s received while %s: stopping", name, progress.phase)
        with progress.commit:  # wait for an artefact commit in flight: all or nothing
            if progress.saved:
                log.warning("the model was already saved; finishing normally")
                return
            elapsed = time.monotonic() - progress.started
            why = "StopTrainingJob or spot interruption" if signum == signal.SIGTERM else "interrupted"
            write_failure(
                paths.failure_file,
                f"Training job stopped by {name} ({why}) while {progress.phase}, "
                f"after {elapsed:.1f} s; no model was saved. Start a new training job "
                "to train again.",
            )
            artifact.discard_staging(paths.model_dir)
            for pid in _child_pids(os.getpid()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_STOPPED)

    return on_stop


# -- the flow ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetSpec:
    """Where the label is in a channel's frame, resolved against the train channel."""

    index: int
    name: str | None  # None for headerless data


@dataclass
class Split:
    X: Any
    y: Any
    files: tuple[str, ...]


def check_hosts(env: Any) -> None:
    from byoc.errors import ConfigError

    if len(env.hosts) > 1:
        raise ConfigError(
            f"resourceconfig.json lists {len(env.hosts)} hosts ({', '.join(env.hosts)}); "
            "scikit-learn trains on one instance: set instance_count=1 (use a larger "
            "instance type for more CPUs or memory)",
            code="multiple_hosts",
        )


def resolve_target(data: Any, channel: str, target: int | str) -> TargetSpec:
    from byoc.errors import HyperparameterError

    columns = [str(c) for c in data.frame.columns]
    where = f"channel '{channel}' ({', '.join(data.files[:3])}{', ...' if len(data.files) > 3 else ''})"
    if isinstance(target, int) or (
        isinstance(target, str) and target.isdigit() and (not data.has_header or target not in columns)
    ):
        index = int(target)
        if not 0 <= index < len(columns):
            raise HyperparameterError(
                f"hyperparameter 'target'={target} is out of range: {where} has {len(columns)} "
                f"columns (indices 0..{len(columns) - 1}); set target to the label column's "
                "0-based index or name",
                code="bad_target",
            )
        return TargetSpec(index, columns[index] if data.has_header else None)
    if not data.has_header:
        raise HyperparameterError(
            f"hyperparameter 'target'='{target}' names a column, but {where} has no header row; "
            "add a header row (or set header=true) or give target as a 0-based index",
            code="bad_target",
        )
    if target not in columns:
        import difflib

        close = difflib.get_close_matches(str(target), columns, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise HyperparameterError(
            f"hyperparameter 'target'='{target}' is not a column of {where}{hint}; its columns "
            f"are {', '.join(columns[:20])}{', ...' if len(columns) > 20 else ''}",
            code="bad_target",
        )
    return TargetSpec(columns.index(target), str(target))


def split_target(data: Any, channel: str, spec: TargetSpec) -> Split:
    """Features and label; headerless features are named f0, f1, ... after removing the label."""
    from byoc.errors import DataError, SchemaError

    frame = data.frame
    if data.label_size == 0:
        raise DataError(
            f"channel '{channel}' is declared 'text/csv;label_size=0' (no label column), but "
            "training needs the label: remove ';label_size=0' from the channel's ContentType and "
            "put the label in the first column (or set the target hyperparameter)",
            code="no_label",
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
    else:
        y = frame.iloc[:, spec.index]
        X = frame.drop(columns=[frame.columns[spec.index]])
        X.columns = [f"f{i}" for i in range(X.shape[1])]
        y = y.rename(f"column {spec.index}")
    if X.shape[1] == 0:
        raise DataError(
            f"channel '{channel}' holds only the target column; add feature columns", code="no_features"
        )
    return Split(X=X, y=y, files=data.files)


def check_same_columns(train: Split, other: Split, channel: str) -> None:
    from byoc.errors import SchemaError

    expected, given = list(train.X.columns), list(other.X.columns)
    if expected == given:
        return
    missing = [c for c in expected if c not in given]
    extra = [c for c in given if c not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"lacks column(s) {', '.join(map(str, missing[:10]))}")
        if extra:
            parts.append(f"has column(s) {', '.join(map(str, extra[:10]))} that train does not")
        if len(expected) != len(given):
            parts.append(f"{len(given)} feature columns where train has {len(expected)}")
        raise SchemaError(
            f"channel '{channel}' ({', '.join(other.files[:3])}) "
            f"{'; '.join(parts)}; validation and test data need the train "
            "channel's columns",
            code="schema_mismatch",
        )
    other.X = other.X[expected]


def read_channels(env: Any, params: Mapping[str, Any], progress: Progress) -> dict[str, Any]:
    """train (or training), validation, test -> ChannelData; other channels are logged."""
    from byoc import data
    from byoc.errors import DataError

    train_name = data.find_channel(env, data.TRAIN_CHANNELS)
    if train_name is None:
        given = ", ".join(sorted(env.channels)) or "none"
        raise DataError(
            f"no 'train' channel (channels given: {given}); pass the training data as the "
            "'train' (or 'training') channel, e.g. estimator.fit({'train': 's3://bucket/prefix'})",
            code="missing_channel",
        )
    channels: dict[str, Any] = {}
    progress.phase = f"reading channel '{train_name}'"
    log.info(
        "reading channel %s (%s mode)",
        train_name,
        env.channels[train_name].input_mode if train_name in env.channels else "File",
    )
    started = time.monotonic()
    channels["train"] = data.read_channel(
        env, train_name, content_type=params.get("content_type"), header=params.get("header")
    )
    _log_channel(train_name, channels["train"], started)
    header = params.get("header")
    if header is None:  # evaluation data is laid out like the training data
        header = channels["train"].has_header
    for name in EVAL_CHANNELS:
        if data.find_channel(env, (name,)) is None:
            continue
        progress.phase = f"reading channel '{name}'"
        started = time.monotonic()
        channels[name] = data.read_channel(env, name, content_type=params.get("content_type"), header=header)
        _log_channel(name, channels[name], started)
    ignored = sorted(set(env.channels) - set(data.TRAIN_CHANNELS) - set(EVAL_CHANNELS) - IGNORED_OK)
    if ignored:
        log.warning(
            "channels %s are not used by the built-in algorithms (expected train, validation, test)",
            ", ".join(ignored),
        )
    return channels


def _log_channel(name: str, channel: Any, started: float) -> None:
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


def evaluate(
    problem_type: str, pipeline: Any, X: Any, y_encoded: Any, n_classes: int | None
) -> dict[str, float]:
    from byoc import metrics
    from byoc.artifact import REGRESSION

    predicted = pipeline.predict(X)
    proba = None
    if problem_type != REGRESSION and hasattr(pipeline, "predict_proba"):
        proba = pipeline.predict_proba(X)
    return metrics.compute(problem_type, y_encoded, predicted, proba, n_classes)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def train(env: Any, progress: Progress) -> dict[str, Any]:
    """The whole flow; returns the saved model's metadata."""
    import numpy as np

    from byoc import algorithms, artifact, finite, hyperparameters, metrics, preprocessing, problem

    check_hosts(env)
    progress.phase = "validating hyperparameters"
    params = hyperparameters.resolve(env.hyperparameters)
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
    spec = resolve_target(channels["train"], "train", params["target"])
    splits = {name: split_target(ch, name, spec) for name, ch in channels.items()}
    for name in EVAL_CHANNELS:
        if name in splits:
            check_same_columns(splits["train"], splits[name], name)

    progress.phase = "inferring the problem type"
    train_split = splits["train"]
    keep, warning = problem.drop_missing_target(train_split.y)
    if warning:
        log.warning("train: %s", warning)
        train_split.X, train_split.y = train_split.X[keep], train_split.y[keep]
    problem_type, reason = problem.infer_problem_type(train_split.y, params["problem_type"])
    log.info("problem type: %s (%s)", problem_type, reason)

    labels = None
    n_classes = None
    if problem_type != artifact.REGRESSION:
        labels = problem.fit_labels(train_split.y)
        n_classes = len(labels.classes)
        log.info("classes (%d): %s", n_classes, ", ".join(map(str, labels.classes[:20])))

    features = preprocessing.feature_schema(train_split.X)
    numeric = [f.name for f in features if f.kind == preprocessing.NUMERIC]
    encoded: dict[str, tuple[Any, Any]] = {}
    for name, split in splits.items():
        where = f"{name} channel"
        X = preprocessing.coerce_features(split.X, features, where=where)
        finite.check_features(
            X, numeric, locate=channels[name].locate, column_names=_file_column_names(X.columns, spec)
        )
        y = split.y
        if name != "train":
            keep, warning = problem.drop_missing_target(y)
            if warning:
                log.warning("%s: %s", name, warning)
                X, y = X[keep], y[keep]
        if labels is not None:
            y = labels.encode(y, where=where)
        else:
            index = y.index
            y = _regression_target(y, where)
            finite.check_regression_target(y, index, locate=channels[name].locate, name=_target_name(spec))
        encoded[name] = (X, y)
    log.info(
        "features (%d): %s",
        len(features),
        ", ".join(f"{f.name}:{f.kind}" for f in features[:30]) + (" ..." if len(features) > 30 else ""),
    )

    pipeline = algorithms.build(problem_type, params, features)
    X_train, y_train = encoded["train"]
    progress.phase = f"fitting {params['algorithm']}"
    log.info(
        "fitting started: %s on %d rows x %d features",
        params["algorithm"],
        X_train.shape[0],
        X_train.shape[1],
    )
    started = time.monotonic()
    pipeline.fit(X_train, y_train)
    fit_seconds = time.monotonic() - started
    log.info("fitting finished in %.2f s", fit_seconds)

    progress.phase = "evaluating"
    all_metrics: dict[str, dict[str, float]] = {}
    for name, (X, y) in encoded.items():
        values = evaluate(problem_type, pipeline, X, np.asarray(y), n_classes)
        all_metrics[name] = values
        for line in metrics.log_lines(name, values):
            print(line, flush=True)
    objective = env.tuning_objective_metric
    if objective:
        channel, _, metric = objective.partition(":")
        if metric not in all_metrics.get(channel, {}):
            log.warning(
                "the tuning objective %s was not computed (channels evaluated: %s)",
                objective,
                ", ".join(all_metrics),
            )
    env.paths.output_data_dir.mkdir(parents=True, exist_ok=True)
    (env.paths.output_data_dir / "metrics.json").write_text(
        json.dumps(all_metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )

    details = algorithms.describe(pipeline, X_train, y_train)
    _log_details(details)
    metadata = {
        "problem_type": problem_type,
        "problem_type_reason": reason,
        "algorithm": params["algorithm"],
        "hyperparameters": _jsonable(params),
        "target": {"name": spec.name, "index": spec.index},
        "classes": labels.to_list() if labels is not None else None,
        "features": [f.to_dict() for f in features],
        "metrics": all_metrics,
        "details": _jsonable(details),
        "training": {
            "fit_seconds": round(fit_seconds, 3),
            "channels": {
                name: {
                    "rows": int(encoded[name][0].shape[0]),
                    "files": list(ch.files),
                    "content_type": ch.content_type,
                    "header": ch.has_header,
                }
                for name, ch in channels.items()
            },
            "job_name": env.job_name,
        },
    }
    progress.phase = "saving the model"
    with progress.commit:
        artifact.save(env.paths.model_dir, pipeline, metadata)
        progress.saved = True
    log.info("model saved to %s (%s, %s)", env.paths.model_dir, artifact.MODEL_FILE, artifact.METADATA_FILE)
    return metadata


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


def _file_column_names(columns: Sequence[str], spec: TargetSpec) -> dict[str, str]:
    """Feature name -> how the file names it: headerless features f0, f1... skip the target."""
    if spec.name is not None:
        return {c: f"column '{c}'" for c in columns}
    return {f"f{i}": f"column {i if i < spec.index else i + 1}" for i in range(len(columns))}


def _target_name(spec: TargetSpec) -> str:
    return f"column '{spec.name}'" if spec.name is not None else f"column {spec.index}"


def _regression_target(y: Any, where: str) -> Any:
    import numpy as np
    import pandas as pd

    from byoc.errors import DataError

    numbers = pd.to_numeric(y, errors="coerce")
    bad = numbers.isna() & y.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{where}: target '{y.name}' row {row + 1} holds {y.iloc[row]!r}, not a "
            "number; regression needs numeric targets",
            code="bad_target",
        )
    return numbers.to_numpy(dtype=float)


# -- entry point -------------------------------------------------------------------------------


def _configure_logging(level: Any) -> None:
    try:
        numeric = int(level)
    except (TypeError, ValueError):
        numeric = logging.getLevelName(str(level).upper())
        numeric = numeric if isinstance(numeric, int) else logging.INFO
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train", add_help=False, usage=USAGE)
    parser.add_argument("--help", "-h", action="store_true")
    parser.add_argument("--metric-definitions", action="store_true")
    # `docker run IMAGE train` may pass the word itself through an ENTRYPOINT: accept it.
    parser.add_argument("command", nargs="?", choices=["train"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """`container/train [--help | --metric-definitions]`; returns the exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.help:
        from byoc import hyperparameters

        print(USAGE)
        print(hyperparameters.help_text())
        return EXIT_OK
    if args.metric_definitions:
        from byoc import metrics

        print(json.dumps(metrics.metric_definitions(), indent=2))
        return EXIT_OK

    from byoc.environment import MLPaths  # stdlib only: no threads yet

    paths = MLPaths.from_environ()
    progress = Progress()
    # Before anything imports numpy/pyarrow: their thread pools must inherit the blocked mask.
    StopWatcher(stop_handler(paths, progress)).start()

    _configure_logging(
        os.environ.get("SM_LOG_LEVEL") or os.environ.get("SAGEMAKER_CONTAINER_LOG_LEVEL") or logging.INFO
    )
    log.info("ML root: %s", paths.base)
    return run_job(paths, progress, configure_logging=True)


def run_job(
    paths: Any,
    progress: Progress,
    environ: Mapping[str, str] | None = None,
    *,
    configure_logging: bool = False,
) -> int:
    """Read the configuration, train, and turn every failure into output/failure + an exit code.

    ``main`` adds the command line and the stop watcher; tests call this in-process with an
    injected ``environ`` (the process's own SM_* variables are then ignored).
    """
    from byoc import artifact, oserrors
    from byoc.environment import TrainingEnvironment
    from byoc.errors import UserError

    try:
        progress.phase = "reading the job configuration"
        env = TrainingEnvironment.from_files(paths, environ)
        if configure_logging:
            _configure_logging(env.log_level)
        train(env, progress)
        return EXIT_OK
    except Exception as exc:
        user_error = (
            exc if isinstance(exc, UserError) else oserrors.as_user_error(exc, paths.base, progress.phase)
        )
        if user_error is not None:
            details = _user_error_details(user_error)
            log.error("training failed: %s", one_line(user_error.message))
            with progress.commit:
                write_failure(paths.failure_file, user_error.message, details)
            return EXIT_USER_ERROR
        cause = (
            f"Internal error while {progress.phase}: {type(exc).__name__}: {exc}. This is a "
            "bug in byoc, not in your data; please report it with the details below"
        )
        log.exception("training failed")
        with progress.commit:
            write_failure(paths.failure_file, cause, traceback.format_exc())
        return EXIT_FAULT
    finally:
        if not progress.saved:
            artifact.discard_staging(paths.model_dir)


def _user_error_details(exc: Any) -> str:
    lines = [f"error code: {exc.code}"]
    if exc.details:
        lines.append(str(exc.details))
    cause = exc.__cause__
    if cause is not None:
        lines.append(f"caused by: {type(cause).__name__}: {one_line(str(cause))[:2000]}")
    return "\n".join(lines)
