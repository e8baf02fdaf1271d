"""Thin wrappers over containerd's Snapshots service, with error messages that name things."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone

from google.protobuf import field_mask_pb2, timestamp_pb2

from .. import errors
from ..types import MountInfo, SnapshotInfo
from ._conn import Connection
from .api import mount_pb2, snapshots_pb2

__all__ = [
    "GC_ROOT_LABEL",
    "commit",
    "exists",
    "gc_root_labels",
    "list_snapshots",
    "mounts",
    "prepare",
    "remove",
    "set_labels",
    "stat",
    "to_mount_info",
    "to_timestamp",
]

GC_ROOT_LABEL = "containerd.io/gc.root"
"""A snapshot (or blob) with this label is never garbage collected."""


def gc_root_labels() -> dict[str, str]:
    """The label that keeps a snapshot from garbage collection (value: when it was set)."""
    return {GC_ROOT_LABEL: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


_KINDS = {
    snapshots_pb2.VIEW: "view",
    snapshots_pb2.ACTIVE: "active",
    snapshots_pb2.COMMITTED: "committed",
}


def to_timestamp(ts: timestamp_pb2.Timestamp) -> datetime | None:
    """Convert a protobuf timestamp to an aware datetime (None when unset)."""
    if ts.seconds == 0 and ts.nanos == 0:
        return None
    return datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=timezone.utc)


def to_mount_info(m: mount_pb2.Mount) -> MountInfo:
    """Convert containerd's mount message to :class:`MountInfo`."""
    return MountInfo(type=m.type, source=m.source, target=m.target, options=tuple(m.options))


def _where(snapshotter: str, key: str) -> str:
    return f"snapshot {key!r} in {snapshotter}"


def prepare(
    conn: Connection,
    snapshotter: str,
    key: str,
    parent: str,
    labels: Mapping[str, str] | None = None,
) -> list[mount_pb2.Mount]:
    """Create active snapshot ``key`` on ``parent``; return its mounts."""
    req = snapshots_pb2.PrepareSnapshotRequest(
        snapshotter=snapshotter, key=key, parent=parent, labels=dict(labels or {})
    )
    resp = conn.unary(
        conn.snapshots.Prepare, req, what=f"prepare {_where(snapshotter, key)}", idempotent=False
    )
    return list(resp.mounts)


def commit(
    conn: Connection,
    snapshotter: str,
    name: str,
    key: str,
    labels: Mapping[str, str] | None = None,
) -> None:
    """Commit active snapshot ``key`` as the read-only snapshot ``name``."""
    req = snapshots_pb2.CommitSnapshotRequest(
        snapshotter=snapshotter, name=name, key=key, labels=dict(labels or {})
    )
    conn.unary(
        conn.snapshots.Commit,
        req,
        what=f"commit {_where(snapshotter, key)} as {name!r}",
        idempotent=False,
        timeout=600.0,
    )


def stat(conn: Connection, snapshotter: str, key: str) -> snapshots_pb2.Info:
    """Return the info of snapshot ``key``; NotFound when it does not exist."""
    req = snapshots_pb2.StatSnapshotRequest(snapshotter=snapshotter, key=key)
    info: snapshots_pb2.Info = conn.unary(
        conn.snapshots.Stat, req, what=f"stat {_where(snapshotter, key)}"
    ).info
    return info


def set_labels(conn: Connection, snapshotter: str, key: str, labels: Mapping[str, str]) -> None:
    """Add (or overwrite) ``labels`` on snapshot ``key``, leaving its other labels alone."""
    req = snapshots_pb2.UpdateSnapshotRequest(
        snapshotter=snapshotter,
        info=snapshots_pb2.Info(name=key, labels=dict(labels)),
        update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{k}" for k in labels]),
    )
    conn.unary(conn.snapshots.Update, req, what=f"label {_where(snapshotter, key)}")


def exists(conn: Connection, snapshotter: str, key: str) -> bool:
    """True when snapshot ``key`` exists in ``snapshotter``."""
    try:
        stat(conn, snapshotter, key)
    except errors.NotFound:
        return False
    return True


def remove(conn: Connection, snapshotter: str, key: str) -> None:
    """Remove snapshot ``key``."""
    req = snapshots_pb2.RemoveSnapshotRequest(snapshotter=snapshotter, key=key)
    conn.unary(
        conn.snapshots.Remove,
        req,
        what=f"remove {_where(snapshotter, key)}",
        timeout=120.0,
        idempotent=False,
    )


def mounts(conn: Connection, snapshotter: str, key: str) -> list[mount_pb2.Mount]:
    """Return the mounts that show snapshot ``key``."""
    req = snapshots_pb2.MountsRequest(snapshotter=snapshotter, key=key)
    return list(
        conn.unary(conn.snapshots.Mounts, req, what=f"mounts of {_where(snapshotter, key)}").mounts
    )


# Characters a prefix may have to go into the daemon's name regex as they are.
_PLAIN = re.compile(r"[A-Za-z0-9_:/-]+")


def list_snapshots(conn: Connection, snapshotter: str, prefix: str = "") -> list[SnapshotInfo]:
    """Return the snapshots of ``snapshotter`` whose names start with ``prefix``.

    The daemon filters by a name regex when the prefix needs no escaping
    (bot container IDs never do); the names are checked here either way.
    """
    filters = [f'name~="^{prefix}"'] if prefix and _PLAIN.fullmatch(prefix) else []
    req = snapshots_pb2.ListSnapshotsRequest(snapshotter=snapshotter, filters=filters)
    out: list[SnapshotInfo] = []
    for resp in conn.collect(conn.snapshots.List, req, what=f"list snapshots of {snapshotter}"):
        for info in resp.info:
            if not info.name.startswith(prefix):
                continue
            out.append(
                SnapshotInfo(
                    name=info.name,
                    parent=info.parent,
                    kind=_KINDS.get(info.kind, "unknown"),
                    created=to_timestamp(info.created_at),
                    updated=to_timestamp(info.updated_at),
                    labels=dict(info.labels),
                )
            )
    return out
