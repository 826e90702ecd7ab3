"""text/libsvm: scikit-learn's svmlight reader; the label becomes column "0", feature i column "i".

Index base and width are decided once for the whole train channel (libsvm files are 1-based
unless some index 0 appears; the width runs to the highest index), so files that happen to
lack feature 1 or 0, or the highest features, line up.  An evaluation channel takes the train
channel's layout (``like``): libsvm leaves zeros out, so a validation file that never mentions
the highest features is valid; an index the train channel does not have is refused.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from byoc.data.sources import Source, io_failure, not_utf8
from byoc.data.tabular import Read, SparseLayout
from byoc.errors import DataError, SchemaError

MAX_INDEX = 2**63 - 1  # scikit-learn's parser reads indices as C longs
MAX_DENSE_CELLS = 500_000_000  # ~4 GB of float64: beyond this a dense frame is a mistake


def _read_one(source: Source) -> tuple[sp.csr_matrix, np.ndarray]:
    head = source.head()
    if b"\x00" in head:
        raise DataError(
            f"{source.name}: binary content where text/libsvm was expected; upload "
            "'<label> <index>:<value> ...' lines, or set ContentType to the file's real "
            "format",
            code="not_text",
        )
    # Imported here: sklearn.datasets costs a tenth of a second quiet, seconds under load, and
    # only libsvm channels need it (the start-up counts against algorithm=auto's budget).
    from sklearn.datasets import load_svmlight_file

    try:
        with source.open() as fh:
            X, y = load_svmlight_file(fh, zero_based=True, dtype=np.float64)
    except (ValueError, TypeError, OverflowError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise _located(source, exc) from exc
    _refuse_underscores(source)
    return X.tocsr(), y


SCAN_BYTES = 1 << 20


def _refuse_underscores(source: Source) -> None:
    """A number written with underscores (``1_000``, a label ``1_0``) refused, naming its line.

    scikit-learn's parser reads each token with Python's ``float``, which takes PEP 515's
    underscores (``1_000`` is 1000, ``1_0`` the class 10); byoc's one rule for text
    (:mod:`byoc.values`) reads no such number, and the endpoint answers 400 for it in a request,
    so the model would be trained on values its endpoint refuses.  A scan of the file in blocks
    (no line is looked at unless an underscore occurs; a comment after ``#`` may hold one)."""
    try:
        with source.open() as fh:
            while block := fh.read(SCAN_BYTES):
                if b"_" in block:
                    break
            else:
                return
        with source.open() as fh:
            for lineno, raw in enumerate(fh, start=1):
                if b"_" in raw.split(b"#", 1)[0]:
                    problem = _line_problem(raw.decode("utf-8", errors="replace"))
                    if problem:
                        raise DataError(
                            f"{source.name}, line {lineno}: {problem} (write numbers without '_'); "
                            "each line must be '<label> <index>:<value> ...' with increasing indices",
                            code="bad_libsvm",
                        )
    except (OSError, EOFError, zlib.error) as exc:
        raise _located(source, exc) from exc


def _number(text: str) -> float:
    """``text`` as scikit-learn's parser reads a number, but without PEP 515's underscores
    (see :func:`_refuse_underscores`); ValueError when it is none."""
    if "_" in text:
        raise ValueError(text)
    return float(text)


def _located(source: Source, exc: BaseException) -> DataError:
    """The failure naming the first line the standard library finds wrong ('<file>, line N: <what
    is wrong>'), or a byte that is not UTF-8 as every text reader names one.

    scikit-learn's parser says what but not where; this slow re-scan runs only after it failed.
    """
    if (failed := io_failure(source.name, exc)) is not None:
        return failed
    where = source.name
    offset = 0
    try:
        with source.open() as fh:
            for lineno, raw in enumerate(fh, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as undecodable:
                    return not_utf8(source.name, raw, undecodable.start, offset=offset, line=lineno)
                offset += len(raw)
                problem = _line_problem(text)
                if problem:
                    where = f"{source.name}, line {lineno}: {problem}"
                    break
    except (OSError, EOFError, zlib.error):
        pass
    return DataError(
        f"{where}: not valid libsvm ({exc}); each line must be '<label> <index>:<value> ...' with "
        "increasing indices",
        code="bad_libsvm",
    )


def _line_problem(text: str) -> str | None:
    tokens = text.split("#", 1)[0].split()
    if not tokens:
        return None
    try:
        _number(tokens[0].split(",")[0])
    except ValueError:
        return f"label {tokens[0][:40]!r} is not a number"
    previous = -1
    for token in tokens[1:]:
        index, sep, value = token.partition(":")
        if index == "qid":
            continue
        if not sep or not index.isdigit():
            return f"{token[:40]!r} is not <index>:<value>"
        if int(index) > MAX_INDEX:
            return f"feature index {index[:40]} is beyond {MAX_INDEX}"
        if int(index) <= previous:
            return f"feature index {index} does not increase"
        previous = int(index)
        try:
            _number(value)
        except ValueError:
            return f"value {value[:40]!r} of feature {index} is not a number"
    return None


def _layout(parts: Sequence[tuple[sp.csr_matrix, np.ndarray]]) -> SparseLayout:
    """The channel's own layout: 1-based unless an index 0 appears, through its highest index."""
    width = max(X.shape[1] for X, _ in parts)  # the highest index + 1 (read zero-based)
    one_based = all(X.shape[0] == 0 or X.nnz == 0 or X.indices.min() >= 1 for X, _ in parts)
    first = 1 if one_based and width > 0 else 0
    return SparseLayout(first_index=first, features=width - first)


def _check_within(source: Source, X: sp.csr_matrix, like: SparseLayout, channel: str) -> None:
    """Every index of ``source`` is one of the train channel's features (``like``)."""
    last = like.first_index + like.features - 1
    outside = np.flatnonzero((X.indices < like.first_index) | (X.indices > last))
    if not len(outside):
        return
    index = int(X.indices[outside[0]])
    row = int(np.searchsorted(X.indptr, outside[0], side="right"))  # 1-based
    if index < like.first_index:
        why = (
            "not one of the train channel's, whose feature indices start at 1 (libsvm files are "
            "1-based unless an index 0 appears): number the features as the train channel does"
        )
    else:
        why = (
            f"beyond the train channel's highest feature index, {last}; the model has no such "
            "feature: remove it, or add the feature to the train channel's data"
        )
    raise SchemaError(f"{source.name}, row {row}: feature index {index} of channel '{channel}' is {why}")


def _check_unpartitioned(sources: Sequence[Source]) -> None:
    """A partition directory's value would be a column, but libsvm has numbered features only:
    refused rather than lost."""
    for source in sources:
        if source.partitions:
            key, value = source.partitions[0]
            raise DataError(
                f"{source.name}: its directory '{key}={value}' holds the value of a column '{key}' "
                "(Hive partitioning, as Spark's partitionBy writes), but libsvm has numbered features "
                "only; write the value into each line as a feature index, or use CSV or Parquet, "
                "whose partition directories become columns",
                code="bad_partitions",
            )


def read(
    sources: Sequence[Source],
    *,
    channel: str,
    header: bool | None,
    params: Mapping[str, str],
    typed: bool = True,
    label: int | str | None = None,  # libsvm labels are numbers by the format
    like: SparseLayout | None = None,
) -> Read:
    _check_unpartitioned(sources)
    parts = [_read_one(s) for s in sources]
    for source, (X, _) in zip(sources, parts, strict=True):
        source.rows = X.shape[0]
    layout = like or _layout(parts)
    if like is not None:
        for source, (X, _) in zip(sources, parts, strict=True):
            _check_within(source, X, like, channel)
    width = layout.first_index + layout.features
    matrices = [sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], width)) for X, _ in parts]
    X = sp.vstack(matrices, format="csr")
    if layout.first_index:
        X = X[:, layout.first_index :]
    y = np.concatenate([y for _, y in parts])
    if X.shape[0] == 0:
        raise DataError(f"channel '{channel}': the libsvm files hold no rows", code="empty_channel")
    if X.shape[0] * X.shape[1] > MAX_DENSE_CELLS:
        raise DataError(
            f"channel '{channel}': {X.shape[0]} rows x {X.shape[1]} features is too wide "
            "to train on densely; reduce the feature indices",
            code="too_wide",
        )
    frame = pd.DataFrame(X.toarray(), columns=[str(i) for i in range(1, X.shape[1] + 1)])
    frame.insert(0, "0", y)
    return Read(frame, False, layout)
