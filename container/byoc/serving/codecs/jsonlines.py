"""application/jsonlines: one row (JSON list) or record (JSON object) per line.

Responses: one ``{"predicted_label": ..., ...}`` object per line, in request order.
"""

from __future__ import annotations

from byoc.errors import DataError
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
    inside a line is too, so it splits nothing, as the app's slicing splits nothing there), blank
    lines are skipped, and errors name the line as the body numbers it, blank lines counted."""
    items: list[object] = []
    kind: type | None = None
    for number, line in enumerate(body.split(b"\n"), start=start_line + 1):
        if not line.strip():
            continue
        item = loads(line, what=f"line {number} of the JSON Lines body")
        if type(item) is not kind:  # json.loads gives exact lists and dicts: the previous line's type
            if not isinstance(item, (list, dict)):
                raise DataError(
                    f"line {number} of the JSON Lines body is a {type(item).__name__}; "
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
    return "".join(dumps(record) + "\n" for record in prediction.records()).encode("utf-8")


DECODER = Decoder(
    MEDIA_TYPE,
    decode,
    line_oriented=True,
    aliases=("application/x-jsonlines", "application/json-lines", "application/jsonl"),
    text=True,
    lines=decode_lines,
)
ENCODER = Encoder(MEDIA_TYPE, encode, join=list)
