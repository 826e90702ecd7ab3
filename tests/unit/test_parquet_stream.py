"""byoc.data.parquet_stream: a Pipe mode stream of Parquet objects cut back into its objects."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from byoc.data import parquet_stream
from byoc.data.sources import Source
from byoc.errors import DataError


def _parquet(table: pa.Table, **options: object) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, **options)
    return out.getvalue()


def test_magic_bytes_inside_the_data_are_not_object_boundaries():
    """Text cells holding 'PAR1PAR1' (uncompressed, so the bytes appear as such) do not cut."""
    tricky = pa.table({"s": ["PAR1PAR1", "xPAR1", "PAR1"] * 20, "n": list(range(60))})
    objects = [
        _parquet(tricky, compression="none", use_dictionary=False),
        _parquet(pa.table({"s": ["a"], "n": [1]})),
        _parquet(tricky, compression="none", use_dictionary=False, row_group_size=7),
    ]
    parts = parquet_stream.split("train", Source(name="train_0", data=b"".join(objects)))
    assert [p.data for p in parts] == objects
    assert (
        parts[1].name
        == f"train_0 (Parquet object 2, bytes {len(objects[0])}-{len(objects[0]) + len(objects[1])})"
    )
    assert sum(pq.read_table(pa.BufferReader(p.data)).num_rows for p in parts) == 121


def test_one_object_is_the_stream_itself():
    stream = Source(name="train_0", data=_parquet(pa.table({"n": [1, 2]})))
    assert parquet_stream.split("train", stream) == [stream]


def test_a_stream_that_is_not_parquet_is_left_for_the_reader():
    stream = Source(name="train_0", data=b"a,b\n1,2\n")
    assert parquet_stream.split("train", stream) == [stream]


def test_a_truncated_last_object_is_named_by_its_offset():
    first = _parquet(pa.table({"n": [1, 2]}))
    second = _parquet(pa.table({"n": [3, 4]}))
    stream = Source(name="train_0", data=first + second[:-3])
    with pytest.raises(DataError, match=rf"^train_0, byte {len(first)}: not a whole Parquet file, after 1"):
        parquet_stream.split("train", stream)
