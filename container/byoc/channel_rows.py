"""Naming the file and the row in it for a bad cell or label of a channel scored against the
model's schema (validation and test channels in training, evaluate's test data).

The schema's own checks (:func:`byoc.preprocessing.coerce_features`,
:meth:`byoc.problem.Labels.encode`) count rows over whatever frame they are given, for
requests as much as for channels.  A channel's rows are counted as the train channel's are
(:meth:`byoc.data.ChannelData.locate`: from 1 in each file, after any header, before rows with
a missing target are dropped), so these wrappers take the culprit's position (from the check's
error, or by looking again) and name it so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from byoc import values
from byoc.errors import DataError

if TYPE_CHECKING:
    from byoc.artifact import Feature
    from byoc.data import ChannelData
    from byoc.problem import Labels


@dataclass(frozen=True)
class Rows:
    """Where a channel's frame rows come from, and how its files name columns and the target."""

    channel: str
    data: ChannelData
    columns: Mapping[str, str]  # feature -> how the file names it ("column 'age'", "column 2")
    target: str  # how the file names the target ("column 'label'", "column 0")
    header_hint: str = ""  # added when the culprit is row 1 of a CSV file read without header

    def error(self, row: int, what: str, message: str, code: str) -> DataError:
        """``<file>, row <n>, <what>: <message>`` for the frame's 0-based ``row``."""
        from byoc.data import media

        where, number = self.data.position(row)
        hint = ""
        if number == 1 and not self.data.has_header and self.data.content_type == media.CSV:
            hint = self.header_hint if self._header_at(row) else ""
        return DataError(f"{where}, row {number}, {what}: {message}{hint}", code=code)

    def _header_at(self, row: int, sample: int = 100) -> bool:
        """Whether the file's first row, read as data, is a header row by training's own rule
        (:func:`byoc.data.csv_header.detect_header`, judged against the rows below it)."""
        from byoc.data import csv_header

        cells = self.data.frame.iloc[row : row + sample].astype(object).itertuples(index=False)
        return csv_header.detect_header([["" if pd.isna(v) else str(v) for v in r] for r in cells]) is True


def coerce_features(X: pd.DataFrame, features: Sequence[Feature], rows: Rows) -> pd.DataFrame:
    """:func:`byoc.preprocessing.coerce_features`, its bad cell named by file and row."""
    from byoc import preprocessing

    try:
        return preprocessing.coerce_features(X, features, where=f"{rows.channel} channel")
    except preprocessing.NotANumber as exc:
        raise rows.error(
            int(X.index[exc.position]),
            rows.columns.get(exc.column, f"column '{exc.column}'"),
            f"holds {values.shown(exc.value)}, but the column is numeric in the training "
            "data; write a number there, or leave the cell empty for a missing value",
            "bad_value",
        ) from exc


def encode_labels(labels: Labels, y: pd.Series, rows: Rows) -> np.ndarray:
    """:meth:`byoc.problem.Labels.encode`, a label unseen in training named by file and row."""
    try:
        return labels.encode(y, where=f"{rows.channel} channel")
    except DataError as exc:
        pos = labels.first_unseen(y) if exc.code == "unseen_label" else None
        if pos is None:
            raise
        raise rows.error(
            int(y.index[pos]),
            f"target {rows.target}",
            f"holds {labels.shown(y, pos)}, {labels.not_seen}",
            "unseen_label",
        ) from exc


def regression_target(y: pd.Series, rows: Rows) -> np.ndarray:
    """The target as float64; a value that is not a number named by file and row."""
    numbers = pd.to_numeric(y, errors="coerce")
    bad = np.flatnonzero((numbers.isna() & y.notna()).to_numpy())
    if bad.size:
        pos = int(bad[0])
        raise rows.error(
            int(y.index[pos]),
            f"target {rows.target}",
            f"holds {y.iloc[pos]!r}, not a number; regression needs numeric targets",
            "bad_target",
        )
    return numbers.to_numpy(dtype=float)


def as_the_endpoint_names(channel: ChannelData, names: Sequence[str]) -> ChannelData:
    """``channel`` (a validation or test channel in training, evaluate's test data) with its column
    names (a header row, Parquet's, JSON keys) read as the endpoint reads a request's, by the one
    rule (:meth:`RequestSchema.feature_named <byoc.serving.schema.RequestSchema.feature_named>`:
    exactly, else stripped, else ignoring case) against ``names``, the train channel's columns
    (the model's features and its label): ``LABEL, Age`` names ``label`` and ``age``, where an
    exact comparison said the channel lacked them while the endpoint accepts those names.
    Unchanged when no name differs or two would become one (then the checks name them)."""
    import dataclasses

    from byoc.artifact import Feature
    from byoc.serving.schema import RequestSchema

    if not channel.has_header:
        return channel
    schema = RequestSchema([Feature(name, "categorical", "") for name in dict.fromkeys(names)])  # names only
    columns = [str(c) for c in channel.frame.columns]
    renamed = [schema.feature_named(c) or c for c in columns]
    if renamed == columns or len(set(renamed)) != len(renamed):
        return channel
    return dataclasses.replace(channel, frame=channel.frame.set_axis(renamed, axis=1))
