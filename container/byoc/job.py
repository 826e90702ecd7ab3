"""The training job's shell: what wraps any training "job" the same way.

A job is a function ``(environment, progress) -> None`` (the built-in flow in
:mod:`byoc.training`, a user script, ...).  The shell gives every job the same contract:

- ``output/failure`` whose first line is the cause (naming the file, column, row or
  hyperparameter) and how to fix it, never overwritten, and no model files on failure;
- exit codes: 0 the model was saved; 1 the input is wrong (bad data, configuration or
  hyperparameter) or the instance too small for it (memory ran out: :mod:`byoc.outofmemory`);
  2 an internal fault (a bug of ours: the failure file carries the traceback
  after the cause); 143 (128 + SIGTERM) the job was stopped (StopTrainingJob, spot
  interruption) or interrupted (SIGINT);
- SIGTERM/SIGINT blocked in every thread and taken by a dedicated thread with
  ``signal.sigwait``, so a long C-level fit cannot delay the stop: that thread writes the
  failure file, removes the artefact's staging directory, kills child processes and exits.

Nothing heavy is imported before the stop watcher starts: numpy's and pyarrow's thread pools
must inherit the blocked signal mask.
"""

from __future__ import annotations

import argparse
import contextlib
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
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from byoc.environment import MLPaths, TrainingEnvironment
    from byoc.errors import UserError

EXIT_OK = 0
EXIT_USER_ERROR = 1
EXIT_FAULT = 2
EXIT_STOPPED = 128 + signal.SIGTERM
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})
STOPPED = "stopped"  # Failure.code of a job stopped with nothing to save
INTERNAL_ERROR = "internal_error"  # Failure.code of a fault of ours

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

Exit codes: 0 saved; 1 bad input or out of memory (see output/failure); 2 internal fault; 143
stopped (SIGTERM).

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
    created = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as fh:
            created = True
            fh.write(text)
    except FileExistsError:
        log.warning("%s already exists; not overwriting it", path)
        return False
    except OSError as exc:  # the log still carries the cause; the exit code still fails the job
        log.error("cannot write %s (%s)", path, exc.strerror or exc)
        if created:  # a full disk let it be created, not written: no empty failure file
            with contextlib.suppress(OSError):
                path.unlink()
        return False
    return True


def user_error_details(exc: UserError) -> str:
    lines = [f"error code: {exc.code}"]
    if exc.details:
        lines.append(str(exc.details))
    cause = exc.__cause__
    if cause is not None:
        lines.append(f"caused by: {type(cause).__name__}: {one_line(str(cause))[:2000]}")
    return "\n".join(lines)


# -- stop handling ---------------------------------------------------------------------------


@dataclass
class Progress:
    """What the job is doing, for log and stop messages; guards the artefact's commit."""

    phase: str = "starting"
    started: float = field(default_factory=time.monotonic)
    saved: bool = False
    commit: threading.Lock = field(default_factory=threading.Lock)
    # Set while a user script runs: forwards the stop signal to it and waits its grace period.
    forward_stop: Callable[[int], None] | None = None
    # Set before a user script starts: model/ is its output, emptied when the job is stopped
    # (forward_stop is set only once the script runs; a stop may come before that)
    runs_user_script: bool = False
    # Set by a job that can end early and still save a model (algorithm=auto): a stop signal
    # then sets it and the job has ``stop_grace`` seconds to finish before the hard stop.
    soft_stop: threading.Event | None = None
    soft_stop_action: str = "ending early and saving the best model so far"
    stop_grace: float = 0.0
    # Set when output/failure was written before the job's exception reached run_job (the first of
    # several hosts writes it before the others read the cause and end: SDK local mode then stops it)
    failure_written: bool = False


Job = Callable[["TrainingEnvironment", Progress], object]


def block_stop_signals() -> None:
    """Block SIGTERM/SIGINT in the calling thread and every thread it starts after: call it before
    importing numpy (whose thread pool starts at import), as an entry point's first step, so that
    only :class:`StopWatcher`'s thread takes them; a thread that does not block them takes the
    signal's default action, which ends the process with no message."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


class StopWatcher:
    """Takes SIGTERM/SIGINT in a dedicated thread (see the module docstring)."""

    def __init__(self, on_stop: Callable[[int], None]) -> None:
        self._on_stop = on_stop

    def start(self) -> None:
        # Block first, in the main thread: threads started later (the watcher, joblib's and
        # OpenMP's workers) inherit the mask, so the signal is only ever taken by sigwait.
        block_stop_signals()
        threading.Thread(target=self._wait, name="byoc-stop-watcher", daemon=True).start()

    def _wait(self) -> None:
        signum = signal.sigwait(STOP_SIGNALS)
        self._on_stop(signum)


def _kill_children() -> None:
    """SIGKILL the job's children, and every process group in the session of a child that leads
    one (a user script's: what it started and left running is there)."""
    from byoc import processes

    for pid in processes.child_pids(os.getpid()):
        for group in set(processes.session_groups(pid).values()):  # none unless it leads a session
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def exit_stopped() -> NoReturn:
    """End the process at once with EXIT_STOPPED, its log and output flushed: from the stop
    thread, while the main thread may be deep in a fit or predict that cannot be interrupted."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_STOPPED)


def stop_handler(paths: MLPaths, progress: Progress) -> Callable[[int], None]:
    def on_stop(signum: int) -> None:
        from byoc import artifact

        name = signal.Signals(signum).name
        soft = progress.soft_stop
        if soft is not None and not soft.is_set():
            log.warning(
                "%s received while %s: %s (within %.0f s)",
                name,
                progress.phase,
                progress.soft_stop_action,
                progress.stop_grace,
            )
            soft.set()
            timer = threading.Timer(progress.stop_grace, on_stop, args=(signum,))
            timer.daemon = True
            timer.start()
            return
        log.warning("%s received while %s: stopping", name, progress.phase)
        with progress.commit:  # wait for an artefact commit in flight: all or nothing
            if progress.saved:
                log.warning("the model was already saved; finishing normally")
                return
            if progress.forward_stop is not None:
                progress.forward_stop(signum)
            if progress.runs_user_script:
                from byoc import user_script

                _kill_children()  # a script whose stop was not forwarded: started meanwhile
                user_script.discard_partial_model(paths.model_dir, "was stopped")
            elapsed = time.monotonic() - progress.started
            why = "StopTrainingJob or spot interruption" if signum == signal.SIGTERM else "interrupted"
            write_failure(
                paths.failure_file,
                f"Training job stopped by {name} ({why}) while {progress.phase}, "
                f"after {elapsed:.1f} s; no model was saved. Start a new training job "
                "to train again.",
            )
            artifact.discard_staging(paths.model_dir)
            _kill_children()
            exit_stopped()

    return on_stop


# -- running a job -----------------------------------------------------------------------------


def _configure_logging(level: int) -> None:
    from byoc import logtext

    logtext.configure(level, sys.stdout)


def choose_job(env: TrainingEnvironment) -> Job:
    """The job this environment asks for: the user's entry point when the job names one
    (script mode: sagemaker_program / SAGEMAKER_PROGRAM), else the built-in training flow."""
    from byoc import training, user_script

    code = user_script.requested(env)
    if code is not None:
        log.info(
            "script mode: running the user's entry point %s instead of a built-in algorithm", code.program
        )
        return user_script.job(code)
    return training.train


def run(choose: Callable[[TrainingEnvironment], Job] = choose_job) -> NoReturn:
    """Run the job ``choose`` picks for the ML root's environment, with the stop watcher, and
    end the process with its exit code."""
    from byoc.environment import MLPaths  # stdlib only: no threads yet

    paths = MLPaths.from_environ()
    progress = Progress()
    # Before anything imports numpy/pyarrow: their thread pools must inherit the blocked mask.
    StopWatcher(stop_handler(paths, progress)).start()
    from byoc import loglevel
    from byoc.errors import ConfigError

    try:
        _configure_logging(loglevel.resolve(os.environ))
    except ConfigError:  # reported as the job's failure once the configuration is read
        _configure_logging(logging.INFO)
    exit_now(run_job(paths, progress, configure_logging=True, choose=choose))


def exit_now(code: int) -> NoReturn:
    """End the process as soon as the job is done: non-daemon threads joined, exit handlers run,
    output flushed, then ``os._exit`` — without the interpreter's teardown of every module's
    objects, which took 3-4 s after the model was saved on a loaded machine (counted against
    algorithm=auto's budget and billed: the job ends when the process does)."""
    import atexit

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # logging.shutdown, multiprocessing's and Dask's clean-ups
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run_job(
    paths: MLPaths,
    progress: Progress,
    environ: Mapping[str, str] | None = None,
    *,
    configure_logging: bool = False,
    choose: Callable[[TrainingEnvironment], Job] = choose_job,
) -> int:
    """Read the configuration, run the job, and turn every failure into output/failure + an exit code.

    :func:`run` adds the stop watcher; tests call this in-process with an injected ``environ``
    (the process's own SM_* variables are then ignored).
    """
    from byoc import artifact, csvfields
    from byoc.environment import TrainingEnvironment

    csvfields.allow_fields(csvfields.TRAINING_ROW_BYTES)  # the csv module reads any row training reads
    try:
        progress.phase = "removing what an earlier run left in model/"
        clear_earlier_outputs(paths)
        progress.phase = "reading the job configuration"
        env = TrainingEnvironment.from_files(paths, environ)
        if configure_logging:
            _configure_logging(env.log_level)
        # only now: the hyperparameter sagemaker_container_log_level may ask for less than INFO
        log.info("ML root: %s", paths.base)
        progress.phase = "checking that model/ and output/ can be written"
        check_writable(paths)
        choose(env)(env, progress)
        return EXIT_OK
    except Exception as exc:
        failure = failure_of(exc, paths, progress)
        if failure.code == STOPPED:
            log.warning("stopped with nothing to save: %s", exc)
        elif failure.code == INTERNAL_ERROR:
            log.exception("training failed")
        else:
            log.error("training failed: %s", failure.cause)
        if not progress.failure_written:
            with progress.commit:
                write_failure(paths.failure_file, failure.cause, failure.details)
        return failure.exit_code
    finally:
        if not progress.saved:
            artifact.discard_staging(paths.model_dir)


@dataclass(frozen=True)
class Failure:
    """How a job's exception ends it: ``output/failure``'s cause (one line) and details, the exit
    code and the error code (a user error's ``code``; ``stopped``; ``internal_error``)."""

    cause: str
    details: str
    exit_code: int
    code: str


def failure_of(exc: Exception, paths: MLPaths, progress: Progress) -> Failure:
    """What :func:`run_job` writes and returns for ``exc``, raised while ``progress.phase``; on
    several hosts the first host also sends it to the others (:mod:`byoc.automl.cluster`)."""
    from byoc import oserrors, outofmemory
    from byoc.errors import JobStopped, UserError

    if isinstance(exc, JobStopped):  # a soft stop (algorithm=auto) with nothing to save
        elapsed = time.monotonic() - progress.started
        cause = (
            f"Training job stopped by a stop signal (StopTrainingJob or spot interruption) while "
            f"{progress.phase}, after {elapsed:.1f} s: {exc}; no model was saved. Start a new "
            "training job to train again."
        )
        return Failure(one_line(cause), "", EXIT_STOPPED, STOPPED)
    user_error = (
        exc
        if isinstance(exc, UserError)
        else oserrors.as_user_error(exc, paths.base, progress.phase)
        or outofmemory.as_user_error(exc, progress.phase)
    )
    if user_error is not None:
        # A user script's own exit code passes through (ScriptFailed.exit_code).
        exit_code = int(getattr(user_error, "exit_code", EXIT_USER_ERROR))
        details = user_error_details(user_error)
        return Failure(one_line(user_error.message), details, exit_code, user_error.code)
    cause = (
        f"Internal error while {progress.phase}: {type(exc).__name__}: {exc}. This is a "
        "bug in byoc, not in your data; please report it with the details below"
    )
    return Failure(one_line(cause), traceback.format_exc(), EXIT_FAULT, INTERNAL_ERROR)


def clear_earlier_outputs(paths: MLPaths) -> None:
    """Empty model/ of what an earlier attempt of a retried job (or an earlier run on the same
    local ML root) left there, before anything of this job runs: SageMaker packs all of it into
    model.tar.gz, and serve then ran a leftover code/inference.py instead of the new model.
    (An existing output/failure is kept: a failure file is never overwritten.)"""
    from byoc import artifact

    if held := artifact.clear(paths.model_dir):
        log.warning(
            "model/ held %s before training (an earlier attempt of this job, or an earlier run on this "
            "ML root): removed, so model.tar.gz holds this job's model alone",
            ", ".join(held),
        )


def check_writable(paths: MLPaths) -> None:
    """Create and remove a file in model/, output/ and output/data/ before the job runs.

    Under ``docker run --user`` with a root-owned /opt/ml, or a read-only mount, the first write
    used to come after the fit (hours, billed) and name one directory at a time.  The OSError
    names the directory; :func:`run_job` turns it into the message saying what to change.
    """
    from byoc import oserrors
    from byoc.errors import ConfigError

    for directory in (paths.model_dir, paths.output_dir, paths.output_data_dir):
        if directory.exists() and not directory.is_dir():  # mkdir's FileExistsError names no fix
            name = directory.relative_to(paths.base).as_posix()
            raise ConfigError(
                f"{oserrors.display_path(directory)}: a file where SageMaker puts the {name}/ directory; "
                "remove or rename the file (SageMaker mounts /opt/ml/model and /opt/ml/output as directories)",
                code="environment",
            )
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".byoc-write-check-{os.getpid()}"
        with oserrors.naming(probe):
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()


# -- command line ------------------------------------------------------------------------------


class _ArgumentParser(argparse.ArgumentParser):
    """argparse whose error is the job's failure: one line in output/failure and exit 1 (bad
    input), not argparse's exit 2 (an internal fault here) after the whole USAGE, which
    ``usage=`` printed as "usage: usage: train ..."."""

    def error(self, message: str) -> NoReturn:
        from byoc.environment import MLPaths

        cause = f"train: {message}; usage: {USAGE.splitlines()[0].removeprefix('usage: ')} (see train --help)"
        print(cause, file=sys.stderr, flush=True)
        write_failure(MLPaths.from_environ().failure_file, cause)
        sys.exit(EXIT_USER_ERROR)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _ArgumentParser(prog="train", add_help=False, usage=USAGE)
    parser.add_argument("--help", "-h", action="store_true")
    parser.add_argument("--metric-definitions", action="store_true")
    # `docker run IMAGE train` may pass the word itself through an ENTRYPOINT: accept it.
    parser.add_argument("command", nargs="?", choices=["train"])
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """`container/train [--help | --metric-definitions]`; returns the exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.help:
        from byoc import hyperparameters

        return _printed(USAGE + "\n" + hyperparameters.help_text())
    if args.metric_definitions:
        from byoc import metrics

        return _printed(json.dumps(metrics.metric_definitions(), indent=2))
    return run()


def _printed(text: str) -> int:
    """Print ``text`` for a reader that may stop early (``train --help | head``): a closed pipe
    ends the output quietly, as it ends any command line tool's, not with a traceback."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # the interpreter flushes stdout again at exit: point it at /dev/null first
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_OK
