"""The benchmarks' synthetic data: 20 feature columns, half numeric, half text categorical.

Generated once per size into benchmarks/.data (git-ignored) and reused across runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parent / ".data"
N_NUMERIC = 10
N_CATEGORICAL = 10
TARGET = "label"


def synthetic_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """A text target that depends on both kinds of feature, so models have something to learn."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    score = np.zeros(rows)
    for i in range(N_NUMERIC):
        values = rng.normal(size=rows)
        score += values * (0.5 if i < 3 else 0.05)
        columns[f"num_{i}"] = np.round(values, 5)
    for i in range(N_CATEGORICAL):
        levels = np.array([f"level_{i}_{k}" for k in range(5 + i)])
        codes = rng.integers(0, len(levels), size=rows)
        score += (codes == 0) * (0.8 if i < 2 else 0.0)
        columns[f"cat_{i}"] = levels[codes]
    target = np.where(score + rng.normal(scale=0.7, size=rows) > 0.2, "yes", "no")
    return pd.DataFrame({TARGET: target, **columns})


def dataset(rows: int, fmt: str) -> Path:
    """Headerless target-first CSV (the built-in algorithms' convention) or Parquet."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"synthetic_{rows}.{fmt}"
    if not path.exists():
        frame = synthetic_frame(rows)
        tmp = path.with_suffix(".tmp")
        if fmt == "csv":
            frame.to_csv(tmp, header=False, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    return path
