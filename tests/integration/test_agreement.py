"""Train/serve agreement: the served model answers exactly as the trained pipeline does.

Hostile training frames (tokens such as None/NA/<NA>/null/NaN/true/FALSE/yes, real booleans,
numbers written as text with leading zeros, exponents, a trailing ``.0`` and surrounding
spaces, unicode, commas and quotes, empty cells, very large integers) are trained by the real
``container/train`` from CSV, Parquet and JSON Lines.  The same rows, without the label, go to
the real server (gunicorn, a real socket) as CSV, JSON records, JSON rows, JSON Lines and
Parquet, as one batch and one row at a time.  Every served label and probability must equal
the trained pipeline's own ``predict``/``predict_proba`` on the frame training read.

Serving variants (e.g. compiled inference on/off) are an axis: add an entry to
:data:`SERVING_VARIANTS` (environment for ``container/serve``) and every check runs under it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import serving_models
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import support
from byoc import algorithms, artifact, compiled, preprocessing
from byoc.data import read_channel
from byoc.environment import MLPaths, TrainingEnvironment
from byoc.serving.codecs import jsonlines
from byoc.serving.inference import single_threaded
from byoc.serving.schema import RequestSchema

pytestmark = pytest.mark.slow  # every test trains and serves through the real processes: it starts first

TARGET = "label"
# Serving environments every check runs under (name -> environment for container/serve).
SERVING_VARIANTS: Mapping[str, Mapping[str, str]] = {"default": {}}
# Compiled inference (the default where a compiled form was saved) and scikit-learn forced.
COMPILED_VARIANTS: Mapping[str, Mapping[str, str]] = {
    "compiled": {},
    "compiled-off": {"BYOC_COMPILED_INFERENCE": "off"},
}
TRAIN_FORMATS = ("csv", "parquet", "jsonlines")
CONTENT_TYPES = {
    "csv": "text/csv",
    "parquet": "application/x-parquet",
    "jsonlines": "application/jsonlines",
}
OUTPUT = "output=predicted_label,probabilities"
REGRESSION_OUTPUT = "output=predicted_label"  # a regressor's value, compared as probabilities are
EXAMPLES = int(os.environ.get("BYOC_AGREEMENT_EXAMPLES", "3"))  # CI: 3 per format; raise locally

TOKENS = ["None", "NA", "<NA>", "null", "NULL", "NaN", "nan", "n/a", "true", "FALSE", "True", "yes", "no"]
ODD_TEXT = ["a,b", 'say "hi"', " padded ", "café", "日本", "emoji 🙂", "tab\tin", "007", "1.0", "-"]
NUMBER_TEXT = ["007", "1e3", "2.0", " 3 ", "+4", ".5", "1.", "-0.25", "12345678901234567890", "9" * 25]


# -- frames ---------------------------------------------------------------------------------------
def _label(row: Mapping[str, Any]) -> str:
    """A label the features decide (so trees split on them and probabilities vary)."""
    word = row["word"]
    number = row["amount"]
    key = (len(word) if isinstance(word, str) else -1) + (0 if number is None or number != number else 1)
    return ["red", "green", "blue"][key % 3]


@st.composite
def hostile_frames(draw: Callable[..., Any]) -> pd.DataFrame:
    n = draw(st.integers(min_value=6, max_value=16))
    text = st.one_of(
        st.sampled_from(TOKENS + ODD_TEXT),
        st.text(
            alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=6
        ),
        st.sampled_from(["", None]),
    )
    number_text = st.one_of(
        st.sampled_from(NUMBER_TEXT),
        st.integers(-(10**6), 10**6).map(str),
        st.floats(-1e6, 1e6).map(repr),
        st.sampled_from(["", None]),
    )
    amount = st.one_of(
        st.floats(-1e9, 1e9), st.just(float("nan")), st.integers(-(2**62), 2**62).map(float), st.none()
    )
    rows = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "word": text,
                    "count text": number_text,
                    "flag": st.sampled_from([True, False, None]),
                    "amount": amount,
                }
            ),
            min_size=n,
            max_size=n,
        )
    )
    frame = pd.DataFrame(rows, columns=["word", "count text", "flag", "amount"])
    frame["flag"] = frame["flag"].astype("boolean")
    frame["amount"] = frame["amount"].astype("float64")
    frame.insert(0, TARGET, [_label(r) for r in rows])
    if frame[TARGET].nunique() < 2:  # a classifier needs two classes
        frame.loc[0, TARGET] = "other" if frame[TARGET].iloc[0] != "other" else "red"
    return frame


def fixed_hostile_frame() -> pd.DataFrame:
    """One frame holding every hostile kind at once (for the every-algorithm check)."""
    words = TOKENS + ODD_TEXT + ["", None]
    n = len(words) * 2
    numbers = (NUMBER_TEXT + ["", None]) * (n // len(NUMBER_TEXT) + 1)
    rows = [
        {
            "word": words[i % len(words)],
            "count text": numbers[i],
            "flag": [True, False, None][i % 3],
            "amount": [1.5, None, 2**60, -3.0, 1e9, 0.0][i % 6],
        }
        for i in range(n)
    ]
    frame = pd.DataFrame(rows, columns=["word", "count text", "flag", "amount"])
    frame["flag"] = frame["flag"].astype("boolean")
    frame["amount"] = frame["amount"].astype("float64")
    frame.insert(0, TARGET, [_label(r) for r in rows])
    return frame


# -- bodies (training files and requests) ----------------------------------------------------------
def training_file(frame: pd.DataFrame, kind: str) -> bytes:
    if kind == "csv":
        return support.csv_bytes(frame, target=TARGET, header=True)
    if kind == "parquet":
        return support.parquet_bytes(frame)
    return support.jsonlines_bytes(frame)


def request_bodies(features: pd.DataFrame) -> dict[str, tuple[str, bytes]]:
    """The rows (no label) in every request format the server reads: name -> (type, body)."""
    records = support.json_records(features)
    names = list(features.columns)
    rows = [[r[n] for n in names] for r in records]
    return {
        "csv": ("text/csv", features.to_csv(index=False, header=False).encode("utf-8")),
        "json records": ("application/json", json.dumps({"instances": records}).encode("utf-8")),
        "json rows": ("application/json", json.dumps({"instances": rows}).encode("utf-8")),
        "jsonlines": (
            "application/jsonlines",
            "".join(json.dumps(r) + "\n" for r in records).encode("utf-8"),
        ),
        "parquet": ("application/x-parquet", support.parquet_bytes(features)),
    }


# -- train, reference, serve -----------------------------------------------------------------------
def train(base: Path, frame: pd.DataFrame, kind: str, hyperparameters: Mapping[str, Any]) -> Path:
    root = support.make_ml_root(
        base,
        channels={"train": {f"train.{kind}": training_file(frame, kind)}},
        hyperparameters={"target": TARGET, **({"header": True} if kind == "csv" else {}), **hyperparameters},
        content_types={"train": CONTENT_TYPES[kind]},
    )
    result = support.run_train(root)
    assert result.returncode == 0, f"{kind}: training failed\n{result.stdout}\n{result.stderr}"
    return root


def reference(root: Path) -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    """The trained model (its ``n_jobs`` set to 1, as the server sets them), the features of the
    frame training read (coerced as training did), and that frame."""
    env = TrainingEnvironment.from_files(MLPaths(root), environ={})
    read = read_channel(env, "train").frame
    model = artifact.load(root / "model")
    single_threaded(model.estimator)  # once: the walk costs as much as a row's prediction
    X = preprocessing.coerce_features(read.drop(columns=[TARGET]), model.features, where="reference")
    return model, X, read


def pipeline_answers(model: Any, X: pd.DataFrame) -> tuple[list[Any], np.ndarray]:
    """The trained pipeline's own labels and probabilities for the rows of ``X`` (a model from
    :func:`reference`), on one thread as the server runs it (a forest summed by several threads
    adds its trees in a varying order, which moves the last bit; the math libraries are on one
    thread as a worker's are: tests/conftest.py).  Single-row requests are compared with
    single-row predictions: a dense matrix product of one row may differ from the same row's in
    a batch by a last bit."""
    if not model.is_classifier:  # no labels; its values compared as probabilities are
        return [], np.asarray(model.estimator.predict(X), dtype=np.float64)
    proba = np.asarray(model.estimator.predict_proba(X), dtype=np.float64)
    classes = list(model.classes)
    return [classes[i] for i in np.asarray(model.estimator.predict(X)).astype(int)], proba


@dataclass(frozen=True)
class Expected:
    """The trained pipeline's answers to the rows training read, as one batch and each row alone,
    and the custom attributes asking the server for them: computed once per model, compared
    with every server variant's."""

    output: str
    batch: tuple[list[Any], np.ndarray]
    rows: list[tuple[list[Any], np.ndarray]]


def expected(root: Path) -> Expected:
    model, X, _ = reference(root)
    rows = [pipeline_answers(model, X.iloc[i : i + 1]) for i in range(len(X))]
    return Expected(OUTPUT if model.is_classifier else REGRESSION_OUTPUT, pipeline_answers(model, X), rows)


def served(
    server: serving_models.Server, content_type: str, body: bytes, output: str = OUTPUT
) -> tuple[list[Any], np.ndarray]:
    """Labels and probabilities as :func:`pipeline_answers` gives them (a regressor: none, values)."""
    response = server.invoke(body, content_type=content_type, accept="application/json", attributes=output)
    assert response.status_code == 200, f"{content_type}: {response.status_code} {response.text[:500]}"
    predictions = response.json()["predictions"]
    if output == REGRESSION_OUTPUT:
        return [], np.asarray([p["predicted_label"] for p in predictions], dtype=np.float64)
    return [p["predicted_label"] for p in predictions], np.asarray([p["probabilities"] for p in predictions])


def single_row_bodies(features: pd.DataFrame) -> list[dict[str, tuple[str, bytes]]]:
    return [request_bodies(features.iloc[[i]]) for i in range(len(features))]


def same_probabilities(got: np.ndarray, want: np.ndarray, exact: bool) -> bool:
    """Equal to the bit, or (compiled inference) within its stated tolerance."""
    if exact:
        return bool(np.array_equal(got, want))
    return got.shape == want.shape and bool(np.allclose(got, want, rtol=compiled.RTOL, atol=compiled.ATOL))


def batch_disagreements(
    server: serving_models.Server,
    features: pd.DataFrame,
    answers: tuple[list[Any], np.ndarray],
    exact: bool,
    formats: Sequence[str] | None = None,
    output: str = OUTPUT,
) -> list[str]:
    """Every format (all, or ``formats``) whose served answer to ``features`` as one batch differs
    from ``answers``, the pipeline's labels and probabilities."""
    labels, proba = answers
    found: list[str] = []
    for name, (content_type, body) in request_bodies(features).items():
        if formats is not None and name not in formats:
            continue
        got_labels, got_proba = served(server, content_type, body, output)
        if got_labels != labels or not same_probabilities(got_proba, proba, exact):
            rows = [
                i
                for i in range(len(proba))
                if got_labels[i : i + 1] != labels[i : i + 1]  # a regressor: no labels
                or not same_probabilities(got_proba[i], proba[i], exact)
            ]
            found.append(f"{name} batch: rows {rows[:10]} differ, e.g. {features.iloc[rows[0]].to_dict()}")
    return found


def disagreements(
    root: Path, features: pd.DataFrame, want: Expected, variant: Mapping[str, str], *, exact: bool = True
) -> list[str]:
    """Every (format, batch or row) whose served answer differs from the pipeline's (``want``,
    from :func:`expected`): labels always exactly, probabilities (a regressor's values) exactly
    unless ``exact`` is off (compiled inference)."""
    output = want.output
    server = serving_models.start(root, workers=1, env=variant)
    try:
        found = batch_disagreements(server, features, want.batch, exact, output=output)
        for i, bodies in enumerate(single_row_bodies(features)):
            labels, proba = want.rows[i]
            for name, (content_type, body) in bodies.items():
                got_labels, got_proba = served(server, content_type, body, output)
                if got_labels != labels or not same_probabilities(got_proba, proba, exact):
                    found.append(
                        f"{name} row {i}: served {got_labels} {got_proba.tolist()}, pipeline {labels} "
                        f"{proba.tolist()} for {features.iloc[i].to_dict()}"
                    )
    finally:
        server.stop()
    return found


@pytest.mark.parametrize("variant", list(SERVING_VARIANTS))
@pytest.mark.parametrize("kind", TRAIN_FORMATS)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(frame=hostile_frames())
def test_served_answers_equal_the_trained_pipeline(tmp_path_factory, kind, variant, frame):
    root = train(tmp_path_factory.mktemp(f"agree-{kind}"), frame, kind, {"algorithm": "decision_tree"})
    features = frame.drop(columns=[TARGET])
    assert disagreements(root, features, expected(root), SERVING_VARIANTS[variant]) == []


@pytest.fixture(scope="module")
def hostile_models(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``hostile_models(algorithm)``: the ML root of ``algorithm`` trained on
    :func:`fixed_hostile_frame` (JSON Lines), trained once in the module: the every-algorithm
    and large-batch checks serve the same model (no test writes to it)."""
    roots: dict[str, Path] = {}

    def trained(algorithm: str) -> Path:
        if algorithm not in roots:
            hyperparameters: dict[str, object] = {"algorithm": algorithm}
            if algorithm in ("random_forest", "extra_trees"):
                hyperparameters["n_estimators"] = 20
            if algorithm == "auto":
                hyperparameters.update(max_runtime_seconds=60, max_candidates=3)
            base = tmp_path_factory.mktemp(f"hostile-{algorithm}")
            roots[algorithm] = train(base, fixed_hostile_frame(), "jsonlines", hyperparameters)
        return roots[algorithm]

    return trained


@pytest.mark.parametrize("algorithm", algorithms.names())
def test_every_algorithm_agrees_on_a_hostile_frame(hostile_models, algorithm):
    """Every algorithm (the AutoML search included), served with compiled inference on and off."""
    frame = fixed_hostile_frame()
    root = hostile_models(algorithm)
    features, want = frame.drop(columns=[TARGET]), expected(root)
    for name, environ in COMPILED_VARIANTS.items():
        variant = {**SERVING_VARIANTS["default"], **environ}
        assert disagreements(root, features, want, variant, exact=name == "compiled-off") == [], name


def hostile_regression_frame() -> pd.DataFrame:
    """The fixed hostile frame with a numeric target the features decide (regressors and the
    regression search: their answers are floats, compared to the bit with compiled inference off)."""
    frame = fixed_hostile_frame()
    key = frame[TARGET].map({"red": 0.0, "green": 1.0, "blue": 2.0})
    amount = frame["amount"].fillna(0.0).clip(-10, 10)
    frame[TARGET] = 10.0 * key + amount + 0.25 * frame["flag"].fillna(False).astype(float)
    return frame


@pytest.mark.parametrize("algorithm", algorithms.names())
def test_every_regressor_agrees_on_a_hostile_frame(tmp_path, algorithm):
    """Every algorithm as a regressor (the AutoML search and its blends included), compiled
    inference on and off: served values equal the pipeline's own ``predict``."""
    frame = hostile_regression_frame()
    hyperparameters: dict[str, object] = {"algorithm": algorithm, "problem_type": "regression"}
    if algorithm in ("random_forest", "extra_trees"):
        hyperparameters["n_estimators"] = 20
    if algorithm == "auto":
        hyperparameters.update(max_runtime_seconds=60, max_candidates=4)
    root = train(tmp_path / "ml", frame, "jsonlines", hyperparameters)
    assert json.loads((root / "model" / "model.json").read_text())["problem_type"] == "regression"
    features, want = frame.drop(columns=[TARGET]), expected(root)
    for name, environ in COMPILED_VARIANTS.items():
        variant = {**SERVING_VARIANTS["default"], **environ}
        assert disagreements(root, features, want, variant, exact=name == "compiled-off") == [], name


@pytest.mark.parametrize("algorithm", ["linear", "knn", "svm"])
def test_one_hot_models_agree_when_their_encoder_output_is_sparse(tmp_path, algorithm):
    """Past 64 training rows the one-hot block, and so the encoder's output, is sparse: a request
    of one or a few rows must still stack it as training did (it once failed with a 500).
    Compiled inference on (svm's kernel sums round otherwise than libsvm's: a tolerance) and off."""
    frame = pd.concat([fixed_hostile_frame()] * 2, ignore_index=True)
    root = train(tmp_path / "ml", frame, "jsonlines", {"algorithm": algorithm})
    assert artifact.load(root / "model").estimator.steps[0][1].sparse_output_
    features, want = frame.drop(columns=[TARGET]), expected(root)
    for name, environ in COMPILED_VARIANTS.items():
        variant = {**SERVING_VARIANTS["default"], **environ}
        exact = name == "compiled-off" or algorithm != "svm"  # linear and knn: scikit-learn's sums
        assert disagreements(root, features, want, variant, exact=exact) == [], name


@pytest.mark.parametrize("algorithm", ["decision_tree", "gradient_boosting", "linear"])
def test_large_batches_agree(hostile_models, algorithm):
    """A batch large enough for the bulk paths (CSV above 64 KiB read by Arrow, thousands of rows
    coded column by column, byoc's encoder in place of the ColumnTransformer) answers as the
    pipeline does, compiled inference on and off (the every-algorithm check's model)."""
    frame = fixed_hostile_frame()
    root = hostile_models(algorithm)
    model, X, _ = reference(root)
    copies = 80
    features = pd.concat([frame.drop(columns=[TARGET])] * copies, ignore_index=True)
    assert len(request_bodies(features)["csv"][1]) > 64 * 1024
    labels, proba = pipeline_answers(model, X)
    answers = (labels * copies, np.concatenate([proba] * copies))
    for name, environ in COMPILED_VARIANTS.items():
        server = serving_models.start(root, workers=1, env={**SERVING_VARIANTS["default"], **environ})
        try:
            found = batch_disagreements(server, features, answers, exact=name == "compiled-off")
        finally:
            server.stop()
        assert found == [], name


def test_a_large_json_lines_batch_read_by_arrow_agrees(tmp_path):
    """A JSON Lines batch of plain records (numbers, UTF-8 text beyond ASCII, an optional key left
    out or null: what a batch transform sends), the slices pyarrow.json reads, answers as the
    pipeline and CSV do, compiled inference on and off."""
    rows = [
        {
            "word": ["café", "日本", "plain", "007"][i % 4],
            "amount": [1.5, -3.25, 2**60, 1e9, 0.1][i % 5],
            **({"extra": [7.0, None][i % 2]} if i % 3 else {}),
        }
        for i in range(600)
    ]
    frame = pd.DataFrame(rows, columns=["word", "amount", "extra"])
    frame.insert(
        0, TARGET, [("red" if r["amount"] > 1 else "blue") if i % 7 else "green" for i, r in enumerate(rows)]
    )
    root = train(tmp_path / "ml", frame, "jsonlines", {"algorithm": "decision_tree"})
    model, X, _ = reference(root)
    features = frame.drop(columns=[TARGET])
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()  # "extra" left out too
    assert jsonlines.arrow_records(body, RequestSchema(model.features, model.metadata.get("time_unit")))
    labels, proba = pipeline_answers(model, X)
    for name, environ in COMPILED_VARIANTS.items():
        server = serving_models.start(root, workers=1, env={**SERVING_VARIANTS["default"], **environ})
        try:
            got_labels, got_proba = served(server, "application/jsonlines", body, OUTPUT)
            csv_answers = served(server, *request_bodies(features)["csv"], OUTPUT)
        finally:
            server.stop()
        assert got_labels == labels == csv_answers[0], name
        assert same_probabilities(got_proba, proba, exact=name == "compiled-off"), name
        assert np.array_equal(got_proba, csv_answers[1]), name


def test_the_frame_training_read_keeps_hostile_tokens_as_data(tmp_path):
    """The rules the agreement rests on, seen from training's side (byoc.values)."""
    frame = fixed_hostile_frame()
    root = train(tmp_path / "ml", frame, "csv", {"algorithm": "decision_tree"})
    _, _, read = reference(root)
    words = set(read["word"].dropna())
    assert {"None", "NA", "<NA>", "null", "NaN", "yes"} <= words
    assert {"true", "false"} <= words and not {"True", "FALSE"} & words
    assert read["count text"].dtype == np.float64
    assert set(read["flag"].dropna()) == {"true", "false"}


def test_parquet_datetimes_agree_in_every_unit(tmp_path):
    """A datetime feature trained from DataFrame.to_parquet (categories spelled by byoc.values)
    is the same category when a request's Parquet stores the instants in s, ms, us or ns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    days = pd.to_datetime([f"2020-01-0{d} 0{h}:30:00" for d in range(1, 7) for h in range(4)])
    frame = pd.DataFrame(
        {
            "when": days,
            "where": days.tz_localize("Europe/Paris"),
            "amount": np.arange(len(days), dtype=np.float64) % 5,
        }
    )
    frame[TARGET] = np.where(
        frame["when"].dt.day % 3 == 0, "red", np.where(frame["when"].dt.hour < 2, "green", "blue")
    )
    root = train(tmp_path / "ml", frame, "parquet", {"algorithm": "decision_tree"})
    model, X, _ = reference(root)
    assert {f.name: f.kind for f in model.features}["when"] == preprocessing.CATEGORICAL
    answers = pipeline_answers(model, X)
    table = pa.Table.from_pandas(frame.drop(columns=[TARGET]), preserve_index=False)
    server = serving_models.start(root, workers=1)
    try:
        for unit in ("s", "ms", "us", "ns"):
            columns = [
                column.cast(pa.timestamp(unit, tz=column.type.tz))
                if pa.types.is_timestamp(column.type)
                else column
                for column in table.columns
            ]
            buf = pa.BufferOutputStream()
            pq.write_table(pa.table(columns, names=table.column_names), buf)
            labels, proba = served(server, "application/x-parquet", buf.getvalue().to_pybytes())
            assert labels == answers[0], unit
            assert np.array_equal(proba, answers[1]), unit
    finally:
        server.stop()


def _parquet_in_unit(table: Any, unit: str) -> bytes:
    """``table`` with its timestamps and durations stored in ``unit``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = []
    for column in table.columns:
        if pa.types.is_timestamp(column.type):
            column = column.cast(pa.timestamp(unit, tz=column.type.tz))
        elif pa.types.is_duration(column.type):
            column = column.cast(pa.duration(unit))
        columns.append(column)
    buf = pa.BufferOutputStream()
    pq.write_table(pa.table(columns, names=table.column_names), buf)
    return bytes(buf.getvalue().to_pybytes())


def test_models_trained_before_time_unit_keep_their_parquet_answers(tmp_path):
    """A model trained by the code before model.json recorded ``time_unit`` holds its file's
    spelling (nanoseconds here: nine digits, as pandas 2 wrote).  Requests in any unit are
    spelled as its categories are, so it keeps answering what it answered."""
    import pyarrow as pa

    days = pd.to_datetime([f"2020-01-0{d} 0{h}:30:00" for d in range(1, 7) for h in range(4)])
    frame = pd.DataFrame({"when": days, "amount": np.arange(len(days), dtype=np.float64) % 5})
    frame[TARGET] = np.where(
        frame["when"].dt.day % 3 == 0, "red", np.where(frame["when"].dt.hour < 2, "green", "blue")
    )
    table = pa.Table.from_pandas(frame, preserve_index=False)
    root = support.make_ml_root(
        tmp_path / "ml",
        channels={"train": {"train.parquet": _parquet_in_unit(table, "ns")}},
        hyperparameters={"target": TARGET, "algorithm": "decision_tree"},
        content_types={"train": CONTENT_TYPES["parquet"]},
    )
    legacy = (  # the spelling of the code before this change: each file's own unit
        "import pyarrow as pa\n"
        "import byoc.values\n"
        "byoc.values.temporal_text = lambda column, unit=None: column.cast(pa.string())\n"
    )
    result = support.run_train_patched(root, legacy)
    assert result.returncode == 0, result.stderr
    model_json = root / "model" / "model.json"
    metadata = json.loads(model_json.read_text())
    del metadata["time_unit"]  # not recorded then
    model_json.write_text(json.dumps(metadata))
    categories = next(f["categories"] for f in metadata["features"] if f["name"] == "when")
    assert categories[0] == "2020-01-01 00:30:00.000000000"  # the old model's nine digits
    features = table.drop_columns([TARGET])
    server = serving_models.start(root, workers=1)
    try:
        for unit in ("s", "ms", "us", "ns"):
            labels, _ = served(server, "application/x-parquet", _parquet_in_unit(features, unit))
            assert labels == frame[TARGET].tolist(), unit
    finally:
        server.stop()


def test_parquet_durations_agree_in_every_unit(tmp_path):
    """A duration feature is a number of microseconds whatever unit training or a request uses."""
    import pyarrow as pa

    seconds = np.arange(40) * 90
    frame = pd.DataFrame({"waited": pd.to_timedelta(seconds, unit="s"), "other": seconds % 7})
    frame[TARGET] = np.where(seconds % 1000 < 450, "short", "long")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    root = support.make_ml_root(
        tmp_path / "ml",
        channels={"train": {"train.parquet": _parquet_in_unit(table, "ms")}},
        hyperparameters={"target": TARGET, "algorithm": "decision_tree"},
        content_types={"train": CONTENT_TYPES["parquet"]},
    )
    result = support.run_train(root)
    assert result.returncode == 0, result.stderr
    model, X, _ = reference(root)
    assert {f.name: f.kind for f in model.features}["waited"] == preprocessing.NUMERIC
    assert X["waited"].tolist() == [float(s * 1_000_000) for s in seconds]  # microseconds
    answers = pipeline_answers(model, X)
    features = table.drop_columns([TARGET])
    server = serving_models.start(root, workers=1)
    try:
        for unit in ("s", "ms", "us", "ns"):
            labels, proba = served(server, "application/x-parquet", _parquet_in_unit(features, unit))
            assert labels == answers[0], unit
            assert np.array_equal(proba, answers[1]), unit
    finally:
        server.stop()
