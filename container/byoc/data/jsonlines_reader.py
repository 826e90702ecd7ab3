"""application/jsonlines: one JSON object (or one array of values) per line.

pyarrow's JSON reader is the fast path; when it refuses a file (bad line, a field whose
type changes between lines, arrays instead of objects), the standard library re-reads it line
by line, which either succeeds or says which line is wrong and why.
"""

from __future__ import annotations

import codecs
import json
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

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
    plain_types,
    to_frame,
    unify_and_concat,
)
from byoc.errors import DataError
from byoc.json_objects import json_words
from byoc.wide_text import UTF8_BOM_TEXT

ONE_RECORD_A_LINE = (
    "each line of JSON Lines holds one whole record; pandas writes it with "
    "df.to_json(path, orient='records', lines=True)"
)


def _not_json(where: str, line: str, exc: ValueError) -> str:
    """Why a line is not one JSON value, naming the two ways a file pyarrow reads breaks JSON
    Lines: two records on one line, and one record over several (pretty-printed JSON)."""
    if isinstance(exc, json.JSONDecodeError) and exc.msg == "Extra data":
        return f"{where} holds more than one JSON value (the second from column {exc.colno}); {ONE_RECORD_A_LINE}"
    if isinstance(exc, json.JSONDecodeError) and exc.pos >= len(line):
        return (
            f"{where} ends inside a JSON value ({exc.msg}): a record written over several lines, "
            f"as pretty-printed JSON is, is not JSON Lines; {ONE_RECORD_A_LINE}"
        )
    return f"{where}: not valid JSON ({exc}); each line must hold one complete JSON object"


def _cell(name: str, lineno: int, key: str, value: Any) -> Any:
    if isinstance(value, (dict, list)):
        raise DataError(
            f"{name}, line {lineno}: field '{key}' holds {json_words(value)}; each field "
            "must be a number, text, true/false or null",
            code="nested_column",
        )
    return value


def _read_lines(source: Source) -> tuple[pa.Table, bool]:
    records: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    offset = 0
    linenos: list[int] = []  # each record's line, for a message about one of its values
    with source.open() as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise not_utf8(source.name, raw, exc.start, offset=offset, line=lineno) from exc
            offset += len(raw)
            # a byte order mark starting a line is passed over, as json.loads reads a line's bytes
            # (serving's JSON Lines) and pyarrow the file's start: it is no JSON, so no value
            line = text.removeprefix(UTF8_BOM_TEXT).strip()
            if not line:
                continue
            try:
                value = json_objects.loads(line)
            except json_objects.RepeatedKey as exc:
                raise DataError(exc.says(f"{source.name}, line {lineno}"), code="duplicate_columns") from None
            except ValueError as exc:
                raise DataError(
                    _not_json(f"{source.name}, line {lineno}", line, exc), code="bad_jsonlines"
                ) from exc
            linenos.append(lineno)
            if isinstance(value, dict) and not rows:
                records.append({str(k): _cell(source.name, lineno, str(k), v) for k, v in value.items()})
            elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
                raise DataError(
                    f"{source.name}, line {lineno}: a JSON array of objects, one JSON document (as "
                    "pandas' df.to_json(path, orient='records') writes), not JSON Lines; write one "
                    "object per line: df.to_json(path, orient='records', lines=True)",
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


_EXACT_INTEGERS = 2**53  # a double at or past this magnitude may be a rounded integer


def _rounded_integers(table: pa.Table) -> bool:
    """Whether a double column holds a value at or past 2**53: pyarrow reads an integer past
    int64 (or beside a fraction in its column) as a double, rounded, so ids 2**63 + 1 and
    2**63 + 3 were one class, 2**63, trained with exit 0 and served as an id nobody wrote."""
    return any(
        pa.types.is_floating(column.type) and (pc.max(pc.abs(column)).as_py() or 0) >= _EXACT_INTEGERS
        for column in table.columns
    )


_NULL_LINE = re.compile(rb"\n[ \t\r]*null[ \t\r]*(?:\n|\Z)")
_BLANK_LINE = re.compile(rb"\n[ \t\r]*(?=\n)")  # a line break, then a line of JSON whitespace
SCAN_BYTES = 1 << 24
_NULL_STARTS = (b"", b"n", b"nu", b"nul", b"null")
_LONG_LINE = b"\nx"  # the carried start of a line past any null line's: it holds something


def _lines_for_pyarrow(source: Source) -> int | None:
    """How many lines of ``source`` hold something (a record, when the file is JSON Lines): the
    rows pyarrow must read from it, else it read a record over several lines or two on one,
    which it takes and the line-by-line reader (and serving) refuse.  None when pyarrow would
    misread the file: a line of ``null`` it reads as a record of missing values (dropped later
    for its missing target, a malformed line passed as data), and crashes the process on
    (SIGSEGV, pyarrow 26) when one starts a block it reads; bytes that are not UTF-8, which it
    takes into text columns unchecked (their reading then failed as byoc's fault, exit 2).
    :func:`_read_lines` names the line of any of these (a null line after the byte order mark
    starting a file too: pyarrow reads past the mark).  Whole lines are scanned in slices:
    70 MB of records in about 0.17 s of CPU (0.10 s of it the null and UTF-8 checks, measured
    side by side), against 1.1 s to read them (gzip-compressed, the scan inflates the file too)."""
    utf8 = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    with source.open() as fh:
        carry = b"\n"  # the unfinished line, from the line break before it: the file's start is one
        # pyarrow reads past a byte order mark starting the file, so a null line after it is one
        chunk = fh.read(len(codecs.BOM_UTF8))
        chunk = chunk.removeprefix(codecs.BOM_UTF8) + fh.read(SCAN_BYTES)
        while chunk:
            if not (chunk.isascii() and not utf8.getstate()[0]):
                try:
                    utf8.decode(chunk)
                except UnicodeDecodeError:
                    return None
            text = carry + chunk
            end = text.rfind(b"\n")
            if end > 0:
                if _NULL_LINE.search(text, 0, end + 1):
                    return None
                # the lines this slice ends (the break at 0 ended the last slice's), less the blank
                lines += text.count(b"\n", 1, end + 1) - len(_BLANK_LINE.findall(text, 0, end + 1))
            carry = text[max(end, 0) :]
            if carry[1:].strip(b" \t\r") not in _NULL_STARTS:
                carry = _LONG_LINE  # no null line: a long line is not carried from slice to slice
            chunk = fh.read(SCAN_BYTES)
    try:
        utf8.decode(b"", final=True)  # a character the file's end cut short
    except UnicodeDecodeError:
        return None
    if _NULL_LINE.search(carry) is not None:
        return None
    return lines + bool(carry[1:].strip(b" \t\r"))


def _read_one(source: Source) -> tuple[pa.Table, bool]:
    try:
        lines = _lines_for_pyarrow(source)
    except (OSError, EOFError, zlib.error) as exc:
        raise unreadable(source.name, exc) from exc
    if lines is None:
        return _read_lines(source)  # which names the line
    try:
        table = pajson.read_json(source.arrow_input(), read_options=pajson.ReadOptions(block_size=1 << 22))
    except (pa.ArrowException, DataError) as exc:
        if not blames_input(exc):  # reading line by line would need more
            raise
        return _read_lines(source)
    except (OSError, EOFError) as exc:
        raise unreadable(source.name, exc) from exc
    if table.num_rows != lines:
        return _read_lines(source)  # a record over several lines, or two on one: named there
    if any(pa.types.is_temporal(t) for t in table.schema.types):
        return _read_lines(source)  # pyarrow parsed text as dates: keep the text as written
    if _rounded_integers(table):
        return _read_lines(source)  # JSON's own parser keeps every integer exact
    try:
        return plain_types(table), True
    except DataError:
        return _read_lines(source)  # says which line holds the nested value


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
        table, named = _read_one(source)
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
    check_same_kinds(tables, [source.name for source in sources], typed=typed)
    table = unify_and_concat(tables)
    frame = to_frame(table, typed=typed, as_written=label_column(table, has_header, label))
    if frame.empty:
        raise DataError(f"channel '{channel}': the JSON Lines files hold no records", code="empty_channel")
    return Read(frame, has_header)
