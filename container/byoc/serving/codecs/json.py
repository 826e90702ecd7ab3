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
import math
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from byoc import json_objects
from byoc.errors import DataError, PayloadTooLarge, SchemaError
from byoc.json_objects import json_words
from byoc.serving.codecs.base import Decoder, Encoder, not_utf8
from byoc.serving.output import Prediction
from byoc.serving.schema import FLOAT32_MAX, Batch, RequestSchema
from byoc.wide_text import UTF8_BOM_TEXT

MEDIA_TYPE = "application/json"
_WRAPPERS = ("instances", "inputs", "dataframe_records")
_SCALARS = (str, int, float, bool, type(None))
_SPLIT_SHAPE = '"dataframe_split" must be {"columns": [...], "data": [[...], ...]}'


_STRICT = _json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def dumps(value: Any) -> str:
    """``value`` as compact JSON (RFC 8259): NaN and infinities, which JSON cannot spell, as
    ``null`` (a missing value, as in requests), never the ``NaN`` tokens strict parsers refuse."""
    try:
        return _STRICT(value)
    except ValueError:  # a non-finite float somewhere: only then is every value visited
        return _STRICT(_finite(value))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


# A batch transform with SplitType=Line joins a mini-batch's lines into one request: JSON values one
# per line sent as application/json are one JSON body that goes on after its first value.
JSON_LINES_HINT = (
    "; a body of one JSON value per line (as a batch transform with SplitType=Line sends a mini-batch) "
    "is JSON Lines: send it with Content-Type application/jsonlines"
)


def _goes_on(position: int) -> DataError:
    return DataError(
        f"the JSON body goes on after its value (character {position}){JSON_LINES_HINT}",
        code="undecodable_body",
    )


def _too_many_digits(exc: ValueError, what: str, where: str = "") -> DataError | None:
    """Python's refusal to read an integer of more digits than its limit (CVE-2020-10735), said
    for an HTTP client; None for any other ValueError.  Its own words advise
    ``sys.set_int_max_str_digits()``, which only the server could call."""
    if "integer string conversion" not in str(exc):
        return None
    return DataError(
        f"{what} holds an integer of more than {sys.get_int_max_str_digits():,} digits{where}: out of "
        f"range for any feature (|x| must stay below {FLOAT32_MAX:.3g}); send a number within it, or null for missing",
        code="undecodable_body",
    )


def loads(body: bytes | str, *, what: str = "the JSON body") -> Any:
    try:
        return json_objects.parse(body)
    except json_objects.RepeatedKey as exc:
        raise SchemaError(exc.says(what), code="duplicate_columns") from None
    except UnicodeDecodeError as exc:
        raise not_utf8(what, exc, "UTF-8 JSON") from None
    except _json.JSONDecodeError as exc:
        position = f" (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        hint = JSON_LINES_HINT if exc.msg == "Extra data" and exc.lineno > 1 else ""  # values on more lines
        raise DataError(f"{what} is not valid JSON{position}{hint}", code="undecodable_body") from None
    except ValueError as exc:  # e.g. a number beyond Python's integer digit limit
        raise _too_many_digits(exc, what) or DataError(
            f"{what} is not valid JSON", code="undecodable_body"
        ) from None
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
            f"the JSON body is {json_words(document)}; send an object such as "
            '{"instances": [[...]]} or a list of rows',
            code="bad_shape",
        )
    if "dataframe_split" in document:
        combined = [key for key in _WRAPPERS if key in document]
        if combined:
            raise SchemaError(
                f'"dataframe_split" cannot be combined with "{combined[0]}"; send one of them',
                code="bad_shape",
            )
        split = document["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise SchemaError(_SPLIT_SHAPE, code="bad_shape")
        columns = split.get("columns")
        if columns is None:
            return batch_from_items(split["data"], schema)
        return _split_rows(_split_columns(columns, schema), schema)(split["data"], 0)
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
                # a list makes it columns (a record's values are plain): its other columns must be too
                if any(isinstance(v, list) for v in inner.values()):
                    return schema.from_columns(inner)
                return schema.from_records([inner])
            raise SchemaError(
                f'"{key}" must hold a list of rows or records, got {json_words(inner)}', code="bad_shape"
            )
    # a single record, or the built-in algorithms' single {"features": [...]}, a row as in a list
    return batch_from_items([document], schema)


def decode(body: bytes, schema: RequestSchema, start_row: int = 0) -> Batch:
    return batch_from_document(loads(body), schema)


STREAM_BATCH_CHARS = (
    1024 * 1024
)  # a streamed list is decoded and predicted in batches of about this much text
WHOLE_BODY_CHARS = 8 * 1024 * 1024  # the most JSON text decoded in one piece (above the 6 MB real-time limit)
MAX_VALUE_CHARS = 8 * 1024 * 1024  # the largest single row, record or value of a streamed body
_STREAMED_KEYS = ("instances", "inputs", "dataframe_records")
_SCANNER = json_objects.decoder()
RUN_CHARS = 4096  # a streamed list's items are decoded a run at a time when this much text is held
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
        self.read = 0  # bytes of the body decoded so far
        self.ended = False

    def more(self) -> bool:
        if self.ended:
            return False
        block = next(self.blocks, None)
        held = len(self.utf8.getstate()[0])  # a character's first bytes, decoded with this block
        try:
            text = self.utf8.decode(block or b"", final=block is None)
        except UnicodeDecodeError as exc:
            raise not_utf8("the JSON body", exc, "UTF-8 JSON", offset=self.read - held) from None
        self.read += len(block or b"")
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
            except json_objects.RepeatedKey as exc:
                raise SchemaError(exc.says("the JSON body"), code="duplicate_columns") from None
            except ValueError as exc:
                at = getattr(exc, "pos", self.pos)
                cut_short = len(self.text) - at <= 16 or "Unterminated" in str(exc)
                if cut_short and len(self.text) - self.pos > MAX_VALUE_CHARS:
                    raise PayloadTooLarge(
                        f"one row, record or value of the JSON body is larger than "
                        f"{MAX_VALUE_CHARS // (1024 * 1024)} MB; send rows of feature values",
                        code="json_value_too_large",
                    ) from None
                if cut_short and self.more():
                    continue  # the value goes on in the next block
                digits = _too_many_digits(
                    exc, "the JSON body", f" (in the value at character {self.dropped + at})"
                )
                raise digits or DataError(
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

    def values_before(self, limit: int) -> list | None:
        """The list items from the cursor (at an item) up to the last comma before a ``[`` or
        ``{`` in the text already held and before ``limit``, decoded in one call and the cursor
        moved past them; [] when less than RUN_CHARS of text is held past the cursor; None
        when the text before the comma is not a run of whole items (a comma and bracket inside
        a text or a row, or a fault): :meth:`value` then reads item by item and names any fault.

        One call for the items in place of one per item (with its whitespace skipping and comma
        checks), by :func:`json_objects.parse`: the values the decoder gives over the same text.
        A successful parse of ``[`` + text + ``]`` proves the comma stands between two items of
        this list: cut inside a text it leaves the text unterminated, cut inside a row or record
        it leaves it open.  Only text already held is read, so no fault further on (a byte that
        is not UTF-8) is met before the items before it are converted, as one by one."""
        limit = min(limit, len(self.text))
        start = self.pos
        if limit - start < RUN_CHARS:
            return []
        cut = self._separator(start, limit)
        if cut is None:
            return None
        try:
            items = json_objects.parse("[" + self.text[start:cut] + "]")
        except (ValueError, RecursionError):  # a repeated key or a digit limit too: value() says so
            return None
        self.pos = cut
        return items

    def _separator(self, start: int, limit: int, tries: int = 16) -> int | None:
        """The position of the last comma between ``start`` and ``limit`` followed by whitespace
        and a ``[`` or ``{`` (looked for among the last ``tries`` brackets), or None."""
        text = self.text
        for _ in range(tries):
            opening = max(text.rfind("[", start, limit), text.rfind("{", start, limit))
            if opening <= start:
                return None
            before = opening - 1
            while before > start and text[before] in _WHITESPACE:
                before -= 1
            if before > start and text[before] == ",":
                return before
            limit = opening
        return None

    def expect(self, char: str, where: str) -> None:
        if self.peek() != char:
            found = self.peek() or "the end of the body"
            raise DataError(
                f"the JSON body is not valid JSON (character {self.dropped + self.pos}: expected "
                f"{char!r} {where}, found {found!r})",
                code="undecodable_body",
            )
        self.pos += 1

    def fill(self, limit: int) -> bool:
        """Read on until the body ends (True) or more than ``limit`` characters are held (False)."""
        while not self.ended and len(self.text) <= limit:
            self.more()
        return self.ended and len(self.text) <= limit

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


def _too_large_to_decode_whole(what: str, fix: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{what} is decoded in one piece, which byoc does for JSON bodies of up to "
        f"{WHOLE_BODY_CHARS // (1024 * 1024)} MB, and this body is larger; {fix}",
        code="json_shape_too_large",
    )


_SEND_ROWS = 'send the rows as {"instances": [[...], ...]} or {"dataframe_records": [{...}, ...]}'


def _items(text: _Text, to_batch: Callable[[list, int], Batch]) -> Iterator[Batch]:
    """The items of the list whose ``[`` is at the cursor, as batches of about STREAM_BATCH_CHARS."""
    text.expect("[", "to open the list")
    items: list = []
    rows, mark = 0, text.pos
    runs = True  # items decoded a run at a time (values_before) until a run cannot be
    while text.peek() != "]":
        if items or rows:
            text.expect(",", "between the list's items")
        if runs:
            run = text.values_before(mark + STREAM_BATCH_CHARS)
            runs = run is not None  # not again in this batch: each try reads up to its end
            if run:
                items.extend(run)
                continue
        items.append(text.value())
        if text.pos - mark >= STREAM_BATCH_CHARS:
            yield to_batch(items, rows)
            rows += len(items)
            items = []
            text.commit()
            mark = text.pos
            runs = True
    text.pos += 1
    if items or not rows:
        yield to_batch(items, rows)


def _skip(text: _Text, depth: int = 0) -> None:
    """Read past the value at the cursor without holding it (lists and objects item by item)."""
    if depth > 64:
        raise DataError(
            "the JSON body nests too deeply; send rows or records of plain values", code="undecodable_body"
        )
    opening = text.peek()
    if opening not in ("[", "{"):
        text.value()
        return
    closing = "]" if opening == "[" else "}"
    text.pos += 1
    count = 0
    while text.peek() != closing:
        if count:
            text.expect(",", "between items")
        if opening == "{":
            text.value()
            text.expect(":", "after a key")
        _skip(text, depth + 1)
        count += 1
        if text.pos >= STREAM_BATCH_CHARS:
            text.commit()
    text.pos += 1


def _split_rows(columns: list[str], schema: RequestSchema) -> Callable[[list, int], Batch]:
    """Rows of ``dataframe_split`` data in ``columns``' order -> a batch in the model's order."""
    order = None if columns == list(schema.names) else [columns.index(name) for name in schema.names]

    def to_batch(rows: list, start_row: int) -> Batch:
        if not rows and not start_row:
            raise DataError('"dataframe_split" holds no rows in "data"', code="empty_body")
        for number, row in enumerate(rows, start=start_row + 1):
            if not isinstance(row, list):
                raise SchemaError(
                    f'"dataframe_split" row {number} is {json_words(row)}; each row of "data" must be a '
                    f"list of {len(columns)} values, one per column",
                    code="bad_row",
                )
            if len(row) != len(columns):
                raise SchemaError(
                    f'"dataframe_split" row {number} holds {len(row)} values where "columns" names '
                    f'{len(columns)}; each row of "data" must be a list of {len(columns)} values, one per column',
                    code="wrong_column_count",
                )
        if order is not None:
            rows = [[row[i] for i in order] for row in rows]
        return schema.from_rows(rows, start_row=start_row)

    return to_batch


def _split_columns(value: Any, schema: RequestSchema) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise SchemaError('"dataframe_split"."columns" must be a list of column names', code="bad_shape")
    return schema.named(value, where='"dataframe_split"')


def _stream_split(text: _Text, schema: RequestSchema) -> Iterator[Batch]:
    """``{"columns": [...], "index": [...], "data": [[...], ...]}``, its rows as they arrive."""
    if text.peek() != "{":
        raise SchemaError(_SPLIT_SHAPE, code="bad_shape")
    text.pos += 1
    columns: list[str] | None = None
    found, count = False, 0
    while text.peek() != "}":
        if count:
            text.expect(",", 'between the keys of "dataframe_split"')
        key = text.value()
        text.expect(":", "after a key")
        if key == "columns":
            columns = _split_columns(text.value(), schema)
        elif key == "data":
            if text.peek() != "[":
                raise SchemaError(_SPLIT_SHAPE, code="bad_shape")
            if columns is None:
                raise _too_large_to_decode_whole(
                    '"dataframe_split" with "data" before "columns" (or without "columns")',
                    'put "columns" first, as pandas\' to_json(orient="split") does, or ' + _SEND_ROWS,
                )
            yield from _items(text, _split_rows(columns, schema))
            found = True
        else:
            _skip(text)
        count += 1
    text.pos += 1
    if not found:
        raise SchemaError(_SPLIT_SHAPE, code="bad_shape")


def _stream_object(text: _Text, schema: RequestSchema) -> Iterator[Batch]:
    """A JSON object too large to decode whole: only ``dataframe_split`` can be read as it arrives
    (other keys beside it are skipped, as in a small body); any other object shape is refused."""
    text.expect("{", "to open the object")
    found, others, count = False, [], 0
    while text.peek() != "}":
        if count:
            text.expect(",", "between the object's keys")
        key = text.value()
        text.expect(":", "after a key")
        if key in others or (found and key == "dataframe_split"):
            raise SchemaError(json_objects.RepeatedKey(key).says("the JSON body"), code="duplicate_columns")
        if key in _WRAPPERS:
            if count:
                raise SchemaError(
                    f'"{key}" cannot be combined with other keys; send one of them', code="bad_shape"
                )
            raise _too_large_to_decode_whole(f'"{key}" holding a {_kind(text.peek())}', _SEND_ROWS)
        if key == "dataframe_split":
            yield from _stream_split(text, schema)
            found = True
        else:
            others.append(key)
            _skip(text)
        count += 1
    text.pos += 1
    if text.peek():
        raise _goes_on(text.dropped + text.pos)
    if not found:
        raise _too_large_to_decode_whole("a single record", _SEND_ROWS)


def _kind(opening: str) -> str:
    return {"{": "mapping (columns or one record)", "[": "list"}.get(opening, "single value")


def _decode_whole(text: _Text, schema: RequestSchema, start: int) -> Iterator[Batch]:
    """A shape that holds no list of rows: decoded in one piece up to WHOLE_BODY_CHARS; a larger
    ``dataframe_split`` is streamed, anything else larger refused (413)."""
    if text.fill(WHOLE_BODY_CHARS):
        yield decode(text.rest_bytes(), schema)
        return
    text.pos = start
    if text.peek() != "{":
        raise _too_large_to_decode_whole("a single row (a flat list of values) or value", _SEND_ROWS)
    yield from _stream_object(text, schema)


def decode_stream(blocks: Iterable[bytes], schema: RequestSchema) -> Iterator[Batch]:
    """Decode a JSON body as it arrives, so a 100 MB batch body is never held whole.

    Lists of rows or records (``[...]``, ``{"instances": [...]}``, "inputs", "dataframe_records")
    and ``dataframe_split`` data with its "columns" first are parsed item by item and predicted
    in batches of about STREAM_BATCH_CHARS of text.  The shapes that hold no list of rows
    (columns, a single record or flat row, ``dataframe_split`` with "data" first) are decoded
    in one piece, up to WHOLE_BODY_CHARS; above that they are a 413 saying how to send rows.
    """
    text = _Text(blocks)
    first = text.peek()
    if first == UTF8_BOM_TEXT:
        text.pos += 1
        first = text.peek()
    start = text.pos
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
        yield from _decode_whole(text, schema, start)
        return
    mark = text.pos
    text.pos += 1
    if text.peek() not in ("[", "{", "]"):  # one flat row of scalars
        yield from _decode_whole(text, schema, start)
        return
    text.pos = mark
    yield from _items(text, lambda items, rows: batch_from_items(items, schema, start_row=rows))
    if key is not None:
        if text.peek() != "}":
            raise SchemaError(
                f'"{key}" cannot be combined with other keys; send one of them', code="bad_shape"
            )
        text.pos += 1
    if text.peek():
        raise _goes_on(text.dropped + text.pos)


def encode(prediction: Prediction) -> bytes:
    """``{"predictions": [...]}``, its records made and written a run at a time (record_runs)."""
    runs = (dumps(run)[1:-1] for run in prediction.record_runs())  # a run's records, without [ ]
    return ('{"predictions":[' + ",".join(runs) + "]}").encode("utf-8")


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
