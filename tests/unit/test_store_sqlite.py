"""SQLiteStore specifics: WAL, lock waits, in-memory use, error mapping."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from mcpmanager.errors import FailedPrecondition, Unavailable
from mcpmanager.store import SQLiteStore, _sql
from mcpmanager.store._sqlite import render
from mcpmanager.store.migrations import MIGRATIONS

CID = "mcp-bot1"


def test_file_uses_wal_and_records_migrations(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.migrate()
        assert store.path == str(path)
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
        assert rows == [(m.version, m.name) for m in MIGRATIONS]
    finally:
        conn.close()


def test_data_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.upsert_container(CID, "bot1", "img", "overlayfs")
        first = store.record_snapshot(CID, "s1", snapshotter="overlayfs")
    with SQLiteStore(path) as store:
        assert store.list_versions(CID) == [first]
        assert store.record_snapshot(CID, "s2", snapshotter="overlayfs").version == 2


def test_writer_waits_then_reports_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path, busy_timeout=0.2) as store:
        store.upsert_container(CID, "bot1", "img", "overlayfs")
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(Unavailable, match="record snapshot 's1' of container 'mcp-bot1'"):
                store.record_snapshot(CID, "s1", snapshotter="overlayfs")
            assert store.list_versions(CID) == []
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert store.record_snapshot(CID, "s1", snapshotter="overlayfs").version == 1


def test_not_migrated_is_failed_precondition(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "s.db", auto_migrate=False) as store:
        with pytest.raises(FailedPrecondition, match="migrate"):
            store.list_versions(CID)
        store.migrate()
        assert store.list_versions(CID) == []


def test_closed_store_is_failed_precondition() -> None:
    store = SQLiteStore(":memory:")
    store.close()
    store.close()
    with pytest.raises(FailedPrecondition, match="closed"):
        store.list_versions(CID)


def test_unopenable_path_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(Unavailable, match="migrate"):
        SQLiteStore(tmp_path / "missing-dir" / "s.db")


def test_memory_stores_are_separate() -> None:
    with SQLiteStore(":memory:") as a, SQLiteStore(":memory:") as b:
        a.upsert_container(CID, "bot1", "img", "overlayfs")
        a.record_snapshot(CID, "s1", snapshotter="overlayfs")
        assert b.list_versions(CID) == []


def test_a_snapshot_row_without_a_version_is_adopted(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.upsert_container(CID, "bot1", "img", "overlayfs")
        conn = sqlite3.connect(path)
        try:
            with conn:
                conn.execute(
                    "INSERT INTO snapshots (id, container_id, runtime_snapshot_name, display_name,"
                    " parent_runtime_snapshot_name, snapshotter, source, created_at)"
                    " VALUES ('x', ?, 's1', 'stale', '', 'native', 'manual',"
                    " '2026-01-01T00:00:00.000000+00:00')",
                    (CID,),
                )
        finally:
            conn.close()
        rec = store.record_snapshot(CID, "s1", display_name="fresh", snapshotter="overlayfs")
        assert (rec.version, rec.display_name) == (1, "fresh")
        (snap,) = store.list_snapshots(CID)
        assert (snap.id, snap.version, snap.display_name, snap.snapshotter) == (
            "x",
            1,
            "fresh",
            "overlayfs",
        )
        assert (
            store.record_snapshot(CID, "s1", display_name="fresh", snapshotter="overlayfs") == rec
        )


def test_listing_versions_reads_only_its_covering_index(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SQLiteStore(path) as store:
        store.upsert_container(CID, "bot1", "img", "overlayfs")
        made = [store.record_snapshot(CID, f"s{i}", snapshotter="overlayfs") for i in range(3)]
        assert store.list_versions(CID) == made
    conn = sqlite3.connect(path)
    try:
        plan = conn.execute("EXPLAIN QUERY PLAN " + render(_sql.LIST_VERSIONS), (CID,)).fetchall()
    finally:
        conn.close()
    assert [row[3] for row in plan] == [
        "SEARCH container_versions USING COVERING INDEX idx_container_versions_listing"
        " (container_id=?)"
    ]
