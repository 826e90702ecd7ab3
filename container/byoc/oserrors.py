"""Which operating-system errors are the job's environment, not a bug of ours.

An ``OSError`` about a file of the ML root (a data file the training user cannot read, a
read-only model directory, a full disk) is the user's to fix: it becomes a :class:`UserError`
naming the file, what the system said and what to change.  Anything else stays a fault.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from byoc.errors import UserError

# errno -> what to do about it
FIXES = {
    errno.EACCES: "give the training user (uid {uid}) access to it (read for input, write for model/ and output/)",
    errno.EPERM: "give the training user (uid {uid}) access to it (read for input, write for model/ and output/)",
    errno.EROFS: "mount model/ and output/ writable",
    errno.ENOSPC: "free disk space or choose a larger volume (VolumeSizeInGB)",
    errno.EDQUOT: "free disk space or raise the quota",
    errno.ELOOP: "remove the symbolic link loop",
    errno.ENAMETOOLONG: "shorten the file or directory names",
}

# A volume or quota that is full: the environment's whatever file was being written.
FULL_DISK = frozenset({errno.ENOSPC, errno.EDQUOT})


def display_path(path: str | bytes | os.PathLike[str]) -> str:
    """A path for a message: bytes that are not UTF-8 shown as \\xNN escapes, never surrogates."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _culprit(filename: str | bytes) -> str | bytes:
    """``filename``, or the directory at fault: the one it was to be created in, or the
    nearest one that can be seen when a directory above it cannot be searched."""
    while True:
        try:
            os.lstat(filename)
            return filename
        except PermissionError:  # a directory above cannot be searched: go up to it
            parent = os.path.dirname(filename)
            if parent in ("", b"", filename):
                return filename
            filename = parent
        except OSError:  # creating it failed: the culprit is its directory
            return os.path.dirname(filename) or filename


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """Give an OSError that names no file the ``path`` being written.

    A full disk is often met when buffered data is flushed or a file closed (joblib's dump,
    ``write_text``), and Python's error then carries no file name: without one,
    :func:`as_user_error` cannot tell the user's volume from a fault of ours.
    """
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc


def as_user_error(
    exc: BaseException, root: Path, doing: str, fixes: Mapping[int, str] = FIXES
) -> UserError | None:
    """The UserError for an OSError about a file under ``root`` (the ML root), else None;
    ``fixes`` (errno -> what to do) for a command whose fixes differ from training's."""
    if not isinstance(exc, OSError) or exc.errno is None or exc.errno not in fixes:
        return None
    if exc.filename is None:
        if exc.errno not in FULL_DISK:
            return None
        # Met on flushing or closing a file, unnamed: whichever file it was, a full disk is the
        # environment's, never a fault of ours (a writer with naming() says which file).
        error = UserError(
            f"{exc.strerror or os.strerror(exc.errno)} while {doing} (the system named no file); "
            f"{fixes[exc.errno].format(uid=os.getuid())}",
            code="environment",
        )
        error.__cause__ = exc
        return error
    filename = exc.filename if isinstance(exc.filename, (str, bytes)) else str(exc.filename)
    if not _inside(Path(os.fsdecode(filename)), root):
        return None
    fix = fixes[exc.errno].format(uid=os.getuid())
    filename = _culprit(filename)
    error = UserError(
        f"{display_path(filename)}: {exc.strerror or os.strerror(exc.errno)} while {doing}; {fix}",
        code="environment",
    )
    error.__cause__ = exc
    return error
