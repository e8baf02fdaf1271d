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
import signal
import subprocess
import sys
import tempfile

import pytest

from tests.harness.common import require_binaries, require_root
from tests.harness.containerd import BINARIES
from tests.harness.e2e import E2E_PLUGINS, E2EDir, HostNetns
from tests.harness.netns import require_cni_plugins
from tests.integration.e2e.conftest import E2E_DIR_ENV

pytestmark = pytest.mark.integration

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHILD_TIMEOUT = 300


def run_child(argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Run the child pytest; on timeout interrupt it so its fixtures still clean up."""
    child = subprocess.Popen(
        argv, cwd=PROJECT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = child.communicate(timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGINT)  # pytest runs fixture teardown on Ctrl-C
        try:
            output, _ = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            output, _ = child.communicate()
        return -1, f"timed out after {CHILD_TIMEOUT}s:\n{output}"
    return child.returncode, output


def test_bot_end_to_end_over_a_bridge_in_its_own_namespace() -> None:
    require_root()
    require_binaries("ip", "nsenter", "/bin/busybox", *BINARIES)
    require_cni_plugins(*E2E_PLUGINS)
    root = tempfile.mkdtemp(prefix="mcpm-e2e-")
    try:
        with HostNetns("e2e") as host:
            d = E2EDir(root).create(bridge="mcpe2e0")
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
                "tests/integration/e2e",
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
