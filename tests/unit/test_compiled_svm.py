"""svm's compiled form answers as scikit-learn's libsvm does: labels exactly, values within the
compiled checks' tolerance, for every kernel, two or more classes and regression, batch and one row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse
from sklearn.calibration import CalibratedClassifierCV
from sklearn.svm import SVC, SVR

from byoc import compiled, compiled_svm
from byoc.algorithms.builtin import CalibratedSVC
from byoc.compiled_svm import KernelMachine
from support import assert_compiled_answers as assert_same
from support import columns_of, one_hot_block, request_frame


def encoded(rng: np.random.Generator, n: int, numeric: int, groups: int, levels: int) -> np.ndarray:
    """Rows as byoc's encoder gives svm: standardised numeric columns, then one-hot groups."""
    return np.hstack([rng.normal(size=(n, numeric)), one_hot_block(rng, n, groups, levels)])


def target(rng: np.random.Generator, X: np.ndarray, classes: int) -> np.ndarray:
    """A target that depends on the rows (and noise), every class with at least 5 rows."""
    score = X @ rng.normal(size=X.shape[1]) + rng.normal(scale=0.5, size=len(X))
    if classes == 0:
        return score * 10 + 3
    ranks = np.argsort(np.argsort(score))
    return ranks * classes // len(X)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(30, 140),
    numeric=st.integers(0, 5),
    groups=st.integers(0, 3),
    classes=st.sampled_from([0, 2, 3, 4]),  # 0: regression
    kernel=st.sampled_from(compiled_svm.KERNELS),
    C=st.sampled_from([0.1, 1.0, 30.0]),
    gamma=st.sampled_from(["scale", "auto", 0.05, 2.0]),
    degree=st.integers(1, 4),
    as_sparse=st.booleans(),
)
def test_answers_as_scikit_learn(seed, n, numeric, groups, classes, kernel, C, gamma, degree, as_sparse):
    rng = np.random.default_rng(seed)

    def rows(count: int) -> np.ndarray:
        return (
            encoded(rng, count, numeric, groups, levels=3)
            if numeric or groups
            else rng.normal(size=(count, 1))
        )

    X = rows(n)
    y = target(rng, X, classes)
    machine_args = {"kernel": kernel, "C": C, "gamma": gamma, "degree": degree}
    fitted_on = sparse.csr_matrix(X) if as_sparse else X
    if classes:
        reference = CalibratedSVC(SVC(**machine_args), cv=3, ensemble=False).fit(fitted_on, y)
    else:
        reference = SVR(**machine_args).fit(fitted_on, y)
    candidate = KernelMachine(reference)
    queries = np.vstack([X, rows(20)])  # training rows (support vectors among them) and new ones
    assert_same(reference, candidate, queries)
    for row in queries[:8]:  # one row: the path over its non-zero columns
        assert_same(reference, candidate, row[None, :])
    assert compiled.disagreement(reference, candidate, compiled.probe_matrix(X, False)) is None


@pytest.mark.parametrize("classes", [0, 2, 3])
def test_the_rbf_bound_from_one_product_is_the_bound_summed_per_support_vector(classes):
    """The rbf path weighs the kernel values' errors through one product (values >= 0); it must
    be the documented bound: per support vector ``values (c (||x||^2 + ||s||^2) + 4 EPS)`` times
    |dual|, plus the summing error, times SAFETY."""
    rng = np.random.default_rng(7)
    X = encoded(rng, 120, 4, 2, levels=3)
    y = target(rng, X, classes)
    reference = (
        CalibratedSVC(SVC(kernel="rbf", C=3.0), cv=3, ensemble=False).fit(X, y)
        if classes
        else SVR(kernel="rbf", C=3.0).fit(X, y)
    )
    machine = KernelMachine(reference)
    queries = np.vstack([X[:5], encoded(rng, 5, 4, 2, levels=3)])
    for rows in [queries, queries[:1]]:
        decisions, bound = machine._decisions(rows)
        row_norms = np.einsum("ij,ij->i", rows, rows)[:, None]
        squared = np.maximum(row_norms + machine.norms - 2.0 * rows @ machine.vectors_t, 0.0)
        values = np.exp(-machine.gamma * squared)
        c = machine.gamma * 2 * (machine.n_features_in_ + 4) * compiled_svm.EPS
        errors = values * (c * (row_norms + machine.norms) + 4 * compiled_svm.EPS)
        magnitudes = values @ machine.abs_weights + np.abs(machine.intercept)
        summing = 2 * (len(machine.norms) + 2) * compiled_svm.EPS * magnitudes
        expected = compiled_svm.SAFETY * (errors @ machine.abs_weights + summing)
        np.testing.assert_allclose(bound, expected, rtol=1e-9)
        np.testing.assert_allclose(
            decisions, values @ machine.weights + machine.intercept, rtol=1e-9, atol=1e-12
        )


@pytest.mark.parametrize("classes", [2, 3])
def test_a_row_whose_label_rounding_could_turn_is_answered_by_scikit_learn(monkeypatch, classes):
    """With the rounding bound made huge every chunk is ambiguous: scikit-learn answers, exactly."""
    rng = np.random.default_rng(3)
    X = encoded(rng, 80, 3, 2, 3)
    reference = CalibratedSVC(SVC(), cv=3, ensemble=False).fit(X, target(rng, X, classes))
    candidate = KernelMachine(reference)
    original, calls = reference.predict_proba, []

    def counted(rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        return original(rows)

    monkeypatch.setattr(reference, "predict_proba", counted)
    with monkeypatch.context() as patched:
        patched.setattr(compiled_svm, "SAFETY", 1e30)
        got = candidate.predict_proba(X)
    assert calls == [len(X)]
    assert np.array_equal(got, original(X))
    calls.clear()
    np.testing.assert_allclose(candidate.predict_proba(X), original(X), rtol=1e-9, atol=1e-12)
    assert calls == []  # with the real bound, these rows are answered here


def test_a_tie_between_two_classes_goes_to_scikit_learn():
    """A row on the decision boundary (z = 0 exactly) is never answered by the compiled form."""
    rng = np.random.default_rng(5)
    X = encoded(rng, 60, 2, 1, 3)
    reference = CalibratedSVC(SVC(kernel="linear"), cv=3, ensemble=False).fit(X, target(rng, X, 2))
    candidate = KernelMachine(reference)
    with pytest.raises(compiled_svm.Ambiguous):
        candidate._proba_chunk(_on_the_boundary(candidate, X[0]))


def _on_the_boundary(candidate: KernelMachine, row: np.ndarray) -> np.ndarray:
    """``row`` moved along the linear kernel's weight vector until ``a f + b`` is 0."""
    w = candidate.vectors_t @ candidate.weights[:, 0]
    z0 = candidate.a[0] * (row @ w + candidate.intercept[0]) + candidate.b[0]
    return (row - z0 / (candidate.a[0] * (w @ w)) * w)[None, :]


def test_what_is_not_computed_here_says_why(monkeypatch):
    rng = np.random.default_rng(0)
    X = encoded(rng, 60, 3, 1, 3)
    y = target(rng, X, 2)
    several = CalibratedClassifierCV(SVC(), cv=3, ensemble=True).fit(X, y)
    several.__class__ = CalibratedSVC
    assert "ensemble=True" in compiled_svm.unsupported(several)
    isotonic = CalibratedSVC(SVC(), cv=3, ensemble=False, method="isotonic").fit(X, y)
    assert "isotonic" in compiled_svm.unsupported(isotonic)
    precomputed = SVR(kernel="precomputed").fit(X @ X.T, y)
    assert "precomputed" in compiled_svm.unsupported(precomputed)
    monkeypatch.setattr(compiled_svm, "MAX_CELLS", 10)
    assert "support-vector cells" in compiled_svm.unsupported(SVR().fit(X, y))
    assert isinstance(compiled.convert(SVR().fit(X, y)), str)
    with pytest.raises(ValueError, match="support-vector cells"):
        KernelMachine(SVR().fit(X, y))


def test_convert_and_restore_give_the_numpy_form():
    rng = np.random.default_rng(1)
    X = encoded(rng, 60, 3, 1, 3)
    for reference in (
        CalibratedSVC(SVC(), cv=3, ensemble=False).fit(X, target(rng, X, 3)),
        SVR().fit(X, target(rng, X, 0)),
    ):
        backend, model_bytes, dtype = compiled.convert(reference)
        assert (backend, model_bytes) == (compiled.NUMPY, b"")
        restored = compiled.restore(backend, model_bytes, dtype, reference)
        assert isinstance(restored, KernelMachine)
        assert_same(reference, restored, X)


@pytest.mark.parametrize("classes", [0, 2])
def test_a_value_that_is_not_finite_gets_scikit_learns_own_error(classes):
    """A standardised overflow (inf) or NaN: refused as scikit-learn refuses it, never a NaN answer."""
    rng = np.random.default_rng(2)
    X = encoded(rng, 60, 3, 1, 3)
    y = target(rng, X, classes)
    reference = CalibratedSVC(SVC(), cv=3, ensemble=False).fit(X, y) if classes else SVR().fit(X, y)
    candidate = KernelMachine(reference)
    for bad in (np.inf, np.nan):
        row = X[:1].copy()
        row[0, 0] = bad
        with pytest.raises(ValueError, match="infinity|NaN"):
            candidate.predict(row)


@pytest.mark.parametrize("value", [1.0, 0.5, -1.0, 3.0])
def test_one_rows_dots_take_the_one_hot_count_only_for_zeros_and_ones(value):
    """A row's one-hot part is counted from the support vectors' bytes when it holds only 0s and
    1s; any other value there (a hand-made matrix) takes the general product. Both give
    scikit-learn's answers."""
    rng = np.random.default_rng(11)
    X = encoded(rng, 90, 3, 2, levels=3)
    reference = CalibratedSVC(SVC(kernel="rbf", C=3.0), cv=3, ensemble=False).fit(X, target(rng, X, 2))
    candidate = KernelMachine(reference)
    assert list(candidate.indicator_columns) == [3, 4, 5, 6, 7, 8]  # the two one-hot groups
    row = X[0].copy()
    row[4] = value
    np.testing.assert_allclose(candidate._row_dots(row), row @ candidate.vectors_t, rtol=1e-12, atol=1e-12)
    assert_same(reference, candidate, row[None, :])


@pytest.mark.parametrize("kernel", ["rbf", "poly", "linear"])
@pytest.mark.parametrize("classes", [0, 2, 3])
def test_a_finite_row_whose_kernel_values_overflow_gets_libsvms_answer(classes, kernel):
    """A row finite but past about 1e154 (a request value over a column standardised by a tiny
    scale): its squared norm overflows here and ``inf - inf`` made NaN, which no bound test
    catches, so NaN probabilities and regression values were served; libsvm answers a number."""
    rng = np.random.default_rng(5)
    X = encoded(rng, 60, 3, 1, 3)
    y = target(rng, X, classes)
    machine = SVC(kernel=kernel) if classes else SVR(kernel=kernel)
    reference = CalibratedSVC(machine, cv=3, ensemble=False).fit(X, y) if classes else machine.fit(X, y)
    candidate = KernelMachine(reference)
    for huge in (1e155, -1e200, 1e308):
        rows = X[:3].copy()
        rows[:, 0] = huge
        for batch in (rows, rows[:1]):
            assert_same(reference, candidate, batch)  # NaN only where libsvm's own is


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(40, 120),
    levels=st.sampled_from([2, 7]),
    classes=st.sampled_from([0, 2, 3]),  # 0: regression
    kernel=st.sampled_from(["rbf", "rbf", "poly"]),
)
def test_rows_from_their_category_codes_are_answered_as_scikit_learns_pipeline(
    seed, n, levels, classes, kernel
):
    """The form on a request's columns (KernelRows): one row's ones found from its category codes
    are the encoded row's 0/1 columns set (their places among the support vectors' one-hot
    columns), the row it builds is the encoder's, and the answers of each row alone and of the
    rows together are scikit-learn's pipeline's (labels equal, values within the tolerance)."""
    from byoc import algorithms
    from byoc.compiled_svm import KernelRows
    from byoc.hyperparameters import resolve
    from byoc.preprocessing import RowEncoder, coerce_features, feature_schema

    rng = np.random.default_rng(seed)
    raw = request_frame(rng, n, levels, [0.5])
    features = feature_schema(raw)
    X = coerce_features(raw, features, where="train")
    problem_type = {0: "regression", 2: "binary_classification"}.get(classes, "multiclass_classification")
    folds = {"calibration_folds": "3"} if classes else {}
    params = resolve({"algorithm": "svm", "kernel": kernel, **folds})
    pipeline = algorithms.build(problem_type, params, features)
    y = rng.normal(size=n) if classes == 0 else rng.permutation(np.arange(n) % classes)
    pipeline.fit(X, y)
    preprocessor, reference = pipeline.steps[0][1], pipeline.steps[-1][1]
    model = KernelMachine(reference)
    rows = model.on_columns(RowEncoder.of(preprocessor, [f.name for f in features]))
    assert isinstance(rows, KernelRows)
    fresh = request_frame(rng, 25, levels + 3, [0.5, 1.5, 2.0])  # unseen categories, a 0/1 column's 1 and 1.5
    fresh = pd.concat([coerce_features(fresh, features, where="request"), X.iloc[:8]], ignore_index=True)
    encoded_rows = preprocessor.transform(fresh)
    encoded_rows = encoded_rows.toarray() if sparse.issparse(encoded_rows) else encoded_rows
    indicators = encoded_rows[:, model.indicator_columns]
    for i in range(len(fresh)):
        row, ones = rows._encoded(columns_of(fresh.iloc[[i]], features))
        assert np.array_equal(row, encoded_rows[i : i + 1])
        if ((indicators[i] == 0) | (indicators[i] == 1)).all():
            assert ones is not None and np.array_equal(np.sort(ones), np.flatnonzero(indicators[i] == 1))
        else:  # a 0/1 column of the numeric block holding another value: the model's own path
            assert ones is None
    for batch in [fresh, *(fresh.iloc[[i]] for i in range(len(fresh)))]:
        columns = columns_of(batch, features)
        if classes == 0:
            np.testing.assert_allclose(
                rows.predict(columns), pipeline.predict(batch), rtol=compiled.RTOL, atol=compiled.ATOL
            )
            continue
        assert np.array_equal(rows.predict(columns), pipeline.predict(batch))
        np.testing.assert_allclose(
            rows.predict_proba(columns), pipeline.predict_proba(batch), rtol=compiled.RTOL, atol=compiled.ATOL
        )


@pytest.mark.parametrize("problem_type", ["binary_classification", "regression"])
def test_the_server_answers_a_row_from_its_columns(tmp_path, problem_type):
    """The server's row path takes the form on a request's columns (KernelRows) for a compiled svm
    behind byoc's encoder (checked against the pipeline when the model loads), and its one-row
    answers are the pipeline's."""
    from byoc import algorithms, artifact
    from byoc.compiled_svm import KernelRows
    from byoc.hyperparameters import resolve
    from byoc.preprocessing import coerce_features, feature_schema
    from byoc.serving.inference import Predictor

    rng = np.random.default_rng(4)
    raw = request_frame(rng, 80, 7, [0.5])
    features = feature_schema(raw)
    X = coerce_features(raw, features, where="train")
    classifier = problem_type != "regression"
    y = rng.permutation(np.arange(len(X)) % 2) if classifier else rng.normal(size=len(X))
    params = resolve({"algorithm": "svm", **({"calibration_folds": "3"} if classifier else {})})
    pipeline = algorithms.build(problem_type, params, features).fit(X, y)
    built = compiled.build(pipeline, [X])
    for name, data in built.files().items():
        (tmp_path / name).write_bytes(data)
    loaded = compiled.load(pipeline, {"compiled": built.entry}, tmp_path)
    classes = ["0", "1"] if classifier else []
    metadata = {"problem_type": problem_type, "classes": classes, "features": [f.to_dict() for f in features]}
    predictor = Predictor(artifact.ModelArtifact(loaded.pipeline, metadata))
    assert predictor.enable_fast_path()
    assert isinstance(predictor.row_model, KernelRows)
    fresh = coerce_features(request_frame(rng, 10, 10, [0.5]), features, where="request")
    for i in range(len(fresh)):
        got = predictor.row_model.predict(columns_of(fresh.iloc[[i]], features))
        np.testing.assert_allclose(
            got, pipeline.predict(fresh.iloc[[i]]), rtol=compiled.RTOL, atol=compiled.ATOL
        )
