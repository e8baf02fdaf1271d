"""The fake's simulated registry and its reading of image archives.

What :class:`~mcpmanager.fake.FakeContainerService` pretends a registry
serves (a digest per image, three layers with real sizes, names it does not
have, or no answer at all), and the name and digest an OCI-layout or
``docker save`` archive describes, read as containerd's importer reads them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
from typing import Any, BinaryIO

from . import errors
from .refs import normalize_name

__all__ = ["SimulatedRegistry", "digest_of", "read_archive_index"]

_LAYER_SIZES = (2_812_416, 18_350_080, 524_288)
"""Bytes of the layers the simulated registry reports for every image (a small distro image)."""


def digest_of(text: str) -> str:
    """A sha256 digest of ``text``: the stand-in for content the fake never stores."""
    return digest_of_bytes(text.encode())


def digest_of_bytes(data: bytes) -> str:
    """The sha256 digest of ``data``, as an OCI digest string."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class SimulatedRegistry:
    """What the fake's pulls and upgrade checks get from "the registry". Thread-safe.

    Every image exists with a digest derived from its name, unless
    :meth:`serve` set another one or :meth:`remove` took it away; while
    :attr:`unreachable` is set, every question fails as a network error would.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._digests: dict[str, str] = {}
        self._absent: set[str] = set()
        self.unreachable = False
        """When True, the registry cannot be reached (pull and resolve fail)."""

    def serve(self, ref: str, digest: str) -> None:
        """Serve ``digest`` for ``ref`` from now on."""
        name = normalize_name(ref)
        if not digest.startswith("sha256:"):
            raise errors.InvalidArgument(f"digest {digest!r} must start with 'sha256:'")
        with self._lock:
            self._digests[name] = digest
            self._absent.discard(name)

    def remove(self, ref: str) -> None:
        """Answer NotFound for ``ref`` until it is served again."""
        name = normalize_name(ref)
        with self._lock:
            self._digests.pop(name, None)
            self._absent.add(name)

    def digest(self, name: str) -> str:
        """What is served for the normalised ``name``: Unavailable or NotFound when nothing is."""
        if self.unreachable:
            raise errors.Unavailable(f"cannot reach the registry of {name}: it is unreachable")
        with self._lock:
            if name in self._absent:
                raise errors.NotFound(f"image {name} not found in its registry")
            return self._digests.get(name) or digest_of(name)

    @staticmethod
    def layers(image_id: str) -> list[tuple[str, int]]:
        """(digest, size) of an image's layers, the same for the same image."""
        return [(digest_of(f"{image_id}/layer{i}"), size) for i, size in enumerate(_LAYER_SIZES)]


def read_archive_index(archive: str | os.PathLike[str] | BinaryIO) -> tuple[str, str]:
    """Image name and manifest digest of an OCI-layout or ``docker save`` tar."""
    try:
        with _open_tar(archive) as tar:
            names = set(tar.getnames())
            if "index.json" in names:
                return _oci_index(_read_json(tar, "index.json"))
            if "manifest.json" in names:
                return _docker_manifest(tar)
    except (tarfile.TarError, OSError, ValueError, KeyError) as exc:
        raise errors.InvalidArgument(f"cannot read image archive: {exc}") from exc
    raise errors.InvalidArgument("image archive has neither index.json nor manifest.json")


def _open_tar(archive: str | os.PathLike[str] | BinaryIO) -> tarfile.TarFile:
    if isinstance(archive, (str, os.PathLike)):
        if not os.path.isfile(archive):
            raise errors.NotFound(f"image archive {os.fspath(archive)} does not exist")
        return tarfile.open(os.fspath(archive), mode="r:*")
    return tarfile.open(fileobj=archive, mode="r:*")


def _read_json(tar: tarfile.TarFile, name: str) -> Any:
    member = tar.extractfile(name)
    if member is None:
        raise ValueError(f"{name} is not a file")
    return json.load(io.TextIOWrapper(member, encoding="utf-8"))


def _oci_index(index: Any) -> tuple[str, str]:
    manifest = index["manifests"][0]
    annotations = manifest.get("annotations") or {}
    name = str(annotations.get("io.containerd.image.name", ""))
    if not name:
        # As containerd: a ref.name annotation names the image only when it is a full reference.
        ref_name = str(annotations.get("org.opencontainers.image.ref.name", ""))
        name = normalize_name(ref_name) if "/" in ref_name or ":" in ref_name else ""
    return name, str(manifest["digest"])


def _docker_manifest(tar: tarfile.TarFile) -> tuple[str, str]:
    entry = _read_json(tar, "manifest.json")[0]
    tags = entry.get("RepoTags") or [""]
    member = tar.extractfile(entry["Config"])
    if member is None:
        raise ValueError("config is not a file")
    return normalize_name(tags[0]) if tags[0] else "", digest_of_bytes(member.read())
