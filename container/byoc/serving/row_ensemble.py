"""The ensemble's small batches in the server: every member's encoder and final estimator on the
request's columns, each distinct piece of work done once.

The members of byoc's ensemble each carry their own fitted preprocessor, and most of them are
alike: every member codes the same text columns with a CategoryCoder fitted on the same rows
(equal unless a column has more categories than one member's cap), and the forest and the
linear model impute the same medians.  Run one after another (a :class:`RowEncoder` each), the
members repeated that work for every request.  Here the members' encoders become one graph of
step applications, a step shared by two members when it reads the same input and its fitted
state is equal (:func:`same_fitted`), so each distinct step runs once per batch.  The members'
final estimators then answer on their own matrices, and the ensemble's own vote
(:func:`byoc.algorithms.ensemble.weighted_mean`) combines them: the same arithmetic in the same
order as the ensemble's ``predict_proba`` / ``predict``, so the same bits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np
from scipy.special import expit

from byoc.algorithms.ensemble import aligned, class_positions, weighted_mean
from byoc.preprocessing import CategoryCoder, RowEncoder
from byoc.serving.inference import _equal

_Op = Callable[[Sequence[np.ndarray], list[Any]], Any]
# RowEnsemble._one_row_plan's kinds of member: a forest (its means from the joint session's
# sums), a gradient boosting (its score from the joint session), a compiled linear model (its
# score from the shared graph's blocks)
_FOREST, _BOOSTING, _LINEAR = range(3)


def fitted_state(step: Any) -> dict[str, Any]:
    """A fitted step's learned attributes (scikit-learn's trailing underscore): all that byoc's
    own steps read when they transform (hyperparameters such as a coder's cap act only at fit)."""
    return {k: v for k, v in vars(step).items() if k.endswith("_") and not k.startswith("_")}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return (isinstance(a, np.ndarray) or type(a) is type(b)) and bool(_equal(a, b))


def same_fitted(a: Any, b: Any) -> bool:
    """Whether two fitted steps transform alike: the same class and equal learned attributes."""
    if type(a) is not type(b):
        return False
    state_a, state_b = fitted_state(a), fitted_state(b)
    try:
        return state_a.keys() == state_b.keys() and all(_same(state_a[k], state_b[k]) for k in state_a)
    except (TypeError, ValueError):  # attributes that do not compare: not shared
        return False


def _input(first: Any, where: tuple[int, ...], columns: Sequence[np.ndarray], values: list[Any]) -> Any:
    return RowEncoder.block_input(first, columns, where)


def _step(step: Any, node: int, columns: Sequence[np.ndarray], values: list[Any]) -> Any:
    return RowEncoder.apply(step, values[node])


def _columns(columns: Sequence[np.ndarray], values: list[Any]) -> Sequence[np.ndarray]:
    return columns


def _gather(parts: tuple[int, ...], columns: Sequence[np.ndarray], values: list[Any]) -> list[Any]:
    return [values[i] for i in parts]


def _stack(
    encoder: RowEncoder, parts: tuple[int, ...], columns: Sequence[np.ndarray], values: list[Any]
) -> Any:
    return encoder.stack([values[i] for i in parts])


class SharedEncoding:
    """Several :class:`RowEncoder` s run as one graph: each distinct (input, fitted step) once."""

    def __init__(self) -> None:
        self._ops: list[_Op] = []
        self._nodes: dict[tuple[Any, ...], int] = {}
        self._steps: list[Any] = []

    def __len__(self) -> int:
        return len(self._ops)

    def add(self, encoder: RowEncoder) -> int:
        """The node whose value is ``encoder.transform`` of the columns."""
        parts = self._leaves(encoder.blocks)
        return self._node(("stack", parts, encoder.sparse_output), partial(_stack, encoder, parts))

    def add_blocks(self, blocks: Sequence[tuple[Sequence[int], Sequence[Any]]]) -> int:
        """The node whose value is the list of each block's output (RowEncoder blocks, unstacked)."""
        parts = self._leaves(blocks)
        return self._node(("blocks", parts), partial(_gather, parts))

    def _leaves(self, blocks: Sequence[tuple[Sequence[int], Sequence[Any]]]) -> tuple[int, ...]:
        leaves = []
        for positions, steps in blocks:
            first, where = steps[0], tuple(positions)
            # the input: the block's text columns, or their float matrix (RowEncoder.block_input)
            node = self._node(("input", type(first) is CategoryCoder, where), partial(_input, first, where))
            for step in steps:
                shared = self._shared(step)
                node = self._node(("step", node, shared), partial(_step, self._steps[shared], node))
            leaves.append(node)
        return tuple(leaves)

    def columns(self) -> int:
        """The node whose value is the request's columns as they are (for a member that reads them)."""
        return self._node(("columns",), _columns)

    def _shared(self, step: Any) -> int:
        for index, known in enumerate(self._steps):
            if known is step or same_fitted(known, step):
                return index
        self._steps.append(step)
        return len(self._steps) - 1

    def _node(self, key: tuple[Any, ...], op: _Op) -> int:
        if key not in self._nodes:
            self._nodes[key] = len(self._ops)
            self._ops.append(op)
        return self._nodes[key]

    def run(self, columns: Sequence[np.ndarray]) -> list[Any]:
        """Every node's value for ``columns`` (one array per feature), in the order they were added."""
        values: list[Any] = []
        for op in self._ops:
            values.append(op(columns, values))
        return values


class _OnBlocks:
    """A compiled linear member on the request's columns (:class:`~byoc.compiled_linear.LinearRows`)
    answering from its blocks' outputs, which the shared graph computes."""

    def __init__(self, rows: Any) -> None:
        self.rows = rows
        self.classes_ = rows.classes_

    def predict_proba(self, values: Sequence[np.ndarray]) -> np.ndarray:
        return self.rows.model.probabilities(self.rows.decision_function_of(values))

    def predict(self, values: Sequence[np.ndarray]) -> np.ndarray:
        return self.rows.model.labels(self.rows.decision_function_of(values))


class RowEnsemble:
    """A fitted byoc ensemble's ``predict`` / ``predict_proba`` on a :class:`~byoc.serving.schema.Batch`.

    ``members`` are each member's (RowEncoder, final estimator), in the ensemble's order, or
    (None, an estimator on the request's columns: a compiled linear model's
    :class:`~byoc.compiled_linear.LinearRows`); only the members that vote (a positive weight)
    are run, as in the ensemble.  Members whose compiled forms are the parts of one
    :class:`~byoc.compiled_onnx.Joint` session (the forest and the gradient boosting) run in one
    onnxruntime call, each then turning its own output into its answer (``proba_of`` /
    ``predict_of``: the arithmetic of its ``predict_proba`` / ``predict``)."""

    def __init__(self, ensemble: Any, members: Sequence[tuple[RowEncoder | None, Any]]) -> None:
        self.classes_ = getattr(ensemble, "classes_", None)
        self.encoding = SharedEncoding()
        voting = {id(est): weight for weight, est in ensemble.voting_members()}
        # (node, final estimator, weight, class positions, its part of the joint session or None)
        self.members: list[tuple[int, Any, Any, np.ndarray | None, int | None]] = []
        for est, (encoder, final) in zip(ensemble.estimators_, members, strict=True):
            if id(est) in voting:
                positions = None
                if self.classes_ is not None:
                    positions = class_positions(getattr(final, "classes_", self.classes_), self.classes_)
                if encoder is not None:
                    node = self.encoding.add(encoder)
                elif hasattr(final, "decision_function_of"):  # compiled linear: its blocks shared too
                    node, final = self.encoding.add_blocks(final.blocks()), _OnBlocks(final)
                else:
                    node = self.encoding.columns()
                self.members.append((node, final, voting[id(est)], positions, None))
        self.total_weight = ensemble.total_weight()
        self.joint, self.joint_inputs = self._joint()
        self.one_row = self._one_row_plan()

    def _joint(self) -> tuple[Any, list[tuple[int, Any]]]:
        """The joint session every one of whose parts is a voting member's, and (node, final)
        per part; (None, []) if there is none."""
        run: list[Any] = [getattr(final, "run", None) for _, final, _, _, _ in self.members]
        joint = next((r.joint for r in run if getattr(r, "joint", None) is not None), None)
        if joint is None:
            return None, []
        at = {id(r): i for i, r in enumerate(run) if r is not None}
        if not all(id(part) in at for part in joint.parts):
            return None, []
        inputs = []
        for index, part in enumerate(joint.parts):
            member = at[id(part)]
            node, final, weight, positions, _ = self.members[member]
            self.members[member] = (node, final, weight, positions, index)
            inputs.append((node, final))
        return joint, inputs

    def _one_row_plan(self) -> list[tuple[int, Any, Any, float]] | None:
        """How :meth:`_one_row` votes on one row in Python floats, per voting member in order:
        (kind, its final estimator or LinearRows, its part of the joint session or its node, its
        weight); None where a member is of another kind (then every row takes the arrays' way).
        For a binary classifier or a regressor whose members are the joint session's forests and
        gradient boosting and compiled linear models of one output (byoc's default members)."""
        from byoc.compiled import OnnxBoostingEstimator
        from byoc.compiled_onnx import ForestEstimator

        binary = self.classes_ is not None and len(self.classes_) == 2
        if self.classes_ is not None and not binary:
            return None
        plan: list[tuple[int, Any, Any, float]] = []
        for node, final, weight, positions, part in self.members:
            if positions is not None:
                return None
            width = None if part is None else self.joint.parts[part].outputs
            if type(final) is ForestEstimator and part is not None:
                # a binary forest's two sums, or class 1's alone (row_means's complement); a regressor's one
                if width != (1 if not binary or final.complement else 2):
                    return None
                plan.append((_FOREST, final, part, float(weight)))
            elif type(final) is OnnxBoostingEstimator and part is not None:
                if width != 1 or final.link != ("expit" if binary else None):
                    return None
                plan.append((_BOOSTING, final, part, float(weight)))
            elif type(final) is _OnBlocks and final.rows.outputs == 1:
                model = final.rows.model
                # its scores: a vector (a binary classifier's one column, a regressor's 1-d coef_)
                if (binary and len(model.classes_) != 2) or (not binary and model.coef_t.ndim != 1):
                    return None
                plan.append((_LINEAR, final.rows, node, float(weight)))
            else:
                return None
        return plan

    def _one_row(
        self, columns: Sequence[np.ndarray], plan: Sequence[tuple[int, Any, Any, float]]
    ) -> list[Any]:
        """One row's answer in Python floats: a binary classifier's two probabilities
        (:meth:`predict_proba`'s row), a regressor's value (:meth:`predict`'s), by the arrays'
        arithmetic in the arrays' order.  Each member's answer as its own ``proba_of`` /
        ``predict_of`` computes it: a forest's :meth:`~byoc.compiled_onnx.ForestEstimator.row_means`
        (its ``means_of``); boosting's score from the joint session and a linear model's
        :meth:`~byoc.compiled_linear.LinearRows.row_score` as they are for a regressor and, for a
        classifier, through scipy's ``expit`` (the same ufunc their ``predict_proba`` calls, once
        for all those scores) as ``[1 - p, p]`` (TreeliteEstimator._proba,
        LinearEstimator.probabilities); then, per class, :func:`weighted_mean` from ``0.0``.
        Every numpy call on a one-row array costs about a microsecond, more right after the
        trees' walk has pushed numpy out of the CPU's caches; the arrays' way made some 25."""
        values = self.encoding.run(columns)
        outs = (
            self.joint.one([final.rows(values[node]) for node, final in self.joint_inputs])
            if self.joint is not None
            else []
        )
        means: list[list[float] | None] = []  # a forest's answer; None for a score
        scores: list[float] = []
        for kind, final, at, _ in plan:
            if kind == _FOREST:
                means.append(final.row_means(outs[at]))
                continue
            scores.append(outs[at][0] if kind == _BOOSTING else final.row_score(values[at]))
            means.append(None)
        if self.classes_ is None:
            answers = iter([score] for score in scores)
        else:
            answers = iter([1 - p, p] for p in (expit(np.array(scores)).tolist() if scores else ()))
        voted = [
            (weight, answer if answer is not None else next(answers))
            for (_, _, _, weight), answer in zip(plan, means, strict=True)
        ]
        return [
            weighted_mean(((weight, answer[k]) for weight, answer in voted), 0.0, self.total_weight)
            for k in range(len(voted[0][1]))
        ]

    def _answers(self, values: list[Any], rows: int, proba: bool) -> Iterator[tuple[Any, np.ndarray, Any]]:
        """(weight, answer, class positions) per member, in the ensemble's order."""
        outputs = []
        if self.joint is not None and rows:
            outputs = self.joint([final.rows(values[node]) for node, final in self.joint_inputs])
        for node, final, weight, positions, part in self.members:
            if part is not None and outputs:
                answer = final.proba_of(outputs[part]) if proba else final.predict_of(outputs[part])
            else:
                answer = final.predict_proba(values[node]) if proba else final.predict(values[node])
            yield weight, np.asarray(answer, dtype=float), positions

    def predict_proba(self, batch: Any) -> np.ndarray:
        if self.classes_ is None:
            raise AttributeError("a regression ensemble has no predict_proba")
        if self.one_row is not None and len(batch) == 1:
            return np.array([self._one_row(batch.columns, self.one_row)])
        values = self.encoding.run(batch.columns)
        width = len(self.classes_)
        return weighted_mean(
            (
                (weight, aligned(answer, positions, width))
                for weight, answer, positions in self._answers(values, len(batch), proba=True)
            ),
            np.zeros((len(batch), width)),
            self.total_weight,
        )

    def predict(self, batch: Any) -> np.ndarray:
        if self.one_row is not None and len(batch) == 1:
            if self.classes_ is None:
                return np.array(self._one_row(batch.columns, self.one_row))
            p0, p1 = self._one_row(batch.columns, self.one_row)
            # np.argmax's choice: the first NaN, else the first of the largest
            index = 0 if p0 != p0 else 1 if p1 != p1 else int(p1 > p0)
            return self.classes_[index : index + 1]
        if self.classes_ is not None:
            return self.classes_[np.argmax(self.predict_proba(batch), axis=1)]
        values = self.encoding.run(batch.columns)
        return weighted_mean(
            ((weight, answer) for weight, answer, _ in self._answers(values, len(batch), proba=False)),
            np.zeros(len(batch)),
            self.total_weight,
        )
