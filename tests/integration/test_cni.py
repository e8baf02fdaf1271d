"""Tests of our CNI runner (mcpmanager.cni).

Three groups: config loading and result parsing (pure), the runner against
fake plugins written by the test (no root: they log what they were given and
fail or hang on request), and the runner against Debian's real plugins
(bridge, host-local, portmap, loopback) inside network namespaces made by the
test, with the bridge in a namespace of its own.
"""

from __future__ import annotations

import base64
import concurrent.futures
import ipaddress
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mcpmanager import cni, errors
from mcpmanager.cni.config import find_plugin

if TYPE_CHECKING:
    from tests.harness.netns import Netns, NetnsFactory


SUBNET = "10.231.7.0/24"
SELF_NETNS = "/proc/self/ns/net"  # fake plugins never touch it; it only has to exist

# --- fake plugins -----------------------------------------------------------

FAKE_PLUGIN = """\
#!{python}
import json, os, sys, time
conf = json.load(sys.stdin)
cmd = os.environ["CNI_COMMAND"]
env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
name = os.path.basename(sys.argv[0])
with open(conf["log"], "a") as f:
    f.write(json.dumps({{"plugin": name, "cmd": cmd, "env": env, "conf": conf}}) + "\\n")
b = conf.get("behaviour", {{}})

def fail(code, msg, details=""):
    out = {{"cniVersion": conf["cniVersion"], "code": code, "msg": msg, "details": details}}
    print(json.dumps(out))
    sys.exit(1)

if cmd == "ADD" and "fail_adds" in b:
    state = conf["log"] + ".adds"
    n = int(open(state).read()) if os.path.exists(state) else 0
    open(state, "w").write(str(n + 1))
    if n < b["fail_adds"]:
        fail(b.get("code", 999), b["msg"])
if cmd in b.get("error_on", ()):
    fail(b["code"], b["msg"], b.get("details", ""))
if cmd == b.get("hang"):
    open(conf["log"] + ".pid", "w").write(str(os.getpid()))
    time.sleep(60)
if cmd == b.get("crash"):
    sys.stderr.write("boom: plugin crashed\\n")
    sys.exit(2)
if cmd == "ADD":
    result = conf.get("prevResult") or {{"cniVersion": conf["cniVersion"], "ips": []}}
    if "address" in conf:
        result["ips"].append({{"address": conf["address"]}})
    print(json.dumps(result))
"""


class FakeNet:
    """A conf dir, bin dir and cache dir holding fake plugins ``fake-a``/``fake-b``."""

    def __init__(self, root: Path, names: tuple[str, ...] = ("fake-a", "fake-b")) -> None:
        self.root = root
        self.bin_dir = root / "bin"
        self.conf_dir = root / "conf"
        self.cache_dir = root / "cache"
        self.log = root / "calls.log"
        for d in (self.bin_dir, self.conf_dir):
            d.mkdir()
        for name in names:
            path = self.bin_dir / name
            path.write_text(FAKE_PLUGIN.format(python=sys.executable))
            path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def write(self, *plugins: dict[str, Any], version: str = "1.0.0") -> None:
        """Write the conflist: every plugin logs to ``self.log``."""
        body = [{"log": str(self.log), **p} for p in plugins]
        conf = {"cniVersion": version, "name": "fakenet", "plugins": body}
        (self.conf_dir / "10-fake.conflist").write_text(json.dumps(conf))

    def runner(self, **kwargs: Any) -> cni.CNIRunner:
        kwargs.setdefault("loopback", False)
        return cni.CNIRunner.from_conf_dir(
            self.conf_dir, str(self.bin_dir), cache_dir=self.cache_dir, **kwargs
        )

    def network(self, **kwargs: Any) -> cni.Network:
        kwargs.setdefault("loopback", False)
        return cni.Network(str(self.bin_dir), self.conf_dir, self.cache_dir, **kwargs)

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def trace(self) -> list[tuple[str, str]]:
        return [(c["cmd"], c["plugin"]) for c in self.calls()]


@pytest.fixture
def fake(tmp_path: Path) -> FakeNet:
    return FakeNet(tmp_path)


# --- config loading -----------------------------------------------------------


def _write(path: Path, obj: object) -> Path:
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def test_load_missing_conf_dir_names_path(tmp_path: Path) -> None:
    with pytest.raises(errors.FailedPrecondition, match=str(tmp_path / "nope")):
        cni.load_network_config(tmp_path / "nope")


def test_load_empty_conf_dir(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("not a config")
    with pytest.raises(errors.FailedPrecondition, match="no CNI network config"):
        cni.load_network_config(tmp_path)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ({"cniVersion": "1.0.0", "name": "n"}, "no 'plugins'"),
        ({"cniVersion": "1.0.0", "name": "n", "plugins": []}, "no 'plugins'"),
        ({"cniVersion": "1.0.0", "name": "n", "plugins": [{"x": 1}]}, "missing 'type'"),
        ({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}, "network name"),
        ({"cniVersion": "1.0.0", "name": "a b", "plugins": [{"type": "bridge"}]}, "name"),
        ({"name": "n", "plugins": [{"type": "bridge"}]}, "cniVersion"),
        ({"cniVersion": "one", "name": "n", "plugins": [{"type": "bridge"}]}, "cniVersion"),
    ],
)
def test_load_invalid_conflist(tmp_path: Path, content: object, match: str) -> None:
    path = _write(tmp_path / "10-x.conflist", content)
    with pytest.raises(errors.InvalidArgument, match=match) as info:
        cni.load_network_config(tmp_path)
    assert str(path) in str(info.value)


def test_load_picks_first_file_by_name_and_wraps_single_conf(tmp_path: Path) -> None:
    single = {"cniVersion": "0.4.0", "name": "first", "type": "bridge", "bridge": "br9"}
    _write(tmp_path / "05-first.conf", single)
    _write(tmp_path / "10-second.conflist", {"cniVersion": "1.0.0", "name": "second"})
    (tmp_path / "00-ignored.txt").write_text("{}")
    net = cni.load_network_config(tmp_path)
    assert (net.name, net.cni_version) == ("first", "0.4.0")
    assert net.plugins == (single,)
    assert net.path == str(tmp_path / "05-first.conf")
    assert json.loads(net.raw) == {"cniVersion": "0.4.0", "name": "first", "plugins": [single]}


def test_load_json_extension_and_conflist_disguised_as_conf(tmp_path: Path) -> None:
    _write(tmp_path / "a.json", {"cniVersion": "1.0.0", "name": "j", "type": "ptp"})
    assert cni.load_network_config(tmp_path).plugin_types() == ("ptp",)
    lst = {"cniVersion": "1.0.0", "name": "l", "plugins": [{"type": "bridge"}]}
    _write(tmp_path / "0.conf", lst)
    with pytest.raises(errors.InvalidArgument, match=r"\.conflist"):
        cni.load_network_config(tmp_path)


def test_load_checks_plugins_in_colon_separated_bin_dirs(fake: FakeNet, tmp_path: Path) -> None:
    fake.write({"type": "fake-a"}, {"type": "missing-plugin"})
    empty = tmp_path / "empty"
    empty.mkdir()
    bin_dirs = f"{empty}:{fake.bin_dir}"
    with pytest.raises(errors.FailedPrecondition, match="missing-plugin") as info:
        cni.CNIRunner.from_conf_dir(fake.conf_dir, bin_dirs)
    assert "10-fake.conflist" in str(info.value)
    assert find_plugin("fake-a", [str(empty), str(fake.bin_dir)]) == str(fake.bin_dir / "fake-a")


# --- results ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("result", "ip"),
    [
        ({"ips": [{"address": "127.0.0.1/8"}, {"address": "10.1.2.3/24"}]}, "10.1.2.3"),
        ({"ips": [{"address": "fd00::5/64"}, {"address": "10.1.2.3/24"}]}, "10.1.2.3"),
        ({"ips": [{"address": "::1/128"}, {"address": "fd00::5/64"}]}, "fd00::5"),
        ({"ip4": {"ip": "10.9.9.9/16"}}, "10.9.9.9"),
        ({"ips": [{"address": "garbage"}]}, ""),
        ({}, ""),
        (None, ""),
    ],
)
def test_first_ip(result: dict[str, Any] | None, ip: str) -> None:
    assert cni.first_ip(result) == ip


def test_cache_round_trip_and_corrupt_entry(tmp_path: Path) -> None:
    cache = cni.ResultCache(tmp_path)
    entry = cni.CachedResult("c1", "net", "eth0", b'{"x":1}', {"ips": []}, "/ns", (("K", "V"),))
    cache.write(entry)
    assert cache.read("net", "c1", "eth0") == entry
    assert stat.S_IMODE(os.stat(cache.path("net", "c1", "eth0")).st_mode) == 0o600
    Path(cache.path("net", "c1", "eth0")).write_text("{broken")
    with pytest.raises(errors.FailedPrecondition, match="corrupt CNI cache"):
        cache.read("net", "c1", "eth0")
    cache.delete("net", "c1", "eth0")
    cache.delete("net", "c1", "eth0")
    assert cache.read("net", "c1", "eth0") is None


# --- runner with fake plugins -------------------------------------------------------


def test_chain_order_env_prev_result_and_cache(fake: FakeNet) -> None:
    fake.write(
        {"type": "fake-a", "address": "10.231.9.5/24"},
        {"type": "fake-b", "capabilities": {"portMappings": True}},
    )
    runner = fake.runner(ifname="net1")
    ports = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    result = runner.add(
        "ctr-1",
        SELF_NETNS,
        cni_args=[("IgnoreUnknown", "1")],
        capability_args={"portMappings": ports, "bandwidth": {}},
    )
    assert cni.first_ip(result) == "10.231.9.5"
    a, b = fake.calls()
    assert (a["cmd"], a["plugin"], b["cmd"], b["plugin"]) == ("ADD", "fake-a", "ADD", "fake-b")
    assert a["env"] == {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "ctr-1",
        "CNI_NETNS": SELF_NETNS,
        "CNI_IFNAME": "net1",
        "CNI_PATH": str(fake.bin_dir),
        "CNI_ARGS": "IgnoreUnknown=1",
    }
    assert (a["conf"]["name"], a["conf"]["cniVersion"]) == ("fakenet", "1.0.0")
    assert "prevResult" not in a["conf"]
    assert "runtimeConfig" not in a["conf"]
    assert b["conf"]["prevResult"] == {"cniVersion": "1.0.0", "ips": [{"address": "10.231.9.5/24"}]}
    assert b["conf"]["runtimeConfig"] == {"portMappings": ports}

    entry = json.loads(Path(runner.cache.path("fakenet", "ctr-1", "net1")).read_text())
    assert entry["kind"] == "cniCacheV1"
    assert entry["cniArgs"] == [["IgnoreUnknown", "1"]]
    assert entry["capabilityArgs"] == {"portMappings": ports, "bandwidth": {}}

    runner.check("ctr-1", SELF_NETNS)
    runner.delete("ctr-1", SELF_NETNS)
    trace = fake.trace()[2:]
    assert trace == [("CHECK", "fake-a"), ("CHECK", "fake-b"), ("DEL", "fake-b"), ("DEL", "fake-a")]
    assert all(c["conf"]["prevResult"] == result for c in fake.calls()[2:])
    assert runner.cached_result("ctr-1") is None


def test_add_again_checks_and_reuses_cached_result(fake: FakeNet) -> None:
    fake.write({"type": "fake-a", "address": "10.231.9.6/24"})
    runner = fake.runner()
    first = runner.add("ctr-1", SELF_NETNS)
    assert fake.runner().add("ctr-1", SELF_NETNS) == first
    assert fake.trace() == [("ADD", "fake-a"), ("CHECK", "fake-a")]
    assert fake.network().cached_ip("ctr-1") == "10.231.9.6"
    assert fake.network().cached_ip("other") == ""


def test_add_with_failing_check_re_adds(fake: FakeNet) -> None:
    fake.write(
        {
            "type": "fake-a",
            "address": "10.231.9.7/24",
            "behaviour": {"error_on": ["CHECK"], "code": 999, "msg": "eth0 gone"},
        }
    )
    runner = fake.runner()
    runner.add("ctr-1", SELF_NETNS)
    runner.add("ctr-1", SELF_NETNS)
    assert fake.trace() == [
        ("ADD", "fake-a"),
        ("CHECK", "fake-a"),
        ("DEL", "fake-a"),
        ("ADD", "fake-a"),
    ]


def test_delete_without_cache_and_old_version_without_prev_result(fake: FakeNet) -> None:
    fake.write({"type": "fake-a", "address": "10.231.9.8/24"}, version="0.3.1")
    runner = fake.runner()
    runner.delete("never-added", "")
    runner.add("ctr-1", SELF_NETNS)
    runner.add("ctr-1", SELF_NETNS)  # no CHECK before 0.4.0: the cached result is reused
    with pytest.raises(errors.NotSupported, match="CHECK"):
        runner.check("ctr-1", SELF_NETNS)
    runner.delete("ctr-1", SELF_NETNS)
    assert fake.trace() == [("DEL", "fake-a"), ("ADD", "fake-a"), ("DEL", "fake-a")]
    assert all("prevResult" not in c["conf"] for c in fake.calls())
    assert fake.calls()[0]["env"]["CNI_NETNS"] == ""


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (11, errors.Unavailable),
        (7, errors.InvalidArgument),
        (4, errors.InvalidArgument),
        (3, errors.NotFound),
        (1, errors.NotSupported),
        (999, cni.CNIError),
    ],
)
def test_plugin_error_result_is_mapped(fake: FakeNet, code: int, expected: type[Exception]) -> None:
    behaviour = {"error_on": ["ADD"], "code": code, "msg": "no can do", "details": "because"}
    fake.write({"type": "fake-a"}, {"type": "fake-b", "behaviour": behaviour})
    with pytest.raises(expected) as info:
        fake.runner().add("ctr-9", SELF_NETNS)
    err = info.value
    assert isinstance(err, cni.CNIError)
    assert (err.code, err.plugin, err.command, err.msg, err.details) == (
        code,
        "fake-b",
        "ADD",
        "no can do",
        "because",
    )
    for part in ("ctr-9", "fakenet", "fake-b", "ADD", "no can do"):
        assert part in str(err)
    # The half-done ADD was rolled back, and nothing was cached.
    assert fake.trace()[2:] == [("DEL", "fake-b"), ("DEL", "fake-a")]
    assert fake.network().cached_ip("ctr-9") == ""


def test_plugin_crash_without_error_json(fake: FakeNet) -> None:
    fake.write({"type": "fake-a", "behaviour": {"crash": "DEL"}})
    with pytest.raises(cni.CNIError, match="boom: plugin crashed") as info:
        fake.runner().delete("ctr-1", SELF_NETNS)
    assert (info.value.code, info.value.plugin, info.value.command) == (0, "fake-a", "DEL")


def test_duplicate_allocation_is_retried_once(fake: FakeNet) -> None:
    msg = "failed to allocate for range 0: duplicate allocation"
    fake.write(
        {"type": "fake-a", "address": "10.231.9.9/24", "behaviour": {"fail_adds": 1, "msg": msg}}
    )
    assert cni.first_ip(fake.runner().add("ctr-1", SELF_NETNS)) == "10.231.9.9"
    assert fake.trace() == [("ADD", "fake-a"), ("DEL", "fake-a"), ("ADD", "fake-a")]


def test_retry_gives_up_after_second_failure(fake: FakeNet) -> None:
    msg = 'container veth name "eth0" already exists'
    fake.write({"type": "fake-a", "behaviour": {"fail_adds": 2, "msg": msg}})
    with pytest.raises(cni.CNIError, match="already exists"):
        fake.runner().add("ctr-1", SELF_NETNS)
    assert fake.trace() == [("ADD", "fake-a"), ("DEL", "fake-a")] * 2


def test_other_errors_are_not_retried(fake: FakeNet) -> None:
    fake.write({"type": "fake-a", "behaviour": {"fail_adds": 1, "msg": "no route", "code": 5}})
    with pytest.raises(cni.CNIError, match="no route"):
        fake.runner().add("ctr-1", SELF_NETNS)
    assert fake.trace() == [("ADD", "fake-a"), ("DEL", "fake-a")]


def test_hanging_plugin_times_out_and_is_killed(fake: FakeNet) -> None:
    fake.write({"type": "fake-a", "behaviour": {"hang": "ADD"}})
    with pytest.raises(errors.DeadlineExceeded, match="fake-a") as info:
        fake.runner(timeout=1.0).add("ctr-1", SELF_NETNS)
    assert isinstance(info.value, cni.CNITimeout)
    assert info.value.plugin == "fake-a"
    pid = int(Path(f"{fake.log}.pid").read_text())
    assert not os.path.exists(f"/proc/{pid}")


def test_argument_validation(fake: FakeNet, tmp_path: Path) -> None:
    fake.write({"type": "fake-a"})
    runner = fake.runner()
    with pytest.raises(errors.NotFound, match="ctr-1"):
        runner.add("ctr-1", str(tmp_path / "no-such-netns"))
    with pytest.raises(errors.InvalidArgument):
        runner.add("bad id!", SELF_NETNS)
    with pytest.raises(errors.InvalidArgument):
        runner.add("ctr-1", "relative/netns")
    with pytest.raises(errors.InvalidArgument):
        fake.runner(ifname="much-too-long-ifname")
    with pytest.raises(errors.FailedPrecondition, match="no cached CNI result"):
        runner.check("ctr-1", SELF_NETNS)
    assert fake.calls() == []


def test_setup_fails_when_result_has_no_ip(fake: FakeNet) -> None:
    fake.write({"type": "fake-a"})
    with pytest.raises(errors.FailedPrecondition, match="no usable IP"):
        fake.network().setup("ctr-1", SELF_NETNS)
    assert fake.trace() == [("ADD", "fake-a"), ("DEL", "fake-a")]


def test_lo_is_brought_up_without_loopback_plugin(
    fake: FakeNet, netns_factory: NetnsFactory
) -> None:
    fake.write({"type": "fake-a", "address": "10.231.9.10/24"})
    ns = netns_factory.create()
    assert "UP" not in ns.ip("-o", "link", "show", "dev", "lo").split(">")[0]
    fake.runner(loopback=True).add("ctr-1", ns.path)
    assert "UP" in ns.ip("-o", "link", "show", "dev", "lo").split(">")[0]


def test_bridge_with_zeroed_mac_is_deleted_before_retry(tmp_path: Path, host_netns: Netns) -> None:
    fake = FakeNet(tmp_path, names=("bridge",))
    msg = "failed to set bridge addr: could not set bridge's mac: invalid argument"
    behaviour = {"fail_adds": 1, "msg": msg}
    fake.write(
        {
            "type": "bridge",
            "bridge": "mcpstale0",
            "address": "10.231.9.11/24",
            "behaviour": behaviour,
        }
    )
    host_netns.ip("link", "add", "mcpstale0", "type", "bridge")
    runner = fake.runner(plugin_netns=host_netns.name)
    assert cni.first_ip(runner.add("ctr-1", SELF_NETNS)) == "10.231.9.11"
    assert fake.trace() == [("ADD", "bridge"), ("DEL", "bridge"), ("ADD", "bridge")]
    assert "mcpstale0" not in host_netns.ip("-o", "link", "show")


# --- runner with the real plugins in network namespaces ---------------------------------


class BridgeNet:
    """A bridge + host-local (+ portmap) network whose bridge lives in ``host``."""

    def __init__(self, root: Path, host: Netns, factory: NetnsFactory, bin_dir: str) -> None:
        self.host = host
        self.factory = factory
        self.bin_dir = bin_dir
        self.conf_dir = root / "conf"
        self.cache_dir = root / "cache"
        self.ipam_dir = root / "ipam"
        self.bridge = "mcpbr0"
        self.conf_dir.mkdir()
        self.added: list[tuple[str, str]] = []

    def bridge_plugin(self) -> dict[str, Any]:
        ipam = {
            "type": "host-local",
            "ranges": [[{"subnet": SUBNET}]],
            "dataDir": str(self.ipam_dir),
        }
        return {"type": "bridge", "bridge": self.bridge, "isGateway": True, "ipam": ipam}

    def write_conflist(self) -> None:
        plugins = [
            self.bridge_plugin(),
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ]
        conf = {"cniVersion": "1.0.0", "name": "mcptest", "plugins": plugins}
        _write(self.conf_dir / "10-mcptest.conflist", conf)

    def write_conf(self) -> None:
        _write(
            self.conf_dir / "10-mcptest.conf",
            {"cniVersion": "1.0.0", "name": "mcptest", **self.bridge_plugin()},
        )

    def runner(self) -> cni.CNIRunner:
        return cni.CNIRunner.from_conf_dir(
            self.conf_dir, self.bin_dir, cache_dir=self.cache_dir, plugin_netns=self.host.name
        )

    def network(self) -> cni.Network:
        return cni.Network(self.bin_dir, self.conf_dir, self.cache_dir, plugin_netns=self.host.name)

    def add(self, container_id: str, ns: Netns) -> str:
        self.added.append((container_id, ns.path))
        return cni.first_ip(self.runner().add(container_id, ns.path))

    def allocations(self) -> list[str]:
        d = self.ipam_dir / "mcptest"
        return sorted(p.name for p in d.iterdir() if _is_ip(p.name)) if d.exists() else []

    def cleanup(self) -> None:
        if not any(self.conf_dir.iterdir()):
            return
        for container_id, path in reversed(self.added):
            self.runner().delete(container_id, path)
        assert self.allocations() == []


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@pytest.fixture
def bridge_net(
    tmp_path: Path, cni_bin_dir: str, host_netns: Netns, netns_factory: NetnsFactory
) -> Iterator[BridgeNet]:
    net = BridgeNet(tmp_path, host_netns, netns_factory, cni_bin_dir)
    try:
        yield net
    finally:
        net.cleanup()


def test_add_gives_ip_in_subnet_with_eth0_and_lo_up(bridge_net: BridgeNet) -> None:
    bridge_net.write_conflist()
    ns = bridge_net.factory.create()
    ip = bridge_net.add("mcp-bot1", ns)
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(SUBNET)
    assert f"inet {ip}/24" in ns.ip("-o", "-4", "addr", "show", "dev", "eth0")
    assert "UP" in ns.ip("-o", "link", "show", "dev", "lo").split(">")[0]
    assert "inet 127.0.0.1/8" in ns.ip("-o", "-4", "addr", "show", "dev", "lo")
    assert bridge_net.bridge in bridge_net.host.ip("-o", "link", "show", "type", "bridge")
    assert bridge_net.allocations() == [ip]


def test_second_add_is_idempotent_and_cache_has_libcni_layout(bridge_net: BridgeNet) -> None:
    bridge_net.write_conflist()
    ns = bridge_net.factory.create()
    ip = bridge_net.add("mcp-bot1", ns)
    assert bridge_net.add("mcp-bot1", ns) == ip
    assert bridge_net.allocations() == [ip]
    assert ns.ip("-o", "link", "show").count("eth0") == 1

    path = bridge_net.cache_dir / "results" / "mcptest-mcp-bot1-eth0"
    entry = json.loads(path.read_text())
    assert {"kind", "containerId", "config", "ifName", "networkName", "result"} <= set(entry)
    assert (entry["kind"], entry["containerId"], entry["ifName"], entry["networkName"]) == (
        "cniCacheV1",
        "mcp-bot1",
        "eth0",
        "mcptest",
    )
    config = (bridge_net.conf_dir / "10-mcptest.conflist").read_bytes()
    assert base64.b64decode(entry["config"]) == config
    assert cni.first_ip(entry["result"]) == ip
    assert bridge_net.network().cached_ip("mcp-bot1") == ip


def test_delete_removes_veth_allocation_and_cache_and_can_repeat(bridge_net: BridgeNet) -> None:
    bridge_net.write_conflist()
    ns = bridge_net.factory.create()
    bridge_net.add("mcp-bot1", ns)
    assert "veth" in bridge_net.host.ip("-o", "link", "show")
    runner = bridge_net.runner()
    runner.delete("mcp-bot1", ns.path)
    assert "veth" not in bridge_net.host.ip("-o", "link", "show")
    assert "eth0" not in ns.ip("-o", "link", "show")
    assert bridge_net.allocations() == []
    assert runner.cached_result("mcp-bot1") is None
    runner.delete("mcp-bot1", ns.path)


def test_delete_after_netns_is_gone(bridge_net: BridgeNet) -> None:
    bridge_net.write_conflist()
    ns = bridge_net.factory.create()
    bridge_net.add("mcp-bot1", ns)
    bridge_net.factory.delete(ns)
    bridge_net.runner().delete("mcp-bot1", ns.path)
    assert bridge_net.allocations() == []
    assert bridge_net.network().cached_ip("mcp-bot1") == ""


def test_readd_after_interface_lost_or_netns_changed(bridge_net: BridgeNet) -> None:
    bridge_net.write_conflist()
    old = bridge_net.factory.create()
    bridge_net.add("mcp-bot1", old)
    old.ip("link", "delete", "eth0")  # CHECK now fails: ADD must rebuild it
    ip = bridge_net.add("mcp-bot1", old)
    assert f"inet {ip}/24" in old.ip("-o", "-4", "addr", "show", "dev", "eth0")
    new = bridge_net.factory.create()  # the container restarted in a new namespace
    ip = bridge_net.add("mcp-bot1", new)
    assert f"inet {ip}/24" in new.ip("-o", "-4", "addr", "show", "dev", "eth0")
    assert bridge_net.allocations() == [ip]


def test_network_object_with_single_plugin_conf(bridge_net: BridgeNet) -> None:
    bridge_net.write_conf()
    ns = bridge_net.factory.create()
    network = bridge_net.network()
    ip = network.setup("mcp-bot2", ns.path)
    assert network.setup("mcp-bot2", ns.path) == ip
    network.check("mcp-bot2", ns.path)
    assert network.cached_ip("mcp-bot2") == ip
    assert bridge_net.allocations() == [ip]
    network.remove("mcp-bot2", ns.path)
    network.remove("mcp-bot2", ns.path)
    assert bridge_net.allocations() == []
    assert network.cached_ip("mcp-bot2") == ""


def test_network_object_reads_its_conf_dir_once(bridge_net: BridgeNet) -> None:
    bridge_net.write_conf()
    network = bridge_net.network()
    for name in os.listdir(bridge_net.conf_dir):
        os.remove(os.path.join(bridge_net.conf_dir, name))
    ns = bridge_net.factory.create()
    ip = network.setup("mcp-bot3", ns.path)
    assert network.name == "mcptest"
    network.remove("mcp-bot3", ns.path)
    assert bridge_net.allocations() == []
    assert ip


def test_network_object_checks_its_dirs(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidArgument, match="cni_conf_dir is empty"):
        cni.Network(str(tmp_path), "")
    with pytest.raises(errors.InvalidArgument, match="cni_bin_dir is empty"):
        cni.Network("", tmp_path)
    with pytest.raises(errors.FailedPrecondition, match="CNI config dir"):
        cni.Network(str(tmp_path), tmp_path / "none")
    with pytest.raises(errors.FailedPrecondition, match="CNI bin dir"):
        cni.Network(str(tmp_path / "none"), tmp_path)


SERVER = """\
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
s.settimeout(10)
c, _ = s.accept()
c.sendall(b"pong")
c.close()
"""

CLIENT = """\
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print(c.recv(4).decode())
"""


def test_two_containers_talk_over_the_bridge(bridge_net: BridgeNet) -> None:
    bridge_net.write_conflist()
    ns1, ns2 = bridge_net.factory.create("one"), bridge_net.factory.create("two")
    bridge_net.add("mcp-one", ns1)
    ip2 = bridge_net.add("mcp-two", ns2)
    argv = ns2.exec_argv(sys.executable, "-c", SERVER, ip2)
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = server.stdout.readline().strip()
        client = ns1.exec_argv(sys.executable, "-c", CLIENT, ip2, port)
        out = subprocess.run(client, capture_output=True, text=True, timeout=20, check=False)
        assert out.stdout.strip() == "pong", out.stderr
    finally:
        server.kill()
        server.wait()


def test_parallel_adds_get_distinct_addresses(bridge_net: BridgeNet) -> None:
    bridge_net.write_conflist()
    namespaces = [bridge_net.factory.create(f"p{i}") for i in range(3)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = [
            pool.submit(bridge_net.add, f"mcp-par{i}", ns) for i, ns in enumerate(namespaces)
        ]
        ips = [f.result(timeout=60) for f in futures]
    assert len(set(ips)) == 3
    assert bridge_net.allocations() == sorted(ips)
