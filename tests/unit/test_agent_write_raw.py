"""WriteRaw replaces a file only on a clean end of the upload; abandoned ones never do."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from mcpmanager import errors
from mcpmanager.agent import AgentServer
from mcpmanager.agent.rootfs import AtomicWriter
from mcpmanager.client import Client
from mcpmanager.client import mcpcontainer_pb2 as pb
from mcpmanager.client import mcpcontainer_pb2_grpc as pb_grpc
from mcpmanager.client.protocol import UPLOAD_CHUNK_SIZE, WRITE_RAW_END_KEY, WRITE_RAW_END_VALUE
from tests.harness.common import wait_for

OLD = b"the old content, which must survive"
ROUNDS = 60


def data(root: Path) -> Path:
    return root / "data"


def only_the_old_file(root: Path) -> None:
    """The target is untouched and the partial upload is (eventually) gone."""
    assert (data(root) / "keep.bin").read_bytes() == OLD
    wait_for(
        lambda: sorted(os.listdir(data(root))) == ["keep.bin"],
        timeout=10,
        what="the partial upload to be removed",
    )


class _Cut(Exception):
    """The caller's source broke after some chunks."""


class _BreakingReader:
    """A binary source that gives ``good`` bytes, then raises."""

    def __init__(self, good: int) -> None:
        self.left = good

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            raise _Cut("source broke")
        take = min(n if n > 0 else UPLOAD_CHUNK_SIZE, self.left)
        self.left -= take
        return b"n" * take


@pytest.mark.parametrize("chunks", [0, 1, 2, 5])
def test_client_whose_source_breaks_never_replaces_the_file(
    root: Path, client: Client, chunks: int
) -> None:
    (data(root) / "keep.bin").write_bytes(OLD)
    for _ in range(ROUNDS // 4):
        with pytest.raises(_Cut):
            client.write_raw("keep.bin", _BreakingReader(chunks * UPLOAD_CHUNK_SIZE))  # type: ignore[arg-type]
        only_the_old_file(root)


def _stub(agent: AgentServer) -> tuple[grpc.Channel, Any]:
    channel = grpc.insecure_channel(agent.address)
    return channel, pb_grpc.ContainerServiceStub(channel)


def _cancel_after(n: int, holder: list[Any]) -> Iterator[pb.WriteRawChunk]:
    yield pb.WriteRawChunk(path="keep.bin", data=b"x" * 1000)
    for _ in range(n):
        yield pb.WriteRawChunk(data=b"y" * 1000)
    holder[0].cancel()  # cancelled mid-stream, before the end marker


def test_cancel_mid_stream_never_commits(root: Path, agent: AgentServer) -> None:
    """A client that promised an end marker and cancels: the old file, every time."""
    (data(root) / "keep.bin").write_bytes(OLD)
    channel, stub = _stub(agent)
    try:
        for i in range(ROUNDS):
            holder: list[Any] = []
            future = stub.WriteRaw.future(
                _cancel_after(i % 4, holder),
                metadata=((WRITE_RAW_END_KEY, WRITE_RAW_END_VALUE),),
            )
            holder.append(future)
            with pytest.raises((grpc.FutureCancelledError, grpc.RpcError)):
                future.result()
            only_the_old_file(root)
    finally:
        channel.close()


def test_stream_that_ends_without_its_marker_is_aborted(root: Path, agent: AgentServer) -> None:
    """What a cancel can look like to the server (a plain end of stream): never committed.

    gRPC may hand the server a cancelled upload's end as a clean end of
    stream before it reports the cancellation; this pins that case exactly.
    """
    (data(root) / "keep.bin").write_bytes(OLD)
    channel, stub = _stub(agent)
    try:
        chunks = iter([pb.WriteRawChunk(path="keep.bin", data=b"partial")])
        with pytest.raises(grpc.RpcError) as info:
            stub.WriteRaw(chunks, metadata=((WRITE_RAW_END_KEY, WRITE_RAW_END_VALUE),))
        assert info.value.code() is grpc.StatusCode.ABORTED
        assert "end marker" in info.value.details()
        only_the_old_file(root)
    finally:
        channel.close()


def test_data_after_the_marker_is_refused(root: Path, agent: AgentServer) -> None:
    (data(root) / "keep.bin").write_bytes(OLD)
    channel, stub = _stub(agent)
    try:
        chunks = iter(
            [
                pb.WriteRawChunk(path="keep.bin", data=b"a"),
                pb.WriteRawChunk(),
                pb.WriteRawChunk(data=b"late"),
            ]
        )
        with pytest.raises(grpc.RpcError) as info:
            stub.WriteRaw(chunks, metadata=((WRITE_RAW_END_KEY, WRITE_RAW_END_VALUE),))
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        only_the_old_file(root)
    finally:
        channel.close()


def test_clients_without_the_marker_still_commit(root: Path, agent: AgentServer) -> None:
    """memoh's client sends no marker: a clean end of stream still writes the file."""
    channel, stub = _stub(agent)
    try:
        chunks = iter([pb.WriteRawChunk(path="new.bin", data=b"ab"), pb.WriteRawChunk(data=b"c")])
        assert stub.WriteRaw(chunks).bytes_written == 3
        assert (data(root) / "new.bin").read_bytes() == b"abc"
    finally:
        channel.close()


def test_our_client_commits_with_the_marker(root: Path, client: Client) -> None:
    (data(root) / "keep.bin").write_bytes(OLD)
    payload = os.urandom(2 * UPLOAD_CHUNK_SIZE + 3)
    assert client.write_raw("keep.bin", payload) == len(payload)
    assert (data(root) / "keep.bin").read_bytes() == payload
    assert client.write_raw("empty.bin", b"") == 0
    assert (data(root) / "empty.bin").read_bytes() == b""


def test_server_error_mid_upload_keeps_the_old_file(
    root: Path, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent failing to write the third chunk (disk full) keeps the old file."""
    (data(root) / "keep.bin").write_bytes(OLD)
    real_write = AtomicWriter.write
    calls = []

    def failing_write(self: AtomicWriter, chunk: bytes) -> None:
        calls.append(len(chunk))
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, chunk)

    monkeypatch.setattr(AtomicWriter, "write", failing_write)
    with pytest.raises(errors.MCPManagerError, match="space"):
        client.write_raw("keep.bin", b"z" * (5 * UPLOAD_CHUNK_SIZE))
    assert len(calls) == 3
    only_the_old_file(root)
