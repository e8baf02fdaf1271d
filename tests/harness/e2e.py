"""Pieces for the end-to-end tests: a bridge network, an agent image, plugin counting.

* :func:`write_bridge_conflist` writes a bridge + host-local network (its own
  bridge name, private subnet and IPAM data dir) into a conf dir.
* :func:`allocations` lists the addresses host-local holds for a network.
* :func:`counting_bin_dir` makes a bin dir of wrappers that log each plugin
  call before running the real plugin, so tests can count ADDs.
* :func:`agent_image_archive` and :func:`agent_mounts` make an image whose
  entrypoint runs our agent with the host's Python, bind-mounted read-only.
* :func:`HostNetns` is a network namespace playing the host (bridge side),
  whose processes and interfaces all go when it is deleted.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import mcpmanager
from mcpmanager.types import MountSpec
from tests.harness.common import wait_for
from tests.harness.containerd import (
    Entry,
    Symlink,
    build_image_archive,
    busybox_layer,
)

CNI_BIN_DIR = os.environ.get("MCPMANAGER_CNI_BIN_DIR", "/usr/lib/cni")
AGENT_PORT = 9090
AGENT_REF = "docker.io/library/mcpm-agent:e2e"
SLEEPER_REF = "docker.io/library/mcpm-sleeper:test"
SLEEPER_CMD = ("/bin/sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait $!")
LIB_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32")


def write_bridge_conflist(
    conf_dir: str | Path, name: str, bridge: str, subnet: str, ipam_dir: str | Path
) -> Path:
    """Write ``10-<name>.conflist``: a bridge with host-local IPAM on ``subnet``."""
    conf_dir = Path(conf_dir)
    conf_dir.mkdir(parents=True, exist_ok=True)
    conf = {
        "cniVersion": "1.0.0",
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": subnet}]],
                    "dataDir": str(ipam_dir),
                },
            }
        ],
    }
    path = conf_dir / f"10-{name}.conflist"
    path.write_text(json.dumps(conf, indent=2))
    return path


def allocations(ipam_dir: str | Path, network: str) -> list[str]:
    """The addresses host-local has allocated on ``network`` (files named by IP)."""
    d = Path(ipam_dir) / network
    if not d.exists():
        return []
    return sorted(p.name for p in d.iterdir() if _is_ip(p.name))


def cache_entries(cache_dir: str | Path) -> list[str]:
    """The names of the CNI result cache entries under ``cache_dir``."""
    d = Path(cache_dir) / "results"
    return sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) if d.exists() else []


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def counting_bin_dir(dest: str | Path, log: str | Path, plugins: Sequence[str]) -> str:
    """A bin dir of wrappers logging ``<CNI_COMMAND> <plugin>`` to ``log``, then the real one."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in plugins:
        wrapper = dest / name
        wrapper.write_text(
            "#!/bin/sh\n"
            f'echo "$CNI_COMMAND {name}" >> {log}\n'
            f'exec {os.path.join(CNI_BIN_DIR, name)} "$@"\n'
        )
        wrapper.chmod(0o755)
    return str(dest)


def plugin_calls(log: str | Path) -> list[str]:
    """The lines a :func:`counting_bin_dir` wrote so far."""
    return Path(log).read_text().splitlines() if Path(log).exists() else []


# --- an image that runs our agent ---------------------------------------------


def project_paths() -> list[str]:
    """Host directories the agent needs: Python, the venv and the package (no nesting)."""
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(mcpmanager.__file__)))
    wanted = {
        os.path.abspath(sys.prefix),
        os.path.abspath(sys.base_prefix),
        os.path.realpath(sys.base_prefix),
        package_parent,
    }
    return _outermost(wanted)


def _outermost(paths: set[str]) -> list[str]:
    kept: list[str] = []
    for p in sorted(paths, key=len):
        if not any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(p)
    return sorted(kept)


def agent_mounts() -> tuple[MountSpec, ...]:
    """Read-only bind mounts of the host's Python, libraries and this package."""
    libs = [d for d in LIB_DIRS if os.path.isdir(d) and not os.path.islink(d)]
    paths = _outermost({*libs, *project_paths()})
    return tuple(MountSpec(p, "bind", p, ("rbind", "ro")) for p in paths)


def _lib_symlinks() -> list[Entry]:
    """Host top-level library dirs that are symlinks (merged /usr) become symlinks too."""
    return [
        Symlink(d.lstrip("/"), os.readlink(d))
        for d in LIB_DIRS
        if os.path.islink(d) and os.path.isdir(d)
    ]


def agent_command(port: int = AGENT_PORT) -> list[str]:
    """The container entrypoint: this interpreter running ``python -m mcpmanager.agent``."""
    return [sys.executable, "-m", "mcpmanager.agent", "--listen", f"0.0.0.0:{port}", "--root", "/"]


def agent_image_archive(dest: str, ref: str = AGENT_REF) -> str:
    """An OCI archive: busybox plus lib symlinks, entrypoint our agent (Python is mounted)."""
    return build_image_archive(
        dest,
        ref,
        [[*busybox_layer(), *_lib_symlinks()]],
        entrypoint=agent_command(),
        cmd=(),
        env=(
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "PYTHONDONTWRITEBYTECODE=1",
            "PYTHONUNBUFFERED=1",
            "MALLOC_ARENA_MAX=2",  # as examples/workspace-image sets it
        ),
    )


def sleeper_image_archive(dest: str, ref: str = SLEEPER_REF) -> str:
    """An OCI archive of busybox whose command sleeps and exits 0 on SIGTERM."""
    return build_image_archive(dest, ref, [busybox_layer()], cmd=SLEEPER_CMD)


# --- a namespace playing the host ----------------------------------------------


class HostNetns:
    """A named network namespace that holds the bridge; ``close`` removes all of it.

    Closing kills whatever still runs in it (processes the test started there),
    then deletes it, which removes the bridge and every veth in it.
    """

    def __init__(self, label: str = "e2e") -> None:
        self.name = f"mcp{label[:5]}-{os.getpid()}-{secrets.token_hex(2)}"
        _ip("netns", "add", self.name)
        _ip("-n", self.name, "link", "set", "lo", "up")

    @property
    def path(self) -> str:
        """The namespace's bind mount under /var/run/netns."""
        return f"/var/run/netns/{self.name}"

    def exec_argv(self, *argv: str) -> list[str]:
        """``argv`` wrapped to run inside the namespace.

        ``nsenter`` only switches the network namespace (``ip netns exec``
        would also remount ``/sys``, hiding the cgroup mounts runc needs).
        """
        return ["nsenter", f"--net={self.path}", *argv]

    def links(self) -> list[str]:
        """Names of the interfaces in the namespace."""
        out = _ip("-n", self.name, "-o", "link", "show")
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]

    def pids(self) -> list[int]:
        """Processes whose network namespace this is."""
        proc = subprocess.run(
            ["ip", "netns", "pids", self.name], capture_output=True, text=True, check=False
        )
        return [int(p) for p in proc.stdout.split()]

    def close(self) -> None:
        """Kill processes left in the namespace, then delete it."""
        if not os.path.exists(self.path):
            return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not self.pids(), timeout=10, what=f"processes in {self.name}")
        _ip("netns", "delete", self.name)

    def __enter__(self) -> HostNetns:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False, timeout=30)
    if proc.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


# --- the files of one end-to-end network ------------------------------------------

E2E_NETWORK = "mcpe2e"
E2E_SUBNET = "10.233.7.0/24"
E2E_PLUGINS = ("bridge", "host-local", "loopback")


class E2EDir:
    """The directory an end-to-end run shares between the parent and the child in the netns.

    ``conf`` (the conflist), ``ipam`` (host-local's data), ``cache`` (CNI
    results), ``bin`` (counting plugin wrappers, calls logged to
    ``plugins.log``), ``data`` (the Manager's data root).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.conf_dir = str(self.root / "conf")
        self.ipam_dir = str(self.root / "ipam")
        self.cache_dir = str(self.root / "cache")
        self.bin_dir = str(self.root / "bin")
        self.log = str(self.root / "plugins.log")
        self.data_root = str(self.root / "data")

    def create(self, bridge: str) -> E2EDir:
        """Write the network config and the plugin wrappers."""
        write_bridge_conflist(self.conf_dir, E2E_NETWORK, bridge, E2E_SUBNET, self.ipam_dir)
        counting_bin_dir(self.bin_dir, self.log, E2E_PLUGINS)
        return self

    def allocations(self) -> list[str]:
        """Addresses host-local holds on the network."""
        return allocations(self.ipam_dir, E2E_NETWORK)

    def cache_entries(self) -> list[str]:
        """CNI result cache entries."""
        return cache_entries(self.cache_dir)

    def calls(self) -> list[str]:
        """Plugin calls so far, ``"<COMMAND> <plugin>"`` each."""
        return plugin_calls(self.log)


def rerun_inside(label: str, bridge: str, script: str, args: Sequence[str]) -> int:
    """Run ``script --inner --dir DIR ARGS`` inside a host namespace made for it.

    The namespace gets the bridge network of :class:`E2EDir` under a temp
    ``DIR``; both are removed afterwards. Returns the script's exit code (the
    benchmarks re-run themselves this way, so every address they use lives in
    a namespace of their own).
    """
    root = tempfile.mkdtemp(prefix=f"mcpm-{label}-")
    try:
        with HostNetns(label) as host:
            E2EDir(root).create(bridge=bridge)
            argv = host.exec_argv(
                sys.executable, os.path.abspath(script), "--inner", "--dir", root, *args
            )
            return subprocess.run(argv, check=False).returncode
    finally:
        shutil.rmtree(root, ignore_errors=True)
