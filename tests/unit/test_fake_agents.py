"""The fake with real agents: clients, the gRPC fallback for /data, versions via the agent."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcpmanager import FakeContainerService, Manager, errors
from mcpmanager.store import SQLiteStore
from mcpmanager.types import TaskStatus
from tests.fakes import make_manager


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


def read(manager: Manager, bot: str, path: str) -> str:
    return b"".join(manager.client(bot).read_raw(path)).decode()


def test_client_exec_and_files(am: Manager) -> None:
    am.start("b")
    client = am.client("b")
    assert client is am.client("b")  # one client per bot
    client.write_file("/data/hello.txt", "hi there")
    assert read(am, "b", "/data/hello.txt") == "hi there"
    result = client.exec("echo out; echo err >&2; exit 3")
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 3)


def test_a_client_after_a_restart_works(am: Manager) -> None:
    am.start("b")
    am.client("b")
    am.stop("b")
    with pytest.raises(errors.Unavailable, match="b"):
        am.client("b")  # a stopped bot has no IP
    am.start("b")
    second = am.client("b")  # a new client, or the same one that follows the bot
    assert second.exec("true").exit_code == 0


def test_grpc_fallback_round_trip(agent_fake: FakeContainerService, am: Manager) -> None:
    agent_fake.mounts_supported = False
    am.start("src")
    am.client("src").write_file("/data/notes/a.txt", "alpha")
    am.client("src").mkdir("/data/empty")
    pid = agent_fake.get_task_info("mcp-src").pid
    buf = io.BytesIO()
    am.export_data("src", buf)
    assert agent_fake.get_task_info("mcp-src").pid == pid  # the fallback does not stop the bot
    buf.seek(0)
    with tarfile.open(fileobj=buf, mode="r:gz") as tar:
        assert {"notes", "notes/a.txt", "empty"} <= set(tar.getnames())
    buf.seek(0)
    am.start("dst")
    am.import_data("dst", buf)
    assert read(am, "dst", "/data/notes/a.txt") == "alpha"


def test_grpc_fallback_preserve_and_restore(agent_fake: FakeContainerService, am: Manager) -> None:
    agent_fake.mounts_supported = False
    am.start("b")
    am.client("b").write_file("/data/keep.txt", "kept")
    am.delete("b", preserve_data=True)
    assert am.has_preserved_data("b")
    am.start("b")
    am.restore_preserved_data("b")
    assert read(am, "b", "/data/keep.txt") == "kept"
    assert not am.has_preserved_data("b")


def test_grpc_fallback_backup_failure_keeps_bot(
    agent_fake: FakeContainerService, am: Manager
) -> None:
    agent_fake.mounts_supported = False
    am.start("b")
    am.client("b").write_file("/data/keep.txt", "kept")
    agent_fake.stop_container("mcp-b")  # the agent is gone, so the backup cannot be read
    with pytest.raises(errors.DataLossPrevented):
        am.delete("b", preserve_data=True)
    assert am.list_bots() == ["b"]
    assert not am.has_preserved_data("b")


def test_versions_seen_through_the_agent(am: Manager, agent_fake: FakeContainerService) -> None:
    am.start("b")
    for n in (1, 2):
        am.client("b").write_file("/data/v.txt", f"version {n}")
        am.create_version("b")
    am.client("b").write_file("/data/v.txt", "latest")
    am.rollback_version("b", 1)
    assert read(am, "b", "/data/v.txt") == "version 1"
    am.rollback_version("b", 2)
    assert read(am, "b", "/data/v.txt") == "version 2"
    assert agent_fake.get_task_info("mcp-b").status is TaskStatus.RUNNING


def test_a_bots_commands_volunteer_for_the_oom_killer(am: Manager) -> None:
    # Confined (bubblewrap) or not, the command, not the agent, is killed first.
    am.start("b")
    result = am.client("b").exec("cat /proc/self/oom_score_adj; exit 3")
    assert (result.stdout, result.exit_code) == ("1000\n", 3)
    assert am.client("b").exec("echo $?").stdout == "0\n"  # the prefix leaves $? alone
