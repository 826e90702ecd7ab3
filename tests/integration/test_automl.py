"""algorithm=auto through the real `train`: every problem type end to end (leaderboard,
exploration, report, model served by the real server), budget, checkpoints and SIGTERM."""

from __future__ import annotations

import csv
import functools
import io
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import serving_models

from support import (
    csv_bytes,
    diabetes_frame,
    encode_hyperparameters,
    iris_frame,
    make_ml_root,
    mixed_frame,
    model_dir_entries,
    read_failure,
    read_until,
    run_train,
    run_train_patched,
    start_train,
)

pytestmark = pytest.mark.slow

LEADERBOARD_COLUMNS = [
    "rank",
    "candidate_name",
    "candidate_status",
    "family",
    "preprocessing",
    "hyperparameters",
    "objective_metric",
    "objective_value",
    "objective_std",
]


def _root(
    tmp_path: Path,
    frame: pd.DataFrame,
    target: str,
    validation: pd.DataFrame | None = None,
    **hyperparameters,
) -> Path:
    """An ML root for ``algorithm=auto`` on ``frame``, with a validation channel when given."""
    channels = {"train": {"train.csv": csv_bytes(frame, target=target, header=True)}}
    if validation is not None:
        channels["validation"] = {"validation.csv": csv_bytes(validation, target=target, header=True)}
    return make_ml_root(
        tmp_path,
        channels=channels,
        hyperparameters={"algorithm": "auto", "target": target, **hyperparameters},
        content_types={name: "text/csv" for name in channels},
    )


def _leaderboard(root: Path) -> list[dict[str, str]]:
    text = (root / "output" / "data" / "leaderboard.csv").read_text()
    return list(csv.DictReader(io.StringIO(text)))


def _served_predictions(root: Path, frame: pd.DataFrame, target: str, rows: int) -> list[dict]:
    """The saved model's answers for the first ``rows`` rows, from the real server (a 200)."""
    server = serving_models.start(root)
    try:
        body = frame.drop(columns=[target]).head(rows).to_csv(index=False, header=False)
        response = server.invoke(body, "text/csv", "application/json", timeout=30)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert len(predictions) == rows
        return predictions
    finally:
        server.stop()


CASES = {
    "binary": (mixed_frame, "deposit", "F1"),
    "multiclass": (iris_frame, "target", "Accuracy"),
    "regression": (diabetes_frame, "target", "MSE"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_auto_trains_explores_ranks_reports_and_serves(kind, tmp_path):
    make, target, default_objective = CASES[kind]
    frame = make()
    budget = 90  # an upper bound for a busy machine: the search ends after 4 candidates
    root = _root(tmp_path, frame, target, max_runtime_seconds=budget, max_candidates=4)
    started = time.monotonic()
    result = run_train(root)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout

    # progress: one line per candidate with score, elapsed time and budget left
    lines = re.findall(r"auto candidate (\d+): (\S+): .*elapsed [\d.]+ s, budget left [\d.]+ s", out)
    assert [int(n) for n, _ in lines] == list(range(1, len(lines) + 1)) and len(lines) >= 2
    assert re.search(r"^validation:\w+=[-0-9.]+$", out, re.M), (
        "the objective is logged as validation:<metric>="
    )
    assert elapsed < budget * 1.1 + 15, f"job took {elapsed:.1f} s for a {budget} s budget"
    # joblib's warning that a forked candidate runs its loops in one process, once per loop
    assert "Loky-backed parallel loops" not in out + result.stderr

    data = root / "output" / "data"
    board = _leaderboard(root)
    assert list(board[0])[: len(LEADERBOARD_COLUMNS)] == LEADERBOARD_COLUMNS
    # a candidate the search skipped (too expensive for the time left: a busy machine) is on the
    # leaderboard as Skipped, counted in one summary line, not a progress line
    searched = {
        row["candidate_name"]
        for row in board
        if row["family"] != "stack" and row["candidate_status"] != "Skipped"
    }
    assert searched == {name for _, name in lines}
    skipped = {row["candidate_name"] for row in board if row["candidate_status"] == "Skipped"}
    summary = re.findall(r"auto: skipped (\d+) candidate\(s\) expected to need more", out)
    assert [int(n) for n in summary] == ([len(skipped)] if skipped else [])
    assert board[0]["candidate_status"] == "Completed" and board[0]["objective_metric"] == default_objective
    assert sum(float(row["ensemble_weight"]) for row in board) == pytest.approx(1.0, abs=1e-5)
    exploration = json.loads((data / "exploration.json").read_text())
    assert exploration["rows"] == len(frame)
    assert {f["name"] for f in exploration["features"]} == set(frame.columns) - {target}
    page = (data / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    # every plot is drawn, or listed as left out to keep the budget (a busy machine); the list
    # also names steps that are not plots (the refit on all rows, the stack)
    plots = {"Permutation feature importance", "Score over time"} | (
        {"Predicted vs actual", "Residuals"}
        if kind == "regression"
        else {"Confusion matrix", "ROC curve", "Precision-recall curve"}
    )
    drawn = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    left_out = re.search(r"Left out to keep the time budget:</p><ul>(.*?)</ul>", page)
    listed = re.findall(r"<li>([^:<]+):", left_out.group(1)) if left_out else []
    assert sorted(drawn + [title for title in listed if title in plots]) == sorted(plots), page

    model = json.loads((root / "model" / "model.json").read_text())
    assert model["algorithm"] == "auto" and model["details"]["automl"]["objective"] == default_objective

    predictions = _served_predictions(root, frame, target, 20)
    if kind != "regression":
        truth = frame[target].head(20).astype(str).tolist()
        labels = [str(p["predicted_label"]) for p in predictions]
        assert np.mean([a == b for a, b in zip(labels, truth, strict=True)]) >= 0.7


def test_the_whole_job_keeps_its_time_budget(tmp_path):
    """Budget adherence is behaviour the issue specifies (the whole job within the budget +
    10%), not a speed figure: with little data the search fills the budget and must stop early
    enough for the refit, the report and the save.  The job's own account and the process's
    wall time are both checked."""
    budget = 30
    root = _root(tmp_path, iris_frame(), "target", max_runtime_seconds=budget)
    started = time.monotonic()
    result = run_train(root, timeout=120)
    wall = time.monotonic() - started
    assert wall <= budget * 1.1, f"the train process took {wall:.1f} s for a {budget} s budget"
    if result.returncode == 1:
        # A machine so busy that starting and reading took the budget: the job must still say
        # so in time, as the user error it is (seen with 8 test runs on 2 cores).
        cause = read_failure(root).splitlines()[0]
        assert cause.startswith("no AutoML candidate finished within max_runtime_seconds=30: "), cause
        return
    assert result.returncode == 0, result.stdout + result.stderr
    reported = re.search(r"auto: elapsed ([\d.]+) s of the 30 s budget", result.stdout)
    assert reported and float(reported.group(1)) <= budget, result.stdout
    assert len(_leaderboard(root)) >= 2, "the search used the budget"
    model = json.loads((root / "model" / "model.json").read_text())
    assert model["details"]["automl"]["elapsed_seconds"] <= budget


def test_an_objective_that_does_not_fit_the_problem_is_a_user_error(tmp_path):
    root = _root(tmp_path, iris_frame(), "target", objective_metric="RMSE", max_runtime_seconds=20)
    result = run_train(root)
    assert result.returncode == 1
    failure = read_failure(root)
    assert failure.startswith("hyperparameter 'objective_metric'='RMSE' does not apply to a multiclass")


@pytest.mark.parametrize(
    ("objective", "validation_rows", "why"),
    [
        ("AUC", lambda frame: frame[frame["deposit"] == "yes"].head(30), "holds a single class ('yes')"),
        ("R2", lambda frame: frame.head(1), "holds 1 row(s): R2 needs at least 2"),
        (  # every candidate scored F1=0 there (scikit-learn's zero_division), the best "0.000000"
            "F1",
            lambda frame: frame[frame["deposit"] == "no"].head(30),
            "holds no row of the positive class 'yes': recall is 0/0",
        ),
    ],
)
def test_an_objective_the_validation_channel_cannot_score_is_refused_naming_it(
    tmp_path, objective, validation_rows, why
):
    """Every candidate would score NaN (AUC of one class, R2 of one row): not a budget too small."""
    frame = mixed_frame()
    target = "deposit"
    if objective == "R2":
        frame = frame.assign(deposit=np.random.default_rng(0).normal(size=len(frame)))
    root = make_ml_root(
        tmp_path,
        channels={
            "train": {"train.csv": csv_bytes(frame, target=target, header=True)},
            "validation": {"validation.csv": csv_bytes(validation_rows(frame), target=target, header=True)},
        },
        hyperparameters={
            "algorithm": "auto",
            "target": target,
            "objective_metric": objective,
            "max_runtime_seconds": 60,
            "max_candidates": 2,
        },
        content_types={"train": "text/csv", "validation": "text/csv"},
    )
    result = run_train(root)
    assert result.returncode == 1, result.stdout + result.stderr
    cause = read_failure(root).splitlines()[0]
    assert cause.startswith(
        f"objective_metric={objective} cannot be computed on the validation channel, where algorithm=auto "
        f"scores its candidates: it {why}"
    ), cause
    assert "another objective_metric" in cause and "max_runtime_seconds" not in cause, cause
    assert not re.search(r"auto candidate \d+:", result.stdout), "refused before the search"
    assert model_dir_entries(root) == []


def test_an_unknown_objective_is_refused_before_any_data_is_read(tmp_path):
    root = _root(tmp_path, iris_frame(), "target", objective_metric="Speed")
    result = run_train(root)
    assert result.returncode == 1
    assert "objective_metric" in read_failure(root) and "reading channel" not in result.stdout


def _checkpointed_run(
    base: Path, run: Callable[[Path], subprocess.CompletedProcess], **hyperparameters
) -> tuple[Path, subprocess.CompletedProcess]:
    """A job on :func:`mixed_frame` run once by ``run`` with a checkpoint directory (it must exit
    0): its ML root and run, for tests that restart copies of it (checkpoints are keyed by the
    data, plan, objective and code, not the path or the budget)."""
    root = _root(base, mixed_frame(), "deposit", **hyperparameters)
    (root / "checkpoints").mkdir()
    first = run(root)
    assert first.returncode == 0, first.stdout + first.stderr
    return root, first


@pytest.fixture(scope="module")
def checkpointed_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ML root whose job (3 candidates) has run once with a checkpoint directory: the restart
    tests each restart a copy of it."""
    # the budget is an upper bound for a busy machine: the job ends after 3 candidates
    base = tmp_path_factory.mktemp("checkpointed")
    return _checkpointed_run(base, run_train, max_runtime_seconds=180, max_candidates=3)[0]


def _restart_copy(job: Path, tmp_path: Path, **hyperparameters) -> Path:
    """A copy of ``job``'s ML root to restart, with ``hyperparameters`` changed (the budget: not
    part of the checkpoints' key)."""
    root = tmp_path / "ml"
    shutil.copytree(job, root, symlinks=True)
    config = root / "input" / "config" / "hyperparameters.json"
    changed = encode_hyperparameters(hyperparameters)
    config.write_text(json.dumps({**json.loads(config.read_text()), **changed}))
    return root


def test_a_restarted_job_resumes_from_its_checkpoints(checkpointed_job, tmp_path):
    root = _restart_copy(checkpointed_job, tmp_path)
    saved = sorted(p.name for p in (root / "checkpoints").rglob("*.json"))
    assert len(saved) == 3
    second = run_train(root)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resuming with 3 finished candidate(s)" in second.stdout
    assert not re.search(r"auto candidate \d+:", second.stdout), "no candidate is scored twice"
    searched = [row for row in _leaderboard(root) if row["family"] != "stack"]  # the stack is recomputed
    assert len(searched) == 3 and all("from a checkpoint" in row["message"] for row in searched)
    # the host that scored each candidate survives the restart (one host here: algo-1)
    assert {row["host"] for row in searched} == {"algo-1"}
    records = [json.loads(p.read_text()) for p in (root / "checkpoints").rglob("*.json")]
    assert {r["host"] for r in records} == {"algo-1"}


def test_a_restarted_job_scores_again_the_candidates_whose_checkpoints_are_corrupt(
    checkpointed_job, tmp_path
):
    """A partial restore or a full disk (an empty predictions file), a foreign writer (a null
    score): each such checkpoint is ignored with a warning and its candidate scored again."""
    root = _restart_copy(checkpointed_job, tmp_path)
    empty, nulled, kept = sorted((root / "checkpoints").rglob("*.json"))
    empty.with_suffix(".npy").write_bytes(b"")
    nulled.write_text(json.dumps({**json.loads(nulled.read_text()), "score": None}))
    second = run_train(root)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"ignoring checkpoint {empty.name}: No data left in file" in second.stdout
    assert f"ignoring checkpoint {nulled.name}: score is None, not a number" in second.stdout
    assert "resuming with 1 finished candidate(s)" in second.stdout
    assert len(re.findall(r"auto candidate \d+:", second.stdout)) == 2, "the two are scored again"
    assert kept.exists()


def test_a_validation_channel_too_small_for_the_stack_trains_without_one(tmp_path):
    """The stack's meta-model is cross-validated on the validation channel's rows: with 3 of
    them (fewer than its 5 folds) scikit-learn refused, and the job failed as a bug of byoc's
    (exit 2) after scoring every candidate.  It is left out, said in the log and the report:
    3 rows support no meta-model (10 rows per weight)."""
    frame = diabetes_frame()
    root = _root(
        tmp_path, frame.head(120), "target", frame.tail(3), max_runtime_seconds=120, max_candidates=3
    )
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    why = "no stacked ensemble: not considered: the held-out rows are too few for a meta-model (3 rows;"
    assert why in result.stdout
    assert "too few for a meta-model" in (root / "output" / "data" / "report.html").read_text()


# twelve rows whose labels alternate along the only feature: nothing can be learnt, and every
# candidate's out-of-fold predictions favour the wrong label (a held-out row's neighbours hold the other)
ALTERNATING = "y,x\n" + "".join(f"{'ab'[i % 2]},{i}\n" for i in range(12))
WITHOUT_THE_ROW_RULE = "from byoc.automl import stack\nstack.supported_members = lambda y, problem_type: 5\n"


@pytest.mark.parametrize("rule", ["as_shipped", "non_negative_weights_alone"])
def test_auto_on_a_few_rows_reports_no_score_its_saved_model_is_far_from_on_its_training_rows(tmp_path, rule):
    """A stack's meta-model learnt to invert those predictions: the leaderboard, the log and
    validation:f1 said 1.0 for a model that got every training row wrong (train:accuracy=0).
    Now no member's weight may be negative, and 12 rows support no meta-model at all; each
    alone keeps the reported score honest (``non_negative_weights_alone`` lifts the row rule).
    A model fits its own training rows at least as well as rows it never saw."""
    root = make_ml_root(
        tmp_path,
        channels={"train": {"a.csv": ALTERNATING}},
        hyperparameters={"target": "y", "algorithm": "auto", "max_candidates": 6, "max_runtime_seconds": 40},
    )
    result = run_train(root) if rule == "as_shipped" else run_train_patched(root, WITHOUT_THE_ROW_RULE)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log

    def logged(name: str) -> float:
        return float(re.search(rf"^{name}=(\S+)$", log, re.M).group(1))

    held_out = json.loads((root / "model" / "model.json").read_text())["details"]["automl"]["held_out_score"]
    assert held_out == pytest.approx(logged("validation:f1"), abs=1e-6)
    assert logged("validation:accuracy") <= logged("train:accuracy") + 1e-9, log
    assert held_out < 1.0
    stacks = [row for row in _leaderboard(root) if row["family"] == "stack"]
    assert all(float(row["objective_value"]) < 1.0 for row in stacks), stacks
    if rule == "as_shipped":
        assert "no stacked ensemble: not considered: the held-out rows are too few" in log and not stacks


def test_a_read_only_checkpoint_directory_does_not_end_the_job(tmp_path):
    """A checkpoint that cannot be written failed the whole job after its first candidate (exit
    1, no model); checkpoints only spare a restart work, so the job warns once and goes on."""
    root = _root(tmp_path, mixed_frame(), "deposit", max_runtime_seconds=180, max_candidates=2)
    (root / "checkpoints").mkdir(mode=0o555)
    result = run_train(root, unprivileged=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("auto: checkpoints are not saved from") == 1
    assert "Permission denied" in result.stdout and (root / "model" / "model.json").exists()
    assert len(re.findall(r"auto candidate \d+:", result.stdout)) == 2


def test_a_checkpoint_directory_that_cannot_be_read_does_not_end_the_job(tmp_path):
    """A checkpoint folder the training user cannot enter (left by a run as another user) failed
    the whole job before its search, as an unreadable file of the ML root: checkpoints only
    spare a restart work, so the job warns and scores every candidate."""
    root = _root(tmp_path, mixed_frame(), "deposit", max_runtime_seconds=180, max_candidates=1)
    (root / "checkpoints" / "byoc-automl").mkdir(parents=True, mode=0o000)
    result = run_train(root, unprivileged=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert read_failure(root) is None
    assert "auto: checkpoints cannot be read" in result.stdout and "Permission denied" in result.stdout
    assert len(re.findall(r"auto candidate \d+:", result.stdout)) == 1
    assert (root / "model" / "model.json").exists()


def _sigterm_when(proc, pattern: str, grace: float) -> tuple[str, str]:
    """SIGTERM once ``proc`` has logged a line matching ``pattern``; what it printed before and
    after, once it has ended within the grace period (+ 10%, as the budget)."""
    seen = read_until(proc, pattern)
    proc.send_signal(15)
    signalled = time.monotonic()
    rest = proc.communicate(timeout=grace * 3)[0]
    after = time.monotonic() - signalled
    assert after <= grace * 1.1, f"the job ended {after:.1f} s after SIGTERM (grace {grace} s): {seen + rest}"
    return seen, rest


def test_sigterm_ends_the_search_and_saves_the_best_model_within_the_grace_period(tmp_path):
    """SIGTERM with a long budget left: the refit, report and save keep to the grace period
    (BYOC_STOP_GRACE_SECONDS; SageMaker's SIGKILL follows 120 s after SIGTERM), not to the
    budget.  Past the grace period the job shell's hard stop would exit 143 without a model,
    so exit 0 with a model shows the finish kept to it; the wall time is checked like the
    budget (+ 10%)."""
    grace = 20
    frame = mixed_frame()
    root = _root(tmp_path, frame, "deposit", max_runtime_seconds=3600)
    proc = start_train(root, env={"BYOC_STOP_GRACE_SECONDS": str(grace)})
    seen, rest = _sigterm_when(proc, r"auto candidate 2: .*=", grace)
    out = seen + rest
    assert proc.returncode == 0, out
    assert "ending early and saving the best model so far" in out
    # what the short finish left out, in the log, the report and model.json
    assert re.search(r"auto: stopped by a stop signal after \d+ candidate\(s\); .* refitting only \S+", out)
    assert read_failure(root) is None
    model = json.loads((root / "model" / "model.json").read_text())
    assert model["details"]["automl"]["stopped_early"] is True
    assert (
        len(model["details"]["automl"]["members"]) == 1 and not model["details"]["automl"]["stacked_members"]
    )
    page = (root / "output" / "data" / "report.html").read_text()
    assert "Blend and stacked ensemble: not considered: the job was stopped (SIGTERM)" in page
    board = _leaderboard(root)
    assert "Completed" in {row["candidate_status"] for row in board}
    assert "stack" not in {row["family"] for row in board}
    _served_predictions(root, frame, "deposit", 5)


def test_sigterm_before_any_candidate_finished_stops_without_a_model(tmp_path):
    """Nothing to save: the stop's exit code (143) and failure at once, not the budget's
    'no candidate finished' user error, nor a wait for the grace period's end."""
    root = _root(tmp_path, _heavy_frame(), "target", max_runtime_seconds=3600)
    proc = start_train(root, env={"BYOC_STOP_GRACE_SECONDS": "100"})
    seen = read_until(proc, r"auto: candidates are scored on")
    proc.send_signal(15)
    out = seen + proc.communicate(timeout=90)[0]
    assert proc.returncode == 143, out
    cause = read_failure(root).splitlines()[0]
    assert cause.startswith("Training job stopped by a stop signal"), cause
    assert "no AutoML candidate had finished" in cause and "no model was saved" in cause, cause
    assert model_dir_entries(root) == []


# The exploration's leakage check costs 1.5 s a column (as on a table of thousands of columns,
# made deterministic): 20 columns take 30 s unless the exploration keeps to its share.
SLOW_LEAKAGE_CHECK = """
import time
from byoc.automl import explore
def slow(*args, **kwargs):
    time.sleep(1.5)
    return None
explore._leak_score = slow
"""


def _wide_iris() -> pd.DataFrame:
    frame = iris_frame()
    noise = np.random.default_rng(0).normal(size=(len(frame), 16))
    return pd.concat([frame, pd.DataFrame(noise, columns=[f"noise_{i}" for i in range(16)])], axis=1)


def test_the_exploration_keeps_to_its_share_of_the_budget_and_says_what_it_left_out(tmp_path):
    budget = 25
    root = _root(tmp_path, _wide_iris(), "target", max_runtime_seconds=budget)
    started = time.monotonic()
    proc = start_train(root, patch=SLOW_LEAKAGE_CHECK)
    out = proc.communicate(timeout=budget * 4)[0]
    wall = time.monotonic() - started
    assert wall <= budget * 1.1, f"the train process took {wall:.1f} s for a {budget} s budget: {out}"
    assert "exploration: the leakage check covered" in out, out
    exploration = json.loads((root / "output" / "data" / "exploration.json").read_text())
    assert re.match(
        r"the leakage check covered \d+ of 20 columns: its share of the time budget ran out",
        exploration["incomplete"],
    ), exploration
    if proc.returncode == 1:  # a machine so busy that the budget went to starting and reading
        assert read_failure(root).startswith("no AutoML candidate finished within"), out
        return
    assert proc.returncode == 0, out
    assert "Leakage check of the exploration" in (root / "output" / "data" / "report.html").read_text()


def test_sigterm_during_the_exploration_stops_at_once(tmp_path):
    root = _root(tmp_path, _wide_iris(), "target", max_runtime_seconds=3600)
    proc = start_train(root, env={"BYOC_STOP_GRACE_SECONDS": "60"}, patch=SLOW_LEAKAGE_CHECK)
    seen = read_until(proc, r"auto: the report's plotting library loaded")
    proc.send_signal(15)
    signalled = time.monotonic()
    out = seen + proc.communicate(timeout=120)[0]
    after = time.monotonic() - signalled
    assert proc.returncode == 143, out
    assert after <= 10, f"the job ended {after:.1f} s after SIGTERM: {out}"
    cause = read_failure(root).splitlines()[0]
    assert (
        cause.startswith("Training job stopped by a stop signal")
        and "no AutoML candidate had finished" in cause
    )
    assert model_dir_entries(root) == []


# The final refit never ends (a refit too heavy for the time left, made deterministic): it runs
# in its own child process, which the job kills at its deadline.
ENDLESS_REFIT = """
import time
from byoc.automl import search
search.refit = lambda *args: time.sleep(3600)
"""


def _saved_after_sigterm_during(tmp_path: Path, patch: str, pattern: str, phase: str) -> tuple[Path, dict]:
    """A two-candidate job on :func:`mixed_frame` with ``patch``, sent SIGTERM once it logs
    ``pattern`` (a 20 s grace period): it saves a model within the grace period (exit 0, no
    failure file, stopped early), the signal logged as received while ``phase``.  Its ML root
    and model.json's ``details.automl``."""
    grace = 20
    root = _root(tmp_path, mixed_frame(), "deposit", max_runtime_seconds=3600, max_candidates=2)
    proc = start_train(root, env={"BYOC_STOP_GRACE_SECONDS": str(grace)}, patch=patch)
    seen, rest = _sigterm_when(proc, pattern, grace)
    assert proc.returncode == 0, seen + rest
    assert f"received while {phase} (algorithm=auto)" in rest, seen + rest
    assert read_failure(root) is None
    automl = json.loads((root / "model" / "model.json").read_text())["details"]["automl"]
    assert automl["stopped_early"] is True, automl
    return root, automl


# The stack's scoring never ends (a meta-model too slow for the time left, made deterministic):
# it runs in its own child process, which the job kills at its deadline or a stop signal.
ENDLESS_STACK = """
import time
from byoc.automl import stack
stack.evaluate = lambda *args, **kwargs: time.sleep(3600)
"""


def test_sigterm_during_the_stack_scoring_kills_it_and_saves_a_refitted_model_within_the_grace_period(
    tmp_path,
):
    """The stack is scored after the search, where a stop signal's handling (one refit, no
    blend or stack) has been decided already: its scoring is killed at once, and the chosen
    model is still refitted on all rows and saved within the grace period."""
    root, automl = _saved_after_sigterm_during(
        tmp_path,
        ENDLESS_STACK,
        r"auto: scoring a stacked ensemble of 2 candidates",
        "scoring a stacked ensemble",
    )
    assert automl["saved_from_cross_validation"] is False, automl
    assert automl["stacked_members"] == [] and automl["refit_cut"] is None
    page = (root / "output" / "data" / "report.html").read_text()
    assert re.search(
        r"Stacked ensemble: its scoring was stopped after [\d.]+ s: the job was asked to stop", page
    )
    assert "stack" not in {row["family"] for row in _leaderboard(root)}


def test_sigterm_during_the_final_refit_saves_the_model_cross_validation_kept_within_the_grace_period(
    tmp_path,
):
    """The refit cannot end within the grace period: it is killed there, and the best
    candidate's model from its last cross-validation fold is saved instead (exit 0, served),
    with model.json, the leaderboard and the report saying so."""
    frame = mixed_frame()
    root, automl = _saved_after_sigterm_during(
        tmp_path, ENDLESS_REFIT, r"auto: refitting \S+ on \d+ rows", "refitting the chosen model on all rows"
    )
    assert automl["saved_from_cross_validation"] is True
    [member] = automl["members"]
    assert re.match(
        rf"the refit of {re.escape(member['name'])} on all 240 rows was stopped after [\d.]+ s: the grace "
        rf"period after the stop signal ran out; saved instead: {re.escape(member['name'])} as fitted "
        r"during cross-validation, on 192 of 240 rows$",
        automl["refit_cut"],
    ), automl["refit_cut"]
    row = next(r for r in _leaderboard(root) if r["candidate_name"] == member["name"])
    assert float(row["ensemble_weight"]) == 1.0 and "as fitted during cross-validation" in row["message"]
    page = (root / "output" / "data" / "report.html").read_text()
    assert "Refit on all rows: the refit of" in page
    predictions = _served_predictions(root, frame, "deposit", 40)
    truth = frame["deposit"].head(40).astype(str).tolist()
    labels = [str(p["predicted_label"]) for p in predictions]
    assert np.mean([a == b for a, b in zip(labels, truth, strict=True)]) >= 0.7


# The permutation importance never ends (a wide table's scoring passes, made deterministic): it
# ran in the job's own process, where a stop signal could not cut it short.
ENDLESS_IMPORTANCE = """
import time
import sklearn.inspection
def endless(*args, **kwargs):
    print("permutation importance: started", flush=True)
    time.sleep(3600)
sklearn.inspection.permutation_importance = endless
"""


def test_sigterm_during_the_permutation_importance_saves_the_model_within_the_grace_period(tmp_path):
    """The report's permutation importance ran in the job's process until the budget's deadline
    (its cost was checked against the budget before the signal): a SIGTERM during it reached the
    job shell's hard stop at the grace period's end, exit 143 and no model, although the chosen
    model was refitted.  It is left out at the stop, and the model saved."""
    root, automl = _saved_after_sigterm_during(
        tmp_path,
        ENDLESS_IMPORTANCE,
        r"permutation importance: started",
        "writing the leaderboard and the report",
    )
    assert automl["saved_from_cross_validation"] is False, automl
    page = (root / "output" / "data" / "report.html").read_text()
    assert re.search(r"Permutation feature importance: stopped after [\d.]+ s: the grace period", page)
    assert {"model.joblib", "model.json"} <= set(model_dir_entries(root))


def _saved_within_the_budget(root: Path, budget: float, patch: str) -> str:
    """Run ``train`` with ``patch``; it must save a model (exit 0) within the budget + 10%."""
    started = time.monotonic()
    proc = start_train(root, patch=patch)
    out = proc.communicate(timeout=budget * 4)[0]
    wall = time.monotonic() - started
    assert proc.returncode == 0, out
    assert wall <= budget * 1.1, f"the train process took {wall:.1f} s for a {budget} s budget: {out}"
    return out


def test_a_refit_past_the_budget_saves_the_model_cross_validation_kept_within_the_budget(tmp_path):
    """No stop signal: the budget's end cuts the refit the same way (budget + 10% holds)."""
    budget = 40
    root = _root(tmp_path, mixed_frame(), "deposit", max_runtime_seconds=budget, max_candidates=2)
    _saved_within_the_budget(root, budget, ENDLESS_REFIT)
    automl = json.loads((root / "model" / "model.json").read_text())["details"]["automl"]
    assert automl["saved_from_cross_validation"] is True
    assert "was stopped after" in automl["refit_cut"] and "the time budget ran out" in automl["refit_cut"]
    assert {"model.joblib", "model.json"} <= set(model_dir_entries(root))


def test_sigterm_during_a_refit_with_no_model_kept_stops_naming_the_refit(refit_out_of_memory_job, tmp_path):
    """A job resumed from checkpoints holds no fold model: when its refit cannot end within the
    grace period, nothing can be saved — exit 143, and the failure says which refit and why.
    The first job is the refit-out-of-memory test's (its checkpoints do not depend on the refit);
    its budget of an hour leaves the grace period alone to cut the refit."""
    job, _ = refit_out_of_memory_job
    root = _restart_copy(job, tmp_path)
    shutil.rmtree(root / "model")  # the restarted job's host starts with an empty model directory
    (root / "model").mkdir()
    proc = start_train(root, env={"BYOC_STOP_GRACE_SECONDS": "20"}, patch=ENDLESS_REFIT)
    out = "".join(_sigterm_when(proc, r"auto: refitting \S+ on \d+ rows", 20))
    assert "resuming with 2 finished candidate(s)" in out
    assert proc.returncode == 143, out
    cause = read_failure(root).splitlines()[0]
    assert cause.startswith(
        "Training job stopped by a stop signal (StopTrainingJob or spot interruption) while refitting "
        "the chosen model on all rows"
    ), cause
    assert re.search(
        r": the refit of \S+ on all 240 rows was stopped after [\d.]+ s: the grace period after the stop "
        r"signal ran out, and no model fitted during the cross-validation was kept to save instead; no model "
        r"was saved",
        cause,
    ), cause
    assert model_dir_entries(root) == []


# The conversion for serving never ends (onnx's conversion of a large boosting model, made
# deterministic): it cannot be interrupted, so the job must stop waiting for it.
ENDLESS_COMPILATION = """
import time
from byoc import compiled
def endless(estimator):
    print("test: converting the model for serving", flush=True)
    time.sleep(3600)
compiled.convert = endless
"""


def _compile_skipped(root: Path) -> str:
    model = json.loads((root / "model" / "model.json").read_text())
    [step] = model["compiled"]["steps"]
    assert step["backend"] == "scikit-learn" and model["compiled"]["file"] is None, model["compiled"]
    return str(step["reason"])


def test_sigterm_during_the_compilation_for_serving_saves_the_model_uncompiled(tmp_path):
    grace = 20
    frame = iris_frame()
    root = _root(tmp_path, frame, "target", max_runtime_seconds=3600, max_candidates=1)
    proc = start_train(root, env={"BYOC_STOP_GRACE_SECONDS": str(grace)}, patch=ENDLESS_COMPILATION)
    seen, rest = _sigterm_when(proc, r"test: converting the model for serving", grace)
    assert proc.returncode == 0, seen + rest
    assert "received while compiling the model for serving" in rest, rest
    assert read_failure(root) is None
    reason = _compile_skipped(root)
    assert reason.startswith(
        "the job was stopped (SIGTERM) while the model was compiled for serving: its compilation was abandoned"
    ), reason
    model = json.loads((root / "model" / "model.json").read_text())
    assert model["details"]["automl"]["stopped_early"] is True
    assert len(_served_predictions(root, frame, "target", 5)) == 5


def test_a_compilation_past_the_budget_is_abandoned_and_the_model_saved_within_it(tmp_path):
    budget = 30
    root = _root(tmp_path, iris_frame(), "target", max_runtime_seconds=budget, max_candidates=1)
    _saved_within_the_budget(root, budget, ENDLESS_COMPILATION)
    reason = _compile_skipped(root)
    assert reason.startswith("the time budget ran out: its compilation was abandoned after"), reason


def _heavy_frame() -> pd.DataFrame:
    """30 classes, 100 features, 1,500 rows: the first candidate's 15 folds cost about two minutes
    of CPU (HistGradientBoosting fits a tree per class per iteration), far past a 20 s budget."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 10, size=(1500, 100))
    y = (X[:, :5].sum(axis=1) + rng.integers(0, 5, 1500)) % 30
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(100)])
    frame.insert(0, "target", [f"class{v}" for v in y])
    return frame


def test_a_budget_too_small_for_any_candidate_is_a_user_error_naming_the_budget(tmp_path):
    root = _root(tmp_path, _heavy_frame(), "target", max_runtime_seconds=20)
    result = run_train(root, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    failure = read_failure(root)
    assert failure is not None
    cause = failure.splitlines()[0]
    assert cause.startswith("no AutoML candidate finished within max_runtime_seconds=20: "), cause
    # how long the quickest candidate needed (on a machine so busy that starting and reading
    # took the whole budget, that no candidate could start), and the two ways out
    assert re.search(
        r"the quickest candidate, \S+, needed (about|at least) \d+ s for the 15 folds"
        r"|the search had no time left to start a candidate",
        cause,
    ), cause
    assert "Raise max_runtime_seconds (to about" in cause and "train on a sample of the data" in cause
    assert model_dir_entries(root) == []


def test_a_class_too_rare_to_cross_validate_is_a_user_error_naming_it(tmp_path):
    """One row of a class: some fold's training rows lack it, and every family failed or the
    stack crashed (exit 2, 'a bug in byoc').  It is the data's to fix: exit 1, naming the class."""
    frame = mixed_frame()
    frame["deposit"] = ["no"] * (len(frame) - 1) + ["yes"]
    root = _root(tmp_path, frame, "deposit", max_runtime_seconds=60, max_candidates=3)
    result = run_train(root, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    cause = read_failure(root).splitlines()[0]
    assert cause.startswith(
        "the target column 'deposit' has 1 class(es) with fewer than 2 rows ('yes': 1 row): "
        "algorithm=auto scores its candidates by cross-validation"
    ), cause
    assert "add rows of those classes or remove theirs, or pass a validation channel" in cause
    assert model_dir_entries(root) == []


def _failed_with_patch(root: Path, patch: str, returncode: int) -> str:
    """Run ``train`` with ``patch``: it must fail with ``returncode`` and no model; the cause line."""
    result = run_train_patched(root, patch)
    assert result.returncode == returncode, result.stdout + result.stderr
    assert model_dir_entries(root) == []
    return read_failure(root).splitlines()[0]


def test_candidates_that_all_fail_in_our_code_are_a_fault_named_with_their_errors(tmp_path):
    """Every candidate failing in byoc's own code (here a ValueError from a broken build) is a
    fault (exit 2), and the failure says which and why; only scikit-learn refusing the data is
    the user's (tests/unit/test_automl_parts.py: blame)."""
    root = _root(tmp_path, iris_frame(), "target", max_runtime_seconds=30, max_candidates=3)
    patch = (
        "import byoc.automl.candidates as candidates\n"
        "def broken(candidate, *args, **kwargs):\n"
        "    raise ValueError(f'cannot build {candidate.family}')\n"
        "candidates.build = broken\n"
    )
    cause = _failed_with_patch(root, patch, 2)
    assert "no AutoML candidate finished: 3 failed (" in cause, cause
    for family in ("gradient_boosting", "linear", "random_forest"):
        assert re.search(rf"{family}-\S+: ValueError: cannot build {family}", cause), cause


@pytest.mark.parametrize("how", ["sigkill", "memory_error"])
def test_candidates_out_of_memory_are_an_out_of_memory_error_and_retried_after_a_restart(tmp_path, how):
    """The kernel's OOM killer SIGKILLs the forked child that ran out of memory (simulated: the
    fit kills its own process), or the fit raises MemoryError: the instance's memory — not a bug
    of byoc's (exit 2), nor the data (it was "data_not_fittable"): exit 1, out_of_memory, the
    failure leading with memory and its figure, naming what to change; and such a failure is
    not checkpointed, so a job restarted on a larger instance scores it again."""
    root = _root(tmp_path, iris_frame(), "target", max_runtime_seconds=30, max_candidates=3)
    (root / "checkpoints").mkdir()
    fit = (
        "lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)"
        if how == "sigkill"
        else "lambda *args, **kwargs: (_ for _ in ()).throw(MemoryError('Unable to allocate 9.3 GiB'))"
    )
    patch = f"import os, signal\nimport byoc.automl.search as search\nsearch.fit_candidate = {fit}\n"
    cause = _failed_with_patch(root, patch, 1)
    assert cause.startswith(
        "Out of memory while scoring AutoML candidates (algorithm=auto): 3 of the 3 failed candidate(s) "
        "ran out of memory ("
    ), cause
    said = "killed by the kernel (SIGKILL: out of memory?)" if how == "sigkill" else "MemoryError: Unable"
    assert said in cause and "this container has " in cause, cause
    assert "use an instance type with more memory (a larger instance_type), or train on fewer rows" in cause
    assert "raising max_runtime_seconds=30 will not help" in cause and "No model was saved." in cause
    assert "error code: out_of_memory" in read_failure(root)
    assert list((root / "checkpoints").rglob("*.json")) == []


REFIT_OUT_OF_MEMORY = """
from byoc.automl import search
def refit(*args):
    raise MemoryError("Unable to allocate 9.3 GiB")
search.refit = refit
"""


@pytest.fixture(scope="module")
def refit_out_of_memory_job(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess]:
    """A two-candidate job with a checkpoint directory whose refit on all rows ran out of memory
    (REFIT_OUT_OF_MEMORY), and its run: the refit tests each restart a copy of it.  The budget is
    an upper bound for a busy machine (the job ends after 2 candidates, and a restart that finds
    fewer checkpoints would not test what the SIGTERM test says)."""
    base = tmp_path_factory.mktemp("refit-oom")
    patched = functools.partial(run_train_patched, patch=REFIT_OUT_OF_MEMORY, timeout=300)
    return _checkpointed_run(base, patched, max_runtime_seconds=3600, max_candidates=2)


def test_a_final_refit_out_of_memory_saves_the_kept_model_or_fails_as_out_of_memory(
    refit_out_of_memory_job, tmp_path
):
    """The refit on all rows runs out of memory: the model cross-validation kept is saved
    (exit 0), the cut saying memory ran out; a job resumed from checkpoints keeps none, and then
    fails as out of memory (exit 1) — it failed as a budget too small, whose fix (more time)
    does not help."""
    job, first = refit_out_of_memory_job
    root = _restart_copy(job, tmp_path, max_runtime_seconds=60)
    automl = json.loads((root / "model" / "model.json").read_text())["details"]["automl"]
    assert automl["saved_from_cross_validation"] is True
    assert re.search(
        r"the refit of \S+ on all 240 rows ran out of memory: the process refitting it raised MemoryError "
        r"\(Unable to allocate 9.3 GiB\); this container has [\d.]+ GiB of memory",
        automl["refit_cut"],
    ), automl["refit_cut"]
    assert "no refit ended within the instance's memory" in first.stdout + first.stderr
    shutil.rmtree(root / "model")
    (root / "model").mkdir()
    cause = _failed_with_patch(root, REFIT_OUT_OF_MEMORY, 1)
    assert cause.startswith(
        "Out of memory while refitting the chosen model on all rows (algorithm=auto): the refit of "
    ), cause
    assert "raising max_runtime_seconds=60 will not help" in cause and "budget_too_small" not in cause


def _xor_plus_city_frame(n: int = 800, levels: int = 80, seed: int = 0) -> pd.DataFrame:
    """Log-odds that add an XOR of two columns (trees see it, a linear model cannot) to an effect
    of each of 80 cities (one-hot, the linear model sees it; trees on ordinal codes of 10 rows a
    city only roughly): a meta-model that adds its members' log-odds, each with a non-negative
    weight, beats each member and their average by more than the cross-validation noise.  (The
    frame before, a linear sum of twelve columns for the second part, was won by a stack whose
    logistic meta-model gave the linear member a weight of -2.6: not a stack that may be saved.)"""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(size=n), rng.uniform(size=n)
    effect = rng.choice([-2.0, 2.0], size=levels)
    city = rng.integers(0, levels, n)
    log_odds = 2.0 * np.where((a > 0.5) ^ (b > 0.5), 1, -1) + effect[city] + rng.normal(0, 0.5, n)
    frame = pd.DataFrame({"a": a, "b": b, "city": [f"c{i}" for i in city]})
    return frame.assign(label=np.where(log_odds > 0, "yes", "no"), value=log_odds)


def test_a_stack_chosen_on_a_validation_channel_reports_its_cross_validated_validation_score(tmp_path):
    """The stack's meta-model is fitted on the validation rows' predictions: the logged
    validation:<metric> is its cross-validated score there, not its in-sample one."""
    from byoc import metrics
    from byoc.automl import stack

    # regression: the sum the stack's least squares weighs (MSE 1.26 against 1.98 for the blend on
    # these 400 rows); no classifier stack with non-negative weights won on them
    frame = _xor_plus_city_frame(n=1200).drop(columns=["label"])
    train, validation = frame.iloc[:800], frame.iloc[800:]
    root = _root(tmp_path, train, "value", validation, max_runtime_seconds=600, max_candidates=3)
    result = run_train(root, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    model = json.loads((root / "model" / "model.json").read_text())
    automl = model["details"]["automl"]
    [member] = automl["members"]
    assert member["name"].startswith(f"{stack.FAMILY}-"), automl  # the stack won on these rows
    assert "meta-model was fitted on the validation channel" in result.stdout
    assert model["metrics"]["validation"]["mse"] == pytest.approx(automl["held_out_score"])
    assert f"validation:mse={metrics.spell(automl['held_out_score'])}" in result.stdout


ENDLESS_META_FIT = """
import time
from byoc.automl import stack
stack.fit_meta = lambda *args, **kwargs: time.sleep(3600)
"""


def test_a_chosen_stack_whose_meta_model_fit_cannot_end_saves_the_choice_without_it(tmp_path):
    """The stack's meta-model fit on all rows ran in the job's process, untimed: a slow one
    carried the job past its budget.  It is killed at the refit's deadline like every other
    fit, and the job saves the best choice without the stack (exit 0), saying why."""
    from byoc import artifact
    from byoc.automl import blend, stack

    frame = _xor_plus_city_frame().drop(columns=["value"])
    root = _root(tmp_path, frame, "label", max_runtime_seconds=60, max_candidates=3)
    result = run_train_patched(root, ENDLESS_META_FIT, timeout=300)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "auto: stacked ensemble chosen" in out, out
    assert re.search(
        r"auto: no stacked ensemble: chosen, but its meta-model's fit on all 800 rows was stopped after "
        r"[\d.]+ s: the time budget ran out; saved instead: ",
        out,
    ), out
    final = artifact.load(root / "model").estimator.steps[-1][1]
    assert not isinstance(final, stack.Stack)
    automl = json.loads((root / "model" / "model.json").read_text())["details"]["automl"]
    assert automl["stacked_members"] == [] and automl["saved_from_cross_validation"] is False
    assert isinstance(final, blend.BlendClassifier) == (len(automl["members"]) > 1)
    page = (root / "output" / "data" / "report.html").read_text()
    assert "Stacked ensemble: chosen, but its meta-model" in page


def test_a_stacked_ensemble_is_chosen_when_it_scores_best_beyond_the_noise_and_is_served_as_trained(
    tmp_path,
):
    from byoc import artifact, compiled, preprocessing
    from byoc.automl import stack
    from byoc.serving.inference import single_threaded

    frame = _xor_plus_city_frame().drop(columns=["value"])
    root = _root(tmp_path, frame, "label", max_runtime_seconds=600, max_candidates=3)
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(
        r"auto ensemble: stack-oof-members=3-meta=nonnegative_logistic: F1=[0-9.]+ ", result.stdout
    )

    board = _leaderboard(root)
    stacked = [row for row in board if row["family"] == stack.FAMILY]
    assert len(stacked) == 1 and stacked[0]["rank"] == "1", board
    assert float(stacked[0]["ensemble_weight"]) == 1.0 and stacked[0]["preprocessing"] == "each member's own"
    others = [float(row["objective_value"]) for row in board if row["family"] != stack.FAMILY]
    assert len(others) == 3 and float(stacked[0]["objective_value"]) > max(others)

    model = artifact.load(root / "model")
    final = model.estimator.steps[-1][1]
    assert isinstance(final, stack.StackClassifier) and len(final.members) == 3
    described = json.loads((root / "model" / "model.json").read_text())
    assert len(described["details"]["automl"]["stacked_members"]) == 3
    # every member compiled for serving, one by one (the stack's meta-model stays scikit-learn's)
    steps = described["compiled"]["steps"]
    assert [s["slot"] for s in steps] == [f"member:{name}" for name, _ in final.members]
    assert "scikit-learn" not in {s["backend"] for s in steps}, steps

    features = frame.drop(columns=["label"]).head(40)
    X = preprocessing.coerce_features(features, model.features, where="test")
    single_threaded(model.estimator)
    want = np.asarray(model.estimator.predict_proba(X))
    for environ in ({}, {"BYOC_COMPILED_INFERENCE": "off"}):
        server = serving_models.start(root, env=environ)
        try:
            response = server.invoke(
                features.to_csv(index=False, header=False),
                "text/csv",
                "application/json",
                attributes="output=predicted_label,probabilities",
            )
        finally:
            server.stop()
        assert response.status_code == 200, response.text
        served = response.json()["predictions"]
        got = np.asarray([p["probabilities"] for p in served])
        if environ:  # scikit-learn: to the bit
            np.testing.assert_array_equal(got, want)
        else:  # compiled members: within the stated tolerance
            np.testing.assert_allclose(got, want, rtol=compiled.RTOL, atol=compiled.ATOL)
        labels = [str(model.classes[i]) for i in want.argmax(axis=1)]
        assert [str(p["predicted_label"]) for p in served] == labels


def test_a_date_column_is_told_how_to_keep_its_information_and_is_still_trained_on(tmp_path):
    """A column of dates (text to the encoder, a distinct one in nearly every row) was told "an ID
    cannot generalise; drop it" in the log and exploration.json: the advice now says how to keep
    what it says (numbers derived from it before training); the columns trained on are unchanged."""
    frame = iris_frame()
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(frame)), unit="D")
    frame.insert(0, "measured_on", days.strftime("%Y-%m-%d"))
    root = _root(tmp_path, frame, "target", max_runtime_seconds=60, max_candidates=1)
    result = run_train(root)
    assert result.returncode == 0, result.stdout + result.stderr
    exploration = json.loads((root / "output" / "data" / "exploration.json").read_text())
    [warning] = [w for w in exploration["warnings"] if w["column"] == "measured_on"]
    assert warning["kind"] == "date_like", warning
    assert warning["message"].startswith("column 'measured_on' holds dates (such as '2024-01-01')")
    assert "year, month, day of week, or seconds since 1970" in warning["message"]
    assert "drop" not in warning["message"]
    assert f"exploration: {warning['message']}" in result.stdout + result.stderr
    model = json.loads((root / "model" / "model.json").read_text())
    assert "measured_on" in [f["name"] for f in model["features"]]
