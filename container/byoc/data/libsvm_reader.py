"""text/libsvm: scikit-learn's svmlight reader; the label becomes column "0", feature i column "i".

Index base is decided once for the whole channel (libsvm files are 1-based unless some
index 0 appears), so files that happen to lack feature 1 or 0 line up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.datasets import load_svmlight_file

from byoc.data.sources import Source
from byoc.errors import DataError

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
    try:
        with source.open() as fh:
            X, y = load_svmlight_file(fh, zero_based=True, dtype=np.float64)
    except (ValueError, TypeError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{source.name}: not valid libsvm ({exc}); each line must be "
            "'<label> <index>:<value> ...' with increasing indices",
            code="bad_libsvm",
        ) from exc
    return X.tocsr(), y


def read(
    sources: Sequence[Source], *, channel: str, header: bool | None, params: Mapping[str, str]
) -> tuple[pd.DataFrame, bool]:
    parts = [_read_one(s) for s in sources]
    width = max(X.shape[1] for X, _ in parts)
    one_based = all(X.shape[0] == 0 or X.nnz == 0 or X.indices.min() >= 1 for X, _ in parts)
    matrices = [sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], width)) for X, _ in parts]
    X = sp.vstack(matrices, format="csr")
    if one_based and width > 0:
        X = X[:, 1:]
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
    return frame, False
