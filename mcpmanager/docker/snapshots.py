"""Snapshots on Docker: committed ones are images, active ones container layers.

A committed snapshot is the image ``mcpmanager-snapshot:<name>``; an active
one is the writable layer of a container (a bot's, or a never-started holder
container made by :func:`prepare`). Labels (:mod:`.labels`) record each
snapshot's name, parent and the caller's labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn

from .. import errors
from .._log import get_logger
from ..types import SnapshotInfo
from . import images
from . import labels as lb
from ._client import Connection
from ._errors import mapped
from .inventory import SNAPSHOT_REPO, Inventory
from .records import Holder, held_name, snapshot_tag

__all__ = [
    "HELD_ENTRYPOINT",
    "commit",
    "list_all",
    "prepare",
    "refuse_mounts",
    "remove",
    "require",
    "tag_taken",
]

log = get_logger("mcpmanager.docker")

HELD_ENTRYPOINT = ["/mcpmanager-held-snapshot"]
"""The entrypoint of holder containers; never run, since holders never start."""


def require(value: str, what: str) -> str:
    """``value`` unless it is empty (then InvalidArgument naming ``what``)."""
    if not value:
        raise errors.InvalidArgument(f"{what} is empty")
    return value


def commit(
    conn: Connection, snapshotter: str, name: str, key: str, labels: dict[str, str] | None
) -> None:
    """Commit the layer holding active ``key`` as image ``mcpmanager-snapshot:<name>``.

    A name that is not a valid Docker tag is tagged by its digest (see
    :func:`.records.docker_word`); the name itself is in the image's labels.
    """
    require(snapshotter, "snapshotter")
    require(name, "snapshot name")
    require(key, "snapshot key")
    inv = Inventory(conn)
    tag = snapshot_tag(name)
    if inv.taken(name) or tag_taken(conn, tag):
        raise errors.AlreadyExists(f"snapshot {name} already exists")
    holder = inv.active(key)
    if holder is None:
        if inv.committed(key) is not None:
            raise errors.FailedPrecondition(
                f"snapshot {key} is committed, not active; only an active one can be committed"
            )
        raise errors.NotFound(f"active snapshot {key} not found")
    record = lb.record(
        kind=lb.KIND_SNAPSHOT,
        snapshot=name,
        parent=holder.labels.get(lb.PARENT, ""),
        consumed=holder.docker_id,
        snapshot_labels=lb.encode(labels),
    )
    with mapped(f"commit snapshot {key} as {name}"):
        conn.api().commit(
            holder.docker_id, repository=SNAPSHOT_REPO, tag=tag, conf={"Labels": record}
        )
    log.info("committed snapshot %s as %s", key, name)


def tag_taken(conn: Connection, tag: str) -> bool:
    """Whether the snapshot repository has ``tag`` (committing would move it)."""
    try:
        with mapped(f"look up snapshot image {SNAPSHOT_REPO}:{tag}"):
            conn.inspect_image(f"{SNAPSHOT_REPO}:{tag}")
    except errors.NotFound:
        return False
    return True


def list_all(conn: Connection, snapshotter: str) -> list[SnapshotInfo]:
    """Every committed snapshot image and every active snapshot (any ``snapshotter``)."""
    require(snapshotter, "snapshotter")
    inv = Inventory(conn)
    seen: set[str] = set()
    out = [i.snapshot_info() for i in inv.images if i.name]
    for holder in sorted(inv.holders, key=lambda h: h.held):
        if holder.key not in seen:
            seen.add(holder.key)
            out.append(holder.snapshot_info())
    return out


def prepare(
    conn: Connection, snapshotter: str, key: str, parent: str, labels: dict[str, str] | None
) -> None:
    """Create active ``key`` on committed ``parent`` (a never-started holder container)."""
    require(snapshotter, "snapshotter")
    require(key, "snapshot key")
    require(parent, "parent snapshot")
    inv = Inventory(conn)
    if inv.taken(key):
        raise errors.AlreadyExists(f"snapshot {key} already exists")
    image = inv.committed(parent)
    if image is None:
        if inv.active(parent) is not None:
            raise errors.InvalidArgument(f"parent snapshot {parent} is not committed")
        raise errors.NotFound(f"parent snapshot {parent} not found")
    record = lb.record(
        kind=lb.KIND_CONTAINER,
        snapshot=key,
        parent=parent,
        snapshotter=snapshotter,
        labels=lb.encode({}),
        snapshot_labels=lb.encode(labels),
        prepared="1",
    )
    api = conn.api()
    with mapped(f"prepare snapshot {key} on {parent}"):
        api.create_container(
            image.image_id,
            entrypoint=HELD_ENTRYPOINT,
            command=[],
            name=held_name(key),
            labels=record,
            network_disabled=True,
            host_config=api.create_host_config(network_mode="none"),
        )


def remove(
    conn: Connection, snapshotter: str, key: str, remove_holder: Callable[[Holder], None]
) -> None:
    """Remove snapshot ``key``; FailedPrecondition while a container or snapshot uses it."""
    require(snapshotter, "snapshotter")
    require(key, "snapshot key")
    inv = Inventory(conn)
    holder = inv.active(key)
    if holder is not None:
        if not holder.held:
            raise errors.FailedPrecondition(f"snapshot {key} is used by container {holder.name}")
        remove_holder(holder)
        return
    image = inv.committed(key)
    if image is None:
        raise errors.NotFound(f"snapshot {key} not found")
    users = [h.key for h in inv.holders if h.labels.get(lb.PARENT) == key]
    if users:
        raise errors.FailedPrecondition(f"snapshot {key} has children ({users[0]})")
    images.remove_image(conn, image.image_id)


def refuse_mounts(conn: Connection, snapshotter: str, key: str) -> NoReturn:
    """NotSupported: Docker layers are not mounted on the host, use the agent instead.

    The arguments are checked first, and a missing snapshot is NotFound, as elsewhere.
    """
    require(snapshotter, "snapshotter")
    require(key, "snapshot key")
    inv = Inventory(conn)
    if not inv.taken(key):
        raise errors.NotFound(f"snapshot {key} not found")
    raise errors.NotSupported(
        f"the Docker backend cannot mount snapshot {key!r} on the host; "
        "data operations go through the agent"
    )
