"""Reading a task's cgroup metrics as containerd reports them (cgroup v1 or v2).

``Tasks.Metrics`` answers with one ``types.Metric`` per task whose ``data``
is an Any holding ``io.containerd.cgroups.v1.Metrics`` or
``io.containerd.cgroups.v2.Metrics``, by the host's cgroup version. Our own
minimal protos of those (``api/cgroups_v1.proto``, ``api/cgroups_v2.proto``)
decode the few fields we report.
"""

from __future__ import annotations

from google.protobuf import any_pb2, message

from .. import errors
from ..types import TaskMetrics
from .api import cgroups_v1_pb2, cgroups_v2_pb2

__all__ = ["UNLIMITED_FLOOR", "V1_TYPE", "V2_TYPE", "decode_metrics"]

V1_TYPE = "io.containerd.cgroups.v1.Metrics"
"""Full name of the cgroup v1 metrics message (what the Any's type URL ends with)."""
V2_TYPE = "io.containerd.cgroups.v2.Metrics"
"""Full name of the cgroup v2 metrics message."""
UNLIMITED_FLOOR = 1 << 62
"""Limits at or above this are the kernel's "no limit" (v1 reports ~2**63 rounded to a page)."""


def _limit(value: int) -> int:
    return 0 if value >= UNLIMITED_FLOOR else value


def _unpack(data: any_pb2.Any, msg: message.Message, what: str) -> None:
    try:
        msg.ParseFromString(data.value)
    except message.DecodeError as exc:
        raise errors.MCPManagerError(f"{what}: undecodable cgroup metrics: {exc}") from exc


def _from_v1(m: cgroups_v1_pb2.Metrics) -> TaskMetrics:
    usage = m.memory.usage.usage
    working = usage - min(usage, m.memory.total_inactive_file)
    return TaskMetrics(
        cpu_usage_ns=m.cpu.usage.total,
        memory_bytes=working,
        memory_limit_bytes=_limit(m.memory.usage.limit),
        pids=m.pids.current,
        pids_limit=_limit(m.pids.limit),
    )


def _from_v2(m: cgroups_v2_pb2.Metrics) -> TaskMetrics:
    usage = m.memory.usage
    working = usage - min(usage, m.memory.inactive_file)
    return TaskMetrics(
        cpu_usage_ns=m.cpu.usage_usec * 1000,
        memory_bytes=working,
        memory_limit_bytes=_limit(m.memory.usage_limit),
        pids=m.pids.current,
        pids_limit=_limit(m.pids.limit),
    )


def decode_metrics(data: any_pb2.Any, what: str) -> TaskMetrics:
    """CPU time, memory in use (less inactive page cache), and pids from a Metric's data.

    NotSupported for another metrics type (a VM runtime's, say).
    """
    type_name = data.type_url.rsplit("/", 1)[-1]
    if type_name == V1_TYPE:
        v1 = cgroups_v1_pb2.Metrics()
        _unpack(data, v1, what)
        return _from_v1(v1)
    if type_name == V2_TYPE:
        v2 = cgroups_v2_pb2.Metrics()
        _unpack(data, v2, what)
        return _from_v2(v2)
    raise errors.NotSupported(f"{what}: metrics of type {data.type_url!r} cannot be read")
