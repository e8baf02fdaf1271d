"""Manager lifecycle throughput and overhead on the fake, IP-cache lookups, and RSS per bot.

Prints each figure next to a reference measured in the same run: the fake's own
cost for the same service calls, and an empty interpreter's RSS.
Run: ``.venv/bin/python benchmarks/bench_manager.py``.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit

from mcpmanager import FakeContainerService, Manager, ManagerConfig
from mcpmanager.types import (
    CreateContainerRequest,
    DeleteContainerOptions,
    DeleteTaskOptions,
    NetworkSetupRequest,
    StopTaskOptions,
)

CYCLES = 300
IMAGE = "docker.io/memohai/mcp:latest"


def manager_cycle(manager: Manager, bot: str) -> None:
    manager.start(bot)
    manager.stop(bot)
    manager.delete(bot)


NET = {"cni_bin_dir": "/opt/cni/bin", "cni_conf_dir": "/etc/cni/net.d"}  # the Manager's defaults


def fake_cycle(fake: FakeContainerService, cid: str) -> None:
    """The service calls a start/stop/delete cycle makes, straight on the fake."""
    with contextlib.suppress(Exception):
        fake.get_container(cid)
    fake.list_snapshots("overlayfs")
    fake.create_container(
        CreateContainerRequest(id=cid, image_ref=IMAGE, labels={"mcp.bot_id": cid})
    )
    with contextlib.suppress(Exception):
        fake.get_task_info(cid)
    fake.start_container(cid)
    fake.setup_network(NetworkSetupRequest(container_id=cid, **NET))
    fake.stop_container(cid, StopTaskOptions(force=True))
    fake.remove_network(NetworkSetupRequest(container_id=cid, **NET))
    fake.remove_network(NetworkSetupRequest(container_id=cid, **NET))
    fake.delete_task(cid, DeleteTaskOptions(force=True))
    fake.delete_container(cid, DeleteContainerOptions())


def per_cycle(fn: object, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        fn(i)  # type: ignore[operator]
    return (time.perf_counter() - start) / n


def lifecycle(data_root: str) -> None:
    with FakeContainerService() as fake:
        manager = Manager(fake, ManagerConfig(data_root=data_root))
        manager.init()
        fake.pull_image(IMAGE)
        # Alternate rounds so both sides see the same warm filesystem; take medians.
        ms, fs = [], []
        for r in range(5):
            fs.append(per_cycle(lambda i, r=r: fake_cycle(fake, f"mcp-f{r}-{i}"), CYCLES))
            ms.append(per_cycle(lambda i, r=r: manager_cycle(manager, f"b{r}-{i}"), CYCLES))
        m, f = statistics.median(ms), statistics.median(fs)
        ops = 3
        print(
            f"lifecycle, 1 thread : {ops / m:8.0f} ops/s (start+stop+delete cycle {m * 1e3:.2f} ms)"
        )
        overhead_us = (m - f) / ops * 1e6
        print(
            f"fake alone           : {ops / f:8.0f} ops/s; Manager overhead {overhead_us:.1f} µs/op"
            f" (target <= 50), ratio {m / f:.2f}x"
        )
        threads = 8
        done = threading.Barrier(threads + 1)

        def work(t: int) -> None:
            for i in range(CYCLES // threads):
                manager_cycle(manager, f"t{t}-{i}")
            done.wait()

        start = time.perf_counter()
        for t in range(threads):
            threading.Thread(target=work, args=(t,), daemon=True).start()
        done.wait()
        elapsed = time.perf_counter() - start
        total = ops * threads * (CYCLES // threads)
        print(f"lifecycle, 8 threads: {total / elapsed:8.0f} ops/s")

        manager.start("hot")
        n = 1_000_000
        t = min(timeit.repeat(lambda: manager.container_ip("hot"), number=n, repeat=3))
        d = min(timeit.repeat(lambda: fake.calls, number=n, repeat=3))  # a bare attribute read
        print(
            f"container_ip hit     : {n / t:10.0f} /s (target >= 1,000,000); "
            f"bare call {n / d:10.0f} /s"
        )
        manager.close()


RSS_SCRIPT = """
import logging, sys, tempfile
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
if sys.argv[1] == "bots":
    from mcpmanager import FakeContainerService, Manager, ManagerConfig
    fake = FakeContainerService()
    fake.calls = type("NoLog", (list,), {"append": lambda self, x: None})()
    m = Manager(fake, ManagerConfig(data_root=tempfile.mkdtemp()))
    m.init()
    for i in range(1000):
        m.start(f"bot{i}")
print(rss())
"""


def rss() -> None:
    def measure(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", RSS_SCRIPT, mode], capture_output=True, text=True, check=True
        )
        return int(out.stdout.strip())

    empty = statistics.median(measure("empty") for _ in range(3))
    bots = measure("bots")
    print(
        f"RSS with 1,000 started bots: {(bots - empty) / 1024:.1f} MB above an empty interpreter "
        f"({empty / 1024:.1f} MB) (target <= 50 MB; fake call log off)"
    )


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as root:
        lifecycle(root)
    rss()
