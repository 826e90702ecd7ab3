"""local_test/*.sh as the README tells users to run them: train, serve, predict every sample payload.

Both modes: with an image name (Docker, test_dir mounted at /opt/ml) and without (.venv entry points).
They run against a copy of local_test/test_dir (BYOC_TEST_DIR) so the checkout stays clean.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from dockerutil import SESSION_LABEL

from support import REPO, free_port, wait_for_ping

pytestmark = pytest.mark.container

LOCAL_TEST = REPO / "local_test"
PAYLOADS = sorted((LOCAL_TEST / "payloads").iterdir())


def script_env(test_dir: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_"))}
    env.update(BYOC_TEST_DIR=str(test_dir), PORT=str(port), DOCKER_RUN_ARGS=f"--label {SESSION_LABEL}")
    return env


@pytest.fixture(params=["docker", "venv"], scope="module")
def served(request: pytest.FixtureRequest, image: str, tmp_path_factory: pytest.TempPathFactory):
    """train_local.sh then serve_local.sh (in the background) in one mode; yields the port."""
    mode_args = [image] if request.param == "docker" else []
    test_dir = tmp_path_factory.mktemp(f"test_dir_{request.param}") / "test_dir"
    shutil.copytree(LOCAL_TEST / "test_dir", test_dir, ignore=shutil.ignore_patterns("model", "output"))
    port = free_port()
    env = script_env(test_dir, port)

    trained = subprocess.run(
        [str(LOCAL_TEST / "train_local.sh"), *mode_args], env=env, capture_output=True, text=True, timeout=600
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert (test_dir / "model" / "model.joblib").is_file()
    assert not (test_dir / "output" / "failure").exists()

    server = subprocess.Popen(
        [str(LOCAL_TEST / "serve_local.sh"), *mode_args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # in docker mode dockerd's proxy holds the port, not serve_local.sh's `docker run`
        wait_for_ping(port, server, timeout=120, own_port=request.param != "docker")
        yield request.param, env, server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)  # docker run proxies it to the container
            try:
                server.wait(timeout=40)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def predict(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LOCAL_TEST / "predict.sh"), *args], env=env, capture_output=True, text=True, timeout=90
    )


def test_payloads_exist_in_several_content_types() -> None:
    assert {p.suffix for p in PAYLOADS} >= {".csv", ".json", ".jsonl", ".parquet"}


@pytest.mark.parametrize("payload", PAYLOADS, ids=lambda p: p.name)
def test_predict_every_sample_payload(served, payload: Path) -> None:
    _, env, _ = served
    result = predict(env, str(payload))
    assert result.returncode == 0, result.stdout + result.stderr
    body = result.stdout.strip()
    rows = 5
    if body.startswith('{"predictions"'):
        labels = [p["predicted_label"] for p in json.loads(body)["predictions"]]
    elif body.startswith("{"):
        labels = [json.loads(line)["predicted_label"] for line in body.splitlines()]
    else:
        labels = [line.split(",")[0] for line in body.splitlines()]
    assert len(labels) == rows
    assert set(labels) <= {"yes", "no"}, body


def test_predict_with_explicit_content_type_and_accept(served) -> None:
    _, env, _ = served
    result = predict(env, str(LOCAL_TEST / "payloads" / "payload.csv"), "text/csv", "application/jsonlines")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(lines) == 5 and all(line["predicted_label"] in ("yes", "no") for line in lines)


def test_predict_reports_a_client_error_clearly(served, tmp_path: Path) -> None:
    _, env, _ = served
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n")
    result = predict(env, str(bad))
    assert result.returncode != 0
    assert "returned error: 400" in result.stderr, result.stderr  # curl --fail-with-body's status line
    body = json.loads(result.stdout.strip())  # the server's JSON error, not a traceback
    assert body["error"] == "wrong_column_count", body
    assert "row 1 has 2 values" in body["message"] and body["request_id"], body


def test_scripts_explain_missing_prerequisites(tmp_path: Path) -> None:
    env = script_env(tmp_path / "nowhere", free_port())
    result = subprocess.run([str(LOCAL_TEST / "train_local.sh")], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "not laid out like /opt/ml" in result.stderr
    env["BYOC_TEST_DIR"] = str(LOCAL_TEST / "test_dir")
    result = subprocess.run(
        [str(LOCAL_TEST / "train_local.sh"), "no-such-image-byoc"], env=env, capture_output=True, text=True
    )
    assert result.returncode != 0 and "docker build -t no-such-image-byoc" in result.stderr
    result = predict(env, str(tmp_path / "missing.csv"))
    assert result.returncode != 0 and "no such payload file" in result.stderr
