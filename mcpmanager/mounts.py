"""Show a snapshot's filesystem in a host directory for the length of a ``with`` block."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import tempfile
from collections.abc import Iterator, Sequence

from . import errors
from ._log import get_logger
from .types import MountInfo

__all__ = ["mounted", "mounted_root"]

log = get_logger("mcpmanager.mounts")

# mount(2) flags we translate from option words (linux/mount.h).
_MS_RDONLY = 0x1
_MS_NOSUID = 0x2
_MS_NODEV = 0x4
_MS_NOEXEC = 0x8
_MS_REMOUNT = 0x20
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MNT_DETACH = 0x2
_FLAGS = {
    "ro": _MS_RDONLY,
    "nosuid": _MS_NOSUID,
    "nodev": _MS_NODEV,
    "noexec": _MS_NOEXEC,
    "bind": _MS_BIND,
    "rbind": _MS_BIND | _MS_REC,
}
_IGNORED = {"rw", "suid", "dev", "exec", "defaults"}


def _libc() -> ctypes.CDLL:
    # No maintained Python binding for mount(2) exists; two libc calls via ctypes suffice.
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _split_options(options: Sequence[str]) -> tuple[int, str]:
    flags, data = 0, []
    for opt in options:
        if opt in _FLAGS:
            flags |= _FLAGS[opt]
        elif opt not in _IGNORED:
            data.append(opt)
    return flags, ",".join(data)


def _readonly(m: MountInfo) -> MountInfo:
    """The read-only form of a mount; an overlay loses its upper dir (nothing to write)."""
    opts = [o for o in m.options if o != "rw"]
    if m.type == "overlay":
        upper = next((o.split("=", 1)[1] for o in opts if o.startswith("upperdir=")), "")
        lower = next((o.split("=", 1)[1] for o in opts if o.startswith("lowerdir=")), "")
        rest = [o for o in opts if not o.startswith(("upperdir=", "workdir=", "lowerdir="))]
        lowers = ":".join(x for x in (upper, lower) if x)
        opts = [*rest, f"lowerdir={lowers}"]
        if ":" not in lowers:  # overlay needs two layers; a single one is a bind mount
            return MountInfo(type="bind", source=lowers, options=("rbind", "ro"))
    return MountInfo(type=m.type, source=m.source, target=m.target, options=(*opts, "ro"))


def _mount(libc: ctypes.CDLL, m: MountInfo, target: str) -> None:
    flags, data = _split_options(m.options)
    kind = "none" if flags & _MS_BIND else m.type
    if libc.mount(m.source.encode(), target.encode(), kind.encode(), flags, data.encode() or None):
        err = ctypes.get_errno()
        raise OSError(err, f"mount {m.type} {m.source} on {target}: {os.strerror(err)}")
    if flags & _MS_BIND and flags & _MS_RDONLY:  # a bind mount turns read-only on remount
        remount = _MS_REMOUNT | _MS_BIND | _MS_RDONLY
        if libc.mount(b"none", target.encode(), None, remount, None):
            err = ctypes.get_errno()
            _unmount(libc, target)
            raise OSError(err, f"remount {target} read-only: {os.strerror(err)}")


def _unmount(libc: ctypes.CDLL, target: str) -> None:
    if libc.umount2(target.encode(), 0) == 0:
        return
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOENT):  # not mounted
        return
    log.warning("unmount %s failed (%s); detaching it lazily", target, os.strerror(err))
    libc.umount2(target.encode(), _MNT_DETACH)


def _in_place(mounts: Sequence[MountInfo]) -> str | None:
    """The directory to use without mounting: a single bind mount of a directory."""
    if len(mounts) == 1 and mounts[0].type == "bind" and os.path.isdir(mounts[0].source):
        return mounts[0].source
    return None


@contextlib.contextmanager
def mounted(mounts: Sequence[MountInfo], *, readonly: bool = False) -> Iterator[str]:
    """Yield a host directory showing ``mounts`` (a snapshot's root); always unmount.

    A single bind mount of a directory is used in place, unprivileged (the
    fake's snapshots). Anything else (overlay, ...) is mounted with mount(2) on
    a temporary directory, which needs root.
    """
    if not mounts:
        raise errors.InvalidArgument("snapshot has no mounts")
    here = _in_place(mounts)
    if here is not None:
        yield here
        return
    if os.geteuid() != 0:
        raise errors.FailedPrecondition(f"mounting a {mounts[0].type} snapshot needs root")
    libc = _libc()
    target = tempfile.mkdtemp(prefix="mcp-mount-")
    layers = 0
    try:
        try:
            for m in mounts:
                _mount(libc, _readonly(m) if readonly else m, target)
                layers += 1
        except OSError as exc:
            raise errors.FailedPrecondition(f"cannot mount snapshot: {exc}") from exc
        yield target
    finally:
        for _ in range(layers):
            _unmount(libc, target)
        with contextlib.suppress(OSError):
            os.rmdir(target)


@contextlib.contextmanager
def mounted_root(mounts: Sequence[MountInfo], *, readonly: bool = False) -> Iterator[int]:
    """:func:`mounted`, yielding a directory fd of the snapshot's root instead of a path.

    The mount point is ours (a fresh temporary directory, or the snapshot's
    own directory), so opening it by path is safe; what lies beneath it is
    the bot's, and callers walk it through this fd only.
    """
    with mounted(mounts, readonly=readonly) as root:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)
