"""A short hash of the byoc sources that an AutoML score depends on, read from the package's files.

byoc's version (0.1.0) does not change when its code does, so it cannot tell whether a score
was measured by the code running now: a checkpointed score (:mod:`byoc.automl.checkpoints`)
and a committed benchmark row (benchmarks/automl.py) are keyed on this hash instead.  It is
computed when asked (once per job), never at import time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

# What a search's scores depend on, as paths under the byoc package: the search, the
# algorithms' registry, the metrics and the encoder.
AUTO_CODE = ("automl", "algorithms", "metrics.py", "preprocessing.py", "values.py")
ENCODER_CODE = ("preprocessing.py", "values.py")
PACKAGE = Path(__file__).resolve().parent


def code_hash(parts: Iterable[str] = AUTO_CODE, root: Path | None = None) -> str:
    """A short hash of the Python files under ``root``/``parts`` (by default the byoc package's
    own files, as installed), as they are on disk (committed or not)."""
    root = PACKAGE if root is None else root
    digest = hashlib.sha256()
    for part in parts:
        path = root / part
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:12]
