"""application/jsonlines: one row (JSON list) or record (JSON object) per line.

Responses: one ``{"predicted_label": ..., ...}`` object per line, in request order.
"""

from __future__ import annotations

from byoc.errors import DataError
from byoc.json_objects import json_words
from byoc.serving.codecs.base import Decoder, Encoder
from byoc.serving.codecs.json import batch_from_items, dumps, loads
from byoc.serving.output import Prediction
from byoc.serving.schema import Batch, RequestSchema

MEDIA_TYPE = "application/jsonlines"


def decode(body: bytes, schema: RequestSchema, start_row: int = 0) -> Batch:
    return decode_lines(body, schema, start_row, 0)


def decode_lines(body: bytes, schema: RequestSchema, start_row: int, start_line: int) -> Batch:
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
                raise DataError(
                    f"line {number} of the JSON Lines body is {json_words(item)}; "
                    "each line must be a row (list) or a record (object)",
                    code="bad_row",
                )
            if kind is not None:
                raise DataError(
                    f"line {number} of the JSON Lines body is a {_ONE[type(item)]} where the lines "
                    f"before it hold {_MANY[kind]}; use one kind in a body",
                    code="bad_row",
                )
            kind = type(item)
        items.append(item)
    if not items:
        raise DataError("the JSON Lines body holds no rows", code="empty_body")
    return batch_from_items(items, schema, start_row=start_row)


_ONE: dict[type, str] = {list: "row (list)", dict: "record (object)"}
_MANY: dict[type, str] = {list: "rows (lists)", dict: "records (objects)"}


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
