"""evaluate's test data, checked for the mistakes a Processing job makes before training's
readers would blame them in a training channel's terms.

evaluate reads the test files as the model's train channel was read (format, header row,
label position).  When they are laid out otherwise, the cause is the layout and the fix is one
of evaluate's flags (``--test``, ``--content-type``, ``--header``) or the label column, not a
channel's ContentType or "columns differ".
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from byoc.errors import ConfigError, DataError, SchemaError

if TYPE_CHECKING:
    import pandas as pd

    from byoc.artifact import Feature
    from byoc.data import ChannelData, InputNaming
    from byoc.environment import MLPaths
    from byoc.training import TargetSpec

CHANNEL = "test"
SHARDED = "ShardedByS3Key"
PIPE = "Pipe"


def check_processing_inputs(paths: MLPaths, inputs: dict[str, Path]) -> None:
    """Refuse the Processing set-ups evaluate cannot score right, from the job's own configuration.

    ``inputs`` maps evaluate's flag (``--test``) to the path it was given; the job's inputs come
    from /opt/ml/config/processingjobconfig.json, its hosts from resourceconfig.json beside it
    (neither exists outside a Processing job: nothing to check). Refused, for the test data or
    the model: Pipe mode (a stream where evaluate reads files: it would find no file at the
    path, and say only that), and ShardedByS3Key on several instances (each would score only its
    own shard and upload its own evaluation.json to the same S3 key, the last one overwriting
    the others: a report on a fraction of the test data that looks whole).
    """
    from byoc.environment import read_config

    hosts = read_config(paths.processing_config_dir / "resourceconfig.json", {}).get("hosts")
    count = len(hosts) if isinstance(hosts, list) else 1
    for name, local, source in _processing_inputs(paths):
        flags = [flag for flag, path in inputs.items() if _within(path, Path(local))]
        if not flags:
            continue
        what = f"{name} ({local}, {flags[0]})"
        if PIPE in (source.get("S3InputMode"), source.get("InputMode")):
            raise ConfigError(
                f"{what} is in Pipe mode, a stream, but evaluate reads files: give the input "
                "s3_input_mode='File' (the default)",
                code="pipe_input",
            )
        sharding = source.get("S3DataDistributionType") or source.get("DataDistributionType")
        if count > 1 and sharding == SHARDED:
            raise ConfigError(
                f"{what} is {SHARDED} across {count} instances: each would score only its own "
                "shard and upload its own evaluation.json to the same S3 key, the last overwriting "
                "the others. evaluate scores the whole test set on one instance: run the Processing "
                "job with instance_count=1 (or the input's s3_data_distribution_type='FullyReplicated')",
                code="sharded_evaluation",
            )


def _processing_inputs(paths: MLPaths) -> Iterator[tuple[str, str, dict]]:
    """(``ProcessingInput 'name'``, its local path, its S3Input or DatasetDefinition) of each input
    of the Processing job (none outside one: no processingjobconfig.json)."""
    from byoc.environment import read_config

    config = read_config(paths.processing_config_dir / "processingjobconfig.json", {})
    for entry in config.get("ProcessingInputs") or []:
        if not isinstance(entry, dict):
            continue
        source = entry.get("S3Input") or entry.get("DatasetDefinition")
        if isinstance(source, dict) and isinstance(source.get("LocalPath"), str):
            local = source["LocalPath"]
            yield f"ProcessingInput '{entry.get('InputName') or local}'", local, source


def naming(paths: MLPaths, flag: str, path: Path) -> InputNaming:
    """How evaluate's messages name the test data as a whole: the ProcessingInput holding
    ``path``, as the job configured it, else the flag and path it was given (run by hand)."""
    from byoc.data import InputNaming

    media = "evaluate's --content-type"  # evaluate has no hyperparameters
    for name, local, _ in _processing_inputs(paths):
        if _within(path, Path(local)):
            return InputNaming(f"{name} ({local}, {flag})", "the S3 URI given as this input's source", media)
    return InputNaming(f"{flag} {path}", f"the path given with {flag}", media)


def _within(path: Path, directory: Path) -> bool:
    """``path`` is ``directory`` or inside it (paths as given: SageMaker's are absolute)."""
    path, directory = Path(os.path.abspath(path)), Path(os.path.abspath(directory))
    return path == directory or directory in path.parents


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
    """A Parquet file read as text, a text file read as Parquet, or a text file read as another
    text format (JSON Lines, a JSON document or libsvm read as CSV; CSV or libsvm read as JSON
    Lines; CSV or JSON Lines read as libsvm): the fix is evaluate's ``--content-type`` (a
    Processing job has no channel ContentType, which training's readers would point to)."""
    from byoc.data import media
    from byoc.data.parquet_reader import MAGIC
    from byoc.data.readers import READERS
    from byoc.data.sources import directory_sources

    expected = media.parse(content_type)
    if expected.essence not in READERS:  # read_channel says which types there are
        return
    how = f"--content-type {expected.raw}" if given else f"{expected.essence}, the model's training format"
    for source in directory_sources(CHANNEL, directory):
        if source.is_empty():
            continue
        parquet = source.head(len(MAGIC)) == MAGIC
        if parquet != (expected.essence == media.PARQUET):
            if parquet:
                actual = media.PARQUET
            else:
                actual = media.JSONLINES if source.head().lstrip()[:1] == b"{" else media.CSV
            what, fix = ("Parquet" if parquet else "not Parquet"), f"pass evaluate --content-type {actual}"
        elif expected.essence != media.PARQUET and (found := _text_format(source.head(), expected.essence)):
            what, fix = found
        else:
            continue
        raise DataError(
            f"{source.name}: {what}, but evaluate reads the test files as {how}: {fix} (or the "
            f"files' format: one of {', '.join(READERS)})",
            code="wrong_content_type",
        )


def csv_layout(content_type: str | None, flag: bool | None, trained: bool | None, label: int) -> bool | None:
    """Whether evaluate reads CSV test files with a header row: ``--header`` (``flag``), else the
    header parameter of evaluate's ``--content-type`` (``text/csv;header=present``: the user's
    word on the test files, as ``--header true`` is), else as the model's train channel was read
    (``trained``).  The parameters that contradict the flags or the model (a ``--header`` the
    header parameter denies, ``label_size=0`` or ``label_size=1`` for a label column other than
    the first, ``label``) are refused in evaluate's terms: training's readers named a header
    hyperparameter and a channel's ContentType, which a Processing job does not have."""
    from byoc.data import media

    mt = media.parse(content_type)
    if content_type is None or mt.essence != media.CSV:
        return trained if flag is None else flag
    said = f"--content-type '{mt.raw}'"
    if flag is not None and mt.header is not None and flag != mt.header:
        raise ConfigError(
            f"{said} declares header={'present' if mt.header else 'absent'}, but --header "
            f"{str(flag).lower()} says the test files {'start' if flag else 'do not start'} with a header "
            "row; pass one of the two, or make them agree",
            code="bad_argument",
        )
    if mt.label_size == 0:
        raise ConfigError(
            f"{said} says the test files hold no label column, but evaluate scores the predictions "
            f"against the true labels: remove ';label_size=0' and put the labels in column {label} of "
            "every test file, as in training",
            code="no_label",
        )
    if mt.label_size == 1 and label != 0:
        raise ConfigError(
            f"{said} puts the label in the first column (column 0), but the model reads it from column "
            f"{label}, as in training: remove ';label_size=1' (or move the labels to column {label})",
            code="bad_argument",
        )
    for value in (flag, mt.header, trained):
        if value is not None:
            return value
    return None


def _text_format(head: bytes, expected: str) -> tuple[str, str] | None:
    """(what the file is, evaluate's fix) for a text file evidently in another text format than
    ``expected``: one that training's sniffing (:mod:`byoc.data.sniff`) finds to be JSON Lines, a
    JSON document or libsvm, not CSV; or, read as JSON Lines or libsvm, lines of comma-separated
    values (CSV) or the other of the two, which their readers would blame line 1 for (``not valid
    JSON``, ``label '{"age":' is not a number``) without saying the format is the cause."""
    from byoc.data import media, sniff
    from byoc.data.sources import SNIFF_BYTES
    from byoc.wide_text import UTF8_BOM_TEXT

    lines = head.decode("utf-8", errors="replace").splitlines()
    if len(head) >= SNIFF_BYTES:
        lines = lines[:-1]  # cut short by the sniffed head
    lines = [line for line in lines[:20] if line.strip()]
    found = sniff.text(lines)
    code = found.code if found is not None else None
    if code == "json_as_csv":
        if expected != media.CSV:  # the JSON Lines reader names a record written over several lines
            return None
        return (
            "one JSON document, not JSON Lines",
            "write one JSON object per line (pandas: df.to_json(path, orient='records', lines=True)) "
            f"and pass evaluate --content-type {media.JSONLINES}",
        )
    actual = {"jsonlines_as_csv": media.JSONLINES, "libsvm_as_csv": media.LIBSVM}.get(code or "")
    first = lines[0].lstrip(UTF8_BOM_TEXT).strip() if lines else ""
    if (
        actual is None
        and expected != media.CSV
        and "," in first
        and not first.startswith(("{", "["))
        and not any(_LIBSVM_PAIR.fullmatch(part) for part in first.split()[1:])
    ):
        actual = media.CSV
    if actual is None or actual == expected:
        return None
    what = {media.CSV: "CSV", media.JSONLINES: "JSON Lines", media.LIBSVM: "libsvm"}[actual]
    return what, f"pass evaluate --content-type {actual}"


_LIBSVM_PAIR = re.compile(r"qid:\d+|\d+:\S+")  # an <index>:<value> of a libsvm line


def check_label_column(
    channel: ChannelData,
    spec: TargetSpec,
    model_features: Sequence[Feature],
    header_flag: bool | None,
    classes: Sequence[object] = (),
) -> None:
    """Test data without the label column (the layout batch transform takes), without a feature
    column where the label column is in place, with a classifier's labels in another column than
    training's, or CSV without the header row the model was trained with: say so, rather than
    that columns differ or that a feature cell is wrong."""
    from byoc.data import media

    features = [f.name for f in model_features]
    files = channel.files_shown
    columns = [str(c) for c in channel.frame.columns]
    if channel.content_type == media.LIBSVM or (spec.name is not None and spec.name in columns):
        return
    if spec.name is None:
        if len(columns) == len(features) and _label_in_place(channel, spec.index, classes, model_features):
            raise SchemaError(
                f"{files}: {len(columns)} columns, one fewer than the model was trained on (the label "
                f"in column {spec.index} and {len(features)} features): column {spec.index} holds "
                "the labels, so a feature column is missing; write every feature column the model "
                "was trained on, in training's order, in every test file",
                code="missing_columns",
            )
        if len(columns) == len(features):
            raise SchemaError(
                f"{files}: {len(columns)} columns, one fewer than the model was trained on (the label "
                f"in column {spec.index} and {len(features)} features): the label column seems "
                "missing, as in batch transform input; evaluate scores the predictions against the "
                f"true labels: put them in column {spec.index} of every test file",
                code="no_label",
            )
        from byoc.training import named_positions

        if named_positions(channel, spec) is None:  # else the label is the column not named f<i>
            _check_label_position(channel, spec.index, classes)
        return
    lacking = [f.name for f in model_features if f.name not in columns and not f.optional]
    if not lacking:
        unknown = [c for c in columns if c not in features]
        renamed = (
            f", or, if their column '{unknown[0]}' (which the model does not know) holds the labels, "
            f"rename it '{spec.name}'"
            if len(unknown) == 1
            else ""
        )
        raise SchemaError(
            f"{files}: no column '{spec.name}' (the label); evaluate scores the predictions "
            f"against the true labels: add the '{spec.name}' column to every test file{renamed}",
            code="no_label",
        )
    if channel.content_type == media.CSV and (
        refused := header_row_missing(files, columns, spec, features, header_flag)
    ):
        raise refused
    raise SchemaError(
        f"{files}: no column '{spec.name}' (the label), nor {len(lacking)} of the model's "
        f"{len(features)} feature columns ({', '.join(lacking[:10])}{', ...' if len(lacking) > 10 else ''}); "
        f"evaluate scores the model's predictions against the true labels: the test files need the "
        f"'{spec.name}' column and the feature columns the model was trained on (model.json's features)",
        code="no_label",
    )


def header_row_missing(
    files: str, columns: Sequence[object], spec: TargetSpec, features: Sequence[str], header_flag: bool | None
) -> SchemaError | None:
    """The failure for CSV test ``files`` read with a header row that reads ``columns``, naming
    neither the label ``spec`` nor any of the model's ``features``: they lack the header row the
    model was trained with (their first data row was taken for it); None when a column is named."""
    from byoc.data import csv_header

    named = [spec.name] if spec.name is not None else []
    said = csv_header.data_read_as_header(files, columns, [*named, *features], "the model's")
    if said is None:
        return None
    unflag = " and leave out --header false" if header_flag is False else ""
    return SchemaError(
        f"{said} The model was trained on CSV with a header row: add it to the test files{unflag}",
        code="no_header",
    )


def _check_label_position(channel: ChannelData, index: int, classes: Sequence[object]) -> None:
    """Headerless test data whose column ``index`` (training's label column) holds none of the
    classifier's classes while exactly one other column holds nothing else: the labels were
    written elsewhere (last, as pandas' ``to_csv`` leaves them), and the first feature cell out
    of place would otherwise be blamed. Numeric classes match by value (``1.0`` is class 1, as
    label encoding reads it); boolean ones, with their many spellings, are not checked."""
    frame = channel.frame
    if not _checkable(classes) or not -frame.shape[1] <= index < frame.shape[1]:
        return
    index %= frame.shape[1]
    found, total = _labels_in(frame, index, classes)
    if found or not total:
        return
    holding = [c for c in range(frame.shape[1]) if c != index and _holds_only_classes(channel, c, classes)]
    if len(holding) != 1:
        return
    first = frame.iloc[:, index].dropna().astype(str).iloc[0]
    shown = ", ".join(map(repr, list(classes)[:6])) + (", ..." if len(classes) > 6 else "")
    raise SchemaError(
        f"{channel.files_shown}: column {index}, where the model reads the label (as in training), "
        f"holds none of its classes ({shown}; it starts with {first!r}), but column {holding[0]} "
        f"holds nothing else: the labels seem to be in column {holding[0]}; move them to column "
        f"{index} of every test file",
        code="label_elsewhere",
    )


def _checkable(classes: Sequence[object]) -> bool:
    """Whether a column's values can be told to be ``classes``: a classifier's, not booleans
    (their many spellings)."""
    return bool(classes) and not any(isinstance(c, bool) for c in classes)


def _labels_in(frame: pd.DataFrame, column: int, classes: Sequence[object]) -> tuple[int, int]:
    """(how many of the values in ``frame``'s ``column`` are one of ``classes``, how many values
    it holds): numeric classes match by value (``1.0`` is class 1, as label encoding reads it)."""
    import pandas as pd

    names = {str(c) for c in classes}
    numbers = {float(c) for c in classes if isinstance(c, (int, float)) and not isinstance(c, bool)}
    values = frame.iloc[:, column].dropna().astype(str).str.strip()
    values = values[values != ""]
    match = values.isin(names)
    if numbers:
        match |= pd.to_numeric(values, errors="coerce").isin(numbers)
    return int(match.sum()), len(values)


def _holds_only_classes(channel: ChannelData, index: int, classes: Sequence[object]) -> bool:
    """Headerless test data whose column ``index`` (training's label column) holds values, each
    one of the classifier's classes: the label is where training had it."""
    frame = channel.frame
    if not _checkable(classes) or not -frame.shape[1] <= index < frame.shape[1]:
        return False
    found, total = _labels_in(frame, index % frame.shape[1], classes)
    return found == total > 0


def _label_in_place(
    channel: ChannelData, index: int, classes: Sequence[object], features: Sequence[Feature]
) -> bool:
    """Headerless test data one column short whose column ``index`` holds only the classifier's
    classes, which the feature that would be there were the label column left out cannot hold
    (text in a numeric column, values outside its categories): a feature column is missing, not
    the label. Undecided (False) when that feature could hold them (0/1 classes and a 0/1 feature)."""
    from byoc import values
    from byoc.preprocessing import NUMERIC

    if not _holds_only_classes(channel, index, classes):
        return False
    position = index % channel.frame.shape[1]
    if position >= len(features):
        return True
    cells = set(channel.frame.iloc[:, position].dropna().astype(str).str.strip()) - {""}
    feature = features[position]
    if feature.kind == NUMERIC:
        return any(values.number_text(cell) is None for cell in cells)
    return not cells <= {str(c) for c in feature.categories}
