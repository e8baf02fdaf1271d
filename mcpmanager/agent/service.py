"""The ``mcpcontainer.ContainerService`` servicer: each RPC, with memoh's behaviour."""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import grpc

from ..client.protocol import (
    DEFAULT_EXEC_TIMEOUT,
    DEFAULT_WORKDIR,
    EXIT_TIMED_OUT,
    RAW_CHUNK_SIZE,
    WRITE_RAW_END_KEY,
    WRITE_RAW_END_VALUE,
)
from . import wire as pb
from .execproc import STDOUT, Execution
from .failures import AgentError, from_os_error
from .fileinfo import go_mode, rfc3339
from .rootfs import AtomicWriter, RootFS
from .textpage import read_page

if TYPE_CHECKING:
    from .sandbox import Sandbox

__all__ = ["SERVICE_NAME", "ContainerServicer", "handler"]

log = logging.getLogger("mcpmanager.agent")

#: The gRPC service the agent serves (memoh's proto package and service).
SERVICE_NAME = "mcpcontainer.ContainerService"


class ContainerServicer:
    """Serves one container's file tree (a :class:`RootFS`) and runs its commands."""

    def __init__(self, fs: RootFS, sandbox: Sandbox | None = None) -> None:
        self._fs = fs
        self._sandbox = sandbox
        self._lock = threading.Lock()
        self._running: set[Execution] = set()

    def kill_all(self) -> int:
        """Kill every command still running; returns how many were signalled."""
        with self._lock:
            runs = list(self._running)
        return sum(1 for run in runs if run.kill())

    # -- files -----------------------------------------------------------------

    def ReadFile(self, request: pb.ReadFileRequest, context: grpc.ServicerContext) -> Any:
        """A page of a text file, with the limits of :func:`read_page`."""
        with _failures(context, "read_file"):
            path = _required(request.path)
            with self._fs.open_regular(path, "read") as f:
                page = read_page(f, request.line_offset, request.n_lines)
            return pb.ReadFileResponse(
                content=page.content, total_lines=page.total_lines, binary=page.binary
            )

    def WriteFile(self, request: pb.WriteFileRequest, context: grpc.ServicerContext) -> Any:
        """Create or truncate a file (mode 0600 when new); parents are made."""
        with _failures(context, "write_file"):
            self._fs.write_file(_required(request.path), request.content)
            return pb.WriteFileResponse()

    def ListDir(self, request: pb.ListDirRequest, context: grpc.ServicerContext) -> Any:
        """A directory's entries, recursively if asked; empty path means /data."""
        with _failures(context, "list_dir"):
            entries = self._fs.list_dir(request.path or ".", request.recursive)
            return pb.ListDirResponse(entries=tuple(_entry(rel, st) for rel, st in entries))

    def Stat(self, request: pb.StatRequest, context: grpc.ServicerContext) -> Any:
        """One entry, symlinks followed; ``path`` is the base name."""
        with _failures(context, "stat"):
            name, st = self._fs.stat(_required(request.path))
            return pb.StatResponse(entry=_entry(name, st))

    def Mkdir(self, request: pb.MkdirRequest, context: grpc.ServicerContext) -> Any:
        """``mkdir -p`` (mode 0750)."""
        with _failures(context, "mkdir"):
            self._fs.mkdir(_required(request.path))
            return pb.MkdirResponse()

    def Rename(self, request: pb.RenameRequest, context: grpc.ServicerContext) -> Any:
        """Move a path, making the new one's parents."""
        with _failures(context, "rename"):
            if not request.old_path or not request.new_path:
                raise AgentError.invalid("old_path and new_path are required")
            self._fs.rename(request.old_path, request.new_path)
            return pb.RenameResponse()

    def DeleteFile(self, request: pb.DeleteFileRequest, context: grpc.ServicerContext) -> Any:
        """Remove a path; one that does not exist is fine."""
        with _failures(context, "delete_file"):
            self._fs.delete(_required(request.path), request.recursive)
            return pb.DeleteFileResponse()

    def ReadRaw(self, request: pb.ReadRawRequest, context: grpc.ServicerContext) -> Any:
        """Stream a regular file in 64 KiB chunks."""
        with (
            _failures(context, "read_raw"),
            self._fs.open_regular(_required(request.path), "read") as f,
        ):
            while True:
                data = f.read(RAW_CHUNK_SIZE)
                if not data:
                    return
                yield pb.DataChunk(data=data)

    def WriteRaw(
        self, request_iterator: Iterator[pb.WriteRawChunk], context: grpc.ServicerContext
    ) -> Any:
        """Receive a file (the first chunk names it) and put it in place whole.

        The file is replaced only on a clean end of the stream: after the end
        marker when the client promised one (see
        :data:`~mcpmanager.client.protocol.WRITE_RAW_END_KEY`), else when the
        stream ended while the call is still active. A cancelled, broken or
        failed upload leaves the old file and removes the partial one.
        """
        with _failures(context, "write_raw"):
            writer: AtomicWriter | None = None
            try:
                writer = _receive_upload(self._fs, request_iterator, _promises_end(context))
                if writer is None:
                    return pb.WriteRawResponse(bytes_written=0)
                if not context.is_active():
                    raise AgentError(
                        grpc.StatusCode.CANCELLED,
                        f"write_raw {writer.path}: the call was cancelled; the old file is kept",
                    )
                writer.commit()
                return pb.WriteRawResponse(bytes_written=writer.written)
            finally:
                if writer is not None:
                    writer.abort()  # no-op once committed

    # -- commands --------------------------------------------------------------

    def _start(self, first: pb.ExecInput, timeout: int) -> tuple[str, Execution]:
        """Start the command of ``first`` (in the sandbox, if any); its work dir and run."""
        cwd, dir_fd = self._fs.open_workdir(first.work_dir or DEFAULT_WORKDIR)
        try:
            if self._sandbox is not None:
                env = _environment(first.env, _sandbox_env())
                with self._sandbox.wrap(first.command, cwd) as wrapped:
                    run = Execution(
                        first.command,
                        "/",
                        env,
                        timeout,
                        argv=wrapped.argv,
                        pass_fds=wrapped.pass_fds,
                    )
                    _launch(run)
            else:
                # The directory's descriptor, not its host path: nothing can be swapped in.
                run = Execution(
                    first.command, f"/proc/self/fd/{dir_fd}", _environment(first.env), timeout
                )
                _launch(run)
        finally:
            os.close(dir_fd)
        return cwd, run

    def Exec(self, request_iterator: Iterator[pb.ExecInput], context: grpc.ServicerContext) -> Any:
        """Run a command, feeding stdin and streaming its output, then EXIT."""
        with _failures(context, "exec"):
            first = next(request_iterator, None)
            if first is None:
                raise AgentError.invalid("failed to receive exec config")
            if not first.command:
                raise AgentError.invalid("command is required")
            timeout = first.timeout_seconds if first.timeout_seconds > 0 else DEFAULT_EXEC_TIMEOUT
            cwd, run = self._start(first, timeout)
            with self._lock:
                self._running.add(run)
            try:
                # The caller going away (or the server stopping) kills the command.
                if not context.add_callback(run.kill):
                    run.kill()
                threading.Thread(
                    target=_feed_stdin,
                    args=(run, first.stdin_data, request_iterator),
                    name=f"exec-stdin-{run.pid}",
                    daemon=True,
                ).start()
                log.debug("exec pid %d in %s: %s", run.pid, cwd, first.command)
                for stream, data in run.output():
                    kind = pb.STREAM_STDOUT if stream == STDOUT else pb.STREAM_STDERR
                    yield pb.ExecOutput(stream=kind, data=data)
                note = b""
                if run.timed_out:
                    note = EXIT_TIMED_OUT + (
                        f" after {timeout}s; the process group was killed".encode()
                    )
                    log.info("exec pid %d timed out after %ds: %s", run.pid, timeout, first.command)
                exit_code = run.exit_code if run.exit_code is not None else -1
                yield pb.ExecOutput(stream=pb.STREAM_EXIT, exit_code=exit_code, data=note)
            finally:
                run.close()
                with self._lock:
                    self._running.discard(run)


def _promises_end(context: grpc.ServicerContext) -> bool:
    """Whether the WriteRaw client promised an end marker (our clients do)."""
    for key, value in context.invocation_metadata() or ():
        if key == WRITE_RAW_END_KEY and value == WRITE_RAW_END_VALUE:
            return True
    return False


def _receive_upload(
    fs: RootFS, chunks: Iterator[pb.WriteRawChunk], marked: bool
) -> AtomicWriter | None:
    """Write an upload's chunks beside their target; the writer, ready to commit.

    None for a stream without chunks. With ``marked``, the stream must end
    with the end marker (a later chunk with neither path nor data), else the
    upload was abandoned: ABORTED, and the partial file is dropped.
    """
    writer: AtomicWriter | None = None
    ended = False
    try:
        for chunk in chunks:
            if writer is None:
                if not chunk.path:
                    raise AgentError.invalid("first chunk must include path")
                writer = fs.atomic_writer(chunk.path)
                if chunk.data:
                    writer.write(chunk.data)
                continue
            if ended:
                if chunk.data:
                    raise AgentError.invalid(f"write_raw {writer.path}: data after the end marker")
                continue
            if marked and not chunk.path and not chunk.data:
                ended = True
                continue
            if chunk.data:
                writer.write(chunk.data)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if writer is not None and marked and not ended:
        writer.abort()
        raise AgentError(
            grpc.StatusCode.ABORTED,
            f"write_raw {writer.path}: the upload ended before its end marker "
            "(abandoned by the client); the old file is kept",
        )
    return writer


def _feed_stdin(run: Execution, first: bytes, requests: Iterator[pb.ExecInput]) -> None:
    """Copy the caller's stdin messages to the command; close its stdin at their end."""
    writable = True
    try:
        if first:
            writable = run.write_stdin(first)
        for msg in requests:
            if msg.stdin_data and writable:
                writable = run.write_stdin(msg.stdin_data)
    except Exception:  # the call ended (cancelled, or the server stopping)
        pass
    finally:
        run.close_stdin()


def _launch(run: Execution) -> None:
    try:
        run.start()
    except OSError as exc:
        raise AgentError(grpc.StatusCode.INTERNAL, f"exec: cannot start: {exc}") from exc


def _sandbox_env() -> dict[str, str]:
    """The environment a sandboxed command starts from: not the host's."""
    from .sandbox import SANDBOX_PATH  # loaded only by agents that confine commands

    return {"PATH": SANDBOX_PATH, "HOME": DEFAULT_WORKDIR, "LANG": "C.UTF-8"}


def _required(path: str) -> str:
    if not path:
        raise AgentError.invalid("path is required")
    return path


def _environment(entries: Sequence[str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    for entry in entries:
        key, sep, value = entry.partition("=")
        if not sep or not key or "\0" in entry:
            raise AgentError.invalid(f"env entry {entry!r} is not KEY=VALUE")
        env[key] = value
    return env


def _entry(path: str, st: os.stat_result) -> pb.FileEntry:
    return pb.FileEntry(
        path=path,
        is_dir=stat.S_ISDIR(st.st_mode),
        size=st.st_size,
        mode=go_mode(st.st_mode),
        mod_time=rfc3339(st),
    )


@contextmanager
def _failures(context: grpc.ServicerContext, op: str) -> Iterator[None]:
    """End the call with the status of an AgentError (or INTERNAL for a bug)."""
    try:
        yield
    except AgentError as exc:
        log.debug("%s failed: %s %s", op, exc.code.name, exc.message)
        context.abort(exc.code, exc.message)
    except grpc.RpcError:
        raise  # the call itself ended (cancelled, deadline): nothing to report
    except OSError as exc:
        err = from_os_error(exc, op, "")
        log.warning("%s failed: %s", op, exc)
        context.abort(err.code, f"{op}: {exc}")
    except Exception as exc:
        if not context.is_active():
            raise
        log.exception("%s failed unexpectedly", op)
        context.abort(grpc.StatusCode.INTERNAL, f"{op}: internal error: {exc}")


def handler(servicer: ContainerServicer) -> grpc.GenericRpcHandler:
    """The servicer's RPCs as one gRPC handler, read and written with :mod:`.wire`."""
    unary = grpc.unary_unary_rpc_method_handler
    methods: dict[str, grpc.RpcMethodHandler] = {
        "ReadFile": unary(servicer.ReadFile, *_codec(pb.ReadFileRequest)),
        "WriteFile": unary(servicer.WriteFile, *_codec(pb.WriteFileRequest)),
        "ListDir": unary(servicer.ListDir, *_codec(pb.ListDirRequest)),
        "Stat": unary(servicer.Stat, *_codec(pb.StatRequest)),
        "Mkdir": unary(servicer.Mkdir, *_codec(pb.MkdirRequest)),
        "Rename": unary(servicer.Rename, *_codec(pb.RenameRequest)),
        "DeleteFile": unary(servicer.DeleteFile, *_codec(pb.DeleteFileRequest)),
        "Exec": grpc.stream_stream_rpc_method_handler(servicer.Exec, *_codec(pb.ExecInput)),
        "ReadRaw": grpc.unary_stream_rpc_method_handler(
            servicer.ReadRaw, *_codec(pb.ReadRawRequest)
        ),
        "WriteRaw": grpc.stream_unary_rpc_method_handler(
            servicer.WriteRaw, *_codec(pb.WriteRawChunk)
        ),
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, methods)


def _codec(request: type[Any]) -> tuple[Any, Any]:
    """``(request_deserializer, response_serializer)`` for one method."""
    return pb.decoder(request), pb.encode
