"""Arrow tables as the pandas frames features are read from: the one rule for training's Parquet reader
(:mod:`byoc.data.parquet_reader`) and serving's Parquet decoder
(:mod:`byoc.serving.codecs.parquet`), so a file and a request body holding the same table give
the same rows.

- **pandas' saved index is no column.** ``DataFrame.to_parquet`` stores an index other than a
  RangeIndex (a frame after a boolean filter or ``concat``), unnamed, as a column
  ``__index_level_N__``: not a feature (:func:`without_saved_index`).
"""

from __future__ import annotations

import pyarrow as pa

SAVED_INDEX = "__index_level_"
"""How the names of the columns ``DataFrame.to_parquet`` stores an unnamed index in start."""


def without_saved_index(table: pa.Table) -> pa.Table:
    """``table`` without the columns a pandas index was saved in (see the module rules)."""
    index_columns = [c for c in table.column_names if str(c).startswith(SAVED_INDEX)]
    return table.drop_columns(index_columns) if index_columns else table
