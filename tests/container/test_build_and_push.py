"""build_and_push.sh for real: a moto server stands in for ECR and STS, Debian's docker-registry takes the push.

moto's repositoryUri points nowhere, so the push goes to the local registry through the script's documented
override (--registry / BYOC_REGISTRY); everything else (sts, describe/create-repository, get-login-password,
docker login, build --platform linux/amd64, tag, push) runs exactly as against AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from dockerutil import docker

from support import REPO, free_port, terminate, wait_for_url

pytestmark = pytest.mark.container

SCRIPT = REPO / "build_and_push.sh"
VENV_BIN = Path(sys.executable).parent
REGION = "us-west-2"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's docker-registry (distribution v2) on 127.0.0.1, storing in a temp dir."""
    binary = shutil.which("docker-registry") or os.environ.get("BYOC_REGISTRY_BIN")
    if not binary:
        pytest.fail(
            "docker-registry not found: apt-get install -y docker-registry (scripts/docker-engine.sh does)"
        )
    port = free_port()
    base = tmp_path_factory.mktemp("registry")
    config = base / "config.yml"
    config.write_text(
        f"version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {base / 'data'}}}\n"
        f"  delete: {{enabled: true}}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for_url(f"http://127.0.0.1:{port}/v2/", "docker-registry", proc)
        yield f"127.0.0.1:{port}"
    finally:
        terminate(proc, timeout=10)


def base_image_args() -> dict[str, str]:
    """The base CI built the image from (python:3.11-slim-bookworm when pullable, else the debootstrap one)."""
    base = os.environ.get("BYOC_BASE_IMAGE")
    if (
        not base
        and docker("image", "inspect", "python:3.11-slim-bookworm", check=False).returncode != 0
        and docker("image", "inspect", "byoc-base:bookworm", check=False).returncode == 0
    ):
        base = "byoc-base:bookworm"
    return {"BASE_IMAGE": base} if base else {}


def script_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "BYOC_", "SAGEMAKER_")) and k != "BASE_IMAGE"
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        AWS_CONFIG_FILE=str(tmp_path / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws-creds"),
        AWS_EC2_METADATA_DISABLED="true",
        DOCKER_CONFIG=str(tmp_path / "docker-config"),
    )
    env.update(extra)
    return env


def run_script(env: dict[str, str], *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=str(REPO)
    )


def path_without(tmp_path: Path, *missing: str) -> str:
    """A PATH with the commands the script needs, minus `missing` (to show its prerequisite messages)."""
    farm = tmp_path / "bin"
    farm.mkdir()
    for cmd in (
        "bash",
        "env",
        "git",
        "sed",
        "grep",
        "tail",
        "mktemp",
        "rm",
        "dirname",
        "cat",
        "id",
        "docker",
        "aws",
    ):
        if cmd in missing:
            continue
        found = shutil.which(cmd, path=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")
        if found:
            (farm / cmd).symlink_to(found)
    return str(farm)


def registry_tags(registry: str, name: str) -> set[str]:
    with urllib.request.urlopen(f"http://{registry}/v2/{name}/tags/list", timeout=5) as resp:
        return set(json.load(resp)["tags"] or [])


def ecr_repositories(endpoint: str) -> list[str]:
    import boto3

    ecr = boto3.client(
        "ecr",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    return [r["repositoryName"] for r in ecr.describe_repositories()["repositories"]]


def test_builds_creates_repository_and_pushes_tag_and_latest(
    tmp_path: Path, image: str, moto_endpoint: str, registry: str
) -> None:
    name = f"byoc-push-{uuid.uuid4().hex[:8]}"
    env = script_env(
        tmp_path,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_ENDPOINT_URL=moto_endpoint,
        BYOC_REGISTRY=registry,
        **base_image_args(),
    )
    try:
        first = run_script(env, name, "v1", "--region", REGION)
        assert first.returncode == 0, first.stdout + first.stderr
        assert first.stdout.strip().splitlines()[-1] == f"{registry}/{name}:v1"
        assert "creating ECR repository" in first.stderr
        assert "--platform linux/amd64" in first.stderr
        assert "ecr get-login-password" in first.stderr and "Login Succeeded" in first.stderr
        assert name in ecr_repositories(moto_endpoint)
        assert registry_tags(registry, name) == {"v1", "latest"}
        arch = docker("image", "inspect", "--format", "{{.Architecture}}", f"{name}:v1").stdout.strip()
        assert arch == "amd64"

        # Second push: the repository exists now, the image is reused (--no-build), the tag defaults to git's sha.
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        docker("tag", f"{name}:v1", f"{name}:{sha}")
        docker("tag", f"{name}:v1", f"{name}:{sha}-dirty")
        second = run_script(env, name, "--no-build", "--region", REGION)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "exists" in second.stderr and "creating" not in second.stderr
        pushed_tag = second.stdout.strip().splitlines()[-1].rsplit(":", 1)[1]
        assert pushed_tag in (sha, f"{sha}-dirty")
        assert registry_tags(registry, name) == {"v1", "latest", pushed_tag}
    finally:
        refs = docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split()
        ours = [r for r in refs if name in r]
        if ours:
            docker("rmi", *ours, check=False)


def test_dry_run_prints_every_command_and_needs_no_credentials(tmp_path: Path) -> None:
    result = run_script(
        script_env(tmp_path), "byoc-sklearn", "v7", "--dry-run", "--region", "eu-west-1", "--profile", "ml"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sts get-caller-identity" in out
    assert "ecr create-repository --repository-name byoc-sklearn" in out
    assert (
        "aws --profile ml --region eu-west-1 ecr get-login-password | docker login --username AWS "
        "--password-stdin ${ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com" in out
    )
    assert "docker build --platform linux/amd64" in out
    assert "docker push ${ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/byoc-sklearn:v7" in out
    assert "docker push ${ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/byoc-sklearn:latest" in out


def test_never_picks_a_region_silently(tmp_path: Path) -> None:
    result = run_script(
        script_env(tmp_path, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y"), "byoc-sklearn", "v1"
    )
    assert result.returncode == 2
    assert "no AWS region" in result.stderr and "--region" in result.stderr


def test_missing_credentials_are_named(tmp_path: Path, image: str, moto_endpoint: str) -> None:
    result = run_script(
        script_env(tmp_path, AWS_ENDPOINT_URL=moto_endpoint), "byoc-sklearn", "v1", "--region", REGION
    )
    assert result.returncode == 1
    assert "no usable AWS credentials" in result.stderr and "aws configure" in result.stderr


def test_no_build_without_the_local_image_fails_before_any_aws_call(
    tmp_path: Path, image: str, moto_endpoint: str
) -> None:
    """README's `--no-build` after `docker build -t byoc-sklearn .`: the image is :latest, not :TAG.
    The script says so before it creates an ECR repository or logs in (nothing half-done)."""
    name = f"byoc-nobuild-{uuid.uuid4().hex[:8]}"
    env = script_env(
        tmp_path, AWS_ENDPOINT_URL=moto_endpoint, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"
    )
    result = run_script(env, name, "v1", "--no-build", "--region", REGION)
    assert result.returncode == 1
    assert f"--no-build: no local image {name}:v1" in result.stderr, result.stderr
    assert "docker build -t" in result.stderr
    assert name not in ecr_repositories(moto_endpoint)
    assert "docker login" not in result.stderr and "creating ECR repository" not in result.stderr


@pytest.mark.parametrize(
    "missing, message", [("aws", "AWS CLI is not installed"), ("docker", "Docker is not installed")]
)
def test_missing_tools_are_named(tmp_path: Path, missing: str, message: str) -> None:
    env = script_env(tmp_path, PATH=path_without(tmp_path, missing))
    result = run_script(env, "byoc-sklearn", "v1", "--region", REGION)
    assert result.returncode == 1
    assert message in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["Bad_Name", "v1"], "not a valid ECR repository name"),
        (["byoc-sklearn", "-bad"], "unknown option"),
        (["byoc-sklearn", "latest"], "pushed anyway"),
        (["byoc-sklearn", "v1", "--region", "moon"], "does not look like"),
    ],
)
def test_bad_arguments_fail_before_any_work(tmp_path: Path, args: list[str], message: str) -> None:
    result = run_script(script_env(tmp_path), *args, "--dry-run")
    assert result.returncode == 2
    assert message in result.stderr


def test_unreachable_aws_is_not_called_a_credentials_problem(tmp_path: Path, image: str) -> None:
    """Credentials are set; STS cannot be reached (no network, a wrong AWS_ENDPOINT_URL)."""
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = script_env(tmp_path, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="y", AWS_ENDPOINT_URL=endpoint)
    result = run_script(env, "byoc-sklearn", "v1", "--region", REGION)
    assert result.returncode == 1
    assert "no usable AWS credentials" not in result.stderr, result.stderr
    assert "not reachable" in result.stderr and endpoint in result.stderr, result.stderr
    # With --account the first call is ECR's: the same cause, on one line.
    result = run_script(env, "byoc-sklearn", "v1", "--region", REGION, "--account", "123456789012")
    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert "could not look up ECR repository byoc-sklearn" in error and "not reachable" in error, (
        result.stderr
    )


def test_a_profile_that_does_not_exist_is_named(tmp_path: Path, image: str) -> None:
    """Not "no AWS region" (the region lookup read the missing profile) nor a credentials hint."""
    result = run_script(script_env(tmp_path), "byoc-sklearn", "v1", "--profile", "nosuch")
    assert result.returncode == 2
    assert "no AWS region" not in result.stderr, result.stderr
    assert "(nosuch) could not be found" in result.stderr and "list-profiles" in result.stderr
    result = run_script(script_env(tmp_path), "byoc-sklearn", "v1", "--profile", "nosuch", "--region", REGION)
    assert result.returncode == 1
    assert "no usable AWS credentials" not in result.stderr, result.stderr
    assert "(nosuch) could not be found" in result.stderr


def test_account_override_names_the_registry_everywhere(tmp_path: Path) -> None:
    """--account 222...: the repository is looked up and created in that account's registry,
    not in the caller's (which the push would then not go to)."""
    result = run_script(
        script_env(tmp_path),
        "byoc-sklearn",
        "v1",
        "--dry-run",
        "--region",
        "eu-west-1",
        "--account",
        "2" * 12,
    )
    assert result.returncode == 0, result.stderr
    ecr = [line for line in result.stdout.splitlines() if " ecr describe-repositories " in line]
    assert len(ecr) == 1 and ecr[0].count(f"--registry-id {'2' * 12}") == 2, result.stdout
    assert "sts get-caller-identity" not in result.stdout
