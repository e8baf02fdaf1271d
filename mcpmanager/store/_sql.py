"""The statements of both store backends, written once.

Templates use ``%s`` placeholders and put ``{schema}.`` before each table. A
backend renders each template once: PostgreSQL binds ``{schema}`` to its quoted
schema name, SQLite drops the prefix and uses ``?``. Only SQL both engines
accept appears here (``CAST``, ``ON CONFLICT``, scalar subqueries in
``VALUES``, and ``RETURNING`` / ``NULLS LAST``, which need SQLite 3.35). Ids
and timestamps come in as parameters, so both stores write the same rows.
Column orders are the ones ``_rows`` reads.
"""

from __future__ import annotations

APPLIED_MIGRATIONS = "SELECT version FROM {schema}.schema_migrations"

RECORD_MIGRATION = """
INSERT INTO {schema}.schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)"""

UPSERT_CONTAINER = """
INSERT INTO {schema}.containers (
  id, bot_id, container_id, container_name, image, snapshotter, created_at, updated_at
)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (container_id) DO UPDATE SET
  bot_id = excluded.bot_id,
  image = excluded.image,
  snapshotter = excluded.snapshotter,
  updated_at = excluded.updated_at"""

GET_CONTAINER = """
SELECT CAST(id AS TEXT), container_id, bot_id, image, snapshotter, created_at, updated_at
FROM {schema}.containers WHERE container_id = %s"""

DELETE_CONTAINER = "DELETE FROM {schema}.containers WHERE container_id = %s"

# The snapshot row of a runtime name and its newest version (NULLs if it has none).
RECORDED = """
SELECT CAST(s.id AS TEXT), COALESCE(s.display_name, ''),
       COALESCE(s.parent_runtime_snapshot_name, ''), s.snapshotter, s.source,
       CAST(cv.id AS TEXT), cv.version, cv.created_at
FROM {schema}.snapshots s
LEFT JOIN {schema}.container_versions cv ON cv.snapshot_id = s.id
WHERE s.container_id = %s AND s.runtime_snapshot_name = %s
ORDER BY cv.version DESC NULLS LAST
LIMIT 1"""

INSERT_SNAPSHOT = """
INSERT INTO {schema}.snapshots (
  id, container_id, runtime_snapshot_name, display_name,
  parent_runtime_snapshot_name, snapshotter, source, created_at
)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"""

UPDATE_SNAPSHOT = """
UPDATE {schema}.snapshots
SET display_name = %s, parent_runtime_snapshot_name = %s, snapshotter = %s, source = %s
WHERE id = %s"""

# Numbering is MAX + 1: callers hold the container's numbering lock (see Dialect).
INSERT_NEXT_VERSION = """
INSERT INTO {schema}.container_versions (
  id, container_id, snapshot_id, version,
  runtime_snapshot_name, display_name, source, created_at
)
VALUES (
  %s, %s, %s,
  (SELECT COALESCE(MAX(version), 0) + 1 FROM {schema}.container_versions
   WHERE container_id = %s),
  %s, %s, %s, %s
)
RETURNING version"""

# Version rows carry their snapshot's names, so listing them reads one table in
# index order: (id, version, runtime_snapshot_name, display_name, source, created_at).
_VERSION_COLUMNS = """
SELECT CAST(id AS TEXT), version, runtime_snapshot_name, display_name, source, created_at
FROM {schema}.container_versions
WHERE container_id = %s"""

LIST_VERSIONS = _VERSION_COLUMNS + " ORDER BY version"

GET_VERSION = _VERSION_COLUMNS + " AND version = %s"

FIND_VERSION = _VERSION_COLUMNS + " AND runtime_snapshot_name = %s ORDER BY version DESC LIMIT 1"

LIST_SNAPSHOTS = """
SELECT CAST(s.id AS TEXT), s.container_id, s.runtime_snapshot_name,
       COALESCE(s.display_name, ''), COALESCE(s.parent_runtime_snapshot_name, ''),
       s.snapshotter, s.source,
       (SELECT MAX(cv.version) FROM {schema}.container_versions cv
        WHERE cv.snapshot_id = s.id) AS version,
       s.created_at
FROM {schema}.snapshots s
WHERE s.container_id = %s
ORDER BY s.created_at DESC, version DESC NULLS LAST, s.runtime_snapshot_name"""

INSERT_EVENT = """
INSERT INTO {schema}.lifecycle_events (id, container_id, event_type, payload, created_at)
VALUES (%s, %s, %s, %s, %s)"""

LIST_EVENTS = """
SELECT id, container_id, event_type, payload, created_at
FROM {schema}.lifecycle_events WHERE container_id = %s ORDER BY seq"""
