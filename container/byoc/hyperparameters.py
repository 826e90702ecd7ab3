"""Hyperparameter declarations and their validation.

Every hyperparameter is declared once, as a :class:`Hyperparameter` value (in the spirit of
scikit-learn's ``_parameter_constraints``): its type, default, allowed range or choices and a
one-line description.  The same declarations drive :func:`resolve` (validation with precise
messages), :func:`help_text` (``container/train --help``) and :func:`markdown_table` (README).

Common hyperparameters are declared here; each algorithm declares its own in
``byoc.algorithms`` (imported lazily, because the algorithm registry imports this module).

Values may arrive in any client's spelling (``5``, ``"5"``, ``"true"``, ``True``, ``"None"``,
``"[1, 2]"``): they are decoded by ``environment.decode_hyperparameter_value`` and then
coerced to the declared type here.  Names match with ``-`` and ``_`` treated alike.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from byoc.errors import HyperparameterError

log = logging.getLogger(__name__)

KINDS = ("int", "float", "bool", "str", "list", "column")
PROBLEM_TYPE_CHOICES = ("auto", "regression", "binary_classification", "multiclass_classification")
DEFAULT_ALGORITHM = "decision_tree"
HELP_WIDTH = 100

_TRUE = ("true", "yes", "on", "1", "t", "y")
_FALSE = ("false", "no", "off", "0", "f", "n")
_NONE = ("none", "null", "")
# Integers without a declared maximum still end in compiled code (C long, intp, int32 seeds):
# anything larger is refused here, with the hyperparameter's name, instead of overflowing there.
INT_LIMIT = 2**31 - 1


def canonical_key(name: str) -> str:
    """``max-depth`` -> ``max_depth``: clients differ in the separator they use."""
    return str(name).strip().replace("-", "_")


@dataclass(frozen=True)
class Hyperparameter:
    """One declared hyperparameter.

    ``kind`` is the value type: ``int``, ``float``, ``bool``, ``str``, ``list`` (of strings,
    from a JSON list or a comma-separated string) or ``column`` (a column name or a 0-based
    index).  ``choices`` are string values accepted whatever the kind (``max_features`` is a
    float or ``sqrt``); for ``str`` they are the only values, for ``list`` the allowed items.
    ``minimum``/``maximum`` bound numbers (``exclusive_minimum`` makes the lower bound open).
    ``nullable`` admits ``None``.  ``aliases`` are other accepted names (the classic sample's
    spellings).
    """

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    nullable: bool = False
    forbidden: tuple[Any, ...] = ()
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"{self.name}: kind {self.kind!r} is not one of {KINDS}")
        if canonical_key(self.name) != self.name:
            raise ValueError(f"{self.name}: declared names must be canonical snake_case")

    # -- description ------------------------------------------------------------------------
    def allowed(self) -> str:
        """What the hyperparameter accepts, in words (used in messages and docs)."""
        parts: list[str] = []
        if self.kind in ("int", "float"):
            noun = "an integer" if self.kind == "int" else "a number"
            lo, hi = self.minimum, self.maximum
            if lo is not None and hi is not None:
                left = "(" if self.exclusive_minimum else "["
                parts.append(f"{noun} in {left}{_fmt(lo)}, {_fmt(hi)}]")
            elif lo is not None:
                parts.append(f"{noun} {'>' if self.exclusive_minimum else '>='} {_fmt(lo)}")
            elif hi is not None:
                parts.append(f"{noun} <= {_fmt(hi)}")
            else:
                parts.append(noun)
            if self.forbidden:
                parts[-1] += " except " + ", ".join(_fmt(v) for v in self.forbidden)
            parts.extend(self.choices)
        elif self.kind == "bool":
            parts.extend(["true", "false", *self.choices])
        elif self.kind == "str":
            parts.extend(self.choices or ("a string",))
        elif self.kind == "list":
            items = "|".join(self.choices) if self.choices else "names"
            parts.append(f"a comma-separated list of {items}")
        elif self.kind == "column":
            parts.append("a column name or a 0-based column index")
        if self.nullable:
            parts.append("None")
        return _join_or(parts)

    def default_text(self) -> str:
        if self.default is None:
            return "None"
        if isinstance(self.default, bool):
            return "true" if self.default else "false"
        if isinstance(self.default, (tuple, list)):
            return ",".join(str(v) for v in self.default)
        return _fmt(self.default) if isinstance(self.default, float) else str(self.default)

    # -- validation -------------------------------------------------------------------------
    def coerce(self, value: Any) -> Any:
        """Return ``value`` as the declared type, or raise HyperparameterError saying why."""
        if isinstance(value, str):
            text = value.strip()
            if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
                text = text[1:-1].strip()  # a doubly JSON-encoded string
            if text.lower() in _NONE:
                if self.nullable:
                    return None
                if text == "" or self.kind != "str":
                    raise self._error(value)
            if self.choices and self.kind != "list":
                lowered = text.lower()
                for choice in self.choices:
                    if lowered == choice.lower():
                        return choice
            value = text
        elif value is None:
            if self.nullable:
                return None
            raise self._error(value)
        converter = getattr(self, f"_as_{self.kind}")
        return converter(value)

    def _as_int(self, value: Any) -> int:
        number = _to_number(value)
        if number is None or isinstance(value, bool):
            raise self._error(value)
        if isinstance(number, float):
            if not number.is_integer():
                raise self._error(value)
            number = int(number)
        limit = self.maximum if self.maximum is not None else INT_LIMIT
        if abs(number) > max(limit, INT_LIMIT):
            raise HyperparameterError(
                f"hyperparameter '{self.name}': got {_show(value)}, beyond the largest integer "
                f"scikit-learn takes here ({INT_LIMIT}); expected {self.allowed()} "
                f"(default {self.default_text()})"
            )
        return self._check_range(number, value)

    def _as_float(self, value: Any) -> float:
        number = _to_number(value)
        try:
            number = None if number is None else float(number)
        except OverflowError:  # an integer beyond float64
            number = math.inf
        if number is None or isinstance(value, bool) or not math.isfinite(number):
            raise self._error(value)
        return self._check_range(number, value)

    def _as_bool(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
        raise self._error(value)

    def _as_str(self, value: Any) -> str:
        if self.choices or not isinstance(value, str):
            raise self._error(value)  # a matching choice returned earlier in coerce()
        return value

    def _as_list(self, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    value = text.strip("[]").split(",")
            else:
                value = text.split(",")
        if not isinstance(value, (list, tuple)):
            raise self._error(value)
        items: list[str] = []
        for raw in value:
            item = canonical_key(str(raw).strip().strip("\"'")).lower()
            if not item:
                continue
            if self.choices and item not in self.choices:
                hint = _did_you_mean(item, self.choices)
                raise HyperparameterError(
                    f"hyperparameter '{self.name}': '{raw}' is not one of {', '.join(self.choices)}{hint}",
                    code="bad_hyperparameter",
                )
            if item in items:
                raise HyperparameterError(
                    f"hyperparameter '{self.name}': '{item}' is listed twice; list each once"
                )
            items.append(item)
        if not items:
            raise self._error(value)
        return tuple(items)

    def _as_column(self, value: Any) -> int | str:
        if isinstance(value, bool):
            raise self._error(value)
        if isinstance(value, int):
            if value < 0:
                raise self._error(value)
            return value
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
        if isinstance(value, str) and value:
            return int(value) if value.isascii() and value.isdigit() else value
        raise self._error(value)

    def _check_range(self, number: float | int, given: Any) -> Any:
        lo, hi = self.minimum, self.maximum
        if lo is not None and (number < lo or (self.exclusive_minimum and number == lo)):
            raise self._error(given)
        if hi is not None and number > hi:
            raise self._error(given)
        if number in self.forbidden:
            raise self._error(given)
        return number

    def _error(self, given: Any) -> HyperparameterError:
        hint = _did_you_mean(given.lower(), self.choices) if isinstance(given, str) else ""
        return HyperparameterError(
            f"hyperparameter '{self.name}': got {_show(given)}; expected {self.allowed()} "
            f"(default {self.default_text()}){hint}"
        )


def _fmt(number: Any) -> str:
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return str(number)


def _show(value: Any, limit: int = 60) -> str:
    """A given value for a message, cut to ``limit`` characters (values can be megabytes long)."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value)
    except (TypeError, ValueError):  # not JSON, or an integer beyond Python's digit limit
        text = f"a {type(value).__name__}" if not isinstance(value, int) else "an integer of over 4000 digits"
    return text if len(text) <= limit else text[: limit - 5] + "[...]"


def _join_or(parts: Sequence[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " or " + parts[-1]


def _to_number(value: Any) -> float | int | None:
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


# -- common declarations ---------------------------------------------------------------------
def common() -> tuple[Hyperparameter, ...]:
    """Hyperparameters every algorithm understands."""
    from byoc import algorithms

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
            "column, as SageMaker's built-in algorithms expect).",
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
        from byoc import algorithms

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
                f"{_show(seen[name][1])} and '{given}'={_show(value)}); keep one of them"
            )
        seen[name] = (str(given), value)
    return seen


def resolve(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the user's hyperparameters; return canonical names with defaults filled in.

    ``raw`` is ``TrainingEnvironment.hyperparameters`` (decoded, reserved keys stripped).
    The result holds the common hyperparameters and those of the chosen algorithm (for the
    ensemble: its own plus those of its members, and ``ensemble_members`` as a tuple).
    """
    from byoc import algorithms

    catalogue = _Catalogue.build()
    given = _canonicalise(raw, catalogue)
    out: dict[str, Any] = {}
    for name, decl in catalogue.common.items():
        out[name] = decl.coerce(given[name][1]) if name in given else decl.default

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

    spec = algorithms.get(algorithm)
    accepted: dict[str, Hyperparameter] = dict(catalogue.by_algorithm[algorithm])
    member_decls: dict[str, Hyperparameter] = {}
    if algorithm == "ensemble":
        for member in algorithms.ensemble_member_names():
            for name, decl in catalogue.by_algorithm[member].items():
                member_decls.setdefault(name, decl)

    for name, (given_name, value) in given.items():
        if name in catalogue.common:
            continue
        decl = accepted.get(name) or member_decls.get(name)
        if decl is None and flags_switched_off and name in algorithms.ENSEMBLE_FLAGS:
            catalogue.by_algorithm["ensemble"][name].coerce(value)
            log.warning(
                "hyperparameter '%s' is ignored: use_custom_ensemble is false and algorithm is %s",
                given_name,
                algorithm,
            )
            continue
        if decl is None:
            raise _unknown(name, given_name, algorithm, catalogue)
        out[name] = decl.coerce(value)
    for name, decl in accepted.items():
        out.setdefault(name, decl.default)

    if algorithm == "ensemble":
        members = _ensemble_members(out, given)
        unused = [
            given[name][0]
            for name in given
            if name in member_decls
            and name not in accepted
            and not any(name in catalogue.by_algorithm[m] for m in members)
        ]
        if unused:
            owners = sorted({o for n in unused for o in catalogue.owners(canonical_key(n))})
            raise HyperparameterError(
                f"hyperparameter '{unused[0]}' is used by {', '.join(owners)}, none of which is "
                f"among the ensemble's members ({', '.join(members)}); add one to "
                "ensemble_members or remove the hyperparameter"
            )
        out["ensemble_members"] = members
    spec.check(out)
    return out


def _ensemble_members(out: dict[str, Any], given: Mapping[str, tuple[str, Any]]) -> tuple[str, ...]:
    """ensemble_members, adjusted by the classic sample's ensemble_rf/_gb/_lr switches."""
    from byoc import algorithms

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


def _unknown(name: str, given_name: str, algorithm: str, catalogue: _Catalogue) -> HyperparameterError:
    owners = catalogue.owners(name)
    if owners:
        return HyperparameterError(
            f"hyperparameter '{given_name}' is used by {' and '.join(owners)}, not by "
            f"algorithm '{algorithm}'; set algorithm={owners[0]} or remove '{given_name}'"
        )
    accepted = set(catalogue.common) | set(catalogue.by_algorithm[algorithm])
    hint = _did_you_mean(name, accepted) or _did_you_mean(name, catalogue.all_names())
    return HyperparameterError(
        f"hyperparameter '{given_name}' is unknown{hint or '.'} "
        f"Run `train --help` for the list ({algorithm} accepts: "
        f"{', '.join(sorted(accepted - {'use_custom_ensemble'}))})"
    )


# -- documentation ------------------------------------------------------------------------------
def _sections() -> list[tuple[str, str, tuple[Hyperparameter, ...]]]:
    from byoc import algorithms

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
