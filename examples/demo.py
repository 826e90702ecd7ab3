"""`make demo`: the whole SageMaker round trip on this machine, without Docker.

1. trains on local_test/test_dir (laid out like /opt/ml) with the real `container/train`;
2. prints the metrics and where the model went;
3. starts the real `container/serve` (gunicorn) on a free port and waits for GET /ping;
4. sends the sample payloads as text/csv and as application/json, prints the answers;
5. stops the server with SIGTERM, as SageMaker does.
"""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "local_test" / "test_dir"
PAYLOADS = REPO / "local_test" / "payloads"
sys.path.insert(0, str(REPO / "tests"))

import support  # the project's one set of helpers to start, wait for /ping and stop train/serve


def section(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def reset_outputs(root: Path) -> None:
    """A previous run's model or failure file would stop this one (failures are never overwritten)."""
    for name in ("model", "output"):
        shutil.rmtree(root / name, ignore_errors=True)
        (root / name).mkdir()


def request(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, str]:
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if body else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


def train() -> None:
    section(f"train: SAGEMAKER_BASE_DIR={ROOT.relative_to(REPO)} container/train")
    reset_outputs(ROOT)
    result = support.run_train(ROOT, timeout=600, capture=False)
    code = result.returncode
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


def serve_and_predict() -> int:
    """Serve, send the requests, stop with SIGTERM; returns the server's exit code."""
    server, port = support.start_serve(ROOT, env={"SAGEMAKER_MODEL_SERVER_WORKERS": "2"})
    section(f"serve: container/serve on 127.0.0.1:{port}")
    try:
        support.wait_for_ping(port, server, timeout=120)
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
        output = support.stop_process(server, timeout=35)
        print(f"serve exited with {server.returncode}")
    if server.returncode != 0:
        print(output[-4000:])
    return server.returncode


def main() -> int:
    train()
    return 1 if serve_and_predict() != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
