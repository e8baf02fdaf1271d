"""Our client against a server that behaves like memoh's Go agent on the points that differ.

memoh's ``Exec`` (cmd/mcp/server.go, per REFERENCE.md): stdin is read only from
the messages after the first; a command past its limit has only its shell
killed and is reported as exit code -1 with no data; stdout and stderr are sent
from two goroutines at once. ``WriteRaw`` writes every chunk's data and ignores
metadata. This in-test server does the same (in Python), in a temp directory.
"""

from __future__ import annotations

import contextlib
import queue
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

import grpc
import pytest

from mcpmanager.client import Client, ExecTimedOut
from mcpmanager.client import mcpcontainer_pb2 as pb
from mcpmanager.client import mcpcontainer_pb2_grpc as pb_grpc

_Servicer: Any = pb_grpc.ContainerServiceServicer


class MemohLikeServer(_Servicer):  # type: ignore[misc]
    """Exec and WriteRaw as memoh's Go server does them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.first_stdin: list[bytes] = []  # stdin_data seen in first messages (ignored)

    def Exec(self, requests: Iterator[pb.ExecInput], context: grpc.ServicerContext) -> Any:
        first = next(requests)
        self.first_stdin.append(first.stdin_data)
        timeout = first.timeout_seconds if first.timeout_seconds > 0 else 30
        proc = subprocess.Popen(
            ["/bin/sh", "-c", first.command],
            cwd=self.workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        threading.Thread(target=_copy_stdin, args=(requests, proc), daemon=True).start()
        out: queue.SimpleQueue[pb.ExecOutput | None] = queue.SimpleQueue()
        pumps = [
            threading.Thread(target=_pump, args=(proc.stdout, pb.ExecOutput.STDOUT, out)),
            threading.Thread(target=_pump, args=(proc.stderr, pb.ExecOutput.STDERR, out)),
        ]
        for pump in pumps:
            pump.start()
        killer = threading.Timer(timeout, proc.kill)  # the shell only, like CommandContext
        killer.start()
        try:
            ended = 0
            while ended < 2:
                msg = out.get()
                if msg is None:
                    ended += 1
                else:
                    yield msg
            code = proc.wait()
        finally:
            killer.cancel()
            proc.kill()
            proc.wait()
        yield pb.ExecOutput(stream=pb.ExecOutput.EXIT, exit_code=code if code >= 0 else -1)

    def WriteRaw(self, requests: Iterator[pb.WriteRawChunk], context: grpc.ServicerContext) -> Any:
        f = None
        written = 0
        try:
            for chunk in requests:
                if f is None:
                    f = open(self.workdir / chunk.path.lstrip("/"), "wb")  # noqa: SIM115
                f.write(chunk.data)
                written += len(chunk.data)
        finally:
            if f is not None:
                f.close()
        return pb.WriteRawResponse(bytes_written=written)


def _copy_stdin(requests: Iterator[pb.ExecInput], proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdin is not None
    try:
        for msg in requests:
            if msg.stdin_data:
                proc.stdin.write(msg.stdin_data)
                proc.stdin.flush()
    except Exception:
        pass
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()


def _pump(pipe: IO[bytes] | None, stream: Any, out: queue.SimpleQueue[Any]) -> None:
    assert pipe is not None
    for data in iter(lambda: pipe.read1(4096), b""):  # type: ignore[attr-defined]
        out.put(pb.ExecOutput(stream=stream, data=data))
    out.put(None)


@pytest.fixture
def memoh(tmp_path: Path) -> Iterator[tuple[Client, MemohLikeServer]]:
    servicer = MemohLikeServer(tmp_path)
    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_ContainerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with Client(f"127.0.0.1:{port}", bot_id="memoh") as client:
            yield client, servicer
    finally:
        server.stop(None).wait()


def test_stdin_reaches_a_server_that_reads_it_after_the_first_message(
    memoh: tuple[Client, MemohLikeServer],
) -> None:
    client, server = memoh
    assert client.exec("cat", stdin=b"hello").stdout == "hello"
    assert client.exec("wc -c", stdin=b"x" * 3_000_000).stdout.strip() == "3000000"
    assert server.first_stdin == [b"", b""]  # nothing was put where memoh drops it


def test_exec_stream_stdin_too(memoh: tuple[Client, MemohLikeServer]) -> None:
    client, _ = memoh
    with client.exec_stream("cat", stdin=b"first ") as run:
        run.send(b"second")
        run.close_stdin()
        assert b"".join(c.data for c in run) == b"first second"
    assert run.exit_code == 0


def test_exit_minus_one_after_the_limit_is_a_timeout(
    memoh: tuple[Client, MemohLikeServer],
) -> None:
    client, _ = memoh
    with pytest.raises(ExecTimedOut, match=r"memoh.*timed out after 1s") as info:
        client.exec("echo started; exec sleep 30", timeout=1)
    assert info.value.result.exit_code == -1
    assert info.value.result.stdout == "started\n"


def test_exec_stream_timeout_on_minus_one(memoh: tuple[Client, MemohLikeServer]) -> None:
    client, _ = memoh
    with client.exec_stream("exec sleep 30", timeout=1) as run, pytest.raises(ExecTimedOut):
        run.wait()
    assert run.timed_out


def test_minus_one_before_the_limit_is_an_exit_code(
    memoh: tuple[Client, MemohLikeServer],
) -> None:
    client, _ = memoh
    assert client.exec("kill -9 $$", timeout=30).exit_code == -1


def test_concurrent_stdout_and_stderr_are_both_whole(
    memoh: tuple[Client, MemohLikeServer],
) -> None:
    client, _ = memoh
    script = "i=0; while [ $i -lt 2000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done"
    result = client.exec(script)
    assert result.stdout.splitlines() == [f"out{i}" for i in range(2000)]
    assert result.stderr.splitlines() == [f"err{i}" for i in range(2000)]
    assert result.exit_code == 0


def test_write_raw_end_marker_writes_nothing_there(
    memoh: tuple[Client, MemohLikeServer], tmp_path: Path
) -> None:
    client, _ = memoh
    assert client.write_raw("blob.bin", b"abc" * 1000) == 3000
    assert (tmp_path / "blob.bin").read_bytes() == b"abc" * 1000
    assert client.write_raw("empty.bin", b"") == 0
    assert (tmp_path / "empty.bin").read_bytes() == b""
