"""Shared runc shims (``ContainerdService(shim_groups=N)``) on a real containerd.

Each container's task is a child of its shim: the tasks of one group have the
same parent process, which outlives every task but the last, and a shim that
dies takes its group's tasks with it, after which they start again.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import uuid
from collections.abc import Callable, Iterator

import pytest

from mcpmanager import errors
from mcpmanager.containerd import ContainerdService, containers
from mcpmanager.containerd.spec import SHIM_GROUP_ANNOTATION
from mcpmanager.types import (
    ContainerSpec,
    CreateContainerRequest,
    ImageInfo,
    StopTaskOptions,
    TaskStatus,
)
from tests.harness.common import wait_for
from tests.harness.containerd import BUSYBOX_REF, GRACEFUL_CMD, ContainerdDaemon, wait_until_ready

pytestmark = pytest.mark.integration

Started = Callable[[ContainerdService], str]


def shim_of(service: ContainerdService, cid: str) -> int:
    """The pid of the process the task's init is a child of: its shim."""
    pid = service.get_task_info(cid).pid
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def running(service: ContainerdService, cid: str) -> bool:
    try:
        return service.get_task_info(cid).status == TaskStatus.RUNNING
    except errors.NotFound:
        return False


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def grouped(
    containerd_socket: str, containerd_namespace: str, busybox_image: ImageInfo
) -> Iterator[ContainerdService]:
    """A service whose containers all share one shim."""
    service = ContainerdService(containerd_socket, containerd_namespace, shim_groups=1)
    try:
        yield service
    finally:
        service.close()


@pytest.fixture
def start(containerd_daemon: ContainerdDaemon, containerd_namespace: str) -> Iterator[Started]:
    """Create and start a busybox container on a given service; all removed afterwards."""
    made: list[tuple[ContainerdService, str]] = []

    def make(service: ContainerdService) -> str:
        cid = f"g-{uuid.uuid4().hex[:10]}"
        made.append((service, cid))
        service.create_container(
            CreateContainerRequest(
                id=cid, image_ref=BUSYBOX_REF, spec=ContainerSpec(cmd=GRACEFUL_CMD)
            )
        )
        service.start_container(cid)
        wait_until_ready(containerd_daemon, containerd_namespace, cid)
        return cid

    yield make
    for service, cid in made:
        with contextlib.suppress(errors.NotFound):
            service.delete_container(cid)


def test_by_default_each_task_has_its_own_shim(
    containerd_service: ContainerdService, busybox_image: ImageInfo, start: Started
) -> None:
    a, b = start(containerd_service), start(containerd_service)
    assert containerd_service.shim_group(a) == ""
    assert shim_of(containerd_service, a) != shim_of(containerd_service, b)


def test_grouped_tasks_share_a_shim_that_outlives_all_but_the_last(
    grouped: ContainerdService, start: Started
) -> None:
    a, b = start(grouped), start(grouped)
    shim = shim_of(grouped, a)
    assert shim_of(grouped, b) == shim
    assert grouped.shim_group(a) == grouped.shim_group(b) != ""
    grouped.stop_container(a, StopTaskOptions(timeout=10, force=True))
    grouped.delete_container(a)
    assert alive(shim)
    assert grouped.get_task_info(b).status == TaskStatus.RUNNING
    grouped.stop_container(b, StopTaskOptions(timeout=10, force=True))
    grouped.delete_container(b)
    wait_for(lambda: not alive(shim), timeout=30, what=f"shim {shim} to exit")


def test_the_group_is_in_the_spec_as_the_runc_shim_reads_it(
    grouped: ContainerdService, busybox_image: ImageInfo
) -> None:
    cid = f"g-{uuid.uuid4().hex[:10]}"
    grouped.create_container(
        CreateContainerRequest(id=cid, image_ref=BUSYBOX_REF, spec=ContainerSpec(cmd=GRACEFUL_CMD))
    )
    try:
        spec = json.loads(containers.get_record(grouped.connection, cid).spec.value)
        assert spec["annotations"][SHIM_GROUP_ANNOTATION] == grouped.shim_group(cid)
    finally:
        grouped.delete_container(cid)


def test_a_dead_shim_stops_its_group_and_the_tasks_start_again(
    grouped: ContainerdService, start: Started
) -> None:
    a, b = start(grouped), start(grouped)
    shim = shim_of(grouped, a)
    os.kill(shim, signal.SIGKILL)
    for cid in (a, b):
        wait_for(
            lambda cid=cid: not running(grouped, cid),
            timeout=30,
            what=f"task of {cid} to be seen stopped",
        )
    for cid in (a, b):
        # containerd drops a dead shim's tasks, though Create refuses for a while
        # after Get says NotFound: start_container waits that out.
        grouped.start_container(cid)
        assert grouped.get_task_info(cid).status == TaskStatus.RUNNING
    assert shim_of(grouped, a) == shim_of(grouped, b) != shim


@pytest.mark.parametrize("bad", [-1, True, 1.5, "2"])
def test_shim_groups_must_be_a_count(containerd_socket: str, bad: object) -> None:
    with pytest.raises(errors.InvalidArgument, match="shim_groups"):
        ContainerdService(containerd_socket, "x", shim_groups=bad)  # type: ignore[arg-type]
