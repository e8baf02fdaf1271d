"""Retry-safe records (issue 10): record_snapshot is idempotent on the runtime snapshot name.

A snapshot move that faulted after its store write is retried with the same
record; that must return the version written first, never number it again,
including when the doubles race in threads or in processes. Also: upgrading a
database made before migration 2. Run against SQLite and a real PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mcpmanager.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from mcpmanager.store import VersionRecord, VersionStore
from mcpmanager.store.migrations import MIGRATIONS, bootstrap
from tests.unit.test_store import CID, PG, Spec, make_spec, open_store, record, run_processes

DETAILS: dict[str, str] = {
    "display_name": "before upgrade",
    "parent_runtime_snapshot_name": "mcp-bot1-active-1",
    "source": "pre_exec",
}


@pytest.fixture(params=["sqlite", "sqlite-memory", PG])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Spec:
    return make_spec(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", PG])
def shared_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Spec:
    return make_spec(request.param, request, tmp_path)


@pytest.fixture
def store(spec: Spec) -> Iterator[VersionStore]:
    s = open_store(spec)
    try:
        s.upsert_container(CID, "bot1", "memohai/mcp:latest", "overlayfs")
        yield s
    finally:
        s.close()


def test_recording_twice_returns_the_first_version(store: VersionStore) -> None:
    first = record(store, "mcp-bot1-v1", **DETAILS)
    again = record(store, "mcp-bot1-v1", **DETAILS)
    assert again == first
    assert store.list_versions(CID) == [first]
    assert [s.runtime_snapshot_name for s in store.list_snapshots(CID)] == ["mcp-bot1-v1"]
    assert record(store, "mcp-bot1-v2").version == 2  # nothing skipped either


def test_retry_after_a_stripped_name_is_the_same_record(store: VersionStore) -> None:
    first = record(store, "s1", display_name=" shown ")
    assert record(store, " s1 ", display_name="shown") == first


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("display_name", "another name"),
        ("parent_runtime_snapshot_name", "mcp-bot1-active-9"),
        ("source", "manual"),
        ("snapshotter", "native"),
    ],
)
def test_same_name_other_details_is_already_exists(
    store: VersionStore, field: str, value: str
) -> None:
    first = record(store, "s1", **DETAILS)
    before = store.list_snapshots(CID)
    changed: dict[str, Any] = {**DETAILS, field: value}
    with pytest.raises(AlreadyExists, match=r"'s1' of container 'mcp-bot1'.* version 1 .*not"):
        record(store, "s1", **changed)
    assert store.list_versions(CID) == [first]
    assert store.list_snapshots(CID) == before


def test_find_version_by_snapshot(store: VersionStore) -> None:
    assert store.find_version_by_snapshot(CID, "s1") is None
    assert store.find_version_by_snapshot("mcp-nobody", "s1") is None
    record(store, "s0")
    rec = record(store, "s1", **DETAILS)
    assert store.find_version_by_snapshot(CID, "s1") == rec
    assert store.find_version_by_snapshot(CID, " s1 ") == rec
    with pytest.raises(InvalidArgument):
        store.find_version_by_snapshot(CID, " ")
    with pytest.raises(InvalidArgument):
        store.find_version_by_snapshot("", "s1")


def test_unregistered_container_records_nothing(store: VersionStore) -> None:
    with pytest.raises(NotFound, match="mcp-nobody"):
        store.record_snapshot("mcp-nobody", "s1", snapshotter="overlayfs")
    assert store.find_version_by_snapshot("mcp-nobody", "s1") is None


def test_concurrent_doubles_from_threads_give_one_row_each(store: VersionStore) -> None:
    threads, names = 12, [f"mcp-bot1-v{i}" for i in range(10)]
    start = threading.Barrier(threads)

    def work(t: int) -> list[VersionRecord]:
        start.wait(timeout=30)
        # Every thread records every name, each from a different starting point.
        order = names[t % len(names) :] + names[: t % len(names)]
        return [record(store, name, **DETAILS) for name in order]

    with ThreadPoolExecutor(threads) as pool:
        results = [rec for recs in pool.map(work, range(threads)) for rec in recs]
    by_name: dict[str, set[VersionRecord]] = {}
    for rec in results:
        by_name.setdefault(rec.runtime_snapshot_name, set()).add(rec)
    assert all(len(recs) == 1 for recs in by_name.values())  # every caller got the same record
    listed = store.list_versions(CID)
    assert [v.version for v in listed] == list(range(1, len(names) + 1))  # no gap, no double
    assert sorted(v.runtime_snapshot_name for v in listed) == sorted(names)
    assert {v for recs in by_name.values() for v in recs} == set(listed)
    assert len(store.list_snapshots(CID)) == len(names)


def _double_worker(spec: Spec, names: list[str], barrier: Any) -> None:
    store = open_store(spec, migrate=False)
    try:
        barrier.wait(timeout=60)
        for name in names:
            store.record_snapshot(CID, name, snapshotter="overlayfs", source="pre_exec")
    finally:
        store.close()


def test_concurrent_doubles_from_processes_give_one_row_each(shared_spec: Spec) -> None:
    names = [f"mcp-bot1-v{i}" for i in range(30)]
    with open_store(shared_spec) as store:
        store.upsert_container(CID, "bot1", "img", "overlayfs")
        run_processes(
            _double_worker, [(shared_spec, names), (shared_spec, names[::-1]), (shared_spec, names)]
        )
        listed = store.list_versions(CID)
    assert [v.version for v in listed] == list(range(1, len(names) + 1))
    assert sorted(v.runtime_snapshot_name for v in listed) == sorted(names)


# -- a database made before migration 2 --------------------------------------

# Rows as the old code wrote them: snapshot s1 numbered twice (versions 1 and 3).
_LEGACY_ROWS = (
    """INSERT INTO {schema}.schema_migrations (version, name, applied_at)
       VALUES (1, 'init', '2026-01-01T00:00:00.000000+00:00')""",
    """INSERT INTO {schema}.containers (id, bot_id, container_id, container_name, image,
         snapshotter, created_at, updated_at)
       VALUES ('00000000-0000-4000-8000-000000000001', 'bot1', 'mcp-bot1', 'mcp-bot1', 'img',
         'overlayfs', '2026-01-01T00:00:00.000000+00:00', '2026-01-01T00:00:00.000000+00:00')""",
    """INSERT INTO {schema}.snapshots (id, container_id, runtime_snapshot_name, display_name,
         parent_runtime_snapshot_name, snapshotter, source, created_at)
       VALUES ('00000000-0000-4000-8000-0000000000a1', 'mcp-bot1', 's1', 'first', 'active-0',
         'overlayfs', 'manual', '2026-01-01T00:00:01.000000+00:00'),
              ('00000000-0000-4000-8000-0000000000a2', 'mcp-bot1', 's2', NULL, 'active-1',
         'overlayfs', 'pre_exec', '2026-01-01T00:00:02.000000+00:00')""",
    """INSERT INTO {schema}.container_versions (id, container_id, snapshot_id, version,
         created_at)
       VALUES ('00000000-0000-4000-8000-0000000000b1', 'mcp-bot1',
                 '00000000-0000-4000-8000-0000000000a1', 1, '2026-01-01T00:00:01.000000+00:00'),
              ('00000000-0000-4000-8000-0000000000b2', 'mcp-bot1',
                 '00000000-0000-4000-8000-0000000000a2', 2, '2026-01-01T00:00:02.000000+00:00'),
              ('00000000-0000-4000-8000-0000000000b3', 'mcp-bot1',
                 '00000000-0000-4000-8000-0000000000a1', 3, '2026-01-01T00:00:03.000000+00:00')""",
)


def _make_legacy_database(spec: Spec) -> None:
    """Apply migration 1 only, with the raw driver, and write rows the old code wrote."""
    kind, target, schema = spec
    first = MIGRATIONS[0]
    if kind == "sqlite":
        conn = sqlite3.connect(target)
        try:
            with conn:
                for stmt in (bootstrap("sqlite"), *first.sqlite, *_LEGACY_ROWS):
                    conn.execute(stmt.replace("{schema}.", ""))
        finally:
            conn.close()
        return
    import psycopg
    from psycopg import sql

    with psycopg.connect(target) as pg, pg.transaction():
        ident = sql.Identifier(schema)
        pg.execute(sql.SQL("CREATE SCHEMA {}").format(ident))
        for stmt in (bootstrap("postgres"), *first.postgres, *_LEGACY_ROWS):
            pg.execute(sql.SQL(stmt).format(schema=ident))


def test_upgrading_a_version_1_database_keeps_every_version(shared_spec: Spec) -> None:
    _make_legacy_database(shared_spec)
    with open_store(shared_spec) as store:
        listed = store.list_versions(CID)
        assert [(v.version, v.runtime_snapshot_name, v.display_name, v.source) for v in listed] == [
            (1, "s1", "first", "manual"),
            (2, "s2", "", "pre_exec"),
            (3, "s1", "first", "manual"),
        ]
        assert listed[0].id == "00000000-0000-4000-8000-0000000000b1"
        assert store.get_version(CID, 2) == listed[1]
        assert store.find_version_by_snapshot(CID, "s1") == listed[2]  # the newest of two
        again = record(store, "s1", display_name="first", parent_runtime_snapshot_name="active-0")
        assert again == listed[2]
        assert record(store, "s3").version == 4
        store.migrate()
        assert [v.version for v in store.list_versions(CID)] == [1, 2, 3, 4]


def test_a_version_1_database_not_yet_migrated_says_so(shared_spec: Spec) -> None:
    _make_legacy_database(shared_spec)
    with open_store(shared_spec, migrate=False) as store:
        with pytest.raises(
            FailedPrecondition, match=r"list versions of container 'mcp-bot1'.*migrate"
        ):
            store.list_versions(CID)
        store.migrate()
        assert [v.version for v in store.list_versions(CID)] == [1, 2, 3]
