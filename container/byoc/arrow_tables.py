"""Arrow tables as the pandas frames features are read from: the one rule for training's readers
(:func:`byoc.data.tabular.to_frame`, Parquet files) and serving's Parquet decoder
(:mod:`byoc.serving.codecs.parquet`), so a file and a request body holding the same table give
the same rows.

- **pandas' saved index is no column.** ``DataFrame.to_parquet`` stores an index other than a
  RangeIndex (a frame after a boolean filter or ``concat``), unnamed, as a column
  ``__index_level_N__``: not a feature (:func:`without_saved_index`).
- **Integers past float precision beside a null stay integers.** pyarrow makes an integer column
  holding a null float64, where 9007199254740993 is 2**53; :func:`exact_integer_column` keeps such a
  column as Python ints and None, so a categorical feature spells the integer's digits
  (``9007199254740993``), as a column without a null and a JSON integer do, never the float's
  ``9007199254740992.0`` (:func:`byoc.values.category`), and a numeric feature gets the same float.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

SAVED_INDEX = "__index_level_"
"""How the names of the columns ``DataFrame.to_parquet`` stores an unnamed index in start."""


def without_saved_index(table: pa.Table) -> pa.Table:
    """``table`` without the columns a pandas index was saved in (see the module rules)."""
    index_columns = [c for c in table.column_names if str(c).startswith(SAVED_INDEX)]
    return table.drop_columns(index_columns) if index_columns else table


def exact_integer_column(column: pa.ChunkedArray | pa.Array) -> pd.Series | None:
    """An integer ``column`` (JSON numbers, Parquet int64) holding a null and an integer past float
    precision as Python ints and None: pandas makes an integer column with a null float64, where
    ids 2**53 and 2**53 + 1 are both 2**53 (one class, one category spelled ``9007199254740992.0``).
    None for any other column, which pandas' own conversion keeps exact (or which holds no
    integers to keep)."""
    from byoc.problem import FLOAT_EXACT

    if not pat.is_integer(column.type) or not column.null_count or column.null_count == len(column):
        return None
    bounds = pc.min_max(column)
    if max(abs(bounds["min"].as_py()), abs(bounds["max"].as_py())) < FLOAT_EXACT:
        return None
    return pd.Series(column.to_pylist(), dtype=object)


def keep_exact_integers(table: pa.Table, frame: pd.DataFrame, positions: Iterable[int]) -> pd.DataFrame:
    """``frame`` (``table.to_pandas()``) with the columns at ``positions`` that
    :func:`exact_integer_column` keeps replaced by their exact integers (in place; returned)."""
    for position in positions:
        if (exact := exact_integer_column(table.column(position))) is not None:
            frame.isetitem(position, exact.to_numpy())
    return frame
