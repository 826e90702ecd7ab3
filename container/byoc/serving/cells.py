"""What kind of value one answer cell is: the one rule byoc's output_fn (a user ``predict_fn``'s
values) and every encoder classify answers by.

A hook's ``output_fn`` stand-in checked the values it takes, and the CSV and npy encoders each
classified them again with their own type lists, which disagreed: a list of bytes, a complex or
datetime64 array passed the first and were refused by JSON and CSV but written by npy, pandas'
NA passed it and every encoder refused it, and CSV wrote a NumPy boolean as ``True``.

An answer cell is missing (:data:`Kind.MISSING`, or a float NaN: :func:`is_missing`), a
boolean, a number (integers and real floats), text, an object (a dict, written as JSON) or a
nested value (one record holding a list or array: no cell); anything else has no form in any
format byoc writes.

A missing answer is spelled as each format's readers expect (README "What a response holds"):
``null`` in JSON and JSON Lines (:func:`byoc.serving.codecs.json.dumps`, infinities too: JSON
cannot spell them); an empty cell in CSV (``codecs.csv._cells``: ``""`` alone on its line), which
training reads as missing in a numeric and a text column alike, where ``nan`` is a category in a
text column; NaN in npy among numbers (``codecs.npy._typed``; an npy array of text or booleans
has no missing value: such an answer needs JSON).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from byoc import values

NESTED = (list, tuple, np.ndarray, pd.Series, pd.DataFrame)
"""A value that holds many: a record's answer that is one of these is a row, not a cell."""
_MISSING = (type(None), type(pd.NA), type(pd.NaT))


class Kind(enum.Enum):
    MISSING = "missing"
    BOOLEAN = "boolean"
    NUMBER = "number"
    TEXT = "text"
    OBJECT = "object"
    NESTED = "nested"
    OTHER = "other"


WRITABLE = frozenset({Kind.MISSING, Kind.BOOLEAN, Kind.NUMBER, Kind.TEXT, Kind.OBJECT})
"""The kinds some format byoc writes has a form for (npy: not every mix of them)."""


def kind(t: type) -> Kind:
    """The kind of a value of type ``t`` (asked once per type: a batch has a million records)."""
    known = _EXACT.get(t)
    if known is not None:  # a single row's answer: a dict look-up, not a chain of issubclass
        return known
    if issubclass(t, _MISSING):
        return Kind.MISSING
    if issubclass(t, (bool, np.bool_)):  # before numbers: bool is an int
        return Kind.BOOLEAN
    if issubclass(t, (int, float, np.integer, np.floating)):
        return Kind.NUMBER
    if issubclass(t, str):
        return Kind.TEXT
    if issubclass(t, dict):
        return Kind.OBJECT
    if issubclass(t, NESTED):
        return Kind.NESTED
    return Kind.OTHER


_EXACT = {
    str: Kind.TEXT,
    float: Kind.NUMBER,
    int: Kind.NUMBER,
    bool: Kind.BOOLEAN,
    type(None): Kind.MISSING,
    dict: Kind.OBJECT,
}


def kinds(items: Iterable[Any]) -> dict[type, Kind]:
    """The kind of each distinct type among ``items`` (the types found at C speed)."""
    return {t: kind(t) for t in set(map(type, items))}


def array_kind(dtype: np.dtype) -> Kind | None:
    """The kind of every value of a typed array; None for an object array (value by value)."""
    if dtype.kind == "O":
        return None
    return {"b": Kind.BOOLEAN, "i": Kind.NUMBER, "u": Kind.NUMBER, "f": Kind.NUMBER, "U": Kind.TEXT}.get(
        dtype.kind, Kind.OTHER
    )


def is_missing(value: Any) -> bool:
    """None, pandas' NA or NaT, or a float NaN: a missing answer (module doc).  byoc.values' rule
    for a request's values, less its blank text: an answer's empty string is text."""
    return not isinstance(value, str) and values.is_missing(value)
