"""``SQLiteStore``: the embedded version store on the standard library's sqlite3."""

from __future__ import annotations

import os

from mcpmanager.store._core import SQLStore
from mcpmanager.store._sqlite import SQLiteDialect

__all__ = ["SQLiteStore"]


class SQLiteStore(SQLStore):
    """A ``VersionStore`` in one SQLite file (WAL mode), or in memory with ``":memory:"``.

    Many threads and several processes may use the same file; writers take the
    database lock up front (``BEGIN IMMEDIATE``) and wait up to ``busy_timeout``
    seconds for it before raising ``Unavailable``. Unless ``auto_migrate`` is
    false the tables are created when the store is constructed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 30.0,
        auto_migrate: bool = True,
    ) -> None:
        self._sqlite = SQLiteDialect(path, busy_timeout)
        super().__init__(self._sqlite)
        if auto_migrate:
            try:
                self.migrate()
            except BaseException:
                self.close()
                raise

    @property
    def path(self) -> str:
        """The database file (or ``":memory:"``)."""
        return self._sqlite.path
