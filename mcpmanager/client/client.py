"""A synchronous, thread-safe client for the agent in one bot's container."""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

import grpc

from .. import errors
from . import mcpcontainer_pb2 as pb
from . import mcpcontainer_pb2_grpc as _pb_grpc
from .errors import ExecTimedOut, describe, map_rpc_error
from .exec import (
    EXEC_DEADLINE_MARGIN,
    ExecStream,
    exec_input,
    exec_limit,
    stdin_messages,
    text,
    timeout_reason,
)
from .protocol import INT32_MAX, WRITE_RAW_END_KEY, WRITE_RAW_END_VALUE, upload_pieces
from .results import ExecResult, FileEntry, ReadFileResult, parse_mod_time

__all__ = ["CHANNEL_OPTIONS", "DEFAULT_TIMEOUT", "Client"]

#: Seconds a call without a ``timeout`` argument may take (raw transfers excepted).
DEFAULT_TIMEOUT = 30.0

#: Options of the channels the client makes: large recursive listings and
#: files exceed gRPC's default 4 MiB message limit.
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_receive_message_length", 256 * 1024 * 1024),
    ("grpc.max_send_message_length", 256 * 1024 * 1024),
)

_WRITE_RAW_METADATA = ((WRITE_RAW_END_KEY, WRITE_RAW_END_VALUE),)
_STUB_FACTORY: Any = _pb_grpc.ContainerServiceStub


class Client:
    """gRPC client of ``mcpcontainer.ContainerService``, the agent in a container.

    ``target`` is ``host:port``. ``bot_id`` only names the bot in error messages
    (the :class:`~mcpmanager.client.Pool` sets it). With ``channel`` the client
    uses that channel and leaves it open on :meth:`close`.

    Every call takes a ``timeout`` in seconds (None: no limit) and raises
    :mod:`mcpmanager.errors` exceptions: NotFound, InvalidArgument,
    :class:`~mcpmanager.client.PermissionDenied` (a FailedPrecondition),
    AlreadyExists, FailedPrecondition, Unavailable (agent unreachable, or the
    client closed under the call), DeadlineExceeded, NotSupported (the agent
    lacks the method), else MCPManagerError. Container paths are absolute or
    relative to ``/data``.

    A client is safe to share between threads.
    """

    def __init__(
        self, target: str, *, bot_id: str = "", channel: grpc.Channel | None = None
    ) -> None:
        self._target = target
        self._bot_id = bot_id
        self._owns_channel = channel is None
        self._channel: grpc.Channel = (
            channel
            if channel is not None
            else grpc.insecure_channel(target, options=list(CHANNEL_OPTIONS))
        )
        self._stub: Any = _STUB_FACTORY(self._channel)
        self._closed = False
        self._created = time.monotonic()
        self._not_connecting_at = self._created

    # -- identity and lifecycle ------------------------------------------------

    @property
    def target(self) -> str:
        """The agent's address, ``host:port``."""
        return self._target

    @property
    def bot_id(self) -> str:
        """The bot this client talks to ("" when made without one)."""
        return self._bot_id

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Close the channel (if the client made it). Calls in flight fail with Unavailable."""
        if self._closed:
            return
        self._closed = True
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Client {self._subject()} at {self._target} ({state})>"

    # -- files -----------------------------------------------------------------

    def read_file(
        self,
        path: str,
        line_offset: int = 0,
        n_lines: int = 0,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> ReadFileResult:
        """A numbered page of a text file, as memoh's file tools show it to a model.

        Up to ``n_lines`` lines from ``line_offset`` (1-based), each formatted
        ``"%6d\t%s\n"`` (``"     1\thello\n"``); the agent caps a page at 200
        lines and 5120 bytes and cuts lines longer than 1000 characters (adding
        ``...``); 0 means "from the start" and "as many as allowed". A file
        with a NUL byte in its first 8 KiB comes back as ``binary`` with no
        content. For a file's contents use :meth:`read_bytes` or
        :meth:`read_text`.
        """
        req = pb.ReadFileRequest(
            path=path,
            line_offset=_int32(line_offset, "line_offset"),
            n_lines=_int32(n_lines, "n_lines"),
        )
        with self._errors("read_file", path, timeout):
            resp = self._stub.ReadFile(req, timeout=timeout)
        return ReadFileResult(
            content=resp.content, total_lines=resp.total_lines, binary=resp.binary
        )

    def write_file(
        self, path: str, content: bytes | str, *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        """Create or overwrite a file (parents are created). Use :meth:`write_raw` for big files."""
        data = content.encode() if isinstance(content, str) else bytes(content)
        with self._errors("write_file", path, timeout):
            self._stub.WriteFile(pb.WriteFileRequest(path=path, content=data), timeout=timeout)

    def list_dir(
        self, path: str = "", recursive: bool = False, *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> list[FileEntry]:
        """The entries of a directory (``""``: ``/data``), sorted by name.

        Recursive listings walk depth first and give paths relative to
        ``path``; symlinks are listed, not followed.
        """
        with self._errors("list_dir", path or ".", timeout):
            resp = self._stub.ListDir(
                pb.ListDirRequest(path=path, recursive=recursive), timeout=timeout
            )
        return [_entry(e) for e in resp.entries]

    def stat(self, path: str, *, timeout: float | None = DEFAULT_TIMEOUT) -> FileEntry:
        """Information on one file or directory (symlinks are followed)."""
        with self._errors("stat", path, timeout):
            resp = self._stub.Stat(pb.StatRequest(path=path), timeout=timeout)
        return _entry(resp.entry)

    def mkdir(self, path: str, *, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        """Create a directory and its missing parents; an existing directory is fine."""
        with self._errors("mkdir", path, timeout):
            self._stub.Mkdir(pb.MkdirRequest(path=path), timeout=timeout)

    def rename(
        self, old_path: str, new_path: str, *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        """Move ``old_path`` to ``new_path`` (whose parents are created)."""
        with self._errors("rename", f"{old_path} -> {new_path}", timeout):
            self._stub.Rename(
                pb.RenameRequest(old_path=old_path, new_path=new_path), timeout=timeout
            )

    def delete_file(
        self, path: str, recursive: bool = False, *, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        """Remove a file, symlink or empty directory (any directory when ``recursive``).

        A path that does not exist is not an error.
        """
        with self._errors("delete_file", path, timeout):
            self._stub.DeleteFile(
                pb.DeleteFileRequest(path=path, recursive=recursive), timeout=timeout
            )

    def read_raw(self, path: str, *, timeout: float | None = None) -> Iterator[bytes]:
        """The bytes of a file, as an iterator of chunks of at most 64 KiB.

        The file is streamed, never held whole in memory. Errors on opening it
        (NotFound...) are raised here; errors later, from the iteration. Closing
        the iterator early (or dropping it) cancels the transfer. ``timeout``
        bounds the whole transfer.
        """
        with self._errors("read_raw", path, timeout):
            call = self._stub.ReadRaw(pb.ReadRawRequest(path=path), timeout=timeout)
            try:
                first = next(call)
            except StopIteration:
                return iter(())
        return self._raw_chunks(call, first.data, path, timeout)

    def read_bytes(self, path: str, *, timeout: float | None = None) -> bytes:
        """The whole content of a file, byte for byte (over ReadRaw).

        For big files prefer :meth:`read_raw`, which streams. ``timeout``
        bounds the whole transfer.
        """
        return b"".join(self.read_raw(path, timeout=timeout))

    def read_text(
        self,
        path: str,
        encoding: str = "utf-8",
        errors: str = "strict",
        *,
        timeout: float | None = None,
    ) -> str:
        """The whole content of a file, decoded (``errors`` as for :meth:`bytes.decode`).

        Unlike :meth:`read_file`, no line numbers, no page limits.
        """
        return self.read_bytes(path, timeout=timeout).decode(encoding, errors)

    def _raw_chunks(
        self, call: Any, first: bytes, path: str, timeout: float | None
    ) -> Generator[bytes, None, None]:
        try:
            if first:
                yield first
            while True:
                with self._errors("read_raw", path, timeout):
                    try:
                        chunk = next(call)
                    except StopIteration:
                        return
                if chunk.data:
                    yield chunk.data
        finally:
            call.cancel()

    def write_raw(
        self,
        path: str,
        data: bytes | bytearray | memoryview | IO[bytes],
        *,
        timeout: float | None = None,
    ) -> int:
        """Write ``data`` (bytes, or a binary file object read to its end) to ``path``.

        Streams 1 MiB chunks, then an end marker; the agent replaces the file
        only once that marker arrived, so a failed or abandoned transfer leaves
        the old file as it was. Returns
        the number of bytes written. An error reading ``data`` is raised as is.
        """
        if not path:
            raise errors.InvalidArgument(
                describe(self._subject(), "write_raw", path, "path is required")
            )
        source_errors: list[BaseException] = []
        ready = threading.Event()
        holder: list[Any] = []

        def requests() -> Iterator[pb.WriteRawChunk]:
            ready.wait()
            try:
                first = True
                for piece in upload_pieces(data):
                    yield (
                        pb.WriteRawChunk(path=path, data=piece)
                        if first
                        else pb.WriteRawChunk(data=piece)
                    )
                    first = False
                if first:
                    yield pb.WriteRawChunk(path=path)
                yield pb.WriteRawChunk()  # the end marker: the agent may now commit
            except Exception as exc:  # the caller's stream failed: abandon the upload
                source_errors.append(exc)
                holder[0].cancel()

        with self._errors("write_raw", path, timeout):
            future = self._stub.WriteRaw.future(
                requests(), timeout=timeout, metadata=_WRITE_RAW_METADATA
            )
            holder.append(future)
            ready.set()
            try:
                resp = future.result()
            except grpc.FutureCancelledError:
                if source_errors:
                    raise source_errors[0] from None
                raise errors.Unavailable(
                    describe(self._subject(), "write_raw", path, "call cancelled")
                ) from None
            except grpc.RpcError:
                if source_errors:
                    raise source_errors[0] from None
                raise
        if source_errors:
            raise source_errors[0]
        return int(resp.bytes_written)

    # -- commands --------------------------------------------------------------

    def exec(
        self,
        command: str,
        workdir: str = "",
        timeout: float = 0,
        stdin: bytes | str = b"",
        env: Iterable[str] | Mapping[str, str] = (),
    ) -> ExecResult:
        """Run ``command`` with ``/bin/sh -c`` and wait for it.

        ``workdir`` defaults to ``/data``; ``timeout`` (seconds, rounded up; 0:
        the agent's default of 30) bounds the command, which is then killed
        with its process group and :class:`~mcpmanager.client.ExecTimedOut` (a
        DeadlineExceeded) raised with what it wrote; an agent that reports a
        timeout only as exit code -1 (memoh's) gets the same once the limit has
        passed. ``stdin`` is sent after the command (memoh's agent reads it
        only from there), fed to the command and closed; ``env`` (``KEY=VALUE``
        strings or a mapping) is added to the agent's environment. A non-zero
        exit is not an error: the exit code comes with the output in the
        result.
        """
        first, stdin_data = exec_input(command, workdir, timeout, stdin, env)
        limit = exec_limit(first.timeout_seconds)
        deadline = limit + EXEC_DEADLINE_MARGIN
        out: list[bytes] = []
        err: list[bytes] = []
        exit_code: int | None = None
        note = b""
        started = time.monotonic()
        try:
            with self._errors("exec", command, deadline):
                requests = iter([first, *stdin_messages(stdin_data)])
                for msg in self._stub.Exec(requests, timeout=deadline):
                    if msg.stream == pb.ExecOutput.STDOUT:
                        out.append(msg.data)
                    elif msg.stream == pb.ExecOutput.STDERR:
                        err.append(msg.data)
                    elif msg.stream == pb.ExecOutput.EXIT:
                        exit_code, note = msg.exit_code, msg.data
        except errors.DeadlineExceeded as exc:
            partial = ExecResult(text(out), text(err), -1)
            raise ExecTimedOut(str(exc), partial) from exc.__cause__
        if exit_code is None:
            raise errors.MCPManagerError(
                describe(self._subject(), "exec", command, "the agent sent no exit status")
            )
        result = ExecResult(text(out), text(err), exit_code)
        reason = timeout_reason(note, exit_code, time.monotonic() - started, limit)
        if reason:
            raise ExecTimedOut(describe(self._subject(), "exec", command, reason), result)
        return result

    def exec_stream(
        self,
        command: str,
        workdir: str = "",
        timeout: float = 0,
        stdin: bytes | str = b"",
        env: Iterable[str] | Mapping[str, str] = (),
    ) -> ExecStream:
        """Start ``command`` and talk to it while it runs; see :class:`ExecStream`.

        Arguments as for :meth:`exec`, except that stdin stays open until
        :meth:`ExecStream.close_stdin`.
        """
        first, stdin_data = exec_input(command, workdir, timeout, stdin, env)
        limit = exec_limit(first.timeout_seconds)
        return ExecStream(self._stub.Exec, self._errors, self._subject(), first, stdin_data, limit)

    # -- internals -------------------------------------------------------------

    def _subject(self) -> str:
        return f"bot {self._bot_id}" if self._bot_id else f"agent {self._target}"

    @contextmanager
    def _errors(self, op: str, what: str, timeout: float | None) -> Iterator[None]:
        """Turn gRPC failures inside the block into mcpmanager errors."""
        try:
            yield
        except errors.MCPManagerError:
            raise
        except grpc.RpcError as exc:
            raise map_rpc_error(
                exc, subject=self._subject(), op=op, what=what, timeout=timeout
            ) from exc
        except ValueError as exc:
            # grpc raises ValueError for a call on a closed channel.
            message = str(exc).lower()
            if self._closed or "closed channel" in message or "channel closed" in message:
                raise errors.Unavailable(
                    describe(self._subject(), op, what, "the client is closed")
                ) from exc
            raise

    def _connectivity(self) -> grpc.ChannelConnectivity | None:
        """The channel's state, without starting to connect; None if it cannot be read."""
        inner = getattr(self._channel, "_channel", None)
        check = getattr(inner, "check_connectivity_state", None)
        if check is None:
            return None
        try:
            value = int(check(False))
        except Exception:
            return None
        for state in grpc.ChannelConnectivity:
            if state.value[0] == value:
                return state
        return None


# -- helpers -------------------------------------------------------------------


def _entry(e: pb.FileEntry) -> FileEntry:
    return FileEntry(
        path=e.path,
        is_dir=e.is_dir,
        size=e.size,
        mode=e.mode,
        mod_time=parse_mod_time(e.mod_time),
    )


def _int32(value: int, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    return max(-(2**31), min(INT32_MAX, value))
