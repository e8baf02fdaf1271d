"""Per-bot limits and metrics end to end on real containerd, in a namespace of their own.

The scenario (``tests/integration/resources_e2e``) runs as a child pytest inside a network
namespace this test makes, with its own bridge network, as ``tests/integration/test_e2e.py``
does for the main scenario: the child starts its own containerd, and the
Manager, the CNI plugins and the gRPC client all live in the namespace.
Afterwards nothing may be left behind (addresses, cache entries, veths,
processes); then the namespace and the temp dir are deleted.
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


def test_limits_and_metrics_on_containerd_in_their_own_namespace() -> None:
    require_root()
    require_binaries("ip", "nsenter", "/bin/busybox", *BINARIES)
    require_cni_plugins(*E2E_PLUGINS)
    root = tempfile.mkdtemp(prefix="mcpm-res-")
    try:
        with HostNetns("res") as host:
            d = E2EDir(root).create(bridge="mcpres0")
            basetemp = os.path.join(root, "pytest")
            run_scenario(host, "tests/integration/resources_e2e", {E2E_DIR_ENV: root}, basetemp)
            assert d.allocations() == [], "IPAM allocations left behind"
            assert d.cache_entries() == [], "CNI cache entries left behind"
            assert [n for n in host.links() if n.startswith("veth")] == [], host.links()
    finally:
        shutil.rmtree(root, ignore_errors=True)
