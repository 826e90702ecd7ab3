"""The local files a ``requirements.txt`` names that are not there, found before pip runs.

A wheel, archive or project folder that requirements.txt names by path (``./wheels/x.whl``,
``-e ./mypkg``, ``file:vendor/x.tar.gz``, ``x @ file:./x.tar.gz``, ``-r base.txt``), or a folder
it has pip look for packages in (``--find-links ./wheels``, ``-f wheels``), but that the uploaded
source directory lacks makes pip fail with a message about an OSError (for ``-e``, about VCS URLs;
for ``--find-links``, "No matching distribution") that names neither the line nor the fix.  This module reads the file as pip
reads it (lines joined at a trailing backslash, comments and ``${VAR}`` as pip treats them,
options split from the requirement), resolves each path as pip does, against the directory pip
runs in (the code directory: :func:`byoc.user_script.install_requirements`), for ``-r``/``-c``
against the file that names it, for ``--find-links`` against that file when it is there, else
where pip runs, and says which are missing.  It only reads: pip still runs and
decides, and its own output stays in the log; a line this module does not understand is pip's.
"""

from __future__ import annotations

import os
import re
import shlex
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

# pip's own patterns (pip/_internal/req/req_file.py, utils/filetypes.py)
_COMMENT = re.compile(r"(^|\s+)#.*$")
_ENV_VAR = re.compile(r"(?P<var>\$\{(?P<name>[A-Z0-9_]+)\})")
_EXTRAS = re.compile(r"^(.+)(\[[^\]]+\])$")
_ARCHIVES = (".zip", ".whl", ".tar.bz2", ".tbz", ".tar.gz", ".tgz", ".tar", ".tar.xz", ".txz", ".tlz")
_ARCHIVES_LONG = (".tar.lz", ".tar.lzma")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_FILES = {
    "-r": "requirements",
    "--requirement": "requirements",
    "-c": "constraints",
    "--constraint": "constraints",
}
_EDITABLE = ("-e", "--editable")
_FIND_LINKS = ("-f", "--find-links")
MAX_NESTING = 20


@dataclass(frozen=True)
class MissingPath:
    """A requirements file's line naming a local path that does not exist."""

    file: Path  # the requirements file holding the line
    number: int  # the line's number (its first, when it continues on the next)
    text: str  # the line as pip reads it: joined, without its comment
    path: Path  # where the path it names resolves to


def missing(requirements: Path, cwd: Path) -> list[MissingPath]:
    """Every line of ``requirements`` (and of the files it includes with ``-r``) naming a local
    file or folder that does not exist, for pip running in ``cwd``."""
    found: list[MissingPath] = []
    _scan(Path(os.path.abspath(requirements)), Path(os.path.abspath(cwd)), found, [])
    return found


def _scan(file: Path, cwd: Path, found: list[MissingPath], seen: list[Path]) -> None:
    if file in seen or len(seen) >= MAX_NESTING:  # pip refuses a file that includes itself
        return
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    for number, line in _lines(text):
        for named, nested in _paths(line, cwd, file.parent):
            if not os.path.lexists(named):
                found.append(MissingPath(file, number, line, named))
            elif nested:
                _scan(named, cwd, found, [*seen, file])


def _lines(text: str) -> Iterator[tuple[int, str]]:
    """(number, line) as pip reads them: joined at a trailing backslash, comments stripped,
    empty lines dropped, ``${VAR}`` replaced when the variable is set."""
    pending: list[str] = []
    first = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.endswith("\\") and not _COMMENT.match(raw):
            if not pending:
                first = number
            pending.append(raw.strip("\\"))
            continue
        if pending:
            raw, number = "".join([*pending, " " + raw if _COMMENT.match(raw) else raw]), first
            pending = []
        yield from _cleaned(number, raw)
    if pending:
        yield from _cleaned(first, "".join(pending))


def _cleaned(number: int, raw: str) -> Iterator[tuple[int, str]]:
    line = _COMMENT.sub("", raw).strip()
    for var, name in _ENV_VAR.findall(line):
        if value := os.environ.get(name):
            line = line.replace(var, value)
    if line:
        yield number, line


def _paths(line: str, cwd: Path, here: Path) -> Iterator[tuple[Path, bool]]:
    """The local paths ``line`` names, each with whether it is a requirements file to read too."""
    tokens = line.split(" ")
    split = next((i for i, token in enumerate(tokens) if token.startswith("-")), len(tokens))
    requirement = " ".join(tokens[:split]).strip()
    if requirement:
        if (path := _requirement_path(requirement, cwd)) is not None:
            yield path, False
    try:
        options = shlex.split(" ".join(tokens[split:]))
    except ValueError:  # unbalanced quotes: pip's to report
        return
    for option, value in _option_values(options):
        if option in _FILES and not _URL.match(value):
            yield Path(os.path.abspath(here / value)), _FILES[option] == "requirements"
        elif option in _EDITABLE and (path := _editable_path(value, cwd)) is not None:
            yield path, False
        elif option in _FIND_LINKS and (path := _find_links_path(value, cwd, here)) is not None:
            yield path, False


def _option_values(options: Sequence[str]) -> Iterator[tuple[str, str]]:
    """(option, value) of the options that name files: ``-e x``, ``-ex``, ``--editable=x``, ..."""
    names = (*_FILES, *_EDITABLE, *_FIND_LINKS)
    for i, token in enumerate(options):
        if token in names and i + 1 < len(options):
            yield token, options[i + 1]
        elif token.startswith("--") and token.split("=", 1)[0] in names and "=" in token:
            option, value = token.split("=", 1)
            yield option, value
        elif not token.startswith("--") and token[:2] in names and len(token) > 2:
            yield token[:2], token[2:]


def _looks_like_path(name: str) -> bool:
    return os.sep in name or name.startswith(".")


def _is_archive(name: str) -> bool:
    lower = name.lower()
    return lower.endswith(_ARCHIVES) or lower.endswith(_ARCHIVES_LONG)


def _file_url_path(url: str, cwd: Path) -> Path | None:
    """The local path of a ``file:`` URL as pip reads it (relative ones against ``cwd``)."""
    if not url.lower().startswith("file:"):
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        return None
    return Path(os.path.abspath(cwd / urllib.request.url2pathname(parts.path)))


def _requirement_path(requirement: str, cwd: Path) -> Path | None:
    """The local path a requirement names, as pip reads it (pip's ``parse_req_from_line``): a
    ``file:`` URL, ``name @ file:...``, or a name that looks like a path and is a folder pip
    installs, or an archive (``.whl``, ``.tar.gz``, ...); None for anything else."""
    name = requirement.split("; " if _URL.match(requirement) else ";", 1)[0].strip()
    if _URL.match(name):
        return _file_url_path(name, cwd)
    before, at, after = name.partition("@")
    if at and not _looks_like_path(before):  # a PEP 508 URL requirement: name @ url
        return _file_url_path(after.strip(), cwd)
    match = _EXTRAS.match(name)
    bare = match.group(1) if match else name
    if _looks_like_path(bare) or _is_archive(bare):
        # a missing one that looks like a path pip reads as a name, which no name can be
        return Path(os.path.abspath(cwd / bare))
    return None


def _editable_path(value: str, cwd: Path) -> Path | None:
    """The local folder of ``-e value``: a path, or a ``file:`` URL; None for a VCS URL or
    ``name @ url``, which pip checks itself."""
    if _URL.match(value):
        return _file_url_path(value, cwd)
    if "@" in value:
        return None
    match = _EXTRAS.match(value)
    return Path(os.path.abspath(cwd / (match.group(1) if match else value)))


def _find_links_path(value: str, cwd: Path, here: Path) -> Path | None:
    """The local folder (or page) of ``--find-links value`` as pip reads it (``handle_option_line``):
    beside the requirements file (in ``here``) when it is there, else as written, against ``cwd``;
    a ``file:`` URL; None for another URL, which pip reaches itself."""
    if _URL.match(value):
        return _file_url_path(value, cwd)
    beside = Path(os.path.abspath(here / value))
    return beside if os.path.exists(beside) else Path(os.path.abspath(cwd / value))


def failure_reason(absent: Sequence[MissingPath], code_dir: Path, uploaded_as: str) -> str:
    """The failure's first line: the first missing path's line, where it resolved, that the
    uploaded source directory (``uploaded_as``: how it reached the job) lacks it and how to fix
    it; then the other lines, by number."""
    first, *others = absent
    code = Path(os.path.abspath(code_dir))
    where = f"{_shown(first.file, code)} line {first.number} ({first.text}) names {first.path}"
    if first.path.is_relative_to(code):
        inside = first.path.relative_to(code)
        reason = (
            f"{where}, which is not in the source directory that was uploaded ({code}): put {inside} "
            f"into source_dir ({uploaded_as}), or drop the line"
        )
    else:
        reason = (
            f"{where}, which does not exist: it is outside the source directory that was uploaded "
            f"({code}), the only files of yours the job has; put {first.path.name} into source_dir "
            f"and name it by its path there (./{first.path.name}), or drop the line"
        )
    also = [f"{_shown(m.file, code)} line {m.number} names a missing file too ({m.path})" for m in others]
    return "; ".join([reason, *also])


def _shown(file: Path, code_dir: Path) -> str:
    """A requirements file as the user knows it: its path in the source directory."""
    return str(file.relative_to(code_dir)) if file.is_relative_to(code_dir) else str(file)
