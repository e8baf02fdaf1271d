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

from . import errors
from ._format import short
from .refs import parse_reference

__all__ = [
    "BotMetrics",
    "BotOptions",
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
    "OptionsUpdate",
    "PullImageOptions",
    "PullProgress",
    "ResourceLimits",
    "SnapshotInfo",
    "StopTaskOptions",
    "TaskInfo",
    "TaskMetrics",
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


MIN_MEMORY_BYTES = 6 * 1024 * 1024
"""The smallest memory limit runtimes accept (runc and Docker refuse less than 6 MiB)."""
MIN_CPU_MILLICORES = 10
"""The smallest CPU limit: 10 millicores is a CFS quota of 1 ms per 100 ms, the kernel's floor."""


def _limit(minimum: int) -> Callable[[object, attrs.Attribute[int], object], None]:
    """Validator: an int (not a bool) that is 0 (unlimited) or at least ``minimum``."""

    def check(_instance: object, attribute: attrs.Attribute[int], value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise errors.InvalidArgument(
                f"resource limit {attribute.name} must be an int, got {value!r}"
            )
        if value < 0 or 0 < value < minimum:
            floor = f" or at least {minimum}" if minimum > 1 else " or more"
            raise errors.InvalidArgument(
                f"resource limit {attribute.name} must be 0 (unlimited){floor}, got {value}"
            )

    return check


@attrs.frozen
class ResourceLimits:
    """What one bot may use; 0 means unlimited (memoh's ``ResourceLimits``, plus pids).

    ``cpu_millicores`` is a CFS quota (1000 = one whole core), ``memory_bytes``
    a hard limit (the kernel's OOM killer ends what allocates past it),
    ``pids`` the most processes and threads the bot may have at once, and
    ``storage_bytes`` a soft limit on its root filesystem that metrics report
    against (no snapshotter here enforces it). Bad values are InvalidArgument.
    """

    cpu_millicores: int = attrs.field(default=0, validator=_limit(MIN_CPU_MILLICORES))
    memory_bytes: int = attrs.field(default=0, validator=_limit(MIN_MEMORY_BYTES))
    pids: int = attrs.field(default=0, validator=_limit(1))
    storage_bytes: int = attrs.field(default=0, validator=_limit(1))

    @property
    def unlimited(self) -> bool:
        """Whether no limit at all is set."""
        return not (self.cpu_millicores or self.memory_bytes or self.pids or self.storage_bytes)

    @property
    def runtime_limited(self) -> bool:
        """Whether the runtime enforces anything (CPU, memory or pids)."""
        return bool(self.cpu_millicores or self.memory_bytes or self.pids)


def _image_option(_instance: object, _attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise errors.InvalidArgument(f"bot option image must be a str, got {value!r}")
    if value:
        parse_reference(value)


def _env_option(value: object) -> tuple[str, ...]:
    """Converter: ``KEY=value`` strings to a tuple; InvalidArgument for anything else."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise errors.InvalidArgument(
            f"bot option env must be a list or tuple of 'KEY=value' strings, got {value!r}"
        )
    for entry in value:
        if not isinstance(entry, str) or "\0" in entry:
            raise errors.InvalidArgument(f"bot option env: bad entry {entry!r}")
        key, sep, _ = entry.partition("=")
        if not sep or not key.strip() or key != key.strip():
            raise errors.InvalidArgument(
                f"bot option env: entry {entry!r} is not 'KEY=value' with a non-empty KEY"
            )
    return tuple(value)


def _limits_option(
    _instance: object, _attribute: attrs.Attribute[ResourceLimits | None], value: object
) -> None:
    if value is not None and not isinstance(value, ResourceLimits):
        raise errors.InvalidArgument(
            f"bot option limits must be a ResourceLimits or None, got {value!r}"
        )


@attrs.frozen
class BotOptions:
    """Per-bot choices that override :class:`~mcpmanager.ManagerConfig` for one bot.

    ``image`` (empty: the configured one) is what the bot's container is made
    from; ``env`` (``KEY=value`` entries) is added after the configured env;
    ``limits`` (None: ``ManagerConfig.limits``) replaces the default limits
    as a whole. Stored with the container, so restarts, snapshot moves,
    rollback, reconcile and a new Manager process keep them. Bad values are
    InvalidArgument when the options are made.
    """

    image: str = attrs.field(default="", validator=_image_option)
    env: tuple[str, ...] = attrs.field(default=(), converter=_env_option)
    limits: ResourceLimits | None = attrs.field(default=None, validator=_limits_option)


@attrs.frozen
class BotMetrics:
    """What a running bot uses now (:meth:`mcpmanager.Manager.metrics`).

    ``cpu_percent`` is of one core (200.0 = two cores busy), from two readings
    of ``cpu_usage_ns`` about 200 ms apart; ``memory_limit_bytes`` is 0 when
    unlimited; ``data_bytes`` is the size of the bot's active snapshot (what it
    wrote over its image), reported against ``storage_limit_bytes`` (0: none).
    """

    sampled_at: datetime
    cpu_usage_ns: int
    cpu_percent: float
    memory_bytes: int
    memory_limit_bytes: int
    pids: int
    data_bytes: int
    storage_limit_bytes: int = 0

    @property
    def storage_over_limit(self) -> bool:
        """Whether ``data_bytes`` exceeds the bot's storage soft limit (never when unlimited)."""
        return bool(self.storage_limit_bytes) and self.data_bytes > self.storage_limit_bytes


@attrs.frozen
class OptionsUpdate:
    """What :meth:`mcpmanager.Manager.update_options` did with a bot's new options.

    ``changed`` names the fields that differ from the stored ones (``image``,
    ``env``, ``limits``); ``live`` those applied to the running task without
    a restart; ``pending`` those waiting for the bot's next recreate (its
    next start from stopped, snapshot move, or ``recreate=True``);
    ``recreated`` says the container was remade now (its ``/data`` kept).
    ``stored`` is False when the backend cannot relabel a container (Docker):
    the options then live only in the running task until it is recreated.
    """

    bot_id: str
    changed: tuple[str, ...] = ()
    live: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    recreated: bool = False
    created: bool = False
    stored: bool = True

    @property
    def recreate_pending(self) -> bool:
        """Whether some of the new options wait for the bot's next recreate."""
        return bool(self.pending)


@attrs.frozen
class TaskMetrics:
    """One reading of a task's cgroup (:meth:`ContainerService.task_metrics`).

    ``cpu_usage_ns`` is the CPU time used since the task started; a limit of
    0 means none is set.
    """

    cpu_usage_ns: int
    memory_bytes: int
    memory_limit_bytes: int = 0
    pids: int = 0
    pids_limit: int = 0


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
    limits: ResourceLimits | None = None
    """CPU, memory and pids limits the runtime applies (None or zeros: unlimited)."""


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
