"""Regenerate local_test/payloads/ from local_test/test_dir's training data.

The payloads are the first rows of the train channel without the target column, in every
request format the server decodes, so `local_test/predict.sh payloads/<file>` works against a
model trained by `local_test/train_local.sh`:

- payload.csv       text/csv, no header, columns in training order (what CSVSerializer sends)
- records.json      application/json {"instances": [{column: value, ...}, ...]}
- rows.jsonl        application/jsonlines, one record per line
- payload.parquet   application/x-parquet

Run: .venv/bin/python scripts/make_payloads.py [ROWS]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TEST_DIR = REPO / "local_test" / "test_dir"
PAYLOADS = REPO / "local_test" / "payloads"


def target_column(frame: pd.DataFrame) -> str:
    """The `target` hyperparameter of test_dir (SDK-encoded or plain), else the first column."""
    hyperparameters = json.loads((TEST_DIR / "input" / "config" / "hyperparameters.json").read_text())
    raw = hyperparameters.get("target", "0")
    try:
        raw = json.loads(raw)
    except (TypeError, ValueError):
        pass
    return frame.columns[raw] if isinstance(raw, int) else str(raw)


def main(rows: int = 5) -> None:
    train = sorted((TEST_DIR / "input" / "data" / "train").glob("*.csv"))[0]
    frame = pd.read_csv(train, nrows=rows)
    features = frame.drop(columns=[target_column(frame)])
    PAYLOADS.mkdir(exist_ok=True)
    features.to_csv(PAYLOADS / "payload.csv", index=False, header=False)
    records = json.loads(features.to_json(orient="records"))
    (PAYLOADS / "records.json").write_text(json.dumps({"instances": records}, indent=1) + "\n")
    (PAYLOADS / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    features.to_parquet(PAYLOADS / "payload.parquet", index=False)
    print(f"wrote {len(features)} rows x {features.shape[1]} features to {PAYLOADS}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
