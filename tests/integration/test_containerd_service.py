"""ContainerdService against a private containerd: images, containers, tasks."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from mcpmanager import errors
from mcpmanager.containerd import ContainerdService, snapshots
from mcpmanager.containerd.api import leases_pb2
from mcpmanager.containerd.images import chain_ids, resolve_image
from mcpmanager.types import (
    ContainerSpec,
    CreateContainerRequest,
    DeleteContainerOptions,
    DeleteTaskOptions,
    ImageInfo,
    NetworkSetupRequest,
    StopTaskOptions,
    TaskStatus,
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

GRACEFUL = GRACEFUL_CMD
STUBBORN = ("/bin/sh", "-c", "trap '' TERM; sleep 1000 & wait $!; sleep 1000")

NewContainer = Callable[..., str]


@pytest.fixture
def new_container(
    containerd_service: ContainerdService, busybox_image: ImageInfo
) -> Iterator[NewContainer]:
    """Create busybox containers with unique IDs; remove them (and tasks) afterwards."""
    made: list[str] = []

    def make(
        cmd: tuple[str, ...] = GRACEFUL,
        env: tuple[str, ...] = (),
        labels: dict[str, str] | None = None,
    ) -> str:
        cid = f"t-{uuid.uuid4().hex[:10]}"
        spec = ContainerSpec(cmd=cmd, env=env)
        made.append(cid)
        containerd_service.create_container(
            CreateContainerRequest(id=cid, image_ref=BUSYBOX_REF, spec=spec, labels=labels or {})
        )
        return cid

    yield make
    for cid in made:
        with contextlib.suppress(errors.NotFound):
            containerd_service.delete_container(cid)


def exec_in(daemon: ContainerdDaemon, ns: str, cid: str, script: str) -> str:
    """Run ``sh -c script`` in the running container with ctr; return its stdout."""
    return daemon.exec(ns, cid, script)


def task_status(service: ContainerdService, cid: str) -> TaskStatus:
    return service.get_task_info(cid).status


def test_import_oci_archive_registers_and_unpacks(
    containerd_service: ContainerdService,
    busybox_image: ImageInfo,
    containerd_daemon: ContainerdDaemon,
    containerd_namespace: str,
) -> None:
    assert busybox_image.name == BUSYBOX_REF
    assert busybox_image.id.startswith("sha256:")
    assert containerd_service.get_image("mcpm-busybox:test") == busybox_image
    assert busybox_image in containerd_service.list_images()
    assert BUSYBOX_REF in containerd_daemon.ctr(containerd_namespace, "images", "ls", "-q")
    resolved = resolve_image(containerd_service.connection, BUSYBOX_REF)
    top = chain_ids(resolved.diff_ids)[-1]
    names = {s.name: s for s in containerd_service.list_snapshots("overlayfs")}
    assert names[top].kind == "committed"


def test_import_docker_save_archive_runs(
    containerd_service: ContainerdService,
    containerd_daemon: ContainerdDaemon,
    containerd_namespace: str,
    tmp_path: str,
) -> None:
    layers = [busybox_layer(), [File("hello.txt", b"from docker save\n")]]
    path = build_image_archive(
        os.path.join(str(tmp_path), "d.tar"), "mcpm-docker:1", layers, fmt="docker"
    )
    with open(path, "rb") as fh:  # file-object form of the API
        info = containerd_service.import_image(fh)
    assert info.name == "docker.io/library/mcpm-docker:1"
    cid = f"t-{uuid.uuid4().hex[:10]}"
    req = CreateContainerRequest(
        id=cid, image_ref="mcpm-docker:1", spec=ContainerSpec(cmd=GRACEFUL)
    )
    containerd_service.create_container(req)
    try:
        containerd_service.start_container(cid)
        out = exec_in(containerd_daemon, containerd_namespace, cid, "cat /hello.txt")
        assert out == "from docker save\n"
    finally:
        containerd_service.delete_container(cid)
        containerd_service.delete_image(info.name)
    with pytest.raises(errors.NotFound):
        containerd_service.get_image(info.name)


def test_import_unnamed_archive_needs_ref(
    containerd_service: ContainerdService, tmp_path: str
) -> None:
    path = build_image_archive(
        os.path.join(str(tmp_path), "u.tar"), "", [busybox_layer()], annotations={}
    )
    with pytest.raises(errors.InvalidArgument):
        containerd_service.import_image(path)
    info = containerd_service.import_image(path, ref="mcpm-named:2")
    assert info.name == "docker.io/library/mcpm-named:2"
    containerd_service.delete_image(info.name)


def test_import_garbage_is_invalid(containerd_service: ContainerdService) -> None:
    with tempfile.NamedTemporaryFile(suffix=".tar") as fh:
        fh.write(b"not a tar at all" * 100)
        fh.flush()
        with pytest.raises(errors.InvalidArgument):
            containerd_service.import_image(fh.name)
    with pytest.raises(errors.NotFound):
        containerd_service.import_image("/nonexistent/archive.tar")


def test_container_lifecycle(
    containerd_service: ContainerdService,
    containerd_daemon: ContainerdDaemon,
    containerd_namespace: str,
    new_container: NewContainer,
) -> None:
    cid = new_container(env=("GREETING=hello",), labels={"mcp.bot_id": "b1"})
    info = containerd_service.get_container(cid)
    assert (info.image, info.snapshotter, info.snapshot_key) == (BUSYBOX_REF, "overlayfs", cid)
    assert info.runtime == "io.containerd.runc.v2"
    assert info.labels == {"mcp.bot_id": "b1"}
    assert [c.id for c in containerd_service.list_containers_by_label("mcp.bot_id", "b1")] == [cid]
    assert containerd_service.list_containers_by_label("mcp.bot_id", "other") == []

    containerd_service.start_container(cid)
    task = containerd_service.get_task_info(cid)
    assert task.status == TaskStatus.RUNNING
    assert task.pid > 0
    assert f"{cid} " in containerd_daemon.ctr(containerd_namespace, "tasks", "ls")
    assert exec_in(containerd_daemon, containerd_namespace, cid, "echo $GREETING") == "hello\n"
    assert any(t.container_id == cid for t in containerd_service.list_tasks())

    wait_until_ready(containerd_daemon, containerd_namespace, cid)
    containerd_service.stop_container(cid, StopTaskOptions(timeout=20))
    stopped = containerd_service.get_task_info(cid)
    assert (stopped.status, stopped.exit_code) == (TaskStatus.STOPPED, 0)
    containerd_service.stop_container(cid)  # already stopped: fine

    containerd_service.start_container(cid)  # replaces the stopped task
    assert task_status(containerd_service, cid) == TaskStatus.RUNNING

    containerd_service.delete_container(cid)  # removes the running task first
    with pytest.raises(errors.NotFound):
        containerd_service.get_container(cid)
    assert cid not in {s.name for s in containerd_service.list_snapshots("overlayfs")}


def test_stop_process_ignoring_sigterm(
    containerd_service: ContainerdService, new_container: NewContainer
) -> None:
    cid = new_container(STUBBORN)
    containerd_service.start_container(cid)
    with pytest.raises(errors.DeadlineExceeded):
        containerd_service.stop_container(cid, StopTaskOptions(timeout=0.5))
    assert task_status(containerd_service, cid) == TaskStatus.RUNNING
    containerd_service.stop_container(cid, StopTaskOptions(timeout=0.5, force=True))
    task = containerd_service.get_task_info(cid)
    assert (task.status, task.exit_code) == (TaskStatus.STOPPED, 128 + signal.SIGKILL)


def test_delete_task_force_and_stop_without_task(
    containerd_service: ContainerdService, new_container: NewContainer
) -> None:
    cid = new_container(STUBBORN)
    containerd_service.stop_container(cid)  # no task at all: fine
    with pytest.raises(errors.NotFound):
        containerd_service.get_task_info(cid)
    containerd_service.start_container(cid)
    with pytest.raises(errors.MCPManagerError):
        containerd_service.delete_task(cid)  # still running, not forced
    containerd_service.delete_task(cid, DeleteTaskOptions(force=True))
    with pytest.raises(errors.NotFound):
        containerd_service.get_task_info(cid)
    with pytest.raises(errors.NotFound):
        containerd_service.delete_task(cid)


def test_error_mapping(containerd_service: ContainerdService, new_container: NewContainer) -> None:
    with pytest.raises(errors.NotFound, match="nope"):
        containerd_service.get_container("nope")
    with pytest.raises(errors.NotFound):
        containerd_service.start_container("nope")
    with pytest.raises(errors.NotFound):
        containerd_service.get_image("docker.io/library/never-imported:1")
    with pytest.raises(errors.InvalidArgument):
        containerd_service.get_container("bad/id")
    cid = new_container()
    with pytest.raises(errors.AlreadyExists, match=cid):
        containerd_service.create_container(CreateContainerRequest(id=cid, image_ref=BUSYBOX_REF))
    containerd_service.start_container(cid)
    with pytest.raises(errors.AlreadyExists):
        containerd_service.start_container(cid)
    with pytest.raises(errors.InvalidArgument, match="cni_conf_dir"):
        containerd_service.setup_network(NetworkSetupRequest(container_id=cid))


def test_existing_snapshot_is_never_replaced(
    containerd_service: ContainerdService, busybox_image: ImageInfo
) -> None:
    cid = f"t-{uuid.uuid4().hex[:10]}"
    top = chain_ids(resolve_image(containerd_service.connection, BUSYBOX_REF).diff_ids)[-1]
    containerd_service.prepare_snapshot("overlayfs", cid, top, {"keep": "me"})
    try:
        with pytest.raises(errors.AlreadyExists, match=f"snapshot '{cid}'"):
            containerd_service.create_container(
                CreateContainerRequest(id=cid, image_ref=BUSYBOX_REF)
            )
        snaps = {s.name: s for s in containerd_service.list_snapshots("overlayfs")}
        assert snaps[cid].labels["keep"] == "me"
        with pytest.raises(errors.NotFound):
            containerd_service.get_container(cid)
    finally:
        snapshots.remove(containerd_service.connection, "overlayfs", cid)


def force_gc(service: ContainerdService) -> None:
    """Run containerd's garbage collector now (deleting a lease with sync does)."""
    conn = service.connection
    with conn.lease() as leased:
        lease_id = leased.lease_id
    conn.unary(conn.leases.Create, leases_pb2.CreateRequest(id=lease_id), what="gc")
    conn.unary(
        conn.leases.Delete,
        leases_pb2.DeleteRequest(id=lease_id, sync=True),
        what="gc",
    )


def test_delete_container_can_keep_snapshot(
    containerd_service: ContainerdService, new_container: NewContainer
) -> None:
    cid = new_container()
    containerd_service.delete_container(cid, DeleteContainerOptions(cleanup_snapshot=False))
    force_gc(containerd_service)  # nothing references it now; it must survive anyway
    kept = {s.name: s for s in containerd_service.list_snapshots("overlayfs")}
    assert snapshots.GC_ROOT_LABEL in kept[cid].labels
    snapshots.remove(containerd_service.connection, "overlayfs", cid)
    assert cid not in {s.name for s in containerd_service.list_snapshots("overlayfs")}


def test_concurrent_use_of_one_service(
    containerd_service: ContainerdService, busybox_image: ImageInfo
) -> None:
    ids = [f"p-{uuid.uuid4().hex[:8]}" for _ in range(4)]

    def cycle(cid: str) -> TaskStatus:
        spec = ContainerSpec(cmd=GRACEFUL)
        containerd_service.create_container(
            CreateContainerRequest(id=cid, image_ref=BUSYBOX_REF, spec=spec)
        )
        try:
            containerd_service.start_container(cid)
            status = containerd_service.get_task_info(cid).status
            containerd_service.stop_container(cid, StopTaskOptions(timeout=5, force=True))
            return status
        finally:
            containerd_service.delete_container(cid)

    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(cycle, ids))
    assert statuses == [TaskStatus.RUNNING] * 4
    left = {c.id for c in containerd_service.list_containers()}
    assert not left & set(ids)


def test_other_snapshotter_unpacks_on_demand(
    containerd_service: ContainerdService,
    containerd_daemon: ContainerdDaemon,
    containerd_namespace: str,
    busybox_image: ImageInfo,
) -> None:
    cid = f"n-{uuid.uuid4().hex[:8]}"
    req = CreateContainerRequest(
        id=cid, image_ref=BUSYBOX_REF, snapshotter="native", spec=ContainerSpec(cmd=GRACEFUL)
    )
    info = containerd_service.create_container(req)
    try:
        assert info.snapshotter == "native"
        assert cid in {s.name for s in containerd_service.list_snapshots("native")}
        containerd_service.start_container(cid)
        assert exec_in(containerd_daemon, containerd_namespace, cid, "echo ok") == "ok\n"
    finally:
        containerd_service.delete_container(cid)
    assert cid not in {s.name for s in containerd_service.list_snapshots("native")}


def test_taken_id_on_another_snapshot_leaves_no_snapshot_behind(
    containerd_service: ContainerdService, new_container: NewContainer
) -> None:
    """A container on a snapshot not named after it still blocks its ID; nothing leaks."""
    source = new_container()
    key = f"k-{uuid.uuid4().hex[:8]}"
    cid = f"t-{uuid.uuid4().hex[:10]}"
    containerd_service.commit_snapshot("overlayfs", f"{key}-base", source)
    containerd_service.prepare_snapshot("overlayfs", key, f"{key}-base")
    try:
        spec = ContainerSpec(cmd=GRACEFUL)
        containerd_service.create_container(
            CreateContainerRequest(id=cid, image_ref=BUSYBOX_REF, snapshot_id=key, spec=spec)
        )
        with pytest.raises(errors.AlreadyExists, match=f"container {cid}"):
            containerd_service.create_container(
                CreateContainerRequest(id=cid, image_ref=BUSYBOX_REF)
            )
        assert cid not in {s.name for s in containerd_service.list_snapshots("overlayfs")}
        assert containerd_service.get_container(cid).snapshot_key == key
        containerd_service.start_container(cid)  # its own snapshot's mounts, not a guess
        assert task_status(containerd_service, cid) == TaskStatus.RUNNING
    finally:
        with contextlib.suppress(errors.NotFound):
            containerd_service.delete_container(cid)
        for name in (key, f"{key}-base"):
            with contextlib.suppress(errors.NotFound):
                snapshots.remove(containerd_service.connection, "overlayfs", name)


def test_stop_of_a_missing_container_is_not_found(containerd_service: ContainerdService) -> None:
    with pytest.raises(errors.NotFound, match="nope"):
        containerd_service.stop_container("nope")
    with pytest.raises(errors.NotFound, match="nope"):
        containerd_service.delete_container("nope")


def test_refused_task_delete_leaves_the_task_running(
    containerd_service: ContainerdService, new_container: NewContainer
) -> None:
    cid = new_container(STUBBORN)
    containerd_service.start_container(cid)
    with pytest.raises(errors.FailedPrecondition, match=cid):
        containerd_service.delete_task(cid)
    assert task_status(containerd_service, cid) == TaskStatus.RUNNING


def stopped_container(service: ContainerdService, new_container: NewContainer) -> str:
    """A container whose task was started, then killed: a stopped task is left."""
    cid = new_container(STUBBORN)
    service.start_container(cid)
    service.stop_container(cid, StopTaskOptions(timeout=0.2, force=True))
    return cid


def test_force_delete_of_a_stopped_task(
    containerd_service: ContainerdService, new_container: NewContainer
) -> None:
    cid = stopped_container(containerd_service, new_container)
    assert task_status(containerd_service, cid) == TaskStatus.STOPPED
    containerd_service.delete_task(cid, DeleteTaskOptions(force=True))  # nothing left to kill
    with pytest.raises(errors.NotFound):
        containerd_service.get_task_info(cid)
    with pytest.raises(errors.NotFound, match=cid):
        containerd_service.delete_task(cid, DeleteTaskOptions(force=True))


def test_delete_container_removes_a_stopped_task(
    containerd_service: ContainerdService, new_container: NewContainer
) -> None:
    cid = stopped_container(containerd_service, new_container)
    containerd_service.delete_container(cid)
    with pytest.raises(errors.NotFound):
        containerd_service.get_container(cid)
    assert cid not in {t.container_id for t in containerd_service.list_tasks()}


def test_stop_returns_once_the_task_has_exited(
    containerd_service: ContainerdService,
    containerd_daemon: ContainerdDaemon,
    containerd_namespace: str,
    new_container: NewContainer,
) -> None:
    cid = new_container()
    for _ in range(3):  # the Wait is sent before the Kill: each stop still waits for the exit
        containerd_service.start_container(cid)
        wait_until_ready(containerd_daemon, containerd_namespace, cid)
        containerd_service.stop_container(cid, StopTaskOptions(timeout=20))
        stopped = containerd_service.get_task_info(cid)
        assert (stopped.status, stopped.exit_code) == (TaskStatus.STOPPED, 0)
