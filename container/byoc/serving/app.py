"""The Flask app: /ping, /execution-parameters and /invocations on one straight request path.

Request: Content-Type -> decoder -> frame checked against model.json -> predict -> output
fields -> Accept -> encoder -> response.  Client mistakes are :class:`~byoc.errors.UserError`
and become ``{"error": <code>, "message": ..., "request_id": ...}`` with their 4xx status;
anything else is a fault of ours: logged with the request id, answered with a 500 that
carries the same id (header ``X-Request-Id`` and the JSON body), and never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from byoc import artifact
from byoc.environment import MLPaths
from byoc.errors import ConfigError, DataError, ModelLoadError, PayloadTooLarge, UserError
from byoc.serving import codecs
from byoc.serving.inference import Predictor
from byoc.serving.output import CUSTOM_ATTRIBUTES_HEADER, Prediction, default_fields, request_fields
from byoc.serving.settings import ServingSettings

log = logging.getLogger("byoc.serving")

REQUEST_ID_HEADER = "X-Request-Id"
CHUNK_BYTES = 4 * 1024 * 1024  # line-oriented batch bodies are decoded and predicted in slices this big
DRAIN_LIMIT = 128 * 1024 * 1024  # read (and drop) at most this much of an oversized body before answering


def load_model(environ: Mapping[str, str] | None = None) -> artifact.ModelArtifact:
    """Load and sha256-verify /opt/ml/model (or $SAGEMAKER_BASE_DIR/model)."""
    return artifact.load(MLPaths.from_environ(environ).model_dir)


def prepare(model: artifact.ModelArtifact) -> Predictor:
    """A Predictor, with a model.json that cannot serve reported as a load error."""
    try:
        predictor = Predictor(model)
        predictor.enable_fast_path()
        return predictor
    except (KeyError, TypeError, ValueError) as exc:
        where = model.path / artifact.METADATA_FILE if model.path else artifact.METADATA_FILE
        raise ModelLoadError(f"{where}: cannot serve this model ({type(exc).__name__}: {exc})") from exc


def _error_body(code: str, message: str, request_id: str) -> str:
    return json.dumps({"error": code, "message": message, "request_id": request_id})


def _error_response(status: int, code: str, message: str, request_id: str) -> Response:
    response = Response(_error_body(code, message, request_id), status=status, mimetype="application/json")
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit // (1024 * 1024)} MB (SAGEMAKER_MAX_PAYLOAD_IN_MB); "
        "send fewer rows per request, or raise MaxPayloadInMB for batch transform (up to 100)"
    )


def _drain(stream: Any) -> None:
    """Read what the client is still sending so it gets our 413 rather than a reset connection."""
    remaining = DRAIN_LIMIT
    while remaining > 0 and (block := stream.read(min(remaining, 1 << 20))):
        remaining -= len(block)


def read_body(stream: Any, limit: int) -> bytes:
    blocks, total = [], 0
    while block := stream.read(1 << 20):
        total += len(block)
        if total > limit:
            _drain(stream)
            raise _too_large(limit)
        blocks.append(block)
    return b"".join(blocks)


def line_slices(stream: Any, limit: int, size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The body in slices of about ``size`` bytes that end at a newline, counting against ``limit``."""
    pending, total = b"", 0
    while block := stream.read(size):
        total += len(block)
        if total > limit:
            _drain(stream)
            raise _too_large(limit)
        data = pending + block if pending else block
        cut = data.rfind(b"\n")
        if cut < 0:
            pending = data
            continue
        yield data[: cut + 1]
        pending = data[cut + 1 :]
    if pending:
        yield pending


class Invocations:
    """The /invocations handler with everything per-model prepared at start-up."""

    def __init__(self, predictor: Predictor, settings: ServingSettings) -> None:
        self.predictor = predictor
        self.settings = settings
        self.schema = predictor.schema
        self.fields = default_fields(settings.inference_output, predictor.available_fields)
        self.default_accept = None
        if settings.default_accept:
            try:
                self.default_accept = codecs.choose_encoder(settings.default_accept, "").media_type
            except UserError:
                raise ConfigError(
                    f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT={settings.default_accept!r} is not "
                    f"supported; use one of {', '.join(codecs.supported_accept_types())}"
                ) from None

    def predict_body(self, decoder: codecs.Decoder, fields: tuple[str, ...]) -> Prediction:
        limit = self.settings.max_payload_bytes
        length = request.content_length
        if length is not None and length > limit:
            _drain(request.stream)
            raise _too_large(limit)
        if not decoder.line_oriented:
            body = read_body(request.stream, limit)
            if not body.strip():
                raise DataError(
                    f"the request body is empty; send {decoder.media_type} rows of the "
                    f"model's {self.schema.width} features",
                    code="empty_body",
                )
            return self.predictor.predict(decoder.decode(body, self.schema, 0), fields)
        parts: list[Prediction] = []
        rows = 0
        header: bytes | None = None
        for index, piece in enumerate(line_slices(request.stream, limit)):
            if not piece.strip():
                continue
            if header is not None:
                piece = header + piece
            elif index == 0 and decoder.header is not None:
                header = decoder.header(piece, self.schema)
            frame = decoder.decode(piece, self.schema, rows)
            rows += len(frame)
            parts.append(self.predictor.predict(frame, fields))
        if not parts:
            raise DataError(
                f"the request body is empty; send {decoder.media_type} rows of the "
                f"model's {self.schema.width} features",
                code="empty_body",
            )
        return Prediction.concat(parts)

    def __call__(self) -> Response:
        headers = request.headers
        decoder = codecs.find_decoder(headers.get("Content-Type"))
        fields = request_fields(
            headers.get(CUSTOM_ATTRIBUTES_HEADER),
            default=self.fields,
            available=self.predictor.available_fields,
        )
        encoder = codecs.choose_encoder(headers.get("Accept"), decoder.media_type, self.default_accept)
        body = encoder.encode(self.predict_body(decoder, fields))
        response = Response(body, status=200, content_type=encoder.media_type)
        response.headers[CUSTOM_ATTRIBUTES_HEADER] = "output=" + ",".join(fields)
        return response


def create_app(
    model: artifact.ModelArtifact | None = None, *, environ: Mapping[str, str] | None = None
) -> Flask:
    """The WSGI app; loads the model from the ML root when none is given.

    Raises ModelLoadError or ConfigError before any request is served, so ``serve`` can
    refuse to start with a one-line reason.
    """
    environ = dict(os.environ if environ is None else environ)
    settings = ServingSettings.from_environ(environ)
    model = model if model is not None else load_model(environ)
    predictor = prepare(model)
    invocations = Invocations(predictor, settings)
    execution_parameters = json.dumps(
        {
            "MaxConcurrentTransforms": settings.workers,
            "BatchStrategy": "MultiRecord",
            "MaxPayloadInMB": settings.max_payload_mb,
        }
    )

    app = Flask("byoc")
    app.config.update(MAX_CONTENT_LENGTH=None, PROPAGATE_EXCEPTIONS=False)
    app.extensions["byoc.predictor"] = predictor

    @app.get("/ping")
    def ping() -> Response:
        return Response(status=200)

    @app.get("/execution-parameters")
    def get_execution_parameters() -> Response:
        return Response(execution_parameters, status=200, mimetype="application/json")

    @app.post("/invocations")
    def invoke() -> Response:
        request_id = uuid.uuid4().hex
        request.environ["byoc.request_id"] = request_id
        response = invocations()
        response.headers[REQUEST_ID_HEADER] = request_id
        return response

    def current_request_id() -> str:
        return request.environ.get("byoc.request_id") or uuid.uuid4().hex

    @app.errorhandler(UserError)
    def user_error(exc: UserError) -> Response:
        return _error_response(exc.status, exc.code, exc.message, current_request_id())

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        code = (exc.name or "http_error").lower().replace(" ", "_")
        status = exc.code or 500
        message = exc.description or exc.name
        if status == 404:
            message = (
                f"{request.path} does not exist; use GET /ping, GET /execution-parameters "
                "or POST /invocations"
            )
        elif status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        return _error_response(status, code, message, current_request_id())

    @app.errorhandler(Exception)
    def fault(exc: Exception) -> Response:
        request_id = current_request_id()
        log.exception("request %s failed: %s", request_id, exc)
        return _error_response(
            500,
            "internal_error",
            f"the server failed to handle this request; quote request id {request_id} when reporting it",
            request_id,
        )

    return app
