"""byoc.training.check_tuning_objective: which _tuning_objective_metric a job can log."""

from __future__ import annotations

import pytest

from byoc.errors import ConfigError
from byoc.training import check_tuning_objective


def test_auto_logs_validation_metrics_from_cross_validation_without_a_validation_channel():
    """README: algorithm=auto logs validation:<metric> from its cross-validation, so a tuning job
    on the train channel alone is valid; a built-in algorithm would never log the line."""
    check_tuning_objective("validation:auc", "auto", "binary_classification", ["train"])
    with pytest.raises(ConfigError, match=r"needs a 'validation' channel") as info:
        check_tuning_objective("validation:auc", "random_forest", "binary_classification", ["train"])
    assert info.value.code == "bad_tuning_objective"
    with pytest.raises(ConfigError, match=r"needs a 'test' channel"):
        check_tuning_objective("test:auc", "auto", "binary_classification", ["train"])
