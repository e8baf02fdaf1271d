"""The Docker end-to-end scenario runs only inside the namespace its parent test makes.

A normal pytest run does not collect it: the parent test creates the network
namespace and runs ``pytest tests/integration/docker_e2e`` in it with
``MCPMANAGER_DOCKER_NETNS`` naming it, so the private dockerd, its bridge,
the Manager and the gRPC client all live there.
"""

from __future__ import annotations

import os

from tests.harness.docker import NETNS_ENV

if not os.environ.get(NETNS_ENV):
    collect_ignore_glob = ["test_*.py"]
