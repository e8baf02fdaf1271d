"""A bot on real containerd, reached over its bridge: the whole path, in order.

Runs inside the network namespace tests/integration/test_e2e.py made (so the bridge, the
veths and every address exist only there). The Manager, containerd (a private
one, started here), the CNI plugins and the gRPC client all run in it. The
tests share one bot and run in file order; each step leaves it running.
"""

from __future__ import annotations

import io
import ipaddress
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator

import attrs
import pytest

from mcpmanager import Manager, ManagerConfig
from mcpmanager.client import Client
from mcpmanager.containerd import ContainerdService
from mcpmanager.types import TaskStatus
from tests.harness.archives import tgz
from tests.harness.common import wait_for
from tests.harness.containerd import ContainerdDaemon
from tests.harness.e2e import (
    AGENT_REF,
    E2E_SUBNET,
    E2EDir,
    agent_image_archive,
    agent_mounts,
)
from tests.integration.e2e.conftest import E2E_DIR_ENV

pytestmark = pytest.mark.integration

BOT = "alpha"
ENV_MARK = "MCPM_E2E_MARK=from-config"


@attrs.define
class World:
    """What every step uses."""

    dir: E2EDir
    socket: str
    namespace: str
    manager: Manager
    ip: str = ""

    def new_manager(self) -> Manager:
        """A Manager as a new process would make it: own service, empty IP cache."""
        service = ContainerdService(self.socket, self.namespace, cni_cache_dir=self.dir.cache_dir)
        return Manager(service, self.manager.config, owns_service=True)


def _config(d: E2EDir) -> ManagerConfig:
    return ManagerConfig(
        image=AGENT_REF,
        data_root=d.data_root,
        cni_bin_dir=d.bin_dir,
        cni_conf_dir=d.conf_dir,
        extra_mounts=agent_mounts(),
        env=(ENV_MARK,),
    )


@pytest.fixture(scope="module")
def world(containerd_daemon: ContainerdDaemon, containerd_namespace: str) -> Iterator[World]:
    d = E2EDir(os.environ[E2E_DIR_ENV])
    service = ContainerdService(
        containerd_daemon.socket, containerd_namespace, cni_cache_dir=d.cache_dir
    )
    workdir = tempfile.mkdtemp(prefix="mcpm-e2e-img-")
    try:
        service.import_image(agent_image_archive(os.path.join(workdir, "agent.tar")))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    manager = Manager(service, _config(d), owns_service=True)
    try:
        yield World(d, containerd_daemon.socket, containerd_namespace, manager)
    finally:
        for bot in manager.list_bots():
            manager.delete(bot)
        manager.close()


def raw(client: Client, path: str) -> bytes:
    """The exact bytes of a file in the container (read_file numbers its lines)."""
    return b"".join(client.read_raw(path))


def veths() -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [n for n in names if n.startswith("veth")]


def test_start_gets_an_address_and_exec_works(world: World) -> None:
    world.manager.start(BOT)
    world.ip = world.manager.container_ip(BOT)
    assert ipaddress.ip_address(world.ip) in ipaddress.ip_network(E2E_SUBNET)
    result = world.manager.client(BOT).exec("echo hi")
    assert (result.stdout, result.stderr, result.exit_code) == ("hi\n", "", 0)
    env = world.manager.client(BOT).exec("echo $MCPM_E2E_MARK; cat /proc/1/cmdline | tr '\\0' ' '")
    assert env.stdout.splitlines()[0] == "from-config"
    assert "mcpmanager.agent" in env.stdout
    assert world.dir.allocations() == [world.ip]
    assert len(veths()) == 1


def test_data_survives_stop_and_start(world: World) -> None:
    client = world.manager.client(BOT)
    client.write_file("/data/notes.txt", "written over gRPC\n")
    assert client.exec("echo from-exec > /data/exec.txt").exit_code == 0
    world.manager.stop(BOT, timeout=5)
    assert world.manager.container_ip(BOT) == ""
    assert world.dir.allocations() == []
    world.manager.start(BOT)
    world.ip = world.manager.container_ip(BOT)
    client = world.manager.client(BOT)
    assert raw(client, "/data/notes.txt") == b"written over gRPC\n"
    assert client.exec("cat /data/exec.txt").stdout == "from-exec\n"


def test_export_and_import_on_the_overlay_snapshot(world: World) -> None:
    out = io.BytesIO()
    assert world.manager.export_data(BOT, out) > 0
    out.seek(0)
    with tarfile.open(fileobj=out, mode="r:gz") as tar:
        names = {m.name.lstrip("./") for m in tar.getmembers() if m.isfile()}
    assert {"notes.txt", "exec.txt"} <= names
    world.manager.import_data(BOT, tgz({"imported/hello.txt": b"imported\n"}))
    world.ip = world.manager.container_ip(BOT)
    assert world.ip
    client = world.manager.client(BOT)
    assert client.exec("cat /data/imported/hello.txt").stdout == "imported\n"
    assert raw(client, "/data/notes.txt") == b"written over gRPC\n"


def test_a_new_manager_finds_the_ip_in_the_cni_cache(world: World) -> None:
    calls = len(world.dir.calls())
    with world.new_manager() as other:
        assert other.container_ip(BOT) == world.ip
        assert other.client(BOT).exec("cat /data/exec.txt").stdout == "from-exec\n"
    assert world.dir.calls()[calls:] == [], "recovering the IP ran CNI plugins"


def test_delete_with_preserve_then_restore(world: World) -> None:
    world.manager.delete(BOT, preserve_data=True)
    assert world.manager.has_preserved_data(BOT)
    assert world.manager.list_bots() == []
    assert world.dir.allocations() == []
    assert world.dir.cache_entries() == []
    assert veths() == []

    world.manager.start(BOT)
    assert world.manager.client(BOT).exec("ls /data").stdout == ""
    world.manager.restore_preserved_data(BOT)
    assert not world.manager.has_preserved_data(BOT)
    world.ip = world.manager.container_ip(BOT)
    client = world.manager.client(BOT)
    assert raw(client, "/data/notes.txt") == b"written over gRPC\n"
    assert client.exec("cat /data/imported/hello.txt").stdout == "imported\n"


def test_delete_leaves_no_veth_allocation_or_cache_entry(world: World) -> None:
    world.manager.delete(BOT)
    assert world.manager.list_bots() == []
    assert world.manager.container_ip(BOT) == ""
    assert world.dir.allocations() == []
    assert world.dir.cache_entries() == []
    assert veths() == []


def test_a_bot_on_a_shared_shim_comes_back_after_the_shim_dies(world: World) -> None:
    service = ContainerdService(
        world.socket, world.namespace, cni_cache_dir=world.dir.cache_dir, shim_groups=1
    )
    bot = "grouped"
    with Manager(service, world.manager.config, owns_service=True) as manager:
        try:
            manager.start(bot)
            cid = manager.container_id(bot)
            with open(f"/proc/{service.get_task_info(cid).pid}/stat") as f:
                shim = int(f.read().rsplit(")", 1)[1].split()[1])
            os.kill(shim, signal.SIGKILL)
            wait_for(
                lambda: manager.status(bot).status is not TaskStatus.RUNNING,
                timeout=30,
                what="the bot to be seen stopped",
            )
            manager.start(bot)
            assert manager.client(bot).exec("echo back").stdout == "back\n"
        finally:
            manager.delete(bot)
    assert world.dir.allocations() == []
    assert world.dir.cache_entries() == []
    assert veths() == []
