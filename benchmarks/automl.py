"""AutoML benchmark: ``algorithm=auto`` against FLAML, AutoGluon-Tabular and the best default model.

Every system sees the same 70/30 split (scikit-learn's ``train_test_split``, stratified for
classification; split 0 uses random_state=1729, splits 1-4 use 1, 2, 3, 4) and is scored on the
30 % test rows by the SAME metric function: ROC AUC on the positive class's probability for the
binary sets, accuracy for wine and digits, RMSE for diabetes.

- ``auto``: in-process through ``byoc.automl.job.run`` — the fit step ``container/train`` calls —
  on features built by ``byoc.preprocessing.feature_schema`` + ``coerce_features`` (as training
  does), with ``max_runtime_seconds`` = the budget and the objective set to the benchmark metric.
  In-process rather than through ``container/train`` so the test rows are scored on the very
  estimator the job returns, with no CSV round trip; the timer starts where train's would after
  reading the channel.
- ``flaml``: ``flaml.AutoML().fit(time_budget=budget, metric=...)``, text columns as pandas
  categories.
- ``ag-medium`` / ``ag-best``: ``autogluon.tabular.TabularPredictor(eval_metric=...)
  .fit(time_limit=budget, presets="medium_quality" / "best_quality")``.
- ``default``: HistGradientBoosting, random forest and a linear model (logistic regression /
  ridge) with scikit-learn's defaults behind byoc's encoder, fitted with one OpenMP thread as
  auto's candidates are (HistGradientBoosting's spinning OpenMP threads cost minutes on a busy
  2-core machine); the table shows the best of the
  three **picked on the test split** (hindsight: a strict bar no real system gets to see).

FLAML and AutoGluon are not dependencies of byoc: they live in ``.venv-bench``, created by
``make bench-automl-venv``. The benchmark is not part of ``make test`` or CI. Usage::

    make bench-automl                                  # the full matrix (many hours on 2 cores)
    .venv-bench/bin/python benchmarks/automl.py --datasets breast_cancer,wine --splits 1 \\
        --budgets 60 --systems default,auto,flaml,ag-medium,ag-best

Each finished cell (a system on one split of one data set at one budget) is appended to
``benchmarks/results/automl.jsonl``, which is committed: the full matrix is many hours, more than
one sitting, so ``--resume`` (what ``make bench-automl`` passes) skips every cell already recorded
for the current code and runs the rest; stop it at any time (a cell is recorded when it ends) and
commit the file.  A row is valid for the current code when the byoc code it ran (a hash of
``byoc.automl``, the algorithm registry and the encoder for ``auto``; of the encoder for the
defaults; none for FLAML and AutoGluon) and the version of its own library are those installed
now.  ``--table`` prints README's table from the recorded rows of the current code, with each
cell's number of splits.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn import datasets as skdata
from sklearn.metrics import accuracy_score, mean_squared_error, roc_auc_score
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "container"))
sys.path.insert(0, str(REPO))

from benchmarks.synthetic import TARGET, synthetic_frame
from byoc import preprocessing
from byoc.artifact import BINARY, MULTICLASS, REGRESSION

# What a system's result depends on besides its library: byoc's code (paths under container/byoc).
from byoc.scoring_code import AUTO_CODE, ENCODER_CODE, code_hash

SPLIT_SEEDS = (1729, 1, 2, 3, 4)
TEST_SIZE = 0.3
RESULTS = HERE / "results" / "automl.jsonl"
LIBRARY = {
    "default": "scikit-learn",
    "auto": "scikit-learn",
    "auto-nostack": "scikit-learn",
    "flaml": "flaml",
    "ag-medium": "autogluon.tabular",
    "ag-best": "autogluon.tabular",
}
SYSTEMS = ("default", "auto", "auto-nostack", "flaml", "ag-medium", "ag-best")
BANK_MARKETING = ("shared/datasets/bank_marketing.csv",)


@dataclass(frozen=True)
class Metric:
    name: str  # as the table shows it
    auto: str  # byoc's objective_metric
    flaml: str
    autogluon: str
    maximise: bool


AUC = Metric("ROC AUC", "AUC", "roc_auc", "roc_auc", True)
ACCURACY = Metric("accuracy", "Accuracy", "accuracy", "accuracy", True)
RMSE = Metric("RMSE", "RMSE", "rmse", "root_mean_squared_error", False)


@dataclass
class Data:
    X: pd.DataFrame
    y: np.ndarray  # classification: codes 0..k-1 (the positive class of a binary set is 1)
    problem_type: str
    metric: Metric


def score(metric: Metric, y_true: np.ndarray, predicted: np.ndarray) -> float:
    """The one metric function every system is scored with; ``predicted`` is the positive
    class's probability for AUC, labels for accuracy, values for RMSE."""
    if metric is AUC:
        return float(roc_auc_score(y_true, predicted))
    if metric is ACCURACY:
        return float(accuracy_score(y_true, predicted))
    return float(math.sqrt(mean_squared_error(y_true, predicted)))


def _encoded(target: pd.Series) -> np.ndarray:
    return np.unique(target.astype(str).to_numpy(), return_inverse=True)[1]


def _sklearn(loader: Callable[..., Any], problem_type: str, metric: Metric) -> Data:
    bunch = loader(as_frame=True)
    return Data(bunch.data, bunch.target.to_numpy(), problem_type, metric)


def _synthetic() -> Data:
    frame = synthetic_frame(100_000, seed=7)
    return Data(frame.drop(columns=[TARGET]), _encoded(frame[TARGET]), BINARY, AUC)


def bank_marketing_path() -> Path | None:
    """The shared UCI file when a shared/ folder stands beside this checkout or beside its parent (a git
    worktree's), or BYOC_BANK_MARKETING names it."""
    candidates = [Path(os.environ["BYOC_BANK_MARKETING"])] if "BYOC_BANK_MARKETING" in os.environ else []
    for parent in REPO.parents[:2]:
        candidates += [parent / p for p in BANK_MARKETING]
    return next((p for p in candidates if p.is_file()), None)


def _bank() -> Data:
    path = bank_marketing_path()
    if path is None:
        raise FileNotFoundError("bank_marketing.csv not found (set BYOC_BANK_MARKETING)")
    frame = pd.read_csv(path)
    return Data(frame.drop(columns=["deposit"]), _encoded(frame["deposit"]), BINARY, AUC)


LOADERS: dict[str, Callable[[], Data]] = {
    "breast_cancer": lambda: _sklearn(skdata.load_breast_cancer, BINARY, AUC),
    "wine": lambda: _sklearn(skdata.load_wine, MULTICLASS, ACCURACY),
    "digits": lambda: _sklearn(skdata.load_digits, MULTICLASS, ACCURACY),
    "diabetes": lambda: _sklearn(skdata.load_diabetes, REGRESSION, RMSE),
    "synthetic_100k": _synthetic,
    "bank_marketing": _bank,
}


def _output(data: Data, model: Any, X_test: Any) -> np.ndarray:
    """What the metric takes from a fitted estimator with the scikit-learn interface."""
    if data.metric is AUC:
        return np.asarray(model.predict_proba(X_test))[:, 1]
    return np.asarray(model.predict(X_test))


# -- systems: each takes (data, train, test, budget, seed) and returns the test predictions ------
def run_default(data: Data, X_train: pd.DataFrame, y_train: np.ndarray, X_test: pd.DataFrame, seed: int):
    """Each default model's test score; the caller keeps the best (hindsight)."""
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline

    features = preprocessing.feature_schema(X_train)
    train = preprocessing.coerce_features(X_train, features, where="train")
    test = preprocessing.coerce_features(X_test, features, where="test")
    regression = data.problem_type == REGRESSION
    models = {
        "hist_gradient_boosting": (
            HistGradientBoostingRegressor(random_state=seed)
            if regression
            else HistGradientBoostingClassifier(random_state=seed),
            "ordinal",
            False,
        ),
        "random_forest": (
            RandomForestRegressor(n_jobs=-1, random_state=seed)
            if regression
            else RandomForestClassifier(n_jobs=-1, random_state=seed),
            "ordinal",
            False,
        ),
        "linear": (Ridge() if regression else LogisticRegression(max_iter=1000), "onehot", True),
    }
    scores = {}
    for name, (estimator, categorical, scale) in models.items():
        pipeline = make_pipeline(
            preprocessing.build_preprocessor(features, scale=scale, categorical=categorical), estimator
        )
        with threadpool_limits(
            limits=1, user_api="openmp"
        ):  # as auto's folds: OpenMP spin-waits on a busy machine
            pipeline.fit(train, y_train)
        scores[name] = _output(data, pipeline, test)
    return scores


def _run_auto(stack: bool, max_candidates: int | None):
    def run(data: Data, X_train, y_train, X_test, budget: float, seed: int, workdir: Path) -> np.ndarray:
        return run_auto(
            data, X_train, y_train, X_test, budget, seed, workdir, stack=stack, max_candidates=max_candidates
        )

    return run


def run_auto(
    data: Data,
    X_train,
    y_train,
    X_test,
    budget: float,
    seed: int,
    workdir: Path,
    *,
    stack: bool = True,
    max_candidates: int | None = None,
) -> np.ndarray:
    from byoc.automl import job

    started = time.monotonic()  # where train's timer would be once the channel is read
    features = preprocessing.feature_schema(X_train)
    train = preprocessing.coerce_features(X_train, features, where="train")
    test = preprocessing.coerce_features(X_test, features, where="test")
    classes = None if data.problem_type == REGRESSION else sorted(set(y_train.tolist()))
    result = job.run(
        train,
        y_train,
        problem_type=data.problem_type,
        features=features,
        classes=classes,
        settings=job.AutoSettings(
            max_runtime_seconds=budget,
            objective_metric=data.metric.auto,
            seed=seed,
            max_candidates=max_candidates,
            stack=stack,
        ),
        output_dir=workdir,
        started=started,
        stop=job.StopRequest(),
    )
    return _output(data, result.estimator, test)


def _categories(X: pd.DataFrame) -> pd.DataFrame:
    X = X.copy()
    for column in X.columns:
        if X[column].dtype == object:
            X[column] = X[column].astype("category")
    return X


def run_flaml(data: Data, X_train, y_train, X_test, budget: float, seed: int, workdir: Path) -> np.ndarray:
    from flaml import AutoML

    automl = AutoML()
    task = "regression" if data.problem_type == REGRESSION else "classification"
    train = _categories(X_train)
    test = _categories(X_test)
    for column in train.columns:  # the test frame must carry the training categories
        if isinstance(train[column].dtype, pd.CategoricalDtype):
            test[column] = pd.Categorical(test[column], categories=train[column].cat.categories)
    automl.fit(
        train,
        y_train,
        task=task,
        metric=data.metric.flaml,
        time_budget=budget,
        seed=seed,
        verbose=0,
        log_file_name=str(workdir / "flaml.log"),
    )
    return _output(data, automl, test)


def _run_autogluon(preset: str):
    def run(data: Data, X_train, y_train, X_test, budget: float, seed: int, workdir: Path) -> np.ndarray:
        from autogluon.tabular import TabularPredictor

        label = "__target__"
        problem = {BINARY: "binary", MULTICLASS: "multiclass", REGRESSION: "regression"}[data.problem_type]
        predictor = TabularPredictor(
            label=label,
            problem_type=problem,
            eval_metric=data.metric.autogluon,
            path=str(workdir / "autogluon"),
            verbosity=0,
        )
        predictor.fit(X_train.assign(**{label: y_train}), time_limit=budget, presets=preset)
        if data.metric is AUC:
            return predictor.predict_proba(X_test, as_multiclass=False).to_numpy()
        return predictor.predict(X_test).to_numpy()

    return run


def budgeted(max_candidates: int | None = None) -> dict[str, Callable[..., np.ndarray]]:
    """The budgeted systems by name; ``max_candidates`` fixes auto's search (see --max-candidates)."""
    return {
        "auto": _run_auto(True, max_candidates),
        "auto-nostack": _run_auto(False, max_candidates),
        "flaml": run_flaml,
        "ag-medium": _run_autogluon("medium_quality"),
        "ag-best": _run_autogluon("best_quality"),
    }


def depends(system: str, versions: dict[str, str | None], root: Path | None = None) -> dict[str, str | None]:
    """What a system's result depends on: byoc's code for ``auto`` (search, registry, encoder)
    and the defaults (the encoder), and the version of the system's own library.  ``root`` is the
    byoc package whose code counts (by default the one installed; see :func:`package_at`)."""
    out: dict[str, str | None] = {LIBRARY[system]: versions.get(LIBRARY[system])}
    if system.startswith("auto"):
        out["byoc_auto"] = code_hash(AUTO_CODE, root)
    elif system == "default":
        out["byoc_encoder"] = code_hash(ENCODER_CODE, root)
    return out


def package_at(commit: str, dest: Path, repo: Path = REPO) -> Path:
    """byoc's package as ``commit`` holds it, unpacked under ``dest`` (``git archive``), so that
    ``--table --code-at`` counts the rows recorded for that code: a README table measured at a
    commit stays reproducible after later changes to the code its rows depend on."""
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", "--format=tar", commit, "container/byoc"],
        capture_output=True,
    )
    if archive.returncode != 0:
        raise SystemExit(f"--code-at {commit}: {archive.stderr.decode(errors='replace').strip()}")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "container" / "byoc"


@dataclass(frozen=True)
class Cell:
    """One unit of the matrix: a system on one split of one data set at one budget (None for the
    defaults, which have no budget); ``max_candidates`` only for auto's fixed searches."""

    dataset: str
    split: int
    system: str
    budget: int | None
    max_candidates: int | None = None


def cell_of(row: dict[str, Any]) -> Cell:
    system = "default" if row["system"].startswith("default:") else row["system"]
    budget = None if system == "default" or row.get("budget") is None else int(row["budget"])
    limit = row.get("max_candidates") if system.startswith("auto") else None
    return Cell(row["dataset"], int(row["split"]), system, budget, limit)


def cells(
    datasets: list[str], splits: int, systems: list[str], budgets: list[int], max_candidates: int | None
) -> Iterator[Cell]:
    """The matrix in the order it runs: data set, split, the defaults, then budget x system."""
    for dataset in datasets:
        for split in range(splits):
            if "default" in systems:
                yield Cell(dataset, split, "default", None)
            for budget in budgets:
                for system in (s for s in systems if s != "default"):
                    yield Cell(
                        dataset, split, system, budget, max_candidates if system.startswith("auto") else None
                    )


def valid(row: dict[str, Any], current: Callable[[str], dict[str, str | None]]) -> bool:
    """A finished row (no error) recorded with what its system depends on now."""
    if row.get("error") or not math.isfinite(row.get("score", float("nan"))):
        return False
    return row.get("depends") == current(cell_of(row).system)


def pending(
    wanted: Iterable[Cell], rows: Iterable[dict[str, Any]], current: Callable[[str], dict[str, str | None]]
) -> list[Cell]:
    """The wanted cells no valid row records yet (``--resume``)."""
    done = {cell_of(row) for row in rows if valid(row, current)}
    return [cell for cell in wanted if cell not in done]


def load(path: Path = RESULTS) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _record(row: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def _split(data: Data, split: int) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    X_train, X_test, y_train, y_test = train_test_split(
        data.X,
        data.y,
        test_size=TEST_SIZE,
        random_state=SPLIT_SEEDS[split],
        stratify=None if data.problem_type == REGRESSION else data.y,
    )
    return X_train, X_test, y_train, y_test


def run_cell(
    cell: Cell, data: Data, seed: int, systems: dict[str, Callable[..., np.ndarray]]
) -> list[dict[str, Any]]:
    """Run one cell; its rows (one per default model, else one) without the run's metadata."""
    X_train, X_test, y_train, y_test = _split(data, cell.split)
    base = {
        "dataset": cell.dataset,
        "metric": data.metric.name,
        "split": cell.split,
        "split_seed": SPLIT_SEEDS[cell.split],
        "budget": cell.budget,
        "max_candidates": cell.max_candidates,
        "load_at_start": round(os.getloadavg()[0], 1),
    }
    started = time.monotonic()
    if cell.system == "default":
        per_model = run_default(data, X_train, y_train, X_test, seed=seed)
        seconds = round(time.monotonic() - started, 1)
        return [
            {
                **base,
                "system": f"default:{model}",
                "score": score(data.metric, y_test, predicted),
                "seconds": seconds,
                "error": None,
            }
            for model, predicted in per_model.items()
        ]
    with tempfile.TemporaryDirectory(prefix=f"automl-bench-{cell.system}-") as tmp:
        try:
            predicted = systems[cell.system](
                data, X_train, y_train, X_test, float(cell.budget or 0), seed, Path(tmp)
            )
            value, error = score(data.metric, y_test, predicted), None
        except Exception as exc:  # a failing system is a result (recorded, run again on --resume)
            logging.getLogger("benchmarks.automl").warning("%s failed", cell.system, exc_info=True)
            value, error = float("nan"), f"{type(exc).__name__}: {exc}"
    return [
        {
            **base,
            "system": cell.system,
            "score": value,
            "seconds": round(time.monotonic() - started, 1),
            "error": error,
        }
    ]


def run_matrix(
    todo: list[Cell],
    meta: dict[str, Any],
    *,
    seed: int = 0,
    path: Path = RESULTS,
    systems: Callable[[int | None], dict[str, Callable[..., np.ndarray]]] | None = None,
) -> list[dict[str, Any]]:
    """Run ``todo`` in order, appending each cell's rows (with ``meta`` and what the system
    depends on) to ``path`` as soon as the cell ends; ``systems(max_candidates)`` names the runners."""
    rows: list[dict[str, Any]] = []
    loaded: dict[str, Data] = {}
    for cell in todo:
        if cell.dataset == "bank_marketing" and bank_marketing_path() is None:
            print("bank_marketing: ../shared/datasets/bank_marketing.csv not present; skipped", flush=True)
            continue
        if cell.dataset not in loaded:
            loaded[cell.dataset] = LOADERS[cell.dataset]()
        runners = (systems or budgeted)(cell.max_candidates)
        for row in run_cell(cell, loaded[cell.dataset], seed, runners):
            row.update(meta, depends=depends(cell.system, meta["versions"]))
            rows.append(row)
            _record(row, path)
    return rows


def table(
    rows: list[dict[str, Any]],
    current: Callable[[str], dict[str, str | None]] | None = None,
    splits: int | None = None,
    budgets: Iterable[int] | None = None,
) -> str:
    """Markdown: one row per data set; per system and budget the mean over its splits, the number
    of splits and (budgeted systems) the mean wall seconds.  With ``current``, only rows valid for
    the code it describes count; a split recorded twice counts once (its latest row).  With
    ``splits``, only the first ``splits`` splits count, so that a budget measured on fewer splits
    (300 s on one) is set beside the others on the same test rows, not beside a mean of five.  With
    ``budgets``, only those budgets' columns (the defaults have none and always count)."""
    if current is not None:
        rows = [row for row in rows if valid(row, current)]
    if splits is not None:
        rows = [row for row in rows if int(row["split"]) < splits]
    if budgets is not None:
        kept = set(budgets)
        rows = [row for row in rows if row.get("budget") is None or int(row["budget"]) in kept]
    latest: dict[tuple[Cell, str], dict[str, Any]] = {}
    for row in rows:
        latest[(cell_of(row), row["system"])] = row
    frame = pd.DataFrame(list(latest.values()))
    if frame.empty:
        return "(no results recorded for this code)"
    frame["max_candidates"] = frame["max_candidates"].where(frame.system.str.startswith("auto"), None)
    columns: list[tuple[str, Any, Any]] = []
    if frame.system.str.startswith("default:").any():
        columns += [("default", None, None), ("default-single", None, None)]
    budgeted_rows = frame[~frame.system.str.startswith("default:")]
    keys = {
        (s, int(b), None if pd.isna(m) else int(m))
        for s, b, m in budgeted_rows[["system", "budget", "max_candidates"]].itertuples(index=False)
    }
    order = list(SYSTEMS)
    columns += sorted(keys, key=lambda k: (k[1], k[2] or 0, order.index(k[0])))
    header = ["data (metric)"] + [
        HEADERS.get(s) or f"{s} @{b} s" + (f", {m} candidates" if m else "") for s, b, m in columns
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for dataset, group in frame.groupby("dataset", sort=False):
        maximise = group["metric"].iloc[0] != RMSE.name
        cells_out = [f"{dataset} ({group['metric'].iloc[0]})"]
        for system, budget, limit in columns:
            if system == "default":
                per_split = group[group.system.str.startswith("default:")].groupby("split")["score"]
                best = per_split.max() if maximise else per_split.min()
                cells_out.append(_cell(best, maximise))
            elif system == "default-single":
                cells_out.append(_best_single_default(group, maximise))
            else:
                chosen = group[(group.system == system) & (group.budget == budget)]
                chosen = (
                    chosen[chosen.max_candidates.isna()]
                    if limit is None
                    else chosen[chosen.max_candidates == limit]
                )
                cells_out.append(_cell(chosen["score"], maximise, chosen["seconds"]))
        lines.append("| " + " | ".join(cells_out) + " |")
    return "\n".join(lines)


HEADERS = {
    "default": "best default (hindsight)",
    "default-single": "best single default (its mean)",
}


def _best_single_default(group: pd.DataFrame, maximise: bool) -> str:
    """The one default model with the best mean over the data set's splits (hindsight over the
    splits, not per split): a bar one fixed choice of model reaches.  Only models recorded on
    every split the defaults have count, so that no mean skips a hard split."""
    defaults = group[group.system.str.startswith("default:")]
    if defaults.empty:
        return "–"
    splits = set(defaults["split"])
    means = {
        system.removeprefix("default:"): scores["score"].mean()
        for system, scores in defaults.groupby("system", sort=True)
        if set(scores["split"]) == splits
    }
    if not means:
        return "–"
    name = (max if maximise else min)(means, key=lambda model: means[model])
    return f"{_fmt(means[name], maximise)} ({name}, {len(splits)} split{'s' if len(splits) != 1 else ''})"


def _cell(scores: pd.Series, maximise: bool, seconds: pd.Series | None = None) -> str:
    """``mean (n splits[, mean wall s])``, or a dash for a cell with no result."""
    if scores.empty:
        return "–"
    wall = "" if seconds is None else f", {seconds.mean():.0f} s"
    return f"{_fmt(scores.mean(), maximise)} ({len(scores)} split{'s' if len(scores) != 1 else ''}{wall})"


def _fmt(value: float, maximise: bool) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.4f}" if maximise else f"{value:.2f}"


def _versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for package in ("scikit-learn", "flaml", "autogluon.tabular", "lightgbm", "xgboost", "catboost", "torch"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="all", help=f"comma-separated, or all: {','.join(LOADERS)}")
    parser.add_argument(
        "--splits",
        type=int,
        default=len(SPLIT_SEEDS),
        help="how many of the five splits (seed 1729 first); with --table, only these splits count",
    )
    parser.add_argument(
        "--budgets",
        default="60,300",
        help="comma-separated seconds; with --table, only these budgets' columns",
    )
    parser.add_argument("--systems", default="all", help=f"comma-separated, or all: {','.join(SYSTEMS)}")
    parser.add_argument("--seed", type=int, default=0, help="the systems' own random seed")
    parser.add_argument(
        "--max-candidates",
        type=int,
        default=None,
        help="auto: score this many candidates (with a budget large enough), so that auto's variants "
        "are compared on the same search whatever the machine's load",
    )
    parser.add_argument(
        "--resume", action="store_true", help="skip the cells already recorded for the current code"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help=f"the results file (default {RESULTS.relative_to(REPO)})",
    )
    parser.add_argument(
        "--table", action="store_true", help="only print the table of the rows recorded for the current code"
    )
    parser.add_argument(
        "--code-at",
        metavar="COMMIT",
        help="with --table: count the rows recorded for byoc's code as COMMIT holds it (auto's search "
        "and the defaults' encoder), not as it is on disk; the anchors' rows count as without it",
    )
    args = parser.parse_args(argv)
    versions = _versions()

    def current(system: str) -> dict[str, str | None]:
        return depends(system, versions)

    datasets = list(LOADERS) if args.datasets == "all" else args.datasets.split(",")
    systems = list(SYSTEMS) if args.systems == "all" else args.systems.split(",")
    budgets = [int(b) for b in args.budgets.split(",")]
    unknown = (set(datasets) - set(LOADERS)) | (set(systems) - set(SYSTEMS))
    if unknown or not 1 <= args.splits <= len(SPLIT_SEEDS):
        parser.error(f"unknown {sorted(unknown)} or --splits outside 1..{len(SPLIT_SEEDS)}")
    if args.table:
        if args.code_at is None:
            print(table(load(args.results), current, args.splits, budgets))
            return
        with tempfile.TemporaryDirectory() as tmp:
            root = package_at(args.code_at, Path(tmp))
            print(
                table(
                    load(args.results), lambda system: depends(system, versions, root), args.splits, budgets
                )
            )
        return
    logging.basicConfig(level=logging.WARNING)
    wanted = list(cells(datasets, args.splits, systems, budgets, args.max_candidates))
    todo = pending(wanted, load(args.results), current) if args.resume else wanted
    meta = {"commit": _commit(), "cores": os.cpu_count(), "versions": versions}
    print(json.dumps({**meta, "argv": sys.argv[1:], "cells": len(wanted), "to_run": len(todo)}), flush=True)
    rows = run_matrix(todo, meta, seed=args.seed, path=args.results)
    print(table(rows))


def _commit() -> str:
    """HEAD's short hash, with ``+`` when byoc's code differs from it (the rows' ``depends``
    hashes say exactly which code ran)."""
    git = ["git", "-C", str(REPO)]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "container/byoc"], capture_output=True)
    return head + ("+" if dirty.returncode == 1 else "")


if __name__ == "__main__":
    main()
