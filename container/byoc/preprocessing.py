"""From a raw training frame to model inputs: the feature schema and the column transformer.

The schema (:func:`feature_schema`) is what ``model.json`` records and what every later frame
(validation, test, requests) is checked and coerced against (:func:`coerce_features`).  The
transformer (:func:`build_preprocessor`) is the first step of the saved pipeline, so the
server accepts raw rows: numeric columns are imputed with the median (and scaled for models
that need it), text columns are encoded; categories unseen in training and missing values
never crash at prediction time.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from byoc import values
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
# CodeOneHot looks codes up in a table while every category is an integral code up to this.
MAX_TABLE_CODE = 4096


# -- schema ------------------------------------------------------------------------------------
def _numeric_object(s: pd.Series) -> bool:
    """An object column that only holds numbers (JSON Lines with ints and nulls)."""
    if s.dtype != object:
        return False
    kind = pd.api.types.infer_dtype(s, skipna=True)
    return kind in ("integer", "floating", "mixed-integer-float", "decimal")


def feature_schema(X: pd.DataFrame) -> list[Feature]:
    """Numeric versus categorical per column, with the categories seen in training.

    Booleans are categories (``true``/``false``, :mod:`byoc.values`), not numbers.
    """
    features: list[Feature] = []
    for name, dtype in zip(X.columns, X.dtypes, strict=True):
        if values.numpy_number(dtype):  # without a Series: a typed channel's numbers, as a rule
            features.append(Feature(str(name), NUMERIC, str(dtype)))
            continue
        s = X[name]
        if not pd.api.types.is_bool_dtype(s.dtype) and (
            pd.api.types.is_numeric_dtype(s.dtype) or _numeric_object(s)
        ):
            features.append(Feature(str(name), NUMERIC, str(s.dtype)))
        else:
            categories = _distinct_text(s)
            if len(categories) > MAX_LISTED_CATEGORIES:
                categories = categories[:MAX_LISTED_CATEGORIES]
            features.append(Feature(str(name), CATEGORICAL, str(s.dtype), tuple(categories)))
    return features


def _distinct_text(s: pd.Series) -> list[str]:
    """Sorted distinct categories of a column, spelled by :func:`byoc.values.category`."""
    return sorted(values.category_column(s).dropna().unique().tolist())


def as_text(s: Any) -> np.ndarray:
    """A categorical column as an object array of str, missing values as NaN
    (:func:`byoc.values.category_column`)."""
    return values.category_column(pd.Series(s) if not isinstance(s, pd.Series) else s).to_numpy(
        dtype=object, na_value=np.nan
    )


def _columns(X: Any) -> list[pd.Series]:
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X, dtype=object))
    return [frame.iloc[:, i] for i in range(frame.shape[1])]


class _OneToOne(TransformerMixin, BaseEstimator):
    """One output column per input column, named after it."""

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        if input_features is None:
            input_features = getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)])
        return np.asarray(input_features, dtype=object)


def _arrow_codes(index: pd.Index, codes: np.ndarray, column: Any) -> np.ndarray | None:
    """The codes of an Arrow-backed text column or array (a request's CSV columns), looked up in Arrow:
    None for any other column, or when a category is not text (not made by fit).

    One ``index_in`` pass gives the code of every cell, missing ones included (a null in the
    value set matches the column's nulls): pandas' get_indexer made a Python string of every
    cell first (440,000 cells: 60 ms against 4 ms), and a separate ``isna`` cost a quarter of
    the lookup again.  Both compare the UTF-8 text exactly."""
    if getattr(column.dtype, "storage", None) != "pyarrow":
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pa.array(column.array if isinstance(column, pd.Series) else column)
    try:
        value_set = pa.array([*index.tolist(), None], type=text.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    found = pc.index_in(text, value_set=value_set, skip_nulls=False)
    # positions: the categories', then len(index) for missing; -1 (not found) is codes' last, unknown
    table = np.concatenate((codes[:-1], [float(MISSING_CODE)], codes[-1:]))
    return table[found.fill_null(-1).to_numpy()]


FEW_CODED_ROWS = 256
"""Up to this many rows, :meth:`CategoryCoder.transform_columns` looks codes up cell by cell."""


class CategoryCoder(_OneToOne):
    """Text categories -> integer codes; unknown -> -1, missing -> -2; never raises on new values.

    Codes follow the sorted categories seen in training.  With ``max_categories``, the most
    frequent ``max_categories - 1`` keep their own code and the rest share the last one.
    Counting and lookup use pandas hashing: scikit-learn's OrdinalEncoder counts object
    columns element by element in Python, 20x slower on a million rows.
    """

    def __init__(self, max_categories: int | None = None) -> None:
        self.max_categories = max_categories

    def fit(self, X: Any, y: Any = None) -> CategoryCoder:
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        columns = _columns(X)
        self.n_features_in_ = len(columns)
        self.categories_: list[np.ndarray] = []
        self.infrequent_categories_: list[np.ndarray] = []
        self._lookup: list[tuple[pd.Index, np.ndarray]] = []
        for column in columns:
            text = (
                column
                if isinstance(column.dtype, pd.StringDtype)
                else pd.Series(as_text(column), dtype=object)
            )
            counts = text.value_counts(dropna=True)
            seen: list[str] = sorted(counts.index.tolist())
            limit = self.max_categories
            if limit is not None and len(seen) > limit:
                pairs = [(str(k), int(n)) for k, n in counts.items()]
                ranked = sorted(pairs, key=lambda kv: (-kv[1], kv[0]))
                kept = sorted(k for k, _ in ranked[: limit - 1])
                rare = sorted(k for k, _ in ranked[limit - 1 :])
            else:
                kept, rare = seen, []
            # get_indexer answers -1 for an unknown value: the trailing entry maps it.
            codes = np.concatenate([np.arange(len(kept)), np.full(len(rare), len(kept)), [UNKNOWN_CODE]])
            self.categories_.append(np.asarray(kept, dtype=object))
            self.infrequent_categories_.append(np.asarray(rare, dtype=object))
            self._lookup.append((pd.Index(kept + rare, dtype=object), codes.astype(np.float64)))
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "categories_")
        columns = _columns(X)
        if len(columns) != self.n_features_in_:
            raise ValueError(f"expected {self.n_features_in_} categorical columns, got {len(columns)}")
        return self._code_columns(columns)

    def _code_columns(self, columns: Sequence[Any]) -> np.ndarray:
        """The codes of ``columns`` (Series or arrays, one per fitted column) as a float matrix."""
        out = np.empty((len(columns[0]) if columns else 0, len(columns)), dtype=np.float64)
        for i, (column, (index, codes)) in enumerate(zip(columns, self._lookup, strict=True)):
            coded = _arrow_codes(index, codes, column)
            if coded is not None:
                out[:, i] = coded
                continue
            if isinstance(column.dtype, pd.StringDtype):
                position = index.get_indexer(pd.Index(column))
                missing = np.asarray(pd.isna(column))
            else:
                text = as_text(column)
                position = index.get_indexer(pd.Index(text))
                missing = pd.isna(text)
            coded = codes[position]
            coded[missing] = MISSING_CODE
            out[:, i] = coded
        return out

    def code_tables(self) -> list[dict[str, float]]:
        """Per column, category -> code as a dict, for coding a few rows without pandas.

        The codes are those :meth:`transform` gives (infrequent categories share theirs);
        a value that is not a key is unknown (``UNKNOWN_CODE``), a missing one ``MISSING_CODE``.
        Built from the fitted lookup on demand, so older pickles need no new attribute.
        """
        check_is_fitted(self, "categories_")
        return [dict(zip(index.tolist(), codes[:-1].tolist(), strict=True)) for index, codes in self._lookup]

    def transform_columns(self, columns: Sequence[Any]) -> np.ndarray:
        """:meth:`transform` for rows given as one array per column (a request's Batch): for a
        few rows, dict lookups instead of pandas indexing; for more, :meth:`transform`'s own
        column coding.  The same codes either way."""
        if len(columns) != len(self._lookup):
            raise ValueError(f"expected {len(self._lookup)} categorical columns, got {len(columns)}")
        if columns and len(columns[0]) > FEW_CODED_ROWS:
            return self._code_columns(columns)
        tables = self.__dict__.get("_tables")
        if tables is None:
            tables = self._tables = self.code_tables()
        unknown, missing, category = float(UNKNOWN_CODE), float(MISSING_CODE), values.category
        rows = len(columns[0]) if columns else 0
        codes = [  # column after column, as one list: a numpy item assignment per cell cost more
            table.get(text, unknown)
            if type(text := cell if type(cell) is str else category(cell)) is str
            else missing
            for column, table in zip(columns, tables, strict=True)
            for cell in column.tolist()
        ]
        if rows == 1:  # one request row: the list is the row already
            return np.array([codes], dtype=np.float64)
        return np.array(codes, dtype=np.float64).reshape(len(columns), rows).T.copy()


class EmptyColumnFiller(_OneToOne):
    """Passes numeric columns through, NaN included, except columns with no value in training.

    For models that handle missing values natively (HistGradientBoosting), which cannot bin
    a column that is missing in every training row: such a column becomes constant 0.
    """

    def fit(self, X: Any, y: Any = None) -> EmptyColumnFiller:
        values = np.asarray(X, dtype=np.float64)
        if isinstance(X, pd.DataFrame):
            self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        self.n_features_in_ = values.shape[1]
        self.empty_ = np.isnan(values).all(axis=0) if len(values) else np.ones(values.shape[1], bool)
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "empty_")
        return self.transform_matrix(_float_rows(X))

    def transform_matrix(self, values: np.ndarray) -> np.ndarray:
        """:meth:`transform` of a float matrix, without the fitted check (see :class:`RowEncoder`)."""
        if self.empty_.any():
            values = values.copy()
            values[:, self.empty_] = 0.0
        return values


# -- byoc's own fitted steps: one implementation for training batches and request rows ------------
def _fit_names(step: Any, X: Any, width: int) -> None:
    if isinstance(X, pd.DataFrame):
        step.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
    step.n_features_in_ = width


def _names_in(step: Any, input_features: Any) -> list[str]:
    if input_features is None:
        input_features = getattr(step, "feature_names_in_", [f"x{i}" for i in range(step.n_features_in_)])
    return [str(name) for name in input_features]


class MedianImputer(TransformerMixin, BaseEstimator):
    """Missing numbers -> the column's training median (0 for a column with no value), followed
    by one 0/1 indicator column per feature that had missing values in training.

    byoc's own, in place of SimpleImputer(median, add_indicator, keep_empty_features): plain
    NumPy on a float matrix, the same code for a million training rows and one request row.
    """

    def fit(self, X: Any, y: Any = None) -> MedianImputer:
        values = np.asarray(X, dtype=np.float64)
        _fit_names(self, X, values.shape[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column: 0 below
            medians = np.nanmedian(values, axis=0) if len(values) else np.full(values.shape[1], np.nan)
        self.statistics_ = np.where(np.isnan(medians), 0.0, medians)
        self.indicator_features_ = np.flatnonzero(np.isnan(values).any(axis=0))
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "statistics_")
        return self.transform_matrix(_float_rows(X))

    def transform_matrix(self, values: np.ndarray) -> np.ndarray:
        """:meth:`transform` of a float matrix, without the fitted check (see :class:`RowEncoder`)."""
        missing = np.isnan(values)
        out = np.where(missing, self.statistics_, values)
        if self.indicator_features_.size:
            out = np.concatenate((out, missing[:, self.indicator_features_]), axis=1, dtype=np.float64)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = _names_in(self, input_features)
        indicators = [f"missingindicator_{names[i]}" for i in self.indicator_features_]
        return np.asarray(names + indicators, dtype=object)


class Standardizer(_OneToOne):
    """(x - mean) / standard deviation per column; a constant column becomes 0; NaN passes through.

    byoc's own, in place of StandardScaler, for the same reason as :class:`MedianImputer`.
    """

    def fit(self, X: Any, y: Any = None) -> Standardizer:
        values = np.asarray(X, dtype=np.float64)
        _fit_names(self, X, values.shape[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(values, axis=0)
            scale = np.nanstd(values, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        tiny = ~(scale > 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0))
        self.mean_ = mean
        self.scale_ = np.where(tiny | ~np.isfinite(scale), 1.0, scale)
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "scale_")
        return self.transform_matrix(_float_rows(X))

    def transform_matrix(self, values: np.ndarray) -> np.ndarray:
        """:meth:`transform` of a float matrix, without the fitted check (see :class:`RowEncoder`)."""
        return (values - self.mean_) / self.scale_


class CodeOneHot(TransformerMixin, BaseEstimator):
    """Integer codes (from :class:`CategoryCoder`) -> one 0/1 column per code seen in training;
    a code not seen (an unknown category) -> all zeros.

    byoc's own, in place of OneHotEncoder.  :meth:`transform` always gives CSR, as
    OneHotEncoder does: a ColumnTransformer decides at fit, from the kinds its blocks gave then,
    whether it stacks sparse or dense, so a block whose kind changed with the number of rows
    broke the stacking of a few request rows.  :meth:`transform_dense` gives the same values
    as an array, for the single-row path (:class:`RowEncoder`), where building a sparse
    matrix costs more than the rows.
    """

    def fit(self, X: Any, y: Any = None) -> CodeOneHot:
        values = np.asarray(X, dtype=np.float64)
        _fit_names(self, X, values.shape[1])
        self.categories_ = [np.unique(column[~np.isnan(column)]) for column in values.T]
        self.__dict__.pop("_code_table", None)
        return self

    def _table(self) -> np.ndarray | None:
        """Output column per (input column, code - MISSING_CODE), -1 where no category; None when
        a category is not a small integral code (then :meth:`_ones` searches sorted categories).

        Built from ``categories_`` on first use (older pickles need no new attribute)."""
        table = self.__dict__.get("_code_table", False)
        if table is not False:
            return table
        table = None
        known = [c for c in self.categories_ if len(c)]
        if all(np.array_equal(c, np.floor(c)) for c in known):
            top = max((float(c[-1]) for c in known), default=float(MISSING_CODE))
            low = min((float(c[0]) for c in known), default=float(MISSING_CODE))
            if low >= MISSING_CODE and top <= MAX_TABLE_CODE:
                table = np.full((len(self.categories_), int(top) - MISSING_CODE + 1), -1, dtype=np.intp)
                offset = 0
                for j, categories in enumerate(self.categories_):
                    table[j, categories.astype(np.intp) - MISSING_CODE] = offset + np.arange(len(categories))
                    offset += len(categories)
        self._code_table = table
        return table

    def _ones(self, X: Any) -> tuple[np.ndarray, np.ndarray, int, int]:
        """(rows, columns) of the ones, the number of rows and of output columns.

        Codes are looked up in :meth:`_table` (a few array operations for any number of rows
        and columns), or, when it cannot hold the categories, searched column by column."""
        values = np.asarray(X, dtype=np.float64)
        table = self._table()
        width = sum(len(c) for c in self.categories_)
        if table is not None and values.ndim == 2 and values.shape[1] == len(table):
            slot = values - MISSING_CODE
            valid = (values == np.floor(values)) & (slot >= 0) & (slot < table.shape[1])
            found = table[np.arange(len(table)), np.where(valid, slot, 0).astype(np.intp)]
            found[~valid] = -1
            r, j = np.nonzero(found >= 0)
            return r, found[r, j], len(values), width
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        offset = 0
        for column, categories in zip(values.T, self.categories_, strict=True):
            if len(categories):
                position = np.searchsorted(categories, column)
                clipped = np.minimum(position, len(categories) - 1)
                hit = (position < len(categories)) & (categories[clipped] == column)
                rows.append(np.flatnonzero(hit))
                cols.append(offset + position[hit])
            offset += len(categories)
        r = np.concatenate(rows) if rows else np.zeros(0, dtype=np.intp)
        c = np.concatenate(cols) if cols else np.zeros(0, dtype=np.intp)
        return r, c, len(values), offset

    def transform(self, X: Any) -> sparse.csr_matrix:
        check_is_fitted(self, "categories_")
        r, c, n, width = self._ones(X)
        return sparse.csr_matrix((np.ones(len(r), dtype=np.float64), (r, c)), shape=(n, width))

    def transform_dense(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "categories_")
        return self.transform_matrix(_float_rows(X))

    def transform_matrix(self, X: np.ndarray) -> np.ndarray:
        """:meth:`transform_dense` without the fitted check (see :class:`RowEncoder`)."""
        r, c, n, width = self._ones(X)
        out = np.zeros((n, width), dtype=np.float64)
        out[r, c] = 1.0
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = _names_in(self, input_features)
        return np.asarray(
            [
                f"{name}_{int(code)}"
                for name, codes in zip(names, self.categories_, strict=True)
                for code in codes
            ],
            dtype=object,
        )


_ROW_STEPS = (CategoryCoder, MedianImputer, Standardizer, CodeOneHot, EmptyColumnFiller)


def own_step(step: Any) -> Any | None:
    """byoc's own equivalent of a fitted step: the step itself, or, for the scikit-learn steps
    that models trained before byoc had its own hold (SimpleImputer(median, add_indicator),
    StandardScaler, OneHotEncoder on codes), one built from their documented fitted attributes
    (``statistics_``, ``indicator_.features_``, ``mean_``, ``scale_``, ``categories_``).
    None when there is no exact equivalent.  The caller checks the result against the original.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if type(step) in _ROW_STEPS:
        return step
    width = getattr(step, "n_features_in_", None)
    if width is None:
        return None
    own: Any
    if type(step) is SimpleImputer:
        statistics = np.asarray(step.statistics_)
        if not (isinstance(step.missing_values, float) and np.isnan(step.missing_values)):
            return None
        if statistics.dtype.kind != "f" or statistics.shape != (width,) or np.isnan(statistics).any():
            return None
        indicator = getattr(step, "indicator_", None) if step.add_indicator else None
        if indicator is not None and (indicator.error_on_new or indicator.features != "missing-only"):
            return None
        own = MedianImputer()
        own.statistics_ = statistics.astype(np.float64)
        own.indicator_features_ = (
            np.asarray(indicator.features_, dtype=np.intp) if indicator is not None else np.zeros(0, np.intp)
        )
    elif type(step) is StandardScaler:
        own = Standardizer()
        own.mean_ = np.asarray(step.mean_, dtype=np.float64) if step.with_mean else np.zeros(width)
        own.scale_ = np.asarray(step.scale_, dtype=np.float64) if step.with_std else np.ones(width)
    elif type(step) is OneHotEncoder:
        if getattr(step, "drop_idx_", None) is not None or getattr(step, "_infrequent_enabled", True):
            return None
        if step.handle_unknown not in ("ignore", "infrequent_if_exist"):
            return None
        categories = [np.asarray(c) for c in step.categories_]
        if any(c.dtype.kind not in "fiu" for c in categories):
            return None
        own = CodeOneHot()
        own.categories_ = [c.astype(np.float64) for c in categories]
    else:
        return None
    own.n_features_in_ = width
    if hasattr(step, "feature_names_in_"):
        own.feature_names_in_ = step.feature_names_in_
    return own


class RowEncoder:
    """A fitted preprocessor run on request columns (a Batch's arrays) without a DataFrame.

    Each block's own fitted steps (byoc's, above) run their own ``transform``; the parts are
    stacked as the ColumnTransformer stacks them: dense, or CSR when it was fitted to give
    sparse output (the same stored values and column order, so a product with the final
    estimator's coefficients sums the same terms in the same order).  For small batches, where
    ColumnTransformer's per-call frame checks and slicing cost more than the work.  Only for
    preprocessors whose every step is byoc's own (or has an exact equivalent: :func:`own_step`)
    (:meth:`of` answers None otherwise).
    """

    def __init__(self, blocks: list[tuple[list[int], list[Any]]], sparse_output: bool = False) -> None:
        self.blocks = blocks
        self.sparse_output = sparse_output

    @classmethod
    def of(cls, preprocessor: Any, names: Sequence[str]) -> RowEncoder | None:
        if type(preprocessor) is not ColumnTransformer or not hasattr(preprocessor, "sparse_output_"):
            return None
        if getattr(preprocessor, "_sklearn_output_config", {}).get("transform", "default") != "default":
            return None
        index = {name: i for i, name in enumerate(names)}
        blocks = []
        for _name, fitted, columns in preprocessor.transformers_:
            if isinstance(fitted, str) and fitted == "drop":
                continue
            if not isinstance(columns, (list, tuple)) or not all(c in index for c in columns):
                return None
            if not columns:
                continue
            if type(fitted) is not Pipeline:
                return None
            steps = [own_step(step) for _, step in fitted.steps]
            if not steps or any(step is None for step in steps):
                return None
            if any(type(step) is CategoryCoder for step in steps[1:]):
                return None
            blocks.append(([index[c] for c in columns], steps))
        return cls(blocks, bool(preprocessor.sparse_output_)) if blocks else None

    def transform(self, columns: Sequence[np.ndarray]) -> Any:
        """The preprocessor's output for ``columns`` (one array per feature, in the model's order).

        Each step runs its fitted transformation directly (``transform_matrix``,
        ``transform_columns``): the steps were fitted and checked when this encoder was made, so
        scikit-learn's per-call fitted checks and output wrapping would only repeat themselves."""
        return self.stack(self.outputs(columns))

    def outputs(self, columns: Sequence[np.ndarray]) -> list[Any]:
        """Each block's output for ``columns``, before :meth:`stack`."""
        parts = []
        for positions, steps in self.blocks:
            value = self.block_input(steps[0], columns, positions)
            for step in steps:
                value = self.apply(step, value)
            parts.append(value)
        return parts

    @staticmethod
    def block_input(first: Any, columns: Sequence[np.ndarray], positions: Sequence[int]) -> Any:
        """What a block's first step reads: its text columns as they are (a CategoryCoder), else
        their float matrix."""
        if type(first) is CategoryCoder:
            return [columns[i] for i in positions]
        return _matrix(columns, positions)

    @staticmethod
    def apply(step: Any, value: Any) -> Any:
        """One fitted step on what the step before it gave (the first: on :meth:`block_input`)."""
        if type(step) is CategoryCoder:
            return step.transform_columns(value)
        return step.transform_matrix(value)

    def stack(self, parts: Sequence[np.ndarray]) -> Any:
        """The blocks' outputs side by side, as the ColumnTransformer stacks them."""
        dense = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        return _csr(dense) if self.sparse_output else dense


def _float_rows(X: Any) -> np.ndarray:
    """``X`` (a frame's columns, or a matrix) as a C-ordered float64 matrix, the layout
    :func:`_matrix` gives a request's columns: a dense matrix product's last bits depend on its
    input's layout (BLAS picks its kernel by it), and a frame's values come column-major, so
    without this a linear model answered a batch through the pipeline and the same rows through
    the server's row path with different last bits."""
    return np.ascontiguousarray(X, dtype=np.float64)


def _matrix(columns: Sequence[np.ndarray], positions: Sequence[int]) -> np.ndarray:
    """The float matrix of ``columns[positions]`` side by side (what ``np.stack(..., axis=1)``
    gives, C-ordered, for a third of its cost on a request row; one row, the most common request,
    as one array of its cells: a third again)."""
    rows = len(columns[positions[0]])
    if rows == 1:
        return np.array([[columns[i][0] for i in positions]], dtype=np.float64)
    out = np.empty((rows, len(positions)), dtype=np.float64)
    for j, i in enumerate(positions):
        out[:, j] = columns[i]
    return out


def _csr(dense: np.ndarray) -> sparse.csr_matrix:
    """``csr_matrix(dense)`` (the nonzero entries, row by row, columns ascending), built from its
    three arrays: a third of the time for a request row."""
    rows, columns = np.nonzero(dense)
    indptr = np.zeros(dense.shape[0] + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=dense.shape[0]), out=indptr[1:])
    return sparse.csr_matrix((dense[rows, columns], columns.astype(np.int32), indptr), shape=dense.shape)


def coerce_features(X: pd.DataFrame, features: Sequence[Feature], *, where: str) -> pd.DataFrame:
    """Columns in training order, numeric as float64, categorical as text.

    Categorical columns come back as object (str values, NaN for missing), or unchanged when
    they already have a pandas string dtype (pandas 3's default for text): converting those
    to object would create one Python string per cell, several times the frame's memory.

    Raises SchemaError naming ``where``, the column and the first bad row for a missing
    column, an extra column, or text in a numeric column.
    """
    expected = [f.name for f in features]
    given = [str(c) for c in X.columns]
    if len(set(given)) != len(given):
        dupes = sorted({c for c in given if given.count(c) > 1})
        raise SchemaError(
            f"{where}: column '{dupes[0]}' appears more than once; give every column a distinct name"
        )
    known, named = set(expected), set(given)  # list membership made these quadratic in the columns
    missing = [c for c in expected if c not in named]
    extra = [c for c in given if c not in known]
    if missing or extra:
        if len(given) == len(expected) and all(c.isdigit() or c.startswith("f") for c in given):
            hint = (
                " (the data has no header row while training had one, or the reverse: "
                "set the header hyperparameter)"
            )
        else:
            hint = ""
        parts = []
        if missing:
            parts.append(
                f"column '{missing[0]}' is missing"
                + (f" (and {len(missing) - 1} more: {', '.join(missing[1:6])})" if len(missing) > 1 else "")
            )
        if extra:
            parts.append(
                f"column '{extra[0]}' was not in the training data"
                + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
            )
        raise SchemaError(
            f"{where}: {'; '.join(parts)}; the model expects {len(expected)} columns "
            f"[{', '.join(expected[:20])}{', ...' if len(expected) > 20 else ''}]{hint}"
        )
    frame = X if list(X.columns) == given else X.set_axis(given, axis=1)  # no data copy
    out: dict[str, Any] = _numpy_numbers(frame, features)
    for feature in features:
        if feature.name in out:
            continue
        s = frame[feature.name]
        if feature.kind == NUMERIC:
            out[feature.name] = _numeric(s, feature, where)
        else:  # a pandas string dtype stays one: object would materialise a str per cell
            out[feature.name] = values.category_column(s)
    return pd.DataFrame({f.name: out[f.name] for f in features}, index=X.index)


def _numpy_numbers(frame: pd.DataFrame, features: Sequence[Feature]) -> dict[str, np.ndarray]:
    """The numeric features whose columns have a NumPy number dtype (a typed training channel's,
    as a rule) as float64 arrays, converted together (:func:`byoc.values.number_matrix`): none of
    them can hold a bad value, so no error's order changes."""
    dtypes = dict(zip(frame.columns, frame.dtypes, strict=True))
    names = [
        f.name
        for f in features
        if f.kind == NUMERIC and f.dtype != "bool" and values.numpy_number(dtypes[f.name])
    ]
    if not names:
        return {}
    matrix = values.number_matrix(frame if names == list(frame.columns) else frame[names])
    return {name: matrix[:, i] for i, name in enumerate(names)}


class NotANumber(SchemaError):
    """A numeric feature's cell that is not a number, with the column, the cell's position and
    its value: a caller that knows where the frame's rows come from (a channel's file and row,
    :func:`byoc.channel_rows.coerce_features`) names the cell its own way without reading the
    column a second time."""

    code = "bad_value"

    def __init__(self, message: str, *, column: str, position: int, value: Any) -> None:
        super().__init__(message)
        self.column = column
        self.position = position
        self.value = value


def _numeric(s: pd.Series, feature: Feature, where: str) -> np.ndarray:
    """A numeric feature as float64 by :func:`byoc.values.number_column`, the rule the server
    reads it by too; raises :class:`NotANumber` at the first cell that is not a number.

    An array, not a Series: the frame gets its index once (a float64 Series per column cost
    0.2 ms, most of it parsing the dtype's name)."""
    numbers, bad = _flags(s) if feature.dtype == "bool" else values.number_column(s)
    if bad is not None:
        raise NotANumber(
            f"{where}: column '{feature.name}' row {bad + 1} holds {s.iloc[bad]!r}, "
            f"but the column is numeric in the training data; send a number or leave it "
            f"empty for missing",
            column=feature.name,
            position=bad,
            value=s.iloc[bad],
        )
    return numbers


def _flags(s: pd.Series) -> tuple[np.ndarray, int | None]:
    """A boolean feature of a model from before booleans were text (0/1: :func:`byoc.values.flag`,
    as the server reads it), and the position of the first cell that is neither, or None."""
    out = np.empty(len(s), dtype=np.float64)
    for position, value in enumerate(s.to_numpy(dtype=object)):
        try:
            out[position] = values.flag(value)
        except values.BadValue:
            return out, position
    return out, None


# -- transformer -------------------------------------------------------------------------------
def build_preprocessor(
    features: Sequence[Feature],
    *,
    scale: bool,
    categorical: str = "onehot",
    impute: bool = True,
    max_categories: int | None = None,
) -> ColumnTransformer:
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
        steps: list[tuple[str, Any]]
        if categorical == "onehot":
            # Codes first (fast, rare categories grouped), then one column per code; an
            # unknown category (-1) was never seen in training, so it maps to all zeros.
            steps = [
                ("encode", CategoryCoder(max_categories=MAX_ONEHOT_CATEGORIES)),
                ("onehot", CodeOneHot()),
            ]
        else:
            steps = [("encode", CategoryCoder(max_categories=max_categories or MAX_ORDINAL_CATEGORIES))]
        if scale and categorical == "ordinal":
            steps.append(("scale", Standardizer()))
        transformers.append(("categorical", Pipeline(steps), text))
    if numeric:
        num_steps: list[tuple[str, Any]] = []
        if impute:
            num_steps.append(("impute", MedianImputer()))
        if scale:
            num_steps.append(("scale", Standardizer()))
        if not num_steps:
            num_steps.append(("keep", EmptyColumnFiller()))
        transformers.append(("numeric", Pipeline(num_steps), numeric))
    return ColumnTransformer(
        transformers, remainder="drop", sparse_threshold=0.3, verbose_feature_names_out=False
    )


def categorical_positions(features: Sequence[Feature]) -> list[int]:
    """Output positions of the categorical columns (they come first) that have categories.

    A text column with no value in training codes every row as missing; declared
    categorical, HistGradientBoosting cannot bin it.
    """
    text = [f for f in features if f.kind == CATEGORICAL]
    return [i for i, f in enumerate(text) if f.categories]


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
            onehot = steps.get("onehot")
            if onehot is not None:
                for col, cats in zip(columns, onehot.categories_, strict=True):
                    owners.extend([col] * len(cats))
            else:
                owners.extend(columns)
        else:
            owners.extend(columns)
            imputer = steps.get("impute")
            if isinstance(imputer, MedianImputer):
                owners.extend(columns[i] for i in imputer.indicator_features_)
            indicator = getattr(imputer, "indicator_", None)  # SimpleImputer in older models
            if indicator is not None:
                owners.extend(columns[i] for i in indicator.features_)
    return owners
