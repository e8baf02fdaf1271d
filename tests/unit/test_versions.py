"""Snapshots, versions and rollback on the fake, for both stores, with crashes at every step."""

from __future__ import annotations

import _thread
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

from mcpmanager import FakeContainerService, Manager, errors, naming, versions
from mcpmanager._worker import run_to_completion
from mcpmanager.store import PostgresStore, SQLiteStore, VersionRecord, VersionStore
from mcpmanager.types import DeleteContainerOptions, TaskStatus
from mcpmanager.versions import VersionInfo
from tests.fakes import make_manager


class FlakyStore:
    """Wraps a store; ``fail(method)`` makes its next call raise."""

    def __init__(self, inner: VersionStore) -> None:
        self.inner = inner
        self.failing: dict[str, Exception] = {}

    def fail(self, method: str, error: Exception) -> None:
        self.failing[method] = error

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.failing:
            return attr

        def broken(*args: object, **kwargs: object) -> object:
            raise self.failing.pop(name)

        return broken


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VersionStore]:
    if request.param == "sqlite":
        s: VersionStore = SQLiteStore(str(tmp_path / "versions.db"))
    else:
        conninfo = request.getfixturevalue("postgres_conninfo")
        schema = request.getfixturevalue("postgres_schema")
        s = PostgresStore(conninfo, schema=schema)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def flaky(store: VersionStore) -> FlakyStore:
    return FlakyStore(store)


@pytest.fixture
def vm(fake: FakeContainerService, tmp_path: Path, flaky: FlakyStore) -> Iterator[Manager]:
    m = make_manager(fake, tmp_path)
    m._moves.store = flaky  # type: ignore[assignment]
    m.init()
    yield m
    m.close()


def data_file(fake: FakeContainerService, bot: str, name: str = "f.txt") -> Path:
    info = fake.get_container(f"mcp-{bot}")
    return Path(fake.snapshot_path(info.snapshotter, info.snapshot_key), "data", name)


def running(fake: FakeContainerService, bot: str) -> bool:
    try:
        return fake.get_task_info(f"mcp-{bot}").status is TaskStatus.RUNNING
    except errors.NotFound:
        return False


def test_versions_and_rollback(vm: Manager, fake: FakeContainerService) -> None:
    vm.start("b")
    for n in (1, 2, 3):
        data_file(fake, "b").write_text(f"content {n}")
        info = vm.create_version("b")
        assert info.version == n
        assert info.snapshot_name == f"Version {n}"
        assert info.created_at.tzinfo is not None
        assert running(fake, "b")
        assert vm.container_ip("b")
    data_file(fake, "b").write_text("after 3")
    listed = vm.list_versions("b")
    assert [v.version for v in listed] == [1, 2, 3]
    assert vm.version_snapshot_name("b", 2) == listed[1].runtime_snapshot_name
    for n in (1, 3, 2):
        vm.rollback_version("b", n)
        assert data_file(fake, "b").read_text() == f"content {n}"
        assert running(fake, "b")
        assert vm.container_ip("b")
    events = [e.event_type for e in vm._moves.store.list_events("mcp-b")]  # type: ignore[union-attr]
    assert events == ["version_create"] * 3 + ["version_rollback"] * 3


def test_version_of_stopped_bot_stays_stopped(vm: Manager, fake: FakeContainerService) -> None:
    vm.ensure_bot("b")
    data_file(fake, "b").write_text("x")
    vm.create_version("b")
    assert not running(fake, "b")
    assert data_file(fake, "b").read_text() == "x"


def test_named_snapshot_and_metadata(vm: Manager, fake: FakeContainerService) -> None:
    vm.start("b")
    snap = vm.create_snapshot("b", "  before upgrade ")
    assert (snap.snapshot_name, snap.display_name, snap.version) == (
        "before upgrade",
        "before upgrade",
        1,
    )
    assert snap.runtime_snapshot_name.startswith("mcp-b-snapshot-")
    unnamed = vm.create_snapshot("b")
    assert unnamed.snapshot_name == "Version 2"
    data = vm.list_bot_snapshot_data("b")
    assert data.container_id == "mcp-b"
    assert data.snapshotter == "overlayfs"
    names = {s.name for s in data.runtime_snapshots}
    assert {snap.runtime_snapshot_name, unnamed.runtime_snapshot_name} <= names
    meta = data.managed_meta[snap.runtime_snapshot_name]
    assert (meta.source, meta.version, meta.display_name) == ("manual", 1, "before upgrade")
    assert data.managed_meta[unnamed.runtime_snapshot_name].version == 2
    committed = {s.name: s for s in data.runtime_snapshots}[snap.runtime_snapshot_name]
    assert committed.labels.get(naming.BOT_LABEL_KEY) == "b"  # (containerd adds its GC root)


@pytest.mark.parametrize("bad", [0, -1, 2**31, True, "1", 1.0])
def test_out_of_range_versions(vm: Manager, bad: object) -> None:
    vm.start("b")
    with pytest.raises(errors.InvalidArgument):
        vm.rollback_version("b", bad)  # type: ignore[arg-type]
    with pytest.raises(errors.InvalidArgument):
        vm.version_snapshot_name("b", bad)  # type: ignore[arg-type]


def test_missing_version(vm: Manager, fake: FakeContainerService) -> None:
    vm.start("b")
    vm.create_version("b")
    fake.calls.clear()
    with pytest.raises(errors.NotFound, match="bot b"):
        vm.rollback_version("b", 2)
    with pytest.raises(errors.NotFound):
        vm.version_snapshot_name("b", 7)
    assert not any(c.method == "stop_container" for c in fake.calls)


def test_without_store(manager: Manager) -> None:
    manager.start("b")
    for call in (
        lambda: manager.create_snapshot("b"),
        lambda: manager.create_version("b"),
        lambda: manager.list_versions("b"),
        lambda: manager.rollback_version("b", 1),
        lambda: manager.version_snapshot_name("b", 1),
    ):
        with pytest.raises(errors.FailedPrecondition, match=r"^bot b: .*version store"):
            call()
    data = manager.list_bot_snapshot_data("b")
    assert data.managed_meta == {}
    assert data.runtime_snapshots


# Each step of the move, the failure there, and whether the version is there after reconcile.
RUNTIME_STEPS = [
    ("stop_container", 0),
    ("commit_snapshot", 0),
    ("prepare_snapshot", 1),
    ("delete_container", 1),
    ("create_container_from_snapshot", 1),
    ("start_container", 1),
    ("setup_network", 1),
]
STORE_STEPS = [("record_snapshot", 1), ("add_event", 1)]


@pytest.mark.parametrize(("step", "kept"), RUNTIME_STEPS + STORE_STEPS)
def test_crash_at_each_step_then_reconcile(
    vm: Manager, fake: FakeContainerService, flaky: FlakyStore, step: str, kept: int
) -> None:
    vm.start("b")
    data_file(fake, "b").write_text("precious")
    crash = errors.Unavailable(f"crash at {step}")
    if (step, kept) in STORE_STEPS:
        flaky.fail(step, crash)
    else:
        fake.fail(step, crash)
    with pytest.raises(errors.Unavailable, match=f"crash at {step}"):
        vm.create_version("b")
    results = vm.reconcile("b")
    assert [r.bot_id for r in results] == ["b"]
    assert results[0].action != "nothing to do"
    assert data_file(fake, "b").read_text() == "precious"
    assert running(fake, "b")
    assert vm.container_ip("b")
    assert [v.version for v in vm.list_versions("b")] == list(range(1, kept + 1))
    assert vm.reconcile("b")[0].action == "nothing to do"
    assert vm.create_version("b").version == kept + 1  # the bot works normally again


def test_crash_during_rollback_then_reconcile(vm: Manager, fake: FakeContainerService) -> None:
    vm.start("b")
    data_file(fake, "b").write_text("v1")
    vm.create_version("b")
    data_file(fake, "b").write_text("now")
    fake.fail("create_container_from_snapshot", errors.Unavailable("crash"))
    with pytest.raises(errors.Unavailable):
        vm.rollback_version("b", 1)
    assert vm.reconcile()[0].bot_id == "b"
    assert data_file(fake, "b").read_text() == "v1"
    assert running(fake, "b")


def test_orphaned_active_snapshot_is_rescued_on_start(
    vm: Manager, fake: FakeContainerService
) -> None:
    vm.start("b")
    vm.create_version("b")  # the container now lives on mcp-b-active-<ns>
    data_file(fake, "b").write_text("survivor")
    key = fake.get_container("mcp-b").snapshot_key
    fake.stop_container("mcp-b")
    fake.delete_task("mcp-b")
    fake.delete_container("mcp-b", DeleteContainerOptions(cleanup_snapshot=False))
    vm.start("b")
    assert fake.get_container("mcp-b").snapshot_key == key
    assert data_file(fake, "b").read_text() == "survivor"


def test_reconcile_all_finds_orphans(vm: Manager, fake: FakeContainerService) -> None:
    for bot in ("x", "y"):
        vm.start(bot)
        data_file(fake, bot).write_text(bot)
    fake.stop_container("mcp-x")
    fake.delete_task("mcp-x")
    fake.delete_container("mcp-x", DeleteContainerOptions(cleanup_snapshot=False))
    results = vm.reconcile()
    assert [(r.bot_id, r.snapshot) for r in results] == [("x", "mcp-x")]
    assert data_file(fake, "x").read_text() == "x"
    assert running(fake, "x")


def test_parallel_versions_from_threads(vm: Manager) -> None:
    vm.start("b")
    got: list[int] = []
    failures: list[BaseException] = []

    def make() -> None:
        try:
            got.append(vm.create_version("b").version)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
    assert sorted(got) == list(range(1, 9))


def test_interrupted_move_runs_to_completion() -> None:
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def move() -> int:
        started.set()
        release.wait(10)
        finished.set()
        return 42

    def interrupter() -> None:
        started.wait(10)
        _thread.interrupt_main()
        release.set()

    threading.Thread(target=interrupter, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_to_completion(move, "test-move")
    assert finished.is_set()


def test_rollback_then_delete_leaves_nothing_to_resurrect(
    vm: Manager, fake: FakeContainerService
) -> None:
    vm.start("b")
    data_file(fake, "b").write_text("v1")
    vm.create_version("b")
    data_file(fake, "b").write_text("after v1")
    abandoned = fake.get_container("mcp-b").snapshot_key
    vm.rollback_version("b", 1)
    assert abandoned not in {s.name for s in fake.list_snapshots("overlayfs")}
    vm.delete("b")
    vm.start("b")
    assert not data_file(fake, "b").exists()  # a fresh bot, not the rolled-back-from data


def test_delete_removes_leftover_active_snapshots(vm: Manager, fake: FakeContainerService) -> None:
    vm.start("b")
    vm.create_version("b")
    fake.prepare_snapshot("overlayfs", "mcp-b-active-1", vm.version_snapshot_name("b", 1))
    vm.delete("b")
    owned = [s.name for s in fake.list_snapshots("overlayfs") if s.kind == "active"]
    assert owned == []


def test_worker_threads_keep_the_bot_context() -> None:
    from mcpmanager._log import bot_context, current_bot

    with bot_context("ctx-bot"):
        seen = run_to_completion(current_bot, "ctx-test")
    assert seen == "ctx-bot"
    assert current_bot() == ""


def test_infos_are_the_views_of_makes_one_by_one() -> None:
    at = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
    records = [
        VersionRecord(
            id=f"id-{n}",
            container_id="mcp-b",
            version=n,
            runtime_snapshot_name=f"mcp-b-v{n}",
            display_name=display,
            source="pre_exec",
            created_at=at,
        )
        for n, display in [(1, ""), (2, "  before upgrade "), (3, "x")]
    ]
    built = versions.infos(records)
    one_by_one = [VersionInfo.of(r) for r in records]
    assert built == one_by_one
    assert [repr(b) for b in built] == [repr(o) for o in one_by_one]
    assert [hash(b) for b in built] == [hash(o) for o in one_by_one]
    assert [b.snapshot_name for b in built] == ["Version 1", "before upgrade", "x"]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built[0].version = 9  # type: ignore[misc]
    assert versions.infos([]) == []
