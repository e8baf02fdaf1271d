"""An agent server on a free loopback port, rooted at a temp dir, and a client for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mcpmanager.agent import AgentServer
from mcpmanager.client import Client

AGENT_BOT = "bot1"
"""The bot ID the ``client`` fixture's Client names in its errors."""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The agent's --root: container paths such as /data/x live under it."""
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def agent(root: Path) -> Iterator[AgentServer]:
    """A running in-process agent on 127.0.0.1 and a free port."""
    with AgentServer(root=str(root), listen="127.0.0.1:0") as server:
        yield server


@pytest.fixture
def client(agent: AgentServer) -> Iterator[Client]:
    """A client of the ``agent`` fixture."""
    with Client(agent.address, bot_id=AGENT_BOT) as c:
        yield c
