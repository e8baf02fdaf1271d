"""What snapshots and versions of a bot's container filesystem look like to a caller.

The result types of the Manager's snapshot and version calls, and the rules
for version numbers and display names. How a snapshot move is made (and
repaired) is :mod:`mcpmanager._moves`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

import attrs

from . import errors
from ._format import guarded, named, short
from ._html import html_table
from ._records import slot_setters
from .types import ContainerInfo, SnapshotInfo

if TYPE_CHECKING:
    from .store import VersionRecord

__all__ = [
    "BotSnapshotData",
    "ManagedSnapshotMeta",
    "ReconcileResult",
    "SnapshotCreateInfo",
    "VersionInfo",
    "VersionList",
    "display_snapshot_name",
    "validate_version",
]

SOURCE_MANUAL = "manual"
SOURCE_PRE_EXEC = "pre_exec"
SOURCE_ROLLBACK = "rollback"
MAX_VERSION = 2**31 - 1


@attrs.frozen
class VersionInfo:
    """A numbered version of a bot's container filesystem."""

    id: str
    version: int
    snapshot_name: str
    runtime_snapshot_name: str
    display_name: str = attrs.field(repr=short)
    created_at: datetime = attrs.field(repr=short)

    @classmethod
    def of(cls, rec: VersionRecord) -> VersionInfo:
        """The caller's view of a version row of the store."""
        return cls(
            id=rec.id,
            version=rec.version,
            snapshot_name=display_snapshot_name(rec.display_name, rec.version),
            runtime_snapshot_name=rec.runtime_snapshot_name,
            display_name=rec.display_name,
            created_at=rec.created_at,
        )


_INFO_SETTERS = slot_setters(
    VersionInfo,
    ("id", "version", "snapshot_name", "runtime_snapshot_name", "display_name", "created_at"),
)


def infos(records: Iterable[VersionRecord]) -> list[VersionInfo]:
    """``[VersionInfo.of(r) for r in records]``, built at a third of the cost.

    The records come from a store, already checked: a listing of 10,000
    versions spends its time making objects, not checking them.
    """
    set_id, set_version, set_snapshot, set_runtime, set_display, set_at = _INFO_SETTERS
    new = object.__new__
    out: list[VersionInfo] = []
    append = out.append
    for rec in records:
        info = new(VersionInfo)
        set_id(info, rec.id)
        set_version(info, rec.version)
        set_snapshot(info, display_snapshot_name(rec.display_name, rec.version))
        set_runtime(info, rec.runtime_snapshot_name)
        set_display(info, rec.display_name)
        set_at(info, rec.created_at)
        append(info)
    return out


@attrs.frozen
class SnapshotCreateInfo:
    """What :meth:`Manager.create_snapshot` made."""

    container_id: str
    snapshot_name: str
    runtime_snapshot_name: str
    display_name: str = attrs.field(repr=short)
    snapshotter: str
    version: int
    created_at: datetime = attrs.field(repr=short)

    @classmethod
    def of(cls, info: ContainerInfo, rec: VersionRecord) -> SnapshotCreateInfo:
        """The snapshot ``rec`` that a move of container ``info`` recorded."""
        return cls(
            container_id=info.id,
            snapshot_name=display_snapshot_name(rec.display_name, rec.version),
            runtime_snapshot_name=rec.runtime_snapshot_name,
            display_name=rec.display_name,
            snapshotter=info.snapshotter,
            version=rec.version,
            created_at=rec.created_at,
        )


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
    runtime_snapshots: tuple[SnapshotInfo, ...] = attrs.field(converter=_snapshot_tuple, repr=named)
    managed_meta: Mapping[str, ManagedSnapshotMeta] = attrs.field(factory=dict, repr=short)

    def _repr_html_(self) -> str:
        """The container and its snapshotter's snapshots as HTML tables (for Jupyter)."""
        return guarded(lambda: _snapshot_data_html(self), self, as_html=True)


class VersionList(list[VersionInfo]):
    """A plain list of versions that Jupyter shows as a table (what list_versions returns)."""

    __slots__ = ()

    def _repr_html_(self) -> str:
        """The versions as an HTML table: version, name, runtime snapshot, created."""
        return guarded(lambda: _versions_html(self), self, as_html=True)


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


# -- HTML for notebooks ---------------------------------------------------------


def _versions_html(versions: Iterable[VersionInfo]) -> str:
    """Versions as a table: version, snapshot name, display name, runtime snapshot, created."""
    rows = [
        (v.version, v.snapshot_name, v.display_name, v.runtime_snapshot_name, v.created_at)
        for v in versions
    ]
    table = html_table(
        ("version", "snapshot name", "display name", "runtime snapshot", "created"), rows
    )
    return f'<div class="mcpmanager"><p><b>{len(rows)} version(s)</b></p>{table}</div>'


def _snapshot_data_html(data: BotSnapshotData) -> str:
    """A bot's container (id, image, snapshot, labels) and its snapshotter's snapshots."""
    e = html.escape
    info = data.info
    label_rows = list(info.labels.items())
    head = (
        f"<p><b>{e(data.container_id)}</b> · image <code>{e(info.image)}</code>"
        f" · snapshot <code>{e(info.snapshot_key)}</code> on {e(data.snapshotter)}</p>"
    )
    label_table = html_table(("label", "value"), label_rows, limit=20) if label_rows else ""
    snaps = [
        _snapshot_row(snap, data.managed_meta.get(snap.name), info.snapshot_key)
        for snap in data.runtime_snapshots
    ]
    snap_table = html_table(
        ("snapshot", "kind", "parent", "created", "in use", "source", "version", "display name"),
        snaps,
    )
    return (
        f'<div class="mcpmanager">{head}{label_table}'
        f"<p>{len(snaps)} snapshot(s) in {e(data.snapshotter)}</p>{snap_table}</div>"
    )


def _snapshot_row(
    snap: SnapshotInfo, meta: ManagedSnapshotMeta | None, active: str
) -> tuple[object, ...]:
    in_use = "yes" if snap.name == active else ""
    if meta is None:
        return (snap.name, snap.kind, snap.parent, snap.created, in_use, "", "", "")
    return (
        snap.name,
        snap.kind,
        snap.parent,
        snap.created,
        in_use,
        meta.source,
        meta.version,
        meta.display_name,
    )
