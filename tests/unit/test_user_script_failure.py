"""The failure reason of a script-mode job, from its exit status and the tail of its stderr."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from byoc.user_script import deepest_line, exception_line, failure


def _stderr(raise_it) -> str:
    """What Python prints for the exception ``raise_it`` raises (its real traceback format)."""
    with pytest.raises((ValueError, RuntimeError, ExceptionGroup)) as caught:
        raise_it()
    return "".join(traceback.format_exception(caught.value))


def _multiline() -> None:
    raise ValueError("All the 5 fits failed.\nBelow are more details about the failures:\n  bad label")


def _chained() -> None:
    try:
        {}["missing"]
    except KeyError as exc:
        raise RuntimeError("could not read the config\nsee above") from exc


def _group() -> None:
    raise ExceptionGroup("2 folds failed\nsee each", [ValueError("a"), KeyError("b")])


def test_the_header_is_the_type_and_the_first_line_of_the_last_exception():
    assert exception_line(_stderr(_multiline)) == "ValueError: All the 5 fits failed."
    assert exception_line(_stderr(_chained)) == "RuntimeError: could not read the config"
    assert exception_line(_stderr(_group)) == "ExceptionGroup: 2 folds failed"
    assert exception_line("no traceback here\n") is None


def test_only_an_uncaught_exceptions_exit_status_blames_a_traceback():
    handled = "ERROR:root:no accelerator\n" + _stderr(_chained) + "accuracy below the gate\n"
    deliberate = failure("train.py", 2, handled)
    assert deliberate.message == (
        "The user script train.py exited with code 2; the last line of its stderr: accuracy below the gate"
    )
    assert deliberate.exit_code == 2
    uncaught = failure("train.py", 1, "starting\n" + _stderr(_multiline))
    assert uncaught.message == (
        "ValueError: All the 5 fits failed. (raised by the user script train.py, exit code 1)"
    )
    assert "bad label" in (uncaught.details or "")  # the whole message is in the details


ENTRY_POINT_SYNTAX = """\
  File "/opt/ml/code/train.py", line 2
    x = = 1
        ^
SyntaxError: invalid syntax
"""

HELPER_SYNTAX = """\
Traceback (most recent call last):
  File "/opt/ml/code/train.py", line 1, in <module>
    import helper
  File "/opt/ml/code/helper.py", line 3
    def f(:
          ^
SyntaxError: invalid syntax
"""


def test_a_file_that_does_not_compile_is_an_uncaught_exception_at_its_line():
    """An entry point that does not compile gets no "Traceback" line from Python, only its frame."""
    assert exception_line("starting\n" + ENTRY_POINT_SYNTAX) == "SyntaxError: invalid syntax"
    code = Path("/opt/ml/code")
    assert failure("train.py", 1, ENTRY_POINT_SYNTAX, code).message == (
        "SyntaxError: invalid syntax (raised by the user script train.py at train.py line 2, exit code 1)"
    )
    assert failure("train.py", 1, HELPER_SYNTAX, code).message.startswith(
        "SyntaxError: invalid syntax (raised by the user script train.py at helper.py line 3,"
    )


def test_the_deepest_line_is_the_last_frame_in_the_code_folder():
    code = Path("/opt/ml/code")
    frames = [
        ("/opt/ml/code/train.py", 9),
        ("/opt/ml/code/lib/fit.py", 4),
        ("/opt/venv/lib/python3.11/site-packages/sklearn/base.py", 1365),
        ("<frozen importlib._bootstrap>", 241),
    ]
    assert deepest_line(frames, code) == "lib/fit.py line 4"
    assert deepest_line(frames[2:], code) is None
