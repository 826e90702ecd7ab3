"""local_test/predict.sh without Docker or a model: what it says when the server refuses a request
and when there is no server (tests/container/test_local_test.py runs it against real servers)."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from collections.abc import Iterator

import pytest

from support import REPO, free_port

PREDICT = REPO / "local_test" / "predict.sh"
PAYLOAD = REPO / "local_test" / "payloads" / "payload.csv"
REFUSAL = {"error": "unsupported_media_type", "message": "Content-Type 'application/foo' is not supported"}


class _Refuses(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(REFUSAL).encode()
        self.send_response(415)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _predict(port: int, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "ENDPOINT": f"http://127.0.0.1:{port}"}
    return subprocess.run([str(PREDICT), *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_refused_request_shows_the_servers_answer_and_does_not_ask_whether_it_runs(refusing_server):
    """Was `request failed (is the server running? ...)` after the server's own 415 answer."""
    result = _predict(refusing_server, str(PAYLOAD), "application/foo")
    assert result.returncode == 1
    assert json.loads(result.stdout) == REFUSAL
    assert "is the server running" not in result.stderr, result.stderr
    assert (
        "predict.sh: the server answered with an error: its JSON body above says what is wrong"
        in result.stderr
    )


def test_no_server_is_named_as_such():
    port = free_port()
    result = _predict(port, str(PAYLOAD))
    assert result.returncode == 1 and result.stdout == ""
    assert (
        f"predict.sh: no answer from http://127.0.0.1:{port} (curl exit 7; is the server running?"
        in result.stderr
    )
