"""One small error hierarchy shared by training and serving.

A ``UserError`` is the caller's to fix (bad data, bad hyperparameter, bad request): its
message leads with the culprit and the fix, and it becomes the first line of
``/opt/ml/output/failure`` or a 4xx JSON body.  Anything else is a fault of ours.
"""

from __future__ import annotations


def a_type(value: object) -> str:
    """``value``'s type named with its article ("a list", "an int", "an ndarray", "a uint8"), for
    messages that say what the caller gave."""
    name = type(value).__name__
    vowel = name[:1].lower() in "aeio" or name.startswith("nd")  # "an ndarray": en-dee-array
    return f"{'an' if vowel else 'a'} {name}"


def not_utf8_at(data: bytes, start: int, *, offset: int = 0, line: int = 1) -> str:
    """Where a user's file (a config file, a program, a channel's data) stops being UTF-8, for its
    message: the byte, its offset and its line, so an editor finds it.  ``data`` is the file from
    byte ``offset`` on, which is on line ``line`` (a reader going line by line passes one line)."""
    line += data.count(b"\n", 0, start)
    return f"not UTF-8 text (byte 0x{data[start]:02x} at offset {offset + start}, line {line})"


class ByocError(Exception):
    """Base of every error byoc raises on purpose."""


class UserError(ByocError):
    """The input is wrong; the message names the culprit and how to fix it.

    ``code`` is a short stable identifier (``bad_hyperparameter``, ``ragged_csv``...) that
    clients and tests can match on; ``status`` is the HTTP status when it surfaces in the
    server (400 unless a more precise one applies).
    """

    code = "bad_input"
    status = 400

    def __init__(
        self, message: str, *, code: str | None = None, status: int | None = None, details: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.details = details


class ConfigError(UserError):
    """The job's configuration (config files, hyperparameters, channels) is invalid."""

    code = "bad_config"


class HyperparameterError(ConfigError):
    """A hyperparameter is unknown, of the wrong type or out of range."""

    code = "bad_hyperparameter"


class DataError(UserError):
    """Channel data or a request body cannot be read as declared."""

    code = "bad_data"


class SchemaError(DataError):
    """Data does not match the schema the model was trained on."""

    code = "schema_mismatch"


class ResourceError(UserError):
    """The job's instance is too small for what it was asked to do (memory ran out).

    Neither the data's fault nor a bug of byoc: the user fixes it with a larger instance type,
    less data or a smaller model, so it is a user error (exit 1) with a code of its own."""

    code = "out_of_memory"


class UnsupportedMediaType(UserError):
    """Content-Type that no decoder handles."""

    code = "unsupported_media_type"
    status = 415


class NotAcceptable(UserError):
    """Accept header that no encoder can satisfy."""

    code = "not_acceptable"
    status = 406


class PayloadTooLarge(UserError):
    """Request body above the configured limit."""

    code = "payload_too_large"
    status = 413


class HookError(UserError):
    """A user's inference hook gave byoc what it cannot use (predict_fn's answer for the wrong
    number of records, input_fn's result of a kind byoc's predict_fn does not take).  The
    endpoint's own code is at fault, not the request: a 500, logged with the request id, whose
    body names the hook and what it returned (never a traceback)."""

    code = "hook_error"
    status = 500


class ModelLoadError(ByocError):
    """The model directory is missing, incomplete or fails its checksum."""


class JobStopped(ByocError):
    """SIGTERM arrived (StopTrainingJob or spot interruption)."""
