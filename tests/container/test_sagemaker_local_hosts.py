"""algorithm=auto on two hosts through the SageMaker Python SDK (v2) in local mode.

Local mode with instance_count=2 starts the image twice with docker compose, as hosts
algo-1-<id> and algo-2-<id> on one network, each with its own /opt/ml (the data copied to both,
as FullyReplicated does); the first host runs the Dask scheduler and writes the model.
"""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dockerutil import ROLE, local_session

from support import csv_bytes

pytestmark = pytest.mark.container


def test_auto_spreads_its_candidates_over_two_local_mode_hosts(
    image: str, sdk_env: Path, iris: pd.DataFrame, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from sagemaker.estimator import Estimator

    train = sdk_env / "data" / "hosts-train"
    train.mkdir(parents=True)
    (train / "iris.csv").write_bytes(csv_bytes(iris, target="target", header=True))
    root = sdk_env / "containers-hosts"
    root.mkdir()
    estimator: Any = Estimator(
        image_uri=image,
        role=ROLE,
        instance_count=2,
        instance_type="local",
        output_path=f"file://{sdk_env / 'output-hosts'}",
        sagemaker_session=local_session(root),
        hyperparameters={
            "algorithm": "auto",
            "target": "target",
            # ends after 4 candidates; the budget covers two cold containers on a busy 2-core machine
            "max_runtime_seconds": 300,
            "max_candidates": 4,
        },
    )
    estimator.fit({"train": f"file://{train}"}, wait=True, logs=False)
    out = capsys.readouterr().out

    hosts = sorted(set(re.findall(r"auto candidate \d+: \S+: .* on (algo-\d-\w+); elapsed", out)))
    assert [h.split("-")[1] for h in hosts] == ["1", "2"], out[-5000:]
    assert re.search(r"algo-2-\w+ .*the scheduler on algo-1-\w+ closed \(the job is done\)", out), out[-5000:]

    with tarfile.open(estimator.model_data.replace("file://", "")) as tar:
        tar.extractall(tmp_path, filter="data")
    meta = json.loads((tmp_path / "model.json").read_text())
    assert meta["algorithm"] == "auto" and (tmp_path / "model.joblib").is_file()
    assert meta["classes"] == ["setosa", "versicolor", "virginica"]
