"""How much memory the container has, and giving freed memory back to the system.

A multi-model endpoint sizes its model cache from the container's limit, not the host's:
under Docker or SageMaker the cgroup limit is what the OOM killer enforces, and
``/proc/meminfo`` shows the whole host.  Every path is a parameter so tests can point the
readers at fake files.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache
from pathlib import Path

log = logging.getLogger("byoc.serving")

CGROUP_V2_LIMIT = Path("/sys/fs/cgroup/memory.max")
CGROUP_V1_LIMIT = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
MEMINFO = Path("/proc/meminfo")
UNLIMITED = 1 << 60  # cgroup v1 writes ~2**63 rounded to the page size when no limit is set


def _read_limit(path: Path) -> int | None:
    """A cgroup limit file in bytes; None when absent, unreadable or ``max`` (no limit)."""
    try:
        raw = path.read_text(encoding="ascii").strip()
    except OSError:
        return None
    if not raw or raw == "max":
        return None
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if 0 < value < UNLIMITED else None


def _physical_memory(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text(encoding="ascii").splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def container_memory_bytes(
    *,
    cgroup_v2: Path = CGROUP_V2_LIMIT,
    cgroup_v1: Path = CGROUP_V1_LIMIT,
    meminfo: Path = MEMINFO,
) -> int:
    """The memory this container may use: its cgroup limit (v2, then v1), else physical memory.

    The smaller of the cgroup limit and physical memory wins (a limit above the host's RAM
    is no limit).  Falls back to 1 GiB when nothing is readable (non-Linux).
    """
    physical = _physical_memory(meminfo)
    limits = [value for value in (_read_limit(cgroup_v2), _read_limit(cgroup_v1), physical) if value]
    return min(limits) if limits else 1 << 30


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name) if name else None
    except OSError:
        return None


M_MMAP_THRESHOLD = -3


def use_fixed_mmap_threshold(threshold: int = 128 * 1024) -> bool:
    """Have glibc serve every allocation above ``threshold`` with its own mmap.

    glibc raises its mmap threshold each time a large block is freed, after which model
    arrays land on the heap and an evicted model's pages stay resident.  A fixed threshold
    keeps large arrays in mappings that are returned to the system when the model is freed.
    """
    libc = _libc()
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))


def release_free_memory() -> None:
    """Return freed heap pages to the system (glibc's malloc_trim); a no-op elsewhere."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)
