"""`container/evaluate` (a Processing step's built-in command): a model trained by the real
`container/train` is scored on a test directory; evaluation.json must have SageMaker's
model-quality shape for its problem type and hold the values scikit-learn computes."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import serving_models as sm
from sklearn import metrics as skm

from byoc import artifact
from support import (
    csv_bytes,
    diabetes_frame,
    iris_frame,
    json_records,
    make_ml_root,
    mixed_frame,
    parquet_bytes,
    run_evaluate,
    run_train,
)

METRIC = {"value", "standard_deviation"}
# The documented keys (Model Monitor's model-quality metrics) that evaluate always writes.
REQUIRED = {
    "binary_classification_metrics": {
        "accuracy", "precision", "recall", "f0_5", "f1", "f2", "auc", "true_positive_rate",
        "true_negative_rate", "false_positive_rate", "false_negative_rate", "confusion_matrix",
        "receiver_operating_characteristic_curve", "precision_recall_curve",
    },
    "multiclass_classification_metrics": {
        "accuracy", "weighted_precision", "weighted_recall", "weighted_f0_5", "weighted_f1", "weighted_f2",
        "confusion_matrix",
    },
    "regression_metrics": {"mae", "mse", "rmse", "r2"},
}  # fmt: skip
STRUCTURED = {"confusion_matrix", "receiver_operating_characteristic_curve", "precision_recall_curve"}


def evaluate(*args: str, base: Path) -> subprocess.CompletedProcess:
    return run_evaluate(base, *args)


def train_model(tmp_path: Path, frame: pd.DataFrame, target: str, split: int, header: bool) -> Path:
    root = make_ml_root(
        tmp_path / "ml",
        channels={"train": {"train.csv": csv_bytes(frame.iloc[:split], target=target, header=header)}},
        hyperparameters={"algorithm": "random_forest", "n_estimators": 10, "n_jobs": 1, "random_state": 0},
    )
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "model"


def check_shape(report: dict[str, Any], section: str) -> dict[str, Any]:
    assert list(report) == [section]
    metrics = report[section]
    assert REQUIRED[section] <= set(metrics)
    for name, metric in metrics.items():
        if name in STRUCTURED:
            continue
        assert set(metric) == METRIC, name
        for part in METRIC:
            assert metric[part] == "NaN" or isinstance(metric[part], float), (name, metric)
    return metrics


def model_predictions(model_dir: Path, frame: pd.DataFrame, target: str) -> tuple[Any, Any, Any, Any]:
    """Predictions straight from the pipeline in model.joblib (the reference path)."""
    model = artifact.load(model_dir)
    X = frame.drop(columns=[target])
    X.columns = model.feature_names
    predicted = model.estimator.predict(X)
    proba = model.estimator.predict_proba(X) if model.is_classifier else None
    if model.is_classifier:
        index = {c: i for i, c in enumerate(model.classes)}
        y = np.array([index[v] for v in frame[target]])
    else:
        y = frame[target].to_numpy(dtype=float)
    return model, y, predicted, proba


@pytest.mark.parametrize(
    "packed", [False, True, "under-a-folder"], ids=["model-dir", "model-tar-gz", "unpacked-under-a-folder"]
)
def test_binary_report_shape_and_values(tmp_path, packed):
    frame = mixed_frame(700, seed=3)
    model_dir = train_model(tmp_path, frame, "deposit", 400, header=True)
    test = frame.iloc[400:]
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "test.csv").write_bytes(csv_bytes(test, target="deposit", header=True))
    model_arg = model_dir
    if packed == "under-a-folder":  # tar -czf model.tar.gz model/, unpacked: the same rule as serve's
        shutil.copytree(model_dir, tmp_path / "unpacked" / "model")
        model_arg = tmp_path / "unpacked"
    elif packed:  # how a Processing input receives estimator.model_data
        (tmp_path / "packed").mkdir()
        with tarfile.open(tmp_path / "packed" / "model.tar.gz", "w:gz") as tar:
            for path in model_dir.iterdir():
                tar.add(path, arcname=path.name)
        model_arg = tmp_path / "packed"
    out = tmp_path / "evaluation"
    result = evaluate(
        "--model", str(model_arg), "--test", str(tmp_path / "test"), "--output", str(out), base=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = check_shape(json.loads((out / "evaluation.json").read_text()), "binary_classification_metrics")

    model, y, predicted, proba = model_predictions(model_dir, test.reset_index(drop=True), "deposit")
    assert model.classes == ["no", "yes"]
    assert metrics["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert metrics["precision"]["value"] == pytest.approx(skm.precision_score(y, predicted))
    assert metrics["recall"]["value"] == pytest.approx(skm.recall_score(y, predicted))
    assert metrics["f1"]["value"] == pytest.approx(skm.f1_score(y, predicted))
    assert metrics["f2"]["value"] == pytest.approx(skm.fbeta_score(y, predicted, beta=2))
    assert metrics["auc"]["value"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    tn, fp, fn, tp = skm.confusion_matrix(y, predicted).ravel()
    assert metrics["confusion_matrix"] == {"no": {"no": tn, "yes": fp}, "yes": {"no": fn, "yes": tp}}
    assert metrics["false_positive_rate"]["value"] == pytest.approx(fp / (fp + tn))
    fpr, tpr, _ = skm.roc_curve(y, proba[:, 1])
    assert metrics["receiver_operating_characteristic_curve"]["true_positive_rates"] == pytest.approx(
        tpr.tolist()
    )
    # 300 rows >= 200: Model Monitor's standard deviation (five 80 % samples) is a number.
    assert isinstance(metrics["accuracy"]["standard_deviation"], float)
    assert "test:accuracy=" in result.stdout


def test_multiclass_report_on_headerless_csv(tmp_path):
    frame = iris_frame().sample(frac=1.0, random_state=0).reset_index(drop=True)
    model_dir = train_model(tmp_path, frame, "target", 100, header=False)
    test = frame.iloc[100:].reset_index(drop=True)
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "part-0.csv").write_bytes(csv_bytes(test, target="target"))
    out = tmp_path / "evaluation"
    result = evaluate(
        "--model", str(model_dir), "--test", str(tmp_path / "test"), "--output", str(out), base=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = check_shape(
        json.loads((out / "evaluation.json").read_text()), "multiclass_classification_metrics"
    )
    _, y, predicted, _ = model_predictions(model_dir, test, "target")
    assert metrics["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert metrics["weighted_f1"]["value"] == pytest.approx(skm.f1_score(y, predicted, average="weighted"))
    assert metrics["weighted_recall"]["value"] == pytest.approx(
        skm.recall_score(y, predicted, average="weighted")
    )
    assert sum(sum(row.values()) for row in metrics["confusion_matrix"].values()) == len(test)
    assert metrics["accuracy"]["standard_deviation"] == "NaN"  # 50 rows: below Model Monitor's 200


def test_regression_report(tmp_path):
    frame = diabetes_frame()
    model_dir = train_model(tmp_path, frame, "target", 300, header=True)
    test = frame.iloc[300:].reset_index(drop=True)
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "test.csv").write_bytes(csv_bytes(test, target="target", header=True))
    out = tmp_path / "evaluation"
    result = evaluate(
        "--model", str(model_dir), "--test", str(tmp_path / "test"), "--output", str(out), base=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = check_shape(json.loads((out / "evaluation.json").read_text()), "regression_metrics")
    _, y, predicted, _ = model_predictions(model_dir, test, "target")
    assert metrics["mse"]["value"] == pytest.approx(skm.mean_squared_error(y, predicted))
    assert metrics["rmse"]["value"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, predicted)))
    assert metrics["mae"]["value"] == pytest.approx(skm.mean_absolute_error(y, predicted))
    assert metrics["r2"]["value"] == pytest.approx(skm.r2_score(y, predicted))


def test_libsvm_test_data_takes_the_train_channels_width(tmp_path):
    """libsvm omits zeros: test rows that never reach train's highest index are scored, not refused."""
    from sklearn.datasets import dump_svmlight_file

    frame = iris_frame().sample(frac=1.0, random_state=0).reset_index(drop=True)
    X, y = frame.drop(columns=["target"]).to_numpy(), pd.Categorical(frame["target"]).codes  # libsvm: numbers
    X_test = X[100:].copy()
    X_test[:, 3] = 0.0  # feature 4 left out of every test line
    bodies = []
    for rows, labels in ((X[:100], y[:100]), (X_test, y[100:])):
        buffer = io.BytesIO()
        dump_svmlight_file(rows, labels, buffer, zero_based=False)
        bodies.append(buffer.getvalue())
    root = make_ml_root(
        tmp_path / "ml", channels={"train": {"t.libsvm": bodies[0]}}, content_types={"train": "text/libsvm"}
    )
    assert run_train(root).returncode == 0
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.libsvm").write_bytes(bodies[1])
    out = tmp_path / "evaluation"
    result = evaluate(
        "--model", str(root / "model"), "--test", str(tmp_path / "test"), "--output", str(out), base=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    metrics = check_shape(
        json.loads((out / "evaluation.json").read_text()), "multiclass_classification_metrics"
    )
    model = artifact.load(root / "model")
    features = pd.DataFrame(X_test, columns=model.feature_names)
    expected = skm.accuracy_score(y[100:], model.estimator.predict(features))
    assert metrics["accuracy"]["value"] == pytest.approx(expected)


def test_test_data_missing_a_column_is_the_processing_exit_message(tmp_path):
    frame = mixed_frame(300)
    model_dir = train_model(tmp_path, frame, "deposit", 200, header=True)
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.csv").write_bytes(
        csv_bytes(frame.iloc[200:].drop(columns=["job"]), target="deposit", header=True)
    )
    result = evaluate(
        "--model",
        str(model_dir),
        "--test",
        str(tmp_path / "test"),
        "--output",
        str(tmp_path / "e"),
        base=tmp_path,
    )
    assert result.returncode == 1
    message = (tmp_path / "output" / "message").read_text()
    assert "lacks column(s) job" in message.splitlines()[0]
    assert not (tmp_path / "e" / "evaluation.json").exists()


def test_a_model_whose_predict_raises_is_the_processing_exit_message(tmp_path):
    """A model that loads but raises in predict (a FunctionTransformer in its pipeline): exit 1 with
    the model's exception first in the message, no traceback on the console's last line."""
    model_dir = sm.broken_root(tmp_path / "broken", np.linalg.cholesky) / "model"
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.csv").write_text("y,x\n1.0,2.0\n0.0,3.0\n")
    result = evaluate(
        "--model",
        str(model_dir),
        "--test",
        str(tmp_path / "test"),
        "--output",
        str(tmp_path / "e"),
        "--header",
        "true",
        base=tmp_path,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    first = (tmp_path / "output" / "message").read_text().splitlines()[0]
    assert first.startswith("the model cannot predict: LinAlgError: "), first
    assert "raised by its predict on the 2 rows of the test channel" in first, first
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "e" / "evaluation.json").exists()


def test_the_positive_class_is_said_and_can_be_named(tmp_path):
    """fraud/legit: the second class in sorted order is `legit`, so by default precision and recall
    are legit's; the log says so, and --positive-class fraud scores fraud's, as scikit-learn does
    with pos_label='fraud' on the same predictions."""
    frame = mixed_frame(500, seed=3)
    frame["deposit"] = frame["deposit"].map({"yes": "fraud", "no": "legit"})
    model_dir = train_model(tmp_path, frame, "deposit", 300, header=True)
    test = frame.iloc[300:].reset_index(drop=True)
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "test.csv").write_bytes(csv_bytes(test, target="deposit", header=True))
    model, y, predicted, proba = model_predictions(model_dir, test, "deposit")
    assert model.classes == ["fraud", "legit"]
    truth = test["deposit"].to_numpy()
    labels = np.asarray(model.classes)[predicted]
    for asked, positive in ((None, "legit"), ("fraud", "fraud")):
        out = tmp_path / f"evaluation-{positive}"
        flag = () if asked is None else ("--positive-class", asked)
        result = evaluate(
            "--model", str(model_dir), "--test", str(tmp_path / "test"), "--output", str(out), *flag,
            base=tmp_path,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"binary metrics count '{positive}' as the positive class" in result.stdout
        metrics = check_shape(
            json.loads((out / "evaluation.json").read_text()), "binary_classification_metrics"
        )
        assert metrics["precision"]["value"] == pytest.approx(
            skm.precision_score(truth, labels, pos_label=positive)
        )
        assert metrics["recall"]["value"] == pytest.approx(
            skm.recall_score(truth, labels, pos_label=positive)
        )
        score = proba[:, model.classes.index(positive)]
        assert metrics["auc"]["value"] == pytest.approx(skm.roc_auc_score(truth == positive, score))
        assert metrics["confusion_matrix"]["fraud"]["legit"] == int(
            ((truth == "fraud") & (labels == "legit")).sum()
        )

    result = evaluate(
        "--model", str(model_dir), "--test", str(tmp_path / "test"), "--output", str(tmp_path / "bad"),
        "--positive-class", "Fraud", base=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert (tmp_path / "output" / "message").read_text().splitlines()[0] == (
        "--positive-class Fraud: not one of the model's classes ('fraud', 'legit'); pass one of them as written"
    )
    assert not (tmp_path / "bad").exists()


def test_binary_ratios_the_test_data_leaves_undefined_are_nan_as_the_rates_are(tmp_path):
    """Test data without a positive row leaves recall 0/0, and where nothing is predicted positive
    precision and the F scores too: each is "NaN", as true_positive_rate beside it is, not a 0.0
    that reads as a model that found none of the positives (a Pipelines condition on recall would
    reject the model for data that cannot measure it)."""
    frame = mixed_frame(900, seed=5)
    model_dir = train_model(tmp_path, frame, "deposit", 300, header=True)
    negatives = frame.iloc[300:][frame.iloc[300:]["deposit"] == "no"].reset_index(drop=True)
    model, _, predicted, _ = model_predictions(model_dir, negatives, "deposit")
    assert model.classes == ["no", "yes"] and len(negatives) >= 200
    predicted_no = negatives[predicted == 0].reset_index(drop=True)
    for name, test in (("negatives", negatives), ("predicted-no", predicted_no)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "test.csv").write_bytes(csv_bytes(test, target="deposit", header=True))
        out = tmp_path / f"evaluation-{name}"
        result = evaluate(
            "--model", str(model_dir), "--test", str(tmp_path / name), "--output", str(out), base=tmp_path
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        metrics = json.loads((out / "evaluation.json").read_text())["binary_classification_metrics"]
        assert metrics["true_positive_rate"]["value"] == "NaN"
        assert metrics["recall"] == {"value": "NaN", "standard_deviation": "NaN"}
        assert metrics["confusion_matrix"]["yes"] == {"no": 0, "yes": 0}
        assert "receiver_operating_characteristic_curve" not in metrics  # one class: no curve
    assert metrics["accuracy"]["value"] == 1.0 and metrics["true_negative_rate"]["value"] == 1.0
    for undefined in ("precision", "f0_5", "f1", "f2"):  # no row predicted positive: 0/0
        assert metrics[undefined]["value"] == "NaN", (undefined, metrics[undefined])


def _report(
    tmp_path: Path, model_dir: Path, name: str, files: dict[str, bytes], *args: str
) -> dict[str, Any]:
    (tmp_path / name).mkdir()
    for file, body in files.items():
        (tmp_path / name / file).write_bytes(body)
    out = tmp_path / f"{name}-out"
    result = evaluate(
        "--model", str(model_dir), "--test", str(tmp_path / name), "--output", str(out), *args, base=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((out / "evaluation.json").read_text())


def test_named_test_columns_of_a_headerless_model_are_read_by_name(tmp_path):
    """A model trained on headerless CSV names its features f0, f1, ...; its endpoint takes JSON
    records and Parquet columns by those names, in any order.  evaluate read such a test file by
    position: with f1 before f0 (and the label anywhere) it scored exit 0 on swapped features,
    a wrong metric that looks right.  Each named layout must score what the headerless CSV of
    the same rows scores."""
    frame = mixed_frame(400, seed=3)
    model_dir = train_model(tmp_path, frame, "deposit", 250, header=False)
    test = frame.iloc[250:].reset_index(drop=True)
    features = [c for c in test.columns if c != "deposit"]
    named = test.rename(columns={c: f"f{i}" for i, c in enumerate(features)})
    shuffled = named[
        [*[f"f{i}" for i in reversed(range(len(features)))][:2], "deposit"]
        + [f"f{i}" for i in reversed(range(len(features) - 2))]
    ]
    expected = _report(tmp_path, model_dir, "csv", {"a.csv": csv_bytes(test, target="deposit")})
    records = "".join(json.dumps(r) + "\n" for r in json_records(shuffled)).encode()
    as_jsonl = _report(
        tmp_path, model_dir, "jsonl", {"a.jsonl": records}, "--content-type", "application/jsonlines"
    )
    as_parquet = _report(
        tmp_path,
        model_dir,
        "parquet",
        {"a.parquet": parquet_bytes(shuffled)},
        "--content-type",
        "application/x-parquet",
    )
    swapped = named[["deposit", "f1", "f0", *[f"f{i}" for i in range(2, len(features))]]]
    records = "".join(json.dumps(r) + "\n" for r in json_records(swapped)).encode()
    label_first = _report(
        tmp_path, model_dir, "swapped", {"a.jsonl": records}, "--content-type", "application/jsonlines"
    )
    key = "binary_classification_metrics"
    assert shuffled.columns[0] != "f0" and list(shuffled.columns).index("deposit") != 0
    for report in (as_jsonl, as_parquet, label_first):
        assert report[key]["confusion_matrix"] == expected[key]["confusion_matrix"]
        assert report[key]["auc"]["value"] == expected[key]["auc"]["value"]
