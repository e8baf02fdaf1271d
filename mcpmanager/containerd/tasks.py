"""Tasks (a container's running process): start, stop, delete, inspect."""

from __future__ import annotations

import contextlib
import signal
import time

from .. import errors
from .._log import get_logger
from ..types import StopTaskOptions, TaskInfo, TaskStatus
from ._conn import Connection
from .api import containers_pb2, mount_pb2, task_pb2, tasks_pb2
from .snapshots import mounts

__all__ = [
    "delete_leftover",
    "delete_task",
    "get_task",
    "list_tasks",
    "start_task",
    "stop_task",
    "to_task_info",
]

log = get_logger("mcpmanager.containerd")

_STATUS = {
    task_pb2.CREATED: TaskStatus.CREATED,
    task_pb2.RUNNING: TaskStatus.RUNNING,
    task_pb2.STOPPED: TaskStatus.STOPPED,
    task_pb2.PAUSED: TaskStatus.PAUSED,
    task_pb2.PAUSING: TaskStatus.PAUSED,
}
KILL_WAIT = 10.0
"""Seconds to wait for a task to exit after SIGKILL."""


def to_task_info(p: task_pb2.Process, container_id: str = "") -> TaskInfo:
    """Convert containerd's process message to :class:`TaskInfo`."""
    return TaskInfo(
        container_id=p.container_id or container_id or p.id,
        id=p.id,
        pid=p.pid,
        status=_STATUS.get(p.status, TaskStatus.UNKNOWN),
        exit_code=p.exit_status,
    )


def get_task(conn: Connection, container_id: str) -> TaskInfo:
    """Return the task of ``container_id``; NotFound if it has none."""
    resp = conn.unary(
        conn.tasks.Get,
        tasks_pb2.GetRequest(container_id=container_id),
        what=f"get task of container {container_id}",
    )
    return to_task_info(resp.process, container_id)


def list_tasks(conn: Connection, filter: str = "") -> list[TaskInfo]:
    """Return every task of the namespace matching ``filter``."""
    resp = conn.unary(conn.tasks.List, tasks_pb2.ListTasksRequest(filter=filter), what="list tasks")
    return [to_task_info(p) for p in resp.tasks]


def start_task(conn: Connection, record: containers_pb2.Container) -> None:
    """Create the task on the container's snapshot (null IO) and start it.

    The task is created without asking first; only when one exists is it
    looked at: a stopped one is deleted and replaced, one created but never
    started is started.
    """
    cid = record.id
    rootfs = mounts(conn, record.snapshotter, record.snapshot_key)
    _create_or_reuse(conn, cid, rootfs)
    try:
        conn.unary(
            conn.tasks.Start,
            tasks_pb2.StartRequest(container_id=cid),
            what=f"start task of container {cid}",
            idempotent=False,
        )
    except errors.MCPManagerError:
        with contextlib.suppress(errors.MCPManagerError):
            _delete(conn, cid)
        raise


# How long a create waits for the daemon to clear away a task whose shim died
# (it answers NotFound to Get at once, but AlreadyExists to Create for ~0.2 s).
_CLEARING_WAIT = 10.0


def _create_or_reuse(conn: Connection, cid: str, rootfs: list[mount_pb2.Mount]) -> None:
    """Create the task; replace a stopped (or shim-less) one; leave a created one be."""
    deadline = time.monotonic() + _CLEARING_WAIT
    pause = 0.005
    while True:
        if _create(conn, cid, rootfs):
            return
        try:
            existing = get_task(conn, cid)
        except errors.NotFound:
            existing = None  # being cleared away by the daemon: ask again shortly
        if existing is not None:
            if existing.status == TaskStatus.CREATED:
                return
            if existing.status not in (TaskStatus.STOPPED, TaskStatus.UNKNOWN):
                raise errors.AlreadyExists(
                    f"container {cid} already has a {existing.status.value} task"
                )
            with contextlib.suppress(errors.NotFound):
                _delete(conn, cid)
        if time.monotonic() > deadline:
            raise errors.AlreadyExists(
                f"container {cid}: an old task is still in the way after {_CLEARING_WAIT:g}s"
            )
        if existing is None:
            time.sleep(pause)
            pause = min(pause * 2, 0.05)


def _create(conn: Connection, cid: str, rootfs: list[mount_pb2.Mount]) -> bool:
    """Create the task; False when the container has one already."""
    req = tasks_pb2.CreateTaskRequest(container_id=cid, rootfs=rootfs)
    try:
        conn.unary(conn.tasks.Create, req, what=f"create task of container {cid}", idempotent=False)
    except errors.AlreadyExists:
        return False
    return True


def _kill(conn: Connection, cid: str, sig: int) -> bool:
    """Send ``sig`` to the task; False when there is no process left to signal."""
    try:
        conn.unary(
            conn.tasks.Kill,
            tasks_pb2.KillRequest(container_id=cid, signal=sig),
            what=f"signal {sig} to task of container {cid}",
            idempotent=False,
        )
    except errors.NotFound:
        return False
    return True


def _wait(conn: Connection, cid: str, timeout: float) -> None:
    conn.unary(
        conn.tasks.Wait,
        tasks_pb2.WaitRequest(container_id=cid),
        what=f"wait for task of container {cid}",
        timeout=max(timeout, 0.001),
    )


def _signal_and_wait(conn: Connection, cid: str, sig: int, timeout: float) -> bool:
    """Send ``sig`` and wait up to ``timeout`` for the exit; False when nothing was signalled.

    The Wait goes out before the Kill, so its answer comes as soon as the
    task exits instead of one round trip after the Kill has returned (the
    shim's ``runc kill`` alone takes a few milliseconds). A Wait for a task
    that has stopped already answers at once, which is harmless: the Kill
    then finds no process and tells that case apart.
    """
    waiting = conn.send(
        conn.tasks.Wait,
        tasks_pb2.WaitRequest(container_id=cid),
        what=f"wait for task of container {cid}",
        timeout=max(timeout, 0.001),
    )
    try:
        if not _kill(conn, cid, sig):
            return False
        try:
            waiting.result()
        except errors.Unavailable:  # sent while the channel was reconnecting: ask again
            _wait(conn, cid, timeout)
        return True
    finally:
        waiting.cancel()


def stop_task(conn: Connection, cid: str, opts: StopTaskOptions) -> bool:
    """Signal the task and wait for it; SIGKILL after the timeout when forced.

    False when there was nothing to signal: no task, or one that has
    stopped (the daemon answers NotFound to both; the caller may tell a
    missing container apart).
    """
    sig = opts.signal or int(signal.SIGTERM)
    try:
        return _signal_and_wait(conn, cid, sig, opts.timeout if opts.timeout > 0 else 10.0)
    except errors.DeadlineExceeded:
        if not opts.force:
            raise errors.DeadlineExceeded(
                f"task of container {cid} did not stop within {opts.timeout}s"
            ) from None
    log.info("task of container %s ignored signal %d; killing it", cid, sig)
    if _kill(conn, cid, int(signal.SIGKILL)):
        _wait(conn, cid, KILL_WAIT)
    return True


def _delete(conn: Connection, cid: str) -> None:
    conn.unary(
        conn.tasks.Delete,
        tasks_pb2.DeleteTaskRequest(container_id=cid),
        what=f"delete task of container {cid}",
        idempotent=False,
    )


def delete_task(conn: Connection, cid: str, force: bool) -> None:
    """Delete the task of ``cid``; with ``force`` kill it and wait for it first.

    Without ``force`` a running or paused task is FailedPrecondition, found
    out by asking first: a Delete sent to a live task is refused, but only
    after the daemon has stopped monitoring it, and a refused call must not
    change anything. With ``force`` the Delete goes first, as the task goes
    anyway: one call when there is no task (NotFound) or a stopped one; a
    live one refuses it and is then killed, waited for and deleted.
    """
    if not force:
        info = get_task(conn, cid)
        if info.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
            raise errors.FailedPrecondition(
                f"task of container {cid} is {info.status.value}; stop it or force the delete"
            )
        _delete(conn, cid)
        return
    try:
        _delete(conn, cid)
        return
    except (errors.NotFound, errors.Unavailable, errors.DeadlineExceeded):
        raise
    except errors.MCPManagerError as exc:
        log.debug("task of container %s is live (%s); killing it", cid, exc)
    if _kill(conn, cid, int(signal.SIGKILL)):
        with contextlib.suppress(errors.DeadlineExceeded):
            _wait(conn, cid, KILL_WAIT)
    _delete(conn, cid)


def delete_leftover(conn: Connection, cid: str) -> None:
    """Delete whatever task ``cid`` has, killing a live one first; having none is fine."""
    with contextlib.suppress(errors.NotFound):
        delete_task(conn, cid, force=True)
