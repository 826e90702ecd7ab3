"""The SageMaker Python SDK v3's ModelTrainer in LOCAL_CONTAINER mode against the built image.

v3 cannot share a venv with v2 (the test extra pins v2): these tests are marked ``sdk3`` and run
from .venv-sdk3 (`make test-container-sdk3`). Without source code, ModelTrainer starts the
container with no command, so the image's default command must find the training job's layout
and train; with SourceCode, v3's own bash driver installs the requirements with the image's pip3
and runs the entry script with its python3."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dockerutil import ROLE

from support import REPO, csv_bytes

pytestmark = [pytest.mark.container, pytest.mark.sdk3]

EXAMPLE = REPO / "examples" / "byol"


def model_files(root: Path) -> dict[str, bytes]:
    """What ModelTrainer's local mode packed into compressed_artifacts/model.tar.gz."""
    with tarfile.open(root / "compressed_artifacts" / "model.tar.gz") as tar:
        return {m.name: _read(tar, m) for m in tar.getmembers() if m.isfile()}


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    extracted = tar.extractfile(member)  # None only for members that are not regular files
    assert extracted is not None, member.name
    return extracted.read()


def trainer(image: str, root: Path, **kwargs: Any) -> Any:
    from sagemaker.core.training.configs import Compute
    from sagemaker.train import ModelTrainer
    from sagemaker.train.model_trainer import Mode

    return ModelTrainer(
        training_image=image,
        training_mode=Mode.LOCAL_CONTAINER,
        role=ROLE,
        compute=Compute(instance_type="local_cpu", instance_count=1),
        local_container_root=str(root),
        **kwargs,
    )


def test_model_trainer_with_builtin_hyperparameters_only(
    image: str, sdk_env: Path, iris: pd.DataFrame, tmp_path
):
    from sagemaker.core.training.configs import InputData

    data = tmp_path / "train"
    data.mkdir()
    (data / "iris.csv").write_bytes(csv_bytes(iris, target="target"))
    root = tmp_path / "job"
    root.mkdir()
    model_trainer = trainer(image, root, hyperparameters={"algorithm": "random_forest", "n_estimators": 20})
    model_trainer.train(
        input_data_config=[InputData(channel_name="train", data_source=str(data))], wait=True, logs=False
    )
    meta = json.loads(model_files(root)["model.json"])
    assert meta["algorithm"] == "random_forest"
    assert meta["hyperparameters"]["n_estimators"] == 20
    assert meta["classes"] == ["setosa", "versicolor", "virginica"]


def test_model_trainer_with_source_code_runs_the_example(
    image: str, sdk_env: Path, iris: pd.DataFrame, tmp_path
):
    from sagemaker.core.training.configs import InputData, SourceCode

    data = tmp_path / "train"
    data.mkdir()
    (data / "iris.csv").write_bytes(csv_bytes(iris, target="target", header=True))
    root = tmp_path / "job"
    root.mkdir()
    model_trainer = trainer(
        image,
        root,
        source_code=SourceCode(
            source_dir=str(EXAMPLE), entry_script="train.py", requirements="requirements.txt"
        ),
        hyperparameters={
            "use-custom-ensemble": True,
            "ensemble-rf": True,
            "ensemble-gb": False,
            "ensemble-lr": True,
        },
    )
    model_trainer.train(
        input_data_config=[InputData(channel_name="train", data_source=str(data))], wait=True, logs=False
    )
    files = model_files(root)
    assert json.loads(files["columns.json"]) == [c for c in iris.columns if c != "target"]
    assert "model.joblib" in files
