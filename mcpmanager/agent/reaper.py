"""Reaping orphans when the agent is its container's init (PID 1).

A command that leaves a background child behind (``sleep 60 &``) makes that
child an orphan, and orphans are reparented to PID 1: the agent. Unreaped,
each one stays a zombie for the life of the bot and counts against its pids
limit. The agent therefore reaps every exited child that is not one of the
commands it is waiting for itself (those are reaped by their own watcher).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator

__all__ = ["is_init", "reap_orphans", "spawning", "untrack"]

_lock = threading.Lock()
_tracked: set[int] = set()


def is_init() -> bool:
    """Whether this process is PID 1 of its namespace (so orphans come to it)."""
    return os.getpid() == 1


@contextlib.contextmanager
def spawning() -> Iterator[Callable[[int], None]]:
    """Start a child inside the block and register its pid with the function given.

    The reaper waits meanwhile, so it can never reap a child between its
    start and its registration.
    """
    with _lock:
        yield _tracked.add


def untrack(pid: int) -> None:
    """Forget a command's pid once its own watcher has reaped it."""
    with _lock:
        _tracked.discard(pid)


def reap_orphans() -> list[int]:
    """Reap every exited child of ours that no watcher waits for; return their pids."""
    reaped = []
    with _lock:
        for pid in _zombie_children():
            if pid in _tracked:
                continue
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
                reaped.append(pid)
    return reaped


def _zombie_children() -> list[int]:
    """Pids of this process's children that have exited and wait to be reaped."""
    me = os.getpid()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces or parentheses.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) >= 2 and fields[0] == b"Z" and int(fields[1]) == me:
            found.append(int(name))
    return found
