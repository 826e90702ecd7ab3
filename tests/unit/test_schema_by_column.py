"""JSON rows and records converted a column at a time give what value-by-value conversion gives.

``RequestSchema.from_rows``/``from_records`` take a batch of JSON values a feature at a time
(byoc.values' column functions) and keep ``rows_by_cell``/``records_by_cell``, the value-by-value
path, for the rest.  The property: on JSON bodies with hostile cells (booleans, integers past
2**53 and 2**63 and past any float, NaN and infinities, numbers and words as text with spaces,
leading zeros and exponents, lone surrogates, nested values) and hostile rows (scalars, wrong
widths, records with keys left out, unknown or spelt otherwise), both paths give the identical
batch (dtypes, float64 bits, the very text, NaN where missing) or the identical error (message,
code).
"""

from __future__ import annotations

import json
import math
from typing import Any
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byoc import json_objects
from byoc.artifact import Feature
from byoc.errors import SchemaError, UserError
from byoc.serving import schema as schema_module
from byoc.serving.codecs import json as json_codec
from byoc.serving.codecs import jsonlines as jsonlines_codec
from byoc.serving.schema import Batch, RequestSchema

BY_COLUMN_ROWS = 8  # the tests' batches take the column path from this many rows on
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KINDS = {
    "numeric": lambda name, optional: Feature(name, "numeric", "float64", optional=optional),
    "flag": lambda name, optional: Feature(name, "numeric", "bool", optional=optional),
    "categorical": lambda name, optional: Feature(name, "categorical", "str", ("a",), optional=optional),
}
schemas = st.lists(st.tuples(st.sampled_from(sorted(KINDS)), st.booleans()), min_size=1, max_size=4).map(
    lambda kinds: RequestSchema([KINDS[k](f"f{i}", opt) for i, (k, opt) in enumerate(kinds)])
)

BIG = [
    2**53 - 1,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**63 + 1,
    2**64 + 1,
    -(2**63) - 1,
    10**39,
    10**400,
    -(10**400),
]
WORDS = [
    *[" 1", "007", "1e3", "-1E-3", ".5", "+4", "2.", " 2.0 ", "1e400", "-1e400", "1e", "--1", "1-2", "1_000"],
    *["0x10", "inf", "-Infinity", "NaN", "nan", "NA", "n/a", "None", "null", "<NA>", "#N/A", "", " ", "\t"],
    *[
        "true",
        " FALSE ",
        "True",
        "yes",
        "é",
        "😀",
        "\ud800",
        "a\x00b",
        "level_1",
        " padded ",
        "3.4e38",
        "3.5e38",
    ],
]
finite = st.floats(allow_nan=False, allow_infinity=False)
numbers = st.one_of(st.integers(-(10**6), 10**6), finite, st.sampled_from(BIG), st.none())
floats_any = st.one_of(st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 3.5e38]))
texts = st.one_of(st.sampled_from(WORDS), st.text(max_size=5), st.none())
number_texts = st.one_of(st.sampled_from(WORDS[:14]), finite.map(repr), st.integers().map(str), st.none())
hostile = st.one_of(
    st.booleans(),
    floats_any,
    st.sampled_from(BIG),
    texts,
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)
# a column is mostly of one kind, as real columns are, so the by-column path is taken; a few of
# them mix kinds, or hold a hostile value among plain ones
column_kinds = st.sampled_from(["numbers", "floats", "texts", "number_texts", "hostile", "ints"])
CELLS = {
    "numbers": numbers,
    "floats": floats_any,
    "texts": texts,
    "number_texts": number_texts,
    "hostile": hostile,
    "ints": st.integers(),
}


@st.composite
def bodies(draw: Any) -> tuple[RequestSchema, list[list[Any]]]:
    """A schema and JSON rows for it, parsed from their JSON text as a request's would be."""
    schema = draw(schemas)
    count = draw(st.sampled_from([1, 2, BY_COLUMN_ROWS - 1, BY_COLUMN_ROWS, 12, 40]))
    columns = []
    for _ in schema.names:
        kind = draw(column_kinds)
        column = draw(st.lists(CELLS[kind], min_size=count, max_size=count))
        if draw(st.integers(0, 4)) == 0:  # one hostile value among the column's own
            column[draw(st.integers(0, count - 1))] = draw(hostile)
        columns.append(column)
    rows = [list(row) for row in zip(*columns, strict=True)]
    text = json.dumps(rows)  # NaN and infinities as JSON's NaN/Infinity tokens, which Python reads
    return schema, json_objects.loads(text)


def outcome(convert: Any, items: Any) -> Any:
    """A batch spelled to compare exactly, or the error it raised."""
    try:
        batch = convert(items)
    except SchemaError as exc:
        return ("error", str(exc), exc.code)
    return spelled(batch)


def spelled(batch: Batch) -> Any:
    """The batch as the model meets it: float64 bits, each text and NaN as such, and the dtypes
    of the frame the pipeline takes.  A text column may be held as objects (the value-by-value
    path) or as Arrow text (a column at a time): the frame's columns are pandas' ``str`` either
    way, an all-missing one object either way."""
    columns = []
    for column in batch.columns:
        if column.dtype == np.float64:
            columns.append(("float64", column.view(np.uint64).tolist()))  # the bits: -0.0, NaN's too
        else:
            assert column.dtype in (object, schema_module.ARROW_TEXT), column.dtype
            columns.append(("text", [("NaN",) if v != v else (type(v).__name__, v) for v in column.tolist()]))
    try:
        dtypes = [str(dtype) for dtype in batch.frame().dtypes]
    except UnicodeEncodeError:  # a lone surrogate, which pandas' str cannot hold: object columns
        dtypes = ["a lone surrogate"]
    return ("batch", batch.names, len(batch), columns, dtypes)


def hostile_rows(draw: Any, rows: list[list[Any]], width: int) -> list[Any]:
    """``rows`` with, now and then, a row that is a scalar, a record or of the wrong width."""
    rows = list(rows)
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(rows) - 1))
        if type(rows[at]) is not list:
            continue
        rows[at] = draw(
            st.one_of(
                st.just(rows[at][:-1]),
                st.just([*rows[at], 1]),
                st.just(tuple(rows[at])),
                st.sampled_from([None, 1, "row", {"f0": 1}]),
            )
        )
    return rows


def records_of(draw: Any, schema: RequestSchema, rows: list[list[Any]]) -> list[Any]:
    """``rows`` as records, now and then with a key left out, added, or spelt otherwise."""
    records: list[Any] = [dict(zip(schema.names, row, strict=True)) for row in rows]
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(records) - 1))
        if type(records[at]) is not dict:
            continue
        record = dict(records[at])
        name = draw(st.sampled_from(schema.names))
        change = draw(st.sampled_from(["drop", "unknown", "relaxed", "scalar", "row"]))
        if change == "drop":
            record.pop(name, None)
        elif change == "unknown":
            record["extra"] = 1
        elif change == "relaxed" and name in record:
            record[f" {name.upper()} "] = record.pop(name)
        elif change == "scalar":
            record = draw(st.sampled_from([None, 1, "record"]))
        else:
            record = list(record.values())
        records[at] = record
    return records


@PROPERTY
@given(bodies(), st.data())
def test_rows_by_column_are_rows_by_cell(body: Any, data: Any) -> None:
    schema, rows = body
    rows = hostile_rows(data.draw, rows, schema.width) if data.draw(st.booleans()) else rows
    expected = outcome(schema.rows_by_cell, rows)
    with mock.patch.object(schema_module, "BY_COLUMN_ROWS", BY_COLUMN_ROWS):
        assert outcome(schema.from_rows, rows) == expected
    by_column = schema.rows_by_column(rows)
    if by_column is not None:
        assert spelled(by_column) == expected


@PROPERTY
@given(bodies(), st.data())
def test_records_by_column_are_records_by_cell(body: Any, data: Any) -> None:
    schema, rows = body
    if data.draw(st.booleans()):
        records = records_of(data.draw, schema, rows)
    else:
        records = [dict(zip(schema.names, row, strict=True)) for row in rows]
    for record in records:  # an optional feature's key left out now and then
        if type(record) is dict and schema.optional and data.draw(st.integers(0, 3)) == 0:
            record.pop(data.draw(st.sampled_from(sorted(schema.optional))), None)
    expected = outcome(schema.records_by_cell, records)
    with mock.patch.object(schema_module, "BY_COLUMN_ROWS", BY_COLUMN_ROWS):
        assert outcome(schema.from_records, records) == expected
    by_column = schema.records_by_column(records)
    if by_column is not None:
        assert spelled(by_column) == expected


@PROPERTY
@given(bodies())
def test_columns_are_the_rows_they_hold(body: Any) -> None:
    """``{"inputs": {"f0": [...], ...}}`` converted from its columns as sent is its rows'
    batch, or their error."""
    schema, rows = body
    columns = {name: [row[j] for row in rows] for j, name in enumerate(schema.names)}
    with mock.patch.object(schema_module, "BY_COLUMN_ROWS", BY_COLUMN_ROWS):
        assert outcome(schema.from_columns, columns) == outcome(schema.from_rows, rows)
    assert outcome(schema.from_columns, columns) == outcome(schema.rows_by_cell, rows)


SCHEMA = RequestSchema(
    [
        Feature("age", "numeric", "float64"),
        Feature("job", "categorical", "str", ("admin",)),
        Feature("score", "numeric", "float64", optional=True),
    ]
)
PLAIN = [
    [30 + i, f"job {i % 3}" if i % 5 else None, [1.5, None, 2**64, " 007 ", "NA"][i % 5]] for i in range(40)
]


@pytest.mark.parametrize("shape", ["rows", "records", "records leaving out score"])
def test_json_columns_of_one_kind_take_the_column_path(shape: str) -> None:
    """Numbers, nulls and number text in a numeric column, text and nulls in a categorical one:
    the column path's batch, equal to the value-by-value one (so the property above is not
    checking a path that never runs)."""
    if shape == "rows":
        rows: list[Any] = PLAIN
        batch, reference = SCHEMA.rows_by_column(rows), SCHEMA.rows_by_cell(rows)
    else:
        rows = [dict(zip(SCHEMA.names, row, strict=True)) for row in PLAIN]
        if shape == "records leaving out score":
            rows = [{k: v for k, v in r.items() if k != "score" or i % 2} for i, r in enumerate(rows)]
        batch, reference = SCHEMA.records_by_column(rows), SCHEMA.records_by_cell(rows)
    assert batch is not None
    assert spelled(batch) == spelled(reference)
    assert batch.columns[1].dtype == schema_module.ARROW_TEXT  # coded in Arrow, as CSV's text


@pytest.mark.parametrize(
    ("shape", "body"),
    [
        ("instances", lambda rows: json.dumps({"instances": rows})),
        ("records", lambda rows: json.dumps([dict(zip(SCHEMA.names, r, strict=True)) for r in rows])),
        (
            "JSON Lines",
            lambda rows: "".join(json.dumps(dict(zip(SCHEMA.names, r, strict=True))) + "\n" for r in rows),
        ),
    ],
)
def test_a_large_json_batchs_categories_are_arrow_text_and_a_column_of_no_value_objects(
    shape: str, body: Any
) -> None:
    """The encoder codes Arrow text in one Arrow lookup, object text cell by cell (the decision
    tree's encoder took ten times the CPU on a JSON batch as on the same rows sent as CSV); a
    column with no value stays NaN objects, as the frame of the value-by-value path holds it."""
    rows = [[i, f"job {i % 3}", i / 2] for i in range(schema_module.BY_COLUMN_ROWS)]
    codec = jsonlines_codec if shape == "JSON Lines" else json_codec
    batch = codec.decode(body(rows).encode(), SCHEMA)
    assert batch.columns[1].dtype == schema_module.ARROW_TEXT
    assert batch.columns[1][:4].tolist() == ["job 0", "job 1", "job 2", "job 0"]
    for row in rows:
        row[1] = [None, "", " "][row[0] % 3]  # every spelling of missing
    batch = codec.decode(body(rows).encode(), SCHEMA)
    assert batch.columns[1].dtype == object and pd.isna(batch.columns[1]).all()
    assert str(batch.frame().dtypes["job"]) == "object"


def test_a_refused_value_is_named_in_the_bodys_order_whatever_its_column() -> None:
    """Row 3's bad category comes before row 5's bad number, though numbers are read first."""
    rows = [list(row) for row in PLAIN * 30]  # past BY_COLUMN_ROWS: the column path first
    rows[4][0] = "ten"
    rows[2][1] = [1]
    for decode, body in [
        (json_codec.decode, json.dumps({"instances": rows}).encode()),
        (jsonlines_codec.decode, "".join(json.dumps(r) + "\n" for r in rows).encode()),
    ]:
        with pytest.raises(
            SchemaError, match=r"^row 3, column 'job' \(categorical\): a list is not a category"
        ) as info:
            decode(body, SCHEMA)
        assert info.value.code == "bad_value"


def test_a_single_row_of_number_text_with_a_list_for_a_category_is_a_400_naming_it() -> None:
    """The single-row path read the numbers of ``["30", [1], "2"]`` and let the category's
    refusal escape without its row and column: a 500 where the client's mistake is a 400."""
    with pytest.raises(
        SchemaError, match=r"^row 1, column 'job' \(categorical\): a list is not a category"
    ) as info:
        json_codec.decode(json.dumps({"instances": [["30", [1], "2"]]}).encode(), SCHEMA)
    assert info.value.code == "bad_value"


SEPARATORS = st.sampled_from([",[", ", [", ",{", ",\n {", "],[", "},{", '"],["', "[", "{", ","])


@st.composite
def streamed_bodies(draw: Any) -> tuple[RequestSchema, bytes]:
    """A list of rows or records as JSON text, with texts that hold item separators, and now and
    then a fault: a repeated key, a cut, a stray character."""
    schema, rows = draw(bodies())
    for row in rows:
        if draw(st.integers(0, 3)) == 0:
            row[draw(st.integers(0, len(row) - 1))] = draw(SEPARATORS)
    items: list[Any] = rows
    if draw(st.booleans()):
        items = [dict(zip(schema.names, row, strict=True)) for row in rows]
    shape = draw(st.sampled_from(["list", "instances", "split"]))
    document: Any = {"list": items, "instances": {"instances": items}}.get(shape)
    if shape == "split":
        document = {"dataframe_split": {"columns": list(schema.names), "data": rows}}
    text = json.dumps(document, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    fault = draw(
        st.sampled_from(["none", "none", "repeat", "cut", "stray", "not utf-8", "not utf-8 at the end"])
    )
    at = draw(st.integers(0, len(text)))
    if fault == "repeat" and '{"f0"' in text:
        at = text.index('{"f0"', min(at, text.rindex('{"f0"')))
        text = text[:at] + '{"f0": 1, ' + text[at + 1 :]
    elif fault == "cut":
        text = text[:at]
    elif fault == "stray":
        text = text[:at] + draw(st.sampled_from(["]", "}", ",", "x", '"', "[1,{"])) + text[at:]
    body = text.encode("utf-8", "surrogatepass")
    if fault.startswith("not utf-8"):  # met only when the text is read that far
        at = len(body) if fault.endswith("end") else min(at, len(body))
        body = body[:at] + b"\xff" + body[at:]
    return schema, body


def streamed(schema: RequestSchema, body: bytes, block: int) -> Any:
    chunks = [body[i : i + block] for i in range(0, len(body), block)]
    try:
        return [spelled(batch) for batch in json_codec.decode_stream(chunks, schema)]
    except UserError as exc:
        return ("error", type(exc).__name__, str(exc), getattr(exc, "code", None))


@PROPERTY
@given(
    streamed_bodies(),
    st.sampled_from([1, 7, 64, 4096, 1 << 20]),
    st.sampled_from([1, 40, 300, 1 << 20]),
    st.sampled_from([0, 1, 64]),
)
def test_a_streamed_lists_items_decoded_together_are_its_items_decoded_one_by_one(
    body, block, batch_chars, run_chars
):
    """``_Text.values_before`` decodes a run of a batch's items in one call: the same batches
    (their boundaries too) and the same errors as decoding them one by one."""
    schema, text = body
    with (
        mock.patch.object(json_codec, "STREAM_BATCH_CHARS", batch_chars),
        mock.patch.object(json_codec, "RUN_CHARS", run_chars),
    ):
        together = streamed(schema, text, block)
        with mock.patch.object(json_codec._Text, "values_before", lambda self, limit: []):
            one_by_one = streamed(schema, text, block)
    assert together == one_by_one
