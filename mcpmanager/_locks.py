"""Per-key reentrant locks that disappear when nobody holds or waits for them."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import attrs

__all__ = ["KeyedLocks"]


@attrs.define
class _Entry:
    lock: threading.RLock = attrs.field(factory=threading.RLock)
    users: int = 0


class KeyedLocks:
    """A lock per key, created on demand and dropped once its last user leaves.

    The original Go manager kept one mutex per container forever; here the map
    only holds keys that some thread currently holds or waits for.
    """

    def __init__(self) -> None:
        self._mu = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold the lock of ``key`` for the duration of the ``with`` block (reentrant)."""
        with self._mu:
            entry = self._entries.setdefault(key, _Entry())
            entry.users += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._mu:
                entry.users -= 1
                if entry.users == 0:
                    del self._entries[key]

    def __len__(self) -> int:
        with self._mu:
            return len(self._entries)
