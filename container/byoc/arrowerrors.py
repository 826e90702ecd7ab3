"""Which of pyarrow's errors say the bytes it read are bad, for training readers and serving codecs.

pyarrow's ``ArrowMemoryError`` is both an ``ArrowException`` and a ``MemoryError``: an
``except pa.ArrowException`` that blames the file (or the request body) would blame it for
memory running out in this process too.  Memory is not the input's fault: it goes on as a
``MemoryError`` (training's out-of-memory failure, the server's 500).  Every place that turns a
pyarrow error into the input's fault asks :func:`blames_input` first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


def blames_input(exc: BaseException) -> bool:
    """Whether ``exc``, raised while pyarrow read some input, may be called the input's fault:
    not when memory ran out (whatever else the exception also is)."""
    return not isinstance(exc, MemoryError)


@contextmanager
def refused_as(make: Callable[[Exception], Exception], *errors: type[Exception]) -> Iterator[None]:
    """``errors`` raised inside as ``make(exc)`` (the input's fault, chained to nothing), unless
    they do not :func:`blame the input <blames_input>`: those go on as they are."""
    try:
        yield
    except errors as exc:
        if not blames_input(exc):
            raise
        raise make(exc) from None
