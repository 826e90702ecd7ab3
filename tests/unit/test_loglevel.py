"""train and serve take the same log-level settings, with the same precedence and spellings."""

from __future__ import annotations

import logging

import pytest

from byoc.environment import MLPaths, TrainingEnvironment
from byoc.errors import ConfigError
from byoc.serving.settings import ServingSettings


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, logging.INFO),
        ({"SM_LOG_LEVEL": "10"}, logging.DEBUG),
        ({"SAGEMAKER_CONTAINER_LOG_LEVEL": "warning", "SM_LOG_LEVEL": "10"}, logging.WARNING),
        ({"SAGEMAKER_CONTAINER_LOG_LEVEL": " ERROR "}, logging.ERROR),
        ({"SAGEMAKER_CONTAINER_LOG_LEVEL": "", "SM_LOG_LEVEL": "fatal"}, logging.CRITICAL),
    ],
)
def test_train_and_serve_read_the_same_level(tmp_path, environ, expected):
    training = TrainingEnvironment.from_dicts(MLPaths(tmp_path), environ=environ)
    assert training.log_level == expected
    assert ServingSettings.from_environ(environ).log_level == logging.getLevelName(expected).lower()
    assert training.to_env_vars()["SM_LOG_LEVEL"] == str(expected)  # the toolkit exports the number


@pytest.mark.parametrize("variable", ["SAGEMAKER_CONTAINER_LOG_LEVEL", "SM_LOG_LEVEL"])
def test_both_refuse_an_unknown_level_naming_the_setting(tmp_path, variable):
    training = TrainingEnvironment.from_dicts(MLPaths(tmp_path), environ={variable: "loud"})
    for read in (lambda: training.log_level, lambda: ServingSettings.from_environ({variable: "loud"})):
        with pytest.raises(ConfigError, match=f"'loud' \\({variable}\\)"):
            read()


def test_the_training_hyperparameter_wins_over_the_environment(tmp_path):
    training = TrainingEnvironment.from_dicts(
        MLPaths(tmp_path),
        hyperparameters={"sagemaker_container_log_level": "10"},
        environ={"SAGEMAKER_CONTAINER_LOG_LEVEL": "40"},
    )
    assert training.log_level == logging.DEBUG
