"""Helpers for the container tests: the docker CLI, labelled containers, HTTP against a served port."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from support import answers, free_port, wait_for

IMAGE = os.environ.get("BYOC_IMAGE", "byoc-sklearn")
SESSION_LABEL = f"byoc-test={uuid.uuid4().hex[:12]}"


def docker(
    *args: str, check: bool = True, timeout: float = 600, input: str | None = None
) -> subprocess.CompletedProcess:
    """The docker CLI, output captured as text; a failure shows what docker said."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def writable_ml_root(root: Path) -> Path:
    """Let any uid write model/ and output/ (for `--user 1000:1000` against a root-owned tmp dir)."""
    for path in [root, *root.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    return root


def run_container(*args: str, image: str = IMAGE, timeout: float = 600) -> subprocess.CompletedProcess:
    """`docker run --rm` (labelled for cleanup) and wait; `args` hold the literal "IMAGE"."""
    return docker(
        "run", "--rm", "--label", SESSION_LABEL, *_split_image(args, image), check=False, timeout=timeout
    )


def _split_image(args: Sequence[str], image: str) -> list[str]:
    """`args` are docker-run options, then the literal "IMAGE", then the command."""
    args = list(args)
    i = args.index("IMAGE")
    return [*args[:i], image, *args[i + 1 :]]


def start_container(*args: str, image: str = IMAGE) -> str:
    """`docker run -d` (labelled for cleanup); returns the container id."""
    return docker("run", "-d", "--label", SESSION_LABEL, *_split_image(args, image)).stdout.strip()


def container_state(cid: str) -> dict:
    return json.loads(docker("inspect", "--format", "{{json .State}}", cid).stdout)


def logs(cid: str) -> str:
    proc = docker("logs", cid, check=False)
    return proc.stdout + proc.stderr


def running(cid: str, what: str) -> bool:
    """True while the container runs; once it has exited, AssertionError with its logs."""
    if container_state(cid)["Running"]:
        return True
    raise AssertionError(f"container exited before {what}:\n{logs(cid)}")


def wait_for_log(cid: str, needle: str, timeout: float = 120) -> str:
    what = f"logging {needle!r}"

    def logged() -> str:
        out = logs(cid)
        if needle in out:
            return out
        running(cid, what)  # raises once the container has exited
        return ""

    return wait_for(logged, what, timeout, detail=lambda: logs(cid))


def host_port(cid: str, container_port: int = 8080) -> int:
    out = docker("port", cid, f"{container_port}/tcp").stdout.strip().splitlines()[0]
    return int(out.rsplit(":", 1)[1])


def wait_for_ping(cid: str, port: int, timeout: float = 120) -> None:
    url = f"http://127.0.0.1:{port}/ping"
    passing = f"/ping passing on port {port}"
    wait_for(lambda: running(cid, passing) and answers(url), passing, timeout, detail=lambda: logs(cid))


def post(
    port: int, body: bytes, content_type: str, accept: str | None = None, path: str = "/invocations"
) -> tuple[int, str, bytes]:
    """POST and return (status, content type, body) whatever the status."""
    headers = {"Content-Type": content_type}
    if accept:
        headers["Accept"] = accept
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body, headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read()


# -- the SageMaker Python SDK in local mode ------------------------------------------------------

ROLE = "arn:aws:iam::111111111111:role/SageMakerRole"
SDK_CONFIG = """\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


def containers_of(image: str) -> list[str]:
    return docker("ps", "-aq", "--no-trunc", "--filter", f"ancestor={image}", check=False).stdout.split()


def local_session(root: Path) -> Any:
    from sagemaker.local import LocalSession

    session = LocalSession()
    session.config = {"local": {"local_code": True, "container_root": str(root), "serving_port": free_port()}}
    return session
