"""Commands in a private mount namespace that shows the agent's root as ``/``.

When the agent serves a root directory on the host (the fake backend does), a
command it runs would otherwise see and change the host. :class:`Sandbox`
wraps each command in bubblewrap (``bwrap``): a fresh root with the host's
``/usr``, ``/bin``, ``/sbin`` and ``/lib*`` read-only (so ``/bin/sh`` works),
its own ``/proc``, ``/dev`` and ``/tmp``, and every other top-level directory
of the agent's root bound read-write in its place (``ROOT/data`` at ``/data``).
The binds are made from directory file descriptors opened beneath the root
without following symlinks, so a bot that swaps a directory for a symlink
cannot get a host directory bound; top-level symlinks are recreated inside
the sandbox, where they can only lead to what the sandbox holds. Nothing else
of the host (its ``/tmp``, ``/home``, ``/etc``, ``/root``) is visible.

Where bubblewrap is missing or cannot create namespaces (no root and
unprivileged user namespaces disabled), :func:`probe` says why, the agent
warns once and runs commands unconfined.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import NamedTuple

from .execproc import shell_script
from .rootfs import RootFS

__all__ = ["HOST_DIRS", "SANDBOX_PATH", "Sandbox", "Wrapped", "probe", "warn_unconfined"]

log = logging.getLogger("mcpmanager.agent")

#: Host directories every sandbox gets read-only (a symlink on the host, such
#: as a merged-/usr ``/bin``, is recreated as that symlink).
HOST_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")

#: PATH of a sandboxed command (the host's environment is not passed in).
SANDBOX_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_RESERVED = {*HOST_DIRS, "proc", "dev"}
_O_PATH: int = getattr(os, "O_PATH", os.O_RDONLY)
_DIR_FD_FLAGS = _O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NAMESPACES = ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent")

_probe_lock = threading.Lock()
_probe_result: list[str | None] = []  # [None] works, [reason] does not; [] not probed yet
_warned = threading.Event()


class Wrapped(NamedTuple):
    """A command ready for ``Popen``: its argv and the descriptors it must inherit."""

    argv: list[str]
    pass_fds: tuple[int, ...]


class Sandbox:
    """Builds the bubblewrap command line for commands of one :class:`RootFS`."""

    def __init__(self, fs: RootFS, bwrap: str) -> None:
        self._fs = fs
        self._bwrap = bwrap

    @classmethod
    def create(cls, fs: RootFS) -> Sandbox | None:
        """A sandbox for ``fs``, or None (after one warning) where none can be made."""
        reason = probe()
        if reason is not None:
            warn_unconfined(reason)
            return None
        bwrap = shutil.which("bwrap")
        assert bwrap is not None  # the probe found it
        return cls(fs, bwrap)

    @contextmanager
    def wrap(self, command: str, workdir: str) -> Iterator[Wrapped]:
        """``/bin/sh -c command`` in the sandbox, in container directory ``workdir``.

        The descriptors are closed when the block ends (start the process
        inside it).
        """
        fds: list[int] = []
        try:
            args = [self._bwrap, *_NAMESPACES, *_host_args(), "--proc", "/proc", "--dev", "/dev"]
            args += self._root_args(fds)
            args += ["--chdir", workdir, "--", "/bin/sh", "-c", shell_script(command)]
            yield Wrapped(args, tuple(fds))
        finally:
            for fd in fds:
                with suppress(OSError):
                    os.close(fd)

    def _root_args(self, fds: list[int]) -> list[str]:
        args: list[str] = []
        have_tmp = False
        root_fd = self._fs.open_root()
        try:
            for name, st in _entries(root_fd):
                if name in _RESERVED:
                    continue
                if stat.S_ISLNK(st.st_mode):
                    args += ["--symlink", os.readlink(name, dir_fd=root_fd), f"/{name}"]
                elif stat.S_ISDIR(st.st_mode):
                    try:
                        fd = os.open(name, _DIR_FD_FLAGS, dir_fd=root_fd)
                    except OSError:  # gone, or swapped for a symlink since the scan
                        continue
                    fds.append(fd)
                    args += ["--bind-fd", str(fd), f"/{name}"]
                else:
                    continue
                have_tmp = have_tmp or name == "tmp"
        finally:
            os.close(root_fd)
        if not have_tmp:
            args += ["--tmpfs", "/tmp"]
        return args


def _entries(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    out = []
    with os.scandir(dir_fd) as it:
        for entry in it:
            with suppress(OSError):
                out.append((entry.name, entry.stat(follow_symlinks=False)))
    return sorted(out, key=lambda item: item[0])


def _host_args() -> list[str]:
    args: list[str] = []
    for name in HOST_DIRS:
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    return args


def probe() -> str | None:
    """None when bubblewrap can build our sandboxes here, else why not (cached)."""
    with _probe_lock:
        if not _probe_result:
            _probe_result.append(_run_probe())
        return _probe_result[0]


def _run_probe() -> str | None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed"
    fd = os.open("/usr", _DIR_FD_FLAGS)
    try:
        argv: Sequence[str] = [
            bwrap,
            *_NAMESPACES,
            *_host_args(),
            "--proc",
            "/proc",
            "--ro-bind-fd",
            str(fd),
            "/probe",
            "--",
            "/bin/sh",
            "-c",
            "test -d /probe/bin",
        ]
        done = subprocess.run(
            argv, pass_fds=(fd,), capture_output=True, timeout=30, check=False, env={}
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap cannot run: {exc}"
    finally:
        os.close(fd)
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip() or f"exit {done.returncode}"
        return f"bwrap cannot create a sandbox here: {detail}"
    return None


def warn_unconfined(reason: str) -> None:
    """Log, once per process, that commands run on the host unconfined, and why."""
    if not _warned.is_set():
        _warned.set()
        log.warning(
            "exec is not confined: %s; commands run on the host as %s and see its whole "
            "file system (install bubblewrap, or allow user namespaces, to confine them)",
            reason,
            f"uid {os.geteuid()}",
        )
