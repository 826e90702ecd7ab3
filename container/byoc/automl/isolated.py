"""Work that may overrun its deadline, done in a forked process that is killed when time is up.

A scikit-learn ``fit`` cannot be interrupted: a fold that runs longer than the cost model
expected (a family not seen yet, a busy machine) would carry the job past its budget, and a
final refit still running when a stop signal (SIGTERM) comes would carry it past its grace
period.  So each candidate is scored, and each chosen model refitted, in a child forked from
the job's process — it shares the data copy-on-write, nothing is pickled on the way in — and
the parent waits for its result only until the deadline (which a stop signal may bring
forward), then kills it.  A scoring child reports each finished fold, so a stopped candidate
still says how far it got and what it cost: the numbers the "no candidate finished" message
and the cost model need.  A refitting child sends the fitted estimator back (pickled by our
own child, read by its parent: never data from a request).

Fork rather than spawn: a spawned child would import scikit-learn and receive the data again
each time (seconds under load); a fork costs milliseconds.  The child only does its one piece
of work, sends one result back, then leaves with ``os._exit``.
"""

from __future__ import annotations

import ctypes
import logging
import math
import multiprocessing
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import pandas as pd

from byoc import outofmemory
from byoc.automl import search
from byoc.automl.candidates import Candidate

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
KILL_WAIT_SECONDS = 5.0
PR_SET_PDEATHSIG = 1
BUDGET_RAN_OUT = "the time budget ran out"
ASKED_TO_STOP = "the job was asked to stop"
FOLD, SCORED = "fold", "scored"  # a scoring child's progress reports

# When to kill the child (monotonic seconds) and why, asked again at every poll: a stop signal
# can bring the deadline forward while the child works.
Deadline = Callable[[], tuple[float, str]]
# The child's work: called with the function that reports its progress to the parent.
Work = Callable[[Callable[..., None]], Any]


@dataclass
class Ended:
    """How a child's work ended: its return value, or why there is none."""

    value: Any = None
    finished: bool = False
    killed: str = ""  # why the parent killed it (the deadline's reason), when it did
    crashed: str = ""  # how it ended without a result, when it did
    seconds: float = 0.0
    progress: tuple[Any, ...] = ()  # the last progress report
    exitcode: int | None = None  # a crashed child's (negative: the signal that killed it)
    out_of_memory: bool = False  # it crashed running out of memory: a MemoryError, or SIGKILL not ours


MEMORY = "memory"  # a child's report of a MemoryError raised by its work


def _child(work: Work, pipe: Connection, libc: Any) -> None:
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # a lost parent (host) takes it along
    # A daemonic child runs joblib's loops (a forest's n_jobs) in one process, as the cost model
    # measured them, and joblib warns of that on every loop: 26 lines in a 6-candidate job's log.
    warnings.filterwarnings(
        "ignore", message="Loky-backed parallel loops cannot be called", category=UserWarning
    )
    try:
        pipe.send(("result", work(lambda *report: pipe.send(("progress", *report)))))
    except MemoryError as exc:  # said to the parent, which words it (memory is scarce here)
        pipe.send((MEMORY, " ".join(str(exc).split())[:200]))
    finally:
        pipe.close()


def run(work: Work, deadline: Deadline) -> Ended:
    """``work`` in a forked child, killed when ``deadline()`` passes."""
    fork = multiprocessing.get_context("fork")
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork: the child only calls it
    receive, send = fork.Pipe(duplex=False)
    started = time.monotonic()
    child = fork.Process(target=_child, args=(work, send, libc), daemon=True)
    child.start()
    send.close()
    progress: tuple[Any, ...] = ()
    try:
        while True:
            kill_at, why = deadline()
            if time.monotonic() >= kill_at:
                return Ended(killed=why, seconds=time.monotonic() - started, progress=progress)
            try:
                ready = receive.poll(min(POLL_SECONDS, max(kill_at - time.monotonic(), 0.0)))
                message: Any = receive.recv() if ready else None
            except (EOFError, OSError):  # the child ended without a result: it crashed or was killed
                child.join(KILL_WAIT_SECONDS)
                return Ended(
                    crashed=_crash_cause(child.exitcode),
                    seconds=time.monotonic() - started,
                    progress=progress,
                    exitcode=child.exitcode,
                    out_of_memory=child.exitcode == -signal.SIGKILL,  # not ours: that is ``killed``
                )
            if message is None:
                continue
            if message[0] == MEMORY:
                return Ended(
                    crashed=f"raised MemoryError{f' ({message[1]})' if message[1] else ''}; "
                    f"this container has {outofmemory.memory_figure()}",
                    seconds=time.monotonic() - started,
                    progress=progress,
                    out_of_memory=True,
                )
            if message[0] == "progress":
                progress = tuple(message[1:])
                continue
            return Ended(message[1], finished=True, seconds=time.monotonic() - started, progress=progress)
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join(KILL_WAIT_SECONDS)


def evaluate(
    candidate: Candidate,
    ctx: search.Context,
    deadline: float,
    kill_at: float,
    keep_model_below: float = math.inf,
) -> search.Result:
    """:func:`byoc.automl.search.evaluate` in a child process, killed at ``kill_at`` (monotonic)
    or as soon as ``ctx.stop`` is set; the result carries the last fold's fitted model only when
    its loss is below ``keep_model_below`` (a new best: the model is pickled back only then)."""

    def work(report: Callable[..., None]) -> Any:
        """The result first, then its model (the larger message, pickled apart): a model still
        on its way when time is up costs the model, not the candidate's score."""
        result = search.evaluate(
            candidate,
            ctx,
            deadline,
            on_fold=lambda folds, seconds: report(FOLD, folds, seconds),
            keep_model_below=keep_model_below,
        )
        model, result.model = result.model, None
        report(SCORED, result)
        return model

    def until() -> tuple[float, str]:
        return (-math.inf, ASKED_TO_STOP) if ctx.stop.is_set() else (kill_at, BUDGET_RAN_OUT)

    ended = run(work, until)
    if ended.progress[:1] == (SCORED,):
        scored: search.Result = ended.progress[1]
        scored.model = ended.value  # None when it was still on its way
        return scored
    _, folds, fit_seconds = ended.progress or (FOLD, 0, 0.0)
    if ended.killed:
        after = f" after {ended.seconds:.1f} s: {ended.killed}"
        return _unfinished(candidate, ctx, search.STOPPED, folds, ended.seconds, "stopped", after)
    what = lost("the process scoring it", ended)
    failed = _unfinished(candidate, ctx, search.FAILED, folds, fit_seconds, what)
    if ended.out_of_memory:
        failed.blame = search.MEMORY
    return failed


@dataclass
class Refitted:
    """A refit's outcome: the fitted model, or None and why there is none (``out_of_memory``
    when it ran out of memory: a larger instance, not more time, would let it end)."""

    model: Any
    why: str = ""
    out_of_memory: bool = False


def refit(
    candidate: Candidate, ctx: search.Context, X: pd.DataFrame, y: np.ndarray, deadline: Deadline
) -> Refitted:
    """:func:`byoc.automl.search.refit` in a child process killed when ``deadline()`` passes."""
    fit = search.refit  # looked up now, in the parent (tests slow it down by replacing it)
    ended = run(lambda report: fit(candidate, ctx, X, y), deadline)
    if ended.finished:
        return Refitted(ended.value)
    if ended.killed:
        return Refitted(None, f"stopped after {ended.seconds:.1f} s: {ended.killed}")
    why = lost("the process refitting it", ended)
    return Refitted(None, why if ended.out_of_memory else f"lost: {why}", ended.out_of_memory)


def lost(what: str, ended: Ended) -> str:
    """Why a child (``what``: "the process scoring it") crashed, leading with memory when it ran
    out of it: the one wording for every fit the job forks (candidates, refits, the stack)."""
    return f"{'out of memory: ' if ended.out_of_memory else ''}{what} {ended.crashed}"


def _unfinished(
    candidate: Candidate,
    ctx: search.Context,
    status: str,
    folds: int,
    seconds: float,
    what: str,
    after: str = "",
) -> search.Result:
    return search.Result(
        candidate,
        status,
        fit_seconds=seconds,
        finished_at=ctx.elapsed(),
        message=f"{what} during fold {folds + 1} of {ctx.plan.folds}{after}",
        folds_done=folds,
    )


def _crash_cause(exitcode: int | None) -> str:
    if exitcode == -signal.SIGKILL:  # not by us: how the kernel's OOM killer ends a process
        return f"{outofmemory.KILLED}; this container has {outofmemory.memory_figure()}"
    if exitcode is not None and exitcode < 0:
        return f"was killed by signal {-exitcode}"
    return f"ended with exit code {exitcode}"
