"""Compiled inference: the final estimator in a faster form, checked against scikit-learn.

Only the *final* estimator is compiled, on the matrix the feature encoder produces; the
encoder itself stays the pipeline's own (training and serving call the same one).  The
scikit-learn pipeline in ``model.joblib`` remains the reference: the compiled form is used
only where it gives the same answers.

Per algorithm (figures and the measurement command are in README's compiled-inference section):

- random_forest, extra_trees, gradient_boosting: onnxruntime, the trees as one float64 ONNX
  ``TreeEnsemble`` (:mod:`byoc.compiled_onnx`: why, and how the sums stay scikit-learn's);
  forests of more than 4 classes, and models trained before, on treelite's GTIL as below.
- random_forest, extra_trees on treelite: GTIL keeps the float64 thresholds and leaf
  values; the input is rounded to float32 first, as scikit-learn's trees do, so the branch
  taken is the same and the probabilities come out bit-identical in practice.
- gradient_boosting (HistGradientBoosting) on treelite (and, for the link and the category
  indices of onnxruntime forms written before they took the codes, on onnxruntime too): GTIL
  on float64 input (HistGradientBoosting compares float64 values), its raw scores turned into
  probabilities here by the same link as scikit-learn's (expit, softmax; treelite's own rounds
  to about 1e-7).  Categorical features
  (byoc's default whenever a text column exists): scikit-learn's model first maps each value
  to its index among the categories it saw (an unseen value, such as the encoder's unknown
  code -1, to missing), and its splits test those indices; treelite 4.8 tests the raw values
  and sends a negative one (the encoder's missing code -2, a category of its own for
  scikit-learn) the missing way.  So the value -> index mapping is done here
  (:func:`category_index`) and treelite gets a model whose category i is i.
- linear: its own coefficients multiplied out (:class:`LinearEstimator`, backend ``numpy``).
- knn: its own training matrix searched exactly (:class:`byoc.compiled_knn.NeighboursEstimator`,
  backend ``numpy``; scikit-learn answers the chunks of rows where rounding could decide).
- decision_tree: scikit-learn (a single tree already predicts a row in microseconds; treelite
  does not import it).
- svm: its support vectors' kernel values in numpy (:class:`byoc.compiled_svm.KernelMachine`,
  backend ``numpy``; scikit-learn answers the chunks of rows whose label rounding could change).
- ensemble: each member as above; the ensemble's own weighting is unchanged.

At training time :func:`build` converts the final estimators, stores the conversion and probe
rows (encoded training/validation rows) in ``model.compiled.npz`` and checks the answers on
those rows plus copies with each column set to the encoder's unknown (-1) and missing (-2)
codes (and NaN where the model takes NaN); :func:`load` checks again before serving.  Checked:
predicted labels equal exactly (argmax over the compiled probabilities, first index on ties,
as scikit-learn), every probability and regression value within ``ATOL + RTOL * |reference|``.
Any conversion error or disagreement keeps scikit-learn for that estimator, with the reason
logged and recorded in model.json under ``compiled``.
"""

from __future__ import annotations

import copy
import functools
import io
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit
from scipy.special import softmax as scipy_softmax
from sklearn.base import BaseEstimator
from sklearn.utils.extmath import softmax as sklearn_softmax

from byoc import artifact, compiled_knn, compiled_onnx, compiled_svm
from byoc.compiled_estimator import CompiledEstimator, dense_matrix

log = logging.getLogger(__name__)

COMPILED_FILE = artifact.COMPILED_FILE
ATOL = 1e-6  # probabilities and regression values: |compiled - scikit-learn| <= ATOL + RTOL * |scikit-learn|
RTOL = 1e-6
PROBE_ROWS = 500  # encoded rows kept per channel for the checks at training time and at load
PERTURBED_ROWS = 8  # rows copied per column with the unknown/missing codes
PERTURBED_COPIES = 1024  # at most this many copies per code: wide data sets several columns per copy
SCIKIT_LEARN = "scikit-learn"
TREELITE = "treelite"
NUMPY = (
    "numpy"  # a linear model's coefficients, knn's training matrix, svm's support vectors: no per-call checks
)
ONNXRUNTIME = "onnxruntime"  # forests: one ONNX TreeEnsemble in float64 (byoc.compiled_onnx)
COMPILED_BACKENDS = (TREELITE, NUMPY, ONNXRUNTIME)
MODEL_BACKENDS = (TREELITE, ONNXRUNTIME)  # those whose model bytes are stored in the compiled file

_KEPT_ON_SCIKIT_LEARN = {
    "DecisionTreeClassifier": "a single tree predicts a row in microseconds; treelite does not import it",
    "DecisionTreeRegressor": "a single tree predicts a row in microseconds; treelite does not import it",
}


def treelite_version() -> str:
    from importlib import metadata

    return metadata.version("treelite")


# -- the compiled estimator ----------------------------------------------------------------------
class TreeliteEstimator(CompiledEstimator):
    """A fitted tree ensemble's predict / predict_proba through treelite's GTIL.

    Duck-types the scikit-learn estimator it replaces (``classes_``, ``n_features_in_``,
    ``predict``, ``predict_proba``) so a Pipeline or the ensemble calls it unchanged.
    ``input_dtype`` is the precision the original compares in (float32 for forests).
    """

    def __init__(
        self,
        model: Any,
        input_dtype: str,
        classes: Any,
        n_features: int,
        categories: Sequence[tuple[int, np.ndarray]] = (),
        link: str | None = None,
    ) -> None:
        self.model = model
        self.input_dtype = input_dtype
        self.classes = classes
        self.n_features = n_features
        self.categories = categories
        self.link = link
        self.classes_ = None if classes is None else np.asarray(classes)
        self.n_features_in_ = int(n_features)
        self.category_table = CategoryTable.of(categories)
        self.gtil = _gtil(pred_margin=link is not None)

    def _scores(self, X: Any) -> np.ndarray:
        values = dense_matrix(X, self.input_dtype, self.n_features_in_)
        if not len(values):
            width = 1 if self.classes_ is None else len(self.classes_)
            return np.empty((0, width), dtype=np.float64)
        return self._shaped(self._raw(self._indexed(values)))

    def rows(self, X: Any) -> np.ndarray:
        """``X`` as the trees take it (one row or more)."""
        return self._indexed(dense_matrix(X, self.input_dtype, self.n_features_in_))

    def _indexed(self, values: np.ndarray) -> np.ndarray:
        """Float64 rows, categorical columns as category indices where the model takes those."""
        if self.category_table is not None:
            values = np.array(values, dtype=np.float64, order="C")  # indexed in place
            self.category_table.index(values)
        elif self.categories:
            values = np.array(values, dtype=np.float64, order="C")
            for column, known in self.categories:
                values[:, column] = category_index(values[:, column], known)
        else:
            values = np.ascontiguousarray(values, dtype=np.float64)
        return values

    @staticmethod
    def _shaped(raw: Any) -> np.ndarray:
        return np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)

    def _raw(self, values: np.ndarray) -> np.ndarray:
        """The trees' raw scores for float64 rows whose categorical columns hold category indices."""
        return self.gtil(self.model, values)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._proba(self._scores(X))

    def predict(self, X: Any) -> np.ndarray:
        return self._labels(self._scores(X))

    def proba_of(self, raw: np.ndarray) -> np.ndarray:
        """:meth:`predict_proba` from the trees' raw scores on :meth:`rows` (one row or more)."""
        return self._proba(self._shaped(raw))

    def predict_of(self, raw: np.ndarray) -> np.ndarray:
        """:meth:`predict` from the trees' raw scores on :meth:`rows` (one row or more)."""
        return self._labels(self._shaped(raw))

    def _proba(self, scores: np.ndarray) -> np.ndarray:
        if self.link == "softmax":
            return scipy_softmax(scores, axis=1)
        if self.link == "expit":
            scores = expit(scores)
        if self.classes_ is not None and len(self.classes_) == 2 and scores.shape[1] == 1:
            # binary boosting gives P(class 1); RowEnsemble._one_row: the same for one row in floats
            return np.concatenate((1.0 - scores, scores), axis=1)
        return scores

    def _labels(self, scores: np.ndarray) -> np.ndarray:
        if self.classes_ is None:
            return scores[:, 0]
        if self.link is not None:
            # HistGradientBoosting labels by its raw scores, as scikit-learn does: a binary score in
            # (0, 2.2e-16) has probabilities [0.5, 0.5], whose argmax would be the other class
            index = (scores[:, 0] > 0).astype(np.intp) if scores.shape[1] == 1 else np.argmax(scores, axis=1)
            return self.classes_.take(index)
        return self.classes_.take(np.argmax(self._proba(scores), axis=1))


class OnnxBoostingEstimator(TreeliteEstimator):
    """HistGradientBoosting's raw scores from onnxruntime (:func:`byoc.compiled_onnx.convert_boosting`:
    the same sums as scikit-learn's, to the bit), with :class:`TreeliteEstimator`'s link and
    predict around them; ``model`` is its :class:`byoc.compiled_onnx.Runner` (a session of its
    own, or its part of a joint one).  Forms written since the model takes the encoder's codes
    take no ``categories`` (:func:`restore`): no category indices to compute, which cost a request
    row more than the trees' walk in the server; older forms take the indices."""

    @property
    def run(self) -> compiled_onnx.Runner:
        return self.model

    def _raw(self, values: np.ndarray) -> np.ndarray:
        return self.model(values)


class LinearEstimator(CompiledEstimator):
    """A fitted LogisticRegression's or Ridge's predict / predict_proba without scikit-learn's
    per-call input validation (most of a one-row predict's time).

    The same arithmetic on the same arrays as scikit-learn's: ``X @ coef_.T + intercept_`` (a
    CSR row's stored entries summed in the same order, a dense row through the same matrix
    product), then, for LogisticRegression, its link: expit with the binary columns
    ``[1 - p, p]``, softmax for several classes.  Its input is the encoder's matrix, already a
    float64 array or CSR matrix of the model's width; anything else is refused.
    """

    def __init__(self, reference: Any) -> None:
        coef = np.asarray(reference.coef_)
        self.coef_t = coef.T if coef.ndim == 2 else coef
        self.intercept = reference.intercept_
        self.classes_ = getattr(reference, "classes_", None)
        self.n_features_in_ = int(reference.n_features_in_)

    def decision_function(self, X: Any) -> np.ndarray:
        if X.ndim != 2 or X.shape[1] != self.n_features_in_ or X.dtype != np.float64:
            raise ValueError(
                f"expected float64 rows of {self.n_features_in_} columns, got {X.dtype} {X.shape}"
            )
        return self.shaped(X @ self.coef_t + self.intercept)

    def shaped(self, scores: np.ndarray) -> np.ndarray:
        """A binary classifier's one column of scores as a vector, as scikit-learn gives them."""
        if self.classes_ is not None and scores.ndim > 1 and scores.shape[1] == 1:
            return scores.reshape(-1)
        return scores

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """LogisticRegression's link on :meth:`decision_function`'s scores."""
        if self.classes_ is None:
            raise AttributeError("a regression model has no predict_proba")
        if len(self.classes_) > 2:
            return sklearn_softmax(scores, copy=False)
        prob = expit(scores, out=scores)  # RowEnsemble._one_row: the same for one row in floats
        if prob.ndim == 1:  # np.stack([1 - prob, prob], axis=1), without its cost on a request row
            out = np.empty((len(prob), 2))
            out[:, 0] = 1 - prob
            out[:, 1] = prob
            return out
        return prob / prob.sum(axis=1).reshape((prob.shape[0], -1))  # never reached by byoc's models

    def labels(self, scores: np.ndarray) -> np.ndarray:
        """The predicted labels (or regression values) for :meth:`decision_function`'s scores."""
        if self.classes_ is None:
            return scores
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_.take(indices, axis=0)

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.probabilities(self.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        return self.labels(self.decision_function(X))

    def on_columns(self, encoder: Any) -> Any:
        """This model behind ``encoder`` (a :class:`byoc.preprocessing.RowEncoder`) as one estimator
        on a request's columns (:class:`byoc.compiled_linear.LinearRows`), or None where that
        would not sum as scikit-learn does."""
        from byoc.compiled_linear import LinearRows

        return LinearRows.of(encoder, self)


def _linear(estimator: Any) -> str | None:
    """Why this linear model keeps scikit-learn's own predict, or None when :class:`LinearEstimator`
    may stand in (checked against it, like a treelite model)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    name = type(estimator).__name__
    if type(estimator) not in (LogisticRegression, Ridge):
        return f"{name}: only LogisticRegression and Ridge are multiplied out"
    if np.asarray(estimator.coef_).dtype != np.float64:
        return f"{name}: its coefficients are not float64"
    return None


def category_index(column: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Each value's position among ``known`` (sorted), NaN for a value not among them.

    What HistGradientBoosting does to a categorical column before its trees see it (its
    internal OrdinalEncoder: unknown -> missing); done here so treelite only ever sees
    category indices 0..k-1 (it cannot take a negative category such as the encoder's
    missing code -2, which scikit-learn keeps as a category of its own).
    """
    position = np.searchsorted(known, column)
    hit = (position < len(known)) & (known[np.minimum(position, len(known) - 1)] == column)
    return np.where(hit, position, np.nan)


def _gtil(*, pred_margin: bool) -> Any:
    """treelite's GTIL predict on one thread, as ``f(model, rows)``.

    ``treelite.gtil.predict`` builds and parses its configuration (a dataclass turned into JSON,
    parsed by the C library) on every call: about 17 us of a 70 us one-row forest predict.  The
    configuration is built once here and handed to the function ``predict`` itself calls; where
    this treelite does not have those, the public ``predict``."""
    import treelite

    try:
        from treelite.gtil.gtil import GTILConfig, _predict_impl

        config = GTILConfig(nthread=1, predict_type="raw" if pred_margin else "default")
    except (ImportError, TypeError, AttributeError):
        return lambda model, rows: treelite.gtil.predict(model, rows, nthread=1, pred_margin=pred_margin)
    return lambda model, rows: _predict_impl(model, rows, config=config)


@dataclass(frozen=True)
class CategoryTable:
    """:func:`category_index` for every categorical column at once, by one table look-up:
    ``table[j, value - low]`` is the value's position among column j's known categories (NaN for
    none).  Only when every known category is an integer in a small range (the encoder's codes)."""

    columns: np.ndarray
    table: np.ndarray
    low: float

    @classmethod
    def of(cls, categories: Sequence[tuple[int, np.ndarray]]) -> CategoryTable | None:
        known = [np.asarray(k, dtype=np.float64) for _, k in categories]
        if not known or not all(len(k) and np.array_equal(k, np.floor(k)) for k in known):
            return None
        low, high = min(float(k[0]) for k in known), max(float(k[-1]) for k in known)
        if high - low > 4096:
            return None
        table = np.full((len(known), int(high - low) + 1), np.nan)
        for j, k in enumerate(known):
            table[j, (k - low).astype(np.intp)] = np.arange(len(k))
        return cls(np.asarray([c for c, _ in categories], dtype=np.intp), table, low)

    def index(self, values: np.ndarray) -> None:
        """Replace the categorical columns of ``values`` (rows x features) by category positions."""
        codes = values[:, self.columns]
        slot = codes - self.low
        valid = (codes == np.floor(codes)) & (slot >= 0) & (slot < self.table.shape[1])
        found = self.table[np.arange(len(self.columns)), np.where(valid, slot, 0).astype(np.intp)]
        found[~valid] = np.nan
        values[:, self.columns] = found


def _hist_categories(estimator: Any) -> list[tuple[int, np.ndarray]] | str:
    """(column, sorted known categories) per categorical feature of a HistGradientBoosting
    model, from its fitted internal OrdinalEncoder; or why it cannot be read."""
    mask = getattr(estimator, "is_categorical_", None)
    if mask is None or not np.any(mask):
        return []
    preprocessor = getattr(estimator, "_preprocessor", None)
    encoder = getattr(preprocessor, "named_transformers_", {}).get("encoder")
    categories = getattr(encoder, "categories_", None)
    columns = np.flatnonzero(mask)
    if categories is None or len(categories) != len(columns):
        return "its categorical encoding is not the one byoc reads (scikit-learn >= 1.4's)"
    known = [np.asarray(c, dtype=np.float64) for c in categories]
    return [(int(j), k[~np.isnan(k)]) for j, k in zip(columns, known, strict=True)]


def _indexed_categories(estimator: Any, categories: Sequence[tuple[int, np.ndarray]]) -> Any:
    """A shallow copy of a HistGradientBoosting model whose internal encoder maps category i to
    i, for treelite's importer: the model then takes :func:`category_index` of each value."""
    if not categories:
        return estimator
    indexed = copy.copy(estimator)
    indexed._preprocessor = copy.deepcopy(estimator._preprocessor)
    encoder = indexed._preprocessor.named_transformers_["encoder"]
    encoder.categories_ = [np.arange(len(known), dtype=np.float64) for _, known in categories]
    return indexed


def _link(estimator: Any) -> str | None:
    """For HistGradientBoosting classifiers: the link applied to treelite's raw scores here, as
    scikit-learn applies it (treelite's own transform rounds to about 1e-7)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    if not isinstance(estimator, HistGradientBoostingClassifier):
        return None
    return "expit" if len(estimator.classes_) == 2 else "softmax"


def convert(estimator: Any) -> tuple[str, bytes, str] | str:
    """(backend, model bytes, input dtype) -- empty bytes for the NUMPY backend (a linear, knn or svm
    model needs nothing beyond its own fitted arrays) -- or why this estimator stays on
    scikit-learn.  Forests and HistGradientBoosting go to onnxruntime where
    :mod:`byoc.compiled_onnx` takes them, else to treelite."""
    from sklearn import ensemble, linear_model

    name = type(estimator).__name__
    if isinstance(estimator, (linear_model.LogisticRegression, linear_model.Ridge)):
        why = _linear(estimator)
        return why if why is not None else (NUMPY, b"", NUMPY)
    if _is_neighbours(estimator):
        why = compiled_knn.unsupported(estimator)
        return why if why is not None else (NUMPY, b"", NUMPY)
    if compiled_svm.is_svm(estimator):
        why = compiled_svm.unsupported(estimator)
        return why if why is not None else (NUMPY, b"", NUMPY)
    if compiled_onnx.is_forest(estimator):
        dtype = "float32"  # scikit-learn's trees round their input to float32
        form = _onnx_form(estimator, compiled_onnx.unsupported(estimator), compiled_onnx.convert)
        if form is not None:
            return ONNXRUNTIME, form, dtype
    elif isinstance(
        estimator, (ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor)
    ):
        categories = _hist_categories(estimator)
        if isinstance(categories, str):
            return f"{name} with categorical features: {categories}"
        dtype = "float64"
        form = _onnx_form(
            estimator,
            compiled_onnx.missing(),
            lambda boosting: compiled_onnx.convert_boosting(boosting, categories),
        )
        if form is not None:
            return ONNXRUNTIME, form, dtype
        estimator = _indexed_categories(estimator, categories)
    else:
        return f"{name}: " + _KEPT_ON_SCIKIT_LEARN.get(name, "no compiled form is used for this estimator")
    if getattr(estimator, "n_outputs_", 1) != 1:
        return f"{name} with several outputs is not compiled"
    import treelite.sklearn

    try:
        model = treelite.sklearn.import_model(estimator)
    except Exception as exc:  # any converter failure means: keep scikit-learn
        log.debug("treelite could not convert %s", name, exc_info=True)
        return f"{name}: treelite could not convert it ({type(exc).__name__}: {exc})"
    return TREELITE, bytes(model.serialize_bytes()), dtype


def _onnx_form(estimator: Any, why_not: str | None, to_onnx: Callable[[Any], bytes]) -> bytes | None:
    """A tree model's onnxruntime form, or None (the reason logged) when treelite's is to be used."""
    name = type(estimator).__name__
    if why_not is None:
        try:
            return to_onnx(estimator)
        except Exception as exc:  # the treelite form may still do
            log.debug("the ONNX conversion of %s failed", name, exc_info=True)
            why_not = f"the ONNX conversion failed ({type(exc).__name__}: {exc})"
    log.info("compiled inference for %s: treelite, not onnxruntime (%s)", name, why_not)
    return None


def _is_neighbours(estimator: Any) -> bool:
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor

    return isinstance(estimator, (KNeighborsClassifier, KNeighborsRegressor))


def restore(
    backend: str, model_bytes: bytes, dtype: str, reference: Any, run: compiled_onnx.Runner | None = None
) -> BaseEstimator:
    """The compiled form of ``reference``; ``run``: an onnxruntime model's part of a
    :class:`byoc.compiled_onnx.Joint` session (:func:`load`), else it gets a session of its own."""
    if backend == ONNXRUNTIME and compiled_onnx.is_forest(reference):
        return compiled_onnx.ForestEstimator(model_bytes, reference, run)
    if backend == NUMPY and _is_neighbours(reference):
        return compiled_knn.NeighboursEstimator(reference)
    if backend == NUMPY and compiled_svm.is_svm(reference):
        return compiled_svm.KernelMachine(reference)
    if backend == NUMPY:
        why = _linear(reference)
        if why is not None:
            raise ValueError(why)
        return LinearEstimator(reference)
    categories = _hist_categories(reference)
    if isinstance(categories, str):
        raise ValueError(categories)
    if backend == ONNXRUNTIME:
        kind: type[TreeliteEstimator] = OnnxBoostingEstimator
        model: Any = run or compiled_onnx.Runner(compiled_onnx.session(model_bytes))
        if model.kind == compiled_onnx.TAKES_CODES:
            categories = []  # its splits test the encoder's codes
    else:
        import treelite

        kind, model = TreeliteEstimator, treelite.Model.deserialize_bytes(model_bytes)
    return kind(
        model,
        dtype,
        getattr(reference, "classes_", None),
        reference.n_features_in_,
        categories,
        _link(reference),
    )


# -- checking ------------------------------------------------------------------------------------
def takes_nan(estimator: Any) -> bool:
    """Whether the encoder passes NaN to this estimator (models that handle missing values)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    return isinstance(estimator, (HistGradientBoostingClassifier, HistGradientBoostingRegressor))


def probe_matrix(rows: np.ndarray, with_nan: bool) -> np.ndarray:
    """The stored rows plus copies with each column set to the codes the encoder can emit.

    Each column gets each code on up to :data:`PERTURBED_ROWS` copies of the first rows, but a
    code's copies number at most :data:`PERTURBED_COPIES`: past that, each copy sets several
    columns (every column still at least once), so the matrix grows linearly with the columns
    where one copy per (row, column) grew with their square (2,000 columns: 32,000 rows of 2,000,
    12 s of checks at training and again when serving loads the model).
    """
    rows = np.asarray(rows, dtype=np.float64)
    base = rows[:PERTURBED_ROWS]
    if not len(base) or not rows.shape[1]:
        return rows
    columns = rows.shape[1]
    pairs = len(base) * columns
    if pairs <= PERTURBED_COPIES:  # copy k: column k // len(base) on base row k % len(base)
        copies = np.arange(pairs)
        mask = np.zeros((pairs, columns), dtype=bool)
        mask[copies, copies // len(base)] = True
    else:  # copy k: column k % columns, and every column c with c % PERTURBED_COPIES == k
        copies = np.arange(PERTURBED_COPIES)
        mask = np.zeros((PERTURBED_COPIES, columns), dtype=bool)
        mask[copies, copies % columns] = True
        mask[np.arange(columns) % PERTURBED_COPIES, np.arange(columns)] = True
    template = base[copies % len(base)]
    fills = [-1.0, -2.0] + ([np.nan] if with_nan else [])
    parts = [rows]
    for fill in fills:
        part = template.copy()
        part[mask] = fill
        parts.append(part)
    return np.vstack(parts)


def disagreement(reference: Any, compiled: Any, X: np.ndarray) -> str | None:
    """None when ``compiled`` answers like ``reference`` on ``X``; else what differs, for the log."""
    is_classifier = hasattr(reference, "classes_")
    if is_classifier:
        expected_labels = np.asarray(reference.predict(X))
        got_labels = np.asarray(compiled.predict(X))
        if got_labels.shape != expected_labels.shape or not np.array_equal(got_labels, expected_labels):
            bad = (
                int(np.sum(got_labels != expected_labels))
                if got_labels.shape == expected_labels.shape
                else -1
            )
            return f"predicted labels differ on {bad} of {len(X)} check rows"
        expected = np.asarray(reference.predict_proba(X), dtype=np.float64)
        got = np.asarray(compiled.predict_proba(X), dtype=np.float64)
        what = "probabilities"
    else:
        expected = np.asarray(reference.predict(X), dtype=np.float64)
        got = np.asarray(compiled.predict(X), dtype=np.float64)
        what = "predicted values"
    if got.shape != expected.shape:
        return f"{what} have shape {got.shape}, scikit-learn's {expected.shape}"
    if not np.allclose(got, expected, rtol=RTOL, atol=ATOL, equal_nan=True):
        worst = float(np.nanmax(np.abs(got - expected)))
        return f"{what} differ by up to {worst:.3g} (tolerance {ATOL:g} + {RTOL:g} x |value|)"
    return None


# -- the model's slots ---------------------------------------------------------------------------
def is_ensemble(estimator: Any) -> bool:
    from byoc.algorithms.ensemble import _CVWeightedEnsemble

    return isinstance(estimator, _CVWeightedEnsemble)


def final_estimator(pipeline: Any) -> Any:
    """The pipeline's last step (the estimator that may be compiled), or the estimator itself."""
    return pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline


def _encoder(pipeline: Any) -> Any:
    return pipeline[:-1] if hasattr(pipeline, "steps") and len(pipeline.steps) > 1 else None


MEMBER = "member:"  # a slot's prefix for a member of a model made of members


def slots(pipeline: Any) -> list[tuple[str, Any]]:
    """(name, sub-pipeline whose final step may be compiled): the model, or each member of a model
    made of members (the ``ensemble`` algorithm, an AutoML blend or stack: ``member_pipelines``)."""
    members = getattr(final_estimator(pipeline), "member_pipelines", None)
    if members is not None:
        return [(f"{MEMBER}{name}", member) for name, member in members()]
    return [("model", pipeline)]


def _encoded(sub_pipeline: Any, frame: Any) -> np.ndarray:
    encoder = _encoder(sub_pipeline)
    X = frame if encoder is None else encoder.transform(frame)
    X = X.toarray() if hasattr(X, "toarray") else np.asarray(X)
    return np.asarray(X, dtype=np.float64)


@dataclass
class CompiledModel:
    """What :func:`build` decided: the file's contents and model.json's ``compiled`` entry."""

    entry: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def files(self) -> dict[str, bytes]:
        """{file name: bytes} to store beside model.joblib (nothing when nothing compiled)."""
        if not self.arrays:
            return {}
        buffer = io.BytesIO()
        # numpy's stub types **kwds as if one could be savez's own allow_pickle (a bool); not every numpy
        # this project allows has that parameter, so it cannot be passed: the arrays go in as a mapping.
        arrays: dict[str, Any] = dict(self.arrays)
        np.savez(buffer, **arrays)
        return {COMPILED_FILE: buffer.getvalue()}


def _summary(steps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    compiled = [s for s in steps if s["backend"] in COMPILED_BACKENDS]
    return {
        "file": COMPILED_FILE if compiled else None,
        "tolerance": {"atol": ATOL, "rtol": RTOL, "labels": "equal"},
        "steps": list(steps),
    }


def build(
    pipeline: Any,
    frames: Sequence[Any],
    *,
    enabled: bool = True,
    disabled_because: str = "compiled_inference=false",
    deadline: float | None = None,
    stopped: Callable[[], str | None] | None = None,
) -> CompiledModel:
    """Convert and check the final estimator(s) of a fitted pipeline on sample rows of ``frames``.

    ``frames`` are raw feature frames as the pipeline takes them (training, validation);
    up to :data:`PROBE_ROWS` rows of each are encoded and kept for the check at load.  Past
    ``deadline`` (``time.monotonic()``; an AutoML job's budget) the slots not yet converted stay
    scikit-learn's, each with that reason.  With a deadline or ``stopped`` (why the job was
    stopped, None while it was not: an AutoML job's SIGTERM), a slot's conversion — which cannot
    be interrupted, and took 5-7 s for one boosting model — runs in a thread that is abandoned
    when either comes: that slot and the rest stay scikit-learn's and the model is saved.
    """
    if not enabled:
        if disabled_because != "compiled_inference=false":
            log.info("compiled inference: scikit-learn (%s)", disabled_because)
        return CompiledModel(_summary([{"slot": "all", "backend": SCIKIT_LEARN, "reason": disabled_because}]))
    steps: list[dict[str, Any]] = []
    arrays: dict[str, np.ndarray] = {}
    for index, (slot, sub) in enumerate(slots(pipeline)):
        estimator = final_estimator(sub)
        step: dict[str, Any] = {"slot": slot, "estimator": type(estimator).__name__}
        why_stopped = stopped() if stopped is not None else None
        if why_stopped is not None:
            reason: str | None = f"{why_stopped}: this step was not compiled"
        elif deadline is not None and time.monotonic() >= deadline:
            reason = "the time budget ran out before this step was compiled"
        elif deadline is None and stopped is None:
            reason, backend, model_bytes, dtype, probe = _compile_slot(index, sub, estimator, frames)
        else:
            reason, backend, model_bytes, dtype, probe = _until(
                functools.partial(_compile_slot, index, sub, estimator, frames), deadline, stopped
            )
        if reason is None:
            step.update(backend=backend, input_dtype=dtype, key=str(index))
            if backend in MODEL_BACKENDS:
                version = treelite_version() if backend == TREELITE else compiled_onnx.onnxruntime_version()
                step.update(version=version)
                arrays[f"model_{index}"] = np.frombuffer(model_bytes, dtype=np.uint8)
            arrays[f"probe_{index}"] = probe
            log.info("compiled inference for %s (%s): %s", slot, step["estimator"], step["backend"])
        else:
            step.update(backend=SCIKIT_LEARN, reason=reason)
            log.info("compiled inference for %s: scikit-learn (%s)", slot, reason)
        steps.append(step)
    return CompiledModel(_summary(steps), arrays)


_Slot = tuple[str | None, str, bytes, str, np.ndarray]


def _compile_slot(index: int, sub: Any, estimator: Any, frames: Sequence[Any]) -> _Slot:
    """(why not compiled or None, backend, model bytes, input dtype, probe rows) for one slot."""
    converted = convert(estimator)
    if isinstance(converted, str):
        return converted, SCIKIT_LEARN, b"", "", np.empty(0)
    backend, model_bytes, dtype = converted
    probe = np.empty(0)
    try:
        probe = np.vstack([_encoded(sub, frame.iloc[:PROBE_ROWS]) for frame in frames])
        compiled = restore(backend, model_bytes, dtype, estimator)
        reason = disagreement(estimator, compiled, probe_matrix(probe, takes_nan(estimator)))
    except Exception as exc:  # a failed check keeps scikit-learn
        log.debug("the compiled form of step %s failed its check", index, exc_info=True)
        reason = f"the check failed ({type(exc).__name__}: {exc})"
    return reason, backend, model_bytes, dtype, probe


def _until(
    work: Callable[[], _Slot], deadline: float | None, stopped: Callable[[], str | None] | None
) -> _Slot:
    """``work()``'s result, or a reason to keep scikit-learn when ``deadline`` passes or
    ``stopped`` says why first (the thread is left to end on its own: a daemon, its result unused)."""
    import threading

    outcome: list[_Slot] = []
    failure: list[Exception] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:  # raised again in the caller's thread, as without one
            log.debug("compiling a step raised", exc_info=True)
            failure.append(exc)

    thread = threading.Thread(target=run, name="byoc-compile", daemon=True)
    started = time.monotonic()
    thread.start()
    while thread.is_alive():
        thread.join(0.05)
        if thread.is_alive():
            why = stopped() if stopped is not None else None
            if why is None and deadline is not None and time.monotonic() >= deadline:
                why = "the time budget ran out"
            if why is not None:
                abandoned = f"{why}: its compilation was abandoned after {time.monotonic() - started:.1f} s"
                return abandoned, SCIKIT_LEARN, b"", "", np.empty(0)
    if failure:
        raise failure[0]
    return outcome[0]


# -- at load -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Loaded:
    """The pipeline to predict with and what was compiled (for the log and /ping-time checks)."""

    pipeline: Any
    compiled: tuple[str, ...]
    reasons: Mapping[str, str]
    backends: Mapping[str, str] = field(default_factory=dict)  # slot -> backend, for the compiled ones


def _with_final(sub: Any, final: Any) -> Any:
    from sklearn.pipeline import Pipeline

    if not hasattr(sub, "steps"):
        return final
    return Pipeline(list(sub.steps[:-1]) + [(sub.steps[-1][0], final)])


def attach(pipeline: Any, replacements: Mapping[str, Any]) -> Any:
    """A copy of ``pipeline`` whose slots named in ``replacements`` predict with the compiled form.

    The fitted scikit-learn objects are shared, not copied; only the containers are new.
    """
    if not replacements:
        return pipeline
    final = final_estimator(pipeline)
    if not hasattr(final, "with_member_pipelines"):
        return _with_final(pipeline, replacements["model"])
    members = {
        name: _with_final(member, replacements[f"{MEMBER}{name}"])
        for name, member in final.member_pipelines()
        if f"{MEMBER}{name}" in replacements
    }
    return _with_final(pipeline, final.with_member_pipelines(members))


def load(pipeline: Any, metadata: Mapping[str, Any], model_dir: Path | None) -> Loaded:
    """The pipeline with every compiled step that still agrees with scikit-learn attached.

    A model without a compiled file (trained before compiled inference, or with
    compiled_inference=false) loads as it is.  The file's sha256 is checked by
    :func:`byoc.artifact.load`, like model.joblib's.
    """
    entry = metadata.get("compiled") or {}
    reasons = {
        str(step.get("slot")): str(step.get("reason"))
        for step in entry.get("steps", [])
        if step.get("backend") not in COMPILED_BACKENDS
    }
    if not entry.get("file") or model_dir is None:
        return Loaded(pipeline, (), reasons or {"all": "the model has no compiled form"})
    replacements: dict[str, Any] = {}
    with np.load(Path(model_dir) / str(entry["file"]), allow_pickle=False) as stored:
        by_slot = dict(slots(pipeline))
        parts = _joint_parts(stored, entry.get("steps", [])) if is_ensemble(final_estimator(pipeline)) else {}
        for step in entry.get("steps", []):
            if step.get("backend") not in COMPILED_BACKENDS:
                continue
            slot, key = str(step["slot"]), str(step["key"])
            try:
                reference = final_estimator(by_slot[slot])
                backend = str(step["backend"])
                model_bytes = stored[f"model_{key}"].tobytes() if backend in MODEL_BACKENDS else b""
                compiled = restore(backend, model_bytes, str(step["input_dtype"]), reference, parts.get(slot))
                probe = probe_matrix(stored[f"probe_{key}"], takes_nan(reference))
                reason = disagreement(reference, compiled, probe)
            except Exception as exc:  # any doubt: scikit-learn answers
                log.debug("the compiled form of %s cannot be loaded", slot, exc_info=True)
                reason = f"cannot be loaded ({type(exc).__name__}: {exc})"
            if reason is None:
                replacements[slot] = compiled
            else:
                reasons[slot] = reason
                log.warning("compiled inference for %s is off: %s; scikit-learn answers", slot, reason)
    backends = {str(step["slot"]): str(step["backend"]) for step in entry.get("steps", [])}
    return Loaded(
        attach(pipeline, replacements),
        tuple(replacements),
        reasons,
        {slot: backends[slot] for slot in replacements},
    )


def _joint_parts(stored: Any, steps: Sequence[Mapping[str, Any]]) -> dict[str, compiled_onnx.Runner]:
    """An ensemble's onnxruntime members as one :class:`byoc.compiled_onnx.Joint` session, so its
    row path runs them in one call: slot -> that member's part.  Empty for fewer than two such
    members, or when the joint model cannot be made (each member then gets a session of its own)."""
    onnx_steps = [step for step in steps if step.get("backend") == ONNXRUNTIME]
    if len(onnx_steps) < 2:
        return {}
    try:
        joint = compiled_onnx.Joint([stored[f"model_{step['key']}"].tobytes() for step in onnx_steps])
    except Exception:  # each member on its own session, as before
        log.warning("compiled inference: the ensemble's onnxruntime members run apart", exc_info=True)
        return {}
    return {str(step["slot"]): joint.part(i) for i, step in enumerate(onnx_steps)}


def describe(loaded: Loaded) -> str:
    """One log line: what predicts with what."""
    parts = [f"{slot}={loaded.backends.get(slot, TREELITE)}" for slot in loaded.compiled]
    parts += [f"{slot}=scikit-learn ({reason})" for slot, reason in loaded.reasons.items()]
    return json.dumps(parts)
