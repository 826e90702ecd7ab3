"""Autopilot's objective metric names, mapped onto byoc's metric computation.

Names and defaults follow SageMaker Autopilot (``AutoMLJobObjective``): regression MSE, binary
F1, multiclass Accuracy.  Values come from :func:`byoc.metrics.compute`, so the score the search
ranks by is the number the job logs as ``validation:<metric>=``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from byoc.artifact import BINARY, MULTICLASS, REGRESSION
from byoc.errors import HyperparameterError
from byoc.metrics import MAXIMISE

# Autopilot name -> byoc.metrics key, per problem type.  The first entry is the default.
_OBJECTIVES: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {
        REGRESSION: MappingProxyType({"MSE": "mse", "RMSE": "rmse", "MAE": "mae", "R2": "r2"}),
        BINARY: MappingProxyType(
            {
                "F1": "f1",
                "Accuracy": "accuracy",
                "AUC": "auc",
                "BalancedAccuracy": "balanced_accuracy",
                "Precision": "precision",
                "Recall": "recall",
            }
        ),
        MULTICLASS: MappingProxyType(
            {
                "Accuracy": "accuracy",
                "BalancedAccuracy": "balanced_accuracy",
                "F1macro": "f1_macro",
                "PrecisionMacro": "precision",
                "RecallMacro": "recall",
            }
        ),
    }
)


@dataclass(frozen=True)
class Objective:
    """What the search optimises: Autopilot's ``name`` and byoc's metric ``key``."""

    name: str
    key: str
    problem_type: str

    @property
    def maximise(self) -> bool:
        return self.key in MAXIMISE

    def better(self, a: float, b: float) -> bool:
        """Is score ``a`` strictly better than ``b``?"""
        return a > b if self.maximise else a < b

    def loss(self, score: float) -> float:
        """A value to minimise whatever the direction (NaN -> +inf)."""
        if score != score:
            return float("inf")
        return -score if self.maximise else score

    @property
    def needs_proba(self) -> bool:
        return self.key in ("auc", "log_loss")


def all_names() -> tuple[str, ...]:
    """Every objective name of every problem type, once (for the hyperparameter's declaration)."""
    return tuple(dict.fromkeys(name for table in _OBJECTIVES.values() for name in table))


def names(problem_type: str) -> tuple[str, ...]:
    return tuple(_OBJECTIVES[problem_type])


def resolve(requested: str | None, problem_type: str) -> Objective:
    """The objective for ``objective_metric`` (case-insensitive), or the problem type's default."""
    table = _OBJECTIVES[problem_type]
    if requested is None or not str(requested).strip():
        name = next(iter(table))
        return Objective(name, table[name], problem_type)
    wanted = str(requested).strip().lower()
    for name, key in table.items():
        if name.lower() == wanted:
            return Objective(name, key, problem_type)
    other = [p for p, t in _OBJECTIVES.items() if p != problem_type and any(n.lower() == wanted for n in t)]
    hint = f" ({requested} is a {' or '.join(other)} metric)" if other else ""
    raise HyperparameterError(
        f"hyperparameter 'objective_metric'={requested!r} does not apply to a {problem_type} problem"
        f"{hint}; use one of {', '.join(table)} (case-insensitive), or leave it unset for "
        f"{next(iter(table))}",
        code="bad_objective",
    )
