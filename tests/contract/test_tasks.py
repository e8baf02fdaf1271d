"""Tasks on every backend: start, stop, delete, inspect and list; results and errors."""

from __future__ import annotations

import signal

import pytest

from mcpmanager import errors
from mcpmanager.types import DeleteTaskOptions, TaskStatus
from tests.contract.backends import KILL, Backend

KILLED = 128 + int(signal.SIGKILL)


def test_start_inspect_stop(backend: Backend) -> None:
    svc = backend.service
    cid = backend.create().id
    with pytest.raises(errors.NotFound, match=cid):
        svc.get_task_info(cid)
    svc.start_container(cid)
    task = svc.get_task_info(cid)
    assert (task.container_id, task.id, task.status) == (cid, cid, TaskStatus.RUNNING)
    assert task.pid > 0
    assert task in svc.list_tasks()
    svc.stop_container(cid, KILL)
    stopped = svc.get_task_info(cid)
    assert (stopped.status, stopped.exit_code) == (TaskStatus.STOPPED, KILLED)
    svc.stop_container(cid, KILL)  # already stopped: nothing to do
    assert svc.get_task_info(cid).status is TaskStatus.STOPPED


def test_starting_a_running_task_is_already_exists(backend: Backend) -> None:
    cid = backend.create().id
    backend.service.start_container(cid)
    pid = backend.service.get_task_info(cid).pid
    with pytest.raises(errors.AlreadyExists, match=cid):
        backend.service.start_container(cid)
    assert backend.service.get_task_info(cid).pid == pid


def test_starting_a_stopped_task_replaces_it(backend: Backend) -> None:
    svc = backend.service
    cid = backend.create().id
    svc.start_container(cid)
    first = svc.get_task_info(cid).pid
    svc.stop_container(cid, KILL)
    svc.start_container(cid)
    task = svc.get_task_info(cid)
    assert (task.status, task.exit_code) == (TaskStatus.RUNNING, 0)
    assert task.pid > 0
    assert task.pid != first
    assert [t.container_id for t in svc.list_tasks()].count(cid) == 1


def test_stop_without_a_task_is_harmless(backend: Backend) -> None:
    cid = backend.create().id
    backend.service.stop_container(cid)
    with pytest.raises(errors.NotFound):
        backend.service.get_task_info(cid)


def test_delete_task(backend: Backend) -> None:
    svc = backend.service
    cid = backend.create().id
    with pytest.raises(errors.NotFound, match=cid):
        svc.delete_task(cid)
    svc.start_container(cid)
    with pytest.raises(errors.FailedPrecondition, match=cid):
        svc.delete_task(cid)  # running, not forced
    assert svc.get_task_info(cid).status is TaskStatus.RUNNING
    svc.delete_task(cid, DeleteTaskOptions(force=True))
    with pytest.raises(errors.NotFound):
        svc.get_task_info(cid)
    svc.start_container(cid)
    svc.stop_container(cid, KILL)
    svc.delete_task(cid)  # stopped: no force needed
    with pytest.raises(errors.NotFound):
        svc.delete_task(cid)
    assert svc.get_container(cid).id == cid


def test_missing_container_is_not_found(backend: Backend) -> None:
    svc = backend.service
    for call in (svc.start_container, svc.stop_container, svc.get_task_info, svc.delete_task):
        with pytest.raises(errors.NotFound, match="nope-2"):
            call("nope-2")


def test_list_tasks(backend: Backend) -> None:
    svc = backend.service
    running = backend.create().id
    stopped = backend.create().id
    idle = backend.create().id
    svc.start_container(running)
    svc.start_container(stopped)
    svc.stop_container(stopped, KILL)
    tasks = {t.container_id: t for t in svc.list_tasks() if t.container_id in backend.ids}
    assert set(tasks) == {running, stopped}
    assert tasks[running].status is TaskStatus.RUNNING
    assert tasks[stopped].status is TaskStatus.STOPPED
    assert idle not in tasks


def test_list_tasks_filter(backend: Backend) -> None:
    svc = backend.service
    a = backend.create().id
    b = backend.create().id
    svc.start_container(a)
    svc.start_container(b)
    svc.stop_container(b, KILL)
    assert [t.container_id for t in svc.list_tasks(f"id=={a}")] == [a]
    assert [t.container_id for t in svc.list_tasks(f"container_id=={b}")] == [b]
    pid = svc.get_task_info(a).pid
    assert [t.container_id for t in svc.list_tasks(f"pid=={pid}")] == [a]
    running = {t.container_id for t in svc.list_tasks("status==running")}
    assert a in running
    assert b not in running
    assert b in {t.container_id for t in svc.list_tasks("status==stopped")}
    for bad in ("bogus", "image==x", "id~=a"):
        with pytest.raises(errors.InvalidArgument, match="filter"):
            svc.list_tasks(bad)
