"""Property tests for every serving codec: two paths that must agree, on generated text holding
quotes, commas, spaces, newlines, unicode and empty values.

Decoders: each format's bytes, written the standard way (csv module, json, pandas/pyarrow,
numpy.save), decode to exactly what the schema makes of the same values directly
(``RequestSchema.from_rows``/``from_records``: the one place the value rules live); CSV's fast
(pyarrow) path, CSV sliced at record boundaries and JSON parsed as it arrives agree with the
one-piece decode.  Encoders: each response parses back, with the standard parsers, to the
prediction's own values.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byoc.artifact import Feature
from byoc.errors import DataError, NotAcceptable, PayloadTooLarge, SchemaError
from byoc.serving.builtin import decode_batches
from byoc.serving.codecs import csv as csv_codec
from byoc.serving.codecs import json as json_codec
from byoc.serving.codecs import jsonlines as jsonlines_codec
from byoc.serving.codecs import npy as npy_codec
from byoc.serving.codecs import parquet as parquet_codec
from byoc.serving.output import LABELS, PREDICTED_LABEL, PROBABILITIES, PROBABILITY, Prediction
from byoc.serving.schema import Batch, RequestSchema

SCHEMA = RequestSchema(
    [
        Feature("age", "numeric", "float64"),
        Feature("job", "categorical", "str", ("admin", "a, b")),
        Feature("city", "categorical", "str", ()),
    ]
)
NUMERIC = RequestSchema([Feature("x", "numeric", "float64"), Feature("y", "numeric", "float64")])
NAMES = list(SCHEMA.names)

# text a user may send: quotes, commas, spaces, newlines, unicode, empty; never a feature name
TRICKY = st.sampled_from(['"', '""', ",", " ", "  padded  ", "\n", "line\nbreak", "é", "😀", "a,b", "", "'"])
text = st.one_of(
    TRICKY,
    st.lists(
        st.one_of(TRICKY, st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=6)),
        max_size=4,
    ).map("".join),
).filter(lambda s: s.strip() not in NAMES)
numbers = st.one_of(
    st.none(),
    st.integers(-(10**6), 10**6),
    st.floats(-1e30, 1e30, allow_nan=False, allow_infinity=False),
)
rows = st.lists(st.tuples(numbers, text, text).map(list), min_size=1, max_size=30)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(a: Batch, b: Batch) -> bool:
    if a.names != b.names or len(a) != len(b):
        return False
    for x, y in zip(a.columns, b.columns, strict=True):
        if x.dtype.kind == "f":
            if not np.array_equal(x, y.astype(np.float64), equal_nan=True):
                return False
        elif [None if v != v else v for v in x] != [None if v != v else v for v in y]:  # NaN: missing
            return False
    return True


def concat(batches: list[Batch]) -> Batch:
    return Batch(
        SCHEMA.names, tuple(np.concatenate(cols) for cols in zip(*(b.columns for b in batches), strict=True))
    )


def csv_text(table: list[list]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([["" if v is None else v for v in row] for row in table])
    return out.getvalue().encode("utf-8")


def as_csv_cells(table: list[list]) -> list[list[str]]:
    """What CSV carries: every value as its text, a missing one as an empty cell."""
    return [["" if v is None else str(v) for v in row] for row in table]


@PROPERTY
@given(rows)
def test_csv_decodes_like_the_schema_reads_its_cells(table):
    assert same(csv_codec.decode(csv_text(table), SCHEMA), SCHEMA.from_rows(as_csv_cells(table)))


@PROPERTY
@given(rows, st.integers(1, 40))
def test_csv_fast_path_and_record_slices_agree_with_the_small_path(table, repeats):
    block = csv_text(table)
    copies = csv_codec.SMALL_BODY // len(block) + repeats  # above 64 KiB: pyarrow's path
    body = block * copies
    whole = SCHEMA.from_rows(as_csv_cells(table * copies))
    assert same(csv_codec.decode(body, SCHEMA), whole)
    # cut where the slicer cuts (at a record boundary, quotes respected), decode each piece
    pieces, rest = [], body
    while rest:
        cut = csv_codec.whole_records(rest[: max(1, len(rest) // 3)]) or len(rest)
        pieces.append(rest[:cut])
        rest = rest[cut:]
    assert same(concat([csv_codec.decode(piece, SCHEMA) for piece in pieces]), whole)


ONE = RequestSchema([Feature("x", "numeric", "float64")])
ONE_CELL = st.one_of(st.sampled_from(["", "", "  ", '""']), st.floats(-1e6, 1e6, allow_nan=False).map(repr))


@PROPERTY
@given(st.lists(ONE_CELL, min_size=1, max_size=30), st.booleans(), st.sampled_from(["\n", "\r\n"]), st.data())
def test_every_csv_line_is_a_record_empty_lines_too(cells, large, newline, data):
    """Batch transform pairs answers with lines by position: an empty line is a record (one empty
    value, missing for a one-feature model, as its quoted form is) on the small path, pyarrow's
    (above 64 KiB) and across slices, even a slice of empty lines only; a final newline is none.
    Empty lines were skipped, so every later answer was paired with the wrong input."""
    if large:
        cells = cells * (csv_codec.SMALL_BODY // len(newline.join(cells) + newline) + 1)
    body = (newline.join(cells) + newline).encode()
    expected = ONE.from_rows([["" if cell == '""' else cell] for cell in cells])
    assert len(expected) == len(cells)
    assert same(csv_codec.decode(body, ONE), expected)
    lines = body.splitlines(keepends=True)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(1, len(lines) - 1)), max_size=4))))
    pieces = [b"".join(lines[a:b]) for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]
    batches = list(decode_batches(_Slices(pieces), csv_codec.DECODER, ONE, 1 << 30))
    got = Batch(ONE.names, (np.concatenate([b.columns[0] for b in batches]),))
    assert same(got, expected)


class _Slices:
    """A request body cut into the given slices (the app cuts large ones at about 4 MiB)."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = [p for p in pieces if p]

    def read(self) -> bytes:
        return b"".join(self.pieces)

    def line_slices(self, whole_records=None):
        return iter(self.pieces)


JSONL_LINE = st.sampled_from(["[1.5, 2]", "[-1,\r3]", "[0, 0]\r"])
JSONL_BLANK = st.sampled_from(["", "  ", "\r", " \t\r"])


@PROPERTY
@given(
    st.lists(JSONL_LINE, min_size=1, max_size=20),
    st.sampled_from(['[1, "', '{"x": 1, "y": 2}', "7"]),
    st.lists(JSONL_LINE, max_size=5),
    st.data(),
)
def test_jsonlines_errors_name_the_bodys_own_line_across_slices(before, bad, after, data):
    """Lines end at LF only (a CR, trailing or inside, is JSON whitespace) and are numbered as the
    body numbers them, also in a later slice: a bare CR split a line, and a record among rows
    named no line."""
    before = ["[2, 3]", *before]  # a row first: a record after it mixes the kinds
    lines = [line + "\n" for line in [*before, bad, *after]]
    body = "".join(lines).encode()
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(lines)), max_size=3))))
    pieces = ["".join(lines[a:b]).encode() for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]
    # kinds are compared within a slice (each slice is decoded alone): a record that starts a later
    # slice after rows is answered as a record, so the mixed body is cut only where the slices allow
    start = max(cut for cut in [0, *cuts] if cut <= len(before))  # of the bad line's slice
    alone = bad.startswith("{") and not any(line.strip() for line in before[start:])
    for request in ([body], [body] if alone else pieces):
        with pytest.raises(DataError) as info:
            list(decode_batches(_Slices(request), jsonlines_codec.DECODER, NUMERIC, 1 << 30))
        assert info.value.message.startswith(f"line {len(before) + 1} of the JSON Lines body"), (
            info.value.message
        )
    good = "".join(line + "\n" for line in before).encode()
    rows = [json.loads(line) for line in before]
    assert same(jsonlines_codec.decode(good, NUMERIC), NUMERIC.from_rows(rows))


@PROPERTY
@given(
    st.lists(JSONL_LINE, max_size=20),
    JSONL_BLANK,
    st.lists(st.one_of(JSONL_LINE, JSONL_BLANK), max_size=5),
    st.booleans(),
    st.data(),
)
def test_a_blank_jsonlines_line_is_a_400_naming_it_across_slices(before, blank, after, final, data):
    """Batch transform pairs answers with lines by position: a blank line (spaces, a CR) is a 400
    naming it, in any slice, even a slice of blank lines only; a final newline ends the last line.
    Blank lines were skipped, so every later answer was paired with the wrong input line."""
    lines = [line + "\n" for line in ["[2, 3]", *before, blank, *after]]
    if not final and lines[-1] != "\n":  # (an empty last line without its newline would be none)
        lines[-1] = lines[-1][:-1]
    body = "".join(lines).encode()
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(lines)), max_size=3))))
    pieces = ["".join(lines[a:b]).encode() for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]
    for request in ([body], pieces):
        with pytest.raises(DataError) as info:
            list(decode_batches(_Slices(request), jsonlines_codec.DECODER, NUMERIC, 1 << 30))
        assert info.value.message.startswith(f"line {len(before) + 2} of the JSON Lines body is empty"), (
            info.value.message
        )
        assert info.value.code == "bad_row"


# A schema mixing the kinds, and cells a CSV row may hold in any of its columns
MIXED = RequestSchema(
    [
        Feature("n0", "numeric", "float64"),
        Feature("c0", "categorical", "str", ("None", "a, b")),
        Feature("n1", "numeric", "float64"),
        Feature("n2", "numeric", "float64"),
        Feature("c1", "categorical", "str", ()),
    ]
)
HOSTILE_CELLS = st.one_of(
    st.sampled_from(
        ["None", "NA", "N/A", "<NA>", "null", "NULL", "NaN", "#N/A", "true", "FALSE", " True ", "yes"]
        + ["007", "-0012.50", "1e3", "1E-7", "+4", ".5", "1.", "2.0", " 3 ", "\t5\t", "inf", "-Infinity"]
        + ["1_000", "0x10", "1e", "--1", "1,5", "a, b", 'say "hi"', "", "  ", "café", "٣", "😀", "1e40"]
        + ["123456789012345678901234567890", "1" + "0" * 400, "0" * 30 + "1"]
    ),
    st.floats(allow_nan=False).map(repr),
    st.integers(-(10**40), 10**40).map(str),
    st.integers(0, 10**6).map(lambda n: f"{n}.0"),
    st.text(max_size=6),
).filter(lambda cell: cell.strip() not in MIXED.names and "\r" not in cell)  # csv_text leaves \r unquoted
NUMBER_CELLS = st.one_of(
    st.floats(-1e30, 1e30, allow_nan=False).map(repr),
    st.integers(-(10**20), 10**20).map(str),
    st.integers(0, 10**6).map(lambda n: f"00{n}.0"),
    st.sampled_from(["1e3", "-2.5E-3", "+4", ".5", "1."]),
)
NUMBER_OR_HOSTILE = st.one_of(NUMBER_CELLS, NUMBER_CELLS, HOSTILE_CELLS)  # the row read at once, mostly


def decoded(body: bytes, schema: RequestSchema) -> Batch | tuple[str, str]:
    """The decoder's batch, or the (code, message) of the SchemaError it raises."""
    try:
        return csv_codec.decode(body, schema)
    except SchemaError as exc:
        return exc.code, exc.message


@PROPERTY
@given(st.tuples(NUMBER_OR_HOSTILE, HOSTILE_CELLS, NUMBER_OR_HOSTILE, NUMBER_OR_HOSTILE, HOSTILE_CELLS))
def test_a_single_row_decodes_as_in_a_batch(row):
    """A single-row CSV request (read at once where it can, :meth:`RequestSchema._text_row`)
    against the same row in a batch read value by value (two rows) and in one read by Arrow's
    column rules (a large body): the same typed values, or the same refusal."""
    body = csv_text([list(row)])
    single = decoded(body, MIXED)
    by_value = decoded(body * 2, MIXED)
    by_column = decoded(body * (csv_codec.SMALL_BODY // len(body) + 1), MIXED)
    if isinstance(single, Batch):
        for batch in (by_value, by_column):
            assert isinstance(batch, Batch), batch
            assert same(single, Batch(batch.names, tuple(column[:1] for column in batch.columns)))
            assert [c.dtype for c in single.columns] == [c.dtype for c in by_value.columns]
    else:
        assert single == by_value
        assert not isinstance(by_column, Batch) and by_column[0] == single[0]


LINE_TEXT = st.text(alphabet=',"\r\n \t\x00\x0b\x85\u2028aé1', max_size=20)


@PROPERTY
@given(st.one_of(LINE_TEXT, st.tuples(LINE_TEXT, st.sampled_from(["", "\n", "\r\n"])).map("".join)))
def test_a_line_without_quotes_splits_as_csv_reader_reads_it(text):
    cells = csv_codec._unquoted_line(text)
    if cells is not None:  # else csv.reader reads it
        assert [cells] == [row for row in csv.reader(io.StringIO(text), strict=True) if row]


JSON_SHAPES = [
    "rows",
    "records",
    "instances",
    "inputs",
    "split",
    "split with index",
    "split data first",
    "columns",
]
STREAMED_WHEN_LARGE = {"rows", "records", "instances", "inputs", "split", "split with index"}


def json_document(shape: str, table: list[list]) -> object:
    """``table`` in one of the JSON shapes the server accepts (split: columns in another order)."""
    records = [dict(zip(NAMES, row, strict=True)) for row in table]
    order = NAMES[::-1]
    data = [[record[name] for name in order] for record in records]
    return {
        "rows": table,
        "records": records,
        "instances": {"instances": table},
        "inputs": {"inputs": records},
        "split": {"dataframe_split": {"columns": order, "data": data}},
        "split with index": {
            "params": {"note": [1, {"deep": [2, "x"]}]},
            "dataframe_split": {"columns": order, "index": list(range(len(data))), "data": data},
        },
        "split data first": {"dataframe_split": {"data": data, "columns": order}},
        "columns": {"inputs": {name: [record[name] for record in records] for name in NAMES}},
    }[shape]


@PROPERTY
@given(
    rows,
    st.sampled_from(JSON_SHAPES),
    st.integers(1, 64),
    st.sampled_from([1, 50, 4 * 1024 * 1024]),
    st.booleans(),
)
def test_json_streamed_and_whole_decode_like_the_schema(table, shape, block, batch_chars, large):
    """Every shape decodes whole and as it arrives alike; a body "larger" than the one-piece
    limit (set to 1 character) is still streamed where it holds a list of rows, else a 413."""
    body = json.dumps(json_document(shape, table), ensure_ascii=False).encode("utf-8")
    expected = SCHEMA.from_records([dict(zip(NAMES, row, strict=True)) for row in table])
    assert same(json_codec.decode(body, SCHEMA), expected)
    chunks = [body[i : i + block] for i in range(0, len(body), block)]
    whole_chars = 1 if large else json_codec.WHOLE_BODY_CHARS
    with (
        mock.patch.object(json_codec, "STREAM_BATCH_CHARS", batch_chars),
        mock.patch.object(json_codec, "WHOLE_BODY_CHARS", whole_chars),
    ):
        if large and shape not in STREAMED_WHEN_LARGE:
            with pytest.raises(PayloadTooLarge, match="send the rows as"):
                list(json_codec.decode_stream(chunks, SCHEMA))
            return
        batches = list(json_codec.decode_stream(chunks, SCHEMA))
    assert same(concat(batches), expected)


@PROPERTY
@given(rows, st.booleans())
def test_jsonlines_decodes_like_the_schema(table, as_records):
    items = [dict(zip(NAMES, row, strict=True)) for row in table] if as_records else table
    body = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items).encode("utf-8")
    assert same(jsonlines_codec.decode(body, SCHEMA), SCHEMA.from_rows(table))


@PROPERTY
@given(rows)
def test_parquet_decodes_like_the_schema(table):
    frame = pd.DataFrame(table, columns=NAMES).astype({"job": object, "city": object})
    frame["age"] = pd.to_numeric(frame["age"], errors="coerce")
    buf = io.BytesIO()
    frame[["city", "age", "job"]].to_parquet(buf, index=False)  # by name, in any order
    expected = SCHEMA.from_rows([[None if pd.isna(a) else a, j, c] for a, j, c in table])
    assert same(parquet_codec.decode(buf.getvalue(), SCHEMA), expected)


@PROPERTY
@given(st.lists(st.tuples(numbers, numbers), min_size=1, max_size=30))
def test_npy_decodes_like_the_schema(pairs):
    array = np.array([[np.nan if v is None else float(v) for v in pair] for pair in pairs])
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    assert same(npy_codec.decode(buf.getvalue(), NUMERIC), NUMERIC.from_rows(array.tolist()))


labels = st.lists(text, min_size=1, max_size=20)


def _line_break(values: list) -> bool:
    """Whether a text value holds a line break: a text/csv answer refuses it (406), as it would
    span lines and shift a batch transform's answers."""
    return any(isinstance(v, str) and ("\n" in v or "\r" in v) for v in values)


def _prediction(values: list[str], fields: tuple[str, ...]) -> Prediction:
    n = len(values)
    classes = sorted(set(values))
    proba = np.full((n, len(classes)), 1.0 / len(classes))
    return Prediction(
        fields,
        {
            PREDICTED_LABEL: values,
            PROBABILITY: proba.max(axis=1),
            PROBABILITIES: proba,
            LABELS: classes,
        },
        n,
    )


@PROPERTY
@given(labels)
def test_encoders_give_back_the_labels(values):
    prediction = _prediction(values, (PREDICTED_LABEL, PROBABILITY, LABELS))
    if _line_break(values):
        with pytest.raises(NotAcceptable, match="holds a line break"):
            csv_codec.encode(prediction)
    else:
        rows = list(csv.reader(io.StringIO(csv_codec.encode(prediction).decode("utf-8"))))
        assert [row[0] for row in rows] == values
        assert [json.loads(row[2]) for row in rows] == [sorted(set(values))] * len(values)
    records = json.loads(json_codec.encode(prediction))["predictions"]
    assert [r[PREDICTED_LABEL] for r in records] == values
    lines = jsonlines_codec.encode(prediction).decode("utf-8").split("\n")
    assert lines[-1] == "" and [json.loads(line)[PREDICTED_LABEL] for line in lines[:-1]] == values
    single = _prediction(values, (PREDICTED_LABEL,))
    assert np.load(io.BytesIO(npy_codec.encode(single)), allow_pickle=False).tolist() == values


@PROPERTY
@given(
    st.lists(
        st.one_of(
            st.text(max_size=6),
            st.text(max_size=6).map(np.str_),
            st.integers(-3, 3),
            st.booleans(),
            st.floats(allow_nan=False),
            st.none(),
        ),
        min_size=1,
    )
)
def test_one_field_is_written_as_csv_writer_writes_it(values):
    """Text, numbers, None and their mixes (a hook's predict_fn may return any of them); text
    with a line break is refused, not written over two lines; a boolean is true/false, as CSV
    training reads it back, not Python's True/False."""
    out = io.StringIO()
    spelled = [("true" if v else "false") if type(v) is bool else v for v in values]
    csv.writer(out, lineterminator="\n").writerows([v] for v in spelled)
    prediction = Prediction((PREDICTED_LABEL,), {PREDICTED_LABEL: values}, len(values))
    if _line_break(values):
        with pytest.raises(NotAcceptable):
            csv_codec.encode(prediction)
    else:
        assert csv_codec.encode(prediction) == out.getvalue().encode("utf-8")


@PROPERTY
@given(st.lists(labels, min_size=1, max_size=5))
def test_sliced_encodings_join_into_the_whole_answer(parts):
    fields = (PREDICTED_LABEL,)
    whole = _prediction([v for part in parts for v in part], fields)
    for codec in (
        (json_codec, jsonlines_codec)
        if _line_break(whole.values[PREDICTED_LABEL])
        else (
            csv_codec,
            json_codec,
            jsonlines_codec,
        )
    ):
        sliced = [codec.ENCODER.encode(_prediction(part, fields)) for part in parts]
        joined = b"".join(codec.ENCODER.join(sliced))
        if codec is json_codec:
            assert json.loads(joined) == json.loads(codec.ENCODER.encode(whole))
        else:
            assert joined == codec.ENCODER.encode(whole)


@settings(max_examples=300, deadline=None)
@given(
    st.booleans(),
    st.one_of(st.binary(max_size=40), st.text(max_size=20).map(lambda t: t.encode("utf-8"))),
)
def test_csv_text_is_the_utf_8_sig_codecs_text_and_error(bom, body):
    """A CSV body's text: a byte order mark dropped, the rest UTF-8, and an undecodable byte
    named as the utf-8-sig codec names it, at its place in the body sent (the codec counts from
    after the mark), whether the body starts with a mark or not (a body without one skips that
    codec's Python-level decode)."""
    body = (codecs.BOM_UTF8 if bom else b"") + body
    try:
        want: object = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        want = f"byte {exc.start + (len(codecs.BOM_UTF8) if body.startswith(codecs.BOM_UTF8) else 0)}: {exc.reason}"
    try:
        got: object = csv_codec._text(body)
    except DataError as exc:
        assert exc.code == "undecodable_body"
        got = exc.message.split("(", 1)[1].split(")", 1)[0]
    assert got == want


# -- CSV bodies up to SMALL_BODY: the csv module's path and pyarrow's, forced each, agree ------
RAW_CELLS = st.one_of(
    HOSTILE_CELLS,
    NUMBER_CELLS,
    st.sampled_from(['"a"b', 'a"b', '""', '"x,y"', '"1"', "1\r2", "\r", "\x00", "\ufeff1", " ", ""]),
)


NUMERIC_RAW_CELLS = st.one_of(
    NUMBER_CELLS, NUMBER_CELLS, st.sampled_from(["", " ", "NA", "None", "1e400"]), RAW_CELLS
)


@st.composite
def csv_bodies(draw: st.DrawFn) -> bytes:
    """A CSV body a client may send: rows of hostile cells (mostly numbers in the numeric columns,
    now and then one value more or less, or an empty line), written by the csv module (quoting)
    or joined at commas as they are; a header (columns in any order) or not; LF, CRLF or CR; a
    final newline or not; a BOM or not, or U+FEFF starting the first value."""
    if draw(st.booleans()):  # rows the model reads, mostly: valid numbers, any text
        numbers = st.one_of(NUMBER_CELLS, st.sampled_from(["", " 1 ", "1e-400", "-0", "0" * 30 + "1"]))
        row = st.tuples(*(numbers if numeric else RAW_CELLS for numeric in MIXED.numeric)).map(list)
    else:
        typed = st.tuples(*(NUMERIC_RAW_CELLS if n else RAW_CELLS for n in MIXED.numeric)).map(list)
        row = st.one_of(typed, typed, typed, st.lists(RAW_CELLS, max_size=MIXED.width + 1), st.just([]))
    table = draw(st.lists(row, min_size=1, max_size=40))
    for _ in range(draw(st.integers(0, 2))):  # a value refused here and there (which is named?)
        i = draw(st.integers(0, len(table) - 1))
        if len(table[i]) == MIXED.width:
            j = draw(st.sampled_from([j for j, numeric in enumerate(MIXED.numeric) if numeric]))
            table[i][j] = draw(st.sampled_from(["x", "1e400", "NaN", "true"]))
    headed = draw(st.booleans())
    if headed:  # a header naming every feature, in some order and spelling
        order = draw(st.permutations(range(MIXED.width)))
        spell = draw(st.sampled_from([str, str.upper, lambda n: f" {n} "]))
        table = [
            [spell(MIXED.names[j]) for j in order],
            *([cells[j] for j in order] if len(cells) == MIXED.width else cells for cells in table),
        ]
    first = int(headed)  # the first data row
    if first < len(table) and table[first] and draw(st.integers(0, 5)) == 0:
        table[first][0] = "\ufeff" + table[first][0]  # U+FEFF starting its value (not a BOM)
    endings = st.sampled_from(["\n", "\r\n", "\n", "\r\n", "\r"])  # a lone CR ends no record
    newline = draw(endings)
    if draw(st.booleans()):
        out = io.StringIO()
        csv.writer(out, lineterminator=newline).writerows(table)
        text = out.getvalue()
    else:  # each line ended as it comes
        text = "".join(",".join(cells) + draw(endings) for cells in table)
    if draw(st.booleans()):
        text = text.removesuffix(newline)
    bom = draw(st.sampled_from(["", "", "\ufeff"]))
    return (bom + text).encode("utf-8")


def decoded_by(body: bytes, schema: RequestSchema, arrow: bool) -> Batch | tuple[str, str | None, str]:
    """``decode``'s batch with the path forced (pyarrow's or the csv module's), or the class,
    code and message of the error it raises."""
    with mock.patch.object(csv_codec, "_arrow_pays", lambda body, schema: arrow):
        try:
            return csv_codec.decode(body, schema)
        except DataError as exc:
            return type(exc).__name__, exc.code, exc.message


def _cells(column: object) -> list[tuple[type, object]]:
    """A text column's values with their types, NaN (missing) as one comparable token."""
    return [(type(v), "NaN" if v != v else v) for v in column.tolist()]  # type: ignore[attr-defined]


def assert_identical(small: Batch, arrow: Batch, schema: RequestSchema) -> None:
    """The same names and rows; numeric columns float64 bit for bit (NaN where missing); text
    columns the same text and missing values, each in its path's dtype (object for the csv
    module's, pandas' Arrow-backed ``str`` for pyarrow's, which the model's encoder codes alike:
    tests/unit/test_preprocessing.py)."""
    from byoc.serving.schema import ARROW_TEXT

    assert small.names == arrow.names and len(small) == len(arrow)
    for numeric, x, y in zip(schema.numeric, small.columns, arrow.columns, strict=True):
        if numeric:
            assert x.dtype == y.dtype == np.float64
            assert x.view(np.uint64).tolist() == y.view(np.uint64).tolist()
        else:
            assert x.dtype == object and y.dtype in (np.dtype(object), ARROW_TEXT), y.dtype
            assert _cells(x) == _cells(y)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_bodies())
def test_both_csv_paths_give_the_same_batch_or_the_same_error(body):
    """A body up to SMALL_BODY decodes alike whichever path the row count chooses: the same
    values (dtypes, float bits, text, missing values) or the same error (class, code, and the
    row, line and column its message names).  pyarrow read ``"a"b`` as ``ab`` and a lone CR as
    a line end, and its column rules name a column's first culprit, not the body's."""
    assert len(body) <= csv_codec.SMALL_BODY
    small = decoded_by(body, MIXED, arrow=False)
    arrow = decoded_by(body, MIXED, arrow=True)
    if isinstance(small, Batch):
        assert isinstance(arrow, Batch), arrow
        assert_identical(small, arrow, MIXED)
    else:
        assert small == arrow


def _plain_body(numbers: int, texts: int, rows: int, categories: int = 7) -> tuple[RequestSchema, bytes]:
    levels = tuple(f"level_{k}" for k in range(categories))  # the text columns' trained categories
    schema = RequestSchema(
        [Feature(f"n{i}", "numeric", "float64") for i in range(numbers)]
        + [Feature(f"t{i}", "categorical", "str", levels) for i in range(texts)]
    )
    line = ",".join([*(f"{i}.25" for i in range(numbers)), *(f"level_{i % 7}" for i in range(texts))])
    return schema, (line + "\n").encode() * rows


@pytest.mark.parametrize(
    ("numbers", "texts", "rows", "categories", "arrow"),
    [
        (10, 10, 1, 7, False),  # a single row: the csv module, always
        (10, 10, 20, 7, False),
        (10, 10, 100, 7, True),  # the benchmarks' 20 features: pyarrow from about 76 rows
        (10, 10, 340, 7, True),
        (10, 10, 100, 1000, False),  # text columns of many values (IDs): about 205 rows
        (10, 10, 340, 1000, True),
        (1000, 0, 8, 7, False),  # few, very wide rows: pyarrow's per-column cost
        (0, 2, 340, 7, False),  # two text columns: the csv module up to about 380 rows
        (2, 0, 100, 7, False),
        (2, 0, 200, 7, True),
    ],
)
def test_csv_rows_take_the_path_that_costs_less(numbers, texts, rows, categories, arrow):
    """Which path a body up to SMALL_BODY takes (by its rows, the model's kinds of column and how
    many categories its text columns hold: csv._arrow_pays), seen in the text columns' dtype."""
    schema, body = _plain_body(numbers, texts, rows, categories)
    assert len(body) <= csv_codec.SMALL_BODY
    assert csv_codec._arrow_pays(body, schema) is arrow
    if texts:
        batch = csv_codec.decode(body, schema)
        assert isinstance(batch.columns[-1].dtype, pd.StringDtype) is arrow


def test_an_empty_line_in_a_large_csv_body_is_the_400_it_is_in_a_small_one():
    """pyarrow reads an empty line as a row of empty values, which a model of several features
    answered as a row of missing values (a 200 paired with an empty input line) above 64 KiB,
    where below it the line is the 400 the module doc gives; a line of commas stays a row."""
    row = b"1.5,admin,2,3,x\n"
    copies = csv_codec.SMALL_BODY // len(row) + 1
    for before in (0, 7, copies):
        body = row * before + b"\n" + row * copies
        with pytest.raises(SchemaError, match=f"^row {before + 1} is empty") as info:
            csv_codec.decode(body, MIXED)
        assert info.value.code == "wrong_column_count"
    commas = csv_codec.decode(row * copies + b",,,,\n", MIXED)
    assert len(commas) == copies + 1 and np.isnan(commas.columns[0][-1])


def test_u_feff_starting_a_large_bodys_first_value_after_its_header_is_kept():
    """pyarrow drops U+FEFF at the start of what it reads as a byte order mark: after a header
    line that is the first value's own text, which the small path keeps (as a category here)."""
    names = ",".join(reversed(MIXED.names)).encode()
    row = b"x,1,2,admin,3\n"
    body = names + b"\n" + "\ufeff".encode() + row + row * (csv_codec.SMALL_BODY // len(row))
    small = csv_codec.decode(names + b"\n" + "\ufeff".encode() + row, MIXED)
    large = csv_codec.decode(body, MIXED)
    assert small.columns[4][0] == large.columns[4][0] == "\ufeffx"


WORD_FIRST = RequestSchema([Feature("word", "categorical", "str", ()), Feature("x", "numeric", "float64")])
WORD = st.one_of(text, text.map(lambda t: "\ufeff" + t)).filter(lambda s: s.strip() not in ("word", "x"))


@PROPERTY
@given(st.lists(st.tuples(WORD, numbers).map(list), min_size=2, max_size=20), st.booleans(), st.data())
def test_u_feff_starting_a_later_slice_is_kept_as_in_a_body_of_one_slice(table, large, data):
    """A large CSV body is decoded in slices cut at record boundaries: a slice after the first whose
    first value started with U+FEFF lost it (the utf-8-sig decode and pyarrow both drop a byte order
    mark at the start of what they read), so the row was answered as another value (a number: a 200
    where the same row in a small body is a 400).  Only the request body's own first bytes are a byte
    order mark: sliced or whole, on either path, the rows are what the schema makes of the cells."""
    if large:  # slices above 64 KiB: pyarrow's path
        table = table * (csv_codec.SMALL_BODY // len(csv_text(table)) + 1)
    lines = [csv_text([row]) for row in table]
    cells = as_csv_cells(table)
    if lines[0].startswith(codecs.BOM_UTF8):  # the body's start (not a quoted value's): a byte order mark
        cells[0][0] = cells[0][0].removeprefix("\ufeff")
    expected = WORD_FIRST.from_rows(cells)
    assert same(csv_codec.decode(b"".join(lines), WORD_FIRST), expected)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(lines) - 1), min_size=1, max_size=4))))
    pieces = [b"".join(lines[a:b]) for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True)]
    batches = list(decode_batches(_Slices(pieces), csv_codec.DECODER, WORD_FIRST, 1 << 30))
    got = Batch(
        WORD_FIRST.names, tuple(np.concatenate(c) for c in zip(*(b.columns for b in batches), strict=True))
    )
    assert same(got, expected)
