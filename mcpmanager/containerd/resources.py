"""A container's resources on containerd: limits in place, labels, metrics, snapshot usage.

New limits go two ways: into the container record's OCI spec (so every
later task starts with them) and, when a task runs, to it through
``Tasks.Update``, whose ``resources`` Any carries an OCI ``LinuxResources``
as JSON under the type URL containerd's client registers for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import any_pb2, field_mask_pb2

from .. import errors
from ..types import ContainerInfo, ResourceLimits, TaskMetrics, TaskStatus
from ._conn import Connection
from .api import (
    containers_pb2,
    snapshots_pb2,
    tasks_pb2,
)
from .containers import get_record, to_container_info
from .metrics import decode_metrics
from .spec import CPU_PERIOD_US, SPEC_TYPE_URL, apply_limits
from .tasks import get_task

__all__ = [
    "RESOURCES_TYPE_URL",
    "live_resources",
    "set_labels",
    "snapshot_usage",
    "task_metrics",
    "update_resources",
]

RESOURCES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
"""Type URL of a JSON OCI ``LinuxResources`` in ``UpdateTaskRequest.resources``."""

_LIVE = (TaskStatus.RUNNING, TaskStatus.PAUSED, TaskStatus.CREATED)


def live_resources(limits: ResourceLimits) -> dict[str, Any]:
    """The ``LinuxResources`` for a running task: -1 lifts a limit (runc writes "max")."""
    quota = limits.cpu_millicores * CPU_PERIOD_US // 1000 if limits.cpu_millicores else -1
    return {
        "cpu": {"quota": quota, "period": CPU_PERIOD_US},
        "memory": {"limit": limits.memory_bytes or -1},
        "pids": {"limit": limits.pids or -1},
    }


def _update_record(
    conn: Connection, record: containers_pb2.Container, paths: list[str], what: str
) -> containers_pb2.Container:
    req = containers_pb2.UpdateContainerRequest(
        container=record, update_mask=field_mask_pb2.FieldMask(paths=paths)
    )
    resp = conn.unary(conn.containers.Update, req, what=what)
    updated: containers_pb2.Container = resp.container
    return updated


def set_labels(conn: Connection, cid: str, labels: Mapping[str, str]) -> ContainerInfo:
    """Replace the labels of container ``cid``."""
    record = containers_pb2.Container(id=cid, labels=dict(labels))
    return to_container_info(_update_record(conn, record, ["labels"], f"label container {cid}"))


def update_resources(conn: Connection, cid: str, limits: ResourceLimits) -> None:
    """Store ``limits`` in the container's spec, then apply them to its live task, if any."""
    record = get_record(conn, cid)
    if record.spec.type_url != SPEC_TYPE_URL:
        raise errors.NotSupported(f"container {cid}: its spec is {record.spec.type_url!r}")
    spec = json.loads(record.spec.value)
    resources = spec.setdefault("linux", {}).setdefault("resources", {})
    apply_limits(resources, limits)
    updated = containers_pb2.Container(
        id=cid, spec=any_pb2.Any(type_url=SPEC_TYPE_URL, value=json.dumps(spec).encode())
    )
    _update_record(conn, updated, ["spec"], f"store the limits of container {cid}")
    try:
        task = get_task(conn, cid)
    except errors.NotFound:
        return
    if task.status not in _LIVE:
        return
    body = json.dumps(live_resources(limits)).encode()
    req = tasks_pb2.UpdateTaskRequest(
        container_id=cid, resources=any_pb2.Any(type_url=RESOURCES_TYPE_URL, value=body)
    )
    conn.unary(conn.tasks.Update, req, what=f"apply limits to the task of {cid}")


def task_metrics(conn: Connection, cid: str) -> TaskMetrics:
    """One reading of the cgroup of ``cid``'s task (FailedPrecondition unless it runs)."""
    task = get_task(conn, cid)
    if task.status not in (TaskStatus.RUNNING, TaskStatus.PAUSED):
        raise errors.FailedPrecondition(f"task of container {cid} is {task.status.value}")
    req = tasks_pb2.MetricsRequest(filters=[f"id=={cid}"])
    what = f"metrics of the task of {cid}"
    resp = conn.unary(conn.tasks.Metrics, req, what=what)
    for metric in resp.metrics:
        if metric.id == cid:
            return decode_metrics(metric.data, what)
    raise errors.NotFound(f"{what}: containerd reported none")


def snapshot_usage(conn: Connection, snapshotter: str, key: str) -> int:
    """Bytes snapshot ``key`` holds over its parents (``Snapshots.Usage``)."""
    req = snapshots_pb2.UsageRequest(snapshotter=snapshotter, key=key)
    resp = conn.unary(
        conn.snapshots.Usage,
        req,
        what=f"usage of snapshot {key!r} in {snapshotter}",
        timeout=120.0,
    )
    return int(resp.size)
