"""application/x-npy: numeric arrays as ``numpy.save`` writes them (the SDK's NumpySerializer).

Pickles are never loaded (``allow_pickle=False``): an object array in a request body would
be remote code execution.  A 1-D array is one row; a 2-D array is rows x features.

Responses: the single field asked for as an array (``predicted_label``: labels, text labels
as a fixed-width unicode array, which also loads without pickles; ``probabilities``: rows x
classes).  Several fields need CSV or JSON.
"""

from __future__ import annotations

import ast
import io
import math
import re
import tokenize

import numpy as np
import pandas as pd
from numpy.lib import format as npformat

from byoc.artifact import PICKLE_PREFIX, ZIP_PREFIX
from byoc.errors import DataError, NotAcceptable, SchemaError
from byoc.serving import cells
from byoc.serving.codecs.base import Decoder, Encoder
from byoc.serving.output import LABELS, Prediction
from byoc.serving.schema import Batch, RequestSchema

MEDIA_TYPE = "application/x-npy"


def _view(body: bytes) -> np.ndarray | None:
    """The array in ``body`` as a read-only view of its data part, its header read by
    numpy.lib.format: np.load copied the whole array out of the body (a copy the size of the
    body per request).  None for a pickle or a body whose dtype holds objects, left to np.load to
    refuse as before.  A body that is no npy array is refused here, so is a header numpy does not
    read (saying why in words: numpy's message held a repr of Python's parse tree), and so is a
    header whose shape needs more bytes than the body holds (a 186-byte body claiming
    99999999999 x 3 floats was a 500 MemoryError in np.load) or fewer (a second array saved after
    the first was left unanswered, as np.load reads the first array of a file)."""
    if not body.startswith(npformat.MAGIC_PREFIX):
        if body.startswith(PICKLE_PREFIX):
            return None  # refused as a pickle by np.load
        raise DataError(_not_npy(body), code="undecodable_body")
    start = _HEADER_LENGTH_AT
    if len(body) < start:
        raise DataError(_bad_header("the body ends before the format version"), code="undecodable_body")
    version = (body[start - 2], body[start - 1])
    read = _HEADER_READERS.get(version)
    if read is None:
        raise DataError(
            _bad_header(f"its format version is {version[0]}.{version[1]}, not 1.0, 2.0 or 3.0"),
            code="undecodable_body",
        )
    stream = io.BytesIO(body)
    stream.seek(start)
    try:
        shape, fortran, dtype = read(stream)
    except _HEADER_ERRORS:
        raise DataError(_bad_header(*_header_problem(body, version)), code="undecodable_body") from None
    if dtype.hasobject:
        return None  # refused as a pickle by np.load
    if any(size < 0 for size in shape):
        raise DataError(
            f"the npy header claims shape {tuple(shape)}, a negative size; send the bytes numpy.save writes",
            code="undecodable_body",
        )
    count = math.prod(shape)
    needed, offset = count * dtype.itemsize, stream.tell()
    if needed > len(body) - offset:
        raise DataError(
            f"the npy header claims shape {tuple(shape)} of {dtype} ({needed:,} bytes), but the body "
            f"holds {len(body) - offset:,} bytes of data; send the bytes numpy.save writes",
            code="undecodable_body",
        )
    if needed < len(body) - offset:  # more than one array, or a header that undercounts its rows
        raise DataError(
            f"the npy header claims shape {tuple(shape)} of {dtype} ({needed:,} bytes), but the body "
            f"holds {len(body) - offset:,} bytes of data after it, which would go unanswered; send one "
            "array as numpy.save writes it (several arrays: join them first, e.g. numpy.vstack)",
            code="undecodable_body",
        )
    flat = np.frombuffer(body, dtype=dtype, count=count, offset=offset)
    flat.flags.writeable = False  # rows are read, never written: the body's bytes stay as sent
    return flat.reshape(shape[::-1]).transpose() if fortran else flat.reshape(shape)  # as np.load does


# numpy.save writes 1.0, 2.0 for a header past 64 KiB, 3.0 for one holding non-Latin-1 field names
# (structured dtypes, refused as not numeric anyway): 3.0's is read as 2.0's, its UTF-8 as Latin-1
_HEADER_READERS = {
    (1, 0): npformat.read_array_header_1_0,
    (2, 0): npformat.read_array_header_2_0,
    (3, 0): npformat.read_array_header_2_0,
}
# what numpy's header reader raises for a header that is not numpy's dictionary: its messages hold
# a repr of Python's parse tree (``<ast.Call object at 0x7f...>``, a memory address) or of the
# whole header, a tokenize.TokenError was a 500, and a deeply nested header makes Python's parser
# raise MemoryError ("too complex") or RecursionError on a few kilobytes
_HEADER_ERRORS = (
    ValueError,
    OSError,
    EOFError,
    TypeError,
    SyntaxError,
    tokenize.TokenError,
    RecursionError,
    MemoryError,
)
_HEADER_KEYS = ("descr", "fortran_order", "shape")
# where the header's length starts: after the magic prefix and the format version's two bytes
_HEADER_LENGTH_AT = len(npformat.MAGIC_PREFIX) + 2
_EXCERPT = 80  # characters of a refused header echoed in the 400


def _bad_header(problem: str, text: str | None = None) -> str:
    """The 400's message for an npy header numpy will not read: ``problem`` in words and at most
    the first characters of the header's text, escaped, never a repr of a parsed object."""
    said = ""
    if text is not None:
        text = text.rstrip(" \n")  # numpy.save pads the header with spaces and a line break
        if not text:
            said = "; it is blank"
        elif len(text) > _EXCERPT:
            said = f"; it starts {ascii(text[:_EXCERPT])} ({len(text) - _EXCERPT:,} characters more)"
        else:
            said = f"; it reads {ascii(text)}"
    return (
        f"the application/x-npy body's header is not one numpy reads: {problem}{said}; send the "
        "bytes numpy.save writes (a header {'descr': ..., 'fortran_order': ..., 'shape': ...})"
    )


def _header_problem(body: bytes, version: tuple[int, int]) -> tuple[str, str | None]:
    """What is wrong with the header of ``body`` that numpy's reader refused, in words, and its
    text when it has one: read again here, as numpy reads it, so that the message says which rule
    the header breaks without echoing numpy's own (reprs of whatever the header parsed to)."""
    size = 2 if version == (1, 0) else 4
    start = _HEADER_LENGTH_AT
    if len(body) < start + size:
        return "the body ends before the header's length", None
    length = int.from_bytes(body[start : start + size], "little")
    raw = body[start + size : start + size + length]
    if len(raw) < length:
        return f"it declares {length:,} bytes, but the body holds {len(raw):,} after the length", None
    try:
        text = raw.decode("utf-8" if version == (3, 0) else "latin-1")
    except UnicodeDecodeError:
        return "it is not UTF-8 text", None
    if len(text) > _MAX_HEADER:
        return f"it is {len(text):,} characters long, past the {_MAX_HEADER:,} numpy reads", text
    try:
        header = _literal(text)
    except _HEADER_ERRORS:
        return "it is not a Python dictionary of literals", text
    if not isinstance(header, dict):
        return f"it is a {type(header).__name__}, not a dictionary", text
    missing = [key for key in _HEADER_KEYS if key not in header]
    others = len(header) - (len(_HEADER_KEYS) - len(missing))
    if missing or others:
        wrong = [f"lacks {', '.join(map(repr, missing))}"] if missing else []
        wrong += [f"has {others} other key{'s' if others > 1 else ''}"] if others else []
        return f"it {' and '.join(wrong)} (numpy's holds 'descr', 'fortran_order' and 'shape' alone)", text
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(size, int) for size in shape):
        return "its 'shape' is not a tuple of whole numbers", text
    if not isinstance(header["fortran_order"], bool):
        return "its 'fortran_order' is not True or False", text
    try:
        npformat.descr_to_dtype(header["descr"])
    except (TypeError, ValueError, KeyError, IndexError, RecursionError):
        return "its 'descr' is not a NumPy dtype", text
    return "numpy could not read it", text


_MAX_HEADER = 10_000  # numpy.lib.format's max_header_size, the characters its reader parses


def _literal(text: str) -> object:
    """The header's value as numpy reads it: a Python literal, where a 1.0 or 2.0 header written
    by Python 2 may spell integers with an ``L`` (``(3L, 2L)``)."""
    try:
        return ast.literal_eval(text)
    except SyntaxError:
        return ast.literal_eval(re.sub(r"(?<=[0-9])L\b", "", text))


def _not_npy(body: bytes) -> str:
    """The 400's message for a body that is no npy array (nor a pickle): np.load read such a body
    as a pickle, and a CSV or JSON body sent as application/x-npy was refused as one that
    "holds Python objects"."""
    if body.startswith(ZIP_PREFIX):
        return (
            "the application/x-npy body is an .npz archive (numpy.savez), not one array; send one "
            "array as numpy.save writes it"
        )
    return (
        f"the application/x-npy body is not a .npy array: it starts with {body[:16]!r}, not numpy's "
        f"{npformat.MAGIC_PREFIX!r}; send the bytes numpy.save writes (the SDK's NumpySerializer), or "
        "give the body's own Content-Type (text/csv, application/json)"
    )


def _load(body: bytes) -> object:
    view = _view(body)
    return view if view is not None else np.load(io.BytesIO(body), allow_pickle=False)


def decode(body: bytes, schema: RequestSchema, start_row: int = 0) -> Batch:
    try:
        array = _load(body)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                "the npy body holds Python objects, which are never unpickled; send a numeric "
                "array, or use text/csv or application/json for text features",
                code="undecodable_body",
            ) from None
        raise DataError(
            f"the body is not a .npy array ({exc}); send the bytes numpy.save writes", code="undecodable_body"
        ) from None
    except (OSError, EOFError, TypeError) as exc:
        raise DataError(
            f"the body is not a .npy array ({exc}); send the bytes numpy.save writes", code="undecodable_body"
        ) from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        kind = getattr(array, "dtype", type(array))
        raise SchemaError(
            f"the npy array has dtype {kind}; only numeric arrays are accepted "
            "(use text/csv or application/json for text features)",
            code="bad_dtype",
        )
    if not array.dtype.isnative:  # '>i8' from a big-endian writer: pandas and Arrow take native only
        array = array.astype(array.dtype.newbyteorder("="))
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2:
        raise SchemaError(
            f"the npy array has shape {array.shape}; send one row (1-D) or rows x features (2-D)",
            code="bad_shape",
        )
    if array.shape[0] == 0:
        raise DataError("the npy array holds no rows", code="empty_body")
    frame = pd.DataFrame(array, copy=False)  # a bool array: booleans as byoc.values reads them
    return schema.from_frame(frame, positional=True, start_row=start_row)


def encode(prediction: Prediction) -> bytes:
    if len(prediction.fields) != 1:
        raise NotAcceptable(
            f"application/x-npy carries one output field, and {len(prediction.fields)} were asked for "
            f"({', '.join(prediction.fields)}); ask for one, or accept text/csv or application/json"
        )
    field = prediction.fields[0]
    value = prediction.values[field]
    if field == LABELS:
        value = [value] * prediction.n
    array = _typed(np.asarray(value, dtype=object)) if isinstance(value, list) else np.asarray(value)
    if array.dtype == object:
        array = _typed(array)
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _typed(values: np.ndarray) -> np.ndarray:
    """An object array (a list of a hook's predict_fn's values) as the typed array an npy file
    holds, or a TypeError naming a value that has none: ``np.asarray`` wrote every value as text
    when one was (``[0, "unknown"]`` as ``"0"``, None beside text as ``"None"``) and other
    objects as their Python repr (``"{'label': 'a'}"``).  Numbers stay integers or floats (with
    None: floats, None as NaN, as JSON writes null), booleans booleans, text text."""
    flat = values.ravel()
    kinds = cells.kinds(flat)
    found = set(kinds.values())
    if found == {cells.Kind.BOOLEAN}:
        return values.astype(bool)
    if found == {cells.Kind.NUMBER}:
        return _numbers(flat, kinds).reshape(values.shape)
    if found <= {cells.Kind.NUMBER, cells.Kind.MISSING}:
        return np.array([np.nan if cells.is_missing(v) else v for v in flat], np.float64).reshape(
            values.shape
        )
    if found == {cells.Kind.TEXT}:
        _refuse_trailing_nul(flat)
        return values.astype(str)
    names = ", ".join(sorted(t.__name__ for t in kinds))
    raise TypeError(
        f"values of types {names} have no application/x-npy form "
        "(an npy array holds one type; ask for application/json)"
    )


def _refuse_trailing_nul(flat: np.ndarray) -> None:
    """A 406 for a text ending in NUL (a class ``"c\\x00"`` beside ``"c"``): NumPy's fixed-width
    text arrays pad with NULs and drop them on reading, so npy answered ``"c"`` for both classes."""
    cut = next((text for text in set(flat.tolist()) if text.endswith("\x00")), None)
    if cut is not None:
        raise NotAcceptable(
            f"the answer {cut!r} ends with a NUL character, which an application/x-npy text array "
            f"drops (it would read {cut.rstrip(chr(0))!r}); ask for application/json or text/csv (Accept)"
        )


def _numbers(flat: np.ndarray, kinds: dict[type, cells.Kind]) -> np.ndarray:
    """Numbers (of the types ``kinds`` holds) as an int64, uint64 or float64 array that holds each
    exactly, or a 406: NumPy made integers past int64 (classes 1e20 and 2e20, read as the
    integers they are) an object array, which ``np.save`` refuses (a 500), and integers beside
    one that is, or beside a fraction, a float64 array, rounding 2**63 + 1 to 2**63 without a word."""
    items = flat.tolist()
    array = np.asarray(items)
    if array.dtype.kind in "iu" or not any(issubclass(t, (int, np.integer)) for t in kinds):
        return array  # floats are float64's own
    if all(issubclass(t, (int, np.integer)) for t in kinds) and 0 <= min(items) and max(items) < 2**64:
        return np.asarray(items, dtype=np.uint64)  # ids past int64 (a Parquet uint64 label)
    try:
        exact = array.astype(np.float64)
        inexact = next((v for v in items if isinstance(v, (int, np.integer)) and float(v) != int(v)), None)
    except OverflowError:  # an integer past float64's range
        inexact = next(v for v in items if isinstance(v, (int, np.integer)) and abs(int(v)) > 2**1023)
    if inexact is None:
        return exact
    raise NotAcceptable(
        f"the answer {inexact} is an integer no application/x-npy array holds exactly beside the "
        "others (int64, uint64 or float64); ask for application/json or text/csv (Accept)"
    )


DECODER = Decoder(MEDIA_TYPE, decode)
ENCODER = Encoder(MEDIA_TYPE, encode, max_fields=1)
