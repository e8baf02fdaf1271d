"""PostgresStore specifics: schema isolation, pools, error mapping, concurrent migrate."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timezone

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import ConnectionPool

from mcpmanager.errors import FailedPrecondition, InvalidArgument, Unavailable
from mcpmanager.store import PostgresStore, VersionRecord, _pg
from mcpmanager.store.migrations import MIGRATIONS
from tests.harness.postgres import free_port

CID = "mcp-bot1"

pytestmark = pytest.mark.integration


@pytest.fixture
def pg(postgres_conninfo: str, postgres_schema: str) -> Iterator[PostgresStore]:
    store = PostgresStore(postgres_conninfo, schema=postgres_schema, timeout=10.0)
    try:
        store.migrate()
        store.upsert_container(CID, "bot1", "img", "overlayfs")
        yield store
    finally:
        store.close()


def tables_in(conninfo: str, schema: str) -> set[str]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {r[0] for r in rows}


def test_tables_live_in_their_own_schema(
    pg: PostgresStore, postgres_conninfo: str, postgres_schema: str
) -> None:
    expected = {"schema_migrations", "containers", "snapshots", "container_versions"}
    assert tables_in(postgres_conninfo, postgres_schema) == expected | {"lifecycle_events"}
    assert tables_in(postgres_conninfo, "public") == set()
    with psycopg.connect(postgres_conninfo) as conn:
        ident = sql.Identifier(postgres_schema)
        q = sql.SQL("SELECT version, name FROM {}.schema_migrations").format(ident)
        rows = conn.execute(q).fetchall()
    assert rows == [(m.version, m.name) for m in MIGRATIONS]


def test_shares_a_database_with_another_schema(pg: PostgresStore, postgres_conninfo: str) -> None:
    with psycopg.connect(postgres_conninfo, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA app_other")
        try:
            conn.execute("CREATE TABLE app_other.containers (id int, note text)")
            conn.execute("INSERT INTO app_other.containers VALUES (1, 'host app row')")
            pg.record_snapshot(CID, "s1", snapshotter="overlayfs")
            pg.migrate()
            pg.delete_container(CID)
            rows = conn.execute("SELECT * FROM app_other.containers").fetchall()
            assert rows == [(1, "host app row")]
            assert tables_in(postgres_conninfo, "app_other") == {"containers"}
        finally:
            conn.execute("DROP SCHEMA app_other CASCADE")


def test_two_schemas_are_independent(pg: PostgresStore, postgres_conninfo: str) -> None:
    pg.record_snapshot(CID, "s1", snapshotter="overlayfs")
    with PostgresStore(postgres_conninfo, schema="t_second_store") as other:
        try:
            other.migrate()
            other.upsert_container(CID, "bot1", "img", "overlayfs")
            assert other.list_versions(CID) == []
            assert other.record_snapshot(CID, "x", snapshotter="native").version == 1
            assert [v.runtime_snapshot_name for v in pg.list_versions(CID)] == ["s1"]
        finally:
            with psycopg.connect(postgres_conninfo, autocommit=True) as conn:
                conn.execute("DROP SCHEMA IF EXISTS t_second_store CASCADE")


@pytest.mark.parametrize("schema", ["", "1abc", "a-b", 'x"; DROP', "a" * 64])
def test_rejects_bad_schema_names(schema: str) -> None:
    with pytest.raises(InvalidArgument):
        PostgresStore("host=127.0.0.1", schema=schema)


def test_unreachable_server_is_unavailable() -> None:
    conninfo = f"host=127.0.0.1 port={free_port()} user=nobody dbname=x connect_timeout=1"
    with PostgresStore(conninfo, timeout=0.5) as store, pytest.raises(Unavailable, match=CID):
        store.list_versions(CID)
    with PostgresStore(conninfo, timeout=0.5) as store:
        with pytest.raises(Unavailable, match="open store"):
            store.open()
        with pytest.raises(Unavailable, match="record snapshot 's1' of container 'mcp-bot1'"):
            store.record_snapshot(CID, "s1", snapshotter="overlayfs")


def test_not_migrated_is_failed_precondition(postgres_conninfo: str, postgres_schema: str) -> None:
    store = PostgresStore(postgres_conninfo, schema=postgres_schema)
    with store, pytest.raises(FailedPrecondition, match="migrate"):
        store.list_versions(CID)


def test_closed_store_is_failed_precondition(pg: PostgresStore) -> None:
    pg.close()
    pg.close()
    with pytest.raises(FailedPrecondition, match="closed"):
        pg.list_versions(CID)


def test_recovers_after_connections_are_killed(pg: PostgresStore, postgres_conninfo: str) -> None:
    pg.record_snapshot(CID, "s1", snapshotter="overlayfs")
    with psycopg.connect(postgres_conninfo, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        ).fetchone()
    assert killed is not None
    assert killed[0] >= 1
    assert [v.version for v in pg.list_versions(CID)] == [1]


def test_uses_a_caller_pool_without_closing_it(
    postgres_conninfo: str, postgres_schema: str
) -> None:
    with ConnectionPool(postgres_conninfo, min_size=1, max_size=2, open=True) as pool:
        with PostgresStore(pool, schema=postgres_schema) as store:
            store.migrate()
            store.upsert_container(CID, "bot1", "img", "overlayfs")
            assert store.record_snapshot(CID, "s1", snapshotter="overlayfs").version == 1
        assert not pool.closed
        with pool.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def record_some(store: PostgresStore, count: int) -> list[VersionRecord]:
    names = ["", "Before upgrade", "ünïcødé ✓"]
    return [
        store.record_snapshot(
            CID, f"s{i}", display_name=names[i % 3], snapshotter="overlayfs", source="pre_exec"
        )
        for i in range(count)
    ]


def test_listing_streams_in_chunks(pg: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Several streamed chunks, and no streaming at all (libpq < 17), list the same records."""
    made = record_some(pg, 7)
    one_by_one = [pg.get_version(CID, n) for n in range(1, 8)]
    monkeypatch.setattr(_pg, "STREAM_CHUNK", 2)
    assert pg.list_versions(CID) == one_by_one == made
    monkeypatch.setattr(_pg, "_CHUNKED", False)
    assert pg.list_versions(CID) == one_by_one
    assert [repr(r) for r in pg.list_versions(CID)] == [repr(r) for r in one_by_one]


def test_listing_on_a_session_in_another_time_zone(
    postgres_conninfo: str, postgres_schema: str
) -> None:
    """A caller's pool need not be in UTC: timestamps still come back as UTC datetimes."""
    kwargs = {"autocommit": True, "options": "-c TimeZone=Asia/Kathmandu"}
    with (
        ConnectionPool(postgres_conninfo, min_size=1, max_size=1, kwargs=kwargs) as pool,
        PostgresStore(pool, schema=postgres_schema) as store,
    ):
        store.migrate()
        store.upsert_container(CID, "bot1", "img", "overlayfs")
        made = record_some(store, 3)
        listed = store.list_versions(CID)
        assert listed == made == [store.get_version(CID, n) for n in (1, 2, 3)]
        assert all(r.created_at.tzinfo is timezone.utc for r in listed)
        with pool.connection() as conn:
            assert str(conn.info.timezone) == "Asia/Kathmandu"
