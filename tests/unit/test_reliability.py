"""No false success, no stranded data: the Manager's promises when a step after the data fails."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from mcpmanager import FakeContainerService, Manager, errors
from mcpmanager.store import SQLiteStore
from mcpmanager.types import TaskStatus
from tests.fakes import make_manager
from tests.harness.archives import tgz

BOT = "b"


def data_dir(fake: FakeContainerService, bot: str = BOT) -> Path:
    info = fake.get_container(f"mcp-{bot}")
    return Path(fake.snapshot_path(info.snapshotter, info.snapshot_key), "data")


def running(fake: FakeContainerService, bot: str = BOT) -> bool:
    try:
        return fake.get_task_info(f"mcp-{bot}").status is TaskStatus.RUNNING
    except errors.NotFound:
        return False


@pytest.fixture
def started(manager: Manager, fake: FakeContainerService) -> Manager:
    manager.start(BOT)
    d = data_dir(fake)
    d.mkdir(parents=True, exist_ok=True)
    (d / "keep.txt").write_bytes(b"precious")
    return manager


def test_import_whose_restart_fails_says_so_and_keeps_the_import(
    started: Manager, fake: FakeContainerService
) -> None:
    fake.fail("start_container", errors.Unavailable("runtime is down"))
    with pytest.raises(errors.RestartFailed) as info:
        started.import_data(BOT, tgz({"new.txt": b"in"}))
    message = str(info.value)
    assert "import /data succeeded" in message
    assert "stopped" in message
    assert f"bot {BOT}" in message
    assert (data_dir(fake) / "new.txt").read_bytes() == b"in"
    assert not running(fake)
    started.start(BOT)  # the next start brings it up
    assert running(fake)


def test_export_whose_restart_fails_still_wrote_the_archive(
    started: Manager, fake: FakeContainerService
) -> None:
    fake.fail("start_container", errors.Unavailable("runtime is down"))
    out = io.BytesIO()
    with pytest.raises(errors.RestartFailed, match="export /data succeeded"):
        started.export_data(BOT, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue()), mode="r:gz") as tar:
        assert "keep.txt" in tar.getnames()
    assert isinstance(errors.RestartFailed("x"), errors.Unavailable)


def test_preserve_whose_restart_fails_keeps_the_backup(
    started: Manager, fake: FakeContainerService
) -> None:
    fake.fail("start_container", errors.Unavailable("runtime is down"))
    with pytest.raises(errors.RestartFailed):
        started.preserve_data(BOT)
    assert started.has_preserved_data(BOT)


def test_restore_whose_restart_fails_restores_and_consumes_the_backup(
    started: Manager, fake: FakeContainerService
) -> None:
    started.preserve_data(BOT)
    (data_dir(fake) / "keep.txt").write_bytes(b"overwritten")
    fake.fail("start_container", errors.Unavailable("runtime is down"))
    with pytest.raises(errors.RestartFailed, match="restore /data"):
        started.restore_preserved_data(BOT)
    assert (data_dir(fake) / "keep.txt").read_bytes() == b"precious"
    assert not started.has_preserved_data(BOT)


def test_a_failed_import_whose_restart_also_fails_raises_the_import_error(
    started: Manager, fake: FakeContainerService
) -> None:
    fake.fail("snapshot_mounts", errors.Unavailable("mounts broke"))
    with pytest.raises(errors.Unavailable, match="mounts broke"):
        started.import_data(BOT, tgz({"new.txt": b"in"}))
    assert (data_dir(fake) / "keep.txt").read_bytes() == b"precious"


def test_delete_of_a_missing_bot_with_preserve_is_not_found(manager: Manager) -> None:
    with pytest.raises(errors.NotFound, match="bot ghost"):
        manager.delete("ghost", preserve_data=True)
    assert not manager.has_preserved_data("ghost")


def test_snapshot_data_lists_only_the_bots_own_lineage(
    fake: FakeContainerService, tmp_path: Path
) -> None:
    store = SQLiteStore(str(tmp_path / "v.db"))
    store.migrate()
    manager = make_manager(fake, tmp_path)
    manager._moves.store = store
    manager.init()
    for bot in ("alice", "bob", "alice-v1"):
        manager.start(bot)
    alice = manager.create_version("alice")
    bob = manager.create_version("bob")
    other = manager.create_version("alice-v1")
    data = manager.list_bot_snapshot_data("alice")
    names = {s.name for s in data.runtime_snapshots}
    assert alice.runtime_snapshot_name in names
    assert data.info.snapshot_key in names
    assert bob.runtime_snapshot_name not in names
    assert other.runtime_snapshot_name not in names
    assert not any(n.startswith(("mcp-bob", "mcp-alice-v1-")) for n in names)
    assert "mcp-alice-v1" not in names
    # The ancestry is complete: every parent of a listed snapshot is listed too.
    for snap in data.runtime_snapshots:
        assert not snap.parent or snap.parent in names
    manager.close()


def test_a_retried_version_after_a_fault_is_the_same_version(
    fake: FakeContainerService, tmp_path: Path
) -> None:
    store = SQLiteStore(str(tmp_path / "v.db"))
    store.migrate()
    manager = make_manager(fake, tmp_path)
    manager._moves.store = store
    manager.init()
    manager.start(BOT)
    fake.fail("prepare_snapshot", errors.Unavailable("snapshotter hiccup"))
    with pytest.raises(errors.Unavailable):
        manager.create_version(BOT)
    retried = manager.create_version(BOT)
    assert retried.version == 1
    assert [v.version for v in manager.list_versions(BOT)] == [1]
    assert running(fake)
    assert manager.create_version(BOT).version == 2
    manager.close()
