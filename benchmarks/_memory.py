"""A process's memory from ``/proc/<pid>/smaps_rollup``: RSS, PSS and USS in MiB."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

MIB = 1024.0


@dataclass(frozen=True)
class Memory:
    """RSS, PSS and USS (Private_Clean + Private_Dirty) of one process, in MiB."""

    rss: float
    pss: float
    uss: float


def memory(pid: int) -> Memory:
    """Read ``smaps_rollup`` of ``pid`` (kB figures) into MiB."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                fields[key] = int(parts[0])
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return Memory(fields.get("Rss", 0) / MIB, fields.get("Pss", 0) / MIB, uss / MIB)


def mean(samples: list[Memory]) -> Memory:
    """The per-process mean of ``samples``."""
    return Memory(
        statistics.fmean(s.rss for s in samples),
        statistics.fmean(s.pss for s in samples),
        statistics.fmean(s.uss for s in samples),
    )


def fmt(m: Memory) -> str:
    """``RSS x PSS y USS z`` (MiB, one decimal)."""
    return f"RSS {m.rss:5.1f}  PSS {m.pss:5.1f}  USS {m.uss:5.1f}"
