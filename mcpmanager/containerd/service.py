"""ContainerdService: the ContainerService protocol over containerd's gRPC API."""

from __future__ import annotations

import contextlib
import os
import threading
import zlib
from collections.abc import Sequence
from typing import BinaryIO, NoReturn

from .. import errors, identifiers, taskfilter
from .._log import get_logger
from ..cni import Network
from ..naming import DEFAULT_SNAPSHOTTER
from ..types import (
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
    TaskStatus,
)
from . import containers, images, resources, snapshots, tasks
from ._conn import Connection
from .api import snapshots_pb2
from .importer import import_archive
from .spec import SHIM_GROUP_ANNOTATION, build_spec, spec_any
from .unpack import unpack

__all__ = ["DEFAULT_ADDRESS", "DEFAULT_SNAPSHOTTER", "ContainerdService"]

log = get_logger("mcpmanager.containerd")

DEFAULT_ADDRESS = "/run/containerd/containerd.sock"
"""Where a system containerd listens."""

_LIVE = (TaskStatus.RUNNING, TaskStatus.CREATED, TaskStatus.PAUSED)


def _require(value: str, what: str) -> str:
    if not value:
        raise errors.InvalidArgument(f"{what} is empty")
    return value


def _check_id(container_id: str) -> str:
    return identifiers.validate(container_id, "container ID")


class ContainerdService:
    """The real backend: images, containers, tasks and snapshots in containerd.

    Thread-safe; one gRPC channel is shared by all calls and survives daemon
    restarts. Registries on loopback (and those in ``plain_http_registries``)
    are spoken to over plain HTTP. Limits: ``ContainerSpec.user`` must be
    numeric (``uid[:gid]``) or ``root``; ``ContainerSpec.dns`` is not applied
    here (mount a resolv.conf instead, as the Manager does).

    Networking runs the CNI plugins of the request's conf dir on the task's
    network namespace; results are cached under ``cni_cache_dir`` (libcni's
    ``/var/lib/cni`` when None). ``cni_plugin_netns`` names a network
    namespace (under ``/var/run/netns``) to run the plugins in, so the bridge
    and host-side veths live there instead of in this process's namespace.

    Each container's task runs under a runc shim process of its own, as
    containerd does by default (``shim_groups=0``). With ``shim_groups=N``
    the containers are spread by ID over N shared shims (the runc shim's
    ``io.containerd.runc.v2.group`` annotation, as Kubernetes pods share
    one): a bot then costs no shim process of its own, about 2 MiB less
    memory, and its start and delete skip starting and reaping one. The
    price is a shared fate: a shim that dies ends every task of its group
    (they show as stopped; starting them again works).
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        namespace: str = "default",
        *,
        plain_http_registries: Sequence[str] = (),
        cni_cache_dir: str | os.PathLike[str] | None = None,
        cni_plugin_netns: str | None = None,
        shim_groups: int = 0,
    ) -> None:
        if isinstance(shim_groups, bool) or not isinstance(shim_groups, int) or shim_groups < 0:
            raise errors.InvalidArgument(
                f"shim_groups must be an int >= 0 (0: a shim per container), got {shim_groups!r}"
            )
        self.shim_groups = shim_groups
        self._conn = Connection(address, _require(namespace, "namespace"))
        self.namespace = namespace
        self.plain_http_registries = tuple(plain_http_registries)
        self.cni_cache_dir = os.fspath(cni_cache_dir) if cni_cache_dir is not None else None
        self.cni_plugin_netns = cni_plugin_netns
        self._networks: dict[tuple[str, str], Network] = {}
        self._networks_lock = threading.Lock()
        self._manifests = images.ManifestCache()

    def shim_group(self, container_id: str) -> str:
        """The runc shim group ``container_id`` is in, or ``""`` when each has its own shim."""
        if not self.shim_groups:
            return ""
        index = zlib.crc32(container_id.encode()) % self.shim_groups
        return f"mcpmanager-{self.namespace}-{index}"

    def _shim(self, container_id: str) -> dict[str, str]:
        group = self.shim_group(container_id)
        return {SHIM_GROUP_ANNOTATION: group} if group else {}

    @property
    def connection(self) -> Connection:
        """The underlying connection (for pull/unpack helpers and tests)."""
        return self._conn

    def __enter__(self) -> ContainerdService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- images -----------------------------------------------------------

    def pull_image(self, ref: str, opts: PullImageOptions | None = None) -> ImageInfo:
        """Fetch ``ref`` from its registry and unpack it (see :mod:`.pull`)."""
        from . import pull

        opts = opts or PullImageOptions()
        if not opts.snapshotter:
            opts = PullImageOptions(
                unpack=opts.unpack, snapshotter=DEFAULT_SNAPSHOTTER, progress=opts.progress
            )
        return pull.pull_image(
            self._conn, _require(ref, "image reference"), opts, self.plain_http_registries
        )

    def resolve_remote_digest(self, ref: str) -> str:
        """Ask the registry which digest ``ref`` names now."""
        from . import pull

        return pull.resolve_remote_digest(
            _require(ref, "image reference"), self.plain_http_registries
        )

    def get_image(self, ref: str) -> ImageInfo:
        """Return local image ``ref`` (also found under its short Docker Hub name)."""
        return images.to_image_info(images.get_image_record(self._conn, ref))

    def list_images(self) -> list[ImageInfo]:
        """Return every local image."""
        return [images.to_image_info(i) for i in images.list_images(self._conn)]

    def delete_image(self, ref: str, synchronous: bool = False) -> None:
        """Delete image ``ref``; ``synchronous`` waits for garbage collection."""
        images.delete_image(self._conn, ref, synchronous)

    def import_image(
        self, archive: str | os.PathLike[str] | BinaryIO, ref: str | None = None
    ) -> ImageInfo:
        """Import an OCI-layout or ``docker save`` tar and unpack it into overlayfs."""
        return import_archive(self._conn, archive, ref, DEFAULT_SNAPSHOTTER)

    def _image_for(self, cid: str, ref: str, snapshotter: str) -> images.ResolvedImage:
        """Load the image (manifest and config cached per digest), pulling it when missing.

        Before a pull, AlreadyExists when container ``cid`` exists: a create
        that cannot succeed must not download anything.
        """
        try:
            return self._resolve(_require(ref, "image reference"))
        except errors.NotFound:
            self._refuse_existing(cid)
            log.info("image %s is not local; pulling it", ref)
            self.pull_image(ref, PullImageOptions(snapshotter=snapshotter))
            return self._resolve(ref)

    def _resolve(self, ref: str) -> images.ResolvedImage:
        image = images.resolve_image(self._conn, ref, self._manifests)
        if not image.diff_ids:
            raise errors.InvalidArgument(f"image {ref} has no layers")
        return image

    def _unpacked(self, image: images.ResolvedImage, snapshotter: str) -> None:
        """Unpack ``image`` into ``snapshotter`` unless its top layer is there already."""
        if not snapshots.exists(self._conn, snapshotter, images.chain_ids(image.diff_ids)[-1]):
            unpack(self._conn, image.manifest, image.config, snapshotter)

    # --- containers -------------------------------------------------------

    def create_container(self, req: CreateContainerRequest) -> ContainerInfo:
        """Create a container on a new active snapshot named after it.

        An existing snapshot with that name is never replaced: AlreadyExists
        names it so the caller can rescue its data. The snapshot is a GC root
        from the moment it exists (so no lease is needed), and it outlives the
        container unless deleted with ``cleanup_snapshot``. The common case
        costs three calls: Images.Get, Snapshots.Prepare, Containers.Create.
        """
        if req.snapshot_id:
            return self.create_container_from_snapshot(req)
        cid = _check_id(req.id)
        snapshotter = req.snapshotter or DEFAULT_SNAPSHOTTER
        image = self._image_for(cid, req.image_ref, snapshotter)
        spec = spec_any(build_spec(self.namespace, cid, image.config, req.spec, self._shim(cid)))
        self._prepare_own_snapshot(cid, snapshotter, image)
        try:
            record = containers.create_record(
                self._conn,
                cid,
                image=image.name,
                snapshotter=snapshotter,
                snapshot_key=cid,
                spec=spec,
                labels=req.labels,
            )
        except errors.MCPManagerError as exc:
            with contextlib.suppress(errors.MCPManagerError):
                snapshots.remove(self._conn, snapshotter, cid)
            if isinstance(exc, errors.AlreadyExists):
                raise errors.AlreadyExists(f"container {cid} already exists") from None
            raise
        return containers.to_container_info(record)

    def _refuse_existing(self, cid: str) -> None:
        try:
            containers.get_record(self._conn, cid)
        except errors.NotFound:
            return
        raise errors.AlreadyExists(f"container {cid} already exists")

    def _prepare_own_snapshot(
        self, key: str, snapshotter: str, image: images.ResolvedImage
    ) -> None:
        """Prepare active ``key`` on the image's top layer, unpacking the image if needed.

        Prepare itself answers both questions asked before: AlreadyExists when
        ``key`` is taken (never replaced), NotFound when the image is not
        unpacked in ``snapshotter`` yet (unpack, then prepare again).
        """
        parent = images.chain_ids(image.diff_ids)[-1]
        labels = snapshots.gc_root_labels()
        try:
            snapshots.prepare(self._conn, snapshotter, key, parent, labels)
            return
        except errors.AlreadyExists:
            self._refuse_snapshot(key, snapshotter)
        except errors.NotFound:
            log.debug("image %s is not unpacked in %s; unpacking it", image.name, snapshotter)
        unpack(self._conn, image.manifest, image.config, snapshotter)
        try:
            snapshots.prepare(self._conn, snapshotter, key, parent, labels)
        except errors.AlreadyExists:
            self._refuse_snapshot(key, snapshotter)

    def _refuse_snapshot(self, key: str, snapshotter: str) -> NoReturn:
        self._refuse_existing(key)
        raise errors.AlreadyExists(
            f"snapshot {key!r} already exists in {snapshotter}; refusing to replace it "
            "(it may hold a bot's data)"
        )

    def create_container_from_snapshot(self, req: CreateContainerRequest) -> ContainerInfo:
        """Create a container on the existing active snapshot ``req.snapshot_id``."""
        cid = _check_id(req.id)
        key = _require(req.snapshot_id, "snapshot id")
        snapshotter = req.snapshotter or DEFAULT_SNAPSHOTTER
        self._refuse_existing(cid)
        info = snapshots.stat(self._conn, snapshotter, key)
        if info.kind != snapshots_pb2.ACTIVE:
            raise errors.FailedPrecondition(
                f"snapshot {key!r} in {snapshotter} is not active; prepare one from it first"
            )
        image = self._image_for(cid, req.image_ref, snapshotter)
        self._unpacked(image, snapshotter)
        spec = spec_any(build_spec(self.namespace, cid, image.config, req.spec, self._shim(cid)))
        record = containers.create_record(
            self._conn,
            cid,
            image=image.name,
            snapshotter=snapshotter,
            snapshot_key=key,
            spec=spec,
            labels=req.labels,
        )
        return containers.to_container_info(record)

    def get_container(self, id: str) -> ContainerInfo:
        """Return container ``id``; NotFound if it does not exist."""
        return containers.to_container_info(containers.get_record(self._conn, _check_id(id)))

    def list_containers(self) -> list[ContainerInfo]:
        """Return every container of the namespace."""
        return [containers.to_container_info(c) for c in containers.list_records(self._conn)]

    def list_containers_by_label(self, key: str, value: str = "") -> list[ContainerInfo]:
        """Return containers labelled ``key`` (equal to ``value`` when it is non-empty)."""
        _require(key, "label key")
        return [
            c
            for c in self.list_containers()
            if key in c.labels and (not value or c.labels[key] == value)
        ]

    def delete_container(self, id: str, opts: DeleteContainerOptions | None = None) -> None:
        """Delete the container, a leftover task first, and its snapshot if asked.

        Four calls when no task is left: Containers.Get (the snapshot to
        keep or remove), Tasks.Delete (NotFound: none left), Containers.Delete,
        then Snapshots.Remove or Snapshots.Update (the GC-root label).
        """
        opts = opts or DeleteContainerOptions()
        cid = _check_id(id)
        record = containers.get_record(self._conn, cid)
        tasks.delete_leftover(self._conn, cid)
        key, snapshotter = record.snapshot_key, record.snapshotter
        if key and not opts.cleanup_snapshot:
            # Once the container is gone nothing references the snapshot; keep it from GC.
            with contextlib.suppress(errors.NotFound):
                snapshots.set_labels(self._conn, snapshotter, key, snapshots.gc_root_labels())
        containers.delete_record(self._conn, cid)
        if key and opts.cleanup_snapshot:
            with contextlib.suppress(errors.NotFound):
                snapshots.remove(self._conn, snapshotter, key)

    # --- tasks ------------------------------------------------------------

    def start_container(self, id: str) -> None:
        """Create and start the container's task (replacing a stopped one)."""
        tasks.start_task(self._conn, containers.get_record(self._conn, _check_id(id)))

    def stop_container(self, id: str, opts: StopTaskOptions | None = None) -> None:
        """Stop the task; a container without a running task is already stopped.

        Signals first and asks questions only when there was nothing to signal
        (then NotFound tells a missing container from a stopped one).
        """
        cid = _check_id(id)
        if not tasks.stop_task(self._conn, cid, opts or StopTaskOptions()):
            containers.get_record(self._conn, cid)

    def delete_task(self, id: str, opts: DeleteTaskOptions | None = None) -> None:
        """Delete the container's task; ``force`` kills a running one first."""
        tasks.delete_task(self._conn, _check_id(id), (opts or DeleteTaskOptions()).force)

    def get_task_info(self, id: str) -> TaskInfo:
        """Return the container's task; NotFound if it has none."""
        return tasks.get_task(self._conn, _check_id(id))

    def list_tasks(self, filter: str = "") -> list[TaskInfo]:
        """Return every task matching ``filter`` (see :mod:`mcpmanager.taskfilter`).

        The daemon ignores the filters it is sent, so they are applied here.
        """
        return taskfilter.select(tasks.list_tasks(self._conn), filter)

    # --- network ----------------------------------------------------------

    def setup_network(self, req: NetworkSetupRequest) -> NetworkResult:
        """Attach the task to the conf dir's CNI network; return its first non-loopback IP.

        Idempotent: a task already attached gets its cached IP back (without
        running any plugin when the cache entry was made for this very task).
        FailedPrecondition when the container has no running task, or the
        conf or bin dir is missing; InvalidArgument when one is not given.
        """
        cid = _check_id(req.container_id)
        pid = req.pid or self._task_pid(cid)
        ip = self._network(cid, req).setup_task(cid, pid)
        return NetworkResult(ip=ip)

    def remove_network(self, req: NetworkSetupRequest) -> None:
        """Detach the task from the network and release its address.

        Works after the task has stopped (the cached ADD result lets DEL free
        the IPAM allocation); with no task and no cached result it does nothing.
        """
        cid = _check_id(req.container_id)
        pid = req.pid
        if not pid:
            try:
                pid = self._task_pid(cid)
            except (errors.FailedPrecondition, errors.NotFound):
                pid = 0
        self._network(cid, req).remove_task(cid, pid)

    def _network(self, cid: str, req: NetworkSetupRequest) -> Network:
        """The network of the request's (bin dir, conf dir), loaded on first use only."""
        key = (req.cni_bin_dir, req.cni_conf_dir)
        with self._networks_lock:
            found = self._networks.get(key)
            if found is None:
                try:
                    found = Network(
                        req.cni_bin_dir,
                        req.cni_conf_dir,
                        self.cni_cache_dir,
                        plugin_netns=self.cni_plugin_netns,
                    )
                except errors.MCPManagerError as exc:
                    raise exc.with_context(f"container {cid} network") from None
                self._networks[key] = found
            return found

    def _task_pid(self, cid: str) -> int:
        """The pid of the container's live task; FailedPrecondition when it has none."""
        try:
            task = tasks.get_task(self._conn, cid)
        except errors.NotFound:
            containers.get_record(self._conn, cid)  # NotFound when the container is missing
            raise errors.FailedPrecondition(
                f"container {cid} has no task; start it before setting up its network"
            ) from None
        if task.status not in _LIVE or task.pid <= 0:
            raise errors.FailedPrecondition(
                f"container {cid} has no running task (status {task.status.value}); "
                "start it before setting up its network"
            )
        return task.pid

    # --- snapshots --------------------------------------------------------

    def commit_snapshot(
        self, snapshotter: str, name: str, key: str, labels: dict[str, str] | None = None
    ) -> None:
        """Commit active ``key`` as ``name``, labelled as a GC root so it is kept."""
        merged = {**snapshots.gc_root_labels(), **(labels or {})}
        snapshots.commit(
            self._conn,
            _require(snapshotter, "snapshotter"),
            _require(name, "snapshot name"),
            _require(key, "snapshot key"),
            merged,
        )

    def list_snapshots(self, snapshotter: str, prefix: str = "") -> list[SnapshotInfo]:
        """Return the snapshots of ``snapshotter`` (named ``prefix...``, if given)."""
        return snapshots.list_snapshots(self._conn, _require(snapshotter, "snapshotter"), prefix)

    def prepare_snapshot(
        self, snapshotter: str, key: str, parent: str, labels: dict[str, str] | None = None
    ) -> None:
        """Create active ``key`` on committed ``parent``, kept as a GC root until used."""
        merged = {**snapshots.gc_root_labels(), **(labels or {})}
        snapshots.prepare(
            self._conn,
            _require(snapshotter, "snapshotter"),
            _require(key, "snapshot key"),
            _require(parent, "parent snapshot"),
            merged,
        )

    def remove_snapshot(self, snapshotter: str, key: str) -> None:
        """Remove snapshot ``key``; FailedPrecondition while a container or child uses it."""
        _require(snapshotter, "snapshotter")
        _require(key, "snapshot key")
        users = [c.id for c in self.list_containers() if c.snapshot_key == key]
        if users:
            raise errors.FailedPrecondition(f"snapshot {key} is used by container {users[0]}")
        snapshots.remove(self._conn, snapshotter, key)

    def snapshot_mounts(self, snapshotter: str, key: str) -> list[MountInfo]:
        """Return the mounts that show snapshot ``key``."""
        found = snapshots.mounts(
            self._conn, _require(snapshotter, "snapshotter"), _require(key, "snapshot key")
        )
        return [snapshots.to_mount_info(m) for m in found]

    # --- resources --------------------------------------------------------

    def set_container_labels(self, id: str, labels: dict[str, str]) -> ContainerInfo:
        """Replace the container's labels."""
        return resources.set_labels(self._conn, _check_id(id), labels)

    def update_resources(self, id: str, limits: ResourceLimits) -> None:
        """Store ``limits`` in the container's spec and apply them to its live task."""
        if not isinstance(limits, ResourceLimits):
            raise errors.InvalidArgument(f"container {id}: limits must be ResourceLimits")
        resources.update_resources(self._conn, _check_id(id), limits)

    def task_metrics(self, id: str) -> TaskMetrics:
        """CPU time, memory and pids of the task's cgroup (cgroup v1 or v2)."""
        return resources.task_metrics(self._conn, _check_id(id))

    def snapshot_usage(self, snapshotter: str, key: str) -> int:
        """Bytes snapshot ``key`` holds over its parents."""
        return resources.snapshot_usage(
            self._conn, _require(snapshotter, "snapshotter"), _require(key, "snapshot key")
        )

    def close(self) -> None:
        """Close the gRPC channel."""
        self._conn.close()
