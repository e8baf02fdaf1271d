"""Commands through the agent: output, stdin, env, streaming, timeouts, cleanup."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from mcpmanager import errors
from mcpmanager.agent import AgentServer
from mcpmanager.client import Client, ExecChunk, ExecResult, ExecTimedOut
from tests.harness.agent import AGENT_BOT
from tests.harness.common import wait_for


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def wait_gone(pid: int) -> None:
    wait_for(lambda: not alive(pid), timeout=10, what=f"process {pid} to be gone")


def read_pid(path: Path) -> int:
    return int(wait_for(lambda: path.exists() and path.read_text().strip(), what=str(path)))


# -- plain exec -----------------------------------------------------------------------


def test_output_and_exit_code_come_together(client: Client) -> None:
    result = client.exec("echo out; echo err >&2; exit 3")
    assert result == ExecResult(stdout="out\n", stderr="err\n", exit_code=3)


def test_commands_are_the_oom_killers_first_choice(client: Client) -> None:
    # Under a bot's memory limit, a command's allocation must not take the agent down.
    assert client.exec("cat /proc/self/oom_score_adj").stdout == "1000\n"
    assert int(Path("/proc/self/oom_score_adj").read_text()) < 1000  # the agent's own stays


def test_missing_command_is_exit_127(client: Client) -> None:
    result = client.exec("definitely-not-a-command-xyz")
    assert result.exit_code == 127
    assert "not found" in result.stderr


def test_default_workdir_is_data(root: Path, client: Client) -> None:
    assert client.exec("pwd").stdout.strip() == str(root / "data")
    client.mkdir("sub")
    assert client.exec("pwd", workdir="sub").stdout.strip() == str(root / "data" / "sub")
    assert client.exec("pwd", workdir="/").stdout.strip() == str(root)
    with pytest.raises(errors.NotFound, match="work dir"):
        client.exec("pwd", workdir="missing")
    client.write_file("file", "x")
    with pytest.raises(errors.InvalidArgument, match="not a directory"):
        client.exec("pwd", workdir="file")


def test_stdin_is_fed_and_closed(client: Client) -> None:
    assert client.exec("cat", stdin=b"hello").stdout == "hello"
    assert client.exec("wc -c", stdin="x" * 100_000).stdout.strip() == "100000"
    assert client.exec("cat").stdout == ""


def test_stdin_in_the_first_message_still_works(agent: AgentServer) -> None:
    """Older clients (ours before, anyone's) put stdin in the first message."""
    import grpc

    from mcpmanager.client import mcpcontainer_pb2 as pb
    from mcpmanager.client import mcpcontainer_pb2_grpc as pb_grpc

    with grpc.insecure_channel(agent.address) as channel:
        stub = pb_grpc.ContainerServiceStub(channel)
        first = pb.ExecInput(command="cat", stdin_data=b"one ")
        later = pb.ExecInput(stdin_data=b"two")
        out = b"".join(m.data for m in stub.Exec(iter([first, later]), timeout=30))
    assert out == b"one two"


def test_env_is_added(client: Client) -> None:
    result = client.exec('echo "$FOO:$BAR:${PATH:+path}"', env=["FOO=1", "BAR=a=b"])
    assert result.stdout == "1:a=b:path\n"
    assert client.exec('echo "$X"', env={"X": "mapped"}).stdout == "mapped\n"
    with pytest.raises(errors.InvalidArgument):
        client.exec("true", env=["NOEQUALS"])
    with pytest.raises(TypeError):
        client.exec("true", env="A=B")  # type: ignore[arg-type]


def test_invalid_arguments(client: Client) -> None:
    with pytest.raises(errors.InvalidArgument):
        client.exec("")
    with pytest.raises(errors.InvalidArgument):
        client.exec("true", timeout=-1)


def test_ten_megabytes_of_output_are_intact(client: Client) -> None:
    result = client.exec("head -c 10485760 /dev/zero | tr '\\0' 'a'; echo; echo done >&2")
    assert len(result.stdout) == 10 * 1024 * 1024 + 1
    assert result.stdout.count("a") == 10 * 1024 * 1024
    assert result.stderr == "done\n"
    assert result.exit_code == 0


def test_undecodable_output_is_replaced(client: Client) -> None:
    assert client.exec("printf 'caf\\351'").stdout == "caf\ufffd"


def test_many_commands_at_once(client: Client) -> None:
    results: list[ExecResult] = []

    def run(i: int) -> None:
        results.append(client.exec(f"sleep 0.2; echo {i}"))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(int(r.stdout) for r in results) == list(range(20))


# -- timeouts ------------------------------------------------------------------------------


def test_timeout_kills_the_whole_process_group(root: Path, client: Client) -> None:
    pidfile = root / "data" / "child.pid"
    started = time.monotonic()
    with pytest.raises(ExecTimedOut) as info:
        client.exec("sleep 300 & echo $! > child.pid; echo before; wait", timeout=1)
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 8
    assert isinstance(info.value, errors.DeadlineExceeded)
    assert isinstance(info.value, TimeoutError)
    assert "timed out after 1s" in str(info.value)
    assert AGENT_BOT in str(info.value)
    assert info.value.result.stdout == "before\n"
    assert info.value.result.exit_code == -1
    wait_gone(read_pid(pidfile))


def test_fractional_timeouts_round_up(client: Client) -> None:
    assert client.exec("sleep 0.3; echo ok", timeout=0.1).stdout == "ok\n"


def test_stream_timeout_raises_at_the_end(client: Client) -> None:
    with client.exec_stream("echo partial; sleep 300", timeout=1) as run:
        chunks: list[ExecChunk] = []

        def drain() -> None:
            for chunk in run:
                chunks.append(chunk)

        with pytest.raises(ExecTimedOut):
            drain()
        assert chunks == [ExecChunk("stdout", b"partial\n")]
        assert run.timed_out
        assert run.exit_code == -1


# -- streaming ------------------------------------------------------------------------------


def test_output_is_streamed_as_produced(client: Client) -> None:
    started = time.monotonic()
    seen: list[tuple[float, ExecChunk]] = []
    with client.exec_stream("echo first; sleep 2; echo second >&2") as run:
        for chunk in run:
            seen.append((time.monotonic() - started, chunk))
    assert [c for _, c in seen] == [
        ExecChunk("stdout", b"first\n"),
        ExecChunk("stderr", b"second\n"),
    ]
    assert seen[0][0] < 1.5  # long before the command ends
    assert seen[1][0] >= 1.9
    assert run.exit_code == 0


def test_interactive_stdin(client: Client) -> None:
    with client.exec_stream('while read line; do echo "got $line"; done; exit 7') as run:
        it = iter(run)
        run.send(b"one\n")
        assert next(it) == ExecChunk("stdout", b"got one\n")
        run.send("two\n")
        assert next(it) == ExecChunk("stdout", b"got two\n")
        run.close_stdin()
        assert list(it) == []
        assert run.exit_code == 7
    with pytest.raises(errors.FailedPrecondition):
        run.send(b"late")


def test_stdin_from_another_thread_and_wait(client: Client) -> None:
    with client.exec_stream("cat > out.txt", stdin=b"first ") as run:
        feeder = threading.Thread(target=lambda: (run.send(b"second"), run.close_stdin()))
        feeder.start()
        assert run.wait() == 0
        feeder.join()
    assert client.read_file("out.txt").content == "     1\tfirst second\n"


def test_disconnecting_kills_the_command(root: Path, client: Client) -> None:
    run = client.exec_stream("sleep 300 & echo $! > bg.pid; echo $$; wait")
    first = next(iter(run))
    shell = int(first.data.split()[0])
    child = read_pid(root / "data" / "bg.pid")
    assert alive(shell)
    assert alive(child)
    run.close()
    wait_gone(shell)
    wait_gone(child)


def test_closing_the_client_kills_the_command(root: Path, agent: AgentServer) -> None:
    client = Client(agent.address)
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            client.exec("echo $$ > sh.pid; sleep 300")
        except BaseException as exc:
            failure.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    pid = read_pid(root / "data" / "sh.pid")
    client.close()
    assert done.wait(10)
    assert isinstance(failure[0], errors.Unavailable)
    wait_gone(pid)


def test_stopping_the_server_kills_running_commands(root: Path) -> None:
    server = AgentServer(root=str(root), listen="127.0.0.1:0")
    server.start()
    client = Client(server.address)

    def run() -> None:
        with contextlib.suppress(errors.MCPManagerError):
            client.exec("echo $$ > p; sleep 300")

    threading.Thread(target=run, daemon=True).start()
    pid = read_pid(root / "data" / "p")
    server.stop(grace=0.2)
    wait_gone(pid)
    client.close()


def test_background_children_do_not_hold_the_call(client: Client) -> None:
    started = time.monotonic()
    result = client.exec("sleep 30 & echo $!")
    assert time.monotonic() - started < 10
    pid = int(result.stdout)
    try:
        assert result.exit_code == 0
        assert alive(pid)  # a command's background children outlive a normal exit
    finally:
        os.kill(pid, signal.SIGKILL)


def test_exec_leaves_no_file_descriptors_behind(agent: AgentServer, client: Client) -> None:
    client.exec("true")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        client.exec("echo x", stdin=b"y")
    wait_for(
        lambda: len(os.listdir("/proc/self/fd")) <= before + 2,
        timeout=10,
        what="file descriptors to be released",
    )
