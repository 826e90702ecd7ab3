"""text/csv: the built-in algorithms' inference format (features only, no label, no header).

Only a body's first line may be a header: one that names every feature (README "Content
types"; :func:`_split_header`), whose column order is honoured; the app decodes a batch's later
slices as rows in that order (:func:`decode_continued`), whatever their first lines look like.
Bodies of few rows (single rows, the latency-critical case) are parsed with the stdlib csv module
(one line without quotes is split at its commas, as that module splits it): they never reach
pyarrow, whose reader starts a thread per call and whose column rules have a fixed cost per
column; bodies of more rows (:func:`_arrow_pays`) with pyarrow's C++ reader (parsing on the
worker's thread: a worker owns one CPU) into Arrow text columns that byoc.values types
without a DataFrame in between, falling back to the precise per-value path only to explain an
error.  Up to SMALL_BODY both paths give the same values or the same error
(tests/unit/test_codecs_properties.py); Arrow's text columns are pandas' ``str`` dtype where the
csv module's are object columns of the same text (the model's encoder codes both alike).

Every line of a body is a record, an empty one too; a final newline ends the last record and
starts none.  Batch transform (SplitType=Line, AssembleWith=Line, JoinSource=Input) pairs the
answers with the input's lines by position, so a line skipped would shift every later answer
onto the wrong record.  An empty line is one empty value: for a one-feature model a record whose
value is missing (as its quoted form ``""`` is), for a wider model a 400 naming the row
(:func:`_empty_row_error`).  Training skips empty lines (pyarrow's default, byoc.data): it pairs
nothing with them.  Both parsers here keep them: :func:`_parse_rows`, and pyarrow with
``ignore_empty_lines=False``.
"""

from __future__ import annotations

import contextlib
import csv as _csv
import io
import re
from codecs import BOM_UTF8
from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from byoc.errors import DataError, NotAcceptable, SchemaError
from byoc.serving import cells
from byoc.serving.codecs.base import Decoder, Encoder, not_utf8
from byoc.serving.codecs.json import dumps
from byoc.serving.output import LABELS, PROBABILITIES, Prediction
from byoc.serving.schema import Batch, RequestSchema
from byoc.values import DISTINCT_SHARE, FALSE, TRUE, number_text
from byoc.wide_text import NUL, NUL_TEXT, nul_cell

MEDIA_TYPE = "text/csv"
SMALL_BODY = 64 * 1024


def _text(body: bytes, first: bool = True) -> str:
    """``body`` as text, a leading byte order mark dropped (``utf-8-sig``) when it starts the
    request body (``first``): at the start of a later slice U+FEFF begins a value, kept as the
    same row keeps it in a body of one slice.  A body without one is decoded as UTF-8 directly:
    the same text and errors (utf-8-sig decodes what follows its mark by the UTF-8 codec), where
    the utf-8-sig codec's Python-level decode cost a single-row request about ten times the
    decoding itself."""
    marked = first and body.startswith(BOM_UTF8)
    try:
        return body.decode("utf-8-sig") if marked else body.decode("utf-8")
    except UnicodeDecodeError as exc:  # utf-8-sig counts from after the mark
        raise not_utf8("the CSV body", exc, offset=len(BOM_UTF8) if marked else 0) from None


def _split_header(rows: list[list[str]], schema: RequestSchema) -> tuple[list[str] | None, list[list[str]]]:
    """The model's names for the columns of the first row when it is a header (None when it is
    data), and the data rows.  The rule (README "Content types"): a header names every feature
    once, each cell compared with the names exactly, else without surrounding spaces, else also
    without case (:meth:`RequestSchema.feature_named`), a blank cell naming the feature training
    named for a blank cell in its place (:meth:`RequestSchema.blank_cell_named`); a row that names features only as
    numbers and is also a valid data row is data (it cannot be told from one: features named
    0, 1, 2 holding small integers); a row that names at least half the features otherwise, but
    not every one once, is a 400 rather than a row predicted or dropped."""
    first = rows[0]
    if schema.folded_names.isdisjoint(map(str.casefold, map(str.strip, first))):
        return None, rows  # the usual data row: no cell names a feature (a third of the cost below)
    named = list(map(schema.feature_named, first))
    if None in named:  # a blank cell names the feature training named for it (byoc.header_names)
        named = [
            schema.blank_cell_named(j) if name is None and not cell.strip() else name
            for j, (name, cell) in enumerate(zip(named, first, strict=True))
        ]
    count = len(named) - named.count(None)
    if _valid_row_of_numbered_names(first, named, schema):
        return None, rows
    if count == len(named) == schema.width and len(set(named)) == count:
        return named, rows[1:]  # type: ignore[return-value]  # no None among them: count == len
    if count >= max(1, (schema.width + 1) // 2):
        schema.check_names(
            [name if name is not None else cell.strip() for name, cell in zip(named, first, strict=True)],
            where="the CSV header (a first line naming features)",
        )
    return None, rows


def _valid_row_of_numbered_names(cells: list[str], named: list[str | None], schema: RequestSchema) -> bool:
    """Whether every cell that names a feature is a number and the cells are a valid row: a
    first line both a header and a row can be only then (a text name is no value for a numeric
    feature, and a text name in a categorical column is taken as a name)."""
    if any(name is not None and number_text(cell) is None for name, cell in zip(named, cells, strict=True)):
        return False
    try:
        schema.from_rows([cells])
    except DataError:
        return False
    return True


def _parse_rows(
    text: str, start_row: int = 0, first: bool = True, schema: RequestSchema | None = None
) -> list[list[str]]:
    """``text``'s records as cells; ``start_row``, ``first`` as for :func:`_decode` and the
    ``schema`` (to tell a header) name the record a parse error starts in."""
    cells = _unquoted_line(text)
    if cells is not None:
        return [cells]
    try:
        # csv.reader reads an empty line as no cells: it is a record of one empty value (module doc)
        return [row or [""] for row in _csv.reader(io.StringIO(text), strict=True)]
    except _csv.Error as exc:
        raise _unparsable(text, exc, start_row, first, schema) from None


def _unparsable(
    text: str, exc: _csv.Error, start_row: int, first: bool, schema: RequestSchema | None
) -> DataError:
    """The error for a body the csv module cannot read, naming the record it stopped in: its row,
    numbered as every CSV error numbers rows (a header is none), and in a body's first slice also
    the line it starts on.  An unclosed quote is read to the end of the body: only where it
    opens tells the client where to look."""
    reader = _csv.reader(io.StringIO(text), strict=True)
    line, rows, top = 0, 0, None
    with contextlib.suppress(_csv.Error):
        for row in reader:
            line, rows, top = reader.line_num, rows + 1, top or [row or [""]]
    if first and top is not None and schema is not None and _split_header(top, schema)[0] is not None:
        rows -= 1  # the header: data rows are numbered after it
    where = f"row {start_row + rows + 1}" + (f" (line {line + 1} of the body)" if first else "")
    cause = (
        f'a quote (") opened in {where} is never closed'
        if "unexpected end of data" in str(exc)
        else f"{where}: {exc}"
    )
    return DataError(
        f"the CSV body cannot be parsed ({cause}); send comma-separated rows, quoting values that "
        'contain commas, quotes or newlines, closing every quote and doubling a quote inside one ("")',
        code="undecodable_body",
    )


def _unquoted_line(text: str) -> list[str] | None:
    """The cells of a body of one record without quotes (a single-row request, as a rule): its
    commas split it as csv.reader splits such a line (tests/unit/test_codecs_properties.py), at
    a sixth of the reader's cost; None for any other body."""
    line = text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text
    if not line or '"' in line or "\n" in line or "\r" in line:
        return None
    return line.split(",")


def _reorder(
    header: list[str], rows: list[list[str]], schema: RequestSchema, start_row: int
) -> list[list[str]]:
    schema.check_names(header, where="the CSV header")
    if header == list(schema.names):
        return rows
    order = [header.index(name) for name in schema.names]
    for number, row in enumerate(rows, start=start_row + 1):
        if len(row) != len(header):
            raise schema.width_error(len(row), number)
    return [[row[i] for i in order] for row in rows]


def whole_records(data: bytes) -> int:
    """The length of ``data``'s longest prefix that ends at a record boundary (0: none).

    ``data`` starts at a record boundary.  A newline ends a record only outside quotes: with
    RFC 4180 quoting every quote toggles the state (``""`` twice), so the newline must follow
    an even number of quotes.  Used to cut large bodies into slices without cutting a quoted
    newline.
    """
    cut = data.rfind(b"\n")
    if cut < 0:
        return 0
    if data.find(b'"', 0, cut) < 0:  # no quote at all (the usual body): a search, not a count
        return cut + 1
    quotes = data.count(b'"', 0, cut)
    while quotes % 2:
        previous = data.rfind(b"\n", 0, cut)
        if previous < 0:
            return _records_read(data)
        quotes -= data.count(b'"', previous, cut)
        cut = previous
    return cut + 1


_QUOTE_OR_NEWLINE = re.compile(rb'["\n]')
_FIELD_STARTS = frozenset(b",\n\r")


def _records_read(data: bytes) -> int:
    """:func:`whole_records` by the csv module's own rule, for ``data`` where counting quotes found
    no boundary: a quote opens a quoted value only at a value's start, so one inside an unquoted
    value (``12" pizza``) is the value's, where the count took it for an opening quote and cut
    nowhere, and the rest of a 100 MB body became one slice (0.85 GB of a worker for 60 MB).
    Visits each quote and newline once, in Python: only when the count fails."""
    quoted, closed, end = False, -2, 0
    for match in _QUOTE_OR_NEWLINE.finditer(data):
        at = match.start()
        if data[at] == 0x0A:  # a newline
            if not quoted:
                end = at + 1
        elif quoted:
            quoted, closed = False, at  # a closing quote, or the first of a doubled one
        elif at == closed + 1 or at == 0 or data[at - 1] in _FIELD_STARTS:
            quoted = True  # a doubled quote's second, or a quote opening a value
    return end


def _first_record(body: bytes) -> bytes:
    """The first record with its newline (the whole body when it has one record), respecting
    quoted newlines.  The quotes are counted line by line, each once: counted from the body's
    start at every newline, a first line with an odd number of quotes (``12" pizza``, a quote
    the csv module reads as part of an unquoted value) cost a 10 MB body hours."""
    cut = body.find(b"\n")
    quotes = body.count(b'"', 0, cut) if cut >= 0 else 0
    while cut >= 0 and quotes % 2:
        start, cut = cut, body.find(b"\n", cut + 1)
        quotes += body.count(b'"', start, cut) if cut >= 0 else 0
    return body if cut < 0 else body[: cut + 1]


def _decode_small(
    text: str, schema: RequestSchema, start_row: int, header: list[str] | None, first: bool
) -> Batch:
    rows = _parse_rows(text, start_row, first, schema)
    if not rows:
        raise DataError("the CSV body holds no rows", code="empty_body")
    if first:
        header, rows = _split_header(rows, schema)
        if header is not None and not rows:
            raise DataError("the CSV body holds a header but no rows", code="empty_body")
    try:
        if header is not None:
            rows = _reorder(header, rows, schema, start_row)
        return schema.from_rows(rows, start_row=start_row)
    except SchemaError as exc:
        raise _empty_row_error(exc, rows, schema, start_row) or exc from None


def _empty_row_error(
    exc: SchemaError, rows: list[list[str]], schema: RequestSchema, start_row: int
) -> SchemaError | None:
    """For a wrong count of values that is an empty line (one empty value) in a model of several
    features, the error that says so and why it is not skipped (module doc); else None."""
    if exc.code != "wrong_column_count" or schema.width == 1:
        return None
    for number, row in enumerate(rows, start=start_row + 1):
        if len(row) != schema.width:
            if row != [""]:
                return None
            return SchemaError(
                f"row {number} is empty (an empty line): every line of a CSV body is a record, "
                "answered in order (batch transform pairs answers with lines by position), so an empty "
                f"line is not skipped; send the model's {schema.width} features on it, or delete the line",
                code="wrong_column_count",
            )
    return None


def _decode_fast(
    body: bytes, schema: RequestSchema, start_row: int, header: list[str] | None, first: bool
) -> Batch | None:
    """pyarrow's reader with the schema's types; None when the slow path must explain a problem."""
    data = pa.py_buffer(body)  # read where it lies: a BytesIO's reads were copied into Arrow's buffers
    if first:
        first_line = _first_record(body)
        header, _ = _split_header(_parse_rows(_text(first_line), start_row, first, schema) or [[""]], schema)
        if header is not None:
            if body.startswith(BOM_UTF8, len(first_line)):
                return None  # a first value starting with U+FEFF, which pyarrow would drop as a BOM
            data = data.slice(len(first_line))
    elif body.startswith(BOM_UTF8):
        return None  # likewise at a later slice's start: only the request body's start has a BOM
    names = header or list(schema.names)
    try:  # every cell as text: what text means is byoc.values' call, as in training
        table = pacsv.read_csv(
            pa.BufferReader(data),
            # one thread: a worker owns one CPU (serve pins its math libraries to one thread).  The
            # parse runs on this thread, but read_csv still starts one short-lived readahead thread
            # a call (tens of us); open_csv starts none, yet decoded the only bodies that come here
            # (above SMALL_BODY: 1 MB, 4 MB slices) in the same CPU time, within 1.3%: not worth it
            read_options=pacsv.ReadOptions(column_names=names, block_size=1 << 22, use_threads=False),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),  # a record (module doc)
            convert_options=pacsv.ConvertOptions(
                # large_string: the storage of the pandas str columns categorical features become
                column_types={name: pa.large_string() for name in names},
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    if table.num_rows == 0 or (schema.width > 1 and _blank_row(table)):
        return None
    return schema.from_arrow(table, start_row=start_row)


def _blank_row(table: pa.Table) -> bool:
    """Whether some row's cells are all empty: pyarrow reads an empty line so (a row of empty
    values), and a line of commas alike, where an empty line is a 400 for a model of several
    features (module doc): the csv module's path tells the two apart.  A column at a time, the
    first (rarely empty) mostly answering alone: 10 us for 340 rows, 0.13 ms for 100,000."""
    blank = None
    for column in table.columns:
        empty = pc.equal(pc.binary_length(column), 0)
        blank = empty if blank is None else pc.and_(blank, empty)
        if not pc.any(blank).as_py():
            return False
    return True


def header_line(body: bytes, schema: RequestSchema) -> bytes | None:
    """The body's first line, with its newline, when it is a header (see :func:`_split_header`)."""
    first_line = _first_record(body)
    try:
        rows = _parse_rows(first_line.decode("utf-8-sig"))
        if rows and _split_header(rows, schema)[0] is not None:
            return first_line
    except (UnicodeDecodeError, DataError):
        pass
    return None


def _decode(
    body: bytes,
    schema: RequestSchema,
    start_row: int,
    header: list[str] | None,
    first: bool,
    start_line: int = 0,
) -> Batch:
    """``body``'s rows; ``first``: the body starts at the request's first line, which may be a
    header; else ``header`` gives the model's names in the columns' order (None: the model's);
    ``start_line``: the request body's lines before ``body``, for :func:`_name_line`."""
    try:
        return _decode_rows(body, schema, start_row, header, first)
    except SchemaError as exc:
        head = header_line(body, schema) if first else None
        skipped = len(head) if head is not None else 0
        _name_line(exc, body[skipped:], start_row, start_line + body.count(b"\n", 0, skipped))
        raise


_ROW = re.compile(r"row (\d+)\b(?! \(line )")


def _name_line(exc: SchemaError, rows: bytes, start_row: int, start_line: int) -> None:
    """Add the body's line to ``exc`` when it begins "row N" and row N is not on line N: rows
    are numbered after a header line, and a quoted value may span lines, so "row 737" of a body
    with a header is on line 738, where a client (or an editor's go-to-line) looks.  ``rows``:
    the slice's records after any header, ``start_line``: the body's lines before them."""
    match = _ROW.match(exc.message)
    if match is None:
        return
    row = int(match.group(1))
    offset = _record_line(rows, row - start_row)
    if offset is None or start_line + offset == row:
        return
    exc.message = f"{match.group(0)} (line {start_line + offset} of the body){exc.message[match.end() :]}"
    exc.args = (exc.message,)


def _record_line(rows: bytes, index: int) -> int | None:
    """The line (counted from 1 in ``rows``) on which its record ``index`` (from 1) starts; None
    when ``rows`` holds no such record or cannot be read as CSV to it."""
    if index < 1:
        return None
    if b'"' not in rows:  # no quoted newline: a record per line (an empty line is a record too)
        return index if rows.count(b"\n") + (bool(rows) and not rows.endswith(b"\n")) >= index else None
    reader = _csv.reader(io.StringIO(rows.decode("utf-8-sig", "replace")), strict=True)
    line = 0
    with contextlib.suppress(_csv.Error):
        for number, _ in enumerate(reader, start=1):
            if number == index:
                return line + 1
            line = reader.line_num
    return None


def _decode_rows(
    body: bytes, schema: RequestSchema, start_row: int, header: list[str] | None, first: bool
) -> Batch:
    if NUL in body:  # one memchr: training refuses such a value (byoc.wide_text.nul_cell)
        _refuse_nul(body, schema, start_row, header, first)
    if len(body) > SMALL_BODY:
        # a lone CR is a line end to pyarrow, not to the csv module nor to batch transform's split
        alike = not _lone_cr(body) and _quotes_read_alike(body)
        frame = _decode_fast(body, schema, start_row, header, first) if alike else None
        if frame is not None:
            return frame
        _explain_from_first_records(body, schema, start_row, header, first)
    elif _arrow_pays(body, schema) and _arrow_reads_alike(body):
        try:
            frame = _decode_fast(body, schema, start_row, header, first)
        except DataError:  # Arrow's column rules name a column's first culprit, not the body's
            frame = None
        if frame is not None:
            return frame
    return _decode_small(_text(body, first), schema, start_row, header, first)


def _refuse_nul(
    body: bytes, schema: RequestSchema, start_row: int, header: list[str] | None, first: bool
) -> None:
    """A 400 naming the row and column of the first cell holding a NUL byte, which training refuses
    (:func:`~byoc.wide_text.nul_cell`) where the model would take ``a\x00`` as an unseen category
    (a NUL outside a cell is left to the parse)."""
    rows = _parse_rows(_text(body, first), start_row, first, schema)
    if first:
        header, rows = _split_header(rows, schema)
    names = header or schema.names
    for number, row in enumerate(rows, start=start_row + 1):
        for position, cell in enumerate(row):
            if NUL_TEXT in cell:
                column = f"column '{names[position]}'" if position < len(names) else f"column {position + 1}"
                raise SchemaError(nul_cell(f"row {number}, {column}"), code="not_text")


# Process CPU (us) of the two paths, fitted to what benchmarks/csv_paths.py measured (1-340 rows
# of the benchmarks' kind of values, 2-100 numeric and 2-50 text columns): the csv module's path
# costs a little per row and per cell, pyarrow's mostly per column
_ROW_US = 0.5
_NUMBER_CELL_US = 1.1
_TEXT_CELL_US = 0.33
_ARROW_US = 320.0
_ARROW_NUMBER_COLUMN_US = 21.0
_ARROW_TEXT_COLUMN_US = 60.0
_ARROW_MANY_VALUED_TEXT_COLUMN_US = 250.0
"""A text column pyarrow's path reads value by value (values.text_categories' ten kernels): one
whose distinct values are more than one in DISTINCT_SHARE of the rows, as its trained categories
suggest (a column of IDs, or one with no categories recorded)."""
_FEWEST_ARROW_ROWS = 16
"""Below this many lines the csv module's path costs less whatever the columns (a numeric
column's cells cost it _NUMBER_CELL_US each, pyarrow's _ARROW_NUMBER_COLUMN_US: 19 rows).  A
line of a model's values takes at least its width in bytes (commas and newline), so a body
shorter than this many times the width (a single row) is not even counted."""


def _arrow_pays(body: bytes, schema: RequestSchema) -> bool:
    """Whether pyarrow's path costs less CPU than the csv module's for ``body`` (at most
    SMALL_BODY), by the costs above and its lines (counted in C: 0.2 us for a row, 7 us for
    18 KB, 34 us for 64 KB).  A body of few lines stays on the csv module's path however wide
    its rows: pyarrow's column rules cost most on few rows (values.text_categories); so does one
    whose text columns hold many values (by their trained categories) until it has many rows."""
    if len(body) < _FEWEST_ARROW_ROWS * schema.width:
        return False
    rows = body.count(b"\n") + (not body.endswith(b"\n"))
    if rows < _FEWEST_ARROW_ROWS:
        return False
    numbers = sum(schema.numeric)
    texts = schema.width - numbers
    small = rows * (_ROW_US + numbers * _NUMBER_CELL_US + texts * _TEXT_CELL_US)
    arrow = _ARROW_US + numbers * _ARROW_NUMBER_COLUMN_US + texts * _ARROW_TEXT_COLUMN_US
    if small <= arrow:  # not even were every text column of few values: no need to look
        return False
    for feature in schema.features:
        if feature.kind != "numeric" and not 0 < len(feature.categories) * DISTINCT_SHARE <= rows:
            arrow += _ARROW_MANY_VALUED_TEXT_COLUMN_US - _ARROW_TEXT_COLUMN_US
    return small > arrow


def _arrow_reads_alike(body: bytes) -> bool:
    """Whether pyarrow's reader reads ``body``'s records as the csv module does: only when it
    holds no quote and no CR outside a CRLF (pyarrow reads ``"a"b`` as ``ab`` and a lone CR as a
    line end, both of which the csv module, strict, refuses)."""
    return b'"' not in body and not _lone_cr(body)


_DELIMITERS = np.zeros(256, dtype=bool)
_DELIMITERS[list(b",\r\n")] = True


def _quotes_read_alike(body: bytes) -> bool:
    """Whether pyarrow reads ``body``'s quotes as the csv module does.  A closing quote followed
    by more of its value (``"adm"in``, ``"a" ``) is a 400 to the csv module (strict) and the
    value ``admin`` to pyarrow, so a body above SMALL_BODY answered 200 a row that a small body
    refuses.  Each run of quotes followed by a value's character (not a comma, line end or the
    body's end) is checked: after another value character it must be even (doubled quotes inside
    a quoted value), at a value's start odd (an opening quote, and doubled ones).  A quote inside
    an unquoted value (``12" pizza``, which both read alike) goes to the csv module's path too.
    By NumPy over the quotes' positions: 12 ms for 4 MB of quoted values, a regex 150 ms."""
    if b'"' not in body:
        return True
    data = np.frombuffer(body, dtype=np.uint8)
    at = np.flatnonzero(data == 0x22)
    starts = np.flatnonzero(np.diff(at, prepend=-2) != 1)  # indexes into ``at`` where runs begin
    first = at[starts]
    after = np.append(at[starts[1:] - 1], at[-1]) + 1  # the byte after each run
    lengths = after - first
    inside = after < len(data)
    followed = np.zeros(len(first), dtype=bool)  # followed by a value's character
    followed[inside] = ~_DELIMITERS[data[after[inside]]]
    opening = first == 0
    opening[~opening] = _DELIMITERS[data[first[~opening] - 1]]
    return not np.any(followed & ((lengths % 2 == 1) != opening))


def _lone_cr(body: bytes) -> bool:
    """Whether ``body`` holds a CR outside a CRLF.  pyarrow ends a record there, so a body above
    SMALL_BODY with one got more answers than it has lines (batch transform splits input at LF
    and pairs answers with its lines by position); the csv module's path reads it as the small
    body's (a 400 naming the row, or the CR of a quoted value)."""
    return b"\r" in body and body.count(b"\r") != body.count(b"\r\n")


def _explain_from_first_records(
    body: bytes, schema: RequestSchema, start_row: int, header: list[str] | None, first: bool
) -> None:
    """Raise the precise path's error when the records in ``body``'s first SMALL_BODY bytes hold
    it (a wrong count of values on row 1: the label column sent, a model's other features): that
    path made a Python list per row of the whole slice to find it, 220 MB and 3 s of a worker for
    a 6 MB body of 3 million one-value rows.  Returns when those records are good (or are not a
    whole record, or only a header), for the whole slice to be explained."""
    cut = whole_records(body[:SMALL_BODY])
    if cut <= 0:
        return
    try:
        _decode_small(_text(body[:cut], first), schema, start_row, header, first)
    except (DataError, SchemaError) as exc:
        if exc.code != "empty_body":  # "a header but no rows": the rows follow beyond the cut
            raise


def decode(body: bytes, schema: RequestSchema, start_row: int = 0) -> Batch:
    """A whole body, or the first slice of one: its first line may be a header."""
    return _decode(body, schema, start_row, None, first=True)


def decode_continued(
    body: bytes, schema: RequestSchema, start_row: int, header: bytes | None, start_line: int
) -> Batch:
    """A slice after a body's first: rows only, whatever its first line looks like (only a body's
    first line is a header), in the column order of the body's ``header`` line (None: it had
    none); ``start_line``: the body's lines before the slice."""
    names = None
    if header is not None:
        names, _ = _split_header(_parse_rows(_text(header)), schema)
        if names is None:
            raise ValueError(f"{header!r} is no header of this model's")
    return _decode(body, schema, start_row, names, first=False, start_line=start_line)


def encode(prediction: Prediction) -> bytes:
    """One line per record, the fields as columns in the order asked for; no header."""
    return _quote_leading_mark(_encode(prediction))


def _quote_leading_mark(body: bytes) -> bytes:
    """``body`` with its first cell quoted when it starts with U+FEFF (a label ``"\\ufeffbom"``):
    CSV readers (pandas, pyarrow, training's own, any reading ``utf-8-sig``) take those bytes at
    the start of a file for a byte order mark and drop them, so the first record's label read
    back as another (``bom``).  Inside quotes they are the value's.  A cell that starts the body
    unquoted holds no quote, comma or line break (csv.writer would have quoted it)."""
    if not body.startswith(BOM_UTF8):
        return body
    end = min(i for i in (body.find(b","), body.find(b"\n")) if i >= 0)
    return b'"' + body[:end] + b'"' + body[end:]


def _encode(prediction: Prediction) -> bytes:
    columns = []
    kept = True  # _cells kept every column as it was (no NaN written as an empty cell)
    for field in prediction.fields:
        column = prediction.column(field)
        if field in (PROBABILITIES, LABELS):
            column = [dumps(v) for v in column]
        else:
            written = _cells(prediction.values[field], column)
            kept = kept and written is column
            column = written
        columns.append(column)
    lists = prediction.fields[0] in (PROBABILITIES, LABELS)  # JSON arrays as text: csv.writer quotes them
    if (
        len(columns) == 1
        and columns[0]
        and not lists
        and kept
        and _floats(prediction.values[prediction.fields[0]], columns[0])
    ):
        return ("\n".join(map(repr, columns[0])) + "\n").encode("utf-8")
    if len(columns) == 1 and columns[0] and _plain_words(columns[0]):  # labels: no quoting needed
        return ("\n".join(columns[0]) + "\n").encode("utf-8")
    for field, column in zip(prediction.fields, columns, strict=True):
        if field not in (PROBABILITIES, LABELS):  # those are JSON text: a line break is escaped there
            _refuse_line_breaks(field, column)
    out = io.StringIO()
    _csv.writer(out, lineterminator="\n").writerows(zip(*columns, strict=True))
    return out.getvalue().encode("utf-8")


def _cells(values: object, column: list) -> list:
    """``column`` as csv.writer is to write it: a missing value (None, NaN, pandas' NA) as an
    empty cell, which training's readers take as missing in a numeric and a text column alike
    (:mod:`byoc.values`; ``nan``, as repr wrote a NaN, is a category in a text column); booleans
    (a model trained on a boolean label answers them) spelled as CSV training reads a boolean
    back, ``true``/``false``, not Python's ``True``/``False``; a dict (a hook's predict_fn may
    answer one per record) as JSON text, as list fields are, not its Python repr (``{'label':
    'a'}``, which no JSON parser reads); a value with no text form of its own (bytes, an object)
    a TypeError (``b'a'`` and ``<object ...>`` were written as the answer).  The kinds are
    :mod:`byoc.serving.cells`'; an infinite number stays ``inf``, a number CSV can spell."""
    if isinstance(values, np.ndarray):
        kind = values.dtype.kind
        if kind in "iuU":  # numbers or text
            return column
        if kind == "f":
            return [None if v != v else v for v in column] if _has_nan(values, column) else column
    if _WRITTEN_AS_IS.issuperset(map(type, column)):  # labels, counts: a subset test in C
        return column
    kinds = cells.kinds(column)
    if _AS_IS.issuperset(kinds.values()) and not (
        any(issubclass(t, (float, np.floating)) for t in kinds) and any(v != v for v in column)
    ):
        return column
    for t, k in kinds.items():
        if k not in cells.WRITABLE:
            raise TypeError(f"a value of type {t.__name__} has no text/csv form")
    return [_cell(v, kinds[type(v)]) for v in column]


def _has_nan(values: np.ndarray, column: list) -> bool:
    """Whether a float array (``column``: its values as a list) holds a NaN: by NumPy for a batch,
    by its few values for a single row, where np.isnan cost more than the whole answer."""
    if len(column) == 1:
        return column[0] != column[0]
    return bool(np.isnan(values).any()) if len(column) > 16 else any(v != v for v in column)


_WRITTEN_AS_IS = frozenset({str, int, type(None)})
"""Types csv.writer writes as CSV reads them back, and never NaN: no classification needed."""
_AS_IS = frozenset({cells.Kind.MISSING, cells.Kind.NUMBER, cells.Kind.TEXT})
"""The kinds csv.writer writes as CSV is read back (None as an empty cell; a NaN is not)."""


def _cell(value: object, kind: cells.Kind) -> object:
    if kind is cells.Kind.BOOLEAN:
        return TRUE if value else FALSE
    if kind is cells.Kind.OBJECT:
        return dumps(value)
    return None if cells.is_missing(value) else value


def _refuse_line_breaks(field: str, column: list) -> None:
    """A 406 for a text value holding a line break (a label trained as ``"no\nway"``): csv.writer
    quotes it over two lines, so a batch transform's answer had more lines than its input, and
    SageMaker paired every later answer line with the wrong input line."""
    try:
        values: Iterable[object] = set(column)  # a batch's labels repeat: each checked once
    except TypeError:
        values = column
    for value in values:
        if isinstance(value, str) and ("\n" in value or "\r" in value):
            raise NotAcceptable(
                f"the {field} {value!r} holds a line break, which a text/csv answer cannot put on one "
                "line (batch transform pairs answer lines with input lines by position); ask for "
                "application/jsonlines or application/json (Accept), where it is escaped"
            )


_QUOTED = frozenset(',"\r\n')


def _floats(values: object, column: list) -> bool:
    """Whether every value is a float, which repr writes as csv.writer does: so from a float
    array; a list (a hook's predict_fn may return one) is checked, as it may hold text or None
    after a float (repr wrote ``''`` and ``None`` where csv.writer writes ``""`` and nothing)."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return True  # when _cells kept the column: no NaN, which it writes as an empty cell
    return set(map(type, column)) == {float}  # a NaN in a list is None by now (see _cells)


def _plain_words(column: list) -> bool:
    """Whether csv.writer would write every value as it is: non-empty text without a comma,
    quote or line break (checked once per distinct value: a batch's labels repeat)."""
    if len(column) == 1:  # one record (a single-row request): no set of one to build
        value = column[0]
        return type(value) is str and value != "" and _QUOTED.isdisjoint(value)
    try:  # the distinct values, at C speed; a check per record cost a 1 MB batch's labels 0.16 ms
        distinct = set(column)
    except TypeError:  # unhashable values: csv.writer writes them
        return False
    # a str never equals a value of another type but its own subclasses', which join writes alike
    return all(type(v) is str and v and _QUOTED.isdisjoint(v) for v in distinct)


DECODER = Decoder(
    MEDIA_TYPE,
    decode,
    line_oriented=True,
    aliases=("text/x-csv", "application/csv"),
    text=True,
    header=header_line,
    continued=decode_continued,
    whole_records=whole_records,
    blank_records=True,
)
ENCODER = Encoder(MEDIA_TYPE, encode, join=list)
