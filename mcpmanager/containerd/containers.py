"""Container records: create, read, list and delete them in containerd's metadata."""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import any_pb2

from ..types import ContainerInfo
from ._conn import Connection
from .api import containers_pb2
from .snapshots import to_timestamp

__all__ = [
    "RUNTIME",
    "create_record",
    "delete_record",
    "get_record",
    "list_records",
    "to_container_info",
]

RUNTIME = "io.containerd.runc.v2"
"""The runtime every container of ours uses."""


def to_container_info(c: containers_pb2.Container) -> ContainerInfo:
    """Convert containerd's container record to :class:`ContainerInfo`."""
    return ContainerInfo(
        id=c.id,
        image=c.image,
        labels=dict(c.labels),
        snapshotter=c.snapshotter,
        snapshot_key=c.snapshot_key,
        runtime=c.runtime.name,
        created_at=to_timestamp(c.created_at),
        updated_at=to_timestamp(c.updated_at),
    )


def create_record(
    conn: Connection,
    container_id: str,
    *,
    image: str,
    snapshotter: str,
    snapshot_key: str,
    spec: any_pb2.Any,
    labels: Mapping[str, str],
) -> containers_pb2.Container:
    """Create the container record (the snapshot must exist already)."""
    record = containers_pb2.Container(
        id=container_id,
        labels=dict(labels),
        image=image,
        runtime=containers_pb2.Container.Runtime(name=RUNTIME),
        spec=spec,
        snapshotter=snapshotter,
        snapshot_key=snapshot_key,
    )
    resp = conn.unary(
        conn.containers.Create,
        containers_pb2.CreateContainerRequest(container=record),
        what=f"create container {container_id}",
        idempotent=False,
    )
    created: containers_pb2.Container = resp.container
    return created


def get_record(conn: Connection, container_id: str) -> containers_pb2.Container:
    """Return the record of ``container_id``; NotFound if there is none."""
    resp = conn.unary(
        conn.containers.Get,
        containers_pb2.GetContainerRequest(id=container_id),
        what=f"get container {container_id}",
    )
    record: containers_pb2.Container = resp.container
    return record


def list_records(conn: Connection, filters: tuple[str, ...] = ()) -> list[containers_pb2.Container]:
    """Return the namespace's container records matching any of ``filters``."""
    resp = conn.unary(
        conn.containers.List,
        containers_pb2.ListContainersRequest(filters=list(filters)),
        what="list containers",
    )
    return list(resp.containers)


def delete_record(conn: Connection, container_id: str) -> None:
    """Delete the record of ``container_id`` (its task must be gone)."""
    conn.unary(
        conn.containers.Delete,
        containers_pb2.DeleteContainerRequest(id=container_id),
        what=f"delete container {container_id}",
        idempotent=False,
    )
