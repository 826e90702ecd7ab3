"""tests/support.py's server start-up check: a 200 on the port counts only from our own server."""

from __future__ import annotations

import subprocess
import sys

import support

LISTEN = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
    "print('up', flush=True); time.sleep(60)\n"
)


def listener(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", LISTEN, str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
    return proc


def test_a_port_another_process_holds_is_not_our_servers():
    port = support.free_port()
    ours, other = listener(port), None
    try:
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        assert support.listens_on(ours, port)
        assert not support.listens_on(other, port)  # it answers nothing there: another's port
        assert not support.listens_on(ours, support.free_port())
    finally:
        for proc in (ours, other):
            if proc is not None:
                proc.kill()
                proc.wait()
