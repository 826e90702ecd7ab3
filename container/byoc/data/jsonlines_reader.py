"""application/jsonlines: one JSON object (or one array of values) per line.

pyarrow's JSON reader is the fast path; when it refuses a file (bad line, a field whose
type changes between lines, arrays instead of objects), the standard library re-reads it line
by line, which either succeeds or says which line is wrong and why.
"""

from __future__ import annotations

import codecs
import json
import math
import re
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from byoc import json_objects, values
from byoc.arrowerrors import blames_input
from byoc.data.partitions import with_partitions
from byoc.data.sources import Source, not_utf8, unreadable
from byoc.data.tabular import (
    Read,
    SparseLayout,
    check_same_columns,
    check_same_kinds,
    label_column,
    label_position,
    plain_types,
    refuse_nul_cells,
    to_frame,
    unify_and_concat,
)
from byoc.errors import DataError
from byoc.json_objects import json_words
from byoc.problem import FLOAT_EXACT
from byoc.wide_text import UTF8_BOM_TEXT

ONE_RECORD_A_LINE = (
    "each line of JSON Lines holds one whole record; pandas writes it with "
    "df.to_json(path, orient='records', lines=True)"
)
ARRAY_OF_RECORDS = (
    "a JSON array of objects, one JSON document (as pandas' df.to_json(path, orient='records') "
    "writes), not JSON Lines; write one object per line: df.to_json(path, orient='records', lines=True)"
)


def _not_json(where: str, line: str, exc: ValueError, *, indent: int, last: bool) -> str:
    """Why a line (``line``: stripped of ``indent`` characters before it) is not one JSON value,
    naming the ways a file pyarrow reads breaks JSON Lines: two records on a line, a record over
    several lines (pretty-printed JSON, or a JSON array of records), line ends that are CR alone;
    and a last line cut short."""
    if not isinstance(exc, json.JSONDecodeError):
        return f"{where}: not valid JSON ({exc}); each line must hold one complete JSON object"
    if "\r" in line:
        return (
            f"{where}: not valid JSON ({exc.msg}), and it holds a carriage return (CR): JSON Lines "
            "ends each line with a line feed (LF, \\n), so a file whose lines end with CR alone is "
            "one line to byoc: convert its line ends to LF"
        )
    column = exc.colno + indent
    if exc.msg == "Extra data":
        try:
            json_objects.decoder().raw_decode(line[exc.pos :])
        except ValueError:
            return f"{where}: not valid JSON: {line[exc.pos : exc.pos + 10]!r} follows its value, from column {column}"
        return (
            f"{where} holds more than one JSON value (the second from column {column}); {ONE_RECORD_A_LINE}"
        )
    if exc.pos < len(line):
        return f"{where}: not valid JSON ({exc.msg}, column {column}); each line must hold one complete JSON object"
    if last:
        return f"{where}, the file's last, ends inside a JSON value ({exc.msg}): was the file cut short?"
    if line.startswith("[{"):
        return f"{where} starts {ARRAY_OF_RECORDS}"
    return (
        f"{where} ends inside a JSON value ({exc.msg}): a record written over several lines, "
        f"as pretty-printed JSON is, is not JSON Lines; {ONE_RECORD_A_LINE}"
    )


def _cell(name: str, lineno: int, key: str, value: Any) -> Any:
    if isinstance(value, (dict, list)):
        raise DataError(
            f"{name}, line {lineno}: field '{key}' holds {json_words(value)}; each field "
            "must be a number, text, true/false or null",
            code="nested_column",
        )
    return value


class Line(NamedTuple):
    """A line of a JSON Lines file that holds something: its number, its text stripped, how many
    characters its text follows (a leading byte order mark takes no column in an editor), and
    whether it is the file's last line without a line break (cut short?)."""

    number: int
    text: str
    indent: int
    last: bool


def record_lines(source: Source) -> Iterator[Line]:
    """The lines of ``source`` that hold something, as the line-by-line reader (and evaluate's
    check of a record's keys) takes them: UTF-8 (else the DataError naming byte and line), a byte
    order mark starting a line passed over, as json.loads reads a line's bytes (serving's JSON
    Lines) and pyarrow the file's start (it is no JSON, so no value), blank lines skipped."""
    offset = 0
    with source.open() as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise not_utf8(source.name, raw, exc.start, offset=offset, line=number) from exc
            offset += len(raw)
            unmarked = text.removeprefix(UTF8_BOM_TEXT)
            stripped = unmarked.strip()
            if stripped:
                yield Line(number, stripped, len(unmarked) - len(unmarked.lstrip()), not raw.endswith(b"\n"))


class _Written(float):
    """A JSON number past float precision (``9007199254740993.0``) with the text it was written as:
    the label column keeps that text, as it keeps an integer's (exact), where the float merged
    neighbouring ids into one class; every other column takes the float, as a request's does."""

    text: str


def _number(text: str) -> float:
    """``parse_float`` for the line-by-line reader: the float, remembering its text past 2**53."""
    value = float(text)
    if not math.isfinite(value) or abs(value) < FLOAT_EXACT:
        return value
    written = _Written(value)
    written.text = text
    return written


def _label_as_written(
    names: list[str], named: bool, columns: list[list[Any]], label: int | str | None
) -> None:
    """Numbers past float precision (:class:`_Written`) as their text in the label's column and as
    plain floats in every other column, in place."""
    at = None if label is None else label_position(names, named, label)
    for i, column in enumerate(columns):
        if any(type(v) is _Written for v in column):
            columns[i] = [(v.text if i == at else float(v)) if type(v) is _Written else v for v in column]


def _read_lines(source: Source, label: int | str | None = None) -> tuple[pa.Table, bool]:
    records: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    linenos: list[int] = []  # each record's line, for a message about one of its values
    for line in record_lines(source):
        lineno = line.number
        try:
            value = json_objects.loads(line.text, parse_float=_number)
        except json_objects.RepeatedKey as exc:
            raise DataError(exc.says(f"{source.name}, line {lineno}"), code="duplicate_columns") from None
        except ValueError as exc:
            why = _not_json(
                f"{source.name}, line {lineno}", line.text, exc, indent=line.indent, last=line.last
            )
            raise DataError(why, code="bad_jsonlines") from exc
        linenos.append(lineno)
        if isinstance(value, dict) and not rows:
            records.append({str(k): _cell(source.name, lineno, str(k), v) for k, v in value.items()})
        elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
            raise DataError(
                f"{source.name}, line {lineno}: {ARRAY_OF_RECORDS}",
                code="bad_jsonlines",
            )
        elif isinstance(value, list) and not records:
            rows.append([_cell(source.name, lineno, str(i), v) for i, v in enumerate(value)])
            if len(rows[-1]) != len(rows[0]):
                raise DataError(
                    f"{source.name}, line {lineno}: {len(rows[-1])} values where line 1 has "
                    f"{len(rows[0])}; every array must have the same length",
                    code="ragged_jsonlines",
                )
        elif not isinstance(value, (dict, list)):
            raise DataError(
                json_objects.not_a_record(f"{source.name}, line {lineno}", value), code="bad_jsonlines"
            )
        else:
            raise DataError(
                json_objects.other_form(f"{source.name}, line {lineno}", value), code="bad_jsonlines"
            )
    if rows:
        names = [str(i) for i in range(len(rows[0]))]
        columns = [[row[i] for row in rows] for i in range(len(names))]
    else:
        names = list(dict.fromkeys(key for record in records for key in record))
        columns = [[record.get(name) for record in records] for name in names]
    _label_as_written(names, not rows, columns, label)
    try:
        return pa.table([_column(column) for column in columns], names=names), not rows
    except (UnicodeEncodeError, values.BadValue):  # values.category refuses it, Arrow cannot hold it
        found = _not_text(source.name, names, columns, linenos)
        if found is None:
            raise
        raise found from None


_INT64 = range(-(2**63), 2**63)


def _column(column: list[Any]) -> pa.Array:
    """A column JSON's parser read, as pyarrow's reader gives it: integers (and nulls) within int64
    as int64, every other column as text (:func:`byoc.values.spell_python`), typed later like any
    text.  An id label past 2**53 is then the integer on either path, whether or not another
    column sent the file this way (as text it was kept as written, a string)."""
    if all(type(v) is int and v in _INT64 or v is None for v in column) and any(
        v is not None for v in column
    ):
        return pa.array(column, type=pa.int64())
    return values.spell_python(column)


def _not_text(name: str, names: list[str], columns: list[list[Any]], linenos: list[int]) -> DataError | None:
    """The first value holding half of a UTF-16 surrogate pair (a JSON escape such as ``\\ud800``
    without its other half, as a tool that cut a string inside an emoji writes): not text any
    file or model holds; it stopped training as an internal error."""
    for key, column in zip(names, columns, strict=True):
        for index, value in enumerate(column):
            why = values.not_text(value) if isinstance(value, str) else None
            if why is not None:
                return DataError(f"{name}, line {linenos[index]}: field '{key}' holds {why}", code="not_utf8")
    return None


def _rounded_integers(table: pa.Table) -> bool:
    """Whether a double column holds a value at or past 2**53: pyarrow reads an integer past
    int64 (or beside a fraction in its column) as a double, rounded, so ids 2**63 + 1 and
    2**63 + 3 were one class, 2**63, trained with exit 0 and served as an id nobody wrote."""
    return any(
        pa.types.is_floating(column.type) and (pc.max(pc.abs(column)).as_py() or 0) >= FLOAT_EXACT
        for column in table.columns
    )


_ODD_START = re.compile(rb"\n[ \t\r]*[^{\[ \t\r\n]")  # a line that starts with no record or row
_BLANK_LINE = re.compile(rb"\n[ \t\r]*(?=\n)")  # a line break, then a line of JSON whitespace
_BARE_CR = re.compile(rb"\r(?!\n)")  # a line break to pyarrow, not to the line-by-line reader
SCAN_BYTES = 1 << 24
_STARTED = b"\n{"  # the carried start of a line whose first character was checked


def _lines_for_pyarrow(source: Source) -> int | None:
    """How many lines of ``source`` hold something: the rows pyarrow must read from it, else it
    read two records on one line, which it takes and the line-by-line reader (and serving)
    refuse.  None when pyarrow might read the file otherwise than :func:`_read_lines`, which
    then reads it or names the line:

    - a line that does not start with ``{`` or ``[`` (after JSON whitespace): a record written
      over several lines (its later lines start with a key, a value, ``,`` or ``}``; one nested
      over lines pyarrow reads as a nested column, refused anyway), a line of ``null``, which
      pyarrow reads as a record of missing values (dropped later for its missing target), a
      number or text; and ``null`` starting one of its blocks crashes the process (SIGSEGV,
      pyarrow 26), ``null,`` or ``null {...}`` as much as ``null``;
    - a carriage return not followed by a line feed: pyarrow ends a line (and may start a
      block) there, the line-by-line reader does not;
    - bytes that are not UTF-8, which pyarrow takes into text columns unchecked.

    A byte order mark starting the file is read past, as pyarrow reads past it.  The file is
    scanned in slices: 70 MB of records in about 0.2 s of CPU, against 1.1 s to read them
    (gzip-compressed, the scan inflates the file too)."""
    utf8 = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    with source.open() as fh:
        carry = b"\n"  # the unfinished line, from the line break before it: the file's start is one
        chunk = fh.read(len(codecs.BOM_UTF8))
        chunk = chunk.removeprefix(codecs.BOM_UTF8) + fh.read(SCAN_BYTES)
        while chunk:
            if not (chunk.isascii() and not utf8.getstate()[0]):
                try:
                    utf8.decode(chunk)
                except UnicodeDecodeError:
                    return None
            text = carry + chunk
            if _ODD_START.search(text):
                return None
            # a CR ending the slice may precede the next slice's LF: judged with it
            if b"\r" in text and _BARE_CR.search(text, 0, len(text) - text.endswith(b"\r")):
                return None
            end = text.rfind(b"\n")
            # the lines this slice ends (the break at 0 ended the last slice's), less the blank
            lines += text.count(b"\n", 1, end + 1) - len(_BLANK_LINE.findall(text, 0, end + 1))
            carry = text[end:]
            if carry[1:].strip(b" \t\r"):  # its start is checked: a long line is not carried on
                carry = _STARTED + (b"\r" if carry.endswith(b"\r") else b"")
            chunk = fh.read(SCAN_BYTES)
    try:
        utf8.decode(b"", final=True)  # a character the file's end cut short
    except UnicodeDecodeError:
        return None
    if _BARE_CR.search(carry):
        return None
    return lines + bool(carry[1:].strip(b" \t\r"))


def _read_one(source: Source, label: int | str | None = None) -> tuple[pa.Table, bool]:
    try:
        lines = _lines_for_pyarrow(source)
    except (OSError, EOFError, zlib.error) as exc:
        raise unreadable(source.name, exc) from exc
    if lines is None:
        return _read_lines(source, label)  # which names the line
    try:
        table = pajson.read_json(source.arrow_input(), read_options=pajson.ReadOptions(block_size=1 << 22))
    except (pa.ArrowException, DataError) as exc:
        if not blames_input(exc):  # reading line by line would need more
            raise
        return _read_lines(source, label)
    except (OSError, EOFError) as exc:
        raise unreadable(source.name, exc) from exc
    if table.num_rows != lines:
        return _read_lines(source, label)  # a record over several lines, or two on one: named there
    if any(pa.types.is_temporal(t) for t in table.schema.types):
        return _read_lines(source, label)  # pyarrow parsed text as dates: keep the text as written
    if _rounded_integers(table):
        return _read_lines(source, label)  # JSON's own parser keeps every integer exact
    try:
        return plain_types(table), True
    except DataError:
        return _read_lines(source, label)  # says which line holds the nested value


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
    has_header = True
    for source in sources:
        table, named = _read_one(source, label)
        table = with_partitions(table, source, named=named)
        source.rows = table.num_rows
        if tables:
            first = [str(c) for c in tables[0].column_names]
            if named != has_header:
                raise DataError(
                    f"{source.name}: mixes JSON arrays and objects with "
                    f"{sources[0].name}; use one form in every file",
                    code="bad_jsonlines",
                )
            if named and set(table.column_names) == set(first):
                table = table.select(first)
            check_same_columns(channel, sources[0].name, first, source.name, list(table.column_names))
        has_header = named
        tables.append(table)
    refuse_nul_cells(tables, [source.name for source in sources])
    check_same_kinds(tables, [source.name for source in sources], typed=typed)
    table = unify_and_concat(tables)
    frame = to_frame(table, typed=typed, as_written=label_column(table, has_header, label))
    if frame.empty:
        raise DataError(f"channel '{channel}': the JSON Lines files hold no records", code="empty_channel")
    return Read(frame, has_header)
