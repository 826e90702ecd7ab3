"""A request's columns encoded for the compiled forms that read one row's one-hot ones directly
(knn's :class:`~byoc.compiled_knn.NeighbourRows`, svm's :class:`~byoc.compiled_svm.KernelRows`).

Those models hold their 0/1 columns (every training row or support vector 0 or 1 there: the
one-hot columns and any 0/1 numeric ones, missing-value indicators) apart, and a row's part of
them is where its ones are.  A one-hot row is mostly zeros: for one row, its ones come from its
category codes through the one-hot step's own code -> column table (:meth:`CodeOneHot._table`,
the encoding rule in one place), instead of the encoder building a one-hot row for the model to
search for its ones again.  The row itself is zeros with a 1 at those columns and the numeric
blocks' outputs, as the encoder gives it.  Several rows: the encoder's matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from byoc.compiled_linear import _width
from byoc.preprocessing import MISSING_CODE, CategoryCoder, CodeOneHot, RowEncoder


class OneHotRows:
    """A :class:`RowEncoder` whose one-hot blocks stop at their category codes (see the module)."""

    def __init__(
        self,
        blocks: list[tuple[list[int], list[Any]]],
        onehots: list[tuple[int, CodeOneHot, list[list[int]]]],
        numbers: list[tuple[int, int, int]],
        place: np.ndarray,
    ) -> None:
        self.encoder = RowEncoder(blocks)  # one-hot blocks stop at their codes
        # (block, its CodeOneHot, per column and code - MISSING_CODE: the row's column or -1)
        self.onehots = onehots
        self.numbers = numbers  # (block, first and last + 1 of the row's columns it fills)
        self.width = len(place)
        self.place = place.tolist()  # the row's column -> its place among the model's 0/1 columns, or -1
        numeric = np.concatenate(
            [np.arange(start, stop) for _, start, stop in numbers] + [np.zeros(0, np.intp)]
        )
        self.extra_columns = numeric[place[numeric] >= 0]  # the numeric blocks' 0/1 columns (indicators)
        self.extra_places = place[self.extra_columns]

    @classmethod
    def of(cls, encoder: RowEncoder, place: np.ndarray) -> OneHotRows | None:
        """``place``: per column of the model's input, its place among the model's 0/1 columns, or
        -1.  None unless every block is a coded one-hot or a numeric block byoc knows the width of,
        together as wide as the model's input, and every one-hot column is among the 0/1 ones."""
        blocks: list[tuple[list[int], list[Any]]] = []
        onehots: list[tuple[int, CodeOneHot, list[list[int]]]] = []
        numbers: list[tuple[int, int, int]] = []
        offset = 0
        for positions, steps in encoder.blocks:
            if [type(step) for step in steps] == [CategoryCoder, CodeOneHot]:
                coder, onehot = steps
                table = onehot._table()  # column in the block per (column, code - MISSING_CODE), -1 for none
                if table is None:
                    return None
                block_width = sum(len(c) for c in onehot.categories_)
                if (place[offset : offset + block_width] < 0).any():
                    return None
                top = max(
                    [int(codes.max()) for _, codes in coder._lookup] + [table.shape[1] - 1 + MISSING_CODE]
                )
                at = np.full((len(positions), top - MISSING_CODE + 1), -1, dtype=np.intp)
                at[:, : table.shape[1]] = np.where(table >= 0, offset + table, -1)
                onehots.append((len(blocks), onehot, at.tolist()))
                blocks.append((positions, [coder]))
            else:
                numeric_width = _width(steps, len(positions))
                if numeric_width is None:
                    return None
                block_width = numeric_width
                numbers.append((len(blocks), offset, offset + block_width))
                blocks.append((positions, steps))
            offset += block_width
        return cls(blocks, onehots, numbers, place) if offset == len(place) else None

    def encode(self, columns: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """The encoder's matrix for ``columns`` and, for one row whose numeric 0/1 columns hold 0
        or 1, the places of its ones among the model's 0/1 columns (else None)."""
        values = self.encoder.outputs(columns)
        if len(values[0]) != 1:
            for block, onehot, _ in self.onehots:
                values[block] = onehot.transform_matrix(values[block])
            return self.encoder.stack(values), None
        x = np.zeros((1, self.width))
        ones = [
            column
            for block, _, at in self.onehots
            for slots, code in zip(at, values[block][0].tolist(), strict=True)
            if (column := slots[int(code) - MISSING_CODE]) >= 0
        ]
        x[0, ones] = 1.0
        for block, start, stop in self.numbers:
            x[0, start:stop] = values[block][0]
        places = np.array([self.place[column] for column in ones], dtype=np.intp)
        if len(self.extra_columns):
            extra = x[0, self.extra_columns]
            if not ((extra == 0) | (extra == 1)).all():
                return x, None
            places = np.concatenate((places, self.extra_places[extra == 1]))
        return x, places


class AnswersRows(Protocol):
    """A compiled model that answers one encoded row faster given the places of its ones."""

    classes_: Any

    def answer_row(self, X: np.ndarray, ones: np.ndarray, method: str) -> np.ndarray: ...

    def predict(self, X: Any) -> np.ndarray: ...

    def predict_proba(self, X: Any) -> np.ndarray: ...


class OnColumns:
    """A compiled model behind its :class:`OneHotRows`, on a request's columns (the server's
    few-row path): one row by the model's ``answer_row`` with its ones' places, several rows (or
    a row whose numeric 0/1 columns hold another value) by the model on the encoder's matrix."""

    def __init__(self, model: AnswersRows, rows: OneHotRows) -> None:
        self.model = model
        self.classes_ = model.classes_
        self.rows = rows

    def _encoded(self, columns: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        return self.rows.encode(columns)

    def _answer(self, columns: Sequence[np.ndarray], method: str) -> np.ndarray:
        X, ones = self._encoded(columns)
        if ones is None:
            return np.asarray(getattr(self.model, method)(X))
        return self.model.answer_row(X, ones, method)

    def predict_proba(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        return self._answer(columns, "predict_proba")

    def predict(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        return self._answer(columns, "predict")
