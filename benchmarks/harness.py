"""What the benchmark scripts share: the real ``container/serve`` processes they measure, and the
commit they measured.  Process start-up, /ping and shutdown come from tests/support.py, as in the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from support import REPO, SERVE, clean_environ, free_port, terminate, wait_for_ping

WORKERS = os.cpu_count() or 1


class Server:
    """A server process whose log goes to a file (a pipe nobody drains would block it)."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int) -> None:
        self.log = tempfile.TemporaryFile()
        self.port = port
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=str(REPO))
        wait_for_ping(port, self.proc, timeout=120)

    def pids(self) -> list[int]:
        """The server's workers (gunicorn's children)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        terminate(self.proc, timeout=40)
        self.log.close()


class ContainerServer:
    """``docker run --network host IMAGE serve`` on an ML root's model directory (read-only), as
    SageMaker runs the image; stopped with ``docker stop`` (SIGTERM, then SIGKILL)."""

    def __init__(self, image: str, root: Path, env: dict[str, str], port: int) -> None:
        self.port = port
        flags = [f"--env={key}={value}" for key, value in env.items()]
        mount = ["-v", f"{root / 'model'}:/opt/ml/model:ro"]
        self.container = subprocess.run(
            ["docker", "run", "-d", "--rm", "--network", "host", *mount, *flags, image, "serve"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        try:
            wait_for_ping(port, timeout=180)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        subprocess.run(["docker", "stop", "-t", "30", self.container], capture_output=True, check=False)


def byoc_server(
    root: Path, workers: int = WORKERS, image: str | None = None, **extra: str
) -> Server | ContainerServer:
    """``container/serve`` on ``root`` (an ML root) with ``workers`` workers and ``extra`` settings;
    inside the built ``image`` when one is named."""
    port = free_port()
    if image is not None:
        settings = {"SAGEMAKER_BIND_TO_PORT": str(port), "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}
        return ContainerServer(image, root, {**settings, **extra}, port)
    env = clean_environ(
        None,
        SAGEMAKER_BASE_DIR=str(root),
        SAGEMAKER_BIND_TO_PORT=str(port),
        SAGEMAKER_MODEL_SERVER_WORKERS=str(workers),
        **extra,
    )
    return Server([sys.executable, str(SERVE)], env, port)


def commit() -> str:
    """The checkout's short commit, printed beside the figures."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    return out.stdout.strip() or "unknown"
