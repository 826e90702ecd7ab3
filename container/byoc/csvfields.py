"""How long a field the standard library's csv module may read: set once, when a process starts.

``csv.field_size_limit`` (131072 characters by default) is one setting for the whole process;
a reader cannot be given its own.  byoc's CSV paths must read any field the process lets in
anyway: a request body is bounded by the payload limit (SAGEMAKER_MAX_PAYLOAD_IN_MB), a
training row by :data:`TRAINING_ROW_BYTES`.  A lower per-field limit refused a request whose
first record held a quoted cell above 128 KiB (a 400 for a body within the limit) and failed a
training job whose first row held one (an internal error).  So each entry point raises the limit
to its own bound when it starts -- ``serve``'s app (:func:`byoc.serving.app.base_app`),
``train``'s job shell (:func:`byoc.job.run_job`), ``evaluate`` -- never at import, and never
lowers it (user code in the process may have raised it further).  A field as long as the
bound is read; beyond it the csv module refuses it, which bounds the memory an unclosed quote
can take.
"""

from __future__ import annotations

import csv

TRAINING_ROW_BYTES = 1 << 24
"""The longest CSV row training reads (``byoc.data.csv_reader.MAX_ROW_BYTES``): a longer one is
refused, named (usually an unclosed quote that swallowed the lines after it)."""


def allow_fields(chars: int) -> None:
    """Let the csv module read fields of up to ``chars`` characters (a UTF-8 field of n bytes has
    at most n characters, so a byte bound serves)."""
    if csv.field_size_limit() < chars:
        csv.field_size_limit(chars)
