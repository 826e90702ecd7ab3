"""application/jsonlines: one row (JSON list) or record (JSON object) per line.

Responses: one ``{"predicted_label": ..., ...}`` object per line, in request order.
"""

from __future__ import annotations

import codecs

import pyarrow as pa
import pyarrow.json as pa_json

from byoc.errors import DataError
from byoc.json_objects import not_a_record, other_form
from byoc.serving.codecs.base import Decoder, Encoder
from byoc.serving.codecs.json import batch_from_items, dumps, loads
from byoc.serving.output import Prediction
from byoc.serving.schema import Batch, RequestSchema

MEDIA_TYPE = "application/jsonlines"


def decode(body: bytes, schema: RequestSchema, start_row: int = 0) -> Batch:
    return decode_lines(body, schema, start_row, 0)


def decode_lines(body: bytes, schema: RequestSchema, start_row: int, start_line: int) -> Batch:
    """``body``'s rows or records, one per line (:func:`decode_by_line`): read by pyarrow.json
    when it is a body of records Arrow reads as :mod:`json` does (:func:`arrow_records`)."""
    batch = arrow_records(body, schema)
    return batch if batch is not None else decode_by_line(body, schema, start_row, start_line)


def arrow_records(body: bytes, schema: RequestSchema) -> Batch | None:
    """The batch of a slice of one JSON record a line, from columns pyarrow.json read (without a
    Python object per value: a fraction of :func:`decode_by_line`'s CPU); None for any slice Arrow
    might read otherwise than :func:`decode_by_line`, which then reads it, its answers and
    messages unchanged.  Arrow skips blank lines, reads two records on a line as two, lets a
    record run over lines and takes a byte order mark, NUL, escapes and bytes that are not UTF-8
    otherwise than :mod:`json`: so only slices of UTF-8 with no backslash and no NUL, that start a
    record and end one on every line, and hold as many records as lines, are its (each line then
    one record, for a record of plain values cannot hold a ``}`` that ends a line)."""
    lines = body.count(b"\n") + (not body.endswith(b"\n"))
    if (
        lines < ARROW_LINES
        or not body.startswith(b"{")
        or not (body.endswith(b"}") or body.endswith(b"}\n") or body.endswith(b"}\r\n"))
        or body.count(b"}\n") + body.count(b"}\r\n") != body.count(b"\n")  # each line ends a record
        or b"\\" in body
        or b"\x00" in body
        or not _utf8(body)
    ):
        return None
    try:
        table = pa_json.read_json(
            pa.BufferReader(body),
            read_options=pa_json.ReadOptions(use_threads=False, block_size=max(len(body), 1 << 20)),
            parse_options=pa_json.ParseOptions(
                explicit_schema=schema.json_arrow_types(), unexpected_field_behavior="error"
            ),
        )
    except (pa.ArrowException, ValueError):  # anything Arrow refuses: decode_by_line's message
        return None
    if table.num_rows != lines:
        return None
    written: dict[str, int] | None = None

    def all_written(name: str, nulls: int) -> bool:
        nonlocal written
        if written is None:
            written = _written_nulls(body)
        return name[:1] not in _AFTER_TEXT and written.get(name) == nulls

    return schema.from_json_arrow(table.select(list(schema.names)), all_written)


_SPACE = b" \t\r"
_AFTER_TEXT = frozenset(" \t\r\n:,}]")
"""What may follow a JSON text's closing quote: a key that starts with none of these is never
found by :func:`_written_nulls` from a closing quote."""


def _written_nulls(body: bytes) -> dict[str, int]:
    """Key -> how many times ``body`` (records of plain values, one a line, with no backslash, so
    no text holds a quote) writes ``"key": null`` (any spacing): the text between the two
    quotes before each ``: null``.  A key found so is one (a text followed by a colon), unless
    its first quote closed a text, when it starts with a character of :data:`_AFTER_TEXT`."""
    found: dict[str, int] = {}
    before = body.split(b"null")
    for piece in before[:-1]:
        piece = piece.rstrip(_SPACE)
        if not piece.endswith(b":"):
            continue
        piece = piece[:-1].rstrip(_SPACE)
        if not piece.endswith(b'"'):
            continue
        key = piece[piece.rfind(b'"', 0, len(piece) - 1) + 1 : -1].decode()
        found[key] = found.get(key, 0) + 1
    return found


ARROW_LINES = 256
"""Slices of at least this many lines are offered to pyarrow.json: its reading costs about 2.5 ms
before the first line (20 features: 256 lines 3.2 ms against 4.2 ms line by line, 64 lines 2.5
against 1.0 ms; 1,024 lines 6.6 against 16.8 ms)."""


def _utf8(body: bytes) -> bool:
    """Whether ``body`` is UTF-8 (strictly: no byte order mark, no encoded surrogate)."""
    if body.isascii():
        return True
    if codecs.BOM_UTF8 in body:
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def decode_by_line(body: bytes, schema: RequestSchema, start_row: int, start_line: int) -> Batch:
    """``body``'s rows or records, one per line; ``start_line``: the number of the request body's
    lines before this slice.  Lines end at LF only (a trailing CR is JSON whitespace; a bare CR
    inside a line is too, so it splits nothing, as the app's slicing splits nothing there), and
    errors name the line as the body numbers it.  A blank line is a 400, not skipped: batch
    transform pairs answers with lines by position, so a skipped line shifted every later answer
    onto the wrong input (as CSV's empty lines did); a final newline ends the last line."""
    items: list[object] = []
    kind: type | None = None
    lines = body.split(b"\n")
    if not lines[-1]:
        lines.pop()  # after the final newline: no line
    for number, line in enumerate(lines, start=start_line + 1):
        if not line.strip():
            raise DataError(
                f"line {number} of the JSON Lines body is empty: every line is a record, answered in "
                "order (batch transform pairs answers with lines by position), so a blank line is not "
                "skipped; delete the line, or send a row or record on it",
                code="bad_row",
            )
        item = loads(line, what=f"line {number} of the JSON Lines body")
        if type(item) is not kind:  # json.loads gives exact lists and dicts: the previous line's type
            if not isinstance(item, (list, dict)):
                raise DataError(not_a_record(f"line {number} of the JSON Lines body", item), code="bad_row")
            if kind is not None:
                raise DataError(other_form(f"line {number} of the JSON Lines body", item), code="bad_row")
            kind = type(item)
        items.append(item)
    if not items:
        raise DataError("the JSON Lines body holds no rows", code="empty_body")
    return batch_from_items(items, schema, start_row=start_row)


def encode(prediction: Prediction) -> bytes:
    return "".join(dumps(record) + "\n" for run in prediction.record_runs() for record in run).encode("utf-8")


DECODER = Decoder(
    MEDIA_TYPE,
    decode,
    line_oriented=True,
    aliases=("application/x-jsonlines", "application/json-lines", "application/jsonl"),
    text=True,
    lines=decode_lines,
    blank_records=True,  # a slice of blank lines is decoded, so its first blank line is named
)
ENCODER = Encoder(MEDIA_TYPE, encode, join=list)
