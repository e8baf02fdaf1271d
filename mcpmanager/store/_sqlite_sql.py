"""The SQLite statements of ``SQLiteStore``."""

from __future__ import annotations

APPLIED_MIGRATIONS = "SELECT version FROM schema_migrations"

RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)"

UPSERT_CONTAINER = """
INSERT INTO containers (
  id, bot_id, container_id, container_name, image, snapshotter, created_at, updated_at
)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (container_id) DO UPDATE SET
  bot_id = excluded.bot_id,
  image = excluded.image,
  snapshotter = excluded.snapshotter,
  updated_at = excluded.updated_at"""

GET_CONTAINER = """
SELECT id, container_id, bot_id, image, snapshotter, created_at, updated_at
FROM containers WHERE container_id = ?"""

DELETE_CONTAINER = "DELETE FROM containers WHERE container_id = ?"

UPSERT_SNAPSHOT = """
INSERT INTO snapshots (
  id, container_id, runtime_snapshot_name, display_name,
  parent_runtime_snapshot_name, snapshotter, source, created_at
)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (container_id, runtime_snapshot_name) DO UPDATE SET
  display_name = excluded.display_name,
  parent_runtime_snapshot_name = excluded.parent_runtime_snapshot_name,
  snapshotter = excluded.snapshotter,
  source = excluded.source"""

SNAPSHOT_ID = "SELECT id FROM snapshots WHERE container_id = ? AND runtime_snapshot_name = ?"

NEXT_VERSION = "SELECT COALESCE(MAX(version), 0) + 1 FROM container_versions WHERE container_id = ?"

INSERT_VERSION = """
INSERT INTO container_versions (id, container_id, snapshot_id, version, created_at)
VALUES (?, ?, ?, ?, ?)"""

_VERSION_COLUMNS = """
SELECT cv.id, cv.container_id, cv.version, s.runtime_snapshot_name,
       COALESCE(s.display_name, ''), s.source, cv.created_at
FROM container_versions cv
JOIN snapshots s ON s.id = cv.snapshot_id
WHERE cv.container_id = ?"""

LIST_VERSIONS = _VERSION_COLUMNS + " ORDER BY cv.version ASC"

GET_VERSION = _VERSION_COLUMNS + " AND cv.version = ?"

LIST_SNAPSHOTS = """
SELECT s.id, s.container_id, s.runtime_snapshot_name, COALESCE(s.display_name, ''),
       COALESCE(s.parent_runtime_snapshot_name, ''), s.snapshotter, s.source,
       (SELECT MAX(cv.version) FROM container_versions cv WHERE cv.snapshot_id = s.id)
         AS version,
       s.created_at
FROM snapshots s
WHERE s.container_id = ?
ORDER BY s.created_at DESC, version DESC, s.runtime_snapshot_name"""

INSERT_EVENT = """
INSERT INTO lifecycle_events (id, container_id, event_type, payload, created_at)
VALUES (?, ?, ?, ?, ?)"""

LIST_EVENTS = """
SELECT id, container_id, event_type, payload, created_at
FROM lifecycle_events WHERE container_id = ? ORDER BY seq ASC"""
