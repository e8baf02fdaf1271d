"""The CNI result cache, in libcni's on-disk layout.

``<cache dir>/results/<network>-<container id>-<ifname>`` holds a JSON object
of kind ``cniCacheV1`` with the ADD result, so DEL and CHECK get it as
``prevResult`` and another process can read a running container's IP.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

import attrs

from .. import errors
from .._atomic import atomic_write
from .exec import pairs

__all__ = ["CACHE_KIND", "DEFAULT_CACHE_DIR", "CachedResult", "ResultCache"]


DEFAULT_CACHE_DIR = "/var/lib/cni"
CACHE_KIND = "cniCacheV1"

JSONObject = dict[str, Any]


@attrs.frozen
class CachedResult:
    """One cache entry: the ADD result and what it was made with.

    ``netns`` is not in libcni's format (libcni ignores it); it is "" in
    entries written by other tools.
    """

    container_id: str
    network_name: str
    ifname: str
    config: bytes
    result: JSONObject
    netns: str = ""
    cni_args: tuple[tuple[str, str], ...] = ()
    capability_args: JSONObject = attrs.field(factory=dict)


class ResultCache:
    """Read, write and remove cache entries under ``cache_dir``."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.cache_dir = os.fspath(cache_dir) if cache_dir else DEFAULT_CACHE_DIR

    def path(self, network_name: str, container_id: str, ifname: str) -> str:
        """The file of one entry (it may not exist)."""
        return os.path.join(self.cache_dir, "results", f"{network_name}-{container_id}-{ifname}")

    def read(self, network_name: str, container_id: str, ifname: str) -> CachedResult | None:
        """The entry, or None when there is none; FailedPrecondition if it is unreadable."""
        path = self.path(network_name, container_id, ifname)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise errors.FailedPrecondition(f"cannot read CNI cache {path}: {e.strerror}") from e
        return _decode(data, path)

    def write(self, entry: CachedResult) -> None:
        """Store ``entry`` atomically (mode 0600, dirs 0700, as libcni does)."""
        path = self.path(entry.network_name, entry.container_id, entry.ifname)
        data = json.dumps(_encode(entry), separators=(",", ":")).encode()
        try:
            atomic_write(path, lambda f: f.write(data), dir_mode=0o700)
        except OSError as e:
            raise errors.FailedPrecondition(f"cannot write CNI cache {path}: {e.strerror}") from e

    def delete(self, network_name: str, container_id: str, ifname: str) -> None:
        """Remove the entry if it exists."""
        path = self.path(network_name, container_id, ifname)
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise errors.FailedPrecondition(f"cannot remove CNI cache {path}: {e.strerror}") from e


def _encode(entry: CachedResult) -> JSONObject:
    obj: JSONObject = {
        "kind": CACHE_KIND,
        "containerId": entry.container_id,
        "config": base64.b64encode(entry.config).decode("ascii"),
        "ifName": entry.ifname,
        "networkName": entry.network_name,
    }
    if entry.netns:
        obj["netns"] = entry.netns
    if entry.cni_args:
        obj["cniArgs"] = [list(kv) for kv in entry.cni_args]
    if entry.capability_args:
        obj["capabilityArgs"] = entry.capability_args
    obj["result"] = entry.result
    return obj


def _decode(data: bytes, path: str) -> CachedResult:
    try:
        obj = json.loads(data)
        if not isinstance(obj, dict) or obj.get("kind") != CACHE_KIND:
            raise ValueError(f"not a {CACHE_KIND} entry")
        result = obj.get("result") or {}
        if not isinstance(result, dict):
            raise ValueError("'result' is not an object")
        return CachedResult(
            container_id=str(obj["containerId"]),
            network_name=str(obj["networkName"]),
            ifname=str(obj["ifName"]),
            config=base64.b64decode(obj.get("config") or ""),
            result=result,
            netns=str(obj.get("netns", "")),
            cni_args=pairs(obj.get("cniArgs") or ()),
            capability_args=dict(obj.get("capabilityArgs") or {}),
        )
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise errors.FailedPrecondition(f"corrupt CNI cache {path}: {e}") from None
