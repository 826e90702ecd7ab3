"""Forests' compiled form: the fitted trees as one ONNX ``TreeEnsemble`` (ai.onnx.ml opset 5),
run by onnxruntime on one thread.

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

- the input is rounded to float32 first (scikit-learn's trees do) and compared, as float64,
  with the float64 thresholds (``x <= threshold``: the left child, as scikit-learn);
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
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

MAX_TARGETS = 4  # classes per forest compiled here (each tree is walked once per class)
_LEQ = 0  # TreeEnsemble's BRANCH_LEQ mode: x <= split goes the "true" way
_SUM = 1  # TreeEnsemble's aggregate_function SUM (the mean is taken here, as scikit-learn)
_EXACT_BITS = 20  # binary probabilities that are multiples of 2^-20 sum exactly (up to 2^33 trees)


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
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        return f"{name}: onnxruntime is not installed ({exc})"
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


def convert(forest: Any) -> bytes:
    """The serialized ONNX model (input ``X``: float64 rows, output ``Y``: the sum over trees
    for each of :func:`targets`)."""
    from onnx import TensorProto, helper, numpy_helper

    written = targets(forest)
    n_targets = len(written)
    nodes: dict[str, list[Any]] = {
        k: [] for k in ("feature", "split", "true", "true_leaf", "false", "false_leaf", "missing")
    }
    roots: list[int] = []
    leaf_targets: list[np.ndarray] = []
    leaf_weights: list[np.ndarray] = []
    n_leaves = 0
    for member in forest.estimators_:
        tree = member.tree_
        weights = _leaf_weights(tree)
        left, right = tree.children_left, tree.children_right
        internal = left != -1
        splits = np.flatnonzero(internal)
        leaves = np.flatnonzero(~internal)
        missing_left = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, dtype=np.uint8))
        for target, weight_column in enumerate(written):
            node_index = np.cumsum(internal) - 1 + len(nodes["feature"])
            leaf_index = np.cumsum(~internal) - 1 + n_leaves
            roots.append(len(nodes["feature"]))
            if not len(splits):  # a tree of one leaf: a split whose two ways both lead to it
                for key, value in (("feature", 0), ("split", 0.0), ("missing", 0)):
                    nodes[key].append(value)
                for way in ("true", "false"):
                    nodes[way].append(n_leaves)
                    nodes[f"{way}_leaf"].append(1)
            else:
                nodes["feature"].extend(tree.feature[splits].tolist())
                nodes["split"].extend(tree.threshold[splits].tolist())
                nodes["missing"].extend(missing_left[splits].astype(int).tolist())
                for way, children in (("true", left[splits]), ("false", right[splits])):
                    to_leaf = ~internal[children]
                    nodes[way].extend(np.where(to_leaf, leaf_index[children], node_index[children]).tolist())
                    nodes[f"{way}_leaf"].extend(to_leaf.astype(int).tolist())
            leaf_targets.append(np.full(len(leaves), target))
            leaf_weights.append(weights[leaves, weight_column])
            n_leaves += len(leaves)
    node = helper.make_node(
        "TreeEnsemble",
        ["X"],
        ["Y"],
        domain="ai.onnx.ml",
        n_targets=n_targets,
        aggregate_function=_SUM,
        post_transform=0,
        tree_roots=roots,
        nodes_featureids=nodes["feature"],
        nodes_splits=numpy_helper.from_array(np.asarray(nodes["split"], dtype=np.float64)),
        nodes_modes=numpy_helper.from_array(np.full(len(nodes["feature"]), _LEQ, dtype=np.uint8)),
        nodes_truenodeids=nodes["true"],
        nodes_trueleafs=nodes["true_leaf"],
        nodes_falsenodeids=nodes["false"],
        nodes_falseleafs=nodes["false_leaf"],
        nodes_missing_value_tracks_true=nodes["missing"],
        leaf_targetids=np.concatenate(leaf_targets).astype(int).tolist(),
        leaf_weights=numpy_helper.from_array(np.concatenate(leaf_weights).astype(np.float64)),
    )
    width = int(forest.n_features_in_)
    graph = helper.make_graph(
        [node],
        "forest",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, width])],
        [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [None, n_targets])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)]
    )
    return bytes(model.SerializeToString())


def session(model_bytes: bytes) -> Any:
    """An onnxruntime session on one thread, no thread pool (each server worker owns a CPU)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


class ForestEstimator(BaseEstimator):
    """A fitted forest's predict / predict_proba through :func:`convert`'s model in onnxruntime.

    Duck-types the scikit-learn forest it replaces (``classes_``, ``n_features_in_``,
    ``predict``, ``predict_proba``) so a Pipeline or the ensemble calls it unchanged."""

    def __init__(self, model_bytes: bytes, reference: Any) -> None:
        self.session = session(model_bytes)
        self.classes_ = getattr(reference, "classes_", None)
        self.n_features_in_ = int(reference.n_features_in_)
        self.n_trees = len(reference.estimators_)
        # A binary forest written for class 1 alone: class 0's sum is n_trees minus class 1's.
        self.complement = self.classes_ is not None and self.session.get_outputs()[0].shape[1] == 1

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def fit(self, X: Any, y: Any = None) -> ForestEstimator:
        raise TypeError("a compiled estimator is fitted already; refit the scikit-learn pipeline instead")

    def _means(self, X: Any) -> np.ndarray:
        if hasattr(X, "toarray"):
            X = X.toarray()
        values = np.asarray(X, dtype=np.float32)  # scikit-learn's trees compare float32 input
        if values.ndim != 2 or values.shape[1] != self.n_features_in_:
            raise ValueError(f"expected a matrix of {self.n_features_in_} columns, got shape {values.shape}")
        if not len(values):
            width = 1 if self.classes_ is None else len(self.classes_)
            return np.empty((0, width), dtype=np.float64)
        (sums,) = self.session.run(None, {"X": values.astype(np.float64)})
        if self.complement:
            sums = np.hstack([self.n_trees - sums, sums])
        sums /= self.n_trees  # as the forest's predict / predict_proba: the sum, then the mean
        return sums

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.classes_ is None:
            raise AttributeError("a regression model has no predict_proba")
        return self._means(X)

    def predict(self, X: Any) -> np.ndarray:
        means = self._means(X)
        if self.classes_ is None:
            return means[:, 0]
        return self.classes_.take(np.argmax(means, axis=1), axis=0)
