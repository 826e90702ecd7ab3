"""Bring your own library with the SageMaker Python SDK v2 in local mode, against the built image:
an SKLearn-style framework estimator (image_uri, entry_point, source_dir) trains examples/byol/
in script mode, deploys it with its inference.py and predicts; a ScriptProcessor runs an
evaluation script with the image's python3 and writes evaluation.json. Without the SDK, the image
trains and serves examples/byol/ from an s3:// sourcedir.tar.gz, as on SageMaker without network
isolation (the download goes to moto on the host's network).

Local mode, dummy credentials and telemetry off come from the sdk_env fixture; Processing stages
code and data through S3 even in local mode, so a moto server (moto_endpoint) stands in for S3."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dockerutil import ROLE, docker, local_session, post, run_container, start_container, wait_for_ping

from support import REPO, aws_test_environ, csv_bytes, free_port, make_ml_root

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


def test_image_trains_and_serves_the_source_directory_from_s3(
    image: str, tmp_path: Path, iris: pd.DataFrame, moto_endpoint: str
) -> None:
    """SageMaker without network isolation: the SDK has uploaded source_dir as sourcedir.tar.gz and
    passes its s3:// URI; the container downloads it with the job's credentials (boto3 in the image,
    AWS_ENDPOINT_URL pointing at moto), for train and again for serve."""
    import tarfile

    import boto3

    archive = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(
            EXAMPLE,
            arcname=".",
            filter=lambda m: None if "__pycache__" in m.name or ".egg-info" in m.name else m,
        )
    environ = aws_test_environ(moto_endpoint)
    s3 = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name=environ["AWS_DEFAULT_REGION"],
        aws_access_key_id=environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=environ["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket="byol-code")
    s3.upload_file(str(archive), "byol-code", "byol-job/source/sourcedir.tar.gz")
    uri = "s3://byol-code/byol-job/source/sourcedir.tar.gz"

    shuffled = iris.sample(frac=1.0, random_state=3).reset_index(drop=True)
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {"iris.csv": csv_bytes(shuffled.iloc[:120], target="target", header=True)}},
        hyperparameters={
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": uri,
            "ensemble-gb": "false",
        },
    )
    aws = [arg for key, value in environ.items() for arg in ("-e", f"{key}={value}")]
    trained = run_container("--network", "host", *aws, "-v", f"{root}:/opt/ml", "IMAGE", "train")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert f"downloading {uri}" in trained.stdout + trained.stderr
    assert (root / "model" / "model.joblib").is_file()

    shutil.rmtree(root / "code")  # serve must fetch the code itself
    port = free_port()
    cid = start_container(
        "--network", "host", *aws, "-e", f"SAGEMAKER_BIND_TO_PORT={port}", "-e", "SAGEMAKER_PROGRAM=inference.py",
        "-e", f"SAGEMAKER_SUBMIT_DIRECTORY={uri}", "-v", f"{root}:/opt/ml", "IMAGE", "serve",
    )  # fmt: skip
    try:
        wait_for_ping(cid, port)
        holdout = shuffled.iloc[120:]
        status, _, body = post(
            port, csv_bytes(holdout.drop(columns=["target"]), target=None), "text/csv", "application/json"
        )
    finally:
        docker("rm", "-f", cid, check=False)
    assert status == 200, body
    predicted = json.loads(body)["predictions"]
    assert sum(p == t for p, t in zip(predicted, holdout["target"], strict=True)) / len(holdout) > 0.85
    assert (root / "code" / "inference.py").is_file()  # downloaded again by serve
