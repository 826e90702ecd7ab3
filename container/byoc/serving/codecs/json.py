"""application/json: every request shape users bring from other serving stacks.

Accepted bodies (values are numbers, text, booleans or null):

- ``{"instances": [[...], ...]}`` or ``{"instances": [{"col": v, ...}, ...]}`` (SageMaker, TF Serving)
- ``{"inputs": ...}`` with rows, records, or columns ``{"col": [v, ...]}`` (TF Serving, MLflow)
- ``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` and
  ``{"dataframe_records": [...]}`` (MLflow)
- a bare list of rows or records, a single row (a flat list of values) or a single record
- the built-in algorithms' ``{"instances": [{"features": [...]}]}``

Responses: ``{"predictions": [{"predicted_label": ..., ...}, ...]}`` (see byoc.serving.output).
"""

from __future__ import annotations

import codecs as _codecs
import json as _json
from collections.abc import Iterable, Iterator
from typing import Any

from byoc.errors import DataError, SchemaError
from byoc.serving.codecs.base import Decoder, Encoder
from byoc.serving.output import Prediction
from byoc.serving.schema import Batch, RequestSchema

MEDIA_TYPE = "application/json"
_WRAPPERS = ("instances", "inputs", "dataframe_records")
_SCALARS = (str, int, float, bool, type(None))


def loads(body: bytes | str, *, what: str = "the JSON body") -> Any:
    try:
        return _json.loads(body)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{what} is not UTF-8 (byte {exc.start}: {exc.reason}); send UTF-8 JSON", code="undecodable_body"
        ) from None
    except _json.JSONDecodeError as exc:
        position = f" (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        raise DataError(f"{what} is not valid JSON{position}", code="undecodable_body") from None
    except ValueError:  # e.g. a number beyond Python's integer digit limit
        raise DataError(f"{what} is not valid JSON", code="undecodable_body") from None
    except RecursionError:
        raise DataError(
            f"{what} nests too deeply; send rows or records of plain values", code="undecodable_body"
        ) from None


def _unwrap_features(record: Any, schema: RequestSchema) -> Any:
    """The built-in algorithms' record ``{"features": [...]}`` is a positional row."""
    if (
        type(record) is dict
        and len(record) == 1
        and "features" in record
        and "features" not in schema.index
        and isinstance(record["features"], list)
    ):
        return record["features"]
    return record


def batch_from_items(items: list, schema: RequestSchema, start_row: int = 0) -> Batch:
    """A list of rows, or of records, or one flat row of scalars."""
    if not items:
        raise DataError(
            "the request holds no rows; send at least one row of feature values", code="empty_body"
        )
    first = _unwrap_features(items[0], schema)
    if isinstance(first, _SCALARS):
        if all(isinstance(v, _SCALARS) for v in items):
            return schema.from_rows([items], start_row=start_row)
        raise SchemaError(
            "the list mixes plain values with rows or records; send a list of rows "
            "(lists) or of records (objects)",
            code="bad_row",
        )
    if type(first) is dict:
        return schema.from_records([_unwrap_features(r, schema) for r in items], start_row=start_row)
    return schema.from_rows([_unwrap_features(r, schema) for r in items], start_row=start_row)


def batch_from_document(document: Any, schema: RequestSchema) -> Batch:
    if isinstance(document, list):
        return batch_from_items(document, schema)
    if not isinstance(document, dict):
        raise SchemaError(
            f"the JSON body is a {type(document).__name__}; send an object such as "
            '{"instances": [[...]]} or a list of rows',
            code="bad_shape",
        )
    if "dataframe_split" in document:
        split = document["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise SchemaError(
                '"dataframe_split" must be {"columns": [...], "data": [[...], ...]}', code="bad_shape"
            )
        columns = split.get("columns")
        if columns is None:
            return batch_from_items(split["data"], schema)
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise SchemaError('"dataframe_split"."columns" must be a list of column names', code="bad_shape")
        schema.check_names(columns, where='"dataframe_split"')
        rows = split["data"]
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, list) or len(row) != len(columns):
                raise SchemaError(
                    f'"dataframe_split" row {number} must be a list of {len(columns)} values',
                    code="wrong_column_count",
                )
        return schema.from_records([dict(zip(columns, row, strict=True)) for row in rows])
    for key in _WRAPPERS:
        if key in document:
            if len(document) > 1:
                others = sorted(k for k in document if k != key)
                raise SchemaError(
                    f'"{key}" cannot be combined with {others}; send one of them', code="bad_shape"
                )
            inner = document[key]
            if isinstance(inner, list):
                return batch_from_items(inner, schema)
            if key == "inputs" and isinstance(inner, dict):
                if inner and all(isinstance(v, list) for v in inner.values()):
                    return schema.from_columns(inner)
                return schema.from_records([inner])
            raise SchemaError(
                f'"{key}" must hold a list of rows or records, got a {type(inner).__name__}', code="bad_shape"
            )
    return schema.from_records([document])  # a single record


def decode(body: bytes, schema: RequestSchema, start_row: int = 0) -> Batch:
    return batch_from_document(loads(body), schema)


STREAM_BATCH_CHARS = (
    1024 * 1024
)  # a streamed list is decoded and predicted in batches of about this much text
_STREAMED_KEYS = ("instances", "inputs", "dataframe_records")
_SCANNER = _json.JSONDecoder()
_WHITESPACE = " \t\n\r"


class _Text:
    """The body's text as it arrives, with a cursor; consumed text is dropped as batches go."""

    def __init__(self, blocks: Iterable[bytes]) -> None:
        self.blocks = iter(blocks)
        self.utf8 = _codecs.getincrementaldecoder("utf-8")()
        self.raw: list[bytes] | None = []  # every block, kept until streaming is certain (fallback)
        self.text = ""
        self.pos = 0
        self.dropped = 0  # characters before self.text[0]
        self.ended = False

    def more(self) -> bool:
        if self.ended:
            return False
        block = next(self.blocks, None)
        try:
            text = self.utf8.decode(block or b"", final=block is None)
        except UnicodeDecodeError as exc:
            raise DataError(
                f"the JSON body is not UTF-8 ({exc.reason}); send UTF-8 JSON", code="undecodable_body"
            ) from None
        if block is None:
            self.ended = True
        elif self.raw is not None:
            self.raw.append(block)
        self.text += text
        return not self.ended or bool(text)

    def peek(self) -> str:
        """The next character that is not whitespace ('' at the end of the body)."""
        while True:
            while self.pos < len(self.text) and self.text[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.text) or not self.more():
                return self.text[self.pos : self.pos + 1]

    def value(self) -> Any:
        """The JSON value at the cursor, reading more of the body until it is complete."""
        self.peek()
        while True:
            try:
                value, end = _SCANNER.raw_decode(self.text, self.pos)
            except ValueError as exc:
                at = getattr(exc, "pos", self.pos)
                cut_short = len(self.text) - at <= 16 or "Unterminated" in str(exc)
                if cut_short and self.more():
                    continue  # the value goes on in the next block
                raise DataError(
                    f"the JSON body is not valid JSON (character {self.dropped + at}: "
                    f"{getattr(exc, 'msg', exc)})",
                    code="undecodable_body",
                ) from None
            except RecursionError:
                raise DataError(
                    "the JSON body nests too deeply; send rows or records of plain values",
                    code="undecodable_body",
                ) from None
            if end == len(self.text) and not self.ended and not isinstance(value, (list, dict, str)):
                if self.more():  # a number (or literal) may go on in the next block
                    continue
            self.pos = end
            return value

    def expect(self, char: str, where: str) -> None:
        if self.peek() != char:
            found = self.peek() or "the end of the body"
            raise DataError(
                f"the JSON body is not valid JSON (character {self.dropped + self.pos}: expected "
                f"{char!r} {where}, found {found!r})",
                code="undecodable_body",
            )
        self.pos += 1

    def commit(self) -> None:
        """Drop what has been consumed: the items before the cursor are decoded."""
        self.raw = None  # streaming is certain now: no fallback
        self.dropped += self.pos
        self.text = self.text[self.pos :]
        self.pos = 0

    def rest_bytes(self) -> bytes:
        """The whole body, for the one-piece decoder (only before the first commit)."""
        while self.more():
            pass
        assert self.raw is not None, "rest_bytes after commit"
        return b"".join(self.raw)


def decode_stream(blocks: Iterable[bytes], schema: RequestSchema) -> Iterator[Batch]:
    """Decode ``[...]``, ``{"instances": [...]}`` (or "inputs", "dataframe_records") item by item.

    A 100 MB batch body is never held whole, as bytes or as Python objects: rows are parsed
    as they arrive and predicted in batches of about STREAM_BATCH_CHARS of text.  Any other
    shape (columns, ``dataframe_split``, a single record or row) is decoded in one piece.
    """
    text = _Text(blocks)
    first = text.peek()
    if first == "\ufeff":
        text.pos += 1
        first = text.peek()
    key = None
    if first == "{":
        text.pos += 1
        if text.peek() == '"':
            key = text.value()
            if key in _STREAMED_KEYS and text.peek() == ":":
                text.pos += 1
                first = text.peek()
    if not first:
        return  # an empty body: the caller says so
    if first != "[" or (key is not None and key not in _STREAMED_KEYS):
        yield decode(text.rest_bytes(), schema)
        return
    text.pos += 1
    items: list = []
    rows, mark = 0, text.pos
    while text.peek() != "]":
        if items or rows:
            text.expect(",", "between the list's items")
        item = text.value()
        if not items and not rows and not isinstance(item, (list, dict)):
            yield decode(text.rest_bytes(), schema)  # one flat row of scalars
            return
        items.append(item)
        if text.pos - mark >= STREAM_BATCH_CHARS:
            yield batch_from_items(items, schema, start_row=rows)
            rows += len(items)
            items = []
            text.commit()
            mark = text.pos
    text.pos += 1
    if key is not None:
        if text.peek() != "}":
            raise SchemaError(
                f'"{key}" cannot be combined with other keys; send one of them', code="bad_shape"
            )
        text.pos += 1
    if text.peek():
        raise DataError(
            f"the JSON body goes on after its value (character {text.dropped + text.pos})",
            code="undecodable_body",
        )
    if items or not rows:
        yield batch_from_items(items, schema, start_row=rows)


def encode(prediction: Prediction) -> bytes:
    return _json.dumps({"predictions": prediction.records()}, separators=(",", ":")).encode("utf-8")


_PREFIX, _SUFFIX = b'{"predictions":[', b"]}"


def join(parts: list[bytes]) -> list[bytes]:
    """The response's chunks from the encodings of consecutive slices of a batch.

    Each part is replaced by its records as it is unwrapped, so the answer is in memory once.
    """
    chunks = [_PREFIX]
    for index, part in enumerate(parts):
        parts[index] = b""
        inner = part[len(_PREFIX) : -len(_SUFFIX)]
        del part
        if inner:
            if len(chunks) > 1:
                chunks.append(b",")
            chunks.append(inner)
    chunks.append(_SUFFIX)
    return chunks


DECODER = Decoder(MEDIA_TYPE, decode, aliases=("text/json",), text=True, stream=decode_stream)
ENCODER = Encoder(MEDIA_TYPE, encode, join=join)
