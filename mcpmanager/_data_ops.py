"""The Manager's data operations: when to stop a bot, and which way its ``/data`` travels.

:mod:`mcpmanager.data` moves the bytes; this module decides the route. With
snapshot mounts the task is stopped, its snapshot mounted and read or
written on the host, and the task restarted; without them (a backend that
raises NotSupported) the agent in the running container carries the files.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import IO

from . import archive, data, errors, naming
from ._atomic import atomic_write
from ._runtime import Runtime
from .types import MountInfo

__all__ = ["DataOps"]


class DataOps:
    """Export, import, preserve and restore a bot's ``/data`` (bot lock held by the caller)."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    @property
    def _data_root(self) -> str:
        return self._rt.config.data_root

    @staticmethod
    @contextmanager
    def checked(src: IO[bytes]) -> Iterator[IO[bytes]]:
        """``src`` (or a copy, if it cannot seek) once its every entry has been checked."""
        with archive.rereadable(src) as readable:
            archive.checked_archive(readable)
            yield readable

    def _mounts(self, bot_id: str) -> list[MountInfo] | None:
        """The snapshot mounts of the bot's container, or None to use the agent instead."""
        info = self._rt.service.get_container(naming.container_id(bot_id))
        try:
            return self._rt.service.snapshot_mounts(info.snapshotter, info.snapshot_key)
        except errors.NotSupported:
            return None

    def _exporter(self, bot_id: str) -> tuple[Callable[[IO[bytes]], int], bool]:
        """How to write the bot's ``/data`` as tar.gz, and whether the bot must be halted."""
        mounts = self._mounts(bot_id)
        if mounts is None:
            client = self._rt.addresses.client(bot_id)
            return (lambda dest: data.export_via_agent(client, dest)), False
        return (lambda dest: data.export_from_mounts(mounts, dest)), True

    def _halted(
        self, bot_id: str, needed: bool, step: str, *, resume: bool = True
    ) -> AbstractContextManager[None]:
        return self._rt.halted(bot_id, step, resume=resume) if needed else nullcontext()

    def export(self, bot_id: str, dest: IO[bytes]) -> int:
        """tar.gz the bot's ``/data`` into ``dest``; return the bytes written."""
        write, halt = self._exporter(bot_id)
        with self._halted(bot_id, halt, "export /data"):
            return write(dest)

    def preserve(self, bot_id: str, *, resume: bool = True) -> None:
        """Write the bot's backup archive (complete, or not at all).

        The restart after it (if any) comes only once the backup is in place,
        so a failed restart never costs the backup.
        """
        path = data.backup_path(self._data_root, bot_id)
        write, halt = self._exporter(bot_id)
        with self._halted(bot_id, halt, f"preserve /data to {path}", resume=resume):
            size = atomic_write(path, write)
            self._rt.log(bot_id).info("preserved /data in %s (%d bytes)", path, size)

    def preserve_for_delete(self, bot_id: str) -> None:
        """Back up ``/data`` with the task left stopped; on failure restart it and refuse.

        DataLossPrevented when the backup fails; NotFound when there is no bot.
        """
        try:
            self.preserve(bot_id, resume=False)
        except Exception as exc:
            if isinstance(exc, errors.NotFound) and not self._rt.exists(bot_id):
                exc.with_context(f"bot {bot_id}: delete")
                raise
            raise errors.DataLossPrevented(
                f"bot {bot_id}: not deleted, because backing up its /data failed: {exc}"
            ) from exc

    def import_checked(self, bot_id: str, checked: IO[bytes], step: str = "import /data") -> None:
        """Unpack a checked archive into the bot's ``/data``."""
        mounts = self._mounts(bot_id)
        if mounts is None:
            data.import_via_agent(self._rt.addresses.client(bot_id), checked)
            return
        with self._rt.halted(bot_id, step):
            data.import_into_mounts(mounts, checked)

    def restore(self, bot_id: str) -> None:
        """Import the bot's backup (then delete it), else its legacy directory; else NotFound."""
        backup = data.backup_path(self._data_root, bot_id)
        if os.path.exists(backup):
            # The backup goes once its data is in, even if the restart then fails.
            with (
                open(backup, "rb") as f,
                self.checked(f) as checked,
                _then(lambda: os.remove(backup)),
            ):
                self.import_checked(bot_id, checked, f"restore /data from {backup}")
            self._rt.log(bot_id).info("restored /data from %s", backup)
            return
        legacy = data.legacy_dir(self._data_root, bot_id)
        if os.path.exists(legacy + data.MIGRATED_SUFFIX):
            return
        if not os.path.isdir(legacy):
            raise errors.NotFound(f"no backup at {backup} and no legacy directory {legacy}")
        self._import_legacy(bot_id, legacy)

    def has_preserved(self, bot_id: str) -> bool:
        """True if the bot has a backup archive, or a legacy directory not yet migrated."""
        if os.path.exists(data.backup_path(self._data_root, bot_id)):
            return True
        legacy = data.legacy_dir(self._data_root, bot_id)
        return not os.path.exists(legacy + data.MIGRATED_SUFFIX) and os.path.isdir(legacy)

    def _import_legacy(self, bot_id: str, legacy: str) -> None:
        with tempfile.TemporaryFile() as tmp:
            archive.write_tree(tmp, legacy)
            tmp.seek(0)
            with self.checked(tmp) as checked, _then(lambda: self._mark_migrated(bot_id, legacy)):
                self.import_checked(bot_id, checked, f"import of legacy directory {legacy}")
        self._rt.log(bot_id).info("imported legacy directory %s", legacy)

    def _mark_migrated(self, bot_id: str, legacy: str) -> None:
        try:
            os.rename(legacy, legacy + data.MIGRATED_SUFFIX)
        except OSError as exc:
            self._rt.log(bot_id).warning("legacy import: renaming %s failed: %s", legacy, exc)


@contextmanager
def _then(done: Callable[[], None]) -> Iterator[None]:
    """Run ``done`` after the block succeeds, or fails only in restarting the bot."""
    try:
        yield
    except errors.RestartFailed:
        done()
        raise
    done()
