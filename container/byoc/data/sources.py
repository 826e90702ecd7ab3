"""Where a channel's bytes come from: the files of a directory (File, FastFile) or a FIFO (Pipe).

A :class:`Source` hides gzip (detected by its magic bytes, not by the file name) and the
difference between a regular file, which can be opened many times and handed to pyarrow by
path, and a FIFO, which can be read exactly once.
"""

from __future__ import annotations

import errno
import gzip
import io
import logging
import os
import stat
import time
import zlib
from codecs import BOM_UTF8
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from byoc.data.partitions import Partitions, check_same_keys, hive_partitions
from byoc.errors import DataError, not_utf8_at
from byoc.gzip_members import GZIP_MAGIC, GzipMembers, TrailingBytes
from byoc.oserrors import display_path

log = logging.getLogger(__name__)

RECORDIO_MAGIC = (0xCED7230A).to_bytes(4, "little")
RECORDIO_HEADER = 8  # the magic and the flag-and-length word
SNIFF_BYTES = 64 * 1024
SKIPPED_PREFIXES = (".", "_")
# What Source.open returns: a plain file, a pipe's bytes in memory, or a gzip stream over a file.
Stream = io.BufferedReader | io.BytesIO | gzip.GzipFile


def corrupt_gzip(name: str, exc: BaseException) -> DataError:
    return DataError(
        f"{name}: the gzip data is corrupt or truncated ({exc}); re-compress the file with gzip "
        "or upload it uncompressed",
        code="corrupt_gzip",
    )


SAVE_AS_UTF8 = (
    "byoc reads UTF-8: save the file as UTF-8 (Excel: 'CSV UTF-8 (Comma delimited)'; PowerShell: "
    "-Encoding utf8; pandas writes UTF-8 unless given another encoding)"
)


def not_utf8(name: str, data: bytes, start: int, *, offset: int = 0, line: int = 1) -> DataError:
    """The failure for a channel file that is not UTF-8, in every text reader's words (CSV, JSON
    Lines, libsvm): the file, the byte, its offset and line (:func:`byoc.errors.not_utf8_at`:
    ``data`` is the file from byte ``offset`` on, on line ``line``), and the fix."""
    where = not_utf8_at(data, start, offset=offset, line=line)
    return DataError(f"{name}: {where}; {SAVE_AS_UTF8}", code="not_utf8")


def unreadable(name: str, exc: BaseException) -> DataError:
    """A reader failed midway through a source (OSError, EOFError): most often gzip data that is
    corrupt or truncated, which pyarrow reports as a plain I/O error; a file gone since it was
    listed (pyarrow cannot open it) is :func:`disappeared`."""
    if isinstance(exc, FileNotFoundError):
        return disappeared(name)
    if (failed := io_failure(name, exc)) is not None:
        return failed
    return DataError(
        f"{name}: cannot be read ({exc}); if it is gzip-compressed, the data is corrupt or truncated: "
        "re-compress it or upload it uncompressed",
        code="corrupt_gzip",
    )


# What a file system that fetches files as they are read (FastFile mode's S3 mount, NFS, FUSE)
# reports when it cannot deliver them: the mount's fault, not the data's or the permissions'.
IO_ERRNOS = frozenset(
    {
        errno.EIO,
        errno.ETIMEDOUT,
        errno.ENOTCONN,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.ESTALE,
        errno.EREMOTEIO,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
    }
)


def io_failure(name: str, exc: BaseException) -> DataError | None:
    """The failure for a channel file the file system could not deliver (an I/O error, a lost
    connection: FastFile mode reads S3 as the job reads the file), or None for another error.
    Told as a permission (``give the training user read access``) or as corrupt gzip, it sent
    the user to fix a file that was fine."""
    if not isinstance(exc, OSError) or exc.errno not in IO_ERRNOS:
        return None
    return DataError(
        f"{name}: reading it failed ({os.strerror(exc.errno)}): the file system under the channel did "
        "not deliver it (in FastFile mode SageMaker reads each file from S3 as the job reads it, so a "
        "network or S3 failure shows here); run the job again, and if it recurs use File mode "
        "(TrainingInputMode File copies the channel before the job starts)",
        code="read_failed",
    )


def disappeared(name: str) -> DataError:
    """A channel file listed, then gone before it was read: something deleted or replaced it while
    the job ran (FastFile mode reads S3 as the job goes), not a file the training user cannot read."""
    return DataError(
        f"{name}: disappeared while the job read the channel (listed, then no longer there); keep the "
        "channel's files in place until the job ends (in FastFile mode SageMaker reads them from S3 as "
        "the job runs: do not delete or overwrite objects under the channel's S3 prefix meanwhile), "
        "then run the job again",
        code="file_disappeared",
    )


@contextmanager
def files_in_place(sources: Sequence[Source]) -> Iterator[None]:
    """Reading ``sources``: a FileNotFoundError when one of their files is gone since it was
    listed is :func:`disappeared` naming it (not an internal error); any other stays as it is."""
    try:
        yield
    except FileNotFoundError as exc:
        gone = next((s for s in sources if s.path is not None and not os.path.exists(s.path)), None)
        if gone is None:
            raise
        raise disappeared(gone.name) from exc


def _read_up_to(stream: Stream | io.FileIO, n: int) -> bytes:
    """Read n bytes or until EOF (pipes return short reads)."""
    chunks: list[bytes] = []
    remaining = n
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


@dataclass
class Source:
    """One input of a channel: a regular file, or what arrived through the channel's FIFO.

    ``name`` is what messages show (the path relative to the channel directory, or the
    FIFO's path).  ``path`` is set for regular files, which can be reopened and handed to
    pyarrow by path; ``data`` holds a pipe's (decompressed) bytes, read once.
    """

    name: str
    path: Path | None = None
    data: bytes | None = None
    rows: int | None = None  # data rows the reader found in it (for messages naming a row)
    partitions: Partitions = ()  # its key=value directories (byoc.data.partitions)
    _head: bytes | None = field(default=None, repr=False)
    _gzip: bool | None = field(default=None, repr=False)

    @property
    def compressed(self) -> bool:
        if self._gzip is None:
            if self.path is not None:
                with open(self.path, "rb") as fh:
                    self._gzip = fh.read(2) == GZIP_MAGIC
            else:
                self._gzip = False
        return bool(self._gzip)

    def head(self, n: int = SNIFF_BYTES) -> bytes:
        """The first ``n`` decompressed bytes, for sniffing headers and formats.  The first
        SNIFF_BYTES are kept; a longer head (a CSV whose first record is longer) is read afresh
        each time rather than kept for the whole read, in every file."""
        if self.data is not None:
            return self.data[:n]
        if n > SNIFF_BYTES:
            return _guarded(self.name, lambda: self._read(lambda fh: _read_up_to(fh, n)))
        if self._head is None:
            self._head = _guarded(self.name, lambda: self._read(lambda fh: _read_up_to(fh, SNIFF_BYTES)))
        return self._head[:n]

    def _read(self, read: Any) -> Any:
        with self.open() as fh:
            return read(fh)

    def is_empty(self) -> bool:
        if self.path is not None and self.path.stat().st_size == 0:
            return True
        return self.head(1) == b""

    def is_blank(self) -> bool:
        """Empty, or only line breaks and spaces (``echo > f``; pandas writes an empty frame
        as one line break): no record in any format, so skipped as an empty file is.  Judged
        on the first SNIFF_BYTES, so a blank file longer than that is read (and refused)."""
        if self.is_empty():
            return True
        head = self.head()
        return len(head) < SNIFF_BYTES and not head.removeprefix(BOM_UTF8).strip()

    def open(self) -> Stream:
        """A fresh readable, decompressed binary stream."""
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        if self.compressed:
            return gzip.GzipFile(self.path, "rb")
        return open(self.path, "rb")

    def arrow_input(self) -> Any:
        """What pyarrow reads: a plain file by its path, a buffer, or gzip decoded by Python's gzip
        module, as :meth:`open` and the server's request bodies decode it.

        pyarrow's own gzip stream refused what Python's gzip reads (zero padding after the last
        member: "zlib inflate failed: unknown compression method"), so a file the byte-level
        readers read was called corrupt by the Arrow ones.  Python's is no slower under pyarrow's
        CSV reader (a 59 MB gzip CSV, best of five on a busy 2-core machine: 2.1 s against 2.8 s)."""
        import pyarrow as pa

        if self.data is not None:
            return pa.BufferReader(self.data)
        if self.compressed:
            return pa.PythonFile(gzip.GzipFile(self.path, "rb"), mode="r")
        # compression given explicitly: pyarrow would otherwise trust a ".gz" suffix
        return pa.input_stream(str(self.path), compression=None)

    def read_all(self) -> bytes:
        """The whole decompressed content (for formats that need random access)."""
        if self.data is not None:
            return self.data
        return _guarded(self.name, lambda: self._read(lambda fh: fh.read()))


def _guarded(name: str, read: Any) -> Any:
    try:
        return read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise corrupt_gzip(name, exc) from exc
    except OSError as exc:
        if (failed := io_failure(name, exc)) is not None:
            raise failed from exc
        raise


def _skipped(rel: Path) -> bool:
    return any(part.startswith(SKIPPED_PREFIXES) for part in rel.parts)


def directory_sources(channel: str, directory: Path) -> list[Source]:
    """Every regular file under ``directory``, recursively, sorted by relative path (S3 key order).

    Names starting with ``.`` or ``_`` (``_SUCCESS``, ``.ipynb_checkpoints``, ``_temporary``)
    are skipped at any depth, as the built-in algorithms do; ``key=value`` directories are kept
    as each file's partitions (:mod:`byoc.data.partitions`).  Symbolic links are followed, but
    each directory and each file is read once however it is reached (a link loop such as
    ``loop -> .`` adds nothing).  A file or directory the training user cannot read, or whose
    name is not UTF-8, is a DataError naming it: skipping it would silently train on less.
    """
    if not directory.is_dir():
        raise DataError(
            f"channel '{channel}': directory {directory} does not exist; pass the channel to the "
            "training job (estimator.fit({'" + channel + "': 's3://...'}))",
            code="missing_channel",
        )
    found: list[Source] = []
    seen_dirs: set[str] = set()
    seen_files: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(directory, followlinks=True, onerror=_walk_error(channel)):
        real_dir = os.path.realpath(dirpath)
        if real_dir in seen_dirs:  # reached again through a link: its files are already listed
            dirnames[:] = []
            continue
        seen_dirs.add(real_dir)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(SKIPPED_PREFIXES))
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            rel = path.relative_to(directory)
            if _skipped(rel):
                continue
            _check_name(channel, rel)
            try:
                mode = path.stat().st_mode
            except OSError as exc:  # a dangling link: skipping it would train on less, unannounced
                raise _unstattable(channel, rel, path, exc) from exc
            if not stat.S_ISREG(mode):
                continue
            name = str(Path(channel) / rel)
            real = os.path.realpath(path)
            if real in seen_files:
                log.info("%s is the same file as %s: read once", name, seen_files[real])
                continue
            seen_files[real] = name
            found.append(
                _readable(Source(name=name, path=path, partitions=hive_partitions(Path(channel) / rel)))
            )
    found.sort(key=lambda s: s.name)  # S3 key order
    check_same_keys(channel, found)
    return found


def _unstattable(channel: str, rel: Path, path: Path, exc: OSError) -> DataError:
    """A listed name that cannot be looked at: most often a symbolic link to nothing, else a file
    removed since the directory was listed."""
    if isinstance(exc, FileNotFoundError) and not path.is_symlink():
        return disappeared(display_path(Path(channel) / rel))
    link = f"; it is a symbolic link to {display_path(os.readlink(path))}" if path.is_symlink() else ""
    fix = "restore what it points to, or remove the link" if link else "make it readable by the training user"
    return DataError(
        f"{display_path(Path(channel) / rel)}: cannot be read ({exc.strerror}{link}); {fix}",
        code="unreadable_file",
    )


def _walk_error(channel: str) -> Any:
    def raise_it(exc: OSError) -> None:
        raise DataError(
            f"channel '{channel}': directory {display_path(exc.filename)} cannot be listed "
            f"({exc.strerror}); give the training user (uid {os.getuid()}) read and execute access",
            code="unreadable_file",
        ) from exc

    return raise_it


def _check_name(channel: str, rel: Path) -> None:
    try:
        str(rel).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(
            f"channel '{channel}': file name {display_path(Path(channel) / rel)} is not UTF-8; "
            "rename it with UTF-8 characters (S3 keys are UTF-8)",
            code="bad_file_name",
        ) from exc


def _readable(source: Source) -> Source:
    """Open the file once now (sniffing gzip) so an unreadable file is named before any reading."""
    try:
        if source.compressed:  # reads the file's first bytes
            log.debug("%s: gzip-compressed", source.name)
    except FileNotFoundError as exc:
        raise disappeared(source.name) from exc
    except OSError as exc:
        if (failed := io_failure(source.name, exc)) is not None:
            raise failed from exc
        raise DataError(
            f"{source.name}: cannot be read ({exc.strerror}); give the training user "
            f"(uid {os.getuid()}) read access to it",
            code="unreadable_file",
        ) from exc
    return source


FIFO_WAIT_SECONDS = 120.0
"""How long a Pipe mode channel's FIFO may take to appear: SageMaker creates ``<channel>_<epoch>``
while the job runs, not necessarily before ``train`` starts, and AWS's own Pipe mode reader
(sagemaker-tensorflow-extensions' RecordReader) waits 120 s for it likewise."""


def _wait_for(channel: str, fifo: Path) -> None:
    """Return once ``fifo`` exists; a DataError when it has not appeared in FIFO_WAIT_SECONDS."""
    started = time.monotonic()
    logged = False
    while not fifo.exists():
        waited = time.monotonic() - started
        if waited >= FIFO_WAIT_SECONDS:
            raise DataError(
                f"channel '{channel}' is in Pipe mode but {fifo} did not appear in {waited:.0f} s; "
                f"SageMaker creates '{channel}_0' for Pipe mode channels (check TrainingInputMode in "
                "inputdataconfig.json)",
                code="missing_channel",
            )
        if not logged and waited >= 1:
            log.info("channel %s: waiting for %s to appear (Pipe mode)", channel, fifo)
            logged = True
        time.sleep(0.05 if waited < 1 else 0.5)


def pipe_source(channel: str, fifo: Path, chunk: int = 1 << 20) -> Source:
    """Stream the channel's FIFO to its end (blocks until SageMaker's writer connects; waits for
    the FIFO itself to appear, see FIFO_WAIT_SECONDS).

    The FIFO can be read only once, and the model needs every row in memory anyway, so the
    (decompressed) bytes are kept; gzip is detected from the stream's first bytes.
    """
    _wait_for(channel, fifo)
    with open(fifo, "rb", buffering=0) as raw:
        parts = []
        while block := raw.read(chunk):
            parts.append(block)
    data = b"".join(parts)
    del parts
    try:
        return _in_memory(str(fifo), data)
    except DataError as exc:
        mixed = _plain_after_gzip(data) if exc.code == "corrupt_gzip" else None
        if mixed is None:
            raise
        raise mixed_compression(channel, str(fifo), *mixed) from exc


PIPE_COMPRESSION = (
    "channel '{channel}' is in Pipe mode, where SageMaker streams the S3 objects back to back: "
    "compress every object under the prefix with gzip, or none of them (or set the channel's "
    "RecordWrapperType to RecordIO, or use File mode, where each object is read on its own)"
)


def mixed_compression(channel: str, name: str, offset: int, gzip_objects: int | None) -> DataError:
    """Gzip and uncompressed objects in one Pipe stream: at ``offset``, bytes that are not gzip
    after ``gzip_objects`` gzip members, or (None) gzip data after uncompressed text.  Told as
    corrupt gzip, or as binary content where text was expected, it sent the user to re-compress
    or convert a file that was fine."""
    what = (
        "gzip data, after uncompressed data"
        if gzip_objects is None
        else f"not gzip data, after {gzip_objects} gzip-compressed object(s)"
    )
    return DataError(
        f"{name}, byte {offset}: {what}; {PIPE_COMPRESSION.format(channel=channel)}",
        code="mixed_compression",
    )


def _plain_after_gzip(data: bytes, chunk: int = 1 << 20) -> tuple[int, int] | None:
    """(offset, gzip members before it) of the first bytes after whole gzip members that are
    neither gzip nor zero padding, or None when the gzip data itself is cut or corrupt."""
    view = memoryview(data)
    members = GzipMembers()
    fed = 0
    try:
        while fed < len(data) or members.pending:
            if not members.pending:
                members.pending = bytes(view[fed : fed + chunk])
                fed += len(members.pending)
            members.inflate(1 << 16)  # the output is not kept: only where the members end
    except zlib.error:
        return None
    except TrailingBytes:
        return fed - len(members.pending), members.members
    return None


def _in_memory(name: str, data: bytes) -> Source:
    """A source held in memory (a pipe's bytes, a RecordIO record), gunzipped when it is gzip."""
    if data[:2] == GZIP_MAGIC:
        data = _guarded(name, lambda: gzip.decompress(data))
    return Source(name=name, data=data)


RECORDIO_PARTS = {0: "whole record", 1: "first part", 2: "middle part", 3: "last part"}


def _recordio_sequence(flags: list[int]) -> str:
    """A run of RecordIO flag words as the message names it: ``1 (first part), 0 (whole record)``."""
    return ", ".join(f"{flag} ({RECORDIO_PARTS.get(flag, 'unknown')})" for flag in flags)


def _recordio_order(flags: list[int], flag: int, opened: int) -> str | None:
    """What is wrong with a record header whose flag is ``flag`` after the parts ``flags`` of a
    record not yet ended (its first at byte ``opened``; empty between records), or None when it
    may come there: a middle or last part continues a first part, a whole record or a first part
    starts a new record, and no other flag exists (3 bits, 4 of them defined)."""
    if flag not in RECORDIO_PARTS:
        return f"a record header with the unknown flag {flag} (RecordIO's are 0 to 3)"
    part = f"a {RECORDIO_PARTS[flag]} (flag {flag})"
    if flags and flag in (0, 1):
        return f"{part} after the first part at byte {opened}, which no last part ended"
    if not flags and flag in (2, 3):
        return f"{part} with no first part before it"
    return None


def recordio_sources(channel: str, stream: Source) -> list[Source]:
    """The records of a Pipe mode channel whose RecordWrapperType is RecordIO: SageMaker wraps each
    S3 object in one record (MXNet/dmlc RecordIO: the magic 0xced7230a, a little-endian word of
    3 flag bits and a 29-bit length, the payload padded to 4 bytes; flags 1, 2, 3 mark the first,
    middle and last parts of a record split where its payload held the magic, which goes back in
    between).  Each record is a source of its own, as each file is in File mode.

    Parts out of order (a middle or last part with no first part, a first part followed by a whole
    record, another first part or the stream's end) and an unknown flag are refused, naming the
    record's byte offset and the flag sequence: joined or split as they came, the objects' rows
    ran together or were cut apart silently."""
    data = stream.read_all()
    view = memoryview(data)
    found: list[Source] = []
    parts: list[bytes] = []
    flags: list[int] = []  # of the parts of the record being joined
    opened = 0  # byte offset of its first part
    offset = 0

    def corrupt(where: str, what: str, sequence: list[int]) -> DataError:
        return DataError(
            f"channel '{channel}': {where}: {what} (flag sequence {_recordio_sequence(sequence)}); "
            "the stream is cut or corrupt: run the job again",
            code="bad_recordio",
        )

    while offset < len(data):
        where = f"{stream.name}, byte {offset} (RecordIO record {len(found) + 1})"
        if len(data) - offset < RECORDIO_HEADER or view[offset : offset + 4] != RECORDIO_MAGIC:
            first = offset == 0
            raise DataError(
                f"channel '{channel}' has RecordWrapperType RecordIO, but {where} "
                + ("does not start with" if first else "is not")
                + " a RecordIO record header (magic 0xced7230a)"
                + (
                    "; SageMaker wraps every object of a RecordIO channel, so these objects are not "
                    "wrapped: set the channel's RecordWrapperType to None (the SDK's "
                    "TrainingInput(record_wrapping=None)) to read them as they are"
                    if first
                    else "; the stream is cut or corrupt: run the job again"
                ),
                code="bad_recordio",
            )
        word = int.from_bytes(view[offset + 4 : offset + 8], "little")
        flag, length = word >> 29, word & ((1 << 29) - 1)
        wrong = _recordio_order(flags, flag, opened)
        if wrong is not None:
            raise corrupt(f"{stream.name}, byte {offset}", wrong, [*flags, flag])
        start = offset + RECORDIO_HEADER
        end = start + length
        if end > len(data):
            raise corrupt(
                where,
                f"a record header of {length} bytes, but the stream ends after {len(data) - start}",
                [*flags, flag],
            )
        if not flags:
            opened = offset
        parts.append(bytes(view[start:end]))
        flags.append(flag)
        offset = start + (length + 3) // 4 * 4
        if flag in (0, 3):  # a whole record, or the last part of one
            found.append(
                _in_memory(f"{stream.name} (RecordIO record {len(found) + 1})", RECORDIO_MAGIC.join(parts))
            )
            parts, flags = [], []
    if flags:
        raise corrupt(
            f"{stream.name}, byte {opened} (RecordIO record {len(found) + 1})",
            "the first part of a record that the stream ends inside (no last part)",
            flags,
        )
    return found
