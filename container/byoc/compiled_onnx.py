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

HistGradientBoosting: one tree per iteration and class, each for its own target, so nothing is
written twice.  Its raw score is its baseline plus the trees' values in iteration order; the
baseline is written as a first tree of one leaf, so onnxruntime's sum (from 0, in tree order)
is scikit-learn's to the bit; the link (expit, softmax) is applied by the caller.  Numeric
splits as scikit-learn's (``x <= threshold`` left, NaN the way ``missing_go_to_left`` says);
categorical splits as set membership (``BRANCH_MEMBER``) over the model's category indices,
which the caller computes first (:func:`byoc.compiled.category_index`: an unseen value
becomes NaN, i.e. missing, as scikit-learn's own encoder does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from byoc.compiled_estimator import CompiledEstimator, dense_matrix

MAX_TARGETS = 4  # classes per forest compiled here (each tree is walked once per class)
_LEQ = 0  # TreeEnsemble's BRANCH_LEQ mode: x <= split goes the "true" way
_MEMBER = 6  # TreeEnsemble's BRANCH_MEMBER mode: x among the node's membership values goes "true"
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


class _Writer:
    """The attributes of one ``TreeEnsemble`` node, tree by tree (scikit-learn's left child is
    the "true" way of every split)."""

    def __init__(self) -> None:
        self.nodes: dict[str, list[Any]] = {
            k: [] for k in ("feature", "split", "mode", "true", "true_leaf", "false", "false_leaf", "missing")
        }
        self.members: list[float] = []
        self.roots: list[int] = []
        self.leaf_targets: list[int] = []
        self.leaf_weights: list[float] = []

    def leaf(self, weight: float, target: int) -> None:
        """A tree of one leaf: a split whose two ways both lead to it."""
        self.roots.append(len(self.nodes["feature"]))
        for key, value in (("feature", 0), ("split", 0.0), ("mode", _LEQ), ("missing", 0)):
            self.nodes[key].append(value)
        for way in ("true", "false"):
            self.nodes[way].append(len(self.leaf_targets))
            self.nodes[f"{way}_leaf"].append(1)
        self.leaf_targets.append(target)
        self.leaf_weights.append(float(weight))

    def tree(
        self,
        left: np.ndarray,
        right: np.ndarray,
        is_leaf: np.ndarray,
        split: Any,
        leaf_weights: np.ndarray,
        target: int,
    ) -> None:
        """One tree given as node arrays (root 0); ``split(i)`` gives split node i's (feature,
        threshold, mode, missing goes left, membership values)."""
        splits, leaves = np.flatnonzero(~is_leaf), np.flatnonzero(is_leaf)
        if not len(splits):
            self.leaf(leaf_weights[0], target)
            return
        node_index = np.cumsum(~is_leaf) - 1 + len(self.nodes["feature"])
        leaf_index = np.cumsum(is_leaf) - 1 + len(self.leaf_targets)
        self.roots.append(len(self.nodes["feature"]))
        for i in splits.tolist():
            feature, threshold, mode, missing_left, members = split(i)
            for key, value in (("feature", feature), ("split", threshold), ("mode", mode)):
                self.nodes[key].append(value)
            self.nodes["missing"].append(int(missing_left))
            self.members.extend([*members, np.nan] if mode == _MEMBER else [])
        for way, children in (("true", left[splits]), ("false", right[splits])):
            to_leaf = is_leaf[children]
            self.nodes[way].extend(np.where(to_leaf, leaf_index[children], node_index[children]).tolist())
            self.nodes[f"{way}_leaf"].extend(to_leaf.astype(int).tolist())
        self.leaf_targets.extend([target] * len(leaves))
        self.leaf_weights.extend(np.asarray(leaf_weights, dtype=np.float64)[leaves].tolist())

    def model(self, width: int, n_targets: int) -> bytes:
        """The serialized ONNX model: input ``X`` (float64 rows of ``width``), output ``Y`` (per
        target, the sum over its trees in order)."""
        from onnx import TensorProto, helper, numpy_helper

        nodes = self.nodes
        attributes: dict[str, Any] = {
            "n_targets": n_targets,
            "aggregate_function": _SUM,
            "post_transform": 0,
            "tree_roots": self.roots,
            "nodes_featureids": nodes["feature"],
            "nodes_splits": numpy_helper.from_array(np.asarray(nodes["split"], dtype=np.float64)),
            "nodes_modes": numpy_helper.from_array(np.asarray(nodes["mode"], dtype=np.uint8)),
            "nodes_truenodeids": nodes["true"],
            "nodes_trueleafs": nodes["true_leaf"],
            "nodes_falsenodeids": nodes["false"],
            "nodes_falseleafs": nodes["false_leaf"],
            "nodes_missing_value_tracks_true": nodes["missing"],
            "leaf_targetids": self.leaf_targets,
            "leaf_weights": numpy_helper.from_array(np.asarray(self.leaf_weights, dtype=np.float64)),
        }
        if self.members:
            attributes["membership_values"] = numpy_helper.from_array(
                np.asarray(self.members, dtype=np.float64)
            )
        node = helper.make_node("TreeEnsemble", ["X"], ["Y"], domain="ai.onnx.ml", **attributes)
        graph = helper.make_graph(
            [node],
            "trees",
            [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, width])],
            [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [None, n_targets])],
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)]
        )
        return bytes(model.SerializeToString())


def convert(forest: Any) -> bytes:
    """A forest as :class:`_Writer`'s model: the sum over trees for each of :func:`targets`."""
    written = targets(forest)
    writer = _Writer()
    for member in forest.estimators_:
        tree = member.tree_
        weights = _leaf_weights(tree)
        missing_left = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, dtype=np.uint8))

        def split(i: int, tree: Any = tree, missing_left: np.ndarray = missing_left) -> tuple[Any, ...]:
            return int(tree.feature[i]), float(tree.threshold[i]), _LEQ, missing_left[i], ()

        for target, column in enumerate(written):
            writer.tree(
                tree.children_left,
                tree.children_right,
                tree.children_left == -1,
                split,
                weights[:, column],
                target,
            )
    return writer.model(int(forest.n_features_in_), len(written))


def _bits(bitset: np.ndarray) -> list[int]:
    """The integers whose bits are set in a scikit-learn bitset (uint32 words, low bit first)."""
    words = np.asarray(bitset, dtype=np.uint32).tolist()
    return [32 * w + b for w, word in enumerate(words) for b in range(32) if (word >> b) & 1]


def convert_boosting(boosting: Any) -> bytes:
    """A fitted HistGradientBoosting model as :class:`_Writer`'s model: per class (or the one
    regression target), the baseline plus every iteration's tree, summed in order -- its raw
    score.  Categorical columns take category indices (see the module docstring)."""
    width = int(boosting.n_features_in_)
    mask = getattr(boosting, "is_categorical_", None)
    if getattr(boosting, "_preprocessor", None) is not None and mask is not None:
        # its trees number features as its own encoder outputs them: categorical ones first
        original = np.concatenate([np.flatnonzero(mask), np.flatnonzero(~mask)])
    else:
        original = np.arange(width)
    known, known_index = boosting._bin_mapper.make_known_categories_bitsets()
    writer = _Writer()
    baseline = np.asarray(boosting._baseline_prediction, dtype=np.float64).ravel()
    for target, value in enumerate(baseline.tolist()):
        writer.leaf(value, target)
    for iteration in boosting._predictors:
        for target, predictor in enumerate(iteration):
            nodes = predictor.nodes

            def split(i: int, nodes: Any = nodes, predictor: Any = predictor) -> tuple[Any, ...]:
                node = nodes[i]
                feature = int(node["feature_idx"])
                if not node["is_categorical"]:
                    return (
                        int(original[feature]),
                        float(node["num_threshold"]),
                        _LEQ,
                        node["missing_go_to_left"],
                        (),
                    )
                seen = _bits(known[known_index[feature]])
                if seen != list(range(len(seen))):  # then an index could be unknown to this split
                    raise ValueError(f"feature {feature}'s known categories are not 0..{len(seen) - 1}")
                left = _bits(predictor.raw_left_cat_bitsets[node["bitset_idx"]])
                return (
                    int(original[feature]),
                    np.nan,
                    _MEMBER,
                    node["missing_go_to_left"],
                    [float(c) for c in left],
                )

            writer.tree(nodes["left"], nodes["right"], nodes["is_leaf"] == 1, split, nodes["value"], target)
    return writer.model(width, len(baseline))


def session(model_bytes: bytes) -> Any:
    """An onnxruntime session on one thread, no thread pool (each server worker owns a CPU)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


class ForestEstimator(CompiledEstimator):
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

    def _means(self, X: Any) -> np.ndarray:
        values = dense_matrix(
            X, np.float32, self.n_features_in_
        )  # scikit-learn's trees compare float32 input
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
