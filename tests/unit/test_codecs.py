"""Codec registry, Content-Type/Accept negotiation, each decoder and encoder (pure, in-process)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from unittest import mock

import numpy as np
import pandas as pd
import pytest

from byoc.artifact import Feature
from byoc.errors import DataError, NotAcceptable, SchemaError, UnsupportedMediaType
from byoc.serving import codecs
from byoc.serving.codecs import csv as csv_codec
from byoc.serving.codecs import json as json_codec
from byoc.serving.output import Prediction
from byoc.serving.schema import RequestSchema
from support import make_ml_root

SCHEMA = RequestSchema(
    [
        Feature("age", "numeric", "float64"),
        Feature("job", "categorical", "str", ("a", "b")),
        Feature("flag", "numeric", "bool"),
    ]
)


def test_registry_is_read_only_and_lists_supported_types():
    assert codecs.supported_content_types() == (
        "text/csv",
        "application/json",
        "application/jsonlines",
        "application/x-npy",
        "application/x-parquet",
    )
    assert codecs.supported_accept_types() == (
        "text/csv",
        "application/json",
        "application/jsonlines",
        "application/x-npy",
    )
    with pytest.raises(TypeError):
        codecs.decoders()["text/plain"] = codecs.decoders()["text/csv"]


@pytest.mark.parametrize(
    "header,media_type",
    [
        ("text/csv", "text/csv"),
        ("Text/CSV; charset=UTF-8", "text/csv"),
        ("text/csv;label_size=0", "text/csv"),
        (None, "application/json"),
        ("", "application/json"),
        ("application/x-jsonlines", "application/jsonlines"),
        ("application/parquet", "application/x-parquet"),
    ],
)
def test_find_decoder_ignores_case_and_harmless_parameters(header, media_type):
    assert codecs.find_decoder(header).media_type == media_type


@pytest.mark.parametrize("header", ["image/png", "text/plain", "text/csv; charset=utf-16"])
def test_unsupported_content_types(header):
    with pytest.raises(UnsupportedMediaType) as info:
        codecs.find_decoder(header)
    assert info.value.status == 415


@pytest.mark.parametrize(
    "accept,request_type,default,chosen",
    [
        (None, "text/csv", None, "text/csv"),
        ("*/*", "application/x-parquet", None, "application/json"),
        ("*/*", "text/csv", "application/jsonlines", "application/jsonlines"),
        (None, "application/json", "text/csv", "text/csv"),
        ("text/csv; charset=utf-8", "application/json", None, "text/csv"),
        ("application/json;q=0.1, text/csv;q=0.9", "application/json", None, "text/csv"),
        ("text/*", "application/json", None, "text/csv"),
        ("application/xml, application/x-npy", "text/csv", None, "application/x-npy"),
    ],
)
def test_choose_encoder(accept, request_type, default, chosen):
    assert codecs.choose_encoder(accept, request_type, default).media_type == chosen


@pytest.mark.parametrize(
    "accept,default,chosen",
    [
        (None, None, "application/json"),
        ("*/*", None, "application/json"),
        ("application/x-npy, application/json;q=0.5", None, "application/json"),
        ("application/x-npy, */*;q=0.1", None, "application/json"),
        ("application/x-npy, text/csv;q=0.5", None, "text/csv"),
        (None, "application/x-npy", "application/json"),
        ("application/x-npy", None, "application/x-npy"),  # npy alone: its own 406 asks for one field
    ],
)
def test_a_format_that_cannot_carry_the_fields_is_passed_over_while_another_is_acceptable(
    accept, default, chosen
):
    """An npy request answered with two fields (SAGEMAKER_INFERENCE_OUTPUT=predicted_label,probability)
    was a 406 "carries one output field" with no Accept or ``*/*``, which promise the request's own
    format only when it can, and with an Accept that also took JSON."""
    assert codecs.choose_encoder(accept, "application/x-npy", default, 2).media_type == chosen
    if accept is None and default is None:  # one field: npy's own format, as before
        assert (
            codecs.choose_encoder(accept, "application/x-npy", default, 1).media_type == "application/x-npy"
        )


@pytest.mark.parametrize(
    "accept,request_type,chosen",
    [
        ("application/x-jsonlines", "application/json", "application/jsonlines"),
        ("application/jsonl; q=0.5, text/csv; q=0.4", "application/json", "application/jsonlines"),
        ("Application/JSON-Lines", "text/csv", "application/jsonlines"),
        ("text/x-csv", "application/json", "text/csv"),
        ("application/csv", "application/json", "text/csv"),
        ("text/json", "text/csv", "application/json"),
        ("*/*", "application/x-jsonlines", "application/jsonlines"),  # a hook's request type, as sent
        (None, "text/x-csv", "text/csv"),
    ],
)
def test_an_accept_names_a_format_by_any_name_its_content_type_may(accept, request_type, chosen):
    """``Accept: application/x-jsonlines`` was a 406 ("use one of ... application/jsonlines") though
    the same name was read as a Content-Type, and a hook's request sent as one answered ``*/*`` in
    JSON rather than in its own format."""
    assert codecs.choose_encoder(accept, request_type).media_type == chosen


def test_a_default_accept_names_a_format_by_any_name_its_content_type_may():
    from byoc.serving.builtin import default_accept
    from byoc.serving.settings import ServingSettings

    settings = ServingSettings.from_environ(
        {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/x-jsonlines"}
    )
    assert default_accept(settings) == "application/jsonlines"


@pytest.mark.parametrize("accept", ["application/parquet", "application/vnd.apache.parquet"])
def test_an_accept_naming_a_request_only_format_is_406_listing_the_answers(accept):
    with pytest.raises(NotAcceptable) as info:
        codecs.choose_encoder(accept, "text/csv")
    assert (
        "use one of text/csv, application/json, application/jsonlines, application/x-npy"
        in info.value.message
    )


@pytest.mark.parametrize("accept", ["application/xml", "image/*"])
def test_not_acceptable(accept):
    """Nothing refused: every answer type is offered, CSV first (a refused one: the test below)."""
    with pytest.raises(NotAcceptable) as info:
        codecs.choose_encoder(accept, "text/csv")
    assert "; use one of text/csv," in info.value.message and info.value.status == 406


@pytest.mark.parametrize(
    ("accept", "offered"),
    [
        ("text/csv;q=0", "; use one of application/json, application/jsonlines, application/x-npy"),
        (
            "text/csv;q=0.000, image/png",
            "; use one of application/json, application/jsonlines, application/x-npy",
        ),
        ("text/*;q=0, application/json;q=0", "; use one of application/jsonlines, application/x-npy"),
        ("application/x-jsonlines;q=0, application/x-npy;q=0, text/*;q=0", "; use one of application/json"),
        ("application/*;q=0, text/csv;q=0, image/png", "; it refuses every type answers come in ("),
        ("*/*;q=0", "; it refuses every type answers come in ("),
        (
            "image/png, text/csv;q=0.5;charset=latin-1",
            "; use one of text/csv, application/json, application/jsonlines, application/x-npy",
        ),
    ],
)
def test_a_406_offers_only_what_the_accept_did_not_refuse(accept, offered):
    """``Accept: text/csv;q=0`` (q=0: "not acceptable", RFC 9110) got a 406 saying "use one of
    text/csv, ...": the type the client had refused.  The most specific range naming a type decides,
    as in choosing the answer; a charset answers are not in refuses nothing."""
    with pytest.raises(NotAcceptable) as info:
        codecs.choose_encoder(accept, "text/csv")
    message = info.value.message
    assert offered in message, message
    if "refuses every type" in offered:
        assert message.endswith(
            "(text/csv, application/json, application/jsonlines, application/x-npy): accept one of them"
        ), message
    else:
        assert message.endswith(offered), message


def test_an_accept_charset_other_than_utf8_is_not_acceptable_unless_another_range_is():
    """``text/csv; charset=latin-1`` was answered in UTF-8, with no charset on the response."""
    with pytest.raises(NotAcceptable) as info:
        codecs.choose_encoder("text/csv; charset=latin-1", "text/csv")
    assert "'latin-1'" in info.value.message and "charset=utf-8" in info.value.message
    assert codecs.choose_encoder(
        "text/csv; charset=latin-1, application/json;q=0.5", "text/csv"
    ).media_type == ("application/json")
    assert codecs.choose_encoder("text/csv; charset=UTF-8", "application/json").media_type == "text/csv"


def _columns(batch):
    return [list(col) for col in batch.columns]


def test_csv_small_and_large_paths_agree():
    line = '41,"a, quoted",true\n,b,0\n7.5,,\n'
    small = csv_codec.decode(line.encode(), SCHEMA)
    large = csv_codec.decode((line * 5000).encode(), SCHEMA)
    assert len(large) == 15000
    for got, want in zip(_columns(large), _columns(small), strict=True):
        assert [repr(v) for v in got[:3]] == [repr(v) for v in want]
    assert _columns(small)[1][:2] == ["a, quoted", "b"]
    assert np.isnan(_columns(small)[0][1]) and np.isnan(_columns(small)[2][2])


@pytest.mark.parametrize("size", [1, 5000, 20000])  # the csv module's path; pyarrow's, below and above 64 KiB
def test_csv_errors_name_row_and_column_on_both_paths(size):
    body = ("1,a,1\n" * size + "2,b,zz\n").encode()
    with pytest.raises(SchemaError) as info:
        csv_codec.decode(body, SCHEMA)
    assert f"row {size + 1}, column 'flag'" in info.value.message


@pytest.mark.parametrize("size", [1, 5000, 20000])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_csv_empty_line_of_a_wider_model_is_a_400_naming_its_row_on_both_paths(size, newline):
    """An empty line is a record (batch transform answers lines by position), not skipped: for a
    model of several features a 400 naming its row, on the small path and pyarrow's."""
    body = ("1,a,1" + newline) * size + newline + "2,b,1" + newline
    with pytest.raises(SchemaError) as info:
        csv_codec.decode(body.encode(), SCHEMA)
    assert info.value.code == "wrong_column_count"
    assert f"row {size + 1} is empty" in info.value.message and "delete the line" in info.value.message


@pytest.mark.parametrize("size", [1, 5000, 20000])
def test_csv_lone_cr_is_the_same_400_on_both_paths(size):
    """A CR that is not part of a CRLF: the csv module refuses it (a 400 naming the row), where
    pyarrow, reading bodies above 64 KiB, took it for a line end, so a 20,000-line body got 20,001
    answers and batch transform, which splits at LF only, joined every later answer to the wrong
    line."""
    body = ("1,a,1\n" * size + "2,b,1\r3,b,0\n" + "1,a,1\n" * 3).encode()
    with pytest.raises(DataError) as info:
        csv_codec.decode(body, SCHEMA)
    assert info.value.code == "undecodable_body"
    assert f"row {size + 1}" in info.value.message and "new-line character" in info.value.message


@pytest.mark.parametrize("size", [1, 5000, 20000])
@pytest.mark.parametrize("cell", ['"a"b', '"a" ', '"a"""b', '""b'])
def test_csv_a_closing_quote_followed_by_more_of_its_value_is_the_same_400_on_both_paths(size, cell):
    """The csv module (strict) refuses ``"a"b``; pyarrow, reading bodies above 64 KiB, read it as
    ``ab``: the same row answered 200 in a large body and 400 in a small one."""
    body = ("1,a,1\n" * size + f"2,{cell},1\n" + "1,a,1\n" * 3).encode()
    with pytest.raises(DataError) as info:
        csv_codec.decode(body, SCHEMA)
    assert info.value.code == "undecodable_body" and f"row {size + 1}" in info.value.message


@pytest.mark.parametrize("cell", ['"a ""b"" c"', 'x"y', '"""a"', '"a,"', "a", '"b"'])
def test_csv_quotes_read_alike_on_both_paths(cell):
    line = f'1,{cell},1\n2,"b",0\n'
    small = _columns(csv_codec.decode(line.encode(), SCHEMA))
    large = _columns(csv_codec.decode((line * 20000).encode(), SCHEMA))
    assert [column[:2] for column in large] == small and len(large[0]) == 40000


def test_csv_header_row_reorders_columns():
    batch = csv_codec.decode(b"job,flag,age\nb,1,3\n", SCHEMA)
    assert _columns(batch) == [[3.0], ["b"], [1.0]]
    assert csv_codec.header_line(b"job,flag,age\nb,1,3\n", SCHEMA) == b"job,flag,age\n"
    assert csv_codec.header_line(b"1,b,1\n", SCHEMA) is None


# Features whose names are values (a Parquet file of a NumPy array: columns "0", "1", "2").
NUMBERED = RequestSchema([Feature(name, "numeric", "float64") for name in ("0", "1", "2")])
CATEGORIES = RequestSchema([Feature("job", "categorical", "str"), Feature("color", "categorical", "str")])
SPACED = RequestSchema([Feature(" age", "numeric", "float64"), Feature(" job", "categorical", "str")])


@pytest.mark.parametrize("size", [1, 20_000])  # the stdlib path and pyarrow's
@pytest.mark.parametrize(
    "first",
    [[0, 1, 2], [2, 1, 0], [1, 2, 0]],
)
def test_csv_first_line_naming_numbered_features_that_is_a_valid_row_is_a_row(first, size):
    """It cannot be told from a header, and a row taken for one was dropped (or the rest reordered
    by it, or a lone row refused as 'a header but no rows'): a row is never lost."""
    body = ",".join(map(str, first)).encode() + b"\n" + b"5,0,0\n" * (size - 1)
    batch = csv_codec.decode(body, NUMBERED)
    assert len(batch) == size
    assert [column[0] for column in _columns(batch)] == first
    assert csv_codec.header_line(body, NUMBERED) is None


@pytest.mark.parametrize("size", [1, 20_000])
@pytest.mark.parametrize(
    ("schema", "header", "row", "expected"),
    [
        (CATEGORIES, b"Job,Color", b"tech,blue", [["tech"], ["blue"]]),  # case
        (CATEGORIES, b"COLOR , job", b"blue,tech", [["tech"], ["blue"]]),  # case, spaces, order
        (SPACED, b" age, job", b"50,admin", [[50.0], ["admin"]]),  # the names exactly, spaces kept
        (SPACED, b"age,job", b"50,admin", [[50.0], ["admin"]]),  # without their spaces
        (SPACED, b" job , AGE ", b"admin,50", [[50.0], ["admin"]]),
    ],
)
def test_csv_header_differing_only_by_case_or_spaces_is_a_header_mapped_by_that(
    schema, header, row, expected, size
):
    """Such headers were rows (a prediction too many) or refused (' age' kept its space in the
    model but was stripped in the header: "text ' age' is not a number")."""
    body = header + b"\n" + (row + b"\n") * size
    batch = csv_codec.decode(body, schema)
    assert len(batch) == size
    assert [column[:1] for column in _columns(batch)] == expected
    assert csv_codec.header_line(body, schema) == header + b"\n"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"JOB,colour\ntech,blue\n", "unknown_columns"),  # names one feature of two, otherwise
        (b"job,job,color\ntech,blue\n", "duplicate_columns"),
        (b"job\ntech\n", "missing_columns"),
    ],
)
def test_csv_first_line_naming_only_some_features_is_refused(body, code):
    with pytest.raises(SchemaError) as info:
        csv_codec.decode(body, CATEGORIES)
    assert info.value.code == code and "the CSV header" in info.value.message


class _Slices:
    """A RequestBody whose line_slices are given (the app cuts large bodies at about 4 MiB)."""

    def __init__(self, *slices: bytes) -> None:
        self.slices = slices

    def read(self) -> bytes:
        return b"".join(self.slices)

    def line_slices(self, whole_records=None):
        return iter(self.slices)


def _batches(schema, *slices):
    from byoc.serving.builtin import decode_batches

    batches = list(decode_batches(_Slices(*slices), codecs.find_decoder("text/csv"), schema, 1 << 30))
    return [[v for batch in batches for v in batch.columns[j]] for j in range(schema.width)]


@pytest.mark.parametrize(
    ("schema", "slices", "expected"),
    [
        # a later slice starting with a row that looks like the header: a row, never a header
        (NUMBERED, [b"5,0,0\n", b"0,1,2\n5,0,0\n"], [[5.0, 0.0, 5.0], [0.0, 1.0, 0.0], [0.0, 2.0, 0.0]]),
        (NUMBERED, [b"5,0,0\n", b"2,1,0\n4,3,1\n"], [[5.0, 2.0, 4.0], [0.0, 1.0, 3.0], [0.0, 0.0, 1.0]]),
        (
            CATEGORIES,
            [b"tech,blue\n", b"job,color\nadmin,red\n"],
            [["tech", "job", "admin"], ["blue", "color", "red"]],
        ),
        # the body's header (found as relaxed) orders every later slice, whose own first line is a row
        (
            CATEGORIES,
            [b"COLOR,Job\nblue,tech\n", b"color,job\nred,admin\n"],
            [["tech", "job", "admin"], ["blue", "color", "red"]],
        ),
    ],
)
def test_csv_only_the_bodys_first_line_can_be_a_header(schema, slices, expected):
    """A row taken for a header at a later slice's start was dropped: batch transform's answers
    after it were one line short, joined to the wrong inputs."""
    assert _batches(schema, *slices) == expected


def test_json_shapes():
    decode = codecs.decoders()["application/json"].decode
    for body in (
        [[1, "a", True]],
        {"instances": [{"age": 1, "job": "a", "flag": True}]},
        {"age": 1, "job": "a", "flag": 1},
        [1, "a", 1],
        {"inputs": {"age": [1], "job": ["a"], "flag": [1]}},
        {"dataframe_split": {"columns": ["flag", "job", "age"], "data": [[1, "a", 1]]}},
    ):
        assert _columns(decode(json.dumps(body).encode(), SCHEMA, 0)) == [[1.0], ["a"], [1.0]], body


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"dataframe_split": {"columns": ["age", "job", "flag"], "data": [[1, "a", 1]]}, "instances": []},
            "bad_shape",
        ),
        ({"dataframe_split": {"columns": ["age", "job", "flag"], "data": []}}, "empty_body"),
        ({"dataframe_split": {"columns": ["age", "job", "flag"], "data": [[1, "a"]]}}, "wrong_column_count"),
        ({"dataframe_split": {"columns": ["age", "job", "job"], "data": [[1, "a", 1]]}}, "duplicate_columns"),
    ],
    ids=["combined", "no_rows", "short_row", "repeated_column"],
)
def test_json_dataframe_split_mistakes_are_the_same_whole_and_streamed(body, code):
    data = json.dumps(body).encode()
    with pytest.raises((DataError, SchemaError)) as whole:
        codecs.decoders()["application/json"].decode(data, SCHEMA, 0)
    with (
        pytest.raises((DataError, SchemaError)) as streamed,
        mock.patch.object(json_codec, "WHOLE_BODY_CHARS", 1),
    ):
        list(json_codec.decode_stream([data], SCHEMA))
    assert whole.value.code == streamed.value.code == code


def test_json_numbers_for_categories_become_text_like_training():
    decode = codecs.decoders()["application/json"].decode
    assert _columns(decode(b"[[1, 2.0, 0], [1, 2.5, 0]]", SCHEMA, 0))[1] == ["2", "2.5"]


def test_npy_refuses_pickles_and_text():
    decode = codecs.decoders()["application/x-npy"].decode
    buf = io.BytesIO()
    np.save(buf, np.array([["a", "b", "c"]]))
    with pytest.raises(SchemaError):
        decode(buf.getvalue(), SCHEMA, 0)
    buf = io.BytesIO()
    np.save(buf, np.array([[1, object(), 2]], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="never unpickled"):
        decode(buf.getvalue(), SCHEMA, 0)


@pytest.mark.parametrize(
    "body,said",
    [
        (b"1,2,0\n", "not a .npy array: it starts with b'1,2,0\\n'"),
        (b'{"instances": [[1, 2, 0]]}', "not a .npy array"),
        (b"PK\x03\x04" + b"\x00" * 40, ".npz archive"),
    ],
)
def test_an_npy_body_that_is_no_array_is_named_so_not_as_a_pickle(body, said):
    """A CSV or JSON body sent as application/x-npy was refused as one that "holds Python objects,
    which are never unpickled": np.load reads a body without npy's magic as a pickle."""
    decode = codecs.decoders()["application/x-npy"].decode
    with pytest.raises(DataError) as info:
        decode(body, SCHEMA, 0)
    assert info.value.code == "undecodable_body"
    assert said in info.value.message and "unpickled" not in info.value.message
    assert "numpy.save" in info.value.message


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_an_npy_body_holding_more_than_its_array_is_refused_not_answered_in_part():
    """Two arrays saved one after the other (np.save twice into one buffer), or a header whose
    shape counts fewer rows than the data holds, were answered for the first array's rows alone:
    np.load reads a file's first array, and the rest of the body went unanswered."""
    decode = codecs.decoders()["application/x-npy"].decode
    first, second = np.array([[1, 2, 0], [30, 1, 1]]), np.array([[4, 1, 0]])
    assert len(decode(_npy(first), SCHEMA, 0)) == 2
    for body in (_npy(first) + _npy(second), _npy(first).replace(b"(2, 3)", b"(1, 3)")):
        with pytest.raises(DataError) as info:
            decode(body, SCHEMA, 0)
        assert info.value.code == "undecodable_body"
        assert "go unanswered" in info.value.message and "numpy.vstack" in info.value.message
    with pytest.raises(DataError, match="negative size"):
        decode(_npy(first).replace(b"(2, 3)", b"(-1,3)"), SCHEMA, 0)


def _npy_with_header(text: str, version: int = 1) -> bytes:
    """An npy body whose header is ``text`` (padded as numpy.save pads it), then 8 bytes of data."""
    header = text.encode("latin-1")
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    size = len(header).to_bytes(2 if version == 1 else 4, "little")
    return b"\x93NUMPY" + bytes([version, 0]) + size + header + b"\x00" * 8


_FINE = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }"


@pytest.mark.parametrize(
    "header,problem",
    [
        # numpy: "malformed node or string on line 1: <ast.Call object at 0x7f...>"
        (_FINE.replace("(1,)", "foo(1,)"), "it is not a Python dictionary of literals"),
        (_FINE.replace("'<f8'", "__import__('os')"), "it is not a Python dictionary of literals"),
        (_FINE.replace("'<f8'", "float"), "it is not a Python dictionary of literals"),
        (_FINE[:-3], "it is not a Python dictionary of literals"),  # numpy: a tokenize.TokenError, a 500
        # Python's parser: MemoryError ("too complex"), a 413
        ("-" * 9000 + "1", "it is not a Python dictionary of literals"),
        ("[" * 60 + "]" * 60, "it is a list, not a dictionary"),
        (_FINE.replace("'<f8'", "'zz'"), "its 'descr' is not a NumPy dtype"),
        (_FINE.replace("(1,)", "(1.5,)"), "its 'shape' is not a tuple of whole numbers"),
        (_FINE.replace("False", "2"), "its 'fortran_order' is not True or False"),
        (_FINE.replace("'descr'", "'x'"), "it lacks 'descr' and has 1 other key"),
        ("\x1b[2J\x85" * 2400, "it is 12,022 characters long, past the 10,000 numpy reads"),
    ],
    ids=["call", "import", "name", "unclosed", "nested", "list", "descr", "shape", "order", "keys", "long"],
)
def test_a_malformed_npy_header_is_named_in_words_never_as_a_repr(header, problem):
    """numpy's own message for such a header held a repr of Python's parse tree (a memory
    address), or the whole header; a tokenize error was a 500, a deeply nested header a 413."""
    decode = codecs.decoders()["application/x-npy"].decode
    with pytest.raises(DataError) as info:
        decode(_npy_with_header(header), NUMBERED_TWO, 0)
    message = info.value.message
    assert info.value.code == "undecodable_body"
    assert f"header is not one numpy reads: {problem}" in message and "numpy.save" in message
    assert " object at 0x" not in message and not re.search(r"0x[0-9a-f]{6,}", message)
    assert len(message) < 700 and message.isprintable() and message.isascii()
    shown = header.rstrip(" ")
    if len(shown) <= 80:
        assert f"it reads {ascii(shown)}" in message
    else:
        assert f"it starts {ascii(shown[:80])} ({len(shown) - 80:,} characters more)" in message


def test_an_npy_header_of_another_version_or_cut_short_is_named_so():
    decode = codecs.decoders()["application/x-npy"].decode
    for body, problem in [
        (_npy_with_header(_FINE, version=5), "its format version is 5.0, not 1.0, 2.0 or 3.0"),
        (b"\x93NUMPY\x01", "the body ends before the format version"),
        (_npy_with_header(_FINE)[:40], "it declares 118 bytes, but the body holds 30 after the length"),
    ]:
        with pytest.raises(DataError) as info:
            decode(body, NUMBERED_TWO, 0)
        assert f"header is not one numpy reads: {problem};" in info.value.message
    one = RequestSchema([Feature("x", "numeric", "float64")])
    for version in (1, 2, 3):  # numpy.save's three versions, read as ever
        assert len(decode(_npy_with_header(_FINE, version=version), one, 0)) == 1


@pytest.mark.parametrize("value", [np.inf, -np.inf, 1e39])
def test_an_out_of_range_npy_value_is_named_as_in_csv(value):
    """The npy path said "np.float64(inf) is out of range" (numpy's repr) and no way to fix it."""
    decode = codecs.decoders()["application/x-npy"].decode
    rows = np.ones((50, 2))
    rows[36, 0] = value
    buf = io.BytesIO()
    np.save(buf, rows)
    with pytest.raises(SchemaError) as info:
        decode(buf.getvalue(), NUMBERED_TWO, 0)
    assert info.value.code == "out_of_range"
    assert info.value.message.startswith(f"row 37, column 'x' (numeric): {float(value)!r} is out of range")
    assert "np." not in info.value.message and "send a finite number" in info.value.message


NUMBERED_TWO = RequestSchema([Feature("x", "numeric", "float64"), Feature("y", "numeric", "float64")])


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("kind", ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8"])
def test_npy_of_either_byte_order_reads_as_native(kind, order):
    """A big-endian array ('>i8', as a big-endian machine or a Java client writes it) is read."""
    decode = codecs.decoders()["application/x-npy"].decode
    rows = np.array([[1, 2, 0], [30, 1, 1]])

    def columns(array):
        buf = io.BytesIO()
        np.save(buf, array)
        return [np.asarray(column).tolist() for column in decode(buf.getvalue(), SCHEMA, 0).columns]

    assert columns(rows.astype(order + kind)) == columns(rows.astype(kind))
    assert columns(rows.astype(kind))[1] == ["2", "1"]


@pytest.mark.parametrize("order", ["<", ">"])
def test_npy_in_fortran_order_reads_as_in_c_order_without_a_copy(order):
    """np.load copied the array out of the body; the columns are now views of the body's bytes
    (but for a big-endian body, made native once), the same answer in either layout."""
    decode = codecs.decoders()["application/x-npy"].decode
    rows = np.array([[1.5, 2.0, 0.0], [30.0, 1.0, 1.0], [-4.0, 2.0, 1.0]])

    def decoded(array):
        buf = io.BytesIO()
        np.save(buf, array)
        body = buf.getvalue()
        return body, decode(body, SCHEMA, 0).columns

    _, expected = decoded(rows)
    body, columns = decoded(np.asfortranarray(rows.astype(order + "f8")))
    assert [np.asarray(c).tolist() for c in columns] == [np.asarray(c).tolist() for c in expected]
    assert np.asarray(columns[0]).tolist() == [1.5, 30.0, -4.0]
    assert np.shares_memory(columns[0], np.frombuffer(body, np.uint8)) == (order == "<")


def test_parquet_by_name():
    buf = io.BytesIO()
    pd.DataFrame({"flag": [True], "job": ["b"], "age": [4]}).to_parquet(buf)
    batch = codecs.decoders()["application/x-parquet"].decode(buf.getvalue(), SCHEMA, 0)
    assert _columns(batch) == [[4.0], ["b"], [1.0]]


PREDICTION = Prediction(
    ("predicted_label", "probability", "probabilities", "labels"),
    {
        "predicted_label": ["yes", 'a "b", c'],
        "probability": np.array([0.9, 0.6]),
        "probabilities": np.array([[0.1, 0.9], [0.6, 0.4]]),
        "labels": ["no", "yes"],
    },
    2,
)


def test_encoders_keep_field_order_and_values():
    as_json = json.loads(codecs.encoders()["application/json"].encode(PREDICTION))
    assert as_json["predictions"][1] == {
        "predicted_label": 'a "b", c',
        "probability": 0.6,
        "probabilities": [0.6, 0.4],
        "labels": ["no", "yes"],
    }
    lines = codecs.encoders()["application/jsonlines"].encode(PREDICTION).decode().splitlines()
    assert [json.loads(line) for line in lines] == as_json["predictions"]
    rows = list(csv.reader(io.StringIO(codecs.encoders()["text/csv"].encode(PREDICTION).decode())))
    assert rows[1] == ['a "b", c', "0.6", "[0.6,0.4]", '["no","yes"]']
    with pytest.raises(NotAcceptable):
        codecs.encoders()["application/x-npy"].encode(PREDICTION)


@pytest.mark.parametrize("label", ["no\nway", "a\r\nb", "cr\r"])
@pytest.mark.parametrize("fields", [("predicted_label",), ("probability", "predicted_label")])
def test_a_csv_answer_never_spans_lines_a_label_with_a_line_break_is_a_406(label, fields):
    """A label holding a line break was quoted over two lines: a batch transform's answer had more
    lines than its input, and SageMaker joined every later answer to the wrong input line."""
    prediction = Prediction(
        fields, {"predicted_label": ["yes", label, "yes"], "probability": np.array([0.9, 0.6, 0.7])}, 3
    )
    with pytest.raises(NotAcceptable, match="holds a line break.*application/jsonlines"):
        codecs.encoders()["text/csv"].encode(prediction)
    lines = codecs.encoders()["application/jsonlines"].encode(prediction).decode().split("\n")
    assert json.loads(lines[1])["predicted_label"] == label and lines[3:] == [""]
    labels_only = Prediction(("labels",), {"labels": ["yes", label]}, 3)  # JSON text: escaped
    assert codecs.encoders()["text/csv"].encode(labels_only).decode().count("\n") == 3


def _csv_cell(field: str, cell: str) -> object:
    """A CSV response cell read back as README "What a response holds" describes it: list
    fields a JSON array in one cell, probability a number, a label as written."""
    if field in ("probabilities", "labels"):
        return json.loads(cell)
    return float(cell) if field == "probability" else cell


@pytest.mark.parametrize(
    "fields",
    [fields for k in range(1, 5) for fields in itertools.permutations(PREDICTION.fields, k)],
    ids="-".join,
)
def test_csv_encoder_writes_every_field_combination_as_json_says(fields):
    """output=probabilities alone wrote Python reprs ('[0.1, 0.9]' in single quotes), which no
    parser reads as a list: every combination's cells must hold the JSON encoder's values."""
    prediction = Prediction(fields, PREDICTION.values, PREDICTION.n)
    expected = json.loads(codecs.encoders()["application/json"].encode(prediction))["predictions"]
    rows = list(csv.reader(io.StringIO(codecs.encoders()["text/csv"].encode(prediction).decode())))
    assert [
        {field: _csv_cell(field, cell) for field, cell in zip(fields, row, strict=True)} for row in rows
    ] == expected


def _strict(text: str) -> object:
    """JSON as RFC 8259 has it: NaN, Infinity and -Infinity are no tokens of it."""

    def refuse(token: str) -> object:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_encoders_write_non_finite_numbers_as_null():
    """A hook's predict_fn may return NaN (a row it cannot score): strict parsers (JSON.parse,
    Jackson, Go) refuse a body holding NaN, so it is null, as a missing value is in requests."""
    nan, inf = float("nan"), float("inf")
    prediction = Prediction(
        ("predicted_label", "probabilities"),
        {
            "predicted_label": np.array([nan, 1.5, -inf]),
            "probabilities": np.array([[nan, 1.0], [0.5, 0.5], [inf, 0]]),
        },
        3,
    )
    as_json = _strict(codecs.encoders()["application/json"].encode(prediction).decode())
    expected = [
        {"predicted_label": None, "probabilities": [None, 1.0]},
        {"predicted_label": 1.5, "probabilities": [0.5, 0.5]},
        {"predicted_label": None, "probabilities": [None, 0.0]},
    ]
    assert as_json == {"predictions": expected}
    lines = codecs.encoders()["application/jsonlines"].encode(prediction).decode().splitlines()
    assert [_strict(line) for line in lines] == expected
    rows = list(csv.reader(io.StringIO(codecs.encoders()["text/csv"].encode(prediction).decode())))
    assert [_strict(row[1]) for row in rows] == [[None, 1.0], [0.5, 0.5], [None, 0.0]]


def test_npy_encoder_single_field_without_pickles():
    one = Prediction(("probabilities",), PREDICTION.values, 2)
    array = np.load(io.BytesIO(codecs.encoders()["application/x-npy"].encode(one)), allow_pickle=False)
    assert array.tolist() == [[0.1, 0.9], [0.6, 0.4]]


@pytest.mark.parametrize(
    "labels,expected",
    [
        ([3, 10**20], np.array([3.0, 1e20])),  # past int64 but exact as float64: it was a 500
        ([[3, 10**20]] * 2, np.array([[3.0, 1e20]] * 2)),  # the labels field
        ([3, 2**63 + 1], np.array([3, 2**63 + 1], dtype=np.uint64)),  # NumPy rounded it to float 2**63
        ([1, 2], np.array([1, 2])),
        ([1.5, 2**53], np.array([1.5, 2.0**53])),
    ],
)
def test_npy_writes_integer_labels_past_int64_exactly(labels, expected):
    field = "labels" if isinstance(labels[0], list) else "predicted_label"
    one = Prediction((field,), {"predicted_label": labels, "labels": labels[0]}, len(labels))
    array = np.load(io.BytesIO(codecs.encoders()["application/x-npy"].encode(one)), allow_pickle=False)
    assert array.dtype == expected.dtype
    assert array.tolist() == expected.tolist()


@pytest.mark.parametrize(
    "labels", [[-1, 2**63 + 1], [1.5, 2**53 + 1], [3, 10**400], [np.uint64(2**63 + 1), -1]]
)
def test_npy_refuses_integers_no_array_holds_exactly(labels):
    """NumPy rounded 2**63 + 1 beside -1 to the float 2**63 (a wrong label with a 200), and made
    an object array of 10**400, which np.save refuses (a 500): a 406 asking for JSON."""
    one = Prediction(("predicted_label",), {"predicted_label": labels}, len(labels))
    with pytest.raises(NotAcceptable, match="ask for application/json"):
        codecs.encoders()["application/x-npy"].encode(one)


@pytest.mark.parametrize("field", ["predicted_label", "labels"])
def test_npy_refuses_a_label_ending_in_nul(field):
    """NumPy's text arrays drop trailing NULs: classes "c\\x00" and "c" were both answered "c"."""
    one = Prediction((field,), {"predicted_label": ["c\x00", "c"], "labels": ["c", "c\x00"]}, 2)
    with pytest.raises(NotAcceptable, match="ends with a NUL character"):
        codecs.encoders()["application/x-npy"].encode(one)


@pytest.mark.parametrize("fields", [("predicted_label",), ("predicted_label", "probability")])
def test_a_csv_answer_keeps_a_first_label_starting_with_a_byte_order_mark(fields):
    """CSV readers drop U+FEFF at the start of a file: the first record's label "\\ufeffbom" read
    back as "bom". Quoted, it is the value's."""
    values = {"predicted_label": ["\ufeffbom", "bom"], "probability": np.array([0.75, 1.0])}
    body = codecs.encoders()["text/csv"].encode(Prediction(fields, values, 2))
    assert pd.read_csv(io.BytesIO(body), header=None)[0].tolist() == ["\ufeffbom", "bom"]
    assert [row[0] for row in csv.reader(io.StringIO(body.decode("utf-8-sig")))] == ["\ufeffbom", "bom"]


_NO_FORM = {
    "bytes": [b"a", b"b"],
    "bytes array": np.array([b"a", b"b"]),
    "dates": np.array(["2020-01-01"] * 2, dtype="datetime64[D]"),
    "objects": [object()] * 2,
}


@pytest.mark.parametrize(
    "media_type,kind",
    [("text/csv", kind) for kind in _NO_FORM]
    + [("application/x-npy", kind) for kind in ("bytes", "objects")],
)
def test_csv_and_npy_refuse_values_they_have_no_form_for(media_type, kind):
    """They wrote Python reprs (``b'a'``, ``<object object at ...>``) as the answer; a TypeError
    is what byoc's output_fn turns into ``bad_prediction`` naming predict_fn.  (A typed array of
    bytes or dates is an npy file's own: written as it is.)"""
    values = _NO_FORM[kind]
    fields = ("predicted_label",) if media_type == "application/x-npy" else ("predicted_label", "probability")
    prediction = Prediction(fields, {"predicted_label": values, "probability": np.ones(2)}, 2)
    with pytest.raises(TypeError, match="form"):
        codecs.encoders()[media_type].encode(prediction)


def test_csv_writes_a_dict_as_json_and_npy_keeps_each_values_type():
    records = Prediction(
        ("predicted_label",), {"predicted_label": [{"label": "a", "p": 0.5}, {"label": "b"}]}, 2
    )
    rows = list(csv.reader(io.StringIO(codecs.encoders()["text/csv"].encode(records).decode())))
    assert [json.loads(row[0]) for row in rows] == [{"label": "a", "p": 0.5}, {"label": "b"}]
    npy = codecs.encoders()["application/x-npy"]
    for values, expected in (
        ([1, 2], np.array([1, 2])),
        ([1.5, None], np.array([1.5, np.nan])),
        (["a", "b"], np.array(["a", "b"])),
    ):
        array = np.load(
            io.BytesIO(npy.encode(Prediction(("predicted_label",), {"predicted_label": values}, 2)))
        )
        assert array.dtype == expected.dtype
        np.testing.assert_array_equal(array, expected)
    with pytest.raises(TypeError, match="types int, str have no application/x-npy form"):
        npy.encode(Prediction(("predicted_label",), {"predicted_label": [0, "unknown"]}, 2))


# -- value semantics (byoc.values) in every decoder ----------------------------------------------
VALUES_SCHEMA = RequestSchema([Feature("word", "categorical", "str"), Feature("x", "numeric", "float64")])
VALUE_ROWS = [["None", "007"], ["<NA>", " 1e3 "], [True, ""], [" TRUE ", None], ["NA", "2.0"], [None, "-.5"]]
EXPECTED_WORDS = ["None", "<NA>", "true", "true", "NA", None]
EXPECTED_X = [7.0, 1000.0, None, None, 2.0, -0.5]


def _value_bodies() -> dict[str, bytes]:
    frame = pd.DataFrame(VALUE_ROWS, columns=["word", "x"]).astype({"word": object})
    frame.loc[2, "word"] = "True"  # a Parquet column holds one type: the boolean as text here
    csv_text = "".join(
        ",".join("" if v is None else str(v).lower() if isinstance(v, bool) else v for v in row) + "\n"
        for row in VALUE_ROWS
    )
    return {
        "text/csv": csv_text.encode(),
        "text/csv large": (csv_text * 4000).encode(),
        "application/json": json.dumps({"instances": VALUE_ROWS}).encode(),
        "application/jsonlines": "".join(
            json.dumps(dict(zip(["word", "x"], r, strict=True))) + "\n" for r in VALUE_ROWS
        ).encode(),
        "application/x-parquet": frame.to_parquet(index=False),
    }


@pytest.mark.parametrize(
    "kind",
    ["text/csv", "text/csv large", "application/json", "application/jsonlines", "application/x-parquet"],
)
def test_every_decoder_applies_the_same_value_rules(kind):
    batch = codecs.find_decoder(kind.split()[0]).decode(_value_bodies()[kind], VALUES_SCHEMA, 0)
    words = [None if not isinstance(v, str) else v for v in batch.columns[0][: len(VALUE_ROWS)]]
    numbers = [None if np.isnan(v) else v for v in batch.columns[1][: len(VALUE_ROWS)]]
    assert words == EXPECTED_WORDS
    assert numbers == EXPECTED_X


def test_a_parquet_boolean_is_the_category_true():
    frame = pd.DataFrame({"word": [True, False, None], "x": [1.0, 2.0, 3.0]}).astype({"word": "boolean"})
    batch = codecs.find_decoder("application/x-parquet").decode(frame.to_parquet(), VALUES_SCHEMA, 0)
    assert batch.columns[0][:2].tolist() == ["true", "false"] and np.isnan(batch.columns[0][2])


@pytest.mark.parametrize("header", ["", "age,job,flag\n"])
def test_csv_unclosed_quote_names_the_row_and_line_it_opens_in(header):
    body = header + "1,a,1\n\n" + '2,"b,1\n' + "3,c,1\n"
    with pytest.raises(DataError) as info:
        csv_codec.decode(body.encode(), SCHEMA)
    line = 3 + bool(header)
    assert f"row 3 (line {line} of the body) is never closed" in info.value.message, info.value.message


def test_a_large_csv_slice_wrong_on_its_first_row_is_refused_without_parsing_every_row():
    """A column of 2 million values for a 3-feature model (the label alone, say): the precise path
    made a Python list per row of the whole slice to name row 1, about 50 times the slice."""
    import tracemalloc

    body = b"1\n" * (2 * 1024 * 1024)
    tracemalloc.start()
    try:
        with pytest.raises(SchemaError, match="row 1 has 1 value but the model expects 3"):
            codecs.find_decoder("text/csv").decode(body, SCHEMA, 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(body) * 2, f"{peak / 2**20:.0f} MB traced for a {len(body) / 2**20:.0f} MB slice"


@pytest.mark.parametrize(("media_type", "most"), [("application/json", 3), ("application/jsonlines", 6)])
def test_a_json_answer_of_many_records_is_built_in_a_few_times_its_size(media_type, most):
    """Every record's dict made at once held about 230 bytes a record: 10 times the answer, 300 MB
    of a worker for a 3.3 MB CSV body of a million one-value rows."""
    import tracemalloc

    n = 200_000
    prediction = Prediction(("predicted_label",), {"predicted_label": ["yes", "no"] * (n // 2)}, n)
    encoder = codecs.encoders()[media_type]
    tracemalloc.start()
    try:
        answer = encoder.encode(prediction)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.count(b'"predicted_label":"no"') == n // 2
    assert peak < most * len(answer), f"{peak / len(answer):.1f} times the answer's {len(answer):,} bytes"


def test_csv_spells_boolean_labels_as_training_reads_them_back():
    """A model trained on a boolean label answers booleans: CSV wrote Python's True/False (and a
    hook's mixed 1/True column kept 1 apart from true); training reads true/false."""
    one = Prediction(("predicted_label",), {"predicted_label": [True, False, True]}, 3)
    assert csv_codec.encode(one) == b"true\nfalse\ntrue\n"
    two = Prediction(
        ("predicted_label", "probability"),
        {"predicted_label": [False, True], "probability": np.array([0.75, 0.5])},
        2,
    )
    assert csv_codec.encode(two) == b"false,0.75\ntrue,0.5\n"
    mixed = Prediction(("predicted_label",), {"predicted_label": [1, True, "x"]}, 3)
    assert csv_codec.encode(mixed) == b"1\ntrue\nx\n"
    labels = Prediction(("labels",), {"labels": [False, True]}, 1)
    assert csv_codec.encode(labels) == b'"[false,true]"\n'


@pytest.mark.parametrize(
    "body",
    [
        b'[{"job": "tech", "job": "admin"}]',
        b'{"instances": [{"job": "tech"}], "instances": [{"job": "admin"}]}',
        b'{"dataframe_split": {"columns": ["job"], "columns": ["job"], "data": [["tech"]]}}',
    ],
)
def test_a_json_object_repeating_a_key_is_refused_whole_and_streamed(body):
    """The standard library kept the last value of a repeated key and dropped the other: a record
    answered with one of two values picked silently."""
    schema = RequestSchema([Feature("job", "categorical", "str")])
    with pytest.raises(SchemaError) as info:
        json_codec.decode(body, schema)
    assert info.value.code == "duplicate_columns" and "repeats the key" in info.value.message
    with pytest.raises(SchemaError):  # streamed, a second "instances" is a key combined with it
        list(json_codec.decode_stream(iter([body]), schema))


def test_a_streamed_object_repeating_dataframe_split_is_refused():
    schema = RequestSchema([Feature("job", "categorical", "str")])
    split = b'{"columns": ["job"], "data": [["tech"]]}'
    body = b'{"dataframe_split": ' + split + b', "dataframe_split": ' + split + b"}"
    with mock.patch.object(json_codec, "WHOLE_BODY_CHARS", 8):  # too large to decode whole: streamed
        with pytest.raises(SchemaError) as info:
            list(json_codec.decode_stream(iter([body]), schema))
    assert info.value.code == "duplicate_columns" and "'dataframe_split'" in info.value.message


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"5", "the JSON body is a number; "),
        (b'"x"', "the JSON body is a string; "),
        (b"1.5", "the JSON body is a number; "),
        (b"null", "the JSON body is null; "),
        (b"false", "the JSON body is a boolean (false); "),
    ],
)
def test_a_json_body_of_one_value_is_named_in_jsons_words(body, said):
    """Was "the JSON body is a int", then "an int", "a NoneType", "a bool": Python's names."""
    with pytest.raises(SchemaError) as caught:
        codecs.decoders()["application/json"].decode(body, SCHEMA, 0)
    assert caught.value.message.startswith(said), caught.value.message


_PYTHON_NAMES = re.compile(r"NoneType|\ban? (int|bool|str|float|dict|tuple)\b|JSON (list|object)")


@pytest.mark.parametrize(
    ("media_type", "body", "said"),
    [
        (
            "application/json",
            b'{"instances": [[1, "a", 0], null]}',
            "row 2 is null; each row must be a list of 3",
        ),
        (
            "application/json",
            b'{"instances": [[1, "a", 0], 7]}',
            "row 2 is a number; each row must be a list",
        ),
        ("application/json", b'[[1, "a", 0], true]', "row 2 is a boolean (true); each row must be a list"),
        ("application/json", b'{"inputs": [[1, "a", 0], "x"]}', "row 2 is a string; each row must be a list"),
        (
            "application/json",
            b'{"dataframe_records": [{"age": 1, "job": "a", "flag": 0}, null]}',
            "row 2 is null; each row must be an object of feature: value",
        ),
        (
            "application/json",
            b'[{"age": 1, "job": "a", "flag": 0}, 3]',
            "row 2 is a number; each row must be an object",
        ),
        (
            "application/json",
            b'{"dataframe_split": {"data": [[1, "a", 0], null]}}',
            "row 2 is null; each row must",
        ),
        (
            "application/json",
            b'{"dataframe_split": {"columns": ["age", "job", "flag"], "data": [[1, "a", 0], null]}}',
            '"dataframe_split" row 2 is null; each row of "data" must be a list of 3 values',
        ),
        (
            "application/jsonlines",
            b'[1, "a", 0]\nnull\n',
            "line 2 of the JSON Lines body holds null, not a record",
        ),
        (
            "application/json",
            b'[[{"x": 1}, "a", 0]]',
            "row 1, column 'age' (numeric): an object is not a number",
        ),
        (
            "application/json",
            b'[[1, ["a"], 0]]',
            "row 1, column 'job' (categorical): a list is not a category",
        ),
    ],
)
def test_every_json_shape_names_a_wrong_item_in_jsons_words(media_type, body, said):
    """A row of null in ``{"instances": [...]}`` was "row 2 is a NoneType" (a number "a int", a
    string "a str", a record's list "a JSON list"): every JSON shape, whole and streamed, names what
    the client wrote as JSON names it (byoc.json_objects.json_words)."""
    decoder = codecs.decoders()[media_type]
    with pytest.raises(SchemaError if media_type == "application/json" else DataError) as whole:
        decoder.decode(body, SCHEMA, 0)
    messages = [whole.value.message]
    if media_type == "application/json":
        with pytest.raises(SchemaError) as streamed:
            list(json_codec.decode_stream(iter([body]), SCHEMA))
        messages.append(streamed.value.message)
    for message in messages:
        assert said in message, message
        assert not _PYTHON_NAMES.search(message), message


def test_a_body_that_is_not_utf8_names_the_byte_in_the_body_on_every_path():
    """A CSV body after a byte order mark was "byte 1" for its 5th byte (utf-8-sig counts from after
    the mark); a streamed JSON body named no byte at all.  Both now count in the body sent."""
    with pytest.raises(DataError) as csv_error:
        codecs.decoders()["text/csv"].decode(b"\xef\xbb\xbf1,a\xe9\n", SCHEMA, 0)
    assert csv_error.value.code == "undecodable_body"
    assert csv_error.value.message.startswith("the CSV body is not UTF-8 (byte 6: invalid continuation byte)")
    body = b"[" + b'[1, "a", 0], ' * 500 + b'[1, "caf\xc3"]]'
    bad = body.index(b"\xc3")
    for blocks in (
        [body],
        [body[i : i + 1000] for i in range(0, len(body), 1000)],
        [body[: bad + 1], body[bad + 1 :]],
    ):
        with mock.patch.object(json_codec, "WHOLE_BODY_CHARS", 8), pytest.raises(DataError) as streamed:
            list(json_codec.decode_stream(iter(blocks), SCHEMA))
        assert streamed.value.code == "undecodable_body"
        assert streamed.value.message.startswith(f"the JSON body is not UTF-8 (byte {bad}: "), (
            streamed.value.message
        )


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"30,a\x00,1\n", "row 1, column 'job'"),
        (b"job,age,flag\nb,30,1\nb,31,0\nb\x00,32,1\n", "row 3 (line 4 of the body), column 'job'"),
        (b"31,b,0\n" * 20_000 + b"30,\x00a,1\n", "row 20001, column 'job'"),  # past SMALL_BODY: Arrow's path
    ],
    ids=["one-row", "header", "large"],
)
def test_a_nul_byte_in_a_cell_is_refused_naming_row_and_column_as_training_refuses_it(body, said):
    """Training refuses a value holding a NUL byte (byoc.wide_text.nul_cell); the endpoint took
    ``a\\x00`` as an unseen category of such a file's column."""
    with pytest.raises(
        SchemaError,
        match=re.escape(said) + r": holds a NUL character \(\\x00\).*training and the endpoint refuse it",
    ) as caught:
        csv_codec.decode(body, SCHEMA)
    assert caught.value.code == "not_text"


@pytest.mark.parametrize(
    ("names", "label_at", "header"),
    [
        (["a", "column_2", "c"], 0, b"a,,c"),  # training's header y,a,,c: the label first
        (["a", "column_1", "c"], 3, b"a,,c"),  # a,,c,y: the label last
        (["a", "column_2", "c"], 1, b"a,,c"),  # a,y,,c: the blank cell right after the label
        (["a", "column_2", "c"], 0, b"a, ,c"),  # y,a, ,c: a cell of spaces is blank on both sides
        (["column_0", "column_1", "c"], 2, b",,c"),  # ,,y,c (a saved index would be refused)
    ],
)
def test_a_blank_header_cell_names_the_feature_training_named_for_it(tmp_path, names, label_at, header):
    """Training names a blank header cell column_<i> (its place in the file, label included); a CSV
    request carrying the same header (without the label) was a 400 ``unknown_columns ''``."""
    from byoc import artifact
    from byoc.data import read_channel
    from byoc.environment import MLPaths, TrainingEnvironment

    cells = header.decode().split(",")
    cells.insert(label_at, "y")
    lines = []
    for i in range(12):
        row = ["uv"[i % 2], "uv"[i % 3 == 0], "uv"[i % 5 == 0]]
        row.insert(label_at, str(i % 2))
        lines.append(",".join(row) + "\n")
    rows = "".join(lines)
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": ",".join(cells) + "\n" + rows}})
    read = read_channel(TrainingEnvironment.from_files(MLPaths(root), environ={}), "train", header=True)
    assert [c for c in read.frame.columns if c != "y"] == names  # training's names for the blank cells
    features = [Feature(name, "categorical", "str", ("u", "v")) for name in names]
    schema = RequestSchema(features, label_at=artifact.label_at({"target": {"name": "y", "index": label_at}}))
    with_header = csv_codec.decode(header + b"\nu,v,u\n", schema).frame()
    pd.testing.assert_frame_equal(with_header, csv_codec.decode(b"u,v,u\n", schema).frame())
    others = [Feature(n if n in ("a", "c") else "other", "categorical", "str") for n in names]
    if sum(n in ("a", "c") for n in names) == 2:  # a model without such a feature: still a 400
        with pytest.raises(SchemaError, match="unknown column ''"):
            csv_codec.decode(header + b"\nu,v,u\n", RequestSchema(others, label_at=label_at))
