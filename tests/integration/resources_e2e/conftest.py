"""The limits scenario runs only inside the namespace its parent test makes.

A normal pytest run does not collect them: the parent test creates the
namespace and the bridge network, then runs ``pytest tests/integration/resources_e2e``
in it with ``MCPMANAGER_E2E_DIR`` set.
"""

from __future__ import annotations

import os

from tests.integration.e2e.conftest import E2E_DIR_ENV

if not os.environ.get(E2E_DIR_ENV):
    collect_ignore_glob = ["test_*.py"]
