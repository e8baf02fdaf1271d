"""Moving a bot's ``/data`` in and out: through its mounted snapshot, or its agent.

The Manager decides when (under the bot lock, with the task stopped); these
functions do the moving, each ordered so that a failure leaves the old data
intact: imports are checked whole before anything is written and extracted
into a staging directory beside ``/data`` before being moved in; backups are
written to a temporary file and renamed into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from . import archive, errors
from ._log import get_logger
from .mounts import mounted
from .types import MountInfo

if TYPE_CHECKING:
    from .client import Client

__all__ = [
    "DATA_DIR",
    "atomic_write",
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


def backup_path(data_root: str, bot_id: str) -> str:
    """Where ``preserve_data`` keeps a bot's archive: ``<data_root>/backups/<bot>.tar.gz``."""
    return os.path.join(data_root, BACKUPS_SUBDIR, f"{bot_id}.tar.gz")


def legacy_dir(data_root: str, bot_id: str) -> str:
    """The bind-mounted data directory of memoh's older layout: ``<data_root>/bots/<bot>``."""
    return os.path.join(data_root, LEGACY_SUBDIR, bot_id)


def atomic_write(path: str, write: Callable[[IO[bytes]], int]) -> int:
    """Write a file through ``write`` so that ``path`` is either complete or untouched."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o750, exist_ok=True)
    fd, partial = tempfile.mkstemp(
        prefix=os.path.basename(path) + ".", suffix=".partial", dir=directory
    )
    try:
        with os.fdopen(fd, "wb") as f:
            size = write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
    return size


def _data_dir(root: str) -> str:
    return os.path.join(root, DATA_DIR.lstrip("/"))


def export_from_mounts(mounts: list[MountInfo], dest: IO[bytes]) -> int:
    """tar.gz the ``/data`` of a stopped container's snapshot into ``dest``."""
    with mounted(mounts, readonly=True) as root:
        data = _data_dir(root)
        return archive.write_tree(dest, data if os.path.isdir(data) else None)


def import_into_mounts(mounts: list[MountInfo], checked: IO[bytes]) -> None:
    """Unpack a checked archive into a stopped container's ``/data``.

    The archive is extracted into a staging directory on the snapshot's own
    filesystem first, so a failure part-way leaves ``/data`` as it was; only
    then are the entries renamed into ``/data``.
    """
    with mounted(mounts) as root:
        staging = tempfile.mkdtemp(prefix=".mcp-import-", dir=root)
        try:
            archive.extract_checked(checked, staging)
            archive.merge_tree(staging, _data_dir(root))
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def export_via_agent(client: Client, dest: IO[bytes]) -> int:
    """tar.gz ``/data`` of a running container, read file by file through its agent."""
    with archive.tar_gz_writer(dest) as (tar, out):
        for entry in client.list_dir(DATA_DIR, recursive=True):
            name = entry.path.lstrip("/")
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
