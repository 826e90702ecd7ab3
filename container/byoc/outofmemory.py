"""Memory running out during training: a :class:`ResourceError` that says what to do.

On SageMaker an instance too small for the data or the model is one of the commonest reasons a
training job fails.  Python raises ``MemoryError`` when an allocation is refused (an address-
space limit, overcommit refused); the kernel's OOM killer instead ends the process with SIGKILL,
and then nothing of ours runs (a parent process, such as a user script's, reports it with
:func:`killed`).  Either way the message leads with the cause, what the job was doing and how
much memory the container has, then the fixes: a larger instance type, fewer rows or columns, or
the hyperparameters that size the chosen model.
"""

from __future__ import annotations

import resource
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from byoc.errors import ResourceError
from byoc.memory_limit import memory_limit  # imported up front: not when memory has run out

# Hyperparameter -> how to change it for a smaller model.  The declarations do not say which
# hyperparameters size a model (see FINDINGS: a field of theirs would), so the ones that do are
# named here and offered only when the chosen algorithm (or an ensemble member) declares them.
SHRINKS = MappingProxyType(
    {
        "n_estimators": "fewer trees",
        "max_depth": "set or lower it for shallower trees",
        "max_leaf_nodes": "set or lower it for fewer leaves per tree",
        "min_samples_leaf": "raise it for smaller trees",
        "max_samples": "fewer rows per tree",
        "max_bins": "fewer histogram bins",
        "n_neighbors": "fewer neighbours per prediction",
        "calibration_folds": "fewer calibration models",
    }
)


def gib(size: int) -> str:
    return f"{size / (1 << 30):.1f} GiB"


def memory_figure() -> str:
    """How much memory this process may use, and where the figure comes from."""
    limit = memory_limit()
    text = f"{gib(limit.bytes)} of memory ({limit.source})"
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        text += f" and an address-space limit (ulimit -v) of {gib(soft)}"
    return text


def size_hyperparameters(params: Mapping[str, Any]) -> list[str]:
    """``name=value (how)`` for each hyperparameter that sizes the chosen model, as resolved."""
    from byoc import algorithms

    algorithm = params.get("algorithm")
    if algorithm not in algorithms.buildable():
        return []
    members = tuple(params.get("ensemble_members") or ()) if algorithm == "ensemble" else ()
    names = {hp.name for name in (algorithm, *members) for hp in algorithms.get(name).hyperparameters}
    return [f"{name}={params.get(name)} ({how})" for name, how in SHRINKS.items() if name in names]


TRAINING_FIXES = (
    "use an instance type with more memory (a larger instance_type), or train on fewer rows or columns"
)


def error(
    doing: str,
    exc: BaseException | None = None,
    *,
    hyperparameters: Sequence[str] = (),
    note: str = "",
    fixes: str = TRAINING_FIXES,
    outcome: str = "No model was saved.",
) -> ResourceError:
    """The failure for memory running out while ``doing`` (a phase: "reading channel 'train'").
    ``note`` follows the fixes (say, what will not help); ``fixes`` and ``outcome`` are
    training's unless another command (evaluate) has its own.

    ``exc`` loses its traceback: its frames hold what filled the memory (a forest's trees so
    far), which writing the failure file may need back."""
    if exc is not None:
        exc.__traceback__ = None
    said = " ".join(str(exc).split()) if exc is not None else ""
    if hyperparameters:
        fixes += f", or a smaller model: {', '.join(hyperparameters)}"
    if note:
        fixes += f" ({note})"
    failure = ResourceError(
        f"Out of memory while {doing}{f' (MemoryError: {said[:300]})' if said else ''}: this "
        f"container has {memory_figure()}; {fixes}. {outcome}"
    )
    failure.__cause__ = exc
    return failure


def as_user_error(exc: BaseException, doing: str) -> ResourceError | None:
    """The :func:`error` for a ``MemoryError`` raised while ``doing``, else None."""
    return error(doing, exc) if isinstance(exc, MemoryError) else None


def killed(what: str) -> str:
    """The cause for a child process ended by SIGKILL, which is how the kernel's OOM killer ends it."""
    return f"{what} {KILLED}; this container has {memory_figure()}"


KILLED = "was killed by the kernel (SIGKILL: out of memory?)"


def ran_out(exc: BaseException) -> str:
    """One line for a ``MemoryError`` that a part of the job survived (an AutoML candidate's):
    what it said and the memory figure."""
    said = " ".join(str(exc).split())
    return f"out of memory (MemoryError{f': {said[:200]}' if said else ''}); this container has {memory_figure()}"
