"""Arrow tables read alike by training's readers and serving's Parquet decoder (byoc.arrow_tables).

Two paths that must agree on the same values: a Parquet request body and the schema's reading of
the values a JSON request sends (``RequestSchema.from_rows``, the one place the value rules live),
and the file training reads.  pandas' saved index (``__index_level_0__``) was a 400 from the endpoint
for a file training reads.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import support
from byoc.artifact import Feature
from byoc.data import read_channel
from byoc.environment import MLPaths, TrainingEnvironment
from byoc.serving.codecs import parquet as parquet_codec
from byoc.serving.schema import Batch, RequestSchema

FEATURES = [
    Feature("id", "categorical", "str", ("1", "a")),
    Feature("n", "numeric", "float64"),
]
SCHEMA = RequestSchema(FEATURES)
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _missing(value: object) -> object:
    return None if value is None or value != value else value


def cells(batch: Batch) -> list[list[object]]:
    """The batch's columns as lists, a missing value (NaN) as None."""
    return [[_missing(v) for v in np.asarray(column, dtype=object).tolist()] for column in batch.columns]


def parquet_body(ids: list[int | None], dtype: str, *, saved_index: bool) -> bytes:
    frame = pd.DataFrame({"id": pd.array(ids, dtype=dtype), "n": pd.array(ids, dtype=dtype)})
    if saved_index:  # a frame after a boolean filter: to_parquet stores its index as a column
        frame.index = list(range(len(ids), 0, -1))
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


@PROPERTY
@given(st.lists(st.one_of(st.none(), st.integers(-(2**31), 2**31)), min_size=1, max_size=12))
def test_a_parquet_request_drops_a_saved_pandas_index_as_training_does(ids):
    body = parquet_body(ids, "Int64", saved_index=True)
    with tempfile.TemporaryDirectory() as folder:  # the train channel's reader, on the same file
        root = support.make_ml_root(
            Path(folder),
            channels={"train": {"a.parquet": body}},
            content_types={"train": "application/x-parquet"},
        )
        env = TrainingEnvironment.from_files(MLPaths(root), environ={})
        trained = [str(c) for c in read_channel(env, "train").frame.columns]
    assert trained == ["id", "n"]
    assert cells(parquet_codec.decode(body, SCHEMA)) == cells(SCHEMA.from_rows([[v, v] for v in ids]))
