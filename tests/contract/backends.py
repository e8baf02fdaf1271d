"""What the contract suite needs from a backend, and the list of backends it runs on.

A backend joins the suite with two things: an entry in :data:`BACKENDS` (its
name, the fixture that yields its :class:`Backend`, and its service class for
the signature check) and that fixture, usually in ``tests/contract/conftest.py``.
The fixture builds a :class:`Backend`: a service plus the few facts and
handles that differ between backends (an image that is local, one a registry
serves, a registry that is down, a network). Everything else is the tests'.
"""

from __future__ import annotations

import contextlib
import signal
import uuid
from collections.abc import Callable, Iterator

import attrs
import pytest

from mcpmanager import errors
from mcpmanager.containerd import ContainerdService
from mcpmanager.docker import DockerService
from mcpmanager.fake import FakeContainerService
from mcpmanager.service import ContainerService
from mcpmanager.types import (
    ContainerInfo,
    ContainerSpec,
    CreateContainerRequest,
    DeleteContainerOptions,
    DeleteTaskOptions,
    NetworkSetupRequest,
    StopTaskOptions,
)
from tests.harness.common import unavailable

SNAPSHOTTER = "overlayfs"
"""The snapshotter every backend offers; the suite's snapshots live there."""

LONG_RUNNING = ("/bin/sh", "-c", "sleep 1000")
"""A command that keeps a task running until it is killed."""

KILL = StopTaskOptions(signal=int(signal.SIGKILL), timeout=10.0, force=True)
"""Stop options that end :data:`LONG_RUNNING` at once on every backend."""


@attrs.frozen
class BackendEntry:
    """One backend the suite runs on: its name, its fixture and its service class.

    ``integration`` marks its tests ``integration`` (real components needed).
    """

    name: str
    fixture: str
    service_class: type[object]
    integration: bool = True


BACKENDS: tuple[BackendEntry, ...] = (
    BackendEntry("fake", "fake_backend", FakeContainerService, integration=False),
    BackendEntry("containerd", "containerd_backend", ContainerdService),
    BackendEntry("docker", "docker_backend", DockerService),
)
"""Every backend the contract suite runs on (add a line and a fixture for a new one)."""


@attrs.define
class Backend:
    """A service under test and the facts about it the tests need.

    ``image`` is local and runs :data:`LONG_RUNNING`; ``archive`` is an OCI
    archive of the image ``archive_ref`` (never local before a test);
    ``remote_ref`` (digest ``remote_digest``) is served by a reachable
    registry and is not local when a test starts (None without a registry,
    ``remote_reason`` says why); ``absent_ref`` names an image that registry
    does not have (None when the backend cannot say so); ``registry_down()`` yields a
    reference whose registry cannot be reached; ``network`` makes the setup
    request for a container (None when the backend has no network here, with
    ``network_reason`` saying why). Objects made through :meth:`new_id` are
    removed by :meth:`cleanup`.

    What a backend truly cannot do as containerd does is stated, not hidden:
    ``runtime`` is what its ContainerInfo.runtime says; ``mounts`` is False
    when snapshot_mounts is NotSupported (its data goes through the agent);
    ``cni`` is False when its network ignores the request's CNI directories;
    ``shortest_id`` is the shortest container ID it can name (InvalidArgument below).
    """

    name: str
    service: ContainerService
    image: str
    archive: str
    archive_ref: str
    archive_digest: str
    remote_ref: str | None
    remote_digest: str
    absent_ref: str | None
    registry_down: Callable[[], contextlib.AbstractContextManager[str]]
    remote_reason: str = ""
    network: Callable[[str], NetworkSetupRequest] | None = None
    network_reason: str = ""
    fresh_service: Callable[[], ContainerService] | None = None
    runtime: str = "io.containerd.runc.v2"
    mounts: bool = True
    cni: bool = True
    shortest_id: int = 1
    ids: list[str] = attrs.field(factory=list)

    def new_id(self, prefix: str = "c") -> str:
        """A fresh container ID (or snapshot key) that :meth:`cleanup` will remove."""
        value = f"{prefix}-{uuid.uuid4().hex[:10]}"
        self.ids.append(value)
        return value

    def create(
        self, cid: str | None = None, *, labels: dict[str, str] | None = None, image: str = ""
    ) -> ContainerInfo:
        """Create a container running :data:`LONG_RUNNING` from ``image`` (default: ours)."""
        req = CreateContainerRequest(
            id=self.new_id() if cid is None else cid,
            image_ref=image or self.image,
            labels=labels or {},
            spec=ContainerSpec(cmd=LONG_RUNNING),
        )
        return self.service.create_container(req)

    def remote(self) -> tuple[str, str]:
        """``(remote_ref, its digest)``; skips (or fails) when there is no registry."""
        if self.remote_ref is None:
            unavailable(f"{self.name}: no registry: {self.remote_reason}")
        return self.remote_ref, self.remote_digest

    def absent(self) -> str:
        """A reference its reachable registry does not have; skips when there is none."""
        if self.absent_ref is None:
            pytest.skip(f"{self.name}: its registry serves every reference")
        return self.absent_ref

    def network_request(self, cid: str) -> NetworkSetupRequest:
        """The network request for ``cid``; skips (or fails) when there is no network."""
        if self.network is None:
            unavailable(f"{self.name}: no network: {self.network_reason}")
        return self.network(cid)

    def cleanup(self) -> None:
        """Remove every container and snapshot made under an ID from :meth:`new_id`."""
        mine = set(self.ids)
        svc = self.service
        for info in svc.list_containers():
            if info.id in mine:
                if self.network is not None:
                    with contextlib.suppress(errors.MCPManagerError):
                        svc.remove_network(self.network(info.id))
                with contextlib.suppress(errors.NotFound):
                    svc.delete_task(info.id, DeleteTaskOptions(force=True))
                with contextlib.suppress(errors.NotFound):
                    svc.delete_container(info.id, DeleteContainerOptions(cleanup_snapshot=True))
        for _ in range(4):  # children before parents
            left = [s.name for s in svc.list_snapshots(SNAPSHOTTER) if _owned(s.name, mine)]
            for name in left:
                with contextlib.suppress(errors.NotFound, errors.FailedPrecondition):
                    svc.remove_snapshot(SNAPSHOTTER, name)
        for ref in (self.remote_ref, self.archive_ref):
            if ref is None:
                continue
            with contextlib.suppress(errors.NotFound):
                svc.delete_image(ref)
        self.ids.clear()


def _owned(name: str, ids: set[str]) -> bool:
    return any(name == i or name.startswith(i + "-") for i in ids)


@contextlib.contextmanager
def unreachable_fake(fake: FakeContainerService, ref: str) -> Iterator[str]:
    """The fake's registry switched off for the duration; yields ``ref``."""
    fake.remote_unreachable = True
    try:
        yield ref
    finally:
        fake.remote_unreachable = False
