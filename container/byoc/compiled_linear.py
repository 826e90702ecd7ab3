"""A linear model's scores straight from a request's columns, for the server's few-row path.

The compiled linear form (:class:`byoc.compiled.LinearEstimator`) multiplies the encoder's matrix
by the coefficients; for one request row, building that matrix (a one-hot block as wide as every
category, then a CSR matrix of it) cost four times the product.  Here each block of the encoder
gives its terms of the product directly: a one-hot block the coefficient rows of the categories
its codes select (one table look-up, no one-hot row), a numeric block its values times their
coefficients.

The sum is scikit-learn's to the bit: for a sparse (CSR) encoder output, ``X @ coef_.T`` sums a
row's stored entries one after another, from 0, in column order (scipy's ``csr_matvec(s)``), and
so does :func:`numpy.cumsum` over the same terms in the same order (an unknown category's missing
term and a zero value's ``±0`` term leave such a sum unchanged).  One row of one output (a
binary classifier's or a regressor's request row) is summed the same way with Python floats
(IEEE double, as numpy's): each numpy call on a one-row array costs about a microsecond, and the
array path made some 25 of them for what is 20 additions.  A dense encoder output is
multiplied by BLAS, whose order of summation is its own: those models keep the matrix path
(:meth:`LinearRows.of` answers None).  The server uses this form only when it answers its check
rows exactly as the pipeline does (``Predictor.enable_fast_path``).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import reduce
from itertools import chain
from typing import Any

import numpy as np

from byoc.preprocessing import (
    MISSING_CODE,
    CategoryCoder,
    CodeOneHot,
    EmptyColumnFiller,
    MedianImputer,
    RowEncoder,
    Standardizer,
)

_NUMERIC_STEPS = (MedianImputer, Standardizer, EmptyColumnFiller)


@dataclass(frozen=True)
class _OneHotTerms:
    """A CategoryCoder + CodeOneHot block: per column and code, the coefficient row of its one-hot
    column (``weights[j, code - MISSING_CODE]``; zeros where the code has none: unknown, or missing
    when no training row missed).  Every code the coder gives has a slot."""

    positions: list[int]
    coder: CategoryCoder
    weights: np.ndarray  # (columns, codes, outputs)
    columns: np.ndarray = field(init=False)  # 0..columns-1, for the table look-up
    first: list[list[float]] = field(init=False)  # weights[:, :, 0] as Python floats (one row)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", np.arange(len(self.positions)))
        object.__setattr__(self, "first", self.weights[:, :, 0].tolist())

    @classmethod
    def of(
        cls, positions: list[int], coder: CategoryCoder, onehot: CodeOneHot, coefficients: np.ndarray
    ) -> _OneHotTerms | None:
        table = onehot._table()  # output column per (column, code - MISSING_CODE), -1 for none
        if table is None:
            return None
        top = max([int(codes.max()) for _, codes in coder._lookup] + [table.shape[1] - 1 + MISSING_CODE])
        weights = np.zeros((len(positions), top - MISSING_CODE + 1, coefficients.shape[1]))
        j, slot = np.nonzero(table >= 0)
        weights[j, slot] = coefficients[table[j, slot]]
        return cls(positions, coder, weights)

    @property
    def steps(self) -> list[Any]:
        """The encoder steps whose output :meth:`terms_of` takes: the coder (its codes)."""
        return [self.coder]

    def terms_of(self, codes: np.ndarray) -> np.ndarray:
        slot = codes.astype(np.intp) - MISSING_CODE
        return self.weights[self.columns, slot]  # (rows, columns, outputs)

    def row_terms(self, codes: np.ndarray) -> Iterable[float]:
        """:meth:`terms_of` of one row's codes for the first output, as Python floats."""
        return map(list.__getitem__, self.first, [int(code) - MISSING_CODE for code in codes[0].tolist()])


@dataclass(frozen=True)
class _NumericTerms:
    """A numeric block (imputer, scaler): its values times their coefficients."""

    positions: list[int]
    steps: list[Any]
    coefficients: np.ndarray  # (block width, outputs)
    first: list[float] = field(init=False)  # coefficients[:, 0] as Python floats (one row)

    def __post_init__(self) -> None:
        object.__setattr__(self, "first", self.coefficients[:, 0].tolist())

    def terms_of(self, values: np.ndarray) -> np.ndarray:
        """The terms of the block's output ``values`` (after :attr:`steps`)."""
        return values[:, :, None] * self.coefficients

    def row_terms(self, values: np.ndarray) -> Iterable[float]:
        """:meth:`terms_of` of one row's ``values`` for the first output, as Python floats."""
        return map(operator.mul, values[0].tolist(), self.first)


def _width(steps: Sequence[Any], width: int) -> int | None:
    """The output width of a numeric block of ``width`` input columns, or None for a step not known."""
    for step in steps:
        if type(step) is MedianImputer:
            width += len(step.indicator_features_)
        elif type(step) not in _NUMERIC_STEPS:
            return None
    return width


class LinearRows:
    """The few-row form of a :class:`byoc.compiled.LinearEstimator` behind a :class:`RowEncoder`:
    ``predict`` / ``predict_proba`` take the request's columns (one array per feature)."""

    def __init__(self, model: Any, parts: list[_OneHotTerms | _NumericTerms]) -> None:
        self.model = model
        self.parts = parts
        self.classes_ = model.classes_
        self.outputs = 1 if model.coef_t.ndim == 1 else model.coef_t.shape[1]
        # the first output's intercept as a Python float (what :meth:`_scores` adds to its sums)
        self.first_intercept = float(np.asarray(model.intercept, dtype=np.float64).reshape(-1)[0])
        self.encoder = RowEncoder(self.blocks())  # the encoder's steps that give the parts' input

    @classmethod
    def of(cls, encoder: RowEncoder, model: Any) -> LinearRows | None:
        """None unless the encoder's output is CSR (see the module docstring) and every block is
        a one-hot block of codes or a numeric block whose width is known."""
        if not encoder.sparse_output:
            return None
        coefficients = model.coef_t.reshape(model.coef_t.shape[0], -1)
        if not np.isfinite(coefficients).all():
            return None
        parts: list[_OneHotTerms | _NumericTerms] = []
        offset = 0
        for positions, steps in encoder.blocks:
            if [type(step) for step in steps] == [CategoryCoder, CodeOneHot]:
                onehot = _OneHotTerms.of(positions, steps[0], steps[1], coefficients[offset:])
                if onehot is None:
                    return None
                parts.append(onehot)
                offset += sum(len(c) for c in steps[1].categories_)
            else:
                width = _width(steps, len(positions))
                if width is None:
                    return None
                parts.append(_NumericTerms(positions, steps, coefficients[offset : offset + width]))
                offset += width
        return cls(model, parts) if offset == len(coefficients) else None

    def blocks(self) -> list[tuple[list[int], list[Any]]]:
        """Per part, its columns and the encoder steps whose output it takes, as
        :class:`RowEncoder` blocks: the ensemble's row path (byoc.serving.row_ensemble) runs them
        once for all its members and hands their outputs to :meth:`decision_function_of`."""
        return [(part.positions, part.steps) for part in self.parts]

    def decision_function(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        return self.decision_function_of(self.encoder.outputs(columns))

    def decision_function_of(self, values: Sequence[np.ndarray]) -> np.ndarray:
        """:meth:`decision_function` from the outputs of :meth:`blocks`, computed elsewhere."""
        rows = len(values[0])
        if rows == 1 and self.outputs == 1:  # the sum one term after another, from 0 (see above)
            return self._scores(np.array([[self._row_sum(values)]]), rows)
        terms = [part.terms_of(value) for part, value in zip(self.parts, values, strict=True)]
        zero = np.zeros((rows, 1, self.outputs))  # the sum starts from 0, as scipy's
        return self._scores(np.cumsum(np.concatenate([zero, *terms], axis=1), axis=1)[:, -1], rows)

    def row_score(self, values: Sequence[np.ndarray]) -> float:
        """One row's score of a one-output model (a binary classifier's, a regressor's) from the
        outputs of :meth:`blocks`, as a Python float: :meth:`decision_function_of`'s number (the
        same sum of the same terms, plus the intercept), without its arrays."""
        return self._row_sum(values) + self.first_intercept

    def _row_sum(self, values: Sequence[np.ndarray]) -> float:
        """One row's sum of its terms for the first output, one term after another from 0, as a
        Python float (see the module docstring)."""
        row = chain.from_iterable(
            part.row_terms(value) for part, value in zip(self.parts, values, strict=True)
        )
        return reduce(operator.add, row, 0.0)

    def _scores(self, sums: np.ndarray, rows: int) -> np.ndarray:
        """The scores from each row's sum of terms, (rows, outputs): plus the intercept, shaped as
        scikit-learn's decision function."""
        scores = sums + self.model.intercept
        return scores.reshape(rows) if self.model.coef_t.ndim == 1 else self.model.shaped(scores)

    def predict_proba(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        return self.model.probabilities(self.decision_function(columns))

    def predict(self, columns: Sequence[np.ndarray]) -> np.ndarray:
        return self.model.labels(self.decision_function(columns))
