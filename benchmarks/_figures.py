"""Machine-readable benchmark figures: what ``--json PATH`` writes, what scripts/bench reads.

Each benchmark collects :class:`Figure` rows (the measured value, its anchor
measured in the same run, the target) and, given ``--json PATH``, writes them
as ``{"bench": NAME, "host": ..., "figures": [...]}``. ``scripts/bench`` runs
every benchmark with ``--json`` and rebuilds the table in benchmarks/README.md
from those files.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Figure:
    """One measured figure: ``value`` in ``unit``, against ``anchor`` and ``target``."""

    figure: str
    value: float
    unit: str
    anchor: str = ""
    target: str = ""
    note: str = ""


@dataclass
class Figures:
    """The figures of one benchmark run, written by :meth:`write` when asked."""

    bench: str
    rows: list[Figure] = field(default_factory=list)

    def add(
        self,
        figure: str,
        value: float,
        unit: str,
        anchor: str = "",
        target: str = "",
        note: str = "",
    ) -> None:
        """Record one figure."""
        self.rows.append(Figure(figure, round(value, 4), unit, anchor, target, note))

    def write(self, path: str | None) -> None:
        """Write the figures as JSON to ``path`` (nothing when ``path`` is None)."""
        if not path:
            return
        doc = {
            "bench": self.bench,
            "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "host": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end",
            "figures": [asdict(r) for r in self.rows],
        }
        Path(path).write_text(json.dumps(doc, indent=2) + "\n")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--json PATH`` (write the figures there, for scripts/bench)."""
    parser.add_argument(
        "--json", metavar="PATH", default=None, help="also write the figures as JSON to PATH"
    )
