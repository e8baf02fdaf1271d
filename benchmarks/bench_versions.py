"""create_version and rollback_version latency on the fake, with each store.

Both stores are measured in the same run, so their difference is the store's
share of a move. PostgreSQL is a throwaway cluster from the test harness
(needs root), or ``--postgres CONNINFO``.
Run: ``.venv/bin/python benchmarks/bench_versions.py``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcpmanager import FakeContainerService, Manager, ManagerConfig
from mcpmanager.store import PostgresStore, SQLiteStore, VersionStore

ROUNDS = 40


def latencies(call: Callable[[], object]) -> tuple[float, float]:
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples) * 1e3, samples[int(ROUNDS * 0.95) - 1] * 1e3


def bench(name: str, store: VersionStore) -> None:
    with tempfile.TemporaryDirectory() as root:
        fake = FakeContainerService(root=f"{root}/fake")
        manager = Manager(fake, ManagerConfig(data_root=f"{root}/data"), store=store)
        manager.init()
        manager.start("bench")
        cm, cp = latencies(lambda: manager.create_version("bench"))
        rm, rp = latencies(lambda: manager.rollback_version("bench", 1))
        lm, _ = latencies(lambda: manager.list_versions("bench"))
        print(
            f"{name:>10}: create_version median {cm:.2f} ms p95 {cp:.2f} ms | "
            f"rollback_version median {rm:.2f} ms p95 {rp:.2f} ms | "
            f"list_versions({ROUNDS}) {lm:.2f} ms"
        )
        manager.close()
        fake.close()


def main() -> None:
    logging.disable(logging.WARNING)
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", help="conninfo of an existing database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        bench("sqlite", SQLiteStore(f"{d}/v.db"))
    cluster = None
    conninfo = args.postgres
    if conninfo is None:
        from tests.harness.postgres import start_cluster

        cluster = start_cluster()
        conninfo = cluster.conninfo()
    try:
        store = PostgresStore(conninfo, schema=f"bench_{uuid.uuid4().hex[:8]}")
        store.migrate()
        bench("postgresql", store)
    finally:
        if cluster is not None:
            cluster.stop()
            shutil.rmtree(cluster.base, ignore_errors=True)


if __name__ == "__main__":
    main()
