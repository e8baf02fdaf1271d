"""Image references and platforms, spelled and matched as containerd's Go client does.

One home for both: the registry client, the importer and image lookups all
parse names and pick manifests for this host through these functions.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ..errors import InvalidArgument

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "DOCKER_LIBRARY",
    "Platform",
    "Reference",
    "check_digest",
    "host_platform",
    "is_digest",
    "name_candidates",
    "normalize_name",
    "parse_reference",
    "platform_from_json",
    "platform_satisfies",
    "runs_here",
]

DOCKER_HUB = "docker.io"
"""How Docker Hub is written in image names."""
DOCKER_HUB_API = "registry-1.docker.io"
"""Where Docker Hub's registry API answers."""
DOCKER_LIBRARY = "docker.io/library/"
"""Prefix of Docker Hub's official images in fully qualified form."""

_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_RE = re.compile(r"^(sha256|sha384|sha512):([0-9a-f]+)$")
_REPO_RE = re.compile(
    r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$"
)
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")


# ---------------------------------------------------------------- references


@attrs.frozen
class Reference:
    """A parsed image reference; ``registry`` is as written (``docker.io`` for Hub)."""

    registry: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def name(self) -> str:
        """The fully qualified name, e.g. ``docker.io/library/busybox:latest``."""
        base = f"{self.registry}/{self.repository}"
        if self.tag:
            base += f":{self.tag}"
        if self.digest:
            base += f"@{self.digest}"
        return base

    @property
    def host(self) -> str:
        """The host[:port] to send API requests to."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def object(self) -> str:
        """What to ask the manifests endpoint for: the digest if any, else the tag."""
        return self.digest or self.tag


def parse_reference(ref: str) -> Reference:
    """Parse ``ref`` like Docker: default registry ``docker.io``, ``library/``, tag ``latest``.

    Raises :class:`InvalidArgument` when ``ref`` is not a valid reference.
    """
    rest, digest = _split_digest(ref.strip(), ref)
    registry, path = _split_registry(rest)
    repository, tag = _split_tag(path)
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    if not _REPO_RE.match(repository):
        raise InvalidArgument(f"invalid image reference {ref!r}: bad repository {repository!r}")
    if tag and not _TAG_RE.match(tag):
        raise InvalidArgument(f"invalid image reference {ref!r}: bad tag {tag!r}")
    if not tag and not digest:
        tag = "latest"
    return Reference(registry=registry, repository=repository, tag=tag, digest=digest)


def _split_digest(ref: str, original: str) -> tuple[str, str]:
    if not ref:
        raise InvalidArgument("invalid image reference: empty")
    if "@" not in ref:
        return ref, ""
    rest, digest = ref.rsplit("@", 1)
    check_digest(digest, f"image reference {original!r}")
    return rest, digest


def _split_registry(ref: str) -> tuple[str, str]:
    first, sep, path = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        if first in ("index.docker.io", "registry-1.docker.io"):
            first = DOCKER_HUB
        return first, path
    return DOCKER_HUB, ref


def _split_tag(path: str) -> tuple[str, str]:
    repo, sep, tag = path.rpartition(":")
    if sep and "/" not in tag:
        return repo, tag
    return path, ""


def is_digest(digest: str) -> bool:
    """True for ``sha256:<64 hex>`` (or sha384/sha512 of the right length)."""
    match = _DIGEST_RE.match(digest)
    return match is not None and len(match.group(2)) == _DIGEST_LENGTHS[match.group(1)]


def check_digest(digest: str, what: str) -> tuple[str, str]:
    """(algorithm, hex) of a well-formed digest; InvalidArgument naming ``what`` otherwise."""
    match = _DIGEST_RE.match(digest)
    if not match or len(match.group(2)) != _DIGEST_LENGTHS[match.group(1)]:
        raise InvalidArgument(f"invalid digest {digest!r} in {what}")
    return match.group(1), match.group(2)


# ----------------------------------------------------------------- platforms


@attrs.frozen
class Platform:
    """An OCI platform: ``os``, ``architecture`` and optional ``variant``."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)


_ARCH = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i686": ("386", ""),
    "i386": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
}


def host_platform() -> Platform:
    """The platform of this machine, as the Go client's default matcher sees it."""
    machine = platform.machine().lower()
    arch, variant = _ARCH.get(machine, (machine, ""))
    return Platform(os="linux", architecture=arch, variant=variant)


def platform_satisfies(want: Platform, have: Platform) -> bool:
    """Whether an image built for ``have`` runs where ``want`` is asked for (arm64 = v8)."""
    if (want.os, want.architecture) != (have.os, have.architecture):
        return False
    if want.architecture == "arm64":
        return have.variant in ("", "v8")
    return not want.variant or have.variant in ("", want.variant)


def platform_from_json(data: Mapping[str, Any]) -> Platform:
    """A Platform from an OCI ``platform`` object (missing fields empty)."""
    return Platform(
        os=str(data.get("os", "")),
        architecture=str(data.get("architecture", "")),
        variant=str(data.get("variant", "")),
    )


def runs_here(desc: Mapping[str, Any]) -> bool:
    """True when an index entry's platform (if it names one) runs on this host."""
    plat = desc.get("platform")
    if not isinstance(plat, Mapping):
        return True
    return platform_satisfies(host_platform(), platform_from_json(plat))


def normalize_name(ref: str) -> str:
    """Qualify ``ref`` like Docker does: ``busybox`` -> ``docker.io/library/busybox:latest``."""
    return parse_reference(ref).name


def name_candidates(ref: str) -> list[str]:
    """Names under which image ``ref`` may be stored, most literal first."""
    out = [ref]
    full = normalize_name(ref)
    out.append(full)
    if full.startswith(DOCKER_LIBRARY):
        out.append(full[len(DOCKER_LIBRARY) :])
    return list(dict.fromkeys(out))
