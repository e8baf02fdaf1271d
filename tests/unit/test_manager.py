"""Manager lifecycle on the fake: every behaviour of the original, and its failure paths."""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from mcpmanager import (
    BOT_LABEL_KEY,
    IP_LABEL_KEY,
    FakeContainerService,
    Manager,
    ManagerConfig,
    errors,
)
from mcpmanager.botspec import resolv_conf_source
from mcpmanager.types import ContainerInfo, CreateContainerRequest, MountSpec, TaskStatus
from tests.fakes import make_manager

IMAGE = "docker.io/memohai/mcp:latest"


def test_container_id(manager: Manager) -> None:
    assert manager.container_id("bot-1") == "mcp-bot-1"
    assert manager.config.image_ref() == IMAGE
    assert isinstance(manager.service, FakeContainerService)


# -- init -----------------------------------------------------------------


@pytest.fixture
def bare(fake: FakeContainerService, tmp_path: Path) -> Manager:
    return make_manager(fake, tmp_path)


def test_init_pulls_when_no_local_image(bare: Manager, fake: FakeContainerService) -> None:
    image = bare.init()
    assert fake.get_image(IMAGE) == image
    assert fake.count("pull_image") == 1


def test_init_same_digest_does_not_pull(bare: Manager, fake: FakeContainerService) -> None:
    bare.init()
    bare.init()
    assert fake.count("pull_image") == 1


def test_init_pulls_newer_remote_digest(bare: Manager, fake: FakeContainerService) -> None:
    bare.init()
    fake.set_remote_digest(IMAGE, "sha256:" + "1" * 64)
    assert bare.init().id == "sha256:" + "1" * 64
    assert fake.get_image(IMAGE).id == "sha256:" + "1" * 64


def test_init_unreachable_keeps_local(bare: Manager, fake: FakeContainerService) -> None:
    fake.set_local_digest(IMAGE, "sha256:" + "2" * 64)
    fake.remote_unreachable = True
    assert bare.init().id == "sha256:" + "2" * 64
    assert fake.count("pull_image") == 0


def test_init_unreachable_without_local_fails(bare: Manager, fake: FakeContainerService) -> None:
    fake.remote_unreachable = True
    with pytest.raises(errors.Unavailable, match=IMAGE):
        bare.init()
    assert fake.count("pull_image") == 1


def test_init_check_fails_but_pull_works(bare: Manager, fake: FakeContainerService) -> None:
    fake.fail("resolve_remote_digest", errors.Unavailable("registry down"))
    assert bare.init() == fake.get_image(IMAGE)


def test_init_upgrade_pull_fails_keeps_local(bare: Manager, fake: FakeContainerService) -> None:
    fake.set_local_digest(IMAGE, "sha256:" + "3" * 64)
    fake.fail("pull_image", errors.Unavailable("pull broke"))
    assert bare.init().id == "sha256:" + "3" * 64


def test_init_pull_fails_without_local(bare: Manager, fake: FakeContainerService) -> None:
    fake.fail("pull_image", errors.Unavailable("pull broke"))
    with pytest.raises(errors.Unavailable, match="pull broke"):
        bare.init()


def test_init_upgrade_check_has_a_deadline(fake: FakeContainerService, tmp_path: Path) -> None:
    release = threading.Event()

    class SlowRegistry(FakeContainerService):
        def resolve_remote_digest(self, ref: str) -> str:
            release.wait(30)
            return super().resolve_remote_digest(ref)

    slow = SlowRegistry(root=tmp_path / "slow")
    slow.set_local_digest(IMAGE, "sha256:" + "4" * 64)
    manager = make_manager(slow, tmp_path)
    manager.upgrade_check_timeout = 0.05
    try:
        assert manager.init().id == "sha256:" + "4" * 64
    finally:
        release.set()
        slow.close()


# -- ensure_bot -------------------------------------------------------------


def test_ensure_bot_creates_labelled_container(
    manager: Manager, fake: FakeContainerService
) -> None:
    info = manager.ensure_bot("b1")
    assert info.id == "mcp-b1"
    assert info.labels[BOT_LABEL_KEY] == "b1"
    req = fake.container_spec("mcp-b1")
    assert req.image_ref == IMAGE
    resolv = req.spec.mounts[0]
    assert (resolv.destination, resolv.type, resolv.options) == (
        "/etc/resolv.conf",
        "bind",
        ("rbind", "ro"),
    )
    assert os.path.exists(resolv.source)
    if os.path.exists("/etc/localtime"):
        assert any(m.destination == "/etc/localtime" for m in req.spec.mounts)


def test_ensure_bot_twice_is_success(manager: Manager, fake: FakeContainerService) -> None:
    first = manager.ensure_bot("b1")
    assert manager.ensure_bot("b1") == first
    assert len(fake.list_containers()) == 1


def test_ensure_bot_applies_extra_mounts_and_env(
    fake: FakeContainerService, tmp_path: Path
) -> None:
    extra = MountSpec("/opt/tools", "bind", str(tmp_path), ("rbind", "ro"))
    manager = make_manager(fake, tmp_path, extra_mounts=[extra], env=["A=1"])
    manager.init()
    manager.ensure_bot("b1")
    spec = fake.container_spec("mcp-b1").spec
    assert extra in spec.mounts
    assert "A=1" in spec.env


def test_ensure_bot_keeps_orphaned_snapshot(manager: Manager, fake: FakeContainerService) -> None:
    manager.ensure_bot("b1")
    Path(fake.snapshot_path("", "mcp-b1"), "data", "keep.txt").write_text("precious")
    # The container vanishes but its snapshot survives (deleted by hand).
    with fake._lock:
        del fake._containers["mcp-b1"]
    manager.start("b1")
    assert Path(fake.snapshot_path("", "mcp-b1"), "data", "keep.txt").read_text() == "precious"
    assert fake.get_task_info("mcp-b1").status is TaskStatus.RUNNING


def test_resolv_conf_fallback_written_once(tmp_path: Path) -> None:
    root = tmp_path / "d"
    path = resolv_conf_source(str(root), preferred=str(tmp_path / "absent"))
    assert Path(path).read_text().startswith("nameserver 1.1.1.1\n")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    Path(path).write_text("nameserver 9.9.9.9\n")
    assert Path(resolv_conf_source(str(root), preferred="/nonexistent")).read_text() == (
        "nameserver 9.9.9.9\n"
    )
    present = tmp_path / "present"
    present.write_text("x")
    assert resolv_conf_source(str(root), preferred=str(present)) == str(present)


# -- start / stop / delete ------------------------------------------------------


def test_start_runs_task_and_caches_ip(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b1")
    assert fake.get_task_info("mcp-b1").status is TaskStatus.RUNNING
    ip = manager.container_ip("b1")
    assert ip == fake.container_ip("mcp-b1")
    assert ip.startswith("127.")


def test_start_on_running_bot_is_a_no_op(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b1")
    pid = fake.get_task_info("mcp-b1").pid
    manager.start("b1")
    assert fake.get_task_info("mcp-b1").pid == pid
    assert fake.count("start_container") == 1


def test_start_on_running_bot_recovers_ip(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b1")
    other = make_manager(fake, Path(fake.root))
    other.start("b1")
    assert other.container_ip("b1") == manager.container_ip("b1")


def test_start_after_stop_replaces_stale_task(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b1")
    manager.stop("b1")
    assert fake.get_task_info("mcp-b1").status is TaskStatus.STOPPED
    manager.start("b1")
    assert fake.get_task_info("mcp-b1").status is TaskStatus.RUNNING
    assert manager.container_ip("b1")


def test_start_network_failure_stops_task(manager: Manager, fake: FakeContainerService) -> None:
    fake.fail("setup_network", errors.Unavailable("cni exploded"))
    with pytest.raises(errors.Unavailable, match=r"bot b1.*cni exploded"):
        manager.start("b1")
    assert fake.get_task_info("mcp-b1").status is TaskStatus.STOPPED
    assert manager.container_ip("b1") == ""
    manager.start("b1")
    assert fake.get_task_info("mcp-b1").status is TaskStatus.RUNNING
    assert manager.container_ip("b1")


def test_start_failed_cleanup_is_logged(
    manager: Manager, fake: FakeContainerService, caplog: pytest.LogCaptureFixture
) -> None:
    fake.fail("setup_network", errors.Unavailable("cni exploded"))
    fake.fail("stop_container", errors.Unavailable("stop broke"))
    with caplog.at_level(logging.WARNING, "mcpmanager"), pytest.raises(errors.Unavailable):
        manager.start("b1")
    record = next(r for r in caplog.records if "force-stopping" in r.getMessage())
    assert record.bot_id == "b1"  # type: ignore[attr-defined]
    assert "stop broke" in record.getMessage()


def test_start_without_ip_fails(manager: Manager, fake: FakeContainerService) -> None:
    original = fake.setup_network

    def empty(req: object) -> object:
        result = original(req)  # type: ignore[arg-type]
        return type(result)(ip="")

    fake.setup_network = empty  # type: ignore[method-assign,assignment]
    with pytest.raises(errors.Unavailable, match="no IP"):
        manager.start("b1")
    assert fake.get_task_info("mcp-b1").status is TaskStatus.STOPPED


def test_stop(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b1")
    manager.stop("b1", timeout=1.0)
    assert fake.get_task_info("mcp-b1").status is TaskStatus.STOPPED
    assert fake.container_ip("mcp-b1") == ""  # network released: no leaked address
    assert manager.container_ip("b1") == ""
    stop = [c for c in fake.calls if c.method == "stop_container"][-1]
    assert stop.args[1].timeout == 1.0
    assert stop.args[1].force
    manager.stop("b1")
    with pytest.raises(errors.NotFound, match="nobody"):
        manager.stop("nobody")


def test_delete(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b1")
    snapshot = fake.snapshot_path("", "mcp-b1")
    manager.delete("b1")
    assert manager.list_bots() == []
    assert not os.path.exists(snapshot)
    assert manager.container_ip("b1") == ""
    with pytest.raises(errors.NotFound):
        manager.delete("b1")


def test_delete_tolerates_cleanup_failures(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b1")
    fake.fail("remove_network", errors.Unavailable("cni down"))
    fake.fail("delete_task", errors.Unavailable("shim gone"))
    manager.delete("b1")  # deleting the container kills the task left behind, as on containerd
    assert manager.list_bots() == []
    assert fake.list_tasks() == []


def test_list_bots(manager: Manager, fake: FakeContainerService) -> None:
    for bot in ("b", "a"):
        manager.ensure_bot(bot)
    fake.create_container(
        CreateContainerRequest(id="other", image_ref=IMAGE, labels={BOT_LABEL_KEY: "x"})
    )
    fake.create_container(CreateContainerRequest(id="mcp-nolabel", image_ref=IMAGE))
    assert manager.list_bots() == ["a", "b"]


# -- IPs --------------------------------------------------------------------


def test_container_ip_cache_hit_makes_no_call(manager: Manager, fake: FakeContainerService) -> None:
    manager.set_container_ip("b1", "127.9.9.9")
    fake.calls.clear()
    assert manager.container_ip("b1") == "127.9.9.9"
    assert fake.calls == []


def test_container_ip_from_label(manager: Manager, fake: FakeContainerService) -> None:
    fake.create_container(
        CreateContainerRequest(
            id="mcp-b1", image_ref=IMAGE, labels={BOT_LABEL_KEY: "b1", IP_LABEL_KEY: "10.0.0.7"}
        )
    )
    assert manager.container_ip("b1") == "10.0.0.7"
    assert fake.count("setup_network") == 0


def test_container_ip_recovery_retries_once(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b1")
    ip = manager.container_ip("b1")
    fresh = make_manager(fake, Path(fake.root))
    fake.calls.clear()
    fake.fail("setup_network", errors.Unavailable("ipam busy"))
    assert fresh.container_ip("b1") == ip
    assert fake.count("setup_network") == 2


def test_container_ip_recovery_gives_up(
    manager: Manager, fake: FakeContainerService, caplog: pytest.LogCaptureFixture
) -> None:
    manager.start("b1")
    fresh = make_manager(fake, Path(fake.root))
    fake.calls.clear()
    fake.fail("setup_network", errors.Unavailable("ipam busy"), times=2)
    with caplog.at_level(logging.WARNING, "mcpmanager"):
        assert fresh.container_ip("b1") == ""
    assert fake.count("setup_network") == 2
    assert any("gave up" in r.getMessage() and r.bot_id == "b1" for r in caplog.records)  # type: ignore[attr-defined]
    assert fresh.container_ip("b1") == manager.container_ip("b1")  # a later call recovers


def test_container_ip_of_stopped_or_missing_bot(
    manager: Manager, fake: FakeContainerService
) -> None:
    assert manager.container_ip("ghost") == ""
    manager.ensure_bot("b1")
    assert manager.container_ip("b1") == ""
    assert fake.count("setup_network") == 0


class StubPool:
    def __init__(self) -> None:
        self.removed: list[str] = []
        self.closed = False

    def remove(self, bot_id: str) -> None:
        self.removed.append(bot_id)

    def close(self) -> None:
        self.closed = True


def test_set_container_ip_evicts_client_on_change(manager: Manager) -> None:
    pool = StubPool()
    manager._addresses._pool = pool  # type: ignore[assignment]
    manager.set_container_ip("b1", "")
    manager.set_container_ip("b1", "127.1.1.1")
    manager.set_container_ip("b1", "127.1.1.1")
    assert pool.removed == []
    manager.set_container_ip("b1", "127.1.1.2")
    assert pool.removed == ["b1"]
    assert manager.container_ip("b1") == "127.1.1.2"
    manager.close()
    assert pool.closed


def test_restart_evicts_client(manager: Manager) -> None:
    pool = StubPool()
    manager._addresses._pool = pool  # type: ignore[assignment]
    manager.start("b1")
    manager.stop("b1")
    manager.start("b1")
    assert pool.removed.count("b1") >= 2


# -- errors, logging, locks, closing -------------------------------------------------


def test_raw_backend_errors_are_wrapped(manager: Manager, fake: FakeContainerService) -> None:
    fake.fail("create_container", RuntimeError("socket on fire"))
    with pytest.raises(errors.MCPManagerError, match=r"bot b1.*socket on fire") as info:
        manager.ensure_bot("b1")
    assert isinstance(info.value.__cause__, RuntimeError)


def test_every_record_names_the_bot(manager: Manager, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, "mcpmanager"):
        manager.start("b1")
        manager.stop("b1")
        manager.delete("b1")
    bot_records = [r for r in caplog.records if r.name == "mcpmanager"]
    assert bot_records
    assert all(getattr(r, "bot_id", None) == "b1" for r in bot_records)


def test_locks_are_released(manager: Manager) -> None:
    for bot in ("a", "b", "c"):
        manager.start(bot)
        manager.container_ip(bot)
        manager.delete(bot)
    assert len(manager._locks) == 0


def test_close_owned_service(tmp_path: Path) -> None:
    fake = FakeContainerService()
    with Manager(fake, ManagerConfig(data_root=str(tmp_path)), owns_service=True) as m:
        m.init()
    assert not os.path.exists(fake.root)
    with pytest.raises(errors.FailedPrecondition):
        m.client("b1")


def test_close_leaves_borrowed_service_open(manager: Manager, fake: FakeContainerService) -> None:
    manager.close()
    manager.close()
    assert os.path.isdir(fake.root)


def test_repr_is_cheap(manager: Manager, fake: FakeContainerService) -> None:
    fake.calls.clear()
    assert "FakeContainerService" in repr(manager)
    assert fake.calls == []


def test_container_info_is_frozen() -> None:
    info = ContainerInfo(id="x", image="y", labels={"a": "b"})
    with pytest.raises(AttributeError):
        info.id = "z"  # type: ignore[misc]
