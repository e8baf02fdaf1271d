"""The SQLite ``Dialect``: the standard library's sqlite3, timestamps as ISO text."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from mcpmanager.store._errors import Failure, first_line
from mcpmanager.store._sqlite_conn import Connections

__all__ = ["SQLiteDialect"]

# Fixed width with microseconds, so text order is time order (isoformat drops ".000000").
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"

_rendered: dict[str, str] = {}


def render(template: str) -> str:
    """A ``_sql`` template as SQLite text: no schema prefix, ``?`` placeholders."""
    text = _rendered.get(template)
    if text is None:
        text = template.replace("{schema}.", "").replace("%s", "?")
        _rendered[template] = text
    return text


class _Session:
    """A sqlite3 connection running rendered templates."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, template: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        """Run ``template`` with ``params``."""
        return self._conn.execute(render(template), params)

    def stream(self, template: str, params: Sequence[object] = ()) -> Iterable[Any]:
        """The cursor itself: rows are read from the database as they are iterated."""
        return self._conn.execute(render(template), params)


class SQLiteDialect:
    """SQLite for ``SQLStore``: one file in WAL mode (or ``":memory:"``).

    Writers take the database lock up front (``BEGIN IMMEDIATE``), which is
    also what serialises version numbering between threads and processes.
    """

    name = "sqlite"

    def __init__(self, path: str | os.PathLike[str], busy_timeout: float) -> None:
        self._conns = Connections(path, busy_timeout)
        self.where = repr(self._conns.path)
        # Stored text carries its +00:00 offset: parsing gives an aware UTC datetime.
        self.when: Callable[[Any], datetime] = datetime.fromisoformat

    @property
    def path(self) -> str:
        """The database file (or ``":memory:"``)."""
        return self._conns.path

    @contextmanager
    def read(self) -> Iterator[_Session]:
        """A connection in autocommit mode."""
        with self._conns.acquire() as conn:
            yield _Session(conn)

    @contextmanager
    def write(self) -> Iterator[_Session]:
        """A connection inside ``BEGIN IMMEDIATE``: committed on success, else rolled back."""
        with self._conns.acquire() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Session(conn)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def lock_numbering(self, session: object, container_id: str) -> None:
        """Nothing to do: ``BEGIN IMMEDIATE`` already holds the database's only write lock."""

    def begin_migration(self, session: object) -> None:
        """Nothing to do: the write lock already keeps other migrators out."""

    def classify(self, exc: Exception) -> tuple[Failure, str] | None:
        """Sort a sqlite3 error by its class and message (sqlite3 has no finer classes)."""
        if not isinstance(exc, sqlite3.Error):
            return None
        detail = first_line(exc)
        lowered = detail.lower()
        if isinstance(exc, sqlite3.IntegrityError):
            if "foreign key" in lowered:
                return Failure.UNREGISTERED, detail
            if "unique" in lowered:
                return Failure.DUPLICATE, detail
        if "no such table" in lowered or "no such column" in lowered:
            return Failure.NOT_MIGRATED, detail
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in lowered:
            return Failure.CLOSED, detail
        if isinstance(exc, sqlite3.OperationalError):
            return Failure.UNAVAILABLE, detail
        return Failure.OTHER, detail

    def times(self, session: object) -> Callable[[Any], datetime]:
        """Stored text is always parsed (``when``)."""
        return self.when

    def stamp(self, when: datetime) -> str:
        """ISO 8601 text in UTC with microseconds."""
        return when.strftime(_TIME_FORMAT)

    def close(self) -> None:
        """Close idle connections now and busy ones when they come back."""
        self._conns.close()
