"""list_versions latency with 10,000 versions of one bot, on SQLite and PostgreSQL.

    .venv/bin/python benchmarks/bench_store.py [--versions N] [--postgres CONNINFO]

Without ``--postgres`` (and as root) a throwaway cluster is started with the
test harness. Prints the median and p95 of ``list_versions`` and ``get_version``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcpmanager.store import PostgresStore, SQLiteStore, VersionStore

CID = "mcp-benchbot"


def fill(store: VersionStore, count: int) -> float:
    store.upsert_container(CID, "benchbot", "memohai/mcp:latest", "overlayfs")
    start = time.perf_counter()
    for i in range(count):
        store.record_snapshot(CID, f"{CID}-v{i}", snapshotter="overlayfs", source="pre_exec")
    return time.perf_counter() - start


def timings(call: Callable[[], object], rounds: int) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def bench(name: str, store: VersionStore, count: int, rounds: int) -> None:
    store.migrate()
    spent = fill(store, count)
    assert len(store.list_versions(CID)) == count
    lm, lp = timings(lambda: store.list_versions(CID), rounds)
    gm, gp = timings(lambda: store.get_version(CID, count // 2), rounds * 10)
    print(
        f"{name:>8}: record_snapshot {spent / count * 1e3:.2f} ms each | "
        f"list_versions({count}) median {lm * 1e3:.1f} ms p95 {lp * 1e3:.1f} ms | "
        f"get_version median {gm * 1e3:.2f} ms p95 {gp * 1e3:.2f} ms"
    )


def run_postgres(conninfo: str, count: int, rounds: int) -> None:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        with PostgresStore(conninfo, schema=schema) as store:
            bench("postgres", store, count, rounds)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--postgres", help="libpq conninfo; default: a throwaway cluster")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench-store-")
    try:
        with SQLiteStore(Path(tmp) / "store.db") as store:
            bench("sqlite", store, args.versions, args.rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if args.postgres:
        run_postgres(args.postgres, args.versions, args.rounds)
        return
    from tests.harness.postgres import start_cluster

    cluster = start_cluster()
    try:
        run_postgres(cluster.conninfo(), args.versions, args.rounds)
    finally:
        cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)


if __name__ == "__main__":
    main()
