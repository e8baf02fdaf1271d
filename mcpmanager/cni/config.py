"""Loading a CNI network configuration from a conf dir, as libcni does.

The first file by name with extension ``.conflist``, ``.conf`` or ``.json``
is the network; a single-plugin ``.conf``/``.json`` is wrapped into a list of
one plugin. Plugin executables are looked up in one or more bin dirs.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from .. import errors

__all__ = [
    "CONF_EXTENSIONS",
    "NetworkConfigList",
    "find_plugin",
    "load_network_config",
    "parse_network_config",
    "split_bin_dirs",
    "version_tuple",
]

CONF_EXTENSIONS = (".conf", ".conflist", ".json")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")

JSONObject = dict[str, Any]


@attrs.frozen
class NetworkConfigList:
    """One CNI network: its plugins in chain order, plus the raw bytes it came from.

    ``raw`` is what libcni caches as the network's ``config``; ``path`` is the
    file it was read from ("" when built from bytes).
    """

    name: str
    cni_version: str
    plugins: tuple[JSONObject, ...]
    raw: bytes
    disable_check: bool = False
    path: str = ""

    def plugin_types(self) -> tuple[str, ...]:
        """The ``type`` of each plugin, in chain order."""
        return tuple(str(p["type"]) for p in self.plugins)


def version_tuple(version: str) -> tuple[int, int, int]:
    """``"1.0.0"`` -> ``(1, 0, 0)``; InvalidArgument if it is not ``X.Y.Z``."""
    m = _VERSION_RE.match(version)
    if m is None:
        raise errors.InvalidArgument(f"invalid CNI version {version!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def split_bin_dirs(bin_dir: str | Sequence[str]) -> tuple[str, ...]:
    """A colon-separated list (like ``CNI_PATH``) or a sequence of dirs, empties dropped."""
    parts = bin_dir.split(os.pathsep) if isinstance(bin_dir, str) else list(bin_dir)
    return tuple(p for p in parts if p)


def find_plugin(plugin_type: str, bin_dirs: Sequence[str]) -> str:
    """The path of the executable for ``plugin_type``: the first bin dir that has it."""
    if not plugin_type or "/" in plugin_type:
        raise errors.InvalidArgument(f"invalid CNI plugin type {plugin_type!r}")
    for d in bin_dirs:
        path = os.path.join(d, plugin_type)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    raise errors.FailedPrecondition(
        f"CNI plugin {plugin_type!r} not found in {os.pathsep.join(bin_dirs) or '(no bin dir)'}"
    )


def load_network_config(
    conf_dir: str | os.PathLike[str], bin_dirs: Sequence[str] | None = None
) -> NetworkConfigList:
    """Load the first network in ``conf_dir``; with ``bin_dirs``, check every plugin exists."""
    path = _first_conf_file(os.fspath(conf_dir))
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise errors.FailedPrecondition(f"cannot read CNI config {path}: {e.strerror}") from e
    network = parse_network_config(data, path)
    if bin_dirs is not None:
        for plugin_type in network.plugin_types():
            try:
                find_plugin(plugin_type, bin_dirs)
            except errors.FailedPrecondition as e:
                raise errors.FailedPrecondition(f"CNI config {path}: {e}") from None
    return network


def parse_network_config(data: bytes, path: str = "") -> NetworkConfigList:
    """Parse a ``.conflist`` (or, when ``path`` says so, a single-plugin ``.conf``)."""
    where = path or "<bytes>"
    obj = _decode_object(data, where)
    if path and not path.endswith(".conflist"):
        return _wrap_single(obj, data, where)
    return _from_list(obj, data, where)


def _first_conf_file(conf_dir: str) -> str:
    try:
        names = sorted(os.listdir(conf_dir))
    except FileNotFoundError:
        raise errors.FailedPrecondition(f"CNI config dir {conf_dir} does not exist") from None
    except OSError as e:
        raise errors.FailedPrecondition(f"cannot list CNI config dir {conf_dir}: {e}") from e
    for name in names:
        full = os.path.join(conf_dir, name)
        if os.path.splitext(name)[1] in CONF_EXTENSIONS and os.path.isfile(full):
            return full
    raise errors.FailedPrecondition(
        f"no CNI network config (*.conflist, *.conf, *.json) in {conf_dir}"
    )


def _decode_object(data: bytes, where: str) -> JSONObject:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise errors.InvalidArgument(f"CNI config {where} is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise errors.InvalidArgument(f"CNI config {where} is not a JSON object")
    return obj


def _wrap_single(obj: JSONObject, data: bytes, where: str) -> NetworkConfigList:
    if "plugins" in obj and "type" not in obj:
        raise errors.InvalidArgument(
            f"CNI config {where} has a plugin list: name it *.conflist, not *.conf"
        )
    _check_plugin(obj, 0, where)
    name = _check_name(obj.get("name"), where)
    version = _check_version(obj.get("cniVersion"), where)
    wrapped = {"cniVersion": version, "name": name, "plugins": [obj]}
    raw = json.dumps(wrapped, separators=(",", ":")).encode()
    return NetworkConfigList(name, version, (dict(obj),), raw, path=where)


def _from_list(obj: JSONObject, data: bytes, where: str) -> NetworkConfigList:
    name = _check_name(obj.get("name"), where)
    version = _check_version(obj.get("cniVersion"), where)
    plugins = obj.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise errors.InvalidArgument(f"CNI config {where} has no 'plugins' list (or it is empty)")
    for i, plugin in enumerate(plugins):
        _check_plugin(plugin, i, where)
    disable_check = obj.get("disableCheck", False)
    if not isinstance(disable_check, bool):
        raise errors.InvalidArgument(f"CNI config {where}: 'disableCheck' must be a boolean")
    return NetworkConfigList(
        name, version, tuple(dict(p) for p in plugins), data, disable_check, path=where
    )


def _check_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise errors.InvalidArgument(
            f"CNI config {where}: invalid or missing network name {name!r}"
        )
    return name


def _check_version(version: object, where: str) -> str:
    if not isinstance(version, str) or _VERSION_RE.match(version) is None:
        raise errors.InvalidArgument(
            f"CNI config {where}: invalid or missing cniVersion {version!r}"
        )
    return version


def _check_plugin(plugin: object, index: int, where: str) -> None:
    if not isinstance(plugin, Mapping):
        raise errors.InvalidArgument(f"CNI config {where}: plugin {index} is not a JSON object")
    plugin_type = plugin.get("type")
    if not isinstance(plugin_type, str) or not plugin_type or "/" in plugin_type:
        raise errors.InvalidArgument(
            f"CNI config {where}: plugin {index} has an invalid or missing 'type'"
        )
