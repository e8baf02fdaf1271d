"""tar.gz archives of a bot's ``/data``: streamed out, checked whole and staged on the way in.

Entry names are relative to ``/data`` (``notes/a.txt``), as memoh's archives
are, so backups move between the two. Export keeps modes, mtimes, numeric
owners, empty directories, hard links and symlinks that stay inside the tree.
Import refuses, before writing anything, every archive that could not be
extracted safely and completely (see :func:`checked_archive`).

Bots are hostile: every walk of a tree a bot wrote goes through directory fds
beneath a root we opened (:mod:`mcpmanager._beneath`) and never follows a
symlink, on the way out and on the way in.
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

from . import _beneath, errors
from ._log import get_logger

__all__ = [
    "CountingWriter",
    "checked_archive",
    "extract_checked",
    "extract_checked_at",
    "merge_tree",
    "merge_tree_at",
    "name_problem",
    "rereadable",
    "tar_gz_writer",
    "write_tree",
    "write_tree_at",
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
# Linux limits an import must respect: a component, and a whole path with its NUL.
_NAME_MAX = 255
_PATH_MAX = 4096
_DATA_PREFIX = b"/data/"
_MAX_MTIME = 1 << 33  # seconds (year 2242); beyond it nanoseconds overflow some conversions
_MAX_ID = (1 << 32) - 1  # uid_t/gid_t; the all-ones value means "leave unchanged"


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
    """Stream a tar.gz of the directory ``src`` to ``dest``; return the bytes written.

    ``src`` None (or missing) gives a valid empty archive. ``src`` itself is
    opened without following a symlink (FailedPrecondition if it is one, or
    is not a directory), and so is everything beneath it. Memory use stays
    constant whatever the size of the tree.
    """
    if src is None:
        return write_tree_at(dest, None)
    try:
        fd = os.open(src, _beneath.DIR_FLAGS)
    except FileNotFoundError:
        return write_tree_at(dest, None)
    except OSError as exc:
        parent, name = os.path.split(src.rstrip("/"))
        what = _beneath.describe_path(parent or "/", name)
        raise errors.FailedPrecondition(
            f"{src} is {what}, not a directory; refusing to follow it"
        ) from exc
    try:
        return write_tree_at(dest, fd)
    finally:
        os.close(fd)


def write_tree_at(dest: IO[bytes], dir_fd: int | None) -> int:
    """Stream a tar.gz of the directory open as ``dir_fd`` (None: empty) to ``dest``.

    Regular files, directories and symlinks that stay inside the tree are
    archived (a symlink as a link, whatever it points to, never followed);
    devices, fifos, sockets, links out of the tree and names an import would
    refuse are skipped with a warning. A file seen again through a hard link
    is archived as a hard link to its first name. Nothing is ever opened
    through a symlink.
    """
    with tar_gz_writer(dest) as (tar, out):
        if dir_fd is not None:
            _Exporter(tar, dir_fd).run()
    return out.count


class _Exporter:
    """Walks a tree beneath a directory fd into a tar stream, one directory fd at a time."""

    def __init__(self, tar: tarfile.TarFile, root_fd: int) -> None:
        self._tar = tar
        self._root = root_fd
        self._inodes: dict[tuple[int, int], str] = {}

    def run(self) -> None:
        """Archive the whole tree, top-down, each directory's entries sorted."""
        pending = [""]
        while pending:
            rel = pending.pop()
            with _beneath.opened_dir(self._root, rel) as fd:
                subdirs = self._directory(fd, rel)
            pending.extend(reversed(subdirs))

    def _directory(self, fd: int, rel: str) -> list[str]:
        """Archive the entries of one directory; return its subdirectories' names to visit."""
        with os.scandir(fd) as it:
            entries = sorted(it, key=lambda e: (not e.is_dir(follow_symlinks=False), e.name))
        subdirs = []
        for entry in entries:
            name = f"{rel}/{entry.name}" if rel else entry.name
            problem = name_problem(name)
            if problem:
                log.warning("export: skipping %r: %s", name, problem)
                continue
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                self._tar.addfile(_header(name, st, tarfile.DIRTYPE))
                subdirs.append(name)
            elif stat.S_ISLNK(st.st_mode):
                self._symlink(fd, entry.name, name, st)
            elif stat.S_ISREG(st.st_mode):
                self._file(fd, entry.name, name)
            else:
                log.warning("export: skipping %r, %s", name, _beneath.kind_of(st.st_mode))
        return subdirs

    def _symlink(self, fd: int, base: str, name: str, st: os.stat_result) -> None:
        target = os.readlink(base, dir_fd=fd)
        problem = _symlink_problem(name, target)
        if problem:
            log.warning("export: skipping symlink %r: %s", name, problem)
            return
        info = _header(name, st, tarfile.SYMTYPE)
        info.linkname = target
        self._tar.addfile(info)

    def _file(self, fd: int, base: str, name: str) -> None:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        with os.fdopen(os.open(base, flags, dir_fd=fd), "rb") as body:
            st = os.fstat(body.fileno())
            if not stat.S_ISREG(st.st_mode):  # swapped since the listing
                log.warning("export: skipping %r, now %s", name, _beneath.kind_of(st.st_mode))
                return
            # Everything is read beneath the mount, so a hard link can only be
            # to an inode of the snapshot's own filesystem, never a host file.
            first = self._inodes.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
            if first is not None:
                info = _header(name, st, tarfile.LNKTYPE)
                info.linkname = first
                self._tar.addfile(info)
                return
            info = _header(name, st, tarfile.REGTYPE)
            info.size = st.st_size
            self._tar.addfile(info, body)
            if st.st_nlink > 1:
                self._inodes[(st.st_dev, st.st_ino)] = name


def _header(name: str, st: os.stat_result, kind: bytes) -> tarfile.TarInfo:
    """A tar header from ``lstat``/``fstat`` values, with numeric owners only."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = st.st_mtime
    return info


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


def name_problem(name: str) -> str | None:
    """Why ``name`` (relative to ``/data``) cannot be made safely on Linux, or None.

    Absolute names, ``..``, NUL, components over NAME_MAX and paths over
    PATH_MAX under ``/data`` are refused.
    """
    if name.startswith("/"):
        return "absolute path"
    if ".." in name.split("/"):
        return "climbs out with '..'"
    if "\x00" in name:
        return "NUL in the name"
    try:
        raw = os.fsencode(name)
    except UnicodeError:
        return "the name cannot be encoded as a file name"
    if len(_DATA_PREFIX) + len(raw) >= _PATH_MAX:
        return f"the path under /data is longer than {_PATH_MAX - 1} bytes"
    if any(len(part) > _NAME_MAX for part in raw.split(b"/")):
        return f"a component is longer than {_NAME_MAX} bytes"
    return None


def _symlink_problem(name: str, target: str) -> str | None:
    """Why a symlink ``name`` -> ``target`` may not be archived or extracted, or None."""
    if not target:
        return "empty symlink target"
    if "\x00" in target:
        return "NUL in the symlink target"
    try:
        raw = os.fsencode(target)
    except UnicodeError:
        return "the symlink target cannot be encoded"
    if len(raw) >= _PATH_MAX:
        return f"symlink target longer than {_PATH_MAX - 1} bytes"
    if posixpath.isabs(target):
        return f"symlink to absolute path {target!r}"
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    if resolved == ".." or resolved.startswith("../"):
        return f"symlink {target!r} points out of the tree"
    return None


def _reject(member: tarfile.TarInfo, why: str) -> errors.InvalidArgument:
    return errors.InvalidArgument(f"archive entry {member.name!r} rejected: {why}")


def _normalized(member: tarfile.TarInfo) -> str:
    name = member.name
    problem = name_problem(name)
    if problem:
        raise _reject(member, problem)
    return posixpath.normpath(name) if name else "."


# What the checker knows of each name so far.
_DIR, _IMPLICIT, _FILE, _LINK = "directory", "implicit directory", "file", "symlink"


class _Checker:
    """Judges the entries of one archive in order, as extraction would meet them."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}

    def check(self, member: tarfile.TarInfo) -> None:
        """Refuse ``member`` (InvalidArgument) unless it extracts safely after those before it."""
        if member.type not in _ALLOWED_TYPES:
            raise _reject(member, "devices, fifos and other special files are not allowed")
        _check_attrs(member)
        name = _normalized(member)
        if name == ".":
            if not member.isdir():
                raise _reject(member, "names /data itself but is not a directory")
            return
        self._check_parents(member, name)
        self._check_name(member, name)
        if member.issym():
            problem = _symlink_problem(name, member.linkname)
            if problem:
                raise _reject(member, problem)
        elif member.islnk():
            self._check_hard_link(member)
        self.kinds[name] = _kind(member)

    def _check_parents(self, member: tarfile.TarInfo, name: str) -> None:
        parts = name.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            kind = self.kinds.setdefault(parent, _IMPLICIT)
            if kind == _LINK:
                raise _reject(member, "passes through a symlink")
            if kind == _FILE:
                raise _reject(member, f"{parent!r} is a file, so it cannot hold entries")

    def _check_name(self, member: tarfile.TarInfo, name: str) -> None:
        seen = self.kinds.get(name)
        if seen is None:
            return
        if seen == _IMPLICIT:
            if not member.isdir():
                raise _reject(member, "a file and a directory of the same name")
            return
        raise _reject(member, f"duplicate entry (an earlier {seen} has this name)")

    def _check_hard_link(self, member: tarfile.TarInfo) -> None:
        target = member.linkname
        if not target or posixpath.isabs(target) or ".." in target.split("/"):
            raise _reject(member, f"hard link to {target!r} outside the tree")
        if name_problem(target):
            raise _reject(member, f"hard link to {target!r}: {name_problem(target)}")
        if self.kinds.get(posixpath.normpath(target)) != _FILE:
            raise _reject(member, f"hard link to {target!r}, which is no earlier file")


def _kind(member: tarfile.TarInfo) -> str:
    if member.isdir():
        return _DIR
    return _LINK if member.issym() else _FILE


def _check_attrs(member: tarfile.TarInfo) -> None:
    """Refuse owners and times that the kernel (or Python's conversion) cannot take."""
    mtime = member.mtime
    if not isinstance(mtime, (int, float)) or not -_MAX_MTIME < mtime < _MAX_MTIME:
        raise _reject(member, f"modification time {mtime!r} out of range")
    for what, value in (("uid", member.uid), ("gid", member.gid)):
        if not isinstance(value, int) or not 0 <= value < _MAX_ID:
            raise _reject(member, f"{what} {value!r} out of range")


def checked_archive(src: IO[bytes]) -> list[tarfile.TarInfo]:
    """Read the whole gzip'd tar ``src`` and refuse it unless it extracts safely and completely.

    Refused (InvalidArgument naming the entry): absolute names, ``..``, paths
    through a symlink, links out of the tree, devices and fifos, a file and
    a directory of the same name, duplicates, names the filesystem cannot
    hold (NUL, a component over 255 bytes, a path over PATH_MAX under
    ``/data``), hard links to anything but an earlier file, and anything not
    gzip+tar or cut short. ``src`` is rewound to where it was.
    """
    checker = _Checker()
    members: list[tarfile.TarInfo] = []
    start = src.tell()
    try:
        with tarfile.open(fileobj=src, mode="r:gz") as tar:
            for member in tar:
                checker.check(member)
                if member.isfile():
                    _drain(tar, member)
                members.append(member)
    except errors.InvalidArgument:
        raise
    except Exception as exc:  # tarfile and gzip raise many kinds on damaged input
        raise errors.InvalidArgument(f"not a complete gzip-compressed tar archive: {exc}") from exc
    src.seek(start)
    return members


def _drain(tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
    """Read an entry's data through, so an archive cut short is refused now, not midway."""
    body = tar.extractfile(member)
    if body is None:  # pragma: no cover - isfile() guarantees a body
        raise _reject(member, "has no data")
    while body.read(_CHUNK):
        pass


def extract_checked(src: IO[bytes], dest: str) -> None:
    """Extract an archive that :func:`checked_archive` accepted into the empty dir ``dest``."""
    fd = os.open(dest, _beneath.DIR_FLAGS)
    try:
        extract_checked_at(src, fd)
    finally:
        os.close(fd)


def extract_checked_at(src: IO[bytes], dir_fd: int) -> None:
    """Extract a checked archive into the empty directory open as ``dir_fd``.

    Every entry is made through directory fds beneath ``dir_fd``, with
    ``O_NOFOLLOW`` and ``O_EXCL``, so nothing is written through a link.
    Modes keep their ``0o755`` bits (no setuid, setgid or group/other
    write, as tarfile's "tar" filter); owners are set as numbers when
    running as root; directory times are set last.
    """
    try:
        with tarfile.open(fileobj=src, mode="r:gz") as tar:
            _Extractor(tar, dir_fd).run()
    except (tarfile.TarError, EOFError) as exc:
        raise errors.InvalidArgument(f"archive is damaged: {exc}") from exc


class _Extractor:
    """Makes the entries of a checked archive beneath a fresh staging directory fd."""

    def __init__(self, tar: tarfile.TarFile, root_fd: int) -> None:
        self._tar = tar
        self._root = root_fd
        self._chown = os.geteuid() == 0
        self._parent: tuple[str, int] | None = None
        self._dirs: list[tuple[str, tarfile.TarInfo]] = []

    def run(self) -> None:
        """Make every entry, then set the directories' attributes deepest first."""
        try:
            for member in self._tar:
                name = _normalized(member)
                if name != ".":
                    self._one(member, name)
        finally:
            self._drop_parent()
        for name, member in sorted(self._dirs, key=lambda d: -d[0].count("/")):
            with _beneath.opened_dir(self._root, name) as fd:
                self._set_attrs(fd, member)

    def _one(self, member: tarfile.TarInfo, name: str) -> None:
        parent, _, base = name.rpartition("/")
        pfd = self._parent_fd(parent)
        if member.isdir():
            with contextlib.suppress(FileExistsError):  # made before as a parent
                os.mkdir(base, 0o700, dir_fd=pfd)
            self._dirs.append((name, member))
        elif member.issym():
            os.symlink(member.linkname, base, dir_fd=pfd)
            if self._chown:
                os.chown(base, member.uid, member.gid, dir_fd=pfd, follow_symlinks=False)
        elif member.islnk():
            tparent, _, tbase = posixpath.normpath(member.linkname).rpartition("/")
            with _beneath.opened_dir(self._root, tparent) as tfd:
                os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        else:
            self._file(member, pfd, base)

    def _file(self, member: tarfile.TarInfo, pfd: int, base: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        body = self._tar.extractfile(member)
        with os.fdopen(os.open(base, flags, 0o600, dir_fd=pfd), "wb") as out:
            if body is not None:
                shutil.copyfileobj(body, out, _CHUNK)
            out.flush()
            self._set_attrs(out.fileno(), member)

    def _set_attrs(self, fd: int, member: tarfile.TarInfo) -> None:
        if self._chown:
            os.fchown(fd, member.uid, member.gid)
        os.fchmod(fd, member.mode & 0o755)
        mtime_ns = int(member.mtime * 1_000_000_000)
        os.utime(fd, ns=(mtime_ns, mtime_ns))

    def _parent_fd(self, parent: str) -> int:
        """The fd of directory ``parent`` of the staging tree, made if missing (cached)."""
        if self._parent is not None and self._parent[0] == parent:
            return self._parent[1]
        self._drop_parent()
        fd = os.dup(self._root)
        try:
            for part in _beneath.split_path(parent):
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
                step = os.open(part, _beneath.DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = step
        except BaseException:
            os.close(fd)
            raise
        self._parent = (parent, fd)
        return fd

    def _drop_parent(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None


def merge_tree(staged: str, dest: str) -> None:
    """Move the staged tree into ``dest`` (both paths); see :func:`merge_tree_at`."""
    with _beneath.opened_path(staged) as sfd, _beneath.opened_path(dest) as dfd:
        merge_tree_at(sfd, dfd)


def merge_tree_at(staged_fd: int, dest_fd: int) -> None:
    """Move the staged tree into the directory ``dest_fd``, replacing what the archive holds.

    Directories present on both sides are merged (and take the staged one's
    mode and times); anything else at a staged name (a file, a symlink, a
    directory in the way of a file) is replaced, a symlink as a link, never
    followed. Entries only in ``dest`` stay. Every step is a renameat or an
    unlinkat beneath the two fds, within one filesystem.
    """
    merged: list[str] = []
    pending = [""]
    while pending:
        rel = pending.pop()
        with _beneath.opened_dir(staged_fd, rel) as sfd, _beneath.opened_dir(dest_fd, rel) as dfd:
            for name in _merge_directory(sfd, dfd):
                pending.append(f"{rel}/{name}" if rel else name)
        if rel:
            merged.append(rel)
    for rel in reversed(merged):
        with _beneath.opened_dir(staged_fd, rel) as sfd, _beneath.opened_dir(dest_fd, rel) as dfd:
            st = os.fstat(sfd)
            os.fchmod(dfd, stat.S_IMODE(st.st_mode))
            os.utime(dfd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _merge_directory(sfd: int, dfd: int) -> list[str]:
    """Move the entries of ``sfd`` into ``dfd``; return the names of dirs on both sides."""
    both = []
    for name in sorted(os.listdir(sfd)):
        src_dir = stat.S_ISDIR(os.stat(name, dir_fd=sfd, follow_symlinks=False).st_mode)
        try:
            dest_mode = os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode
        except FileNotFoundError:
            os.rename(name, name, src_dir_fd=sfd, dst_dir_fd=dfd)
            continue
        if src_dir and stat.S_ISDIR(dest_mode):
            both.append(name)
            continue
        if src_dir or stat.S_ISDIR(dest_mode):  # rename(2) cannot replace across kinds
            _beneath.remove_all(dfd, name)
        os.rename(name, name, src_dir_fd=sfd, dst_dir_fd=dfd)
    return both
