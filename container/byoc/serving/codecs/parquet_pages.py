"""The sizes a Parquet page header declares, read from the body's bytes (Thrift compact protocol).

Why by hand: pyarrow sizes and inflates each page by its own header, whatever the footer says, and
exposes no page headers; this reads only those headers' two size fields and skips every other
field by its type, bounded by the body's end and a nesting depth (a crafted header cannot loop)."""

from __future__ import annotations


def page_header(body: bytes, at: int) -> tuple[int, int, int]:
    """A Parquet page header (Thrift compact protocol) at ``at``: the page's uncompressed size, its
    compressed size, and where its data starts (IndexError or ValueError: not one)."""
    fields, end = _thrift_struct(body, at, 0, want=(2, 3))
    inflated, stored = fields.get(2), fields.get(3)
    if inflated is None or stored is None or inflated < 0 or stored < 0:
        raise ValueError("no page sizes")
    return inflated, stored, end


_THRIFT_DEPTH = 32  # structs within structs: a page header nests two or three


def _varint(body: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = body[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7
        if shift > 63:
            raise ValueError("a varint longer than 10 bytes")


def _thrift_value(body: bytes, at: int, kind: int, depth: int, element: bool = False) -> int:
    """Where the compact-protocol value of type ``kind`` at ``at`` ends (``element``: a list's,
    set's or map's, where a boolean takes a byte; a field's is held in its header)."""
    if kind in (1, 2):
        return at + 1 if element else at
    if kind == 3:  # byte
        return at + 1
    if kind in (4, 5, 6):  # i16, i32, i64: varints
        return _varint(body, at)[1]
    if kind == 7:  # double
        return at + 8
    if kind == 8:  # binary
        size, at = _varint(body, at)
        return at + size
    if kind in (9, 10):  # list, set
        head = body[at]
        size, at = head >> 4, at + 1
        if size == 15:
            size, at = _varint(body, at)
        item = head & 0x0F
        for _ in range(size):
            at = _thrift_value(body, at, item, depth, element=True)
            if at > len(body):
                raise IndexError("past the body")
        return at
    if kind == 11:  # map
        size, at = _varint(body, at)
        if size:
            types, at = body[at], at + 1
            for _ in range(size):
                at = _thrift_value(body, at, types >> 4, depth, element=True)
                at = _thrift_value(body, at, types & 0x0F, depth, element=True)
                if at > len(body):
                    raise IndexError("past the body")
        return at
    if kind == 12:
        return _thrift_struct(body, at, depth + 1)[1]
    raise ValueError(f"Thrift type {kind}")


def _thrift_struct(
    body: bytes, at: int, depth: int, want: tuple[int, ...] = ()
) -> tuple[dict[int, int], int]:
    """The integer fields ``want`` of the compact-protocol struct at ``at``, and where it ends."""
    if depth > _THRIFT_DEPTH:
        raise ValueError("structs nested too deep")
    fields: dict[int, int] = {}
    field = 0
    while True:
        head = body[at]
        at += 1
        if head == 0:  # stop
            return fields, at
        kind, delta = head & 0x0F, head >> 4
        if delta:
            field += delta
        else:
            raw, at = _varint(body, at)
            field = (raw >> 1) ^ -(raw & 1)
        if field in want and kind in (4, 5, 6):
            raw, at = _varint(body, at)
            fields[field] = (raw >> 1) ^ -(raw & 1)
        else:
            at = _thrift_value(body, at, kind, depth)
        if at > len(body):
            raise IndexError("past the body")
