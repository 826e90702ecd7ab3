"""Whether a more complex model is worth saving: only when it beats a simpler one by more
than the cross-validation noise.

The stacked ensemble's meta-model is fitted to the candidates' out-of-fold predictions, and on a
few hundred rows its cross-validated gain over the blend can be smaller than the score's
fold-to-fold noise: on breast_cancer (398 training rows, split 0 of benchmarks/automl.py's
fixed 12-candidate search) the stack was chosen for its higher cross-validated AUC and scored
0.9950 on the test rows, where the blend it displaced scored 0.9978.  So the choice follows the
one-standard-error rule (Breiman et al., 1984; Hastie, Tibshirani and Friedman, *Elements of
Statistical Learning*, 7.10): take the
simplest option whose score is within one standard error of the best.  The standard error is
that of the difference from the best, paired split by split (every option was scored on the
same splits), with Nadeau and Bengio's (2003) correction for the overlap of cross-validation's
training sets — the plain standard error over folds that share most of their rows is far too
small.  One held-out split (a validation channel, very large data) gives no estimate: the noise
is taken as zero, so the best score wins and only an exact tie goes to the simpler option.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from byoc.automl import blend
from byoc.automl.objective import Objective
from byoc.automl.search import Plan, Result, score_predictions

ONE_STANDARD_ERROR = 1.0


@dataclass(frozen=True)
class Option:
    """A model that could be saved: its name, held-out predictions on the plan's covered rows,
    its score on them, and how complex it is (smaller is simpler)."""

    name: str
    predictions: np.ndarray
    score: float
    complexity: int


def split_losses(
    predictions: np.ndarray, y: np.ndarray, plan: Plan, goal: Objective, problem_type: str, n_classes: int
) -> np.ndarray:
    """The objective's loss on each split's held-out rows (``predictions`` and ``y`` hold the
    plan's covered rows, as candidates' out-of-fold predictions do)."""
    position = np.cumsum(plan.covered) - 1  # a covered row's index among the covered rows
    losses = []
    for _, test in plan.splits:
        rows = position[test]
        scores = score_predictions(y[rows], predictions[rows], problem_type, n_classes)
        losses.append(goal.loss(scores.get(goal.key, float("nan"))))
    return np.asarray(losses, dtype=float)


def noise(differences: np.ndarray, plan: Plan) -> float:
    """The standard error of the mean of per-split loss differences, corrected for the overlap
    of the splits' training rows (Nadeau and Bengio, 2003): variance x (1/J + test/train rows);
    zero with fewer than two finite differences (one held-out split)."""
    finite = differences[np.isfinite(differences)]
    if len(finite) < 2:
        return 0.0
    test = float(np.mean([len(t) for _, t in plan.splits]))
    train = float(np.mean([len(t) for t, _ in plan.splits]))
    return math.sqrt((1.0 / len(finite) + test / train) * float(np.var(finite, ddof=1)))


def choose(
    options: Sequence[Option],
    y: np.ndarray,
    plan: Plan,
    goal: Objective,
    problem_type: str,
    n_classes: int,
    *,
    within: float = ONE_STANDARD_ERROR,
) -> tuple[Option, Option, float]:
    """The simplest option whose loss is within ``within`` standard errors (:func:`noise`) of the
    best option's; returns it, the best option and the noise of their difference."""
    losses = [split_losses(o.predictions, y, plan, goal, problem_type, n_classes) for o in options]
    return choose_by_losses(options, losses, plan, goal, within=within)


def choose_by_losses(
    options: Sequence[Option],
    losses: Sequence[np.ndarray],
    plan: Plan,
    goal: Objective,
    *,
    within: float = ONE_STANDARD_ERROR,
) -> tuple[Option, Option, float]:
    """:func:`choose` from each option's :func:`split_losses` (``losses``, in the order of
    ``options``), for a caller that needs those losses too: they are computed once."""
    if not options:
        raise ValueError("no option to choose from")
    by_name = {o.name: split for o, split in zip(options, losses, strict=True)}
    best = min(options, key=lambda o: goal.loss(o.score))
    margins: dict[str, float] = {best.name: 0.0}
    for option in options:
        if option.name != best.name:
            margins[option.name] = within * noise(by_name[option.name] - by_name[best.name], plan)
    gap = {o.name: goal.loss(o.score) - goal.loss(best.score) for o in options}
    close = [o for o in options if gap[o.name] <= margins[o.name]]
    chosen = min(close, key=lambda o: (o.complexity, goal.loss(o.score)))
    return chosen, best, margins[chosen.name]


@dataclass(frozen=True)
class Pool:
    """The candidates the blend (and stack) draw from, and why: ``ranked`` cut to the
    portfolio's, or all of them; the two blends' scores and the noise of their difference."""

    ranked: list[Result]
    kept_short: bool
    short_score: float
    long_score: float
    margin: float


def short_unless_long(
    ranked: Sequence[Result],
    short: Collection[str],
    y: np.ndarray,
    plan: Plan,
    goal: Objective,
    problem_type: str,
    n_classes: int,
    *,
    initial: int,
    deadline: float = math.inf,
    within: float = ONE_STANDARD_ERROR,
) -> Pool | None:
    """The pool a longer search may blend from on small data: the ``short`` candidates (the
    portfolio, fixed before any score is seen) unless the blend of every candidate in ``ranked``
    beats theirs by more than ``within`` standard errors; None when there is no choice to make
    (the search scored nothing beyond ``short``, or fewer than two of them).

    A search that goes on compares ever more candidates on the same few held-out rows, and the
    best-looking of them are the luckiest (the winner's curse).  On diabetes (309 training rows;
    ``benchmarks/automl_selection.py --datasets diabetes --splits 5 --candidates 75 --rules
    long``) the neighbour rounds filled the blend's pool with tree ensembles whose
    cross-validation got lucky: mean test RMSE 55.91 after 75 candidates, against 55.18 after
    the first 12 (about a 60 s job); with this rule 55.29.  On wine (3 splits, 40 candidates)
    accuracy 0.9815 -> 0.9938 and on breast_cancer (2 splits) AUC 0.9955 -> 0.9963, both as after
    12.  The portfolio's candidates are blended as ever; the neighbours must earn their place."""
    kept = [r for r in ranked if r.name in short]
    if len(kept) == len(ranked) or len(kept) < 2:
        return None
    options = []
    for complexity, pool in enumerate((kept, list(ranked))):
        weights, score = blend.select(
            pool, y, goal, problem_type, n_classes, initial=initial, deadline=deadline
        )
        held = blend.held_out([(r, weights[r.name]) for r in pool if r.name in weights])
        options.append(Option(("short", "long")[complexity], held, score, complexity))
    losses = [split_losses(o.predictions, y, plan, goal, problem_type, n_classes) for o in options]
    picked, _, _ = choose_by_losses(options, losses, plan, goal, within=within)
    margin = within * noise(losses[1] - losses[0], plan)
    return Pool(
        kept if picked.name == "short" else list(ranked),
        picked.name == "short",
        options[0].score,
        options[1].score,
        margin,
    )
