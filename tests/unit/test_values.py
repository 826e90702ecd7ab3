"""byoc.values: the rules, and the vectorised column functions agreeing with the scalar ones."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byoc import values

HOSTILE_TEXT = [
    "None",
    "NA",
    "<NA>",
    "null",
    "NULL",
    "NaN",
    "nan",
    "n/a",
    "#N/A",
    "true",
    "FALSE",
    " True ",
    "yes",
    "no",
    "007",
    "1e3",
    "2.0",
    " 3 ",
    "+4",
    ".5",
    "1.",
    "inf",
    "1_000",
    "0x10",
    "",
    "  ",
    "\t",
    "café",
    "a,b",
    'say "hi"',
    "12345678901234567890123",
]


@contextlib.contextmanager
def vectorised():
    """Object columns take the Arrow path however short (they take the scalar rules up to FEW_ROWS)."""
    saved = values.FEW_ROWS
    values.FEW_ROWS = -1
    try:
        yield
    finally:
        values.FEW_ROWS = saved


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("", None),
        ("   ", None),
        (None, None),
        (float("nan"), None),
        ("None", "None"),
        ("NA", "NA"),
        ("<NA>", "<NA>"),
        ("null", "null"),
        ("NaN", "NaN"),
        ("TRUE", "true"),
        (" False ", "false"),
        (True, "true"),
        (np.bool_(False), "false"),
        ("yes", "yes"),
        (1.0, "1"),
        (np.float32(2.0), "2"),
        (7, "7"),
        (0.1, "0.1"),
        (1e20, "1e+20"),
        ("1.0", "1.0"),
        ("007", "007"),
        (" padded ", " padded "),
    ],
)
def test_category_rule(raw, expected):
    got = values.category(raw)
    assert (isinstance(got, float) and math.isnan(got)) if expected is None else got == expected


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("", None),
        (" ", None),
        (None, None),
        ("007", 7.0),
        ("1e3", 1000.0),
        (" 2.0 ", 2.0),
        ("+4", 4.0),
        (".5", 0.5),
        ("1.", 1.0),
        (3, 3.0),
        (np.int64(5), 5.0),
    ],
)
def test_number_rule(raw, expected):
    got = values.number(raw)
    assert math.isnan(got) if expected is None else got == expected


@pytest.mark.parametrize("raw", ["NA", " None ", "null", "NaN", "nan", "<NA>", "#N/A", "n/a", "NULL"])
def test_missing_words_are_missing_in_numbers_and_data_in_categories(raw):
    assert math.isnan(values.number(raw))
    assert values.category(raw) == raw


@pytest.mark.parametrize("raw,expected", [("inf", math.inf), (" -Infinity", -math.inf), ("+INF", math.inf)])
def test_infinity_is_a_number(raw, expected):
    assert values.number(raw) == expected


@pytest.mark.parametrize("raw", ["Nones", "nil", "1_000", "0x10", "yes", "infx", True, [1]])
def test_not_numbers_are_refused(raw):
    with pytest.raises(values.BadValue):
        values.number(raw)


def test_a_dict_is_not_a_category():
    with pytest.raises(values.BadValue):
        values.category({"a": 1})


scalars = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.text(max_size=8),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_infinity=False),
)
texts = st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=8), st.none())


@settings(deadline=None)
@given(st.lists(scalars, min_size=1, max_size=12))
def test_category_column_of_python_values_agrees_with_category(cells):
    with vectorised():
        got = values.category_column(pd.Series(cells, dtype=object)).tolist()
    assert all(_same(g, values.category(c)) for g, c in zip(got, cells, strict=True))


@settings(deadline=None)
@given(st.lists(texts, min_size=1, max_size=12))
def test_category_column_of_text_agrees_with_category(cells):
    expected = [values.category(c) for c in cells]
    for column in (
        pd.Series(cells, dtype=object),
        pd.Series(cells, dtype="str"),
        pa.array(cells, type=pa.string()),
    ):
        with vectorised():
            got = values.category_column(column).tolist()
        assert all(_same(g, e) for g, e in zip(got, expected, strict=True)), column


@settings(deadline=None)
@given(st.lists(texts, min_size=1, max_size=6), st.integers(min_value=values.DISTINCT_SHARE, max_value=12))
def test_a_column_of_few_distinct_texts_agrees_with_category(cells, times):
    """Repeated values (a categorical column) are spelled once per distinct value, then taken."""
    column = cells * times
    expected = [values.category(c) for c in column]
    whole = pa.array(column, type=pa.string())
    for text in (whole, pa.chunked_array([whole[:3], whole[3:]])):
        spelled = values.text_categories(text)
        assert type(spelled) is type(text)
        got = spelled.to_pylist()
        assert got == [e if isinstance(e, str) else None for e in expected], text


@settings(deadline=None)
@given(st.lists(st.one_of(st.floats(allow_infinity=False), st.integers(-(2**60), 2**60)), min_size=1))
def test_category_column_of_numbers_agrees_with_category(cells):
    floats = pd.Series([float(c) for c in cells], dtype="float64")
    assert all(
        _same(g, values.category(c))
        for g, c in zip(values.category_column(floats).tolist(), floats, strict=True)
    )
    ints = pd.Series([int(c) for c in cells if isinstance(c, int)], dtype="int64")
    assert values.category_column(ints).tolist() == [str(c) for c in ints.tolist()]


numeric_text = st.one_of(
    st.sampled_from(HOSTILE_TEXT),
    st.none(),
    st.from_regex(values.NUMBER_PATTERN, fullmatch=True).map(lambda s: s[:60]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers().map(str),
    st.text(alphabet=" \t", max_size=2),
).flatmap(lambda s: st.sampled_from([s, f" {s}", f"{s}\t"]) if isinstance(s, str) else st.just(s))


@settings(deadline=None)
@given(st.lists(numeric_text, min_size=1, max_size=12))
def test_number_column_of_text_agrees_with_number(cells):
    scalar: list[float] = []
    first_bad = None
    for pos, cell in enumerate(cells):
        try:
            scalar.append(values.number(cell))
        except values.BadValue:
            first_bad = pos
            break
    for column in (pd.Series(cells, dtype=object), pa.array(cells, type=pa.string())):
        with vectorised():
            got, bad = values.number_column(column)
        assert bad == first_bad
        if bad is None:
            np.testing.assert_array_equal(got, np.asarray(scalar, dtype=np.float64))


def _scalar_numbers(cells: list) -> tuple[list[float], int | None]:
    """:func:`values.number` on each cell up to the first it refuses (and that cell's position)."""
    numbers: list[float] = []
    for pos, cell in enumerate(cells):
        try:
            numbers.append(values.number(cell))
        except values.BadValue:
            return numbers, pos
    return numbers, None


def test_every_short_text_of_number_bytes_reads_as_the_scalar_rule():
    """The one-cast path (:data:`values.NUMBER_BYTES` alone) against :func:`values.number` on
    every text of up to 5 such bytes: what it accepts, refuses and the value it reads."""
    import itertools

    alphabet = "0.eE+-1"
    cells = ["".join(t) for size in range(6) for t in itertools.product(alphabet, repeat=size)]
    for cell in cells:
        expected, bad = _scalar_numbers([cell])
        got, got_bad = values.text_numbers(pa.array([cell], type=pa.string()))
        assert got_bad == bad, cell
        if bad is None:
            np.testing.assert_array_equal(got, expected, err_msg=cell)


def test_number_texts_reads_every_short_text_of_number_bytes_as_number():
    """A row's numbers at once (:func:`values.number_texts`) against :func:`values.number` on
    every text of up to 5 of :data:`values.NUMBER_BYTES`: read alike when it reads them, and it
    passes over (None) exactly the texts :func:`values.number` refuses, and the empty text."""
    import itertools

    alphabet = "0.eE+-1"
    cells = ["".join(t) for size in range(6) for t in itertools.product(alphabet, repeat=size)]
    for cell in cells:
        expected, bad = _scalar_numbers([cell])
        got = values.number_texts([cell])
        assert (got is None) == (bad is not None or cell == ""), cell
        if got is not None:
            assert got == expected and type(got[0]) is float, cell


def test_number_texts_passes_over_all_but_number_text():
    assert values.number_texts([]) == []
    assert values.number_texts(["1", "-2.5e3", ".5", "007"]) == [1.0, -2500.0, 0.5, 7.0]
    passed_over = [["1", ""], ["1", " 2"], ["NA"], ["inf"], ["1,5"], ["1_000"], ["٣"], ["\ud800"]]
    for cells in [*passed_over, [1.0], ["1", None]]:
        assert values.number_texts(cells) is None, cells


number_bytes_text = st.one_of(
    st.text(alphabet=values.NUMBER_BYTES.decode(), min_size=1, max_size=40),
    st.from_regex(values.NUMBER_PATTERN, fullmatch=True).map(lambda s: s[:400]),
    st.floats(allow_nan=False).map(repr),
    st.integers(min_value=-(10**400), max_value=10**400).map(str),
    st.integers(min_value=0, max_value=400).map(lambda n: "0" * n + "1"),  # leading zeros
    st.integers(min_value=0, max_value=30).map(lambda n: f"{n}.0"),  # trailing .0
    st.sampled_from(HOSTILE_TEXT),
)


@settings(deadline=None)
@given(st.lists(number_bytes_text, min_size=1, max_size=12), st.integers(0, 3), st.booleans())
def test_number_columns_of_number_bytes_agree_with_number(cells, cut, large):
    """Columns that take the one-cast path (and hostile ones that must not): whole, chunked,
    sliced, large_string, all against the scalar rule."""
    expected, first_bad = _scalar_numbers(cells)
    kind = pa.large_string() if large else pa.string()
    whole = pa.array(["x", *cells], type=kind)[1:]  # a slice: offsets that do not start at 0
    cut = min(cut, len(cells))
    for text in (whole, pa.chunked_array([whole[:cut], whole[cut:]], type=kind)):
        got, bad = values.text_numbers(text)
        assert bad == first_bad, text
        if bad is None:
            np.testing.assert_array_equal(got, np.asarray(expected, dtype=np.float64))


@settings(deadline=None)
@given(st.lists(st.one_of(number_bytes_text, st.text(max_size=8)), max_size=12))
def test_number_texts_agrees_with_number(cells):
    """:func:`values.number_texts` reads a row of cells as :func:`values.number` reads each, or
    passes it over (None), which it does only for a cell that is not number text alone."""
    got = values.number_texts(cells)
    expected, bad = _scalar_numbers(cells)
    if got is not None:
        assert bad is None
        np.testing.assert_array_equal(np.array(got, dtype=np.float64), np.array(expected, dtype=np.float64))
    else:
        assert bad is not None or any(not c or c.encode().translate(None, values.NUMBER_BYTES) for c in cells)


@settings(deadline=None)
@given(st.lists(st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=6), st.none()), min_size=1))
def test_read_arrow_types_a_text_column_by_the_scalar_rules(cells):
    column = values.read_arrow(pa.array(cells, type=pa.string()))
    try:
        numbers = [values.number(c) for c in cells]
    except values.BadValue:
        assert pa.types.is_string(column.type)
        assert all(
            _same(g, values.category(c)) for g, c in zip(column.to_pandas().tolist(), cells, strict=True)
        )
    else:
        assert column.type == pa.float64()
        np.testing.assert_array_equal(column.to_numpy(zero_copy_only=False), np.asarray(numbers))


TEXT_TYPES = [pa.string(), pa.large_string(), pa.string_view(), pa.dictionary(pa.int32(), pa.string())]


@settings(deadline=None)
@given(
    st.lists(st.one_of(st.sampled_from(HOSTILE_TEXT), st.text(max_size=6), st.none()), min_size=1),
    st.sampled_from(TEXT_TYPES),
)
def test_a_parquet_text_column_reads_alike_whatever_its_arrow_text_type(cells, text_type):
    """A Parquet file (Polars', or pyarrow's of a table holding string views) may store text as
    string_view: training read such a column as it was, neither numbers nor categories spelled
    by the rules (``1`` stayed a category, ``TRUE`` and ``  `` categories of their own), while a
    request's was spelled (``true``, missing): the model's categories were none it was sent."""
    typed = pa.array(cells, type=pa.string())
    typed = typed.dictionary_encode() if pa.types.is_dictionary(text_type) else typed.cast(text_type)
    expected = values.read_arrow(pa.array(cells, type=pa.string()))
    column = values.read_arrow(typed)
    assert column.type == expected.type
    assert [_missing_as_none(v) for v in column.to_pylist()] == [
        _missing_as_none(v) for v in expected.to_pylist()
    ]


def _missing_as_none(value):
    return None if value is None or value != value else value


def test_json_scalars_read_as_categories_or_numbers():
    def read(cells):
        return values.read_arrow(values.spell_python(cells)).to_pylist()

    assert read([1, 2.5, None]) == [1.0, 2.5, None]
    assert read([1, "a", None, 2.0]) == ["1", "a", None, "2"]
    assert read([True, False, None]) == ["true", "false", None]
    assert read(["7", 8]) == [7.0, 8.0]


def test_plain_arrow_spells_booleans_and_dates():
    assert values.plain_arrow(pa.array([True, None, False])).to_pylist() == ["true", None, "false"]
    assert values.plain_arrow(pa.array([None, None])).type == pa.float64()
    dictionary = pa.array(["a", "b", "a"]).dictionary_encode()
    assert values.plain_arrow(dictionary).to_pylist() == ["a", "b", "a"]


UNITS = ("s", "ms", "us", "ns")
ZONES = (None, "UTC", "Europe/Paris", "America/New_York", "+05:30")
SECONDS = 2**33  # about 1698 to 2242: every unit, nanoseconds too, holds them
MILLISECONDS = st.one_of(
    st.integers(-SECONDS, SECONDS).map(lambda s: s * 1000), st.integers(-SECONDS * 1000, SECONDS * 1000)
)


def _instants(milliseconds, unit, tz):
    column = pa.array(milliseconds + [None], pa.int64()).cast(pa.timestamp("ms", tz=tz))
    return column.cast(pa.timestamp(unit, tz=tz))


@settings(deadline=None)
@given(st.lists(MILLISECONDS, min_size=1, max_size=8), st.sampled_from(ZONES))
def test_a_timestamp_is_spelled_by_its_instant_whatever_its_unit(milliseconds, tz):
    # Training's unit: DataFrame.to_parquet writes microseconds; its spelling is what models hold.
    today = _instants(milliseconds, "us", tz).cast(pa.string()).to_pylist()
    whole_seconds = all(ms % 1000 == 0 for ms in milliseconds)
    for unit in UNITS if whole_seconds else UNITS[1:]:
        assert values.plain_arrow(_instants(milliseconds, unit, tz)).to_pylist() == today, unit
        chunked = pa.chunked_array([_instants(milliseconds, unit, tz)])
        assert values.read_arrow(chunked).to_pylist() == today, unit


@settings(deadline=None)
@given(st.lists(st.integers(-(2**50), 2**50), min_size=1, max_size=8), st.sampled_from(ZONES))
def test_finer_than_microseconds_keeps_its_digits(nanoseconds, tz):
    column = pa.array(nanoseconds, pa.int64()).cast(pa.timestamp("ns", tz=tz))
    spelled = values.plain_arrow(column).to_pylist()
    for ns, text, own in zip(nanoseconds, spelled, column.cast(pa.string()).to_pylist(), strict=True):
        if ns % 1000:
            assert text == own  # nine digits: not truncated into another instant's spelling
        else:
            micro = pa.array([ns // 1000], pa.int64()).cast(pa.timestamp("us", tz=tz))
            assert text == micro.cast(pa.string())[0].as_py()


@settings(deadline=None)
@given(st.lists(st.integers(-719162, 2932896), min_size=1, max_size=8))  # years 1 to 9999
def test_a_date_or_time_is_spelled_by_its_value_whatever_its_unit(days):
    date32 = pa.array(days, pa.int32()).cast(pa.date32())
    today = date32.cast(pa.string()).to_pylist()
    assert values.plain_arrow(date32).to_pylist() == today
    assert values.plain_arrow(date32.cast(pa.date64())).to_pylist() == today
    seconds = pa.array([d % 86400 for d in days], pa.int32()).cast(pa.time32("s"))
    today = seconds.cast(pa.time64("us")).cast(pa.string()).to_pylist()
    for time_type in (pa.time32("s"), pa.time32("ms"), pa.time64("us"), pa.time64("ns")):
        assert values.plain_arrow(seconds.cast(time_type)).to_pylist() == today, time_type


@settings(deadline=None)
@given(st.lists(st.integers(-(2**32), 2**32), min_size=1, max_size=8))
def test_a_duration_is_microseconds_whatever_its_unit(seconds):
    column = pa.array(seconds, pa.int64()).cast(pa.duration("s"))
    today = [float(int(x)) for x in column.cast(pa.duration("us")).cast(pa.string()).to_pylist()]
    for unit in UNITS:
        assert values.read_arrow(column.cast(pa.duration(unit))).to_pylist() == today, unit
    assert values.plain_arrow(pa.array([1500], pa.duration("ns"))).to_pylist() == [1.5]


def test_pandas_datetimes_keep_the_spelling_training_gave_them():
    """What DataFrame.to_parquet writes reads as today's microsecond text; other units alike."""
    frame = pd.DataFrame({"when": pd.to_datetime(["2020-01-04", "2021-06-30 12:00:01.5"], format="ISO8601")})
    zoned = frame.assign(when=frame["when"].dt.tz_localize("Europe/Paris"))
    naive = ["2020-01-04 00:00:00.000000", "2021-06-30 12:00:01.500000"]
    paris = ["2020-01-04 00:00:00.000000+0100", "2021-06-30 12:00:01.500000+0200"]
    for data, spelled in ((frame, naive), (zoned, paris)):
        column = pq.read_table(pa.BufferReader(data.to_parquet())).column("when")
        assert values.plain_arrow(column).to_pylist() == spelled
        for unit in UNITS:
            other = values.plain_arrow(column.cast(pa.timestamp(unit, tz=column.type.tz), safe=False))
            held = 1 if unit == "s" else 2  # seconds cannot hold the half second
            assert other.to_pylist()[:held] == spelled[:held], unit


def test_time_unit_of_reads_the_digits_a_model_spelled_times_with():
    assert values.time_unit_of(["2020-01-04 00:00:00.000000000", "x", None, 3]) == "ns"
    assert values.time_unit_of(["2020-01-04 00:00:00.000+0100", "2020-01-05 10:00:00.500Z"]) == "ms"
    assert values.time_unit_of(["2020-01-04 00:00:00", "01:02:03"]) == "s"
    assert values.time_unit_of(["01:02:03.000000"]) == "us"
    assert values.time_unit_of(["2020-01-04 00:00:00.000000", "2020-01-04 00:00:00.000000001"]) is None
    assert values.time_unit_of(["2020-01-04", "red", "12:30"]) is None  # dates, text: no unit


@settings(deadline=None)
@given(
    st.lists(MILLISECONDS, min_size=1, max_size=8),
    st.sampled_from(ZONES),
    st.sampled_from(UNITS),
    st.sampled_from(UNITS),
)
def test_a_timestamp_in_any_unit_is_spelled_in_the_unit_asked(milliseconds, tz, stored, unit):
    """Whatever unit a file stores, the text is the one the asked unit's column gives, and
    time_unit_of reads that unit back from it (the round trip old models rely on)."""
    coarsest = "s" if all(ms % 1000 == 0 for ms in milliseconds) else "ms"
    if stored == "s" and coarsest != "s":
        stored = "ms"
    column = _instants(milliseconds, stored, tz)
    spelled = values.plain_arrow(column, unit).to_pylist()
    if UNITS.index(unit) >= UNITS.index(coarsest):
        assert spelled == _instants(milliseconds, unit, tz).cast(pa.string()).to_pylist()
        assert values.time_unit_of(spelled) == unit
    assert values.plain_arrow(column, None).to_pylist() == column.cast(pa.string()).to_pylist()


NUMPY_NUMBER_DTYPES = ["float64", "float32", "float16", "int64", "int32", "int8", "uint64", "uint8"]
odd_floats = st.one_of(
    st.floats(width=64),
    st.sampled_from([-0.0, math.inf, -math.inf, float(np.uint64(0xFFF8000000000001).view(np.float64))]),
    st.integers(-(2**64), 2**64).map(float),
)


@settings(deadline=None)
@given(
    st.lists(st.sampled_from(NUMPY_NUMBER_DTYPES), min_size=1, max_size=6),
    st.lists(odd_floats, min_size=0, max_size=8),
)
def test_number_matrix_is_number_column_of_each_column_bit_for_bit(dtypes, cells):
    """The frame converted at once (:func:`values.number_matrix`) holds what
    :func:`values.number_column` gives column by column: the same float64 bits, a NaN of any
    sign or payload written as the one NaN (as pandas writes ``na_value``)."""
    rng = np.random.default_rng(len(cells))
    with np.errstate(over="ignore"):  # a float64 beyond float16/32 becomes infinite: fine here
        frame = pd.DataFrame(
            {
                f"c{i}": np.asarray(cells, dtype=np.float64).astype(dtype)
                if dtype.startswith("float")
                else rng.integers(
                    np.iinfo(dtype).min, np.iinfo(dtype).max, len(cells), dtype=dtype, endpoint=True
                )
                for i, dtype in enumerate(dtypes)
            }
        )
    matrix = values.number_matrix(frame)
    for i, name in enumerate(frame.columns):
        numbers, bad = values.number_column(frame[name])
        assert bad is None and numbers.dtype == np.float64
        assert matrix[:, i].view(np.uint64).tolist() == numbers.view(np.uint64).tolist()
        expected = frame[name].to_numpy(dtype=np.float64, na_value=float("nan"))  # pandas' own rule
        assert numbers.view(np.uint64).tolist() == expected.view(np.uint64).tolist()


def test_number_matrix_takes_numpy_numbers_only():
    """Booleans, text and nullable columns can hold what is not a number (or pd.NA): they take
    :func:`values.number_column`, which names the culprit."""
    for column in ([True, False], ["1", "2"], pd.array([1, None], dtype="Int64")):
        assert not values.numpy_number(pd.Series(column).dtype)
        with pytest.raises(TypeError):
            values.number_matrix(pd.DataFrame({"a": [1.0, 2.0], "b": column}))


@settings(deadline=None)
@given(
    st.lists(st.lists(st.one_of(number_bytes_text, st.none()), max_size=6), min_size=1, max_size=6),
    st.booleans(),
    st.integers(0, 3),
)
def test_text_number_columns_is_text_numbers_of_each_column(cells, large, cut):
    """Columns read together (one byte check and one cast for those written with number bytes
    alone) give each column what :func:`values.text_numbers` gives it alone: numbers bit for
    bit, and the first bad position (a refused cast, such as "1e", sends every column its own way)."""
    kind = pa.large_string() if large else pa.string()
    columns = [
        pa.chunked_array([pa.array(c[:cut], type=kind), pa.array(c[cut:], type=kind)])
        if i % 2
        else pa.array(c, type=kind)
        for i, c in enumerate(cells)
    ]
    for (numbers, bad), column in zip(values.text_number_columns(columns), columns, strict=True):
        alone, alone_bad = values.text_numbers(column)
        assert bad == alone_bad
        if bad is None:
            assert numbers.view(np.uint64).tolist() == alone.view(np.uint64).tolist()


def test_wide_number_text_is_cast_once_not_column_by_column(monkeypatch):
    """A wide table of numbers as text (a CSV channel, a CSV request) is checked and cast as one
    array: column by column, the set-up cost more than the work (2,000 columns of 300 rows:
    training's typing 280 -> 125 ms).  A column of words takes text_numbers alone."""
    columns = [pa.array([str(i), f"{i}.5", "1e3"]) for i in range(40)] + [pa.array(["1", "NA", "x"])]
    alone = []
    real = values.text_numbers
    monkeypatch.setattr(values, "text_numbers", lambda text: alone.append(text) or real(text))
    read = values.text_number_columns(columns)
    assert alone == [columns[-1]]
    assert read[7][0].tolist() == [7.0, 7.5, 1000.0] and read[7][1] is None and read[-1][1] == 2
    typed = values.read_arrow_columns(columns)
    assert typed[3].to_pylist() == [3.0, 3.5, 1000.0] and typed[-1].to_pylist() == ["1", "NA", "x"]


@pytest.mark.parametrize("text", ["\ud800", "ad\udfffmin", "é\ud83d"])
def test_a_lone_surrogate_is_no_category_and_says_its_escape(text):
    """Only JSON's escapes spell one; no file, Arrow column or model holds it (a batch of 1,024
    JSON rows or more holding one was a 500, fewer answered it as an unknown category)."""
    with pytest.raises(values.BadValue) as caught:
        values.category(text)
    assert caught.value.code == "not_text"
    escape = next(c for c in text if "\ud800" <= c <= "\udfff")
    assert caught.value.what.startswith(
        f"holds the escape \\u{ord(escape):04x}, half of a UTF-16 surrogate pair"
    )


@pytest.mark.parametrize("text", ["admin", "é", "😀", "\u2028", ""])
def test_text_is_text(text):
    assert values.not_text(text) is None


DECIMAL_TYPES = [pa.decimal128(38, 10), pa.decimal128(38, 20), pa.decimal128(18, 3), pa.decimal256(60, 30)]


@pytest.mark.parametrize(
    ("digits", "kind"),
    [("0.7", pa.decimal128(38, 10)), ("0.1", pa.decimal128(38, 20)), ("0.4", pa.decimal128(38, 20))],
)
def test_a_parquet_decimal_feature_is_the_number_its_digits_are_in_csv(digits, kind):
    """Arrow's decimal-to-float cast is not correctly rounded: a decimal128(38, 10) 0.7 was the
    feature 0.7000000000000001, a decimal128(38, 20) 0.1 0.09999999999999999, where the same
    digits in CSV or JSON are 0.7 and 0.1 (a 1-nearest-neighbour model answered a Parquet request
    of 0.1 with the class of its neighbour 0.09999999999999999)."""
    from decimal import Decimal

    column = pa.array([Decimal(digits), None], type=kind)
    as_text = values.read_arrow(pa.array([digits, None]))
    for read in (values.read_arrow(column), values.plain_arrow(column)):  # training; requests
        assert read.to_pylist() == as_text.to_pylist() == [float(digits), None]


@settings(deadline=None)
@given(st.data(), st.sampled_from(DECIMAL_TYPES))
def test_parquet_decimals_read_as_float_reads_their_digits(data, kind):
    from decimal import Decimal

    bound = 10 ** (kind.precision - 1)
    ints = data.draw(st.lists(st.integers(-bound, bound), min_size=1, max_size=20))
    digits = [Decimal(i).scaleb(-kind.scale) for i in ints]
    read = values.plain_arrow(pa.array(digits, type=kind))
    assert read.type == pa.float64()
    assert read.to_pylist() == [float(d) for d in digits]


@pytest.mark.parametrize("text", [" TRUE ", "\tfalse", "True "])
def test_boolean_text_with_spaces_is_named_a_boolean_in_a_numeric_column(text):
    """Spaces around a boolean word are trimmed as around a number: a categorical feature reads
    ``" TRUE "`` as the category ``true``, so a numeric one names it the boolean it is, with the
    rule, not as text."""
    word = values.category(text)
    assert word in ("true", "false")
    with pytest.raises(values.BadValue) as caught:
        values.number(text)
    assert caught.value.what.startswith(f"the boolean {word} is not a number (booleans are the categories")
