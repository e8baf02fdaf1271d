"""Network namespaces for tests, created with ``ip netns`` and always removed.

Every bridge, veth and address a test makes lives in namespaces made here:
a "host" namespace (where CNI plugins run, so the bridge and host-side veths
are there) and one namespace per test "container". Deleting a namespace
removes every interface in it, so cleanup cannot leave links in the machine's
own namespace.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator

import attrs
import pytest

from .common import require_binaries, require_root, unavailable

CNI_BIN_DIR = os.environ.get("MCPMANAGER_CNI_BIN_DIR", "/usr/lib/cni")
NETNS_DIR = "/var/run/netns"


@attrs.frozen
class Netns:
    """A named network namespace; ``path`` is what ``CNI_NETNS`` takes."""

    name: str

    @property
    def path(self) -> str:
        """The bind-mount of the namespace under /var/run/netns."""
        return os.path.join(NETNS_DIR, self.name)

    def ip(self, *args: str) -> str:
        """Run ``ip -n <name> ARGS`` and return its stdout; fail the test on error."""
        return _run("ip", "-n", self.name, *args)

    def exec_argv(self, *argv: str) -> list[str]:
        """``argv`` wrapped to run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def exists(self) -> bool:
        """Whether the namespace is still there."""
        return os.path.exists(self.path)


class NetnsFactory:
    """Creates uniquely named namespaces and deletes every one it made."""

    def __init__(self) -> None:
        self._made: list[Netns] = []

    def create(self, label: str = "c") -> Netns:
        """A new namespace with ``lo`` down, as a fresh container has."""
        ns = Netns(f"mcpt-{label[:6]}-{secrets.token_hex(4)}")
        _run("ip", "netns", "add", ns.name)
        self._made.append(ns)
        return ns

    def delete(self, ns: Netns) -> None:
        """Delete ``ns`` now (no error if it is gone already)."""
        if ns.exists():
            _run("ip", "netns", "delete", ns.name)

    def cleanup(self) -> None:
        """Delete every namespace made here, newest first."""
        errors: list[str] = []
        for ns in reversed(self._made):
            try:
                self.delete(ns)
            except AssertionError as e:
                errors.append(str(e))
        self._made.clear()
        assert not errors, f"namespace cleanup failed: {errors}"


def _run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    assert proc.returncode == 0, f"{' '.join(argv)} failed: {proc.stderr.strip()}"
    return proc.stdout


def require_netns() -> None:
    """Root plus ``ip`` and ``nsenter``, or skip/fail the test."""
    require_root()
    require_binaries("ip", "nsenter")


def require_cni_plugins(*names: str) -> str:
    """Return the CNI bin dir if it has every plugin in ``names``, else skip/fail."""
    missing = [n for n in names if not os.access(os.path.join(CNI_BIN_DIR, n), os.X_OK)]
    if missing:
        unavailable(f"CNI plugins missing in {CNI_BIN_DIR}: {', '.join(missing)}")
    return CNI_BIN_DIR


@pytest.fixture
def netns_factory() -> Iterator[NetnsFactory]:
    """Make namespaces during a test; all are deleted afterwards, even on failure."""
    require_netns()
    factory = NetnsFactory()
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture
def host_netns(netns_factory: NetnsFactory) -> Netns:
    """The namespace that plays the host: CNI plugins run here, the bridge lives here."""
    ns = netns_factory.create("host")
    ns.ip("link", "set", "lo", "up")
    return ns


@pytest.fixture
def cni_bin_dir() -> str:
    """The CNI bin dir with the standard plugins the network tests use."""
    require_netns()
    return require_cni_plugins("bridge", "host-local", "loopback", "portmap")
