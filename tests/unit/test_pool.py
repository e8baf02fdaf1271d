"""The client pool: one channel per bot, dialled once, replaced when it goes bad."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from mcpmanager import errors
from mcpmanager.agent import AgentServer
from mcpmanager.client import Client, Pool
from mcpmanager.client import pool as pool_module
from tests.harness.common import wait_for


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentServer]:
    with AgentServer(root=str(tmp_path), listen="127.0.0.1:0") as server:
        yield server


class CountingIPs:
    """An ``ip_func`` that counts its calls and can be slowed down."""

    def __init__(self, ip: str = "127.0.0.1", delay: float = 0.0) -> None:
        self.ips: dict[str, str] = {}
        self.default = ip
        self.delay = delay
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, bot_id: str) -> str:
        with self.lock:
            self.calls.append(bot_id)
        if self.delay:
            time.sleep(self.delay)
        return self.ips.get(bot_id, self.default)


def test_get_dials_once_and_caches(agent: AgentServer) -> None:
    ips = CountingIPs()
    pool = Pool(ips, port=agent.port)
    client = pool.get("alpha")
    assert isinstance(client, Client)
    assert client.bot_id == "alpha"
    assert client.target == f"127.0.0.1:{agent.port}"
    assert pool.get("alpha") is client
    assert ips.calls == ["alpha"]
    assert client.exec("echo hi").stdout == "hi\n"
    assert pool.get("alpha") is client  # READY is not stale
    assert "alpha" in pool
    assert len(pool) == 1
    pool.close_all()


def test_default_port_is_9090() -> None:
    pool = Pool(lambda _bot: "10.1.2.3")
    assert pool.port == 9090
    assert pool.get("b").target == "10.1.2.3:9090"
    pool.close_all()


def test_ipv6_targets_are_bracketed() -> None:
    pool = Pool(lambda _bot: "fd00::5", port=9090)
    assert pool.get("b").target == "[fd00::5]:9090"
    pool.close_all()


def test_unknown_ip_is_unavailable_naming_the_bot() -> None:
    ips = CountingIPs(ip="")
    pool = Pool(ips)
    with pytest.raises(errors.Unavailable, match="bot nobody:"):
        pool.get("nobody")
    with pytest.raises(errors.Unavailable):
        pool.get("nobody")
    assert ips.calls == ["nobody", "nobody"]  # a failure is not cached
    assert len(pool) == 0


def test_concurrent_first_gets_dial_once(agent: AgentServer) -> None:
    ips = CountingIPs(delay=0.2)
    pool = Pool(ips, port=agent.port)
    barrier = threading.Barrier(32)
    got: list[Client] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        client = pool.get("same")
        with lock:
            got.append(client)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ips.calls == ["same"]
    assert len(got) == 32
    assert all(c is got[0] for c in got)
    pool.close_all()


def test_different_bots_do_not_wait_on_each_other() -> None:
    release, entered = threading.Event(), threading.Event()

    def ip_func(bot_id: str) -> str:
        if bot_id == "slow":
            entered.set()
            release.wait(10)
        return "127.0.0.1"

    pool = Pool(ip_func)
    slow = threading.Thread(target=pool.get, args=("slow",))
    slow.start()
    assert entered.wait(10)
    pool.get("fast")
    assert slow.is_alive()  # "fast" did not wait for the other bot's dial
    release.set()
    slow.join()
    assert len(pool) == 2
    pool.close_all()


def test_remove_and_close_all_close_clients() -> None:
    ips = CountingIPs()
    pool = Pool(ips)
    a, b = pool.get("a"), pool.get("b")
    pool.remove("a")
    pool.remove("a")  # unknown: nothing happens
    assert a.closed
    assert not b.closed
    a2 = pool.get("a")
    assert a2 is not a
    pool.close_all()
    assert a2.closed
    assert b.closed
    assert len(pool) == 0
    assert not pool.get("b").closed  # still usable, like memoh's
    pool.close_all()


def test_remove_during_a_dial_makes_it_look_again() -> None:
    pool: Pool
    answers = iter(["127.0.0.2", "127.0.0.3"])
    calls: list[str] = []

    def ip_func(bot_id: str) -> str:
        ip = next(answers)
        calls.append(ip)
        if len(calls) == 1:
            pool.remove(bot_id)  # e.g. the Manager saw the IP change meanwhile
        return ip

    pool = Pool(ip_func, port=1234)
    assert pool.get("moving").target == "127.0.0.3:1234"
    assert calls == ["127.0.0.2", "127.0.0.3"]
    pool.close_all()


def test_a_channel_whose_server_went_away_is_replaced(tmp_path: Path) -> None:
    first = AgentServer(root=str(tmp_path), listen="127.0.0.1:0")
    first.start()
    port = first.port
    pool = Pool(lambda _bot: "127.0.0.1", port=port)
    client = pool.get("bot")
    assert client.exec("echo one").stdout == "one\n"
    first.stop(0)
    with pytest.raises(errors.Unavailable, match="bot bot:"):
        client.stat("/data", timeout=5)

    def replaced() -> Client | None:
        fresh = pool.get("bot")
        return fresh if fresh is not client else None

    fresh = wait_for(replaced, timeout=15, what="the failed channel to be replaced")
    assert client.closed
    second = AgentServer(root=str(tmp_path), listen=f"127.0.0.1:{port}")
    second.start()
    try:
        result = wait_for(
            lambda: _try_exec(pool.get("bot"), "echo two"), timeout=15, what="the new agent"
        )
        assert result == "two\n"
        assert fresh.target == client.target
    finally:
        second.stop(0)
        pool.close_all()


def _try_exec(client: Client, command: str) -> str | None:
    try:
        return client.exec(command).stdout
    except errors.Unavailable:
        return None


@pytest.mark.parametrize(
    "state", [grpc.ChannelConnectivity.TRANSIENT_FAILURE, grpc.ChannelConnectivity.SHUTDOWN]
)
def test_failed_or_shut_down_channels_are_replaced(
    monkeypatch: pytest.MonkeyPatch, state: grpc.ChannelConnectivity
) -> None:
    pool = Pool(lambda _bot: "127.0.0.1")
    client = pool.get("bot")
    monkeypatch.setattr(Client, "_connectivity", lambda self: state if self is client else None)
    fresh = pool.get("bot")
    assert fresh is not client
    assert client.closed
    assert pool.get("bot") is fresh
    pool.close_all()


def test_a_channel_connecting_too_long_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [time.monotonic()]  # the clock clients are stamped with at creation
    monkeypatch.setattr(pool_module, "_clock", lambda: now[0])
    pool = Pool(lambda _bot: "127.0.0.1")
    client = pool.get("bot")
    monkeypatch.setattr(
        Client,
        "_connectivity",
        lambda self: grpc.ChannelConnectivity.CONNECTING if self is client else None,
    )
    assert pool.get("bot") is client  # connecting, but not for long yet
    now[0] += pool_module.CONNECTING_TIMEOUT + 1
    fresh = pool.get("bot")
    assert fresh is not client
    assert client.closed
    pool.close_all()


def test_connectivity_is_read_without_connecting() -> None:
    client = Client("127.0.0.1:1")
    assert client._connectivity() is grpc.ChannelConnectivity.IDLE
    client.close()


def test_many_threads_getting_and_removing(agent: AgentServer) -> None:
    pool = Pool(CountingIPs(), port=agent.port)
    bots = [f"bot{i}" for i in range(5)]
    failures: list[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(50):
                bot = rng.choice(bots)
                if rng.random() < 0.2:
                    pool.remove(bot)
                else:
                    client = pool.get(bot)
                    assert client.bot_id == bot
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    for bot in bots:
        assert pool.get(bot).stat("/data").is_dir
    assert not pool._dials  # no per-bot dial state is left behind
    pool.close_all()
