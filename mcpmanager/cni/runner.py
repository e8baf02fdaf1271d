"""Running a CNI network's plugin chain for a container: ADD, DEL and CHECK.

Follows the CNI spec and libcni: ADD runs the plugins in order, each getting
the previous one's result as ``prevResult``; the final result is cached; DEL
runs them in reverse with the cached result; CHECK runs them in order with it.
ADD is idempotent for a container whose cached result still checks out.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

import attrs

from .. import errors
from .._locks import KeyedLocks
from .._log import get_logger
from .cache import CachedResult, ResultCache
from .config import (
    NetworkConfigList,
    find_plugin,
    load_network_config,
    split_bin_dirs,
    version_tuple,
)
from .errors import CNIError
from .exec import PluginCall, pairs, run_plugin

__all__ = ["DEFAULT_IFNAME", "DEFAULT_TIMEOUT", "CNIRunner"]

log = get_logger("mcpmanager.cni")

DEFAULT_IFNAME = "eth0"
DEFAULT_TIMEOUT = 30.0
LOOPBACK_NETWORK = "cni-loopback"
_PREV_RESULT_VERSION = (0, 4, 0)
_RETRY_MARKERS = ("duplicate allocation", "already exists")
# One lock per cache entry, process-wide (runners for the same network share it):
# operations on one container's network are serialised, different containers never wait.
_ENTRY_LOCKS = KeyedLocks()

JSONObject = dict[str, Any]


@attrs.frozen
class _Target:
    """The container an operation is for, and the arguments passed to every plugin."""

    container_id: str
    netns: str
    cni_args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = attrs.field(factory=dict)


class CNIRunner:
    """Runs one network's plugins for containers and keeps their results cached.

    ``bin_dirs`` is a colon-separated list (like ``CNI_PATH``) or a sequence.
    ``plugin_netns`` names a network namespace (under ``/var/run/netns``) the
    plugins run in instead of ours, so the bridge and host-side veths live
    there. With ``loopback`` the container's ``lo`` is brought up on ADD.
    Thread-safe; operations on one container are serialized.
    """

    def __init__(
        self,
        network: NetworkConfigList,
        bin_dirs: str | Sequence[str],
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        ifname: str = DEFAULT_IFNAME,
        timeout: float = DEFAULT_TIMEOUT,
        plugin_netns: str | None = None,
        loopback: bool = True,
    ) -> None:
        _check_ifname(ifname)
        self.network = network
        self.bin_dirs = split_bin_dirs(bin_dirs)
        self.cache = ResultCache(cache_dir)
        self.ifname = ifname
        self.timeout = timeout
        self.loopback = loopback
        self._prefix = ("ip", "netns", "exec", plugin_netns) if plugin_netns else ()

    @classmethod
    def from_conf_dir(
        cls, conf_dir: str | os.PathLike[str], bin_dirs: str | Sequence[str], **kwargs: Any
    ) -> CNIRunner:
        """Load the first network in ``conf_dir`` and check its plugins are in ``bin_dirs``."""
        network = load_network_config(conf_dir, split_bin_dirs(bin_dirs))
        return cls(network, bin_dirs, **kwargs)

    # --- public operations -------------------------------------------------

    def add(
        self,
        container_id: str,
        netns: str,
        *,
        cni_args: Sequence[tuple[str, str]] | Mapping[str, str] = (),
        capability_args: Mapping[str, Any] | None = None,
    ) -> JSONObject:
        """Attach the container in ``netns`` (a path) to the network; return the CNI result.

        A cached result whose namespace is still there and passes CHECK is
        returned without running ADD again.
        """
        target = self._target(container_id, netns, cni_args, capability_args)
        if not os.path.exists(netns):
            raise errors.NotFound(
                f"{self._what(container_id)}: network namespace {netns} not found"
            )
        with self._lock(container_id):
            cached = self._read_cache(container_id)
            if cached is not None:
                if self._reusable(cached, target):
                    log.debug("%s: reusing cached CNI result", self._what(container_id))
                    return cached.result
                self._delete_quietly(target, cached.result, "stale cached result")
            self._bring_up_lo(target)
            return self._add_with_retry(target)

    def delete(
        self,
        container_id: str,
        netns: str,
        *,
        cni_args: Sequence[tuple[str, str]] | Mapping[str, str] = (),
        capability_args: Mapping[str, Any] | None = None,
    ) -> None:
        """Detach the container; works when nothing is cached or ``netns`` is gone (or "")."""
        target = self._target(container_id, netns, cni_args, capability_args, need_netns=False)
        with self._lock(container_id):
            cached = self._read_cache(container_id)
            self._delete_chain(target, cached.result if cached else None)
            self.cache.delete(self.network.name, container_id, self.ifname)

    def check(
        self,
        container_id: str,
        netns: str,
        *,
        cni_args: Sequence[tuple[str, str]] | Mapping[str, str] = (),
        capability_args: Mapping[str, Any] | None = None,
    ) -> None:
        """Ask every plugin whether the container's network is as ADD left it."""
        target = self._target(container_id, netns, cni_args, capability_args)
        what = self._what(container_id)
        if version_tuple(self.network.cni_version) < _PREV_RESULT_VERSION:
            raise errors.NotSupported(f"{what}: CNI {self.network.cni_version} has no CHECK")
        with self._lock(container_id):
            cached = self._read_cache(container_id)
            if cached is None:
                raise errors.FailedPrecondition(f"{what}: no cached CNI result to check")
            if not self.network.disable_check:
                self._run_chain("CHECK", target, cached.result)

    def cached_result(self, container_id: str) -> JSONObject | None:
        """The cached ADD result of the container, or None."""
        cached = self._read_cache(container_id)
        return cached.result if cached else None

    # --- ADD ----------------------------------------------------------------

    def _add_with_retry(self, target: _Target) -> JSONObject:
        try:
            return self._add_chain(target)
        except errors.MCPManagerError as e:
            if not (isinstance(e, CNIError) and _retryable(e)):
                self._delete_quietly(target, None, "failed ADD")
                raise
            log.warning(
                "%s: CNI ADD failed, cleaning up and retrying once: %s",
                self._what(target.container_id),
                e,
            )
            if _bridge_mac_error(e):
                self._delete_bridges()
            self._delete_quietly(target, None, "retry")
        try:
            return self._add_chain(target)
        except errors.MCPManagerError:
            self._delete_quietly(target, None, "failed ADD")
            raise

    def _add_chain(self, target: _Target) -> JSONObject:
        result: JSONObject | None = None
        for plugin in self.network.plugins:
            out = self._invoke("ADD", plugin, target, result)
            if out is None:
                raise CNIError(
                    f"{self._what(target.container_id)}: CNI plugin {plugin['type']!r} "
                    "printed no result (ADD)",
                    plugin=str(plugin["type"]),
                    command="ADD",
                )
            result = out
        assert result is not None  # the config has at least one plugin
        self.cache.write(
            CachedResult(
                container_id=target.container_id,
                network_name=self.network.name,
                ifname=self.ifname,
                config=self.network.raw,
                result=result,
                netns=target.netns,
                cni_args=target.cni_args,
                capability_args=dict(target.capability_args),
            )
        )
        return result

    def _reusable(self, cached: CachedResult, target: _Target) -> bool:
        if cached.netns and cached.netns != target.netns:
            return False
        if self.network.disable_check or not self._passes_prev_result():
            return True
        try:
            self._run_chain("CHECK", target, cached.result)
        except errors.MCPManagerError as e:
            log.warning(
                "%s: cached CNI result failed CHECK, re-adding: %s",
                self._what(target.container_id),
                e,
            )
            return False
        return True

    # --- DEL ----------------------------------------------------------------

    def _delete_chain(self, target: _Target, prev: JSONObject | None) -> None:
        prev = prev if self._passes_prev_result() else None
        for plugin in reversed(self.network.plugins):
            self._invoke("DEL", plugin, target, prev)

    def _delete_quietly(self, target: _Target, prev: JSONObject | None, why: str) -> None:
        try:
            self._delete_chain(target, prev)
            self.cache.delete(self.network.name, target.container_id, self.ifname)
        except errors.MCPManagerError as e:
            log.warning("%s: CNI DEL after %s failed: %s", self._what(target.container_id), why, e)

    def _delete_bridges(self) -> None:
        for plugin in self.network.plugins:
            if plugin.get("type") == "bridge":
                name = str(plugin.get("bridge") or "cni0")
                log.warning("deleting stale bridge %s of network %s", name, self.network.name)
                argv = [*self._prefix, "ip", "link", "delete", name]
                self._run_tool(argv, f"delete bridge {name}")

    # --- plumbing -----------------------------------------------------------

    def _run_chain(self, command: str, target: _Target, prev: JSONObject | None) -> None:
        for plugin in self.network.plugins:
            self._invoke(command, plugin, target, prev)

    def _invoke(
        self, command: str, plugin: JSONObject, target: _Target, prev: JSONObject | None
    ) -> JSONObject | None:
        call = self._call(command, str(plugin["type"]), target, self.ifname)
        log.debug("%s: running CNI plugin %s (%s)", call.what, call.plugin, command)
        return run_plugin(call, self._plugin_config(plugin, prev, target))

    def _call(self, command: str, plugin_type: str, target: _Target, ifname: str) -> PluginCall:
        what = self._what(target.container_id)
        try:
            path = find_plugin(plugin_type, self.bin_dirs)
        except errors.FailedPrecondition as e:
            raise errors.FailedPrecondition(f"{what}: {command}: {e}") from None
        return PluginCall(
            plugin_path=path,
            command=command,
            container_id=target.container_id,
            netns=target.netns,
            ifname=ifname,
            bin_dirs=self.bin_dirs,
            cni_args=target.cni_args,
            prefix=self._prefix,
            timeout=self.timeout,
            what=what,
        )

    def _plugin_config(
        self, plugin: JSONObject, prev: JSONObject | None, target: _Target
    ) -> JSONObject:
        config = dict(plugin)
        config["name"] = self.network.name
        config["cniVersion"] = self.network.cni_version
        if prev is not None:
            config["prevResult"] = prev
        runtime = _runtime_config(plugin, target.capability_args)
        if runtime:
            config["runtimeConfig"] = runtime
        return config

    def _bring_up_lo(self, target: _Target) -> None:
        if not self.loopback:
            return
        try:
            call = self._call("ADD", "loopback", target, "lo")
        except errors.FailedPrecondition:
            self._run_tool(
                ["nsenter", f"--net={target.netns}", "ip", "link", "set", "lo", "up"],
                f"bring up lo of container {target.container_id}",
                strict=True,
            )
            return
        config = {"cniVersion": self.network.cni_version, "name": LOOPBACK_NETWORK}
        run_plugin(call, {**config, "type": "loopback"})

    def _run_tool(self, argv: list[str], what: str, *, strict: bool = False) -> None:
        try:
            proc = subprocess.run(argv, capture_output=True, timeout=self.timeout, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            if strict:
                raise errors.FailedPrecondition(f"{what}: {e}") from e
            log.warning("%s: %s", what, e)
            return
        if proc.returncode != 0:
            msg = f"{what}: {proc.stderr.decode(errors='replace').strip()}"
            if strict:
                raise errors.FailedPrecondition(msg)
            log.warning("%s", msg)

    def _read_cache(self, container_id: str) -> CachedResult | None:
        try:
            return self.cache.read(self.network.name, container_id, self.ifname)
        except errors.FailedPrecondition as e:
            log.warning("%s: ignoring unusable CNI cache entry: %s", self._what(container_id), e)
            return None

    def _passes_prev_result(self) -> bool:
        return version_tuple(self.network.cni_version) >= _PREV_RESULT_VERSION

    def _target(
        self,
        container_id: str,
        netns: str,
        cni_args: Sequence[tuple[str, str]] | Mapping[str, str],
        capability_args: Mapping[str, Any] | None,
        *,
        need_netns: bool = True,
    ) -> _Target:
        _check_container_id(container_id)
        if (need_netns or netns) and not os.path.isabs(netns):
            raise errors.InvalidArgument(
                f"{self._what(container_id)}: network namespace must be an absolute path, "
                f"got {netns!r}"
            )
        return _Target(container_id, netns, pairs(cni_args), dict(capability_args or {}))

    def _lock(self, container_id: str) -> AbstractContextManager[None]:
        return _ENTRY_LOCKS.hold(self.cache.path(self.network.name, container_id, self.ifname))

    def _what(self, container_id: str) -> str:
        return f"container {container_id} network {self.network.name!r}"


def _runtime_config(plugin: Mapping[str, Any], capability_args: Mapping[str, Any]) -> JSONObject:
    capabilities = plugin.get("capabilities")
    if not isinstance(capabilities, Mapping):
        return {}
    return {k: v for k, v in capability_args.items() if capabilities.get(k) is True}


def _retryable(err: CNIError) -> bool:
    text = str(err).lower()
    return any(m in text for m in _RETRY_MARKERS) or _bridge_mac_error(err)


def _bridge_mac_error(err: CNIError) -> bool:
    text = str(err).lower()
    return "set bridge" in text and "mac" in text


def _check_container_id(container_id: str) -> None:
    ok = bool(container_id) and (container_id[0].isascii() and container_id[0].isalnum())
    ok = ok and all(c.isascii() and (c.isalnum() or c in "_.-") for c in container_id)
    if not ok:
        raise errors.InvalidArgument(f"invalid container ID for CNI: {container_id!r}")


def _check_ifname(ifname: str) -> None:
    bad = not ifname or len(ifname) > 15 or ifname in (".", "..")
    if bad or any(c in "/:" or c.isspace() for c in ifname):
        raise errors.InvalidArgument(f"invalid interface name for CNI: {ifname!r}")
