"""When a gthread worker hands a connection to a thread: only once its request has arrived
(byoc.serving.worker.request_arrived), so that a trickling client never holds a thread."""

from __future__ import annotations

import os
import re

from hypothesis import given
from hypothesis import strategies as st

from byoc.serving.worker import ARRIVED_BYTES, new_request_id, request_arrived

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
