"""Attaching a containerd task to a CNI network, and detaching it.

What :class:`~mcpmanager.containerd.ContainerdService` runs for
``setup_network`` and ``remove_network``: the CNI plugin chain of the conf
dir's network on the task's network namespace (``/proc/<pid>/ns/net``).

IP recovery reads the cache first: when the cached ADD result was written
for the very process that runs now (same namespace path, written after that
process started, so a reused pid cannot fool it), its IP is returned without
running any plugin. Otherwise the idempotent :func:`cni.setup` runs (CHECK of
a cached result, else ADD).
"""

from __future__ import annotations

import os
import time

from .. import errors
from .._log import get_logger
from . import network as cni
from .cache import ResultCache
from .config import load_network_config, split_bin_dirs

__all__ = ["attach", "detach", "netns_path", "recorded_ip"]

log = get_logger("mcpmanager.cni")

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_TICK = 1.0 / _CLOCK_TICKS


def netns_path(pid: int) -> str:
    """The network namespace of process ``pid``, as ``CNI_NETNS`` takes it."""
    return f"/proc/{pid}/ns/net"


def check_dirs(container_id: str, bin_dir: str, conf_dir: str) -> None:
    """InvalidArgument when a dir is not given; FailedPrecondition naming a missing one."""
    what = f"container {container_id} network"
    if not conf_dir:
        raise errors.InvalidArgument(f"{what}: cni_conf_dir is empty")
    if not bin_dir:
        raise errors.InvalidArgument(f"{what}: cni_bin_dir is empty")
    if not os.path.isdir(conf_dir):
        raise errors.FailedPrecondition(f"{what}: CNI config dir {conf_dir} does not exist")
    dirs = split_bin_dirs(bin_dir)
    if not any(os.path.isdir(d) for d in dirs):
        raise errors.FailedPrecondition(f"{what}: CNI bin dir {bin_dir} does not exist")


def attach(
    container_id: str,
    pid: int,
    bin_dir: str,
    conf_dir: str,
    cache_dir: str | None = None,
    *,
    plugin_netns: str | None = None,
) -> str:
    """Attach process ``pid``'s network namespace to the network; return its IP.

    A cache entry made for this very process answers without running a plugin.
    """
    check_dirs(container_id, bin_dir, conf_dir)
    netns = netns_path(pid)
    if not os.path.exists(netns):
        raise errors.FailedPrecondition(
            f"container {container_id}: task process {pid} is gone (no {netns})"
        )
    ip = recorded_ip(container_id, pid, conf_dir, cache_dir)
    if ip:
        log.debug("container %s: IP %s from the CNI cache of this task", container_id, ip)
        return ip
    return cni.setup(container_id, netns, bin_dir, conf_dir, cache_dir, plugin_netns=plugin_netns)


def detach(
    container_id: str,
    pid: int,
    bin_dir: str,
    conf_dir: str,
    cache_dir: str | None = None,
    *,
    plugin_netns: str | None = None,
) -> None:
    """Detach the container; ``pid`` 0 (or a gone process) means its namespace is gone.

    Without a live namespace the cached ADD result still lets DEL release the
    IPAM address; with neither there is nothing to do.
    """
    check_dirs(container_id, bin_dir, conf_dir)
    netns = netns_path(pid) if pid > 0 else ""
    if netns and not os.path.exists(netns):
        netns = ""
    if not netns and cni.cached_result(container_id, conf_dir, cache_dir) is None:
        log.debug(
            "container %s: no namespace and no cached CNI result; nothing to remove", container_id
        )
        return
    cni.teardown(container_id, netns, bin_dir, conf_dir, cache_dir, plugin_netns=plugin_netns)


def recorded_ip(container_id: str, pid: int, conf_dir: str, cache_dir: str | None = None) -> str:
    """The cached IP if the cache entry was made for process ``pid`` as it runs now; else "".

    Runs no plugin: the entry must name ``/proc/<pid>/ns/net`` and have been
    written after that process started.
    """
    try:
        network = load_network_config(conf_dir)
        cache = ResultCache(cache_dir)
        entry = cache.read(network.name, container_id, cni.DEFAULT_IFNAME)
        if entry is None or entry.netns != netns_path(pid):
            return ""
        written = os.stat(cache.path(network.name, container_id, cni.DEFAULT_IFNAME)).st_mtime
        started = _process_start(pid)
    except (errors.MCPManagerError, OSError, ValueError) as e:
        log.debug("container %s: no usable CNI cache entry: %s", container_id, e)
        return ""
    if started is None or _to_boottime(written) + _TICK < started:
        return ""
    return cni.first_ip(entry.result)


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started, in seconds of CLOCK_BOOTTIME; None if unknown."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read().decode(errors="replace")
    fields = stat[stat.rfind(")") + 2 :].split()
    # Field 22 of /proc/<pid>/stat (starttime) is the 20th after "pid (comm)".
    return int(fields[19]) / _CLOCK_TICKS if len(fields) > 19 else None


def _to_boottime(wall: float) -> float:
    """A wall-clock time converted to CLOCK_BOOTTIME seconds."""
    return wall - (time.time() - time.clock_gettime(time.CLOCK_BOOTTIME))
