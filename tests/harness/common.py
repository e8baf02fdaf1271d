"""Helpers every harness uses: requiring or skipping real components, polling."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

import pytest

T = TypeVar("T")


def integration_required() -> bool:
    """True when a missing real component must fail the run instead of skipping."""
    return os.environ.get("MCPMANAGER_REQUIRE_INTEGRATION", "") not in ("", "0", "false")


def unavailable(reason: str) -> NoReturn:
    """Skip the test with ``reason``, or fail it when integration is required."""
    if integration_required():
        pytest.fail(f"required integration component unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def require_root() -> None:
    """Integration components here need root (mounts, namespaces, daemons)."""
    if os.geteuid() != 0:
        unavailable("needs root")


def require_binaries(*names: str) -> None:
    """Make sure every program in ``names`` is on PATH (or in the usual sbin dirs)."""
    missing = [n for n in names if shutil.which(n) is None and not os.path.exists(n)]
    if missing:
        unavailable(f"missing programs: {', '.join(missing)}")


def wait_for(
    check: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll ``check`` until it returns something truthy, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(interval)
