"""Pipe mode's Parquet stream, cut back into the S3 objects SageMaker wrote one after another.

Without RecordWrapperType RecordIO, a Pipe channel's FIFO is its objects back to back; read as
one Parquet file, only the last footer is seen, so every object but one was lost (or the offsets
of that footer, which count from its own object's start, made the stream look corrupt).  A
Parquet file is ``PAR1 <column chunks> <footer> <footer length> PAR1``: an object ends at the
first ``PAR1`` where the bytes from the object's start parse as a footer whose column chunks all
lie within them.  pyarrow parses
each candidate footer, so the format's rules stay pyarrow's.
"""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.parquet as pq

from byoc.arrowerrors import blames_input
from byoc.data.parquet_reader import MAGIC
from byoc.data.sources import Source
from byoc.errors import DataError

log = logging.getLogger(__name__)

SMALLEST = 12  # the leading magic, a footer length and the trailing magic


def split(channel: str, stream: Source) -> list[Source]:
    """The Parquet objects of ``stream`` (a Pipe channel's FIFO), each a source of its own.

    A stream that is one object is returned as it is; one that does not start like Parquet is
    left for the reader to name.  A later part that is not Parquet is a DataError naming its
    byte offset, Pipe mode and the fixes."""
    data = stream.read_all()
    if data[:4] != MAGIC:
        return [stream]
    buffer = pa.py_buffer(data)
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < len(data):
        end = _object_end(data, buffer, start)
        if end is None:
            if not bounds:
                return [stream]  # not even one object: the reader says what is wrong with it
            raise _not_parquet(channel, stream.name, start, len(bounds))
        bounds.append((start, end))
        start = end
    if len(bounds) == 1:
        return [stream]
    log.info("%s: %d Parquet objects, read one by one", stream.name, len(bounds))
    return [
        Source(name=f"{stream.name} (Parquet object {n}, bytes {s}-{e})", data=data[s:e])
        for n, (s, e) in enumerate(bounds, start=1)
    ]


def _object_end(data: bytes, buffer: pa.Buffer, start: int) -> int | None:
    """The end of the Parquet object starting at ``start``: the first candidate ``PAR1`` whose
    footer pyarrow reads and whose column chunks lie between the leading magic and the footer."""
    if data[start : start + 4] != MAGIC:
        return None
    at = data.find(MAGIC, start + SMALLEST - 4)
    while at != -1:
        end = at + 4
        if _is_object(data, buffer, start, end):
            return end
        at = data.find(MAGIC, at + 1)
    return None


def _is_object(data: bytes, buffer: pa.Buffer, start: int, end: int) -> bool:
    footer = int.from_bytes(data[end - 8 : end - 4], "little")
    footer_start = end - start - 8 - footer
    if footer <= 0 or footer_start < 4:
        return False
    try:
        metadata = pq.ParquetFile(pa.BufferReader(buffer.slice(start, end - start))).metadata
        for i in range(metadata.num_row_groups):
            group = metadata.row_group(i)
            for j in range(group.num_columns):
                chunk = group.column(j)
                offsets = [chunk.data_page_offset, chunk.dictionary_page_offset or 0]
                first = min((o for o in offsets if o > 0), default=0)  # 0: no page written there
                if first < 4 or first + chunk.total_compressed_size > footer_start:
                    return False
    except (pa.ArrowException, OSError, ValueError) as exc:
        if not blames_input(exc):  # not a sign of a cut file
            raise
        return False
    return True


def _not_parquet(channel: str, name: str, offset: int, objects: int) -> DataError:
    return DataError(
        f"{name}, byte {offset}: not a whole Parquet file, after {objects} that are; channel "
        f"'{channel}' is in Pipe mode, where SageMaker streams every object of the S3 prefix back "
        "to back: keep only whole Parquet files under the prefix (or use File or FastFile mode, or "
        "RecordWrapperType RecordIO, where each object is read on its own)",
        code="bad_parquet",
    )
