"""Script mode: run the user's own training entry point instead of a built-in algorithm.

What the AWS training toolkit does for the SageMaker framework containers, so scripts written
for them run unchanged here (``SKLearn(entry_point="train.py", source_dir=..., image_uri=...)``):

- the program comes from the ``sagemaker_program`` hyperparameter or ``SAGEMAKER_PROGRAM``;
- the code comes from ``sagemaker_submit_directory`` / ``SAGEMAKER_SUBMIT_DIRECTORY`` (a local
  directory, a tarball, ``file://``, or an ``s3://`` URI of the tarball, downloaded with the
  job's credentials (:mod:`byoc.s3`) unless network isolation delivers it as the ``code``
  channel) and is staged into ``<ML root>/code``;
- ``requirements.txt`` is pip-installed, then a local package (setup.py / pyproject.toml);
- the program runs with its working directory in the code directory, which is also first on
  PYTHONPATH, the SM_* environment, and the user hyperparameters as ``--key value`` arguments
  (:func:`byoc.environment.to_cmd_args`).

Where this differs from the toolkit, on purpose: the script runs in its own process group and
SIGTERM (StopTrainingJob, spot interruption) is forwarded to that whole group with a grace
period before SIGKILL; the failure file leads with the exception's last line, a failure file
the script wrote is kept, and an out-of-memory kill says so.  What the script leaves running
when it exits (in its session, or a daemon in a session of its own, which train adopts as a
child subreaper) is ended (SIGTERM, then SIGKILL), as the end of a container's PID 1 ends it
(outside a container nothing did).  Installing a local package uses the image's setuptools
without build isolation, so it works with no network.  pip may not
replace the image's own packages (scikit-learn, numpy, ...: :mod:`byoc.image_packages`), which
the toolkit lets a requirements.txt do.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import difflib
import hashlib
import importlib.util
import io
import itertools
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import threading
import time
import tokenize
from codecs import BOM_UTF8
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from byoc import image_packages, logtext, processes, requirement_paths, wide_text
from byoc.environment import TrainingEnvironment, to_cmd_args
from byoc.errors import ConfigError, UserError, not_utf8_at

log = logging.getLogger("byoc.user_script")

PROGRAM_KEY = "sagemaker_program"
SUBMIT_DIR_KEY = "sagemaker_submit_directory"
PROGRAM_KEY_LIKENESS = 0.85  # difflib's ratio: sagemaker_progam 0.97, sagemaker_region 0.73
CODE_CHANNEL = "code"
REQUIREMENTS = "requirements.txt"
TAIL_BYTES = 64 * 1024
OOM_EXIT = 137
LEFTOVER_GRACE_SECONDS = 5.0  # SIGTERM to SIGKILL, for what a script that exited left running
UNCAUGHT_EXIT = 1  # Python's exit status when an exception ends the program
MAX_RAISED_CHARS = 500  # of an exception's first line in the failure reason: where and why must fit
_TRACEBACK = "Traceback (most recent call last):"
_GROUP_TRACEBACK = "  + Exception Group Traceback (most recent call last):"
_GROUP_MARGIN = "  | "
_RELATIVE_IMPORT = "ImportError: attempted relative import with no known parent package"
# a frame of a printed traceback; without ", in ..." it is where a file failed to compile, and
# Python prints that bare (no "Traceback" line above it) when the entry point itself does not
_FRAME = re.compile(r'^(?:  \| )?\s*File "(?P<path>[^"]+)", line (?P<line>\d+)(?P<function>, in .*)?$')
_MISSING_MODULE = re.compile(r"^ModuleNotFoundError: No module named '(?P<name>[^']+)'")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_REQUIREMENT_IN_ERROR = re.compile(r"(?:requirement|for|satisfies the requirement)\s+([^\s;(]+)", re.I)
# pip's resolver ends a conflict with this generic line; the line naming the packages comes first
_RESOLUTION_IMPOSSIBLE = "ERROR: ResolutionImpossible"
_CONFLICT = re.compile(r"Cannot install (.+?) because these package versions have conflicting dependencies")
_CONFLICT_CAUSES = "The conflict is caused by:"
_INVALID_REQUIREMENT = re.compile(r"Invalid requirement: '([^']*)'")
_FROM_LINE = re.compile(r"\(from line (\d+) of ")


class ScriptFailed(UserError):
    """The user's code failed: its exit code passes through to the job."""

    code = "user_script_failed"

    def __init__(self, message: str, *, exit_code: int, details: str | None = None) -> None:
        super().__init__(message, details=details)
        self.exit_code = exit_code


class InstallFailed(UserError):
    """pip could not install the user's requirements or local package."""

    code = "install_failed"


@dataclass(frozen=True)
class UserCode:
    """The user's entry point and where its code comes from."""

    program: str
    submit_directory: str | None
    code_dir: Path


def requested(env: TrainingEnvironment) -> UserCode | None:
    """The user code the job asks for, or None for a built-in algorithm."""
    program = env.reserved.get(PROGRAM_KEY) or env.environ.get("SAGEMAKER_PROGRAM")
    if not program:
        _refuse_misspelt_program(env)
        return None
    submit = env.reserved.get(SUBMIT_DIR_KEY) or env.environ.get("SAGEMAKER_SUBMIT_DIRECTORY")
    return UserCode(str(program), str(submit) if submit else None, env.paths.base / "code")


def _refuse_misspelt_program(env: TrainingEnvironment) -> None:
    """A hyperparameter that reads as ``sagemaker_program`` misspelt (``sagemaker_progam``,
    ``SAGEMAKER_PROGRAM``): ignored as a platform key, it let the built-in algorithm train and
    the job succeed without ever running the user's script."""
    if PROGRAM_KEY in env.reserved:  # given, but "" or null: no misspelling, and no script either
        raise ConfigError(
            f"hyperparameter '{PROGRAM_KEY}' is {'null' if env.reserved[PROGRAM_KEY] is None else 'empty'}: "
            "it names no entry point; give the script's name (the SageMaker Python SDK sets it from "
            f"entry_point), or remove '{PROGRAM_KEY}' to train a built-in algorithm"
        )
    for key in [*env.reserved, *env.hyperparameters]:
        folded = key.lower().replace("-", "_")
        if difflib.SequenceMatcher(None, folded, PROGRAM_KEY).ratio() >= PROGRAM_KEY_LIKENESS:
            raise ConfigError(
                f"hyperparameter '{key}' looks like '{PROGRAM_KEY}' misspelt, and no entry point is "
                f"given, so a built-in algorithm would train instead of your script: name the "
                f"script with '{PROGRAM_KEY}' (the SageMaker Python SDK sets it from entry_point), "
                f"or remove '{key}' to train a built-in algorithm"
            )


# -- staging the code ------------------------------------------------------------------------


def _local_path(env: TrainingEnvironment, location: str) -> Path:
    """A submit directory as a path here; /opt/ml/... follows SAGEMAKER_BASE_DIR."""
    location = location.removeprefix("file://")
    if location.startswith("/opt/ml/"):
        return env.paths.base / location[len("/opt/ml/") :]
    return Path(location)


def _code_channel_archive(env: TrainingEnvironment) -> Path | None:
    channel = env.channel_dir(CODE_CHANNEL)
    if not channel.is_dir():
        return None
    archives = sorted(channel.glob("*.tar.gz"))
    return archives[0] if archives else None


def _check_members(tar: tarfile.TarFile, archive: Path, into: Path) -> None:
    """Refuse ``tar`` for a member that would land outside ``into`` (or that PEP 706's data filter
    refuses: links out, devices), before anything is unpacked: extractall checks each member as
    it reaches it, so those before a refused one were already in the code directory."""
    for member in tar.getmembers():
        if hasattr(tarfile, "data_filter"):
            tarfile.data_filter(member, str(into))
        elif member.name.startswith("/") or ".." in Path(member.name).parts:  # pragma: no cover
            raise ConfigError(f"{archive}: member '{member.name}' points outside the archive")


def _extract(archive: Path, into: Path, source: str | None = None) -> None:
    """Unpack ``archive`` (named ``source`` in messages: the URI it came from) into ``into``."""
    source = source or str(archive)
    try:
        with tarfile.open(archive) as tar:
            _check_members(tar, archive, into)
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")
            else:  # pragma: no cover - Python without PEP 706
                tar.extractall(into)
    except (tarfile.TarError, OSError) as exc:
        raise ConfigError(
            f"source code archive {source} cannot be unpacked ({exc}); pass a .tar.gz of your "
            "source directory (the SDK builds sourcedir.tar.gz) or a directory"
        ) from exc


def fetch(uri: str, into: Path) -> None:
    """Download the ``s3://`` tarball of a source directory and unpack it into ``into``
    (script mode's code directory, or serving's for inference hooks)."""
    from byoc import s3

    try:
        into.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create {into} to unpack the source code {uri} into ({exc}); make it writable"
        ) from None
    with tempfile.TemporaryDirectory(prefix="byoc-sourcedir-") as scratch:
        archive = s3.download(uri, Path(scratch))
        log.info("source code: unpacking %s into %s", uri, into)
        _extract(archive, into, source=uri)


def stage(env: TrainingEnvironment, code: UserCode) -> str:
    """Put the user's code in ``code.code_dir``; returns where it came from (SM_MODULE_DIR)."""
    code.code_dir.mkdir(parents=True, exist_ok=True)
    location = code.submit_directory
    if location and location.startswith("s3://"):
        archive = _code_channel_archive(env)
        if archive is not None:
            log.info("source code %s: unpacking the '%s' channel's %s", location, CODE_CHANNEL, archive.name)
            _extract(archive, code.code_dir)
        else:
            fetch(location, code.code_dir)
        return location
    if location:
        path = _local_path(env, location)
        if path.is_dir():
            if path.resolve() != code.code_dir.resolve():
                log.info("source code: copying %s to %s", path, code.code_dir)
                shutil.copytree(path, code.code_dir, dirs_exist_ok=True)
        elif path.is_file():
            log.info("source code: unpacking %s into %s", path, code.code_dir)
            _extract(path, code.code_dir)
        else:
            raise ConfigError(
                f"sagemaker_submit_directory '{location}' does not exist; give the source "
                "directory, its .tar.gz, or an s3:// URI of sourcedir.tar.gz"
            )
        return location
    archive = _code_channel_archive(env)
    if archive is not None:
        log.info("source code: unpacking the '%s' channel's %s", CODE_CHANNEL, archive.name)
        _extract(archive, code.code_dir)
    return str(code.code_dir)


# -- installing requirements -------------------------------------------------------------------


class _Tee:
    """Copy a child's output to one of our streams as it arrives, keeping the last bytes and the
    start of the last Python traceback: an exception whose message runs past TAIL_BYTES (a long
    list of rows or columns) pushed its type and frames out of the tail, and the failure then
    quoted the message's last line instead of naming the exception."""

    _MARK = _TRACEBACK.encode()  # also inside an exception group's first line

    def __init__(self, source: IO[bytes], sink: IO[bytes]) -> None:
        self._source, self._sink = source, sink
        self._tail: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._edge = b""  # the previous chunk's last bytes: a mark may straddle two reads
        self._traceback = bytearray()  # the last traceback's first TAIL_BYTES
        self._since_traceback = 0  # bytes read from its start on
        self._thread = threading.Thread(target=self._copy, name="byoc-tee", daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        fd = self._source.fileno()
        while chunk := os.read(fd, 65536):
            try:
                self._sink.write(chunk)
                self._sink.flush()
            except (OSError, ValueError):
                pass
            self._keep_traceback(chunk)
            self._tail.append(chunk)
            self._size += len(chunk)
            while self._size > TAIL_BYTES and len(self._tail) > 1:
                self._size -= len(self._tail.popleft())

    def _keep_traceback(self, chunk: bytes) -> None:
        data = self._edge + chunk
        at = data.rfind(self._MARK)
        if at >= 0:
            self._traceback = bytearray(data[at : at + TAIL_BYTES])
            self._since_traceback = len(data) - at
        elif self._since_traceback:
            self._traceback += chunk[: max(0, TAIL_BYTES - len(self._traceback))]
            self._since_traceback += len(chunk)
        self._edge = data[-(len(self._MARK) - 1) :]

    def text(self) -> str:
        """The kept output: the tail, after the last traceback's start when that is not in it."""
        self._thread.join(timeout=10)
        tail = b"".join(self._tail)
        if self._since_traceback > len(tail):
            cut = self._since_traceback - len(self._traceback) - len(tail)
            tail = bytes(self._traceback) + f"\n[... {max(cut, 0)} bytes not kept ...]\n".encode() + tail
        return tail.decode("utf-8", errors="replace")


def _pip(args: Sequence[str], cwd: Path) -> tuple[int, str]:
    """Run pip with its output streamed into the job's log; returns (exit code, output tail).
    The image's own packages are held at their installed versions (:mod:`byoc.image_packages`)."""
    with image_packages.constraints() as held:
        command = [
            *(sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"),
            *("--constraint", str(held)),
            *args,
        ]
        log.info("running: %s (in %s)", " ".join(command), cwd)
        sys.stdout.flush()
        proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        tee = _Tee(proc.stdout, sys.stdout.buffer)
        code = proc.wait()
        return code, tee.text()


def _last_error_line(output: str) -> str:
    """pip's last specific error: a resolver conflict's generic last line says nothing of the packages."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:") or line.lower().startswith("error:")]
    specific = [line for line in errors if not line.startswith(_RESOLUTION_IMPOSSIBLE)]
    return (specific or errors or lines or ["pip printed nothing"])[-1]


def _conflict_causes(output: str) -> list[str]:
    """The lines pip lists under "The conflict is caused by:" (who asked for which version)."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == _CONFLICT_CAUSES), None)
    if start is None:
        return []
    causes = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        causes.append(line.strip())
    return causes


def _pip_tail(output: str) -> str:
    return "pip output (last lines):\n" + "\n".join(output.splitlines()[-40:])


def _install_failed(what: str, source: str, output: str) -> InstallFailed:
    """The failure naming what pip could not install and how to fix it: a conflict names the
    clashing requirements, a line pip cannot parse its line number, anything else the package."""
    last = _last_error_line(output)
    details = _pip_tail(output)
    conflict = _CONFLICT.search(last)
    invalid = _INVALID_REQUIREMENT.search(last)
    if conflict and (replaces := image_packages.clash(_conflict_causes(output), source)):
        return InstallFailed(replaces, details=details)
    if conflict:
        causes = "; ".join(_conflict_causes(output))
        return InstallFailed(
            f"pip could not install {conflict.group(1)} (from {source}): they conflict"
            + (f" ({causes})" if causes else "")
            + f"; change the versions in {source} so they agree",
            details=details,
        )
    if invalid and what == REQUIREMENTS:
        line = _FROM_LINE.search(output)
        where = f"{source} line {line.group(1)}" if line else source
        return InstallFailed(
            f"pip could not install {source}: {where} is not a requirement pip understands: {last}; "
            "write it as name, name==version or a path such as ./wheels/name.whl",
            details=details,
        )
    match = _REQUIREMENT_IN_ERROR.search(last)
    package = match.group(1) if match and what == REQUIREMENTS else what
    return InstallFailed(
        f"pip could not install {package} (from {source}): {last}; "
        + (_unwritable_site_fix(source, output) or _MISSING_PACKAGE_FIX.format(source=source)),
        details=details,
    )


_MISSING_PACKAGE_FIX = (
    "fix {source} or make the package reachable (with no network, vendor it in the source "
    "directory and refer to it by path, e.g. ./wheels/name.whl)"
)


def _unwritable_site_fix(source: str, output: str) -> str | None:
    """What to do when pip failed to write the image's site-packages (``docker run --user``, a
    read-only image): not "fix requirements.txt", which is not what is wrong.  None otherwise."""
    site = sysconfig.get_paths()["purelib"]
    denied = "Permission denied" in output or "Read-only file system" in output
    if not denied or os.access(site, os.W_OK):
        return None
    return (
        f"{site} (the image's packages) is not writable by uid {os.getuid()}: run the container "
        "as root (SageMaker's default) without --read-only, or install the packages in an image "
        f"built FROM this one (RUN pip install ...) and leave {source} out of the source directory"
    )


def _can_build_locally() -> bool:
    """setuptools that builds wheels by itself (70.1 added bdist_wheel), or with ``wheel``."""
    from importlib import metadata

    try:
        version = tuple(int(p) for p in metadata.version("setuptools").split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def _no_isolation() -> list[str]:
    return ["--no-build-isolation"] if _can_build_locally() else []


def _offline(requirements: Path) -> bool:
    """No index to fetch build tools from: PIP_NO_INDEX, or --no-index in requirements.txt."""
    if os.environ.get("PIP_NO_INDEX", "").lower() in ("1", "true", "yes", "on"):
        return True
    try:
        text = requirements.read_text(encoding="utf-8")
    except OSError:
        return False
    return any(line.split("#", 1)[0].strip() == "--no-index" for line in text.splitlines())


def _build_isolation_args(package_dir: Path) -> list[str]:
    """``--no-build-isolation`` when the image can build the package itself (setuptools), so a
    local package installs with no network; otherwise pip's default isolated build."""
    pyproject = package_dir / "pyproject.toml"
    backend = "setuptools.build_meta"
    if pyproject.is_file():
        try:
            import tomllib
        except ImportError:  # Python 3.10: let pip build it in isolation
            return []
        try:
            backend = (
                tomllib.loads(pyproject.read_text(encoding="utf-8"))
                .get("build-system", {})
                .get("build-backend", backend)
            )
        except (tomllib.TOMLDecodeError, OSError):
            return []
    return _no_isolation() if backend.startswith("setuptools") else []


# a requirement line naming a local file or directory (./wheels/x.whl, /opt/x, file:..., -e .) or
# another requirements file (-r base.txt, -c constraints.txt)
_LOCAL_REFERENCE = re.compile(
    r"(?:^|[\s@=])(?:\.{1,2}/|/|file:|\.(?:\s|$))|^\s*(?:-[rc]|--requirement|--constraint)\b"
)


def _installed_marker(code_dir: Path, requirements: bytes) -> Path | None:
    """The file that says ``requirements`` are installed into this interpreter, or None when there
    is no private place for it.  Keyed by the file's sha256, the interpreter and its
    site-packages (and ``code_dir`` when a line names a local path or another file, whose content
    the text does not show), in a directory of this uid's under the temporary directory: writable
    whoever the container runs as, and gone with the container, as are the packages pip put in
    its site-packages."""
    key = hashlib.sha256(requirements)
    site = sysconfig.get_paths()["purelib"]
    try:  # a virtual environment made again at the same path is another one
        site_id = os.stat(site).st_ino
    except OSError:
        site_id = 0
    key.update(f"\0{sys.executable}\0{sys.version}\0{site}\0{site_id}".encode())
    text = requirements.decode("utf-8", errors="replace")
    if any(_LOCAL_REFERENCE.search(line.split("#", 1)[0]) for line in text.splitlines()):
        key.update(f"\0{code_dir.resolve()}".encode())
    folder = Path(tempfile.gettempdir()) / f"byoc-requirements-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if folder.stat().st_uid != os.getuid():  # another user's: its markers prove nothing
            return None
    except OSError:
        return None
    return folder / key.hexdigest()


TRAINING_UPLOAD = "the code channel's sourcedir.tar.gz under network isolation"
MODEL_UPLOAD = "code/ in model.tar.gz"


def install_requirements(code_dir: Path, uploaded_as: str = TRAINING_UPLOAD) -> None:
    """pip-install ``code_dir/requirements.txt`` if there is one (serving installs only this),
    unless the same file was installed into this interpreter already: a multi-model endpoint
    loads a model in every worker and again after each eviction, and each load ran pip (seconds,
    and the network for an index) for packages it had installed the first time.  ``uploaded_as``:
    how the source directory reaches this job, for a failure naming a file it lacks."""
    requirements = code_dir / REQUIREMENTS
    if requirements.is_file():
        marker = _installed_marker(code_dir, requirements.read_bytes())
        if marker is not None and marker.is_file():
            log.info("%s: already installed into this interpreter", requirements)
            return
        log.info("installing %s", requirements)
        offline = _offline(requirements)
        # read before pip runs, in the directory pip runs in; pip still decides (and logs)
        absent = requirement_paths.missing(requirements, code_dir)
        status, output = _pip([*(_no_isolation() if offline else []), "-r", REQUIREMENTS], code_dir)
        if status != 0 and absent:
            raise InstallFailed(
                requirement_paths.failure_reason(absent, code_dir, uploaded_as),
                details="\n".join(
                    [
                        *(f"{m.file} line {m.number}: {m.text} -> {m.path} (missing)" for m in absent),
                        _pip_tail(output),
                    ]
                ),
            )
        if status != 0:
            raise _install_failed(REQUIREMENTS, REQUIREMENTS, output)
        if marker is not None:
            with contextlib.suppress(OSError):  # not remembered: the next load runs pip again
                marker.write_text(f"{requirements}\n", encoding="utf-8")


def install(code_dir: Path) -> None:
    """requirements.txt first, then the source directory itself when it is a package."""
    install_requirements(code_dir)
    if (code_dir / "setup.py").is_file() or (code_dir / "pyproject.toml").is_file():
        status, output = _pip([*_build_isolation_args(code_dir), "."], code_dir)
        if status != 0:
            raise _install_failed(
                f"the source directory's package ({code_dir})", "setup.py/pyproject.toml", output
            )


# -- running the program -----------------------------------------------------------------------


def command(code_dir: Path, program: str, args: Sequence[str]) -> list[str]:
    """How to start the entry point: a .py file (as a module when the source dir is a package,
    like the toolkit), a shell script, any executable file, or a module name."""
    path = code_dir / program
    is_package = (code_dir / "setup.py").is_file() or (code_dir / "pyproject.toml").is_file()
    if program.endswith(".py") and path.is_file():
        if is_package and "/" not in program:
            return [sys.executable, "-m", program[:-3], *args]
        return [sys.executable, program, *args]
    if path.is_file():
        with open(path, "rb") as fh:
            has_shebang = fh.read(2) == b"#!"
        if has_shebang:
            path.chmod(path.stat().st_mode | 0o111)
            return [str(path.resolve()), *args]
        return ["/bin/sh", program, *args]
    if _MODULE_NAME.match(program) and not program.endswith((".py", ".sh")):
        return [sys.executable, "-m", program, *args]
    shown = ", ".join(sorted(p.name for p in code_dir.iterdir())[:20]) or "nothing"
    below = _found_below(code_dir, program)
    fix = (
        f"it is at {below}: the upload holds the folder {below.parts[0]} around the code, so set entry_point "
        f"to {below}, or pack the folder's contents rather than the folder (tar -czf sourcedir.tar.gz "
        f"-C {below.parent} .)"
        if below is not None
        else "set entry_point to a file of source_dir"
    )
    raise ConfigError(
        f"entry point '{program}' is not in the source directory {code_dir} (it holds: {shown}); {fix}"
    )


def _found_below(code_dir: Path, program: str) -> Path | None:
    """``program`` in a sub-folder of ``code_dir`` (relative to it), the shallowest first: a
    tarball of the source folder itself (``tar -czf sourcedir.tar.gz src``) puts it there."""
    try:
        found = [p for p in itertools.islice(code_dir.rglob(program), 100) if p.is_file()]
    except (OSError, ValueError):  # an unreadable folder; a program that is no relative path
        return None
    found.sort(key=lambda p: (len(p.parts), str(p)))
    return found[0].relative_to(code_dir) if found else None


def _reset_signals() -> None:  # runs in the child between fork and exec
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@dataclass
class UserProcess:
    """The running user program: its own process group, so a stop reaches all its children."""

    popen: subprocess.Popen
    stderr: _Tee
    stopping: threading.Event = field(default_factory=threading.Event)
    # train's children from before the script started: not the script's, never ended with it
    others: frozenset[int] = frozenset()

    @classmethod
    def start(cls, argv: Sequence[str], cwd: Path, environ: Mapping[str, str]) -> UserProcess:
        # A daemon the script starts (double fork into a session of its own) is re-parented to
        # train, not to PID 1, so left_running finds it.
        if not processes.become_subreaper():
            log.debug("not a child subreaper: a process leaving the script's session is not followed")
        others = frozenset(processes.child_pids(os.getpid()))
        sys.stdout.flush()
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(environ),
            stdout=None,  # inherited: the user's prints reach the log as they happen
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_reset_signals,  # only unblocks signals: takes no locks
        )
        assert popen.stderr is not None
        return cls(popen, _Tee(popen.stderr, sys.stderr.buffer), others=others)

    def left_running(self) -> dict[int, int]:
        """{pid: process group} of what runs of the script's: its session (whatever process group
        they moved to), and every live process below train's children started since the script
        (the script itself while it runs; as a subreaper, train adopts what left the session)."""
        left = processes.session_groups(self.popen.pid)
        below = processes.descendants(os.getpid(), self.others)
        left.update((pid, stat.group) for pid, stat in below.items() if stat.state not in "ZX")
        return left

    def reap(self) -> None:
        """Collect the exit status of the script's processes re-parented to train that have ended
        (not the script's own: its Popen waits for it)."""
        for pid, stat in processes.descendants(os.getpid(), self.others | {self.popen.pid}).items():
            if stat.ppid == os.getpid() and stat.state == "Z":
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)

    def stop(self, signum: int, grace: float) -> None:
        """Forward ``signum`` to the whole group (and any other group of its session); SIGKILL
        what is left when the script has exited, or after ``grace`` seconds."""
        self.stopping.set()
        pgid = self.popen.pid
        log.warning("forwarding %s to the user script's process group %d", signal.Signals(signum).name, pgid)
        for group in {pgid, *self.left_running().values()}:
            _killpg(group, signum)
        try:
            self.popen.wait(timeout=grace)
            log.warning("the user script exited with %s after the stop", self.popen.returncode)
        except subprocess.TimeoutExpired:
            log.warning("the user script still runs %.0f s after the stop: killing its process group", grace)
        ended = _end(self.left_running, None, 0.0)
        _killpg(pgid, signal.SIGKILL)  # where /proc cannot be read
        self.reap()
        if ended.killed:
            log.warning(
                "killed %s of the user script left running after the stop: %s",
                _processes(len(ended.killed)),
                ", ".join(ended.killed.values()),
            )

    def wait(self) -> int:
        return self.popen.wait()

    def end_left_running(self, program: str) -> None:
        """End what the script started and left running when it exited (a child it did not wait
        for, a pool it did not close, a daemon): SIGTERM, then SIGKILL after LEFTOVER_GRACE_SECONDS,
        and reap them.  In a container PID 1's exit ends them; outside one (SAGEMAKER_BASE_DIR)
        nothing did, and `train` returned while they ran on, holding its output open.  Found by
        :meth:`left_running`."""
        ended = _end(self.left_running, signal.SIGTERM, LEFTOVER_GRACE_SECONDS)
        self.reap()
        if not ended.signalled:
            return
        count = len(ended.signalled)
        log.warning(
            "ended %s the user script %s left running (it did not wait for %s): %s%s",
            _processes(count),
            program,
            "it" if count == 1 else "them",
            ", ".join(ended.signalled.values()),
            f"; {len(ended.killed)} ignored SIGTERM and {'was' if len(ended.killed) == 1 else 'were'} "
            f"killed after {LEFTOVER_GRACE_SECONDS:.0f} s"
            if ended.killed
            else "",
        )


@dataclass(frozen=True)
class _Ended:
    """The processes :func:`_end` ended, as "command (pid N)": all it signalled, and
    those it had to SIGKILL."""

    signalled: dict[int, str]
    killed: dict[int, str]


def _end(running: Callable[[], dict[int, int]], signum: int | None, grace: float) -> _Ended:
    """Send ``signum`` (None: none) to every process group of what ``running`` lists ({pid: group}),
    wait up to ``grace`` seconds for its processes to end, then SIGKILL those left."""
    left = running()
    signalled = {pid: _described(pid) for pid in left}
    if signum is not None:
        for group in set(left.values()):
            _killpg(group, signum)
    deadline = time.monotonic() + grace
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = running()
        signalled.update((pid, _described(pid)) for pid in left if pid not in signalled)
    killed: dict[int, str] = {}
    for _ in range(100):  # a process may start another between the scan and the kill
        if not left:
            break
        killed.update((pid, signalled.get(pid) or _described(pid)) for pid in left)
        for group in set(left.values()):
            _killpg(group, signal.SIGKILL)
        time.sleep(0.01)
        left = running()
    signalled.update(killed)
    return _Ended(signalled, killed)


def _described(pid: int) -> str:
    """``sleep 600 (pid 123)``: the command line, cut at 80 characters."""
    try:
        command = (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        )
    except OSError:
        command = ""
    return f"{command[:80] or '?'} (pid {pid})"


def _processes(count: int) -> str:
    return f"{count} process{'' if count == 1 else 'es'}"


def _killpg(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _last_traceback(lines: Sequence[str]) -> int | None:
    """Where the last Python traceback in ``lines`` starts: its "Traceback" line, or the bare
    frame Python prints for an entry point that does not compile (a SyntaxError has no
    "Traceback" line then); None without one."""

    def starts(i: int, line: str) -> bool:
        if line.startswith((_TRACEBACK, _GROUP_TRACEBACK)):
            return True
        frame = _FRAME.match(line)
        before = lines[i - 1] if i else ""
        return bool(
            frame and not frame["function"] and line.startswith("  File") and not before[:1].isspace()
        )

    found = [i for i, line in enumerate(lines) if starts(i, line)]
    return found[-1] if found else None


def exception_line(stderr: str) -> str | None:
    """The header of the last Python traceback in ``stderr``: the exception's type and the first
    line of its message (``ValueError: ...``); None without a traceback.

    A traceback is its start line, the frames (indented), then the header; the lines after the
    header are the rest of a multi-line message (and notes), so the header is the first line
    after the frames, never the last line.  The last traceback is the one that ended a chain
    ("During handling of the above exception ...").  An exception group's lines carry a
    ``  | `` margin."""
    lines = stderr.splitlines()
    start = _last_traceback(lines)
    if start is None:
        return None
    margin = _GROUP_MARGIN if lines[start].startswith(_GROUP_TRACEBACK) else ""
    for line in lines[start + 1 :]:
        if not line.startswith(margin):
            break
        text = line[len(margin) :]
        if text.strip() and not text[0].isspace():
            return text.strip()
    return None


def deepest_line(frames: Sequence[tuple[str, int]], folder: Path) -> str | None:
    """``file line N`` (relative to ``folder``) of the last of ``frames`` (file name, line) in
    the user's code folder: where their code raised, or called the library that did; None when
    no frame is theirs.  Serving names a failing hook's line by it, training a script's."""
    for filename, lineno in reversed(frames):
        name = _in_folder(filename, folder)
        if name is not None:
            return f"{name} line {lineno}"
    return None


def _in_folder(filename: str, folder: Path) -> str | None:
    """``filename`` relative to ``folder`` (the user's code folder), or None when it is not in it."""
    if filename.startswith("<"):  # <frozen importlib._bootstrap>, <string>: no file
        return None
    path = Path(filename)
    path = path if path.is_absolute() else folder / path
    for root in (folder, folder.resolve()):
        if path.is_relative_to(root):
            return str(path.relative_to(root))
    return None


def _traceback_frames(stderr: str) -> list[tuple[str, int]]:
    """(file, line) of each frame of the last traceback in ``stderr``, outermost first."""
    lines = stderr.splitlines()
    start = _last_traceback(lines)
    if start is None:
        return []
    matches = (_FRAME.match(line) for line in lines[start:])
    return [(m["path"], int(m["line"])) for m in matches if m]


def missing_module_fix(module: str, folder: str) -> str:
    """How to fix a ModuleNotFoundError in user code whose source is ``folder``: the package into
    its requirements.txt (pip installs it before the code runs), or the module's own file there
    when it is the user's.  Training and serving say it alike."""
    top = module.split(".")[0]
    return (
        f"if '{top}' is a package, add the package that provides it to {REQUIREMENTS} in {folder} "
        f"(pip installs it before your code runs); if it is your own module, put {top}.py (or the "
        f"folder {top}/) there"
    )


SAVE_AS_UTF8 = "Python reads a program as UTF-8: save the file as UTF-8"
_OR_DECLARE = " (or declare its encoding on its first line, such as # -*- coding: latin-1 -*-)"
# Python's words for an entry point that is not UTF-8, printed with no traceback
_NOT_UTF8_ENTRY = re.compile(
    r"^SyntaxError: Non-UTF-8 code starting with .* in file (?P<path>.+) on line \d+"
)


def about_encoding(said: str) -> bool:
    """Whether Python's SyntaxError (or ValueError) message ``said`` may be a file's encoding."""
    return "utf-8" in said.lower() or "null bytes" in said


def program_text(path: Path) -> tuple[str, str] | None:
    """What the text of ``path``, user code Python refused, is when its encoding is the fault: where
    it stops being UTF-8 (:func:`byoc.errors.not_utf8_at`: byte, offset, line) or the wide encoding
    it is in; and the fix beside saving it as UTF-8.  None when it reads as UTF-8 or declares
    another encoding (PEP 263, Python's to judge).  Serving says it of an inference program,
    training of a script, alike."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    wide = wide_text.wide_encoding(data)
    if wide is not None:
        return f"{wide}, not UTF-8", ""  # no declaration reads it: Python's are ASCII-based
    try:
        declared, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:  # a first line that is not UTF-8 (or an unknown declaration): read as UTF-8
        declared = "utf-8"
    if declared not in ("utf-8", "utf-8-sig"):
        return None
    start = len(BOM_UTF8) if data.startswith(BOM_UTF8) else 0
    try:
        data[start:].decode("utf-8")
    except UnicodeDecodeError as undecodable:
        return not_utf8_at(data, start + undecodable.start), _OR_DECLARE
    return None


def _not_utf8_failure(program: str, stderr: str, code_dir: Path) -> str | None:
    """The cause of a script's exit 1 when Python refused a file of its code for its encoding (it
    said "Non-UTF-8 code starting with '\\xe9' in file ..." or "(unicode error) 'utf-8' codec
    can't decode byte 0xe9 in position 3", a position in a string literal): the file, the byte,
    its offset and line, and the fix, as serving says it of an inference program."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    entry = _NOT_UTF8_ENTRY.match(lines[-1]) if lines else None
    frames: list[tuple[str, int]] = []
    if entry:
        path = Path(entry["path"])  # the entry point itself: no traceback
    else:
        raised = exception_line(stderr)
        if not raised or not raised.startswith(("SyntaxError:", "ValueError:")) or not about_encoding(raised):
            return None
        frames = _traceback_frames(stderr)
        if not frames:
            return None
        path = Path(frames[-1][0])  # the file that did not compile: its frame is the last
    text = program_text(path if path.is_absolute() else code_dir / path)
    if text is None:
        return None
    said, or_else = text
    name = _in_folder(str(path), code_dir) or str(path)
    where = deepest_line(frames[:-1], code_dir)
    by = f"imported by the user script {program} at {where}" if where else f"the user script {program}"
    return f"{name}: {said}; {SAVE_AS_UTF8}{or_else} ({by}, exit code {UNCAUGHT_EXIT})"


def failure(program: str, status: int, stderr: str, code_dir: Path | None = None) -> ScriptFailed:
    """The failure for a non-zero exit: the cause first (an uncaught exception's type, message
    and the line of ``code_dir`` it came from), stderr's last lines after."""
    from byoc import outofmemory

    details = "stderr (last lines):\n" + "\n".join(stderr.splitlines()[-40:])
    if status in (OOM_EXIT, -signal.SIGKILL):
        return ScriptFailed(
            f"The user script {program} ran out of memory: "
            + outofmemory.killed("it")
            + " (exit code 137); use an instance type with more memory or load less data at once",
            exit_code=OOM_EXIT,
            details=details,
        )
    exit_code = 128 - status if status < 0 else status
    # Only an exit with Python's status for an uncaught exception is blamed on a traceback: one a
    # script logged and handled (logging.exception) before exiting on purpose did not end it.
    raised = exception_line(stderr) if status == UNCAUGHT_EXIT else None
    encoding = _not_utf8_failure(program, stderr, code_dir) if status == UNCAUGHT_EXIT and code_dir else None
    if encoding:
        cause = encoding
    elif raised:
        if len(raised) > MAX_RAISED_CHARS:  # SageMaker keeps 1,024 characters of the failure reason
            raised = raised[:MAX_RAISED_CHARS] + "..."
        where = deepest_line(_traceback_frames(stderr), code_dir) if code_dir is not None else None
        cause = f"{raised} (raised by the user script {program}{f' at {where}' if where else ''}, exit code {exit_code})"
        missing = _MISSING_MODULE.match(raised)
        if missing:
            cause += "; " + missing_module_fix(missing["name"], "the source directory")
        if raised.startswith(_RELATIVE_IMPORT):
            cause += (
                f"; the entry point runs as a file (python {program}), not as a module of a package: "
                "import absolutely from the source directory, which is on PYTHONPATH (from pkg import util)"
            )
    elif status < 0:
        cause = f"The user script {program} was killed by {_signal_name(-status)}"
    else:
        last = [line for line in stderr.splitlines() if line.strip()]
        cause = f"The user script {program} exited with code {exit_code}" + (
            f"; the last line of its stderr: {last[-1].strip()}" if last else " (its stderr is empty)"
        )
    return ScriptFailed(cause, exit_code=exit_code, details=details)


def _signal_name(signum: int) -> str:
    """SIGSEGV, or ``signal 40`` for one signal.Signals has no member for (real-time signals)."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def job(code: UserCode) -> Callable[[TrainingEnvironment, Any], None]:
    """The job shell's job (:mod:`byoc.job`) for ``code``: it reports phases on the shell's
    ``progress`` and lets the shell forward a stop to the running script's process group."""

    def run_user_code(env: TrainingEnvironment, progress: Any) -> None:
        grace = env.stop_grace_seconds

        def started(process: UserProcess) -> None:
            progress.forward_stop = lambda signum: process.stop(signum, grace)

        progress.runs_user_script = True
        try:
            run(env, code, on_start=started, on_phase=lambda phase: setattr(progress, "phase", phase))
        finally:
            progress.forward_stop = None

    return run_user_code


def toolkit_hyperparameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Decode values as the AWS training toolkit does (JSON, else the raw string), which is
    what scripts written for its containers expect: ``"None"`` stays the string ``None``."""
    out = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            out[key] = value
    return out


def run(
    env: TrainingEnvironment,
    code: UserCode,
    *,
    on_start: Callable[[UserProcess], None] | None = None,
    on_phase: Callable[[str], None] | None = None,
) -> None:
    """Stage, install and run the user's program; raises :class:`ScriptFailed` when it fails.

    ``on_start`` hands the running process to the job shell, which forwards a stop to it;
    ``on_phase`` tells the shell what is happening, for its log and stop messages.
    """
    phase = on_phase or (lambda _: None)
    phase(f"staging the user code for {code.program}")
    module_dir = stage(env, code)
    phase(f"installing the requirements of {code.program}")
    install(code.code_dir)
    env = dataclasses.replace(env, hyperparameters=toolkit_hyperparameters(env.raw_hyperparameters))
    args = to_cmd_args(env.hyperparameters)
    argv = command(code.code_dir, code.program, args)
    environ: dict[str, Any] = dict(env.environ)
    environ.update(env.to_env_vars(module_dir=module_dir, entry_point=code.program))
    environ.update(SAGEMAKER_PROGRAM=code.program, SAGEMAKER_SUBMIT_DIRECTORY=module_dir)
    # The toolkit puts the code directory first on PYTHONPATH: a script in a sub-folder
    # (scripts/train.py) or a shell entry point's python imports the source directory's modules.
    environ["PYTHONPATH"] = os.pathsep.join([str(code.code_dir), *filter(None, [environ.get("PYTHONPATH")])])
    log.info("running the user script: %s (in %s)", " ".join(logtext.redacted(argv)), code.code_dir)
    before = _files(code.code_dir)  # to name what the script writes there instead of the model dir
    started = time.monotonic()
    phase(f"running the user script {code.program}")
    process = UserProcess.start(argv, code.code_dir, environ)
    if on_start is not None:
        on_start(process)
    status = process.wait()
    ran = time.monotonic() - started
    if not process.stopping.is_set():  # a stop ends them itself
        process.end_left_running(code.program)  # before reading stderr: they may hold its pipe
    stderr = process.stderr.text()
    if process.stopping.is_set():  # the job shell is reporting the stop; it exits for us
        threading.Event().wait()
    log.info("the user script exited with code %d after %.1f s", status, ran)
    if status != 0:
        discard_partial_model(env.paths.model_dir, "failed")
        raise failure(code.program, status, stderr, code.code_dir)
    if env.current_host == env.hosts[0]:  # the other hosts of a distributed job often save nothing
        _warn_if_no_model(env.paths.model_dir, code, before)


def discard_partial_model(model_dir: Path, ended: str) -> None:
    """Empty model/ after the script ``ended`` (failed, was stopped) without finishing: what it
    saved before is no model, and SageMaker would pack it into model.tar.gz all the same."""
    from byoc import artifact

    try:
        if held := artifact.clear(model_dir):
            log.warning(
                "the user script %s: removed what it saved in %s (%s)", ended, model_dir, ", ".join(held)
            )
    except OSError as exc:  # the script's failure or stop is the cause to report
        log.warning(
            "the user script %s, and what it saved in %s cannot be removed: %s", ended, model_dir, exc
        )


def _files(folder: Path) -> dict[Path, int]:
    """Each file under ``folder`` with its modification time (ns); empty when it cannot be read."""
    try:
        return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}
    except OSError:
        return {}


def _warn_if_no_model(model_dir: Path, code: UserCode, before: Mapping[Path, int]) -> None:
    """A WARNING when the script saved nothing in the model directory: the job still completes
    (the toolkit's rule) but its model.tar.gz is empty, which only deploying would reveal.  Files
    the script wrote into its working directory instead, which SageMaker never uploads, are named."""
    try:
        if any(model_dir.iterdir()):
            return
    except OSError:
        return
    written = sorted(
        str(path.relative_to(code.code_dir))
        for path, mtime in _files(code.code_dir).items()
        if before.get(path) != mtime and "__pycache__" not in path.parts
    )
    stray = (
        f"; it wrote {', '.join(written[:5])}{' ...' if len(written) > 5 else ''} into its working "
        f"directory {code.code_dir}, which is not uploaded"
        if written
        else ""
    )
    log.warning(
        "the user script %s saved nothing in %s (SM_MODEL_DIR): the job's model.tar.gz will be empty%s; "
        "save the model under os.environ['SM_MODEL_DIR']",
        code.program,
        model_dir,
        stray,
    )
