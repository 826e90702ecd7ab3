"""Hyperparameter resolution: the job's raw values -> validated, complete hyperparameters.

Every hyperparameter is declared once, as a :class:`~byoc.declarations.Hyperparameter`:
the common ones here, each algorithm's own in :mod:`byoc.algorithms`.  The same declarations
drive :func:`resolve` (validation with precise messages, defaults filled in, the
data-independent cross-checks), :func:`help_text` (``container/train --help``) and
:func:`markdown_table` (README).

Values may arrive in any client's spelling (``5``, ``"5"``, ``"true"``, ``True``, ``"None"``,
``"[1, 2]"``): they are decoded by ``environment.decode_hyperparameter_value`` and then
coerced to the declared type.  Names match with ``-`` and ``_`` treated alike.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from byoc import algorithms
from byoc.declarations import Hyperparameter, canonical_key, did_you_mean, show, with_defaults
from byoc.errors import HyperparameterError

__all__ = ["Hyperparameter", "common", "given_names", "help_text", "markdown_table", "resolve"]

log = logging.getLogger(__name__)

PROBLEM_TYPE_CHOICES = ("auto", "regression", "binary_classification", "multiclass_classification")
DEFAULT_ALGORITHM = "decision_tree"
HELP_WIDTH = 100
N_JOBS_LIMIT = 1024


# -- common declarations ---------------------------------------------------------------------
def common() -> tuple[Hyperparameter, ...]:
    """Hyperparameters every algorithm understands."""
    return (
        Hyperparameter(
            "algorithm",
            "str",
            DEFAULT_ALGORITHM,
            "Which scikit-learn model to train.",
            choices=algorithms.names(),
        ),
        Hyperparameter(
            "problem_type",
            "str",
            "auto",
            "What to learn; auto infers it from the target and logs why.",
            choices=PROBLEM_TYPE_CHOICES,
        ),
        Hyperparameter(
            "target",
            "column",
            0,
            "The label column: a header name or a 0-based index (default: the first "
            "column, as SageMaker's built-in algorithms expect; unset, a header naming another "
            "column target or label is refused). A number that is also the "
            'header name of another column is refused as ambiguous: a JSON string ("\\"0\\"") '
            "is the name.",
            aliases=("label", "target_column", "label_column"),
        ),
        Hyperparameter(
            "header",
            "bool",
            None,
            "Whether CSV files start with a header row; None detects it.",
            nullable=True,
        ),
        Hyperparameter(
            "content_type",
            "str",
            None,
            "Overrides the channels' ContentType (text/csv, application/x-parquet, "
            "application/jsonlines, text/libsvm).",
            nullable=True,
        ),
        Hyperparameter(
            "random_state",
            "int",
            0,
            "Seed for every random choice (splits, bootstraps, CV folds).",
            minimum=0,
            maximum=2**32 - 1,
            aliases=("seed",),
        ),
        Hyperparameter(
            "n_jobs",
            "int",
            -1,
            "CPU cores for random_forest, extra_trees and knn (also as ensemble "
            "members); -1 uses all. gradient_boosting uses OpenMP threads, limited "
            "by OMP_NUM_THREADS.",
            minimum=-1,
            # joblib starts a thread per job at once (and fails past 500000 with an error of its
            # own): no instance has more than a few hundred CPUs
            maximum=N_JOBS_LIMIT,
            forbidden=(0,),
        ),
        Hyperparameter(
            "cv_folds",
            "int",
            3,
            "Cross-validation folds that weight the ensemble's members.",
            minimum=2,
            maximum=20,
        ),
        Hyperparameter(
            "compiled_inference",
            "bool",
            True,
            "Also save a compiled form of the model (onnxruntime for forests and gradient boosting, "
            'numpy for linear, knn and svm, none for decision_tree; README "Compiled inference"), '
            "checked against scikit-learn and used by serve; false keeps scikit-learn only.",
        ),
        Hyperparameter(
            "use_custom_ensemble",
            "bool",
            False,
            "The classic sample's switch: true is the same as algorithm=ensemble.",
        ),
    )


# -- resolution --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Catalogue:
    """Every declaration, indexed by name and alias."""

    common: Mapping[str, Hyperparameter]
    by_algorithm: Mapping[str, Mapping[str, Hyperparameter]]
    aliases: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls) -> _Catalogue:
        common_decls = {hp.name: hp for hp in common()}
        by_algorithm = {
            name: {hp.name: hp for hp in algorithms.get(name).hyperparameters} for name in algorithms.names()
        }
        aliases: dict[str, str] = {}
        for decl in [
            *common_decls.values(),
            *(hp for decls in by_algorithm.values() for hp in decls.values()),
        ]:
            for alias in decl.aliases:
                aliases[canonical_key(alias)] = decl.name
        return cls(common_decls, by_algorithm, aliases)

    def lookup(self, name: str) -> str:
        """The declared name for ``name``: itself, an alias's target, or a case-insensitive match."""
        if name in self.aliases:
            return self.aliases[name]
        known = self.all_names()
        if name in known:
            return name
        folded = {n.lower(): n for n in known}
        match = folded.get(name.lower())
        return self.aliases.get(match, match) if match else name

    def owners(self, name: str) -> list[str]:
        return [algo for algo, decls in self.by_algorithm.items() if name in decls]

    def choice_of(self, value: str) -> tuple[str, str] | None:
        """(hyperparameter, choice) when ``value`` is one of its choices (``random_forest``:
        algorithm), ``auto`` aside: several hyperparameters take it."""
        for decls in (self.common, *self.by_algorithm.values()):
            for decl in decls.values():
                for choice in decl.choices:
                    if choice.lower() == value.lower() != "auto":
                        return decl.name, choice
        return None

    def all_names(self) -> set[str]:
        names = set(self.common) | set(self.aliases)
        for decls in self.by_algorithm.values():
            names |= set(decls)
        return names


def _canonicalise(raw: Mapping[str, Any], catalogue: _Catalogue) -> dict[str, tuple[str, Any]]:
    """canonical name -> (name as given, value); two spellings of one name must agree."""
    seen: dict[str, tuple[str, Any]] = {}
    for given, value in raw.items():
        name = catalogue.lookup(canonical_key(given))
        if name in seen and seen[name][1] != value:
            first = seen[name][0]
            raise HyperparameterError(
                f"hyperparameter '{name}' is given twice with different values ('{first}'="
                f"{show(seen[name][1])} and '{given}'={show(value)}); keep one of them"
            )
        seen[name] = (str(given), value)
    return seen


def resolve(raw: Mapping[str, Any], *, tuning: bool = False) -> dict[str, Any]:
    """Validate the user's hyperparameters; return canonical names with defaults filled in.

    ``raw`` is ``TrainingEnvironment.hyperparameters`` (decoded, reserved keys stripped).
    The result holds the common hyperparameters and those of the chosen algorithm (for the
    ensemble: its own plus those of its members, and ``ensemble_members`` as a tuple).
    ``tuning`` (the job belongs to a tuning job): a hyperparameter of another algorithm is
    checked and ignored with a warning instead of refused, as Automatic Model Tuning sends
    every range to every job, whichever ``algorithm`` a CategoricalParameter picked for it.
    """
    catalogue = _Catalogue.build()
    given = _canonicalise(raw, catalogue)
    out = with_defaults(
        catalogue.common.values(),
        {name: decl.coerce(given[name][1]) for name, decl in catalogue.common.items() if name in given},
    )

    algorithm = out["algorithm"]
    use_ensemble = out.pop("use_custom_ensemble")
    # The classic sample sends ensemble-rf/-gb/-lr even with use-custom-ensemble=false.
    flags_switched_off = "use_custom_ensemble" in given and not use_ensemble
    if use_ensemble:
        if "algorithm" in given and algorithm != "ensemble":
            raise HyperparameterError(
                f"hyperparameter 'use_custom_ensemble' is true but 'algorithm' is "
                f"'{algorithm}'; remove one of them (use_custom_ensemble=true means "
                "algorithm=ensemble)"
            )
        algorithm = out["algorithm"] = "ensemble"

    accepted: dict[str, Hyperparameter] = dict(catalogue.by_algorithm[algorithm])
    member_names: set[str] = set()
    if algorithm == "ensemble":
        for member in algorithms.ensemble_member_names():
            member_names |= set(catalogue.by_algorithm[member])
    for_members: dict[str, tuple[str, Any]] = {}  # coerced once the members are known

    for name, (given_name, value) in given.items():
        if name in catalogue.common:
            continue
        found = accepted.get(name)
        if found is None and name in member_names:
            for_members[name] = (given_name, value)
            continue
        if found is None and flags_switched_off and name in algorithms.ENSEMBLE_FLAGS:
            catalogue.by_algorithm["ensemble"][name].coerce(value)
            log.warning(
                "hyperparameter '%s' is ignored: use_custom_ensemble is false and algorithm is %s",
                given_name,
                algorithm,
            )
            continue
        if found is None and tuning and catalogue.owners(name):
            _ignore_in_tuning(name, given_name, value, algorithm, catalogue)
            continue
        if found is None:
            raise _unknown(name, given_name, algorithm, catalogue)
        out[name] = found.coerce(value)
    out = with_defaults(accepted.values(), out)

    if algorithm == "ensemble":
        members = _ensemble_members(out, given)
        unused = [name for name in for_members if not any(name in catalogue.by_algorithm[m] for m in members)]
        for name in unused if tuning else ():
            _ignore_in_tuning(name, for_members.pop(name)[0], given[name][1], "ensemble", catalogue)
        if unused and not tuning:
            owners = sorted({o for name in unused for o in catalogue.owners(name)})
            raise HyperparameterError(
                f"hyperparameter '{for_members[unused[0]][0]}' is used by {', '.join(owners)}, none of "
                f"which is among the ensemble's members ({', '.join(members)}); add one to "
                "ensemble_members or remove the hyperparameter"
            )
        for name, (_given_name, value) in for_members.items():
            out[name] = _member_value(name, value, members, catalogue)
        out["ensemble_members"] = members
    algorithms.check(out)  # cross-checks that need no data: fail before any channel is read
    return out


def given_names(raw: Mapping[str, Any]) -> frozenset[str]:
    """The declared names of the hyperparameters ``raw`` gives (aliases and spellings folded):
    what the job set, as opposed to a default :func:`resolve` filled in."""
    return frozenset(_canonicalise(raw, _Catalogue.build()))


def _member_value(name: str, value: Any, members: Sequence[str], catalogue: _Catalogue) -> Any:
    """A member hyperparameter given to the ensemble, coerced by each member that takes it.

    Members can differ in what they accept (class_weight=balanced_subsample suits random_forest
    and extra_trees, not gradient_boosting or linear): the value must suit every one of them.
    """
    declarations = {m: catalogue.by_algorithm[m][name] for m in members if name in catalogue.by_algorithm[m]}
    takers = [m for m, decl in declarations.items() if _accepts(decl, value)]
    refusing = [m for m in declarations if m not in takers]
    if not refusing:
        return next(iter(declarations.values())).coerce(value)
    if not takers:  # no member takes it: the declaration's own message says what would do
        declarations[refusing[0]].coerce(value)
    member = refusing[0]
    raise HyperparameterError(
        f"hyperparameter '{name}': ensemble member {member} does not take {show(value)} (it "
        f"expects {declarations[member].allowed()}), while {' and '.join(takers)} "
        f"{'does' if len(takers) == 1 else 'do'}; give a value every member takes, or drop "
        f"{', '.join(refusing)} from ensemble_members"
    )


def _ignore_in_tuning(name: str, given_name: str, value: Any, algorithm: str, catalogue: _Catalogue) -> None:
    """Check a hyperparameter the job's algorithm does not use, then leave it out with a warning.

    A tuning job sends every range to every training job: tuning ``algorithm`` beside
    ``n_estimators`` gives gradient_boosting jobs an n_estimators too.  The value must still
    suit an algorithm that takes it (a typo in a range fails the job, as elsewhere).
    """
    owners = catalogue.owners(name)
    declarations = [catalogue.by_algorithm[o][name] for o in owners]
    if not any(_accepts(decl, value) for decl in declarations):
        declarations[0].coerce(value)  # raises, naming what the hyperparameter accepts
    log.warning(
        "hyperparameter '%s' is ignored: it is used by %s, not by %s (a tuning job gives every "
        "training job every hyperparameter of its ranges)",
        given_name,
        " and ".join(owners),
        algorithm if algorithm != "ensemble" else "the ensemble's members",
    )


def _accepts(decl: Hyperparameter, value: Any) -> bool:
    try:
        decl.coerce(value)
    except HyperparameterError:
        return False
    return True


def _ensemble_members(out: dict[str, Any], given: Mapping[str, tuple[str, Any]]) -> tuple[str, ...]:
    """ensemble_members, adjusted by the classic sample's ensemble_rf/_gb/_lr switches."""
    members = list(out["ensemble_members"])
    for flag, member in algorithms.ENSEMBLE_FLAGS.items():
        value = out.pop(flag, None)
        if value is True and member not in members:
            members.append(member)
        elif value is False and member in members:
            members.remove(member)
    if not members:
        switched = [given[f][0] for f in algorithms.ENSEMBLE_FLAGS if f in given]
        raise HyperparameterError(
            "the ensemble has no members: "
            + (f"{', '.join(switched)} switched every member off; " if switched else "")
            + "set ensemble_members (e.g. random_forest,gradient_boosting,linear) or turn "
            "ensemble_rf / ensemble_gb / ensemble_lr on"
        )
    return tuple(members)


# Names other AutoML tools give a hyperparameter byoc has under its own name: spelling is no
# guide there (``time_budget`` is nowhere near ``max_runtime_seconds``), so they are named here.
OTHER_TOOLS_NAMES: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "time_budget": ("max_runtime_seconds", "FLAML's time_budget"),
        "time_limit": ("max_runtime_seconds", "AutoGluon's time_limit"),
        "max_auto_ml_job_runtime_in_seconds": (
            "max_runtime_seconds",
            "Autopilot's MaxAutoMLJobRuntimeInSeconds",
        ),
        "maxautomljobruntimeinseconds": ("max_runtime_seconds", "Autopilot's MaxAutoMLJobRuntimeInSeconds"),
        "metric": ("objective_metric", "FLAML's metric"),
        "eval_metric": ("objective_metric", "AutoGluon's eval_metric"),
        "task": ("problem_type", "FLAML's task"),
        "target_attribute_name": ("target", "Autopilot's TargetAttributeName"),
        "targetattributename": ("target", "Autopilot's TargetAttributeName"),
    }
)


def _unknown(name: str, given_name: str, algorithm: str, catalogue: _Catalogue) -> HyperparameterError:
    if name.lower() in OTHER_TOOLS_NAMES:
        ours, theirs = OTHER_TOOLS_NAMES[name.lower()]
        return HyperparameterError(
            f"hyperparameter '{given_name}' is unknown: byoc's name for {theirs} is '{ours}'; "
            f"rename '{given_name}' to '{ours}' (`train --help` lists every name)"
        )
    owners = catalogue.owners(name)
    if owners:
        return HyperparameterError(
            f"hyperparameter '{given_name}' is used by {' and '.join(owners)}, not by "
            f"algorithm '{algorithm}'; set algorithm={owners[0]} or remove '{given_name}'"
        )
    value_of = catalogue.choice_of(name)
    if value_of is not None:  # {"random_forest": "true"}: a value written where the name goes
        holder, choice = value_of
        return HyperparameterError(
            f"hyperparameter '{given_name}' is unknown: '{given_name}' is a value of '{holder}'; "
            f'write it as "{holder}": "{choice}"'
        )
    accepted = set(catalogue.common) | set(catalogue.by_algorithm[algorithm])
    hint = did_you_mean(name, accepted) or did_you_mean(name, catalogue.all_names())
    return HyperparameterError(
        f"hyperparameter '{given_name}' is unknown{hint or '.'} "
        f"Run `train --help` for the list ({algorithm} accepts: "
        f"{', '.join(sorted(accepted - {'use_custom_ensemble'}))})"
    )


# -- documentation ------------------------------------------------------------------------------
def _sections() -> list[tuple[str, str, tuple[Hyperparameter, ...]]]:
    sections = [("common", "Every algorithm", common())]
    for name in algorithms.names():
        spec = algorithms.get(name)
        sections.append((name, spec.summary, spec.hyperparameters))
    return sections


def help_text() -> str:
    """Every hyperparameter, common and per algorithm, for ``container/train --help``."""
    lines = ["Hyperparameters (hyperparameters.json; '-' and '_' are alike in names):", ""]
    for title, summary, decls in _sections():
        lines.append(f"{title}: {summary}" if title != "common" else "common (every algorithm):")
        width = max((len(d.name) for d in decls), default=0)
        indent = " " * (width + 4)
        for decl in decls:
            alias = f" (also: {', '.join(decl.aliases)})" if decl.aliases else ""
            text = f"{decl.help}{alias} Accepts {decl.allowed()}; default {decl.default_text()}."
            lines.extend(
                textwrap.wrap(
                    text,
                    width=HELP_WIDTH,
                    initial_indent=f"  {decl.name.ljust(width)}  ",
                    subsequent_indent=indent,
                    break_on_hyphens=False,
                )
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def markdown_table() -> str:
    """The same declarations as a README table (one table, grouped by algorithm)."""
    rows = ["| algorithm | hyperparameter | default | accepts | description |", "|---|---|---|---|---|"]
    for title, _summary, decls in _sections():
        for decl in decls:
            alias = f" (also `{'`, `'.join(decl.aliases)}`)" if decl.aliases else ""
            cells = [
                f"`{title}`" if title != "common" else "all",
                f"`{decl.name}`{alias}",
                f"`{decl.default_text()}`",
                decl.allowed(),
                decl.help,
            ]
            rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"
