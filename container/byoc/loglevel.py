"""One log-level rule for ``train`` and ``serve``: which setting wins and which spellings count.

Precedence: the hyperparameter ``sagemaker_container_log_level`` (training jobs; the SDK's
``container_log_level``), then ``SAGEMAKER_CONTAINER_LOG_LEVEL`` (its environment twin, also set
for endpoints), then ``SM_LOG_LEVEL`` (what the AWS training toolkit exports), else INFO.
Spellings: logging's numbers 10-50 or the names DEBUG, INFO, WARNING (WARN), ERROR, CRITICAL
(FATAL), in any case; anything else is a configuration error naming the setting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from byoc.errors import ConfigError

HYPERPARAMETER = "sagemaker_container_log_level"
VARIABLES = ("SAGEMAKER_CONTAINER_LOG_LEVEL", "SM_LOG_LEVEL")
_LEVELS = {
    "10": logging.DEBUG,
    "20": logging.INFO,
    "30": logging.WARNING,
    "40": logging.ERROR,
    "50": logging.CRITICAL,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}


def parse(raw: object, source: str) -> int:
    """``raw`` as a logging level, or ConfigError naming ``source`` and the accepted spellings."""
    level = _LEVELS.get(str(raw).strip().lower())
    if level is None:
        raise ConfigError(
            f"log level {raw!r} ({source}) is not one of 10, 20, 30, 40, 50 or DEBUG, INFO, WARNING, "
            "ERROR, CRITICAL"
        )
    return level


def resolve(environ: Mapping[str, str], hyperparameter: object = None) -> int:
    """The level the settings ask for, by the precedence above."""
    candidates = [(f"hyperparameter '{HYPERPARAMETER}'", hyperparameter)]
    candidates += [(name, environ.get(name)) for name in VARIABLES]
    for source, raw in candidates:
        if raw is not None and str(raw).strip():
            return parse(raw, source)
    return logging.INFO


def name(level: int) -> str:
    """``20`` -> ``"info"`` (gunicorn's spelling)."""
    return logging.getLevelName(level).lower()
