"""Where snapshots, numbered versions and lifecycle events of bot containers are recorded.

``SQLiteStore`` is the embedded default; ``PostgresStore`` shares a PostgreSQL
database with the host application, its tables kept in their own schema. Both
implement the ``VersionStore`` protocol the Manager uses.
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
