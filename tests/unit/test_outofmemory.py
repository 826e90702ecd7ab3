"""byoc.outofmemory: the memory figure, the hyperparameters offered, and the job shell's verdict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from byoc import job, memory_limit, outofmemory
from byoc.errors import ResourceError
from support import CONTAINER, clean_environ, run_job_raising


def test_memory_limit_names_where_the_figure_comes_from(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16384000 kB\n")
    v2, v1 = tmp_path / "memory.max", tmp_path / "limit_in_bytes"
    v2.write_text("2147483648\n")
    assert memory_limit.memory_limit(cgroup_v2=v2, cgroup_v1=v1, meminfo=meminfo) == memory_limit.MemoryLimit(
        2 << 30, "cgroup v2 limit"
    )
    v2.write_text("max\n")
    assert memory_limit.memory_limit(cgroup_v2=v2, cgroup_v1=v1, meminfo=meminfo).source == "MemTotal"
    v1.write_text("1073741824\n")
    assert memory_limit.memory_limit(cgroup_v2=v2, cgroup_v1=v1, meminfo=meminfo).source == "cgroup v1 limit"


def test_training_reads_the_memory_limit_without_the_serving_package() -> None:
    """The memory figure is the container's, not serving's: training's out-of-memory messages
    imported byoc.serving (Flask's app, codecs, schema) for it."""
    code = (
        "import sys; import byoc.outofmemory, byoc.job; "
        "print(sorted(m for m in sys.modules if m.startswith('byoc.serving')))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=clean_environ(PYTHONPATH=str(CONTAINER)),
    )
    assert ran.stdout.strip() == "[]", ran.stdout


def test_size_hyperparameters_are_the_chosen_algorithms_own() -> None:
    knn = outofmemory.size_hyperparameters({"algorithm": "knn", "n_neighbors": 7})
    assert knn == ["n_neighbors=7 (fewer neighbours per prediction)"]
    assert outofmemory.size_hyperparameters({"algorithm": "linear"}) == []
    ensemble = outofmemory.size_hyperparameters(
        {"algorithm": "ensemble", "ensemble_members": ("linear", "knn"), "n_neighbors": 5}
    )
    assert [text.split("=")[0] for text in ensemble] == ["n_neighbors"]


def test_memory_error_outside_the_fit_names_the_phase(tmp_path: Path) -> None:
    error = outofmemory.as_user_error(MemoryError(), "reading channel 'train'")
    assert isinstance(error, ResourceError) and error.code == "out_of_memory"
    assert error.message.startswith("Out of memory while reading channel 'train': this container has ")
    assert outofmemory.as_user_error(ValueError("x"), "reading channel 'train'") is None


def test_killed_child_says_oom_with_the_memory_figure() -> None:
    text = outofmemory.killed("the user script")
    assert text.startswith("the user script was killed by the kernel (SIGKILL: out of memory?)")
    assert "GiB of memory (" in text


def test_the_shell_exits_1_for_memory_error_while_reading(tmp_path: Path) -> None:
    code, failure = run_job_raising(tmp_path, MemoryError(), "reading channel 'train'")
    assert code == job.EXIT_USER_ERROR
    assert failure.startswith("Out of memory while reading channel 'train': this container has ")


def test_pyarrow_running_out_of_memory_is_not_a_corrupt_parquet_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from byoc.data import parquet_reader
    from byoc.data.sources import Source

    path = tmp_path / "a.parquet"
    pq.write_table(pa.table({"y": [1, 0], "x": [0.5, 1.5]}), path)

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise pa.ArrowMemoryError("malloc of size 1073741824 failed")

    monkeypatch.setattr(parquet_reader.pq, "read_table", out_of_memory)
    with pytest.raises(MemoryError, match="malloc of size"):
        parquet_reader._read_one(Source(name="train/a.parquet", path=path))
