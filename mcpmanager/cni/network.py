"""CNI networking for containers: our own runner of CNI plugins (no libcni).

The three functions here are what the containerd service calls:
:func:`setup` attaches a container's network namespace to the first network
in the CNI conf dir and returns its IP, :func:`teardown` detaches it, and
:func:`cached_ip` reads the IP of a container set up earlier (by this or
another process) from libcni's result cache without running any plugin.
:class:`CNIRunner` is the full interface (ADD/DEL/CHECK and the raw results).
"""

from __future__ import annotations

import os

from .. import errors
from .._log import get_logger
from .cache import DEFAULT_CACHE_DIR, CachedResult, ResultCache
from .config import NetworkConfigList, load_network_config, parse_network_config
from .errors import (
    CNIContainerUnknown,
    CNIError,
    CNIInvalidConfig,
    CNINotSupported,
    CNITimeout,
    CNIUnavailable,
)
from .result import first_ip, result_ips
from .runner import DEFAULT_IFNAME, DEFAULT_TIMEOUT, CNIRunner

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_IFNAME",
    "DEFAULT_TIMEOUT",
    "CNIContainerUnknown",
    "CNIError",
    "CNIInvalidConfig",
    "CNINotSupported",
    "CNIRunner",
    "CNITimeout",
    "CNIUnavailable",
    "CachedResult",
    "NetworkConfigList",
    "ResultCache",
    "cached_ip",
    "cached_result",
    "first_ip",
    "load_network_config",
    "parse_network_config",
    "result_ips",
    "setup",
    "teardown",
]

log = get_logger("mcpmanager.cni")

PathLike = str | os.PathLike[str]


def setup(
    container_id: str,
    netns: str,
    bin_dir: str,
    conf_dir: PathLike,
    cache_dir: PathLike | None = None,
    *,
    ifname: str = DEFAULT_IFNAME,
    timeout: float = DEFAULT_TIMEOUT,
    plugin_netns: str | None = None,
    loopback: bool = True,
) -> str:
    """Attach the container in ``netns`` (a path, e.g. ``/proc/<pid>/ns/net``); return its IP.

    Idempotent: a container already attached (cached result, live namespace,
    CHECK passes) gets its cached IP back. ``bin_dir`` may be a colon-separated
    list; the keyword options are :class:`CNIRunner`'s. Raises FailedPrecondition when the
    network yields no usable IP (after detaching again).
    """
    runner = CNIRunner.from_conf_dir(
        conf_dir,
        bin_dir,
        cache_dir=cache_dir,
        ifname=ifname,
        timeout=timeout,
        plugin_netns=plugin_netns,
        loopback=loopback,
    )
    result = runner.add(container_id, netns)
    ip = first_ip(result)
    if ip:
        return ip
    try:
        runner.delete(container_id, netns)
    except errors.MCPManagerError as e:
        log.warning("container %s: CNI DEL after a result with no IP failed: %s", container_id, e)
    raise errors.FailedPrecondition(
        f"container {container_id} network {runner.network.name!r}: CNI ADD returned no usable IP"
    )


def teardown(
    container_id: str,
    netns: str,
    bin_dir: str,
    conf_dir: PathLike,
    cache_dir: PathLike | None = None,
    *,
    ifname: str = DEFAULT_IFNAME,
    timeout: float = DEFAULT_TIMEOUT,
    plugin_netns: str | None = None,
    loopback: bool = True,
) -> None:
    """Detach the container; fine when it was never attached or its namespace is gone.

    The keyword options are :class:`CNIRunner`'s and must match those of :func:`setup`.
    """
    runner = CNIRunner.from_conf_dir(
        conf_dir,
        bin_dir,
        cache_dir=cache_dir,
        ifname=ifname,
        timeout=timeout,
        plugin_netns=plugin_netns,
        loopback=loopback,
    )
    runner.delete(container_id, netns)


def cached_result(
    container_id: str,
    conf_dir: PathLike,
    cache_dir: PathLike | None = None,
    *,
    ifname: str = DEFAULT_IFNAME,
) -> CachedResult | None:
    """The cache entry of the container on the conf dir's network, or None."""
    network = load_network_config(conf_dir)
    try:
        return ResultCache(cache_dir).read(network.name, container_id, ifname)
    except errors.FailedPrecondition as e:
        log.warning("container %s: ignoring unusable CNI cache entry: %s", container_id, e)
        return None


def cached_ip(
    container_id: str,
    conf_dir: PathLike,
    cache_dir: PathLike | None = None,
    *,
    ifname: str = DEFAULT_IFNAME,
) -> str:
    """The IP from the container's cached ADD result; "" when there is none."""
    entry = cached_result(container_id, conf_dir, cache_dir, ifname=ifname)
    return first_ip(entry.result) if entry else ""
