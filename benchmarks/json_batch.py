"""One batch of rows in every content type a batch transform sends: the server's handler in-process.

The same rows (the synthetic features, 20,000 rows by default) as headerless CSV,
``{"instances": rows}``, JSON records and JSON Lines, then the other JSON shapes byoc reads
(``{"instances": records}``, a bare list of rows, ``dataframe_split``, ``{"inputs": columns}``),
each decoded, predicted and encoded (as
text/csv) by the handler ``serve`` runs (decision_tree of benchmarks/serving.py, trained into its
model cache), in this process: the best CPU time of ``--repeats`` runs and MB/s of body.  CPU time,
not wall-clock, so a loaded machine moves it little; compare commits by running the script at each
in turn, more than once.  The answers of every content type must be the same lines.

    .venv/bin/python benchmarks/json_batch.py [--rows 20000] [--repeats 5] [--train-rows 10000]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO), str(REPO / "container")]  # run as a script from the checkout

from benchmarks import serving
from benchmarks.harness import commit
from benchmarks.synthetic import DATA, TARGET, synthetic_frame


def bodies(rows: int) -> dict[str, tuple[str, bytes]]:
    frame = synthetic_frame(rows, seed=1).drop(columns=[TARGET])
    frame.columns = [f"f{i}" for i in range(frame.shape[1])]
    values = frame.to_numpy().tolist()
    records = json.loads(frame.to_json(orient="records"))
    return {
        "text/csv": ("text/csv", frame.to_csv(header=False, index=False).encode()),
        "application/json instances": ("application/json", json.dumps({"instances": values}).encode()),
        "application/json records": ("application/json", frame.to_json(orient="records").encode()),
        "application/jsonlines": (
            "application/jsonlines",
            frame.to_json(orient="records", lines=True).encode(),
        ),
        "application/json instances of records": (
            "application/json",
            json.dumps({"instances": records}).encode(),
        ),
        "application/json list of rows": ("application/json", json.dumps(values).encode()),
        "application/json dataframe_split": (
            "application/json",
            json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split"))}).encode(),
        ),
        "application/json inputs columns": (
            "application/json",
            json.dumps({"inputs": {name: frame[name].tolist() for name in frame.columns}}).encode(),
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="rows in each body")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each body; the best CPU time counts")
    parser.add_argument("--train-rows", type=int, default=10_000, help="the model's training rows")
    args = parser.parse_args()
    from byoc.serving.app import FlaskBody
    from byoc.serving.handler import InferenceRequest

    hyperparameters, numeric_only = serving.MODELS["decision_tree"]
    cache = DATA / "models" / f"{serving.training_commit()}-{args.train_rows}"
    root = serving.train_model(cache / "decision_tree", args.train_rows, hyperparameters, numeric_only)
    handler, settings = serving.load_handler(root)
    print(f"commit {commit()}; decision_tree; {args.rows:,} rows; best CPU time of {args.repeats} runs\n")
    print("| body | MB | handler CPU | MB/s |\n|---|---|---|---|")
    answers = set()
    for name, (content_type, body) in bodies(args.rows).items():
        best = float("inf")
        for _ in range(args.repeats):
            started = time.process_time()
            framed = FlaskBody(io.BytesIO(body), len(body), settings.max_payload_bytes, len(body))
            result = handler.invoke(InferenceRequest(framed, content_type, "text/csv", None, "benchmark"))
            answer = result.body if isinstance(result.body, bytes) else b"".join(result.body)
            best = min(best, time.process_time() - started)
        answers.add(answer)
        print(f"| {name} | {len(body) / 1e6:.1f} | {best:.3f} s | {len(body) / 1e6 / best:.1f} |")
    if len(answers) != 1:
        print("the content types' answers differ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
