"""Does a CSV channel start with a header row?  Decided from every file of the channel.

Deciding from the first file alone read a header-only first file as data (and so every other
file's header too), and read a later file's header as data when the first file had none.  So
the evidence (the rows below each file's first line) is pooled from every file, each file's
first record is judged against it, and the files must agree: one starting with a data row where
the others start with the header, or the reverse, is refused, naming it.  Within a file
(``cat a.csv b.csv``) or a Pipe-mode stream, copies of the header row are dropped, and a header
with the columns in another order is refused, as File mode refuses such a file.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain, islice

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from byoc import values
from byoc.data.sources import Source
from byoc.errors import DataError

log = logging.getLogger(__name__)

EVIDENCE_ROWS = 400  # rows below the first lines, pooled over the channel's first files
BOM = "\ufeff"

Row = Sequence[str]


def _is_missing(cell: str) -> bool:
    return values.missing_in_numbers(cell)


def _is_number(cell: str) -> bool:
    return values.number_text(cell) is not None


def is_blank(row: Row) -> bool:
    return not any(c.strip() for c in row)


@dataclass
class _Column:
    cells: Counter[str] = field(default_factory=Counter)  # stripped cells, for all-text data
    present: int = 0  # cells that are not missing
    text: int = 0  # of those, cells that are not numbers

    def count(self, cell: str, sign: int = 1) -> None:
        self.cells[cell.strip()] += sign
        if not _is_missing(cell):
            self.present += sign
            self.text += sign * (not _is_number(cell))

    def repeats(self) -> bool:
        return sum(self.cells.values()) > sum(1 for n in self.cells.values() if n > 0)


def _counted(columns: list[_Column], rows: Sequence[Row], sign: int = 1) -> list[_Column]:
    for row in rows:
        columns.extend(_Column() for _ in range(len(row) - len(columns)))
        for column, cell in zip(columns, row, strict=False):
            column.count(cell, sign)
    return columns


class Evidence:
    """Column statistics of data rows, computed once to judge many candidate header rows
    (every file's first record) by the rules of :func:`detect_header`."""

    def __init__(self, body: Sequence[Row]) -> None:
        rows = [[r[0].lstrip(BOM), *r[1:]] for r in body if not is_blank(r)]
        self.size = len(rows)
        self.by_cells: dict[tuple[str, ...], list[Row]] = {}
        for row in rows:
            self.by_cells.setdefault(tuple(sorted(row)), []).append(row)
        self.columns = _counted([], rows)

    def is_header(self, first: Row) -> bool:
        """Yes when some column holds numbers below but text in ``first``.  For all-text data:
        yes when ``first``'s values are distinct, non-empty and never appear in their column
        while some column repeats values (so absence is meaningful).  Rows below holding
        ``first``'s cells, in any order, are no evidence: they are the header again (Pipe mode
        streams header files back to back; ``cat`` joins them), refused later if reordered."""
        again = self.by_cells.get(tuple(sorted(first)), [])
        if not first or self.size == len(again):
            return False
        columns = self.columns[: len(first)]
        if again:  # uncount them, on copies
            copies = [_Column(Counter(c.cells), c.present, c.text) for c in columns]
            columns = _counted(copies, again, -1)[: len(first)]
        numeric = [j for j, column in enumerate(columns) if column.present and not column.text]
        if numeric:
            return any(not _is_missing(first[j]) and not _is_number(first[j]) for j in numeric)
        names = [c.strip() for c in first]
        if any(not n or _is_number(n) for n in names) or len(set(names)) != len(names):
            return False  # column names are distinct, non-empty and not numbers
        if any(column.cells[name] > 0 for name, column in zip(names, columns, strict=False)):
            return False
        return any(column.repeats() for column in columns)


def detect_header(rows: Sequence[Row]) -> bool:
    """Is the first row of one file's rows a header?  (A single row is data.)"""
    rows = [r for r in rows if not is_blank(r)]
    return len(rows) >= 2 and Evidence(rows[1:]).is_header(rows[0])


def decide(samples: Sequence[tuple[str, Sequence[Row]]], channel: str) -> bool:
    """Whether the channel's files start with a header row, from every file's first rows
    (``(name, rows)`` in file order, blank rows left out); refuses files that disagree."""
    firsts = [rows[0] if rows else None for _, rows in samples]
    evidence = Evidence(list(islice(chain.from_iterable(rows[1:] for _, rows in samples), EVIDENCE_ROWS)))
    first_name, header = samples[0][0], firsts[0]
    has_header = header is not None and evidence.is_header(header)
    for (name, _), first in zip(samples[1:], firsts[1:], strict=True):
        if first is None or first == header or evidence.is_header(first) == has_header:
            continue  # a different header is refused with the columns it lacks or adds
        raise mixed_headers(channel, name, first, first_name, header or [], data_first=has_header)
    return has_header


def _shown(row: Row) -> str:
    text = ",".join(row)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def mixed_headers(
    channel: str, name: str, first: Row, first_name: str, header: Row, *, data_first: bool
) -> DataError:
    if data_first:
        cause = (
            f"{name}: its first line {_shown(first)} is data, but {first_name} starts with the header "
            f"row {_shown(header)}; add that header line to {name}"
        )
    else:
        cause = (
            f"{name}: its first line {_shown(first)} is a header row, but {first_name} starts with "
            f"data ({_shown(header)}); remove the header line from {name}, or add it to every file"
        )
    return DataError(
        f"{cause} (every file of channel '{channel}' must start with the same header row, or none "
        "may; set the 'header' hyperparameter if the detection is wrong)",
        code="mixed_header",
    )


def drop_header_copies(source: Source, table: pa.Table, channel: str) -> pa.Table:
    """Drop rows that repeat the header (``cat a.csv b.csv``; Pipe mode streams header files
    back to back), logging how many; refuse a header with the columns in another order."""
    names = [str(c) for c in table.column_names]
    if not names or table.num_rows == 0:
        return table
    spellings = pa.array(sorted(set(names) | {BOM + n for n in names}), type=pa.string())
    candidates = pc.fill_null(pc.is_in(table.column(0), value_set=spellings), False)
    if not pc.any(candidates).as_py():
        return table  # the fast path: no row starts with a column name
    indices = np.flatnonzero(candidates.to_numpy(zero_copy_only=False))
    cells = [table.column(i).take(pa.array(indices)).to_pylist() for i in range(len(names))]
    dropped = []
    for index, row in zip(indices, zip(*cells, strict=True), strict=True):
        row = (str(row[0]).lstrip(BOM), *row[1:])
        if list(row) == names:
            dropped.append(index)
        elif sorted(map(str, row)) == sorted(names):
            raise _reordered(source, [str(c) for c in row], channel)
    if not dropped:
        return table
    log.info("%s: dropped %d line(s) repeating the header row", source.name, len(dropped))
    keep = np.ones(table.num_rows, dtype=bool)
    keep[dropped] = False
    return table.filter(pa.array(keep))


def _reordered(source: Source, row: list[str], channel: str) -> DataError:
    line = _line_of(source, row)
    where = f"{source.name}, line {line}" if line else source.name
    stream = " (Pipe mode streams the prefix's objects back to back)" if source.path is None else ""
    return DataError(
        f"{where}: columns differ from the header on line 1 (orders them {row}){stream}; every file "
        f"of channel '{channel}' must have the same columns in the same order",
        code="columns_differ",
    )


def _line_of(source: Source, row: list[str]) -> int | None:
    """The line (counted from 1) where the record ``row`` first appears after line 1."""
    with source.open() as fh:
        reader = csv.reader(io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline=""))
        try:
            next(reader, None)
            for record in reader:
                if record and [record[0].lstrip(BOM), *record[1:]] == row:
                    return reader.line_num
        except csv.Error:  # a field past the csv module's limit (byoc.csvfields): no line to name
            return None
    return None
