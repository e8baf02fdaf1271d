"""Build store records from the result rows of the shared statements in ``_sql``.

One record goes through its attrs constructor. ``versions`` builds many
``VersionRecord`` at once with the slot setters of :mod:`mcpmanager._records`:
the rows come from our own tables and statements, so there is nothing to
check, and the records are the same objects the constructor makes (tests
compare the two on both stores).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from mcpmanager._records import slot_setters
from mcpmanager.store._values import decode_payload
from mcpmanager.store.base import ContainerRecord, EventRecord, SnapshotRecord, VersionRecord

Row = Sequence[Any]
ToTime = Callable[[Any], datetime]


_VERSION_SETTERS = slot_setters(
    VersionRecord,
    (
        "id", "container_id", "version", "runtime_snapshot_name", "display_name", "source",
        "created_at",
    ),
)  # fmt: skip


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


def versions(rows: Iterable[Row], container_id: str, when: ToTime | None) -> list[VersionRecord]:
    """``VersionRecord`` of ``container_id`` for rows laid out as in ``version``, in order.

    Equal to ``[version(row, container_id, when) for row in rows]`` when the
    rows' ids are text and their numbers ints (our statements make sure), at
    about two thirds of the cost. ``when`` None: the timestamps are kept as
    they came (already aware UTC datetimes).
    """
    set_id, set_container, set_version, set_name, set_display, set_source, set_at = _VERSION_SETTERS
    new = object.__new__
    out: list[VersionRecord] = []
    append = out.append
    for vid, number, name, display, source, at in rows:
        rec = new(VersionRecord)
        set_id(rec, vid)
        set_container(rec, container_id)
        set_version(rec, number)
        set_name(rec, name)
        set_display(rec, display)
        set_source(rec, source)
        set_at(rec, at if when is None else when(at))
        append(rec)
    return out


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
