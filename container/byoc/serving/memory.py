"""When freed memory goes back to the system, and how much of it a worker holds.

How much memory the container has is :mod:`byoc.memory_limit` (training's out-of-memory
messages read it too).  Every path is a parameter so tests can point the readers at fake files.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

log = logging.getLogger("byoc.serving")

STATM = Path("/proc/self/statm")


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def _mallopt(option: int, value: int) -> bool:
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(option, value))


def use_fixed_mmap_threshold(threshold: int = 128 * 1024, trim_threshold: int | None = None) -> bool:
    """Have glibc serve every allocation above ``threshold`` with its own mmap, and (when given)
    keep up to ``trim_threshold`` bytes free at the top of its heap instead of shrinking it.

    glibc raises its mmap threshold each time a large block is freed, after which model
    arrays land on the heap and an evicted model's pages stay resident.  A fixed threshold
    keeps large arrays in mappings that are returned to the system when the model is freed.
    Fixing it also fixes the trim threshold at glibc's 128 KiB unless ``trim_threshold`` says
    otherwise: every free at the heap's top then hands pages back, to be faulted in again.
    """
    fixed = _mallopt(M_MMAP_THRESHOLD, threshold)
    if trim_threshold is not None:
        fixed = _mallopt(M_TRIM_THRESHOLD, trim_threshold) and fixed
    return fixed


@dataclass(frozen=True)
class AllocatorSettings:
    """How a process's allocators keep freed memory: glibc's mmap and trim thresholds, and the
    environment Arrow's allocator reads when pyarrow loads.

    One definition for the server's workers and for the benchmarks' in-process baselines, so a
    benchmark comparing the two measures the server, not two allocator settings."""

    mmap_threshold: int
    trim_threshold: int
    environment: Mapping[str, str] = field(default_factory=dict)

    def set_environment(self, environ: MutableMapping[str, str]) -> bool:
        """Put the variables into ``environ`` where it has none of its own (an operator's value
        wins, as ``serve`` lets it); whether anything was added."""
        missing = {name: value for name, value in self.environment.items() if name not in environ}
        environ.update(missing)
        return bool(missing)

    def apply(self) -> bool:
        """Fix glibc's thresholds in this process (:func:`use_fixed_mmap_threshold`)."""
        return use_fixed_mmap_threshold(self.mmap_threshold, self.trim_threshold)


# A worker's allocators.  glibc keeps allocations up to 32 MiB on its heap (the ceiling of its own
# sliding threshold) and up to 64 MiB free at the heap's top, so a batch slice's arrays are reused
# by the next slice and request instead of being mapped and faulted in again each time (with 1 MiB
# and the trim threshold of 128 KiB that fixing it implies, a 10 MB CSV body faulted ~25,000
# pages); how much freed memory a worker keeps is bounded by byoc.serving.worker.RETAINED_LIMIT.
# Not lower than 1 MiB: the CSV writer's 128 KiB record buffer was an mmap/munmap pair per request.
# Arrow's allocator (mimalloc) hands freed pages back 10 ms after they are freed, so every batch
# request faulted its decoded columns in again; MIMALLOC_PURGE_DELAY makes them wait 10 s, and a
# worker holding too much releases them at once (:func:`release_free_memory`).
WORKER_ALLOCATOR = AllocatorSettings(
    mmap_threshold=32 << 20,
    trim_threshold=64 << 20,
    environment={"MIMALLOC_PURGE_DELAY": "10000"},
)


def release_free_memory() -> None:
    """Return freed memory to the system: glibc's heap (malloc_trim) and, when loaded, Arrow's
    memory pool (its allocator otherwise keeps freed pages until its own purge delay ends)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
    arrow = sys.modules.get("pyarrow")
    if arrow is not None:
        arrow.default_memory_pool().release_unused()


def anonymous_resident_bytes(statm: Path = STATM) -> int:
    """This process's resident memory that no file backs (heap, arrays, copy-on-write pages of the
    model); unlike the whole resident set it does not grow as library code is touched.  0 where
    /proc is unavailable."""
    try:
        fields = statm.read_text(encoding="ascii").split()
        return (int(fields[1]) - int(fields[2])) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class MemoryBound:
    """The freed memory a worker keeps for its next requests: up to ``limit`` bytes above its
    anonymous resident memory when it started, the rest handed back; everything after a body
    of ``huge_body`` bytes or more.

    Handing everything back after each large request made the next one fault its arrays in
    again (a 10 MB CSV body: ~25,000 page faults a request, ~10% of its CPU time); keeping it
    all would leave a worker as large as its largest request for good.  A batch decoded in
    slices needs about the same memory for every body size, so it stays below the limit and
    is reused; a body that needed more (a JSON document read whole) is handed back after.
    A huge body's answer does grow with it (99 MB of JSON Lines: 33 MB of response chunks
    on glibc's heap, kept free at its top after they were sent), and re-faulting a working
    set after a request that took seconds costs little, so after one the worker hands back
    whatever it holds, below the limit or not.
    """

    def __init__(
        self,
        limit: int,
        huge_body: int,
        measure: Callable[[], int] = anonymous_resident_bytes,
        release: Callable[[], None] = release_free_memory,
    ) -> None:
        self.limit = limit
        self.huge_body = huge_body
        self.measure = measure
        self.release = release
        self.baseline = measure()

    def settle(self, body_bytes: int) -> bool:
        """Hand freed memory back after a huge body, or if the process holds more than the limit
        above its start; whether it did."""
        if body_bytes < self.huge_body and self.measure() - self.baseline <= self.limit:
            return False
        self.release()
        return True
