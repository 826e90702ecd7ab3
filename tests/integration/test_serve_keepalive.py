"""Kept-alive connections against the real server: a next request that has arrived only in part
waits on the worker's poller, not on a thread, whether it is still in the kernel's buffer or
already in gunicorn's read-ahead; a /ping is answered while every thread is busy
(byoc.serving.worker)."""

from __future__ import annotations

import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest
import requests
import serving_models as sm

import support

ROW = b"40,1000.5,admin,cellular\n"


def post(body: bytes) -> bytes:
    return (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nAccept: text/csv\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )


class Responses:
    """HTTP/1.1 responses (Content-Length framed) read off one socket, in order."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def next(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            self._fill()
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
        self.buffer = rest[length:]
        return int(lines[0].split()[1]), rest[:length]


@pytest.fixture(scope="module")
def binary():
    server = sm.start(sm.trained_root("binary"), workers=1)
    yield server
    server.stop()


@pytest.mark.parametrize(
    "first",
    [ROW, ROW * 1000],
    # gunicorn's first read (8 KiB) takes a single row's request and the partial one behind it into
    # its read-ahead; a 25 kB body is read to its end only, so the partial one stays in the kernel
    ids=["read-ahead", "kernel-buffer"],
)
def test_a_next_request_that_has_arrived_in_part_waits_on_the_poller_not_on_a_thread(binary, first):
    """More connections than the worker has threads, each with a request answered and the next one's
    head and part of its body behind it: a thread that read on into that next request would wait for
    its client, and /ping would get no thread."""
    from byoc.serving.settings import DEFAULT_WORKER_THREADS

    second = ROW * 4
    expected = [binary.invoke(body, accept="text/csv").content for body in (first, second)]
    partial = post(second)[: -len(second) + 10]
    clients = []
    try:
        for _ in range(DEFAULT_WORKER_THREADS + 1):
            sock = socket.create_connection(("127.0.0.1", binary.port), timeout=20)
            clients.append((sock, Responses(sock)))
            sock.sendall(post(first) + partial)
        for _, answers in clients:
            assert answers.next() == (200, expected[0])
        time.sleep(0.5)
        for _ in range(3):  # a hang shows as a timeout; 10 s leaves room for a loaded machine
            assert requests.get(f"{binary.url}/ping", timeout=10.0).status_code == 200
        for sock, answers in clients:  # the rest comes: each connection is served from the poller
            sock.sendall(second[10:])
            assert answers.next() == (200, expected[1])
    finally:
        for sock, _ in clients:
            sock.close()


def test_clients_that_keep_their_side_open_after_a_closing_answer_do_not_hold_the_worker(binary):
    """gunicorn closed such a connection gracefully (FIN, then reading until the client closed, 2 s at
    most) on the worker's main thread: each client that kept its side open stopped the worker from
    accepting and answering for 2 s, so 30 of them held a /ping for a minute."""
    holders = []
    try:
        for _ in range(30):
            sock = socket.create_connection(("127.0.0.1", binary.port), timeout=20)
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            holders.append(sock)
        assert requests.get(f"{binary.url}/ping", timeout=10.0).status_code == 200  # a hang: a timeout
        for sock in holders:  # each was answered and closed by the server, none reset
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in answer, answer
    finally:
        for sock in holders:
            sock.close()


def _held_root(tmp_path: Path) -> Path:
    """The binary model with an input_fn that holds a request whose body starts with "hold" until
    the file ``release`` exists, having written a file ``held-*`` (orderings, not timings)."""
    root = sm.copy_root("binary", tmp_path / "root")
    code = root / "model" / "code"
    code.mkdir()
    (code / "inference.py").write_text(
        textwrap.dedent(
            f"""
            import io, os, time, uuid
            import pandas as pd

            def input_fn(body, content_type):
                body = body.decode() if isinstance(body, bytes) else body
                if body.startswith("hold"):
                    open(os.path.join({str(tmp_path)!r}, "held-" + uuid.uuid4().hex), "w").close()
                    deadline = time.monotonic() + 120
                    while not os.path.exists({str(tmp_path / "release")!r}) and time.monotonic() < deadline:
                        time.sleep(0.02)
                    body = body[4:]
                return pd.read_csv(io.StringIO(body), header=None, names=["age", "balance", "job", "contact"])
            """
        ),
        encoding="utf-8",
    )
    return root


def _ping_head(sock: socket.socket, target: bytes) -> dict[str, str]:
    """GET ``target`` on ``sock``: the answer's status line (as "status") and headers."""
    sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    raw = b""
    while b"\r\n\r\n" not in raw:
        raw += sock.recv(65536) or b"<closed>\r\n\r\n"
    lines = raw.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    return {k.lower(): v for k, v in (line.split(": ", 1) for line in lines[1:])} | {"status": lines[0]}


def test_ping_is_answered_while_every_thread_of_the_worker_runs_a_long_request(tmp_path):
    """A worker accepts while all its threads are busy: a /ping that landed there waited for one of
    them to finish (5 s against SageMaker's 2 s in the probe, with another worker idle).  Its main
    thread answers it now, as the app does (the same answer as a /ping served on a thread), on a new
    connection and again on the kept-alive one, with its access line."""
    from byoc.serving.settings import DEFAULT_WORKER_THREADS

    server = sm.start(_held_root(tmp_path), workers=1, env={"SAGEMAKER_CONTAINER_LOG_LEVEL": "DEBUG"})
    answers: list[requests.Response] = []

    def held_post() -> None:  # a connection of its own each (a Session is not for threads)
        headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
        answers.append(
            requests.post(f"{server.url}/invocations", data=b"hold" + ROW, headers=headers, timeout=150)
        )

    posts = [threading.Thread(target=held_post) for _ in range(DEFAULT_WORKER_THREADS)]
    try:
        for post in posts:
            post.start()
        support.wait_for(lambda: len(list(tmp_path.glob("held-*"))) == DEFAULT_WORKER_THREADS, "held", 60)
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            reader = Responses(sock)
            for _ in range(2):  # a new connection, then the same one kept alive
                sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
                assert reader.next() == (200, b"")
        assert all(post.is_alive() for post in posts) and not answers  # still held all along
        (tmp_path / "release").touch()
        for post in posts:
            post.join(60)
        assert [(a.status_code, a.text.strip() in ("yes", "no")) for a in answers] == [
            (200, True)
        ] * DEFAULT_WORKER_THREADS
        with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
            here = _ping_head(sock, b"/ping")
            on_thread = _ping_head(sock, b"/ping?on=thread")  # not a plain ping: a thread answers it
        here.pop("date"), on_thread.pop("date")
        assert here == on_thread and here["status"] == "HTTP/1.1 200 OK", (here, on_thread)
    finally:
        (tmp_path / "release").touch()
        output = server.stop()
    assert output.count('"GET /ping HTTP/1.1" 200 0') >= 3, output[-3000:]
