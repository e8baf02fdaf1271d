"""The Manager on a real containerd: data, versions and orphan rescue on overlay snapshots."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcpmanager import Manager, ManagerConfig, errors
from mcpmanager.containerd import ContainerdService
from mcpmanager.store import SQLiteStore
from mcpmanager.types import DeleteContainerOptions, ImageInfo
from tests.harness.archives import tgz
from tests.harness.containerd import BUSYBOX_REF, ContainerdDaemon, File, build_image_archive

pytestmark = pytest.mark.integration


def data_files(manager: Manager, bot: str) -> dict[str, bytes]:
    buf = io.BytesIO()
    manager.export_data(bot, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


@pytest.fixture
def manager(
    containerd_service: ContainerdService, busybox_image: ImageInfo, tmp_path: Path
) -> Iterator[Manager]:
    store = SQLiteStore(str(tmp_path / "versions.db"))
    # busybox runs no agent, so there is nothing to wait for after a start.
    config = ManagerConfig(image=BUSYBOX_REF, data_root=str(tmp_path / "data"), ready_timeout=0)
    m = Manager(containerd_service, config, store=store)
    yield m
    for bot in m.list_bots():
        m.delete(bot)
    m.close()


def test_versions_on_overlay_survive_gc(
    manager: Manager,
    containerd_daemon: ContainerdDaemon,
    containerd_service: ContainerdService,
    containerd_namespace: str,
    tmp_path: Path,
) -> None:
    bot = "ver"
    manager.ensure_bot(bot)
    assert manager.list_bot_snapshot_data(bot).info.snapshotter == "overlayfs"
    manager.import_data(bot, tgz({"f.txt": b"one"}))
    assert manager.create_version(bot).version == 1
    manager.import_data(bot, tgz({"f.txt": b"two", "extra.txt": b"x"}))
    assert manager.create_version(bot).version == 2
    manager.rollback_version(bot, 1)
    assert data_files(manager, bot) == {"f.txt": b"one"}

    # Make the daemon collect garbage: remove an unrelated image synchronously.
    other = build_image_archive(
        str(tmp_path / "other.tar"), "docker.io/library/mcpm-other:gc", [[File("x", b"x")]]
    )
    containerd_service.import_image(other)
    containerd_daemon.ctr(
        containerd_namespace, "images", "rm", "--sync", "docker.io/library/mcpm-other:gc"
    )

    manager.rollback_version(bot, 2)
    assert data_files(manager, bot) == {"f.txt": b"two", "extra.txt": b"x"}
    meta = manager.list_bot_snapshot_data(bot).managed_meta
    assert sorted(m.version for m in meta.values() if m.version) == [1, 2]


def test_orphaned_snapshot_is_rescued(
    manager: Manager, containerd_service: ContainerdService
) -> None:
    bot = "orphan"
    manager.ensure_bot(bot)
    manager.import_data(bot, tgz({"keep.txt": b"precious"}))
    # The container is removed behind the Manager's back; its snapshot survives.
    containerd_service.delete_container(
        manager.container_id(bot), DeleteContainerOptions(cleanup_snapshot=False)
    )
    with pytest.raises(errors.NotFound):
        containerd_service.get_container(manager.container_id(bot))
    manager.ensure_bot(bot)
    assert data_files(manager, bot) == {"keep.txt": b"precious"}


def test_bad_archive_leaves_overlay_data(manager: Manager) -> None:
    bot = "bad"
    manager.ensure_bot(bot)
    manager.import_data(bot, tgz({"a.txt": b"a"}))
    evil = tgz({"../../etc/evil": b"x"})
    with pytest.raises(errors.InvalidArgument):
        manager.import_data(bot, evil)
    assert data_files(manager, bot) == {"a.txt": b"a"}
    assert not os.path.exists("/etc/evil")


def test_rollback_then_delete_starts_fresh(
    manager: Manager, containerd_service: ContainerdService
) -> None:
    bot = "fresh"
    manager.ensure_bot(bot)
    manager.import_data(bot, tgz({"v.txt": b"v1"}))
    manager.create_version(bot)
    manager.import_data(bot, tgz({"v.txt": b"later"}))
    left = containerd_service.get_container(manager.container_id(bot)).snapshot_key
    manager.rollback_version(bot, 1)
    assert data_files(manager, bot) == {"v.txt": b"v1"}
    assert left not in {s.name for s in containerd_service.list_snapshots("overlayfs")}
    manager.delete(bot)
    manager.ensure_bot(bot)
    assert data_files(manager, bot) == {}


def test_remove_snapshot_in_use_is_refused(
    manager: Manager, containerd_service: ContainerdService
) -> None:
    info = manager.ensure_bot("inuse")
    with pytest.raises(errors.FailedPrecondition, match="used by container"):
        containerd_service.remove_snapshot(info.snapshotter, info.snapshot_key)
