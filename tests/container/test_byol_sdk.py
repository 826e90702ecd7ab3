"""Bring your own library with the SageMaker Python SDK v2 in local mode, against the built image:
an SKLearn-style framework estimator (image_uri, entry_point, source_dir) trains examples/byol/
in script mode, deploys it with its inference.py and predicts; a ScriptProcessor runs an
evaluation script with the image's python3 and writes evaluation.json.

Local mode, dummy credentials and telemetry off come from the sdk_env fixture; Processing stages
code and data through S3 even in local mode, so a moto server (moto_endpoint) stands in for S3."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dockerutil import ROLE, local_session

from support import REPO, csv_bytes

pytestmark = pytest.mark.container

EXAMPLE = REPO / "examples" / "byol"


@pytest.fixture(scope="module")
def byol_data(sdk_env: Path, iris: pd.DataFrame) -> dict[str, Any]:
    shuffled = iris.sample(frac=1.0, random_state=2).reset_index(drop=True)
    train = sdk_env / "byol" / "train"
    train.mkdir(parents=True)
    (train / "iris.csv").write_bytes(csv_bytes(shuffled.iloc[:120], target="target", header=True))
    return {"train": train, "holdout": shuffled.iloc[120:]}


@pytest.fixture(scope="module")
def sklearn_estimator(image: str, sdk_env: Path, byol_data: dict[str, Any]) -> Any:
    from sagemaker.sklearn import SKLearn

    root = sdk_env / "byol-containers"
    root.mkdir()
    est = SKLearn(
        entry_point="train.py",
        source_dir=str(EXAMPLE),
        image_uri=image,
        role=ROLE,
        instance_count=1,
        instance_type="local",
        output_path=f"file://{sdk_env / 'byol-output'}",
        # Local code needs no bucket, but deploy asks for one (an STS call) unless given a location.
        code_location="s3://unused-with-local-code/byol",
        sagemaker_session=local_session(root),
        hyperparameters={
            "use-custom-ensemble": "true",
            "ensemble-rf": "true",
            "ensemble-gb": "false",
            "ensemble-lr": "true",
        },
    )
    est.fit({"train": f"file://{byol_data['train']}"}, wait=True, logs=False)
    return est


def test_sklearn_estimator_trains_deploys_and_predicts(
    sklearn_estimator: Any, byol_data: dict[str, Any]
) -> None:
    import tarfile

    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import CSVSerializer

    with tarfile.open(sklearn_estimator.model_data.replace("file://", "")) as tar:
        assert {"model.joblib", "columns.json"} <= set(tar.getnames())
    holdout = byol_data["holdout"]
    predictor = sklearn_estimator.deploy(
        initial_instance_count=1,
        instance_type="local",
        entry_point="inference.py",
        serializer=CSVSerializer(),
        deserializer=JSONDeserializer(),
    )
    try:
        answer = predictor.predict(holdout.drop(columns=["target"]).to_numpy().tolist())
    finally:
        predictor.delete_endpoint()
    predicted = answer["predictions"]
    assert len(predicted) == len(holdout)
    assert sum(p == t for p, t in zip(predicted, holdout["target"], strict=True)) / len(holdout) > 0.85


EVALUATION_SCRIPT = textwrap.dedent(
    """\
    # A user's evaluation step: the image's python3, its scikit-learn and byoc's evaluate.
    import sys

    import sklearn
    from byoc.evaluation import main

    print("scikit-learn", sklearn.__version__, flush=True)
    sys.exit(main(["--model", "/opt/ml/processing/model", "--test", "/opt/ml/processing/test",
                   "--output", "/opt/ml/processing/evaluation"]))
    """
)


def test_script_processor_runs_an_evaluation_script(
    image: str, sdk_env: Path, trained_root: Path, iris: pd.DataFrame, moto_endpoint: str, monkeypatch
) -> None:
    import boto3
    from sagemaker.local import LocalSession
    from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    work = sdk_env / "processing"
    (work / "test").mkdir(parents=True)
    (work / "test" / "iris.csv").write_bytes(csv_bytes(iris.iloc[1::2], target="target"))
    script = work / "evaluate_model.py"
    script.write_text(EVALUATION_SCRIPT)
    session = LocalSession(default_bucket="byoc-processing", disable_local_code=True)
    processor = ScriptProcessor(
        image_uri=image,
        command=["python3"],
        role=ROLE,
        instance_count=1,
        instance_type="local",
        sagemaker_session=session,
    )
    processor.run(
        code=str(script),
        inputs=[
            ProcessingInput(source=str(trained_root / "model"), destination="/opt/ml/processing/model"),
            ProcessingInput(source=str(work / "test"), destination="/opt/ml/processing/test"),
        ],
        outputs=[ProcessingOutput(output_name="evaluation", source="/opt/ml/processing/evaluation")],
        wait=True,
        logs=False,
    )
    destination = processor.latest_job.describe()["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"]
    bucket, _, prefix = destination.removeprefix("s3://").partition("/")
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    report = json.loads(
        s3.get_object(Bucket=bucket, Key=f"{prefix.rstrip('/')}/evaluation.json")["Body"].read()
    )
    metrics = report["multiclass_classification_metrics"]
    assert 0.8 < metrics["accuracy"]["value"] <= 1.0
    assert set(metrics["confusion_matrix"]) == {"setosa", "versicolor", "virginica"}
