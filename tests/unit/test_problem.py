"""Problem-type inference with its reason, and JSON-native label encoding."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byoc.errors import DataError
from byoc.problem import Labels, drop_missing_target, fit_labels, infer_problem_type, keep_spellings
from byoc.training import _typed_label


def series(values, name="y", dtype=None) -> pd.Series:
    return pd.Series(values, name=name, dtype=dtype)


# -- inference ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["str", object])
def test_text_target_with_two_values_is_binary_with_a_reason(dtype):
    kind, reason = infer_problem_type(series(["yes", "no", "yes", None], "deposit", dtype))
    assert kind == "binary_classification"
    assert reason == "target 'deposit' has 2 distinct text values -> binary_classification"


def test_text_target_with_many_values_is_multiclass(iris):
    kind, reason = infer_problem_type(iris["target"])
    assert kind == "multiclass_classification" and "3 distinct text values" in reason


def test_bool_target_is_binary():
    kind, reason = infer_problem_type(series([True, False, True]))
    assert kind == "binary_classification" and "true/false" in reason


def test_fractional_numbers_are_regression(diabetes):
    kind, reason = infer_problem_type(series([0.5, 1.25, 3.0, 2.0]))
    assert kind == "regression" and "non-integer" in reason


def test_integer_valued_floats_with_two_values_are_binary():
    kind, _ = infer_problem_type(series([1.0, 0.0, 1.0, np.nan, 0.0]))
    assert kind == "binary_classification"


def test_few_integer_values_are_multiclass_and_the_reason_says_how_to_override():
    y = series(np.tile([0, 1, 2, 3], 10))
    kind, reason = infer_problem_type(y)
    assert kind == "multiclass_classification"
    assert "4 distinct integer values" in reason and "problem_type=regression" in reason


def test_many_integer_values_are_regression(diabetes):
    kind, reason = infer_problem_type(diabetes["target"].round().astype(int))
    assert kind == "regression" and "too many" in reason
    assert "problem_type=multiclass_classification" in reason


def test_few_rows_per_integer_value_are_regression():
    kind, _ = infer_problem_type(series([1, 2, 3, 4, 5, 6]))
    assert kind == "regression"


@pytest.mark.parametrize(
    "classes, rows, expected",
    [
        (20, 40, "multiclass_classification"),  # at most 20 classes, each seen twice on average
        (21, 42, "regression"),  # one class too many
        (20, 39, "regression"),  # one row too few for 20 classes
        (3, 6, "multiclass_classification"),  # exactly twice each
    ],
)
def test_integer_classes_are_inferred_up_to_20_seen_twice_on_average(classes, rows, expected):
    """README's rule at its edges: integers are classes when there are at most 20, each seen twice
    on average, else a regression (the log's reason says how to override it)."""
    kind, _ = infer_problem_type(series([i % classes for i in range(rows)]))
    assert kind == expected


def test_numbers_in_an_object_column_count_as_numbers():
    kind, _ = infer_problem_type(series([0.5, 1.5, None, 2.25], dtype=object))
    assert kind == "regression"


@pytest.mark.parametrize("requested", ["regression", "binary_classification", "multiclass_classification"])
def test_requested_type_is_honoured_with_a_reason(requested):
    kind, reason = infer_problem_type(series([0, 1, 0, 1, 1]), requested)
    assert kind == requested and "requested" in reason


@pytest.mark.parametrize(
    "y, requested, fragments",
    [
        (series([np.nan, np.nan], "label"), "auto", ["'label'", "no values", "target hyperparameter"]),
        (series(["a", "a", "a"], "label"), "auto", ["'label'", "single value", "'a'"]),
        (series([1, 1], "label"), "regression", ["'label'", "single value"]),
        # labels spelled as the classes are, not as NumPy scalars' reprs (np.float64(1.0))
        (series([1.0, 1.0], "label"), "auto", ["single value (1) in all 2 rows"]),
        (
            series([0.5, 1.5, 2.5], "label"),
            "binary_classification",
            ["3 distinct values (0.5, 1.5, 2.5) but"],
        ),
        (
            series([1.0, 2.0, 3.0, 4.0], "label"),
            "binary_classification",
            ["4 distinct values (1, 2, 3, ...) but"],
        ),
        (series(["yes", "no"], "label"), "regression", ["'label'", "text", "regression needs numbers"]),
        (series(["a", "b", "c"], "label"), "binary_classification", ["'label'", "3 distinct", "exactly 2"]),
        (
            series([1.0, np.inf, 2.0], "label"),
            "auto",
            ["'label'", "holds inf (infinity", "leave the cell empty"],
        ),
    ],
)
def test_unlearnable_targets_are_data_errors_naming_the_column(y, requested, fragments):
    with pytest.raises(DataError) as info:
        infer_problem_type(y, requested)
    for fragment in fragments:
        assert fragment in str(info.value)


# -- missing targets -----------------------------------------------------------------------------
def test_rows_with_missing_target_are_counted_in_the_warning():
    keep, warning = drop_missing_target(series(["yes", None, "no", "", "yes"], "deposit", "str"))
    assert keep.tolist() == [True, False, True, False, True]
    assert warning is not None and "dropped 2 of 5 rows" in warning and "'deposit'" in warning
    assert "row 2" in warning


@pytest.mark.parametrize("dtype", ["str", object])
def test_text_target_missing_is_a_text_columns_missing(dtype):
    """byoc.values' rule for text: NA, None, null, nan are classes; empty, spaces, null are missing."""
    y = series(["yes", "NA", "N/A", "None", "null", "nan", " \t", "", None, "no"], "deposit", dtype)
    keep, warning = drop_missing_target(y)
    assert keep.tolist() == [True] * 6 + [False] * 3 + [True]
    assert warning is not None and "dropped 3 of 10 rows" in warning


def test_no_missing_target_means_no_warning():
    keep, warning = drop_missing_target(series([1.0, 2.0]))
    assert keep.all() and warning is None


def test_all_missing_target_is_an_error():
    with pytest.raises(DataError, match="'y' has no values in any of its 2 rows"):
        drop_missing_target(series([None, None], dtype=object))


# -- labels ------------------------------------------------------------------------------------
def test_float_labels_become_json_native_ints():
    labels = fit_labels(series([1.0, 0.0, 1.0]))
    assert labels.classes == (0, 1)
    assert all(type(c) is int for c in labels.classes)
    assert json.dumps(labels.to_list()) == "[0, 1]"


@pytest.mark.parametrize("values", [[0.0, -0.0, 0.5], [-0.0, 0.0, 0.5], [-0.0, 0.5]])
def test_negative_zero_is_the_class_zero_whichever_row_comes_first(values):
    """-0.0 and 0.0 are one class; which was kept followed the rows' order, and a model whose first
    row said -0.0 answered ``-0.0`` for every row written 0.0."""
    labels = fit_labels(series(values))
    assert labels.classes == (0.0, 0.5) and json.dumps(labels.to_list()) == "[0.0, 0.5]"
    assert labels.encode(series(values), where="v").tolist() == [0] * (len(values) - 1) + [1]


@pytest.mark.parametrize("dtype", ["str", object])
def test_text_labels_sorted_and_round_trip(dtype):
    y = series(["yes", "no", "maybe", "no"], dtype=dtype)
    labels = fit_labels(y)
    assert labels.classes == ("maybe", "no", "yes")
    codes = labels.encode(y, where="train channel")
    assert codes.tolist() == [2, 1, 0, 1]
    assert labels.decode(codes).tolist() == ["yes", "no", "maybe", "no"]


def test_bool_labels_stay_bool():
    labels = fit_labels(series([True, False]))
    assert labels.classes == (False, True)
    assert labels.encode(series(["true", "False"], dtype=object), where="v").tolist() == [1, 0]


def test_other_channels_may_spell_numeric_labels_differently():
    labels = fit_labels(series([0.0, 1.0, 2.0]))
    assert labels.encode(series(["1", "2", "0"], dtype=object), where="v").tolist() == [1, 2, 0]
    assert labels.encode(series([1, 2, 0]), where="v").tolist() == [1, 2, 0]


def test_unseen_label_names_where_row_value_and_known_classes():
    labels = fit_labels(series(["no", "yes"], "deposit"))
    with pytest.raises(DataError) as info:
        labels.encode(series(["yes", "maybe"], "deposit"), where="validation channel")
    message = str(info.value)
    assert message.startswith("validation channel: target 'deposit' row 2 holds 'maybe'")
    assert "'no', 'yes'" in message


def test_missing_label_in_another_channel_is_reported():
    labels = fit_labels(series([0, 1]))
    with pytest.raises(DataError, match="row 1 holds a missing value"):
        labels.encode(series([np.nan, 1.0]), where="test channel")


def test_labels_are_frozen_values():
    labels = Labels(classes=("a", "b"))
    with pytest.raises(AttributeError):
        labels.classes = ("c",)


# -- spellings: number-like class labels that reading as numbers would lose ------------------------
def train_labels(cells, requested="auto", dtype="str"):
    """The train target as training reads it: the label column as written, typed, spellings kept."""
    written = series(cells, "code", dtype)
    return keep_spellings(written, _typed_label(written), requested)


@pytest.mark.parametrize("dtype", ["str", object])
def test_codes_with_leading_zeros_keep_their_spellings(dtype):
    """'01' and '1' are two classes, '002' is not 2: as numbers two classes merged silently."""
    y, reason = train_labels(["01", "1", "002", "01", "1", "002"] * 5, dtype=dtype)
    assert y.tolist() == ["01", "1", "002", "01", "1", "002"] * 5
    assert reason is not None and reason.startswith("target 'code' keeps its 3 labels as text, as written")
    assert "'01' and '1' would both be the number 1" in reason and "leading zeros" in reason
    kind, why = infer_problem_type(y)
    assert kind == "multiclass_classification" and "3 distinct text values" in why
    labels = fit_labels(y)
    assert labels.classes == ("002", "01", "1") and labels.kind == "str"
    assert labels.decode(labels.encode(y, where="train channel")).tolist() == y.tolist()


@pytest.mark.parametrize(
    "cells",
    [
        ["1.10", "1.1", "2"],  # two spellings of one number: versions
        ["1.0", "01", "2"],  # a code beside them keeps every spelling
        ["9007199254740993", "9007199254740992"],  # one float past 2**53
        ["1.50", "1.5", "2.25"] * 4,
    ],
)
def test_classes_keep_spellings_that_numbers_would_merge(cells):
    y, reason = train_labels(cells * 10, requested="multiclass_classification")
    assert y.tolist() == cells * 10 and reason is not None
    assert "set problem_type=regression" not in reason  # the user asked for classes
    auto, _ = train_labels(cells * 10)
    classes = all(float(c).is_integer() for c in cells)  # auto: fractions are a regression
    assert auto.tolist() == (cells * 10 if classes else [float(c) for c in cells * 10])


def test_whole_spellings_of_one_integer_kept_as_text_are_one_class():
    """A code keeps the labels as text; ``1`` and ``1.0`` (two writers of one class) and an id past
    2**53 with and without '.0' were then two classes each. They are one, the integer's digits, and
    another channel's whole spelling of it (``1.0``, a JSON 1.0, ``+1``) is that class."""
    big = 2**53 + 1
    cells = ["1.0", "1", "01", f"{big}.0", str(big)]
    y, reason = train_labels(cells * 10, requested="multiclass_classification")
    assert y.tolist() == ["1", "1", "01", str(big), str(big)] * 10 and reason is not None
    assert reason.startswith("target 'code' keeps its 3 labels as text")
    labels = fit_labels(y)
    assert labels.classes == ("01", "1", str(big))
    other = pd.Series(["1.0", "+1", 1.0, f"{big}.0", "01"], dtype=object)
    assert labels.encode(other, where="validation channel").tolist() == [1, 1, 1, 2, 0]
    assert Labels(("01", "1", "1.0"), "str").first_unseen(pd.Series(["1.00"])) == 0  # two classes spell 1


@pytest.mark.parametrize(
    "cells",
    [
        ["0.0", "1.0"],
        ["+1", "-1"],
        ["1e3", "2e3", "5"],
        ["1.50", "2.25"],
        ["0", "1", "0.0", "1.0"],  # one file from an integer column, one from a float column
        ["-0", "0", "1"],
    ],
)
def test_labels_spelled_otherwise_than_byoc_are_still_their_numbers(cells):
    """Nothing is lost reading them: each spelling is one number, so the class is that number
    (a CSV written from a float label column, ``0.0``/``1.0``, answers 0/1 as it always did).
    Whole numbers written with and without ``.0`` are one class: two files, one written by pandas
    from an integer column holding a missing value (so floats), were four classes ``0``, ``0.0``,
    ``1``, ``1.0`` where the user had two."""
    y, reason = train_labels(cells * 10, requested="multiclass_classification")
    assert reason is None and y.tolist() == [float(c) for c in cells * 10]


def test_an_integer_label_past_float_precision_keeps_its_digits():
    y, reason = train_labels(["12345678901234567891", "7"] * 10, requested="binary_classification")
    assert reason is not None and y.tolist() == ["12345678901234567891", "7"] * 10


@pytest.mark.parametrize("dtype", ["str", object])
def test_plain_numeric_labels_stay_numbers(dtype):
    y, reason = train_labels(["0", "1", "2", " 1", "NA", ""] * 5, dtype=dtype)
    assert reason is None and pd.api.types.is_float_dtype(y.dtype)
    keep, _ = drop_missing_target(y)
    assert fit_labels(y[keep]).classes == (0, 1, 2)


def test_regression_targets_are_numbers_whatever_their_spelling():
    prices = ["1.50", "2.25", "3.10", "4.75"] * 5
    y, reason = train_labels(prices)  # auto: non-integer numbers, regression
    assert reason is None and y.tolist() == [float(p) for p in prices]
    zips = [f"{i:05d}" for i in range(200)] * 2
    y, reason = train_labels(zips, requested="regression")
    assert reason is None and y.tolist() == [float(z) for z in zips]


def test_many_codes_with_leading_zeros_are_classes_not_a_regression():
    """200 ZIP-like codes in 400 rows: as integers too many for classes (regression); the leading
    zeros say they are codes, so auto makes them classes, as written."""
    zips = [f"{i:05d}" for i in range(200)] * 2
    assert infer_problem_type(series([float(z) for z in zips]))[0] == "regression"
    y, reason = train_labels(zips)
    assert y.tolist() == zips
    assert reason is not None and "codes, not quantities" in reason and "problem_type=regression" in reason
    kind, _ = infer_problem_type(y)
    assert kind == "multiclass_classification" and len(fit_labels(y).classes) == 200


def test_many_plain_integers_stay_a_regression():
    y, reason = train_labels([str(i) for i in range(200)] * 2)
    assert reason is None and infer_problem_type(y)[0] == "regression"


def test_missing_words_stay_missing_when_spellings_are_kept():
    """A number-like target reads NA as missing (README "Values"); keeping the other labels'
    spellings does not make NA a class."""
    y, reason = train_labels(["01", "1", "NA", " ", "002"] * 4)
    assert reason is not None
    keep, warning = drop_missing_target(y)
    assert warning is not None and "dropped 8 of 20 rows" in warning
    assert fit_labels(y[keep]).classes == ("002", "01", "1")


def test_labels_that_are_numbers_already_have_no_spelling_to_keep():
    """Parquet or JSON numbers: the reader gave numbers, the classes are numbers."""
    for written in (series([1, 2, 1, 2]), series([1.0, 2.0, 1.0, 2.0]), series([True, False])):
        y, reason = keep_spellings(written, _typed_label(written))
        assert reason is None


def test_infinite_labels_are_refused_whatever_their_spelling():
    y, reason = train_labels(["01", "1", "Infinity"] * 3)
    assert reason is None
    with pytest.raises(DataError, match="holds inf"):
        infer_problem_type(y)


def test_other_channels_keep_spellings_for_text_classes():
    """A validation label '01' scored against text classes is '01', not the number 1 spelled '1'."""
    labels = fit_labels(train_labels(["01", "1", "002"] * 3)[0])
    held = series(["1", "01", "002", "NA"], "code")
    y = _typed_label(held, labels=labels)
    assert y.iloc[:3].tolist() == ["1", "01", "002"] and pd.isna(y.iloc[3])
    assert labels.encode(y.iloc[:3], where="validation channel").tolist() == [2, 1, 0]
    with pytest.raises(DataError, match="holds '2', which is not among the classes"):
        labels.encode(_typed_label(series(["2"], "code"), labels=labels), where="validation channel")
    numbers = _typed_label(held)  # number classes: the channel's labels read as numbers
    assert numbers.iloc[:3].tolist() == [1.0, 1.0, 2.0]


@pytest.mark.parametrize("dtype", ["str", object])
def test_other_channels_read_integer_classes_past_float_precision_as_written(dtype):
    """Integer classes 2**53 and 2**53 + 1 (JSON numbers): a channel writing them as text read
    both as the float 2**53, one class. Each is the integer written, however spelled; a spelling
    that is no integer matches no class rather than the integer its float rounds to."""
    labels = fit_labels(series([7, 2**53, 2**53 + 1]))
    assert labels.kind == "int"
    held = series(["9007199254740993", "9007199254740992", " +9007199254740993.0", "7", "NA"], "id", dtype)
    y = _typed_label(held, labels=labels)
    assert y.iloc[:4].tolist() == [2**53 + 1, 2**53, 2**53 + 1, 7] and pd.isna(y.iloc[4])
    assert labels.encode(y.iloc[:4], where="test channel").tolist() == [2, 1, 2, 0]
    odd = _typed_label(series(["9007199254740992.5"], "id", dtype), labels=labels)
    with pytest.raises(DataError, match=r"holds '9007199254740992\.5', which is not among the classes"):
        labels.encode(odd, where="test channel")
    assert _typed_label(held).iloc[:2].tolist() == [2.0**53, 2.0**53]  # regression: numbers


def test_labels_past_float_range_against_integer_classes_stay_infinite():
    """A text label past float64's range ("1e30000") scored against integer classes was made
    the integer it spells: 30,001 digits no message can print (the job failed as a bug in
    byoc), and "1e999999999" stalled it. It is inf, a label no class matches, named as such."""
    labels = fit_labels(series([7, 2**53, 2**53 + 1]))
    y = _typed_label(series(["7", "1e30000", "-1e400"], "id"), labels=labels)
    assert y.iloc[0] == 7 and y.iloc[1:].tolist() == [np.inf, -np.inf]
    with pytest.raises(DataError, match="row 2 holds inf, which is not among the classes"):
        labels.encode(y, where="test channel")


def test_a_missing_word_that_spells_a_text_class_is_that_class():
    """Classes None/fraud: a channel whose labels are all "None" (a column a numeric reading takes
    for all missing) holds the class None; "NA", no class, stays missing."""
    labels = fit_labels(train_labels(["None", "fraud"] * 3)[0])
    y = _typed_label(series(["None", " None", "NA", ""], "y"), labels=labels)
    assert y.iloc[:2].tolist() == ["None", "None"] and y.iloc[2:].isna().all()
    assert labels.encode(y.iloc[:2], where="test channel").tolist() == [0, 0]


label_cells = st.one_of(
    st.none(),
    st.integers(-3, 3),
    st.floats(-3, 3),
    st.just(float("nan")),
    st.sampled_from(["yes", "no", "1", "0", "", "True"]),
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(label_cells, min_size=1, max_size=30))
def test_any_target_is_either_a_data_error_or_a_round_tripping_problem(values):
    y = pd.Series(values, name="target", dtype=object)
    try:
        keep, _ = drop_missing_target(y)
        y = y[keep]
        kind, reason = infer_problem_type(y)
    except DataError as exc:
        assert "'target'" in str(exc)
        return
    assert kind in ("regression", "binary_classification", "multiclass_classification")
    assert "'target'" in reason
    if kind != "regression":
        labels = fit_labels(y)
        json.dumps(labels.to_list())
        codes = labels.encode(y, where="train channel")
        assert labels.decode(codes).shape == (len(y),)
        if kind == "binary_classification":
            assert len(labels.classes) == 2


def test_numbers_written_as_text_can_be_regression_when_asked():
    y = series(["1.5", "2.25", "3"], dtype="str")
    assert infer_problem_type(y)[0] == "multiclass_classification"  # text stays text on auto
    assert infer_problem_type(y, "regression")[0] == "regression"
    with pytest.raises(DataError, match="regression needs numbers"):
        infer_problem_type(series(["1.5", "two"], dtype="str"), "regression")


@pytest.mark.parametrize("dtype", ["int64", object])
def test_integer_labels_past_float_precision_stay_distinct_classes(dtype):
    """Parquet int64 or JSON integer labels (ids) 2**53 and 2**53 + 1 are two classes: read
    through float they were one, so training refused them as a single class, or (beside a
    third label) trained a binary model that answered 2**53 for every 2**53 + 1 row."""
    big = [2**53, 2**53 + 1, 7]
    y = series(big * 4, dtype=dtype)
    kind, _ = infer_problem_type(y)
    assert kind == "multiclass_classification"
    labels = fit_labels(y)
    assert labels.classes == (7, 2**53, 2**53 + 1) and labels.kind == "int"
    assert labels.decode(labels.encode(y, where="train")).tolist() == big * 4
    held = series([2**53 + 1, 2**53, 7], dtype="int64")  # a validation channel's Parquet ids
    assert labels.decode(labels.encode(held, where="validation")).tolist() == [2**53 + 1, 2**53, 7]


def test_labels_know_when_every_class_is_a_boolean():
    """The readers make booleans the categories true/false; model.json records that the label
    column held them, so the server answers booleans (see test_label_spellings)."""
    assert fit_labels(pd.Series(["true", "false", "true"], name="y")).booleans
    assert fit_labels(pd.Series([True, False], name="y")).booleans
    assert not fit_labels(pd.Series(["true", "maybe"], name="y")).booleans
    assert not fit_labels(pd.Series(["yes", "no"], name="y")).booleans
    assert not fit_labels(pd.Series([0, 1], name="y")).booleans
