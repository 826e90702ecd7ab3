"""What to learn from the target column: the problem type (with its reason) and the labels.

Automatic inference (``problem_type=auto``) follows simple rules a user can predict:

- a text or boolean target is classification (binary when it has two distinct values);
- a numeric target with a non-integer value is regression;
- an integer-valued target with 2 distinct values is binary classification; with at most
  ``MAX_INFERRED_CLASSES`` distinct values, each seen at least twice on average, it is
  multiclass classification; otherwise regression.

Rows whose target is missing (by the rules of :mod:`byoc.values`) are dropped with a warning
that says how many (:func:`drop_missing_target`); a target with no values at all is an error.

Class labels are kept JSON-native (str, int, float or bool) and sorted, so ``model.json``
records them as the user wrote them and the server returns ``yes`` rather than ``1``; a
numeric target read as floats ``0.0``/``1.0`` becomes the ints ``0``/``1``.

Labels written as text keep their spelling when reading them as numbers would lose it
(:func:`keep_spellings`): a classification target whose number-like labels would lose
information as numbers (``01`` and ``1`` both the number 1; ``1.10`` and ``1.1`` both 1.1;
``007``, a code with leading zeros; an integer past float precision) has the labels as written,
spaces trimmed, as its classes.  Other spellings (``1.0``, ``+3``, and ``1`` beside ``1.0``) are
the number, as ever.  A regression target is numbers.  With
``problem_type=auto`` such a target is classification when the numbers would be classes by
the rules above, and also, whatever the count, when a label has leading zeros (``01``,
``007``: codes such as ZIP or product codes, not quantities).

A validation or test channel scored against integer classes (JSON numbers, Parquet int64) reads a
label it writes as text past float precision as the integer written (:func:`exact_integers`):
``9007199254740992`` and ``9007199254740993`` are two classes, one float.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat

from byoc import values as _values
from byoc.artifact import BINARY, MULTICLASS, REGRESSION
from byoc.errors import DataError
from byoc.finite import describe
from byoc.values import category_column

AUTO = "auto"
MAX_INFERRED_CLASSES = 20
_TEXT_TRUE = {"true", "yes", "t", "y", "1"}
_TEXT_FALSE = {"false", "no", "f", "n", "0"}
_LEADING_ZERO = re.compile(r"[+-]?0[0-9]")
FLOAT_EXACT = 2.0**53  # from here on a float64 no longer holds every integer


def _target_name(y: pd.Series) -> str:
    return str(y.name) if y.name is not None else "target"


def _is_text(y: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(y.dtype) or pd.api.types.is_numeric_dtype(y.dtype):
        return False
    kind = pd.api.types.infer_dtype(y, skipna=True)
    return kind not in ("integer", "floating", "mixed-integer-float", "decimal", "boolean")


def _is_bool(y: pd.Series) -> bool:
    return pd.api.types.is_bool_dtype(y.dtype) or pd.api.types.infer_dtype(y, skipna=True) == "boolean"


def _examples(values: pd.Series, n: int = 3) -> str:
    """Up to ``n`` distinct labels for a message, spelled as the classes would be (``1``, not
    ``np.float64(1.0)``), and ``...`` only when there are more."""
    distinct = pd.unique(values.to_numpy(dtype=object))
    shown = _normalise(pd.Series(distinct[:n], dtype=object), _label_kind(values))
    return ", ".join(map(repr, shown)) + (", ..." if len(distinct) > n else "")


TARGET_FIX = "set the target hyperparameter to the label column (a name or 0-based index)"


def drop_missing_target(
    y: pd.Series,
    *,
    fix: str = TARGET_FIX,
    use: str = "learned from",
    locate: Callable[[int], str] | None = None,
) -> tuple[np.ndarray, str | None]:
    """Mask of rows to keep, and a warning for the log when some are dropped.

    ``fix`` (for a target with no value at all) and ``use`` (what dropped rows cannot be) are
    training's; evaluate, which scores labels rather than learns them, passes its own. With
    ``locate`` (the channel's file and row for ``y``'s index), the first dropped row is named
    in its file, as a bad cell is; without, by its place in ``y``.

    Missing is what :mod:`byoc.values` says for the column's kind (README "Values"): in a
    numeric target the words ``NA``, ``None``, ... were read as missing already; in a text
    target only empty text, spaces and nulls are missing.

    Raises DataError when no row has a target value.
    """
    present = y.notna().to_numpy(dtype=bool, copy=True)  # pyarrow-backed frames give read-only views
    if _is_text(y):  # a text target is read as a text feature is: "NA" or "None" is a class
        present &= category_column(y).notna().to_numpy(dtype=bool)
    name = _target_name(y)
    if not present.any():
        raise DataError(
            f"target column '{name}' has no values in any of its {len(y)} rows; {fix}",
            code="empty_target",
        )
    dropped = int((~present).sum())
    if not dropped:
        return present, None
    first = int(np.flatnonzero(~present)[0])
    where = locate(int(y.index[first])) if locate is not None else f"row {first + 1}"
    return present, (
        f"dropped {dropped} of {len(y)} rows whose target '{name}' is missing "
        f"(first: {where}); they cannot be {use}"
    )


def infer_problem_type(
    y: pd.Series,
    requested: str = AUTO,
    *,
    locate: Callable[[int], str] | None = None,
    written: pd.Series | None = None,
) -> tuple[str, str]:
    """-> (problem_type, a reason for the log).

    Raises DataError naming the target column when it cannot be learned: no values, a single
    class, an infinite number (with ``locate``, the channel's file and row for ``y``'s index:
    one ``inf`` among thousands of rows is otherwise hard to find), text asked to be regression,
    more than two classes asked to be binary.  With ``written`` (the labels as the reader left
    them, on ``y``'s index), a single value that the file writes as several integers float64
    cannot tell apart is refused as that (:func:`float_merged_target`), not as one value.
    """
    name = _target_name(y)
    values = y.dropna()
    if values.empty:
        raise DataError(
            f"target column '{name}' has no values; set the target hyperparameter to the label "
            "column (a name or 0-based index)",
            code="empty_target",
        )
    n_distinct = len(_distinct_labels(values)[1])
    if n_distinct < 2:
        if written is not None:
            float_merged_target(written, y)  # raises when the file holds several integers
        raise DataError(
            f"target column '{name}' has a single value ({_examples(values, 1)}) in all "
            f"{len(values)} rows; there is nothing to learn: check the target column "
            "(hyperparameter target) or the data",
            code="single_class",
        )
    text = _is_text(values)
    boolean = _is_bool(values)
    numeric = not text and not boolean
    if numeric:
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
        infinite = np.flatnonzero(~np.isfinite(numbers.to_numpy()))
        if infinite.size:
            at = int(infinite[0])
            where = f"{locate(int(values.index[at]))}, " if locate is not None else ""
            raise DataError(
                f"{where}target column '{name}' holds {describe(numbers.iloc[at])}, which is not a "
                "usable target: leave the cell empty to drop the row, or fix the value",
                code="bad_target",
            )
        integral = bool((numbers % 1 == 0).all())
    else:
        integral = False

    if requested == REGRESSION:
        if text and pd.to_numeric(values, errors="coerce").notna().all():
            numeric = True  # numbers written as text ("1.5"): fine when asked for regression
        if not numeric:
            raise DataError(
                f"target column '{name}' holds {'text' if text else 'true/false'} values "
                f"({_examples(values)}) but problem_type=regression needs numbers; use "
                "problem_type=binary_classification or multiclass_classification, or auto",
                code="bad_target",
            )
        return REGRESSION, f"problem_type=regression was requested for target '{name}'"
    if requested == BINARY:
        if n_distinct != 2:
            raise DataError(
                f"target column '{name}' has {n_distinct} distinct values ({_examples(values)}) "
                "but problem_type=binary_classification needs exactly 2; use "
                "multiclass_classification or auto",
                code="bad_target",
            )
        return BINARY, f"problem_type=binary_classification was requested for target '{name}'"
    if requested == MULTICLASS:
        return MULTICLASS, (
            f"problem_type=multiclass_classification was requested for target '{name}' ({n_distinct} classes)"
        )
    if requested != AUTO:
        raise ValueError(f"unknown problem_type {requested!r}")

    kind = "text" if text else "true/false" if boolean else "integer" if integral else "numeric"
    if text or boolean:
        chosen = BINARY if n_distinct == 2 else MULTICLASS
        return chosen, f"target '{name}' has {n_distinct} distinct {kind} values -> {chosen}"
    chosen = _numbers_kind(integral, n_distinct, len(values))
    if not integral:
        return REGRESSION, f"target '{name}' has non-integer numeric values -> {REGRESSION}"
    if chosen == BINARY:
        return BINARY, f"target '{name}' has 2 distinct integer values -> {BINARY}"
    if chosen == MULTICLASS:
        return MULTICLASS, (
            f"target '{name}' has {n_distinct} distinct integer values "
            f"(<= {MAX_INFERRED_CLASSES}) in {len(values)} rows -> {MULTICLASS}; "
            "set problem_type=regression if they are quantities"
        )
    return REGRESSION, (
        f"target '{name}' has {n_distinct} distinct integer values in "
        f"{len(values)} rows (too many for classes) -> {REGRESSION}; set "
        "problem_type=multiclass_classification if they are classes"
    )


def _numbers_kind(integral: bool, n_distinct: int, rows: int) -> str:
    """``problem_type=auto``'s choice for a numeric target of ``rows`` values (module docstring)."""
    if not integral:
        return REGRESSION
    if n_distinct == 2:
        return BINARY
    if n_distinct <= MAX_INFERRED_CLASSES and rows >= 2 * n_distinct:
        return MULTICLASS
    return REGRESSION


def _exact_past_precision(written: pd.Series, y: pd.Series) -> list[int]:
    """The integers the target holds at or past 2**53 in size, exactly as the file writes them:
    ``y``'s own when it holds integers (Parquet's int64 and uint64, JSON Lines' ints), else
    those its text spellings write (CSV) where ``y`` is a float past precision."""
    if pd.api.types.is_integer_dtype(y.dtype) and not pd.api.types.is_bool_dtype(y.dtype):
        numbers = y.dropna().to_numpy()
        return [int(v) for v in numbers[(numbers >= FLOAT_EXACT) | (numbers <= -FLOAT_EXACT)]]
    if y.dtype == object:
        return [
            v
            for v in y.dropna().to_numpy()
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= FLOAT_EXACT
        ]
    if not pd.api.types.is_float_dtype(y.dtype):
        return []
    past = _past_precision(y.to_numpy(dtype=float, na_value=np.nan))
    spelled = written_labels(written, y) if past.size else None
    if spelled is None:
        return []
    return [n for n in (_exact_integer(spelled.iloc[pos]) for pos in past.tolist()) if n is not None]


def float_merged_target(written: pd.Series, y: pd.Series) -> str | None:
    """A regression target is learned as float64, which holds every integer only below 2**53:
    integers past it that differ in their last digits (``9223372036854775800`` and
    ``9223372036854775807``; ids, nanosecond timestamps) become one number.  ``written`` is the
    target as the reader left it, ``y`` as typed, on one index.

    Raises DataError when that leaves a single value although the file holds several (read as
    floats the column looked like a single value, and the job was refused as holding one; or it
    trained a constant model); returns a warning for the log naming how many distinct values
    merged when it leaves several (they differ by less than float64's own resolution there, about
    1 part in 9e15, which no regression model's predictions resolve either), else None."""
    exact = sorted(set(_exact_past_precision(written, y)))
    groups: dict[float, list[int]] = {}
    for number in exact:
        groups.setdefault(float(number), []).append(number)
    merged = [group for group in groups.values() if len(group) > 1]
    if not merged:
        return None
    name = _target_name(y)
    pair = f"{merged[0][0]} and {merged[0][-1]} are both {float(merged[0][0])!r}"
    numbers = pd.to_numeric(y.dropna(), errors="coerce").to_numpy(dtype=float)
    if np.unique(numbers).size == 1:
        raise DataError(
            f"target column '{name}' holds {len(exact)} distinct integers that float64 cannot tell "
            f"apart ({pair}), not a single value: a regression target is learned as float64 numbers, "
            f"which hold every integer only below 2**53 ({int(FLOAT_EXACT)}), so all of them are one "
            f"number and there is nothing to learn; shift or rescale the target so its values differ "
            f"within float64's precision (subtract a base such as {exact[0]}, or divide by a unit), "
            "or set problem_type to a classification if they are ids",
            code="imprecise_target",
        )
    count = sum(map(len, merged))
    return (
        f"target '{name}': {count} distinct integers past 2**53 are only {len(merged)} float64 values "
        f"({pair}): a regression target is learned as float64, so they were merged; they differ by "
        "less than float64's resolution at that size, which no prediction resolves either: shift the "
        "target (subtract a base) if those differences matter"
    )


# -- spellings -----------------------------------------------------------------------------------
def written_labels(written: pd.Series, typed: pd.Series, classes: Sequence[str] = ()) -> pd.Series | None:
    """The labels of a numeric ``typed`` target as ``written`` spells them (spaces trimmed),
    missing where ``typed`` is (empty cells, and the words ``NA``, ``None``, ... a numeric
    column reads as missing) unless the spelling is one of a model's text ``classes`` (``None``
    is a class of a model trained on None/fraud, whatever else the column holds); None when
    there is no spelling to keep: ``typed`` is no number column, or the reader gave numbers
    (Parquet, JSON numbers) rather than text."""
    if not pd.api.types.is_numeric_dtype(typed.dtype) or pd.api.types.is_bool_dtype(typed.dtype):
        return None
    if isinstance(written.dtype, pd.StringDtype):
        text = pa.array(written.array)
    elif written.dtype == object:
        try:
            text = pa.array(written.to_numpy(dtype=object), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
    else:
        return None
    if not (pat.is_string(text.type) or pat.is_large_string(text.type)):
        return None
    trimmed = pc.utf8_trim(text, characters=_values.WHITESPACE)
    present = pa.array(typed.notna().to_numpy(dtype=bool))
    if classes:
        named = pc.is_in(trimmed, value_set=pa.array(list(classes), type=trimmed.type))
        present = pc.or_(present, pc.fill_null(named, False))
    spelled = pc.if_else(present, trimmed, pa.scalar(None, type=trimmed.type)).to_pandas()
    return pd.Series(spelled.array, index=typed.index, name=typed.name)


def _past_precision(numbers: np.ndarray) -> np.ndarray:
    """The positions of the finite ``numbers`` at or past 2**53, where a float64 no longer holds
    every integer (NaN and infinities are not)."""
    return np.flatnonzero(np.isfinite(numbers) & (np.abs(numbers) >= FLOAT_EXACT))


def exact_integers(written: pd.Series, typed: pd.Series) -> pd.Series:
    """``typed`` (a label column of text read as float64) with each label past float precision
    as its spelling in ``written`` reads exactly, for a model whose classes are exact integers
    (JSON numbers, Parquet int64): ``9007199254740992`` and ``9007199254740993`` are two ids,
    one float.  An integer spelling is that int; another is kept as written, which no integer
    class matches (:meth:`Labels.encode`).  ``typed`` itself when no label is past precision.
    A label past float64's range stays ``inf``, no class, as :func:`_one` reads it: as an int,
    ``1e30000`` was a label no message could print and ``1e999999999`` stalled the job."""
    if not pd.api.types.is_float_dtype(typed.dtype):
        return typed
    # finite: "1e999999999" is the float inf, and as the integer written a billion digits
    past = _past_precision(typed.to_numpy(dtype=float))
    spelled = written_labels(written, typed) if past.size else None
    if spelled is None:
        return typed
    out = typed.to_numpy(dtype=object)
    for pos in past.tolist():
        text = spelled.iloc[pos]
        exact = _exact_integer(text)
        out[pos] = text if exact is None else exact
    return pd.Series(out, index=typed.index, name=typed.name)


def rounded_labels(y: pd.Series, *, locate: Callable[[int], str] | None = None) -> str | None:
    """A warning for the log when a classification label was read as a float past 2**53 (a JSON
    number written with a fraction or an exponent, ``9007199254740993.0``; a Parquet double), or
    None.  There a float64 no longer holds every integer, so the reader already rounded the label
    (``...993.0`` reads as ``...992``): ids that differ in their last digits may be one class, or
    a validation label another class than written.  What was written is gone by then, so this
    cannot be undone, only said; the fix is the file's: integers, or text.  ``y`` as the reader
    left it (text labels, which :func:`exact_integers` reads exactly, are no floats)."""
    if pd.api.types.is_float_dtype(y.dtype):
        past = _past_precision(y.to_numpy(dtype=float, na_value=np.nan))
    elif y.dtype == object:
        past = np.flatnonzero(
            [isinstance(v, float) and math.isfinite(v) and abs(v) >= FLOAT_EXACT for v in y.to_numpy()]
        )
    else:
        return None
    if not past.size:
        return None
    first = int(past[0])
    where = locate(int(y.index[first])) if locate is not None else f"row {first + 1}"
    return (
        f"{where}, target '{_target_name(y)}': the label {float(y.iloc[first])!r} is a floating-point "
        f"number past 2**53 ({past.size} such labels in all), where a float cannot hold every integer: "
        "ids that differ in their last digits may have been read as one class; write such labels as "
        "integers (a JSON integer without '.0' or exponent, a Parquet int64 column) or as text"
    )


def _exact_integer(text: str) -> int | None:
    """The integer ``text`` spells (``9007199254740993``, ``+9007199254740993.0``, ``1e20``),
    read exactly rather than through float64; None when it spells no finite integer.  For the
    magnitudes a float64 holds (a caller checks): ``1e999999999`` would be a billion digits."""
    try:
        number = Decimal(text)
    except (InvalidOperation, TypeError, ValueError):
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


def keep_spellings(
    written: pd.Series, typed: pd.Series, requested: str = AUTO
) -> tuple[pd.Series, str | None]:
    """The train target's labels: ``typed`` (read as :mod:`byoc.values` reads a column), or the
    labels as written (:func:`written_labels`) when they are class labels that would not survive
    being numbers (the module docstring's rule); with the reason for the log when it keeps them.

    ``requested`` is the problem_type hyperparameter: regression keeps numbers, binary and
    multiclass keep the spellings, auto keeps them when the target is classes (leading zeros,
    or numbers few enough to be classes).
    """
    spelled = written_labels(written, typed)
    if spelled is None or requested == REGRESSION:
        return typed, None
    numbers = typed.dropna().to_numpy(dtype=float)
    if np.isinf(numbers).any():
        return typed, None  # refused as not finite (infer_problem_type), whatever the spelling
    codes = bool(spelled.str.match(_LEADING_ZERO.pattern, na=False).any())
    if requested == AUTO and not codes:  # vectorised: a regression's millions of values stay numbers
        integral = bool((numbers % 1 == 0).all())
        n_distinct = len(np.unique(numbers)) if integral else 0
        if _numbers_kind(integral, n_distinct, len(numbers)) == REGRESSION:
            return typed, None
    distinct = sorted(spelled.dropna().unique().tolist())
    by_number: dict[float, list[str]] = {}
    for text in distinct:
        by_number.setdefault(float(text), []).append(text)
    odd = _lossy(distinct, by_number)
    if not odd:
        return typed, None
    leading = [text for text in odd if _LEADING_ZERO.match(text)]
    spelled, classes = _one_class_per_integer(spelled, distinct)
    return spelled, _kept_reason(_target_name(typed), classes, by_number, odd, leading, requested)


def _whole(text: Any) -> int | None:
    """The integer a whole-number spelling writes (``1``, ``1.0``, ``+1``, ``9007199254740993.0``),
    exactly; None for any other label (``01`` is a code, ``1e0`` or ``1.10`` another spelling)."""
    if not isinstance(text, str) or not _WHOLE.fullmatch(text) or _LEADING_ZERO.match(text):
        return None
    return int(text.partition(".")[0])


def _one_class_per_integer(spelled: pd.Series, distinct: list[str]) -> tuple[pd.Series, list[str]]:
    """``spelled`` with the whole-number spellings of one integer (``1`` and ``1.0``; ids past 2**53
    written ``9007199254740993`` and ``9007199254740993.0``) as one label, the integer's digits,
    and the distinct labels left: two writers of one id (an integer column beside a float one)
    write one class, as they do where labels are numbers, not two classes the model confuses."""
    groups: dict[int, list[str]] = {}
    for text in distinct:
        if (number := _whole(text)) is not None:
            groups.setdefault(number, []).append(text)
    merged = {text: str(number) for number, texts in groups.items() if len(texts) > 1 for text in texts}
    if not merged:
        return spelled, distinct
    return spelled.replace(merged), sorted({merged.get(text, text) for text in distinct})


_WHOLE = re.compile(r"[+-]?[0-9]+(?:\.0*)?")  # an integer, with or without a zero fraction


def _lossy(distinct: list[str], by_number: dict[float, list[str]]) -> list[str]:
    """The spellings that reading as numbers would lose: two spellings of one number that are
    not all whole numbers (``1.10`` and ``1.1``, versions: ``by_number`` groups them), leading
    zeros (``007``: a code; ``01`` beside ``1`` too), integers past float precision however
    written (``9007199254740993``, ``9007199254740993.0``, ``9.007199254740993e15``).  A spelling
    that is only not byoc's own (``1.0`` alone, ``+3``, ``1.50``) loses nothing: the class is
    that number, as before; so are ``1`` and ``1.0`` together, the same class written by two
    writers (a float column, or pandas' integer column with a missing value, beside an
    integer one), not two classes."""
    return [
        text
        for text in distinct
        if (len(by_number[float(text)]) > 1 and not all(map(_WHOLE.fullmatch, by_number[float(text)])))
        or _LEADING_ZERO.match(text)
        or _rounded_by_float(text)
    ]


def _rounded_by_float(text: str) -> bool:
    """Whether ``text`` spells an integer past float precision that float64 rounds to another."""
    number = float(text)
    if not math.isfinite(number) or abs(number) < FLOAT_EXACT:
        return False
    exact = _exact_integer(text)
    return exact is not None and exact != int(number)


def _kept_reason(
    name: str,
    distinct: list[str],
    by_number: dict[float, list[str]],
    odd: list[str],
    codes: list[str],
    requested: str,
) -> str:
    reasons = [
        f"{' and '.join(repr(t) for t in texts[:3])} would {'both' if len(texts) == 2 else 'all'} be "
        f"the number {_values.category(number)}"
        for number, texts in by_number.items()
        if len(texts) > 1
    ][:2]
    merged = {t for texts in by_number.values() if len(texts) > 1 for t in texts}
    reasons += [
        f"{text!r} would be the number {_values.category(float(text))}" for text in odd if text not in merged
    ][: max(0, 3 - len(reasons))]
    reason = (
        f"target '{name}' keeps its {len(distinct)} labels as text, as written "
        f"({_preview(tuple(distinct), 5)}), for its classes and the server's answers: read as "
        f"numbers, {'; '.join(reasons)}"
    )
    if requested != AUTO:
        return reason
    if codes:
        reason += (
            f"; labels with leading zeros ({', '.join(repr(t) for t in codes[:3])}) are codes, not "
            "quantities, so the target is classes"
        )
    return reason + "; set problem_type=regression if they are quantities"


# -- labels --------------------------------------------------------------------------------------
def _label_kind(values: pd.Series) -> str:
    if _is_bool(values):
        return "bool"
    if not _is_text(values):
        numbers = pd.to_numeric(values, errors="coerce").astype(float)
        return "int" if bool((numbers % 1 == 0).all()) else "float"
    return "str"


def _normalise(values: pd.Series, kind: str) -> list[Any]:
    """Python values of ``kind``; None where a value cannot be read as that kind."""
    out: list[Any] = []
    for v in values.to_numpy(dtype=object):
        out.append(_one(v, kind))
    return out


def _one(v: Any, kind: str) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if kind == "str":
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            return str(int(v))
        return str(v)
    if kind == "bool":
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        text = str(v).strip().lower()
        return True if text in _TEXT_TRUE else False if text in _TEXT_FALSE else None
    if kind == "int" and isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        return int(v)  # not through float: ids past 2**53 (Parquet int64, JSON) would merge
    try:
        number = float(v)
    except (TypeError, ValueError):
        return None
    if kind == "int":
        if isinstance(v, str) and math.isfinite(number) and abs(number) >= FLOAT_EXACT:
            return _exact_integer(v)  # as written: 9007199254740993 is no float (exact_integers)
        return int(number) if number.is_integer() else None
    return number + 0.0  # -0.0 is the class 0.0: the set of labels kept whichever zero came first


def _distinct_labels(values: pd.Series) -> tuple[str, set[Any]]:
    """The label kind and the distinct labels as :class:`Labels` will spell them.

    An object column is normalised value by value: hashing would merge ``0`` with ``False``
    and keep ``"True"`` apart from ``True``, unlike the labels that encode them.
    """
    kind = _label_kind(values)
    if values.dtype != object:
        values = pd.Series(pd.unique(values.to_numpy()), dtype=object)
    return kind, {v for v in _normalise(values, kind) if v is not None}


@dataclass(frozen=True)
class Labels:
    """Classification labels: sorted, JSON-native; the model predicts indices into them."""

    classes: tuple[Any, ...]
    kind: str = "str"  # str | int | float | bool: how other channels' labels are read
    name: str = "target"

    def encode(self, y: pd.Series, *, where: str) -> np.ndarray:
        """Indices into ``classes``; DataError naming ``where`` for a label unseen in training."""
        fast = self._fast_codes(y)
        if fast is not None:
            return fast
        out = self._codes(y)
        pos = self.first_unseen(y, out)
        if pos is not None:
            raise DataError(
                f"{where}: target '{self.name}' row {pos + 1} holds {self.shown(y, pos)}, {self.not_seen}",
                code="unseen_label",
            )
        return out

    @property
    def text_classes(self) -> tuple[str, ...]:
        """The classes when they are text (how other channels' labels keep their spellings:
        :func:`written_labels`), else none."""
        return tuple(self.classes) if self.kind == "str" else ()

    @property
    def not_seen(self) -> str:
        """What is wrong with a label :meth:`first_unseen` finds, and the fix."""
        return (
            f"which is not among the classes seen in training ({_preview(self.classes)}); fix the "
            "label or add examples of it to the train channel"
        )

    def first_unseen(self, y: pd.Series, codes: np.ndarray | None = None) -> int | None:
        """Position of the first label that is not among ``classes`` (None when all are), for a
        caller that names its row its own way (the file and the row in it)."""
        codes = self._codes(y) if codes is None else codes
        bad = np.flatnonzero(codes < 0)
        return int(bad[0]) if bad.size else None

    def shown(self, y: pd.Series, pos: int) -> str:
        """The label at ``pos`` for a message, spelled as :attr:`classes` are (``2``, not the
        ``np.float64(2.0)`` a CSV column of numbers holds), or "a missing value"."""
        raw = y.iloc[pos]
        label = _one(raw, self.kind)
        if label is None and pd.isna(raw):
            return "a missing value"
        return repr(label if label is not None else raw.item() if isinstance(raw, np.generic) else raw)

    def _codes(self, y: pd.Series) -> np.ndarray:
        """Indices into ``classes``, -1 where a label is not among them.  Text classes take a
        whole-number spelling of their integer too (``1.0`` is the class ``1``, ``9007199254740993``
        the class ``9007199254740993.0``), as training makes such spellings one class
        (:func:`_one_class_per_integer`); unless two classes spell that integer (a model trained
        before), which leaves the label unseen rather than picking one."""
        index = {c: i for i, c in enumerate(self.classes)}
        if self.kind == "str":
            wholes = [(_whole(c), i) for i, c in enumerate(self.classes)]
            count = Counter(number for number, _ in wholes if number is not None)
            index.update({number: i for number, i in wholes if number is not None and count[number] == 1})
        return np.fromiter(
            (
                i if (i := index.get(value, -1)) >= 0 else index.get(_whole(value), -1)
                for value in _normalise(y, self.kind)
            ),
            dtype=np.int64,
            count=len(y),
        )

    def _fast_codes(self, y: pd.Series) -> np.ndarray | None:
        """Vectorised encoding for the common dtypes; None sends the caller the slow way."""
        if self.kind == "str" and pd.api.types.is_string_dtype(y.dtype) and _is_text(y):
            values: Any = y.to_numpy(dtype=object)
        elif self.kind == "int" and pd.api.types.is_integer_dtype(y.dtype) and not y.hasnans:
            values = y.to_numpy(dtype=np.int64)  # exact: float would merge ids past 2**53
        elif (
            self.kind in ("int", "float")
            and pd.api.types.is_numeric_dtype(y.dtype)
            and not pd.api.types.is_bool_dtype(y.dtype)
        ):
            values = y.to_numpy(dtype=float)
        elif self.kind == "bool" and pd.api.types.is_bool_dtype(y.dtype):
            values = y.to_numpy(dtype=bool)
        else:
            return None
        codes = pd.Index(list(self.classes), dtype=object).get_indexer(values).astype(np.int64)
        return None if (codes < 0).any() else codes

    def decode(self, idx: np.ndarray) -> np.ndarray:
        """Original labels for predicted indices."""
        return np.asarray(self.classes, dtype=object)[np.asarray(idx, dtype=np.int64)]

    def to_list(self) -> list[Any]:
        return list(self.classes)

    @property
    def booleans(self) -> bool:
        """Whether every class is a boolean: the label column held JSON ``true``/``false``, a
        Parquet boolean or CSV ``true``/``FALSE``, which the readers make the categories
        ``true``/``false`` as :mod:`byoc.values` makes every boolean.  model.json records it
        (``target.type``), so the server answers booleans where the training data held them."""
        if self.kind == "bool":
            return True
        return self.kind == "str" and set(self.classes) <= {_values.TRUE, _values.FALSE}


def _preview(classes: tuple[Any, ...], n: int = 10) -> str:
    shown = ", ".join(repr(c) for c in classes[:n])
    return shown + (f", ... {len(classes)} in all" if len(classes) > n else "")


def fit_labels(y: pd.Series) -> Labels:
    """The sorted distinct labels of a (missing-free) training target."""
    values = y.dropna()
    if values.empty:
        raise DataError(f"target column '{_target_name(y)}' has no values", code="empty_target")
    kind, distinct = _distinct_labels(values)
    classes = sorted(distinct)
    return Labels(classes=tuple(classes), kind=kind, name=_target_name(y))
