"""Our pull vs ``ctr images pull --plain-http`` of the same image, same daemon, same run.

    .venv/bin/python benchmarks/bench_pull.py [--layers N] [--layer-mb MB] [--rounds R]

As root: starts a private ``docker-registry`` and a private containerd with the
test harness, pushes a busybox image plus N layers of random data (default
5 x 11 MiB: 6 layers, about 59 MB), then times each client pulling (and
unpacking into overlayfs) from an empty content store: after every pull the
image is removed with ``--sync`` so GC empties the store again. The clients
alternate which goes first each round. Prints the median of each and their
ratio (target: <= 0.7).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcpmanager.containerd._conn import Connection
from mcpmanager.containerd.pull import pull_image
from tests.harness.containerd import ContainerdDaemon
from tests.harness.registry import (
    Files,
    build_oci_image,
    busybox_layer,
    start_registry,
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def client_cpu() -> float:
    """CPU time of this process plus its finished children (ctr)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def listing(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


class Run:
    """Wall and CPU times of one client's pulls."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: dict[str, list[float]] = {"client": [], "containerd": [], "registry": []}

    def time(self, call: Callable[[], object], pids: dict[str, int]) -> None:
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        mine = client_cpu()
        start = time.perf_counter()
        call()
        self.wall.append(time.perf_counter() - start)
        self.cpu["client"].append(client_cpu() - mine)
        for name, pid in pids.items():
            self.cpu[name].append(cpu_seconds(pid) - before[name])

    def cpu_line(self) -> str:
        return "  ".join(
            f"{name} {statistics.median(v) * 1000:.0f} ms" for name, v in self.cpu.items()
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--layer-mb", type=int, default=11)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_pull.py needs root (containerd)")

    registry = start_registry()
    daemon = ContainerdDaemon()
    try:
        daemon.start()
        layers: list[Files] = [busybox_layer()]
        layers += [{f"data/{i}": os.urandom(args.layer_mb << 20)} for i in range(args.layers)]
        with tempfile.TemporaryDirectory(prefix="mcpm-bench-") as layout:
            ref = registry.push(build_oci_image(layout, layers), "bench/pull:v1")
        namespace = f"bench-{uuid.uuid4().hex[:8]}"
        conn = Connection(daemon.socket, namespace)
        assert daemon.proc is not None
        pids = {"containerd": daemon.proc.pid, "registry": registry.process.pid}
        ours, theirs = Run(), Run()
        runs: list[tuple[Run, Callable[[], object]]] = [
            (ours, lambda: pull_image(conn, ref)),
            (theirs, lambda: daemon.ctr(namespace, "images", "pull", "--plain-http", ref)),
        ]
        pull_image(conn, ref)  # warm up this process (imports, channel)
        daemon.ctr(namespace, "images", "rm", "--sync", ref)
        for i in range(args.rounds):
            for results, pull in runs if i % 2 == 0 else runs[::-1]:
                results.time(pull, pids)
                daemon.ctr(namespace, "images", "rm", "--sync", ref)
        conn.close()
    finally:
        daemon.teardown()
        registry.stop()

    size = args.layers * args.layer_mb
    mine, ctr = statistics.median(ours.wall), statistics.median(theirs.wall)
    paired = statistics.median(a / b for a, b in zip(ours.wall, theirs.wall, strict=True))
    print(f"image: busybox + {args.layers} x {args.layer_mb} MiB random layers ({size} MiB)")
    print(
        f"mcpmanager pull_image   median {mine:.3f}s  ({', '.join(f'{t:.3f}' for t in ours.wall)})"
    )
    print(
        f"ctr images pull         median {ctr:.3f}s  ({', '.join(f'{t:.3f}' for t in theirs.wall)})"
    )
    print(f"ratio ours/ctr          {mine / ctr:.2f} (median of per-round ratios {paired:.2f})")
    print(f"CPU per pull, ours:     {ours.cpu_line()}")
    print(f"CPU per pull, ctr:      {theirs.cpu_line()}")


if __name__ == "__main__":
    main()
