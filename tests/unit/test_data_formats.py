"""Property tests of the channel readers: what a user writes with pandas (or by hand, for
libsvm) is what ``read_channel`` gives back, whatever the text holds (quotes, commas, spaces,
unicode, empty values), however the data is split into files, gzip-compressed or streamed
through a Pipe mode FIFO.  Two paths that must agree: the frame written, and the frame read.
"""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byoc.data import read_channel
from byoc.environment import MLPaths, TrainingEnvironment
from support import make_ml_root, parquet_bytes, pipe_feeders

# Text a user's categories really hold; values that any reader may read as something other than
# text (numbers, booleans, null spellings) are left to the value-semantics tests.
NOT_TEXT = {"true", "false", "none", "null", "nan", "na", "n/a", "inf", "-inf", "infinity", "#n/a", "nat"}


def _is_plain_text(value: str) -> bool:
    stripped = value.strip()
    if not stripped or stripped != value or stripped.lower() in NOT_TEXT:
        return False
    try:
        float(stripped)
    except ValueError:
        return True
    return False


TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("abc XYZ,;\"'|\\#:é日本語ß€😀")),
        st.characters(categories=("L", "N", "P", "S", "Zs"), exclude_characters="\x85\xa0"),
    ),
    min_size=1,
    max_size=12,
).filter(_is_plain_text)
NUMBER = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
PROFILE = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    """Named numeric and text columns; every column has a value, any cell may be empty (None)."""
    n_rows = draw(st.integers(1, 12))
    names = draw(st.lists(TEXT, min_size=1, max_size=4, unique=True))
    data = {}
    for name in names:
        numeric = draw(st.booleans())
        values = draw(
            st.lists(st.one_of(st.none(), NUMBER if numeric else TEXT), min_size=n_rows, max_size=n_rows)
        )
        if all(v is None for v in values):
            values[0] = draw(NUMBER if numeric else TEXT)
        data[name] = pd.Series(values, dtype=float if numeric else object)
    return pd.DataFrame(data)


def _split(frame: pd.DataFrame, cuts: list[int]) -> list[pd.DataFrame]:
    """The frame as consecutive parts (files), each with at least one row."""
    bounds = sorted({0, len(frame), *[c % len(frame) for c in cuts]})
    return [frame.iloc[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _read(tmp_path: Path, files: dict[str, bytes], content_type: str, **kwargs) -> pd.DataFrame:
    root = make_ml_root(tmp_path, channels={"train": files}, content_types={"train": content_type})
    env = TrainingEnvironment.from_files(MLPaths(root), environ={})
    return read_channel(env, "train", **kwargs).frame


def _assert_same(read: pd.DataFrame, frame: pd.DataFrame) -> None:
    assert [str(c) for c in read.columns] == [str(c) for c in frame.columns]
    assert len(read) == len(frame)
    for column in frame.columns:
        expected, got = frame[column].tolist(), read[str(column)].tolist()
        for row, (want, have) in enumerate(zip(expected, got, strict=True)):
            if want is None or (isinstance(want, float) and math.isnan(want)):
                assert have is None or (isinstance(have, float) and math.isnan(have)), (column, row, have)
            elif isinstance(want, float):
                assert math.isclose(float(have), want, rel_tol=1e-12, abs_tol=1e-300), (column, row, have)
            else:
                assert have == want, (column, row, have)


def _fresh(tmp_path: Path) -> Path:
    """A new directory per hypothesis example (tmp_path is shared between them)."""
    index = len(list(tmp_path.iterdir()))
    return tmp_path / f"example-{index}"


def _jsonlines(frame: pd.DataFrame, drop_missing: bool) -> bytes:
    lines = []
    for index, record in enumerate(frame.astype(object).where(frame.notna(), None).to_dict(orient="records")):
        if drop_missing and index > 0:  # the first line keeps every key: the file has the column
            record = {k: v for k, v in record.items() if v is not None}
        lines.append(json.dumps(record, ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode("utf-8")


@PROFILE
@given(frame=frames(), cuts=st.lists(st.integers(0, 11), max_size=2), compress=st.booleans())
def test_parquet_files_read_back_as_written(tmp_path, frame, cuts, compress):
    parts = _split(frame, cuts)
    files = {f"part-{i}.parquet": parquet_bytes(p) for i, p in enumerate(parts)}
    if compress:
        files = {name: gzip.compress(body) for name, body in files.items()}
    _assert_same(_read(_fresh(tmp_path), files, "application/x-parquet"), frame)


@PROFILE
@given(
    frame=frames(),
    cuts=st.lists(st.integers(0, 11), max_size=2),
    compress=st.booleans(),
    drop_missing=st.booleans(),
)
def test_jsonlines_files_read_back_as_written(tmp_path, frame, cuts, compress, drop_missing):
    # The first line of each file carries every key, so the column order is the frame's.
    parts = _split(frame, cuts)
    files = {f"part-{i}.jsonl": _jsonlines(p, drop_missing=drop_missing) for i, p in enumerate(parts)}
    if compress:
        files = {name: gzip.compress(body) for name, body in files.items()}
    _assert_same(_read(_fresh(tmp_path), files, "application/jsonlines"), frame)


@PROFILE
@given(frame=frames(), compress=st.booleans())
def test_csv_text_with_quotes_commas_and_unicode_reads_back(tmp_path, frame, compress):
    body = frame.to_csv(index=False).encode("utf-8")
    files = {"data.csv": gzip.compress(body) if compress else body}
    _assert_same(_read(_fresh(tmp_path), files, "text/csv", header=True), frame)


@st.composite
def sparse_rows(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, list[str]]:
    n_rows, n_cols = draw(st.integers(1, 10)), draw(st.integers(1, 6))
    values = st.one_of(st.just(0.0), st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 6)))
    X = np.array(
        draw(st.lists(st.lists(values, min_size=n_cols, max_size=n_cols), min_size=n_rows, max_size=n_rows))
    )
    X[:, -1][X[:, -1] == 0] = 1.0  # the last feature present in some row fixes the width
    y = np.array(
        draw(st.lists(st.sampled_from([0.0, 1.0, 2.0, -1.0, 3.5]), min_size=n_rows, max_size=n_rows))
    )
    comments = draw(st.lists(st.one_of(st.just(""), TEXT), min_size=n_rows, max_size=n_rows))
    return X, y, comments


def _libsvm(X: np.ndarray, y: np.ndarray, comments: list[str]) -> bytes:
    lines = []
    for label, row, comment in zip(y, X, comments, strict=True):
        pairs = " ".join(f"{j + 1}:{float(v)!r}" for j, v in enumerate(row) if v != 0)
        lines.append(f"{float(label)!r} {pairs}".rstrip() + (f" # {comment}" if comment else ""))
    return ("\n".join(lines) + "\n").encode("utf-8")


@PROFILE
@given(data=sparse_rows(), compress=st.booleans())
def test_libsvm_reads_back_the_dense_matrix(tmp_path, data, compress):
    X, y, comments = data
    body = _libsvm(X, y, comments)
    files = {"data.libsvm": gzip.compress(body) if compress else body}
    frame = _read(_fresh(tmp_path), files, "text/libsvm")
    assert list(frame.columns) == [str(i) for i in range(X.shape[1] + 1)]
    np.testing.assert_allclose(frame["0"].to_numpy(), y)
    np.testing.assert_allclose(frame.drop(columns="0").to_numpy(), X)


@settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(frame=frames(), fmt=st.sampled_from(["text/csv", "application/jsonlines"]), compress=st.booleans())
def test_pipe_mode_reads_what_file_mode_reads(tmp_path, frame, fmt, compress):
    body = frame.to_csv(index=False).encode("utf-8") if fmt == "text/csv" else _jsonlines(frame, False)
    if compress:
        body = gzip.compress(body)
    file_mode = _read(_fresh(tmp_path), {"data": body}, fmt, header=True)
    root = make_ml_root(
        _fresh(tmp_path), channels={"train": {"data": body}}, content_types={"train": fmt}, input_mode="Pipe"
    )
    with pipe_feeders(root, {"train": {"data": body}}):
        env = TrainingEnvironment.from_files(MLPaths(root), environ={})
        piped = read_channel(env, "train", header=True).frame
    _assert_same(piped, frame)
    _assert_same(file_mode, frame)
