"""A Docker container's process as a containerd-style task.

Docker has no separate task object: a container is created, runs, exits and
can be started again. mcpmanager's task is the current run: none before the
first start, RUNNING/PAUSED while it runs, STOPPED with its exit code once it
exited, and none again after :meth:`TaskBook.forget` (delete_task) until the
next start.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from .. import errors
from ..types import TaskInfo, TaskStatus
from ._client import Connection
from ._errors import mapped

__all__ = ["TaskBook", "status_of", "wait_stopped"]

_NEVER = "0001-01-01T00:00:00Z"
_STATUS = {
    "running": TaskStatus.RUNNING,
    "paused": TaskStatus.PAUSED,
    "restarting": TaskStatus.RUNNING,
    "exited": TaskStatus.STOPPED,
    "dead": TaskStatus.STOPPED,
    "removing": TaskStatus.STOPPED,
}


def status_of(state: Mapping[str, Any]) -> TaskStatus:
    """The task status of a Docker ``State`` object."""
    return _STATUS.get(str(state.get("Status", "")), TaskStatus.UNKNOWN)


class TaskBook:
    """Which finished runs have had their task deleted (this process's memory).

    Forgetting is keyed by the run's finish time, so the next run of the
    container is a new task. A new service that never saw the delete reports
    the finished run as STOPPED, which the Manager replaces anyway.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._forgotten: dict[str, str] = {}

    def forget(self, docker_id: str, state: Mapping[str, Any]) -> None:
        """Treat the container's finished run as deleted."""
        with self._lock:
            self._forgotten[docker_id] = str(state.get("FinishedAt", ""))

    def drop(self, docker_id: str) -> None:
        """Forget what was recorded for a container (it was started or removed)."""
        with self._lock:
            self._forgotten.pop(docker_id, None)

    def task(self, container_id: str, docker_id: str, state: Mapping[str, Any]) -> TaskInfo | None:
        """The container's task, or None when it has none."""
        if str(state.get("StartedAt", _NEVER)).startswith("0001-"):
            return None
        status = status_of(state)
        if status is TaskStatus.STOPPED:
            with self._lock:
                if self._forgotten.get(docker_id) == str(state.get("FinishedAt", "")):
                    return None
        live = status in (TaskStatus.RUNNING, TaskStatus.PAUSED)
        return TaskInfo(
            container_id=container_id,
            id=container_id,
            pid=int(state.get("Pid") or 0) if live else 0,
            status=status,
            exit_code=0 if live else int(state.get("ExitCode") or 0),
        )


def wait_stopped(conn: Connection, docker_id: str, timeout: float, what: str) -> bool:
    """Wait up to ``timeout`` s for the container to stop; False if it still runs."""
    try:
        with mapped(what):
            conn.api().wait(docker_id, timeout=max(1, round(timeout)), condition="not-running")
    except errors.DeadlineExceeded:
        return False
    except errors.NotFound:
        return True
    return True
