"""JSON read by orjson (json_objects.parse) is JSON read by :mod:`json` (json_objects.loads).

``parse`` takes orjson's value only where it is provably json's and leaves every other text to
``loads``, the decode every JSON body took before.  The property: on hostile JSON texts (numbers
as integers, floats, 25-digit decimals, integers past 2**63, 2**64 and any float, -0, 1e308,
1e400, NaN and Infinity tokens; texts holding numbers, colons, quotes, escapes, lone surrogates,
text beyond ASCII; booleans, nulls, nested lists and objects, repeated keys; byte order marks,
UTF-16, bytes that are not UTF-8, stray and trailing characters), as str and as bytes, both give
the identical value (each type, the float bits, the very text, the keys in order) or the
identical error (type and message).  Then the same through the codecs: a whole request body,
streamed or in one piece, and JSON Lines, decoded with ``parse`` and with ``loads`` in its place
give the identical batches or the identical 400.
"""

from __future__ import annotations

import json
import struct
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_jsonlines_arrow import RAW_NUMBERS, jsonlines_bodies
from test_schema_by_column import BIG, PROPERTY, WORDS, spelled, streamed, streamed_bodies

from byoc import json_objects
from byoc.errors import UserError
from byoc.serving.codecs import json as json_codec
from byoc.serving.codecs import jsonlines as jsonlines_codec
from byoc.serving.schema import RequestSchema

NUMBERS = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.from_regex(r"-?(0|[1-9][0-9]{0,25})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?", fullmatch=True),
    st.sampled_from([*RAW_NUMBERS, *map(str, BIG), "1e308", "-1e308", "-0", "1" * 19, "-" + "9" * 19]),
)
TEXTS = st.one_of(
    st.text(max_size=6).map(lambda t: json.dumps(t, ensure_ascii=False)),
    st.text(max_size=6).map(json.dumps),
    st.sampled_from(
        [*map(json.dumps, WORDS), '"a:b"', '"\\u003a"', '"12345678901234567890"', '"\\"q"', '":"']
    ),
)
SCALARS = st.one_of(NUMBERS, TEXTS, st.sampled_from(["true", "false", "null"]))
KEYS = st.sampled_from(['"a"', '"b"', '"é"', '"a:"', '"\\u0061"', '"f0"', '"instances"'])
SPACE = st.sampled_from(["", " ", "\n", "\t", "\r\n "])


def _list(items: list[str], space: str) -> str:
    return "[" + ("," + space).join(items) + "]"


def _object(pairs: list[tuple[str, str]], space: str) -> str:
    return "{" + ("," + space).join(f"{key}:{space}{value}" for key, value in pairs) + "}"


VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.builds(_list, st.lists(inner, max_size=5), SPACE),
        st.builds(_object, st.lists(st.tuples(KEYS, inner), max_size=4), SPACE),
    ),
    max_leaves=24,
)


@st.composite
def documents(draw: Any) -> str | bytes:
    """A JSON text of a request's shapes (a list of rows or records, one wrapped in an object) or
    of any value, now and then spoilt; as str or as UTF-8 (now and then UTF-16) bytes."""
    rows = st.lists(st.builds(_list, st.lists(SCALARS, min_size=1, max_size=4), SPACE), max_size=6)
    records = st.lists(
        st.builds(_object, st.lists(st.tuples(KEYS, SCALARS), min_size=1, max_size=4), SPACE), max_size=6
    )
    space = draw(SPACE)
    items = draw(st.one_of(rows, records))
    text = draw(
        st.sampled_from(
            [
                _list(items, space),
                _object([(draw(KEYS), _list(items, space))], space),
                _object([('"inputs"', draw(VALUES))], space),
                draw(VALUES),
            ]
        )
    )
    spoil = draw(st.sampled_from(["none"] * 6 + ["space", "bom", "stray", "cut", "after"]))
    if spoil == "space":
        text = draw(SPACE) + text + draw(SPACE)
    elif spoil == "bom":
        text = "\ufeff" + text
    elif spoil == "stray":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["]", "}", ",", ":", '"', "x", "\x00"])) + text[at:]
    elif spoil == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif spoil == "after":
        text += draw(st.sampled_from([" 1", "\n[1]", "x"]))
    form = draw(st.sampled_from(["str", "bytes", "bytes", "utf-16", "latin-1"]))
    if form == "str":
        return text
    if form == "utf-16":
        return text.encode("utf-16", "surrogatepass")
    if form == "latin-1" and text.isascii():
        return text.encode() + b'"\xe9"'  # a byte that is not UTF-8
    return text.encode("utf-8", "surrogatepass")


def exact(value: Any) -> Any:
    """The value with every type spelled and float bits: 0 is not 0.0 nor -0.0, 1 not True."""
    if type(value) is float:
        return ("float", struct.pack("<d", value))
    if type(value) is list:
        return ("list", [exact(v) for v in value])
    if type(value) is dict:
        return ("dict", [(k, exact(v)) for k, v in value.items()])
    return (type(value).__name__, value)


def outcome(parse: Any, text: str | bytes) -> Any:
    try:
        return ("value", exact(parse(text)))
    except (ValueError, RecursionError) as exc:
        return ("error", type(exc).__name__, str(exc))


@PROPERTY
@given(documents())
def test_parse_reads_what_json_reads(text: str | bytes) -> None:
    assert outcome(json_objects.parse, text) == outcome(json_objects.loads, text)


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1, "a": 2}',  # orjson keeps the last value
        '[{"a": 1, "b": 2, "a": 3}]',
        '{"instances": [{"a": 1}], "instances": [{"a": 2}]}',
        '[{"a": {"b": 1, "b": 2}}]',  # deeper than the shapes' objects
        "[12345678901234567890123]",  # orjson: 1.2345678901234568e+22
        "[18446744073709551616, -9223372036854775809]",
        '{"a": -9223372036854775809}',
    ],
)
def test_what_orjson_reads_otherwise_is_read_by_json(text: str) -> None:
    assert outcome(json_objects.parse, text) == outcome(json_objects.loads, text)
    assert outcome(json_objects.parse, text.encode()) == outcome(json_objects.loads, text)


@pytest.mark.parametrize(
    "text",
    [
        '{"instances": [[1.5, "a", null, true], [-0.0, "b", 2, false]]}',
        '[{"f0": 1.5, "f1": "x"}, {"f0": null, "f1": "é"}]',
        '{"inputs": {"f0": [1, 2], "f1": ["a", "b"]}}',
        '{"dataframe_split": {"columns": ["f0"], "index": [0], "data": [[1]]}}',
        "[123456789012345678, -123456789012345678, 1e308, -0]",  # 18 digits: json's integers too
    ],
)
def test_a_requests_json_is_read_by_orjson(text: str) -> None:
    """The property above is not vacuous: the shapes requests send take orjson's value."""
    with mock.patch.object(json_objects, "loads", side_effect=AssertionError("read by json")):
        value = json_objects.parse(text.encode())
    assert exact(value) == exact(json.loads(text))


def batches(decode: Any, *args: Any) -> Any:
    try:
        return [spelled(batch) for batch in decode(*args)]
    except UserError as exc:
        return ("error", type(exc).__name__, str(exc), exc.code)


@PROPERTY
@given(streamed_bodies(), st.sampled_from([7, 4096, 1 << 20]), st.sampled_from([0, 64]))
def test_a_json_body_decodes_as_json_decoded_it(
    body: tuple[RequestSchema, bytes], block: int, run: int
) -> None:
    """Streamed (items a run at a time through parse) and whole (columns, a single record)."""
    schema, text = body
    with mock.patch.object(json_codec, "RUN_CHARS", run):
        new = streamed(schema, text, block), batches(lambda: [json_codec.decode(text, schema)])
        with mock.patch.object(json_objects, "parse", json_objects.loads):
            old = streamed(schema, text, block), batches(lambda: [json_codec.decode(text, schema)])
    assert new == old


@PROPERTY
@given(jsonlines_bodies())
def test_a_json_lines_body_decodes_as_json_decoded_it(body: tuple[RequestSchema, bytes]) -> None:
    schema, text = body
    new = batches(lambda: [jsonlines_codec.decode_by_line(text, schema, 3, 5)])
    with mock.patch.object(json_objects, "parse", json_objects.loads):
        old = batches(lambda: [jsonlines_codec.decode_by_line(text, schema, 3, 5)])
    assert new == old
