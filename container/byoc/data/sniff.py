"""What a file that was to be read as CSV really holds, when it is plainly something else.

A channel without ContentType is read as text/csv (the SDK's ``TrainingInput`` leaves it out by
default), so JSON Lines, libsvm, Parquet, archives and other encodings land in the CSV reader.
Read as CSV they either trained a nonsense model (JSON objects split at their commas) or failed
with a message blaming the data ("holds only the target column").  These checks name the format
and the fix instead.  Each answer is a :class:`Foreign`: what the file is, and what to do.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from byoc import values
from byoc.data.parquet_reader import MAGIC as PARQUET_MAGIC
from byoc.data.sources import RECORDIO_HEADER, RECORDIO_MAGIC, SAVE_AS_UTF8
from byoc.wide_text import UTF8_BOM_TEXT, wide_encoding

SET_JSONLINES = (
    "set the channel's ContentType to application/jsonlines (TrainingInput(..., "
    "content_type='application/jsonlines'), or the content_type hyperparameter)"
)
SET_LIBSVM = (
    "set the channel's ContentType to text/libsvm (TrainingInput(..., content_type='text/libsvm'), "
    "or the content_type hyperparameter)"
)
ONLY_GZIP = "byoc decompresses gzip only: upload the files uncompressed or gzip-compressed"


@dataclass(frozen=True)
class Foreign:
    """A file in another format than CSV: ``what`` it is, the ``fix``, and the error ``code``."""

    what: str
    fix: str
    code: str

    def message(self, name: str) -> str:
        """Why the file was read as CSV is not known here: a ContentType of text/csv said so too
        (``byoc.data.read_channel`` names the content_type hyperparameter when it chose it)."""
        return f"{name}: read as CSV ({READ_AS_CSV}), but this is {self.what}; {self.fix}"


READ_AS_CSV = "text/csv: the channel's ContentType, or the default without one"


# (magic bytes, offset) -> what the file is; checked on the decompressed head (gzip is read)
_MAGIC: tuple[tuple[bytes, int, Foreign], ...] = (
    (
        PARQUET_MAGIC,
        0,
        Foreign(
            "Parquet",
            "set the channel's ContentType to application/x-parquet (or the content_type hyperparameter)",
            "not_text",
        ),
    ),
    (
        b"PK\x03\x04",
        0,
        Foreign(
            "a ZIP archive, which byoc does not unpack",
            "upload the CSV files themselves (unzipped; gzip-compressing each file is fine)",
            "archive",
        ),
    ),
    (
        b"PK\x05\x06",
        0,
        Foreign("an empty ZIP archive", "upload the CSV files themselves, unzipped", "archive"),
    ),
    (
        b"ustar",
        257,
        Foreign(
            "a tar archive (a .tar.gz is gunzipped, but tar is not unpacked)",
            "upload the CSV files themselves under the channel's prefix (gzip-compressing each file is fine)",
            "archive",
        ),
    ),
    (
        b"BZh",
        0,
        Foreign(
            "bzip2-compressed data", ONLY_GZIP + " (Spark: option('compression', 'gzip'))", "compression"
        ),
    ),
    (b"\xfd7zXZ\x00", 0, Foreign("xz-compressed data", ONLY_GZIP, "compression")),
    (b"\x28\xb5\x2f\xfd", 0, Foreign("zstd-compressed data", ONLY_GZIP, "compression")),
)
_BZIP2_BLOCK = b"1AY&SY"  # bzip2's block magic after "BZh" and the level digit: not text's


RECORDIO_PROTOBUF = Foreign(
    "RecordIO-protobuf (RecordIO records of protobuf messages: the built-in algorithms' "
    "application/x-recordio-protobuf)",
    "byoc reads no protobuf: write the data as CSV or Parquet instead (the arrays given to "
    "write_numpy_to_dense_tensor: np.savetxt(path, np.column_stack([labels, features]), delimiter=','))",
    "recordio_protobuf",
)
RECORDIO_WRAPPED = Foreign(
    "data wrapped in RecordIO records (magic 0xced7230a) while the channel's RecordWrapperType is None",
    "set the channel's RecordWrapperType to RecordIO (TrainingInput(..., record_wrapping='RecordIO')) to "
    "have each record read as a file, or upload the objects unwrapped",
    "recordio_as_csv",
)


def _recordio(head: bytes) -> Foreign | None:
    """A file starting with a RecordIO record: protobuf inside (the built-in algorithms' format),
    or text someone wrapped, which a RecordWrapperType of RecordIO unwraps."""
    if head[:4] != RECORDIO_MAGIC or len(head) < RECORDIO_HEADER:
        return None
    length = int.from_bytes(head[4:RECORDIO_HEADER], "little") & ((1 << 29) - 1)
    payload = head[RECORDIO_HEADER : RECORDIO_HEADER + length]
    try:
        wrapped_text = b"\x00" not in payload and bool(payload.decode("utf-8"))
    except UnicodeDecodeError:
        wrapped_text = False
    return RECORDIO_WRAPPED if wrapped_text else RECORDIO_PROTOBUF


def binary(head: bytes) -> Foreign | None:
    """The format of a file's first (decompressed) bytes, by magic number or byte-order mark."""
    if (recordio := _recordio(head)) is not None:
        return recordio
    for magic, offset, foreign in _MAGIC:
        if head[offset : offset + len(magic)] != magic:
            continue
        if magic == b"BZh" and head[4:10] != _BZIP2_BLOCK:
            continue
        return foreign
    encoding = wide_encoding(head)  # the rule serving names request bodies' encodings by too
    return Foreign(encoding, SAVE_AS_UTF8, "not_utf8") if encoding is not None else None


_LIBSVM_PAIR = re.compile(r"qid:\d+|\d+:\S+")
# A SageMaker manifest file (S3DataType ManifestFile): [{"prefix": "s3://bucket/path/"}, "key", ...]
_MANIFEST = re.compile(r'\[\s*\{\s*"prefix"\s*:\s*"s3://')
MANIFEST = Foreign(
    'a SageMaker manifest file ([{"prefix": "s3://..."}, "key", ...]), which lists the data files '
    "rather than holding them",
    "give its S3 URI as the channel's manifest, so that SageMaker downloads the files it lists "
    "(S3DataType ManifestFile: TrainingInput(s3_data='s3://.../train.manifest', "
    "s3_data_type='ManifestFile')), or give the S3 prefix of the data files themselves",
    "manifest_as_data",
)


def text(lines: Sequence[str]) -> Foreign | None:
    """The format of a file's first non-blank lines, when they are not CSV: JSON Lines, a JSON
    document, libsvm, or numbers separated by spaces (numpy's savetxt)."""
    if not lines:
        return None
    first = lines[0].lstrip(UTF8_BOM_TEXT).strip()
    if all(_json_object(line) for line in lines):
        return Foreign("JSON Lines (every line is a JSON object)", SET_JSONLINES, "jsonlines_as_csv")
    if _MANIFEST.match("\n".join(lines).lstrip(UTF8_BOM_TEXT).lstrip()):
        return MANIFEST
    if first in ("[", "{") or first.startswith(("[{", "[[", '{"')):
        return Foreign(
            "one JSON document (an array or object spanning the file), not JSON Lines",
            "write one JSON object per line (pandas: df.to_json(path, orient='records', lines=True)) and "
            + SET_JSONLINES,
            "json_as_csv",
        )
    if any("," in line for line in lines):
        return None
    if all(_libsvm(line) for line in lines) and any(":" in line for line in lines):
        return Foreign("libsvm ('<label> <index>:<value> ...' on every line)", SET_LIBSVM, "libsvm_as_csv")
    if _space_separated(lines):
        return Foreign(
            "numbers separated by spaces, not commas",
            "save the file with ',' as the delimiter (numpy: np.savetxt(path, array, delimiter=','); "
            "pandas: df.to_csv(path, index=False))",
            "wrong_delimiter",
        )
    return None


def _json_object(line: str) -> bool:
    line = line.lstrip(UTF8_BOM_TEXT).strip()
    if not (line.startswith("{") and line.endswith("}")):
        return False
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _libsvm(line: str) -> bool:
    label, *pairs = line.split()
    return values.number_text(label) is not None and all(_LIBSVM_PAIR.fullmatch(p) for p in pairs)


def _space_separated(lines: Sequence[str]) -> bool:
    """Every row (a header row aside) splits at whitespace into the same number (two or more)
    of numbers."""
    rows = [line.split() for line in lines]
    widths = {len(row) for row in rows}
    if len(widths) != 1 or widths.pop() < 2:
        return False
    body = rows[1:] if len(rows) > 1 else rows
    return all(values.number_text(cell) is not None for row in body for cell in row)
