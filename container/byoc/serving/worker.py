"""byoc's gunicorn workers: gunicorn's own errors as JSON, request ids, and a bounded SIGTERM grace.

Why each piece:

- gunicorn answers some requests before the app sees them (a bad request line, 414, 431, a
  malformed chunked body): its stock answer is an HTML page.  ``handle_error`` answers with
  the same ``{"error", "message", "request_id"}`` body every other error has.
- Every request gets its id here, before the app runs, so the app, its error bodies and this
  worker's shutdown log all quote the same one.
- No answer says which server software sent it: gunicorn writes ``Server: gunicorn`` (with its
  version before gunicorn 22) into every response's head, and an app's own Server header is
  dropped, so ``_Tracked`` gives each response a head without it; the errors written here never
  had one.  A client of an endpoint needs none of it, and it is a scanner's first question.
- After a large request the worker keeps what it freed for the next one (faulting a batch's
  arrays in again cost ~10% of its CPU time) unless it holds more than ``RETAINED_LIMIT``
  above where it started, or the body was ``HUGE_BODY`` or more; then, once the answer is
  written, the freed memory goes back to the system (malloc_trim, Arrow's pool): otherwise a
  100 MB JSON body would leave the worker hundreds of MB larger for good.
- SIGTERM: the worker stops accepting and lets in-flight requests finish.  One second before
  the grace period ends (``BYOC_GRACEFUL_TIMEOUT``, default SageMaker's 30 s before SIGKILL) it
  logs every request still running, with its id, marks the shared ``cut`` flag so ``serve``
  exits non-zero, and exits without waiting for them.
- A gthread worker hands a connection to a thread only once its request has arrived (the whole
  head, and the body up to ``Content-Length``), or 16 KiB of it have, counting what gunicorn has
  already read of it behind the connection's previous request: until then the connection
  waits on the worker's poller with gunicorn's own pending connections (closed after 5 s without
  a byte; one that holds part of a request is first answered 408, see ``murder_pending``; past
  16 KiB the thread answers the same 408, :data:`byoc.serving.body.SILENCE_SECONDS`).  gunicorn's thread reads a request blocking, so a client trickling its headers or body
  held a thread for as long as it trickled, and each worker needed spare threads for them; with
  none held, a few threads suffice, and few threads keep the GIL's hand-offs, and so the p99 of
  single rows, down (``byoc.serving.settings.DEFAULT_WORKER_THREADS``).  A connection that waits
  with part of its request in the kernel's buffer has its receive low-water mark (SO_RCVLOWAT)
  raised to one byte more than is there, so the poller wakes for it when more has come: the
  buffer is readable all along, so the poller (level-triggered) woke the worker's main thread at
  once, again and again, while the rest was on its way; a 1 MB CSV body whose head came first
  cost 58 peeks and about a quarter of the request's CPU time on a loaded machine.  The mark is
  set back to 1 before a thread reads the connection; a wake-up with no byte more (the client
  shut its side down, or a kernel without the mark for polls) hands the connection to a thread.
- A plain ``GET /ping`` (the whole request, nothing announced or pipelined behind it, see
  :func:`plain_ping`) is answered by the worker's main thread itself, through the app as a thread
  would answer it: a worker goes on accepting while all its threads run long requests, so a ping
  that landed there waited for one of them to finish (5 s against SageMaker's 2 s, with an idle
  worker beside it), and an instance whose pings fail is taken out of service.  The check is on
  the bytes the main thread peeks at anyway; its socket stays non-blocking, so a client that
  does not read its answers fails its own connection rather than stall the worker.
- A connection closed after its answer (``Connection: close``, HTTP/1.0, every answer of a
  multi-model endpoint, which keeps no connection alive) gets gunicorn's graceful close (RFC 9112
  9.6: FIN, then the client's late bytes read until it closes, at most 64 KiB for 2 s, so the
  kernel does not reset an answer still unread) from the poller (``linger``).  gunicorn ran it on the worker's main thread, blocking: each client that kept its side
  open after such an answer stopped the worker from accepting, dispatching and answering /ping
  for 2 s (three such clients: a ping answered after 4 s).
- A request running longer than SAGEMAKER_MODEL_SERVER_TIMEOUT is answered 504, naming the
  setting, and its connection closed (:func:`time_out`); a thread cannot be stopped, so the worker
  stops accepting, finishes its other requests and leaves (without joining the stuck thread), and
  the master replaces it.  gunicorn's own timeout is the master's, on the worker's heartbeat: a
  gthread worker's main thread kept beating while a predict never returned, and a sync worker's
  abort (``sys.exit`` raised inside the request) came back as a 500 blaming the user's hook.
- A stop signal that reaches a worker while it boots must not be lost.  Between gunicorn's
  fork and the worker's own handlers the child still runs the master's handler, which only
  queues the signal in the child's copy of the master: the worker then served on until the
  master's SIGKILL at the end of the grace period (CI saw ``serve`` outlive a 30 s stop).
  :func:`arbiter_class` forks with the stop signals blocked, and the worker unblocks them once
  its handlers are in place, so a stop that came meanwhile is handled then.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import re
import selectors
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from functools import cached_property, partial
from typing import Any, NoReturn

from gunicorn.http.errors import NoMoreData
from gunicorn.workers.base import Worker
from gunicorn.workers.gthread import TConn, ThreadWorker
from werkzeug.wsgi import ClosingIterator

from byoc.serving.body import CLOSE_CONNECTION, SILENCE_SECONDS
from byoc.serving.memory import MemoryBound

REQUEST_ID_KEY = "byoc.request_id"
RUNNING_KEY = "byoc.running"  # environ: the request's _Running record, for invocation_starts


def new_request_id() -> str:
    """32 random hex digits, as ``uuid4().hex`` spells an id.

    From the random module's generator, which Python seeds from the OS at start and again in
    every forked worker, rather than ``os.urandom``: a request id names a request in the logs and
    is no secret, and the getrandom system call per request was 2% of a single-row request's
    CPU in the server (py-spy profile of a worker)."""
    return f"{random.getrandbits(128):032x}"


EXIT_CUT = 3 + 70  # a worker that cut requests (not gunicorn's 3/4, which halt the master)
LOG_MARGIN = 1.0  # seconds kept before the grace period's end to log and exit
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})
LARGE_BODY = 1 << 20  # after a request body at least this big, the worker's memory is checked
RETAINED_LIMIT = 128 << 20  # freed memory a worker keeps for its next requests (see MemoryBound)
HUGE_BODY = 32 << 20  # after a body this big the worker hands back all it freed (see MemoryBound)
# A request is handed to a thread once this much of it has arrived: a large body then streams in on
# the thread, and every kernel receive buffer holds this much, so the wait cannot outlast the client.
ARRIVED_BYTES = 16384
# as a plain int: OR-ing the socket module's flag enums is a Python call into enum on every
# request (about 1% of a single-row request's worker CPU, py-spy)
PEEK_FLAGS = int(socket.MSG_PEEK | socket.MSG_DONTWAIT)
PENDING_SECONDS = float(SILENCE_SECONDS)  # gunicorn's own wait for a new connection's first bytes
LOWAT_MARK = "byoc_lowat"  # a pending connection's attribute: the SO_RCVLOWAT it waits for (0: none set)
# Peek-only: how many body bytes to wait for, read from a copy of a lower-cased head that is still
# in the kernel's buffer.  gunicorn parses Content-Length only while it consumes the request from
# the socket (gunicorn.http.message, with its own checks of duplicates and signs), which a peek
# cannot use; a value this finds wrong only changes when a thread starts reading, and gunicorn's
# parser then answers the request as it would have anyway.
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*(\d+)")
LINGER_SECONDS = 2.0  # gunicorn's close_graceful: how long a closed connection's late bytes are read
LINGER_BYTES = 65536  # and at most how many of them
PING_LINE = b"GET /ping HTTP/1."  # how a plain_ping starts
PING_HERE = -1  # _bytes_waiting: the request is a plain_ping, for the main thread to answer

# gunicorn parse error class name -> (status, reason, code)
_PARSE_ERRORS = {
    "LimitRequestLine": (414, "URI Too Long", "uri_too_long"),
    "LimitRequestHeaders": (431, "Request Header Fields Too Large", "headers_too_large"),
    "UnsupportedTransferCoding": (501, "Not Implemented", "unsupported_transfer_coding"),
    "ExpectationFailed": (417, "Expectation Failed", "expectation_failed"),
    "ForbiddenProxyRequest": (403, "Forbidden", "forbidden"),
    "InvalidChunkSize": (400, "Bad Request", "bad_body_framing"),
    "ChunkMissingTerminator": (400, "Bad Request", "bad_body_framing"),
    "InvalidChunkExtension": (400, "Bad Request", "bad_body_framing"),
}


def describe_error(exc: BaseException) -> tuple[int, str, str, str]:
    """(status, reason phrase, error code, message) for an error gunicorn raised outside the app."""
    from gunicorn.http.errors import ParseException

    if isinstance(exc, ParseException):
        for klass in type(exc).__mro__:
            if klass.__name__ in _PARSE_ERRORS:
                status, reason, code = _PARSE_ERRORS[klass.__name__]
                break
        else:
            status, reason, code = 400, "Bad Request", "bad_request"
        detail = str(exc) or type(exc).__name__
        return status, reason, code, f"the HTTP request cannot be parsed: {detail}"
    return 500, "Internal Server Error", "internal_error", "the server failed to read this request"


def _write_json_error(sock: Any, status: int, reason: str, code: str, message: str, request_id: str) -> None:
    from gunicorn import util

    body = json.dumps({"error": code, "message": message, "request_id": request_id}).encode("utf-8")
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"X-Request-Id: {request_id}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    util.write_nonblock(sock, head + body)


def _head_without_server(response: Any) -> list[str]:
    """gunicorn's ``Response.default_headers`` (status line, Date, Connection, ...) without its
    ``Server`` line (see the module doc)."""
    return [line for line in type(response).default_headers(response) if not line.startswith("Server:")]


class _Running:
    """A request in flight: what it is, since when, and where its answer goes (for a timeout)."""

    __slots__ = ("response", "sock", "started", "timed", "what")

    def __init__(self, what: str, started: float, sock: Any, response: Any) -> None:
        self.what = what
        self.started = started
        # an invocation: SAGEMAKER_MODEL_SERVER_TIMEOUT bounds it, not a multi-model endpoint's load,
        # also not the load a multi-model invocation runs in a worker without a copy: that one is
        # timed once its model is there (invocation_starts)
        self.timed = what == "POST /invocations"
        self.sock = sock  # the client's socket (gunicorn's environ["gunicorn.socket"])
        self.response = response  # gunicorn's Response: whether its head has been sent


def invocation_starts(environ: dict[str, Any]) -> None:
    """SAGEMAKER_MODEL_SERVER_TIMEOUT bounds the request in ``environ`` from now: a multi-model
    invocation, once its worker has its model (a load, there as in POST /models, is not bound by it)."""
    entry = environ.get(RUNNING_KEY)
    if entry is not None:
        entry.started = time.monotonic()
        entry.timed = True


@contextlib.contextmanager
def invocation_waits(environ: dict[str, Any]) -> Iterator[None]:
    """SAGEMAKER_MODEL_SERVER_TIMEOUT's clock of the request in ``environ`` stopped within the block:
    a multi-model invocation waiting for its worker's turn behind another model's predict, as a
    single-model request's clock starts once a thread takes it, not while it waits in the queue."""
    entry = environ.get(RUNNING_KEY)
    if entry is None or not entry.timed:
        yield
        return
    entry.timed = False
    paused = time.monotonic()
    try:
        yield
    finally:
        entry.started += time.monotonic() - paused  # before timed: the sweep reads timed first
        entry.timed = True


class _Tracked:
    """The WSGI app with a request id per request and a record of those in flight.

    Attribute lookups go to the app itself (hooks reach ``worker.wsgi.extensions``)."""

    def __init__(self, app: Any, in_flight: dict[str, _Running]) -> None:
        self.app = app
        self.in_flight = in_flight
        self.memory = MemoryBound(RETAINED_LIMIT, HUGE_BODY)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    def _settle(self, body_bytes: int) -> None:
        self.memory.settle(body_bytes)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request_id = new_request_id()
        environ[REQUEST_ID_KEY] = request_id
        response = getattr(start_response, "__self__", None)  # gunicorn's Response
        self.in_flight[request_id] = environ[RUNNING_KEY] = _Running(
            f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}",
            time.monotonic(),
            environ.get("gunicorn.socket"),
            response,
        )
        if response is not None:
            response.default_headers = partial(_head_without_server, response)
        length = environ.get("CONTENT_LENGTH") or ""
        body_bytes = int(length) if length.isdigit() else -1  # chunked: size unknown
        large = body_bytes < 0 or body_bytes >= LARGE_BODY
        try:
            answer = self.app(environ, start_response)
            if large and environ.get("REQUEST_METHOD") == "POST":
                # once the answer is written: a huge body's arrays and answer would otherwise stay resident
                answer = ClosingIterator(answer, partial(self._settle, body_bytes))
            return answer
        finally:
            self.in_flight.pop(request_id, None)  # gone already when it timed out
            if environ.get(CLOSE_CONNECTION) and response is not None:
                # the body's framing is broken: nothing after it on this connection can be read
                response.force_close()


def time_out(log: Any, timeout: int, request_id: str, entry: _Running, now: float) -> None:
    """Answer ``entry``, running past ``timeout`` (SAGEMAKER_MODEL_SERVER_TIMEOUT), with a 504 naming
    the setting (unless its answer has begun), and close its connection: its thread cannot be
    stopped, so its worker leaves and the master replaces it."""
    message = (
        f"the request ran longer than SAGEMAKER_MODEL_SERVER_TIMEOUT ({timeout} s) and was stopped; "
        "send fewer records per request, or raise SAGEMAKER_MODEL_SERVER_TIMEOUT"
    )
    log.error(
        "request %s (%s, running %.1f s) timed out: SAGEMAKER_MODEL_SERVER_TIMEOUT is %d s; "
        "answered 504, and worker %d is replaced",
        request_id,
        entry.what,
        now - entry.started,
        timeout,
        os.getpid(),
    )
    sock, response = entry.sock, entry.response
    if sock is None:
        return
    if response is not None and not response.headers_sent:
        response.headers_sent = True  # the request's thread, should it return, writes no head
        with contextlib.suppress(OSError):
            _write_json_error(sock, 504, "Gateway Timeout", "model_server_timeout", message, request_id)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # the thread's later writes fail; the client reads the end


def leave_now(log: Any, code: int) -> NoReturn:
    """End a worker now, its log written: a thread stuck in a request would hold any exit that
    joins threads (:func:`leave_worker`'s)."""
    for handler in log.error_log.handlers:
        handler.flush()
    os._exit(code)


class _ByocWorker(Worker):
    """Mixin over a gunicorn worker class (sync or gthread, both subclasses of gunicorn's ``Worker``,
    which it names as its base so that ``super()`` and ``self.log`` resolve); ``cut`` is a shared
    flag the master reads at exit."""

    cut: Any = None  # multiprocessing.RawValue("i") shared with the master
    grace: float = 30.0
    wsgi: Any  # the WSGI app gunicorn loaded (a Flask app), wrapped in _Tracked by load_wsgi

    def load_wsgi(self) -> None:
        super().load_wsgi()
        self.in_flight: dict[str, _Running] = {}
        self.wsgi = _Tracked(self.wsgi, self.in_flight)

    def init_signals(self) -> None:
        super().init_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a stop sent while booting lands now

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        status, reason, code, message = describe_error(exc)
        request_id = new_request_id()
        if status >= 500:
            self.log.exception("request %s failed before reaching the app: %s", request_id, exc)
        else:
            ip = (addr or ("",))[0]
            self.log.warning("request %s from %s refused with %d: %s", request_id, ip, status, exc)
        try:
            _write_json_error(client, status, reason, code, message, request_id)
        except OSError:
            self.log.debug("could not send the error response for request %s", request_id)

    def handle_abort(self, sig: int, frame: Any) -> None:
        """gunicorn's master aborts a worker that has not reported for SAGEMAKER_MODEL_SERVER_TIMEOUT
        (a sync worker's request, or a gthread worker whose main thread a request held): gunicorn's
        ``sys.exit(1)`` unwound through the request, whose client got a 500 ``hook_exited`` blaming
        the user's hook (or no answer).  Its requests are answered 504 here, and the worker leaves."""
        self.alive = False
        now = time.monotonic()
        for request_id, entry in list(getattr(self, "in_flight", {}).items()):
            time_out(self.log, self.cfg.timeout, request_id, entry, now)
        leave_now(self.log, 1)

    def handle_exit(self, sig: int, frame: Any) -> None:
        super().handle_exit(sig, frame)
        if signal.getitimer(signal.ITIMER_REAL)[0] == 0:  # a second SIGTERM keeps the first deadline
            signal.signal(signal.SIGALRM, self._grace_over)
            signal.setitimer(signal.ITIMER_REAL, max(self.grace - LOG_MARGIN, 0.1))

    def _grace_over(self, sig: int, frame: Any) -> None:
        now = time.monotonic()
        running = list(getattr(self, "in_flight", {}).items())
        for request_id, entry in running:
            self.log.error(
                "request %s (%s, running %.1f s) cut: the %d s grace period after SIGTERM ended "
                "(BYOC_GRACEFUL_TIMEOUT)",
                request_id,
                entry.what,
                now - entry.started,
                self.grace,
            )
        if running and self.cut is not None:
            self.cut.value += len(running)
        leave_now(self.log, EXIT_CUT if running else 0)


def request_arrived(data: bytes) -> bool:
    """Whether ``data``, the bytes waiting on a connection, let a thread read the request without
    waiting on its client: the whole head and ``Content-Length`` bytes of body, or ``ARRIVED_BYTES``
    (the rest then streams in), or an end of file.  A head that asks for ``100 Continue`` or a
    chunked body goes to a thread once the head is complete (gunicorn answers the one and reads
    the other); anything unparsable goes at once, for gunicorn to refuse.  So does a head with a
    bare LF (``\n`` without ``\r``, a hand-typed request), by gunicorn's own test: it never ends
    in CRLF CRLF, and waiting for that closed the connection after 5 s without an answer."""
    if not data or len(data) >= ARRIVED_BYTES:
        return True
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return data.count(b"\n") != data.count(b"\r\n")
    head = data[: end + 2].lower()
    if b"\r\nexpect:" in head or b"\r\ntransfer-encoding:" in head:
        return True
    length = _CONTENT_LENGTH.search(head)
    return length is None or len(data) - end - 4 >= int(length.group(1))


def plain_ping(data: bytes) -> bool:
    """Whether ``data``, the bytes waiting on a connection, are one whole ``GET /ping`` and nothing
    more: the head has ended, no body is announced (a ``Content-Length`` of 0 at most, no
    ``Transfer-Encoding``, no ``Expect``) and no other request is pipelined behind it.  Reading it
    then never waits on the client, so the worker's main thread can answer it (see the module doc)."""
    if not data.startswith(PING_LINE) or len(data) >= ARRIVED_BYTES:
        return False
    if data.find(b"\r\n\r\n") != len(data) - 4:
        return False
    head = data.lower()
    if b"\r\ntransfer-encoding:" in head or b"\r\nexpect:" in head:
        return False
    length = _CONTENT_LENGTH.search(head)
    return length is None or int(length.group(1)) == 0


def stalled_request_message(arrived: bytes, seconds: float) -> str:
    """What a client whose request stopped arriving after ``arrived`` is told (see murder_pending)."""
    end = arrived.find(b"\r\n\r\n")
    if end < 0:
        what = f"its head ({len(arrived)} bytes) never ended with an empty line"
    else:
        length = _CONTENT_LENGTH.search(arrived[: end + 2].lower())
        announced = f"Content-Length: {int(length.group(1))} announced" if length else "a body announced"
        what = f"{announced}, {len(arrived) - end - 4} bytes of body came"
    return (
        f"the request stopped arriving: {what}, then nothing for {seconds:g} s; send the whole "
        "request, with a Content-Length that counts the body's bytes"
    )


class _Lingering:
    """A connection whose answer is sent and whose side is shut: read until the client closes."""

    __slots__ = ("deadline", "drained", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock: socket.socket | None = sock
        self.deadline = deadline
        self.drained = 0


class _Conn(TConn):
    """gunicorn's connection whose graceful close is ``linger`` (the worker's), not a wait."""

    def __init__(self, linger: Callable[[socket.socket], None], *args: Any) -> None:
        super().__init__(*args)
        self.linger = linger

    def close(self, graceful: bool = False) -> None:
        if graceful:
            self.linger(self.sock)
        else:
            super().close()


class _WholeRequestThreadWorker(ThreadWorker):
    """gunicorn's gthread worker where a connection waits on the poller, not on a thread, until
    its request has arrived (see the module doc and :func:`request_arrived`)."""

    in_flight: dict[str, _Running]  # the requests its threads run (_ByocWorker.load_wsgi sets it)

    @cached_property
    def _ssl(self) -> bool:
        """``cfg.is_ssl``, read once: three lookups through gunicorn's Config on every request
        otherwise, and a worker's configuration does not change (a reload starts new workers)."""
        return bool(self.cfg.is_ssl)

    @cached_property
    def _lingering(self) -> deque[_Lingering]:
        """Connections closed after their answer, in the order of their deadlines (see linger)."""
        return deque()

    def accept(self, listener: socket.socket) -> None:
        """gunicorn's, with a :class:`_Conn` (an SSL connection keeps gunicorn's own)."""
        try:
            client_sock, client_addr = listener.accept()
            self.nr_conns += 1
            args = (self.cfg, client_sock, client_addr, listener.getsockname())
            self.enqueue_req(TConn(*args) if self._ssl else _Conn(self.linger, *args))
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise

    def set_accept_enabled(self, enabled: bool | None) -> None:
        """gunicorn's; a stopping worker also closes its listening sockets, so that new connections
        are refused once every worker has stopped accepting.  gunicorn kept them open until the
        worker left: the kernel went on queueing connections in their backlog, and each waited out
        the in-flight requests (up to the grace period) to be reset unanswered."""
        super().set_accept_enabled(enabled)
        if not enabled and not self.alive:
            for listener in self.sockets:
                listener.close()

    def linger(self, sock: socket.socket) -> None:
        """gunicorn's ``close_graceful`` (RFC 9112 9.6): FIN, then read what the client still sends
        until it closes (at most ``LINGER_BYTES``, for ``LINGER_SECONDS``), then close, so that the
        kernel does not reset an answer the client has not read yet; the reads happen when the
        poller finds bytes, not in a wait of the main thread (see the module doc)."""
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        lingering = _Lingering(sock, time.monotonic() + LINGER_SECONDS)
        self._lingering.append(lingering)
        self.poller.register(sock, selectors.EVENT_READ, partial(self._drain, lingering))

    def _drain(self, lingering: _Lingering, sock: socket.socket) -> None:
        """Read a lingering connection's late bytes; close it at its end or once enough came."""
        try:
            while lingering.drained < LINGER_BYTES:
                data = sock.recv(LINGER_BYTES, socket.MSG_DONTWAIT)
                if not data:
                    break
                lingering.drained += len(data)
        except BlockingIOError:
            return  # more may come
        except OSError:
            pass  # reset: nothing more to wait for
        self._close_lingering(lingering)

    def _close_lingering(self, lingering: _Lingering) -> None:
        sock, lingering.sock = lingering.sock, None
        if sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.poller.unregister(sock)
            sock.close()

    def enqueue_req(self, conn: Any) -> None:
        waiting = None if not self.alive or self._ssl else self._bytes_waiting(conn)
        marked = getattr(conn, LOWAT_MARK, 0)
        # arrived, a plain ping, or readable without a byte more (the client shut down, for a
        # thread to see)
        if waiting is None or waiting < 0 or (waiting and waiting < marked):
            if marked:  # a thread's blocking reads return once a byte has come, as before
                with contextlib.suppress(OSError):  # a closed socket: the thread meets it
                    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
                setattr(conn, LOWAT_MARK, 0)
            if waiting == PING_HERE:
                self._answer_ping(conn)
            else:
                super().enqueue_req(conn)
            return
        # gunicorn's pending connections: readable -> on_pending_socket_readable -> here again
        conn.sock.setblocking(False)
        if waiting:  # readable again once a byte more than these has come (see the module doc); at
            # most ARRIVED_BYTES, well below the receive buffer, which the kernel then leaves as it is
            with contextlib.suppress(OSError):
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, waiting + 1)
                setattr(conn, LOWAT_MARK, waiting + 1)
        conn.timeout = time.monotonic() + max(self.cfg.keepalive, PENDING_SECONDS)
        self.pending_conns.append(conn)
        self.poller.register(
            conn.sock,
            selectors.EVENT_READ,
            partial(self.on_pending_socket_readable, conn),
        )

    def _answer_ping(self, conn: Any) -> None:
        """Answer the :func:`plain_ping` waiting on ``conn`` here, on the main thread, as a thread
        would: gunicorn's parser and ``handle_request`` (the app's answer, the access line), then
        ``finish_request`` (kept alive or closed).  The socket stays non-blocking: the request is
        all in the kernel's buffer, and an answer that does not fit in the send buffer (a client
        that leaves its answers unread) fails the connection instead of blocking the worker."""
        req = None
        keepalive = False
        try:
            conn.init()
            conn.sock.setblocking(False)
            req = next(conn.parser)
            keepalive = self.handle_request(req, conn)
        except (NoMoreData, StopIteration, OSError) as exc:
            self.log.debug("GET /ping from %s not answered: %s", conn.client, exc)
        except Exception as exc:  # noqa: BLE001 - handle_error logs it; as on gunicorn's thread, a head
            # it refuses gets its error answer, and nothing ends the worker's main loop
            self.handle_error(req, conn.sock, conn.client, exc)
        done: Future[bool] = Future()
        done.set_result(keepalive)
        self.finish_request(conn, done)

    def murder_pending(self) -> None:
        """gunicorn's: close the pending connections whose time is up.  One that holds part of a
        request (a Content-Length above the bytes sent, a head that never ended) is first answered
        a 408 saying what came: it was closed without a word, a reset the client could not tell
        from a crash."""
        now = time.monotonic()
        self._time_out_overdue(now)
        conn: Any
        for conn in self.pending_conns:  # in the order of their deadlines, as gunicorn reads them
            if conn.timeout > now:
                break
            self._refuse_stalled(conn)
        super().murder_pending()
        lingering = self._lingering  # and the lingering connections whose time is up, or closed
        while lingering and (lingering[0].sock is None or lingering[0].deadline <= now):
            self._close_lingering(lingering.popleft())

    @cached_property
    def _abandoned(self) -> list[Any]:
        """The sockets of the requests this worker answered 504 while their threads ran on (see
        _time_out_overdue): already counted out of ``nr_conns``."""
        return []

    def _time_out_overdue(self, now: float) -> None:
        """Answer 504 to each request running longer than SAGEMAKER_MODEL_SERVER_TIMEOUT, and stop
        accepting: its thread cannot be stopped, so the worker finishes its other requests and
        leaves for the master to replace it.  The main thread keeps reporting to the master while
        threads run, so gunicorn's own timeout never fired: a predict that never returned held its
        thread for good, two held a worker (every request then waited, /ping still answered 200)."""
        timeout = self.cfg.timeout
        if not timeout:
            return
        stuck = 0
        for request_id, entry in list(self.in_flight.items()):
            if (
                not entry.timed
                or now - entry.started <= timeout
                or self.in_flight.pop(request_id, None) is None
            ):
                continue
            time_out(self.log, timeout, request_id, entry, now)
            self._abandoned.append(entry.sock)
            self.nr_conns -= 1  # its connection is done with: the stop does not wait for its thread
            self.alive = False
            stuck += 1
        if stuck:
            # the requests queued behind the stuck threads go to a new pool (see finish_request):
            # they waited for a thread that never came, then were closed unanswered at the stop's end
            queued, self.tpool = self.tpool, self.get_thread_pool()
            queued.shutdown(wait=False, cancel_futures=True)

    def finish_request(self, conn: Any, fs: Any) -> None:
        if any(sock is conn.sock for sock in self._abandoned):  # a timed-out request's thread returned
            conn.close()
            return
        if fs.cancelled():  # queued in the pool _time_out_overdue replaced: never started, run it now
            self.enqueue_req(conn)
            return
        super().finish_request(conn, fs)

    def run(self) -> None:
        try:
            super().run()
        except Exception:  # logged with its traceback; the worker leaves for the master to replace it
            # gunicorn's own handling logged it and exited through leave_worker, which joins the
            # threads: the pool's, never shut down, waited for work for good, so the worker served
            # nothing until the master's timeout (SAGEMAKER_MODEL_SERVER_TIMEOUT, up to an hour)
            self.log.exception("worker %d failed and leaves; the master starts another", os.getpid())
            leave_now(self.log, 1)
        if self._abandoned:  # a thread still runs a timed-out request: leave without joining it
            leave_now(self.log, 0)

    def _refuse_stalled(self, conn: Any) -> None:
        """Answer 408 on ``conn`` if part of a request waits on it (else it is idle: nothing to say)."""
        parser = conn.parser
        arrived = parser.unreader.buf.getvalue() if parser is not None else b""
        with contextlib.suppress(OSError):  # nothing in the kernel's buffer, or a closed socket
            arrived += conn.sock.recv(ARRIVED_BYTES, PEEK_FLAGS)
        if not arrived:
            return
        with contextlib.suppress(OSError):  # read what came, so that closing does not reset the answer
            while conn.sock.recv(1 << 16, socket.MSG_DONTWAIT):
                pass
        message = stalled_request_message(arrived, max(self.cfg.keepalive, PENDING_SECONDS))
        request_id = new_request_id()
        self.log.warning(
            "request %s from %s refused with 408: %s",
            request_id,
            (getattr(conn, "client", None) or ("",))[0],
            message,
        )
        with contextlib.suppress(OSError):
            _write_json_error(conn.sock, 408, "Request Timeout", "request_timeout", message, request_id)
            conn.sock.shutdown(socket.SHUT_WR)

    @staticmethod
    def _bytes_waiting(conn: Any) -> int | None:
        """None once ``conn``'s request has arrived (:func:`request_arrived`), ``PING_HERE`` if it
        is a :func:`plain_ping`; until then, how many of its bytes wait in the kernel's buffer.  The request's first bytes may be in
        gunicorn's read-ahead already (a client that sent them behind its previous request):
        they count towards the request, not towards the kernel's bytes."""
        parser = conn.parser
        ahead = parser.unreader.buf.getvalue() if parser is not None else b""
        try:
            data = conn.sock.recv(ARRIVED_BYTES, PEEK_FLAGS)
        except BlockingIOError:
            data = b""  # none in the kernel's buffer
            if not ahead:
                return 0
        except OSError:
            return None  # the thread meets the error and closes the connection
        else:
            if not data:
                return None  # an end of file, for the thread to meet
        waiting = ahead + data if ahead else data
        if not request_arrived(waiting):
            return len(data)
        return PING_HERE if waiting.startswith(PING_LINE) and plain_ping(waiting) else None


def worker_class(name: str, cut: Any, grace: float) -> type:
    """The byoc worker for gunicorn's ``name`` worker class (``gthread`` or ``sync``)."""
    from gunicorn.workers.sync import SyncWorker

    base: type[Worker] = SyncWorker if name == "sync" else _WholeRequestThreadWorker
    title = "ByocSyncWorker" if name == "sync" else "ByocThreadWorker"
    return type(title, (_ByocWorker, base), {"cut": cut, "grace": float(grace)})


def leave_worker(code: object) -> NoReturn:
    """End a worker as ``multiprocessing`` ends the children it forks: Python's exit handlers run
    (logging's flush), the C and C++ ones do not.  Those belong to the master's state: onnxruntime
    starts a thread when it is imported (in the master, which loads the model before forking),
    and its static destructors wait for that thread, which the worker's copy lacks: at exit one
    worker aborted (std::system_error) and another hung on a futex until the master's SIGKILL at
    the end of the grace period, so every stop of a compiled forest took the whole grace period."""
    from byoc.job import exit_now

    if code is None or isinstance(code, int):
        exit_now(code or 0)
    print(code, file=sys.stderr)  # sys.exit("message"): Python prints it and exits with 1
    exit_now(1)


def arbiter_class() -> type:
    """gunicorn's master, forking each worker with the stop signals blocked (see the module doc)."""
    from gunicorn.arbiter import Arbiter

    class ByocArbiter(Arbiter):
        def spawn_worker(self) -> int:
            master = os.getpid()
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            try:
                return super().spawn_worker()  # the worker leaves through sys.exit, never returning
            except SystemExit as stop:
                if os.getpid() == master:
                    raise
                leave_worker(stop.code)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    return ByocArbiter
