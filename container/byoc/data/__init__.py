"""Training channels as pandas frames.

``read_channel`` finds a channel's input (every regular file under its directory in File and
FastFile mode, the FIFO ``<channel>_0`` in Pipe mode), decompresses gzip by magic bytes, and
picks a reader by media type (the ``content_type`` argument, else the channel's ContentType,
else text/csv).  Readers live in one module per format, registered in :mod:`byoc.data.readers`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from byoc.data import media, parquet_stream, sniff
from byoc.data.readers import READERS, supported_content_types
from byoc.data.sources import (
    RECORDIO_MAGIC,
    Source,
    directory_sources,
    files_in_place,
    mixed_compression,
    pipe_source,
    recordio_sources,
)
from byoc.data.tabular import SparseLayout
from byoc.environment import ChannelConfig, TrainingEnvironment
from byoc.errors import DataError
from byoc.gzip_members import GZIP_MAGIC

__all__ = ["ChannelData", "read_channel", "find_channel", "supported_content_types", "TRAIN_CHANNELS"]

TRAIN_CHANNELS = ("train", "training")
# What a line joined across two Pipe mode objects looks like to the text readers.
SEAM_CODES = frozenset({"bad_csv", "ragged_csv", "bad_jsonlines", "ragged_jsonlines", "bad_libsvm"})

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputNaming:
    """How a message about an input as a whole (no data files, only empty ones) names it and the
    setting that chose its files: a training channel, or the ProcessingInput evaluate reads."""

    name: str
    setting: str
    # what names the media type given by whoever runs the read (not the channel's ContentType)
    media_setting: str = "the content_type hyperparameter"

    @classmethod
    def channel(cls, channel: str) -> InputNaming:
        return cls(f"channel '{channel}'", "the S3 prefix given for this channel")


@dataclass(frozen=True)
class ChannelData:
    """A channel read into one frame.

    Without a header, columns are named "0", "1", ... (strings).  ``label_size`` comes from
    ``text/csv;label_size=N``: 0 (the data has no label column), 1 (the label is the first
    column) or None (not given); other values are refused when the channel is read.
    """

    frame: pd.DataFrame
    has_header: bool
    label_size: int | None
    files: tuple[str, ...]
    content_type: str = media.CSV
    file_rows: tuple[int | None, ...] = ()
    typed: bool = True  # False: text as written, for the train channel's schema to type
    layout: SparseLayout | None = None  # libsvm: where its features start and how many (see like)

    def locate(self, row: int) -> str:
        """'train/b.csv, row 12' for the frame's 0-based ``row`` (rows counted from 1 in each
        file, after any header); the channel's row when the reader did not count per file."""
        where, number = self.position(row)
        return f"{where}, row {number}"

    def position(self, row: int) -> tuple[str, int]:
        """(file, row counted from 1 in it) for the frame's 0-based ``row``, as :meth:`locate`
        words it; the first files and the channel's row when the reader did not count per file."""
        start = 0
        counts = [count for count in self.file_rows if count is not None]
        if len(counts) == len(self.files):
            for name, count in zip(self.files, counts, strict=True):
                if row < start + count:
                    return name, row - start + 1
                start += count
        return self.files_shown, row + 1

    def without_rows(self) -> ChannelData:
        """This channel with an empty frame of the same columns and dtypes: what names its files,
        rows and columns, once its rows are encoded (a frame sliced to no rows would still hold
        every row's buffers)."""
        empty = pd.DataFrame({i: pd.Series([], dtype=dtype) for i, dtype in enumerate(self.frame.dtypes)})
        empty.columns = self.frame.columns
        return dataclasses.replace(self, frame=empty)

    @property
    def files_shown(self) -> str:
        """The channel's first three files, as messages name a channel's files."""
        return f"{', '.join(self.files[:3])}{', ...' if len(self.files) > 3 else ''}"


def release_arrow_memory() -> None:
    """Hand the pages Arrow's allocator (mimalloc) holds free back to the system.  It kept those of
    a reader's freed tables (244 MB after reading a 107 MB CSV of 1.2M rows) beside everything
    training allocates next, which cannot reuse them (numpy's arrays come from glibc), up to the
    fit's peak; released after each channel is read and once the channels are encoded."""
    pa.default_memory_pool().release_unused()


def find_channel(env: TrainingEnvironment, names: Sequence[str]) -> str | None:
    """The first of ``names`` the job has (configured, or present on disk / via SM_CHANNEL_*)."""
    for name in names:
        if name in env.channels:
            return name
    for name in names:
        if env.channel_dir(name).is_dir() or env.paths.pipe_path(name).exists():
            return name
    return None


def file_directory(env: TrainingEnvironment, channel: str) -> Path | None:
    """The directory whose files :func:`read_channel` reads as they are (File and FastFile mode,
    no RecordIO wrapper), for a check that reads its records again; None for a Pipe mode stream,
    read once, and for wrapped records."""
    config = env.channels.get(channel) or ChannelConfig(channel)
    if config.input_mode == "Pipe" or config.recordio:
        return None
    return env.channel_dir(channel)


def _media_type(
    channel: str,
    config: ChannelConfig,
    override: str | None,
    like: tuple[str, str] | None = None,
    override_setting: str = InputNaming.media_setting,
) -> media.MediaType:
    if like and not override and not config.content_type and like[1] != media.DEFAULT:
        log.info("channel %s has no ContentType: read as %s, like channel %s", channel, like[1], like[0])
        return media.parse(like[1])
    mt = media.parse(override or config.content_type)
    source = (
        override_setting
        if override
        else f"ContentType of channel '{channel}'"
        if config.content_type
        else "the default"
    )
    if mt.essence not in READERS:
        hint = ""
        if "protobuf" in mt.essence:
            hint = (
                " (RecordIO-protobuf is the built-in algorithms' format; convert the data to CSV or Parquet)"
            )
        elif "recordio" in mt.essence:
            hint = (
                " (RecordIO is a wrapping, not a content type: give the format inside the records as the "
                "ContentType and set the channel's RecordWrapperType to RecordIO, "
                "TrainingInput(..., record_wrapping='RecordIO'))"
            )
        elif mt.essence == "application/json":
            hint = " (for one JSON object per line use application/jsonlines)"
        raise DataError(
            f"{source} is '{mt.raw}', which byoc cannot read{hint}; use one of {', '.join(READERS)}",
            code="unsupported_content_type",
        )
    if "label_size" in mt.params and mt.label_size not in (0, 1):
        # SageMaker's built-in algorithms define 0 and 1 only; a second label column read as a
        # feature would leak the label into the model.
        raise DataError(
            f"{source} is '{mt.raw}', but label_size must be 0 (no label column) or 1 (the "
            "label in the first column), as for SageMaker's built-in algorithms; byoc learns "
            "one label: use label_size=1 (or leave it out) and remove the other label columns "
            "from the data",
            code="bad_content_type",
        )
    if "header" in mt.params and mt.essence == media.CSV and mt.header is None:
        raise DataError(
            f"{source} is '{mt.raw}', but text/csv's header parameter is 'present' (the files "
            "start with a header row) or 'absent' (they do not); write one of those, or leave "
            "the parameter out to have the header row detected",
            code="bad_content_type",
        )
    return mt


def _declared_header(channel: str, mt: media.MediaType, header: bool | None, like: bool) -> bool | None:
    """The header row as the channel's ContentType declares it (``text/csv;header=present``),
    taken when nothing else says; one that contradicts ``header`` (the hyperparameter, or for
    validation and test the train channel's) is refused: either way a row would be lost or
    trained on."""
    declared = mt.header if mt.essence == media.CSV else None
    if declared is None or header is None or declared == header:
        return header if declared is None else declared
    said = "present" if declared else "absent"
    read = "with a header row" if header else "without a header row"
    why = (
        "as the train channel is: validation and test files are laid out like the train channel's"
        if like
        else f"as the header hyperparameter ({str(header).lower()}) says"
    )
    raise DataError(
        f"channel '{channel}': ContentType '{mt.raw}' declares header={said}, but the channel is read "
        f"{read}, {why}; make the two agree (remove one of them)",
        code="bad_content_type",
    )


def _unwrap_files(channel: str, mode: str, sources: list[Source]) -> list[Source]:
    """RecordWrapperType RecordIO in File or FastFile mode, where SageMaker documents it as unused
    ("leave this field unset or set it to None"): a file that starts with a RecordIO record is
    unwrapped all the same, the others are read as they are; the log says which."""
    out: list[Source] = []
    wrapped = 0
    for source in sources:
        if not source.is_empty() and source.head(4) == RECORDIO_MAGIC:
            records = recordio_sources(channel, source)
            for record in records:
                record.partitions = source.partitions
            out.extend(records)
            wrapped += 1
        else:
            out.append(source)
    log.warning(
        "channel %s has RecordWrapperType RecordIO in %s mode, where SageMaker wraps nothing (Pipe "
        "mode only): %d of %d file(s) start with a RecordIO record and are unwrapped, the others "
        "are read as they are",
        channel,
        mode,
        wrapped,
        len(sources),
    )
    return out


def _with_records(naming: InputNaming, sources: list[Source]) -> list[Source]:
    """The sources that hold something: empty ones (an S3 "folder" marker) and ones holding only
    line breaks or spaces (``echo > f``; pandas' empty frame) are skipped alike, the latter with
    a log line; a channel of nothing else is refused."""
    nonempty = []
    for source in sources:
        if not source.is_blank():
            nonempty.append(source)
        elif not source.is_empty():
            log.info("%s holds only line breaks or spaces: skipped, as an empty file is", source.name)
    if not nonempty:
        raise DataError(
            f"{naming.name}: every file is empty or holds only blank lines "
            f"({', '.join(s.name for s in sources[:5])}{', ...' if len(sources) > 5 else ''}); "
            f"upload the data again (check {naming.setting})",
            code="empty_file",
        )
    return nonempty


def read_channel(
    env: TrainingEnvironment,
    channel: str,
    *,
    content_type: str | None = None,
    header: bool | None = None,
    typed: bool = True,
    label: int | str | None = None,
    like: SparseLayout | None = None,
    like_type: tuple[str, str] | None = None,
    naming: InputNaming | None = None,
) -> ChannelData:
    """Read every input of ``channel`` into one frame (see the module docstring); ``typed=False``
    for a channel the train channel's schema types (validation, test: see ``tabular.to_frame``);
    ``label``, the target hyperparameter: the column it names is left as written, for training
    to type as labels (``byoc.training._typed_label``); ``like`` the train channel's libsvm
    layout for an evaluation channel to follow (``ChannelData.layout``); ``like_type``, the train
    channel's (name, media type), which an evaluation channel without ContentType takes: its
    columns are train's, and SageMaker users set ContentType on the train input and forget the rest;
    ``naming``: how a message about the input as a whole names it (the channel by default)."""
    naming = naming or InputNaming.channel(channel)
    config = env.channels.get(channel) or ChannelConfig(channel)
    mt = _media_type(channel, config, content_type, like_type, naming.media_setting)
    header = _declared_header(channel, mt, header, like_type is not None)
    if config.input_mode == "Pipe":
        sources: list[Source] = [pipe_source(channel, env.paths.pipe_path(channel, 0))]
        if config.recordio:
            sources = recordio_sources(channel, sources[0])
        elif mt.essence == media.PARQUET:  # the objects back to back: cut them apart
            sources = parquet_stream.split(channel, sources[0])
        where = str(env.paths.pipe_path(channel, 0))
    else:
        directory = env.channel_dir(channel)
        variable = env.channel_override(channel)
        if variable is not None and not directory.is_dir():  # not the job's channel that is missing
            raise DataError(
                f"channel '{channel}': directory {directory}, from the environment variable {variable}, "
                f"does not exist; unset {variable} to read {env.paths.channel_dir(channel)}, or set it to "
                "the directory holding the channel's files",
                code="missing_channel",
            )
        sources = directory_sources(channel, directory)
        where = str(directory)
        if config.recordio:
            sources = _unwrap_files(channel, config.input_mode, sources)
    if not sources:
        raise DataError(
            f"{naming.name}: no data files in {where} (names starting with '.' or '_' are "
            f"skipped); check {naming.setting}",
            code="empty_channel",
        )
    with files_in_place(sources):
        nonempty = _with_records(naming, sources)
    plain_pipe = config.input_mode == "Pipe" and not config.recordio and mt.essence != media.PARQUET
    if plain_pipe:
        _check_no_gzip_inside(channel, nonempty[0])
        _check_final_newline(channel, nonempty[0])
    try:
        with files_in_place(nonempty):
            frame, has_header, layout = READERS[mt.essence](
                nonempty,
                channel=channel,
                header=header,
                params=mt.params,
                typed=typed,
                label=label,
                like=like,
            )
    except DataError as exc:
        if plain_pipe and exc.code in SEAM_CODES:
            raise _at_seam(channel, exc) from exc
        said = f"channel '{channel}'"
        if exc.code == "empty_channel" and exc.message.startswith(said) and naming.name != said:
            # files holding no row (Parquet's schema alone, a CSV header row): named as the input is
            raise DataError(naming.name + exc.message[len(said) :], code=exc.code) from exc
        if content_type and config.content_type and media.parse(config.content_type).essence != mt.essence:
            raise _overridden(exc, naming.media_setting, content_type, config.content_type) from exc
        raise
    files, file_rows = tuple(s.name for s in nonempty), tuple(s.rows for s in nonempty)
    del sources, nonempty  # a Pipe stream's bytes, held until now
    release_arrow_memory()  # the reader's tables, freed by now
    return ChannelData(
        frame=frame,
        has_header=has_header,
        layout=layout,
        label_size=mt.label_size,
        files=files,
        content_type=mt.essence,
        file_rows=file_rows,
        typed=typed,
    )


PIPE_SEAMS = (
    "channel '{channel}' is in Pipe mode, where SageMaker streams the S3 objects back to back, so "
    "an object that does not end with a newline has its last line joined to the next object's "
    "first line{likely}: end every object with a newline, or set the channel's "
    "RecordWrapperType to RecordIO (TrainingInput(record_wrapping='RecordIO')), or use File mode"
)


def _at_seam(channel: str, exc: DataError) -> DataError:
    """A text reader's parse error in a plain Pipe stream, with the cause the stream hides."""
    return DataError(
        f"{exc.message}; {PIPE_SEAMS.format(channel=channel, likely=' (a likely cause here)')}",
        code=exc.code,
        status=exc.status,
        details=exc.details,
    )


def _overridden(exc: DataError, setting: str, given: str, declared: str) -> DataError:
    """A reader's failure on a channel read by another type than its own ContentType says: the
    reader's fix ("set the channel's ContentType to ...") cannot help while ``setting`` (the
    content_type hyperparameter) overrides it, so the message says that, and which to remove."""
    message = exc.message.replace(sniff.READ_AS_CSV, f"text/csv: {setting}")
    return DataError(
        f"{message}; {setting} ('{given}') overrides the channel's ContentType '{declared}': remove it "
        "to read each channel by its own ContentType",
        code=exc.code,
        status=exc.status,
        details=exc.details,
    )


def _check_no_gzip_inside(channel: str, stream: Source) -> None:
    """A gzip object streamed after an uncompressed one, in a text stream: its bytes start a line
    (the object before ends with a newline) and were blamed on the data as binary content."""
    data = stream.read_all()
    at = data.find(b"\n" + GZIP_MAGIC + b"\x08")
    if at != -1:
        raise mixed_compression(channel, stream.name, at + 1, None)


def _check_final_newline(channel: str, stream: Source) -> None:
    """A Pipe text stream whose last object lacks its final newline was likely written by a tool
    that leaves it out of every object: say so, as joined lines can still parse (libsvm)."""
    data = stream.read_all()
    if data and not data.endswith(b"\n"):
        log.warning(
            "%s does not end with a newline, so its last S3 object does not; %s",
            stream.name,
            PIPE_SEAMS.format(channel=channel, likely=""),
        )
