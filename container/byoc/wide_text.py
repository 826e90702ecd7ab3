"""Text in UTF-16 or UTF-32, told by its first bytes; UTF-8's byte order mark as text.

byoc reads text as UTF-8: training's files (byoc.data.sniff) and serving's request bodies
(byoc.serving.builtin).  Windows tools often write UTF-16 with a byte order mark; decoded as
UTF-8 it fails at byte 0, or (without a mark) decodes into values full of NULs.  Both sides name
the encoding by this one rule, so the fix (save or send UTF-8) is what the message says.

Every byte order mark is the standard library's (``codecs.BOM_*``): UTF-8's, which Excel's
'CSV UTF-8' starts with and byoc reads past, is :data:`codecs.BOM_UTF8` in bytes and
:data:`UTF8_BOM_TEXT` once decoded, spelled nowhere else.
"""

from __future__ import annotations

from codecs import BOM_UTF8, BOM_UTF16_BE, BOM_UTF16_LE, BOM_UTF32_LE
from typing import Any

UTF8_BOM_TEXT = BOM_UTF8.decode("utf-8")
"""UTF-8's byte order mark in decoded text (U+FEFF), read past at the start of a file or body."""

NUL = b"\x00"
"""The byte no text holds.  A CSV file whose first bytes hold it is :data:`NOT_CSV_TEXT`
(byoc.data.csv_reader: binary content, not CSV); past them, and in every other format, a text
value holding it is refused by :func:`nul_cell` (see :func:`first_nul`)."""
NUL_TEXT = NUL.decode("ascii")
NUL_ESCAPE = b"\\u0000"  # NUL as JSON writes it, the one way a JSON or JSON Lines value holds it
NOT_CSV_TEXT = "binary content where text/csv was expected"


def nul_cell(where: str) -> str:
    """The one refusal of a text value holding NUL (``where``: its file or request row, and column),
    in training's files and the endpoint's requests, every format alike: no text holds the
    character (it is corrupt or binary data) and CSV cannot carry it, so a model trained on it
    (from JSON Lines ``"\\u0000"``, or a CSV file past its first bytes) met 400s for the value."""
    return (
        f"{where}: holds a NUL character (\\x00), which no text holds (corrupt or binary data; CSV cannot "
        "carry it): training and the endpoint refuse it in every format; remove it from the value"
    )


def may_hold_nul(body: bytes) -> bool:
    """Whether a text body (CSV, JSON, JSON Lines) may hold a value with NUL: the byte, or JSON's
    escape for it; a body without either is passed by this alone."""
    return NUL in body or NUL_ESCAPE in body


def first_nul(values: Any) -> int | None:
    """The position of the first text value in ``values`` holding NUL, None when none does:
    ``values`` an Arrow array (training's columns, a request decoded through Arrow), a pandas
    array of Arrow text, or a sequence of Python values (numbers and missing ones pass)."""
    import pyarrow as pa  # lazily: the training shell imports this module before its stop watcher
    import pyarrow.compute as pc

    if hasattr(values, "__arrow_array__") and not isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pa.array(values)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            return None
        hits = pc.match_substring(values, NUL_TEXT)
        if not pc.any(hits).as_py():
            return None
        return int(pc.index(hits, True).as_py())
    for position, value in enumerate(values):
        if type(value) is str and NUL_TEXT in value:
            return position
    return None


_MARKS = (
    (BOM_UTF32_LE, "UTF-32 text"),  # before UTF-16's: it starts with the same two bytes
    (BOM_UTF16_LE, "UTF-16 text"),
    (BOM_UTF16_BE, "UTF-16 text"),
)
_PROBE = 64  # bytes of a text without a mark whose every other byte is NUL: UTF-16
_STARTS = frozenset(mark[:2] for mark, _ in _MARKS)


def wide_encoding(head: bytes) -> str | None:
    """What ``head``, the first bytes of a text, is when it is UTF-16 or UTF-32 ("UTF-16 text",
    with how that was told when it has no byte order mark); None otherwise."""
    for mark, what in _MARKS:
        if head.startswith(mark):
            return what
    probe = head[:_PROBE]
    if len(probe) >= 4 and (set(probe[0::2]) == {0} or set(probe[1::2]) == {0}):
        return "UTF-16 text (every other byte is NUL)"
    return None


def may_be_wide(head: bytes) -> bool:
    """Whether :func:`wide_encoding` could name ``head``, told by its first two bytes (a mark's
    start, or a NUL): the usual text is passed by this alone, so a single row pays no more."""
    return head[:2] in _STARTS or b"\x00" in head[:2]


def has_mark(head: bytes) -> bool:
    """Whether ``head`` starts with a UTF-16 or UTF-32 byte order mark."""
    return any(head.startswith(mark) for mark, _ in _MARKS)
