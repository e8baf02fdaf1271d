"""tar.gz archives of a bot's ``/data``: streamed out, checked and staged on the way in.

Entry names are relative to ``/data`` (``notes/a.txt``), as memoh's archives
are, so backups move between the two. Export keeps modes, mtimes, empty
directories and symlinks that stay inside the tree. Import refuses, before
writing anything, every entry that could land outside the target: absolute
names, ``..``, paths through a symlink, links pointing out of the tree, and
devices or fifos.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from typing import IO

from . import errors
from ._log import get_logger

__all__ = [
    "CountingWriter",
    "checked_archive",
    "extract_checked",
    "merge_tree",
    "rereadable",
    "tar_gz_writer",
    "write_tree",
]

log = get_logger("mcpmanager.archive")

_CHUNK = 1 << 20
_SPOOL_IN_MEMORY = 8 << 20
_ALLOWED_TYPES = {
    tarfile.REGTYPE,
    tarfile.AREGTYPE,
    tarfile.DIRTYPE,
    tarfile.SYMTYPE,
    tarfile.LNKTYPE,
}


class CountingWriter:
    """A write-only file object that counts the bytes passed to ``dest``."""

    def __init__(self, dest: IO[bytes]) -> None:
        self._dest = dest
        self.count = 0

    def write(self, data: bytes) -> int:
        """Write ``data`` to the destination and count it."""
        self._dest.write(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        """Flush the destination if it can be flushed."""
        flush = getattr(self._dest, "flush", None)
        if flush is not None:
            flush()


# -- export -----------------------------------------------------------------


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _walk(src: str) -> Iterator[tuple[str, str]]:
    """(absolute path, archive name) of everything under ``src``, sorted, no links followed."""
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, src)
        for name in sorted(dirnames) + sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            yield os.path.join(dirpath, name), rel.replace(os.sep, "/")


def _exportable(path: str, src: str) -> bool:
    """Regular files, directories and in-tree symlinks; anything else is skipped."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        target = os.path.join(os.path.dirname(path), os.readlink(path))
        if os.path.isabs(os.readlink(path)) or not _inside(src, os.path.normpath(target)):
            log.warning("export: skipping symlink %s, it points out of /data", path)
            return False
        return True
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return True
    log.warning("export: skipping %s, not a regular file, directory or symlink", path)
    return False


@contextlib.contextmanager
def tar_gz_writer(dest: IO[bytes]) -> Iterator[tuple[tarfile.TarFile, CountingWriter]]:
    """A streaming tar writer into gzip level 6 (Go's default; tarfile's own is 9, slower)."""
    out = CountingWriter(dest)
    with (
        gzip.GzipFile(fileobj=out, mode="wb", compresslevel=6, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        yield tar, out
    out.flush()


def write_tree(dest: IO[bytes], src: str | None) -> int:
    """Stream a tar.gz of the tree at ``src`` to ``dest``; return the bytes written.

    ``src`` None (or missing) gives a valid empty archive. Memory use stays
    constant whatever the size of the tree.
    """
    with tar_gz_writer(dest) as (tar, out):
        if src is not None and os.path.isdir(src):
            for path, name in _walk(src):
                if _exportable(path, src):
                    tar.add(path, arcname=name, recursive=False)
    return out.count


# -- import -----------------------------------------------------------------


@contextlib.contextmanager
def rereadable(src: IO[bytes]) -> Iterator[IO[bytes]]:
    """``src`` itself if it can seek (it is read twice), else a temporary copy of it.

    The caller's file is left open; a copy is removed when the block ends.
    """
    if _seekable(src):
        yield src
        return
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spooled:
        shutil.copyfileobj(src, spooled, _CHUNK)
        spooled.seek(0)
        yield spooled


def _seekable(src: IO[bytes]) -> bool:
    try:
        return bool(src.seekable()) and src.tell() >= 0
    except (AttributeError, OSError, ValueError):
        return False


def _reject(member: tarfile.TarInfo, why: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"archive entry {member.name!r} rejected: {why}")


def _normalized(member: tarfile.TarInfo) -> str:
    name = member.name
    if name.startswith("/") or posixpath.isabs(name):
        raise _reject(member, "absolute path")
    parts = name.split("/")
    if ".." in parts:
        raise _reject(member, "climbs out with '..'")
    return posixpath.normpath(name)


def _check_member(member: tarfile.TarInfo, symlinks: set[str], files: set[str]) -> str:
    """Validate one entry against those seen before it; return its normalized name."""
    if member.type not in _ALLOWED_TYPES:
        raise _reject(member, "devices, fifos and other special files are not allowed")
    name = _normalized(member)
    parents = name.split("/")[:-1]
    for i in range(1, len(parents) + 1):
        if "/".join(parents[:i]) in symlinks:
            raise _reject(member, "passes through a symlink")
    if member.issym():
        target = member.linkname
        if posixpath.isabs(target):
            raise _reject(member, f"symlink to absolute path {target!r}")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if resolved == ".." or resolved.startswith("../"):
            raise _reject(member, f"symlink {target!r} points out of the tree")
        symlinks.add(name)
    elif member.islnk():
        target = member.linkname
        if posixpath.isabs(target) or ".." in target.split("/"):
            raise _reject(member, f"hard link to {target!r} outside the tree")
        if posixpath.normpath(target) not in files:
            raise _reject(member, f"hard link to {target!r}, which is no earlier file")
    elif member.isfile():
        files.add(name)
    return name


def checked_archive(src: IO[bytes]) -> list[tarfile.TarInfo]:
    """Read every header of the gzip'd tar ``src`` and refuse it whole if any is unsafe.

    ``src`` is rewound to where it was. Anything that is not gzip+tar is InvalidArgument.
    """
    symlinks: set[str] = set()
    files: set[str] = set()
    start = src.tell()
    try:
        with tarfile.open(fileobj=src, mode="r:gz") as tar:
            members = tar.getmembers()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise errors.InvalidArgument(f"not a gzip-compressed tar archive: {exc}") from exc
    for member in members:
        _check_member(member, symlinks, files)
    src.seek(start)
    return members


def extract_checked(src: IO[bytes], dest: str) -> None:
    """Extract an archive that :func:`checked_archive` accepted into the empty dir ``dest``."""
    try:
        with tarfile.open(fileobj=src, mode="r:gz") as tar:
            for member in tar:
                if _normalized(member) == ".":
                    continue
                _extract_one(tar, member, dest)
    except (tarfile.TarError, EOFError) as exc:
        raise errors.InvalidArgument(f"archive is damaged: {exc}") from exc


def _extract_one(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: str) -> None:
    # The "tar" filter (Python 3.12, backported to 3.10.12/3.11.4) repeats the
    # path checks as a second line of defence and drops setuid/setgid bits,
    # while keeping the other mode bits the export recorded.
    if hasattr(tarfile, "tar_filter"):
        tar.extract(member, dest, filter="tar")
    else:  # pragma: no cover - older interpreters; the checks above already ran
        tar.extract(member, dest, set_attrs=True)


def merge_tree(staged: str, dest: str) -> None:
    """Move the staged tree into ``dest``, replacing what the archive also holds.

    Existing directories are merged; anything else at a staged name (a file,
    or a symlink, which is never followed) is replaced. Files only in
    ``dest`` stay. Each move is a rename within one filesystem.
    """
    os.makedirs(dest, exist_ok=True)
    for name in sorted(os.listdir(staged)):
        src_path, dest_path = os.path.join(staged, name), os.path.join(dest, name)
        src_is_dir = stat.S_ISDIR(os.lstat(src_path).st_mode)
        try:
            dest_mode = os.lstat(dest_path).st_mode
        except FileNotFoundError:
            os.rename(src_path, dest_path)
            continue
        if src_is_dir and stat.S_ISDIR(dest_mode):
            merge_tree(src_path, dest_path)
            shutil.copystat(src_path, dest_path)
            continue
        if stat.S_ISDIR(dest_mode):
            shutil.rmtree(dest_path)
        else:
            os.unlink(dest_path)
        os.rename(src_path, dest_path)
