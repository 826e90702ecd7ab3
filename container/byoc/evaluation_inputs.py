"""evaluate's test data, checked for the mistakes a Processing job makes before training's
readers would blame them in a training channel's terms.

evaluate reads the test files as the model's train channel was read (format, header row,
label position).  When they are laid out otherwise, the cause is the layout and the fix is one
of evaluate's flags (``--test``, ``--content-type``, ``--header``) or the label column, not a
channel's ContentType or "columns differ".
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from byoc.errors import DataError, SchemaError

if TYPE_CHECKING:
    from byoc.data import ChannelData
    from byoc.training import TargetSpec

CHANNEL = "test"


def directory_of(path: Path, scratch: Path) -> Path:
    """The directory to read: ``path``, or for one file a scratch directory holding a link to it
    (a ProcessingInput delivers files into a directory; run by hand, one passes a file)."""
    if path.is_dir():
        return path
    if path.is_file():
        holder = scratch / "test-file"
        holder.mkdir()
        (holder / path.name).symlink_to(path.resolve())
        return holder
    raise DataError(
        f"--test {path}: no such file or directory; pass the directory the test files are in (the "
        "ProcessingInput's destination) or one test file",
        code="missing_channel",
    )


def check_format(directory: Path, content_type: str | None, given: bool) -> None:
    """A Parquet file read as text, or a text file read as Parquet: the fix is evaluate's
    ``--content-type`` (a Processing job has no channel ContentType)."""
    from byoc.data import media
    from byoc.data.parquet_reader import MAGIC
    from byoc.data.readers import READERS
    from byoc.data.sources import directory_sources

    expected = media.parse(content_type)
    if expected.essence not in READERS:  # read_channel says which types there are
        return
    for source in directory_sources(CHANNEL, directory):
        if source.is_empty():
            continue
        parquet = source.head(len(MAGIC)) == MAGIC
        if parquet == (expected.essence == media.PARQUET):
            continue
        if parquet:
            actual = media.PARQUET
        else:
            actual = media.JSONLINES if source.head().lstrip()[:1] == b"{" else media.CSV
        how = (
            f"--content-type {expected.raw}" if given else f"{expected.essence}, the model's training format"
        )
        raise DataError(
            f"{source.name}: {'Parquet' if parquet else 'not Parquet'}, but evaluate reads the test "
            f"files as {how}: pass evaluate --content-type {actual} (or the files' format: one of "
            f"{', '.join(READERS)})",
            code="wrong_content_type",
        )


def check_label_column(
    channel: ChannelData, spec: TargetSpec, features: Sequence[str], header_flag: bool | None
) -> None:
    """Test data without the label column (the layout batch transform takes), or CSV without
    the header row the model was trained with: say so, rather than that columns differ or
    that the first feature is the label."""
    from byoc.data import media

    files = channel.files_shown
    columns = [str(c) for c in channel.frame.columns]
    if channel.content_type == media.LIBSVM or (spec.name is not None and spec.name in columns):
        return
    if spec.name is None:
        if len(columns) == len(features):
            raise SchemaError(
                f"{files}: {len(columns)} columns, one fewer than the model was trained on (the label "
                f"in column {spec.index} and {len(features)} features): the label column seems "
                "missing, as in batch transform input; evaluate scores the predictions against the "
                f"true labels: put them in column {spec.index} of every test file",
                code="no_label",
            )
        return
    if set(features) <= set(columns):
        raise SchemaError(
            f"{files}: no column '{spec.name}' (the label); evaluate scores the predictions "
            f"against the true labels: add the '{spec.name}' column to every test file",
            code="no_label",
        )
    if channel.content_type == media.CSV and not set(columns) & {spec.name, *features}:
        trained = ", ".join([spec.name, *features][:6]) + (", ..." if len(features) > 5 else "")
        unflag = " and leave out --header false" if header_flag is False else ""
        raise SchemaError(
            f"{files}: none of the model's columns ({trained}) is in the header row, which reads "
            f"{', '.join(columns[:6])}{', ...' if len(columns) > 6 else ''}: that looks like data. "
            f"The model was trained on CSV with a header row: add it to the test files{unflag}",
            code="no_header",
        )
