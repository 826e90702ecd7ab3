"""The reader registry: canonical media type -> function reading a channel's sources.

A reader takes the channel's non-empty sources and returns a :class:`~byoc.data.tabular.Read`
(frame, has_header, layout); every error it raises is a DataError naming the file (and the line
or column when known).  ``typed=False`` leaves text as written, for the train channel's schema
to type (:func:`byoc.data.tabular.to_frame`); ``label`` (the target hyperparameter) leaves the label column as written, for
training to type as labels; ``like`` is the train channel's layout, for an
evaluation channel to follow (libsvm: absent indices are zeros, so its width is train's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Protocol

from byoc.data import csv_reader, jsonlines_reader, libsvm_reader, media, parquet_reader
from byoc.data.sources import Source
from byoc.data.tabular import Read, SparseLayout


class Reader(Protocol):
    def __call__(
        self,
        sources: Sequence[Source],
        *,
        channel: str,
        header: bool | None,
        params: Mapping[str, str],
        typed: bool = True,
        label: int | str | None = None,
        like: SparseLayout | None = None,
    ) -> Read: ...


READERS: Mapping[str, Reader] = MappingProxyType(
    {
        media.CSV: csv_reader.read,
        media.PARQUET: parquet_reader.read,
        media.JSONLINES: jsonlines_reader.read,
        media.LIBSVM: libsvm_reader.read,
    }
)


def supported_content_types() -> tuple[str, ...]:
    return tuple(READERS)
