"""Hostile layouts a bot can leave in its rootfs, and proof that the host stayed untouched.

Shared by the fake (tests/unit/test_hostile_fs.py) and real containerd
(tests/integration/test_hostile_containerd.py) tests. A layout plants something in a
rootfs directory; :class:`Host` is a directory of sentinel files playing the
host (and an ``etc`` playing ``/etc``; the real ``/etc`` is never touched).
"""

from __future__ import annotations

import gzip
import io
import os
import secrets
import shutil
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

Planter = Callable[[Path, "Host"], None]


class Host:
    """Sentinel files outside every rootfs, whose bytes, times and names must never change."""

    def __init__(self, base: Path) -> None:
        self.dir = base / "host"
        self.etc = base / "etc"
        self.secret = secrets.token_hex(16).encode()
        (self.dir / "sub").mkdir(parents=True)
        self.etc.mkdir()
        (self.dir / "secret.txt").write_bytes(b"host-secret " + self.secret)
        (self.dir / "sub" / "inner.txt").write_bytes(b"host-inner " + self.secret)
        (self.etc / "passwd").write_bytes(b"root:x:0:0:" + self.secret)
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, tuple[str, bytes, int, int]]:
        """Every entry under both directories: kind, bytes, mtime (ns), inode."""
        out: dict[str, tuple[str, bytes, int, int]] = {}
        for top in (self.dir, self.etc):
            for path in sorted([top, *top.rglob("*")]):
                st = os.lstat(path)
                body = path.read_bytes() if stat.S_ISREG(st.st_mode) else b""
                kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
                out[str(path)] = (kind, body, st.st_mtime_ns, st.st_ino)
        return out

    def assert_untouched(self) -> None:
        """Nothing under the host directories was added, removed or changed."""
        assert self.snapshot() == self.before

    def assert_not_in(self, archive_bytes: bytes) -> None:
        """No host sentinel's contents made it into a (gzip'd) archive."""
        raw = gzip.decompress(archive_bytes) if archive_bytes else b""
        assert self.secret not in raw


def _replace_data(root: Path) -> Path:
    data = root / "data"
    if data.is_symlink() or data.is_file():
        data.unlink()
    elif data.is_dir():
        try:  # as `mv data data.old`
            os.rename(data, root / f"data.old-{secrets.token_hex(4)}")
        except OSError:  # overlayfs without redirect_dir: EXDEV for a lower dir, so `rm -r`
            shutil.rmtree(data)
    return data


def _escape(root: Path, target: Path) -> str:
    """A relative path from ``root/<x>`` that climbs out of ``root`` to ``target``."""
    return "../" * (len(root.parts) + 2) + str(target).lstrip("/")


# /data itself replaced: every one of these must be refused with nothing read or written.
DATA_REPLACED: dict[str, Planter] = {
    "data-symlink-to-host-dir": lambda r, h: _replace_data(r).symlink_to(h.dir),
    "data-symlink-to-etc": lambda r, h: _replace_data(r).symlink_to(h.etc),
    "data-relative-symlink-out": lambda r, h: _replace_data(r).symlink_to(_escape(r, h.dir)),
    "data-dangling-symlink": lambda r, h: _replace_data(r).symlink_to(h.dir / "none"),
    "data-regular-file": lambda r, h: _replace_data(r).write_bytes(b"not a dir"),
    "data-fifo": lambda r, h: os.mkfifo(_replace_data(r)),
    "data-socket": lambda r, h: os.mknod(_replace_data(r), stat.S_IFSOCK | 0o600),
}
# Needs root (mknod of a device).
DATA_DEVICE: dict[str, Planter] = {
    "data-char-device": lambda r, h: os.mknod(
        _replace_data(r), stat.S_IFCHR | 0o600, os.makedev(1, 3)
    ),
}


def _plant_inside(root: Path, host: Host) -> None:
    data = root / "data"
    data.mkdir(exist_ok=True)
    (data / "own.txt").write_bytes(b"bot's own")
    (data / "dir-out").symlink_to(host.dir)
    (data / "secret.txt").symlink_to(host.dir / "secret.txt")
    (data / "passwd").symlink_to(host.etc / "passwd")
    (data / "rel-out").symlink_to(_escape(root / "data", host.dir))
    (data / "nested").mkdir(exist_ok=True)
    (data / "nested" / "up").symlink_to("../../../../../../..")
    os.mkfifo(data / "pipe")


# Links inside a real /data that point out: exports archive none of the host; imports
# replace the links themselves and never write through them.
INSIDE_DATA: dict[str, Planter] = {"links-inside-data-pointing-out": _plant_inside}

# What an import brings for the inside layout: each name collides with a trap.
TRAP_ARCHIVE = {
    "dir-out/new.txt": b"through the dir link?",
    "secret.txt": b"through the file link?",
    "passwd": b"through the etc link?",
    "rel-out/new.txt": b"through the relative link?",
    "pipe": b"over the fifo",
}


def members(archive_bytes: bytes) -> dict[str, tarfile.TarInfo]:
    """The entries of a tar.gz by name."""
    with tarfile.open(fileobj=io.BytesIO(archive_bytes), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}
