"""Image names and platforms as containerd's Go client spells them."""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

__all__ = ["DOCKER_LIBRARY", "host_arch", "name_candidates", "normalize_name", "platform_matches"]

DOCKER_LIBRARY = "docker.io/library/"
"""Prefix of Docker Hub's official images in fully qualified form."""

_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def normalize_name(ref: str) -> str:
    """Qualify ``ref`` like Docker does: ``busybox`` -> ``docker.io/library/busybox:latest``."""
    first, sep, rest = ref.partition("/")
    if not sep or not ("." in first or ":" in first or first == "localhost"):
        ref = ("docker.io/" + ref) if sep else (DOCKER_LIBRARY + ref)
    elif first in ("index.docker.io", "registry-1.docker.io"):
        ref = "docker.io/" + rest
    if ref.startswith("docker.io/") and ref.count("/") == 1:
        ref = DOCKER_LIBRARY + ref[len("docker.io/") :]
    last = ref.rsplit("/", 1)[-1]
    if "@" not in ref and ":" not in last:
        ref += ":latest"
    return ref


def name_candidates(ref: str) -> list[str]:
    """Names under which image ``ref`` may be stored, most literal first."""
    out = [ref]
    full = normalize_name(ref)
    out.append(full)
    if full.startswith(DOCKER_LIBRARY):
        out.append(full[len(DOCKER_LIBRARY) :])
    return list(dict.fromkeys(out))


def host_arch() -> str:
    """The host's CPU architecture in OCI spelling (``amd64``, ``arm64``)."""
    machine = platform.machine().lower()
    return _ARCH.get(machine, machine)


def platform_matches(desc: Mapping[str, Any]) -> bool:
    """True when an index entry's platform (if any) runs on this host."""
    plat = desc.get("platform")
    if not isinstance(plat, Mapping):
        return True
    return plat.get("os", "linux") == "linux" and plat.get("architecture") == host_arch()
