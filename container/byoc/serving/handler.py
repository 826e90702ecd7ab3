"""The seam between the HTTP app and whatever answers /invocations: a :class:`Handler`.

The app (``serving/app.py``) owns HTTP: routes, request ids, reading the body within the
payload limit, turning errors into JSON.  A handler owns one model: it decodes the body,
predicts and encodes the answer.  byoc's built-in model is one handler
(:class:`byoc.serving.builtin.ModelHandler`); a user's ``inference.py`` hooks are another; a
multi-model endpoint keeps one handler per model directory.  The app never asks which kind
it runs.

For writers of a new handler or of a registry of handlers (multi-model endpoints):

- Build one with :func:`load` (model directory -> Handler).  It runs in the gunicorn master
  before the workers fork, so whatever it loads is shared by every worker; it raises
  :class:`~byoc.errors.ModelLoadError` (the directory cannot serve) or
  :class:`~byoc.errors.ConfigError` (a setting is wrong), never a bare exception.
- ``invoke(request)`` is called once per request, in a worker, possibly concurrently: across
  worker processes, and across the threads of one worker (gthread, ``BYOC_WORKER_THREADS``),
  so whatever it changes per request must be local to the call.  Raise a
  :class:`~byoc.errors.UserError` for a client mistake (its ``status`` and ``code`` become
  the JSON error); anything else is logged with the request id and answered with a 500.
- ``request.body`` reads the payload within the endpoint's limit (raising
  :class:`~byoc.errors.PayloadTooLarge` past it): ``read()`` for the whole body, or
  ``line_slices()`` for line-oriented formats, in slices that end at a newline, so a large
  batch never sits in memory whole.  Read it once, one way.
- ``warm_up()`` runs once after loading (lazy imports, caches), through :func:`warm_up`: a
  failure there means the model cannot predict, so ``serve`` refuses to start and a
  multi-model endpoint refuses the load, rather than every request failing.
- ``memory_bytes`` is what loading the model cost in resident memory no file backs (measured by
  :func:`load`), for memory budgets and eviction.
- ``describe()`` is the one line ``serve`` logs at start-up.
- ``close()`` runs when a multi-model worker drops the handler (unload, eviction, a reload, a
  load refused after it was built): it takes out of the process what loading put in for this
  model alone (a program's folders on sys.path and the modules imported from them), so a model
  loaded later cannot import them.  A request that still holds the handler may finish.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from byoc import artifact
from byoc.errors import ModelLoadError
from byoc.serving.memory import anonymous_resident_bytes
from byoc.serving.settings import ServingSettings

if TYPE_CHECKING:  # hooks imports this module
    from byoc.serving.hooks import UserCode, UserModules

log = logging.getLogger("byoc.serving")


class RequestBody(Protocol):
    """The request payload, read within the endpoint's limit; read it once, one way."""

    def read(self) -> bytes:
        """The whole body (PayloadTooLarge past the limit)."""
        ...

    def line_slices(self, whole_records: Callable[[bytes], int] | None = None) -> Iterator[bytes]:
        """The body in slices that end at a newline (the last may not), each bounded in size;
        ``whole_records(data)``, when given, says where whole records end instead (CSV quoting)."""
        ...


@dataclass(frozen=True)
class InferenceRequest:
    """One POST /invocations, as a handler sees it: headers already parsed out."""

    body: RequestBody
    content_type: str | None
    accept: str | None
    custom_attributes: str | None
    request_id: str


@dataclass
class InferenceResponse:
    """A handler's answer: status 200 with this body (bytes, or an iterable of byte chunks)."""

    body: bytes | Iterable[bytes]
    content_type: str
    headers: Mapping[str, str] = field(default_factory=dict)


class Handler(Protocol):
    """What the app needs from the thing that serves a model (see the module docstring)."""

    memory_bytes: int

    def invoke(self, request: InferenceRequest) -> InferenceResponse: ...

    def warm_up(self) -> None: ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


def warm_up(handler: Handler) -> None:
    """``handler.warm_up()``, its failure a ModelLoadError: a model that loads but cannot predict
    on sample rows would fail every request, so it must not serve (the cause is the message)."""
    try:
        handler.warm_up()
    except Exception as exc:
        log.debug("warm-up prediction failed", exc_info=True)
        raise ModelLoadError(
            f"the model loads but cannot predict ({type(exc).__name__}: {exc}); "
            "the warm-up prediction on sample rows failed, so every request would fail"
        ) from exc


def _disk_bytes(model_dir: Path) -> int:
    return sum(p.stat().st_size for p in model_dir.rglob("*") if p.is_file())


def load(
    model_dir: Path,
    settings: ServingSettings,
    environ: Mapping[str, str] | None = None,
    code: UserCode | None = None,
    modules: UserModules | None = None,
) -> Handler:
    """The handler for one model directory, with ``memory_bytes`` measured around the load.

    The user's inference hooks when they put a program there (see :mod:`byoc.serving.hooks`),
    else byoc's own model; ``code``: where start-up found them already (fetch_submit_directory),
    so they are not looked for twice; ``modules``: the programs the server imported before
    (a multi-model worker loads many: :class:`~byoc.serving.hooks.UserModules`).

    The growth of resident memory that no file backs is the measure: library code a worker's
    first load touches (a forked worker faults in its own page table entries for them, some
    17 MiB) is shared page cache, not the model's.  Where it reads as nothing (memory the
    allocator already held), the model's size on disk stands in.
    """
    from byoc.serving.builtin import ModelHandler
    from byoc.serving.hooks import HooksHandler, locate_code

    before = anonymous_resident_bytes()
    environ = os.environ if environ is None else environ
    with artifact.reading(model_dir):  # a directory this uid cannot read fails here first
        # a model.tar.gz packed with its top-level folder: the model, and its code/, are there.
        # Without a program found at the top, locate_code has located the model: byoc's own
        # model loads from that folder without locating it again.
        code = code or locate_code(model_dir, environ)
        model_dir, program = code.model_dir, code.program
        handler: Handler = (
            ModelHandler.load(model_dir, settings)
            if program is None
            else HooksHandler.load(program, model_dir, settings, modules)
        )
    grown = anonymous_resident_bytes() - before
    handler.memory_bytes = grown if grown > 0 else _disk_bytes(model_dir)
    return handler
