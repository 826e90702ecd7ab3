"""Compiled inference end to end: the real ``train`` writes it, the real ``serve`` uses it, and
the answers equal those of the same server with compiled inference forced off."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import serving_models as sm

from byoc import artifact, compiled
from support import csv_bytes, diabetes_frame, iris_frame, make_ml_root, mixed_frame, run_train

IRIS = iris_frame()
DIABETES = diabetes_frame()
MIXED = mixed_frame(240)
FAST = {
    "random_forest": {"n_estimators": 10, "n_jobs": 1},
    "extra_trees": {"n_estimators": 10, "n_jobs": 1},
    "gradient_boosting": {"max_iter": 15},
    "ensemble": {"n_estimators": 10, "max_iter": 15, "cv_folds": 2, "n_jobs": 1},
}


def train(root: Path, frame, target: str, algorithm: str, **hyperparameters) -> dict:
    make_ml_root(
        root,
        channels={"train": {"train.csv": csv_bytes(frame, target=target, header=True)}},
        hyperparameters={
            "target": target,
            "algorithm": algorithm,
            **FAST.get(algorithm, {}),
            **hyperparameters,
        },
    )
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return artifact.load(root / "model").metadata


@pytest.mark.parametrize("algorithm", ["random_forest", "extra_trees", "gradient_boosting", "ensemble"])
def test_train_writes_a_checked_compiled_form(tmp_path, algorithm):
    meta = train(tmp_path, IRIS, "target", algorithm=algorithm)
    entry = meta["compiled"]
    assert entry["file"] == compiled.COMPILED_FILE
    assert meta["files"][compiled.COMPILED_FILE]["sha256"] == artifact.sha256_of(
        tmp_path / "model" / compiled.COMPILED_FILE
    )
    backends = {step["slot"]: step["backend"] for step in entry["steps"]}
    if algorithm == "ensemble":
        assert backends == {
            "member:random_forest": "onnxruntime",  # float64 ONNX trees
            "member:gradient_boosting": "onnxruntime",
            "member:linear": "numpy",  # its coefficients, multiplied out
        }
    else:
        assert backends == {"model": "onnxruntime"}


def test_switched_off_at_training_writes_no_compiled_form(tmp_path):
    meta = train(tmp_path, MIXED, "deposit", algorithm="random_forest", compiled_inference="false")
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["model.joblib", "model.json"]
    assert meta["compiled"]["file"] is None
    assert json.dumps(meta["compiled"]["steps"]).count("compiled_inference=false") == 1


def test_text_columns_compile_gradient_boosting_too(tmp_path):
    """Its categorical splits: onnxruntime sees category indices, as scikit-learn's trees do."""
    meta = train(tmp_path, MIXED, "deposit", algorithm="gradient_boosting")
    (step,) = meta["compiled"]["steps"]
    assert step["backend"] == "onnxruntime", step
    assert meta["compiled"]["file"] == compiled.COMPILED_FILE


@pytest.mark.parametrize("frame, target", [(IRIS, "target"), (DIABETES, "target")], ids=["svc", "svr"])
def test_svm_is_compiled_from_its_support_vectors(tmp_path, frame, target):
    meta = train(tmp_path, frame, target, "svm")
    (step,) = meta["compiled"]["steps"]
    assert step["backend"] == "numpy" and step["estimator"] in ("CalibratedSVC", "SVR"), step
    assert meta["compiled"]["file"] == compiled.COMPILED_FILE


# -- serving: the same answers with compiled inference on and forced off ---------------------------
SERVED = {
    "random_forest": (IRIS, "target"),
    "extra_trees": (IRIS, "target"),
    "gradient_boosting": (IRIS, "target"),
    "ensemble": (IRIS, "target"),
    "random_forest regression": (DIABETES, "target"),
    "gradient_boosting text": (MIXED, "deposit"),  # categorical splits, missing and unseen categories
    "ensemble text": (MIXED, "deposit"),
    "knn text": (MIXED, "deposit"),  # one-hot rows: the float32 candidates, the ones in common by bytes
    "svm": (IRIS, "target"),  # three classes: the pairwise votes
    "svm text": (MIXED, "deposit"),  # fitted on a CSR matrix: sparse support vectors
    "svm regression": (DIABETES, "target"),
}
BACKEND = {"knn": "=numpy", "svm": "=numpy"}  # every other case: onnxruntime


def answers(server: sm.Server, rows: pd.DataFrame, fields: str) -> list[dict]:
    """Every row as one CSV batch, then the first rows one request each."""
    body = rows.to_csv(header=False, index=False)
    batch = server.invoke(body, accept="application/json", attributes=f"output={fields}")
    assert batch.status_code == 200, batch.text
    out = batch.json()["predictions"]
    for i in range(5):
        single = server.invoke(
            rows.iloc[[i]].to_csv(header=False, index=False),
            accept="application/json",
            attributes=f"output={fields}",
        )
        assert single.status_code == 200, single.text
        (alone,) = single.json()["predictions"]
        # The label exactly; probabilities to the last bits only: a linear member's product of
        # one row and of a batch runs different BLAS kernels (gemv, gemm) that round differently.
        want = out[i]
        if isinstance(want["predicted_label"], float):  # a regression value
            assert alone["predicted_label"] == pytest.approx(want["predicted_label"], rel=1e-12, abs=1e-15)
        else:
            assert alone["predicted_label"] == want["predicted_label"]
        if "probabilities" in want:
            assert alone["probabilities"] == pytest.approx(want["probabilities"], rel=1e-12, abs=1e-15)
    return out


@pytest.mark.parametrize("case", list(SERVED))
def test_served_answers_equal_with_compiled_inference_on_and_off(tmp_path, case):
    algorithm = case.split()[0]
    frame, target = SERVED[case]
    meta = train(tmp_path, frame, target, algorithm)
    assert meta["compiled"]["file"] == compiled.COMPILED_FILE
    classifier = meta["problem_type"] != artifact.REGRESSION
    fields = "predicted_label,probabilities" if classifier else "predicted_label"
    rows = frame.drop(columns=[target])
    results, logs = {}, {}
    for mode in ("on", "off"):
        server = sm.start(tmp_path, workers=1, env={"BYOC_COMPILED_INFERENCE": mode})
        try:
            results[mode] = answers(server, rows, fields)
        finally:
            logs[mode] = server.stop()
    assert "compiled inference: " in logs["on"] and BACKEND.get(algorithm, "=onnxruntime") in logs["on"]
    assert "compiled inference: " not in logs["off"]
    on, off = results["on"], results["off"]
    if not classifier:
        np.testing.assert_allclose(
            [r["predicted_label"] for r in on],
            [r["predicted_label"] for r in off],
            rtol=compiled.RTOL,
            atol=compiled.ATOL,
        )
    else:
        assert [r["predicted_label"] for r in on] == [r["predicted_label"] for r in off]
        np.testing.assert_allclose(
            [r["probabilities"] for r in on],
            [r["probabilities"] for r in off],
            rtol=compiled.RTOL,
            atol=compiled.ATOL,
        )


def test_a_model_saved_before_compiled_inference_still_serves(tmp_path):
    """model.json without ``compiled`` and no compiled file, as every model trained before."""
    train(tmp_path, IRIS, "target", "random_forest")
    model_dir = tmp_path / "model"
    meta = json.loads((model_dir / artifact.METADATA_FILE).read_text())
    del meta["compiled"]
    del meta["files"][compiled.COMPILED_FILE]
    (model_dir / compiled.COMPILED_FILE).unlink()
    (model_dir / artifact.METADATA_FILE).write_text(json.dumps(meta))
    server = sm.start(tmp_path, workers=1)
    try:
        rows = IRIS.drop(columns=["target"])
        reply = server.invoke(rows.to_csv(header=False, index=False), accept="application/json")
        assert reply.status_code == 200, reply.text
    finally:
        log = server.stop()
    expected = artifact.load(model_dir)
    frame = rows.set_axis(expected.feature_names, axis=1).astype(float)
    labels = np.asarray(expected.classes, dtype=object)[expected.estimator.predict(frame)]
    assert [r["predicted_label"] for r in reply.json()["predictions"]] == labels.tolist()
    assert "=treelite" not in log and "=onnxruntime" not in log


def _tied_row(model: artifact.ModelArtifact) -> float:
    """An ``x`` whose score is a tiny positive: predict says the second class, predict_proba
    ``[0.5, 0.5]`` (expit rounds 0.5 + s / 4 to 0.5), whose argmax is the first."""
    from byoc import preprocessing

    def frame(x: float) -> pd.DataFrame:
        raw = pd.DataFrame({"x": [x], "z": [0.0]})
        return preprocessing.coerce_features(raw, model.features, where="test")

    lo, hi = -10.0, 10.0
    for _ in range(200):  # the root of the score, to the last bit
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if model.estimator.decision_function(frame(mid))[0] > 0 else (mid, hi)
    for _ in range(64):
        x = float(hi)
        proba = model.estimator.predict_proba(frame(x))[0]
        if model.estimator.decision_function(frame(x))[0] > 0 and proba[0] == proba[1]:
            return x
        hi = np.nextafter(hi, np.inf)
    raise AssertionError("no row with a score in (0, 2.2e-16) near the root")


def test_a_linear_label_within_rounding_of_a_tie_is_predicts_whatever_the_output_fields(tmp_path):
    """LogisticRegression labels by its score's sign; its probabilities of a score just above 0
    are [0.5, 0.5]. The served label was their argmax (the first class) when probabilities were
    asked for and predict's (the second) when not: it now is predict's either way, compiled or not."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    frame = pd.DataFrame(
        {"target": np.where(x + rng.normal(0, 0.5, 400) > 0, "pos", "neg"), "x": x, "z": rng.normal(size=400)}
    )
    train(tmp_path, frame, "target", "linear")
    model = artifact.load(tmp_path / "model")
    tied = _tied_row(model)
    assert model.classes == ["neg", "pos"]
    for mode in ("on", "off"):
        server = sm.start(tmp_path, workers=1, env={"BYOC_COMPILED_INFERENCE": mode})
        try:
            for rows in (1, 3, 70):  # one row, the compiled path's batch, scikit-learn's batch
                body = f"{tied!r},0\n" * rows
                for fields in (
                    "predicted_label",
                    "predicted_label,probabilities",
                    "predicted_label,probability",
                ):
                    reply = server.invoke(body, accept="application/json", attributes=f"output={fields}")
                    assert reply.status_code == 200, reply.text
                    first = reply.json()["predictions"][0]
                    assert first["predicted_label"] == "pos", (mode, rows, fields, first)
                    assert first.get("probabilities", [0.5, 0.5]) == [0.5, 0.5]
        finally:
            server.stop()
