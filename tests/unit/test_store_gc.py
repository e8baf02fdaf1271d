"""The collector pause of the store's listings: it always gives the collector back."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from mcpmanager.store import SQLiteStore, _gc

CID = "mcp-bot1"


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    try:
        yield
    finally:
        gc.enable()


def test_pause_switches_the_collector_off_then_on() -> None:
    with _gc.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_pause_restores_the_collector_after_an_error() -> None:
    with pytest.raises(RuntimeError), _gc.paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with _gc.paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_overlapping_pauses_share_one_switch() -> None:
    """The first to leave must not switch the collector on under the other's feet."""
    inside, leave = threading.Event(), threading.Event()
    seen: list[bool] = []

    def other() -> None:
        with _gc.paused():
            inside.set()
            leave.wait(10)
            seen.append(gc.isenabled())

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert inside.wait(10)
        with _gc.paused():
            pass
        assert not gc.isenabled()  # the other thread is still inside
    finally:
        leave.set()
        thread.join(10)
    assert seen == [False]
    assert gc.isenabled()


def test_listing_versions_gives_the_collector_back() -> None:
    with SQLiteStore(":memory:") as store:
        store.upsert_container(CID, "bot1", "img", "overlayfs")
        store.record_snapshot(CID, "s1", snapshotter="overlayfs")
        assert [v.version for v in store.list_versions(CID)] == [1]
        assert gc.isenabled()
        gc.disable()
        assert [v.version for v in store.list_versions(CID)] == [1]
        assert not gc.isenabled()
