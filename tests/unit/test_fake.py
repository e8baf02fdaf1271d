"""The fake behaves like containerd: same validation, same errors, real files."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from mcpmanager import FakeContainerService, errors
from mcpmanager.fake import Call
from mcpmanager.service import ContainerService
from mcpmanager.types import (
    CreateContainerRequest,
    DeleteContainerOptions,
    DeleteTaskOptions,
    NetworkSetupRequest,
    PullImageOptions,
    PullProgress,
    TaskStatus,
)

IMAGE = "docker.io/library/busybox:latest"


@pytest.fixture
def svc(fake: FakeContainerService) -> FakeContainerService:
    fake.pull_image(IMAGE)
    return fake


def create(svc: FakeContainerService, cid: str = "c1") -> None:
    svc.create_container(CreateContainerRequest(id=cid, image_ref=IMAGE, labels={"k": "v"}))


def test_is_a_container_service(fake: FakeContainerService) -> None:
    assert isinstance(fake, ContainerService)


def test_pull_uses_remote_digest_and_reports_progress(fake: FakeContainerService) -> None:
    fake.set_remote_digest(IMAGE, "sha256:" + "ab" * 32)
    seen = []
    image = fake.pull_image(IMAGE, PullImageOptions(progress=seen.append))
    assert image.id == "sha256:" + "ab" * 32
    assert fake.get_image(IMAGE) == image
    assert seen[-1].done == seen[-1].total
    finals = {p.digest: p for p in seen if p.done == p.total}
    assert len(finals) == 3  # every simulated layer finishes, with its size in bytes
    assert all(p.total > 1 for p in finals.values())
    again: list[PullProgress] = []
    fake.pull_image(IMAGE, PullImageOptions(progress=again.append))
    assert [(p.digest, p.total) for p in again] == [(p.digest, p.total) for p in seen]


def test_get_image_short_name_fallback(svc: FakeContainerService) -> None:
    assert svc.get_image("busybox:latest").name == IMAGE


def test_registry_unreachable(fake: FakeContainerService) -> None:
    fake.remote_unreachable = True
    with pytest.raises(errors.Unavailable):
        fake.resolve_remote_digest(IMAGE)
    with pytest.raises(errors.Unavailable):
        fake.pull_image(IMAGE)
    assert fake.list_images() == []


def test_removed_remote_image_is_not_found(fake: FakeContainerService) -> None:
    fake.remove_remote("busybox")
    for call in (fake.resolve_remote_digest, fake.pull_image):
        with pytest.raises(errors.NotFound, match="busybox"):
            call(IMAGE)
    fake.set_remote_digest("busybox", "sha256:" + "cd" * 32)
    assert fake.pull_image(IMAGE).id == "sha256:" + "cd" * 32


def test_delete_image(svc: FakeContainerService) -> None:
    svc.delete_image(IMAGE)
    with pytest.raises(errors.NotFound):
        svc.get_image(IMAGE)


def test_empty_ids_are_invalid(svc: FakeContainerService) -> None:
    with pytest.raises(errors.InvalidArgument):
        svc.create_container(CreateContainerRequest(id="", image_ref=IMAGE))
    with pytest.raises(errors.InvalidArgument):
        svc.get_container("")
    with pytest.raises(errors.InvalidArgument):
        svc.start_container("")
    with pytest.raises(ValueError, match="must not be empty"):
        svc.prepare_snapshot("", "", "")


def test_container_lifecycle(svc: FakeContainerService) -> None:
    create(svc)
    info = svc.get_container("c1")
    assert (info.labels, info.snapshot_key, info.snapshotter) == ({"k": "v"}, "c1", "overlayfs")
    assert info.created_at is not None
    assert info.created_at.tzinfo is not None
    with pytest.raises(errors.AlreadyExists):
        create(svc)
    svc.start_container("c1")
    task = svc.get_task_info("c1")
    assert task.status is TaskStatus.RUNNING
    assert task.pid > 0
    with pytest.raises(errors.AlreadyExists):
        svc.start_container("c1")
    with pytest.raises(errors.FailedPrecondition):
        svc.delete_task("c1")
    svc.stop_container("c1")
    assert svc.get_task_info("c1").status is TaskStatus.STOPPED
    svc.stop_container("c1")  # stopping a stopped task is harmless
    svc.start_container("c1")  # a stopped task is replaced, as containerd's backend does
    assert svc.get_task_info("c1").pid != task.pid
    svc.delete_container("c1")  # kills and removes the running task first
    with pytest.raises(errors.NotFound):
        svc.get_container("c1")
    assert svc.list_tasks() == []
    assert "c1" not in {s.name for s in svc.list_snapshots("overlayfs")}


def test_unknown_container_is_not_found(svc: FakeContainerService) -> None:
    for call in (svc.start_container, svc.stop_container, svc.get_task_info, svc.delete_task):
        with pytest.raises(errors.NotFound):
            call("nope")


def test_create_pulls_a_missing_image(fake: FakeContainerService) -> None:
    fake.remote_unreachable = True
    with pytest.raises(errors.Unavailable):
        create(fake)
    assert fake.list_containers() == []
    assert fake.list_snapshots("overlayfs") == []
    fake.remote_unreachable = False
    fake.calls.clear()
    create(fake)
    assert fake.get_container("c1").image == IMAGE
    assert fake.get_image(IMAGE).id == fake.resolve_remote_digest(IMAGE)
    assert fake.count("pull_image") == 0  # an internal pull, not a protocol call


def test_names_are_stored_qualified(fake: FakeContainerService) -> None:
    image = fake.pull_image("busybox")
    full = "docker.io/library/busybox:latest"
    assert (image.name, image.tags) == (full, (full,))
    assert fake.get_image("busybox:latest") == image
    fake.set_local_digest("alpine:3", "sha256:" + "01" * 32)
    assert fake.get_image("docker.io/library/alpine:3").id == "sha256:" + "01" * 32


def test_ids_follow_containerds_rule(svc: FakeContainerService) -> None:
    for bad in ("p-", "-p", "p--q", "a" * 77, "bad/id"):
        with pytest.raises(errors.InvalidArgument, match="container ID"):
            svc.create_container(CreateContainerRequest(id=bad, image_ref=IMAGE))
    svc.create_container(CreateContainerRequest(id="a" * 76, image_ref=IMAGE))
    assert svc.calls[-1].method == "create_container"


def test_labels_filter(svc: FakeContainerService) -> None:
    create(svc, "a")
    svc.create_container(CreateContainerRequest(id="b", image_ref=IMAGE, labels={"k": "w"}))
    svc.create_container(CreateContainerRequest(id="c", image_ref=IMAGE))
    assert {c.id for c in svc.list_containers_by_label("k")} == {"a", "b"}
    assert [c.id for c in svc.list_containers_by_label("k", "w")] == ["b"]
    assert len(svc.list_containers()) == 3


def test_network_is_loopback_and_idempotent(svc: FakeContainerService) -> None:
    create(svc)
    req = NetworkSetupRequest(container_id="c1", cni_bin_dir="/b", cni_conf_dir="/c")
    with pytest.raises(errors.FailedPrecondition):
        svc.setup_network(req)  # no running task
    svc.start_container("c1")
    ip = svc.setup_network(req).ip
    assert ip.startswith("127.")
    assert ip != "127.0.0.1"
    assert svc.setup_network(req).ip == ip
    svc.remove_network(req)
    svc.remove_network(req)
    assert svc.container_ip("c1") == ""


def test_snapshots_are_real_directories(svc: FakeContainerService) -> None:
    create(svc)
    active = Path(svc.snapshot_path("", "c1"))
    (active / "data" / "note.txt").write_text("v1")
    svc.commit_snapshot("overlayfs", "snap1", "c1", labels={"containerd.io/gc.root": "x"})
    with pytest.raises(errors.NotFound):
        svc.snapshot_path("", "c1")  # commit consumes the active key
    svc.prepare_snapshot("overlayfs", "c1-active", "snap1")
    copy = Path(svc.snapshot_path("", "c1-active"))
    assert (copy / "data" / "note.txt").read_text() == "v1"
    (copy / "data" / "note.txt").write_text("v2")
    assert Path(svc.snapshot_path("", "snap1"), "data", "note.txt").read_text() == "v1"
    kinds = {s.name: (s.kind, s.parent) for s in svc.list_snapshots("overlayfs")}
    assert kinds["snap1"][0] == "committed"
    assert kinds["c1-active"] == ("active", "snap1")
    mounts = svc.snapshot_mounts("overlayfs", "c1-active")
    assert [(m.type, m.source) for m in mounts] == [("bind", str(copy))]


def test_snapshot_errors(svc: FakeContainerService) -> None:
    create(svc)
    with pytest.raises(errors.NotFound):
        svc.prepare_snapshot("overlayfs", "x", "missing")
    with pytest.raises(errors.InvalidArgument):
        svc.prepare_snapshot("overlayfs", "x", "c1")  # parent is active
    svc.commit_snapshot("overlayfs", "s", "c1")
    with pytest.raises(errors.AlreadyExists):
        svc.prepare_snapshot("overlayfs", "s", "s")
    svc.prepare_snapshot("overlayfs", "a2", "s")
    svc.prepare_snapshot("overlayfs", "a3", "s")
    with pytest.raises(errors.AlreadyExists):
        svc.commit_snapshot("overlayfs", "s", "a2")
    with pytest.raises(errors.FailedPrecondition):
        svc.commit_snapshot("overlayfs", "s2", "s")


def test_create_from_snapshot_and_keep_snapshot(svc: FakeContainerService) -> None:
    create(svc)
    Path(svc.snapshot_path("", "c1"), "data", "f").write_text("kept")
    svc.delete_container("c1", DeleteContainerOptions(cleanup_snapshot=False))
    with pytest.raises(errors.AlreadyExists, match="snapshot c1"):
        create(svc)  # an orphaned snapshot is never replaced
    req = CreateContainerRequest(id="c1", image_ref=IMAGE, snapshot_id="c1")
    assert svc.create_container_from_snapshot(req).snapshot_key == "c1"
    assert Path(svc.snapshot_path("", "c1"), "data", "f").read_text() == "kept"
    with pytest.raises(errors.NotFound):
        svc.create_container_from_snapshot(
            CreateContainerRequest(id="c2", image_ref=IMAGE, snapshot_id="nope")
        )


def test_mounts_switch(svc: FakeContainerService) -> None:
    create(svc)
    svc.mounts_supported = False
    with pytest.raises(errors.NotSupported):
        svc.snapshot_mounts("overlayfs", "c1")


def test_fault_injection_and_call_log(svc: FakeContainerService) -> None:
    create(svc)
    svc.calls.clear()
    svc.fail("start_container", errors.Unavailable("boom"), times=2)
    for _ in range(2):
        with pytest.raises(errors.Unavailable, match="boom"):
            svc.start_container("c1")
    svc.start_container("c1")
    assert svc.calls == [Call("start_container", ("c1",), {})] * 3
    assert svc.count("start_container") == 3
    with pytest.raises(errors.InvalidArgument):
        svc.fail("no_such_method", errors.Unavailable)
    svc.fail("get_container", errors.NotFound)
    with pytest.raises(errors.NotFound):
        svc.get_container("c1")


def test_list_tasks_filter(svc: FakeContainerService) -> None:
    create(svc, "a")
    create(svc, "b")
    svc.start_container("a")
    svc.start_container("b")
    svc.stop_container("b")
    assert [t.id for t in svc.list_tasks("status==running")] == ["a"]
    assert len(svc.list_tasks()) == 2
    with pytest.raises(errors.InvalidArgument):
        svc.list_tasks("bogus")
    svc.delete_task("b", DeleteTaskOptions())
    assert [t.id for t in svc.list_tasks()] == ["a"]


def _tar(files: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_import_oci_and_docker_archives(fake: FakeContainerService, tmp_path: Path) -> None:
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "digest": "sha256:" + "cd" * 32,
                "annotations": {"org.opencontainers.image.ref.name": "example.com/a:1"},
            }
        ],
    }
    image = fake.import_image(_tar({"index.json": json.dumps(index).encode()}))
    assert (image.name, image.id) == ("example.com/a:1", "sha256:" + "cd" * 32)
    manifest = [{"Config": "cfg.json", "RepoTags": ["busybox:1"], "Layers": []}]
    archive = tmp_path / "img.tar"
    archive.write_bytes(
        _tar({"manifest.json": json.dumps(manifest).encode(), "cfg.json": b"{}"}).read()
    )
    assert fake.import_image(os.fspath(archive)).name == "docker.io/library/busybox:1"
    with pytest.raises(errors.InvalidArgument):
        fake.import_image(io.BytesIO(b"not a tar"))


def test_close_removes_temporary_root() -> None:
    svc = FakeContainerService()
    root = svc.root
    assert os.path.isdir(root)
    svc.close()
    svc.close()
    assert not os.path.exists(root)
