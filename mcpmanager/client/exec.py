"""Running commands over the agent's Exec stream.

The request messages (the command first, stdin only in the messages after it,
as memoh's agent reads it), the deadline, telling a timed-out command from one
that merely failed, and :class:`ExecStream` for talking to a running command.
:class:`~mcpmanager.client.Client` builds its ``exec`` and ``exec_stream`` on these.
"""

from __future__ import annotations

import math
import queue
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any, Literal, cast

from .. import errors
from . import mcpcontainer_pb2 as pb
from .errors import ExecTimedOut, describe
from .protocol import DEFAULT_EXEC_TIMEOUT, EXIT_TIMED_OUT, INT32_MAX, upload_pieces
from .results import ExecChunk, ExecResult

__all__ = [
    "EXEC_DEADLINE_MARGIN",
    "ExecStream",
    "exec_input",
    "exec_limit",
    "stdin_messages",
    "text",
    "timeout_reason",
]

#: Seconds the gRPC deadline of an exec call adds to the command's own limit,
#: so that the agent's timeout (which kills the command and reports its output)
#: fires first.
EXEC_DEADLINE_MARGIN = 10.0


class ExecStream:
    """A running command: feed its stdin, read its output as it comes.

    ::

        with client.exec_stream("sort") as run:
            run.send(b"b\\na\\n")
            run.close_stdin()
            for chunk in run:          # ExecChunk(stream="stdout" | "stderr", data)
                print(chunk.stream, chunk.data)
        run.exit_code                  # set once the output is exhausted

    Iteration ends when the command has exited and its output is drained; a
    command killed for running too long then raises
    :class:`~mcpmanager.client.ExecTimedOut`. :meth:`send` may be called from
    another thread than the one iterating. Leaving the ``with`` block (or
    :meth:`close`) before the end cancels the call, and the agent kills the
    command.
    """

    _CLOSE = object()

    def __init__(
        self,
        start: Callable[..., Any],
        call_errors: Callable[[str, str, float | None], AbstractContextManager[None]],
        subject: str,
        first: pb.ExecInput,
        stdin_data: bytes,
        limit: float,
    ) -> None:
        self._errors = call_errors
        self._subject = subject
        self._command = first.command
        self._limit = limit
        self._deadline = limit + EXEC_DEADLINE_MARGIN
        self._requests: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._requests.put(first)
        for msg in stdin_messages(stdin_data):
            self._requests.put(msg)
        self._stdin_closed = False
        self._exit_code: int | None = None
        self._timed_out = False
        self._finished = False
        self._started = time.monotonic()
        with call_errors("exec", self._command, self._deadline):
            self._call: Any = start(self._request_iter(), timeout=self._deadline)
        self._call.add_done_callback(lambda _call: self._requests.put(self._CLOSE))

    def _request_iter(self) -> Iterator[pb.ExecInput]:
        while True:
            item = self._requests.get()
            if item is self._CLOSE:
                return
            yield cast(pb.ExecInput, item)

    @property
    def exit_code(self) -> int | None:
        """The command's exit code, once iteration has reached the end; else None."""
        return self._exit_code

    @property
    def timed_out(self) -> bool:
        """True when the agent killed the command for running past its limit."""
        return self._timed_out

    def send(self, data: bytes | str) -> None:
        """Write to the command's stdin (dropped if the command has ended)."""
        if self._stdin_closed:
            raise errors.FailedPrecondition(
                describe(self._subject, "exec", self._command, "stdin is closed")
            )
        payload = data.encode() if isinstance(data, str) else bytes(data)
        if payload:
            self._requests.put(pb.ExecInput(stdin_data=payload))

    def close_stdin(self) -> None:
        """Close the command's stdin (it reads end-of-file). Idempotent."""
        if not self._stdin_closed:
            self._stdin_closed = True
            self._requests.put(self._CLOSE)

    def __iter__(self) -> Iterator[ExecChunk]:
        stream_names: dict[int, Literal["stdout", "stderr"]] = {
            pb.ExecOutput.STDOUT: "stdout",
            pb.ExecOutput.STDERR: "stderr",
        }
        note = b""
        while not self._finished:
            with self._errors("exec", self._command, self._deadline):
                try:
                    msg = next(self._call)
                except StopIteration:
                    self._finished = True
                    break
            if msg.stream == pb.ExecOutput.EXIT:
                self._exit_code, note = msg.exit_code, msg.data
            elif msg.data:
                yield ExecChunk(stream_names.get(msg.stream, "stdout"), msg.data)
        if self._exit_code is None:
            raise errors.MCPManagerError(
                describe(self._subject, "exec", self._command, "the agent sent no exit status")
            )
        elapsed = time.monotonic() - self._started
        reason = timeout_reason(note, self._exit_code, elapsed, self._limit)
        if reason:
            self._timed_out = True
            raise ExecTimedOut(
                describe(self._subject, "exec", self._command, reason),
                ExecResult("", "", self._exit_code),
            )

    def wait(self) -> int:
        """Close stdin, drain (and drop) the remaining output, return the exit code."""
        self.close_stdin()
        for _ in self:
            pass
        assert self._exit_code is not None
        return self._exit_code

    def close(self) -> None:
        """Cancel the call if it has not finished (the agent then kills the command)."""
        self._stdin_closed = True
        self._call.cancel()
        self._requests.put(self._CLOSE)

    def __enter__(self) -> ExecStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def text(parts: list[bytes]) -> str:
    """Output chunks as one string (undecodable bytes replaced)."""
    return b"".join(parts).decode("utf-8", errors="replace")


def exec_input(
    command: str,
    workdir: str,
    timeout: float,
    stdin: bytes | str,
    env: Iterable[str] | Mapping[str, str],
) -> tuple[pb.ExecInput, bytes]:
    """The first Exec message (the command, without stdin) and the stdin to send after it."""
    if not command:
        raise errors.InvalidArgument("exec: command is required")
    if isinstance(env, str):
        raise TypeError("env must be a mapping or a sequence of KEY=VALUE strings, not a str")
    entries = [f"{k}={v}" for k, v in env.items()] if isinstance(env, Mapping) else list(env)
    for entry in entries:
        if "=" not in entry or entry.startswith("="):
            raise errors.InvalidArgument(f"exec: env entry {entry!r} is not KEY=VALUE")
    if timeout < 0 or math.isnan(timeout):
        raise errors.InvalidArgument(f"exec: timeout must be >= 0 seconds, got {timeout}")
    seconds = math.ceil(timeout)
    if seconds > INT32_MAX:
        raise errors.InvalidArgument(f"exec: timeout {timeout} is too large")
    data = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
    first = pb.ExecInput(command=command, work_dir=workdir, env=entries, timeout_seconds=seconds)
    return first, data


def stdin_messages(data: bytes) -> Iterator[pb.ExecInput]:
    """``data`` as Exec messages after the first: memoh's agent reads stdin only from those."""
    for piece in upload_pieces(data):
        yield pb.ExecInput(stdin_data=piece)


def exec_limit(timeout_seconds: int) -> float:
    """Seconds the agent lets the command run."""
    return float(timeout_seconds or DEFAULT_EXEC_TIMEOUT)


def timeout_reason(note: bytes, exit_code: int, elapsed: float, limit: float) -> str:
    """Why an exec that ended counts as timed out; "" when it does not.

    Our agent says so in the EXIT message. memoh's only reports exit code -1,
    so a -1 that came once the command's limit had passed counts too.
    """
    if note.startswith(EXIT_TIMED_OUT):
        return note.decode(errors="replace")
    if exit_code == -1 and not note and elapsed >= limit:
        return f"timed out after {limit:g}s (the agent reported exit code -1)"
    return ""
