"""A pytest plugin for testing code that uses mcpmanager, on the in-memory fake.

Installing mcpmanager registers this module under pytest's ``pytest11`` entry
point, so its fixtures are there in every test without an import:

``mcp_fake``
    A :class:`~mcpmanager.FakeContainerService` with real in-process agents
    (``agents=True``: file and command calls work), its directories under the
    test's ``tmp_path``; closed after the test.
``mcp_store``
    A migrated :class:`~mcpmanager.store.SQLiteStore` in ``tmp_path``; closed after.
``mcp_config``
    The :class:`~mcpmanager.ManagerConfig` of ``mcp_manager``: ``data_root`` in
    ``tmp_path``, everything else default. Override this fixture in a
    ``conftest.py`` to change settings.
``mcp_manager``
    A :class:`~mcpmanager.Manager` on ``mcp_fake`` and ``mcp_store``, with
    :meth:`~mcpmanager.Manager.init` done and the fake's call log cleared, so
    the log holds only what the test itself caused; closed after the test.

and :func:`calls_of`, :func:`assert_called` and :func:`assert_not_called` check
what the code under test asked the backend to do::

    from mcpmanager.testing import assert_called

    def test_greeter_starts_its_bot(mcp_manager, mcp_fake):
        greet(mcp_manager, "alice")  # the code under test
        assert_called(mcp_fake, "start_task", times=1)

Nothing here needs root, containerd or a network beyond loopback. Disable the
plugin with ``-p no:mcpmanager``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from .config import ManagerConfig
from .fake import Call, FakeContainerService
from .manager import Manager
from .store import SQLiteStore

__all__ = [
    "assert_called",
    "assert_not_called",
    "calls_of",
    "mcp_config",
    "mcp_fake",
    "mcp_manager",
    "mcp_store",
]


def calls_of(fake: FakeContainerService, method: str) -> list[Call]:
    """The recorded calls of ``method`` on ``fake``, oldest first.

    Each is a :class:`~mcpmanager.fake.Call` (``method``, ``args``, ``kwargs``).
    An unknown method name is an error, so a typo cannot pass as "not called".
    """
    if not callable(getattr(FakeContainerService, method, None)) or method.startswith("_"):
        raise ValueError(f"FakeContainerService has no method {method!r}")
    return [c for c in list(fake.calls) if c.method == method]


def assert_called(
    fake: FakeContainerService,
    method: str,
    *,
    times: int | None = None,
    args: tuple[Any, ...] | None = None,
    kwargs: Mapping[str, Any] | None = None,
) -> list[Call]:
    """Assert that ``method`` was called on ``fake``; return those calls.

    ``times`` asks for an exact count (default: at least once). ``args`` and
    ``kwargs``, when given, keep only the calls with exactly those arguments
    before counting. The failure message lists what was called instead.
    """
    calls = calls_of(fake, method)
    matching = [
        c
        for c in calls
        if (args is None or c.args == tuple(args)) and (kwargs is None or c.kwargs == dict(kwargs))
    ]
    wanted = "at least once" if times is None else f"{times} time(s)"
    where = "" if args is None and kwargs is None else f" with args={args!r} kwargs={kwargs!r}"
    ok = bool(matching) if times is None else len(matching) == times
    if not ok:
        seen = ", ".join(f"{c.method}{c.args!r}" for c in list(fake.calls)[-20:]) or "nothing"
        raise AssertionError(
            f"expected {method}{where} to be called {wanted}, it was called "
            f"{len(matching)} time(s); last calls: {seen}"
        )
    return matching


def assert_not_called(fake: FakeContainerService, method: str) -> None:
    """Assert that ``method`` was never called on ``fake``."""
    assert_called(fake, method, times=0)


@pytest.fixture
def mcp_fake(tmp_path: Path) -> Iterator[FakeContainerService]:
    """A fake backend with in-process agents in ``tmp_path``, closed after the test."""
    fake = FakeContainerService(root=tmp_path / "mcp-fake", agents=True)
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def mcp_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """A migrated SQLite version store in ``tmp_path``, closed after the test."""
    store = SQLiteStore(tmp_path / "mcp-versions.db")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def mcp_config(tmp_path: Path) -> ManagerConfig:
    """The config of ``mcp_manager``: host files in ``tmp_path``; override it to change settings."""
    return ManagerConfig(data_root=str(tmp_path / "mcp-data"))


@pytest.fixture
def mcp_manager(
    mcp_fake: FakeContainerService, mcp_store: SQLiteStore, mcp_config: ManagerConfig
) -> Iterator[Manager]:
    """A ready Manager on ``mcp_fake`` and ``mcp_store``: ``init()`` done, call log cleared."""
    manager = Manager(mcp_fake, mcp_config, store=mcp_store)
    try:
        manager.init()
        mcp_fake.calls.clear()
        yield manager
    finally:
        manager.close()
