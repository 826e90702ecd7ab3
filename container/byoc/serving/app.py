"""The Flask app: /ping, /execution-parameters and /invocations on one straight request path.

The app owns HTTP (request ids, the payload limit, errors as JSON) and hands each request to
a :class:`~byoc.serving.handler.Handler`, without knowing which kind it runs.  Client
mistakes are :class:`~byoc.errors.UserError` and become ``{"error": <code>, "message": ..., "request_id": ...}`` with their 4xx status;
anything else is a fault of ours: logged with the request id, answered with a 500 that
carries the same id (header ``X-Request-Id`` and the JSON body), and never a traceback.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from flask import Flask, Response, request
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException
from werkzeug.wsgi import get_content_length, get_input_stream

from byoc import csvfields, outofmemory
from byoc.environment import MLPaths
from byoc.errors import PayloadTooLarge, ResourceError, UserError
from byoc.serving import codecs
from byoc.serving.body import CLOSE_CONNECTION, awaits_continue
from byoc.serving.handler import Handler, InferenceRequest, InferenceResponse
from byoc.serving.handler import load as load_handler
from byoc.serving.output import CUSTOM_ATTRIBUTES_HEADER
from byoc.serving.settings import RAISE_PAYLOAD_LIMIT, ServingSettings
from byoc.serving.worker import REQUEST_ID_KEY, new_request_id

log = logging.getLogger("byoc.serving")

REQUEST_ID_HEADER = "X-Request-Id"
CHUNK_BYTES = 4 * 1024 * 1024  # line-oriented batch bodies are decoded and predicted in slices this big
# line-oriented bodies longer than this are read into the slices' own buffers (_line_slices_into); a
# single row's is read as before, where the buffer's set-up cost more than the copies it saves
READ_INTO_BYTES = 64 * 1024
DRAIN_LIMIT = 128 * 1024 * 1024  # read (and drop) at most this much of an oversized body before answering


def _error_body(code: str, message: str, request_id: str) -> str:
    return json.dumps({"error": code, "message": message, "request_id": request_id})


def _error_response(status: int, code: str, message: str, request_id: str) -> Response:
    response = Response(_error_body(code, message, request_id), status=status, mimetype="application/json")
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit // (1024 * 1024)} MB (SAGEMAKER_MAX_PAYLOAD_IN_MB); "
        + RAISE_PAYLOAD_LIMIT
    )


def _drain(stream: Any) -> bool:
    """Read what the client is still sending so it gets our 413 rather than a reset connection;
    whether the body ended within ``DRAIN_LIMIT``."""
    remaining = DRAIN_LIMIT
    while remaining > 0:
        if not (block := stream.read(min(remaining, 1 << 20))):
            return True
        remaining -= len(block)
    return False


def _drain_quietly(stream: Any) -> bool:
    """:func:`_drain` when the body may itself be what failed (framing, encoding, a gone client):
    whether the body was read to its end."""
    try:
        return _drain(stream)
    except (UserError, OSError):
        return False


def _drain_or_close(stream: Any, environ: dict[str, Any]) -> None:
    """Drain the refused request's body; when its end did not come (more than ``DRAIN_LIMIT``
    left, or a gzip body read to the limit, whose decoder refuses to go on), the answer says
    ``Connection: close``.  gunicorn reads at most 64 KiB of an unread body before the next
    request and closes the connection when more is left: after a 413 that said keep-alive, so
    the client's next request on that connection met a closed socket (RemoteDisconnected)."""
    if awaits_continue(environ):  # one that waits for 100 Continue sends nothing (closed already)
        return
    if not _drain_quietly(stream):
        environ[CLOSE_CONNECTION] = True


def read_body(stream: Any, limit: int, length: int | None = None) -> bytes:
    """The whole body, within ``limit``; ``length``, when the framing gives it, ends the reading
    once that many bytes are in, without a last read to see the stream's end (see FlaskBody)."""
    blocks, total = [], 0
    while total != length and (block := stream.read(1 << 20)):
        total += len(block)
        if total > limit:
            raise _too_large(limit)
        blocks.append(block)
    return b"".join(blocks)


def _after_last_newline(data: bytes) -> int:
    return data.rfind(b"\n") + 1


def line_slices(
    stream: Any,
    limit: int,
    size: int = CHUNK_BYTES,
    whole_records: Callable[[bytes], int] | None = None,
    length: int | None = None,
) -> Iterator[bytes]:
    """The body in slices of about ``size`` bytes that end at a record boundary (a newline, or
    ``whole_records``' cut), counting against ``limit``; ``length`` as for :func:`read_body`."""
    whole_records = whole_records or _after_last_newline
    if (length is None or length > READ_INTO_BYTES) and hasattr(stream, "readinto"):
        yield from _line_slices_into(stream, limit, size, whole_records, length)
        return
    pending, total = b"", 0
    while total != length and (block := stream.read(size)):
        total += len(block)
        if total > limit:
            raise _too_large(limit)
        data = pending + block if pending else block
        cut = whole_records(data)
        if cut <= 0:
            pending = data
            continue
        yield data[:cut]
        pending = data[cut:]
    if pending:
        yield pending


def _line_slices_into(
    stream: Any, limit: int, size: int, whole_records: Callable[[bytes], int], length: int | None
) -> Iterator[bytes]:
    """:func:`line_slices` from a stream with ``readinto`` (gunicorn's socket, through
    byoc.serving.body; a BytesIO): each slice is read into a buffer behind the previous slice's
    unfinished record, so a slice is copied once, into the bytes it is given as, where reading
    blocks and joining the carried record to the next block copied it twice more.

    A body of unknown length (chunked) is read first into a buffer of ``READ_INTO_BYTES``: one
    that ends there (a single row) is then all read, where a first buffer of ``size`` bytes (a
    bytearray: zero-filled) and a second one to see the stream's end cost a single CSV row 290
    against 108 us of CPU (decision_tree, in-process); a longer body carries those bytes into a
    first slice of ``size`` bytes, so the slices are the same.  A read that comes back short is
    the stream's end (:func:`_fill`): no further buffer is made to see it."""
    pending, total = b"", 0
    probing = length is None and 0 < READ_INTO_BYTES < size
    room = READ_INTO_BYTES if probing else size  # bytes the next read asks for after the carried ones
    while total != length:
        want = room if length is None else min(room, length - total)
        buffer, got = _read_behind(stream, pending, want)
        total += got
        if total > limit:
            raise _too_large(limit)
        ended = got < want  # a short read: the body ended here
        if probing and not ended:  # longer than the probe: its bytes begin a slice of ``size``, as before
            pending, room, probing = bytes(buffer), size - len(buffer), False
            continue
        probing, room = False, size
        cut = whole_records(buffer)  # type: ignore[arg-type]  # a bytearray: the same searches
        if cut > 0:
            with memoryview(buffer) as view:
                piece, pending = bytes(view[:cut]), bytes(view[cut:])
            yield piece
        else:
            pending = bytes(buffer)
        if ended:
            break
    if pending:
        yield pending


def _read_behind(stream: Any, pending: bytes, want: int) -> tuple[bytearray, int]:
    """A buffer holding ``pending`` and then up to ``want`` bytes read from ``stream``, cut to
    what was read, and how many were read."""
    carried = len(pending)
    buffer = bytearray(carried + want)
    with memoryview(buffer) as view:
        view[:carried] = pending
        got = _fill(stream, view[carried:])
    if got < want:
        del buffer[carried + got :]
    return buffer, got


def _fill(stream: Any, view: memoryview) -> int:
    """Bytes read into ``view`` by ``stream.readinto`` until it is full or the stream ends."""
    filled = 0
    while filled < len(view) and (got := stream.readinto(view[filled:])):
        filled += got
    return filled


class FlaskBody:
    """The request stream as a :class:`~byoc.serving.handler.RequestBody`, within ``limit`` bytes.

    ``length``: the body's length when its framing is Content-Length (``None`` for chunked or
    decoded bodies).  The stream ends there in any case (gunicorn's body reader and werkzeug's
    bounded one both stop at it); knowing it saves the read that would only report the end,
    a trip through three layers of readers, on every single-row request."""

    def __init__(
        self, stream: Any, content_length: int | None, limit: int, length: int | None = None
    ) -> None:
        self.stream = stream
        self.limit = limit
        self.length = length
        if content_length is not None and content_length > limit:
            raise _too_large(limit)

    def read(self) -> bytes:
        return read_body(self.stream, self.limit, self.length)

    def line_slices(self, whole_records: Callable[[bytes], int] | None = None) -> Iterator[bytes]:
        return line_slices(self.stream, self.limit, whole_records=whole_records, length=self.length)


CUSTOM_ATTRIBUTES_KEY = "HTTP_" + CUSTOM_ATTRIBUTES_HEADER.upper().replace("-", "_")


def _input(environ: dict[str, Any]) -> Any:
    """The body stream: gunicorn's own when it ends the stream at the body's end
    (``wsgi.input_terminated``: werkzeug's ``request.stream`` returns it then too, after header
    parsing that cost about 10 us a request), else werkzeug's bounded wrapper (what
    ``request.stream`` gives with the app's MAX_CONTENT_LENGTH of None)."""
    if environ.get("wsgi.input_terminated"):
        return environ["wsgi.input"]
    return get_input_stream(environ, max_content_length=None)


def _framing(environ: dict[str, Any]) -> tuple[Any, int | None, int | None]:
    """The request's body stream (:func:`_input`), its announced Content-Length, and the length
    that ends its reading (that length, unless a Transfer-Encoding frames the body instead)."""
    content_length = get_content_length(environ)
    return _input(environ), content_length, None if "HTTP_TRANSFER_ENCODING" in environ else content_length


def answer(handler: Handler, settings: ServingSettings) -> Response:
    """:func:`respond` to the current Flask request."""
    return respond(handler, settings, request.environ)


def respond(handler: Handler, settings: ServingSettings, environ: dict[str, Any]) -> Response:
    """Hand the request in ``environ`` to ``handler`` and turn its answer into the HTTP response."""
    request_id = request_id_of(environ)
    return respond_with(invoke(handler, settings, environ, request_id), request_id)


def respond_with(result: InferenceResponse, request_id: str) -> Response:
    """The 200 response carrying a handler's answer (a list of chunks with its Content-Length)."""
    body = result.body
    headers = dict(result.headers)
    if isinstance(body, list) and len(body) > 1:
        headers.setdefault("Content-Length", str(sum(map(len, body))))
        body = handed_over(body)
    response = Response(body, status=200, content_type=result.content_type)
    response.headers.update(headers)
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def handed_over(chunks: list[bytes]) -> Iterator[bytes]:
    """``chunks`` one by one, each let go of as it is handed to the server: a huge batch's answer
    (33 MB for 99 MB of JSON Lines) is freed as it is written, so the worker can hand the memory
    back once the response is sent (see byoc.serving.worker) rather than after the response
    object is dropped."""
    chunks.reverse()
    while chunks:
        yield chunks.pop()


def invoke(
    handler: Handler, settings: ServingSettings, environ: dict[str, Any], request_id: str
) -> InferenceResponse:
    """``handler``'s answer to the request in ``environ``; a client's mistake drains the body.

    Headers are read from the WSGI environ (the same values ``request.headers`` gives), the
    length by werkzeug's own ``get_content_length`` (what ``request.content_length`` returns)."""
    stream, content_length, framed_length = _framing(environ)
    try:
        return handler.invoke(
            InferenceRequest(
                body=FlaskBody(stream, content_length, settings.max_payload_bytes, framed_length),
                content_type=environ.get("CONTENT_TYPE"),
                accept=environ.get("HTTP_ACCEPT"),
                custom_attributes=environ.get(CUSTOM_ATTRIBUTES_KEY),
                request_id=request_id,
            )
        )
    except UserError as exc:  # the client may still be sending: it must get this answer, not a reset
        codecs.name_the_default(exc, environ.get("CONTENT_TYPE"))
        _drain_or_close(stream, environ)
        raise
    except MemoryError as exc:
        error = out_of_memory(exc, settings, content_length, request_id)
        _drain_or_close(stream, environ)
        raise error from None
    except Exception:  # our fault, answered 500: a batch predicted slice by slice left most of it unread
        _drain_or_close(stream, environ)
        raise


class _BodyReader:
    """A handler whose answer is the request's body, read whole, with :func:`invoke`'s refusals
    (413 above the payload limit, framing and encoding errors, out of memory): see
    :func:`read_body_first`."""

    memory_bytes = 0

    def invoke(self, request: InferenceRequest) -> InferenceResponse:
        return InferenceResponse(body=request.body.read(), content_type="")

    def warm_up(self) -> None:
        """Nothing to warm up."""

    def describe(self) -> str:
        return "the request body"

    def close(self) -> None:
        """Nothing to release."""


def read_body_first(settings: ServingSettings, environ: dict[str, Any], request_id: str) -> None:
    """Read the request's body into memory now, for a handler that answers one request at a time
    (a multi-model worker's turn): read in the turn, a client whose body stalls held every other
    request of the worker for as long as it stalled.  The handler then reads the copy."""
    body = invoke(_BodyReader(), settings, environ, request_id).body
    environ["wsgi.input"] = io.BytesIO(body if isinstance(body, bytes) else b"".join(body))
    environ["wsgi.input_terminated"] = True


def read_small_body(environ: dict[str, Any], limit: int, too_large: Callable[[int], UserError]) -> bytes:
    """The whole body of a request that is small by nature (a multi-model load's JSON), read within
    ``limit`` bytes: a body announced or found larger is refused with ``too_large(limit)`` (a gzip
    body is held to it decoded and to the payload limit as sent), and drained or its connection
    closed as :func:`invoke` does, so the client gets that answer rather than a reset."""
    stream, content_length, framed_length = _framing(environ)
    try:
        return FlaskBody(stream, content_length, limit, framed_length).read()
    except PayloadTooLarge:
        _drain_or_close(stream, environ)
        raise too_large(limit) from None
    except UserError:  # framing, encoding, a stalled body
        _drain_or_close(stream, environ)
        raise


def out_of_memory(
    exc: MemoryError, settings: ServingSettings, content_length: int | None, request_id: str
) -> ResourceError:
    """The answer to memory running out while a request was decoded, predicted or encoded (byoc's
    code or a hook's): 413, as for a body above the payload limit, since the request was larger
    than this endpoint can process.  The client fixes it by sending fewer records (batch
    transform's 3 retries of the same mini-batch would run out again, as a 5xx asks them to), the
    operator with more memory; the worker lives on (the request's arrays are freed with the
    exception's frames), and the log keeps what ran out.  Multi-model loads answer 507 instead:
    no request's size is at fault there (byoc.serving.multimodel)."""
    exc.__traceback__ = None  # its frames hold what filled the memory
    said = " ".join(str(exc).split())[:300]
    log.warning("request %s: out of memory: MemoryError%s", request_id, f": {said}" if said else "")
    body = f"a body of {content_length:,} bytes" if content_length is not None else "a chunked body"
    limit = (
        "no limit is set"
        if settings.unlimited_payload
        else f"now {settings.max_payload_mb} MB (SAGEMAKER_MAX_PAYLOAD_IN_MB)"
    )
    return ResourceError(
        f"memory ran out while answering this request ({body}): this container has "
        f"{outofmemory.memory_figure()}, shared by {settings.workers} workers; send fewer records per "
        f"request (batch transform: a smaller MaxPayloadInMB, {limit}, or BatchStrategy=SingleRecord), "
        "or use an instance type with more memory",
        status=413,
    )


_OWN_HEADERS = frozenset({"content-type", "content-length", REQUEST_ID_HEADER.lower()})


def _appended_headers(
    content_type: str, length: str, extra: Mapping[str, str], request_id: str
) -> list[tuple[str, str]] | None:
    """The header list werkzeug's Headers gives for Content-Type and Content-Length, updated by
    ``extra``, then X-Request-Id, in the common case where that is a plain append: ``extra`` is a
    dict (werkzeug reads every value of a MultiDict's or Headers' repeated key), every value is
    text without a line break (which werkzeug refuses) and no name of ``extra`` repeats another
    (ignoring case) or one of the three (which werkzeug replaces in place).  None otherwise."""
    if type(content_type) is not str or type(extra) is not dict:
        return None
    headers = [("Content-Type", content_type), ("Content-Length", length)]
    names = set(_OWN_HEADERS)
    for name, value in extra.items():
        lowered = name.lower()
        if type(value) is not str or lowered in names:
            return None
        names.add(lowered)
        headers.append((name, value))
    headers.append((REQUEST_ID_HEADER, request_id))
    for _, value in headers:
        if "\n" in value or "\r" in value:
            return None
    return headers


class BytesAnswer:
    """The WSGI response :func:`respond_with` gives for a body of bytes (a single row's answer):
    the same status, headers in the same order, checked as werkzeug's Headers checks them there,
    and body, without building (and copying the headers of) a Response.  Building werkzeug's
    Headers cost 3 us a request; :func:`_appended_headers` gives the same list in its common case."""

    def __init__(self, result: InferenceResponse, body: bytes, request_id: str) -> None:
        content_type, length = result.content_type, str(len(body))
        plain = _appended_headers(content_type, length, result.headers, request_id)
        if plain is None:
            headers = Headers([("Content-Type", content_type), ("Content-Length", length)])
            headers.update(result.headers)
            headers[REQUEST_ID_HEADER] = request_id
            plain = headers.to_wsgi_list()
        self.headers = plain
        self.body = body

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", self.headers)
        return [self.body]


def request_id_of(environ: dict[str, Any]) -> str:
    """The id of the request in ``environ``, assigned on first use."""
    request_id = environ.get(REQUEST_ID_KEY)
    if request_id is None:
        request_id = environ[REQUEST_ID_KEY] = new_request_id()
    return request_id


def request_id_of_current_request() -> str:
    """The id of the Flask request being served, assigned on first use."""
    return request_id_of(request.environ)


def error_response(exc: UserError | HTTPException, environ: dict[str, Any], routes: str) -> Response:
    """The JSON answer to a client's mistake (UserError, or werkzeug's HTTP errors) made in the
    request in ``environ``, with its 4xx (a 5xx for a UserError that says the endpoint's own code
    is at fault, such as a HookError); ``routes`` is what a 404 lists."""
    request_id = request_id_of(environ)
    if isinstance(exc, UserError):
        if exc.status >= 500:  # the endpoint's own fault (a broken hook, no memory): the log has it too
            log.error("request %s: %s: %s", request_id, exc.code, exc.message)
        return _error_response(exc.status, exc.code, exc.message, request_id)
    code = (exc.name or "http_error").lower().replace(" ", "_")
    status = exc.code or 500
    message = exc.description or exc.name
    path = "/" + _path_info(environ).lstrip("/")
    allowed = ", ".join(sorted(getattr(exc, "valid_methods", None) or ()))
    if status == 404:
        message = f"{path} does not exist; use {routes}"
    elif status == 405:
        message = f"{environ.get('REQUEST_METHOD', 'GET').upper()} is not allowed on {path}"
        if allowed:
            message += f"; use {allowed} (routes: {routes})"
    response = _error_response(status, code, message, request_id)
    if status == 405 and allowed:  # RFC 9110 15.5.6: a 405 names the methods the resource has
        response.headers["Allow"] = allowed
    return response


def fault_response(request_id: str) -> Response:
    """The 500 for a fault of ours (logged by the caller with the request id): no traceback."""
    return _error_response(
        500,
        "internal_error",
        f"the server failed to handle this request; quote request id {request_id} when reporting it",
        request_id,
    )


def _path_info(environ: Mapping[str, Any]) -> str:
    """PATH_INFO as werkzeug's ``request.path`` decodes it (WSGI gives it as latin-1 text)."""
    return str(environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8", "replace")


class DirectInvocations:
    """POST /invocations straight to :func:`respond`, without Flask's request and app contexts,
    URL matching and response finalising (a third of the app's CPU time on a single row); every
    other request, and every other method on /invocations, goes to Flask's app as before.
    Errors get the same JSON answers as Flask's error handlers give (:func:`error_response`)."""

    def __init__(self, flask_app: Callable[..., Any], handler: Handler, settings: ServingSettings) -> None:
        self.flask_app = flask_app
        self.handler = handler
        self.settings = settings

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO") != "/invocations" or environ.get("REQUEST_METHOD") != "POST":
            return self.flask_app(environ, start_response)
        request_id = request_id_of(environ)
        try:
            result = invoke(self.handler, self.settings, environ, request_id)
            body = result.body
            response: Any = (
                BytesAnswer(result, body, request_id)
                if type(body) is bytes
                else respond_with(result, request_id)
            )
        except (UserError, HTTPException) as exc:
            response = error_response(exc, environ, SINGLE_MODEL_ROUTES)
        except Exception as exc:
            log.exception("request %s failed: %s", request_id, exc)
            response = fault_response(request_id)
        return response(environ, start_response)


SINGLE_MODEL_ROUTES = "GET /ping, GET /execution-parameters or POST /invocations"


def create_app(handler: Handler | None = None, *, environ: Mapping[str, str] | None = None) -> Flask:
    """The WSGI app around ``handler``; loads the model in the ML root when none is given.

    With SAGEMAKER_MULTI_MODEL=true (and no handler given) it is a multi-model endpoint
    instead (:mod:`byoc.serving.multimodel_app`): no model at start, /models routes.

    Raises ModelLoadError or ConfigError before any request is served, so ``serve`` can
    refuse to start with a one-line reason.
    """
    environ = dict(os.environ if environ is None else environ)
    settings = ServingSettings.from_environ(environ)
    if handler is None and settings.multi_model:
        from byoc.serving import multimodel_app

        app = base_app(settings, multimodel_app.ROUTES)
        multimodel_app.add_routes(app, settings, environ)
        return app
    if handler is None:
        from byoc.serving.hooks import CODE_DIR, fetch_submit_directory

        paths = MLPaths.from_environ(environ)
        environ, code = fetch_submit_directory(paths.model_dir, paths.base / CODE_DIR, environ)
        handler = load_handler(paths.model_dir, settings, environ, code)
    app = base_app(settings, SINGLE_MODEL_ROUTES)
    app.extensions["byoc.handler"] = handler

    @app.post("/invocations")
    def invocations() -> Response:  # listed for Flask's 405s; DirectInvocations answers POST /invocations
        return answer(handler, settings)

    app.wsgi_app = DirectInvocations(app.wsgi_app, handler, settings)
    return app


def base_app(settings: ServingSettings, routes: str) -> Flask:
    """/ping, /execution-parameters and the error handlers every server has; ``routes`` is
    what a 404 lists."""
    execution_parameters = json.dumps(
        {
            "MaxConcurrentTransforms": settings.workers,
            "BatchStrategy": "MultiRecord",
            "MaxPayloadInMB": settings.advertised_max_payload_mb,
        }
    )

    # a CSV field may be as long as a body may be (process-wide: set at the app's start, before
    # the workers fork, not at import; byoc.csvfields)
    csvfields.allow_fields(settings.max_payload_bytes)
    app = Flask("byoc")
    app.config.update(MAX_CONTENT_LENGTH=None, PROPAGATE_EXCEPTIONS=False)

    @app.get("/ping")
    def ping() -> Response:
        return Response(status=200)

    @app.get("/execution-parameters")
    def get_execution_parameters() -> Response:
        return Response(execution_parameters, status=200, mimetype="application/json")

    @app.errorhandler(UserError)
    @app.errorhandler(HTTPException)
    def client_error(exc: UserError | HTTPException) -> Response:
        return error_response(exc, request.environ, routes)

    @app.errorhandler(Exception)
    def fault(exc: Exception) -> Response:
        request_id = request_id_of_current_request()
        log.exception("request %s failed: %s", request_id, exc)
        return fault_response(request_id)

    return app
