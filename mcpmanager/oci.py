"""OCI image knowledge shared by every backend: media types, digests, platforms, manifests.

What an image index or manifest means does not depend on who stores it: the
containerd backend's pull, import and image lookups (and any later backend)
name media types, check digests and pick the manifest for a platform here.
"""

from __future__ import annotations

import platform
import re
from collections.abc import Mapping
from typing import Any

import attrs

from .errors import InvalidArgument, InvalidContent, NotFound

__all__ = [
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "MEDIA_DOCKER_CONFIG",
    "MEDIA_DOCKER_LAYER",
    "MEDIA_DOCKER_LIST",
    "MEDIA_DOCKER_MANIFEST",
    "MEDIA_OCI_INDEX",
    "MEDIA_OCI_MANIFEST",
    "Descriptor",
    "Platform",
    "check_digest",
    "host_platform",
    "is_digest",
    "is_index",
    "platform_from_json",
    "platform_satisfies",
    "runs_here",
    "select_manifest",
]

# ----------------------------------------------------------------- media types

MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
"""An OCI image index: one manifest per platform."""
MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
"""An OCI image manifest: a config and its layers."""
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
"""Docker's manifest list, the forerunner of the OCI index."""
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
"""Docker's schema 2 manifest, the forerunner of the OCI manifest."""
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
"""Docker's image config (what ``docker save`` archives hold)."""
MEDIA_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
"""An uncompressed Docker layer tar (what ``docker save`` archives hold)."""
INDEX_MEDIA_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST})
"""Media types of multi-platform indexes."""
MANIFEST_MEDIA_TYPES = frozenset({MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST})
"""Media types of single-platform manifests."""
_SELECTABLE = INDEX_MEDIA_TYPES | MANIFEST_MEDIA_TYPES

_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}
_DIGEST_RE = re.compile(r"^(sha256|sha384|sha512):([0-9a-f]+)$")


# --------------------------------------------------------------------- digests


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


# ------------------------------------------------------------------- platforms


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


# ----------------------------------------------------------------- descriptors


@attrs.frozen
class Descriptor:
    """An OCI content descriptor: what a blob is, its digest and its size in bytes."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], what: str) -> Descriptor:
        """Build from an OCI descriptor JSON object; :class:`InvalidContent` if malformed."""
        try:
            digest = str(data["digest"])
            size = int(data["size"])
            plat = data.get("platform")
            return cls(
                media_type=str(data.get("mediaType", "")),
                digest=digest,
                size=size,
                platform=platform_from_json(plat) if isinstance(plat, Mapping) else None,
                annotations=dict(data.get("annotations") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidContent(f"malformed descriptor in {what}: {exc}") from exc

    def __attrs_post_init__(self) -> None:
        if self.size < 0 or not is_digest(self.digest):
            raise InvalidContent(f"bad descriptor: digest {self.digest!r}, size {self.size}")


def select_manifest(
    index: Mapping[str, Any], want: Platform | None = None, what: str = "index"
) -> Descriptor:
    """Pick the child of an image index to use on ``want`` (default: this host).

    As containerd's Go client does: among the children that are manifests or
    indexes (or say no media type), the first whose platform satisfies
    ``want`` wins, else the first that names no platform. Raises
    :class:`NotFound` naming the platforms on offer when none fits, and
    :class:`InvalidContent` for a malformed child.
    """
    want = want or host_platform()
    children = [Descriptor.from_json(m, what) for m in index.get("manifests") or []]
    offered = [c for c in children if c.media_type in _SELECTABLE or not c.media_type]
    for child in offered:
        if child.platform is not None and platform_satisfies(want, child.platform):
            return child
    for child in offered:
        if child.platform is None:
            return child
    names = ", ".join(str(c.platform) for c in offered if c.platform) or "none"
    raise NotFound(f"{what} has no manifest for platform {want} (offers: {names})")


def is_index(media_type: str, document: Mapping[str, Any]) -> bool:
    """Whether a manifest-like document is an image index (by type, or by shape if untyped)."""
    return media_type in INDEX_MEDIA_TYPES or "manifests" in document
