"""Hostile clients and faulty models against the real server (gunicorn, real sockets), on models
trained by the real ``container/train``: gunicorn's own errors, broken framing, Content-Encoding,
slow clients, SIGTERM during a long request, Parquet missing values,
CSV quoting across large bodies.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import signal
import socket
import threading
import time

import numpy as np
import pandas as pd
import psutil
import pytest
import requests
import serving_models as sm

import support

ROW = b"40,1000.5,admin,cellular\n"


@pytest.fixture(scope="module")
def binary():
    server = sm.start(sm.trained_root("binary"), workers=2)
    yield server
    server.stop()


def exchange(
    port: int, data: bytes, timeout: float = 10, *, half_close: bool = True
) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, half-close (unless told not to: a client that waits with its side open),
    read the whole answer: (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def assert_json_error(status: int, headers: dict[str, str], body: bytes, expected_status: int) -> dict:
    assert status == expected_status, body[:300]
    assert headers["content-type"].startswith("application/json"), headers
    error = json.loads(body)
    assert set(error) == {"error", "message", "request_id"}, error
    assert error["message"] and "<html" not in body.decode().lower()
    assert headers["x-request-id"] == error["request_id"]
    return error


# -- gunicorn's own answers and the body's framing ------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "status", "code"),
    [
        (b"GARBAGE\r\n\r\n", 400, "bad_request"),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
        (b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 431, "headers_too_large"),
        (b"GET /ping HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n", 400, "bad_request"),
    ],
    ids=["request-line", "uri-too-long", "header-too-large", "bad-header-name"],
)
def test_gunicorns_own_refusals_carry_the_json_error_body(binary, request_bytes, status, code):
    error = assert_json_error(*exchange(binary.port, request_bytes), status)
    assert error["error"] == code


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n", 200),  # answered by the worker's main thread
        (b"GET /ping HTTP/1.0\r\n\r\n", 200),
        (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: %d\r\n\r\n%s"
         % (len(ROW), ROW), 200),
        (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1\r\n\r\nx", 415),
        (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),  # gunicorn's own refusal
    ],
    ids=["ping", "ping-http-1.0", "invocation", "app-error", "not-found", "gunicorns-own"],
)  # fmt: skip
def test_no_answer_names_the_server_software(binary, request_bytes, status):
    """Every answer carried ``Server: gunicorn`` (with its version in the gunicorn releases before
    22): what software answers is nothing a client of an endpoint needs, and a scanner's first
    question.  No answer has a Server header now, the app's nor gunicorn's own."""
    answered, headers, _ = exchange(binary.port, request_bytes)
    assert answered == status
    assert "server" not in headers, headers


def test_a_head_with_bare_lf_line_ends_is_refused_at_once(binary):
    """A hand-typed request (``\\n`` line ends) from a client that keeps its side open: it was held
    5 s waiting for a CRLF CRLF that never comes, then closed without an answer."""
    error = assert_json_error(
        *exchange(binary.port, b"GET /ping HTTP/1.1\nHost: x\n\n", 3, half_close=False), 400
    )
    assert "bare LF" in error["message"]


def test_a_body_shorter_than_its_content_length_is_answered_408(binary):
    """The client stops sending with bytes still owed: a JSON 408 saying what came, not a reset."""
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100\r\n\r\n"
    error = assert_json_error(*exchange(binary.port, head + ROW, 15, half_close=False), 408)
    assert "Content-Length: 100 announced, 25 bytes of body came" in error["message"]
    assert binary.get("/ping").status_code == 200


@pytest.mark.parametrize(
    ("body", "announced", "came", "encoding"),
    [
        (ROW + ROW[:-5], 2 * len(ROW), 2 * len(ROW) - 5, b""),  # the last row cut mid-value
        (ROW * 2000, 2000 * len(ROW) + 7, 2000 * len(ROW), b""),  # past 16 KiB: read by a thread
        (gzip.compress(ROW * 3)[:-4], len(gzip.compress(ROW * 3)), len(gzip.compress(ROW * 3)) - 4, b"gzip"),
    ],
    ids=["row-cut", "large", "gzip"],
)
def test_a_body_whose_client_closes_before_its_content_length_is_a_400_not_predicted(
    binary, body, announced, came, encoding
):
    """A client that closes its side with body bytes still owed (it died, or a proxy gave up mid-
    upload): gunicorn reads such a body as complete, so it was predicted as if whole, a 200 whose
    last row may be a value cut in two (``cellular`` read as ``cellu``)."""
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
    if encoding:
        head += b"Content-Encoding: " + encoding + b"\r\n"
    head += b"Content-Length: %d\r\n\r\n" % announced
    error = assert_json_error(*exchange(binary.port, head + body, 30), 400)
    assert error["error"] == "bad_body_framing", error
    assert f"Content-Length: {announced} announced, {came} bytes of body came" in error["message"], error
    assert binary.get("/ping").status_code == 200


def test_expect_100_continue_above_the_payload_limit_is_refused_before_the_body(binary):
    """A client that asks before uploading (``Expect: 100-continue``: curl, the AWS SDKs for large
    bodies) a Content-Length above the limit gets the 413 instead of ``100 Continue``, and the
    connection closes: gunicorn sent ``100 Continue`` first, so the whole body was uploaded (here:
    the client waited, and the server waited for the body it had asked for)."""
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nExpect: 100-continue\r\n"
        b"Content-Length: %d\r\n\r\n"
    )
    error = assert_json_error(*exchange(binary.port, head % (7 << 20), 10, half_close=False), 413)
    assert error["error"] == "payload_too_large"
    assert "6 MB (SAGEMAKER_MAX_PAYLOAD_IN_MB)" in error["message"], error
    with socket.create_connection(("127.0.0.1", binary.port), timeout=10) as sock:  # within the limit
        sock.sendall(head % len(ROW))
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(ROW)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize(
    "chunked",
    [
        b"zz\r\nabc\r\n0\r\n\r\n",
        b"10\r\n40,1000",
        b"5\r\n40,10XX0\r\n0\r\n\r\n",
        b"5;\x00=\r\n40,10\r\n0\r\n\r\n",
    ],
    ids=["bad-size", "truncated", "missing-terminator", "bad-extension"],
)
def test_a_malformed_or_truncated_chunked_body_is_a_400(binary, chunked):
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"
    error = assert_json_error(*exchange(binary.port, head + chunked), 400)
    assert error["error"] == "bad_body_framing"
    assert binary.get("/ping").status_code == 200  # the worker is fine


def test_a_well_formed_chunked_body_is_predicted(binary):
    body = ROW * 3
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:])) + b"0\r\n\r\n"
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"
    status, _, answer = exchange(binary.port, head + chunked)
    assert status == 200 and answer.decode().splitlines() == binary.invoke(body).text.splitlines()


# -- Content-Encoding ------------------------------------------------------------------------------


def test_a_gzip_body_is_decoded(binary):
    body = ROW * 1000 + b"55,-20,retired,telephone\n"
    plain = binary.invoke(body, "text/csv")
    for encoding in ("gzip", "x-gzip", "GZip"):
        zipped = binary.invoke(support.gzip_bytes(body), "text/csv", headers={"Content-Encoding": encoding})
        assert zipped.status_code == 200, zipped.text
        assert zipped.text == plain.text
    # concatenated members are one body (gzip's own rule)
    two = gzip.compress(body[:100]) + gzip.compress(body[100:])
    assert binary.invoke(two, "text/csv", headers={"Content-Encoding": "gzip"}).text == plain.text


@pytest.mark.parametrize("encoding", ["identity", "Identity", ""])
def test_content_encoding_identity_is_the_body_as_sent(binary, encoding):
    """RFC 9110's ``identity`` (no encoding; some clients name it) is read as the body, not
    refused as an encoding byoc does not decode."""
    body = ROW * 3
    plain = binary.invoke(body, "text/csv")
    response = binary.invoke(body, "text/csv", headers={"Content-Encoding": encoding})
    assert response.status_code == 200, response.text
    assert response.text == plain.text


def test_a_gzip_member_after_one_inflating_past_a_read_is_read_once(binary):
    """A member that ended in a read which an earlier one had stopped short of (its output past the
    1 MB a read inflates) left the bytes after it both in zlib's unused_data and in its
    unconsumed_tail: the next member was read twice, and its rows answered twice."""
    first, second = ROW * 60_000, b"55,-20,retired,telephone\n" * 3  # 1.5 MB from a few KB of gzip
    data = gzip.compress(first) + gzip.compress(second)
    response = binary.invoke(data, "text/csv", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    assert response.text == binary.invoke(first + second, "text/csv").text


def _gzip_padded(content_type: str) -> bytes:
    rows = sm.features("binary").head(5)
    if content_type == "application/x-parquet":
        return support.parquet_bytes(rows)
    if content_type == "application/json":
        return json.dumps(support.json_records(rows)).encode()
    if content_type == "application/jsonlines":
        return support.jsonlines_bytes(rows)
    return support.csv_bytes(rows, target=None)


GZIP_TYPES = ["text/csv", "application/json", "application/jsonlines", "application/x-parquet"]


@pytest.mark.parametrize("content_type", GZIP_TYPES)
def test_a_gzip_body_is_read_as_pythons_gzip_reads_it_whatever_its_content_type(binary, content_type):
    """Zero padding after the gzip data (tape and block writers, some HTTP clients pad; Python's
    gzip module reads past it) was a 400 "not valid gzip (incorrect header check)"; other bytes
    after it are still a 400, naming the byte, for every content type alike (one reader: byoc.serving.body)."""
    body = _gzip_padded(content_type)
    plain = binary.invoke(body, content_type)
    assert plain.status_code == 200, plain.text
    for padded in (
        gzip.compress(body) + b"\0" * 512,
        gzip.compress(body[:9]) + b"\0" * 3 + gzip.compress(body[9:]),
    ):
        assert gzip.decompress(padded) == body
        response = binary.invoke(padded, content_type, headers={"Content-Encoding": "gzip"})
        assert response.status_code == 200, response.text
        assert response.text == plain.text
    response = binary.invoke(
        gzip.compress(body) + b"\0\0PK", content_type, headers={"Content-Encoding": "gzip"}
    )
    status, headers = response.status_code, {k.lower(): v for k, v in response.headers.items()}
    error = assert_json_error(status, headers, response.content, 400)
    assert error["error"] == "bad_encoding", error
    assert "neither another gzip member nor zero padding" in error["message"], error


def test_a_gzip_bomb_stops_at_the_payload_limit(binary):
    bomb = gzip.compress(b"1" * (64 * 1024 * 1024), compresslevel=9)  # 64 MB of output from ~64 KB
    assert len(bomb) < 1024 * 1024
    response = binary.invoke(bomb, "text/csv", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 413, response.text
    assert "decompresses to more than 6 MB" in response.json()["message"]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_gzip_body_larger_than_the_payload_limit_on_the_wire_is_a_413(binary, framing):
    """Only the decompressed bytes were counted: empty gzip members (20 bytes each, no output) made
    a body of any size on the wire a 200, past the 6 MB every other body is held to (and a chunked
    one without end held a thread for as long as its client sent them).  Within the limit they are
    still one body."""
    empty = gzip.compress(b"", mtime=0)
    within = empty * (1024 * 1024 // len(empty)) + gzip.compress(ROW)
    response = binary.invoke(within, "text/csv", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 200, response.text
    padded = empty * (7 * 1024 * 1024 // len(empty)) + gzip.compress(ROW)
    data = (
        padded
        if framing == "content-length"
        else iter([padded[i : i + 65536] for i in range(0, len(padded), 65536)])
    )
    response = binary.invoke(data, "text/csv", headers={"Content-Encoding": "gzip"})
    status, headers = response.status_code, {k.lower(): v for k, v in response.headers.items()}
    error = assert_json_error(status, headers, response.content, 413)
    assert error["error"] == "payload_too_large", error
    assert "the gzip request body is larger than 6 MB" in error["message"], error
    assert binary.invoke(ROW, "text/csv").status_code == 200


def test_a_413_whose_body_is_left_unread_closes_its_connection(binary):
    """A gzip body is decoded to the payload limit and no further: the rest of it stays unread,
    and gunicorn, which reads at most 64 KiB of a body left behind, closed the connection after
    a 413 that said ``Connection: keep-alive``, so the client's next request on it failed
    (RemoteDisconnected).  Such a 413 says ``Connection: close`` instead (so does one whose body
    runs past the 128 MB the server reads of a refused body)."""
    text = np.random.default_rng(0).bytes(4 << 20).hex().encode()  # 8 MB, compressing to about half
    response = binary.invoke(
        gzip.compress(text, compresslevel=1), "text/csv", headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 413, response.text
    assert response.headers["Connection"] == "close"
    after = binary.invoke(ROW, "text/csv")  # on the same session
    assert after.status_code == 200, after.text


def test_a_body_that_stops_arriving_past_16_kib_is_a_408_and_holds_no_thread(binary):
    """A connection goes to a thread once 16 KiB of its body have come; the thread read the rest
    with no end, so two clients that stopped sending part-way held both threads of a worker for
    as long as they kept their connections (a request behind them timed out; /ping answered 200,
    so the instance stayed in service).  The thread answers 408 after the silence a request
    still on the poller gets, and closes the connection."""
    body = ROW * (1_000_000 // len(ROW))
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    sent = 100_000
    said = f"Content-Length: {len(body)} announced, {sent} bytes of body came, then nothing for 5 s"
    assert_stalled_clients_get_408(binary, head + body[:sent], said)


def assert_stalled_clients_get_408(server, sent: bytes, said: str) -> list[bytes]:
    """Four clients (more than the server's threads: 2 workers x 2) each send ``sent`` and stop:
    a whole request is answered meanwhile, each stalled one gets a JSON 408 whose message holds
    ``said`` and is closed, and the server answers after them.  Returns their raw answers."""
    clients = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(4)]
    answers = []
    try:
        for client in clients:
            client.sendall(sent)
        time.sleep(0.5)
        # a whole request is answered while they wait; its connection is not kept for the request
        # after them, which comes about the server's keep-alive (5 s) later and could meet its close
        meanwhile = server.invoke(ROW, "text/csv", headers={"Connection": "close"})
        assert meanwhile.status_code == 200, meanwhile.text
        for client in clients:
            chunks = []
            while chunk := client.recv(65536):  # the server closes after its answer
                chunks.append(chunk)
            raw = b"".join(chunks)
            assert raw.startswith(b"HTTP/1.1 408 "), raw[:200]
            answer = json.loads(raw.partition(b"\r\n\r\n")[2])
            assert answer["error"] == "request_timeout", answer
            assert said in answer["message"], answer
            answers.append(raw)
    finally:
        for client in clients:
            client.close()
    after = server.invoke(ROW, "text/csv")
    assert after.status_code == 200, after.text
    return answers


def test_a_chunked_body_that_stops_arriving_is_a_408_and_holds_no_thread(binary):
    """A chunked request goes to a thread once its head has come, and gunicorn's chunked reader
    waited in ``recv`` with no end: four clients that sent a chunk and stopped held every thread
    of both workers (a whole request behind them was never answered; /ping said 200).  Each
    now gets the 408 a Content-Length body gets after the same silence, its connection closed."""
    head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = ROW * 40
    said = f"{len(chunk)} bytes of its chunked body came, then nothing for 5 s"
    for raw in assert_stalled_clients_get_408(
        binary, head + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n", said
    ):
        assert b"\r\nconnection: close\r\n" in raw.partition(b"\r\n\r\n")[0].lower() + b"\r\n", raw[:300]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [(gzip.compress(ROW * 100, mtime=0)[:40], "ends early"), (b"not gzip at all", "not valid gzip")],
    ids=["truncated gzip", "not gzip"],  # stable ids: every pytest-xdist process collects the same tests
)
def test_a_broken_gzip_body_is_a_400(binary, data, fragment):
    response = binary.invoke(data, "text/csv", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400 and response.json()["error"] == "bad_encoding"
    assert fragment in response.json()["message"]


@pytest.mark.parametrize("encoding", ["br", "deflate", "compress", "zstd"])
def test_another_content_encoding_is_a_415_naming_it(binary, encoding):
    response = binary.invoke(b"\x00\x01\x02", "text/csv", headers={"Content-Encoding": encoding})
    assert response.status_code == 415, response.text
    assert response.json()["error"] == "unsupported_encoding"
    assert repr(encoding) in response.json()["message"] and "gzip" in response.json()["message"]


# -- Parquet requests with missing values ------------------------------------------------------------


def _parquet(frame: pd.DataFrame) -> bytes:
    return support.parquet_bytes(frame)


def test_parquet_missing_tokens_and_all_null_columns_predict_like_csv(binary):
    text = pd.DataFrame(
        {
            "age": ["NA", "", "41", None],
            "balance": ["", "1000.5", "NaN", "-3"],
            "job": ["admin", "admin", None, "retired"],
            "contact": ["cellular", "telephone", "cellular", "cellular"],
        }
    )
    csv_body = text.to_csv(index=False, header=False, na_rep="")
    expected = binary.invoke(csv_body, "text/csv", "application/json").json()
    response = binary.invoke(_parquet(text), "application/x-parquet", "application/json")
    assert response.status_code == 200, response.text
    assert response.json() == expected
    all_null = text.assign(age=[None] * 4, balance=pd.Series([None] * 4, dtype=object))
    response = binary.invoke(_parquet(all_null), "application/x-parquet", "application/json")
    expected = binary.invoke(
        ",,admin,cellular\n,,admin,telephone\n,,,cellular\n,,retired,cellular\n",
        "text/csv",
        "application/json",
    )
    assert response.status_code == 200, response.text
    assert response.json() == expected.json()


def test_parquet_text_in_a_numeric_column_is_a_400_naming_it(binary):
    frame = pd.DataFrame(
        {"age": ["40", "forty"], "balance": [1.0, 2.0], "job": ["admin"] * 2, "contact": ["cellular"] * 2}
    )
    response = binary.invoke(_parquet(frame), "application/x-parquet")
    assert response.status_code == 400, response.text
    assert "row 2, column 'age'" in response.json()["message"]


# -- slow clients ---------------------------------------------------------------------------------


class Trickler(threading.Thread):
    """A client that sends its request one byte at a time, forever (until stopped)."""

    def __init__(self, port: int, data: bytes) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.data = data
        self.stopped = threading.Event()

    def run(self) -> None:
        for byte in self.data:
            if self.stopped.wait(0.2):
                return
            try:
                self.sock.send(bytes([byte]))
            except OSError:
                return

    def stop(self) -> None:
        self.stopped.set()
        self.sock.close()


def assert_answers_while_trickling(server, tricklers_each: int) -> None:
    """``tricklers_each`` body-tricklers and as many header-tricklers: /ping and a request still answer."""
    headers = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
    body_tricklers = [Trickler(server.port, ROW * 1000) for _ in range(tricklers_each)]
    for t in body_tricklers:
        t.sock.sendall(headers + b"Content-Length: %d\r\n\r\n" % (len(ROW) * 1000))
    header_tricklers = [
        Trickler(server.port, headers + b"X-Slow: " + b"s" * 1000) for _ in range(tricklers_each)
    ]
    tricklers = body_tricklers + header_tricklers
    for t in tricklers:
        t.start()
    try:
        time.sleep(1.0)  # every slow client is connected and has been read from
        for _ in range(3):
            # a hang shows as a timeout: a sync worker held by a trickler answered after 18-60 s; 10 s
            # leaves room for a loaded machine
            assert requests.get(f"{server.url}/ping", timeout=10.0).status_code == 200
            response = requests.post(
                f"{server.url}/invocations", data=ROW, headers={"Content-Type": "text/csv"}, timeout=10.0
            )
            assert response.status_code == 200 and response.text.strip() in ("yes", "no")
        assert all(t.is_alive() for t in tricklers)  # they were still trickling all along
    finally:
        for t in tricklers:
            t.stop()


def test_slow_clients_do_not_hold_the_workers(binary):
    """As many body-tricklers and as many header-tricklers as workers."""
    assert_answers_while_trickling(binary, 2)


def test_slow_clients_do_not_hold_threads():
    """More body-tricklers and more header-tricklers than the one worker has threads: a trickling
    request waits on the worker's poller until it has arrived, not on a thread (gunicorn's own
    gthread worker read it on a thread, so each worker needed a spare thread per trickler)."""
    from byoc.serving.settings import DEFAULT_WORKER_THREADS

    server = sm.start(sm.trained_root("binary"), workers=1)
    try:
        assert_answers_while_trickling(server, DEFAULT_WORKER_THREADS + 1)
    finally:
        server.stop()


# -- SIGTERM during a long request -------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_lets_a_request_finish_within_the_default_30_s_grace_period():
    server = sm.start(sm.trained_root("binary"), workers=1)
    try:
        with sm.SlowPost(server.url, ROW * 10, ROW * 10) as post:
            time.sleep(1.0)  # the request is in the worker, reading its body
            server.process.send_signal(signal.SIGTERM)
            time.sleep(22.0)  # past gunicorn's former 20 s grace, within SageMaker's 30 s
            post.finish()
            returncode = server.process.wait(timeout=30)
    finally:
        output = server.stop()
    assert "error" not in post.result, (post.result.get("error"), output)
    response = post.result["response"]
    assert response.status_code == 200 and len(response.text.splitlines()) == 20
    assert returncode == 0, output


def test_a_request_cut_by_the_end_of_the_grace_period_is_logged_and_serve_exits_non_zero():
    server = sm.start(sm.trained_root("binary"), workers=1, env={"BYOC_GRACEFUL_TIMEOUT": "3"})
    try:
        with sm.SlowPost(server.url, ROW * 10, ROW * 10) as post:
            time.sleep(1.0)
            server.process.send_signal(signal.SIGTERM)
            returncode = server.process.wait(timeout=30)  # the body never completes
            post.finish()
    finally:
        output = server.stop()
    assert returncode != 0, output
    cut = re.search(r"request ([0-9a-f]{32}) \(POST /invocations, running [\d.]+ s\) cut", output)
    assert cut, output
    assert "1 request(s) were still running when the 3 s grace period" in output
    assert "response" not in post.result or post.result["response"].status_code != 200


# -- CSV quoting across large bodies ---------------------------------------------------------------


def test_a_quoted_newline_in_the_first_row_of_a_large_csv_body(binary):
    first = b'40,1000.5,"ad\nmin",cellular\n'
    body = first + ROW * 4000
    assert len(body) > 64 * 1024
    response = binary.invoke(body, "text/csv", "text/csv")
    assert response.status_code == 200, response.text
    labels = response.text.splitlines()
    assert len(labels) == 4001
    assert labels[0] == binary.invoke(first, "text/csv", "text/csv").text.strip()


@pytest.mark.parametrize("rows", [1, 150, 4000])  # the csv module's path; pyarrow's below and above 64 KiB
def test_an_empty_line_in_a_csv_body_is_a_400_naming_its_row_at_every_size(binary, rows):
    """Batch transform pairs answer lines with input lines: an empty line is a record, a 400 for
    this four-feature model.  Above 64 KiB it was answered 200 as a row of missing values."""
    response = binary.invoke(ROW * rows + b"\n" + ROW, "text/csv", "text/csv")
    assert response.status_code == 400, response.text[:300]
    error = response.json()
    assert error["error"] == "wrong_column_count"
    assert error["message"].startswith(f"row {rows + 1} is empty"), error["message"]


@pytest.mark.parametrize("shape", [(99_999_999_999, 4), (2, 4_000_000_000), (9, 4)])
def test_an_npy_header_claiming_more_than_the_body_holds_is_a_400_naming_the_shape(binary, shape):
    """np.load allocates what the header claims before reading: a 200-byte body claiming terabytes
    was a 500 MemoryError (one that fits was already a 400)."""
    buf = io.BytesIO()
    np.save(buf, np.ones((2, 4)))
    body = buf.getvalue().replace(b"(2, 4)", str(shape).encode())
    response = binary.invoke(body, "application/x-npy")
    assert response.status_code == 400, response.text[:300]
    error = response.json()
    assert error["error"] == "undecodable_body" and str(shape) in error["message"], error


# -- Parquet bodies that decode to far more than they weigh ------------------------------------------


def _repeated_parquet(rows: int, job: str) -> bytes:
    """``rows`` copies of one row, as a run-length-encoded file of a few KB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    same = np.zeros(rows, np.int32)
    table = pa.table(
        {
            "age": np.full(rows, 40.0),
            "balance": np.full(rows, 1000.5),
            "job": pa.DictionaryArray.from_arrays(same, [job]),
            "contact": pa.DictionaryArray.from_arrays(same, ["cellular"]),
        }
    )
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", row_group_size=rows)
    return out.getvalue()


@pytest.mark.parametrize(
    ("rows", "job", "fragment"),
    [
        (10_000_000, "admin", "10,000,000 rows of 4 columns"),
        (3000, "x" * 1024 * 1024, "bytes of text in rows 1 to"),
    ],
    ids=["ten million rows", "a megabyte of text repeated"],
)
def test_a_parquet_body_decoding_to_gigabytes_is_a_413_naming_the_limit(binary, rows, job, fragment):
    """152 KB of Parquet (10 million rows) took a worker 4.5 GB and 140 s; 1.4 KB (one 1 MB text on
    3000 rows), 2.2 GB.  Both are refused from the file's footer or first slice, at once."""
    body = _repeated_parquet(rows, job)
    assert len(body) < 256 * 1024
    workers = {child.pid for child in psutil.Process(binary.process.pid).children()}
    started = time.monotonic()
    response = binary.invoke(body, "application/x-parquet")
    assert time.monotonic() - started < 10
    status, headers = response.status_code, {k.lower(): v for k, v in response.headers.items()}
    error = assert_json_error(status, headers, response.content, 413)
    assert error["error"] == "parquet_too_large" and fragment in error["message"], error
    assert "SAGEMAKER_MAX_PAYLOAD_IN_MB" in error["message"] and "MaxPayloadInMB" in error["message"]
    assert {child.pid for child in psutil.Process(binary.process.pid).children()} == workers


def _peak_rss(pid: int) -> int:
    """The peak resident memory of process ``pid`` (VmHWM), in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


@pytest.mark.parametrize(
    ("footer", "fragment"),
    [
        (None, "bytes in row group 1 (decompressed, as its footer declares"),
        (100, "(decompressed, as its pages' headers declare, where its footer declares 400"),
    ],
    ids=["footer as written", "footer understating the pages"],
)
def test_a_parquet_value_decompressing_past_the_limit_is_refused_from_the_footer(binary, footer, fragment):
    """One text value of 100 MB is 4.4 KB of zstd: pyarrow decompressed its page whole, and the
    slice's text was measured only after that, so the 413 came once the worker had taken some
    480 MB.  The footer declares each column chunk's decompressed size: checked first.  A footer
    rewritten to declare 100 bytes a column passed that check, and pyarrow inflated the page by
    its own header's size all the same: the pages' headers are read too, before any is inflated."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {"age": [40.0], "balance": [1000.5], "job": ["x" * (100 * 1024 * 1024)], "contact": ["a"]}
    )
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", compression_level=22)
    body = out.getvalue() if footer is None else support.understated_parquet(out.getvalue(), footer)
    del table
    assert len(body) < 64 * 1024
    workers = [child.pid for child in psutil.Process(binary.process.pid).children()]
    for pid in workers:  # reset each worker's peak (VmHWM) to its resident memory now
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
    before = {pid: _peak_rss(pid) for pid in workers}
    response = binary.invoke(body, "application/x-parquet")
    status, headers = response.status_code, {k.lower(): v for k, v in response.headers.items()}
    error = assert_json_error(status, headers, response.content, 413)
    assert error["error"] == "parquet_too_large", error
    assert fragment in error["message"], error
    grown = max(_peak_rss(pid) - before[pid] for pid in workers)
    assert grown < 50 * 1024 * 1024, f"a worker's peak memory grew {grown:,} bytes"


def test_a_parquet_body_of_many_slices_is_answered_row_for_row_like_csv(binary):
    from byoc.serving.codecs import parquet

    rows = 3 * parquet.SLICE_VALUES // 4 + 5  # four columns: four slices
    frame = sm.features("binary")
    frame = pd.concat([frame] * (rows // len(frame) + 1), ignore_index=True).iloc[:rows]
    expected = binary.invoke(frame.to_csv(index=False, header=False), "text/csv", "text/csv", timeout=120)
    response = binary.invoke(support.parquet_bytes(frame), "application/x-parquet", "text/csv", timeout=120)
    assert response.status_code == 200, response.text[:300]
    assert response.text == expected.text and len(response.text.splitlines()) == rows


@pytest.mark.parametrize("rows", [3, 1100])  # value by value; column by column (from 1,024 rows)
@pytest.mark.parametrize("content_type", ["application/json", "application/jsonlines"])
def test_a_lone_surrogate_escape_in_a_category_is_a_400_naming_row_and_column(binary, rows, content_type):
    """JSON's escapes can spell half of a UTF-16 surrogate pair (``"\\ud800"``, a string cut inside
    an emoji), which is no text: training refuses it naming the line; a request of 1,024 rows or
    more holding one was a 500 (Arrow cannot hold it), fewer rows answered it as an unknown job."""
    table = [[40, 1000.5, "admin", "cellular"] for _ in range(rows)]
    table[1][2] = "ad\ud800min"
    if content_type == "application/json":
        body = json.dumps({"instances": table}).encode()
    else:
        body = "".join(json.dumps(row) + "\n" for row in table).encode()
    assert b"\\ud800" in body
    response = binary.invoke(body, content_type, "text/csv")
    assert response.status_code == 400, response.text[:300]
    error = response.json()
    assert error["error"] == "not_text", error
    assert error["message"].startswith("row 2, column '"), error["message"]
    assert "\\ud800, half of a UTF-16 surrogate pair" in error["message"], error["message"]


# -- names repeated past any model's width ---------------------------------------------------------


@pytest.mark.parametrize("content_type", ["text/csv", "application/json"])
def test_a_header_repeating_one_name_all_through_the_body_is_a_400_at_once(binary, content_type):
    """The repeated names of a header were counted name by name, each count a pass over them all:
    a 6 MB CSV header of 'age' 1.5 million times would have held a worker thread (and the GIL) for
    hours (8,000 cells took 1.4 s, 16,000 four times that); ``dataframe_split`` columns likewise."""
    if content_type == "text/csv":
        body = b"age," * 1_500_000 + b"age\n"
    else:
        count = 500_000
        body = json.dumps({"dataframe_split": {"columns": ["age"] * count, "data": [[1] * count]}}).encode()
    assert len(body) < 6 * 1024 * 1024
    response = binary.invoke(body, content_type, timeout=60)
    status, headers = response.status_code, {k.lower(): v for k, v in response.headers.items()}
    error = assert_json_error(status, headers, response.content, 400)
    assert error["error"] == "duplicate_columns" and "repeats column 'age'" in error["message"], error


# -- NUL in a text value ---------------------------------------------------------------------------


def _with_nul(frame: pd.DataFrame, at: int) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[at, "job"] = "ad\x00min"
    return frame


@pytest.mark.parametrize(
    "content_type", ["text/csv", "application/json", "application/jsonlines", "application/x-parquet"]
)
def test_a_nul_in_a_text_value_is_refused_in_every_format_as_training_refuses_it(binary, content_type):
    """NUL is in no text: training refuses a value holding it in every format (CSV, JSON Lines'
    ``"\\u0000"``, Parquet), and so does the endpoint, naming row and column.  JSON and JSON Lines
    ``"\\u0000"`` (and Parquet text) were taken as an unseen category, answered 200, while the same
    value sent as CSV was a 400."""
    rows = _with_nul(sm.features("binary").iloc[:3].reset_index(drop=True), 1)
    body = {
        "text/csv": lambda: support.csv_bytes(rows, target=None),
        "application/json": lambda: json.dumps({"instances": support.json_records(rows)}).encode(),
        "application/jsonlines": lambda: support.jsonlines_bytes(rows),
        "application/x-parquet": lambda: support.parquet_bytes(rows),
    }[content_type]()
    assert (b"\\u0000" in body) == content_type.startswith("application/json")
    response = binary.invoke(body, content_type)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error"] == "not_text", error
    assert error["message"].startswith("row 2, column 'job': holds a NUL character (\\x00)"), error


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/jsonlines", "application/x-parquet"]
)
def test_a_nul_in_a_text_value_of_a_large_batch_is_refused_as_in_a_small_one(binary, content_type):
    """A batch of 1,024 records or more is read a column at a time, its text columns as Arrow's
    large strings: the NUL check reads those too, so a ``"\\u0000"`` in row 1,101 of 1,200 is the
    400 a three-row body gets, not an unseen category answered 200."""
    rows = _with_nul(pd.concat([sm.features("binary")] * 5, ignore_index=True), 1100)
    assert len(rows) >= 1024
    body = {
        "application/json": lambda: json.dumps({"instances": support.json_records(rows)}).encode(),
        "application/jsonlines": lambda: support.jsonlines_bytes(rows),
        "application/x-parquet": lambda: support.parquet_bytes(rows),
    }[content_type]()
    response = binary.invoke(body, content_type)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["error"] == "not_text", error
    assert error["message"].startswith("row 1101, column 'job': holds a NUL character (\\x00)"), error
