"""application/json: every request shape users bring from other serving stacks.

Accepted bodies (values are numbers, text, booleans or null):

- ``{"instances": [[...], ...]}`` or ``{"instances": [{"col": v, ...}, ...]}`` (SageMaker, TF Serving)
- ``{"inputs": ...}`` with rows, records, or columns ``{"col": [v, ...]}`` (TF Serving, MLflow)
- ``{"dataframe_split": {"columns": [...], "data": [[...]]}}`` and
  ``{"dataframe_records": [...]}`` (MLflow)
- a bare list of rows or records, a single row (a flat list of values) or a single record
- the built-in algorithms' ``{"instances": [{"features": [...]}]}``

Responses: ``{"predictions": [{"predicted_label": ..., ...}, ...]}`` (see byoc.serving.output).
"""

from __future__ import annotations

import json as _json
from typing import Any

from byoc.errors import DataError, SchemaError
from byoc.serving.codecs.base import Decoder, Encoder
from byoc.serving.output import Prediction
from byoc.serving.schema import Batch, RequestSchema

MEDIA_TYPE = "application/json"
_WRAPPERS = ("instances", "inputs", "dataframe_records")
_SCALARS = (str, int, float, bool, type(None))


def loads(body: bytes | str, *, what: str = "the JSON body") -> Any:
    try:
        return _json.loads(body)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{what} is not UTF-8 (byte {exc.start}: {exc.reason}); send UTF-8 JSON", code="undecodable_body"
        ) from None
    except _json.JSONDecodeError as exc:
        position = f" (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        raise DataError(f"{what} is not valid JSON{position}", code="undecodable_body") from None
    except ValueError:  # e.g. a number beyond Python's integer digit limit
        raise DataError(f"{what} is not valid JSON", code="undecodable_body") from None
    except RecursionError:
        raise DataError(
            f"{what} nests too deeply; send rows or records of plain values", code="undecodable_body"
        ) from None


def _unwrap_features(record: Any, schema: RequestSchema) -> Any:
    """The built-in algorithms' record ``{"features": [...]}`` is a positional row."""
    if (
        type(record) is dict
        and len(record) == 1
        and "features" in record
        and "features" not in schema.index
        and isinstance(record["features"], list)
    ):
        return record["features"]
    return record


def batch_from_items(items: list, schema: RequestSchema, start_row: int = 0) -> Batch:
    """A list of rows, or of records, or one flat row of scalars."""
    if not items:
        raise DataError(
            "the request holds no rows; send at least one row of feature values", code="empty_body"
        )
    first = _unwrap_features(items[0], schema)
    if isinstance(first, _SCALARS):
        if all(isinstance(v, _SCALARS) for v in items):
            return schema.from_rows([items], start_row=start_row)
        raise SchemaError(
            "the list mixes plain values with rows or records; send a list of rows "
            "(lists) or of records (objects)",
            code="bad_row",
        )
    if type(first) is dict:
        return schema.from_records([_unwrap_features(r, schema) for r in items], start_row=start_row)
    return schema.from_rows([_unwrap_features(r, schema) for r in items], start_row=start_row)


def batch_from_document(document: Any, schema: RequestSchema) -> Batch:
    if isinstance(document, list):
        return batch_from_items(document, schema)
    if not isinstance(document, dict):
        raise SchemaError(
            f"the JSON body is a {type(document).__name__}; send an object such as "
            '{"instances": [[...]]} or a list of rows',
            code="bad_shape",
        )
    if "dataframe_split" in document:
        split = document["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise SchemaError(
                '"dataframe_split" must be {"columns": [...], "data": [[...], ...]}', code="bad_shape"
            )
        columns = split.get("columns")
        if columns is None:
            return batch_from_items(split["data"], schema)
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise SchemaError('"dataframe_split"."columns" must be a list of column names', code="bad_shape")
        schema.check_names(columns, where='"dataframe_split"')
        rows = split["data"]
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, list) or len(row) != len(columns):
                raise SchemaError(
                    f'"dataframe_split" row {number} must be a list of {len(columns)} values',
                    code="wrong_column_count",
                )
        return schema.from_records([dict(zip(columns, row, strict=True)) for row in rows])
    for key in _WRAPPERS:
        if key in document:
            if len(document) > 1:
                others = sorted(k for k in document if k != key)
                raise SchemaError(
                    f'"{key}" cannot be combined with {others}; send one of them', code="bad_shape"
                )
            inner = document[key]
            if isinstance(inner, list):
                return batch_from_items(inner, schema)
            if key == "inputs" and isinstance(inner, dict):
                if inner and all(isinstance(v, list) for v in inner.values()):
                    return schema.from_columns(inner)
                return schema.from_records([inner])
            raise SchemaError(
                f'"{key}" must hold a list of rows or records, got a {type(inner).__name__}', code="bad_shape"
            )
    return schema.from_records([document])  # a single record


def decode(body: bytes, schema: RequestSchema, start_row: int = 0) -> Batch:
    return batch_from_document(loads(body), schema)


def encode(prediction: Prediction) -> bytes:
    return _json.dumps({"predictions": prediction.records()}, separators=(",", ":")).encode("utf-8")


DECODER = Decoder(MEDIA_TYPE, decode, aliases=("text/json",), text=True)
ENCODER = Encoder(MEDIA_TYPE, encode)
