"""Image records and the manifests/configs they point at."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from typing import Any

import attrs

from .. import errors
from ..oci import INDEX_MEDIA_TYPES, is_index, select_manifest
from ..refs import name_candidates
from ..types import ImageInfo
from ._conn import Connection
from .api import descriptor_pb2, images_pb2
from .content import read_blob

__all__ = [
    "INDEX_TYPES",
    "ManifestCache",
    "ResolvedImage",
    "chain_ids",
    "delete_image",
    "get_image_record",
    "list_images",
    "load_json",
    "pick_manifest",
    "put_image",
    "resolve_image",
    "to_image_info",
]

INDEX_TYPES = INDEX_MEDIA_TYPES
"""Media types of multi-platform indexes (:data:`mcpmanager.oci.INDEX_MEDIA_TYPES`)."""


@attrs.frozen
class ResolvedImage:
    """An image record with its platform manifest and config loaded."""

    name: str
    target: str
    manifest_digest: str
    manifest: Mapping[str, Any]
    config: Mapping[str, Any]

    @property
    def diff_ids(self) -> list[str]:
        """Uncompressed layer digests from the config's rootfs."""
        return list(self.config.get("rootfs", {}).get("diff_ids", []))


def to_image_info(image: images_pb2.Image) -> ImageInfo:
    """Convert containerd's image record to :class:`ImageInfo`."""
    return ImageInfo(name=image.name, id=image.target.digest, tags=(image.name,))


def get_image_record(conn: Connection, ref: str) -> images_pb2.Image:
    """Return the image stored as ``ref`` or under its short/qualified Docker Hub name."""
    if not ref:
        raise errors.InvalidArgument("image reference is empty")
    first: errors.NotFound | None = None
    for name in name_candidates(ref):
        try:
            resp = conn.unary(
                conn.images.Get, images_pb2.GetImageRequest(name=name), what=f"get image {name}"
            )
            image: images_pb2.Image = resp.image
            return image
        except errors.NotFound as err:
            first = first or err
    raise errors.NotFound(f"image {ref} not found") from first


def list_images(conn: Connection) -> list[images_pb2.Image]:
    """Return every image record of the namespace."""
    resp = conn.unary(conn.images.List, images_pb2.ListImagesRequest(), what="list images")
    return list(resp.images)


def delete_image(conn: Connection, ref: str, synchronous: bool) -> None:
    """Delete image record ``ref`` (waiting for garbage collection if ``synchronous``)."""
    image = get_image_record(conn, ref)
    conn.unary(
        conn.images.Delete,
        images_pb2.DeleteImageRequest(name=image.name, sync=synchronous),
        what=f"delete image {image.name}",
        idempotent=False,
        timeout=120.0 if synchronous else None,
    )


def put_image(
    conn: Connection, name: str, media_type: str, digest: str, size: int
) -> images_pb2.Image:
    """Create image record ``name`` -> target, or repoint it when it exists."""
    target = descriptor_pb2.Descriptor(media_type=media_type, digest=digest, size=size)
    image = images_pb2.Image(name=name, target=target)
    what = f"create image {name}"
    try:
        return conn.unary(
            conn.images.Create,
            images_pb2.CreateImageRequest(image=image),
            what=what,
            idempotent=False,
        ).image
    except errors.AlreadyExists:
        return conn.unary(
            conn.images.Update,
            images_pb2.UpdateImageRequest(image=image),
            what=f"update image {name}",
        ).image


def load_json(conn: Connection, digest: str) -> Mapping[str, Any]:
    """Read blob ``digest`` and parse it as a JSON object."""
    try:
        data = json.loads(read_blob(conn, digest))
    except ValueError as err:
        raise errors.InvalidArgument(f"blob {digest} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise errors.InvalidArgument(f"blob {digest} is not a JSON object")
    return data


def pick_manifest(conn: Connection, media_type: str, digest: str) -> tuple[str, Mapping[str, Any]]:
    """Follow indexes from ``digest`` to the manifest for this host; return it and its digest.

    Each index's child is chosen by :func:`mcpmanager.oci.select_manifest`, as a pull does.
    """
    for _ in range(4):
        doc = load_json(conn, digest)
        if not is_index(media_type, doc):
            return digest, doc
        chosen = select_manifest(doc, what=f"index {digest}")
        media_type, digest = chosen.media_type, chosen.digest
    raise errors.InvalidArgument(f"index {digest} nests too deeply")


_Loaded = tuple[str, Mapping[str, Any], Mapping[str, Any]]


class ManifestCache:
    """Platform manifest and config per image target digest, shared by threads.

    Blobs are addressed by digest, so an entry can never be stale: a second
    container of one image costs one ``Images.Get`` instead of three calls
    more. Holds ``size`` targets at most (the oldest entry goes first).
    """

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: dict[str, _Loaded] = {}

    def get(self, target: str) -> _Loaded | None:
        """The (manifest digest, manifest, config) of ``target``, if cached."""
        with self._lock:
            return self._entries.get(target)

    def put(self, target: str, loaded: _Loaded) -> None:
        """Remember what ``target`` resolves to."""
        with self._lock:
            self._entries[target] = loaded
            while len(self._entries) > self._size:
                del self._entries[next(iter(self._entries))]


def resolve_image(conn: Connection, ref: str, cache: ManifestCache | None = None) -> ResolvedImage:
    """Load ``ref``'s record, platform manifest and config (those from ``cache`` if there)."""
    record = get_image_record(conn, ref)
    loaded = cache.get(record.target.digest) if cache is not None else None
    if loaded is None:
        manifest_digest, manifest = pick_manifest(
            conn, record.target.media_type, record.target.digest
        )
        loaded = (manifest_digest, manifest, load_json(conn, manifest["config"]["digest"]))
        if cache is not None:
            cache.put(record.target.digest, loaded)
    manifest_digest, manifest, config = loaded
    return ResolvedImage(
        name=record.name,
        target=record.target.digest,
        manifest_digest=manifest_digest,
        manifest=manifest,
        config=config,
    )


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The snapshot names of each layer prefix (OCI image-spec ChainID)."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            joined = f"{out[-1]} {diff_id}".encode()
            out.append("sha256:" + hashlib.sha256(joined).hexdigest())
    return out
