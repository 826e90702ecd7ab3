"""byoc.absent_keys: which JSON Lines keys a record may leave out, and which look misspelt."""

from __future__ import annotations

import numpy as np
import pandas as pd

from byoc import absent_keys
from byoc.data.media import CSV, JSONLINES


def _frame(present: int, rows: int = 60) -> pd.DataFrame:
    sparse = np.full(rows, np.nan)
    sparse[:present] = 1.0
    return pd.DataFrame({"age": np.arange(rows, dtype=float), "agee": sparse})


def test_a_key_on_a_handful_of_many_records_is_named_with_its_records():
    [warning] = absent_keys.rare_key_warnings(
        _frame(1), JSONLINES, lambda row: f"row {row + 1}", records=True
    )
    assert warning.startswith("key 'agee' holds a value in only 1 of 60 JSON Lines records (row 1)")
    assert "(did you mean 'age'?)" in warning


def test_a_sparse_field_on_more_records_and_other_formats_are_not_warned_of():
    warnings = absent_keys.rare_key_warnings
    assert warnings(_frame(10), JSONLINES, str, records=True) == []  # 1 in 6: data, not a typo
    assert warnings(_frame(1, rows=10), JSONLINES, str, records=True) == []  # too few records to tell
    assert warnings(_frame(1), JSONLINES, str, records=False) == []  # arrays: no keys
    assert warnings(_frame(1), CSV, str, records=True) == []


def test_only_json_lines_columns_missing_somewhere_are_optional():
    assert absent_keys.optional_columns(_frame(59), JSONLINES, records=True) == {"agee"}
    assert absent_keys.optional_columns(_frame(59), JSONLINES, records=False) == frozenset()  # arrays
    assert absent_keys.optional_columns(_frame(59), CSV, records=True) == frozenset()
    assert absent_keys.channel_may_lack({"agee"}, CSV) == frozenset()
