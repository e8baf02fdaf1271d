"""Every record of the mcpmanager logger tree carries ``bot_id``, so any formatter works."""

from __future__ import annotations

import importlib
import io
import logging
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import mcpmanager
from mcpmanager import FakeContainerService, Manager, ManagerConfig
from mcpmanager._log import BotIdFilter, bot_context, get_logger
from mcpmanager.store import SQLiteStore

FORMAT = "%(levelname)s %(name)s [%(bot_id)s] %(message)s"


class _Collect(logging.Handler):
    """Formats every record with FORMAT (raising on a missing field) and keeps both."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter(FORMAT))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # KeyError-free only if bot_id is there
        self.records.append(record)

    def handleError(self, record: logging.LogRecord) -> None:
        raise AssertionError(f"record {record.name}: {record.msg!r} cannot be formatted")


@pytest.fixture
def collect() -> Iterator[_Collect]:
    root = logging.getLogger("mcpmanager")
    handler = _Collect()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def test_whole_lifecycle_formats_with_bot_id(collect: _Collect, tmp_path: Path) -> None:
    fake = FakeContainerService(root=tmp_path / "fake", agents=True)
    store = SQLiteStore(str(tmp_path / "v.db"))
    config = ManagerConfig(data_root=str(tmp_path / "data"))
    with Manager(fake, config, store=store, owns_service=True) as manager:
        manager.init()
        manager.start("alice")
        client = manager.client("alice")
        client.write_file("/data/a.txt", "one")
        assert client.exec("cat a.txt").stdout == "one"  # the command runs in /data
        v = manager.create_version("alice")
        manager.client("alice").write_file("/data/a.txt", "two")  # a version restarts the bot
        manager.rollback_version("alice", v.version)
        manager.export_data("alice", io.BytesIO())
        manager.delete("alice", preserve_data=True)
        manager.start("alice")
        manager.restore_preserved_data("alice")
        manager.delete("alice")
    store.close()
    assert collect.records, "the lifecycle logged nothing"
    names = {r.name for r in collect.records}
    assert "mcpmanager" in names
    assert all(isinstance(getattr(r, "bot_id", None), str) for r in collect.records)
    assert any(r.bot_id == "alice" for r in collect.records)  # type: ignore[attr-defined]
    assert not any("[bot alice]" in r.getMessage() for r in collect.records)


def test_record_outside_a_bot_operation_has_an_empty_bot_id(collect: _Collect) -> None:
    get_logger("mcpmanager.store").info("no bot here")
    logging.getLogger("mcpmanager.agent").info("plain logger, no bot")
    assert [getattr(r, "bot_id", None) for r in collect.records] == ["", ""]


def test_plain_package_logger_takes_the_current_bot(collect: _Collect) -> None:
    with bot_context("bob"):
        logging.getLogger("mcpmanager.agent").warning("inside an operation")
    assert collect.records[0].bot_id == "bob"  # type: ignore[attr-defined]
    assert collect.lines == ["WARNING mcpmanager.agent [bob] inside an operation"]


def test_every_package_logger_has_the_filter() -> None:
    for info in pkgutil.walk_packages(mcpmanager.__path__, "mcpmanager."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
    loggers = {
        name: obj
        for name, obj in logging.Logger.manager.loggerDict.items()
        if (name == "mcpmanager" or name.startswith("mcpmanager."))
        and isinstance(obj, logging.Logger)
    }
    missing = [
        n for n, lg in loggers.items() if not any(isinstance(f, BotIdFilter) for f in lg.filters)
    ]
    assert not missing, f"loggers without BotIdFilter (add them to PACKAGE_LOGGERS): {missing}"
