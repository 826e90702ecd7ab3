"""Training benchmark: channel read time against the raw libraries, fit time, peak memory.

For 10k, 100k and 1M synthetic rows x 20 feature columns (10 numeric, 10 text categorical)
plus a text target, written as headerless target-first CSV (the built-in algorithms'
convention) and as Parquet, it measures in ONE run on the same machine:

- raw read: the fastest of ``pyarrow.csv.read_csv(...).to_pandas()`` and ``pandas.read_csv``
  (Parquet: ``pyarrow.parquet.read_table(...).to_pandas()`` and ``pandas.read_parquet``);
- byoc read: ``byoc.data.read_channel`` on an ML root whose train channel holds the file;
- fit: ``container/train`` as a real process (default algorithm unless --algorithm), wall time;
- peak memory: peak RSS of the train process, the in-memory frame size
  (``DataFrame.memory_usage(deep=True)``) and the ratio of (peak RSS - RSS after imports) to it.

Every measurement runs in a fresh subprocess so peak RSS is its own.  Usage::

    .venv/bin/python benchmarks/training.py                 # 10k, 100k, 1M rows
    .venv/bin/python benchmarks/training.py --rows 10000    # quick look
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO), str(REPO / "container")]  # run as a script from the checkout

from benchmarks.synthetic import dataset
from support import make_ml_root, run_train

REPEATS = 3


def ml_root(base: Path, data_file: Path, fmt: str, hyperparameters: dict[str, str]) -> Path:
    content_type = "text/csv" if fmt == "csv" else "application/x-parquet"
    root = make_ml_root(
        base, channels={"train": {}}, hyperparameters=hyperparameters, content_types={"train": content_type}
    )
    (root / "input" / "data" / "train" / data_file.name).symlink_to(data_file)
    return root


# --- measurements, each run in its own process ------------------------------------------------


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_raw(path: str, fmt: str) -> dict:
    import pandas as pd
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    timings = {}
    for name, read in (
        (
            "pyarrow",
            (
                lambda: pacsv.read_csv(
                    path, read_options=pacsv.ReadOptions(autogenerate_column_names=True)
                ).to_pandas()
            )
            if fmt == "csv"
            else (lambda: pq.read_table(path).to_pandas()),
        ),
        (
            "pandas",
            (lambda: pd.read_csv(path, header=None)) if fmt == "csv" else (lambda: pd.read_parquet(path)),
        ),
    ):
        best = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            frame = read()
            best = min(best, time.perf_counter() - start)
            del frame
        timings[name] = best
    return {"seconds": min(timings.values()), "by_library": timings}


def measure_byoc(path: str, fmt: str) -> dict:
    from byoc.data import read_channel
    from byoc.environment import MLPaths, TrainingEnvironment

    with tempfile.TemporaryDirectory() as tmp:
        root = ml_root(Path(tmp), Path(path), fmt, {})
        env = TrainingEnvironment.from_files(MLPaths(root), environ={})
        best = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            data = read_channel(env, "train")
            best = min(best, time.perf_counter() - start)
        frame_bytes = int(data.frame.memory_usage(deep=True).sum())
    return {"seconds": best, "frame_bytes": frame_bytes, "shape": list(data.frame.shape)}


def measure_imports() -> dict:
    """RSS of a process that has imported what training imports: the floor of every run."""
    for module in ("sklearn.ensemble", "sklearn.tree", "byoc.training"):
        importlib.import_module(module)
    return {"peak_rss": _peak_rss_bytes()}


def measure_train(path: str, fmt: str, algorithm: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = ml_root(Path(tmp), Path(path), fmt, {"algorithm": algorithm})
        start = time.perf_counter()
        proc = run_train(root, timeout=6 * 3600)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            failure = root / "output" / "failure"
            reason = failure.read_text()[:500] if failure.exists() else proc.stderr[-2000:]
            raise SystemExit(f"train failed on {path}: {reason}")
        metrics = json.loads((root / "output" / "data" / "metrics.json").read_text())
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"seconds": seconds, "peak_rss": peak, "metrics": metrics}


def _run(kind: str, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--measure", kind, *args], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"measurement {kind} {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="10000,100000,1000000")
    parser.add_argument("--formats", default="csv,parquet")
    parser.add_argument("--algorithm", default="decision_tree")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:
        kind, *rest = args.measure
        result = {
            "raw": measure_raw,
            "byoc": measure_byoc,
            "train": measure_train,
            "imports": measure_imports,
        }[kind](*rest)
        print(json.dumps(result))
        return 0

    floor = _run("imports")["peak_rss"]
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; import floor RSS {_mb(floor)}; "
        f"algorithm {args.algorithm}; best of {REPEATS} reads"
    )
    header = (
        "| rows | format | file | raw read | byoc read | read ratio | fit (train process) "
        "| frame in memory | peak RSS | (peak - floor) / frame |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    results = []
    for rows in (int(r) for r in args.rows.split(",")):
        for fmt in args.formats.split(","):
            path = dataset(rows, fmt)
            raw = _run("raw", str(path), fmt)
            ours = _run("byoc", str(path), fmt)
            train = _run("train", str(path), fmt, args.algorithm)
            ratio = ours["seconds"] / raw["seconds"]
            mem_ratio = (train["peak_rss"] - floor) / ours["frame_bytes"]
            results.append(
                {
                    "rows": rows,
                    "format": fmt,
                    "file_bytes": path.stat().st_size,
                    "raw": raw,
                    "byoc": ours,
                    "train": train,
                    "import_floor": floor,
                    "read_ratio": ratio,
                    "memory_ratio": mem_ratio,
                }
            )
            print(
                f"| {rows:,} | {fmt} | {_mb(path.stat().st_size)} | {raw['seconds']:.3f} s "
                f"| {ours['seconds']:.3f} s | {ratio:.2f}x | {train['seconds']:.1f} s "
                f"| {_mb(ours['frame_bytes'])} | {_mb(train['peak_rss'])} | {mem_ratio:.2f}x |",
                flush=True,
            )
    print("\naims: read ratio <= 1.2x; (peak - floor) / frame < 3x")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
