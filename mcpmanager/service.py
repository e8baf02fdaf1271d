"""The ContainerService protocol: what the Manager needs from a container runtime.

It mirrors memoh's Go ``Service`` interface in snake_case. Two implementations
ship: :class:`mcpmanager.fake.FakeContainerService` (in memory) and
:class:`mcpmanager.containerd.ContainerdService` (containerd's gRPC API).
A backend that cannot do something raises :class:`mcpmanager.errors.NotSupported`.
"""

from __future__ import annotations

import os
from typing import BinaryIO, Protocol, runtime_checkable

from .types import (
    ContainerInfo,
    CreateContainerRequest,
    DeleteContainerOptions,
    DeleteTaskOptions,
    ImageInfo,
    MountInfo,
    NetworkResult,
    NetworkSetupRequest,
    PullImageOptions,
    ResourceLimits,
    SnapshotInfo,
    StopTaskOptions,
    TaskInfo,
    TaskMetrics,
)

__all__ = ["ContainerService"]


@runtime_checkable
class ContainerService(Protocol):
    """A container runtime as the Manager sees it. Implementations are thread-safe."""

    def pull_image(self, ref: str, opts: PullImageOptions | None = None) -> ImageInfo:
        """Fetch ``ref`` from its registry (and unpack it unless told not to)."""
        ...

    def get_image(self, ref: str) -> ImageInfo:
        """Return the local image ``ref``; NotFound if it is not there."""
        ...

    def list_images(self) -> list[ImageInfo]:
        """Return every local image."""
        ...

    def delete_image(self, ref: str, synchronous: bool = False) -> None:
        """Remove the local image ``ref`` (and wait for its garbage if ``synchronous``)."""
        ...

    def resolve_remote_digest(self, ref: str) -> str:
        """Ask the registry which digest ``ref`` names now, without pulling it."""
        ...

    def import_image(
        self, archive: str | os.PathLike[str] | BinaryIO, ref: str | None = None
    ) -> ImageInfo:
        """Load an OCI-layout or ``docker save`` tar archive as a local image."""
        ...

    def create_container(self, req: CreateContainerRequest) -> ContainerInfo:
        """Create a container with a fresh active snapshot from its image."""
        ...

    def get_container(self, id: str) -> ContainerInfo:
        """Return the container ``id``; NotFound if it does not exist."""
        ...

    def list_containers(self) -> list[ContainerInfo]:
        """Return every container of this backend's namespace."""
        ...

    def list_containers_by_label(self, key: str, value: str = "") -> list[ContainerInfo]:
        """Return containers carrying label ``key`` (with ``value`` when it is non-empty)."""
        ...

    def delete_container(self, id: str, opts: DeleteContainerOptions | None = None) -> None:
        """Delete a container whose task has been removed."""
        ...

    def start_container(self, id: str) -> None:
        """Create and start the container's task."""
        ...

    def stop_container(self, id: str, opts: StopTaskOptions | None = None) -> None:
        """Signal the task to stop and wait for it (SIGKILL after the timeout if forced)."""
        ...

    def delete_task(self, id: str, opts: DeleteTaskOptions | None = None) -> None:
        """Remove the container's task (killing it first when forced)."""
        ...

    def get_task_info(self, id: str) -> TaskInfo:
        """Return the state of the container's task; NotFound if it has none."""
        ...

    def list_tasks(self, filter: str = "") -> list[TaskInfo]:
        """Return every task matching ``filter`` (``field==value``; see :mod:`.taskfilter`)."""
        ...

    def setup_network(self, req: NetworkSetupRequest) -> NetworkResult:
        """Attach the running task to the network; idempotent."""
        ...

    def remove_network(self, req: NetworkSetupRequest) -> None:
        """Detach the container from the network and free its address."""
        ...

    def commit_snapshot(
        self, snapshotter: str, name: str, key: str, labels: dict[str, str] | None = None
    ) -> None:
        """Commit the active snapshot ``key`` as the read-only snapshot ``name``."""
        ...

    def list_snapshots(self, snapshotter: str, prefix: str = "") -> list[SnapshotInfo]:
        """Return the snapshots of ``snapshotter``; with ``prefix``, those named so at first.

        The prefix lets the Manager ask for one bot's snapshots without the
        cost of every bot's (a backend may filter on its side).
        """
        ...

    def prepare_snapshot(
        self, snapshotter: str, key: str, parent: str, labels: dict[str, str] | None = None
    ) -> None:
        """Create the active snapshot ``key`` on top of the committed ``parent``."""
        ...

    def remove_snapshot(self, snapshotter: str, key: str) -> None:
        """Remove snapshot ``key``; FailedPrecondition while a snapshot or container uses it."""
        ...

    def create_container_from_snapshot(self, req: CreateContainerRequest) -> ContainerInfo:
        """Create a container on the existing active snapshot ``req.snapshot_id``."""
        ...

    def snapshot_mounts(self, snapshotter: str, key: str) -> list[MountInfo]:
        """Return the mounts that show snapshot ``key``'s filesystem."""
        ...

    def set_container_labels(self, id: str, labels: dict[str, str]) -> ContainerInfo:
        """Replace the container's labels with ``labels``; NotSupported where they are fixed."""
        ...

    def update_resources(self, id: str, limits: ResourceLimits) -> None:
        """Make ``limits`` the CPU, memory and pids limits of the container.

        They apply to its running task at once (if it has one) and to every
        later task. NotSupported when the runtime cannot change them in place.
        """
        ...

    def task_metrics(self, id: str) -> TaskMetrics:
        """One reading of the task's CPU time, memory and pids.

        NotFound if the container has no task; FailedPrecondition if it is not running.
        """
        ...

    def snapshot_usage(self, snapshotter: str, key: str) -> int:
        """Bytes snapshot ``key`` holds itself (not counting its parents)."""
        ...

    def close(self) -> None:
        """Release connections; the service is not used afterwards."""
        ...
