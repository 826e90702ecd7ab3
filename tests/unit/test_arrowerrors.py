"""byoc.arrowerrors: pyarrow running out of memory is never the input's fault, in every reader."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from byoc.arrowerrors import blames_input, refused_as
from byoc.data import jsonlines_reader, parquet_stream
from byoc.data.sources import Source
from byoc.errors import DataError


def _out_of_memory(*args: object, **kwargs: object) -> None:
    raise pa.ArrowMemoryError("malloc of size 1073741824 failed")


def test_memory_running_out_is_not_the_inputs_fault_whatever_else_the_error_is() -> None:
    assert isinstance(pa.ArrowMemoryError("x"), pa.ArrowException)  # why the rule exists
    assert not blames_input(pa.ArrowMemoryError("malloc failed"))
    assert not blames_input(MemoryError())
    assert blames_input(pa.ArrowInvalid("bad footer"))
    assert blames_input(OSError("truncated"))


def test_refused_as_turns_the_inputs_errors_into_the_callers_and_lets_memory_through() -> None:
    def bad(exc: Exception) -> DataError:
        return DataError(f"bad input ({exc})", code="bad")

    with pytest.raises(DataError, match=r"bad input \(bad footer\)") as caught:
        with refused_as(bad, pa.ArrowException):
            raise pa.ArrowInvalid("bad footer")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    with pytest.raises(pa.ArrowMemoryError, match="malloc"):
        with refused_as(bad, pa.ArrowException):
            _out_of_memory()
    with pytest.raises(KeyError):  # an error not named goes on as it is
        with refused_as(bad, pa.ArrowException):
            raise KeyError("x")


def test_jsonlines_reader_does_not_fall_back_to_line_by_line_when_pyarrow_runs_out_of_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = Source(name="train/a.jsonl", data=b'{"y": 1, "x": 0.5}\n{"y": 0, "x": 1.5}\n')
    assert jsonlines_reader._read_one(source)[0].num_rows == 2
    monkeypatch.setattr(jsonlines_reader.pajson, "read_json", _out_of_memory)
    with pytest.raises(MemoryError, match="malloc of size"):
        jsonlines_reader._read_one(source)


def test_pipe_parquet_split_does_not_take_memory_running_out_for_a_cut_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"y": [1, 0], "x": [0.5, 1.5]}), sink)
    data = sink.getvalue() * 2  # two objects back to back, as Pipe mode streams them
    assert len(parquet_stream.split("train", Source(name="train_0", data=data))) == 2
    monkeypatch.setattr(parquet_stream.pq, "ParquetFile", _out_of_memory)
    with pytest.raises(MemoryError, match="malloc of size"):
        parquet_stream.split("train", Source(name="train_0", data=data))
