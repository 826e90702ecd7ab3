"""Training's JSON Lines reader has two paths: pyarrow.json reads most files whole, and a file it
might misread (a line of null, bytes that are not UTF-8, dates, integers past 2**53, nested
values, a record that is not one line) goes line by line through the json module.  Which path a
file takes depends on anything anywhere in it, so the two must give the same frame, or the
same error, for every file: otherwise one line added at the end changes how every other line
is read.  (A file starting with a byte order mark and a line of null crashed pyarrow, and so
training, with SIGSEGV: the first thing this test found.)"""

from __future__ import annotations

import json
from unittest.mock import patch

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byoc.data import jsonlines_reader
from byoc.data.sources import Source
from byoc.errors import DataError

# Values as JSON text, written as they are: spellings json.dumps would not choose
RAW = [
    "1.0", "1E5", "-0.0", "1e400", "1.50", "-1e-400", "0.1", "1e-7",
    "123456789012345678901234567890", "9007199254740993", "9223372036854775809",
    "[1]", '{"z": 1}', '"\\u00e9"', '"\\ud83d\\ude00"', '"a\\tb"',
]  # fmt: skip
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            " ",
            "None",
            "NA",
            "null",
            "true",
            "FALSE",
            "007",
            "1e3",
            " 2.0 ",
            "2024-01-01",
            "2024-01-01T10:00:00",
            "12:30:00",
            "a,b",
            'q"t',
            "é",
            "\u2028",
            "x\ny",
            "-0",
            "NaN",
        ]
    ),  # fmt: skip
    st.text(max_size=4),
    st.sampled_from(RAW).map(lambda raw: ("raw", raw)),
)
RECORDS = st.dictionaries(st.sampled_from(["y", "a", "b", "c"]), VALUES, min_size=1, max_size=4)
# Lines other than one record: each makes either path fail (the same way) or is skipped
ODD_LINES = st.sampled_from(
    ["", "  ", "\r", "\t", " \r ", "\x0c", "\x00", "\ufeff", "\u00a0", "null", "null,", "  null", "7", "NaN",
     "\ufeffnull", '\ufeff{"y": 1}', '{"y": 1} {"y": 2}', '{"a": 3}{"a": 4}', '{"y": 1},', '{"y": 1}\x00',
     '{"a": 1}\r{"a": 2}', '{"y": 1}\r', "{", "}", '{"y": 1,', '"y": 2}', '{"a":', "3}", '{"y": [1,', "2]}",
     '{"y": "a', '{"y": NaN}', '{"y": Infinity}', '{"y": 1, "y": 2}', '[{"y": 1},', '{"y": 2}]', "[1]"]
)  # fmt: skip
# Pieces of lines, so that records run over lines and share them in every combination
PIECES = st.sampled_from(
    ['{"y":', "1}", '1} {"y": 2}', '{"y": 1} {"y": 2}', '{"y": 1,', '"x": 2}', '{"y": 1}', '{"x": 3, "y": 0}',
     '{"y": 1}{"y": 2}', "", " ", "\r", "{", '"y": 3}', "}", '"y": 1} {"y":', "[1, 2]", "[1,", "2]",
     '{"y": 1}\r{"y": 2}', "\ufeff", '\ufeff{"y": 5}', '{"y": "2024-01-01"}', '{"y": 9223372036854775809}']
)  # fmt: skip


def _json(value: object) -> str:
    return value[1] if isinstance(value, tuple) else json.dumps(value, ensure_ascii=False)


def _line(record: dict[str, object]) -> str:
    return "{" + ", ".join(f"{json.dumps(key)}: {_json(value)}" for key, value in record.items()) + "}"


def _read(
    body: bytes, *, line_by_line: bool, scan_bytes: int = jsonlines_reader.SCAN_BYTES
) -> tuple[str, object]:
    source = Source("a.jsonl", data=body)
    try:
        if line_by_line:
            with patch.object(jsonlines_reader, "_lines_for_pyarrow", lambda _: None):
                read = jsonlines_reader.read([source], channel="train", header=None, params={})
        else:
            with patch.object(jsonlines_reader, "SCAN_BYTES", scan_bytes):
                read = jsonlines_reader.read([source], channel="train", header=None, params={})
    except DataError as exc:
        return "error", exc.message
    return "frame", read.frame


def _assert_read_alike(body: bytes, scan_bytes: int) -> None:
    whole = _read(body, line_by_line=False, scan_bytes=scan_bytes)
    by_line = _read(body, line_by_line=True)
    assert whole[0] == by_line[0], (body, whole, by_line)
    if whole[0] == "error":
        assert whole[1] == by_line[1]
    else:
        pd.testing.assert_frame_equal(whole[1], by_line[1], check_exact=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(RECORDS, min_size=1, max_size=6),
    odd=st.lists(st.tuples(st.integers(0, 6), ODD_LINES), max_size=3),
    end=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    final_newline=st.booleans(),
    scan_bytes=st.sampled_from([7, 23, jsonlines_reader.SCAN_BYTES]),
)
def test_pyarrow_and_the_line_by_line_reader_read_every_file_alike(
    records, odd, end, bom, final_newline, scan_bytes
):
    lines = [_line(record) for record in records]
    for at, line in odd:
        lines.insert(at, line)
    body = ("\ufeff" if bom else "") + end.join(lines) + (end if final_newline else "")
    _assert_read_alike(body.encode(), scan_bytes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pieces=st.lists(PIECES, min_size=1, max_size=7),
    end=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    final_newline=st.booleans(),
    scan_bytes=st.integers(1, 30),
)
def test_records_over_and_sharing_lines_are_read_alike(pieces, end, bom, final_newline, scan_bytes):
    """A record over two lines and two records on a third gave pyarrow as many rows as lines,
    so it trained on them while the line-by-line reader refused the file."""
    body = ("\ufeff" if bom else "") + end.join(pieces) + (end if final_newline else "")
    _assert_read_alike(body.encode(), scan_bytes)
