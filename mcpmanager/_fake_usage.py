"""What a fake task pretends to use, and the metrics that follow from it."""

from __future__ import annotations

import time

import attrs

from .types import ResourceLimits, TaskMetrics

__all__ = ["Usage", "metrics"]


@attrs.frozen
class Usage:
    """What a fake task pretends to use (see :meth:`FakeContainerService.set_usage`)."""

    cpu_percent: float = 1.0
    memory_bytes: int = 32 * 1024 * 1024
    pids: int = 3


def metrics(usage: Usage, limits: ResourceLimits, started_ns: int) -> TaskMetrics:
    """Figures of a task started at ``started_ns`` using ``usage``, capped by ``limits``.

    CPU time grows at ``cpu_percent`` of a core since the start.
    """
    percent = usage.cpu_percent
    if limits.cpu_millicores:
        percent = min(percent, limits.cpu_millicores / 10)
    memory, pids = usage.memory_bytes, usage.pids
    if limits.memory_bytes:
        memory = min(memory, limits.memory_bytes)
    if limits.pids:
        pids = min(pids, limits.pids)
    return TaskMetrics(
        cpu_usage_ns=int((time.monotonic_ns() - started_ns) * percent / 100),
        memory_bytes=memory,
        memory_limit_bytes=limits.memory_bytes,
        pids=pids,
        pids_limit=limits.pids,
    )
