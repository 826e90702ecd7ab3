"""The failure catalogue: bad inputs a SageMaker user really sends, each run through the real
`container/train`.  Every case must exit 1 (a user error, not a crash), leave output/failure
whose FIRST line names the culprit, and leave model/ empty (no partial model, no staging)."""

from __future__ import annotations

import codecs
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from byoc.data.sources import SAVE_AS_UTF8
from support import (
    csv_bytes,
    gzip_bytes,
    jsonlines_bytes,
    make_ml_root,
    mixed_frame,
    model_dir_entries,
    parquet_bytes,
    read_failure,
    recordio_record,
    run_train,
)

FRAME = mixed_frame(60)
GOOD = csv_bytes(FRAME, target="deposit")
GOOD_HEADER = csv_bytes(FRAME, target="deposit", header=True)
HEAD10 = b"".join(GOOD.splitlines(keepends=True)[:10])
VALIDATION_MAYBE = b"no,40,1000,admin,cellular\n,41,1000,admin,cellular\nyes,42,1000,admin,cellular\nmaybe,43,1,admin,cellular\n"
VALIDATION_FORTY = b"no,40,1000,admin,cellular\n,41,1000,admin,cellular\nyes,forty,1000,admin,cellular\n"
REGRESSION = b"".join(f"{i * 0.5 + 0.25},{i % 7}\n".encode() for i in range(40))


# how every text reader (CSV, JSON Lines, libsvm) ends its message for a byte that is not UTF-8
UTF8_FIX = re.escape(SAVE_AS_UTF8)
JSONL30 = len(b"".join(b'{"y": %d, "x": %d}\n' % (i % 2, i) for i in range(30)))  # _jsonl_train's rows


def _jsonl_train(last_line: bytes) -> dict:
    """A JSON Lines train channel of 30 good rows (target y: 0/1, feature x) and ``last_line``,
    so a bad value sits at row 31, far from the file's start."""
    rows = b"".join(b'{"y": %d, "x": %d}\n' % (i % 2, i) for i in range(30))
    return dict(
        channels={"train": {"a.jsonl": rows + last_line}},
        content_types={"train": "application/jsonlines"},
        hyperparameters={"target": "y"},
    )


def _repeated_column_parquet() -> bytes:
    """FRAME with its balance column named 'age' too (pandas refuses to write that; pyarrow does)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(FRAME, preserve_index=False)
    buffer = io.BytesIO()
    pq.write_table(table.rename_columns(["deposit", "age", "age", "job", "contact"]), buffer)
    return buffer.getvalue()


REPEATED_COLUMN_PARQUET = _repeated_column_parquet()


def _bytes_parquet(column: str) -> bytes:
    """FRAME as Parquet with ``column`` written as bytes (``binary``), as a writer leaves
    undecoded text: no feature or label takes bytes, and training crashed on them."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(FRAME, preserve_index=False)
    index = table.column_names.index(column)
    encoded = pa.array([None if v is None else str(v).encode() for v in table.column(column).to_pylist()])
    buf = io.BytesIO()
    pq.write_table(table.set_column(index, column, encoded), buf)
    return buf.getvalue()


BYTES_JOB, BYTES_DEPOSIT = _bytes_parquet("job"), _bytes_parquet("deposit")
PARQUET = {"train": "application/x-parquet", "validation": "application/x-parquet"}


def _archives() -> dict[str, bytes]:
    """GOOD_HEADER as a ZIP, a .tar.gz, bzip2 and xz (Spark's codecs), and UTF-16 (Excel's
    'Unicode Text', PowerShell): each was 'binary content ... set ContentType to Parquet'."""
    import bz2
    import io
    import lzma
    import tarfile
    import zipfile

    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.csv", GOOD_HEADER)
    tarred = io.BytesIO()
    with tarfile.open(fileobj=tarred, mode="w:gz") as archive:
        info = tarfile.TarInfo("a.csv")
        info.size = len(GOOD_HEADER)
        archive.addfile(info, io.BytesIO(GOOD_HEADER))
    return {
        "zip": zipped.getvalue(),
        "tar.gz": tarred.getvalue(),
        "bz2": bz2.compress(GOOD_HEADER),
        "xz": lzma.compress(GOOD_HEADER),
        "utf16": GOOD_HEADER.decode().encode("utf-16"),
    }


ARCHIVES = _archives()
# what the built-in algorithms train on (sagemaker.amazon.common.write_numpy_to_dense_tensor): RecordIO
# records of protobuf Record messages, a float32 tensor of features and a label each
RECORDIO_PROTOBUF = b"".join(
    recordio_record(
        b"\n\x14\n\x06values\x12\n\x12\x08" + struct.pack("<2f", i, i / 2) + b"\x12\x0b\n\x05label"
    )
    for i in range(40)
)
NO_CONTENT_TYPE = (
    "read as CSV \\(text/csv: the channel's ContentType, or the default without one\\), but this is"
)

# name: (make_ml_root keyword arguments, regexes the failure file's first line must match)
CASES = {
    "missing_train_channel": (
        dict(channels={"validation": {"v.csv": GOOD}}),
        [r"no 'train' channel", r"validation"],
    ),
    "empty_channel": (dict(channels={"train": {"_SUCCESS": b""}}), [r"channel 'train': no data files"]),
    "empty_file": (dict(channels={"train": {"data.csv": b""}}), [r"every file is empty", r"train/data\.csv"]),
    "corrupt_gzip": (
        dict(channels={"train": {"data.csv.gz": gzip_bytes(GOOD * 20)[:80]}}),
        [r"train/data\.csv\.gz", r"gzip"],
    ),
    "readme_beside_the_data": (  # was "add that header line ('This folder holds ...') to train/a.csv"
        dict(channels={"train": {"README.txt": "This folder holds the bank data.\n", "a.csv": GOOD}}),
        [
            r"^train/a\.csv: line 1 has 5 field\(s\) \('.*'\), but line 1 of train/README\.txt has 1 "
            r"\('This folder holds the bank data\.'\)",
            r"remove any file that is not data",
        ],
    ),
    "ragged_csv_rows": (
        dict(channels={"train": {"a.csv": GOOD + b"yes,1.0,2.0\n" + GOOD}}),
        [r"train/a\.csv, line 61: 3 fields where 5 are expected"],
    ),
    "target_column_missing": (
        dict(channels={"train": {"a.csv": GOOD_HEADER}}, hyperparameters={"target": "deposits"}),
        [r"'target'='deposits' is not a column", r"did you mean 'deposit'"],
    ),
    "target_index_out_of_range": (
        dict(channels={"train": {"a.csv": GOOD}}, hyperparameters={"target": 9}),
        [r"'target'=9 is out of range", r"5 columns"],
    ),
    "target_number_that_also_names_another_column": (  # index 0 ('x') was taken silently
        dict(
            channels={"train": {"a.csv": "x,0,z\n" + "".join(f"a{i % 3},{i % 2},{i}\n" for i in range(40))}},
            hyperparameters={"target": 0, "header": True},
            encoding="str",  # the generic Estimator spells target=0 and target="0" both 0
        ),
        [
            r"^hyperparameter 'target'=0 is ambiguous: channel 'train' \(train/a\.csv\) has a column named "
            r"'0' \(column 1\), and column index 0 is 'x'; for the column named '0', give the name as a "
            r"JSON string: .* for column index 0, give its name: target=x"
        ],
    ),
    "target_name_without_header": (
        dict(channels={"train": {"a.csv": GOOD}}, hyperparameters={"target": "deposit"}),
        [r"'target'='deposit' names a column", r"no header row"],
    ),
    "target_all_missing": (
        dict(channels={"train": {"a.csv": "\n".join(f",{i},x" for i in range(20)) + "\n"}}),
        [r"target column 'column 0' has no values"],
    ),
    "single_class": (
        dict(channels={"train": {"a.csv": "".join(f"yes,{i},a\n" for i in range(20))}}),
        [r"target column 'column 0' has a single value", r"'yes'"],
    ),
    "validation_columns_differ": (
        dict(
            channels={
                "train": {"a.csv": GOOD_HEADER},
                "validation": {
                    "v.csv": csv_bytes(
                        FRAME.rename(columns={"job": "occupation"}), target="deposit", header=True
                    )
                },
            },
            hyperparameters={"target": "deposit"},
        ),
        [r"channel 'validation'", r"job", r"occupation"],
    ),
    "validation_fewer_columns": (
        dict(
            channels={
                "train": {"a.csv": GOOD},
                "validation": {"v.csv": csv_bytes(FRAME.drop(columns=["job"]), target="deposit")},
            }
        ),
        [r"channel 'validation'", r"3 feature columns where train has 4"],
    ),
    "validation_unseen_label": (  # counted in its own file, before the missing label is dropped
        dict(channels={"train": {"a.csv": GOOD}, "validation": {"v1.csv": GOOD, "v2.csv": VALIDATION_MAYBE}}),
        [r"^validation/v2\.csv, row 4, target column 0: holds 'maybe', which is not among the classes"],
    ),
    # target unset, the label named but not first (pandas/Spark keep its place): the first column
    # was fitted from a feature 'label', a model that looked like any other
    "label_named_last_without_target_csv": (
        dict(
            channels={
                "train": {
                    "a.csv": csv_bytes(
                        FRAME.rename(columns={"deposit": "target"})[["age", "job", "target"]],
                        target=None,
                        header=True,
                    )
                }
            }
        ),
        [
            r"^hyperparameter 'target' is not set, so the label is the first column \('age'\), but channel 'train' "
            r"\(train/a\.csv\) has a column named 'target'"
        ],
    ),
    "label_named_last_without_target_parquet": (
        dict(
            channels={
                "train": {"a.parquet": parquet_bytes(FRAME[["age", "job"]].assign(Label=FRAME["deposit"]))}
            },
            content_types={"train": "application/x-parquet"},
        ),
        [
            r"has a column named 'Label' \(column 2\), which would be a feature; set target=Label to learn it, "
            r"or target=0 to keep 'age' as the label$"
        ],
    ),
    "validation_unseen_number_label": (  # a numpy scalar's repr, np.float64(2.0), was the label shown
        dict(
            channels={
                "train": {"a.csv": b"".join(b"%d,%d\n" % (i % 2, i) for i in range(40))},
                "validation": {"v.csv": b"0,1\n1,2\n2,3\n"},
            }
        ),
        [
            r"^validation/v\.csv, row 3, target column 0: holds 2, which is not among the classes seen in training \(0, 1\)"
        ],
    ),
    # a validation channel without labels (its label cells empty) was refused as "target column 0
    # has no values ...; set the target hyperparameter to the label column": no channel named,
    # and a fix that sent the user to a hyperparameter the train channel shows to be right
    "validation_without_labels": (
        dict(
            channels={
                "train": {"a.csv": b"".join(b"%d,%d\n" % (i % 2, i) for i in range(40))},
                "validation": {"v.csv": b",1\n,2\n,3\n"},
            }
        ),
        [
            r"^target column 'column 0' has no values in any of its 3 rows; channel 'validation' "
            r"\(validation/v\.csv\) is scored against its labels: write them into that column"
        ],
    ),
    "validation_text_in_numeric_column": (
        dict(channels={"train": {"a.csv": GOOD}, "validation": {"v1.csv": GOOD, "v2.csv": VALIDATION_FORTY}}),
        [
            r"^validation/v2\.csv, row 3, column 1: holds 'forty', but the column is numeric in the "
            r"training data; write a number there, or leave the cell empty for a missing value$"
        ],
    ),
    "validation_header_row_train_without": (
        dict(channels={"train": {"a.csv": GOOD}, "validation": {"v.csv": GOOD_HEADER}}),
        [
            r"^validation/v\.csv, row 1, column 1: holds 'age', .* \(is row 1 a header row\? .*header hyperparameter"
        ],
    ),
    "validation_text_regression_target": (
        dict(
            channels={"train": {"a.csv": REGRESSION}, "validation": {"v.csv": b"1.5,2\n,3\nabc,4\n"}},
            hyperparameters={"problem_type": "regression"},
        ),
        [r"^validation/v\.csv, row 3, target column 0: holds 'abc', not a number; regression needs numeric"],
    ),
    "unknown_hyperparameter": (
        dict(channels={"train": {"a.csv": GOOD}}, hyperparameters={"max_dept": 3}),
        [r"max_dept", r"did you mean 'max_depth'"],
    ),
    "wrong_type_hyperparameter": (
        dict(channels={"train": {"a.csv": GOOD}}, hyperparameters={"max_depth": "deep"}),
        [r"max_depth", r"deep"],
    ),
    "out_of_range_hyperparameter": (
        dict(
            channels={"train": {"a.csv": GOOD}},
            hyperparameters={"algorithm": "random_forest", "n_estimators": 0},
        ),
        [r"n_estimators", r"\b0\b"],
    ),
    "unknown_algorithm": (
        dict(channels={"train": {"a.csv": GOOD}}, hyperparameters={"algorithm": "xgboost"}),
        [r"algorithm", r"xgboost"],
    ),
    "label_size_zero": (
        dict(channels={"train": {"a.csv": GOOD}}, content_types={"train": "text/csv;label_size=0"}),
        [r"label_size=0", r"no label"],
    ),
    "label_size_two": (  # the second label column would become a feature: label leakage
        dict(channels={"train": {"a.csv": GOOD}}, content_types={"train": "text/csv;label_size=2"}),
        [
            r"^ContentType of channel 'train' is 'text/csv;label_size=2'",
            r"must be 0 .* or 1",
            r"use label_size=1",
        ],
    ),
    "label_size_one_with_another_target": (
        dict(
            channels={"train": {"a.csv": GOOD}},
            content_types={"train": "text/csv;label_size=1"},
            hyperparameters={"target": 2},
        ),
        [
            r"^hyperparameter 'target' \(column 2\) contradicts the ContentType ';label_size=1' of channel 'train'"
        ],
    ),
    "train_and_training_channels": (  # one alias read, the other silently dropped
        dict(channels={"train": {"a.csv": GOOD}, "training": {"b.csv": GOOD}}),
        [r"^channels 'train' and 'training' are both given", r"keep one"],
    ),
    "binary_garbage": (
        dict(channels={"train": {"blob": bytes(range(256)) * 8}}),
        [r"train/blob: binary content where text/csv was expected"],
    ),
    "parquet_different_schema": (
        dict(
            channels={
                "train": {
                    "a.parquet": parquet_bytes(FRAME),
                    "b.parquet": parquet_bytes(FRAME.drop(columns=["age"])),
                }
            },
            content_types={"train": "application/x-parquet"},
            hyperparameters={"target": "deposit"},
        ),
        [r"^train/b\.parquet: columns differ from train/a\.parquet", r"age"],
    ),
    **{
        f"parquet_bytes_{column}_in_{channel}": (  # was exit 2, an uncaught values.BadValue
            dict(
                channels={
                    "train": {"a.parquet": body if channel == "train" else parquet_bytes(FRAME)},
                    **({"validation": {"v.parquet": body}} if channel == "validation" else {}),
                },
                content_types=PARQUET,
                hyperparameters={"target": "deposit"},
            ),
            [
                rf"^{channel}/{'a' if channel == 'train' else 'v'}\.parquet: column '{column}' holds binary "
                rf"data \(binary; row 1: b'{first}'\)",
                r"write the column as text",
            ],
        )
        for column, body, first in (("job", BYTES_JOB, "retired"), ("deposit", BYTES_DEPOSIT, "yes"))
        for channel in ("train", "validation")
    },
    "parquet_declared_but_csv": (
        dict(channels={"train": {"a.parquet": GOOD}}, content_types={"train": "application/x-parquet"}),
        [r"train/a\.parquet: not a Parquet file"],
    ),
    "bad_jsonlines_line": (
        dict(
            channels={"train": {"a.jsonl": b'{"y": "a", "x": 1}\n{"y": "b", x: 2}\n'}},
            content_types={"train": "application/jsonlines"},
        ),
        [r"^train/a\.jsonl, line 2: not valid JSON"],
    ),
    "jsonlines_repeated_key": (  # json.loads kept the last value and trained on it
        dict(
            channels={"train": {"a.jsonl": b'{"y": "a", "x": 1}\n{"y": "b", "x": 2, "x": 3}\n'}},
            content_types={"train": "application/jsonlines"},
        ),
        [r"^train/a\.jsonl, line 2 repeats the key 'x'", r"remove the repeated key"],
    ),
    "jsonlines_null_first_line": (  # pyarrow crashed the job: SIGSEGV, no failure file
        dict(
            channels={"train": {"a.jsonl": b"null\n" + jsonlines_bytes(FRAME)}},
            content_types={"train": "application/jsonlines"},
            hyperparameters={"target": "deposit"},
        ),
        [r"^train/a\.jsonl, line 1 holds null, not a record", r"write one record on that line, or delete"],
    ),
    "jsonlines_bom_then_null_first_line": (  # the scan missed the null line: SIGSEGV, no failure file
        dict(
            channels={"train": {"a.jsonl": codecs.BOM_UTF8 + b"null\n" + jsonlines_bytes(FRAME)}},
            content_types={"train": "application/jsonlines"},
            hyperparameters={"target": "deposit"},
        ),
        [r"^train/a\.jsonl, line 1 holds null, not a record"],
    ),
    "jsonlines_two_records_on_a_line": (  # trained on as two rows, unless the file went line by line
        _jsonl_train(b'{"y": 1, "x": 3} {"y": 0, "x": 4}\n'),
        [r"^train/a\.jsonl, line 31 holds more than one JSON value", r"one whole record"],
    ),
    "jsonlines_null_line": (  # was trained on, the line dropped as a row whose target is missing
        _jsonl_train(b"  null\r\n" + b'{"y": 1, "x": 3}\n'),
        [r"^train/a\.jsonl, line 31 holds null, not a record"],
    ),
    "jsonlines_null_line_gzip": (
        dict(
            channels={"train": {"a.jsonl.gz": gzip_bytes(jsonlines_bytes(FRAME) + b"null\n")}},
            content_types={"train": "application/jsonlines"},
            hyperparameters={"target": "deposit"},
        ),
        [r"^train/a\.jsonl\.gz, line 61 holds null, not a record"],
    ),
    "jsonlines_row_among_records": (
        _jsonl_train(b"[1, 2]\n"),
        [r"^train/a\.jsonl, line 31 holds a row \(an array\) where the lines before it hold records"],
    ),
    "unknown_content_type": (
        dict(channels={"train": {"a.rec": GOOD}}, content_types={"train": "application/x-recordio-protobuf"}),
        [r"application/x-recordio-protobuf", r"text/csv"],
    ),
    "recordio_as_content_type": (  # RecordIO wraps records (RecordWrapperType), it is no content type
        dict(channels={"train": {"a.csv": GOOD}}, content_types={"train": "application/x-recordio"}),
        [r"'application/x-recordio', which byoc cannot read", r"RecordWrapperType", r"record_wrapping"],
    ),
    "content_type_hyperparameter_over_the_channels": (  # was "set the channel's ContentType to
        # application/x-parquet", which it was, and "the channel's ContentType, or the default"
        dict(
            channels={"train": {"a.parquet": parquet_bytes(FRAME)}},
            content_types={"train": "application/x-parquet"},
            hyperparameters={"content_type": "text/csv", "target": "deposit"},
        ),
        [
            r"^train/a\.parquet: read as CSV \(text/csv: the content_type hyperparameter\), but this is Parquet",
            r"the content_type hyperparameter \('text/csv'\) overrides the channel's ContentType "
            r"'application/x-parquet': remove it",
        ],
    ),
    "multiple_hosts": (
        dict(channels={"train": {"a.csv": GOOD}}, hosts=("algo-1", "algo-2")),
        [r"2 hosts", r"instance_count=1", r"algorithm=auto"],
    ),
    "multiple_hosts_svm": (
        dict(
            channels={"train": {"a.csv": GOOD}},
            hosts=("algo-1", "algo-2"),
            hyperparameters={"algorithm": "svm"},
        ),
        [r"2 hosts", r"instance_count=1", r"algorithm=auto"],
    ),
    "regression_on_text_target": (
        dict(channels={"train": {"a.csv": GOOD}}, hyperparameters={"problem_type": "regression"}),
        [r"problem_type=regression needs numbers"],
    ),
    "integer_hyperparameter_beyond_int64": (
        dict(channels={"train": {"a.csv": GOOD}}, hyperparameters={"max_depth": 10**30}),
        [r"hyperparameter 'max_depth': got 1000000000000000000000000000000", r"2147483647"],
    ),
    "infinite_feature": (
        dict(
            channels={
                "train": {
                    "a.parquet": parquet_bytes(FRAME),
                    "b.parquet": parquet_bytes(
                        FRAME.assign(age=FRAME["age"].where(FRAME.index != 7, np.inf))
                    ),
                }
            },
            content_types={"train": "application/x-parquet"},
            hyperparameters={"target": "deposit"},
        ),
        [r"^train/b\.parquet, row 8, column 'age': inf \(infinity", r"leave the cell empty"],
    ),
    "negative_infinite_feature_in_validation": (
        dict(
            channels={
                "train": {"a.parquet": parquet_bytes(FRAME)},
                "validation": {"v.parquet": parquet_bytes(FRAME.assign(balance=-np.inf))},
            },
            content_types={"train": "application/x-parquet", "validation": "application/x-parquet"},
            hyperparameters={"target": "deposit"},
        ),
        [r"^validation/v\.parquet, row 1, column 'balance': -inf"],
    ),
    "parquet_boolean_in_a_numeric_validation_column": (  # was "holds 'true'": it is no text
        dict(
            channels={
                "train": {"a.parquet": parquet_bytes(FRAME)},
                "validation": {"v.parquet": parquet_bytes(FRAME.assign(balance=True))},
            },
            content_types={"train": "application/x-parquet", "validation": "application/x-parquet"},
            hyperparameters={"target": "deposit"},
        ),
        [
            r"^validation/v\.parquet, row 1, column 'balance': holds the boolean true, but the column is numeric"
        ],
    ),
    "negative_feature_beyond_float64": (
        dict(channels={"train": {"a.csv": GOOD, "b.csv": HEAD10 + b"yes,40,-1e999,admin,cellular\n"}}),
        [r"^train/b\.csv, row \d+, column 2: -inf \(infinity, or a number beyond float64"],
    ),
    "feature_beyond_float64": (
        dict(channels={"train": {"a.csv": GOOD + b"yes,1e400,3,admin,cellular\n"}}),
        [r"^train/a\.csv, row 61, column 1: inf \(infinity, or a number beyond float64"],
    ),
    "feature_beyond_float32": (
        _jsonl_train(b'{"y": 1, "x": 1e300}\n'),
        [r"^train/a\.jsonl, row 31, column 'x': 1e\+300 is not a usable feature value", r"3\.4e\+38"],
    ),
    "regression_target_near_the_float_limit": (
        dict(
            channels={"train": {"a.csv": b"".join(b"%d,%d\n" % (i, i) for i in range(30)) + b"1.7e308,3\n"}},
            hyperparameters={"problem_type": "regression", "algorithm": "linear"},
        ),
        [r"^train/a\.csv, row 31, target column 0: 1\.7e\+308 is too large for regression", r"rescale"],
    ),
    "regression_target_infinite": (  # was "holds infinite values; remove those rows": which file, row?
        dict(channels={"train": {"a.csv": REGRESSION, "b.csv": b"1.5,2\n-1e999,3\n" + REGRESSION}}),
        [r"^train/b\.csv, row 2, target column 'column 0' holds -inf \(infinity", r"leave the cell empty"],
    ),
    "class_target_infinite": (  # integer classes and one inf, in a JSON Lines file
        _jsonl_train(b'{"y": 1e400, "x": 3}\n'),
        [r"^train/a\.jsonl, row 31, target column 'y' holds inf \(infinity"],
    ),
    "libsvm_index_beyond_int64": (
        dict(
            channels={"train": {"a.svm": b"1 1:2 3:1\n0 1:1 99999999999999999999999:3\n"}},
            content_types={"train": "text/libsvm"},
        ),
        [r"^train/a\.svm, line 2: feature index 99999999999999999999999 is beyond 9223372036854775807"],
    ),
    "semicolon_delimited_csv": (
        dict(channels={"train": {"a.csv": FRAME.to_csv(index=False, sep=";").encode()}}),
        [r"^train/a\.csv: the fields are separated by ';', not commas", r"delimiter"],
    ),
    "semicolon_delimited_csv_with_decimal_commas": (
        dict(channels={"train": {"a.csv": b"".join(b"yes;%d,5;x\n" % i for i in range(30))}}),
        [r"^train/a\.csv: the fields are separated by ';'"],
    ),
    "zip_archive": (
        dict(channels={"train": {"a.zip": ARCHIVES["zip"]}}),
        [rf"^train/a\.zip: {NO_CONTENT_TYPE} a ZIP archive", r"unzipped"],
    ),
    "tar_gz_archive": (
        dict(channels={"train": {"a.tar.gz": ARCHIVES["tar.gz"]}}),
        [rf"^train/a\.tar\.gz: {NO_CONTENT_TYPE} a tar archive", r"upload the CSV files themselves"],
    ),
    "bzip2_part_file": (
        dict(channels={"train": {"part-00000.csv.bz2": ARCHIVES["bz2"]}}),
        [r"^train/part-00000\.csv\.bz2: .* bzip2-compressed data; byoc decompresses gzip only"],
    ),
    "xz_part_file": (
        dict(channels={"train": {"part-00000.csv.xz": ARCHIVES["xz"]}}),
        [r"^train/part-00000\.csv\.xz: .* xz-compressed data; byoc decompresses gzip only"],
    ),
    "recordio_protobuf": (  # was "binary content ... NUL byte at offset 5 ... set ContentType to Parquet"
        dict(channels={"train": {"train.pbr": RECORDIO_PROTOBUF}}),
        [
            rf"^train/train\.pbr: {NO_CONTENT_TYPE} RecordIO-protobuf",
            r"built-in algorithms",
            r"CSV or Parquet",
        ],
    ),
    "recordio_wrapped_csv_without_its_wrapper_type": (
        dict(
            channels={"train": {"a.rec": b"".join(recordio_record(line) for line in GOOD.splitlines(True))}}
        ),
        [rf"^train/a\.rec: {NO_CONTENT_TYPE} .*wrapped in RecordIO", r"RecordWrapperType to RecordIO"],
    ),
    "utf16_csv": (
        dict(channels={"train": {"a.csv": ARCHIVES["utf16"]}}),
        [rf"^train/a\.csv: {NO_CONTENT_TYPE} UTF-16 text; byoc reads UTF-8: save the file as UTF-8"],
    ),
    "utf16_declared_csv": (  # was "(text/csv, the default without a ContentType)": it had one
        dict(channels={"train": {"a.csv": ARCHIVES["utf16"]}}, content_types={"train": "text/csv"}),
        [rf"^train/a\.csv: {NO_CONTENT_TYPE} UTF-16 text"],
    ),
    "jsonlines_without_content_type": (  # was trained: classes '{"deposit":"no"', exit 0
        dict(channels={"train": {"a.jsonl": jsonlines_bytes(FRAME)}}, hyperparameters={"target": "deposit"}),
        [rf"^train/a\.jsonl: {NO_CONTENT_TYPE} JSON Lines", r"ContentType to application/jsonlines"],
    ),
    "json_array_without_content_type": (
        dict(channels={"train": {"a.json": FRAME.to_json(orient="records")}}),
        [rf"^train/a\.json: {NO_CONTENT_TYPE} one JSON document", r"lines=True", r"application/jsonlines"],
    ),
    "manifest_under_the_prefix": (  # was "one JSON document ... set ContentType to application/jsonlines"
        dict(channels={"train": {"train.manifest": '[{"prefix": "s3://bucket/data/"}, "a.csv", "b.csv"]'}}),
        [
            rf"^train/train\.manifest: {NO_CONTENT_TYPE} a SageMaker manifest file",
            r"s3_data_type='ManifestFile'",
        ],
    ),
    "json_array_declared_jsonlines": (  # was "field '0' holds a nested dict"
        dict(
            channels={"train": {"a.json": FRAME.to_json(orient="records")}},
            content_types={"train": "application/jsonlines"},
        ),
        [r"^train/a\.json, line 1: a JSON array of objects, one JSON document", r"lines=True"],
    ),
    "libsvm_without_content_type": (  # was "holds only the target column"
        dict(channels={"train": {"a.svm": "".join(f"{i % 2} 1:{i} 3:{i % 7}\n" for i in range(30))}}),
        [rf"^train/a\.svm: {NO_CONTENT_TYPE} libsvm", r"ContentType to text/libsvm"],
    ),
    "space_separated_numbers": (  # np.savetxt's default delimiter; was "holds only the target column"
        dict(channels={"train": {"a.csv": "".join(f"{i % 2:.6e} {i:.6e} {i / 7:.6e}\n" for i in range(30))}}),
        [rf"^train/a\.csv: {NO_CONTENT_TYPE} numbers separated by spaces", r"delimiter=','"],
    ),
    "pandas_index_column": (  # was the default target: a regression on row numbers, exit 0
        dict(channels={"train": {"a.csv": FRAME.sample(frac=1, random_state=0).to_csv()}}),
        [r"^train/a\.csv: column 0 has no name in the header row", r"index=False"],
    ),
    "pandas_index_column_with_a_named_target": (  # was a feature
        dict(channels={"train": {"a.csv": FRAME.to_csv()}}, hyperparameters={"target": "deposit"}),
        [r"^train/a\.csv: column 0 has no name .* it is the row index", r"index=False"],
    ),
    "r_write_csv_row_names": (
        dict(
            channels={
                "train": {
                    "a.csv": '"","deposit","age"\n'
                    + "".join(f'"{i + 1}","{"ab"[i % 2]}",{i % 9}\n' for i in range(30))
                }
            }
        ),
        [r"^train/a\.csv: column 0 has no name", r"row\.names = FALSE"],
    ),
    "every_file_blank": (
        dict(channels={"train": {"a.csv": "\n", "b.csv": "\r\n  \n"}}),
        [r"^channel 'train': every file is empty or holds only blank lines \(train/a\.csv, train/b\.csv\)"],
    ),
    "twenty_megabyte_cell": (
        dict(channels={"train": {"a.csv": GOOD + b"yes,40,3," + b"a" * (20 << 20) + b",cellular\n"}}),
        [r"^train/a\.csv, row 61, column 3: a cell of 20\.0 MB", r"unclosed quote"],
    ),
    "invalid_utf8_after_the_sniffed_sample": (
        dict(channels={"train": {"a.csv": GOOD * 400 + b"yes,40,3,adm\xffin,cellular\n" + GOOD}}),
        [
            rf"^train/a\.csv: not UTF-8 text \(byte 0xff at offset {len(GOOD) * 400 + 12}, line 24001\); {UTF8_FIX}$"
        ],
    ),
    "invalid_utf8_in_a_numeric_column_after_the_sample": (
        dict(channels={"train": {"a.csv": GOOD * 400 + b"yes,4\xff0,3,admin,cellular\n"}}),
        [rf"^train/a\.csv: not UTF-8 text \(byte 0xff at offset {len(GOOD) * 400 + 5}, line 24001\)"],
    ),
    "invalid_utf8_in_the_sniffed_sample": (  # was "(invalid byte 0xe9 at offset 71); save the CSV as UTF-8"
        dict(channels={"train": {"a.csv": HEAD10 + b"yes,40,3,caf\xe9,cellular\n" + GOOD}}),
        [rf"^train/a\.csv: not UTF-8 text \(byte 0xe9 at offset {len(HEAD10) + 12}, line 11\); {UTF8_FIX}$"],
    ),
    "invalid_utf8_in_jsonlines": (  # pyarrow took the byte into a text column: exit 2, "a bug in byoc"
        _jsonl_train(b'{"y": 1, "x": "caf\xe9"}\n'),
        [rf"^train/a\.jsonl: not UTF-8 text \(byte 0xe9 at offset {JSONL30 + 18}, line 31\); {UTF8_FIX}$"],
    ),
    "invalid_utf8_in_gzip_jsonlines": (
        dict(
            channels={
                "train": {"a.jsonl.gz": gzip_bytes(b'{"y": 1, "x": "caf\xe9"}\n' + jsonlines_bytes(FRAME))}
            },
            content_types={"train": "application/jsonlines"},
            hyperparameters={"target": "y"},
        ),
        [rf"^train/a\.jsonl\.gz: not UTF-8 text \(byte 0xe9 at offset 18, line 1\); {UTF8_FIX}$"],
    ),
    "invalid_utf8_in_libsvm": (  # was "line 2: byte 0xe9 at column 5 is not UTF-8: not valid libsvm (...)"
        dict(
            channels={"train": {"a.txt": b"1 1:0.5 2:3\n0 1:\xe92 2:1\n" + b"1 1:0.5 2:3\n" * 10}},
            content_types={"train": "text/libsvm"},
        ),
        [rf"^train/a\.txt: not UTF-8 text \(byte 0xe9 at offset 16, line 2\); {UTF8_FIX}$"],
    ),
    "json_lines_lone_surrogate_escape": (  # was an internal error: pyarrow cannot hold it
        _jsonl_train(b'{"y": 1, "x": "a\\ud83d"}\n'),
        [r"^train/a\.jsonl, line 31: field 'x' holds the escape \\ud83d, half of a UTF-16 surrogate pair"],
    ),
    "numbers_in_one_file_text_in_another": (
        dict(
            channels={"train": {"a.csv": GOOD, "b.csv": csv_bytes(FRAME.assign(age="old"), target="deposit")}}
        ),
        [r"^column '1' holds numbers in train/a\.csv but text in train/b\.csv \(e\.g\. 'old'\)"],
    ),
    "numbers_in_one_jsonlines_file_text_in_another": (
        dict(
            channels={
                "train": {
                    "a.jsonl": jsonlines_bytes(FRAME),
                    "b.jsonl": jsonlines_bytes(FRAME.assign(age="old")),
                }
            },
            content_types={"train": "application/jsonlines"},
            hyperparameters={"target": "deposit"},
        ),
        [r"^column 'age' holds numbers in train/a\.jsonl but text in train/b\.jsonl \(e\.g\. 'old'\)"],
    ),
    "parquet_with_a_repeated_column_name": (  # was "corrupt or truncated: write it again"
        dict(
            channels={"train": {"a.parquet": REPEATED_COLUMN_PARQUET}},
            content_types={"train": "application/x-parquet"},
            hyperparameters={"target": "deposit"},
        ),
        [r"^train/a\.parquet: column name 'age' appears 2 times; rename the copies"],
    ),
    "svm_class_with_fewer_rows_than_calibration_folds": (
        dict(
            channels={"train": {"a.csv": GOOD + b"maybe,41,3,admin,cellular\n" * 3}},
            hyperparameters={"algorithm": "svm"},
        ),
        [r"^hyperparameter 'calibration_folds'=5: .*'maybe': 3 rows.*lower calibration_folds"],
    ),
    "svm_poly_kernel_that_overflows": (  # was an internal error (exit 2)
        dict(
            channels={"train": {"a.csv": GOOD}},
            hyperparameters={"algorithm": "svm", "kernel": "poly", "degree": 10, "gamma": 1e10},
        ),
        [
            r"^hyperparameters kernel=poly, gamma=1e\+10, degree=10, C=1: svm's kernel values .*overflow.*lower gamma"
        ],
    ),
    "ensemble_knn_with_more_neighbours_than_a_cv_fold_has_rows": (  # was an internal error (exit 2)
        dict(
            channels={"train": {"a.csv": GOOD}},
            hyperparameters={"algorithm": "ensemble", "ensemble_members": "knn,linear", "n_neighbors": 45},
        ),
        [
            r"^hyperparameter 'n_neighbors'=45 is more than the 40 training rows of the ensemble's smallest "
            r"cross-validation fold \(cv_folds=3, 60 rows\); lower n_neighbors to at most 40, raise cv_folds"
        ],
    ),
    "poisson_criterion_on_a_negative_target": (  # was an internal error (exit 2)
        dict(
            channels={"train": {"a.csv": REGRESSION.replace(b"0.25,", b"-3.25,", 1)}},
            hyperparameters={"algorithm": "decision_tree", "criterion": "poisson"},
        ),
        [
            r"^hyperparameter 'criterion'=poisson models counts and rates, which are never negative, but the "
            r"target \(column 0\) has 1 negative value\(s\), the smallest -3\.25; use criterion=squared_error"
        ],
    ),
    "regression_early_stopping_that_holds_out_every_row": (  # was an internal error (exit 2)
        dict(
            channels={"train": {"a.csv": REGRESSION}},
            hyperparameters={
                "algorithm": "gradient_boosting",
                "early_stopping": True,
                "validation_fraction": 0.99,
            },
        ),
        [
            r"^hyperparameters validation_fraction=0\.99 and early_stopping=true: gradient_boosting's early "
            r"stopping holds out 40 of the 40 training rows, but it needs a row on both sides; lower "
            r"validation_fraction to at most 0\.975"
        ],
    ),
    "header_in_a_later_file_only": (
        dict(
            channels={
                "train": {
                    "a.csv": "".join(f"{'ab'[i % 2]},{'uvw'[i % 3]},{'pq'[i % 2]}\n" for i in range(40)),
                    "b.csv": "y,c1,c2\n" + "".join(f"{'ab'[i % 2]},{'uvw'[i % 3]},p\n" for i in range(40)),
                }
            }
        ),
        [r"^train/b\.csv: its first line 'y,c1,c2' is a header row, but train/a\.csv starts with data"],
    ),
    "data_in_a_later_file_without_the_header": (
        dict(channels={"train": {"a.csv": GOOD_HEADER, "b.csv": GOOD}}),
        [r"^train/b\.csv: its first line '(yes|no),.*' is data, but train/a\.csv starts with the header"],
    ),
    "line_of_spaces": (
        dict(channels={"train": {"a.csv": HEAD10 + b"   \n" + GOOD}}),
        [r"^train/a\.csv, line 11: 1 fields where 5 are expected", r"only spaces"],
    ),
    "gradient_boosting_hold_out_smaller_than_the_classes": (  # was scikit-learn's ValueError, exit 2
        dict(
            channels={"train": {"a.csv": csv_bytes(mixed_frame(40), target="deposit")}},
            hyperparameters={
                "algorithm": "gradient_boosting",
                "early_stopping": True,
                "validation_fraction": 0.01,
            },
        ),
        [
            r"^hyperparameters validation_fraction=0\.01 and early_stopping=true: .* holds out 1 of the 40 "
            r"training rows, .* each of the 2 classes .*raise validation_fraction to at least 0\.05"
        ],
    ),
    "gradient_boosting_hold_out_of_three_classes_at_the_default_fraction": (
        dict(
            channels={"train": {"a.csv": "".join(f"{'abc'[i % 3]},{i},{i * 7 % 5}\n" for i in range(20))}},
            hyperparameters={"algorithm": "gradient_boosting", "early_stopping": True},
        ),
        [r"^hyperparameters validation_fraction=0\.1 and early_stopping=true: .* 2 of the 20 .* 3 classes"],
    ),
    "svm_epsilon_for_an_inferred_classification": (  # was silently ignored
        dict(channels={"train": {"a.csv": GOOD}}, hyperparameters={"algorithm": "svm", "epsilon": 100}),
        [
            r"^hyperparameter 'epsilon'=100 applies to svm regression only, but the problem is binary_classification"
        ],
    ),
    "svm_calibration_folds_for_an_inferred_regression": (  # was silently ignored
        dict(
            channels={"train": {"a.csv": GOOD}},
            hyperparameters={"algorithm": "svm", "target": 2, "calibration_folds": 3},
        ),
        [
            r"^hyperparameter 'calibration_folds'=3 applies to svm classification only, but the problem is regression"
        ],
    ),
    "linear_C_for_regression": (
        dict(
            channels={"train": {"a.csv": GOOD}},
            hyperparameters={"algorithm": "linear", "problem_type": "regression", "target": 2, "C": 0.0001},
        ),
        [r"^hyperparameter 'C'=0\.0001 applies to linear classification only", r"use 'alpha'"],
    ),
    "only_a_target_column": (
        dict(channels={"train": {"a.csv": "yes\nno\nyes\n"}}),
        [r"holds only the target column"],
    ),
}


def _fails_as_user_error(root, result, *patterns):
    failure = read_failure(root)
    assert failure is not None, result.stdout + result.stderr
    first_line = failure.splitlines()[0]
    assert result.returncode == 1, failure
    for pattern in patterns:
        assert re.search(pattern, first_line), f"{pattern!r} not in {first_line!r}"
    assert model_dir_entries(root) == []
    return first_line


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_fails_with_the_culprit_first(tmp_path, case):
    kwargs, patterns = CASES[case]
    root = make_ml_root(tmp_path, **kwargs)
    result = run_train(root)
    first_line = _fails_as_user_error(root, result, *patterns)
    assert "Traceback" not in read_failure(root)[:1024]
    assert not (root / "output" / "data" / "metrics.json").exists()
    assert first_line in result.stdout  # the log says it too


def test_bad_json_in_hyperparameters_file(tmp_path):
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD}})
    (root / "input/config/hyperparameters.json").write_text('{"max_depth": "3",}')
    result = run_train(root)
    first_line = read_failure(root).splitlines()[0]
    assert result.returncode == 1
    assert "hyperparameters.json: not valid JSON (line 1" in first_line
    assert model_dir_entries(root) == []


@pytest.mark.parametrize(
    "body, patterns",
    [
        (b'["max_depth", 3]', [r"hyperparameters\.json: holds a list, not an object"]),
        (b'"max_depth=3"', [r"holds a string, not an object"]),
        (b"3", [r"holds a number, not an object"]),
        (
            b'{"max_depth": "\xff"}',
            [r"hyperparameters\.json: not UTF-8 text \(byte 0xff at offset 15, line 1\)"],
        ),
        (b'{"max_depth": ' + b"9" * 5000 + b"}", [r"hyperparameters\.json: not valid JSON"]),
    ],
    ids=["array", "string", "number", "not_utf8", "digit_limit"],
)
def test_hyperparameters_file_that_is_not_a_json_object(tmp_path, body, patterns):
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD}})
    (root / "input/config/hyperparameters.json").write_bytes(body)
    result = run_train(root)
    first_line = read_failure(root).splitlines()[0]
    assert result.returncode == 1, first_line
    for pattern in patterns:
        assert re.search(pattern, first_line), f"{pattern!r} not in {first_line!r}"
    assert model_dir_entries(root) == []


def test_unreadable_data_file_is_named(tmp_path):
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD, "sub/b.csv": GOOD}})
    (root / "input/data/train/sub/b.csv").chmod(0)
    result = run_train(root, unprivileged=True)
    _fails_as_user_error(
        root, result, r"^train/sub/b\.csv: cannot be read \(Permission denied\)", "read access"
    )


def test_unlistable_directory_in_a_channel_is_named(tmp_path):
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD, "sub/b.csv": GOOD}})
    (root / "input/data/train/sub").chmod(0)
    try:
        result = run_train(root, unprivileged=True)
    finally:
        (root / "input/data/train/sub").chmod(0o755)
    _fails_as_user_error(root, result, r"directory .*train/sub cannot be listed \(Permission denied\)")


def test_file_name_that_is_not_utf8_is_named(tmp_path):
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD}})
    with open(os.fsencode(root / "input/data/train") + b"/b\xff.csv", "wb") as fh:
        fh.write(GOOD)
    result = run_train(root)
    _fails_as_user_error(root, result, r"file name train/b\\xff\.csv is not UTF-8", "rename it")


def test_read_only_model_directory_is_the_environments_fault(tmp_path):
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD}})
    (root / "model").chmod(0o555)
    try:
        result = run_train(root, unprivileged=True)
    finally:
        (root / "model").chmod(0o755)
    _fails_as_user_error(
        root,
        result,
        r"/model: Permission denied while checking that model/ and output/ can be written",
        "write for model/",
    )
    assert "fitting started" not in result.stdout  # found before the fit, not after it


@pytest.mark.parametrize("directory", ["output", "output/data"])
def test_unwritable_output_directory_fails_before_the_fit(tmp_path, directory):
    """A root-owned /opt/ml under `docker run --user 1000`: output/ was first written after the fit."""
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD}})
    (root / directory).mkdir(exist_ok=True)
    (root / directory).chmod(0o555)
    try:
        result = run_train(root, unprivileged=True)
    finally:
        (root / directory).chmod(0o755)
    assert result.returncode == 1, result.stdout[-2000:]
    assert f"{root / directory}: Permission denied while checking that model/ and output/" in result.stdout
    assert "fitting started" not in result.stdout
    assert model_dir_entries(root) == []


def test_symlink_loop_reads_each_file_once(tmp_path):
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD, "sub/b.csv": GOOD}})
    (root / "input/data/train/loop").symlink_to(".")
    (root / "input/data/train/sub/up").symlink_to("..")
    (root / "input/data/train/again.csv").symlink_to("a.csv")
    result = run_train(root)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "channel train: 120 rows x 5 columns from 2 file(s)" in result.stdout
    assert "train/again.csv is the same file as train/a.csv: read once" in result.stdout


def test_dangling_symlink_is_named_not_skipped(tmp_path):
    """It was skipped without a word: the job trained on less than the channel named."""
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD}})
    (root / "input/data/train/b.csv").symlink_to(tmp_path / "unmounted" / "b.csv")
    result = run_train(root)
    _fails_as_user_error(
        root,
        result,
        r"^train/b\.csv: cannot be read \(No such file or directory; it is a symbolic link to "
        r".*/unmounted/b\.csv\); restore what it points to, or remove the link",
    )


@pytest.mark.parametrize("body", [b'{"current_host": "algo-1", "hosts": 2}', b'{"current_host": 1}', b"[]"])
def test_resourceconfig_that_is_not_the_platforms_shape(tmp_path, body):
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD}})
    (root / "input/config/resourceconfig.json").write_bytes(body)
    result = run_train(root)
    _fails_as_user_error(root, result, r"resourceconfig\.json")


def test_existing_failure_file_is_never_overwritten(tmp_path):
    root = make_ml_root(tmp_path, channels={"validation": {"v.csv": GOOD}})
    (root / "output" / "failure").write_text("the platform's own reason\n")
    result = run_train(root)
    assert result.returncode == 1
    assert read_failure(root) == "the platform's own reason\n"
    assert "not overwriting" in result.stdout


def test_failure_file_keeps_details_after_the_cause(tmp_path):
    root = make_ml_root(tmp_path, channels={"train": {"a.csv.gz": gzip_bytes(GOOD * 20)[:80]}})
    run_train(root)
    lines = read_failure(root).splitlines()
    assert lines[1] == "" and lines[2].startswith("error code: ")
    assert "train/a.csv.gz" in lines[0] and any(line.startswith("caused by: ") for line in lines)


def _patched_failure(tmp_path: Path, patch: str, code: int) -> tuple[Path, list[str]]:
    """Train with ``patch`` run first (see support.run_train_patched); the exit code must be
    ``code`` with no model files left. Returns the root and the failure file's lines."""
    from support import run_train_patched

    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD}})
    result = run_train_patched(root, patch)
    assert result.returncode == code, result.stdout + result.stderr
    assert model_dir_entries(root) == []
    return root, read_failure(root).splitlines()


@pytest.mark.parametrize(
    "patch",
    [
        # gone after the channel was listed, before any file was looked at
        "import byoc.data as d\n"
        "listed = d.directory_sources\n"
        "def gone(channel, directory):\n"
        "    found = listed(channel, directory)\n"
        "    (directory / 'sub' / 'b.csv').unlink()\n"
        "    return found\n"
        "d.directory_sources = gone",
        # gone after the header row was sniffed, as pyarrow opens it
        "import byoc.data.csv_reader as r\n"
        "read_one = r._read_one\n"
        "def gone(source, **kw):\n"
        "    if source.name == 'train/sub/b.csv': source.path.unlink()\n"
        "    return read_one(source, **kw)\n"
        "r._read_one = gone",
    ],
    ids=["after-listing", "before-reading"],
)
def test_a_data_file_that_disappears_while_the_channel_is_read_is_named(tmp_path, patch):
    """A file listed and then deleted (FastFile mode reads S3 as the job runs; a user's clean-up)
    was "Internal error ... FileNotFoundError ... a bug in byoc", exit 2."""
    from support import run_train_patched

    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD, "sub/b.csv": GOOD}})
    result = run_train_patched(root, patch)
    _fails_as_user_error(
        root,
        result,
        r"^train/sub/b\.csv: disappeared while the job read the channel \(listed, then no longer there\); "
        r"keep the channel's files in place until the job ends",
    )


def test_internal_fault_exits_2_with_cause_first_and_traceback_after(tmp_path):
    """A bug of ours (not the user's input) is told apart: exit 2, traceback after the cause."""
    patch = (
        "import byoc.training as t\n"
        "def broken(env, progress):\n"
        "    progress.phase = 'fitting decision_tree'\n"
        "    raise RuntimeError('boom')\n"
        "t.train = broken\n"
    )
    _, lines = _patched_failure(tmp_path, patch, 2)
    assert lines[0].startswith("Internal error while fitting decision_tree: RuntimeError: boom.")
    assert "Traceback (most recent call last):" in lines[2:]


def test_a_full_disk_while_saving_is_the_users_naming_the_model_directory(tmp_path):
    """joblib meets a full disk when its file is flushed, and Python's error then names no file:
    still exit 1 naming the model directory and the fix, with no model files left."""
    patch = (
        "import errno, joblib\n"
        "def full(value, filename, *args, **kwargs):\n"
        "    open(filename, 'wb').write(b'partial')\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "joblib.dump = full\n"
    )
    root, lines = _patched_failure(tmp_path, patch, 1)
    assert lines[0].startswith(f"{root / 'model'}: No space left on device while saving the model;"), lines[0]
    assert "VolumeSizeInGB" in lines[0]


@pytest.mark.parametrize("name", ["metrics.json", "inference_environment.json"])
def test_a_full_disk_writing_output_data_is_the_users_and_leaves_no_model(tmp_path, name):
    """A full disk met when output/data's file is closed (Python's error then names no file) is
    exit 1 naming the file and the fix, not an internal fault; and when the model was to be
    saved too, no model files are left (inference_environment.json was written after the save)."""
    patch = (
        "import errno, pathlib\n"
        "real = pathlib.Path.write_text\n"
        "def full(self, *args, **kwargs):\n"
        f"    if self.name == {name!r}:\n"
        "        open(self, 'w').close()\n"
        "        raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "    return real(self, *args, **kwargs)\n"
        "pathlib.Path.write_text = full\n"
    )
    root, lines = _patched_failure(tmp_path, patch, 1)
    assert lines[0].startswith(f"{root / 'output' / 'data' / name}: No space left on device while writing"), (
        lines[0]
    )
    assert "VolumeSizeInGB" in lines[0]


def test_an_unwritable_inference_environment_file_leaves_no_model(tmp_path):
    """output/data/inference_environment.json left read-only by an earlier run as another user:
    the directory passes the writability check, the file cannot be replaced. The job fails
    (exit 1, naming the file) and, failed, leaves no model for SageMaker to package."""
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD}})
    (root / "output" / "data").mkdir()
    left = root / "output" / "data" / "inference_environment.json"
    left.write_text("{}\n")
    left.chmod(0o444)
    result = run_train(root, unprivileged=True)
    _fails_as_user_error(root, result, rf"^{re.escape(str(left))}: Permission denied while writing")


@pytest.mark.parametrize("directory", ["model", "output/data", "output"])
def test_a_file_where_model_or_output_directory_belongs_is_named(tmp_path, directory):
    """A local ML root holding a file named model (or output/data): mkdir's FileExistsError was
    reported as an internal error of byoc (exit 2). It is the environment's: exit 1, naming it.
    (With output/ itself a file no failure file can be written: the log carries the cause.)"""
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD}})
    path = root / directory
    if path.is_dir():
        shutil.rmtree(path)
    path.write_text("not a directory\n")
    result = run_train(root)
    assert result.returncode == 1, result.stdout[-2000:]
    cause = f"{path}: a file where SageMaker puts the {directory}/ directory"
    assert cause in result.stdout, result.stdout[-2000:]
    if directory != "output":
        assert read_failure(root).startswith(cause)
    assert "fitting started" not in result.stdout


def test_a_channel_redirected_by_sm_channel_to_nothing_names_the_variable(tmp_path):
    """SM_CHANNEL_<NAME> in the environment wins over input/data/<name> (scripts written for the AWS
    toolkit set it): one left pointing at nothing was reported as the channel not passed to the
    job ("pass the channel to the training job"), though it was, and its files were there."""
    root = make_ml_root(tmp_path, channels={"train": {"a.csv": GOOD}})
    result = run_train(root, env={"SM_CHANNEL_TRAIN": str(tmp_path / "elsewhere")})
    _fails_as_user_error(
        root,
        result,
        rf"^channel 'train': directory {re.escape(str(tmp_path / 'elsewhere'))}, from the environment "
        r"variable SM_CHANNEL_TRAIN, does not exist",
        rf"unset SM_CHANNEL_TRAIN to read {re.escape(str(root / 'input' / 'data' / 'train'))}",
    )


def test_a_full_disk_that_names_no_file_is_still_the_users(tmp_path):
    """A full disk met where no writer names its file (algorithm=auto's leaderboard.csv and
    report.html, a temporary file of a library) was an internal fault, exit 2."""
    patch = (
        "import errno, byoc.compiled\n"
        "def full(*args, **kwargs):\n"
        "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "byoc.compiled.build = full\n"
    )
    _, lines = _patched_failure(tmp_path, patch, 1)
    assert lines[0].startswith("No space left on device while compiling the model for serving"), lines[0]
    assert "VolumeSizeInGB" in lines[0]


def _nul_at(frame, at: int):
    frame = frame.copy()
    frame.loc[at, "job"] = "ad\x00min"
    return frame


NUL_FRAME = mixed_frame(3000)


@pytest.mark.parametrize(
    ("name", "body", "content_type"),
    [
        ("a.csv", csv_bytes(_nul_at(NUL_FRAME, 2900), target="deposit", header=True), "text/csv"),
        ("a.jsonl", jsonlines_bytes(_nul_at(FRAME, 40)), "application/jsonlines"),
        ("a.parquet", parquet_bytes(_nul_at(FRAME, 40)), "application/x-parquet"),
    ],
    ids=["csv-past-its-first-bytes", "jsonlines-escape", "parquet"],
)
def test_a_nul_in_a_text_value_fails_the_job_in_every_format(tmp_path, name, body, content_type):
    """A text value holding NUL (corrupt or binary data, which CSV cannot carry) is refused naming
    file, row and column, as the endpoint refuses it in every format: training looked for NUL only
    in a CSV file's first 64 KB, and a NUL further in, JSON Lines' ``"\\u0000"`` or a Parquet value
    holding it was trained as part of a category the endpoint then refused when sent as CSV."""
    assert body.index(b"\\u0000" if name.endswith(".jsonl") else b"\x00") > 64 * 1024 or not name.endswith(
        ".csv"
    )
    root = make_ml_root(
        tmp_path,
        channels={"train": {name: body}},
        hyperparameters={"target": "deposit", "algorithm": "decision_tree"},
        content_types={"train": content_type},
    )
    result = run_train(root)
    row = 2901 if name.endswith(".csv") else 41
    _fails_as_user_error(
        root, result, rf"^train/{re.escape(name)}, row {row}, column 'job': holds a NUL character \(\\x00\)"
    )
