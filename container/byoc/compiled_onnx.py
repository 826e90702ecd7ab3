"""Tree models' compiled form: the fitted trees as one ONNX ``TreeEnsemble`` (ai.onnx.ml
opset 5), run by onnxruntime on one thread.  Forests (:func:`convert`) and HistGradientBoosting
(:func:`convert_boosting`).

Why not treelite's GTIL, which forests used before: a row walks about 20 nodes in each of 100
trees, and GTIL keeps each node's fields in separate arrays, so one row touches several
hundred kilobytes.  In the server the request path between two rows pushes that out of the
CPU's caches; the same row then costs 2-3x what it costs in a loop in-process (README,
"Compiled inference").  onnxruntime's trees pack a node into one small record, so a row touches
a fraction of that and costs less whether the caches are warm or not.

Why not skl2onnx's converter: it writes a forest classifier's thresholds and leaf weights as
float32 attributes (``TreeEnsembleClassifier`` opset 1), so probabilities come out rounded
to about 1e-7 and summed in float32, and near-ties between classes (a 50/50 vote) can fall
the other way than scikit-learn's.  Here everything is float64, as in scikit-learn:

- the input is rounded to float32 first (scikit-learn's trees do; the graph's first two nodes,
  a Cast to float and back) and compared, as float64, with the float64 thresholds
  (``x <= threshold``: the left child, as scikit-learn);
- a classifier's leaf holds, per class, scikit-learn's own per-tree probability (the class
  fractions its tree stores in ``value``); ``TreeEnsemble`` gives one weight per leaf, so each tree is
  written once per class (class k's copy carries class k's weights).  The per-class sums over
  the trees in order are divided by the number of trees here, as scikit-learn's
  ``predict_proba`` does: the same numbers, to the bit in every check so far;
- a regressor: its leaf values summed over the trees in order, divided by their number.

A tree written once per class costs that many walks, so classifiers with more than
:data:`MAX_TARGETS` classes stay on treelite (one walk, a vector per leaf).  A binary forest
whose per-tree probabilities are all multiples of 2^-20 (pure leaves: 0 and 1, the usual case
of fully grown trees) is written once, for class 1: every partial sum of such numbers is exact,
so class 0's sum is exactly the number of trees minus class 1's, as scikit-learn's own sum gives.

Node layout (forests): onnxruntime lays each tree out depth first with a split's "false" child
right after it, so that step of the walk reads the next record, often in the same cache line,
while the "true" child is a jump elsewhere.  A row walks about 15-20 nodes per tree and the
trees (megabytes) are out of the CPU's caches between two requests in the server, so each
jump is a likely miss.  The child that more training samples reached
(``weighted_n_node_samples``) is made the "false" one: where that is the left child the split
is written as ``-x <= -t'`` (``t'`` the next float64 above the threshold ``t``: for float64
``x``, ``x > t`` exactly when ``-x <= -t'``; NaN's way follows the flag as before) on a
negated copy of the row, which the graph appends (Neg, Concat), so every split keeps
onnxruntime's one-mode walk.  Steps to the next record go from about half to three quarters
of a row's steps.

HistGradientBoosting: one tree per iteration and class, each for its own target, so nothing is
written twice.  Its raw score is its baseline plus the trees' values in iteration order; the
baseline is written as a first tree of one leaf, so onnxruntime's sum (from 0, in tree order)
is scikit-learn's to the bit; the link (expit, softmax) is applied by the caller.  Numeric
splits as scikit-learn's (``x <= threshold`` left, NaN the way ``missing_go_to_left`` says);
categorical splits as set membership (``BRANCH_MEMBER``) over the encoder's codes themselves: scikit-learn's
model maps each value to its index among the categories it saw (an unseen value to NaN, i.e.
missing), and the split tests the index; here the set holds the codes of the categories that go
the "true" way, and a split that sends missing values left is written the other way round (the
codes of those going right as the "true" way), so every value outside the set, known to go
nowhere else (an unknown or missing code, NaN, anything else), takes the missing value's way.
Forms written before take the category indices, computed by the caller
(:func:`byoc.compiled.category_index`): in the server that mapping cost a request row more than
the trees' walk.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from byoc.compiled_estimator import CompiledEstimator, dense_matrix

log = logging.getLogger(__name__)

MAX_TARGETS = 4  # classes per forest compiled here (each tree is walked once per class)
_LEQ = 0  # TreeEnsemble's BRANCH_LEQ mode: x <= split goes the "true" way
_MEMBER = 6  # TreeEnsemble's BRANCH_MEMBER mode: x among the node's membership values goes "true"
_SUM = 1  # TreeEnsemble's aggregate_function SUM (the mean is taken here, as scikit-learn)
_EXACT_BITS = 20  # binary probabilities that are multiples of 2^-20 sum exactly (up to 2^33 trees)
# The model's metadata (``metadata_props``) says what its input ``X`` is, for forms written since:
# forms without it take what the estimators fed them before (rows already rounded to float32;
# boosting's category indices).
INPUT_KEY = "byoc.input"
ROUNDS_INPUT = "float64 rows, rounded to float32 by the graph"
TAKES_CODES = "float64 rows, categorical columns as the encoder's codes"


def onnxruntime_version() -> str:
    from importlib import metadata

    return metadata.version("onnxruntime")


def is_forest(estimator: Any) -> bool:
    from sklearn import ensemble

    return isinstance(
        estimator,
        (
            ensemble.RandomForestClassifier,
            ensemble.RandomForestRegressor,
            ensemble.ExtraTreesClassifier,
            ensemble.ExtraTreesRegressor,
        ),
    )


def unsupported(forest: Any) -> str | None:
    """Why this fitted forest is not compiled for onnxruntime (treelite then), or None."""
    name = type(forest).__name__
    if getattr(forest, "n_outputs_", 1) != 1:
        return f"{name} with several outputs"
    classes = getattr(forest, "classes_", None)
    if classes is not None and len(classes) > MAX_TARGETS:
        return f"{name} with {len(classes)} classes (more than {MAX_TARGETS}: each tree is walked once per class)"
    return missing()


def missing() -> str | None:
    """Why onnxruntime cannot be used here (onnx or onnxruntime not installed), or None."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return f"onnxruntime is not installed ({exc})"
    return None


def _leaf_weights(tree: Any) -> np.ndarray:
    """(nodes, targets): what each node answers as a leaf.  A classifier's tree stores each
    class's (weighted) fraction, which its predict_proba returns as it is (scikit-learn >= 1.4;
    an older one that normalised again could differ in the last bit, within the checks'
    tolerance)."""
    return tree.value[:, 0, :]


def _complements_exactly(weights: np.ndarray) -> bool:
    """Whether binary per-tree probabilities ``weights`` (nodes x 2) are multiples of 2^-20 that
    sum to exactly 1: then any sum of them over trees is exact, and class 0's total is the
    number of trees minus class 1's."""
    scaled = weights * 2.0**_EXACT_BITS
    return bool(np.array_equal(scaled, np.round(scaled)) and np.all(weights.sum(axis=1) == 1.0))


def targets(forest: Any) -> list[int]:
    """The classes whose trees are written (all; class 1 alone for a binary forest whose
    probabilities complement exactly), or [0] for a regressor."""
    if not hasattr(forest, "classes_"):
        return [0]
    if len(forest.classes_) == 2 and all(
        _complements_exactly(_leaf_weights(member.tree_)[member.tree_.children_left == -1])
        for member in forest.estimators_
    ):
        return [1]
    return list(range(len(forest.classes_)))


@dataclass(frozen=True)
class Splits:
    """One tree's split nodes, in node order, as arrays: ``feature`` (int), ``threshold``
    (float64), ``mode`` (:data:`_LEQ` or :data:`_MEMBER`), ``missing`` (1: missing values go the
    "true" way), and per ``_MEMBER`` split in order its membership values."""

    feature: np.ndarray
    threshold: np.ndarray
    mode: np.ndarray
    missing: np.ndarray
    members: Sequence[Sequence[float]] = ()


_NODE_KEYS = ("feature", "split", "mode", "true", "true_leaf", "false", "false_leaf", "missing")


class _Writer:
    """The attributes of a ``TreeEnsemble``, tree by tree: each tree's node and leaf arrays are
    kept whole and joined once by :meth:`model` (a Python step per node cost seconds on forests
    of a million nodes)."""

    def __init__(self) -> None:
        self.nodes: dict[str, list[np.ndarray]] = {k: [] for k in _NODE_KEYS}
        self.n_nodes = 0
        self.members: list[float] = []
        self.roots: list[int] = []
        self.leaf_targets: list[np.ndarray] = []
        self.leaf_weights: list[np.ndarray] = []
        self.n_leaves = 0

    def _add(self, nodes: dict[str, Any], targets: np.ndarray, weights: np.ndarray) -> None:
        self.roots.append(self.n_nodes)
        for key in _NODE_KEYS:
            self.nodes[key].append(np.asarray(nodes[key]))
        self.n_nodes += len(nodes["feature"])
        self.leaf_targets.append(targets)
        self.leaf_weights.append(weights)
        self.n_leaves += len(weights)

    def leaf(self, weight: float, target: int) -> None:
        """A tree of one leaf: a split whose two ways both lead to it."""
        one = np.array([self.n_leaves], dtype=np.int64)
        self._add(
            {
                "feature": np.zeros(1, dtype=np.int64),
                "split": np.zeros(1),
                "mode": np.full(1, _LEQ, dtype=np.uint8),
                "missing": np.zeros(1, dtype=np.int64),
                "true": one,
                "true_leaf": np.ones(1, dtype=np.int64),
                "false": one,
                "false_leaf": np.ones(1, dtype=np.int64),
            },
            np.array([target], dtype=np.int64),
            np.array([float(weight)], dtype=np.float64),
        )

    def tree(
        self,
        left: np.ndarray,
        right: np.ndarray,
        is_leaf: np.ndarray,
        splits: Splits,
        leaf_weights: np.ndarray,
        target: int,
    ) -> None:
        """One tree given as node arrays (root 0): ``left`` the "true" way of each split,
        ``right`` the "false" way (onnxruntime lays it out next to the split); ``splits`` its
        split nodes' fields, in node order."""
        split_nodes, leaves = np.flatnonzero(~is_leaf), np.flatnonzero(is_leaf)
        if not len(split_nodes):
            self.leaf(leaf_weights[0], target)
            return
        node_index = np.cumsum(~is_leaf) - 1 + self.n_nodes
        leaf_index = np.cumsum(is_leaf) - 1 + self.n_leaves
        nodes: dict[str, Any] = {
            "feature": np.asarray(splits.feature, dtype=np.int64),
            "split": np.asarray(splits.threshold, dtype=np.float64),
            "mode": np.asarray(splits.mode, dtype=np.uint8),
            "missing": np.asarray(splits.missing, dtype=np.int64),
        }
        for way, children in (("true", left[split_nodes]), ("false", right[split_nodes])):
            to_leaf = is_leaf[children]
            nodes[way] = np.where(to_leaf, leaf_index[children], node_index[children])
            nodes[f"{way}_leaf"] = to_leaf.astype(np.int64)
        for members in splits.members:
            self.members.extend([*members, np.nan])
        self._add(
            nodes,
            np.full(len(leaves), target, dtype=np.int64),
            np.asarray(leaf_weights, dtype=np.float64)[leaves],
        )

    def model(self, width: int, n_targets: int, *, takes: str = "", negated: bool = False) -> bytes:
        """The serialized ONNX model: input ``X`` (float64 rows of ``width``), output ``Y`` (per
        target, the sum over its trees in order).  ``takes`` (:data:`ROUNDS_INPUT`,
        :data:`TAKES_CODES`) is written in the model's metadata; with ROUNDS_INPUT the graph
        rounds ``X`` to float32 first, with ``negated`` it appends ``-X`` (features ``width``
        and up)."""
        from onnx import AttributeProto, TensorProto, helper, numpy_helper

        nodes = {key: np.concatenate(arrays) for key, arrays in self.nodes.items()}
        attributes: dict[str, Any] = {
            "n_targets": n_targets,
            "aggregate_function": _SUM,
            "post_transform": 0,
            "tree_roots": self.roots,
            "nodes_featureids": nodes["feature"].tolist(),
            "nodes_splits": numpy_helper.from_array(nodes["split"]),
            "nodes_modes": numpy_helper.from_array(nodes["mode"]),
            "nodes_truenodeids": nodes["true"].tolist(),
            "nodes_trueleafs": nodes["true_leaf"].tolist(),
            "nodes_falsenodeids": nodes["false"].tolist(),
            "nodes_falseleafs": nodes["false_leaf"].tolist(),
            "nodes_missing_value_tracks_true": nodes["missing"].tolist(),
            "leaf_targetids": np.concatenate(self.leaf_targets).tolist(),
            "leaf_weights": numpy_helper.from_array(np.concatenate(self.leaf_weights)),
        }
        if self.members:
            attributes["membership_values"] = numpy_helper.from_array(
                np.asarray(self.members, dtype=np.float64)
            )
        steps, rows = [], "X"
        if takes == ROUNDS_INPUT:  # as scikit-learn's trees: float64 -> float32 -> float64
            steps += [
                helper.make_node("Cast", ["X"], ["X32"], to=TensorProto.FLOAT),
                helper.make_node("Cast", ["X32"], ["X64"], to=TensorProto.DOUBLE),
            ]
            rows = "X64"
        if negated:
            steps += [
                helper.make_node("Neg", [rows], ["NEG"]),
                helper.make_node("Concat", [rows, "NEG"], ["BOTH"], axis=1),
            ]
            rows = "BOTH"
        # make_node's attributes, sorted by name as it sorts them, each list declared a list of
        # ints (make_node would find that out by looking at every element: a second a million)
        node = helper.make_node("TreeEnsemble", [rows], ["Y"], domain="ai.onnx.ml")
        node.attribute.extend(
            helper.make_attribute(
                key, value, attr_type=AttributeProto.INTS if isinstance(value, list) else None
            )
            for key, value in sorted(attributes.items())
        )
        graph = helper.make_graph(
            [*steps, node],
            "trees",
            [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, width])],
            [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [None, n_targets])],
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)]
        )
        if takes:
            helper.set_model_props(model, {INPUT_KEY: takes})
        return bytes(model.SerializeToString())


def _heavier_left(tree: Any) -> np.ndarray:
    """Per node of a scikit-learn tree: whether more (weighted) training samples reached its left
    child than its right one (False for leaves)."""
    left, right = tree.children_left, tree.children_right
    split = left != -1
    heavier = np.zeros(tree.node_count, dtype=bool)
    weight = tree.weighted_n_node_samples
    heavier[split] = weight[left[split]] > weight[right[split]]
    return heavier


def convert(forest: Any) -> bytes:
    """A forest as :class:`_Writer`'s model: the sum over trees for each of :func:`targets`,
    each split's more visited child laid out next to it (module docstring)."""
    written = targets(forest)
    width = int(forest.n_features_in_)
    writer = _Writer()
    for member in forest.estimators_:
        tree = member.tree_
        weights = _leaf_weights(tree)
        missing_left = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, dtype=np.uint8))
        flip = _heavier_left(tree)
        left, right = tree.children_left, tree.children_right
        split_nodes = np.flatnonzero(left != -1)
        # a flipped split: x > threshold, as -x <= -(next float64 up), goes the "true" way (right)
        flipped, threshold, missing = (
            flip[split_nodes],
            tree.threshold[split_nodes],
            missing_left[split_nodes],
        )
        splits = Splits(
            feature=tree.feature[split_nodes] + np.where(flipped, width, 0),
            threshold=np.where(flipped, -np.nextafter(threshold, np.inf), threshold),
            mode=np.full(len(split_nodes), _LEQ),
            missing=np.where(flipped, missing == 0, missing),
        )
        for target, column in enumerate(written):
            writer.tree(
                np.where(flip, right, left),
                np.where(flip, left, right),
                left == -1,
                splits,
                weights[:, column],
                target,
            )
    return writer.model(width, len(written), takes=ROUNDS_INPUT, negated=True)


def _bits(bitset: np.ndarray) -> list[int]:
    """The integers whose bits are set in a scikit-learn bitset (uint32 words, low bit first)."""
    words = np.asarray(bitset, dtype=np.uint32).tolist()
    return [32 * w + b for w, word in enumerate(words) for b in range(32) if (word >> b) & 1]


def convert_boosting(boosting: Any, categories: Sequence[tuple[int, np.ndarray]] | None = None) -> bytes:
    """A fitted HistGradientBoosting model as :class:`_Writer`'s model: per class (or the one
    regression target), the baseline plus every iteration's tree, summed in order -- its raw
    score.  ``categories``: (column, its known categories, sorted) per categorical column, as
    :func:`byoc.compiled.category_index` takes them; the model then takes those values (the
    encoder's codes) themselves.  None writes the form models trained before carry, which takes
    category indices (see the module docstring)."""
    width = int(boosting.n_features_in_)
    mask = getattr(boosting, "is_categorical_", None)
    if getattr(boosting, "_preprocessor", None) is not None and mask is not None:
        # its trees number features as its own encoder outputs them: categorical ones first
        original = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
    else:
        original = np.arange(width)
    codes = {int(column): np.asarray(k, dtype=np.float64).tolist() for column, k in categories or ()}
    known, known_index = boosting._bin_mapper.make_known_categories_bitsets()
    writer = _Writer()
    baseline = np.asarray(boosting._baseline_prediction, dtype=np.float64).ravel()
    for target, value in enumerate(baseline.tolist()):
        writer.leaf(value, target)
    for iteration in boosting._predictors:
        for target, predictor in enumerate(iteration):
            nodes = predictor.nodes
            # a categorical split whose unknown values go left is written the other way round
            swap = (
                (nodes["is_categorical"] == 1) & (nodes["missing_go_to_left"] == 1) & (categories is not None)
            )

            split_nodes = np.flatnonzero(nodes["is_leaf"] != 1)
            fields = nodes[split_nodes]
            categorical = fields["is_categorical"] == 1
            members = []
            for node in fields[categorical]:
                feature, column = int(node["feature_idx"]), int(original[node["feature_idx"]])
                seen = _bits(known[known_index[feature]])
                if seen != list(range(len(seen))):  # then an index could be unknown to this split
                    raise ValueError(f"feature {feature}'s known categories are not 0..{len(seen) - 1}")
                left = set(_bits(predictor.raw_left_cat_bitsets[node["bitset_idx"]]))
                if categories is None:  # category indices, unknown ones NaN: the missing way
                    members.append([float(c) for c in sorted(left)])
                    continue
                if len(seen) != len(codes[column]):
                    raise ValueError(
                        f"feature {feature} has {len(seen)} categories, its column {len(codes[column])}"
                    )
                # the codes of the categories going the "true" way; any other value (an unknown or
                # missing code, NaN) goes the "false" way, as its category index would be NaN
                members.append(
                    [codes[column][c] for c in seen if (c in left) != bool(node["missing_go_to_left"])]
                )
            missing = fields["missing_go_to_left"].astype(np.int64)
            splits = Splits(
                feature=original[fields["feature_idx"]],
                threshold=np.where(categorical, np.nan, fields["num_threshold"]),
                mode=np.where(categorical, _MEMBER, _LEQ),
                missing=np.where(categorical & (categories is not None), 0, missing),
                members=members,
            )
            left, right = nodes["left"], nodes["right"]
            writer.tree(
                np.where(swap, right, left),
                np.where(swap, left, right),
                nodes["is_leaf"] == 1,
                splits,
                nodes["value"],
                target,
            )
    return writer.model(width, len(baseline), takes="" if categories is None else TAKES_CODES)


def session(model_bytes: bytes) -> Any:
    """An onnxruntime session on one thread, no thread pool (each server worker owns a CPU)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def input_kind(session: Any, prefix: str = "") -> str:
    """What the model's ``X`` takes (:data:`ROUNDS_INPUT`, :data:`TAKES_CODES`), or "" for forms
    written before the metadata; ``prefix``: of one model in a :class:`Joint` session."""
    return str(session.get_modelmeta().custom_metadata_map.get(prefix + INPUT_KEY, ""))


class Runner:
    """``session``'s output ``Y`` for float64 rows ``X``, or, in a :class:`Joint` session, one
    model's (``prefix``: its names' prefix; the others' inputs get no rows).  One row (the
    server's single-row requests) runs through an IOBinding on arrays allocated once per thread:
    ``session.run`` validates and converts its feeds and outputs on every call, about 3 us of a
    10 us forest row in a loop and 8 us with 4 MB read between rows (a constant model: 5.7
    against 2.3 us); more rows run through ``session.run``.  The bound arrays are per thread (a
    worker's threads may predict at once); the answer is a copy."""

    def __init__(self, session: Any, prefix: str = "") -> None:
        self.session = session
        self.input, self.output = f"{prefix}X", f"{prefix}Y"
        widths = {i.name: int(i.shape[1]) for i in session.get_inputs()}
        self.width = widths[self.input]
        self.idle = {name: np.zeros((0, width)) for name, width in widths.items() if name != self.input}
        self.outputs = int({o.name: o.shape[1] for o in session.get_outputs()}[self.output])
        self.kind = input_kind(session, prefix)
        self.joint: Joint | None = None  # the Joint session this runner is a part of
        self._bound = threading.local()
        # Checked once per load: an onnxruntime that renamed the private names still answers
        # through the public call, the same numbers but slower, so say so where operators look.
        self.direct = _direct_run(session, session.io_binding()) is not None
        if not self.direct:
            log.warning(
                "compiled inference: onnxruntime %s has no InferenceSession._sess or IOBinding._iobinding: "
                "one-row predictions take the public run_with_iobinding (same answers, a few microseconds "
                "slower per row); pin the onnxruntime version byoc was tested with to keep the direct call",
                onnxruntime_version(),
            )

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) != 1:
            feeds = {self.input: np.ascontiguousarray(rows, dtype=np.float64), **self.idle}
            (out,) = self.session.run([self.output], feeds)
            return np.asarray(out)
        bound = getattr(self._bound, "arrays", None)
        if bound is None:
            bound = self._bound.arrays = self._bind()
        row, out, run = bound
        np.copyto(row, rows)
        run()
        return out.copy()

    def _bind(self) -> tuple[np.ndarray, np.ndarray, Any]:
        row = np.zeros((1, self.width), dtype=np.float64)
        out = np.zeros((1, self.outputs), dtype=np.float64)
        return (
            row,
            out,
            _bound_run(self.session, {self.input: row, **self.idle}, {self.output: out}, self.direct),
        )


def joined(models: Sequence[bytes]) -> bytes:
    """Several of this module's models as one: model i's graph with every name prefixed
    ``m{i}_`` (its input ``m{i}_X``, its output ``m{i}_Y``, its metadata's keys), side by side.
    Each node computes what it computed in its own model."""
    import onnx
    from onnx import compose, helper

    nodes, inputs, outputs, initializers, props = [], [], [], [], {}
    for i, model_bytes in enumerate(models):
        model = compose.add_prefix(onnx.load_from_string(model_bytes), f"m{i}_")
        nodes += model.graph.node
        inputs += model.graph.input
        outputs += model.graph.output
        initializers += model.graph.initializer
        props.update({f"m{i}_{prop.key}": prop.value for prop in model.metadata_props})
    graph = helper.make_graph(nodes, "trees", inputs, outputs, initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)]
    )
    helper.set_model_props(model, props)
    return bytes(model.SerializeToString())


class Joint:
    """Several models (:func:`joined`) in one onnxruntime session: :meth:`part` runs one of them
    alone, a call runs every one on its own rows at once.  The ensemble's row path
    (byoc.serving.row_ensemble) runs its forest and its gradient boosting so: one onnxruntime run
    instead of two, 3-8 us less per row.  The members run through their parts, so the worker holds
    one session, not the joint one beside the members' own (about 40 MB more per model)."""

    def __init__(self, models: Sequence[bytes]) -> None:
        self.session = session(joined(models))
        self.parts = [Runner(self.session, f"m{i}_") for i in range(len(models))]
        for part in self.parts:
            part.joint = self
        self._bound = threading.local()

    def part(self, index: int) -> Runner:
        return self.parts[index]

    def __call__(self, rows: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Every model's output, model i on ``rows[i]``."""
        if any(len(r) != 1 for r in rows):
            feeds = {
                p.input: np.ascontiguousarray(r, dtype=np.float64)
                for p, r in zip(self.parts, rows, strict=True)
            }
            return [np.asarray(out) for out in self.session.run([p.output for p in self.parts], feeds)]
        return [out.copy() for out in self._run_one(rows)]

    def one(self, rows: Sequence[np.ndarray]) -> list[list[float]]:
        """Every model's output on one row (model i on ``rows[i]``, each of one row), as Python
        floats: what a call's outputs hold, read straight from the bound arrays (no copies)."""
        return [out.tolist()[0] for out in self._run_one(rows)]

    def _run_one(self, rows: Sequence[np.ndarray]) -> list[np.ndarray]:
        """This thread's bound output arrays after one run on one row per model (reused by the
        thread's next run: copy or convert before then)."""
        bound = getattr(self._bound, "arrays", None)
        if bound is None:
            bound = self._bound.arrays = self._bind()
        ins, outs, run = bound
        for array, r in zip(ins, rows, strict=True):
            np.copyto(array, r)
        run()
        return outs

    def _bind(self) -> tuple[list[np.ndarray], list[np.ndarray], Any]:
        ins = [np.zeros((1, p.width), dtype=np.float64) for p in self.parts]
        outs = [np.zeros((1, p.outputs), dtype=np.float64) for p in self.parts]
        run = _bound_run(
            self.session,
            {p.input: row for p, row in zip(self.parts, ins, strict=True)},
            {p.output: out for p, out in zip(self.parts, outs, strict=True)},
            self.parts[0].direct,
        )
        return ins, outs, run


def _bound_run(
    session: Any, inputs: dict[str, np.ndarray], outputs: dict[str, np.ndarray], direct: bool
) -> Any:
    """A call that runs ``session`` on ``inputs``' arrays into ``outputs``' (bound once; the
    arrays must stay alive and in place)."""
    binding = session.io_binding()
    for name, array in inputs.items():
        binding.bind_cpu_input(name, array)
    for name, array in outputs.items():
        binding.bind_output(name, "cpu", 0, np.float64, array.shape, array.ctypes.data)
    run = _direct_run(session, binding) if direct else None
    return run or (lambda: session.run_with_iobinding(binding))


def _direct_run(session: Any, binding: Any) -> Callable[[], None] | None:
    """What ``session.run_with_iobinding(binding)`` calls, without its checks, through
    onnxruntime's private names; None when this onnxruntime lacks them."""
    inner, bound = getattr(session, "_sess", None), getattr(binding, "_iobinding", None)
    if inner is None or bound is None:
        return None
    return lambda: inner.run_with_iobinding(bound, None)


class ForestEstimator(CompiledEstimator):
    """A fitted forest's predict / predict_proba through :func:`convert`'s model in onnxruntime.

    Duck-types the scikit-learn forest it replaces (``classes_``, ``n_features_in_``,
    ``predict``, ``predict_proba``) so a Pipeline or the ensemble calls it unchanged."""

    def __init__(self, model_bytes: bytes, reference: Any, run: Runner | None = None) -> None:
        """``run``: the model's part of a :class:`Joint` session (``model_bytes`` unused), else
        a session of its own."""
        self.run = run or Runner(session(model_bytes))
        self.session = self.run.session
        self.rounds_input = self.run.kind == ROUNDS_INPUT  # else rounded here first
        self.classes_ = getattr(reference, "classes_", None)
        self.n_features_in_ = int(reference.n_features_in_)
        self.n_trees = len(reference.estimators_)
        # A binary forest written for class 1 alone: class 0's sum is n_trees minus class 1's.
        self.complement = self.classes_ is not None and self.run.outputs == 1

    def rows(self, X: Any) -> np.ndarray:
        """``X`` as the model's session takes it."""
        # scikit-learn's trees compare float32 input: rounded by the graph, or here for older forms
        return dense_matrix(X, np.float64 if self.rounds_input else np.float32, self.n_features_in_)

    def _means(self, X: Any) -> np.ndarray:
        values = self.rows(X)
        if not len(values):
            width = 1 if self.classes_ is None else len(self.classes_)
            return np.empty((0, width), dtype=np.float64)
        return self.means_of(self.run(values))

    def means_of(self, sums: np.ndarray) -> np.ndarray:
        """The forest's answer (per class, or its one value) from the session's sums
        (:meth:`row_means`: the same for one row in Python floats).  ``sums`` is left as it
        is: dividing it in place made a second answer from the same output (``proba_of`` then
        ``predict_of``) divide it twice, which can turn a 1-ulp lead into a tie and the label."""
        if self.complement:
            sums = np.concatenate((self.n_trees - sums, sums), axis=1)
        return sums / self.n_trees  # as the forest's predict / predict_proba: the sum, then the mean

    def row_means(self, sums: Sequence[float]) -> list[float]:
        """:meth:`means_of` of one row's sums as Python floats (the same subtraction and division
        per value, without arrays): keep the two alike."""
        if self.complement:
            (one,) = sums
            return [(self.n_trees - one) / self.n_trees, one / self.n_trees]
        return [value / self.n_trees for value in sums]

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.classes_ is None:
            raise AttributeError("a regression model has no predict_proba")
        return self._means(X)

    def predict(self, X: Any) -> np.ndarray:
        return self._labels(self._means(X))

    def proba_of(self, sums: np.ndarray) -> np.ndarray:
        """:meth:`predict_proba` from the session's output on :meth:`rows` (one row or more)."""
        if self.classes_ is None:
            raise AttributeError("a regression model has no predict_proba")
        return self.means_of(sums)

    def predict_of(self, sums: np.ndarray) -> np.ndarray:
        """:meth:`predict` from the session's output on :meth:`rows` (one row or more)."""
        return self._labels(self.means_of(sums))

    def _labels(self, means: np.ndarray) -> np.ndarray:
        if self.classes_ is None:
            return means[:, 0]
        return self.classes_.take(np.argmax(means, axis=1), axis=0)
