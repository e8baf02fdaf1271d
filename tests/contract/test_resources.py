"""Resources on every backend: limits in place, labels, task metrics, snapshot usage."""

from __future__ import annotations

import pytest

from mcpmanager import errors
from mcpmanager.types import ContainerSpec, CreateContainerRequest, ResourceLimits, TaskMetrics
from tests.contract.backends import KILL, LONG_RUNNING, SNAPSHOTTER, Backend

MIB = 1024 * 1024
LIMITS = ResourceLimits(cpu_millicores=500, memory_bytes=128 * MIB, pids=100)


def create_limited(backend: Backend, limits: ResourceLimits) -> str:
    req = CreateContainerRequest(
        id=backend.new_id(),
        image_ref=backend.image,
        spec=ContainerSpec(cmd=LONG_RUNNING, limits=limits),
    )
    return backend.service.create_container(req).id


def test_task_metrics_of_a_running_task(backend: Backend) -> None:
    svc = backend.service
    cid = create_limited(backend, LIMITS)
    svc.start_container(cid)
    m = svc.task_metrics(cid)
    assert isinstance(m, TaskMetrics)
    assert m.memory_limit_bytes == 128 * MIB
    assert m.pids_limit == 100
    assert 1 <= m.pids <= 100
    assert m.memory_bytes > 0


def test_task_metrics_without_a_running_task(backend: Backend) -> None:
    svc = backend.service
    cid = backend.create().id
    with pytest.raises(errors.NotFound, match=cid):
        svc.task_metrics(cid)
    svc.start_container(cid)
    svc.stop_container(cid, KILL)
    with pytest.raises(errors.FailedPrecondition, match=cid):
        svc.task_metrics(cid)


def test_unlimited_task_reports_no_limit(backend: Backend) -> None:
    cid = backend.create().id
    backend.service.start_container(cid)
    m = backend.service.task_metrics(cid)
    assert (m.memory_limit_bytes, m.pids_limit) == (0, 0)


def test_update_resources_applies_to_the_running_task_and_the_next(backend: Backend) -> None:
    svc = backend.service
    cid = backend.create().id
    svc.start_container(cid)
    pid = svc.get_task_info(cid).pid
    svc.update_resources(cid, LIMITS)
    assert svc.get_task_info(cid).pid == pid
    assert svc.task_metrics(cid).memory_limit_bytes == 128 * MIB
    svc.stop_container(cid, KILL)
    svc.start_container(cid)
    assert svc.task_metrics(cid).pids_limit == 100


def test_update_resources_errors(backend: Backend) -> None:
    with pytest.raises(errors.NotFound):
        backend.service.update_resources(backend.new_id(), LIMITS)
    cid = backend.create().id
    with pytest.raises(errors.InvalidArgument):
        backend.service.update_resources(cid, {"pids": 3})  # type: ignore[arg-type]


def test_set_container_labels(backend: Backend) -> None:
    cid = backend.create(labels={"a": "1", "b": "2"}).id
    if backend.name == "docker":  # Docker keeps a container's labels for its life
        with pytest.raises(errors.NotSupported):
            backend.service.set_container_labels(cid, {"a": "9", "c": "3"})
        assert dict(backend.service.get_container(cid).labels) == {"a": "1", "b": "2"}
        return
    info = backend.service.set_container_labels(cid, {"a": "9", "c": "3"})
    assert dict(info.labels) == {"a": "9", "c": "3"}
    assert dict(backend.service.get_container(cid).labels) == {"a": "9", "c": "3"}


def test_snapshot_usage(backend: Backend) -> None:
    info = backend.create()
    assert backend.service.snapshot_usage(SNAPSHOTTER, info.snapshot_key) >= 0
    with pytest.raises(errors.NotFound):
        backend.service.snapshot_usage(SNAPSHOTTER, backend.new_id("missing"))
