"""Hyperparameter declarations: every client's spelling, precise errors, the classic sample's keys."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byoc import algorithms
from byoc.data import ChannelData
from byoc.environment import decode_hyperparameter_value
from byoc.errors import HyperparameterError
from byoc.hyperparameters import Hyperparameter, common, help_text, markdown_table, resolve


def all_declarations() -> list[tuple[str, Hyperparameter]]:
    out = [("common", hp) for hp in common()]
    for name in algorithms.names():
        out += [(name, hp) for hp in algorithms.get(name).hyperparameters]
    return out


def error_of(raw: dict) -> str:
    with pytest.raises(HyperparameterError) as info:
        resolve(raw)
    return str(info.value)


# -- defaults and spellings ---------------------------------------------------------------------
def test_empty_gives_the_documented_defaults():
    params = resolve({})
    assert params["algorithm"] == "decision_tree"
    assert params["problem_type"] == "auto"
    assert params["target"] == 0
    assert params["header"] is None and params["content_type"] is None
    assert params["random_state"] == 0 and params["n_jobs"] == -1 and params["cv_folds"] == 3
    assert params["max_leaf_nodes"] is None and params["max_depth"] is None
    assert "use_custom_ensemble" not in params  # folded into algorithm


@pytest.mark.parametrize("decl", [d for _, d in all_declarations()], ids=lambda d: d.name)
def test_every_default_passes_its_own_validation(decl):
    if decl.default is None:
        assert decl.nullable
    else:
        assert decl.coerce(decl.default) == decl.default


@pytest.mark.parametrize("value", [5, "5", 5.0, "5.0", " 5 "])
def test_int_spellings(value):
    assert resolve({"max_depth": value})["max_depth"] == 5


@pytest.mark.parametrize("value, expected", [("None", None), (None, None), ("null", None), ("7", 7)])
def test_nullable_int(value, expected):
    assert resolve({"max_leaf_nodes": value})["max_leaf_nodes"] == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, True),
        ("true", True),
        ("True", True),
        ("1", True),
        (1, True),
        (False, False),
        ("false", False),
        ("False", False),
        ("no", False),
        (0, False),
    ],
)
def test_bool_spellings(value, expected):
    params = resolve({"algorithm": "random_forest", "bootstrap": value})
    assert params["bootstrap"] is expected


@pytest.mark.parametrize("client", ["sdk-json", "str", "raw"])
def test_every_client_encoding_resolves_the_same(client):
    """hyperparameters.json as the SDK's json.dumps, the generic Estimator's str() or a human writes it."""
    given = {
        "algorithm": "random_forest",
        "n_estimators": 50,
        "max_depth": None,
        "criterion": "entropy",
        "bootstrap": False,
        "max_features": 0.5,
        "target": "deposit",
    }
    encode = {"sdk-json": json.dumps, "str": str, "raw": lambda v: v}[client]
    decoded = {k: decode_hyperparameter_value(encode(v)) for k, v in given.items()}
    params = resolve(decoded)
    for key, value in given.items():
        assert params[key] == value, key


def test_doubly_encoded_string_is_unwrapped():
    assert resolve({"criterion": '"gini"'})["criterion"] == "gini"


def test_choices_are_case_insensitive_and_canonical():
    assert resolve({"algorithm": "Random_Forest"})["algorithm"] == "random_forest"
    assert resolve({"problem_type": "REGRESSION"})["problem_type"] == "regression"


def test_dash_and_underscore_are_alike_and_case_is_forgiven():
    params = resolve({"max-depth": "3", "min-samples-leaf": 2})
    assert params["max_depth"] == 3 and params["min_samples_leaf"] == 2
    assert resolve({"algorithm": "linear", "c": "0.5"})["C"] == 0.5


def test_two_spellings_with_different_values_are_rejected():
    message = error_of({"max-depth": 3, "max_depth": 4})
    assert "max_depth" in message and "max-depth" in message and "keep one" in message


def test_two_spellings_with_the_same_value_are_fine():
    assert resolve({"max-depth": 3, "max_depth": 3})["max_depth"] == 3


def test_target_accepts_name_or_index():
    assert resolve({"target": "deposit"})["target"] == "deposit"
    # a string (a JSON string in hyperparameters.json) stays one: it may name a column "2"
    # (training.resolve_target reads it as an index when the header has no such name)
    assert resolve({"target": "2"})["target"] == "2"
    assert resolve({"target": '"2"'})["target"] == "2"  # a doubly encoded string
    assert resolve({"target": 3})["target"] == 3
    assert resolve({"target": "²"})["target"] == "²"  # a digit to str.isdigit, not to int()
    assert resolve({"label": "y"})["target"] == "y"  # alias


def _channel(columns: list[str], *, header: bool = True) -> ChannelData:
    return ChannelData(
        frame=pd.DataFrame(columns=columns), has_header=header, label_size=None, files=("train/a.csv",)
    )


@pytest.mark.parametrize(
    "columns, target, given, expected",
    [
        (["x", "0", "z"], "0", True, (1, "0")),  # the JSON string '"0"': the column named 0
        (["x", "0", "z"], 2, True, (2, "z")),  # the header has no column '2': the index
        (["x", "0", "z"], "2", True, (2, "z")),  # likewise for a string of digits
        (["x", "0", "z"], 0, False, (0, "x")),  # the default: the first column, as documented
        (["0", "1", "y"], 1, True, (1, "1")),  # both readings are the same column
        (["a", "b", "5"], 5, True, (2, "5")),  # no column 5: the name is the only reading
        (["1", "0"], "1", True, (0, "1")),
        (["x", "0"], 1, True, (1, "0")),
        (["x", "y"], "²", True, None),  # not an index: a name, and not a column
    ],
)
def test_target_against_the_header(columns, target, given, expected):
    from byoc.training import TargetSpec, resolve_target

    if expected is None:
        with pytest.raises(HyperparameterError, match="is not a column"):
            resolve_target(_channel(columns), "train", target, given=given)
        return
    assert resolve_target(_channel(columns), "train", target, given=given) == TargetSpec(*expected)


@pytest.mark.parametrize(
    "columns, target, hint",
    [
        (["y", "x1", "x2"], "Y", "y"),  # letter case, the likeliest slip
        (["x", "MEDV"], "medv", "MEDV"),
        (["ID", "Survived"], "survived", "Survived"),
        (["deposit", "age"], "Deposits", "deposit"),
    ],
)
def test_a_target_name_that_is_not_a_column_names_the_closest_letter_case_aside(columns, target, hint):
    """difflib compares letters as written: target=Y for a column y, or medv for MEDV, got no hint."""
    from byoc.training import resolve_target

    with pytest.raises(HyperparameterError) as info:
        resolve_target(_channel(columns), "train", target, given=True)
    assert f"is not a column of channel 'train' (train/a.csv) (did you mean '{hint}'?" in str(info.value)


def test_target_number_naming_another_column_is_refused_saying_how_to_pick_each():
    from byoc.training import resolve_target

    with pytest.raises(HyperparameterError) as info:
        resolve_target(_channel(["x", "0", "z"]), "train", 0)
    message = str(info.value)
    assert message.startswith(
        "hyperparameter 'target'=0 is ambiguous: channel 'train' (train/a.csv) has a column named '0' "
        "(column 1), and column index 0 is 'x'"
    )
    assert """for the column named '0', give the name as a JSON string: "target": "\\"0\\"" in""" in message
    assert "for column index 0, give its name: target=x" in message
    with pytest.raises(HyperparameterError) as info:  # the index's column is named with digits too
        resolve_target(_channel(["1", "0"]), "train", 0)
    assert str(info.value).endswith('give its name: "target": "\\"1\\"" (a JSON string)')


@pytest.mark.parametrize(
    "columns, target, given, expected",
    [
        (["x", "c", "label"], 0, False, "'label' (column 2)"),  # the label named, last: not column 0
        (["x", " Target ", "c"], 0, False, "' Target ' (column 1)"),  # spaces and case aside
        (["x", "c", "label"], 0, True, (0, "x")),  # target=0 set: the first column, as asked
        (["x", "c", "label"], "label", True, (2, "label")),
        (["label", "c", "target"], 0, False, (0, "label")),  # the first column is named so itself
        (["x", "c", "labels"], 0, False, (0, "x")),  # another name
        (["0", "1", "2"], 0, False, (0, "0")),
    ],
)
def test_the_default_target_is_refused_when_the_header_names_another_column_the_label(
    columns, target, given, expected
):
    """x,c,label with target unset trained x from a feature 'label' (pandas writes the label where
    it stands, often last): a regression on the real label, whose metrics look like any model's."""
    from byoc.training import TargetSpec, resolve_target

    if isinstance(expected, str):
        with pytest.raises(HyperparameterError) as info:
            resolve_target(_channel(columns), "train", target, given=given)
        assert str(info.value).startswith(
            "hyperparameter 'target' is not set, so the label is the first column ('x'), but channel "
            f"'train' (train/a.csv) has a column named {expected}, which would be a feature; set target="
        )
        return
    assert resolve_target(_channel(columns), "train", target, given=given) == TargetSpec(*expected)
    assert resolve_target(_channel(columns, header=False), "train", 0, given=False) == TargetSpec(0, None)


def test_a_label_size_of_one_is_the_first_column_whatever_the_header_names():
    """text/csv;label_size=1 puts the label in column 0: the ContentType says what target would."""
    from byoc.training import TargetSpec, resolve_target

    channel = ChannelData(
        frame=pd.DataFrame(columns=["x", "c", "label"]), has_header=True, label_size=1, files=("train/a.csv",)
    )
    assert resolve_target(channel, "train", 0, given=False) == TargetSpec(0, "x")


def test_target_digits_without_a_header_are_an_index():
    from byoc.training import TargetSpec, resolve_target

    assert resolve_target(_channel(["0", "1", "2"], header=False), "train", "1") == TargetSpec(1, None)
    with pytest.raises(HyperparameterError, match="'target'='²' names a column, but"):
        resolve_target(_channel(["0", "1"], header=False), "train", "²")  # was int('²'): exit 2


def test_max_features_takes_fraction_or_keyword():
    assert resolve({"algorithm": "random_forest", "max_features": "sqrt"})["max_features"] == "sqrt"
    assert resolve({"algorithm": "random_forest", "max_features": "0.3"})["max_features"] == 0.3
    assert "max_features" in error_of({"algorithm": "random_forest", "max_features": 1.5})


def test_gradient_boosting_early_stopping_auto_or_bool():
    assert resolve({"algorithm": "gradient_boosting"})["early_stopping"] == "auto"
    assert resolve({"algorithm": "gradient_boosting", "early_stopping": "false"})["early_stopping"] is False


# -- errors ----------------------------------------------------------------------------------------
def test_unknown_name_suggests_the_closest():
    message = error_of({"max_dept": 3})
    assert "'max_dept' is unknown" in message and "did you mean 'max_depth'" in message


def test_unknown_name_without_a_close_match_lists_what_is_accepted():
    message = error_of({"zzzz": 3})
    assert "'zzzz' is unknown" in message and "max_depth" in message and "--help" in message


def test_key_of_another_algorithm_names_that_algorithm():
    message = error_of({"n_neighbors": 3})
    assert "'n_neighbors'" in message and "knn" in message and "decision_tree" in message
    message = error_of({"algorithm": "knn", "n_estimators": 10})
    assert "random_forest" in message and "extra_trees" in message


@pytest.mark.parametrize(
    "raw, fragments",
    [
        ({"max_depth": "deep"}, ["'max_depth'", "'deep'", "an integer >= 1"]),
        ({"max_depth": 2.5}, ["'max_depth'", "2.5", "integer"]),
        ({"max_depth": 0}, ["'max_depth'", "got 0", ">= 1"]),
        ({"max_depth": True}, ["'max_depth'", "true"]),
        ({"random_state": -1}, ["'random_state'", "-1", "[0, 4294967295]"]),
        ({"n_jobs": 0}, ["'n_jobs'", "except 0"]),
        # joblib failed inside the fit ("Numeric literal 2147483647 is too large"): exit 2
        ({"n_jobs": 2147483647}, ["'n_jobs'", "got 2147483647", "[-1, 1024] except 0"]),
        ({"cv_folds": 1}, ["'cv_folds'", "[2, 20]"]),
        # a raw JSON number 1.5 (hyperparameters.json may hold raw values) is no column: not column 1
        ({"target": 1.5}, ["'target'", "1.5", "a column name or a 0-based column index"]),
        ({"criterion": "ginni"}, ["'criterion'", "'ginni'", "did you mean 'gini'"]),
        ({"problem_type": "classification"}, ["'problem_type'", "binary_classification"]),
        ({"algorithm": "xgboost"}, ["'algorithm'", "'xgboost'", "random_forest"]),
        ({"algorithm": "gradient_boosting", "learning_rate": 0}, ["'learning_rate'", "(0, 10]"]),
        ({"algorithm": "random_forest", "bootstrap": "maybe"}, ["'bootstrap'", "true or false"]),
        ({"algorithm": "linear", "C": "nan"}, ["'C'", "'nan'"]),
        ({"header": "sometimes"}, ["'header'", "'sometimes'"]),
        ({"algorithm": "ensemble", "ensemble_members": "random_forest,xgb"}, ["'ensemble_members'", "'xgb'"]),
    ],
)
def test_bad_values_name_the_hyperparameter_the_value_and_what_is_allowed(raw, fragments):
    message = error_of(raw)
    for fragment in fragments:
        assert fragment in message, (fragment, message)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=-10_000, max_value=10_000))
def test_int_range_is_enforced_exactly(value):
    decl = Hyperparameter("n", "int", 5, "help", minimum=1, maximum=100)
    if 1 <= value <= 100:
        assert decl.coerce(value) == value and decl.coerce(str(value)) == value
    else:
        with pytest.raises(HyperparameterError, match=f"got {value}"):
            decl.coerce(value)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=12))
def test_arbitrary_text_never_crashes_validation(text):
    for _, decl in all_declarations():
        try:
            decl.coerce(text)
        except HyperparameterError as exc:
            assert decl.name in str(exc)


# -- the classic sample's spellings -----------------------------------------------------------------
def test_max_leaf_nodes_works_for_decision_tree():
    assert resolve({"max_leaf_nodes": "5"})["max_leaf_nodes"] == 5


def test_use_custom_ensemble_selects_the_ensemble_with_default_members():
    params = resolve({"use-custom-ensemble": "true"})
    assert params["algorithm"] == "ensemble"
    assert params["ensemble_members"] == ("random_forest", "gradient_boosting", "linear")


def test_ensemble_switches_add_and_remove_members():
    params = resolve(
        {"use-custom-ensemble": "True", "ensemble-rf": "true", "ensemble-gb": "false", "ensemble-lr": "true"}
    )
    assert params["ensemble_members"] == ("random_forest", "linear")
    assert not {"ensemble_rf", "ensemble_gb", "ensemble_lr"} & set(params)
    params = resolve({"algorithm": "ensemble", "ensemble_members": "knn", "ensemble_rf": True})
    assert params["ensemble_members"] == ("knn", "random_forest")


def test_use_custom_ensemble_false_keeps_the_chosen_algorithm():
    assert resolve({"use_custom_ensemble": "false", "algorithm": "knn"})["algorithm"] == "knn"


def test_every_member_switched_off_is_an_error():
    message = error_of(
        {"use-custom-ensemble": True, "ensemble-rf": False, "ensemble-gb": False, "ensemble-lr": False}
    )
    assert "no members" in message and "ensemble-rf" in message


def test_use_custom_ensemble_contradicting_algorithm_is_an_error():
    message = error_of({"use_custom_ensemble": True, "algorithm": "knn"})
    assert "use_custom_ensemble" in message and "knn" in message


@pytest.mark.parametrize("spelling", ["linear, knn", '["linear", "knn"]', ["linear", "knn"]])
def test_ensemble_members_as_list_or_comma_text(spelling):
    params = resolve({"algorithm": "ensemble", "ensemble_members": spelling})
    assert params["ensemble_members"] == ("linear", "knn")


def test_ensemble_accepts_its_members_hyperparameters_only():
    params = resolve({"algorithm": "ensemble", "n_estimators": "20", "C": 0.1})
    assert params["n_estimators"] == 20 and params["C"] == 0.1
    message = error_of({"algorithm": "ensemble", "n_neighbors": 3})
    assert "knn" in message and "ensemble_members" in message
    assert (
        resolve({"algorithm": "ensemble", "ensemble_members": "knn,linear", "n_neighbors": 3})["n_neighbors"]
        == 3
    )


def test_duplicate_ensemble_member_is_rejected():
    assert "twice" in error_of({"algorithm": "ensemble", "ensemble_members": "knn,knn"})


# -- documentation ------------------------------------------------------------------------------
def test_help_text_lists_every_hyperparameter_with_default_and_range():
    text = help_text()
    starts = {line.split()[0] for line in text.splitlines() if line.startswith("  ") and line[2] != " "}
    for _owner, decl in all_declarations():
        assert decl.name in starts
    flat = " ".join(text.split())
    assert (
        "max_leaf_nodes Most leaves per tree (best-first growth); None: unlimited. Above the "
        "training rows it cannot bind (a leaf holds a row): the trees are grown as with the rows. "
        "Accepts an integer >= 2 or None; default None." in flat
    )
    for name in algorithms.names():
        assert f"\n{name}:" in text


def test_markdown_table_has_one_row_per_declaration():
    rows = [line for line in markdown_table().splitlines() if line.startswith("| ")][1:]
    assert len(rows) == len(all_declarations())
    assert all(row.count(" | ") == 4 for row in rows)
    assert any(row.startswith("| `knn` | `n_neighbors`") for row in rows)


def test_classic_switches_with_use_custom_ensemble_false_are_ignored_with_a_warning(caplog):
    raw = {
        "use-custom-ensemble": "false",
        "ensemble-rf": "true",
        "ensemble-gb": "true",
        "ensemble-lr": "false",
        "max_leaf_nodes": "5",
    }
    with caplog.at_level("WARNING", logger="byoc.hyperparameters"):
        params = resolve(raw)
    assert params["algorithm"] == "decision_tree" and params["max_leaf_nodes"] == 5
    assert not {"ensemble_rf", "ensemble_gb", "ensemble_lr"} & set(params)
    assert "'ensemble-rf' is ignored: use_custom_ensemble is false" in caplog.text
    assert "'ensemble_rf': got 'maybe'" in error_of({**raw, "ensemble-rf": "maybe"})


def test_ensemble_switch_without_use_custom_ensemble_names_the_ensemble():
    assert "ensemble" in error_of({"ensemble_rf": True})


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"algorithm": "random_forest", "max_samples": 0.5, "bootstrap": False}, "needs bootstrap=true"),
        ({"algorithm": "extra_trees", "max_samples": 0.5}, "needs bootstrap=true"),  # its default: off
        ({"algorithm": "ensemble", "ensemble_members": "extra_trees", "max_samples": 0.5}, "bootstrap"),
        ({"criterion": "gini", "problem_type": "regression"}, "does not apply to regression"),
        ({"algorithm": "linear", "class_weight": "balanced", "problem_type": "regression"}, "classification"),
    ],
)
def test_cross_checks_fail_at_resolution_before_any_data_is_read(raw, fragment):
    assert fragment in error_of(raw)


def test_ensemble_members_get_their_own_defaults():
    params = resolve({"algorithm": "ensemble", "ensemble_members": "gradient_boosting,random_forest"})
    assert algorithms.member_params("gradient_boosting", params)["min_samples_leaf"] == 20
    assert algorithms.member_params("random_forest", params)["min_samples_leaf"] == 1
    given = resolve({"algorithm": "ensemble", "min_samples_leaf": 4, "random_state": 7})
    assert algorithms.member_params("random_forest", given)["min_samples_leaf"] == 4
    assert algorithms.member_params("random_forest", given)["random_state"] == 7


@pytest.mark.parametrize(
    ("given", "ours"),
    [
        ({"algorithm": "auto", "time_budget": "60"}, "max_runtime_seconds"),
        ({"algorithm": "auto", "time-limit": "60"}, "max_runtime_seconds"),
        ({"algorithm": "auto", "MaxAutoMLJobRuntimeInSeconds": "60"}, "max_runtime_seconds"),
        ({"algorithm": "auto", "metric": "AUC"}, "objective_metric"),
        ({"task": "regression"}, "problem_type"),
        ({"TargetAttributeName": "y"}, "target"),
    ],
)
def test_other_automl_tools_names_point_to_byocs(given, ours):
    """A name from FLAML, AutoGluon or Autopilot is nothing like byoc's, so difflib cannot hint it."""
    with pytest.raises(HyperparameterError, match=rf"byoc's name for .* is '{ours}'"):
        resolve(given)


@pytest.mark.parametrize(
    ("objective", "algorithm", "problem_type", "channels", "fragment"),
    [
        (
            "validation:auc",
            "random_forest",
            "binary_classification",
            ("train",),
            "needs a 'validation' channel",
        ),
        ("test:auc", "auto", "binary_classification", ("train", "validation"), "needs a 'test' channel"),
        ("validation:f1", "knn", "multiclass_classification", ("train", "validation"), "validation:f1_macro"),
        (
            "train:r2",
            "linear",
            "binary_classification",
            ("train",),
            "never logged for a binary_classification",
        ),
        # what the job logs: nothing to refuse
        ("validation:auc", "auto", "binary_classification", ("train",), None),
        ("train:rmse", "svm", "regression", ("train",), None),
        ("validation:f1_macro", "ensemble", "multiclass_classification", ("train", "validation"), None),
        # not one of byoc's names: a metric definition of the user's own
        ("val-acc", "decision_tree", "binary_classification", ("train",), None),
        ("validation:acc", "decision_tree", "binary_classification", ("train",), None),
    ],
)
def test_a_tuning_objective_that_would_never_be_logged_is_refused(
    objective, algorithm, problem_type, channels, fragment
):
    from byoc.errors import ConfigError
    from byoc.training import check_tuning_objective

    if fragment is None:
        check_tuning_objective(objective, algorithm, problem_type, channels)
        return
    with pytest.raises(ConfigError, match=re.escape(fragment)) as raised:
        check_tuning_objective(objective, algorithm, problem_type, channels)
    assert raised.value.code == "bad_tuning_objective"


def test_an_ensemble_member_hyperparameter_is_checked_by_the_members_that_take_it():
    """class_weight=balanced_subsample suits the forests, not gradient_boosting or linear: it was
    checked against decision_tree's declaration whatever the members were."""
    forests = {"algorithm": "ensemble", "ensemble_members": "random_forest,extra_trees"}
    params = resolve({**forests, "class_weight": "balanced_subsample"})
    assert algorithms.member_params("extra_trees", params)["class_weight"] == "balanced_subsample"
    message = error_of({"algorithm": "ensemble", "class_weight": "balanced_subsample"})
    assert message.startswith(
        "hyperparameter 'class_weight': ensemble member gradient_boosting does not take "
        "'balanced_subsample' (it expects balanced or None), while random_forest does;"
    )
    assert "drop gradient_boosting, linear from ensemble_members" in message
    assert "expected an integer in [1, 100000]" in error_of({"algorithm": "ensemble", "max_iter": 0})


@pytest.mark.parametrize(
    ("given", "tuning", "problem_type", "searched"),
    [
        (None, "validation:accuracy", "binary_classification", "Accuracy"),
        (None, "validation:f1_macro", "multiclass_classification", "F1macro"),
        (None, "validation:rmse", "regression", "RMSE"),
        (None, "validation:log_loss", "binary_classification", None),  # auto cannot search for it
        (None, "val-acc", "binary_classification", None),  # a user's own metric definition
        ("AUC", "validation:accuracy", "binary_classification", "AUC"),  # given: kept
    ],
)
def test_auto_searches_for_the_tuning_objective_unless_told_otherwise(given, tuning, problem_type, searched):
    """Tuned on validation:accuracy, auto searched for its default (F1) and picked its model by it."""
    from byoc.training import searched_objective

    params = resolve({"algorithm": "auto", **({"objective_metric": given} if given else {})})
    assert searched_objective(params, tuning, problem_type)["objective_metric"] == searched
    assert searched_objective(resolve({}), tuning, problem_type) == resolve({})  # other algorithms


@pytest.mark.parametrize("value", ["57.38291", 57.38291, "5.5", "1e-3"])
def test_a_fraction_for_an_integer_says_it_is_not_rounded_and_how_to_tune_it(value):
    """Automatic Model Tuning's ContinuousParameter sends fractions; they are refused, never rounded."""
    message = error_of({"algorithm": "random_forest", "n_estimators": decode_hyperparameter_value(value)})
    assert message.startswith("hyperparameter 'n_estimators': got ")
    assert "expected an integer in [1, 10000]" in message
    assert "must be an IntegerParameter, not a ContinuousParameter" in message


@pytest.mark.parametrize(
    "raw, allowed",
    [
        ({"random_state": "4294967296"}, "an integer in [0, 4294967295]"),
        ({"algorithm": "random_forest", "n_estimators": "3000000000"}, "an integer in [1, 10000]"),
    ],
)
def test_an_integer_beyond_a_declared_maximum_is_refused_by_that_maximum(raw, allowed):
    """The int32 guard is for integers without a declared maximum: it told random_state=4294967296
    that 2147483647 was the largest integer taken, while 4294967295 is, and n_estimators=3e9 the
    same of a hyperparameter whose maximum is 10000."""
    message = error_of({k: decode_hyperparameter_value(v) for k, v in raw.items()})
    assert f"expected {allowed}" in message and "2147483647" not in message, message
    assert resolve({"random_state": "4294967295"})["random_state"] == 4294967295


@pytest.mark.parametrize("value", ["1e400", "NaN", "-Infinity"])
def test_a_number_that_is_not_finite_for_an_integer_is_not_called_a_fraction(value):
    """json.loads reads 1e400 as infinity and NaN as NaN: neither is a fraction to round, nor
    a ContinuousParameter's doing."""
    message = error_of({"max_depth": decode_hyperparameter_value(value)})
    assert message.startswith("hyperparameter 'max_depth': got ") and "expected an integer >= 1" in message
    assert "fraction" not in message and "ContinuousParameter" not in message, message


def test_a_tuning_job_may_give_a_job_the_hyperparameters_of_other_algorithms(caplog):
    """AMT sends every range to every job: tuning algorithm beside n_estimators gives
    gradient_boosting jobs an n_estimators, which failed each of them."""
    raw = {"algorithm": "gradient_boosting", "n_estimators": 50, "kernel": "rbf", "max_depth": 3}
    assert "used by random_forest and extra_trees" in error_of(raw)
    with caplog.at_level("WARNING", logger="byoc.hyperparameters"):
        params = resolve(raw, tuning=True)
    assert params["max_depth"] == 3 and "n_estimators" not in params and "kernel" not in params
    assert (
        "hyperparameter 'n_estimators' is ignored: it is used by random_forest and extra_trees" in caplog.text
    )
    ensemble = resolve({"algorithm": "ensemble", "n_neighbors": 3}, tuning=True)
    assert "n_neighbors" not in ensemble
    # still checked: a bad value, or a name nobody uses, fails the job as it does outside tuning
    with pytest.raises(HyperparameterError, match="'n_estimators': got 0"):
        resolve({"algorithm": "gradient_boosting", "n_estimators": 0}, tuning=True)
    with pytest.raises(HyperparameterError, match="'max_dept' is unknown"):
        resolve({"algorithm": "gradient_boosting", "max_dept": 3}, tuning=True)


def test_an_unused_ensemble_hyperparameter_names_its_owners_whatever_its_spelling():
    message = error_of({"algorithm": "ensemble", "N-Neighbors": 3})
    assert message.startswith("hyperparameter 'N-Neighbors' is used by knn, none of which")


@pytest.mark.parametrize(
    ("raw", "hint"),
    [
        ({"problem_type": "binary"}, "did you mean 'binary_classification'?"),
        ({"problem_type": "multiclass"}, "did you mean 'multiclass_classification'?"),
        # AMT's spelling of a metric for Autopilot's objective name: it pointed to BalancedAccuracy
        (
            {"algorithm": "auto", "objective_metric": "validation:accuracy"},
            "did you mean 'Accuracy' or 'BalancedAccuracy'?",
        ),
        ({"algorithm": "auto", "objective_metric": "f1_macro"}, "did you mean 'F1macro'?"),
    ],
)
def test_hints_match_beginnings_letter_case_aside_and_the_metric_of_an_amt_name(raw, hint):
    assert error_of(raw).endswith(hint)


@pytest.mark.parametrize(
    ("raw", "fix"),
    [
        ({"random_forest": "true"}, '"algorithm": "random_forest"'),  # was: did you mean 'random_state'?
        ({"Random-Forest": "1"}, '"algorithm": "random_forest"'),
        ({"gini": "true"}, '"criterion": "gini"'),
        ({"F1": "1"}, '"objective_metric": "F1"'),
    ],
)
def test_a_value_written_as_a_name_says_which_hyperparameter_takes_it(raw, fix):
    message = error_of(raw)
    assert f"is a value of '{fix.split(':')[0].strip(chr(34))}'; write it as {fix}" in message


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        (("random_forest", "linear"), ("random_forest", "linear")),
        (("knn",), ("knn",)),
    ],
)
def test_ensemble_members_as_the_generic_estimator_spells_a_tuple(members, expected):
    """Estimator(hyperparameters={"ensemble_members": ("random_forest", "linear")}) writes str():
    "('random_forest', 'linear')", refused as "'('random_forest'' is not one of ..."."""
    raw = {"algorithm": "ensemble", "ensemble_members": decode_hyperparameter_value(str(members))}
    assert resolve(raw)["ensemble_members"] == expected
    assert "got '()'" in error_of({"algorithm": "ensemble", "ensemble_members": "()"})
