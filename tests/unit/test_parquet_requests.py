"""Parquet request bodies (byoc.serving.codecs.parquet): decoded in slices of rows, in bounded
memory, and refused (413) when they decode to more than the payload limit allows."""

from __future__ import annotations

import io
import tracemalloc

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import support
from byoc.artifact import Feature
from byoc.errors import DataError, PayloadTooLarge
from byoc.serving.codecs import parquet, parquet_pages
from byoc.serving.schema import RequestSchema

SCHEMA = RequestSchema([Feature("x", "numeric", "float64"), Feature("job", "categorical", "str")])
MB = 1024 * 1024


def _parquet(table: pa.Table, **options: object) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, **options)
    return out.getvalue()


def _rows(n: int) -> bytes:
    rng = np.random.default_rng(0)
    jobs = np.array(["admin", "technician", "services", "retired"], dtype=object)
    return _parquet(pa.table({"x": rng.normal(size=n), "job": jobs[rng.integers(0, 4, n)]}))


def test_a_body_of_several_slices_gives_every_row_in_order():
    body = _rows(3 * parquet.SLICE_VALUES // 2 + 7)
    batches = list(parquet.batches(body, SCHEMA, 64 * MB))
    assert len(batches) > 1
    whole = parquet.decode(body, SCHEMA, 0)
    for column, expected in zip(zip(*(b.columns for b in batches), strict=True), whole.columns, strict=True):
        assert list(np.concatenate(column)) == list(expected)


def test_a_bad_value_in_a_later_slice_names_its_row_in_the_body():
    rows = parquet.SLICE_VALUES  # two columns: the second slice starts at row SLICE_VALUES / 2 + 1
    x = pd.Series(np.arange(rows, dtype=float), dtype=object)
    x.iloc[rows - 3] = "oops"
    body = _parquet(pa.table({"x": pa.array(x.astype(str)), "job": ["admin"] * rows}))
    with pytest.raises(DataError, match=f"row {rows - 2}\\b"):
        list(parquet.batches(body, SCHEMA, 64 * MB))


def test_a_body_of_more_values_than_the_limit_has_bytes_is_refused_before_it_is_decoded():
    """A column of one repeated value compresses to a few bytes for any number of rows: 10 million
    rows in 152 KB took a worker 4.5 GB; the footer's row count is checked first."""
    rows = 4_000_000
    table = pa.table(
        {
            "x": pa.array(np.zeros(rows)),
            "job": pa.DictionaryArray.from_arrays(np.zeros(rows, np.int32), ["admin"]),
        }
    )
    body = _parquet(table, compression="zstd")
    assert len(body) < MB
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge) as refused:
            list(parquet.batches(body, SCHEMA, 6 * MB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    message = refused.value.message
    assert "4,000,000 rows of 2 columns" in message and "SAGEMAKER_MAX_PAYLOAD_IN_MB" in message
    assert "MaxPayloadInMB" in message and refused.value.code == "parquet_too_large"
    assert peak < MB, f"{peak / MB:.1f} MB traced before the refusal"
    assert len(list(parquet.batches(body, SCHEMA, 16 * MB))) > 1  # within a larger limit: read


def test_a_slice_spelling_out_more_text_than_the_limit_is_refused():
    """One 1 MB text repeated in a dictionary column: 1.4 KB of Parquet, 3 GB once each row holds it."""
    rows = 3000
    job = pa.DictionaryArray.from_arrays(np.zeros(rows, np.int32), ["x" * MB])
    body = _parquet(pa.table({"x": np.zeros(rows), "job": job}), compression="zstd")
    assert len(body) < 64 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(PayloadTooLarge, match="bytes of text in rows 1 to 3,000"):
            list(parquet.batches(body, SCHEMA, 6 * MB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MB, f"{peak / MB:.1f} MB traced before the refusal"


# pyarrow's allocations while a test reads a body, counted apart (pyarrow's pools, not tracemalloc,
# see what it decompresses); kept for the process's life: a buffer it gave out may outlive the test
_COUNTED_POOL = pa.proxy_memory_pool(pa.default_memory_pool())


def test_a_footer_understating_what_the_pages_decompress_to_is_refused_before_they_are():
    """The footer's sizes were the only check: pyarrow allocates and inflates a page by its own
    header's size, so a footer rewritten to declare 100 bytes let 3 KB of zstd (one 64 MB text)
    decompress, 192 MB in pyarrow's pool, within a 1 MB limit, before the slice's text was
    measured (a worker at 6 MB: any size, to memory running out).  The pages' headers are read
    first; the refusal names both sizes."""
    value = "x" * (64 * MB)
    honest = _parquet(pa.table({"x": [1.0], "job": [value]}), compression="zstd", compression_level=22)
    del value
    body = support.understated_parquet(honest, 100)
    assert len(body) < 16 * 1024
    with pytest.raises(PayloadTooLarge, match="as its footer declares"):  # the honest footer: as before
        list(parquet.batches(honest, SCHEMA, MB))
    default = pa.default_memory_pool()
    pa.set_memory_pool(_COUNTED_POOL)
    try:
        with pytest.raises(PayloadTooLarge) as refused:
            list(parquet.batches(body, SCHEMA, MB))
    finally:
        pa.set_memory_pool(default)
    held = _COUNTED_POOL.max_memory()
    assert held < MB, f"pyarrow held {held / MB:.0f} MB at once before the refusal"
    message = refused.value.message
    assert "more than 16,777,216 bytes in row group 1 (decompressed, as its pages' headers declare" in message
    assert "where its footer declares 200" in message and refused.value.code == "parquet_too_large"


def _declaring(body: bytes, declared: int) -> bytes:
    """``body`` (a table of ``x`` and a text ``job``) with the header of ``job``'s dictionary page, which
    holds the text, declaring ``declared`` bytes once decompressed: Thrift's compact protocol, the
    page type (i32 field 1, DICTIONARY_PAGE) then field 2, a zigzag varint rewritten in as many bytes."""

    def varint(value: int) -> bytes:
        out = bytearray()
        while value >= 0x80:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        return bytes(out + bytes([value]))

    at = pq.read_metadata(pa.BufferReader(body)).row_group(0).column(1).dictionary_page_offset
    inflated, _, _ = parquet_pages.page_header(body, at)
    old, new = (b"\x15\x04\x15" + varint(size << 1) for size in (inflated, declared))
    assert body[at : at + len(old)] == old and len(new) == len(old)
    crafted = body[:at] + new + body[at + len(old) :]
    assert parquet_pages.page_header(crafted, at)[0] == declared
    return crafted


def test_an_uncompressed_chunk_counts_its_stored_bytes_and_a_compressed_ones_headers_are_still_read():
    """The pages' headers were read for every chunk of every request (a fifth of a millisecond for
    20 columns of one row).  An uncompressed chunk's are skipped: pyarrow hands its pages' stored bytes
    on, never a buffer of the size a header declares, so a header declaring 128 MB in a 1.2 MB body
    takes what the body's text takes (read, not refused).  A compressed chunk's headers are still read,
    whatever its codec: pyarrow sizes the page's buffer by them, so the same header in a snappy body
    is refused, although snappy cannot expand 56 KB past 1.2 MB."""
    declared = (1 << 27) - 1  # the most a 4-byte varint holds: 128 MB, past the bound of a 2 MB limit
    bodies = {}
    for codec in ("none", "snappy"):
        honest = _parquet(pa.table({"x": [1.0], "job": ["x" * 1_200_000]}), compression=codec)
        bodies[codec] = _declaring(honest, declared)
    assert len(bodies["none"]) < 2 * MB and len(bodies["snappy"]) < 64 * 1024
    default = pa.default_memory_pool()
    pa.set_memory_pool(_COUNTED_POOL)
    try:
        (batch,) = parquet.batches(bodies["none"], SCHEMA, 2 * MB)
    finally:
        pa.set_memory_pool(default)
    held = _COUNTED_POOL.max_memory()
    assert batch.columns[1][0] == "x" * 1_200_000
    assert held < 32 * MB, f"pyarrow held {held / MB:.0f} MB at once"  # copies of the text, not 128 MB
    with pytest.raises(PayloadTooLarge) as refused:
        list(parquet.batches(bodies["snappy"], SCHEMA, 2 * MB))
    assert "bytes in row group 1 (decompressed, as its pages' headers declare" in refused.value.message


@pytest.mark.parametrize(
    "body",
    [
        b"\x15\x00\x15\x02",  # cut short
        b"\x19\xfc" + b"\x01" * 4,  # a list of 15+ elements, then the body's end
        b"\x1b\xff\xff\xff\xff\x0f\x11",  # a map of 2**32 boolean pairs in 7 bytes
        b"\x1c" * 40 + b"\x00" * 40,  # structs nested 40 deep
        b"\x15\x00\x15\x02\x00",  # no compressed size
    ],
    ids=["cut short", "long list", "huge map", "deep", "no size"],
)
def test_a_page_header_that_is_none_is_refused_within_the_body(body):
    """A crafted page header is refused (ValueError, IndexError: the 400 undecodable_body) within
    a few steps, however many elements it announces or however deep it nests."""
    assert parquet_pages.page_header(b"\x15\x00\x15\x04\x15\x02\x00", 0) == (2, 1, 7)  # a page header
    with pytest.raises((IndexError, ValueError)):
        parquet_pages.page_header(body, 0)


def _sliced_peak(body: bytes) -> int:
    def sliced() -> None:
        for batch in parquet.batches(body, SCHEMA, 64 * MB):
            del batch  # predicted and dropped, as the server does

    return support.traced_peak(sliced)


def test_decoding_a_large_body_holds_one_slice_at_a_time():
    """The whole table as a DataFrame took about 90 times the body in a worker; a slice at a time,
    what is held does not grow with the rows."""
    slice_rows = parquet.SLICE_VALUES // 2
    small, large = _rows(4 * slice_rows), _rows(16 * slice_rows)
    small_peak, large_peak = _sliced_peak(small), _sliced_peak(large)
    whole = support.traced_peak(lambda: parquet.decode(large, SCHEMA, 0))
    figures = (
        f"4 slices {small_peak / MB:.0f} MB, 16 slices {large_peak / MB:.0f} MB, whole {whole / MB:.0f} MB"
    )
    assert large_peak < small_peak * 1.25, figures
    assert large_peak * 3 < whole, figures


def _out_of_memory(*args: object, **kwargs: object) -> None:
    raise pa.ArrowMemoryError("malloc of size 1073741824 failed")


@pytest.mark.parametrize(
    "where, name", [(pq, "read_metadata"), (pq.ParquetFile, "iter_batches"), (parquet.values, "plain_arrow")]
)
def test_pyarrow_running_out_of_memory_is_the_413_any_memoryerror_gets_not_a_bad_body(
    tmp_path, monkeypatch, where, name
):
    """ArrowMemoryError is an ArrowException too: it was a 400 "the body is not a Parquet file"
    (or "cannot be converted"), calling the body corrupt when memory ran out in the server; it is
    the 413 ``out_of_memory`` any MemoryError gets (byoc.serving.app.out_of_memory)."""
    from byoc.serving.app import create_app

    support.save_constant_model(tmp_path / "model", 2.5)
    client = create_app(environ={"SAGEMAKER_BASE_DIR": str(tmp_path)}).test_client()
    body = support.parquet_bytes(pd.DataFrame({"x": [1.0, 2.0]}))
    assert client.post("/invocations", data=body, content_type=parquet.MEDIA_TYPE).status_code == 200
    monkeypatch.setattr(where, name, _out_of_memory)
    reply = client.post("/invocations", data=body, content_type=parquet.MEDIA_TYPE)
    assert reply.status_code == 413, reply.get_data(as_text=True)
    error = reply.get_json()
    assert error["error"] == "out_of_memory" and error["message"].startswith("memory ran out while"), error


def test_pyarrow_running_out_of_memory_while_reading_a_whole_body_is_let_through(monkeypatch):
    monkeypatch.setattr(parquet.pq.ParquetFile, "read", _out_of_memory)
    with pytest.raises(MemoryError, match="malloc of size"):
        parquet.decode(_rows(3), SCHEMA, 0)


@pytest.mark.parametrize(
    ("column", "said"),
    [
        (pa.array([[1.0], [2.0]]), "row 1, column 'x' (numeric): a list is not a number"),
        (pa.array([b"1", b"2"]), "row 1, column 'x' (numeric): binary data is not a number"),
        (pa.array([{"a": 1}, {"a": 2}]), "row 1, column 'x' (numeric): an object is not a number"),
    ],
    ids=["list", "binary", "struct"],
)
def test_a_nested_or_binary_parquet_value_is_named_in_the_formats_words(column, said):
    """Was "a ndarray is not a number", "a bytes" and, for a Parquet struct, "a JSON object":
    Python's type names (and JSON's, for a body that is not JSON)."""
    with pytest.raises(DataError) as info:
        parquet.decode(_parquet(pa.table({"x": column, "job": ["admin", "admin"]})), SCHEMA, 0)
    assert info.value.message.startswith(said), info.value.message


def test_a_decimal_column_is_the_number_its_digits_are_in_csv():
    """A decimal128(38, 20) 0.1 was the feature 0.09999999999999999 (Arrow's cast), where a CSV
    request's 0.1 is 0.1 (byoc.values.decimal_numbers, as training reads the same file)."""
    from decimal import Decimal

    column = pa.array([Decimal("0.1"), Decimal("0.7")], type=pa.decimal128(38, 20))
    body = _parquet(pa.table({"x": column, "job": ["admin", "admin"]}))
    for batch in (parquet.decode(body, SCHEMA, 0), *parquet.batches(body, SCHEMA, 64 * MB)):
        assert batch.frame()["x"].tolist() == [0.1, 0.7]


@pytest.mark.parametrize("repeated", [["job", "job", "x"], ["job", "x", "x"]])
def test_a_column_named_twice_is_named_whole_or_in_slices(repeated):
    """Training names a Parquet file's repeated columns; the whole-body decoder answered "the body
    is not a Parquet file (Multiple matches for FieldRef...)" where the sliced one named them."""
    arrays = [pa.array(["admin"]) if name == "job" else pa.array([1.5]) for name in repeated]
    body = _parquet(pa.Table.from_arrays(arrays, names=repeated))
    twice = next(name for name in repeated if repeated.count(name) > 1)
    for decode in (lambda: parquet.decode(body, SCHEMA, 0), lambda: list(parquet.batches(body, SCHEMA, MB))):
        with pytest.raises(DataError, match=f"repeats column '{twice}'") as caught:
            decode()
        assert caught.value.code == "duplicate_columns"
