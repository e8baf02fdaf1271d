"""A bot on a real private dockerd, reached over its bridge network: the whole path, in order.

Runs inside the network namespace tests/integration/test_docker_e2e.py made. The tests
share one bot and run in file order; each step leaves it running.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator

import attrs
import pytest

from mcpmanager import Manager, ManagerConfig, errors
from mcpmanager.client import Client
from mcpmanager.docker import DockerService
from mcpmanager.store import SQLiteStore
from tests.harness.archives import tgz
from tests.harness.common import wait_for
from tests.harness.docker import DockerDaemon
from tests.harness.e2e import AGENT_REF, agent_image_archive, agent_mounts

pytestmark = pytest.mark.integration

BOT = "alpha"
NETWORK = "mcpe2e"


@attrs.define
class World:
    """What every step uses."""

    daemon: DockerDaemon
    root: str
    manager: Manager
    ip: str = ""

    def new_manager(self) -> Manager:
        """A Manager as a new process would make it: own service and store, no cache."""
        service = DockerService(self.daemon.base_url, network=NETWORK)
        store = SQLiteStore(os.path.join(self.root, "versions.db"))
        return Manager(service, self.manager.config, store=store, owns_service=True)


@pytest.fixture(scope="module")
def world(docker_daemon: DockerDaemon) -> Iterator[World]:
    root = tempfile.mkdtemp(prefix="mcpm-dk-e2e-")
    service = DockerService(docker_daemon.base_url, network=NETWORK)
    service.import_image(agent_image_archive(os.path.join(root, "agent.tar")))
    config = ManagerConfig(
        image=AGENT_REF,
        data_root=os.path.join(root, "data"),
        extra_mounts=agent_mounts(),
        env=("MCPM_E2E_MARK=from-config",),
    )
    store = SQLiteStore(os.path.join(root, "versions.db"))
    manager = Manager(service, config, store=store, owns_service=True)
    try:
        yield World(docker_daemon, root, manager)
    finally:
        for bot in manager.list_bots():
            manager.delete(bot)
        manager.close()
        shutil.rmtree(root, ignore_errors=True)


def agent_ready(manager: Manager, bot: str, timeout: float = 60.0) -> Client:
    """Wait until the bot's agent answers ``exec("true")``; return its client."""

    def answers() -> bool:
        try:
            return manager.client(bot).exec("true", timeout=5).exit_code == 0
        except (errors.Unavailable, errors.DeadlineExceeded):
            return False

    wait_for(answers, timeout=timeout, interval=0.1, what=f"the agent of bot {bot}")
    return manager.client(bot)


def cat(client: Client, path: str) -> str:
    return client.exec(f"cat {path}").stdout


def test_start_gets_an_address_and_exec_works(world: World) -> None:
    world.manager.start(BOT)
    world.ip = world.manager.container_ip(BOT)
    assert world.ip
    client = agent_ready(world.manager, BOT)
    result = client.exec("echo hi; echo $MCPM_E2E_MARK")
    assert (result.stdout, result.exit_code) == ("hi\nfrom-config\n", 0)
    assert "mcpmanager.agent" in client.exec("cat /proc/1/cmdline | tr '\\0' ' '").stdout


def test_data_survives_stop_and_start(world: World) -> None:
    client = world.manager.client(BOT)
    client.write_file("/data/notes.txt", "written over gRPC\n")
    assert client.exec("echo from-exec > /data/exec.txt").exit_code == 0
    world.manager.stop(BOT, timeout=5)
    assert world.manager.container_ip(BOT) == ""
    world.manager.start(BOT)
    client = agent_ready(world.manager, BOT)
    assert cat(client, "/data/notes.txt") == "written over gRPC\n"
    assert cat(client, "/data/exec.txt") == "from-exec\n"


def test_export_and_import_through_the_agent(world: World) -> None:
    out = io.BytesIO()
    assert world.manager.export_data(BOT, out) > 0
    out.seek(0)
    with tarfile.open(fileobj=out, mode="r:gz") as tar:
        names = {m.name.lstrip("./") for m in tar.getmembers() if m.isfile()}
    assert {"notes.txt", "exec.txt"} <= names
    world.manager.import_data(BOT, tgz({"imported/hello.txt": b"imported\n"}))
    client = agent_ready(world.manager, BOT)
    assert cat(client, "/data/imported/hello.txt") == "imported\n"


def test_versions_and_rollback(world: World) -> None:
    v1 = world.manager.create_version(BOT)
    client = agent_ready(world.manager, BOT)
    assert cat(client, "/data/notes.txt") == "written over gRPC\n"
    client.write_file("/data/notes.txt", "after v1\n")
    v2 = world.manager.create_version(BOT)
    assert [v.version for v in world.manager.list_versions(BOT)] == [v1.version, v2.version]
    world.manager.rollback_version(BOT, v1.version)
    client = agent_ready(world.manager, BOT)
    assert cat(client, "/data/notes.txt") == "written over gRPC\n"
    snaps = world.manager.list_bot_snapshot_data(BOT).runtime_snapshots
    actives = [s.name for s in snaps if s.kind == "active"]
    assert actives == [world.manager.service.get_container(f"mcp-{BOT}").snapshot_key]


def test_a_new_manager_finds_the_bot(world: World) -> None:
    with world.new_manager() as other:
        assert other.list_bots() == [BOT]
        assert other.container_ip(BOT)
        assert cat(other.client(BOT), "/data/exec.txt") == "from-exec\n"
        assert len(other.list_versions(BOT)) == 2


def test_delete_with_preserve_then_restore(world: World) -> None:
    world.manager.delete(BOT, preserve_data=True)
    assert world.manager.has_preserved_data(BOT)
    assert world.manager.list_bots() == []
    snaps = world.manager.service.list_snapshots("overlayfs")
    assert [s for s in snaps if s.kind == "active"] == []
    world.manager.start(BOT)
    client = agent_ready(world.manager, BOT)
    assert client.exec("ls /data").stdout == ""
    world.manager.restore_preserved_data(BOT)
    assert not world.manager.has_preserved_data(BOT)
    client = agent_ready(world.manager, BOT)
    assert cat(client, "/data/notes.txt") == "written over gRPC\n"
    assert cat(client, "/data/imported/hello.txt") == "imported\n"


def test_delete_leaves_no_container(world: World) -> None:
    world.manager.delete(BOT)
    assert world.manager.list_bots() == []
    assert world.manager.container_ip(BOT) == ""
    assert world.manager.service.list_containers() == []
