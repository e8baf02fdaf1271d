"""The Manager: one long-lived workspace container per bot.

It creates, starts, stops and deletes each bot's container through a
:class:`~mcpmanager.service.ContainerService`, keeps the containers' IPs, checks
for image upgrades and hands out gRPC clients for the agent in each container.
Every method is synchronous and thread-safe; changes to one bot are serialised
by a per-bot lock, and different bots never wait on each other.

The Manager is the facade: it validates, takes the bot's lock, delegates and
adds context to errors. The steps live in :mod:`._runtime` (container, task,
network), :mod:`._addresses` (IP cache, clients), :mod:`._data_ops` (``/data``)
and :mod:`._moves` (snapshots, versions, repair).
"""

from __future__ import annotations

import logging
from typing import IO, TYPE_CHECKING

from . import _board, errors, naming, versions
from ._addresses import AddressBook
from ._context import bot_operation, doing
from ._data_ops import DataOps
from ._format import describe, guarded
from ._image import ensure_image
from ._locks import KeyedLocks
from ._log import bot_context
from ._moves import IntentJournal, Moves
from ._resources import Resources, check_options, check_update
from ._runtime import Runtime
from .config import ManagerConfig
from .naming import BOT_LABEL_KEY, CONTAINER_PREFIX, IP_LABEL_KEY, validate_bot_id
from .service import ContainerService
from .types import BotMetrics, BotOptions, BotStatus, ContainerInfo, ImageInfo, OptionsUpdate
from .versions import BotSnapshotData, ReconcileResult, SnapshotCreateInfo, VersionInfo, VersionList

if TYPE_CHECKING:
    from .client import Client
    from .store import VersionStore

__all__ = [
    "BOT_LABEL_KEY",
    "CONTAINER_PREFIX",
    "IP_LABEL_KEY",
    "Manager",
    "validate_bot_id",
]


class Manager:
    """Runs one workspace container per bot on a :class:`ContainerService`.

    ``store`` (a :class:`mcpmanager.store.VersionStore`) is needed only for
    snapshots and versions. With ``owns_service=True``, :meth:`close` also
    closes the service. Use it as a context manager to close it reliably.
    """

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
        self._logger = logger or logging.getLogger("mcpmanager")
        self._owns_service = owns_service
        self._locks = KeyedLocks()
        self._board = _board.StatusBoard()  # last status seen of each bot, for the reprs
        self._addresses = AddressBook(self.container_ip, self._config.grpc_port, self._logger)
        self._runtime = Runtime(service, self._config, self._logger, self._addresses, self._board)
        self._data = DataOps(self._runtime)
        self._moves = Moves(self._runtime, IntentJournal(self._config.data_root), store)
        self._resources = Resources(self._runtime, self._data)

    # -- properties ----------------------------------------------------------

    @property
    def service(self) -> ContainerService:
        """The container backend this Manager drives."""
        return self._service

    @property
    def config(self) -> ManagerConfig:
        """The configuration this Manager was made with."""
        return self._config

    @property
    def ip_recovery_delays(self) -> tuple[float, ...]:
        """Back-off after each failed network re-setup while recovering an IP."""
        return self._runtime.ip_recovery_delays

    @ip_recovery_delays.setter
    def ip_recovery_delays(self, delays: tuple[float, ...]) -> None:
        self._runtime.ip_recovery_delays = tuple(delays)

    def container_id(self, bot_id: str) -> str:
        """The container ID of a bot: ``"mcp-" + bot_id``."""
        return naming.container_id(bot_id)

    # -- image ---------------------------------------------------------------

    def init(self) -> ImageInfo:
        """Make sure the configured image is present and current; return the one in use.

        Asks the registry for the image's digest (giving up after
        :attr:`upgrade_check_timeout`) and pulls when it differs from the local
        copy or there is none. When the registry cannot be reached, or the
        upgrade pull fails, a local copy is kept. Running containers keep
        their image; new ones use the updated one.
        """
        return ensure_image(self._service, self._config, self._logger, self.upgrade_check_timeout)

    # -- lifecycle -----------------------------------------------------------

    @bot_operation
    def ensure_bot(self, bot_id: str, options: BotOptions | None = None) -> ContainerInfo:
        """Create the bot's container if it does not exist yet; return it.

        With ``options`` the bot gets them (see :meth:`update_options` for an
        existing bot; use that to learn what was applied).
        """
        with doing(f"bot {bot_id}"):
            options = check_options(options)
        with self._locks.hold(bot_id):
            return self._resources.ensure(bot_id, options)

    @bot_operation
    def start(self, bot_id: str, options: BotOptions | None = None) -> None:
        """Ensure the container, start its task and network, and cache its IP.

        On a running bot this only makes sure its IP is known. A stopped task
        left from an earlier run is replaced. If the network cannot be set up,
        the task is force-stopped again and the error raised: a bot is never
        left running but unreachable. With ``options`` the bot gets them
        first (as :meth:`update_options` does); options still pending from
        an earlier change take effect when a stopped bot starts.
        """
        with doing(f"bot {bot_id}"):
            options = check_options(options)
        with self._locks.hold(bot_id):
            self._resources.ensure(bot_id, options)
            self._runtime.ensure_running(bot_id)

    @bot_operation
    def update_options(
        self, bot_id: str, options: BotOptions, *, recreate: bool = False
    ) -> OptionsUpdate:
        """Give the bot new options (image, env, limits) and say what took effect.

        A bot without a container gets one made with them. A stopped bot is
        remade on its own snapshot at once. A running bot takes new limits
        live where the runtime can; a new env or image (or limits the runtime
        cannot change in place) wait for its next start from stopped, unless
        ``recreate=True`` remakes it now (a restart). A new image never drops
        ``/data``: it is backed up, the container remade, and restored.
        """
        with doing(f"bot {bot_id}: update options"):
            check_update(options, recreate)
        with self._locks.hold(bot_id), doing(f"bot {bot_id}: update options"):
            return self._resources.update(bot_id, options, recreate=recreate)

    @bot_operation
    def options(self, bot_id: str) -> BotOptions:
        """The options stored with the bot's container (empty fields: the config's)."""
        with doing(f"bot {bot_id}: read options"):
            return self._resources.stored(bot_id)

    @bot_operation
    def metrics(self, bot_id: str) -> BotMetrics:
        """What the running bot uses: CPU (two readings 200 ms apart), memory, pids, storage.

        FailedPrecondition if the bot is not running; NotFound without a container.
        """
        with doing(f"bot {bot_id}: metrics"):
            return self._resources.metrics(bot_id)

    @bot_operation
    def stop(self, bot_id: str, timeout: float = 10.0) -> None:
        """Stop the bot's task: signal, wait up to ``timeout`` seconds, then kill.

        Then its network is released (so no address leaks) and the cached IP
        and client are dropped. Stopping a stopped bot does nothing.
        """
        with self._locks.hold(bot_id):
            cid = self.container_id(bot_id)
            with doing(f"bot {bot_id}: stop container {cid}"):
                self._runtime.halt(bot_id, timeout)
            self._runtime.log(bot_id).info("stopped container %s", cid)

    @bot_operation
    def delete(self, bot_id: str, preserve_data: bool = False) -> None:
        """Delete the bot's container and its snapshot.

        With ``preserve_data``, ``/data`` is first saved to the bot's backup
        archive; if that fails, nothing is deleted and
        :class:`~mcpmanager.errors.DataLossPrevented` is raised.
        """
        with self._locks.hold(bot_id):
            if preserve_data:
                self._data.preserve_for_delete(bot_id)
            self._runtime.remove(bot_id)
            self._board.note(bot_id, "deleted, /data preserved" if preserve_data else "deleted")

    def list_bots(self) -> list[str]:
        """IDs of the bots that have a container, sorted."""
        with doing("list bots"):
            containers = self._service.list_containers_by_label(BOT_LABEL_KEY)
        return sorted(
            bot for c in containers if (bot := naming.bot_of_container(c.id, dict(c.labels)))
        )

    @bot_operation
    def wait_ready(self, bot_id: str, timeout: float | None = None) -> None:
        """Return once the agent in the bot's container answers.

        ``start()`` and every operation that restarts a bot already wait like
        this (up to ``config.ready_timeout``); call it yourself after a bot was
        started elsewhere. ``timeout`` defaults to ``config.ready_timeout``.
        DeadlineExceeded (naming the bot, its address and the agent's last
        error) if it does not answer in time; the bot is left running.
        FailedPrecondition if the bot is not running; NotSupported if the
        backend runs no agents (the fake without ``agents=True``).
        """
        wait = self._runtime.ready_wait(bot_id, timeout)
        self.container_ip(bot_id)  # recover the address of a bot started elsewhere
        self._runtime.wait_ready(bot_id, wait)

    @bot_operation
    def status(self, bot_id: str) -> BotStatus:
        """What the backend says of the bot now: container, task state, pid, IP, image, times."""
        with doing(f"bot {bot_id}: status"):
            return self._runtime.status(bot_id)

    def statuses(self) -> list[BotStatus]:
        """:meth:`status` of every bot that has a container, sorted by bot ID."""
        result = []
        for bot in self.list_bots():
            with bot_context(bot), doing(f"bot {bot}: status"):
                result.append(self._runtime.status(bot))
        return result

    # -- addresses and clients -----------------------------------------------

    def container_ip(self, bot_id: str) -> str:
        """The bot's container IP, or ``""`` if it has none (not running, unreachable).

        A cache hit returns at once and takes no lock at all. On a
        miss the IP is recovered: from the container's ``mcp.container_ip``
        label, else by re-running the (idempotent) network setup of a running
        task, twice at most with back-off.
        """
        # Hot path: a plain dict read is atomic, and only validated IDs are ever cached.
        ip = self._addresses.ip(bot_id) if type(bot_id) is str else ""
        if ip:
            return ip
        validate_bot_id(bot_id)
        with bot_context(bot_id), self._locks.hold(bot_id):
            return self._addresses.ip(bot_id) or self._runtime.recover_ip(bot_id)

    @bot_operation
    def set_container_ip(self, bot_id: str, ip: str) -> None:
        """Record the bot's IP; if it changed, the bot's stale client is dropped."""
        self._addresses.put(bot_id, ip)

    @bot_operation
    def client(self, bot_id: str) -> Client:
        """The gRPC client of the agent in the bot's container (made on first use)."""
        return self._addresses.client(bot_id)

    # -- data ----------------------------------------------------------------

    @bot_operation
    def export_data(self, bot_id: str, dest: IO[bytes]) -> int:
        """Write ``/data`` of the bot's container to ``dest`` as tar.gz; return the bytes written.

        The task is stopped while its snapshot is read, and restarted after
        (even when the export fails) if it was running. Backends that cannot
        mount snapshots are read through the agent instead, without a stop.
        """
        with self._locks.hold(bot_id), doing(f"bot {bot_id}: export /data"):
            return self._data.export(bot_id, dest)

    @bot_operation
    def import_data(self, bot_id: str, src: IO[bytes]) -> None:
        """Unpack a tar.gz into ``/data`` of the bot's container, replacing what it names.

        The archive is checked whole first: one unsafe entry (absolute path,
        ``..``, a path through a symlink, a link out of the tree, a device)
        refuses it with InvalidArgument before anything is stopped or written.
        """
        with (
            doing(f"bot {bot_id}: import /data"),
            self._data.checked(src) as checked,
            self._locks.hold(bot_id),
        ):
            self._data.import_checked(bot_id, checked)

    @bot_operation
    def preserve_data(self, bot_id: str) -> None:
        """Save ``/data`` to ``<data_root>/backups/<bot>.tar.gz`` (complete, or not at all)."""
        with self._locks.hold(bot_id), doing(f"bot {bot_id}: preserve /data"):
            self._data.preserve(bot_id)

    @bot_operation
    def restore_preserved_data(self, bot_id: str) -> None:
        """Import the bot's backup into its container, then delete the backup.

        Without a backup, memoh's legacy directory ``<data_root>/bots/<bot>``
        is copied in and renamed ``<bot>.migrated``. NotFound if neither exists.
        """
        with self._locks.hold(bot_id), doing(f"bot {bot_id}: restore preserved data"):
            self._data.restore(bot_id)

    @bot_operation
    def has_preserved_data(self, bot_id: str) -> bool:
        """True if the bot has a backup archive, or a legacy directory not yet migrated."""
        return self._data.has_preserved(bot_id)

    # -- snapshots and versions ----------------------------------------------

    def _require_store(self, bot_id: str) -> VersionStore:
        if self._moves.store is None:
            raise errors.FailedPrecondition(
                f"bot {bot_id}: snapshots and versions need a version store: pass store= to Manager"
            )
        return self._moves.store

    @bot_operation
    def create_snapshot(
        self, bot_id: str, name: str = "", source: str = versions.SOURCE_MANUAL
    ) -> SnapshotCreateInfo:
        """Commit the bot's whole filesystem as a named snapshot, numbered like a version.

        The bot is stopped, its active snapshot committed, and the container
        moved onto a fresh snapshot on top of it (and restarted if it was
        running). Once started, this runs to the end even if the calling thread
        is interrupted. After a failure, calling it again finishes the failed move.
        """
        display = name.strip()
        with self._locks.hold(bot_id), doing(f"bot {bot_id}: create snapshot"):
            source = source.strip() or versions.SOURCE_MANUAL
            info, rec = self._moves.snapshot(
                self._require_store(bot_id), bot_id, "snapshot", display, source
            )
        return SnapshotCreateInfo.of(info, rec)

    @bot_operation
    def create_version(self, bot_id: str) -> VersionInfo:
        """Commit the bot's whole filesystem as its next numbered version (see create_snapshot)."""
        with self._locks.hold(bot_id), doing(f"bot {bot_id}: create version"):
            store = self._require_store(bot_id)
            _, rec = self._moves.snapshot(store, bot_id, "v", "", versions.SOURCE_PRE_EXEC)
        return VersionInfo.of(rec)

    @bot_operation
    def list_versions(self, bot_id: str) -> VersionList:
        """The bot's versions, version 1 first (a list that Jupyter shows as a table)."""
        store = self._require_store(bot_id)
        with doing(f"bot {bot_id}: list versions"):
            records = store.list_versions(self.container_id(bot_id))
            return VersionList(versions.infos(records))

    @bot_operation
    def version_snapshot_name(self, bot_id: str, version: int) -> str:
        """The runtime snapshot a version points at; NotFound if there is no such version."""
        with doing(f"bot {bot_id}"):
            versions.validate_version(version)
        store = self._require_store(bot_id)
        with doing(f"bot {bot_id}: look up version {version}"):
            return store.get_version(self.container_id(bot_id), version).runtime_snapshot_name

    @bot_operation
    def rollback_version(self, bot_id: str, version: int) -> None:
        """Move the bot's container onto a fresh snapshot of an earlier version.

        What the bot wrote since is left in the snapshot it leaves (and in any
        version made of it). Runs to the end once started, like create_snapshot.
        """
        with doing(f"bot {bot_id}"):
            versions.validate_version(version)
        store = self._require_store(bot_id)
        with self._locks.hold(bot_id), doing(f"bot {bot_id}: roll back to version {version}"):
            target = store.get_version(self.container_id(bot_id), version).runtime_snapshot_name
            self._moves.roll_back(bot_id, target, version)
            self._runtime.log(bot_id).info("rolled back to version %d (%s)", version, target)

    @bot_operation
    def list_bot_snapshot_data(self, bot_id: str) -> BotSnapshotData:
        """The bot's container, its own snapshots and their ancestry, and the store's metadata.

        Only the bot's lineage is listed (memoh lists the whole snapshotter,
        other bots included). Works without a store (the metadata is then empty).
        """
        with self._locks.hold(bot_id), doing(f"bot {bot_id}: list snapshots"):
            return self._moves.snapshot_data(bot_id)

    # -- repair --------------------------------------------------------------

    def reconcile(self, bot_id: str | None = None) -> list[ReconcileResult]:
        """Repair bots a crash left mid-move, or without a container; report what was done.

        An interrupted snapshot move is finished (or, if it had not got far,
        undone) from its intent; a bot whose container vanished is recreated
        on its newest active snapshot and started. ``None`` checks every bot
        with an intent or an orphaned snapshot.
        """
        with doing("reconcile: find bots to repair"):
            bots = [validate_bot_id(bot_id)] if bot_id is not None else self._moves.to_repair()
        results = []
        for bot in bots:
            with bot_context(bot), self._locks.hold(bot), doing(f"bot {bot}: reconcile"):
                results.append(self._moves.reconcile_one(bot))
        return results

    # -- closing -------------------------------------------------------------

    def close(self) -> None:
        """Close the clients, the store and (if this Manager owns it) the service."""
        if not self._addresses.close():
            return
        close_store = getattr(self._moves.store, "close", None)
        if close_store is not None:
            close_store()
        if self._owns_service:
            self._service.close()

    def __enter__(self) -> Manager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _view(self) -> _board.ManagerView:
        """What the reprs show, from memory only: the status board and the IP cache."""
        return _board.ManagerView(
            backend=type(self._service).__name__,
            image=self._config.image_ref(),
            store=describe(self._moves.store),
            closed=self._addresses.closed,
            rows=_board.bot_rows(self._board, self._addresses.ips(), CONTAINER_PREFIX),
        )

    def __repr__(self) -> str:
        return guarded(lambda: _board.manager_text(self._view()), self)

    def _repr_html_(self) -> str:
        """The bots this Manager knows as an HTML table (for Jupyter); never calls the backend."""
        return guarded(lambda: _board.manager_html(self._view()), self, as_html=True)
