"""byoc.data.partitions: Hive key=value directories read back as columns."""

from __future__ import annotations

from pathlib import PurePath

import pyarrow as pa
import pytest

from byoc.data.partitions import hive_partitions, with_partitions
from byoc.data.sources import Source
from byoc.errors import DataError


def test_keys_and_values_are_unescaped_and_hive_null_is_missing():
    rel = PurePath("train/2024/city=S%C3%A3o%20Paulo/kind=__HIVE_DEFAULT_PARTITION__/a=b%3Dc/part-0.csv")
    assert hive_partitions(rel) == (("city", "São Paulo"), ("kind", None), ("a", "b=c"))


def test_a_file_name_with_an_equals_sign_is_not_a_partition():
    assert hive_partitions(PurePath("train/x=1.csv")) == ()


def test_a_key_twice_in_one_path_is_refused():
    with pytest.raises(DataError, match=r"^train/a=1/a=2/f.csv: the directory name 'a=' appears twice"):
        hive_partitions(PurePath("train/a=1/a=2/f.csv"))


def test_values_are_appended_as_text_named_or_by_position():
    source = Source(name="train/k=1/f", partitions=(("k", "1"), ("z", None)))
    table = pa.table({"0": ["a", "b"]})
    named = with_partitions(table, source, named=True)
    assert named.column_names == ["0", "k", "z"]
    assert named.column("k").to_pylist() == ["1", "1"] and named.column("z").to_pylist() == [None, None]
    assert with_partitions(table, source, named=False).column_names == ["0", "1", "2"]
