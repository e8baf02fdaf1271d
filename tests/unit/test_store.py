"""Behaviour every VersionStore must share, run against SQLite and a real PostgreSQL."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

from mcpmanager.errors import InvalidArgument, NotFound
from mcpmanager.store import (
    PostgresStore,
    SnapshotRecord,
    SQLiteStore,
    VersionRecord,
    VersionStore,
)

CID = "mcp-bot1"
Spec = tuple[str, str, str]  # (kind, sqlite path or conninfo, schema): picklable for spawn


def open_store(spec: Spec, *, migrate: bool = True) -> VersionStore:
    """Build a store from a spec; used by the tests and by spawned worker processes."""
    kind, target, schema = spec
    if kind == "sqlite":
        return SQLiteStore(target, auto_migrate=migrate)
    store = PostgresStore(target, schema=schema)
    if migrate:
        store.migrate()
    return store


def make_spec(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Spec:
    if kind == "sqlite":
        return ("sqlite", str(tmp_path / "store.db"), "")
    if kind == "sqlite-memory":
        return ("sqlite", ":memory:", "")
    conninfo = request.getfixturevalue("postgres_conninfo")
    return ("postgres", conninfo, request.getfixturevalue("postgres_schema"))


PG = pytest.param("postgres", marks=pytest.mark.integration)


@pytest.fixture(params=["sqlite", "sqlite-memory", PG])
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> Spec:
    return make_spec(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", PG])
def shared_spec(request: pytest.FixtureRequest, tmp_path: Path) -> Spec:
    """A database several store objects (or processes) can open: not ``:memory:``."""
    return make_spec(request.param, request, tmp_path)


@pytest.fixture
def store(spec: Spec) -> Iterator[VersionStore]:
    s = open_store(spec)
    try:
        s.upsert_container(CID, "bot1", "memohai/mcp:latest", "overlayfs")
        yield s
    finally:
        s.close()


def record(s: VersionStore, name: str, **kw: Any) -> VersionRecord:
    kw.setdefault("snapshotter", "overlayfs")
    return s.record_snapshot(CID, name, **kw)


def test_is_a_version_store(store: VersionStore) -> None:
    assert isinstance(store, VersionStore)


def test_migrate_twice_keeps_data(store: VersionStore) -> None:
    record(store, "snap-1")
    store.migrate()
    store.migrate()
    assert [v.version for v in store.list_versions(CID)] == [1]


def test_record_list_get(store: VersionStore) -> None:
    first = record(store, "mcp-bot1-v1", parent_runtime_snapshot_name="active-0", source="pre_exec")
    second = record(
        store, " named ", display_name=" Before upgrade ", parent_runtime_snapshot_name=""
    )
    assert (first.version, second.version) == (1, 2)
    assert first.source == "pre_exec"
    assert second.source == "manual"
    assert second.display_name == "Before upgrade"
    assert first.display_name == ""
    assert second.runtime_snapshot_name == "named"
    assert first.created_at.utcoffset() == timedelta(0)
    listed = store.list_versions(CID)
    assert listed == [first, second]
    assert store.get_version(CID, 2) == second
    assert len({first.id, second.id}) == 2


def test_listed_versions_are_the_records_the_constructor_makes(store: VersionStore) -> None:
    """list_versions builds records without attrs' __init__: they must not differ at all."""
    made = [
        record(store, f"mcp-bot1-v{i}", display_name=name, source=source)
        for i, (name, source) in enumerate(
            [("", "pre_exec"), ("Before upgrade", "manual"), ("ünïcødé ✓", "rollback")] * 3
        )
    ]
    listed = store.list_versions(CID)
    one_by_one = [store.get_version(CID, n) for n in range(1, len(made) + 1)]
    assert listed == one_by_one == made
    for fast, slow in zip(listed, one_by_one, strict=True):
        assert type(fast) is VersionRecord
        assert repr(fast) == repr(slow)
        assert hash(fast) == hash(slow)
        assert attrs.asdict(fast) == attrs.asdict(slow)
        assert fast.created_at.tzinfo is timezone.utc
        assert type(fast.version) is int
        assert type(fast.id) is str
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            fast.version = 99  # type: ignore[misc]
        assert attrs.evolve(fast, display_name="x").display_name == "x"


def test_list_snapshots_with_versions(store: VersionStore) -> None:
    record(store, "s1", parent_runtime_snapshot_name="active-0", display_name="one")
    record(store, "s2", parent_runtime_snapshot_name="active-1")
    snaps = {s.runtime_snapshot_name: s for s in store.list_snapshots(CID)}
    assert set(snaps) == {"s1", "s2"}
    s1 = snaps["s1"]
    assert isinstance(s1, SnapshotRecord)
    assert (s1.version, s1.display_name, s1.parent_runtime_snapshot_name) == (1, "one", "active-0")
    assert (s1.snapshotter, s1.source, s1.container_id) == ("overlayfs", "manual", CID)
    assert snaps["s2"].version == 2
    assert snaps["s2"].display_name == ""
    assert snaps["s2"].parent_runtime_snapshot_name == "active-1"
    stamps = [s.created_at for s in store.list_snapshots(CID)]
    assert stamps == sorted(stamps, reverse=True)


def test_unknown_container_and_version(store: VersionStore) -> None:
    assert store.list_versions("mcp-nobody") == []
    assert store.list_snapshots("mcp-nobody") == []
    assert store.list_events("mcp-nobody") == []
    with pytest.raises(NotFound, match=r"version 7 .*mcp-bot1"):
        store.get_version(CID, 7)
    with pytest.raises(NotFound, match="mcp-nobody"):
        store.record_snapshot("mcp-nobody", "s", snapshotter="overlayfs")
    with pytest.raises(NotFound, match="mcp-nobody"):
        store.add_event("mcp-nobody", "version_create", {})
    with pytest.raises(NotFound, match="mcp-nobody"):
        store.get_container("mcp-nobody")


@pytest.mark.parametrize("version", [0, -1, 2**31, True, "1"])
def test_get_version_out_of_range(store: VersionStore, version: Any) -> None:
    with pytest.raises(InvalidArgument):
        store.get_version(CID, version)


def test_invalid_arguments(store: VersionStore) -> None:
    with pytest.raises(InvalidArgument):
        store.record_snapshot(" ", "s", snapshotter="overlayfs")
    with pytest.raises(InvalidArgument):
        store.record_snapshot(CID, "", snapshotter="overlayfs")
    with pytest.raises(InvalidArgument):
        store.record_snapshot(CID, "s", snapshotter="")
    with pytest.raises(InvalidArgument, match="not JSON"):
        store.add_event(CID, "x", {"when": object()})
    assert store.list_versions(CID) == []


def test_events_round_trip_in_order(store: VersionStore) -> None:
    payloads = [{"version": i, "nested": {"names": ["a", "b"], "ok": True}} for i in range(5)]
    for p in payloads:
        store.add_event(CID, "version_create", p)
    store.add_event(CID, "version_rollback", {})
    events = store.list_events(CID)
    assert [e.event_type for e in events] == ["version_create"] * 5 + ["version_rollback"]
    assert [e.payload for e in events] == [*payloads, {}]
    assert len({e.id for e in events}) == 6
    assert all(e.container_id == CID and e.created_at.tzinfo for e in events)


def test_upsert_container_updates(store: VersionStore) -> None:
    before = store.get_container(CID)
    store.upsert_container(CID, "bot1", "memohai/mcp:v2", "native")
    after = store.get_container(CID)
    assert (after.image, after.snapshotter, after.bot_id) == ("memohai/mcp:v2", "native", "bot1")
    assert after.id == before.id
    assert after.created_at == before.created_at


def test_delete_container_cascades(store: VersionStore) -> None:
    record(store, "s1")
    store.add_event(CID, "snapshot_create", {"v": 1})
    store.delete_container(CID)
    store.delete_container(CID)
    assert store.list_versions(CID) == []
    assert store.list_snapshots(CID) == []
    assert store.list_events(CID) == []
    store.upsert_container(CID, "bot1", "img", "overlayfs")
    assert record(store, "s1").version == 1


def test_gapless_numbering_from_16_threads(store: VersionStore) -> None:
    threads, each = 16, 8
    start = threading.Barrier(threads)

    def work(t: int) -> list[int]:
        start.wait(timeout=30)
        return [record(store, f"t{t}-{i}").version for i in range(each)]

    with ThreadPoolExecutor(threads) as pool:
        got = [v for vs in pool.map(work, range(threads)) for v in vs]
    assert sorted(got) == list(range(1, threads * each + 1))
    listed = store.list_versions(CID)
    assert [v.version for v in listed] == list(range(1, threads * each + 1))
    assert len({v.runtime_snapshot_name for v in listed}) == threads * each


def _record_worker(spec: Spec, prefix: str, count: int, barrier: Any) -> None:
    store = open_store(spec, migrate=False)
    try:
        barrier.wait(timeout=60)
        for i in range(count):
            store.record_snapshot(CID, f"{prefix}-{i}", snapshotter="overlayfs")
    finally:
        store.close()


def _migrate_worker(spec: Spec, barrier: Any) -> None:
    store = open_store(spec, migrate=False)
    try:
        barrier.wait(timeout=60)
        store.migrate()
    finally:
        store.close()


def run_processes(target: Any, args_per_process: list[tuple[Any, ...]]) -> None:
    """Start spawn processes that meet at a barrier; fail unless all exit 0."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(args_per_process))
    procs = [ctx.Process(target=target, args=(*a, barrier)) for a in args_per_process]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=120)
        assert [p.exitcode for p in procs] == [0] * len(procs)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()


def test_gapless_numbering_from_two_processes(shared_spec: Spec) -> None:
    count = 40
    with open_store(shared_spec) as store:
        store.upsert_container(CID, "bot1", "img", "overlayfs")
        run_processes(_record_worker, [(shared_spec, "p0", count), (shared_spec, "p1", count)])
        versions = [v.version for v in store.list_versions(CID)]
    assert versions == list(range(1, 2 * count + 1))


def test_two_processes_migrate_at_once(shared_spec: Spec) -> None:
    run_processes(_migrate_worker, [(shared_spec,), (shared_spec,)])
    with open_store(shared_spec, migrate=False) as s:
        s.upsert_container(CID, "bot1", "img", "overlayfs")
        assert s.record_snapshot(CID, "s", snapshotter="overlayfs").version == 1
