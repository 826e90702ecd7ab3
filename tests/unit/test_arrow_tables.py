"""Arrow tables read alike by training's readers and serving's Parquet decoder (byoc.arrow_tables).

Two paths that must agree on the same values: a Parquet request body (or a validation/test file,
Parquet or JSON Lines, as evaluate reads its test data) and the schema's reading of the values a
JSON request sends (``RequestSchema.from_rows``, the one place the value rules live).  pandas'
saved index (``__index_level_0__``) was a 400 from the endpoint for a file training reads; pyarrow
makes an integer column holding a null float64, which spelled the category 9007199254740993 as
``9007199254740992.0`` in such a body and file.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import support
from byoc import preprocessing
from byoc.artifact import Feature
from byoc.data import read_channel
from byoc.environment import MLPaths, TrainingEnvironment
from byoc.serving.codecs import parquet as parquet_codec
from byoc.serving.schema import Batch, RequestSchema

FEATURES = [
    Feature("id", "categorical", "str", ("9007199254740993", "a")),
    Feature("n", "numeric", "float64"),
]
SCHEMA = RequestSchema(FEATURES)
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ids past float precision (2**53) and up to uint64's end, beside missing ones
NEAR_2_53 = st.integers(2**53 - 4, 2**53 + 4).flatmap(lambda x: st.sampled_from([x, -x]))
INT64_IDS = st.lists(
    st.one_of(st.none(), NEAR_2_53, st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=12
)
UINT64_IDS = st.lists(
    st.one_of(st.none(), NEAR_2_53.map(abs), st.integers(0, 2**64 - 1)), min_size=1, max_size=12
)
IDS = st.one_of(INT64_IDS.map(lambda ids: (ids, "Int64")), UINT64_IDS.map(lambda ids: (ids, "UInt64")))


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
@given(IDS)
@example(([9007199254740993, None], "Int64"))
@example(([2**64 - 1, None], "UInt64"))
def test_a_parquet_request_reads_integers_beside_a_null_as_json_rows_are_read(case):
    ids, dtype = case
    body = parquet_body(ids, dtype, saved_index=False)
    assert cells(parquet_codec.decode(body, SCHEMA)) == cells(SCHEMA.from_rows([[v, v] for v in ids]))


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


def test_a_saved_pandas_index_of_two_levels_is_dropped_whole():
    """An unnamed MultiIndex (``pd.concat(frames, keys=...)``, a two-key ``groupby``) is stored as
    ``__index_level_0__`` and ``__index_level_1__``: neither is a feature, in training's reader and in
    a Parquet request alike (the second level trained as a feature no request names)."""
    ids = [3, None, 5]
    frame = pd.DataFrame({"id": pd.array(ids, dtype="Int64"), "n": pd.array(ids, dtype="Int64")})
    frame.index = pd.MultiIndex.from_arrays([["a", "a", "b"], [0, 1, 0]])
    buf = io.BytesIO()
    frame.to_parquet(buf)
    body = buf.getvalue()
    with tempfile.TemporaryDirectory() as folder:
        root = support.make_ml_root(
            Path(folder),
            channels={"train": {"a.parquet": body}},
            content_types={"train": "application/x-parquet"},
        )
        env = TrainingEnvironment.from_files(MLPaths(root), environ={})
        assert [str(c) for c in read_channel(env, "train").frame.columns] == ["id", "n"]
    assert cells(parquet_codec.decode(body, SCHEMA)) == cells(SCHEMA.from_rows([[v, v] for v in ids]))


def _untyped_channel(files: dict[str, bytes | str], content_type: str) -> list[list[object]]:
    """The rows a validation channel (evaluate's test data too) gives the model: read untyped,
    then typed by the train channel's features."""
    with tempfile.TemporaryDirectory() as folder:
        root = support.make_ml_root(
            Path(folder), channels={"validation": files}, content_types={"validation": content_type}
        )
        env = TrainingEnvironment.from_files(MLPaths(root), environ={})
        frame = read_channel(env, "validation", typed=False).frame
        coerced = preprocessing.coerce_features(frame, FEATURES, where="validation")
    return [[_missing(v) for v in coerced[f.name].to_numpy(dtype=object).tolist()] for f in FEATURES]


@PROPERTY
@given(IDS, st.booleans())
@example(([9007199254740993, None], "Int64"), True)
@example(([9007199254740993, None], "Int64"), False)
def test_an_untyped_channel_reads_integers_as_the_endpoint_does(case, jsonlines):
    ids, dtype = case
    if jsonlines:
        text = "".join(json.dumps({"id": v, "n": v}) + "\n" for v in ids)
        read = _untyped_channel({"v.jsonl": text}, "application/jsonlines")
    else:
        read = _untyped_channel(
            {"v.parquet": parquet_body(ids, dtype, saved_index=True)}, "application/x-parquet"
        )
    assert read == cells(SCHEMA.from_rows([[v, v] for v in ids]))
