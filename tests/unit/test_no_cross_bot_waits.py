"""Different bots never wait on each other in the pool, the address book or the bot locks.

Each test blocks one bot ("a") inside the step that could serialize (its
address look-up, its channel state check, its client's close, its lock) on
an Event, then shows another bot ("b") goes through meanwhile.
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from mcpmanager._addresses import AddressBook
from mcpmanager._locks import KeyedLocks
from mcpmanager.client import Client, Pool
from mcpmanager.client import pool as pool_module

T = TypeVar("T")
LIMIT = 10.0  # seconds: a deadline for a step that must not block, never a pause


class Gate:
    """Holds whoever calls :meth:`block` until :meth:`open`; says when one is held."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._release = threading.Event()

    def block(self) -> None:
        self.entered.set()
        assert self._release.wait(LIMIT), "the gate was never opened"

    def open(self) -> None:
        self._release.set()


class Background:
    """Runs ``fn`` in a thread; :meth:`result` joins it with a deadline."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self.value: object = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], object]) -> None:
        try:
            self.value = fn()
        except BaseException as exc:  # handed to the test
            self.error = exc

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def result(self) -> object:
        self._thread.join(LIMIT)
        assert not self._thread.is_alive(), "still blocked"
        if self.error is not None:
            raise self.error
        return self.value


def must_not_block(fn: Callable[[], T]) -> T:
    """``fn()``, failing the test if it does not return within the deadline."""
    job = Background(fn)
    value = job.result()
    return value  # type: ignore[return-value]


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate()
    yield g
    g.open()  # never leave a thread blocked, whatever happened


def test_one_bots_address_lookup_does_not_hold_up_another(gate: Gate) -> None:
    def ip_func(bot_id: str) -> str:
        if bot_id == "a":
            gate.block()
        return "127.0.0.1"

    pool = Pool(ip_func, port=1)
    a = Background(lambda: pool.get("a"))
    assert gate.entered.wait(LIMIT)
    b = must_not_block(lambda: pool.get("b"))
    assert b.bot_id == "b"
    assert a.running  # a is still dialing
    gate.open()
    a_client = a.result()
    assert isinstance(a_client, Client)
    assert a_client.bot_id == "a"
    pool.close()


def test_one_bots_channel_state_check_does_not_hold_up_another(
    gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = Pool(lambda _bot: "127.0.0.1", port=1)
    cached_b = pool.get("b")
    pool.get("a")
    real_stale = pool_module._stale

    def stale(client: Client) -> bool:
        if client.bot_id == "a":
            gate.block()
        return real_stale(client)

    monkeypatch.setattr(pool_module, "_stale", stale)
    a = Background(lambda: pool.get("a"))
    assert gate.entered.wait(LIMIT)
    assert must_not_block(lambda: pool.get("b")) is cached_b
    assert must_not_block(lambda: pool.handle("b")).bot_id == "b"
    assert a.running
    gate.open()
    assert isinstance(a.result(), Client)
    pool.close()


def test_closing_one_bots_client_does_not_hold_up_another(gate: Gate) -> None:
    pool = Pool(lambda _bot: "127.0.0.1", port=1)
    client_a = pool.get("a")
    real_close = client_a.close

    def slow_close() -> None:
        gate.block()
        real_close()

    client_a.close = slow_close  # type: ignore[method-assign]
    removing = Background(lambda: pool.remove("a"))
    assert gate.entered.wait(LIMIT)
    assert must_not_block(lambda: pool.get("b")).bot_id == "b"
    assert must_not_block(lambda: pool.get("a")) is not client_a  # a dials afresh
    gate.open()
    removing.result()
    assert client_a.closed
    pool.close()


def test_one_bots_lock_does_not_hold_up_another(gate: Gate) -> None:
    locks = KeyedLocks()

    def hold_a() -> None:
        with locks.hold("a"):
            gate.block()

    a = Background(hold_a)
    assert gate.entered.wait(LIMIT)

    def use_b() -> int:
        with locks.hold("b"), locks.hold("b"):  # reentrant, too
            return len(locks)

    assert must_not_block(use_b) == 2
    assert a.running
    gate.open()
    a.result()
    assert len(locks) == 0


def test_address_book_serves_other_bots_while_one_resolves(gate: Gate) -> None:
    def resolve(bot_id: str) -> str:
        if bot_id == "a":
            gate.block()
        return "127.0.0.1"

    book = AddressBook(resolve, 1, logging.getLogger("test"))
    a = Background(lambda: book.client("a"))
    assert gate.entered.wait(LIMIT)

    def use_b() -> str:
        book.put("b", "127.0.0.2")
        handle = book.client("b")
        book.put("b", "127.0.0.3")  # an IP change drops b's client, not a's dial
        book.forget("b")
        return handle.bot_id

    assert must_not_block(use_b) == "b"
    assert book.ip("b") == ""
    assert a.running
    gate.open()
    assert a.result() is not None
    book.close()


def test_cni_runner_serializes_one_container_only(tmp_path: Path) -> None:
    from mcpmanager import cni
    from mcpmanager.cni.runner import CNIRunner

    conf = {"cniVersion": "0.4.0", "name": "net", "type": "bridge", "bridge": "br9"}
    (tmp_path / "10-net.conf").write_text(json.dumps(conf))
    network = cni.load_network_config(tmp_path)
    runner = CNIRunner(network, str(tmp_path), cache_dir=tmp_path / "cache")
    other = CNIRunner(network, str(tmp_path), cache_dir=tmp_path / "cache")

    # A container whose cache path hashes like a's into 64 buckets: with shared,
    # hashed locks (as before) it would wait for a; with a lock per entry it must not.
    def bucket(cid: str) -> int:
        return zlib.crc32(runner.cache.path(network.name, cid, runner.ifname).encode()) % 64

    b = next(f"mcp-b{i}" for i in range(10_000) if bucket(f"mcp-b{i}") == bucket("mcp-a"))
    held = threading.Event()
    release = threading.Event()

    def hold_a() -> None:
        with runner._lock("mcp-a"):
            held.set()
            release.wait(LIMIT)

    thread = threading.Thread(target=hold_a)
    thread.start()
    try:
        assert held.wait(LIMIT)
        done = threading.Event()

        def take_b() -> None:
            with other._lock(b):  # a different container: no wait
                done.set()

        threading.Thread(target=take_b).start()
        assert done.wait(LIMIT), "container b waited for container a's network step"
        blocked = threading.Event()

        def take_a_again() -> None:
            with other._lock("mcp-a"):  # the same container, another runner: waits
                blocked.set()

        waiter = threading.Thread(target=take_a_again)
        waiter.start()
        assert not blocked.wait(0.2)  # still held by hold_a (a bounded check, not a sync)
    finally:
        release.set()
        thread.join(LIMIT)
    waiter.join(LIMIT)
    assert blocked.is_set()
