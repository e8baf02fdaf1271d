"""``docker load`` of OCI-layout and ``docker save`` archives.

dockerd 20.10 loads only the ``docker save`` form, so an OCI layout is
rewritten into it first (into a temporary file, blob by blob: memory stays
flat whatever the image size): the manifest for this host is picked (from a
nested index too), its config and layers are copied under docker-save names,
and ``manifest.json`` names the image. Compressed layers are copied as they
are; the daemon decompresses them and checks each against the config's
``diff_ids``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from typing import IO, Any, BinaryIO

from .. import errors
from .._log import get_logger
from ..types import ImageInfo
from ._client import Connection
from ._errors import from_api_error, mapped
from .images import get_image
from .refs import full_name, split_tag

__all__ = ["import_archive"]

log = get_logger("mcpmanager.docker")

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)
_NAME_KEYS = ("io.containerd.image.name", "org.opencontainers.image.ref.name")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}


def _host_arch() -> str:
    machine = os.uname().machine
    return _ARCH.get(machine, machine)


@contextlib.contextmanager
def _seekable(archive: str | os.PathLike[str] | BinaryIO) -> Iterator[IO[bytes]]:
    """The archive as a seekable file (a stream that cannot seek is spooled to disk)."""
    if isinstance(archive, (str, os.PathLike)):
        try:
            fh = open(os.fspath(archive), "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError as exc:
            raise errors.NotFound(f"image archive {archive} not found") from exc
        except OSError as exc:
            raise errors.InvalidArgument(f"cannot open image archive {archive}: {exc}") from exc
        with fh:
            yield fh
        return
    try:
        start = archive.tell()
        archive.seek(start)
        yield archive
        return
    except (OSError, AttributeError, io.UnsupportedOperation):
        pass
    with tempfile.TemporaryFile(prefix="mcpm-docker-import-") as tmp:
        shutil.copyfileobj(archive, tmp, 1 << 20)
        tmp.seek(0)
        yield tmp


@contextlib.contextmanager
def _open_tar(fh: IO[bytes]) -> Iterator[tarfile.TarFile]:
    try:
        tar = tarfile.open(fileobj=fh, mode="r:*")  # noqa: SIM115 - closed below
    except tarfile.TarError as exc:
        raise errors.InvalidArgument(f"cannot read image archive: {exc}") from exc
    with tar:
        yield tar


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    try:
        fh = tar.extractfile(name)
    except KeyError:
        fh = None
    if fh is None:
        raise errors.InvalidArgument(f"image archive has no file {name}")
    return fh


def _json(tar: tarfile.TarFile, name: str) -> Any:
    try:
        return json.load(_member(tar, name))
    except ValueError as exc:
        raise errors.InvalidArgument(f"image archive: {name} is not JSON: {exc}") from exc


def _blob_name(digest: object) -> str:
    m = _DIGEST.match(str(digest))
    if not m:
        raise errors.InvalidArgument(f"image archive: unsupported digest {digest!r}")
    return f"blobs/sha256/{m[1]}"


def _for_this_host(tar: tarfile.TarFile, desc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The image manifest ``desc`` leads to on this host (through nested indexes)."""
    for _ in range(4):
        if desc.get("mediaType") not in _INDEX_TYPES:
            return desc
        index = _json(tar, _blob_name(desc.get("digest")))
        here = [
            m
            for m in index.get("manifests") or []
            if (m.get("platform") or {}).get("architecture", _host_arch()) == _host_arch()
            and (m.get("platform") or {}).get("os", "linux") == "linux"
        ]
        if not here:
            raise errors.InvalidArgument(f"image archive has no manifest for linux/{_host_arch()}")
        desc = here[0]
    raise errors.InvalidArgument("image archive: indexes nested too deep")


def _oci_name(desc: Mapping[str, Any]) -> str:
    notes = desc.get("annotations") or {}
    for key in _NAME_KEYS:
        value = str(notes.get(key) or "")
        if "/" in value or ":" in value or (value and key == _NAME_KEYS[0]):
            return value
    return ""


def _write(out: tarfile.TarFile, name: str, src: IO[bytes], size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    out.addfile(info, src)


def _convert_oci(tar: tarfile.TarFile, dest: IO[bytes], ref: str | None) -> str:
    """Write the docker-save form of the OCI layout in ``tar`` to ``dest``; return its name."""
    index = _json(tar, "index.json")
    tops = index.get("manifests") or []
    if not tops:
        raise errors.InvalidArgument("image archive: index.json lists no image")
    name = ref or _oci_name(tops[0])
    if not name:
        raise errors.InvalidArgument("image archive names no image; pass ref=")
    manifest = _json(tar, _blob_name(_for_this_host(tar, tops[0]).get("digest")))
    config = _blob_name((manifest.get("config") or {}).get("digest"))
    layers = [_blob_name(layer.get("digest")) for layer in manifest.get("layers") or []]
    repo, tag = split_tag(name)
    with tarfile.open(fileobj=dest, mode="w") as out:
        cfg = config.rsplit("/", 1)[1] + ".json"
        _write(out, cfg, _member(tar, config), tar.getmember(config).size)
        names = []
        for layer in layers:
            path = layer.rsplit("/", 1)[1] + "/layer.tar"
            _write(out, path, _member(tar, layer), tar.getmember(layer).size)
            names.append(path)
        doc = [{"Config": cfg, "RepoTags": [f"{repo}:{tag}"], "Layers": names}]
        data = json.dumps(doc).encode()
        _write(out, "manifest.json", io.BytesIO(data), len(data))
    return name


def _load(conn: Connection, fh: IO[bytes]) -> str:
    """POST the docker-save archive; return the name (or ID) the daemon says it loaded."""
    loaded = ""
    with mapped("load image archive"):
        for event in conn.load_image(fh):
            if event.get("error"):
                raise from_api_error(400, str(event["error"]), "load image archive")
            text = str(event.get("stream") or "")
            for prefix in ("Loaded image: ", "Loaded image ID: "):
                if text.startswith(prefix):
                    loaded = text[len(prefix) :].strip()
    if not loaded:
        raise errors.InvalidArgument("load image archive: the daemon loaded no image")
    return loaded


def import_archive(
    conn: Connection, archive: str | os.PathLike[str] | BinaryIO, ref: str | None
) -> ImageInfo:
    """Load an OCI-layout or ``docker save`` tar; tag it ``ref`` when given."""
    with _seekable(archive) as fh:
        start = fh.tell()
        with _open_tar(fh) as tar:
            names = set(tar.getnames())
            if "manifest.json" in names:
                fh.seek(start)
                loaded = _load(conn, fh)
                name = ref or loaded
            elif "index.json" in names:
                with tempfile.TemporaryFile(prefix="mcpm-docker-save-") as tmp:
                    name = _convert_oci(tar, tmp, ref)
                    tmp.seek(0)
                    loaded = _load(conn, tmp)
            else:
                raise errors.InvalidArgument(
                    "image archive has neither index.json nor manifest.json"
                )
    if ref:
        repo, tag = split_tag(ref)
        with mapped(f"tag the loaded image as {ref}"):
            conn.api().tag(loaded, repo, tag)
    log.info("imported image %s", name)
    return get_image(conn, full_name(name) if not name.startswith("sha256:") else name)
