"""Blob writes and archive variants against a private containerd."""

from __future__ import annotations

import hashlib
import io
import os
import uuid

import pytest

from mcpmanager import errors
from mcpmanager.containerd import ContainerdService
from mcpmanager.containerd.content import blob_exists, read_blob, write_blob
from mcpmanager.containerd.images import chain_ids, resolve_image
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
def test_write_blob_rejects_bad_data(containerd_service: ContainerdService, case: str) -> None:
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
