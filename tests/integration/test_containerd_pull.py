"""Pulling from a real registry into a real containerd: GC safety, reuse, error mapping."""

from __future__ import annotations

import concurrent.futures
import logging
import uuid
from collections.abc import Callable, Iterator

import pytest

from mcpmanager import errors
from mcpmanager.containerd import ContainerdService
from mcpmanager.containerd._conn import Connection
from mcpmanager.containerd.api import content_pb2, leases_pb2
from mcpmanager.containerd.content import blob_exists
from mcpmanager.containerd.images import chain_ids, get_image_record
from mcpmanager.containerd.pull import pull_image
from mcpmanager.containerd.registry import DigestMismatch, RegistryClient
from mcpmanager.containerd.snapshots import exists as snapshot_exists
from mcpmanager.oci import Descriptor
from mcpmanager.refs import Reference
from mcpmanager.types import PullImageOptions, PullProgress
from tests.harness.common import wait_for
from tests.harness.containerd import ContainerdDaemon
from tests.harness.registry import (
    FakeRegistry,
    LocalRegistry,
    Pushed,
    build_oci_image,
    busybox_layer,
    free_port,
    host_arch,
)

pytestmark = pytest.mark.integration

OTHER_ARCH = ("arm64", "v8") if host_arch() != "arm64" else ("amd64", "")


@pytest.fixture(scope="module")
def images(local_registry: LocalRegistry, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    """A multi-platform 3-layer image and an unrelated one sharing its base layer."""
    base = busybox_layer()
    main = build_oci_image(
        str(tmp_path_factory.mktemp("main")),
        [base, {"etc/motd": "hello from layer two\n"}, {"data/x": "three\n"}],
        platforms=[(host_arch(), ""), OTHER_ARCH],
    )
    other = build_oci_image(
        str(tmp_path_factory.mktemp("other")), [base, {"other": "only in other\n"}]
    )
    return {
        "main": (main, local_registry.push(main, "pull/main:v1")),
        "other": (other, local_registry.push(other, "pull/other:v1")),
    }


@pytest.fixture
def conn(containerd_daemon: ContainerdDaemon) -> Iterator[Connection]:
    connection = Connection(containerd_daemon.socket, f"pull-{uuid.uuid4().hex[:8]}")
    try:
        yield connection
    finally:
        connection.close()


def ctr(daemon: ContainerdDaemon, conn: Connection, *args: str) -> str:
    return daemon.ctr(conn.namespace, *args)


class CountingClient(RegistryClient):
    """Counts what is downloaded."""

    def __init__(self) -> None:
        super().__init__()
        self.blobs: list[str] = []
        self.manifests: list[str] = []

    def fetch_manifest(self, ref: Reference, desc: Descriptor) -> bytes:
        self.manifests.append(desc.digest)
        return super().fetch_manifest(ref, desc)

    def iter_blob(
        self, ref: Reference, desc: Descriptor, chunk_size: int = 1 << 20, *, verify: bool = True
    ) -> Iterator[bytes]:
        self.blobs.append(desc.digest)
        return super().iter_blob(ref, desc, chunk_size, verify=verify)


def test_pull_survives_forced_gc_and_runs(
    containerd_daemon: ContainerdDaemon, conn: Connection, images: Pushed
) -> None:
    main, ref = images["main"]
    other, other_ref = images["other"]
    events: list[PullProgress] = []
    info = pull_image(conn, ref, PullImageOptions(progress=events.append))
    assert info.id == main.target_digest
    assert info.name == ref
    done = {e.digest for e in events if e.done == e.total}
    assert set(main.layer_digests) <= done
    pull_image(conn, other_ref)
    ctr(containerd_daemon, conn, "images", "rm", "--sync", other_ref)

    content = ctr(containerd_daemon, conn, "content", "ls")
    wanted = [main.target_digest, main.manifest_digests[host_arch()]]
    wanted += [main.config_digests[host_arch()], *main.layer_digests]
    missing = [d for d in wanted if d not in content]
    assert not missing, f"GC removed {missing}"
    assert other.layer_digests[1] not in content, "GC did not run"
    assert "containerd.io/gc.ref.snapshot.overlayfs" in content
    snaps = ctr(containerd_daemon, conn, "snapshots", "--snapshotter", "overlayfs", "ls")
    for chain_id in chain_ids(main.diff_ids):
        assert chain_id in snaps
    assert ref in ctr(containerd_daemon, conn, "images", "ls", "-q")
    out = ctr(
        containerd_daemon, conn, "run", "--rm", ref, f"t-{uuid.uuid4().hex[:6]}", "cat", "/etc/motd"
    )
    assert out == "hello from layer two\n"


def force_gc(conn: Connection) -> None:
    """Run containerd's garbage collector now (deleting a lease with ``sync`` does)."""
    lease_id = f"gc-{uuid.uuid4().hex[:8]}"
    conn.unary(conn.leases.Create, leases_pb2.CreateRequest(id=lease_id), what="gc")
    conn.unary(conn.leases.Delete, leases_pb2.DeleteRequest(id=lease_id, sync=True), what="gc")


class GatedClient(RegistryClient):
    """Runs ``before`` (in the download's thread) before the ``gated`` blob is sent."""

    def __init__(self, gated: str, before: Callable[[], None]) -> None:
        super().__init__()
        self.gated, self.before = gated, before

    def iter_blob(
        self, ref: Reference, desc: Descriptor, chunk_size: int = 1 << 20, *, verify: bool = True
    ) -> Iterator[bytes]:
        if desc.digest == self.gated:
            self.before()
        return super().iter_blob(ref, desc, chunk_size, verify=verify)


def test_gc_while_layers_download_loses_nothing(
    containerd_daemon: ContainerdDaemon, conn: Connection, images: Pushed
) -> None:
    """GC runs once the first layer is unpacked and while the last one still downloads."""
    main, ref = images["main"]
    chain = chain_ids(main.diff_ids)
    gc_runs: list[str] = []

    def unpacked_first_then_gc() -> None:
        wait_for(
            lambda: snapshot_exists(conn, "overlayfs", chain[0]),
            timeout=30,
            what="the first layer to be unpacked while the last one is held back",
        )
        force_gc(conn)
        gc_runs.append(chain[0])

    client = GatedClient(main.layer_digests[-1], unpacked_first_then_gc)
    info = pull_image(conn, ref, client=client)
    assert gc_runs == [chain[0]]
    assert info.id == main.target_digest
    force_gc(conn)  # and once more with only the image record holding it all
    content = ctr(containerd_daemon, conn, "content", "ls")
    wanted = [main.target_digest, main.manifest_digests[host_arch()]]
    wanted += [main.config_digests[host_arch()], *main.layer_digests]
    assert not [d for d in wanted if d not in content]
    snaps = ctr(containerd_daemon, conn, "snapshots", "--snapshotter", "overlayfs", "ls")
    assert all(chain_id in snaps for chain_id in chain)
    assert "extract-" not in snaps
    leases = ctr(containerd_daemon, conn, "leases", "ls", "-q")
    assert leases.split() == []
    out = ctr(
        containerd_daemon, conn, "run", "--rm", ref, f"t-{uuid.uuid4().hex[:6]}", "cat", "/data/x"
    )
    assert out == "three\n"


def test_second_pull_downloads_nothing(conn: Connection, images: Pushed) -> None:
    main, ref = images["main"]
    first = CountingClient()
    pull_image(conn, ref, PullImageOptions(unpack=False), client=first)
    assert set(main.layer_digests) <= set(first.blobs)
    second = CountingClient()
    events: list[PullProgress] = []
    info = pull_image(conn, ref, PullImageOptions(progress=events.append), client=second)
    assert second.blobs == []
    assert second.manifests == []
    assert info.id == main.target_digest
    assert all(e.done == e.total for e in events)
    assert get_image_record(conn, ref).target.digest == main.target_digest


def test_concurrent_pulls_of_one_image(conn: Connection, images: Pushed) -> None:
    main, ref = images["main"]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: pull_image(conn, ref), range(3)))
    assert {r.id for r in results} == {main.target_digest}


def test_service_pull_and_upgrade_check(
    containerd_daemon: ContainerdDaemon, local_registry: LocalRegistry, images: Pushed
) -> None:
    main, ref = images["main"]
    namespace = f"pull-svc-{uuid.uuid4().hex[:8]}"
    with ContainerdService(containerd_daemon.socket, namespace) as service:
        assert service.resolve_remote_digest(ref) == main.target_digest
        pulled = service.pull_image(ref)
        assert service.get_image(ref) == pulled
        assert pulled.id == main.target_digest


def test_pull_deadline_is_deadline_exceeded(conn: Connection, images: Pushed) -> None:
    _, ref = images["main"]
    with pytest.raises(errors.DeadlineExceeded, match="pull/main:v1"):
        pull_image(conn, ref, timeout=-1.0)


def test_failing_progress_callback_does_not_break_pull(conn: Connection, images: Pushed) -> None:
    main, ref = images["main"]

    def explode(_: PullProgress) -> None:
        raise RuntimeError("callback bug")

    opts = PullImageOptions(unpack=False, progress=explode)
    assert pull_image(conn, ref, opts).id == main.target_digest


def test_missing_tag_is_not_found(conn: Connection, local_registry: LocalRegistry) -> None:
    with pytest.raises(errors.NotFound, match="pull/absent:v1"):
        pull_image(conn, f"{local_registry.host}/pull/absent:v1")


def test_unreachable_registry_is_unavailable(conn: Connection) -> None:
    with pytest.raises(errors.Unavailable, match=r"127\.0\.0\.1"):
        pull_image(conn, f"127.0.0.1:{free_port()}/pull/main:v1")


def test_tampered_layer_is_rejected_and_not_stored(
    conn: Connection, fake_registry: FakeRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="grpc")
    layer = fake_registry.image.layer_digests[0]
    fake_registry.tamper.add(layer)
    ref = f"{fake_registry.host}/r:t"
    with pytest.raises(DigestMismatch, match=layer):
        pull_image(conn, ref)
    assert not blob_exists(conn, layer)
    assert not [r for r in caplog.records if "Exception iterating" in r.getMessage()]
    with pytest.raises(errors.NotFound):
        get_image_record(conn, ref)
    fake_registry.tamper.clear()
    assert (
        pull_image(conn, ref, PullImageOptions(unpack=False)).id
        == fake_registry.image.target_digest
    )


def test_fresh_pull_makes_no_lease_or_label_writes(
    conn: Connection, images: Pushed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Missing blobs join the lease by their Write and carry their labels in it."""
    main, ref = images["main"]
    calls: list[str] = []
    unary = Connection.unary

    def counting(self: Connection, method: object, request: object, **kw: object) -> object:
        calls.append(type(request).__name__)
        return unary(self, method, request, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Connection, "unary", counting)
    info = pull_image(conn, ref)
    monkeypatch.undo()
    assert info.id == main.target_digest
    assert "AddResourceRequest" not in calls
    assert "UpdateRequest" not in calls
    assert calls.count("StatSnapshotRequest") == 1  # the first missing layer ends the look-up
    assert calls.count("PrepareSnapshotRequest") == len(main.layer_digests)
    snap = conn.unary(
        conn.content.Info,
        content_pb2.InfoRequest(digest=main.config_digests[host_arch()]),
        what="config info",
    ).info
    top = chain_ids(main.diff_ids)[-1]
    assert snap.labels["containerd.io/gc.ref.snapshot.overlayfs"] == top
