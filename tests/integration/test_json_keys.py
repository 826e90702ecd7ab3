"""JSON keys a record leaves out: training and serving read the same record the same way.

A JSON Lines channel whose key ``agee`` (a misspelling of ``age``) holds a value on one record of
60 is trained by the real ``container/train``, with a validation channel none of whose records
names it; the real server then gets the training records as they were written.  Training read
each record without ``agee`` as one whose ``agee`` is missing, so the server must answer it as
it answers the record with ``"agee": null``, while a key training never left out stays required
and an unknown key (a misspelling in a request) stays refused.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import serving_models

import support

pytestmark = pytest.mark.slow  # trains and serves through the real processes

RARE_RECORD = 17  # the one training record naming 'agee', counted from 1


def _records(n: int, *, rare: bool) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        record: dict[str, Any] = {
            "label": "yes" if (i * 7) % 5 < 2 else "no",
            "age": 20 + (i * 13) % 50,
            "balance": (i * 389) % 1000,
            "job": ["admin", "services", "technician"][i % 3],
        }
        if rare and i + 1 == RARE_RECORD:
            record["agee"] = 5
        out.append(record)
    return out


TRAIN = _records(60, rare=True)
VALIDATION = _records(20, rare=False)


def _lines(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def _features(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "label"}


def _train(
    base: Path, *, validation: bool | str | dict[str, str]
) -> tuple[Path, subprocess.CompletedProcess]:
    """Trained on TRAIN, with VALIDATION (``validation=True``), those lines or those files as the
    validation channel."""
    channels: dict[str, dict[str, str]] = {"train": {"train.jsonl": _lines(TRAIN)}}
    if isinstance(validation, dict):
        channels["validation"] = validation
    elif validation:
        channels["validation"] = {"v.jsonl": _lines(VALIDATION) if validation is True else validation}
    root = support.make_ml_root(
        base / "ml",
        channels=channels,
        hyperparameters={"algorithm": "random_forest", "target": "label", "n_estimators": 20, "n_jobs": 1},
        content_types=dict.fromkeys(channels, "application/jsonlines"),
    )
    return root, support.run_train(root)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """Trained with a validation channel that never names 'agee'."""
    return _train(tmp_path_factory.mktemp("json-keys"), validation=True)


@pytest.fixture(scope="module")
def train_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained on the train channel alone, so that the serving and evaluate checks
    stand apart from the validation channel's."""
    root, result = _train(tmp_path_factory.mktemp("json-keys-served"), validation=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return root


@pytest.fixture(scope="module")
def server(train_only):
    server = serving_models.start(train_only)
    yield server
    server.stop()


def test_a_validation_channel_without_the_key_trains_as_its_records_read(trained):
    root, result = trained
    assert result.returncode == 0, support.read_failure(root)
    assert "validation:accuracy=" in result.stdout


VALIDATION_REFUSED = [
    (
        {"label": "no", "age": 40, "job": "admin"},
        "validation/v.jsonl, line 4 lacks column 'balance'; send every feature (null for a missing value; "
        "a record may leave out only 'agee', missing in training's records)",
    ),
    (
        {"label": "no", "agey": 5, "age": 40, "balance": 1, "job": "admin"},
        "validation/v.jsonl, line 4 has unknown column 'agey'",
    ),
]


@pytest.mark.parametrize(("line", "says"), VALIDATION_REFUSED, ids=["required-key", "misspelled-key"])
def test_a_validation_record_the_endpoint_refuses_fails_training_naming_the_line(tmp_path, line, says):
    """A validation record without a key training never left out was scored as a row of missing
    values (exit 0, validation metrics the endpoint's 400 contradicts), where evaluate refused the
    same file: refused by the same check, named by file and line (a blank line counts as a
    line), the failure file leading with it, and no model written."""
    lines = _lines(VALIDATION[:2]) + "\n" + json.dumps(line) + "\n" + _lines(VALIDATION[2:])
    root, result = _train(tmp_path, validation=lines)
    assert result.returncode != 0, result.stdout + result.stderr
    failure = support.read_failure(root)
    assert failure is not None and failure.splitlines()[0].startswith(says), failure
    assert support.model_dir_entries(root) == []
    assert "validation:accuracy=" not in result.stdout


def test_a_partition_directory_gives_a_key_only_to_files_without_it(tmp_path):
    """A validation file under ``job=admin/`` whose records hold ``job`` keeps its own values, so
    its record without ``job`` is missing it, as the endpoint answers 400: it was taken as given
    the directory's ``job`` and scored with ``job`` missing, exit 0. Records that never name
    ``job`` are given it by their directories, and train."""
    lacking = {k: v for k, v in VALIDATION[0].items() if k != "job"}
    lines = _lines(VALIDATION[:3]) + json.dumps(lacking) + "\n" + _lines(VALIDATION[3:])
    root, result = _train(tmp_path / "held", validation={"job=admin/v.jsonl": lines})
    assert result.returncode != 0, result.stdout + result.stderr
    failure = support.read_failure(root)
    says = "validation/job=admin/v.jsonl, line 4 lacks column 'job'"
    assert failure is not None and failure.splitlines()[0].startswith(says), failure

    by_directory = {  # the same records, their job given by the directory alone
        f"job={job}/v.jsonl": _lines(
            [{k: v for k, v in r.items() if k != "job"} for r in VALIDATION if r["job"] == job]
        )
        for job in ("admin", "services", "technician")
    }
    root, result = _train(tmp_path / "given", validation=by_directory)
    assert result.returncode == 0, support.read_failure(root)
    assert "validation:accuracy=" in result.stdout


def test_a_key_on_a_handful_of_records_is_a_warning_naming_it_its_record_and_the_fix(trained):
    _, result = trained
    log = (result.stdout + result.stderr).splitlines()
    warnings = [line for line in log if "WARNING" in line and "'agee'" in line]
    assert len(warnings) == 1, log
    assert f"only 1 of 60 JSON Lines records (train/train.jsonl, row {RARE_RECORD})" in warnings[0]
    assert "did you mean 'age'?" in warnings[0] and "correct the key" in warnings[0]
    assert not any("'balance'" in line for line in log if "WARNING" in line)


def test_model_json_marks_only_the_keys_training_left_out(trained):
    root, _ = trained
    features = json.loads((root / "model" / "model.json").read_text())["features"]
    assert {f["name"]: f.get("optional", False) for f in features} == {
        "age": False,
        "balance": False,
        "job": False,
        "agee": True,
    }


def _labels(response) -> list[Any]:
    assert response.status_code == 200, response.text
    return [p["predicted_label"] for p in response.json()["predictions"]]


def test_the_training_records_as_written_get_the_answers_of_their_null_spelling(server):
    as_written = [_features(r) for r in TRAIN]
    spelled = [{**r, "agee": r.get("agee")} for r in as_written]
    expected = _labels(
        server.invoke(json.dumps({"instances": spelled}), "application/json", "application/json")
    )
    lines = server.invoke(_lines(as_written), "application/jsonlines", "application/json")
    assert _labels(lines) == expected
    for body in ({"instances": as_written}, {"dataframe_records": as_written}, as_written):
        assert _labels(server.invoke(json.dumps(body), "application/json", "application/json")) == expected
    csv = "age,balance,job,agee\n" + "".join(
        f"{r['age']},{r['balance']},{r['job']},{r.get('agee', '')}\n" for r in as_written
    )
    assert _labels(server.invoke(csv, "text/csv", "application/json")) == expected
    one = as_written[0]
    assert _labels(server.invoke(json.dumps(one), "application/json", "application/json")) == expected[:1]


@pytest.mark.parametrize(
    ("body", "content_type", "code", "says"),
    [
        (  # a misspelled key is never read as an absent one
            {"age": 40, "balance": 100, "job": "admin", "agey": 5},
            "application/json",
            "unknown_columns",
            "row 1 has unknown column 'agey'",
        ),
        (  # a key training never left out stays required
            {"age": 40, "job": "admin"},
            "application/json",
            "missing_columns",
            "row 1 lacks column 'balance'; send every feature (null for a missing value; a record may "
            "leave out only 'agee', missing in training's records)",
        ),
        (  # a table names every column
            {"dataframe_split": {"columns": ["age", "balance", "job"], "data": [[40, 100, "admin"]]}},
            "application/json",
            "missing_columns",
            "\"dataframe_split\" lacks column 'agee'",
        ),
        (
            "age,balance,job\n40,100,admin\n",
            "text/csv",
            "missing_columns",
            "lacks column 'agee'; send every feature (null for a missing value)",
        ),
    ],
    ids=["misspelled-key", "required-key", "dataframe-split", "csv-header"],
)
def test_what_a_request_may_not_leave_out_is_refused_naming_it(server, body, content_type, code, says):
    text = body if isinstance(body, str) else json.dumps(body)
    response = server.invoke(text, content_type, "application/json")
    assert response.status_code == 400, response.text
    assert response.json()["error"] == code
    message = response.json()["message"]
    assert says in message
    assert ("may leave out" in message) == (body == {"age": 40, "job": "admin"})  # records only


def _evaluate(model: Path, tmp_path: Path, lines: str) -> subprocess.CompletedProcess:
    """The real evaluate on a test directory holding ``lines`` as t.jsonl."""
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "t.jsonl").write_text(lines)
    return subprocess.run(
        [sys.executable, str(support.CONTAINER / "evaluate"), "--model", str(model)]
        + ["--test", str(tmp_path / "test"), "--output", str(tmp_path / "e")]
        + ["--content-type", "application/jsonlines"],
        cwd=str(support.REPO),
        capture_output=True,
        text=True,
        timeout=300,
        env=support.clean_environ(SAGEMAKER_BASE_DIR=str(tmp_path)),
    )


def test_evaluate_reads_test_records_without_the_key_as_training_does(train_only, tmp_path):
    evaluated = _evaluate(train_only / "model", tmp_path, _lines(VALIDATION))
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    assert (tmp_path / "e" / "evaluation.json").exists()


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (
            {"label": "no", "age": 40, "job": "admin"},
            "test/t.jsonl, line 4 lacks column 'balance'; send every feature (null for a missing value; "
            "a record may leave out only 'agee', missing in training's records)",
        ),
        ({"label": "no"}, "test/t.jsonl, line 4 lacks columns 'age', 'balance', 'job'; send every feature"),
        (
            {"label": "no", "agey": 5, "age": 40, "balance": 1, "job": "admin"},
            "test/t.jsonl, line 4 has unknown column 'agey'",
        ),
    ],
    ids=["required-key", "label-only", "misspelled-key"],
)
def test_evaluate_refuses_the_test_records_the_endpoint_refuses_naming_the_line(
    train_only, tmp_path, line, says
):
    """A test record without a key training never left out was scored as a row of missing
    values (exit 0, a report the endpoint's 400 contradicts): refused by the server's own check,
    named by file and line (a blank line before it counts as a line, not a record)."""
    lines = _lines(VALIDATION[:2]) + "\n" + json.dumps(line) + "\n" + _lines(VALIDATION[2:])
    (tmp_path / "output").mkdir()
    evaluated = _evaluate(train_only / "model", tmp_path, lines)
    assert evaluated.returncode == 1, evaluated.stdout + evaluated.stderr
    first = (tmp_path / "output" / "message").read_text().splitlines()[0]
    assert first.startswith(says), first
    assert not (tmp_path / "e" / "evaluation.json").exists()
