"""``python -m mcpmanager.agent`` as a separate process, stopped with SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcpmanager import errors
from mcpmanager.client import Client
from tests.harness.common import wait_for

REPO = Path(__file__).resolve().parents[2]


def _start(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "mcpmanager.agent", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    root.mkdir()
    template = tmp_path / "template"
    template.mkdir()
    (template / "IDENTITY.md").write_text("# who am I\n")
    return root, template


@pytest.fixture
def agent_process(tree: tuple[Path, Path]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    root, template = tree
    proc = _start(
        "--listen", "127.0.0.1:0", "--root", str(root), "--template", str(template), "--grace", "1"
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), (line, proc.stderr.read() if proc.stderr else "")
        yield proc, line.split()[-1]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_serves_and_stops_cleanly_on_sigterm(
    tree: tuple[Path, Path], agent_process: tuple[subprocess.Popen[str], str]
) -> None:
    root, _ = tree
    proc, address = agent_process
    with Client(address, bot_id="cli") as client:
        assert "who am I" in client.read_file("IDENTITY.md").content
        client.write_file("x.txt", "from the client")
        assert (root / "data" / "x.txt").read_text() == "from the client"
        assert client.exec("echo ok").stdout == "ok\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert proc.stderr is not None
    log = proc.stderr.read()
    assert "SIGTERM" in log
    assert "stopped" in log


def test_sigterm_kills_running_commands(agent_process: tuple[subprocess.Popen[str], str]) -> None:
    proc, address = agent_process
    client = Client(address)
    stream = client.exec_stream("echo $$; sleep 300")
    pid = int(next(iter(stream)).data)
    proc.send_signal(signal.SIGTERM)
    # The command would outlive the 1 s grace, so it is killed then.
    assert proc.wait(30) == 0
    wait_for(lambda: not _alive(pid), timeout=10, what="the command to be killed")
    with pytest.raises(errors.Unavailable):
        list(stream)
    client.close()


def test_sigint_also_stops(agent_process: tuple[subprocess.Popen[str], str]) -> None:
    proc, _ = agent_process
    proc.send_signal(signal.SIGINT)
    assert proc.wait(20) == 0


def test_a_busy_port_fails_with_status_1(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        proc = _start("--listen", f"127.0.0.1:{port}", "--root", str(tmp_path))
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "cannot listen" in err
    assert out == ""


def test_bad_arguments_fail(tmp_path: Path) -> None:
    proc = _start("--listen", "nonsense", "--root", str(tmp_path))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "HOST:PORT" in err


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
