"""Per-bot options, limits and metrics on the fake: stored, applied, kept, reported."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcpmanager import FakeContainerService, Manager, ManagerConfig, errors
from mcpmanager.fake import Usage
from mcpmanager.store import SQLiteStore
from mcpmanager.types import BotOptions, ResourceLimits
from tests.fakes import make_manager

MIB = 1024 * 1024
LIMITS = ResourceLimits(cpu_millicores=200, memory_bytes=64 * MIB, pids=64, storage_bytes=MIB)
OTHER_IMAGE = "docker.io/library/busybox:1.36"


@pytest.fixture
def versioned(fake: FakeContainerService, tmp_path: Path) -> Iterator[Manager]:
    m = Manager(
        fake,
        ManagerConfig(data_root=str(tmp_path / "data")),
        store=SQLiteStore(str(tmp_path / "v.db")),
    )
    m.init()
    yield m
    m.close()


def spec_of(fake: FakeContainerService, bot: str) -> Any:
    return fake.container_spec("mcp-" + bot)


def tgz(files: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    buf.seek(0)
    return buf


# -- validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"cpu_millicores": -1},
        {"memory_bytes": -5},
        {"memory_bytes": 1000},  # below the 6 MiB runtimes accept
        {"cpu_millicores": 5},  # below a 1 ms quota
        {"pids": True},
        {"storage_bytes": 1.5},
        {"memory_bytes": "64M"},
    ],
)
def test_bad_limits_are_invalid_argument(fields: dict[str, object]) -> None:
    with pytest.raises(errors.InvalidArgument, match="resource limit"):
        ResourceLimits(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        {"image": "Not A Ref"},
        {"image": 7},
        {"env": "A=b"},
        {"env": ["NOEQUALS"]},
        {"env": ["=value"]},
        {"env": ["A=b\0c"]},
        {"env": [3]},
        {"limits": {"memory_bytes": 1}},
    ],
)
def test_bad_options_are_invalid_argument(fields: dict[str, object]) -> None:
    with pytest.raises(errors.InvalidArgument, match=r"bot option|image reference"):
        BotOptions(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [{"image": "x"}, ResourceLimits(), "busybox", 3])
def test_options_of_the_wrong_type_call_no_backend(
    manager: Manager, fake: FakeContainerService, bad: object
) -> None:
    for call in (manager.ensure_bot, manager.start, manager.update_options):
        with pytest.raises(errors.InvalidArgument, match="options must be a BotOptions"):
            call("b1", bad)  # type: ignore[operator]
    with pytest.raises(errors.InvalidArgument, match="recreate"):
        manager.update_options("b1", BotOptions(), recreate="yes")  # type: ignore[arg-type]
    assert fake.calls == []


def test_config_limits_are_checked(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidArgument, match="limits"):
        ManagerConfig(limits={"pids": 3})  # type: ignore[arg-type]


# -- storing and applying ------------------------------------------------------


def test_config_limits_apply_to_every_bot(fake: FakeContainerService, tmp_path: Path) -> None:
    m = make_manager(fake, tmp_path, limits=LIMITS)
    m.ensure_bot("b1")
    assert spec_of(fake, "b1").spec.limits == LIMITS
    assert m.options("b1") == BotOptions()  # nothing of the bot's own is stored


def test_ensure_bot_with_options_stores_them(
    manager: Manager, fake: FakeContainerService, tmp_path: Path
) -> None:
    opts = BotOptions(image="busybox:1.36", env=("ROLE=tester",), limits=LIMITS)
    info = manager.ensure_bot("b1", opts)
    req = spec_of(fake, "b1")
    assert info.image == OTHER_IMAGE
    assert req.spec.limits == LIMITS
    assert req.spec.env[-1] == "ROLE=tester"
    assert info.labels["mcp.resource.memory_bytes"] == str(64 * MIB)
    assert info.labels["mcp.resource.cpu_millicores"] == "200"
    # A new Manager (another process) reads them back from the labels.
    other = make_manager(fake, tmp_path)
    assert other.options("b1") == opts


def test_options_limits_replace_the_configured_ones(
    fake: FakeContainerService, tmp_path: Path
) -> None:
    m = make_manager(fake, tmp_path, limits=LIMITS)
    m.ensure_bot("b1", BotOptions(limits=ResourceLimits()))  # explicitly unlimited
    assert spec_of(fake, "b1").spec.limits == ResourceLimits()


def test_running_bot_takes_new_limits_live(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b1")
    pid = manager.status("b1").pid
    result = manager.update_options("b1", BotOptions(limits=LIMITS))
    assert (result.changed, result.live, result.pending) == (("limits",), ("limits",), ())
    assert not result.recreated
    assert result.stored
    assert fake.limits("mcp-b1") == LIMITS
    assert manager.status("b1").pid == pid  # not restarted
    assert manager.options("b1").limits == LIMITS


def test_unchanged_options_do_nothing(manager: Manager, fake: FakeContainerService) -> None:
    manager.ensure_bot("b1", BotOptions(limits=LIMITS))
    fake.calls.clear()
    result = manager.update_options("b1", BotOptions(limits=LIMITS))
    assert result.changed == ()
    assert not result.recreate_pending
    assert fake.count("update_resources") == fake.count("delete_container") == 0


def test_new_env_of_a_running_bot_waits_for_its_next_start(
    manager: Manager, fake: FakeContainerService
) -> None:
    manager.start("b1")
    result = manager.update_options("b1", BotOptions(env=("MODE=new",)))
    assert result.pending == ("env",)
    assert result.recreate_pending
    assert "MODE=new" not in spec_of(fake, "b1").spec.env
    manager.stop("b1")
    manager.start("b1")
    assert "MODE=new" in spec_of(fake, "b1").spec.env
    assert "mcp.options.pending" not in fake.get_container("mcp-b1").labels


def test_recreate_applies_everything_now_and_keeps_data(
    manager: Manager, fake: FakeContainerService
) -> None:
    manager.start("b1")
    manager.import_data("b1", tgz({"keep.txt": b"mine"}))
    result = manager.update_options(
        "b1", BotOptions(env=("MODE=now",), limits=LIMITS), recreate=True
    )
    assert result.recreated
    assert not result.pending
    assert manager.status("b1").running
    assert "MODE=now" in spec_of(fake, "b1").spec.env
    assert fake.limits("mcp-b1") == LIMITS
    key = fake.get_container("mcp-b1").snapshot_key
    with open(os.path.join(fake.snapshot_path("overlayfs", key), "data", "keep.txt"), "rb") as f:
        assert f.read() == b"mine"


def test_new_image_keeps_data(manager: Manager, fake: FakeContainerService) -> None:
    manager.ensure_bot("b1")
    manager.import_data("b1", tgz({"keep.txt": b"mine"}))
    result = manager.update_options("b1", BotOptions(image="busybox:1.36"))
    assert result.recreated
    info = fake.get_container("mcp-b1")
    assert info.image == OTHER_IMAGE
    path = os.path.join(fake.snapshot_path("overlayfs", info.snapshot_key), "data", "keep.txt")
    with open(path, "rb") as f:
        assert f.read() == b"mine"
    assert not manager.has_preserved_data("b1")  # the backup was restored and removed


def test_new_image_of_a_running_bot_is_pending(
    manager: Manager, fake: FakeContainerService
) -> None:
    manager.start("b1")
    result = manager.update_options("b1", BotOptions(image="busybox:1.36"))
    assert result.pending == ("image",)
    assert fake.get_container("mcp-b1").image != OTHER_IMAGE
    manager.stop("b1")
    manager.start("b1")
    assert fake.get_container("mcp-b1").image == OTHER_IMAGE


def test_start_with_options_on_a_stopped_bot_applies_them(
    manager: Manager, fake: FakeContainerService
) -> None:
    manager.ensure_bot("b1")
    manager.start("b1", BotOptions(limits=LIMITS, env=("X=1",)))
    assert fake.limits("mcp-b1") == LIMITS
    assert "X=1" in spec_of(fake, "b1").spec.env
    assert manager.status("b1").running


def test_limits_survive_versions_rollback_and_a_new_manager(
    versioned: Manager, fake: FakeContainerService, tmp_path: Path
) -> None:
    opts = BotOptions(env=("KEEP=1",), limits=LIMITS)
    versioned.start("b1", opts)
    versioned.create_version("b1")
    versioned.create_version("b1")
    versioned.rollback_version("b1", 1)
    assert fake.limits("mcp-b1") == LIMITS
    assert "KEEP=1" in spec_of(fake, "b1").spec.env
    again = Manager(fake, versioned.config, store=SQLiteStore(str(tmp_path / "v.db")))
    assert again.options("b1") == opts
    again.stop("b1")
    again.start("b1")
    assert fake.limits("mcp-b1") == LIMITS


def test_reconcile_keeps_the_options_of_an_interrupted_move(
    versioned: Manager, fake: FakeContainerService
) -> None:
    versioned.start("b1", BotOptions(limits=LIMITS))
    fake.fail("create_container_from_snapshot", errors.Unavailable("gone"))
    with pytest.raises(errors.Unavailable):
        versioned.create_version("b1")
    assert [r.bot_id for r in versioned.reconcile("b1")] == ["b1"]
    assert fake.limits("mcp-b1") == LIMITS


# -- metrics ---------------------------------------------------------------------


def test_metrics_of_a_stopped_bot_is_failed_precondition(
    manager: Manager, fake: FakeContainerService
) -> None:
    manager.ensure_bot("b1")
    with pytest.raises(errors.FailedPrecondition, match="b1"):
        manager.metrics("b1")
    with pytest.raises(errors.NotFound):
        manager.metrics("nobody")


def test_metrics_honour_limits(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b1", BotOptions(limits=LIMITS))
    fake.set_usage("mcp-b1", Usage(cpu_percent=90.0, memory_bytes=512 * MIB, pids=500))
    m = manager.metrics("b1")
    assert m.memory_bytes == m.memory_limit_bytes == 64 * MIB
    assert m.pids == 64
    assert 0 < m.cpu_percent <= 20.5  # 200 millicores cap a core at 20 %
    assert m.storage_limit_bytes == MIB


def test_busy_bot_uses_more_than_an_idle_one(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("idle")
    manager.start("busy")
    fake.set_usage("mcp-busy", Usage(cpu_percent=80.0, memory_bytes=200 * MIB, pids=9))
    idle, busy = manager.metrics("idle"), manager.metrics("busy")
    assert busy.cpu_percent > idle.cpu_percent
    assert busy.cpu_usage_ns > idle.cpu_usage_ns
    assert busy.memory_bytes > idle.memory_bytes
    assert idle.memory_limit_bytes == 0


def test_data_bytes_follow_what_the_bot_wrote(manager: Manager, fake: FakeContainerService) -> None:
    manager.start("b1", BotOptions(limits=ResourceLimits(storage_bytes=1000)))
    before = manager.metrics("b1")
    manager.import_data("b1", tgz({"big.bin": b"x" * 4000}))
    after = manager.metrics("b1")
    assert after.data_bytes - before.data_bytes == 4000
    assert after.storage_over_limit
    assert not before.storage_over_limit
