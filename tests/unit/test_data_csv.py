"""Property tests of the CSV reader: whatever mixed frame a user writes comes back unchanged,
and a header row is recognised whenever a numeric column makes it recognisable."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byoc.data import read_channel
from byoc.environment import MLPaths, TrainingEnvironment
from support import make_ml_root

WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=6).filter(
    lambda w: w not in {"nan", "na", "null", "none", "inf", "infinity"}
)
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64, min_value=-1e12, max_value=1e12),
    st.just(np.nan),
)


@st.composite
def frames(draw) -> pd.DataFrame:
    n_rows = draw(st.integers(2, 25))
    n_cols = draw(st.integers(1, 5))
    columns = {}
    numeric_seen = False
    for j in range(n_cols):
        numeric = draw(st.booleans()) or (j == n_cols - 1 and not numeric_seen)
        numeric_seen |= numeric
        values = draw(st.lists(NUMBERS if numeric else WORDS, min_size=n_rows, max_size=n_rows))
        if numeric and all(pd.isna(values)):
            values[0] = 1.5
        columns[f"col_{j}"] = pd.Series(values, dtype=float if numeric else object)
    return pd.DataFrame(columns)


def _read(frame: pd.DataFrame, header: bool, force: bool | None) -> tuple[pd.DataFrame, bool]:
    with tempfile.TemporaryDirectory() as tmp:
        root = make_ml_root(
            Path(tmp), channels={"train": {"a.csv": frame.to_csv(index=False, header=header)}}
        )
        data = read_channel(TrainingEnvironment.from_files(MLPaths(root), environ={}), "train", header=force)
        return data.frame, data.has_header


def _same(read: pd.DataFrame, frame: pd.DataFrame) -> None:
    assert read.shape == frame.shape
    for j, column in enumerate(frame.columns):
        got, want = read.iloc[:, j], frame[column]
        if want.dtype == float:
            np.testing.assert_array_equal(got.to_numpy(dtype=float), want.to_numpy())
        else:
            assert list(got.astype(object)) == list(want)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_header_detected_and_values_round_trip(frame):
    read, has_header = _read(frame, header=True, force=None)
    assert has_header
    assert list(read.columns) == list(frame.columns)
    _same(read, frame)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_headerless_is_not_mistaken_for_a_header(frame):
    read, has_header = _read(frame, header=False, force=None)
    assert not has_header
    assert list(read.columns) == [str(i) for i in range(frame.shape[1])]
    _same(read, frame)


def test_a_headerless_file_of_numbers_starting_with_a_byte_order_mark_is_all_data(tmp_path):
    """Excel's 'CSV UTF-8' starts with a byte order mark, which the reader reads past in every
    cell it looks at: the first cell of a headerless file of numbers is the number 0, not the text
    '\\ufeff0' that would make line 1 look like a header (a clue of names over numbers)."""
    lines = [f"{i % 2},{i * 1.5},{i * 7 % 5}" for i in range(60)]
    body = b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n"
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": body}})
    read = read_channel(TrainingEnvironment.from_files(MLPaths(root), environ={}), "train")
    assert not read.has_header and len(read.frame) == 60
    assert read.frame.iloc[0].tolist() == [0.0, 0.0, 0.0]
