"""Fixtures of the contract suite: one :class:`Backend` per entry of ``BACKENDS``.

``backend`` is parametrised over :data:`tests.contract.backends.BACKENDS`, so
every test in this folder runs once per backend. The containerd backend uses
the session's private containerd (root needed; skipped without it, failed
under ``MCPMANAGER_REQUIRE_INTEGRATION=1``) in a namespace of its own, the
session's local registry, and a CNI bridge inside a network namespace the
suite creates. The Docker backend uses the session's private dockerd (same
rules; it runs in a network namespace of the harness) and a registry inside
that namespace.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from mcpmanager.containerd import ContainerdService
from mcpmanager.docker import DockerService
from mcpmanager.fake import FakeContainerService
from mcpmanager.types import NetworkSetupRequest
from tests.contract.backends import BACKENDS, Backend, BackendEntry, unreachable_fake
from tests.harness.containerd import BUSYBOX_REF, File, build_image_archive
from tests.harness.docker import DockerDaemon, NetnsRegistry
from tests.harness.e2e import HostNetns, write_bridge_conflist
from tests.harness.netns import CNI_BIN_DIR
from tests.harness.registry import (
    REGISTRY_BIN,
    LocalRegistry,
    build_oci_image,
    busybox_layer,
    free_port,
)

ARCHIVE_REF = "docker.io/library/mcpm-contract-import:1"
CNI_PLUGINS = ("bridge", "host-local", "loopback")
FAKE_REMOTE = "registry.test/contract/busybox:1"
FAKE_DIGEST = "sha256:" + "ab" * 32
FAKE_ABSENT = "registry.test/contract/absent:1"


@attrs.frozen
class Archive:
    """An OCI image archive, the name inside it, its target digest and its config digest."""

    path: str
    ref: str
    digest: str
    config_digest: str


@pytest.fixture(scope="session")
def contract_archive() -> Iterator[Archive]:
    """A one-file OCI archive named :data:`ARCHIVE_REF`."""
    workdir = tempfile.mkdtemp(prefix="mcpm-contract-")
    try:
        path = build_image_archive(
            os.path.join(workdir, "import.tar"), ARCHIVE_REF, [[File("hello.txt", b"contract\n")]]
        )
        with tarfile.open(path) as tar:
            digest = _json_member(tar, "index.json")["manifests"][0]["digest"]
            manifest = _json_member(tar, "blobs/" + digest.replace(":", "/"))
        yield Archive(path, ARCHIVE_REF, digest, manifest["config"]["digest"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _json_member(tar: tarfile.TarFile, name: str) -> dict[str, Any]:
    member = tar.extractfile(name)
    assert member is not None
    doc: dict[str, Any] = json.load(member)
    return doc


def _param(entry: BackendEntry) -> object:
    marks = [pytest.mark.integration] if entry.integration else []
    return pytest.param(entry.name, marks=marks, id=entry.name)


@pytest.fixture(params=[_param(b) for b in BACKENDS])
def backend(request: pytest.FixtureRequest) -> Backend:
    """The backend under test, once per entry of ``BACKENDS``."""
    entry = next(b for b in BACKENDS if b.name == request.param)
    found: Backend = request.getfixturevalue(entry.fixture)
    return found


# --- the fake -------------------------------------------------------------------


@pytest.fixture
def fake_backend(tmp_path: Path, contract_archive: Archive) -> Iterator[Backend]:
    """A fresh FakeContainerService with the busybox image local."""
    fake = FakeContainerService(root=tmp_path / "fake")
    fake.pull_image(BUSYBOX_REF)
    fake.set_remote_digest(FAKE_REMOTE, FAKE_DIGEST)
    fake.remove_remote(FAKE_ABSENT)
    backend = Backend(
        name="fake",
        service=fake,
        image=BUSYBOX_REF,
        archive=contract_archive.path,
        archive_ref=contract_archive.ref,
        archive_digest=contract_archive.digest,
        remote_ref=FAKE_REMOTE,
        remote_digest=FAKE_DIGEST,
        absent_ref=FAKE_ABSENT,
        registry_down=lambda: unreachable_fake(fake, FAKE_REMOTE),
        network=lambda cid: NetworkSetupRequest(
            container_id=cid, cni_bin_dir="/opt/cni/bin", cni_conf_dir="/etc/cni/net.d"
        ),
        fresh_service=FakeContainerService,
    )
    try:
        yield backend
    finally:
        fake.close()


# --- containerd ----------------------------------------------------------------


@attrs.define
class ContainerdEnv:
    """What the containerd backend shares across the session."""

    socket: str
    namespace: str
    service: ContainerdService
    conf_dir: str | None
    network_reason: str
    remote_ref: str | None
    remote_digest: str
    absent_ref: str | None
    remote_reason: str


def _missing_plugins() -> list[str]:
    return [p for p in CNI_PLUGINS if not os.access(os.path.join(CNI_BIN_DIR, p), os.X_OK)]


def _push_remote(
    request: pytest.FixtureRequest, workdir: str
) -> tuple[str | None, str, str | None, str]:
    """Push a busybox image to the session registry: (ref, digest, absent ref, reason)."""
    missing = [b for b in (REGISTRY_BIN, "skopeo") if shutil.which(b) is None]
    if missing:
        return None, "", None, f"missing programs: {', '.join(missing)}"
    registry: LocalRegistry = request.getfixturevalue("local_registry")
    built = build_oci_image(os.path.join(workdir, "remote"), [busybox_layer()])
    ref = registry.push(built, "contract/busybox:1")
    return ref, built.target_digest, f"{registry.host}/contract/absent:1", ""


@pytest.fixture(scope="session")
def containerd_env(
    request: pytest.FixtureRequest, containerd_socket: str, busybox_archive: str
) -> Iterator[ContainerdEnv]:
    """A ContainerdService in its own namespace, plugins in a namespace of ours."""
    workdir = tempfile.mkdtemp(prefix="mcpm-contract-ctrd-")
    namespace = f"mcpm-contract-{os.getpid()}"
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        host = stack.enter_context(HostNetns("ctrct"))
        conf_dir: str | None = os.path.join(workdir, "conf")
        reason = ""
        if missing := _missing_plugins():
            conf_dir, reason = None, f"CNI plugins missing in {CNI_BIN_DIR}: {', '.join(missing)}"
        else:
            assert conf_dir is not None
            bridge = f"mcpct{os.getpid() % 100000}"
            write_bridge_conflist(
                conf_dir, "contract", bridge, "10.232.9.0/24", os.path.join(workdir, "ipam")
            )
        service = ContainerdService(
            containerd_socket,
            namespace,
            cni_cache_dir=os.path.join(workdir, "cache"),
            cni_plugin_netns=host.name,
        )
        stack.callback(service.close)
        service.import_image(busybox_archive)
        remote, digest, absent, remote_reason = _push_remote(request, workdir)
        yield ContainerdEnv(
            containerd_socket,
            namespace,
            service,
            conf_dir,
            reason,
            remote,
            digest,
            absent,
            remote_reason,
        )


@contextlib.contextmanager
def _closed_port_ref() -> Iterator[str]:
    yield f"127.0.0.1:{free_port()}/contract/down:1"


@pytest.fixture
def containerd_backend(
    containerd_env: ContainerdEnv, contract_archive: Archive
) -> Iterator[Backend]:
    """The containerd backend; removes what the test made afterwards."""
    env = containerd_env
    conf_dir = env.conf_dir

    def network(cid: str) -> NetworkSetupRequest:
        assert conf_dir is not None
        return NetworkSetupRequest(container_id=cid, cni_bin_dir=CNI_BIN_DIR, cni_conf_dir=conf_dir)

    backend = Backend(
        name="containerd",
        service=env.service,
        image=BUSYBOX_REF,
        archive=contract_archive.path,
        archive_ref=contract_archive.ref,
        archive_digest=contract_archive.digest,
        remote_ref=env.remote_ref,
        remote_digest=env.remote_digest,
        absent_ref=env.absent_ref,
        registry_down=_closed_port_ref,
        remote_reason=env.remote_reason,
        network=network if conf_dir is not None else None,
        network_reason=env.network_reason,
        fresh_service=lambda: ContainerdService(env.socket, env.namespace),
    )
    try:
        yield backend
    finally:
        backend.cleanup()


# --- Docker --------------------------------------------------------------------


@attrs.define
class DockerEnv:
    """What the Docker backend shares across the session: its daemon and registry image."""

    daemon: DockerDaemon
    remote_ref: str | None
    remote_digest: str
    absent_ref: str | None
    remote_reason: str


@pytest.fixture(scope="session")
def docker_env(docker_daemon: DockerDaemon, docker_busybox: object) -> Iterator[DockerEnv]:
    """The private dockerd with busybox loaded and a registry in its namespace."""
    del docker_busybox
    missing = [b for b in (REGISTRY_BIN, "skopeo") if shutil.which(b) is None]
    if missing:
        yield DockerEnv(docker_daemon, None, "", None, f"missing programs: {', '.join(missing)}")
        return
    workdir = tempfile.mkdtemp(prefix="mcpm-contract-dock-")
    registry = NetnsRegistry(docker_daemon)
    try:
        built = build_oci_image(os.path.join(workdir, "remote"), [busybox_layer()])
        ref = registry.push(built, "contract/busybox:1")
        absent = f"{registry.host}/contract/absent:1"
        yield DockerEnv(docker_daemon, ref, built.target_digest, absent, "")
    finally:
        registry.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def docker_backend(
    docker_env: DockerEnv, docker_service: DockerService, contract_archive: Archive
) -> Iterator[Backend]:
    """The Docker backend; removes what the test made afterwards.

    Its facts: an imported image's ID is Docker's image ID (the config
    digest: dockerd 20.10 keeps no manifest digest for a loaded image),
    snapshots cannot be mounted on the host, bots join a Docker bridge
    network (so the request's CNI directories are not read), and Docker
    names need two characters.
    """
    env = docker_env
    network = docker_service.network.name
    backend = Backend(
        name="docker",
        service=docker_service,
        image=BUSYBOX_REF,
        archive=contract_archive.path,
        archive_ref=contract_archive.ref,
        archive_digest=contract_archive.config_digest,
        remote_ref=env.remote_ref,
        remote_digest=env.remote_digest,
        absent_ref=env.absent_ref,
        registry_down=_closed_port_ref,
        remote_reason=env.remote_reason,
        network=lambda cid: NetworkSetupRequest(container_id=cid),
        fresh_service=lambda: DockerService(env.daemon.base_url, network=network),
        runtime="docker",
        mounts=False,
        cni=False,
        shortest_id=2,
    )
    try:
        yield backend
    finally:
        backend.cleanup()
