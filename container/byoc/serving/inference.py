"""The loaded model, prepared once for fast, repeated prediction.

User hooks (a later issue) plug in here: :class:`Predictor` is the "predict" step between
a validated frame and a :class:`~byoc.serving.output.Prediction`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from byoc import compiled
from byoc.artifact import ModelArtifact
from byoc.serving.output import (
    FIELDS,
    LABELS,
    NEEDS_PROBA,
    PREDICTED_LABEL,
    PROBABILITIES,
    PROBABILITY,
    Prediction,
)
from byoc.serving.schema import Batch, RequestSchema

log = logging.getLogger("byoc.serving")


def single_threaded(estimator: Any) -> Any:
    """Set every ``n_jobs`` in the pipeline to 1.

    Training defaults to all CPUs; at serving time each gunicorn worker already owns a CPU,
    and spawning a thread pool per request costs more than a small prediction itself.
    """
    if hasattr(estimator, "get_params") and hasattr(estimator, "set_params"):
        try:
            params = estimator.get_params(deep=True)
        except Exception:  # noqa: BLE001 - exotic estimators: leave them alone
            return estimator
        updates = {k: 1 for k, v in params.items() if k.split("__")[-1] == "n_jobs" and v not in (None, 1)}
        if updates:
            estimator.set_params(**updates)
    return estimator


FAST_PATH_ROWS = 64  # above this, the pipeline's own vectorised path is as fast


class _Fallback(Exception):
    """A compiled block met a value it does not handle: this batch takes the fitted transformer."""


Step = Callable[[Any], np.ndarray]


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _default_output(step: Any) -> bool:
    return getattr(step, "_sklearn_output_config", {}).get("transform", "default") == "default"


def _compile_coder(coder: Any) -> Step | None:
    """CategoryCoder on object columns of text/NaN: dict lookups instead of pandas indexing."""
    from byoc.preprocessing import MISSING_CODE, UNKNOWN_CODE, CategoryCoder

    if type(coder) is not CategoryCoder:
        return None
    tables = coder.code_tables()
    unknown, missing = float(UNKNOWN_CODE), float(MISSING_CODE)

    def code(value: Any, table: dict) -> float:
        if type(value) is str:
            return table.get(value, unknown)
        if value is None or _is_nan(value):
            return missing
        raise _Fallback

    def run(columns: list[np.ndarray]) -> np.ndarray:
        if len(columns) != len(tables):
            raise _Fallback
        out = np.empty((len(columns[0]), len(columns)), dtype=np.float64)
        out.T[...] = [[code(v, table) for v in column] for column, table in zip(columns, tables, strict=True)]
        return out

    return run


def _compile_numeric(step: Any, width: int) -> tuple[Step, int] | None:
    """(a function on a float64 matrix of ``width`` columns, its output width), for known steps."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from byoc.preprocessing import EmptyColumnFiller

    kind = type(step)
    if kind is SimpleImputer:
        return _compile_imputer(step, width)
    if kind is StandardScaler:
        mean = np.asarray(step.mean_, dtype=np.float64) if step.with_mean else None
        scale = np.asarray(step.scale_, dtype=np.float64) if step.with_std else None
        if any(a is not None and a.shape != (width,) for a in (mean, scale)):
            return None

        def scaled(X: np.ndarray) -> np.ndarray:
            if mean is not None:
                X = X - mean
            if scale is not None:
                X = X / scale
            return X

        return scaled, width
    if kind is EmptyColumnFiller:
        empty = np.asarray(step.empty_, dtype=bool)
        if empty.shape != (width,):
            return None
        if not empty.any():
            return (lambda X: X), width

        def filled(X: np.ndarray) -> np.ndarray:
            X = X.copy()
            X[:, empty] = 0.0
            return X

        return filled, width
    if kind is OneHotEncoder:
        return _compile_onehot(step, width)
    return None


def _compile_imputer(imputer: Any, width: int) -> tuple[Step, int] | None:
    if not _is_nan(imputer.missing_values):
        return None
    statistics = np.asarray(imputer.statistics_)
    if statistics.dtype.kind != "f" or statistics.shape != (width,) or np.isnan(statistics).any():
        return None
    statistics = statistics.astype(np.float64)
    features = None
    if imputer.add_indicator:
        indicator = getattr(imputer, "indicator_", None)
        if indicator is None or indicator.error_on_new or indicator.sparse not in ("auto", False):
            return None
        features = np.asarray(indicator.features_, dtype=np.intp)

    def imputed(X: np.ndarray) -> np.ndarray:
        mask = np.isnan(X)
        out = np.where(mask, statistics, X)
        if features is None:
            return out
        return np.hstack([out, mask[:, features].astype(np.float64)])

    return imputed, width + (0 if features is None else len(features))


def _compile_onehot(encoder: Any, width: int) -> tuple[Step, int] | None:
    """OneHotEncoder on numeric codes (after CategoryCoder): unknown codes -> all zeros."""
    if (
        getattr(encoder, "drop_idx_", None) is not None
        or getattr(encoder, "_infrequent_enabled", True)
        or encoder.handle_unknown not in ("ignore", "infrequent_if_exist")
        or np.dtype(encoder.dtype) != np.float64
        or len(encoder.categories_) != width
    ):
        return None
    tables, offset = [], 0
    for categories in encoder.categories_:
        categories = np.asarray(categories)
        if categories.dtype.kind not in "fiu" or np.isnan(categories.astype(np.float64)).any():
            return None
        tables.append({float(c): offset + k for k, c in enumerate(categories.tolist())})
        offset += len(categories)
    total = offset

    def onehot(X: np.ndarray) -> np.ndarray:
        out = np.zeros((X.shape[0], total), dtype=np.float64)
        for i, row in enumerate(X.tolist()):
            for value, table in zip(row, tables, strict=True):
                position = table.get(value)
                if position is not None:
                    out[i, position] = 1.0
        return out

    return onehot, total


def _compile_block(fitted: Any, categorical: bool, width: int) -> list[Step] | None:
    """A fitted block (a Pipeline or one transformer) as plain NumPy steps, or None if unknown."""
    from sklearn.pipeline import Pipeline

    if isinstance(fitted, Pipeline):
        if type(fitted) is not Pipeline or not _default_output(fitted):
            return None
        steps = [step for _, step in fitted.steps if step is not None and step != "passthrough"]
    else:
        steps = [fitted]
    if not steps:
        return None
    compiled: list[Step] = []
    for position, step in enumerate(steps):
        if not _default_output(step):
            return None
        if position == 0 and categorical:
            run = _compile_coder(step)
        else:
            found = _compile_numeric(step, width)
            run, width = found if found is not None else (None, width)
        if run is None:
            return None
        compiled.append(run)
    return compiled


class ColumnBlocks:
    """A fitted ColumnTransformer applied block by block, straight from a Batch's columns.

    ``ColumnTransformer.transform`` spends most of a single-row prediction on re-checking and
    re-slicing the whole frame.  Each block whose steps are known (CategoryCoder, SimpleImputer,
    StandardScaler, OneHotEncoder on codes, EmptyColumnFiller) runs as plain NumPy on the
    batch's typed columns, with the fitted statistics and dict lookups prepared at load time;
    any other block gets a small frame of its own columns and its fitted ``transform``.  The
    blocks are stacked as the ColumnTransformer would.  Used only when :meth:`compile`
    recognises the layout and the Predictor's check finds it agrees with the pipeline.
    """

    def __init__(self, blocks: list[tuple[Any, list[int], list[str], list[Step] | None, bool]]) -> None:
        self.blocks = blocks

    @classmethod
    def compile(cls, pipeline: Any, schema: RequestSchema) -> ColumnBlocks | None:
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline

        if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
            return None
        transformer = pipeline.steps[0][1]
        if not isinstance(transformer, ColumnTransformer) or getattr(transformer, "sparse_output_", True):
            return None
        if not _default_output(transformer):
            return None
        blocks = []
        for _name, fitted, columns in transformer.transformers_:
            if fitted == "drop" or (isinstance(columns, (list, tuple)) and not len(columns)):
                continue
            if fitted == "passthrough" or not isinstance(columns, (list, tuple)):
                return None
            if not all(isinstance(c, str) and c in schema.index for c in columns):
                return None
            positions = [schema.index[c] for c in columns]
            kinds = {schema.numeric[i] for i in positions}
            categorical = kinds == {False}
            try:
                steps = _compile_block(fitted, categorical, len(positions)) if len(kinds) == 1 else None
            except Exception:  # noqa: BLE001 - an unexpected fitted state: keep its own transform
                steps = None
            blocks.append((fitted, positions, list(columns), steps, categorical))
        return cls(blocks) if blocks else None

    @property
    def compiled(self) -> int:
        """How many blocks run as plain NumPy."""
        return sum(1 for block in self.blocks if block[3] is not None)

    @staticmethod
    def _fitted(fitted: Any, positions: list[int], names: list[str], batch: Batch) -> np.ndarray:
        frame = pd.DataFrame(
            {name: batch.columns[i] for name, i in zip(names, positions, strict=True)}, copy=False
        )
        part = fitted.transform(frame)
        return part.toarray() if hasattr(part, "toarray") else np.asarray(part)

    def transform(self, batch: Batch) -> np.ndarray:
        parts = []
        columns = batch.columns
        for fitted, positions, names, steps, categorical in self.blocks:
            if steps is None:
                parts.append(self._fitted(fitted, positions, names, batch))
                continue
            first = [columns[i] for i in positions]
            try:
                value: Any = first if categorical else np.stack(first, axis=1)
                for step in steps:
                    value = step(value)
            except _Fallback:
                value = self._fitted(fitted, positions, names, batch)
            parts.append(value)
        return np.hstack(parts) if len(parts) > 1 else parts[0]


_UNCHECKED = {"check_input": False}
_NAN = float("nan")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return (
            a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    return a == b


class Predictor:
    """A model artifact plus everything the request path would otherwise recompute."""

    def __init__(self, model: ModelArtifact, *, compiled_inference: bool = True) -> None:
        self.model = model
        self.estimator = single_threaded(model.estimator)
        # The final estimator(s) predict through the compiled form saved at training time, when
        # it is present, switched on and still agrees with scikit-learn (checked here, at load).
        self.compiled = (
            compiled.load(self.estimator, model.metadata, model.path) if compiled_inference else None
        )
        if self.compiled is not None:
            self.estimator = self.compiled.pipeline
            log.info("compiled inference: %s", compiled.describe(self.compiled))
        self.schema = RequestSchema(model.features)
        self.is_classifier = model.is_classifier
        self.classes = list(model.classes)
        self._class_array = np.array(self.classes + [None], dtype=object)[:-1]
        self.has_proba = self.is_classifier and hasattr(self.estimator, "predict_proba")
        if self.is_classifier and not self.classes:
            raise ValueError(f"{model.path}: model.json lists no classes for a {model.problem_type} model")
        self.blocks: ColumnBlocks | None = None
        self.final = None
        self._unchecked_tree = False
        self.available_fields: tuple[str, ...] = tuple(
            f
            for f in FIELDS
            if f == PREDICTED_LABEL or (self.is_classifier and (f == LABELS or self.has_proba))
        )

    def _inputs(self, batch: Batch) -> tuple[Any, Any, dict[str, Any]]:
        """(estimator, its input, keyword arguments): the fast block path for small batches,
        else the whole pipeline."""
        if self.blocks is not None and len(batch) <= FAST_PATH_ROWS:
            return self._final_inputs(self.blocks.transform(batch))
        return self.estimator, batch.frame(), {}

    def _final_inputs(self, X: np.ndarray) -> tuple[Any, Any, dict[str, Any]]:
        """A single tree takes its float32 matrix unchecked when every value is finite.

        ``check_input=False`` skips only what the blocks already guarantee (a dense 2-D
        array, no feature names) and the conversion done here; a non-finite value (NaN
        meant for a tree that handles it, or an overflow) goes through the usual checks.
        """
        if self._unchecked_tree:
            X32 = np.ascontiguousarray(X, dtype=np.float32)
            if np.isfinite(X32).all():
                return self.final, X32, _UNCHECKED
        return self.final, X, {}

    def predict(self, batch: Batch, fields: tuple[str, ...]) -> Prediction:
        return self._predict(*self._inputs(batch), len(batch), fields)

    def _predict(
        self, estimator: Any, inputs: Any, kwargs: dict[str, Any], n: int, fields: tuple[str, ...]
    ) -> Prediction:
        values: dict[str, Any] = {}
        if not self.is_classifier:
            values[PREDICTED_LABEL] = np.asarray(estimator.predict(inputs, **kwargs), dtype=np.float64)
            return Prediction(fields, values, n)
        if NEEDS_PROBA.intersection(fields):
            proba = np.asarray(estimator.predict_proba(inputs, **kwargs), dtype=np.float64)
            index = proba.argmax(axis=1)
            if PROBABILITY in fields:
                values[PROBABILITY] = proba[np.arange(n), index]
            if PROBABILITIES in fields:
                values[PROBABILITIES] = proba
        elif PREDICTED_LABEL in fields:
            index = np.asarray(estimator.predict(inputs, **kwargs)).astype(np.intp, copy=False)
        else:
            index = None
        if PREDICTED_LABEL in fields:
            values[PREDICTED_LABEL] = self._class_array[index].tolist()
        if LABELS in fields:
            values[LABELS] = self.classes
        return Prediction(fields, values, n)

    def enable_fast_path(self) -> bool:
        """Use :class:`ColumnBlocks` for small batches if it reproduces the pipeline exactly.

        Checked on rows mixing missing values, every category model.json lists and unseen
        ones: the blocks' matrix must equal the ColumnTransformer's (values and dtype), and
        the final estimator fed by it must give the pipeline's predictions, field by field.
        """
        blocks = ColumnBlocks.compile(self.estimator, self.schema)
        if blocks is None:
            return False
        from sklearn.tree import (
            DecisionTreeClassifier,
            DecisionTreeRegressor,
            ExtraTreeClassifier,
            ExtraTreeRegressor,
        )

        final = self.estimator.steps[-1][1]
        probe = self.schema.from_rows(self._check_rows())
        n = len(probe)
        try:
            expected = np.asarray(self.estimator.steps[0][1].transform(probe.frame()))
            got = blocks.transform(probe)
            same = (
                expected.dtype == got.dtype
                and expected.shape == got.shape
                and np.array_equal(expected, got, equal_nan=True)
            )
            self.blocks, self.final = blocks, final
            self._unchecked_tree = (
                type(final)
                in (DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, ExtraTreeRegressor)
                and final.n_outputs_ == 1
            )
            for fields in [(field,) for field in self.available_fields]:
                fast = self._predict(*self._final_inputs(got), n, fields)
                slow = self._predict(self.estimator, probe.frame(), {}, n, fields)
                same = same and all(_equal(fast.values[f], slow.values[f]) for f in fields)
        except Exception:  # noqa: BLE001 - any doubt: keep the pipeline path
            same = False
        if not same:
            self.blocks, self.final, self._unchecked_tree = None, None, False
        return same

    def _check_rows(self) -> list[list[Any]]:
        """The probe rows plus a sweep through every listed category and assorted numbers."""
        numbers = [_NAN, -1.5, 0.0, 0.5, 2.25, -37.0, 1e6, -1e6, 123.456]
        sweep = max([len(f.categories) for f in self.schema.features] + [len(numbers)])
        rows = self._probe_rows()
        for k in range(sweep):
            rows.append(
                [
                    numbers[(k + j) % len(numbers)]
                    if feature.kind == "numeric"
                    else (feature.categories[k % len(feature.categories)] if feature.categories else None)
                    for j, feature in enumerate(self.schema.features)
                ]
            )
        return rows

    def _probe_rows(self) -> list[list[Any]]:
        """Rows mixing missing values, seen and unseen categories, for the fast-path check."""
        rows: list[list[Any]] = [[None] * self.schema.width]
        for k in range(3):
            row: list[Any] = []
            for feature in self.schema.features:
                if feature.kind == "numeric":
                    row.append(float(k) - 1.5)
                else:
                    seen = list(feature.categories)
                    row.append(seen[k % len(seen)] if seen and k < 2 else "byoc-unseen-category")
            rows.append(row)
        return rows

    def warm_up(self) -> None:
        """Predict sample rows so lazy imports and caches happen before the fork."""
        self.predict(self.schema.from_rows(self._probe_rows()), self.available_fields)
