"""Hive partition directories (``color=red/``): columns whose values live in the path.

Spark's ``partitionBy``, Glue and Athena write a column's value into the key of every object
(``train/color=red/part-0.parquet``) and leave it out of the file.  Spark, Athena and
pyarrow.dataset read it back as a column; so does byoc, or the column would be silently lost.
The value is restored as text, as a CSV cell is written, so :func:`byoc.values.read_arrow`
types it as it types any column (numbers when every value is one, else categories): it is an
ordinary feature, which requests send as such.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING
from urllib.parse import unquote

import pyarrow as pa

from byoc.errors import DataError

if TYPE_CHECKING:
    from byoc.data.sources import Source

log = logging.getLogger(__name__)

# Hive's (and Spark's) directory for a null partition value.
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"

Partitions = tuple[tuple[str, str | None], ...]


def hive_partitions(rel: PurePath) -> Partitions:
    """The ``key=value`` directories of ``rel`` (a file's path in its channel), outermost first;
    keys and values are unescaped as Spark escapes them (``%3D`` for ``=``)."""
    found: list[tuple[str, str | None]] = []
    for part in rel.parent.parts:
        key, sep, value = part.partition("=")
        if not sep or not key:
            continue
        key, value = unquote(key), unquote(value)
        if any(key == seen for seen, _ in found):
            raise DataError(
                f"{rel}: the directory name '{key}=' appears twice in its path; a partition "
                "column has one value per file: remove one of the directories",
                code="bad_partitions",
            )
        found.append((key, None if value == HIVE_NULL else value))
    return tuple(found)


def check_same_keys(channel: str, sources: Sequence[Source]) -> None:
    """Every file of a channel sits under the same partition keys, in the same order: a file
    outside them would lack the column (filled with nulls, or shifted, when concatenated)."""
    if not sources:
        return
    first = sources[0]
    keys = [key for key, _ in first.partitions]
    for source in sources[1:]:
        other = [key for key, _ in source.partitions]
        if other != keys:
            raise DataError(
                f"{source.name}: its partition directories ({_spell(other)}) differ from "
                f"{first.name}'s ({_spell(keys)}); every file of channel '{channel}' must sit under "
                "the same key=value directories (as Spark's partitionBy writes them), whose keys "
                "become columns: move the files so that they do, or point the channel at one "
                "partition's directory",
                code="bad_partitions",
            )
    if keys:
        log.info(
            "channel %s: column(s) %s restored from the partition directories (key=value) of its files",
            channel,
            ", ".join(repr(key) for key in keys),
        )


def _spell(keys: Sequence[str]) -> str:
    return ", ".join(f"{key}=..." for key in keys) if keys else "none"


def with_partitions(table: pa.Table, source: Source, *, named: bool) -> pa.Table:
    """``table`` (the file ``source``) with its partition values appended as text columns,
    after the file's own as Spark puts them: named by their key when the channel's columns have
    names (``named``), else by position, as the file's other columns are."""
    for key, value in source.partitions:
        if named and key in table.column_names:
            log.warning(
                "%s holds column '%s' and sits under the directory '%s=%s': the file's values are kept",
                source.name,
                key,
                key,
                value,
            )
            continue
        column = pa.repeat(pa.scalar(value, type=pa.string()), table.num_rows)
        table = table.append_column(key if named else str(table.num_columns), column)
    return table
