"""Moving a bot's ``/data`` in and out: through its mounted snapshot, or its agent.

The Manager decides when (under the bot lock, with the task stopped); these
functions do the moving, each ordered so that a failure leaves the old data
intact: imports are checked whole before anything is written and extracted
into a staging directory beside ``/data`` before being moved in; backups are
written to a temporary file and renamed into place.

Everything inside a snapshot is the bot's to change, so the host walks it
only through directory fds beneath the mount point and never follows a
symlink (:mod:`mcpmanager._beneath`). A ``/data`` that is not a real
directory is refused with FailedPrecondition: the call is fine, the
container's state is not.
"""

from __future__ import annotations

import os
import secrets
import tarfile
import tempfile
from typing import IO, TYPE_CHECKING

from . import _beneath, archive, errors
from ._log import get_logger
from .mounts import mounted_root
from .types import MountInfo

if TYPE_CHECKING:
    from .client import Client

__all__ = [
    "DATA_DIR",
    "backup_path",
    "export_from_mounts",
    "export_via_agent",
    "import_into_mounts",
    "import_via_agent",
    "legacy_dir",
]

log = get_logger("mcpmanager.data")

DATA_DIR = "/data"
BACKUPS_SUBDIR = "backups"
LEGACY_SUBDIR = "bots"
MIGRATED_SUFFIX = ".migrated"
STAGING_PREFIX = ".mcp-import-"


def backup_path(data_root: str, bot_id: str) -> str:
    """Where ``preserve_data`` keeps a bot's archive: ``<data_root>/backups/<bot>.tar.gz``."""
    return os.path.join(data_root, BACKUPS_SUBDIR, f"{bot_id}.tar.gz")


def legacy_dir(data_root: str, bot_id: str) -> str:
    """The bind-mounted data directory of memoh's older layout: ``<data_root>/bots/<bot>``."""
    return os.path.join(data_root, LEGACY_SUBDIR, bot_id)


def export_from_mounts(mounts: list[MountInfo], dest: IO[bytes]) -> int:
    """tar.gz the ``/data`` of a stopped container's snapshot into ``dest``.

    The mount point is ours; everything beneath it is the bot's, so ``data``
    is opened beneath it without following a symlink. No ``/data``: an
    empty archive. A ``/data`` that is a symlink, file, device, fifo or
    socket: FailedPrecondition, and nothing is read.
    """
    with mounted_root(mounts, readonly=True) as root_fd:
        data_fd = _open_data(root_fd, create=False)
        if data_fd is None:
            return archive.write_tree_at(dest, None)
        try:
            return archive.write_tree_at(dest, data_fd)
        finally:
            os.close(data_fd)


def import_into_mounts(mounts: list[MountInfo], checked: IO[bytes]) -> None:
    """Unpack a checked archive into a stopped container's ``/data``.

    ``/data`` must be a real directory (made, mode 0755, if missing); a
    symlink, file or device there is FailedPrecondition before anything is
    written. The archive is extracted into a fresh staging directory beside
    ``/data`` first, so a failure part-way leaves ``/data`` as it was; only
    then are the entries renamed in. All of it goes through directory fds
    beneath the mount point: nothing is followed, unlinked or renamed
    outside the snapshot.
    """
    with mounted_root(mounts) as root_fd:
        data_fd = _open_data(root_fd, create=True)
        assert data_fd is not None
        try:
            staging = _make_staging(root_fd)
            try:
                with _beneath.opened_dir(root_fd, staging) as staging_fd:
                    archive.extract_checked_at(checked, staging_fd)
                    archive.merge_tree_at(staging_fd, data_fd)
            finally:
                _remove_staging(root_fd, staging)
        finally:
            os.close(data_fd)


def _open_data(root_fd: int, *, create: bool) -> int | None:
    """An fd of ``/data`` beneath the root, never through a symlink; None if it is missing."""
    name = DATA_DIR.lstrip("/")
    try:
        return _beneath.open_dir(root_fd, name)
    except FileNotFoundError:
        if not create:
            return None
    except OSError as exc:
        raise _unusable_data(root_fd, name) from exc
    try:
        os.mkdir(name, 0o755, dir_fd=root_fd)  # mkdir(2) never follows the last component
        fd = _beneath.open_dir(root_fd, name)
    except OSError as exc:
        raise _unusable_data(root_fd, name) from exc
    os.fchmod(fd, 0o755)  # whatever the umask
    return fd


def _unusable_data(root_fd: int, name: str) -> errors.FailedPrecondition:
    what = _beneath.describe(root_fd, name)
    verb = "follow" if what.startswith("a symlink") else "use"
    log.warning("/data of the container is %s; refusing to %s it", what, verb)
    return errors.FailedPrecondition(
        f"{DATA_DIR} of the container is {what}, not a directory; refusing to {verb} it"
    )


def _make_staging(root_fd: int) -> str:
    """Make a fresh, empty staging directory at the root; return its name."""
    for _ in range(16):
        name = f"{STAGING_PREFIX}{secrets.token_hex(8)}"
        try:
            os.mkdir(name, 0o700, dir_fd=root_fd)
        except FileExistsError:  # the bot may have left anything at any name
            continue
        return name
    raise errors.FailedPrecondition("cannot make a staging directory beside /data")


def _remove_staging(root_fd: int, name: str) -> None:
    try:
        _beneath.remove_all(root_fd, name)
    except OSError as exc:
        log.warning("import: removing staging directory /%s failed: %s", name, exc)


def export_via_agent(client: Client, dest: IO[bytes]) -> int:
    """tar.gz ``/data`` of a running container, read file by file through its agent."""
    with archive.tar_gz_writer(dest) as (tar, out):
        for entry in client.list_dir(DATA_DIR, recursive=True):
            name = entry.path.lstrip("/")
            if archive.name_problem(name):  # the agent is the bot's: its names too
                log.warning("export over the agent: skipping %r", name)
                continue
            if entry.is_symlink:
                log.warning("export over the agent: skipping symlink %s", name)
                continue
            info = tarfile.TarInfo(name)
            info.mtime = int(entry.mod_time.timestamp()) if entry.mod_time else 0
            info.mode = entry.permissions
            if entry.is_dir:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            with tempfile.SpooledTemporaryFile(max_size=8 << 20) as body:
                for chunk in client.read_raw(f"{DATA_DIR}/{name}"):
                    body.write(chunk)
                info.size = body.tell()
                body.seek(0)
                tar.addfile(info, body)
    return out.count


def import_via_agent(client: Client, checked: IO[bytes]) -> None:
    """Write a checked archive into a running container's ``/data`` through its agent.

    Directories and regular files travel; links cannot be made over the
    agent's API and are skipped with a warning.
    """
    with tarfile.open(fileobj=checked, mode="r:gz") as tar:
        for member in tar:
            path = f"{DATA_DIR}/{os.path.normpath(member.name)}"
            if member.isdir():
                if os.path.normpath(member.name) != ".":
                    client.mkdir(path)
            elif member.isfile():
                body = tar.extractfile(member)
                if body is None:  # pragma: no cover - isfile() guarantees a body
                    raise errors.InvalidArgument(f"archive entry {member.name!r} has no data")
                client.write_raw(path, body)
            else:
                log.warning("import over the agent: skipping link %s", member.name)
