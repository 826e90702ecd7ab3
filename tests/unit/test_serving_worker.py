"""When a gthread worker hands a connection to a thread: only once its request has arrived
(byoc.serving.worker.request_arrived), so that a trickling client never holds a thread."""

from __future__ import annotations

import json
import os
import re
import selectors
import socket
import time
from collections import deque
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byoc.serving.worker import ARRIVED_BYTES, new_request_id, plain_ping, request_arrived

header_names = st.sampled_from(["Content-Type", "X-Amzn-SageMaker-Custom-Attributes", "Accept", "Host"])
header_values = st.text(alphabet="abcdefghijklmnopqrstuvwxyz/0123456789=;,. -", max_size=40).map(str.strip)


@st.composite
def requests(draw) -> bytes:
    """An HTTP/1.1 request with a Content-Length body (any spelling of the name), or none."""
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=6))
    body = draw(st.binary(max_size=3000))
    method = draw(st.sampled_from(["POST", "GET"])) if not body else "POST"
    if body or draw(st.booleans()):
        name = draw(st.sampled_from(["Content-Length", "content-length", "CONTENT-LENGTH"]))
        spacing = draw(st.sampled_from(["", " ", "  ", "\t"]))
        headers.insert(draw(st.integers(0, len(headers))), (name, f"{spacing}{len(body)}"))
    head = f"{method} /invocations HTTP/1.1\r\n" + "".join(f"{n}:{v}\r\n" for n, v in headers) + "\r\n"
    return head.encode("latin-1") + body


@given(requests(), st.data())
def test_a_request_goes_to_a_thread_once_every_byte_has_arrived_and_not_before(request, data):
    cut = data.draw(st.integers(1, len(request) - 1))
    assert request_arrived(request)
    assert not request_arrived(request[:cut])
    assert request_arrived(request + b"GET /ping HTTP/1.1\r\n")  # a pipelined request behind it


def test_a_large_request_goes_to_a_thread_once_its_first_bytes_have_arrived():
    head = b"POST /invocations HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n"
    assert not request_arrived(head + b"x" * (ARRIVED_BYTES - len(head) - 1))
    assert request_arrived(head + b"x" * (ARRIVED_BYTES - len(head)))  # the rest streams in on the thread
    assert request_arrived(b"X-Slow: " + b"s" * ARRIVED_BYTES)  # gunicorn refuses an endless head itself


def test_heads_a_thread_must_answer_go_at_once():
    """100-continue waits for the server before its body; a chunked body's end is gunicorn's to find;
    an end of file or a head gunicorn cannot parse is for gunicorn to close or refuse."""
    assert request_arrived(b"POST / HTTP/1.1\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n")
    assert request_arrived(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
    assert request_arrived(b"")
    assert request_arrived(b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n")
    assert not request_arrived(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n")
    assert not request_arrived(b"POST / HTTP/1.1\r\nContent-Length: 10\r")  # its LF is on the way


@pytest.mark.parametrize(
    "head",
    [b"GET /ping HTTP/1.1\nHost: x\n\n", b"GET /ping HTTP/1.1\r\nHost: x\n\n", b"GET /ping\n"],
)
def test_a_head_with_a_bare_lf_goes_at_once_for_gunicorn_to_refuse(head):
    """It never ends in CRLF CRLF: waiting for that closed the connection after 5 s, unanswered."""
    assert request_arrived(head)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /ping HTTP/1.1\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nHost: x\r\nUser-Agent: ELB-HealthChecker/2.0\r\n\r\n",
        b"GET /ping HTTP/1.1\r\ncontent-length:0\r\n\r\n",
        b"GET /ping HTTP/1.0\r\n\r\n",
    ],
)
def test_a_whole_ping_and_nothing_more_is_for_the_main_thread(head):
    assert plain_ping(head) and request_arrived(head)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /ping HTTP/1.1\r\nHost: x\r\n",  # the head has not ended
        b"GET /ping HTTP/1.1\r\n\r\nGET /ping HTTP/1.1\r\n\r\n",  # pipelined: a thread reads on
        b"GET /ping HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        b"GET /ping HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",  # its body would be waited for
        b"GET /ping HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        b"GET /ping?x=1 HTTP/1.1\r\n\r\n",
        b"GET /pings HTTP/1.1\r\n\r\n",
        b"HEAD /ping HTTP/1.1\r\n\r\n",
        b"POST /invocations HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        b"GET /ping HTTP/1.1\r\nX-Big: " + b"a" * ARRIVED_BYTES + b"\r\n\r\n",
    ],
)
def test_anything_else_goes_to_a_thread(head):
    assert not plain_ping(head)


@given(requests())
def test_no_invocation_is_taken_for_a_ping(request):
    assert not plain_ping(request)


def test_request_ids_are_32_hex_digits_and_differ_between_forked_workers():
    """Workers are forked from one master: each must draw its own ids, not replay the master's."""
    new_request_id()  # the master's generator in use before the fork
    read, write = os.pipe()
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # a worker: report its first id
            os.write(write, (new_request_id() + "\n").encode())
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    os.close(write)
    with os.fdopen(read) as pipe:
        ids = pipe.read().split()
    ids.append(new_request_id())
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), ids
    assert len(set(ids)) == 3, ids


# -- a pending connection with part of its request: woken when more has come, not before ----------------


class _Submitted:
    """The thread pool's stand-in: records the connections handed to a thread."""

    def __init__(self) -> None:
        self.conns: list[Any] = []

    def submit(self, fn: Any, conn: Any) -> Any:
        self.conns.append(conn)
        return SimpleNamespace(add_done_callback=lambda callback: None)


@pytest.fixture()
def pending() -> Iterator[tuple[Any, socket.socket, Any]]:
    """(a byoc gthread worker with its poller, a client socket, the server side's connection)."""
    from byoc.serving.worker import worker_class

    worker = object.__new__(worker_class("gthread", None, 30.0))
    worker.__dict__["_ssl"] = False
    worker.alive = True
    worker.cfg = SimpleNamespace(keepalive=5, timeout=60)
    worker.in_flight = {}
    worker.pending_conns = deque()
    worker.poller = selectors.DefaultSelector()
    worker.tpool = _Submitted()
    worker.method_queue = SimpleNamespace(defer=lambda *args: None)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server_side, _ = listener.accept()
    conn = SimpleNamespace(sock=server_side, parser=None, timeout=None, data_ready=False)
    try:
        yield worker, client, conn
    finally:
        worker.poller.close()
        client.close()
        server_side.close()


def _dispatch(worker: Any, timeout: float) -> int:
    """One turn of the worker's poller, as its main loop runs it; how many events it had."""
    events = worker.poller.select(timeout)
    for key, _ in events:
        key.data(key.fileobj)
    return len(events)


def _lowat(sock: socket.socket) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)


HEAD = b"POST /invocations HTTP/1.1\r\nContent-Type: text/csv\r\nContent-Length: 10\r\n\r\n"


def test_a_partly_arrived_request_does_not_wake_the_worker_until_more_comes(pending):
    """The poller is level-triggered: with the head waiting in the buffer, it woke the worker's main
    thread again and again (58 peeks for one 1 MB body) until the body came."""
    worker, client, conn = pending
    client.sendall(HEAD + b"12345")
    time.sleep(0.05)
    worker.enqueue_req(conn)
    assert list(worker.pending_conns) == [conn] and _lowat(conn.sock) == len(HEAD) + 6
    assert _dispatch(worker, 0.05) == 0  # nothing new: no wake-up
    client.sendall(b"678")
    assert _dispatch(worker, 2.0) == 1  # a byte more: one wake-up, and it waits again
    assert list(worker.pending_conns) == [conn] and worker.tpool.conns == []
    client.sendall(b"90")
    assert _dispatch(worker, 2.0) == 1
    assert worker.tpool.conns == [conn] and not worker.pending_conns
    assert _lowat(conn.sock) == 1  # the thread's blocking reads return once a byte has come


def test_a_client_that_shuts_down_mid_request_goes_to_a_thread(pending):
    worker, client, conn = pending
    client.sendall(HEAD + b"12")
    time.sleep(0.05)
    worker.enqueue_req(conn)
    client.shutdown(socket.SHUT_WR)
    assert _dispatch(worker, 2.0) == 1
    assert worker.tpool.conns == [conn] and _lowat(conn.sock) == 1  # gunicorn meets the end there


def test_a_request_begun_in_gunicorns_read_ahead_waits_for_its_rest_on_the_poller(pending):
    """A client that sent the start of its next request behind the previous one: those bytes are in
    gunicorn's buffer, not the socket's, and the request goes to a thread once the rest has come."""
    import io

    worker, client, conn = pending
    conn.parser = SimpleNamespace(unreader=SimpleNamespace(buf=io.BytesIO(HEAD + b"12")))
    client.sendall(b"345")
    time.sleep(0.05)
    worker.enqueue_req(conn)
    assert list(worker.pending_conns) == [conn] and _lowat(conn.sock) == 4
    client.sendall(b"67890")
    assert _dispatch(worker, 2.0) == 1
    assert worker.tpool.conns == [conn] and not worker.pending_conns and _lowat(conn.sock) == 1


def test_a_request_begun_in_gunicorns_read_ahead_with_nothing_more_waits_for_a_byte(pending):
    import io

    worker, client, conn = pending
    conn.parser = SimpleNamespace(unreader=SimpleNamespace(buf=io.BytesIO(HEAD[:20])))
    worker.enqueue_req(conn)
    assert list(worker.pending_conns) == [conn] and worker.tpool.conns == []
    assert _dispatch(worker, 0.05) == 0  # no byte, no wake-up
    client.sendall(HEAD[20:] + b"1234567890")
    assert _dispatch(worker, 2.0) == 1
    assert worker.tpool.conns == [conn]


def _stalled(worker: Any, conn: Any) -> None:
    """``conn``'s time on the poller is up: the worker's main loop runs murder_pending."""
    conn.timeout = time.monotonic() - 1
    conn.close = conn.sock.close
    worker.nr_conns = 1
    worker.log = SimpleNamespace(warning=lambda *args: None)
    worker.murder_pending()
    assert not worker.pending_conns and worker.nr_conns == 0


def _answer(client: socket.socket) -> bytes:
    client.settimeout(2)
    answer = b""
    while chunk := client.recv(65536):
        answer += chunk
    return answer


@pytest.mark.parametrize(
    "sent,fragment",
    [
        (HEAD + b"12", "Content-Length: 10 announced, 2 bytes of body came, then nothing for 5 s"),
        (HEAD[:30], "its head (30 bytes) never ended with an empty line"),
    ],
)
def test_a_request_that_stops_arriving_is_answered_408_before_the_close(pending, sent, fragment):
    """It was closed without a word: a reset the client could not tell from a crash."""
    worker, client, conn = pending
    client.sendall(sent)
    time.sleep(0.05)
    worker.enqueue_req(conn)
    _stalled(worker, conn)
    head, _, body = _answer(client).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), head
    error = json.loads(body)
    assert error["error"] == "request_timeout" and fragment in error["message"], error


def test_an_idle_connection_is_closed_without_an_answer(pending):
    worker, client, conn = pending
    worker.enqueue_req(conn)
    _stalled(worker, conn)
    assert _answer(client) == b""


# -- a connection closed after its answer lingers on the poller, not on the main thread ------------------


def _closed_after_answer(worker: Any, server_side: socket.socket) -> Any:
    """gunicorn's finish_request for a connection whose answer said ``Connection: close``."""
    from concurrent.futures import Future

    from byoc.serving.worker import _Conn

    conn = _Conn(worker.linger, SimpleNamespace(), server_side, ("127.0.0.1", 1), ("127.0.0.1", 2))
    worker.nr_conns = 1
    done: Future[bool] = Future()
    done.set_result(False)
    worker.finish_request(conn, done)  # it used to wait here (2 s at most) for the client to close
    assert worker.nr_conns == 0
    return conn


def test_a_connection_closed_after_its_answer_lingers_on_the_poller_until_the_client_closes(pending):
    """gunicorn's graceful close (FIN, then read until the client closes, so no reset cuts an unread
    answer) waited on the worker's main thread: a client that kept its side open stopped the worker
    from accepting and answering /ping for 2 s."""
    worker, client, conn = pending
    _closed_after_answer(worker, conn.sock)
    assert conn.sock.fileno() != -1 and client.recv(10) == b""  # FIN sent, the socket still open
    client.sendall(b"late bytes")
    assert _dispatch(worker, 2.0) == 1 and conn.sock.fileno() != -1  # read, and still waiting
    client.close()
    assert _dispatch(worker, 2.0) == 1 and conn.sock.fileno() == -1
    worker.murder_pending()
    assert not worker._lingering


def test_a_lingering_connection_is_closed_when_its_time_is_up(pending):
    worker, client, conn = pending
    _closed_after_answer(worker, conn.sock)
    worker._lingering[0].deadline = time.monotonic() - 1
    worker.murder_pending()
    assert conn.sock.fileno() == -1 and not worker._lingering
    assert not worker.poller.get_map()
