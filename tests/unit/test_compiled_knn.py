"""knn's compiled search answers as scikit-learn's KNeighbors model does, ties and copies included."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse

from byoc import compiled, compiled_knn
from byoc.algorithms.builtin import NeighboursClassifier, NeighboursRegressor
from byoc.compiled_knn import NeighboursEstimator
from support import assert_compiled_answers as assert_same
from support import columns_of, described, one_hot_block, request_frame


def encoded(rng: np.random.Generator, n: int, numeric: int, groups: int, levels: int, integral: bool):
    """Rows as byoc's knn encoder gives them: numeric columns then one-hot groups (a row of zeros
    for an unknown category).  Few distinct numeric values, so that equidistant rows abound."""
    values = rng.integers(-3, 4, size=(n, numeric)).astype(np.float64)
    if not integral:
        values = values * 0.37 + 0.1
    return np.hstack([values, one_hot_block(rng, n, groups, levels)])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(4, 160),
    numeric=st.integers(0, 6),
    groups=st.integers(0, 4),
    k=st.integers(1, 12),
    weights=st.sampled_from(["uniform", "distance"]),
    regression=st.booleans(),
    integral=st.booleans(),
    copies=st.integers(0, 3),
    as_sparse=st.booleans(),
)
def test_the_compiled_search_answers_like_scikit_learn(
    seed, n, numeric, groups, k, weights, regression, integral, copies, as_sparse
):
    """Random training matrices with duplicated rows (ties between equidistant neighbours of
    different labels), integral or not, few or many columns (scikit-learn's tree or brute force),
    new rows, training rows and near copies, as one batch and one row at a time."""
    rng = np.random.default_rng(seed)
    if numeric + groups == 0:
        numeric = 1
    X = encoded(rng, n, numeric, groups, 3, integral)
    X = np.vstack([X] + [X[: n // 2]] * copies)
    k = min(k, len(X))
    if regression:
        y = rng.integers(0, 4, len(X)) * 0.5
        reference = NeighboursRegressor(n_neighbors=k, weights=weights, n_jobs=1)
    else:
        y = rng.integers(0, 3, len(X))
        reference = NeighboursClassifier(n_neighbors=k, weights=weights, n_jobs=1)
    reference.fit(sparse.csr_matrix(X) if as_sparse else X, y)
    if compiled_knn.unsupported(reference) is not None:  # a sparse matrix kept sparse
        assert not reference.dense_input_ and sparse.issparse(reference._fit_X)
        return
    candidate = NeighboursEstimator(reference)
    fresh = encoded(rng, 30, numeric, groups, 3, integral)
    queries = np.vstack([fresh, X[:20], X[:10] + 1e-12, X[:10] * (1 + 1e-15)])
    assert_same(reference, candidate, queries)
    for row in queries[::7]:
        assert_same(reference, candidate, row[None, :])


def fitted_classifier(seed: int = 0, n: int = 3000, weights: str = "uniform"):
    """byoc's benchmark shape: 10 standardised numbers and 10 one-hot groups, 3 classes."""
    rng = np.random.default_rng(seed)
    X = np.hstack([rng.normal(size=(n, 10)), encoded(rng, n, 0, 10, 9, True)])
    reference = NeighboursClassifier(n_neighbors=5, weights=weights, n_jobs=1)
    return reference.fit(sparse.csr_matrix(X), rng.integers(0, 3, n)), X, rng


class Counting:
    """Counts the calls scikit-learn answers (the compiled form's fallbacks)."""

    def __init__(self, estimator):
        self.estimator, self.calls = estimator, 0

    def __getattr__(self, name):
        return getattr(self.estimator, name)

    def predict_proba(self, X):
        self.calls += 1
        return self.estimator.predict_proba(X)

    def predict(self, X):
        self.calls += 1
        return self.estimator.predict(X)


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_new_rows_are_answered_without_scikit_learn(weights):
    reference, X, rng = fitted_classifier(weights=weights)
    candidate = NeighboursEstimator(reference)
    assert candidate.words is not None and len(candidate.binary) == 90  # the one-hot columns as bits
    fresh = np.hstack([rng.normal(size=(50, 10)), encoded(rng, 50, 0, 10, 9, True)])
    candidate.reference = Counting(reference)
    for row in fresh:
        assert candidate._candidates(row, float(row @ row)) is not None  # among float32 candidates
        assert_same(reference, candidate, row[None, :])
    assert_same(reference, candidate, fresh)
    assert candidate.reference.calls == 0


def test_equidistant_neighbours_of_different_labels_are_left_to_scikit_learn():
    """Two copies of a training row at the k-th place, one of each label: which one scikit-learn
    takes depends on the last bit of its matrix product, so it answers that row itself."""
    reference, X, _ = fitted_classifier(n=400)
    X = np.vstack([X, X[:1]])
    y = np.append(reference._y, (reference._y[0] + 1) % 3)
    reference = NeighboursClassifier(n_neighbors=1, n_jobs=1).fit(sparse.csr_matrix(X), y)
    candidate = NeighboursEstimator(reference)
    candidate.reference = Counting(reference)
    query = X[:1] + np.r_[[0.3], np.zeros(X.shape[1] - 1)]  # nearest: the two copies, equidistant
    np.testing.assert_array_equal(candidate.predict_proba(query), reference.predict_proba(query))
    assert candidate.reference.calls == 1


def test_batches_are_searched_in_chunks_and_only_ambiguous_chunks_fall_back(monkeypatch):
    reference, X, rng = fitted_classifier(n=600)
    monkeypatch.setattr(compiled_knn, "CHUNK_CELLS", 600 * 4)  # 4 rows per chunk
    X = np.vstack([X, X[:1]])
    y = np.append(reference._y, (reference._y[0] + 1) % 3)
    reference = NeighboursClassifier(n_neighbors=1, n_jobs=1).fit(sparse.csr_matrix(X), y)
    candidate = NeighboursEstimator(reference)
    candidate.reference = Counting(reference)
    fresh = np.hstack([rng.normal(size=(20, 10)), encoded(rng, 20, 0, 10, 9, True)])
    fresh[9] = X[0] + np.r_[[0.3], np.zeros(X.shape[1] - 1)]  # in the third chunk of four rows
    assert_same(reference, candidate, fresh)
    assert candidate.reference.calls == 2  # that chunk, for predict and for predict_proba


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"p": 1}, "only p=2"),
        ({"weights": lambda d: d}, "only uniform and distance"),
    ],
)
def test_what_is_not_computed_here_stays_with_scikit_learn_with_a_reason(change, reason):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 4))
    reference = NeighboursClassifier(n_neighbors=3, n_jobs=1).set_params(**change)
    reference.fit(X, rng.integers(0, 2, 50))
    assert reason in compiled.convert(reference)


def test_a_sparse_or_large_training_matrix_stays_with_scikit_learn(monkeypatch):
    reference, X, _ = fitted_classifier(n=300)
    reference.dense_input_ = False
    reference._fit_X = sparse.csr_matrix(reference._fit_X)  # a model trained before knn kept it dense
    assert "sparse" in compiled.convert(reference)
    reference, _, _ = fitted_classifier(n=300)
    monkeypatch.setattr(compiled_knn, "MAX_CELLS", 1000)
    assert "more than 1000" in compiled.convert(reference)


def test_a_compiled_knn_that_disagrees_at_load_falls_back_with_the_reason(tmp_path, monkeypatch):
    from byoc import artifact

    reference, X, _ = fitted_classifier(n=300)
    built = compiled.build(reference, [pd.DataFrame(X[:200])])
    assert built.entry["steps"][0]["backend"] == "numpy"
    metadata = {**described(reference), "algorithm": "knn", "compiled": built.entry}
    artifact.save(tmp_path, reference, metadata, built.files())
    real = NeighboursEstimator._predict_proba
    monkeypatch.setattr(
        NeighboursEstimator, "_predict_proba", lambda self, X, ones=None: real(self, X, ones)[:, ::-1]
    )
    model = artifact.load(tmp_path)
    loaded = compiled.load(model.estimator, model.metadata, model.path)
    assert loaded.compiled == () and "differ" in loaded.reasons["model"]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(40, 400),
    numeric=st.integers(1, 4),
    groups=st.integers(2, 6),
    levels=st.integers(2, 6),
    k=st.integers(1, 9),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    integral=st.booleans(),
    copies=st.integers(0, 3),
    weights=st.sampled_from(["uniform", "distance"]),
    shuffled=st.booleans(),
)
def test_one_row_is_searched_among_float32_candidates_that_hold_every_contender(
    seed, n, numeric, groups, levels, k, scale, integral, copies, weights, shuffled
):
    """One row's float32 prefilter keeps every training row the float64 search could count at the
    k-th place (within 4 x its error bound), duplicates and equidistant rows included; the answers
    are scikit-learn's.  The 0/1 columns consecutive (the encoder's order) or mixed among the
    others (then gathered by index, not sliced)."""
    rng = np.random.default_rng(seed)
    X = encoded(rng, n, numeric, groups, levels, integral)
    X[:, :numeric] *= scale
    X = np.vstack([X] + [X[: n // 3]] * copies)
    columns = rng.permutation(X.shape[1]) if shuffled else np.arange(X.shape[1])
    X = X[:, columns]
    y = rng.integers(0, 3, len(X))
    k = min(k, len(X))
    reference = NeighboursClassifier(n_neighbors=k, weights=weights, n_jobs=1).fit(X, y)
    candidate = NeighboursEstimator(reference)
    assert candidate.other32 is not None  # the one-hot columns are the majority: bits and float32
    consecutive = np.ptp(candidate.binary) == len(candidate.binary) - 1
    assert isinstance(candidate.binary_at, slice) == consecutive and (consecutive or shuffled)
    fresh = encoded(rng, 20, numeric, groups, levels, integral)
    fresh[:, :numeric] *= scale
    fresh[::2, :numeric] = rng.normal(size=(10, numeric)) * scale  # fewer ties: the prefilter answers
    queries = np.vstack([fresh[:, columns], X[:10], X[:5] + 1e-9 * scale])
    for x in queries:
        norm = float(x @ x)
        rows = candidate._candidates(x, norm)
        squared = candidate._squared_distances(x[None, :])[0]
        kth = np.partition(squared, k - 1)[k - 1]
        error = 1.01 * candidate.bound * (3.0 * norm + 2.0 * kth) + 1e-300
        contenders = np.flatnonzero(squared <= kth + 4.0 * error)
        if rows is not None:  # None: more contenders than an eighth of the rows, all searched
            assert np.isin(contenders, rows).all()
        assert_same(reference, candidate, x[None, :])


def test_one_row_equidistant_from_copies_of_different_labels_is_left_to_scikit_learn():
    """The row path meets the tie too (the candidates hold both copies) and hands it over."""
    reference, X, _ = fitted_classifier(n=2000)
    X = np.vstack([X, X[:1]])
    y = np.append(reference._y, (reference._y[0] + 1) % 3)
    reference = NeighboursClassifier(n_neighbors=1, n_jobs=1).fit(X, y)
    candidate = NeighboursEstimator(reference)
    candidate.reference = Counting(reference)
    query = X[:1] + np.r_[[0.3], np.zeros(X.shape[1] - 1)]
    rows = candidate._candidates(query[0], float(query[0] @ query[0]))
    assert rows is not None and {0, len(X) - 1} <= set(rows.tolist())
    np.testing.assert_array_equal(candidate.predict_proba(query), reference.predict_proba(query))
    assert candidate.reference.calls == 1


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(8, 300),
    groups=st.integers(1, 40),
    levels=st.integers(2, 9),
    extra_ones=st.integers(0, 80),
)
def test_one_rows_ones_in_common_are_counted_exactly_by_bytes_and_by_words(
    seed, n, groups, levels, extra_ones
):
    """The ones a query shares with each training row: the bytes' sum for a few ones (a one-hot
    row), the popcount for many (0/1 columns that are not one-hot), exactly the count either way."""
    rng = np.random.default_rng(seed)
    X = np.hstack([rng.normal(size=(n, 1)), encoded(rng, n, 0, groups, levels, True)])
    reference = NeighboursClassifier(n_neighbors=1, n_jobs=1).fit(X, rng.integers(0, 2, n))
    candidate = NeighboursEstimator(reference)
    assert candidate.words is not None
    bits = X[:, candidate.binary] == 1
    one_hot = encoded(rng, 1, 0, groups, levels, True)[0] == 1
    for ones in [one_hot, rng.random(bits.shape[1]) < extra_ones / 80]:
        expected = (bits & ones).sum(axis=1)
        np.testing.assert_array_equal(candidate._common(np.flatnonzero(ones)).astype(np.int64), expected)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(20, 300),
    levels=st.sampled_from([2, 7, 130]),
    k=st.integers(1, 9),
    weights=st.sampled_from(["uniform", "distance"]),
    regression=st.booleans(),
    copies=st.integers(0, 2),
)
def test_rows_from_their_category_codes_are_answered_as_scikit_learns_pipeline(
    seed, n, levels, k, weights, regression, copies
):
    """The form on a request's columns (NeighbourRows): one row's ones found from its category codes
    through the one-hot step's table are the encoded row's, the row it builds is the encoder's, and
    the answers of each row alone and of the rows together are scikit-learn's pipeline's.  The
    pipeline answers on one thread, as served: its default n_jobs=-1 started a thread pool for
    every one-row query, and joblib's 10 ms polls of it were most of this test's time."""
    from byoc import algorithms
    from byoc.compiled_knn import NeighbourRows
    from byoc.hyperparameters import resolve
    from byoc.preprocessing import RowEncoder, coerce_features, feature_schema
    from byoc.serving.inference import single_threaded

    rng = np.random.default_rng(seed)
    raw = request_frame(rng, n, levels, [0.5])
    raw = pd.concat([raw] + [raw.iloc[: n // 2]] * copies, ignore_index=True)  # equidistant rows
    features = feature_schema(raw)
    X = coerce_features(raw, features, where="train")
    problem_type = "regression" if regression else "multiclass_classification"
    params = resolve({"algorithm": "knn", "n_neighbors": str(min(k, len(X))), "weights": weights})
    pipeline = algorithms.build(problem_type, params, features)
    y = rng.integers(0, 4, len(X)) * 0.5 if regression else rng.integers(0, 3, len(X))
    single_threaded(pipeline.fit(X, y))
    preprocessor, reference = pipeline.steps[0][1], pipeline.steps[-1][1]
    model = NeighboursEstimator(reference)
    encoder = RowEncoder.of(preprocessor, [f.name for f in features])
    rows = NeighbourRows.of(encoder, model)
    assert rows is not None
    fresh = request_frame(rng, 30, levels + 3, [0.5, 1.5, 2.0])  # unseen categories too
    fresh = coerce_features(fresh, features, where="request")
    fresh = pd.concat([fresh, X.iloc[:10]], ignore_index=True)
    encoded = preprocessor.transform(fresh)
    encoded = encoded.toarray() if sparse.issparse(encoded) else encoded
    for i in range(len(fresh)):
        row, ones = rows._encoded(columns_of(fresh.iloc[[i]], features))
        assert np.array_equal(row, encoded[i : i + 1])
        bits = encoded[i, model.binary]
        if ((bits == 0) | (bits == 1)).all():  # else the model's own search (None)
            assert ones is not None and np.array_equal(np.sort(ones), np.flatnonzero(bits == 1))
        else:
            assert ones is None
    for batch in [fresh, *(fresh.iloc[[i]] for i in range(len(fresh)))]:
        columns = columns_of(batch, features)
        if regression:
            np.testing.assert_allclose(
                rows.predict(columns), pipeline.predict(batch), rtol=compiled.RTOL, atol=compiled.ATOL
            )
        else:
            assert np.array_equal(rows.predict(columns), pipeline.predict(batch))
            np.testing.assert_allclose(
                rows.predict_proba(columns),
                pipeline.predict_proba(batch),
                rtol=compiled.RTOL,
                atol=compiled.ATOL,
            )


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("regression", [False, True])
def test_a_finite_row_whose_distances_overflow_gets_scikit_learns_answer(regression, weights):
    """A row finite but past about 1e154 (a request value over a column standardised by a tiny
    scale): every squared distance overflows to inf, a tie of all rows whose bound is inf too;
    the contested rows were then none (``inf - inf`` is NaN) and the search raised IndexError.
    scikit-learn answers, or refuses as it refuses (distance weights: every weight 0)."""
    rng = np.random.default_rng(3)
    X = encoded(rng, 40, 3, 1, 3, integral=False)
    y = rng.integers(0, 4, len(X)) * 0.5 if regression else rng.integers(0, 3, len(X))
    kind = NeighboursRegressor if regression else NeighboursClassifier
    reference = kind(n_neighbors=3, weights=weights, n_jobs=1).fit(X, y)
    candidate = NeighboursEstimator(reference)
    for huge in (1e155, -1e200, 1e308):
        rows = X[:3].copy()
        rows[:, 0] = huge
        for batch in (rows, rows[:1]):
            try:
                reference.predict(batch)
            except ValueError as refused:
                with pytest.raises(ValueError, match=re.escape(str(refused)[:30])):
                    candidate.predict(batch)
                continue
            assert_same(reference, candidate, batch)
