"""DockerService on a real private dockerd: images, containers, tasks, network, snapshots."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from mcpmanager import errors
from mcpmanager.docker import DockerService
from mcpmanager.types import (
    ContainerSpec,
    CreateContainerRequest,
    DeleteContainerOptions,
    ImageInfo,
    MountSpec,
    NetworkSetupRequest,
    PullImageOptions,
    PullProgress,
    StopTaskOptions,
    TaskStatus,
)
from tests.harness.common import wait_for
from tests.harness.containerd import BUSYBOX_REF, GRACEFUL_CMD, File, build_image_archive
from tests.harness.docker import DockerDaemon, NetnsRegistry
from tests.harness.registry import build_oci_image, busybox_layer

pytestmark = pytest.mark.integration

CID = "mcp-dk"


def request(
    cid: str = CID, *, cmd: tuple[str, ...] = GRACEFUL_CMD, **kw: object
) -> CreateContainerRequest:
    return CreateContainerRequest(
        id=cid,
        image_ref=BUSYBOX_REF,
        labels={"mcp.bot_id": cid.removeprefix("mcp-")},
        spec=ContainerSpec(cmd=cmd, env=("MARK=1",)),
        **kw,  # type: ignore[arg-type]
    )


def docker_exec(daemon: DockerDaemon, cid: str, script: str) -> str:
    api = daemon.api()
    try:
        run = api.exec_create(cid, ["/bin/sh", "-c", script])
        return api.exec_start(run["Id"]).decode()
    finally:
        api.close()


def ready(daemon: DockerDaemon, cid: str) -> None:
    wait_for(
        lambda: docker_exec(daemon, cid, "cat /run/ready 2>/dev/null; true").strip() == "ready",
        timeout=30,
        what=f"{cid} ready",
    )


def test_images_load_list_and_delete(
    docker_service: DockerService, docker_busybox: ImageInfo, tmp_path: Path
) -> None:
    assert docker_service.get_image(BUSYBOX_REF).id == docker_busybox.id
    assert docker_service.get_image("mcpm-busybox:test").name == BUSYBOX_REF
    save = build_image_archive(
        str(tmp_path / "s.tar"), "docker.io/library/mcpm-save:v1", [[File("f", b"x")]], fmt="docker"
    )
    loaded = docker_service.import_image(save, ref="docker.io/library/mcpm-save:v2")
    assert loaded.name == "docker.io/library/mcpm-save:v2"
    names = {i.name for i in docker_service.list_images()}
    assert {
        BUSYBOX_REF,
        "docker.io/library/mcpm-save:v1",
        "docker.io/library/mcpm-save:v2",
    } <= names
    docker_service.delete_image("docker.io/library/mcpm-save:v1")
    docker_service.delete_image("docker.io/library/mcpm-save:v2")
    with pytest.raises(errors.NotFound):
        docker_service.get_image("docker.io/library/mcpm-save:v2")
    with pytest.raises(errors.NotFound):
        docker_service.import_image(str(tmp_path / "missing.tar"))


def test_pull_reports_progress_and_matches_the_remote_digest(
    docker_service: DockerService, docker_registry: NetnsRegistry, tmp_path: Path
) -> None:
    built = build_oci_image(str(tmp_path / "layout"), [busybox_layer(), {"x": b"y" * 4096}])
    ref = docker_registry.push(built, "mcpm/pulled:v1")
    remote = docker_service.resolve_remote_digest(ref)
    assert remote == built.target_digest
    seen: list[PullProgress] = []
    image = docker_service.pull_image(ref, PullImageOptions(progress=seen.append))
    assert image.id == remote
    assert {p.digest for p in seen if p.done == p.total and p.total > 0}, seen
    with pytest.raises(errors.NotFound):
        docker_service.pull_image(f"{docker_registry.host}/mcpm/absent:v1")
    with pytest.raises(errors.Unavailable):
        docker_service.resolve_remote_digest("127.0.0.1:1/nothing:v1")
    docker_service.delete_image(ref)


def test_container_lifecycle_and_tasks(
    docker_service: DockerService, docker_busybox: ImageInfo, docker_daemon: DockerDaemon
) -> None:
    info = docker_service.create_container(request())
    assert (info.id, info.snapshot_key, dict(info.labels)) == (CID, CID, {"mcp.bot_id": "dk"})
    with pytest.raises(errors.AlreadyExists):
        docker_service.create_container(request())
    with pytest.raises(errors.NotFound):
        docker_service.get_task_info(CID)
    assert [c.id for c in docker_service.list_containers_by_label("mcp.bot_id", "dk")] == [CID]
    assert docker_service.list_containers_by_label("mcp.bot_id", "other") == []

    docker_service.start_container(CID)
    task = docker_service.get_task_info(CID)
    assert task.status is TaskStatus.RUNNING
    assert task.pid > 0
    assert [t.id for t in docker_service.list_tasks("status==running")] == [CID]
    with pytest.raises(errors.AlreadyExists):
        docker_service.start_container(CID)
    with pytest.raises(errors.FailedPrecondition):
        docker_service.delete_task(CID)
    ready(docker_daemon, CID)
    assert docker_exec(docker_daemon, CID, "echo $MARK").strip() == "1"
    ip = docker_service.setup_network(NetworkSetupRequest(CID)).ip
    assert ip
    assert docker_service.setup_network(NetworkSetupRequest(CID)).ip == ip

    docker_service.stop_container(CID, StopTaskOptions(timeout=10))
    task = docker_service.get_task_info(CID)
    assert (task.status, task.exit_code) == (TaskStatus.STOPPED, 0)
    with pytest.raises(errors.FailedPrecondition):
        docker_service.setup_network(NetworkSetupRequest(CID))
    docker_service.remove_network(NetworkSetupRequest(CID))
    docker_service.delete_task(CID)
    with pytest.raises(errors.NotFound):
        docker_service.get_task_info(CID)
    docker_service.start_container(CID)
    docker_service.stop_container(CID, StopTaskOptions(signal=9, timeout=5))
    assert docker_service.get_task_info(CID).exit_code == 137
    docker_service.delete_container(CID)
    with pytest.raises(errors.NotFound):
        docker_service.get_container(CID)
    assert docker_service.list_snapshots("overlayfs") == []


def test_stop_without_force_gives_up_and_force_kills(
    docker_service: DockerService, docker_busybox: ImageInfo
) -> None:
    docker_service.create_container(request(cmd=("/bin/sleep", "1000")))
    docker_service.start_container(CID)
    with pytest.raises(errors.DeadlineExceeded):
        docker_service.stop_container(CID, StopTaskOptions(timeout=1))
    docker_service.stop_container(CID, StopTaskOptions(timeout=1, force=True))
    assert docker_service.get_task_info(CID).status is TaskStatus.STOPPED
    docker_service.start_container(CID)
    docker_service.delete_container(CID)  # a running container is killed first
    assert docker_service.list_containers() == []


def test_bad_input_is_refused(docker_service: DockerService, docker_busybox: ImageInfo) -> None:
    with pytest.raises(errors.InvalidArgument):
        docker_service.create_container(request("bad id"))
    with pytest.raises(errors.InvalidArgument):
        docker_service.create_container(request("mcpmanager-held.x"))
    with pytest.raises(errors.InvalidArgument, match="reserved"):
        docker_service.create_container(
            CreateContainerRequest(id=CID, image_ref=BUSYBOX_REF, labels={"io.mcpmanager.x": "1"})
        )
    missing = MountSpec("/m", "bind", "/nonexistent/mcpm-src", ("rbind", "ro"))
    with pytest.raises(errors.InvalidArgument):
        docker_service.create_container(
            CreateContainerRequest(
                id=CID, image_ref=BUSYBOX_REF, spec=ContainerSpec(mounts=[missing])
            )
        )
    with pytest.raises(errors.Unavailable):  # not local, and its registry is unreachable
        docker_service.create_container(
            CreateContainerRequest(id=CID, image_ref="127.0.0.1:1/none:v1")
        )
    with pytest.raises(errors.NotFound):
        docker_service.get_container("mcp-nope")
    with pytest.raises(errors.NotFound):
        docker_service.stop_container("mcp-nope")
    assert docker_service.list_containers() == []


def test_snapshots_commit_prepare_recreate_and_remove(
    docker_service: DockerService, docker_busybox: ImageInfo, docker_daemon: DockerDaemon
) -> None:
    svc = docker_service
    svc.create_container(request())
    svc.start_container(CID)
    ready(docker_daemon, CID)
    docker_exec(docker_daemon, CID, "echo v1 > /data/f")
    svc.stop_container(CID, StopTaskOptions(timeout=10, force=True))
    svc.commit_snapshot("overlayfs", "mcp-dk-v1", CID, {"mcp.bot_id": "dk"})
    with pytest.raises(errors.AlreadyExists):
        svc.commit_snapshot("overlayfs", "mcp-dk-v1", CID)
    with pytest.raises(errors.NotFound):  # the commit took the active snapshot
        svc.commit_snapshot("overlayfs", "mcp-dk-v2", CID)
    with pytest.raises(errors.FailedPrecondition):
        svc.start_container(CID)
    svc.prepare_snapshot("overlayfs", "mcp-dk-active-1", "mcp-dk-v1", {"mcp.bot_id": "dk"})
    with pytest.raises(errors.AlreadyExists):
        svc.prepare_snapshot("overlayfs", "mcp-dk-active-1", "mcp-dk-v1")
    with pytest.raises(errors.NotFound):
        svc.prepare_snapshot("overlayfs", "mcp-dk-active-2", "no-such")
    snaps = {s.name: s for s in svc.list_snapshots("overlayfs")}
    assert set(snaps) == {"mcp-dk-v1", "mcp-dk-active-1"}
    assert (snaps["mcp-dk-v1"].kind, snaps["mcp-dk-active-1"].kind) == ("committed", "active")
    assert snaps["mcp-dk-active-1"].parent == "mcp-dk-v1"
    assert dict(snaps["mcp-dk-active-1"].labels) == {"mcp.bot_id": "dk"}

    svc.delete_container(CID, DeleteContainerOptions(cleanup_snapshot=False))
    info = svc.create_container_from_snapshot(request(snapshot_id="mcp-dk-active-1"))
    assert info.snapshot_key == "mcp-dk-active-1"
    with pytest.raises(errors.NotSupported):
        svc.snapshot_mounts("overlayfs", "mcp-dk-active-1")
    with pytest.raises(errors.FailedPrecondition):
        svc.remove_snapshot("overlayfs", "mcp-dk-active-1")
    with pytest.raises(errors.FailedPrecondition):
        svc.remove_snapshot("overlayfs", "mcp-dk-v1")
    svc.start_container(CID)
    ready(docker_daemon, CID)
    assert docker_exec(docker_daemon, CID, "cat /data/f").strip() == "v1"
    docker_exec(docker_daemon, CID, "echo v2 > /data/f")
    svc.stop_container(CID, StopTaskOptions(timeout=10, force=True))

    # Kept on delete, it comes back by rename with the same request...
    svc.delete_container(CID, DeleteContainerOptions(cleanup_snapshot=False))
    kinds = [s.kind for s in svc.list_snapshots("overlayfs") if s.name == "mcp-dk-active-1"]
    assert kinds == ["active"]
    with pytest.raises(errors.AlreadyExists):
        svc.prepare_snapshot("overlayfs", "mcp-dk-active-1", "mcp-dk-v1")
    svc.create_container_from_snapshot(request(snapshot_id="mcp-dk-active-1"))
    svc.start_container(CID)
    ready(docker_daemon, CID)
    assert docker_exec(docker_daemon, CID, "cat /data/f").strip() == "v2"
    svc.stop_container(CID, StopTaskOptions(timeout=10, force=True))
    # ...and from a copy of it with a different one.
    svc.delete_container(CID, DeleteContainerOptions(cleanup_snapshot=False))
    other = CreateContainerRequest(
        id=CID,
        image_ref=BUSYBOX_REF,
        snapshot_id="mcp-dk-active-1",
        spec=ContainerSpec(cmd=GRACEFUL_CMD, env=("MARK=2",)),
    )
    svc.create_container_from_snapshot(other)
    svc.start_container(CID)
    ready(docker_daemon, CID)
    assert docker_exec(docker_daemon, CID, "cat /data/f; echo $MARK").split() == ["v2", "2"]
    svc.delete_container(CID)
    svc.remove_snapshot("overlayfs", "mcp-dk-v1")
    assert svc.list_snapshots("overlayfs") == []
    with pytest.raises(errors.NotFound):
        svc.remove_snapshot("overlayfs", "mcp-dk-v1")
    with pytest.raises(errors.NotFound):
        svc.snapshot_mounts("overlayfs", "mcp-dk-active-1")


def test_an_existing_kept_snapshot_blocks_a_new_container(
    docker_service: DockerService, docker_busybox: ImageInfo
) -> None:
    docker_service.create_container(request())
    docker_service.delete_container(CID, DeleteContainerOptions(cleanup_snapshot=False))
    with pytest.raises(errors.AlreadyExists, match="snapshot"):
        docker_service.create_container(request())
    docker_service.remove_snapshot("overlayfs", CID)
    docker_service.create_container(request())
    assert [c.id for c in docker_service.list_containers()] == [CID]


def test_oci_archive_import_round_trips_through_docker(
    docker_service: DockerService, docker_daemon: DockerDaemon, tmp_path: Path
) -> None:
    path = build_image_archive(
        str(tmp_path / "o.tar"),
        "docker.io/library/mcpm-oci:v1",
        [[File("hello.txt", b"hello\n")]],
        multi_platform=True,
    )
    with open(path, "rb") as fh:
        info = docker_service.import_image(fh)
    assert info.name == "docker.io/library/mcpm-oci:v1"
    api = docker_daemon.api()
    try:
        raw = b"".join(api.get_image("mcpm-oci:v1"))
    finally:
        api.close()
    out = tmp_path / "saved.tar"
    out.write_bytes(raw)
    with tarfile.open(out) as tar:
        assert "manifest.json" in tar.getnames()
    docker_service.delete_image("docker.io/library/mcpm-oci:v1")
    assert os.path.exists(path)
