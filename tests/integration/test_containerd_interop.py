"""ContainerdService and ctr share a daemon: each must accept what the other made."""

from __future__ import annotations

import contextlib
import json
import os
import uuid

import pytest

from mcpmanager import errors
from mcpmanager.containerd import ContainerdService
from mcpmanager.types import ContainerSpec, CreateContainerRequest, ImageInfo, TaskStatus
from tests.harness.common import wait_for
from tests.harness.containerd import (
    BUSYBOX_REF,
    GRACEFUL_CMD,
    ContainerdDaemon,
    File,
    build_image_archive,
    busybox_layer,
)

pytestmark = pytest.mark.integration

GRACEFUL = GRACEFUL_CMD


def test_ctr_lists_and_starts_our_container(
    containerd_service: ContainerdService,
    containerd_daemon: ContainerdDaemon,
    containerd_namespace: str,
    busybox_image: ImageInfo,
) -> None:
    cid = f"i-{uuid.uuid4().hex[:8]}"
    spec = ContainerSpec(cmd=GRACEFUL, env=("FOO=bar",), workdir="/data")
    containerd_service.create_container(
        CreateContainerRequest(id=cid, image_ref=BUSYBOX_REF, spec=spec)
    )
    try:
        ctr = containerd_daemon.ctr
        assert cid in ctr(containerd_namespace, "containers", "ls", "-q").split()
        info = json.loads(ctr(containerd_namespace, "containers", "info", cid))
        assert info["Spec"]["process"]["args"] == list(GRACEFUL)
        assert "FOO=bar" in info["Spec"]["process"]["env"]
        ctr(containerd_namespace, "tasks", "start", "-d", cid)
        wait_for(lambda: containerd_service.get_task_info(cid).status == TaskStatus.RUNNING)
        out = containerd_daemon.exec(containerd_namespace, cid, "pwd")
        assert out == "/data\n"
    finally:
        containerd_service.delete_container(cid)


def test_we_run_an_image_imported_by_ctr(
    containerd_service: ContainerdService,
    containerd_daemon: ContainerdDaemon,
    containerd_namespace: str,
    tmp_path: str,
) -> None:
    name = "docker.io/library/mcpm-by-ctr:1"
    layers = [busybox_layer(), [File("marker", b"ctr-imported\n")]]
    path = build_image_archive(os.path.join(str(tmp_path), "c.tar"), name, layers, cmd=GRACEFUL)
    containerd_daemon.ctr(containerd_namespace, "images", "import", path)
    cid = f"i-{uuid.uuid4().hex[:8]}"
    try:
        assert containerd_service.get_image("mcpm-by-ctr:1").name == name
        containerd_service.create_container(CreateContainerRequest(id=cid, image_ref=name))
        containerd_service.start_container(cid)
        out = containerd_daemon.exec(containerd_namespace, cid, "cat /marker")
        assert out == "ctr-imported\n"
    finally:
        with contextlib.suppress(errors.NotFound):
            containerd_service.delete_container(cid)
        containerd_service.delete_image(name)
