"""End to end: a bot on a real containerd, networked by CNI, reached over its bridge.

This test makes a network namespace that plays the host, writes a bridge
network (own bridge name, private subnet, IPAM and cache in a temp dir) and
runs the scenario in ``tests/integration/e2e`` as a child pytest inside that namespace:
the child starts its own containerd, and the Manager, the CNI plugins (so the
bridge and host-side veths) and the gRPC client all live in the namespace.
Nothing is created in the machine's own network namespace. Afterwards this
test checks nothing was left behind, then deletes the namespace (killing
anything still running in it) and the temp dir.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from tests.harness.common import require_binaries, require_root
from tests.harness.containerd import BINARIES
from tests.harness.e2e import E2E_PLUGINS, E2EDir, HostNetns
from tests.harness.netns import require_cni_plugins
from tests.harness.scenario import run_scenario
from tests.integration.e2e.conftest import E2E_DIR_ENV

pytestmark = pytest.mark.integration


def test_bot_end_to_end_over_a_bridge_in_its_own_namespace() -> None:
    require_root()
    require_binaries("ip", "nsenter", "/bin/busybox", *BINARIES)
    require_cni_plugins(*E2E_PLUGINS)
    root = tempfile.mkdtemp(prefix="mcpm-e2e-")
    try:
        with HostNetns("e2e") as host:
            d = E2EDir(root).create(bridge="mcpe2e0")
            basetemp = os.path.join(root, "pytest")
            run_scenario(host, "tests/integration/e2e", {E2E_DIR_ENV: root}, basetemp)
            assert d.allocations() == [], "IPAM allocations left behind"
            assert d.cache_entries() == [], "CNI cache entries left behind"
            assert [n for n in host.links() if n.startswith("veth")] == [], host.links()
    finally:
        shutil.rmtree(root, ignore_errors=True)
