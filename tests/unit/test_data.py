"""Export, import, preserve and restore of /data on the fake, including every failure path."""

from __future__ import annotations

import io
import logging
import os
import tarfile
from pathlib import Path

import pytest

from mcpmanager import FakeContainerService, Manager, archive, data, errors
from mcpmanager.types import TaskStatus
from tests.unit.test_archive import BAD, add_file, make_tgz


def data_dir(fake: FakeContainerService, bot: str) -> Path:
    info = fake.get_container(f"mcp-{bot}")
    return Path(fake.snapshot_path(info.snapshotter, info.snapshot_key)) / "data"


def running(fake: FakeContainerService, bot: str) -> bool:
    try:
        return fake.get_task_info(f"mcp-{bot}").status is TaskStatus.RUNNING
    except errors.NotFound:
        return False


def seed(fake: FakeContainerService, bot: str) -> Path:
    d = data_dir(fake, bot)
    (d / "notes").mkdir(parents=True, exist_ok=True)
    (d / "notes" / "a.txt").write_text("alpha")
    (d / "empty").mkdir(exist_ok=True)
    os.chmod(d / "notes" / "a.txt", 0o640)
    os.symlink("notes/a.txt", d / "link")
    return d


def export(manager: Manager, bot: str) -> io.BytesIO:
    buf = io.BytesIO()
    assert manager.export_data(bot, buf) == len(buf.getvalue())
    buf.seek(0)
    return buf


def test_export_import_round_trip(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("src")
    seed(fake, "src")
    pid = fake.get_task_info("mcp-src").pid
    buf = export(manager, "src")
    assert running(fake, "src")
    assert fake.get_task_info("mcp-src").pid != pid
    assert manager.container_ip("src")
    manager.start("dst")
    manager.import_data("dst", buf)
    d = data_dir(fake, "dst")
    assert (d / "notes" / "a.txt").read_text() == "alpha"
    assert (d / "empty").is_dir()
    assert os.readlink(d / "link") == "notes/a.txt"
    assert os.stat(d / "notes" / "a.txt").st_mode & 0o777 == 0o640
    assert running(fake, "dst")
    assert manager.container_ip("dst")


def test_export_of_stopped_bot_leaves_it_stopped(
    manager: Manager, fake: FakeContainerService
) -> None:
    manager.ensure_bot("b")
    seed(fake, "b")
    names = {m.name for m in archive.checked_archive(export(manager, "b"))}
    assert "notes/a.txt" in names
    assert not running(fake, "b")


def test_export_without_data_dir_is_empty_archive(
    manager: Manager, fake: FakeContainerService
) -> None:
    manager.ensure_bot("b")
    data_dir(fake, "b").rmdir()
    assert archive.checked_archive(export(manager, "b")) == []


def test_export_unknown_bot(manager: Manager) -> None:
    with pytest.raises(errors.NotFound, match="bot ghost"):
        manager.export_data("ghost", io.BytesIO())


def test_import_merges_into_existing_data(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b")
    d = seed(fake, "b")
    (d / "keep.txt").write_text("kept")
    manager.import_data("b", make_tgz(lambda t: add_file(t, "notes/a.txt", b"replaced")))
    assert (d / "keep.txt").read_text() == "kept"
    assert (d / "notes" / "a.txt").read_text() == "replaced"


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_archive_changes_nothing(
    manager: Manager, fake: FakeContainerService, kind: str
) -> None:
    manager.start("b")
    d = seed(fake, "b")
    fake.calls.clear()
    bad = make_tgz(lambda t: (add_file(t, "notes/a.txt", b"overwritten"), BAD[kind](t)))
    with pytest.raises(errors.InvalidArgument):
        manager.import_data("b", bad)
    assert fake.calls == []  # refused before stopping or touching anything
    assert (d / "notes" / "a.txt").read_text() == "alpha"


def test_import_failure_midway_keeps_old_data_and_restarts(
    manager: Manager, fake: FakeContainerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.start("b")
    d = seed(fake, "b")

    def broken_merge(staged_fd: int, dest_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(archive, "merge_tree_at", broken_merge)
    with pytest.raises(errors.MCPManagerError, match="No space left"):
        manager.import_data("b", make_tgz(lambda t: add_file(t, "notes/a.txt", b"new")))
    assert (d / "notes" / "a.txt").read_text() == "alpha"
    assert not [p for p in d.parent.iterdir() if p.name.startswith(".mcp-import-")]
    assert running(fake, "b")
    assert manager.container_ip("b")


def test_export_failure_restarts(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b")
    seed(fake, "b")

    class Broken(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b: object) -> int:
            raise OSError(5, "I/O error")

    with pytest.raises(errors.MCPManagerError, match="I/O error"):
        manager.export_data("b", Broken())  # type: ignore[arg-type]
    assert running(fake, "b")
    assert manager.container_ip("b")


def test_stop_failure_during_export_changes_nothing(
    manager: Manager, fake: FakeContainerService
) -> None:
    manager.start("b")
    ip = manager.container_ip("b")
    fake.fail("stop_container", errors.Unavailable("shim gone"))
    with pytest.raises(errors.Unavailable):
        manager.export_data("b", io.BytesIO())
    assert running(fake, "b")
    assert manager.container_ip("b") == ip


def test_preserve_delete_start_restore(
    manager: Manager, fake: FakeContainerService, tmp_path: Path
) -> None:
    manager.start("b")
    seed(fake, "b")
    assert not manager.has_preserved_data("b")
    manager.delete("b", preserve_data=True)
    assert manager.list_bots() == []
    backup = data.backup_path(manager.config.data_root, "b")
    assert os.path.isfile(backup)
    assert manager.has_preserved_data("b")
    manager.start("b")
    assert not (data_dir(fake, "b") / "notes").exists()
    manager.restore_preserved_data("b")
    assert (data_dir(fake, "b") / "notes" / "a.txt").read_text() == "alpha"
    assert not os.path.exists(backup)
    assert not manager.has_preserved_data("b")
    assert running(fake, "b")


def test_preserve_standalone_keeps_bot_running(
    manager: Manager, fake: FakeContainerService
) -> None:
    manager.start("b")
    seed(fake, "b")
    manager.preserve_data("b")
    assert running(fake, "b")
    assert manager.has_preserved_data("b")


@pytest.mark.parametrize("step", ["stop_container", "snapshot_mounts", "get_container"])
def test_delete_with_failing_backup_keeps_everything(
    manager: Manager, fake: FakeContainerService, step: str
) -> None:
    manager.start("b")
    d = seed(fake, "b")
    fake.fail(step, errors.Unavailable(f"{step} broke"))
    with pytest.raises(errors.DataLossPrevented, match=f"{step} broke") as info:
        manager.delete("b", preserve_data=True)
    assert isinstance(info.value.__cause__, errors.Unavailable)
    assert manager.list_bots() == ["b"]
    assert (d / "notes" / "a.txt").read_text() == "alpha"
    assert running(fake, "b")
    backups = Path(manager.config.data_root, "backups")
    assert not backups.exists() or list(backups.iterdir()) == []


def test_delete_with_failing_write_leaves_no_partial_file(
    manager: Manager, fake: FakeContainerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager.start("b")
    seed(fake, "b")
    backups = Path(manager.config.data_root, "backups")
    backups.mkdir(parents=True)
    (backups / "b.tar.gz").write_bytes(b"older backup")

    def disk_full(dest: object, src: object) -> int:
        assert hasattr(dest, "write")
        dest.write(b"partial")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(archive, "write_tree_at", disk_full)
    with pytest.raises(errors.DataLossPrevented, match="No space left"):
        manager.delete("b", preserve_data=True)
    assert sorted(p.name for p in backups.iterdir()) == ["b.tar.gz"]
    assert (backups / "b.tar.gz").read_bytes() == b"older backup"
    assert running(fake, "b")
    assert manager.list_bots() == ["b"]


def test_restore_failure_keeps_backup(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b")
    seed(fake, "b")
    manager.preserve_data("b")
    fake.fail("snapshot_mounts", errors.Unavailable("mount broke"))
    with pytest.raises(errors.Unavailable):
        manager.restore_preserved_data("b")
    assert manager.has_preserved_data("b")


def test_restore_without_anything(manager: Manager) -> None:
    manager.ensure_bot("b")
    with pytest.raises(errors.NotFound, match="no backup"):
        manager.restore_preserved_data("b")


def test_legacy_directory_import(manager: Manager, fake: FakeContainerService) -> None:
    legacy = Path(data.legacy_dir(manager.config.data_root, "b"))
    (legacy / "mem").mkdir(parents=True)
    (legacy / "mem" / "MEMORY.md").write_text("remember")
    assert manager.has_preserved_data("b")
    manager.start("b")
    manager.restore_preserved_data("b")
    assert (data_dir(fake, "b") / "mem" / "MEMORY.md").read_text() == "remember"
    assert not legacy.exists()
    assert legacy.with_name("b.migrated").is_dir()
    assert not manager.has_preserved_data("b")
    manager.restore_preserved_data("b")  # already migrated: nothing to do


def test_backup_archive_uses_data_relative_names(
    manager: Manager, fake: FakeContainerService
) -> None:
    manager.start("b")
    seed(fake, "b")
    manager.preserve_data("b")
    with tarfile.open(data.backup_path(manager.config.data_root, "b")) as tar:
        assert "notes/a.txt" in tar.getnames()


def test_data_ops_hold_no_lock_after(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b")
    manager.import_data("b", export(manager, "b"))
    assert len(manager._locks) == 0


def test_records_of_other_modules_name_the_bot(
    manager: Manager, fake: FakeContainerService, caplog: pytest.LogCaptureFixture
) -> None:
    manager.start("b")
    os.symlink("/etc/passwd", data_dir(fake, "b") / "outside")
    with caplog.at_level(logging.WARNING, "mcpmanager"):
        export(manager, "b")
    skipped = [r for r in caplog.records if r.name == "mcpmanager.archive"]
    assert skipped
    assert all(getattr(r, "bot_id", None) == "b" for r in skipped)
    assert not any("[bot b]" in r.getMessage() for r in skipped)  # the field, not the text
