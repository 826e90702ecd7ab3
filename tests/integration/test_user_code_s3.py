"""User code from an ``s3://.../sourcedir.tar.gz``, as the SageMaker SDK passes it when it has uploaded
``source_dir``: the real ``container/train`` (script mode) and ``container/serve`` (inference hooks)
download it with boto3 from a real moto server (AWS_ENDPOINT_URL, as boto3 reads it) and unpack it
into ``<ML root>/code``; every way the download can fail is the user's to fix and says so, naming
the URI."""

from __future__ import annotations

import io
import json
import tarfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import serving_models as sm

from support import aws_test_environ, make_ml_root, moto_server, read_failure, run_train

BUCKET = "byoc-code"
TRAIN_URI = f"s3://{BUCKET}/job-1/source/sourcedir.tar.gz"
SERVE_URI = f"s3://{BUCKET}/model-1/source/sourcedir.tar.gz"
NOT_A_TARBALL_URI = f"s3://{BUCKET}/job-2/source/sourcedir.tar.gz"

TRAIN_PY = """\
import json, os, sys
from helper import answer  # a second module of the source directory
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as fh:
    json.dump({"argv": sys.argv[1:], "cwd": os.getcwd(), "answer": answer,
               "module_dir": os.environ["SM_MODULE_DIR"]}, fh)
print("user script ran", flush=True)
"""
INFERENCE_PY = """\
def transform_fn(model, request_body, content_type, accept):
    return "hooks from s3: " + type(model).__name__, "text/plain"
"""


def s3_client(endpoint: str):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def tarball(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = textwrap.dedent(text).encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A moto S3 holding the training and the inference source tarballs, and a file that is not one."""
    with moto_server() as url:
        s3 = s3_client(url)
        s3.create_bucket(Bucket=BUCKET)
        for uri, body in (
            (TRAIN_URI, tarball({"train.py": TRAIN_PY, "helper.py": "answer = 42\n"})),
            (SERVE_URI, tarball({"inference.py": INFERENCE_PY})),
            (NOT_A_TARBALL_URI, b"print('a script, not its tarball')\n"),
        ):
            s3.put_object(Bucket=BUCKET, Key=uri.removeprefix(f"s3://{BUCKET}/"), Body=body)
        yield url


def script_root(tmp_path: Path, uri: str) -> Path:
    return make_ml_root(
        tmp_path / "ml",
        channels={"train": {"a.csv": "1,2\n"}},
        hyperparameters={"sagemaker_program": "train.py", "sagemaker_submit_directory": uri, "epochs": 3},
    )


def test_train_downloads_the_source_tarball_and_runs_its_script(tmp_path, endpoint):
    root = script_root(tmp_path, TRAIN_URI)
    result = run_train(root, env=aws_test_environ(endpoint))
    assert result.returncode == 0, result.stdout + result.stderr
    written = json.loads((root / "model" / "model.json").read_text())
    assert written == {
        "argv": ["--epochs", "3"],
        "cwd": str(root / "code"),
        "answer": 42,
        "module_dir": TRAIN_URI,
    }
    assert (root / "code" / "helper.py").is_file()
    assert "user script ran" in result.stdout
    assert f"downloading {TRAIN_URI}" in result.stdout + result.stderr


def test_train_honours_aws_region_when_aws_default_region_is_unset(tmp_path, endpoint):
    """SageMaker sets AWS_REGION, which boto3 does not read; the download must not depend on it."""
    root = script_root(tmp_path, TRAIN_URI)
    result = run_train(root, env=aws_test_environ(endpoint, AWS_DEFAULT_REGION="", AWS_REGION="eu-west-1"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "user script ran" in result.stdout
    assert f"downloading {TRAIN_URI} (region eu-west-1)" in result.stdout + result.stderr
    both = run_train(
        script_root(tmp_path / "both", TRAIN_URI),
        env=aws_test_environ(endpoint, AWS_DEFAULT_REGION="us-west-2", AWS_REGION="eu-west-1"),
    )
    assert (
        f"downloading {TRAIN_URI} (region us-west-2)" in both.stdout + both.stderr
    )  # boto3's own rule first


@pytest.mark.parametrize(
    "uri,env,expected",
    [
        (
            f"s3://{BUCKET}/job-1/source/missing.tar.gz",
            {},
            "no object 'job-1/source/missing.tar.gz' in bucket",
        ),
        (
            "s3://no-such-bucket-byoc/source/sourcedir.tar.gz",
            {},
            "bucket 'no-such-bucket-byoc' does not exist",
        ),
        (NOT_A_TARBALL_URI, {}, "cannot be unpacked"),
        (
            TRAIN_URI,
            {
                "AWS_ACCESS_KEY_ID": "",
                "AWS_SECRET_ACCESS_KEY": "",
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials",
                "AWS_CONFIG_FILE": "/nonexistent/config",
            },
            "no AWS credentials",
        ),
        ("s3://bucket-only", {}, "is not an S3 object URI"),
        (
            TRAIN_URI,
            {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"},  # nothing listens on port 9
            "Could not connect to the endpoint URL",
        ),
    ],
    ids=["missing-key", "wrong-bucket", "not-a-tarball", "no-credentials", "no-key", "no-route"],
)
def test_a_source_that_cannot_be_fetched_is_a_user_error_naming_the_uri(
    tmp_path, endpoint, uri, env, expected
):
    root = script_root(tmp_path, uri)
    result = run_train(root, env=aws_test_environ(endpoint, **env))
    assert result.returncode == 1, result.stdout + result.stderr
    first = (read_failure(root) or "").splitlines()[0]
    assert uri in first and expected in first, first
    assert not (root / "model" / "model.json").exists()


def test_access_denied_names_the_permission_to_grant(tmp_path, endpoint):
    """moto answers AccessDenied for a bucket whose policy denies GetObject to everyone."""
    s3 = s3_client(endpoint)
    s3.create_bucket(Bucket="byoc-denied")
    s3.put_object(Bucket="byoc-denied", Key="sourcedir.tar.gz", Body=tarball({"train.py": TRAIN_PY}))
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::byoc-denied/*",
            }
        ],
    }
    s3.put_bucket_policy(Bucket="byoc-denied", Policy=json.dumps(policy))
    uri = "s3://byoc-denied/sourcedir.tar.gz"
    root = script_root(tmp_path, uri)
    result = run_train(root, env=aws_test_environ(endpoint))
    assert result.returncode == 1, result.stdout + result.stderr
    first = (read_failure(root) or "").splitlines()[0]
    assert uri in first and "access denied" in first and "s3:GetObject" in first, first


def test_serve_downloads_the_hooks_from_s3(tmp_path, endpoint):
    root = sm.copy_root("binary", tmp_path / "root")
    server = sm.start(
        root,
        workers=1,
        env=aws_test_environ(
            endpoint, SAGEMAKER_PROGRAM="inference.py", SAGEMAKER_SUBMIT_DIRECTORY=SERVE_URI
        ),
    )
    try:
        reply = server.invoke(b"1,2\n", "text/csv", "text/plain")
    finally:
        server.stop()
    assert reply.status_code == 200, reply.text
    assert reply.text == "hooks from s3: ByocModel"  # byoc's own model_fn loaded the model for the hook
    assert (root / "code" / "inference.py").is_file()


@pytest.mark.parametrize(
    "uri,expected",
    [
        (f"s3://{BUCKET}/model-1/source/missing.tar.gz", "no object"),
        ("s3://no-such-bucket-byoc/sourcedir.tar.gz", "does not exist"),
        (NOT_A_TARBALL_URI, "cannot be unpacked"),
    ],
    ids=["missing-key", "wrong-bucket", "not-a-tarball"],
)
def test_serve_exits_at_once_when_the_hooks_cannot_be_fetched(tmp_path, endpoint, uri, expected):
    root = sm.copy_root("binary", tmp_path / "root")
    result = sm.run_serve(
        root, **aws_test_environ(endpoint, SAGEMAKER_PROGRAM="inference.py", SAGEMAKER_SUBMIT_DIRECTORY=uri)
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "serve: cannot start:" in result.stderr and uri in result.stderr and expected in result.stderr


def test_serve_prefers_the_repacked_code_to_a_download(tmp_path):
    """The SDK's repacked model.tar.gz has code/inference.py: no network, no credentials needed."""
    root = sm.copy_root("binary", tmp_path / "root")
    (root / "model" / "code").mkdir()
    (root / "model" / "code" / "inference.py").write_text(INFERENCE_PY)
    server = sm.start(
        root,
        workers=1,
        env={
            "SAGEMAKER_PROGRAM": "inference.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": "s3://unreachable-bucket/x.tar.gz",
        },
    )
    try:
        reply = server.invoke(b"1,2\n", "text/csv", "text/plain")
    finally:
        server.stop()
    assert reply.text == "hooks from s3: ByocModel"
    assert not (root / "code").exists()
