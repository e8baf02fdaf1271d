"""ContainerdService networking: CNI on the task's namespace, on a private containerd.

The containers' network namespaces are made by runc; the CNI plugins run in a
namespace the test creates (``cni_plugin_netns``), so the bridge and the
host-side veths live there and vanish with it. Plugins are wrapped to log
every call, so the tests can tell a cache answer from a plugin run.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcpmanager import Manager, ManagerConfig, errors
from mcpmanager.cni import Network
from mcpmanager.containerd import ContainerdService
from mcpmanager.types import (
    CreateContainerRequest,
    DeleteContainerOptions,
    ImageInfo,
    NetworkSetupRequest,
    StopTaskOptions,
)
from tests.harness.common import wait_for
from tests.harness.e2e import (
    SLEEPER_REF,
    HostNetns,
    allocations,
    cache_entries,
    counting_bin_dir,
    plugin_calls,
    sleeper_image_archive,
    write_bridge_conflist,
)
from tests.harness.netns import require_cni_plugins, require_netns

pytestmark = pytest.mark.integration

SUBNET = "10.232.5.0/24"
NET_NAME = "mcpnet"
PLUGINS = ("bridge", "host-local", "loopback")


class Net:
    """A bridge network confined to its own namespace, and a service that uses it."""

    def __init__(self, root: Path, socket: str, namespace: str, host: HostNetns) -> None:
        self.host = host
        self.conf_dir = str(root / "conf")
        self.cache_dir = str(root / "cache")
        self.ipam_dir = str(root / "ipam")
        self.log = str(root / "plugins.log")
        self.bin_dir = counting_bin_dir(root / "bin", self.log, PLUGINS)
        self.bridge = f"mcpbr{uuid.uuid4().hex[:6]}"
        write_bridge_conflist(self.conf_dir, NET_NAME, self.bridge, SUBNET, self.ipam_dir)
        self.socket, self.namespace = socket, namespace
        self.service = self.new_service()
        self.containers: list[str] = []

    def new_service(self) -> ContainerdService:
        """Another client of the same daemon and cache, as a new process would make."""
        return ContainerdService(
            self.socket,
            self.namespace,
            cni_cache_dir=self.cache_dir,
            cni_plugin_netns=self.host.name,
        )

    def request(self, cid: str, **kw: Any) -> NetworkSetupRequest:
        args = {"cni_bin_dir": self.bin_dir, "cni_conf_dir": self.conf_dir, **kw}
        return NetworkSetupRequest(container_id=cid, **args)

    def container(self, start: bool = True) -> str:
        cid = f"n-{uuid.uuid4().hex[:10]}"
        self.service.create_container(CreateContainerRequest(id=cid, image_ref=SLEEPER_REF))
        self.containers.append(cid)
        if start:
            self.service.start_container(cid)
        return cid

    def pid(self, cid: str) -> int:
        return self.service.get_task_info(cid).pid

    def container_addr(self, cid: str) -> str:
        out = subprocess.run(
            ["nsenter", f"--net=/proc/{self.pid(cid)}/ns/net", "ip", "-o", "-4", "addr"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out

    def reachable(self, ip: str) -> bool:
        argv = self.host.exec_argv("/bin/busybox", "ping", "-c", "1", "-W", "2", ip)
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0

    def veths(self) -> list[str]:
        return [name for name in self.host.links() if name.startswith("veth")]

    def allocations(self) -> list[str]:
        return allocations(self.ipam_dir, NET_NAME)

    def calls(self) -> list[str]:
        return plugin_calls(self.log)

    def cleanup(self) -> None:
        failures = []
        for cid in reversed(self.containers):
            try:
                self.service.remove_network(self.request(cid))
            except errors.MCPManagerError as e:
                failures.append(f"remove_network {cid}: {e}")
            try:
                self.service.delete_container(cid, DeleteContainerOptions(cleanup_snapshot=True))
            except errors.NotFound:
                pass
            except errors.MCPManagerError as e:
                failures.append(f"delete {cid}: {e}")
        self.service.close()
        assert not failures, failures
        assert self.allocations() == []


@pytest.fixture(scope="module")
def sleeper_image(containerd_service: ContainerdService, busybox_image: ImageInfo) -> ImageInfo:
    workdir = tempfile.mkdtemp(prefix="mcpm-img-")
    try:
        return containerd_service.import_image(
            sleeper_image_archive(os.path.join(workdir, "sleeper.tar"))
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def net(
    tmp_path: Path, containerd_socket: str, containerd_namespace: str, sleeper_image: ImageInfo
) -> Iterator[Net]:
    require_netns()
    require_cni_plugins(*PLUGINS)
    with HostNetns("net") as host:
        n = Net(tmp_path, containerd_socket, containerd_namespace, host)
        try:
            yield n
        finally:
            n.cleanup()


def test_setup_gives_an_address_on_the_bridge_and_is_idempotent(net: Net) -> None:
    cid = net.container()
    ip = net.service.setup_network(net.request(cid)).ip
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(SUBNET)
    assert f"inet {ip}/24" in net.container_addr(cid)
    assert "inet 127.0.0.1/8" in net.container_addr(cid)
    assert net.allocations() == [ip]
    assert len(net.veths()) == 1
    assert net.reachable(ip)
    adds = net.calls().count("ADD bridge")
    assert adds == 1

    calls = len(net.calls())
    assert net.service.setup_network(net.request(cid)).ip == ip
    assert len(net.calls()) == calls, "a repeated setup of the same task ran plugins"
    assert net.allocations() == [ip]
    assert len(net.veths()) == 1


def test_the_service_loads_a_conf_dir_once(net: Net, tmp_path: Path) -> None:
    """One network object per (bin dir, conf dir): later calls do not reread the conf dir."""
    cid = net.container()
    ip = net.service.setup_network(net.request(cid)).ip
    moved = tmp_path / "conf-moved"
    os.rename(net.conf_dir, moved)
    try:
        assert net.service.setup_network(net.request(cid)).ip == ip
        with pytest.raises(errors.FailedPrecondition, match=f"container {cid} network: CNI"):
            net.new_service().setup_network(net.request(cid))
    finally:
        os.rename(moved, net.conf_dir)
    net.service.remove_network(net.request(cid))
    assert net.allocations() == []


def test_setup_with_explicit_pid(net: Net) -> None:
    cid = net.container()
    ip = net.service.setup_network(net.request(cid, pid=net.pid(cid))).ip
    assert net.allocations() == [ip]


def test_remove_leaves_no_veth_allocation_or_cache_entry(net: Net) -> None:
    cid = net.container()
    ip = net.service.setup_network(net.request(cid)).ip
    assert cache_entries(net.cache_dir) == [f"{NET_NAME}-{cid}-eth0"]
    net.service.remove_network(net.request(cid))
    assert net.veths() == []
    assert net.allocations() == []
    assert cache_entries(net.cache_dir) == []
    assert f"inet {ip}/" not in net.container_addr(cid)
    calls = len(net.calls())
    net.service.remove_network(net.request(cid))  # running task, nothing cached: plain DEL
    assert net.allocations() == []
    net.service.stop_container(cid, StopTaskOptions(timeout=5, force=True))
    calls = len(net.calls())
    net.service.remove_network(net.request(cid))  # no task, no cache: nothing to do
    assert len(net.calls()) == calls


def test_stop_then_remove_frees_the_address_and_restart_works(net: Net) -> None:
    cid = net.container()
    first = net.service.setup_network(net.request(cid)).ip
    net.service.stop_container(cid, StopTaskOptions(timeout=5, force=True))
    net.service.remove_network(net.request(cid))  # the namespace is gone; DEL uses the cache
    assert net.allocations() == []
    assert cache_entries(net.cache_dir) == []
    wait_for(lambda: not net.veths(), timeout=10, what="the veth of the stopped task to go")

    net.service.start_container(cid)
    again = net.service.setup_network(net.request(cid)).ip
    assert ipaddress.ip_address(again) in ipaddress.ip_network(SUBNET)
    assert net.allocations() == [again]
    assert net.reachable(again)
    assert first  # the old address may or may not be handed out again


def test_errors_name_the_problem(net: Net, tmp_path: Path) -> None:
    cid = net.container(start=False)
    with pytest.raises(errors.FailedPrecondition, match=f"{cid} has no task"):
        net.service.setup_network(net.request(cid))
    net.service.start_container(cid)
    missing = str(tmp_path / "nowhere")
    with pytest.raises(errors.FailedPrecondition, match=f"CNI config dir {missing}"):
        net.service.setup_network(net.request(cid, cni_conf_dir=missing))
    with pytest.raises(errors.FailedPrecondition, match=f"CNI bin dir {missing}"):
        net.service.setup_network(net.request(cid, cni_bin_dir=missing))
    with pytest.raises(errors.InvalidArgument, match="cni_conf_dir"):
        net.service.setup_network(net.request(cid, cni_conf_dir=""))
    with pytest.raises(errors.InvalidArgument):
        net.service.setup_network(net.request("bad/id"))
    net.service.stop_container(cid, StopTaskOptions(timeout=5, force=True))
    with pytest.raises(errors.FailedPrecondition, match="no running task"):
        net.service.setup_network(net.request(cid))
    assert net.allocations() == []


def test_stale_cache_entry_is_checked_not_trusted(net: Net) -> None:
    """An entry older than the task's process (a reused pid) is verified by the plugins."""
    cid = net.container()
    ip = net.service.setup_network(net.request(cid)).ip
    pid = net.pid(cid)
    network = Network(net.bin_dir, net.conf_dir, net.cache_dir)
    assert network.recorded_ip(cid, pid) == ip
    entry = Path(net.cache_dir) / "results" / f"{NET_NAME}-{cid}-eth0"
    os.utime(entry, (1, 1))
    assert network.recorded_ip(cid, pid) == ""
    assert network.recorded_ip(cid, pid + 1) == ""
    calls = len(net.calls())
    assert net.service.setup_network(net.request(cid)).ip == ip
    new_calls = net.calls()[calls:]
    assert "CHECK bridge" in new_calls
    assert "ADD bridge" not in new_calls


def _manager(net: Net, service: ContainerdService, tmp_path: Path) -> Manager:
    config = ManagerConfig(
        image=SLEEPER_REF,
        data_root=str(tmp_path / "data"),
        cni_bin_dir=net.bin_dir,
        cni_conf_dir=net.conf_dir,
        ready_timeout=0,  # the sleeper image runs no agent
    )
    return Manager(service, config)


def test_new_manager_recovers_ip_from_the_cache_without_plugins(net: Net, tmp_path: Path) -> None:
    first = _manager(net, net.service, tmp_path)
    cid = first.container_id("rec")
    net.containers.append(cid)
    first.start("rec")
    ip = first.container_ip("rec")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(SUBNET)

    calls = len(net.calls())
    with net.new_service() as service:
        second = _manager(net, service, tmp_path)
        assert second.container_ip("rec") == ip
        second.close()
    assert net.calls()[calls:] == [], "IP recovery ran CNI plugins"

    first.delete("rec")
    assert net.allocations() == []
    assert net.veths() == []
    assert cache_entries(net.cache_dir) == []
    first.close()


def test_new_manager_adds_when_nothing_is_cached(net: Net, tmp_path: Path) -> None:
    first = _manager(net, net.service, tmp_path)
    cid = first.container_id("add")
    net.containers.append(cid)
    first.start("add")
    net.service.remove_network(net.request(cid))  # running, but no cached result any more
    assert cache_entries(net.cache_dir) == []

    calls = len(net.calls())
    with net.new_service() as service:
        second = _manager(net, service, tmp_path)
        ip = second.container_ip("add")
        second.close()
    assert "ADD bridge" in net.calls()[calls:]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(SUBNET)
    assert net.allocations() == [ip]
    assert net.reachable(ip)
    first.delete("add")
    assert net.allocations() == []
    first.close()
