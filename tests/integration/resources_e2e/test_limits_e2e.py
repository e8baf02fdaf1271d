"""Limits and metrics of bots on real containerd, read back from the kernel's cgroups.

Runs inside the network namespace tests/integration/test_resources_e2e.py made. Each bot
runs our agent (the host's Python bind-mounted), so commands are run through
``exec`` as a user's would be. Works on cgroup v1 and v2 hosts: the task's
cgroup is found through ``/proc/<pid>/cgroup``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from mcpmanager import Manager, ManagerConfig
from mcpmanager.client import ExecTimedOut
from mcpmanager.containerd import ContainerdService
from mcpmanager.store import SQLiteStore
from mcpmanager.types import BotOptions, ResourceLimits
from tests.harness.containerd import ContainerdDaemon
from tests.harness.e2e import AGENT_REF, E2EDir, agent_image_archive, agent_mounts
from tests.integration.e2e.conftest import E2E_DIR_ENV

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
PIDS = 160
"""Room for the agent (its gRPC server holds ~60 threads after some use) and a few commands."""
LIMITS = ResourceLimits(cpu_millicores=200, memory_bytes=64 * MIB, pids=PIDS)
CGROUP_ROOT = "/sys/fs/cgroup"


@attrs.define
class World:
    """The shared containerd, its socket and namespace, and a Manager with a version store."""

    dir: E2EDir
    socket: str
    namespace: str
    manager: Manager
    db: str

    def new_manager(self) -> Manager:
        """A Manager as a new process would make it."""
        service = ContainerdService(self.socket, self.namespace, cni_cache_dir=self.dir.cache_dir)
        return Manager(service, self.manager.config, store=SQLiteStore(self.db), owns_service=True)


@pytest.fixture(scope="module")
def world(
    containerd_daemon: ContainerdDaemon,
    containerd_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    d = E2EDir(os.environ[E2E_DIR_ENV])
    service = ContainerdService(
        containerd_daemon.socket, containerd_namespace, cni_cache_dir=d.cache_dir
    )
    workdir = tempfile.mkdtemp(prefix="mcpm-res-img-")
    try:
        service.import_image(agent_image_archive(os.path.join(workdir, "agent.tar")))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    config = ManagerConfig(
        image=AGENT_REF,
        data_root=d.data_root,
        cni_bin_dir=d.bin_dir,
        cni_conf_dir=d.conf_dir,
        extra_mounts=agent_mounts(),
    )
    db = str(tmp_path_factory.mktemp("store") / "versions.db")
    manager = Manager(service, config, store=SQLiteStore(db), owns_service=True)
    try:
        yield World(d, containerd_daemon.socket, containerd_namespace, manager, db)
    finally:
        for bot in manager.list_bots():
            manager.delete(bot)
        manager.close()


def cgroup_file(pid: int, controller: str, v1_name: str, v2_name: str) -> str:
    """The content of a cgroup file of process ``pid`` (v1 per-controller, or v2 unified)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        names = controllers.split(",")
        if controller in names:
            base = os.path.join(CGROUP_ROOT, controllers, path.lstrip("/"))
            if not os.path.isdir(base):  # mounted under a combined name (cpu,cpuacct)
                base = os.path.join(CGROUP_ROOT, controller, path.lstrip("/"))
            return Path(base, v1_name).read_text().strip()
        if controllers == "" and os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
            return Path(CGROUP_ROOT, path.lstrip("/"), v2_name).read_text().strip()
    raise AssertionError(f"no {controller} cgroup for pid {pid}")


def test_cgroup_holds_exactly_the_limits(world: World) -> None:
    world.manager.start("lim", BotOptions(limits=LIMITS))
    pid = world.manager.status("lim").pid
    memory = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")
    assert int(memory) == 64 * MIB
    quota = cgroup_file(pid, "cpu", "cpu.cfs_quota_us", "cpu.max")
    period = cgroup_file(pid, "cpu", "cpu.cfs_period_us", "cpu.max")
    assert (quota.split()[0], period.split()[-1]) == ("20000", "100000")
    assert cgroup_file(pid, "pids", "pids.max", "pids.max") == str(PIDS)


def test_allocating_past_the_memory_limit_is_killed(world: World) -> None:
    client = world.manager.client("lim")
    # The agent holds ~20 MiB of the 64; it makes every command the OOM killer's
    # first choice, so the allocation, not the agent, is what gets killed.
    hog = f"exec {sys.executable} -c \"b = b'x' * (200 * 1024 * 1024); print('survived')\""
    result = client.exec(hog, timeout=60)
    assert "survived" not in result.stdout
    assert result.exit_code in (137, -1), result
    assert client.exec("echo alive").stdout == "alive\n"  # the bot itself lives on


def test_pids_limit_stops_a_fork_loop(world: World) -> None:
    client = world.manager.client("lim")
    pid = world.manager.status("lim").pid
    before = int(cgroup_file(pid, "pids", "pids.current", "pids.current"))
    loop = "i=0; while [ $i -lt 300 ]; do sleep 3 & i=$((i+1)); done; wait; echo looped"
    try:
        result = client.exec(loop, timeout=60)
    except ExecTimedOut:  # killed with its process group: bounded either way
        result = None
    if result is not None:
        assert "fork" in result.stderr.lower() or "unavailable" in result.stderr.lower()
    assert int(cgroup_file(pid, "pids", "pids.current", "pids.current")) <= PIDS
    assert before < PIDS


def test_agent_recovers_after_a_fork_loop(world: World) -> None:
    # The loop's background sleeps outlive their shell and come to the agent
    # (the container's PID 1) as orphans: it must reap them, or each stays a
    # zombie counting against the pids limit for the life of the bot.
    pid = world.manager.status("lim").pid
    try:
        current = int(cgroup_file(pid, "pids", "pids.current", "pids.current"))
        deadline = time.monotonic() + 15
        while current > 40 and time.monotonic() < deadline:  # the loop's sleeps are reaped
            current = int(cgroup_file(pid, "pids", "pids.current", "pids.current"))
        assert current <= 40
    finally:  # the later steps need a healthy bot either way
        world.manager.stop("lim", timeout=5)
        world.manager.start("lim")


def test_busy_bot_uses_more_than_an_idle_one(world: World) -> None:
    world.manager.start("idle")
    busy_client = world.manager.client("lim")
    burn = f"{sys.executable} -c \"b = b'y' * (24 * 1024 * 1024)\nwhile True: pass\""
    stream = busy_client.exec_stream(burn, timeout=60)
    try:
        idle = world.manager.metrics("idle")
        deadline = time.monotonic() + 30
        busy = world.manager.metrics("lim")
        while busy.memory_bytes <= idle.memory_bytes + 16 * MIB and time.monotonic() < deadline:
            busy = world.manager.metrics("lim")  # until the burner has started
        assert busy.cpu_percent > idle.cpu_percent
        assert busy.memory_bytes > idle.memory_bytes
        assert busy.memory_limit_bytes == 64 * MIB
        assert idle.memory_limit_bytes == 0
        assert busy.pids >= 2
    finally:
        stream.close()


def test_limits_survive_versions_rollback_and_a_new_manager(world: World) -> None:
    m = world.manager
    m.create_version("lim")
    m.create_version("lim")
    m.rollback_version("lim", 1)
    pid = m.status("lim").pid
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")) == 64 * MIB
    with world.new_manager() as again:
        assert again.options("lim").limits == LIMITS
        again.stop("lim")
        again.start("lim")
        pid = again.status("lim").pid
        assert cgroup_file(pid, "pids", "pids.max", "pids.max") == str(PIDS)
        assert again.metrics("lim").memory_limit_bytes == 64 * MIB
    m.container_ip("lim")


def test_new_limits_apply_to_the_running_task(world: World) -> None:
    m = world.manager
    pid = m.status("lim").pid
    bigger = ResourceLimits(cpu_millicores=500, memory_bytes=96 * MIB, pids=PIDS + 20)
    result = m.update_options("lim", BotOptions(limits=bigger))
    assert result.live == ("limits",)
    assert m.status("lim").pid == pid
    assert int(cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max")) == 96 * MIB
    assert cgroup_file(pid, "pids", "pids.max", "pids.max") == str(PIDS + 20)
