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
    items: list[object] = []
    for line in body.splitlines():
        if line.strip():
            item = loads(line, what=f"line {start_row + len(items) + 1} of the JSON Lines body")
            if not isinstance(item, (list, dict)):
                raise DataError(
                    f"line {start_row + len(items) + 1} of the JSON Lines body is a "
                    f"{type(item).__name__}; each line must be a row (list) or a record (object)",
                    code="bad_row",
                )
            items.append(item)
    if not items:
        raise DataError("the JSON Lines body holds no rows", code="empty_body")
    kinds = {type(item) for item in items}
    if len(kinds) > 1:
        raise DataError(
            "the JSON Lines body mixes rows (lists) and records (objects); use one kind", code="bad_row"
        )
    return batch_from_items(items, schema, start_row=start_row)


def encode(prediction: Prediction) -> bytes:
    return "".join(dumps(record) + "\n" for record in prediction.records()).encode("utf-8")


DECODER = Decoder(
    MEDIA_TYPE,
    decode,
    line_oriented=True,
    aliases=("application/x-jsonlines", "application/json-lines", "application/jsonl"),
    text=True,
)
ENCODER = Encoder(MEDIA_TYPE, encode, join=list)
