"""Hand out sqlite3 connections to threads, one thread per connection at a time.

A file database keeps a small free list of connections (WAL mode lets readers
run alongside a writer); ``":memory:"`` has exactly one connection, so users
of it take turns.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from mcpmanager.errors import FailedPrecondition

MEMORY = ":memory:"
MAX_IDLE = 8


class Connections:
    """A tiny connection pool for one SQLite database."""

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float) -> None:
        self._path = os.fspath(path)
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._memory_turn = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False

    @property
    def path(self) -> str:
        """The database file (or ``":memory:"``)."""
        return self._path

    @contextmanager
    def acquire(self) -> Iterator[sqlite3.Connection]:
        """Lend a connection to the calling thread for the duration of the block."""
        turn: AbstractContextManager[object] = (
            self._memory_turn if self._path == MEMORY else nullcontext()
        )
        with turn:
            conn = self._take()
            try:
                yield conn
            finally:
                self._give_back(conn)

    def close(self) -> None:
        """Close idle connections now and busy ones when they come back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise FailedPrecondition(f"version store {self._path!r} is closed")
            if self._idle:
                return self._idle.pop()
        return self._connect()

    def _give_back(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.rollback()
        with self._lock:
            if not self._closed and len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            if self._path != MEMORY:
                self._enable_wal(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _enable_wal(self, conn: sqlite3.Connection) -> None:
        """Switch the file to WAL; SQLite does not wait for other openers here, so retry."""
        deadline = time.monotonic() + self._busy_timeout
        delay = 0.005
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
