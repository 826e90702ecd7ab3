"""Writing evaluate's evaluation.json: whole or not at all, and a failure the user can act on.

A Processing job's ``--output`` can be wrong in ways only the environment decides (a file in
the way, a read-only mount, a full volume).  Each is the user's to fix, so it becomes a
UserError naming the path and what to change, as training's OS errors do (:mod:`byoc.oserrors`),
with fixes in evaluate's terms.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from byoc import oserrors

REPORT_FILE = "evaluation.json"
_ACCESS = "let the Processing job's user (uid {uid}) write there, or pass another --output directory"
_SPACE = "free disk space or choose a larger volume (the Processing job's VolumeSizeInGB)"
_NOT_A_DIRECTORY = "--output names a directory that evaluate writes evaluation.json into: remove the file or pass another path"
FIXES = {
    errno.EACCES: _ACCESS,
    errno.EPERM: _ACCESS,
    errno.EROFS: "pass an --output directory on a writable volume (ProcessingOutput's source)",
    errno.ENOSPC: _SPACE,
    errno.EDQUOT: _SPACE,
    errno.EEXIST: _NOT_A_DIRECTORY,
    errno.ENOTDIR: _NOT_A_DIRECTORY,
    errno.ENAMETOOLONG: "shorten the --output path",
}


def write_report(output: Path, report: Mapping[str, Any]) -> Path:
    """``output/evaluation.json``, written to a temporary file and renamed, so a reader never
    sees half a report; an OS error the user can fix is a UserError naming the path."""
    path = output / REPORT_FILE
    partial = output / f".{REPORT_FILE}.partial"
    try:
        output.mkdir(parents=True, exist_ok=True)
        with oserrors.naming(path):
            with open(partial, "w", encoding="utf-8") as fh:
                fh.write(json.dumps(report, indent=2) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(partial, path)
    except OSError as exc:
        _remove(partial)
        if exc.errno == errno.EEXIST and os.path.lexists(output) and not output.is_dir():
            exc = NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(output))
        error = oserrors.as_user_error(exc, output, f"writing {path}", FIXES)
        if error is None:
            raise
        raise error from exc
    return path


def remove_earlier_report(output: Path) -> bool:
    """Remove the evaluation.json an earlier run left in ``output`` (evaluate run by hand, or a step
    retried on the same folder), before this run does anything: whatever its outcome, nothing then
    reads a report of another run as this one's.  True when there was one; an OS error the user can
    fix is a UserError naming the path."""
    path = output / REPORT_FILE
    if not (path.is_file() or path.is_symlink()):  # anything else is write_report's to refuse
        return False
    try:
        path.unlink()
    except OSError as exc:
        error = oserrors.as_user_error(
            exc, output, f"removing the {REPORT_FILE} an earlier run left (it is still there)", FIXES
        )
        if error is None:
            raise
        raise error from exc
    return True


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:  # the directory is the failure already reported
        pass
