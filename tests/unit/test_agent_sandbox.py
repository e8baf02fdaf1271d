"""Confined exec: commands see the agent's root as ``/``, never the host's files."""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcpmanager import FakeContainerService, Manager
from mcpmanager.agent import AgentServer
from mcpmanager.agent import sandbox as sandbox_module
from mcpmanager.client import Client
from tests.fakes import make_manager

REASON = sandbox_module.probe()
needs_bwrap = pytest.mark.skipif(
    REASON is not None and os.environ.get("MCPMANAGER_REQUIRE_INTEGRATION") != "1",
    reason=f"no sandbox on this machine: {REASON}",
)


@pytest.fixture
def outside() -> Iterator[Path]:
    """A host directory outside every root: the host's temp dir."""
    with tempfile.TemporaryDirectory(prefix="mcp-outside-") as d:
        path = Path(d)
        (path / "secret").write_text("host secret")
        yield path


@pytest.fixture
def confined(root: Path) -> Iterator[Client]:
    with (
        AgentServer(root=str(root), listen="127.0.0.1:0", confine_exec=True) as server,
        Client(server.address, bot_id="boxed") as client,
    ):
        yield client


@needs_bwrap
def test_commands_run_in_data_and_see_the_bots_files(root: Path, confined: Client) -> None:
    (root / "data" / "mine.txt").write_text("bot file")
    assert confined.exec("pwd").stdout == "/data\n"
    assert confined.exec("ls /data").stdout == "mine.txt\n"
    assert confined.exec("cat mine.txt").stdout == "bot file"
    assert confined.exec("echo made > /data/x && mkdir -p sub").exit_code == 0
    assert (root / "data" / "x").read_text() == "made\n"
    assert confined.exec("pwd", workdir="sub").stdout == "/data/sub\n"


@needs_bwrap
def test_the_host_is_not_visible(root: Path, confined: Client, outside: Path) -> None:
    result = confined.exec(f"cat {outside}/secret; echo x > {outside}/planted; ls /")
    assert "host secret" not in result.stdout
    assert not (outside / "planted").exists()
    listing = set(result.stdout.split())
    assert "data" in listing
    assert not {"home", "root", "etc", "var"} & (listing - set(os.listdir(root)))
    assert confined.exec("ls /tmp").stdout == ""  # its own /tmp, not the host's
    assert "HOME=/data" in confined.exec("env").stdout.splitlines()


@needs_bwrap
def test_a_data_symlink_to_the_host_binds_nothing_of_the_host(
    root: Path, confined: Client, outside: Path
) -> None:
    """``/data`` swapped for a symlink to a host dir: it leads nowhere inside the sandbox."""
    os.rename(root / "data", root / "data.old")
    os.symlink(str(outside), root / "data")
    result = confined.exec(f"cat {outside}/secret /data/secret", workdir="/")
    assert "host secret" not in result.stdout
    assert result.exit_code != 0


@needs_bwrap
def test_a_data_symlink_inside_the_root_is_followed_there(root: Path, confined: Client) -> None:
    (root / "elsewhere").mkdir()
    (root / "elsewhere" / "f").write_text("inside")
    os.rename(root / "data", root / "data.old")
    os.symlink("/elsewhere", root / "data")
    assert confined.exec("cat /data/f", workdir="/").stdout == "inside"


@needs_bwrap
def test_timeouts_kill_the_sandboxed_command(confined: Client) -> None:
    from mcpmanager.client import ExecTimedOut

    with pytest.raises(ExecTimedOut):
        confined.exec("sleep 60 & sleep 60", timeout=1)


@needs_bwrap
def test_the_fake_confines_its_agents(tmp_path: Path, outside: Path) -> None:
    fake = FakeContainerService(root=tmp_path / "fake", agents=True)
    manager: Manager | None = None
    try:
        manager = make_manager(fake, tmp_path)
        manager.init()
        manager.start("b")
        client = manager.client("b")
        client.write_file("hello.txt", "hi")
        assert client.exec("pwd").stdout == "/data\n"
        assert client.exec("ls /data").stdout == "hello.txt\n"
        assert client.exec("echo w > /data/x").exit_code == 0
        snap = fake.snapshot_path("", fake.get_container("mcp-b").snapshot_key)
        assert Path(snap, "data", "x").read_text() == "w\n"
        client.exec(f"echo planted > {outside}/planted")
        assert not (outside / "planted").exists()
    finally:
        if manager is not None:
            manager.close()
        fake.close()


def test_without_a_sandbox_it_warns_once_and_runs_unconfined(
    root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sandbox_module, "_probe_result", ["bubblewrap (bwrap) is not installed"])
    monkeypatch.setattr(sandbox_module, "_warned", sandbox_module.threading.Event())
    caplog.set_level(logging.WARNING, logger="mcpmanager.agent")
    for _ in range(2):
        with (
            AgentServer(root=str(root), listen="127.0.0.1:0", confine_exec=True) as server,
            Client(server.address) as client,
        ):
            assert client.exec("pwd").stdout == f"{os.path.realpath(root)}/data\n"
    warnings = [r for r in caplog.records if "not confined" in r.getMessage()]
    assert len(warnings) == 1
    assert "bwrap" in warnings[0].getMessage()
