"""/data export/import against tar, raw transfers and exec round trips over loopback.

Everything runs on the fake with agents (no root). Each figure is printed next
to a reference measured in the same run: ``tar czf``/``tar xzf`` of the same
tree for export/import. Run: ``.venv/bin/python benchmarks/bench_data.py``.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from mcpmanager import FakeContainerService, Manager, ManagerConfig

TREE_MB = 200


def make_tree(root: Path, total_mb: int) -> int:
    """A mixed tree: many small text files, some mid-size, a few large half-random files."""
    rng = random.Random(7)
    size = 0
    words = [b"alpha", b"beta", b"gamma", b"delta", b"config", b"value", b"\n"]
    for i in range(2000):  # small, compressible
        d = root / f"notes/{i % 40}"
        d.mkdir(parents=True, exist_ok=True)
        body = b" ".join(rng.choice(words) for _ in range(rng.randint(50, 800)))
        (d / f"n{i}.md").write_bytes(body)
        size += len(body)
    big = (total_mb << 20) - size
    for i in range(8):  # large: half random, half repetitive
        part = big // 8
        body = os.urandom(part // 2) + b"x" * (part - part // 2)
        (root / f"blob{i}.bin").write_bytes(body)
        size += len(body)
    return size


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    logging.disable(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="mcp-bench-data-"))
    try:
        fake = FakeContainerService(root=work / "fake", agents=True)
        m = Manager(fake, ManagerConfig(data_root=str(work / "root")), owns_service=True)
        m.init()
        m.start("src")
        info = fake.get_container("mcp-src")
        data = Path(fake.snapshot_path(info.snapshotter, info.snapshot_key)) / "data"
        size = make_tree(data, TREE_MB)
        mb = size / 2**20
        archive = work / "export.tar.gz"

        def ours_export() -> None:
            with open(archive, "wb") as f:
                m.export_data("src", f)

        tar_archive = work / "tar.tar.gz"
        ours = statistics.median(timed(ours_export) for _ in range(2))
        ref = statistics.median(
            timed(
                lambda: subprocess.run(
                    ["tar", "czf", str(tar_archive), "-C", str(data), "."], check=True
                )
            )
            for _ in range(2)
        )
        print(
            f"export {mb:.0f} MB: ours {mb / ours:6.1f} MB/s, tar czf {mb / ref:6.1f} MB/s, "
            f"ratio {ref / ours:.2f}x of tar's speed (target >= 0.8)"
        )

        m.start("dst")

        def ours_import() -> None:
            with open(archive, "rb") as f:
                m.import_data("dst", f)

        out = work / "untar"

        def tar_import() -> None:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            subprocess.run(["tar", "xzf", str(tar_archive), "-C", str(out)], check=True)

        ours = statistics.median(timed(ours_import) for _ in range(2))
        ref = statistics.median(timed(tar_import) for _ in range(2))
        print(
            f"import {mb:.0f} MB: ours {mb / ours:6.1f} MB/s, tar xzf {mb / ref:6.1f} MB/s, "
            f"ratio {ref / ours:.2f}x of tar's speed (target >= 0.8)"
        )

        client = m.client("dst")
        payload = os.urandom(64 << 20)
        up = statistics.median(
            timed(lambda: client.write_raw("/data/raw.bin", payload)) for _ in range(3)
        )
        down = statistics.median(
            timed(lambda: sum(len(c) for c in client.read_raw("/data/raw.bin"))) for _ in range(3)
        )
        print(
            f"write_raw 64 MB: {64 / up:6.0f} MB/s; read_raw 64 MB: {64 / down:6.0f} MB/s "
            "over loopback (target >= 200)"
        )

        samples = sorted(timed(lambda: client.exec("true")) for _ in range(200))
        p50, p99 = samples[100] * 1e3, samples[197] * 1e3
        print(f"exec('true') round trip: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        m.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
