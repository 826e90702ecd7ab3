"""Log lines that the text they quote cannot split: one formatter for every entry point's log.

SageMaker reads a training job's metrics off each line of its stdout and stderr, and users read
the log a line at a time.  A column name, class label, category, file name or hyperparameter value
holding a line break (or a carriage return, or a Unicode line separator) wrote a line of its own:
``features (2): x\\nvalidation:accuracy=0.999:numeric`` put ``validation:accuracy=0.999`` at the
start of a line, after the job's real metric lines, so a tuning job took it as the last value.
:class:`Formatter` writes every control character of a message (C0 but the tab, DEL, C1, Unicode's
line and paragraph separators, bidi controls, which reorder what a terminal shows) as a Python
escape (``\\n``, ``\\x1b``, ``\\u2028``), so one record stays one line; a traceback keeps its own
lines, each escaped the same way.  byoc's metric definitions are unanchored (a regex matches
anywhere in a line), so the ``=`` of ``<channel>:<name>=<number>`` in a record is written ``\\x3d``
too: a column named ``validation:accuracy=0.999`` needs no line break to be read as a metric.
Secret hyperparameters' values are hidden by :func:`redacted`.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from logging import _SysExcInfoType

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# C0 (tab kept: it splits no line), DEL, C1, ALM, LRM/RLM, line/paragraph separators, LRE..RLO, LRI..PDI
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
# what a metric definition reads anywhere in a line (byoc's are unanchored): <channel>:<name>=<number>
_METRIC = re.compile(r"((?:train|validation|test):\w+)=(?=[-+]?\.?[0-9])")
# a hyperparameter named like a secret (script mode passes every one on the command line it logs)
_SECRET = re.compile(r"passw|pwd|secret|token|credential|api[-_]?key|access[-_]?key|private[-_]?key", re.I)
REDACTED = "***"


def escape(text: str) -> str:
    """``text`` with its control characters written as escapes, on one line, and the ``=`` of
    anything a metric definition would read as a data point (``validation:accuracy=0.99``) as ``\\x3d``:
    the job's metric lines are printed, never logged, so a logged one was quoted from the input."""
    return _METRIC.sub(r"\1\\x3d", _CONTROL.sub(_escaped, text))


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return {"\n": "\\n", "\r": "\\r"}.get(char) or (
        f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"
    )


class Formatter(logging.Formatter):
    """:data:`FORMAT`, each record's message and each line of its traceback :func:`escape`d."""

    def __init__(self) -> None:
        super().__init__(FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: _SysExcInfoType) -> str:
        return "\n".join(map(escape, super().formatException(ei).split("\n")))

    def formatStack(self, stack_info: str) -> str:
        return "\n".join(map(escape, stack_info.split("\n")))


def handler(stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stdout by default) writing records with :class:`Formatter`."""
    out = logging.StreamHandler(sys.stdout if stream is None else stream)
    out.setFormatter(Formatter())
    return out


def configure(level: int, stream: TextIO | None = None) -> None:
    """The root logger writes to ``stream`` (stdout) alone, at ``level``, through :class:`Formatter`."""
    root = logging.getLogger()
    root.handlers[:] = [handler(stream)]
    root.setLevel(level)


def secret(name: str) -> bool:
    """Whether a hyperparameter's name says its value is a secret (``db_password``, ``api_token``)."""
    return _SECRET.search(name) is not None


def redacted(argv: Sequence[str]) -> list[str]:
    """A command line whose ``--<name> <value>`` pairs show ``***`` for each secret name's value."""
    out = list(argv)
    for i in range(1, len(out)):
        if out[i - 1].startswith("--") and secret(out[i - 1]):
            out[i] = REDACTED
    return out
