"""Where snapshots, numbered versions and lifecycle events of bot containers are recorded.

``SQLiteStore`` is the embedded default; ``PostgresStore`` shares a PostgreSQL
database with the host application, its tables kept in their own schema. Both
implement the ``VersionStore`` protocol the Manager uses, through one shared
implementation (``_core.SQLStore`` on a per-engine ``Dialect``). psycopg is
imported only when a ``PostgresStore`` is made, so SQLite users need no libpq.
"""

from __future__ import annotations

from mcpmanager.store.base import (
    ContainerRecord,
    EventRecord,
    SnapshotRecord,
    VersionRecord,
    VersionStore,
)
from mcpmanager.store.postgres import PostgresStore
from mcpmanager.store.sqlite import SQLiteStore

__all__ = [
    "ContainerRecord",
    "EventRecord",
    "PostgresStore",
    "SQLiteStore",
    "SnapshotRecord",
    "VersionRecord",
    "VersionStore",
]
