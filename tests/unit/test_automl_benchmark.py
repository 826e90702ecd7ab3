"""benchmarks/automl.py's bookkeeping: which cells a resumed run skips, and the table it prints.

No AutoML system runs here: the runners are stand-ins that return fixed predictions.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import automl as bench

VERSIONS = {"scikit-learn": "1.9", "flaml": "2.8.0", "autogluon.tabular": None}


def current(system: str) -> dict[str, Any]:
    return bench.depends(system, VERSIONS)


def row(
    system: str,
    dataset: str = "wine",
    split: int = 0,
    budget: int | None = 60,
    score: float = 0.9,
    **extra: Any,
) -> dict[str, Any]:
    family = "default" if system.startswith("default:") else system
    return {
        "system": system,
        "dataset": dataset,
        "metric": "accuracy",
        "split": split,
        "budget": budget,
        "max_candidates": None,
        "score": score,
        "seconds": 61.0,
        "error": None,
        "depends": current(family),
        **extra,
    }


def test_depends_ties_auto_to_byoc_code_and_anchors_to_their_library_only() -> None:
    assert set(current("auto")) == {"scikit-learn", "byoc_auto"}
    assert set(current("default")) == {"scikit-learn", "byoc_encoder"}
    assert current("flaml") == {"flaml": "2.8.0"}
    assert current("ag-best") == {"autogluon.tabular": None}


def test_code_hash_changes_with_a_file_under_the_parts(tmp_path: Path) -> None:
    (tmp_path / "automl").mkdir()
    (tmp_path / "automl" / "search.py").write_text("A = 1\n")
    (tmp_path / "other.py").write_text("B = 1\n")
    before = bench.code_hash(["automl"], tmp_path)
    (tmp_path / "other.py").write_text("B = 2\n")
    assert bench.code_hash(["automl"], tmp_path) == before
    (tmp_path / "automl" / "search.py").write_text("A = 2\n")
    assert bench.code_hash(["automl"], tmp_path) != before


def test_pending_skips_only_cells_recorded_for_the_current_code() -> None:
    wanted = list(bench.cells(["wine"], 2, ["default", "auto", "flaml"], [60], None))
    assert len(wanted) == 6
    stale_auto = {**current("auto"), "byoc_auto": "another-code"}
    rows = [
        row("default:linear"),  # split 0's defaults: done
        row("auto", depends=stale_auto),  # split 0's auto ran other code: run again
        row("flaml", error="RuntimeError: boom", score=float("nan")),  # failed: run again
        row("flaml", split=1, depends={"flaml": "2.7.0"}),  # another FLAML: run again
        row("auto", split=1, budget=300),  # another budget: does not count
        row("auto", split=1, dataset="digits"),  # another data set: does not count
    ]
    todo = bench.pending(wanted, rows, current)
    assert [(c.split, c.system) for c in todo] == [
        (0, "auto"),
        (0, "flaml"),
        (1, "default"),
        (1, "auto"),
        (1, "flaml"),
    ]


def test_a_fixed_search_is_its_own_cell() -> None:
    wanted = list(bench.cells(["wine"], 1, ["default", "auto"], [3000], 12))
    assert wanted[1] == bench.Cell("wine", 0, "auto", 3000, 12)
    done = [row("auto", budget=3000, max_candidates=10), row("default:linear", budget=None)]
    assert bench.pending(wanted, done, current) == [wanted[1]]
    assert bench.pending(wanted, [*done, row("auto", budget=3000, max_candidates=12)], current) == []


def test_a_resumed_run_records_each_cell_and_runs_nothing_twice(tmp_path: Path, monkeypatch) -> None:
    results = tmp_path / "automl.jsonl"
    calls: list[str] = []

    def fake(name: str):
        def run(data, X_train, y_train, X_test, budget, seed, workdir) -> np.ndarray:
            calls.append(name)
            return np.zeros(len(X_test), dtype=int)

        return run

    monkeypatch.setattr(bench, "_versions", lambda: VERSIONS)
    monkeypatch.setattr(bench, "budgeted", lambda limit=None: {s: fake(s) for s in ("auto", "flaml")})
    monkeypatch.setattr(
        bench,
        "run_default",
        lambda data, X_train, y_train, X_test, seed: {"linear": np.zeros(len(X_test), dtype=int)},
    )
    argv = [
        "--datasets",
        "wine",
        "--splits",
        "2",
        "--budgets",
        "60",
        "--systems",
        "default,flaml",
        "--resume",
        "--results",
        str(results),
    ]
    bench.main(argv)
    assert calls == ["flaml", "flaml"]
    recorded = bench.load(results)
    assert [(r["system"], r["split"]) for r in recorded] == [
        ("default:linear", 0),
        ("flaml", 0),
        ("default:linear", 1),
        ("flaml", 1),
    ]
    first = recorded[1]
    assert first["depends"] == {"flaml": "2.8.0"} and first["versions"] == VERSIONS
    assert {"commit", "load_at_start", "seconds", "score", "split_seed", "cores"} <= set(first)
    bench.main(argv)  # everything recorded: nothing runs
    assert calls == ["flaml", "flaml"] and len(bench.load(results)) == 4
    bench.main([*argv[:7], "default,flaml,auto", *argv[8:]])  # a new system: only its cells
    assert calls == ["flaml", "flaml", "auto", "auto"] and len(bench.load(results)) == 6
    assert json.loads(results.read_text().splitlines()[-1])["depends"] == current("auto")


def test_table_means_each_cell_over_its_own_splits_and_drops_stale_rows() -> None:
    rows = [
        row("default:linear", budget=None, score=0.90),
        row("default:random_forest", budget=None, score=0.95),
        row("default:linear", budget=None, split=1, score=1.0),
        row("auto", score=0.5),  # recorded again below: the latest row of a split counts
        row("auto", score=0.96),
        row("auto", split=1, score=0.98),
        row("auto", split=2, score=0.1, depends={**current("auto"), "byoc_auto": "old"}),  # stale
        row("flaml", score=0.93),
        row("auto", budget=3000, max_candidates=12, score=0.97),
        row("auto", dataset="diabetes", score=55.0, metric="RMSE"),
    ]
    lines = bench.table(rows, current).splitlines()
    assert lines[0] == (
        "| data (metric) | best default (hindsight) | best single default (its mean) | auto @60 s "
        "| flaml @60 s | auto @3000 s, 12 candidates |"
    )
    # hindsight: the best default of each split (0.95, 1.0); single: linear, the one model on both
    assert lines[2] == (
        "| wine (accuracy) | 0.9750 (2 splits) | 0.9500 (linear, 2 splits) | 0.9700 (2 splits, 61 s) "
        "| 0.9300 (1 split, 61 s) | 0.9700 (1 split, 61 s) |"
    )
    assert lines[3] == "| diabetes (RMSE) | – | – | 55.00 (1 split, 61 s) | – | – |"


def test_table_with_splits_counts_only_the_first_splits() -> None:
    rows = [
        row("default:linear", budget=None, score=0.90),
        row("default:linear", budget=None, split=1, score=1.0),
        row("auto", score=0.96),
        row("auto", split=1, score=0.98),
        row("auto", budget=300, score=0.99),
    ]
    lines = bench.table(rows, current, splits=1).splitlines()
    assert lines[0].endswith("| auto @60 s | auto @300 s |")
    assert lines[2] == (
        "| wine (accuracy) | 0.9000 (1 split) | 0.9000 (linear, 1 split) | 0.9600 (1 split, 61 s) "
        "| 0.9900 (1 split, 61 s) |"
    )


def test_table_of_nothing_says_so() -> None:
    assert "no results" in bench.table([row("auto", depends={"byoc_auto": "old"})], current)


@pytest.mark.parametrize("system", bench.SYSTEMS)
def test_every_system_names_its_library(system: str) -> None:
    assert system in bench.LIBRARY


def test_best_single_default_is_the_lowest_mean_error_over_every_split() -> None:
    rows = [
        row("default:linear", budget=None, dataset="diabetes", metric="RMSE", score=55.0),
        row("default:linear", budget=None, dataset="diabetes", metric="RMSE", split=1, score=54.0),
        row("default:random_forest", budget=None, dataset="diabetes", metric="RMSE", score=60.0),
        row("default:random_forest", budget=None, dataset="diabetes", metric="RMSE", split=1, score=50.0),
        row("default:hist_gradient_boosting", budget=None, dataset="diabetes", metric="RMSE", score=40.0),
    ]  # hist_gradient_boosting misses split 1: its mean would skip it, so it does not count
    line = bench.table(rows, current).splitlines()[2]
    assert line == "| diabetes (RMSE) | 45.00 (2 splits) | 54.50 (linear, 2 splits) |"


def _git(repo: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_code_at_counts_the_rows_of_a_commits_code_after_the_code_changed(tmp_path: Path) -> None:
    """A README table measured at a commit is printed again from its rows after byoc changed."""
    repo = tmp_path / "repo"
    package = repo / "container" / "byoc"
    for part in ("automl", "algorithms"):
        (package / part).mkdir(parents=True)
        (package / part / "x.py").write_text("A = 1\n")
    for name in ("metrics.py", "preprocessing.py", "values.py"):
        (package / name).write_text("B = 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "measured")
    measured = _git(repo, "rev-parse", "HEAD")
    (package / "metrics.py").write_text("B = 2\n")  # the code changed after the rows were measured

    root = bench.package_at(measured, tmp_path / "unpacked", repo)
    assert bench.depends("auto", VERSIONS, root) != bench.depends("auto", VERSIONS, package)
    then = bench.depends("auto", VERSIONS, root)
    rows = [
        row("auto", score=0.96, depends=then),
        row("auto", split=1, score=0.5),
    ]  # the second: another code's
    lines = bench.table(rows, lambda system: bench.depends(system, VERSIONS, root)).splitlines()
    assert lines[2] == "| wine (accuracy) | 0.9600 (1 split, 61 s) |"
    with pytest.raises(SystemExit, match="--code-at nosuchcommit"):
        bench.package_at("nosuchcommit", tmp_path / "none", repo)


def test_table_with_budgets_shows_only_their_columns_and_the_defaults() -> None:
    rows = [
        row("default:linear", budget=None, score=0.90),
        row("auto", score=0.96),
        row("auto", budget=300, score=0.99),
        row("flaml", budget=300, score=0.93),
    ]
    lines = bench.table(rows, current, budgets=[60]).splitlines()
    assert lines[0].endswith("| best single default (its mean) | auto @60 s |")
    assert "0.9900" not in lines[2] and "0.9300" not in lines[2]
