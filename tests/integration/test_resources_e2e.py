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
import sys
import tempfile

import pytest

from tests.harness.common import require_binaries, require_root
from tests.harness.containerd import BINARIES
from tests.harness.e2e import E2E_PLUGINS, E2EDir, HostNetns
from tests.harness.netns import require_cni_plugins
from tests.integration.e2e.conftest import E2E_DIR_ENV
from tests.integration.test_e2e import run_child

pytestmark = pytest.mark.integration


def test_limits_and_metrics_on_containerd_in_their_own_namespace() -> None:
    require_root()
    require_binaries("ip", "nsenter", "/bin/busybox", *BINARIES)
    require_cni_plugins(*E2E_PLUGINS)
    root = tempfile.mkdtemp(prefix="mcpm-res-")
    try:
        with HostNetns("res") as host:
            d = E2EDir(root).create(bridge="mcpres0")
            env = {**os.environ, E2E_DIR_ENV: root}
            argv = host.exec_argv(
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-x",
                "-p",
                "no:cacheprovider",
                f"--basetemp={os.path.join(root, 'pytest')}",
                "tests/integration/resources_e2e",
            )
            returncode, output = run_child(argv, env)
            assert returncode == 0, f"end-to-end run failed:\n{output}"
            assert " passed" in output, output
            assert "skipped" not in output, output
            assert d.allocations() == [], "IPAM allocations left behind"
            assert d.cache_entries() == [], "CNI cache entries left behind"
            assert [n for n in host.links() if n.startswith("veth")] == [], host.links()
            assert host.pids() == [], "processes left running in the namespace"
    finally:
        shutil.rmtree(root, ignore_errors=True)
