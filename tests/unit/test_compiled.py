"""Compiled inference: the compiled pipeline answers like scikit-learn, or scikit-learn answers."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byoc import algorithms, artifact, compiled, compiled_onnx
from byoc.errors import ModelLoadError
from byoc.hyperparameters import resolve
from byoc.preprocessing import coerce_features, feature_schema
from support import assert_compiled_answers as assert_same_answers
from support import described

TINY = {
    "random_forest": {"n_estimators": 12},
    "extra_trees": {"n_estimators": 12},
    "gradient_boosting": {"max_iter": 20},
    "knn": {"n_neighbors": 3},
    "ensemble": {
        "n_estimators": 8,
        "max_iter": 15,
        "cv_folds": 2,
        "ensemble_members": ["random_forest", "extra_trees", "gradient_boosting", "linear"],
    },
}
PROBLEMS = ("binary_classification", "multiclass_classification", "regression")
COMPILED_ALGORITHMS = ("random_forest", "extra_trees", "gradient_boosting", "ensemble")


def frame(n: int, seed: int, *, categorical: bool = True) -> pd.DataFrame:
    """Numeric columns with missing values (and a text column unless ``categorical=False``)."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {
        "a": rng.normal(size=n),
        "b": np.where(rng.random(n) < 0.15, np.nan, rng.integers(0, 5, n).astype(float)),
        "c": np.round(rng.exponential(size=n), 2),
    }
    if categorical:
        text = rng.choice(["red", "green", "blue", "grey"], n).astype(object)
        text[rng.random(n) < 0.1] = None
        columns["colour"] = text
    return pd.DataFrame(columns)


def target(X: pd.DataFrame, problem_type: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 100)
    score = X["a"].to_numpy() + np.nan_to_num(X["b"].to_numpy()) / 3 + rng.normal(0, 0.3, len(X))
    if "colour" in X:
        score = score + (X["colour"] == "red").to_numpy()
    if problem_type == "regression":
        return score
    if problem_type == "binary_classification":
        return (score > 0.5).astype(np.int64)
    return np.digitize(score, [0.0, 1.0]).astype(np.int64)


def fitted(algorithm: str, problem_type: str, seed: int, *, categorical: bool = True, **extra):
    X = frame(300, seed, categorical=categorical)
    features = feature_schema(X)
    X = coerce_features(X, features, where="train")
    params = resolve({"algorithm": algorithm, **TINY.get(algorithm, {}), **extra})
    pipeline = algorithms.build(problem_type, params, features).fit(X, target(X, problem_type, seed))
    fresh = frame(200, seed + 1, categorical=categorical)
    if categorical:
        fresh.loc[::7, "colour"] = "never-seen"
    return pipeline, X, coerce_features(fresh, features, where="request")


def saved(tmp_path, pipeline, built):
    """The pipeline and what compiled.build made of it, saved as train saves them, loaded back."""
    metadata = {**described(pipeline), "algorithm": "x", "compiled": built.entry}
    artifact.save(tmp_path, pipeline, metadata, built.files())
    return artifact.load(tmp_path)


def roundtrip(pipeline, frames, tmp_path):
    """build -> save beside the model -> artifact.load -> compiled.load, as train and serve do."""
    built = compiled.build(pipeline, frames)
    model = saved(tmp_path, pipeline, built)
    return built, compiled.load(model.estimator, model.metadata, model.path)


def assert_exactly_the_same(reference, candidate, X):
    """Every answer equal to the bit, for the whole frame and row by row (a forest's reference on
    one thread, as served: on several, scikit-learn sums its trees in no fixed order)."""
    from byoc.serving.inference import single_threaded

    reference = single_threaded(reference)
    method = "predict_proba" if hasattr(reference, "predict_proba") else "predict"
    for rows in [X, *(X.iloc[[i]] for i in range(0, len(X), 17))]:
        assert np.array_equal(candidate.predict(rows), reference.predict(rows))
        assert np.array_equal(getattr(candidate, method)(rows), getattr(reference, method)(rows))


@pytest.mark.parametrize("problem_type", PROBLEMS)
@pytest.mark.parametrize("algorithm", algorithms.buildable())
def test_every_algorithm_answers_like_scikit_learn(algorithm, problem_type, tmp_path):
    pipeline, X, fresh = fitted(algorithm, problem_type, seed=3)
    built, loaded = roundtrip(pipeline, [X], tmp_path)
    assert_same_answers(pipeline, loaded.pipeline, fresh)
    backends = {step["slot"]: step["backend"] for step in built.entry["steps"]}
    if algorithm in ("random_forest", "extra_trees"):  # float64 trees in onnxruntime: the very same numbers
        assert backends == {"model": "onnxruntime"}
        assert loaded.compiled == ("model",)
        assert isinstance(loaded.pipeline.steps[-1][1], compiled_onnx.ForestEstimator)
        assert_exactly_the_same(pipeline, loaded.pipeline, fresh)
    elif algorithm == "gradient_boosting":  # with a text column: categorical splits
        assert backends == {"model": "onnxruntime"}
        assert loaded.compiled == ("model",)
        assert isinstance(loaded.pipeline.steps[-1][1], compiled.OnnxBoostingEstimator)
        final = loaded.pipeline.steps[-1][1]
        encoded = pipeline[:-1].transform(fresh)
        assert np.array_equal(final._scores(encoded), pipeline.steps[-1][1]._raw_predict(encoded))
    elif algorithm == "ensemble":
        forests = {"member:random_forest", "member:extra_trees"}
        assert {backends[slot] for slot in forests} == {"onnxruntime"}
        assert backends["member:gradient_boosting"] == "onnxruntime"
        assert backends["member:linear"] == "numpy"
        assert set(loaded.compiled) == forests | {"member:gradient_boosting", "member:linear"}
    elif algorithm == "linear":  # its own coefficients, multiplied out: the very same numbers
        assert backends == {"model": "numpy"}
        assert isinstance(loaded.pipeline.steps[-1][1], compiled.LinearEstimator)
        assert_exactly_the_same(pipeline, loaded.pipeline, fresh)
    elif algorithm == "knn":  # its own training matrix, searched here
        assert backends == {"model": "numpy"}
        assert isinstance(loaded.pipeline.steps[-1][1], compiled.compiled_knn.NeighboursEstimator)
        assert_same_answers(pipeline, loaded.pipeline, fresh.iloc[:1])
    elif algorithm == "svm":  # its support vectors' kernel values, summed here
        assert backends == {"model": "numpy"}
        assert isinstance(loaded.pipeline.steps[-1][1], compiled.compiled_svm.KernelMachine)
        assert_same_answers(pipeline, loaded.pipeline, fresh.iloc[:1])
    else:  # decision_tree: scikit-learn, with the reason
        assert set(backends.values()) == {"scikit-learn"}
        assert all(step["reason"] for step in built.entry["steps"])
        assert loaded.compiled == ()
        assert not isinstance(loaded.pipeline.steps[-1][1], compiled.TreeliteEstimator)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    problem_type=st.sampled_from(PROBLEMS),
    algorithm=st.sampled_from(["random_forest", "extra_trees", "gradient_boosting"]),
    categorical=st.booleans(),
)
def test_random_models_compile_and_agree(seed, problem_type, algorithm, categorical, tmp_path_factory):
    """With or without a text column (gradient_boosting's categorical splits: new rows hold
    missing and never-seen categories), every answer on new rows agrees."""
    pipeline, X, fresh = fitted(algorithm, problem_type, seed, categorical=categorical)
    _, loaded = roundtrip(pipeline, [X], tmp_path_factory.mktemp("m"))
    assert loaded.compiled == ("model",)
    assert_same_answers(pipeline, loaded.pipeline, fresh)
    assert_same_answers(pipeline, loaded.pipeline, fresh.iloc[:1])  # a single row
    if algorithm != "gradient_boosting":  # forests in onnxruntime: scikit-learn's own arithmetic
        assert_exactly_the_same(pipeline, loaded.pipeline, fresh)


def test_disagreement_at_load_falls_back_with_a_logged_reason(tmp_path, caplog):
    pipeline, X, fresh = fitted("random_forest", "binary_classification", seed=5)
    built = compiled.build(pipeline, [X])
    model = saved(tmp_path, pipeline, built)
    tree = model.estimator.steps[-1][1].estimators_[0].tree_
    tree.value[:] = tree.value[:, :, ::-1]  # the scikit-learn reference now answers otherwise
    with caplog.at_level(logging.WARNING, logger="byoc.compiled"):
        loaded = compiled.load(model.estimator, model.metadata, model.path)
    assert loaded.compiled == ()
    assert loaded.pipeline is model.estimator
    assert "differ" in loaded.reasons["model"]
    assert "compiled inference for model is off" in caplog.text


def test_conversion_failure_keeps_scikit_learn_and_records_why(monkeypatch, caplog):
    import treelite.sklearn

    def broken(estimator):
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(treelite.sklearn, "import_model", broken)
    monkeypatch.setattr(compiled_onnx, "convert", broken)  # a forest's first choice, then treelite
    pipeline, X, _ = fitted("extra_trees", "regression", seed=6)
    with caplog.at_level(logging.INFO, logger="byoc.compiled"):
        built = compiled.build(pipeline, [X])
    (step,) = built.entry["steps"]
    assert step["backend"] == "scikit-learn"
    assert "converter exploded" in step["reason"]
    assert "converter exploded" in caplog.text
    assert built.files() == {} and built.entry["file"] is None


def test_disagreement_at_training_keeps_scikit_learn(monkeypatch):
    pipeline, X, _ = fitted("random_forest", "multiclass_classification", seed=7)
    real = compiled_onnx.ForestEstimator.predict_proba
    monkeypatch.setattr(
        compiled_onnx.ForestEstimator, "predict_proba", lambda self, X: real(self, X) * 0.9 + 0.1 / 3
    )
    built = compiled.build(pipeline, [X])
    assert built.entry["steps"][0]["backend"] == "scikit-learn"
    assert "probabilities differ" in built.entry["steps"][0]["reason"]


def _off_by_1e4(real):
    return lambda self, X: real(self, X) * (1 - 3e-4) + 1e-4  # rows still sum to 1 (3 classes)


def _other_label(real):
    return lambda self, X: np.roll(real(self, X), 1)  # every row's label another row's


def _raising(real):
    def check(self, X):
        raise RuntimeError("session exploded")

    return check


@pytest.mark.parametrize(
    ("method", "wrong", "reason"),
    [
        ("predict_proba", _off_by_1e4, "probabilities differ by up to 0.0002"),
        ("predict", _other_label, "predicted labels differ"),
        ("predict_proba", _raising, "the check failed (RuntimeError: session exploded)"),
    ],
    ids=["probabilities 1e-4 off", "labels differ alone", "the check raises"],
)
def test_a_compiled_form_failing_its_check_by_any_margin_keeps_scikit_learn(
    monkeypatch, method, wrong, reason
):
    """The check holds the compiled answers to scikit-learn's within 1e-6 (labels equal): a form
    whose probabilities are 1e-4 off, whose labels alone differ, or whose check raised is not
    served; a loosened tolerance, a label check dropped or a failed check taken for a pass served
    answers scikit-learn never gives."""
    pipeline, X, _ = fitted("random_forest", "multiclass_classification", seed=7)
    monkeypatch.setattr(
        compiled_onnx.ForestEstimator, method, wrong(getattr(compiled_onnx.ForestEstimator, method))
    )
    built = compiled.build(pipeline, [X])
    (step,) = built.entry["steps"]
    assert step["backend"] == "scikit-learn"
    assert reason in step["reason"]
    assert built.files() == {}


def test_switched_off_compiles_nothing():
    pipeline, X, _ = fitted("random_forest", "regression", seed=8)
    built = compiled.build(pipeline, [X], enabled=False)
    assert built.files() == {}
    assert built.entry["steps"][0]["reason"] == "compiled_inference=false"


def test_a_corrupt_compiled_file_fails_the_sha256_check(tmp_path):
    pipeline, X, _ = fitted("random_forest", "binary_classification", seed=9)
    built, _ = roundtrip(pipeline, [X], tmp_path)
    path = tmp_path / compiled.COMPILED_FILE
    assert artifact.read_metadata(tmp_path)["files"][compiled.COMPILED_FILE]["sha256"] == artifact.sha256_of(
        path
    )
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"model\.compiled\.npz: sha256 .* does not match"):
        artifact.load(tmp_path)
    path.unlink()
    with pytest.raises(ModelLoadError, match=r"model\.compiled\.npz: missing"):
        artifact.load(tmp_path)


def test_a_model_saved_before_compiled_inference_loads_and_predicts(tmp_path):
    """model.json without a ``compiled`` entry and no compiled file: scikit-learn answers."""
    pipeline, X, fresh = fitted("random_forest", "binary_classification", seed=10)
    artifact.save(tmp_path, pipeline, {**described(pipeline), "algorithm": "x"})
    assert {p.name for p in tmp_path.iterdir()} == {artifact.METADATA_FILE, artifact.MODEL_FILE}
    model = artifact.load(tmp_path)
    loaded = compiled.load(model.estimator, model.metadata, model.path)
    assert loaded.pipeline is model.estimator and loaded.compiled == ()
    assert_same_answers(pipeline, loaded.pipeline, fresh)


def test_small_batches_predict_compiled_and_large_ones_with_scikit_learn(tmp_path):
    """Past COMPILED_MAX_ROWS rows scikit-learn's trees are the faster; both answer alike."""
    from byoc.serving.inference import COMPILED_MAX_ROWS, Predictor

    pipeline, X, fresh = fitted("random_forest", "binary_classification", seed=11)
    built = compiled.build(pipeline, [X])
    features = [f.to_dict() for f in feature_schema(X)]
    metadata = {"problem_type": "binary_classification", "algorithm": "random_forest", "classes": ["0", "1"]}
    metadata["features"] = features
    artifact.save(tmp_path, pipeline, {**metadata, "compiled": built.entry}, built.files())
    predictor = Predictor(artifact.load(tmp_path))
    rows = pd.concat([fresh] * 3, ignore_index=True).iloc[: COMPILED_MAX_ROWS + 1]
    large = predictor.schema.from_frame(rows, positional=False)
    small = predictor.schema.from_frame(rows.iloc[:COMPILED_MAX_ROWS], positional=False)
    assert isinstance(predictor._inputs(small)[0].steps[-1][1], compiled_onnx.ForestEstimator)
    assert predictor._inputs(large)[0] is predictor.batch_estimator
    assert not isinstance(predictor.batch_estimator.steps[-1][1], compiled_onnx.ForestEstimator)
    fields = ("predicted_label", "probabilities")
    whole = predictor.predict(large, fields)
    part = predictor.predict(small, fields)
    assert whole.values["predicted_label"][:COMPILED_MAX_ROWS] == part.values["predicted_label"]
    np.testing.assert_allclose(
        whole.values["probabilities"][:COMPILED_MAX_ROWS],
        part.values["probabilities"],
        rtol=1e-12,
        atol=1e-15,
    )


def test_a_linear_model_whose_product_disagrees_at_load_falls_back(tmp_path, monkeypatch, caplog):
    """The multiplied-out linear model is checked at load like a treelite one (say a later
    scikit-learn changed its link): on disagreement scikit-learn answers, with the reason."""
    pipeline, X, fresh = fitted("linear", "multiclass_classification", seed=12)
    built = compiled.build(pipeline, [X])
    assert built.entry["steps"][0]["backend"] == "numpy"
    model = saved(tmp_path, pipeline, built)
    real = compiled.LinearEstimator.predict_proba
    monkeypatch.setattr(compiled.LinearEstimator, "predict_proba", lambda self, X: real(self, X) ** 2)
    with caplog.at_level(logging.WARNING, logger="byoc.compiled"):
        loaded = compiled.load(model.estimator, model.metadata, model.path)
    assert loaded.compiled == () and loaded.pipeline is model.estimator
    assert "probabilities differ" in loaded.reasons["model"]
    assert_same_answers(pipeline, loaded.pipeline, fresh)


@pytest.mark.parametrize("algorithm", ["linear", "knn"])
def test_a_model_trained_before_its_numpy_form_serves_with_scikit_learn(tmp_path, algorithm):
    """model.json recording the final estimator (LogisticRegression, knn's neighbours) on
    scikit-learn, with no probe rows for it, as models trained before loads as it was."""
    pipeline, X, fresh = fitted(algorithm, "binary_classification", seed=13)
    name = type(pipeline.steps[-1][1]).__name__
    entry = {
        "file": None,
        "tolerance": {"atol": compiled.ATOL, "rtol": compiled.RTOL, "labels": "equal"},
        "steps": [{"slot": "model", "estimator": name, "backend": "scikit-learn", "reason": "old"}],
    }
    artifact.save(tmp_path, pipeline, {**described(pipeline), "algorithm": "x", "compiled": entry})
    model = artifact.load(tmp_path)
    loaded = compiled.load(model.estimator, model.metadata, model.path)
    assert loaded.compiled == () and loaded.pipeline is model.estimator
    assert_exactly_the_same(pipeline, loaded.pipeline, fresh)


@settings(max_examples=50, deadline=None)
@given(
    known=st.lists(
        st.lists(st.integers(-2, 40), min_size=1, max_size=12, unique=True).map(sorted),
        min_size=1,
        max_size=4,
    ),
    cells=st.lists(
        st.one_of(st.integers(-3, 45).map(float), st.sampled_from([np.nan, 0.5, -1e9, 1e12])), min_size=1
    ),
)
def test_the_category_table_indexes_as_category_index_does(known, cells):
    """One table look-up for all categorical columns gives each column's category_index."""
    categories = [(2 * j, np.asarray(k, dtype=np.float64)) for j, k in enumerate(known)]
    width = 2 * len(known)
    values = np.resize(np.asarray(cells, dtype=np.float64), (5, width))
    expected = values.copy()
    for column, k in categories:
        expected[:, column] = compiled.category_index(expected[:, column], k)
    table = compiled.CategoryTable.of(categories)
    assert table is not None
    table.index(values)
    np.testing.assert_array_equal(values, expected)


def test_a_forest_with_many_classes_stays_on_treelite(caplog):
    """Each tree would be walked once per class in onnxruntime: past MAX_TARGETS, treelite."""
    X = frame(300, 14)
    features = feature_schema(X)
    X = coerce_features(X, features, where="train")
    y = np.arange(len(X)) % (compiled_onnx.MAX_TARGETS + 1)
    params = resolve({"algorithm": "random_forest", **TINY["random_forest"]})
    pipeline = algorithms.build("multiclass_classification", params, features).fit(X, y)
    with caplog.at_level(logging.INFO, logger="byoc.compiled"):
        built = compiled.build(pipeline, [X])
    assert built.entry["steps"][0]["backend"] == "treelite"
    assert f"{compiled_onnx.MAX_TARGETS + 1} classes" in caplog.text


@pytest.mark.parametrize("problem_type", PROBLEMS)
def test_a_forest_compiled_for_treelite_before_still_loads_with_treelite(tmp_path, monkeypatch, problem_type):
    """Models trained before the onnxruntime form keep their treelite form, checked at load."""
    pipeline, X, fresh = fitted("random_forest", problem_type, seed=15)
    with monkeypatch.context() as patch:
        patch.setattr(compiled_onnx, "unsupported", lambda forest: "as trained before")
        built = compiled.build(pipeline, [X])
    assert built.entry["steps"][0]["backend"] == "treelite"
    model = saved(tmp_path, pipeline, built)
    loaded = compiled.load(model.estimator, model.metadata, model.path)
    assert loaded.backends == {"model": "treelite"}
    assert isinstance(loaded.pipeline.steps[-1][1], compiled.TreeliteEstimator)
    assert_same_answers(pipeline, loaded.pipeline, fresh)


def test_an_onnx_forest_that_disagrees_at_load_falls_back(tmp_path, caplog):
    """A forest whose stored ONNX trees no longer answer as scikit-learn: scikit-learn answers."""
    pipeline, X, fresh = fitted("extra_trees", "regression", seed=16)
    built, _ = roundtrip(pipeline, [X], tmp_path)
    assert built.entry["steps"][0]["backend"] == "onnxruntime"
    model = artifact.load(tmp_path)
    model.estimator.steps[-1][1].estimators_[0].tree_.value[:] += 1.0
    with caplog.at_level(logging.WARNING, logger="byoc.compiled"):
        loaded = compiled.load(model.estimator, model.metadata, model.path)
    assert loaded.compiled == () and loaded.pipeline is model.estimator
    assert "predicted values differ" in loaded.reasons["model"]
    assert "compiled inference for model is off" in caplog.text


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000), min_samples_leaf=st.sampled_from([1, 3, 7]), classes=st.sampled_from([2, 3])
)
def test_onnx_forests_answer_as_scikit_learn_to_the_bit(seed, min_samples_leaf, classes):
    """Pure leaves (a binary forest then written for class 1 alone) or mixed ones (every class
    written): the same probabilities and labels as scikit-learn, to the bit, on rows holding the
    encoder's unknown (-1) and missing (-2) codes too."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.integers(-2, 4, 200), np.round(rng.normal(size=200), 1)]).astype(np.float64)
    y = (X[:, 0] + X[:, 1] + rng.normal(0, 0.5, 200) > 0.5).astype(int) + (classes == 3) * (X[:, 1] > 1)
    kind = RandomForestClassifier if seed % 2 else ExtraTreesClassifier
    forest = kind(n_estimators=7, min_samples_leaf=min_samples_leaf, random_state=seed).fit(X, y)
    compiled_form = compiled_onnx.ForestEstimator(compiled_onnx.convert(forest), forest)
    probe = compiled.probe_matrix(X, with_nan=False)
    assert np.array_equal(compiled_form.predict_proba(probe), forest.predict_proba(probe))
    assert np.array_equal(compiled_form.predict(probe), forest.predict(probe))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), classes=st.sampled_from([0, 2, 3]), rows=st.sampled_from([1, 2, 65]))
def test_a_joint_session_answers_as_each_model_alone_and_as_scikit_learn_to_the_bit(seed, classes, rows):
    """A forest and a gradient boosting (classifiers of 2 or 3 classes, or regressors: 0) in one
    onnxruntime session: run together (the ensemble's row path), or each alone through its part
    (the others given no rows), the same bits as each in a session of its own and as
    scikit-learn's predict_proba / predict, on rows holding the encoder's codes -1, -2 and NaN."""
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )

    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.integers(-2, 4, 200), np.round(rng.normal(size=200), 1)]).astype(np.float64)
    y = X[:, 0] + X[:, 1] + rng.normal(0, 0.5, 200)
    if classes:
        y = (y > 0.5).astype(int) + (classes == 3) * (X[:, 1] > 1)
    forest_kind = RandomForestClassifier if classes else RandomForestRegressor
    boosting_kind = HistGradientBoostingClassifier if classes else HistGradientBoostingRegressor
    forest = forest_kind(n_estimators=7, min_samples_leaf=1 + seed % 4, random_state=seed).fit(X, y)
    boosting = boosting_kind(max_iter=9, random_state=seed).fit(X, y)
    models = [compiled_onnx.convert(forest), compiled_onnx.convert_boosting(boosting)]
    joint = compiled_onnx.Joint(models)
    apart = [
        compiled_onnx.ForestEstimator(models[0], forest),
        compiled.restore(compiled.ONNXRUNTIME, models[1], "float64", boosting),
    ]
    parts = [
        compiled_onnx.ForestEstimator(b"", forest, joint.part(0)),
        compiled.restore(compiled.ONNXRUNTIME, b"", "float64", boosting, joint.part(1)),
    ]
    probe = compiled.probe_matrix(X, with_nan=False)
    probe[rng.random(probe.shape) < 0.05] = np.nan  # forests never see NaN from byoc's encoder; still alike
    for start in range(0, 2 * rows, rows):
        batch = probe[start : start + rows]
        together = joint([part.rows(batch) for part in parts])
        for model, part, alone, out in zip([forest, boosting], parts, apart, together, strict=True):
            if classes:
                want = model.predict_proba(batch)
                for got in (part.proba_of(out), part.predict_proba(batch), alone.predict_proba(batch)):
                    assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)
            want = model.predict(batch)
            for got in (part.predict_of(out), part.predict(batch), alone.predict(batch)):
                assert np.array_equal(got, want, equal_nan=True)


def test_a_binary_forest_with_pure_leaves_is_written_for_one_class():
    """Unique training rows grow pure leaves: class 1's trees alone, class 0 by complement."""
    from sklearn.ensemble import RandomForestClassifier

    X = np.arange(40, dtype=np.float64).reshape(20, 2)
    y = np.arange(20) % 3 == 0
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    assert compiled_onnx.targets(forest) == [1]
    impure = RandomForestClassifier(n_estimators=5, min_samples_leaf=3, random_state=0).fit(X, y)
    assert compiled_onnx.targets(impure) == [0, 1]
    for model in (forest, impure):
        compiled_form = compiled_onnx.ForestEstimator(compiled_onnx.convert(model), model)
        probe = compiled.probe_matrix(X, with_nan=False)
        assert np.array_equal(compiled_form.predict_proba(probe), model.predict_proba(probe))


def _small_forest() -> tuple[compiled_onnx.ForestEstimator, np.ndarray]:
    from sklearn.ensemble import RandomForestClassifier

    X = np.column_stack([np.arange(60.0), np.arange(60.0) % 7])
    forest = RandomForestClassifier(n_estimators=5, min_samples_leaf=3, random_state=0).fit(
        X, np.arange(60) % 3
    )
    return compiled_onnx.ForestEstimator(compiled_onnx.convert(forest), forest), X


def test_one_row_takes_onnxruntimes_direct_call_with_the_installed_onnxruntime(monkeypatch):
    """The one-row path calls onnxruntime's private ``_sess`` / ``_iobinding``; an onnxruntime
    upgrade that renames them would leave serving silently slower: it fails here instead."""
    compiled_form, X = _small_forest()
    assert compiled_form.run.direct, compiled_onnx.onnxruntime_version()
    expected = compiled_form.run(X[:2])[:1]  # two rows: session.run

    def public(*args: object) -> None:
        raise AssertionError("the one-row path took the public run_with_iobinding")

    monkeypatch.setattr(compiled_form.session, "run_with_iobinding", public)
    for _ in range(2):  # the first call binds the arrays, the second reuses them
        assert np.array_equal(compiled_form.run(X[:1]), expected)


class _PublicOnly:
    """An onnxruntime session without the private names (as after an upgrade that renamed them)."""

    def __init__(self, session: object) -> None:
        self._session = session

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._session, name)


def test_without_onnxruntimes_private_names_one_row_answers_the_same_and_says_so_once(caplog):
    compiled_form, X = _small_forest()
    with caplog.at_level(logging.WARNING, logger="byoc.compiled_onnx"):
        public = compiled_onnx.Runner(_PublicOnly(compiled_form.session))
        answers = [public(X[i : i + 1]) for i in (0, 1, 0)]
    assert not public.direct
    for i, answer in zip((0, 1, 0), answers, strict=True):
        assert np.array_equal(answer, compiled_form.run(X[i : i + 1]))
    warnings = [r.getMessage() for r in caplog.records if r.name == "byoc.compiled_onnx"]
    assert len(warnings) == 1, warnings  # at load, not per request
    assert "one-row predictions take the public run_with_iobinding" in warnings[0]


@pytest.mark.parametrize("problem_type", PROBLEMS)
def test_boosting_compiled_for_treelite_before_still_loads_with_treelite(tmp_path, monkeypatch, problem_type):
    """gradient_boosting trained before its onnxruntime form keeps its treelite form."""
    pipeline, X, fresh = fitted("gradient_boosting", problem_type, seed=17)
    with monkeypatch.context() as patch:
        patch.setattr(compiled_onnx, "missing", lambda: "as trained before")
        built = compiled.build(pipeline, [X])
    assert built.entry["steps"][0]["backend"] == "treelite"
    model = saved(tmp_path, pipeline, built)
    loaded = compiled.load(model.estimator, model.metadata, model.path)
    assert loaded.backends == {"model": "treelite"}
    assert type(loaded.pipeline.steps[-1][1]) is compiled.TreeliteEstimator
    assert_same_answers(pipeline, loaded.pipeline, fresh)


def _forest_with_missing_values(seed: int, kind_index: int) -> tuple[object, np.ndarray]:
    """A small forest fitted on rows with NaN (so its splits send missing values either way)."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, RandomForestRegressor

    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.integers(-2, 4, 300), np.round(rng.normal(size=300), 1), rng.normal(size=300)])
    X[rng.random(X.shape) < 0.15] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1], nan=2.0) + rng.normal(0, 0.5, 300) > 0.5).astype(int)
    kind = [RandomForestClassifier, ExtraTreesClassifier, RandomForestRegressor][kind_index]
    target = y + X[:, 2] if kind is RandomForestRegressor else y
    return kind(n_estimators=6, min_samples_leaf=1 + seed % 3, random_state=seed).fit(
        X, np.nan_to_num(target)
    ), X


def _edge_rows(forest, X: np.ndarray) -> np.ndarray:
    """Rows through every split's own threshold and the float32 values either side of it, plus NaN,
    signed zeros and the largest float32 values in each column: where a flipped comparison
    (``-x <= -t'``) could differ."""
    rows = [X]
    for member in forest.estimators_:
        tree = member.tree_
        for feature, threshold in zip(tree.feature, tree.threshold, strict=True):
            if feature < 0 or not np.isfinite(threshold):  # a leaf, or a split of NaN from the rest
                continue
            t32 = np.float32(threshold)
            for value in (
                threshold,
                t32,
                np.nextafter(t32, np.float32(np.inf)),
                np.nextafter(t32, np.float32(-np.inf)),
            ):
                row = X[len(rows) % len(X)].copy()
                row[feature] = value
                rows.append(row[None, :])
    for fill in (np.nan, 0.0, -0.0, 3.4e38, -3.4e38):  # scikit-learn refuses infinities
        for column in range(X.shape[1]):
            copy = X[:8].copy()
            copy[:, column] = fill
            rows.append(copy)
    return np.vstack(rows)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), kind_index=st.sampled_from([0, 1, 2]))
def test_forests_laid_out_by_visits_answer_as_scikit_learn_with_missing_values(seed, kind_index):
    """Splits whose left child is the more visited are written flipped (``-x <= -t'`` on the
    negated row, NaN's way swapped): the same answers, to the bit, for NaN and values at and
    beside every threshold."""
    forest, X = _forest_with_missing_values(seed, kind_index)
    assert any(compiled_onnx._heavier_left(member.tree_).any() for member in forest.estimators_)
    compiled_form = compiled_onnx.ForestEstimator(compiled_onnx.convert(forest), forest)
    assert compiled_form.rounds_input
    rows = _edge_rows(forest, X)
    for batch in (rows, rows[:1], rows[-1:]):
        assert np.array_equal(compiled_form.predict(batch), forest.predict(batch))
        if hasattr(forest, "classes_"):
            assert np.array_equal(compiled_form.predict_proba(batch), forest.predict_proba(batch))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    kind=st.sampled_from(["binary", "multiclass", "regression"]),
    extra=st.booleans(),
    depth=st.sampled_from([1, 2, 4, None]),
    one_leaf=st.booleans(),
)
def test_trees_converted_whole_arrays_at_a_time_answer_as_scikit_learns_trees(
    seed, kind, extra, depth, one_leaf
):
    """The conversion builds each tree's nodes from scikit-learn's ``tree_`` arrays whole: any
    node written with another child, feature, threshold or weight than the tree's (or trees of
    one leaf, next to deep ones, written differently) shows here as an answer unlike
    scikit-learn's, compared to the bit on rows at and beside every threshold."""
    from sklearn import ensemble

    rng = np.random.default_rng(seed)
    X = np.round(rng.normal(size=(200, 4)) * [1, 10, 1e-3, 1], 2)
    X[rng.random(X.shape) < 0.1] = np.nan
    signal = np.nan_to_num(X[:, 0]) + rng.normal(0, 0.7, 200)
    y = {"binary": signal > 0, "multiclass": np.digitize(signal, [-1, 0, 1]), "regression": signal}[kind]
    family = "ExtraTrees" if extra else "RandomForest"
    few = {"bootstrap": True, "max_samples": 4} if one_leaf else {}
    model = getattr(ensemble, family + ("Regressor" if kind == "regression" else "Classifier"))(
        n_estimators=5, max_depth=depth, random_state=seed, **few
    )
    if one_leaf:  # trees of one leaf (their 4 rows had one target) among trees of a few splits
        y = np.where(np.arange(200) < 190, y[0], y)
    model.fit(X, y, sample_weight=rng.uniform(0.5, 2, 200))
    compiled_form = compiled_onnx.ForestEstimator(compiled_onnx.convert(model), model)
    rows = _edge_rows(model, X)
    assert np.array_equal(compiled_form.predict(rows), model.predict(rows))
    if kind != "regression":
        assert np.array_equal(compiled_form.predict_proba(rows), model.predict_proba(rows))


def _forest_form_written_before(forest) -> bytes:
    """A forest's ONNX form as written before the layout and the graph's rounding (no metadata:
    the estimator rounds the rows)."""
    writer = compiled_onnx._Writer()
    written = compiled_onnx.targets(forest)
    for member in forest.estimators_:
        tree = member.tree_
        weights = compiled_onnx._leaf_weights(tree)

        splits = tree.children_left != -1
        fields = compiled_onnx.Splits(
            feature=tree.feature[splits],
            threshold=tree.threshold[splits],
            mode=np.full(splits.sum(), compiled_onnx._LEQ),
            missing=tree.missing_go_to_left[splits],
        )
        for target, column in enumerate(written):
            left = tree.children_left
            writer.tree(left, tree.children_right, left == -1, fields, weights[:, column], target)
    return writer.model(int(forest.n_features_in_), len(written))


def test_forms_written_before_still_answer_as_scikit_learn():
    """Models trained before keep their stored forms: a forest's without the layout or the
    graph's rounding, gradient boosting's over category indices; both still answer alike."""
    forest, X = _forest_with_missing_values(3, 0)
    before = compiled_onnx.ForestEstimator(_forest_form_written_before(forest), forest)
    assert not before.rounds_input
    rows = _edge_rows(forest, X)
    assert np.array_equal(before.predict_proba(rows), forest.predict_proba(rows))
    assert np.array_equal(before.predict_proba(rows[:1]), forest.predict_proba(rows[:1]))

    pipeline, frame_, _ = fitted("gradient_boosting", "multiclass_classification", seed=5)
    boosting = pipeline.steps[-1][1]
    categories = compiled._hist_categories(boosting)
    assert categories  # the colour column
    indices, codes = (
        compiled.restore(compiled.ONNXRUNTIME, form, "float64", boosting)
        for form in (
            compiled_onnx.convert_boosting(boosting),
            compiled_onnx.convert_boosting(boosting, categories),
        )
    )
    assert indices.category_table is not None and codes.category_table is None
    encoded = compiled.probe_matrix(compiled._encoded(pipeline, frame_), with_nan=True)
    column = categories[0][0]
    odd = encoded[:6].copy()
    odd[:, column] = [3.5, 999.0, -7.0, -1e300, -0.0, 1e300]  # never coded, yet each has a way
    for rows in (np.vstack([encoded, odd]), encoded[:1], odd[:1]):
        assert np.array_equal(codes._scores(rows), indices._scores(rows))
        assert np.array_equal(codes.predict(rows), boosting.predict(rows))
    np.testing.assert_allclose(codes.predict_proba(encoded), boosting.predict_proba(encoded), rtol=1e-12)


def test_a_forests_answers_from_one_session_output_leave_it_as_it_was():
    """proba_of then predict_of on the same output: the second answer must not see the first's
    arithmetic (an in-place mean divided the sums twice and could turn a 1-ulp lead into a tie,
    and the label with it)."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(1194)
    X = np.column_stack([rng.integers(-2, 4, 200), np.round(rng.normal(size=200), 1)]).astype(np.float64)
    y = np.digitize(X[:, 0] + X[:, 1] + rng.normal(0, 0.5, 200), [0.0, 1.0])  # 3 classes
    forest = RandomForestClassifier(n_estimators=7, min_samples_leaf=4, random_state=1194).fit(X, y)
    model = compiled_onnx.ForestEstimator(compiled_onnx.convert(forest), forest)
    out = model.run(model.rows(X[:50]))
    before = out.copy()
    proba = model.proba_of(out)
    assert np.array_equal(out, before)
    assert np.array_equal(proba, forest.predict_proba(X[:50]))
    assert np.array_equal(model.predict_of(out), forest.predict(X[:50]))


def _split_values(final) -> list[float]:
    """Every numeric split threshold of a tree model (a forest's trees, HistGradientBoosting's
    predictors; none for other models) and the float64 and float32 values either side of it, with
    the float64 midpoints between float32 neighbours (they round to float32 one way or the other)."""
    thresholds: set[float] = set()
    for tree in getattr(final, "estimators_", None) or []:
        if hasattr(tree, "tree_"):
            thresholds |= {
                float(t) for f, t in zip(tree.tree_.feature, tree.tree_.threshold, strict=True) if f >= 0
            }
    for iteration in getattr(final, "_predictors", None) or []:
        for predictor in iteration:
            nodes = predictor.nodes
            split = (nodes["is_leaf"] == 0) & (nodes["is_categorical"] == 0)
            thresholds |= set(nodes["num_threshold"][split].tolist())
    values = []
    for t in sorted(thresholds)[:200]:
        t32 = np.float32(t)
        up, down = np.nextafter(t32, np.float32(np.inf)), np.nextafter(t32, np.float32(-np.inf))
        values += [t, np.nextafter(t, np.inf), np.nextafter(t, -np.inf), float(t32), float(up), float(down)]
        values += [(float(t32) + float(up)) / 2, (float(t32) + float(down)) / 2]
    return [float(v) for v in values]


ADVERSARIAL = [-0.0, 0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-40, 3.4e38, -3.4e38, np.nan, 0.5, 1e15]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    problem_type=st.sampled_from(PROBLEMS),
    algorithm=st.sampled_from(["random_forest", "extra_trees", "gradient_boosting", "linear", "knn", "svm"]),
    data=st.data(),
)
def test_adversarial_rows_get_scikit_learns_answers(seed, problem_type, algorithm, data, tmp_path_factory):
    """Rows at and one float64 / float32 step beside every split threshold, float32 midpoints,
    signed zeros, subnormals, the float32 extremes, NaN, unseen and missing categories: the
    compiled pipeline answers as scikit-learn's, as a batch and one row at a time."""
    pipeline, X, fresh = fitted(algorithm, problem_type, seed)
    _, loaded = roundtrip(pipeline, [X], tmp_path_factory.mktemp("m"))
    assert loaded.compiled == ("model",)
    values = _split_values(pipeline.steps[-1][1]) + ADVERSARIAL
    cells = st.sampled_from(values)
    rows = data.draw(st.lists(st.tuples(cells, cells, cells), min_size=1, max_size=40))
    colours = data.draw(
        st.lists(st.sampled_from(["red", "grey", None, "never-seen"]), min_size=len(rows), max_size=len(rows))
    )
    frame = fresh.iloc[: len(rows)].copy()
    frame[["a", "b", "c"]] = np.array(rows, dtype=np.float64)
    frame["colour"] = colours
    assert_same_answers(pipeline, loaded.pipeline, frame)
    for i in range(min(len(frame), 5)):
        assert_same_answers(pipeline, loaded.pipeline, frame.iloc[[i]])


def test_gradient_boostings_label_within_rounding_of_a_tie_is_scikit_learns():
    """scikit-learn labels a binary HistGradientBoosting by ``raw > 0``; a raw score in
    (0, 2.2e-16) has probabilities [0.5, 0.5], whose argmax the compiled form took: the other class."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    boosting = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(
        X, (X[:, 0] + rng.normal(0, 0.5, 300) > 0).astype(int)
    )
    row = X[:1]
    for _ in range(20):  # the baseline moved until the row's raw score is in (0, 2.2e-16)
        boosting._baseline_prediction = boosting._baseline_prediction - boosting._raw_predict(row) + 1e-17
        if 0 < boosting._raw_predict(row)[0, 0] < 2.2e-16:
            break
    assert 0 < boosting._raw_predict(row)[0, 0] < 2.2e-16
    assert boosting.predict_proba(row).tolist() == [[0.5, 0.5]]
    backend, model_bytes, dtype = compiled.convert(boosting)
    assert backend == compiled.ONNXRUNTIME
    candidate = compiled.restore(backend, model_bytes, dtype, boosting)
    rows = np.vstack([row, X[:5]])
    assert np.array_equal(candidate.predict(rows), boosting.predict(rows))
    assert np.array_equal(candidate.predict(row), boosting.predict(row))
    assert np.array_equal(candidate.predict_proba(rows), boosting.predict_proba(rows))


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 12), columns=st.sampled_from([1, 3, 127, 128, 129, 700, 1024, 1025, 2500]))
def test_the_probe_sets_every_column_to_every_code_in_rows_linear_in_the_columns(rows, columns):
    """Each column holds -1, -2 and NaN on some copy of a stored row, the rest of that copy as the
    row; up to 128 columns one copy per (first 8 rows, column), as before; wider, at most 1024
    copies per code (2,000 columns made 32,000 rows of 2,000 and 12 s of checks)."""
    X = np.arange(rows * columns, dtype=np.float64).reshape(rows, columns)
    probe = compiled.probe_matrix(X, with_nan=True)
    base = min(rows, compiled.PERTURBED_ROWS)
    per_code = min(base * columns, compiled.PERTURBED_COPIES)
    assert probe.shape == (rows + 3 * per_code, columns)
    assert np.array_equal(probe[:rows], X)
    for index, fill in enumerate([-1.0, -2.0, np.nan]):
        part = probe[rows + index * per_code : rows + (index + 1) * per_code]
        changed = np.isnan(part) if np.isnan(fill) else part == fill
        assert changed.any(axis=0).all()  # every column
        assert changed.any(axis=1).all()  # every copy tests something
        origin = part.copy()
        origin[changed] = np.nan
        sources = X[np.arange(per_code) % base]
        assert np.array_equal(np.where(changed, np.nan, sources), origin, equal_nan=True)
        if base * columns <= compiled.PERTURBED_COPIES:  # narrow: one column per copy, each row
            assert (changed.sum(axis=1) == 1).all() and (changed.sum(axis=0) == base).all()
