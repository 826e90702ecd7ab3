"""The machine's processes as Linux's /proc lists them: who started whom, and in which session.

Why /proc and not psutil: psutil is a test dependency, not the image's; these few fields are all
the job needs (its own children at a stop, what a user script's session left running).
"""

from __future__ import annotations

import collections
import ctypes
import sys
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import NamedTuple

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>, Linux 3.4 and later


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


def descendants(parent: int, leaving_out: Collection[int] = ()) -> dict[int, ProcessStat]:
    """{pid: stat} of every process below ``parent``, zombies too, except the children of ``parent``
    in ``leaving_out`` and everything below them."""
    below: dict[int, list[ProcessStat]] = collections.defaultdict(list)
    for stat in process_stats():
        below[stat.ppid].append(stat)
    found: dict[int, ProcessStat] = {}
    todo = [stat for stat in below[parent] if stat.pid not in leaving_out]
    while todo:
        stat = todo.pop()
        if stat.pid not in found and stat.pid != parent:
            found[stat.pid] = stat
            todo.extend(below[stat.pid])
    return found


def become_subreaper() -> bool:
    """Make this process a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``): a process below it
    whose parent ends is re-parented to it rather than to PID 1, so even a daemon that double-forked
    into a session of its own stays among its descendants.  False where that cannot be done (not
    Linux), and nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return False
    return bool(
        prctl(
            PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)
        )
        == 0
    )
