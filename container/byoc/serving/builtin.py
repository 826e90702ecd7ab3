"""byoc's own model as a :class:`~byoc.serving.handler.Handler`.

Content-Type -> decoder -> frame checked against model.json -> predict -> output fields ->
Accept -> encoder.  Everything per-model (schema, fast path, default fields, default
Accept) is prepared once, at load.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from byoc import artifact, wide_text
from byoc.errors import ConfigError, DataError, ModelLoadError, SchemaError, UserError
from byoc.serving import codecs
from byoc.serving import settings as settings_module
from byoc.serving.handler import InferenceRequest, InferenceResponse, RequestBody
from byoc.serving.inference import Predictor
from byoc.serving.output import (
    CUSTOM_ATTRIBUTES_HEADER,
    Prediction,
    default_fields,
    request_fields,
    supported_fields,
)
from byoc.serving.schema import Batch, RequestSchema
from byoc.serving.settings import ServingSettings


def prepare(model: artifact.ModelArtifact, compiled_inference: bool | None = None) -> Predictor:
    """A Predictor, with a model.json that cannot serve reported as a load error.

    ``compiled_inference`` None follows BYOC_COMPILED_INFERENCE (on unless set to off).
    """
    if compiled_inference is None:
        compiled_inference = settings_module.compiled_inference(os.environ)
    try:
        predictor = Predictor(model, compiled_inference=compiled_inference)
        predictor.enable_fast_path()
        return predictor
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # a model.json entry of another shape
        where = model.path / artifact.METADATA_FILE if model.path else artifact.METADATA_FILE
        raise ModelLoadError(f"{where}: cannot serve this model ({type(exc).__name__}: {exc})") from exc


def default_accept(settings: ServingSettings) -> str | None:
    """SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT as one of byoc's encoders; ConfigError when none writes it.

    None when it states no preference (``*/*``: every request type would answer in its own), as
    when it is unset: resolved once with no request type, ``*/*`` answered every request in JSON."""
    if not settings.default_accept:
        return None
    try:
        if all(
            codecs.choose_encoder(settings.default_accept, own).media_type == own for own in codecs.encoders()
        ):
            return None
        return codecs.choose_encoder(settings.default_accept, "").media_type
    except UserError as exc:
        # the Accept header's 406, with its reason (a q-value out of range, a charset that answers
        # are not in), said of the setting: "is not supported" alone left the reason out
        said = f"Accept {settings.default_accept!r}"
        reason = exc.message[len(said) :] if exc.message.startswith(said) else ""
        if reason and not reason.startswith(" cannot be satisfied;"):
            raise ConfigError(
                f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT={settings.default_accept!r}{reason}"
            ) from None
        raise ConfigError(
            f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT={settings.default_accept!r} is not "
            f"supported; {codecs.offered(settings.default_accept)}"
        ) from None


def decode_batches(
    body: RequestBody, decoder: codecs.Decoder, schema: RequestSchema, limit: int
) -> Iterator[Batch]:
    """The body as validated batches: one for whole-body formats (one per slice of rows for those
    that decode to far more than the body, such as Parquet, within what ``limit``, the payload
    limit, allows), one per slice for line-oriented ones (a CSV header only on the body's first
    line, its column order kept by later slices); an empty body is a 400."""
    if decoder.stream is not None:
        decoded, rows = False, 0
        nul: list[bool] = []
        blocks = _watch_nul(_utf8_only(body.line_slices(len), decoder), nul)
        for batch in decoder.stream(blocks, schema):  # raw blocks: no record cuts
            decoded = True
            if nul:
                refuse_nul(batch, rows)
            rows += len(batch)
            yield batch
        if not decoded:
            raise _empty(decoder, schema)
        return
    if not decoder.line_oriented:
        data = body.read()
        if decoder.text:
            refuse_wide_text(data, decoder.media_type)
        if not _blank(data):
            # a binary body (Parquet, npy) may hold any byte: its text columns are each read once
            checked = not decoder.text or wide_text.may_hold_nul(data)
            if decoder.batches is not None:
                rows = 0
                for batch in decoder.batches(data, schema, limit):
                    if checked:
                        refuse_nul(batch, rows)
                    rows += len(batch)
                    yield batch
            else:
                batch = decoder.decode(data, schema, 0)
                if checked:
                    refuse_nul(batch, 0)
                yield batch
            return
        raise _empty(decoder, schema)
    rows, lines, decoded = 0, 0, False
    header: bytes | None = None
    first: bytes | None = None  # the first slice, kept until a second one needs its header (if any)
    header_only: DataError | None = None  # the first slice's error when it held only the header
    before = b""  # the previous slice, whose lines are counted once a next one comes (if any)
    for piece in _utf8_only(body.line_slices(decoder.whole_records), decoder):
        if (decoder.lines is not None or decoder.continued is not None) and before:
            lines += before.count(b"\n")
        before = piece
        if not piece or (not decoder.blank_records and _blank(piece)):
            continue
        if (decoded or header_only) and decoder.continued is not None:  # only a body's first line is a header
            if first is not None and decoder.header is not None:  # a body of one slice never asks
                header, first = decoder.header(first, schema), None
            batch = decoder.continued(piece, schema, rows, header, lines)
        elif decoder.lines is not None:
            batch = decoder.lines(piece, schema, rows, lines)
        else:
            first = piece if decoder.continued is not None else None
            try:
                batch = decoder.decode(piece, schema, rows)
            except DataError as exc:
                if not _only_header(exc, piece, decoder, schema):
                    raise
                header_only = exc  # the rows follow in the next slices, if any
                continue
        if wide_text.may_hold_nul(piece):
            refuse_nul(batch, rows)
        rows += len(batch)
        decoded = True
        yield batch
    if not decoded:
        raise header_only or _empty(decoder, schema)


def refuse_nul(batch: Batch, start_row: int) -> None:
    """A 400 naming the row and column of the first text value holding NUL, as training refuses
    it (:func:`byoc.wide_text.nul_cell`): a JSON or JSON Lines ``"\\u0000"``, a Parquet text value,
    which a model would take as an unseen category.  Called for a body that may hold one
    (:func:`byoc.wide_text.may_hold_nul`; a CSV body's is named by its decoder)."""
    for name, column in zip(batch.names, batch.columns, strict=True):
        row = None if column.dtype == _FLOAT else wide_text.first_nul(column)
        if row is not None:
            raise SchemaError(
                wide_text.nul_cell(f"row {start_row + row + 1}, column '{name}'"), code="not_text"
            )


_FLOAT = np.dtype(np.float64)  # a numeric feature's column: numbers, never text


def _watch_nul(blocks: Iterator[bytes], seen: list[bool]) -> Iterator[bytes]:
    """``blocks``, with ``seen`` made true once one may hold NUL (its escape cut by a block's end too)."""
    tail = b""
    for block in blocks:
        if not seen and (wide_text.may_hold_nul(block) or wide_text.may_hold_nul(tail + block[:8])):
            seen.append(True)
        tail = block[-8:]
        yield block


def refuse_wide_text(head: bytes, media_type: str) -> None:
    """A 400 naming a text body's encoding when it is UTF-16 or UTF-32 (by training's rule,
    :mod:`byoc.wide_text`), as Windows tools write CSV and JSON: read as UTF-8 it was "not UTF-8
    (byte 0)", or without a byte order mark values full of NULs ("7\\x000" is not a number)."""
    if not wide_text.may_be_wide(head):
        return  # the usual body
    encoding = wide_text.wide_encoding(head)
    if encoding is not None:
        told = " (its first bytes are a byte order mark)" if wide_text.has_mark(head) else ""
        raise DataError(
            f"the {media_type} body is {encoding}{told}, not UTF-8, the one encoding byoc reads; "
            "send it encoded as UTF-8 (a file saved by a Windows tool: save it as UTF-8, such as "
            "Excel's 'CSV UTF-8' or PowerShell's -Encoding utf8)",
            code="undecodable_body",
        )


def _utf8_only(pieces: Iterator[bytes], decoder: codecs.Decoder) -> Iterator[bytes]:
    """``pieces``, the body's first checked by :func:`refuse_wide_text`."""
    first = next(pieces, None)
    if first is None:
        return
    if decoder.text:
        refuse_wide_text(first, decoder.media_type)
    yield first
    yield from pieces


def _only_header(exc: DataError, piece: bytes, decoder: codecs.Decoder, schema: RequestSchema) -> bool:
    """Whether ``exc`` refuses the body's first slice for holding its header line alone: slices
    end at a newline, so a header and a last row without one (``"a,b\n1,2"``), or a row longer
    than a slice, come apart, and the body was refused as "a header but no rows" with its row
    in the next slice."""
    return exc.code == "empty_body" and decoder.header is not None and decoder.header(piece, schema) == piece


_NUMBERED = re.compile(r"\b(?:row|line) \d")
MINI_BATCH_NOTE = (
    " (rows and lines are numbered within this request: a batch transform's mini-batch may start "
    "anywhere in the input file, so search the file for the record described rather than going to "
    "that line)"
)


def in_mini_batch(exc: DataError) -> None:
    """Add :data:`MINI_BATCH_NOTE` to ``exc`` when it names a row or line by number: in a batch
    transform that number counts from the mini-batch's first line, not the file's, and a user who
    looked at that line of the file found a good record there."""
    if _NUMBERED.search(exc.message) and not exc.message.endswith(MINI_BATCH_NOTE):
        exc.message += MINI_BATCH_NOTE
        exc.args = (exc.message,)


def _blank(data: bytes) -> bool:
    """Whether ``data`` is empty or only ASCII whitespace (what ``not data.strip()`` says, without
    copying a slice of megabytes to say it)."""
    return not data or data.isspace()


def _empty(decoder: codecs.Decoder, schema: RequestSchema) -> DataError:
    return DataError(
        f"the request body is empty; send {decoder.media_type} rows of the model's {schema.width} features",
        code="empty_body",
    )


class ModelHandler:
    """The built-in handler: byoc's codecs, schema checks, Predictor and output fields."""

    memory_bytes = 0

    def __init__(self, predictor: Predictor, settings: ServingSettings) -> None:
        self.predictor = predictor
        self.schema = predictor.schema
        self.available_fields = predictor.available_fields
        self.supported = supported_fields(settings.inference_supported, predictor.available_fields)
        self.fields = default_fields(settings.inference_output, predictor.available_fields, self.supported)
        self.default_accept = default_accept(settings)
        self.batch = settings.batch
        self.max_payload_bytes = settings.max_payload_bytes

    @classmethod
    def load(cls, folder: Path, settings: ServingSettings) -> ModelHandler:
        """Load and sha256-verify model.joblib + model.json in ``folder``, the one
        :func:`artifact.locate` found (handler.load locates it once), and prepare them to serve."""
        model = artifact.load_located(folder, compiled=settings.compiled_inference)
        return cls(prepare(model, settings.compiled_inference), settings)

    def predict_body(self, body: RequestBody, decoder: codecs.Decoder, fields: tuple[str, ...]) -> Prediction:
        """Decode and predict slice by slice, so a large line-oriented body never sits whole."""
        parts = [
            self.predictor.predict(batch, fields)
            for batch in decode_batches(body, decoder, self.schema, self.max_payload_bytes)
        ]
        return Prediction.concat(parts)

    def invoke(self, request: InferenceRequest) -> InferenceResponse:
        try:
            return self._invoke(request)
        except DataError as exc:
            if self.batch:
                in_mini_batch(exc)
            raise

    def _invoke(self, request: InferenceRequest) -> InferenceResponse:
        decoder = codecs.find_decoder(request.content_type)
        fields = request_fields(
            request.custom_attributes,
            default=self.fields,
            available=self.predictor.available_fields,
            supported=self.supported,
        )
        encoder = codecs.choose_encoder(request.accept, decoder.media_type, self.default_accept, len(fields))
        headers = {CUSTOM_ATTRIBUTES_HEADER: "output=" + ",".join(fields)}
        if encoder.join is None:
            return InferenceResponse(
                encoder.encode(self.predict_body(request.body, decoder, fields)), encoder.media_type, headers
            )
        # slice by slice: a large batch's answer is held once, as bytes, never as Python objects
        batches = decode_batches(request.body, decoder, self.schema, self.max_payload_bytes)
        chunks = encoder.join([encoder.encode(self.predictor.predict(batch, fields)) for batch in batches])
        if len(chunks) == 1:
            return InferenceResponse(chunks[0], encoder.media_type, headers)
        return InferenceResponse(chunks, encoder.media_type, headers)  # its length: app.respond_with

    def warm_up(self) -> None:
        self.predictor.warm_up()

    def close(self) -> None:
        """Nothing to take back: byoc's model puts nothing into the process beyond itself."""

    def describe(self) -> str:
        model = self.predictor.model
        return (
            f"{model.algorithm} {model.problem_type} model from {model.path}: "
            f"{self.schema.width} features, "
            f"{'fast' if self.predictor.fast_path else 'pipeline'} single-row path"
        )
