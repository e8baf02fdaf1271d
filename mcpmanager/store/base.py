"""The ``VersionStore`` protocol and the records it returns.

A version store remembers, per container, which runtime snapshots the Manager
committed, the numbered versions pointing at them, and a log of lifecycle
events. Two implementations ship: ``PostgresStore`` and ``SQLiteStore``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import attrs

__all__ = [
    "ContainerRecord",
    "EventRecord",
    "SnapshotRecord",
    "VersionRecord",
    "VersionStore",
]


@attrs.frozen
class ContainerRecord:
    """A container the store knows about (memoh's ``containers`` row)."""

    id: str
    container_id: str
    bot_id: str
    image: str
    snapshotter: str
    created_at: datetime
    updated_at: datetime


@attrs.frozen
class VersionRecord:
    """One numbered version of a container and the snapshot it points at."""

    id: str
    container_id: str
    version: int
    runtime_snapshot_name: str
    display_name: str
    source: str
    created_at: datetime


@attrs.frozen
class SnapshotRecord:
    """A recorded runtime snapshot; ``version`` is its newest version number, if any."""

    id: str
    container_id: str
    runtime_snapshot_name: str
    display_name: str
    parent_runtime_snapshot_name: str
    snapshotter: str
    source: str
    version: int | None
    created_at: datetime


@attrs.frozen
class EventRecord:
    """One lifecycle event (``snapshot_create``, ``version_rollback``, ...) of a container."""

    id: str
    container_id: str
    event_type: str
    payload: Mapping[str, Any]
    created_at: datetime


@runtime_checkable
class VersionStore(Protocol):
    """Where snapshots, versions and lifecycle events of containers are recorded.

    Implementations are safe to use from many threads at once, and several
    processes may share one database: version numbers stay unique and gapless
    per container. Every failure is an ``mcpmanager.errors`` class.
    """

    def migrate(self) -> None:
        """Create or upgrade the store's tables; running it again does nothing."""
        ...

    def close(self) -> None:
        """Release connections; the store cannot be used afterwards."""
        ...

    def __enter__(self) -> VersionStore: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def upsert_container(
        self, container_id: str, bot_id: str, image: str, snapshotter: str
    ) -> None:
        """Register a container (or update its bot, image and snapshotter)."""
        ...

    def get_container(self, container_id: str) -> ContainerRecord:
        """Return a registered container; ``NotFound`` if it is not registered."""
        ...

    def delete_container(self, container_id: str) -> None:
        """Forget a container with its snapshots, versions and events (no error if absent)."""
        ...

    def record_snapshot(
        self,
        container_id: str,
        runtime_snapshot_name: str,
        *,
        display_name: str = "",
        parent_runtime_snapshot_name: str = "",
        snapshotter: str,
        source: str = "manual",
    ) -> VersionRecord:
        """Record a committed runtime snapshot as the container's next version, once.

        Atomic and idempotent on (container, runtime snapshot name): repeating
        the call with the same name and details returns the first call's
        record and writes nothing, even from racing threads or processes.
        The same name with other details is ``AlreadyExists``; ``NotFound`` if
        the container is not registered (see ``upsert_container``).
        """
        ...

    def find_version_by_snapshot(
        self, container_id: str, runtime_snapshot_name: str
    ) -> VersionRecord | None:
        """The version recorded for a runtime snapshot (the newest if several), or None."""
        ...

    def list_versions(self, container_id: str) -> list[VersionRecord]:
        """All versions of a container, oldest (version 1) first; empty if none."""
        ...

    def get_version(self, container_id: str, version: int) -> VersionRecord:
        """One version of a container; ``NotFound`` if it does not exist."""
        ...

    def list_snapshots(self, container_id: str) -> list[SnapshotRecord]:
        """All recorded snapshots of a container, newest first, with their version numbers."""
        ...

    def add_event(self, container_id: str, event_type: str, payload: Mapping[str, object]) -> None:
        """Append a lifecycle event with a JSON-serialisable payload."""
        ...

    def list_events(self, container_id: str) -> list[EventRecord]:
        """A container's lifecycle events in the order they were added."""
        ...
