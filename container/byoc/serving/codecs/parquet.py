"""application/x-parquet: a table whose column names are the model's features (any order).

A Parquet body is decoded in slices of rows (:func:`batches`), each converted and predicted
before the next is read: the whole table as a DataFrame of object columns took about 90 times
the body in memory (a 6 MB body, 620 MB; 20 MB, 1.8 GB).  Parquet compresses without bound (a
column of one repeated value is a few bytes for any number of rows: a 152 KB body of 10 million
rows took 4.5 GB and 140 s; one 1 MB text repeated, 1.4 KB, 2.2 GB), so a body may decode to no
more values than the payload limit has bytes (a value takes at least a byte in any text body),
and a slice to no more text than the limit: past either it is a 413, before the rows are made.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyarrow.types as pat

from byoc import arrow_tables, values
from byoc.arrowerrors import refused_as
from byoc.errors import DataError, PayloadTooLarge
from byoc.serving.codecs import parquet_pages
from byoc.serving.codecs.base import Decoder
from byoc.serving.schema import Batch, RequestSchema
from byoc.serving.settings import MB, RAISE_PAYLOAD_LIMIT

MEDIA_TYPE = "application/x-parquet"
SLICE_VALUES = 1 << 18  # values decoded at a time (rows: this over the columns): about 8 MB traced a slice
# A row group's pages may declare at most this many bytes per byte of the payload limit once
# decompressed (the footer's total_uncompressed_size): a float64 takes 8, a text its bytes and a 4-byte
# length, so any table a text body of twice the limit spells fits; one text value of 100 MB, 4.4 KB of
# zstd, took a worker 480 MB before the slice's text was measured (pyarrow decompresses a page whole).
DECLARED_BYTES_PER_PAYLOAD_BYTE = 16


def _undecodable(exc: Exception) -> DataError:
    return DataError(
        f"the body is not a Parquet file ({exc}); send the bytes DataFrame.to_parquet writes",
        code="undecodable_body",
    )


def _unconvertible(exc: Exception) -> DataError:
    return DataError(
        f"the Parquet table cannot be converted ({exc}); use plain numeric and text columns",
        code="undecodable_body",
    )


def _too_large(what: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the Parquet body decodes to {what}, more than the payload limit of {limit // MB} MB "
        f"(SAGEMAKER_MAX_PAYLOAD_IN_MB) allows; {RAISE_PAYLOAD_LIMIT}",
        code="parquet_too_large",
    )


def _open(body: bytes, limit: int) -> pq.ParquetFile:
    """The file, its size as declared by its footer checked against ``limit``; text columns are
    read as dictionaries, so a slice's text is measured before it is spelled out row by row."""
    with refused_as(_undecodable, pa.ArrowException, OSError, ValueError):
        meta = pq.read_metadata(pa.BufferReader(body))
        text = [
            f.name for f in meta.schema.to_arrow_schema() if pat.is_string(f.type) or pat.is_binary(f.type)
        ]
        file = pq.ParquetFile(pa.BufferReader(body), read_dictionary=text)
    cells = meta.num_rows * max(meta.num_columns, 1)
    if cells > limit:  # a value takes at least a byte in any text body
        raise _too_large(
            f"{meta.num_rows:,} rows of {meta.num_columns} columns ({cells:,} values, one per byte at most)",
            limit,
        )
    bound = DECLARED_BYTES_PER_PAYLOAD_BYTE * limit
    per_byte = f"{DECLARED_BYTES_PER_PAYLOAD_BYTE} bytes per byte of the limit at most"
    for index in range(meta.num_row_groups):  # before a page is decompressed: pyarrow inflates it whole
        group = meta.row_group(index)
        chunks = [group.column(j) for j in range(group.num_columns)]  # read once: each is a new object
        declared = sum(chunk.total_uncompressed_size for chunk in chunks)
        if declared > bound:
            raise _too_large(
                f"{declared:,} bytes in row group {index + 1} (decompressed, as its footer declares; {per_byte})",
                limit,
            )
        # the footer's sizes are only what it says: pyarrow allocates and inflates each page by its
        # own header's size, so a footer understating them let a few KB decompress without bound
        paged = _paged_bytes(body, chunks, bound)
        if paged > bound:
            raise _too_large(
                f"more than {bound:,} bytes in row group {index + 1} (decompressed, as its pages' headers "
                f"declare, where its footer declares {declared:,}; {per_byte})",
                limit,
            )
    return file


def _paged_bytes(body: bytes, chunks: Sequence[pq.ColumnChunkMetaData], bound: int) -> int:
    """The bytes a row group's pages (its column ``chunks``) decompress to, as their headers
    declare (what pyarrow allocates and inflates, whatever the footer says), summed over the pages
    each column chunk's byte range holds, as pyarrow finds them; counting stops once past ``bound``.

    An uncompressed chunk's pages are not read: pyarrow has no decompressor for its codec and hands
    each page's stored bytes on as they are (parquet-cpp's SerializedPageReader::DecompressIfNeeded),
    never a buffer of the size its header declares, so the chunk takes its stored bytes, counted
    as such.  A compressed chunk's headers are read whatever its codec: pyarrow sizes the page's
    decompression buffer by the header before the codec runs, so a codec's bound on expansion
    (snappy's 64 bytes from a 3-byte copy) bounds what it writes, not what is allocated."""
    total = 0
    for j, chunk in enumerate(chunks):
        start = chunk.data_page_offset
        if chunk.has_dictionary_page and 0 < (chunk.dictionary_page_offset or 0) < start:
            start = chunk.dictionary_page_offset
        end = min(start + max(chunk.total_compressed_size, 0), len(body))
        if chunk.compression == "UNCOMPRESSED":
            total += max(end - start, 0)
            continue
        at = start
        while 0 <= at < end and total <= bound:
            try:
                inflated, stored, at = parquet_pages.page_header(body, at)
            except (IndexError, ValueError) as exc:
                raise _undecodable(
                    ValueError(f"page header at byte {at:,} of column {j + 1}: {exc}")
                ) from None
            total += inflated
            at += stored
    return total


def _text_bytes(column: pa.ChunkedArray) -> int:
    """The bytes a dictionary-encoded text column takes once each row holds its own value."""
    total = 0
    for chunk in column.chunks:
        if pat.is_dictionary(chunk.type) and len(chunk):
            lengths = pc.binary_length(chunk.dictionary).take(chunk.indices)
            total += pc.sum(lengths).as_py() or 0
    return total


def _no_rows() -> DataError:
    return DataError("the Parquet table holds no rows", code="empty_body")


def batches(body: bytes, schema: RequestSchema, limit: int) -> Iterator[Batch]:
    """``body``'s rows as validated batches of about :data:`SLICE_VALUES` values each, the body
    decoding to no more than ``limit`` (the payload limit) allows (see the module doc)."""
    file = _open(body, limit)
    if file.metadata.num_rows == 0:
        raise _no_rows()
    rows_per_slice = max(1, SLICE_VALUES // max(file.metadata.num_columns, 1))
    start_row = 0
    with refused_as(_undecodable, pa.ArrowException, OSError):  # a row group that does not decode
        for record_batch in file.iter_batches(batch_size=rows_per_slice):
            table = pa.Table.from_batches([record_batch])
            text = sum(_text_bytes(column) for column in table.columns)
            if text > limit:  # no more than a body within the limit could spell out
                rows = f"rows {start_row + 1:,} to {start_row + table.num_rows:,}"
                raise _too_large(f"{text:,} bytes of text in {rows}", limit)
            batch = _batch(table, schema, start_row)
            start_row += len(batch)
            yield batch
            del batch, table, record_batch  # the next slice is made without this one held


def _batch(table: pa.Table, schema: RequestSchema, start_row: int) -> Batch:
    with refused_as(_unconvertible, pa.ArrowException, ValueError, TypeError):
        # a saved pandas index, dates, decimals, booleans, dictionaries and integers past float
        # precision beside a null as training reads them (byoc.arrow_tables)
        table = arrow_tables.without_saved_index(table)
        columns = [
            values.plain_arrow(column, schema.time_unit(str(name)))
            for name, column in zip(table.column_names, table.columns, strict=True)
        ]
        table = pa.table(columns, names=table.column_names)
        frame = arrow_tables.keep_exact_integers(table, table.to_pandas(), range(table.num_columns))
    if isinstance(frame.columns, pd.MultiIndex) or not all(isinstance(c, str) for c in frame.columns):
        raise DataError(
            "the Parquet table's column names must be the feature names as text", code="bad_shape"
        )
    return schema.from_frame(frame.reset_index(drop=True), positional=False, start_row=start_row)


def decode(body: bytes, schema: RequestSchema, start_row: int = 0) -> Batch:
    """The whole table as one batch (the server predicts a body slice by slice: :func:`batches`)."""
    with refused_as(_undecodable, pa.ArrowException, OSError, ValueError):
        # read as batches() reads it: pq.read_table's dataset refused a column named twice as no
        # Parquet file ("Multiple matches for FieldRef"), where the schema names the column
        table = pq.ParquetFile(pa.BufferReader(body)).read()
    if table.num_rows == 0:
        raise _no_rows()
    return _batch(table, schema, start_row)


DECODER = Decoder(
    MEDIA_TYPE,
    decode,
    aliases=("application/parquet", "application/vnd.apache.parquet"),
    batches=batches,
)
