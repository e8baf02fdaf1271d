"""Value types passed between the Manager and a ContainerService.

All are frozen attrs classes with slots: cheap to build, hashable where their
fields are, and safe to share between threads.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

import attrs

from ._format import short

__all__ = [
    "BotStatus",
    "ContainerInfo",
    "ContainerSpec",
    "CreateContainerRequest",
    "DeleteContainerOptions",
    "DeleteTaskOptions",
    "ImageInfo",
    "MountInfo",
    "MountSpec",
    "NetworkResult",
    "NetworkSetupRequest",
    "PullImageOptions",
    "PullProgress",
    "SnapshotInfo",
    "StopTaskOptions",
    "TaskInfo",
    "TaskStatus",
    "as_mount_tuple",
    "as_str_tuple",
]


def _frozen_map(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return dict(value or {})


def as_str_tuple(value: Iterable[str] | None) -> tuple[str, ...]:
    """Attrs converter: any iterable of strings (but not a lone str) to a tuple."""
    if isinstance(value, str):
        raise TypeError("expected a sequence of strings, got a single str")
    return tuple(value or ())


def as_mount_tuple(value: Iterable[MountSpec]) -> tuple[MountSpec, ...]:
    """Attrs converter: any iterable of MountSpec to a tuple."""
    return tuple(value)


class TaskStatus(enum.Enum):
    """State of a container's task (its running process), as containerd reports it."""

    UNKNOWN = "unknown"
    CREATED = "created"
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"


@attrs.frozen
class ContainerInfo:
    """A container record: metadata only, independent of whether a task runs."""

    id: str
    image: str
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, repr=short)
    snapshotter: str = ""
    snapshot_key: str = ""
    runtime: str = ""
    created_at: datetime | None = attrs.field(default=None, repr=short)
    updated_at: datetime | None = attrs.field(default=None, repr=short)


@attrs.frozen
class ImageInfo:
    """A local image; ``id`` is its target digest (``sha256:...``)."""

    name: str
    id: str
    tags: tuple[str, ...] = attrs.field(default=(), converter=as_str_tuple)


@attrs.frozen
class TaskInfo:
    """The task of one container."""

    container_id: str
    id: str
    pid: int
    status: TaskStatus
    exit_code: int = 0


@attrs.frozen
class SnapshotInfo:
    """A snapshot in a snapshotter; ``kind`` is ``active``, ``committed`` or ``view``."""

    name: str
    parent: str
    kind: str
    created: datetime | None = attrs.field(default=None, repr=short)
    updated: datetime | None = attrs.field(default=None, repr=short)
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, repr=short)


@attrs.frozen
class MountInfo:
    """One mount that makes up a snapshot's filesystem (as mount(2) takes it)."""

    type: str
    source: str
    target: str = ""
    options: tuple[str, ...] = attrs.field(default=(), converter=as_str_tuple)


@attrs.frozen
class MountSpec:
    """A mount to add to a container's runtime spec."""

    destination: str
    type: str
    source: str
    options: tuple[str, ...] = attrs.field(default=(), converter=as_str_tuple)


@attrs.frozen
class ContainerSpec:
    """What the container runs and with which environment and mounts.

    ``cmd`` empty means the image's own entrypoint and command.
    """

    cmd: tuple[str, ...] = attrs.field(default=(), converter=as_str_tuple, repr=short)
    env: tuple[str, ...] = attrs.field(default=(), converter=as_str_tuple, repr=short)
    workdir: str = ""
    user: str = ""
    mounts: tuple[MountSpec, ...] = attrs.field(default=(), converter=as_mount_tuple, repr=short)
    dns: tuple[str, ...] = attrs.field(default=(), converter=as_str_tuple)
    tty: bool = False


@attrs.frozen
class CreateContainerRequest:
    """Everything a backend needs to create a container.

    With ``snapshot_id`` set (``create_container_from_snapshot``), the
    container uses that existing active snapshot as its root filesystem;
    otherwise a new one named after the container is prepared from the image.
    """

    id: str
    image_ref: str
    snapshot_id: str = ""
    snapshotter: str = ""
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, repr=short)
    spec: ContainerSpec = attrs.field(factory=ContainerSpec)


@attrs.frozen
class NetworkSetupRequest:
    """Which container's network to set up or tear down, and where CNI lives."""

    container_id: str
    pid: int = 0
    cni_bin_dir: str = ""
    cni_conf_dir: str = ""


@attrs.frozen
class NetworkResult:
    """The outcome of a network setup: the container's first non-loopback IP."""

    ip: str


@attrs.frozen
class PullProgress:
    """Progress of one layer (or other blob) during a pull."""

    ref: str
    digest: str
    done: int
    total: int


@attrs.frozen
class PullImageOptions:
    """How to pull: unpack into ``snapshotter`` and report progress per blob."""

    unpack: bool = True
    snapshotter: str = ""
    progress: Callable[[PullProgress], None] | None = None


@attrs.frozen
class StopTaskOptions:
    """How to stop a task: ``signal``, wait up to ``timeout`` s, then SIGKILL if ``force``."""

    signal: int = int(signal.SIGTERM)
    timeout: float = 10.0
    force: bool = False


@attrs.frozen
class DeleteTaskOptions:
    """``force`` kills a task that still runs before deleting it."""

    force: bool = False


@attrs.frozen
class DeleteContainerOptions:
    """``cleanup_snapshot`` also removes the container's active snapshot."""

    cleanup_snapshot: bool = True


@attrs.frozen
class BotStatus:
    """What the backend says of one bot right now (:meth:`mcpmanager.Manager.status`).

    ``exists`` is False when the bot has no container (then ``status`` is
    UNKNOWN and the rest empty); a container without a task is STOPPED.
    ``ip`` is the address the Manager knows for a running bot, or ``""``.
    """

    bot_id: str
    container_id: str
    exists: bool
    status: TaskStatus = TaskStatus.UNKNOWN
    pid: int = 0
    ip: str = ""
    image: str = ""
    created_at: datetime | None = attrs.field(default=None, repr=short)
    updated_at: datetime | None = attrs.field(default=None, repr=short)

    @property
    def running(self) -> bool:
        """Whether the bot's task runs."""
        return self.status is TaskStatus.RUNNING
