"""What training and evaluate hold in memory: the channels as read are not kept beside the fit or
the predictions, and a channel's read hands back the memory its Arrow tables used."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from byoc import data, evaluation, fit, training
from byoc.environment import MLPaths, TrainingEnvironment
from byoc.job import Progress
from support import CONTAINER, REPO, clean_environ, csv_bytes, make_ml_root


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "label": rng.choice(["yes", "no"], n),
            **{f"x{i}": rng.normal(size=n).round(4) for i in range(8)},
            "color": rng.choice(["red", "green", "blue"], n),
        }
    )


def test_the_channels_frames_as_read_are_released_before_the_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each channel's frame as read (its numbers a second time beside the encoded ones, its text and
    labels as written) was held through the fit, beside everything the fit allocates: 106-121 MB more
    at the peak of a 1.2M-row channel, with what Arrow kept (see the CHANGELOG).  Once encoded,
    nothing refers to it; and evaluate's test data as read is not held through the predictions."""
    channels = {
        "train": {"a.csv": csv_bytes(_frame(300), target="label", header=True)},
        "validation": {"v.csv": csv_bytes(_frame(100, seed=1), target="label", header=True)},
    }
    root = make_ml_root(
        tmp_path, channels=channels, hyperparameters={"algorithm": "linear", "target": "label"}
    )
    read: dict[str, weakref.ref[pd.DataFrame]] = {}
    real_read = data.read_channel

    def reading(*args: Any, **kwargs: Any) -> data.ChannelData:
        channel = real_read(*args, **kwargs)
        read[args[1]] = weakref.ref(channel.frame)
        return channel

    held_at_fit: list[str] = []

    def step(inputs: fit.FitInput) -> fit.FitOutput:
        held_at_fit.extend(name for name, frame in read.items() if frame() is not None)
        return fit.builtin(inputs)

    monkeypatch.setattr(data, "read_channel", reading)
    metadata = training.train(TrainingEnvironment.from_files(MLPaths(root), environ={}), Progress(), step)
    assert sorted(read) == ["train", "validation"]
    assert held_at_fit == []

    real_predicted = evaluation._predicted
    held_at_predictions: list[bool] = []

    def predicted(method: Any, X: Any, where: str) -> Any:
        held_at_predictions.append(read["test"]() is not None)
        return real_predicted(method, X, where)

    monkeypatch.setattr(evaluation, "_predicted", predicted)
    report, summary = evaluation.score(
        root / "model", root / "input" / "data" / "validation", scratch=tmp_path / "scratch"
    )
    assert summary["rows"] == 100 and "binary_classification_metrics" in report
    assert held_at_predictions == [False, False]  # predict_proba, predict
    # what named the channels' files and rows is kept
    assert metadata["training"]["channels"]["validation"] == {
        "rows": 100,
        "files": ["validation/v.csv"],
        "content_type": "text/csv",
        "header": True,
    }


def test_without_rows_keeps_the_columns_and_their_kinds_and_no_row() -> None:
    frame = pd.DataFrame({"a": [1.5, 2.5], "b": pd.Series(["x", "y"], dtype="str"), "c": [1, 2]})
    channel = data.ChannelData(
        frame=frame, has_header=True, label_size=None, files=("train/a.csv",), file_rows=(2,)
    )
    empty = channel.without_rows()
    assert list(empty.frame.columns) == ["a", "b", "c"]
    assert list(empty.frame.dtypes) == list(frame.dtypes)
    assert len(empty.frame) == 0
    assert empty.locate(1) == "train/a.csv, row 2"
    assert frame.shape == (2, 3)  # the channel it came from is untouched


READ_AND_MEASURE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from byoc.data import read_channel
    from byoc.environment import MLPaths, TrainingEnvironment

    def resident():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096

    warm, big = (TrainingEnvironment.from_files(MLPaths(Path(p)), environ={}) for p in sys.argv[1:3])
    read_channel(warm, "train")  # the readers' modules and Arrow's kernels loaded first
    before = resident()
    channel = read_channel(big, "train")
    print(resident() - before, int(channel.frame.memory_usage(deep=True).sum()))
    """
)


def test_reading_a_channel_hands_back_the_memory_its_arrow_tables_used(tmp_path: Path) -> None:
    """Arrow's allocator (mimalloc) kept the pages of the reader's freed tables (the CSV's text,
    its numbers' text joined for one cast) after the read, beside the frame and everything training
    allocates next: a 25 MB CSV of 400,000 rows grew the process by 3.2 to 5.7 times its 32 MB frame
    (how much mimalloc had purged by itself varied), 2.3 times once they are handed back (244 MB less
    for a 107 MB CSV).  Measured in a process of its own."""
    warm = make_ml_root(
        tmp_path / "warm", channels={"train": {"a.csv": csv_bytes(_frame(2000), target="label", header=True)}}
    )
    big = make_ml_root(
        tmp_path / "big",
        channels={"train": {"a.csv": csv_bytes(_frame(400_000), target="label", header=True)}},
    )
    ran = subprocess.run(
        [sys.executable, "-c", READ_AND_MEASURE, str(warm), str(big)],
        capture_output=True,
        text=True,
        check=True,
        cwd=str(REPO),
        env=clean_environ(PYTHONPATH=str(CONTAINER)),
    )
    grown, frame_bytes = map(int, ran.stdout.split())
    assert grown < 3 * frame_bytes, (grown >> 20, frame_bytes >> 20)
