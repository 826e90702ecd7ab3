"""JSON Lines slices read by pyarrow.json decode to what the line-by-line path decodes.

``jsonlines.decode_lines`` reads a slice of records with pyarrow.json (``arrow_records``) and
leaves every slice Arrow might read otherwise to ``decode_by_line`` (:mod:`json`, a line at a
time).  The property: on JSON Lines text with hostile cells (``test_schema_by_column``'s, plus
raw number spellings such as ``-0``, ``1E400``, 25-digit integers, ``NaN``) and hostile lines (blank,
two records on one, a record over two, CRLF, a byte order mark, NUL, bytes that are not UTF-8,
escapes, repeated, unknown and missing keys, rows among records), both give the identical batch
(dtypes, float64 bits, the very text, NaN where missing) or the identical error (message, code).
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_schema_by_column import BIG, BY_COLUMN_ROWS, PROPERTY, WORDS, bodies, records_of, schemas, spelled

from byoc.artifact import Feature
from byoc.errors import UserError
from byoc.serving import schema as schema_module
from byoc.serving.codecs import jsonlines
from byoc.serving.schema import RequestSchema

RAW_NUMBERS = [
    "0.1", "-0", "-0.0", "0", "1E5", "1e-400", "-1e-400", "1e400", "12345678901234567890123", "9007199254740993",
    "18446744073709551617", "NaN", "-Infinity", "Infinity", "0.1", "5e-324", "2.2250738585072014e-308",
    "3.4028235e38", "3.5e38", "1.7976931348623157e308", "123456789012345678901234567890e-30", '"1"', "true", "1.5E+2",
]  # fmt: skip
LINE_CHANGES = [
    "blank", "two", "split", "crlf", "bom", "nul", "latin1", "escape", "repeat", "row", "space", "trailing"
]  # fmt: skip


def decoded(decode: Any, body: bytes, schema: RequestSchema) -> Any:
    try:
        return spelled(decode(body, schema, 3, 5))
    except UserError as exc:
        return ("error", str(exc), exc.code)


def line_of(draw: Any, record: Any, ascii_only: bool = True, raw: bool = True) -> str:
    """One record's JSON text (``ascii_only``: text beyond ASCII as escapes), ``raw``: a number
    cell now and then spelt as a raw token."""
    if type(record) is not dict:
        return json.dumps(record, ensure_ascii=ascii_only)
    cells = []
    for key, value in record.items():
        token = json.dumps(value, ensure_ascii=ascii_only)
        if (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and raw
            and draw(st.integers(0, 5)) == 5
        ):
            token = draw(st.sampled_from(RAW_NUMBERS))
        cells.append(f"{json.dumps(key, ensure_ascii=ascii_only)}:{token}")
    return "{" + ",".join(cells) + "}"


def changed(draw: Any, lines: list[bytes]) -> list[bytes]:
    """``lines`` with, now and then, one made hostile."""
    lines = list(lines)
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(lines) - 1))
        line = lines[at]
        change = draw(st.sampled_from(LINE_CHANGES))
        if change == "blank":
            lines.insert(at, draw(st.sampled_from([b"", b" ", b"\r", b"\t"])))
        elif change == "two" and at + 1 < len(lines):
            lines[at : at + 2] = [line + draw(st.sampled_from([b"", b" "])) + lines[at + 1]]
        elif change == "split" and b"," in line:
            cut = line.index(b",") + 1
            lines[at : at + 1] = [line[:cut], line[cut:]]
        elif change == "crlf":
            lines[at] = line + b"\r"
        elif change == "bom":
            lines[at] = b"\xef\xbb\xbf" + line
        elif change == "nul":
            lines[at] = line.replace(b'"', b'"\x00', 1)
        elif change == "latin1":
            lines[at] = line.replace(b'"', b'"\xe9', 1)
        elif change == "escape":
            lines[at] = line.replace(b'"f', b'"\\u0066', 1)
        elif change == "repeat" and line.startswith(b"{") and line != b"{}":
            first = line[1:].split(b",")[0].rstrip(b"}")
            lines[at] = b"{" + first + b"," + line[1:]
        elif change == "row":
            lines[at] = b"[" + line[1:-1] + b"]" if line.startswith(b"{") else line
        elif change == "space":
            lines[at] = b" " + line + b" "
        elif change == "trailing":
            lines[at] = line + b" x"
    return lines


PLAIN = {  # cells Arrow reads as json does, mostly: the slices the Arrow path takes
    True: st.one_of(
        st.floats(-1e38, 1e38),
        st.integers(-(2**70), 2**70),
        st.sampled_from([b for b in BIG if abs(b) < 1e38]),
    ),
    False: st.one_of(
        st.text(st.characters(exclude_categories=("Cc", "Cs"), exclude_characters='"\\')),
        st.sampled_from([w for w in WORDS if w.isprintable()]),
    ),
}


PLAIN_SCHEMAS = st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=4).map(
    lambda kinds: RequestSchema(
        [
            Feature(f"f{i}", *(("numeric", "float64") if n else ("categorical", "str")), optional=o)
            for i, (n, o) in enumerate(kinds)
        ]
    )
)


@st.composite
def plain_rows(draw: Any) -> tuple[RequestSchema, list[list[Any]]]:
    """A schema and rows of numbers for its numeric features and text for the others, now and
    then a hostile cell (test_schema_by_column's ``bodies``) or a null."""
    schema = draw(st.one_of(PLAIN_SCHEMAS, schemas))
    count = draw(st.sampled_from([BY_COLUMN_ROWS, 9, 20]))
    rows = [[draw(PLAIN[numeric]) for numeric in schema.numeric] for _ in range(count)]
    for _ in range(draw(st.integers(0, 1))):
        other = draw(bodies())[1]
        rows[draw(st.integers(0, count - 1))][draw(st.integers(0, schema.width - 1))] = draw(
            st.sampled_from([None, *other[0]])
        )
    return schema, rows


@st.composite
def jsonlines_bodies(draw: Any) -> tuple[RequestSchema, bytes]:
    schema, rows = draw(st.one_of(plain_rows(), bodies()))
    records = (
        records_of(draw, schema, rows)
        if draw(st.booleans())
        else [dict(zip(schema.names, r, strict=True)) for r in rows]
    )
    ascii_only, raw = draw(st.booleans()), draw(st.booleans())
    lines = changed(
        draw, [line_of(draw, r, ascii_only, raw).encode("utf-8", "surrogatepass") for r in records]
    )
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    return schema, ending.join(lines) + draw(st.sampled_from([ending, b""]))


@PROPERTY
@given(jsonlines_bodies())
def test_a_slice_read_by_arrow_is_the_slice_read_line_by_line(body: Any) -> None:
    schema, text = body
    with (
        mock.patch.object(schema_module, "BY_COLUMN_ROWS", BY_COLUMN_ROWS),
        mock.patch.object(jsonlines, "ARROW_LINES", BY_COLUMN_ROWS),
    ):
        assert decoded(jsonlines.decode_lines, text, schema) == decoded(
            jsonlines.decode_by_line, text, schema
        )
        by_arrow = jsonlines.arrow_records(text, schema)
    if by_arrow is not None:
        assert spelled(by_arrow) == decoded(jsonlines.decode_by_line, text, schema)


FEATURES = [
    Feature("age", "numeric", "float64"),
    Feature("job", "categorical", "str", ("admin", "chef")),
    Feature("days", "numeric", "float64", optional=True),
]


@pytest.mark.parametrize("ending", [b"\n", b"\r\n", b""])
def test_a_plain_body_of_records_is_read_by_arrow(ending: bytes) -> None:
    """The property above is not vacuous: the records a batch transform sends take the Arrow path
    (an optional key left out or null, a required one null, text beyond ASCII)."""
    schema = RequestSchema(FEATURES)
    lines = [
        json.dumps(
            {
                "age": [i * 0.25 - 3, None][i % 5 == 0],
                "job": ["admin", "chéf", None][i % 3],
                **({"days": [i, None][i % 2]} if i % 3 else {}),
            },
            ensure_ascii=False,
        )
        for i in range(BY_COLUMN_ROWS * 2)
    ]
    body = (ending or b"\n").join(line.encode() for line in lines) + ending
    if ending == b"\r\n":
        body = body.replace(b": ", b":")  # "age":null spelt compactly, as pandas writes it
    with (
        mock.patch.object(schema_module, "BY_COLUMN_ROWS", BY_COLUMN_ROWS),
        mock.patch.object(jsonlines, "ARROW_LINES", BY_COLUMN_ROWS),
    ):
        by_arrow = jsonlines.arrow_records(body, schema)
        assert by_arrow is not None
        assert spelled(by_arrow) == spelled(jsonlines.decode_by_line(body, schema, 0, 0))


@pytest.mark.parametrize(
    "line",
    [
        b'{"age": -0, "job": "chef"}',  # Arrow: -0.0; json: the integer 0
        b'{"age": NaN, "job": "chef"}',
        b'{"job": "chef"}',  # Arrow reads a key left out as null
        b'{"age": null, "job": "chef"}\n{"job": "chef"}',  # one null written, one left out
        b'{"age": 1, "job": "chef", "age": 2}',
        b'{"age": 1, "job": "ch\\u00e9f"}',
        b'\xef\xbb\xbf{"age": 1, "job": "chef"}',
        b'{"age": 1, "job": "chef"} {"age": 1, "job": "chef"}',
        b'{"age": 1,\n"job": "chef"} {"age": 1, "job": "chef"}',  # as many records as lines, not one a line
        b'{"age": 3.5e38, "job": "chef"}',  # beyond float32: the 400 names it
        b'{"age": Infinity, "job": "chef"}',
        b'{"age": 1, "job": "ch\xe9f"}',  # not UTF-8
        b'{"age": 1, "job": "ch\x00f"}',
    ],
)
def test_a_slice_arrow_might_read_otherwise_is_read_line_by_line(line: bytes) -> None:
    schema = RequestSchema(FEATURES)
    plain = b'{"age": 1, "job": "chef"}'
    body = b"\n".join([plain] * 8 + [line] + [plain] * 8) + b"\n"
    with (
        mock.patch.object(schema_module, "BY_COLUMN_ROWS", BY_COLUMN_ROWS),
        mock.patch.object(jsonlines, "ARROW_LINES", BY_COLUMN_ROWS),
    ):
        assert jsonlines.arrow_records(body, schema) is None
        assert decoded(jsonlines.decode_lines, body, schema) == decoded(
            jsonlines.decode_by_line, body, schema
        )


def test_a_null_found_across_a_texts_closing_quote_is_not_taken_for_a_written_one() -> None:
    """In ``{"job":": null"}`` the bytes ``":": null`` run from the closing quote of "job" to a
    null inside a text: a required feature named ':' left out is not a written null there."""
    schema = RequestSchema([Feature(":", "numeric", "float64"), Feature("job", "categorical", "str", ("a",))])
    plain = b'{":": 1, "job": "chef"}'
    body = b"\n".join([plain] * 8 + [b'{"job":": null"}'] + [plain] * 8) + b"\n"
    with mock.patch.object(jsonlines, "ARROW_LINES", BY_COLUMN_ROWS):
        assert jsonlines.arrow_records(body, schema) is None
        assert decoded(jsonlines.decode_lines, body, schema)[0] == "error"


def test_a_null_written_with_any_spacing_is_read_by_arrow() -> None:
    schema = RequestSchema(FEATURES)
    lines = [b'{"age" :\tnull , "job": "chef"}', b'{"age":null,"job":"chef"}'] * 8
    body = b"\r\n".join(lines)
    with mock.patch.object(jsonlines, "ARROW_LINES", BY_COLUMN_ROWS):
        by_arrow = jsonlines.arrow_records(body, schema)
        assert by_arrow is not None
        assert spelled(by_arrow) == spelled(jsonlines.decode_by_line(body, schema, 0, 0))
