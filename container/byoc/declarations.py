"""The hyperparameter declaration type: one declared hyperparameter and its validation.

A :class:`Hyperparameter` says, once, a hyperparameter's type, default, allowed range or
choices and a one-line description (in the spirit of scikit-learn's ``_parameter_constraints``).
Both :mod:`byoc.hyperparameters` (resolution, help, README table) and :mod:`byoc.algorithms`
(each algorithm's declarations) import it from here, so neither imports the other for it.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from byoc.errors import HyperparameterError, a_type

KINDS = ("int", "float", "bool", "str", "list", "column")

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
    ``minimum``/``maximum`` bound numbers (``exclusive_minimum``/``exclusive_maximum`` open them).
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
    exclusive_maximum: bool = False
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
                right = ")" if self.exclusive_maximum else "]"
                parts.append(f"{noun} in {left}{_fmt(lo)}, {_fmt(hi)}{right}")
            elif lo is not None:
                parts.append(f"{noun} {'>' if self.exclusive_minimum else '>='} {_fmt(lo)}")
            elif hi is not None:
                parts.append(f"{noun} {'<' if self.exclusive_maximum else '<='} {_fmt(hi)}")
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
            if not math.isfinite(number):  # 1e400 or NaN: not a fraction, nor a tuning range's
                raise self._error(value)
            if not number.is_integer():  # never rounded: 5.5 trees is a mistake, not 5 or 6
                raise HyperparameterError(
                    f"{self._error(value)}; a fraction is not rounded: give a whole number (a tuning "
                    "job's range for it must be an IntegerParameter, not a ContinuousParameter)"
                )
            number = int(number)
        # a declared bound says it all (_check_range): random_state takes up to 2**32 - 1
        if (self.maximum is None and number > INT_LIMIT) or (self.minimum is None and number < -INT_LIMIT):
            raise HyperparameterError(
                f"hyperparameter '{self.name}': got {show(value)}, beyond the largest integer "
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
        written = value
        if isinstance(value, str):
            text = value.strip()
            if text.startswith(("[", "(")):  # JSON, or str() of a Python list or tuple
                try:
                    value = json.loads(text)
                except ValueError:
                    value = text.strip("[]()").split(",")
            else:
                value = text.split(",")
        if not isinstance(value, (list, tuple)):
            raise self._error(written)
        items: list[str] = []
        for raw in value:
            item = canonical_key(str(raw).strip().strip("\"'")).lower()
            if not item:
                continue
            if self.choices and item not in self.choices:
                hint = did_you_mean(item, self.choices)
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
            raise self._error(written)
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
            # A string stays a string, digits too: a JSON string ('"0"' in hyperparameters.json)
            # can name a header column "0", where a bare number is an index
            # (byoc.training.resolve_target decides against the data).
            return value
        raise self._error(value)

    def _check_range(self, number: float | int, given: Any) -> Any:
        lo, hi = self.minimum, self.maximum
        if lo is not None and (number < lo or (self.exclusive_minimum and number == lo)):
            raise self._error(given)
        if hi is not None and (number > hi or (self.exclusive_maximum and number == hi)):
            raise self._error(given)
        if number in self.forbidden:
            raise self._error(given)
        return number

    def _error(self, given: Any) -> HyperparameterError:
        hint = did_you_mean(given.lower(), self.choices) if isinstance(given, str) else ""
        return HyperparameterError(
            f"hyperparameter '{self.name}': got {show(given)}; expected {self.allowed()} "
            f"(default {self.default_text()}){hint}"
        )


def _fmt(number: Any) -> str:
    if isinstance(number, float) and number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return str(number)


def show(value: Any, limit: int = 60) -> str:
    """A given value for a message, cut to ``limit`` characters (values can be megabytes long)."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value)
    except (TypeError, ValueError):  # not JSON, or an integer beyond Python's digit limit
        text = a_type(value) if not isinstance(value, int) else "an integer of over 4000 digits"
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


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the closest candidates, letter case aside, or ``""``.

    A name written as AMT spells metrics (``validation:accuracy``) is matched by its last part,
    and a beginning of a candidate (``binary`` for binary_classification) counts as close.
    """
    folded = {str(c).lower(): str(c) for c in candidates}
    wanted = name.lower().rpartition(":")[2].strip()
    matches = difflib.get_close_matches(wanted, list(folded), n=3, cutoff=0.6)
    if not matches and len(wanted) >= 3:
        matches = [c for c in folded if c.startswith(wanted)][:3]
    close = [folded[m] for m in matches]
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


def with_defaults(declarations: Iterable[Hyperparameter], given: Mapping[str, Any]) -> dict[str, Any]:
    """``given`` (already coerced) plus the declared default of every hyperparameter it lacks.

    The one place defaults are applied: resolution and the ensemble's members both use it.
    """
    out = dict(given)
    for decl in declarations:
        out.setdefault(decl.name, decl.default)
    return out
