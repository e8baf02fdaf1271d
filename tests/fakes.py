"""Fixtures and helpers for tests that run the Manager on the in-memory fake."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mcpmanager import FakeContainerService, Manager, ManagerConfig


def make_manager(fake: FakeContainerService, tmp_path: Path, **config: object) -> Manager:
    """A Manager on ``fake`` whose host files live under ``tmp_path``, with no back-off."""
    cfg = ManagerConfig(data_root=str(tmp_path / "data"), **config)  # type: ignore[arg-type]
    manager = Manager(fake, cfg)
    manager.ip_recovery_delays = (0.0, 0.0)
    return manager


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[FakeContainerService]:
    service = FakeContainerService(root=tmp_path / "fake")
    yield service
    service.close()


@pytest.fixture
def manager(fake: FakeContainerService, tmp_path: Path) -> Iterator[Manager]:
    m = make_manager(fake, tmp_path)
    m.init()
    fake.calls.clear()
    yield m
    m.close()
