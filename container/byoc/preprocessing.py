"""From a raw training frame to model inputs: the feature schema and the column transformer.

The schema (:func:`feature_schema`) is what ``model.json`` records and what every later frame
(validation, test, requests) is checked and coerced against (:func:`coerce_features`).  The
transformer (:func:`build_preprocessor`) is the first step of the saved pipeline, so the
server accepts raw rows: numeric columns are imputed with the median (and scaled for models
that need it), text columns are encoded; categories unseen in training and missing values
never crash at prediction time.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from byoc.artifact import Feature
from byoc.errors import SchemaError

NUMERIC = "numeric"
CATEGORICAL = "categorical"
# model.json lists the categories seen in training up to this many per column (an ID-like
# column would otherwise bloat it); the encoder itself keeps its own, complete list.
MAX_LISTED_CATEGORIES = 1000
# One-hot encoding groups rarer categories beyond this many into one "infrequent" column.
MAX_ONEHOT_CATEGORIES = 100
# Ordinal encoding for tree models; HistGradientBoosting's native categorical support needs
# fewer categories than its 255 bins.
MAX_ORDINAL_CATEGORIES = 250
UNKNOWN_CODE = -1  # ordinal code of a category not seen in training
MISSING_CODE = -2  # ordinal code of a missing value (HistGradientBoosting: negative = missing)

_BOOL_TEXT = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0, "t": 1.0, "f": 0.0,
              "1": 1.0, "0": 0.0, "1.0": 1.0, "0.0": 0.0}


# -- schema ------------------------------------------------------------------------------------
def _is_bool_series(s: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(s.dtype):
        return True
    if s.dtype == object:
        values = s.dropna()
        return len(values) > 0 and all(isinstance(v, (bool, np.bool_)) for v in values)
    return False


def _numeric_object(s: pd.Series) -> bool:
    """An object column that only holds numbers (JSON Lines with ints and nulls)."""
    if s.dtype != object:
        return False
    kind = pd.api.types.infer_dtype(s, skipna=True)
    return kind in ("integer", "floating", "mixed-integer-float", "decimal")


def feature_schema(X: pd.DataFrame) -> list[Feature]:
    """Numeric versus categorical per column, with the categories seen in training."""
    features: list[Feature] = []
    for name in X.columns:
        s = X[name]
        if _is_bool_series(s):
            features.append(Feature(str(name), NUMERIC, "bool"))
        elif pd.api.types.is_numeric_dtype(s.dtype) or _numeric_object(s):
            features.append(Feature(str(name), NUMERIC, str(s.dtype)))
        else:
            text = pd.Series(as_text(s)).dropna()
            categories = sorted(pd.unique(text).tolist())
            if len(categories) > MAX_LISTED_CATEGORIES:
                categories = categories[:MAX_LISTED_CATEGORIES]
            features.append(Feature(str(name), CATEGORICAL, str(s.dtype), tuple(categories)))
    return features


# -- values ------------------------------------------------------------------------------------
def as_text(s: pd.Series) -> np.ndarray:
    """A categorical column as an object array of str, missing values as NaN.

    Integral floats lose their ``.0`` so that a category ``1`` matches whether a reader
    produced the int 1, the float 1.0 or the text "1".
    """
    s = pd.Series(s)
    missing = s.isna().to_numpy()
    if pd.api.types.is_string_dtype(s.dtype) and pd.api.types.infer_dtype(s, skipna=True) in (
            "string", "empty"):
        out = s.to_numpy(dtype=object, na_value=np.nan)
    elif pd.api.types.is_float_dtype(s.dtype):
        values = s.to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            integral = np.isfinite(values) & (np.abs(values) < 2**53) & (np.mod(values, 1) == 0)
        out = values.astype(str).astype(object)
        if integral.any():
            out[integral] = values[integral].astype(np.int64).astype(str)
    elif pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
        out = s.astype(str).to_numpy(dtype=object)
    else:
        out = np.array([_scalar_text(v) for v in s.to_numpy(dtype=object)], dtype=object)
    out = np.array(out, dtype=object)  # a copy: pandas may hand out read-only views
    out[missing] = np.nan
    return out


def _scalar_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (np.floating,)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _categorical_as_text(X: Any) -> np.ndarray:
    """Pipeline step: every categorical column as text (pickled by reference: module level)."""
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    if frame.shape[1] == 0:
        return np.empty((len(frame), 0), dtype=object)
    return np.column_stack([as_text(frame.iloc[:, i]) for i in range(frame.shape[1])])


def coerce_features(X: pd.DataFrame, features: Sequence[Feature], *, where: str) -> pd.DataFrame:
    """Columns in training order, numeric as float64, categorical as object.

    Raises SchemaError naming ``where``, the column and the first bad row for a missing
    column, an extra column, or text in a numeric column.
    """
    expected = [f.name for f in features]
    given = [str(c) for c in X.columns]
    if len(set(given)) != len(given):
        dupes = sorted({c for c in given if given.count(c) > 1})
        raise SchemaError(f"{where}: column '{dupes[0]}' appears more than once; "
                          "give every column a distinct name")
    missing = [c for c in expected if c not in given]
    extra = [c for c in given if c not in expected]
    if missing or extra:
        if len(given) == len(expected) and all(c.isdigit() or c.startswith("f") for c in given):
            hint = " (the data has no header row while training had one, or the reverse: " \
                   "set the header hyperparameter)"
        else:
            hint = ""
        parts = []
        if missing:
            parts.append(f"column '{missing[0]}' is missing"
                         + (f" (and {len(missing) - 1} more: {', '.join(missing[1:6])})"
                            if len(missing) > 1 else ""))
        if extra:
            parts.append(f"column '{extra[0]}' was not in the training data"
                         + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""))
        raise SchemaError(
            f"{where}: {'; '.join(parts)}; the model expects {len(expected)} columns "
            f"[{', '.join(expected[:20])}{', ...' if len(expected) > 20 else ''}]{hint}")
    frame = X.copy()
    frame.columns = given
    out: dict[str, Any] = {}
    for feature in features:
        s = frame[feature.name]
        if feature.kind == NUMERIC:
            out[feature.name] = _numeric(s, feature, where)
        else:
            out[feature.name] = pd.Series(as_text(s), index=s.index, dtype=object)
    return pd.DataFrame(out, index=X.index)


def _numeric(s: pd.Series, feature: Feature, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64")
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64")
    values = s.to_numpy(dtype=object)
    if feature.dtype == "bool":
        mapped = [(_BOOL_TEXT.get(str(v).strip().lower()) if isinstance(v, str) else v)
                  for v in values]
        values = np.array([float(v) if isinstance(v, (bool, np.bool_)) else v for v in mapped],
                          dtype=object)
    converted = pd.to_numeric(pd.Series(values, index=s.index), errors="coerce")
    blank = pd.Series([isinstance(v, str) and not v.strip() for v in values], index=s.index)
    bad = converted.isna() & s.notna() & ~blank
    if bad.any():
        position = int(np.flatnonzero(bad.to_numpy())[0])
        raise SchemaError(
            f"{where}: column '{feature.name}' row {position + 1} holds {values[position]!r}, "
            f"but the column is numeric in the training data; send a number or leave it "
            f"empty for missing", code="bad_value")
    return converted.astype("float64")


# -- transformer -------------------------------------------------------------------------------
def build_preprocessor(features: Sequence[Feature], *, scale: bool, categorical: str = "onehot",
                       impute: bool = True,
                       max_categories: int | None = None) -> ColumnTransformer:
    """Impute numeric columns (median, plus missing-value indicators), encode categorical ones.

    ``categorical`` is ``onehot`` (linear and distance-based models) or ``ordinal`` (trees;
    unseen categories -> -1, missing -> -2).  Categorical outputs come first, so tree models
    that understand categories natively can be told their positions
    (:func:`categorical_positions`).  ``impute=False`` passes numeric NaN through for models
    that handle missing values themselves.  ``max_categories`` caps the ordinal codes per
    column (rarer categories share one code).
    """
    if categorical not in ("onehot", "ordinal"):
        raise ValueError(f"categorical={categorical!r}")
    numeric = [f.name for f in features if f.kind == NUMERIC]
    text = [f.name for f in features if f.kind == CATEGORICAL]
    transformers: list[tuple[str, Any, list[str]]] = []
    if text:
        if categorical == "onehot":
            encoder: Any = OneHotEncoder(handle_unknown="infrequent_if_exist",
                                         max_categories=MAX_ONEHOT_CATEGORIES)
        else:
            encoder = OrdinalEncoder(handle_unknown="use_encoded_value",
                                     unknown_value=UNKNOWN_CODE,
                                     encoded_missing_value=MISSING_CODE,
                                     max_categories=max_categories or MAX_ORDINAL_CATEGORIES)
        steps: list[tuple[str, Any]] = [
            ("text", FunctionTransformer(_categorical_as_text, feature_names_out="one-to-one")),
            ("encode", encoder)]
        if scale and categorical == "ordinal":
            steps.append(("scale", StandardScaler()))
        transformers.append(("categorical", Pipeline(steps), text))
    if numeric:
        num_steps: list[tuple[str, Any]] = []
        if impute:
            num_steps.append(("impute", SimpleImputer(strategy="median", add_indicator=True,
                                                      keep_empty_features=True)))
        if scale:
            num_steps.append(("scale", StandardScaler()))
        if not num_steps:
            num_steps.append(("keep", "passthrough"))
        transformers.append(("numeric", Pipeline(num_steps), numeric))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.3,
                             verbose_feature_names_out=False)


def categorical_positions(features: Sequence[Feature]) -> list[int]:
    """Output positions of the categorical columns (they come first)."""
    return list(range(sum(1 for f in features if f.kind == CATEGORICAL)))


def output_owners(preprocessor: ColumnTransformer) -> list[str]:
    """For each output column of a fitted preprocessor, the input feature it came from.

    Lets importances of one-hot columns and missing-value indicators be summed back onto
    the original feature names.
    """
    owners: list[str] = []
    for name, transformer, columns in preprocessor.transformers_:
        if name == "remainder" or transformer == "drop":
            continue
        columns = [str(c) for c in columns]
        steps = dict(transformer.steps) if isinstance(transformer, Pipeline) else {}
        if name == "categorical":
            encoder = steps["encode"]
            if isinstance(encoder, OneHotEncoder):
                infrequent = getattr(encoder, "infrequent_categories_", None) or [None] * len(
                    columns)
                for col, cats, rare in zip(columns, encoder.categories_, infrequent):
                    n_rare = 0 if rare is None else len(rare)
                    owners.extend([col] * (len(cats) - n_rare + (1 if n_rare else 0)))
            else:
                owners.extend(columns)
        else:
            owners.extend(columns)
            imputer = steps.get("impute")
            indicator = getattr(imputer, "indicator_", None)
            if indicator is not None:
                owners.extend(columns[i] for i in indicator.features_)
    return owners
