"""Single-row handler cost in CPU time: the server's own decode -> predict -> encode for one CSV
row, in this process, no HTTP (the "handler in-process" column of benchmarks/serving.py, but CPU
time, so it can be judged on a loaded machine), with compiled inference as trained and forced off.

Models are trained by the real ``container/train`` on the benchmarks' synthetic data (10 numeric
+ 10 text features), as benchmarks/serving.py trains them; ``--keep DIR`` keeps the trained ML
roots there and reuses them in later runs (``--retrain`` trains again).

    .venv/bin/python benchmarks/single_row.py [--models knn,linear,ensemble] [--keep DIR]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO), str(REPO / "container")]  # run as a script from the checkout

from benchmarks.serving import MODELS, invoke_in_process, load_handler, single_row_bodies, train_model
from benchmarks.synthetic import synthetic_frame


def cpu_ms_per_call(run, calls: int, rounds: int = 5) -> float:
    """The median over ``rounds`` of the CPU time (this process) per call, in ms."""
    run()
    per_call = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            run()
        per_call.append((time.process_time() - start) / calls)
    return statistics.median(per_call) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="decision_tree,linear,knn,ensemble")
    parser.add_argument("--train-rows", type=int, default=10000)
    parser.add_argument("--calls", type=int, default=200, help="calls per timed round")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the trained ML roots here")
    parser.add_argument("--retrain", action="store_true")
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    body, _ = single_row_bodies(synthetic_frame(2000, seed=2))["csv row"]
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        print("| model | compiled inference | handler CPU ms / row | fast path |")
        print("|---|---|---|---|")
        for name in args.models.split(","):
            hyperparameters, numeric_only = MODELS[name]
            root = base / name.replace(" ", "_")
            if args.retrain or not (root / "model" / "model.json").exists():
                train_model(root, args.train_rows, hyperparameters, numeric_only)
            for switch in ("on", "off"):
                model_handler, settings = load_handler(root, BYOC_COMPILED_INFERENCE=switch)
                # One math-library thread, as each server worker after the model is loaded
                # (byoc.serving.server._post_fork): threadpoolctl limits the libraries loaded by then.
                threadpool_limits(1)
                ms = cpu_ms_per_call(
                    functools.partial(invoke_in_process, model_handler, settings, body), args.calls
                )
                fast = getattr(model_handler.predictor, "fast_path", None)
                print(f"| {name} | {switch} | {ms:.3f} | {fast} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
