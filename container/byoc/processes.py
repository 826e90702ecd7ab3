"""The machine's processes as Linux's /proc lists them: who started whom, and in which session.

Why /proc and not psutil: psutil is a test dependency, not the image's; these few fields are all
the job needs (its own children at a stop, what a user script's session left running).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple


class ProcessStat(NamedTuple):
    """The fields of ``/proc/<pid>/stat`` that say where a process belongs."""

    pid: int
    state: str
    ppid: int
    group: int
    session: int


def process_stats() -> Iterator[ProcessStat]:
    """Every process's :class:`ProcessStat` (none where /proc is not Linux's)."""
    for entry in Path("/proc").glob("[0-9]*/stat"):
        try:
            # the command name in brackets may hold spaces and ')': the fields follow its last ')'
            state, ppid, group, session = entry.read_text().rsplit(")", 1)[1].split()[:4]
            yield ProcessStat(int(entry.parent.name), state, int(ppid), int(group), int(session))
        except (OSError, ValueError):
            continue


def child_pids(parent: int) -> list[int]:
    """Direct children of ``parent``."""
    return [stat.pid for stat in process_stats() if stat.ppid == parent]


def session_groups(sid: int) -> dict[int, int]:
    """{pid: process group} of the live processes of session ``sid`` (a zombie has ended)."""
    return {
        stat.pid: stat.group for stat in process_stats() if stat.session == sid and stat.state not in "ZX"
    }
