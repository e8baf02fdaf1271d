"""End to end on Docker: a bot on a private dockerd, reached over its bridge, in its own netns.

This test makes a network namespace and runs the scenario in
``tests/integration/docker_e2e`` as a child pytest inside it: the child starts its own
dockerd there, so the bridge network, the containers' addresses, the
Manager and the gRPC client all live in the namespace. Afterwards it checks
nothing runs there any more and deletes the namespace.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from tests.harness.common import require_binaries, require_root
from tests.harness.docker import DOCKER_BINARIES, NETNS_ENV
from tests.harness.e2e import HostNetns
from tests.harness.scenario import run_scenario

pytestmark = pytest.mark.integration


def test_bot_end_to_end_on_docker_in_its_own_namespace() -> None:
    require_root()
    require_binaries("/bin/busybox", *DOCKER_BINARIES)
    root = tempfile.mkdtemp(prefix="mcpm-dk-e2e-")
    try:
        with HostNetns("dke2e") as host:
            basetemp = os.path.join(root, "pytest")
            run_scenario(host, "tests/integration/docker_e2e", {NETNS_ENV: host.name}, basetemp)
    finally:
        shutil.rmtree(root, ignore_errors=True)
