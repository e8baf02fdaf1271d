"""The client on its own: wire contract, error mapping, odd servers, closed clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
import pytest

from mcpmanager import errors
from mcpmanager.client import (
    Client,
    ExecResult,
    ExecTimedOut,
    PermissionDenied,
    mcpcontainer_pb2,
    mcpcontainer_pb2_grpc,
)
from mcpmanager.client.errors import map_rpc_error
from mcpmanager.client.exec import exec_limit, timeout_reason
from mcpmanager.client.results import parse_mod_time

pb: Any = mcpcontainer_pb2
pb_grpc: Any = mcpcontainer_pb2_grpc

# -- the wire contract (memoh's mcpcontainer.proto at dae772f72) --------------------------

MEMOH_METHODS = {
    # name: (request, response, client streaming, server streaming)
    "ReadFile": ("ReadFileRequest", "ReadFileResponse", False, False),
    "WriteFile": ("WriteFileRequest", "WriteFileResponse", False, False),
    "ListDir": ("ListDirRequest", "ListDirResponse", False, False),
    "Stat": ("StatRequest", "StatResponse", False, False),
    "Mkdir": ("MkdirRequest", "MkdirResponse", False, False),
    "Rename": ("RenameRequest", "RenameResponse", False, False),
    "Exec": ("ExecInput", "ExecOutput", True, True),
    "ReadRaw": ("ReadRawRequest", "DataChunk", False, True),
    "WriteRaw": ("WriteRawChunk", "WriteRawResponse", True, False),
    "DeleteFile": ("DeleteFileRequest", "DeleteFileResponse", False, False),
}

MEMOH_MESSAGES = {
    "ReadFileRequest": {
        "path": (1, "string"),
        "line_offset": (2, "int32"),
        "n_lines": (3, "int32"),
    },
    "ReadFileResponse": {
        "content": (1, "string"),
        "total_lines": (2, "int32"),
        "binary": (3, "bool"),
    },
    "WriteFileRequest": {"path": (1, "string"), "content": (2, "bytes")},
    "WriteFileResponse": {},
    "ListDirRequest": {"path": (1, "string"), "recursive": (2, "bool")},
    "FileEntry": {
        "path": (1, "string"),
        "is_dir": (2, "bool"),
        "size": (3, "int64"),
        "mode": (4, "string"),
        "mod_time": (5, "string"),
    },
    "ListDirResponse": {"entries": (1, "repeated FileEntry")},
    "ExecInput": {
        "command": (1, "string"),
        "work_dir": (2, "string"),
        "env": (3, "repeated string"),
        "timeout_seconds": (4, "int32"),
        "stdin_data": (5, "bytes"),
    },
    "ExecOutput": {"stream": (1, "Stream"), "data": (2, "bytes"), "exit_code": (3, "int32")},
    "ReadRawRequest": {"path": (1, "string")},
    "DataChunk": {"data": (1, "bytes")},
    "WriteRawChunk": {"path": (1, "string"), "data": (2, "bytes")},
    "WriteRawResponse": {"bytes_written": (1, "int64")},
    "DeleteFileRequest": {"path": (1, "string"), "recursive": (2, "bool")},
    "DeleteFileResponse": {},
    "StatRequest": {"path": (1, "string")},
    "StatResponse": {"entry": (1, "FileEntry")},
    "MkdirRequest": {"path": (1, "string")},
    "MkdirResponse": {},
    "RenameRequest": {"old_path": (1, "string"), "new_path": (2, "string")},
    "RenameResponse": {},
}

_SCALARS = {
    9: "string",
    5: "int32",
    3: "int64",
    8: "bool",
    12: "bytes",
}


def _field_type(field: Any) -> str:
    if field.message_type is not None:
        name = field.message_type.name
    elif field.enum_type is not None:
        name = field.enum_type.name
    else:
        name = _SCALARS[field.type]
    repeated = getattr(field, "is_repeated", None)
    if repeated is None:
        repeated = field.label == field.LABEL_REPEATED
    return f"repeated {name}" if repeated else name


def test_service_matches_memoh() -> None:
    file = pb.DESCRIPTOR
    assert file.package == "mcpcontainer"
    service = file.services_by_name["ContainerService"]
    assert service.full_name == "mcpcontainer.ContainerService"
    assert {m.name for m in service.methods} == set(MEMOH_METHODS)
    for method in service.methods:
        request, response, client_stream, server_stream = MEMOH_METHODS[method.name]
        assert method.input_type.full_name == f"mcpcontainer.{request}"
        assert method.output_type.full_name == f"mcpcontainer.{response}"
        assert method.client_streaming == client_stream, method.name
        assert method.server_streaming == server_stream, method.name


def test_messages_match_memoh() -> None:
    file = pb.DESCRIPTOR
    assert set(file.message_types_by_name) == set(MEMOH_MESSAGES)
    for name, fields in MEMOH_MESSAGES.items():
        message = file.message_types_by_name[name]
        got = {f.name: (f.number, _field_type(f)) for f in message.fields}
        assert got == fields, name
    stream = file.message_types_by_name["ExecOutput"].enum_types_by_name["Stream"]
    assert stream.full_name == "mcpcontainer.ExecOutput.Stream"
    assert {v.name: v.number for v in stream.values} == {"STDOUT": 0, "STDERR": 1, "EXIT": 2}


def test_a_message_encoded_by_go_decodes() -> None:
    # ExecInput{command: "ls", work_dir: "/data", env: ["A=1"], timeout_seconds: 5,
    # stdin_data: "x"}, as Go's proto.Marshal writes it.
    wire = bytes.fromhex("0a026c7312052f646174611a03413d3120052a0178")
    msg = pb.ExecInput.FromString(wire)
    assert (msg.command, msg.work_dir, list(msg.env), msg.timeout_seconds, msg.stdin_data) == (
        "ls",
        "/data",
        ["A=1"],
        5,
        b"x",
    )
    assert msg.SerializeToString() == wire


# -- error mapping ------------------------------------------------------------------------


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "boom") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDenied),
        (grpc.StatusCode.ALREADY_EXISTS, errors.AlreadyExists),
        (grpc.StatusCode.FAILED_PRECONDITION, errors.FailedPrecondition),
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.ABORTED, errors.Unavailable),
        (grpc.StatusCode.CANCELLED, errors.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.UNIMPLEMENTED, errors.NotSupported),
        (grpc.StatusCode.INTERNAL, errors.MCPManagerError),
        (grpc.StatusCode.UNKNOWN, errors.MCPManagerError),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, errors.MCPManagerError),
    ],
)
def test_status_codes_map_to_errors(code: grpc.StatusCode, cls: type[Exception]) -> None:
    err = map_rpc_error(
        FakeRpcError(code, "it broke"), subject="bot b7", op="stat", what="/data/x", timeout=3
    )
    assert type(err) is cls
    text = str(err)
    assert text.startswith("bot b7: stat '/data/x': ")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        assert "within 3s" in text
    else:
        assert "it broke" in text


def test_error_classes_are_also_builtin_ones() -> None:
    denied = PermissionDenied("x")
    assert isinstance(denied, errors.FailedPrecondition)
    assert isinstance(denied, PermissionError)
    timed_out = ExecTimedOut("x", ExecResult("", "", -1))
    assert isinstance(timed_out, errors.DeadlineExceeded)
    assert isinstance(timed_out, TimeoutError)


# -- odd servers -------------------------------------------------------------------------


class _Scripted(pb_grpc.ContainerServiceServicer):  # type: ignore[misc]
    """Answers as scripted; every method not overridden is UNIMPLEMENTED."""

    def __init__(self) -> None:
        self.exec_outputs: list[Any] = []
        self.stat_delay = 0.0
        self.released = threading.Event()

    def Stat(self, request: Any, context: Any) -> Any:
        self.released.wait(self.stat_delay)
        return pb.StatResponse(
            entry=pb.FileEntry(path="x", mode="-rw-r--r--", mod_time="2024-05-06T07:08:09+02:00")
        )

    def Exec(self, request_iterator: Iterator[Any], context: Any) -> Any:
        next(request_iterator)
        yield from self.exec_outputs

    def ReadFile(self, request: Any, context: Any) -> Any:
        context.abort(grpc.StatusCode.PERMISSION_DENIED, f"open {request.path}: permission denied")


@pytest.fixture
def scripted() -> Iterator[tuple[_Scripted, Client]]:
    servicer = _Scripted()
    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_ContainerServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = Client(f"127.0.0.1:{port}", bot_id="odd")
    yield servicer, client
    servicer.released.set()
    client.close()
    server.stop(None)


def test_unimplemented_methods_are_not_supported(scripted: tuple[_Scripted, Client]) -> None:
    _, client = scripted
    with pytest.raises(errors.NotSupported, match=r"bot odd: mkdir '/data/x'"):
        client.mkdir("/data/x")


def test_permission_denied_from_the_agent(scripted: tuple[_Scripted, Client]) -> None:
    _, client = scripted
    with pytest.raises(PermissionDenied, match=r"read_file '/root/x'.*permission denied"):
        client.read_file("/root/x")


def test_deadline_exceeded(scripted: tuple[_Scripted, Client]) -> None:
    servicer, client = scripted
    servicer.stat_delay = 5
    started = time.monotonic()
    with pytest.raises(errors.DeadlineExceeded, match=r"stat 'x'.*within 0.3s"):
        client.stat("x", timeout=0.3)
    assert time.monotonic() - started < 3


def test_mod_time_with_an_offset(scripted: tuple[_Scripted, Client]) -> None:
    _, client = scripted
    entry = client.stat("x")
    assert entry.mod_time == datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2)))


def test_exec_against_memohs_agent_semantics(scripted: tuple[_Scripted, Client]) -> None:
    servicer, client = scripted
    # memoh's own agent ends a killed command with EXIT -1 and no note: not a timeout.
    servicer.exec_outputs = [
        pb.ExecOutput(stream=pb.ExecOutput.STDOUT, data=b"a"),
        pb.ExecOutput(stream=pb.ExecOutput.STDERR, data=b"b"),
        pb.ExecOutput(stream=pb.ExecOutput.STDOUT, data=b"c"),
        pb.ExecOutput(stream=pb.ExecOutput.EXIT, exit_code=-1),
    ]
    assert client.exec("x") == ExecResult("ac", "b", -1)


def test_exec_timeout_note_raises(scripted: tuple[_Scripted, Client]) -> None:
    servicer, client = scripted
    servicer.exec_outputs = [
        pb.ExecOutput(stream=pb.ExecOutput.STDOUT, data=b"partial"),
        pb.ExecOutput(stream=pb.ExecOutput.EXIT, exit_code=-1, data=b"timed out after 2s"),
    ]
    with pytest.raises(ExecTimedOut, match="timed out after 2s") as info:
        client.exec("x", timeout=2)
    assert info.value.result == ExecResult("partial", "", -1)


def test_exec_without_exit_status_is_an_error(scripted: tuple[_Scripted, Client]) -> None:
    servicer, client = scripted
    servicer.exec_outputs = [pb.ExecOutput(stream=pb.ExecOutput.STDOUT, data=b"a")]
    with pytest.raises(errors.MCPManagerError, match="no exit status"):
        client.exec("x")
    with client.exec_stream("x") as run, pytest.raises(errors.MCPManagerError):
        list(run)


def test_exec_limit_is_the_agents_default_when_unset() -> None:
    assert exec_limit(0) == 30
    assert exec_limit(5) == 5


def testtimeout_reason() -> None:
    assert timeout_reason(b"timed out after 5s", -1, 0.1, 5).startswith("timed out")
    assert "exit code -1" in timeout_reason(b"", -1, 5.0, 5)  # memoh: -1 once the limit passed
    assert timeout_reason(b"", -1, 4.9, 5) == ""  # killed by a signal before the limit
    assert timeout_reason(b"", 0, 9.0, 5) == ""
    assert timeout_reason(b"", 137, 9.0, 5) == ""


# -- unreachable agents and closed clients --------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_agent_is_unavailable() -> None:
    with Client(f"127.0.0.1:{_closed_port()}", bot_id="ghost") as client:
        with pytest.raises(errors.Unavailable, match=r"bot ghost: read_file '/data/x'"):
            client.read_file("/data/x", timeout=5)
        with pytest.raises(errors.Unavailable):
            client.exec("true")
        with pytest.raises(errors.Unavailable):
            client.write_raw("x", b"data", timeout=5)
        with pytest.raises(errors.Unavailable):
            client.read_raw("x", timeout=5)


def test_a_client_without_bot_names_its_target() -> None:
    target = f"127.0.0.1:{_closed_port()}"
    with Client(target) as client, pytest.raises(errors.Unavailable, match=f"agent {target}"):
        client.stat("x", timeout=5)


def test_a_closed_client_is_unavailable() -> None:
    client = Client(f"127.0.0.1:{_closed_port()}", bot_id="gone")
    client.close()
    client.close()
    assert client.closed
    with pytest.raises(errors.Unavailable, match="closed"):
        client.stat("x")
    with pytest.raises(errors.Unavailable, match="closed"):
        client.exec("true")


def test_a_borrowed_channel_stays_open() -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{_closed_port()}")
    client = Client("somewhere", channel=channel)
    client.close()
    # The channel still works (here: fails to connect, rather than being closed).
    with pytest.raises(grpc.RpcError):
        pb_grpc.ContainerServiceStub(channel).Stat(pb.StatRequest(path="x"), timeout=2)
    channel.close()


def test_parse_mod_time() -> None:
    assert parse_mod_time("2024-01-02T03:04:05Z") == datetime(
        2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc
    )
    assert parse_mod_time("") is None
    assert parse_mod_time("yesterday") is None
