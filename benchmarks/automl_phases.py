"""Where ``auto``'s wall time goes in ``benchmarks/automl.py``: the job or the benchmark.

The AutoML benchmark times each system from the start of its run to its test-set predictions,
so ``auto``'s figure holds ``byoc.automl.job.run`` (the job: search, refit, report) and the
benchmark's own encoding and prediction of the test rows.  This runs ``auto`` exactly as the
benchmark does, on split 0 (random_state=1729), with the job's log lines stamped with seconds
since the start, and prints one line per data set separating the two: ``run_end`` (when
``job.run`` returned; past the budget, the log above it says which phase ran long) and
``after_run`` (the benchmark's own share).  ``--root`` runs another checkout's code (e.g. an
older commit unpacked with ``git archive COMMIT container benchmarks | tar -x -C DIR``)::

    .venv/bin/python benchmarks/automl_phases.py --datasets breast_cancer,bank_marketing --budget 60

Wall seconds depend on the machine's load: compare ``run_end`` with the budget, not with
another machine's figure.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class _SinceStart(logging.Formatter):
    def __init__(self, start: list[float]) -> None:
        super().__init__()
        self.start = start

    def format(self, record: logging.LogRecord) -> str:
        return f"{time.monotonic() - self.start[0]:7.1f} {record.getMessage()[:160]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default="breast_cancer,bank_marketing")
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument(
        "--root", type=Path, default=REPO, help="the checkout whose container/ and benchmarks/ run"
    )
    args = parser.parse_args(argv)
    sys.path[:0] = [str(args.root / "container"), str(args.root / "benchmarks")]
    import automl as bench
    from sklearn.model_selection import train_test_split

    from byoc.automl import job

    start = [0.0]
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_SinceStart(start))
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    run = job.run
    returned: list[float] = []

    def timed_run(*a, **k):
        try:
            return run(*a, **k)
        finally:
            returned.append(time.monotonic() - start[0])

    job.run = timed_run
    for name in args.datasets.split(","):
        data = bench.LOADERS[name]()
        X_train, X_test, y_train, y_test = train_test_split(
            data.X,
            data.y,
            test_size=bench.TEST_SIZE,
            random_state=bench.SPLIT_SEEDS[0],
            stratify=None if data.problem_type == "regression" else data.y,
        )
        start[0] = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="automl-phases-") as tmp:
            predicted = bench.run_auto(data, X_train, y_train, X_test, args.budget, 0, Path(tmp))
        total = time.monotonic() - start[0]
        print(
            f"{name}: budget {args.budget:.0f} s, total {total:.1f} s, run_end {returned[-1]:.1f} s, "
            f"after_run {total - returned[-1]:.1f} s, {data.metric.name} "
            f"{bench.score(data.metric, y_test, predicted):.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
