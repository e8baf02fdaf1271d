"""Image references, spelled as containerd's Go client (and Docker) spell them.

The registry client, the importer and image lookups all parse names through
these functions. Digests, platforms and manifest selection are OCI matters and
live in :mod:`mcpmanager.oci`.
"""

from __future__ import annotations

import re

import attrs

from .errors import InvalidArgument
from .oci import check_digest

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "DOCKER_LIBRARY",
    "Reference",
    "name_candidates",
    "normalize_name",
    "parse_reference",
]

DOCKER_HUB = "docker.io"
"""How Docker Hub is written in image names."""
DOCKER_HUB_API = "registry-1.docker.io"
"""Where Docker Hub's registry API answers."""
DOCKER_LIBRARY = "docker.io/library/"
"""Prefix of Docker Hub's official images in fully qualified form."""

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
