"""Per-bot options (image, env, limits) and metrics: the steps behind the Manager's calls.

Options live in the container's labels (see :mod:`._optlabels`). Changing
them applies what can be applied now: limits go to the running task where
the runtime can (``update_resources``); a stopped bot is simply remade on
its own snapshot; a running bot whose env or image changed keeps running
and is remade at its next start from stopped (or at once with
``recreate=True``). A new image never drops ``/data``: it is backed up,
the container remade from the new image, and ``/data`` restored.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from . import _optlabels, errors, naming
from ._context import doing
from ._data_ops import DataOps
from ._runtime import Runtime
from .types import (
    BotMetrics,
    BotOptions,
    ContainerInfo,
    DeleteContainerOptions,
    OptionsUpdate,
    TaskStatus,
)

__all__ = ["SAMPLE_INTERVAL", "Resources", "check_options", "check_update"]

SAMPLE_INTERVAL = 0.2
"""Seconds between the two cgroup readings CPU percent is computed from (as memoh)."""

_FIELDS = ("image", "env", "limits")


def check_options(options: object) -> BotOptions | None:
    """``options`` if it is a BotOptions or None; else InvalidArgument (nothing called)."""
    if options is None or isinstance(options, BotOptions):
        return options
    raise errors.InvalidArgument(f"options must be a BotOptions or None, got {options!r}")


def check_update(options: object, recreate: object) -> None:
    """InvalidArgument unless ``options`` is a BotOptions and ``recreate`` a bool."""
    if not isinstance(options, BotOptions):
        raise errors.InvalidArgument(f"options must be a BotOptions, got {options!r}")
    if not isinstance(recreate, bool):
        raise errors.InvalidArgument(f"recreate must be a bool, got {recreate!r}")


def _changed(old: BotOptions, new: BotOptions) -> tuple[str, ...]:
    return tuple(f for f in _FIELDS if getattr(old, f) != getattr(new, f))


class Resources:
    """Applies bots' options and reads their metrics (bot lock held by the caller)."""

    def __init__(self, runtime: Runtime, data: DataOps) -> None:
        self._rt = runtime
        self._data = data

    # -- options -----------------------------------------------------------------

    def stored(self, bot_id: str) -> BotOptions:
        """The options stored with the bot's container (NotFound without one)."""
        info = self._rt.service.get_container(naming.container_id(bot_id))
        return _optlabels.options_of(info.labels, f"bot {bot_id}")

    def ensure(self, bot_id: str, options: BotOptions | None) -> ContainerInfo:
        """The bot's container, made with ``options`` or brought to them."""
        cid = naming.container_id(bot_id)
        if options is None:
            info = self._rt.ensure(bot_id)
            if not info.labels.get(naming.OPTIONS_PENDING_LABEL):
                return info
            with doing(f"bot {bot_id}: apply pending options"):
                if not self._rt.is_running(cid):
                    self._recreate(bot_id, info, self.stored(bot_id))
                return self._rt.service.get_container(cid)
        with doing(f"bot {bot_id}: apply options"):
            self.update(bot_id, options, recreate=False)
            return self._rt.service.get_container(cid)

    def update(self, bot_id: str, options: BotOptions, *, recreate: bool) -> OptionsUpdate:
        """Make ``options`` the bot's; see :meth:`mcpmanager.Manager.update_options`."""
        cid = naming.container_id(bot_id)
        try:
            info = self._rt.service.get_container(cid)
        except errors.NotFound:
            self._rt.ensure(bot_id, options)
            return OptionsUpdate(bot_id, changed=_changed(BotOptions(), options), created=True)
        old = _optlabels.options_of(info.labels, f"bot {bot_id}")
        changed = _changed(old, options)
        pending_before = bool(info.labels.get(naming.OPTIONS_PENDING_LABEL))
        if not changed and not pending_before:
            return OptionsUpdate(bot_id)
        running = self._rt.is_running(cid)
        if recreate or not running:
            self._recreate(bot_id, info, options)
            return OptionsUpdate(bot_id, changed=changed, recreated=True)
        return self._update_running(bot_id, info, old, options, changed)

    def _update_running(
        self,
        bot_id: str,
        info: ContainerInfo,
        old: BotOptions,
        new: BotOptions,
        changed: tuple[str, ...],
    ) -> OptionsUpdate:
        """Apply what a running bot can take live; store the rest as pending."""
        live: tuple[str, ...] = ()
        config = self._rt.config
        if _optlabels.resolve(config, old).limits != _optlabels.resolve(config, new).limits:
            try:
                self._rt.service.update_resources(info.id, _optlabels.resolve(config, new).limits)
                live = ("limits",)
            except errors.NotSupported as exc:
                self._rt.log(bot_id).info("limits wait for a recreate: %s", exc)
        elif "limits" in changed:
            live = ("limits",)  # same effective limits (explicit vs configured): nothing to do
        pending = tuple(f for f in changed if f not in live)
        if not pending and info.labels.get(naming.OPTIONS_PENDING_LABEL):
            pending = tuple(info.labels[naming.OPTIONS_PENDING_LABEL].split(","))
        labels = _optlabels.with_options(info.labels, new)
        if pending:
            labels[naming.OPTIONS_PENDING_LABEL] = ",".join(pending)
        stored = True
        try:
            self._rt.service.set_container_labels(info.id, labels)
        except errors.NotSupported as exc:
            self._rt.log(bot_id).warning("options not stored with the container: %s", exc)
            stored, pending = False, changed  # only a recreate stores them
        self._rt.log(bot_id).info("options %s: live %s, pending %s", changed, live, pending)
        return OptionsUpdate(bot_id, changed=changed, live=live, pending=pending, stored=stored)

    def _recreate(self, bot_id: str, info: ContainerInfo, options: BotOptions) -> None:
        """Remake the bot's container with ``options``, keeping ``/data``; restart it if it ran."""
        resolved = _optlabels.resolve(self._rt.config, options)
        if options.image and resolved.image_ref != info.image:
            self._new_image(bot_id, options)
            return
        labels = _optlabels.with_options(info.labels, options)
        with self._rt.halted(bot_id, "recreate the container with new options"):
            self._rt.delete_task(info.id)
            self._rt.service.delete_container(
                info.id, DeleteContainerOptions(cleanup_snapshot=False)
            )
            req = self._rt.bot_request(
                bot_id,
                info.snapshot_key,
                labels=labels,
                image_ref=info.image,
                snapshotter=info.snapshotter,
            )
            self._rt.service.create_container_from_snapshot(req)
        self._rt.log(bot_id).info("recreated container %s with new options", info.id)

    def _new_image(self, bot_id: str, options: BotOptions) -> None:
        """Back up ``/data``, remake the container from the new image, restore ``/data``.

        If anything after the backup fails, the backup stays (see
        ``has_preserved_data``/``restore_preserved_data``): ``/data`` is never lost.
        """
        cid = naming.container_id(bot_id)
        was_running = self._rt.is_running(cid)
        self._data.preserve_for_delete(bot_id)
        self._rt.remove(bot_id)
        self._rt.ensure(bot_id, options)
        self._data.restore(bot_id)
        if was_running:
            self._rt.ensure_running(bot_id)
        self._rt.log(bot_id).info("recreated container %s from image %s", cid, options.image)

    # -- metrics -----------------------------------------------------------------

    def metrics(self, bot_id: str) -> BotMetrics:
        """Two cgroup readings ``SAMPLE_INTERVAL`` apart, and the active snapshot's size."""
        cid = naming.container_id(bot_id)
        service = self._rt.service
        info = service.get_container(cid)
        task = self._rt.task(cid)
        if task is None or task.status is not TaskStatus.RUNNING:
            state = task.status.value if task is not None else "not started"
            raise errors.FailedPrecondition(f"bot {bot_id} is not running ({state})")
        first, began = service.task_metrics(cid), time.monotonic()
        time.sleep(SAMPLE_INTERVAL)  # the sampling interval itself, not a synchronisation
        second, ended = service.task_metrics(cid), time.monotonic()
        used = max(second.cpu_usage_ns - first.cpu_usage_ns, 0)
        percent = used / max((ended - began) * 1e9, 1.0) * 100
        limits = _optlabels.resolve(self._rt.config, self.stored(bot_id)).limits
        return BotMetrics(
            sampled_at=datetime.now(timezone.utc),
            cpu_usage_ns=second.cpu_usage_ns,
            cpu_percent=round(percent, 2),
            memory_bytes=second.memory_bytes,
            memory_limit_bytes=second.memory_limit_bytes,
            pids=second.pids,
            data_bytes=self._data_bytes(bot_id, info),
            storage_limit_bytes=limits.storage_bytes,
        )

    def _data_bytes(self, bot_id: str, info: ContainerInfo) -> int:
        snapshotter = info.snapshotter or self._rt.snapshotter()
        try:
            return self._rt.service.snapshot_usage(snapshotter, info.snapshot_key)
        except errors.NotSupported as exc:
            self._rt.log(bot_id).debug("no snapshot usage: %s", exc)
            return 0
