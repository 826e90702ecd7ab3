"""byoc.data.sniff: files read as CSV that are plainly another format are named as such; CSV
that merely resembles one is not."""

from __future__ import annotations

import bz2
import codecs
import lzma

import pytest

from byoc.data import sniff

CSV = "yes,1,2.5,red\nno,2,3.5,blue\n"


@pytest.mark.parametrize(
    "head, code, what",
    [
        (b"PAR1\x15\x04", "not_text", "Parquet"),
        (b"PK\x03\x04\x14\x00", "archive", "ZIP"),
        (b"a.csv".ljust(257, b"\x00") + b"ustar\x0000", "archive", "tar"),
        (bz2.compress(CSV.encode()), "compression", "bzip2"),
        (lzma.compress(CSV.encode()), "compression", "xz"),
        (CSV.encode("utf-16"), "not_utf8", "UTF-16"),
        (CSV.encode("utf-16-le"), "not_utf8", "UTF-16"),
        (CSV.encode("utf-32"), "not_utf8", "UTF-32"),
    ],
)
def test_binary_formats_by_magic(head, code, what):
    found = sniff.binary(head)
    assert found is not None and found.code == code and what in found.what


@pytest.mark.parametrize("head", [CSV.encode(), codecs.BOM_UTF8 + CSV.encode(), b"BZh,1\nBZi,2\n", b""])
def test_text_is_not_binary(head):
    assert sniff.binary(head) is None


@pytest.mark.parametrize(
    "lines, code",
    [
        (['{"y": "no", "x": 1}', '{"y": "yes", "x": 2}'], "jsonlines_as_csv"),
        (['[{"y":"no","x":1},{"y":"yes","x":2}]'], "json_as_csv"),
        (["[", '  {"y": "no"}', "]"], "json_as_csv"),
        (['[{"prefix": "s3://bucket/data/"}, "a.csv", "b/c.csv"]'], "manifest_as_data"),
        (["[", '  {"prefix": "s3://bucket/data/"},', '  "a.csv"', "]"], "manifest_as_data"),
        (['[{"prefix": "data/"}, "a.csv"]'], "json_as_csv"),
        (["1 1:0.5 3:2", "0 2:1", "1 qid:3 1:1"], "libsvm_as_csv"),
        (["0.0e+00 1.5e+00 2", "1.0e+00 2.5e+00 3"], "wrong_delimiter"),
        (["y x1 x2", "0 1.5 2", "1 2.5 3"], "wrong_delimiter"),
    ],
)
def test_text_formats_that_are_not_csv(lines, code):
    found = sniff.text(lines)
    assert found is not None and found.code == code


@pytest.mark.parametrize(
    "lines",
    [
        CSV.splitlines(),
        ["label,x", "yes,1", "no,2"],
        ["1", "2", "3"],  # one numeric column
        ["new york", "los angeles"],  # one text column with spaces
        ['yes,"{""a"": 1}"', 'no,"{""a"": 2}"'],  # a JSON column, quoted
        ["12:30 1", "13:45 2"],  # times: no number label
        ["{note} a", "b"],
    ],
)
def test_csv_is_not_another_format(lines):
    assert sniff.text(lines) is None
