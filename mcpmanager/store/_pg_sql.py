"""The PostgreSQL statements of ``PostgresStore``, as templates over ``{schema}``."""

from __future__ import annotations

from psycopg import sql

# First key of every advisory lock the store takes (an arbitrary constant, "mcpm").
LOCK_CLASS = 0x6D63706D

ADVISORY_XACT_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"

SCHEMA_EXISTS = "SELECT 1 FROM pg_namespace WHERE nspname = %s"

CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {schema}"

APPLIED_MIGRATIONS = "SELECT version FROM {schema}.schema_migrations"

RECORD_MIGRATION = "INSERT INTO {schema}.schema_migrations (version, name) VALUES (%s, %s)"

UPSERT_CONTAINER = """
INSERT INTO {schema}.containers (bot_id, container_id, container_name, image, snapshotter)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (container_id) DO UPDATE SET
  bot_id = EXCLUDED.bot_id,
  image = EXCLUDED.image,
  snapshotter = EXCLUDED.snapshotter,
  updated_at = now()"""

GET_CONTAINER = """
SELECT id::text, container_id, bot_id, image, snapshotter, created_at, updated_at
FROM {schema}.containers WHERE container_id = %s"""

DELETE_CONTAINER = "DELETE FROM {schema}.containers WHERE container_id = %s"

UPSERT_SNAPSHOT = """
INSERT INTO {schema}.snapshots (
  container_id, runtime_snapshot_name, display_name,
  parent_runtime_snapshot_name, snapshotter, source
)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (container_id, runtime_snapshot_name) DO UPDATE SET
  display_name = EXCLUDED.display_name,
  parent_runtime_snapshot_name = EXCLUDED.parent_runtime_snapshot_name,
  snapshotter = EXCLUDED.snapshotter,
  source = EXCLUDED.source
RETURNING id"""

INSERT_NEXT_VERSION = """
INSERT INTO {schema}.container_versions (container_id, snapshot_id, version)
SELECT %s, %s, COALESCE(MAX(version), 0) + 1
FROM {schema}.container_versions WHERE container_id = %s
RETURNING id::text, version, created_at"""

_VERSION_COLUMNS = """
SELECT cv.id::text, cv.container_id, cv.version, s.runtime_snapshot_name,
       COALESCE(s.display_name, ''), s.source, cv.created_at
FROM {schema}.container_versions cv
JOIN {schema}.snapshots s ON s.id = cv.snapshot_id
WHERE cv.container_id = %s"""

LIST_VERSIONS = _VERSION_COLUMNS + " ORDER BY cv.version ASC"

GET_VERSION = _VERSION_COLUMNS + " AND cv.version = %s"

LIST_SNAPSHOTS = """
SELECT s.id::text, s.container_id, s.runtime_snapshot_name, COALESCE(s.display_name, ''),
       COALESCE(s.parent_runtime_snapshot_name, ''), s.snapshotter, s.source,
       (SELECT MAX(cv.version) FROM {schema}.container_versions cv
        WHERE cv.snapshot_id = s.id) AS version,
       s.created_at
FROM {schema}.snapshots s
WHERE s.container_id = %s
ORDER BY s.created_at DESC, version DESC NULLS LAST, s.runtime_snapshot_name"""

INSERT_EVENT = """
INSERT INTO {schema}.lifecycle_events (id, container_id, event_type, payload)
VALUES (%s, %s, %s, %s::jsonb)"""

LIST_EVENTS = """
SELECT id, container_id, event_type, payload, created_at
FROM {schema}.lifecycle_events WHERE container_id = %s ORDER BY seq ASC"""


class Statements:
    """Compose templates for one schema, once each."""

    def __init__(self, schema: str) -> None:
        self._schema = sql.Identifier(schema)
        self._cache: dict[str, sql.Composed] = {}

    def __call__(self, template: str) -> sql.Composed:
        """Return ``template`` with ``{schema}`` bound to the quoted schema name."""
        composed = self._cache.get(template)
        if composed is None:
            composed = sql.SQL(template).format(schema=self._schema)
            self._cache[template] = composed
        return composed
