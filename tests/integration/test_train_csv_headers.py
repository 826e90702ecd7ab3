"""CSV channels whose header rows or line endings are not the plain case, through the real
`container/train` against ML roots laid out as SageMaker lays them out.  Each case once trained
a wrong model with exit 0 (a header read as a data row: a class 'deposit', numeric features
turned categorical) or crashed: the data is now read right, or refused naming file and line."""

from __future__ import annotations

import json
import re

import pytest

from support import (
    csv_bytes,
    make_ml_root,
    mixed_frame,
    model_dir_entries,
    pipe_feeders,
    read_failure,
    run_train,
)

FRAME = mixed_frame(60)
HEADER = csv_bytes(FRAME, target="deposit", header=True)  # deposit,age,balance,job,contact
HEADERLESS = csv_bytes(FRAME, target="deposit")
KINDS = ["numeric", "numeric", "categorical", "categorical"]


def trained_right(root, result, *, rows: int, names: list[str]) -> str:
    """Exit 0, and the model saw the data's two classes and feature kinds (no header as data)."""
    assert result.returncode == 0, (read_failure(root) or "") + result.stdout[-2000:]
    meta = json.loads((root / "model" / "model.json").read_text())
    assert meta["classes"] == ["no", "yes"]
    assert [(f["name"], f["kind"]) for f in meta["features"]] == list(zip(names, KINDS, strict=True))
    assert f"channel train: {rows} rows x 5 columns" in result.stdout
    return result.stdout


def test_header_only_first_file_is_the_channels_header(tmp_path):
    only_header = HEADER.splitlines(keepends=True)[0]
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": only_header, "b.csv": HEADER}})
    trained_right(root, run_train(root), rows=60, names=["age", "balance", "job", "contact"])


def test_header_repeated_inside_a_file_is_dropped_and_logged(tmp_path):
    root = make_ml_root(tmp_path, channels={"train": {"all.csv": HEADER + HEADER}})  # cat a.csv b.csv
    log = trained_right(root, run_train(root), rows=120, names=["age", "balance", "job", "contact"])
    assert "train/all.csv: dropped 1 line(s) repeating the header row" in log


@pytest.mark.parametrize("header", [False, True], ids=["headerless", "header"])
def test_cr_only_line_endings_are_read(tmp_path, header):
    """Excel's 'CSV (Macintosh)' ends lines with CR alone; it was an internal error (exit 2)."""
    data = (HEADER if header else HEADERLESS).replace(b"\n", b"\r")
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": data}, "validation": {"v.csv": data}})
    names = ["age", "balance", "job", "contact"] if header else ["f0", "f1", "f2", "f3"]
    trained_right(root, run_train(root), rows=60, names=names)


@pytest.mark.parametrize(
    "hyperparameters", [{}, {"target": "deposit", "header": True}], ids=["detected", "forced"]
)
def test_pipe_mode_header_with_columns_in_another_order_is_refused(tmp_path, hyperparameters):
    """File mode refuses such files ('columns differ'); Pipe mode merged them by position."""
    reordered = FRAME[["deposit", "balance", "age", "job", "contact"]].to_csv(index=False).encode()
    root = make_ml_root(tmp_path, channels={"train": {}}, input_mode="Pipe", hyperparameters=hyperparameters)
    with pipe_feeders(root, {"train": {"a.csv": HEADER, "b.csv": reordered}}):
        result = run_train(root)
    first_line = (read_failure(root) or "").splitlines()[0]
    assert result.returncode == 1, first_line
    assert re.match(
        r"^\S+/train_0, line 62: columns differ from the header on line 1 \(orders them "
        r"\['deposit', 'balance', 'age', 'job', 'contact'\]\)",
        first_line,
    ), first_line
    assert model_dir_entries(root) == []


# -- line 1 that could be a header or data: refused, naming file, line 1 and `header` ----------

LABELLED = "".join(f"{('yes', 'no')[i % 2]},{i},{i * 1.5}\n" for i in range(40))  # label, int, float


_YEAR_ROWS = [(100 + i, 150 + i % 7, 120 + i % 5) for i in range(60)]
# A header naming columns by numbers, over integers: the detection cannot tell it from data.
YEARS = "label,2019,2020,2021\n" + "".join(
    f"{'up' if c > a - 10 else 'down'},{a},{b},{c}\n" for a, b, c in _YEAR_ROWS
)


def refused_as_ambiguous(root, result, line_one: str) -> str:
    """Exit 1, no model, and output/failure leads with the file, line 1, the line and the fix."""
    failure = read_failure(root) or ""
    first_line = failure.splitlines()[0] if failure else ""
    assert result.returncode == 1, (first_line or result.stdout[-2000:]) + result.stderr[-2000:]
    assert first_line.startswith(
        f"train/a.csv, line 1: cannot tell whether {line_one!r} is a header row or data"
    ), first_line
    assert "Set the hyperparameter 'header' to true if line 1 names the columns, or to false" in first_line
    assert model_dir_entries(root) == []
    return first_line


@pytest.mark.parametrize("cell", ["?", "4o"], ids=["missing_mark", "typo"])
def test_first_data_row_with_text_in_a_numeric_column_is_refused_not_dropped(tmp_path, cell):
    """UCI data marks a missing value '?'; in line 1 it made the row a header: the row was
    silently dropped, the features named '?' and '3.5', the target 'yes' (exit 0)."""
    data = f"yes,{cell},3.5\n" + LABELLED
    root = make_ml_root(tmp_path / "detected", channels={"train": {"a.csv": data}})
    first_line = refused_as_ambiguous(root, run_train(root), f"yes,{cell},3.5")
    assert f"column 1 holds numbers below but {cell!r} here" in first_line
    assert f"if {cell!r} marks a missing value, leave such cells empty or write NA" in first_line

    # header=false, as the message says: every row is trained on, nothing is lost
    forced = make_ml_root(
        tmp_path / "forced", channels={"train": {"a.csv": data}}, hyperparameters={"header": False}
    )
    result = run_train(forced)
    assert result.returncode == 0, read_failure(forced)
    meta = json.loads((forced / "model" / "model.json").read_text())
    assert meta["classes"] == ["no", "yes"] and meta["target"]["index"] == 0
    assert "channel train: 41 rows x 3 columns" in result.stdout


@pytest.mark.parametrize(
    "hyperparameters, content_types",
    [({"header": False}, {}), ({}, {"train": "text/csv;header=absent"})],
    ids=["hyperparameter", "content_type"],
)
def test_a_header_row_forced_to_be_data_is_refused(tmp_path, hyperparameters, content_types):
    """header=false (or header=absent) over a file that starts with a header row trained it as a
    data row, exit 0: a class 'deposit' and the numeric features age and balance categorical."""
    root = make_ml_root(
        tmp_path,
        channels={"train": {"a.csv": HEADER}},
        hyperparameters=hyperparameters,
        content_types=content_types,
    )
    result = run_train(root)
    first_line = (read_failure(root) or "").splitlines()[0]
    assert result.returncode == 1, first_line or result.stdout[-2000:]
    assert first_line == (
        "train/a.csv, line 1: 'deposit,age,balance,job,contact' is to be read as data (the hyperparameter "
        "'header' is false, or the ContentType says header=absent), but it is a header row: columns 1, 2 "
        "hold numbers below but 'age', 'balance' here, and as data those names would make their columns "
        "categorical; remove header=false (the header row is detected) or set it to true"
    )
    assert model_dir_entries(root) == []


def test_header_naming_columns_by_numbers_is_refused_not_trained_as_data(tmp_path):
    """label,2019,2020,2021 over integers was read as a data row: a class 'label' (exit 0)."""
    data = YEARS
    root = make_ml_root(tmp_path / "detected", channels={"train": {"a.csv": data}})
    first_line = refused_as_ambiguous(root, run_train(root), "label,2019,2020,2021")
    assert "column 0 holds only 2 distinct values in 60 rows below, not 'label'" in first_line
    assert "columns 1, 2, 3 hold numbers as below ('2019', '2020', '2021')" in first_line

    forced = make_ml_root(
        tmp_path / "forced", channels={"train": {"a.csv": data}}, hyperparameters={"header": True}
    )
    result = run_train(forced)
    assert result.returncode == 0, read_failure(forced)
    meta = json.loads((forced / "model" / "model.json").read_text())
    assert meta["classes"] == ["down", "up"]
    assert [f["name"] for f in meta["features"]] == ["2019", "2020", "2021"]

    named = make_ml_root(
        tmp_path / "named", channels={"train": {"a.csv": data}}, hyperparameters={"target": "label"}
    )
    result = run_train(named)  # a name resolves only in a header: no header=true needed
    assert result.returncode == 0, read_failure(named)
    meta = json.loads((named / "model" / "model.json").read_text())
    assert meta["classes"] == ["down", "up"] and meta["target"] == {"name": "label", "index": 0}
    assert [f["name"] for f in meta["features"]] == ["2019", "2020", "2021"]
    assert "the target hyperparameter names its column 0, 'label'" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "content_type, data, rows, names",
    [
        ("text/csv; header=present", YEARS, 60, ["2019", "2020", "2021"]),
        ("text/csv;header=absent", "yes,?,3.5\n" + LABELLED, 41, ["f0", "f1"]),
    ],
    ids=["present", "absent"],
)
def test_content_type_header_parameter_is_the_header_row(tmp_path, content_type, data, rows, names):
    """RFC 4180's text/csv;header=present|absent was ignored: the job still refused line 1 as
    ambiguous, asking for the header hyperparameter the ContentType already gave."""
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": data}}, content_types={"train": content_type})
    result = run_train(root)
    assert result.returncode == 0, read_failure(root)
    meta = json.loads((root / "model" / "model.json").read_text())
    assert [f["name"] for f in meta["features"]] == names
    assert f"channel train: {rows} rows x {len(names) + 1} columns" in result.stdout


@pytest.mark.parametrize(
    "content_type, hyperparameters, validation_type, expected",
    [
        (
            "text/csv;header=yes",
            {},
            None,
            "ContentType of channel 'train' is 'text/csv;header=yes', but text/csv's header parameter "
            "is 'present' (the files start with a header row) or 'absent'",
        ),
        (
            "text/csv;header=present",
            {"header": False},
            None,
            "channel 'train': ContentType 'text/csv;header=present' declares header=present, but the "
            "channel is read without a header row, as the header hyperparameter (false) says",
        ),
        (
            "text/csv",
            {},
            "text/csv;header=absent",
            "channel 'validation': ContentType 'text/csv;header=absent' declares header=absent, but "
            "the channel is read with a header row, as the train channel is",
        ),
    ],
    ids=["bad_value", "contradicts_hyperparameter", "contradicts_train"],
)
def test_content_type_header_parameter_that_cannot_be_followed_is_refused(
    tmp_path, content_type, hyperparameters, validation_type, expected
):
    types = {"train": content_type, **({"validation": validation_type} if validation_type else {})}
    root = make_ml_root(
        tmp_path,
        channels={"train": {"a.csv": HEADER}, "validation": {"v.csv": HEADER}},
        content_types=types,
        hyperparameters={"target": "deposit", **hyperparameters},
    )
    result = run_train(root)
    first_line = (read_failure(root) or "").splitlines()[0]
    assert result.returncode == 1, first_line or result.stdout[-2000:]
    assert first_line.startswith(expected), first_line
    assert model_dir_entries(root) == []


def test_ambiguous_first_line_of_a_later_file_is_refused_naming_it(tmp_path):
    """Pooled evidence: b.csv's line 1 is judged against every file's rows, and named."""
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": LABELLED, "b.csv": "no,?,7.5\n" + LABELLED}})
    result = run_train(root)
    first_line = (read_failure(root) or "").splitlines()[0]
    assert result.returncode == 1, first_line
    assert first_line.startswith(
        "train/b.csv, line 1: cannot tell whether 'no,?,7.5' is a header row or data (train/a.csv "
        "starts with data ('yes,0,0.0'))"
    ), first_line
    assert "'header' to true" in first_line and model_dir_entries(root) == []


def test_header_decision_is_logged_with_its_reason(tmp_path):
    root = make_ml_root(tmp_path / "header", channels={"train": {"a.csv": HEADER}})
    log = trained_right(root, run_train(root), rows=60, names=["age", "balance", "job", "contact"])
    assert (
        "train/a.csv: line 1 read as a header row (columns 1, 2 hold numbers below but 'age', 'balance' here"
        in log
    )
    root = make_ml_root(tmp_path / "data", channels={"train": {"a.csv": HEADERLESS, "b.csv": HEADERLESS}})
    log = trained_right(root, run_train(root), rows=120, names=["f0", "f1", "f2", "f3"])
    assert re.search(r"train/a\.csv: line 1 read as data \(columns 1, 2 hold numbers as below \(.*", log)
    assert "the channel's 1 other file(s) start alike" in log


@pytest.mark.parametrize("channel", ["validation", "test"])
@pytest.mark.parametrize("target", ["deposit", "0"], ids=["by-name", "by-index"])
def test_an_evaluation_channel_without_the_train_channels_header_row_is_named_as_such(
    tmp_path, channel, target
):
    """Validation and test files are read with a header row when train's have one: a file
    without it had its first data row taken for the header, and the failure said only "channel
    'validation' has no column 'deposit' (the target)", about a file whose column 0 holds it."""
    root = make_ml_root(
        tmp_path,
        channels={"train": {"train.csv": HEADER}, channel: {"part.csv": HEADERLESS}},
        hyperparameters={"target": target},
    )
    result = run_train(root)
    assert result.returncode == 1, result.stdout[-2000:]
    failure = read_failure(root)
    first_line = failure.splitlines()[0]
    assert first_line.startswith(
        f"{channel}/part.csv: none of the train channel's columns (deposit, age, "
    ), failure
    assert "is in the header row, which reads yes, 70.0, " in first_line
    assert "that looks like data" in first_line and "add it to every file of channel" in first_line
    assert model_dir_entries(root) == []


@pytest.mark.parametrize("channel", ["validation", "test"])
def test_an_evaluation_channel_without_the_header_row_whose_first_row_repeats_a_value_is_named_as_such(
    tmp_path, channel
):
    """A headerless validation file whose first row repeats a cell (``yes,70.0,70.0,...``: flags,
    counts, zeros do) had that row taken for the header and was refused as "column name '70.0'
    appears 2 times; give every column a distinct name", about a file with no header row."""
    repeated = FRAME.copy()
    repeated.loc[0, "balance"] = repeated.loc[0, "age"]
    root = make_ml_root(
        tmp_path,
        channels={
            "train": {"train.csv": HEADER},
            channel: {"part.csv": csv_bytes(repeated, target="deposit")},
        },
    )
    result = run_train(root)
    assert result.returncode == 1, result.stdout[-2000:]
    first_line = read_failure(root).splitlines()[0]
    assert first_line.startswith(
        f"{channel}/part.csv: none of the train channel's columns (deposit, age, "
    ), first_line
    assert "appears 2 times" not in first_line
    assert first_line.endswith(f"add it to every file of channel '{channel}'"), first_line
    assert model_dir_entries(root) == []


@pytest.mark.parametrize(
    "given",
    [dict(hyperparameters={"header": True}), dict(content_types={"train": "text/csv;header=present"})],
    ids=["hyperparameter", "content-type"],
)
@pytest.mark.parametrize("repeats", [True, False], ids=["first-row-repeats", "first-row-distinct"])
def test_a_train_file_without_the_given_header_row_is_named_as_lacking_it(tmp_path, given, repeats):
    """With the header row given (not detected), a file without it had its first data row taken
    for one: refused as "column name '70.0' appears 2 times" or as columns that differ ("lacks
    ['deposit', ...]; has extra ['yes', '70.0', ...]"), never as a file lacking the header row."""
    frame = FRAME.copy()
    if repeats:
        frame.loc[0, "balance"] = frame.loc[0, "age"]
    root = make_ml_root(
        tmp_path, channels={"train": {"a.csv": HEADER, "b.csv": csv_bytes(frame, target="deposit")}}, **given
    )
    result = run_train(root)
    assert result.returncode == 1, result.stdout[-2000:]
    first_line = read_failure(root).splitlines()[0]
    assert first_line.startswith("train/b.csv: its first line 'yes,70.0,"), first_line
    assert (
        "names none of the columns of the header row 'deposit,age,balance,job,contact' that train/a.csv "
        "starts with" in first_line
    ), first_line
    assert first_line.endswith("add it to the files that lack it"), first_line
    assert model_dir_entries(root) == []


def test_an_evaluation_channel_naming_a_column_twice_is_still_refused_as_such(tmp_path):
    """The header row names train's columns, one of them twice: a header row, not data."""
    root = make_ml_root(
        tmp_path,
        channels={
            "train": {"train.csv": HEADER},
            "validation": {"part.csv": HEADER.replace(b"deposit,age,balance", b"deposit,age,age", 1)},
        },
    )
    result = run_train(root)
    assert result.returncode == 1, result.stdout[-2000:]
    assert read_failure(root).splitlines()[0] == (
        "validation/part.csv: column name 'age' appears 2 times; give every column a distinct name"
    )
