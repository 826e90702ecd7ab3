"""The /opt/ml contract as values: paths, and the training job's environment.

Nothing here touches the file system or ``os.environ`` at import time.  Every object is
built from injectable dicts (``TrainingEnvironment.from_dicts``) so tests and user code can
construct one without a container; ``from_files`` is the thin adapter that reads what
SageMaker wrote.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from byoc.errors import ConfigError, not_utf8_at
from byoc.json_objects import json_words
from byoc.wide_text import UTF8_BOM_TEXT

STOP_GRACE_VARIABLE = "BYOC_STOP_GRACE_SECONDS"
DEFAULT_STOP_GRACE_SECONDS = 100.0  # SageMaker sends SIGKILL 120 s after SIGTERM: leave time to report

DEFAULT_BASE_DIR = "/opt/ml"
RESERVED_PREFIX = "sagemaker_"
TUNING_OBJECTIVE_KEY = "_tuning_objective_metric"
INPUT_MODES = ("File", "FastFile", "Pipe")
RECORD_WRAPPERS = ("none", "recordio")  # inputdataconfig.json's RecordWrapperType, case aside


@dataclass(frozen=True)
class MLPaths:
    """Where SageMaker puts things, rooted at /opt/ml or ``SAGEMAKER_BASE_DIR``."""

    base: Path

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> MLPaths:
        environ = os.environ if environ is None else environ
        raw = environ.get("SAGEMAKER_BASE_DIR") or ""
        return cls(Path(raw if raw.strip() else DEFAULT_BASE_DIR))  # blank is unset

    @property
    def input_dir(self) -> Path:
        return self.base / "input"

    @property
    def input_config_dir(self) -> Path:
        return self.input_dir / "config"

    @property
    def input_data_dir(self) -> Path:
        return self.input_dir / "data"

    @property
    def hyperparameters_file(self) -> Path:
        return self.input_config_dir / "hyperparameters.json"

    @property
    def inputdataconfig_file(self) -> Path:
        return self.input_config_dir / "inputdataconfig.json"

    @property
    def resourceconfig_file(self) -> Path:
        return self.input_config_dir / "resourceconfig.json"

    @property
    def processing_config_dir(self) -> Path:
        """A Processing job's processingjobconfig.json and resourceconfig.json (not input/config)."""
        return self.base / "config"

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def models_dir(self) -> Path:
        """Multi-model endpoints load models from here."""
        return self.base / "models"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def output_intermediate_dir(self) -> Path:
        """Where the toolkit tells scripts to put files synced to S3 while the job runs
        (SM_OUTPUT_INTERMEDIATE_DIR); named for scripts that expect it, created by them."""
        return self.output_dir / "intermediate"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def checkpoints_dir(self) -> Path:
        return self.base / "checkpoints"

    def channel_dir(self, name: str) -> Path:
        return self.input_data_dir / name

    def pipe_path(self, name: str, epoch: int = 0) -> Path:
        """Pipe mode exposes each channel as a FIFO ``<channel>_<epoch>``."""
        return self.input_data_dir / f"{name}_{epoch}"


@dataclass(frozen=True)
class ChannelConfig:
    """One entry of inputdataconfig.json."""

    name: str
    content_type: str | None = None
    input_mode: str = "File"
    s3_distribution_type: str | None = None
    record_wrapper_type: str | None = None

    @classmethod
    def from_dict(cls, name: str, raw: Mapping[str, Any]) -> ChannelConfig:
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"inputdataconfig.json: channel '{name}' must be an object, got {json_words(raw)}"
            )
        mode = raw.get("TrainingInputMode") or "File"
        if mode not in INPUT_MODES:
            raise ConfigError(
                f"inputdataconfig.json: channel '{name}' has TrainingInputMode '{mode}'; "
                f"use one of {', '.join(INPUT_MODES)}"
            )
        wrapper = raw.get("RecordWrapperType")
        if wrapper is not None and str(wrapper).lower() not in RECORD_WRAPPERS:
            raise ConfigError(
                f"inputdataconfig.json: channel '{name}' has RecordWrapperType {json.dumps(wrapper)}; "
                "use None (the objects as they are) or RecordIO (each object wrapped in a RecordIO record)"
            )
        return cls(
            name=name,
            content_type=raw.get("ContentType") or None,
            input_mode=mode,
            s3_distribution_type=raw.get("S3DistributionType"),
            record_wrapper_type=wrapper,
        )

    @property
    def recordio(self) -> bool:
        """SageMaker wraps each S3 object of this channel in a RecordIO record (Pipe mode only)."""
        return str(self.record_wrapper_type).lower() == "recordio"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"TrainingInputMode": self.input_mode}
        if self.content_type:
            out["ContentType"] = self.content_type
        if self.s3_distribution_type:
            out["S3DistributionType"] = self.s3_distribution_type
        if self.record_wrapper_type:
            out["RecordWrapperType"] = self.record_wrapper_type
        return out


def decode_hyperparameter_value(raw: Any) -> Any:
    """Undo whatever encoding the client used, without guessing types.

    SDK framework estimators ``json.dumps`` every value, the generic Estimator uses ``str()``
    (``"True"``, ``"None"``), console users type anything: try JSON, then Python's literal
    spellings of booleans and None, then keep the raw string.  Declared types are applied
    later, by the hyperparameter declarations.
    """
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    try:
        return json.loads(text)
    except ValueError:
        pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    return raw


def split_reserved(hyperparameters: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Separate the platform's keys (``sagemaker_*``, ``_tuning_objective_metric``) from the user's."""
    user: dict[str, Any] = {}
    reserved: dict[str, Any] = {}
    for key, value in hyperparameters.items():
        if key.startswith(RESERVED_PREFIX) or key == TUNING_OBJECTIVE_KEY:
            reserved[key] = value
        else:
            user[key] = value
    return user, reserved


# What each config file holds, for the message when it holds something else.
CONFIG_EXAMPLES = {
    "hyperparameters.json": 'name: value pairs, e.g. {"max_depth": "5"}',
    "inputdataconfig.json": 'its channels, e.g. {"train": {"TrainingInputMode": "File", "ContentType": "text/csv"}}',
    "resourceconfig.json": 'its hosts, e.g. {"current_host": "algo-1", "hosts": ["algo-1"]}',
}


def read_config(path: Path, default: dict[str, Any]) -> dict[str, Any]:
    """A config file SageMaker writes as a JSON object; anything else is the job's to fix.

    Every way the file can be wrong (unreadable, not UTF-8, not JSON, JSON but not an object)
    is a ConfigError naming the file, so none of them surfaces as an internal fault.
    """
    if not path.exists():
        return default
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot be read ({exc.strerror}); make it readable by the training user"
        ) from exc
    try:
        text = data.decode("utf-8").removeprefix(UTF8_BOM_TEXT)  # Windows PowerShell 5.1 writes a BOM
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {not_utf8_at(data, exc.start)}; write the file as UTF-8 JSON") from exc
    if not text.strip():
        return default
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "SageMaker writes this file as a JSON object"
        ) from exc
    except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
        raise ConfigError(
            f"{path}: not valid JSON ({exc}); SageMaker writes this file as a JSON object"
        ) from exc
    if not isinstance(value, dict):
        raise ConfigError(
            f"{path}: holds {json_words(value)}, not an object; write it as a JSON object of "
            f"{CONFIG_EXAMPLES.get(path.name, 'name: value pairs')}"
        )
    return value


def _optional_text(config: Mapping[str, Any], key: str, default: str, example: str | None = None) -> str:
    """A string entry of resourceconfig.json, ``default`` when absent: it ends up in SM_* variables,
    which hold text only.  ``example``: the value the error shows (``default`` unless given)."""
    value = config.get(key)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise ConfigError(
            f"resourceconfig.json: {key} must be a string, got {json.dumps(value)}; e.g. "
            f'{{"{key}": "{example or default}"}}'
        )
    return value


def cpu_quota(cgroup: Path = Path("/sys/fs/cgroup")) -> int | None:
    """CPUs the container's CFS quota allows (``docker run --cpus 1.5``: 2), None when unlimited.

    ``--cpus`` limits time, not which CPUs run: sched_getaffinity still sees every host CPU, and
    a worker per host CPU on a 2-CPU quota made the workers queue for it.  cgroup v2's
    ``cpu.max`` ("quota period" or "max period"), else v1's cfs_quota_us / cfs_period_us."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        q, p = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    if q <= 0 or p <= 0:  # v1 writes -1 for no quota
        return None
    return max(1, -(-q // p))


def cpu_count() -> int:
    """CPUs this process may use: its affinity (``--cpuset-cpus``) within its CFS quota (``--cpus``)."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        count = os.cpu_count() or 1
    quota = cpu_quota()
    return min(count, quota) if quota else count


@dataclass(frozen=True)
class TrainingEnvironment:
    """Everything a training job is told, decoded once.

    ``hyperparameters`` holds the user's keys with values decoded by
    :func:`decode_hyperparameter_value`; ``reserved`` holds the platform's keys.
    """

    paths: MLPaths
    hyperparameters: Mapping[str, Any]
    reserved: Mapping[str, Any]
    channels: Mapping[str, ChannelConfig]
    current_host: str = "algo-1"
    hosts: tuple[str, ...] = ("algo-1",)
    network_interface_name: str = "eth0"
    current_instance_type: str = "local"
    num_cpus: int = 1
    num_gpus: int = 0
    environ: Mapping[str, str] = field(default_factory=dict)
    # The user's keys as the file spelled them: script mode decodes them the toolkit's way.
    raw_hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    # resourceconfig.json as written (instance_groups, current_group_name...): SM_RESOURCE_CONFIG.
    resource_config: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dicts(
        cls,
        paths: MLPaths,
        hyperparameters: Mapping[str, Any] | None = None,
        inputdataconfig: Mapping[str, Any] | None = None,
        resourceconfig: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        num_cpus: int | None = None,
    ) -> TrainingEnvironment:
        if not isinstance(hyperparameters or {}, Mapping):
            raise ConfigError("hyperparameters.json must hold a JSON object of name: value")
        hyperparameters = dict(hyperparameters or {})
        decoded = {str(k): decode_hyperparameter_value(v) for k, v in hyperparameters.items()}
        user, reserved = split_reserved(decoded)
        inputdataconfig = inputdataconfig or {}
        if not isinstance(inputdataconfig, Mapping):
            raise ConfigError("inputdataconfig.json must hold a JSON object keyed by channel name")
        channels = {name: ChannelConfig.from_dict(name, raw) for name, raw in inputdataconfig.items()}
        if not channels and paths.input_data_dir.is_dir():
            # Hand-made ML roots often omit inputdataconfig.json: every directory is a channel.
            channels = {
                p.name: ChannelConfig(p.name)
                for p in sorted(paths.input_data_dir.iterdir())
                if p.is_dir() and not p.name.startswith((".", "_"))
            }
        resourceconfig = resourceconfig or {}
        if not isinstance(resourceconfig, Mapping):
            raise ConfigError("resourceconfig.json must hold a JSON object (current_host, hosts)")
        current_host = resourceconfig.get("current_host") or "algo-1"
        hosts = resourceconfig.get("hosts") or [current_host]
        if not isinstance(current_host, str) or not (
            isinstance(hosts, list) and all(isinstance(h, str) for h in hosts)
        ):
            raise ConfigError(
                'resourceconfig.json: current_host must be a string and hosts a list of strings, e.g. {"current_host": '
                '"algo-1", "hosts": ["algo-1"]}'
            )
        if not resourceconfig.get("current_host") and current_host not in hosts:
            raise ConfigError(
                f"resourceconfig.json: current_host is missing (hosts: {', '.join(hosts)}); SageMaker "
                f'names this host in it: add it, e.g. {{"current_host": "{hosts[0]}", "hosts": {json.dumps(hosts)}}}'
            )
        if current_host not in hosts:  # which host leads a multi-host job is decided from both
            raise ConfigError(
                f"resourceconfig.json: current_host '{current_host}' is not among hosts "
                f"({', '.join(hosts)}); SageMaker lists every host, this one included: add "
                f'\'{current_host}\' to hosts or correct current_host, e.g. {{"current_host": "algo-1", '
                '"hosts": ["algo-1", "algo-2"]}'
            )
        # a host counted twice: auto's cluster waited for, and planned on, a host that is not there
        repeated = sorted({h for h in hosts if hosts.count(h) > 1})
        if repeated:
            raise ConfigError(
                f"resourceconfig.json: hosts names {', '.join(repr(h) for h in repeated)} more than once "
                f"({', '.join(hosts)}); SageMaker lists each host of the job once: remove the repeats, "
                'e.g. {"current_host": "algo-1", "hosts": ["algo-1", "algo-2"]}'
            )
        hosts = tuple(sorted(hosts))
        network_interface_name = _optional_text(resourceconfig, "network_interface_name", "eth0")
        current_instance_type = _optional_text(
            resourceconfig, "current_instance_type", "local", "ml.m5.xlarge"
        )
        environ = dict(os.environ if environ is None else environ)
        return cls(
            paths=paths,
            hyperparameters=user,
            reserved=reserved,
            channels=channels,
            current_host=current_host,
            hosts=hosts,
            network_interface_name=network_interface_name,
            current_instance_type=current_instance_type,
            resource_config=dict(resourceconfig),
            num_cpus=num_cpus or cpu_count(),
            num_gpus=0,
            environ=environ,
            raw_hyperparameters=split_reserved({str(k): v for k, v in hyperparameters.items()})[0],
        )

    @classmethod
    def from_files(
        cls, paths: MLPaths | None = None, environ: Mapping[str, str] | None = None
    ) -> TrainingEnvironment:
        environ = dict(os.environ if environ is None else environ)
        paths = paths or MLPaths.from_environ(environ)
        return cls.from_dicts(
            paths,
            hyperparameters=read_config(paths.hyperparameters_file, {}),
            inputdataconfig=read_config(paths.inputdataconfig_file, {}),
            resourceconfig=read_config(paths.resourceconfig_file, {}),
            environ=environ,
        )

    @property
    def tuning_objective_metric(self) -> str | None:
        value = self.reserved.get(TUNING_OBJECTIVE_KEY)
        return str(value) if value else None

    @property
    def log_level(self) -> int:
        """The logging level, by the rule serving follows too (:mod:`byoc.loglevel`)."""
        from byoc import loglevel

        return loglevel.resolve(self.environ, self.reserved.get(loglevel.HYPERPARAMETER))

    @property
    def job_name(self) -> str | None:
        return self.environ.get("TRAINING_JOB_NAME") or self.reserved.get("sagemaker_job_name")

    @property
    def stop_grace_seconds(self) -> float:
        """How long a stopped job may take to finish (a user script's group before SIGKILL, an
        AutoML search saving its best model): ``BYOC_STOP_GRACE_SECONDS``, default 100 s, within
        the 120 s SageMaker allows between SIGTERM and SIGKILL."""
        raw = self.environ.get(STOP_GRACE_VARIABLE)
        if not raw:
            return DEFAULT_STOP_GRACE_SECONDS
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{STOP_GRACE_VARIABLE}={raw!r} is not a number of seconds") from None
        if not value >= 0:
            raise ConfigError(f"{STOP_GRACE_VARIABLE}={raw!r} must be 0 or more seconds")
        return value

    def channel_dir(self, name: str) -> Path:
        """A channel's directory; an SM_CHANNEL_<NAME> already set (user code, tests) wins."""
        override = self.environ.get(channel_variable(name))
        return Path(override) if override else self.paths.channel_dir(name)

    def channel_override(self, name: str) -> str | None:
        """The SM_CHANNEL_<NAME> variable that sets the channel's directory, when one does."""
        variable = channel_variable(name)
        return variable if self.environ.get(variable) else None

    def to_env_vars(self, *, module_dir: str | None = None, entry_point: str | None = None) -> dict[str, str]:
        """The SM_* variables the AWS training toolkit exports, with its naming rules.

        ``module_dir`` (where the user's code came from) and ``entry_point`` are set when a
        user script runs; they add SM_MODULE_DIR, SM_MODULE_NAME and SM_USER_ENTRY_POINT.
        """
        hps = dict(self.hyperparameters)
        channel_names = sorted(self.channels)
        input_data_config = {c: self.channels[c].to_dict() for c in channel_names}
        resource_config = {
            **self.resource_config,
            "current_host": self.current_host,
            "current_instance_type": self.current_instance_type,
            "hosts": list(self.hosts),
            "network_interface_name": self.network_interface_name,
        }
        training_env = {
            "channel_input_dirs": {c: str(self.channel_dir(c)) for c in channel_names},
            "current_host": self.current_host,
            "current_instance_type": self.current_instance_type,
            "hosts": list(self.hosts),
            "hyperparameters": hps,
            "input_config_dir": str(self.paths.input_config_dir),
            "input_data_config": input_data_config,
            "input_dir": str(self.paths.input_dir),
            "job_name": self.job_name,
            "log_level": self.log_level,
            "model_dir": str(self.paths.model_dir),
            "network_interface_name": self.network_interface_name,
            "num_cpus": self.num_cpus,
            "num_gpus": self.num_gpus,
            "output_data_dir": str(self.paths.output_data_dir),
            "output_dir": str(self.paths.output_dir),
            "output_intermediate_dir": str(self.paths.output_intermediate_dir),
            "resource_config": resource_config,
        }
        env = {
            "SM_MODEL_DIR": str(self.paths.model_dir),
            "SM_OUTPUT_DIR": str(self.paths.output_dir),
            "SM_OUTPUT_DATA_DIR": str(self.paths.output_data_dir),
            "SM_OUTPUT_INTERMEDIATE_DIR": str(self.paths.output_intermediate_dir),
            "SM_INPUT_DIR": str(self.paths.input_dir),
            "SM_INPUT_CONFIG_DIR": str(self.paths.input_config_dir),
            "SM_CHANNELS": json.dumps(channel_names),
            "SM_HPS": json.dumps(hps),
            "SM_HOSTS": json.dumps(list(self.hosts)),
            # scripts written for the toolkit read these two as JSON (json.loads(os.environ[...]))
            "SM_RESOURCE_CONFIG": env_value(resource_config),
            "SM_INPUT_DATA_CONFIG": env_value(input_data_config),
            "SM_CURRENT_HOST": self.current_host,
            "SM_CURRENT_INSTANCE_TYPE": self.current_instance_type,
            "SM_NETWORK_INTERFACE_NAME": self.network_interface_name,
            "SM_NUM_CPUS": str(self.num_cpus),
            "SM_NUM_GPUS": str(self.num_gpus),
            "SM_LOG_LEVEL": str(self.log_level),
            "SM_USER_ARGS": json.dumps(to_cmd_args(hps)),
        }
        if entry_point is not None:
            module_name = entry_point[:-3] if entry_point.endswith(".py") else entry_point
            training_env.update(
                module_dir=module_dir or "",
                module_name=module_name,
                user_entry_point=entry_point,
                additional_framework_parameters=dict(self.reserved),
            )
            env.update(
                SM_MODULE_DIR=module_dir or "",
                SM_MODULE_NAME=module_name,
                SM_USER_ENTRY_POINT=entry_point,
                SM_FRAMEWORK_PARAMS=json.dumps({}),
            )
        env["SM_TRAINING_ENV"] = json.dumps(training_env)
        for name in channel_names:
            env[channel_variable(name)] = str(self.channel_dir(name))
        for key, value in hps.items():
            env[f"SM_HP_{key.upper()}"] = env_value(value)
        return env


def channel_variable(name: str) -> str:
    """The toolkit's variable for a channel's directory: SM_CHANNEL_ and the name upper-cased."""
    return f"SM_CHANNEL_{name.upper()}"


def env_value(value: Any) -> str:
    """An SM_* variable's value as the training toolkit spells it: strings raw, None empty,
    everything else compact JSON with sorted keys."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def to_cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """The user script's command line, exactly as the AWS training toolkit builds it.

    Keys sorted; ``--key`` (``-k`` for a one-letter key), names as given; each value by
    ``str()`` (so ``True``, ``[1, 2]``), a mapping as sorted ``k=v`` pairs joined by commas,
    None as an empty string.  Scripts written for the AWS containers parse exactly this.
    """

    def value(raw: Any) -> str:
        if raw is None:
            return ""
        if isinstance(raw, Mapping):
            return ",".join(f"{k}={v}" for k, v in sorted(raw.items()))
        if isinstance(raw, bytes):
            return raw.decode("latin1")
        return str(raw)

    args: list[str] = []
    for key in sorted(hyperparameters):
        name = str(key)
        args += [f"--{name}" if len(name) > 1 else f"-{name}", value(hyperparameters[key])]
    return args
