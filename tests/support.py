"""Shared test helpers: build ML roots the way SageMaker does, and run the real entry points.

Everything here is plain functions (no fixtures) so unit tests, integration tests and
benchmarks can all import it.  Fixtures built on these live in ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import errno
import gzip as _gzip
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
CONTAINER = REPO / "container"
TRAIN = CONTAINER / "train"
SERVE = CONTAINER / "serve"
EVALUATE = CONTAINER / "evaluate"

ChannelFiles = Mapping[str, Mapping[str, "bytes | str"]]
T = TypeVar("T")


def encode_hyperparameters(hyperparameters: Mapping[str, Any], encoding: str = "sdk-json") -> dict[str, Any]:
    """Spell hyperparameter values as a given client does.

    ``sdk-json``: framework estimators / source_dir (``json.dumps`` each value: ``"\\"gini\\""``);
    ``str``: the generic ``Estimator(image_uri=...)`` (``str()``: ``"True"``, ``"None"``);
    ``raw``: values written as given (boto3/console users, or deliberately broken files).
    """
    if encoding == "sdk-json":
        return {k: json.dumps(v) for k, v in hyperparameters.items()}
    if encoding == "str":
        return {k: str(v) for k, v in hyperparameters.items()}
    if encoding == "raw":
        return dict(hyperparameters)
    raise ValueError(f"unknown hyperparameter encoding {encoding!r}")


def make_ml_root(
    base: Path,
    *,
    channels: ChannelFiles | None = None,
    hyperparameters: Mapping[str, Any] | None = None,
    encoding: str = "sdk-json",
    content_types: Mapping[str, str] | None = None,
    input_mode: str = "File",
    hosts: Sequence[str] = ("algo-1",),
    input_modes: Mapping[str, str] | None = None,
    current_host: str | None = None,
    record_wrappers: Mapping[str, str] | None = None,
) -> Path:
    """Lay out ``base`` like /opt/ml before ``docker run IMAGE train``.

    Writes input/config/{hyperparameters,inputdataconfig,resourceconfig}.json and each
    channel's files under input/data/<channel>/ (file names may contain ``/`` for
    sub-directories; ``str`` content is UTF-8 encoded).  Channels in Pipe mode get no
    directory: feed them with :func:`pipe_feeders`.  ``model/`` and ``output/`` exist and are
    empty, as on the platform.  ``current_host`` defaults to the first of ``hosts``;
    ``record_wrappers`` sets a channel's RecordWrapperType (default "None"): feed a RecordIO
    channel with :func:`recordio_record` per object.
    """
    base = Path(base)
    config = base / "input" / "config"
    data = base / "input" / "data"
    config.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)
    (base / "model").mkdir(exist_ok=True)
    (base / "output").mkdir(exist_ok=True)
    channels = channels or {}
    content_types = content_types or {}
    input_modes = input_modes or {}

    (config / "hyperparameters.json").write_text(
        json.dumps(encode_hyperparameters(hyperparameters or {}, encoding)), encoding="utf-8"
    )
    dataconfig: dict[str, dict[str, str]] = {}
    for name in channels:
        entry = {
            "TrainingInputMode": input_modes.get(name, input_mode),
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": (record_wrappers or {}).get(name, "None"),
        }
        if name in content_types:
            entry["ContentType"] = content_types[name]
        dataconfig[name] = entry
    (config / "inputdataconfig.json").write_text(json.dumps(dataconfig), encoding="utf-8")
    (config / "resourceconfig.json").write_text(
        json.dumps(
            {"current_host": current_host or hosts[0], "hosts": list(hosts), "network_interface_name": "eth0"}
        ),
        encoding="utf-8",
    )

    for name, files in channels.items():
        if dataconfig[name]["TrainingInputMode"] == "Pipe":
            continue
        channel_dir = data / name
        channel_dir.mkdir(parents=True, exist_ok=True)
        for rel, content in files.items():
            path = channel_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return base


def write_tree(base: Path, files: Mapping[str, str]) -> Path:
    """``files`` (relative path -> text, dedented) written under ``base``."""
    for rel, text in files.items():
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return base


def script_root(
    tmp_path: Path, program: str, files: Mapping[str, str], hyperparameters: Mapping[str, Any] | None = None
) -> Path:
    """An ML root whose hyperparameters ask for ``program`` from a source dir holding ``files``,
    spelled as SDK v2 framework estimators write them (json.dumps of every value)."""
    source = write_tree(tmp_path / "source", files)
    params = {"sagemaker_program": program, "sagemaker_submit_directory": str(source)}
    params.update(hyperparameters or {})
    return make_ml_root(
        tmp_path / "ml", channels={"train": {"data.csv": "1,2\n3,4\n"}}, hyperparameters=params
    )


@contextlib.contextmanager
def pipe_feeders(
    root: Path, channels: ChannelFiles, *, epoch: int = 0, chunk: int = 64 * 1024
) -> Iterator[None]:
    """Create the FIFOs ``input/data/<channel>_<epoch>`` and feed each from its own thread.

    Each channel's files are written to its FIFO one after another, in chunks, the way
    SageMaker streams an S3 prefix.  A writer blocks in ``open`` until the reader opens the
    FIFO; on exit, writers nobody read are released so the test never hangs.
    """
    data = Path(root) / "input" / "data"
    data.mkdir(parents=True, exist_ok=True)
    threads: list[threading.Thread] = []
    fifos: list[Path] = []
    for name, files in channels.items():
        fifo = data / f"{name}_{epoch}"
        os.mkfifo(fifo)
        fifos.append(fifo)
        payload = [c.encode("utf-8") if isinstance(c, str) else c for c in files.values()]

        def feed(path: Path = fifo, blobs: list[bytes] = payload) -> None:
            try:
                with open(path, "wb") as fh:
                    for blob in blobs:
                        for start in range(0, len(blob), chunk):
                            fh.write(blob[start : start + chunk])
            except (BrokenPipeError, OSError):
                pass

        thread = threading.Thread(target=feed, daemon=True, name=f"pipe-{name}")
        thread.start()
        threads.append(thread)
    try:
        yield
    finally:
        for fifo, thread in zip(fifos, threads, strict=True):
            if thread.is_alive():  # nobody opened it for reading: open it ourselves to unblock
                with contextlib.suppress(OSError):
                    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
                    while thread.is_alive():
                        with contextlib.suppress(BlockingIOError):
                            if not os.read(fd, 1 << 16):
                                time.sleep(0.01)
                    os.close(fd)
            thread.join(timeout=5)


class FailingReads:
    """A file whose reads fail with an I/O error (EIO) after ``good`` of them, as a FastFile
    mount's file does when S3 cannot deliver it."""

    def __init__(self, fh: Any, good: int) -> None:
        self.fh, self.good = fh, good

    def read(self, *args: Any) -> Any:
        if self.good <= 0:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        self.good -= 1
        return self.fh.read(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fh, name)

    def __enter__(self) -> FailingReads:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


def failing_open(suffix: str, good: int) -> Callable[..., Any]:
    """A replacement for ``builtins.open`` whose files named ``*suffix`` are :class:`FailingReads`
    (``good`` reads succeed first); in a ``train`` process: :data:`FAILING_OPEN_PATCH`."""
    import builtins

    real = builtins.open

    def opened(path: Any, *args: Any, **kwargs: Any) -> Any:
        fh = real(path, *args, **kwargs)
        return FailingReads(fh, good) if str(path).endswith(suffix) else fh

    return opened


# run_train_patched's patch: b.csv's reads after its first fail with EIO
FAILING_OPEN_PATCH = (
    f"import builtins, sys; sys.path.insert(0, {str(REPO / 'tests')!r}); from support import failing_open; "
    "builtins.open = failing_open('b.csv', 1)"
)


RECORDIO_MAGIC = (0xCED7230A).to_bytes(4, "little")


def recordio_record(payload: bytes | str, flag: int = 0) -> bytes:
    """One RecordIO record as SageMaker wraps an S3 object in Pipe mode (RecordWrapperType
    RecordIO): the magic, a little-endian word of 3 flag bits and a 29-bit length, the payload
    padded to 4 bytes.  ``flag`` 1, 2, 3 make the first, a middle and the last part of a record
    split where its payload held the magic."""
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    word = (flag << 29) | len(data)
    return RECORDIO_MAGIC + word.to_bytes(4, "little") + data + b"\0" * (-len(data) % 4)


def traced_peak(run: Callable[[], object]) -> int:
    """Bytes at the peak of ``run()`` as tracemalloc sees them (numpy's buffers included)."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def csv_bytes(frame: pd.DataFrame, *, target: str | None, header: bool = False) -> bytes:
    """CSV as the built-in algorithms expect it: target column first (when given), no header."""
    if target is not None:
        frame = frame[[target] + [c for c in frame.columns if c != target]]
    return frame.to_csv(index=False, header=header).encode("utf-8")


def gzip_bytes(data: bytes | str) -> bytes:
    return _gzip.compress(data.encode("utf-8") if isinstance(data, str) else data)


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def understated_parquet(body: bytes, declared: int) -> bytes:
    """``body`` (a Parquet file) with its footer declaring ``declared`` bytes for every column chunk's
    decompressed size (``total_uncompressed_size``) and every row group's (``total_byte_size``),
    its pages as they were: a crafted footer that understates what the pages decompress to.  The
    footer is Thrift's compact protocol, where such a field is the byte 0x16 (i64, one field after
    the one before it) and a zigzag varint; its length, before the closing ``PAR1``, is rewritten."""
    import struct

    import pyarrow as pa
    import pyarrow.parquet as pq

    def field(value: int) -> bytes:
        value, out = (value << 1) ^ (value >> 63), bytearray(b"\x16")
        while value >= 0x80:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        return bytes(out + bytes([value]))

    (length,) = struct.unpack("<I", body[-8:-4])
    footer = body[-8 - length : -8]
    meta = pq.read_metadata(pa.BufferReader(body))
    for group in (meta.row_group(i) for i in range(meta.num_row_groups)):
        sizes = {
            group.total_byte_size,
            *(group.column(j).total_uncompressed_size for j in range(group.num_columns)),
        }
        for size in sizes:
            assert field(size) in footer, size
            footer = footer.replace(field(size), field(declared))
    crafted = body[: -8 - length] + footer + struct.pack("<I", len(footer)) + b"PAR1"
    meta = pq.read_metadata(pa.BufferReader(crafted))  # only those fields changed, each to ``declared``
    for group in (meta.row_group(i) for i in range(meta.num_row_groups)):
        assert group.total_byte_size == declared
        assert all(group.column(j).total_uncompressed_size == declared for j in range(group.num_columns))
    return crafted


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready records: missing (None, NaN, pd.NA) -> None, NumPy scalars -> Python."""
    out = []
    for row in frame.to_dict(orient="records"):
        record = {}
        for key, value in row.items():
            if isinstance(value, np.generic):
                value = value.item()
            if value is None or value is pd.NA or (isinstance(value, float) and value != value):
                value = None
            record[str(key)] = value
        out.append(record)
    return out


def jsonlines_bytes(frame: pd.DataFrame) -> bytes:
    """One JSON object per row; floats written exactly (pandas' to_json rounds to 10 digits)."""
    return "".join(json.dumps(record) + "\n" for record in json_records(frame)).encode("utf-8")


def clean_environ(env: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """os.environ without SM_*/SAGEMAKER_* leftovers, plus ``env`` and ``extra``."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "SAGEMAKER_", "TRAINING_JOB_"))}
    out["PYTHONUNBUFFERED"] = "1"
    out.update(env or {})
    out.update(extra)
    return out


def train_command(*args: str, python: str | None = None, patch: str | None = None) -> list[str]:
    """The real train entry point; with ``patch`` (Python run first, e.g. replacing a function
    with a slow or broken one), in a fresh interpreter: how tests reach paths only a bug or a
    slow machine takes."""
    if patch is None:
        return [python or sys.executable, str(TRAIN), *args]
    code = [
        "import signal, sys",
        # as the job shell does before its imports: the patch's imports may start threads
        # (numpy's), which must not take the stop signals its watcher thread waits for
        "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})",
        f"sys.path.insert(0, {str(CONTAINER)!r})",
        patch,
        "from byoc import training",
        "sys.exit(training.main())",
    ]
    return [python or sys.executable, "-c", "\n".join(code), *args]


def without_file_privileges() -> None:
    """``preexec_fn``: file modes apply to the child even when the tests run as root.

    Root keeps its uid (so it can still run the interpreter wherever it is installed) but
    loses CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from its bounding set, so after exec it can
    no longer read a chmod 000 file or write into a chmod 555 directory, like a non-root user.
    """
    if os.geteuid() != 0:
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop, cap_dac_override, cap_dac_read_search = 24, 1, 2
    for cap in (cap_dac_override, cap_dac_read_search):
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_train(
    root: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    unprivileged: bool = False,
    python: str | None = None,
    capture: bool = True,
) -> subprocess.CompletedProcess:
    """Run ``container/train`` as a real process with SAGEMAKER_BASE_DIR=root
    (``unprivileged``: subject to file modes even as root, see :func:`without_file_privileges`;
    ``python``: another interpreter, e.g. a throwaway venv that user-code installs may change;
    ``capture=False``: the output goes to this process's own, as in ``make demo``)."""
    return subprocess.run(
        train_command(*args, python=python),
        cwd=str(REPO),
        capture_output=capture,
        text=True,
        timeout=timeout,
        env=clean_environ(env, SAGEMAKER_BASE_DIR=str(root)),
        preexec_fn=without_file_privileges if unprivileged else None,
    )


def run_evaluate(
    base: Path, *args: str, timeout: float = 300, capture: bool = True
) -> subprocess.CompletedProcess:
    """Run ``container/evaluate`` (the Processing step's command) with SAGEMAKER_BASE_DIR=base, where
    a failure's message goes (output/message); ``capture=False`` as in :func:`run_train`."""
    return subprocess.run(
        [sys.executable, str(EVALUATE), *args],
        cwd=str(REPO),
        capture_output=capture,
        text=True,
        timeout=timeout,
        env=clean_environ(SAGEMAKER_BASE_DIR=str(base)),
    )


def run_train_patched(root: Path, patch: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """The real train entry point in a fresh interpreter after running ``patch`` (Python that
    replaces a function with a broken one): how tests reach the paths only a bug of ours takes."""
    return subprocess.run(
        train_command(patch=patch),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_environ(SAGEMAKER_BASE_DIR=str(root), PYTHONPATH=str(CONTAINER)),
    )


def start_train(
    root: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    python: str | None = None,
    patch: str | None = None,
) -> subprocess.Popen:
    """Start ``container/train`` without waiting (signals, pipes); stdout+stderr merged
    (``patch``: see :func:`train_command`)."""
    return subprocess.Popen(
        train_command(*args, python=python, patch=patch),
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_environ(env, SAGEMAKER_BASE_DIR=str(root)),
    )


def read_until(proc: subprocess.Popen, pattern: str) -> str:
    """What ``proc`` (from :func:`start_train`) printed up to and including the first line
    matching the regex ``pattern`` (or up to its end, when no line matches)."""
    import re

    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if re.search(pattern, line):
            break
    return "".join(seen)


def processes_of(root: Path) -> list[str]:
    """Processes still running with ``SAGEMAKER_BASE_DIR=root`` — a train process and what it
    started (forked children, Dask's scheduler and workers inherit it) — as "pid command" lines."""
    marker = f"SAGEMAKER_BASE_DIR={root}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile, or not ours to read
            continue
        found.append(f"{entry.name} {command[:200]}")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_serve(
    root: Path,
    *args: str,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    python: str | None = None,
) -> tuple[subprocess.Popen, int]:
    """Start ``container/serve`` on a free port (SAGEMAKER_BIND_TO_PORT); returns (process, port).
    ``python``: another interpreter, e.g. a throwaway venv that user-code installs may change."""
    port = port or free_port()
    proc = subprocess.Popen(
        [python or sys.executable, str(SERVE), *args],
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_environ(env, SAGEMAKER_BASE_DIR=str(root), SAGEMAKER_BIND_TO_PORT=str(port)),
    )
    return proc, port


def wait_for(
    condition: Callable[[], T], what: str, timeout: float = 30, *, detail: Callable[[], str] = lambda: ""
) -> T:
    """Call ``condition`` until it returns something truthy, and return that; AssertionError naming
    ``what`` (and ``detail()``, e.g. a container's logs) after ``timeout`` seconds.  ``condition`` may
    raise to fail early (the process it waits for has died)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s\n{detail()}".rstrip())
        time.sleep(0.05)


def answers(url: str) -> bool:
    """GET ``url`` gets a 2xx answer (no answer at all, or an error status: False)."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:  # URLError and HTTPError are OSErrors
        return False


def still_running(proc: subprocess.Popen | None, what: str) -> bool:
    """True while ``proc`` runs (or there is none); once it has exited, AssertionError with what it printed."""
    if proc is None or proc.poll() is None:
        return True
    out = proc.stdout.read() if proc.stdout else ""
    raise AssertionError(f"{what} exited with {proc.returncode}:\n{out}")


def listens_on(proc: subprocess.Popen | None, port: int | None) -> bool:
    """Whether ``proc`` (or a process it started: gunicorn's workers) listens on ``port``; true
    when there is no process or port to check.  A port from :func:`free_port` can be taken by
    another test's server before ``proc`` binds it (two xdist processes, other jobs on the
    machine): that server's 200 would have a test talk to another model, and fail as if the
    served answer were wrong."""
    import psutil

    if proc is None or port is None:
        return True
    try:
        parent = psutil.Process(proc.pid)
        family = [parent, *parent.children(recursive=True)]
        return any(
            conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
            for member in family
            for conn in member.net_connections("tcp")
        )
    except psutil.Error:  # gone, or exiting: still_running says which
        return False


def wait_for_url(
    url: str, what: str, proc: subprocess.Popen | None = None, timeout: float = 60, *, own_port: bool = True
) -> None:
    """Poll GET ``url`` until ``proc`` (the server) answers it 2xx, failing early if it died.
    ``own_port=False`` when the port belongs to another process by design (``docker run -p``:
    dockerd's proxy listens, not the client ``proc``)."""
    port = urllib.parse.urlsplit(url).port if own_port else None
    wait_for(
        lambda: still_running(proc, what) and answers(url) and listens_on(proc, port),
        f"{what} answering {url}",
        timeout,
    )


def wait_for_ping(
    port: int, proc: subprocess.Popen | None = None, timeout: float = 60, *, own_port: bool = True
) -> None:
    """Poll GET /ping until 200, failing early if the server process died (see wait_for_url)."""
    wait_for_url(f"http://127.0.0.1:{port}/ping", "the server", proc, timeout, own_port=own_port)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A real moto server (``moto[server]``, in the test extra) on a free port of 127.0.0.1, standing
    in for S3, STS, ECR...; yields its URL (pass it as AWS_ENDPOINT_URL) and stops it afterwards."""
    moto = Path(sys.executable).parent / "moto_server"
    if not moto.exists():
        raise AssertionError("moto_server not found: pip install -e '.[test]' (moto[server] is a test extra)")
    port = free_port()
    proc = subprocess.Popen(
        [str(moto), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_url(f"{url}/moto-api/", "moto_server", proc)
        yield url
    finally:
        terminate(proc, timeout=10)


def aws_test_environ(endpoint: str, **extra: str) -> dict[str, str]:
    """What a process needs to reach the moto server at ``endpoint`` with dummy credentials (and no
    instance-metadata lookups); ``extra`` overrides (e.g. no credentials at all)."""
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    env.update(extra)
    return env


def terminate(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (as SageMaker stops a container), SIGKILL after ``timeout``; reaps the process."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> str:
    """:func:`terminate`; returns what the process printed."""
    terminate(proc, timeout)
    return proc.stdout.read() if proc.stdout else ""


def read_failure(root: Path) -> str | None:
    path = Path(root) / "output" / "failure"
    return path.read_text(encoding="utf-8") if path.exists() else None


def run_job_raising(tmp_path: Path, exc: BaseException, phase: str) -> tuple[int, str]:
    """byoc's job shell (in process) over a training step that raises ``exc`` during ``phase``:
    the exit code it chose and the output/failure it wrote."""
    from byoc import job
    from byoc.environment import MLPaths

    root = make_ml_root(tmp_path, channels={"train": {"a.csv": "1,2\n0,3\n"}})

    def raising(env: object, progress: job.Progress) -> None:
        progress.phase = phase
        raise exc

    code = job.run_job(
        MLPaths.from_environ({"SAGEMAKER_BASE_DIR": str(root)}),
        job.Progress(),
        {},
        choose=lambda env: raising,
    )
    return code, read_failure(root) or ""


def model_dir_entries(root: Path) -> list[str]:
    """Everything (including hidden staging dirs) under model/, relative, sorted."""
    model = Path(root) / "model"
    if not model.exists():
        return []
    return sorted(str(p.relative_to(model)) for p in model.rglob("*"))


def read_metrics(root: Path) -> dict[str, Any]:
    return json.loads((Path(root) / "output" / "data" / "metrics.json").read_text(encoding="utf-8"))


# -- small datasets (generated, or bundled with scikit-learn: never files outside the checkout) ---


def mixed_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Numeric + text categorical columns with missing values and a text (yes/no) target.

    The target depends on the features, so a fitted model beats chance.
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n).astype(float)
    balance = rng.normal(1000, 400, n).round(2)
    job = rng.choice(["admin", "technician", "services", "retired"], n).astype(object)
    contact = rng.choice(["cellular", "telephone"], n).astype(object)
    score = (age - 45) / 15 + (balance - 1000) / 400 + np.where(job == "retired", 1.5, 0.0)
    deposit = np.where(score + rng.normal(0, 0.5, n) > 0, "yes", "no")
    age[rng.random(n) < 0.05] = np.nan
    job[rng.random(n) < 0.05] = None
    return pd.DataFrame({"deposit": deposit, "age": age, "balance": balance, "job": job, "contact": contact})


def iris_frame() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    names = np.asarray(data.target_names)
    frame["target"] = names[frame["target"].to_numpy()]
    return frame[["target"] + [c for c in frame.columns if c != "target"]]


def diabetes_frame() -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    return frame[["target"] + [c for c in frame.columns if c != "target"]]


# -- multi-model endpoints ----------------------------------------------------------------------


def _kinds(estimator: Any) -> dict[str, str]:
    """The kind byoc's preprocessing gave each column of a fitted pipeline: those its
    ``categorical`` transformer takes are categorical (the others numeric)."""
    from sklearn.compose import ColumnTransformer

    for step in getattr(estimator, "named_steps", {}).values():
        if isinstance(step, ColumnTransformer):
            return {
                str(column): "categorical"
                for name, _, columns in step.transformers_
                if name == "categorical"
                for column in columns
            }
    return {}


def described(estimator: Any) -> dict[str, Any]:
    """model.json's problem_type, classes (as the estimator's indices) and features (the columns
    it was fitted on, in order, each with its name and kind, which model.json requires) for a
    fitted ``estimator``: what byoc.artifact.load checks against the estimator."""
    names = getattr(estimator, "feature_names_in_", None)
    kinds = _kinds(estimator)
    features = {
        "features": [{"name": str(name), "kind": kinds.get(str(name), "numeric")} for name in names]
        if names is not None
        else []
    }
    try:
        count = len(estimator.classes_)
    except AttributeError:
        return {"problem_type": "regression", **features}
    problem_type = "binary_classification" if count == 2 else "multiclass_classification"
    return {"problem_type": problem_type, "classes": list(range(count)), **features}


def save_constant_model(model_dir: Path, value: float, *, ballast_bytes: int = 0) -> Path:
    """A byoc model (byoc's artifact format) that predicts ``value`` for every row of one
    numeric feature ``x``: an answer that names the model that gave it.

    ``ballast_bytes`` of float64 data ride along on the estimator, so the loaded model takes
    that much memory (for memory-budget tests).
    """
    from sklearn.dummy import DummyRegressor

    from byoc import artifact

    estimator = DummyRegressor(strategy="constant", constant=float(value))
    estimator.fit(pd.DataFrame({"x": [0.0, 1.0]}), [0.0, 0.0])
    if ballast_bytes:
        estimator.ballast_ = np.arange(ballast_bytes // 8, dtype=np.float64)
    artifact.save(
        Path(model_dir),
        estimator,
        {
            "problem_type": "regression",
            "algorithm": "constant",
            "features": [{"name": "x", "kind": "numeric", "dtype": "float64"}],
        },
    )
    return Path(model_dir)


# -- script mode ----------------------------------------------------------------------------------


def overlay_venv(path: Path) -> str:
    """A venv at ``path`` that sees this interpreter's packages (a .pth file) but installs into
    itself: user-code tests pip-install there without touching the test venv.  Returns its python."""
    import sysconfig
    import venv

    venv.EnvBuilder(with_pip=False, symlinks=True).create(path)
    python = path / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parents = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    lines = [f"import site; site.addsitedir({parent!r})" for parent in sorted(parents)]
    Path(purelib, "_parent_venv.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(python)


def tiny_wheel(folder: Path, name: str, version: str, requires: Sequence[str] = ()) -> Path:
    """A wheel of distribution ``name`` holding only its metadata (``requires`` as Requires-Dist),
    for offline installs with ``--no-index --find-links folder``: a package that needs another
    numpy, or one named like a package of the image's at another version."""
    import base64
    import hashlib
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{name.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    files = {
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: byoc-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    path = folder / f"{stem}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            archive.writestr(member, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(text.encode())}\n")
        archive.writestr(f"{info}/RECORD", "".join(record) + f"{info}/RECORD,,\n")
    return path


def installed_versions(python: str, names: Sequence[str]) -> dict[str, str]:
    """{name: version} of distributions as ``python`` sees them."""
    code = "import json, sys; from importlib import metadata; print(json.dumps({n: metadata.version(n) for n in sys.argv[1:]}))"
    out = subprocess.run([python, "-c", code, *names], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def one_hot_block(rng: np.random.Generator, n: int, groups: int, levels: int) -> np.ndarray:
    """``groups`` one-hot groups of ``levels`` columns as byoc's encoder writes them (a row of
    zeros for an unknown category, drawn as often as each known one)."""
    onehot = np.zeros((n, groups * levels))
    codes = rng.integers(-1, levels, size=(n, groups))
    for g in range(groups):
        known = codes[:, g] >= 0
        onehot[np.flatnonzero(known), g * levels + codes[known, g]] = 1.0
    return onehot


def assert_compiled_answers(reference: Any, candidate: Any, X: Any) -> None:
    """Labels equal exactly; probabilities and regression values within compiled inference's
    stated tolerance."""
    from byoc import compiled

    tolerance = {"rtol": compiled.RTOL, "atol": compiled.ATOL}
    if not hasattr(reference, "predict_proba"):
        np.testing.assert_allclose(candidate.predict(X), reference.predict(X), **tolerance)
        return
    assert np.array_equal(candidate.predict(X), reference.predict(X))
    got, expected = candidate.predict_proba(X), reference.predict_proba(X)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, **tolerance)


def request_frame(rng: np.random.Generator, n: int, levels: int, const: list[float]) -> pd.DataFrame:
    """Raw rows as a request sends them: numbers with missing values on a coarse grid (ties), a
    column constant in training (scaled to 0: a 0/1 column of the numeric block; 1 or neither in
    a request), text with missing, rare and (past the one-hot cap) infrequent categories."""
    numbers = rng.integers(-3, 4, n) * 0.5
    numbers = np.where(rng.random(n) < 0.2, np.nan, numbers)
    other = rng.normal(size=n)
    many = rng.choice([f"v{i}" for i in range(levels)], n).astype(object)
    many[rng.random(n) < 0.1] = None
    few = rng.choice(["a", "b", "None"], n).astype(object)
    few[rng.random(n) < 0.2] = None
    return pd.DataFrame(
        {"x": numbers, "const": rng.choice(const, n), "other": other, "many": many, "few": few}
    )


def columns_of(X: pd.DataFrame, features: Sequence[Any]) -> list[np.ndarray]:
    """A request's columns as the server's Batch holds them."""
    return [X[f.name].to_numpy(dtype=np.float64 if f.kind == "numeric" else object) for f in features]
