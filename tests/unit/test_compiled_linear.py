"""A linear model's scores from a request's columns (compiled_linear) equal scikit-learn's to the bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byoc import algorithms, compiled
from byoc.compiled_linear import LinearRows
from byoc.hyperparameters import resolve
from byoc.preprocessing import RowEncoder, coerce_features, feature_schema

PROBLEMS = ("binary_classification", "multiclass_classification", "regression")


def frame(rng: np.random.Generator, n: int, levels: int) -> pd.DataFrame:
    """Numbers with missing values, zeros and a constant column; text with missing, rare and many
    categories (past the one-hot cap, so some share the infrequent code)."""
    numbers = rng.normal(size=n) * 10.0 ** rng.integers(-3, 4)
    numbers[rng.random(n) < 0.2] = np.nan
    counts = rng.integers(0, 4, n).astype(float)
    counts[rng.random(n) < 0.1] = np.nan
    many = rng.choice([f"v{i}" for i in range(levels)], n).astype(object)
    many[rng.random(n) < 0.1] = None
    few = rng.choice(["a", "b", "None"], n).astype(object)
    few[rng.random(n) < 0.2] = None
    return pd.DataFrame({"x": numbers, "count": counts, "const": np.full(n, 0.5), "many": many, "few": few})


def labels(X: pd.DataFrame, problem_type: str, rng: np.random.Generator) -> np.ndarray:
    score = np.nan_to_num(X["count"].to_numpy()) + (X["few"] == "a").to_numpy() + rng.normal(0, 0.5, len(X))
    if problem_type == "regression":
        return score
    if problem_type == "binary_classification":
        return (score > 1.5).astype(np.int64)
    return np.digitize(score, [1.0, 2.0]).astype(np.int64)


def columns_of(X: pd.DataFrame, features) -> list[np.ndarray]:
    """A request's columns as the server's Batch holds them."""
    return [X[f.name].to_numpy(dtype=np.float64 if f.kind == "numeric" else object) for f in features]


def fitted(seed: int, problem_type: str, levels: int, sparse_threshold: float):
    rng = np.random.default_rng(seed)
    raw = frame(rng, 160, levels)
    features = feature_schema(raw)
    X = coerce_features(raw, features, where="train")
    pipeline = algorithms.build(problem_type, resolve({"algorithm": "linear"}), features)
    pipeline.steps[0][1].set_params(sparse_threshold=sparse_threshold)
    pipeline.fit(X, labels(X, problem_type, rng))
    fresh = frame(rng, 40, levels + 3)  # unseen categories too
    fresh.loc[::5, "x"] = 0.0
    return pipeline, features, coerce_features(fresh, features, where="request")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    problem_type=st.sampled_from(PROBLEMS),
    levels=st.sampled_from([3, 40, 130]),
)
def test_scores_from_the_columns_equal_scikit_learns_to_the_bit(seed, problem_type, levels):
    """Each row alone and the rows as one batch: the decision function, probabilities and labels
    of scikit-learn's own pipeline, bit for bit (the same terms summed in the same order)."""
    pipeline, features, fresh = fitted(seed, problem_type, levels, sparse_threshold=1.0)
    encoder = RowEncoder.of(pipeline.steps[0][1], [f.name for f in features])
    model = compiled.LinearEstimator(pipeline.steps[-1][1])
    rows = LinearRows.of(encoder, model)
    assert rows is not None
    for batch in [fresh, *(fresh.iloc[[i]] for i in range(len(fresh)))]:
        columns = columns_of(batch, features)
        expected = model.decision_function(pipeline.steps[0][1].transform(batch))
        assert np.array_equal(rows.decision_function(columns), expected)
        assert np.array_equal(rows.predict(columns), pipeline.predict(batch))
        if problem_type != "regression":
            assert np.array_equal(rows.predict_proba(columns), pipeline.predict_proba(batch))


@pytest.mark.parametrize("problem_type", PROBLEMS)
def test_a_dense_encoder_output_keeps_the_matrix_product(problem_type):
    """BLAS sums a dense row in an order of its own: no column form then."""
    pipeline, features, _ = fitted(1, problem_type, 3, sparse_threshold=0.0)
    encoder = RowEncoder.of(pipeline.steps[0][1], [f.name for f in features])
    assert not encoder.sparse_output
    assert LinearRows.of(encoder, compiled.LinearEstimator(pipeline.steps[-1][1])) is None


@pytest.mark.parametrize("problem_type", PROBLEMS)
def test_the_server_answers_a_few_rows_from_the_columns_as_the_pipeline_does(problem_type):
    """A compiled linear model behind a CSR encoder: the server's few-row path takes the column
    form, and every field equals what the scikit-learn pipeline answers (no row path at all)."""
    from sklearn.pipeline import Pipeline

    from byoc import artifact
    from byoc.serving.inference import Predictor

    pipeline, features, fresh = fitted(2, problem_type, 40, sparse_threshold=1.0)
    served = Pipeline([pipeline.steps[0], ("model", compiled.LinearEstimator(pipeline.steps[-1][1]))])
    metadata = {
        "problem_type": problem_type,
        "classes": [] if problem_type == "regression" else [str(c) for c in pipeline.classes_],
        "features": [f.to_dict() for f in features],
    }
    fast = Predictor(artifact.ModelArtifact(served, metadata))
    slow = Predictor(artifact.ModelArtifact(pipeline, metadata))
    assert fast.enable_fast_path() and isinstance(fast.row_model, LinearRows)
    rows = fresh.astype(object).where(fresh.notna(), None).to_numpy().tolist()
    for batch in (rows, rows[:1], rows[3:4]):
        a = fast.predict(fast.schema.from_rows(batch), fast.available_fields)
        b = slow.predict(slow.schema.from_rows(batch), slow.available_fields)
        for field in fast.available_fields:
            assert np.array_equal(np.asarray(a.values[field]), np.asarray(b.values[field])), field
