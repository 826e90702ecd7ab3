"""`make demo`: the whole SageMaker round trip on this machine, without Docker.

1. trains on local_test/test_dir (laid out like /opt/ml) with the real `container/train`;
2. prints the metrics and where the model went;
3. starts the real `container/serve` (gunicorn) on a free port and waits for GET /ping;
4. sends the sample payloads as text/csv and as application/json, prints the answers;
5. stops the server with SIGTERM, as SageMaker does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "local_test" / "test_dir"
PAYLOADS = REPO / "local_test" / "payloads"


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def reset_outputs(root: Path) -> None:
    """A previous run's model or failure file would stop this one (failures are never overwritten)."""
    for name in ("model", "output"):
        shutil.rmtree(root / name, ignore_errors=True)
        (root / name).mkdir()


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
    env.update(PYTHONUNBUFFERED="1", SAGEMAKER_BASE_DIR=str(ROOT), **extra)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def request(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, str]:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def wait_for_ping(port: int, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"serve exited with {server.returncode} before /ping passed")
        try:
            if request(f"http://127.0.0.1:{port}/ping")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"/ping did not pass within {timeout:.0f}s")


def train() -> None:
    section(f"train: SAGEMAKER_BASE_DIR={ROOT.relative_to(REPO)} container/train")
    reset_outputs(ROOT)
    code = subprocess.call([sys.executable, str(REPO / "container" / "train")], env=environ())
    if code != 0:
        failure = ROOT / "output" / "failure"
        raise SystemExit(f"train failed ({code}): {failure.read_text() if failure.exists() else ''}")
    metrics = json.loads((ROOT / "output" / "data" / "metrics.json").read_text())
    section("metrics (output/data/metrics.json)")
    print(json.dumps(metrics, indent=2))
    model = ROOT / "model"
    print(
        f"\nmodel written to {model.relative_to(REPO)}/: "
        + ", ".join(f"{p.name} ({p.stat().st_size:,} bytes)" for p in sorted(model.iterdir()))
    )


def serve_and_predict() -> None:
    port = free_port()
    section(f"serve: container/serve on 127.0.0.1:{port}")
    log = tempfile.TemporaryFile()
    server = subprocess.Popen(
        [sys.executable, str(REPO / "container" / "serve")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environ(SAGEMAKER_BIND_TO_PORT=str(port), SAGEMAKER_MODEL_SERVER_WORKERS="2"),
    )
    try:
        wait_for_ping(port, server)
        print("GET /ping -> 200")
        status, _, body = request(f"http://127.0.0.1:{port}/execution-parameters")
        print(f"GET /execution-parameters -> {status} {body}")
        calls = [
            ("payload.csv", "text/csv", "text/csv", None),
            ("records.json", "application/json", "application/json", "output=predicted_label,probability"),
        ]
        for name, content_type, accept, attributes in calls:
            payload = (PAYLOADS / name).read_bytes()
            headers = {"Content-Type": content_type, "Accept": accept}
            if attributes:
                headers["X-Amzn-SageMaker-Custom-Attributes"] = attributes
            status, ctype, body = request(f"http://127.0.0.1:{port}/invocations", payload, headers)
            shown = ", ".join(f"{k}: {v}" for k, v in headers.items() if k != "Accept")
            section(f"POST /invocations {name} ({shown}; Accept: {accept})")
            print(f"-> {status} {ctype}")
            print(body if len(body) < 2000 else body[:2000] + " ...")
            if status != 200:
                raise SystemExit(f"{name}: unexpected status {status}")
    finally:
        section("stop: SIGTERM to the server")
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(timeout=35)
        except subprocess.TimeoutExpired:
            server.kill()
            code = server.wait()
        print(f"serve exited with {code}")
        log.close()


def main() -> int:
    train()
    serve_and_predict()
    return 0


if __name__ == "__main__":
    sys.exit(main())
