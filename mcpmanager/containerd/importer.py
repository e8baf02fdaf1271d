"""Import an image archive (OCI image layout or ``docker save`` tar) into containerd.

Blobs go through the Content service with the garbage-collection labels the
Go client sets, the image record is created (or repointed), and the image is
unpacked into the snapshotter; all under one lease so nothing is collected
half-way.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any, BinaryIO

import attrs

from .. import errors
from .._log import get_logger
from ..oci import MEDIA_DOCKER_CONFIG, MEDIA_DOCKER_LAYER, MEDIA_DOCKER_MANIFEST, runs_here
from ..refs import normalize_name
from ..types import ImageInfo
from ._conn import Connection
from .content import write_blob
from .images import INDEX_TYPES, load_json, pick_manifest, put_image, to_image_info
from .unpack import unpack

__all__ = ["import_archive"]

log = get_logger("mcpmanager.containerd")

IMAGE_NAME_ANNOTATION = "io.containerd.image.name"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
GC_CONTENT = "containerd.io/gc.ref.content."


@attrs.frozen
class _Entry:
    """One image of an archive: its name and the target descriptor."""

    name: str
    media_type: str
    digest: str
    size: int


class _Archive:
    """Random access to the members of an image tar."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.names = {m.name.removeprefix("./"): m for m in tar.getmembers() if m.isfile()}

    def has(self, name: str) -> bool:
        return name in self.names

    def open(self, name: str) -> IO[bytes]:
        member = self.names.get(name)
        fh = self.tar.extractfile(member) if member is not None else None
        if fh is None:
            raise errors.InvalidArgument(f"image archive: {name} is missing")
        return fh

    def size(self, name: str) -> int:
        return int(self.names[name].size)

    def read_json(self, name: str) -> Any:
        try:
            return json.loads(self.open(name).read())
        except ValueError as err:
            raise errors.InvalidArgument(f"image archive: {name} is not JSON: {err}") from None


def _blob_path(digest: str) -> str:
    algo, _, hexpart = digest.partition(":")
    return f"blobs/{algo}/{hexpart}"


@contextmanager
def _open_tar(archive: str | os.PathLike[str] | BinaryIO) -> Iterator[tarfile.TarFile]:
    if isinstance(archive, (str, os.PathLike)):
        if not os.path.isfile(archive):
            raise errors.NotFound(f"image archive {os.fspath(archive)} does not exist")
        with open(os.fspath(archive), "rb") as fh, _tar_of(fh, str(archive)) as tar:
            yield tar
        return
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(archive, spool)
        spool.seek(0)
        with _tar_of(spool, "stream") as tar:
            yield tar


@contextmanager
def _tar_of(fh: IO[bytes], what: str) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(fileobj=fh, mode="r:*") as tar:
            yield tar
    except tarfile.TarError as err:
        raise errors.InvalidArgument(f"cannot read image archive {what}: {err}") from None


def import_archive(
    conn: Connection,
    archive: str | os.PathLike[str] | BinaryIO,
    ref: str | None,
    snapshotter: str,
) -> ImageInfo:
    """Import every image in ``archive``; return the first (named ``ref`` when given)."""
    with _open_tar(archive) as tar, conn.lease() as leased:
        arc = _Archive(tar)
        if arc.has("index.json"):
            entries = _import_oci(leased, arc)
        elif arc.has("manifest.json"):
            entries = _import_docker(leased, arc)
        else:
            raise errors.InvalidArgument("not an image archive: no index.json or manifest.json")
        if not entries:
            raise errors.InvalidArgument("image archive holds no images")
        if ref:
            entries[0] = attrs.evolve(entries[0], name=normalize_name(ref))
        infos = [_finish(leased, e, snapshotter) for e in entries]
    return infos[0]


def _finish(conn: Connection, entry: _Entry, snapshotter: str) -> ImageInfo:
    if not entry.name:
        raise errors.InvalidArgument(
            f"image {entry.digest} in the archive has no name; pass ref to name it"
        )
    digest, manifest = pick_manifest(conn, entry.media_type, entry.digest)
    config = _load_config(conn, manifest)
    unpack(conn, manifest, config, snapshotter)
    record = put_image(conn, entry.name, entry.media_type, entry.digest, entry.size)
    log.info("imported image %s (%s, manifest %s)", entry.name, entry.digest, digest)
    return to_image_info(record)


def _load_config(conn: Connection, manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    return load_json(conn, manifest["config"]["digest"])


# --- OCI image layout ------------------------------------------------------


def _import_oci(conn: Connection, arc: _Archive) -> list[_Entry]:
    index = arc.read_json("index.json")
    entries: list[_Entry] = []
    for desc in index.get("manifests", []):
        _write_tree(conn, arc, desc)
        annotations = desc.get("annotations") or {}
        name = annotations.get(IMAGE_NAME_ANNOTATION) or _ref_name(
            annotations.get(REF_NAME_ANNOTATION, "")
        )
        entries.append(_Entry(name, desc.get("mediaType", ""), desc["digest"], int(desc["size"])))
    return entries


def _ref_name(value: str) -> str:
    """A ref.name annotation counts as an image name only when it is a full reference."""
    if not value or ("/" not in value and ":" not in value):
        return ""
    return normalize_name(value)


def _write_tree(conn: Connection, arc: _Archive, desc: Mapping[str, Any]) -> None:
    """Write ``desc`` and the blobs below it (children first), with GC labels."""
    path = _blob_path(desc["digest"])
    media_type = desc.get("mediaType", "")
    labels: dict[str, str] = {}
    if (
        media_type in INDEX_TYPES
        or media_type.endswith("manifest.v1+json")
        or (media_type.endswith("manifest.v2+json"))
    ):
        doc = arc.read_json(path)
        labels = _child_labels(conn, arc, doc)
    with arc.open(path) as fh:
        write_blob(conn, fh, desc["digest"], int(desc["size"]), labels)


def _child_labels(conn: Connection, arc: _Archive, doc: Mapping[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for i, child in enumerate(doc.get("manifests", [])):
        if arc.has(_blob_path(child["digest"])) and runs_here(child):
            _write_tree(conn, arc, child)
            labels[f"{GC_CONTENT}m.{i}"] = child["digest"]
    if "config" in doc:
        _write_tree(conn, arc, doc["config"])
        labels[f"{GC_CONTENT}config"] = doc["config"]["digest"]
    for i, layer in enumerate(doc.get("layers", [])):
        _write_tree(conn, arc, layer)
        labels[f"{GC_CONTENT}l.{i}"] = layer["digest"]
    return labels


# --- docker save -----------------------------------------------------------


def _sha256_member(arc: _Archive, name: str) -> str:
    h = hashlib.sha256()
    with arc.open(name) as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def _write_member(
    conn: Connection, arc: _Archive, name: str, labels: Mapping[str, str]
) -> dict[str, Any]:
    digest = _sha256_member(arc, name)
    size = arc.size(name)
    with arc.open(name) as fh:
        write_blob(conn, fh, digest, size, labels)
    return {"digest": digest, "size": size}


def _import_docker(conn: Connection, arc: _Archive) -> list[_Entry]:
    entries: list[_Entry] = []
    for item in arc.read_json("manifest.json"):
        config = _write_member(conn, arc, item["Config"], {})
        layers = [_write_member(conn, arc, path, {}) for path in item.get("Layers", [])]
        manifest = {
            "schemaVersion": 2,
            "mediaType": MEDIA_DOCKER_MANIFEST,
            "config": {"mediaType": MEDIA_DOCKER_CONFIG, **config},
            "layers": [{"mediaType": MEDIA_DOCKER_LAYER, **layer} for layer in layers],
        }
        body = json.dumps(manifest, separators=(",", ":")).encode()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        labels = {f"{GC_CONTENT}config": config["digest"]}
        labels.update({f"{GC_CONTENT}l.{i}": la["digest"] for i, la in enumerate(layers)})
        write_blob(conn, io.BytesIO(body), digest, len(body), labels)
        tags = item.get("RepoTags") or [""]
        for tag in tags:
            name = normalize_name(tag) if tag else ""
            entries.append(_Entry(name, MEDIA_DOCKER_MANIFEST, digest, len(body)))
    return entries
