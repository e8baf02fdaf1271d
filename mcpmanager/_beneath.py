"""File work beneath a directory fd that never follows a symlink and never leaves it.

A bot controls everything inside its rootfs, so host code that walks it must
not resolve a path the bot could have turned into a symlink. Every function
here takes a directory file descriptor we opened ourselves (the trusted mount
point) and a relative path inside it, and opens, creates or removes entries
without following symlinks. Paths are opened with ``openat2`` and
``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV`` where the kernel
has it (Linux 5.6+), else one ``O_NOFOLLOW`` component at a time through
directory fds.

Hand-written because neither the standard library nor a maintained package
offers openat2 or a symlink-free walk beneath a dir fd (shutil.rmtree takes
``dir_fd`` only from Python 3.11).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import stat
from collections.abc import Iterator

__all__ = [
    "DIR_FLAGS",
    "describe",
    "describe_path",
    "kind_of",
    "open_beneath",
    "open_dir",
    "opened_dir",
    "opened_path",
    "remove_all",
    "split_path",
]

#: Flags to open a directory read-only without following a symlink at the last step.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

# openat2(2): syscall number 437 on every architecture (the unified table).
_SYS_OPENAT2 = 437
_RESOLVE_NO_XDEV = 0x01
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_RESOLVE = _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS | _RESOLVE_NO_MAGICLINKS | _RESOLVE_NO_XDEV


class _OpenHow(ctypes.Structure):
    _fields_ = (
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    )


class _Openat2:
    """The openat2 syscall through libc's ``syscall``, or None once it proves missing."""

    def __init__(self) -> None:
        self._libc: ctypes.CDLL | None = None
        self.available = True

    def __call__(self, dir_fd: int, path: str, flags: int, mode: int) -> int | None:
        """An fd, or None if this kernel (or a seccomp filter) lacks openat2."""
        if not self.available:
            return None
        if self._libc is None:
            self._libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        how = _OpenHow(flags | os.O_CLOEXEC, mode if flags & os.O_CREAT else 0, _RESOLVE)
        fd = self._libc.syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err in (errno.ENOSYS, errno.EPERM, errno.E2BIG):
            self.available = False
            return None
        raise OSError(err, os.strerror(err), path)


_openat2 = _Openat2()


def split_path(path: str) -> list[str]:
    """The components of a relative path; OSError(EXDEV) for anything that could leave."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if path.startswith("/") or ".." in parts:
        raise OSError(errno.EXDEV, "path leaves the directory", path)
    return parts


def open_beneath(dir_fd: int, path: str, flags: int, mode: int = 0o600) -> int:
    """Open ``path`` beneath ``dir_fd`` without following any symlink on the way.

    A symlink anywhere in ``path`` (the last component too) is ELOOP, ``..``
    or an absolute path EXDEV. ``path`` ``""`` or ``"."`` opens ``dir_fd``
    itself again (with ``flags``).
    """
    parts = split_path(path)
    if not parts:
        return os.open(".", flags | os.O_CLOEXEC, dir_fd=dir_fd)
    fd = _openat2(dir_fd, "/".join(parts), flags, mode)
    if fd is not None:
        return fd
    return _open_by_components(dir_fd, parts, flags, mode)


def _open_by_components(dir_fd: int, parts: list[str], flags: int, mode: int) -> int:
    current = dir_fd
    try:
        for part in parts[:-1]:
            step = os.open(part, DIR_FLAGS, dir_fd=current)
            if current != dir_fd:
                os.close(current)
            current = step
        return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=current)
    finally:
        if current != dir_fd:
            os.close(current)


def open_dir(dir_fd: int, path: str) -> int:
    """A read-only fd of the directory ``path`` beneath ``dir_fd`` (no symlink followed)."""
    return open_beneath(dir_fd, path, DIR_FLAGS)


@contextlib.contextmanager
def opened_dir(dir_fd: int, path: str) -> Iterator[int]:
    """:func:`open_dir` for the length of a ``with`` block."""
    fd = open_dir(dir_fd, path)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def opened_path(path: str) -> Iterator[int]:
    """A directory fd of the host path ``path`` (our own, trusted up to its last component)."""
    fd = os.open(path, DIR_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


_KINDS = (
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a fifo"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def kind_of(mode: int) -> str:
    """``"a symlink"``, ``"a regular file"``, ... for an ``st_mode``."""
    return next((name for test, name in _KINDS if test(mode)), "an unknown kind of file")


def describe(dir_fd: int, name: str) -> str:
    """What the entry ``name`` (one component) of ``dir_fd`` is, for an error message.

    Never follows it: a symlink is described as one, with its target.
    """
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if stat.S_ISLNK(mode):
        try:
            return f"a symlink (to {os.readlink(name, dir_fd=dir_fd)!r})"
        except OSError:
            return "a symlink"
    return kind_of(mode)


def describe_path(parent: str, name: str) -> str:
    """:func:`describe` for the entry ``name`` of the host directory ``parent``."""
    try:
        with opened_path(parent) as fd:
            return describe(fd, name)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"


def remove_all(dir_fd: int, name: str) -> None:
    """Remove the entry ``name`` of ``dir_fd`` and, if it is a directory, all beneath it.

    A symlink is removed as a link; nothing outside ``dir_fd`` is touched.
    One fd is held at a time: the walk goes down by name with ``O_NOFOLLOW``
    and back up through ``..``, checked to be the directory it came from, so
    neither depth nor the fd limit bounds it.
    """
    try:
        os.unlink(name, dir_fd=dir_fd)
        return
    except IsADirectoryError:
        pass
    except PermissionError:  # EPERM: some systems refuse unlink(2) on a directory this way
        if not stat.S_ISDIR(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
            raise
    # Each level: (identity of the parent, this directory's name, subdirs left to remove).
    levels: list[tuple[tuple[int, int], str, list[str]]] = []
    parent, fd, entry = _identity(dir_fd), os.open(name, DIR_FLAGS, dir_fd=dir_fd), name
    try:
        while True:
            levels.append((parent, entry, _clear_files(fd)))
            while levels and not levels[-1][2]:
                expected, done, _ = levels.pop()
                below, fd = fd, -1
                fd = _up(below, expected)
                os.rmdir(done, dir_fd=fd)
            if not levels:
                return
            entry = levels[-1][2].pop()
            parent = _identity(fd)
            child = os.open(entry, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        if fd >= 0:
            os.close(fd)


def _identity(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _up(fd: int, expected: tuple[int, int]) -> int:
    """The parent of ``fd`` (which is closed), if it is still the directory we came from."""
    try:
        up = os.open("..", DIR_FLAGS, dir_fd=fd)
    finally:
        os.close(fd)
    if _identity(up) != expected:
        os.close(up)
        raise OSError(errno.EXDEV, "a directory moved while it was being removed")
    return up


def _clear_files(fd: int) -> list[str]:
    """Unlink every non-directory in ``fd``; return the names of its subdirectories."""
    subdirs = []
    with os.scandir(fd) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
    return subdirs
