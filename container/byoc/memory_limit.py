"""How much memory the container has, and where the figure comes from.

A multi-model endpoint sizes its model cache from the container's limit, and training's
out-of-memory failure names it: under Docker or SageMaker the cgroup limit is what the OOM
killer enforces, and ``/proc/meminfo`` shows the whole host.  Training and serving both read it,
so it belongs to neither package.  Every path is a parameter so tests can point the readers at
fake files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class MemoryLimit:
    """The memory this container may use and where that figure comes from (for messages)."""

    bytes: int
    source: str  # "cgroup v2 limit", "cgroup v1 limit", "MemTotal" or "unknown"


def memory_limit(
    *,
    cgroup_v2: Path = CGROUP_V2_LIMIT,
    cgroup_v1: Path = CGROUP_V1_LIMIT,
    meminfo: Path = MEMINFO,
) -> MemoryLimit:
    """The memory this container may use: its cgroup limit (v2, then v1), else physical memory.

    The smaller of the cgroup limit and physical memory wins (a limit above the host's RAM
    is no limit).  Falls back to 1 GiB, source "unknown", when nothing is readable (non-Linux).
    """
    found = [
        MemoryLimit(value, source)
        for value, source in (
            (_read_limit(cgroup_v2), "cgroup v2 limit"),
            (_read_limit(cgroup_v1), "cgroup v1 limit"),
            (_physical_memory(meminfo), "MemTotal"),
        )
        if value
    ]
    return min(found, key=lambda limit: limit.bytes) if found else MemoryLimit(1 << 30, "unknown")


def container_memory_bytes(
    *,
    cgroup_v2: Path = CGROUP_V2_LIMIT,
    cgroup_v1: Path = CGROUP_V1_LIMIT,
    meminfo: Path = MEMINFO,
) -> int:
    """:func:`memory_limit`'s figure alone (1 GiB when nothing is readable)."""
    return memory_limit(cgroup_v2=cgroup_v2, cgroup_v1=cgroup_v1, meminfo=meminfo).bytes
