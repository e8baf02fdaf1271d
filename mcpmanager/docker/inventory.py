"""Finding mcpmanager's containers, held snapshots and snapshot images on the daemon."""

from __future__ import annotations

from typing import Any

from .. import errors
from . import labels as lb
from ._client import Connection
from ._errors import mapped
from .records import HELD_PREFIX, Holder, SnapshotImage

__all__ = [
    "SNAPSHOT_REPO",
    "Inventory",
    "holders",
    "inspect_live",
    "snapshot_images",
]

SNAPSHOT_REPO = "mcpmanager-snapshot"
"""Repository of the images committed snapshots are; the tag is the snapshot name."""


def holders(conn: Connection) -> list[Holder]:
    """Every Docker container mcpmanager made (live containers and held snapshots)."""
    with mapped("list containers"):
        docs = conn.api().containers(all=True, filters={"label": f"{lb.KIND}={lb.KIND_CONTAINER}"})
    return [Holder.from_doc(d) for d in docs]


def snapshot_images(conn: Connection) -> list[SnapshotImage]:
    """Every committed snapshot image."""
    with mapped("list snapshot images"):
        docs = conn.api().images(filters={"label": f"{lb.KIND}={lb.KIND_SNAPSHOT}"})
    return [SnapshotImage.from_doc(d) for d in docs]


def inspect_live(conn: Connection, container_id: str) -> tuple[Holder, dict[str, Any]]:
    """The mcpmanager container ``container_id`` and its inspect document; NotFound if none.

    Docker also resolves ID prefixes and names of containers that are not
    ours; only an exact name match on a container mcpmanager made counts.
    """
    if container_id.startswith(HELD_PREFIX):
        raise errors.NotFound(f"container {container_id} not found")
    with mapped(f"inspect container {container_id}"):
        doc: dict[str, Any] = conn.api().inspect_container(container_id)
    holder = Holder.from_doc(doc)
    if holder.name != container_id or holder.labels.get(lb.KIND) != lb.KIND_CONTAINER:
        raise errors.NotFound(f"container {container_id} not found")
    return holder, doc


class Inventory:
    """One consistent look at every snapshot: the active ones and the committed ones."""

    def __init__(self, conn: Connection) -> None:
        self.images = snapshot_images(conn)
        consumed = {i.consumed for i in self.images if i.consumed}
        self.holders = [h for h in holders(conn) if h.key and h.docker_id not in consumed]
        self.consumed = consumed

    def active(self, key: str) -> Holder | None:
        """The container holding active snapshot ``key`` (a live one before a held one)."""
        found = [h for h in self.holders if h.key == key]
        found.sort(key=lambda h: h.held)
        return found[0] if found else None

    def committed(self, name: str) -> SnapshotImage | None:
        """The image of committed snapshot ``name``."""
        return next((i for i in self.images if i.name == name), None)

    def taken(self, name: str) -> bool:
        """Whether any snapshot, active or committed, is called ``name``."""
        return self.active(name) is not None or self.committed(name) is not None
