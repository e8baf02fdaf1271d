"""A hostile bot on real containerd with overlay snapshots: the host is never read or changed.

The traps are planted through the bot's own overlay (mounted read-write
while it has no task), exactly where its writes would land; then the public
data operations run against them.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mcpmanager import Manager, ManagerConfig, data, errors
from mcpmanager.containerd import ContainerdService
from mcpmanager.mounts import mounted
from mcpmanager.types import ImageInfo
from tests.harness.archives import tgz
from tests.harness.containerd import BUSYBOX_REF
from tests.hostile import (
    DATA_DEVICE,
    DATA_REPLACED,
    INSIDE_DATA,
    TRAP_ARCHIVE,
    Host,
    members,
)

pytestmark = pytest.mark.integration

BOT = "hostile"
REFUSED = {**DATA_REPLACED, **DATA_DEVICE}


@pytest.fixture
def manager(
    containerd_service: ContainerdService, busybox_image: ImageInfo, tmp_path: Path
) -> Iterator[Manager]:
    config = ManagerConfig(image=BUSYBOX_REF, data_root=str(tmp_path / "data"))
    m = Manager(containerd_service, config)
    yield m
    for bot in m.list_bots():
        m.delete(bot)
    m.close()


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def plant(
    manager: Manager, service: ContainerdService, host: Host, planter: Callable[[Path, Host], None]
) -> None:
    """Run ``planter`` on the bot's rootfs, through its overlay mounted read-write."""
    info = service.get_container(manager.container_id(BOT))
    mounts = service.snapshot_mounts(info.snapshotter, info.snapshot_key)
    assert mounts[0].type == "overlay"
    with mounted(mounts) as root:
        planter(Path(root), host)


def in_rootfs(
    manager: Manager, service: ContainerdService, check: Callable[[Path], object]
) -> object:
    info = service.get_container(manager.container_id(BOT))
    with mounted(service.snapshot_mounts(info.snapshotter, info.snapshot_key)) as root:
        return check(Path(root))


def data_kind(root: Path) -> tuple[int, str]:
    """The file type of the rootfs' ``data`` and, for a symlink, its target (never followed)."""
    mode = stat.S_IFMT(os.lstat(root / "data").st_mode)
    return mode, os.readlink(root / "data") if stat.S_ISLNK(mode) else ""


def _export(m: Manager) -> bytes:
    buf = io.BytesIO()
    m.export_data(BOT, buf)
    return buf.getvalue()


def _restore(m: Manager) -> None:
    path = Path(data.backup_path(m.config.data_root, BOT))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tgz({"restored.txt": b"r"}).getvalue())
    m.restore_preserved_data(BOT)


OPERATIONS: dict[str, Callable[[Manager], object]] = {
    "export_data": _export,
    "preserve_data": lambda m: m.preserve_data(BOT),
    "delete-preserve": lambda m: m.delete(BOT, preserve_data=True),
    "import_data": lambda m: m.import_data(BOT, tgz({"x.txt": b"written?"})),
    "restore_preserved_data": _restore,
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
@pytest.mark.parametrize("layout", sorted(REFUSED))
def test_replaced_data_is_refused_and_host_untouched(
    manager: Manager,
    containerd_service: ContainerdService,
    host: Host,
    layout: str,
    operation: str,
) -> None:
    manager.ensure_bot(BOT)
    plant(manager, containerd_service, host, REFUSED[layout])
    planted = in_rootfs(manager, containerd_service, data_kind)
    with pytest.raises(errors.MCPManagerError, match=f"bot {BOT}: .*/data of the container is"):
        OPERATIONS[operation](manager)
    host.assert_untouched()
    backups = Path(manager.config.data_root, "backups")
    leftovers = sorted(p.name for p in backups.iterdir()) if backups.exists() else []
    assert leftovers == ([f"{BOT}.tar.gz"] if operation == "restore_preserved_data" else [])
    assert manager.list_bots() == [BOT]
    assert in_rootfs(manager, containerd_service, data_kind) == planted  # left as the bot made it


def test_links_inside_data_on_overlay(
    manager: Manager, containerd_service: ContainerdService, host: Host
) -> None:
    manager.ensure_bot(BOT)
    plant(manager, containerd_service, host, INSIDE_DATA["links-inside-data-pointing-out"])
    exported = _export(manager)
    host.assert_not_in(exported)
    names = members(exported)
    assert names["own.txt"].isfile()
    assert not {"dir-out", "secret.txt", "passwd", "rel-out", "nested/up", "pipe"} & set(names)
    manager.import_data(BOT, tgz(TRAP_ARCHIVE))
    host.assert_untouched()

    def check(root: Path) -> bool:
        for name, body in TRAP_ARCHIVE.items():
            assert (root / "data" / name).read_bytes() == body
            assert not (root / "data" / name.split("/")[0]).is_symlink()
        return True

    assert in_rootfs(manager, containerd_service, check)


def test_hard_links_inside_data_reach_only_the_snapshot(
    manager: Manager, containerd_service: ContainerdService, host: Host
) -> None:
    manager.ensure_bot(BOT)
    own = b"the container's own file " + os.urandom(8).hex().encode()

    def trap(root: Path, h: Host) -> None:
        (root / "etc" / "mine").write_bytes(own)
        os.link(root / "etc" / "mine", root / "data" / "hard")
        os.link(root / "etc" / "passwd", root / "data" / "passwd-hard")
        with pytest.raises(
            OSError, match="cross-device"
        ) as caught:  # a bot cannot link a host inode at all
            os.link(h.dir / "secret.txt", root / "data" / "host-hard")
        assert caught.value.errno == errno.EXDEV

    plant(manager, containerd_service, host, trap)
    exported = _export(manager)
    host.assert_not_in(exported)
    assert names_with_bodies(exported)["hard"] == own
    manager.import_data(BOT, tgz({"passwd-hard": b"replaced"}))
    host.assert_untouched()
    assert in_rootfs(
        manager,
        containerd_service,
        lambda r: (r / "etc" / "passwd").read_bytes().startswith(b"root"),
    )


def names_with_bodies(archive_bytes: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }
