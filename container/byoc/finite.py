"""The one range check of numbers that become model input: features and a regression target.

Readers turn ``inf``, ``-inf`` and numbers beyond float64 (``1e400``) into infinities, which
scikit-learn refuses deep inside ``fit`` (or, for a target near the float limit, turns into
infinite errors and metrics).  Both are the data's fault, so they are refused here, before
fitting, naming the file, row and column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from byoc.errors import DataError

# Tree models (and compiled inference) compute in float32: a feature beyond it becomes inf there.
FEATURE_LIMIT = float(np.finfo(np.float32).max)
# A regression target is squared (variance, MSE): beyond 1e150 the sums overflow float64.
TARGET_LIMIT = 1e150
# check_features copies at most this many cells at a time (32 MB of float64).
CHECKED_CELLS = 2**22


def first_beyond(values: np.ndarray, limit: float) -> int | None:
    """Position of the first value with |value| > limit (infinities included, NaN not)."""
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(np.abs(values) > limit)
    return int(bad[0]) if bad.size else None


def describe(value: float) -> str:
    """A number for a message: ``inf`` says what it may have been written as (``1e400``)."""
    if np.isinf(value):
        sign = "-" if value < 0 else ""
        return f"{sign}inf (infinity, or a number beyond float64's ±1.8e308)"
    return repr(float(value))


def check_features(
    X: pd.DataFrame,
    numeric: list[str],
    *,
    locate: Callable[[int], str],
    column_names: Mapping[str, str],
) -> None:
    """Raise DataError at the first numeric feature value that is infinite or beyond float32
    (the first column holding one, in ``numeric``'s order, at its first such row).

    Columns are checked several at a time, up to :data:`CHECKED_CELLS` cells: a Series per
    column cost more than the check on a wide frame (2,000 columns)."""
    width = max(1, CHECKED_CELLS // max(1, len(X)))
    for start in range(0, len(numeric), width):
        names = numeric[start : start + width]
        block = X[names].to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            beyond = np.abs(block) > FEATURE_LIMIT
        hit = np.flatnonzero(beyond.any(axis=0))
        if not hit.size:
            continue
        j = int(hit[0])
        column, at = names[j], int(np.flatnonzero(beyond[:, j])[0])
        raise DataError(
            f"{locate(int(X.index[at]))}, {column_names.get(column, column)}: "
            f"{describe(block[at, j])} is not a usable feature value; numeric features must be "
            f"finite and within ±{FEATURE_LIMIT:.3g} (float32, which tree models compute in): "
            "leave the cell empty to mark it missing, or rescale the column",
            code="not_finite",
        )


def check_regression_target(
    y: np.ndarray, index: pd.Index, *, locate: Callable[[int], str], name: str
) -> None:
    """Raise DataError at the first target beyond ±1e150 (its square would overflow float64)."""
    at = first_beyond(y, TARGET_LIMIT)
    if at is None:
        return
    raise DataError(
        f"{locate(int(index[at]))}, target {name}: {describe(y[at])} is too large for "
        f"regression; targets must be finite and within ±{TARGET_LIMIT:.0e} (squared errors "
        "must fit in float64): rescale the target (e.g. divide it by a power of ten or take "
        "its logarithm)",
        code="not_finite",
    )
