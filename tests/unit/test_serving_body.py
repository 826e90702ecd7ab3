"""Request bodies read into the app's buffers (readinto): the same bytes and slices as read()."""

from __future__ import annotations

import csv
import gzip
import io
import re
import socket
import zlib
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byoc.errors import DataError, PayloadTooLarge
from byoc.serving import app
from byoc.serving.app import line_slices
from byoc.serving.body import _FramedInput, _GzipInput, _socket_reader
from byoc.serving.codecs.csv import whole_records


class _ReadOnly:
    """A stream with read() only: line_slices' path for streams without readinto."""

    def __init__(self, data: bytes) -> None:
        self.stream = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)


class _Trickle(io.RawIOBase):
    """readinto that returns at most ``step`` bytes a call, as a socket's can."""

    def __init__(self, data: bytes, step: int) -> None:
        self.stream = io.BytesIO(data)
        self.step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        view = memoryview(buffer)[: self.step]
        return self.stream.readinto(view)


@given(
    body=st.lists(st.sampled_from([b"1", b"a", b",", b"\n", b'"', b"\r\n", b"xyz"]), max_size=60).map(
        b"".join
    ),
    size=st.integers(1, 12),
    step=st.integers(1, 5),
    known=st.booleans(),
    records=st.sampled_from([None, whole_records, len]),
    probe=st.sampled_from([0, 1, 3, 5]),
)
def test_slices_read_into_buffers_are_the_slices_read_in_blocks(
    body, size, step, known, records, probe
) -> None:
    length = len(body) if known else None
    expected = list(line_slices(_ReadOnly(body), 1 << 20, size, records, length))
    assert b"".join(expected) == body
    into = length is None or length > probe  # else read() (whose blocks a trickle would cut short)
    for stream in (io.BytesIO(body), _Trickle(body, step)) if into else (io.BytesIO(body),):
        # 0: every body into buffers, however short; else an unknown length is first read into that many bytes
        with mock.patch.object(app, "READ_INTO_BYTES", probe):
            got = list(line_slices(stream, 1 << 20, size, records, length))
        assert all(type(piece) is bytes for piece in got)
        assert b"".join(got) == body
        assert got == expected  # a trickling stream fills each slice all the same


class _Recording(io.BytesIO):
    """A BytesIO that records the size of every buffer readinto is given."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int] = []

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def, override]
        self.asked.append(len(memoryview(buffer)))
        return super().readinto(buffer)


@pytest.mark.parametrize("length", [None, 8])
def test_a_short_body_is_not_read_into_a_slice_sized_buffer(length) -> None:
    """A single row of unknown length (chunked) went into a 4 MB zero-filled buffer, and a second
    one to see the stream's end: 290 against 108 us of a decision_tree row's CPU."""
    stream = _Recording(b"1,2\n3,4\n")
    assert list(line_slices(stream, 1 << 30, app.CHUNK_BYTES, None, length)) == [b"1,2\n3,4\n"]
    assert max(stream.asked, default=0) <= app.READ_INTO_BYTES
    assert len(stream.asked) <= 2  # the bytes, then (unknown length) the end: no second buffer


def test_a_long_body_of_unknown_length_is_sliced_as_before() -> None:
    body = b"12345,abc\n" * 30_000  # 300 kB: past the first read, into slices of 128 kB
    stream = _Recording(body)
    got = list(line_slices(stream, 1 << 30, 1 << 17, None, None))
    assert got == list(line_slices(_ReadOnly(body), 1 << 30, 1 << 17, None, None))
    assert stream.asked[:2] == [app.READ_INTO_BYTES, (1 << 17) - app.READ_INTO_BYTES]  # one first slice
    assert max(stream.asked) == 1 << 17


def test_a_body_read_into_buffers_past_the_limit_is_too_large() -> None:
    with pytest.raises(PayloadTooLarge):
        list(line_slices(io.BytesIO(b"1\n" * 100), 50, 16))


def _gunicorn_body(sock: socket.socket, length: int, ahead: bytes = b""):
    from gunicorn.http.body import Body, LengthReader
    from gunicorn.http.unreader import SocketUnreader

    unreader = SocketUnreader(sock)
    if ahead:
        unreader.unread(ahead)  # what gunicorn read past the request head
    return Body(LengthReader(unreader, length)), unreader


@pytest.mark.parametrize("ahead", [0, 3, 10, 14])  # none, part, all of the body, the body and more
def test_a_content_length_body_is_read_from_the_socket_and_leaves_what_follows(ahead, monkeypatch) -> None:
    monkeypatch.setattr(app, "READ_INTO_BYTES", 0)
    body, following = b"1,2\n3,4\n5,6\n", b"GET /ping HTTP/1.1\r\n"
    wire = body + following
    client, server = socket.socketpair()
    with client, server:
        client.sendall(wire[ahead:])
        raw, unreader = _gunicorn_body(server, len(body), wire[:ahead])
        assert _socket_reader(raw) is raw.reader  # straight from the socket, not through Body.read
        stream = _FramedInput(raw, {})
        assert b"".join(line_slices(stream, 1 << 20, 5, None, len(body))) == body
        assert raw.reader.length == 0
        assert raw.read(1024) == b""  # gunicorn's drain after the response finds the body read
        assert unreader.read(len(following)) == following  # the next request is where gunicorn expects it


def test_a_body_cut_short_by_the_clients_close_is_a_400_naming_what_came() -> None:
    """gunicorn reads such a body as complete: it was decoded and predicted, its last row cut."""
    client, server = socket.socketpair()
    with server:
        client.sendall(b"1,2\n3,")
        client.close()
        raw, _ = _gunicorn_body(server, 100)
        stream = _FramedInput(raw, {"CONTENT_LENGTH": "100"})
        with pytest.raises(DataError, match="Content-Length: 100 announced, 6 bytes of body came") as caught:
            stream.readinto(bytearray(64))
        assert caught.value.code == "bad_body_framing"
        assert stream.read() == b""  # nothing more is read from the connection


def test_a_body_cut_short_is_a_400_through_read_too() -> None:
    stream = _FramedInput(io.BytesIO(b"1,2\n3,"), {"CONTENT_LENGTH": "100"})
    assert stream.read(4) == b"1,2\n"
    with pytest.raises(DataError, match="Content-Length: 100 announced, 6 bytes of body came"):
        while stream.read(4):
            pass


def test_readinto_falls_back_to_read_for_other_streams() -> None:
    stream = _FramedInput(io.BytesIO(b"abc"), {})
    buffer = bytearray(5)
    assert stream.readinto(buffer) == 3
    assert bytes(buffer[:3]) == b"abc"
    assert stream.readinto(buffer) == 0


class _Sent:
    """A socket that records what is sent on it."""

    def __init__(self) -> None:
        self.sent = b""

    def sendall(self, data: bytes) -> None:
        self.sent += data


@pytest.mark.parametrize("reads", [True, False])
def test_100_continue_is_sent_on_the_bodys_first_read_and_an_unread_one_closes(reads) -> None:
    """gunicorn's own 100 Continue is turned off (defer_continue): the body asks for itself when the
    app reads it, so a request refused unread (a Content-Length above the limit) is answered before
    the client uploads; the connection then closes, since the client may still send that body."""
    from byoc.serving.body import CLOSE_CONNECTION, decode_body, defer_continue

    request = mock.Mock(_expected_100_continue=True)
    defer_continue(mock.Mock(), request)
    assert request._expected_100_continue is False
    sock = _Sent()

    def request_environ(protocol: str) -> dict:
        return {
            "wsgi.input": io.BytesIO(b"1,2\n"),
            "HTTP_EXPECT": "100-Continue",
            "SERVER_PROTOCOL": protocol,
            "gunicorn.socket": sock,
        }

    def application(environ, start_response):  # type: ignore[no-untyped-def]
        body = [environ["wsgi.input"].read(), environ["wsgi.input"].read()] if reads else []
        return [b"".join(body)]

    environ = request_environ("HTTP/1.1")
    assert decode_body(application, 100)(environ, None) == [b"1,2\n" if reads else b""]
    assert sock.sent == (b"HTTP/1.1 100 Continue\r\n\r\n" if reads else b"")
    assert bool(environ.get(CLOSE_CONNECTION)) is not reads
    sock.sent = b""
    environ = request_environ("HTTP/1.0")
    decode_body(application, 100)(environ, None)  # HTTP/1.0 ignores the expectation, as gunicorn does
    assert sock.sent == b"" and CLOSE_CONNECTION not in environ


@pytest.mark.parametrize("value", [b'12" pizza', b'12"', b'a"b"c"'])
def test_a_quote_inside_an_unquoted_csv_value_leaves_slices_bounded(value) -> None:
    """A quote inside an unquoted value is the value's (the csv module reads ``12" pizza`` so);
    counting quotes took it for an opening one, found no record boundary after it, and the rest of
    the body became one slice: a 60 MB batch decoded whole, its worker 0.85 GB."""
    row = b"41,1000.5,admin,cellular\n"
    body = row + b"41,1000.5," + value + b",cellular\n" + row * 2000 + b'7,"a,""b""\nc",admin,x\n' + row * 50
    slices = list(line_slices(io.BytesIO(body), 1 << 30, 4096, whole_records, len(body)))
    assert b"".join(slices) == body
    assert max(map(len, slices)) <= 2 * 4096  # a record carried into the next slice, at most one slice's
    assert all(piece.endswith(b"\n") for piece in slices)
    assert sum(len(list(csv.reader(io.StringIO(piece.decode()), strict=True))) for piece in slices) == 2053


def _inflated(data: bytes, limit: int = 1 << 20) -> bytes:
    """What byoc's gzip body reader gives for ``data``, read to its end in small reads."""
    stream, blocks = _GzipInput(io.BytesIO(data), limit), []
    while block := stream.read(7):
        blocks.append(block)
    return b"".join(blocks)


ONE, TWO = gzip.compress(b"1,2\n" * 50, mtime=0), gzip.compress(b"3,4\n", mtime=0)


@pytest.mark.parametrize(
    "data",
    [
        ONE + b"\0" * 512,  # a block writer's padding
        ONE + b"\0",
        ONE + b"\0" * 70_000,  # padding longer than a read of the wire
        ONE + b"\0" * 3 + TWO + b"\0" * 5,  # zeros between members too
        ONE + TWO,
    ],
    ids=["512 zeros", "one zero", "70,000 zeros", "zeros between members", "two members"],
)
def test_a_gzip_body_that_pythons_gzip_reads_is_read_as_it_reads_it(data) -> None:
    """Zero padding after a gzip member (tape and block writers, some HTTP clients) was refused as
    "not valid gzip (incorrect header check)", for every content type; Python's gzip module reads
    such a stream and ignores the zeros, and byoc's reader reads what it reads."""
    assert _inflated(data) == gzip.decompress(data)


@pytest.mark.parametrize("step", [1, 2, 3, len(ONE) + 1])
@pytest.mark.parametrize("data", [ONE + TWO, ONE + b"\0" * 3 + TWO], ids=["two members", "zeros between"])
def test_a_second_member_whose_magic_is_split_between_reads_of_the_wire_is_read(data, step) -> None:
    """A socket can hand the body over in any pieces: when a piece ends inside the next member's
    two magic bytes (only 0x1f arrived), that is the start of a member cut by the read, not bytes
    after the gzip data; refusing it made the same body a 200 or a 400 by how TCP split it."""
    stream, blocks = _GzipInput(_Trickle(data, step), 1 << 20), []
    while block := stream.read(7):
        blocks.append(block)
    assert b"".join(blocks) == gzip.decompress(data)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (ONE + b"\0\0junk", f"neither another gzip member nor zero padding (byte {len(ONE) + 2:,}: 0x6a)"),
        (ONE + b"x", f"(byte {len(ONE):,}: 0x78)"),
        (b"\0" * 8 + ONE, "not valid gzip"),  # zeros before any member are no padding
        (ONE + b"\0" * 4 + TWO[:12], "ends early"),
    ],
    ids=["junk after padding", "junk after a member", "zeros first", "a member cut short after padding"],
)
def test_what_pythons_gzip_refuses_is_a_400_naming_what_is_wrong(data, fragment) -> None:
    with pytest.raises((gzip.BadGzipFile, EOFError, zlib.error)):
        gzip.decompress(data)
    with pytest.raises(DataError, match=re.escape(fragment)) as refused:
        _inflated(data)
    assert refused.value.code == "bad_encoding"


def test_zero_padding_counts_against_the_payload_limit_as_sent() -> None:
    with pytest.raises(PayloadTooLarge, match="is larger than"):
        _inflated(ONE + b"\0" * 300_000, limit=200_000)
