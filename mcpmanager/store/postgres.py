"""``PostgresStore``: the version store on PostgreSQL (psycopg 3 with ``psycopg_pool``).

psycopg is imported when a ``PostgresStore`` is made, not when this module is:
``import mcpmanager``, the fake and ``SQLiteStore`` work on hosts without libpq.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcpmanager.errors import FailedPrecondition
from mcpmanager.store._core import SQLStore
from mcpmanager.store._errors import translate
from mcpmanager.store._values import check_schema

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from mcpmanager.store._pg import PostgresDialect

__all__ = ["PostgresStore"]

INSTALL_HINT = (
    "install psycopg with a libpq: pip install 'mcpmanager[binary]' "
    "(psycopg's wheels with libpq bundled), or the system libpq (Debian: apt-get install libpq5)"
)


def _dialect_module() -> Any:
    """Import the psycopg side now; ``FailedPrecondition`` naming the fix if it cannot load."""
    try:
        from mcpmanager.store import _pg
    except ImportError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise FailedPrecondition(
            f"PostgresStore cannot load psycopg ({reason}): {INSTALL_HINT}"
        ) from exc
    return _pg


class PostgresStore(SQLStore):
    """A ``VersionStore`` keeping its tables in one schema of a PostgreSQL database.

    ``conninfo`` is a libpq connection string (the store then owns a pool it opens
    on first use and closes in ``close()``) or a ``psycopg_pool.ConnectionPool``
    the caller owns and closes. ``schema`` keeps the tables apart from the host
    application's; ``migrate()`` creates it. ``timeout`` is how long a call waits
    for a connection before raising ``Unavailable``.

    Raises ``FailedPrecondition`` (caused by psycopg's ``ImportError``) when
    psycopg cannot be imported, e.g. "no pq wrapper available" on a host without
    libpq; the message names the fix: ``pip install 'mcpmanager[binary]'`` or
    the system libpq.
    """

    def __init__(
        self,
        conninfo: str | ConnectionPool[Any],
        *,
        schema: str = "mcpmanager",
        min_size: int = 1,
        max_size: int = 4,
        timeout: float = 10.0,
    ) -> None:
        checked = check_schema(schema)
        pg = _dialect_module()
        self._pg: PostgresDialect = pg.PostgresDialect(
            conninfo, schema=checked, min_size=min_size, max_size=max_size, timeout=timeout
        )
        super().__init__(self._pg)

    @property
    def schema(self) -> str:
        """The schema holding this store's tables."""
        return self._pg.schema

    def open(self, *, wait: bool = True) -> None:
        """Open the owned pool now; with ``wait`` raise ``Unavailable`` unless it connects.

        Calls open the pool by themselves when needed; this is for checking the
        database is reachable at start-up.
        """
        with translate(f"open store ({self._pg.where})", self._pg.classify):
            self._check_open()
            if wait:
                self._pg.ping()
            else:
                self._pg.open()
