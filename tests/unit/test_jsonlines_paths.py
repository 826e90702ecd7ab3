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
    ["", "  ", "\r", "null", '{"y": 1} {"y": 2}', '{"y": 1,', '"y": 2}', "7", "\ufeffnull", '\ufeff{"y": 1}']
)


def _json(value: object) -> str:
    return value[1] if isinstance(value, tuple) else json.dumps(value, ensure_ascii=False)


def _line(record: dict[str, object]) -> str:
    return "{" + ", ".join(f"{json.dumps(key)}: {_json(value)}" for key, value in record.items()) + "}"


def _read(body: bytes, *, line_by_line: bool) -> tuple[str, object]:
    source = Source("a.jsonl", data=body)
    try:
        if line_by_line:
            with patch.object(jsonlines_reader, "_lines_for_pyarrow", lambda _: None):
                read = jsonlines_reader.read([source], channel="train", header=None, params={})
        else:
            read = jsonlines_reader.read([source], channel="train", header=None, params={})
    except DataError as exc:
        return "error", exc.message
    return "frame", read.frame


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    records=st.lists(RECORDS, min_size=1, max_size=6),
    odd=st.lists(st.tuples(st.integers(0, 6), ODD_LINES), max_size=2),
    bom=st.booleans(),
    final_newline=st.booleans(),
)
def test_pyarrow_and_the_line_by_line_reader_read_every_file_alike(records, odd, bom, final_newline):
    lines = [_line(record) for record in records]
    for at, line in odd:
        lines.insert(at, line)
    body = ("\ufeff" if bom else "") + "\n".join(lines) + ("\n" if final_newline else "")
    whole = _read(body.encode(), line_by_line=False)
    by_line = _read(body.encode(), line_by_line=True)
    assert whole[0] == by_line[0], (body, whole, by_line)
    if whole[0] == "error":
        assert whole[1] == by_line[1]
    else:
        pd.testing.assert_frame_equal(whole[1], by_line[1], check_exact=True)
