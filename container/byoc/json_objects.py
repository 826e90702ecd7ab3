"""JSON objects whose keys appear once: a repeated key is refused, never read as its last value.

The standard library keeps the last of ``{"age": 70, "age": 20}`` and drops the other without a
word, so a record with a repeated column would be trained on, or answered, with one of two values
picked silently.  Training's JSON Lines reader and serving's JSON decoders both parse objects with
:func:`unique_keys` and turn :class:`RepeatedKey` into a message naming the file or body.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

import orjson

from byoc.errors import a_type
from byoc.wide_text import UTF8_BOM_TEXT


class RepeatedKey(ValueError):
    """A JSON object names ``key`` more than once."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key!r} appears twice in one object")
        self.key = key

    def says(self, where: str) -> str:
        """The message for a user: where the object is, the key, and how to fix it."""
        return (
            f"{where} repeats the key {self.key!r} in one object (a record names each column once, "
            "and which of the values is meant cannot be told); remove the repeated key"
        )


def json_words(value: Any) -> str:
    """A decoded JSON value named as the client wrote it (null, a boolean, a number, a string, a
    list, an object), for every message about a JSON body, line or file: Python's type names ("a
    NoneType", "a bool", "a str") are not words JSON has.  Anything else by its type (a_type)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else a_type(value)


def not_a_record(where: str, value: Any) -> str:
    """The message for a JSON Lines line that holds neither a record nor a row (null, a number, a
    string, a boolean), in training's files and serving's bodies alike: a malformed line, never
    a row of missing values (pyarrow read a line of null as one, dropped as "missing target")."""
    return (
        f"{where} holds {json_words(value)}, not a record: each line of JSON Lines holds one "
        'object (a record, such as {"age": 42}) or one array of values (a row); write one '
        "record on that line, or delete the line"
    )


def other_form(where: str, value: list[Any] | dict[str, Any]) -> str:
    """The message for a JSON Lines line that is a row where the lines before it are records, or
    the other way round, in training's files and serving's bodies alike."""
    one, many = (
        ("a row (an array)", "records (objects)")
        if isinstance(value, list)
        else ("a record (an object)", "rows (arrays)")
    )
    return f"{where} holds {one} where the lines before it hold {many}; write every line in one form"


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for :mod:`json`: the object as a dict, or :class:`RepeatedKey`."""
    record = dict(pairs)
    if len(record) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RepeatedKey(key)
            seen.add(key)
    return record


def loads(text: str | bytes, *, parse_float: Callable[[str], Any] | None = None) -> Any:
    """:func:`json.loads` refusing repeated keys (:class:`RepeatedKey`), with one decoder for every
    call: ``json.loads(..., object_pairs_hook=...)`` builds a new one each time, which doubled the
    cost of a JSON Lines line (4.96 against 2.11 us for a 4-field record).  ``parse_float``, as
    :func:`json.loads` takes it (one decoder per function)."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode(json.detect_encoding(text), "surrogatepass")  # as json.loads decodes bytes
    elif text.startswith(UTF8_BOM_TEXT):
        return json.loads(text, object_pairs_hook=unique_keys, parse_float=parse_float)  # its BOM error
    return decoder(parse_float).decode(text)


def parse(text: str | bytes) -> Any:
    """:func:`loads`' value (or its error), read by orjson wherever that value is provably the
    same: 20,000 rows of 20 features in 0.039 s of CPU against json's 0.067, as records 0.038
    against 0.134 (orjson builds every value in C, where json calls back into Python for every
    object and its keys).  Any text orjson refuses (NaN and infinity tokens, numbers beyond
    float, lone surrogates, a byte order mark, UTF-16, bytes that are not UTF-8, deep nesting,
    anything invalid) is read by :func:`loads`, which gives its value or its error.

    orjson reads the other texts as json does (the property test in tests/unit/test_json_parse.py
    holds it to the float bits, the text, the very types) with two exceptions, both excluded:

    - a repeated key keeps its last value, where json refuses it (:class:`RepeatedKey`).  In
      valid JSON every colon outside a text separates a key from its value, so a text with as
      many colons as the pairs orjson kept (:func:`_pairs`, which counts only the objects a
      request's shapes put there) has no repeated key, and no colon inside a text either;
      anything else, json reads.
    - an integer beyond 64 bits comes back as a float, where json keeps the integer (a category
      spelled "1.2345678901234568e+22" instead of "12345678901234567890123"): such an integer
      is written with 19 digits or more, and a text with 19 digits in a row is json's."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return loads(text)
    raw = text.encode() if isinstance(text, str) else text  # orjson read it: no lone surrogate
    if raw.count(b":") != _pairs(value) or _LONG_DIGITS in raw.translate(_AS_ZERO):
        return loads(text)
    return value


_LONG_DIGITS = b"0" * 19  # 2**63 and 2**64 are 19 and 20 digits: orjson keeps every shorter integer
_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
"""Every digit as ``0``, so a run of digits is found by one substring search (a regular
expression's search of 4.5 MB took 55 ms, this 4.5 ms; str.translate of text beyond ASCII 310)."""


def _pairs(value: Any) -> int:
    """How many keys the objects of a request's shapes hold: the document's own, those in its
    list or in the lists and objects it holds (``{"instances": [{...}]}``, ``{"inputs": {...}}``),
    not deeper, so a row of values is never visited; an object deeper is not counted, so a
    text holding one is read by json (the count is then below the colons)."""
    if type(value) is list:
        return sum(len(item) for item in value if type(item) is dict)
    if type(value) is not dict:
        return 0
    count = len(value)
    for inner in value.values():
        if type(inner) is dict:
            count += len(inner)
        elif type(inner) is list:
            count += sum(len(item) for item in inner if type(item) is dict)
    return count


@cache
def decoder(parse_float: Callable[[str], Any] | None = None) -> json.JSONDecoder:
    """A decoder refusing repeated keys (for ``raw_decode`` over a streamed body too); it holds
    no state between calls, so one serves every caller (one per ``parse_float``)."""
    return json.JSONDecoder(object_pairs_hook=unique_keys, parse_float=parse_float)
