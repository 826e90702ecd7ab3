"""The built image driven the way SageMaker drives it: `docker run IMAGE train|serve` with /opt/ml mounted."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dockerutil import (
    container_state,
    docker,
    host_port,
    logs,
    post,
    run_container,
    start_container,
    wait_for_log,
    wait_for_ping,
    writable_ml_root,
)

from support import REPO, csv_bytes, make_ml_root, model_dir_entries, parquet_bytes, read_failure

pytestmark = pytest.mark.container

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


# ------------------------------------------------------------------------------------- the image
def test_image_declares_the_sagemaker_contract(image: str) -> None:
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONUNBUFFERED"] == "1" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert config["Entrypoint"][0].endswith("tini"), "PID 1 must forward SIGTERM and reap children"
    assert not any(v.startswith("/opt/ml") for v in (config.get("Volumes") or {}))


# SageMaker may run the image as a non-root uid on a read-only root file system.
NON_ROOT_READ_ONLY = ("--user", "1000:1000", "--read-only", "--tmpfs", "/tmp", "-e", "HOME=/nonexistent")


def test_nothing_is_baked_under_opt_ml_and_other_commands_run_as_given(image: str) -> None:
    result = run_container(
        "IMAGE",
        "python",
        "-c",
        "import os, sklearn, pandas, pyarrow; print(os.path.exists('/opt/ml'), sklearn.__version__)",
    )
    assert result.returncode == 0, result.stderr
    exists, version = result.stdout.split()
    assert exists == "False"
    assert version.startswith("1.")


def test_runtime_has_no_compilers_but_keeps_pip_for_extension(image: str) -> None:
    result = run_container("IMAGE", "sh", "-c", "command -v gcc cc g++ || true; python -m pip --version")
    assert result.returncode == 0, result.stderr
    assert "gcc" not in result.stdout and "/opt/venv" in result.stdout


def test_serve_without_a_model_fails_fast_with_a_message(image: str, tmp_path: Path) -> None:
    root = tmp_path / "ml"
    (root / "model").mkdir(parents=True)
    result = run_container("-v", f"{root}:/opt/ml", "IMAGE", "serve", timeout=120)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "/opt/ml/model" in out and "Traceback" not in out, out


def test_train_help_lists_hyperparameters(image: str) -> None:
    result = run_container("IMAGE", "train", "--help")
    assert result.returncode == 0, result.stderr
    assert "n_estimators" in result.stdout and "algorithm" in result.stdout


# ------------------------------------------------------------------------------------- training
def test_train_with_opt_ml_mounted_writes_model_and_metrics(trained_root: Path) -> None:
    meta = json.loads((trained_root / "model" / "model.json").read_text())
    assert meta["problem_type"] == "multiclass_classification"
    assert meta["classes"] == ["setosa", "versicolor", "virginica"]
    metrics = json.loads((trained_root / "output" / "data" / "metrics.json").read_text())
    flat = json.dumps(metrics)
    assert "accuracy" in flat
    assert read_failure(trained_root) is None


def test_train_on_local_test_data(image: str, tmp_path: Path) -> None:
    """local_test/test_dir is what train_local.sh mounts: it must train as shipped."""
    source = REPO / "local_test" / "test_dir"
    assert (source / "input" / "config" / "hyperparameters.json").is_file(), "local_test/test_dir is missing"
    root = tmp_path / "ml"
    shutil.copytree(source / "input", root / "input")
    result = run_container("-v", f"{root}:/opt/ml", "IMAGE", "train")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "model" / "model.joblib").is_file()


def test_train_as_non_root_on_a_read_only_image(image: str, tmp_path: Path, iris: pd.DataFrame) -> None:
    """--user 1000:1000 with no HOME and a read-only root filesystem: only /opt/ml and /tmp are written."""
    root = writable_ml_root(
        make_ml_root(
            tmp_path / "ml",
            channels={"train": {"iris.csv": csv_bytes(iris, target="target")}},
            hyperparameters={"n_jobs": 2},
        )
    )
    result = run_container(
        *NON_ROOT_READ_ONLY,
        "-v",
        f"{root}:/opt/ml",
        "IMAGE",
        "train",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (root / "model" / "model.joblib").stat().st_uid == 1000


def test_bad_input_writes_failure_file_and_exits_non_zero(
    image: str, tmp_path: Path, iris: pd.DataFrame
) -> None:
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {"iris.csv": csv_bytes(iris, target="target")}},
        hyperparameters={"algorithm": "random_forest", "n_estimators": -3},
    )
    result = run_container("-v", f"{root}:/opt/ml", "IMAGE", "train")
    assert result.returncode == 1, result.stdout + result.stderr
    failure = read_failure(root)
    assert failure is not None and "n_estimators" in failure.splitlines()[0]
    assert not (root / "model" / "model.joblib").exists()


def test_docker_stop_during_training_leaves_failure_file_and_no_model(image: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, 20))
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(20)])
    frame.insert(0, "y", (X[:, 0] + rng.normal(size=20000) > 0).astype(int))
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {"big.csv": csv_bytes(frame, target="y")}},
        hyperparameters={"algorithm": "random_forest", "n_estimators": 5000, "n_jobs": 1},
    )
    cid = start_container("-v", f"{root}:/opt/ml", "IMAGE", "train")
    wait_for_log(cid, "fitting started")
    docker("stop", "-t", "30", cid, timeout=90)  # SIGTERM as StopTrainingJob sends it
    state = container_state(cid)
    assert state["ExitCode"] == 143, f"expected 128+SIGTERM, got {state['ExitCode']}:\n{logs(cid)}"
    failure = read_failure(root)
    assert failure is not None and failure.startswith("Training job stopped by SIGTERM"), failure
    assert "model.joblib" not in model_dir_entries(root)


# ------------------------------------------------------------------------------------- serving
@pytest.fixture(scope="module")
def server(trained_root: Path) -> tuple[str, int]:
    cid = start_container("-p", "127.0.0.1::8080", "-v", f"{trained_root}:/opt/ml", "IMAGE", "serve")
    port = host_port(cid)
    wait_for_ping(cid, port)
    yield cid, port
    docker("rm", "-f", cid, check=False)


def _check_labels(labels: list, iris: pd.DataFrame) -> None:
    expected = list(iris["target"].iloc[:10])
    assert len(labels) == 10
    assert sum(a == b for a, b in zip(labels, expected, strict=True)) >= 9, (labels, expected)


def test_serve_ping(server: tuple[str, int]) -> None:
    assert _get_status(server[1])[0] == 200


def test_serve_csv_in_csv_out(server: tuple[str, int], iris: pd.DataFrame) -> None:
    body = iris[FEATURES].iloc[:10].to_csv(index=False, header=False).encode()
    status, ctype, out = post(server[1], body, "text/csv; charset=utf-8", "text/csv")
    assert status == 200, out
    assert ctype.startswith("text/csv")
    _check_labels([row[0] for row in csv.reader(io.StringIO(out.decode()))], iris)


def test_serve_json(server: tuple[str, int], iris: pd.DataFrame) -> None:
    # Trained on headerless CSV, so the model knows positions, not names: send rows.
    body = json.dumps({"instances": iris[FEATURES].iloc[:10].to_numpy().tolist()}).encode()
    status, ctype, out = post(server[1], body, "application/json", "application/json")
    assert status == 200, out
    assert ctype.startswith("application/json")
    _check_labels([p["predicted_label"] for p in json.loads(out)["predictions"]], iris)


def test_serve_jsonlines(server: tuple[str, int], iris: pd.DataFrame) -> None:
    body = iris[FEATURES].iloc[:10].to_json(orient="values").encode()
    lines = b"\n".join(json.dumps(row).encode() for row in json.loads(body))
    status, _, out = post(server[1], lines, "application/jsonlines", "application/jsonlines")
    assert status == 200, out
    _check_labels([json.loads(line)["predicted_label"] for line in out.splitlines() if line.strip()], iris)


def test_serve_parquet_and_npy(server: tuple[str, int], iris: pd.DataFrame) -> None:
    table = (
        iris[FEATURES].iloc[:10].set_axis([f"f{i}" for i in range(4)], axis=1)
    )  # headerless training's names
    status, _, out = post(server[1], parquet_bytes(table), "application/x-parquet", "application/json")
    assert status == 200, out
    _check_labels([p["predicted_label"] for p in json.loads(out)["predictions"]], iris)
    buf = io.BytesIO()
    np.save(buf, iris[FEATURES].iloc[:10].to_numpy())
    status, _, out = post(server[1], buf.getvalue(), "application/x-npy", "application/json")
    assert status == 200, out
    _check_labels([p["predicted_label"] for p in json.loads(out)["predictions"]], iris)


def test_serve_client_errors_are_4xx_json(server: tuple[str, int]) -> None:
    status, ctype, out = post(server[1], b"1,2,3,4", "application/x-unknown")
    assert status == 415 and ctype.startswith("application/json"), (status, out)
    status, ctype, out = post(server[1], b"1,2\n", "text/csv")
    assert status == 400 and ctype.startswith("application/json"), (status, out)
    assert "Traceback" not in out.decode()


def test_serve_stops_cleanly_on_docker_stop(trained_root: Path) -> None:
    cid = start_container("-p", "127.0.0.1::8080", "-v", f"{trained_root}:/opt/ml", "IMAGE", "serve")
    wait_for_ping(cid, host_port(cid))
    docker("stop", "-t", "30", cid, timeout=90)
    state = container_state(cid)
    # 137 would mean docker had to SIGKILL after the 30 s grace period.
    assert state["ExitCode"] == 0, f"exit {state['ExitCode']}:\n{logs(cid)}"


def test_serve_as_non_root_read_only(trained_root: Path, iris: pd.DataFrame) -> None:
    writable_ml_root(trained_root)  # pytest's tmp dirs are 0700; SageMaker's /opt/ml is world-readable
    cid = start_container(
        *NON_ROOT_READ_ONLY,
        "-p",
        "127.0.0.1::8080",
        "-v",
        f"{trained_root}:/opt/ml:ro",
        "IMAGE",
        "serve",
    )
    port = host_port(cid)
    wait_for_ping(cid, port)
    body = iris[FEATURES].iloc[:10].to_csv(index=False, header=False).encode()
    status, _, out = post(port, body, "text/csv", "application/json")
    assert status == 200, out
    _check_labels([p["predicted_label"] for p in json.loads(out)["predictions"]], iris)
    docker("stop", "-t", "30", cid, timeout=90)
    assert container_state(cid)["ExitCode"] == 0, logs(cid)


def test_serve_honours_sagemaker_bind_to_port(trained_root: Path) -> None:
    cid = start_container(
        "-e",
        "SAGEMAKER_BIND_TO_PORT=9090",
        "-p",
        "127.0.0.1::9090",
        "-p",
        "127.0.0.1::8080",
        "-v",
        f"{trained_root}:/opt/ml",
        "IMAGE",
        "serve",
    )
    wait_for_ping(cid, host_port(cid, 9090))
    status, _, _ = _get_status(host_port(cid, 8080))
    assert status is None, "nothing may listen on 8080 when SAGEMAKER_BIND_TO_PORT is set"
    docker("stop", "-t", "30", cid, timeout=90)


def _get_status(port: int) -> tuple[int | None, str, bytes]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as resp:
            return resp.status, "", b""
    except urllib.error.HTTPError as err:
        return err.code, "", b""
    except OSError:
        return None, "", b""
