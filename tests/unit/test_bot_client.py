"""Clients that stay valid: a saved client survives restarts, replacements and IP changes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcpmanager import FakeContainerService, Manager, errors
from mcpmanager.agent import AgentServer
from mcpmanager.client import Client, Pool
from mcpmanager.client.handle import BotClient
from mcpmanager.store import SQLiteStore
from tests.fakes import make_manager

# -- on the pool ------------------------------------------------------------------


class IPs:
    """An ``ip_func`` whose answers the test changes."""

    def __init__(self) -> None:
        self.ips: dict[str, str] = {}

    def __call__(self, bot_id: str) -> str:
        return self.ips.get(bot_id, "")


@pytest.fixture
def two_agents(tmp_path: Path) -> Iterator[tuple[AgentServer, AgentServer]]:
    """Two agents on one port and two loopback IPs, with different files."""
    first = AgentServer(root=str(tmp_path / "a"), listen="127.0.0.1:0")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first.start()
    second = AgentServer(root=str(tmp_path / "b"), listen=f"127.0.0.2:{first.port}")
    try:
        second.start()
    except BaseException:
        first.stop(0)
        raise
    (tmp_path / "a" / "data" / "who").write_text("first")
    (tmp_path / "b" / "data" / "who").write_text("second")
    yield first, second
    first.stop(0)
    second.stop(0)


def test_a_handle_follows_an_ip_change(two_agents: tuple[AgentServer, AgentServer]) -> None:
    first, _ = two_agents
    ips = IPs()
    ips.ips["bot"] = "127.0.0.1"
    pool = Pool(ips, port=first.port)
    try:
        handle = pool.handle("bot")
        assert isinstance(handle, BotClient)
        assert isinstance(handle, Client)
        assert pool.handle("bot") is handle
        assert handle.read_text("who") == "first"
        raw = pool.get("bot")
        ips.ips["bot"] = "127.0.0.2"
        pool.remove("bot")  # what the Manager does when it sees the IP change
        assert raw.closed  # the pooled client itself is gone...
        assert handle.read_text("who") == "second"  # ...the handle is not
        assert handle.target == f"127.0.0.2:{first.port}"
        assert not handle.closed
    finally:
        pool.close()


def test_a_handle_survives_its_channel_being_replaced_under_it(
    two_agents: tuple[AgentServer, AgentServer],
) -> None:
    """The pool closing the channel between lookup and call: the call goes to the new one."""
    first, _ = two_agents
    ips = IPs()
    ips.ips["bot"] = "127.0.0.1"
    pool = Pool(ips, port=first.port)
    real_connection = pool.connection
    swapped = threading.Event()

    def connection_then_evicted(bot_id: str) -> Client:
        client = real_connection(bot_id)
        if not swapped.is_set():
            swapped.set()
            pool.remove(bot_id)  # closes ``client`` before the handle uses it
        return client

    pool.connection = connection_then_evicted  # type: ignore[method-assign]
    try:
        handle = pool.handle("bot")
        assert handle.exec("cat who").stdout == "first"
        assert swapped.is_set()
        assert handle.write_raw("up.bin", b"x" * 10) == 10
    finally:
        pool.close()


def test_close_on_a_handle_does_nothing(two_agents: tuple[AgentServer, AgentServer]) -> None:
    first, _ = two_agents
    ips = IPs()
    ips.ips["bot"] = "127.0.0.1"
    pool = Pool(ips, port=first.port)
    try:
        with pool.handle("bot") as handle:
            handle.stat("who")
        assert handle.read_text("who") == "first"  # other holders share it
        assert repr(handle) == f"<BotClient bot bot at 127.0.0.1:{first.port} (open)>"
    finally:
        pool.close()


def test_a_closed_pool_refuses_handles_with_failed_precondition(
    two_agents: tuple[AgentServer, AgentServer],
) -> None:
    first, _ = two_agents
    ips = IPs()
    ips.ips["bot"] = "127.0.0.1"
    pool = Pool(ips, port=first.port)
    handle = pool.handle("bot")
    pool.close()
    pool.close()  # idempotent
    assert handle.closed
    with pytest.raises(errors.FailedPrecondition, match=r"bot bot: the Manager is closed"):
        handle.read_bytes("who")
    with pytest.raises(errors.FailedPrecondition, match="the Manager is closed"):
        handle.exec("true")
    with pytest.raises(errors.FailedPrecondition, match="the Manager is closed"):
        pool.get("bot")
    with pytest.raises(errors.FailedPrecondition, match="the Manager is closed"):
        pool.handle("bot")
    assert len(pool) == 0


def test_a_handle_of_a_bot_without_address_is_unavailable_naming_it(
    two_agents: tuple[AgentServer, AgentServer],
) -> None:
    first, _ = two_agents
    ips = IPs()
    pool = Pool(ips, port=first.port)
    try:
        with pytest.raises(errors.Unavailable, match="bot bot:"):
            pool.handle("bot")  # checked when handed out
        ips.ips["bot"] = "127.0.0.1"
        handle = pool.handle("bot")
        del ips.ips["bot"]
        pool.remove("bot")  # stopped: no IP any more
        with pytest.raises(errors.Unavailable, match=r"bot bot:.*no IP"):
            handle.stat("who")
        ips.ips["bot"] = "127.0.0.1"
        assert handle.read_text("who") == "first"  # back
    finally:
        pool.close()


def test_close_all_keeps_handles_working(two_agents: tuple[AgentServer, AgentServer]) -> None:
    """close_all (memoh's "close clients") is not the end of the pool; close() is."""
    first, _ = two_agents
    ips = IPs()
    ips.ips["bot"] = "127.0.0.1"
    pool = Pool(ips, port=first.port)
    try:
        handle = pool.handle("bot")
        pool.close_all()
        assert handle.read_text("who") == "first"
    finally:
        pool.close()


# -- through a Manager on the fake with agents ------------------------------------


@pytest.fixture
def agent_fake(tmp_path: Path) -> Iterator[FakeContainerService]:
    svc = FakeContainerService(root=tmp_path / "fake", agents=True)
    yield svc
    svc.close()


@pytest.fixture
def am(agent_fake: FakeContainerService, tmp_path: Path) -> Iterator[Manager]:
    m = make_manager(agent_fake, tmp_path)
    m._moves.store = SQLiteStore(str(tmp_path / "v.db"))
    m.init()
    yield m
    m.close()


def test_saved_client_works_after_stop_and_start(am: Manager) -> None:
    am.start("b")
    saved = am.client("b")
    saved.write_file("keep.txt", "kept")
    am.stop("b")
    with pytest.raises(errors.Unavailable, match="bot b:"):
        saved.stat("keep.txt")  # stopped: no address, and the error says which bot
    am.start("b")
    assert saved.read_text("keep.txt") == "kept"
    assert saved.exec("pwd").exit_code == 0


def test_saved_client_works_after_create_version(am: Manager) -> None:
    am.start("b")
    saved = am.client("b")
    saved.write_file("v.txt", "one")
    am.create_version("b")
    saved.write_file("v.txt", "two")
    am.rollback_version("b", 1)
    assert saved.read_text("v.txt") == "one"


def test_saved_client_works_after_an_ip_change(
    am: Manager, agent_fake: FakeContainerService
) -> None:
    am.start("b")
    saved = am.client("b")
    saved.write_file("x", "before")
    old_ip = am.container_ip("b")
    am.stop("b")
    am.start("c")  # takes the address "b" had, so "b" comes back on another one
    am.start("b")
    assert am.container_ip("b") != old_ip
    assert saved.read_text("x") == "before"


def test_saved_client_after_manager_close_is_failed_precondition(am: Manager) -> None:
    am.start("b")
    saved = am.client("b")
    assert saved.exec("true").exit_code == 0
    am.close()
    with pytest.raises(errors.FailedPrecondition, match="the Manager is closed"):
        saved.exec("true")
    with pytest.raises(errors.FailedPrecondition):
        am.client("b")
