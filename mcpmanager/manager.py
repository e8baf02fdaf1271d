"""The Manager: one long-lived workspace container per bot.

It creates, starts, stops and deletes each bot's container through a
:class:`~mcpmanager.service.ContainerService`, keeps the containers' IPs, checks
for image upgrades and hands out gRPC clients for the agent in each container.
Every method is synchronous and thread-safe; changes to one bot are serialised
by a per-bot lock, and different bots never wait on each other.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import IO, TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

import attrs

from . import _repr, archive, data, errors, versions
from ._locks import KeyedLocks
from ._log import BotLogger, bot_context, for_bot
from ._worker import Worker
from .botspec import bot_container_spec
from .config import ManagerConfig
from .service import ContainerService
from .types import (
    ContainerInfo,
    CreateContainerRequest,
    DeleteContainerOptions,
    DeleteTaskOptions,
    ImageInfo,
    MountInfo,
    NetworkSetupRequest,
    PullImageOptions,
    StopTaskOptions,
    TaskInfo,
    TaskStatus,
)
from .versions import (
    BotSnapshotData,
    Intent,
    IntentJournal,
    ManagedSnapshotMeta,
    ReconcileResult,
    SnapshotCreateInfo,
    VersionInfo,
    VersionList,
)

if TYPE_CHECKING:
    from .client import Client, Pool
    from .store import VersionRecord, VersionStore

__all__ = [
    "BOT_LABEL_KEY",
    "CONTAINER_PREFIX",
    "IP_LABEL_KEY",
    "Manager",
    "validate_bot_id",
]

BOT_LABEL_KEY = "mcp.bot_id"
CONTAINER_PREFIX = "mcp-"
IP_LABEL_KEY = "mcp.container_ip"

_BOT_ID = re.compile(r"[A-Za-z0-9_-]+")
T = TypeVar("T")
P = ParamSpec("P")


def validate_bot_id(bot_id: object) -> str:
    """Return ``bot_id`` if it is a non-empty string of ``A-Za-z0-9_-``; else InvalidArgument."""
    if not isinstance(bot_id, str) or not _BOT_ID.fullmatch(bot_id):
        raise errors.InvalidArgument(
            f"invalid bot ID {bot_id!r}: use one or more of A-Z, a-z, 0-9, '_' and '-'"
        )
    return bot_id


def _bot_operation(
    method: Callable[Concatenate[Manager, str, P], T],
) -> Callable[Concatenate[Manager, str, P], T]:
    """Validate the bot ID before anything else, and tag the call's log records with it."""

    @functools.wraps(method)
    def wrapper(self: Manager, bot_id: str, /, *args: P.args, **kwargs: P.kwargs) -> T:
        validate_bot_id(bot_id)
        with bot_context(bot_id):
            return method(self, bot_id, *args, **kwargs)

    return wrapper


def _with_context(exc: Exception, context: str) -> errors.MCPManagerError:
    """The same kind of error, its message prefixed with what was being done."""
    if isinstance(exc, errors.MCPManagerError):
        try:
            wrapped = type(exc)(f"{context}: {exc}")
        except TypeError:  # a subclass with its own constructor: keep it as it is
            return exc
        return wrapped
    return errors.MCPManagerError(f"{context}: unexpected backend error: {exc!r}")


@contextmanager
def _doing(context: str) -> Iterator[None]:
    """Re-raise any backend error with ``context`` (naming the bot and the step)."""
    try:
        yield
    except Exception as exc:
        raise _with_context(exc, context) from exc


def _version_info(rec: VersionRecord) -> VersionInfo:
    return VersionInfo(
        id=rec.id,
        version=rec.version,
        snapshot_name=versions.display_snapshot_name(rec.display_name, rec.version),
        runtime_snapshot_name=rec.runtime_snapshot_name,
        display_name=rec.display_name,
        created_at=rec.created_at,
    )


def _event_of(intent: Intent, rec: VersionRecord) -> tuple[str, dict[str, object]]:
    """The lifecycle event of a finished snapshot or version, as the original wrote it."""
    assert intent.record is not None
    name = intent.record["runtime_snapshot_name"]
    if intent.record["source"] == versions.SOURCE_PRE_EXEC and not rec.display_name:
        return "version_create", {
            "snapshot_name": name,
            "version": rec.version,
            "version_id": rec.id,
        }
    return "snapshot_create", {
        "snapshot_name": versions.display_snapshot_name(rec.display_name, rec.version),
        "display_name": rec.display_name,
        "runtime_snapshot_name": name,
        "snapshotter": intent.snapshotter,
        "source": rec.source,
        "version": rec.version,
    }


def _call_with_deadline(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run ``fn`` in a helper thread and give up waiting after ``timeout`` seconds."""
    worker = Worker(fn, f"mcpmanager-{what}", daemon=True)
    worker.thread.start()
    worker.thread.join(timeout)
    if worker.thread.is_alive():
        raise errors.DeadlineExceeded(f"{what} did not finish within {timeout:g}s")
    return worker.outcome()


class Manager:
    """Runs one workspace container per bot on a :class:`ContainerService`.

    ``store`` (a :class:`mcpmanager.store.VersionStore`) is needed only for
    snapshots and versions. With ``owns_service=True``, :meth:`close` also
    closes the service. Use it as a context manager to close it reliably.
    """

    ip_recovery_delays: tuple[float, ...] = (0.5, 1.0)
    """Back-off after each failed network re-setup while recovering an IP."""
    upgrade_check_timeout: float = 15.0
    """How long :meth:`init` waits for the registry before using the local image."""

    def __init__(
        self,
        service: ContainerService,
        config: ManagerConfig | None = None,
        *,
        store: VersionStore | None = None,
        logger: logging.Logger | None = None,
        owns_service: bool = False,
    ) -> None:
        self._service = service
        self._config = config if config is not None else ManagerConfig()
        self._store = store
        self._logger = logger or logging.getLogger("mcpmanager")
        self._owns_service = owns_service
        self._locks = KeyedLocks()
        self._ips: dict[str, str] = {}
        self._ips_mu = threading.Lock()
        self._intents = IntentJournal(self._config.data_root)
        self._pool: Pool | None = None
        self._pool_mu = threading.Lock()
        self._closed = False
        self._board = _repr.StatusBoard()  # last status seen of each bot, for the reprs

    # -- properties ----------------------------------------------------------

    @property
    def service(self) -> ContainerService:
        """The container backend this Manager drives."""
        return self._service

    @property
    def config(self) -> ManagerConfig:
        """The configuration this Manager was made with."""
        return self._config

    def container_id(self, bot_id: str) -> str:
        """The container ID of a bot: ``"mcp-" + bot_id``."""
        return CONTAINER_PREFIX + validate_bot_id(bot_id)

    def _log(self, bot_id: str) -> BotLogger:
        return for_bot(self._logger, bot_id)

    def _net_request(self, container_id: str) -> NetworkSetupRequest:
        return NetworkSetupRequest(
            container_id=container_id,
            cni_bin_dir=self._config.cni_bin_dir,
            cni_conf_dir=self._config.cni_conf_dir,
        )

    # -- image ---------------------------------------------------------------

    def init(self) -> ImageInfo:
        """Make sure the configured image is present and current; return the one in use.

        Asks the registry for the image's digest (giving up after
        :attr:`upgrade_check_timeout`) and pulls when it differs from the local
        copy or there is none. When the registry cannot be reached, or the
        upgrade pull fails, a local copy is kept. Running containers keep
        their image; new ones use the updated one.
        """
        image = self._config.image_ref()
        try:
            remote = _call_with_deadline(
                lambda: self._service.resolve_remote_digest(image),
                self.upgrade_check_timeout,
                f"resolving {image}",
            )
        except Exception as exc:
            self._logger.warning(
                "image upgrade check for %s failed, using the local image: %s", image, exc
            )
            return self._local_or_pull(image)
        local = self._local_image(image)
        if local is not None and local.id == remote:
            return local
        self._logger.info("pulling %s (%s)", image, "update" if local else "not present")
        try:
            return self._pull(image)
        except errors.MCPManagerError as exc:
            if local is None:
                raise
            self._logger.warning("pull of %s failed, keeping the local image: %s", image, exc)
            return local

    def _local_image(self, image: str) -> ImageInfo | None:
        try:
            return self._service.get_image(image)
        except errors.NotFound:
            return None

    def _local_or_pull(self, image: str) -> ImageInfo:
        with _doing(f"init: image {image}"):
            local = self._local_image(image)
            return local if local is not None else self._pull(image)

    def _pull(self, image: str) -> ImageInfo:
        with _doing(f"pull {image}"):
            opts = PullImageOptions(unpack=True, snapshotter=self._config.snapshotter)
            return self._service.pull_image(image, opts)

    # -- lifecycle -----------------------------------------------------------

    @_bot_operation
    def ensure_bot(self, bot_id: str) -> ContainerInfo:
        """Create the bot's container if it does not exist yet; return it."""
        with self._locks.hold(bot_id):
            return self._ensure(bot_id)

    def _bot_request(self, bot_id: str, snapshot_id: str = "") -> CreateContainerRequest:
        return CreateContainerRequest(
            id=self.container_id(bot_id),
            image_ref=self._config.image_ref(),
            snapshot_id=snapshot_id,
            snapshotter=self._config.snapshotter,
            labels={BOT_LABEL_KEY: bot_id},
            spec=bot_container_spec(self._config),
        )

    def _ensure(self, bot_id: str) -> ContainerInfo:
        cid = self.container_id(bot_id)
        with _doing(f"bot {bot_id}: ensure container {cid}"):
            try:
                return self._service.get_container(cid)
            except errors.NotFound:
                pass
            orphan = self._newest_orphan(bot_id)
            if orphan:
                # The container is gone but an active snapshot of it survives
                # (deleted by hand, or the daemon lost its metadata). Replacing
                # it would lose the bot's data, so the container is rebuilt on it.
                self._log(bot_id).warning(
                    "container %s is gone but its snapshot %s survives; recreating on it",
                    cid,
                    orphan,
                )
                info = self._service.create_container_from_snapshot(
                    self._bot_request(bot_id, orphan)
                )
                self._board.note(bot_id, "created")
                return info
            req = self._bot_request(bot_id)
            try:
                info = self._service.create_container(req)
            except errors.AlreadyExists:  # another Manager created it meanwhile
                return self._service.get_container(cid)
        self._board.note(bot_id, "created")
        self._log(bot_id).info("created container %s from %s", cid, req.image_ref)
        return info

    def _snapshotter(self) -> str:
        return self._config.snapshotter or "overlayfs"

    def _owned_actives(self, bot_id: str) -> list[str]:
        """Active snapshots made for the bot's container, oldest first."""
        cid = self.container_id(bot_id)
        ranked = [
            (order, snap.name)
            for snap in self._service.list_snapshots(self._snapshotter())
            if (order := versions.owned_active(snap, cid, bot_id)) is not None
        ]
        return [name for _, name in sorted(ranked)]

    def _newest_orphan(self, bot_id: str) -> str:
        """The newest active snapshot made for the bot's container, or ``""``."""
        owned = self._owned_actives(bot_id)
        return owned[-1] if owned else ""

    @_bot_operation
    def start(self, bot_id: str) -> None:
        """Ensure the container, start its task and network, and cache its IP.

        On a running bot this only makes sure its IP is known. A stopped task
        left from an earlier run is replaced. If the network cannot be set up,
        the task is force-stopped again and the error raised: a bot is never
        left running but unreachable.
        """
        with self._locks.hold(bot_id):
            self._ensure(bot_id)
            self._ensure_running(bot_id)

    def _ensure_running(self, bot_id: str) -> None:
        """Start the bot's task unless it runs; make sure a running one has its IP."""
        task = self._task(self.container_id(bot_id))
        if task is not None and task.status is TaskStatus.RUNNING:
            if not self._cached_ip(bot_id):
                self._attach_network(bot_id)
            self._board.note(bot_id, "running")
            return
        self._forget_ip(bot_id)
        self._start_task(bot_id, replace=task is not None)

    def _task(self, container_id: str) -> TaskInfo | None:
        with _doing(f"get task of {container_id}"):
            try:
                return self._service.get_task_info(container_id)
            except errors.NotFound:
                return None

    def _start_task(self, bot_id: str, replace: bool) -> None:
        cid = self.container_id(bot_id)
        with _doing(f"bot {bot_id}: start container {cid}"):
            if replace:
                self._delete_task(cid)
            self._service.start_container(cid)
        self._evict_client(bot_id)
        try:
            self._attach_network(bot_id)
        except errors.MCPManagerError:
            self._force_stop(bot_id)
            self._board.note(bot_id, "stopped (start failed)")
            raise
        self._board.note(bot_id, "running")

    def _delete_task(self, container_id: str) -> None:
        """Force-delete the container's task; having none is fine."""
        with suppress(errors.NotFound):
            self._service.delete_task(container_id, DeleteTaskOptions(force=True))

    def _attach_network(self, bot_id: str) -> str:
        cid = self.container_id(bot_id)
        with _doing(f"bot {bot_id}: network setup for {cid}"):
            ip = self._service.setup_network(self._net_request(cid)).ip
            if not ip:
                raise errors.Unavailable("network setup returned no IP")
        self.set_container_ip(bot_id, ip)
        self._log(bot_id).info("container network ready at %s", ip)
        return ip

    def _force_stop(self, bot_id: str) -> None:
        cid = self.container_id(bot_id)
        try:
            self._service.stop_container(cid, StopTaskOptions(force=True))
        except Exception as exc:
            self._log(bot_id).warning("cleanup: force-stopping %s failed: %s", cid, exc)

    @_bot_operation
    def stop(self, bot_id: str, timeout: float = 10.0) -> None:
        """Stop the bot's task: signal, wait up to ``timeout`` seconds, then kill.

        Then its network is released (so no address leaks) and the cached IP
        and client are dropped. Stopping a stopped bot does nothing.
        """
        with self._locks.hold(bot_id):
            cid = self.container_id(bot_id)
            with _doing(f"bot {bot_id}: stop container {cid}"):
                self._service.stop_container(cid, StopTaskOptions(timeout=timeout, force=True))
            self._detach(bot_id)
            self._log(bot_id).info("stopped container %s", cid)

    def _detach(self, bot_id: str) -> None:
        """Forget the bot's IP and client and release its network (warning on failure)."""
        cid = self.container_id(bot_id)
        self._evict_client(bot_id)
        self._forget_ip(bot_id)
        self._board.note(bot_id, "stopped")
        try:
            self._service.remove_network(self._net_request(cid))
        except Exception as exc:
            self._log(bot_id).warning("cleanup: removing the network of %s failed: %s", cid, exc)

    @_bot_operation
    def delete(self, bot_id: str, preserve_data: bool = False) -> None:
        """Delete the bot's container and its snapshot.

        With ``preserve_data``, ``/data`` is first saved to the bot's backup
        archive; if that fails, nothing is deleted and
        :class:`~mcpmanager.errors.DataLossPrevented` is raised.
        """
        with self._locks.hold(bot_id):
            cid = self.container_id(bot_id)
            if preserve_data:
                self._preserve_before_delete(bot_id)
            self._detach(bot_id)
            try:
                self._delete_task(cid)
            except Exception as exc:
                self._log(bot_id).warning("cleanup: deleting the task of %s failed: %s", cid, exc)
            with _doing(f"bot {bot_id}: delete container {cid}"):
                self._service.delete_container(cid, DeleteContainerOptions(cleanup_snapshot=True))
                # Active snapshots left by earlier moves would otherwise come back as
                # "orphans" on the next start, resurrecting data the caller deleted.
                for leftover in self._owned_actives(bot_id):
                    self._service.remove_snapshot(self._snapshotter(), leftover)
            self._board.note(bot_id, "deleted, /data preserved" if preserve_data else "deleted")
            self._log(bot_id).info("deleted container %s", cid)

    def _preserve_before_delete(self, bot_id: str) -> None:
        """Back up ``/data`` with the task left stopped; on failure restart it and refuse."""
        try:
            self._preserve(bot_id, resume=False)
        except Exception as exc:
            raise errors.DataLossPrevented(
                f"bot {bot_id}: not deleted, because backing up its /data failed: {exc}"
            ) from exc

    def list_bots(self) -> list[str]:
        """IDs of the bots that have a container, sorted."""
        with _doing("list bots"):
            containers = self._service.list_containers_by_label(BOT_LABEL_KEY)
        return sorted(
            c.labels[BOT_LABEL_KEY]
            for c in containers
            if c.id.startswith(CONTAINER_PREFIX) and c.labels.get(BOT_LABEL_KEY)
        )

    # -- addresses and clients -----------------------------------------------

    def _cached_ip(self, bot_id: str) -> str:
        with self._ips_mu:
            return self._ips.get(bot_id, "")

    def _forget_ip(self, bot_id: str) -> None:
        with self._ips_mu:
            self._ips.pop(bot_id, None)

    def container_ip(self, bot_id: str) -> str:
        """The bot's container IP, or ``""`` if it has none (not running, unreachable).

        A cache hit returns at once and takes no lock at all. On a
        miss the IP is recovered: from the container's ``mcp.container_ip``
        label, else by re-running the (idempotent) network setup of a running
        task, twice at most with back-off.
        """
        # Hot path: a plain dict read is atomic, and only validated IDs are ever cached.
        ip = self._ips.get(bot_id, "") if type(bot_id) is str else ""
        if ip:
            return ip
        validate_bot_id(bot_id)
        with bot_context(bot_id), self._locks.hold(bot_id):
            ip = self._cached_ip(bot_id) or self._recover_ip(bot_id)
        return ip

    def _recover_ip(self, bot_id: str) -> str:
        cid = self.container_id(bot_id)
        log = self._log(bot_id)
        try:
            info = self._service.get_container(cid)
            ip = info.labels.get(IP_LABEL_KEY, "")
            task = None if ip else self._task(cid)
        except errors.NotFound:
            return ""
        except Exception as exc:
            log.warning("IP recovery for %s failed: %s", cid, exc)
            return ""
        if not ip and (task is None or task.status is not TaskStatus.RUNNING):
            return ""
        ip = ip or self._renew_network(bot_id)
        if ip:
            with self._ips_mu:
                self._ips[bot_id] = ip
            log.info("recovered container IP %s", ip)
        return ip

    def _renew_network(self, bot_id: str) -> str:
        cid = self.container_id(bot_id)
        log = self._log(bot_id)
        attempts = len(self.ip_recovery_delays)
        for attempt, delay in enumerate(self.ip_recovery_delays, start=1):
            try:
                return self._service.setup_network(self._net_request(cid)).ip
            except Exception as exc:
                log.warning("IP recovery attempt %d/%d failed: %s", attempt, attempts, exc)
                if attempt < attempts:
                    time.sleep(delay)  # back-off between attempts, not synchronisation
        log.warning("IP recovery gave up after %d attempts", attempts)
        return ""

    @_bot_operation
    def set_container_ip(self, bot_id: str, ip: str) -> None:
        """Record the bot's IP; if it changed, the bot's stale client is dropped."""
        if not ip:
            return
        with self._ips_mu:
            old = self._ips.get(bot_id, "")
            self._ips[bot_id] = ip
        if old and old != ip:
            self._evict_client(bot_id)
            self._log(bot_id).info("IP changed from %s to %s; dropped its client", old, ip)

    @_bot_operation
    def client(self, bot_id: str) -> Client:
        """The gRPC client of the agent in the bot's container (made on first use)."""
        return self._client_pool().get(bot_id)

    def _client_pool(self) -> Pool:
        with self._pool_mu:
            if self._closed:
                raise errors.FailedPrecondition("this Manager is closed")
            if self._pool is None:
                from .client import Pool

                self._pool = Pool(self.container_ip, port=self._config.grpc_port)
            return self._pool

    def _evict_client(self, bot_id: str) -> None:
        with self._pool_mu:
            pool = self._pool
        if pool is not None:
            pool.remove(bot_id)

    # -- data ----------------------------------------------------------------

    @_bot_operation
    def export_data(self, bot_id: str, dest: IO[bytes]) -> int:
        """Write ``/data`` of the bot's container to ``dest`` as tar.gz; return the bytes written.

        The task is stopped while its snapshot is read, and restarted after
        (even when the export fails) if it was running. Backends that cannot
        mount snapshots are read through the agent instead, without a stop.
        """
        with self._locks.hold(bot_id), _doing(f"bot {bot_id}: export /data"):
            return self._export(bot_id, dest, resume=True)

    @_bot_operation
    def import_data(self, bot_id: str, src: IO[bytes]) -> None:
        """Unpack a tar.gz into ``/data`` of the bot's container, replacing what it names.

        The archive is checked whole first: one unsafe entry (absolute path,
        ``..``, a path through a symlink, a link out of the tree, a device)
        refuses it with InvalidArgument before anything is stopped or written.
        """
        with (
            self._checked(src) as checked,
            self._locks.hold(bot_id),
            _doing(f"bot {bot_id}: import /data"),
        ):
            self._import(bot_id, checked)

    @_bot_operation
    def preserve_data(self, bot_id: str) -> None:
        """Save ``/data`` to ``<data_root>/backups/<bot>.tar.gz`` (complete, or not at all)."""
        with self._locks.hold(bot_id), _doing(f"bot {bot_id}: preserve /data"):
            self._preserve(bot_id, resume=True)

    @_bot_operation
    def restore_preserved_data(self, bot_id: str) -> None:
        """Import the bot's backup into its container, then delete the backup.

        Without a backup, memoh's legacy directory ``<data_root>/bots/<bot>``
        is copied in and renamed ``<bot>.migrated``. NotFound if neither exists.
        """
        with self._locks.hold(bot_id), _doing(f"bot {bot_id}: restore preserved data"):
            backup = data.backup_path(self._config.data_root, bot_id)
            if os.path.exists(backup):
                with open(backup, "rb") as f, self._checked(f) as checked:
                    self._import(bot_id, checked)
                os.remove(backup)  # only once the import has succeeded
                self._log(bot_id).info("restored /data from %s", backup)
                return
            legacy = data.legacy_dir(self._config.data_root, bot_id)
            if os.path.exists(legacy + data.MIGRATED_SUFFIX):
                return
            if not os.path.isdir(legacy):
                raise errors.NotFound(f"no backup at {backup} and no legacy directory {legacy}")
            self._import_legacy(bot_id, legacy)

    @_bot_operation
    def has_preserved_data(self, bot_id: str) -> bool:
        """True if the bot has a backup archive, or a legacy directory not yet migrated."""
        if os.path.exists(data.backup_path(self._config.data_root, bot_id)):
            return True
        legacy = data.legacy_dir(self._config.data_root, bot_id)
        return not os.path.exists(legacy + data.MIGRATED_SUFFIX) and os.path.isdir(legacy)

    @contextmanager
    def _checked(self, src: IO[bytes]) -> Iterator[IO[bytes]]:
        """``src`` (or a copy, if it cannot seek) once its every entry has been checked."""
        with archive.rereadable(src) as readable:
            archive.checked_archive(readable)
            yield readable

    def _mounts(self, bot_id: str) -> list[MountInfo] | None:
        """The snapshot mounts of the bot's container, or None to use the agent instead."""
        info = self._service.get_container(self.container_id(bot_id))
        try:
            return self._service.snapshot_mounts(info.snapshotter, info.snapshot_key)
        except errors.NotSupported:
            return None

    def _export(self, bot_id: str, dest: IO[bytes], *, resume: bool) -> int:
        mounts = self._mounts(bot_id)
        if mounts is None:
            return data.export_via_agent(self._client_pool().get(bot_id), dest)
        with self._halted(bot_id, resume=resume):
            return data.export_from_mounts(mounts, dest)

    def _import(self, bot_id: str, checked: IO[bytes]) -> None:
        mounts = self._mounts(bot_id)
        if mounts is None:
            data.import_via_agent(self._client_pool().get(bot_id), checked)
            return
        with self._halted(bot_id):
            data.import_into_mounts(mounts, checked)

    def _preserve(self, bot_id: str, *, resume: bool) -> None:
        path = data.backup_path(self._config.data_root, bot_id)
        size = data.atomic_write(path, lambda f: self._export(bot_id, f, resume=resume))
        self._log(bot_id).info("preserved /data in %s (%d bytes)", path, size)

    def _import_legacy(self, bot_id: str, legacy: str) -> None:
        with tempfile.TemporaryFile() as tmp:
            archive.write_tree(tmp, legacy)
            tmp.seek(0)
            with self._checked(tmp) as checked:
                self._import(bot_id, checked)
        try:
            os.rename(legacy, legacy + data.MIGRATED_SUFFIX)
        except OSError as exc:
            self._log(bot_id).warning("legacy import: renaming %s failed: %s", legacy, exc)
        self._log(bot_id).info("imported legacy directory %s", legacy)

    @contextmanager
    def _halted(self, bot_id: str, *, resume: bool = True) -> Iterator[None]:
        """Stop the bot's task for the block; restart it after if it was running.

        With ``resume=False`` it is restarted only when the block fails (the
        caller goes on to delete it).
        """
        cid = self.container_id(bot_id)
        task = self._task(cid)
        was_running = task is not None and task.status is TaskStatus.RUNNING
        if task is not None:
            self._service.stop_container(cid, StopTaskOptions(timeout=10.0, force=True))
            self._detach(bot_id)
        ok = False
        try:
            yield
            ok = True
        finally:
            if was_running and (resume or not ok):
                self._resume(bot_id)

    def _resume(self, bot_id: str) -> None:
        try:
            self._start_task(bot_id, replace=True)
        except Exception as exc:
            self._log(bot_id).error("restart after a data operation failed: %s", exc)

    # -- snapshots and versions ----------------------------------------------

    def _require_store(self) -> VersionStore:
        if self._store is None:
            raise errors.FailedPrecondition(
                "snapshots and versions need a version store: pass store= to Manager"
            )
        return self._store

    @_bot_operation
    def create_snapshot(
        self, bot_id: str, name: str = "", source: str = versions.SOURCE_MANUAL
    ) -> SnapshotCreateInfo:
        """Commit the bot's whole filesystem as a named snapshot, numbered like a version.

        The bot is stopped, its active snapshot committed, and the container
        moved onto a fresh snapshot on top of it (and restarted if it was
        running). Once started, this runs to the end even if the calling thread
        is interrupted.
        """
        store = self._require_store()
        display = name.strip()
        with self._locks.hold(bot_id), _doing(f"bot {bot_id}: create snapshot"):
            cid = self.container_id(bot_id)
            commit = versions.runtime_name(cid, "snapshot")
            info, rec = self._commit_and_move(
                store, bot_id, commit, display, source.strip() or versions.SOURCE_MANUAL
            )
        assert rec is not None
        return SnapshotCreateInfo(
            container_id=cid,
            snapshot_name=versions.display_snapshot_name(display, rec.version),
            runtime_snapshot_name=commit,
            display_name=display,
            snapshotter=info.snapshotter,
            version=rec.version,
            created_at=rec.created_at,
        )

    @_bot_operation
    def create_version(self, bot_id: str) -> VersionInfo:
        """Commit the bot's whole filesystem as its next numbered version (see create_snapshot)."""
        store = self._require_store()
        with self._locks.hold(bot_id), _doing(f"bot {bot_id}: create version"):
            commit = versions.runtime_name(self.container_id(bot_id), "v")
            _, rec = self._commit_and_move(store, bot_id, commit, "", versions.SOURCE_PRE_EXEC)
        assert rec is not None
        return _version_info(rec)

    @_bot_operation
    def list_versions(self, bot_id: str) -> VersionList:
        """The bot's versions, version 1 first (a list that Jupyter shows as a table)."""
        store = self._require_store()
        with _doing(f"bot {bot_id}: list versions"):
            records = store.list_versions(self.container_id(bot_id))
            return VersionList(_version_info(r) for r in records)

    @_bot_operation
    def version_snapshot_name(self, bot_id: str, version: int) -> str:
        """The runtime snapshot a version points at; NotFound if there is no such version."""
        versions.validate_version(version)
        store = self._require_store()
        with _doing(f"bot {bot_id}: look up version {version}"):
            return store.get_version(self.container_id(bot_id), version).runtime_snapshot_name

    @_bot_operation
    def rollback_version(self, bot_id: str, version: int) -> None:
        """Move the bot's container onto a fresh snapshot of an earlier version.

        What the bot wrote since is left in the snapshot it leaves (and in any
        version made of it). Runs to the end once started, like create_snapshot.
        """
        versions.validate_version(version)
        store = self._require_store()
        with self._locks.hold(bot_id), _doing(f"bot {bot_id}: roll back to version {version}"):
            cid = self.container_id(bot_id)
            target = store.get_version(cid, version).runtime_snapshot_name
            info = self._service.get_container(cid)
            event: dict[str, object] = {
                "type": "version_rollback",
                "payload": {
                    "snapshot_name": target,
                    "version": version,
                    "source": versions.SOURCE_ROLLBACK,
                },
            }
            intent = self._intent(info, bot_id, "rollback", parent=target, event=event)
            versions.run_to_completion(lambda: self._carry_out(intent), f"rollback-{bot_id}")
            self._log(bot_id).info("rolled back to version %d (%s)", version, target)

    @_bot_operation
    def list_bot_snapshot_data(self, bot_id: str) -> BotSnapshotData:
        """The bot's container, every snapshot of its snapshotter, and the store's metadata.

        Works without a store (the metadata is then empty).
        """
        with self._locks.hold(bot_id), _doing(f"bot {bot_id}: list snapshots"):
            cid = self.container_id(bot_id)
            info = self._service.get_container(cid)
            snapshotter = info.snapshotter.strip() or self._snapshotter()
            runtime = self._service.list_snapshots(snapshotter)
            meta = {
                r.runtime_snapshot_name: ManagedSnapshotMeta(r.source, r.version, r.display_name)
                for r in (self._store.list_snapshots(cid) if self._store is not None else [])
                if r.runtime_snapshot_name
            }
        return BotSnapshotData(cid, info, snapshotter, tuple(runtime), meta)

    def _intent(
        self,
        info: ContainerInfo,
        bot_id: str,
        kind: str,
        *,
        parent: str,
        commit_name: str = "",
        record: dict[str, str] | None = None,
        event: dict[str, object] | None = None,
    ) -> Intent:
        task = self._task(info.id)
        return Intent(
            bot_id=bot_id,
            container_id=info.id,
            snapshotter=info.snapshotter or self._snapshotter(),
            image=info.image,
            labels=dict(info.labels),
            old_key=info.snapshot_key,
            new_key=versions.runtime_name(info.id, kind),
            parent=parent,
            commit_name=commit_name,
            was_running=task is not None and task.status is TaskStatus.RUNNING,
            record=record,
            event=event,
        )

    def _commit_and_move(
        self, store: VersionStore, bot_id: str, commit: str, display: str, source: str
    ) -> tuple[ContainerInfo, VersionRecord | None]:
        info = self._service.get_container(self.container_id(bot_id))
        snapshotter = info.snapshotter or self._snapshotter()
        # Registering first means an unreachable store fails before anything moves.
        store.upsert_container(info.id, bot_id, info.image, snapshotter)
        record = {
            "runtime_snapshot_name": commit,
            "display_name": display,
            "parent_runtime_snapshot_name": info.snapshot_key,
            "source": source,
        }
        intent = self._intent(
            info, bot_id, "active", parent=commit, commit_name=commit, record=record
        )
        rec = versions.run_to_completion(lambda: self._carry_out(intent), f"snapshot-{bot_id}")
        self._log(bot_id).info("committed %s as version %s", commit, rec.version if rec else "?")
        return info, rec

    def _carry_out(self, intent: Intent) -> VersionRecord | None:
        """Journal the move, make it, record it, and only then forget the intent."""
        self._intents.write(intent)
        self._move(intent)
        self._drop_abandoned(intent)
        rec = self._record(intent)
        self._intents.remove(intent.bot_id)
        return rec

    def _drop_abandoned(self, intent: Intent) -> None:
        """Remove the active snapshot a rollback moved the container off.

        A snapshot or version commits (and so consumes) the old active
        snapshot; a rollback leaves it behind, and a snapshot left behind would
        later look like an orphan holding the bot's data.
        """
        if not intent.commit_name and intent.old_key != intent.new_key:
            self._remove_snapshot(intent.bot_id, intent.snapshotter, intent.old_key)

    def _remove_snapshot(self, bot_id: str, snapshotter: str, key: str) -> None:
        try:
            self._service.remove_snapshot(snapshotter, key)
        except errors.NotFound:
            pass
        except Exception as exc:
            self._log(bot_id).warning("cleanup: removing snapshot %s failed: %s", key, exc)

    def _move(self, intent: Intent) -> None:
        """Stop, commit (unless rolling back), prepare, recreate the container, restart."""
        cid, snapshotter = intent.container_id, intent.snapshotter
        if intent.was_running:
            self._service.stop_container(cid, StopTaskOptions(timeout=10.0, force=True))
            self._detach(intent.bot_id)
        if intent.commit_name:
            labels = versions.gc_root_labels(intent.bot_id)
            self._service.commit_snapshot(snapshotter, intent.commit_name, intent.old_key, labels)
        self._service.prepare_snapshot(
            snapshotter, intent.new_key, intent.parent, {"mcp.bot_id": intent.bot_id}
        )
        self._replace_container(intent, intent.new_key)

    def _replace_container(self, intent: Intent, key: str) -> None:
        """Put the bot's container on snapshot ``key`` (keeping the old snapshot), then start."""
        cid = intent.container_id
        try:
            current: ContainerInfo | None = self._service.get_container(cid)
        except errors.NotFound:
            current = None
        if current is not None and current.snapshot_key != key:
            self._service.stop_container(cid, StopTaskOptions(timeout=10.0, force=True))
            self._delete_task(cid)
            self._service.delete_container(cid, DeleteContainerOptions(cleanup_snapshot=False))
            current = None
        if current is None:
            req = attrs.evolve(
                self._bot_request(intent.bot_id, key),
                image_ref=intent.image,
                snapshotter=intent.snapshotter,
                labels=dict(intent.labels) or {BOT_LABEL_KEY: intent.bot_id},
            )
            self._service.create_container_from_snapshot(req)
        if intent.was_running:
            self._ensure_running(intent.bot_id)

    def _record(self, intent: Intent, *, retry: bool = False) -> VersionRecord | None:
        """Write the store rows and event of a finished move (once, even when retried)."""
        store = self._store
        if store is None or (intent.record is None and intent.event is None):
            return None
        rec = None
        if intent.record is not None:
            rec = self._recorded(store, intent) if retry else None
            if rec is None:
                rec = store.record_snapshot(
                    intent.container_id,
                    snapshotter=intent.snapshotter,
                    **intent.record,
                )
            store.add_event(intent.container_id, *_event_of(intent, rec))
        elif intent.event is not None:
            store.add_event(
                intent.container_id, str(intent.event["type"]), dict(intent.event["payload"])
            )
        return rec

    def _recorded(self, store: VersionStore, intent: Intent) -> VersionRecord | None:
        """The version a retried record already wrote, so a retry adds no second one."""
        assert intent.record is not None
        name = intent.record["runtime_snapshot_name"]
        return next(
            (
                v
                for v in store.list_versions(intent.container_id)
                if v.runtime_snapshot_name == name
            ),
            None,
        )

    # -- repair --------------------------------------------------------------

    def reconcile(self, bot_id: str | None = None) -> list[ReconcileResult]:
        """Repair bots a crash left mid-move, or without a container; report what was done.

        An interrupted snapshot move is finished (or, if it had not got far,
        undone) from its intent; a bot whose container vanished is recreated
        on its newest active snapshot and started. ``None`` checks every bot
        with an intent or an orphaned snapshot.
        """
        if bot_id is not None:
            validate_bot_id(bot_id)
            bots = [bot_id]
        else:
            with _doing("reconcile: find bots to repair"):
                bots = sorted(set(self._intents.bots()) | set(self._orphaned_bots()))
        results = []
        for bot in bots:
            with bot_context(bot), self._locks.hold(bot), _doing(f"bot {bot}: reconcile"):
                result = versions.run_to_completion(
                    functools.partial(self._reconcile_one, bot), f"reconcile-{bot}"
                )
            if result.action != "nothing to do":
                self._log(bot).warning("reconcile: %s %s", result.action, result.snapshot)
            results.append(result)
        return results

    def _orphaned_bots(self) -> list[str]:
        existing = {c.id for c in self._service.list_containers()}
        found = set()
        for snap in self._service.list_snapshots(self._snapshotter()):
            bot = versions.snapshot_bot(snap)
            if bot and CONTAINER_PREFIX + bot not in existing and _BOT_ID.fullmatch(bot):
                found.add(bot)
        return sorted(found)

    def _reconcile_one(self, bot_id: str) -> ReconcileResult:
        intent = self._intents.read(bot_id)
        if intent is not None:
            return self._resume_intent(intent)
        try:
            self._service.get_container(self.container_id(bot_id))
            return ReconcileResult(bot_id, "nothing to do")
        except errors.NotFound:
            pass
        orphan = self._newest_orphan(bot_id)
        if not orphan:
            return ReconcileResult(bot_id, "nothing to do")
        self._service.create_container_from_snapshot(self._bot_request(bot_id, orphan))
        self._ensure_running(bot_id)
        return ReconcileResult(bot_id, "recreated the container on", orphan)

    def _resume_intent(self, intent: Intent) -> ReconcileResult:
        """Finish an interrupted move from whatever its steps left behind."""
        snaps = {s.name: s for s in self._service.list_snapshots(intent.snapshotter)}
        old = snaps.get(intent.old_key)
        if intent.new_key in snaps:
            target, action = intent.new_key, "finished the interrupted move to"
        elif old is not None and old.kind == "active":
            target, action = intent.old_key, "undid the interrupted move, back on"
        elif intent.parent in snaps:
            self._service.prepare_snapshot(
                intent.snapshotter, intent.new_key, intent.parent, {"mcp.bot_id": intent.bot_id}
            )
            target, action = intent.new_key, "finished the interrupted move to"
        else:
            raise errors.FailedPrecondition(
                f"cannot repair: none of {intent.new_key}, {intent.old_key}, {intent.parent} exist"
            )
        self._replace_container(intent, target)
        if target == intent.new_key:
            self._drop_abandoned(intent)
            self._record(intent, retry=True)
        self._intents.remove(intent.bot_id)
        return ReconcileResult(intent.bot_id, action, target)

    # -- closing -------------------------------------------------------------

    def close(self) -> None:
        """Close the clients, the store and (if this Manager owns it) the service."""
        with self._pool_mu:
            if self._closed:
                return
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close_all()
        close_store = getattr(self._store, "close", None)
        if close_store is not None:
            close_store()
        if self._owns_service:
            self._service.close()

    def __enter__(self) -> Manager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _view(self) -> _repr.ManagerView:
        """What the reprs show, from memory only: the status board and the IP cache."""
        with self._ips_mu:
            ips = dict(self._ips)
        return _repr.ManagerView(
            backend=type(self._service).__name__,
            image=self._config.image_ref(),
            store=_repr.describe(self._store),
            closed=self._closed,
            rows=_repr.bot_rows(self._board, ips, CONTAINER_PREFIX),
        )

    def __repr__(self) -> str:
        return _repr.guarded(lambda: _repr.manager_text(self._view()), self)

    def _repr_html_(self) -> str:
        """The bots this Manager knows as an HTML table (for Jupyter); never calls the backend."""
        return _repr.guarded(lambda: _repr.manager_html(self._view()), self, as_html=True)
