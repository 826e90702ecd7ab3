"""Download one S3 object: the user's ``sourcedir.tar.gz`` when script mode or inference hooks
name an ``s3://`` source directory (as the SageMaker SDK does when it uploads ``source_dir``).

boto3 finds the credentials (the job's or the endpoint's IAM role on SageMaker; AWS_* variables,
a profile or instance metadata elsewhere) and the endpoint (``AWS_ENDPOINT_URL``,
``AWS_ENDPOINT_URL_S3``) by itself.  The region is ``AWS_DEFAULT_REGION`` as boto3 reads it, else
``AWS_REGION`` (which SageMaker sets and boto3 does not read).  Every failure here is the user's
to fix, so it is a :class:`~byoc.errors.ConfigError` that names the URI, the cause and the fix.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from byoc.errors import ConfigError

log = logging.getLogger("byoc.s3")

SCHEME = "s3://"
_DENIED = frozenset(
    {"AccessDenied", "403", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
)
_EXPIRED = frozenset({"ExpiredToken", "ExpiredTokenException", "TokenRefreshRequired", "InvalidToken"})


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b.tar.gz`` -> ``("bucket", "a/b.tar.gz")``; ConfigError when either is missing."""
    bucket, _, key = uri.removeprefix(SCHEME).partition("/")
    if not uri.startswith(SCHEME) or not bucket or not key or key.endswith("/"):
        raise ConfigError(
            f"{uri!r} is not an S3 object URI; give s3://<bucket>/<key> of the source directory's "
            "tarball (the SDK uploads it as .../source/sourcedir.tar.gz)"
        )
    return bucket, key


def _client(environ: Mapping[str, str]) -> Any:
    import boto3

    region = None if environ.get("AWS_DEFAULT_REGION") else environ.get("AWS_REGION") or None
    return boto3.client("s3", region_name=region)


def _client_error(uri: str, bucket: str, key: str, code: str, message: str) -> ConfigError:
    """S3's answer as the user's fix."""
    if code == "NoSuchBucket":
        fix = (
            f"bucket {bucket!r} does not exist (or is in another account's namespace); check "
            "sagemaker_submit_directory / SAGEMAKER_SUBMIT_DIRECTORY (the SDK's code_location)"
        )
    elif code in ("NoSuchKey", "404", "NotFound"):
        fix = (
            f"no object {key!r} in bucket {bucket!r}; upload the source directory's tarball there "
            "(the SDK does it when it starts the job or deploys) or point the URI at it"
        )
    elif code in _DENIED:
        fix = (
            f"access denied ({code}); give the role s3:GetObject on arn:aws:s3:::{bucket}/{key} "
            "(and kms:Decrypt if the bucket uses a KMS key)"
        )
    elif code in _EXPIRED:
        fix = f"the AWS credentials were refused ({code}: {message}); renew them"
    else:
        fix = f"S3 answered {code}: {message}"
    return ConfigError(f"cannot download the source code {uri}: {fix}", code="source_download_failed")


def download(uri: str, into: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Fetch ``uri`` into the directory ``into``; returns the file's path."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

    environ = os.environ if environ is None else environ
    bucket, key = split_uri(uri)
    target = Path(into) / (Path(key).name or "sourcedir.tar.gz")
    try:
        client = _client(environ)
        log.info("source code: downloading %s (region %s)", uri, client.meta.region_name or "unset")
        response = client.get_object(Bucket=bucket, Key=key)
        with response["Body"] as body, open(target, "wb") as fh:
            shutil.copyfileobj(body, fh, 1024 * 1024)
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise ConfigError(
            f"cannot download the source code {uri}: no AWS credentials ({exc}); on SageMaker the "
            "job's execution role provides them; elsewhere set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or give a local source directory instead",
            code="source_download_failed",
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"))
        raise _client_error(uri, bucket, key, code, str(error.get("Message") or exc)) from None
    except BotoCoreError as exc:
        raise ConfigError(
            f"cannot download the source code {uri}: {exc}; the container needs a route to S3 "
            "(in a VPC: an S3 gateway endpoint or a NAT gateway), or send the code another way "
            "(training: enable_network_isolation=True delivers it as the 'code' channel; "
            "serving: repack it into model.tar.gz's code/)",
            code="source_download_failed",
        ) from None
    log.info("source code: %s downloaded (%d bytes)", uri, target.stat().st_size)
    return target
