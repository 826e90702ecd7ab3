"""application/x-parquet: pyarrow's reader; every file of a channel must share one schema."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from byoc.arrow_tables import without_saved_index
from byoc.arrowerrors import blames_input
from byoc.data.partitions import with_partitions
from byoc.data.sources import Source, io_failure
from byoc.data.tabular import (
    Read,
    SparseLayout,
    check_same_columns,
    check_same_kinds,
    check_unique,
    label_column,
    plain_types,
    refuse_nul_cells,
    to_frame,
    unify_and_concat,
    whole_decimals,
)
from byoc.errors import DataError

MAGIC = b"PAR1"
DUPLICATE_FIX = "rename the copies so that every column has a distinct name, and write the file again"


def _read_one(source: Source) -> pa.Table:
    head = source.head(4)
    if head != MAGIC:
        raise DataError(
            f"{source.name}: not a Parquet file (it does not start with the 'PAR1' magic bytes); "
            "upload Parquet, or set the channel's ContentType to the file's real format "
            "(text/csv, application/jsonlines, text/libsvm)",
            code="not_parquet",
        )
    try:
        data = None if source.path is not None and not source.compressed else source.read_all()

        def handle() -> str | pa.BufferReader:
            return str(source.path) if data is None else pa.BufferReader(data)

        # pyarrow's reader cannot tell two columns of one name apart ("Multiple matches for
        # FieldRef"): name them from the footer, as the CSV reader does, not call the file corrupt.
        check_unique(source.name, [str(name) for name in pq.read_schema(handle()).names], fix=DUPLICATE_FIX)
        table = pq.read_table(handle())
    except (pa.ArrowException, OSError, ValueError) as exc:
        if not blames_input(exc):
            raise
        if (failed := io_failure(source.name, exc)) is not None:
            raise failed from exc
        raise DataError(
            f"{source.name}: cannot be read as Parquet ({exc}); the file is corrupt or "
            "truncated: write it again",
            code="bad_parquet",
        ) from exc
    return without_saved_index(table)  # a pandas index saved alongside the data is not a feature


def read(
    sources: Sequence[Source],
    *,
    channel: str,
    header: bool | None,
    params: Mapping[str, str],
    typed: bool = True,
    label: int | str | None = None,
    like: SparseLayout | None = None,
) -> Read:
    tables: list[pa.Table] = []
    first: list[str] | None = None
    for source in sources:
        table = whole_decimals(with_partitions(_read_one(source), source, named=True), label)
        source.rows = table.num_rows
        columns = [str(c) for c in table.column_names]
        if first is None:
            first = columns
        else:
            check_same_columns(channel, sources[0].name, first, source.name, columns)
        try:
            tables.append(plain_types(table))
        except DataError as exc:
            raise DataError(f"{source.name}: {exc.message}", code=exc.code) from exc
    refuse_nul_cells(tables, [source.name for source in sources])
    check_same_kinds(tables, [source.name for source in sources], typed=typed)
    table = unify_and_concat(tables)
    if table.num_rows == 0:
        raise DataError(f"channel '{channel}': the Parquet files hold no rows", code="empty_channel")
    return Read(to_frame(table, typed=typed, as_written=label_column(table, True, label)), True)
