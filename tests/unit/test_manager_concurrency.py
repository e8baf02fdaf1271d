"""Many threads hammering a few bots: no deadlock, no surprise, state agrees with the fake."""

from __future__ import annotations

import random
import threading
from collections import Counter
from pathlib import Path

from mcpmanager import FakeContainerService, Manager, errors
from mcpmanager.types import TaskStatus
from tests.fakes import make_manager

BOTS = ("a", "b", "c", "d", "e")
THREADS = 16
OPS_PER_THREAD = 250


def _worker(manager: Manager, seed: int, failures: list[BaseException], done: Counter[str]) -> None:
    rng = random.Random(seed)
    for _ in range(OPS_PER_THREAD):
        bot = rng.choice(BOTS)
        op = rng.choice(("start", "stop", "ensure", "delete", "ip", "list"))
        try:
            if op == "start":
                manager.start(bot)
            elif op == "stop":
                manager.stop(bot, timeout=0.1)
            elif op == "ensure":
                manager.ensure_bot(bot)
            elif op == "delete":
                manager.delete(bot)
            elif op == "ip":
                manager.container_ip(bot)
            else:
                assert set(manager.list_bots()) <= set(BOTS)
        except errors.NotFound:
            if op not in ("stop", "delete"):  # only these may meet a bot that is gone
                failures.append(AssertionError(f"{op} {bot}: unexpected NotFound"))
        except BaseException as exc:
            failures.append(exc)
        done[op] += 1


def test_many_threads_many_operations(fake: FakeContainerService, tmp_path: Path) -> None:
    manager = make_manager(fake, tmp_path)
    manager.init()
    failures: list[BaseException] = []
    done: Counter[str] = Counter()
    threads = [
        threading.Thread(target=_worker, args=(manager, seed, failures, done), daemon=True)
        for seed in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "deadlock: workers still running"
    assert failures == []
    assert sum(done.values()) == THREADS * OPS_PER_THREAD

    # The Manager's view agrees with the fake's.
    containers = {c.id for c in fake.list_containers()}
    assert set(manager.list_bots()) == {cid.removeprefix("mcp-") for cid in containers}
    for bot in BOTS:
        cid = manager.container_id(bot)
        running = cid in containers and any(
            t.id == cid and t.status is TaskStatus.RUNNING for t in fake.list_tasks()
        )
        assert manager.container_ip(bot) == (fake.container_ip(cid) if running else "")
        if running:
            assert manager.container_ip(bot)
    assert len(manager._locks) == 0
    manager.close()
