"""svm's compiled form: a fitted kernel SVM's answers from its support vectors in numpy.

libsvm predicts a row by walking every support vector's stored values one at a time (2.2 ms of a
one-row request for the benchmarks' 10,000-row model, 5,507 support vectors); here the kernel
values of a row against every support vector come from one matrix product (for one row, over
the row's non-zero columns only: a one-hot block is mostly zeros), then the same formulas as
scikit-learn's:

- kernels: rbf ``exp(-gamma ||x - s||^2)`` (the squared distance as ``||x||^2 + ||s||^2 - 2 x.s``
  clipped at 0), linear ``x.s``, poly ``(gamma x.s + coef0)^degree``, sigmoid
  ``tanh(gamma x.s + coef0)``;
- decision values: per pair of classes (libsvm's one-against-one order; for two classes
  scikit-learn's sign) the support vectors' dual coefficients times their kernel values, plus
  the intercept; for SVR that sum is the prediction;
- :class:`~byoc.algorithms.builtin.CalibratedSVC`: scikit-learn's one-vs-rest transform of the
  pairwise values (its own ``_ovr_decision_function``, called), each class's sigmoid calibrator
  ``expit(-(a f + b))``, two classes as ``[1 - p, p]``, more normalised to sum 1 (uniform where
  every class gets 0), the label their argmax (first class on ties).

libsvm sums in another order, so a value here differs from scikit-learn's by rounding, bounded
per row (:meth:`KernelMachine._decisions`).  Where that bound could change a label -- a pairwise
decision value within it of 0 (a vote), or the two most probable classes within it of each
other -- scikit-learn answers that chunk of rows (:class:`Ambiguous`), so every label is
scikit-learn's and every probability or value is within the compiled checks' tolerance.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.special import expit

from byoc.compiled_estimator import CompiledEstimator, dense_matrix
from byoc.compiled_rows import OnColumns, OneHotRows
from byoc.preprocessing import RowEncoder

EPS = float(np.finfo(np.float64).eps)
MAX_CELLS = 2**22  # support vectors x columns held dense per worker: 32 MiB of float64
CHUNK_CELLS = 2**20  # rows x support vectors per block of kernel values: 8 MiB of float64
SAFETY = 4.0  # the rounding bounds below are first-order; this covers their neglected terms
TIE = 1e-12  # probabilities: a gap this small is a tie whatever the bound says
KERNELS = ("rbf", "linear", "poly", "sigmoid")


class Ambiguous(Exception):
    """A chunk of rows whose label rounding could change: scikit-learn answers it."""


def is_svm(estimator: Any) -> bool:
    """Whether ``estimator`` is one of byoc's svm models (CalibratedSVC or SVR)."""
    from sklearn.svm import SVR

    from byoc.algorithms.builtin import CalibratedSVC

    return isinstance(estimator, (CalibratedSVC, SVR))


def _parts(estimator: Any) -> tuple[Any, list[Any]]:
    """(the fitted SVC or SVR, the sigmoid calibrators: none for SVR)."""
    from sklearn.svm import SVR

    if isinstance(estimator, SVR):
        return estimator, []
    (calibrated,) = estimator.calibrated_classifiers_
    return calibrated.estimator, list(calibrated.calibrators)


def unsupported(estimator: Any) -> str | None:
    """Why this fitted svm model keeps libsvm's own predict, or None."""
    name = type(estimator).__name__
    if len(getattr(estimator, "calibrated_classifiers_", [None])) != 1:
        return f"{name}: calibrated by several classifiers (ensemble=True); only one is computed here"
    if getattr(estimator, "method", "sigmoid") != "sigmoid":
        return f"{name}: calibration method {estimator.method!r}; only sigmoid is computed here"
    machine, calibrators = _parts(estimator)
    if machine.kernel not in KERNELS:
        return f"{name}: kernel {machine.kernel!r}; only {', '.join(KERNELS)} are computed here"
    if getattr(machine, "_gamma", None) is None:
        return f"{name}: its fitted kernel coefficient (gamma) is not readable"
    if any(not (hasattr(c, "a_") and hasattr(c, "b_")) for c in calibrators):
        return f"{name}: its calibrators are not sigmoid ones (a_, b_)"
    if getattr(machine, "decision_function_shape", "ovr") != "ovr":
        return f"{name}: decision_function_shape={machine.decision_function_shape!r}; only ovr"
    cells = int(np.prod(machine.support_vectors_.shape))
    if cells > MAX_CELLS:
        return f"{name}: {cells} support-vector cells, more than {MAX_CELLS} to hold dense"
    return None


def _pair_weights(dual: np.ndarray, n_support: np.ndarray) -> np.ndarray:
    """libsvm's one-against-one coefficients as one (support vectors, pairs) matrix: for the pair
    (i, j), class i's support vectors weigh ``dual[j - 1]``, class j's ``dual[i]``, others 0."""
    classes = len(n_support)
    start = np.concatenate([[0], np.cumsum(n_support)])
    pairs = [(i, j) for i in range(classes) for j in range(i + 1, classes)]
    weights = np.zeros((dual.shape[1], len(pairs)))
    for p, (i, j) in enumerate(pairs):
        weights[start[i] : start[i + 1], p] = dual[j - 1, start[i] : start[i + 1]]
        weights[start[j] : start[j + 1], p] = dual[i, start[j] : start[j + 1]]
    return weights


def _dense(values: Any) -> np.ndarray:
    return np.asarray(values.toarray() if hasattr(values, "toarray") else values, dtype=np.float64)


class KernelMachine(CompiledEstimator):
    """A fitted CalibratedSVC's or SVR's predict / predict_proba from its support vectors."""

    searches_dense_rows = True  # the server's row path hands it dense rows (no CSR row built)

    def __init__(self, reference: Any) -> None:
        why = unsupported(reference)
        if why is not None:
            raise ValueError(why)
        self.reference = reference
        machine, calibrators = _parts(reference)
        vectors = _dense(machine.support_vectors_)
        self.vectors_t = np.ascontiguousarray(vectors.T)  # (columns, support vectors)
        # one-hot columns (every support vector holds 0 or 1): as bytes, for one row's dots
        indicator = ((vectors == 0.0) | (vectors == 1.0)).all(axis=0)
        self.indicator_columns = np.flatnonzero(indicator)
        self.indicators_t = self.vectors_t[self.indicator_columns].astype(np.int8)
        # per input column, its place among the one-hot columns (a row of indicators_t), or -1
        self.indicator_place = np.full(vectors.shape[1], -1, dtype=np.intp)
        self.indicator_place[self.indicator_columns] = np.arange(len(self.indicator_columns))
        self.other_columns = np.flatnonzero(~indicator)
        self.others_t = np.ascontiguousarray(self.vectors_t[self.other_columns])
        self.norms = np.einsum("ij,ij->i", vectors, vectors)
        self.root_norms = np.sqrt(self.norms)
        self.kernel, self.gamma = machine.kernel, float(machine._gamma)
        self.coef0, self.degree = float(machine.coef0), int(machine.degree)
        dual = _dense(machine.dual_coef_)  # sparse, like the support vectors, when fitted on CSR
        binary_or_regression = dual.shape[0] == 1
        self.weights = dual.T.copy() if binary_or_regression else _pair_weights(dual, machine.n_support_)
        self.abs_weights = np.abs(self.weights)
        # rbf: decision values, their magnitudes and the norm-weighted magnitudes in one product
        # (kernel values are >= 0), in place of an errors row and two more products per request
        self.rbf_weights = np.hstack([self.weights, self.abs_weights, self.norms[:, None] * self.abs_weights])
        self.intercept = np.asarray(machine.intercept_, dtype=np.float64)
        self.n_features_in_ = int(machine.n_features_in_)
        self.classes_ = getattr(reference, "classes_", None)
        if self.classes_ is not None:
            # which class each calibrator scores (scikit-learn's LabelEncoder over the classes)
            self.scored = np.searchsorted(self.classes_, machine.classes_)
            self.a = np.array([c.a_ for c in calibrators], dtype=np.float64)
            self.b = np.array([c.b_ for c in calibrators], dtype=np.float64)

    # -- kernel values and decision values -------------------------------------------------------
    def _decisions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(decision values, a bound on their rounding difference from libsvm's) per row and output.

        The bound adds, per support vector, each side's error of the kernel value (a dot product
        of ``w`` terms errs by at most ``w EPS`` of the sum of their magnitudes, at most
        ``||x|| ||s||``; the squared distance by ``(w + 4) EPS (||x||^2 + ||s||^2)``), weighed by
        the dual coefficients' magnitudes, and each side's error of summing ``m`` terms
        (``m EPS`` of their magnitudes), times :data:`SAFETY`."""
        width = self.n_features_in_
        if self.kernel == "rbf":
            if len(X) == 1:
                products, norm = self._rbf_row(X[0])
                return self._rbf_bounded(np.asarray(products)[None, :], norm)
            row_norms = np.einsum("ij,ij->i", X, X)[:, None]
            distances = row_norms + self.norms - 2.0 * (X @ self.vectors_t)
            np.maximum(distances, 0.0, out=distances)
            distances *= -self.gamma
            values = np.exp(distances, out=distances)
            return self._rbf_bounded(values @ self.rbf_weights, row_norms)
        if len(X) == 1:
            dots = self._row_dots(X[0])[None, :]
        else:
            dots = X @ self.vectors_t
        row_norms = np.einsum("ij,ij->i", X, X)[:, None]
        magnitude = np.sqrt(row_norms) * self.root_norms
        dot_error = 2 * width * EPS * magnitude
        if self.kernel == "linear":
            values, errors = dots, dot_error
        else:
            base = self.gamma * dots + self.coef0
            base_error = self.gamma * dot_error + 4 * EPS * (np.abs(self.gamma * dots) + abs(self.coef0))
            if self.kernel == "poly":
                values = base**self.degree
                errors = self.degree * (np.abs(base) + base_error) ** (
                    self.degree - 1
                ) * base_error + 4 * self.degree * EPS * np.abs(values)
            else:  # sigmoid: tanh' <= 1
                values = np.tanh(base)
                errors = base_error + 4 * EPS
        decisions = values @ self.weights + self.intercept
        magnitudes = np.abs(values) @ self.abs_weights + np.abs(self.intercept)
        bound = SAFETY * (errors @ self.abs_weights + 2 * (len(self.norms) + 2) * EPS * magnitudes)
        return decisions, bound

    def _checked_decisions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_decisions`, or Ambiguous where one is not finite: a finite row whose squared
        norm or kernel value overflows (``|x|`` past about 1e154) makes ``inf - inf`` here, NaN,
        which no bound test catches (NaN compares false), where libsvm's own order of operations
        gives a number."""
        decisions, bound = self._decisions(X)
        if not (np.isfinite(decisions).all() and np.isfinite(bound).all()):
            raise Ambiguous
        return decisions, bound

    def _row_dots(self, row: np.ndarray, ones: np.ndarray | None = None) -> np.ndarray:
        """One request row's dot product with every support vector.

        A one-hot block is mostly zeros, and its ones meet support vectors' 0s and 1s: where the
        row holds only 0s and 1s in the one-hot columns, their part of the dots is a count of
        the support vectors' ones (exact), summed over the few columns set, from bytes -- an
        eighth of the memory a float64 copy of those columns would move -- plus one product over
        the other columns.  Otherwise only the row's non-zero columns enter one product.
        ``ones``: the places of the row's ones among those columns, when the caller knows them
        and that the others hold 0 (:class:`KernelRows`)."""
        if ones is None:
            indicators = row[self.indicator_columns]
            set_ = indicators == 1.0
            if np.count_nonzero(set_) + np.count_nonzero(indicators == 0.0) == len(indicators):
                ones = np.flatnonzero(set_)
        if ones is not None:
            dots = row[self.other_columns] @ self.others_t
            chosen = self.indicators_t[ones]
            # summed as bytes while the count fits (a reduction that casts to float is 8x slower)
            dots += np.add.reduce(chosen, axis=0, dtype=np.int8 if len(chosen) < 128 else np.int64)
            return dots
        columns = np.flatnonzero(row)
        return row[columns] @ self.vectors_t[columns]

    def _rbf_row(self, row: np.ndarray, ones: np.ndarray | None = None) -> tuple[list[float], float]:
        """One request row's ``values @ rbf_weights`` (as floats) and its squared norm.

        The dots come from :meth:`_row_dots` and the squared distances are formed in place: for
        one row the arrays' allocation, not the arithmetic, was what took the time after the
        dots themselves."""
        distances = self._row_dots(row, ones)
        norm = float(row @ row)
        distances *= -2.0
        distances += self.norms
        distances += norm
        np.maximum(distances, 0.0, out=distances)
        distances *= -self.gamma
        np.exp(distances, out=distances)
        return (distances @ self.rbf_weights).tolist(), norm

    def _rbf_bounded(self, products: Any, row_norms: Any) -> tuple[Any, Any]:
        """rbf decision values and their rounding bound (see :meth:`_decisions`) from the
        products with :attr:`rbf_weights`: arrays (rows, 3 outputs) or, for one binary or
        regression row, three floats -- the same formula either way.

        Per support vector the kernel value errs by values * (c (||x||^2 + ||s||^2) + 4 EPS);
        weighed by |dual|, that is (c ||x||^2 + 4 EPS) sum(values |w|) + c sum(values ||s||^2 |w|)."""
        outputs = self.weights.shape[1]
        intercept: Any
        if isinstance(products, list):
            (total, weighed, norm_weighed), intercept = products, float(self.intercept[0])
        else:
            total, intercept = products[:, :outputs], self.intercept
            weighed, norm_weighed = products[:, outputs : 2 * outputs], products[:, 2 * outputs :]
        c = self.gamma * 2 * (self.n_features_in_ + 4) * EPS
        errors_weighed = (c * row_norms + 4 * EPS) * weighed + c * norm_weighed
        magnitudes = weighed + abs(intercept)
        bound = SAFETY * (errors_weighed + 2 * (len(self.norms) + 2) * EPS * magnitudes)
        return total + intercept, bound

    def _sigmoid_input(self, scores: Any, bound: Any) -> tuple[Any, Any]:
        """Two classes: the calibrator's ``a f + b`` and a bound on its rounding difference."""
        a, b = float(self.a[0]), float(self.b[0])
        z = a * scores + b
        return z, abs(a) * bound + 4 * EPS * (abs(a * scores) + abs(b))

    def _one_rbf_row(self, X: Any) -> np.ndarray | None:
        """``X``'s one row, when it is a single finite row of an rbf machine with one output
        (two classes, or regression): :meth:`predict_proba` and :meth:`predict` then answer it
        in floats, without the batch path's arrays of one element."""
        if self.kernel != "rbf" or self.weights.shape[1] != 1 or hasattr(X, "toarray"):
            return None
        values = np.asarray(X, dtype=np.float64)
        if values.shape != (1, self.n_features_in_) or not np.isfinite(values).all():
            return None
        return values[0]

    def _chunks(self, X: Any) -> list[np.ndarray]:
        values = dense_matrix(X, np.float64, self.n_features_in_)
        step = max(1, CHUNK_CELLS // max(1, len(self.norms)))
        return [values[start : start + step] for start in range(0, len(values), step)] or [values]

    # -- classification --------------------------------------------------------------------------
    def _proba_chunk(self, X: np.ndarray) -> np.ndarray:
        decisions, bound = self._checked_decisions(X)
        assert self.classes_ is not None  # predict_proba refuses a regressor before
        classes = len(self.classes_)
        proba = np.zeros((len(X), classes))
        if classes == 2:
            z, z_error = self._sigmoid_input(decisions[:, 0], bound[:, 0])
            if np.any(np.abs(z) <= 2 * z_error + TIE):
                raise Ambiguous
            proba[:, 1] = expit(-z)
            proba[:, 0] = 1.0 - proba[:, 1]
            return proba
        from sklearn.utils.multiclass import _ovr_decision_function

        if np.any(np.abs(decisions) <= bound):  # a vote rounding could turn
            raise Ambiguous
        confidences = _ovr_decision_function(decisions < 0, -decisions, classes)
        for k, (scored, a, b) in enumerate(zip(self.scored, self.a, self.b, strict=True)):
            proba[:, scored] = expit(-(a * confidences[:, k] + b))
        total = proba.sum(axis=1)[:, None]
        # per class: its pairs' errors, through s / (3 (|s| + 1)) (slope <= 1/3) and the sigmoid (<= |a| / 4)
        involved = bound.sum(axis=1)[:, None]
        error = (np.abs(self.a)[None, :] / 4) * (involved / 3 + 4 * EPS) + 4 * EPS
        if np.any(total < 1e-300):
            raise Ambiguous
        normalised = proba / total
        spread = (error.max(axis=1) + error.sum(axis=1)) / total[:, 0]  # q / sum(q): both parts err
        top = np.sort(normalised, axis=1)[:, -2:]
        if np.any(top[:, 1] - top[:, 0] <= 2 * spread + TIE):
            raise Ambiguous
        return normalised

    def _rbf_proba_row(self, row: np.ndarray, ones: np.ndarray | None = None) -> np.ndarray:
        """Two classes' probabilities of one rbf row (:meth:`_one_rbf_row`), in floats."""
        products, norm = self._rbf_row(row, ones)
        z, z_error = self._sigmoid_input(*self._rbf_bounded(products, norm))
        if abs(z) > 2 * z_error + TIE:
            positive = float(expit(-z))
            return np.array([[1.0 - positive, positive]])
        return np.asarray(self.reference.predict_proba(row[None, :]), dtype=np.float64)

    def _rbf_value_row(self, row: np.ndarray, ones: np.ndarray | None = None) -> np.ndarray:
        """A regression's value of one rbf row (:meth:`_one_rbf_row`), in floats."""
        value = self._rbf_bounded(*self._rbf_row(row, ones))[0]
        if math.isfinite(value):
            return np.array([value])
        return np.asarray(self.reference.predict(row[None, :]), dtype=np.float64)

    def answer_row(self, X: np.ndarray, ones: np.ndarray, method: str) -> np.ndarray:
        """``method`` (predict or predict_proba) of one encoded row ``X`` whose one-hot columns
        are zeros but at ``ones`` (their places among them, from :class:`KernelRows`): the
        float path without looking for its ones again, where the model has one."""
        row = self._one_rbf_row(X)
        if row is None or (method == "predict_proba" and self.classes_ is None):
            return np.asarray(getattr(self, method)(X))
        if self.classes_ is None:
            return self._rbf_value_row(row, ones)
        proba = self._rbf_proba_row(row, ones)
        return proba if method == "predict_proba" else self.classes_.take(proba.argmax(axis=1), axis=0)

    def on_columns(self, encoder: RowEncoder) -> KernelRows | None:
        """This model behind ``encoder`` on a request's columns (:class:`KernelRows`), or None."""
        rows = OneHotRows.of(encoder, self.indicator_place)
        return None if rows is None else KernelRows(self, rows)

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.classes_ is None:
            raise AttributeError("a regression model has no predict_proba")
        row = self._one_rbf_row(X)
        if row is not None:
            return self._rbf_proba_row(row)
        chunks = self._finite(X)
        if chunks is None:
            return np.asarray(self.reference.predict_proba(X), dtype=np.float64)
        parts = []
        for chunk in chunks:
            try:
                parts.append(self._proba_chunk(chunk))
            except Ambiguous:
                parts.append(np.asarray(self.reference.predict_proba(chunk), dtype=np.float64))
        return np.vstack(parts)

    def _finite(self, X: Any) -> list[np.ndarray] | None:
        """``X`` in chunks, or None when a value is not finite: scikit-learn then refuses it with
        its own error, as it would without the compiled form (here it would answer NaN)."""
        chunks = self._chunks(X)
        return chunks if all(np.isfinite(chunk).all() for chunk in chunks) else None

    # -- labels and regression values ------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        if self.classes_ is not None:
            return self.classes_.take(self.predict_proba(X).argmax(axis=1), axis=0)
        row = self._one_rbf_row(X)
        if row is not None:
            return self._rbf_value_row(row)
        chunks = self._finite(X)
        if chunks is None:
            return np.asarray(self.reference.predict(X), dtype=np.float64)
        parts = []
        for chunk in chunks:
            try:
                parts.append(self._checked_decisions(chunk)[0][:, 0])
            except Ambiguous:  # overflowed: libsvm's value
                parts.append(np.asarray(self.reference.predict(chunk), dtype=np.float64))
        return np.concatenate(parts)


class KernelRows(OnColumns):
    """A compiled svm model behind its :class:`RowEncoder`, on a request's columns: one row's ones
    (:class:`~byoc.compiled_rows.OneHotRows`, from its category codes) pick the support vectors'
    one-hot bytes directly (:meth:`KernelMachine._row_dots`), so no one-hot row is built for the
    model to search for its ones again."""
