"""Feature schema, coercion of later frames against it, and the column transformer."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byoc.artifact import Feature
from byoc.errors import SchemaError
from byoc.preprocessing import (
    NotANumber,
    as_text,
    build_preprocessor,
    coerce_features,
    feature_schema,
    output_owners,
)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [30, 40, 50, 60, 35, 45],
            "balance": [1.5, np.nan, 3.0, 4.5, 2.0, 1.0],
            "job": pd.Series(["admin", "services", None, "admin", "retired", "services"], dtype="str"),
            "contact": pd.Series(["cell", "tel", "cell", "cell", None, "tel"], dtype=object),
            "default": [True, False, False, True, False, False],
            "region": [1, 2, 1, 3, 2, 1],
        }
    )


def test_schema_kinds_dtypes_and_sorted_categories(frame):
    schema = {f.name: f for f in feature_schema(frame)}
    assert [f.name for f in feature_schema(frame)] == list(frame.columns)
    assert schema["age"].kind == "numeric" and schema["age"].dtype == "int64"
    assert schema["balance"].kind == "numeric"
    # booleans are the categories true/false (byoc.values), as every reader spells them
    assert schema["default"].kind == "categorical" and schema["default"].categories == ("false", "true")
    assert schema["job"].kind == "categorical"
    assert schema["job"].categories == ("admin", "retired", "services")
    assert schema["contact"].categories == ("cell", "tel")
    json.dumps([f.to_dict() for f in schema.values()])  # model.json must hold it


def test_object_column_of_numbers_is_numeric():
    schema = feature_schema(pd.DataFrame({"x": pd.Series([1, None, 2.5], dtype=object)}))
    assert schema[0].kind == "numeric"


def test_as_text_unifies_int_float_and_text_spellings():
    assert as_text(pd.Series([1.0, np.nan, 2.5])).tolist()[0::2] == ["1", "2.5"]
    assert np.isnan(as_text(pd.Series([1.0, np.nan]))[1])
    assert as_text(pd.Series([1, 2])).tolist() == ["1", "2"]
    assert as_text(pd.Series(["1", None], dtype="str")).tolist()[0] == "1"
    assert as_text(pd.Series([1, "a", 2.0, None], dtype=object)).tolist()[:3] == ["1", "a", "2"]


# -- coercion ------------------------------------------------------------------------------------
def test_coerce_reorders_and_types_columns(frame):
    schema = feature_schema(frame)
    shuffled = frame[list(reversed(frame.columns))]
    out = coerce_features(shuffled, schema, where="validation channel")
    assert list(out.columns) == list(frame.columns)
    assert out["age"].dtype == "float64" and out["default"].tolist()[:2] == ["true", "false"]
    assert isinstance(out["job"].dtype, pd.StringDtype)  # text kept as text, not copied
    assert out["job"].iloc[0] == "admin" and pd.isna(out["job"].iloc[2])
    assert out["contact"].dtype == object and out["contact"].iloc[0] == "cell"


def test_missing_column_names_where_and_column(frame):
    schema = feature_schema(frame)
    with pytest.raises(SchemaError) as info:
        coerce_features(frame.drop(columns=["balance"]), schema, where="validation channel")
    message = str(info.value)
    assert message.startswith("validation channel: column 'balance' is missing")
    assert "expects 6 columns" in message


def test_extra_column_is_named(frame):
    schema = feature_schema(frame)
    with pytest.raises(SchemaError, match="column 'surprise' was not in the training data"):
        coerce_features(frame.assign(surprise=1), schema, where="test channel")


def test_text_in_numeric_column_names_column_row_and_value(frame):
    schema = feature_schema(frame)
    bad = frame.astype({"balance": object})
    bad.loc[3, "balance"] = "lots"
    with pytest.raises(SchemaError) as info:
        coerce_features(bad, schema, where="validation channel")
    assert str(info.value).startswith(
        "validation channel: column 'balance' row 4 holds 'lots', but the column is numeric"
    )


def test_numeric_text_and_blanks_are_accepted_in_numeric_columns(frame):
    schema = feature_schema(frame)
    text = frame.astype(str).astype(object)
    text.loc[0, "age"] = " "
    text["default"] = ["true", "False", "no", " TRUE ", "0", "1"]
    out = coerce_features(text, schema, where="request")
    assert np.isnan(out.loc[0, "age"]) and out.loc[1, "age"] == 40.0
    # boolean words in any case are the categories true/false; other words are their own
    assert out["default"].tolist() == ["true", "false", "no", "true", "0", "1"]


def test_boolean_features_of_older_models_still_read_as_flags(frame):
    old = [Feature("default", "numeric", "bool")]
    out = coerce_features(pd.DataFrame({"default": ["true", "False", "1", True]}), old, where="request")
    assert out["default"].tolist() == [1.0, 0.0, 1.0, 1.0]


def test_a_bad_cell_in_an_older_models_boolean_feature_is_named_like_any_numeric_one():
    """It escaped as byoc.values.BadValue, a ValueError: an internal error, not the cell named."""
    old = [Feature("default", "numeric", "bool")]
    with pytest.raises(NotANumber) as info:
        coerce_features(pd.DataFrame({"default": ["true", "0", "maybe"]}), old, where="test channel")
    assert str(info.value).startswith("test channel: column 'default' row 3 holds 'maybe', but the column")
    assert (info.value.column, info.value.position, info.value.value, info.value.code) == (
        "default",
        2,
        "maybe",
        "bad_value",
    )


def test_duplicate_column_is_rejected(frame):
    schema = feature_schema(frame)
    dup = pd.concat([frame, frame[["age"]]], axis=1)
    with pytest.raises(SchemaError, match="'age' appears more than once"):
        coerce_features(dup, schema, where="validation channel")


def test_headerless_mismatch_hints_at_the_header_setting():
    schema = [Feature("f0", "numeric", "float64"), Feature("f1", "numeric", "float64")]
    with pytest.raises(SchemaError, match="header"):
        coerce_features(pd.DataFrame({"0": [1], "1": [2]}), schema, where="validation channel")


# -- transformer -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "categorical, scale, impute",
    [("onehot", True, True), ("ordinal", False, True), ("ordinal", False, False)],
)
def test_unseen_and_missing_categories_never_crash(frame, categorical, scale, impute):
    schema = feature_schema(frame)
    pre = build_preprocessor(schema, scale=scale, categorical=categorical, impute=impute)
    pre.fit(coerce_features(frame, schema, where="train"))
    later = pd.DataFrame(
        {
            "age": [np.nan, 99],
            "balance": [np.nan, 1.0],
            "job": ["astronaut", None],
            "contact": [None, "pigeon"],
            "default": [np.nan, 1.0],
            "region": [7, np.nan],
        }
    )
    out = pre.transform(coerce_features(later, schema, where="request"))
    dense = out.toarray() if hasattr(out, "toarray") else np.asarray(out)
    assert dense.shape[0] == 2
    if impute:
        assert np.isfinite(dense).all()


def test_ordinal_codes_unknown_and_missing_distinctly(frame):
    schema = feature_schema(frame)
    pre = build_preprocessor(schema, scale=False, categorical="ordinal", impute=False)
    pre.fit(coerce_features(frame, schema, where="train"))
    later = frame.iloc[:2].copy()
    later["job"] = pd.Series(["astronaut", None], dtype=object, index=later.index)
    out = np.asarray(pre.transform(coerce_features(later, schema, where="request")))
    assert out[0, 0] == -1 and out[1, 0] == -2  # categorical columns come first; job is first


def test_all_missing_numeric_column_keeps_its_place():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [np.nan] * 3})
    schema = feature_schema(X)
    pre = build_preprocessor(schema, scale=True).fit(X)
    assert pre.transform(X).shape[1] == len(output_owners(pre))


@pytest.mark.parametrize("categorical", ["onehot", "ordinal"])
def test_output_owners_map_every_model_input_to_a_feature(frame, categorical):
    schema = feature_schema(frame)
    pre = build_preprocessor(schema, scale=categorical == "onehot", categorical=categorical)
    out = pre.fit_transform(coerce_features(frame, schema, where="train"))
    owners = output_owners(pre)
    assert len(owners) == out.shape[1]
    assert set(owners) == set(frame.columns)
    if categorical == "onehot":
        assert owners.count("job") == 4  # admin, retired, services + missing
        assert owners.count("balance") == 2  # value + missing indicator


def test_high_cardinality_is_capped_in_model_json_and_onehot():
    X = pd.DataFrame({"id": [f"u{i}" for i in range(1500)]})
    schema = feature_schema(X)
    assert len(schema[0].categories) == 1000
    pre = build_preprocessor(schema, scale=True).fit(X)
    assert pre.transform(X).shape[1] <= 100


def test_category_coder_groups_rare_categories_by_frequency():
    from sklearn.base import clone

    from byoc.preprocessing import CategoryCoder

    X = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 4 + ["c"] * 2 + ["d"] + [None]})
    coder = CategoryCoder(max_categories=3).fit(X)
    assert coder.categories_[0].tolist() == ["a", "b"]
    assert coder.infrequent_categories_[0].tolist() == ["c", "d"]
    later = pd.DataFrame({"c": ["b", "d", "c", "zzz", None]})
    assert coder.transform(later)[:, 0].tolist() == [1, 2, 2, -1, -2]
    assert coder.get_feature_names_out().tolist() == ["c"]
    assert clone(coder).max_categories == 3


def test_category_coder_matches_int_and_float_spellings_of_a_category():
    from byoc.preprocessing import CategoryCoder

    coder = CategoryCoder().fit(pd.DataFrame({"zip": pd.Series(["1", "2"], dtype="str")}))
    assert coder.transform(pd.DataFrame({"zip": [2.0, 1.0]}))[:, 0].tolist() == [1, 0]


texts = st.one_of(st.none(), st.text(max_size=4), st.sampled_from(["None", "NA", "", " a", "é", "1.0"]))


@settings(max_examples=80, deadline=None)
@given(st.lists(texts, min_size=1, max_size=20), st.lists(texts, min_size=1, max_size=30), st.integers(2, 6))
def test_category_coder_codes_arrow_text_as_it_codes_python_text(train, request, max_categories):
    """A request's CSV text columns are Arrow-backed and looked up in Arrow; the same values as
    Python strings (object dtype, the pandas path) must get the same codes."""
    from byoc.preprocessing import CategoryCoder

    arrow = pd.StringDtype("pyarrow", na_value=np.nan)
    for limit in (None, max_categories):
        coder = CategoryCoder(max_categories=limit).fit(pd.DataFrame({"c": pd.Series(train, dtype=arrow)}))
        as_python = coder.transform(pd.DataFrame({"c": pd.Series(request, dtype=pd.StringDtype("python"))}))
        half = len(request) // 2
        chunks = pa.chunked_array([request[:half], request[half:]], type=pa.large_string())
        for column in (pd.Series(request, dtype=arrow), pd.Series(pd.array(chunks, dtype=arrow))):
            assert np.array_equal(coder.transform(pd.DataFrame({"c": column})), as_python)


cells = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=False, width=32),
    st.integers(-5, 5),
    st.sampled_from(["a", "b", "", " ", "1", "x y", "é"]),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(cells, cells, cells), min_size=2, max_size=12),
    st.lists(st.tuples(cells, cells, cells), min_size=1, max_size=4),
)
def test_any_training_frame_and_any_later_rows_never_crash_the_transformer(rows, later_rows):
    columns = ["p", "q", "r"]
    train = pd.DataFrame(rows, columns=columns)
    schema = feature_schema(train)
    for categorical, scale in (("onehot", True), ("ordinal", False)):
        pre = build_preprocessor(schema, scale=scale, categorical=categorical)
        out = pre.fit_transform(coerce_features(train, schema, where="train"))
        assert out.shape[1] == len(output_owners(pre))
        later = pd.DataFrame(later_rows, columns=columns)
        try:
            X = coerce_features(later, schema, where="request")
        except SchemaError as exc:  # text in a numeric column: named, never a crash
            assert "request: column" in str(exc)
            continue
        assert pre.transform(X).shape == (len(later), out.shape[1])


# -- byoc's own fitted steps: rows and batches run the same code -----------------------------------
encoder_frames = st.integers(min_value=0, max_value=2**32 - 1).map(lambda seed: _encoder_frame(seed))


def _encoder_frame(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(70, 150))
    age = rng.normal(40, 10, n)
    age[rng.random(n) < 0.2] = np.nan
    job = rng.choice(["a", "b", "c", "None", "true"], n).astype(object)
    job[rng.random(n) < 0.2] = np.nan
    return pd.DataFrame({"age": age, "const": np.full(n, 0.1), "empty": np.full(n, np.nan), "job": job})


@settings(max_examples=15, deadline=None)
@given(
    encoder_frames,
    st.sampled_from([(True, "onehot"), (False, "onehot"), (True, "ordinal"), (False, "ordinal")]),
    st.sampled_from([0.0, 1.0]),
)
def test_row_encoder_equals_the_column_transformer(frame, layout, sparse_threshold):
    """Row by row, the encoder gives what the ColumnTransformer gives for that row alone, dense
    or (one-hot past its threshold) CSR with the same stored entries."""
    from scipy import sparse

    from byoc.preprocessing import RowEncoder

    scale, categorical = layout
    features = feature_schema(frame)
    pre = build_preprocessor(features, scale=scale, categorical=categorical)
    pre.set_params(sparse_threshold=sparse_threshold)
    X = coerce_features(frame, features, where="train")
    pre.fit(X)
    assert pre.sparse_output_ == (sparse_threshold == 1.0 and categorical == "onehot")
    encoder = RowEncoder.of(pre, [f.name for f in features])
    assert encoder is not None
    columns = [X[f.name].to_numpy(dtype=np.float64 if f.kind == "numeric" else object) for f in features]
    for i in range(0, len(X), 9):
        row = encoder.transform([c[i : i + 1] for c in columns])
        alone = pre.transform(X.iloc[i : i + 1])  # a one-row request through the pipeline
        assert sparse.issparse(row) == sparse.issparse(alone) == pre.sparse_output_, i
        if pre.sparse_output_:
            for part in ("data", "indices", "indptr"):
                assert np.array_equal(getattr(row, part), getattr(alone, part)), (i, part)
            row, alone = row.toarray(), alone.toarray()
        assert row.dtype == alone.dtype and np.array_equal(row, alone), i
    unseen = encoder.transform(
        [np.array([np.nan]), np.array([np.nan]), np.array([np.nan]), np.array(["zz"], object)]
    )
    assert np.isfinite(unseen.toarray() if sparse.issparse(unseen) else unseen).all()


@settings(max_examples=15, deadline=None)
@given(
    encoder_frames,
    st.sampled_from([(True, "onehot"), (False, "onehot"), (True, "ordinal"), (False, "ordinal")]),
    st.sampled_from([0.0, 1.0]),
    st.integers(1, 4),
)
def test_row_encoder_on_a_whole_batch_equals_the_column_transformer(frame, layout, sparse_threshold, times):
    """A batch of more than FEW_CODED_ROWS rows (coded column by column, as CategoryCoder.transform
    codes them), its text as Python objects or Arrow (a large CSV body's), gives what the
    ColumnTransformer gives for the whole frame."""
    from scipy import sparse

    from byoc import preprocessing
    from byoc.preprocessing import RowEncoder
    from byoc.serving.schema import ARROW_TEXT

    scale, categorical = layout
    features = feature_schema(frame)
    pre = build_preprocessor(features, scale=scale, categorical=categorical)
    pre.set_params(sparse_threshold=sparse_threshold)
    pre.fit(coerce_features(frame, features, where="train"))
    encoder = RowEncoder.of(pre, [f.name for f in features])
    assert encoder is not None
    X = coerce_features(pd.concat([frame] * times, ignore_index=True), features, where="request")
    expected = pre.transform(X)
    plain = [X[f.name].to_numpy(dtype=np.float64 if f.kind == "numeric" else object) for f in features]
    arrow = [
        c if f.kind == "numeric" else pd.array(c, dtype=ARROW_TEXT)
        for c, f in zip(plain, features, strict=True)
    ]
    saved = preprocessing.FEW_CODED_ROWS
    preprocessing.FEW_CODED_ROWS = len(X) - 1
    try:
        for columns in (plain, arrow):
            got = encoder.transform(columns)
            assert sparse.issparse(got) == sparse.issparse(expected)
            if sparse.issparse(got):
                for part in ("data", "indices", "indptr"):
                    assert np.array_equal(getattr(got, part), getattr(expected, part)), part
                got = got.toarray()
            want = expected.toarray() if sparse.issparse(expected) else expected
            assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)
    finally:
        preprocessing.FEW_CODED_ROWS = saved


def test_own_steps_compute_what_scikit_learn_would():
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from byoc.preprocessing import CodeOneHot, MedianImputer, Standardizer

    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 3))
    X[rng.random((200, 3)) < 0.2] = np.nan
    X[:, 2] = np.nan
    ours = MedianImputer().fit(X).transform(X)
    theirs = SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True).fit_transform(X)
    np.testing.assert_allclose(ours, theirs)
    filled = ours[:, :3]
    np.testing.assert_allclose(
        Standardizer().fit(filled).transform(filled), StandardScaler().fit_transform(filled), atol=1e-12
    )
    codes = rng.integers(-2, 4, size=(200, 2)).astype(float)
    ohe = OneHotEncoder(handle_unknown="ignore").fit(codes)
    onehot = CodeOneHot().fit(codes)
    test = np.array([[0.0, 1.0], [-1.0, 7.0], [3.0, -2.0]])
    np.testing.assert_array_equal(onehot.transform(test).toarray(), ohe.transform(test).toarray())
    np.testing.assert_array_equal(onehot.transform_dense(test), ohe.transform(test).toarray())
    assert (
        onehot.transform(np.repeat(test, 40, axis=0)).toarray().tolist()
        == ohe.transform(np.repeat(test, 40, axis=0)).toarray().tolist()
    )


@pytest.mark.parametrize(
    "train",
    [
        [[0.0, -2.0], [3.0, 1.0], [1.0, 5.0]],  # byoc's codes: looked up in the code table
        [[0.0, -2.0], [3.5, 1.0], [1.0, 5.0]],  # a non-integral category: searched per column
        [[0.0, -2.0], [3.0, 1.0], [5000.0, 5.0]],  # a code past the table's bound: searched
        [[-7.0, 0.0], [3.0, 1.0], [1.0, 5.0]],  # a code below the missing code: searched
    ],
)
def test_one_hot_codes_match_scikit_learn_on_both_sides_of_the_code_table(train):
    """CodeOneHot's table lookup and its per-column search give OneHotEncoder's columns, for
    odd values too (unknown, missing, NaN, non-integral, out of range)."""
    from sklearn.preprocessing import OneHotEncoder

    from byoc.preprocessing import CodeOneHot

    codes = np.asarray(train)
    test = np.array(
        [
            [v, w]
            for v in (0.0, -0.0, 3.0, 3.5, 1e-17, -1.0, -2.0, -7.0, 5000.0, 1e300, np.inf, np.nan)
            for w in (5.0, -2.0, 4.999999999, 1.0, np.nan, 4097.0)
        ]
    )
    theirs = OneHotEncoder(handle_unknown="ignore").fit(codes).transform(np.nan_to_num(test, nan=-99.0))
    ours = CodeOneHot().fit(codes)
    np.testing.assert_array_equal(ours.transform_dense(test), theirs.toarray())
    np.testing.assert_array_equal(ours.transform(test).toarray(), theirs.toarray())


def test_numpy_number_columns_are_converted_together_not_one_by_one(monkeypatch):
    """A typed training channel's numeric columns (float64, int64...) are one conversion of the
    frame (:func:`byoc.values.number_matrix`): column by column, 2,000 columns of 300 rows
    took 0.5-0.75 s, mostly pandas' set-up per column.  Other columns still take
    :func:`byoc.values.number_column` one by one, in the features' order."""
    from byoc import values

    rng = np.random.default_rng(3)
    names = [f"c{i}" for i in range(40)]
    frame = pd.DataFrame(rng.normal(size=(5, 40)), columns=names).astype({"c3": "int64", "c5": "float32"})
    frame.iloc[1, 7] = np.nan
    frame["t"] = pd.Series(["1", "", "x", "2", "3"], dtype="str")
    schema = feature_schema(frame.drop(columns="t")) + [Feature("t", "numeric", "float64")]
    text = frame.assign(t=["1", "", "2.5", "2", "3"])
    expected = {name: values.number_column(text[name])[0] for name in text.columns}
    seen = []

    def one_column(column):
        seen.append(column.name)
        return expected[column.name], None

    monkeypatch.setattr(values, "number_column", one_column)
    out = coerce_features(text[list(reversed(text.columns))], schema, where="test channel")
    assert seen == ["t"]  # the NumPy-number columns never went one by one
    assert list(out.columns) == [*names, "t"] and (out.dtypes == "float64").all()
    for name in out.columns:
        np.testing.assert_array_equal(out[name].to_numpy(), expected[name])
