"""The container's file tree, rooted at a host directory that nothing escapes.

Container paths are absolute, or relative to ``/data``, and are first cleaned
lexically (as memoh's Go agent does); a path whose ``..`` would climb above
``/`` is refused. ``/x`` then means ``ROOT/x``. Resolution walks the tree one
component at a time through directory file descriptors, never handing the
kernel a whole host path: a symlink is read and followed *inside* the root
(an absolute target starts again at ROOT, as it would inside the container),
a symlink whose ``..`` climbs above the root is refused, and each step opens
with ``O_NOFOLLOW``, so a symlink swapped in during the walk makes the call
fail instead of leading outside. With ROOT ``/`` this is the container's own
view.

Hard links are files like any other: reading one reads it (whatever other
names it has), but nothing writes into a multiply-linked inode in place
(WriteFile replaces it), and deleting or renaming one touches only its name
in the root.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import BinaryIO, NamedTuple

import grpc

from ..client.protocol import DEFAULT_WORKDIR
from .failures import AgentError, from_os_error

__all__ = ["MAX_SYMLINKS", "AtomicWriter", "Resolved", "RootFS", "clean"]

#: Symlinks one resolution may follow (Linux's limit).
MAX_SYMLINKS = 40

_O_PATH: int = getattr(os, "O_PATH", os.O_RDONLY)
_O_CLOEXEC: int = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)
_O_NOCTTY: int = getattr(os, "O_NOCTTY", 0)
_WALK_DIR = _O_PATH | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC
_READ_DIR = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC


def clean(path: str) -> str:
    """The absolute, lexically clean container path for ``path``.

    Relative paths are under ``/data``. Raises INVALID_ARGUMENT for an empty
    path, a NUL byte, or ``..`` climbing above the container root.
    """
    if not path:
        raise AgentError.invalid("path is required")
    if "\0" in path:
        raise AgentError.invalid(f"path {path!r} contains a NUL byte")
    full = path if path.startswith("/") else f"{DEFAULT_WORKDIR}/{path}"
    parts: list[str] = []
    for comp in full.split("/"):
        if comp in ("", "."):
            continue
        if comp == "..":
            if not parts:
                raise AgentError.invalid(f"path {path!r} climbs above the container root")
            parts.pop()
            continue
        parts.append(comp)
    return "/" + "/".join(parts)


class Resolved(NamedTuple):
    """Where a container path leads: entry ``name`` of directory ``dir_fd``.

    ``name`` is ``"."`` when the path is a directory reached as a whole (the
    root, or a symlink to a directory ending in ``/``). ``path`` is the
    container path reached, with symlinks resolved. ``dir_fd`` is only valid
    inside the ``with`` block of :meth:`RootFS.resolve`.
    """

    dir_fd: int
    name: str
    path: str


class RootFS:
    """File operations on container paths, all confined to ``root``."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        if not os.path.isdir(self.root):
            raise AgentError.invalid(f"root {root!r} is not a directory")

    def host_path(self, container_path: str) -> str:
        """The host path of a resolved container path."""
        if self.root == "/":
            return container_path
        return self.root if container_path == "/" else self.root + container_path

    # -- resolution ------------------------------------------------------------

    @contextmanager
    def resolve(
        self, cpath: str, op: str, *, follow: bool = True, create_parents: bool = False
    ) -> Iterator[Resolved]:
        """Walk clean container path ``cpath`` inside the root.

        Every directory on the way must exist (or is created, mode 0750, with
        ``create_parents``); the last component need not. ``follow`` says
        whether a symlink in the last place is followed (always, elsewhere).
        """
        stack: list[tuple[int, str]] = []
        try:
            try:
                found = self._walk(cpath, stack, follow=follow, create_parents=create_parents)
            except OSError as exc:
                raise from_os_error(exc, op, cpath) from exc
            yield found
        finally:
            for fd, _ in stack:
                os.close(fd)

    def _walk(
        self, cpath: str, stack: list[tuple[int, str]], *, follow: bool, create_parents: bool
    ) -> Resolved:
        stack.append((os.open(self.root, _WALK_DIR), ""))
        comps = deque(c for c in cpath.split("/") if c)
        links = 0

        def here(name: str = "") -> str:
            names = [n for _, n in stack[1:]]
            if name and name != ".":
                names.append(name)
            return "/" + "/".join(names)

        while comps:
            comp = comps.popleft()
            if comp == "..":
                if len(stack) == 1:
                    raise AgentError.denied(
                        f"{cpath}: a symlink on the way points outside the container root"
                    )
                os.close(stack.pop()[0])
                continue
            dir_fd = stack[-1][0]
            last = not comps
            try:
                st = os.stat(comp, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                if last:
                    return Resolved(dir_fd, comp, here(comp))
                if not create_parents:
                    raise AgentError.not_found(f"{cpath}: {here(comp)} does not exist") from None
                with suppress(FileExistsError):
                    os.mkdir(comp, 0o750, dir_fd=dir_fd)
                st = os.stat(comp, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode) and (follow or not last):
                links += 1
                if links > MAX_SYMLINKS:
                    raise AgentError.invalid(f"{cpath}: too many levels of symbolic links")
                target = os.readlink(comp, dir_fd=dir_fd)
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop()[0])
                comps.extendleft(reversed([c for c in target.split("/") if c and c != "."]))
                continue
            if last:
                return Resolved(dir_fd, comp, here(comp))
            if not stat.S_ISDIR(st.st_mode):
                raise AgentError.not_found(f"{cpath}: {here(comp)} is not a directory")
            fd = os.open(comp, _WALK_DIR, dir_fd=dir_fd)
            stack.append((fd, comp))
            if not stat.S_ISDIR(os.fstat(fd).st_mode):  # swapped since the stat: refuse
                raise AgentError.denied(f"{cpath}: {here()} changed while it was being resolved")
        return Resolved(stack[-1][0], ".", here())

    # -- reading ---------------------------------------------------------------

    @contextmanager
    def open_regular(self, path: str, op: str) -> Iterator[BinaryIO]:
        """Open a regular file for reading (symlinks followed inside the root)."""
        cpath = clean(path)
        with self.resolve(cpath, op) as r:
            try:
                fd = os.open(
                    r.name,
                    os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK | _O_NOCTTY,
                    dir_fd=r.dir_fd,
                )
            except OSError as exc:
                raise from_os_error(exc, op, cpath) from exc
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                raise AgentError.invalid(f"{op} {cpath}: is a directory")
            if not stat.S_ISREG(st.st_mode):
                raise AgentError.invalid(f"{op} {cpath}: not a regular file")
            os.set_blocking(fd, True)
            f = os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            yield f

    def stat(self, path: str) -> tuple[str, os.stat_result]:
        """The base name of ``path`` and its ``lstat`` once symlinks are followed."""
        cpath = clean(path)
        with self.resolve(cpath, "stat") as r:
            try:
                st = os.stat(r.name, dir_fd=r.dir_fd, follow_symlinks=False)
            except OSError as exc:
                raise from_os_error(exc, "stat", cpath) from exc
        return posixpath.basename(cpath) or "/", st

    def list_dir(self, path: str, recursive: bool) -> list[tuple[str, os.stat_result]]:
        """A directory's entries (relative paths and ``lstat``), sorted, depth first.

        Like Go's ``filepath.WalkDir``: symlinks are listed, not followed, and
        entries or directories that cannot be read are skipped.
        """
        cpath = clean(path)
        with self.resolve(cpath, "list") as r:
            try:
                top = os.open(r.name, _READ_DIR, dir_fd=r.dir_fd)
            except NotADirectoryError:
                raise AgentError.invalid(f"list {cpath}: not a directory") from None
            except OSError as exc:
                raise from_os_error(exc, "list", cpath) from exc
        entries: list[tuple[str, os.stat_result]] = []
        open_fds = [top]
        try:
            walk: list[tuple[int, str, Iterator[tuple[str, os.stat_result]]]] = [
                (top, "", iter(_scan(top)))
            ]
            while walk:
                dir_fd, prefix, it = walk[-1]
                item = next(it, None)
                if item is None:
                    walk.pop()
                    if dir_fd != top:
                        open_fds.remove(dir_fd)
                        os.close(dir_fd)
                    continue
                name, st = item
                entries.append((prefix + name, st))
                if recursive and stat.S_ISDIR(st.st_mode):
                    try:
                        sub = os.open(name, _READ_DIR, dir_fd=dir_fd)
                    except OSError:
                        continue
                    open_fds.append(sub)
                    walk.append((sub, f"{prefix}{name}/", iter(_scan(sub))))
        finally:
            for fd in open_fds:
                os.close(fd)
        return entries

    def open_workdir(self, path: str) -> tuple[str, int]:
        """An existing directory for a command to run in: its resolved path and a descriptor.

        The descriptor (``O_PATH``, the caller closes it) is the directory
        itself, so a command started in ``/proc/self/fd/N`` runs there even if
        the bot swaps a path component for a symlink meanwhile.
        """
        cpath = clean(path)
        with self.resolve(cpath, "exec") as r:
            try:
                fd = os.open(r.name, _WALK_DIR, dir_fd=r.dir_fd)
            except FileNotFoundError:
                raise AgentError.not_found(f"exec: work dir {cpath} does not exist") from None
            except NotADirectoryError:
                raise AgentError.invalid(f"exec: work dir {cpath} is not a directory") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # a symlink now, not a directory
                    raise AgentError.invalid(f"exec: work dir {cpath} is not a directory") from None
                raise from_os_error(exc, "exec", cpath) from exc
            return r.path, fd

    def open_root(self) -> int:
        """A readable descriptor of the root directory itself (the caller closes it)."""
        return os.open(self.root, _READ_DIR)

    # -- writing ---------------------------------------------------------------

    def write_file(self, path: str, content: bytes, mode: int = 0o600) -> None:
        """Create (``mode``) or truncate a regular file and write ``content``; parents made.

        A file with more than one hard link is replaced instead (as by
        :class:`AtomicWriter`), so the same inode seen under another name, which
        may be outside the root, is never written.
        """
        cpath = clean(path)
        with self.resolve(cpath, "write", create_parents=True) as r:
            if r.name == ".":
                raise AgentError.invalid(f"write {cpath}: is a directory")
            try:
                fd = os.open(
                    r.name,
                    os.O_WRONLY | os.O_CREAT | _O_NOFOLLOW | _O_CLOEXEC | _O_NONBLOCK | _O_NOCTTY,
                    mode,
                    dir_fd=r.dir_fd,
                )
            except OSError as exc:
                raise from_os_error(exc, "write", cpath) from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise AgentError.invalid(f"write {cpath}: not a regular file")
            if st.st_nlink <= 1:
                os.set_blocking(fd, True)
                os.ftruncate(fd, 0)
                _write_all(fd, content)
                return
        except OSError as exc:
            raise from_os_error(exc, "write", cpath) from exc
        finally:
            os.close(fd)
        # A hard link: its other names (perhaps outside the root) keep their content.
        writer = self.atomic_writer(cpath)
        try:
            writer.write(content)
            writer.commit()
        finally:
            writer.abort()

    def create_new(self, path: str, src: BinaryIO, mode: int = 0o644) -> bool:
        """Copy ``src`` into a file that must not exist yet; False (and nothing done) if it does."""
        cpath = clean(path)
        with self.resolve(cpath, "seed", follow=False, create_parents=True) as r:
            if r.name == ".":
                return False
            try:
                fd = os.open(
                    r.name,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC,
                    mode,
                    dir_fd=r.dir_fd,
                )
            except FileExistsError:
                return False
            except OSError as exc:
                raise from_os_error(exc, "seed", cpath) from exc
        import shutil  # only template seeding copies: kept out of an idle agent

        with os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst)
        return True

    def atomic_writer(self, path: str) -> AtomicWriter:
        """A writer that replaces ``path`` only when committed (see :class:`AtomicWriter`)."""
        return AtomicWriter(self, clean(path))

    def mkdir(self, path: str) -> None:
        """Create a directory (mode 0750) and its parents; an existing directory is fine."""
        cpath = clean(path)
        with self.resolve(cpath, "mkdir", create_parents=True) as r:
            if r.name == ".":
                return
            try:
                os.mkdir(r.name, 0o750, dir_fd=r.dir_fd)
            except FileExistsError:
                st = os.stat(r.name, dir_fd=r.dir_fd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    raise AgentError(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"mkdir {cpath}: exists and is not a directory",
                    ) from None
            except OSError as exc:
                raise from_os_error(exc, "mkdir", cpath) from exc

    def rename(self, old: str, new: str) -> None:
        """Move ``old`` to ``new``, creating ``new``'s parents; symlinks themselves are moved."""
        old_c, new_c = clean(old), clean(new)
        what = f"{old_c} -> {new_c}"
        if "/" in (old_c, new_c):
            raise AgentError.invalid(f"rename {what}: cannot move the container root")
        with (
            self.resolve(old_c, "rename", follow=False) as src,
            self.resolve(new_c, "rename", follow=False, create_parents=True) as dst,
        ):
            if "." in (src.name, dst.name):
                raise AgentError.invalid(f"rename {what}: not a plain path")
            try:
                os.rename(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd)
            except FileNotFoundError:
                raise AgentError.not_found(f"rename {what}: {old_c} does not exist") from None
            except OSError as exc:
                raise from_os_error(exc, "rename", what) from exc

    def delete(self, path: str, recursive: bool) -> None:
        """Remove a file, symlink or empty directory (any directory if ``recursive``).

        A path that does not exist is not an error. The root cannot be removed.
        """
        cpath = clean(path)
        if cpath == "/":
            raise AgentError.invalid("delete /: refusing to remove the container root")
        try:
            with self.resolve(cpath, "delete", follow=False) as r:
                if r.name == ".":
                    raise AgentError.invalid(f"delete {cpath}: not a plain path")
                try:
                    st = os.stat(r.name, dir_fd=r.dir_fd, follow_symlinks=False)
                    if not stat.S_ISDIR(st.st_mode):
                        os.unlink(r.name, dir_fd=r.dir_fd)
                    elif recursive:
                        _rmtree(r.dir_fd, r.name)
                    else:
                        os.rmdir(r.name, dir_fd=r.dir_fd)
                except FileNotFoundError:
                    return
                except OSError as exc:
                    raise from_os_error(exc, "delete", cpath) from exc
        except AgentError as exc:
            if exc.code is grpc.StatusCode.NOT_FOUND:  # a parent is missing: nothing to delete
                return
            raise


class AtomicWriter:
    """Writes a file beside its target and renames it into place on :meth:`commit`.

    The target (symlinks followed inside the root) keeps its old content until
    then; :meth:`abort` removes the partial file. An existing target's
    permission bits (and, where allowed, owner) carry over; a new file gets
    0666 less the umask, like ``os.Create``.
    """

    def __init__(self, fs: RootFS, cpath: str) -> None:
        self.path = cpath
        self.written = 0
        with fs.resolve(cpath, "write", create_parents=True) as r:
            if r.name == ".":
                raise AgentError.invalid(f"write {cpath}: is a directory")
            self._dir_fd = os.dup(r.dir_fd)
            self._name = r.name
        try:
            self._fd = self._create()
        except BaseException:
            os.close(self._dir_fd)
            raise
        self._done = False

    def _create(self) -> int:
        try:
            st: os.stat_result | None = os.stat(
                self._name, dir_fd=self._dir_fd, follow_symlinks=False
            )
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise from_os_error(exc, "write", self.path) from exc
        if st is not None and stat.S_ISDIR(st.st_mode):
            raise AgentError.invalid(f"write {self.path}: is a directory")
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise AgentError.invalid(f"write {self.path}: not a regular file")
        self._tmp = f".{self._name[:200]}.{os.urandom(6).hex()}.part"
        try:
            fd = os.open(
                self._tmp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC,
                0o600 if st is not None else 0o666,
                dir_fd=self._dir_fd,
            )
        except OSError as exc:
            raise from_os_error(exc, "write", self.path) from exc
        if st is not None:
            try:
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                if os.geteuid() == 0:
                    os.fchown(fd, st.st_uid, st.st_gid)
            except OSError:
                pass
        return fd

    def write(self, data: bytes) -> None:
        """Append ``data``."""
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            raise from_os_error(exc, "write", self.path) from exc
        self.written += len(data)

    def commit(self) -> None:
        """Put the new file in place of the target."""
        if self._done:
            return
        self._done = True
        try:
            os.close(self._fd)
            os.rename(self._tmp, self._name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        except OSError as exc:
            self._discard()
            raise from_os_error(exc, "write", self.path) from exc
        finally:
            os.close(self._dir_fd)

    def abort(self) -> None:
        """Drop the partial file; the target stays as it was. Idempotent."""
        if self._done:
            return
        self._done = True
        with suppress(OSError):
            os.close(self._fd)
        self._discard()
        os.close(self._dir_fd)

    def _discard(self) -> None:
        with suppress(OSError):
            os.unlink(self._tmp, dir_fd=self._dir_fd)


def _scan(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    """A directory's entries with their ``lstat``, sorted by name; unreadable ones skipped."""
    out: list[tuple[str, os.stat_result]] = []
    try:
        with os.scandir(dir_fd) as it:
            for entry in it:
                try:
                    out.append((entry.name, entry.stat(follow_symlinks=False)))
                except OSError:
                    continue
    except OSError:
        return []
    out.sort(key=lambda item: item[0])
    return out


def _rmtree(parent_fd: int, name: str) -> None:
    """Remove directory ``name`` of ``parent_fd`` and everything in it, never following links."""
    first = os.open(name, _READ_DIR, dir_fd=parent_fd)
    try:
        children = _children(first)
    except BaseException:
        os.close(first)
        raise
    # Each level: its fd, its name, its parent's fd, its remaining entries.
    stack: list[tuple[int, str, int, Iterator[tuple[str, bool]]]] = [
        (first, name, parent_fd, iter(children))
    ]
    try:
        while stack:
            fd, dname, pfd, it = stack[-1]
            item = next(it, None)
            if item is None:
                stack.pop()
                os.close(fd)
                os.rmdir(dname, dir_fd=pfd)
                continue
            child, is_dir = item
            if is_dir:
                sub = os.open(child, _READ_DIR, dir_fd=fd)
                try:
                    children = _children(sub)
                except BaseException:
                    os.close(sub)
                    raise
                stack.append((sub, child, fd, iter(children)))
            else:
                with suppress(FileNotFoundError):
                    os.unlink(child, dir_fd=fd)
    finally:
        for fd, _, _, _ in stack:
            os.close(fd)


def _children(dir_fd: int) -> list[tuple[str, bool]]:
    with os.scandir(dir_fd) as it:
        return [(e.name, e.is_dir(follow_symlinks=False)) for e in it]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
