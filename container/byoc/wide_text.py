"""Text in UTF-16 or UTF-32, told by its first bytes.

byoc reads text as UTF-8: training's files (byoc.data.sniff) and serving's request bodies
(byoc.serving.builtin).  Windows tools often write UTF-16 with a byte order mark; decoded as
UTF-8 it fails at byte 0, or (without a mark) decodes into values full of NULs.  Both sides name
the encoding by this one rule, so the fix (save or send UTF-8) is what the message says.
"""

from __future__ import annotations

_MARKS = (
    (b"\xff\xfe\x00\x00", "UTF-32 text"),  # before UTF-16's: it starts with the same two bytes
    (b"\xff\xfe", "UTF-16 text"),
    (b"\xfe\xff", "UTF-16 text"),
)
_PROBE = 64  # bytes of a text without a mark whose every other byte is NUL: UTF-16


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


def has_mark(head: bytes) -> bool:
    """Whether ``head`` starts with a UTF-16 or UTF-32 byte order mark."""
    return any(head.startswith(mark) for mark, _ in _MARKS)
