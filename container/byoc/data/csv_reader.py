"""text/csv: pyarrow's multithreaded reader, with messages that name the file and line.

Like the built-in algorithms, files have no header by default; a header row is detected from
every file's first rows (:mod:`byoc.data.csv_header`; or forced with ``header``).  When
pyarrow rejects a file, the slow path re-scans it with the standard library only to say
*where* (ragged row: which line, how many fields).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from byoc import csvfields
from byoc.data import csv_header, sniff
from byoc.data.partitions import with_partitions
from byoc.data.sources import SAVE_AS_UTF8, SNIFF_BYTES, Source, not_utf8, unreadable
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
)
from byoc.errors import DataError
from byoc.header_names import blank_cell_name
from byoc.wide_text import NOT_CSV_TEXT, NUL, UTF8_BOM_TEXT

SAMPLE_ROWS = 200
BLOCK_SIZE = 1 << 21  # pyarrow infers column types from the first block
MAX_ROW_BYTES = csvfields.TRAINING_ROW_BYTES  # a longer row (a huge cell, an unclosed quote) is refused
MAX_CELL_BYTES = 1 << 20  # likewise a longer text cell
FOREIGN_DELIMITERS = {";": "';'", "\t": "tabs", "|": "'|'"}
_EXPECTED = re.compile(r"Expected (\d+) columns, got (\d+)")
SAMPLE_RECORDS = 2  # the first record, which may be a header, and a data row to tell it by


def _head(source: Source) -> tuple[bytes, bool]:
    """The file's first bytes, for sniffing: SNIFF_BYTES, or as many more as it takes to hold
    the first SAMPLE_RECORDS records whole (up to MAX_ROW_BYTES each); and whether the file goes
    on after them.  A first record cut short counted too few columns, and a header followed by
    a long row was told from no data row: read as data."""
    size = SNIFF_BYTES
    head = source.head(size)
    limit = SAMPLE_RECORDS * MAX_ROW_BYTES
    while len(head) == size and size < limit and not _holds_records(head, SAMPLE_RECORDS):
        size = min(size * 8, limit)
        head = source.head(size)
    return head, len(head) == size


def _holds_records(head: bytes, count: int) -> bool:
    """Whether the csv module reads more than ``count`` non-blank records from ``head`` (so the
    first ``count`` end before it does).  Its own reading, not a count of quotes: a quote inside
    an unquoted value (``5" screen``) is a character to it."""
    reader = csv.reader(io.StringIO(head.decode("utf-8", errors="replace"), newline=""))
    try:
        rows = (row for row in reader if not csv_header.is_blank(row))
        return sum(1 for _ in zip(range(count + 1), rows, strict=False)) > count
    except csv.Error:  # past the module's field limit: sample_rows says so
        return True


def _decode_sample(source: Source) -> str:
    head = source.head()
    foreign = sniff.binary(head)
    if foreign:
        raise DataError(foreign.message(source.name), code=foreign.code)
    if NUL in head:
        raise DataError(
            f"{source.name}: {NOT_CSV_TEXT} (NUL byte at offset "
            f"{head.index(NUL)}). Upload CSV text, or set ContentType to the file's real "
            "format (application/x-parquet, application/jsonlines, text/libsvm)",
            code="not_text",
        )
    head, more = _head(source)
    end = max(head.rfind(b"\n"), head.rfind(b"\r"))  # CR alone ends lines too (old Mac Excel)
    if more and end >= 0:  # the sample may end inside a row
        head = head[: end + 1]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 4:  # a multi-byte character cut by the sample's end
            text = head[: exc.start].decode("utf-8")
        else:
            raise not_utf8(source.name, head, exc.start) from exc
    return text.lstrip(UTF8_BOM_TEXT)


def check_delimiter(source: Source) -> None:
    """Refuse a file in another format (:mod:`byoc.data.sniff`: JSON, libsvm, space-separated)
    or delimited by ';', tabs or '|': read with commas it would be one column (or ragged rows,
    with decimal commas), which earlier gave a misleading message or a nonsense model."""
    lines = [line for line in _decode_sample(source).splitlines()[:SAMPLE_ROWS] if line.strip()]
    if not lines:
        return
    foreign = sniff.text(lines)
    if foreign:
        raise DataError(foreign.message(source.name), code=foreign.code)

    def widths(delimiter: str) -> set[int]:
        try:
            return {len(row) for row in csv.reader(lines, delimiter=delimiter)}
        except csv.Error:  # a field past the csv module's limit (byoc.csvfields): no evidence
            return set()

    by_comma = widths(",")
    comma_width = by_comma.pop() if len(by_comma) == 1 else 1  # 1: commas do not split rows alike
    for delimiter, name in FOREIGN_DELIMITERS.items():
        by_other = widths(delimiter)
        # more fields, alike in every row (decimal commas make "1,5;2,5" split alike by commas too)
        if len(by_other) == 1 and next(iter(by_other)) > comma_width:
            raise DataError(
                f"{source.name}: the fields are separated by {name}, not commas (every row splits "
                f"into {by_other.pop()} fields at {name}); byoc reads comma-separated CSV: save the "
                "file with ',' as the delimiter (pandas: df.to_csv(path, index=False); Excel: "
                "'CSV (Comma delimited)')",
                code="wrong_delimiter",
            )


def sample_rows(source: Source, limit: int = SAMPLE_ROWS + 1) -> list[list[str]]:
    """The first non-blank rows of a file, parsed by the csv module, for the header sniffer.

    newline='' lets the csv module end lines at CR alone too, as pyarrow does."""
    rows: list[list[str]] = []
    reader = csv.reader(io.StringIO(_decode_sample(source), newline=""))
    try:
        for row in reader:
            if not csv_header.is_blank(row):
                rows.append(row)
            if len(rows) >= limit:
                break
    except csv.Error as exc:
        raise DataError(
            f"{source.name}, line {reader.line_num}: cannot be read as CSV ({exc}); save it as "
            "comma-separated UTF-8 text",
            code="bad_csv",
        ) from exc
    return rows


def _samples(sources: Sequence[Source]) -> list[tuple[str, list[list[str]]]]:
    """Every file's first rows for the header decision: up to csv_header.EVIDENCE_ROWS from
    the first files, then each file's first record only (a channel may hold many files)."""
    samples = []
    budget = csv_header.EVIDENCE_ROWS
    for source in sources:
        rows = sample_rows(source, limit=min(SAMPLE_ROWS, budget) + 1)
        budget = max(budget - len(rows) + 1, 0)
        samples.append((source.name, rows))
    return samples


def _locate_ragged(source: Source, expected: int) -> DataError | None:
    """Re-read a rejected file with the csv module to find the first row with the wrong width,
    or the row whose value runs past the csv module's field limit (an unclosed quote that
    swallowed the rest of the file, which pyarrow reads as one short row at its end)."""
    with source.open() as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline="")
        reader = csv.reader(text)
        line = 1  # where the row being read starts
        try:
            for row in reader:
                if row and len(row) != expected:  # an empty line pyarrow skips too (not spaces)
                    spaces = " (it holds only spaces: delete it)" if csv_header.is_blank(row) else ""
                    return DataError(
                        f"{source.name}, line {reader.line_num}: {len(row)} fields where {expected} "
                        f"are expected (as in the first row){spaces}; every row needs the same number "
                        "of comma-separated fields (quote values that contain commas)",
                        code="ragged_csv",
                    )
                line = reader.line_num + 1
        except csv.Error:  # past the field limit (byoc.csvfields): no value of a row read is so long
            return DataError(
                f"{source.name}, line {line}: the row starting on this line holds a value longer "
                f'than {csv.field_size_limit():,} characters. It is usually an unclosed quote (") '
                "that swallowed the lines after it: check the quoting from that line on",
                code="ragged_csv",
            )
    return None


def _read_one(source: Source, *, header: bool, names: list[str] | None) -> pa.Table:
    """Every column as text: what text means (missing, number, boolean) is byoc.values' call."""
    text_columns = names or _header_names(source)
    # Quoted newlines force pyarrow's slower serial chunking: only pay for it when the file
    # quotes anything (or when a parse error says a value spans lines after all).
    multiline = b'"' in source.head()
    block_size = BLOCK_SIZE
    for _ in range(4):  # a retry may parse multi-line, take pyarrow's header names or larger blocks
        read_options = pacsv.ReadOptions(column_names=None if header else names, block_size=block_size)
        convert = pacsv.ConvertOptions(
            column_types={name: pa.string() for name in text_columns},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            null_values=[],
            true_values=[],
            false_values=[],
        )
        try:
            table = pacsv.read_csv(
                source.arrow_input(),
                read_options=read_options,
                parse_options=pacsv.ParseOptions(newlines_in_values=multiline),
                convert_options=convert,
            )
        except pa.ArrowInvalid as exc:
            message = str(exc)
            if "straddl" in message:  # a row longer than the block
                if block_size < MAX_ROW_BYTES:
                    block_size = MAX_ROW_BYTES
                    continue
                raise _row_too_large(source) from exc
            ragged = _EXPECTED.search(message)
            if ragged and not multiline:
                multiline = True
                continue
            if ragged:
                located = _locate_ragged(source, int(ragged.group(1)))
                if located:
                    raise located from exc
                raise DataError(
                    f"{source.name}: a row has {ragged.group(2)} fields where {ragged.group(1)} are "
                    "expected; every row needs the same number of fields",
                    code="ragged_csv",
                ) from exc
            if "UTF8" in message or "UTF-8" in message:
                raise _invalid_utf8(source) from exc
            if "Empty CSV file" in message:
                raise DataError(f"{source.name}: the file is empty", code="empty_file") from exc
            raise DataError(f"{source.name}: cannot be read as CSV ({message})", code="bad_csv") from exc
        except (OSError, EOFError) as exc:
            raise unreadable(source.name, exc) from exc
        if all(pa.types.is_string(t) for t in table.schema.types):
            _check_cell_sizes(source, table)
            return table
        text_columns = [str(c) for c in table.column_names]  # pyarrow named the header differently
    raise DataError(f"{source.name}: cannot be read as CSV text", code="bad_csv")


def _invalid_utf8(source: Source) -> DataError:
    """The first byte that is not UTF-8, wherever it is in the file (not only in the sample)."""
    offset = 0
    with source.open() as fh:
        for lineno, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return not_utf8(source.name, line, exc.start, offset=offset, line=lineno)
            offset += len(line)
    return DataError(f"{source.name}: not UTF-8 text; {SAVE_AS_UTF8}", code="not_utf8")


def _check_cell_sizes(source: Source, table: pa.Table) -> None:
    """Refuse a text cell above MAX_CELL_BYTES: no category is that long; an unclosed quote is."""
    for index, column in enumerate(table.columns):
        if not pa.types.is_string(column.type) or column.null_count == len(column):
            continue
        lengths = pc.binary_length(column).to_numpy(zero_copy_only=False)
        row = int(np.argmax(np.nan_to_num(lengths.astype(float))))
        if lengths[row] > MAX_CELL_BYTES:
            name = table.column_names[index]
            raise DataError(
                f"{source.name}, row {row + 1}, column {name if name.isdigit() else repr(name)}: a cell "
                f"of {lengths[row] / 2**20:.1f} MB; cells above {MAX_CELL_BYTES >> 20} MB are not read "
                '(no category is that long). It is usually an unclosed quote (") that swallowed '
                "the lines after it: check the quoting from that row on; otherwise keep such values "
                "out of the training data",
                code="cell_too_large",
            )


def _row_too_large(source: Source) -> DataError:
    """Name the first row longer than pyarrow's largest block (see MAX_ROW_BYTES).  A field the
    csv module refuses is past the limit the job set at its start (byoc.csvfields): the row
    holding it is that row, and the module stops there rather than reading the rest of the file
    into it."""
    with source.open() as fh:
        reader = csv.reader(io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline=""))
        line = 1
        try:
            for row in reader:
                if sum(len(cell) for cell in row) >= MAX_ROW_BYTES:
                    break
                line = reader.line_num + 1
        except csv.Error:
            if csv.field_size_limit() < MAX_ROW_BYTES:  # not started as a job: which row is unknown
                return _row_too_large_somewhere(source)
    return DataError(
        f"{source.name}, line {line}: a row longer than {MAX_ROW_BYTES >> 20} MB is not read. It is "
        'usually an unclosed quote (") that swallowed the lines after it: check the quoting from '
        "that line on; otherwise keep such values out of the training data",
        code="row_too_large",
    )


def _row_too_large_somewhere(source: Source) -> DataError:
    return DataError(
        f"{source.name}: a row longer than {MAX_ROW_BYTES >> 20} MB is not read. It is usually an "
        'unclosed quote (") that swallowed the lines after it: check the quoting; otherwise keep '
        "such values out of the training data",
        code="row_too_large",
    )


def _refuse_row_labels(source: Source, table: pa.Table, columns: list[str]) -> None:
    """Refuse the row labels pandas' ``df.to_csv(path)`` (index=True, its default) and R's
    ``write.csv`` write: a first column with a blank header cell and a distinct value in every
    row.  It is no data: as the default target it trained a regression on row numbers, as a
    feature it leaked the file's order into the model, and endpoint requests never carry it.
    Dropping it would guess; the fix is one argument where the file is written."""
    if columns[0].strip() or table.num_rows == 0:
        return
    cells = table.column(0)
    if pc.count_distinct(cells).as_py() != table.num_rows:
        return
    if pc.any(pc.equal(pc.utf8_trim_whitespace(cells), "")).as_py():
        return
    shown = ", ".join(repr(v) for v in cells.slice(0, 3).to_pylist())
    raise DataError(
        f"{source.name}: column 0 has no name in the header row and a different value in every row "
        f"({shown}, ...): it is the row index that pandas' df.to_csv(path) writes by default (or R's "
        "write.csv row names), not data, and byoc will not train on it (as the target it predicts "
        "row numbers; as a feature, requests to the endpoint would have to carry it). Write the file "
        "with df.to_csv(path, index=False) (R: write.csv(df, path, row.names = FALSE)); if the "
        "column is data, give it a name in the header row",
        code="index_column",
    )


def _check_first_widths(channel: str, sources: Sequence[Source], first: list[str]) -> None:
    """Refuse a file whose first row has another number of fields than the first file's, naming
    both (:func:`csv_header.widths_differ`), as the header decision does: read against the first
    file's width, a README.txt sorted first had the good data file blamed for its own rows."""
    for source in sources[1:]:
        rows = sample_rows(source, limit=1)
        if rows and len(rows[0]) != len(first):
            raise csv_header.widths_differ(channel, source.name, rows[0], sources[0].name, first)


def _check_header_named(channel: str, source: Source, first: Source, header: list[str]) -> None:
    """With a header row given rather than detected, a file whose line 1 names none of the first
    file's columns (:func:`csv_header.headers_disjoint`): one of them lacks the header row. The
    detection compares every file's line 1 itself; validation and test channels (read laid out
    like train's) are checked against train's columns by training."""
    names = _header_names(source)
    if names and not set(names) & set(header):
        raise csv_header.headers_disjoint(channel, source.name, names, first.name, header)


def _header_names(source: Source) -> list[str]:
    rows = sample_rows(source)
    return [c for c in rows[0]] if rows else []


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
    for source in sources:
        check_delimiter(source)  # binary / encoding / delimiter, before any file is read
    # every file's first rows when the header is to be detected; a forced one needs the first file's
    samples = _samples(sources) if header is None else [(sources[0].name, sample_rows(sources[0]))]
    first_rows = samples[0][1]
    if not first_rows:
        raise DataError(f"{sources[0].name}: holds no CSV rows", code="empty_file")
    has_header = csv_header.decide(samples, channel, label) if header is None else bool(header)
    if header is False and typed:  # this channel's cells type its columns (validation's are train's)
        csv_header.refuse_header_as_data(samples[0][0], first_rows)
    if header is False:  # csv_header.decide compares the files' first lines; a forced header skips it
        _check_first_widths(channel, sources, first_rows[0])  # (with one, columns differ names them)
    width = len(first_rows[0])
    names = None if has_header else [str(i) for i in range(width)]
    tables: list[pa.Table] = []
    first_columns: list[str] | None = None
    inside: csv_header.HeaderInside | None = None
    for source in sources:
        if header and typed and source is not sources[0]:  # a header row given, not detected
            _check_header_named(channel, source, sources[0], first_rows[0])
        table = _read_one(source, header=has_header, names=names)
        if has_header:
            table = csv_header.drop_header_copies(source, table, channel)
        else:
            inside = inside or csv_header.HeaderInside(first_rows)
            inside.check(source, table, channel)
        source.rows = table.num_rows
        columns = [str(c) for c in table.column_names]
        if has_header and not all(c.strip() for c in columns):
            _refuse_row_labels(source, table, columns)
            # another blank header cell: name it by position
            columns = [c if c.strip() else blank_cell_name(i) for i, c in enumerate(columns)]
            table = table.rename_columns(columns)
        table = with_partitions(table, source, named=has_header)
        columns = [str(c) for c in table.column_names]
        if has_header:
            check_unique(source.name, columns, header_row=True)
            if first_columns is None:
                first_columns = columns
            else:
                check_same_columns(channel, sources[0].name, first_columns, source.name, columns)
        tables.append(plain_types(table))
    refuse_nul_cells(tables, [source.name for source in sources])
    check_same_kinds(tables, [source.name for source in sources], typed=typed)
    table = unify_and_concat(tables)
    if table.num_rows == 0:
        raise DataError(
            f"channel '{channel}': {', '.join(s.name for s in sources)} hold(s) a header row but no "
            "data rows",
            code="empty_channel",
        )
    return Read(to_frame(table, typed=typed, as_written=label_column(table, has_header, label)), has_header)
