"""The request body as bytes the app can trust: framing faults and Content-Encoding, below Flask.

Why a WSGI middleware: both concerns belong to HTTP transport, not to any codec.

- A malformed or truncated chunked body makes gunicorn's body reader raise its own parse
  errors in the middle of the app's ``read``; they are the client's mistake, so they become a
  400 :class:`~byoc.errors.DataError` (and the connection is closed: what follows on it
  cannot be framed).
- ``Content-Encoding: gzip`` (or ``x-gzip``) is decoded as the app reads, never more than
  the payload limit of output, so a gzip bomb is a 413 after at most that much work; what
  Python's gzip module reads is read (concatenated members, zero padding after a member), for
  every content type alike, and anything else is a 400 ``bad_encoding``; any other encoding
  (``br``, ``deflate``, ``compress``...) is a 415 naming it.
- ``Expect: 100-continue``: gunicorn answers ``100 Continue`` while it builds the environ, before
  the app has seen the request, so a client announcing a body above the payload limit uploaded it
  all before its 413.  gunicorn's is turned off (:func:`defer_continue`) and the body sends it on
  its first read: a request the app refuses unread is answered at once, the client never sends its
  body, and the connection is closed (what the client sends next cannot be told from that body).
"""

from __future__ import annotations

import functools
import io
import socket
import struct
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from byoc.errors import DataError, PayloadTooLarge, UnsupportedMediaType, UserError
from byoc.gzip_members import GzipMembers, TrailingBytes

CLOSE_CONNECTION = "byoc.close_connection"  # environ key: the body left the connection unusable
# A client that sends nothing of its request for this long is answered 408: on the worker's poller
# before its request has arrived (byoc.serving.worker), in a thread reading its body after.
SILENCE_SECONDS = 5
# environ key: the client waits for ``100 Continue`` before sending its body (see defer_continue)
AWAITS_CONTINUE = "byoc.awaits_continue"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
GZIP_ENCODINGS = frozenset({"gzip", "x-gzip"})
_BLOCK = 1 << 16


@functools.cache
def _framing_errors() -> tuple[type[BaseException], ...]:
    from gunicorn.http.errors import NoMoreData, ParseException

    return (ParseException, NoMoreData)


@functools.cache
def _socket_body_types() -> tuple[Any, Any, Any]:
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import SocketUnreader

    return Body, LengthReader, SocketUnreader


def _socket_reader(raw: Any) -> Any:
    """gunicorn's ``LengthReader`` under ``raw`` when ``raw`` is gunicorn's body of a
    Content-Length request read from a socket, with nothing of it buffered in the ``Body`` itself
    (nothing read through it yet); else None."""
    body, length_reader, socket_unreader = _socket_body_types()
    if type(raw) is not body or raw.buf.getvalue():  # getvalue: a BytesIO's position may not be its end
        return None
    reader = raw.reader
    if type(reader) is not length_reader or type(reader.unreader) is not socket_unreader:
        return None
    return reader


def _recv_body_into(reader: Any, view: memoryview) -> int:
    """Up to ``len(view)`` bytes of a Content-Length body into ``view``, straight from the socket.

    gunicorn's own ``Body.read`` takes each ``recv`` as a new bytes object and copies it through
    two BytesIO buffers (its unreader's and the body's) before the app gets it: reading and cutting
    a 10 MB CSV body into slices took 6.6 ms of the worker's CPU that way, 4.4 ms this way (with
    ``byoc.serving.app.line_slices``; thread CPU time, loaded machine).  This takes what gunicorn read ahead with
    the request head from its unreader (never more than the body: a pipelined request stays
    there), then ``recv_into``, and keeps gunicorn's count of the body bytes left, so gunicorn
    finds the connection where it expects it after the response.  Fills ``view`` unless the body
    ends first; :class:`_Ended` when the client closes before it does."""
    want = min(len(view), reader.length)
    filled = 0
    unreader = reader.unreader
    ahead = unreader.buf.getvalue() if want else b""
    if ahead:
        filled = min(len(ahead), want)
        view[:filled] = memoryview(ahead)[:filled]
        unreader.buf = io.BytesIO()
        unreader.buf.write(memoryview(ahead)[filled:])
    sock = unreader.sock
    if filled < want:
        # the kernel's receive timeout, not the socket's: a timeout on a Python socket polls before
        # every recv; this costs two setsockopt calls per body that was not all read ahead
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _SILENCE)
        try:
            while filled < want:
                try:
                    got = sock.recv_into(view[filled:want])
                except BlockingIOError:  # nothing came for SILENCE_SECONDS
                    reader.length -= filled
                    raise _Stalled from None
                if not got:  # the client closed before the body's end: nothing more will come
                    reader.length = 0
                    raise _Ended(filled)
                filled += got
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _NO_TIMEOUT)
    reader.length -= want
    return filled


_SILENCE = struct.pack("@ll", SILENCE_SECONDS, 0)  # struct timeval
_NO_TIMEOUT = struct.pack("@ll", 0, 0)


def _buffered(reader: Any) -> int:
    """How many body bytes gunicorn's ``Body`` or chunked reader holds that the app has not read."""
    buf = getattr(reader, "buf", None)
    return buf.tell() if isinstance(buf, io.BytesIO) else 0


class _Stalled(Exception):
    """The client sent nothing of its body for SILENCE_SECONDS."""


class _Ended(Exception):
    """The client closed its side before its Content-Length body's end; ``filled``: the bytes of
    this read that came."""

    def __init__(self, filled: int) -> None:
        super().__init__(filled)
        self.filled = filled


def defer_continue(worker: Any, req: Any) -> None:
    """gunicorn's ``pre_request`` hook: its own debug line, and no ``100 Continue`` from gunicorn;
    the body sends it when the app first reads (see the module doc)."""
    worker.log.debug("%s %s", req.method, req.path)
    req._expected_100_continue = False


def awaits_continue(environ: dict[str, Any]) -> bool:
    """Whether the client still waits for ``100 Continue``: it has sent none of its body, and
    draining it would only ask for what the answer refuses."""
    return bool(environ.get(AWAITS_CONTINUE))


class _FramedInput:
    """``wsgi.input`` whose chunked-framing errors are the client's (400), not ours (500), which
    reads a Content-Length body straight into the caller's buffer (:meth:`readinto`), and which
    sends ``100 Continue`` before its first read when the client waits for it."""

    def __init__(self, raw: Any, environ: dict[str, Any]) -> None:
        self.raw = raw
        self.environ = environ
        self.errors = _framing_errors()
        # gunicorn's rule (HTTP/1.0 ignores it, other expectations are refused; HTTP/2 has its own
        # framing and gunicorn's own handling); defer_continue stopped gunicorn's 100
        self.awaiting = (
            environ.get("HTTP_EXPECT", "").lower() == "100-continue"
            and environ.get("SERVER_PROTOCOL") == "HTTP/1.1"
            and "gunicorn.socket" in environ
        )
        if self.awaiting:
            environ[AWAITS_CONTINUE] = True
        self.announced = environ.get("CONTENT_LENGTH")  # before a gzip body's wrapper drops it
        self.came = 0  # body bytes handed to the app by read/readline (readinto's are counted by gunicorn)
        self.stalled = False  # the body stopped arriving: nothing more is read from the connection

    def _continue(self) -> None:
        """Tell the waiting client to send its body: the app reads it."""
        self.awaiting = False
        self.environ[AWAITS_CONTINUE] = False
        self.environ["gunicorn.socket"].sendall(CONTINUE)

    def readinto(self, buffer: Any) -> int:
        """Up to ``len(buffer)`` bytes of the body into ``buffer`` (a writable buffer): all of
        them unless the body ends first; 0 at its end."""
        if self.awaiting:
            self._continue()
        view = memoryview(buffer).cast("B")
        reader = _socket_reader(self.raw)  # per call: a read() before may have left bytes in the Body
        if reader is not None:
            try:
                got = _recv_body_into(reader, view)
            except _Ended as ended:
                self.came += ended.filled
                raise self._ended(self.came) from None
            except _Stalled:
                came = int(self.announced or 0) - reader.length
                reader.length = 0  # gunicorn's count of the body left: none is read
                raise self._stalled(came) from None
            except BaseException:
                self.raw.failed = True  # as gunicorn's Body marks it: the connection is not reused
                raise
            self.came += got
            return got
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def _stalled(self, came: int) -> UserError:
        """The 408 for a body that stopped arriving after ``came`` of its bytes, as the worker's
        poller answers a request that stops before its body reaches a thread: the thread waited
        for the rest with no end (in byoc's ``recv_into`` or gunicorn's chunked reader), held from
        every other request.  The connection closes; nothing more is read from it."""
        self.raw.failed = True
        self.environ[CLOSE_CONNECTION] = True
        self.stalled = True  # what is left is not read: not by a drain, not as the next request
        if "HTTP_TRANSFER_ENCODING" in self.environ or not self.announced:
            framing, fix = (
                f"{came} bytes of its chunked body",
                "and end a chunked body with its zero-length chunk",
            )
        else:
            framing = f"Content-Length: {self.announced} announced, {came} bytes of body"
            fix = "with a Content-Length that counts the body's bytes"
        return UserError(
            f"the request stopped arriving: {framing} came, then nothing for {SILENCE_SECONDS:g} s; "
            f"send the whole request, {fix}",
            code="request_timeout",
            status=408,
        )

    def _ended(self, came: int) -> UserError:
        """The 400 for a Content-Length body whose client closed after ``came`` of its bytes: gunicorn
        reads such a body as complete, so a body cut mid-upload (a client that died, a proxy that
        gave up) was decoded and predicted as if it were whole, its last row cut anywhere."""
        self.raw.failed = True
        self.environ[CLOSE_CONNECTION] = True
        self.stalled = True  # nothing more is read from the connection
        return DataError(
            f"the request body ends early: Content-Length: {self.announced} announced, {came} bytes of "
            "body came before the client closed the connection; send the whole body, with a "
            "Content-Length that counts its bytes",
            code="bad_body_framing",
        )

    def _short(self) -> bool:
        """Whether a Content-Length body ended (its reader answered nothing) before its length."""
        announced = self.announced or ""
        return (
            "HTTP_TRANSFER_ENCODING" not in self.environ
            and announced.isdigit()
            and self.came < int(announced)
        )

    def _read_bounded(self, method: str, *args: Any) -> Any:
        """gunicorn's own read, its ``recv`` bounded by the kernel's receive timeout (as
        :func:`_recv_body_into` bounds byoc's): a chunked body that stopped arriving held its
        thread for as long as the client kept the connection open."""
        sock = self.environ.get("gunicorn.socket")
        if not isinstance(sock, socket.socket):  # no socket under it (a test's stand-in, a BytesIO)
            return getattr(self.raw, method)(*args)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _SILENCE)
        try:
            return getattr(self.raw, method)(*args)
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _NO_TIMEOUT)

    def _call(self, method: str, *args: Any) -> Any:
        if self.awaiting:
            self._continue()
        if self.stalled:
            return b""
        try:
            data = self._read_bounded(method, *args)
        except BlockingIOError:  # nothing came for SILENCE_SECONDS
            came = self.came + _buffered(self.raw) + _buffered(getattr(self.raw, "reader", None))
            raise self._stalled(came) from None
        except self.errors as exc:
            self.environ[CLOSE_CONNECTION] = True
            detail = str(exc) or type(exc).__name__
            raise DataError(
                f"the request body is malformed or ends early ({detail}); send a complete body, "
                "with Content-Length or well-formed chunked transfer encoding",
                code="bad_body_framing",
            ) from None
        if not data and (not args or args[0] != 0) and self._short():
            raise self._ended(self.came)
        self.came += len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        return self._call("read", size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._call("readline", size)

    def __iter__(self) -> Any:
        return iter(self.readline, b"")


class _GzipInput:
    """Decompresses a gzip body on the fly; never returns more than ``limit`` bytes in total, nor
    reads more than ``limit`` bytes of gzip: empty members (20 bytes each, none of output) made a
    body of any size on the wire, past the limit every other body is held to, and a chunked one
    without end held its thread for as long as its client sent them.  A Content-Length above the
    limit is refused before anything is read (so before ``100 Continue``), as a plain body's is."""

    def __init__(self, raw: Any, limit: int) -> None:
        self.raw = raw
        self.limit = limit
        self.produced = 0
        self.consumed = 0  # bytes of gzip read from the connection
        self.refused = False  # refused for its size on the wire: what is left is only drained
        announced = getattr(raw, "announced", None)
        self.announced = int(announced) if isinstance(announced, str) and announced.isdigit() else None
        self.gzip = GzipMembers()

    def _too_large(self, what: str = "decompresses to more than") -> PayloadTooLarge:
        return PayloadTooLarge(
            f"the gzip request body {what} {self.limit // (1024 * 1024)} MB "
            "(SAGEMAKER_MAX_PAYLOAD_IN_MB); send fewer rows per request"
        )

    def _too_long(self) -> PayloadTooLarge:
        self.refused = True
        return self._too_large("is larger than")

    def _inflate(self, size: int) -> bytes:
        if self.announced is not None and self.announced > self.limit:
            raise self._too_long()
        members = self.gzip
        while True:
            if not members.pending:
                members.pending = self.raw.read(_BLOCK)
                self.consumed += len(members.pending)
                if self.consumed > self.limit:
                    raise self._too_long()
                if not members.pending:
                    if members.member_open:
                        raise DataError(
                            "the gzip request body ends early; send the whole gzip stream",
                            code="bad_encoding",
                        )
                    return b""
            try:
                out = members.inflate(size)
            except zlib.error as exc:
                raise DataError(
                    f"the request body is not valid gzip ({exc}); send gzip data or drop Content-Encoding",
                    code="bad_encoding",
                ) from None
            except TrailingBytes:
                # Python's gzip module refuses them too: a stream with something appended to it
                at = self.consumed - len(members.pending)
                raise DataError(
                    "the gzip request body goes on after its gzip data with bytes that are neither another gzip "
                    f"member nor zero padding (byte {at:,}: 0x{members.pending[0]:02x}); send the gzip stream alone",
                    code="bad_encoding",
                ) from None
            if out:
                return out

    def read(self, size: int | None = -1) -> bytes:
        if self.refused:  # the app drains the rest (as a plain body's), so the client reads its 413
            return self.raw.read(_BLOCK if size is None or size < 0 else size)
        unbounded = size is None or size < 0
        want = self.limit + 1 - self.produced if size is None or size < 0 else size
        blocks: list[bytes] = []
        while want > 0 and (block := self._inflate(min(want, 1 << 20))):
            blocks.append(block)
            self.produced += len(block)
            if self.produced > self.limit:
                raise self._too_large()
            want -= len(block)
            if not unbounded:
                break
        return b"".join(blocks)

    def readline(self, size: int | None = -1) -> bytes:
        raise NotImplementedError("byoc reads request bodies in blocks")


def decode_body(app: Callable[..., Iterable[bytes]], limit: int) -> Callable[..., Iterable[bytes]]:
    """Wrap a WSGI app so it reads framing-checked, decoded request bodies (see the module doc)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        stream: Any = _FramedInput(environ["wsgi.input"], environ)
        encoding = environ.pop("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding in GZIP_ENCODINGS:
            stream = _GzipInput(stream, limit)
            environ.pop("CONTENT_LENGTH", None)  # the length on the wire is not the body's length
            environ["wsgi.input_terminated"] = True
        elif encoding not in ("", "identity"):
            stream = _Refused(encoding)
        environ["wsgi.input"] = stream
        answer = app(environ, start_response)
        if environ.get(AWAITS_CONTINUE):  # answered unread: the client may or may not send it now
            environ[CLOSE_CONNECTION] = True
        return answer

    return wrapped


class _Refused:
    """A body in an encoding byoc does not decode: reading it is a 415 naming the encoding."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding

    def read(self, size: int | None = -1) -> bytes:
        raise UnsupportedMediaType(
            f"Content-Encoding {self.encoding!r} is not supported; send the body uncompressed or "
            "gzip-compressed (Content-Encoding: gzip)",
            code="unsupported_encoding",
        )

    readline = read
