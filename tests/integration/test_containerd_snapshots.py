"""Snapshots through ContainerdService: commit, prepare, containers on them, GC safety."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest

from mcpmanager import errors
from mcpmanager.containerd import ContainerdService, snapshots
from mcpmanager.containerd.images import chain_ids, resolve_image
from mcpmanager.types import (
    ContainerSpec,
    CreateContainerRequest,
    DeleteContainerOptions,
    ImageInfo,
    StopTaskOptions,
)
from tests.harness.containerd import (
    BUSYBOX_REF,
    GRACEFUL_CMD,
    ContainerdDaemon,
    File,
    build_image_archive,
    busybox_layer,
    wait_until_ready,
)

pytestmark = pytest.mark.integration

SNAP = "overlayfs"
GRACEFUL = GRACEFUL_CMD


def _names(service: ContainerdService) -> dict[str, str]:
    return {s.name: s.kind for s in service.list_snapshots(SNAP)}


@pytest.fixture
def scratch(containerd_service: ContainerdService) -> Iterator[list[str]]:
    """Containers and snapshots a test made; removed afterwards, children first."""
    made: list[str] = []
    yield made
    for name in reversed(made):
        with contextlib.suppress(errors.NotFound):
            containerd_service.delete_container(name)
        # FailedPrecondition: containerd 1.6 keeps a garbage-collected child listed
        # under its parent; the daemon's teardown removes what is left.
        with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
            snapshots.remove(containerd_service.connection, SNAP, name)


def _exec(daemon: ContainerdDaemon, ns: str, cid: str, script: str) -> str:
    """Run ``sh -c script`` in the running container with ctr; return its stdout."""
    return daemon.exec(ns, cid, script)


def test_commit_prepare_and_container_from_snapshot(
    containerd_service: ContainerdService,
    containerd_daemon: ContainerdDaemon,
    containerd_namespace: str,
    busybox_image: ImageInfo,
    scratch: list[str],
) -> None:
    svc = containerd_service
    a, b = f"a-{uuid.uuid4().hex[:8]}", f"b-{uuid.uuid4().hex[:8]}"
    version, active = f"{a}-v1", f"{b}-active"
    scratch.extend([a, version, active, b])
    svc.create_container(
        CreateContainerRequest(id=a, image_ref=BUSYBOX_REF, spec=ContainerSpec(cmd=GRACEFUL))
    )
    svc.start_container(a)
    _exec(containerd_daemon, containerd_namespace, a, "echo kept > /data/note")
    wait_until_ready(containerd_daemon, containerd_namespace, a)
    svc.stop_container(a, StopTaskOptions(timeout=20))
    svc.delete_task(a)

    svc.commit_snapshot(SNAP, version, a, {"mcp.version": "1"})
    info = {s.name: s for s in svc.list_snapshots(SNAP)}[version]
    assert info.kind == "committed"
    assert info.labels["mcp.version"] == "1"
    assert snapshots.GC_ROOT_LABEL in info.labels
    assert a not in _names(svc)  # committing consumed the active snapshot

    svc.prepare_snapshot(SNAP, active, version)
    assert _names(svc)[active] == "active"
    mounts = svc.snapshot_mounts(SNAP, active)
    assert mounts
    assert mounts[0].type in ("overlay", "bind")

    svc.delete_container(a, DeleteContainerOptions(cleanup_snapshot=False))
    created = svc.create_container_from_snapshot(
        CreateContainerRequest(
            id=b, image_ref=BUSYBOX_REF, snapshot_id=active, spec=ContainerSpec(cmd=GRACEFUL)
        )
    )
    assert created.snapshot_key == active
    svc.start_container(b)
    assert _exec(containerd_daemon, containerd_namespace, b, "cat /data/note") == "kept\n"


def test_snapshot_errors(containerd_service: ContainerdService, scratch: list[str]) -> None:
    svc = containerd_service
    with pytest.raises(errors.NotFound):
        svc.snapshot_mounts(SNAP, "no-such-snapshot")
    with pytest.raises(errors.NotFound):
        svc.prepare_snapshot(SNAP, f"x-{uuid.uuid4().hex[:8]}", "no-such-parent")
    with pytest.raises(errors.NotFound):
        svc.create_container_from_snapshot(
            CreateContainerRequest(id="c-missing", image_ref=BUSYBOX_REF, snapshot_id="nope")
        )
    with pytest.raises(errors.InvalidArgument):
        svc.commit_snapshot(SNAP, "", "key")


def test_gc_keeps_committed_and_prepared_snapshots(
    containerd_service: ContainerdService,
    containerd_daemon: ContainerdDaemon,
    containerd_namespace: str,
    busybox_image: ImageInfo,
    scratch: list[str],
    tmp_path: str,
) -> None:
    svc = containerd_service
    a = f"g-{uuid.uuid4().hex[:8]}"
    version, active = f"{a}-v1", f"{a}-next"
    scratch.extend([a, version, active])
    svc.create_container(CreateContainerRequest(id=a, image_ref=BUSYBOX_REF))
    svc.commit_snapshot(SNAP, version, a)
    svc.prepare_snapshot(SNAP, active, version)
    svc.delete_container(a, DeleteContainerOptions(cleanup_snapshot=False))
    control = f"{a}-unlabelled"  # the same without our GC label: must be collected
    scratch.append(control)
    snapshots.prepare(svc.connection, SNAP, control, version)

    # An unrelated image with a layer of its own; deleting it synchronously runs GC.
    layers = [busybox_layer(), [File("junk", os.urandom(64))]]
    path = build_image_archive(os.path.join(str(tmp_path), "j.tar"), "mcpm-junk:1", layers)
    junk = svc.import_image(path)
    junk_top = chain_ids(resolve_image(svc.connection, junk.name).diff_ids)[-1]
    assert junk_top in _names(svc)
    containerd_daemon.ctr(containerd_namespace, "images", "rm", "--sync", junk.name)

    names = _names(svc)
    assert junk_top not in names  # GC really ran
    assert control not in names
    assert names[version] == "committed"
    assert names[active] == "active"
    busybox_top = chain_ids(resolve_image(svc.connection, BUSYBOX_REF).diff_ids)[-1]
    assert busybox_top in names  # the imported image's unpacked layers are kept
    assert svc.get_image(BUSYBOX_REF) == busybox_image
