"""The routes of a multi-model endpoint (SAGEMAKER_MULTI_MODEL=true), on top of the base app.

SageMaker's custom-container contract for multi-model endpoints:

- ``POST /models`` ``{"model_name": ..., "url": ...}``: load (409 already loaded, 404 no model
  at url, 507 does not fit even after evicting, 400 naming the problem for a corrupt or
  incompatible model);
- ``GET /models[?limit=N&next_page_token=T]``: ``{"models": [{"modelName", "modelUrl"}],
  "nextPageToken": T}`` (the token only while more pages follow);
- ``GET /models/<name>`` and ``DELETE /models/<name>`` (404 when not loaded);
- ``POST /models/<name>/invoke``: exactly /invocations' request path (codecs, custom
  attributes, output fields, errors) on that model's handler; 404 when not loaded, so
  SageMaker loads it and retries.

Which models are loaded, and how each worker caches them, is :mod:`byoc.serving.multimodel`.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import logging
import tempfile
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from byoc import json_objects, user_script
from byoc.errors import PayloadTooLarge, UserError
from byoc.serving import handler as handlers
from byoc.serving import hooks, multimodel
from byoc.serving.app import answer, read_body_first, read_small_body, request_id_of_current_request
from byoc.serving.handler import Handler
from byoc.serving.settings import ServingSettings
from byoc.serving.worker import invocation_starts, invocation_waits

log = logging.getLogger("byoc.serving.multimodel")

ROUTES = (
    "GET /ping, POST /models, GET /models, GET /models/<name>, DELETE /models/<name> "
    "or POST /models/<name>/invoke (this is a multi-model endpoint)"
)
TARGET_MODEL_HEADER = "X-Amzn-SageMaker-Target-Model"
INDEX_EXTENSION = "byoc.model_index"
REGISTRY_EXTENSION = "byoc.model_registry"


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_file`` across worker processes."""
    with open(lock_file, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def handler_factory(
    settings: ServingSettings, environ: Mapping[str, str], install_lock: Path
) -> multimodel.HandlerFactory[Handler]:
    """Model directory -> warmed-up handler: the same loader and warm-up check single-model
    serving uses.

    A model whose code brings a requirements.txt is loaded under ``install_lock``: workers load
    on demand, and two pip processes must not install into one environment at once.  The models'
    programs are imported through one :class:`~byoc.serving.hooks.UserModules`, so each gets its
    own helpers.  A handler that fails its warm-up is closed before the load is refused.
    """
    modules = hooks.UserModules()

    def load(model_dir: Path) -> Handler:
        if (model_dir / hooks.CODE_DIR / user_script.REQUIREMENTS).is_file():
            with _exclusive(install_lock):
                handler = handlers.load(model_dir, settings, environ, modules=modules)
        else:
            handler = handlers.load(model_dir, settings, environ, modules=modules)
        try:
            handlers.warm_up(handler)  # as at start-up: a model that cannot predict is refused
        except BaseException:
            handler.close()
            raise
        return handler

    return load


# Imported in the master before the workers fork, so a worker's first load is not also its
# first import of scikit-learn's estimators (seconds) and every worker shares those pages.
PREIMPORTS = ("byoc.serving.builtin", "byoc.algorithms", "byoc.algorithms.ensemble")


def _json(document: Any, status: int = 200) -> Response:
    return Response(json.dumps(document), status=status, mimetype="application/json")


# a load's body is {"model_name": ..., "url": ...}: a name of at most 1,024 characters (as
# percent-escapes, 4 KB of the request line) and a path, a few kilobytes in all
LOAD_BODY_LIMIT = 64 * 1024


def _load_body_too_large(limit: int) -> UserError:
    return PayloadTooLarge(
        f"the POST /models body is larger than {limit // 1024} KB ({limit:,} bytes), the most a load "
        'request takes: send {"model_name": ..., "url": ...} alone'
    )


def _load_request() -> tuple[Any, Any]:
    """The load's name and url, from a body of at most LOAD_BODY_LIMIT bytes (it was read whole
    into the worker's memory, of any size, before the JSON was looked at).  A key given twice is
    refused (json keeps the last without a word: which model was meant cannot be told), and so is
    JSON too deeply nested to parse (a RecursionError, not json's ValueError, so it was a 500)."""
    body = read_small_body(request.environ, LOAD_BODY_LIMIT, _load_body_too_large)
    try:
        document = json_objects.loads(body)
    except json_objects.RepeatedKey as exc:
        raise UserError(
            f"the POST /models body names {exc.key!r} twice, so which value is meant cannot be told; "
            'send {"model_name": ..., "url": ...} with each key once',
            code="bad_load_request",
        ) from None
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise UserError(
            'POST /models takes a JSON object {"model_name": ..., "url": ...}', code="bad_load_request"
        )
    return document.get("model_name"), document.get("url")


def _page_size(raw: str | None) -> int:
    text = (raw or "").strip()
    if not text:
        return multimodel.DEFAULT_PAGE_SIZE
    # digits only: int() also reads "1_0" as 10 and "+5" or full-width digits as numbers
    value = int(text) if text.isascii() and text.isdigit() else 0
    if not 1 <= value <= multimodel.MAX_PAGE_SIZE:
        raise UserError(
            f"limit={raw!r}: give a whole number from 1 to {multimodel.MAX_PAGE_SIZE}", code="bad_limit"
        )
    return value


def add_routes(
    app: Flask, settings: ServingSettings, environ: Mapping[str, str], index_dir: Path | None = None
) -> multimodel.ModelRegistry[Handler]:
    """Add the /models routes to ``app``; the index lives in ``index_dir`` (a new temporary
    directory by default, recorded in ``app.extensions`` for ``serve`` to remove at exit)."""
    for module in PREIMPORTS:
        importlib.import_module(module)
    if index_dir is None:
        index_dir = Path(tempfile.mkdtemp(prefix="byoc-models-"))
    app.extensions[INDEX_EXTENSION] = index_dir
    budget = multimodel.memory_budget(settings.model_memory_mb)
    registry: multimodel.ModelRegistry[Handler] = multimodel.ModelRegistry(
        multimodel.ModelIndex(index_dir),
        handler_factory(settings, environ, index_dir / ".install.lock"),
        budget // settings.workers,
        release=lambda handler: handler.close(),
    )
    app.extensions[REGISTRY_EXTENSION] = registry
    # A worker serves /ping and the management calls from spare threads while one thread
    # loads or predicts; handlers themselves see one request at a time, as under sync workers
    # (each request's body read before its turn).
    invoke_lock = threading.Lock()

    @app.post("/models")
    def load_model() -> Response:
        name, url = _load_request()
        entry = registry.load(name, url)
        return _json({"status": f"model {entry.name} loaded", **entry.describe()})

    @app.get("/models")
    def list_models() -> Response:
        token = request.args.get("next_page_token") or request.args.get("nextPageToken")
        entries, next_token = registry.page(_page_size(request.args.get("limit")), token)
        document: dict[str, Any] = {"models": [e.describe() for e in entries]}
        if next_token is not None:
            document["nextPageToken"] = next_token
        return _json(document)

    @app.get("/models/<path:name>")
    def describe_model(name: str) -> Response:
        return _json(registry.describe(name).describe())

    @app.delete("/models/<path:name>")
    def unload_model(name: str) -> Response:
        entry = registry.unload(name)
        return _json({"status": f"model {entry.name} unloaded", **entry.describe()})

    @app.post("/models/<path:name>/invoke")
    def invoke_model(name: str) -> Response:
        request_id = request_id_of_current_request()
        handler = registry.handler(name)  # loaded in this worker on its first request: not timed
        invocation_starts(request.environ)
        read_body_first(settings, request.environ, request_id)  # a client's slow body takes no turn
        with invocation_waits(request.environ):  # behind another model's predict: not its time
            invoke_lock.acquire()
        try:
            return answer(handler, settings)
        finally:
            invoke_lock.release()

    @app.post("/invocations")
    def invocations() -> Response:
        raise UserError(
            "this is a multi-model endpoint (SAGEMAKER_MULTI_MODEL=true): invoke a model with "
            "POST /models/<name>/invoke, or call InvokeEndpoint with TargetModel",
            code="multi_model_endpoint",
            status=404,
        )

    log.info(
        "multi-model endpoint: models may take %s in all, %s per worker; index in %s",
        multimodel.mebibytes(budget),
        multimodel.mebibytes(budget // settings.workers),
        index_dir,
    )
    return registry
