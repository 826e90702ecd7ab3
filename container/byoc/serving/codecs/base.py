"""The two shapes a codec takes: a decoder (body -> validated frame) and an encoder (prediction -> body)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from byoc.errors import DataError
from byoc.serving.output import Prediction
from byoc.serving.schema import Batch, RequestSchema

DecodeFn = Callable[[bytes, RequestSchema, int], Batch]
EncodeFn = Callable[[Prediction], bytes]


def not_utf8(what: str, exc: UnicodeDecodeError, send: str = "UTF-8 text", offset: int = 0) -> DataError:
    """The 400 for a request body (or a line of one) that is not UTF-8, as byoc's decoders and a
    hook's text body all say it: ``undecodable_body`` and the byte where it stops being UTF-8
    (``offset``: the bytes before what ``exc`` decoded, such as a byte order mark read past)."""
    return DataError(
        f"{what} is not UTF-8 (byte {offset + exc.start}: {exc.reason}); send {send}", code="undecodable_body"
    )


@dataclass(frozen=True)
class Decoder:
    """Turns a request body of one media type into a validated :class:`Batch` of model inputs.

    ``decode(body, schema, start_row)`` raises :class:`~byoc.errors.DataError` (undecodable)
    or :class:`~byoc.errors.SchemaError` (wrong shape or values).  ``line_oriented`` decoders
    also accept any line-aligned slice of a body, so large batch payloads are decoded and
    predicted chunk by chunk; ``start_row`` is the number of records before the slice.
    """

    media_type: str
    decode: DecodeFn
    line_oriented: bool = False
    aliases: tuple[str, ...] = ()
    text: bool = False
    header: Callable[[bytes, RequestSchema], bytes | None] | None = None
    """For line-oriented formats with an optional header line (CSV): the header line of a
    body's first slice (None: it has none), which ``decode`` finds there by itself; only a
    body's first line may be one."""
    continued: Callable[[bytes, RequestSchema, int, bytes | None, int], Batch] | None = None
    """With ``header``: ``continued(slice, schema, start_row, header, start_line)`` decodes a slice
    after a body's first as rows only (a later slice's first line is never a header), in the
    column order of the body's ``header`` line (None: the body had none); ``start_line``, the
    body's lines before the slice, lets its errors name a row's line where that is not its number."""
    stream: Callable[[Iterable[bytes], RequestSchema], Iterator[Batch]] | None = None
    """For whole-body formats that can be parsed as they arrive (JSON's lists of rows): the
    batches decoded from the body's raw blocks, so a large body is never held whole."""
    batches: Callable[[bytes, RequestSchema, int], Iterator[Batch]] | None = None
    """For whole-body formats of many rows that may decode to far more than the body (Parquet):
    ``batches(body, schema, limit)`` gives its rows in slices, each predicted before the next is
    decoded, refusing (413) a body that decodes to more than ``limit``, the payload limit, allows."""
    whole_records: Callable[[bytes], int] | None = None
    """For line-oriented formats whose records may span lines (CSV's quoted newlines): the
    length of the longest prefix of whole records, where a slice may end.  None: at a newline."""
    lines: Callable[[bytes, RequestSchema, int, int], Batch] | None = None
    """For line-oriented formats whose errors name lines (JSON Lines, which skips blank lines, so
    its records are not its lines): ``lines(slice, schema, start_row, start_line)`` decodes as
    ``decode`` does, ``start_line`` the number of the body's lines before the slice."""
    blank_records: bool = False
    """For line-oriented formats: whether a line that holds nothing or only spaces is a record
    (CSV: one value, answered in its place; JSON Lines: a 400 naming it) rather than skipped, so
    a slice of such lines is decoded, not dropped."""


@dataclass(frozen=True)
class Encoder:
    """Turns a :class:`Prediction` into a response body of one media type."""

    media_type: str
    encode: EncodeFn
    join: Callable[[list[bytes]], list[bytes]] | None = None
    """The response's chunks from the encodings of a batch's consecutive slices, so a large
    batch is encoded slice by slice and its answer held once, as bytes (None: the slices'
    predictions are concatenated, then encoded)."""
    max_fields: int | None = None
    """The most output fields one answer can carry (npy: one array, one field); None: any.
    Negotiation passes over a format that cannot carry the fields asked for when another
    is acceptable (:func:`byoc.serving.codecs.choose_encoder`)."""

    def carries(self, fields: int) -> bool:
        return self.max_fields is None or fields <= self.max_fields
