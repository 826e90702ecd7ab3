"""byoc.logtext: a log record stays one line whatever text it quotes, and reads as no metric."""

from __future__ import annotations

import io
import logging

from byoc import logtext


def test_every_line_breaking_or_reordering_character_is_escaped_and_tab_kept():
    text = "a\nb\rc\x0bd\x1be\x7ff\x85g\u2028h\u2029i\u202ej\u2066k\tl"
    assert logtext.escape(text) == r"a\nb\rc\x0bd\x1be\x7ff\x85g\u2028h\u2029i\u202ej\u2066k" + "\tl"
    assert len(logtext.escape(text).splitlines()) == 1


def test_metric_text_quoted_in_a_record_is_not_a_data_point():
    assert logtext.escape("features: validation:accuracy=0.99, train:r2=-1") == (
        r"features: validation:accuracy\x3d0.99, train:r2\x3d-1"
    )
    assert logtext.escape("train: x=1, validation:f1 not logged") == "train: x=1, validation:f1 not logged"


def test_the_formatter_escapes_the_message_and_each_traceback_line():
    stream = io.StringIO()
    logger = logging.getLogger("test_logtext")
    logger.propagate = False
    logger.handlers[:] = [logtext.handler(stream)]
    try:
        raise ValueError("column 'x\nvalidation:auc=1.0'")
    except ValueError:
        logger.exception("failed on %r", "y\ntest:mse=0")
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(r"failed on 'y\ntest:mse\x3d0'")
    assert lines[1] == "Traceback (most recent call last):"
    # a traceback keeps its lines (a message's own line break among them), each escaped
    assert lines[-2:] == ["ValueError: column 'x", r"validation:auc\x3d1.0'"]


def test_secret_hyperparameters_values_are_redacted_from_a_command_line():
    argv = [
        "python",
        "train.py",
        "--db_password",
        "p",
        "--API-KEY",
        "k",
        "--epochs",
        "3",
        "--token_count",
        "9",
    ]
    assert logtext.redacted(argv) == [
        *("python", "train.py", "--db_password", "***", "--API-KEY", "***", "--epochs", "3"),
        *("--token_count", "***"),
    ]
