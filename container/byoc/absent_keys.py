"""JSON keys a record may leave out: training's evidence, recorded for the server.

Training reads a JSON Lines record that lacks a key as a record whose value for that column is
missing (the column exists because some other record names it), exactly as it reads ``null``.
A server that refused such a record as "lacks column" would refuse the very lines the model was
trained on, so the model records which features were missing in its JSON Lines training records
(:attr:`byoc.artifact.Feature.optional`) and the server reads a record without one of those keys
as training did.  Every other key stays required, and an unknown key stays refused: a misspelled
key is never read as an absent one.  A validation channel (training) and a test file
(``evaluate``) are held to the server's rule (:func:`check_record_keys`): a record the endpoint
refuses is refused there too, rather than scored as a row of missing values.

A key that holds a value in only a handful of many records is most often a misspelling of
another key (``agee`` on one line of thousands); it still trains as a feature (a sparse optional
field is legitimate data), but the log says so, naming the key, its records and the fix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from byoc.artifact import Feature
from byoc.data.media import JSONLINES
from byoc.declarations import did_you_mean

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from byoc.data import ChannelData
    from byoc.data.partitions import Partitions
    from byoc.serving.schema import RequestSchema

RARE_MOST = 3  # a key is "rare" when it holds a value in at most this many records ...
RARE_SHARE = 0.05  # ... and in less than this share of them
RARE_SHOWN = 3  # records named in the warning


def optional_columns(X: pd.DataFrame, content_type: str, *, records: bool) -> frozenset[str]:
    """The columns of ``X`` (the train channel's features) missing in some record, when the
    channel is JSON Lines of objects (``records``): their keys a record may leave out.  None for
    JSON Lines of arrays (positional: no key is ever left out) and other formats, whose columns a
    request names in full (a CSV header, Parquet, ``dataframe_split``)."""
    if content_type != JSONLINES or not records:
        return frozenset()
    missing = X.isna().any()
    return frozenset(str(name) for name in X.columns if missing[name])


def mark_optional(features: Sequence[Feature], optional: frozenset[str]) -> tuple[Feature, ...]:
    """``features`` with :attr:`~byoc.artifact.Feature.optional` set on those named in ``optional``."""
    return tuple(dataclasses.replace(f, optional=True) if f.name in optional else f for f in features)


def channel_may_lack(optional: Iterable[str], content_type: str) -> frozenset[str]:
    """The ``optional`` columns a validation or test channel of ``content_type`` may lack
    altogether: a JSON Lines channel none of whose records names one reads it as missing, as
    training read each record without it; a table of another format names every column."""
    return frozenset(optional) if content_type == JSONLINES else frozenset()


def rare_key_warnings(
    X: pd.DataFrame, content_type: str, locate: Callable[[int], str], *, records: bool
) -> list[str]:
    """One message per JSON Lines key that holds a value in only a handful of the records of
    ``X`` (the train channel's encoded features, read from JSON objects when ``records``;
    ``locate`` names a record by its index)."""
    if content_type != JSONLINES or not records:
        return []
    rows = len(X)
    present = X.notna()
    counts = present.sum()
    names = [str(c) for c in X.columns]
    out = []
    for column, count in counts.items():
        count = int(count)
        if count == 0 or count > RARE_MOST or count >= RARE_SHARE * rows:
            continue
        where = [locate(int(i)) for i in X.index[present[column].to_numpy()][:RARE_SHOWN]]
        close = did_you_mean(str(column), [n for n in names if n != column])
        out.append(
            f"key {str(column)!r} holds a value in only {count} of {rows} JSON Lines records "
            f"({'; '.join(where)}{', ...' if count > RARE_SHOWN else ''}); it is trained as a feature "
            f"missing in the other {rows - count}, which requests may leave out. If it is a "
            f"misspelling{f' ({close[2:]})' if close else ''}, correct the key in those records "
            "and train again; if it is a sparse optional field, nothing needs doing"
        )
    return out


def check_record_keys(
    data: ChannelData,
    X: pd.DataFrame,
    directory: Path,
    features: Sequence[str],
    optional: Collection[str],
    label: str | None,
    *,
    channel: str,
) -> None:
    """Refuse the JSON Lines records of ``channel`` (a validation channel, evaluate's test data)
    whose keys the endpoint refuses: one that leaves out a feature other than the ``optional``
    ones (missing in training's records), or names an unknown key.  The server's own check
    (:meth:`RequestSchema.named <byoc.serving.schema.RequestSchema.named>`) names file, line and
    key, where the frame holds an absent key as a missing value and the channel would be scored
    on rows the endpoint answers 400.

    ``X`` is the channel's features as read from ``data``, whose files are those under
    ``directory``; ``features`` the model's names, ``label`` the target's key.  The frame cannot
    tell ``null`` from an absent key, so the records that may lack one are parsed again in their
    files: those whose row holds a missing value of a feature no record may leave out or a value
    of an unknown key, and the first when a feature's column is absent from every record (a
    record's ``null``s of optional features, however many, cost nothing)."""
    import numpy as np

    from byoc.data.jsonlines_reader import record_lines
    from byoc.data.sources import directory_sources
    from byoc.json_objects import loads

    if data.content_type != JSONLINES or not data.has_header or X.empty:  # arrays: positional
        return
    names = set(features)
    unknown = [c for c in X.columns if str(c) not in names]
    required = [c for c in X.columns if str(c) in names and str(c) not in optional]
    suspect: np.ndarray = np.asarray(X[required].isna().to_numpy().any(axis=1), dtype=bool)
    if unknown:
        suspect |= X[unknown].notna().to_numpy().any(axis=1)
    rows = X.index[suspect].tolist()
    if not names <= {str(c) for c in X.columns}:
        rows.insert(0, X.index[0])
    suspects: dict[str, dict[int, int]] = {}  # file -> its record number -> the frame's row
    for row in rows:
        name, number = data.position(int(row))
        suspects.setdefault(name, {})[number] = int(row)
    if not suspects:
        return
    schema = _key_schema(features, optional)
    named = _key_schema([*features, label] if label is not None and label not in names else features)
    for source in directory_sources(channel, directory):
        numbers = suspects.get(source.name)
        if not numbers:
            continue
        for record, line in enumerate(record_lines(source), start=1):
            row = numbers.pop(record, None)
            if row is None:
                continue
            given = [*loads(line.text), *_partition_keys(X, row, source.partitions)]
            keys = [k for k in dict.fromkeys(given) if named.feature_named(k) != label]
            schema.named(keys, where=f"{source.name}, line {line.number}", record=True)
            if not numbers:
                break


def _partition_keys(X: pd.DataFrame, row: int, partitions: Partitions) -> list[str]:
    """The keys of a file's ``key=value`` directories that gave the record at ``row`` its value.
    A file whose records hold the key keeps its own values (:func:`byoc.data.partitions.with_partitions`),
    so a record of it without the key is missing it, as the endpoint would refuse it, rather
    than given the directory's value: the directory gave none where the cell is missing."""
    from pandas import isna

    given = []
    for key, value in partitions:
        cell: Any = X.at[row, key] if key in X.columns else None
        if value is None or key not in X.columns or not isna(cell):
            given.append(key)
    return given


def _key_schema(names: Sequence[str], optional: Collection[str] = ()) -> RequestSchema:
    """The server's schema of features ``names`` for naming a record's keys by its rule, the
    ``optional`` ones a record may leave out (only names are compared: a kind is a placeholder)."""
    from byoc.serving.schema import RequestSchema

    return RequestSchema([Feature(name, "categorical", "", optional=name in optional) for name in names])
