"""Numbered, forward-only schema migrations for both store backends.

Each migration has a version, a name and its statements in two dialects. The
PostgreSQL statements are ``psycopg.sql`` templates: ``{schema}`` becomes the
store's quoted schema name, so literal braces are doubled. Applied versions
are recorded in a ``schema_migrations`` table; never edit a released
migration, append a new one.

The tables mirror memoh's ``containers``, ``snapshots``, ``container_versions``
and ``lifecycle_events`` without the foreign key to memoh's ``bots`` table.
``container_versions.snapshot_id`` uses the default ``NO ACTION`` (checked at
the end of the statement) rather than ``RESTRICT``, so deleting a container
can cascade to both its snapshots and its versions.
"""

from __future__ import annotations

import attrs

__all__ = ["MIGRATIONS", "POSTGRES_BOOTSTRAP", "SQLITE_BOOTSTRAP", "Migration", "bootstrap"]


@attrs.frozen
class Migration:
    """One schema step, written once per dialect."""

    version: int
    name: str
    postgres: tuple[str, ...]
    sqlite: tuple[str, ...]

    def statements(self, dialect: str) -> tuple[str, ...]:
        """The statements for ``dialect`` (``postgres`` or ``sqlite``)."""
        return self.postgres if dialect == "postgres" else self.sqlite


POSTGRES_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)"""

SQLITE_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at TEXT NOT NULL
)"""


def bootstrap(dialect: str) -> str:
    """The statement creating ``schema_migrations`` for ``dialect``, if it is missing."""
    return POSTGRES_BOOTSTRAP if dialect == "postgres" else SQLITE_BOOTSTRAP


_PG_INIT = (
    """
CREATE TABLE {schema}.containers (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  bot_id TEXT NOT NULL,
  container_id TEXT NOT NULL,
  container_name TEXT NOT NULL,
  image TEXT NOT NULL,
  snapshotter TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'created',
  namespace TEXT NOT NULL DEFAULT 'default',
  auto_start BOOLEAN NOT NULL DEFAULT true,
  container_path TEXT NOT NULL DEFAULT '/data',
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  last_started_at TIMESTAMPTZ,
  last_stopped_at TIMESTAMPTZ,
  CONSTRAINT containers_container_id_unique UNIQUE (container_id),
  CONSTRAINT containers_container_name_unique UNIQUE (container_name)
)""",
    "CREATE INDEX idx_containers_bot_id ON {schema}.containers (bot_id)",
    """
CREATE TABLE {schema}.snapshots (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  container_id TEXT NOT NULL
    REFERENCES {schema}.containers (container_id) ON DELETE CASCADE,
  runtime_snapshot_name TEXT NOT NULL,
  display_name TEXT,
  parent_runtime_snapshot_name TEXT,
  snapshotter TEXT NOT NULL,
  source TEXT NOT NULL,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)""",
    """CREATE UNIQUE INDEX idx_snapshots_container_runtime_name
  ON {schema}.snapshots (container_id, runtime_snapshot_name)""",
    """CREATE INDEX idx_snapshots_container_created_at
  ON {schema}.snapshots (container_id, created_at DESC)""",
    "CREATE INDEX idx_snapshots_runtime_name ON {schema}.snapshots (runtime_snapshot_name)",
    """
CREATE TABLE {schema}.container_versions (
  id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  container_id TEXT NOT NULL
    REFERENCES {schema}.containers (container_id) ON DELETE CASCADE,
  snapshot_id UUID NOT NULL REFERENCES {schema}.snapshots (id),
  version INTEGER NOT NULL CHECK (version > 0),
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT container_versions_container_version_unique UNIQUE (container_id, version)
)""",
    """CREATE INDEX idx_container_versions_snapshot_id
  ON {schema}.container_versions (snapshot_id)""",
    """
CREATE TABLE {schema}.lifecycle_events (
  id TEXT PRIMARY KEY,
  seq BIGINT GENERATED ALWAYS AS IDENTITY,
  container_id TEXT NOT NULL
    REFERENCES {schema}.containers (container_id) ON DELETE CASCADE,
  event_type TEXT NOT NULL,
  payload JSONB NOT NULL DEFAULT '{{}}'::jsonb,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
)""",
    """CREATE INDEX idx_lifecycle_events_container_seq
  ON {schema}.lifecycle_events (container_id, seq)""",
    """CREATE INDEX idx_lifecycle_events_event_type
  ON {schema}.lifecycle_events (event_type)""",
)

_SQLITE_INIT = (
    """
CREATE TABLE containers (
  id TEXT PRIMARY KEY,
  bot_id TEXT NOT NULL,
  container_id TEXT NOT NULL UNIQUE,
  container_name TEXT NOT NULL UNIQUE,
  image TEXT NOT NULL,
  snapshotter TEXT NOT NULL DEFAULT '',
  status TEXT NOT NULL DEFAULT 'created',
  namespace TEXT NOT NULL DEFAULT 'default',
  auto_start INTEGER NOT NULL DEFAULT 1,
  container_path TEXT NOT NULL DEFAULT '/data',
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  last_started_at TEXT,
  last_stopped_at TEXT
)""",
    "CREATE INDEX idx_containers_bot_id ON containers (bot_id)",
    """
CREATE TABLE snapshots (
  id TEXT PRIMARY KEY,
  container_id TEXT NOT NULL REFERENCES containers (container_id) ON DELETE CASCADE,
  runtime_snapshot_name TEXT NOT NULL,
  display_name TEXT,
  parent_runtime_snapshot_name TEXT,
  snapshotter TEXT NOT NULL,
  source TEXT NOT NULL,
  created_at TEXT NOT NULL
)""",
    """CREATE UNIQUE INDEX idx_snapshots_container_runtime_name
  ON snapshots (container_id, runtime_snapshot_name)""",
    """CREATE INDEX idx_snapshots_container_created_at
  ON snapshots (container_id, created_at DESC)""",
    "CREATE INDEX idx_snapshots_runtime_name ON snapshots (runtime_snapshot_name)",
    """
CREATE TABLE container_versions (
  id TEXT PRIMARY KEY,
  container_id TEXT NOT NULL REFERENCES containers (container_id) ON DELETE CASCADE,
  snapshot_id TEXT NOT NULL REFERENCES snapshots (id),
  version INTEGER NOT NULL CHECK (version > 0),
  created_at TEXT NOT NULL,
  UNIQUE (container_id, version)
)""",
    "CREATE INDEX idx_container_versions_snapshot_id ON container_versions (snapshot_id)",
    """
CREATE TABLE lifecycle_events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  container_id TEXT NOT NULL REFERENCES containers (container_id) ON DELETE CASCADE,
  event_type TEXT NOT NULL,
  payload TEXT NOT NULL DEFAULT '{}',
  created_at TEXT NOT NULL
)""",
    """CREATE INDEX idx_lifecycle_events_container_seq
  ON lifecycle_events (container_id, seq)""",
    "CREATE INDEX idx_lifecycle_events_event_type ON lifecycle_events (event_type)",
)

# 2: each version row carries its snapshot's runtime name, display name and
# source, so list_versions reads one table in (container_id, version) order with
# no join; the index finds the version of a runtime name (record_snapshot's
# retry check). Snapshot rows no longer change once recorded, so the copies
# stay true. Not unique: databases from before 2 may hold several versions of
# one snapshot (re-recording a name used to number it again).
_PG_VERSION_NAMES = (
    """
ALTER TABLE {schema}.container_versions
  ADD COLUMN runtime_snapshot_name TEXT,
  ADD COLUMN display_name TEXT NOT NULL DEFAULT '',
  ADD COLUMN source TEXT NOT NULL DEFAULT ''""",
    """
UPDATE {schema}.container_versions cv
SET runtime_snapshot_name = s.runtime_snapshot_name,
    display_name = COALESCE(s.display_name, ''),
    source = s.source
FROM {schema}.snapshots s
WHERE s.id = cv.snapshot_id""",
    """ALTER TABLE {schema}.container_versions
  ALTER COLUMN runtime_snapshot_name SET NOT NULL""",
    """CREATE INDEX idx_container_versions_container_runtime_name
  ON {schema}.container_versions (container_id, runtime_snapshot_name)""",
)

_SQLITE_VERSION_NAMES = (
    "ALTER TABLE container_versions ADD COLUMN runtime_snapshot_name TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE container_versions ADD COLUMN display_name TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE container_versions ADD COLUMN source TEXT NOT NULL DEFAULT ''",
    """
UPDATE container_versions
SET (runtime_snapshot_name, display_name, source) = (
  SELECT s.runtime_snapshot_name, COALESCE(s.display_name, ''), s.source
  FROM snapshots s WHERE s.id = container_versions.snapshot_id
)""",
    """CREATE INDEX idx_container_versions_container_runtime_name
  ON container_versions (container_id, runtime_snapshot_name)""",
)

# 3: on SQLite, an index holding every column list_versions reads, in its
# order, so the listing never visits the table (about 1 ms of 10,000 versions,
# for about a fifth more file). PostgreSQL has none: its planner reads the
# (container_id, version) unique index in order, and an index-only scan would
# only pay once VACUUM has marked the pages all-visible.
_SQLITE_VERSION_LISTING = (
    """CREATE INDEX idx_container_versions_listing ON container_versions (
  container_id, version, id, runtime_snapshot_name, display_name, source, created_at
)""",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(version=1, name="init", postgres=_PG_INIT, sqlite=_SQLITE_INIT),
    Migration(
        version=2,
        name="version_snapshot_names",
        postgres=_PG_VERSION_NAMES,
        sqlite=_SQLITE_VERSION_NAMES,
    ),
    Migration(version=3, name="version_listing_index", postgres=(), sqlite=_SQLITE_VERSION_LISTING),
)
