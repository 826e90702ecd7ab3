"""The benchmarks' in-process baselines run with the allocator settings a server's worker runs with:
both take them from one definition (byoc.serving.memory.WORKER_ALLOCATOR), so a share of the
in-process handler measures the server, not two allocators."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks import batch_cpu, harness, serving
from byoc.serving import memory, server
from byoc.serving.memory import WORKER_ALLOCATOR

VARIABLE = next(iter(WORKER_ALLOCATOR.environment))


@pytest.fixture()
def applied(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int | None]]:
    """The glibc thresholds set in this process, recorded instead of set."""
    calls: list[tuple[int, int | None]] = []
    monkeypatch.setattr(memory, "use_fixed_mmap_threshold", lambda t, trim=None: calls.append((t, trim)))
    return calls


def test_an_operators_own_allocator_variable_wins():
    environ = {VARIABLE: "5"}
    assert not WORKER_ALLOCATOR.set_environment(environ) and environ == {VARIABLE: "5"}
    environ = {}
    assert WORKER_ALLOCATOR.set_environment(environ) and environ == dict(WORKER_ALLOCATOR.environment)


def test_a_worker_takes_the_shared_settings(applied, monkeypatch: pytest.MonkeyPatch):
    import threadpoolctl

    monkeypatch.setattr(threadpoolctl, "threadpool_limits", lambda limits: None)
    server._post_fork(SimpleNamespace(log=None), None)
    assert applied == [(WORKER_ALLOCATOR.mmap_threshold, WORKER_ALLOCATOR.trim_threshold)]


def test_a_benchmark_takes_the_same_settings(applied, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(VARIABLE, WORKER_ALLOCATOR.environment[VARIABLE])
    harness.take_worker_allocator(execv=lambda *args: pytest.fail("started again"))
    assert applied == [(WORKER_ALLOCATOR.mmap_threshold, WORKER_ALLOCATOR.trim_threshold)]


def test_a_benchmark_that_loaded_arrow_without_the_variables_starts_again_with_them(
    applied, monkeypatch: pytest.MonkeyPatch
):
    """Arrow's allocator reads its variables when pyarrow loads: setting them later does nothing."""
    import pyarrow  # noqa: F401  (loaded, as the benchmarks load it before their main runs)

    monkeypatch.delenv(VARIABLE, raising=False)
    started: list[tuple[str, Any]] = []
    harness.take_worker_allocator(execv=lambda path, argv: started.append((path, argv)))
    assert started == [(sys.executable, sys.orig_argv)]
    assert os.environ[VARIABLE] == WORKER_ALLOCATOR.environment[VARIABLE]


class _Taken(Exception):
    pass


@pytest.mark.parametrize("script", [serving, batch_cpu])
def test_both_benchmarks_take_the_worker_allocator_before_measuring(script, monkeypatch: pytest.MonkeyPatch):
    def take() -> None:
        raise _Taken

    monkeypatch.setattr(script, "take_worker_allocator", take)
    monkeypatch.setattr(sys, "argv", [script.__file__, "--models", "decision_tree"])
    with pytest.raises(_Taken):
        script.main()
