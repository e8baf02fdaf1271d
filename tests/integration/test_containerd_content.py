"""Blob writes and archive variants against a private containerd."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import uuid

import pytest

from mcpmanager import errors
from mcpmanager.containerd import ContainerdService
from mcpmanager.containerd.api import content_pb2
from mcpmanager.containerd.content import CHUNK_SIZE, blob_exists, read_blob, write_blob
from mcpmanager.containerd.images import chain_ids, resolve_image
from mcpmanager.containerd.registry import DigestMismatch
from mcpmanager.types import ContainerSpec, CreateContainerRequest, StopTaskOptions
from tests.harness.containerd import ContainerdDaemon, build_image_archive, busybox_layer

pytestmark = pytest.mark.integration


def _blob() -> tuple[bytes, str]:
    data = os.urandom(3 << 20)  # more than one Write message
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def test_write_blob_round_trip_and_labels(
    containerd_service: ContainerdService,
    containerd_daemon: ContainerdDaemon,
    containerd_namespace: str,
) -> None:
    data, digest = _blob()
    with containerd_service.connection.lease() as leased:
        write_blob(leased, io.BytesIO(data), digest, len(data), {"one": "1"})
        write_blob(leased, io.BytesIO(data), digest, len(data), {"two": "2"})  # exists: relabel
        assert read_blob(leased, digest) == data
        listing = containerd_daemon.ctr(containerd_namespace, "content", "ls")
        line = next(x for x in listing.splitlines() if x.startswith(digest))
        assert "one=1" in line
        assert "two=2" in line


@pytest.mark.parametrize("case", ["short", "long", "wrong-digest"])
def test_write_blob_rejects_bad_data(
    containerd_service: ContainerdService, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="grpc")
    data, digest = _blob()
    size = len(data)
    if case == "short":
        data = data[:-1]
    elif case == "long":
        size -= 1
    else:
        digest = "sha256:" + "0" * 64
    expected = errors.FailedPrecondition if case == "wrong-digest" else errors.InvalidArgument
    with containerd_service.connection.lease() as leased, pytest.raises(expected, match=digest):
        write_blob(leased, io.BytesIO(data), digest, size)
    assert not blob_exists(containerd_service.connection, digest)
    assert not [r for r in caplog.records if "Exception iterating" in r.getMessage()]


class _FailingSource:
    """A stream that yields ``good`` chunks of ``data`` and then raises ``error``."""

    def __init__(self, data: bytes, good: int, error: Exception) -> None:
        self.data, self.good, self.error = data, good, error
        self.offset = 0

    def read(self, size: int = -1) -> bytes:
        if self.offset >= self.good * CHUNK_SIZE:
            raise self.error
        chunk = self.data[self.offset : self.offset + CHUNK_SIZE]
        self.offset += len(chunk)
        return chunk


# "first": fails before any data; "middle": after one of three chunks; "end": after
# every byte was sent, like the registry stream's digest check after its last chunk.
@pytest.mark.parametrize("good", [0, 1, 3], ids=["first", "middle", "end"])
def test_write_blob_source_failure_propagates_and_commits_nothing(
    containerd_service: ContainerdService,
    containerd_daemon: ContainerdDaemon,
    containerd_namespace: str,
    caplog: pytest.LogCaptureFixture,
    good: int,
) -> None:
    caplog.set_level(logging.DEBUG, logger="grpc")
    data, digest = _blob()
    failure = DigestMismatch(f"blob {digest}: content hashes to something else")
    source = _FailingSource(data, good, failure)
    with containerd_service.connection.lease() as leased:
        with pytest.raises(DigestMismatch) as caught:
            write_blob(leased, source, digest, len(data))  # type: ignore[arg-type]
        assert caught.value is failure
        with pytest.raises(errors.NotFound):
            leased.unary(
                leased.content.Info,
                content_pb2.InfoRequest(digest=digest),
                what="stat",
            )
        active = containerd_daemon.ctr(containerd_namespace, "content", "active")
        assert digest.split(":")[1] not in active  # the partial upload was aborted
    assert source.offset == good * CHUNK_SIZE
    iterating = [r for r in caplog.records if "Exception iterating" in r.getMessage()]
    assert iterating == []


def test_write_blob_read_error_is_invalid_argument(
    containerd_service: ContainerdService, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="grpc")
    data, digest = _blob()
    source = _FailingSource(data, 1, OSError(5, "Input/output error"))
    with containerd_service.connection.lease() as leased:
        with pytest.raises(errors.InvalidArgument, match="cannot read data") as caught:
            write_blob(leased, source, digest, len(data))  # type: ignore[arg-type]
        assert isinstance(caught.value.__cause__, OSError)
        assert not blob_exists(leased, digest)
    assert not [r for r in caplog.records if "Exception iterating" in r.getMessage()]


def test_import_multi_platform_index(containerd_service: ContainerdService, tmp_path: str) -> None:
    path = build_image_archive(
        os.path.join(str(tmp_path), "m.tar"),
        "docker.io/library/mcpm-multi:1",
        [busybox_layer()],
        multi_platform=True,
    )
    info = containerd_service.import_image(path)
    try:
        image = resolve_image(containerd_service.connection, info.name)
        assert image.target == info.id
        assert image.manifest_digest != info.id  # followed the index to this platform
        top = chain_ids(image.diff_ids)[-1]
        assert top in {s.name for s in containerd_service.list_snapshots("overlayfs")}
        cid = f"m-{uuid.uuid4().hex[:8]}"
        req = CreateContainerRequest(
            id=cid, image_ref="mcpm-multi:1", spec=ContainerSpec(cmd=("sleep", "100"))
        )
        containerd_service.create_container(req)
        try:
            containerd_service.start_container(cid)
            containerd_service.stop_container(cid, StopTaskOptions(timeout=0.2, force=True))
        finally:
            containerd_service.delete_container(cid)
    finally:
        containerd_service.delete_image(info.name)


def test_stop_unknown_container_is_not_found(containerd_service: ContainerdService) -> None:
    with pytest.raises(errors.NotFound):
        containerd_service.stop_container("no-such-container")
