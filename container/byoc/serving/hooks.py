"""A user's inference hooks (``inference.py``) as a :class:`~byoc.serving.handler.Handler`.

The contract of the SageMaker scikit-learn container, so scripts written for it run here:
``model_fn(model_dir)``, ``input_fn(request_body, content_type)``, ``predict_fn(input_data,
model)``, ``output_fn(prediction, accept)``, or ``transform_fn(model, request_body,
content_type, accept)`` instead of the last three; each may take a trailing ``context``
(:class:`Context`), and ``output_fn``/``transform_fn`` may return ``(body, content_type)``.
``request_body`` is ``str`` for text media types (CSV, JSON, JSON Lines, ``text/*``) and
``bytes`` otherwise; a missing Content-Type is ``application/json``; a missing or ``*/*``
Accept is SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT, else ``application/json``.

Where byoc differs, on purpose:

- A missing hook falls back to byoc's own (:class:`ByocHooks`): model.joblib + model.json
  loaded and verified, requests decoded by byoc's codecs and checked against model.json's
  features (never a blanket cast to float), Autopilot output fields encoded by Accept.  So a
  user can replace only ``predict_fn``: byoc's ``model_fn`` gives a
  :class:`~byoc.serving.byoc_model.ByocModel`, whose ``predict``/``predict_proba`` answer
  scikit-learn's calls on the DataFrame byoc's ``input_fn`` gives.
- ``model_fn`` runs once, in the gunicorn master before the workers fork, so the workers
  share the model; ``requirements.txt`` beside the program is installed before that, and a
  failed install, import or ``model_fn`` stops ``serve`` at once with the cause.
- An exception carrying an HTTP status (a :class:`~byoc.errors.UserError`, or any exception
  whose ``status_code`` is in 400-499, such as the inference toolkit's errors) answers with
  that status and the JSON error body; a MemoryError is the app's 413 ``out_of_memory``
  (:func:`byoc.serving.app.out_of_memory`); anything else is a 500 ``hook_failed`` with the request
  id, naming the hook, the exception's type and its line (never its message), logged with its
  traceback.  A hook's answer byoc cannot send is a 500 naming the hook too.

User code runs only when the user put it there: ``<model_dir>/code/inference.py`` (the SDK
repacks model.tar.gz that way), or SAGEMAKER_PROGRAM in SAGEMAKER_SUBMIT_DIRECTORY (a local
directory, or an ``s3://`` sourcedir.tar.gz that :func:`fetch_submit_directory` unpacks into
``<ML root>/code``) or in ``<model_dir>/code``.
"""

from __future__ import annotations

import codecs as text_codecs
import contextlib
import http
import importlib
import importlib.machinery
import importlib.util
import inspect
import logging
import os
import re
import sys
import threading
import traceback
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header, parse_options_header

from byoc import artifact, user_script
from byoc.errors import (
    ConfigError,
    DataError,
    HookError,
    ModelLoadError,
    NotAcceptable,
    UnsupportedMediaType,
    UserError,
    a_type,
)
from byoc.serving import cells, codecs
from byoc.serving import settings as settings_module
from byoc.serving.builtin import decode_batches, default_accept, in_mini_batch, prepare, refuse_wide_text
from byoc.serving.byoc_model import ByocModel, NotRows
from byoc.serving.handler import InferenceRequest, InferenceResponse
from byoc.serving.output import (
    CUSTOM_ATTRIBUTES_HEADER,
    PREDICTED_LABEL,
    Prediction,
    default_fields,
    request_fields,
    supported_fields,
)
from byoc.serving.schema import RequestSchema
from byoc.serving.settings import ServingSettings
from byoc.wide_text import UTF8_BOM_TEXT

log = logging.getLogger("byoc.serving")

DEFAULT_PROGRAM = "inference.py"
CODE_DIR = "code"
DEFAULT_CONTENT_TYPE = "application/json"
HOOK_ARGUMENTS: Mapping[str, tuple[str, ...]] = {
    "model_fn": ("model_dir",),
    "input_fn": ("request_body", "content_type"),
    "predict_fn": ("input_data", "model"),
    "output_fn": ("prediction", "accept"),
    "transform_fn": ("model", "request_body", "content_type", "accept"),
}
_TEXT_TYPES = frozenset({"application/json", "application/jsonlines", "application/x-jsonlines", "text/csv"})


def _program_names(environ: Mapping[str, str]) -> list[str]:
    name = (environ.get("SAGEMAKER_PROGRAM") or "").strip() or DEFAULT_PROGRAM
    return [name] if name.endswith(".py") else [name + ".py", name]


@dataclass(frozen=True)
class UserCode:
    """Where serve loads the model from, and the user's program for it (None: byoc's own serve)."""

    model_dir: Path
    program: Path | None


def fetch_submit_directory(
    model_dir: Path, code_dir: Path, environ: Mapping[str, str]
) -> tuple[dict[str, str], UserCode | None]:
    """``environ`` with an ``s3://`` SAGEMAKER_SUBMIT_DIRECTORY downloaded and unpacked into
    ``code_dir`` and pointing there, as the SageMaker framework containers fetch it, and the code
    found for the download decision (None when the directory is not remote: :func:`locate_code`
    looks), for handler.load to use rather than look again.  Unchanged when the model's code/
    (in the folder :func:`locate_code` picks, as handler.load does) already holds the program
    (the SDK's repacked model.tar.gz: no network needed).  A failed download stops ``serve``."""
    submit = (environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or "").strip()
    if not submit.startswith("s3://"):
        return dict(environ), None
    packed = _code_at(model_dir, environ)
    if packed.program is not None:  # a remote directory is no place: the program is in code/
        log.info(
            "inference code: using %s (SAGEMAKER_SUBMIT_DIRECTORY=%s not downloaded)",
            packed.program.parent,
            submit,
        )
        return dict(environ), packed
    user_script.fetch(submit, code_dir)
    fetched = {**environ, "SAGEMAKER_SUBMIT_DIRECTORY": str(code_dir)}
    program = _first_program([code_dir], fetched)  # the model's code/ was looked in above
    if program is None:
        raise _no_program(_places(packed.model_dir, fetched), fetched)
    return fetched, UserCode(packed.model_dir, program)


def _places(model_dir: Path, environ: Mapping[str, str]) -> list[Path]:
    """Where the program may be: a local SAGEMAKER_SUBMIT_DIRECTORY first, then the model's code/."""
    submit = (environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or "").strip()
    places = [model_dir / CODE_DIR]
    if submit and "://" not in submit.removeprefix("file://"):
        places.insert(0, Path(submit.removeprefix("file://")))
    return places


def _first_program(places: list[Path], environ: Mapping[str, str]) -> Path | None:
    names = _program_names(environ)
    return next((place / name for place in places for name in names if (place / name).is_file()), None)


def _code_at(model_dir: Path, environ: Mapping[str, str]) -> UserCode:
    """The folder serve loads the model from and the program found for it, each place looked in
    once: ``model_dir`` when the program is found from there already, else the folder
    :func:`artifact.locate` finds (a model.tar.gz packed with its top-level folder, its code/
    inside).  One rule for start-up's download decision and for handler.load."""
    found = _first_program(_places(model_dir, environ), environ)
    if found is not None:
        return UserCode(model_dir, found)
    folder = artifact.locate(model_dir)
    return UserCode(folder, None if folder == model_dir else _first_program([folder / CODE_DIR], environ))


def programs_for(model_dir: Path, environ: Mapping[str, str]) -> dict[Path, str | None]:
    """Every program an endpoint serving ``model_dir`` (an unpacked model.tar.gz) may load, by
    serve's own rule (:func:`_code_at`), each with the SAGEMAKER_PROGRAM that loads it (None:
    unset, so DEFAULT_PROGRAM).  ``environ``'s SAGEMAKER_PROGRAM alone when it sets one; else a
    reader of the artefact (evaluate) cannot know the endpoint's environment, so each Python file
    at the top of the folders serve looks in may be the one it names (the SDK sets it to the
    model's entry_point, repacked into code/)."""
    if (environ.get("SAGEMAKER_PROGRAM") or "").strip():
        found = _code_at(model_dir, environ).program
        return {} if found is None else {found: environ["SAGEMAKER_PROGRAM"].strip()}
    folders = [*_places(model_dir, environ), artifact.locate(model_dir) / CODE_DIR]
    names = sorted(
        {p.name for folder in folders if folder.is_dir() for p in folder.glob("*.py") if p.is_file()}
    )
    programs: dict[Path, str | None] = {}
    for name in [None, *(n for n in names if n != DEFAULT_PROGRAM)]:
        named = {**environ, "SAGEMAKER_PROGRAM": name} if name else dict(environ)
        found = _code_at(model_dir, named).program
        if found is not None:
            programs.setdefault(found, name)
    return programs


def locate_code(model_dir: Path, environ: Mapping[str, str]) -> UserCode:
    """The model's folder and the user's inference program, None when the user gave none (byoc's
    model serves); a ConfigError when SAGEMAKER_PROGRAM or SAGEMAKER_SUBMIT_DIRECTORY names one
    that is not there."""
    code = _code_at(model_dir, environ)
    program = (environ.get("SAGEMAKER_PROGRAM") or "").strip()
    submit = (environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or "").strip()
    if code.program is not None:
        return code
    stray = _first_program(list(dict.fromkeys([model_dir, code.model_dir])), environ)
    if program or submit:
        raise _no_program(_places(code.model_dir, environ), environ, stray)
    if stray is not None:  # a hand-packed model.tar.gz with its program at the top
        log.warning(
            "%s is not run: inference hooks go in %s (model.tar.gz's code/ folder); byoc's own model "
            "serves without them",
            stray,
            code.model_dir / CODE_DIR,
        )
    return code


def _no_program(places: list[Path], environ: Mapping[str, str], stray: Path | None = None) -> ConfigError:
    program = (environ.get("SAGEMAKER_PROGRAM") or "").strip()
    submit = (environ.get("SAGEMAKER_SUBMIT_DIRECTORY") or "").strip()
    name = program or DEFAULT_PROGRAM
    where = " or ".join(str(p) for p in places)
    remote = (
        f"; SAGEMAKER_SUBMIT_DIRECTORY={submit} is not downloaded for a multi-model endpoint: "
        "put the code in each model.tar.gz's code/ (the SDK repacks it so when the model has "
        "an entry_point and source_dir)"
        if "://" in submit.removeprefix("file://")
        else ""
    )
    beside = f"; {stray} is there: move it into {places[-1]}" if stray is not None else ""
    return ConfigError(
        f"{_submit_directory_missing(submit)}SAGEMAKER_PROGRAM={name!r}: no such file in {where}{remote}{beside}; "
        "unset SAGEMAKER_PROGRAM and SAGEMAKER_SUBMIT_DIRECTORY to serve byoc's own model"
    )


def _submit_directory_missing(submit: str) -> str:
    """'SAGEMAKER_SUBMIT_DIRECTORY=<path>: <path> does not exist; ' when a local submit directory
    is not there (or is no directory), the cause of the program's absence; '' otherwise."""
    local = submit.removeprefix("file://")
    if not submit or "://" in local:
        return ""
    if not os.path.exists(local):
        said = "does not exist"
    elif not os.path.isdir(local):
        said = "is a file, not a directory"
    else:
        return ""
    return f"SAGEMAKER_SUBMIT_DIRECTORY={submit}: {local} {said}; "


@dataclass
class Context:
    """The optional trailing ``context`` argument of every hook.

    ``system_properties["model_dir"]`` as in the inference toolkit; the request's headers as
    sent; ``output_fields``, the Autopilot fields asked for (byoc's own model only); and
    ``response_headers``, which a hook may fill (e.g. X-Amzn-SageMaker-Custom-Attributes to
    return custom attributes to the caller); ``records``, how many records byoc's ``input_fn``
    decoded (None when the user's decoded the body).  At ``model_fn`` time only ``model_dir``
    is set.
    """

    model_dir: str
    request_id: str | None = None
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    output_fields: tuple[str, ...] = ()
    response_headers: dict[str, str] = field(default_factory=dict)
    records: int | None = None

    @property
    def system_properties(self) -> dict[str, Any]:
        return {"model_dir": self.model_dir}


def _exited(exc: SystemExit) -> str:
    """What user code did that raised ``exc``: caught, since a SystemExit would end the gunicorn
    worker, dropping its requests without an answer (and, in a multi-model endpoint, every model
    it holds) instead of failing the one hook, import or load."""
    return f"called sys.exit({exc.code!r})"


def _error_status(status: object) -> bool:
    """Whether ``status`` is an HTTP error status (an int from 400 to 599, not a bool)."""
    return isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599


def _status_error(exc: Exception) -> UserError | None:
    """A UserError for an exception that carries a 4xx ``status_code``; None for any other."""
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 499:
        return None
    message = getattr(exc, "message", None)
    message = message if isinstance(message, str) and message else str(exc) or type(exc).__name__
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or not code:
        try:
            code = http.HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
        except ValueError:
            code = "client_error"
    return UserError(message, code=code, status=status)


@dataclass(frozen=True)
class Hook:
    """One hook, user-defined or byoc's, called with or without the trailing context."""

    name: str
    fn: Callable[..., Any]
    takes_context: bool
    builtin: bool
    source: str

    def __call__(self, *args: Any, context: Context) -> Any:
        try:
            return self.fn(*args, context) if self.takes_context else self.fn(*args)
        except UserError as exc:
            if self.builtin or _error_status(exc.status):
                raise
            # its status is the answer's: a 200 carried the error body as a success (batch transform
            # wrote it as the record's answer), a 302 was a redirect, a str status an internal error
            log.error(
                "request %s: %s with status %r raised by %s of %s",
                context.request_id,
                type(exc).__name__,
                exc.status,
                self.name,
                self.source,
                exc_info=True,
            )
            raise HookError(
                f"{self.name} raised {type(exc).__name__} with status {exc.status!r} at {self._where(exc)}, "
                "which is no error status; give it status=400-499 for the client's mistakes (such as 415 "
                "for a content type the hook does not read), 500-599 for the endpoint's",
                code="hook_failed",
            ) from exc
        except MemoryError:  # the request's size, answered by the app (413)
            raise
        except SystemExit as exc:
            raise HookError(
                f"{self.name} of {self.source} {_exited(exc)}; a hook must return or raise",
                code="hook_exited",
            ) from None
        except Exception as exc:
            mapped = _status_error(exc)
            if mapped is not None:
                raise mapped from exc
            # A request-time hook of the user's answers a 500 naming it; byoc's own hooks are the
            # app's to log, and a failing model_fn stops serve (HooksHandler.load reports it).
            answers = not self.builtin and self.name != "model_fn"
            log.error(
                "request %s: %s: %s raised by %s of %s",
                context.request_id,
                type(exc).__name__,
                exc,
                self.name,
                self.source,
                exc_info=answers,
            )
            if not answers:
                raise
            raise HookError(
                f"{self.name} raised {type(exc).__name__} at {self._where(exc)}; the endpoint's log has "
                "its message and traceback under this request id (raise byoc.errors.UserError(message, "
                "status=400) from a hook to answer a bad request with a 4xx)",
                code="hook_failed",
            ) from exc

    def _where(self, exc: BaseException) -> str:
        """``file line N`` of the deepest frame in the user's code folder (the hook's own file,
        or a helper module beside it), relative to that folder: the client learns where, not what."""
        return user_script.deepest_line(_frames(exc), Path(self.source).parent) or Path(self.source).name

    @classmethod
    def bind(cls, module: ModuleType, name: str, source: str) -> Hook | None:
        """The module's hook ``name``, its arity checked now rather than at the first request."""
        fn = getattr(module, name, None)
        if fn is None:
            return None
        expected = HOOK_ARGUMENTS[name]
        usage = f"{name}({', '.join(expected)}[, context])"
        where = _defined_at(fn, source)
        if not callable(fn):
            raise ConfigError(f"{where}: {name} is {a_type(fn)}, not a function; define {usage}")
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            # called as a function, it returns an un-awaited coroutine: every request failed, blaming
            # whichever hook received it ("predict_fn returned a coroutine, not a list")
            raise ConfigError(
                f"{where}: {name} is defined with `async def`; byoc calls hooks as plain functions, one "
                f"request per worker thread, and never awaits them: define it with `def {usage}`"
            )
        try:
            parameters = list(inspect.signature(fn).parameters.values())
        except (TypeError, ValueError):  # a builtin or C function: trust it
            return cls(name, fn, False, False, source)
        positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required = [p for p in positional if p.default is p.empty]
        keyword_only = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.default is p.empty]
        if keyword_only:  # hooks are called with positional arguments alone: it would fail every call
            raise ConfigError(
                f"{where}: {name} requires the keyword-only argument{'s' if len(keyword_only) > 1 else ''} "
                f"{', '.join(keyword_only)} (after a `*`), which byoc never passes: hooks get positional "
                f"arguments only; define {usage}"
            )
        varargs = any(p.kind is p.VAR_POSITIONAL for p in parameters)
        n = len(expected)
        if len(required) == n + 1 or (
            len(required) <= n + 1 and "context" in [p.name for p in positional[n:]]
        ):
            return cls(name, fn, True, False, source)
        if len(required) <= n and (len(positional) >= n or varargs):
            return cls(name, fn, False, False, source)
        raise ConfigError(f"{where}: {name} takes {len(required)} required arguments; define {usage}")


def _defined_at(fn: Any, source: str) -> str:
    """``source``, with ``line N`` where ``fn`` is defined when that is in ``source``'s folder (a
    hook the program imports from a helper module names that module), for start-up messages."""
    code = getattr(inspect.unwrap(fn), "__code__", None) if callable(fn) else None
    if code is None:
        return source
    if os.path.abspath(code.co_filename) == os.path.abspath(source):
        return f"{source} line {code.co_firstlineno}"
    line = user_script.deepest_line([(code.co_filename, code.co_firstlineno)], Path(source).parent)
    return f"{source} ({line})" if line else source


def _text_type(content_type: str) -> bool:
    media_type = parse_options_header(content_type)[0].lower()
    return media_type in _TEXT_TYPES or media_type.startswith("text/")


def _as_body(data: bytes, content_type: str) -> str | bytes:
    """The body a user's input_fn or transform_fn gets: text decoded by the charset the Content-Type
    names (UTF-8 when it names none), a leading byte order mark read past as byoc's own decoders
    read past it; bytes for other media types.  A body declared ``charset=latin-1`` was decoded as
    UTF-8 whatever it said (a 400 "not UTF-8" for its first accented letter), and a UTF-8 byte
    order mark reached the hook, where ``json.loads`` refuses it (a 500 blaming the hook)."""
    if not _text_type(content_type):
        return data
    charset = parse_options_header(content_type)[1].get("charset", "").strip()
    codec = _charset_codec(charset)
    if codec is None:
        raise UnsupportedMediaType(
            f"Content-Type {content_type!r}: charset {charset!r} is not a character set the server can "
            "decode; send UTF-8 (charset=utf-8), or name the body's charset (such as iso-8859-1)"
        )
    if codec == "utf-8":
        refuse_wide_text(data, content_type)  # a UTF-16 body named as such, as byoc's own decoders name it
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:  # as byoc's own decoders say it (was bad_encoding, gzip's code)
        if codec == "utf-8":
            raise codecs.not_utf8(f"the {content_type} body", exc) from None
        raise DataError(
            f"the {content_type} body is not {charset} (byte {exc.start}: {exc.reason}); send text "
            "encoded as its Content-Type's charset says",
            code="undecodable_body",
        ) from None
    return text.removeprefix(UTF8_BOM_TEXT)


# Codecs Python finds by a charset's name that are no character set a body is written in.
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode_escape", "raw_unicode_escape", "undefined"})


def _charset_codec(charset: str) -> str | None:
    """Python's codec for a ``charset`` parameter: ``utf-8`` for none, UTF-8 or ASCII (UTF-8 reads
    ASCII, and answers in it); None for a name that is no text encoding Python has."""
    if not charset:
        return "utf-8"
    try:
        info = text_codecs.lookup(charset)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None  # base64, rot13 and the like transform bytes or text; they are no charsets
    return "utf-8" if info.name in ("utf-8", "ascii") else info.name


class _WholeBody:
    """An already-read body as a RequestBody (byoc's input_fn decodes it in one piece)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data

    def line_slices(self, whole_records: Any = None) -> Any:
        return iter([self.data])


class ByocHooks:
    """byoc's own hooks: what a missing user hook falls back to."""

    def __init__(self, settings: ServingSettings, schema: RequestSchema | None, default_accept: str | None):
        self.settings = settings
        self.schema = schema
        self.default_accept = default_accept

    @staticmethod
    def model_fn(model_dir: str) -> ByocModel:
        """The model as the server without hooks loads it, BYOC_COMPILED_INFERENCE included: switched
        off, a compiled file that is missing or fails its check is a WARNING, not a refusal."""
        compiled = settings_module.compiled_inference(os.environ)
        return ByocModel(prepare(artifact.load(Path(model_dir), compiled=compiled), compiled))

    def input_fn(self, request_body: bytes, content_type: str) -> pd.DataFrame:
        assert self.schema is not None, "checked at load"
        decoder = codecs.find_decoder(content_type)
        frames = [
            batch.frame()
            for batch in decode_batches(
                _WholeBody(request_body), decoder, self.schema, self.settings.max_payload_bytes
            )
        ]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    @staticmethod
    def predict_fn(input_data: Any, model: Any, context: Context) -> Any:
        if not isinstance(model, ByocModel):
            return model.predict(input_data)
        try:
            batch = model.batch(input_data, "input_fn returned")
        except NotRows as exc:  # the hook's result, not the client's record, is at fault
            raise HookError(str(exc), code="bad_input_data") from None
        return model.predictor.predict(batch, context.output_fields)

    def output_fn(self, prediction: Any, accept: str, context: Context) -> tuple[bytes, str]:
        users = not isinstance(prediction, Prediction)  # a user predict_fn's values
        if users:
            values = _one_per_record(prediction)
            prediction = Prediction((PREDICTED_LABEL,), {PREDICTED_LABEL: values}, len(values))
        if context.records is not None and prediction.n != context.records:
            raise HookError(
                f"predict_fn returned {prediction.n} predictions for the request's {context.records} "
                "records; byoc's output_fn writes one answer per record, in order, so return one "
                "prediction per row of input_data (other counts would join answers to the wrong records)",
                code="prediction_count_mismatch",
            )
        request_type = parse_options_header(context.content_type or DEFAULT_CONTENT_TYPE)[0].lower()
        encoder = codecs.choose_encoder(
            context.accept, request_type, self.default_accept, len(prediction.fields)
        )
        try:
            body = encoder.encode(prediction)
        except (TypeError, ValueError) as exc:
            if not users:
                raise
            raise HookError(
                f"predict_fn returned values byoc's output_fn cannot write as {encoder.media_type} "
                f"({exc}); return numbers, strings, booleans or None, one per record, or define output_fn",
                code="bad_prediction",
            ) from exc
        # custom attributes a user hook set are its answer to the caller: byoc's own note of the
        # fields written must not replace them (header names are case-insensitive)
        if CUSTOM_ATTRIBUTES_HEADER.lower() not in {name.lower() for name in context.response_headers}:
            context.response_headers[CUSTOM_ATTRIBUTES_HEADER] = "output=" + ",".join(prediction.fields)
        return body, encoder.media_type


# RFC 9110: a media type is token "/" token; a header name is a token, a value holds no line break
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(f"{_TOKEN}/{_TOKEN}")
_HEADER_NAME = re.compile(_TOKEN)
_BREAKS = re.compile(r"[\r\n\0]")


def _not_media_type(content_type: str) -> bool:
    """Whether ``content_type`` (a hook's, returned or set as a header) is no media type
    (``type/subtype[; parameters]``, on one line)."""
    media_type = parse_options_header(content_type)[0]
    return not _MEDIA_TYPE.fullmatch(media_type) or _BREAKS.search(content_type) is not None


def _check_headers(headers: Mapping[Any, Any], program: str) -> None:
    """The response headers the hooks set (``context.response_headers``), checked before they reach
    werkzeug and gunicorn, which refused a name that is no token or a value holding a line break
    with an anonymous internal error (a value with a line break would split the header)."""
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise HookError(
                f"the hooks of {program} set the response header {name!r}, which is not a header name "
                "(letters, digits and !#$%&'*+.^_`|~- only, e.g. 'X-Model-Version')",
                code="bad_output",
            )
        if _BREAKS.search(str(value)):
            raise HookError(
                f"the hooks of {program} set the response header {name!r} to {str(value)!r}, which holds "
                "a line break or NUL; a header value is one line",
                code="bad_output",
            )


def _check_length(headers: Mapping[Any, Any], size: int, program: str) -> None:
    """A Content-Length the hooks set (``context.response_headers``) must be the body's: the server
    sent theirs, so a smaller one cut the answer short under a 200 (``len()`` of a str counts
    characters, not bytes), a larger one left the client waiting for bytes that never came, and one
    that is no number was a 500 saying the server "failed to read this request"."""
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == "content-length" and str(value).strip() != str(size):
            raise HookError(
                f"the hooks of {program} set the response header {name!r} to {str(value)!r}, but the body is "
                f"{size} bytes; leave Content-Length out (the server sets it from the body)",
                code="bad_output",
            )


def _one_per_record(prediction: Any) -> np.ndarray | list:
    """A user predict_fn's answer as one value per record, each keeping its own type.

    ``np.asarray`` of a list made every value text when one was (``[0, "unknown"]`` answered
    ``"0"``, ``[True, "x"]`` answered ``"True"``), and a list of lists of different lengths was
    an anonymous internal error; a 1-D array keeps its dtype, numpy scalars in a list become
    Python ones (the JSON encoder writes those) and pandas' NA and NaT None.  A value no format
    has a form for (:mod:`byoc.serving.cells`: bytes, a complex number, a date) is refused here,
    for every Accept alike, naming its record."""
    if isinstance(prediction, (pd.Series, pd.Index)):
        prediction = prediction.to_numpy()
    if isinstance(prediction, np.ndarray) and prediction.ndim == 1 and prediction.dtype != object:
        if cells.array_kind(prediction.dtype) is cells.Kind.OTHER:
            raise _bad_prediction(f"an array of dtype {prediction.dtype}")
        return prediction
    if isinstance(prediction, (list, tuple)) or (isinstance(prediction, np.ndarray) and prediction.ndim == 1):
        values = prediction.tolist() if isinstance(prediction, np.ndarray) else list(prediction)
        kinds = cells.kinds(values)  # checked per type, at C speed: a batch has a million records
        if cells.Kind.NESTED not in kinds.values():
            other = next((t for t, k in kinds.items() if k not in cells.WRITABLE), None)
            if other is not None:
                index = next(i for i, v in enumerate(values) if type(v) is other)
                raise _bad_prediction(f"a value of type {other.__name__} for record {index + 1}")
            if any(
                issubclass(t, np.generic) or (k is cells.Kind.MISSING and t is not type(None))
                for t, k in kinds.items()
            ):
                values = [_plain(v) for v in values]
            return values
    raise _bad_prediction(_described(prediction))


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python one the encoders write, a missing value (pandas' NA or NaT
    among them, which no encoder writes) as None."""
    if cells.is_missing(value):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _bad_prediction(what: str) -> HookError:
    return HookError(
        f"predict_fn returned {what}; byoc's output_fn encodes one prediction per record (a 1-D "
        "array or list of numbers, strings, booleans, None or dicts): return that, or define output_fn",
        code="bad_prediction",
    )


def _described(prediction: Any) -> str:
    """What a predict_fn answer that is not one value per record is: its type and shape, or
    the first record that is itself a list when the rows are of different lengths."""
    what = a_type(prediction)
    if not isinstance(prediction, cells.NESTED):
        return f"{what}, not a list"
    try:
        return f"{what} of shape {np.shape(prediction)}"
    except ValueError:  # rows of different lengths, or values mixed with rows
        index, value = next((i, v) for i, v in enumerate(prediction) if isinstance(v, cells.NESTED))
        return f"{what} whose record {index + 1} is {a_type(value)} of {len(value)} values"


def _encoder_default(settings: ServingSettings) -> str | None:
    """The default Accept for byoc's output_fn; one byoc cannot write may be the user's output_fn's."""
    try:
        return default_accept(settings)
    except ConfigError:
        return None


def _frames(exc: BaseException) -> list[tuple[str, int]]:
    """(file, line) of each frame ``exc`` passed through, outermost first."""
    return [(frame.filename, frame.lineno or 0) for frame in traceback.extract_tb(exc.__traceback__)]


def _refuse_shadowing(program: Path, code_dirs: Collection[str]) -> None:
    """ModelLoadError when the program's module name is one the server itself uses (``numpy.py``,
    ``byoc.py``, ``json.py``): registered under that name it replaced the real module for the whole
    process, and the failure surfaced far away (model.joblib "cannot be loaded: Can't get attribute
    'ndarray' on <module 'numpy' from .../code/numpy.py>").  So does a module installed but not
    imported yet (``sklearn_extra.py``): the first ``import sklearn_extra``, the model's unpickling
    among them, would get the program.  ``code_dirs``: the users' folders, whose modules are theirs."""
    name = program.stem
    rename = f"rename the file (e.g. {name}_inference.py) and SAGEMAKER_PROGRAM with it"
    taken = sys.modules.get(name)
    if taken is not None or name in sys.stdlib_module_names:
        where = getattr(taken, "__file__", None) or "Python's standard library"
        raise ModelLoadError(
            f"{program}: its module name '{name}' is that of a module the server uses ({where}), which it "
            f"would replace; {rename}"
        )
    installed = _installed(name, {str(program.parent), *code_dirs})
    if installed is not None:
        raise ModelLoadError(
            f"{program}: its module name '{name}' is that of an installed module ({installed}), which it "
            f"would replace for the whole server (the first import of {name} would get this file); {rename}"
        )


def _installed(name: str, code_dirs: Collection[str]) -> str | None:
    """The file the server would import module ``name`` from, outside the users' code folders
    (None: none; a directory without ``__init__.py`` is no module of anyone's)."""
    if not name.isidentifier():
        return None
    theirs = {os.path.abspath(d) for d in code_dirs}
    paths = [p for p in sys.path if os.path.abspath(p or os.curdir) not in theirs]
    spec = importlib.machinery.PathFinder.find_spec(name, paths)
    return spec.origin if spec is not None and spec.has_location and spec.origin else None


def _inside(entry: str, folder: str) -> bool:
    """Whether the sys.path entry ``entry`` is ``folder`` or a folder inside it (absolute entries
    only: a relative one moves with the working directory)."""
    if not os.path.isabs(entry):
        return False
    entry, folder = os.path.normpath(entry), os.path.normpath(folder)
    return entry == folder or entry.startswith(os.path.join(folder, ""))


def _module_under(module: Any, roots: tuple[str, ...]) -> bool:
    """Whether a module was imported from one of the folders ``roots`` (``folder/`` prefixes):
    its file, or for a namespace package its every folder."""
    file = getattr(module, "__file__", None)
    if isinstance(file, str):
        return file.startswith(roots)
    folders = getattr(module, "__path__", None)
    try:
        listed = [str(f) for f in folders] if folders is not None else []
    except (TypeError, KeyError):  # not iterable; a namespace path whose parent package is gone
        return False
    return bool(listed) and all(os.path.join(f, "").startswith(roots) for f in listed)


class UserModules:
    """The programs one server imports, each with the modules of its own code directory.

    Python caches modules by name, so a second model's ``import helper`` would get the first
    model's helper.py: a multi-model endpoint would answer with the other model's code, silently,
    and which copy won would depend on the order each worker happened to load them.  So before a
    program is imported, the modules earlier programs loaded from their code directories leave
    sys.modules (those programs keep what they imported at their top level: their globals hold it),
    and while it is imported and its ``model_fn`` runs, no other program's folders are on sys.path.

    A program's folders are its code directory and what its import or ``model_fn`` put on
    sys.path (``sys.path.insert(0, <code>/lib)``), and any entry inside its code directory.  A
    load holds them until :meth:`release` (a multi-model worker's unload, eviction or reload of
    the model): then they leave sys.path, and the modules imported from them sys.modules, so no
    model loaded later finds an unloaded model's helpers, and a model loaded again from the same
    folder imports its files as they are now.

    One per server, passed to each load: the single-model app's one load, a multi-model worker's
    handler factory for all of its models.
    """

    def __init__(self) -> None:
        self._server_paths = frozenset(sys.path)  # the server's own, wherever they are
        self._users: dict[str, int] = {}  # code directory -> loads holding it
        self._paths: dict[str, list[str]] = {}  # code directory -> its sys.path entries
        self._lock = threading.RLock()  # a worker's loads, and releases from its other threads

    @property
    def code_dirs(self) -> frozenset[str]:
        """The code directories of the programs this server holds."""
        with self._lock:
            return frozenset(self._users)

    def _owner(self, entry: str) -> str | None:
        """The code directory whose program a sys.path entry is (None: the server's own)."""
        for code_dir, paths in self._paths.items():
            if entry in paths or (entry not in self._server_paths and _inside(entry, code_dir)):
                return code_dir
        return None

    def _roots(self, code_dirs: Collection[str]) -> tuple[str, ...]:
        """Where the modules of ``code_dirs``' programs come from, as ``folder/`` prefixes."""
        folders = {p for d in code_dirs for p in self._paths.get(d, [d]) if os.path.isabs(p)}
        return tuple(os.path.join(os.path.normpath(p), "") for p in folders)

    def _forget(self, code_dirs: Collection[str]) -> None:
        """Drop the modules imported from ``code_dirs``' folders from sys.modules."""
        roots = self._roots(code_dirs)
        if not roots:
            return
        for name, module in list(sys.modules.items()):
            if _module_under(module, roots):
                del sys.modules[name]

    def import_program(self, program: Path) -> ModuleType:
        """Import the user's program as a module named after the file, its folder first on
        sys.path and its imports its own; the server holds its folders until :meth:`release`."""
        with self.loading(program) as module:
            return module

    @contextlib.contextmanager
    def loading(self, program: Path) -> Iterator[ModuleType]:
        """:meth:`import_program`, the other programs' folders kept off sys.path until the block
        ends (``model_fn`` runs in it: its imports, an unpickled class's module among them, are the
        program's own too); released when the block raises, as a load that failed holds nothing."""
        code_dir = str(program.parent)
        with self._lock:
            self._forget(self._users)
            self._users[code_dir] = self._users.get(code_dir, 0) + 1
            self._paths.setdefault(code_dir, [code_dir])
            # While it is imported, no other program's folder is on sys.path: a module this program
            # imports but does not ship was found in a model loaded before (a 200 in that worker,
            # with that model's module, and a ModuleNotFoundError in the others).  They are put back
            # after it, behind its own, for the modules hooks import when they run.
            stripped = [entry for entry in sys.path if self._owner(entry) is not None]
            sys.path[:] = [entry for entry in sys.path if self._owner(entry) is None]
        try:
            _refuse_shadowing(program, self.code_dirs)
            before = set(sys.path)
            sys.path.insert(0, code_dir)
            try:
                yield self._execute(program)
            finally:
                with self._lock:
                    paths = self._paths.setdefault(code_dir, [code_dir])
                    paths += [e for e in dict.fromkeys(sys.path) if e not in before and e not in paths]
                    back = [e for e in stripped if self._owner(e) not in (None, code_dir)]
                    at = sys.path.index(code_dir) + 1 if code_dir in sys.path else 0
                    sys.path[at:at] = back
        except BaseException:
            self.release(program)
            raise

    def release(self, program: Path) -> None:
        """The load of ``program`` is over: when no other load holds its code directory, its
        folders leave sys.path and the modules imported from them sys.modules."""
        code_dir = str(program.parent)
        with self._lock:
            users = self._users.get(code_dir, 0) - 1
            if users > 0:
                self._users[code_dir] = users
                return
            if users < 0:  # released already
                return
            self._forget([code_dir])
            del self._users[code_dir]
            paths = self._paths.get(code_dir, [code_dir])
            theirs = [e for e in sys.path if e in paths or self._owner(e) == code_dir]
            self._paths.pop(code_dir, None)
            sys.path[:] = [e for e in sys.path if e not in theirs]
            for entry in {*paths, *theirs}:  # a folder loaded again is listed afresh
                sys.path_importer_cache.pop(entry, None)
        importlib.invalidate_caches()

    @staticmethod
    def _execute(program: Path) -> ModuleType:
        spec = importlib.util.spec_from_file_location(program.stem, program)
        if spec is None or spec.loader is None:
            raise ModelLoadError(f"{program}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[program.stem] = module
        try:
            spec.loader.exec_module(module)
        except SystemExit as exc:
            raise ModelLoadError(
                f"{program}: importing it failed: it {_exited(exc)} (argparse at module level? run a training "
                'script\'s main code only under `if __name__ == "__main__":`)'
            ) from None
        except Exception as exc:
            log.exception("importing %s failed", program)
            where = user_script.deepest_line(_frames(exc), program.parent)
            encoding = _not_utf8_source(exc, program)
            if encoding is not None:
                culprit, said, or_else = encoding
                if culprit != program:  # a module of its code folder
                    said = f"importing it failed: {culprit}: {said}{f' (at {where})' if where else ''}"
                raise ModelLoadError(f"{program}: {said}; {user_script.SAVE_AS_UTF8}{or_else}") from exc
            fix = (
                "; " + user_script.missing_module_fix(exc.name, str(program.parent))
                if isinstance(exc, ModuleNotFoundError) and exc.name
                else ""
            )
            raise ModelLoadError(
                f"{program}: importing it failed: {type(exc).__name__}: {exc}{f' (at {where})' if where else ''}{fix}"
            ) from exc
        return module


def _not_utf8_source(exc: BaseException, program: Path) -> tuple[Path, str, str] | None:
    """The file of the user's code an import failed on, what its text is and the fix beside saving
    it as UTF-8, when the failure is its encoding (None otherwise): Python's message counts from a
    string literal's start ("position 3") or names no byte, and never says to save the file as
    UTF-8 (:func:`byoc.user_script.program_text`, as training says it of a script)."""
    said = str(exc)
    if not isinstance(exc, (SyntaxError, ValueError)) or not user_script.about_encoding(said):
        return None  # not the encoding (a Latin-1 comment passes, so its file's syntax error stands)
    path = Path(exc.filename) if isinstance(exc, SyntaxError) and exc.filename else program
    text = user_script.program_text(path)
    return None if text is None else (path, *text)


def _schema_of(model: Any, model_dir: Path, source: str) -> RequestSchema | None:
    """The features byoc's input_fn checks requests against: the ByocModel's, else model.json's
    (None without one).  Asked only when byoc's input_fn is used: a model.json the user's own
    training script wrote (any other content) is none of byoc's business otherwise."""
    if isinstance(model, ByocModel):
        return model.predictor.schema
    path = model_dir / artifact.METADATA_FILE
    if not path.is_file():
        return None
    try:
        metadata = artifact.read_metadata(model_dir)
        features = [artifact.Feature.from_dict(f) for f in metadata["features"]]
    except (ModelLoadError, KeyError, TypeError, ValueError) as exc:
        reason = (
            exc
            if isinstance(exc, ModelLoadError)
            else f"{path}: no byoc feature list ({type(exc).__name__}: {exc})"
        )
        raise ConfigError(
            f"{source} has no input_fn, and byoc's needs the features of a model.json written by "
            f"byoc's train ({reason}); define input_fn(request_body, content_type)"
        ) from exc
    return RequestSchema(features, metadata.get("time_unit"), artifact.label_at(metadata))


class HooksHandler:
    """The user's hooks, with byoc's own standing in for the missing ones."""

    memory_bytes = 0

    def __init__(
        self,
        program: Path,
        model: Any,
        hooks: Mapping[str, Hook],
        settings: ServingSettings,
        model_dir: Path,
        release: Callable[[], None] | None = None,
    ) -> None:
        self.program = program
        self.model = model
        self.hooks = hooks
        self.model_dir = model_dir
        self._release = release
        self._byoc_predicts = "predict_fn" in hooks and hooks["predict_fn"].builtin
        self.batch = settings.batch
        self.default_accept = settings.default_accept or DEFAULT_CONTENT_TYPE
        self.supported: tuple[str, ...] | None = None
        self.fields: tuple[str, ...] = ()
        if isinstance(model, ByocModel):
            available = model.predictor.available_fields
            self.supported = supported_fields(settings.inference_supported, available)
            self.fields = default_fields(settings.inference_output, available, self.supported)

    @classmethod
    def load(
        cls, program: Path, model_dir: Path, settings: ServingSettings, modules: UserModules | None = None
    ) -> HooksHandler:
        """Install, import, check the hooks, and run model_fn: once, in the master.  ``modules``:
        the server's programs, when it loads more than one (a multi-model worker's)."""
        user_script.install_requirements(
            program.parent, user_script.MODEL_UPLOAD
        )  # the code folder is on sys.path: no package install
        modules = modules or UserModules()
        with modules.loading(program) as module:
            model, hooks = cls._bind(program, module, model_dir, settings)
        return cls(program, model, hooks, settings, model_dir, lambda: modules.release(program))

    @staticmethod
    def _bind(
        program: Path, module: ModuleType, model_dir: Path, settings: ServingSettings
    ) -> tuple[Any, dict[str, Hook]]:
        """What model_fn returned, and the program's hooks with byoc's standing in for the missing
        ones (run while the program's folders are the only users' ones on sys.path)."""
        source = str(program)
        user = {name: hook for name in HOOK_ARGUMENTS if (hook := Hook.bind(module, name, source))}
        if "transform_fn" in user and user.keys() & {"input_fn", "predict_fn", "output_fn"}:
            mixed = ", ".join(sorted(user.keys() & {"input_fn", "predict_fn", "output_fn"}))
            raise ConfigError(
                f"{source} defines transform_fn and {mixed}: transform_fn replaces input_fn, predict_fn "
                "and output_fn; keep either transform_fn or those"
            )
        log.info("inference hooks from %s: %s", source, ", ".join(user) or "none (byoc's own serve)")
        model_fn = user.get("model_fn") or Hook("model_fn", ByocHooks.model_fn, False, True, "byoc")
        try:
            model = model_fn(str(model_dir), context=Context(str(model_dir)))
        except ModelLoadError:
            raise
        except Exception as exc:
            log.exception("model_fn of %s failed", source)
            raise ModelLoadError(f"{source}: model_fn failed: {type(exc).__name__}: {exc}") from exc
        hooks = dict(user)
        if "transform_fn" not in user:
            schema = None if "input_fn" in user else _schema_of(model, model_dir, source)
            byoc_hooks = ByocHooks(settings, schema, _encoder_default(settings))
            if "input_fn" not in user and schema is None:
                raise ConfigError(
                    f"{source} has no input_fn and {model_dir / artifact.METADATA_FILE} is missing, so "
                    "byoc cannot check requests against the model's features; define "
                    "input_fn(request_body, content_type)"
                )
            if "predict_fn" not in user and not hasattr(model, "predict"):
                raise ConfigError(
                    f"{source}: model_fn returned {a_type(model)}, which has no predict(); "
                    "define predict_fn(input_data, model)"
                )
            hooks.setdefault("input_fn", Hook("input_fn", byoc_hooks.input_fn, False, True, "byoc"))
            hooks.setdefault("predict_fn", Hook("predict_fn", byoc_hooks.predict_fn, True, True, "byoc"))
            hooks.setdefault("output_fn", Hook("output_fn", byoc_hooks.output_fn, True, True, "byoc"))
        return model, hooks

    def invoke(self, request: InferenceRequest) -> InferenceResponse:
        try:
            return self._invoke(request)
        except DataError as exc:  # byoc's input_fn, or ByocModel's checks, naming a row of the request
            if self.batch:
                in_mini_batch(exc)
            raise

    def _invoke(self, request: InferenceRequest) -> InferenceResponse:
        content_type = request.content_type or DEFAULT_CONTENT_TYPE
        accept = request.accept if request.accept and request.accept.strip() != "*/*" else self.default_accept
        fields = (
            request_fields(
                request.custom_attributes,
                default=self.fields,
                available=self.model.predictor.available_fields,
                supported=self.supported,
            )
            if isinstance(self.model, ByocModel) and self._byoc_predicts
            else ()
        )
        context = Context(
            str(self.model_dir),
            request.request_id,
            request.content_type,
            request.accept,
            request.custom_attributes,
            fields,
        )
        data = request.body.read()
        transform = self.hooks.get("transform_fn")
        if transform is not None:
            result = transform(
                self.model, _as_body(data, content_type), content_type, accept, context=context
            )
        else:
            input_fn = self.hooks["input_fn"]
            body = data if input_fn.builtin else _as_body(data, content_type)
            decoded = input_fn(body, content_type, context=context)
            if input_fn.builtin:
                context.records = len(decoded)
            prediction = self.hooks["predict_fn"](decoded, self.model, context=context)
            result = self.hooks["output_fn"](prediction, accept, context=context)
        return self._response(result, accept, context, "transform_fn" if transform else "output_fn")

    def _response(self, result: Any, accept: str, context: Context, hook: str) -> InferenceResponse:
        """The HTTP answer from what ``hook`` returned; anything but a body (and a media type)
        is the hook's fault, named as such (a 500 whose body says what it returned)."""
        body, content_type = result if isinstance(result, tuple) and len(result) == 2 else (result, None)
        usage = "return bytes or str, or a (body, content_type) pair"
        chosen = content_type is None or (isinstance(content_type, str) and not content_type.strip())
        if chosen:
            # the most preferred entry, as werkzeug weighs them: its q is no media type parameter
            best = parse_accept_header(accept, MIMEAccept).best
            content_type = best if best and "*" not in best else self.default_accept
        elif not isinstance(content_type, str):
            raise HookError(
                f"{hook} of {self.program.name} returned the content type {content_type!r} "
                f"({type(content_type).__name__}, not str); {usage}",
                code="bad_output",
            )
        elif _not_media_type(content_type):
            raise HookError(
                f"{hook} of {self.program.name} returned the content type {content_type!r}, which is "
                "not a media type; return one such as 'application/json' or 'text/csv; charset=utf-8'",
                code="bad_output",
            )
        _check_headers(context.response_headers, self.program.name)
        # a Content-Type the hooks set is the one sent (it replaces the returned type): checked alike,
        # and a str body is written in its charset
        for name, value in context.response_headers.items():
            if name.lower() != "content-type":
                continue
            if not isinstance(value, str) or _not_media_type(value):
                raise HookError(
                    f"the hooks of {self.program.name} set the response header {name!r} to {value!r}, which "
                    "is not a media type; set one such as 'application/json' or 'text/csv; charset=utf-8', "
                    f"or return it with the body from {hook}",
                    code="bad_output",
                )
            content_type, chosen = value, False
        if isinstance(body, str):
            body = self._encoded(body, content_type, hook, chosen)
        elif isinstance(body, (bytearray, memoryview)):
            body = bytes(body)
        elif not isinstance(body, bytes):
            shape = f" of {len(result)} items" if isinstance(result, tuple) else ""
            raise HookError(
                f"{hook} of {self.program.name} returned {a_type(body)}{shape}; {usage} "
                "(encode it yourself, e.g. json.dumps(...))",
                code="bad_output",
            )
        _check_length(context.response_headers, len(body), self.program.name)
        return InferenceResponse(body, content_type, context.response_headers)

    def _encoded(self, text: str, content_type: str, hook: str, chosen: bool) -> bytes:
        """``text`` in the charset ``content_type`` names (UTF-8 when it names none), so the body is
        what its header says: a str was written as UTF-8 under ``charset=latin-1`` (``café`` read
        back as ``cafÃ©``).  ``chosen``: the type is the Accept's, not the hook's, so a charset the
        answer cannot be written in is the client's 406."""
        charset = parse_options_header(content_type)[1].get("charset", "").strip()
        codec = _charset_codec(charset)
        if codec is None:
            said = f"the charset {charset!r}, which is no character set the server can encode"
            if chosen:
                raise NotAcceptable(
                    f"Accept asks for {said}; ask for charset=utf-8, or leave the charset out"
                )
            raise HookError(
                f"{hook} of {self.program.name} returned text with {said}; name one such as utf-8",
                code="bad_output",
            )
        try:
            return text.encode(codec)
        except UnicodeEncodeError as exc:
            what = f"{exc.reason} at character {exc.start}: {text[exc.start : exc.end]!r}"
            if chosen and codec != "utf-8":
                raise NotAcceptable(
                    f"the answer holds text that {charset} cannot encode ({what}), the charset Accept asks "
                    "for; ask for charset=utf-8, or leave the charset out"
                ) from None
            if codec != "utf-8":
                raise HookError(
                    f"{hook} of {self.program.name} returned text that {charset}, the charset of its "
                    f"content type, cannot encode ({what}); return bytes, or name a charset that holds "
                    "the text, such as utf-8",
                    code="bad_output",
                ) from None
            raise HookError(
                f"{hook} of {self.program.name} returned text that UTF-8 cannot encode ({what}, e.g. from "
                "decoding with errors='surrogateescape'); return bytes, or text without lone surrogates",
                code="bad_output",
            ) from None

    def warm_up(self) -> None:
        """Nothing to warm: user code is not called without a request."""

    def close(self) -> None:
        """Release the program's folders and modules (:meth:`UserModules.release`), once."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def describe(self) -> str:
        hooks = ", ".join(name for name, hook in self.hooks.items() if not hook.builtin)
        return f"{type(self.model).__name__} model from {self.model_dir} with hooks {hooks} of {self.program}"
