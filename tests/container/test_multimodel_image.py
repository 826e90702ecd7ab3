"""The image as a multi-model endpoint: ``docker run -e SAGEMAKER_MULTI_MODEL=true IMAGE serve`` with
models under /opt/ml/models, driven through SageMaker's documented container API.

The SageMaker Python SDK's local mode cannot drive this: its local endpoint mounts one model at
/opt/ml/model and sends every request to /invocations (TargetModel only becomes a header), so it
never calls /models.  These tests make the calls SageMaker makes.
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from dockerutil import docker, host_port, logs, post, start_container, wait_for_ping

from support import save_constant_model

MEMORY_LIMIT_MB = 1024


def call(port: int, method: str, path: str, document: dict | None = None) -> tuple[int, dict]:
    data = json.dumps(document).encode() if document is not None else None
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture(scope="module")
def models_dir(trained_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/opt/ml/models as SageMaker lays it out: <name>/model/ holding the extracted model.tar.gz."""
    models = tmp_path_factory.mktemp("models")
    shutil.copytree(trained_root / "model", models / "iris" / "model")
    for i in range(3):
        save_constant_model(models / f"constant-{i}" / "model", 100 + i)
    for path in [models, *models.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return models


@pytest.fixture(scope="module")
def endpoint(models_dir: Path) -> tuple[str, int]:
    cid = start_container(
        "-p",
        "127.0.0.1::8080",
        "--memory",
        f"{MEMORY_LIMIT_MB}m",
        "-e",
        "SAGEMAKER_MULTI_MODEL=true",
        "-v",
        f"{models_dir}:/opt/ml/models:ro",
        "IMAGE",
        "serve",
    )
    port = host_port(cid)
    wait_for_ping(cid, port)
    yield cid, port
    docker("rm", "-f", cid, check=False)


def test_image_declares_multi_model_support(image: str) -> None:
    labels = json.loads(docker("image", "inspect", "--format", "{{json .Config.Labels}}", image).stdout)
    assert labels["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"


def test_budget_follows_the_containers_memory_limit(endpoint: tuple[str, int]) -> None:
    cid, _ = endpoint
    assert f"models may take {MEMORY_LIMIT_MB / 2:.1f} MiB in all" in logs(cid)


def test_sagemaker_calls_load_list_invoke_unload(endpoint: tuple[str, int], iris: pd.DataFrame) -> None:
    _, port = endpoint
    for name in ("iris", "constant-0", "constant-1", "constant-2"):
        status, body = call(
            port, "POST", "/models", {"model_name": name, "url": f"/opt/ml/models/{name}/model"}
        )
        assert status == 200, body
    status, body = call(port, "POST", "/models", {"model_name": "iris", "url": "/opt/ml/models/iris/model"})
    assert status == 409 and body["error"] == "model_already_loaded"
    status, body = call(port, "POST", "/models", {"model_name": "gone", "url": "/opt/ml/models/gone/model"})
    assert status == 404 and body["error"] == "model_not_found"

    names, token = [], None
    while True:
        status, page = call(port, "GET", "/models?limit=3" + (f"&next_page_token={token}" if token else ""))
        assert status == 200
        names += [m["modelName"] for m in page["models"]]
        token = page.get("nextPageToken")
        if token is None:
            break
    assert names == ["constant-0", "constant-1", "constant-2", "iris"]
    assert call(port, "GET", "/models/iris") == (
        200,
        {"modelName": "iris", "modelUrl": "/opt/ml/models/iris/model"},
    )

    rows = iris.drop(columns=["target"]).iloc[:10]
    status, content_type, body = post(
        port,
        rows.to_csv(header=False, index=False).encode(),
        "text/csv",
        "text/csv",
        path="/models/iris/invoke",
    )
    assert status == 200 and content_type.startswith("text/csv")
    labels = body.decode().split()
    assert sum(a == b for a, b in zip(labels, iris["target"].iloc[:10], strict=True)) >= 9
    for i in range(3):
        status, _, body = post(
            port, b"1\n", "text/csv", "application/json", path=f"/models/constant-{i}/invoke"
        )
        assert status == 200 and json.loads(body)["predictions"][0]["predicted_label"] == 100 + i

    assert call(port, "DELETE", "/models/constant-1")[0] == 200
    assert call(port, "DELETE", "/models/constant-1")[0] == 404
    status, _, body = post(port, b"1\n", "text/csv", path="/models/constant-1/invoke")
    assert status == 404 and json.loads(body)["error"] == "model_not_loaded"
    assert (
        call(port, "POST", "/models", {"model_name": "constant-1", "url": "/opt/ml/models/constant-1/model"})[
            0
        ]
        == 200
    )
    status, _, body = post(port, b"1\n", "text/csv", "application/json", path="/models/constant-1/invoke")
    assert status == 200 and json.loads(body)["predictions"][0]["predicted_label"] == 101
