"""DockerService: the ContainerService protocol on the Docker Engine API.

How containerd's model maps onto Docker:

* a container is a Docker container of the same name; its task is its
  current run (see :mod:`.tasks`); its active snapshot is its writable layer;
* committing a snapshot is ``docker commit`` to ``mcpmanager-snapshot:<name>``;
  the container whose layer it took no longer holds an active snapshot;
* preparing an active snapshot creates a never-started container from the
  committed image under a held name; creating a container on it makes the
  real container from that image (the prepared layer is empty);
* deleting a container but keeping its snapshot renames it to the held name;
  a container later created on that snapshot gets it back by rename (same
  request) or from a commit of it (different request), so no data is lost;
* snapshots cannot be mounted on the host (:meth:`DockerService.snapshot_mounts`
  is NotSupported), so the Manager reads and writes ``/data`` through the agent.
"""

from __future__ import annotations

import contextlib
import os
import signal
from typing import Any, BinaryIO

from .. import errors, identifiers
from .._log import get_logger
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
from . import images, importer, snapshots
from . import labels as lb
from . import resources as rs
from ._client import Connection
from ._errors import mapped
from .inventory import Inventory, holders, inspect_live
from .network import Network, address_on
from .records import HELD_PREFIX, Holder, held_name
from .snapshots import require
from .spec import command, to_mounts
from .tasks import TaskBook, wait_stopped

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_NETWORK",
    "DEFAULT_SNAPSHOTTER",
    "MIN_ID_LENGTH",
    "DockerService",
]

log = get_logger("mcpmanager.docker")

DEFAULT_BASE_URL = "unix:///var/run/docker.sock"
"""Where a system dockerd listens."""
DEFAULT_NETWORK = "mcp"
"""The bridge network bots join unless told otherwise."""
"""Recorded when a request names no snapshotter (Docker has one storage driver)."""
MIN_ID_LENGTH = 2
"""Docker refuses one-character container names; containerd's rule allows them."""

_KILL_WAIT = 30.0


def _check_id(container_id: str) -> str:
    """containerd's identifier rule, and what Docker adds: 2 characters, not ours."""
    identifiers.validate(container_id, "container ID")
    if len(container_id) < MIN_ID_LENGTH:
        raise errors.InvalidArgument(
            f"invalid container ID {container_id!r}: Docker names need "
            f"at least {MIN_ID_LENGTH} characters"
        )
    if container_id.startswith(HELD_PREFIX):
        raise errors.InvalidArgument(
            f"invalid container ID {container_id!r}: {HELD_PREFIX!r} is reserved"
        )
    return container_id


class DockerService:
    """The Docker backend: images, containers, tasks and snapshots of one dockerd.

    ``base_url`` is the daemon's socket (``unix://...`` or ``tcp://...``);
    bots join the user-defined bridge ``network``, created on first use.
    Thread-safe; one pooled docker-py client is shared by all calls and made
    on first use. Registries are reached by the daemon: plain HTTP only for
    those it trusts (loopback by default, others via ``--insecure-registry``).
    ``snapshotter`` arguments are recorded but not used: the daemon's storage
    driver holds every layer. Snapshot names must be valid Docker tags.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        network: str = DEFAULT_NETWORK,
        timeout: float = 120.0,
    ) -> None:
        self._conn = Connection(require(base_url, "Docker base URL"), timeout)
        self.base_url = base_url
        self.network = Network(self._conn, network)
        self._tasks = TaskBook()

    @property
    def connection(self) -> Connection:
        """The underlying connection (for tests and helpers)."""
        return self._conn

    def __enter__(self) -> DockerService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- images -----------------------------------------------------------

    def pull_image(self, ref: str, opts: PullImageOptions | None = None) -> ImageInfo:
        """Pull ``ref`` through the daemon, reporting each layer to ``opts.progress``.

        Docker always unpacks, so ``opts.unpack`` and ``opts.snapshotter`` change nothing.
        """
        opts = opts or PullImageOptions()
        return images.pull(self._conn, require(ref, "image reference"), opts.progress)

    def get_image(self, ref: str) -> ImageInfo:
        """Return the local image ``ref``; NotFound if it is not there."""
        return images.get_image(self._conn, ref)

    def list_images(self) -> list[ImageInfo]:
        """Return every tagged local image (snapshot images are snapshots, not listed)."""
        return images.list_images(self._conn)

    def delete_image(self, ref: str, synchronous: bool = False) -> None:
        """Remove image ``ref`` (Docker deletes synchronously either way)."""
        del synchronous
        images.remove_image(self._conn, ref)

    def resolve_remote_digest(self, ref: str) -> str:
        """Ask the registry (through the daemon) which digest ``ref`` names now."""
        return images.remote_digest(self._conn, ref)

    def import_image(
        self, archive: str | os.PathLike[str] | BinaryIO, ref: str | None = None
    ) -> ImageInfo:
        """Load an OCI-layout (converted first) or ``docker save`` archive."""
        return importer.import_archive(self._conn, archive, ref)

    def _image_doc(self, ref: str) -> dict[str, Any]:
        """The inspected image ``ref``, pulled first when it is not local."""
        try:
            with mapped(f"inspect image {ref}"):
                doc: dict[str, Any] = self._conn.inspect_image(ref)
            return doc
        except errors.NotFound:
            log.info("image %s is not local; pulling it", ref)
        self.pull_image(ref)
        with mapped(f"inspect image {ref}"):
            pulled: dict[str, Any] = self._conn.inspect_image(ref)
        return pulled

    # --- containers -------------------------------------------------------

    def create_container(self, req: CreateContainerRequest) -> ContainerInfo:
        """Create container ``req.id`` from its image (pulled if missing).

        AlreadyExists when the container exists, or a snapshot with its name
        survives (it may hold a bot's data and is never replaced).
        """
        if req.snapshot_id:
            return self.create_container_from_snapshot(req)
        cid = _check_id(req.id)
        lb.check_user_labels(req.labels, f"container {cid}")
        self._refuse_existing(cid)
        if Inventory(self._conn).taken(cid):
            raise errors.AlreadyExists(
                f"snapshot {cid!r} already exists; refusing to replace it "
                "(it may hold a bot's data)"
            )
        image = self._image_doc(require(req.image_ref, "image reference"))
        record = lb.record(
            kind=lb.KIND_CONTAINER,
            snapshot=cid,
            parent=str(image["Id"]),
            image=req.image_ref,
            snapshotter=req.snapshotter or DEFAULT_SNAPSHOTTER,
            labels=lb.encode(req.labels),
            snapshot_labels=lb.encode({}),
            spec=lb.spec_hash(req.image_ref, req.labels, req.spec),
        )
        self._create(req, str(image["Id"]), record, image.get("Config"))
        return self.get_container(cid)

    def _refuse_existing(self, cid: str) -> None:
        with contextlib.suppress(errors.NotFound):
            inspect_live(self._conn, cid)
            raise errors.AlreadyExists(f"container {cid} already exists")

    def _create(
        self,
        req: CreateContainerRequest,
        image: str,
        record: dict[str, str],
        image_config: dict[str, Any] | None,
    ) -> str:
        """Create the Docker container for ``req`` on ``image``; return its Docker ID."""
        self.network.ensure()
        api = self._conn.api()
        spec = req.spec
        entrypoint, cmd = command(spec, image_config)
        host_config = api.create_host_config(
            network_mode=self.network.name,
            mounts=to_mounts(spec.mounts, req.id),
            dns=list(spec.dns) or None,
            **rs.host_config_limits(spec.limits),
        )
        with mapped(f"create container {req.id}"):
            created = api.create_container(
                image,
                command=cmd,
                entrypoint=entrypoint,
                name=req.id,
                environment=list(spec.env) or None,
                working_dir=spec.workdir or None,
                user=spec.user or None,
                tty=spec.tty,
                labels={**req.labels, **record},
                host_config=host_config,
            )
        log.info("created container %s", req.id)
        return str(created["Id"])

    def create_container_from_snapshot(self, req: CreateContainerRequest) -> ContainerInfo:
        """Create container ``req.id`` on the active snapshot ``req.snapshot_id``."""
        cid = _check_id(req.id)
        key = require(req.snapshot_id, "snapshot id")
        lb.check_user_labels(req.labels, f"container {cid}")
        self._refuse_existing(cid)
        inv = Inventory(self._conn)
        holder = inv.active(key)
        if holder is None:
            if inv.committed(key) is not None:
                raise errors.FailedPrecondition(
                    f"snapshot {key!r} is committed, not active; prepare one from it first"
                )
            raise errors.NotFound(f"snapshot {key} not found")
        if not holder.held:
            raise errors.FailedPrecondition(f"snapshot {key} is used by container {holder.name}")
        base = self._image_doc(require(req.image_ref, "image reference"))
        spec_hash = lb.spec_hash(req.image_ref, req.labels, req.spec)
        if not holder.prepared and holder.labels.get(lb.SPEC) == spec_hash:
            with mapped(f"rename the container keeping snapshot {key} to {cid}"):
                self._conn.api().rename(holder.docker_id, cid)
            log.info("container %s is back on its kept snapshot %s", cid, key)
            return self.get_container(cid)
        source = self._parent_image(holder) if holder.prepared else self._commit_held(holder)
        record = lb.record(
            kind=lb.KIND_CONTAINER,
            snapshot=key,
            parent=holder.labels.get(lb.PARENT, ""),
            image=req.image_ref,
            snapshotter=req.snapshotter or DEFAULT_SNAPSHOTTER,
            labels=lb.encode(req.labels),
            snapshot_labels=holder.labels.get(lb.SNAP_LABELS, "{}"),
            spec=spec_hash,
        )
        self._create(req, source, record, base.get("Config"))
        self._remove_holder(holder)
        return self.get_container(cid)

    def _parent_image(self, holder: Holder) -> str:
        """The image a prepared snapshot was made from (its committed parent)."""
        inv = Inventory(self._conn)
        parent = inv.committed(holder.labels.get(lb.PARENT, ""))
        if parent is None:
            raise errors.NotFound(
                f"snapshot {holder.key}: its parent {holder.labels.get(lb.PARENT)!r} is gone"
            )
        return parent.image_id

    def _commit_held(self, holder: Holder) -> str:
        """An untagged image of a kept snapshot's layer, to build a different container on."""
        with mapped(f"copy kept snapshot {holder.key}"):
            made = self._conn.api().commit(
                holder.docker_id, conf={"Labels": lb.record(kind="intermediate")}
            )
        return str(made["Id"])

    def _remove_holder(self, holder: Holder) -> None:
        with mapped(f"remove the container keeping snapshot {holder.key}"):
            self._conn.api().remove_container(holder.docker_id, force=True)
        self._tasks.drop(holder.docker_id)

    def get_container(self, id: str) -> ContainerInfo:
        """Return container ``id``; NotFound if it does not exist."""
        holder, _ = inspect_live(self._conn, _check_id(id))
        return holder.container_info()

    def list_containers(self) -> list[ContainerInfo]:
        """Return every container mcpmanager made on this daemon."""
        return [h.container_info() for h in holders(self._conn) if not h.held]

    def list_containers_by_label(self, key: str, value: str = "") -> list[ContainerInfo]:
        """Return containers labelled ``key`` (equal to ``value`` when it is non-empty)."""
        require(key, "label key")
        return [
            c
            for c in self.list_containers()
            if key in c.labels and (not value or c.labels[key] == value)
        ]

    def delete_container(self, id: str, opts: DeleteContainerOptions | None = None) -> None:
        """Delete the container (killing a run first); keep its snapshot unless told not to."""
        opts = opts or DeleteContainerOptions()
        holder, doc = inspect_live(self._conn, _check_id(id))
        if doc["State"].get("Running"):
            self._kill(holder.docker_id, id)
        consumed = holder.docker_id in Inventory(self._conn).consumed
        if opts.cleanup_snapshot or consumed:
            with mapped(f"delete container {id}"):
                self._conn.api().remove_container(holder.docker_id, force=True)
            self._tasks.drop(holder.docker_id)
            self._drop_intermediate(str(doc.get("Image", "")))
            log.info("deleted container %s", id)
            return
        with mapped(f"keep the snapshot of container {id}"):
            self._conn.api().rename(holder.docker_id, held_name(holder.key))
        self._tasks.drop(holder.docker_id)
        log.info("deleted container %s, keeping its snapshot %s", id, holder.key)

    def _drop_intermediate(self, image_id: str) -> None:
        """Remove an untagged copy made by _commit_held once nothing uses it."""
        if not image_id:
            return
        try:
            with mapped(f"inspect image {image_id}"):
                doc = self._conn.inspect_image(image_id)
            if ((doc.get("Config") or {}).get("Labels") or {}).get(lb.KIND) == "intermediate":
                images.remove_image(self._conn, image_id)
        except errors.MCPManagerError as exc:
            log.debug("leaving image %s: %s", image_id, exc)

    # --- tasks ------------------------------------------------------------

    def start_container(self, id: str) -> None:
        """Start the container's run; AlreadyExists while it runs."""
        holder, doc = inspect_live(self._conn, _check_id(id))
        if doc["State"].get("Running"):
            raise errors.AlreadyExists(f"task for container {id} already exists")
        if holder.docker_id in Inventory(self._conn).consumed:
            raise errors.FailedPrecondition(
                f"container {id}: its snapshot {holder.key} was committed; "
                "create the container on a snapshot prepared from the commit"
            )
        self.network.ensure()
        self._tasks.drop(holder.docker_id)
        try:
            with mapped(f"start container {id}"):
                self._conn.api().start(holder.docker_id)
        except errors.NotFound:  # its network was removed behind our back
            self.network.forget()
            self.network.ensure()
            with mapped(f"start container {id}"):
                self._conn.api().start(holder.docker_id)
        log.info("started container %s", id)

    def stop_container(self, id: str, opts: StopTaskOptions | None = None) -> None:
        """Send ``opts.signal``, wait ``opts.timeout`` s, then SIGKILL if ``opts.force``."""
        opts = opts or StopTaskOptions()
        holder, doc = inspect_live(self._conn, _check_id(id))
        if not doc["State"].get("Running"):
            return
        if doc["State"].get("Paused"):
            with mapped(f"unpause container {id}"):
                self._conn.api().unpause(holder.docker_id)
        if self._signal(holder.docker_id, id, opts.signal) and wait_stopped(
            self._conn, holder.docker_id, opts.timeout, f"wait for container {id} to stop"
        ):
            return
        if not opts.force:
            raise errors.DeadlineExceeded(
                f"container {id} did not stop within {opts.timeout:g}s of signal {opts.signal}"
            )
        self._kill(holder.docker_id, id)

    def _signal(self, docker_id: str, cid: str, signum: int) -> bool:
        """Send ``signum``; False when the container was not running any more."""
        try:
            with mapped(f"signal container {cid}"):
                self._conn.api().kill(docker_id, signal=int(signum))
        except errors.FailedPrecondition as exc:
            if "is not running" in str(exc):
                return True
            raise
        return True

    def _kill(self, docker_id: str, cid: str) -> None:
        """SIGKILL the run and wait until Docker has seen it end."""
        self._signal(docker_id, cid, int(signal.SIGKILL))
        if not wait_stopped(self._conn, docker_id, _KILL_WAIT, f"wait for container {cid}"):
            raise errors.DeadlineExceeded(f"container {cid} did not die of SIGKILL")

    def delete_task(self, id: str, opts: DeleteTaskOptions | None = None) -> None:
        """Forget the container's finished run; a running one is killed only if ``force``."""
        opts = opts or DeleteTaskOptions()
        holder, doc = inspect_live(self._conn, _check_id(id))
        task = self._tasks.task(id, holder.docker_id, doc["State"])
        if task is None:
            raise errors.NotFound(f"container {id} has no task")
        if task.status in (TaskStatus.RUNNING, TaskStatus.PAUSED):
            if not opts.force:
                raise errors.FailedPrecondition(f"task of container {id} is running")
            if task.status is TaskStatus.PAUSED:
                with mapped(f"unpause container {id}"):
                    self._conn.api().unpause(holder.docker_id)
            self._kill(holder.docker_id, id)
            _, doc = inspect_live(self._conn, id)
        self._tasks.forget(holder.docker_id, doc["State"])

    def get_task_info(self, id: str) -> TaskInfo:
        """Return the container's task; NotFound if it has none."""
        holder, doc = inspect_live(self._conn, _check_id(id))
        task = self._tasks.task(id, holder.docker_id, doc["State"])
        if task is None:
            raise errors.NotFound(f"container {id} has no task")
        return task

    def list_tasks(self, filter: str = "") -> list[TaskInfo]:
        """Return every task; ``filter`` may be ``field==value`` on id, pid or status."""
        field, sep, wanted = filter.partition("==")
        if filter and (not sep or field not in ("id", "container_id", "pid", "status")):
            raise errors.InvalidArgument(f"unsupported task filter {filter!r}")
        found: list[TaskInfo] = []
        for holder in holders(self._conn):
            if holder.held:
                continue
            try:
                _, doc = inspect_live(self._conn, holder.name)
            except errors.NotFound:
                continue
            task = self._tasks.task(holder.name, holder.docker_id, doc["State"])
            if task is not None:
                found.append(task)
        if not filter:
            return found

        def value(t: TaskInfo) -> str:
            raw = getattr(t, "id" if field == "container_id" else field)
            return raw.value if isinstance(raw, TaskStatus) else str(raw)

        return [t for t in found if value(t) == wanted]

    # --- network ----------------------------------------------------------

    def setup_network(self, req: NetworkSetupRequest) -> NetworkResult:
        """Return the running container's IP on the bridge network (attaching it if needed)."""
        cid = _check_id(req.container_id)
        holder, doc = inspect_live(self._conn, cid)
        if not doc["State"].get("Running"):
            raise errors.FailedPrecondition(
                f"container {cid} has no running task; start it before setting up its network"
            )
        ip = address_on(doc, self.network.name)
        if not ip:
            self.network.connect(holder.docker_id, cid)
            _, doc = inspect_live(self._conn, cid)
            ip = address_on(doc, self.network.name)
        if not ip:
            raise errors.Unavailable(f"container {cid} got no address on {self.network.name}")
        return NetworkResult(ip=ip)

    def remove_network(self, req: NetworkSetupRequest) -> None:
        """Detach a running container; a stopped one has released its address already."""
        cid = _check_id(req.container_id)
        try:
            holder, doc = inspect_live(self._conn, cid)
        except errors.NotFound:
            return
        if doc["State"].get("Running") and address_on(doc, self.network.name):
            self.network.disconnect(holder.docker_id, cid)

    # --- snapshots --------------------------------------------------------

    def commit_snapshot(
        self, snapshotter: str, name: str, key: str, labels: dict[str, str] | None = None
    ) -> None:
        """Commit the layer holding active ``key`` as image ``mcpmanager-snapshot:<name>``.

        A name that is not a valid Docker tag is tagged by its digest (see
        :func:`.records.docker_word`); the name itself is in the image's labels.
        """
        snapshots.commit(self._conn, snapshotter, name, key, labels)

    def list_snapshots(self, snapshotter: str, prefix: str = "") -> list[SnapshotInfo]:
        """Every committed snapshot image and active snapshot (named ``prefix...``, if given)."""
        return [s for s in snapshots.list_all(self._conn, snapshotter) if s.name.startswith(prefix)]

    def prepare_snapshot(
        self, snapshotter: str, key: str, parent: str, labels: dict[str, str] | None = None
    ) -> None:
        """Create active ``key`` on committed ``parent`` (a never-started holder container)."""
        snapshots.prepare(self._conn, snapshotter, key, parent, labels)

    def remove_snapshot(self, snapshotter: str, key: str) -> None:
        """Remove snapshot ``key``; FailedPrecondition while a container or snapshot uses it."""
        snapshots.remove(self._conn, snapshotter, key, self._remove_holder)

    def snapshot_mounts(self, snapshotter: str, key: str) -> list[MountInfo]:
        """NotSupported: Docker layers are not mounted on the host, use the agent instead.

        The arguments are checked first, and a missing snapshot is NotFound, as elsewhere.
        """
        snapshots.refuse_mounts(self._conn, snapshotter, key)

    # --- resources --------------------------------------------------------

    def set_container_labels(self, id: str, labels: dict[str, str]) -> ContainerInfo:
        """NotSupported: Docker cannot relabel a container (recreate it instead)."""
        raise errors.NotSupported(f"the Docker backend cannot relabel container {id}")

    def update_resources(self, id: str, limits: ResourceLimits) -> None:
        """``container update``: the limits apply to the running container and later runs."""
        if not isinstance(limits, ResourceLimits):
            raise errors.InvalidArgument(f"container {id}: limits must be ResourceLimits")
        holder, doc = inspect_live(self._conn, _check_id(id))
        body = rs.update_body(limits, doc.get("HostConfig") or {}, id)
        rs.post_update(self._conn, holder.docker_id, body, id)

    def task_metrics(self, id: str) -> TaskMetrics:
        """One ``stats`` reading of the running container."""
        holder, doc = inspect_live(self._conn, _check_id(id))
        task = self._tasks.task(id, holder.docker_id, doc["State"])
        if task is None:
            raise errors.NotFound(f"container {id} has no task")
        if task.status is not TaskStatus.RUNNING:
            raise errors.FailedPrecondition(f"task of container {id} is {task.status.value}")
        with mapped(f"stats of container {id}"):
            stats = self._conn.api().stats(holder.docker_id, stream=False)
        return rs.metrics_of(stats, doc.get("HostConfig") or {})

    def snapshot_usage(self, snapshotter: str, key: str) -> int:
        """Size of the writable layer holding active snapshot ``key``.

        NotSupported for a committed snapshot (an image's layers are shared).
        """
        del snapshotter
        require(key, "snapshot key")
        inv = Inventory(self._conn)
        holder = inv.active(key)
        if holder is None:
            if inv.committed(key) is not None:
                raise errors.NotSupported(f"usage of committed snapshot {key} on Docker")
            raise errors.NotFound(f"snapshot {key} not found")
        return rs.layer_bytes(self._conn, holder.docker_id, key)

    def close(self) -> None:
        """Close the client's connections."""
        self._conn.close()
