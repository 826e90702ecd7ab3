"""Fixtures for tests that run the built image (all marked ``container``; `make test-container`).

The image comes from BYOC_IMAGE (default ``byoc-sklearn``): build it first (see .ci/run). A missing
image or engine fails the tests instead of skipping them: CI must not pass without the container.
Every container started here carries the label ``byoc-test=<session>`` and is removed at the end.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from dockerutil import (
    IMAGE,
    SDK_CONFIG,
    SESSION_LABEL,
    containers_of,
    docker,
    run_container,
)
from sklearn.datasets import load_iris

from support import csv_bytes, free_port, make_ml_root, moto_server


@pytest.hookimpl(
    tryfirst=True
)  # before -m deselects: a test here without pytestmark is still a container test
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.container)


@pytest.fixture(scope="session")
def image() -> Iterator[str]:
    if shutil.which("docker") is None:
        pytest.fail(
            "docker CLI not found: container tests need Docker (scripts/docker-engine.sh installs it)"
        )
    if docker("info", check=False, timeout=30).returncode != 0:
        pytest.fail("cannot reach the Docker engine: start it (scripts/docker-engine.sh)")
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        pytest.fail(f"image {IMAGE!r} not built: docker build -t {IMAGE} . (or set BYOC_IMAGE)")
    yield IMAGE
    ids = docker("ps", "-aq", "--filter", f"label={SESSION_LABEL}", check=False).stdout.split()
    if ids:
        docker("rm", "-f", *ids, check=False)


@pytest.fixture(scope="session")
def iris() -> pd.DataFrame:
    data = load_iris(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["target"] = data.target_names[data.target]
    return frame


@pytest.fixture(scope="session")
def iris_root(tmp_path_factory: pytest.TempPathFactory, iris: pd.DataFrame) -> Path:
    """An ML root like SageMaker's: headerless CSV, target first, JSON-encoded hyperparameters."""
    root = tmp_path_factory.mktemp("iris-ml")
    return make_ml_root(
        root,
        channels={
            "train": {"iris.csv": csv_bytes(iris.iloc[::2], target="target")},
            "validation": {"iris.csv": csv_bytes(iris.iloc[1::2], target="target")},
        },
        hyperparameters={"algorithm": "random_forest", "n_estimators": 50, "n_jobs": 1},
        content_types={"train": "text/csv", "validation": "text/csv"},
    )


@pytest.fixture(scope="session")
def trained_root(image: str, iris_root: Path) -> Path:
    """iris_root after `docker run -v root:/opt/ml IMAGE train` succeeded (shared by serve tests)."""
    result = run_container("-v", f"{iris_root}:/opt/ml", "IMAGE", "train")
    assert result.returncode == 0, f"train failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    assert (iris_root / "model" / "model.joblib").is_file()
    return iris_root


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def sdk_env(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Dummy AWS identity, telemetry off, compose on PATH; the SDK reads all of these from the environment.

    Local mode leaves its stopped compose containers and its network behind: removed afterwards.
    """
    if shutil.which("docker-compose") is None and docker("compose", "version", check=False).returncode != 0:
        pytest.fail(
            "docker compose is not installed: apt-get install -y docker-compose (scripts/docker-engine.sh)"
        )
    base = tmp_path_factory.mktemp("sdk")
    config = base / "sagemaker-config.yaml"
    config.write_text(SDK_CONFIG)
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            mp.delenv(key, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "testing")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        mp.setenv("AWS_DEFAULT_REGION", "us-west-2")
        mp.setenv("AWS_REGION", "us-west-2")
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
        mp.setenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", str(config))
        mp.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        before = set(containers_of(image))
        had_network = docker("network", "inspect", "sagemaker-local", check=False).returncode == 0
        try:
            yield base
        finally:
            leftovers = [c for c in containers_of(image) if c not in before]
            if leftovers:
                docker("rm", "-f", *leftovers, check=False)
            if not had_network:
                docker("network", "rm", "sagemaker-local", check=False)


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with moto_server() as url:
        yield url
