"""Helpers shared by the table readers: turning pyarrow tables into one pandas frame."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from byoc import values, wide_text
from byoc.arrow_tables import exact_integer_column, keep_exact_integers
from byoc.errors import DataError


@dataclass(frozen=True)
class SparseLayout:
    """A libsvm channel's feature columns: the feature index of the first (1, or 0 when some
    index 0 appears: libsvm files are 1-based) and how many there are (through the highest index)."""

    first_index: int
    features: int


class Read(NamedTuple):
    """What a reader returns: the channel as one frame, whether its files had a header row and,
    for libsvm, its layout (an evaluation channel's libsvm reader follows the train channel's)."""

    frame: pd.DataFrame
    has_header: bool
    layout: SparseLayout | None = None


def plain_types(table: pa.Table) -> pa.Table:
    """Keep the model's world to numbers and text (:func:`byoc.values.plain_arrow`: dates and
    booleans become text, as the server receives them); refuse nested and binary columns."""
    fields, columns = [], []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pat.is_nested(field.type):
            raise DataError(
                f"column '{field.name}' holds nested values ({field.type}); flatten it into scalar "
                "columns (numbers or text)",
                code="nested_column",
            )
        plain = values.plain_arrow(column)
        _refuse_binary(field.name, field.type, plain)
        fields.append(pa.field(field.name, plain.type))  # a plain field, as set_column(i, name) made
        columns.append(plain)
    # One table at the end: set_column per column copied the column list each time (quadratic:
    # 0.85 s for 2,000 columns).
    if not columns:
        return table
    return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=table.schema.metadata))


def _is_binary(kind: pa.DataType) -> bool:
    return (
        pat.is_binary(kind)
        or pat.is_large_binary(kind)
        or pat.is_fixed_size_binary(kind)
        or getattr(pat, "is_binary_view", lambda _: False)(kind)  # pyarrow >= 16
    )


def _refuse_binary(name: str, kind: pa.DataType, plain: pa.ChunkedArray | pa.Array) -> None:
    """A column of bytes (Parquet ``binary``, ``fixed_size_binary``, a dictionary of them) that
    holds a value: no feature or label takes bytes (the server answers 400 for the same column,
    :func:`byoc.values.category`), so the file is refused where it is read, naming the first row
    holding one, before any channel's check meets a value it has no words for."""
    if not _is_binary(plain.type) or plain.null_count == len(plain):
        return
    row = int(pc.index(pc.is_valid(plain), True).as_py())
    raise DataError(
        f"column '{name}' holds binary data ({kind}; row {row + 1}: {plain[row].as_py()[:20]!r}), "
        "which no feature or label takes (a model reads numbers and text, and its endpoint answers "
        f"400 to a feature of bytes); write the column as text (pandas: df['{name}'] = df['{name}'].str.decode('utf-8'); "
        "pyarrow: cast it to pa.string()) or as numbers, and write the file again",
        code="binary_column",
    )


def refuse_nul_cells(tables: Sequence[pa.Table], files: Sequence[str]) -> None:
    """A text value holding NUL (:func:`byoc.wide_text.nul_cell`), in any column of any file, refused
    naming the file, its row and the column: CSV's own check reads only a file's first bytes, and
    JSON Lines' ``"\\u0000"`` was a category the endpoint refuses when sent as CSV."""
    for table, file in zip(tables, files, strict=True):
        for name, column in zip(table.column_names, table.columns, strict=True):
            row = wide_text.first_nul(column)
            if row is not None:
                raise DataError(
                    wide_text.nul_cell(f"{file}, row {row + 1}, column '{name}'"), code="not_text"
                )


def check_same_kinds(tables: Sequence[pa.Table], files: Sequence[str], *, typed: bool = True) -> None:
    """A column whose values are all numbers in one file but hold text in another is a
    DataError naming both files: concatenated, the text would silently turn a numeric feature
    into categories.  Files where the column is all missing take no side; int and float files
    agree.  Nothing to check when the channel is not ``typed`` (the train channel's schema
    types it: see :func:`to_frame`)."""
    if len(tables) < 2 or not typed:
        return
    for name in tables[0].column_names:
        number_file: str | None = None
        text: tuple[str, str] | None = None
        for table, file in zip(tables, files, strict=True):
            kind, example = _kind(table.column(name))
            if kind == "number":
                number_file = number_file or file
            elif kind == "text" and text is None:
                text = (file, example)
            if number_file and text:
                raise type_conflict(str(name), number_file, text[0], text[1])


def _kind(column: pa.ChunkedArray) -> tuple[str | None, str]:
    """('number' | 'text' | None for all missing, an example of the text) under byoc.values."""
    column = values.plain_arrow(column)
    if pat.is_integer(column.type) or pat.is_floating(column.type):
        return ("number" if column.null_count < len(column) else None), ""
    if not pat.is_string(column.type):
        return None, ""
    numbers, bad = values.text_numbers(column)
    if bad is not None:
        return "text", str(column[bad].as_py())
    return ("number" if not np.isnan(numbers).all() else None), ""


def type_conflict(column: str, number_file: str, text_file: str, example: str) -> DataError:
    return DataError(
        f"column '{column}' holds numbers in {number_file} but text in {text_file} (e.g. "
        f"{example[:40]!r}); a column must hold the same kind of values in every file of a channel: "
        f"correct the values in {text_file} (leave a missing value's cell empty), or, if the "
        "column is categorical, write its values as text in every file (e.g. 'c1' rather than 1)",
        code="column_type_conflict",
    )


def unify_and_concat(tables: Sequence[pa.Table]) -> pa.Table:
    """Concatenate same-named tables whose inferred types differ per file: int+float ->
    float, anything else mixed -> text (numbers spelled as :func:`byoc.values.category` does)."""
    if len(tables) == 1:
        return tables[0]
    names = tables[0].column_names
    targets: dict[str, pa.DataType] = {}
    for name in names:
        kinds = {t.schema.field(name).type for t in tables} - {pa.null()}
        if len(kinds) <= 1:
            continue
        if all(pat.is_integer(k) or pat.is_floating(k) for k in kinds):
            targets[name] = pa.float64()
        else:
            targets[name] = pa.string()
    if targets:
        tables = [_cast_columns(t, targets) for t in tables]
    return pa.concat_tables(tables, promote_options="permissive")


def _cast_columns(table: pa.Table, targets: dict[str, pa.DataType]) -> pa.Table:
    for name, target in targets.items():
        i = table.column_names.index(name)
        column = table.column(i)
        if column.type == target:
            continue
        if target == pa.string():
            exact = exact_integer_column(column)  # ids past 2**53 beside a null: their digits
            categories = values.category_column(column.to_pandas() if exact is None else exact)
            spelled = categories.astype(object).where(categories.notna(), None).to_numpy()
            column = pa.array(spelled, type=pa.string(), from_pandas=True)
        else:
            column = column.cast(target)
        table = table.set_column(i, name, column)
    return table


def check_same_columns(
    channel: str, first_name: str, first: Sequence[str], name: str, columns: Sequence[str]
) -> None:
    if list(columns) == list(first):
        return
    missing = [c for c in first if c not in columns]
    extra = [c for c in columns if c not in first]
    detail = []
    if missing:
        detail.append(f"lacks {missing}")
    if extra:
        detail.append(f"has extra {extra}")
    if not detail:
        detail.append(f"orders them {list(columns)}")
    raise DataError(
        f"{name}: columns differ from {first_name} ({'; '.join(detail)}); every file of channel "
        f"'{channel}' must have the same columns in the same order",
        code="columns_differ",
    )


class DuplicateColumns(DataError):
    """:func:`check_unique`'s failure, carrying the file and the header row it read: a validation or
    test file lacking the header row the train channel's files start with (or the model was trained
    with) has its first data row taken for one, and a row such as ``1,0,0`` repeats a "name"; the
    caller, which knows the columns to expect, says the header row is missing instead."""

    def __init__(self, message: str, *, file: str, columns: Sequence[str]) -> None:
        super().__init__(message, code="duplicate_column")
        self.file = file
        self.columns = list(columns)


def check_unique(
    name: str,
    columns: Sequence[str],
    fix: str = "give every column a distinct name",
    *,
    header_row: bool = False,
) -> None:
    """A DataError naming every column name of file ``name`` that repeats (and how often), then
    ``fix``; a :class:`DuplicateColumns` when the names are a CSV ``header_row`` (maybe a data row)."""
    counts = Counter(columns)
    repeated = [column for column in counts if counts[column] > 1]  # in the file's order
    if not repeated:
        return
    if len(repeated) == 1:
        what = f"column name '{repeated[0]}' appears {counts[repeated[0]]} times"
    else:
        shown = [f"'{column}' ({counts[column]} times)" for column in repeated[:10]]
        more = f", and {len(repeated) - 10} more" if len(repeated) > 10 else ""
        what = f"column names {', '.join(shown)}{more} repeat"
    if header_row:
        raise DuplicateColumns(f"{name}: {what}; {fix}", file=name, columns=columns)
    raise DataError(f"{name}: {what}; {fix}", code="duplicate_column")


def target_readings(
    columns: Sequence[str], has_header: bool, target: int | str
) -> tuple[int | None, int | None]:
    """The two ways the ``target`` hyperparameter can name a column: (the header column named
    its text, the column at its 0-based index), each None when it names none.  Digits can be
    both (``byoc.training.resolve_target`` decides when they differ)."""
    text = str(target)
    named = list(columns).index(text) if has_header and text in columns else None
    index = int(text) if text.isascii() and text.isdigit() else None
    return named, index if index is not None and index < len(columns) else None


def label_position(columns: Sequence[str], has_header: bool, target: int | str) -> int | None:
    """The 0-based column the ``target`` hyperparameter names, or None when it names none: the
    name for text (a JSON string), the index for a number, when the two readings differ."""
    named, index = target_readings(columns, has_header, target)
    if named is not None and index is not None:
        return named if isinstance(target, str) else index
    return named if named is not None else index


def label_column(table: pa.Table, has_header: bool, label: int | str | None) -> int | None:
    """:func:`label_position` in ``table``; None without a ``label`` (the target hyperparameter)."""
    if label is None:
        return None
    return label_position([str(c) for c in table.column_names], has_header, label)


def to_frame(table: pa.Table, *, typed: bool = True, as_written: int | None = None) -> pd.DataFrame:
    """pyarrow -> pandas, each column typed by :func:`byoc.values.read_arrow` (text that is all
    numbers becomes float64, other text is spelled as categories); split blocks avoid one
    consolidating copy of every column.

    ``typed=False`` (validation and test channels) leaves text as written: the train channel's
    schema types those channels (:func:`byoc.preprocessing.coerce_features`), as it types a
    request, so a category written ``1.0`` stays ``1.0`` where a column of only such cells would
    have become the number 1, spelled ``1``: a category training never saw.

    ``as_written`` (the label column's position) is left as written in a typed channel too:
    training types the labels (``byoc.training._typed_label``), and class labels ``01`` and
    ``1`` must not both become the number 1 before it can see them (``byoc.problem``); integer
    labels past float precision beside a missing one stay Python ints
    (:func:`byoc.arrow_tables.exact_integer_column`), and so do an untyped channel's features: the
    categories the server spells them as."""
    columns = list(table.columns)
    read = [
        i for i in range(len(columns)) if typed and i != as_written
    ]  # together: one cast of their numbers
    typed_columns = dict(zip(read, values.read_arrow_columns([columns[i] for i in read]), strict=True))
    columns = [
        typed_columns[i] if i in typed_columns else values.plain_arrow(c) for i, c in enumerate(columns)
    ]
    table = pa.table(columns, names=[str(c) for c in table.column_names])
    frame = table.to_pandas(split_blocks=True)
    # the label's integers past float precision beside a null stay exact; in an untyped channel
    # every column's, as a request's are (byoc.arrow_tables): a categorical feature's too
    exact = range(len(columns)) if not typed else [] if as_written is None else [as_written]
    keep_exact_integers(table, frame, exact)
    del table
    return frame


def whole_decimals(table: pa.Table, label: int | str | None) -> pa.Table:
    """``table`` (a Parquet file's) with its ``label`` column of decimals as the numbers they hold.

    Whole decimals (``decimal128(20, 0)``, as Spark, Athena or Redshift write a NUMERIC id) are the
    integers they hold: int64 when every one fits, else their digits as text (kept as written, as a
    JSON integer past int64 is).  Decimals with a fraction (``decimal128(38, 20)``) are their digits as
    text, trailing zeros of the fraction dropped (``0.1``, ``5``), which the labels' rules read as CSV
    reads the same text (:func:`byoc.problem.keep_spellings`: the numbers, or the text when numbers
    would merge two labels).  Features take decimals as float64 by the same digits
    (:func:`byoc.values.decimal_numbers`); a label did too, so ids 9007199254740993 and
    9007199254740992 were one class, named in the log as a double the file held, and Arrow's cast,
    not correctly rounded at a large scale, made the class 0.1 of a ``decimal128(38, 20)`` column
    0.09999999999999999.  Any other label as it is."""
    at = label_column(table, True, label)
    if at is None or not pat.is_decimal(kind := table.schema.field(at).type):
        return table
    column = table.column(at)
    if kind.scale > 0:
        whole = _decimal_text(column)
    else:
        try:
            whole = column.cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # past int64
            whole = column.cast(pa.string())
    return table.set_column(at, pa.field(table.column_names[at], whole.type), whole)


def _decimal_text(column: pa.ChunkedArray) -> pa.Array:
    """Each decimal as its digits without the fraction's trailing zeros (``0.1``, ``5``): Arrow's
    text keeps every digit of the scale (``0.10000000000000000000``), and writes zero and small
    values with an exponent (``0E-20``, ``1.0000000000000E-7``), which are spelled here, by Python's
    decimal module, as positional digits (``0``, ``0.0000001``); the others stay in Arrow."""
    text = column.combine_chunks().cast(pa.string())
    text = pc.replace_substring_regex(pc.replace_substring_regex(text, r"(\.[0-9]*?)0+$", r"\1"), r"\.$", "")
    exponent = pc.fill_null(pc.match_substring(text, "E"), False)
    if not pc.any(exponent).as_py():
        return text
    written = pc.filter(text, exponent).to_pylist()
    return pc.replace_with_mask(
        text, exponent, pa.array([format(Decimal(t).normalize(), "f") for t in written])
    )
