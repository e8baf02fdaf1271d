"""One CNI network, built once, that attaches containers and detaches them.

:class:`Network` loads the first network of a conf dir and checks its plugins
once, then runs them for any number of containers: :meth:`Network.setup`,
:meth:`Network.remove` and :meth:`Network.check` on a (container ID, network
namespace path) pair, and the ``*_task`` variants on a task's process.

IP recovery reads the cache first: when the cached ADD result was written for
the very process that runs now (see :mod:`.netns`), its IP is returned without
running any plugin. Otherwise the idempotent :meth:`Network.setup` runs (CHECK
of a cached result, else ADD).
"""

from __future__ import annotations

import os

from .. import errors
from .._log import get_logger
from .cache import CachedResult
from .config import NetworkConfigList, split_bin_dirs
from .netns import netns_path, written_for
from .result import first_ip
from .runner import DEFAULT_IFNAME, DEFAULT_TIMEOUT, CNIRunner

__all__ = ["Network", "check_dirs"]

log = get_logger("mcpmanager.cni")

PathLike = str | os.PathLike[str]


def check_dirs(bin_dir: str, conf_dir: PathLike) -> None:
    """InvalidArgument when a dir is not given; FailedPrecondition naming a missing one."""
    conf = os.fspath(conf_dir)
    if not conf:
        raise errors.InvalidArgument("cni_conf_dir is empty")
    if not bin_dir:
        raise errors.InvalidArgument("cni_bin_dir is empty")
    if not os.path.isdir(conf):
        raise errors.FailedPrecondition(f"CNI config dir {conf} does not exist")
    if not any(os.path.isdir(d) for d in split_bin_dirs(bin_dir)):
        raise errors.FailedPrecondition(f"CNI bin dir {bin_dir} does not exist")


class Network:
    """The first network of ``conf_dir``, its plugins found in ``bin_dir``.

    ``bin_dir`` may be a colon-separated list. Results are cached under
    ``cache_dir`` (libcni's ``/var/lib/cni`` when None); the keyword options
    are :class:`~.runner.CNIRunner`'s. The conf dir is read once, here:
    InvalidArgument or FailedPrecondition when a dir is missing, the config
    is bad or a plugin is not installed. Thread-safe.
    """

    def __init__(
        self,
        bin_dir: str,
        conf_dir: PathLike,
        cache_dir: PathLike | None = None,
        *,
        ifname: str = DEFAULT_IFNAME,
        timeout: float = DEFAULT_TIMEOUT,
        plugin_netns: str | None = None,
        loopback: bool = True,
    ) -> None:
        check_dirs(bin_dir, conf_dir)
        self.runner = CNIRunner.from_conf_dir(
            conf_dir,
            bin_dir,
            cache_dir=cache_dir,
            ifname=ifname,
            timeout=timeout,
            plugin_netns=plugin_netns,
            loopback=loopback,
        )

    @property
    def config(self) -> NetworkConfigList:
        """The network's configuration, as loaded from the conf dir."""
        return self.runner.network

    @property
    def name(self) -> str:
        """The network's name."""
        return self.runner.network.name

    # --- on a network namespace path ------------------------------------------

    def setup(self, container_id: str, netns: str) -> str:
        """Attach the container in ``netns`` (a path, e.g. ``/proc/<pid>/ns/net``); return its IP.

        Idempotent: a container already attached (cached result, live
        namespace, CHECK passes) gets its cached IP back. FailedPrecondition
        when the network yields no usable IP (after detaching again).
        """
        ip = first_ip(self.runner.add(container_id, netns))
        if ip:
            return ip
        try:
            self.runner.delete(container_id, netns)
        except errors.MCPManagerError as e:
            log.warning(
                "container %s: CNI DEL after a result with no IP failed: %s", container_id, e
            )
        raise errors.FailedPrecondition(
            f"container {container_id} network {self.name!r}: CNI ADD returned no usable IP"
        )

    def remove(self, container_id: str, netns: str = "") -> None:
        """Detach the container; fine when it was never attached or ``netns`` is gone ("").

        Without a live namespace the cached ADD result still lets DEL release
        the IPAM address; with neither there is nothing to do.
        """
        if netns and not os.path.exists(netns):
            netns = ""
        if not netns and self.cached_result(container_id) is None:
            log.debug(
                "container %s: no namespace and no cached CNI result; nothing to remove",
                container_id,
            )
            return
        self.runner.delete(container_id, netns)

    def check(self, container_id: str, netns: str) -> None:
        """Ask every plugin whether the container's network is as ADD left it."""
        self.runner.check(container_id, netns)

    # --- on a task's process --------------------------------------------------

    def setup_task(self, container_id: str, pid: int) -> str:
        """Attach process ``pid``'s network namespace; return its IP.

        A cache entry made for this very process answers without running a plugin.
        """
        netns = netns_path(pid)
        if not os.path.exists(netns):
            raise errors.FailedPrecondition(
                f"container {container_id}: task process {pid} is gone (no {netns})"
            )
        ip = self.recorded_ip(container_id, pid)
        if ip:
            log.debug("container %s: IP %s from the CNI cache of this task", container_id, ip)
            return ip
        return self.setup(container_id, netns)

    def remove_task(self, container_id: str, pid: int) -> None:
        """Detach the container; ``pid`` 0 (or a gone process) means its namespace is gone."""
        self.remove(container_id, netns_path(pid) if pid > 0 else "")

    def recorded_ip(self, container_id: str, pid: int) -> str:
        """The cached IP if the cache entry was made for process ``pid`` as it runs now; else "".

        Runs no plugin: the entry must name ``/proc/<pid>/ns/net`` and have
        been written after that process started.
        """
        cache, ifname = self.runner.cache, self.runner.ifname
        try:
            entry = cache.read(self.name, container_id, ifname)
            if entry is None or entry.netns != netns_path(pid):
                return ""
            fresh = written_for(cache.path(self.name, container_id, ifname), pid)
        except (errors.MCPManagerError, OSError, ValueError) as e:
            log.debug("container %s: no usable CNI cache entry: %s", container_id, e)
            return ""
        return first_ip(entry.result) if fresh else ""

    # --- the cache ------------------------------------------------------------

    def cached_result(self, container_id: str) -> CachedResult | None:
        """The container's cache entry on this network, or None (also if unreadable)."""
        try:
            return self.runner.cache.read(self.name, container_id, self.runner.ifname)
        except errors.FailedPrecondition as e:
            log.warning("container %s: ignoring unusable CNI cache entry: %s", container_id, e)
            return None

    def cached_ip(self, container_id: str) -> str:
        """The IP from the container's cached ADD result; "" when there is none."""
        entry = self.cached_result(container_id)
        return first_ip(entry.result) if entry else ""
