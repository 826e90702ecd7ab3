"""How a raw value becomes a feature value: the one place that says so.

Every training reader (``byoc.data``) and every request decoder (``byoc.serving``) calls
this module, so a cell means the same thing when ``train`` reads it and when the server
receives it, whatever the format (CSV text, JSON scalar, Arrow/Parquet value, npy number).

The rules (README, "Missing values, booleans and numbers written as text"):

- **Missing** is: an empty cell or one holding only spaces/tabs, JSON ``null``, an
  Arrow/Parquet null, and a float NaN.  In a **numeric** column the words of
  :data:`MISSING_WORDS` (``NA``, ``N/A``, ``NaN``, ``null``, ``None``, ``<NA>``, ``#N/A``, in
  any letter case) are missing too, as R, Excel and databases write them.  In a **text**
  column every non-empty text is data: a job title ``None`` or a survey answer ``NA`` is a
  category.  A training column is numeric when every value is a number, number text, missing
  or one of those words; the server reads each feature by the kind training gave it, so both
  sides apply the same rule.
- **Booleans** are the categories ``"true"`` and ``"false"``, whether they arrive as JSON
  ``true``, an Arrow boolean, a NumPy bool or as text in any letter case (``TRUE``,
  ``False``).  A boolean is not a number.
- **Numbers written as text** are read as numbers when, after trimming spaces, they match
  :data:`NUMBER_PATTERN` (decimal digits, an optional sign, point and exponent: ``007``,
  ``1e3``, ``2.0``, ``.5``) or spell infinity (``inf``, ``-Infinity``: refused later as not
  finite); ``1_000`` and ``0x10`` are text.
- **A number as a category** (a numeric value in a column trained as categorical) is spelled
  without a trailing ``.0`` when integral and below 2**53 in size (``1.0`` -> ``"1"``), otherwise as
  Python's shortest round-trip ``repr`` (``0.1``, ``1e+20``; a whole float from 2**53 up too:
  ``1e+16``, ``9007199254740992.0``, where an integer of that value is its digits).  Text keeps its spelling: ``"1.0"`` and ``"007"``
  are categories of their own.
- **Dates and times** (Arrow/Parquet) are spelled by the instant, not by the file's unit
  (:func:`temporal_text`): timestamps and times as ISO text in microseconds, durations as
  microseconds.

Scalar functions serve the single-row request path; column functions (pandas/Arrow,
vectorised) serve readers and batches.  The two are tested to agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from byoc.json_objects import json_words

WHITESPACE = " \t\r\n\x0b\x0c"
"""Characters trimmed before deciding whether text is missing, a boolean or a number."""
TRUE, FALSE = "true", "false"
NUMBER_PATTERN = r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity))"
_NUMBER = re.compile(NUMBER_PATTERN)
_NUMBER_RE2 = f"^{NUMBER_PATTERN}$"
MISSING_WORDS = frozenset({"na", "n/a", "nan", "null", "none", "<na>", "#n/a"})
"""Lower-cased words that mean missing in a numeric column (and only there)."""
_EXACT_INT = 2**53  # integral floats below this are spelled as integers
_NAN = float("nan")


class BadValue(ValueError):
    """A value that cannot be a feature value of the asked kind; callers add row and column."""

    def __init__(self, what: str, code: str = "not_a_number") -> None:
        super().__init__(what)
        self.what = what
        self.code = code


def not_text(value: str) -> str | None:
    """What makes ``value`` no text, for a message after "holds": half of a UTF-16 surrogate
    pair without the other half (a JSON escape such as ``\\ud800``, as a tool that cut a string
    inside an emoji writes), which no file, Arrow column or model holds; None for text."""
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return (
            f"the escape \\u{ord(value[exc.start]):04x}, half of a UTF-16 surrogate pair without the "
            "other half, which is not text; write the whole character (or both of its escapes), or remove it"
        )
    return None


# -- scalars (one value at a time: single-row requests) ----------------------------------------
def is_missing(value: Any) -> bool:
    """None, NaN, pandas' NA/NaT, or text that is empty once spaces are trimmed."""
    if value is None:
        return True
    kind = type(value)
    if kind is str:
        return not value.strip(WHITESPACE)
    if kind is float or isinstance(value, np.floating):
        return value != value
    return value is pd.NA or value is pd.NaT


def missing_in_numbers(text: str) -> bool:
    """Is this text missing in a numeric column (empty, or one of :data:`MISSING_WORDS`)?"""
    text = text.strip(WHITESPACE)
    return not text or (len(text) <= 4 and text.lower() in MISSING_WORDS)


def number_text(text: str) -> float | None:
    """The number ``text`` spells (after trimming spaces), or None when it spells none."""
    text = text.strip(WHITESPACE)
    if _NUMBER.fullmatch(text) is None:
        return None
    return float(text)


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def kind_words(value: Any) -> str:
    """A value no feature takes, named for its message in the words of the format that sent it:
    JSON's (:func:`json_objects.json_words`), a Parquet list (an ndarray once read) as a list,
    Parquet binary as binary data; never Python's type names ("a ndarray", "a bytes")."""
    if isinstance(value, np.ndarray):
        return "a list"
    if isinstance(value, (bytes, bytearray)):
        return "binary data"
    return json_words(value)


_BOOLEANS = " (booleans are the categories true/false)"


def boolean_word(value: Any) -> str | None:
    """``true``/``false`` for a boolean (JSON, NumPy) or its text in any letter case, which is
    how a Parquet boolean reaches a numeric feature (:func:`plain_arrow`); else None."""
    if type(value) is bool or isinstance(value, np.bool_):
        return TRUE if value else FALSE
    if isinstance(value, str):
        word = value.strip(WHITESPACE).lower()
        if word in (TRUE, FALSE):
            return word
    return None


def shown(value: Any) -> str:
    """A value that is not a number, for messages: ``the boolean true`` for a boolean, whether
    JSON, Parquet, NumPy or text spelled it (a Parquet boolean is text by then), else its repr."""
    word = boolean_word(value)
    return repr(value) if word is None else f"the boolean {word}"


def number(value: Any) -> float:
    """A value for a numeric feature as float; NaN when missing.  Raises :class:`BadValue`."""
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            raise BadValue(f"{value} is out of range; send a finite number", code="out_of_range") from None
    if kind is str:
        parsed = number_text(value)
        if parsed is not None:
            return parsed
        if missing_in_numbers(value):
            return _NAN
        boolean = boolean_word(value) is not None
        raise BadValue(
            f"{shown(value) if boolean else f'text {_shorten(value)!r}'} is not a number"
            f"{_BOOLEANS if boolean else ''}; send a number, or an empty value (null in JSON) for missing"
        )
    if value is None or value is pd.NA or value is pd.NaT:
        return _NAN
    if kind is bool or isinstance(value, np.bool_):
        raise BadValue(
            f"{shown(value)} is not a number{_BOOLEANS}; send a number, or null for missing",
            code="bad_value",
        )
    if isinstance(value, (np.integer, np.floating)):
        return number(value.item())
    raise BadValue(
        f"{kind_words(value)} is not a number; send a number, or null for missing", code="bad_value"
    )


def category(value: Any) -> Any:
    """A value for a categorical feature as text (see the module rules); NaN when missing."""
    kind = type(value)
    if kind is str:
        if not value.isascii() and (why := not_text(value)) is not None:
            raise BadValue(f"holds {why}", code="not_text")
        size = len(value)
        if size and value[0] not in WHITESPACE and value[-1] not in WHITESPACE:  # the usual case
            if (size == 4 or size == 5) and value.isascii():
                lower = value.lower()
                if lower == TRUE or lower == FALSE:
                    return lower
            return value
        text = value.strip(WHITESPACE)
        if not text:
            return _NAN
        if len(text) <= 5 and text.isascii():
            lower = text.lower()
            if lower == TRUE or lower == FALSE:
                return lower
        return value
    if kind is bool or isinstance(value, np.bool_):
        return TRUE if value else FALSE
    if kind is int or isinstance(value, np.integer):
        return str(int(value))
    if kind is float or isinstance(value, np.floating):
        x = float(value)
        if x != x:
            return _NAN
        if x.is_integer() and abs(x) < _EXACT_INT:
            return str(int(x))
        return repr(x)
    if value is None or value is pd.NA or value is pd.NaT:
        return _NAN
    raise BadValue(f"{kind_words(value)} is not a category; send text, or null for missing", code="bad_value")


def flag(value: Any) -> float:
    """A boolean feature stored as 0/1 by models trained before booleans became categories."""
    if type(value) is str:
        word = category(value)
        if word == TRUE or word == FALSE:
            return 1.0 if word == TRUE else 0.0
    elif type(value) is bool or isinstance(value, np.bool_):
        return 1.0 if value else 0.0
    return number(value)


# -- columns (vectorised: readers and batches) --------------------------------------------------
def _as_arrow_text(values: Any) -> pa.Array | None:
    """A text column as an Arrow string array, or None when it holds anything but text."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values if pat.is_string(values.type) or pat.is_large_string(values.type) else None
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, dtype=object))
    if isinstance(series.dtype, pd.StringDtype):
        return pa.array(series.array, from_pandas=True)
    if series.dtype != object:
        return None
    if pd.api.types.infer_dtype(series, skipna=True) not in ("string", "empty"):
        return None
    array = series.to_numpy(dtype=object)
    missing = pd.isna(array)
    if missing.any():
        array = array.copy()
        array[missing] = None
    return pa.array(array, type=pa.large_string())


FEW_ROWS = 256
"""Object columns up to this long take the scalar functions (same rules, less set-up)."""


def _few_objects(values: Any) -> bool:
    if isinstance(values, pd.Series):
        return values.dtype == object and len(values) <= FEW_ROWS
    return isinstance(values, np.ndarray) and values.dtype == object and len(values) <= FEW_ROWS


def _text_missing(text: pa.Array | pa.ChunkedArray) -> tuple[Any, Any]:
    trimmed = pc.utf8_trim(text, characters=WHITESPACE)
    missing = pc.or_kleene(pc.is_null(text), pc.equal(trimmed, ""))
    return trimmed, pc.fill_null(missing, True)


DISTINCT_SHARE = 4
"""A text column with at most one distinct value per this many rows is spelled value by value."""


def text_categories(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """:func:`category` over an Arrow string column: missing -> null, boolean words -> true/false.

    A column of few distinct values (a categorical column) takes :func:`category` itself on
    each distinct value, then one ``take``: a single hashing pass instead of ten kernels, and
    the column itself when no value changes spelling."""
    if len(text) >= 2 * DISTINCT_SHARE:
        spelled = _spell_distinct(text)
        if spelled is not None:
            return spelled
    trimmed, missing = _text_missing(text)
    lower = pc.ascii_lower(trimmed)
    is_bool = pc.fill_null(pc.is_in(lower, value_set=pa.array([TRUE, FALSE], type=lower.type)), False)
    out = pc.if_else(is_bool, lower, text)
    return pc.if_else(missing, pa.scalar(None, type=out.type), out)


def _spell_distinct(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """:func:`text_categories` through :func:`category` on each distinct value; None when the
    column has too many distinct values for that to pay."""
    distinct = pc.unique(text)  # a hash pass that, unlike dictionary_encode, writes no indices
    if len(distinct) * DISTINCT_SHARE > len(text):
        return None
    if all(category(old) == old for old in distinct.to_pylist() if old is not None):
        return text  # every value keeps its spelling (nulls stay null; NaN, missing, equals no text)
    chunked = isinstance(text, pa.ChunkedArray)
    encoded = pc.dictionary_encode(text.combine_chunks() if chunked else text)
    spelled = map(category, encoded.dictionary.to_pylist())
    words = pa.array([value if type(value) is str else None for value in spelled], type=text.type)
    out = words.take(encoded.indices)
    return pa.chunked_array([out]) if chunked else out


NUMBER_BYTES = b"0123456789+-.eE"
"""The bytes a decimal number is written with.  For text made of these alone, Arrow's cast to
float64 accepts exactly what :data:`NUMBER_PATTERN` matches and reads it as ``float()`` does
(tests/unit/test_values.py checks both, exhaustively for short texts): so such a column is
read by one cast, with no regular expression over every cell."""


def _only_number_bytes(text: pa.Array | pa.ChunkedArray) -> bool:
    """Whether every value is not null and written with :data:`NUMBER_BYTES` alone (one pass
    over the column's character data, not one call per value).  An empty value passes: the
    cast refuses it."""
    if text.null_count:
        return False
    for chunk in text.chunks if isinstance(text, pa.ChunkedArray) else (text,):
        if not len(chunk):
            continue
        width = 8 if pat.is_large_string(chunk.type) else 4
        offsets, data = chunk.buffers()[1:3]
        bounds = np.frombuffer(offsets, np.int64 if width == 8 else np.int32, 2, chunk.offset * width)
        first = int(bounds[0])
        last = int(np.frombuffer(offsets, bounds.dtype, 1, (chunk.offset + len(chunk)) * width)[0])
        if data.slice(first, last - first).to_pybytes().translate(None, NUMBER_BYTES):
            return False
    return True


def number_texts(cells: Sequence[Any]) -> list[float] | None:
    """:func:`number` of each cell when every one is text written with :data:`NUMBER_BYTES`
    alone and spelling a number (a CSV row's numeric cells, as a rule), else None: then
    :func:`number` reads each cell and says what is wrong with which.

    For such text ``float`` accepts exactly what :data:`NUMBER_PATTERN` matches (Python's
    float grammar without its underscores, words and spaces is that pattern without infinity;
    tests/unit/test_values.py checks it exhaustively for short texts) and reads it as
    :func:`number_text` does: one check of the bytes and ``float`` of each, without a call
    and a regular expression per value."""
    try:
        data = "".join(cells).encode()
    except (TypeError, UnicodeEncodeError):  # not all text (JSON values), or a lone surrogate
        return None
    if data.translate(None, NUMBER_BYTES):  # spaces, words, infinity...: value by value
        return None
    try:
        return list(map(float, cells))
    except ValueError:  # such as "", "1e" or "1-2"
        return None


def _cast_number_text(text: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """:func:`text_numbers`' one-cast path: the numbers of a column written with
    :data:`NUMBER_BYTES` alone, or None when it is not, or the cast refuses a value (such as
    "1e" or "--1": the general path names it)."""
    return _cast_numbers(text) if _only_number_bytes(text) else None


def _cast_numbers(text: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """Arrow's cast of text already known to hold :data:`NUMBER_BYTES` alone, or None when it
    refuses a value."""
    try:
        numbers = pc.cast(text, pa.float64())
    except pa.ArrowInvalid:
        return None
    return np.array(numbers.to_numpy(zero_copy_only=False), dtype=np.float64)


def text_number_columns(columns: Sequence[pa.Array | pa.ChunkedArray]) -> list[tuple[np.ndarray, int | None]]:
    """:func:`text_numbers` of each Arrow string column, the columns on its one-cast path
    (numbers as written: the usual ones) checked and cast together.

    Column by column, the check and the cast cost more in set-up than in work on a wide table
    (2,000 columns of 300 rows); joined into one array they are one pass each.  Casting is
    value by value, so each column's numbers are those :func:`text_numbers` gives it; any
    other column (or all of them, when the joined cast refuses a value) takes
    :func:`text_numbers` itself."""
    out: list[tuple[np.ndarray, int | None] | None] = [None] * len(columns)
    joined = [i for i, column in enumerate(columns) if len(column) and _only_number_bytes(column)]
    if len(joined) > 1 and len({columns[i].type for i in joined}) == 1:
        chunks = [c for i in joined for c in _chunks(columns[i])]
        try:
            numbers = _cast_numbers(pa.concat_arrays(chunks))  # each column's bytes checked above
        except (pa.ArrowInvalid, pa.ArrowCapacityError):  # offsets past 2 GiB of text: one by one
            numbers = None
        if numbers is not None:
            ends = np.cumsum([len(columns[i]) for i in joined])
            for i, part in zip(joined, np.split(numbers, ends[:-1]), strict=True):
                out[i] = (part, None)
    return [
        done if done is not None else text_numbers(column) for done, column in zip(out, columns, strict=True)
    ]


def _chunks(column: pa.Array | pa.ChunkedArray) -> list[pa.Array]:
    return column.chunks if isinstance(column, pa.ChunkedArray) else [column]


def text_numbers(text: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, int | None]:
    """:func:`number` over an Arrow string column: (float64 with NaN for missing, the position
    of the first value that is neither missing nor a number, or None)."""
    numbers = _cast_number_text(text)
    if numbers is not None:  # the usual column: numbers as written, no spaces or words
        return numbers, None
    trimmed, missing = _text_missing(text)
    words = pa.array(sorted(MISSING_WORDS), type=trimmed.type)
    missing = pc.or_(missing, pc.fill_null(pc.is_in(pc.utf8_lower(trimmed), value_set=words), False))
    numeric = pc.fill_null(pc.match_substring_regex(trimmed, _NUMBER_RE2), False)
    bad = pc.invert(pc.or_(numeric, missing))
    if pc.any(bad).as_py():
        return np.full(len(text), _NAN), int(pc.index(bad, True).as_py())
    valid = pc.if_else(numeric, trimmed, pa.scalar(None, type=trimmed.type))
    out = pc.cast(valid, pa.float64())
    return np.array(out.to_numpy(zero_copy_only=False), dtype=np.float64), None


def category_column(values: Any) -> pd.Series:
    """:func:`category` over a whole column (pandas, NumPy or Arrow): text, NaN for missing.

    A column with a pandas string dtype keeps it (no Python object per cell); any other
    comes back as object.
    """
    series = values if isinstance(values, pd.Series) else None
    index = series.index if series is not None else None
    if _few_objects(values):  # a few request rows: the scalar rule costs less than Arrow's setup
        out = np.array([category(v) for v in np.asarray(values, dtype=object).tolist()], dtype=object)
        return pd.Series(out, index=index, dtype=object, copy=False)
    text = _as_arrow_text(values)
    if text is not None:
        spelled = text_categories(text)
        if series is not None and isinstance(series.dtype, pd.StringDtype):
            return pd.Series(pd.array(spelled, dtype=series.dtype), index=index, name=series.name)
        out = np.asarray(spelled.to_numpy(zero_copy_only=False), dtype=object)
        out[pd.isna(out)] = _NAN
        return pd.Series(out, index=index, dtype=object, copy=False)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = values.to_pandas()
    s = pd.Series(values) if series is None else series
    dtype = s.dtype
    if pd.api.types.is_bool_dtype(dtype):
        missing = s.isna().to_numpy()
        out = np.where(s.fillna(False).to_numpy(dtype=bool), TRUE, FALSE).astype(object)
        out[missing] = _NAN
    elif pd.api.types.is_integer_dtype(dtype):
        missing = s.isna().to_numpy()
        out = s.astype(str).to_numpy(dtype=object)
        out[missing] = _NAN
    elif pd.api.types.is_float_dtype(dtype):
        x = s.to_numpy(dtype=np.float64, na_value=_NAN)
        with np.errstate(invalid="ignore"):
            integral = np.isfinite(x) & (np.abs(x) < _EXACT_INT) & (np.mod(x, 1) == 0)
        out = np.full(len(x), _NAN, dtype=object)
        out[integral] = x[integral].astype(np.int64).astype(str)
        other = ~integral & ~np.isnan(x)
        if other.any():
            out[other] = [repr(v) for v in x[other].tolist()]
    else:
        out = np.array([category(v) for v in s.to_numpy(dtype=object)], dtype=object)
    return pd.Series(out, index=s.index, dtype=object, copy=False)


def number_column(values: Any) -> tuple[np.ndarray, int | None]:
    """:func:`number` over a whole column: (float64, NaN for missing; the position of the first
    value that is not a number, or None).  Out-of-range checks are the caller's."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)) and (
        pat.is_integer(values.type) or pat.is_floating(values.type)
    ):
        return np.array(values.to_numpy(zero_copy_only=False), dtype=np.float64), None
    if _few_objects(values):
        return _numbers_each(np.asarray(values, dtype=object).tolist())
    text = _as_arrow_text(values)
    if text is not None:
        return text_numbers(text)
    s = values.to_pandas() if isinstance(values, (pa.Array, pa.ChunkedArray)) else pd.Series(values)
    dtype = s.dtype
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return s.to_numpy(dtype=np.float64, na_value=_NAN, copy=True), None
    return _numbers_each(s.to_numpy(dtype=object).tolist())


def numpy_number(dtype: Any) -> bool:
    """Whether ``dtype`` is a NumPy integer or float dtype: a column of it holds only numbers
    and NaN, and :func:`number_column` converts it whole (:func:`number_matrix`, several at once)."""
    return isinstance(dtype, np.dtype) and dtype.kind in "iuf"


def number_matrix(frame: pd.DataFrame) -> np.ndarray:
    """:func:`number_column`'s numbers of every column of ``frame`` (each of a
    :func:`numpy_number` dtype, so none can hold a bad value), side by side in a new
    column-major matrix: one conversion of the frame.  Column by column, a Series' set-up cost
    more than its numbers: 2,000 columns of 300 rows took 0.4-0.7 s, the frame at once 40 ms.

    The same float64 bits as :func:`number_column` (``to_numpy(na_value=NaN)``, which writes
    every NaN as the one NaN, tests/unit/test_values.py): a frame's ``to_numpy`` leaves a float
    column's NaN as it was, so :func:`_one_nan` does that here.  Unlike :func:`number_column`,
    never the column's own memory (a float64 column without NaN comes back as itself there)."""
    if not all(map(numpy_number, frame.dtypes)):
        raise TypeError("number_matrix takes columns of NumPy integer and float dtypes only")
    return _one_nan(frame.to_numpy(dtype=np.float64, copy=True))


def _one_nan(numbers: np.ndarray) -> np.ndarray:
    """``numbers`` (a float64 copy, changed in place) with every NaN the one :data:`_NAN`, as
    :func:`number_column` writes a missing value: whatever NaN bits a file held, the column
    holds one NaN (a float NaN's sign and payload would otherwise pass through)."""
    numbers[np.isnan(numbers)] = _NAN
    return numbers


def _numbers_each(raw: list[Any]) -> tuple[np.ndarray, int | None]:
    out = np.empty(len(raw), dtype=np.float64)
    for pos, value in enumerate(raw):
        try:
            out[pos] = number(value)
        except BadValue:
            return out, pos
    return out, None


TIME_UNIT = "us"
"""The unit dates, times and durations are spelled in, whatever unit a file stores them in:
microseconds, the unit ``DataFrame.to_parquet`` writes (pandas 3, the container's pandas) and
so the spelling models trained on such files hold.  Models record it (model.json
``time_unit``); models trained before it was recorded spelled each file's own unit."""


# -- reading: what a training column is -------------------------------------------------------
def plain_arrow(
    column: pa.ChunkedArray | pa.Array, time_unit: str | None = TIME_UNIT
) -> pa.ChunkedArray | pa.Array:
    """An Arrow column in the types features come in: numbers, text or booleans as text.

    Dates and times become their ISO text (:func:`temporal_text`: one spelling per instant in
    ``time_unit``, whatever the file's unit), durations a number of ``time_unit``, decimals float64 by their digits
    (:func:`decimal_numbers`), booleans ``true``/``false``,
    dictionaries, large strings and string views plain strings, an all-null column float64.  Nested types
    are left for the caller to refuse.  Used on training tables and Parquet requests alike.
    """
    t = column.type
    if pat.is_decimal(t):
        return decimal_numbers(column)
    if pat.is_null(t):
        return column.cast(pa.float64())
    if pat.is_boolean(t):
        return pc.if_else(column, TRUE, FALSE)
    if pat.is_dictionary(t):
        return plain_arrow(column.cast(t.value_type), time_unit)
    if pat.is_temporal(t):
        return temporal_text(column, time_unit)
    if pat.is_large_string(t) or getattr(pat, "is_string_view", lambda _: False)(t):  # view: pyarrow >= 16
        return column.cast(pa.string())
    return column


def decimal_numbers(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A decimal column as float64, each value the float nearest its digits, as CSV or JSON text
    of the same digits reads (``float()``): Arrow's own decimal-to-float cast is not correctly
    rounded (``decimal128(38, 10)`` 0.7 became 0.7000000000000001, ``decimal128(38, 20)`` 0.1
    0.09999999999999999), its cast of text is (tests/unit/test_values.py).  So a decimal goes by
    its digits (Arrow's text of it, an exponent for small values included), as a label's do
    (:func:`byoc.data.tabular.whole_decimals`)."""
    return column.cast(pa.string()).cast(pa.float64())


_UNITS = ("s", "ms", "us", "ns")
_DIGITS = {0: "s", 3: "ms", 6: "us", 9: "ns"}
_TEMPORAL_TEXT = re.compile(r"(?:\d{4,}-\d\d-\d\d )?\d\d:\d\d:\d\d(?:\.(\d+))?(?:Z|[+-]\d{4})?", re.ASCII)


def time_unit_of(categories: Iterable[Any]) -> str | None:
    """The unit a model's categories spell timestamps and times in, or None when they hold none.

    Arrow's text of a timestamp carries as many second digits as its unit: none for seconds, 3,
    6 or 9.  A model trained before :data:`TIME_UNIT` was recorded holds its file's unit, found
    here so that a request in another unit is spelled as that model's categories are.  Mixed
    digit counts (microseconds with finer nanoseconds kept, or text that only looks like times)
    give None: the caller's default applies.
    """
    digits = set()
    for category in categories:
        if isinstance(category, str):
            match = _TEMPORAL_TEXT.fullmatch(category)
            if match:
                digits.add(len(match.group(1) or ""))
    if len(digits) == 1:
        return _DIGITS.get(digits.pop())
    return None


def _finer_than(unit: str, other: str) -> bool:
    return _UNITS.index(unit) > _UNITS.index(other)


def temporal_text(
    column: pa.ChunkedArray | pa.Array, unit: str | None = TIME_UNIT
) -> pa.ChunkedArray | pa.Array:
    """A date, time, timestamp or duration column spelled by the instant, not by its unit.

    - A timestamp is Arrow's ISO text in ``unit`` (microseconds by default,
      ``2020-01-04 00:00:00.000000``), whatever unit the file stores; a time likewise
      (``01:02:03.000000``).  A value finer than ``unit`` (a nanosecond that is not a whole
      microsecond) keeps its own digits rather than be truncated into another instant's
      spelling; a value beyond ``unit``'s range keeps its own unit.
    - A time-zone-aware timestamp is the wall time in its own zone with that zone's offset
      (``+0100``, ``Z`` for UTC), as training has always spelled it: the same instant in
      two zones is two spellings (a model trained on one zone knows that zone's).
    - A date is ``2020-01-04`` (date32 or date64).
    - A duration is its number of ``unit`` (fractional for finer values).
    ``unit=None`` spells each value in the column's own unit (what models trained before
    :data:`TIME_UNIT` was recorded hold).
    """
    t = column.type
    if pat.is_date(t) or unit is None or not hasattr(t, "unit"):  # intervals: Arrow's own text
        return column.cast(pa.string())
    finer = _finer_than(t.unit, unit)
    if pat.is_duration(t):
        coarse = column.cast(pa.duration(unit), safe=False)  # coarser units: exact
        out = coarse.cast(pa.int64()).cast(pa.float64(), safe=False)
        if finer:
            rest = pc.subtract(column.cast(pa.int64()), coarse.cast(t).cast(pa.int64()))
            ratio = 1000.0 ** (_UNITS.index(t.unit) - _UNITS.index(unit))
            out = pc.add(out, pc.divide(rest.cast(pa.float64()), ratio))
        return out
    if pat.is_timestamp(t):
        target: pa.DataType = pa.timestamp(unit, tz=t.tz)
    else:
        target = pa.time32(unit) if unit in ("s", "ms") else pa.time64(unit)
    if finer:
        text = column.cast(target, safe=False).cast(pa.string())
        kept = pc.not_equal(column.cast(target, safe=False).cast(t), column)
        if pc.any(kept).as_py():
            return pc.if_else(kept, column.cast(pa.string()), text)
        return text
    try:
        return column.cast(target).cast(pa.string())
    except pa.ArrowInvalid:  # out of the coarser unit's range
        return column.cast(pa.string())


def read_arrow(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A training column: :func:`plain_arrow`, then text that is all numbers becomes float64
    and other text is spelled as categories (missing -> null, boolean words -> true/false)."""
    return read_arrow_columns([column])[0]


def read_arrow_columns(columns: Sequence[pa.ChunkedArray | pa.Array]) -> list[pa.ChunkedArray | pa.Array]:
    """:func:`read_arrow` of each column, the text columns' numbers read together
    (:func:`text_number_columns`)."""
    out = [plain_arrow(column) for column in columns]
    text = [
        i for i, column in enumerate(out) if pat.is_string(column.type) or pat.is_large_string(column.type)
    ]
    for i, (numbers, bad) in zip(text, text_number_columns([out[i] for i in text]), strict=True):
        out[i] = (
            pa.array(numbers, type=pa.float64(), from_pandas=True) if bad is None else text_categories(out[i])
        )
    return out


def spell_python(values: Sequence[Any]) -> pa.Array:
    """A column of JSON scalars as text, each spelled by :func:`category` (null when missing).

    :func:`read_arrow` then types it like any text column: ``[1, 2.5, null]`` is numeric,
    ``[1, "a"]`` the categories ``"1"``, ``"a"``, ``[true, false]`` the categories
    ``"true"``, ``"false"``.
    """
    return pa.array([v if type(v) is str else None for v in map(category, values)], type=pa.string())
