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


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


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
        ours: list[float] = []
        theirs: list[float] = []
        runs: list[tuple[list[float], Callable[[], object]]] = [
            (ours, lambda: pull_image(conn, ref)),
            (theirs, lambda: daemon.ctr(namespace, "images", "pull", "--plain-http", ref)),
        ]
        for i in range(args.rounds):
            for results, pull in runs if i % 2 == 0 else runs[::-1]:
                results.append(timed(pull))
                daemon.ctr(namespace, "images", "rm", "--sync", ref)
        conn.close()
    finally:
        daemon.teardown()
        registry.stop()

    size = args.layers * args.layer_mb
    mine, ctr = statistics.median(ours), statistics.median(theirs)
    print(f"image: busybox + {args.layers} x {args.layer_mb} MiB random layers ({size} MiB)")
    print(f"mcpmanager pull_image   median {mine:.3f}s  ({', '.join(f'{t:.3f}' for t in ours)})")
    print(f"ctr images pull         median {ctr:.3f}s  ({', '.join(f'{t:.3f}' for t in theirs)})")
    print(f"ratio ours/ctr          {mine / ctr:.2f}")


if __name__ == "__main__":
    main()
