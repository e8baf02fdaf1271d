"""Build store records from the result rows of the shared statements in ``_sql``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from mcpmanager.store._values import decode_payload
from mcpmanager.store.base import ContainerRecord, EventRecord, SnapshotRecord, VersionRecord

Row = Sequence[Any]
ToTime = Callable[[Any], datetime]


def container(row: Row, when: ToTime) -> ContainerRecord:
    """(id, container_id, bot_id, image, snapshotter, created_at, updated_at)."""
    return ContainerRecord(
        id=str(row[0]),
        container_id=row[1],
        bot_id=row[2],
        image=row[3],
        snapshotter=row[4],
        created_at=when(row[5]),
        updated_at=when(row[6]),
    )


def version(row: Row, container_id: str, when: ToTime) -> VersionRecord:
    """(id, version, runtime name, display name, source, created_at) of ``container_id``."""
    return VersionRecord(
        id=str(row[0]),
        container_id=container_id,
        version=int(row[1]),
        runtime_snapshot_name=row[2],
        display_name=row[3],
        source=row[4],
        created_at=when(row[5]),
    )


def snapshot(row: Row, when: ToTime) -> SnapshotRecord:
    """(id, container_id, runtime name, display name, parent, snapshotter, source, version, at)."""
    return SnapshotRecord(
        id=str(row[0]),
        container_id=row[1],
        runtime_snapshot_name=row[2],
        display_name=row[3],
        parent_runtime_snapshot_name=row[4],
        snapshotter=row[5],
        source=row[6],
        version=None if row[7] is None else int(row[7]),
        created_at=when(row[8]),
    )


def event(row: Row, when: ToTime) -> EventRecord:
    """(id, container_id, event_type, payload, created_at)."""
    return EventRecord(
        id=str(row[0]),
        container_id=row[1],
        event_type=row[2],
        payload=decode_payload(row[3]),
        created_at=when(row[4]),
    )
