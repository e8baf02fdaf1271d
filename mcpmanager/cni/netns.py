"""Network namespaces of processes, and whether a cache entry was made for one.

A task's namespace is ``/proc/<pid>/ns/net``. A cached ADD result answers for
the process that runs now only when it names that path and was written after
the process started, so a reused pid cannot fool it.
"""

from __future__ import annotations

import os
import time

__all__ = ["netns_path", "written_for"]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_TICK = 1.0 / _CLOCK_TICKS


def netns_path(pid: int) -> str:
    """The network namespace of process ``pid``, as ``CNI_NETNS`` takes it."""
    return f"/proc/{pid}/ns/net"


def written_for(path: str, pid: int) -> bool:
    """True if file ``path`` was written after process ``pid`` started.

    OSError or ValueError when the file or the process cannot be read.
    """
    written = os.stat(path).st_mtime
    started = _process_start(pid)
    return started is not None and _to_boottime(written) + _TICK >= started


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started, in seconds of CLOCK_BOOTTIME; None if unknown."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read().decode(errors="replace")
    fields = stat[stat.rfind(")") + 2 :].split()
    # Field 22 of /proc/<pid>/stat (starttime) is the 20th after "pid (comm)".
    return int(fields[19]) / _CLOCK_TICKS if len(fields) > 19 else None


def _to_boottime(wall: float) -> float:
    """A wall-clock time converted to CLOCK_BOOTTIME seconds."""
    return wall - (time.time() - time.clock_gettime(time.CLOCK_BOOTTIME))
