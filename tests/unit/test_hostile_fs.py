"""A hostile bot on the fake: whatever it leaves in its rootfs, the host is never read or changed.

Each layout is planted in the bot's real snapshot directory, then every data
operation of the public API runs against it: export, preserve, delete with
preserve, import, restore from a backup and from a legacy directory.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from mcpmanager import FakeContainerService, Manager, _beneath, data, errors
from mcpmanager.types import TaskStatus
from tests.harness.archives import tgz
from tests.hostile import (
    DATA_DEVICE,
    DATA_REPLACED,
    INSIDE_DATA,
    TRAP_ARCHIVE,
    Host,
    Planter,
    members,
)

BOT = "b"


def rootfs(fake: FakeContainerService, bot: str = BOT) -> Path:
    info = fake.get_container(f"mcp-{bot}")
    return Path(fake.snapshot_path(info.snapshotter, info.snapshot_key))


def running(fake: FakeContainerService, bot: str = BOT) -> bool:
    try:
        return fake.get_task_info(f"mcp-{bot}").status is TaskStatus.RUNNING
    except errors.NotFound:
        return False


@pytest.fixture(params=["openat2", "per-component"])
def host(tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Host:
    """The sentinels, with paths resolved by openat2 or (as on older kernels) per component."""
    if request.param == "per-component":
        monkeypatch.setattr(_beneath._openat2, "available", False)
    return Host(tmp_path)


def _refused_layouts() -> dict[str, Planter]:
    layouts = dict(DATA_REPLACED)
    if os.geteuid() == 0:
        layouts.update(DATA_DEVICE)
    return layouts


REFUSED = _refused_layouts()


def backup_of(manager: Manager, files: dict[str, bytes]) -> Path:
    path = Path(data.backup_path(manager.config.data_root, BOT))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(tgz(files).getvalue())
    return path


def _export(m: Manager) -> bytes:
    buf = io.BytesIO()
    m.export_data(BOT, buf)
    return buf.getvalue()


def _restore(m: Manager) -> None:
    backup_of(m, {"restored.txt": b"r"})
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
    manager: Manager, fake: FakeContainerService, host: Host, layout: str, operation: str
) -> None:
    manager.start(BOT)
    root = rootfs(fake)
    REFUSED[layout](root, host)
    planted = os.lstat(root / "data")
    with pytest.raises(errors.MCPManagerError, match=f"bot {BOT}: .*/data of the container is"):
        OPERATIONS[operation](manager)
    host.assert_untouched()
    after = os.lstat(root / "data")  # the bot's own trap is left as it was, too
    assert (after.st_ino, after.st_mode) == (planted.st_ino, planted.st_mode)
    backups = Path(manager.config.data_root, "backups")
    leftovers = sorted(p.name for p in backups.iterdir()) if backups.exists() else []
    assert leftovers == (["b.tar.gz"] if operation == "restore_preserved_data" else [])
    assert manager.list_bots() == [BOT]  # delete-preserve refused: nothing deleted
    assert running(fake)


def test_refusal_says_what_data_is(
    manager: Manager, fake: FakeContainerService, host: Host
) -> None:
    manager.ensure_bot(BOT)
    DATA_REPLACED["data-symlink-to-etc"](rootfs(fake), host)
    with pytest.raises(errors.FailedPrecondition) as caught:
        manager.export_data(BOT, io.BytesIO())
    assert str(caught.value) == (
        f"bot {BOT}: export /data: /data of the container is a symlink (to {str(host.etc)!r}), "
        "not a directory; refusing to follow it"
    )
    with pytest.raises(errors.DataLossPrevented, match="symlink"):
        manager.delete(BOT, preserve_data=True)


def test_missing_data_exports_empty_and_import_makes_it(
    manager: Manager, fake: FakeContainerService
) -> None:
    manager.ensure_bot(BOT)
    (rootfs(fake) / "data").rmdir()
    assert members(_export(manager)) == {}
    manager.import_data(BOT, tgz({"x.txt": b"x"}))
    made = rootfs(fake) / "data"
    assert not made.is_symlink()
    assert os.stat(made).st_mode & 0o777 == 0o755
    assert (made / "x.txt").read_bytes() == b"x"


@pytest.mark.parametrize("layout", sorted(INSIDE_DATA))
def test_links_inside_data_are_never_followed_on_export(
    manager: Manager, fake: FakeContainerService, host: Host, layout: str
) -> None:
    manager.start(BOT)
    INSIDE_DATA[layout](rootfs(fake), host)
    exported = _export(manager)
    host.assert_not_in(exported)
    names = members(exported)
    assert names["own.txt"].isfile()
    # Links out are left out (an import would refuse them), never followed; the fifo too.
    assert not {"dir-out", "secret.txt", "passwd", "rel-out", "nested/up", "pipe"} & set(names)
    assert not [n for n in names if n.startswith(("dir-out/", "rel-out/"))]
    manager.preserve_data(BOT)
    host.assert_not_in(Path(data.backup_path(manager.config.data_root, BOT)).read_bytes())
    host.assert_untouched()
    assert running(fake)


@pytest.mark.parametrize("layout", sorted(INSIDE_DATA))
def test_import_replaces_links_inside_data_never_writes_through(
    manager: Manager, fake: FakeContainerService, host: Host, layout: str
) -> None:
    manager.start(BOT)
    root = rootfs(fake)
    INSIDE_DATA[layout](root, host)
    manager.import_data(BOT, tgz(TRAP_ARCHIVE))
    host.assert_untouched()
    d = root / "data"
    for name, body in TRAP_ARCHIVE.items():
        assert (d / name).read_bytes() == body
        top = d / name.split("/")[0]
        assert not top.is_symlink(), top  # the link was replaced, as a link
    assert (d / "own.txt").read_bytes() == b"bot's own"
    assert (d / "nested" / "up").is_symlink()  # untouched: the archive did not name it
    assert running(fake)


def test_import_replaces_hard_link_to_host_file_never_writes_through(
    manager: Manager, fake: FakeContainerService, host: Host
) -> None:
    # A real bot cannot link a host inode (other filesystem); on the fake both share
    # tmp_path's filesystem, which makes the strongest case for "rename, never write".
    manager.ensure_bot(BOT)
    d = rootfs(fake) / "data"
    os.link(host.dir / "secret.txt", d / "hard.txt")
    manager.import_data(BOT, tgz({"hard.txt": b"new"}))
    host.assert_untouched()
    assert (d / "hard.txt").read_bytes() == b"new"


@pytest.mark.parametrize("layout", sorted(REFUSED))
def test_replaced_data_blocks_restore_and_keeps_backup(
    manager: Manager, fake: FakeContainerService, host: Host, layout: str
) -> None:
    manager.start(BOT)
    backup = backup_of(manager, {"keep.txt": b"precious"})
    REFUSED[layout](rootfs(fake), host)
    with pytest.raises(errors.FailedPrecondition, match=f"bot {BOT}: restore"):
        manager.restore_preserved_data(BOT)
    assert backup.read_bytes() == tgz({"keep.txt": b"precious"}).getvalue()
    host.assert_untouched()


# -- memoh's legacy directory: written by the bot through its bind mount ----------


def legacy(manager: Manager) -> Path:
    return Path(data.legacy_dir(manager.config.data_root, BOT))


def test_legacy_dir_that_is_a_symlink_is_refused(
    manager: Manager, fake: FakeContainerService, host: Host
) -> None:
    manager.ensure_bot(BOT)
    legacy(manager).parent.mkdir(parents=True)
    legacy(manager).symlink_to(host.etc)
    with pytest.raises(errors.FailedPrecondition, match=f"bot {BOT}: .*refusing to follow"):
        manager.restore_preserved_data(BOT)
    host.assert_untouched()
    assert legacy(manager).is_symlink()  # not renamed .migrated
    assert not (rootfs(fake) / "data" / "passwd").exists()


def test_legacy_dir_links_pointing_out_are_not_followed(
    manager: Manager, fake: FakeContainerService, host: Host
) -> None:
    manager.ensure_bot(BOT)
    old = legacy(manager)
    old.mkdir(parents=True)
    (old / "notes.txt").write_bytes(b"legacy")
    (old / "etc").symlink_to(host.etc)
    (old / "secret").symlink_to(host.dir / "secret.txt")
    (old / "sub").mkdir()
    (old / "sub" / "up").symlink_to("../../../../../..")
    os.mkfifo(old / "pipe")
    manager.restore_preserved_data(BOT)
    host.assert_untouched()
    d = rootfs(fake) / "data"
    assert (d / "notes.txt").read_bytes() == b"legacy"
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt", "sub"]
    assert list((d / "sub").iterdir()) == []
    assert Path(str(old) + data.MIGRATED_SUFFIX).is_dir()


# -- the primitives themselves ------------------------------------------------------


@pytest.mark.parametrize("openat2", [True, False], ids=["openat2", "per-component"])
def test_open_beneath_never_follows_or_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, openat2: bool
) -> None:
    if not openat2:
        monkeypatch.setattr(_beneath._openat2, "available", False)
    (tmp_path / "root" / "a" / "b").mkdir(parents=True)
    (tmp_path / "root" / "a" / "link").symlink_to(tmp_path)
    (tmp_path / "root" / "a" / "rel").symlink_to("b")
    with _beneath.opened_path(str(tmp_path / "root")) as root:
        with _beneath.opened_dir(root, "a/b") as fd:
            assert os.fstat(fd).st_ino == os.stat(tmp_path / "root" / "a" / "b").st_ino
        for path in ("a/link", "a/link/root", "a/rel", "a/rel/", "../root", "/etc", "a/../a"):
            with pytest.raises(OSError, match=r"Errno (20|40|18)"):  # ENOTDIR/ELOOP/EXDEV
                os.close(_beneath.open_dir(root, path))
        with pytest.raises(OSError, match="Errno 40"):
            os.close(_beneath.open_beneath(root, "a/rel", os.O_RDONLY))


def test_remove_all_removes_links_not_targets_and_deep_trees(host: Host, tmp_path: Path) -> None:
    top = tmp_path / "victim"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(1500):  # deeper than Python's recursion limit
        os.mkdir("d", dir_fd=fd)
        fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
        os.close(parent)
    os.symlink(host.dir, "out", dir_fd=fd)
    os.close(fd)
    (top / "etc").symlink_to(host.etc)
    with _beneath.opened_path(str(tmp_path)) as fd:
        _beneath.remove_all(fd, "victim")
    assert not top.exists()
    host.assert_untouched()
