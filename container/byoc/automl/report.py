"""report.html: one self-contained page a person reads offline after the job.

Plots are PNG images embedded as data URIs (matplotlib, Agg backend: no display, no network),
drawn from the held-out predictions the search already has, so the report shows how the chosen
model did on rows it was not fitted on.  Text comes from the data, so every string is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from byoc.artifact import REGRESSION
from byoc.automl.search import COMPLETED, Result

Figure = Any
log = logging.getLogger(__name__)
COUNTED_CLASSES = 20  # a confusion matrix writes its counts up to this many classes (1.1 s at 20)
NAMED_CLASSES = 40  # and names its classes up to this many


def load_plotting() -> float:
    """Import the plotting library now; returns the seconds it took.  ``auto`` calls it before
    its search, so the import (seconds on a busy machine) is measured and counted by the
    search's deadline instead of overrunning the few seconds kept for the report."""
    started = time.monotonic()
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.figure  # the part _png draws with

    return time.monotonic() - started


def _png(draw: Callable[[Any], None], *, width: float = 5.5, height: float = 4.0) -> str:
    """A data URI of what ``draw(axes)`` plotted.  Text is drawn as written: class labels and
    column names are the data's, and matplotlib would read one holding two ``$`` as TeX math
    (price levels ``$``, ``$$``, ``$$$``: "$$" raised a ParseException and failed the job)."""
    load_plotting()
    from matplotlib import rc_context
    from matplotlib.figure import Figure as _Figure

    with rc_context({"text.parse_math": False}):
        figure = _Figure(figsize=(width, height), dpi=96)
        axes = figure.subplots()
        draw(axes)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _short(value: Any, width: int) -> str:
    """``value``'s text in at most ``width`` characters: its start and its end around an ellipsis,
    so names that differ only at the end (``balance_2023``, ``balance_2024``) stay apart."""
    text = str(value)
    if len(text) <= width:
        return text
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "\u2026" + text[-tail:]


def _confusion(y: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> Callable[[Any], None]:
    """The confusion matrix's colours; its counts and class names only up to ``COUNTED_CLASSES``
    and ``NAMED_CLASSES`` classes: matplotlib lays out each text on its own, so the counts cost
    the square of the classes (50 classes: 5.7 s, 150: 42 s on a loaded 2-CPU machine, drawn
    past the budget's end) where the colours alone take under a second at 1,000 classes."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(y, predicted, labels=list(range(len(labels))))
    ticks = list(range(len(labels)))
    counted, named = len(labels) <= COUNTED_CLASSES, len(labels) <= NAMED_CLASSES

    def draw(ax: Any) -> None:
        ax.imshow(matrix, cmap="Blues")
        if named:
            ax.set_xticks(ticks, [_short(v, 12) for v in labels], rotation=45, ha="right")
            ax.set_yticks(ticks, [_short(v, 12) for v in labels])
        if counted:
            for i in ticks:
                for j in ticks:
                    ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8)
        ax.set_xlabel("predicted" + ("" if named else " (class codes: too many classes to name)"))
        ax.set_ylabel("actual")
        title = "Confusion matrix (held-out rows)"
        ax.set_title(title if counted else f"{title}, {len(labels)} classes: darker is more rows")

    return draw


def _curves(y: np.ndarray, proba: np.ndarray, labels: Sequence[str], kind: str) -> Callable[[Any], None]:
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    classes = [1] if proba.shape[1] == 2 else list(range(min(proba.shape[1], 10)))

    def draw(ax: Any) -> None:
        for k in classes:
            truth = (y == k).astype(int)
            if truth.min() == truth.max():
                continue
            if kind == "roc":
                fpr, tpr, _ = roc_curve(truth, proba[:, k])
                ax.plot(fpr, tpr, label=f"{_short(labels[k], 12)} (AUC {auc(fpr, tpr):.3f})")
            else:
                precision, recall, _ = precision_recall_curve(truth, proba[:, k])
                ax.plot(recall, precision, label=_short(labels[k], 12))
        if kind == "roc":
            ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
            ax.set_xlabel("false positive rate")
            ax.set_ylabel("true positive rate")
            ax.set_title("ROC curve (held-out rows)")
        else:
            ax.set_xlabel("recall")
            ax.set_ylabel("precision")
            ax.set_title("Precision-recall curve (held-out rows)")
        ax.legend(fontsize=7)

    return draw


def _scatter(y: np.ndarray, predicted: np.ndarray) -> Callable[[Any], None]:
    def draw(ax: Any) -> None:
        ax.scatter(y, predicted, s=6, alpha=0.5)
        low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
        ax.plot([low, high], [low, high], linestyle="--", color="grey")
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.set_title("Predicted vs actual (held-out rows)")

    return draw


def _residuals(y: np.ndarray, predicted: np.ndarray) -> Callable[[Any], None]:
    def draw(ax: Any) -> None:
        ax.scatter(predicted, y - predicted, s=6, alpha=0.5)
        ax.axhline(0, linestyle="--", color="grey")
        ax.set_xlabel("predicted")
        ax.set_ylabel("actual - predicted")
        ax.set_title("Residuals (held-out rows)")

    return draw


def _importances(importances: Mapping[str, float]) -> Callable[[Any], None]:
    top = sorted(importances.items(), key=lambda kv: kv[1], reverse=True)[:20][::-1]

    def draw(ax: Any) -> None:
        # by position: matplotlib puts bars of equal text (two names alike in what is shown) in one place
        ax.barh(range(len(top)), [v for _, v in top])
        ax.set_yticks(range(len(top)), [_short(k, 24) for k, _ in top])
        ax.set_xlabel("mean score drop when shuffled")
        ax.set_title("Permutation feature importance")

    return draw


def _timeline(results: Sequence[Result], objective: Any) -> Callable[[Any], None]:
    done = sorted(
        (r for r in results if r.status == COMPLETED and math.isfinite(r.score)), key=lambda r: r.finished_at
    )
    times = [r.finished_at for r in done]
    scores = [r.score for r in done]
    best: list[float] = []
    for score in scores:
        best.append(score if not best or objective.better(score, best[-1]) else best[-1])

    def draw(ax: Any) -> None:
        ax.scatter(times, scores, s=10, label="candidate")
        ax.step(times, best, where="post", color="C1", label="best so far")
        ax.set_xlabel("seconds since the job started")
        ax.set_ylabel(objective.name)
        ax.set_title("Score over time")
        ax.legend(fontsize=7)

    return draw


# Bidirectional formatting characters: invisible, they reorder the text after them to the end of
# its line or cell ("column '\u202eevil' holds ..." shows the rest of the warning reversed).
_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _text(value: str) -> str:
    """``value`` as HTML text: escaped, and its bidirectional controls shown as their code points."""
    return _BIDI_CONTROLS.sub(lambda m: f"[U+{ord(m.group()):04X}]", html.escape(value))


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{_text(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_text(_cell(row.get(c)))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else ""
    return str(value)


def render(
    *,
    problem_type: str,
    objective: Any,
    y: np.ndarray,
    held_out: np.ndarray,
    labels: Sequence[str],
    results: Sequence[Result],
    leaderboard: Sequence[Mapping[str, Any]],
    exploration: Mapping[str, Any],
    importances: Mapping[str, float] | None,
    summary: Mapping[str, Any],
    deadline: float | None = None,
    left_out: Mapping[str, str] | None = None,
) -> str:
    """The whole page as a string.

    Plots are drawn in order of use until ``deadline`` (monotonic): past it the rest are left
    out, and the page says which, beside ``left_out`` (what the job left out before, and why).
    """
    images: list[tuple[str, str]] = []
    missing = dict(left_out or {})

    spent: list[float] = []  # seconds per plot drawn: the next is expected to cost the most of them

    def plot(title: str, draw: Callable[[Any], None], height: float = 4.0) -> None:
        started = time.monotonic()
        if deadline is not None and started + max(spent, default=0.0) > deadline:
            missing[title] = "not drawn: the time budget ran out"
            return
        images.append((title, _png(draw, height=height)))
        spent.append(time.monotonic() - started)

    if problem_type == REGRESSION:
        plot("Predicted vs actual", _scatter(y, held_out))
        plot("Residuals", _residuals(y, held_out))
    else:
        predicted = held_out.argmax(axis=1)
        plot("Confusion matrix", _confusion(y, predicted, labels))
        plot("ROC curve", _curves(y, held_out, labels, "roc"))
        plot("Precision-recall curve", _curves(y, held_out, labels, "pr"))
    if importances:
        plot("Permutation feature importance", _importances(importances), height=5.0)
    plot("Score over time", _timeline(results, objective))
    if len(missing) > len(left_out or {}):
        log.info(
            "auto: the report leaves out %s: the time budget ran out",
            ", ".join(set(missing) - set(left_out or {})),
        )
    figures = "".join(
        f'<figure><img alt="{_text(title)}" src="{uri}"><figcaption>{_text(title)}</figcaption></figure>'
        for title, uri in images
    )
    if missing:
        figures += (
            "<p>Left out to keep the time budget:</p><ul>"
            + "".join(f"<li>{_text(title)}: {_text(why)}</li>" for title, why in missing.items())
            + "</ul>"
        )
    columns = [
        "rank",
        "candidate_name",
        "candidate_status",
        "family",
        "preprocessing",
        "objective_value",
        "objective_std",
        "fit_time_seconds",
        "ensemble_weight",
    ]
    warnings = "".join(f"<li>{_text(w['message'])}</li>" for w in exploration.get("warnings", []))
    feature_rows = [
        {
            k: v
            for k, v in f.items()
            if k in ("name", "type", "missing_share", "cardinality", "single_column_score")
        }
        for f in exploration.get("features", [])
    ]
    facts = "".join(
        f"<tr><th>{_text(str(k))}</th><td>{_text(_cell(v))}</td></tr>" for k, v in summary.items()
    )
    target = _text(json.dumps(exploration.get("target", {}), indent=1, ensure_ascii=False))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>byoc AutoML report</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; overflow-wrap: anywhere; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }}
figure {{ display: inline-block; margin: 0.5em; }}
img {{ max-width: 560px; }}
pre {{ background: #f6f6f6; padding: 0.5em; white-space: pre-wrap; }}
</style></head><body>
<h1>byoc AutoML report</h1>
<table>{facts}</table>
<h2>Model quality</h2>
{figures}
<h2>Leaderboard</h2>
{_table(leaderboard, columns)}
<h2>Data exploration</h2>
<ul>{warnings or "<li>no warnings</li>"}</ul>
{_table(feature_rows, ["name", "type", "missing_share", "cardinality", "single_column_score"])}
<h3>Target</h3>
<pre>{target}</pre>
</body></html>
"""
