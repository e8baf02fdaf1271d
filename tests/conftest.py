"""Shared test configuration.

Integration tests need real components (containerd, CNI plugins, PostgreSQL, a
registry) and root. They skip with a reason on a laptop, and fail instead when
``MCPMANAGER_REQUIRE_INTEGRATION=1`` (set by ``.ci/run``).
"""

from __future__ import annotations

pytest_plugins = [
    "tests.harness.common",
    "tests.harness.containerd",
    "tests.harness.registry",
    "tests.harness.postgres",
    "tests.harness.netns",
    "tests.harness.agent",
    "tests.harness.docker",
    "tests.fakes",
]
