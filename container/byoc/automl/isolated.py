"""One candidate scored in a forked process that is killed when its time is up.

A scikit-learn ``fit`` cannot be interrupted: a fold that runs longer than the cost model
expected (a family not seen yet, a busy machine) would carry the job past its budget.  So each
candidate is scored in a child forked from the search's process — it shares the data
copy-on-write, nothing is pickled on the way in — and the parent waits for its result only
until the search deadline or a stop request, then kills it.  The child reports each finished
fold, so a stopped candidate still says how far it got and what it cost: the numbers the
"no candidate finished" message and the cost model need.

Fork rather than spawn: a spawned child would import scikit-learn and receive the data again
for every candidate (seconds under load); a fork costs milliseconds.  The child only fits,
predicts and sends one result back, then leaves with ``os._exit``.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import signal
import time
from multiprocessing.connection import Connection
from typing import Any

from byoc.automl import search
from byoc.automl.candidates import Candidate

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
KILL_WAIT_SECONDS = 5.0
PR_SET_PDEATHSIG = 1


def _child(candidate: Candidate, ctx: search.Context, deadline: float, pipe: Connection, libc: Any) -> None:
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # a lost parent (host) takes it along
    try:
        result = search.evaluate(
            candidate, ctx, deadline, on_fold=lambda number, seconds: pipe.send(("fold", number, seconds))
        )
        pipe.send(("result", result))
    finally:
        pipe.close()


def evaluate(candidate: Candidate, ctx: search.Context, deadline: float, kill_at: float) -> search.Result:
    """:func:`byoc.automl.search.evaluate` in a child process, killed at ``kill_at`` (monotonic)
    or as soon as ``ctx.stop`` is set."""
    fork = multiprocessing.get_context("fork")
    libc = ctypes.CDLL(None, use_errno=True)  # loaded before the fork: the child only calls it
    receive, send = fork.Pipe(duplex=False)
    started = time.monotonic()
    child = fork.Process(target=_child, args=(candidate, ctx, deadline, send, libc), daemon=True)
    child.start()
    send.close()
    folds, fit_seconds = 0, 0.0
    try:
        while True:
            if ctx.stop.is_set() or time.monotonic() >= kill_at:
                why = "the job was asked to stop" if ctx.stop.is_set() else "the time budget ran out"
                seconds = time.monotonic() - started
                after = f" after {seconds:.1f} s: {why}"
                return _unfinished(candidate, ctx, search.STOPPED, folds, seconds, "stopped", after)
            try:
                ready = receive.poll(min(POLL_SECONDS, max(kill_at - time.monotonic(), 0.0)))
                message: Any = receive.recv() if ready else None
            except (EOFError, OSError):  # the child ended without a result: it crashed or was killed
                child.join(KILL_WAIT_SECONDS)
                what = f"the process scoring it {_crash_cause(child.exitcode)}"
                return _unfinished(candidate, ctx, search.FAILED, folds, fit_seconds, what)
            if message is None:
                continue
            if message[0] == "fold":
                folds, fit_seconds = message[1], message[2]
                continue
            return message[1]
    finally:
        receive.close()
        if child.is_alive():
            child.kill()
        child.join(KILL_WAIT_SECONDS)


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
    if exitcode is not None and exitcode < 0:
        return f"was killed by signal {-exitcode}" + (" (out of memory?)" if exitcode == -9 else "")
    return f"ended with exit code {exitcode}"
