"""An in-memory ContainerService for tests, notebooks and laptops without containerd.

:class:`FakeContainerService` behaves like the containerd backend as far as the
Manager can tell: the same validation, the same errors, snapshots stored as real
directories (so data export, import and versions move real files), loopback
addresses as container IPs and, with ``agents=True``, a real agent serving each
running container. Fault injection (:meth:`FakeContainerService.fail`,
``remote_unreachable``, ``mounts_supported``) and a call log (``calls``) make
failure paths easy to test.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any, BinaryIO, ParamSpec, Protocol, TypeVar

import attrs

from . import errors, identifiers, taskfilter
from ._fake_addresses import ADDRESSES
from ._fake_calls import Call, CallLog
from ._fake_registry import SimulatedRegistry, read_archive_index
from ._fake_snapshots import SnapshotTree, now, tree_bytes
from ._fake_usage import Usage, metrics
from ._log import get_logger
from .naming import DEFAULT_SNAPSHOTTER
from .refs import name_candidates, normalize_name
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
    PullProgress,
    ResourceLimits,
    SnapshotInfo,
    StopTaskOptions,
    TaskInfo,
    TaskMetrics,
    TaskStatus,
)

__all__ = ["DEFAULT_SNAPSHOTTER", "Call", "FakeContainerService", "Usage"]

log = get_logger("mcpmanager.fake")

RUNTIME = "io.containerd.runc.v2"
AGENT_PORT = 9090

P = ParamSpec("P")
R = TypeVar("R")


class _Agent(Protocol):
    def stop(self, grace: float | None = ...) -> None: ...


@attrs.define
class _Task:
    pid: int
    status: TaskStatus
    exit_code: int = 0
    started_ns: int = attrs.field(factory=time.monotonic_ns)


def _require(value: str, what: str) -> None:
    if not value:
        raise errors.InvalidArgument(f"{what} must not be empty")


def _check_cni_dirs(req: NetworkSetupRequest) -> None:
    """Both CNI dirs must be named, as containerd's backend requires (they are not read)."""
    for what, value in (("cni_conf_dir", req.cni_conf_dir), ("cni_bin_dir", req.cni_bin_dir)):
        if not value:
            raise errors.InvalidArgument(f"container {req.container_id} network: {what} is empty")


def _operation(method: Callable[P, R]) -> Callable[P, R]:
    """Record the call in ``calls`` and raise an injected fault if one is due."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        self = args[0]
        assert isinstance(self, FakeContainerService)
        self._enter(method.__name__, args[1:], dict(kwargs))
        return method(*args, **kwargs)

    return wrapper


class FakeContainerService:
    """A complete in-memory :class:`~mcpmanager.service.ContainerService`.

    ``root`` is where snapshot directories live (a temporary directory, removed
    by :meth:`close`, when None). With ``agents=True`` every running container
    with a network gets a real agent on its loopback IP and port 9090, rooted at
    its snapshot directory (file calls stay inside it; ``exec`` runs commands
    confined to it with bubblewrap where the machine allows, else on the host
    in that directory, with a warning). Thread-safe.
    """

    def __init__(self, *, root: str | os.PathLike[str] | None = None, agents: bool = False) -> None:
        self._owns_root = root is None
        self._root = os.fspath(root) if root is not None else tempfile.mkdtemp(prefix="mcp-fake-")
        os.makedirs(self._root, exist_ok=True)
        self._agents_enabled = agents
        self._lock = threading.RLock()
        self._images: dict[str, ImageInfo] = {}
        self._registry = SimulatedRegistry()
        self._containers: dict[str, ContainerInfo] = {}
        self._specs: dict[str, CreateContainerRequest] = {}
        self._tasks: dict[str, _Task] = {}
        self._snaps = SnapshotTree(self._root)
        self._ips: dict[str, str] = {}
        self._agents: dict[str, _Agent] = {}
        self._log = CallLog()
        self._usage: dict[str, Usage] = {}
        self._pids = itertools.count(4000)
        self._closed = False
        self.calls: list[Call] = self._log.calls
        """Every protocol call made, in order."""
        self.mounts_supported = True
        """When False, :meth:`snapshot_mounts` raises NotSupported (like a VM backend)."""

    # -- test controls -------------------------------------------------------

    @property
    def serves_agents(self) -> bool:
        """Whether running containers have an agent (``agents=True``); the Manager
        waits for readiness only then."""
        return self._agents_enabled

    @property
    def root(self) -> str:
        """Directory holding the snapshot directories."""
        return self._root

    def fail(self, method: str, error: BaseException | type[BaseException], times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` raise ``error``.

        Faults queue up: a second ``fail`` for the same method takes effect
        after the first is used up.
        """
        if not callable(getattr(self, method, None)) or method.startswith("_"):
            raise errors.InvalidArgument(f"FakeContainerService has no method {method!r}")
        with self._lock:
            self._log.fail(method, error, times)

    @property
    def remote_unreachable(self) -> bool:
        """When True, the simulated registry cannot be reached (pull and resolve fail)."""
        return self._registry.unreachable

    @remote_unreachable.setter
    def remote_unreachable(self, value: bool) -> None:
        self._registry.unreachable = value

    def set_remote_digest(self, ref: str, digest: str) -> None:
        """Make the simulated registry serve ``digest`` for ``ref`` from now on."""
        self._registry.serve(ref, digest)

    def remove_remote(self, ref: str) -> None:
        """Make the simulated registry answer NotFound for ``ref`` (until it is set again)."""
        self._registry.remove(ref)

    def set_local_digest(self, ref: str, digest: str) -> None:
        """Pretend the local copy of ``ref`` has ``digest`` (adding the image if absent)."""
        name = normalize_name(ref)
        with self._lock:
            self._images[name] = ImageInfo(name=name, id=digest, tags=(name,))

    def snapshot_path(self, snapshotter: str, key: str) -> str:
        """The directory holding snapshot ``key``'s files (NotFound if it does not exist)."""
        return self._snaps.get(snapshotter, key).path

    def set_usage(self, container_id: str, usage: Usage) -> None:
        """Make the container's task report ``usage`` (capped by its limits) from now on."""
        with self._lock:
            self._usage[container_id] = usage

    def count(self, method: str) -> int:
        """How many times ``method`` has been called."""
        with self._lock:
            return self._log.count(method)

    def _enter(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        with self._lock:
            self._log.enter(method, args, kwargs)

    # -- images --------------------------------------------------------------

    @_operation
    def pull_image(self, ref: str, opts: PullImageOptions | None = None) -> ImageInfo:
        """Fetch ``ref`` from the simulated registry, stored under its full name."""
        opts = opts or PullImageOptions()
        name = normalize_name(ref)
        image = self._pull(name, opts.snapshotter if opts.unpack else None)
        if opts.progress is not None:
            for digest, size in self._registry.layers(image.id):
                for done in (0, size // 2, size):
                    opts.progress(PullProgress(ref=name, digest=digest, done=done, total=size))
        return image

    def _pull(self, name: str, snapshotter: str | None) -> ImageInfo:
        """Store what the registry serves for ``name``; unpack into ``snapshotter`` unless None."""
        with self._lock:
            image = ImageInfo(name=name, id=self._registry.digest(name), tags=(name,))
            self._images[name] = image
            if snapshotter is not None:
                self._image_rootfs(snapshotter or DEFAULT_SNAPSHOTTER, image)
        log.info("fake: pulled image %s (%s)", name, image.id)
        return image

    def _lookup_image(self, ref: str) -> ImageInfo:
        for candidate in name_candidates(ref):
            if candidate in self._images:
                return self._images[candidate]
        raise errors.NotFound(f"image {ref} not found")

    def _image_for(self, ref: str, snapshotter: str) -> ImageInfo:
        """The local image ``ref``, pulled first when it is missing (as containerd's backend)."""
        try:
            return self._lookup_image(ref)
        except errors.NotFound:
            log.info("fake: image %s is not local; pulling it", ref)
        return self._pull(normalize_name(ref), snapshotter)

    @_operation
    def get_image(self, ref: str) -> ImageInfo:
        """Return the local image ``ref``, trying its ``docker.io/library/`` form too."""
        with self._lock:
            return self._lookup_image(ref)

    @_operation
    def list_images(self) -> list[ImageInfo]:
        """Return every local image."""
        with self._lock:
            return list(self._images.values())

    @_operation
    def delete_image(self, ref: str, synchronous: bool = False) -> None:
        """Forget the local image ``ref``."""
        del synchronous
        with self._lock:
            image = self._lookup_image(ref)
            del self._images[image.name]

    @_operation
    def resolve_remote_digest(self, ref: str) -> str:
        """Return the digest the simulated registry serves for ``ref``."""
        name = normalize_name(ref)
        with self._lock:
            return self._registry.digest(name)

    @_operation
    def import_image(
        self, archive: str | os.PathLike[str] | BinaryIO, ref: str | None = None
    ) -> ImageInfo:
        """Register the image described by an OCI-layout or ``docker save`` tar archive."""
        name, digest = read_archive_index(archive)
        name = normalize_name(ref) if ref else name
        if not name:
            raise errors.InvalidArgument("archive names no image; pass ref=")
        image = ImageInfo(name=name, id=digest, tags=(name,))
        with self._lock:
            self._images[name] = image
        return image

    def _image_rootfs(self, snapshotter: str, image: ImageInfo) -> str:
        """Committed snapshot standing for the unpacked image (empty /data tree)."""
        key = "sha256:" + hashlib.sha256(image.id.encode()).hexdigest()
        if not self._snaps.has(snapshotter, key):
            snap = self._snaps.new(snapshotter, key, parent="", kind="committed")
            for sub in ("data", "etc", "tmp"):
                os.makedirs(os.path.join(snap.path, sub), exist_ok=True)
        return key

    # -- containers ----------------------------------------------------------

    @_operation
    def create_container(self, req: CreateContainerRequest) -> ContainerInfo:
        """Create a container with a fresh active snapshot (keyed by its ID) from its image.

        A missing image is pulled from the simulated registry first (Unavailable
        while ``remote_unreachable``), as the containerd backend does.
        """
        if req.snapshot_id:
            return self._from_snapshot(req)
        identifiers.validate(req.id, "container ID")
        snapshotter = req.snapshotter or DEFAULT_SNAPSHOTTER
        with self._lock:
            self._check_new_container(req.id)
            if self._snaps.has(snapshotter, req.id):
                raise errors.AlreadyExists(
                    f"snapshot {req.id} already exists in {snapshotter}; "
                    "it may hold an earlier container's data and is left untouched"
                )
            image = self._image_for(req.image_ref, snapshotter)
            parent = self._image_rootfs(snapshotter, image)
            self._snaps.new(snapshotter, req.id, parent=parent, kind="active")
            return self._add_container(req, image, snapshotter, req.id)

    @_operation
    def create_container_from_snapshot(self, req: CreateContainerRequest) -> ContainerInfo:
        """Create a container on the existing active snapshot ``req.snapshot_id``.

        A missing image is pulled first, as :meth:`create_container` does.
        """
        return self._from_snapshot(req)

    def _from_snapshot(self, req: CreateContainerRequest) -> ContainerInfo:
        identifiers.validate(req.id, "container ID")
        _require(req.snapshot_id, "snapshot ID")
        snapshotter = req.snapshotter or DEFAULT_SNAPSHOTTER
        with self._lock:
            self._check_new_container(req.id)
            snap = self._snaps.get(snapshotter, req.snapshot_id)
            if snap.kind != "active":
                raise errors.FailedPrecondition(
                    f"snapshot {req.snapshot_id} is {snap.kind}; a container needs an active one"
                )
            image = self._image_for(req.image_ref, snapshotter)
            return self._add_container(req, image, snapshotter, req.snapshot_id)

    def _check_new_container(self, container_id: str) -> None:
        if container_id in self._containers:
            raise errors.AlreadyExists(f"container {container_id} already exists")

    def _add_container(
        self, req: CreateContainerRequest, image: ImageInfo, snapshotter: str, key: str
    ) -> ContainerInfo:
        stamp = now()
        info = ContainerInfo(
            id=req.id,
            image=image.name,
            labels=dict(req.labels),
            snapshotter=snapshotter,
            snapshot_key=key,
            runtime=RUNTIME,
            created_at=stamp,
            updated_at=stamp,
        )
        self._containers[req.id] = info
        self._specs[req.id] = req
        return info

    def _container(self, container_id: str) -> ContainerInfo:
        identifiers.validate(container_id, "container ID")
        try:
            return self._containers[container_id]
        except KeyError:
            raise errors.NotFound(f"container {container_id} not found") from None

    @_operation
    def get_container(self, id: str) -> ContainerInfo:
        """Return container ``id``."""
        with self._lock:
            return self._container(id)

    @_operation
    def list_containers(self) -> list[ContainerInfo]:
        """Return every container."""
        with self._lock:
            return list(self._containers.values())

    @_operation
    def list_containers_by_label(self, key: str, value: str = "") -> list[ContainerInfo]:
        """Return the containers that carry label ``key`` (equal to ``value`` if given)."""
        _require(key, "label key")
        with self._lock:
            return [
                c
                for c in self._containers.values()
                if key in c.labels and (not value or c.labels[key] == value)
            ]

    def container_spec(self, container_id: str) -> CreateContainerRequest:
        """The request a container was created with (for assertions in tests)."""
        with self._lock:
            self._container(container_id)
            return self._specs[container_id]

    @_operation
    def delete_container(self, id: str, opts: DeleteContainerOptions | None = None) -> None:
        """Delete a container, killing and removing its task first (as containerd's backend)."""
        opts = opts or DeleteContainerOptions()
        with self._lock:
            info = self._container(id)
            self._tasks.pop(id, None)
            agent = self._release_network(id)
            del self._containers[id]
            del self._specs[id]
            if opts.cleanup_snapshot:
                self._snaps.drop(info.snapshotter, info.snapshot_key)
        if agent is not None:
            agent.stop(0)

    # -- tasks ---------------------------------------------------------------

    @_operation
    def start_container(self, id: str) -> None:
        """Create and start the container's task, replacing a stopped one.

        AlreadyExists while the task runs.
        """
        with self._lock:
            self._container(id)
            task = self._tasks.get(id)
            if task is not None and task.status is not TaskStatus.STOPPED:
                raise errors.AlreadyExists(f"container {id} already has a {task.status.value} task")
            self._tasks[id] = _Task(pid=next(self._pids), status=TaskStatus.RUNNING)

    @_operation
    def stop_container(self, id: str, opts: StopTaskOptions | None = None) -> None:
        """Stop the task; a container with no running task is left as it is."""
        del opts
        with self._lock:
            self._container(id)
            task = self._tasks.get(id)
            if task is None or task.status is not TaskStatus.RUNNING:
                return
            task.status = TaskStatus.STOPPED
            task.exit_code = 137
            agent = self._agents.pop(id, None)
        if agent is not None:
            agent.stop(0)

    @_operation
    def delete_task(self, id: str, opts: DeleteTaskOptions | None = None) -> None:
        """Remove the task; a running one only when forced."""
        opts = opts or DeleteTaskOptions()
        with self._lock:
            self._container(id)
            task = self._tasks.get(id)
            if task is None:
                raise errors.NotFound(f"container {id} has no task")
            if task.status is TaskStatus.RUNNING and not opts.force:
                raise errors.FailedPrecondition(f"task of container {id} is running")
            del self._tasks[id]
            agent = self._agents.pop(id, None)
        if agent is not None:
            agent.stop(0)

    def _task_info(self, container_id: str, task: _Task) -> TaskInfo:
        return TaskInfo(
            container_id=container_id,
            id=container_id,
            pid=task.pid,
            status=task.status,
            exit_code=task.exit_code,
        )

    @_operation
    def get_task_info(self, id: str) -> TaskInfo:
        """Return the container's task; NotFound if it has none."""
        with self._lock:
            self._container(id)
            task = self._tasks.get(id)
            if task is None:
                raise errors.NotFound(f"container {id} has no task")
            return self._task_info(id, task)

    @_operation
    def list_tasks(self, filter: str = "") -> list[TaskInfo]:
        """Return every task matching ``filter`` (see :mod:`mcpmanager.taskfilter`)."""
        with self._lock:
            tasks = [self._task_info(cid, t) for cid, t in self._tasks.items()]
        return taskfilter.select(tasks, filter)

    # -- network -------------------------------------------------------------

    @_operation
    def setup_network(self, req: NetworkSetupRequest) -> NetworkResult:
        """Give the running container a loopback IP (the same one on every call)."""
        with self._lock:
            info = self._container(req.container_id)
            task = self._tasks.get(req.container_id)
            if task is None or task.status is not TaskStatus.RUNNING:
                raise errors.FailedPrecondition(
                    f"container {req.container_id} has no running task to attach a network to"
                )
            _check_cni_dirs(req)
            ip = self._ips.get(req.container_id)
            if ip is None:
                ip = ADDRESSES.allocate()
                self._ips[req.container_id] = ip
            if self._agents_enabled and req.container_id not in self._agents:
                path = self._snaps.get(info.snapshotter, info.snapshot_key).path
                self._agents[req.container_id] = _start_agent(path, ip)
        return NetworkResult(ip=ip)

    @_operation
    def remove_network(self, req: NetworkSetupRequest) -> None:
        """Release the container's IP; nothing to do if it has none."""
        identifiers.validate(req.container_id, "container ID")
        _check_cni_dirs(req)
        with self._lock:
            agent = self._release_network(req.container_id)
        if agent is not None:
            agent.stop(0)

    def _release_network(self, container_id: str) -> _Agent | None:
        ip = self._ips.pop(container_id, None)
        if ip is not None:
            ADDRESSES.release(ip)
        return self._agents.pop(container_id, None)

    def container_ip(self, container_id: str) -> str:
        """The IP the fake network gave the container, or ``""``."""
        with self._lock:
            return self._ips.get(container_id, "")

    # -- snapshots -----------------------------------------------------------

    @_operation
    def commit_snapshot(
        self, snapshotter: str, name: str, key: str, labels: dict[str, str] | None = None
    ) -> None:
        """Turn active snapshot ``key`` into committed snapshot ``name`` (``key`` goes away)."""
        _require(snapshotter, "snapshotter")
        _require(name, "snapshot name")
        with self._lock:
            self._snaps.commit(snapshotter, name, key, labels or {})

    @_operation
    def list_snapshots(self, snapshotter: str, prefix: str = "") -> list[SnapshotInfo]:
        """Return the snapshots of ``snapshotter`` (named ``prefix...``, if given)."""
        _require(snapshotter, "snapshotter")
        with self._lock:
            return self._snaps.listing(snapshotter, prefix)

    @_operation
    def prepare_snapshot(
        self, snapshotter: str, key: str, parent: str, labels: dict[str, str] | None = None
    ) -> None:
        """Create active snapshot ``key`` holding a copy of committed ``parent``."""
        _require(snapshotter, "snapshotter")
        _require(key, "snapshot key")
        _require(parent, "parent snapshot")
        with self._lock:
            self._snaps.prepare(snapshotter, key, parent, labels or {})

    @_operation
    def remove_snapshot(self, snapshotter: str, key: str) -> None:
        """Remove a snapshot that no other snapshot and no container is built on."""
        _require(snapshotter, "snapshotter")
        with self._lock:
            users = [c.id for c in self._containers.values() if c.snapshot_key == key]
            self._snaps.remove(snapshotter, key, users)

    @_operation
    def snapshot_mounts(self, snapshotter: str, key: str) -> list[MountInfo]:
        """A single bind mount of the snapshot's directory."""
        _require(snapshotter, "snapshotter")
        with self._lock:
            if not self.mounts_supported:
                raise errors.NotSupported("this backend cannot mount snapshots")
            snap = self._snaps.get(snapshotter, key)
            return [MountInfo(type="bind", source=snap.path, options=("rbind", "rw"))]

    # -- resources -----------------------------------------------------------

    @_operation
    def set_container_labels(self, id: str, labels: dict[str, str]) -> ContainerInfo:
        """Replace the container's labels."""
        with self._lock:
            info = attrs.evolve(self._container(id), labels=dict(labels), updated_at=now())
            self._containers[id] = info
            self._specs[id] = attrs.evolve(self._specs[id], labels=dict(labels))
            return info

    @_operation
    def update_resources(self, id: str, limits: ResourceLimits) -> None:
        """Record ``limits`` as the container's (what :meth:`task_metrics` then honours)."""
        if not isinstance(limits, ResourceLimits):
            raise errors.InvalidArgument(f"container {id}: limits must be ResourceLimits")
        with self._lock:
            self._container(id)
            req = self._specs[id]
            self._specs[id] = attrs.evolve(req, spec=attrs.evolve(req.spec, limits=limits))

    def limits(self, container_id: str) -> ResourceLimits:
        """The limits the container has now (for assertions in tests)."""
        with self._lock:
            self._container(container_id)
            return self._specs[container_id].spec.limits or ResourceLimits()

    @_operation
    def task_metrics(self, id: str) -> TaskMetrics:
        """Figures from the container's :class:`Usage` (default: 1 % CPU, 32 MiB, 3 pids).

        CPU time grows at ``cpu_percent`` of a core since the task started,
        memory and pids are the usage's, each capped by the container's limits.
        """
        with self._lock:
            self._container(id)
            task = self._tasks.get(id)
            if task is None:
                raise errors.NotFound(f"container {id} has no task")
            if task.status is not TaskStatus.RUNNING:
                raise errors.FailedPrecondition(
                    f"task of container {id} is {task.status.value}, not running"
                )
            limits = self._specs[id].spec.limits or ResourceLimits()
            usage = self._usage.get(id, Usage())
            started = task.started_ns
        return metrics(usage, limits, started)

    @_operation
    def snapshot_usage(self, snapshotter: str, key: str) -> int:
        """The bytes of the regular files in the snapshot's directory (symlinks not followed)."""
        _require(snapshotter, "snapshotter")
        with self._lock:
            path = self._snaps.get(snapshotter, key).path
        return tree_bytes(path)

    # -- lifecycle -----------------------------------------------------------

    @_operation
    def close(self) -> None:
        """Stop all agents and remove the temporary root (if the fake made it)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            agents = list(self._agents.values())
            self._agents.clear()
            for ip in self._ips.values():
                ADDRESSES.release(ip)
            self._ips.clear()
        for agent in agents:
            agent.stop(0)
        if self._owns_root:
            shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> FakeContainerService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _start_agent(root: str, ip: str) -> _Agent:
    """Run a real agent for a container, rooted at its snapshot directory.

    Its commands run confined to that directory (``/data`` is the bot's),
    where the machine allows it; else the agent warns once.
    """
    from .agent import AgentServer  # imported late: only fakes with agents need grpc servers

    agent = AgentServer(root=root, listen=f"{ip}:{AGENT_PORT}", confine_exec=True)
    agent.start()
    return agent
