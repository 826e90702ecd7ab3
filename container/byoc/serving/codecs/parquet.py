"""application/x-parquet: a table whose column names are the model's features (any order)."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from byoc import values
from byoc.errors import DataError
from byoc.serving.codecs.base import Decoder
from byoc.serving.schema import Batch, RequestSchema

MEDIA_TYPE = "application/x-parquet"


def decode(body: bytes, schema: RequestSchema, start_row: int = 0) -> Batch:
    try:
        table = pq.read_table(io.BytesIO(body))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DataError(
            f"the body is not a Parquet file ({exc}); send the bytes DataFrame.to_parquet writes",
            code="undecodable_body",
        ) from None
    if table.num_rows == 0:
        raise DataError("the Parquet table holds no rows", code="empty_body")
    try:  # dates, decimals, booleans and dictionaries as training reads them
        columns = [
            values.plain_arrow(column, schema.time_unit(str(name)))
            for name, column in zip(table.column_names, table.columns, strict=True)
        ]
        table = pa.table(columns, names=table.column_names)
        frame = table.to_pandas()
    except (pa.ArrowException, ValueError, TypeError) as exc:
        raise DataError(
            f"the Parquet table cannot be converted ({exc}); use plain numeric and text columns",
            code="undecodable_body",
        ) from None
    if isinstance(frame.columns, pd.MultiIndex) or not all(isinstance(c, str) for c in frame.columns):
        raise DataError(
            "the Parquet table's column names must be the feature names as text", code="bad_shape"
        )
    return schema.from_frame(frame.reset_index(drop=True), positional=False, start_row=start_row)


DECODER = Decoder(MEDIA_TYPE, decode, aliases=("application/parquet", "application/vnd.apache.parquet"))
