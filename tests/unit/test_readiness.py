"""Ready when it returns: start() and every restart wait until the bot's agent answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcpmanager import FakeContainerService, Manager, ManagerConfig, _readiness, errors
from mcpmanager.agent import AgentServer
from mcpmanager.store import SQLiteStore
from mcpmanager.types import TaskStatus

BOT = "slow"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LateAgents(FakeContainerService):
    """A fake whose agents come up only after the task started, as on real containerd.

    The agent of a started container is launched by a helper thread that first
    waits until the Manager has probed it (and been refused) at least once:
    so a start() that returned without waiting would find no agent.
    """

    def __init__(self, root: Path, port: int) -> None:
        super().__init__(root=root)
        self.port = port
        self.servers: list[AgentServer] = []
        self.refused = threading.Event()
        self.launched = threading.Event()

    @property
    def serves_agents(self) -> bool:
        return True

    def setup_network(self, req: Any) -> Any:
        result = super().setup_network(req)
        info = self.get_container(req.container_id)
        root = self.snapshot_path(info.snapshotter, info.snapshot_key)
        threading.Thread(target=self._launch, args=(root, result.ip), daemon=True).start()
        return result

    def _launch(self, root: str, ip: str) -> None:
        self.refused.wait(10)
        server = AgentServer(root=root, listen=f"{ip}:{self.port}")
        server.start()
        self.servers.append(server)
        self.launched.set()

    def close(self) -> None:
        for server in self.servers:
            server.stop(0)
        super().close()


@pytest.fixture
def late(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Manager, LateAgents]]:
    port = free_port()
    fake = LateAgents(tmp_path / "fake", port)
    real_knock = _readiness._knock

    def observed(address: str, timeout: float) -> str | None:
        refused = real_knock(address, timeout)
        if refused is not None:
            fake.refused.set()  # the Manager found no agent yet: now let it come up
        return refused

    monkeypatch.setattr(_readiness, "_knock", observed)
    config = ManagerConfig(data_root=str(tmp_path / "data"), grpc_port=port, ready_timeout=20)
    store = SQLiteStore(str(tmp_path / "v.db"))
    store.migrate()
    manager = Manager(fake, config, store=store)
    manager.init()
    yield manager, fake
    manager.close()
    fake.close()


def test_start_returns_only_once_the_agent_answers(late: tuple[Manager, LateAgents]) -> None:
    manager, fake = late
    manager.start(BOT)
    assert fake.refused.is_set()  # it was not ready at first: the wait was real
    assert fake.launched.is_set()
    assert manager.client(BOT).exec("echo ready").stdout == "ready\n"


def test_operations_that_restart_the_bot_wait_too(late: tuple[Manager, LateAgents]) -> None:
    manager, fake = late
    manager.start(BOT)
    for op in (lambda: manager.create_version(BOT), lambda: manager.rollback_version(BOT, 1)):
        fake.refused.clear()
        fake.launched.clear()
        op()
        assert fake.launched.is_set()
        assert manager.client(BOT).exec("true").exit_code == 0


def test_not_ready_in_time_names_bot_address_and_error_and_leaves_it_running(
    tmp_path: Path,
) -> None:
    class NoAgent(FakeContainerService):
        serves_agents = True  # claims agents, but none ever listens

    fake = NoAgent(root=tmp_path / "fake")
    port = free_port()
    config = ManagerConfig(data_root=str(tmp_path / "data"), grpc_port=port, ready_timeout=0.3)
    with Manager(fake, config) as manager:
        manager.init()
        with pytest.raises(errors.DeadlineExceeded) as info:
            manager.start(BOT)
        message = str(info.value)
        ip = fake.container_ip(f"mcp-{BOT}")
        assert f"bot {BOT}" in message
        assert f"{ip}:{port}" in message
        assert "last error" in message
        assert fake.get_task_info(f"mcp-{BOT}").status is TaskStatus.RUNNING
        assert manager.status(BOT).running
        with pytest.raises(errors.DeadlineExceeded):
            manager.wait_ready(BOT, timeout=0.1)
    fake.close()


def test_ready_timeout_zero_does_not_wait(tmp_path: Path) -> None:
    class NoAgent(FakeContainerService):
        serves_agents = True

    fake = NoAgent(root=tmp_path / "fake")
    config = ManagerConfig(data_root=str(tmp_path / "data"), ready_timeout=0)
    with Manager(fake, config) as manager:
        manager.init()
        manager.start(BOT)
        assert manager.status(BOT).running
    fake.close()


def test_wait_ready_refusals(tmp_path: Path) -> None:
    fake = FakeContainerService(root=tmp_path / "fake")
    with Manager(fake, ManagerConfig(data_root=str(tmp_path / "d"))) as manager:
        manager.init()
        manager.start(BOT)
        with pytest.raises(errors.NotSupported, match="runs no agents"):
            manager.wait_ready(BOT)
    fake.close()
    with_agents = FakeContainerService(root=tmp_path / "fake2", agents=True)
    with Manager(with_agents, ManagerConfig(data_root=str(tmp_path / "d2"))) as manager:
        with pytest.raises(errors.FailedPrecondition, match="not running"):
            manager.wait_ready("never-started")
        with pytest.raises(errors.InvalidArgument):
            manager.wait_ready(BOT, timeout=-1)
        manager.init()
        manager.start(BOT)
        manager.wait_ready(BOT, timeout=5)
    with_agents.close()
    with pytest.raises(errors.InvalidArgument):
        ManagerConfig(ready_timeout=-1)


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A clock that only sleeps move; returns the pauses slept."""
    now = [0.0]
    pauses: list[float] = []
    monkeypatch.setattr(_readiness, "_clock", lambda: now[0])

    def fake_sleep(seconds: float) -> None:
        pauses.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(_readiness.time, "sleep", fake_sleep)
    return pauses


@pytest.fixture
def listening() -> Iterator[str]:
    """``host:port`` of a socket that accepts connections (the kernel completes them)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture
def closed_port() -> str:
    """``host:port`` nothing listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


class Refusing:
    """A client whose agent cannot be reached over gRPC."""

    def __init__(self) -> None:
        self.asked = 0

    def stat(self, path: str, *, timeout: float) -> None:
        self.asked += 1
        raise errors.Unavailable("connection refused")


def test_a_closed_port_is_knocked_on_at_a_tenth_of_the_time_waited_without_grpc(
    fake_time: list[float], closed_port: str
) -> None:
    client = Refusing()
    with pytest.raises(errors.DeadlineExceeded, match=r"TCP connect to 127\.0\.0\.1:"):
        _readiness.wait_for_agent(lambda: client, "b", closed_port, 1.0)  # type: ignore[arg-type,return-value]
    assert client.asked == 0
    assert fake_time[:3] == [pytest.approx(0.001)] * 3  # 1 ms while little time has passed
    waited = 0.0
    for pause in fake_time[:-1]:  # the last one is cut by the deadline
        assert pause == pytest.approx(min(max(waited / 10, 0.001), 0.02))
        waited += pause
    assert max(fake_time) == pytest.approx(0.02)
    assert sum(fake_time) == pytest.approx(1.0)
    assert len(fake_time) < 90  # a second of waiting costs tens of knocks, not hundreds


def test_once_the_port_accepts_grpc_probes_back_off_until_the_deadline(
    fake_time: list[float], listening: str
) -> None:
    client = Refusing()
    with pytest.raises(errors.DeadlineExceeded, match="connection refused"):
        _readiness.wait_for_agent(lambda: client, "b", listening, 1.0)  # type: ignore[arg-type,return-value]
    assert fake_time[0] == pytest.approx(0.005)
    assert max(fake_time) <= 0.02
    assert sum(fake_time) == pytest.approx(1.0)
    assert client.asked == len(fake_time) + 1


def test_any_answer_counts_as_ready(listening: str) -> None:
    asked = []

    class Refuses:
        def stat(self, path: str, *, timeout: float) -> None:
            asked.append(path)
            raise errors.NotFound("no such file")

    _readiness.wait_for_agent(lambda: Refuses(), "b", listening, 5.0)  # type: ignore[arg-type,return-value]
    assert asked == ["/"]
