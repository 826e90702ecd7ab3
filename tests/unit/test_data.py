"""Channel readers: discovery, gzip, every media type, Pipe FIFOs, and errors that name the culprit."""

from __future__ import annotations

import codecs
import csv
import errno
import logging
import os
import re
import threading
import time
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byoc import csvfields, values
from byoc.data import csv_header, csv_reader, jsonlines_reader, media, read_channel, sources
from byoc.data.sources import Source
from byoc.data.tabular import SparseLayout
from byoc.environment import MLPaths, TrainingEnvironment
from byoc.errors import DataError
from support import (
    RECORDIO_MAGIC,
    csv_bytes,
    failing_open,
    gzip_bytes,
    jsonlines_bytes,
    make_ml_root,
    parquet_bytes,
    pipe_feeders,
    recordio_record,
)

FRAME = pd.DataFrame(
    {
        "label": ["yes", "no", "yes", "no"],
        "age": [30.5, 41.0, None, 22.0],
        "job": ["admin", None, "services", "admin"],
    }
)


def env_for(root: Path, **environ: str) -> TrainingEnvironment:
    return TrainingEnvironment.from_files(MLPaths(root), environ=environ)


def read(tmp_path: Path, files: dict, channel_type: str | None = None, **kwargs):
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": files},
        content_types={"train": channel_type} if channel_type else None,
    )
    return read_channel(env_for(root), "train", **kwargs)


def expect_error(tmp_path: Path, files: dict, channel_type: str | None = None, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        read(tmp_path, files, channel_type, **kwargs)
    return info.value


# -- media types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, essence",
    [
        (None, "text/csv"),
        ("", "text/csv"),
        ("text/csv", "text/csv"),
        ("TEXT/CSV; charset=utf-8", "text/csv"),
        ("application/parquet", "application/x-parquet"),
        ("application/x-parquet", "application/x-parquet"),
        ("application/x-jsonlines", "application/jsonlines"),
        ("application/json-lines", "application/jsonlines"),
        ("application/jsonlines", "application/jsonlines"),
        ("text/x-libsvm", "text/libsvm"),
        ("text/libsvm", "text/libsvm"),
    ],
)
def test_media_type_aliases(raw, essence):
    assert media.parse(raw).essence == essence


@pytest.mark.parametrize(
    "raw, header",
    [
        ("text/csv;header=present", True),
        ("text/csv;header=absent", False),
        ('text/csv; header="absent"', False),  # a quoted parameter value (RFC 2045's quoted-string)
        ("text/csv; Header=Present", True),  # parameter names and these values in any case
        ("text/csv;header=ABSENT", False),
        ("text/csv", None),
    ],
)
def test_media_type_header_parameter(raw, header):
    assert media.parse(raw).header is header


def test_media_type_label_size_parameter():
    assert media.parse("text/csv;label_size=0").label_size == 0
    assert media.parse("text/csv; label_size=1").label_size == 1
    assert media.parse("text/csv").label_size is None


# -- discovery and gzip ------------------------------------------------------------------------


def test_recursive_discovery_skips_dot_and_underscore_names_and_sorts(tmp_path):
    part = csv_bytes(FRAME, target="label")
    data = read(
        tmp_path,
        {
            "b.csv": part,
            "a/nested.csv": part,
            "_SUCCESS": b"garbage,,,\n",
            ".hidden.csv": b"\x00\x01",
            "_temporary/x.csv": b"1,2\n",
            ".ipynb_checkpoints/c.csv": b"1\n",
        },
    )
    assert data.files == ("train/a/nested.csv", "train/b.csv")
    assert len(data.frame) == 2 * len(FRAME)


def test_gzip_detected_by_magic_bytes_not_suffix(tmp_path):
    data = read(
        tmp_path,
        {
            "part-0000": gzip_bytes(csv_bytes(FRAME, target="label")),
            "plain.csv.gz": csv_bytes(FRAME, target="label"),
        },
    )
    assert len(data.frame) == 2 * len(FRAME)
    assert list(data.frame["0"]) == list(FRAME["label"]) * 2


def test_corrupt_gzip_names_the_file(tmp_path):
    broken = gzip_bytes(csv_bytes(FRAME, target="label") * 50)[:60]
    error = expect_error(tmp_path, {"data.csv.gz": broken})
    assert error.code == "corrupt_gzip"
    assert "train/data.csv.gz" in error.message


def test_empty_channel_and_empty_files(tmp_path):
    assert expect_error(tmp_path / "a", {"_SUCCESS": b""}).code == "empty_channel"
    error = expect_error(tmp_path / "b", {"a.csv": b"", "b.csv": gzip_bytes(b"")})
    assert error.code == "empty_file" and "train/a.csv" in error.message
    # a zero-byte object next to real data (an S3 "folder" marker) contributes no rows
    assert len(read(tmp_path / "c", {"a.csv": b"", "b.csv": csv_bytes(FRAME, target="label")}).frame) == 4


def test_missing_channel_directory(tmp_path):
    root = make_ml_root(tmp_path, channels={})
    with pytest.raises(DataError, match="channel 'train'.*does not exist"):
        read_channel(env_for(root), "train")


def test_sm_channel_variable_overrides_the_directory(tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "x.csv").write_bytes(csv_bytes(FRAME, target="label"))
    root = make_ml_root(tmp_path / "ml", channels={"train": {"a.csv": b"1,2\n3,4\n"}})
    data = read_channel(env_for(root, SM_CHANNEL_TRAIN=str(other)), "train")
    assert data.files == ("train/x.csv",) and len(data.frame) == 4


# -- CSV -----------------------------------------------------------------------------------------


def test_headerless_csv_columns_are_string_positions(tmp_path):
    data = read(tmp_path, {"a.csv": csv_bytes(FRAME, target="label")})
    assert not data.has_header
    assert list(data.frame.columns) == ["0", "1", "2"]
    assert data.frame["1"].dtype == np.float64
    assert data.frame["1"].isna().sum() == 1 and data.frame["2"].isna().sum() == 1


def test_header_detected_and_forced(tmp_path):
    data = read(tmp_path / "a", {"a.csv": csv_bytes(FRAME, target="label", header=True)})
    assert data.has_header and list(data.frame.columns) == ["label", "age", "job"]
    headerless = csv_bytes(FRAME, target="label", header=False)
    forced = read(tmp_path / "b", {"a.csv": headerless}, header=True)  # the first row's values are the names
    assert forced.has_header and len(forced.frame) == len(FRAME) - 1
    # forced false over names above numbers: refused, as a data row it would make 'age' categorical
    with pytest.raises(
        DataError, match=r"^train/a\.csv, line 1: 'label,age,job' is to be read as data"
    ) as info:
        read(tmp_path / "c", {"a.csv": csv_bytes(FRAME, target="label", header=True)}, header=False)
    assert info.value.code == "header_as_data"
    # a line 1 with clues of both sides is read as data when asked (README "Training errors")
    both = read(tmp_path / "d", {"a.csv": b"yes,?,a\n" + headerless}, header=False)
    assert not both.has_header and both.frame["1"].iloc[0] == "?"


CODES = pd.DataFrame({"code": ["01", "1", "002", "01"], "x": ["1.5", "2", "007", "3"]})


@pytest.mark.parametrize(
    "name, files, content_type, label, column",
    [
        ("headerless", {"a.csv": csv_bytes(CODES, target="code")}, None, 0, "0"),
        ("headerless index text", {"a.csv": csv_bytes(CODES, target="code")}, None, "0", "0"),
        ("header", {"a.csv": csv_bytes(CODES, target="code", header=True)}, None, "code", "code"),
        ("jsonlines", {"a.jsonl": jsonlines_bytes(CODES)}, "application/jsonlines", "code", "code"),
        ("parquet", {"a.parquet": parquet_bytes(CODES)}, "application/x-parquet", "code", "code"),
    ],
)
def test_the_label_column_is_left_as_written(tmp_path, name, files, content_type, label, column):
    """The column the target hyperparameter names keeps its text for training to type as labels
    (byoc.problem.keep_spellings): read as numbers, '01' and '1' would be one class.  The other
    columns are typed as ever."""
    data = read(tmp_path, files, content_type, label=label)
    assert data.frame[column].tolist() == ["01", "1", "002", "01"]
    feature = [c for c in data.frame.columns if c != column][0]
    assert data.frame[feature].dtype == np.float64 and data.frame[feature].tolist() == [1.5, 2, 7, 3]
    typed = read(tmp_path / "typed", files, content_type)  # no label given: every column typed
    assert typed.frame[column].tolist() == [1.0, 1.0, 2.0, 1.0]


def test_a_label_naming_no_column_leaves_every_column_typed(tmp_path):
    """resolve_target refuses such a target; the reader only leaves a column it names as written."""
    for label in (7, "nothing"):
        data = read(
            tmp_path / str(label), {"a.csv": csv_bytes(CODES, target="code", header=True)}, label=label
        )
        assert data.frame["code"].dtype == np.float64


@pytest.fixture
def job_field_limit():
    """The csv module's field limit as the train job sets it when it starts (byoc.csvfields)."""
    before = csv.field_size_limit()
    csvfields.allow_fields(csvfields.TRAINING_ROW_BYTES)
    yield
    csv.field_size_limit(before)


LONG_CELL = "b" * (1 << 20)  # 1 MiB, the longest text cell training reads


@pytest.mark.parametrize("where", ["first record", "first row under a header", "later row"])
def test_a_long_quoted_cell_is_read_wherever_it_is(tmp_path, job_field_limit, where):
    """A first record longer than the 64 KiB sniffing sample was cut short (one column too
    few, then a ragged-row error from the csv module's 128 KiB field limit: "Internal error");
    a header followed by such a row had no data row to be told by, and was trained on as data."""
    rows = [f"{i % 2},{'x' if i % 3 else 'y'},{i}" for i in range(30)]
    long_row = f'1,"{LONG_CELL}",5'
    lines = {
        "first record": [long_row, *rows],
        "first row under a header": ["label,cat,num", long_row, *rows],
        "later row": [*rows[:10], long_row, *rows[10:]],
    }[where]
    data = read(tmp_path, {"a.csv": "\n".join(lines) + "\n"})
    assert data.has_header == (where == "first row under a header")
    assert data.frame.shape == (31, 3)
    assert (data.frame.iloc[:, 1].str.len() == len(LONG_CELL)).sum() == 1
    assert data.frame.iloc[:, 2].dtype == np.float64 and data.frame.iloc[:, 2].sum() == sum(range(30)) + 5


def test_a_ragged_row_after_a_long_cell_is_named(tmp_path, job_field_limit):
    lines = [f'1,"{LONG_CELL}",5', *(f"{i % 2},x,{i}" for i in range(30)), "1,2"]
    error = expect_error(tmp_path, {"a.csv": "\n".join(lines) + "\n"})
    assert error.code == "ragged_csv" and error.message.startswith("train/a.csv, line 32: 2 fields where 3")


@pytest.mark.parametrize("case", ["long line", "unclosed quote"])
def test_a_value_past_the_longest_row_is_named_by_its_line(tmp_path, monkeypatch, case):
    """A value longer than the longest row (here 256 KiB) is named by the line its row starts
    on: the csv module stops at the field limit the job set rather than reading the rest of the
    file into one value (an unclosed quote swallows the lines after it; pyarrow reads that as
    one short row at the end of the file)."""
    monkeypatch.setattr(csv_reader, "MAX_ROW_BYTES", 1 << 18)
    monkeypatch.setattr(csv_reader, "BLOCK_SIZE", 1 << 16)
    before = csv.field_size_limit()
    csv.field_size_limit(1 << 18)
    try:
        odd = "1," + "c" * 600_000 + ",2" if case == "long line" else '1,"opens here,2'
        lines = ["1,a,2"] * 5 + [odd] + ["1,b,2"] * 60000
        error = expect_error(tmp_path, {"a.csv": "\n".join(lines) + "\n"})
    finally:
        csv.field_size_limit(before)
    if case == "long line":
        assert error.code == "row_too_large"
        assert error.message.startswith("train/a.csv, line 6: a row longer than 0 MB")
    else:
        assert error.code == "ragged_csv"
        assert error.message.startswith("train/a.csv, line 6: the row starting on this line holds a value")


def test_all_text_dataset_header_detection(tmp_path):
    text = "colour,size,label\nred,small,yes\nblue,large,no\nred,large,yes\nblue,small,no\n"
    assert read(tmp_path / "a", {"a.csv": text}).has_header
    body = "red,small,yes\nblue,large,no\nred,large,yes\nblue,small,no\n"
    assert not read(tmp_path / "b", {"a.csv": body}).has_header


@pytest.mark.parametrize(
    "rows, expected",
    [
        ([["a", "b"], ["1", "2"], ["3", "4"]], True),
        ([["1", "2"], ["3", "4"]], False),
        ([["", "x"], ["1", "2"], ["2", "3"]], True),  # pandas' unnamed index column
        ([["yes", "1.5"], ["no", "2"], ["yes", "NA"]], False),
        ([["only"]], False),
        ([["id", "name"], ["a1", "x"], ["a2", "y"]], False),  # all distinct text: no evidence
        ([["b", "1.5"], ["a", ""], ["a", ""]], False),  # a number is no column name
    ],
)
def test_detect_header_rules(rows, expected):
    assert csv_header.detect_header(rows) is expected


def lines(text: str) -> list[list[str]]:
    return [line.split(",") for line in text.splitlines()]


LABELLED = "".join(f"{('yes', 'no')[i % 2]},{i},{i * 1.5}\n" for i in range(40))  # label, int, float
YEARS = "".join(f"{('up', 'down')[i % 3 == 0]},{100 + i},{150 + i % 7},{120 + i % 5}\n" for i in range(60))


@pytest.mark.parametrize(
    "text, expected",
    [
        # a text cell in a numeric column, the other cells data-like: a missing mark, a typo, or
        # a header with a column named by a number: cannot be told
        ("yes,?,3.5\n" + LABELLED, None),
        ("yes,4o,3.5\n" + LABELLED, None),
        ("label,age,2019\n" + LABELLED, None),
        # a new name over a closed text column, numbers over numbers: a header naming years
        ("label,2019,2020,2021\n" + YEARS, None),
        ("b,1.5\n" + "a,\n" * 60, None),  # a new class over 60 rows of one, a number in an empty column
        # one side's clues only
        ("label,x,y\n" + LABELLED, True),
        ("label,,\n" + LABELLED * 2, True),  # a new name over yes/no of 80 rows: closed
        ("label,,\n" + LABELLED, False),  # over 40 rows: not closed; blank names are no clue
        ("label,2019,2020,2021\n" + YEARS[: YEARS.index("\n", 300)], False),  # too few rows: a doubt
        ("maybe,1,1.5\n" + LABELLED, False),  # a new class over 40 rows: not closed, so data
        ("yes,,\n" + LABELLED, False),  # missing numbers are no clue
        (",x,y\n" + LABELLED.replace("yes", "1").replace("no", "0"), True),  # pandas' index column
    ],
)
def test_judge_first_line_clues(text, expected):
    assert csv_header.detect_header(lines(text)) is expected


def test_judge_says_why():
    header = csv_header.judge(lines("label,x,y\n" + LABELLED))
    assert header.reason == "columns 1, 2 hold numbers below but 'x', 'y' here"
    data = csv_header.judge(lines(LABELLED))
    assert (
        data.reason == "columns 1, 2 hold numbers as below ('0', '0.0'); 'yes' in column 0 also occurs below"
    )
    both = csv_header.judge(lines("yes,?,3.5\n" + LABELLED))
    assert both.for_header == ("column 1 holds numbers below but '?' here",)
    assert both.for_data == ("column 2 holds numbers as below ('3.5')", "'yes' in column 0 also occurs below")
    assert both.marker == (1, "?")
    years = csv_header.judge(lines("label,2019,2020,2021\n" + YEARS))
    assert years.for_header == ("column 0 holds only 2 distinct values in 60 rows below, not 'label'",)
    few = csv_header.judge(lines("label,2019,2020,2021\n" + YEARS[: YEARS.index("\n", 300)]))
    assert few.header is False and few.doubt == "'label' in column 0 never occurs below"


def test_decide_refuses_an_ambiguous_first_line_naming_file_line_and_header():
    with pytest.raises(DataError) as info:
        csv_header.decide([("train/a.csv", lines("yes,?,3.5\n" + LABELLED))], "train")
    assert info.value.code == "ambiguous_header"
    message = info.value.message
    assert message.startswith("train/a.csv, line 1: cannot tell whether 'yes,?,3.5' is a header row or data.")
    assert "Like a header: column 1 holds numbers below but '?' here." in message
    assert (
        "Like data: column 2 holds numbers as below ('3.5'); 'yes' in column 0 also occurs below." in message
    )
    assert "Set the hyperparameter 'header' to true if line 1 names the columns, or to false" in message
    assert "if '?' marks a missing value, leave such cells empty or write NA" in message


def test_a_target_named_on_line_1_makes_it_the_header(caplog):
    """A name can only be resolved in a header: target=label settles `label,2019,2020,2021`
    (ambiguous without it) and the too-few-rows doubt; a number or a name line 1 lacks does not."""
    ambiguous_years = [("train/a.csv", lines("label,2019,2020,2021\n" + YEARS))]
    with caplog.at_level(logging.INFO, logger="byoc"):
        assert csv_header.decide(ambiguous_years, "train", "label") is True
    assert "the target hyperparameter names its column 0, 'label'" in caplog.text
    few = [("train/a.csv", lines("label,2019,2020,2021\n" + YEARS[: YEARS.index("\n", 300)]))]
    assert csv_header.decide(few, "train", "label") is True
    assert csv_header.decide(few, "train", "2019") is True  # a JSON string: a name
    assert csv_header.decide(few, "train", 0) is False  # a number is an index: no clue
    for target in (None, 1, "price"):
        with pytest.raises(DataError):
            csv_header.decide(ambiguous_years, "train", target)


def test_an_ambiguous_line_with_a_huge_cell_is_named_in_a_short_message():
    huge = "b" * (1 << 20)
    with pytest.raises(DataError) as info:
        csv_header.decide([("train/a.csv", lines(f"yes,{huge},3.5\n" + LABELLED))], "train")
    assert info.value.code == "ambiguous_header"
    assert (
        len(info.value.message) < 1500 and "'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb...'" in info.value.message
    )


def test_decide_ambiguous_later_file_against_a_header_is_refused_as_not_the_header():
    header = "label,x,y\n" + LABELLED
    with pytest.raises(DataError) as info:
        csv_header.decide(
            [("train/a.csv", lines(header)), ("train/b.csv", lines("yes,?,3.5\n" + LABELLED))], "train"
        )
    assert info.value.code == "mixed_header"
    assert info.value.message.startswith(
        "train/b.csv: its first line 'yes,?,3.5' is not the header row 'label,x,y' that train/a.csv "
        "starts with; add that header line to train/b.csv"
    )


def test_decide_logs_the_decision_and_a_doubt(caplog):
    with caplog.at_level(logging.INFO, logger="byoc.data.csv_header"):
        assert csv_header.decide([("train/a.csv", lines("label,x,y\n" + LABELLED))], "train") is True
        few = "label,2019,2020,2021\n" + YEARS[: YEARS.index("\n", 300)]
        assert csv_header.decide([("train/b.csv", lines(few))], "train") is False
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert (
        "INFO",
        "train/a.csv: line 1 read as a header row (columns 1, 2 hold numbers below but 'x', 'y' here)",
    ) in messages
    assert (
        "WARNING",
        "train/b.csv: line 1 'label,2019,2020,2021' was read as data, but 'label' in column 0 never "
        "occurs below: if it is a header row naming columns by numbers (years, codes), set the "
        "hyperparameter 'header' to true",
    ) in messages


def test_ragged_row_names_file_line_and_counts(tmp_path):
    good = csv_bytes(FRAME, target="label")
    error = expect_error(tmp_path, {"a.csv": good, "b.csv": b"yes,1,admin\nno,2\nyes,3,admin\n"})
    assert error.code == "ragged_csv"
    assert "train/b.csv, line 2: 2 fields where 3 are expected" in error.message


def test_header_files_must_agree(tmp_path):
    other = FRAME.rename(columns={"job": "occupation"})
    error = expect_error(
        tmp_path,
        {
            "a.csv": csv_bytes(FRAME, target="label", header=True),
            "b.csv": csv_bytes(other, target="label", header=True),
        },
    )
    assert error.code == "columns_differ"
    assert error.message.startswith("train/b.csv: columns differ from train/a.csv")
    assert "occupation" in error.message


def test_duplicate_header_names(tmp_path):
    error = expect_error(tmp_path, {"a.csv": "a,b,a\n1,2,3\n4,5,6\n"}, header=True)
    assert error.code == "duplicate_column" and "column name 'a' appears 2 times" in error.message


def test_binary_garbage_and_parquet_hint(tmp_path):
    error = expect_error(tmp_path / "a", {"blob.bin": bytes(range(256)) * 4})
    assert error.code == "not_text" and "train/blob.bin" in error.message
    pq = expect_error(tmp_path / "b", {"x.parquet": parquet_bytes(FRAME)})
    assert "application/x-parquet" in pq.message


@pytest.mark.parametrize(
    ("name", "content_type", "data"),
    [
        ("a.csv", None, b"yes,1,x\nno,2,caf\xe9\n" + b"no,3,x\n" * 10),
        ("a.csv", None, b"yes,1,x\n" * 20_000 + b"no,2,caf\xe9\n"),  # line 20001: past the sniffed sample
        ("a.jsonl", "application/jsonlines", b'{"y": 1}\n{"y": "caf\xe9"}\n' + b'{"y": 2}\n' * 10),
        ("a.txt", "text/libsvm", b"1 1:2\n0 1:caf\xe9\n" + b"1 1:3\n" * 10),
    ],
    ids=["csv", "csv_past_the_sample", "jsonlines", "libsvm"],
)
def test_a_byte_that_is_not_utf8_is_named_alike_by_every_text_reader(tmp_path, name, content_type, data):
    """Were three wordings: CSV "not UTF-8 text (invalid byte 0xe9 at offset 16); save the CSV as
    UTF-8" (or "line 2 ... at column 7"), JSON Lines "line 2: not UTF-8 text (invalid continuation
    byte)" (no byte, no offset), libsvm "byte 0xe9 at column 7 is not UTF-8: not valid libsvm".  One
    now, byoc.data.sources.not_utf8: file, byte, offset in the file, line, and the fix."""
    error = expect_error(tmp_path, {name: data}, content_type)
    assert error.code == "not_utf8"
    offset = data.index(0xE9)
    line = data.count(b"\n", 0, offset) + 1
    assert error.message == (
        f"train/{name}: not UTF-8 text (byte 0xe9 at offset {offset}, line {line}); {sources.SAVE_AS_UTF8}"
    )


def test_quoted_commas_newlines_crlf_and_bom(tmp_path):
    text = '\ufefflabel,note,x\r\nyes,"a, b",1\r\nno,"two\nlines",2\r\nyes,plain,3\r\n'
    data = read(tmp_path, {"a.csv": text.encode("utf-8")})
    assert data.has_header and list(data.frame.columns) == ["label", "note", "x"]
    assert list(data.frame["note"]) == ["a, b", "two\nlines", "plain"]


def test_dates_and_booleans_stay_text(tmp_path):
    data = read(tmp_path, {"a.csv": "y,d,b\n1,2024-01-01,true\n0,2024-02-01,false\n1,2024-03-01,true\n"})
    assert list(data.frame["d"]) == ["2024-01-01", "2024-02-01", "2024-03-01"]
    assert list(data.frame["b"]) == ["true", "false", "true"]


def test_column_type_changing_after_first_block_is_widened(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_reader, "BLOCK_SIZE", 256)
    lines = [f"{i % 2},{i}" for i in range(200)] + ["1,2.5", "0,n/a", "1,text"]
    data = read(tmp_path, {"a.csv": "\n".join(lines) + "\n"})
    assert len(data.frame) == 203
    assert data.frame["1"].iloc[-1] == "text"


def test_integer_and_float_files_concatenate_as_numbers(tmp_path):
    data = read(tmp_path, {"a.csv": "1,10\n0,20\n", "b.csv": "1,1.5\n0,\n", "c.csv": "1,\n0,\n"})
    assert data.frame["1"].tolist()[:3] == [10.0, 20.0, 1.5]
    assert data.frame["1"].isna().sum() == 3


def test_numbers_in_one_file_and_text_in_another_name_both_files(tmp_path):
    with pytest.raises(
        DataError, match=r"column '1' holds numbers in train/a\.csv but text in train/b\.csv \(e\.g\. 'x'\)"
    ):
        read(tmp_path, {"a.csv": "1,10\n0,20\n", "b.csv": "1,1.5\n0,x\n"})


def test_text_in_one_file_and_all_missing_in_another_is_text(tmp_path):
    data = read(tmp_path, {"a.csv": "1,a\n0,b\n", "b.csv": "1,\n0,\n"})
    assert data.frame["1"].tolist()[:2] == ["a", "b"]


def test_header_only_is_an_empty_channel(tmp_path):
    error = expect_error(tmp_path, {"a.csv": "a,b\n"}, header=True)
    assert error.code == "empty_channel"


def test_label_size_reaches_channel_data(tmp_path):
    data = read(tmp_path, {"a.csv": "1,2\n3,4\n"}, "text/csv;label_size=0")
    assert data.label_size == 0


def test_unsupported_and_malformed_content_types(tmp_path):
    error = expect_error(tmp_path / "a", {"a": b"x"}, "application/x-recordio-protobuf")
    assert error.code == "unsupported_content_type" and "RecordIO" in error.message
    assert "text/csv" in error.message
    assert expect_error(tmp_path / "b", {"a": b"1\n"}, "text/csv;label_size=abc").code == "bad_content_type"
    for n, label_size in enumerate(("2", "-1", "10")):  # SageMaker defines 0 and 1 only
        error = expect_error(tmp_path / f"c{n}", {"a": b"1,2,3\n"}, f"text/csv;label_size={label_size}")
        assert error.code == "bad_content_type" and "channel 'train'" in error.message


def test_content_type_argument_overrides_the_channel(tmp_path):
    data = read(tmp_path, {"a.parquet": parquet_bytes(FRAME)}, "text/csv", content_type="application/parquet")
    assert data.has_header and list(data.frame.columns) == list(FRAME.columns)


# -- Parquet -------------------------------------------------------------------------------------


def test_parquet_files_concatenate_in_order(tmp_path):
    data = read(
        tmp_path,
        {"p0.parquet": parquet_bytes(FRAME), "p1.parquet": gzip_bytes(parquet_bytes(FRAME))},
        "application/x-parquet",
    )
    assert data.has_header and len(data.frame) == 8
    assert list(data.frame["label"]) == list(FRAME["label"]) * 2
    assert data.frame["age"].dtype == np.float64


def test_parquet_with_a_different_schema_names_the_file(tmp_path):
    error = expect_error(
        tmp_path,
        {"p0.parquet": parquet_bytes(FRAME), "p1.parquet": parquet_bytes(FRAME.drop(columns=["job"]))},
        "application/x-parquet",
    )
    assert error.code == "columns_differ" and error.message.startswith("train/p1.parquet")
    assert "job" in error.message


@pytest.mark.parametrize("compress", [False, True])
def test_parquet_with_repeated_column_names_names_them(tmp_path, compress):
    """pyarrow reads such a file only as "Multiple matches for FieldRef": it is not corrupt."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = [pa.array(["yes", "no"]), pa.array([1.0, 2.0]), pa.array([3.0, 4.0]), pa.array(["a", "b"])]
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns, names=["label", "x", "x", "job"]), buffer)
    body = gzip_bytes(buffer.getvalue()) if compress else buffer.getvalue()
    error = expect_error(tmp_path, {"p.parquet": body}, "application/x-parquet")
    assert error.code == "duplicate_column"
    assert error.message.startswith("train/p.parquet: column name 'x' appears 2 times; rename the copies")
    assert "corrupt" not in error.message
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns * 2, names=["a", "b", "a", "c", "a", "b", "a", "c"]), buffer)
    error = expect_error(tmp_path / "many", {"p.parquet": buffer.getvalue()}, "application/x-parquet")
    assert "column names 'a' (4 times), 'b' (2 times), 'c' (2 times) repeat" in error.message


def test_not_parquet(tmp_path):
    error = expect_error(tmp_path, {"p.parquet": csv_bytes(FRAME, target="label")}, "application/x-parquet")
    assert error.code == "not_parquet" and "train/p.parquet" in error.message


# -- JSON Lines ----------------------------------------------------------------------------------


def test_jsonlines_objects_and_missing_keys(tmp_path):
    data = read(
        tmp_path,
        {"a.jsonl": b'{"y": 1, "x": 2.5, "c": "a"}\n\n{"y": 0, "c": "b"}\n'},
        "application/jsonlines",
    )
    assert data.has_header and list(data.frame.columns) == ["y", "x", "c"]
    assert data.frame["x"].isna().sum() == 1


def test_jsonlines_round_trip_of_a_frame(tmp_path):
    data = read(tmp_path, {"a.jsonl": jsonlines_bytes(FRAME)}, "application/jsonlines")
    pd.testing.assert_frame_equal(data.frame.astype(object), FRAME.astype(object), check_dtype=False)


def test_jsonlines_arrays_are_headerless(tmp_path):
    data = read(tmp_path, {"a.jsonl": b'["yes", 1, "a"]\n["no", 2, "b"]\n'}, "application/jsonlines")
    assert not data.has_header and list(data.frame.columns) == ["0", "1", "2"]


def test_jsonlines_bad_line_is_named(tmp_path):
    error = expect_error(tmp_path, {"a.jsonl": b'{"y": 1}\n{"y": 2}\n{"y": 3,,}\n'}, "application/jsonlines")
    assert error.code == "bad_jsonlines" and error.message.startswith("train/a.jsonl, line 3")


def test_jsonlines_nested_values_are_rejected(tmp_path):
    error = expect_error(tmp_path, {"a.jsonl": b'{"y": 1, "x": {"a": 1}}\n'}, "application/jsonlines")
    assert error.code == "nested_column" and "'x'" in error.message


@pytest.mark.parametrize(
    ("second", "said"),
    [
        (b"7", "train/a.jsonl, line 2 holds a number, not a record: each line of JSON Lines holds one"),
        (b'"y"', "train/a.jsonl, line 2 holds a string, not a record"),
        (b"null", "train/a.jsonl, line 2 holds null, not a record"),
        (b"[2, 3]", "train/a.jsonl, line 2 holds a row (an array) where the lines before it hold records"),
        (b'{"y": 2, "x": [1]}', "train/a.jsonl, line 2: field 'x' holds a list; each field must be"),
    ],
)
def test_jsonlines_lines_and_fields_are_named_in_jsons_words(tmp_path, second, said):
    """Were "a JSON int", "a JSON str" and "holds a nested list": Python's names.  A line of null
    was read by pyarrow as a row of missing values (dropped for its missing target): it is a
    malformed line as much as a number is, and said as serving says it (json_objects)."""
    error = expect_error(
        tmp_path, {"a.jsonl": b'{"y": 1, "x": 2}\n' + second + b"\n"}, "application/jsonlines"
    )
    assert error.message.startswith(said), error.message


def test_jsonlines_type_change_between_lines_is_read(tmp_path):
    data = read(tmp_path, {"a.jsonl": b'{"y": 1, "x": 1}\n{"y": 0, "x": "many"}\n'}, "application/jsonlines")
    # a number in a text column is the category spelled as byoc.values spells it
    assert list(data.frame["x"]) == ["1", "many"]


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (
            b'{"y": 1, "x": 2}\n{"y": 0, "x": 3} {"y": 1, "x": 4}\n{"y": 0, "x": 5}\n',
            "train/a.jsonl, line 2 holds more than one JSON value (the second from column 18); each line "
            "of JSON Lines holds one whole record; pandas writes it with df.to_json(path, orient='records', "
            "lines=True)",
        ),
        (
            b'{"y": 1, "x": 2}\n{"y": 0,\n "x": 3}\n',
            "train/a.jsonl, line 2 ends inside a JSON value (Expecting property name enclosed in double "
            "quotes): a record written over several lines, as pretty-printed JSON is, is not JSON Lines",
        ),
    ],
    ids=["two_records_on_a_line", "a_record_over_two_lines"],
)
@pytest.mark.parametrize(
    "also", [b"", b'{"y": 1, "x": 6, "d": "2024-01-01"}\n'], ids=["alone", "with_a_date"]
)
def test_a_jsonlines_line_holding_other_than_one_record_fails_whatever_else_the_file_holds(
    tmp_path, body, said, also
):
    """pyarrow reads two records on a line as two rows and a record over several lines as one, the
    line-by-line reader (and serving) refuses both: so such a file trained, unless a date, a line
    of null or a large integer anywhere else in it sent it to that reader, when it failed with
    "not valid JSON (Extra data: line 1 column 18 (char 17))".  Now it fails either way, naming
    the line and the fix, as batch transform would fail on such lines."""
    error = expect_error(tmp_path, {"a.jsonl": body + also}, "application/jsonlines")
    assert error.code == "bad_jsonlines"
    assert error.message.startswith(said), error.message


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"y": 1},\n', "train/a.jsonl, line 1: not valid JSON: ',' follows its value, from column 9"),
        (
            b'{"y": 0}\n    {"y": 1} {"y": 2}\n',
            "train/a.jsonl, line 2 holds more than one JSON value (the second from column 14)",
        ),
        (
            b'\xef\xbb\xbf{"y": 1} {"y": 2}\n',
            "train/a.jsonl, line 1 holds more than one JSON value (the second from column 10)",
        ),
        (
            b'{"y": 1}\r{"y": 2}\r',
            "train/a.jsonl, line 1: not valid JSON (Extra data), and it holds a carriage return (CR)",
        ),
        (
            b'{"y": 1}\n{"y": 2, "x": 3',
            "train/a.jsonl, line 2, the file's last, ends inside a JSON value (Expecting ',' delimiter): was the file cut short?",
        ),
        (
            b'[{"y": 1},\n{"y": 2}]\n',
            "train/a.jsonl, line 1 starts a JSON array of objects, one JSON document",
        ),
        (b'{"y": 1 2}\n', "train/a.jsonl, line 1: not valid JSON (Expecting ',' delimiter, column 9)"),
    ],
    ids=[
        "text_after_the_value",
        "indented",
        "after_a_mark",
        "cr_line_ends",
        "cut_short",
        "array_over_lines",
        "other",
    ],
)
def test_a_line_that_is_not_one_json_value_is_told_what_it_holds(tmp_path, body, said):
    """Each was "not valid JSON (Extra data: line 1 column 9 (char 8))" or a pretty-printing hint:
    a comma after a record is not a second record, a column counts the line's own indent (and not
    a byte order mark), CR line ends are named as such, a last line cut short is not
    pretty-printing, and a JSON array of records over several lines is named as one."""
    error = expect_error(tmp_path, {"a.jsonl": body}, "application/jsonlines")
    assert error.message.startswith(said), error.message


BOM = codecs.BOM_UTF8


@pytest.mark.parametrize(
    "body",
    [
        BOM + b'{"y": 1, "d": "2024-01-01"}\n{"y": 0, "d": "2024-02-01"}\n',  # read line by line (dates)
        b'{"y": 1, "d": "2024-01-01"}\n' + BOM + b'{"y": 0, "d": "2024-02-01"}\n',  # files joined by cat
        b'{"y": 1, "d": "a"}\n' + BOM + b'{"y": 0, "d": "b"}\n',  # pyarrow refuses the mark there
    ],
    ids=["file_start_read_by_line", "later_line_read_by_line", "later_line_refused_by_pyarrow"],
)
def test_a_byte_order_mark_starting_a_jsonlines_line_is_read_past_as_serving_reads_it(tmp_path, body):
    """pyarrow reads past the mark at a file's start; the line-by-line reader (which a date, a
    line of null or an integer past int64 anywhere in the file sends a file to) called that same
    line 1 "not valid JSON (Expecting value ...)", about a character no editor shows.  Serving's
    JSON Lines (json.loads of each line's bytes) reads past a mark starting any line: training
    now reads the same lines to the same values."""
    from byoc.artifact import Feature
    from byoc.serving.codecs import jsonlines as jsonlines_codec
    from byoc.serving.schema import RequestSchema

    data = read(tmp_path, {"a.jsonl": body}, "application/jsonlines")
    assert list(data.frame["y"]) == [1, 0]
    assert [str(v) for v in data.frame["d"]] in (["2024-01-01", "2024-02-01"], ["a", "b"])
    schema = RequestSchema([Feature("y", "numeric", "float"), Feature("d", "categorical", "str")])
    served = jsonlines_codec.decode(body, schema)
    assert list(served.columns[0]) == [1.0, 0.0]
    assert [str(v) for v in served.columns[1]] == [str(v) for v in data.frame["d"]]


# -- value semantics (byoc.values) in every reader -----------------------------------------------

HOSTILE = pd.DataFrame(
    {
        "y": ["a", "b", "a", "b", "a", "b"],
        "word": ["None", "NA", "<NA>", "null", "NaN", "admin"],
        "number_words": ["1", "NA", "null", "None", "", "2"],
        "flag": [True, False, None, True, False, True],
        "text_flag": ["TRUE", " false ", "True", "", "FALSE", "true"],
        "number_text": ["007", "1e3", " 2.0 ", "", ".5", "-3"],
    }
)


@pytest.mark.parametrize("kind", ["csv", "parquet", "jsonlines"])
def test_every_reader_applies_the_same_value_rules(tmp_path, kind):
    files = {
        "csv": ({"a.csv": csv_bytes(HOSTILE, target=None, header=True)}, None),
        "parquet": ({"a.parquet": parquet_bytes(HOSTILE)}, "application/x-parquet"),
        "jsonlines": ({"a.jsonl": jsonlines_bytes(HOSTILE)}, "application/jsonlines"),
    }[kind]
    frame = read(tmp_path, *files).frame
    nan = float("nan")
    got = {c: [v if isinstance(v, str) else (None if v != v else v) for v in frame[c]] for c in frame}
    assert got["word"] == ["None", "NA", "<NA>", "null", "NaN", "admin"]  # text column: words are data
    assert frame["number_words"].dtype == np.float64  # numeric column: the words are missing
    np.testing.assert_array_equal(frame["number_words"].to_numpy(), [1.0, nan, nan, nan, nan, 2.0])
    assert got["flag"] == ["true", "false", None, "true", "false", "true"]
    assert got["text_flag"] == ["true", "false", "true", None, "false", "true"]
    assert frame["number_text"].dtype == np.float64
    np.testing.assert_array_equal(frame["number_text"].to_numpy(), [7.0, 1000.0, 2.0, nan, 0.5, -3.0])


def test_jsonlines_dates_stay_the_text_written(tmp_path):
    data = read(
        tmp_path,
        {"a.jsonl": b'{"y": 1, "d": "2024-01-01"}\n{"y": 0, "d": "2024-02-01"}\n'},
        "application/jsonlines",
    )
    assert list(data.frame["d"]) == ["2024-01-01", "2024-02-01"]


# -- LibSVM --------------------------------------------------------------------------------------


def test_libsvm_one_based_indices_become_columns(tmp_path):
    data = read(tmp_path, {"a.txt": b"1 1:0.5 3:2\n0 2:1\n", "b.txt": b"1 4:7\n"}, "text/libsvm")
    assert not data.has_header
    assert list(data.frame.columns) == ["0", "1", "2", "3", "4"]
    assert data.frame.to_numpy().tolist() == [[1, 0.5, 0, 2, 0], [0, 0, 1, 0, 0], [1, 0, 0, 0, 7]]


def read_like(tmp_path: Path, files: dict, like):
    """An evaluation channel read as training reads one: laid out like the train channel."""
    root = make_ml_root(
        tmp_path / "ml", channels={"validation": files}, content_types={"validation": "text/libsvm"}
    )
    return read_channel(env_for(root), "validation", typed=False, like=like)


def test_libsvm_evaluation_channel_takes_the_train_channels_width(tmp_path):
    """libsvm leaves zeros out: a validation file that never mentions feature 4 is valid."""
    train = read(tmp_path / "train", {"a.txt": b"1 1:0.5 3:2\n0 4:7\n"}, "text/libsvm")
    assert train.layout == SparseLayout(first_index=1, features=4)
    validation = read_like(tmp_path / "v", {"v.txt": b"0 2:1\n1 1:3\n"}, train.layout)
    assert list(validation.frame.columns) == ["0", "1", "2", "3", "4"]
    assert validation.frame.to_numpy().tolist() == [[0, 0, 1, 0, 0], [1, 3, 0, 0, 0]]
    assert validation.layout == train.layout


def test_libsvm_evaluation_channel_without_index_0_follows_a_zero_based_train_channel(tmp_path):
    """Read on its own, the validation file below looks 1-based: its 1:3 would be the train
    channel's feature 0 (one column to the left)."""
    train = read(tmp_path / "train", {"a.txt": b"1 0:0.5 2:2\n0 3:7\n"}, "text/libsvm")
    assert train.layout == SparseLayout(first_index=0, features=4)
    validation = read_like(tmp_path / "v", {"v.txt": b"1 1:3\n"}, train.layout)
    assert validation.frame.to_numpy().tolist() == [[1, 0, 3, 0, 0]]


@pytest.mark.parametrize(
    "body, message",
    [
        (
            b"0 1:1\n1 2:1 5:0.5\n",
            "validation/v.txt, row 2: feature index 5 of channel 'validation' is beyond the train "
            "channel's highest feature index, 4; the model has no such feature",
        ),
        (b"0 2:1 9:0\n", "validation/v.txt, row 1: feature index 9"),  # an explicit zero: still unknown
        (
            b"0 1:1\n0 0:1\n",
            "validation/v.txt, row 2: feature index 0 of channel 'validation' is not one of the train "
            "channel's, whose feature indices start at 1",
        ),
    ],
)
def test_libsvm_evaluation_index_the_train_channel_lacks_is_refused(tmp_path, body, message):
    from byoc.errors import SchemaError

    with pytest.raises(SchemaError) as info:
        read_like(tmp_path, {"v.txt": body}, SparseLayout(first_index=1, features=4))
    assert info.value.message.startswith(message)


def test_libsvm_garbage(tmp_path):
    error = expect_error(tmp_path, {"a.txt": b"1 1:0.5\nnot libsvm at all\n"}, "text/x-libsvm")
    assert error.code == "bad_libsvm" and "train/a.txt" in error.message


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"0 2:1 2:3\n", "feature index 2 does not increase"),
        (b"0 3:1 2:3\n", "feature index 2 does not increase"),
    ],
    ids=["repeated", "decreasing"],
)
def test_a_libsvm_line_whose_indices_repeat_or_fall_is_named_by_its_line(tmp_path, line, problem):
    """scikit-learn's parser refuses a repeated index as it does a falling one ("should be sorted and
    unique") but names no line: the message names the line and the index, for both."""
    error = expect_error(tmp_path, {"a.txt": b"1 1:1 2:2\n" * 2 + line}, "text/libsvm")
    assert error.code == "bad_libsvm"
    assert f"train/a.txt, line 3: {problem}" in error.message


LIBSVM_NUMBER = st.from_regex(r"[+-]?[0-9_]{1,5}(\.[0-9_]{0,3})?([eE][+-]?[0-9_]{1,3})?", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(st.one_of(LIBSVM_NUMBER, st.sampled_from(["1_000", "1_0", "0.5_5", "1e1_0"])), st.booleans())
def test_libsvm_reads_a_number_as_the_endpoint_does_underscores_refused(tmp_path_factory, token, as_label):
    """A libsvm value or label and the same text in a request (``byoc.values``, which the
    endpoint reads a numeric feature by) are one number, or refused by both: scikit-learn's parser
    reads tokens with Python's float, which took ``1_000`` as 1000 and the label ``1_0`` as 10."""
    tmp_path = tmp_path_factory.mktemp("libsvm")
    line = f"{token} 1:2\n" if as_label else f"1 1:{token}\n"
    expected = values.number_text(token)
    if expected is None or abs(expected) == float("inf"):  # not a number for the endpoint
        if "_" in token:  # scikit-learn's parser takes float()'s other numbers (nan, inf) as ever
            assert expect_error(tmp_path, {"a.txt": line.encode()}, "text/libsvm").code == "bad_libsvm"
        return
    frame = read(tmp_path, {"a.txt": line.encode()}, "text/libsvm").frame
    assert frame.iloc[0, 0 if as_label else 1] == expected


def test_an_underscore_in_a_libsvm_comment_is_read(tmp_path):
    frame = read(tmp_path, {"a.txt": b"1 1:2 # row_id 7\n"}, "text/libsvm").frame
    assert frame.iloc[0].tolist() == [1.0, 2.0]


# -- Pipe mode -----------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_pipe_mode_reads_a_real_fifo(tmp_path, compress):
    payload = csv_bytes(pd.concat([FRAME] * 5000), target="label")  # ~ 300 kB: several writes
    files = {"part": gzip_bytes(payload) if compress else payload}
    root = make_ml_root(tmp_path, channels={"train": files}, input_mode="Pipe")
    assert not (root / "input" / "data" / "train").exists()
    with pipe_feeders(root, {"train": files}):
        data = read_channel(env_for(root), "train")
    assert len(data.frame) == 20000 and data.files == (str(root / "input/data/train_0"),)


def test_pipe_mode_missing_fifo(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "FIFO_WAIT_SECONDS", 0.3)
    root = make_ml_root(tmp_path, channels={"train": {"x": b"1"}}, input_mode="Pipe")
    with pytest.raises(DataError) as info:
        read_channel(env_for(root), "train")
    assert info.value.code == "missing_channel"
    assert info.value.message.startswith(
        f"channel 'train' is in Pipe mode but {root}/input/data/train_0 did not appear in 0 s"
    )


def test_pipe_mode_fifo_created_after_train_starts_is_waited_for(tmp_path):
    """SageMaker creates a Pipe channel's FIFO while the job runs; one that appeared a moment after
    train looked for it failed the job ('does not exist') where AWS's own Pipe reader waits 120 s."""
    payload = csv_bytes(pd.concat([FRAME] * 50), target="label")
    root = make_ml_root(tmp_path, channels={"train": {"part": payload}}, input_mode="Pipe")
    fifo = root / "input" / "data" / "train_0"

    def late_writer() -> None:
        time.sleep(1.5)
        os.mkfifo(fifo)
        with open(fifo, "wb") as fh:
            fh.write(payload)

    writer = threading.Thread(target=late_writer, daemon=True)
    writer.start()
    data = read_channel(env_for(root), "train")
    writer.join(timeout=10)
    assert len(data.frame) == 200 and data.files == (str(fifo),)


def test_quoted_newline_beyond_the_sniffed_sample(tmp_path):
    rows = "".join(f"{i % 2},{i},plain\n" for i in range(8000))  # > 64 kB without any quote
    data = read(tmp_path, {"a.csv": rows + '1,8000,"two\nlines"\n0,8001,end\n'})
    assert len(data.frame) == 8002
    assert data.frame["2"].iloc[-2] == "two\nlines"


def test_blank_header_cells_are_named_by_position(tmp_path):
    data = read(tmp_path, {"a.csv": ",label,x\na,yes,1.5\na,no,2.5\nb,no,2\n"})
    assert data.has_header and list(data.frame.columns) == ["column_0", "label", "x"]


@pytest.mark.parametrize(
    "text",
    [
        ",label,x\n0,yes,1.5\n1,no,2.5\n2,no,2\n",  # pandas' df.to_csv(path)
        ",label,x\n17,yes,1.5\n3,no,2.5\n9,no,2\n",  # ... after train_test_split
        '"","label","x"\n"1","yes",1.5\n"2","no",2.5\n"3","no",2\n',  # R's write.csv
    ],
)
def test_row_labels_with_a_blank_header_cell_are_refused(tmp_path, text):
    error = expect_error(tmp_path, {"a.csv": text})
    assert error.code == "index_column"
    assert error.message.startswith("train/a.csv: column 0 has no name in the header row")
    assert "df.to_csv(path, index=False)" in error.message


def test_pipe_mode_recordio_records_are_read_as_files(tmp_path):
    """RecordWrapperType RecordIO: SageMaker wraps each object in a record; each record is read as
    a file of its own (the NUL bytes of the framing were blamed on the data)."""
    header = "label,age,job\n"
    objects = {
        "a.csv": recordio_record(header + "yes,1.5,admin\nno,2,x"),  # no final newline; padded
        "b.csv.gz": recordio_record(gzip_bytes(header + "no,3,services\n")),  # gzip inside a record
        "c.csv": recordio_record(b""),  # an empty object: skipped as an empty file is
        "d.csv": recordio_record(header + "yes,4,y\n"),
    }
    root = make_ml_root(
        tmp_path, channels={"train": objects}, input_mode="Pipe", record_wrappers={"train": "RecordIO"}
    )
    with pipe_feeders(root, {"train": objects}):
        data = read_channel(env_for(root), "train")
    fifo = root / "input/data/train_0"
    assert data.files == tuple(f"{fifo} (RecordIO record {n})" for n in (1, 2, 4))
    assert data.has_header and data.frame.to_numpy().tolist() == [
        ["yes", 1.5, "admin"],
        ["no", 2.0, "x"],
        ["no", 3.0, "services"],
        ["yes", 4.0, "y"],
    ]
    assert data.locate(2) == f"{fifo} (RecordIO record 2), row 1"


def test_recordio_record_split_where_its_payload_held_the_magic_is_joined():
    from byoc.data.sources import Source, recordio_sources

    parts = [b"yes,1\n", b"ab", b"no,2\n"]  # the writer cut the payload at two copies of the magic
    stream = b"".join(recordio_record(part, flag) for part, flag in zip(parts, (1, 2, 3), strict=True))
    (source,) = recordio_sources("train", Source(name="train_0", data=stream + recordio_record("")))[:1]
    assert source.data == RECORDIO_MAGIC.join(parts)


@pytest.mark.parametrize(
    "stream, message",
    [
        (
            b"yes,1\nno,2\n",
            "channel 'train' has RecordWrapperType RecordIO, but train_0, byte 0 (RecordIO record 1) "
            "does not start with a RecordIO record header (magic 0xced7230a); SageMaker wraps every "
            "object of a RecordIO channel, so these objects are not wrapped: set the channel's "
            "RecordWrapperType to None",
        ),
        (
            recordio_record("yes,1\n") + b"no,2\n",
            "channel 'train' has RecordWrapperType RecordIO, but train_0, byte 16 (RecordIO record 2) "
            "is not a RecordIO record header (magic 0xced7230a); the stream is cut or corrupt",
        ),
        (
            recordio_record("yes,1\nno,2\n")[:12],
            "channel 'train': train_0, byte 0 (RecordIO record 1): a record header of 11 bytes, but the "
            "stream ends after 4 (flag sequence 0 (whole record))",
        ),
        (
            recordio_record("yes,1\n") + recordio_record("no,2\n", flag=1) + recordio_record("ab", flag=2),
            "channel 'train': train_0, byte 16 (RecordIO record 2): the first part of a record that the "
            "stream ends inside (no last part) (flag sequence 1 (first part), 2 (middle part))",
        ),
        (
            recordio_record("yes,1\n", flag=1) + recordio_record("ab", flag=2) + recordio_record("no,2\n"),
            "channel 'train': train_0, byte 28: a whole record (flag 0) after the first part at byte 0, which "
            "no last part ended (flag sequence 1 (first part), 2 (middle part), 0 (whole record))",
        ),
        (
            recordio_record("yes,1\n", flag=1) + recordio_record("no,2\n", flag=7),
            "channel 'train': train_0, byte 16: a record header with the unknown flag 7 (RecordIO's are 0 "
            "to 3) (flag sequence 1 (first part), 7 (unknown))",
        ),
    ],
)
def test_recordio_stream_that_is_not_recordio_names_the_channel_and_the_fix(stream, message):
    from byoc.data.sources import Source, recordio_sources

    with pytest.raises(DataError) as info:
        recordio_sources("train", Source(name="train_0", data=stream))
    assert info.value.code == "bad_recordio" and info.value.message.startswith(message)


def test_unknown_record_wrapper_type_is_refused():
    from byoc.environment import ChannelConfig
    from byoc.errors import ConfigError

    assert ChannelConfig.from_dict("train", {"RecordWrapperType": "RecordIO"}).recordio
    assert not ChannelConfig.from_dict("train", {"RecordWrapperType": "None"}).recordio
    with pytest.raises(ConfigError, match="channel 'train' has RecordWrapperType \"Protobuf\"; use None"):
        ChannelConfig.from_dict("train", {"RecordWrapperType": "Protobuf"})


def test_recordio_in_file_mode_unwraps_only_wrapped_files(tmp_path, caplog):
    """SageMaker documents RecordWrapperType as Pipe mode's; in File mode a file that starts with
    a record is unwrapped all the same, the others read as they are, and the log says so."""
    files = {"a.csv": recordio_record("yes,1\nno,2\n"), "b.csv": "yes,3\n"}
    root = make_ml_root(tmp_path, channels={"train": files}, record_wrappers={"train": "RecordIO"})
    data = read_channel(env_for(root), "train")
    assert data.files == ("train/a.csv (RecordIO record 1)", "train/b.csv")
    assert data.frame.to_numpy().tolist() == [["yes", 1], ["no", 2], ["yes", 3]]
    assert "1 of 2 file(s) start with a RecordIO record and are unwrapped" in caplog.text


def test_a_header_row_on_line_2_after_one_data_row_is_refused_naming_line_2(tmp_path):
    """An object of one data row streamed before one with the header row: line 2, the first line
    after line 1 (which decides the header), is checked as every later line is; it was trained as
    a data row when the check began one line further down."""
    rows = csv_bytes(pd.concat([FRAME.fillna({"age": 1.0, "job": "admin"})] * 20), target="label")
    first = rows.split(b"\n", 1)[0] + b"\n"
    root = make_ml_root(tmp_path, channels={"train": {"all.csv": first + b"label,age,job\n" + rows}})
    with pytest.raises(DataError) as info:
        read_channel(env_for(root), "train")
    assert info.value.code == "mixed_header"
    assert info.value.message.startswith("train/all.csv, line 2: 'label,age,job' is a header row")


def test_pipe_mode_header_files_streamed_back_to_back(tmp_path):
    """SageMaker concatenates every object of the prefix into the FIFO: headers recur."""
    part = csv_bytes(FRAME, target="label", header=True)
    files = {"part-0.csv": part, "part-1.csv": codecs.BOM_UTF8 + part, "part-2.csv": part}
    root = make_ml_root(tmp_path, channels={"train": files}, input_mode="Pipe")
    with pipe_feeders(root, {"train": files}):
        data = read_channel(env_for(root), "train")
    assert data.has_header and list(data.frame.columns) == ["label", "age", "job"]
    assert len(data.frame) == 3 * len(FRAME)
    assert data.frame["age"].dtype == np.float64


@pytest.mark.parametrize("mode", ["Pipe", "File"])
def test_header_row_after_data_rows_is_refused_naming_its_line(tmp_path, mode):
    """An object without a header row streamed before one with it (Pipe mode), or ``cat a.csv
    b.csv`` of such files: line 1 is data, and the header row further down was trained as a data
    row (the label's name a class, every numeric column categories), exit 0."""
    rows = csv_bytes(pd.concat([FRAME.fillna({"age": 1.0, "job": "admin"})] * 20), target="label")
    objects = {"part-0.csv": rows, "part-1.csv": b"label,age,job\n" + rows}
    if mode == "Pipe":
        root = make_ml_root(tmp_path, channels={"train": objects}, input_mode="Pipe")
        with pipe_feeders(root, {"train": objects}), pytest.raises(DataError) as info:
            read_channel(env_for(root), "train")
        name = f"{root}/input/data/train_0"
    else:
        root = make_ml_root(tmp_path, channels={"train": {"all.csv": b"".join(objects.values())}})
        with pytest.raises(DataError) as info:
            read_channel(env_for(root), "train")
        name = "train/all.csv"
    assert info.value.code == "mixed_header"
    assert info.value.message.startswith(
        f"{name}, line 81: 'label,age,job' is a header row (column 1 holds numbers below but 'age' "
        "here), but line 1 is data"
    )
    assert ("Pipe mode streams the channel's S3 objects back to back" in info.value.message) == (
        mode == "Pipe"
    )


def test_data_rows_of_names_in_a_headerless_file_are_read():
    """Rows of text only are data where they are no header row: over text columns, or with a
    missing cell, or a typo among data's clues."""
    text = "".join(f"{i % 2},{i}.5,{'ab'[i % 2]}\n" for i in range(60))
    text += "yes,4o,a\nNA,?,?\nred,na,blue\n"
    source = Source(name="train_0", data=text.encode())
    data = csv_reader.read([source], channel="train", header=None, params={}, typed=False)
    assert not data.has_header and len(data.frame) == 63


@pytest.mark.parametrize("failing", ["first-read", "later-read", "arrow-read"])
def test_fastfile_read_failing_with_an_io_error_names_the_file_and_the_mount(tmp_path, failing):
    """FastFile mode reads S3 as the job reads a file: an EIO from its mount was told as a
    permission ('give the training user read access'), as corrupt gzip, or (a read after the
    first) as a bug in byoc, exit 2."""
    import pyarrow as pa

    text = "label,age,job\nyes,1,a\nno,2,b\n"
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": text, "b.csv": text}}, input_mode="FastFile")
    real_stream = pa.input_stream
    flaky_open = failing_open("b.csv", 0 if failing == "first-read" else 1)

    def flaky_stream(path, *args, **kwargs):
        if str(path).endswith("b.csv"):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_stream(path, *args, **kwargs)

    with (
        patch("builtins.open", flaky_open if failing != "arrow-read" else open),
        patch("pyarrow.input_stream", flaky_stream),
        pytest.raises(DataError) as info,
    ):
        read_channel(env_for(root), "train")
    assert info.value.code == "read_failed"
    assert info.value.message.startswith(
        "train/b.csv: reading it failed (Input/output error): the file system under the channel did not "
        "deliver it (in FastFile mode SageMaker reads each file from S3 as the job reads it"
    )


@pytest.mark.parametrize("first_gzip", [True, False], ids=["gzip-then-plain", "plain-then-gzip"])
def test_pipe_stream_mixing_gzip_and_uncompressed_objects_names_the_offset_and_the_fix(tmp_path, first_gzip):
    """SageMaker streams the objects back to back: an uncompressed object after a gzip one was told
    as corrupt gzip ('re-compress the file'), a gzip one after an uncompressed one as binary content
    where text/csv was expected ('set ContentType')."""
    header = b"label,age,job\n"
    plain, packed = header + b"yes,1.5,admin\n", gzip_bytes(header + b"no,3,services\n")
    objects = {"a": packed, "b": plain} if first_gzip else {"a": plain, "b": packed}
    root = make_ml_root(tmp_path, channels={"train": objects}, input_mode="Pipe")
    with pipe_feeders(root, {"train": objects}), pytest.raises(DataError) as info:
        read_channel(env_for(root), "train")
    what = (
        f"byte {len(packed)}: not gzip data, after 1 gzip-compressed object(s)"
        if first_gzip
        else f"byte {len(plain)}: gzip data, after uncompressed data"
    )
    assert info.value.code == "mixed_compression"
    assert info.value.message == (
        f"{root}/input/data/train_0, {what}; channel 'train' is in Pipe mode, where SageMaker streams the "
        "S3 objects back to back: compress every object under the prefix with gzip, or none of them (or set "
        "the channel's RecordWrapperType to RecordIO, or use File mode, where each object is read on its own)"
    )


def test_pipe_stream_of_gzip_objects_zero_padded_is_read_whole(tmp_path):
    header = b"label,age,job\n"
    objects = {
        "a": gzip_bytes(header + b"yes,1.5,admin\n") + b"\0" * 7,
        "b": gzip_bytes(header + b"no,3,services\n"),
    }
    root = make_ml_root(tmp_path, channels={"train": objects}, input_mode="Pipe")
    with pipe_feeders(root, {"train": objects}):
        data = read_channel(env_for(root), "train")
    assert data.frame.to_numpy().tolist() == [["yes", 1.5, "admin"], ["no", 3.0, "services"]]


def test_plain_types_makes_one_table_of_plain_fields_keeping_the_tables_metadata():
    """plain_types builds its table once (set_column per column was quadratic in the columns:
    0.85 s for 2,000), with what set_column gave: every field plain (no field metadata,
    nullable), each column's chunks as they were, the table's metadata kept."""
    import pyarrow as pa

    from byoc.data.tabular import plain_types

    batch = pa.record_batch(
        [pa.array([1.5, 2.0]), pa.array([True, None]), pa.array(["a", "b"]).dictionary_encode()],
        schema=pa.schema(
            [
                pa.field("x", pa.float64(), nullable=False, metadata={"k": "v"}),
                pa.field("flag", pa.bool_(), metadata={"k": "v"}),
                pa.field("word", pa.dictionary(pa.int32(), pa.string())),
            ],
            metadata={b"pandas": b"{}"},
        ),
    )
    out = plain_types(pa.Table.from_batches([batch, batch]))
    assert out.schema == pa.schema(
        [("x", pa.float64()), ("flag", pa.string()), ("word", pa.string())], metadata={b"pandas": b"{}"}
    )
    assert out.schema.metadata == {b"pandas": b"{}"}
    assert [f.metadata for f in out.schema] == [None, None, None] and all(f.nullable for f in out.schema)
    assert out.to_pydict() == {
        "x": [1.5, 2.0, 1.5, 2.0],
        "flag": ["true", None, "true", None],
        "word": ["a", "b", "a", "b"],
    }
    assert [c.num_chunks for c in out.columns] == [2, 2, 2]


def _lines_pyarrow_reads_alike(body: bytes) -> int | None:
    """The scan's rule, line by line on the whole file: the lines holding something, or None when
    one of them starts with anything but a record or row, or a CR ends a line alone."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if re.search(rb"\r(?!\n)", body):
        return None
    held = [line.strip(b" \t\r") for line in body.split(b"\n")]
    if any(line[:1] not in (b"{", b"[") for line in held if line):
        return None
    return sum(map(bool, held))


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(
        st.sampled_from(
            [
                '{"y": 1}',
                "null",
                " null\r",
                "nul",
                "nulls",
                '{"y": null}',
                "",
                "  ",
                " \r",
                "[null]",
                "x" * 9,
                "null,",
                '  {"y": 2}',
                "\r",
                '{"y": 1}\r',
                "{",
                "}",
                '"y": 1}',
                '{"y": 1} {"y": 2}',
                "é",
                "\udcff",
            ]
        ),  # fmt: skip
        max_size=12,
    ),
    final_newline=st.booleans(),
    scan_bytes=st.integers(1, 12),
    bom=st.booleans(),
)
def test_the_scan_judges_each_line_whole_wherever_its_slices_cut(lines, final_newline, scan_bytes, bom):
    """pyarrow reads a line of null as a record of missing values, crashes the job when one (or
    ``null,``, ``null {...}``) starts a block, reads a record over several lines as one and ends
    lines at a lone CR: so the reader scans the file first, in slices, and sends any line that
    starts with no record or row, and any lone CR, to the line-by-line reader.  A line cut by a
    slice's end, or longer than a slice, is judged whole, as the file split into lines judges it;
    the same scan counts the lines that hold something (the rows pyarrow must read).  A byte
    order mark starting the file is read past, as pyarrow reads past it: a null line after it
    crashed the process (SIGSEGV) when the scan took the line for something else."""
    body = ("\n".join(lines) + ("\n" if final_newline else "")).encode("utf-8", "surrogateescape")
    expected = _lines_pyarrow_reads_alike(body)
    body = (codecs.BOM_UTF8 if bom else b"") + body
    with patch.object(jsonlines_reader, "SCAN_BYTES", scan_bytes):
        assert jsonlines_reader._lines_for_pyarrow(Source("a.jsonl", data=body)) == expected


@pytest.mark.parametrize("line", [b"null", b"3", b'"text"', b"false", b"[1, 2]"])
def test_a_jsonlines_line_that_is_no_record_is_said_alike_in_training_and_serving(tmp_path, line):
    """Training named a line of a number "a number where a JSON object like the lines before it is
    expected" (and passed a line of null as missing data), serving "line 2 of the JSON Lines body
    is a number; each line must be a row (list) or a record (object)": one message
    (byoc.json_objects), after where the line is."""
    from byoc.artifact import Feature
    from byoc.serving.codecs import jsonlines as jsonlines_codec
    from byoc.serving.schema import RequestSchema

    body = b'{"y": 1, "x": 2}\n' + line + b"\n"
    trained = expect_error(tmp_path, {"a.jsonl": body}, "application/jsonlines")
    with pytest.raises(DataError) as served:
        jsonlines_codec.decode(body, RequestSchema([Feature("x", "numeric", "float")]))
    assert trained.message.startswith("train/a.jsonl, line 2 holds ")
    assert served.value.message.startswith("line 2 of the JSON Lines body holds ")
    assert trained.message.split(" holds ", 1)[1] == served.value.message.split(" holds ", 1)[1]
