"""The Docker backend's mappings, without a daemon: errors, labels, specs, tasks, images."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import docker.errors
import pytest
import requests
import requests.exceptions

from mcpmanager import errors
from mcpmanager.docker import labels as lb
from mcpmanager.docker._errors import from_api_error, mapped, translate
from mcpmanager.docker.images import _Reporter, image_info
from mcpmanager.docker.importer import _convert_oci
from mcpmanager.docker.records import Holder, docker_word, held_name, parse_time, snapshot_tag
from mcpmanager.docker.refs import full_name, split_tag
from mcpmanager.docker.service import DockerService
from mcpmanager.docker.spec import command, to_mount
from mcpmanager.docker.tasks import TaskBook
from mcpmanager.types import ContainerSpec, MountSpec, PullProgress, TaskStatus
from tests.harness.containerd import File, build_image_archive


def api_error(status: int, message: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError(message, response=response, explanation=message)


@pytest.mark.parametrize(
    ("status", "message", "kind"),
    [
        (404, "No such container: x", errors.NotFound),
        (409, 'Conflict. The container name "/x" is already in use', errors.AlreadyExists),
        (409, "conflict: unable to remove repository reference", errors.FailedPrecondition),
        (400, "invalid mount config", errors.InvalidArgument),
        (401, "unauthorized", errors.FailedPrecondition),
        (500, "Get http://127.0.0.1:1/v2/: dial tcp: connection refused", errors.Unavailable),
        (500, "manifest unknown", errors.NotFound),
        (500, "context deadline exceeded", errors.DeadlineExceeded),
        (503, "busy", errors.Unavailable),
    ],
)
def test_api_errors_map_onto_mcpmanager_errors(status: int, message: str, kind: type) -> None:
    err = translate(api_error(status, message), "do it")
    assert type(err) is kind
    assert str(err).startswith("do it: ")


def test_an_unknown_server_error_keeps_its_status() -> None:
    err = from_api_error(500, "weird", "step")
    assert type(err) is errors.MCPManagerError
    assert "HTTP 500" in str(err)


def test_transport_failures_map_to_unavailable_and_deadline() -> None:
    assert isinstance(
        translate(requests.exceptions.ConnectionError("refused"), "x"), errors.Unavailable
    )
    assert isinstance(
        translate(requests.exceptions.ReadTimeout("slow"), "x"), errors.DeadlineExceeded
    )
    unix_timeout = requests.exceptions.ConnectionError("UnixHTTPConnectionPool: Read timed out.")
    assert isinstance(translate(unix_timeout, "x"), errors.DeadlineExceeded)
    assert isinstance(translate(docker.errors.DockerException("no API"), "x"), errors.Unavailable)


def test_mapped_lets_only_mcpmanager_errors_out() -> None:
    with pytest.raises(errors.NotFound, match="inspect c1"), mapped("inspect c1"):
        raise api_error(404, "No such container: c1")
    with pytest.raises(errors.InvalidArgument), mapped("x"):
        raise errors.InvalidArgument("kept as it is")


def test_an_unreachable_daemon_is_unavailable(tmp_path: Path) -> None:
    service = DockerService(f"unix://{tmp_path}/none.sock")
    with pytest.raises(errors.Unavailable):
        service.list_containers()


def test_record_sets_every_internal_label() -> None:
    rec = lb.record(kind=lb.KIND_CONTAINER, snapshot_labels="{}")
    assert rec[lb.KIND] == "container"
    assert rec[lb.SNAP_LABELS] == "{}"
    assert rec[lb.CONSUMED] == ""
    assert rec[lb.PREPARED] == ""
    assert all(k.startswith(lb.PREFIX) for k in rec)
    with pytest.raises(AssertionError):
        lb.record(nonsense="1")


def test_labels_round_trip_and_reserved_keys_are_refused() -> None:
    assert lb.decode(lb.encode({"b": "2", "a": "1"})) == {"a": "1", "b": "2"}
    assert lb.decode("not json") == {}
    assert lb.decode(None) == {}
    with pytest.raises(errors.InvalidArgument, match="reserved"):
        lb.check_user_labels({"io.mcpmanager.kind": "x"}, "c")


def test_spec_hash_tells_requests_apart() -> None:
    a = lb.spec_hash("img", {"k": "v"}, ContainerSpec(env=("A=1",)))
    assert a == lb.spec_hash("img", {"k": "v"}, ContainerSpec(env=("A=1",)))
    assert a != lb.spec_hash("img", {"k": "v"}, ContainerSpec(env=("A=2",)))
    assert a != lb.spec_hash("img2", {"k": "v"}, ContainerSpec(env=("A=1",)))


def test_cmd_replaces_entrypoint_and_command() -> None:
    assert command(ContainerSpec(cmd=("/bin/sh", "-c", "x")), None) == (["/bin/sh"], ["-c", "x"])
    config = {"Entrypoint": ["/init"], "Cmd": ["serve"]}
    assert command(ContainerSpec(), config) == (["/init"], ["serve"])
    assert command(ContainerSpec(), None) == (None, None)


def test_bind_and_tmpfs_mounts() -> None:
    m = to_mount(MountSpec("/etc/resolv.conf", "bind", "/tmp/r", ("rbind", "ro")), "c")
    assert (m["Type"], m["Source"], m["Target"], m["ReadOnly"]) == (
        "bind",
        "/tmp/r",
        "/etc/resolv.conf",
        True,
    )
    t = to_mount(MountSpec("/scratch", "tmpfs", "tmpfs", ("size=1m", "mode=1777")), "c")
    assert t["TmpfsOptions"] == {"SizeBytes": 1 << 20, "Mode": 0o1777}


@pytest.mark.parametrize(
    "mount",
    [
        MountSpec("/x", "overlay", "overlay"),
        MountSpec("/x", "bind", "relative", ("rbind",)),
        MountSpec("relative", "bind", "/x", ("rbind",)),
        MountSpec("/x", "bind", "/y", ("rbind", "noexec")),
    ],
)
def test_mounts_docker_cannot_express_are_refused(mount: MountSpec) -> None:
    with pytest.raises(errors.InvalidArgument, match="mount on"):
        to_mount(mount, "c")


def test_refs_split_and_qualify() -> None:
    assert split_tag("127.0.0.1:5000/a/b") == ("127.0.0.1:5000/a/b", "latest")
    assert split_tag("127.0.0.1:5000/a:v1") == ("127.0.0.1:5000/a", "v1")
    assert full_name("busybox") == "docker.io/library/busybox:latest"
    with pytest.raises(errors.InvalidArgument):
        split_tag("a@sha256:" + "0" * 64)


def test_image_info_prefers_the_registry_digest_of_its_repository() -> None:
    doc = {
        "Id": "sha256:" + "1" * 64,
        "RepoTags": ["127.0.0.1:5000/app:v1", "other:v2"],
        "RepoDigests": ["other@sha256:" + "2" * 64, "127.0.0.1:5000/app@sha256:" + "3" * 64],
    }
    info = image_info("127.0.0.1:5000/app:v1", doc)
    assert info.id == "sha256:" + "3" * 64
    assert info.tags == ("127.0.0.1:5000/app:v1", "docker.io/library/other:v2")
    assert image_info("loaded:v1", {"Id": "sha256:" + "1" * 64}).id == "sha256:" + "1" * 64


def test_pull_progress_per_layer() -> None:
    seen: list[PullProgress] = []
    rep = _Reporter("r", seen.append)
    rep.feed({"status": "Pulling fs layer", "id": "abc"})
    rep.feed({"status": "Downloading", "id": "abc", "progressDetail": {"current": 5, "total": 10}})
    rep.feed({"status": "Download complete", "id": "abc"})
    rep.feed({"status": "Already exists", "id": "def"})
    rep.feed({"status": "Digest: sha256:00"})
    assert [(p.digest, p.done, p.total) for p in seen] == [
        ("abc", 5, 10),
        ("abc", 10, 10),
        ("def", 1, 1),
    ]


def test_a_failing_progress_callback_does_not_fail_the_pull() -> None:
    def boom(_: PullProgress) -> None:
        raise RuntimeError("callback bug")

    _Reporter("r", boom).feed({"status": "Already exists", "id": "x"})


def test_tasks_follow_the_containers_run() -> None:
    book = TaskBook()
    never = {"Status": "created", "StartedAt": "0001-01-01T00:00:00Z"}
    assert book.task("c", "d", never) is None
    running = {"Status": "running", "Pid": 42, "StartedAt": "2026-01-01T00:00:00Z"}
    task = book.task("c", "d", running)
    assert task is not None
    assert (task.status, task.pid) == (TaskStatus.RUNNING, 42)
    exited = {**running, "Status": "exited", "ExitCode": 3, "FinishedAt": "2026-01-01T00:01:00Z"}
    task = book.task("c", "d", exited)
    assert task is not None
    assert (task.status, task.exit_code, task.pid) == (
        TaskStatus.STOPPED,
        3,
        0,
    )
    book.forget("d", exited)
    assert book.task("c", "d", exited) is None
    again = {**exited, "FinishedAt": "2026-01-01T00:02:00Z"}
    assert book.task("c", "d", again) is not None


def test_holder_reports_only_the_callers_labels() -> None:
    doc = {
        "Id": "abc",
        "Names": ["/mcp-a"],
        "Created": 1700000000,
        "Labels": {
            **lb.record(kind="container", snapshot="mcp-a", labels=lb.encode({"mcp.bot_id": "a"})),
            "containerd.io/gc.root": "inherited from an image",
        },
    }
    info = Holder.from_doc(doc).container_info()
    assert (info.id, info.snapshot_key, dict(info.labels)) == (
        "mcp-a",
        "mcp-a",
        {"mcp.bot_id": "a"},
    )
    assert parse_time("2026-01-02T03:04:05.123456789Z") is not None
    assert parse_time("0001-01-01T00:00:00Z") is None


def test_times_read_the_same_from_a_list_and_an_inspect() -> None:
    inspected = parse_time("2026-01-02T03:04:05.987654321Z")
    listed = parse_time(inspected.timestamp() if inspected else 0)
    assert inspected == listed
    assert inspected is not None
    assert inspected.microsecond == 0


@pytest.mark.parametrize("name", ["mcp-a-v1", "A.b_c-9", "_x", "a" * 100])
def test_names_docker_accepts_are_kept(name: str) -> None:
    assert docker_word(name) == name
    assert held_name(name) == "mcpmanager-held." + name
    assert snapshot_tag(name) == name


def test_other_names_become_fitting_and_distinct() -> None:
    odd = ["k:sha256:00", "k/with space", "-lead", ".dot", "ünï", "a" * 101, "a" * 102, ":"]
    words = [docker_word(n) for n in odd]
    assert len(set(words)) == len(odd)
    for word in words:
        assert docker_word(word) == word  # fits Docker's rule: kept as it is
        assert len(word) <= 100
    assert docker_word("k:sha256:00").startswith("k_sha256_00.")
    assert docker_word("k:sha256:00") == docker_word("k:sha256:00")


def test_an_oci_layout_becomes_a_docker_save_archive(tmp_path: Path) -> None:
    src = build_image_archive(
        str(tmp_path / "oci.tar"),
        "docker.io/library/x:v1",
        [[File("a.txt", b"a")]],
        multi_platform=True,
    )
    out = io.BytesIO()
    with tarfile.open(src) as tar:
        assert _convert_oci(tar, out, None) == "docker.io/library/x:v1"
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert manifest[0]["RepoTags"] == ["docker.io/library/x:v1"]
        config = json.load(tar.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        assert len(manifest[0]["Layers"]) == len(config["rootfs"]["diff_ids"]) == 1
        assert all(name in tar.getnames() for name in manifest[0]["Layers"])


def test_an_archive_without_a_name_needs_a_ref(tmp_path: Path) -> None:
    src = build_image_archive(str(tmp_path / "o.tar"), "", [[File("a", b"a")]], annotations={})
    with tarfile.open(src) as tar, pytest.raises(errors.InvalidArgument, match="pass ref"):
        _convert_oci(tar, io.BytesIO(), None)
    assert os.path.exists(src)
