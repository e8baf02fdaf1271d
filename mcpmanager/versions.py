"""Snapshots, versions and rollback of a bot's whole container filesystem.

A snapshot or version commits the container's active snapshot and moves the
container onto a fresh active snapshot prepared from it; a rollback moves it
onto one prepared from an older version. That move (stop, commit, prepare,
delete the container, recreate it, start) is journaled in an intent file under
``<data_root>/intents/`` before it starts and removed once the store has
recorded it, so :meth:`Manager.reconcile` can always finish or undo a move a
crash cut short, and no store write is silently lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

import attrs

from . import _repr, errors
from ._log import get_logger
from ._worker import Worker
from .data import atomic_write
from .types import ContainerInfo, SnapshotInfo

__all__ = [
    "BotSnapshotData",
    "Intent",
    "IntentJournal",
    "ManagedSnapshotMeta",
    "ReconcileResult",
    "SnapshotCreateInfo",
    "VersionInfo",
    "VersionList",
    "display_snapshot_name",
    "owned_active",
    "run_to_completion",
    "runtime_name",
    "snapshot_bot",
    "validate_version",
]

log = get_logger("mcpmanager.versions")

SOURCE_MANUAL = "manual"
SOURCE_PRE_EXEC = "pre_exec"
SOURCE_ROLLBACK = "rollback"
MAX_VERSION = 2**31 - 1
GC_ROOT_LABEL = "containerd.io/gc.root"

T = TypeVar("T")


@attrs.frozen
class VersionInfo:
    """A numbered version of a bot's container filesystem."""

    id: str
    version: int
    snapshot_name: str
    runtime_snapshot_name: str
    display_name: str = attrs.field(repr=_repr.short)
    created_at: datetime = attrs.field(repr=_repr.short)


@attrs.frozen
class SnapshotCreateInfo:
    """What :meth:`Manager.create_snapshot` made."""

    container_id: str
    snapshot_name: str
    runtime_snapshot_name: str
    display_name: str = attrs.field(repr=_repr.short)
    snapshotter: str
    version: int
    created_at: datetime = attrs.field(repr=_repr.short)


@attrs.frozen
class ManagedSnapshotMeta:
    """What the store knows about a runtime snapshot the Manager made."""

    source: str
    version: int | None
    display_name: str


def _snapshot_tuple(value: Iterable[SnapshotInfo]) -> tuple[SnapshotInfo, ...]:
    return tuple(value)


@attrs.frozen
class BotSnapshotData:
    """A bot's container, its snapshotter's snapshots, and the store's metadata for them."""

    container_id: str
    info: ContainerInfo
    snapshotter: str
    runtime_snapshots: tuple[SnapshotInfo, ...] = attrs.field(
        converter=_snapshot_tuple, repr=_repr.named
    )
    managed_meta: Mapping[str, ManagedSnapshotMeta] = attrs.field(factory=dict, repr=_repr.short)

    def _repr_html_(self) -> str:
        """The container and its snapshotter's snapshots as HTML tables (for Jupyter)."""
        return _repr.guarded(lambda: _repr.snapshot_data_html(self), self, as_html=True)


class VersionList(list[VersionInfo]):
    """A plain list of versions that Jupyter shows as a table (what list_versions returns)."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        """The versions as an HTML table: version, name, runtime snapshot, created."""
        return _repr.guarded(lambda: _repr.versions_html(self), self, as_html=True)


@attrs.frozen
class ReconcileResult:
    """What :meth:`Manager.reconcile` did for one bot (``action`` is a short verb phrase)."""

    bot_id: str
    action: str
    snapshot: str = ""


def validate_version(version: object) -> int:
    """``version`` if it is an int in 1..2^31-1; else InvalidArgument."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise errors.InvalidArgument(f"version must be an int, got {version!r}")
    if not 1 <= version <= MAX_VERSION:
        raise errors.InvalidArgument(f"version {version} is out of range 1..{MAX_VERSION}")
    return version


def display_snapshot_name(display_name: str, version: int) -> str:
    """The display name, or ``Version N`` when there is none."""
    name = display_name.strip()
    if name:
        return name
    return f"Version {version}" if version > 0 else ""


_last_ns = 0
_ns_lock = threading.Lock()


def runtime_name(container_id: str, kind: str) -> str:
    """``<container>-<kind><nanoseconds>``, strictly increasing within this process."""
    global _last_ns
    with _ns_lock:
        _last_ns = max(_last_ns + 1, time.time_ns())
        stamp = _last_ns
    sep = "" if kind == "v" else "-"
    return f"{container_id}-{kind}{sep}{stamp}"


def owned_active(snapshot: SnapshotInfo, container_id: str, bot_id: str) -> int | None:
    """Order of ``snapshot`` among the bot's active snapshots, or None if it is not one.

    The container's own key comes first (0); ``-active-``/``-rollback-``
    snapshots follow by their timestamp. A ``mcp.bot_id`` label naming another
    bot rules a snapshot out.
    """
    if snapshot.kind != "active" or snapshot.labels.get("mcp.bot_id", bot_id) != bot_id:
        return None
    if snapshot.name == container_id:
        return 0
    m = re.fullmatch(re.escape(container_id) + r"-(?:active|rollback)-(\d+)", snapshot.name)
    return int(m[1]) if m else None


def snapshot_bot(snapshot: SnapshotInfo) -> str | None:
    """The bot an active snapshot belongs to, by its label or its plain container name."""
    if snapshot.kind != "active":
        return None
    label = snapshot.labels.get("mcp.bot_id")
    if label:
        return label
    if re.fullmatch(r"mcp-[A-Za-z0-9_-]+", snapshot.name):
        return snapshot.name[len("mcp-") :]
    return None


def run_to_completion(fn: Callable[[], T], name: str) -> T:
    """Run ``fn`` in a worker thread and wait for it even if this thread is interrupted.

    A snapshot move cut short would leave a bot without a container, so a
    KeyboardInterrupt waits for the move to finish and is raised after it.
    """
    worker = Worker(fn, name)
    interrupted: KeyboardInterrupt | None = None
    while worker.thread.ident is None or worker.thread.is_alive():
        try:
            if worker.thread.ident is None:
                worker.thread.start()
            worker.thread.join()
        except KeyboardInterrupt as exc:
            interrupted = exc
            log.warning("%s: interrupted; finishing the snapshot move first", name)
    result = worker.outcome()
    if interrupted is not None:
        raise interrupted
    return result


@attrs.frozen
class Intent:
    """A snapshot move in progress, written before its first step.

    ``commit_name`` is the committed snapshot the old active one becomes (empty
    for a rollback); ``parent`` is what ``new_key`` is prepared from;
    ``record`` is the store write to make once the move is done (None for a
    rollback, whose event is in ``event``).
    """

    bot_id: str
    container_id: str
    snapshotter: str
    image: str
    labels: Mapping[str, str]
    old_key: str
    new_key: str
    parent: str
    commit_name: str
    was_running: bool
    record: Mapping[str, Any] | None = None
    event: Mapping[str, Any] | None = None


class IntentJournal:
    """Intent files under ``<data_root>/intents``, one per bot, written atomically."""

    def __init__(self, data_root: str) -> None:
        self._dir = os.path.join(data_root, "intents")

    def _path(self, bot_id: str) -> str:
        return os.path.join(self._dir, f"{bot_id}.json")

    def write(self, intent: Intent) -> None:
        """Record ``intent`` durably before the move starts."""
        payload = json.dumps(attrs.asdict(intent), sort_keys=True).encode()

        def write(f: Any) -> int:
            f.write(payload)
            return len(payload)

        atomic_write(self._path(intent.bot_id), write)

    def read(self, bot_id: str) -> Intent | None:
        """The bot's unfinished intent, if any."""
        try:
            with open(self._path(bot_id), encoding="utf-8") as f:
                raw = json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise errors.FailedPrecondition(
                f"bot {bot_id}: unreadable intent file {self._path(bot_id)}: {exc}"
            ) from exc
        return Intent(**raw)

    def remove(self, bot_id: str) -> None:
        """Forget the bot's intent once its move and record are complete."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._path(bot_id))

    def bots(self) -> list[str]:
        """Bots with an unfinished intent."""
        try:
            names = os.listdir(self._dir)
        except FileNotFoundError:
            return []
        return sorted(n[: -len(".json")] for n in names if n.endswith(".json"))


def gc_root_labels(bot_id: str) -> dict[str, str]:
    """Labels that keep a committed snapshot from containerd's garbage collector."""
    return {
        GC_ROOT_LABEL: datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "mcp.bot_id": bot_id,
    }
