"""The two shapes a codec takes: a decoder (body -> validated frame) and an encoder (prediction -> body)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from byoc.serving.output import Prediction
from byoc.serving.schema import Batch, RequestSchema

DecodeFn = Callable[[bytes, RequestSchema, int], Batch]
EncodeFn = Callable[[Prediction], bytes]


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
    body's first slice, which the caller prepends to later slices so they decode alike."""
    whole_records: Callable[[bytes], int] | None = None
    """For line-oriented formats whose records may span lines (CSV's quoted newlines): the
    length of the longest prefix of whole records, where a slice may end.  None: at a newline."""


@dataclass(frozen=True)
class Encoder:
    """Turns a :class:`Prediction` into a response body of one media type."""

    media_type: str
    encode: EncodeFn
