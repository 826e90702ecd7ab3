"""The serving knobs SageMaker (and users) set through the environment, read once.

Every value is parsed and checked here so that a bad setting stops ``serve`` at start-up
with a message naming the variable, rather than surfacing as a failed request later.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from byoc import loglevel
from byoc.environment import cpu_count
from byoc.errors import ConfigError

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 60
DEFAULT_BATCH_TIMEOUT = 600  # batch transform's own invocation timeout
DEFAULT_MAX_PAYLOAD_MB = 6
MAX_PAYLOAD_MB = 1024  # asynchronous inference takes payloads up to 1 GB (batch transform: 100 MB)
MB = 1024 * 1024
RAISE_PAYLOAD_LIMIT = (
    "send fewer rows per request, or raise the limit: MaxPayloadInMB for batch transform (up to 100), "
    "SAGEMAKER_MAX_PAYLOAD_IN_MB for asynchronous inference (up to 1024)"
)
"""How a client whose request is above SAGEMAKER_MAX_PAYLOAD_IN_MB gets it through."""
DEFAULT_GRACEFUL_TIMEOUT = 30  # SageMaker sends SIGKILL 30 s after SIGTERM
WORKER_CLASSES = ("gthread", "sync")
DEFAULT_WORKER_THREADS = 2  # few threads, few GIL hand-offs: see byoc.serving.worker and README "Settings"
# Above these a value is a typo, and an unbounded one breaks the server rather than being refused:
# gunicorn's master forks the worker count in one loop that handles no signal until it ends, and a
# sync worker's select() overflows on a timeout beyond time_t, dies after its first request, and is
# replaced, forever.  The largest SageMaker instances have 192 vCPUs; its longest invocation is an hour.
MAX_WORKERS = 1024
MAX_TIMEOUT = 365 * 24 * 3600  # a year


def parse_bool(raw: str | None, *, name: str, default: bool = False) -> bool:
    """SageMaker's SDK writes ``"True"``; the API writes ``"true"``: accept both, case-insensitively."""
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean; use true or false")


# The classic scikit_bring_your_own sample's names, honoured when the SAGEMAKER_ ones are absent.
CLASSIC_NAMES = {
    "SAGEMAKER_MODEL_SERVER_WORKERS": "MODEL_SERVER_WORKERS",
    "SAGEMAKER_MODEL_SERVER_TIMEOUT": "MODEL_SERVER_TIMEOUT",
}


def _chosen(environ: Mapping[str, str], name: str) -> tuple[str, list[str]]:
    """The variable that sets ``name``'s value (it, or its classic twin), and what to log about it."""
    classic = CLASSIC_NAMES.get(name)
    if classic is None or not (environ.get(classic) or "").strip():
        return name, []
    if (environ.get(name) or "").strip():
        if environ[name].strip() == environ[classic].strip():
            return name, []
        return name, [f"{classic}={environ[classic].strip()} ignored: {name}={environ[name].strip()} is set"]
    return classic, [
        f"{classic}={environ[classic].strip()} used (the classic sample's name; {name} is unset)"
    ]


INTEGER = re.compile(r"[+-]?[0-9]+")
"""A whole number in ASCII digits: int() also reads `1_0` as 10 and other scripts' digits."""


def _integer(environ: Mapping[str, str], name: str) -> int | None:
    """``name``'s whole number, None when unset or blank; ConfigError naming it for anything else."""
    raw = environ.get(name)
    if raw is None or not raw.strip():
        return None
    if not INTEGER.fullmatch(raw.strip()):
        raise ConfigError(f"{name}={raw!r} is not an integer; unset it or give a whole number")
    return int(raw.strip())


def _positive_int(
    environ: Mapping[str, str], name: str, default: int, *, upper: int | None = None, also: str = ""
) -> int:
    """``name``'s value from 1 to ``upper``, ``default`` when unset; ``also``: the other values the
    caller takes itself, for the message (``0 (no limit)``)."""
    value = _integer(environ, name)
    if value is None:
        return default
    if value < 1 or (upper is not None and value > upper):
        bounds = f"between 1 and {upper}" if upper is not None else "at least 1"
        raise ConfigError(
            f"{name}={value} is out of range; it must be {also + ' or ' if also else ''}{bounds}"
        )
    return value


PAYLOAD_NAME = "SAGEMAKER_MAX_PAYLOAD_IN_MB"


def _max_payload_mb(environ: Mapping[str, str]) -> tuple[int, bool, list[str]]:
    """(limit in MB, whether the job set no limit, what to log).  A transform job's MaxPayloadInMB
    may be 0: "no limit, bodies sent chunked" (the SDK's local mode passes it on as "0"); refused,
    it stopped ``serve`` and failed the job.  It gets the largest limit the server takes."""
    if _integer(environ, PAYLOAD_NAME) == 0:
        return (
            MAX_PAYLOAD_MB,
            True,
            [
                f"{PAYLOAD_NAME}=0 (a transform job's MaxPayloadInMB=0: no limit, bodies sent chunked): "
                f"bodies up to {MAX_PAYLOAD_MB} MB are taken"
            ],
        )
    limit = _positive_int(
        environ,
        PAYLOAD_NAME,
        DEFAULT_MAX_PAYLOAD_MB,
        upper=MAX_PAYLOAD_MB,
        also="0 (no limit: bodies sent chunked)",
    )
    return limit, False, []


def _ignored(environ: Mapping[str, str], worker_class: str, multi_model: bool) -> list[str]:
    """What to log about settings this server will not use: they were dropped without a word."""
    given = {name: value.strip() for name, value in environ.items() if name in IGNORABLE and value.strip()}
    if multi_model:
        return [
            f"{name}={given[name]} ignored: a multi-model endpoint runs its own gthread workers "
            "(/ping and model loads answered while models predict)"
            for name in ("BYOC_WORKER_CLASS", "BYOC_WORKER_THREADS")
            if name in given
        ]
    notes = []
    if worker_class == "sync" and "BYOC_WORKER_THREADS" in given:
        notes.append(
            f"BYOC_WORKER_THREADS={given['BYOC_WORKER_THREADS']} ignored: BYOC_WORKER_CLASS=sync workers "
            "have no threads (one request at a time each)"
        )
    if "BYOC_MULTI_MODEL_MEMORY_MB" in given:
        notes.append(
            f"BYOC_MULTI_MODEL_MEMORY_MB={given['BYOC_MULTI_MODEL_MEMORY_MB']} ignored: SAGEMAKER_MULTI_MODEL "
            "is not true, so this endpoint serves one model"
        )
    return notes


IGNORABLE = ("BYOC_WORKER_CLASS", "BYOC_WORKER_THREADS", "BYOC_MULTI_MODEL_MEMORY_MB")


def compiled_inference(environ: Mapping[str, str]) -> bool:
    """BYOC_COMPILED_INFERENCE=off serves with scikit-learn even where a compiled form was saved."""
    return parse_bool(environ.get("BYOC_COMPILED_INFERENCE"), name="BYOC_COMPILED_INFERENCE", default=True)


@dataclass(frozen=True)
class ServingSettings:
    """What the server and the app need to know from the environment."""

    port: int = DEFAULT_PORT
    workers: int = 1
    timeout: int = DEFAULT_TIMEOUT
    log_level: str = "info"
    batch: bool = False
    max_payload_mb: int = DEFAULT_MAX_PAYLOAD_MB
    unlimited_payload: bool = False  # SAGEMAKER_MAX_PAYLOAD_IN_MB=0: the job set no limit
    default_accept: str | None = None
    inference_output: str | None = None
    inference_supported: str | None = None  # Autopilot's SAGEMAKER_INFERENCE_SUPPORTED
    compiled_inference: bool = True
    notes: tuple[str, ...] = ()  # how the settings were chosen, for the start-up log
    multi_model: bool = False
    model_memory_mb: int | None = None  # multi-model endpoints: the budget for loaded models, all workers
    worker_class: str = WORKER_CLASSES[0]
    threads: int = DEFAULT_WORKER_THREADS
    graceful_timeout: int = DEFAULT_GRACEFUL_TIMEOUT

    @property
    def max_payload_bytes(self) -> int:
        return self.max_payload_mb * MB

    @property
    def advertised_max_payload_mb(self) -> int:
        """MaxPayloadInMB for /execution-parameters: the job's own 0 when it set no limit."""
        return 0 if self.unlimited_payload else self.max_payload_mb

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ServingSettings:
        environ = os.environ if environ is None else environ
        batch = parse_bool(environ.get("SAGEMAKER_BATCH"), name="SAGEMAKER_BATCH")
        log_level = loglevel.name(loglevel.resolve(environ))  # the same rule as train's
        workers_name, workers_notes = _chosen(environ, "SAGEMAKER_MODEL_SERVER_WORKERS")
        timeout_name, timeout_notes = _chosen(environ, "SAGEMAKER_MODEL_SERVER_TIMEOUT")
        max_payload_mb, unlimited_payload, payload_notes = _max_payload_mb(environ)
        raw_class = environ.get("BYOC_WORKER_CLASS") or ""
        worker_class = raw_class.strip().lower() or WORKER_CLASSES[0]  # blank is unset, as everywhere
        if worker_class not in WORKER_CLASSES:
            raise ConfigError(
                f"BYOC_WORKER_CLASS={raw_class!r} is not one of {', '.join(WORKER_CLASSES)}; "
                "unset it for gthread (slow clients do not hold a worker)"
            )
        multi_model = parse_bool(environ.get("SAGEMAKER_MULTI_MODEL"), name="SAGEMAKER_MULTI_MODEL")
        return cls(
            port=_positive_int(environ, "SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT, upper=65535),
            workers=_positive_int(environ, workers_name, cpu_count(), upper=MAX_WORKERS),
            timeout=_positive_int(
                environ,
                timeout_name,
                DEFAULT_BATCH_TIMEOUT if batch else DEFAULT_TIMEOUT,
                upper=MAX_TIMEOUT,
            ),
            log_level=log_level,
            batch=batch,
            max_payload_mb=max_payload_mb,
            unlimited_payload=unlimited_payload,
            default_accept=(environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or "").strip() or None,
            inference_output=(environ.get("SAGEMAKER_INFERENCE_OUTPUT") or "").strip() or None,
            inference_supported=(environ.get("SAGEMAKER_INFERENCE_SUPPORTED") or "").strip() or None,
            compiled_inference=compiled_inference(environ),
            multi_model=multi_model,
            model_memory_mb=_positive_int(environ, "BYOC_MULTI_MODEL_MEMORY_MB", 0) or None,
            notes=tuple(
                workers_notes + timeout_notes + payload_notes + _ignored(environ, worker_class, multi_model)
            ),
            worker_class=worker_class,
            threads=_positive_int(environ, "BYOC_WORKER_THREADS", DEFAULT_WORKER_THREADS, upper=256),
            graceful_timeout=_positive_int(
                environ, "BYOC_GRACEFUL_TIMEOUT", DEFAULT_GRACEFUL_TIMEOUT, upper=3600
            ),
        )
