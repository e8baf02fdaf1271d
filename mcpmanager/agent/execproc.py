"""One command run by the agent: a process group, its pipes, its deadline.

The command runs as ``/bin/sh -c COMMAND`` in a new session, so it and
everything it starts form one process group that can be killed together: when
the time limit passes, when the caller goes away, or when the agent stops.
Output is handed out as it is read, never collected first.
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence

from . import reaper

__all__ = ["EXIT_LINGER", "STDERR", "STDOUT", "Execution", "shell_script"]

STDOUT = 0
STDERR = 1

#: Seconds to keep reading after the command exited, for output still in its
#: pipes. Pipes held open longer (by a background child) are then let go.
EXIT_LINGER = 1.0

_READ_SIZE = 64 * 1024
_POLL_INTERVAL = 0.05  # only where pidfd_open is missing


# Makes the command the OOM killer's first choice before it runs: under a bot's
# memory limit the agent (tens of MiB) would otherwise often be the one killed for
# a command's allocation, taking the bot's API with it. Raising one's own score
# needs no privilege; where /proc refuses, the command keeps the default, and
# ``|| :`` leaves ``$?`` at 0 for the command either way.
_OOM_FIRST = "{ echo 1000 >/proc/self/oom_score_adj; } 2>/dev/null || :; "


def shell_script(command: str) -> str:
    """The script ``/bin/sh -c`` runs for ``command``: it first volunteers for the OOM killer."""
    return _OOM_FIRST + command


class Execution:
    """``/bin/sh -c command`` in its own process group.

    ``argv`` replaces that command line (a sandbox wrapping the shell);
    ``pass_fds`` are descriptors the process inherits (its ``cwd`` may be
    ``/proc/self/fd/N`` of one of them).

    Call :meth:`start`, feed stdin with :meth:`write_stdin` /
    :meth:`close_stdin` (from one thread), iterate :meth:`output`, then read
    :attr:`exit_code` and :attr:`timed_out`. :meth:`kill` may be called from
    any thread at any time; it never signals a process group that is gone.
    """

    def __init__(
        self,
        command: str,
        cwd: str,
        env: Mapping[str, str],
        timeout: float,
        *,
        argv: Sequence[str] | None = None,
        pass_fds: Sequence[int] = (),
    ) -> None:
        self.command = command
        self.timeout = timeout
        self._cwd = cwd
        self._argv = list(argv) if argv is not None else ["/bin/sh", "-c", shell_script(command)]
        self._pass_fds = tuple(pass_fds)
        self._env = dict(env)
        self._lock = threading.Lock()
        self._exited = False  # the leader has exited (it may not be reaped yet)
        self._finished = threading.Event()  # reaped, exit code known
        self._timed_out = False
        self._killed = False
        self._exit_code: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._wake_lock = threading.Lock()
        self._closed = False
        self._wake_r, self._wake_w = os.pipe()

    # -- lifecycle -------------------------------------------------------------

    def start(self) -> None:
        """Start the command and its watchdog; OSError if it cannot be started."""
        try:
            with reaper.spawning() as track:
                self._proc = subprocess.Popen(
                    self._argv,
                    cwd=self._cwd,
                    env=self._env,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    bufsize=0,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=self._pass_fds,
                )
                track(self._proc.pid)
        except BaseException:
            self._close_wake()
            raise
        threading.Thread(
            target=self._watch, name=f"exec-watch-{self._proc.pid}", daemon=True
        ).start()

    @property
    def pid(self) -> int:
        """The shell's pid, which is also the process group's id."""
        assert self._proc is not None
        return self._proc.pid

    @property
    def exit_code(self) -> int | None:
        """The exit status; -1 when the command was ended by a signal. None while running."""
        return self._exit_code

    @property
    def timed_out(self) -> bool:
        """True when the command was killed for running past its time limit."""
        return self._timed_out

    @property
    def finished(self) -> bool:
        """True once the command has exited and been reaped."""
        return self._finished.is_set()

    def kill(self) -> bool:
        """SIGKILL the whole process group if its leader is still running.

        Returns whether a signal was sent.
        """
        with self._lock:
            return self._kill_locked()

    def _kill_locked(self) -> bool:
        if self._exited or self._proc is None:
            return False
        self._killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        return True

    # -- stdin -----------------------------------------------------------------

    def write_stdin(self, data: bytes) -> bool:
        """Write all of ``data`` to stdin; False once the command no longer reads it."""
        assert self._proc is not None
        assert self._proc.stdin is not None
        view = memoryview(data)
        try:
            fd = self._proc.stdin.fileno()
            while view:
                n = os.write(fd, view)
                view = view[n:]
        except (BrokenPipeError, ValueError, OSError):
            return False
        return True

    def close_stdin(self) -> None:
        """Close stdin: the command reads end-of-file. Idempotent."""
        assert self._proc is not None
        assert self._proc.stdin is not None
        with contextlib.suppress(OSError):
            self._proc.stdin.close()

    # -- output ----------------------------------------------------------------

    def output(self) -> Iterator[tuple[int, bytes]]:
        """``(STDOUT | STDERR, data)`` pieces as the command writes them.

        Ends once the command has exited and its pipes are drained (or
        :data:`EXIT_LINGER` seconds after it exited, if something it left
        behind keeps them open). :attr:`exit_code` is known by then.
        """
        proc = self._proc
        assert proc is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        sel = selectors.DefaultSelector()
        pipes = {proc.stdout.fileno(): STDOUT, proc.stderr.fileno(): STDERR}
        try:
            for fd in pipes:
                sel.register(fd, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            linger_until: float | None = None
            while pipes or not self._finished.is_set():
                if self._finished.is_set():
                    if linger_until is None:
                        linger_until = time.monotonic() + EXIT_LINGER
                    wait: float | None = linger_until - time.monotonic()
                    if wait is not None and wait <= 0:
                        break
                else:
                    wait = None
                for key, _ in sel.select(wait):
                    fd = int(key.fd)
                    if fd == self._wake_r:
                        sel.unregister(fd)
                        continue
                    try:
                        data = os.read(fd, _READ_SIZE)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(fd)
                        del pipes[fd]
                        continue
                    yield pipes[fd], data
        finally:
            sel.close()
        self._finished.wait()

    def close(self) -> None:
        """Kill the command if it still runs and release its output pipes. Idempotent.

        Call it from the thread that iterated :meth:`output`. stdin is left to
        whoever feeds it (it is closed by :meth:`close_stdin`, or when the
        process object goes).
        """
        self.kill()
        proc = self._proc
        if proc is not None:
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()
        self._closed = True
        if self._finished.is_set():
            self._close_wake()

    # -- watchdog --------------------------------------------------------------

    def _watch(self) -> None:
        """Wait for the leader to exit, killing the group at the deadline; then reap it."""
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.timeout
        pidfd = _pidfd(proc.pid)
        poller = None
        if pidfd is not None:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
        try:
            while True:
                with self._lock:
                    if _has_exited(proc.pid):
                        self._exited = True
                        break
                    if not self._timed_out and time.monotonic() >= deadline:
                        self._timed_out = True
                        self._kill_locked()
                left = None if self._timed_out else max(0.0, deadline - time.monotonic())
                if poller is not None:
                    poller.poll(None if left is None else left * 1000 + 1)
                else:
                    time.sleep(_POLL_INTERVAL if left is None else min(_POLL_INTERVAL, left))
        finally:
            if pidfd is not None:
                os.close(pidfd)
        code = proc.wait()
        reaper.untrack(proc.pid)
        self._exit_code = code if code >= 0 else -1
        self._finished.set()
        with self._wake_lock:
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"x")
        if self._closed:
            self._close_wake()

    def _close_wake(self) -> None:
        with self._wake_lock:
            for fd in (self._wake_r, self._wake_w):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._wake_r = self._wake_w = -1


def _pidfd(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def _has_exited(pid: int) -> bool:
    """Whether child ``pid`` has exited, without reaping it (so its pid stays reserved)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid != 0
