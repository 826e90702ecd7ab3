"""CSV request bodies up to 64 KiB: the csv module's path against pyarrow's, and decode() as it
chooses against decode() on the csv module's path alone ("old": what it did before bodies of enough
rows took pyarrow's).

Process CPU per decode (every thread: pyarrow's reader starts one), in this process with the
allocator settings a worker runs with; the variants take turns at going first round after round,
and each figure is the median of the rounds (a ratio: the median of the rounds' ratios), so a
loaded machine moves it little.  ``--shapes`` measures both paths for schemas of other widths and
kinds: the costs byoc.serving.codecs.csv's choice (``_arrow_pays``) is fitted to; ``--handler``
the whole handler ``serve`` runs (decode -> predict -> encode, decision_tree of
benchmarks/serving.py, trained into its model cache), its answers compared byte for byte.

    .venv/bin/python benchmarks/csv_paths.py [--rows 1,20,70,100,200,340] [--rounds 9] [--shapes | --handler]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO), str(REPO / "container")]  # run as a script from the checkout

if __name__ == "__main__":  # as a worker: Arrow's allocator reads this when pyarrow loads
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "10000")


def cpu_per_call(fn: Callable[[], object], budget: float) -> float:
    """Process CPU (us) of one call of ``fn``, over about ``budget`` seconds of calls."""
    start = time.process_time()
    fn()
    calls = max(3, int(budget / max(time.process_time() - start, 1e-6)))
    start = time.process_time()
    for _ in range(calls):
        fn()
    return (time.process_time() - start) / calls * 1e6


def schema_and_rows(numbers: int, texts: int, rows: int):
    """A schema of ``numbers`` numeric and ``texts`` text features and a frame of ``rows`` rows
    of the benchmarks' kind of values (5 numeric places; 5-14 levels per text column)."""
    import numpy as np
    import pandas as pd

    from benchmarks.synthetic import TARGET, synthetic_frame
    from byoc.artifact import Feature
    from byoc.serving.schema import RequestSchema

    if (numbers, texts) == (10, 10):  # the benchmarks' own features
        frame = synthetic_frame(rows, seed=1).drop(columns=[TARGET])
    else:
        rng = np.random.default_rng(1)
        columns: dict[str, object] = {f"num_{i}": np.round(rng.normal(size=rows), 5) for i in range(numbers)}
        for i in range(texts):
            levels = np.array([f"level_{i}_{k}" for k in range(5 + i % 10)])
            columns[f"cat_{i}"] = levels[rng.integers(0, len(levels), rows)]
        frame = pd.DataFrame(columns)
    schema = RequestSchema(
        [
            Feature(c, "numeric", "float64")
            if frame[c].dtype.kind == "f"
            else Feature(c, "categorical", "str", tuple(sorted(set(frame[c]))))  # as training records them
            for c in frame.columns
        ]
    )
    return schema, frame


def measure(
    variants: dict[str, Callable[[bytes], object]], bodies: dict[int, bytes], rounds: int, budget: float
):
    """{rows: {variant: [us per round]}}, the variants alternating which goes first."""
    results: dict[int, dict[str, list[float]]] = {}
    for r in range(rounds):
        for rows, body in bodies.items():
            items = list(variants.items())
            for name, fn in items if r % 2 == 0 else items[::-1]:
                results.setdefault(rows, {}).setdefault(name, []).append(
                    cpu_per_call(functools.partial(fn, body), budget)
                )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="1,20,70,100,200,340", help="rows of each body, comma-separated")
    parser.add_argument("--rounds", type=int, default=9, help="rounds of every body and variant")
    parser.add_argument("--budget", type=float, default=0.05, help="seconds of calls per figure")
    parser.add_argument(
        "--shapes",
        nargs="?",
        const="10+10,2+0,0+2,1+1,100+0,0+50,50+50",
        help="both paths for these schemas (numeric+text columns, comma-separated)",
    )
    parser.add_argument("--handler", action="store_true", help="the whole handler, not decode() alone")
    args = parser.parse_args()
    from benchmarks.harness import commit
    from byoc.serving.codecs import csv as codec
    from byoc.serving.memory import WORKER_ALLOCATOR

    WORKER_ALLOCATOR.apply()
    sizes = [int(n) for n in args.rows.split(",")]
    print(f"commit {commit()}; process CPU per decode, median of {args.rounds} alternating rounds\n")
    if args.shapes:
        for shape in args.shapes.split(","):
            numbers, texts = map(int, shape.split("+"))
            schema, frame = schema_and_rows(numbers, texts, max(sizes))
            bodies = {n: frame.iloc[:n].to_csv(header=False, index=False).encode() for n in sizes}
            paths = {
                "csv module": lambda b, schema=schema: codec._decode_small(
                    codec._text(b), schema, 0, None, True
                ),
                "pyarrow": lambda b, schema=schema: codec._decode_fast(b, schema, 0, None, True),
            }
            results = measure(paths, bodies, args.rounds, args.budget)
            print(f"{numbers} numeric + {texts} text columns")
            print(f"{'rows':>5} {'bytes':>7} {'csv module':>12} {'pyarrow':>12} {'chosen':>8}")
            for n, got in results.items():
                chosen = "pyarrow" if codec._arrow_pays(bodies[n], schema) else "csv"
                print(
                    f"{n:5d} {len(bodies[n]):7d} {statistics.median(got['csv module']):9.1f} us"
                    f" {statistics.median(got['pyarrow']):9.1f} us {chosen:>8}"
                )
            print()
        return 0
    schema, frame = schema_and_rows(10, 10, max(sizes))
    bodies = {n: frame.iloc[:n].to_csv(header=False, index=False).encode() for n in sizes}

    chooses = codec._arrow_pays

    def never(body: bytes, schema: object) -> bool:
        return False

    run: Callable[[bytes], object] = functools.partial(codec.decode, schema=schema)
    if args.handler:
        from benchmarks import serving
        from benchmarks.synthetic import DATA

        hyperparameters, numeric_only = serving.MODELS["decision_tree"]
        cache = DATA / "models" / f"{serving.training_commit()}-10000"
        root = serving.train_model(cache / "decision_tree", 10_000, hyperparameters, numeric_only)
        handler, settings = serving.load_handler(root)
        run = functools.partial(serving.invoke_in_process, handler, settings)

    def old(body: bytes) -> object:
        codec._arrow_pays = never  # type: ignore[assignment]
        return run(body)

    def new(body: bytes) -> object:
        codec._arrow_pays = chooses  # the same assignment as old's
        return run(body)

    if args.handler:
        for n, body in bodies.items():
            if old(body) != new(body):
                print(f"the answers to {n} rows differ", file=sys.stderr)
                return 1
    results = measure({"old": old, "new": new}, bodies, args.rounds, args.budget)
    what = "the handler (decision_tree)" if args.handler else "decode()"
    print(f"{what}, the benchmarks' 10 numeric + 10 text features; old: the csv module's path up to 64 KiB")
    print(f"{'rows':>5} {'bytes':>7} {'old':>12} {'new':>12} {'new/old':>8}")
    for n, got in results.items():
        ratio = statistics.median(a / b for a, b in zip(got["new"], got["old"], strict=True))
        print(
            f"{n:5d} {len(bodies[n]):7d} {statistics.median(got['old']):9.1f} us"
            f" {statistics.median(got['new']):9.1f} us {ratio:8.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
