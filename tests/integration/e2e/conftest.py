"""The end-to-end scenario runs only inside the network namespace its parent test makes.

A normal pytest run does not collect it: ``tests/integration/test_e2e.py`` creates the
namespace and the bridge network, then runs ``pytest tests/integration/e2e`` in it with
``MCPMANAGER_E2E_DIR`` set to the directory holding the network's files.
"""

from __future__ import annotations

import os

E2E_DIR_ENV = "MCPMANAGER_E2E_DIR"

if not os.environ.get(E2E_DIR_ENV):
    collect_ignore_glob = ["test_*.py"]
