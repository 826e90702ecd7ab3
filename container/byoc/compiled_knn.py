"""knn's compiled form: a fitted KNeighbors model's exact search without scikit-learn's per-call
machinery (input validation, chunked pairwise-distance reductions: most of a one-row predict).

The same model, the same training matrix (shared, not copied), the same rules:

- squared Euclidean distances as scikit-learn's brute force computes them, ``||x||^2 - 2 x.y +
  ||y||^2`` clipped at 0; the training matrix's 0/1 columns (one-hot codes) enter the product
  as bits (popcount of the query's ones and each row's ones), the other columns by a matrix
  product, so a request row reads a few hundred kilobytes instead of the whole matrix;
- one row (the server's single-row request) first finds its candidates in float32 (one product
  of the query's other columns and a 1 with a float32 copy of the training rows' other columns
  and half their norms; the ones in common as the sum of the training rows' bytes at the query's
  few ones, :meth:`NeighboursEstimator._common`: about 550 KB read for 10,000 rows of 10 numeric
  + 95 one-hot columns, no bits to pack) within a worst-case bound of the k-th, then its exact
  squared distances to those few rows (:meth:`NeighboursEstimator._candidates`); the server's
  request row takes that path from its columns (:class:`NeighbourRows`): its ones come from its
  category codes through the one-hot step's own table, not from a one-hot row;
- the k nearest by ``argpartition``, then scikit-learn's voting: uniform counts or 1/distance
  weights (neighbours at distance 0 alone, weight 1, when there are any), probabilities in
  ``classes_`` order, labels by its argmax / weighted mode (the first class on ties); regression
  by the (weighted) mean.

Where rounding could decide the answer, scikit-learn answers instead (:class:`Ambiguous`).  Both
computations round: each is within ``E`` of the exact squared distance (a worst-case bound), so
the k nearest are certain when no other row comes within ``4E`` of the k-th.  When several
rows do (ties between equidistant neighbours), the answer is still certain if those contested
all carry the same label or target; otherwise the rows' chunk goes to scikit-learn, whose
choice among them is not predictable (:meth:`NeighboursEstimator._settle`).  With distance
weights, a neighbour within rounding of distance 0 (unless every value is a small integer, where
both computations are exact), or two classes' weighted votes within 1e-7, also sends it there.
Every answer given here is therefore scikit-learn's, to the stated tolerance, whatever the batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse

from byoc.compiled_estimator import CompiledEstimator, dense_matrix
from byoc.compiled_rows import OnColumns, OneHotRows
from byoc.preprocessing import RowEncoder

EPS = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)
SAMPLE_ROWS = 256  # one row's float32 prefilter: rows whose k-th key bounds the k-th of all
MAX_CELLS = 2**25  # as algorithms.builtin.DENSE_NEIGHBOURS_MAX_CELLS: the dense training matrix's bound
CHUNK_CELLS = 2**20  # query rows x training rows per distance block: 8 MiB of float64
WEIGHT_RTOL = 1e-8  # distance weights: the largest relative error of a weight answered here
VOTE_MARGIN = 1e-7  # distance weights: the smallest gap between the two best classes' shares
EXACT_MAX = 2.0**50  # squared norms of integer rows up to this: every sum below 2^53, exact
FLOAT32_NORMS = 1e76  # a row of squared norm up to this: every value below 1.0001e38, finite in float32
ONE = np.ones(1)


class Ambiguous(Exception):
    """A chunk whose answer rounding could change: scikit-learn answers it."""


def unsupported(estimator: Any) -> str | None:
    """Why this fitted KNeighbors model keeps scikit-learn's own search, or None."""
    name = type(estimator).__name__
    fit_X = getattr(estimator, "_fit_X", None)
    if fit_X is None or sparse.issparse(fit_X):
        return (
            f"{name}: its training matrix is sparse (the model was trained before knn kept it dense, "
            f"or it has more than {MAX_CELLS} cells); scikit-learn searches it"
        )
    if fit_X.dtype != np.float64 or fit_X.ndim != 2:
        return f"{name}: its training matrix is {fit_X.dtype}, not float64"
    if fit_X.size > MAX_CELLS:
        return f"{name}: its training matrix has {fit_X.size} cells, more than {MAX_CELLS}"
    if getattr(estimator, "effective_metric_", None) != "euclidean":
        p = getattr(estimator, "p", None)
        return f"{name}: metric {estimator.effective_metric_} (p={p}); only p=2 (Euclidean) is computed here"
    if estimator.weights not in ("uniform", "distance"):
        return f"{name}: weights={estimator.weights!r}; only uniform and distance are computed here"
    if getattr(estimator, "outputs_2d_", False):
        return f"{name} with several outputs is not compiled"
    if not 1 <= estimator.n_neighbors <= fit_X.shape[0]:
        return f"{name}: n_neighbors={estimator.n_neighbors} for {fit_X.shape[0]} training rows"
    return None


class NeighboursEstimator(CompiledEstimator):
    """A fitted KNeighborsClassifier's / KNeighborsRegressor's predict and predict_proba (see the
    module docstring); ``reference`` is the scikit-learn model, which answers ambiguous chunks."""

    searches_dense_rows = True  # a CSR input is made dense first: the server's row path skips building it

    def __init__(self, reference: Any) -> None:
        why = unsupported(reference)
        if why is not None:
            raise ValueError(why)
        self.reference = reference
        fit_X = np.ascontiguousarray(reference._fit_X)
        self.k = int(reference.n_neighbors)
        self.distance_weights = reference.weights == "distance"
        self.lowest_index_on_ties = reference._fit_method == "brute"  # its heap keeps the first of equals
        self.classes_ = getattr(reference, "classes_", None)
        self.n_classes = 0 if self.classes_ is None else len(self.classes_)
        self.n_features_in_ = int(fit_X.shape[1])
        self.targets = np.asarray(reference._y).reshape(-1)
        self.fit_X = fit_X
        self.norms = np.einsum("ij,ij->i", fit_X, fit_X)
        self.bound = 8.0 * (fit_X.shape[1] + 4) * EPS  # |computed - exact| <= bound * (||x||^2 + ||y||^2)
        self.integral_rows = _small_integers(fit_X)
        binary = np.flatnonzero(((fit_X == 0) | (fit_X == 1)).all(axis=0))
        if 2 * len(binary) < fit_X.shape[1]:  # few 0/1 columns: one matrix product over all of them
            binary = binary[:0]
        self.binary = binary
        self.bit_of = np.full(fit_X.shape[1], -1, dtype=np.intp)  # a column's place among the 0/1 ones
        self.bit_of[binary] = np.arange(len(binary))
        self.other = np.setdiff1d(np.arange(fit_X.shape[1]), binary)
        # one row's 0/1 and other values: a view where the columns are consecutive (the encoder's)
        self.binary_at, self.other_at = _columns_at(binary), _columns_at(self.other)
        # a transposed copy of the other columns (a strided view of them took 60% longer a row)
        self.other_t = np.ascontiguousarray(fit_X[:, self.other].T) if len(binary) else None
        # one array of uint64 per 64 of those columns, over the training rows
        self.words = np.ascontiguousarray(_bit_words(fit_X[:, binary] == 1).T) if len(binary) else None
        # one row's prefilter (:meth:`_candidates`): the other columns negated with half the norms
        # as one more row, in float32, so that one product gives ``||y||^2 / 2 - x.y`` (the query's x, 1)
        self.other32: np.ndarray | None = None
        if self.other_t is not None and self.words is not None:
            half_norms = (0.5 * self.norms)[None, :]
            other32 = np.concatenate((-self.other_t, half_norms)).astype(np.float32)
            self.other32 = other32 if np.isfinite(other32).all() else None
            self.max_norm = float(self.norms.max())
            self.common_dtype = np.uint8 if 64 * len(self.words) <= 255 else np.uint16
            # the 0/1 columns' ones as bytes, a row of them per column: a query's few ones add up
            # their rows (its ones in common with each training row) reading a byte per one and row
            self.bits = np.ascontiguousarray((fit_X[:, binary] == 1).T).view(np.uint8)

    # -- the search --------------------------------------------------------------------------------
    def _squared_distances(self, X: np.ndarray) -> np.ndarray:
        if self.words is None:
            dot = X @ self.fit_X.T
        else:
            query = X[:, self.binary]
            ones = query == 1
            dot = X[:, self.other] @ self.other_t
            packed = _bit_words(ones)
            for w, row_words in enumerate(self.words):  # ones in common: exact integers
                dot += np.bitwise_count(row_words & packed[:, w : w + 1])
            if not (ones | (query == 0)).all():  # 0/1 columns holding another value (rare)
                residual = np.where(ones, 0.0, query)
                for r, c in zip(*np.nonzero(residual), strict=True):
                    dot[r] += residual[r, c] * self.fit_X[:, self.binary[c]]
        squared = dot
        squared *= -2.0
        squared += np.einsum("ij,ij->i", X, X)[:, None]
        squared += self.norms[None, :]
        return np.maximum(squared, 0.0, out=squared)

    def _candidates(self, x: np.ndarray, norm: float, ones: np.ndarray | None = None) -> np.ndarray | None:
        """The training rows (ascending) among which one query row ``x`` (1-D, squared norm
        ``norm``) finds its k nearest, found in float32: half the memory of the float64 search.
        ``ones``: the rows of :attr:`bits` at the query's ones when the caller knows them (and
        that its other 0/1 columns hold zeros: :class:`NeighbourRows`), else found in ``x``.

        ``key = ||y||^2 - 2 x.y`` ranks the rows as their squared distances do; its float32 value
        is within ``e32`` of the exact one (a worst-case bound: the products and sums of
        ``len(other) + 10`` roundings (the product has ``len(other) + 1`` terms, half the norm the
        last; the conversions to float32 round once each) of at most ``eps32 (||x||^2 + max ||y||^2)`` each).  Every row
        the float64 selection (:meth:`_nearest`) could count at the k-th place lies within
        ``2 e32 + 8 error`` of the k-th key; twice that margin is kept.  None when the query holds
        other values than 0/1 in the 0/1 columns, is out of float32's range, or the margin leaves
        more than an eighth of the rows (then every row is searched in float64)."""
        if self.other32 is None:
            return None
        if ones is None:
            query = x[self.binary_at]
            is_one = query == 1
            if np.count_nonzero(query) != np.count_nonzero(is_one):
                return None
            ones = np.flatnonzero(is_one)
        if not norm <= FLOAT32_NORMS:  # a value out of float32's range (or not finite)
            return None
        xq = np.concatenate((x[self.other_at], ONE), dtype=np.float32, casting="same_kind")
        half = xq @ self.other32  # ||y||^2 / 2 - x.y over the other columns, float32
        np.subtract(half, self._common(ones), out=half)  # key / 2
        k = self.k
        # the k-th key of the first SAMPLE_ROWS rows is at least the k-th of all: few rows below it
        bound = float(np.partition(half[: max(SAMPLE_ROWS, k)], k - 1)[k - 1])
        below = np.flatnonzero(half <= bound)
        below_half = half[below]
        kth = 2.0 * float(np.partition(below_half, k - 1)[k - 1])  # the k-th key of all rows
        e32 = 2.0 * (len(self.other) + 10) * EPS32 * (norm + self.max_norm)
        error = 1.01 * self.bound * (3.0 * norm + 2.0 * max(kth + norm + e32, 0.0)) + 1e-300
        limit = 0.5 * kth + 2.0 * e32 + 8.0 * error  # key / 2 within twice the margin of the k-th
        rows = below[below_half <= limit] if limit <= bound else np.flatnonzero(half <= limit)
        return rows if len(rows) <= len(self.fit_X) // 8 else None

    def _common(self, ones: np.ndarray) -> np.ndarray:
        """How many ones each training row shares with one query row's 0/1 columns (``ones``: the
        positions of its ones among them, :attr:`bits`' rows): exact small integers.  The sum of
        the training rows' bytes at the query's ones while they are few (the encoder's one-hot row
        has one per feature), else the popcount of the bit words (which first packs the query's bits)."""
        words = self.words
        assert words is not None
        if len(ones) <= 8 * len(words):  # a byte per one and row against 8 bytes per word
            return self.bits[ones].sum(axis=0, dtype=self.common_dtype)
        is_one = np.zeros(len(self.bits), dtype=bool)
        is_one[ones] = True
        packed = _bit_words(is_one[None, :])[0]
        common = np.bitwise_count(words[0] & packed[0]).astype(self.common_dtype, copy=False)
        for w in range(1, len(words)):  # ones in common: exact integers
            common += np.bitwise_count(words[w] & packed[w])
        return common

    def _row_neighbours(
        self, X: np.ndarray, ones: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`_neighbours` of one row among its float32 candidates (:meth:`_candidates`), their
        squared distances computed directly (within the same bound as the full search's), then
        :meth:`_nearest`'s selection: sorted, the k-th, the rows within rounding of it
        (:meth:`_settle`), distance weights near 0.  None without candidates."""
        x = X[0]
        norm = float(x @ x)
        rows = self._candidates(x, norm, ones)
        if rows is None:
            return None
        difference = self.fit_X[rows] - x
        squared = np.einsum("ij,ij->i", difference, difference)
        # a few candidates: sorted (stably, as argsort) and counted in Python floats, the same values
        values = squared.tolist()
        order = sorted(range(len(values)), key=values.__getitem__)
        k = self.k
        kth = values[order[k - 1]]
        error = 1.01 * self.bound * (3.0 * norm + 2.0 * kth) + 1e-300
        within, reach = k, kth + 4.0 * error  # the candidates up to the k-th's distance + 4 x error
        while within < len(order) and values[order[within]] <= reach:
            within += 1
        chosen: Any = order[:k]
        if within > k:
            chosen = self._settle(squared, np.array(order[:within]), 4.0 * error, self.targets[rows])
        nearest, distances = rows[chosen], squared[chosen]
        if self.distance_weights and float(distances[0]) <= error / WEIGHT_RTOL:
            if not (_small_integers(X)[0] and self.integral_rows[nearest].all()):
                raise Ambiguous
        return nearest[None, :], distances[None, :]

    def _neighbours(self, X: np.ndarray, ones: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(indices, squared distances) of each row's k nearest, nearest first; raises Ambiguous.
        One row is searched among its float32 candidates when it has them (:meth:`_row_neighbours`;
        ``ones`` as :meth:`_candidates` takes them)."""
        found = self._row_neighbours(X, ones) if len(X) == 1 else None
        return found if found is not None else self._nearest(X, self._squared_distances(X))

    def _nearest(self, X: np.ndarray, squared: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_neighbours` from every training row's squared distance.

        ``error`` bounds each computation's error on a squared distance near the k-th (both
        within it of the exact value, so within 2 x error of each other): the k nearest are
        certain when the next row is more than 4 x error beyond the k-th."""
        rows = np.arange(len(X))[:, None]
        k = self.k
        nearest = np.argpartition(squared, k - 1, axis=1)[:, :k]
        kth = squared[rows, nearest].max(axis=1)
        norms = np.einsum("ij,ij->i", X, X)
        # ||y||^2 <= 2||x||^2 + 2 d^2 for a row y at squared distance d^2 near the k-th
        error = 1.01 * self.bound * (3.0 * norms + 2.0 * kth) + 1e-300
        within = squared <= (kth + 4.0 * error)[:, None]
        for r in np.flatnonzero(within.sum(axis=1) > k):
            nearest[r] = self._settle(squared[r], np.flatnonzero(within[r]), 4.0 * error[r], self.targets)
        if self.distance_weights:  # integers: both distances exact, 0 included
            sure = _small_integers(X) & self.integral_rows[nearest].all(axis=1)
            near_zero = (squared[rows, nearest] <= error[:, None] / WEIGHT_RTOL).any(axis=1)
            if (near_zero & ~sure).any():
                raise Ambiguous
        order = np.argsort(squared[rows, nearest], axis=1, kind="stable")
        nearest = nearest[rows, order]
        return nearest, squared[rows, nearest]

    def _settle(
        self, squared: np.ndarray, candidates: np.ndarray, apart: float, targets: np.ndarray
    ) -> np.ndarray:
        """One row's k nearest among more than k candidates within ``apart`` of the k-th: certain
        only when the contested ones (those not ``apart`` nearer than the (k+1)-th) vote alike.

        Which of several equidistant rows scikit-learn keeps is not the lowest index, nor even
        fixed by the distances: its heap, fed the rows in order, evicts whichever of the tied
        farthest sits at its root when a nearer row arrives (seen: of 0, 2, 4, 6, 8 at distance
        1 for 3 places, it kept 0, 4, 6); and copies of one training row get distances that
        differ in the last bit with their position in its matrix product."""
        by_distance = candidates[np.argsort(squared[candidates], kind="stable")]
        contested = by_distance[squared[by_distance] >= squared[by_distance[self.k]] - apart]
        # none contested: the distances overflowed (inf - inf is NaN), a tie scikit-learn breaks
        if len(contested) and np.all(targets[contested] == targets[contested[0]]):
            return by_distance[: self.k]
        raise Ambiguous

    def _weights(self, squared: np.ndarray) -> np.ndarray | None:
        """scikit-learn's _get_weights on the neighbours' distances."""
        if not self.distance_weights:
            return None
        with np.errstate(divide="ignore"):
            weights = 1.0 / np.sqrt(squared)
        infinite = np.isinf(weights)
        at_zero = infinite.any(axis=1)
        weights[at_zero] = infinite[at_zero]
        return weights

    # -- answers, by chunks of rows --------------------------------------------------------------
    def _chunked(self, X: Any, method: str) -> np.ndarray:
        X = _dense(X, self.n_features_in_)
        if not np.isfinite(X).all():
            return getattr(self.reference, method)(X)  # scikit-learn's own error message
        step = max(1, CHUNK_CELLS // len(self.fit_X))
        if 0 < len(X) <= step:  # one chunk (the server's single row): nothing to put together
            return self._answer(X, method)
        parts = [self._answer(X[start : start + step], method) for start in range(0, len(X), step)]
        if not parts:
            return np.empty((0, self.n_classes)) if method == "predict_proba" else np.empty(0)
        return np.concatenate(parts)

    def answer_row(self, X: np.ndarray, ones: np.ndarray, method: str) -> np.ndarray:
        """``method``'s answer for one encoded row ``X`` (1 x features) whose 0/1 columns hold
        zeros but at ``ones`` (:attr:`bits`' rows, given by :class:`NeighbourRows` from the
        request's category codes): :meth:`predict`'s or :meth:`predict_proba`'s, without the
        input's checks and the search for its ones."""
        if not np.isfinite(X).all():
            return self._chunked(X, method)
        return self._answer(X, method, ones)

    def _answer(self, chunk: np.ndarray, method: str, ones: np.ndarray | None = None) -> np.ndarray:
        """``method``'s answer for ``chunk``: computed here, or scikit-learn's when ambiguous."""
        try:
            answer: np.ndarray = getattr(self, f"_{method}")(chunk, ones)
            return answer
        except Ambiguous:
            return np.asarray(getattr(self.reference, method)(chunk))

    def _predict_proba(self, X: np.ndarray, ones: np.ndarray | None = None) -> np.ndarray:
        nearest, squared = self._neighbours(X, ones)
        weights = self._weights(squared)
        # each row's votes per class, added nearest first from 0 as scikit-learn's loop adds them
        slots = self.targets[nearest]
        if len(X) > 1:  # row r's class c at r * n_classes + c
            slots = slots + self.n_classes * np.arange(len(X))[:, None]
        slots = slots.ravel()
        votes = None if weights is None else weights.ravel()
        proba = np.bincount(slots, votes, minlength=len(X) * self.n_classes).astype(np.float64)
        proba = proba.reshape(len(X), self.n_classes)
        proba /= proba.sum(axis=1)[:, None]
        if weights is not None and self.n_classes > 1:
            top = np.sort(proba, axis=1)[:, -2:]
            if (top[:, 1] - top[:, 0] <= VOTE_MARGIN).any():
                raise Ambiguous
        return proba

    def _predict(self, X: np.ndarray, ones: np.ndarray | None = None) -> np.ndarray:
        if self.classes_ is None:
            nearest, squared = self._neighbours(X, ones)
            values = self.targets[nearest]
            weights = self._weights(squared)
            if weights is None:
                return np.mean(values, axis=1)
            return np.sum(values * weights, axis=1) / np.sum(weights, axis=1)
        if len(X) == 1 and not self.distance_weights:  # one row's label: the first most voted class
            votes = [0] * self.n_classes  # (its share's argmax: equal counts, equal shares)
            for target in self.targets[self._neighbours(X, ones)[0][0]].tolist():
                votes[target] += 1
            return self.classes_[[votes.index(max(votes))]]
        return self.classes_.take(np.argmax(self._predict_proba(X, ones), axis=1))

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.classes_ is None:
            raise AttributeError("a regression model has no predict_proba")
        return self._chunked(X, "predict_proba")

    def predict(self, X: Any) -> np.ndarray:
        return self._chunked(X, "predict")

    def on_columns(self, encoder: RowEncoder) -> NeighbourRows | None:
        """This model behind ``encoder`` on a request's columns (:class:`NeighbourRows`), or None."""
        return NeighbourRows.of(encoder, self)


class NeighbourRows(OnColumns):
    """A compiled knn model behind its :class:`RowEncoder`, on a request's columns (the server's
    few-row path): one row's ones (:class:`~byoc.compiled_rows.OneHotRows`, the rows of the
    model's bits) go straight to the training rows' bytes (:meth:`NeighboursEstimator._common`).
    Several rows: the encoder's matrix and the model's search."""

    @classmethod
    def of(cls, encoder: RowEncoder, model: NeighboursEstimator) -> NeighbourRows | None:
        """None unless the model searches one row among float32 candidates (0/1 columns as bytes)
        and every one-hot column is among those it counts as bits."""
        if model.other32 is None:
            return None
        rows = OneHotRows.of(encoder, model.bit_of)
        return None if rows is None else cls(model, rows)


def _dense(X: Any, width: int) -> np.ndarray:
    return np.ascontiguousarray(dense_matrix(X, np.float64, width))


def _columns_at(columns: np.ndarray) -> np.ndarray | slice:
    """``columns`` (ascending) as a slice when they are consecutive: a view of a row, not a copy."""
    if len(columns) and columns[-1] - columns[0] == len(columns) - 1:
        return slice(int(columns[0]), int(columns[-1]) + 1)
    return columns


def _small_integers(X: np.ndarray) -> np.ndarray:
    """Per row: integers whose squares sum to at most EXACT_MAX, so that a squared norm, a dot
    product with another such row and their sums are exact in float64, however summed."""
    return (X == np.round(X)).all(axis=1) & (np.einsum("ij,ij->i", X, X) <= EXACT_MAX)


def _bit_words(bits: np.ndarray) -> np.ndarray:
    """Rows of booleans packed into uint64 words, little-endian: shape (rows, words)."""
    n_bytes = (bits.shape[1] + 7) // 8
    packed = np.zeros((bits.shape[0], -(-n_bytes // 8) * 8), dtype=np.uint8)
    packed[:, :n_bytes] = np.packbits(bits, axis=1, bitorder="little")
    return packed.view(np.uint64)
