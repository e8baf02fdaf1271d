"""The runtime helper: what it takes to have a bot's container exist, run and be reachable.

Every method assumes the caller (the Manager) holds the bot's lock; these are
the steps the Manager's operations are made of: ensure the container, start
or halt its task, attach or release its network, recover a lost IP, and put
the container on another snapshot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress

from . import _optlabels, errors, naming
from ._addresses import AddressBook
from ._board import StatusBoard
from ._context import doing
from ._log import BotLogger, for_bot
from ._readiness import wait_for_agent
from .botspec import bot_container_spec
from .config import ManagerConfig, resolve_cni_bin_dir
from .service import ContainerService
from .types import (
    BotOptions,
    BotStatus,
    ContainerInfo,
    CreateContainerRequest,
    DeleteContainerOptions,
    DeleteTaskOptions,
    NetworkSetupRequest,
    StopTaskOptions,
    TaskInfo,
    TaskStatus,
)

__all__ = ["Runtime"]

HALT_TIMEOUT = 10.0
"""Seconds a task gets to exit on SIGTERM before it is killed, when the Manager halts it."""


class Runtime:
    """Brings one bot's container into the state an operation needs (lock held by the caller)."""

    ip_recovery_delays: tuple[float, ...] = (0.5, 1.0)

    def __init__(
        self,
        service: ContainerService,
        config: ManagerConfig,
        logger: logging.Logger,
        addresses: AddressBook,
        board: StatusBoard,
    ) -> None:
        self.service = service
        self.config = config
        self.logger = logger
        self.addresses = addresses
        self.board = board
        self.cni_bin_dir = resolve_cni_bin_dir(config)  # Debian's /usr/lib/cni if need be

    def log(self, bot_id: str) -> BotLogger:
        """A logger whose records carry ``bot_id``."""
        return for_bot(self.logger, bot_id)

    def snapshotter(self) -> str:
        """The configured snapshotter, or the default one."""
        return self.config.snapshotter or naming.DEFAULT_SNAPSHOTTER

    def net_request(self, container_id: str) -> NetworkSetupRequest:
        """The network request of a container, with the configured CNI directories."""
        return NetworkSetupRequest(
            container_id=container_id,
            cni_bin_dir=self.cni_bin_dir,
            cni_conf_dir=self.config.cni_conf_dir,
        )

    def bot_request(
        self,
        bot_id: str,
        snapshot_id: str = "",
        *,
        labels: Mapping[str, str] | None = None,
        image_ref: str = "",
        snapshotter: str = "",
    ) -> CreateContainerRequest:
        """How the bot's container is made: image, snapshotter, labels and spec.

        The bot's options come from ``labels`` (the bot's labels when None);
        ``image_ref`` overrides their image (a container put back on a
        snapshot keeps the image that snapshot was made from), in which case
        an image the options ask for stays pending.
        """
        labels = dict(labels) if labels else naming.bot_labels(bot_id)
        options = _optlabels.options_of(labels, f"bot {bot_id}")
        resolved = _optlabels.resolve(self.config, options)
        labels = _optlabels.strip_options(labels) | _optlabels.option_labels(options)
        image = image_ref or resolved.image_ref
        if options.image and image != resolved.image_ref:
            labels[naming.OPTIONS_PENDING_LABEL] = "image"
        return CreateContainerRequest(
            id=naming.container_id(bot_id),
            image_ref=image,
            snapshot_id=snapshot_id,
            snapshotter=snapshotter or self.config.snapshotter,
            labels=labels,
            spec=bot_container_spec(self.config, resolved.env, resolved.limits),
        )

    def options_request(
        self, bot_id: str, options: BotOptions | None, snapshot_id: str = ""
    ) -> CreateContainerRequest:
        """:meth:`bot_request` for a bot with ``options`` (None: the config's defaults)."""
        labels = naming.bot_labels(bot_id)
        if options is not None:
            labels |= _optlabels.option_labels(options)
        return self.bot_request(bot_id, snapshot_id, labels=labels)

    # -- the container ---------------------------------------------------------

    def ensure(self, bot_id: str, options: BotOptions | None = None) -> ContainerInfo:
        """The bot's container, created (or rebuilt on a surviving snapshot) if missing.

        A new container gets ``options``; an existing one is returned as it is.
        """
        cid = naming.container_id(bot_id)
        with doing(f"bot {bot_id}: ensure container {cid}"):
            try:
                return self.service.get_container(cid)
            except errors.NotFound:
                pass
            orphan = self.newest_orphan(bot_id)
            if orphan:
                # The container is gone but an active snapshot of it survives
                # (deleted by hand, or the daemon lost its metadata). Replacing
                # it would lose the bot's data, so the container is rebuilt on it.
                self.log(bot_id).warning(
                    "container %s is gone but its snapshot %s survives; recreating on it",
                    cid,
                    orphan,
                )
                info = self.service.create_container_from_snapshot(
                    self.options_request(bot_id, options, orphan)
                )
                self.board.note(bot_id, "created")
                return info
            req = self.options_request(bot_id, options)
            try:
                info = self.service.create_container(req)
            except errors.AlreadyExists:  # another Manager created it meanwhile
                return self.service.get_container(cid)
        self.board.note(bot_id, "created")
        self.log(bot_id).info("created container %s from %s", cid, req.image_ref)
        return info

    def exists(self, bot_id: str) -> bool:
        """Whether the bot's container exists (True when the backend cannot tell)."""
        try:
            self.service.get_container(naming.container_id(bot_id))
        except errors.NotFound:
            return False
        except Exception:
            return True
        return True

    def remove(self, bot_id: str) -> None:
        """Delete the bot's task, network, container and every active snapshot of it."""
        cid = naming.container_id(bot_id)
        self.detach(bot_id)
        try:
            self.delete_task(cid)
        except Exception as exc:
            self.log(bot_id).warning("cleanup: deleting the task of %s failed: %s", cid, exc)
        with doing(f"bot {bot_id}: delete container {cid}"):
            self.service.delete_container(cid, DeleteContainerOptions(cleanup_snapshot=True))
            # Active snapshots left by earlier moves would otherwise come back as
            # "orphans" on the next start, resurrecting data the caller deleted.
            for leftover in self.owned_actives(bot_id):
                self.service.remove_snapshot(self.snapshotter(), leftover)
        self.log(bot_id).info("deleted container %s", cid)

    def owned_actives(self, bot_id: str) -> list[str]:
        """Active snapshots made for the bot's container, oldest first."""
        cid = naming.container_id(bot_id)
        ranked = [
            (order, snap.name)
            for snap in self.service.list_snapshots(self.snapshotter(), prefix=cid)
            if (order := naming.owned_active(snap, cid, bot_id)) is not None
        ]
        return [name for _, name in sorted(ranked)]

    def newest_orphan(self, bot_id: str) -> str:
        """The newest active snapshot made for the bot's container, or ``""``."""
        owned = self.owned_actives(bot_id)
        return owned[-1] if owned else ""

    def replace_container(
        self, bot_id: str, key: str, *, image: str, snapshotter: str, labels: dict[str, str]
    ) -> None:
        """Put the bot's container on snapshot ``key``, keeping the snapshot it leaves."""
        cid = naming.container_id(bot_id)
        try:
            current: ContainerInfo | None = self.service.get_container(cid)
        except errors.NotFound:
            current = None
        if current is not None and current.snapshot_key != key:
            self.addresses.forget(bot_id)
            self.service.stop_container(cid, StopTaskOptions(timeout=HALT_TIMEOUT, force=True))
            self.delete_task(cid)
            self.service.delete_container(cid, DeleteContainerOptions(cleanup_snapshot=False))
            current = None
        if current is None:
            req = self.bot_request(
                bot_id, key, labels=labels, image_ref=image, snapshotter=snapshotter
            )
            self.service.create_container_from_snapshot(req)

    def remove_snapshot(self, bot_id: str, snapshotter: str, key: str) -> None:
        """Remove a snapshot the bot no longer needs; gone already is fine, failure a warning."""
        try:
            self.service.remove_snapshot(snapshotter, key)
        except errors.NotFound:
            pass
        except Exception as exc:
            self.log(bot_id).warning("cleanup: removing snapshot %s failed: %s", key, exc)

    def status(self, bot_id: str) -> BotStatus:
        """The bot's container and task as the backend reports them now."""
        cid = naming.container_id(bot_id)
        try:
            info = self.service.get_container(cid)
        except errors.NotFound:
            return BotStatus(bot_id, cid, exists=False)
        task = self.task(cid)
        state = task.status if task is not None else TaskStatus.STOPPED
        running = state is TaskStatus.RUNNING
        return BotStatus(
            bot_id,
            cid,
            exists=True,
            status=state,
            pid=task.pid if task is not None and running else 0,
            ip=(self.addresses.ip(bot_id) or info.labels.get(naming.IP_LABEL_KEY, ""))
            if running
            else "",
            image=info.image,
            created_at=info.created_at,
            updated_at=info.updated_at,
        )

    # -- the task --------------------------------------------------------------

    def task(self, container_id: str) -> TaskInfo | None:
        """The container's task, or None if it has none."""
        with doing(f"get task of {container_id}"):
            try:
                return self.service.get_task_info(container_id)
            except errors.NotFound:
                return None

    def is_running(self, container_id: str) -> bool:
        """Whether the container has a running task."""
        task = self.task(container_id)
        return task is not None and task.status is TaskStatus.RUNNING

    def ensure_running(self, bot_id: str) -> None:
        """Start the bot's task unless it runs; make sure a running one has its IP."""
        task = self.task(naming.container_id(bot_id))
        if task is not None and task.status is TaskStatus.RUNNING:
            if not self.addresses.ip(bot_id):
                self.attach_network(bot_id)
            self.board.note(bot_id, "running")
            self.await_agent(bot_id)
            return
        self.addresses.forget(bot_id)
        self.start_task(bot_id, replace=task is not None)

    def start_task(self, bot_id: str, replace: bool) -> None:
        """Start the bot's task (replacing a stale one) and attach its network.

        If the network cannot be set up the task is force-stopped again: a bot
        is never left running but unreachable.
        """
        cid = naming.container_id(bot_id)
        with doing(f"bot {bot_id}: start container {cid}"):
            if replace:
                self.delete_task(cid)
            began = time.monotonic()
            self.service.start_container(cid)
        self.log(bot_id).info("started the task of %s", cid)
        self.addresses.evict(bot_id)
        try:
            self.attach_network(bot_id)
        except errors.MCPManagerError:
            self.force_stop(bot_id)
            self.board.note(bot_id, "stopped (start failed)")
            raise
        self.board.note(bot_id, "running")
        self.await_agent(bot_id, began)

    def await_agent(self, bot_id: str, since: float | None = None) -> None:
        """Wait (up to ``ready_timeout``) for the agent of a just-started bot, if it has one."""
        if self.config.ready_timeout > 0 and getattr(self.service, "serves_agents", True):
            self.wait_ready(bot_id, self.config.ready_timeout, since)

    def ready_wait(self, bot_id: str, timeout: float | None) -> float:
        """The seconds an explicit wait_ready() may take, checked; None means the config's."""
        if not getattr(self.service, "serves_agents", True):
            backend = type(self.service).__name__
            raise errors.NotSupported(f"bot {bot_id}: {backend} runs no agents to wait for")
        wait = self.config.ready_timeout if timeout is None else timeout
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait <= 0:
            raise errors.InvalidArgument(
                f"bot {bot_id}: timeout must be a number > 0, got {timeout!r}"
            )
        return float(wait)

    def wait_ready(self, bot_id: str, timeout: float, since: float | None = None) -> None:
        """Return once the bot's agent answers; DeadlineExceeded after ``timeout`` seconds.

        The bot is left running when it times out, so a later wait may succeed.
        ``since`` (a ``time.monotonic()`` reading of the task start) is for the log line.
        """
        ip = self.addresses.ip(bot_id)
        if not ip:
            raise errors.FailedPrecondition(f"bot {bot_id} is not running (it has no address)")
        address = f"{ip}:{self.config.grpc_port}"
        began = time.monotonic() if since is None else since
        wait_for_agent(lambda: self.addresses.client(bot_id), bot_id, address, timeout)
        took = (time.monotonic() - began) * 1000
        self.log(bot_id).info("agent at %s answers, %.0f ms after its task started", address, took)

    def delete_task(self, container_id: str) -> None:
        """Force-delete the container's task; having none is fine."""
        with suppress(errors.NotFound):
            self.service.delete_task(container_id, DeleteTaskOptions(force=True))

    def force_stop(self, bot_id: str) -> None:
        """Kill the bot's task as a cleanup step; a failure is only logged."""
        cid = naming.container_id(bot_id)
        self.addresses.forget(bot_id)
        try:
            self.service.stop_container(cid, StopTaskOptions(force=True))
        except Exception as exc:
            self.log(bot_id).warning("cleanup: force-stopping %s failed: %s", cid, exc)

    def halt(self, bot_id: str, timeout: float = HALT_TIMEOUT) -> None:
        """Stop the bot's task (SIGTERM, then kill after ``timeout``) and release its network.

        The bot's client goes first: closed by us, its channel is not left to
        hear the agent go away mid-call.
        """
        cid = naming.container_id(bot_id)
        self.addresses.forget(bot_id)
        self.service.stop_container(cid, StopTaskOptions(timeout=timeout, force=True))
        self.detach(bot_id)

    @contextmanager
    def halted(self, bot_id: str, step: str, *, resume: bool = True) -> Iterator[None]:
        """Stop the bot's task for the block; restart it after if it was running.

        With ``resume=False`` it is restarted only when the block fails (the
        caller goes on to delete it). If the block succeeds but the restart
        fails, :class:`~mcpmanager.errors.RestartFailed` says so: the ``step``
        is done, the bot is stopped. If the block fails, its error is raised
        whether or not the restart worked.
        """
        task = self.task(naming.container_id(bot_id))
        was_running = task is not None and task.status is TaskStatus.RUNNING
        if task is not None:
            self.halt(bot_id)
        try:
            yield
        except BaseException as exc:
            if was_running:
                self._restart_after_failure(bot_id, step, exc)
            raise
        if was_running and resume:
            self.restart_after(bot_id, step)

    def restart_after(self, bot_id: str, step: str) -> None:
        """Restart the bot after ``step`` succeeded; RestartFailed if it does not come up."""
        try:
            self.start_task(bot_id, replace=True)
        except Exception as exc:
            self.log(bot_id).error("%s succeeded, but the restart after it failed: %s", step, exc)
            state = self._state_after(bot_id)
            raise errors.RestartFailed(
                f"bot {bot_id}: {step} succeeded, but restarting the bot failed, so {state} "
                f"(start() brings it up): {exc}",
                bot_id=bot_id,
                completed=step,
            ) from exc

    def _state_after(self, bot_id: str) -> str:
        """How a bot whose restart failed is left, in words."""
        try:
            running = self.is_running(naming.container_id(bot_id))
        except errors.MCPManagerError:
            return "its state is unknown"
        return "it runs but its agent does not answer" if running else "it is stopped"

    def _restart_after_failure(self, bot_id: str, step: str, failure: BaseException) -> None:
        try:
            self.start_task(bot_id, replace=True)
        except Exception as exc:
            self.log(bot_id).error("%s failed, and so did the restart after it: %s", step, exc)
            add_note = getattr(failure, "add_note", None)  # Python 3.11+
            if add_note is not None:
                add_note(f"restarting the bot failed too, so it is stopped: {exc}")

    # -- the network -----------------------------------------------------------

    def attach_network(self, bot_id: str) -> str:
        """Set up the bot's network and cache its IP; Unavailable if it yields none."""
        cid = naming.container_id(bot_id)
        with doing(f"bot {bot_id}: network setup for {cid}"):
            ip = self.service.setup_network(self.net_request(cid)).ip
            if not ip:
                raise errors.Unavailable("network setup returned no IP")
        self.addresses.put(bot_id, ip)
        self.log(bot_id).info("container network ready at %s", ip)
        return ip

    def detach(self, bot_id: str) -> None:
        """Forget the bot's IP and client and release its network (warning on failure)."""
        cid = naming.container_id(bot_id)
        self.addresses.forget(bot_id)
        self.board.note(bot_id, "stopped")
        try:
            self.service.remove_network(self.net_request(cid))
        except Exception as exc:
            self.log(bot_id).warning("cleanup: removing the network of %s failed: %s", cid, exc)

    def recover_ip(self, bot_id: str) -> str:
        """The bot's IP from its ``mcp.container_ip`` label, else by renewing its network."""
        cid = naming.container_id(bot_id)
        log = self.log(bot_id)
        try:
            info = self.service.get_container(cid)
            ip = info.labels.get(naming.IP_LABEL_KEY, "")
            task = None if ip else self.task(cid)
        except errors.NotFound:
            return ""
        except Exception as exc:
            log.warning("IP recovery for %s failed: %s", cid, exc)
            return ""
        if not ip and (task is None or task.status is not TaskStatus.RUNNING):
            return ""
        ip = ip or self._renew_network(bot_id)
        if ip:
            self.addresses.put(bot_id, ip)
            log.info("recovered container IP %s", ip)
        return ip

    def _renew_network(self, bot_id: str) -> str:
        cid = naming.container_id(bot_id)
        log = self.log(bot_id)
        attempts = len(self.ip_recovery_delays)
        for attempt, delay in enumerate(self.ip_recovery_delays, start=1):
            try:
                return self.service.setup_network(self.net_request(cid)).ip
            except Exception as exc:
                log.warning("IP recovery attempt %d/%d failed: %s", attempt, attempts, exc)
                if attempt < attempts:
                    time.sleep(delay)  # back-off between attempts, not synchronisation
        log.warning("IP recovery gave up after %d attempts", attempts)
        return ""
