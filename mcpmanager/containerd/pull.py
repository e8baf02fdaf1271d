"""Pull images from OCI/Docker registries into containerd, client-side like ``ctr pull``.

containerd's daemon never talks to registries: its Go client resolves the
reference, copies every blob into the Content service, records the image and
unpacks the layers into a snapshotter. This module does the same, under a
lease, with the garbage-collection labels the Go client sets so that a
forced GC keeps everything the image needs:

- index: ``containerd.io/gc.ref.content.m.<i>`` per child manifest;
- manifest: ``containerd.io/gc.ref.content.config`` and ``...content.l.<i>``;
- every blob: ``containerd.io/distribution.source.<registry>=<repository>``;
- layers get ``containerd.io/uncompressed`` (their diff ID) as they are
  stored, the config ``containerd.io/gc.ref.snapshot.<snapshotter>`` once
  the top layer is unpacked (:mod:`.unpack`).

Layers download in parallel and each is unpacked as soon as it and its
parent are in, so unpacking overlaps the downloads instead of following them.
"""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO, cast

import attrs

from .. import errors
from .._log import get_logger
from ..errors import InvalidContent
from ..naming import DEFAULT_SNAPSHOTTER
from ..oci import (
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    Descriptor,
    host_platform,
    select_manifest,
)
from ..refs import Reference, parse_reference
from ..types import ImageInfo, PullImageOptions, PullProgress
from ._conn import Connection
from .api import content_pb2
from .content import CHUNK_SIZE, read_blob, set_blob_labels, write_blob
from .images import put_image, to_image_info
from .registry import RegistryClient
from .unpack import UNCOMPRESSED_LABEL, apply_layer, plan, snapshot_labels, unpacked_prefix

__all__ = [
    "DEFAULT_SNAPSHOTTER",
    "LAYER_WORKERS",
    "LOCAL_LAYER_WORKERS",
    "PULL_TIMEOUT",
    "RESOLVE_TIMEOUT",
    "pull_image",
    "resolve_remote_digest",
]

log = get_logger("mcpmanager.containerd.pull")

RESOLVE_TIMEOUT = 15.0
"""Seconds the upgrade check's registry request may stay silent."""

PULL_TIMEOUT = 3600.0
"""Seconds a whole pull (all blobs, unpack, image record) may take."""

LAYER_WORKERS = 3
"""Layers downloaded at once from a remote registry (the Go client's default is 3 as well)."""

LOCAL_LAYER_WORKERS = max(1, min(LAYER_WORKERS, os.cpu_count() or 1))
"""Layers downloaded at once from a registry on this host: one per CPU, at most 3.

There the network is no bottleneck: the daemon's hashing of each stream is,
and the unpacking needs the same CPUs. On two cores, three streams finished
the whole pull later than two (median over 21 runs each, benchmarks/bench_pull.py).
"""

_MAX_METADATA = 8 << 20
_GC_CONTENT = "containerd.io/gc.ref.content."
_SOURCE_LABEL = "containerd.io/distribution.source."


def resolve_remote_digest(ref: str, plain_http_registries: Iterable[str] = ()) -> str:
    """The digest ``ref`` currently points to in its registry (nothing is downloaded)."""
    client = RegistryClient(plain_http_registries, timeout=RESOLVE_TIMEOUT)
    return client.resolve(parse_reference(ref)).digest


def pull_image(
    conn: Connection,
    ref: str,
    opts: PullImageOptions | None = None,
    plain_http_registries: Iterable[str] = (),
    *,
    timeout: float = PULL_TIMEOUT,
    client: RegistryClient | None = None,
) -> ImageInfo:
    """Pull ``ref`` into ``conn``'s namespace and return the image record.

    Blobs the content store already has are not downloaded again. With
    ``opts.unpack`` the layers are unpacked into ``opts.snapshotter``
    (default ``overlayfs``). ``opts.progress`` is called from worker threads
    with each blob's progress. ``timeout`` bounds the whole pull.
    """
    opts = opts or PullImageOptions()
    parsed = parse_reference(ref)
    job = _Job(
        parsed=parsed,
        client=client or RegistryClient(plain_http_registries),
        progress=opts.progress,
        deadline=time.monotonic() + timeout,
    )
    target = job.client.resolve(parsed)
    log.info("pulling %s (%s)", parsed.name, target.digest)
    snapshotter = (opts.snapshotter or DEFAULT_SNAPSHOTTER) if opts.unpack else None
    workers = LOCAL_LAYER_WORKERS if job.client.is_local(parsed) else LAYER_WORKERS
    with conn.lease(expire=timeout + 3600.0) as leased, _Tasks(job, workers) as tasks:
        manifest, config = _fetch_metadata(leased, job, target, snapshotter, tasks)
        _fetch_and_unpack(leased, job, manifest, config, snapshotter, tasks)
        tasks.wait_all("storing the image")
        record = put_image(leased, parsed.name, target.media_type, target.digest, target.size)
    log.info("pulled %s (%s)", parsed.name, target.digest)
    return to_image_info(record)


@attrs.define
class _Job:
    """What every step of one pull needs."""

    parsed: Reference
    client: RegistryClient
    progress: Callable[[PullProgress], None] | None
    deadline: float
    cancelled: threading.Event = attrs.field(factory=threading.Event)

    @property
    def source_labels(self) -> dict[str, str]:
        return {_SOURCE_LABEL + self.parsed.registry: self.parsed.repository}

    def check_deadline(self, what: str) -> None:
        if time.monotonic() > self.deadline:
            raise errors.DeadlineExceeded(f"pulling {self.parsed.name}: timed out while {what}")
        if self.cancelled.is_set():
            raise errors.MCPManagerError(f"pulling {self.parsed.name}: cancelled while {what}")

    def report(self, digest: str, done: int, total: int) -> None:
        if self.progress is None:
            return
        try:
            self.progress(PullProgress(ref=self.parsed.name, digest=digest, done=done, total=total))
        except Exception:  # a caller's callback must not break the pull
            log.warning("pull progress callback failed", exc_info=True)


class _Tasks:
    """The background work of one pull: layer downloads, and the metadata writes.

    Metadata blobs are written by one thread of their own while the main
    thread goes on to the next blob and the layers start downloading: nothing
    waits for those writes but the image record. The first failure anywhere
    is raised to the main thread, and leaving the ``with`` block on an error
    cancels what has not started and stops what runs at its next chunk.
    """

    def __init__(self, job: _Job, workers: int) -> None:
        self._job = job
        self._layers = concurrent.futures.ThreadPoolExecutor(
            workers, thread_name_prefix="mcpm-pull"
        )
        self._writes = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mcpm-pull-meta")
        self._futures: list[concurrent.futures.Future[None]] = []

    def __enter__(self) -> _Tasks:
        return self

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if exc is not None:
            self._job.cancelled.set()
        for pool in (self._writes, self._layers):
            pool.shutdown(wait=True, cancel_futures=True)

    def fetch(self, fn: Callable[..., None], *args: Any) -> concurrent.futures.Future[None]:
        """Run a layer download on one of the download threads."""
        return self._track(self._layers.submit(fn, *args))

    def write(self, fn: Callable[..., None], *args: Any) -> None:
        """Run a metadata write on the writing thread (in order)."""
        self._track(self._writes.submit(fn, *args))

    def _track(self, future: concurrent.futures.Future[None]) -> concurrent.futures.Future[None]:
        self._futures.append(future)
        return future

    def wait(self, wanted: concurrent.futures.Future[None], what: str) -> None:
        """Wait for ``wanted``; raise the first failure of any task meanwhile."""
        while True:
            for future in self._futures:
                if future.done() and future.exception() is not None:
                    raise cast(BaseException, future.exception())
            if wanted.done():
                return
            remaining = self._job.deadline - time.monotonic()
            if remaining <= 0:
                raise errors.DeadlineExceeded(
                    f"pulling {self._job.parsed.name}: timed out while {what}"
                )
            unfinished = [f for f in self._futures if not f.done()]
            concurrent.futures.wait(
                unfinished, timeout=remaining, return_when=concurrent.futures.FIRST_COMPLETED
            )

    def wait_all(self, what: str) -> None:
        """Wait until every task is done (raising the first failure)."""
        for future in list(self._futures):
            self.wait(future, what)


# ------------------------------------------------------------ metadata


def _fetch_metadata(
    conn: Connection, job: _Job, target: Descriptor, snapshotter: str | None, tasks: _Tasks
) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Store index(es), the platform manifest and its config; return manifest and config.

    Each blob is stored with all its labels in the ``Write`` that commits it
    (one call, no ``Update`` after), in the background (``tasks``); a blob
    already present is relabelled only if its labels differ. When unpacking
    into ``snapshotter``, the config already names the top snapshot to be
    made: a reference to a snapshot that does not exist yet is simply ignored
    by the garbage collector, and it saves a call once the last layer is in.
    """
    desc = target
    for _depth in range(4):
        if desc.media_type in INDEX_MEDIA_TYPES:
            desc = _store_index(conn, job, desc, tasks)
            continue
        if desc.media_type and desc.media_type not in MANIFEST_MEDIA_TYPES:
            raise errors.NotSupported(f"pulling {job.parsed.name}: media type {desc.media_type}")
        stored = _get_manifest(conn, job, desc)
        manifest = _load_json(stored.data, desc)
        config_desc = _config_descriptor(manifest, desc)
        labels = {**job.source_labels, **_manifest_labels(manifest, config_desc)}
        tasks.write(_keep, conn, job, desc, stored, labels)
        return manifest, _store_config(conn, job, manifest, config_desc, snapshotter, tasks)
    raise InvalidContent(f"pulling {job.parsed.name}: indexes nest too deeply")


def _store_index(conn: Connection, job: _Job, desc: Descriptor, tasks: _Tasks) -> Descriptor:
    """Store an index; return the descriptor of its manifest for this host."""
    stored = _get_manifest(conn, job, desc)
    index = _load_json(stored.data, desc)
    tasks.write(_keep, conn, job, desc, stored, {**job.source_labels, **_index_labels(index)})
    return select_manifest(index, host_platform(), f"index {desc.digest} of {job.parsed.name}")


def _store_config(
    conn: Connection,
    job: _Job,
    manifest: Mapping[str, Any],
    desc: Descriptor,
    snapshotter: str | None,
    tasks: _Tasks,
) -> Mapping[str, Any]:
    stored = _get_config(conn, job, desc)
    config = _load_json(stored.data, desc)
    labels = dict(job.source_labels)
    if snapshotter:
        labels.update(snapshot_labels(snapshotter, plan(manifest, config)[-1].chain_id))
    tasks.write(_keep, conn, job, desc, stored, labels)
    return config


@attrs.frozen
class _Stored:
    """A metadata blob's bytes and, when the store had it already, its labels there."""

    data: bytes
    labels: Mapping[str, str] | None


def _get_manifest(conn: Connection, job: _Job, desc: Descriptor) -> _Stored:
    labels = _present(conn, desc.digest)
    if labels is not None:
        return _Stored(read_blob(conn, desc.digest, _MAX_METADATA), labels)
    return _Stored(job.client.fetch_manifest(job.parsed, desc), None)


def _get_config(conn: Connection, job: _Job, desc: Descriptor) -> _Stored:
    if desc.size > _MAX_METADATA:
        raise InvalidContent(f"pulling {job.parsed.name}: config {desc.digest} is too large")
    labels = _present(conn, desc.digest)
    if labels is not None:
        return _Stored(read_blob(conn, desc.digest, _MAX_METADATA), labels)
    return _Stored(b"".join(job.client.iter_blob(job.parsed, desc)), None)


def _keep(
    conn: Connection, job: _Job, desc: Descriptor, stored: _Stored, labels: Mapping[str, str]
) -> None:
    """Write a fetched blob with ``labels``, or add those it lacks to the stored one."""
    job.check_deadline(f"storing {desc.digest}")
    if stored.labels is None:
        write_blob(conn, io.BytesIO(stored.data), desc.digest, desc.size, labels)
    else:
        _relabel(conn, desc.digest, stored.labels, labels)
    job.report(desc.digest, desc.size, desc.size)


def _relabel(
    conn: Connection, digest: str, have: Mapping[str, str], want: Mapping[str, str]
) -> None:
    missing = {k: v for k, v in want.items() if have.get(k) != v}
    if missing:
        set_blob_labels(conn, digest, missing)


def _load_json(data: bytes, desc: Descriptor) -> Mapping[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise InvalidContent(f"blob {desc.digest} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidContent(f"blob {desc.digest} is not a JSON object")
    if doc.get("schemaVersion") == 1:
        raise errors.NotSupported(f"blob {desc.digest}: Docker schema 1 manifests are unsupported")
    return doc


def _config_descriptor(manifest: Mapping[str, Any], desc: Descriptor) -> Descriptor:
    config = manifest.get("config")
    if not isinstance(config, Mapping):
        raise InvalidContent(f"manifest {desc.digest} has no config")
    return Descriptor.from_json(config, f"manifest {desc.digest}")


def _manifest_labels(manifest: Mapping[str, Any], config: Descriptor) -> dict[str, str]:
    labels = {_GC_CONTENT + "config": config.digest}
    for i, layer in enumerate(_children(manifest, "layers")):
        labels[f"{_GC_CONTENT}l.{i}"] = layer.digest
    return labels


def _index_labels(index: Mapping[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = {}
    counts: dict[str, int] = {}
    for child in _children(index, "manifests"):
        prefix = _GC_CONTENT + ("m." if child.media_type in MANIFEST_MEDIA_TYPES else "")
        n = counts.get(prefix, 0)
        counts[prefix] = n + 1
        labels[f"{prefix}{n}"] = child.digest
    return labels


def _children(doc: Mapping[str, Any], key: str) -> list[Descriptor]:
    items = doc.get(key) or []
    if not isinstance(items, list):
        raise InvalidContent(f"{key} of a manifest is not a list")
    return [Descriptor.from_json(item, key) for item in items]


def _present(conn: Connection, digest: str) -> Mapping[str, str] | None:
    """The labels of blob ``digest`` if the store has it (it then joins our lease), else None.

    Asked first, then leased, then asked again: a blob that nothing references
    could be collected between the first answer and the lease, and is then
    fetched like a missing one. A missing blob (the common case of a fresh
    pull) costs one ``Info``: the ``Write`` that stores it adds it to the lease.
    """
    if _info(conn, digest) is None:
        return None
    conn.hold(digest, "content", f"lease blob {digest}")
    info = _info(conn, digest)
    return None if info is None else dict(info.labels)


def _info(conn: Connection, digest: str) -> content_pb2.Info | None:
    try:
        resp = conn.unary(
            conn.content.Info, content_pb2.InfoRequest(digest=digest), what=f"stat blob {digest}"
        )
    except errors.NotFound:
        return None
    info: content_pb2.Info = resp.info
    return info


# -------------------------------------------------------------- layers


def _fetch_and_unpack(
    conn: Connection,
    job: _Job,
    manifest: Mapping[str, Any],
    config: Mapping[str, Any],
    snapshotter: str | None,
    tasks: _Tasks,
) -> None:
    """Download the missing layers, a few at once, unpacking each as soon as it can be.

    Layer ``i`` is applied once its blob is in and layer ``i - 1`` is
    committed, while later layers are still downloading; with no
    ``snapshotter`` nothing is unpacked. Everything made here is held by
    ``conn``'s lease until the image record references it (the config names
    the top snapshot since :func:`_fetch_metadata`).
    """
    steps = plan(manifest, config) if snapshotter else []
    diff_ids = {step.digest: step.diff_id for step in steps}
    layers = list({layer.digest: layer for layer in _children(manifest, "layers")}.values())
    fetches = {
        layer.digest: tasks.fetch(_fetch_layer, conn, job, layer, diff_ids.get(layer.digest))
        for layer in layers
    }
    # While the first layers download: which are unpacked already?
    done = unpacked_prefix(conn, snapshotter, steps) if snapshotter else 0
    for step in steps[done:]:
        tasks.wait(fetches[step.digest], f"fetching layer {step.digest}")
        job.check_deadline(f"unpacking layer {step.digest}")
        apply_layer(conn, cast(str, snapshotter), step)


def _fetch_layer(conn: Connection, job: _Job, layer: Descriptor, diff_id: str | None) -> None:
    """Store one layer blob, labelled with its source and (when known) its diff ID."""
    job.check_deadline(f"fetching layer {layer.digest}")
    labels = dict(job.source_labels)
    if diff_id:
        labels[UNCOMPRESSED_LABEL] = diff_id
    have = _present(conn, layer.digest)
    if have is not None:
        _relabel(conn, layer.digest, have, labels)
        log.debug("layer %s already present", layer.digest)
        job.report(layer.digest, layer.size, layer.size)
        return
    stream = _BlobReader(job, layer)
    try:
        write_blob(conn, cast(BinaryIO, stream), layer.digest, layer.size, labels)
    except errors.MCPManagerError as exc:
        if stream.error is not None:
            raise stream.error from None
        if isinstance(exc, errors.FailedPrecondition) and "digest" in str(exc):
            raise errors.DigestMismatch(
                f"fetching blob {layer.digest} of {job.parsed.name}: the registry sent "
                f"other content ({exc})"
            ) from None
        raise
    if stream.error is not None:
        raise stream.error
    log.debug("fetched layer %s (%d bytes)", layer.digest, layer.size)


class _BlobReader:
    """A read()-able view of a verified registry blob stream that reports progress.

    An error from the registry (or the deadline) is kept in ``error`` because
    gRPC swallows exceptions raised inside a request iterator.
    """

    def __init__(self, job: _Job, desc: Descriptor) -> None:
        self._job = job
        self._desc = desc
        # The content store verifies the digest at commit: no second hash here.
        self._chunks: Iterator[bytes] = job.client.iter_blob(
            job.parsed, desc, CHUNK_SIZE, verify=False
        )
        self._done = 0
        self.error: errors.MCPManagerError | None = None

    def read(self, size: int = -1) -> bytes:
        """Return the next chunk (at most one registry read), ``b""`` at the end."""
        del size
        try:
            self._job.check_deadline(f"fetching layer {self._desc.digest}")
            chunk = next(self._chunks, b"")
        except errors.MCPManagerError as exc:
            self.error = exc
            raise
        self._done += len(chunk)
        if chunk:
            self._job.report(self._desc.digest, self._done, self._desc.size)
        return chunk
