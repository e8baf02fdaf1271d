"""Export and import stream: moving 1 GiB of /data does not load it into memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, logging, os, resource, sys
from mcpmanager import FakeContainerService, Manager, ManagerConfig

work = sys.argv[1]
logging.disable(logging.WARNING)
m = Manager(FakeContainerService(root=f"{work}/fake"), ManagerConfig(data_root=f"{work}/root"))
m.init()
m.ensure_bot("src")
m.ensure_bot("dst")
info = m.service.get_container("mcp-src")
data = os.path.join(m.service.snapshot_path(info.snapshotter, info.snapshot_key), "data")
with open(os.path.join(data, "big.bin"), "wb") as f:
    f.truncate(1 << 30)  # 1 GiB, sparse on disk, read back as zeros

def peak_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

base = peak_kib()
with open(f"{work}/export.tar.gz", "wb") as f:
    m.export_data("src", f)
after_export = peak_kib()
with open(f"{work}/export.tar.gz", "rb") as f:
    m.import_data("dst", f)
after_import = peak_kib()
out = m.service.get_container("mcp-dst")
size = os.path.getsize(os.path.join(
    m.service.snapshot_path(out.snapshotter, out.snapshot_key), "data", "big.bin"))
print(json.dumps({"export": after_export - base, "import": after_import - base, "size": size}))
"""


def test_one_gib_export_and_import_stay_small(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    grown = json.loads(done.stdout.strip().splitlines()[-1])
    assert grown["size"] == 1 << 30  # the whole GiB really went through
    assert grown["export"] < 100 * 1024  # KiB: under 100 MB of growth
    assert grown["import"] < 100 * 1024
