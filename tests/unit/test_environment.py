"""The ML root as SageMaker writes it: config decoding, channels, SM_* variables."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from byoc import environment
from byoc.environment import MLPaths, TrainingEnvironment, decode_hyperparameter_value
from byoc.errors import ConfigError
from support import REPO, clean_environ, make_ml_root

PARAMS = {
    "max_depth": 5,
    "criterion": "gini",
    "bootstrap": True,
    "max_samples": None,
    "layers": [64, 32],
    "learning_rate": 0.05,
}


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("5", 5),
        ("0.05", 0.05),
        ('"gini"', "gini"),
        ("gini", "gini"),
        ("true", True),
        ("True", True),
        ("False", False),
        ("null", None),
        ("None", None),
        ("[64, 32]", [64, 32]),
        (" 7 ", 7),
        (3, 3),
        ("random_forest,linear", "random_forest,linear"),
    ],
)
def test_decode_every_client_spelling(raw, expected):
    assert decode_hyperparameter_value(raw) == expected


@pytest.mark.parametrize("encoding", ["sdk-json", "str"])
def test_from_files_decodes_sdk_encodings_and_strips_reserved_keys(tmp_path, encoding):
    params = {
        **PARAMS,
        "sagemaker_program": "train.py",
        "sagemaker_region": "eu-west-1",
        "_tuning_objective_metric": "validation:auc",
    }
    root = make_ml_root(
        tmp_path, channels={"train": {"a.csv": "1,2\n"}}, hyperparameters=params, encoding=encoding
    )
    env = TrainingEnvironment.from_files(MLPaths(root), environ={})
    assert dict(env.hyperparameters) == PARAMS
    assert env.tuning_objective_metric == "validation:auc"
    assert env.reserved["sagemaker_region"] == "eu-west-1"


def test_channels_and_hosts_from_config(tmp_path):
    root = make_ml_root(
        tmp_path,
        channels={"train": {"a": "1"}, "validation": {"b": "1"}},
        content_types={"train": "text/csv;label_size=1"},
        input_mode="FastFile",
        hosts=("algo-1-abcde",),
    )
    env = TrainingEnvironment.from_files(MLPaths(root), environ={})
    assert env.channels["train"].content_type == "text/csv;label_size=1"
    assert env.channels["validation"].input_mode == "FastFile"
    assert env.current_host == "algo-1-abcde" and env.hosts == ("algo-1-abcde",)


def test_channels_inferred_from_directories_without_inputdataconfig(tmp_path):
    root = make_ml_root(tmp_path, channels={"train": {"a": "1"}, "test": {"b": "1"}})
    (root / "input/config/inputdataconfig.json").unlink()
    (root / "input/data/_scratch").mkdir()
    env = TrainingEnvironment.from_files(MLPaths(root), environ={})
    assert sorted(env.channels) == ["test", "train"]


def test_a_channel_without_a_training_input_mode_is_read_in_file_mode(tmp_path):
    """An inputdataconfig.json written by hand (or by a local runner) may give a channel its
    ContentType alone: the channel is File mode, as SageMaker's default is, and its directory is
    read (Pipe mode would wait for a FIFO that never comes)."""
    root = make_ml_root(tmp_path, channels={"train": {"a": "1"}})
    (root / "input/config/inputdataconfig.json").write_text('{"train": {"ContentType": "text/csv"}}')
    env = TrainingEnvironment.from_files(MLPaths(root), environ={})
    assert env.channels["train"].input_mode == "File"
    assert env.channels["train"].content_type == "text/csv"


def test_bad_config_files_name_the_file(tmp_path):
    root = make_ml_root(tmp_path, channels={"train": {"a": "1"}})
    (root / "input/config/inputdataconfig.json").write_text('{"train": {"TrainingInputMode": "Stream"}}')
    with pytest.raises(ConfigError, match="channel 'train' has TrainingInputMode 'Stream'"):
        TrainingEnvironment.from_files(MLPaths(root), environ={})
    (root / "input/config/resourceconfig.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"resourceconfig\.json: not valid JSON \(line 1"):
        TrainingEnvironment.from_files(MLPaths(root), environ={})


def test_a_resourceconfig_without_current_host_says_it_is_missing(tmp_path):
    """{"hosts": ["algo-1-abcde"]} was refused as "current_host 'algo-1' is not among hosts": a
    value the file never held (the default), with no word that the key was missing."""
    with pytest.raises(ConfigError) as info:
        TrainingEnvironment.from_dicts(MLPaths(tmp_path), {}, {}, {"hosts": ["algo-1-abcde"]}, environ={})
    message = str(info.value)
    assert message.startswith("resourceconfig.json: current_host is missing"), message
    assert "'algo-1'" not in message and "algo-1-abcde" in message


def test_config_files_written_with_a_byte_order_mark_are_read(tmp_path):
    """Windows PowerShell 5.1 writes UTF-8 with a byte order mark (Set-Content -Encoding UTF8): a
    hand-made hyperparameters.json so written was refused ("Unexpected UTF-8 BOM (decode using
    utf-8-sig)"), where the channel readers and serving read past a BOM."""
    root = make_ml_root(tmp_path, channels={"train": {"a": "1"}}, hyperparameters={"max_depth": 3})
    for name in ("hyperparameters.json", "inputdataconfig.json", "resourceconfig.json"):
        path = root / "input" / "config" / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    env = TrainingEnvironment.from_files(MLPaths(root), environ={})
    assert env.hyperparameters == {"max_depth": 3} and list(env.channels) == ["train"]
    assert env.current_host == "algo-1"


def test_current_host_must_be_among_hosts(tmp_path):
    """Which host leads algo=auto's cluster is decided from both: a host missing from the list
    waited 300 s for a scheduler and then blamed the network."""
    root = make_ml_root(
        tmp_path, channels={"train": {"a": "1"}}, hosts=("algo-1", "algo-2"), current_host="algo-3"
    )
    with pytest.raises(ConfigError, match=r"current_host 'algo-3' is not among hosts \(algo-1, algo-2\)"):
        TrainingEnvironment.from_files(MLPaths(root), environ={})


def test_a_host_listed_twice_is_refused_naming_it(tmp_path):
    """{"hosts": ["algo-1", "algo-1"]} ran algorithm=auto as a job of two hosts on one (two
    candidates queued on its one worker, the budget planned for both), and a built-in algorithm
    said "resourceconfig.json lists 2 hosts" and advised instance_count=1."""
    root = make_ml_root(tmp_path, channels={"train": {"a": "1"}})
    (root / "input/config/resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1", "algo-2", "algo-1"]})
    )
    with pytest.raises(ConfigError) as info:
        TrainingEnvironment.from_files(MLPaths(root), environ={})
    assert str(info.value).startswith(
        "resourceconfig.json: hosts names 'algo-1' more than once (algo-1, algo-2, algo-1)"
    ), info.value


@pytest.mark.parametrize("key", ["network_interface_name", "current_instance_type"])
def test_resourceconfig_text_entries_must_be_strings(tmp_path, key):
    """They become SM_* variables: a number there was an internal error when they were exported."""
    root = make_ml_root(tmp_path, channels={"train": {"a": "1"}})
    (root / "input/config/resourceconfig.json").write_text(
        json.dumps({"current_host": "algo-1", "hosts": ["algo-1"], key: 5})
    )
    with pytest.raises(ConfigError, match=rf"resourceconfig\.json: {key} must be a string, got 5"):
        TrainingEnvironment.from_files(MLPaths(root), environ={})


def test_a_config_file_that_is_not_an_object_gets_its_own_example(tmp_path):
    root = make_ml_root(tmp_path, channels={"train": {"a": "1"}})
    (root / "input/config/resourceconfig.json").write_text('["algo-1"]')
    with pytest.raises(
        ConfigError, match=r"resourceconfig\.json: holds a list, not an object.*\"current_host\": \"algo-1\""
    ):
        TrainingEnvironment.from_files(MLPaths(root), environ={})


@pytest.mark.parametrize("raw", ["", "  "])
def test_a_blank_base_dir_is_unset(raw):
    """SAGEMAKER_BASE_DIR of spaces served from ' /model', a folder named by a space."""
    assert MLPaths.from_environ({"SAGEMAKER_BASE_DIR": raw}).model_dir.as_posix() == "/opt/ml/model"


def test_base_dir_from_environment():
    assert MLPaths.from_environ({}).base.as_posix() == "/opt/ml"
    assert MLPaths.from_environ({"SAGEMAKER_BASE_DIR": "/tmp/x"}).model_dir.as_posix() == "/tmp/x/model"
    assert MLPaths.from_environ({}).pipe_path("train").as_posix() == "/opt/ml/input/data/train_0"


def test_sm_variables_follow_the_training_toolkit(tmp_path):
    root = make_ml_root(
        tmp_path,
        channels={"train": {"a": "1"}, "validation": {"b": "1"}},
        hyperparameters={"max_depth": 5, "criterion": "gini"},
        hosts=("algo-1", "algo-2"),
    )
    env = TrainingEnvironment.from_files(MLPaths(root), environ={})
    sm = env.to_env_vars()
    assert sm["SM_CHANNEL_TRAIN"] == str(root / "input/data/train")
    assert json.loads(sm["SM_CHANNELS"]) == ["train", "validation"]
    assert json.loads(sm["SM_HPS"]) == {"max_depth": 5, "criterion": "gini"}
    assert sm["SM_HP_MAX_DEPTH"] == "5" and sm["SM_HP_CRITERION"] == "gini"
    assert json.loads(sm["SM_HOSTS"]) == ["algo-1", "algo-2"] and sm["SM_CURRENT_HOST"] == "algo-1"
    assert sm["SM_MODEL_DIR"] == str(root / "model")
    assert sm["SM_OUTPUT_DATA_DIR"] == str(root / "output/data")
    assert json.loads(sm["SM_USER_ARGS"]) == ["--criterion", "gini", "--max_depth", "5"]
    training_env = json.loads(sm["SM_TRAINING_ENV"])
    assert training_env["channel_input_dirs"]["validation"] == str(root / "input/data/validation")
    # the toolkit documents these two beside SM_TRAINING_ENV: the config files' contents
    assert json.loads(sm["SM_RESOURCE_CONFIG"]) == training_env["resource_config"]
    assert json.loads(sm["SM_RESOURCE_CONFIG"])["hosts"] == ["algo-1", "algo-2"]
    assert json.loads(sm["SM_INPUT_DATA_CONFIG"]) == training_env["input_data_config"]
    assert json.loads(sm["SM_INPUT_DATA_CONFIG"])["train"]["TrainingInputMode"] == "File"
    assert training_env["hyperparameters"] == {"max_depth": 5, "criterion": "gini"}
    # scripts written for the toolkit read these without a default (json.loads(os.environ[...]))
    resource_config = json.loads(sm["SM_RESOURCE_CONFIG"])
    assert resource_config["hosts"] == ["algo-1", "algo-2"] and resource_config["current_host"] == "algo-1"
    assert resource_config == training_env["resource_config"]
    input_data_config = json.loads(sm["SM_INPUT_DATA_CONFIG"])
    assert input_data_config["train"]["TrainingInputMode"] == "File"
    assert input_data_config == training_env["input_data_config"]
    assert sm["SM_OUTPUT_INTERMEDIATE_DIR"] == str(root / "output/intermediate")
    assert training_env["output_intermediate_dir"] == sm["SM_OUTPUT_INTERMEDIATE_DIR"]
    for key in (
        "SM_NUM_CPUS",
        "SM_NUM_GPUS",
        "SM_LOG_LEVEL",
        "SM_INPUT_DIR",
        "SM_INPUT_CONFIG_DIR",
        "SM_OUTPUT_DIR",
    ):
        assert sm[key]


def test_sm_channel_already_set_wins(tmp_path):
    root = make_ml_root(tmp_path, channels={"train": {"a": "1"}})
    env = TrainingEnvironment.from_files(MLPaths(root), environ={"SM_CHANNEL_TRAIN": "/data/train"})
    assert str(env.channel_dir("train")) == "/data/train"
    assert env.to_env_vars()["SM_CHANNEL_TRAIN"] == "/data/train"


def test_importing_byoc_touches_nothing(tmp_path):
    """No files, directories or environment reads at import time: /opt/ml may not exist yet."""
    base = tmp_path / "not-yet"
    code = (
        "import os, byoc, byoc.training, byoc.data, byoc.environment, byoc.artifact;"
        "assert not any(k.startswith('SM_') for k in os.environ)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        env=clean_environ(SAGEMAKER_BASE_DIR=str(base), PYTHONPATH=str(REPO / "container")),
    )
    assert result.returncode == 0, result.stderr
    assert not base.exists()


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 2),
        ({"cpu.max": "50000 100000\n"}, 1),
        ({"cpu.max": "400000 100000\n"}, 4),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2),
        ({}, None),
    ],
)
def test_cpu_quota_reads_cgroup_v2_and_v1(tmp_path, files, expected):
    """`docker run --cpus` limits CPU time, which sched_getaffinity does not see."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert environment.cpu_quota(tmp_path) == expected


def test_cpu_count_is_the_affinity_within_the_quota(monkeypatch):
    monkeypatch.setattr(environment.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7})
    monkeypatch.setattr(environment, "cpu_quota", lambda: 2)
    assert environment.cpu_count() == 2
    monkeypatch.setattr(environment, "cpu_quota", lambda: None)
    assert environment.cpu_count() == 8
    monkeypatch.setattr(environment, "cpu_quota", lambda: 16)
    assert environment.cpu_count() == 8
