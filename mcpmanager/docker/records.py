"""Docker containers and images read back as mcpmanager's records.

A container labelled ``kind=container`` holds one active snapshot (its
writable layer). Under the name of an mcpmanager container it *is* that
container; under :data:`HELD_PREFIX` + key it only keeps the snapshot alive
(deleted with ``cleanup_snapshot=False``, or made by prepare_snapshot). An
image labelled ``kind=snapshot`` is a committed snapshot.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import attrs

from ..types import ContainerInfo, SnapshotInfo
from . import labels as lb

__all__ = [
    "HELD_PREFIX",
    "RUNTIME",
    "Holder",
    "SnapshotImage",
    "docker_word",
    "held_name",
    "parse_time",
    "snapshot_tag",
]

HELD_PREFIX = "mcpmanager-held."
"""Name prefix of containers that only keep a snapshot (never an mcpmanager container ID)."""
RUNTIME = "docker"
"""What ContainerInfo.runtime says for every container of this backend."""

_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}", re.ASCII)
_UNFIT = re.compile(r"[^A-Za-z0-9_.-]", re.ASCII)
_STEM_CHARS = 80
_DIGEST_CHARS = 16


def docker_word(name: str) -> str:
    """``name`` as Docker accepts it in a container name or a tag, unique per name.

    Snapshot names and keys may hold any character (containerd's do, layer
    keys hold ``:``), Docker's names and tags only ``[A-Za-z0-9_.-]``. A name
    that fits is used as is; any other becomes its fitting characters plus a
    digest of the whole name. The true name always travels in a label.
    """
    if _WORD.fullmatch(name):
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:_DIGEST_CHARS]
    stem = _UNFIT.sub("_", name)[:_STEM_CHARS].lstrip(".-")
    return f"{stem}.{digest}" if stem else digest


def held_name(key: str) -> str:
    """The Docker name of the container keeping active snapshot ``key``."""
    return HELD_PREFIX + docker_word(key)


def snapshot_tag(name: str) -> str:
    """The tag of committed snapshot ``name``'s image in the snapshot repository."""
    return docker_word(name)


def parse_time(value: object) -> datetime | None:
    """A Docker timestamp (RFC 3339 with nanoseconds, or Unix seconds) as a UTC datetime.

    Whole seconds only: Docker's lists carry seconds, its inspect answers
    nanoseconds, and a record must read the same whichever way it was found.
    """
    if isinstance(value, (int, float)) and value > 0:
        return datetime.fromtimestamp(int(value), timezone.utc)
    if not isinstance(value, str) or not value or value.startswith("0001-"):
        return None
    text = value.rstrip("Z").split(".", 1)[0]
    try:
        return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _labels_of(doc: Mapping[str, Any]) -> dict[str, str]:
    raw = doc.get("Labels")
    if raw is None:
        raw = (doc.get("Config") or {}).get("Labels")
    return dict(raw or {})


@attrs.frozen
class Holder:
    """A Docker container holding an active snapshot, from a list entry or an inspect."""

    docker_id: str
    name: str
    labels: Mapping[str, str]
    created: datetime | None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Holder:
        """Read a ``/containers/json`` entry or a ``/containers/{id}/json`` document."""
        names = doc.get("Names") or [doc.get("Name") or ""]
        return cls(
            docker_id=str(doc["Id"]),
            name=str(names[0]).lstrip("/"),
            labels=_labels_of(doc),
            created=parse_time(doc.get("Created")),
        )

    @property
    def key(self) -> str:
        """The active snapshot this container holds."""
        return self.labels.get(lb.SNAPSHOT, "")

    @property
    def held(self) -> bool:
        """True when it only keeps a snapshot (no mcpmanager container by this name)."""
        return self.name.startswith(HELD_PREFIX)

    @property
    def prepared(self) -> bool:
        """True for a never-used snapshot made by prepare_snapshot (empty layer)."""
        return self.labels.get(lb.PREPARED) == "1"

    def container_info(self) -> ContainerInfo:
        """The mcpmanager container this Docker container is."""
        return ContainerInfo(
            id=self.name,
            image=self.labels.get(lb.IMAGE, ""),
            labels=lb.decode(self.labels.get(lb.LABELS)),
            snapshotter=self.labels.get(lb.SNAPSHOTTER, ""),
            snapshot_key=self.key,
            runtime=RUNTIME,
            created_at=self.created,
        )

    def snapshot_info(self) -> SnapshotInfo:
        """The active snapshot it holds."""
        return SnapshotInfo(
            name=self.key,
            parent=self.labels.get(lb.PARENT, ""),
            kind="active",
            created=self.created,
            updated=self.created,
            labels=lb.decode(self.labels.get(lb.SNAP_LABELS)),
        )


@attrs.frozen
class SnapshotImage:
    """A committed snapshot: an image made by ``docker commit``."""

    image_id: str
    labels: Mapping[str, str]
    created: datetime | None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> SnapshotImage:
        """Read a ``/images/json`` entry or an image inspect document."""
        return cls(
            image_id=str(doc["Id"]),
            labels=_labels_of(doc),
            created=parse_time(doc.get("Created")),
        )

    @property
    def name(self) -> str:
        """The snapshot name."""
        return self.labels.get(lb.SNAPSHOT, "")

    @property
    def consumed(self) -> str:
        """Docker ID of the container whose layer this commit took."""
        return self.labels.get(lb.CONSUMED, "")

    def snapshot_info(self) -> SnapshotInfo:
        """As mcpmanager reports snapshots."""
        return SnapshotInfo(
            name=self.name,
            parent=self.labels.get(lb.PARENT, ""),
            kind="committed",
            created=self.created,
            updated=self.created,
            labels=lb.decode(self.labels.get(lb.SNAP_LABELS)),
        )
