"""Kept-alive connections against the real server: a next request that has arrived only in part
waits on the worker's poller, not on a thread, whether it is still in the kernel's buffer or
already in gunicorn's read-ahead (byoc.serving.worker)."""

from __future__ import annotations

import socket
import time

import pytest
import requests
import serving_models as sm

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
