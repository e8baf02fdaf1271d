"""Resource limits, usage and metrics of Docker containers.

Limits are HostConfig fields: CPU as a CFS quota per period (CpuQuota and
CpuPeriod, not NanoCpus, so ``container update`` can change them later),
Memory with MemorySwap equal to it (no swap on top), and PidsLimit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from .. import errors
from ..types import ResourceLimits, TaskMetrics
from ._client import Connection
from ._errors import mapped

__all__ = [
    "CPU_PERIOD_US",
    "host_config_limits",
    "layer_bytes",
    "metrics_of",
    "update_body",
]

CPU_PERIOD_US = 100_000
"""The CFS period of CPU limits (100 ms)."""


def host_config_limits(limits: ResourceLimits | None) -> dict[str, Any]:
    """Keyword arguments of docker-py's ``create_host_config`` for ``limits``."""
    limits = limits or ResourceLimits()
    out: dict[str, Any] = {}
    if limits.cpu_millicores:
        out["cpu_period"] = CPU_PERIOD_US
        out["cpu_quota"] = limits.cpu_millicores * CPU_PERIOD_US // 1000
    if limits.memory_bytes:
        out["mem_limit"] = limits.memory_bytes
        out["memswap_limit"] = limits.memory_bytes
    if limits.pids:
        out["pids_limit"] = limits.pids
    return out


def update_body(limits: ResourceLimits, host_config: Mapping[str, Any], cid: str) -> dict[str, Any]:
    """The ``/containers/{id}/update`` body that makes ``limits`` the container's.

    Docker reads 0 as "unchanged" and cannot lift a memory limit in place:
    NotSupported then (the container must be recreated).
    """
    if not limits.memory_bytes and int(host_config.get("Memory") or 0):
        raise errors.NotSupported(
            f"container {cid}: Docker cannot lift a memory limit in place; recreate it"
        )
    quota = limits.cpu_millicores * CPU_PERIOD_US // 1000 if limits.cpu_millicores else -1
    body: dict[str, Any] = {"CpuPeriod": CPU_PERIOD_US, "CpuQuota": quota}
    if limits.memory_bytes:
        body["Memory"] = limits.memory_bytes
        body["MemorySwap"] = limits.memory_bytes
    body["PidsLimit"] = limits.pids or -1
    return body


def post_update(conn: Connection, docker_id: str, body: Mapping[str, Any], cid: str) -> None:
    """Send a container update (docker-py's helper lacks PidsLimit)."""
    api = cast(Any, conn.api())
    with mapped(f"update the limits of container {cid}"):
        res = api._post_json(api._url("/containers/{0}/update", docker_id), data=dict(body))
        api._result(res, True)


def metrics_of(stats: Mapping[str, Any], host_config: Mapping[str, Any]) -> TaskMetrics:
    """CPU time, memory in use (less inactive page cache) and pids from a stats reading."""
    cpu = (stats.get("cpu_stats") or {}).get("cpu_usage") or {}
    memory = stats.get("memory_stats") or {}
    detail = memory.get("stats") or {}
    usage = int(memory.get("usage") or 0)
    inactive = int(detail.get("total_inactive_file", detail.get("inactive_file", 0)) or 0)
    pids = stats.get("pids_stats") or {}
    pids_limit = int(host_config.get("PidsLimit") or 0)
    return TaskMetrics(
        cpu_usage_ns=int(cpu.get("total_usage") or 0),
        memory_bytes=usage - min(usage, inactive),
        memory_limit_bytes=int(host_config.get("Memory") or 0),
        pids=int(pids.get("current") or 0),
        pids_limit=max(pids_limit, 0),
    )


def layer_bytes(conn: Connection, docker_id: str, key: str) -> int:
    """The size of a container's writable layer (``SizeRw``)."""
    api = cast(Any, conn.api())
    with mapped(f"usage of snapshot {key}"):
        res = api._get(api._url("/containers/{0}/json", docker_id), params={"size": 1})
        doc = api._result(res, True)
    return int(doc.get("SizeRw") or 0)
