"""Helpers shared by the table readers: turning pyarrow tables into one pandas frame."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.types as pat

from byoc.errors import DataError


def plain_types(table: pa.Table) -> pa.Table:
    """Keep the model's world to numbers and text: dates, times and booleans become text
    (the server receives them as text too), all-missing columns become float NaN."""
    for i, column in enumerate(table.schema):
        t = column.type
        if (
            pat.is_temporal(t)
            or pat.is_boolean(t)
            or pat.is_decimal(t)
            or pat.is_large_string(t)
            or pat.is_dictionary(t)
        ):
            target = pa.float64() if pat.is_decimal(t) else pa.string()
            table = table.set_column(i, column.name, table.column(i).cast(target))
        elif pat.is_null(t):
            table = table.set_column(i, column.name, table.column(i).cast(pa.float64()))
        elif pat.is_nested(t):
            raise DataError(
                f"column '{column.name}' holds nested values ({t}); flatten it into scalar "
                "columns (numbers or text)",
                code="nested_column",
            )
    return table


def unify_and_concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate same-named tables whose inferred types differ per file: int+float ->
    float, anything else mixed -> text (the preprocessing decides what text means)."""
    if len(tables) == 1:
        return tables[0]
    names = tables[0].column_names
    targets: dict[str, pa.DataType] = {}
    for name in names:
        kinds = {t.schema.field(name).type for t in tables} - {pa.null()}
        if len(kinds) <= 1:
            continue
        if all(pat.is_integer(k) or pat.is_floating(k) for k in kinds):
            targets[name] = pa.float64()
        else:
            targets[name] = pa.string()
    if targets:
        tables = [
            t.cast(pa.schema([pa.field(n, targets.get(n, t.schema.field(n).type)) for n in names]))
            for t in tables
        ]
    return pa.concat_tables(tables, promote_options="permissive")


def check_same_columns(
    channel: str, first_name: str, first: Sequence[str], name: str, columns: Sequence[str]
) -> None:
    if list(columns) == list(first):
        return
    missing = [c for c in first if c not in columns]
    extra = [c for c in columns if c not in first]
    detail = []
    if missing:
        detail.append(f"lacks {missing}")
    if extra:
        detail.append(f"has extra {extra}")
    if not detail:
        detail.append(f"orders them {list(columns)}")
    raise DataError(
        f"{name}: columns differ from {first_name} ({'; '.join(detail)}); every file of channel "
        f"'{channel}' must have the same columns in the same order",
        code="columns_differ",
    )


def check_unique(name: str, columns: Sequence[str]) -> None:
    seen: set[str] = set()
    for column in columns:
        if column in seen:
            raise DataError(
                f"{name}: column name '{column}' appears more than once; give every column a distinct name",
                code="duplicate_column",
            )
        seen.add(column)


def to_frame(table: pa.Table) -> pd.DataFrame:
    """pyarrow -> pandas; split blocks avoid one consolidating copy of every column."""
    table = table.rename_columns([str(c) for c in table.column_names])
    frame = table.to_pandas(split_blocks=True)
    del table
    return frame
