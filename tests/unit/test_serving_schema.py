"""Request values versus the model schema, and output-field and settings parsing."""

from __future__ import annotations

import math

import pytest

from byoc.artifact import Feature
from byoc.errors import ConfigError, SchemaError, UserError
from byoc.finite import FEATURE_LIMIT
from byoc.serving import output
from byoc.serving.schema import FLOAT32_MAX, RequestSchema, to_category, to_number
from byoc.serving.server import gunicorn_options
from byoc.serving.settings import ServingSettings

SCHEMA = RequestSchema([Feature("age", "numeric", "float64"), Feature("job", "categorical", "str")])


@pytest.mark.parametrize(
    "value,expected",
    [
        (1, 1.0),
        ("2.5", 2.5),
        (" 3 ", 3.0),
        (None, None),
        ("", None),
        ("  ", None),
        (float("nan"), None),
    ],
)
def test_to_number(value, expected):
    got = to_number(value)
    assert math.isnan(got) if expected is None else got == expected


@pytest.mark.parametrize("value", ["NA", "None", "null", "NaN"])
def test_missing_words_are_missing_in_numeric_features_and_data_in_categorical_ones(value):
    batch = SCHEMA.from_rows([[value, value]])  # byoc.values, as in training
    assert math.isnan(batch.columns[0][0]) and batch.columns[1][0] == value


@pytest.mark.parametrize("value", [True, "yes", "1_000"])
def test_booleans_and_words_are_not_numbers(value):
    with pytest.raises(SchemaError, match="row 1, column 'age'"):
        SCHEMA.from_rows([[value, "x"]])


@pytest.mark.parametrize("value", [float("inf"), "1e999", 10**400, 1e39])
def test_out_of_range_numbers_are_refused(value):
    with pytest.raises(SchemaError) as info:
        SCHEMA.from_rows([[value, "x"]])
    assert info.value.code == "out_of_range" and "'age'" in info.value.message


@pytest.mark.parametrize("value", [FLOAT32_MAX, -FLOAT32_MAX, repr(FLOAT32_MAX)], ids=repr)
def test_the_largest_float32_is_a_number_as_training_takes_it(value):
    """Training refuses a feature value beyond float32 (byoc.finite: ``|x| > FEATURE_LIMIT``) and
    takes float32's largest itself; a request does the same on every path (one row, a batch read
    by column), else a value the model trained on would be a 400."""
    assert FEATURE_LIMIT == FLOAT32_MAX
    for rows in ([[value, "x"]], [[value, "x"]] * 1100):
        batch = SCHEMA.from_rows(rows)
        assert abs(batch.columns[0][0]) == FLOAT32_MAX and abs(batch.columns[0][-1]) == FLOAT32_MAX


def test_to_category():
    assert [to_category(v) for v in ("x", 3, 3.0, 2.5, True, "None", "NA", "FALSE")] == [
        "x",
        "3",
        "3",
        "2.5",
        "true",
        "None",
        "NA",
        "false",
    ]
    assert math.isnan(to_category(None)) and math.isnan(to_category("")) and math.isnan(to_category(" "))


def test_records_check_keys():
    with pytest.raises(SchemaError, match="lacks column 'job'"):
        SCHEMA.from_records([{"age": 1}])
    with pytest.raises(SchemaError, match="unknown column 'x'"):
        SCHEMA.from_records([{"age": 1, "job": "a", "x": 2}])
    with pytest.raises(SchemaError, match="row 2 is a list; each row must be an object of feature: value"):
        SCHEMA.from_records([{"age": 1, "job": "a"}, [1, "a"]])


@pytest.mark.parametrize(
    ("item", "said"),
    [
        (None, "null"),
        (3, "a number"),
        (True, "a boolean (true)"),
        ("x", "a string"),
        ({"age": 1}, "an object"),
    ],
)
def test_a_row_that_is_not_a_list_is_named_in_jsons_words(item, said):
    """Was "row 2 is a NoneType" ("a int", "a bool", "a str"): Python's names for what the client
    wrote in JSON.  Rows (lists) and records (objects) alike; a column of the column mapping too,
    whose message read the module ``values`` shadowed by a local of that name (an AttributeError)."""
    with pytest.raises(SchemaError) as rows:
        SCHEMA.from_rows([[1, "a"], item])
    assert rows.value.message == (
        f"row 2 is {said}; each row must be a list of 2 feature values (or, in every row, an object "
        "of feature: value)"
    )
    if not isinstance(item, dict):
        with pytest.raises(SchemaError) as records:
            SCHEMA.from_records([{"age": 1, "job": "a"}, item])
        assert records.value.message.startswith(f"row 2 is {said}; each row must be an object of feature")
        with pytest.raises(SchemaError) as columns:
            SCHEMA.from_columns({"age": [1], "job": item})
        assert columns.value.message.startswith(f"column 'job' holds {said}, not a list of values: ")


def test_a_record_may_leave_out_only_the_keys_training_records_left_out():
    """byoc.absent_keys: a key missing in training's JSON Lines records reads as missing when a
    record leaves it out (as training read it); other keys stay required, unknown ones refused,
    and a table (columns, a frame) names every column."""
    schema = RequestSchema(
        [Feature("age", "numeric", "float64"), Feature("note", "categorical", "str", ("x",), optional=True)]
    )
    batch = schema.from_records([{"age": 1}, {"AGE": 2, "note": "x"}, {" Age": 3}])
    assert list(batch.columns[0]) == [1.0, 2.0, 3.0]
    assert math.isnan(batch.columns[1][0]) and batch.columns[1][1] == "x" and math.isnan(batch.columns[1][2])
    with pytest.raises(SchemaError, match="lacks column 'age'; .* may leave out only 'note'"):
        schema.from_records([{"note": "x"}])
    with pytest.raises(SchemaError, match="unknown column 'note2'"):
        schema.from_records([{"age": 1, "note2": "x"}])
    with pytest.raises(
        SchemaError,
        match=r"the column mapping lacks column 'note'; send every feature \(null for a missing value\)$",
    ):
        schema.from_columns({"age": [1]})
    assert Feature.from_dict(schema.features[1].to_dict()).optional
    assert "optional" not in schema.features[0].to_dict()


def test_keys_differing_by_case_name_a_feature_unless_two_features_differ_so():
    """One rule (RequestSchema.feature_named) for keys, columns and CSV headers: exact, else
    without surrounding spaces, else without case; a spelling two features share names neither."""
    batch = SCHEMA.from_records([{"AGE": 1, " Job": "a"}])
    assert batch.names == ("age", "job") and list(batch.columns[0]) == [1.0]
    twins = RequestSchema([Feature("age", "numeric", "float64"), Feature("Age", "numeric", "float64")])
    assert list(twins.from_records([{"Age": 2, "age": 1}]).columns[0]) == [1.0]  # exact names win
    with pytest.raises(SchemaError, match="unknown column 'AGE'"):
        twins.from_records([{"AGE": 1, "age": 2}])
    with pytest.raises(SchemaError, match="repeats column 'age'"):
        SCHEMA.from_columns({"age": [1], "AGE": [2]})


def test_output_fields_parsing():
    available = ("predicted_label", "probability", "probabilities", "labels")
    assert output.request_fields(
        "trace=1; output=probability, labels", default=("predicted_label",), available=available
    ) == ("probability", "labels")
    assert output.request_fields(None, default=("predicted_label",), available=available) == (
        "predicted_label",
    )
    with pytest.raises(UserError, match="'score'"):
        output.request_fields("output=score", default=(), available=available)
    with pytest.raises(ConfigError, match="SAGEMAKER_INFERENCE_OUTPUT"):
        output.default_fields("probability", ("predicted_label",))


def test_a_field_the_model_cannot_return_is_refused_saying_what_the_model_is():
    """Both kinds were told 'a regressor, or a classifier without predict_proba'."""
    regressor = output.available_fields(False, False)
    with pytest.raises(UserError) as info:
        output.request_fields("output=labels", default=("predicted_label",), available=regressor)
    assert "it is a regressor" in info.value.message and "returns predicted_label only" in info.value.message
    no_proba = output.available_fields(True, False)
    with pytest.raises(UserError) as info:
        output.request_fields("output=probabilities", default=("predicted_label",), available=no_proba)
    assert info.value.message == (
        "X-Amzn-SageMaker-Custom-Attributes output=: 'probabilities' not available for this model: it is a "
        "classifier without predict_proba (its algorithm gives no probabilities), which returns "
        "predicted_label, labels only; use some of predicted_label, labels"
    )


def test_output_inside_another_custom_attribute_is_refused_not_ignored():
    """``x=1,output=labels`` is one attribute ``x``: answering the default fields would silently
    not be what was asked for."""
    available = ("predicted_label", "probability", "probabilities", "labels")
    with pytest.raises(UserError, match=r"inside the value of attribute 'x'.*separate attributes with ';'"):
        output.request_fields("x=1,output=labels", default=("predicted_label",), available=available)
    with pytest.raises(UserError, match="attribute 'trace'"):
        output.request_fields("trace=abc OUTPUT=labels", default=("predicted_label",), available=available)
    # a value that merely ends in "output" or names another key is no request for fields
    assert output.request_fields(
        "model_output=3;trace=myoutput", default=("predicted_label",), available=available
    ) == ("predicted_label",)


@pytest.mark.parametrize(
    "header",
    [
        "output=labels;output=probability",
        "output=labels; OUTPUT = probability",
        "output=labels;trace=a,output=probability",
    ],
)
def test_output_given_twice_is_refused_not_half_answered(header):
    """``output=labels;output=probability`` was answered with ``probability`` alone: the last
    attribute of a name won and the first was dropped without a word."""
    available = ("predicted_label", "probability", "probabilities", "labels")
    with pytest.raises(UserError) as info:
        output.request_fields(header, default=("predicted_label",), available=available)
    assert info.value.code == "bad_output_fields" and "output=" in info.value.message
    assert output.request_fields(
        "output=labels;trace=1;x=output", default=("predicted_label",), available=available
    ) == ("labels",)


def test_settings_defaults_and_overrides():
    default = ServingSettings.from_environ({})
    assert (default.port, default.timeout, default.max_payload_mb, default.batch) == (8080, 60, 6, False)
    assert default.workers >= 1
    batch = ServingSettings.from_environ(
        {
            "SAGEMAKER_BATCH": "True",
            "SAGEMAKER_MAX_PAYLOAD_IN_MB": "100",
            "SAGEMAKER_BIND_TO_PORT": "9000",
            "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
            "SAGEMAKER_CONTAINER_LOG_LEVEL": "WARNING",
        }
    )
    assert (batch.port, batch.workers, batch.timeout, batch.max_payload_bytes, batch.log_level) == (
        9000,
        3,
        600,
        100 * 1024 * 1024,
        "warning",
    )
    options = gunicorn_options(batch)
    assert options["bind"] == ["0.0.0.0:9000"] and options["workers"] == 3 and options["preload_app"] is True
    assert gunicorn_options(default)["bind"] == ["0.0.0.0:8080"]


@pytest.mark.parametrize(
    "environ,name",
    [
        ({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1025"}, "SAGEMAKER_MAX_PAYLOAD_IN_MB"),
        ({"SAGEMAKER_BATCH": "maybe"}, "SAGEMAKER_BATCH"),
        ({"SAGEMAKER_BIND_TO_PORT": "http"}, "SAGEMAKER_BIND_TO_PORT"),
        ({"SM_LOG_LEVEL": "loud"}, "SM_LOG_LEVEL"),
    ],
)
def test_bad_settings_name_the_variable(environ, name):
    with pytest.raises(ConfigError, match=name):
        ServingSettings.from_environ(environ)


def test_foreign_preprocessing_steps_serve_through_the_pipeline(tmp_path):
    """scikit-learn's own imputer/one-hot (as in models trained before byoc's own steps) get no
    row path built on their private attributes: the pipeline answers, and answers right."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.normal(40, 10, 200), "job": rng.choice(["a", "b", "c"], 200).astype(object)})
    X.loc[::7, "age"] = np.nan
    y = (X["job"] == "a").astype(int).to_numpy()
    pipe = Pipeline(
        [
            (
                "preprocess",
                ColumnTransformer(
                    [
                        ("numeric", SimpleImputer(add_indicator=True), ["age"]),
                        ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["job"]),
                    ]
                ),
            ),
            ("model", DecisionTreeClassifier(random_state=0)),
        ]
    ).fit(X, y)
    features = [
        Feature("age", "numeric", "float64"),
        Feature("job", "categorical", "object", ("a", "b", "c")),
    ]
    fast, slow = _binary_predictors(pipe, features)
    assert not fast.enable_fast_path() and fast.blocks is None
    _assert_same_answers(fast, slow, [[None, "a"], [35.0, "z"], [50.0, None], [41.0, "b"]])


def _binary_predictors(pipe, features):
    """Two Predictors of one binary model: one to take the row path, one the pipeline."""
    from byoc import artifact
    from byoc.serving.inference import Predictor

    metadata = {"problem_type": "binary_classification", "classes": ["no", "yes"]}
    model = artifact.ModelArtifact(pipe, {**metadata, "features": [f.to_dict() for f in features]})
    return Predictor(model), Predictor(model)


def _assert_same_answers(fast, slow, rows):
    import numpy as np

    fields = ("predicted_label", "probabilities")
    a = fast.predict(fast.schema.from_rows(rows), fields)
    b = slow.predict(slow.schema.from_rows(rows), fields)
    assert a.values["predicted_label"] == b.values["predicted_label"]
    assert np.array_equal(a.values["probabilities"], b.values["probabilities"])


def test_row_encoder_matches_the_pipeline_for_byoc_preprocessors():
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    from byoc import artifact
    from byoc.preprocessing import build_preprocessor
    from byoc.serving.inference import Predictor

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"age": rng.normal(40, 10, 300), "job": rng.choice(["a", "b", "c"], 300).astype(object)})
    X.loc[::5, "age"] = np.nan
    X.loc[::7, "job"] = np.nan
    y = rng.normal(size=300)
    features = [
        Feature("age", "numeric", "float64"),
        Feature("job", "categorical", "object", ("a", "b", "c")),
    ]
    for scale, categorical in ((True, "ordinal"), (False, "ordinal"), (True, "onehot")):
        pre = build_preprocessor(features, scale=scale, categorical=categorical)
        pre.set_params(sparse_threshold=0.0)
        pipe = Pipeline([("preprocess", pre), ("model", LinearRegression())]).fit(X, y)
        model = artifact.ModelArtifact(
            pipe, {"problem_type": "regression", "classes": [], "features": [f.to_dict() for f in features]}
        )
        fast, slow = Predictor(model), Predictor(model)
        assert fast.enable_fast_path() and fast.blocks is not None and len(fast.blocks.blocks) == 2
        rows = [[None, "a"], [35.0, "z"], [50.0, None], [41.0, "b"], [None, None]]
        a = fast.predict(fast.schema.from_rows(rows), ("predicted_label",))
        b = slow.predict(slow.schema.from_rows(rows), ("predicted_label",))
        assert np.array_equal(a.values["predicted_label"], b.values["predicted_label"])


@pytest.mark.parametrize("layout", ["onehot", "onehot-sparse", "ordinal-scaled"])
def test_models_with_scikit_learn_steps_keep_a_verified_row_path(layout):
    """Models trained before byoc had its own steps hold SimpleImputer/StandardScaler/OneHotEncoder:
    they load, take byoc's equivalent steps (checked against the originals), and answer alike."""
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from byoc.preprocessing import CategoryCoder

    rng = np.random.default_rng(2)
    X = pd.DataFrame({"age": rng.normal(40, 10, 300), "job": rng.choice(["a", "b", "c"], 300).astype(object)})
    X.loc[::5, "age"] = np.nan
    X.loc[::7, "job"] = np.nan
    y = (X["job"] == "a").astype(int).to_numpy()
    if layout.startswith("onehot"):
        text = [
            ("encode", CategoryCoder(max_categories=100)),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    else:
        text = [("encode", CategoryCoder(max_categories=250)), ("scale", StandardScaler())]
    numeric = [
        ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
        ("scale", StandardScaler()),
    ]
    pre = ColumnTransformer(
        [("categorical", Pipeline(text), ["job"]), ("numeric", Pipeline(numeric), ["age"])],
        sparse_threshold=1.0 if layout == "onehot-sparse" else 0.0,
        verbose_feature_names_out=False,
    )
    pipe = Pipeline([("preprocess", pre), ("model", LogisticRegression())]).fit(X, y)
    features = [
        Feature("job", "categorical", "object", ("a", "b", "c")),
        Feature("age", "numeric", "float64"),
    ]
    fast, slow = _binary_predictors(pipe, features)
    assert fast.enable_fast_path() and fast.blocks is not None
    _assert_same_answers(fast, slow, [["a", None], ["z", 35.0], [None, 50.0], ["b", 41.0], [None, None]])


def test_an_ensemble_takes_the_row_path_through_every_member():
    """Each member runs its own encoder's steps on the request columns, the ensemble's own
    weighting combines them: the answers equal the pipeline's, unseen and missing values too."""
    import numpy as np
    import pandas as pd

    from byoc import algorithms
    from byoc.hyperparameters import resolve
    from byoc.preprocessing import coerce_features, feature_schema

    rng = np.random.default_rng(4)
    X = pd.DataFrame(
        {"age": rng.normal(40, 10, 300), "job": rng.choice(list("abcdefghijkl"), 300).astype(object)}
    )
    X.loc[::5, "age"] = np.nan
    X.loc[::7, "job"] = np.nan
    y = ((X["job"] == "a") | (X["age"] > 45)).astype(int).to_numpy()
    features = feature_schema(X)
    params = resolve(
        {"algorithm": "ensemble", "n_estimators": 8, "max_iter": 10, "cv_folds": 2, "n_jobs": 1}
        | {"ensemble_members": ["random_forest", "gradient_boosting", "linear", "knn"]}
    )
    pipe = algorithms.build("binary_classification", params, features)
    pipe.fit(coerce_features(X, features, where="train"), y)
    assert pipe.steps[-1][1].estimators_[2].steps[0][1].sparse_output_  # linear's one-hot is CSR
    fast, slow = _binary_predictors(pipe, features)
    assert fast.enable_fast_path() and fast.row_ensemble is not None and fast.fast_path
    rows = [[None, "a"], [35.0, "z"], [50.0, None], [41.0, "b"], [None, None]]
    _assert_same_answers(fast, slow, rows)
    _assert_same_answers(fast, slow, rows[1:2])


def test_time_unit_per_feature_follows_the_models_categories_then_the_model():
    features = [
        Feature("when", "categorical", "str", ("2020-01-04 00:00:00.000000000",)),
        Feature("day", "categorical", "str", ("2020-01-04", "2020-01-05")),
        Feature("waited", "numeric", "float64"),
    ]
    old = RequestSchema(features, time_unit=None)  # model.json without time_unit
    assert [old.time_unit(n) for n in ("when", "day", "waited", " WHEN ", "unknown")] == [
        "ns",
        None,
        None,
        "ns",
        None,
    ]
    new = RequestSchema(features, time_unit="us")
    assert [new.time_unit(n) for n in ("when", "day", "waited", "unknown")] == ["ns", "us", "us", "us"]
    assert RequestSchema(features).time_unit("waited") == "us"


def test_a_wide_csv_requests_numbers_are_read_together(monkeypatch):
    """from_arrow (a CSV request of many rows, as pyarrow parses it) reads its numeric columns'
    text in one check and one cast (values.text_number_columns), not text_numbers per column:
    the same numbers, and the same first culprit named."""
    import numpy as np
    import pyarrow as pa

    from byoc import values

    schema = RequestSchema(
        [Feature(f"x{i}", "numeric", "float64") for i in range(30)] + [Feature("job", "categorical", "str")]
    )
    table = pa.table(
        {**{f"x{i}": pa.array([str(i), "2.5"], pa.large_string()) for i in range(30)}, "job": ["a", "b"]}
    )
    calls = []
    real = values.text_numbers
    monkeypatch.setattr(values, "text_numbers", lambda text: calls.append(text) or real(text))
    batch = schema.from_arrow(table)
    assert calls == []
    assert np.asarray(batch.columns[4]).tolist() == [4.0, 2.5] and list(batch.columns[30]) == ["a", "b"]
    bad = table.set_column(3, "x3", pa.array(["3", "lots"], pa.large_string()))
    with pytest.raises(SchemaError, match="lots"):
        schema.from_arrow(bad)


@pytest.mark.parametrize("problem", ["binary_classification", "multiclass_classification", "regression"])
def test_a_tree_row_skips_scikit_learns_per_call_checks_and_answers_as_the_pipeline(problem, monkeypatch):
    """A single tree's rows go to ``tree_.predict`` without scikit-learn's check_is_fitted and
    feature-count check (fixed by the fitted model and the encoder, checked at load): the answers,
    every field, are the pipeline's, and a non-finite row still goes through scikit-learn."""
    import numpy as np
    import pandas as pd
    import sklearn.tree._classes
    from sklearn.pipeline import Pipeline
    from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

    from byoc import artifact
    from byoc.preprocessing import build_preprocessor
    from byoc.serving.inference import Predictor, TreeRows

    rng = np.random.default_rng(5)
    X = pd.DataFrame({"age": rng.normal(40, 10, 400), "job": rng.choice(list("abcd"), 400).astype(object)})
    X.loc[::5, "age"] = np.nan
    X.loc[::7, "job"] = np.nan
    features = [Feature("age", "numeric", "float64"), Feature("job", "categorical", "object", tuple("abcd"))]
    if problem == "regression":
        y, classes, model = X["age"].fillna(0).to_numpy() + rng.normal(size=400), [], DecisionTreeRegressor()
    else:
        names = ["no", "yes"] if problem == "binary_classification" else ["x", "y", "z"]
        y, classes = rng.integers(0, len(names), 400), names
        model = DecisionTreeClassifier(min_samples_leaf=3, random_state=0)
    pre = build_preprocessor(features, scale=False, categorical="ordinal")
    pipe = Pipeline([("preprocess", pre), ("model", model)]).fit(X, y)
    metadata = {"problem_type": problem, "classes": classes, "features": [f.to_dict() for f in features]}
    fast, slow = (Predictor(artifact.ModelArtifact(pipe, metadata)) for _ in range(2))
    assert fast.enable_fast_path() and isinstance(fast._tree_rows, TreeRows)
    rows = [
        [float(a), str(j)]
        for a, j in zip(rng.normal(40, 15, 40).round(2), rng.choice(list("abcdz"), 40), strict=True)
    ]
    rows += [[None, "a"], [35.0, None], [None, None]]

    def refuse(*args, **kwargs):
        raise AssertionError("scikit-learn's per-call check ran on the row path")

    fields = fast.available_fields
    want = [slow.predict(slow.schema.from_rows([row]), fields) for row in rows]
    with monkeypatch.context() as patched:
        patched.setattr(sklearn.tree._classes, "check_is_fitted", refuse)
        got = [fast.predict(fast.schema.from_rows([row]), fields) for row in rows]
        batch = fast.predict(fast.schema.from_rows(rows), fields)
    for field in fields:
        for a, b in zip(got, want, strict=True):
            assert np.array_equal(np.asarray(a.values[field]), np.asarray(b.values[field]))
        whole = slow.predict(slow.schema.from_rows(rows), fields)
        assert np.array_equal(np.asarray(batch.values[field]), np.asarray(whole.values[field]))
