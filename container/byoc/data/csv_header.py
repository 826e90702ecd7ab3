"""Does a CSV channel start with a header row?  Decided from every file of the channel.

Deciding from the first file alone read a header-only first file as data (and so every other
file's header too), and read a later file's header as data when the first file had none.  So
the evidence (the rows below each file's first line) is pooled from every file, each file's
first record is judged against it, and the files must agree: one starting with a data row where
the others start with the header, or the reverse, is refused, naming it.  A first line that
holds clues of both a header and data (:meth:`Evidence.judge`) is refused, naming the file and
line 1 and asking for the ``header`` hyperparameter; the decision is logged with its reason.
Within a file (``cat a.csv b.csv``) or a Pipe-mode stream, copies of the header row are
dropped, and a header with the columns in another order is refused, as File mode refuses such a
file.
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
from byoc.wide_text import UTF8_BOM_TEXT

log = logging.getLogger(__name__)

EVIDENCE_ROWS = 400  # rows below the first lines, pooled over the channel's first files

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
    spread_: tuple[int, int, int] | None = None  # see spread()

    def count(self, cell: str, sign: int = 1) -> None:
        self.spread_ = None
        self.cells[cell.strip()] += sign
        if not _is_missing(cell):
            self.present += sign
            self.text += sign * (not _is_number(cell))

    def repeats(self) -> bool:
        return sum(self.cells.values()) > sum(1 for n in self.cells.values() if n > 0)

    def spread(self) -> tuple[int, int, int]:
        """(distinct values, cells, values seen once) of the non-blank cells, counted once."""
        if self.spread_ is None:
            counts = [n for v, n in self.cells.items() if n > 0 and v]
            self.spread_ = (len(counts), sum(counts), sum(1 for n in counts if n == 1))
        return self.spread_


def _counted(columns: list[_Column], rows: Sequence[Row], sign: int = 1) -> list[_Column]:
    for row in rows:
        columns.extend(_Column() for _ in range(len(row) - len(columns)))
        for column, cell in zip(columns, row, strict=False):
            column.count(cell, sign)
    return columns


CLOSED_UNSEEN = 0.02
"""A text column is *closed* when a data row would hold a value new to it in fewer than 1 row
in 50, by the Good-Turing estimate with add-one smoothing, (values seen once + 1) / (cells +
1): at least 49 cells below, none of them unique, or proportionally more.  A new value on line 1
of a closed column is evidence of a header; in a column of many rare values it is no evidence."""


@dataclass(frozen=True)
class Verdict:
    """What line 1 is: ``header`` True (a header row), False (data) or None (cannot tell), the
    ``reason`` (for the log), and the clues of each side (for the message when it cannot tell).
    ``doubt``: the line was read as data although it could be a header with columns named by
    numbers (only numbers agree with the rows below, its other cells are new names)."""

    header: bool | None
    reason: str
    for_header: tuple[str, ...] = ()
    for_data: tuple[str, ...] = ()
    doubt: str | None = None
    marker: tuple[int, str] | None = None  # a non-number in a numeric column: (column, cell)


def _listed(clues: Sequence[str]) -> str:
    return "; ".join(clues[:3]) + ("; ..." if len(clues) > 3 else "")


SHOWN = 4  # columns and cells named in a clue


def _columns(cells: Sequence[tuple[int, str]]) -> str:
    more = ", ..." if len(cells) > SHOWN else ""
    if len(cells) == 1:
        return f"column {cells[0][0]}"
    return "columns " + ", ".join(str(j) for j, _ in cells[:SHOWN]) + more


def _quoted(cell: str, limit: int = 40) -> str:
    """A cell for a message: quoted, cut short (a cell may hold megabytes)."""
    return repr(cell if len(cell) <= limit else cell[: limit - 3] + "...")


def _cells(cells: Sequence[tuple[int, str]]) -> str:
    return ", ".join(_quoted(c) for _, c in cells[:SHOWN]) + (", ..." if len(cells) > SHOWN else "")


def _verb(cells: Sequence[tuple[int, str]]) -> str:
    return "holds" if len(cells) == 1 else "hold"


class Evidence:
    """Column statistics of data rows, computed once to judge many candidate header rows
    (every file's first record) by the rules of :meth:`judge`."""

    def __init__(self, body: Sequence[Row]) -> None:
        rows = [[r[0].lstrip(UTF8_BOM_TEXT), *r[1:]] for r in body if not is_blank(r)]
        self.size = len(rows)
        self.by_cells: dict[tuple[str, ...], list[Row]] = {}
        for row in rows:
            self.by_cells.setdefault(tuple(sorted(row)), []).append(row)
        self.columns = _counted([], rows)

    def judge(self, first: Row) -> Verdict:
        """Is ``first`` a header row (True), a data row (False), or cannot it be told (None)?
        Each cell of ``first`` is a clue, judged against its column in the rows below:

        - in a column of numbers: a text (not a missing word) is a header's clue, a column name;
          a number is data's (a header may name a column by a number, a year, but rarely);
        - in a column of only missing cells: a number is data's clue;
        - in a column of text: a value that occurs below is data's clue; a name (not a number)
          that never occurs below is a header's when the column is closed (:data:`CLOSED_UNSEEN`)
          (a data row would hold a value new to it once in 50 rows or less); in a column with
          fewer rows, all repeated, it is a weak clue, which only raises a doubt;
        - a missing cell is no clue.

        Clues of one side decide.  Clues of both sides cannot be told apart: a header naming a
        column ``2019`` over numbers, or a data row holding ``?`` (a missing number, as UCI data
        marks it) or ``4o`` (a typo) in a column of numbers; either guess would silently train
        a wrong model (a class named like the label column; a row dropped and the features
        named after its values), so None: the caller refuses and asks for ``header``.  With no
        clue at all (new names over text columns that are not closed), the line is a header
        when every cell is a distinct name that never occurs below while some column repeats
        values (so absence is meaningful), else data.  Rows below holding ``first``'s cells, in any order, are no
        evidence: they are the header again (Pipe mode streams header files back to back;
        ``cat`` joins them), refused later if reordered."""
        again = self.by_cells.get(tuple(sorted(first)), [])
        if not first or self.size == 0:
            return Verdict(False, "no other line to compare it with")
        if self.size == len(again):
            return Verdict(False, "every other line repeats it")
        columns = self.columns[: len(first)]
        if again:  # uncount them, on copies
            copies = [_Column(Counter(c.cells), c.present, c.text) for c in columns]
            columns = _counted(copies, again, -1)[: len(first)]
        non_numbers: list[tuple[int, str]] = []  # in a column of numbers: a header's clue
        numbers: list[tuple[int, str]] = []  # in a column of numbers: data's clue
        lone: list[tuple[int, str]] = []  # a number over a column of missing cells: data's clue
        seen: list[tuple[int, str]] = []  # a text that occurs below: data's clue
        closed: list[str] = []  # a new name in a closed column: a header's clue
        new: list[tuple[int, str]] = []  # a new name in a column of repeated values: a weak one
        for j, (cell, column) in enumerate(zip(first, columns, strict=False)):
            name = cell.strip()
            if not column.text:  # numbers below, or only missing cells
                if _is_missing(name):
                    continue
                if _is_number(name):
                    (numbers if column.present else lone).append((j, name))
                elif column.present:
                    non_numbers.append((j, name))
            elif not name:
                continue
            elif column.cells[name] > 0:
                seen.append((j, name))
            elif not _is_number(name):
                distinct, cells, once = column.spread()
                if (once + 1) / (cells + 1) <= CLOSED_UNSEEN:
                    closed.append(
                        f"column {j} holds only {distinct} distinct value{'s' if distinct > 1 else ''} in "
                        f"{cells} rows below, not {_quoted(name)}"
                    )
                elif once == 0:  # every value repeats, but too few rows to be sure
                    new.append((j, name))
        for_header: list[str] = []
        for_data: list[str] = []
        if non_numbers:
            texts = _cells(non_numbers)
            for_header.append(f"{_columns(non_numbers)} {_verb(non_numbers)} numbers below but {texts} here")
        for_header += closed
        if numbers:
            for_data.append(f"{_columns(numbers)} {_verb(numbers)} numbers as below ({_cells(numbers)})")
        if lone:
            for_data.append(f"{_columns(lone)} {_verb(lone)} a number ({_cells(lone)}), nothing below")
        if seen:
            for_data.append(
                f"{_cells(seen)} in {_columns(seen)} also occur{'s' if len(seen) == 1 else ''} below"
            )
        marker = non_numbers[0] if non_numbers else None
        if for_header and for_data:
            return Verdict(None, "it holds clues of both", tuple(for_header), tuple(for_data), marker=marker)
        if for_header:
            return Verdict(True, _listed(for_header), tuple(for_header), marker=marker)
        if for_data:
            doubt = None
            if new and not seen:
                doubt = f"{_cells(new)} in {_columns(new)} never occur{'s' if len(new) == 1 else ''} below"
            return Verdict(False, _listed(for_data), (), tuple(for_data), doubt=doubt)
        names = [c.strip() for c in first]
        if any(not n or _is_number(n) for n in names) or len(set(names)) != len(names):
            return Verdict(False, "nothing in it tells a header row from data")
        if any(column.cells[name] > 0 for name, column in zip(names, columns, strict=False)):
            return Verdict(False, "nothing in it tells a header row from data")
        repeating = [j for j, column in enumerate(columns) if column.repeats()]
        if not repeating:
            return Verdict(False, "nothing in it tells a header row from data")
        return Verdict(
            True,
            f"every cell is a distinct name that never occurs in its column below, and column "
            f"{repeating[0]} repeats values",
        )


def detect_header(rows: Sequence[Row]) -> bool | None:
    """Is the first row of one file's rows a header?  None: it cannot be told (see
    :meth:`Evidence.judge`).  A single row is data."""
    return judge(rows).header


def judge(rows: Sequence[Row]) -> Verdict:
    """The verdict on the first row of one file's rows, judged against the rows below it."""
    rows = [r for r in rows if not is_blank(r)]
    if not rows:
        return Verdict(False, "no lines")
    return Evidence(rows[1:]).judge(rows[0])


def decide(
    samples: Sequence[tuple[str, Sequence[Row]]], channel: str, target: int | str | None = None
) -> bool:
    """Whether the channel's files start with a header row, from every file's first rows
    (``(name, rows)`` in file order, blank rows left out), logged with the reason; refuses
    files that disagree, and a first line that cannot be told (set ``header``).

    ``target``, the hyperparameter, settles it when it is a name (text) that line 1 holds: a
    name can only be resolved in a header, so no other reading lets the job go on (a header
    naming columns by years, ``label,2019,2020`` with ``target=label``)."""
    firsts = [rows[0] if rows else None for _, rows in samples]
    evidence = Evidence(list(islice(chain.from_iterable(rows[1:] for _, rows in samples), EVIDENCE_ROWS)))
    first_name, header = samples[0][0], firsts[0]
    verdict = evidence.judge(header) if header is not None else Verdict(False, "no lines")
    if isinstance(target, str) and header is not None and target in header and verdict.header is not True:
        verdict = Verdict(
            True, f"the target hyperparameter names its column {header.index(target)}, {_quoted(target)}"
        )
    if verdict.header is None:
        raise ambiguous(first_name, header or [], verdict)
    has_header = verdict.header
    for (name, _), first in zip(samples[1:], firsts[1:], strict=True):
        if first is None or first == header:
            continue
        other = evidence.judge(first)
        if other.header is None and not has_header:
            raise ambiguous(
                name, first, other, context=f"{first_name} starts with data ({_shown(header or [])})"
            )
        if other.header == has_header or (other.header is None and sorted(first) == sorted(header or [])):
            continue  # a different header is refused with the columns it lacks or adds
        if len(first) != len(header or []):  # not a header and its data: not the same columns at all
            raise widths_differ(channel, name, first, first_name, header or [])
        raise mixed_headers(
            channel, name, first, first_name, header or [], data_first=has_header, unsure=other.header is None
        )
    others = sum(1 for first in firsts[1:] if first is not None)
    alike = f"; the channel's {others} other file(s) start alike" if others else ""
    log.info(
        "%s: line 1 read as %s (%s)%s",
        first_name,
        "a header row" if has_header else "data",
        verdict.reason,
        alike,
    )
    if verdict.doubt:
        log.warning(
            "%s: line 1 %s was read as data, but %s: if it is a header row naming columns by "
            "numbers (years, codes), set the hyperparameter 'header' to true",
            first_name,
            _shown(header or []),
            verdict.doubt,
        )
    return has_header


def refuse_header_as_data(name: str, rows: Sequence[Row]) -> None:
    """Refuse to read line 1 of ``name`` as data (``header`` false, or the ContentType's
    ``header=absent``) when it reads as a header row by text over columns of numbers: as a data
    row its names would turn those columns into categories (and the label's name into a class),
    a model trained on it without a word.  A line that also holds data's clues is the user's to
    call (:meth:`Evidence.judge`), and so are new names over text columns (a rare category)."""
    verdict = judge(rows)
    if verdict.header is not True or verdict.marker is None:
        return
    raise DataError(
        f"{name}, line 1: {_shown(rows[0])} is to be read as data (the hyperparameter 'header' is false, "
        f"or the ContentType says header=absent), but it is a header row: {verdict.for_header[0]}, and "
        "as data those names would make their columns categorical; remove header=false (the header "
        "row is detected) or set it to true",
        code="header_as_data",
    )


def ambiguous(name: str, first: Row, verdict: Verdict, context: str = "") -> DataError:
    """Line 1 of ``name`` holds clues of a header and of data: the user must say which."""
    hint = ""
    if verdict.marker:
        column, cell = verdict.marker
        hint = (
            f" (if {_quoted(cell)} marks a missing value, leave such cells empty or write NA: other text "
            f"makes column {column} categorical)"
        )
    where = f" ({context})" if context else ""
    return DataError(
        f"{name}, line 1: cannot tell whether {_shown(first)} is a header row or data{where}. "
        f"Like a header: {_listed(verdict.for_header)}. Like data: {_listed(verdict.for_data)}. "
        f"Set the hyperparameter 'header' to true if line 1 names the columns, or to false if "
        f"it is a data row{hint}; columns are counted from 0",
        code="ambiguous_header",
    )


def _shown(row: Row) -> str:
    text = ",".join(row)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def widths_differ(channel: str, name: str, first: Row, first_name: str, header: Row) -> DataError:
    """Line 1 of two files with different numbers of fields, one read as a header row and the
    other as data: told as a header missing from one of them, it blamed a data file for lacking
    a README's first line as its header."""
    return DataError(
        f"{name}: line 1 has {len(first)} field(s) ({_shown(first)}), but line 1 of {first_name} "
        f"has {len(header)} ({_shown(header)}); the files of channel '{channel}' do not have the "
        "same columns: remove any file that is not data (a README, notes, a manifest) from the "
        "channel's S3 prefix (names starting with '.' or '_' are skipped), and give every file "
        "the same columns",
        code="columns_differ",
    )


def mixed_headers(
    channel: str,
    name: str,
    first: Row,
    first_name: str,
    header: Row,
    *,
    data_first: bool,
    unsure: bool = False,
) -> DataError:
    if data_first and unsure:  # line 1 of `name` may be data or another header: either is wrong
        cause = (
            f"{name}: its first line {_shown(first)} is not the header row {_shown(header)} that "
            f"{first_name} starts with; add that header line to {name}"
        )
    elif data_first:
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


def headers_disjoint(channel: str, name: str, first: Row, first_name: str, header: Row) -> DataError:
    """A header row given (the ``header`` hyperparameter, ``text/csv;header=present``), where line 1
    of ``name`` names none of the columns line 1 of ``first_name`` does: one of the two files lacks
    the header row, its first data row taken for one (a row such as ``1,0,0`` was refused as naming
    a column twice, others as columns that differ), and the file that lacks it is not told apart
    here, as the detection tells it apart."""
    return DataError(
        f"{name}: its first line {_shown(first)} names none of the columns of the header row "
        f"{_shown(header)} that {first_name} starts with, and channel '{channel}' is read with a header "
        "row (the 'header' hyperparameter, or header=present in its ContentType): one of the two files "
        "lacks the header row; every file of the channel must start with the same header row: add it "
        "to the files that lack it",
        code="mixed_header",
    )


HEADER_SEARCH = 20  # distinct non-number cells of a numeric column judged as a header row inside


def _only_names(row: Row) -> bool:
    """Every cell a distinct text that is neither a number nor missing: what a header row holds."""
    names = [c.strip() for c in row]
    return len(set(names)) == len(names) and not any(_is_missing(n) or _is_number(n) for n in names)


class HeaderInside:
    """Finds a header row inside a file or Pipe stream read without one (line 1 is data).

    ``cat a.csv b.csv`` where only b has the header row, or Pipe mode streaming an object with the
    header row after one without (SageMaker puts the objects back to back), gave a data row of
    the column names: its label's name trained as a class, every numeric column as categories,
    exit 0.  File mode refuses such files (:func:`mixed_headers`); here a row is refused when it is
    a header row by :meth:`Evidence.judge` against the first rows (names over numbers, no clue of
    data).  Only a column of numbers in those rows can show it: its first value that is not a
    number is looked for by one cast, and the rows holding such values judged only then."""

    def __init__(self, sample: Sequence[Row]) -> None:
        rows = [r for r in sample if not is_blank(r) and not _only_names(r)]
        self.evidence = Evidence(rows)
        self.numeric = next(
            (j for j, c in enumerate(self.evidence.columns) if c.present and not c.text), None
        )

    def check(self, source: Source, table: pa.Table, channel: str) -> None:
        if self.numeric is None or self.numeric >= table.num_columns:
            return
        column = table.column(self.numeric)
        if values.text_numbers(column)[1] is None:  # all numbers: no name in it (the usual file)
            return
        trimmed = pc.utf8_trim(column, characters=values.WHITESPACE)
        number = pc.fill_null(pc.match_substring_regex(trimmed, f"^{values.NUMBER_PATTERN}$"), True)
        others = pc.unique(pc.filter(trimmed, pc.invert(number))).to_pylist()
        for cell in [c for c in others if not _is_missing(c)][:HEADER_SEARCH]:
            # line 1 is not inside: whether it is a header row is the channel's header decision (the
            # files' first lines compared, or the header the model was trained with, whose message
            # points to the header hyperparameter), not this check's
            found = pc.indices_nonzero(pc.fill_null(pc.equal(trimmed, cell), False)).to_pylist()
            at = next((i for i in found if i > 0), None)
            if at is None:
                continue
            row = [str(table.column(i)[at].as_py()) for i in range(table.num_columns)]
            if not _only_names(row):
                continue
            verdict = self.evidence.judge(row)
            if verdict.header is True and verdict.marker is not None:
                raise _header_inside(source, row, verdict, channel)


def _header_inside(source: Source, row: list[str], verdict: Verdict, channel: str) -> DataError:
    line = _line_of(source, row)
    where = f"{source.name}, line {line}" if line else source.name
    stream = (
        " (Pipe mode streams the channel's S3 objects back to back: an object with the header row "
        "follows one without)"
        if source.path is None
        else ""
    )
    return DataError(
        f"{where}: {_shown(row)} is a header row ({verdict.for_header[0]}), but line 1 is data, so the "
        f"channel is read without a header row and this line would be trained as a data row (the label's "
        f"name a class, the columns of numbers categories){stream}; every file of channel '{channel}' "
        "must start with the same header row, or none may: add the header row to the files that lack "
        "it, or remove it from the others",
        code="mixed_header",
    )


def drop_header_copies(source: Source, table: pa.Table, channel: str) -> pa.Table:
    """Drop rows that repeat the header (``cat a.csv b.csv``; Pipe mode streams header files
    back to back), logging how many; refuse a header with the columns in another order."""
    names = [str(c) for c in table.column_names]
    if not names or table.num_rows == 0:
        return table
    spellings = pa.array(sorted(set(names) | {UTF8_BOM_TEXT + n for n in names}), type=pa.string())
    candidates = pc.fill_null(pc.is_in(table.column(0), value_set=spellings), False)
    if not pc.any(candidates).as_py():
        return table  # the fast path: no row starts with a column name
    indices = np.flatnonzero(candidates.to_numpy(zero_copy_only=False))
    cells = [table.column(i).take(pa.array(indices)).to_pylist() for i in range(len(names))]
    dropped = []
    for index, row in zip(indices, zip(*cells, strict=True), strict=True):
        row = (str(row[0]).lstrip(UTF8_BOM_TEXT), *row[1:])
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
                if record and [record[0].lstrip(UTF8_BOM_TEXT), *record[1:]] == row:
                    return reader.line_num
        except csv.Error:  # a field past the csv module's limit (byoc.csvfields): no line to name
            return None
    return None


def data_read_as_header(
    files: str, columns: Sequence[object], expected: Sequence[str], whose: str
) -> str | None:
    """What to say when CSV ``files`` read with a header row (as ``whose`` data was: the model's,
    the train channel's) name none of the ``expected`` columns in it: their first data row was
    taken for the header, and a failure about a missing label column or a cell of the wrong kind
    sent the user looking in the wrong place.  None when any expected column is there."""
    shown = [str(c) for c in columns]
    if set(shown) & set(expected):
        return None
    listed = ", ".join(expected[:6]) + (", ..." if len(expected) > 6 else "")
    return (
        f"{files}: none of {whose} columns ({listed}) is in the header row, which reads "
        f"{', '.join(shown[:6])}{', ...' if len(shown) > 6 else ''}: that looks like data."
    )
