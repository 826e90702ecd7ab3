"""Gzip as byoc reads it, for training's Pipe streams (byoc.data.sources) and serving's gzip request
bodies (byoc.serving.body) alike: members concatenated, zero padding between them read past (as
Python's gzip module reads both), anything else after a member refused.

A module of its own, importing only the standard library, so serving imports it without byoc.data's
readers.
"""

from __future__ import annotations

import zlib

GZIP_MAGIC = b"\x1f\x8b"
"""The first two bytes of every gzip member: how byoc tells gzip from the data itself."""


class TrailingBytes(Exception):
    """Bytes after a gzip member that start neither another member nor zero padding."""


class GzipMembers:
    """Inflates concatenated gzip members incrementally: the caller puts compressed bytes in
    :attr:`pending` when it is empty and calls :meth:`inflate`.  Raises ``zlib.error`` for data that
    is not gzip (or corrupt) and :class:`TrailingBytes`, :attr:`pending` then starting with them,
    for bytes after a member that start neither another member nor zero padding."""

    __slots__ = ("inflater", "member_open", "members", "pending")

    def __init__(self) -> None:
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self.pending = b""  # compressed bytes not yet fed (the decoder's unconsumed tail)
        self.member_open = False  # bytes of a gzip member were fed and its end is not reached
        self.members = 0  # gzip members read to their end

    def inflate(self, size: int) -> bytes:
        """Up to ``size`` bytes inflated from :attr:`pending`; b"" once it is used up (feed more)."""
        while self.pending:
            if not self.member_open and self.members:
                self.pending = self.pending.lstrip(b"\0")  # zero padding after a member
                if not self.pending:
                    break
                if not GZIP_MAGIC.startswith(self.pending[: len(GZIP_MAGIC)]):
                    raise TrailingBytes  # not another member (nor the start of one, cut by the block's end)
            self.member_open = True
            out = self.inflater.decompress(self.pending, size)
            self.pending = self.inflater.unconsumed_tail
            if self.inflater.eof:  # a member ended: another may follow (concatenated gzip)
                # what follows its end is unused_data alone: unconsumed_tail may hold the same bytes
                # again (a read that stopped at ``size`` before the end leaves it set), so the next
                # member's rows were read twice
                self.pending = self.inflater.unused_data
                self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self.member_open = False
                self.members += 1
            if out:
                return out
        return b""
