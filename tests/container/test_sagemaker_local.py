"""The SageMaker Python SDK (v2) in local mode, driving the image as a user would.

Local mode runs the image the way SageMaker does (docker compose, the three config files, /opt/ml
mounted, model.tar.gz between training and hosting, /execution-parameters and line-split batches for
transform). No AWS account is touched: dummy credentials and region, telemetry opted out through the
SDK's config file, file:// inputs and outputs, local code.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dockerutil import ROLE, local_session

from support import csv_bytes

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def iris_split(sdk_env: Path, iris: pd.DataFrame) -> dict[str, Any]:
    """train/validation channels as the built-in algorithms take them (directories), a headerless batch
    input, and the batch's true labels (a list)."""
    shuffled = iris.sample(frac=1.0, random_state=0).reset_index(drop=True)
    dirs: dict[str, Any] = {}
    for name, part in (("train", shuffled.iloc[:110]), ("validation", shuffled.iloc[110:130])):
        d = sdk_env / "data" / name
        d.mkdir(parents=True)
        (d / f"{name}.csv").write_bytes(csv_bytes(part, target="target"))
        dirs[name] = d
    holdout = shuffled.iloc[130:]
    batch = sdk_env / "data" / "batch"
    batch.mkdir()
    holdout.drop(columns=["target"]).to_csv(batch / "holdout.csv", index=False, header=False)
    dirs["batch"] = batch
    dirs["holdout_labels"] = holdout["target"].tolist()
    return dirs


@pytest.fixture(scope="module")
def estimator(image: str, sdk_env: Path, iris_split: dict[str, Any]) -> Any:
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    from byoc import metrics

    root = sdk_env / "containers"
    root.mkdir()
    est = Estimator(
        image_uri=image,
        role=ROLE,
        instance_count=1,
        instance_type="local",
        output_path=f"file://{sdk_env / 'output'}",
        sagemaker_session=local_session(root),
        metric_definitions=metrics.metric_definitions(),
        # A user's mix: a value they JSON-encoded themselves, plain ints, None (the SDK str()s each).
        hyperparameters={
            "algorithm": json.dumps("random_forest"),
            "n_estimators": 40,
            "max_depth": None,
            "random_state": 7,
        },
    )
    est.fit(
        {
            "train": f"file://{iris_split['train']}",
            "validation": TrainingInput(f"file://{iris_split['validation']}", content_type="text/csv"),
        },
        wait=True,
        logs=False,
    )
    return est


@pytest.fixture(scope="module")
def model_dir(estimator: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model.tar.gz from fit, unpacked as SageMaker unpacks it into the serving container."""
    target = tmp_path_factory.mktemp("model")
    with tarfile.open(estimator.model_data.replace("file://", "")) as tar:
        tar.extractall(target, filter="data")
    return target


def test_fit_writes_model_tar_gz_with_the_hyperparameters_given(estimator: Any, model_dir: Path) -> None:
    assert estimator.model_data.startswith("file://") and estimator.model_data.endswith("model.tar.gz")
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["algorithm"] == "random_forest"
    assert meta["hyperparameters"]["n_estimators"] == 40
    assert meta["hyperparameters"]["max_depth"] is None
    assert meta["classes"] == ["setosa", "versicolor", "virginica"]
    flat = json.dumps(meta["metrics"])
    assert "validation" in flat and "accuracy" in flat


def test_deploy_and_predict_with_csv_and_json_serializers(
    estimator: Any, sdk_env: Path, iris_split: dict[str, Any], iris: pd.DataFrame
) -> None:
    from sagemaker.deserializers import CSVDeserializer, JSONDeserializer
    from sagemaker.serializers import CSVSerializer, JSONSerializer

    features = iris.drop(columns=["target"])
    rows = features.iloc[[0, 1, 60, 61, 120, 121]].to_numpy().tolist()
    expected = iris["target"].iloc[[0, 1, 60, 61, 120, 121]].tolist()
    predictor = estimator.deploy(
        initial_instance_count=1,
        instance_type="local",
        serializer=CSVSerializer(),
        deserializer=CSVDeserializer(),
    )
    try:
        csv_rows = predictor.predict(rows)
        assert [r[0] for r in csv_rows] == expected

        predictor.serializer = JSONSerializer()
        predictor.deserializer = JSONDeserializer()
        answer = predictor.predict({"instances": rows})
        assert [p["predicted_label"] for p in answer["predictions"]] == expected
    finally:
        predictor.delete_endpoint()


def test_batch_transform_split_by_line(
    estimator: Any, sdk_env: Path, iris_split: dict[str, Any], model_dir: Path
) -> None:
    out = sdk_env / "transform"
    transformer = estimator.transformer(
        instance_count=1,
        instance_type="local",
        output_path=f"file://{out}",
        accept="text/csv",
        assemble_with="Line",
        strategy="MultiRecord",
    )
    # logs=False: the SDK would otherwise read CloudWatch; local mode finishes the job before returning.
    transformer.transform(
        f"file://{iris_split['batch']}", content_type="text/csv", split_type="Line", wait=True, logs=False
    )
    result = (out / "holdout.csv.out").read_text().strip().splitlines()
    labels = [line.split(",")[0] for line in result]
    truth = iris_split["holdout_labels"]
    assert len(labels) == len(truth)
    # Record for record, in input order, what the trained pipeline itself predicts...
    from byoc import artifact

    model = artifact.load(model_dir)
    holdout = pd.read_csv(iris_split["batch"] / "holdout.csv", header=None, names=model.feature_names)
    expected = [model.classes[i] for i in model.estimator.predict(holdout)]
    assert labels == expected
    # ...and that is a useful model, not a constant.
    assert sum(a == b for a, b in zip(labels, truth, strict=True)) >= 0.75 * len(truth)
