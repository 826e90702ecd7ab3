"""Request data versus the model's feature schema: a ready-to-predict frame, or a precise 400.

The model (see ``byoc.artifact``) takes a DataFrame with ``feature_names`` in order, numeric
features as float64 and categorical ones as object holding text, missing values as NaN.
Decoders hand over what they parsed in one of three shapes, and :class:`RequestSchema` turns
each into a :class:`Batch` of typed columns (which builds that frame when needed):

- ``from_rows``: positional rows (CSV lines, JSON lists) of Python scalars;
- ``from_records``: records keyed by feature name (JSON objects);
- ``from_frame``: a DataFrame, positional (headerless CSV, npy) or named (Parquet, CSV with
  a header), checked column by column with vectorised pandas operations.

Rows are numbered from 1 in the order they appear in the body (a CSV header not counted), so
a message such as "row 12, column 'age'" points at the culprit.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from byoc import header_names, values
from byoc.artifact import Feature
from byoc.errors import SchemaError
from byoc.json_objects import json_words

# Trees predict in float32: anything larger would become infinity there.
FLOAT32_MAX = float(np.finfo(np.float32).max)
_NAN = float("nan")
ARROW_TEXT = pd.StringDtype("pyarrow", na_value=_NAN)
"""Text columns decoded from Arrow: pandas' ``str`` dtype, the one a frame of text infers."""


@dataclass(frozen=True)
class Batch:
    """Validated request rows as typed columns in the model's feature order.

    Numeric columns are float64 arrays (NaN = missing), categorical ones object arrays of
    text (NaN = missing), or :data:`ARROW_TEXT` arrays (:func:`text_categories`) when decoded
    through Arrow or a column at a time (large CSV, JSON and JSON Lines batches).  :meth:`frame`
    is the DataFrame the pipeline in model.joblib takes (its text columns of pandas' ``str``
    dtype either way); the fast single-row path reads the columns directly and never builds it.
    """

    names: tuple[str, ...]
    columns: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.columns[0]) if self.columns else 0

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(dict(zip(self.names, self.columns, strict=True)), copy=False)


_BadValue = values.BadValue  # a single value cannot be used; the caller adds row and column


def _check_range(x: float) -> float:
    if x != x:  # NaN: a missing value
        return x
    if math.isinf(x) or abs(x) > FLOAT32_MAX:
        raise _BadValue(
            f"{x!r} is out of range (|x| must stay below {FLOAT32_MAX:.3g}); "
            "send a finite number, or an empty value for missing",
            code="out_of_range",
        )
    return x


def to_number(value: Any) -> float:
    """One request value for a numeric feature as float (NaN when missing), within float32 range."""
    return _check_range(values.number(value))


def to_flag(value: Any) -> float:
    """A boolean feature of a model trained before booleans became categories (0/1)."""
    return _check_range(values.flag(value))


to_category = values.category  # one request value for a categorical feature (NaN when missing)


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _unique_keys(names: Sequence[str], key: Any) -> dict[str, str]:
    """``key(name) -> name`` for the names no other name shares a key with."""
    keyed: dict[str, list[str]] = {}
    for name in names:
        keyed.setdefault(key(name), []).append(name)
    return {k: alike[0] for k, alike in keyed.items() if len(alike) == 1}


COLUMNS_SHAPE = (
    'column-oriented "inputs" holds every column as a list of the same length, one value per row, such '
    'as {"inputs": {"age": [30, 41], "job": ["admin", "tech"]}}; or send rows or records in "instances"'
)


def _values(count: int) -> str:
    return f"{count} value{'' if count == 1 else 's'}"


def _names_list(names: Iterable[str], limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


@dataclass(frozen=True)
class _Column:
    name: str
    numeric: bool


class RequestSchema:
    """The model's features, precompiled for the per-request path."""

    def __init__(
        self,
        features: Sequence[Feature],
        time_unit: str | None = values.TIME_UNIT,
        label_at: int | None = None,
    ) -> None:
        """``time_unit``: the unit the model spells Parquet dates and times in (model.json
        ``time_unit``; None for models trained before it was recorded, which spelled each
        file's own unit); ``label_at``: the label's column in training's files (model.json
        ``target.index``), for a CSV header's blank cells (:meth:`blank_cell_named`)."""
        self._label_at = label_at
        if not features:
            raise ValueError("a model needs at least one feature")
        self.features = tuple(features)
        # a feature whose categories spell times in one unit is spelled so (older models hold
        # their training file's unit), any other in the model's unit
        self._time_units = {f.name: values.time_unit_of(f.categories) or time_unit for f in features}
        self._time_unit = time_unit
        self.names: tuple[str, ...] = tuple(f.name for f in features)
        self.numeric: tuple[bool, ...] = tuple(f.kind == "numeric" for f in features)
        self.flags: tuple[bool, ...] = tuple(f.kind == "numeric" and f.dtype == "bool" for f in features)
        self.index: Mapping[str, int] = {name: i for i, name in enumerate(self.names)}
        # the keys a JSON record may leave out, read as missing (see byoc.absent_keys)
        self.optional = frozenset(f.name for f in features if f.optional)
        self._absent: dict[str, Any] = dict.fromkeys(n for n in self.names if n in self.optional)
        self._required = tuple(n for n in self.names if n not in self.optional)
        self._stripped = _unique_keys(self.names, str.strip)  # see feature_named
        self._folded = _unique_keys(self.names, lambda name: name.strip().casefold())
        # every name stripped and case-folded: a text that names a feature is one of these once
        # stripped and case-folded too (a set test at C speed for a row's cells, see csv.py)
        self.folded_names = frozenset(name.strip().casefold() for name in self.names)
        self._converters = tuple(
            to_flag if flag else to_number if numeric else to_category
            for numeric, flag in zip(self.numeric, self.flags, strict=True)
        )
        self._numeric_at = tuple(i for i, n in enumerate(self.numeric) if n)
        self._text_at = tuple(i for i, n in enumerate(self.numeric) if not n)
        # feature j's place in [*numeric columns, *text columns], see _arrange
        self._placement = tuple(
            self._numeric_at.index(j) if n else len(self._numeric_at) + self._text_at.index(j)
            for j, n in enumerate(self.numeric)
        )
        self._text_row_fits = not any(self.flags)  # see _text_row

    @property
    def width(self) -> int:
        return len(self.names)

    def describe(self) -> str:
        return _names_list(
            f"{n} ({'numeric' if num else 'categorical'})"
            for n, num in zip(self.names, self.numeric, strict=True)
        )

    # -- errors ---------------------------------------------------------------------------
    def width_error(self, got: int, row: int) -> SchemaError:
        hint = ""
        if got == self.width + 1:
            hint = " If the first value is the label, drop it: requests carry features only."
        return SchemaError(
            f"row {row} has {got} value{'s' if got != 1 else ''} but the model expects {self.width} "
            f"features in this order: {_names_list(self.names)}.{hint}",
            code="wrong_column_count",
        )

    def _value_error(self, exc: _BadValue, column: int, row: int) -> SchemaError:
        kind = "numeric" if self.numeric[column] else "categorical"
        return SchemaError(f"row {row}, column '{self.names[column]}' ({kind}): {exc.what}", code=exc.code)

    def time_unit(self, column: str) -> str | None:
        """The unit a request's Parquet date/time column named ``column`` is spelled in."""
        name = self.feature_named(column)
        return self._time_units[name] if name is not None else self._time_unit

    def feature_named(self, text: str) -> str | None:
        """The feature ``text`` names: the one named ``text`` exactly, else the one whose name is
        ``text`` once surrounding spaces are stripped from both, else once case is ignored too
        (a relaxed comparison under which two features' names are alike names neither); None
        when it names none."""
        if text in self.index:
            return text
        key = text.strip()
        name = self._stripped.get(key)
        return name if name is not None else self._folded.get(key.casefold())

    def blank_cell_named(self, position: int) -> str | None:
        """The feature a blank CSV header cell at 0-based ``position`` names: the one training named
        for the blank cell at that place (:mod:`byoc.header_names`, the header in training's
        order); None when training named no feature so."""
        name = header_names.blank_cell_name(header_names.place_in_training(position, self._label_at))
        return name if name in self.index else None

    def named(self, given: Sequence[str], *, where: str, record: bool = False) -> list[str]:
        """The features a request's keys or columns ``given`` name, in their order, each by
        :meth:`feature_named` (the one rule for every content type: CSV header, JSON keys and
        ``dataframe_split`` columns, Parquet columns); refused as :meth:`check_names` refuses
        (``record``: the keys of one JSON record, which may leave out the optional features)."""
        if list(given) == list(self.names):
            return list(given)
        names = [self.feature_named(g) or g for g in given]
        self.check_names(names, where=where, record=record)
        return names

    def check_names(self, given: Sequence[str], *, where: str, record: bool = False) -> None:
        """Unknown, repeated or missing keys/columns -> 400 naming them.  A repeated name comes
        before a missing one: it stands where the missing column was meant (``age, age`` for
        ``age, balance``), and "lacks 'balance'" sent the client looking for the wrong mistake.
        ``record``: the keys of one JSON record, which may lack :attr:`optional` features (as
        training's JSON Lines records did); a table names every column."""
        given_set = set(given)
        missing = [n for n in self.names if n not in given_set and not (record and n in self.optional)]
        unknown = [g for g in given if g not in self.index]
        if unknown:
            raise SchemaError(
                f"{where} has unknown column{'s' if len(unknown) > 1 else ''} {_names_list(unknown)}; "
                f"the model's features are {_names_list(self.names)} (drop the label and any extra columns)",
                code="unknown_columns",
            )
        if len(given_set) != len(given):
            # counted in one pass: a count per name was quadratic, and a 6 MB CSV header of one
            # name repeated (1.5 million cells) held a worker thread, and the GIL, for hours
            dupes = sorted(g for g, n in Counter(given).items() if n > 1)
            lacks = f" and lacks {_names_list(missing)}" if missing else ""
            raise SchemaError(
                f"{where} repeats column {_names_list(dupes)}{lacks}; name each feature once",
                code="duplicate_columns",
            )
        if missing:
            may_lack = [n for n in self.names if n in self.optional] if record else []
            leave_out = (
                f"; a record may leave out only {_names_list(may_lack)}, missing in training's records"
                if may_lack
                else ""
            )
            raise SchemaError(
                f"{where} lacks column{'s' if len(missing) > 1 else ''} {_names_list(missing)}; "
                f"send every feature (null for a missing value{leave_out})",
                code="missing_columns",
            )

    # -- Python values ---------------------------------------------------------------------
    def _batch(self, columns: Sequence[Sequence[Any]]) -> Batch:
        """The converted columns (of equal length) as one float64 array of the numeric ones and
        one object array of the text ones, each made by one conversion instead of one per column
        (a tenth of a single CSV row's decoding)."""
        numeric = np.array([columns[i] for i in self._numeric_at], dtype=np.float64)
        return self._arrange(numeric, np.array([columns[i] for i in self._text_at], dtype=object))

    def _arrange(self, numeric: np.ndarray, text: np.ndarray | Sequence[Any]) -> Batch:
        """A Batch of the rows of ``numeric`` (the numeric columns) and ``text`` (the text ones),
        each kind in the model's order, put in the model's order.

        Each kind's rows are taken by ``islice`` of their count: unpacking the arrays themselves
        read one row past the end, an IndexError numpy formats and the iteration then swallows,
        twice a request (7.3K of the 51K instructions of a single row's columns here)."""
        columns = [*islice(numeric, len(numeric)), *islice(text, len(text))]
        return Batch(self.names, tuple(map(columns.__getitem__, self._placement)))

    def _text_row(self, row: Sequence[Any]) -> Batch | None:
        """One row of text (a single-row CSV request) whose numeric cells are all numbers in range:
        its numbers read at once (:func:`values.number_texts`), its categories by
        :func:`to_category`; None for any other row, which :meth:`from_rows` reads value by value
        (missing words, non-text values, refusals and their messages)."""
        if not self._text_row_fits or len(row) != self.width:
            return None
        numbers = values.number_texts([row[i] for i in self._numeric_at])
        if numbers is None or (numbers and max(map(abs, numbers)) > FLOAT32_MAX):
            return None  # some cell is no number, or out of range (never NaN: no number spells it)
        try:
            text = [to_category(row[i]) for i in self._text_at]
        except _BadValue:  # a list or object for a category (JSON): from_rows names row and column
            return None
        return self._arrange(
            np.array(numbers, dtype=np.float64).reshape(-1, 1), np.array(text, dtype=object).reshape(-1, 1)
        )

    def from_rows(self, rows: Sequence[Any], *, start_row: int = 0) -> Batch:
        """Positional rows of scalars (CSV fields as text, or JSON values)."""
        if len(rows) == 1 and isinstance(rows[0], (list, tuple)):
            batch = self._text_row(rows[0])
            if batch is not None:
                return batch
        if len(rows) >= BY_COLUMN_ROWS:
            batch = self.rows_by_column(rows)
            if batch is not None:
                return batch
        return self.rows_by_cell(rows, start_row=start_row)

    def rows_by_column(self, rows: Sequence[Any]) -> Batch | None:
        """:meth:`rows_by_cell`'s batch, each feature's cells converted together
        (:meth:`_by_column`); None when a row is not a list of :attr:`width` values or a value is
        refused: then :meth:`rows_by_cell` names the first culprit in the body's order."""
        if not set(map(type, rows)) <= _ROW_TYPES or set(map(len, rows)) != {self.width}:
            return None
        return self._by_column(list(zip(*rows, strict=True)))  # lengths checked above

    def rows_by_cell(self, rows: Sequence[Any], *, start_row: int = 0) -> Batch:
        """:meth:`from_rows` value by value, row after row: the reference the by-column path is
        tested against, and what finds the first refused value and its message."""
        width = self.width
        converters = self._converters
        columns: list[list] = [[] for _ in range(width)]
        for number, row in enumerate(rows, start=start_row + 1):
            if not isinstance(row, (list, tuple)):
                raise SchemaError(
                    f"row {number} is {json_words(row)}; each row must be a list of {width} feature values "
                    "(or, in every row, an object of feature: value)",
                    code="bad_row",
                )
            if len(row) != width:
                raise self.width_error(len(row), number)
            j = 0
            try:
                for j in range(width):
                    columns[j].append(converters[j](row[j]))
            except _BadValue as exc:
                raise self._value_error(exc, j, number) from None
        return self._batch(columns)

    def from_records(self, records: Sequence[Any], *, start_row: int = 0) -> Batch:
        """Records keyed by feature name; every feature present, no others."""
        if len(records) >= BY_COLUMN_ROWS:
            batch = self.records_by_column(records)
            if batch is not None:
                return batch
        return self.records_by_cell(records, start_row=start_row)

    def records_by_column(self, records: Sequence[Any]) -> Batch | None:
        """:meth:`records_by_cell`'s batch, each feature's values taken from every record and
        converted together (:meth:`_by_column`); None when a record is not an object naming the
        features exactly (leaving out only optional ones) or a value is refused: then
        :meth:`records_by_cell` reads the keys' relaxed spellings and names the first culprit."""
        if set(map(type, records)) != {dict}:
            return None
        width = self.width
        if set(map(len, records)) != {width}:
            if not all(len(r) == width or self._lacks_only_optional(r) for r in records):
                return None
            absent = self._absent
            records = [r if len(r) == width else absent | r for r in records]
        try:
            cells = [list(map(itemgetter(name), records)) for name in self.names]
        except KeyError:  # a key spelt otherwise: the relaxed names, or a refusal
            return None
        return self._by_column(cells)

    def records_by_cell(self, records: Sequence[Any], *, start_row: int = 0) -> Batch:
        """:meth:`from_records` value by value, record after record (see :meth:`rows_by_cell`)."""
        names = self.names
        converters = self._converters
        columns: list[list] = [[] for _ in names]
        for number, record in enumerate(records, start=start_row + 1):
            if not isinstance(record, dict):
                raise SchemaError(
                    f"row {number} is {json_words(record)}; each row must be an object of feature: value "
                    f"(or, in every row, a list of {len(names)} feature values)",
                    code="bad_row",
                )
            if len(record) != len(names) or not all(n in record for n in names):
                if self._lacks_only_optional(record):  # the usual sparse record, at a third of the cost
                    record = self._absent | record
                else:
                    named = self.named(list(record), where=f"row {number}", record=True)
                    record = self._absent | dict(zip(named, record.values(), strict=True))
            j = 0
            try:
                for j, name in enumerate(names):
                    columns[j].append(converters[j](record[name]))
            except _BadValue as exc:
                raise self._value_error(exc, j, number) from None
        return self._batch(columns)

    def _by_column(self, cells: Sequence[Sequence[Any]]) -> Batch | None:
        """Each feature's cells (Python values, in the model's order) converted a column at a
        time: a column of JSON numbers (and nulls) or of text (and nulls) by byoc.values' column
        functions, any other column (booleans, mixed kinds, nested values, old boolean features)
        value by value with the feature's converter; None when any value is refused."""
        numeric = []
        for j in self._numeric_at:
            column = None if self.flags[j] else _number_cells(cells[j])
            numeric.append(column if column is not None else _each(cells[j], self._converters[j]))
        text = [_category_cells(cells[j]) for j in self._text_at]
        if any(column is None for column in (*numeric, *text)):
            return None
        return self._arrange(_stack(numeric, np.float64), text)

    def json_arrow_types(self) -> pa.Schema:
        """The Arrow types pyarrow.json reads this model's JSON records in (:meth:`from_json_arrow`):
        float64 for a numeric feature, text for a categorical one."""
        return pa.schema(
            [
                (n, pa.float64() if num else pa.string())
                for n, num in zip(self.names, self.numeric, strict=True)
            ]
        )

    def from_json_arrow(self, table: pa.Table, written: Callable[[str, int], bool]) -> Batch | None:
        """:meth:`records_by_column`'s batch from JSON records pyarrow.json read with
        :meth:`json_arrow_types` (every cell a JSON number, text or null of its column's type, no
        other key), its columns converted by byoc.values' column functions as the Python values'
        are; None wherever Arrow's reading could differ from :mod:`json`'s, for the Python path to
        read: a null in a required column unless ``written(name, nulls)``, the body wrote its
        ``nulls`` nulls (Arrow reads a key left out as null too), a NaN token,
        ``-0`` (Arrow's -0.0, :mod:`json`'s integer 0), a number out of range, old boolean features."""
        if any(self.flags) or table.column_names != list(self.names):
            return None
        for name, column in zip(self.names, table.columns, strict=True):
            if column.null_count and name not in self.optional and not written(name, column.null_count):
                return None
        numeric = []
        for j in self._numeric_at:
            column = table.column(j)
            numbers, bad = values.number_column(column)
            with np.errstate(invalid="ignore"):
                doubtful = (
                    np.isnan(numbers).sum() != column.null_count
                    or ((numbers == 0) & np.signbit(numbers)).any()
                )
            if bad is not None or doubtful or (np.abs(numbers) > FLOAT32_MAX).any():
                return None
            numeric.append(numbers)
        text = [text_categories(table.column(j)) for j in self._text_at]
        return self._arrange(_stack(numeric, np.float64), text)

    def _lacks_only_optional(self, record: dict) -> bool:
        """Whether ``record`` names every required feature exactly and no other key than the
        optional ones: read without :meth:`named` (its relaxed names and messages)."""
        index = self.index
        return (
            bool(self.optional)
            and len(record) < len(index)
            and all(n in record for n in self._required)
            and all(k in index for k in record)
        )

    def from_columns(self, columns: Mapping[str, Any]) -> Batch:
        """Column-oriented JSON: ``{"age": [30, 41], "job": ["admin", null]}``.  A column that is
        not a list, or of another length than the first, is named as the client wrote it, with
        the shape: ``{"age": [1, 2], "job": 5}`` was read as one record and refused for its list
        in 'age', the column the client wrote right."""
        given = list(columns)
        named = dict(zip(self.named(given, where="the column mapping"), columns.values(), strict=True))
        first: tuple[str, int] | None = None
        for name, column in zip(given, columns.values(), strict=True):
            if not isinstance(column, list):
                raise SchemaError(
                    f"column '{name}' holds {json_words(column)}, not a list of values: {COLUMNS_SHAPE}",
                    code="bad_row",
                )
            if first is None:
                first = (name, len(column))
            elif len(column) != first[1]:
                raise SchemaError(
                    f"column '{name}' holds {_values(len(column))} where column '{first[0]}' holds "
                    f"{_values(first[1])}: {COLUMNS_SHAPE}",
                    code="ragged_columns",
                )
        cells = [named[name] for name in self.names]
        if first is None or first[1] < BY_COLUMN_ROWS:
            return self.from_rows(list(zip(*cells, strict=True)))
        # from_rows' batch (or its error) from the columns as sent: its rows taken apart again
        # cost as much as the rest of the conversion (20,000 rows of 20 features: 2 x 12 ms)
        batch = self._by_column(cells)
        return batch if batch is not None else self.rows_by_cell(list(zip(*cells, strict=True)))

    # -- frames ----------------------------------------------------------------------------
    def from_frame(self, frame: pd.DataFrame, *, positional: bool, start_row: int = 0) -> Batch:
        """A parsed table: positional columns (by order) or named ones (by name, any order)."""
        if positional:
            if frame.shape[1] != self.width:
                raise self.width_error(frame.shape[1], start_row + 1)
            frame = frame.set_axis(list(self.names), axis=1)
        else:
            given = [str(c) for c in frame.columns]
            if given != list(self.names):
                frame = frame.set_axis(self.named(given, where="the table"), axis=1)[list(self.names)]
        columns = []
        for j in range(self.width):
            series = frame.iloc[:, j]
            try:
                columns.append(
                    self._flag_column(series)
                    if self.flags[j]
                    else self._numeric_column(series)
                    if self.numeric[j]
                    else self._categorical_column(series)
                )
            except _RowError as exc:
                raise self._value_error(exc.error, j, start_row + 1 + exc.position) from None
        return Batch(self.names, tuple(columns))

    def from_arrow(self, table: pa.Table, *, start_row: int = 0) -> Batch:
        """Named Arrow text columns (CSV as pyarrow parsed it), read by each feature's kind with
        byoc.values' column rules and no DataFrame in between.  Categorical columns stay Arrow
        strings, as pandas' ``str`` dtype (what a frame of text columns would infer anyway), so
        no Python object is made per cell."""
        given = list(table.column_names)
        if given != list(self.names):
            table = table.rename_columns(self.named(given, where="the table"))
        columns: list[Any] = []
        numeric = [j for j in range(self.width) if self.numeric[j] and not self.flags[j]]
        read = dict(  # together: one check and one cast for a wide table's numbers, not one per column
            zip(
                numeric,
                values.text_number_columns([table.column(self.names[j]) for j in numeric]),
                strict=True,
            )
        )
        for j, name in enumerate(self.names):
            text = table.column(name)
            try:  # a refused value, an old boolean feature's too, is a 400 naming its row and column
                if self.flags[j]:
                    columns.append(self._flag_column(text.to_pandas()))
                elif self.numeric[j]:
                    numbers, bad_position = read[j]
                    columns.append(self._checked_numbers(numbers, bad_position, _arrow_value(text)))
                else:
                    columns.append(text_categories(text))
            except _RowError as exc:
                raise self._value_error(exc.error, j, start_row + 1 + exc.position) from None
        return Batch(self.names, tuple(columns))

    @classmethod
    def _numeric_column(cls, series: pd.Series) -> np.ndarray:
        numbers, bad_position = values.number_column(series)
        return cls._checked_numbers(numbers, bad_position, lambda k: series.iloc[k])

    @staticmethod
    def _checked_numbers(numbers: np.ndarray, bad_position: int | None, value_at: Any) -> np.ndarray:
        """``numbers`` when every one is in range; else a _RowError for the first culprit
        (``value_at(position)`` gives the value as sent)."""
        if bad_position is not None:
            try:
                to_number(value_at(bad_position))
            except _BadValue as exc:
                raise _RowError(exc, bad_position) from None
            raise _RowError(_BadValue(f"{value_at(bad_position)!r} is not a number"), bad_position)
        bad = np.abs(numbers) > FLOAT32_MAX  # infinities too; NaN (missing) compares False
        if bad.any():  # the one message for it (a numpy scalar's repr read "np.float64(inf)")
            first = int(np.argmax(bad))
            try:
                _check_range(float(numbers[first]))
            except _BadValue as exc:
                raise _RowError(exc, first) from None
        return numbers

    @classmethod
    def _flag_column(cls, series: pd.Series) -> np.ndarray:
        return _convert_each(series.to_numpy(dtype=object), to_flag, np.float64)

    @staticmethod
    def _categorical_column(series: pd.Series) -> np.ndarray:
        try:
            return values.category_column(series).to_numpy(dtype=object, na_value=_NAN)
        except _BadValue:
            return _convert_each(series.to_numpy(dtype=object), to_category, object)  # finds the row


BY_COLUMN_ROWS = 1024
"""Batches of at least this many rows of Python values are converted a column at a time; fewer
rows take the per-value path, whose set-up is less: a column's conversion costs 0.1-0.2 ms
before its first value (pandas and Arrow set-up), and the two paths cost the same at about
1,000 rows of the benchmarks' 20 features (rows_by_cell 5.3 ms, rows_by_column 5.3 ms; 20,000
rows: 105 against 59 ms)."""
_ROW_TYPES = {list, tuple}
_NUMBERS = {int, float, type(None)}
_TEXTS = {str, type(None)}


def _number_cells(cells: Sequence[Any]) -> np.ndarray | list | None:
    """:func:`to_number` of each cell of a column of JSON numbers and nulls (read as a float64
    column: the number each is, NaN for null) or of text and nulls (:func:`values.number_column`
    over it as Arrow text); any other column value by value; None when a value is refused."""
    kinds = set(map(type, cells))
    numbers: Any = None
    try:
        if kinds <= _NUMBERS:
            # NumPy reads a Python int as float() does (exactly rounded, past 2**63 too) and a
            # float as itself; an int too large for a float (OverflowError) is refused below
            numbers = pd.Series(np.array(cells, dtype=np.float64), copy=False)
        elif kinds <= _TEXTS:
            numbers = _arrow_text(cells)
    except OverflowError:
        pass
    if numbers is not None:
        read, bad = values.number_column(numbers)
        if bad is None:
            try:
                return RequestSchema._checked_numbers(read, None, cells.__getitem__)
            except _RowError:  # out of range: refused below
                pass
    return _each(cells, to_number)


def _category_cells(cells: Sequence[Any]) -> Any:
    """:func:`to_category` of each cell: a column of text and nulls as Arrow text, by
    :func:`text_categories`; any other value by value; None when a value is refused."""
    text = _arrow_text(cells) if set(map(type, cells)) <= _TEXTS else None
    if text is None:
        column = _each(cells, to_category)
        return None if column is None else np.array(column, dtype=object)
    return text_categories(text)


def text_categories(text: pa.Array | pa.ChunkedArray) -> Any:
    """A batch's categorical column from Arrow text: :func:`values.text_categories` (the value
    rules of :func:`to_category`, a column at a time) as :data:`ARROW_TEXT`, the dtype a frame of
    text infers, so the pipeline's frame is the one the Python values made and the encoder codes
    it in Arrow, with no Python object per cell (object text cost the decision tree's encoder
    ten times the CPU); a column with no value left as NaN objects, as a frame of them holds it."""
    spelled = values.text_categories(text)
    if spelled.null_count == len(spelled):
        return np.full(len(spelled), _NAN, dtype=object)
    return pd.array(spelled, dtype=ARROW_TEXT)


def _arrow_text(cells: Sequence[str | None]) -> pa.Array | None:
    """Text and nulls as an Arrow column; None for text Arrow cannot hold (a lone surrogate,
    which JSON's escapes can spell): the value-by-value path reads it."""
    try:
        return pa.array(cells, type=pa.large_string())
    except UnicodeEncodeError:
        return None


def _each(cells: Sequence[Any], convert: Any) -> list | None:
    """``convert`` of each cell, or None when it refuses one."""
    try:
        return list(map(convert, cells))
    except _BadValue:
        return None


def _stack(columns: Sequence[Any], dtype: Any) -> np.ndarray:
    """Equally long columns as the rows of one 2-D array (an empty one for no columns)."""
    out = np.empty((len(columns), len(columns[0]) if columns else 0), dtype=dtype)
    for i, column in enumerate(columns):
        out[i] = column
    return out


def _arrow_value(column: pa.ChunkedArray) -> Any:
    """The value at a position of an Arrow column, as Python (for messages)."""
    return lambda position: column[position].as_py()


def _convert_each(raw: np.ndarray, convert: Any, dtype: Any) -> np.ndarray:
    out = np.empty(len(raw), dtype=dtype)
    for pos, value in enumerate(raw):
        try:
            out[pos] = convert(value)
        except _BadValue as exc:
            raise _RowError(exc, pos) from None
    return out


class _RowError(Exception):
    def __init__(self, error: _BadValue, position: int) -> None:
        super().__init__(error.what)
        self.error = error
        self.position = position
