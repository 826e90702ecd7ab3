"""The loaded model, prepared once for fast, repeated prediction.

User hooks (a later issue) plug in here: :class:`Predictor` is the "predict" step between
a validated frame and a :class:`~byoc.serving.output.Prediction`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import sparse

from byoc import compiled
from byoc.artifact import ModelArtifact, label_at
from byoc.preprocessing import RowEncoder
from byoc.serving.output import (
    LABELS,
    NEEDS_PROBA,
    PREDICTED_LABEL,
    PROBABILITIES,
    PROBABILITY,
    Prediction,
    available_fields,
)
from byoc.serving.schema import Batch, RequestSchema

log = logging.getLogger("byoc.serving")


def single_threaded(estimator: Any) -> Any:
    """Set every ``n_jobs`` in the model to 1, nested fitted estimators included.

    Training defaults to all CPUs; at serving time each gunicorn worker already owns a CPU,
    and spawning a thread pool per request costs more than a small prediction itself.  One
    thread is also what makes the answer the same bits every time: a forest predicting on
    several threads adds its trees' probabilities in the order the threads finish, which moves
    the last bit from one call to the next.  ``get_params`` does not reach the fitted members an
    AutoML blend or stack holds in its ``members`` list, nor an ensemble's ``estimators_``
    (a random forest in a blend kept ``n_jobs=-1``, and the served probabilities then differed
    from the pipeline's by an ulp), so the estimators in attributes and in lists or tuples of
    them are visited too.
    """
    _single_threaded(estimator, set())
    return estimator


def _single_threaded(obj: Any, seen: set[int]) -> None:
    """Each estimator reachable from ``obj`` once, its own ``n_jobs`` set to 1: its parameters
    that are estimators (a pipeline's steps, a column transformer's transformers) sit in its
    attributes as well, so one walk over the attributes reaches them and the fitted members
    that ``get_params`` does not."""
    if id(obj) in seen or isinstance(obj, type):
        return
    seen.add(id(obj))
    if isinstance(obj, (list, tuple)):
        for item in obj:
            if isinstance(item, (list, tuple)) or hasattr(item, "get_params"):
                _single_threaded(item, seen)
        return
    if not (hasattr(obj, "get_params") and hasattr(obj, "set_params")):
        return
    try:
        n_jobs = obj.get_params(deep=False).get("n_jobs")
    except Exception:  # exotic estimators: leave them alone
        log.debug("%s: get_params failed; its n_jobs stay as trained", type(obj).__name__, exc_info=True)
        return
    if n_jobs not in (None, 1):
        obj.set_params(n_jobs=1)
    for value in getattr(obj, "__dict__", {}).values():
        if isinstance(value, (list, tuple)) or hasattr(value, "get_params"):
            _single_threaded(value, seen)


FAST_PATH_ROWS = 64  # above this, the pipeline's own vectorised path is as fast
# Above this many rows a batch is predicted by scikit-learn, not the compiled form: treelite's
# GTIL walks each row through each tree one at a time, one thread, while scikit-learn's trees
# loop in compiled code.  Measured in-process, final estimator's predict_proba, CPU time,
# treelite / scikit-learn (synthetic 10 numeric + 10 text, 10,000 training rows; loaded
# machine): random_forest 0.09 at 1 row, 0.49 at 64, 1.66 at 256; extra_trees 0.06, 1.69,
# 4.03; gradient_boosting 0.03, 0.14, 0.44 (1.0 at 600).  Both answer alike (checked at load).
# The onnxruntime forms that replaced treelite for these (byoc.compiled_onnx) stay faster further:
# onnxruntime / scikit-learn at 64, 256, 1024 rows, random_forest 0.15, 0.25, 0.61,
# gradient_boosting 0.05, 0.13, 0.38 (same set-up); the limit is unchanged so far.
COMPILED_MAX_ROWS = 64


SINGLE_CHECK_ROWS = 8  # check rows a blend's or stack's row path also answers one by one at load
_NAN = float("nan")


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return (
            a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
        )
    return a == b


def _same_matrix(expected: Any, got: Any) -> bool:
    """Equal values, dtype and shape, and for CSR the same stored entries in the same order."""
    if sparse.issparse(expected) or sparse.issparse(got):
        if not (sparse.isspmatrix_csr(expected) and sparse.isspmatrix_csr(got)):
            return False
        return expected.shape == got.shape and all(
            _equal(getattr(expected, part), getattr(got, part)) for part in ("data", "indices", "indptr")
        )
    expected, got = np.asarray(expected), np.asarray(got)
    return (
        expected.dtype == got.dtype
        and expected.shape == got.shape
        and np.array_equal(expected, got, equal_nan=True)
    )


def _for_final(encoder: RowEncoder, final: Any) -> RowEncoder:
    """The encoder as ``final`` takes its output: compiled knn densifies a CSR row, so it gets the
    dense one without the CSR matrix being built."""
    if getattr(final, "searches_dense_rows", False) and encoder.sparse_output:
        return RowEncoder(encoder.blocks)
    return encoder


def _row_pair(member: Any, names: Sequence[str]) -> tuple[RowEncoder, Any] | None:
    """A member pipeline's (RowEncoder adapted to its final estimator, final estimator), or None when
    its preprocessing is not byoc's encoder (no row path)."""
    steps = getattr(member, "steps", None) or []
    encoder = RowEncoder.of(steps[0][1], names) if len(steps) == 2 else None
    if encoder is None:
        return None
    return _for_final(encoder, steps[-1][1]), steps[-1][1]


def _on_columns(encoder: Any, final: Any) -> Any:
    """``final`` behind ``encoder`` as one estimator on a request's columns, where it has such a
    form (a compiled linear model), else None."""
    form = getattr(final, "on_columns", None)
    try:
        return form(encoder) if form is not None else None
    except Exception:  # no such form then: the encoder's matrix path
        log.debug("%s has no form on the request's columns", type(final).__name__, exc_info=True)
        return None


def _labels_from_scores(pipeline: Any) -> bool:
    """Whether the model's predict is not the argmax of its predict_proba: a LinearClassifierMixin
    (LogisticRegression) and HistGradientBoosting label by the sign or argmax of their scores, and
    a score within rounding of a tie gives equal probabilities (expit of 2.8e-17 is 0.5:
    ``[0.5, 0.5]``) whose argmax is the first class where predict says the other."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model._base import LinearClassifierMixin

    final = compiled.final_estimator(pipeline)
    return isinstance(final, (LinearClassifierMixin, HistGradientBoostingClassifier))


def _tied_from_predict(
    estimator: Any, inputs: Any, kwargs: dict[str, Any], proba: np.ndarray, index: np.ndarray
) -> np.ndarray:
    """``index`` (the argmax of ``proba``) with the rows whose highest probability is tied taking
    ``estimator.predict``'s label instead, so the label does not depend on whether probabilities
    were asked for (a second predict only for a request holding such a row)."""
    top = proba[np.arange(len(proba)), index]
    tied = np.count_nonzero(proba == top[:, None], axis=1) > 1
    if not tied.any():
        return index
    labels = np.asarray(estimator.predict(inputs, **kwargs)).astype(np.intp, copy=False)
    return np.where(tied, labels, index)


class TreeRows:
    """A fitted single-output tree's ``predict`` / ``predict_proba`` on the row path's float32
    matrix of finite values: scikit-learn's own steps after its input checks (``tree_.predict``,
    then the classes' argmax or the value column), without its per-call ``check_is_fitted`` and
    feature-count check, which ``check_input=False`` still runs: the tree is fitted, and the
    matrix is the encoder's, as wide as the tree was fitted on (checked at load against the
    pipeline).  Those checks were a sixth of a decision_tree single-row request's instructions."""

    def __init__(self, tree: Any) -> None:
        self.tree = tree.tree_
        self.is_classifier = hasattr(tree, "classes_")
        self.classes_: Any = getattr(tree, "classes_", None)
        self.n_classes = int(tree.n_classes_) if self.is_classifier else 0

    def predict(self, X: np.ndarray) -> np.ndarray:
        values = self.tree.predict(X)
        if self.is_classifier:
            return self.classes_.take(np.argmax(values, axis=1), axis=0)
        return values[:, 0]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.tree.predict(X)[:, : self.n_classes]


class Predictor:
    """A model artifact plus everything the request path would otherwise recompute."""

    def __init__(self, model: ModelArtifact, *, compiled_inference: bool = True) -> None:
        self.model = model
        self.estimator = single_threaded(model.estimator)
        # Batches above COMPILED_MAX_ROWS: scikit-learn's own pipeline, faster there than treelite.
        self.batch_estimator = self.estimator
        # The final estimator(s) predict through the compiled form saved at training time, when
        # it is present, switched on and still agrees with scikit-learn (checked here, at load).
        self.compiled = (
            compiled.load(self.estimator, model.metadata, model.path) if compiled_inference else None
        )
        if self.compiled is not None:
            self.estimator = self.compiled.pipeline
            log.info("compiled inference: %s", compiled.describe(self.compiled))
        self.schema = RequestSchema(model.features, model.metadata.get("time_unit"), label_at(model.metadata))
        self.is_classifier = model.is_classifier
        self.classes = model.served_classes  # booleans as booleans: what predicted_label answers
        self._class_array = np.array(self.classes + [None], dtype=object)[:-1]
        self.has_proba = self.is_classifier and hasattr(self.estimator, "predict_proba")
        self.labels_from_scores = self.is_classifier and _labels_from_scores(model.estimator)
        if self.is_classifier and not self.classes:
            raise ValueError(f"{model.path}: model.json lists no classes for a {model.problem_type} model")
        self.blocks: RowEncoder | None = None
        self.final = None
        self.row_model: Any = None  # the final estimator on the batch's columns, encoder included
        self._tree_rows: TreeRows | None = None
        # small batches: the ensemble's RowEnsemble, or a blend/stack over row members (row_members)
        self.row_ensemble: Any = None
        self.available_fields = available_fields(self.is_classifier, self.has_proba)

    def _inputs(self, batch: Batch) -> tuple[Any, Any, dict[str, Any]]:
        """(estimator, its input, keyword arguments): the fast block path for small batches,
        else the whole pipeline."""
        if self.blocks is not None and (
            len(batch) <= FAST_PATH_ROWS
            or (self.estimator is self.batch_estimator and not self.blocks.sparse_output)
        ):  # a large batch too when dense and no compiled form predicts: the ColumnTransformer's
            # frame slicing, stacking and checks were a quarter of a 4 MB CSV slice's encoding
            if self.row_model is not None and len(batch) <= FAST_PATH_ROWS:
                return self.row_model, batch.columns, {}
            return self._final_inputs(self.blocks.transform(batch.columns))
        if len(batch) <= FAST_PATH_ROWS:
            if self.row_ensemble is not None:
                return self.row_ensemble, batch, {}
        if len(batch) > COMPILED_MAX_ROWS:
            return self.batch_estimator, batch.frame(), {}
        return self.estimator, batch.frame(), {}

    @property
    def fast_path(self) -> bool:
        """Whether small batches skip the pipeline's DataFrame path."""
        return self.blocks is not None or self.row_ensemble is not None

    def _final_inputs(self, X: np.ndarray) -> tuple[Any, Any, dict[str, Any]]:
        """A single tree takes its float32 matrix unchecked when every value is finite
        (:class:`TreeRows`).

        Its checks would find only what the blocks already guarantee (a dense 2-D array of the
        fitted width, no feature names) and the conversion done here; a non-finite value (NaN
        meant for a tree that handles it, or an overflow) goes through the usual checks.
        """
        if self._tree_rows is not None:
            X32 = np.ascontiguousarray(X, dtype=np.float32)
            if np.isfinite(X32).all():
                return self._tree_rows, X32, {}
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
            if self.labels_from_scores and PREDICTED_LABEL in fields:
                index = _tied_from_predict(estimator, inputs, kwargs, proba, index)
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
        """For small batches, run the preprocessor's own fitted steps on the batch's columns
        (:class:`~byoc.preprocessing.RowEncoder`) and the final estimator on their matrix, if
        that reproduces the pipeline exactly.

        Checked on rows mixing missing values, every category model.json lists and unseen
        ones: the blocks' matrix must equal the ColumnTransformer's (values and dtype), and
        the final estimator fed by it must give the pipeline's predictions, field by field.
        """
        from sklearn.pipeline import Pipeline

        if not isinstance(self.estimator, Pipeline) or len(self.estimator.steps) != 2:
            return False
        if compiled.is_ensemble(self.estimator.steps[-1][1]):
            return self._enable_ensemble_path(self.estimator.steps[-1][1])
        if hasattr(self.estimator.steps[-1][1], "with_member_pipelines"):  # an AutoML blend or stack
            return self._enable_members_path(self.estimator.steps[-1][1])
        blocks = RowEncoder.of(self.estimator.steps[0][1], self.schema.names)
        if blocks is None:
            return False
        from sklearn.tree import (
            DecisionTreeClassifier,
            DecisionTreeRegressor,
            ExtraTreeClassifier,
            ExtraTreeRegressor,
        )

        final = self.estimator.steps[-1][1]
        blocks = _for_final(blocks, final)
        probe = self.schema.from_rows(self._check_rows())
        try:
            expected = self.estimator.steps[0][1].transform(probe.frame())
            got = blocks.transform(probe.columns)
            if sparse.issparse(expected) and not blocks.sparse_output:
                expected = expected.toarray()
            same = _same_matrix(expected, got)
            self.blocks, self.final = blocks, final
            if (
                type(final)
                in (DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, ExtraTreeRegressor)
                and final.n_outputs_ == 1
            ):
                self._tree_rows = TreeRows(final)
            same = same and self._answers_equal(self._final_inputs(got), probe)
            # a compiled linear model: its scores from the columns, no encoded matrix (compiled_linear)
            on_columns = getattr(final, "on_columns", None)
            row_model = on_columns(blocks) if same and on_columns is not None else None
            if row_model is not None and self._answers_equal((row_model, probe.columns, {}), probe):
                self.row_model = row_model
        except Exception:  # any doubt: keep the pipeline path
            log.debug("the single-row path's check failed; the pipeline answers", exc_info=True)
            same = False
        if not same:
            self.blocks, self.final, self.row_model, self._tree_rows = None, None, None, None
        return same

    def _answers_equal(self, fast: tuple[Any, Any, dict[str, Any]], probe: Batch) -> bool:
        """Whether (estimator, input, keyword arguments) answers ``probe`` as the pipeline does on
        its frame, field by field."""
        for field in self.available_fields:
            got = self._predict(*fast, len(probe), (field,))
            want = self._predict(self.estimator, probe.frame(), {}, len(probe), (field,))
            if not _equal(got.values[field], want.values[field]):
                return False
        return True

    def _enable_ensemble_path(self, ensemble: Any) -> bool:
        """The ensemble's own vote over members that each run their encoder's fitted steps and final
        estimator on the batch's columns, each distinct step once for all members
        (:class:`~byoc.serving.row_ensemble.RowEnsemble`), if every member has such a path and
        the answers equal the pipeline's, field by field."""
        from byoc.serving.row_ensemble import RowEnsemble

        members: list[tuple[RowEncoder | None, Any]] = []
        for member in ensemble.estimators_:
            pair = _row_pair(member, self.schema.names)
            if pair is None:
                return False
            members.append(pair)
        # compiled linear members scored from the columns, no encoded matrix (compiled_linear); if
        # that does not answer alike, every member on its encoder
        on_columns = [_on_columns(encoder, final) for encoder, final in members]
        candidates = [
            [(None, row) if row is not None else pair for pair, row in zip(members, on_columns, strict=True)]
        ]
        if any(row is not None for row in on_columns):
            candidates.append(members)
        check_rows = self._check_rows()
        probe = self.schema.from_rows(check_rows)
        self.row_ensemble = None
        for candidate in candidates:
            try:
                row_ensemble = RowEnsemble(ensemble, candidate)
                if self._answers_equal((row_ensemble, probe, {}), probe):
                    # its one-row vote in Python floats (RowEnsemble._one_row) on each row alone too;
                    # if any differs, one row takes the arrays' way as the others
                    if row_ensemble.one_row is not None and not all(
                        self._answers_equal((row_ensemble, one, {}), one)
                        for one in map(self.schema.from_rows, ([row] for row in check_rows))
                    ):
                        row_ensemble.one_row = None
                    self.row_ensemble = row_ensemble
                    return True
            except Exception:  # any doubt: keep the pipeline path
                log.debug("the ensemble's single-row path failed its check", exc_info=True)
        return False

    def _enable_members_path(self, model: Any) -> bool:
        """A blend's or stack's own ``predict`` / ``predict_proba`` over members that each run their
        encoder's fitted steps and final estimator on the batch's columns
        (:mod:`byoc.serving.row_members`), if that answers the check rows as the pipeline does, as a
        batch and one by one.  Compiled linear members read the columns themselves where that
        answers alike too."""
        from byoc.serving.row_members import RowMember

        pairs: dict[str, tuple[RowEncoder, Any]] = {}
        for name, member in model.member_pipelines():
            pair = _row_pair(member, self.schema.names)
            if pair is None:
                return False
            pairs[name] = pair
        rows = {name: _on_columns(*pair) for name, pair in pairs.items()}
        # compiled linear members scored from the columns; if that does not answer alike (or there is
        # no such member), every member on its encoder
        candidates = [rows, {}] if any(row is not None for row in rows.values()) else [{}]
        check_rows = self._check_rows()
        probe = self.schema.from_rows(check_rows)
        # a sample of them alone too (every row alone would cost a load seconds for a column of
        # hundreds of categories; a one-row matrix has one layout, so the batch is the real test)
        step = max(1, len(check_rows) // SINGLE_CHECK_ROWS)
        singles = [self.schema.from_rows([row]) for row in check_rows[::step][:SINGLE_CHECK_ROWS]]
        self.row_ensemble = None
        for columns_forms in candidates:
            try:
                candidate = model.with_member_pipelines(
                    {name: RowMember(*pair, columns_forms.get(name)) for name, pair in pairs.items()}
                )
                if self._answers_equal((candidate, probe, {}), probe) and all(
                    self._answers_equal((candidate, one, {}), one) for one in singles
                ):
                    self.row_ensemble = candidate
                    return True
            except Exception:  # any doubt: keep the pipeline path
                log.debug("the blend's single-row path failed its check", exc_info=True)
        return False

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
